"""The :class:`GlimpsePolicy` interface and the registry of heuristic policies by name.

:class:`GlimpsePolicy` is a plain torch module: ``act(glance) -> actions [B, T, 3]`` for whole
clips at once (it reads only glance features, so every glimpse of a batch is known before the
expensive encoder runs).

A heuristic is a :class:`GlimpsePolicy` subclass registered with :func:`register_policy`; its
constructor takes ``(options, grid, **kwargs)``, with ``option`` among the keyword arguments of
those that glimpse with one fixed option (:func:`heuristic_spec` records it).
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import torch
from torch import nn

from videofocus.models.focusnet import GlanceOutput
from videofocus.models.glimpse import GlimpseOption
from videofocus.registry import Registry

__all__ = [
    "ORACLE",
    "FixedOptionPolicy",
    "GlimpsePolicy",
    "constant_actions",
    "create_policy",
    "heuristic_spec",
    "list_policies",
    "register_policy",
]


class GlimpsePolicy(nn.Module, ABC):
    """Chooses ``(option, cell_x, cell_y)`` for every frame of a batch of clips; action option
    ``k`` is ``options[k - 1]``, ``grid`` the cells per side of the grid of glimpse centres."""

    def __init__(self, options: Sequence[GlimpseOption], grid: int) -> None:
        super().__init__()
        if not options or grid < 1:
            raise ValueError(f"need glimpse options and grid >= 1, got {len(options)}, {grid}")
        self.options = tuple(options)
        self.grid = grid

    @property
    def num_options(self) -> int:
        """Number ``K`` of glimpse options."""
        return len(self.options)

    def _check_option(self, option: int) -> int:
        if not 1 <= option <= self.num_options:
            raise ValueError(f"option must be in [1, {self.num_options}], got {option}")
        return option

    @abstractmethod
    def act(self, glance: GlanceOutput, generator: torch.Generator | None = None) -> torch.Tensor:
        """Actions (long ``[B, T, 3]``, on the glance's device) for clips whose glance is given;
        stochastic policies draw with ``generator``."""

    def forward(
        self, glance: GlanceOutput, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Same as :meth:`act`."""
        return self.act(glance, generator)


class FixedOptionPolicy(GlimpsePolicy):
    """A policy that glimpses with one fixed action ``option`` (``1..K``) and chooses only where."""

    def __init__(self, options: Sequence[GlimpseOption], grid: int, option: int = 1) -> None:
        super().__init__(options, grid)
        self.option = self._check_option(option)

    def at_cells(self, cells: torch.Tensor) -> torch.Tensor:
        """Actions ``[..., 3]``: the policy's option at grid ``cells`` (long ``[..., 2]``)."""
        return torch.cat([torch.full_like(cells[..., :1], self.option), cells], dim=-1)


def constant_actions(glance: GlanceOutput, option: int, cell_x: int, cell_y: int) -> torch.Tensor:
    """The same action ``(option, cell_x, cell_y)`` on every frame: long ``[B, T, 3]``."""
    b, t = glance.maps.shape[:2]
    action = torch.tensor([option, cell_x, cell_y], device=glance.maps.device)
    return action.expand(b, t, 3).clone()


#: Not a :class:`GlimpsePolicy`: glimpses centred on the target itself, given as actions from the
#: synthetic generator's tracks (:func:`videofocus.evaluation.policy_eval.oracle_actions`); its
#: fine-tune stage is ``finetune_oracle_o<k>``, whose checkpoint holds a plain FocusNet.
ORACLE = "oracle"

P = TypeVar("P", bound=type[GlimpsePolicy])

_REGISTRY: Registry[Callable[..., GlimpsePolicy]] = Registry("glimpse policy")


def register_policy(name: str) -> Callable[[P], P]:
    """Class decorator registering a heuristic :class:`GlimpsePolicy` under the new ``name``."""
    return _REGISTRY.register(name)


def takes_option(name: str) -> bool:
    """Whether the heuristic ``name`` glimpses at a chosen option (its constructor takes
    ``option``: random, centre, saliency) rather than finding its own (dense, glance_only)."""
    return "option" in inspect.signature(_REGISTRY.get(name)).parameters


def heuristic_spec(policy: GlimpsePolicy) -> dict[str, Any] | None:
    """``{"heuristic": name, "option": k}`` of a heuristic made by :func:`create_policy`
    (``option`` None for those whose constructor takes none, e.g. ``dense``, which finds its own),
    enough to make it again; None for other policies."""
    for name, cls in _REGISTRY.items():
        if type(policy) is cls:
            option = getattr(policy, "option", None) if takes_option(name) else None
            return {"heuristic": name, "option": option}
    return None


def list_policies() -> list[str]:
    """Names :func:`create_policy` knows (the heuristics)."""
    return sorted(_REGISTRY.names())


def create_policy(
    name: str, options: Sequence[GlimpseOption], grid: int, **kwargs: Any
) -> GlimpsePolicy:
    """The heuristic policy ``name`` (:func:`list_policies`) with its own ``kwargs`` (``option``
    for random / centre / saliency); ValueError for an unknown name."""
    return _REGISTRY.get(name)(options, grid, **kwargs)
