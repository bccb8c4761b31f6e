"""Manifests, class vocabularies and the clip dataset."""

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

__all__ = [
    "ManifestError",
    "ManifestRow",
    "iter_manifest",
    "parse_row",
    "read_classes",
    "read_manifest",
    "write_classes",
    "write_manifest",
]
