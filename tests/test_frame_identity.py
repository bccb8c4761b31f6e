"""Frame identity: frame ``i`` is the ``i``-th frame of a sequential decode, whatever the container.

Every backend that does not refuse a file must return, for every index read singly, as a sorted
list and as an unsorted list, the frame a plain sequential PyAV decode of the same stream puts out
at that position. Checked on a real MPEG-4 Part 2 AVI with packed B-frames (its demuxer invents
timestamps that the placeholder packets put out of order) and on generated index-coded files of
the kinds users have: B-frames in AVI / MP4 / Matroska / MPEG-TS, variable frame rates, VP9, HEVC,
10-bit and rotated video.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import av
import numpy as np
import pytest

from videofocus.io import VideoDecodeError, VideoReader, available_backends
from videofocus.io.backends.scan import scan_video

FIXTURE = Path(__file__).parent / "data" / "mmaction2_test.avi"

#: a variable frame rate: every fifth interval is 0.3 s instead of 0.04 s
VFR_TIMES = tuple(
    float(t) for t in np.cumsum([0.0] + [0.3 if i % 5 == 0 else 0.04 for i in range(39)])
)

#: (id, make_video kwargs)
CORPUS = [
    ("mpeg4-asp-bframes-avi", dict(codec="mpeg4", container="avi", gop=10, bframes=2)),
    ("h264-bframes-mp4", dict(codec="h264", container="mp4", gop=12, bframes=3)),
    ("h264-bframes-mkv", dict(codec="h264", container="mkv", gop=12, bframes=3)),
    ("h264-bframes-ts", dict(codec="h264", container="ts", gop=12, bframes=3)),
    ("h264-vfr-mp4", dict(codec="h264", container="mp4", gop=12, bframes=2, times=VFR_TIMES)),
    ("h264-vfr-mkv", dict(codec="h264", container="mkv", gop=12, bframes=2, times=VFR_TIMES)),
    ("vp9-webm", dict(codec="vp9", container="webm", gop=10)),
    ("hevc-bframes-mp4", dict(codec="hevc", container="mp4", gop=12, bframes=3)),
    ("h264-10bit-mkv", dict(codec="h264", container="mkv", gop=12, pix_fmt="yuv420p10le")),
    ("h264-rotated-mp4", dict(codec="h264", container="mp4", gop=12, bframes=2, rotation=90)),
]


def sequential_decode(path: Path) -> np.ndarray:
    """Every frame of a plain PyAV decode, upright, in output order: the reference."""
    with av.open(str(path)) as container:
        frames = []
        for frame in container.decode(container.streams.video[0]):
            rgb = frame.to_ndarray(format="rgb24", interpolation="BICUBIC")  # as the reader
            quarter_turns = round((frame.rotation or 0) / 90) % 4
            frames.append(np.rot90(rgb, k=quarter_turns) if quarter_turns else rgb)
    return np.stack(frames)


def _open(path: Path, backend: str) -> VideoReader | None:
    """A reader, or ``None`` when the backend refuses the file (it must say so, not mislead)."""
    try:
        return VideoReader(path, backend=backend)
    except VideoDecodeError as err:
        assert "use the pyav backend" in err.reason
        return None


def _assert_same_frames(got: np.ndarray, want: np.ndarray, reference: np.ndarray, backend: str):
    """PyAV must be exact; another decoder converts colours its own way, so its frame must be
    nearest to the wanted one among all frames and close to it."""
    if backend == "pyav":
        np.testing.assert_array_equal(got, want)
        return
    for frame, expected in zip(got.astype(np.float32), want.astype(np.float32), strict=True):
        distances = np.abs(reference.astype(np.float32) - frame).mean(axis=(1, 2, 3))
        assert np.abs(frame - expected).mean() < 3.0
        assert distances.min() == pytest.approx(np.abs(frame - expected).mean())


def _check_every_index(path: Path, backend: str, reference: np.ndarray) -> None:
    reader = _open(path, backend)
    if reader is None:
        return
    with reader:
        count = reader.metadata.num_frames
        assert count == len(reference)
        for index in range(count):  # singly, one reader going forward, then backwards
            _assert_same_frames(
                reader.read_frames([index]).numpy(), reference[[index]], reference, backend
            )
        for index in (count - 1, count // 2, 1, 0):
            _assert_same_frames(
                reader.read_frames([index]).numpy(), reference[[index]], reference, backend
            )
        ordered = [0, count // 3, count // 3 + 1, 2 * count // 3, count - 1]
        _assert_same_frames(
            reader.read_frames(ordered).numpy(), reference[ordered], reference, backend
        )
        shuffled = [count - 1, 3, 3, 0, count // 2, 1]
        _assert_same_frames(
            reader.read_frames(shuffled).numpy(), reference[shuffled], reference, backend
        )
    for index in (count // 3, count - 2):  # a fresh reader per read, as the jobs open them
        with VideoReader(path, backend=backend) as fresh:
            _assert_same_frames(
                fresh.read_frames([index]).numpy(), reference[[index]], reference, backend
            )


@pytest.mark.parametrize("backend", available_backends())
def test_real_packed_bframes_avi_every_index(backend):
    reference = sequential_decode(FIXTURE)
    assert len(reference) == 164
    _check_every_index(FIXTURE, backend, reference)


def test_real_avi_timestamps_are_not_trusted_and_the_job_read_works():
    scan = scan_video(FIXTURE)
    assert not scan.timestamps_trusted and scan.reordered
    reference = sequential_decode(FIXTURE)
    with VideoReader(FIXTURE) as reader:
        wanted = [0, 54, 109, 163]  # the read that used to return frame 53 for 54
        np.testing.assert_array_equal(reader.read_frames(wanted).numpy(), reference[wanted])
        wanted = np.linspace(0, 163, 8).round().astype(int).tolist()  # the label job's read
        np.testing.assert_array_equal(reader.read_frames(wanted).numpy(), reference[wanted])


@pytest.mark.parametrize("backend", available_backends())
@pytest.mark.parametrize("name,kwargs", CORPUS, ids=[c[0] for c in CORPUS])
def test_generated_corpus_every_index(make_video, frame_index, backend, name, kwargs):
    path = make_video(**kwargs)
    reference = sequential_decode(path)
    assert [frame_index(f) for f in _stored(reference, kwargs)] == list(range(40))
    _check_every_index(path, backend, reference)


def _stored(frames: np.ndarray, kwargs: dict) -> np.ndarray:
    """Frames turned back to their stored orientation, where the index code can be read."""
    turns = kwargs.get("rotation", 0) // 90
    return np.rot90(frames, k=-turns, axes=(1, 2)) if turns else frames


def test_frames_whose_pts_go_backwards_are_counted_instead(tmp_path, monkeypatch):
    # A container whose timestamps look trustworthy but come out of the decoder out of order is
    # caught while decoding and read by counting: same frames as the sequential decode.
    path = tmp_path / "clip.avi"
    shutil.copy(FIXTURE, path)
    monkeypatch.setattr("videofocus.io.backends.scan.INVENTED_TIMESTAMPS", frozenset())
    scan = scan_video(path)
    assert scan.timestamps_trusted  # trusted by mistake...
    reference = sequential_decode(path)
    with VideoReader(path, backend="pyav") as reader:
        wanted = [0, 54, 55, 109, 163]
        np.testing.assert_array_equal(reader.read_frames(wanted).numpy(), reference[wanted])
        assert not reader._decoder._by_pts  # ...and no longer after the first read


def test_vfr_metadata_is_measured(make_video):
    path = make_video(codec="h264", container="mkv", gop=12, bframes=2, times=VFR_TIMES)
    with VideoReader(path) as reader:
        meta = reader.metadata
        bounds = reader.frame_boundaries()
    assert meta.num_frames == 40
    assert meta.duration == pytest.approx(VFR_TIMES[-1] + 0.04, abs=1e-3)
    assert meta.fps == pytest.approx(40 / meta.duration)
    np.testing.assert_allclose(bounds[:-1], VFR_TIMES, atol=1e-3)


@pytest.mark.parametrize("container", ["mp4", "mkv"])
def test_vfr_segment_picks_the_frames_shown_in_it(make_video, frame_index, container):
    from videofocus.io.samplers import SegmentSampler, frame_range

    path = make_video(codec="h264", container=container, gop=12, times=VFR_TIMES)
    times = np.asarray(VFR_TIMES)
    start, end = 2.0, 3.0  # past the 1.6 s that a nominal 25 fps gives 40 frames
    inside = np.flatnonzero((times >= start) & (times < end)).tolist()
    assert len(inside) >= 4
    shown_at_start = int(np.searchsorted(times, start, side="right") - 1)
    with VideoReader(path) as reader:
        frames = reader.read_segment(start, end).numpy()
        assert [frame_index(f) for f in frames] == inside
        bounds = reader.frame_boundaries()
        # a clip sampler's range: every frame shown during the segment (the one already on screen
        # at its start included)
        assert frame_range(40, None, start, end, bounds) == (shown_at_start, inside[-1])
        # TSN positions are the constant-rate positions of a range as long, turned into moments
        # of the range's time, each taking the frame shown then
        length = inside[-1] - shown_at_start + 1
        tsn = reader.sample_indices(SegmentSampler(4), start, end)
        first_time, stop_time = bounds[shown_at_start], bounds[inside[-1] + 1]
        offsets = SegmentSampler(4)(length)
        moments = first_time + (offsets + 0.5) * (stop_time - first_time) / length
        expected = (np.searchsorted(bounds, moments, side="right") - 1).tolist()
        assert tsn.tolist() == expected
        assert all(bounds[i] <= m < bounds[i + 1] for i, m in zip(expected, moments, strict=True))
        decoded = reader.read_frames(tsn.tolist()).numpy()
    assert [frame_index(f) for f in decoded] == expected
