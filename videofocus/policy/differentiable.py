"""The non-RL baseline: a glimpse policy trained end to end through a differentiable crop.

AdaFocusV2's idea: if the glimpse is cut out by bilinear interpolation, the classification loss
has a gradient with respect to the glimpse *centre*, so the policy can be trained with the
recognition network by back-propagation instead of reinforcement learning.

:class:`DifferentiableGlimpsePolicy` regresses one continuous centre per frame for **one fixed
glimpse option** from the glance maps; :class:`DifferentiableFocusNet` crops there, so the loss
trains the policy with the local encoder and the aggregator. The policy reads the frozen glance
maps without gradient (AdaFocusV2's stop-gradient), so the glance network is never pulled towards
maps that are easy to regress centres from.

AdaFocusV2's recipe for letting the centres move on fine textures: a smoothed-frame gradient
(``blur``), an auxiliary branch on random glimpses (``random_branch``) and a lower learning rate
for the policy (the stage's ``lr_mult``). Evaluation keeps the continuous centres and bilinear
crop; crops are interpolation, not MACs, so the cost per video equals ``roi_align``'s.
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
from videofocus.policy.focusnet import _PolicyDriven
from videofocus.policy.heuristics import GlimpsePolicy
from videofocus.policy.heuristics.saliency import saliency_map

__all__ = ["DifferentiableFocusNet", "DifferentiableGlimpsePolicy"]


#: How :class:`DifferentiableGlimpsePolicy` turns its features into centres.
CENTRE_HEADS = ("regress", "soft_argmax", "saliency_prior")


class DifferentiableGlimpsePolicy(GlimpsePolicy):
    """Continuous glimpse centres ``[B, T, 2]`` for one glimpse option, from glance maps.

    ``[B, T, C, h, w] -> 1x1 conv (C -> channels) -> ReLU -> flatten (c h w) -> Linear -> ReLU
    -> GRU over T -> Linear -> 2 -> sigmoid -> [e/2, 1 - e/2]`` per axis (``e`` the option's
    normalised extent), so a glimpse never leaves the (square) frame. With ``head="soft_argmax"``
    the GRU's output instead adds to a score per glance-map cell (a 1x1 conv of the cell's own
    features) and the centre is the softmax-weighted mean of the cells' positions, clamped to
    that range: a shift of every score cancels, so no shared bias drives every centre into a
    saturated corner. ``head="saliency_prior"`` is the same soft-argmax with a prior added to
    the scores: the channel-summed glance map (the ``saliency`` heuristic's), standardised per
    frame and scaled by a learned sharpness (initially ``prior_scale``: a sharp start saturates
    the softmax, whose gradient then vanishes), so training starts from soft saliency rather than
    the frame centre (AdaFocusV2's point that the policy needs a non-degenerate start) and the
    crop's gradient corrects it. ``option`` (``1..K``) is a persistent buffer, so a checkpoint
    says which option its centres are for; ``grid`` is used only by the snapped :meth:`act`.
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
        head: str = "regress",
        prior_scale: float = 2.0,
    ) -> None:
        super().__init__(options, grid)
        self._check_option(option)
        if head not in CENTRE_HEADS:
            raise ValueError(f"head must be one of {', '.join(CENTRE_HEADS)}, got {head!r}")
        self.head_kind = head
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
        # regress: two numbers; soft_argmax: a score per glance-map cell (from the cell's own
        # features and the GRU's memory), the centre their softmax-weighted mean position
        self.head = nn.Linear(hidden, 2 if head == "regress" else h * w)
        self.cell_score = nn.Conv2d(in_channels, 1, kernel_size=1) if head != "regress" else None
        self.prior_scale = (
            nn.Parameter(torch.tensor(float(prior_scale))) if head == "saliency_prior" else None
        )
        # Zero output layers: every centre starts at the frame centre (the ``centre`` heuristic),
        # and the first updates move it by the crop's gradient, not by a random initial offset.
        for layer in (self.head, self.cell_score):
            if layer is not None:
                nn.init.zeros_(layer.weight)
                nn.init.zeros_(layer.bias)

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
        """Normalised glimpse centres ``[B, T, 2]`` (x, y) for glance maps ``[B, T, C, h, w]``."""
        if maps.ndim != 5 or tuple(maps.shape[2:]) != (self.in_channels, *self.map_hw):
            expected = (self.in_channels, *self.map_hw)
            raise ValueError(f"glance maps must be [B, T, {expected}], got {tuple(maps.shape)}")
        b = maps.shape[0]
        x = F.relu(self.reduce(rearrange(maps, "b t c h w -> (b t) c h w")))
        x = F.relu(self.project(rearrange(x, "n c h w -> n (c h w)")))
        x = rearrange(x, "(b t) d -> b t d", b=b)
        x, _ = self.gru(x)
        span = self.span(maps.device).to(x.dtype)
        if self.cell_score is None:
            unit = torch.sigmoid(self.head(x))  # [B, T, 2] in (0, 1)
            return span / 2 + unit * (1.0 - span)
        h, w = self.map_hw
        own = self.cell_score(rearrange(maps, "b t c h w -> (b t) c h w"))
        scores = rearrange(own, "(b t) 1 h w -> b t (h w)", b=b) + self.head(x)
        if self.prior_scale is not None:
            prior = rearrange(saliency_map(maps.float()), "b t h w -> b t (h w)")
            mean, std = prior.mean(dim=-1, keepdim=True), prior.std(dim=-1, keepdim=True)
            scores = scores + self.prior_scale * (prior - mean) / (std + 1e-6)
        ys, xs = torch.meshgrid(
            (torch.arange(h, device=maps.device, dtype=x.dtype) + 0.5) / h,
            (torch.arange(w, device=maps.device, dtype=x.dtype) + 0.5) / w,
            indexing="ij",
        )
        cells = torch.stack([xs.flatten(), ys.flatten()], dim=-1)  # [h*w, 2] (x, y)
        centres = scores.softmax(dim=-1) @ cells  # [B, T, 2]: a bias on every cell cancels
        return torch.minimum(torch.maximum(centres, span / 2), 1.0 - span / 2)

    def snap(self, centres: torch.Tensor) -> torch.Tensor:
        """Grid cells ``[..., 2]`` whose glimpse centres lie nearest to ``centres`` per axis."""
        return nearest_cells(centres, self.grid, self.extent)

    @torch.no_grad()
    def act(self, glance: GlanceOutput, generator: torch.Generator | None = None) -> torch.Tensor:
        """Grid actions ``[B, T, 3]``: the policy's option at the cells nearest its centres."""
        cells = self.snap(self.centres(glance.maps))
        option = torch.full_like(cells[..., :1], self.option)
        return torch.cat([option, cells], dim=-1)


class DifferentiableFocusNet(_PolicyDriven):
    """A FocusNet whose glimpses a :class:`DifferentiableGlimpsePolicy` places, cropped so that
    the loss reaches the policy (``net``, ``policy``, ``train_local`` as in
    :class:`~videofocus.policy.focusnet.PolicyFocusNet`).

    :param supersample: the :class:`DifferentiableCropper`'s sample points per output pixel and
        axis (about crop side / resolution).
    :param blur: sigma in pixels of the smoothed frame the centres' gradient is taken through
        in training (0: the sharp crop's own gradient). At native resolution a fine texture makes
        the sharp crop's loss periodic in the offset, so its gradient only restores pixel
        alignment; the smoothed crop's varies smoothly and reaches a little past the crop's edge.
    :param jitter: sigma in pixels of Gaussian noise added to the centres in training, the
        gradient taken at the jittered centre: over steps this follows the gradient of the loss
        averaged over nearby offsets, which is smooth where the loss itself repeats with a fine
        texture's period (0: none).
    :param random_branch: in training, also read every clip at uniformly random centres and
        return that pass as the output's ``auxiliary`` (its loss keeps the local network learning
        from every part of the frame while the policy is poor).
    :param pixel_aligned: cut every crop's values at the centre moved to the nearest whole-pixel
        corner (in training and evaluation) while the centres' gradient is taken at the exact
        centre (straight-through): a bilinear crop at a sub-pixel offset blends neighbouring
        pixels, which washes out a texture a few pixels fine, so the forward pass stays sharp.
    """

    def __init__(
        self,
        net: FocusNet,
        policy: DifferentiableGlimpsePolicy,
        train_local: bool = True,
        supersample: int = 1,
        blur: float = 0.0,
        random_branch: bool = False,
        jitter: float = 0.0,
        pixel_aligned: bool = False,
    ) -> None:
        super().__init__(net, policy, train_local, DifferentiableCropper(supersample))
        self.blur = blur
        self.random_branch = random_branch
        self.jitter = jitter
        self.pixel_aligned = pixel_aligned

    def _crop(self, frames: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
        """Crops ``[B*T, 3, r, r]`` of the policy's option at ``centres`` ``[B*T, 2]``; with
        ``blur`` in training, sharp values with the smoothed crop's gradient (straight-through)."""
        option = self.options[self.policy.option - 1]
        rows = torch.arange(len(frames), device=frames.device)
        extents = frames.new_full((len(frames),), option.extent)

        def crop(images: torch.Tensor, at: torch.Tensor) -> torch.Tensor:
            return self.cropper(images, rows, at, extents, option.resolution)

        size = frames.new_tensor(frames.shape[-1:-3:-1])  # (W, H) in pixels, as (x, y)
        if self.training and self.jitter > 0 and centres.requires_grad:
            centres = centres + torch.randn_like(centres) * self.jitter / size
        sharp_at = centres.detach()
        if self.pixel_aligned:
            side = option.extent * min(frames.shape[-2:])
            corner = (sharp_at * size - side / 2).round()
            sharp_at = (torch.minimum(corner.clamp(min=0), size - side) + side / 2) / size
        smoothed = self.training and self.blur > 0 and centres.requires_grad
        if not (self.pixel_aligned or smoothed):
            return crop(frames, centres)  # values and gradient at the exact centre
        if not centres.requires_grad:
            return crop(frames, sharp_at)
        images = frames
        if smoothed:
            radius = max(1, math.ceil(3 * self.blur))
            # fp32, outside autocast: under CPU bf16 autocast the depthwise blur of channels-last
            # frames takes a slow path (minutes per batch), and it only smooths the input
            with torch.autocast(frames.device.type, enabled=False):
                images = TF.gaussian_blur(frames.float(), [2 * radius + 1] * 2, [self.blur] * 2)
        # straight-through: the values of the sharp crop, the gradient of ``images``' crop at
        # the exact centre
        through = crop(images, centres)
        return crop(frames, sharp_at) + (through - through.detach())

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
        """Glimpses of the policy's option at normalised ``centres`` ``[B, T, 2]`` (gradients
        flow back to them) of frames ``[B, T, 3, H, W]`` whose :meth:`glance` is given."""
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
        """The policy's continuous glimpses where ``actions`` are placeholders (options < 0, the
        engine's ``policy_chooses``), else the given grid actions, of frames ``[B, T, 3, H, W]``."""
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
