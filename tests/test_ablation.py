"""``videofocus ablate``: grid parsing and validation, variant naming, stage sharing by config hash,
resumable per-variant results, the report files, the shipped grids, and a killed-then-resumed
end-to-end run of a 2-variant grid on the tiny synthetic data."""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from videofocus import exit_status
from videofocus.cli import ablate as command
from videofocus.cli import main
from videofocus.cli.ablate import add_arguments as ablate_arguments
from videofocus.experiment import (
    GridError,
    expand_grid,
    load_grid,
    plan_stages,
    run_grid,
    runner,
)
from videofocus.experiment.grid import Budget, Truncate, value_label
from videofocus.experiment.report import format_markdown, plot_rows, write_report
from videofocus.experiment.runner import (
    VariantFailed,
    describe_plan,
    evaluate_variant,
    run_variant,
    variant_rows,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def write_grid(tiny_config) -> Callable[..., Path]:
    """``write_grid(folder, text, name="grid.yaml", data_root="unused-data") -> Path``: a grid
    ``text`` on ``base.yaml``, the tiny config (training and 32 PPO steps on the CPU) beside it."""

    def write(
        folder: Path, text: str, name: str = "grid.yaml", data_root: Path | str = "unused-data"
    ) -> Path:
        cpu = {"device": "cpu"}
        tiny_config.write(
            folder / "base.yaml", data_root, training=True, ppo=True, name="ablate_test", train=cpu
        )
        path = folder / name
        path.write_text("base: base.yaml\n" + text, encoding="utf-8")
        return path

    return write


@pytest.fixture
def grid_error(write_grid) -> Callable[[Path, str], GridError]:
    """``grid_error(folder, text) -> GridError``: the error expanding that grid raises."""

    def expand(folder: Path, text: str) -> GridError:
        path = write_grid(folder, text)
        with pytest.raises(GridError) as info:
            expand_grid(load_grid(path))
        assert info.value.source == str(path)
        return info.value

    return expand


# ------------------------------------------------------------------------- parsing, validation


def test_unknown_top_level_key_names_file_and_key(tmp_path, grid_error):
    err = grid_error(tmp_path, "polices: [random]\n")
    assert "unknown key 'polices'" in str(err) and "policies" in str(err)


def test_bad_policy_name_is_rejected(tmp_path, grid_error):
    err = grid_error(tmp_path, "policies: [recurrent_ppo, rnadom]\n")
    assert err.key == "policies[1]" and "'rnadom'" in err.message and "saliency" in err.message


def test_bad_axis_key_names_the_axis(tmp_path, grid_error):
    err = grid_error(tmp_path, "axes:\n  policy.cost_lamda: [0.0, 0.1]\n")
    assert err.key == "axes.policy.cost_lamda"
    assert "did you mean 'policy.cost_lambda'" in err.message


def test_bad_axis_value_names_the_axis(tmp_path, grid_error):
    err = grid_error(tmp_path, "axes:\n  policy.reward: [adafocus, nonsense]\n")
    assert err.key == "axes.policy.reward" and "nonsense" in err.message


@pytest.mark.parametrize(
    ("text", "key", "words"),
    [
        ("axes:\n  policy.algo: [ppo]\n", "axes.policy.algo", "policies:"),
        ("axes:\n  exit.thresholds: [[0.9]]\n", "axes.exit.thresholds", "exit_thresholds"),
        ("overrides: [train.out_dir=x]\n", "overrides[0]", "--out"),
        ("variants:\n  - {name: a, overides: []}\n", "variants[0].overides", "unknown key"),
        ("variants:\n  - {name: 'a b'}\n", "variants[0].name", "folder-safe"),
        ("exit_thresholds: [[0.9, 0.8]]\n", "exit_thresholds[0]", "data.frames = 4"),
        ("exit_thresholds: [[-1]]\n", "exit_thresholds[0]", ">= 0"),
        ("axes:\n  policy.option: [3]\npolicies: [random]\n", "axes.policy.option", "2 entries"),
        ("policies: [random]\nexit_thresholds: [null, [0.9]]\n", "policies", "heuristic"),
        ("axes:\n  train.epochs: [1, 1]\n", "axes.train.epochs", "distinct"),
        ("variants:\n  - {name: recurrent_ppo}\n", "variants[0].name", "already a variant"),
        ("exit_thresholds: [{max_steps: 0}]\n", "exit_thresholds[0].max_steps", ">= 1"),
        ("exit_thresholds: [{max_steps: 2, of: x}]\n", "exit_thresholds[0].budget_share", "> 0"),
        ("policies: [oracle]\nexit_thresholds: [{max_steps: 2}]\n", "policies", "heuristic"),
        (
            "exit_thresholds: [{budget_share: 0.5, glance_exit: 1}]\n",
            "exit_thresholds[0].glance_exit",
            "true or false",
        ),
    ],
)
def test_grid_errors_name_the_grid_key(tmp_path, grid_error, text, key, words):
    err = grid_error(tmp_path, text)
    assert err.key == key and words in err.message, str(err)


def test_missing_base_and_yaml_errors(tmp_path):
    path = tmp_path / "g.yaml"
    path.write_text("base: nowhere.yaml\n")
    with pytest.raises(GridError, match="nowhere.yaml"):
        load_grid(path)
    path.write_text("base: [unclosed\n")
    with pytest.raises(GridError, match="malformed YAML"):
        load_grid(path)


# ------------------------------------------------------------------------------------- naming


def test_variant_names_axes_and_ignored_axes(tmp_path, write_grid):
    grid = load_grid(
        write_grid(
            tmp_path,
            "policies: [recurrent_ppo, random, dense]\n"
            "axes:\n"
            "  model.options: [[{extent: 0.25, resolution: 12}], [{extent: 0.5, resolution: 24}]]\n"
            "  policy.cost_lambda: [0.0, 1e-2]\n"
            "variants:\n"
            "  - {name: no_skip, overrides: [policy.allow_skip=false]}\n"
            "  - {name: centre_small, policy: centre, overrides: ['model.grid=5']}\n",
        )
    )
    variants = expand_grid(grid)
    names = [v.name for v in variants]
    # heuristics and baselines ignore policy.* axes: one variant per options value, not two
    assert names == [
        "recurrent_ppo__options=0.25x12__cost_lambda=0.0",
        "recurrent_ppo__options=0.25x12__cost_lambda=0.01",
        "recurrent_ppo__options=0.5x24__cost_lambda=0.0",
        "recurrent_ppo__options=0.5x24__cost_lambda=0.01",
        "random__options=0.25x12",
        "random__options=0.5x24",
        "dense__options=0.25x12",
        "dense__options=0.5x24",
        "no_skip",
        "centre_small",
    ]
    by = {v.name: v for v in variants}
    lam = by["recurrent_ppo__options=0.5x24__cost_lambda=0.01"]
    assert lam.cfg.policy.cost_lambda == 0.01 and lam.cfg.model.options[0].resolution == 24
    assert lam.curve == "recurrent_ppo__options=0.5x24"  # a line over the lambda sweep
    assert by["random__options=0.5x24"].option == 1  # the last (only) option
    assert by["no_skip"].policy == "recurrent_ppo" and not by["no_skip"].cfg.policy.allow_skip
    assert by["centre_small"].option == 2 and by["centre_small"].cfg.model.grid == 5
    assert by["dense__options=0.25x12"].option is None
    # the same grid expands to the same names again (stable folders)
    assert [v.name for v in expand_grid(load_grid(grid.path))] == names


def test_value_labels_are_short_and_folder_safe():
    assert value_label(0.02) == "0.02" and value_label(False) == "false"
    assert value_label(None) == "null" and value_label("adafocus") == "adafocus"
    assert value_label([{"extent": 0.25, "resolution": 32}, {"extent": 1.0, "resolution": 8}]) == (
        "0.25x32+1.0x8"
    )
    assert value_label("a/b c") == "a-b-c"


def test_keys_with_the_same_last_part_keep_their_full_name(tmp_path, write_grid):
    grid = load_grid(write_grid(tmp_path, "axes:\n  train.seed: [0, 1]\n  policy.seed: [2]\n"))
    assert [v.name for v in expand_grid(grid)] == [
        "recurrent_ppo__train.seed=0__policy.seed=2",
        "recurrent_ppo__train.seed=1__policy.seed=2",
    ]


def test_policy_option_axis_sets_the_heuristic_option(tmp_path, write_grid):
    grid = load_grid(
        write_grid(tmp_path, "policies: [recurrent_ppo, random]\naxes:\n  policy.option: [1, 2]\n")
    )
    variants = expand_grid(grid)
    assert [(v.name, v.option) for v in variants] == [
        ("recurrent_ppo", None),
        ("random__option=1", 1),
        ("random__option=2", 2),
    ]
    plans = {v.name: plan_stages(v)[-1].name for v in variants}
    assert plans["random__option=1"] == "finetune_random_o1"


def test_seeds_copy_every_variant_with_its_references(tmp_path, write_grid):
    grid = load_grid(
        write_grid(
            tmp_path,
            "policies: [recurrent_ppo]\n"
            "variants:\n"
            "  - {name: dense, policy: dense}\n"
            "  - {name: rnd, policy: random, option_of: recurrent_ppo, finetune: false}\n"
            "  - {name: exit, policy: recurrent_ppo, exit: [{budget_share: 0.5, of: dense}]}\n"
            "seeds: [3, 4]\n",
        )
    )
    variants = expand_grid(grid)
    # seed-major, so an interrupted run has whole seeds finished
    assert [v.name for v in variants] == [
        f"{n}__seed={s}" for s in (3, 4) for n in ("recurrent_ppo", "dense", "rnd", "exit")
    ]
    by = {v.name: v for v in variants}
    rnd = by["rnd__seed=4"]
    assert rnd.option_of == "recurrent_ppo__seed=4" and rnd.method == "rnd" and rnd.seed == 4
    assert rnd.cfg.train.seed == 4 and rnd.cfg.policy.seed == 4
    assert by["exit__seed=3"].exits[0].of == "dense__seed=3"
    # each seed trains its own stages; the exit copy shares the learned copy's
    keys = {
        n: [p.key for p in plan_stages(by[n])] for n in ("recurrent_ppo__seed=3", "exit__seed=3")
    }
    assert keys["recurrent_ppo__seed=3"] == keys["exit__seed=3"]
    assert plan_stages(by["recurrent_ppo__seed=4"])[0].key != keys["exit__seed=3"][0]
    for bad in ("[1, 1]", "[]", "[true]", "[null, 1]"):
        with pytest.raises(GridError, match="seeds"):
            load_grid(write_grid(tmp_path, f"seeds: {bad}\n", name="bad.yaml"))


def test_truncation_and_budgets_at_a_truncations_cost_parse(tmp_path, write_grid):
    grid = load_grid(
        write_grid(
            tmp_path,
            "policies: [recurrent_ppo]\n"
            "variants:\n"
            "  - {name: cut, exit: [{max_steps: 2}, {max_steps: 3}]}\n"
            "  - {name: ex, exit: [{budget_share: 1, of: cut, max_steps: 2}]}\n"
            "  - {name: best, policy: oracle, option_of: cut}\n",
        )
    )
    by = {v.name: v for v in expand_grid(grid)}
    assert by["cut"].exits == (Truncate(2), Truncate(3))
    assert by["ex"].exits == (Budget(1.0, "cut", 2),)
    assert by["ex"].exits[0].to_json() == {"budget_share": 1.0, "of": "cut", "max_steps": 2}
    # a budget without max_steps keeps the JSON (and so the result key) it always had
    assert Budget(0.5, "dense").to_json() == {"budget_share": 0.5, "of": "dense"}
    # so does one without the glance exit; with it, the entry says so
    glance = load_grid(
        write_grid(tmp_path, "exit_thresholds: [{budget_share: 0.5, glance_exit: true}]\n")
    )
    assert glance.exit_thresholds == (Budget(0.5, None, None, glance_exit=True),)
    assert glance.exit_thresholds[0].to_json() == {
        "budget_share": 0.5,
        "of": None,
        "glance_exit": True,
    }
    # the oracle trains a fine-tune stage of its own on the warm-up, like the heuristics
    oracle = dataclasses.replace(by["best"], option=2)
    assert [p.name for p in plan_stages(oracle)] == ["warmup", "finetune_oracle_o2"]
    assert oracle.protocol == "fine-tuned"


def test_cli_overrides_apply_to_every_variant(tmp_path, write_grid):
    grid = load_grid(write_grid(tmp_path, "axes:\n  train.epochs: [1, 3]\n"))
    variants = expand_grid(grid, ["train.batch_size=2", "train.epochs=7"])
    assert [v.cfg.train.batch_size for v in variants] == [2, 2]
    assert [v.cfg.train.epochs for v in variants] == [1, 3]  # the axis wins over the globals
    with pytest.raises(GridError, match="train.batchsize"):
        expand_grid(grid, ["train.batchsize=2"])


# ------------------------------------------------------------------------- shared stage hashes


def test_variants_differing_in_policy_share_dense_and_warmup(tmp_path, write_grid):
    grid = load_grid(
        write_grid(
            tmp_path,
            "overrides: [train.warmup_init=dense]\n"
            "policies: [recurrent_ppo, ppo, random, dense]\n"
            "axes:\n  policy.cost_lambda: [0.0, 0.5]\n"
            "variants:\n"
            "  - {name: long_finetune, overrides: [train.finetune_epochs=3]}\n"
            "  - {name: more_epochs, overrides: [train.epochs=2]}\n",
        )
    )
    plans = {v.name: {p.name: p for p in plan_stages(v)} for v in expand_grid(grid)}
    a, b = plans["recurrent_ppo__cost_lambda=0.0"], plans["recurrent_ppo__cost_lambda=0.5"]
    assert list(a) == ["dense", "warmup", "policy", "finetune"]
    assert a["dense"].key == b["dense"].key and a["warmup"].key == b["warmup"].key
    assert a["policy"].key != b["policy"].key and a["finetune"].key != b["finetune"].key
    assert a["warmup"].key.startswith("warmup-") and a["warmup"].needs == ("dense",)
    assert a["finetune"].needs == ("warmup", "policy")
    assert plans["ppo__cost_lambda=0.0"]["warmup"].key == a["warmup"].key
    assert plans["ppo__cost_lambda=0.0"]["policy"].key != a["policy"].key  # policy.algo differs
    # the heuristic fine-tunes the same warm-up; the dense baseline is the warm-up's dense init
    assert plans["random"]["warmup"].key == a["warmup"].key
    assert list(plans["random"]) == ["dense", "warmup", "finetune_random_o2"]
    assert list(plans["dense"]) == ["dense"] and plans["dense"]["dense"].key == a["dense"].key
    # fine-tune fields change only the fine-tune stage; train.epochs changes every stage
    ft = plans["long_finetune"]
    assert ft["policy"].key == a["policy"].key and ft["finetune"].key != a["finetune"].key
    more = plans["more_epochs"]
    assert all(more[s].key != a[s].key for s in a)


def test_exit_thresholds_do_not_change_stages(tmp_path, write_grid):
    plain = load_grid(write_grid(tmp_path, "", name="a.yaml"))
    sweep = load_grid(write_grid(tmp_path, "exit_thresholds: [null, [0.9]]\n", name="b.yaml"))
    keys = [[p.key for p in plan_stages(expand_grid(g)[0])] for g in (plain, sweep)]
    assert keys[0] == keys[1]


# ------------------------------------------------------------------- runner with fake training


@pytest.fixture
def fake_training(monkeypatch):
    """Training and evaluation replaced by bookkeeping: ``calls`` lists what was evaluated."""
    calls: list[tuple[str, list[float] | None]] = []

    def train(cfg, variant, plan, keys, stages_dir, progress, log):
        if variant.name.startswith("broken"):
            raise RuntimeError("the loss went NaN")
        return stages_dir / plan.key / plan.name / "final"

    def evaluate(variant, cfg, thresholds, budget_of=None, calibration=None):
        calls.append((variant.name, thresholds))
        gmacs = 1.0 + variant.cfg.policy.cost_lambda + (thresholds or [1.0])[0]
        return {
            "exit": thresholds,
            "exit_thresholds": thresholds,
            "accuracy": 0.5,
            "top5": 1.0,
            "gmacs_per_video": gmacs,
            "videos_per_s": 10.0,
        }

    monkeypatch.setattr(runner, "_train_stage", train)
    monkeypatch.setattr(runner, "evaluate_variant", evaluate)
    monkeypatch.setattr(runner, "train_seconds", lambda *finals: 12.5)
    return calls


def test_finished_results_are_reused_and_missing_entries_added(tmp_path, write_grid, fake_training):
    grid = load_grid(write_grid(tmp_path, "axes:\n  policy.cost_lambda: [0.0]\n"))
    variant = expand_grid(grid)[0]
    out = tmp_path / "out"
    record = run_variant(variant, out, progress=False, log=lambda line: None)
    result = out / "variants" / variant.name / "result.json"
    assert json.loads(result.read_text()) == record
    assert record["fingerprint"] == plan_stages(variant)[-1].key
    stages = [plan.name for plan in plan_stages(variant)]
    assert record["stage_seconds"] == dict.fromkeys(stages, 12.5)
    assert record["train_seconds"] == 12.5 * len(stages)
    assert record["protocol"] == "fine-tuned" and fake_training == [(variant.name, None)]
    links = out / "variants" / variant.name
    assert (links / "warmup").is_symlink() and (links / "finetune").is_symlink()
    assert os.readlink(links / "policy") == f"../../stages/{record['stages']['policy']}/policy"

    lines: list[str] = []
    stamp = result.stat().st_mtime_ns
    assert run_variant(variant, out, False, lines.append) == record
    assert fake_training == [(variant.name, None)] and result.stat().st_mtime_ns == stamp
    assert lines == [f"reused finished result {result}"]

    again = run_variant(replace(variant, exits=(None, [0.8])), out, False, lines.append)
    assert fake_training[1:] == [(variant.name, [0.8])]  # only the new entry is evaluated
    assert [e["exit_thresholds"] for e in again["evaluations"]] == [None, [0.8]]

    changed = expand_grid(grid, ["train.epochs=2"])[0]  # same name, other stages
    assert "[result done]" in describe_plan([variant], out)
    assert "[result done]" not in describe_plan([changed], out)  # a result of other stages
    run_variant(changed, out, False, lines.append)
    assert fake_training[2:] == [(variant.name, None)]
    assert any(line.startswith("config changed since") for line in lines)


def test_failed_variant_stops_the_grid_and_keeps_finished_rows(tmp_path, write_grid, fake_training):
    grid = load_grid(
        write_grid(
            tmp_path,
            "axes:\n  policy.cost_lambda: [0.0, 0.5]\n"
            "variants:\n  - {name: broken, overrides: [policy.ent_coef=0.5]}\n",
        )
    )
    out = tmp_path / "out"
    with pytest.raises(VariantFailed, match="variant 'broken' failed with RuntimeError") as info:
        run_grid(grid, out, progress=False, log=lambda line: None)
    assert isinstance(info.value.__cause__, RuntimeError)
    assert "2 variant(s) finished" in str(info.value)
    with open(out / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["name"] for r in rows] == [
        "recurrent_ppo__cost_lambda=0.0",
        "recurrent_ppo__cost_lambda=0.5",
    ]
    assert not (out / "variants" / "broken" / "result.json").exists()


def test_command_runs_lists_and_reports_failure(tmp_path, write_grid, fake_training, capsys):
    grid = write_grid(tmp_path, "axes:\n  policy.cost_lambda: [0.0, 0.5]\n")
    parser = argparse.ArgumentParser()
    ablate_arguments(parser)
    out = tmp_path / "out"
    args = parser.parse_args([str(grid), "--out", str(out), "--dry-run"])
    assert command.run(args) == 0
    listed = capsys.readouterr().out.splitlines()
    assert len(listed) == 2 and "(x2)" in listed[0] and listed[0].count("->") == 2
    assert not out.exists()

    args = parser.parse_args([str(grid), "--out", str(out), "--no-progress"])
    assert command.run(args) == 0
    printed = capsys.readouterr()
    assert "| recurrent_ppo__cost_lambda=0.5 | recurrent_ppo | fine-tuned | 0.5 |" in printed.out
    assert "[2/2] recurrent_ppo__cost_lambda=0.5" in printed.err

    bad = write_grid(tmp_path, "variants:\n  - {name: broken}\n", name="bad.yaml")
    args = parser.parse_args([str(bad), "--out", str(tmp_path / "bad")])
    with pytest.raises(VariantFailed, match="variant 'broken' failed with RuntimeError: the loss"):
        command.run(args)
    capsys.readouterr()
    # the videofocus command says it in one line, with the status of the cause (a RuntimeError)
    assert main(["ablate", str(bad), "--out", str(tmp_path / "bad2")]) == exit_status.INTERNAL
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith("videofocus: error: variant 'broken' failed with RuntimeError: the")
    assert not any("Traceback" in line for line in err)


# --------------------------------------------------------------------------------- evaluation


def test_exit_thresholds_go_through_evaluate_adaptive(tmp_path, write_grid, monkeypatch):
    import videofocus.experiment.runner as runner_module

    seen = {}

    def fake(cfg, checkpoint, thresholds=None, **kwargs):
        seen.update(cfg=cfg, checkpoint=checkpoint, thresholds=thresholds)
        return {
            "accuracy": 0.75,
            "top5": 1.0,
            "gmacs_per_video": 0.5,
            "videos_per_s": 9.0,
            "exit_fraction": [0.25, 0.75],
            "video_index": [0, 1],
            "video_correct": [1, 0],
        }

    monkeypatch.setattr(runner_module, "evaluate_adaptive", fake)
    grid = load_grid(write_grid(tmp_path, "exit_thresholds: [[0.9]]\n"))
    variant = expand_grid(grid)[0]
    run = tmp_path / "variants" / variant.name
    cfg = replace(variant.cfg, train=replace(variant.cfg.train, out_dir=str(run)))
    result = evaluate_variant(variant, cfg, [0.9])
    assert result == {
        "exit": [0.9],
        "exit_thresholds": [0.9],
        "accuracy": 0.75,
        "top5": 1.0,
        "gmacs_per_video": 0.5,
        "videos_per_s": 9.0,
        "exit_fraction": [0.25, 0.75],
        "video_index": [0, 1],
        "video_correct": [1, 0],
    }
    assert seen["checkpoint"] == run / "finetune" / "final" and seen["thresholds"] == [0.9]
    assert seen["cfg"].exit.thresholds == [0.9]


def test_rows_have_axis_columns_and_curves(tmp_path, write_grid):
    grid = load_grid(
        write_grid(
            tmp_path,
            "policies: [recurrent_ppo, centre]\n"
            "axes:\n  policy.cost_lambda: [0.5]\n  policy.option: [2]\n"
            "variants:\n  - {name: lam, overrides: [policy.cost_lambda=0.25]}\n"
            "exit_thresholds: [null, [0.9]]\n",
            name="rows.yaml",
        )
    )
    # a heuristic with thresholds is an error; keep recurrent_ppo only for the rows
    with pytest.raises(GridError, match="heuristic"):
        expand_grid(grid)
    grid = load_grid(
        write_grid(
            tmp_path,
            "policies: [recurrent_ppo, centre]\n"
            "axes:\n  policy.cost_lambda: [0.5]\n  policy.option: [2]\n"
            "variants:\n  - {name: lam, overrides: [policy.cost_lambda=0.25]}\n",
        )
    )
    entry = {"accuracy": 0.5, "top5": 1.0, "gmacs_per_video": 2.0, "videos_per_s": 3.0}
    record = {
        "protocol": "fine-tuned",
        "train_seconds": 4.0,
        "stage_seconds": {"warmup": 1.0, "policy": 1.0, "finetune": 2.0},
        "checkpoint": "run/finetune/final",
        "evaluations": [{"exit_thresholds": None, **entry}],
    }
    rows = {v.name: variant_rows(v, record, grid)[0] for v in expand_grid(grid)}
    assert rows["recurrent_ppo__cost_lambda=0.5"]["policy.option"] is None
    assert rows["centre__option=2"]["policy.cost_lambda"] is None
    assert rows["centre__option=2"]["policy.option"] == 2
    assert rows["lam"]["policy.cost_lambda"] == 0.25  # an explicit variant: from its config
    assert list(rows["lam"])[:5] == [
        "name",
        "policy",
        "protocol",
        "policy.cost_lambda",
        "policy.option",
    ]
    assert rows["recurrent_ppo__cost_lambda=0.5"]["curve"] == "recurrent_ppo"


# ------------------------------------------------------------------------------------- report


def test_report_files(tmp_path):
    rows = [
        {
            "name": f"recurrent_ppo__cost_lambda={lam}",
            "policy": "recurrent_ppo",
            "policy.cost_lambda": lam,
            "exit_thresholds": thresholds,
            "accuracy": acc,
            "top5": 1.0,
            "gmacs_per_video": gmacs,
            "videos_per_s": 100.0,
            "train_seconds": 12.0,
            "curve": f"lambda {lam}",
        }
        for lam, thresholds, acc, gmacs in [
            (0.0, None, 0.9, 2.0),
            (0.0, [0.8], 0.85, 1.0),
            (0.5, None, 0.7, 0.5),
        ]
    ]
    rows.append({**rows[0], "name": "random", "policy": "random", "policy.cost_lambda": None})
    paths = write_report(rows, tmp_path / "out", title="demo")
    with open(paths["csv"], newline="") as fh:
        read = list(csv.DictReader(fh))
    assert [r["name"] for r in read] == [r["name"] for r in rows]
    assert read[1]["exit_thresholds"] == "[0.8]" and read[0]["exit_thresholds"] == ""
    assert read[3]["policy.cost_lambda"] == "" and float(read[2]["accuracy"]) == 0.7
    text = paths["markdown"].read_text()
    assert text.startswith("# demo\n")
    assert "| variant | policy | policy.cost_lambda | exit thresholds | top-1 |" in text
    assert "| recurrent_ppo__cost_lambda=0.0 | recurrent_ppo | 0.0 | 0.8 | 85.0% | 100.0% |" in text
    assert "| random | random | - | - | 90.0% |" in text and "curve" not in text
    png = paths["plot"].read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5000
    assert not list((tmp_path / "out").glob(".*tmp*"))
    labels = [p["name"] for p in plot_rows(rows)]
    assert labels[1] == "recurrent_ppo__cost_lambda=0.0 @0.8" and labels[0] == rows[0]["name"]
    # budgets and truncations are labelled by what they are, not by calibrated threshold lists
    cut = {"name": "cut", "exit": {"max_steps": 2}, "exit_thresholds": None}
    ex = {"name": "ex", "exit": {"budget_share": 1.0, "of": "cut", "max_steps": 2}}
    assert [p["name"] for p in plot_rows([cut, {**ex, "exit_thresholds": [0.71, 0.0]}])] == [
        "cut @first 2 steps",
        "ex @budget: 2-step cost",
    ]


def test_report_passes_curves_to_the_plot(tmp_path, monkeypatch):
    import videofocus.viz.tradeoff as tradeoff

    seen = {}

    def fake(rows, path, title=None, curve_key="curve"):
        seen.update(rows=rows, title=title, curve_key=curve_key)
        Path(path).write_bytes(b"png")
        return Path(path)

    monkeypatch.setattr(tradeoff, "plot_tradeoff", fake)
    row = {"name": "a", "accuracy": 0.5, "gmacs_per_video": 1.0, "curve": "a"}
    write_report([row, {**row, "exit_thresholds": [0.9]}], tmp_path, title="t")
    assert seen["curve_key"] == "curve" and seen["title"] == "t"
    assert [r["name"] for r in seen["rows"]] == ["a", "a @0.9"]
    assert (tmp_path / "tradeoff.png").read_bytes() == b"png"
    assert format_markdown([row]).splitlines()[0] == "| variant | top-1 | GMACs / video |"


# ------------------------------------------------------------------------------ shipped grids


@pytest.mark.parametrize(
    ("name", "count", "entries"),
    [
        ("learned_vs_heuristics", 4, 1),
        ("patch_size", 6, 1),
        ("reward", 4, 1),
        ("skipping", 8, 1),
        ("early_exit", 1, 8),
        ("backbones", 15, 1),
    ],
)
def test_shipped_grids_expand(name, count, entries):
    grid = load_grid(REPO / "configs" / "ablations" / f"{name}.yaml")
    variants = expand_grid(grid)
    assert len(variants) == count and len(grid.exit_thresholds) == entries
    assert len({v.name for v in variants}) == count
    assert all(v.cfg.data.frame_size == 128 for v in variants)  # all on synthetic_tiny
    plans = [plan_stages(v) for v in variants]
    if name in ("reward", "skipping", "learned_vs_heuristics"):  # one warm-up for all
        assert len({p[1].key for p in plans}) == 1
    if name == "patch_size":
        sides = sorted({v.cfg.model.options[0].extent * 128 for v in variants})
        assert sides == [56.0, 72.0, 88.0]
        # the dense baseline reads no glimpse option: one dense stage for the whole grid, and
        # one warm-up per patch size (shared by the learned and the random variant)
        assert len({p[0].key for p in plans}) == 1 and {p[0].name for p in plans} == {"dense"}
        assert len({p[1].key for p in plans}) == 3
    if name == "early_exit":  # the glance exit's budgets, calibrated for shares of its cost
        glance = [e for e in grid.exit_thresholds if isinstance(e, Budget) and e.glance_exit]
        assert [(e.share, e.of) for e in glance] == [(0.5, None), (0.75, None)]
    if name == "reward":
        assert [v.cfg.policy.reward for v in variants] == [
            "adafocus",
            "confidence_gain",
            "confidence",
            "skip_gain",
        ]
    if name == "backbones":  # 5 backbone settings x 3 seeds, one learned policy
        settings = {
            (v.cfg.model.glance_backbone, v.cfg.model.local_backbone, v.cfg.model.refine_ratio)
            for v in variants
        }
        assert settings == {
            ("tiny_cnn", "tiny_resnet", None),
            ("tiny_cnn", "tiny_resnet_scconv", None),
            ("tiny_cnn", "tiny_resnet_sar", None),
            ("tiny_cnn", "tiny_resnet_sar", 0.25),
            ("tiny_resnet_scconv", "tiny_resnet", None),
        }
        assert sorted({v.cfg.train.seed for v in variants}) == [0, 1, 2]
        assert {v.policy for v in variants} == {"recurrent_ppo"}


# ------------------------------------------------------------------------------ end to end


def _ablate(*args: str) -> list[str]:
    return [sys.executable, "-m", "videofocus.cli", "ablate", *args]


def _kill_when(argv: list[str], cwd: Path, env: dict[str, str], path: Path) -> None:
    """Start ``argv`` and SIGKILL it as soon as ``path`` exists."""
    log = cwd / "killed.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 300  # a loaded 2-core machine is slow
        while not path.exists():
            assert proc.poll() is None, f"ablate exited before {path}: {log.read_text()}"
            assert time.monotonic() < deadline, f"{path} never appeared"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()


@pytest.mark.slow
def test_killed_grid_resumes_without_recomputing_finished_variants(tiny_data, tmp_path, write_grid):
    # The second variant reuses the first one's warm-up and policy and fine-tunes 60 epochs
    # (a few seconds), long enough to be killed in the middle.
    grid = write_grid(tmp_path, "axes:\n  train.finetune_epochs: [1, 60]\n", data_root=tiny_data)
    out = tmp_path / "out"
    first = out / "variants" / "recurrent_ppo__finetune_epochs=1" / "result.json"
    second = out / "variants" / "recurrent_ppo__finetune_epochs=60" / "result.json"
    finetune = plan_stages(expand_grid(load_grid(grid))[1])[-1]
    checkpoint = out / "stages" / finetune.key / "finetune" / "last"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    argv = _ablate(str(grid), "--out", str(out), "--no-progress")

    _kill_when(argv, tmp_path, env, first)  # killed right after the first variant finished
    assert not second.exists()
    before = first.read_bytes(), first.stat().st_mtime_ns
    _kill_when(argv, tmp_path, env, checkpoint)  # and again inside the second one's fine-tune
    assert not second.exists()

    done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (first.read_bytes(), first.stat().st_mtime_ns) == before
    assert "[1/2] recurrent_ppo__finetune_epochs=1: reused finished result" in done.stderr
    assert "recurrent_ppo__finetune_epochs=60: stage policy: reusing" in done.stderr
    assert f"stage finetune: training in stages/{finetune.key} (resuming)" in done.stderr
    with open(out / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["name"], r["train.finetune_epochs"]) for r in rows] == [
        ("recurrent_ppo__finetune_epochs=1", "1"),
        ("recurrent_ppo__finetune_epochs=60", "60"),
    ]
    for r in rows:
        assert 0.0 <= float(r["accuracy"]) <= 1.0 and float(r["gmacs_per_video"]) > 0
    assert json.loads(second.read_text())["evaluations"][0]["exit_thresholds"] is None
    assert (out / "results.md").is_file() and (out / "tradeoff.png").stat().st_size > 0
    # one warm-up and one policy stage for both variants, two fine-tunes
    stages = sorted(p.name.split("-")[0] for p in (out / "stages").iterdir())
    assert stages == ["finetune", "finetune", "policy", "warmup"]


