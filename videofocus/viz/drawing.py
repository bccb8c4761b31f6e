"""Draw what a glimpse policy did on the frames of one clip. Boxes come from the croppers'
geometry (:mod:`videofocus.models.glimpse`): each is the crop the local encoder saw."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from einops import repeat
from PIL import Image, ImageDraw

from videofocus.models.glimpse import GlimpseOption, actions_to_glimpses, normalised_extents

__all__ = [
    "OPTION_COLOURS",
    "GlimpseTrace",
    "draw_step",
    "glimpse_boxes",
    "option_colour",
    "render_trace",
]

Box = tuple[int, int, int, int]

#: RGB outline colours of the glimpse options (cycled): saturated hues, the first three unlike
#: the synthetic benchmark's marker colours (red, blue, cyan, yellow).
OPTION_COLOURS: tuple[tuple[int, int, int], ...] = (
    (255, 60, 255),
    (60, 255, 60),
    (255, 150, 0),
    (255, 48, 48),
    (40, 150, 255),
    (0, 230, 230),
)
#: colours of the text and of the status tags other than a glimpse's
TEXT_COLOUR = (255, 255, 255)
SKIP_COLOUR = (200, 200, 200)
EXITED_COLOUR = (255, 150, 60)

_OUTLINE_WIDTH = 2
_MARGIN = 2  # pixels around the text inside the strip


@dataclass(frozen=True, eq=False)  # eq=False: a generated __eq__ cannot compare arrays
class GlimpseTrace:
    """What one clip's roll-out did, step by step.

    :param actions: int ``[T, 3]`` of ``(option, cell_x, cell_y)`` (option 0 skips the frame).
    :param top1: running top-1 class name (and ``confidence``, its probability) per step read.
    :param exit_step: 0-based step at which the prediction exited early, or None.
    """

    actions: np.ndarray
    options: tuple[GlimpseOption, ...]
    grid: int
    top1: list[str]
    confidence: list[float]
    exit_step: int | None = None

    def __post_init__(self) -> None:
        actions = np.asarray(self.actions)
        if actions.ndim != 2 or actions.shape[1] != 3 or actions.dtype.kind not in "iu":
            raise ValueError(
                f"GlimpseTrace.actions must be int [T, 3], got {actions.dtype} {actions.shape}"
            )
        object.__setattr__(self, "actions", actions.astype(np.int64))
        object.__setattr__(self, "options", tuple(self.options))
        steps = len(actions)
        if self.exit_step is not None and not 0 <= self.exit_step < steps:
            raise ValueError(
                f"GlimpseTrace.exit_step must be in [0, {steps}), got {self.exit_step}"
            )
        read = steps if self.exit_step is None else self.exit_step + 1
        if len(self.top1) != len(self.confidence):
            raise ValueError(
                f"GlimpseTrace.top1 ({len(self.top1)}) and confidence ({len(self.confidence)}) "
                "must have the same length"
            )
        if not read <= len(self.top1) <= steps:
            raise ValueError(
                f"GlimpseTrace.top1 needs one entry per step read ({read}) and at most T={steps}, "
                f"got {len(self.top1)}"
            )

    @property
    def steps(self) -> int:
        """Number of frames ``T`` in the clip."""
        return len(self.actions)


def glimpse_boxes(
    actions: np.ndarray | torch.Tensor,
    options: Sequence[GlimpseOption],
    grid: int,
    height: int,
    width: int,
) -> list[Box | None]:
    """Pixel boxes of the glimpses that ``actions [T, 3]`` take on ``height x width`` frames:
    the crops of :class:`~videofocus.models.cropper.PatchCropper`, edges rounded to the nearest
    pixel edge.

    :returns: one ``(x0, y0, x1, y1)`` per step, ``x1`` and ``y1`` exclusive, None where skipped.
    :raises ValueError: for malformed actions or a non-positive frame size.
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"frame size must be positive, got {height}x{width}")
    batch = torch.as_tensor(np.asarray(actions), dtype=torch.long).unsqueeze(0)  # [1, T, 3]
    aspect = width / height
    option_index, centres, extents = actions_to_glimpses(batch, options, grid, aspect)
    span = normalised_extents(extents, aspect)  # [1, T, 2] fractions of (width, height)
    size = np.array([width, height], dtype=np.float64)
    centre_px = centres[0].double().numpy() * size  # [T, 2]
    half_px = span[0].double().numpy() * size / 2
    # floor(v + 0.5) rounds halves up, unlike numpy's round-half-to-even
    low = np.floor(centre_px - half_px + 0.5).astype(np.int64)
    high = np.floor(centre_px + half_px + 0.5).astype(np.int64)
    low = np.clip(low, 0, size.astype(np.int64) - 1)
    high = np.clip(np.maximum(high, low + 1), 1, size.astype(np.int64))
    return [
        None if option < 0 else (int(low[t, 0]), int(low[t, 1]), int(high[t, 0]), int(high[t, 1]))
        for t, option in enumerate(option_index[0].tolist())
    ]


def option_colour(option: int) -> tuple[int, int, int]:
    """Outline colour of the 0-based glimpse option ``option`` (the palette is cycled)."""
    return OPTION_COLOURS[option % len(OPTION_COLOURS)]


