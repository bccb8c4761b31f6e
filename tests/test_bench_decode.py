"""``videofocus bench decode --quick``: every case and backend, positive speeds, JPEG disk size,
and the per-codec sparse reads with the files a backend refuses."""

from __future__ import annotations

import json

import pytest

from videofocus.benchmarks.decode import (
    CASES,
    CODEC_CASES,
    format_codec_table,
    run_codec_benchmark,
)
from videofocus.benchmarks.decode_inputs import (
    CODEC_INPUTS,
    DecodeBenchConfig,
    prepare_codec_inputs,
)
from videofocus.cli import main
from videofocus.io.reader import available_backends


@pytest.fixture(scope="module")
def quick_rows(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bench_decode")
    out = tmp / "rows.json"
    argv = ["bench", "decode", "--quick", "--repeats", "1", "--warmup", "0"]
    argv += ["--workdir", str(tmp / "work"), "--json", str(out)]
    assert main(argv) == 0
    return json.loads(out.read_text(encoding="utf-8")), tmp / "work"


def test_every_case_times_every_backend(quick_rows):
    rows, _ = quick_rows
    video_backends = {*available_backends(), "auto"}
    for case in CASES[:-1]:
        timed = {r["backend"] for r in rows if r["case"] == case}
        assert timed == video_backends, case
    assert [r["backend"] for r in rows if r["case"] == "sparse_jpeg"] == ["jpeg (PIL)"]
    assert {r["case"] for r in rows} == set(CASES)
    for r in rows:
        assert r["frames_per_s"] > 0 and r["ms_per_video"] > 0 and r["cpu_ms_per_video"] > 0, r
        assert r["frames_per_s"] == pytest.approx(r["frames"] / r["ms_per_video"] * 1000, rel=0.02)
        assert r["resolved_backend"] in (
            set(available_backends()) if r["backend"] == "auto" else {r["backend"]}
        )
    sparse = [r for r in rows if r["case"].startswith("sparse")]
    assert {r["frames"] for r in sparse} == {16}


def test_jpeg_case_reports_disk_size(quick_rows):
    rows, workdir = quick_rows
    (jpeg,) = [r for r in rows if r["case"] == "sparse_jpeg"]
    (folder,) = [p for p in workdir.iterdir() if p.is_dir() and p.name.endswith("_q95")]
    assert jpeg["disk_bytes"] == sum(p.stat().st_size for p in folder.glob("*.jpg")) > 0
    (video,) = [p for p in workdir.glob("long_*.mp4") if "reencoded" not in p.name]
    assert jpeg["video_bytes"] == video.stat().st_size
    assert jpeg["extract_s"] > 0


def test_rerun_reuses_generated_inputs(quick_rows, capsys):
    _, workdir = quick_rows
    before = {p.name: p.stat().st_mtime_ns for p in workdir.iterdir()}
    assert main(["bench", "decode", "--quick", "--repeats", "1", "--workdir", str(workdir)]) == 0
    assert {p.name: p.stat().st_mtime_ns for p in workdir.iterdir()} == before
    table = capsys.readouterr().out
    assert "| case | backend | frames/s | ms/video | cpu ms/video | notes |" in table
    assert "sparse_short_gop" in table


def test_per_codec_rows_time_or_refuse_every_backend(tmp_path):
    config = DecodeBenchConfig(width=64, height=48, codec_seconds=1.0, long_gop=10)
    videos = prepare_codec_inputs(tmp_path, config, log=lambda line: None)
    assert set(videos) <= set(CODEC_INPUTS) and "h264-mp4" in videos
    backends = [*available_backends(), "auto"]
    rows = run_codec_benchmark(videos, backends, repeats=1, warmup=0)
    assert len(rows) == len(videos) * len(CODEC_CASES) * len(backends)
    for r in rows:
        case, name = r["case"].split(" ")
        assert case in CODEC_CASES and name in videos
        if r["frames_per_s"] is None:  # refused: never pyav, and the reason is given
            assert r["backend"] not in ("pyav", "auto") and r["notes"].startswith("refused: ")
        else:
            assert r["ms_per_video"] > 0 and r["frames"] == (16 if case == "sparse16" else 8)
    # mpeg4 with B-frames in AVI: only PyAV is trusted with it
    avi = [r for r in rows if r["case"].endswith(" mpeg4-avi")]
    assert {r["backend"] for r in avi if r["frames_per_s"] is not None} == {"pyav", "auto"}
    table = format_codec_table(rows).splitlines()
    assert len(table) == 2 + len(videos) * len(CODEC_CASES)
    (avi_line,) = [line for line in table if line.startswith("| mpeg4-avi | sparse8 |")]
    assert avi_line.endswith("| pyav |")  # refused backends never count as the fastest


def test_keyframe_case_reads_keyframes_and_reports_its_speedup(quick_rows):
    rows, _ = quick_rows
    keyframe = [r for r in rows if r["case"] == "sparse_keyframe"]
    exact = {r["backend"]: r for r in rows if r["case"] == "sparse"}
    assert {r["backend"] for r in keyframe} == {*available_backends(), "auto"}
    for r in keyframe:
        # the quick long video: 150 frames, keyframes 0, 75: 16 segments share 2 keyframes
        assert "2 distinct keyframes for 16 segments" in r["notes"]
        ratio = exact[r["backend"]]["ms_per_video"] / r["ms_per_video"]
        assert r["speedup_vs_exact"] == pytest.approx(ratio, abs=0.06)
        assert f"{r['speedup_vs_exact']:.1f}x faster than sparse (exact)" in r["notes"]


def test_cases_option_times_and_builds_only_those_cases(tmp_path, capsys):
    work = tmp_path / "work"
    argv = ["bench", "decode", "--quick", "--repeats", "1", "--warmup", "0"]
    argv += ["--workdir", str(work), "--cases", "sparse,sparse_keyframe"]
    assert main([*argv, "--json", str(tmp_path / "rows.json")]) == 0
    rows = json.loads((tmp_path / "rows.json").read_text(encoding="utf-8"))
    per_case = len(available_backends()) + 1  # and auto
    assert [r["case"] for r in rows] == ["sparse"] * per_case + ["sparse_keyframe"] * per_case
    assert [p.name.split("_")[0] for p in work.iterdir()] == ["long"]  # no clip, JPEGs, re-encode
    capsys.readouterr()
    assert main([*argv[:-1], "sparse,nope"]) == 2  # a usage error, one line
    assert (
        "--cases: unknown case 'nope'; choose from full_decode, sparse, " in capsys.readouterr().err
    )
