"""Split a labeling job over N independent processes and merge their outputs back.

Shard ``i`` of ``n`` labels items ``i, i + n, ...`` of the input (round robin: equal shares of
any ordering by size or class) into :func:`shard_path`, with a sidecar naming its input and
expected ids; :func:`merge_shards` writes the rows back in input order.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from videofocus.io.atomic_files import write_atomic
from videofocus.labeling.results import iter_result_lines, json_bytes, meta_path

T = TypeVar("T")

#: launcher variables read by :func:`resolve_shard`: (shard count, shard index), in priority order
LAUNCHER_VARIABLES = (("WORLD_SIZE", "RANK"), ("SLURM_NTASKS", "SLURM_PROCID"))
_SHOW_MISSING = 5


class ShardMergeError(ValueError):
    """Shards are missing, incomplete or inconsistent; the message lists every problem."""


@dataclass(frozen=True)
class ShardSpec:
    """This process's part of the job: shard ``index`` of ``num_shards``."""

    num_shards: int
    index: int


@dataclass(frozen=True)
class MergeReport:
    """What :func:`merge_shards` wrote: shards merged, rows written (``ok`` of status ``"ok"``,
    ``errors`` the others) and the merged file ``out``."""

    shards: int
    rows: int
    ok: int
    errors: int
    out: Path


def _env_int(env: Mapping[str, str], name: str) -> int:
    try:
        return int(env[name])
    except ValueError:
        raise ValueError(f"environment variable {name}={env[name]!r} is not an integer") from None


def resolve_shard(
    num_shards: int | None = None,
    shard_index: int | None = None,
    env: Mapping[str, str] | None = None,
) -> ShardSpec:
    """This process's shard from ``--num-shards`` / ``--shard-index`` (0-based); each left None
    comes from the launcher (:data:`LAUNCHER_VARIABLES` of ``env``, default ``os.environ``), else
    1 shard.

    :raises ValueError: a value out of range or not an integer, naming the option or variable.
    """
    env = os.environ if env is None else env
    launcher = next(((n, i) for n, i in LAUNCHER_VARIABLES if env.get(n, "") != ""), None)
    n_from, i_from = "--num-shards", "--shard-index"
    if num_shards is None:
        num_shards, n_from = (
            (_env_int(env, launcher[0]), launcher[0]) if launcher else (1, "default")
        )
    if shard_index is None:
        if launcher and env.get(launcher[1], "") != "":
            shard_index, i_from = _env_int(env, launcher[1]), launcher[1]
        elif num_shards == 1:
            shard_index = 0
        else:
            raise ValueError(
                f"{num_shards} shards ({n_from}) but no shard index: pass --shard-index or "
                f"launch with torchrun (RANK) or srun (SLURM_PROCID)"
            )
    if num_shards < 1:
        raise ValueError(f"{n_from} must be >= 1, got {num_shards}")
    if not 0 <= shard_index < num_shards:
        raise ValueError(
            f"{i_from} must be in [0, {num_shards}) for {num_shards} shards ({n_from}), "
            f"got {shard_index}"
        )
    return ShardSpec(num_shards=num_shards, index=shard_index)


def select_shard(items: Sequence[T], spec: ShardSpec) -> list[T]:
    """The items of this shard: ``items[i]`` for every ``i % num_shards == index``, in order."""
    return list(items[spec.index :: spec.num_shards])


def shard_path(out: str | Path, spec: ShardSpec) -> Path:
    """Where shard ``spec`` writes: ``out`` for one shard, else
    ``<stem>.shard-00003-of-00008<suffix>`` beside it."""
    out = Path(out)
    if spec.num_shards == 1:
        return out
    return out.with_name(f"{out.stem}.shard-{spec.index:05d}-of-{spec.num_shards:05d}{out.suffix}")


def shard_meta(input: str | Path, spec: ShardSpec, ids: Sequence[str]) -> dict[str, Any]:
    """The sidecar of one shard (``ResultWriter(meta=...)``): the job's ``input`` (absolute, so a
    rerun from another folder matches) and the ``ids`` this shard must label."""
    return {
        "input": str(Path(input).absolute()),
        "num_shards": spec.num_shards,
        "shard_index": spec.index,
        "expected_ids": list(ids),
    }


def _discover_num_shards(out: Path) -> int:
    pattern = re.compile(re.escape(out.stem) + r"\.shard-\d+-of-(\d+)" + re.escape(out.suffix))
    names = os.listdir(out.parent) if out.parent.is_dir() else []
    counts = sorted({int(m[1]) for name in names if (m := pattern.fullmatch(name))})
    if not counts:
        raise ShardMergeError(
            f"no shard files {out.stem}.shard-*-of-*{out.suffix} found in {out.parent}"
        )
    if len(counts) > 1:
        raise ShardMergeError(
            f"shard files of several layouts beside {out} (of {counts}): pass the number of "
            f"shards to merge, or delete the stale ones"
        )
    return counts[0]


