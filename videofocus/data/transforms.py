"""Pixel normalisation shared by the loaders, the RL episodes and the batched inferencer.

The clip transform of training and evaluation is :class:`~videofocus.data.loaders.SquareClip`.
"""

from __future__ import annotations

import torch

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "normalise_pixels"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalise_pixels(pixels: torch.Tensor) -> torch.Tensor:
    """Pixel values 0..255 (uint8 or float, channels at dim -3) -> ImageNet-normalised float32.

    The one normalisation of training, evaluation, the RL episodes and the batched inferencer
    (which applies it to glance inputs and crops only), as one multiply-add per value.
    """
    std = torch.tensor(IMAGENET_STD, device=pixels.device).view(3, 1, 1)
    mean = torch.tensor(IMAGENET_MEAN, device=pixels.device).view(3, 1, 1)
    scale, shift = 1.0 / (255.0 * std), mean / std
    # one fresh tensor, then in place: each new large CPU tensor costs page faults
    out = pixels * scale if pixels.is_floating_point() else pixels.float().mul_(scale)
    return out.sub_(shift)
