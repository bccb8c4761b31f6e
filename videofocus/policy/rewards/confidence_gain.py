"""``confidence_gain``: ``p_t - p_{t-1}`` with ``p_{-1} = 1 / num_classes``, so the returns of an
episode add up to ``p_{T-1} - 1 / num_classes``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from videofocus.policy.rewards.base import register_reward

if TYPE_CHECKING:
    from torch import Tensor


@register_reward("confidence_gain")
def gain(confidence: Tensor, baseline: Tensor | None, previous: Tensor) -> Tensor:
    """p_t - p_{t-1} (telescopes to the final confidence)."""
    return confidence - previous
