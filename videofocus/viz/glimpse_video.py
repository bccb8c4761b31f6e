"""Write a clip annotated with its glimpses as an animated GIF or an H.264 MP4."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from videofocus.io.writer import write_video
from videofocus.viz.drawing import (
    EXITED_COLOUR,
    OPTION_COLOURS,
    SKIP_COLOUR,
    TEXT_COLOUR,
    GlimpseTrace,
    render_trace,
)

__all__ = ["check_suffix", "write_glimpse_video"]

_PALETTE_SIZE = 256
#: colours that every GIF frame's palette holds exactly, so overlays survive quantisation
_RESERVED = (*OPTION_COLOURS, TEXT_COLOUR, SKIP_COLOUR, EXITED_COLOUR, (0, 0, 0))


def _exact_palette(frame: np.ndarray) -> Image.Image | None:
    """``frame`` as a ``P`` image without loss, or None if it has more than 256 colours."""
    shifts = np.array([16, 8, 0], dtype=np.uint32)  # one uint32 per pixel: 0xRRGGBB
    packed = (frame.astype(np.uint32) << shifts).sum(axis=-1, dtype=np.uint32)
    colours, index = np.unique(packed.ravel(), return_inverse=True)
    if len(colours) > _PALETTE_SIZE:
        return None
    height, width = frame.shape[:2]
    image = Image.frombytes("P", (width, height), index.astype(np.uint8).tobytes())
    image.putpalette(((colours[:, None] >> shifts) & 255).astype(np.uint8).ravel().tolist())
    return image


def _to_palette(frame: np.ndarray) -> Image.Image:
    """``frame`` as a ``P`` image: exact when it has few colours, else quantised to an adaptive
    palette plus the overlay colours, without dithering (so overlays keep their colours)."""
    exact = _exact_palette(frame)
    if exact is not None:
        return exact
    image = Image.fromarray(frame)
    adaptive = image.quantize(
        colors=_PALETTE_SIZE - len(_RESERVED),
        method=Image.Quantize.MEDIANCUT,
        dither=Image.Dither.NONE,
    )
    picture = adaptive.getpalette()[: 3 * (_PALETTE_SIZE - len(_RESERVED))]
    palette = Image.new("P", (1, 1))
    palette.putpalette(picture + [c for colour in _RESERVED for c in colour])
    return image.quantize(palette=palette, dither=Image.Dither.NONE)


def check_suffix(path: Path) -> None:
    """Raise ``ValueError`` unless ``path`` ends in ``.gif`` or ``.mp4`` (any case)."""
    if path.suffix.lower() not in (".gif", ".mp4"):
        raise ValueError(f"{path}: unsupported suffix {path.suffix!r}, use .gif or .mp4")


def _pad_even(frames: np.ndarray) -> np.ndarray:
    """Pad ``[T, H, W, 3]`` by repeating the last row / column to an even size (yuv420p)."""
    height, width = frames.shape[1:3]
    return np.pad(frames, ((0, 0), (0, height % 2), (0, width % 2), (0, 0)), mode="edge")


def write_glimpse_video(
    path: str | Path,
    frames: np.ndarray,
    trace: GlimpseTrace,
    fps: float = 2.0,
    scale: int = 1,
) -> Path:
    """Render ``trace`` on ``frames`` (:func:`~videofocus.viz.drawing.render_trace`) and write
    the result to ``path`` (parent folders created), one output frame per step; returns ``path``.

    ``.gif``: palette frames (overlay colours always exact), looping forever; ``.mp4``: H.264
    via :func:`videofocus.io.writer.write_video`, an odd size padded by one repeated row/column.

    :raises ValueError: for an unsupported suffix, a non-positive fps, or bad frames / trace.
    """
    path = Path(path)
    check_suffix(path)
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    rendered = render_trace(frames, trace, scale=scale)  # [T, H*scale, W*scale, 3]
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".mp4":
        write_video(path, _pad_even(rendered), fps=fps)
        return path
    images = [_to_palette(frame) for frame in rendered]
    images[0].save(
        path,
        format="GIF",
        save_all=True,
        append_images=images[1:],
        duration=max(10, round(1000 / fps)),  # milliseconds
        loop=0,  # forever
        disposal=1,  # keep each frame in place; the next one covers it fully
    )
    return path
