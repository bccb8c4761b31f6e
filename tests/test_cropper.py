"""Tests of glimpse geometry (options, grid centres, actions) and of the two croppers."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from videofocus.models.cropper import DifferentiableCropper, PatchCropper
from videofocus.models.glimpse import (
    GlimpseOption,
    actions_to_glimpses,
    dense_actions,
    grid_centres,
    skip_actions,
)

CROPPERS = [PatchCropper(), DifferentiableCropper()]


def _smooth_frames(n: int, h: int, w: int) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    channels = [torch.sin(3 * xs + 2 * ys), torch.cos(4 * ys - xs), xs * ys]
    frame = torch.stack(channels)
    return torch.stack([frame * (i + 1) for i in range(n)])


# -- geometry ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("extent", "resolution"), [(0.0, 8), (1.5, 8), (0.5, 0), (0.5, 2.5)])
def test_glimpse_option_validation(extent: float, resolution) -> None:
    with pytest.raises(ValueError, match="GlimpseOption"):
        GlimpseOption(extent, resolution)


def test_grid_centres_keep_glimpse_inside_frame() -> None:
    grid, extent = 4, 0.5
    cells = torch.cartesian_prod(torch.arange(grid), torch.arange(grid))
    centres = grid_centres(cells, grid, extent)
    assert (centres - extent / 2 >= -1e-6).all() and (centres + extent / 2 <= 1 + 1e-6).all()
    # cell i -> extent/2 + (i + 0.5)/G * (1 - extent): 0.3125 for i=0, 0.6875 for i=3
    torch.testing.assert_close(centres[0], torch.tensor([0.3125, 0.3125]))
    torch.testing.assert_close(centres[-1], torch.tensor([0.6875, 0.6875]))
    whole = grid_centres(cells, grid, 1.0)
    torch.testing.assert_close(whole, torch.full_like(whole, 0.5))


def test_grid_centres_wide_frame_uses_full_width() -> None:
    # On a 2:1 frame an extent of 0.5 (of the height) is 0.25 of the width.
    centres = grid_centres(torch.tensor([[0, 0], [1, 1]]), 2, 0.5, aspect=2.0)
    torch.testing.assert_close(centres[0], torch.tensor([0.125 + 0.25 * 0.75, 0.25 + 0.25 * 0.5]))
    torch.testing.assert_close(centres[1], torch.tensor([0.125 + 0.75 * 0.75, 0.25 + 0.75 * 0.5]))


def test_actions_to_glimpses() -> None:
    options = [GlimpseOption(0.5, 16), GlimpseOption(0.25, 8)]
    actions = torch.tensor([[[0, 1, 1], [1, 0, 1], [2, 2, 0]]])
    option_index, centres, extents = actions_to_glimpses(actions, options, grid=3)
    assert option_index.tolist() == [[-1, 0, 1]]
    torch.testing.assert_close(extents, torch.tensor([[1.0, 0.5, 0.25]]))
    torch.testing.assert_close(centres[0, 0], torch.tensor([0.5, 0.5]))  # skip placeholder
    expected = grid_centres(actions[0, 1:, 1:], 3, torch.tensor([0.5, 0.25]))
    torch.testing.assert_close(centres[0, 1:], expected)


@pytest.mark.parametrize("bad", [[[[3, 0, 0]]], [[[1, 3, 0]]], [[[-1, 0, 0]]], [[[1, 0]]]])
def test_actions_to_glimpses_rejects_bad_actions(bad) -> None:
    with pytest.raises(ValueError, match="actions|out of range"):
        actions_to_glimpses(torch.tensor(bad), [GlimpseOption(0.5, 8)] * 2, grid=3)


def test_baseline_actions() -> None:
    assert dense_actions(2, 3)[..., 0].eq(1).all() and dense_actions(2, 3).shape == (2, 3, 3)
    assert skip_actions(2, 3).eq(0).all()


# -- croppers ----------------------------------------------------------------------------------


@pytest.mark.parametrize("cropper", CROPPERS, ids=type)
def test_native_resolution_crop_equals_slice(cropper) -> None:
    torch.manual_seed(0)
    frames = torch.rand(3, 3, 40, 64)  # shorter side 40: extent 0.4 -> 16 px
    x0, y0, side = 30, 12, 16
    centres = torch.tensor([[(x0 + side / 2) / 64, (y0 + side / 2) / 40]])
    out = cropper(frames, torch.tensor([2]), centres, torch.tensor([0.4]), side)
    torch.testing.assert_close(
        out[0], frames[2, :, y0 : y0 + side, x0 : x0 + side], atol=1e-5, rtol=0
    )


def test_patch_cropper_downscale_averages_pixels() -> None:
    torch.manual_seed(0)
    frames = torch.rand(1, 3, 32, 32)
    centres = torch.tensor([[0.5, 0.5]])  # extent 0.5 -> pixels 8..24 on both axes
    out = PatchCropper()(frames, torch.tensor([0]), centres, torch.tensor([0.5]), 4)
    expected = F.avg_pool2d(frames[:, :, 8:24, 8:24], 4)
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize(("extent", "resolution"), [(0.5, 8), (0.25, 16), (0.8, 24)])
def test_croppers_agree_on_smooth_image(extent: float, resolution: int) -> None:
    frames = _smooth_frames(2, 48, 64)
    index, extents = torch.tensor([1, 0]), torch.full((2,), extent)
    centres = grid_centres(torch.tensor([[0, 2], [2, 1]]), 3, extents, aspect=64 / 48)
    supersample = max(1, round(extent * 48 / resolution))
    a = PatchCropper()(frames, index, centres, extents, resolution)
    b = DifferentiableCropper(supersample=supersample)(frames, index, centres, extents, resolution)
    assert a.shape == b.shape == (2, 3, resolution, resolution)
    torch.testing.assert_close(a, b, atol=2e-3, rtol=0)


def test_differentiable_cropper_has_gradient_wrt_centres() -> None:
    frames = _smooth_frames(2, 32, 32)
    centres = torch.tensor([[0.4, 0.6], [0.5, 0.5]], requires_grad=True)
    out = DifferentiableCropper()(
        frames, torch.tensor([0, 1]), centres, torch.tensor([0.5, 0.3]), 8
    )
    out.sum().backward()
    assert centres.grad is not None
    assert (centres.grad.abs() > 1e-4).all()


@pytest.mark.parametrize("cropper", CROPPERS, ids=type)
def test_batched_equals_one_by_one(cropper) -> None:
    torch.manual_seed(0)
    frames = torch.rand(4, 3, 48, 48)
    index = torch.tensor([3, 0, 3, 1, 2])
    centres = torch.rand(5, 2) * 0.5 + 0.25
    extents = torch.tensor([0.5, 0.3, 0.4, 0.5, 0.2])
    batched = cropper(frames, index, centres, extents, 12)
    single = torch.cat(
        [
            cropper(
                frames[i : i + 1], torch.tensor([0]), centres[m : m + 1], extents[m : m + 1], 12
            )
            for m, i in enumerate(index.tolist())
        ]
    )
    torch.testing.assert_close(batched, single, atol=1e-6, rtol=0)


def test_cropper_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="frame_index"):
        PatchCropper()(
            torch.rand(1, 3, 8, 8), torch.tensor([0, 0]), torch.rand(1, 2), torch.rand(2), 4
        )


@pytest.mark.parametrize("on_pixel_edges", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.uint8])
def test_native_resolution_fast_path_equals_roi_align(dtype, on_pixel_edges) -> None:
    """Native-resolution crops inside the frame (sub-pixel corners, frame edges included) take
    the four-window path, crops on pixel edges (the dense baseline's) plain slices; both must
    give roi_align's numbers, for float and uint8 frames."""
    from torchvision.ops import roi_align

    g = torch.Generator().manual_seed(3)
    frames = torch.randint(0, 256, (5, 3, 40, 56), generator=g).to(dtype)
    side = 16
    # corners anywhere in [0, size - side], including exactly at the right/bottom edges
    x1 = torch.rand(12, generator=g) * (56 - side)
    y1 = torch.rand(12, generator=g) * (40 - side)
    x1[:3], y1[:3] = torch.tensor([56.0 - side, 0.0, 56.0 - side]), torch.tensor([0.0, 24.0, 24.0])
    if on_pixel_edges:
        x1, y1 = x1.floor(), y1.floor()
    index = torch.randint(0, 5, (12,), generator=g)
    centres = torch.stack([(x1 + side / 2) / 56, (y1 + side / 2) / 40], dim=1)
    extents = torch.full((12,), side / 40)
    crops = PatchCropper()(frames, index, centres, extents, side)
    boxes = torch.cat(
        [
            index[:, None].float(),
            x1[:, None],
            y1[:, None],
            (x1 + side)[:, None],
            (y1 + side)[:, None],
        ],
        dim=1,
    )
    expected = roi_align(frames.float(), boxes, side, 1.0, 1, aligned=True)
    torch.testing.assert_close(crops, expected, atol=1e-3, rtol=1e-4)


@pytest.mark.parametrize("resolution", [24, 12])  # native, and downscaled 2x
def test_a_pixel_aligned_patch_cropper_cuts_at_the_nearest_whole_pixel(resolution) -> None:
    # 7x7 grid centres of a 24 px glimpse on a 48 px frame: corners 1.71 px apart, almost never
    # on a pixel edge; the plain cropper blends a 2 px checkerboard there, the aligned one cuts
    # the frame's own pixels at the rounded corner
    yy, xx = torch.meshgrid(torch.arange(48), torch.arange(48), indexing="ij")
    frames = ((xx + yy) % 2).float().expand(1, 3, 48, 48).contiguous()
    cells = torch.cartesian_prod(torch.arange(7), torch.arange(7))
    centres = grid_centres(cells, 7, 0.5)
    m = len(centres)
    args = (frames, torch.zeros(m, dtype=torch.long), centres, torch.full((m,), 0.5), resolution)
    aligned = PatchCropper(pixel_aligned=True)(*args)
    corners = (centres * 48 - 12).round().long()
    for crop, (x, y) in zip(aligned, corners.tolist(), strict=True):
        want = frames[0, :, y : y + 24, x : x + 24]
        if resolution != 24:
            want = F.avg_pool2d(want, 2)  # roi_align's area average of a 2x downscale
        torch.testing.assert_close(crop, want)
    if resolution == 24:
        blended = PatchCropper()(*args)
        assert (blended - blended.round()).abs().max() > 0.1  # the texture is washed out
