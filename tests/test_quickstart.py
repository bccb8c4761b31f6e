"""``videofocus quickstart`` end to end on a tiny config: every row, every file, reuse on rerun."""

from __future__ import annotations

import json
import math

import pytest
from PIL import Image, ImageSequence

from videofocus.benchmarks.policy import NAMES as BENCH_NAMES
from videofocus.data.manifest import read_manifest
from videofocus.labeling.results import read_results
from videofocus.quickstart import NAMES, run_quickstart

T, VIDEOS, VAL_FRACTION = 4, 24, 0.25
GLIMPSE_ROWS = ("random", "centre", "saliency", "differentiable", "ppo", "recurrent_ppo")


# float reductions, hence trained weights and exact numbers, depend on the thread count
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def tiny_yaml(tmp_path, tiny_config) -> str:
    """The tiny config with training and PPO sections and a 24-video synthetic dataset."""
    replaced = "replaced/by/the/quickstart"
    path = tiny_config.write(
        tmp_path / "tiny.yaml",
        replaced,
        replaced,
        training=True,
        ppo=True,
        synthetic=True,
        name="quickstart_test",
        data={"synthetic": {"num_videos": VIDEOS, "val_fraction": VAL_FRACTION}},
        train={"warmup_init": "dense"},
    )
    return str(path)


def _gif_frames(path) -> int:
    with Image.open(path) as gif:
        return sum(1 for _ in ImageSequence.Iterator(gif))


@pytest.mark.slow
def test_quickstart_writes_every_row_and_file_and_reuses_stages(tmp_path, tiny_yaml, capsys):
    out, config = tmp_path / "qs", tiny_yaml
    overrides = ["train.finetune_epochs=2"]
    rows = run_quickstart(out, config, overrides, differentiable_epochs=1, progress=False)
    printed = capsys.readouterr().out

    names = ["dense", "glance_only", "random", "centre", "saliency", "differentiable", "ppo"]
    assert list(NAMES) == [*names, "recurrent_ppo"]
    assert [n for n in BENCH_NAMES if n in NAMES] == list(NAMES)  # bench policy's names, order
    assert json.loads((out / "report.json").read_text()) == rows
    assert [r["name"] for r in rows] == list(NAMES)
    by = {r["name"]: r for r in rows}
    for r in rows:
        assert 0.0 <= r["accuracy"] <= 1.0
        assert r["gmacs_per_video"] > 0 and math.isfinite(r["gmacs_per_video"])
        assert r["videos_per_s"] > 0 and r["train_seconds"] >= 0
    protocols = {r["name"]: r["protocol"] for r in rows}
    assert protocols == {
        "dense": "own checkpoint",
        "glance_only": "own checkpoint",
        "random": "warm-up network",
        "centre": "warm-up network",
        "saliency": "warm-up network",
        "differentiable": "fine-tuned",
        "ppo": "warm-up network",
        "recurrent_ppo": "fine-tuned",
    }
    option = by["recurrent_ppo"]["option"]
    for name in GLIMPSE_ROWS:
        assert 0.0 <= by[name]["accuracy_warmup_net"] <= 1.0
        assert 0.0 <= by[name]["target_coverage"] <= 1.0
    for name in ("random", "centre", "saliency", "differentiable"):
        # the learned policy's most used option on every frame, hence the same glimpse cost
        assert by[name]["option"] == option and by[name]["skip_rate"] == 0.0
        if name != "differentiable":  # heuristics compute no MACs of their own
            assert by[name]["gmacs_per_video"] == pytest.approx(by["random"]["gmacs_per_video"])
    # the differentiable policy's centre network runs on every frame, and is counted
    assert by["differentiable"]["gmacs_per_video"] > by["random"]["gmacs_per_video"]
    for name in ("random", "centre", "saliency", "ppo"):  # read by the warm-up network itself
        assert by[name]["accuracy"] == by[name]["accuracy_warmup_net"]
    assert 0.0 <= by["random"]["accuracy_warmup_own_glimpses"] <= 1.0
    assert by["glance_only"]["gmacs_per_video"] < by["random"]["gmacs_per_video"]
    assert by["random"]["gmacs_per_video"] < by["dense"]["gmacs_per_video"]
    assert by["differentiable"]["epochs"] == 1  # capped below the fine-tune's 2

    # files: plot, GIF with one frame per step, one ok label per validation video
    with Image.open(out / "tradeoff.png") as png:
        assert png.format == "PNG" and png.size[0] > 100
    assert _gif_frames(out / "glimpses.gif") == T
    val = math.ceil(VIDEOS * VAL_FRACTION)
    labels = read_results(out / "labels.jsonl")
    assert len(labels) == len({r["id"] for r in labels}) == val
    assert all(r["status"] == "ok" and len(r["glimpses"]) == T for r in labels)
    # the label job reads the videos as evaluation does: same top-1 as the recurrent_ppo row
    truth = {r.id: r.labels[0] for r in read_manifest(out / "val_videos.jsonl")}
    right = sum(r["label_ids"][0] == truth[r["id"]] for r in labels)
    assert right / val == pytest.approx(by["recurrent_ppo"]["accuracy"])
    report = (out / "report.md").read_text()
    assert "| method | exit | protocol |" in report and "## How to read this" in report
    # the table names the split its rows were evaluated on (the labels line: the val videos)
    split = by["recurrent_ppo"]["split"]
    assert f", {split} split of the synthetic benchmark" in report
    assert f"top-1 on the {split} videos" in report
    for name in NAMES:
        assert f"| {name} |" in report and f"| {name} |" in printed
    assert "glimpses.gif" in printed and "labels.jsonl" in printed

    # the variant trains only its policy, on the main run's dense and warm-up stages
    runs = out / "runs"
    for stage in ("dense", "warmup"):
        assert (runs / "variants" / "ppo" / stage).is_symlink()
    assert (runs / "variants" / "ppo" / "policy" / "final").is_dir()
    assert not (runs / "variants" / "ppo" / "finetune").exists()

    # a rerun trains nothing and evaluates again, to the same numbers
    stamps = {p: p.stat().st_mtime_ns for p in runs.glob("**/final/meta.json")}
    again = run_quickstart(out, config, overrides, differentiable_epochs=1, progress=False)
    assert {p: p.stat().st_mtime_ns for p in runs.glob("**/final/meta.json")} == stamps
    assert [r["accuracy"] for r in again] == [r["accuracy"] for r in rows]
    assert len(read_results(out / "labels.jsonl")) == val
