"""Shards: who runs which items, where they write, and the checked merge back to input order."""

from __future__ import annotations

import json
import random

import pytest

from videofocus.labeling.results import ResultWriter, meta_path, read_results
from videofocus.labeling.sharding import (
    MergeReport,
    ShardMergeError,
    ShardSpec,
    merge_shards,
    resolve_shard,
    select_shard,
    shard_meta,
    shard_path,
)

IDS = [f"video_{i:02d}.mp4" for i in range(11)]


def test_resolve_shard_priority_explicit_torchrun_slurm_default():
    torchrun = {"WORLD_SIZE": "4", "RANK": "3"}
    slurm = {"SLURM_NTASKS": "8", "SLURM_PROCID": "5"}
    assert resolve_shard(env={}) == ShardSpec(1, 0)
    assert resolve_shard(env=slurm) == ShardSpec(8, 5)
    assert resolve_shard(env={**slurm, **torchrun}) == ShardSpec(4, 3)
    assert resolve_shard(2, 1, env={**slurm, **torchrun}) == ShardSpec(2, 1)
    assert resolve_shard(num_shards=8, env=torchrun) == ShardSpec(8, 3)  # index from RANK
    assert resolve_shard(shard_index=0, env={"WORLD_SIZE": "", "RANK": ""}) == ShardSpec(1, 0)


@pytest.mark.parametrize(
    ("kwargs", "env", "message"),
    [
        ({"num_shards": 0, "shard_index": 0}, {}, "--num-shards must be >= 1"),
        ({"num_shards": 4, "shard_index": 4}, {}, r"--shard-index must be in \[0, 4\)"),
        ({"shard_index": 1}, {}, r"--shard-index must be in \[0, 1\) for 1 shards \(default\)"),
        ({}, {"WORLD_SIZE": "2", "RANK": "2"}, r"RANK must be in \[0, 2\)"),
        ({}, {"SLURM_NTASKS": "0", "SLURM_PROCID": "0"}, "SLURM_NTASKS must be >= 1"),
        ({}, {"WORLD_SIZE": "two", "RANK": "0"}, "WORLD_SIZE='two' is not an integer"),
        ({"num_shards": 3}, {}, r"3 shards \(--num-shards\) but no shard index"),
    ],
)
def test_resolve_shard_errors_name_the_option_or_variable(kwargs, env, message):
    with pytest.raises(ValueError, match=message):
        resolve_shard(**kwargs, env=env)


def test_select_shard_is_a_round_robin_partition():
    parts = [select_shard(IDS, ShardSpec(3, i)) for i in range(3)]
    assert parts[1] == [IDS[1], IDS[4], IDS[7], IDS[10]]
    assert sorted(sum(parts, [])) == IDS
    assert select_shard(IDS, ShardSpec(1, 0)) == IDS
    assert select_shard(IDS[:2], ShardSpec(4, 3)) == []


def test_shard_path_names(tmp_path):
    out = tmp_path / "labels.jsonl"
    assert shard_path(out, ShardSpec(1, 0)) == out
    assert shard_path(out, ShardSpec(8, 3)) == tmp_path / "labels.shard-00003-of-00008.jsonl"
    assert shard_path("x/run.v2.jsonl", ShardSpec(2, 1)).as_posix() == (
        "x/run.v2.shard-00001-of-00002.jsonl"
    )


def _run_shard(out, spec, ids, source="/data/list.txt", skip=(), extra=()):
    """Label one shard's items like the job does, in a scrambled order, some as errors."""
    mine = select_shard(ids, spec)
    todo = [i for i in mine if i not in skip] + list(extra)
    random.Random(spec.index).shuffle(todo)
    with ResultWriter(shard_path(out, spec), meta=shard_meta(source, spec, mine)) as writer:
        for vid in todo:
            status = "error" if vid.endswith("3.mp4") else "ok"
            writer.write([{"id": vid, "status": status}])


def test_merge_restores_input_order_and_writes_a_one_shard_sidecar(tmp_path):
    out = tmp_path / "labels.jsonl"
    for i in range(3):
        _run_shard(out, ShardSpec(3, i), IDS)
    (tmp_path / "labels.shard-00000-of-00003.jsonl.tmp").write_text("stray")  # not a shard

    report = merge_shards(out)

    assert report == MergeReport(shards=3, rows=11, ok=10, errors=1, out=out)
    assert [r["id"] for r in read_results(out)] == IDS
    meta = json.loads(meta_path(out).read_text(encoding="utf-8"))
    assert meta == shard_meta("/data/list.txt", ShardSpec(1, 0), IDS)
    # a later single-process run of the same job finds everything done
    with ResultWriter(out, meta=shard_meta("/data/list.txt", ShardSpec(1, 0), IDS)) as writer:
        assert writer.done == set(IDS)


