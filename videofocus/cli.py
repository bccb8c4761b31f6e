"""The ``videofocus`` command. It only parses arguments and calls library functions."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable, Sequence
from types import ModuleType


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


def build_parser() -> argparse.ArgumentParser:
    """The full ``videofocus`` argument parser."""
    from data_prep import CONVERTERS, load_converter
    from videofocus import __version__
    from videofocus.benchmarks import BENCHMARKS, load_benchmark

    parser = argparse.ArgumentParser(
        prog="videofocus", description="Adaptive video recognition: glance, focus, exit early."
    )
    parser.add_argument("--version", action="version", version=f"videofocus {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("probe", help="print one JSON line of metadata per video")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per file before giving up")
    p.add_argument("--backend", default="pyav", help="decoder used for probing (pyav|decord)")
    p.set_defaults(_run=cmd_probe)

    prep = sub.add_parser("prepare", help="build manifests from dataset annotations")
    _add_plugin_commands(
        prep.add_subparsers(dest="dataset", required=True, metavar="DATASET"),
        CONVERTERS,
        load_converter,
    )

    bench = sub.add_parser("bench", help="run a benchmark and print its table")
    _add_plugin_commands(
        bench.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK"),
        BENCHMARKS,
        load_benchmark,
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``videofocus`` console script."""
    args = build_parser().parse_args(argv)
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
