"""VideoReader: metadata, frame accuracy of sparse reads on both backends, resizing, segments,
keyframe sampling."""

from __future__ import annotations

import av
import numpy as np
import pytest
import torch

from videofocus.io import VideoDecodeError, VideoReader, available_backends
from videofocus.io.backends import AUTO_FASTER, decoder_class, select_backend
from videofocus.io.backends.pyav import PyAVDecoder
from videofocus.io.backends.scan import scan_video
from videofocus.io.samplers import SegmentSampler
from videofocus.io.writer import write_video

BACKENDS = [
    "pyav",
    pytest.param(
        "decord",
        marks=pytest.mark.skipif(
            "decord" not in available_backends(), reason="decord is not installed"
        ),
    ),
]

#: (id, make_video kwargs, whether decord returns the right frames for it)
FORMATS = [
    ("h264-bframes-mp4", dict(codec="h264", container="mp4", gop=12, bframes=3), True),
    ("h264-default-mkv", dict(codec="h264", container="mkv", num_frames=60), True),
    ("h264-raw-nopts", dict(codec="h264", container="h264", gop=10, bframes=2), False),
    ("mpeg4-bframes-avi", dict(codec="mpeg4", container="avi", gop=10, bframes=2), False),
    ("mpeg4-bframes-mp4", dict(codec="mpeg4", container="mp4", gop=10, bframes=2), False),
    ("mpeg4-avi", dict(codec="mpeg4", container="avi", gop=10), True),
    ("vp9-webm", dict(codec="vp9", container="webm", gop=10, size=(96, 64)), True),
    ("mpeg2-bframes-mpg", dict(codec="mpeg2", container="mpg", gop=10, bframes=2), False),
]


def _indices_of(frames: torch.Tensor, frame_index) -> list[int]:
    return [frame_index(f) for f in frames.numpy()]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fmt,kwargs,decord_ok", FORMATS, ids=[f[0] for f in FORMATS])
