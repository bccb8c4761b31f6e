"""``videofocus label INPUT ...``, ``label merge OUT``, ``label export``: the options; the
runners are :mod:`videofocus.labeling.command`'s (light to import: no torch)."""

from __future__ import annotations

import argparse
import inspect

from videofocus.cli.arguments import add_export_arguments, add_model_arguments, add_overrides


def _description(module_doc: str) -> str:
    # the module docstring's first paragraph is about the module; the rest is about the command
    _, _, body = module_doc.strip().partition("\n\n")
    return (
        f"{body}\n\nAlso: 'videofocus label merge' joins the shard files of a sharded job;\n"
        "'videofocus label export' converts a labels file to CSV or ActivityNet JSON."
    )


def _label_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", metavar="INPUT", help="manifest (.jsonl), folder, or list of paths")
    add_model_arguments(p, "run")
    p.add_argument("--out", required=True, help="output JSONL (resumed when it exists)")
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
    p.add_argument(
        "--glance-exit",
        action="store_true",
        default=None,
        help="the glance-only prediction is the first exit, before any glimpse: one threshold "
        "more (default: the config's exit.glance_exit, off)",
    )
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
    from videofocus.io.samplers import SAMPLINGS  # numpy only

    p.add_argument(
        "--sampling",
        choices=SAMPLINGS,
        help="frames read: exact (the sampled frames) or keyframe (the keyframe nearest each, "
        "decoded alone: much faster on long keyframe intervals); default: the config's "
        "data.sampling (exact)",
    )
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
        help="no effect: the encoders always run channels-last (kept for old command lines)",
    )
    p.add_argument("--compile", action="store_true", help="torch.compile the encoders")
    p.add_argument("--topk", type=int, default=5, help="labels written per video")
    p.add_argument("--glimpses", action="store_true", help="write each video's glimpses")
    p.add_argument(
        "--engine",
        choices=["local", "ray"],
        default="local",
        help="local: decoding workers and the model in this process; ray: Ray Data (decoding "
        "tasks, model actors; pip install 'videofocus[ray]')",
    )
    p.add_argument(
        "--ray-address",
        help="with --engine ray: an existing cluster (default: an embedded local Ray)",
    )
    p.add_argument(
        "--ray-actors",
        type=int,
        help="with --engine ray: model actors (default: one per GPU of the cluster, else 1)",
    )
    p.add_argument("--num-shards", type=int, help="default: torchrun/Slurm world size, else 1")
    p.add_argument("--shard-index", type=int, help="default: torchrun/Slurm rank, else 0")
    add_export_arguments(p, "the shard's rows")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--retry-errors",
        action="store_true",
        help="label again the inputs whose row in --out says error (the new row replaces it)",
    )
    add_overrides(p, help="config overrides")


def add_arguments(parser: argparse.ArgumentParser, word: str | None = None) -> None:
    from videofocus.labeling import command

    if word is None:
        parser.description = _description(command.__doc__ or "")
        _label_arguments(parser)
    elif word == "merge":
        parser.description = inspect.cleandoc(command.run_merge.__doc__ or "")
        parser.add_argument(
            "out", help="the --out every shard was given (shards are found beside it)"
        )
        parser.add_argument(
            "--num-shards", type=int, help="expected shards (default: from file names)"
        )
        add_export_arguments(parser, "the merged rows")
    elif word == "export":
        parser.description = inspect.cleandoc(command.run_export.__doc__ or "")
        parser.add_argument("labels", help="a labels JSONL file")
        add_export_arguments(parser, "the rows")
    else:
        raise KeyError(f"unknown label command {word!r}")


def run(args: argparse.Namespace, word: str | None = None) -> int:
    from videofocus.labeling import command

    runner = {None: command.run, "merge": command.run_merge, "export": command.run_export}[word]
    return runner(args)