@dataclass(frozen=True)
class _Shard:
    meta: dict[str, Any]
    lines: dict[str, bytes]  # id -> raw JSONL line, kept as bytes so a merge rewrites rows as is
    ok: int


def _load_shard(out: Path, spec: ShardSpec, problems: list[str]) -> _Shard | None:
    """One shard's sidecar and rows, or None after appending what is wrong with it."""
    path = shard_path(out, spec)
    label = f"shard {spec.index} of {spec.num_shards} ({path})"
    side = meta_path(path)
    if not path.exists() or not side.exists():
        missing = "results file" if not path.exists() else "sidecar " + side.name
        problems.append(f"{label}: {missing} not found (has this shard run?)")
        return None
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        problems.append(f"{label}: unreadable sidecar {side.name} ({exc})")
        return None
    expected = meta.get("expected_ids") if isinstance(meta, dict) else None
    where = (meta.get("num_shards"), meta.get("shard_index")) if isinstance(meta, dict) else None
    if not isinstance(expected, list) or where != (spec.num_shards, spec.index):
        problems.append(f"{label}: sidecar {side.name} is not this shard's")
        return None
    lines: dict[str, bytes] = {}
    repeated: set[str] = set()
    ok = 0
    try:
        for _, raw, row in iter_result_lines(path):
            if row["id"] in lines:
                repeated.add(row["id"])
            lines[row["id"]] = raw
            ok += row.get("status") == "ok"
    except ValueError as exc:  # a malformed line, named file:line
        problems.append(f"{label}: {exc}")
        return None
    missing = [i for i in expected if i not in lines]
    extra = sorted(set(lines) - set(expected))
    for count, what, ids, hint in (
        (len(missing), f"of {len(expected)} rows missing", missing, "; rerun this shard"),
        (len(extra), "unexpected id(s)", extra, ""),
        (len(repeated), "id(s) written more than once", sorted(repeated), ""),
    ):
        if count:
            shown = ", ".join(map(str, ids[:_SHOW_MISSING]))
            problems.append(f"{label}: {count} {what} (first: {shown}){hint}")
    return _Shard(meta, lines, ok) if not (missing or extra or repeated) else None


def merge_shards(out: str | Path, num_shards: int | None = None) -> MergeReport:
    """Check the shards beside ``out`` (their count read from the names unless given) and write
    them back as one file in input order, with the sidecar a one-shard run would have written
    (atomically; the shard files stay).

    :raises ShardMergeError: listing every missing, incomplete or inconsistent shard (every
        shard must hold exactly its expected ids, once each); nothing is written then.
    """
    out = Path(out)
    n = _discover_num_shards(out) if num_shards is None else num_shards
    if n < 1:
        raise ShardMergeError(f"the number of shards must be >= 1, got {n}")
    problems: list[str] = []
    loaded = [_load_shard(out, ShardSpec(n, i), problems) for i in range(n)]
    shards = [s for s in loaded if s is not None]
    if problems:
        raise ShardMergeError(f"cannot merge {n} shards into {out}:\n  " + "\n  ".join(problems))
    inputs = sorted({str(s.meta.get("input")) for s in shards})
    if len(inputs) > 1:
        raise ShardMergeError(f"shards of {out} come from different inputs: {inputs}")
    expected = [s.meta["expected_ids"] for s in shards]
    total = sum(len(e) for e in expected)
    # round robin gives shard i exactly ceil((total - i) / n) items; anything else is a mix-up
    if any(len(e) != -(-(total - i) // n) for i, e in enumerate(expected)):
        sizes = [len(e) for e in expected]
        raise ShardMergeError(f"shard sizes {sizes} of {out} are not a round-robin split")
    order = [expected[j % n][j // n] for j in range(total)]  # global position j
    dupes = [k for k, c in Counter(order).items() if c > 1]
    if dupes:
        raise ShardMergeError(f"ids in more than one shard of {out}: {dupes[:_SHOW_MISSING]}")
    write_atomic(out, b"".join(shards[j % n].lines[order[j]] for j in range(total)))
    merged = {"input": inputs[0], "num_shards": 1, "shard_index": 0, "expected_ids": order}
    write_atomic(meta_path(out), json_bytes(merged, indent=1))
    ok = sum(s.ok for s in shards)
    return MergeReport(shards=n, rows=total, ok=ok, errors=total - ok, out=out)
