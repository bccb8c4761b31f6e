"""The non-RL baseline: a glimpse policy trained end to end through a differentiable crop.

AdaFocusV2's idea: if the glimpse is cut out by bilinear interpolation, the classification loss
has a gradient with respect to the glimpse *centre*, so the policy can be trained with the
recognition network by back-propagation instead of reinforcement learning.

- :class:`DifferentiableGlimpsePolicy` reads the glance maps of a clip (a 1x1 convolution, the
  map flattened with its layout kept, a linear layer, optionally a GRU over the steps) and
  regresses one continuous centre per frame for **one fixed glimpse option**. A sigmoid maps the
  output onto ``[e/2, 1 - e/2]`` per axis (``e`` the option's normalised extent), the range of
  :func:`~videofocus.models.glimpse.grid_centres`, so a glimpse never leaves the frame. The
  output layer starts at zero: before training every glimpse is centred (the ``centre``
  heuristic). Its :meth:`~DifferentiableGlimpsePolicy.act` snaps the centres to the nearest
  grid cell per axis, which makes it a regular
  :class:`~videofocus.policy.heuristics.GlimpsePolicy` for the ``roi_align`` pipeline.
- :class:`DifferentiableFocusNet` is a :class:`~videofocus.models.FocusNet` that takes those
  continuous centres (:meth:`~DifferentiableFocusNet.forward_at`) and crops with
  :class:`~videofocus.models.DifferentiableCropper`, so the loss trains the policy through the
  crop together with the local encoder and the aggregator. As in the RL fine-tune stage the
  glance encoder is frozen, and the policy reads its maps without gradient (AdaFocusV2's
  stop-gradient on the glance features): the glance network is never pulled towards maps that
  are easy to regress centres from.

AdaFocusV2's recipe, meant to let the centres move on fine textures (it does not reliably do so
yet: docs/benchmarks.md, "Differentiable baseline"):

- *a gradient that sees past the texture*: at native resolution a texture of period p makes the
  crop's loss repeat every p pixels of offset, so the sharp crop's centre gradient only pulls the
  glimpse back to pixel alignment, and a target outside the crop gives none. With ``blur`` > 0
  the forward pass keeps the sharp crop, but the centres' gradient is taken through the same
  crop of a copy of the frame smoothed with that sigma (a straight-through estimator), which
  varies smoothly with the offset and reaches a little beyond the crop's edge;
- *an auxiliary branch on random glimpses* (``random_branch``): in training every clip is also
  read at uniformly random centres and the two losses are averaged, so the local network keeps
  learning from every part of the frame while the policy is still poor;
- *a lower learning rate for the policy network* (the stage's ``lr_mult``).

Evaluation keeps the continuous centres and the bilinear crop the model was trained with (the
engine's ``differentiable`` stage); crops are interpolation, not MACs, so the cost per video is
the same as with ``roi_align``. The snapped variant (:meth:`DifferentiableGlimpsePolicy.act`)
exists for label-time pipelines built on grid actions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
from einops import rearrange
from torch import nn

from videofocus.models.cropper import DifferentiableCropper
from videofocus.models.focusnet import FocusNet, FocusOutput, GlanceOutput
from videofocus.models.glimpse import GlimpseOption, nearest_cells, normalised_extents
from videofocus.policy.heuristics import GlimpsePolicy

__all__ = ["DifferentiableFocusNet", "DifferentiableGlimpsePolicy"]


class DifferentiableGlimpsePolicy(GlimpsePolicy):
    """Continuous glimpse centres ``[B, T, 2]`` for one glimpse option, from glance maps.

    ``[B, T, C, h, w] -> 1x1 conv (C -> channels) -> ReLU -> flatten (c h w) -> Linear -> ReLU
    -> GRU over T -> Linear -> 2 -> sigmoid -> [e/2, 1 - e/2]``; the GRU lets a centre depend on
    earlier frames. Frames are square (the training stages' clips).

    The option is a (persistent) buffer, so a checkpoint says which option its centres are for.

    :param options: the model's glimpse options.
    :param grid: cells per side ``G`` (used only by the snapped :meth:`act`).
    :param option: the action option (``1..K``) every glimpse takes.
    :param in_channels: channels ``C`` of the glance maps.
    :param map_hw: ``(h, w)`` of the glance maps.
    :param channels: output channels of the 1x1 convolution.
    :param hidden: width of the feature vector (and of the GRU).
    """

    option_buffer: torch.Tensor

    def __init__(
        self,
        options: Sequence[GlimpseOption],
        grid: int,
        option: int,
        in_channels: int,
        map_hw: tuple[int, int],
        channels: int = 8,
        hidden: int = 64,
    ) -> None:
        super().__init__(options, grid)
        self._check_option(option)
        h, w = map_hw
        if min(in_channels, channels, hidden, h, w) <= 0:
            raise ValueError(
                f"need positive sizes, got in_channels={in_channels}, map_hw={map_hw}, "
                f"channels={channels}, hidden={hidden}"
            )
        self.in_channels = in_channels
        self.map_hw = (h, w)
        self.register_buffer("option_buffer", torch.tensor(option, dtype=torch.long))
        self.reduce = nn.Conv2d(in_channels, channels, kernel_size=1, bias=False)
        self.project = nn.Linear(channels * h * w, hidden)
        self.gru = nn.GRU(hidden, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 2)
        # Zero output layer: every centre starts at the frame centre, and the first updates
        # move it by the crop's gradient rather than by a random initial offset (small random
        # output weights, tried for a "non-degenerate" start, left the centres nearly still on
        # tests/test_differentiable.py's corner task).
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    @property
    def option(self) -> int:
        """The action option (``1..K``) of every glimpse."""
        return int(self.option_buffer)

    @property
    def extent(self) -> float:
        """Extent (fraction of the shorter side) of the policy's glimpse option."""
        return self.options[self.option - 1].extent

    def span(self, device: torch.device | None = None) -> torch.Tensor:
        """Normalised per-axis extents ``[2]`` (x, y) of one glimpse."""
        return normalised_extents(torch.tensor(self.extent, device=device))

    def centres(self, maps: torch.Tensor) -> torch.Tensor:
        """Normalised glimpse centres ``[B, T, 2]`` (x, y) for glance maps ``[B, T, C, h, w]``.

        Each centre lies in ``[e/2, 1 - e/2]`` per axis, so the glimpse stays inside the frame.
        """
        if maps.ndim != 5 or tuple(maps.shape[2:]) != (self.in_channels, *self.map_hw):
            expected = (self.in_channels, *self.map_hw)
            raise ValueError(f"glance maps must be [B, T, {expected}], got {tuple(maps.shape)}")
        b = maps.shape[0]
        x = F.relu(self.reduce(rearrange(maps, "b t c h w -> (b t) c h w")))
        x = F.relu(self.project(rearrange(x, "n c h w -> n (c h w)")))
        x = rearrange(x, "(b t) d -> b t d", b=b)
        x, _ = self.gru(x)
        unit = torch.sigmoid(self.head(x))  # [B, T, 2] in (0, 1)
        span = self.span(maps.device).to(unit.dtype)
        return span / 2 + unit * (1.0 - span)

    def snap(self, centres: torch.Tensor) -> torch.Tensor:
        """Grid cells ``[..., 2]`` whose glimpse centres lie nearest to ``centres`` per axis."""
        return nearest_cells(centres, self.grid, self.extent)

    @torch.no_grad()
    def act(self, glance: GlanceOutput, generator: torch.Generator | None = None) -> torch.Tensor:
        """Grid actions ``[B, T, 3]``: the policy's option at the cells nearest its centres."""
        cells = self.snap(self.centres(glance.maps))
        option = torch.full_like(cells[..., :1], self.option)
        return torch.cat([option, cells], dim=-1)


class DifferentiableFocusNet(FocusNet):
    """A FocusNet whose glimpses a :class:`DifferentiableGlimpsePolicy` places, cropped so that
    the loss reaches the policy.

    ``forward(frames, actions)`` lets the policy choose where every option of ``actions`` is
    negative (the engine's ``policy_chooses`` placeholders, option ``-1``) and otherwise takes
    the given grid actions. The glance encoder is frozen and stays in eval mode under
    ``train()``; with ``train_local=False`` the local encoder is frozen the same way.

    :param net: the model whose modules this one takes over (e.g. the warm-up model).
    :param policy: the centre policy; its options and grid must be the model's.
    :param train_local: whether the local encoder trains.
    :param supersample: the :class:`DifferentiableCropper`'s sample points per output pixel and
        axis (about crop side / resolution; 1 when glimpses keep full resolution).
    :param blur: sigma in pixels of the smoothed frame the centres' gradient is taken through
        in training (0: the sharp crop's own gradient).
    :param random_branch: in training, also read every clip at random centres and return that
        pass as the output's ``auxiliary``.
    """

    def __init__(
        self,
        net: FocusNet,
        policy: DifferentiableGlimpsePolicy,
        train_local: bool = True,
        supersample: int = 1,
        blur: float = 0.0,
        random_branch: bool = False,
    ) -> None:
        super().__init__(
            net.global_encoder,
            net.local_encoder,
            net.aggregator,
            net.options,
            net.grid,
            DifferentiableCropper(supersample),
        )
        if policy.options != self.options or policy.grid != self.grid:
            raise ValueError("the policy acts on other glimpse options or another grid")
        self.policy = policy
        self.blur = blur
        self.random_branch = random_branch
        self.freeze("global_encoder", *(() if train_local else ("local_encoder",)))

    def _crop(self, frames: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
        """Crops ``[B*T, 3, r, r]`` of the policy's option at ``centres`` ``[B*T, 2]``; in
        training with ``blur`` their gradient with respect to the centres is the smoothed
        frame's (the values stay the sharp crop's)."""
        option = self.options[self.policy.option - 1]
        rows = torch.arange(len(frames), device=frames.device)
        extents = frames.new_full((len(frames),), option.extent)

        def crop(images: torch.Tensor, at: torch.Tensor) -> torch.Tensor:
            return self.cropper(images, rows, at, extents, option.resolution)

        if not (self.training and self.blur > 0 and centres.requires_grad):
            return crop(frames, centres)
        radius = max(1, math.ceil(3 * self.blur))
        smooth = TF.gaussian_blur(frames, [2 * radius + 1] * 2, [self.blur] * 2)
        soft = crop(smooth, centres)
        return crop(frames, centres.detach()) + (soft - soft.detach())

    def random_centres(self, b: int, t: int, device: torch.device) -> torch.Tensor:
        """Uniformly random centres ``[B, T, 2]`` of the policy's option (inside the frame)."""
        span = self.policy.span(device)
        return span / 2 + torch.rand(b, t, 2, device=device) * (1.0 - span)

    def forward_at(
        self,
        frames: torch.Tensor,
        glance: GlanceOutput,
        centres: torch.Tensor,
        hidden: torch.Tensor | None = None,
    ) -> FocusOutput:
        """Glimpses of the policy's option at continuous ``centres`` and the fused logits.

        :param frames: float, normalised frames ``[B, T, 3, H, W]``.
        :param glance: :meth:`glance` of the same frames.
        :param centres: normalised ``(x, y)`` ``[B, T, 2]``; gradients flow back to them.
        :param hidden: aggregator state from a previous chunk of steps, or None.
        """
        b, t = frames.shape[:2]
        if centres.shape != (b, t, 2):
            raise ValueError(f"centres must be [B={b}, T={t}, 2], got {tuple(centres.shape)}")
        k = self.policy.option - 1
        crops = self._crop(
            rearrange(frames, "b t c h w -> (b t) c h w"),
            rearrange(centres, "b t xy -> (b t) xy"),
        )
        local = rearrange(self.local_encoder.pooled(crops, k), "(b t) d -> b t d", b=b)
        option_index = torch.full((b, t), k, dtype=torch.long, device=frames.device)
        return self.fuse(glance, local, option_index, hidden)

    def forward(
        self, frames: torch.Tensor, actions: torch.Tensor, hidden: torch.Tensor | None = None
    ) -> FocusOutput:
        """The policy's continuous glimpses where ``actions`` are placeholders (options < 0),
        else the given grid actions, of frames ``[B, T, 3, H, W]``."""
        with torch.no_grad():
            glance = self.glance(frames)
        chosen = actions[..., 0] < 0
        if bool(chosen.all()):
            out = self.forward_at(frames, glance, self.policy.centres(glance.maps), hidden)
            if self.training and self.random_branch:
                b, t = frames.shape[:2]
                at = self.random_centres(b, t, frames.device)
                out = out._replace(auxiliary=self.forward_at(frames, glance, at, hidden))
            return out
        if bool(chosen.any()):
            raise ValueError("actions mix policy placeholders with given glimpses")
        return self.forward_from_glance(frames, glance, actions, hidden)
