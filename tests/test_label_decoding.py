"""Label-time decoding: every input yields a clip or an error reason, within a deadline, and the
times of the frames it read."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from videofocus.config import DataConfig
from videofocus.io.writer import write_video
from videofocus.labeling.decoding import DecodeTimeout, LabelClips, collate_decoded, deadline
from videofocus.labeling.inputs import LabelItem


def test_deadline_interrupts_a_slow_block_and_restores_the_alarm() -> None:
    start = time.perf_counter()
    with pytest.raises(DecodeTimeout, match="longer than 0.2 s"), deadline(0.2):
        time.sleep(5)
    assert time.perf_counter() - start < 2
    with deadline(0.2):  # a fast block is untouched, and no alarm is left behind
        pass
    time.sleep(0.3)


def test_a_decode_over_the_deadline_becomes_an_error_row(tmp_path, tiny_data, monkeypatch):
    video = sorted((tiny_data / "videos").glob("*.mp4"))[0]
    items = [
        LabelItem("slow", video),
        LabelItem("ok", video),
        LabelItem("gone", tmp_path / "x.mp4"),
    ]
    data = DataConfig(root=str(tiny_data), frames=4, frame_size=48)
    clips = LabelClips(items, data, timeout=0.3)
    original = LabelClips._decode

    def slow_first(self, item):
        if item.id == "slow":
            time.sleep(5)
        return original(self, item)

    monkeypatch.setattr(LabelClips, "_decode", slow_first)
    batch = collate_decoded([clips[i] for i in range(3)])
    assert batch.indices == [1] and tuple(batch.frames.shape) == (1, 4, 3, 48, 48)
    reasons = {index: error for index, error, _ in batch.failures}
    assert "longer than 0.3 s" in reasons[0] and str(video) in reasons[0]
    assert "file not found" in reasons[2] and str(Path(tmp_path / "x.mp4")) in reasons[2]


@pytest.mark.parametrize(
    ("sampling", "times"),
    [("exact", [0.16, 0.56, 0.96, 1.36]), ("keyframe", [0.0, 0.64, 0.96, 1.28])],
)
def test_clips_report_the_times_of_the_frames_read(tmp_path, sampling, times) -> None:
    # 40 frames at 25 fps, frame i a flat grey 5 * i, a keyframe every 8 frames
    frames = [np.full((48, 64, 3), 5 * i, dtype=np.uint8) for i in range(40)]
    write_video(tmp_path / "v.mp4", frames, fps=25.0, crf=0, gop=8)
    data = DataConfig(root=str(tmp_path), frames=4, frame_size=48, sampling=sampling)
    clip = LabelClips([LabelItem("v", tmp_path / "v.mp4")], data)[0]
    assert clip["error"] is None
    # TSN frames 4, 14, 24, 34; keyframe sampling reads the nearest keyframes 0 (a tie with 8
    # goes to the earlier), 16, 24, 32
    assert clip["sampled_times"].tolist() == pytest.approx(times)
    grey = clip["frames"].float().mean(dim=(1, 2, 3)) / 5
    assert grey.round().tolist() == [round(t * 25) for t in times]
    batch = collate_decoded([clip])
    assert batch.sampled_times == [clip["sampled_times"].tolist()]
