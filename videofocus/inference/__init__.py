"""Adaptive inference: the batched inferencer (glance, policy roll-out, glimpses batched across
videos, early exit), exit-threshold calibration for a GMACs budget, and the inference model a
checkpoint loads into. Imports nothing of training (no SB3, gymnasium or TensorBoard)."""
