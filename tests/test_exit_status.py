"""How a failure maps to its exit status and its one line (`videofocus.exit_status`); the real
commands are driven in `test_cli_errors.py`."""

from __future__ import annotations

import errno

import pytest

from videofocus import exit_status
from videofocus.artifacts.checkpoint import CheckpointError
from videofocus.config import ConfigError
from videofocus.exit_status import UsageError, describe_failure, one_line
from videofocus.labeling.results import ResultsLockedError
from videofocus.labeling.sharding import ShardMergeError


@pytest.mark.parametrize(
    ("exc", "status", "line"),
    [
        (
            ConfigError("c.yaml", "model.grid", "must be > 0, got 0"),
            exit_status.USAGE,
            "c.yaml: model.grid: must be > 0, got 0",
        ),
        (CheckpointError("ck: not a checkpoint folder"), exit_status.USAGE, "ck: not a checkpoint"),
        (UsageError("--backend", "invalid choice: 'foo'"), exit_status.USAGE, "--backend: invalid"),
        (
            ShardMergeError("cannot merge 2 shards into o:\n  shard 0: missing\n  shard 1: torn"),
            exit_status.USAGE,
            "cannot merge 2 shards into o: shard 0: missing; shard 1: torn",
        ),
        (
            FileNotFoundError(errno.ENOENT, "No such file", "in.txt"),
            exit_status.USAGE,
            "in.txt: No",
        ),
        (
            OSError(errno.ENOSPC, "No space left on device", "o.jsonl"),
            exit_status.SYSTEM,
            "o.jsonl",
        ),
        (OSError(errno.EROFS, "Read-only file system"), exit_status.SYSTEM, "label: Read-only"),
        (ResultsLockedError("o.jsonl"), exit_status.SYSTEM, "o.jsonl: is being written by another"),
        (KeyError("x"), exit_status.INTERNAL, "label: internal error: KeyError: 'x' (a bug: rerun"),
        (KeyboardInterrupt(), exit_status.INTERRUPTED, "label: interrupted; rerun to resume"),
    ],
)
def test_each_failure_has_its_status_and_one_line(exc, status, line):
    got_status, got_line = describe_failure(exc, "label", "rerun to resume")
    assert (got_status, "\n" in got_line) == (status, False)
    assert got_line.startswith(line), got_line


def test_one_line_keeps_single_lines_and_joins_lists():
    assert one_line("a: b") == "a: b"
    assert one_line("first\nsecond\n") == "first; second"
    assert one_line("") == ""


def test_the_statuses_are_distinct_and_help_lists_them():
    codes = [exit_status.OK, exit_status.USAGE, exit_status.SYSTEM, exit_status.INTERNAL]
    codes.append(exit_status.INTERRUPTED)
    assert len(set(codes)) == len(codes)
    assert exit_status.SYSTEM > exit_status.LABEL_FAILURES_MAX < exit_status.INTERNAL
    text = exit_status.statuses_help()
    assert all(f"  {code} " in text for code in ("0", "2", "101", "102", "130"))
