"""Glimpse policies compared: accuracy, GMACs/video, videos/s and target coverage on test.

``videofocus bench policy --config configs/synthetic_tiny.yaml --json OUT [--out-dir DIR]
[--seeds N] [--finished-only] [KEY=VALUE ...]`` generates the synthetic data when it is absent,
runs the table as a grid of the experiment runner (:func:`policy_grid`, in ``DIR``: a stage two
rows agree on is trained once, and a rerun reuses every finished stage and result; with
``--finished-only`` nothing is trained and the finished rows are reported), and prints the table
and the paired comparisons; ``OUT`` gets them as JSON ``{"rows": [...], "comparisons": [...]}``, and
``DIR`` the runner's ``results.csv`` (every seed's row), ``results.md``, ``comparisons.csv`` and
``tradeoff.png``, and ``anytime.png`` (the anytime curves: :func:`plot_anytime`).

Protocol: every choice (the heuristics' option, exit thresholds, budgets) is made on the
train/val rows; every number reported comes from the held-out ``test`` rows when the data has
them, else from val (the header says which). With ``--seeds N`` every row is trained with seeds
0..N-1 and reported as mean ± std [95% t interval]; comparisons are paired on the same seeds and
test videos (two-level bootstrap).

Rows:

- ``dense`` / ``glance_only``: the baselines (every whole frame at full resolution / no glimpse);
  ``dense_matched``: dense trained for as many epochs as a learned row's three supervised stages
  together (:func:`pipeline_epochs`), the fair reference for "as accurate as dense";
- ``recurrent_ppo``: the three AdaFocus stages (warm-up from the dense encoders, recurrent PPO,
  fine-tune on the policy's glimpses); ``ppo``: the same with ``policy.algo=ppo``;
  ``ppo_memoryless``: ``ppo`` with ``policy.observe_previous_action=false``, a policy with no
  memory at all (``ppo`` sees the cell it looked at last: a one-step memory of the track);
  ``recurrent_ppo_lambda``: the same with ``policy.cost_lambda = --cost-lambda`` and
  ``policy.allow_skip=true`` (same dense and warm-up stages);
- ``random`` / ``centre`` / ``saliency``: the heuristics at the option ``recurrent_ppo`` glimpses
  with most (same glimpse cost); ``oracle`` at that option too, its glimpses centred on the
  target (the generator's tracks): the upper bound of aiming;
- ``recurrent_ppo_truncate``: the ``recurrent_ppo`` model stopped after its first K steps (a
  sixteenth, an eighth, a quarter, half and three quarters of the clip), and
  ``recurrent_ppo_exit``: that model with early exit, its thresholds calibrated for the mean cost
  of that truncation (:func:`~videofocus.inference.model.calibrate_budget`): the two compare at
  equal mean GMACs, and over K they are the anytime curves of ``tradeoff.png``;
  ``ppo_truncate`` / ``ppo_exit`` the same for ``ppo``. The acceptance line compares
  ``recurrent_ppo``'s at a quarter, half and three quarters only (:data:`ACCEPTANCE_SHARES`,
  fixed before any result; the other points draw the curves);
- ``recurrent_ppo_glance_exit``: that model with the glance exit too (RANet): the glance-only
  head's prediction is exit 0, and a video confident there leaves before any policy step or
  glimpse; its thresholds (one more) are calibrated on val for 50% and 75% of ``recurrent_ppo``'s
  own GMACs per video. ``glance_exit_rate`` is the share of videos leaving after the glance,
  ``glance_top1`` the glance head's own top-1 (the glance exit is only as good as that head);
- ``differentiable``: the AdaFocusV2-style policy trained end to end through the bilinear crop
  (:mod:`videofocus.policy.differentiable`) at that same option, with its continuous centres.

Fairness: every adaptive method starts from the same warm-up checkpoint and trains for the same
number of epochs (``train.finetune_epochs``, else ``train.epochs``) on its own glimpses: the
learned policies in their fine-tune stage, each heuristic and the oracle in a stage of its own
(``finetune_<heuristic>_o<option>``), the differentiable policy in its ``differentiable`` stage.
``accuracy`` is that model's top-1 (protocol ``fine-tuned``). Since a network adapts to the
glimpses it is trained on, ``accuracy_warmup_net`` has the same glimpses read by the one shared
warm-up network (trained on random glimpses of every option, so if anything it favours
``random``; ``differentiable``'s centres snapped to the grid).

``target_coverage``: over test frames where the target is visible (the generator's
``targets.jsonl``), the fraction whose glimpse box contains the target's centre (a skipped frame
covers nothing); ``skip_rate``: the fraction of frames skipped. GMACs are multiply-accumulates
per video (glance, the policy's own network, glimpses, aggregator: the one
:class:`~videofocus.models.cost.CostTable` of ``flops``, ``eval`` and ``label``);
``videos_per_s`` is end to end with decoding, on this machine; ``train_seconds`` the training a
row adds on top of the shared dense and warm-up stages.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from videofocus.config import Config, load_config, resolve_config_path
from videofocus.data.loaders import has_rows
from videofocus.evaluation.policy_eval import ORACLE
from videofocus.experiment.grid import HEURISTICS, Budget, ExplicitVariant, Grid, Truncate
from videofocus.experiment.report import comparison_rows, format_comparison, format_comparisons
from videofocus.experiment.runner import run_grid

#: Row names, in table order.
NAMES = (
    "dense",
    "dense_matched",
    "glance_only",
    "random",
    "centre",
    "saliency",
    "oracle",
    "differentiable",
    "ppo",
    "ppo_truncate",
    "ppo_exit",
    "ppo_memoryless",
    "recurrent_ppo",
    "recurrent_ppo_truncate",
    "recurrent_ppo_exit",
    "recurrent_ppo_glance_exit",
    "recurrent_ppo_lambda",
)

#: Budgets of the ``recurrent_ppo_glance_exit`` row, as shares of ``recurrent_ppo``'s cost.
GLANCE_EXIT_SHARES = (0.5, 0.75)

#: The learned rows, each compared with ``oracle`` (the gap left to perfect aiming).
LEARNED_ROWS = ("ppo", "ppo_memoryless", "recurrent_ppo", "recurrent_ppo_lambda")

#: Shares of the clip's steps where the exit is compared with truncation for the acceptance
#: line (about 25, 50 and 75% of the learned policy's own cost).
ACCEPTANCE_SHARES = (0.25, 0.5, 0.75)
#: Shares of the clip's steps where the anytime curves are measured (truncation, and the exit
#: calibrated to each one's cost).
ANYTIME_SHARES = (0.0625, 0.125, *ACCEPTANCE_SHARES)

#: The learned models that get anytime curves: (model row, truncation row, exit row).
ANYTIME_ROWS = (
    ("recurrent_ppo", "recurrent_ppo_truncate", "recurrent_ppo_exit"),
    ("ppo", "ppo_truncate", "ppo_exit"),
)


def truncation_steps(frames: int, shares: tuple[float, ...] = ACCEPTANCE_SHARES) -> tuple[int, ...]:
    """The step counts at ``shares`` of the clip's ``frames`` steps (at least one step each):
    by default those of the acceptance line, :data:`ANYTIME_SHARES` for the curves."""
    return tuple(sorted({max(1, round(frames * share)) for share in shares}))


def pipeline_epochs(cfg: Config) -> int:
    """Supervised epochs behind a learned row: its dense initialisation, warm-up and fine-tune
    (the ``dense_matched`` row trains this many, so "as good as dense" is not a comparison of
    12 epochs against 36)."""
    return 2 * cfg.train.epochs + (cfg.train.finetune_epochs or cfg.train.epochs)


def policy_grid(
    config: str | Path,
    overrides: list[str] | None = None,
    cost_lambda: float = 0.01,
    seeds: int = 1,
) -> Grid:
    """The benchmark as a grid for :func:`~videofocus.experiment.runner.run_grid`: every row a
    variant, in the order they can run (the rows at ``recurrent_ppo``'s option after it).

    :param cost_lambda: ``policy.cost_lambda`` of the ``recurrent_ppo_lambda`` row.
    :param seeds: seeds 0..N-1 of every row (1: the config's own seeds, names without suffix).
    """
    path = resolve_config_path(config)
    cfg = load_config(path, list(overrides or ()))
    steps = truncation_steps(cfg.data.frames, ANYTIME_SHARES)
    lam = (f"policy.cost_lambda={cost_lambda}", "policy.allow_skip=true")
    learned = "recurrent_ppo"

    def anytime(model: str) -> tuple[ExplicitVariant, ...]:
        """``model`` stopped after K steps, and with its exit calibrated to that cost."""
        _, trunc, exit_row = next(r for r in ANYTIME_ROWS if r[0] == model)
        return (
            ExplicitVariant(trunc, policy=model, exits=tuple(Truncate(k) for k in steps)),
            ExplicitVariant(
                exit_row, policy=model, exits=tuple(Budget(1.0, trunc, k) for k in steps)
            ),
        )

    variants = (
        ExplicitVariant("dense", policy="dense"),
        ExplicitVariant("glance_only", policy="glance_only"),
        ExplicitVariant(learned, policy=learned),
        *anytime(learned),
        ExplicitVariant(
            "recurrent_ppo_glance_exit",
            policy=learned,
            exits=tuple(Budget(s, learned, glance_exit=True) for s in GLANCE_EXIT_SHARES),
        ),
        *(ExplicitVariant(h, policy=h, option_of=learned) for h in (*HEURISTICS, ORACLE)),
        ExplicitVariant("differentiable", policy="differentiable", option_of=learned),
        ExplicitVariant("ppo", policy="ppo"),
        *anytime("ppo"),
        ExplicitVariant(
            "ppo_memoryless", overrides=("policy.observe_previous_action=false",), policy="ppo"
        ),
        ExplicitVariant("recurrent_ppo_lambda", overrides=lam, policy=learned),
        # last: the rows above do not wait for its long training
        ExplicitVariant(
            "dense_matched", policy="dense", overrides=(f"train.epochs={pipeline_epochs(cfg)}",)
        ),
    )
    pairs = (
        (learned, None, "dense_matched", None),
        (learned, None, "random", None),
        ("differentiable", None, "random", None),
        (learned, None, "ppo", None),
        (learned, None, "ppo_memoryless", None),
        *((name, None, ORACLE, None) for name in LEARNED_ROWS),
        *(
            (exit_row, Budget(1.0, trunc, k).to_json(), trunc, Truncate(k).to_json())
            for _, trunc, exit_row in ANYTIME_ROWS
            for k in steps
        ),
    )
    return Grid(
        path,
        path,
        tuple(overrides or ()),
        (),
        {},
        variants,
        (None,),
        seeds=(None,) if seeds == 1 else tuple(range(seeds)),
        reference="dense",
        pairs=pairs,
    )


def run_benchmark(
    config: str | Path,
    out_dir: str | Path,
    overrides: list[str] | None = None,
    cost_lambda: float = 0.01,
    progress: bool = True,
    log: Callable[[str], None] = print,
    seeds: int = 1,
    finished_only: bool = False,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Train (or reuse) every method of the table in ``out_dir`` (the runner's folder) and
    evaluate it; ``log`` gets the progress lines, the other arguments are :func:`policy_grid`'s.
    With ``finished_only`` nothing is trained or evaluated: the rows are the finished ones.

    :returns: the table rows (over seeds: means with intervals), in :data:`NAMES` order, one per
        exit entry; and the paired comparisons.
    """
    grid = policy_grid(config, overrides, cost_lambda, seeds)
    result = run_grid(grid, out_dir, progress=progress, log=log, finished_only=finished_only)
    rows = comparison_rows(result, NAMES)
    for row in rows:
        if row["name"] == "recurrent_ppo_lambda":
            row["cost_lambda"] = cost_lambda
    if anytime_points(rows):
        log(f"anytime curves: {plot_anytime(rows, Path(out_dir) / ANYTIME_PLOT)}")
    return rows, result.comparisons


#: The anytime plot :func:`run_benchmark` writes into the run folder.
ANYTIME_PLOT = "anytime.png"


def anytime_points(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The points of the anytime curves among table ``rows``: per :data:`ANYTIME_ROWS` model,
    ``<model>: first K steps`` (its truncations and its full run) and ``<model>: calibrated
    exit`` (the exits calibrated to each truncation's cost), intervals kept."""
    points = []
    for model, trunc, exit_row in ANYTIME_ROWS:
        for row in rows:
            if row["name"] in (trunc, exit_row) or (row["name"] == model and not row.get("exit")):
                kind = "calibrated exit" if row["name"] == exit_row else "first K steps"
                points.append({**row, "curve": f"{model}: {kind}"})
    return points


def plot_anytime(rows: list[dict[str, Any]], path: Path) -> Path:
    """Accuracy against GMACs/video of :func:`anytime_points` (one line per curve, error bars
    the seeds' 95% intervals) into ``path``."""
    from videofocus.viz.tradeoff import plot_tradeoff  # matplotlib only when plotting

    title = "anytime: truncation vs calibrated early exit (test split)"
    return plot_tradeoff(anytime_points(rows), path, title=title, annotate=False)


def _compared(comparisons: list[dict[str, Any]], name: str, reference: str):
    """The paired comparison of ``name`` minus ``reference`` (None when it was not measured)."""
    return next((c for c in comparisons if (c["name"], c["reference"]) == (name, reference)), None)


def acceptance(
    rows: list[dict[str, Any]],
    comparisons: list[dict[str, Any]],
    memory: bool = False,
    steps: Sequence[int] | None = None,
) -> list[str]:
    """The acceptance checks, as lines saying pass or miss with the numbers (accuracies from the
    reported split; intervals paired on its videos and the seeds).

    :param memory: the memory benchmark (``synthetic_memory``): a line of its own, the
        recurrent policy against the feed-forward one at the same cost.
    :param steps: the truncations the exit line compares at (:func:`truncation_steps` of the
        clip: the anytime curves' other points are not tried for a pass); None: every one.
    """
    by = {(r["name"], json.dumps(r.get("exit"))): r for r in rows}

    def row(name: str, exit_entry: Any = None) -> dict[str, Any]:
        return by[(name, json.dumps(exit_entry))]

    rppo, rnd, dense, diff = map(row, ("recurrent_ppo", "random", "dense", "differentiable"))
    # accuracies are multiples of 1 / videos: exactly 15 points must pass despite float error
    eps = 1e-9
    lines = []

    def check(ok: bool, text: str) -> None:
        lines.append(f"[{'pass' if ok else 'MISS'}] {text}")

    def interval(c: dict[str, Any] | None) -> str:
        if c is None:
            return "no paired interval"
        return f"paired {100 * c['difference']:+.1f} [{100 * c['difference_low']:+.1f}, " + (
            f"{100 * c['difference_high']:+.1f}] over {c['seeds']} seed(s)"
        )

    vs_random = _compared(comparisons, "recurrent_ppo", "random")
    gain = rppo["accuracy"] - rnd["accuracy"]
    check(
        gain >= 0.15 - eps and vs_random is not None and vs_random["difference_low"] > 0.10,
        f"recurrent_ppo - random at option {rppo.get('option')}: {100 * gain:+.1f} points "
        f"(need >= +15, interval above +10): {interval(vs_random)}",
    )
    # against the better dense row: the epoch-matched one where the run has it
    matched = by.get(("dense_matched", "null"))
    if matched is not None and matched.get("seeds", 1) != dense.get("seeds", 1):
        matched = None  # a run read part-way: means over other seeds do not compare
    best = max((r for r in (dense, matched) if r), key=lambda r: r["accuracy"])
    acc_ratio = rppo["accuracy"] / max(best["accuracy"], eps)
    cost_ratio = rppo["gmacs_per_video"] / best["gmacs_per_video"]
    check(
        acc_ratio >= 0.95 - eps and cost_ratio <= 0.25 + eps,
        f"recurrent_ppo: {100 * acc_ratio:.1f}% of {best['name']}'s accuracy (need >= 95%) at "
        f"{100 * cost_ratio:.1f}% of dense GMACs (need <= 25%), policy MACs counted",
    )
    d_gain = diff["accuracy"] - rnd["accuracy"]
    cover = (diff.get("target_coverage") or 0.0) / max(rnd.get("target_coverage") or 0.0, eps)
    check(
        d_gain >= 0.10 - eps and cover >= 1.5 - eps,
        f"differentiable - random: {100 * d_gain:+.1f} points (need >= +10), target coverage "
        f"{cover:.2f}x random's (need >= 1.5x): "
        f"{interval(_compared(comparisons, 'differentiable', 'random'))}",
    )

    def same_cost(c: dict[str, Any]) -> tuple[bool, str]:
        # the budget is the truncation's val cost; on test the calibrated exit may spend more
        ex, cut = row(c["name"], c["exit"]), row(c["reference"], c["reference_exit"])
        ratio = ex["gmacs_per_video"] / cut["gmacs_per_video"]
        return ratio <= 1.05, f"{ex['gmacs_per_video']:.4f} vs {cut['gmacs_per_video']:.4f} GMACs"

    exits = [
        c
        for c in comparisons
        if c["name"] == "recurrent_ppo_exit"
        and c["reference"] == "recurrent_ppo_truncate"
        and (steps is None or c["reference_exit"]["max_steps"] in steps)
    ]
    measured = ", ".join(
        f"{c['reference_exit']['max_steps']} steps {interval(c)} at {same_cost(c)[1]}"
        for c in exits
    )
    check(
        any(c["difference_low"] > 0 and same_cost(c)[0] for c in exits),
        "calibrated exit - truncation at equal mean GMACs (test cost within 5%): "
        f"{measured or 'not measured'} (need one interval above 0 at equal cost)",
    )
    if memory:
        ppo = row("ppo")
        vs_ppo = _compared(comparisons, "recurrent_ppo", "ppo")
        m_gain = rppo["accuracy"] - ppo["accuracy"]
        check(
            m_gain >= 0.10 - eps and vs_ppo is not None and vs_ppo["difference_low"] > 0,
            f"memory: recurrent_ppo - ppo: {100 * m_gain:+.1f} points at "
            f"{rppo['gmacs_per_video']:.4f} vs {ppo['gmacs_per_video']:.4f} GMACs (need >= +10, "
            f"interval above 0): {interval(vs_ppo)}",
        )
        memoryless = by.get(("ppo_memoryless", "null"))
        if memoryless is not None:
            vs_none = _compared(comparisons, "recurrent_ppo", "ppo_memoryless")
            lines.append(
                f"[info] memory: recurrent_ppo - ppo_memoryless (no previous action observed): "
                f"{100 * (rppo['accuracy'] - memoryless['accuracy']):+.1f} points at "
                f"{memoryless['gmacs_per_video']:.4f} GMACs: {interval(vs_none)}"
            )
    for name in LEARNED_ROWS:
        gap = _compared(comparisons, name, ORACLE)
        lines.append(f"[info] {name} - oracle: {interval(gap)}")
    others = [
        c
        for c in comparisons
        if c["name"] == "ppo_exit"
        and c["reference"] == "ppo_truncate"
        and (steps is None or c["reference_exit"]["max_steps"] in steps)
    ]
    if others:
        measured = ", ".join(
            f"{c['reference_exit']['max_steps']} steps {interval(c)} at {same_cost(c)[1]}"
            for c in others
        )
        lines.append(f"[info] ppo: calibrated exit - truncation: {measured}")
    return lines


def add_run_arguments(parser: argparse.ArgumentParser, seeds: int = 1) -> None:
    """The options ``bench policy`` and ``bench protocol`` share: ``--cost-lambda``, ``--seeds``
    (default ``seeds``), ``--no-progress`` and the dotted overrides."""
    parser.add_argument(
        "--cost-lambda",
        type=float,
        default=0.01,
        help="policy.cost_lambda of the recurrent_ppo_lambda row (default %(default)s; "
        "docs/benchmarks.md shows what lambda trades on the tiny config)",
    )
    own = ": the config's own seeds" if seeds == 1 else ""
    parser.add_argument(
        "--seeds",
        type=int,
        default=seeds,
        metavar="N",
        help="train and evaluate every row with seeds 0..N-1: means, 95%% intervals and paired "
        f"comparisons over them (default %(default)s{own})",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument(
        "--finished-only",
        action="store_true",
        help="train and evaluate nothing: report what the run folder has finished so far (a "
        "multi-seed run part-way; each row says over how many seeds)",
    )
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted config overrides")


def report_results(
    rows: list[dict[str, Any]],
    comparisons: list[dict[str, Any]],
    memory: bool,
    json_path: Path | None = None,
    steps: Sequence[int] | None = None,
) -> None:
    """Print the table, the paired comparisons and the :func:`acceptance` lines (``steps``:
    its exit line's truncations); write the rows and comparisons as JSON
    ``{"rows": [...], "comparisons": [...]}`` to ``json_path`` if given."""
    print(format_comparison(rows), "", format_comparisons(comparisons), "", sep="\n")
    needed = ("dense", "random", "differentiable", "recurrent_ppo", *(("ppo",) if memory else ()))
    found = {
        r["name"]: r.get("seeds", 1) for r in rows if r["name"] in needed and not r.get("exit")
    }
    missing = [n for n in needed if n not in found]
    if missing:  # a report of a run part-way (--finished-only)
        print(f"[wait] the acceptance lines need rows not finished yet: {', '.join(missing)}")
    elif len(set(found.values())) > 1:  # means over different seeds do not compare
        seeds = ", ".join(f"{n} {k}" for n, k in found.items())
        print(f"[wait] the acceptance lines need their rows over the same seeds: {seeds}")
    else:
        print(*acceptance(rows, comparisons, memory, steps), sep="\n")
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"rows": rows, "comparisons": comparisons}
        json_path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``videofocus bench policy``."""
    parser.add_argument("--config", required=True, help="YAML config, e.g. synthetic_tiny.yaml")
    parser.add_argument("--json", type=Path, metavar="OUT", help="write rows here")
    parser.add_argument(
        "--out-dir",
        type=Path,
        help="run folder (default: the config's train.out_dir); finished stages are reused",
    )
    add_run_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Train what is missing, evaluate every method, print the table, optionally write JSON."""
    if args.seeds < 1 or args.cost_lambda <= 0:
        print("videofocus bench policy: --seeds must be >= 1, --cost-lambda > 0", file=sys.stderr)
        return 2
    cfg = load_config(args.config, args.overrides)
    out_dir = args.out_dir or Path(cfg.train.out_dir)
    start = time.perf_counter()
    log = functools.partial(print, file=sys.stderr, flush=True)
    progress = not args.no_progress
    rows, comparisons = run_benchmark(
        args.config,
        out_dir,
        args.overrides,
        args.cost_lambda,
        progress,
        log,
        args.seeds,
        args.finished_only,
    )
    split = "test" if has_rows(cfg, "test") else "validation"
    partial = "; finished rows only, each over the seeds done so far" if args.finished_only else ""
    print(
        f"policy benchmark: {cfg.name}, {split} split ({args.seeds} seed(s){partial}; every "
        f"choice made on train/val), run folder {out_dir}; accuracy is top-1, GMACs are "
        "multiply-accumulates per video\n"
    )
    memory = cfg.data.synthetic is not None and cfg.data.synthetic.cue_ratio < 1
    report_results(rows, comparisons, memory, args.json, truncation_steps(cfg.data.frames))
    print(f"\n{time.perf_counter() - start:.0f} s in all (training skipped where reused)")
    return 0
