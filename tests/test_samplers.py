"""Frame-index samplers: exact evaluation indices, random-mode bounds and seeding, segments."""

from __future__ import annotations

import numpy as np
import pytest

from videofocus.io.samplers import (
    DenseSampler,
    FrameRangeError,
    SegmentSampler,
    UniformSampler,
    create_sampler,
    frame_range,
    snap_to_keyframes,
)


def _segment_bounds(length: int, n: int) -> list[tuple[int, int]]:
    """Inclusive frame bounds of TSN segment k: the frames i with k*L/n <= i < (k+1)*L/n."""
    return [
        (
            min(i for i in range(length) if i * n >= k * length),
            max(i for i in range(length) if i * n < (k + 1) * length),
        )
        for k in range(n)
    ]


# ---- frame_range ------------------------------------------------------------------------------


def test_frame_range_whole_video():
    assert frame_range(100) == (0, 99)
    assert frame_range(1) == (0, 0)


def test_frame_range_segment_in_seconds():
    # 0.28 s * 25 fps is 7.000000000000001 in floating point: still frame 7.
    assert frame_range(100, fps=25.0, start=0.28, end=1.0) == (7, 24)
    assert frame_range(100, fps=25.0, start=1.1, end=1.3) == (27, 32)  # partial frames count
    assert frame_range(100, fps=25.0, start=1.01, end=1.02) == (25, 25)  # shorter than a frame
    assert frame_range(100, fps=25.0, start=2.0) == (50, 99)
    assert frame_range(100, fps=25.0, end=2.0) == (0, 49)


def test_frame_range_segment_past_the_end_is_clamped():
    assert frame_range(100, fps=25.0, start=3.5, end=10.0) == (87, 99)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(num_frames=0), "no frames"),
        (dict(num_frames=-3), "no frames"),
        (dict(num_frames=100, fps=25.0, start=4.0, end=5.0), "past the last frame"),
        (dict(num_frames=100, start=1.0, end=2.0), "positive fps"),
        (dict(num_frames=100, fps=0.0, start=1.0), "positive fps"),
        (dict(num_frames=100, fps=25.0, start=2.0, end=2.0), "greater than its start"),
    ],
)
def test_frame_range_empty_raises(kwargs, match):
    with pytest.raises(FrameRangeError, match=match):
        frame_range(**kwargs)
    assert issubclass(FrameRangeError, ValueError)


# ---- SegmentSampler (TSN) ---------------------------------------------------------------------


def test_tsn_eval_centres():
    idx = SegmentSampler(8)(100)
    assert idx.dtype == np.int64
    np.testing.assert_array_equal(idx, [6, 18, 31, 43, 56, 68, 81, 93])
    np.testing.assert_array_equal(SegmentSampler(4)(8), [0, 2, 4, 6])
    np.testing.assert_array_equal(SegmentSampler(1)(10), [4])
    np.testing.assert_array_equal(SegmentSampler(5)(5), [0, 1, 2, 3, 4])


def test_tsn_eval_centres_lie_in_their_segments():
    for length in range(1, 60):
        for n in (1, 2, 3, 7, 8, 16):
            if length < n:
                continue
            idx = SegmentSampler(n)(length)
            for i, (lo, hi) in zip(idx, _segment_bounds(length, n), strict=True):
                assert lo <= i <= hi


def test_tsn_random_stays_in_segments_and_is_seeded():
    sampler = SegmentSampler(8, random=True)
    bounds = _segment_bounds(100, 8)
    draws = []
    for seed in range(50):
        idx = sampler(100, rng=np.random.default_rng(seed))
        assert idx.dtype == np.int64 and idx.shape == (8,)
        assert all(lo <= i <= hi for i, (lo, hi) in zip(idx, bounds, strict=True))
        np.testing.assert_array_equal(idx, sampler(100, rng=np.random.default_rng(seed)))
        draws.append(idx)
    draws = np.stack(draws)
    # Segment 0 is frames 0..12; 50 draws land on most of them: the offset really is random.
    firsts = set(draws[:, 0].tolist())
    assert firsts <= set(range(13)) and len(firsts) > 8


