"""Croppers: many glimpses from a batch of frames in one call, on the frames' device.

Both follow the geometry of :mod:`videofocus.models.glimpse`; pixel ``i`` covers ``[i, i + 1)``,
so a native-resolution crop on pixel edges reproduces the frame's pixels exactly.
:class:`PatchCropper` (``roi_align``) is fast and averages when downscaling;
:class:`DifferentiableCropper` (``grid_sample``) lets gradients flow to the centres.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn
from torchvision.ops import roi_align

from videofocus.models.glimpse import normalised_extents

__all__ = ["DifferentiableCropper", "PatchCropper"]


def _check_inputs(
    frames: torch.Tensor, frame_index: torch.Tensor, centres: torch.Tensor, extents: torch.Tensor
) -> None:
    if frames.ndim != 4:
        raise ValueError(f"frames must be [N, C, H, W], got {tuple(frames.shape)}")
    m = frame_index.shape[0]
    if frame_index.ndim != 1 or centres.shape != (m, 2) or extents.shape != (m,):
        raise ValueError(
            "expected frame_index [M], centres [M, 2], extents [M]; got "
            f"{tuple(frame_index.shape)}, {tuple(centres.shape)}, {tuple(extents.shape)}"
        )


class PatchCropper(nn.Module):
    """Crop ``M`` square glimpses from ``N`` frames with one ``roi_align`` call, whose adaptive
    sampling averages every input pixel a downscaled crop covers (an area filter).

    :param pixel_aligned: move every crop's corner to the nearest whole pixel first. Grid
        centres rarely fall on pixel edges, and a native-resolution crop at a sub-pixel offset
        blends neighbouring pixels, which flattens a texture a few pixels fine.
    """

    def __init__(self, pixel_aligned: bool = False) -> None:
        super().__init__()
        self.pixel_aligned = pixel_aligned

    def forward(
        self,
        frames: torch.Tensor,
        frame_index: torch.Tensor,
        centres: torch.Tensor,
        extents: torch.Tensor,
        resolution: int,
    ) -> torch.Tensor:
        """Return glimpses ``[M, C, resolution, resolution]``.

        :param frames: ``[N, C, H, W]``, float or uint8 (then the crops are float pixel values).
        :param frame_index: long ``[M]``, the frame each glimpse is cut from.
        :param centres: ``[M, 2]`` normalised ``(x, y)``; ``extents [M]`` fractions of
            ``min(H, W)``.
        """
        _check_inputs(frames, frame_index, centres, extents)
        h, w = frames.shape[-2:]
        dtype = frames.dtype if frames.is_floating_point() else torch.float32
        side = extents.to(dtype) * min(h, w)  # [M] pixels
        scale = torch.tensor([w, h], dtype=dtype, device=frames.device)
        centre_px = centres.to(dtype) * scale  # [M, 2]
        half = rearrange(side / 2, "m -> m 1")
        corner = centre_px - half  # [M, 2] (x1, y1)
        if self.pixel_aligned:
            corner = corner.round()
            centre_px = corner + half
        native = bool((side == resolution).all())
        # a tolerance for the rounding of grid centres at the frame's edges
        inside = bool((corner >= -1e-3).all() and (corner + half * 2 <= scale + 1e-3).all())
        if native and inside:
            corner = torch.minimum(corner.clamp(min=0), scale - side[:, None])
            return _native_crops(frames, frame_index, corner, resolution)
        # [M, 5]: (frame, x1, y1, x2, y2)
        boxes = torch.cat([frame_index.to(dtype)[:, None], corner, centre_px + half], dim=1)
        return roi_align(
            frames.to(dtype),
            boxes,
            output_size=resolution,
            spatial_scale=1.0,
            sampling_ratio=0,  # adaptive: see the class docstring
            aligned=True,  # pixel i's centre sits at i + 0.5, as in the geometry above
        )


def _native_crops(
    frames: torch.Tensor, frame_index: torch.Tensor, corner: torch.Tensor, side: int
) -> torch.Tensor:
    """What ``roi_align`` returns for native-resolution crops inside their frames, computed
    faster: every pixel of such a crop shares one sub-pixel offset, so the crop is the
    ``(side + 1)``-pixel window at the integer corner blended with fixed weights."""
    base = corner.floor()
    frac = corner - base  # [M, 2] (fx, fy)
    # on pixel edges (the dense baseline's whole frames, grid-aligned glimpses) the blend
    # weights are 0: the crops are the frames' own pixels, taken without the blend
    aligned = bool((frac == 0).all())
    window = _windows(frames, frame_index, base, side if aligned else side + 1).to(frac.dtype)
    if aligned:
        return window
    fx, fy = rearrange(frac, "m xy -> xy m 1 1 1")
    top = torch.lerp(window[..., :-1, :-1], window[..., :-1, 1:], fx)
    bottom = torch.lerp(window[..., 1:, :-1], window[..., 1:, 1:], fx)
    return torch.lerp(top, bottom, fy)


def _windows(
    frames: torch.Tensor, frame_index: torch.Tensor, base: torch.Tensor, size: int
) -> torch.Tensor:
    """The ``size``-pixel windows ``[M, C, size, size]`` at the integer corners ``base [M, 2]``;
    past the frame's far edge the last row / column repeats (it only ever gets weight 0)."""
    h, w = frames.shape[-2:]
    if frames.device.type == "cpu":
        # one slice per glimpse beats advanced indexing on the CPU
        windows = []
        starts = zip(frame_index.tolist(), base[:, 1].tolist(), base[:, 0].tolist(), strict=True)
        for n, y, x in starts:
            y, x = int(y), int(x)
            win = frames[n, :, y : y + size, x : x + size]
            if win.shape[-2:] != (size, size):
                win = F.pad(
                    win[None].float(),
                    (0, size - win.shape[-1], 0, size - win.shape[-2]),
                    mode="replicate",
                )[0].to(frames.dtype)
            windows.append(win)
        return torch.stack(windows)
    steps = torch.arange(size, device=frames.device)
    cols = (base[:, 0].long()[:, None] + steps).clamp(max=w - 1)  # [M, size]
    rows = (base[:, 1].long()[:, None] + steps).clamp(max=h - 1)
    # advanced indices around a slice: the result is [M, size, size, C]
    window = frames[frame_index[:, None, None], :, rows[:, :, None], cols[:, None, :]]
    return rearrange(window, "m y x c -> m c y x")