def test_summary_pools_the_seeds_and_comparisons_pair_them():
    from videofocus.experiment.report import paired_comparisons, summarise

    def row(method, seed, accuracy, gmacs):
        return {
            "name": f"{method}__seed={seed}",
            "method": method,
            "seed": seed,
            "policy": "random",
            "exit": None,
            "accuracy": accuracy,
            "gmacs_per_video": gmacs,
            "option": 2,
            "curve": method,
        }

    rows = [row("a", 0, 0.80, 0.1), row("a", 1, 0.84, 0.1), row("b", 0, 0.70, 0.2)]
    rows.append(row("b", 1, 0.70, 0.2))
    a, b = summarise(rows)
    assert a["name"] == "a" and a["seeds"] == 2 and "seed" not in a and "method" not in a
    assert a["accuracy"] == pytest.approx(0.82) and a["accuracy_std"] == pytest.approx(
        0.02 * 2**0.5
    )
    assert a["accuracy_low"] < 0.82 < a["accuracy_high"] and a["option"] == 2
    assert b["accuracy_std"] == 0.0 and b["gmacs_per_video"] == pytest.approx(0.2)
    assert summarise([{"name": "x", "accuracy": 0.5}]) == [{"name": "x", "accuracy": 0.5}]
    # an option each seed chose is listed in seed order, not averaged (1/2/2 is no option 1.67)
    rows[3]["option"] = 1
    assert summarise(rows)[1]["option"] == "2/1" and summarise(rows)[0]["option"] == 2

    def run(method, seed, correct):
        return {
            "method": method,
            "seed": seed,
            "exit": None,
            "video_index": list(range(len(correct))),
            "video_correct": correct,
        }

    runs = [run("a", 0, [1, 1, 0, 1]), run("b", 0, [1, 0, 0, 1]), run("b", 1, [0, 0, 0, 0])]
    (got,) = paired_comparisons(runs)  # a has seed 0 only: b is paired on it alone
    assert (got["name"], got["reference"], got["seeds"], got["videos"]) == ("b", "a", 1, 4)
    assert got["difference"] == pytest.approx(-0.25)
    assert got["difference_low"] <= -0.25 <= got["difference_high"]


