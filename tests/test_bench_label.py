"""`videofocus bench label` on a tiny generated dataset: every row, real numbers, the JSON."""

from __future__ import annotations

import json

import pytest

from videofocus.benchmarks.label import NAMES, acceptance, format_table
from videofocus.cli import main


@pytest.mark.slow
def test_bench_label_rows_with_random_weights(tmp_path, tiny_data, tiny_config, capsys) -> None:
    config = tiny_config.write(
        tmp_path / "tiny.yaml", tiny_data, tmp_path / "runs", name="bench_label_test"
    )
    out = tmp_path / "label.json"
    argv = ["bench", "label", "--config", str(config), "--json", str(out), "--no-progress"]
    assert main([*argv, "--workers", "1", "--batch-size", "4"]) == 0
    printed = capsys.readouterr()
    assert "RANDOM weights" in printed.err  # no trained run folder: said loudly
    rows = json.loads(out.read_text())
    assert [r["name"] for r in rows] == list(NAMES)
    by = {r["name"]: r for r in rows}
    assert all(r["videos_per_s"] > 0 for r in rows) and by["decode_only"]["videos"] == 16
    assert by["dense"]["gmacs_per_video"] > by["adaptive"]["gmacs_per_video"] > 0
    # the budget (by default halfway down to everyone exiting after one chunk) costs less
    budget = by["adaptive_budget"]["budget_gmacs"]
    assert 0 < budget < by["adaptive"]["gmacs_per_video"]
    assert by["adaptive_budget"]["gmacs_per_video"] < by["adaptive"]["gmacs_per_video"]
    for name in ("dense", "adaptive", "adaptive_budget"):
        assert by[name]["model_videos_per_s"] > 0 and by[name]["failed"] == 0
    assert "| adaptive |" in printed.out and "decode-only" in printed.out


def test_acceptance_lines() -> None:
    def row(name, speed, gmacs=0.1):
        return {"name": name, "videos_per_s": speed, "gmacs_per_video": gmacs}

    rows = [
        row("decode_only", 100.0, 0.0),
        row("dense", 20.0, 1.0),
        row("adaptive", 75.0),
        row("adaptive_budget", 65.0, 0.05),
    ]
    lines = acceptance(rows)
    assert lines[0].startswith("[pass]") and "3.75x" in lines[0]
    assert lines[1].startswith("[pass]") and "75%" in lines[1]
    assert lines[2].startswith("[pass]") and "3.25x" in lines[2]
    assert lines[3].startswith("[MISS]") and "65%" in lines[3]
    assert "| dense | 20.0 |" in format_table(rows)


def test_ray_rows_are_compared_with_the_in_process_adaptive_row_in_steady_state() -> None:
    rows = [
        {"name": "decode_only", "videos_per_s": 120.0, "gmacs_per_video": 0.0},
        {"name": "dense", "videos_per_s": 20.0, "gmacs_per_video": 1.0},
        {"name": "adaptive", "videos_per_s": 100.0, "gmacs_per_video": 0.1},
        {"name": "adaptive_budget", "videos_per_s": 110.0, "gmacs_per_video": 0.05},
        {"name": "adaptive_ray", "videos_per_s": 85.0, "gmacs_per_video": 0.1, "startup_s": 9.5},
        {
            "name": "adaptive_ray_2actors",
            "videos_per_s": 70.0,
            "gmacs_per_video": 0.1,
            "startup_s": 12.0,
        },
    ]
    from videofocus.benchmarks.label import RAY_ROWS

    lines = [line for line in acceptance(rows) if "ray" in line]
    assert [name for name, _ in RAY_ROWS] == ["adaptive_ray", "adaptive_ray_2actors"]
    assert lines[0].startswith("[pass]") and "85%" in lines[0] and "9.5 s" in lines[0]
    assert lines[1].startswith("[MISS]") and "70%" in lines[1]
    assert "| adaptive_ray | 85.0 |" in format_table(rows) and "| 9.5 |" in format_table(rows)
