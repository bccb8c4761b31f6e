"""``videofocus viz``: boxes drawn where the actions say, one frame per step, early exit, errors."""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image, ImageSequence

from videofocus.cli import main
from videofocus.cli.viz import add_arguments as viz_arguments
from videofocus.inference.model import load_inference_model
from videofocus.io.errors import VideoDecodeError
from videofocus.viz import command
from videofocus.viz.drawing import OPTION_COLOURS, glimpse_boxes, option_colour

T, SIZE = 4, 48  # the tiny_data clips: 4 frames, 48 px


# float reductions, hence trained weights and exact numbers, depend on the thread count
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def viz_yaml(tmp_path, tiny_data, tiny_config) -> Path:
    """The tiny config on ``tiny_data``, as ``viz.yaml``."""
    return tiny_config.write(tmp_path / "viz.yaml", tiny_data, tmp_path / "runs", name="viz_test")


def _video(data: Path) -> Path:
    return sorted((data / "videos").glob("*.mp4"))[0]


def _read_gif(path: Path) -> list[np.ndarray]:
    with Image.open(path) as gif:
        return [np.asarray(frame.convert("RGB")) for frame in ImageSequence.Iterator(gif)]


def _outline(frame: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """Pixels ``[N, 3]`` of the outermost ring of ``box`` (x1, y1 exclusive)."""
    x0, y0, x1, y1 = box
    return np.concatenate(
        [frame[y0:y1, x0], frame[y0:y1, x1 - 1], frame[y0, x0:x1], frame[y1 - 1, x0:x1]]
    )


def _has_colour(pixels: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    return np.all(pixels.reshape(-1, 3) == np.array(colour, dtype=np.uint8), axis=-1)


@pytest.mark.parametrize("policy", ["centre", "random"])
def test_boxes_are_drawn_where_the_actions_say(tmp_path, tiny_data, viz_yaml, policy) -> None:
    model = load_inference_model(config=viz_yaml, policy=policy)
    torch.manual_seed(0)
    out = tmp_path / "sub" / f"{policy}.gif"
    trace = command.render_glimpses(model, _video(tiny_data), out)

    frames = _read_gif(out)
    scale = math.ceil(command.MIN_SIDE / SIZE)
    assert len(frames) == T == trace.steps
    assert frames[0].shape == (SIZE * scale, SIZE * scale, 3)
    assert trace.exit_step is None and len(trace.top1) == len(trace.confidence) == T
    assert set(trace.top1) <= set(model.class_names)
    assert all(0.0 < c <= 1.0 for c in trace.confidence)
    # the heuristics glimpse every frame with the last option by default
    assert (trace.actions[:, 0] == model.net.num_options).all()
    if policy == "centre":
        assert (trace.actions[:, 1:] == model.net.grid // 2).all()

    boxes = glimpse_boxes(trace.actions, model.net.options, model.net.grid, SIZE, SIZE)
    for t, (frame, box) in enumerate(zip(frames, boxes, strict=True)):
        assert box is not None
        scaled = tuple(v * scale for v in box)
        colour = option_colour(int(trace.actions[t, 0]) - 1)
        assert _has_colour(_outline(frame, scaled), colour).all(), f"step {t}"
        # the ring just outside the box is not the outline (unless it is the frame's border)
        x0, y0, x1, y1 = scaled
        if x0 > 0 and y0 > 0 and x1 < frame.shape[1] and y1 < frame.shape[0]:
            outside = _outline(frame, (x0 - 1, y0 - 1, x1 + 1, y1 + 1))
            assert not _has_colour(outside, colour).all()


def test_early_exit_marks_the_remaining_frames_exited(tmp_path, tiny_data, viz_yaml) -> None:
    model = load_inference_model(config=viz_yaml, policy="centre")
    out = tmp_path / "exit.gif"
    trace = command.render_glimpses(model, _video(tiny_data), out, scale=2, thresholds=[0.0])

    assert trace.exit_step == 0 and len(trace.top1) == 1
    assert (trace.actions[1:] == 0).all()  # never glimpsed
    frames = _read_gif(out)
    assert len(frames) == T and frames[0].shape == (2 * SIZE, 2 * SIZE, 3)
    first_box = glimpse_boxes(trace.actions, model.net.options, model.net.grid, SIZE, SIZE)[0]
    colour = option_colour(int(trace.actions[0, 0]) - 1)
    assert _has_colour(_outline(frames[0], tuple(2 * v for v in first_box)), colour).all()
    for frame in frames[1:]:  # dimmed, tagged "exited": no glimpse colour anywhere
        for option_rgb in OPTION_COLOURS:
            assert not _has_colour(frame, option_rgb).any()


def test_undecodable_video_raises_naming_the_file(tmp_path, tiny_data, viz_yaml) -> None:
    model = load_inference_model(config=viz_yaml, policy="centre")
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video\n")
    for video in (bad, tmp_path / "missing.mp4"):
        with pytest.raises(VideoDecodeError) as err:
            command.render_glimpses(model, video, tmp_path / "x.gif")
        assert err.value.path == str(video) and str(video) in str(err.value)
        assert not (tmp_path / "x.gif").exists()
    with pytest.raises(ValueError, match="use .gif or .mp4"):
        command.render_glimpses(model, _video(tiny_data), tmp_path / "x.png")


def _args(argv: list[str]) -> argparse.Namespace:
    # `videofocus viz` parses with exactly these arguments
    parser = argparse.ArgumentParser(prog="videofocus viz")
    viz_arguments(parser)
    return parser.parse_args(argv)


def test_viz_from_the_command_line(tmp_path, tiny_data, viz_yaml) -> None:
    out = tmp_path / "g.gif"
    argv = [
        sys.executable,
        "-m",
        "videofocus.cli",
        "viz",
        str(_video(tiny_data)),
        "--config",
        str(viz_yaml),
        "--out",
        str(out),
        "--policy",
        "saliency",
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"wrote {out} (saliency)")
    with Image.open(out) as gif:
        assert gif.n_frames == T


def test_command_writes_an_mp4_and_says_what_it_did(tmp_path, tiny_data, viz_yaml, capsys) -> None:
    config, out = viz_yaml, tmp_path / "glimpses.mp4"
    argv = [str(_video(tiny_data)), "model.grid=5", "--config", str(config), "--out", str(out)]
    argv += ["--policy", "centre", "--option", "1", "--fps", "4"]
    assert command.run(_args(argv)) == 0
    captured = capsys.readouterr()
    assert "RANDOM WEIGHTS" in captured.err
    line = captured.out.strip()
    assert line.startswith(f"wrote {out} (centre): {T} steps ({T} read)")
    assert f"#1: {T}, #2: 0; 0 skipped; top-1 '" in line
    with av.open(str(out)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == T and frames[0].shape[:2] == (288, 288)

    missing = [str(tmp_path / "missing.mp4"), "--config", str(config), "--out", str(out)]
    assert main(["viz", *missing]) == 2  # failures are one line, from the videofocus command
    assert "missing.mp4: file not found" in capsys.readouterr().err
    wrong = [str(_video(tiny_data)), "--config", str(config), "--out", str(tmp_path / "a.avi")]
    assert main(["viz", *wrong]) == 2
    with pytest.raises(SystemExit):
        _args([str(_video(tiny_data)), "--out", str(out)])  # --checkpoint or --config needed
