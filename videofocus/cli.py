"""The ``videofocus`` command. It only parses arguments and calls library functions.

Whatever goes wrong ends in one line on stderr and a documented exit status
(:mod:`videofocus.exit_status`); ``videofocus --debug ...`` or ``VIDEOFOCUS_DEBUG=1`` adds the
traceback and shows warnings as Python prints them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import ModuleType
from typing import NoReturn

from videofocus.exit_status import UsageError, describe_failure, statuses_help

#: what to do after Ctrl-C, per command that picks up where it stopped
RESUME_HINTS = {
    "quickstart": "rerun the same command to resume (finished stages are kept)",
    "train": "rerun with --resume to continue from the last checkpoint (--stage all resumes "
    "by itself)",
    "label": "rerun the same command to resume (finished videos are kept)",
    "ablate": "rerun the same command to resume (finished variants are kept)",
}


class CommandParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are :class:`UsageError` s, reported in one line like
    every other failure (argparse itself prints the usage text and exits)."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix("videofocus").strip() or "videofocus"
        where, sep, reason = message.partition(": ")
        if not (sep and where.startswith("argument ")):
            where, reason = command, message
        else:
            where = where.removeprefix("argument ")
        raise UsageError(where, f"{reason} (see '{self.prog} --help')")


def _first_line(module: ModuleType) -> str:
    return (module.__doc__ or "").strip().splitlines()[0] if module.__doc__ else ""


def _add_plugin_commands(
    sub: argparse._SubParsersAction, registry: dict[str, str], loader: Callable[[str], ModuleType]
) -> None:
    for name in registry:
        module = loader(name)
        p = sub.add_parser(
            name,
            help=_first_line(module),
            description=module.__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(p)
        p.set_defaults(_run=module.run)


def cmd_probe(args: argparse.Namespace) -> int:
    """Print one JSON line of metadata per input; exit 0 even when some inputs fail."""
    from videofocus.io.probe import probe_video

    for path in args.paths:
        result = probe_video(path, timeout=args.timeout, backend=args.backend)
        print(json.dumps(result.to_json()), flush=True)
    return 0


def _load_config(args: argparse.Namespace):
    from videofocus.config import load_config

    return load_config(args.config, args.overrides)


def cmd_train(args: argparse.Namespace) -> int:
    """Train a stage of a config, or ``all`` three (``torchrun`` launches it on many GPUs or
    nodes); prints one JSON line per stage."""
    from videofocus.engine.pipeline import run_stages

    cfg = _load_config(args)
    # `all` always resumes: finished stages are kept, an interrupted one continues.
    resume = args.resume or args.stage == "all"
    for result in run_stages(cfg, [args.stage], resume=resume):
        print(
            json.dumps(
                {
                    "stage": result.stage,
                    "checkpoint": str(result.final_dir),
                    "seconds": round(result.seconds, 1),
                    **result.metrics,
                }
            ),
            flush=True,
        )
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    """Evaluate a checkpoint: accuracy, mAP, GMACs per video, videos/s, as JSON."""
    from videofocus.engine.evaluate import evaluate_checkpoint, write_json

    cfg = _load_config(args)
    write_json(evaluate_checkpoint(cfg, args.checkpoint, args.manifest), args.json)
    return 0


def cmd_flops(args: argparse.Namespace) -> int:
    """Per-component and per-video GMACs (multiply-accumulates) of a config."""
    from videofocus.flops import run_flops

    return run_flops(args.config, args.overrides, args.json)


def cmd_quickstart(args: argparse.Namespace) -> int:
    """Generate data, train, evaluate and report, on the built-in synthetic benchmark."""
    from videofocus.quickstart import run_quickstart

    run_quickstart(args.out, args.config, args.overrides, resume=not args.fresh)
    return 0


def _config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="YAML config (see configs/)")
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="dotted overrides, e.g. train.epochs=3 model.grid=5",
    )


def build_parser() -> argparse.ArgumentParser:
    """The full ``videofocus`` argument parser."""
    from data_prep import CONVERTERS, load_converter
    from videofocus import __version__
    from videofocus.benchmarks import BENCHMARKS, load_benchmark
    from videofocus.io.backends import BACKENDS

    parser = CommandParser(
        prog="videofocus",
        description="Adaptive video recognition: glance, focus, exit early.",
        epilog=statuses_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"videofocus {__version__}")
    parser.add_argument(
        "--debug",
        action="store_true",
        help="on failure print the traceback too, and show warnings in full "
        "(also: VIDEOFOCUS_DEBUG=1); put it before COMMAND",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "quickstart", help="the whole pipeline on built-in synthetic data, ending in a report"
    )
    p.add_argument("--out", default="runs/quickstart", help="output folder (default %(default)s)")
    p.add_argument("--config", help="config to run (default: configs/synthetic_tiny.yaml)")
    p.add_argument("--fresh", action="store_true", help="retrain stages already finished in OUT")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted config overrides")
    p.set_defaults(_run=cmd_quickstart)

    p = sub.add_parser("probe", help="print one JSON line of metadata per video")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per file before giving up")
    p.add_argument(
        "--backend",
        default="auto",
        choices=["auto", *BACKENDS],  # the registry, as it is when the command runs
        help="decoder used for probing; auto reads as the jobs do (default %(default)s)",
    )
    p.set_defaults(_run=cmd_probe)

    p = sub.add_parser(
        "train",
        help="train a stage (warmup, policy, finetune, all) or a baseline (dense, glance_only)",
    )
    _config_args(p)
    p.add_argument(
        "--stage",
        default="warmup",
        choices=["warmup", "dense", "glance_only", "policy", "finetune", "differentiable", "all"],
        help="all: [dense ->] warmup -> policy -> finetune, skipping finished stages "
        "(default %(default)s)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="skip a finished stage; continue a supervised one from its last checkpoint",
    )
    p.set_defaults(_run=cmd_train)

    p = sub.add_parser("eval", help="evaluate a checkpoint (top-1/5, mAP, GMACs/video, videos/s)")
    _config_args(p)
    p.add_argument("--checkpoint", required=True, help="a checkpoint folder (e.g. .../final)")
    p.add_argument("--manifest", help="evaluate all rows of this manifest instead of val rows")
    p.add_argument("--json", metavar="OUT", help="also write the result to this file")
    p.set_defaults(_run=cmd_eval)

    p = sub.add_parser("flops", help="per-component and per-video GMACs of a config")
    _config_args(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(_run=cmd_flops)

    prep = sub.add_parser("prepare", help="build manifests from dataset annotations")
    _add_plugin_commands(
        prep.add_subparsers(dest="dataset", required=True, metavar="DATASET"),
        CONVERTERS,
        load_converter,
    )

    from videofocus.labeling import command as label

    p = sub.add_parser(
        "label",
        help="label a video collection (resumable, sharded); also `label merge`, `label export`",
        description=label.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    label.add_arguments(p)
    p.set_defaults(_run=label.run)
    from videofocus.ablation import command as ablate

    p = sub.add_parser(
        "ablate",
        help=_first_line(ablate),
        description=ablate.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ablate.add_arguments(p)
    p.set_defaults(_run=ablate.run)

    from videofocus.viz import command as viz

    p = sub.add_parser(
        "viz",
        help="draw a clip's glimpses (colour per option, skips, running top-1) into a gif or mp4",
        description=viz.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    viz.add_arguments(p)
    p.set_defaults(_run=viz.run)

    bench = sub.add_parser("bench", help="run a benchmark and print its table")
    _add_plugin_commands(
        bench.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK"),
        BENCHMARKS,
        load_benchmark,
    )
    return parser


def _label_subparser(name: str) -> argparse.ArgumentParser:
    """The parser of ``videofocus label merge`` or ``videofocus label export``."""
    from videofocus.labeling import command as label

    add, run = {
        "merge": (label.add_merge_arguments, label.run_merge),
        "export": (label.add_export_arguments, label.run_export),
    }[name]
    p = CommandParser(prog=f"videofocus label {name}", description=run.__doc__)
    add(p)
    p.set_defaults(_run=run, command=f"label {name}")
    return p


def _debug_requested(argv: list[str]) -> bool:
    """Whether ``--debug`` leads ``argv`` (it is removed) or ``VIDEOFOCUS_DEBUG`` is set."""
    debug = os.environ.get("VIDEOFOCUS_DEBUG", "").strip() not in ("", "0")
    while argv[:1] == ["--debug"]:
        debug = True
        del argv[0]
    return debug


def _command_name(args: argparse.Namespace | None, argv: Sequence[str]) -> str:
    """``label``, ``label merge``, ``prepare kinetics``, ... for error lines."""
    if args is None:
        words = [a for a in argv[:2] if not a.startswith("-")]
        return " ".join(words[:1]) or "videofocus"
    name = str(getattr(args, "command", None) or "videofocus")
    for sub in ("dataset", "benchmark"):
        if getattr(args, sub, None):
            name += f" {getattr(args, sub)}"
    return name


@contextmanager
def _warnings_as_lines(debug: bool) -> Iterator[None]:
    """Without ``debug``, show each warning as one ``videofocus: warning: ...`` line instead of
    Python's two (file:line and the source line); with it, as Python does."""
    if debug:
        yield
        return

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        text = " ".join(str(message).split())
        print(f"videofocus: warning: {category.__name__}: {text}", file=sys.stderr, flush=True)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


