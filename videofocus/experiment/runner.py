"""Training and evaluating the variants of a grid, sharing every stage two variants agree on.

Layout of the output folder ``DIR``::

    DIR/stages/<stage>-<hash>/<stage>/      one trained stage (``final/``, ``last/``, logs)
    DIR/stages/<stage>-<hash>/<needed>      links to the stages it was trained from
    DIR/variants/<name>/<stage>             links to the variant's stages (a complete run folder)
    DIR/variants/<name>/config.yaml         the variant's resolved config
    DIR/variants/<name>/result.json         written atomically once the variant is evaluated

A stage's hash covers what it reads itself (:func:`~videofocus.train.stages.stage_reads`) and
the hashes of the stages it starts from, so variants that differ only in ``policy.*`` share one
warm-up, variants that differ only in their glimpse options share one dense baseline, and a
stage is trained once however many variants use it.

Every stage runs with ``resume=True`` in its own folder: a finished one is skipped, an interrupted
supervised one continues from ``last/``. A variant whose ``result.json`` matches its stages (and
holds every exit entry of the grid) is not evaluated again. A variant that fails stops the grid
with :class:`VariantFailed`; the results finished before it stay.

Every choice (an option taken from another variant, a budget) is made on the validation rows;
the numbers reported come from the held-out test rows when the data has them. A glimpse
variant's accuracy is its own model's (or the warm-up network's, ``finetune: false``), and
``accuracy_warmup_net`` its glimpses read by the shared warm-up network.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from videofocus.artifacts.learned_policy import load_focusnet, load_learned_policy
from videofocus.artifacts.load import load_model
from videofocus.config import Config, save_config
from videofocus.data.loaders import ensure_dataset, evaluation_rows, has_rows
from videofocus.data.synthetic import read_targets
from videofocus.evaluation.evaluate import evaluate_adaptive, evaluate_checkpoint
from videofocus.evaluation.policy_eval import (
    BUDGET_CHUNK_STEPS,
    ORACLE,
    dominant_option,
    evaluate_budgeted_exit,
    evaluate_glimpse_model,
    oracle_actions,
)
from videofocus.experiment.grid import (
    BASELINES,
    DIFFERENTIABLE,
    HEURISTICS,
    LEARNED,
    OPTION_KEY,
    Budget,
    ExitEntry,
    Grid,
    Truncate,
    Variant,
    axis_applies,
    config_value,
    expand_grid,
    unseeded_exit,
    with_option,
)
from videofocus.experiment.report import paired_comparisons, write_report
from videofocus.inference.inferencer import InferenceOptions
from videofocus.io.atomic_files import write_atomic
from videofocus.policy.focusnet import PolicyFocusNet
from videofocus.policy.heuristics import create_policy
from videofocus.train.loop import run_supervised_stage
from videofocus.train.pipeline import run_stage, stage_config
from videofocus.train.stages import stage_reads
from videofocus.train.variants import heuristic_stage, train_seconds

__all__ = [
    "RESULT_FILE",
    "GridRows",
    "StagePlan",
    "VariantFailed",
    "describe_plan",
    "evaluate_variant",
    "plan_stages",
    "resolve_variant",
    "run_grid",
    "run_variant",
    "variant_rows",
]

RESULT_FILE = "result.json"


class VariantFailed(RuntimeError):
    """A variant of the grid raised; the cause is chained as ``__cause__``."""

    def __init__(self, name: str, out_dir: Path, finished: int, cause: BaseException) -> None:
        self.name = name
        super().__init__(
            f"variant {name!r} failed with {type(cause).__name__}: {cause}. "
            f"The {finished} variant(s) finished before it keep their results in {out_dir}; "
            "fix the cause and run the same command again to continue."
        )


@dataclass(frozen=True)
class StagePlan:
    """One stage a variant needs."""

    name: str  # the stage's folder name inside a run folder (dense, warmup, policy, ...)
    key: str  # ``<name>-<hash>``: its folder under ``DIR/stages/``
    needs: tuple[str, ...]  # stages of the same plan it reads from its run folder


def _digest(content: Any) -> str:
    text = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def plan_stages(variant: Variant) -> list[StagePlan]:
    """The stages ``variant`` trains, in training order, each keyed by the config it depends on."""
    cfg = variant.cfg
    plans: list[StagePlan] = []

    def add(name: str, content: dict[str, Any], needs: tuple[str, ...] = ()) -> str:
        key = f"{name}-{_digest({'stage': name, **content})}"
        plans.append(StagePlan(name, key, needs))
        return key

    if variant.policy in BASELINES:
        add(variant.policy, stage_reads(variant.policy, cfg))
        return plans
    dense = None
    if cfg.train.warmup_init == "dense":  # AdaFocus's stage 0: warm-up starts from it
        dense = add("dense", stage_reads("dense", cfg))
    warmup = add(
        "warmup", {**stage_reads("warmup", cfg), "dense": dense}, ("dense",) if dense else ()
    )
    if variant.policy in LEARNED:
        policy = add("policy", {**stage_reads("policy", cfg), "warmup": warmup}, ("warmup",))
        if variant.finetune:
            finetune = {**stage_reads("finetune", cfg), "policy": policy, "warmup": warmup}
            add("finetune", finetune, ("warmup", "policy"))
    elif variant.option is None:
        raise ValueError(f"variant {variant.name!r}: its option is not resolved yet")
    elif variant.policy == DIFFERENTIABLE:
        reads = stage_reads(DIFFERENTIABLE, cfg)
        add(DIFFERENTIABLE, {**reads, "warmup": warmup}, ("warmup",))
    elif variant.finetune:
        name = f"finetune_{variant.policy}_o{variant.option}"
        add(name, {**stage_reads(name, cfg), "warmup": warmup}, ("warmup",))
    return plans


def resolve_variant(variant: Variant, records: dict[str, dict[str, Any]]) -> Variant:
    """``variant`` with ``option_of`` resolved: the option that earlier variant's own model
    glimpses with most (from its record, without early exit)."""
    if variant.option_of is None:
        return variant
    entry = _choice(_exit_entry(records[variant.option_of], None) or {})
    if entry.get("option") is None:
        raise ValueError(
            f"variant {variant.name!r}: {variant.option_of!r} has no glimpse option to take"
        )
    option = int(entry["option"])
    return replace(variant, cfg=with_option(variant.cfg, variant.policy, option), option=option)


def describe_plan(variants: Sequence[Variant], out_dir: str | Path) -> str:
    """One line per variant: its policy, and each stage with how many variants share it and
    whether it is already trained in ``out_dir`` (``[result done]``: a result of these stages)."""
    out = Path(out_dir)
    plans = {v.name: plan_stages(v) for v in variants if v.option_of is None}
    users = Counter(plan.key for stages in plans.values() for plan in stages)
    lines = []
    for v in variants:
        if v.option_of is not None:
            lines.append(f"{v.name} [{v.policy}]: planned once {v.option_of} has run")
            continue
        parts = []
        for plan in plans[v.name]:
            done = (out / "stages" / plan.key / plan.name / "final").is_dir()
            parts.append(f"{plan.key} (x{users[plan.key]}{', trained' if done else ''})")
        result = " [result done]" if _recorded(v, out)[1] else ""
        lines.append(f"{v.name} [{v.policy}]{result}: {' -> '.join(parts)}")
    return "\n".join(lines)


def _link(link: Path, target: Path) -> None:
    """Make ``link`` a relative symlink to the folder ``target`` (replacing a stale link)."""
    relative = os.path.relpath(target, link.parent)
    if link.is_symlink():
        if os.readlink(link) == relative:
            return
        link.unlink()
    elif link.exists():
        raise FileExistsError(f"{link} is a real folder where the grid needs a link; move it away")
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(relative, target_is_directory=True)


def _train_stage(
    cfg: Config,
    variant: Variant,
    plan: StagePlan,
    keys: dict[str, str],
    stages_dir: Path,
    progress: bool,
    log: Callable[[str], None],
) -> Path:
    """Train (or reuse, or resume) one stage in its own run folder; returns its ``final/``."""
    run_dir = stages_dir / plan.key
    stage_dir = run_dir / plan.name
    if (stage_dir / "final").is_dir():
        log(f"stage {plan.name}: reusing stages/{plan.key}")
        return stage_dir / "final"
    for need in plan.needs:
        _link(run_dir / need, stages_dir / keys[need] / need)
    resuming = " (resuming)" if (stage_dir / "last").is_dir() else ""
    log(f"stage {plan.name}: training in stages/{plan.key}{resuming}")
    stage_cfg = replace(cfg, train=replace(cfg.train, out_dir=str(run_dir)))
    if plan.name.startswith("finetune_"):  # a heuristic's fine-tune
        assert variant.option is not None
        stage = heuristic_stage(stage_cfg, variant.policy, variant.option)
        result = run_supervised_stage(
            stage_config(stage_cfg, "finetune"), stage, resume=True, progress=progress
        )
    else:
        result = run_stage(stage_cfg, plan.name, resume=True, progress=progress)
    log(f"stage {plan.name}: done in {result.seconds:.0f} s")
    return stage_dir / "final"


def _scores(result: dict[str, Any], accuracy: float) -> dict[str, Any]:
    """What every evaluation reports: its numbers as plain floats, and the per-video hits."""
    return {
        "accuracy": float(accuracy),
        **{k: float(result[k]) for k in ("top5", "gmacs_per_video", "videos_per_s")},
        "video_index": result["video_index"],
        "video_correct": result["video_correct"],
    }


def _glimpse_entry(variant: Variant, cfg: Config, final: Path) -> dict[str, Any]:
    """Accuracy and glimpse statistics of a glimpse variant, with ``accuracy_warmup_net``."""
    run, root = Path(cfg.train.out_dir), cfg.data.root
    # the synthetic generator's target tracks, where the data has them
    tracks = read_targets(root) if (Path(root) / "targets.jsonl").is_file() else None
    net, _ = load_focusnet(cfg, run / "warmup" / "final")
    own = actions = None
    if variant.policy == ORACLE:  # given glimpses, not a policy: both nets read the same ones
        assert tracks is not None and variant.option is not None
        actions = oracle_actions(tracks, net.options, net.grid, variant.option, cfg.data.frame_size)
        shared_net = net
    else:
        if variant.policy in LEARNED:
            policy = load_learned_policy(cfg, run / "policy" / "final")
        elif variant.policy in HEURISTICS:
            policy = create_policy(variant.policy, net.options, net.grid, option=variant.option)
        else:  # differentiable: continuous centres; the warm-up network reads them grid-snapped
            model = load_model(final, cfg).net
            own, policy = evaluate_glimpse_model(cfg, model, tracks), model.policy
        shared_net = PolicyFocusNet(net, policy, False)
    shared = evaluate_glimpse_model(cfg, shared_net, tracks, actions)
    if own is None and variant.finetune:
        own = evaluate_glimpse_model(cfg, load_model(final, cfg).net, tracks, actions)
    own = shared if own is None else own
    return {
        **_scores(own, own["top1"]),
        "option": dominant_option(own),
        "accuracy_warmup_net": float(shared["top1"]),
        "target_coverage": own["target_coverage"],
        "skip_rate": float(own["skip_rate"]),
    }


def evaluate_variant(
    variant: Variant,
    cfg: Config,
    exit_entry: ExitEntry,
    budget_of: float | None = None,
    calibration: Config | None = None,
    glance_exit: bool = False,
    chunk_steps: int | None = None,
) -> dict[str, Any]:
    """Accuracy, top-5, GMACs/video and videos/s of a trained variant (its option resolved) on
    the evaluation rows of ``cfg``, whose ``train.out_dir`` is its run folder.

    :param exit_entry: None (no early exit; glimpse variants add their glimpse statistics), or
        thresholds, a :class:`~videofocus.experiment.grid.Budget` or a
        :class:`~videofocus.experiment.grid.Truncate`, run through the adaptive inferencer.
    :param budget_of: for a budget, the GMACs per video it is a share of.
    :param calibration: for a budget, the config whose evaluation rows calibrate its
        thresholds (never the rows that report).
    :param glance_exit: for thresholds, whether the first is the glance exit's (a glance-exit
        budget's thresholds evaluated again).
    :param chunk_steps: for thresholds, the inference chunking they run with (a budget's
        thresholds evaluated again: :data:`BUDGET_CHUNK_STEPS`, as calibrated); None: the
        inferencer's default.
    """
    final = Path(cfg.train.out_dir) / plan_stages(variant)[-1].name / "final"
    extra: dict[str, Any] = {}
    thresholds: list[float] | None = None
    if isinstance(exit_entry, Budget):
        assert budget_of is not None and calibration is not None
        extra["budget_gmacs"] = exit_entry.share * budget_of
        thresholds, result = evaluate_budgeted_exit(
            cfg, final, extra["budget_gmacs"], calibration, exit_entry.glance_exit
        )
        extra["exit_rule"] = result["exit_rule"]
    elif isinstance(exit_entry, Truncate):
        options = InferenceOptions(max_steps=exit_entry.max_steps)
        result = evaluate_adaptive(cfg, final, options=options)
    elif exit_entry is not None:
        thresholds = list(exit_entry)
        exit_cfg = replace(
            cfg, exit=replace(cfg.exit, thresholds=thresholds, glance_exit=glance_exit)
        )
        chunking = {} if chunk_steps is None else {"chunk_steps": chunk_steps}
        options = InferenceOptions(glance_exit=glance_exit, **chunking)
        result = evaluate_adaptive(exit_cfg, final, thresholds=thresholds, options=options)
    elif variant.policy in BASELINES:
        result = evaluate_checkpoint(cfg, final)
    else:
        return {"exit": None, "exit_thresholds": None, **_glimpse_entry(variant, cfg, final)}
    if exit_entry is None:
        accuracy = result["top1"]
    else:  # every exit entry runs through the adaptive inferencer
        accuracy = result["accuracy"]
        extra["exit_fraction"] = result["exit_fraction"]
        for key in ("glance_exit_rate", "glance_top1"):  # a glance exit's own numbers
            if key in result:
                extra[key] = float(result[key])
    return {
        "exit": _entry_json(exit_entry),
        "exit_thresholds": thresholds,
        **_scores(result, accuracy),
        **extra,
    }


def _choice(entry: dict[str, Any]) -> dict[str, Any]:
    """The measurements of an entry that choices may read: its validation ones."""
    return entry.get("val", entry)


def _exit_entry(record: dict[str, Any], exit_entry: ExitEntry) -> dict[str, Any] | None:
    """The record's evaluation at ``exit_entry`` (None: the one without early exit)."""
    wanted = _entry_json(exit_entry)
    return next((e for e in record["evaluations"] if e.get("exit") == wanted), None)


