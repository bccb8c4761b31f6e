"""normalise_pixels: ImageNet statistics per channel, for uint8 and float pixels alike."""

from __future__ import annotations

import torch

from videofocus.data.transforms import IMAGENET_MEAN, IMAGENET_STD, normalise_pixels


def test_black_and_white_map_to_the_imagenet_statistics():
    pixels = torch.zeros(2, 3, 4, 5, dtype=torch.uint8)
    pixels[1] = 255
    out = normalise_pixels(pixels)
    assert out.dtype == torch.float32 and out.shape == pixels.shape
    for c, (mean, std) in enumerate(zip(IMAGENET_MEAN, IMAGENET_STD, strict=True)):
        torch.testing.assert_close(out[0, c], torch.full((4, 5), -mean / std))
        torch.testing.assert_close(out[1, c], torch.full((4, 5), (1 - mean) / std))


def test_float_pixels_give_the_same_values_and_stay_untouched():
    raw = torch.randint(0, 256, (6, 3, 8, 8), dtype=torch.uint8)
    floats = raw.float()  # what a crop of uint8 frames holds
    copy = floats.clone()
    assert torch.equal(normalise_pixels(floats), normalise_pixels(raw))
    assert torch.equal(floats, copy)  # the in-place steps work on a fresh tensor
