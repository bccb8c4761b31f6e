"""Training stages, evaluation, batched adaptive inference and labelling jobs.

``engine`` composes ``data``, ``models`` and ``policy``; the CLI only parses arguments and calls
into it. Evaluation metrics live in :mod:`videofocus.engine.metrics`.
"""