def _entry_json(entry: ExitEntry) -> Any:
    return entry.to_json() if isinstance(entry, (Budget, Truncate)) else entry


def _entry_key(entry: Any) -> str:
    return json.dumps(_entry_json(entry), sort_keys=True)


def run_variant(
    variant: Variant,
    out_dir: str | Path,
    progress: bool = True,
    log: Callable[[str], None] = print,
    records: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Train what ``variant`` (its ``option_of`` resolved: :func:`resolve_variant`) lacks in the
    grid's output folder ``DIR``, evaluate it per exit entry, write its result.

    :param records: the earlier variants' records, by name (budgets that are a share of
        another variant's cost read it).
    :returns: the record written to ``DIR/variants/<name>/result.json``: ``name``, ``policy``,
        ``protocol``, ``option``, ``fingerprint`` (its last stage's key), ``stages``,
        ``stage_seconds``, ``train_seconds`` (their sum), ``checkpoint`` (its last stage's
        ``final/``) and ``evaluations`` (one per exit entry, in grid order).
    """
    out = Path(out_dir)
    run_dir = out / "variants" / variant.name
    result_path = run_dir / RESULT_FILE
    plans = plan_stages(variant)
    fingerprint = plans[-1].key
    done: dict[str, dict[str, Any]] = {}
    previous, finished = _recorded(variant, out)
    if finished:
        log(f"reused finished result {result_path}")
        return previous
    if previous is not None and previous.get("fingerprint") == fingerprint:
        done = {_entry_key(e["exit"]): e for e in previous["evaluations"]}
    elif previous is not None:
        log(f"config changed since {result_path} was written: training/evaluating again")

    start = time.perf_counter()
    cfg = replace(
        variant.cfg,
        name=f"{variant.cfg.name}__{variant.name}",
        train=replace(variant.cfg.train, out_dir=str(run_dir)),
    )
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / "config.yaml")
    stages_dir = out / "stages"
    keys = {plan.name: plan.key for plan in plans}
    seconds: dict[str, float] = {}
    for plan in plans:
        final = _train_stage(cfg, variant, plan, keys, stages_dir, progress, log)
        seconds[plan.name] = train_seconds(final)
        _link(run_dir / plan.name, stages_dir / plan.key / plan.name)

    report = "test" if has_rows(cfg, "test") else "val"

    def entry_for(exit_entry: ExitEntry) -> dict[str, Any]:
        entry = done.get(_entry_key(exit_entry))
        if entry is not None:
            return entry
        budget_of = None
        if isinstance(exit_entry, Budget):
            cost = (records or {}).get(exit_entry.of) if exit_entry.of else None
            base_exit = None if exit_entry.max_steps is None else Truncate(exit_entry.max_steps)
            base = _exit_entry(cost, base_exit) if cost else entry_for(base_exit)
            assert base is not None, f"{exit_entry.of}: no evaluation at {_entry_json(base_exit)}"
            budget_of = _choice(base)["gmacs_per_video"]  # a choice: made on val
        log(f"evaluating ({'no early exit' if exit_entry is None else _entry_json(exit_entry)})")
        # calibrated on rows no number is reported from: val, or train where val reports
        calibration = cfg if report != "val" else evaluation_rows(cfg, "train")
        entry = evaluate_variant(
            variant, evaluation_rows(cfg, report), exit_entry, budget_of, calibration
        )
        if report != "val":  # what choices read; the per-video hits only where it reports
            # a budget's thresholds are calibrated once, on the validation rows: val reuses them
            again = entry["exit_thresholds"] if isinstance(exit_entry, Budget) else exit_entry
            glance = isinstance(exit_entry, Budget) and exit_entry.glance_exit
            chunk = BUDGET_CHUNK_STEPS if isinstance(exit_entry, Budget) else None
            val = evaluate_variant(
                variant, cfg, again, budget_of, glance_exit=glance, chunk_steps=chunk
            )
            entry["val"] = {k: v for k, v in val.items() if not k.startswith("video_")}
        done[_entry_key(exit_entry)] = {"split": report, **entry}
        return done[_entry_key(exit_entry)]

    evaluations = [entry_for(e) for e in variant.exits]
    record = {
        "name": variant.name,
        "policy": variant.policy,
        "protocol": variant.protocol,
        "option": variant.option,
        "fingerprint": fingerprint,
        "stages": keys,
        "stage_seconds": seconds,
        "train_seconds": sum(seconds.values()),
        "checkpoint": str(run_dir / plans[-1].name / "final"),
        "evaluations": evaluations,
    }
    write_atomic(result_path, json.dumps(record, indent=2) + "\n")  # all or nothing
    log(f"finished in {time.perf_counter() - start:.0f} s -> {result_path}")
    return record


def variant_rows(variant: Variant, record: dict[str, Any], grid: Grid) -> list[dict[str, Any]]:
    """The table rows of one finished variant: one per exit entry.

    Each row holds ``name``, ``policy``, ``protocol``, every axis key of the grid (None where
    the variant's policy ignores it), ``exit`` and ``exit_thresholds``, what the evaluation
    measured (``accuracy``, ``top5``, ``gmacs_per_video``, ``videos_per_s``; glimpse variants
    also ``option``, ``accuracy_warmup_net``, ``target_coverage``, ``skip_rate``; early exit
    ``exit_fraction`` and, for a budget, ``budget_gmacs`` and ``exit_rule``; a glance exit
    ``glance_exit_rate`` and ``glance_top1``), ``train_seconds`` (every stage behind the
    variant, shared ones included), ``stage_seconds``, ``checkpoint`` and ``curve``:
    its plot line (the variant itself over several exit entries, else its name without the last
    axis).
    """
    axes: dict[str, Any] = {}
    for key in grid.axes:
        if key in variant.axes:
            axes[key] = variant.axes[key]
        elif key == OPTION_KEY:
            axes[key] = variant.option
        elif axis_applies(variant.policy, key):  # an explicit variant: what its config says
            axes[key] = config_value(variant.cfg, key)
        else:
            axes[key] = None
    curve = variant.name if len(variant.exits) > 1 else variant.curve
    head = {"name": variant.name, "policy": variant.policy, "protocol": record["protocol"]}
    if variant.seed is not None:  # a copy per seed: the rows a summary pools say so
        head.update(method=variant.method, seed=variant.seed)
    skip = ("exit", "exit_thresholds", "val")  # a row spells these its own way
    return [
        {
            **head,
            **axes,
            "exit": unseeded_exit(entry.get("exit"), variant.seed),
            "exit_thresholds": entry["exit_thresholds"],
            **{k: v for k, v in entry.items() if k not in skip and not k.startswith("video_")},
            "train_seconds": record["train_seconds"],
            "stage_seconds": record["stage_seconds"],
            "checkpoint": record["checkpoint"],
            "curve": curve,
        }
        for entry in record["evaluations"]
    ]


class GridRows(list):
    """What :func:`run_grid` returns: its rows (a list), and the paired comparisons it reported
    as :attr:`comparisons`."""

    comparisons: list[dict[str, Any]]


def _recorded(variant: Variant, out: Path) -> tuple[dict[str, Any] | None, bool]:
    """``variant``'s result record in ``out`` (None: none yet), and whether it is finished: made
    from the stages this config trains, with an evaluation for every exit entry."""
    result_path = out / "variants" / variant.name / RESULT_FILE
    if not result_path.is_file():
        return None, False
    record = json.loads(result_path.read_text("utf-8"))
    if record.get("fingerprint") != plan_stages(variant)[-1].key:
        return record, False
    done = {_entry_key(e["exit"]) for e in record["evaluations"]}
    return record, all(_entry_key(t) in done for t in variant.exits)


#: Seconds between two refreshes of a running grid's report (the bootstrap intervals and plots
#: cost seconds each time; every run ends with a full one, and ``--finished-only`` reads any
#: time).
REPORT_EVERY_S = 300.0


def run_grid(
    grid: Grid,
    out_dir: str | Path,
    overrides: Sequence[str] = (),
    progress: bool = True,
    log: Callable[[str], None] = print,
    finished_only: bool = False,
) -> GridRows:
    """Run every variant of ``grid`` (with the extra ``overrides``) in order in the output folder
    ``DIR`` and write the report: every :data:`REPORT_EVERY_S` seconds, at the end, and before
    a failure is raised.

    :param finished_only: train and evaluate nothing: report the variants whose results are
        finished (a long multi-seed run read part-way; the rows' ``seeds`` say how many).

    :returns: all rows (see :func:`variant_rows`), in variant order, with the paired
        comparisons (against ``grid.reference``, then ``grid.pairs``) as ``.comparisons``.
    :raises GridError: for a grid that does not expand.
    :raises VariantFailed: when a variant raises; the report then holds the rows before it.
    """
    out = Path(out_dir)
    variants = expand_grid(grid, overrides)
    out.mkdir(parents=True, exist_ok=True)
    ensure_dataset(variants[0].cfg.data, workers=os.cpu_count() or 1, progress=progress)
    log(f"grid {grid.path}: {len(variants)} variant(s) x {len(grid.exit_thresholds)} exit entries")
    title = f"{grid.path.stem}: accuracy vs GMACs per video"
    rows = GridRows()
    rows.comparisons = []
    records: dict[str, dict[str, Any]] = {}
    runs: list[dict[str, Any]] = []  # per-video hits, for the paired comparisons
    split = "val"
    last_report = time.perf_counter()

    def report() -> None:
        nonlocal last_report
        if rows:
            rows.comparisons = paired_comparisons(runs, grid.reference, grid.pairs)
            write_report(rows, out, title=title, comparisons=rows.comparisons, split=split)
        last_report = time.perf_counter()

    for i, variant in enumerate(variants, 1):
        tag = f"[{i}/{len(variants)}] {variant.name}"

        def tagged(line: str, tag: str = tag) -> None:
            log(f"{tag}: {line}")

        if finished_only:
            ready = variant.option_of is None or variant.option_of in records
            record = _recorded(resolve_variant(variant, records), out) if ready else (None, False)
            if not record[1]:
                tagged("not finished: left out of this report")
                continue
            variant, record = resolve_variant(variant, records), record[0]
        else:
            try:
                variant = resolve_variant(variant, records)
                record = run_variant(variant, out, progress, tagged, records)
            except Exception as exc:
                report()
                raise VariantFailed(variant.name, out, i - 1, exc) from exc
        records[variant.name] = record
        rows.extend(variant_rows(variant, record, grid))
        for entry in record["evaluations"]:
            if "video_index" in entry:
                exit_entry = unseeded_exit(entry.get("exit"), variant.seed)
                runs.append(
                    {**entry, "exit": exit_entry, "method": variant.method, "seed": variant.seed}
                )
            split = entry.get("split", split)
        if time.perf_counter() - last_report >= REPORT_EVERY_S:
            report()
    report()
    log(f"report: {out / 'results.md'}, {out / 'results.csv'}, {out / 'tradeoff.png'}")
    return rows
