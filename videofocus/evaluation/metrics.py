"""Evaluation metrics: top-k accuracy and mean average precision (ActivityNet / FCVID style).

Inputs may be numpy arrays, torch tensors or nested lists, computed in float64 numpy; results
are fractions in [0, 1].

Average precision follows ``sklearn.metrics.average_precision_score``:
``AP = sum_k (R_k - R_{k-1}) * P_k`` over the distinct score thresholds in decreasing order; a
tied group is one threshold, so the order of tied videos never changes the result. Column ``c``
is always class ``c``: a class without a positive has no AP (NaN) and is left out of the mean,
the others never renumbered.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

__all__ = ["mean_average_precision", "per_class_average_precision", "topk_accuracy"]

# Column chunk size for AP: bounds the temporary [N, chunk] arrays on large evaluation sets.
_AP_CHUNK_ELEMENTS = 1 << 22


def _as_numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        # bfloat16 and half have no (or a lossy) numpy view; widen before leaving torch.
        return (x.double() if x.is_floating_point() else x).numpy()
    return np.asarray(x)


def _scores(x: Any, name: str) -> np.ndarray:
    scores = _as_numpy(x).astype(np.float64, copy=False)
    if scores.ndim != 2 or scores.shape[0] == 0 or scores.shape[1] == 0:
        raise ValueError(f"{name} must have shape [N, C] with N, C > 0, got {scores.shape}")
    if np.isnan(scores).any():
        raise ValueError(f"{name} contain NaN")
    return scores


def _positives(targets: Any, shape: tuple[int, int], name: str) -> np.ndarray:
    """``targets`` as a boolean [N, C] matrix: multi-hot as given, or one-hot from [N] labels."""
    t = _as_numpy(targets)
    n, c = shape
    if t.ndim == 1:
        if t.shape[0] != n or not np.issubdtype(t.dtype, np.integer):
            raise ValueError(f"{name} as labels must be {n} integers, got {t.dtype} {t.shape}")
        if n and (t.min() < 0 or t.max() >= c):
            raise ValueError(f"{name} hold labels outside [0, {c}): {t.min()}..{t.max()}")
        out = np.zeros(shape, dtype=bool)
        out[np.arange(n), t] = True
        return out
    if t.shape != shape:
        raise ValueError(f"{name} must be [N] labels or a multi-hot {shape} matrix, got {t.shape}")
    if not np.isin(t, (0, 1)).all():
        raise ValueError(f"{name} as a multi-hot matrix must hold only 0 and 1")
    return t.astype(bool)


def topk_accuracy(logits: Any, labels: Any, ks: Iterable[int] = (1, 5)) -> dict[str, float]:
    """Fraction of videos whose label is among the ``k`` highest-scoring classes, for each ``k``.

    With multi-hot labels a video counts when any of its positive classes is in the top ``k``.
    Ties count against the label, so constant logits score 0 top-1 rather than an arbitrary value.

    :param labels: class indices ``[N]``, or a multi-hot ``[N, C]`` matrix.
    :returns: ``{"top1": ..., "top5": ...}`` for ``ks=(1, 5)``.
    """
    scores = _scores(logits, "logits")
    positive = _positives(labels, scores.shape, "labels")
    if not positive.any(axis=1).all():
        raise ValueError("every video needs at least one positive label for top-k accuracy")
    ks = list(ks)
    if not ks or any(isinstance(k, bool) or int(k) != k or k < 1 for k in ks):
        raise ValueError(f"ks must be positive integers, got {ks}")
    best_positive = np.where(positive, scores, -np.inf).max(axis=1)  # [N]
    # Negatives ranked at or above the best positive: its worst-case zero-based rank.
    ahead = (np.where(positive, -np.inf, scores) >= best_positive[:, None]).sum(axis=1)  # [N]
    return {f"top{int(k)}": float((ahead < k).mean()) for k in ks}


def _average_precision_columns(scores: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """AP of each column of ``scores`` [N, C] against ``positive`` [N, C]; NaN without positives."""
    n = scores.shape[0]
    order = np.argsort(-scores, axis=0, kind="stable")
    s = np.take_along_axis(scores, order, axis=0)
    y = np.take_along_axis(positive, order, axis=0)
    rows = np.arange(n)[:, None]
    # A tied group of scores ends where the next (lower) score differs, or at the last row.
    group_end = np.ones_like(y)
    group_end[:-1] = s[:-1] != s[1:]
    # For each row, the last row of its tied group: a running minimum from the bottom up.
    end = np.where(group_end, rows, n - 1)
    end = np.minimum.accumulate(end[::-1], axis=0)[::-1]
    true_pos = np.cumsum(y, axis=0)
    precision_at_group_end = np.take_along_axis(true_pos, end, axis=0) / (end + 1)
    n_pos = y.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ap = (precision_at_group_end * y).sum(axis=0) / n_pos
    return np.where(n_pos > 0, ap, np.nan)


def per_class_average_precision(scores: Any, targets: Any) -> np.ndarray:
    """Average precision ``[C]`` (float64, NaN without a positive video) of each class of
    ``scores [N, C]`` against ``targets``: multi-hot ``[N, C]`` or class indices ``[N]``."""
    s = _scores(scores, "scores")
    y = _positives(targets, s.shape, "targets")
    n, c = s.shape
    chunk = max(1, _AP_CHUNK_ELEMENTS // n)
    cols = [slice(i, i + chunk) for i in range(0, c, chunk)]
    return np.concatenate([_average_precision_columns(s[:, j], y[:, j]) for j in cols])


def mean_average_precision(scores: Any, targets: Any) -> float:
    """Mean of :func:`per_class_average_precision` over the classes with a positive video
    (``ValueError`` when there is none: mAP is undefined)."""
    ap = per_class_average_precision(scores, targets)
    present = ~np.isnan(ap)
    if not present.any():
        raise ValueError("no class has a positive video: mean average precision is undefined")
    return float(ap[present].mean())
