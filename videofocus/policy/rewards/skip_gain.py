"""``skip_gain``: ``p(chosen) - p(skip)``, the skip taken from the same state in one extra
aggregator step (no glimpse to encode).

What looking at this frame adds over not looking: a skip scores 0 and, with ``cost_lambda > 0``,
a glimpse pays only where it changes the prediction (a hidden target, or a prediction already
settled, earn it nothing) - AR-Net's trade-off as a per-step reward.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from videofocus.policy.rewards.base import register_reward

if TYPE_CHECKING:
    from torch import Tensor


@register_reward("skip_gain", baseline="skip")
def gain(confidence: Tensor, baseline: Tensor | None, previous: Tensor) -> Tensor:
    """p(chosen) - p(skip from the same state)."""
    assert baseline is not None
    return confidence - baseline
