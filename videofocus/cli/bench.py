"""``videofocus bench NAME ...``: the benchmark modules of :mod:`videofocus.benchmarks`.

Only the benchmark named is imported (its options are its own ``add_arguments``).
"""

from __future__ import annotations

import argparse


def _benchmark(name: str):
    from videofocus.benchmarks import load_benchmark

    return load_benchmark(name)


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    benchmark = _benchmark(name)
    parser.description = benchmark.__doc__
    benchmark.add_arguments(parser)


def run(args: argparse.Namespace, name: str) -> int:
    return _benchmark(name).run(args)