def test_sparse_reads_are_frame_accurate(make_video, frame_index, backend, fmt, kwargs, decord_ok):
    path = make_video(**kwargs)
    expected_count = kwargs.get("num_frames", 40)
    if backend == "decord" and not decord_ok:
        # decord returns wrong frames (or cannot open) here: it must refuse, not mislead
        with pytest.raises(VideoDecodeError, match="use the pyav backend"):
            VideoReader(path, backend="decord")
        return
    with VideoReader(path, backend=backend) as reader:
        assert reader.backend == backend
        assert reader.metadata.num_frames == expected_count
        rng = np.random.default_rng(len(fmt))
        for _ in range(6):
            wanted = rng.choice(expected_count, size=int(rng.integers(1, 9)), replace=False)
            wanted = sorted(wanted.tolist())
            frames = reader.read_frames(wanted)
            assert frames.dtype == torch.uint8
            assert frames.shape == (len(wanted), reader.metadata.height, reader.metadata.width, 3)
            assert _indices_of(frames, frame_index) == wanted
        # unsorted with duplicates, going backwards in the file
        wanted = [expected_count - 1, 3, 3, 0, expected_count // 2]
        assert _indices_of(reader.read_frames(wanted), frame_index) == wanted


@pytest.mark.parametrize("fmt,kwargs,decord_ok", FORMATS, ids=[f[0] for f in FORMATS])
def test_full_decode_count_matches_metadata(make_video, frame_index, fmt, kwargs, decord_ok):
    path = make_video(**kwargs)
    with av.open(str(path)) as container:
        decoded = sum(1 for _ in container.decode(video=0))
    with VideoReader(path, backend="pyav") as reader:
        assert reader.metadata.num_frames == decoded
        everything = reader.read_frames(range(decoded))
    assert _indices_of(everything, frame_index) == list(range(decoded))


def test_metadata_of_generated_video(make_video):
    path = make_video(codec="vp9", container="webm", num_frames=30, size=(96, 64), fps=15.0)
    with VideoReader(path) as reader:
        meta = reader.metadata
    assert (meta.num_frames, meta.width, meta.height, meta.codec) == (30, 96, 64, "vp9")
    assert meta.fps == pytest.approx(15.0)
    assert meta.duration == pytest.approx(2.0)
    assert meta.rotation == 0
    assert meta.path == str(path)


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotated_frames_come_out_upright(make_video, frame_index, rotation):
    path = make_video(rotation=rotation)  # stored 64 x 48, index-coded
    with VideoReader(path) as reader:
        meta = reader.metadata
        assert meta.rotation == rotation
        upright = (48, 64) if rotation % 180 else (64, 48)
        assert (meta.width, meta.height) == upright and meta.stored_size == (64, 48)
        frames = reader.read_frames([5, 2]).numpy()
        small = reader.read_frames([5], short_side=24).numpy()
    assert frames.shape == (2, upright[1], upright[0], 3)
    assert small.shape == (1, *((32, 24) if rotation % 180 else (24, 32)), 3)
    # the display matrix turns the stored picture counter-clockwise by `rotation`
    stored = np.rot90(frames, k=-rotation // 90, axes=(1, 2))
    assert [frame_index(f) for f in stored] == [5, 2]
    assert select_backend(scan_video(path)) == "pyav"


def test_rotation_turns_counter_clockwise(tmp_path):
    # a white top-left corner, turned 90 degrees counter-clockwise, ends bottom-left
    frame = np.full((32, 48, 3), 20, np.uint8)
    frame[:8, :8] = 255
    path = tmp_path / "phone.mp4"
    write_video(path, [frame] * 3, rotation=90, crf=0)
    with VideoReader(path) as reader:
        shown = reader.read_frames([1]).numpy()[0].mean(axis=2)
    assert shown.shape == (48, 32)
    assert shown[-8:, :8].mean() > 200 and shown[:8, :8].mean() < 60


def test_colour_channels_are_rgb(make_video):
    # frame 0 has every bit clear: blocks of RGB (10, 50, 100) under a faint texture
    with VideoReader(make_video()) as reader:
        red, green, blue = reader.read_frames([0])[0].float().mean(dim=(0, 1)).tolist()
    assert red < green < blue
    assert blue == pytest.approx(100, abs=12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_resize_at_decode_keeps_aspect_and_frames(make_video, frame_index, backend):
    path = make_video(codec="h264", size=(160, 120), gop=10, bframes=2)
    with VideoReader(path, backend=backend) as reader:
        small = reader.read_frames([2, 17, 33], short_side=60)
        assert small.shape == (3, 60, 80, 3)
        assert _indices_of(small, frame_index) == [2, 17, 33]
        assert reader.read_frames([4], short_side=120).shape == (1, 120, 160, 3)


def test_resize_matches_across_backends(real_clips):
    if "decord" not in available_backends():
        pytest.skip("decord is not installed")
    wanted = [0, 7, 50, 99]
    with VideoReader(real_clips[1], backend="pyav") as a, VideoReader(real_clips[1], "decord") as b:
        x = a.read_frames(wanted, short_side=96).float()
        y = b.read_frames(wanted, short_side=96).float()
    assert x.shape == y.shape == (4, 96, 226, 3)
    assert (x - y).abs().mean() < 3


def test_real_clips_same_frames_on_both_backends(real_clips):
    if "decord" not in available_backends():
        pytest.skip("decord is not installed")
    rng = np.random.default_rng(0)
    for clip in real_clips:
        with VideoReader(clip, backend="pyav") as a, VideoReader(clip, backend="decord") as b:
            assert a.metadata == b.metadata
            n = a.metadata.num_frames
            for _ in range(2):
                wanted = sorted(rng.choice(n, size=6, replace=False).tolist())
                x, y = a.read_frames(wanted).float(), b.read_frames(wanted).float()
                per_frame = (x - y).abs().mean(dim=(1, 2, 3))
                assert per_frame.max() < 3, (clip.name, wanted, per_frame.tolist())


def test_real_clips_metadata(real_clips):
    expected = {  # measured by demuxing; full decodes agree
        "bigbuckbunny.mp4": (132, 1280, 720, 25.0),
        "bikes.mp4": (250, 640, 272, 25.0),
        "carphone_distorted.mp4": (120, 176, 144, 30000 / 1001),
        "carphone_pristine.mp4": (120, 176, 144, 30000 / 1001),
    }
    for clip in real_clips:
        with VideoReader(clip) as reader:
            meta = reader.metadata
        with av.open(str(clip)) as container:
            assert sum(1 for _ in container.decode(video=0)) == meta.num_frames
        n, w, h, fps = expected[clip.name]
        assert (meta.num_frames, meta.width, meta.height, meta.codec) == (n, w, h, "h264")
        assert meta.fps == pytest.approx(fps)
        assert meta.duration == pytest.approx(n / fps)


def test_sparse_read_decodes_little(make_video):
    path = make_video(codec="h264", num_frames=60, gop=10, bframes=2)
    decoder = PyAVDecoder(path)
    frames = decoder.decode([5, 52])
    assert frames.shape == (2, 48, 64, 3)
    # frame 52 lies past keyframes 10..50: one seek to 50, not 47 frames decoded on the way
    assert decoder.seeks == 1
    assert decoder.frames_decoded <= 16
    # a later frame of the same GOP is reached by decoding forward, without a seek
    decoder.decode([55])
    assert decoder.seeks == 1
    decoder.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_threaded_decoding_is_frame_accurate(make_video, frame_index, backend):
    path = make_video(codec="h264", num_frames=60, gop=10, bframes=3)
    with VideoReader(path, backend=backend, num_threads=2) as reader:
        for wanted in ([1, 12, 13, 40, 59], [0, 58], list(range(20, 36))):
            assert _indices_of(reader.read_frames(wanted), frame_index) == wanted


def test_consecutive_chunks_decode_each_frame_once(make_video, frame_index):
    path = make_video(codec="h264", num_frames=60, gop=10, bframes=2)
    decoder = PyAVDecoder(path)
    for start in range(0, 60, 15):
        chunk = decoder.decode(list(range(start, start + 15)))
        assert [frame_index(f) for f in chunk] == list(range(start, start + 15))
    assert decoder.frames_decoded == 60
    assert decoder.seeks == 0
    decoder.close()


def test_read_segment(make_video, frame_index):
    path = make_video(num_frames=50, fps=25.0)  # frame i shows at i / 25 s
    with VideoReader(path) as reader:
        all_in = reader.read_segment(0.4, 0.8)
        assert _indices_of(all_in, frame_index) == list(range(10, 20))
        spread = reader.read_segment(0.4, 0.8, num_frames=5, short_side=24)
        assert spread.shape == (5, 24, 32, 3)
        assert _indices_of(spread, frame_index) == [11, 13, 15, 17, 19]
        assert reader.read_segment(5.0, 6.0).shape == (0, 48, 64, 3)
        with pytest.raises(IndexError):
            reader.read_segment(5.0, 6.0, num_frames=2)
        with pytest.raises(ValueError):
            reader.read_segment(1.0, 1.0)


def test_index_errors_and_closed_reader(make_video):
    reader = VideoReader(make_video())
    with pytest.raises(IndexError, match="out of range"):
        reader.read_frames([0, 40])
    with pytest.raises(IndexError):
        reader.read_frames([-1])
    assert reader.read_frames([]).shape == (0, 48, 64, 3)
    reader.close()
    with pytest.raises(RuntimeError, match="closed"):
        reader.read_frames([0])


def test_unknown_backend_is_a_value_error(make_video):
    with pytest.raises(ValueError, match="unknown video backend"):
        VideoReader(make_video(), backend="opencv")


def test_auto_uses_measured_rule(make_video):
    with VideoReader(make_video()) as reader:
        expected = AUTO_FASTER.get("h264", "pyav")
        if expected not in available_backends():
            expected = "pyav"
        assert reader.backend == expected


def test_auto_falls_back_to_pyav_when_decord_fails(make_video, frame_index, monkeypatch):
    """With decord preferred for H.264, a decord failure at open or decode hands over to PyAV."""
    import videofocus.io.backends as backends

    class BrokenDecoder(PyAVDecoder):
        name = "decord"
        fail_at_open = True

        def __init__(self, path, num_threads=1, scan=None):
            if BrokenDecoder.fail_at_open:
                raise VideoDecodeError(path, "decord cannot open it: simulated")
            super().__init__(path, num_threads, scan)

        def decode(self, indices, size=None):
            raise VideoDecodeError(self.path, "decord failed: simulated")

    monkeypatch.setattr(backends, "AUTO_FASTER", {"h264": "decord"})
    monkeypatch.setattr(backends, "available_backends", lambda: ["pyav", "decord"])
    real_class = decoder_class
    monkeypatch.setattr(
        backends,
        "decoder_class",
        lambda name: BrokenDecoder if name == "decord" else real_class(name),
    )
    import videofocus.io.reader as reader_module

    monkeypatch.setattr(reader_module, "decoder_class", backends.decoder_class)
    path = make_video()
    with VideoReader(path) as reader:
        assert reader.backend == "pyav"
    BrokenDecoder.fail_at_open = False
    with VideoReader(path) as reader:
        assert reader.backend == "decord"
        assert _indices_of(reader.read_frames([3, 30]), frame_index) == [3, 30]
        assert reader.backend == "pyav"


def test_frames_of_another_shape_than_asked_are_refused(make_video, monkeypatch):
    # whatever the backend, the reader hands out only frames of exactly the size asked for
    with VideoReader(make_video(), backend="pyav") as reader:
        decoder = reader._decoder
        real = decoder.decode
        monkeypatch.setattr(decoder, "decode", lambda idx, size: real(idx, size)[:, :-1])
        with pytest.raises(VideoDecodeError, match=r"pyav returned uint8 frames \(2, 47, 64, 3\)"):
            reader.read_frames([1, 2])


def test_keyframe_sampling_reads_the_nearest_keyframes_alone(make_video, frame_index):
    path = make_video(codec="h264", num_frames=100, gop=10, bframes=2)  # keyframes 0, 10, ..., 90
    sampler = SegmentSampler(num_segments=6)
    with VideoReader(path, backend="pyav") as reader:
        assert reader.keyframes.tolist() == list(range(0, 100, 10))
        exact = reader.sample_indices(sampler)
        snapped = reader.sample_indices(sampler, sampling="keyframe")
        # the nearest keyframes; 25 and 75 lie halfway, and go to the earlier one
        assert exact.tolist() == [8, 25, 41, 58, 75, 91]
        assert snapped.tolist() == [10, 20, 40, 60, 70, 90]
        frames = reader.read_frames(snapped.tolist(), sampling="keyframe")
        decoder = reader._decoder
        assert isinstance(decoder, PyAVDecoder)
        # one packet fed to the decoder and one frame out per keyframe: nothing in between
        assert decoder.packets_decoded == decoder.frames_decoded == 6
    assert _indices_of(frames, frame_index) == snapped.tolist()
    with VideoReader(path, backend="pyav") as reader:  # the exact path, on the same indices
        reference = reader.read_frames(snapped.tolist())
        assert reader._decoder.packets_decoded > 6  # it decodes ahead through the B-frames
    assert torch.equal(frames, reference)


def test_keyframes_shared_by_segments_are_decoded_once(make_video, frame_index):
    path = make_video(codec="h264", num_frames=100, gop=50)  # keyframes 0 and 50
    with VideoReader(path, backend="pyav") as reader:
        snapped = reader.sample_indices(SegmentSampler(num_segments=8), sampling="keyframe")
        assert snapped.tolist() == [0, 0, 50, 50, 50, 50, 50, 50]
        frames = reader.read_frames(snapped.tolist(), short_side=24, sampling="keyframe")
        assert reader._decoder.packets_decoded == reader._decoder.frames_decoded == 2
    assert frames.shape == (8, 24, 32, 3)
    assert _indices_of(frames, frame_index) == snapped.tolist()


def test_keyframe_reads_of_counted_frames_check_the_seek(make_video, frame_index):
    # AVI invents timestamps: without B-frames, keyframes are packet positions, reached by seeking
    path = make_video(codec="mpeg4", container="avi", num_frames=60, gop=10)
    with VideoReader(path, backend="pyav") as reader:
        wanted = [0, 30, 50]
        frames = reader.read_frames(wanted, sampling="keyframe")
        assert reader._decoder.packets_decoded == 3
        assert torch.equal(frames, reader.read_frames(wanted))
    assert _indices_of(frames, frame_index) == wanted


def test_keyframe_sampling_refuses_what_it_cannot_do(make_video):
    with VideoReader(make_video(codec="h264", num_frames=40, gop=10)) as reader:
        with pytest.raises(ValueError, match="frame 15 is not a keyframe"):
            reader.read_frames([10, 15], sampling="keyframe")
        with pytest.raises(ValueError, match="sampling must be one of"):
            reader.read_frames([10], sampling="nearest")
    # AVI with packed B-frames: frames are counted, and where the keyframes are is unknown
    avi = make_video(codec="mpeg4", container="avi", gop=10, bframes=2)
    with VideoReader(avi) as reader, pytest.raises(VideoDecodeError, match="use exact sampling"):
        reader.sample_indices(SegmentSampler(4), sampling="keyframe")
