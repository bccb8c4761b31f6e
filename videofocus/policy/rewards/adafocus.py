"""``adafocus``: ``p(chosen) - p(random)``, as in AdaFocus.

The random glimpse (uniform option in ``1..K`` and cell) is taken from the same state in one extra
aggregator step. It is drawn independently of the chosen action, so it shifts rewards without
changing which action is better: a control variate.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from videofocus.policy.rewards.base import register_reward

if TYPE_CHECKING:
    from torch import Tensor


@register_reward("adafocus", baseline="random")
def gain(confidence: Tensor, baseline: Tensor | None, previous: Tensor) -> Tensor:
    """p(chosen) - p(random glimpse from the same state)."""
    assert baseline is not None
    return confidence - baseline