def test_test_split_reports_test_and_chooses_on_val(
    tmp_path, write_grid, fake_training, monkeypatch
):
    from videofocus.evaluation.policy_eval import BUDGET_CHUNK_STEPS
    from videofocus.experiment.grid import Budget

    calls, glance, chunks = [], [], []

    def split_of(cfg):
        return "test" if cfg.data.val_split == "test" else "val"

    def evaluate(
        variant, cfg, exit_entry, budget_of=None, calibration=None, glance_exit=False, **kw
    ):
        split = split_of(cfg)
        chunks.append(kw.get("chunk_steps"))
        calls.append((split, exit_entry, budget_of, calibration and split_of(calibration)))
        glance.append(glance_exit)
        thresholds = [0.7] if isinstance(exit_entry, Budget) else exit_entry
        gmacs = {"val": 2.0, "test": 3.0}[split]
        exit_json = exit_entry.to_json() if isinstance(exit_entry, Budget) else exit_entry
        return {"exit": exit_json, "exit_thresholds": thresholds, "gmacs_per_video": gmacs}

    monkeypatch.setattr(runner, "evaluate_variant", evaluate)
    monkeypatch.setattr(runner, "has_rows", lambda cfg, split: split == "test")
    variant = expand_grid(load_grid(write_grid(tmp_path, "policies: [recurrent_ppo]\n")))[0]
    glance_budget = Budget(0.5, glance_exit=True)
    variant = replace(variant, exits=(None, Budget(0.5), glance_budget))
    record = run_variant(variant, tmp_path / "out", False, lambda line: None)
    # the budget is a share of the val cost; calibrated once, on val (never on the rows that
    # report), and val then reuses its thresholds
    assert calls == [("test", None, None, "val"), ("val", None, None, None)] + [
        ("test", Budget(0.5), 2.0, "val"),
        ("val", [0.7], 2.0, None),
        ("test", glance_budget, 2.0, "val"),
        ("val", [0.7], 2.0, None),
    ]
    # a glance-exit budget's thresholds are read again with the glance exit on
    assert glance == [False, False, False, False, False, True]
    # ... and with the chunking they were calibrated with (one step), not the inferencer's
    assert chunks == [None, None, None, BUDGET_CHUNK_STEPS, None, BUDGET_CHUNK_STEPS] and (
        BUDGET_CHUNK_STEPS == 1
    )
    plain, budget, _ = record["evaluations"]
    assert plain["split"] == "test" and plain["gmacs_per_video"] == 3.0
    assert plain["val"]["gmacs_per_video"] == 2.0 and budget["exit_thresholds"] == [0.7]