class DifferentiableCropper(nn.Module):
    """Crop glimpses by bilinear sampling, differentiable w.r.t. centres (and extents), averaging
    ``supersample`` points per output pixel and axis (about ``crop side / resolution`` avoids
    aliasing when downscaling)."""

    def __init__(self, supersample: int = 1) -> None:
        super().__init__()
        if supersample < 1:
            raise ValueError(f"supersample must be >= 1, got {supersample}")
        self.supersample = supersample

    def forward(
        self,
        frames: torch.Tensor,
        frame_index: torch.Tensor,
        centres: torch.Tensor,
        extents: torch.Tensor,
        resolution: int,
    ) -> torch.Tensor:
        """Return glimpses ``[M, C, resolution, resolution]``, arguments as in PatchCropper."""
        _check_inputs(frames, frame_index, centres, extents)
        h, w = frames.shape[-2:]
        span = normalised_extents(extents.to(frames.dtype), aspect=w / h)  # [M, 2] of (x, y)
        # affine_grid maps output coordinates in [-1, 1] to input coordinates in [-1, 1]:
        # x_in = span_x * x_out + (2 c_x - 1), likewise for y.
        offset = centres.to(frames.dtype) * 2 - 1
        theta = torch.cat([torch.diag_embed(span), offset[:, :, None]], dim=2)  # [M, 2, 3]
        size = resolution * self.supersample
        grid = F.affine_grid(theta, [len(frame_index), frames.shape[1], size, size], False)
        crops = F.grid_sample(frames[frame_index], grid, "bilinear", "border", align_corners=False)
        if self.supersample > 1:
            crops = F.avg_pool2d(crops, self.supersample)
        return crops
