"""Benchmarks reached as ``videofocus bench <name>``: each prints a table and can write JSON.

A benchmark module exposes ``add_arguments(parser)`` and ``run(args) -> int``; its docstring is
the command's help, and its first paragraph the summary ``videofocus bench --help`` lists (from
``GROUPS`` in :mod:`videofocus.cli`, which imports no benchmark; a test keeps the two equal).
"""

from __future__ import annotations

import importlib
from types import ModuleType

BENCHMARKS: dict[str, str] = {
    "decode": "videofocus.benchmarks.decode",
    "policy": "videofocus.benchmarks.policy",
    "protocol": "videofocus.benchmarks.protocol",
    "label": "videofocus.benchmarks.label",
}


def load_benchmark(name: str) -> ModuleType:
    """Import the module behind ``videofocus bench <name>``."""
    if name not in BENCHMARKS:
        raise KeyError(f"unknown benchmark {name!r}; choose from {sorted(BENCHMARKS)}")
    return importlib.import_module(BENCHMARKS[name])
