"""Scores of trained models: metrics (hit@k, mAP), checkpoint evaluation, policy comparisons and
the cost report of ``videofocus flops``."""
