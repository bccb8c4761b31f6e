"""Crash-safe results: SIGKILL mid-run, torn tails, resume without duplicates, sidecars."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from videofocus.labeling.results import (
    ResultsError,
    ResultsLockedError,
    ResultWriter,
    meta_path,
    read_results,
)

TOTAL = 2000

# Writes TOTAL rows in batches of 5 (a batch per write(), ~10 KB each), so a kill can land
# between or inside writes; the parent kills it once the file has grown. The short sleep keeps
# the run long enough (~1 s) to be caught mid-way even where fsync costs nothing (tmpfs).
_CHILD = textwrap.dedent(
    """
    import sys
    import time
    from videofocus.labeling.results import ResultWriter
    with ResultWriter(sys.argv[1]) as w:
        for start in range(0, {total}, 5):
            w.write([{{"id": f"v{{i:04d}}", "pad": "x" * 2000}} for i in range(start, start + 5)])
            time.sleep(0.002)
    """
).format(total=TOTAL)


def _ids(n: int, start: int = 0) -> list[str]:
    return [f"v{i:04d}" for i in range(start, start + n)]


def _rows(ids: list[str]) -> list[dict]:
    return [{"id": i, "pad": "x" * 2000} for i in ids]


def test_sigkill_mid_run_leaves_a_resumable_file(tmp_path):
    out = tmp_path / "labels.jsonl"
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(out)], stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 60
    while not (out.exists() and out.stat().st_size > 100_000):
        if child.poll() is not None:
            pytest.fail(f"writer exited before it could be killed: {child.stderr.read()}")
        assert time.monotonic() < deadline, "writer made no progress"
        time.sleep(0.002)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    child.stderr.close()
    assert child.returncode == -signal.SIGKILL

    with ResultWriter(out) as writer:
        done = set(writer.done)
        # every line left is complete, parses, and the rows are a prefix of the run, no repeats
        lines = out.read_bytes().split(b"\n")
        assert lines[-1] == b""
        got = [json.loads(line)["id"] for line in lines[:-1]]
        assert got == _ids(len(got))
        assert done == set(got)
        assert 0 < len(done) < TOTAL
        writer.write(_rows(_ids(TOTAL)))  # the resumed run offers everything again

    assert [r["id"] for r in read_results(out)] == _ids(TOTAL)


def test_torn_tail_is_truncated_on_open(tmp_path):
    out = tmp_path / "r.jsonl"
    out.write_bytes(b'{"id": "a", "status": "ok"}\n{"id": "b", "sta')

    assert [r["id"] for r in read_results(out)] == ["a"]  # the reader ignores it
    with ResultWriter(out) as writer:
        assert writer.done == {"a"}
        assert out.read_bytes() == b'{"id": "a", "status": "ok"}\n'
        writer.write([{"id": "b", "status": "ok"}, {"id": "a", "status": "error"}])

    assert read_results(out) == [{"id": "a", "status": "ok"}, {"id": "b", "status": "ok"}]


def test_torn_tail_longer_than_a_read_chunk_and_without_any_newline(tmp_path):
    out = tmp_path / "r.jsonl"
    out.write_bytes(b'{"id": "a"}\n' + b'{"id": "b", "pad": "' + b"y" * 200_000)
    with ResultWriter(out) as writer:
        assert writer.done == {"a"}
    assert out.read_bytes() == b'{"id": "a"}\n'

    out.write_bytes(b'{"id": "only-half')
    with ResultWriter(out) as writer:
        assert writer.done == set()
    assert out.read_bytes() == b""


def test_duplicates_are_dropped_within_a_call_and_across_reopen(tmp_path):
    out = tmp_path / "sub" / "r.jsonl"  # parent folders are created
    with ResultWriter(out) as writer:
        writer.write([{"id": "a", "n": 1}, {"id": "a", "n": 2}, {"id": "b", "n": 3}])
        writer.write([{"id": "b", "n": 4}])
        writer.write([])
    with ResultWriter(out) as writer:
        assert writer.done == {"a", "b"}
        writer.write([{"id": "c", "n": 5}, {"id": "a", "n": 6}])
    assert read_results(out) == [{"id": "a", "n": 1}, {"id": "b", "n": 3}, {"id": "c", "n": 5}]


def test_bad_rows_write_nothing_of_their_call(tmp_path):
    out = tmp_path / "r.jsonl"
    with ResultWriter(out) as writer:
        with pytest.raises(ValueError, match="without a string 'id'"):
            writer.write([{"id": "a"}, {"name": "no id"}])
        with pytest.raises(ValueError, match="row 'n' is not valid JSON"):
            writer.write([{"id": "m"}, {"id": "n", "score": float("nan")}])
        assert writer.done == set()
    assert out.read_bytes() == b""
    writer.close()  # twice is fine
    with pytest.raises(ValueError, match="closed"):
        writer.write([{"id": "late"}])


def test_malformed_complete_line_names_file_and_line(tmp_path):
    out = tmp_path / "r.jsonl"
    out.write_text('{"id": "a"}\nnot json\n{"id": "c"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"r.jsonl:2: malformed result line"):
        read_results(out)
    with pytest.raises(ValueError, match=r"r.jsonl:2: malformed"):
        ResultWriter(out)
    out.write_text('{"id": "a"}\n[1, 2]\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"r.jsonl:2: a result row must be a JSON object"):
        read_results(out)


def test_sidecar_is_written_and_guards_against_another_job(tmp_path):
    out = tmp_path / "r.jsonl"
    meta = {"input": "/data/list.txt", "num_shards": 2, "shard_index": 0, "expected_ids": ["a"]}
    with ResultWriter(out, meta=meta) as writer:
        writer.write([{"id": "a"}])
    assert json.loads(meta_path(out).read_text(encoding="utf-8")) == meta

    with ResultWriter(out, meta={**meta, "expected_ids": ("a",)}) as writer:  # tuple == list
        assert writer.done == {"a"}
    with ResultWriter(out, meta={"input": "/data/list.txt"}):  # only the given keys compare
        pass
    with pytest.raises(
        ResultsError, match=r"belongs to another job.*shard_index: 0 in the sidecar, 1 for"
    ):
        ResultWriter(out, meta={**meta, "shard_index": 1})
    with pytest.raises(ResultsError, match=r"another job.*extra: absent from the sidecar, 1 for"):
        ResultWriter(out, meta={"extra": 1})
    with pytest.raises(
        ResultsError, match=r"expected_ids: 1 in the sidecar, 2 for this job, 1 not"
    ):
        ResultWriter(out, meta={**meta, "expected_ids": ["a", "b"]})
    assert json.loads(meta_path(out).read_text(encoding="utf-8")) == meta  # left unchanged


def test_second_writer_on_the_same_file_is_refused(tmp_path):
    out = tmp_path / "r.jsonl"
    with ResultWriter(out):
        with pytest.raises(ResultsLockedError, match="being written by another process"):
            ResultWriter(out)
    with ResultWriter(out):  # the lock went with the first writer
        pass


def test_read_results_of_a_missing_file_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_results(tmp_path / "none.jsonl")


def test_a_file_without_sidecar_is_reused_only_when_its_rows_are_this_jobs(tmp_path):
    out = tmp_path / "r.jsonl"
    meta = {"input": "/data/list.txt", "expected_ids": ["a", "b", "c"]}
    out.write_text('{"id": "a"}\n{"id": "b"}\n', encoding="utf-8")  # no sidecar: rows decide
    with ResultWriter(out, meta=meta, inputs={"a", "b", "c"}) as writer:
        assert writer.done == {"a", "b"}
    assert json.loads(meta_path(out).read_text(encoding="utf-8")) == meta  # adopted

    other = tmp_path / "other.jsonl"
    foreign = "".join(f'{{"id": "x{i}"}}\n' for i in range(66)) + '{"id": "a"}\n'
    other.write_text(foreign, encoding="utf-8")
    with pytest.raises(ResultsError, match=r"other.jsonl: has no sidecar .* 66 of its 67 rows"):
        ResultWriter(other, meta=meta, inputs=["a", "b", "c"])
    assert other.read_text(encoding="utf-8") == foreign and not meta_path(other).exists()


def test_a_stale_sidecar_beside_an_empty_file_is_replaced(tmp_path):
    out = tmp_path / "r.jsonl"
    meta_path(out).write_text('{"input": "/old"}', encoding="utf-8")
    with ResultWriter(out, meta={"input": "/new"}, inputs=[]):
        pass
    assert json.loads(meta_path(out).read_text(encoding="utf-8")) == {"input": "/new"}


def test_relabel_removes_rows_atomically_and_keeps_one_row_per_id(tmp_path):
    out = tmp_path / "r.jsonl"
    out.write_text(
        '{"id": "a", "status": "ok"}\n{"id": "b", "status": "error"}\n'
        '{"id": "c", "status": "ok"}\n{"id": "d", "status": "error"}\n{"id": "e", "st',
        encoding="utf-8",
    )

    def is_error(row):
        return row["status"] == "error"

    with ResultWriter(out, relabel=is_error) as writer:
        assert writer.done == {"a", "c"} and writer.relabelled == 2
        with pytest.raises(ResultsLockedError):  # the rewritten file is locked too
            ResultWriter(out)
        writer.write([{"id": "b", "status": "ok"}, {"id": "a", "status": "ok", "again": 1}])
    assert read_results(out) == [
        {"id": "a", "status": "ok"},
        {"id": "c", "status": "ok"},
        {"id": "b", "status": "ok"},
    ]
    assert [p.name for p in tmp_path.iterdir()] == ["r.jsonl"]  # no temporary left behind
    with ResultWriter(out, relabel=is_error) as writer:  # nothing to retry: file untouched
        assert writer.relabelled == 0 and writer.done == {"a", "b", "c"}


def test_a_refused_write_is_cut_back_off(tmp_path, monkeypatch):
    import os

    out = tmp_path / "r.jsonl"
    with ResultWriter(out) as writer:
        writer.write([{"id": "a"}])
        real_write = os.write

        def half_then_full(fd, data):  # the disk fills up in the middle of the blob
            if len(data) > 10:
                return real_write(fd, bytes(data[:10]))
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(os, "write", half_then_full)
        with pytest.raises(OSError, match="No space left") as caught:
            writer.write([{"id": "b", "pad": "x" * 100}])
        monkeypatch.undo()
        assert caught.value.filename == str(out)  # named, for the one-line error
    assert out.read_text(encoding="utf-8") == '{"id": "a"}\n'


def test_a_non_regular_file_is_refused(tmp_path):
    with pytest.raises((ResultsError, IsADirectoryError)):
        ResultWriter(tmp_path)
    with pytest.raises(ResultsError, match="not a regular file"):
        ResultWriter("/dev/null")
