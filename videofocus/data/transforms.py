"""Clip transforms: every frame of a clip gets the same resize, crop and flip.

The decoder yields ``uint8 [T, H, W, 3]``; :class:`ToFloatCHW` turns that into the
``float [T, 3, H, W]`` layout the spatial transforms and models expect. A typical pipeline::

    torchvision.transforms.v2.Compose([
        ToFloatCHW(), Resize(128), RandomCrop(112), RandomHorizontalFlip(), Normalize(MEAN, STD)
    ])

Random transforms draw from torch's global generator; :class:`~videofocus.data.dataset.ClipDataset`
seeds it per item, so augmentations do not depend on the number of DataLoader workers.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torchvision.transforms.v2.functional as F
from einops import rearrange
from torch import nn

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "normalise_pixels",
    "CenterCrop",
    "Normalize",
    "RandomCrop",
    "RandomHorizontalFlip",
    "Resize",
    "ToFloatCHW",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalise_pixels(pixels: torch.Tensor) -> torch.Tensor:
    """Pixel values 0..255 (uint8 or float, channels at dim -3) -> ImageNet-normalised float32.

    The one normalisation of training, evaluation, the RL episodes and the batched inferencer
    (which applies it to glance inputs and crops only), as one multiply-add per value.
    """
    std = torch.tensor(IMAGENET_STD, device=pixels.device).view(3, 1, 1)
    mean = torch.tensor(IMAGENET_MEAN, device=pixels.device).view(3, 1, 1)
    return pixels.float() * (1.0 / (255.0 * std)) - mean / std


def _check_chw(clip: torch.Tensor, name: str) -> None:
    # A channels-last clip would be cropped along W and the channel axis without any error.
    if clip.ndim < 3 or clip.shape[-3] not in (1, 3):
        raise ValueError(
            f"{name} expects a [..., C, H, W] clip with C in (1, 3), got shape {tuple(clip.shape)};"
            " apply ToFloatCHW first"
        )


def _pair(size: int | Sequence[int], name: str) -> tuple[int, int]:
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    if h < 1 or w < 1:
        raise ValueError(f"{name} size must be positive, got {size}")
    return int(h), int(w)


def _check_fits(clip: torch.Tensor, h: int, w: int, name: str) -> None:
    if clip.shape[-2] < h or clip.shape[-1] < w:
        raise ValueError(
            f"{name}: crop {h}x{w} does not fit in frames of {clip.shape[-2]}x{clip.shape[-1]};"
            " resize first"
        )


class ToFloatCHW(nn.Module):
    """``uint8 [T, H, W, 3]`` -> ``float32 [T, 3, H, W]`` in ``[0, 1]``."""

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        if clip.ndim != 4 or clip.shape[-1] != 3:
            raise ValueError(
                f"ToFloatCHW expects uint8 [T, H, W, 3], got shape {tuple(clip.shape)}"
            )
        if clip.dtype != torch.uint8:
            raise ValueError(f"ToFloatCHW expects uint8 frames, got {clip.dtype}")
        return rearrange(clip, "t h w c -> t c h w").float().div_(255.0)


class Normalize(nn.Module):
    """Subtract ``mean`` and divide by ``std`` per channel of a float ``[T, C, H, W]`` clip.

    :param mean: per-channel means (e.g. :data:`IMAGENET_MEAN`).
    :param std: per-channel standard deviations, all positive.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        if len(mean) != len(std) or any(s <= 0 for s in std):
            raise ValueError(f"need one positive std per mean, got mean={mean}, std={std}")
        self.mean = [float(m) for m in mean]
        self.std = [float(s) for s in std]

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        _check_chw(clip, "Normalize")
        return F.normalize(clip, self.mean, self.std)

    def extra_repr(self) -> str:
        return f"mean={self.mean}, std={self.std}"


class Resize(nn.Module):
    """Resize every frame: an ``int`` sets the short side (aspect kept), ``(h, w)`` sets both.

    :param size: the short side, or the output ``(height, width)``.
    :param antialias: low-pass filter when shrinking (torchvision's default; matches PIL).
    """

    def __init__(self, size: int | Sequence[int], antialias: bool = True) -> None:
        super().__init__()
        self.size = [int(size)] if isinstance(size, int) else list(_pair(size, "Resize"))
        if self.size[0] < 1:
            raise ValueError(f"Resize size must be positive, got {size}")
        self.antialias = antialias

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        _check_chw(clip, "Resize")
        return F.resize(clip, self.size, antialias=self.antialias)

    def extra_repr(self) -> str:
        return f"size={self.size}, antialias={self.antialias}"


class CenterCrop(nn.Module):
    """Crop the centre ``size`` (``int`` for a square, or ``(h, w)``) of every frame."""

    def __init__(self, size: int | Sequence[int]) -> None:
        super().__init__()
        self.size = _pair(size, "CenterCrop")

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        _check_chw(clip, "CenterCrop")
        _check_fits(clip, *self.size, "CenterCrop")
        return F.center_crop(clip, list(self.size))

    def extra_repr(self) -> str:
        return f"size={self.size}"


class RandomCrop(nn.Module):
    """Crop one random ``size`` window (``int`` or ``(h, w)``), the same for every frame."""

    def __init__(self, size: int | Sequence[int]) -> None:
        super().__init__()
        self.size = _pair(size, "RandomCrop")

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        _check_chw(clip, "RandomCrop")
        h, w = self.size
        _check_fits(clip, h, w, "RandomCrop")
        top = int(torch.randint(0, clip.shape[-2] - h + 1, ()))
        left = int(torch.randint(0, clip.shape[-1] - w + 1, ()))
        return F.crop(clip, top, left, h, w)

    def extra_repr(self) -> str:
        return f"size={self.size}"


class RandomHorizontalFlip(nn.Module):
    """Mirror the whole clip left-right with probability ``p``."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {p}")
        self.p = p

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        _check_chw(clip, "RandomHorizontalFlip")
        if torch.rand(()) < self.p:
            return F.horizontal_flip(clip)
        return clip

    def extra_repr(self) -> str:
        return f"p={self.p}"
