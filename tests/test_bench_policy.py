"""``videofocus bench policy``: end to end on a tiny config (every row, JSON, reuse on rerun),
and the pieces it measures with (target boxes in clip coordinates, coverage, acceptance lines)."""

from __future__ import annotations

import json

import pytest
import torch

from videofocus.benchmarks import BENCHMARKS, load_benchmark
from videofocus.benchmarks.policy import (
    ANYTIME_ROWS,
    ANYTIME_SHARES,
    GLANCE_EXIT_SHARES,
    LEARNED_ROWS,
    NAMES,
    acceptance,
    anytime_points,
    plot_anytime,
    policy_grid,
    truncation_steps,
)
from videofocus.cli import main
from videofocus.data.synthetic import TargetTrack
from videofocus.evaluation.policy_eval import oracle_actions, target_centres
from videofocus.experiment.grid import Budget, Truncate, expand_grid
from videofocus.experiment.report import format_comparison as format_table
from videofocus.experiment.runner import plan_stages
from videofocus.models import GlimpseOption, actions_to_glimpses
from videofocus.train.stages import stage_reads

T = 4


# float reductions, hence trained weights and exact numbers, depend on the thread count
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def tiny_yaml(tmp_path, tiny_config) -> str:
    """The tiny config with its synthetic data, training and PPO sections, as ``tiny.yaml``."""
    path = tiny_config.write(
        tmp_path / "tiny.yaml",
        tmp_path / "data",
        tmp_path / "unused",
        training=True,
        ppo=True,
        synthetic=True,
        name="bench_test",
        train={"warmup_init": "dense"},
    )
    return str(path)


def test_rows_include_the_glance_exit_on_the_learned_model(tiny_yaml):
    """``recurrent_ppo_glance_exit`` reads the ``recurrent_ppo`` model (the same stages, no
    training of its own) with the glance exit, calibrated for 50% and 75% of its cost."""
    assert NAMES.index("recurrent_ppo_glance_exit") == NAMES.index("recurrent_ppo_exit") + 1
    variants = {v.name: v for v in expand_grid(policy_grid(tiny_yaml))}
    row = variants["recurrent_ppo_glance_exit"]
    assert row.policy == "recurrent_ppo" and GLANCE_EXIT_SHARES == (0.5, 0.75)
    assert row.exits == tuple(Budget(s, "recurrent_ppo", glance_exit=True) for s in (0.5, 0.75))
    assert [e.to_json() for e in row.exits][0] == {
        "budget_share": 0.5,
        "of": "recurrent_ppo",
        "glance_exit": True,
    }
    stages = [(p.name, p.key) for p in plan_stages(row)]
    assert stages == [(p.name, p.key) for p in plan_stages(variants["recurrent_ppo"])]
    # the other exit rows keep their entries (and so their recorded results)
    assert not any(e.glance_exit for e in variants["recurrent_ppo_exit"].exits)


def test_dense_matched_trains_as_many_epochs_as_the_learned_pipeline(tiny_yaml):
    """Dense 3 + warm-up 3 + fine-tune 2 epochs behind a learned row: dense_matched trains 8, in
    a stage of its own (the 3-epoch dense stage the warm-up starts from is unchanged)."""
    variants = expand_grid(policy_grid(tiny_yaml, ["train.epochs=3", "train.finetune_epochs=2"]))
    by = {v.name: v for v in variants}
    assert by["dense"].cfg.train.epochs == 3 and by["dense_matched"].cfg.train.epochs == 8
    assert by["dense_matched"].policy == "dense" and variants[-1].name == "dense_matched"
    dense_key = plan_stages(by["dense"])[0].key
    assert plan_stages(by["recurrent_ppo"])[0].key == dense_key
    assert plan_stages(by["dense_matched"])[0].key != dense_key