def test_tsn_fewer_frames_than_segments_repeats_evenly():
    np.testing.assert_array_equal(SegmentSampler(8)(3), [0, 0, 0, 1, 1, 2, 2, 2])
    np.testing.assert_array_equal(SegmentSampler(4)(1), [0, 0, 0, 0])
    rand = SegmentSampler(8, random=True)(3, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(rand, [0, 0, 0, 1, 1, 2, 2, 2])


def test_tsn_on_a_segment():
    # Frames 87..99 (13 frames) of a 100-frame video; the annotation runs past the end.
    idx = SegmentSampler(4)(100, fps=25.0, start=3.5, end=10.0)
    np.testing.assert_array_equal(idx, [88, 92, 95, 98])  # segments 87-90, 91-93, ...
    rand = SegmentSampler(4, random=True)(
        100, fps=25.0, start=3.5, end=10.0, rng=np.random.default_rng(3)
    )
    assert rand.min() >= 87 and rand.max() <= 99 and np.all(np.diff(rand) > 0)


# ---- UniformSampler ---------------------------------------------------------------------------


def test_uniform_eval_is_centred():
    np.testing.assert_array_equal(UniformSampler(4, stride=3)(20), [5, 8, 11, 14])
    np.testing.assert_array_equal(
        UniformSampler(4, stride=2)(20, fps=10.0, start=1.0), [11, 13, 15, 17]
    )
    np.testing.assert_array_equal(UniformSampler(3, stride=5)(11), [0, 5, 10])


def test_uniform_random_window_inside_range():
    sampler = UniformSampler(4, stride=3, random=True)
    starts = set()
    for seed in range(40):
        idx = sampler(20, rng=np.random.default_rng(seed))
        np.testing.assert_array_equal(np.diff(idx), [3, 3, 3])
        assert 0 <= idx[0] and idx[-1] <= 19
        starts.add(int(idx[0]))
    assert starts <= set(range(0, 11)) and len(starts) > 3


def test_uniform_short_video_loops_or_clamps():
    np.testing.assert_array_equal(UniformSampler(4, stride=3)(5), [0, 3, 1, 4])
    np.testing.assert_array_equal(UniformSampler(4, stride=3, pad="clamp")(5), [0, 3, 4, 4])
    rand = UniformSampler(6, stride=2, random=True)(5, rng=np.random.default_rng(0))
    assert rand.shape == (6,) and rand.min() >= 0 and rand.max() <= 4


# ---- DenseSampler -----------------------------------------------------------------------------


def test_dense_eval_spreads_clips_evenly():
    idx = DenseSampler(clip_len=4, frame_interval=2, num_clips=3)(40)
    np.testing.assert_array_equal(idx, [0, 2, 4, 6, 16, 18, 20, 22, 33, 35, 37, 39])
    np.testing.assert_array_equal(DenseSampler(clip_len=4, frame_interval=2)(20), [6, 8, 10, 12])
    assert DenseSampler(clip_len=4, num_clips=3).clip_length == 12


def test_dense_random_clips_inside_range_and_ordered():
    sampler = DenseSampler(clip_len=4, frame_interval=2, num_clips=3, random=True)
    for seed in range(20):
        idx = sampler(100, fps=10.0, start=2.0, end=6.0, rng=np.random.default_rng(seed))
        clips = idx.reshape(3, 4)
        assert idx.min() >= 20 and idx.max() <= 59
        assert np.all(np.diff(clips, axis=1) == 2)
        assert np.all(np.diff(clips[:, 0]) >= 0)
        np.testing.assert_array_equal(
            idx, sampler(100, fps=10.0, start=2.0, end=6.0, rng=np.random.default_rng(seed))
        )


def test_dense_short_video_loops_or_clamps():
    np.testing.assert_array_equal(DenseSampler(clip_len=4, frame_interval=2)(5), [0, 2, 4, 1])
    np.testing.assert_array_equal(
        DenseSampler(clip_len=4, frame_interval=2, pad="clamp")(5), [0, 2, 4, 4]
    )


# ---- common behaviour -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sampler",
    [SegmentSampler(8), UniformSampler(8, 4), DenseSampler(4, 3, 2)],
)
@pytest.mark.parametrize("num_frames", [1, 2, 7, 31, 1000])
@pytest.mark.parametrize("random", [False, True])
def test_every_sampler_returns_int64_in_range(sampler, num_frames, random):
    sampler = sampler.with_random(random)
    idx = sampler(num_frames, rng=np.random.default_rng(0))
    assert idx.dtype == np.int64 and idx.shape == (sampler.clip_length,)
    assert idx.min() >= 0 and idx.max() < num_frames


