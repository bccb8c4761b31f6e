"""What a reward is, and the registry of rewards by name.

A :class:`Reward` tells the episode core (:class:`~videofocus.train.rl.episodes.EpisodeBatch`)
which counterfactual **baseline** glimpse to carry out from the same state, in the same batched
aggregator pass as the chosen action, and how to turn confidences into the step's **gain**. The
episode core subtracts ``cost_lambda`` x the action's normalised cost from the gain itself.

Nothing here imports torch: the gain functions only do arithmetic on the tensors they are given,
so the config can check ``policy.reward`` against :func:`list_rewards` cheaply.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from videofocus.registry import Registry

if TYPE_CHECKING:
    from torch import Tensor

__all__ = ["BASELINES", "GainFn", "Reward", "get_reward", "list_rewards", "register_reward"]

#: The counterfactual glimpses the episode core knows how to compute alongside the chosen one:
#: ``none`` (no extra pass), ``random`` (a uniformly random option and cell, drawn from
#: ``(seed, video, visit)``), ``skip`` (option 0: the glance alone).
BASELINES = ("none", "random", "skip")

#: ``gain(confidence, baseline, previous) -> [N]``: ``confidence`` is the ground-truth probability
#: after the chosen action ``[N]``, ``baseline`` that after the baseline glimpse (None when the
#: reward's baseline is ``none``), ``previous`` that after the previous step (``1 / classes``
#: before the first).
GainFn = Callable[["Tensor", "Tensor | None", "Tensor"], "Tensor"]


@dataclass(frozen=True)
class Reward:
    """One reward of the glimpse task, selected by ``policy.reward == name``: its
    :data:`GainFn`, one of :data:`BASELINES` and a one-line summary for help texts and docs."""

    name: str
    gain: GainFn
    baseline: str = "none"
    summary: str = ""

    def __post_init__(self) -> None:
        if self.baseline not in BASELINES:
            raise ValueError(
                f"reward {self.name!r}: baseline must be one of {list(BASELINES)}, "
                f"got {self.baseline!r}"
            )


_REGISTRY: Registry[Reward] = Registry("reward")


def register_reward(name: str, *, baseline: str = "none") -> Callable[[GainFn], GainFn]:
    """Decorator registering a gain function as the reward ``name`` (its docstring's first line
    is the reward's summary)::

        @register_reward("adafocus", baseline="random")
        def gain(confidence, baseline, previous):
            \"\"\"p(chosen) - p(random glimpse).\"\"\"
            return confidence - baseline

    :raises ValueError: for a name already registered or an unknown baseline.
    """

    def decorator(fn: GainFn) -> GainFn:
        summary = (fn.__doc__ or "").strip().splitlines()
        _REGISTRY.add(name, Reward(name, fn, baseline, summary[0] if summary else ""))
        return fn

    return decorator


def list_rewards() -> list[str]:
    """Names of the registered rewards, sorted."""
    return sorted(_REGISTRY.names())


def get_reward(name: str) -> Reward:
    """The reward registered as ``name`` (ValueError for an unknown name)."""
    return _REGISTRY.get(name)
