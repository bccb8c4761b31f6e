"""Manifests, class vocabularies, the clip dataset and clip transforms.

The manifest API imports no torch; ``ClipDataset`` and ``collate_clips`` load lazily.
"""

from __future__ import annotations

import importlib
from typing import Any

from videofocus.data.manifest import (
    ManifestError,
    ManifestRow,
    iter_manifest,
    parse_row,
    read_classes,
    read_manifest,
    write_classes,
    write_manifest,
)

_LAZY = {"ClipDataset": "videofocus.data.dataset", "collate_clips": "videofocus.data.dataset"}

__all__ = [
    "ClipDataset",
    "ManifestError",
    "ManifestRow",
    "collate_clips",
    "iter_manifest",
    "parse_row",
    "read_classes",
    "read_manifest",
    "write_classes",
    "write_manifest",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'videofocus.data' has no attribute {name!r}")
