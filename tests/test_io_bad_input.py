"""Bad input raises VideoDecodeError(path, reason) with a clear reason, whatever the backend."""

from __future__ import annotations

import pickle
from pathlib import Path

import av
import numpy as np
import pytest

from videofocus.io import VideoDecodeError, VideoReader, available_backends

BACKENDS = [
    "pyav",
    "auto",
    pytest.param(
        "decord",
        marks=pytest.mark.skipif(
            "decord" not in available_backends(), reason="decord is not installed"
        ),
    ),
]


def _write_audio(path: Path, encoder: str, cover_art: bool = False) -> Path:
    """A second of silence; with ``cover_art``, plus a JPEG attached picture (mp3 style)."""
    with av.open(str(path), mode="w") as container:
        audio = container.add_stream(encoder, rate=16000)
        audio.layout = "mono"
        cover = []
        if cover_art:
            picture = container.add_stream("mjpeg")
            picture.width = picture.height = 32
            picture.pix_fmt = "yuvj420p"
            picture.disposition = av.stream.Disposition.attached_pic
            image = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
            cover = [*picture.encode(image), *picture.encode()]
        samples = 1152
        for i in range(16000 // samples):
            frame = av.AudioFrame.from_ndarray(
                np.zeros((1, samples), np.float32), format="fltp", layout="mono"
            )
            frame.sample_rate = 16000
            frame.pts = i * samples
            for packet in audio.encode(frame):
                container.mux(packet)
            for packet in cover if i == 0 else ():
                container.mux(packet)
        for packet in audio.encode():
            container.mux(packet)
    return path


def _cut(source: Path, target: Path, keep: float) -> Path:
    data = source.read_bytes()
    target.write_bytes(data[: int(len(data) * keep)])
    return target


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, make_video) -> dict[str, tuple[Path, str]]:
    """name -> (file, a regex its error reason must match)."""
    root = tmp_path_factory.mktemp("bad")
    mp4 = make_video(codec="h264", container="mp4", num_frames=40, gop=10, bframes=2)
    faststart = make_video(container_options={"movflags": "faststart"})
    (root / "empty.mp4").touch()
    (root / "notes.mp4").write_text("these are meeting notes, not a video\n" * 50)
    (root / "folder.mp4").mkdir()
    return {
        "missing": (root / "missing.mp4", "file not found"),
        "empty": (root / "empty.mp4", "empty"),
        "directory": (root / "folder.mp4", "not a regular file"),
        "text": (root / "notes.mp4", "not a media file"),
        "half mp4": (_cut(mp4, root / "half.mp4", 0.5), "truncated"),
        "mp4 without tail": (_cut(mp4, root / "tail.mp4", 0.9), "truncated"),
        "faststart mp4 without tail": (
            _cut(faststart, root / "faststart_tail.mp4", 0.7),
            "truncated or corrupt data",
        ),
        "aac in m4a": (_write_audio(root / "speech.m4a", "aac"), "no video stream.*audio"),
        "aac in mp4": (_write_audio(root / "speech.mp4", "aac"), "no video stream.*audio"),
        "mp3 with cover art": (
            _write_audio(root / "song.mp3", "libmp3lame", cover_art=True),
            r"no video stream \(found only: audio, cover art\)",
        ),
    }


BAD_NAMES = [
    "missing",
    "empty",
    "directory",
    "text",
    "half mp4",
    "mp4 without tail",
    "faststart mp4 without tail",
    "aac in m4a",
    "aac in mp4",
    "mp3 with cover art",
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_input_raises_video_decode_error(bad_files, name, backend):
    path, reason = bad_files[name]
    with pytest.raises(VideoDecodeError, match=reason) as caught:
        VideoReader(path, backend=backend)
    assert caught.value.path == str(path)
    assert str(path) in str(caught.value)


def test_decode_error_survives_pickling(bad_files):
    path, _ = bad_files["empty"]
    with pytest.raises(VideoDecodeError) as caught:
        VideoReader(path)
    copy = pickle.loads(pickle.dumps(caught.value))
    assert (copy.path, copy.reason) == (caught.value.path, caught.value.reason)


def test_cut_webm_keeps_the_frames_that_are_there(tmp_path, make_video, frame_index):
    """WebM has no index at the end: a cut file stays readable up to the cut, and the measured
    frame count says how far."""
    source = make_video(codec="vp9", container="webm", num_frames=40, gop=10)
    path = _cut(source, tmp_path / "cut.webm", 0.5)
    with VideoReader(path, backend="pyav") as reader:
        count = reader.metadata.num_frames
        assert 0 < count < 40
        frames = reader.read_frames(range(count))
    assert [frame_index(f) for f in frames.numpy()] == list(range(count))
