"""``videofocus prepare DATASET ...`` and ``videofocus bench NAME ...``: the module a registry
names (:data:`videofocus.data_prep.CONVERTERS`, :data:`videofocus.benchmarks.BENCHMARKS`) defines
the command's options (``add_arguments``) and runs it (``run``); only that module is imported."""

from __future__ import annotations

import argparse
import importlib


def add_arguments(parser: argparse.ArgumentParser, module: str) -> None:
    plugin = importlib.import_module(module)
    parser.description = plugin.__doc__
    plugin.add_arguments(parser)


def run(args: argparse.Namespace, module: str) -> int:
    return importlib.import_module(module).run(args)