def test_memoryless_ppo_shares_the_warmup_and_trains_its_own_policy(tiny_yaml):
    """``ppo_memoryless`` is ``ppo`` without the previous action observed: the same dense and
    warm-up stages, its own policy and fine-tune; the other rows' keys do not hold the new
    field at its old value (so runs recorded before it existed keep their stages)."""
    by = {v.name: v for v in expand_grid(policy_grid(tiny_yaml))}
    row, ppo = by["ppo_memoryless"], by["ppo"]
    assert row.policy == "ppo" and not row.cfg.policy.observe_previous_action
    assert ppo.cfg.policy.observe_previous_action
    mine = {p.name: p.key for p in plan_stages(row)}
    theirs = {p.name: p.key for p in plan_stages(ppo)}
    assert [mine[s] == theirs[s] for s in ("dense", "warmup", "policy", "finetune")] == [
        True,
        True,
        False,
        False,
    ]
    assert "observe_previous_action" not in stage_reads("policy", ppo.cfg)["policy"]
    assert stage_reads("policy", row.cfg)["policy"]["observe_previous_action"] is False
    assert "ppo_memoryless" in LEARNED_ROWS  # its gap to the oracle is reported


def test_anytime_curves_for_both_learned_models_share_their_stages(tiny_yaml):
    """Truncation after K steps and the exit calibrated to its cost, for ``recurrent_ppo`` and
    ``ppo``, at a sixteenth to three quarters of a 16-step clip; no training of their own."""
    assert truncation_steps(16) == (4, 8, 12)
    assert truncation_steps(16, ANYTIME_SHARES) == (1, 2, 4, 8, 12)
    grid = policy_grid(tiny_yaml, ["data.frames=16"])
    variants = {v.name: v for v in expand_grid(grid)}
    for model, trunc, exit_row in ANYTIME_ROWS:
        assert variants[trunc].exits == tuple(Truncate(k) for k in (1, 2, 4, 8, 12))
        assert variants[exit_row].exits == tuple(Budget(1.0, trunc, k) for k in (1, 2, 4, 8, 12))
        for name in (trunc, exit_row):
            assert [p.key for p in plan_stages(variants[name])] == [
                p.key for p in plan_stages(variants[model])
            ]
            assert NAMES.index(name) > NAMES.index(model)
        pairs = {(n, r, json.dumps(re)) for n, _, r, re in grid.pairs}
        for k in (1, 2, 4, 8, 12):
            assert (exit_row, trunc, json.dumps({"max_steps": k})) in pairs


