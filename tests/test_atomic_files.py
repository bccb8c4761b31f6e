"""Atomic files and folders (`videofocus.io.atomic_files`): permissions follow the umask, as a
plain open() / mkdir() would, for every writer built on them; failures leave the old version."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from videofocus.data_prep.probing import write_jsonl

from videofocus.artifacts.checkpoint import CheckpointMeta, save_checkpoint
from videofocus.data.manifest import ManifestRow, write_classes, write_manifest
from videofocus.io.atomic_files import atomic_directory, current_umask, write_atomic
from videofocus.labeling.results import ResultWriter, meta_path
from videofocus.labeling.sharding import ShardSpec, merge_shards, shard_meta, shard_path


@pytest.fixture
def umask(request) -> Iterator[int]:
    """Run the test under the umask given as the parameter, restoring the old one after."""
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


META = CheckpointMeta("warmup", 2, ["a", "b"], {}, {"frame_size": 8})


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _write_everything(root: Path) -> tuple[list[Path], list[Path]]:
    """Run every writer once under ``root``; return (files, folders) they created."""
    write_manifest(root / "data" / "manifest.jsonl", [ManifestRow(id="a", path="a.mp4")])
    write_classes(root / "data" / "classes.txt", ["x", "y"])
    write_jsonl(root / "data" / "rejects.jsonl", [{"id": "b", "reason": "missing file"}])
    ckpt = save_checkpoint(root / "run" / "final", {"w": torch.zeros(2)}, META, {"s": 1})
    labels = root / "labels.jsonl"
    with ResultWriter(labels, meta={"input": "/in"}) as writer:
        writer.write([{"id": "a", "status": "error"}])
    with ResultWriter(labels, relabel=lambda row: row["status"] == "error") as writer:
        writer.write([{"id": "a", "status": "ok"}])  # the file was rewritten without row a
    out = root / "merged.jsonl"
    for i in range(2):
        spec = ShardSpec(2, i)
        with ResultWriter(shard_path(out, spec), meta=shard_meta("/in", spec, [f"v{i}"])) as w:
            w.write([{"id": f"v{i}", "status": "ok"}])
    merge_shards(out)
    write_atomic(root / "plain.txt", "text")
    files = [
        root / "data" / "manifest.jsonl",
        root / "data" / "classes.txt",
        root / "data" / "rejects.jsonl",
        *sorted(ckpt.iterdir()),
        labels,
        meta_path(labels),
        out,
        meta_path(out),
        shard_path(out, ShardSpec(2, 0)),
        root / "plain.txt",
    ]
    return files, [root / "data", root / "run", ckpt]


@pytest.mark.parametrize(
    ("umask", "file_mode", "dir_mode"),
    [(0o022, 0o644, 0o755), (0o027, 0o640, 0o750)],
    indirect=["umask"],
)
def test_every_writer_follows_the_umask(tmp_path, umask, file_mode, dir_mode):
    assert current_umask() == umask
    files, folders = _write_everything(tmp_path)
    assert {str(f.relative_to(tmp_path)): oct(_mode(f)) for f in files} == {
        str(f.relative_to(tmp_path)): oct(file_mode) for f in files
    }
    assert {str(d): oct(_mode(d)) for d in folders} == {str(d): oct(dir_mode) for d in folders}
    leftovers = [p for p in tmp_path.rglob(".*") if p.name.endswith((".tmp", ".old"))]
    assert leftovers == []


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "f.json"
    write_atomic(path, b"old")

    class Unwritable:  # bytes-like enough to reach the write, then fails there
        def __len__(self) -> int:
            return 1

    with pytest.raises(TypeError):
        write_atomic(path, Unwritable())  # type: ignore[arg-type]
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["f.json"]


def test_a_failed_folder_keeps_the_old_folder(tmp_path):
    target = tmp_path / "ckpt"
    with atomic_directory(target) as tmp:
        (tmp / "a.txt").write_text("old")
    with pytest.raises(RuntimeError, match="half-way"):
        with atomic_directory(target) as tmp:
            (tmp / "a.txt").write_text("new")
            raise RuntimeError("killed half-way")
    assert (target / "a.txt").read_text() == "old" and os.listdir(tmp_path) == ["ckpt"]
    with atomic_directory(target) as tmp:
        (tmp / "b.txt").write_text("newer")
    assert os.listdir(target) == ["b.txt"] and os.listdir(tmp_path) == ["ckpt"]


def test_os_errors_of_writes_name_the_file(tmp_path, monkeypatch):
    def full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match="No space left") as caught:
        write_atomic(tmp_path / "x.json", json.dumps({"a": 1}))
    assert caught.value.filename == str(tmp_path / "x.json")
    assert os.listdir(tmp_path) == []