def _parse(argv: list[str]) -> argparse.Namespace:
    # `label merge` / `label export` are sub-commands of `label`, which otherwise takes INPUT
    parser = (
        _label_subparser(argv[1])
        if argv[:1] == ["label"] and argv[1:2] in (["merge"], ["export"])
        else build_parser()
    )
    if parser.prog.startswith("videofocus label "):
        argv = argv[2:]
    # KEY=VALUE overrides may also follow options (`train CFG --stage dense a.b=1`), where
    # argparse has already closed the positional list: collect them from the leftovers.
    args, extra = parser.parse_known_args(argv)
    stray = [x for x in extra if x.startswith("-") or "=" not in x]
    if stray or (extra and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(stray or extra)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``videofocus`` console script; returns the exit status.

    Every failure (a wrong argument, config key, manifest, checkpoint or results file; a
    read-only or full disk; Ctrl-C; a bug) prints one line on stderr,
    ``videofocus: error: <file[:line] or key>: <reason>``, and returns its status from
    :mod:`videofocus.exit_status`; ``--debug`` before the command (or ``VIDEOFOCUS_DEBUG=1``)
    prints the traceback first.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = _debug_requested(argv)
    args: argparse.Namespace | None = None
    try:
        with _warnings_as_lines(debug):
            args = _parse(argv)
            return int(args._run(args) or 0)
    except (Exception, KeyboardInterrupt) as exc:  # SystemExit (--help, --version) goes on
        return _report(exc, args, argv, debug)


def _report(
    exc: BaseException, args: argparse.Namespace | None, argv: Sequence[str], debug: bool
) -> int:
    """Print the failure's line (after its traceback with ``debug``) and return its status."""
    command = _command_name(args, argv)
    status, line = describe_failure(exc, command, RESUME_HINTS.get(command))
    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    print(f"videofocus: error: {line}", file=sys.stderr, flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