def test_anytime_points_join_each_model_to_its_truncations(tmp_path):
    def row(name, acc, gmacs, exit_entry=None):
        low, high = acc - 0.02, acc + 0.02
        return {
            "name": name,
            "exit": exit_entry,
            "accuracy": acc,
            "gmacs_per_video": gmacs,
            "accuracy_low": low,
            "accuracy_high": high,
        }

    cut = {"max_steps": 2}
    budget = {"budget_share": 1.0, "of": "recurrent_ppo_truncate", "max_steps": 2}
    rows = [
        row("dense", 0.9, 1.0),
        row("recurrent_ppo", 0.85, 0.2),
        row("recurrent_ppo_truncate", 0.6, 0.1, cut),
        row("recurrent_ppo_exit", 0.7, 0.1, budget),
        row("recurrent_ppo_glance_exit", 0.7, 0.1, {"budget_share": 0.5, "of": "x"}),
        row("ppo", 0.8, 0.2),
        row("ppo_truncate", 0.5, 0.1, cut),
    ]
    points = anytime_points(rows)
    curves = {}
    for p in points:
        curves.setdefault(p["curve"], []).append((p["name"], p["gmacs_per_video"]))
    assert curves == {
        "recurrent_ppo: first K steps": [("recurrent_ppo", 0.2), ("recurrent_ppo_truncate", 0.1)],
        "recurrent_ppo: calibrated exit": [("recurrent_ppo_exit", 0.1)],
        "ppo: first K steps": [("ppo", 0.2), ("ppo_truncate", 0.1)],
    }
    assert all(p["accuracy_low"] < p["accuracy"] for p in points)
    path = plot_anytime(rows, tmp_path / "anytime.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_is_registered():
    assert "policy" in BENCHMARKS
    module = load_benchmark("policy")
    assert module.__doc__.splitlines()[0].startswith("Glimpse policies compared")


@pytest.mark.slow
def test_bench_policy_end_to_end_and_rerun_reuses_stages(tmp_path, tiny_yaml, capsys):
    config, out, runs = tiny_yaml, tmp_path / "bench.json", tmp_path / "runs"
    argv = ["bench", "policy", "--config", config, "--json", str(out), "--out-dir", str(runs)]
    argv += ["--no-progress", "--cost-lambda", "0.5", "train.finetune_epochs=2"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    payload = json.loads(out.read_text())
    rows, comparisons = payload["rows"], payload["comparisons"]
    names = [r["name"] for r in rows]
    assert list(dict.fromkeys(names)) == list(NAMES)
    steps = truncation_steps(T, ANYTIME_SHARES)
    for _, trunc, _ in ANYTIME_ROWS:
        assert [r["exit"] for r in rows if r["name"] == trunc] == [{"max_steps": k} for k in steps]
    for r in rows:
        assert 0.0 <= r["accuracy"] <= 1.0
        assert r["gmacs_per_video"] > 0 and r["videos_per_s"] > 0
    by = {(r["name"], json.dumps(r["exit"])): r for r in rows}
    truncated = [by[("recurrent_ppo_truncate", json.dumps({"max_steps": k}))] for k in steps]
    full = by[("recurrent_ppo", "null")]
    # truncation reads fewer steps: strictly cheaper with every step it drops
    costs = [r["gmacs_per_video"] for r in truncated]
    assert costs == sorted(costs) and costs[-1] < full["gmacs_per_video"]
    # each calibrated exit aims at its truncation's cost (calibrated on other rows: near it)
    for k in steps:
        budget = {"budget_share": 1.0, "of": "recurrent_ppo_truncate", "max_steps": k}
        ex = by[("recurrent_ppo_exit", json.dumps(budget))]
        assert ex["budget_gmacs"] == pytest.approx(
            _val(runs, "recurrent_ppo_truncate", {"max_steps": k})["gmacs_per_video"]
        )
        # where test reports, calibrated on val: there, same chunking, within its budget
        record = json.loads((runs / "variants" / "recurrent_ppo_exit" / "result.json").read_text())
        entry = next(e for e in record["evaluations"] if e["exit"] == budget)
        if "val" in entry and ex["exit_rule"] != "floor":  # floor: below every first exit
            assert entry["val"]["gmacs_per_video"] <= ex["budget_gmacs"] * (1 + 1e-6)
    # the glance exit: budgets are shares of recurrent_ppo's val cost; its own numbers reported
    full_val = _val(runs, "recurrent_ppo", None)["gmacs_per_video"]
    for share in GLANCE_EXIT_SHARES:
        budget = {"budget_share": share, "of": "recurrent_ppo", "glance_exit": True}
        glance = by[("recurrent_ppo_glance_exit", json.dumps(budget))]
        assert glance["budget_gmacs"] == pytest.approx(share * full_val)
        assert 0.0 <= glance["glance_exit_rate"] <= 1.0 and 0.0 <= glance["glance_top1"] <= 1.0
        assert len(glance["exit_thresholds"]) in (1, T + 1)
    assert "| recurrent_ppo_glance_exit | budget: 0.5 x cost of recurrent_ppo, glance exit |" in (
        printed
    )
    # the oracle looks at the target on every frame where it is visible
    oracle = by[("oracle", "null")]
    assert oracle["option"] == full["option"] and oracle["target_coverage"] == 1.0
    pairs = {(c["name"], c["reference"], json.dumps(c["reference_exit"])) for c in comparisons}
    assert ("recurrent_ppo", "random", "null") in pairs
    assert ("recurrent_ppo", "dense_matched", "null") in pairs
    assert ("recurrent_ppo", "oracle", "null") in pairs
    for k in steps:
        assert ("recurrent_ppo_exit", "recurrent_ppo_truncate", json.dumps({"max_steps": k})) in (
            pairs
        )
    assert "recurrent_ppo - oracle" in printed and "minus" in printed
    assert "[info] ppo: calibrated exit - truncation" in printed
    assert (runs / "anytime.png").stat().st_size > 0
    # a rerun trains nothing and reads the same results
    assert main(argv) == 0
    assert "training in" not in capsys.readouterr().err
    again = {(r["name"], json.dumps(r["exit"])): r for r in json.loads(out.read_text())["rows"]}
    for key, row in by.items():
        assert again[key]["accuracy"] == row["accuracy"]
    # --finished-only reads a run part-way: an unfinished variant is left out, nothing trains
    (runs / "variants" / "ppo_exit" / "result.json").unlink()
    assert main([*argv, "--finished-only"]) == 0
    err = capsys.readouterr().err
    assert "training in" not in err and "evaluating" not in err
    assert "ppo_exit: not finished: left out of this report" in err
    partial = json.loads(out.read_text())["rows"]
    assert "ppo_exit" not in {r["name"] for r in partial}
    assert {r["name"] for r in partial} == set(NAMES) - {"ppo_exit"}


def _val(runs, name: str, exit_entry) -> dict:
    """The validation measurements the runner recorded for ``name`` at ``exit_entry``."""
    record = json.loads((runs / "variants" / name / "result.json").read_text())
    entry = next(e for e in record["evaluations"] if e["exit"] == exit_entry)
    return entry.get("val", entry)


def test_oracle_actions_aim_at_the_target_cell():
    track = TargetTrack("v", 64, 64, ((0, 0, 8, 8), None, (56, 56, 64, 64), (28, 28, 36, 36)))
    options = [GlimpseOption(0.25, 16), GlimpseOption(0.5, 32)]
    act = oracle_actions({"v": track}, options, 5, 2, 64)
    batch = {"id": ["v"], "frame_indices": torch.tensor([[0, 1, 2, 3]])}
    actions = act(None, batch, 4)
    # option 2 everywhere; corner targets take the corner cells, a hidden one the centre cell
    assert actions[0].tolist() == [[2, 0, 0], [2, 2, 2], [2, 4, 4], [2, 2, 2]]
    boxes = glimpse_boxes_of(actions, options, 5)
    for (x0, y0, x1, y1), box in zip(boxes, track.boxes, strict=True):
        if box is not None:
            cx, cy = (box[0] + box[2]) / 128, (box[1] + box[3]) / 128
            assert x0 <= cx <= x1 and y0 <= cy <= y1
    with pytest.raises(ValueError, match="square"):
        oracle_actions({"w": TargetTrack("w", 64, 32, (None,))}, options, 5, 2, 32)
    with pytest.raises(ValueError, match="option"):
        oracle_actions({"v": track}, options, 5, 3, 64)


def glimpse_boxes_of(actions, options, grid):
    """Normalised ``(x0, y0, x1, y1)`` of each frame's glimpse in ``actions [1, T, 3]``."""
    _, centres, extents = actions_to_glimpses(actions, options, grid)
    half = extents[0] / 2
    return [
        (float(c[0] - h), float(c[1] - h), float(c[0] + h), float(c[1] + h))
        for c, h in zip(centres[0], half, strict=True)
    ]


def test_target_centres_follow_the_clip_transform():
    track = TargetTrack("v", 64, 32, ((0, 0, 8, 8), None, (56, 24, 64, 32)))
    # short side 32 -> 16: scale 0.5, a 32 x 16 frame centre-cropped to 16 x 16 (8 px off in x)
    centres = target_centres({"v": track}, ["v"], torch.tensor([[0, 1, 2]]), 16)
    assert centres[0, 0].tolist() == [(2 - 8) / 16, 2 / 16]
    assert bool(centres[0, 1].isnan().all())
    assert centres[0, 2].tolist() == [(30 - 8) / 16, 14 / 16]


def _comparison(name, reference, difference, low, reference_exit=None, exit_entry=None):
    return {
        "name": name,
        "exit": exit_entry,
        "reference": reference,
        "reference_exit": reference_exit,
        "difference": difference,
        "difference_low": low,
        "difference_high": difference + (difference - low),
        "seeds": 3,
        "videos": 400,
    }


CUT = {"max_steps": 4}
BUDGET = {"budget_share": 1.0, "of": "recurrent_ppo_truncate", "max_steps": 4}


def test_acceptance_lines_and_table():
    def row(name, acc, gmacs, exit_entry=None, **extra):
        return {
            "name": name,
            "exit": exit_entry,
            "accuracy": acc,
            "gmacs_per_video": gmacs,
            "videos_per_s": 1.0,
            **extra,
        }

    rows = [
        row("dense", 0.90, 1.0),
        row("random", 0.60, 0.2, option=2, target_coverage=0.3),
        row("differentiable", 0.72, 0.2, option=2, target_coverage=0.5),
        row("recurrent_ppo", 0.88, 0.2, option=2, target_coverage=0.9),
        row("recurrent_ppo_truncate", 0.80, 0.1, {"max_steps": 4}),
        row("recurrent_ppo_exit", 0.85, 0.1, BUDGET),
    ]
    comparisons = [
        _comparison("recurrent_ppo", "random", 0.28, 0.22),
        _comparison("differentiable", "random", 0.12, 0.05),
        _comparison("recurrent_ppo_exit", "recurrent_ppo_truncate", 0.05, 0.01, CUT, BUDGET),
        _comparison("recurrent_ppo", "oracle", -0.03, -0.06),
    ]
    lines = acceptance(rows, comparisons)
    checks = [line for line in lines if not line.startswith("[info]")]
    assert all(line.startswith("[pass]") for line in checks) and len(checks) == 4, lines
    assert any(line.startswith("[info] recurrent_ppo - oracle: paired -3.0") for line in lines)
    # dense trained as long as the whole pipeline is the reference where it is the better one
    rows.append(row("dense_matched", 0.95, 1.0))
    line = acceptance(rows, comparisons)[1]
    assert line.startswith("[MISS] recurrent_ppo: 92.6% of dense_matched's accuracy"), line
    rows[-1]["accuracy"] = 0.80
    assert acceptance(rows, comparisons)[1].startswith("[pass] recurrent_ppo: 97.8% of dense's")
    rows[-1].update(accuracy=0.95, seeds=2)  # over other seeds than dense's: not compared
    assert acceptance(rows, comparisons)[1].startswith("[pass] recurrent_ppo: 97.8% of dense's")
    rows.pop()
    # the mean gain holds but its paired interval does not clear +10: a miss
    comparisons[0] = _comparison("recurrent_ppo", "random", 0.28, 0.08)
    assert acceptance(rows, comparisons)[0].startswith("[MISS]")
    comparisons[0] = _comparison("recurrent_ppo", "random", 0.28, 0.22)
    # differentiable covers only 1.33x random's targets
    rows[2]["target_coverage"] = 0.4
    assert acceptance(rows, comparisons)[2].startswith("[MISS]")
    # an exit that spends more than the truncation on test does not compare at equal cost
    rows[5]["gmacs_per_video"] = 0.11
    assert acceptance(rows, comparisons)[3].startswith("[MISS]")
    assert "0.1100 vs 0.1000 GMACs" in acceptance(rows, comparisons)[3]
    rows[5]["gmacs_per_video"] = 0.1
    # an exit no better than truncation
    comparisons[2] = _comparison(
        "recurrent_ppo_exit", "recurrent_ppo_truncate", 0.01, -0.02, CUT, BUDGET
    )
    assert acceptance(rows, comparisons)[3].startswith("[MISS]")
    # a pass at a truncation the line does not compare at (an anytime point) does not count
    comparisons[2] = _comparison(
        "recurrent_ppo_exit", "recurrent_ppo_truncate", 0.05, 0.01, CUT, BUDGET
    )
    assert acceptance(rows, comparisons, steps=(4,))[3].startswith("[pass]")
    assert acceptance(rows, comparisons, steps=(2, 8))[3].startswith("[MISS]")
    comparisons[2] = _comparison(
        "recurrent_ppo_exit", "recurrent_ppo_truncate", 0.01, -0.02, CUT, BUDGET
    )
    rows[3]["accuracy"] = 0.70
    lines = acceptance(rows, comparisons)
    assert lines[0].startswith("[MISS]") and lines[1].startswith("[MISS]")
    table = format_table(rows)
    assert "| recurrent_ppo | - | - | 2 | 70.0% |" in table
    assert "| recurrent_ppo_truncate | first 4 steps |" in table
    assert "| recurrent_ppo_exit | budget: 4-step cost |" in table
    glance_budget = {"budget_share": 0.5, "of": "recurrent_ppo", "glance_exit": True}
    glance = row("recurrent_ppo_glance_exit", 0.8, 0.1, glance_budget, glance_exit_rate=0.25)
    glance_table = format_table([{**glance, "glance_top1": 0.6}])
    assert "| 25.0% | 60.0% |" in glance_table
    assert "| budget: 0.5 x cost of recurrent_ppo, glance exit |" in glance_table
    # exactly 15 points (30 of 200 videos) passes, although 0.82 - 0.67 < 0.15 in floats
    rows[1]["accuracy"], rows[3]["accuracy"] = 134 / 200, 164 / 200
    assert rows[3]["accuracy"] - rows[1]["accuracy"] < 0.15
    assert acceptance(rows, comparisons)[0].startswith("[pass]")
    rows[3]["accuracy"] = 163 / 200
    assert acceptance(rows, comparisons)[0].startswith("[MISS]")


def test_memory_benchmark_adds_the_recurrent_vs_feed_forward_line():
    def row(name, acc, **extra):
        return {"name": name, "exit": None, "accuracy": acc, "gmacs_per_video": 0.1, **extra}

    rows = [
        row("dense", 0.9, gmacs_per_video=1.0),
        row("random", 0.5, target_coverage=0.3),
        row("differentiable", 0.5, target_coverage=0.3),
        row("recurrent_ppo", 0.8),
        row("ppo", 0.65),
    ]
    comparisons = [_comparison("recurrent_ppo", "ppo", 0.15, 0.05)]
    assert not any("memory:" in line for line in acceptance(rows, comparisons))
    line = acceptance(rows, comparisons, memory=True)[4]
    assert line.startswith("[pass] memory: recurrent_ppo - ppo: +15.0 points"), line
    comparisons = [_comparison("recurrent_ppo", "ppo", 0.15, -0.01)]
    assert acceptance(rows, comparisons, memory=True)[4].startswith("[MISS] memory")
    # the feed-forward policy without its previous action, where the run has it
    rows.append(row("ppo_memoryless", 0.55))
    comparisons.append(_comparison("recurrent_ppo", "ppo_memoryless", 0.25, 0.2))
    line = acceptance(rows, comparisons, memory=True)[5]
    assert line.startswith("[info] memory: recurrent_ppo - ppo_memoryless"), line
    assert "+25.0 points" in line and "paired +25.0 [+20.0" in line


def test_protocol_runs_both_benchmarks_with_seeds_in_their_own_folders(
    tmp_path, capsys, monkeypatch
):
    from videofocus.benchmarks import protocol

    calls = []

    def fake(config, out, overrides, cost_lambda, progress, log, seeds, finished_only):
        calls.append((config, out, list(overrides), seeds, finished_only))
        out.mkdir(parents=True, exist_ok=True)
        rows = [
            {"name": n, "exit": None, "accuracy": 0.5, "gmacs_per_video": 0.1, "videos_per_s": 1.0}
            for n in ("dense", "random", "differentiable", "recurrent_ppo", "ppo")
        ]
        return rows, [_comparison("recurrent_ppo", "ppo", 0.12, 0.02)]

    monkeypatch.setattr(protocol, "run_benchmark", fake)
    out = tmp_path / "protocol"
    argv = ["bench", "protocol", "--out-dir", str(out), "--no-progress", "train.epochs=1"]
    assert main(argv) == 0
    assert calls == [
        ("synthetic_tiny", out / "aiming", ["train.epochs=1"], 3, False),
        ("synthetic_memory", out / "memory", ["train.epochs=1"], 3, False),
    ]
    printed = capsys.readouterr().out
    assert "## aiming benchmark" in printed and "## memory benchmark" in printed
    assert printed.count("memory: recurrent_ppo - ppo") == 1  # only the memory benchmark's
    saved = json.loads((out / "memory" / "rows.json").read_text())
    assert saved["comparisons"][0]["reference"] == "ppo"
    assert main(["bench", "protocol", "--out-dir", str(out), "--seeds", "0"]) == 2
    assert main([*argv, "--finished-only"]) == 0 and calls[-1][-1] is True


def test_table_shows_the_seed_interval():
    row = {
        "name": "recurrent_ppo",
        "exit": None,
        "accuracy": 0.85,
        "accuracy_std": 0.01,
        "accuracy_low": 0.825,
        "accuracy_high": 0.875,
        "seeds": 3,
        "gmacs_per_video": 0.08,
        "videos_per_s": 100.0,
    }
    assert "| 85.0% ± 1.0 [82.5, 87.5] |" in format_table([row])