def test_seed_copies_of_a_budget_pool_into_one_row_and_pair(
    tmp_path, write_grid, fake_training, monkeypatch
):
    from videofocus.experiment.grid import Budget
    from videofocus.experiment.report import summarise

    hits = {"recurrent_ppo": [1, 1, 0, 1], "exit": [1, 0, 0, 1]}

    def evaluate(variant, cfg, exit_entry, budget_of=None, calibration=None, **kw):
        exit_json = exit_entry.to_json() if isinstance(exit_entry, Budget) else exit_entry
        return {
            "exit": exit_json,
            "exit_thresholds": [0.7] if isinstance(exit_entry, Budget) else None,
            "accuracy": sum(hits[variant.method]) / 4,
            "gmacs_per_video": 1.0 if budget_of is None else budget_of / 2,
            "videos_per_s": 10.0,
            "video_index": [0, 1, 2, 3],
            "video_correct": hits[variant.method],
        }

    monkeypatch.setattr(runner, "evaluate_variant", evaluate)
    text = (
        "policies: [recurrent_ppo]\n"
        "variants:\n"
        "  - {name: exit, policy: recurrent_ppo, exit: [{budget_share: 0.5, of: recurrent_ppo}]}\n"
        "seeds: [0, 1]\n"
    )
    grid = replace(
        load_grid(write_grid(tmp_path, text)),
        pairs=(("exit", Budget(0.5, "recurrent_ppo").to_json(), "recurrent_ppo", None),),
    )
    out = tmp_path / "out"
    rows = run_grid(grid, out, progress=False, log=lambda line: None)
    # each copy calibrates against its own seed's run, and its record says so ...
    record = json.loads((out / "variants" / "exit__seed=1" / "result.json").read_text())
    assert record["evaluations"][0]["exit"]["of"] == "recurrent_ppo__seed=1"
    # ... while its rows and hits carry the grid's name: the seeds pool, the pair is found
    exit_rows = [r for r in summarise(rows) if r["name"] == "exit"]
    assert len(exit_rows) == 1 and exit_rows[0]["seeds"] == 2
    assert exit_rows[0]["exit"] == Budget(0.5, "recurrent_ppo").to_json()
    # against the reference (the first method) and as the grid's pair: both over both seeds
    pairs = [c for c in rows.comparisons if c["name"] == "exit"]
    assert len(pairs) == 2 and all(c["reference"] == "recurrent_ppo" for c in pairs)
    assert all(c["seeds"] == 2 and c["videos"] == 4 for c in pairs)
    assert all(c["difference"] == pytest.approx(-0.25) for c in pairs)


