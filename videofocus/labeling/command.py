"""Arguments of ``videofocus label`` (and ``label merge`` / ``label export``) and their runners.

``videofocus label INPUT --checkpoint CKPT --out labels.jsonl`` labels every video of INPUT (a
manifest, a folder, or a text list of paths). Its exit status is the number of inputs whose row
says ``error`` (capped at 100), so 0 means every video was labelled; ``--retry-errors`` labels
those inputs again. A job that cannot run (a wrong argument or input, another job's output file,
a full disk, Ctrl-C) prints one line and exits with a status of its own (``videofocus --help``).
"""

from __future__ import annotations

import argparse
import sys

from videofocus.exit_status import LABEL_FAILURES_MAX, UsageError
from videofocus.labeling.results import read_results

#: Highest exit status the failure count maps to.
MAX_EXIT = LABEL_FAILURES_MAX


def float_list(text: str) -> list[float]:
    """``argparse`` type of comma-separated numbers, e.g. ``--thresholds 0.9,0.8``."""
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, got {text!r}"
        ) from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``videofocus label INPUT``. Building them imports no torch: ``--policy`` is
    checked against the heuristics' registry by :func:`run` (:func:`check_policy`)."""
    p.add_argument("input", metavar="INPUT", help="manifest (.jsonl), folder, or list of paths")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="a checkpoint folder, e.g. runs/x/finetune/final")
    src.add_argument(
        "--config",
        help="run this config's model with RANDOM weights (dry runs): a built-in config name, "
        "e.g. synthetic_tiny, or a YAML path",
    )
    p.add_argument("--out", required=True, help="output JSONL (resumed when it exists)")
    p.add_argument(
        "--policy",
        metavar="NAME",
        help="replace the checkpoint's policy by a heuristic "
        "(random, centre, saliency, dense, glance_only)",
    )
    p.add_argument("--option", type=int, help="glimpse option of that heuristic (1..K)")
    p.add_argument(
        "--budget-gmacs",
        type=float,
        help="calibrate exit thresholds to this mean "
        "GMACs/video (stored ones for the same budget are reused)",
    )
    p.add_argument(
        "--calibrate",
        metavar="MANIFEST",
        help="labelled manifest to calibrate on (default: the config's validation rows)",
    )
    p.add_argument("--thresholds", type=float_list, help="exit thresholds, one or one per step")
    p.add_argument("--max-steps", type=int, help="anytime mode: read only this many steps")
    p.add_argument("--chunk-steps", type=int, default=2, help="steps between exit checks")
    p.add_argument(
        "--local-batch",
        type=int,
        help="glimpses per encoder call (default: 64 on the CPU, 512 on a GPU)",
    )
    p.add_argument("--batch-size", type=int, default=32, help="clips per decoded batch")
    p.add_argument(
        "--workers",
        type=int,
        help="decoding processes (0: inline; default: half "
        "the cores on the CPU, all but one with a GPU)",
    )
    p.add_argument(
        "--threads",
        type=int,
        help="torch threads of the network on the CPU (default: the cores the workers leave)",
    )
    p.add_argument("--decode-timeout", type=float, default=60.0, help="seconds per video")
    p.add_argument("--device", help="cpu, cuda, cuda:1 (default: the config's)")
    p.add_argument(
        "--amp",
        choices=["off", "bf16", "fp16"],
        default="off",
        help="autocast of the encoders (CUDA; bf16 also on the CPU)",
    )
    p.add_argument(
        "--channels-last",
        action="store_true",
        help="channels-last memory format for the convolutional encoders",
    )
    p.add_argument("--compile", action="store_true", help="torch.compile the encoders")
    p.add_argument("--topk", type=int, default=5, help="labels written per video")
    p.add_argument("--glimpses", action="store_true", help="write each video's glimpses")
    p.add_argument("--num-shards", type=int, help="default: torchrun/Slurm world size, else 1")
    p.add_argument("--shard-index", type=int, help="default: torchrun/Slurm rank, else 0")
    p.add_argument("--csv", metavar="PATH", help="also export the shard's rows as CSV")
    p.add_argument("--activitynet", metavar="PATH", help="also export ActivityNet result JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--retry-errors",
        action="store_true",
        help="label again the inputs whose row in --out says error (the new row replaces it)",
    )
    p.add_argument("overrides", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides")


def check_policy(name: str | None) -> None:
    """Refuse a ``--policy`` the heuristics' registry does not hold, as argparse refuses a
    choice (before any model loads).

    :raises UsageError: naming ``--policy`` and the choices.
    """
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

    model = load_inference_model(
        args.checkpoint, args.config, args.overrides, policy=args.policy, option=args.option
    )
    options = InferenceOptions(
        chunk_steps=args.chunk_steps,
        local_batch=args.local_batch,
        thresholds=args.thresholds,
        max_steps=args.max_steps,
        amp=args.amp,
        channels_last=args.channels_last,
        compile=args.compile,
    )
    job = LabelJobOptions(
        batch_size=args.batch_size,
        num_workers=args.workers,
        threads=args.threads,
        decode_timeout=args.decode_timeout,
        topk=args.topk,
        glimpses=args.glimpses,
        budget_gmacs=args.budget_gmacs,
        calibrate=args.calibrate,
        progress=not args.no_progress,
        retry_errors=args.retry_errors,
    )
    shard = resolve_shard(args.num_shards, args.shard_index)
    summary = run_label_job(args.input, model, args.out, options, job, shard, args.device)
    print_summary(summary)
    rows = read_results(summary.out)
    _export(rows, args.csv, args.activitynet)
    failed = sum(r["status"] != "ok" for r in rows)
    return min(failed, MAX_EXIT)


def _export(rows: list[dict], csv_path: str | None, activitynet: str | None) -> None:
    from videofocus.labeling.exporters import export_activitynet, export_csv

    if csv_path:
        print(f"wrote {export_csv(rows, csv_path)} rows to {csv_path}", file=sys.stderr)
    if activitynet:
        n = export_activitynet(rows, activitynet)
        print(f"wrote {n} videos to {activitynet}", file=sys.stderr)


def add_merge_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``videofocus label merge``."""
    p.add_argument("out", help="the --out every shard was given (shards are found beside it)")
    p.add_argument("--num-shards", type=int, help="expected shards (default: from file names)")
    p.add_argument("--csv", metavar="PATH", help="also export the merged rows as CSV")
    p.add_argument("--activitynet", metavar="PATH", help="also export ActivityNet result JSON")


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


def add_export_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``videofocus label export``."""
    p.add_argument("labels", help="a labels JSONL file")
    p.add_argument("--csv", metavar="PATH", help="write the rows as CSV")
    p.add_argument("--activitynet", metavar="PATH", help="write ActivityNet result JSON")


def run_export(args: argparse.Namespace) -> int:
    """Convert a labels file to CSV and/or ActivityNet result JSON."""
    if not (args.csv or args.activitynet):
        raise UsageError("label export", "give --csv and/or --activitynet")
    _export(read_results(args.labels), args.csv, args.activitynet)
    return 0
