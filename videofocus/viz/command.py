"""``videofocus viz``: draw the glimpses a model takes on one video, as a GIF or an MP4 (the
options and what it draws: :mod:`videofocus.cli.viz`)."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch
from einops import rearrange

from videofocus.data.loaders import frames_to_input
from videofocus.inference.inferencer import InferenceOptions, VideoPrediction
from videofocus.inference.model import InferenceModel, load_inference_model
from videofocus.io.errors import VideoDecodeError
from videofocus.labeling.decoding import LabelClips
from videofocus.labeling.inputs import LabelItem
from videofocus.viz import MIN_SIDE
from videofocus.viz.drawing import GlimpseTrace
from videofocus.viz.glimpse_video import check_suffix, write_glimpse_video

__all__ = ["describe_trace", "prediction_trace", "render_glimpses", "run"]


def prediction_trace(
    prediction: VideoPrediction, model: InferenceModel, steps: int
) -> GlimpseTrace:
    """The :class:`GlimpseTrace` of ``model``'s prediction on a clip of ``steps`` frames; steps
    after an early exit are recorded as skips (and drawn as exited)."""
    actions = torch.zeros(steps, 3, dtype=torch.long)
    actions[: prediction.steps_read] = prediction.actions
    exited = prediction.exit_step < steps - 1
    return GlimpseTrace(
        actions=actions.numpy(),
        options=model.net.options,
        grid=model.net.grid,
        top1=[model.class_names[c] for c in prediction.step_top1],
        confidence=list(prediction.step_confidence),
        exit_step=prediction.exit_step if exited else None,
    )


def render_glimpses(
    model: InferenceModel,
    video: str | Path,
    out: str | Path,
    *,
    fps: float = 2.0,
    scale: int | None = None,
    thresholds: list[float] | None = None,
) -> GlimpseTrace:
    """Run ``model`` on one video (its clip sampled as for labeling) and write its glimpses,
    step by step, to ``out`` (``.gif`` or ``.mp4``); returns the trace drawn.

    :param scale: integer upscale; None: the smallest that makes the short side :data:`MIN_SIDE`.
    :raises VideoDecodeError: the video is missing or cannot be decoded (naming the file).
    """
    video, out = Path(video), Path(out)
    check_suffix(out)
    item = LabelItem(id=video.name, path=video.absolute())
    clip = LabelClips([item], model.cfg.data)[0]
    if clip["error"] is not None:
        raise VideoDecodeError(video, clip["error"].removeprefix(f"{item.path}: "))
    frames = clip["frames"]  # uint8 [T, 3, S, S]
    inferencer = model.inferencer(InferenceOptions(chunk_steps=1, thresholds=thresholds))
    prediction = inferencer.predict(frames_to_input(frames[None], inferencer.device))[0]
    trace = prediction_trace(prediction, model, steps=frames.shape[0])
    if scale is None:
        scale = max(1, math.ceil(MIN_SIDE / min(frames.shape[-2:])))
    pixels = rearrange(frames, "t c h w -> t h w c").numpy()
    write_glimpse_video(out, pixels, trace, fps=fps, scale=scale)
    return trace


def describe_trace(trace: GlimpseTrace, num_options: int) -> str:
    """One line: steps read, glimpses per option, skips, final top-1 and its confidence."""
    read = trace.steps if trace.exit_step is None else trace.exit_step + 1
    taken = trace.actions[:read, 0]
    per_option = ", ".join(f"#{k}: {int((taken == k).sum())}" for k in range(1, num_options + 1))
    exit_note = "" if trace.exit_step is None else f", exited at step {trace.exit_step}"
    return (
        f"{trace.steps} steps ({read} read{exit_note}); glimpses per option {per_option}; "
        f"{int((taken == 0).sum())} skipped; top-1 {trace.top1[read - 1]!r} at "
        f"{trace.confidence[read - 1]:.1%}"
    )


def run(args: argparse.Namespace) -> int:
    """Load the model, draw the video's glimpses, print one line saying what was written."""
    out = Path(args.out)
    check_suffix(out)  # before the model loads; errors are one line (videofocus.exit_status)
    model = load_inference_model(
        args.checkpoint, args.config, args.overrides, policy=args.policy, option=args.option
    )
    if model.random_weights:
        print(
            "WARNING: RANDOM WEIGHTS - no checkpoint given; the glimpses and labels drawn are "
            "those of an untrained model (use this to check a config or the drawing only)",
            file=sys.stderr,
        )
    trace = render_glimpses(
        model, args.video, out, fps=args.fps, scale=args.scale, thresholds=args.thresholds
    )
    print(f"wrote {out} ({model.method}): {describe_trace(trace, model.net.num_options)}")
    return 0