def test_report_is_written_at_the_end_and_before_a_failure_not_per_variant(
    tmp_path, write_grid, fake_training, monkeypatch
):
    writes: list[list[str]] = []
    real = runner.write_report

    def counting(rows, out, **kw):
        writes.append([r["name"] for r in rows])
        return real(rows, out, **kw)

    monkeypatch.setattr(runner, "write_report", counting)
    grid = load_grid(write_grid(tmp_path, "axes:\n  policy.cost_lambda: [0.0, 0.5, 1.0]\n"))
    run_grid(grid, tmp_path / "out", progress=False, log=lambda line: None)
    assert len(writes) == 1 and len(writes[0]) == 3  # three quick variants: one report
    monkeypatch.setattr(runner, "REPORT_EVERY_S", 0.0)  # every refresh due: after each one
    run_grid(grid, tmp_path / "again", progress=False, log=lambda line: None)
    assert [len(w) for w in writes[1:]] == [1, 2, 3, 3]
    writes.clear()
    monkeypatch.setattr(runner, "REPORT_EVERY_S", 300.0)
    broken = "variants:\n  - {name: broken, overrides: [policy.ent_coef=0.5]}\n"
    grid = load_grid(write_grid(tmp_path, "axes:\n  policy.cost_lambda: [0.0]\n" + broken))
    with pytest.raises(VariantFailed):
        run_grid(grid, tmp_path / "failed", progress=False, log=lambda line: None)
    assert writes == [["recurrent_ppo__cost_lambda=0.0"]]  # the finished rows, before raising
