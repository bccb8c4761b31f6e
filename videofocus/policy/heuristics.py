"""Every glimpse policy behind one interface: glance of a batch of clips in, actions out.

:class:`GlimpsePolicy` is a plain torch module: ``act(glance) -> actions [B, T, 3]`` for whole
clips at once, which is all label-time inference needs (the policy reads only glance features,
so every glimpse of a batch is known before the expensive encoder runs). Heuristics:

- ``random``: a fixed option at uniformly random cells (the warm-up stage's glimpses);
- ``centre``: a fixed option at the centre cell;
- ``saliency``: a fixed option at the cell whose glimpse centre lies nearest to the strongest
  glance activation (peak of the channel-summed glance map);
- ``dense``: the whole-frame option (extent 1) on every frame;
- ``glance_only``: skip every frame;

and :class:`LearnedGlimpsePolicy` runs a trained
:class:`~videofocus.policy.network.RecurrentGlimpsePolicy` on the observations the environments
give it (projected glance maps and progress features).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

import torch
from einops import rearrange
from torch import nn

from videofocus.models.focusnet import GlanceOutput
from videofocus.models.glimpse import GlimpseOption, grid_centres
from videofocus.policy.actions import resolve_actions
from videofocus.policy.network import GlimpsePolicyNetwork
from videofocus.policy.observation import GlanceProjection

__all__ = [
    "CentrePolicy",
    "DensePolicy",
    "GlanceOnlyPolicy",
    "GlimpsePolicy",
    "LearnedGlimpsePolicy",
    "RandomPolicy",
    "SaliencyPolicy",
    "create_policy",
    "heuristic_spec",
    "list_policies",
]


class GlimpsePolicy(nn.Module, ABC):
    """Chooses ``(option, cell_x, cell_y)`` for every frame of a batch of clips.

    :param options: the model's glimpse options (action option ``k`` is ``options[k - 1]``).
    :param grid: cells per side ``G`` of the grid of glimpse centres.
    """

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
        """Actions (long ``[B, T, 3]``, on the glance's device) for clips whose glance is given.

        :param glance: glance maps ``[B, T, C, h, w]`` and pooled features ``[B, T, C]``.
        :param generator: random generator for stochastic policies (reproducible roll-outs).
        """

    def forward(
        self, glance: GlanceOutput, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Same as :meth:`act`."""
        return self.act(glance, generator)


def _constant(glance: GlanceOutput, option: int, cell_x: int, cell_y: int) -> torch.Tensor:
    b, t = glance.maps.shape[:2]
    action = torch.tensor([option, cell_x, cell_y], device=glance.maps.device)
    return action.expand(b, t, 3).clone()


class RandomPolicy(GlimpsePolicy):
    """Option ``option`` at uniformly random cells.

    :param option: the action option (``1..K``) of every glimpse.
    """

    def __init__(self, options: Sequence[GlimpseOption], grid: int, option: int = 1) -> None:
        super().__init__(options, grid)
        self.option = self._check_option(option)

    def act(self, glance: GlanceOutput, generator: torch.Generator | None = None) -> torch.Tensor:
        b, t = glance.maps.shape[:2]
        device = generator.device if generator is not None else glance.maps.device
        cells = torch.randint(0, self.grid, (b, t, 2), generator=generator, device=device)
        option = torch.full((b, t, 1), self.option, dtype=torch.long, device=device)
        return torch.cat([option, cells], dim=-1).to(glance.maps.device)


class CentrePolicy(GlimpsePolicy):
    """Option ``option`` at the centre cell ``(G // 2, G // 2)`` (for an even ``G``, the cell
    right of and below the centre).

    :param option: the action option (``1..K``) of every glimpse.
    """

    def __init__(self, options: Sequence[GlimpseOption], grid: int, option: int = 1) -> None:
        super().__init__(options, grid)
        self.option = self._check_option(option)

    def act(self, glance: GlanceOutput, generator: torch.Generator | None = None) -> torch.Tensor:
        return _constant(glance, self.option, self.grid // 2, self.grid // 2)


class SaliencyPolicy(GlimpsePolicy):
    """Option ``option`` centred as near as the grid allows to the glance activation's peak.

    The peak is the strongest position of the channel-summed glance map; the chosen cell is,
    along each axis, the one whose *glimpse centre* lies nearest to it. Glimpse centres are not
    the unit cells' centres (they span ``[e/2, 1 - e/2]`` for a glimpse of extent ``e``, see
    :func:`~videofocus.models.glimpse.grid_centres`), so resizing the map to ``G x G`` would
    aim off by up to half a glimpse near the borders.

    :param option: the action option (``1..K``) of every glimpse.
    :param aspect: frame width / height (1 for the square clips of the training stages).
    """

    centres_x: torch.Tensor
    centres_y: torch.Tensor

    def __init__(
        self,
        options: Sequence[GlimpseOption],
        grid: int,
        option: int = 1,
        aspect: float = 1.0,
    ) -> None:
        super().__init__(options, grid)
        self.option = self._check_option(option)
        diagonal = torch.arange(grid).unsqueeze(1).expand(grid, 2)  # cells (i, i)
        centres = grid_centres(diagonal, grid, self.options[option - 1].extent, aspect)
        self.register_buffer("centres_x", centres[:, 0].clone(), persistent=False)
        self.register_buffer("centres_y", centres[:, 1].clone(), persistent=False)

    def peaks(self, maps: torch.Tensor) -> torch.Tensor:
        """Normalised ``(x, y)`` ``[B, T, 2]`` of the channel-summed maps' strongest positions."""
        h, w = maps.shape[-2:]
        flat = rearrange(maps.sum(dim=2), "b t h w -> b t (h w)").argmax(dim=-1)
        y, x = flat // w, flat % w
        return torch.stack([(x + 0.5) / w, (y + 0.5) / h], dim=-1)

    def act(self, glance: GlanceOutput, generator: torch.Generator | None = None) -> torch.Tensor:
        peak = self.peaks(glance.maps)  # [B, T, 2]
        cx = (peak[..., :1] - self.centres_x.to(peak)).abs().argmin(dim=-1)
        cy = (peak[..., 1:] - self.centres_y.to(peak)).abs().argmin(dim=-1)
        return torch.stack([torch.full_like(cx, self.option), cx, cy], dim=-1)


class DensePolicy(GlimpsePolicy):
    """The whole frame on every step: the first option of extent 1 (AR-Net's full frame).

    :raises ValueError: when no option covers the whole frame.
    """

    def __init__(self, options: Sequence[GlimpseOption], grid: int) -> None:
        super().__init__(options, grid)
        whole = [k for k, o in enumerate(self.options, start=1) if o.extent == 1.0]
        if not whole:
            raise ValueError(
                "the dense policy needs a glimpse option of extent 1.0 (the whole frame); "
                f"options are {[o.extent for o in self.options]}"
            )
        self.option = whole[0]

    def act(self, glance: GlanceOutput, generator: torch.Generator | None = None) -> torch.Tensor:
        return _constant(glance, self.option, 0, 0)


class GlanceOnlyPolicy(GlimpsePolicy):
    """Skip every frame: the aggregator sees only the glance."""

    def act(self, glance: GlanceOutput, generator: torch.Generator | None = None) -> torch.Tensor:
        return _constant(glance, 0, 0, 0)


class LearnedGlimpsePolicy(GlimpsePolicy):
    """A trained recurrent policy on the environments' observations.

    Glance maps go through the same :class:`GlanceProjection` as in
    :class:`~videofocus.train.rl.episodes.EpisodeBatch`, the network rolls out every clip
    (:meth:`GlimpsePolicyNetwork.rollout`, progress features built as the environments build
    them) and skips are resolved as the environments resolve them.

    :param projection: the observation projection the policy was trained with.
    :param network: the policy network, sized for ``projection.out_channels``.
    :param allow_skip: False: a chosen skip glimpses with option 1, as during training.
    :param deterministic: argmax actions (else sampled with the ``act`` generator).
    """

    def __init__(
        self,
        options: Sequence[GlimpseOption],
        grid: int,
        projection: GlanceProjection,
        network: GlimpsePolicyNetwork,
        allow_skip: bool = True,
        deterministic: bool = True,
    ) -> None:
        super().__init__(options, grid)
        expected = (len(self.options) + 1, grid, grid)
        if network.action_dims != expected:
            raise ValueError(f"network acts in {network.action_dims}, the model needs {expected}")
        self.projection = projection
        self.network = network
        self.allow_skip = allow_skip
        self.deterministic = deterministic

    def act(self, glance: GlanceOutput, generator: torch.Generator | None = None) -> torch.Tensor:
        maps = self.projection(glance.maps)
        actions = self.network.rollout(maps, self.deterministic, generator)
        return resolve_actions(actions, self.allow_skip)


_REGISTRY: dict[str, Callable[..., GlimpsePolicy]] = {
    "random": RandomPolicy,
    "centre": CentrePolicy,
    "saliency": SaliencyPolicy,
    "dense": DensePolicy,
    "glance_only": GlanceOnlyPolicy,
}


def heuristic_spec(policy: GlimpsePolicy) -> dict[str, Any] | None:
    """``{"heuristic": name, "option": k}`` of a heuristic made by :func:`create_policy`
    (``option`` None for those without one), enough to make it again; None for other policies."""
    for name, cls in _REGISTRY.items():
        if type(policy) is cls:
            return {"heuristic": name, "option": getattr(policy, "option", None)}
    return None


def list_policies() -> list[str]:
    """Names :func:`create_policy` knows (the heuristics)."""
    return sorted(_REGISTRY)


def create_policy(
    name: str, options: Sequence[GlimpseOption], grid: int, **kwargs: Any
) -> GlimpsePolicy:
    """A heuristic policy by name.

    :param name: one of :func:`list_policies`.
    :param options: the model's glimpse options.
    :param grid: cells per side ``G``.
    :param kwargs: the policy's own arguments (``option`` for random / centre / saliency).
    :raises ValueError: for an unknown name.
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown glimpse policy {name!r}; choose from {list_policies()}")
    return _REGISTRY[name](options, grid, **kwargs)
