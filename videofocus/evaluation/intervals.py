"""How sure a reported number is: a mean over seeds with its t interval, and the paired
difference of two methods on the same test videos with a bootstrap interval.

:func:`paired_difference` resamples the seeds and the videos (a two-level bootstrap), taking the
two methods' results for the same seed and video together, so what they share (a seed's shared
stages, an easy or a hard video) cancels out of the difference.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

__all__ = ["Interval", "paired_difference", "seed_interval"]


@dataclass(frozen=True)
class Interval:
    """A mean, its standard deviation over ``n`` seeds (``ddof=1``; 0 for one seed) and a
    confidence interval ``[low, high]`` (NaN for one seed)."""

    mean: float
    std: float
    low: float
    high: float
    n: int

    def format(self, scale: float = 100.0, digits: int = 1) -> str:
        """``mean ± std [low, high]`` with values times ``scale`` (percentages by default)."""
        text = f"{scale * self.mean:.{digits}f} ± {scale * self.std:.{digits}f}"
        if math.isnan(self.low):
            return text
        return f"{text} [{scale * self.low:.{digits}f}, {scale * self.high:.{digits}f}]"


def seed_interval(values: Sequence[float], confidence: float = 0.95) -> Interval:
    """The mean of one number over seeds (``values``, at least one) with its two-sided
    Student's t interval of coverage ``confidence``."""
    x = np.asarray(values, dtype=float)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"need a non-empty list of values, got shape {x.shape}")
    mean = float(x.mean())
    if x.size == 1:
        return Interval(mean, 0.0, math.nan, math.nan, 1)
    std = float(x.std(ddof=1))
    half = float(stats.t.ppf((1 + confidence) / 2, x.size - 1)) * std / math.sqrt(x.size)
    return Interval(mean, std, mean - half, mean + half, int(x.size))


def paired_difference(
    a: Sequence[Sequence[float]],
    b: Sequence[Sequence[float]],
    confidence: float = 0.95,
    resamples: int = 10_000,
    seed: int = 0,
) -> Interval:
    """Mean of ``a - b`` per video with a two-level bootstrap interval (seeds, then videos).

    :param a: ``[seeds, videos]`` per-video scores of the first method (1/0 for right/wrong),
        seed ``s`` and video ``v`` at the same place as in ``b``.
    :param seed: seed of the bootstrap's own draws (the interval is reproducible).
    :returns: the mean difference; ``std`` is the spread of the per-seed mean differences.
    """
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.ndim != 2 or x.shape != y.shape or x.size == 0:
        raise ValueError(f"need two [seeds, videos] arrays of one shape, got {x.shape}, {y.shape}")
    diff = x - y
    seeds, videos = diff.shape
    rng = np.random.default_rng(seed)
    # a draw with replacement is how often it takes each seed and video: the resample's mean
    # is then a weighted sum, one matrix product for all resamples
    seed_counts = rng.multinomial(seeds, np.full(seeds, 1 / seeds), size=resamples)
    video_counts = rng.multinomial(videos, np.full(videos, 1 / videos), size=resamples)
    boots = ((seed_counts @ diff) * video_counts).sum(axis=1) / (seeds * videos)
    tail = (1 - confidence) / 2
    low, high = np.quantile(boots, [tail, 1 - tail])
    per_seed = diff.mean(axis=1)
    std = float(per_seed.std(ddof=1)) if seeds > 1 else 0.0
    return Interval(float(diff.mean()), std, float(low), float(high), seeds)
