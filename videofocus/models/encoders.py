"""Glance and glimpse encoders: feature maps and their spatial means. :class:`GlobalEncoder` sees
whole frames at the glance resolution, :class:`LocalEncoder` glimpses (a backbone per option's
backbone name, AR-Net style)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from videofocus.models.backbones import Backbone, create_backbone
from videofocus.models.glimpse import GlimpseOption

__all__ = ["EncoderOutput", "GlobalEncoder", "LocalEncoder"]


def channels_last(images: torch.Tensor) -> torch.Tensor:
    """Images ``[N, 3, H, W]`` in channels-last memory order, the layout oneDNN and cuDNN
    convolve fastest (same values, other strides)."""
    return images.contiguous(memory_format=torch.channels_last)


class EncoderOutput(NamedTuple):
    """Feature map ``[N, C, h, w]`` and its spatial mean ``[N, D]``."""

    map: torch.Tensor
    pooled: torch.Tensor


class GlobalEncoder(nn.Module):
    """The glance network: whole frames resized (bilinear, antialiased) to a low square
    ``resolution``; ``backbone_kw`` are :func:`create_backbone` arguments."""

    def __init__(self, backbone: str, resolution: int, **backbone_kw: Any) -> None:
        super().__init__()
        if resolution <= 0:
            raise ValueError(f"glance resolution must be positive, got {resolution}")
        self.backbone = create_backbone(backbone, **backbone_kw)
        self.resolution = resolution
        self.num_features: int = self.backbone.num_features
        self.to(memory_format=torch.channels_last)

    def resize(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames ``[N, 3, H, W]`` resized to ``[N, 3, r, r]`` (no-op when already that size)."""
        size = (self.resolution, self.resolution)
        if frames.shape[-2:] == size:
            return frames
        return F.interpolate(frames, size, mode="bilinear", align_corners=False, antialias=True)

    def features(self, frames: torch.Tensor) -> torch.Tensor:
        """Glance feature map ``[N, C, h, w]`` of float, normalised frames ``[N, 3, H, W]``."""
        return self.backbone.forward_features(channels_last(self.resize(frames)))

    def forward(self, frames: torch.Tensor) -> EncoderOutput:
        """Both the map and the pooled vector, from one backbone pass."""
        fmap = self.features(frames)
        return EncoderOutput(fmap, fmap.mean(dim=(-2, -1)))


class LocalEncoder(nn.Module):
    """The glimpse network: one backbone per distinct backbone name among the options.

    Pooled features share one width ``feature_dim``; an option gets a linear projection only
    where its backbone's width differs from it (None: the backbones' common width, unprojected).

    :param options: the glimpse options, in action order (action option ``k`` is ``options[k-1]``).
    :param default_backbone: backbone name for options whose ``backbone`` is None.
    :param backbone_kw: arguments of :func:`create_backbone` for every backbone.
    :param per_backbone_kw: extra arguments per backbone name, overriding ``backbone_kw``.
    """

    def __init__(
        self,
        options: Sequence[GlimpseOption],
        default_backbone: str,
        feature_dim: int | None = None,
        per_backbone_kw: Mapping[str, Mapping[str, Any]] | None = None,
        **backbone_kw: Any,
    ) -> None:
        super().__init__()
        if not options:
            raise ValueError("LocalEncoder needs at least one GlimpseOption")
        self.options = tuple(options)
        names = [o.backbone or default_backbone for o in self.options]
        # ModuleDict keys cannot hold "." (timm names do), so backbones live in a list + index.
        self.backbone_names: list[str] = list(dict.fromkeys(names))
        self.backbones = nn.ModuleList(
            create_backbone(name, **{**backbone_kw, **(per_backbone_kw or {}).get(name, {})})
            for name in self.backbone_names
        )
        self._backbone_of_option = [self.backbone_names.index(n) for n in names]
        widths = [self.backbones[i].num_features for i in self._backbone_of_option]
        if feature_dim is None:
            if len(set(widths)) > 1:
                raise ValueError(
                    f"glimpse backbones {self.backbone_names} have different widths {widths}; "
                    "give feature_dim to project them to one width"
                )
            feature_dim = widths[0]
        self.feature_dim: int = feature_dim
        self.projections = nn.ModuleList(
            nn.Identity() if width == feature_dim else nn.Linear(width, feature_dim)
            for width in widths
        )
        self.to(memory_format=torch.channels_last)

    def backbone(self, option_index: int) -> Backbone:
        """The backbone that encodes glimpses of option ``option_index`` (0-based)."""
        if not 0 <= option_index < len(self.options):
            raise IndexError(
                f"option_index {option_index} out of range for {len(self.options)} glimpse options"
            )
        return self.backbones[self._backbone_of_option[option_index]]

    def pooled(self, glimpses: torch.Tensor, option_index: int) -> torch.Tensor:
        """Feature vector ``[M, feature_dim]`` of one option's glimpses ``[M, 3, r, r]``: the
        backbone's map, spatially averaged, then projected."""
        fmap = self.backbone(option_index).forward_features(channels_last(glimpses))
        return self.projections[option_index](fmap.mean(dim=(-2, -1)))

    def macs_over_table(self, option_index: int) -> torch.Tensor | None:
        """Per glimpse of the last :meth:`pooled` call of this option, the MACs spent beyond the
        static cost table's price (:meth:`Backbone.macs_over_table`); None: the table is exact."""
        return self.backbone(option_index).macs_over_table()