def _wrap(draw: ImageDraw.ImageDraw, text: str, widths: list[int]) -> list[str]:
    """Greedy word wrap of ``text``; line ``i`` fits ``widths[min(i, len - 1)]`` pixels (a
    longer word is kept whole)."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split():
            candidate = f"{line} {word}" if line else word
            limit = widths[min(len(lines), len(widths) - 1)]
            if line and draw.textlength(candidate) > limit:
                lines.append(line)
                line = word
            else:
                line = candidate
        lines.append(line)
    return lines


def draw_step(
    frame: np.ndarray,
    box: Box | None,
    option: int,
    label: str,
    skipped: bool,
    exited: bool = False,
) -> np.ndarray:
    """Copy of ``frame`` (uint8 ``[H, W, 3]`` RGB) annotated with one step of a roll-out.

    The text sits on a darkened strip at the top, with a status tag on its right: ``#k`` in the
    option's colour, ``skip`` or ``exited``. Skipped and exited frames are dimmed. The box outline
    is drawn last so that it stays exact even where it crosses the strip.

    :param box: ``(x0, y0, x1, y1)`` in pixels, ``x1``/``y1`` exclusive, or None; ignored when
        ``skipped`` or ``exited`` (the prediction exited before this frame).
    :param option: 0-based index of the glimpse option (its colour).
    :raises ValueError: for a frame that is not uint8 ``[H, W, 3]`` or a box outside it.
    """
    frame = np.asarray(frame)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"frame must be uint8 [H, W, 3], got {frame.dtype} {frame.shape}")
    height, width = frame.shape[:2]
    show_box = box is not None and not (skipped or exited)
    if show_box:
        x0, y0, x1, y1 = box
        if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
            raise ValueError(f"box {box} is not inside a {width}x{height} frame")
    out = frame.copy()
    if skipped or exited:
        out = (out.astype(np.uint16) * 2 // 5).astype(np.uint8)

    image = Image.fromarray(out)
    draw = ImageDraw.Draw(image)
    if exited:
        tag, tag_colour = "exited", EXITED_COLOUR
    elif skipped:
        tag, tag_colour = "skip", SKIP_COLOUR
    else:
        tag, tag_colour = f"#{option + 1}", option_colour(option)
    tag_width = int(np.ceil(draw.textlength(tag)))
    text_width = width - 2 * _MARGIN
    lines = _wrap(draw, label, [text_width - tag_width - 2 * _MARGIN, text_width])
    # bottom of the tallest glyphs plus one pixel of leading; works for bitmap fonts too
    line_height = int(draw.getfont().getbbox("Ay|")[3]) + 1
    # never let the strip cover more than half of the frame
    max_lines = max(1, (height // 2 - 2 * _MARGIN) // line_height)
    lines = lines[:max_lines]
    strip_height = min(height, len(lines) * line_height + 2 * _MARGIN)
    strip = np.asarray(image)[:strip_height] // 4  # darken, keep a hint of the picture
    image.paste(Image.fromarray(strip), (0, 0))
    for i, line in enumerate(lines):
        draw.text((_MARGIN, _MARGIN + i * line_height), line, fill=TEXT_COLOUR)
    draw.text((width - _MARGIN - tag_width, _MARGIN), tag, fill=tag_colour)
    if show_box:
        draw.rectangle(
            (x0, y0, x1 - 1, y1 - 1), outline=option_colour(option), width=_OUTLINE_WIDTH
        )
    return np.asarray(image).copy()


def _step_label(trace: GlimpseTrace, t: int) -> str:
    # after an early exit the prediction stays the one made at the exit step
    read = t if trace.exit_step is None else min(t, trace.exit_step)
    name, confidence = trace.top1[read], trace.confidence[read]
    marker = " exit" if t == trace.exit_step else ""
    return f"t={t}{marker} {name} {confidence:.0%}"


def render_trace(frames: np.ndarray, trace: GlimpseTrace, scale: int = 1) -> np.ndarray:
    """Annotate every frame (uint8 ``[T, H, W, 3]``, as the policy saw them) with what the
    roll-out did there (:func:`draw_step`); returns uint8 ``[T, H * scale, W * scale, 3]``.

    :param scale: integer nearest-neighbour upscale before drawing, so that text stays legible.
    :raises ValueError: for malformed frames, a frame count other than ``T`` or a bad scale.
    """
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[3] != 3:
        raise ValueError(f"frames must be uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}")
    if len(frames) != trace.steps:
        raise ValueError(f"got {len(frames)} frames for a trace of {trace.steps} steps")
    if int(scale) != scale or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale}")
    height, width = frames.shape[1:3]
    boxes = glimpse_boxes(trace.actions, trace.options, trace.grid, height, width)
    big = repeat(frames, "t h w c -> t (h s1) (w s2) c", s1=scale, s2=scale)
    rendered = []
    for t, box in enumerate(boxes):
        rendered.append(
            draw_step(
                big[t],
                None if box is None else tuple(v * scale for v in box),
                option=int(trace.actions[t, 0]) - 1,
                label=_step_label(trace, t),
                skipped=box is None,
                exited=trace.exit_step is not None and t > trace.exit_step,
            )
        )
    return np.stack(rendered)