def test_merge_of_an_incomplete_shard_reports_missing_ids_and_writes_nothing(tmp_path):
    out = tmp_path / "labels.jsonl"
    ids = [f"v{i:03d}" for i in range(40)]
    _run_shard(out, ShardSpec(2, 0), ids)
    _run_shard(out, ShardSpec(2, 1), ids, skip={f"v{i:03d}" for i in range(1, 40, 2)[3:]})

    with pytest.raises(ShardMergeError) as err:
        merge_shards(out)
    message = str(err.value)
    assert "shard 1 of 2" in message and "17 of 20 rows missing" in message
    assert "first: v007, v009, v011, v013, v015)" in message
    assert "shard 0 of 2" not in message
    assert not out.exists() and not meta_path(out).exists()


def test_merge_lists_every_problem(tmp_path):
    out = tmp_path / "labels.jsonl"
    _run_shard(out, ShardSpec(4, 0), IDS, extra=["stranger.mp4"])
    _run_shard(out, ShardSpec(4, 2), IDS)
    with open(shard_path(out, ShardSpec(4, 2)), "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"id": IDS[2], "status": "ok"}) + "\n")  # a duplicate by hand
    _run_shard(out, ShardSpec(4, 3), IDS)
    meta_path(shard_path(out, ShardSpec(4, 3))).unlink()

    with pytest.raises(ShardMergeError) as err:
        merge_shards(out)
    message = str(err.value)
    assert "shard 0 of 4" in message and "1 unexpected id(s) (first: stranger.mp4)" in message
    assert "shard 1 of 4" in message and "results file not found" in message
    assert (
        "shard 2 of 4" in message
        and "1 id(s) written more than once (first: video_02.mp4)" in message
    )
    assert "sidecar labels.shard-00003-of-00004.jsonl.meta.json not found" in message
    assert not out.exists()


def test_merge_discovery_and_layout_errors(tmp_path):
    out = tmp_path / "labels.jsonl"
    with pytest.raises(ShardMergeError, match="no shard files labels.shard-"):
        merge_shards(out)
    for i in range(2):
        _run_shard(out, ShardSpec(2, i), IDS)
    _run_shard(out, ShardSpec(3, 0), IDS)  # a stale shard of another layout
    with pytest.raises(ShardMergeError, match=r"several layouts.*\[2, 3\]"):
        merge_shards(out)
    assert merge_shards(out, num_shards=2).rows == len(IDS)


def test_merge_refuses_shards_of_different_inputs(tmp_path):
    out = tmp_path / "labels.jsonl"
    _run_shard(out, ShardSpec(2, 0), IDS, source="/data/a.txt")
    _run_shard(out, ShardSpec(2, 1), IDS, source="/data/b.txt")
    with pytest.raises(ShardMergeError, match="different inputs"):
        merge_shards(out)


def test_merge_of_shards_with_no_items(tmp_path):
    out = tmp_path / "labels.jsonl"
    for i in range(3):
        _run_shard(out, ShardSpec(3, i), IDS[:1])
    report = merge_shards(out)
    assert (report.rows, report.ok) == (1, 1)
    assert read_results(out) == [{"id": IDS[0], "status": "ok"}]


def test_merge_reports_a_malformed_shard_line_and_a_bad_split(tmp_path):
    out = tmp_path / "labels.jsonl"
    for i in range(2):
        _run_shard(out, ShardSpec(2, i), IDS)
    first = shard_path(out, ShardSpec(2, 0))
    good = first.read_bytes()
    first.write_bytes(b"garbage\n" + good)
    with pytest.raises(ShardMergeError, match=r"shard 0 of 2.*shard-00000-of-00002.jsonl:1: malf"):
        merge_shards(out)

    # a shard whose sidecar and rows agree, but that is no round-robin share of the input
    side = meta_path(first)
    meta = json.loads(side.read_text(encoding="utf-8"))
    side.write_text(json.dumps({**meta, "expected_ids": meta["expected_ids"][:2]}))
    first.write_bytes(b"")
    with ResultWriter(first) as writer:
        writer.write([{"id": i, "status": "ok"} for i in meta["expected_ids"][:2]])
    with pytest.raises(ShardMergeError, match=r"shard sizes \[2, 5\].*not a round-robin split"):
        merge_shards(out)
