"""Tests of the glimpse visualisation (boxes, drawing, GIF/MP4 files) and the trade-off plot."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image, ImageSequence

from videofocus.models.glimpse import GlimpseOption, actions_to_glimpses
from videofocus.viz import (
    OPTION_COLOURS,
    GlimpseTrace,
    draw_step,
    glimpse_boxes,
    option_colour,
    plot_tradeoff,
    render_trace,
    write_glimpse_video,
)
from videofocus.viz.tradeoff import label_offsets

OPTIONS = (GlimpseOption(0.5, 32), GlimpseOption(0.25, 16))
GRID = 3
HEIGHT, WIDTH = 64, 96
# step 2 skips; every glimpse centre sits below the text strip at the top of the frame
ACTIONS = np.array([[1, 0, 1], [2, 2, 2], [0, 1, 1], [1, 2, 2], [2, 0, 1], [1, 1, 2]])
GREY = 128


def _trace(exit_step: int | None = None) -> GlimpseTrace:
    read = len(ACTIONS) if exit_step is None else exit_step + 1
    names = ["cat", "dog", "dog", "dog", "horse", "horse"][:read]
    confidence = [0.3, 0.4, 0.45, 0.6, 0.7, 0.9][:read]
    return GlimpseTrace(ACTIONS, OPTIONS, GRID, names, confidence, exit_step=exit_step)


def _grey_frames(steps: int = len(ACTIONS), height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    return np.full((steps, height, width, 3), GREY, dtype=np.uint8)


def _outline(frame: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """Pixels ``[N, 3]`` of the outermost ring of ``box``."""
    x0, y0, x1, y1 = box
    return np.concatenate(
        [frame[y0:y1, x0], frame[y0:y1, x1 - 1], frame[y0, x0:x1], frame[y1 - 1, x0:x1]]
    )


def _has_colour(pixels: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    return np.all(pixels.reshape(-1, 3) == np.array(colour, dtype=np.uint8), axis=-1)


def _read_gif(path: Path) -> list[np.ndarray]:
    with Image.open(path) as gif:
        return [np.asarray(frame.convert("RGB")) for frame in ImageSequence.Iterator(gif)]


# -- geometry ----------------------------------------------------------------------------------


def test_glimpse_boxes_match_crop_geometry_on_non_square_frame() -> None:
    height, width, grid = 60, 100, 4
    options = (GlimpseOption(0.5, 32), GlimpseOption(0.3, 16))
    cells = torch.cartesian_prod(torch.arange(grid), torch.arange(grid))
    actions = torch.cat(
        [torch.tensor([[k]]).expand(len(cells), 1) for k in (1, 2)], dim=0
    )  # option per row
    actions = torch.cat([actions, cells.repeat(2, 1)], dim=1)  # [32, 3]
    boxes = glimpse_boxes(actions.numpy(), options, grid, height, width)
    _, centres, extents = actions_to_glimpses(actions[None], options, grid, aspect=width / height)
    side = extents[0].double() * min(height, width)  # [T] pixels
    cx = centres[0, :, 0].double() * width
    cy = centres[0, :, 1].double() * height
    expected = torch.stack([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], dim=1)
    got = torch.tensor(boxes, dtype=torch.float64)
    assert torch.all((got - expected).abs() <= 0.5 + 1e-6)
    assert torch.all(got >= 0)
    assert torch.all(got[:, [2, 3]] <= torch.tensor([width, height], dtype=torch.float64))
    # square in pixels, as the crop is, up to the rounding of each edge
    assert torch.all((got[:, 2] - got[:, 0] - (got[:, 3] - got[:, 1])).abs() <= 1)


def test_glimpse_boxes_full_extent_covers_square_frame_and_skips_are_none() -> None:
    options = (GlimpseOption(1.0, 32),)
    actions = np.array([[1, x, y] for x in range(3) for y in range(3)] + [[0, 2, 1]])
    boxes = glimpse_boxes(actions, options, 3, 48, 48)
    assert boxes[:-1] == [(0, 0, 48, 48)] * 9
    assert boxes[-1] is None


def test_glimpse_boxes_reject_bad_actions() -> None:
    with pytest.raises(ValueError, match="option out of range"):
        glimpse_boxes(np.array([[3, 0, 0]]), OPTIONS, GRID, HEIGHT, WIDTH)
    with pytest.raises(ValueError, match="frame size"):
        glimpse_boxes(ACTIONS, OPTIONS, GRID, 0, WIDTH)


# -- drawing -----------------------------------------------------------------------------------


def test_draw_step_outline_is_two_pixels_inside_the_box() -> None:
    frame = _grey_frames(1)[0]
    box = (30, 24, 62, 56)
    out = draw_step(frame, box, option=1, label="t=0 dog 40%", skipped=False)
    colour = option_colour(1)
    assert out.shape == frame.shape and out.dtype == np.uint8
    assert np.array_equal(frame, _grey_frames(1)[0])  # the input is left alone
    x0, y0, x1, y1 = box
    assert _has_colour(out[40, [x0, x0 + 1, x1 - 2, x1 - 1]], colour).all()
    assert not _has_colour(out[40, [x0 - 1, x0 + 2, x1 - 3, x1]], colour).any()
    assert (out[HEIGHT - 1, 0] == GREY).all()  # outside the box and the strip: untouched
    assert out[0:3, :].mean() < GREY / 2  # the text strip is dark


def test_draw_step_marks_skipped_and_exited_frames() -> None:
    frame = _grey_frames(1)[0]
    for kwargs in ({"skipped": True}, {"skipped": False, "exited": True}):
        out = draw_step(frame, (0, 0, 32, 32), option=0, label="t=1", **kwargs)
        assert out[HEIGHT - 1, WIDTH // 2].max() < GREY  # dimmed
        for colour in OPTION_COLOURS:  # no box drawn
            assert not _has_colour(out, colour).any()


def test_draw_step_rejects_bad_input() -> None:
    frame = _grey_frames(1)[0]
    with pytest.raises(ValueError, match="not inside"):
        draw_step(frame, (50, 10, WIDTH + 1, 40), option=0, label="", skipped=False)
    with pytest.raises(ValueError, match="uint8"):
        draw_step(frame.astype(np.float32), None, option=0, label="", skipped=True)


def test_render_trace_scales_frames_and_boxes() -> None:
    scale = 2
    trace = _trace()
    rendered = render_trace(_grey_frames(), trace, scale=scale)
    assert rendered.shape == (len(ACTIONS), HEIGHT * scale, WIDTH * scale, 3)
    boxes = glimpse_boxes(ACTIONS, OPTIONS, GRID, HEIGHT, WIDTH)
    for t, box in enumerate(boxes):
        if box is None:
            continue
        big = tuple(v * scale for v in box)
        assert _has_colour(_outline(rendered[t], big), option_colour(ACTIONS[t, 0] - 1)).all()


def test_render_trace_after_exit_has_no_boxes() -> None:
    rendered = render_trace(_grey_frames(), _trace(exit_step=3))
    for t in (4, 5):
        for colour in OPTION_COLOURS:
            assert not _has_colour(rendered[t], colour).any()
    assert _has_colour(rendered[3], option_colour(0)).any()


def test_trace_and_render_validation() -> None:
    with pytest.raises(ValueError, match="exit_step"):
        GlimpseTrace(ACTIONS, OPTIONS, GRID, ["a"] * 6, [0.5] * 6, exit_step=6)
    with pytest.raises(ValueError, match="one entry per step"):
        GlimpseTrace(ACTIONS, OPTIONS, GRID, ["a"] * 5, [0.5] * 5)
    with pytest.raises(ValueError, match="same length"):
        GlimpseTrace(ACTIONS, OPTIONS, GRID, ["a"] * 6, [0.5] * 5)
    with pytest.raises(ValueError, match=r"int \[T, 3\]"):
        GlimpseTrace(ACTIONS.astype(float), OPTIONS, GRID, ["a"] * 6, [0.5] * 6)
    with pytest.raises(ValueError, match="5 frames"):
        render_trace(_grey_frames(5), _trace())
    with pytest.raises(ValueError, match="scale"):
        render_trace(_grey_frames(), _trace(), scale=0)


# -- video files -------------------------------------------------------------------------------


def test_gif_has_one_frame_per_step_and_exact_box_colours(tmp_path: Path) -> None:
    trace = _trace()
    path = write_glimpse_video(tmp_path / "clip.gif", _grey_frames(), trace, fps=4.0)
    frames = _read_gif(path)
    assert len(frames) == len(ACTIONS)
    with Image.open(path) as gif:
        assert gif.info["loop"] == 0 and gif.info["duration"] == 250
    # few colours: the GIF is lossless
    assert np.array_equal(np.stack(frames), render_trace(_grey_frames(), trace))
    boxes = glimpse_boxes(ACTIONS, OPTIONS, GRID, HEIGHT, WIDTH)
    for t, (frame, box) in enumerate(zip(frames, boxes, strict=True)):
        if box is None:
            for colour in OPTION_COLOURS:
                assert not _has_colour(frame, colour).any(), f"step {t} is skipped"
            continue
        colour = option_colour(ACTIONS[t, 0] - 1)
        x0, y0, x1, y1 = box
        assert _has_colour(_outline(frame, box), colour).all()
        assert not _has_colour(frame[(y0 + y1) // 2, (x0 + x1) // 2], colour).any()
        assert not _has_colour(frame[HEIGHT - 1, 0 if x0 > 0 else WIDTH - 1], colour).any()


def test_gif_of_many_colour_frames_keeps_exact_overlay_colours(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (len(ACTIONS), HEIGHT, WIDTH, 3), dtype=np.uint8)
    path = write_glimpse_video(tmp_path / "noise.gif", frames, _trace())
    decoded = _read_gif(path)
    assert len(decoded) == len(ACTIONS)
    boxes = glimpse_boxes(ACTIONS, OPTIONS, GRID, HEIGHT, WIDTH)
    for t, box in enumerate(boxes):
        if box is not None:
            colour = option_colour(ACTIONS[t, 0] - 1)
            assert _has_colour(_outline(decoded[t], box), colour).all()


@pytest.mark.parametrize(("height", "width", "scale"), [(HEIGHT, WIDTH, 1), (45, 63, 1)])
def test_mp4_frame_count_and_even_size(tmp_path: Path, height: int, width: int, scale: int) -> None:
    path = write_glimpse_video(
        tmp_path / "clip.mp4", _grey_frames(height=height, width=width), _trace(), scale=scale
    )
    with av.open(str(path)) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(decoded) == len(ACTIONS)
    assert decoded[0].shape == (height + height % 2, width + width % 2, 3)


def test_write_glimpse_video_rejects_unknown_suffix(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"'\.avi'"):
        write_glimpse_video(tmp_path / "clip.avi", _grey_frames(), _trace())
    assert not (tmp_path / "clip.avi").exists()


# -- trade-off plot ----------------------------------------------------------------------------

ROWS = [
    {"name": "dense", "accuracy": 0.81, "gmacs_per_video": 40.0},
    {"name": "glance only", "accuracy": 0.52, "gmacs_per_video": 1.1},
    {"name": "lambda=1", "accuracy": 0.66, "gmacs_per_video": 3.0, "curve": "ppo"},
    {"name": "lambda=0.1", "accuracy": 0.78, "gmacs_per_video": 12.0, "curve": "ppo"},
    {"name": "lambda=0.5", "accuracy": 0.71, "gmacs_per_video": 5.0, "curve": "ppo"},
]


def test_plot_tradeoff_writes_png(tmp_path: Path) -> None:
    path = plot_tradeoff(ROWS, tmp_path / "plots" / "tradeoff.png", title="synthetic")
    assert path.stat().st_size > 1000
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size == (960, 720)
        pixels = np.asarray(image.convert("RGB"))
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 10  # something was drawn


def test_plot_tradeoff_linear_axis_without_curves_and_svg(tmp_path: Path) -> None:
    rows = [{"name": "a", "accuracy": 0.5, "gmacs_per_video": 2.0}]
    path = plot_tradeoff(rows, tmp_path / "one.svg", curve_key=None)
    assert path.read_text().lstrip().startswith("<?xml")


@pytest.mark.parametrize(
    ("rows", "match"),
    [
        ([], "at least one row"),
        ([{"name": "a", "accuracy": 0.5}], "gmacs_per_video"),
        ([{"name": "a", "accuracy": 1.5, "gmacs_per_video": 1.0}], r"accuracy must be in \[0, 1\]"),
        ([{"name": "a", "accuracy": 0.5, "gmacs_per_video": 0.0}], "must be positive"),
        ([{"name": "a", "accuracy": "high", "gmacs_per_video": 1.0}], "non-numeric"),
    ],
)
def test_plot_tradeoff_rejects_bad_rows(tmp_path: Path, rows: list, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        plot_tradeoff(rows, tmp_path / "bad.png")


def test_plot_tradeoff_rejects_unknown_suffix(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"'\.xyz'"):
        plot_tradeoff(ROWS, tmp_path / "plot.xyz")


def test_label_offsets_keep_names_of_nearby_points_apart() -> None:
    # three points at the same cost, 7 and 3 points apart (closer than a 7 pt name is tall),
    # a fourth far to the right at the height of the first
    anchors = [(100.0, 200.0), (100.0, 207.0), (100.0, 210.0), (400.0, 200.0)]
    names = ["saliency", "random", "differentiable", "dense"]
    rises = label_offsets(anchors, names, 7)
    height = 1.3 * 7
    bottoms = sorted(anchors[i][1] + rises[i] for i in range(3))
    assert all(b - a >= height for a, b in zip(bottoms, bottoms[1:], strict=False))
    assert rises[0] == 4.0 and rises[3] == 4.0  # the lowest and the far one stay put
    assert label_offsets([(0.0, 0.0), (0.0, 0.0)], ["a", "b"], 7)[1] >= height  # coinciding