def test_random_mode_without_rng_still_samples():
    idx = SegmentSampler(8, random=True)(100)
    assert idx.shape == (8,) and idx.max() < 100


def test_sampler_raises_for_empty_range():
    with pytest.raises(FrameRangeError, match="no frames"):
        SegmentSampler(8)(0)
    with pytest.raises(FrameRangeError, match="past the last frame"):
        UniformSampler(4)(50, fps=25.0, start=2.0, end=3.0)


@pytest.mark.parametrize(
    "build",
    [
        lambda: SegmentSampler(0),
        lambda: UniformSampler(4, stride=0),
        lambda: UniformSampler(4, pad="reflect"),
        lambda: DenseSampler(clip_len=-1),
        lambda: SegmentSampler(2.5),
    ],
)
def test_invalid_arguments_raise(build):
    with pytest.raises(ValueError):
        build()


def test_with_random_switches_mode():
    s = SegmentSampler(8)
    assert s.with_random(False) is s
    assert s.with_random(True) == SegmentSampler(8, random=True)


def test_create_sampler():
    assert create_sampler("tsn", num_segments=16, random=True) == SegmentSampler(16, True)
    assert create_sampler("uniform", num_samples=4, stride=None) == UniformSampler(4, 1)
    assert create_sampler("dense", clip_len=2, num_clips=5).clip_length == 10
    with pytest.raises(ValueError, match="unknown sampler 'tsm'"):
        create_sampler("tsm")
    with pytest.raises(ValueError, match=r"unknown argument\(s\) \['stride'\]"):
        create_sampler("tsn", stride=2)


def test_snap_to_keyframes_takes_the_nearest_and_the_earlier_on_a_tie():
    keys = [0, 250, 500, 750]
    snapped = snap_to_keyframes([0, 124, 125, 126, 250, 374, 376, 700, 3749], keys)
    assert snapped.dtype == np.int64
    assert snapped.tolist() == [0, 0, 0, 250, 250, 250, 500, 750, 750]
    # a first keyframe after frame 0 (never made by the scan, which lists frame 0) still snaps
    assert snap_to_keyframes([0, 3, 9], [5]).tolist() == [5, 5, 5]
    # a TSN clip of a 150 s video with a keyframe every 250 frames: 16 segments, 15 keyframes
    tsn = SegmentSampler(16)(3750)
    snapped = snap_to_keyframes(tsn, range(0, 3750, 250))
    nearest = [min(range(0, 3750, 250), key=lambda k: (abs(k - i), k)) for i in tsn.tolist()]
    assert snapped.tolist() == nearest
    assert len(set(snapped.tolist())) < 16  # segments may share a keyframe


@pytest.mark.parametrize("keys", [[], [0, 0, 5], [5, 2]])
def test_snap_to_keyframes_refuses_unsorted_or_empty_keyframes(keys):
    with pytest.raises(ValueError, match="strictly ascending"):
        snap_to_keyframes([1, 2], keys)
