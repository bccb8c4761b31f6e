"""Dataset preparation: turn public annotation formats into videofocus manifests.

Every converter is one module here, reached as ``videofocus prepare <name> ...``. A converter
module exposes ``add_arguments(parser)`` and ``run(args) -> int`` (the exit code), and its
docstring's first line is the command's help; the rest of the docstring lists the files it writes.
"""

from __future__ import annotations

import importlib
from types import ModuleType

#: ``videofocus prepare <name>`` -> module implementing it.
CONVERTERS: dict[str, str] = {
    "activitynet": "data_prep.activitynet",
    "kinetics": "data_prep.kinetics",
    "minikinetics": "data_prep.minikinetics",
    "sthv2": "data_prep.sthv2",
    "fcvid": "data_prep.fcvid",
    "list": "data_prep.lists",
    "folder": "data_prep.folder",
    "reencode": "data_prep.reencode",
    "synthetic": "data_prep.synthetic",
}


def load_converter(name: str) -> ModuleType:
    """Import the module behind ``videofocus prepare <name>``."""
    if name not in CONVERTERS:
        raise KeyError(f"unknown dataset {name!r}; choose from {sorted(CONVERTERS)}")
    return importlib.import_module(CONVERTERS[name])
