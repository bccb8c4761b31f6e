"""What ``videofocus label`` (and ``label merge`` / ``label export``) runs.

``videofocus label``'s exit status is the number of inputs whose row says ``error`` (capped at
100), so 0 means every video was labelled; a job that cannot run prints one line and exits with
a status of its own (``videofocus --help``).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any, TypeVar

from videofocus.exit_status import LABEL_FAILURES_MAX, UsageError
from videofocus.labeling.results import read_results

T = TypeVar("T")


def check_policy(name: str | None) -> None:
    """Refuse, as argparse would, a ``--policy`` the heuristics' registry does not hold."""
    from videofocus.policy.heuristics import list_policies

    names = list_policies()  # the registry, as it is when the command runs
    if name is not None and name not in names:
        choices = ", ".join(repr(n) for n in names)
        raise UsageError(
            "--policy",
            f"invalid choice: {name!r} (choose from {choices}) (see 'videofocus label --help')",
        )


def run(args: argparse.Namespace) -> int:
    """Run the job; the exit status counts the failed videos of the output."""
    check_policy(args.policy)

    from videofocus.inference.inferencer import InferenceOptions
    from videofocus.inference.model import load_inference_model
    from videofocus.labeling.job import LabelJobOptions, print_summary, run_label_job
    from videofocus.labeling.sharding import resolve_shard

    # --sampling goes in as a config override: both engines decode by model.cfg.data, and an
    # unset --sampling keeps the config's own data.sampling
    overrides = list(args.overrides)
    if args.sampling is not None:
        overrides.append(f"data.sampling={args.sampling}")
    model = load_inference_model(
        args.checkpoint, args.config, overrides, policy=args.policy, option=args.option
    )
    glance_exit = model.cfg.exit.glance_exit if args.glance_exit is None else args.glance_exit
    options = _from_args(InferenceOptions, args, glance_exit=glance_exit)
    from videofocus.labeling.ray_engine import RayOptions

    ray = RayOptions(address=args.ray_address, actors=args.ray_actors)
    job = _from_args(
        LabelJobOptions,
        args,
        num_workers=args.workers,
        progress=not args.no_progress,
        ray=ray if args.engine == "ray" else None,
    )
    shard = resolve_shard(args.num_shards, args.shard_index)
    summary = run_label_job(args.input, model, args.out, options, job, shard, args.device)
    print_summary(summary)
    rows = read_results(summary.out)
    _export(rows, args.csv, args.activitynet)
    failed = sum(r["status"] != "ok" for r in rows)
    return min(failed, LABEL_FAILURES_MAX)


def _from_args(cls: type[T], args: argparse.Namespace, **given: Any) -> T:
    """The options dataclass ``cls``, each field not ``given`` from the same-named argument."""
    names = [f.name for f in dataclasses.fields(cls) if f.name not in given]
    return cls(**{name: getattr(args, name) for name in names}, **given)


def _export(rows: list[dict], csv_path: str | None, activitynet: str | None) -> None:
    from videofocus.labeling.exporters import export_activitynet, export_csv

    if csv_path:
        print(f"wrote {export_csv(rows, csv_path)} rows to {csv_path}", file=sys.stderr)
    if activitynet:
        n = export_activitynet(rows, activitynet)
        print(f"wrote {n} videos to {activitynet}", file=sys.stderr)


def run_merge(args: argparse.Namespace) -> int:
    """Join the shard files into ``out`` after checking that none is missing or incomplete."""
    from videofocus.labeling.sharding import merge_shards

    report = merge_shards(args.out, args.num_shards)
    print(
        f"merged {report.shards} shards: {report.rows} rows ({report.ok} ok, {report.errors} "
        f"error) -> {report.out}",
        file=sys.stderr,
    )
    _export(read_results(report.out), args.csv, args.activitynet)
    return 0


def run_export(args: argparse.Namespace) -> int:
    """Convert a labels file to CSV and/or ActivityNet result JSON."""
    if not (args.csv or args.activitynet):
        raise UsageError("label export", "give --csv and/or --activitynet")
    _export(read_results(args.labels), args.csv, args.activitynet)
    return 0
