"""``confidence``: ``p_t``, the ground-truth probability after the step."""

from __future__ import annotations

from typing import TYPE_CHECKING

from videofocus.policy.rewards.base import register_reward

if TYPE_CHECKING:
    from torch import Tensor


@register_reward("confidence")
def gain(confidence: Tensor, baseline: Tensor | None, previous: Tensor) -> Tensor:
    """p_t."""
    return confidence
