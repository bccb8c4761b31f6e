"""FocusNet: glance at every frame, look closely where the actions say, fuse over time.

Training, the RL episodes, evaluation and the batched inferencer share its step primitives:
``glance`` (the cheap pass the policy reads), ``glimpse_crops`` (grouped by option, so each
option's crops of all ``B * T`` frames take one cropper and one encoder call),
``local_encoder.pooled`` and ``fuse``; ``forward_from_glance`` chains the last three. The dense
baseline is :func:`dense_option` with :func:`dense_actions`, the glance-only one
:func:`skip_actions`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import torch
from einops import rearrange
from torch import nn

from videofocus.models.aggregator import Aggregator
from videofocus.models.cropper import DifferentiableCropper, PatchCropper
from videofocus.models.encoders import GlobalEncoder, LocalEncoder
from videofocus.models.glimpse import GlimpseOption, actions_to_glimpses

__all__ = ["FocusNet", "FocusOutput", "GlanceOutput", "create_focusnet"]

Cropper = PatchCropper | DifferentiableCropper


class GlanceOutput(NamedTuple):
    """Glance feature maps ``[B, T, C, h, w]`` and pooled features ``[B, T, C]``."""

    maps: torch.Tensor
    pooled: torch.Tensor


class FocusOutput(NamedTuple):
    """Everything one pass of :class:`FocusNet` computes.

    :ivar logits: fused per-step logits ``[B, T, num_classes]``; step ``t`` sees steps ``<= t``.
    :ivar glance_logits: glance-only logits ``[B, T, num_classes]``.
    :ivar local_logits: glimpse-only logits ``[B, T, num_classes]``, zero where skipped.
    :ivar local_features: pooled glimpse features ``[B, T, D]``, zero where skipped.
    :ivar option_index: long ``[B, T]``, ``-1`` where skipped, else the 0-based option.
    :ivar hidden: aggregator state after the last step, to continue with the next chunk.
    :ivar auxiliary: a second pass on other glimpses that training also scores (the
        differentiable baseline's random-glimpse branch); None otherwise.
    :ivar macs_over_table: float64 ``[B, T]``, the MACs each step's glimpse spent beyond the
        static cost table's price (input-dependent backbones such as SAR's; zero where
        skipped); None when every glimpse costs what the table says.
    """

    logits: torch.Tensor
    glance_logits: torch.Tensor
    local_logits: torch.Tensor
    local_features: torch.Tensor
    option_index: torch.Tensor
    glance: GlanceOutput
    hidden: torch.Tensor
    auxiliary: FocusOutput | None = None
    macs_over_table: torch.Tensor | None = None


class FocusNet(nn.Module):
    """Glance encoder + cropper + glimpse encoder + aggregator. ``local_encoder`` must have the
    same ``options`` (action option ``k >= 1`` is ``options[k - 1]``) and the aggregator be sized
    for both encoders; ``grid`` is the cells per side of the grid of glimpse centres."""

    def __init__(
        self,
        global_encoder: GlobalEncoder,
        local_encoder: LocalEncoder,
        aggregator: Aggregator,
        options: Sequence[GlimpseOption],
        grid: int,
        cropper: Cropper,
    ) -> None:
        super().__init__()
        self.options = tuple(options)
        if local_encoder.options != self.options:
            raise ValueError("local_encoder.options differ from the FocusNet options")
        dims = (aggregator.glance_dim, aggregator.local_dim, aggregator.num_options)
        expected = (global_encoder.num_features, local_encoder.feature_dim, len(self.options))
        if dims != expected:
            raise ValueError(
                f"aggregator sized (glance_dim, local_dim, num_options)={dims}, "
                f"encoders and options need {expected}"
            )
        if grid < 1:
            raise ValueError(f"grid must be >= 1, got {grid}")
        self.global_encoder = global_encoder
        self.local_encoder = local_encoder
        self.aggregator = aggregator
        self.grid = grid
        self.cropper = cropper
        self._frozen: tuple[str, ...] = ()

    def freeze(self, *names: str) -> None:
        """Freeze the named child modules: no gradients, and eval mode whatever ``train()`` says
        (so BatchNorm statistics of a frozen part never drift)."""
        children = dict(self.named_children())
        unknown = [n for n in names if n not in children]
        if unknown:
            raise ValueError(f"cannot freeze unknown modules {unknown}; have {sorted(children)}")
        for name in names:
            children[name].requires_grad_(False)
        self._frozen = tuple(dict.fromkeys((*self._frozen, *names)))
        self.train(self.training)

    def freeze_encoders(self, train_local: bool) -> None:
        """Freeze the glance encoder, and the local encoder too unless ``train_local`` (how every
        fine-tune on a warm-up model's glance trains)."""
        self.freeze("global_encoder", *(() if train_local else ("local_encoder",)))

    def train(self, mode: bool = True) -> FocusNet:
        """Set train/eval mode; frozen parts (:meth:`freeze`) always stay in eval mode."""
        super().train(mode)
        for name in self._frozen:
            getattr(self, name).eval()
        return self

    @property
    def num_options(self) -> int:
        """Number ``K`` of glimpse options (the action's option ranges over ``0..K``)."""
        return len(self.options)

    def glance(self, frames: torch.Tensor) -> GlanceOutput:
        """The cheap pass: glance features of float, normalised frames ``[B, T, 3, H, W]``."""
        b = frames.shape[0]
        out = self.global_encoder(rearrange(frames, "b t c h w -> (b t) c h w"))
        return GlanceOutput(
            rearrange(out.map, "(b t) c h w -> b t c h w", b=b),
            rearrange(out.pooled, "(b t) c -> b t c", b=b),
        )

    def glance_prediction(self, glance: GlanceOutput) -> torch.Tensor:
        """The glance-only head's video prediction, logits ``[B, num_classes]``: each frame's
        glance logits (the head the warm-up trains at every step) averaged over the frames, as the
        warm-up's validation scores it (``glance_top1``). The glance exit reads it before any
        policy step or glimpse."""
        return self.aggregator.glance_head(glance.pooled).mean(dim=1)  # [B, T, C] -> [B, C]

    def glimpse_crops(
        self, frames: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, list[tuple[int, torch.Tensor, torch.Tensor]]]:
        """The crop step: ``option_index [B, T]`` and, per option used, ``(k, rows, crops)``.

        :param frames: ``[B, T, 3, H, W]``, normalised float or uint8 (the crop keeps the range).
        :param actions: long ``[B, T, 3]`` of ``(option, cell_x, cell_y)``.
        :returns: ``rows`` index the ``B * T`` flattened frames looked at with option ``k``;
            ``crops`` are their glimpses ``[len(rows), 3, r_k, r_k]``.
        """
        b, t, _, h, w = frames.shape
        if actions.shape[:2] != (b, t):
            raise ValueError(f"actions {tuple(actions.shape)} do not match frames [B={b}, T={t}]")
        option_index, centres, extents = actions_to_glimpses(
            actions, self.options, self.grid, aspect=w / h
        )
        flat_frames = rearrange(frames, "b t c h w -> (b t) c h w")
        flat_option = rearrange(option_index, "b t -> (b t)")
        flat_centres = rearrange(centres, "b t xy -> (b t) xy")
        flat_extents = rearrange(extents, "b t -> (b t)")
        groups = []
        for k, option in enumerate(self.options):
            rows = torch.nonzero(flat_option == k).squeeze(1)  # frames looked at with option k
            if rows.numel():
                crops = self.cropper(
                    flat_frames, rows, flat_centres[rows], flat_extents[rows], option.resolution
                )
                groups.append((k, rows, crops))
        return option_index, groups

    def local_features(
        self,
        frames: torch.Tensor,
        actions: torch.Tensor,
        crop_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Pooled glimpse features ``[B, T, D]`` (zero where skipped) and ``option_index [B, T]``
        of frames ``[B, T, 3, H, W]`` under ``actions [B, T, 3]``.

        :param frames: normalised float frames, or raw ones with ``crop_transform``.
        :param crop_transform: applied to every option's crops before the glimpse encoder, e.g.
            the pixel normalisation of uint8 frames: it then touches the crops' pixels only.
        """
        local, option_index, _ = self._glimpses(frames, actions, crop_transform)
        return local, option_index

    def _glimpses(
        self,
        frames: torch.Tensor,
        actions: torch.Tensor,
        crop_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """:meth:`local_features` and the MACs ``[B, T]`` spent beyond the cost table's price
        (None: every glimpse costs what the table says)."""
        b, t = frames.shape[:2]
        option_index, groups = self.glimpse_crops(frames, actions)
        dim = self.local_encoder.feature_dim
        if not groups:  # every frame skipped
            dtype = frames.dtype if frames.is_floating_point() else torch.float32
            return frames.new_zeros(b, t, dim, dtype=dtype), option_index, None
        feats, over = [], []
        for k, _, crops in groups:
            if crop_transform is not None:
                crops = crop_transform(crops)
            feats.append(self.local_encoder.pooled(crops, k))
            over.append(self.local_encoder.macs_over_table(k))
        rows = torch.cat([rows for _, rows, _ in groups])
        # Out-of-place index_copy keeps autograd happy and leaves skipped rows at zero.
        local = feats[0].new_zeros(b * t, dim).index_copy(0, rows, torch.cat(feats))
        extra = None
        if any(o is not None for o in over):
            parts = [
                torch.zeros(len(r), dtype=torch.float64) if o is None else o.cpu().double()
                for o, (_, r, _) in zip(over, groups, strict=True)
            ]
            flat = torch.zeros(b * t, dtype=torch.float64).index_copy(
                0, rows.cpu(), torch.cat(parts)
            )
            extra = rearrange(flat, "(b t) -> b t", b=b)
        return rearrange(local, "(b t) d -> b t d", b=b), option_index, extra

    def fuse(
        self,
        glance: GlanceOutput,
        local: torch.Tensor,
        option_index: torch.Tensor,
        hidden: torch.Tensor | None = None,
    ) -> FocusOutput:
        """The aggregate step: per-step logits from the :meth:`glance`, the pooled glimpse
        features ``local [B, T, D]`` and ``option_index [B, T]`` (``-1``: skipped), continuing
        from ``hidden`` (a previous chunk's aggregator state) when given."""
        agg = self.aggregator
        skipped = rearrange(option_index < 0, "b t -> b t 1")
        fused = agg(glance.pooled, local, option_index, hidden)
        return FocusOutput(
            logits=fused.logits,
            glance_logits=agg.glance_head(glance.pooled),
            local_logits=agg.local_head(local).masked_fill(skipped, 0.0),
            local_features=local,
            option_index=option_index,
            glance=glance,
            hidden=fused.hidden,
        )

    def forward_from_glance(
        self,
        frames: torch.Tensor,
        glance: GlanceOutput,
        actions: torch.Tensor,
        hidden: torch.Tensor | None = None,
    ) -> FocusOutput:
        """Glimpses and fused logits of ``frames`` under ``actions``, reusing their already
        computed :meth:`glance` (``hidden`` as in :meth:`fuse`)."""
        local, option_index, extra = self._glimpses(frames, actions)
        return self.fuse(glance, local, option_index, hidden)._replace(macs_over_table=extra)

    def forward(
        self, frames: torch.Tensor, actions: torch.Tensor, hidden: torch.Tensor | None = None
    ) -> FocusOutput:
        """Glance, glimpses and fused logits of frames ``[B, T, 3, H, W]`` under ``actions``."""
        return self.forward_from_glance(frames, self.glance(frames), actions, hidden)


def create_focusnet(
    num_classes: int,
    glance_backbone: str,
    glance_resolution: int,
    options: Sequence[GlimpseOption],
    local_backbone: str,
    grid: int,
    hidden: int,
    *,
    local_feature_dim: int | None = None,
    glance_backbone_kw: Mapping[str, Any] | None = None,
    local_backbone_kw: Mapping[str, Any] | None = None,
    per_backbone_kw: Mapping[str, Mapping[str, Any]] | None = None,
    differentiable_crop: bool = False,
    pixel_aligned: bool = False,
) -> FocusNet:
    """Build a :class:`FocusNet` from plain arguments.

    :param options: glimpse options (``[dense_option(frame_size)]`` for the dense baseline).
    :param hidden: aggregator GRU width.
    :param glance_backbone_kw: :func:`create_backbone` arguments of the glance backbone;
        ``local_backbone_kw`` of every glimpse backbone, ``per_backbone_kw`` by backbone name.
    :param differentiable_crop: crop with :class:`DifferentiableCropper`, else
        :class:`PatchCropper`.
    :param pixel_aligned: the :class:`PatchCropper` cuts at whole-pixel corners.
    """
    global_encoder = GlobalEncoder(glance_backbone, glance_resolution, **(glance_backbone_kw or {}))
    local_encoder = LocalEncoder(
        options, local_backbone, local_feature_dim, per_backbone_kw, **(local_backbone_kw or {})
    )
    aggregator = Aggregator(
        global_encoder.num_features, local_encoder.feature_dim, hidden, num_classes, len(options)
    )
    cropper: Cropper = (
        DifferentiableCropper() if differentiable_crop else PatchCropper(pixel_aligned)
    )
    return FocusNet(global_encoder, local_encoder, aggregator, options, grid, cropper)
