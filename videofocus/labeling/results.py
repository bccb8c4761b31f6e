"""Crash-safe, resumable JSON Lines results: one row per labelled item.

A run killed at any moment leaves a file that reopens with no partial and no duplicate row:
each write appends one ``fsync`` ed blob (cut back off if the disk refuses it), a last line
without its ``"\\n"`` is a torn tail (truncated on open, ignored by :func:`read_results`), and
rows whose id is already written are dropped. Rows to label again (``--retry-errors``) are
removed on open by an atomic rewrite, so the file holds at most one row per id.

A sidecar ``<path>.meta.json`` records the job (input, shard, expected ids); a file is reused
only when its sidecar agrees or, without one, when every row is one of the job's inputs, so a
rerun with another input or shard layout never mixes two jobs.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from collections.abc import Callable, Collection, Iterator, Sequence
from pathlib import Path
from typing import Any

from videofocus.data.manifest import ManifestError
from videofocus.io.atomic_files import (
    FILE_MODE,
    create_temp_file,
    named_os_error,
    publish,
    write_atomic,
)

try:  # advisory lock against two jobs appending to one file; absent on Windows
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "ResultWriter",
    "ResultsError",
    "ResultsLockedError",
    "iter_result_lines",
    "json_bytes",
    "meta_path",
    "read_results",
]

_CHUNK = 1 << 16
_SHOW = 3  # ids shown in an error message
_ATTEMPTS = 100


class ResultsError(ManifestError):
    """A results file (or its sidecar) cannot be read or reused: a malformed line, or another
    job's file. Its errors read as a manifest's do: ``path[:line]: message``."""


class ResultsLockedError(OSError):
    """Another process holds the results file's lock: a job is writing it now."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(
            errno.EWOULDBLOCK,
            "is being written by another process (a label job on the same --out); wait for it "
            "to finish or give another --out",
            str(path),
        )


def meta_path(path: str | Path) -> Path:
    """The sidecar of a results file: ``<path>.meta.json``."""
    path = Path(path)
    return path.with_name(path.name + ".meta.json")


def iter_result_lines(path: str | Path) -> Iterator[tuple[int, bytes, dict[str, Any]]]:
    """Yield ``(line number, raw line with its newline, parsed row)`` of every complete,
    non-blank line (a torn last line is ignored).

    :raises ResultsError: a complete line that is not a JSON object with a string ``"id"``,
        naming ``file:line``.
    """
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if not raw.endswith(b"\n"):
                return  # torn tail of a killed writer
            if not raw.strip():
                continue
            fix = "fix or delete that line, then rerun"
            try:
                row = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise ResultsError(path, lineno, f"malformed result line ({exc}); {fix}") from None
            if not isinstance(row, dict) or not isinstance(row.get("id"), str):
                raise ResultsError(
                    path, lineno, f"a result row must be a JSON object with a string 'id'; {fix}"
                )
            yield lineno, raw, row


def read_results(path: str | Path) -> list[dict[str, Any]]:
    """Every complete row of a results file, in file order (see :func:`iter_result_lines`)."""
    return [row for _, _, row in iter_result_lines(path)]


def _show_ids(ids: Sequence[str]) -> str:
    shown = ", ".join(repr(i) for i in ids[:_SHOW])
    return shown + (", ..." if len(ids) > _SHOW else "")


def _show(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


_ABSENT = object()


def _difference(key: str, recorded: Any, wanted: Any) -> str:
    """How the sidecar's ``recorded`` value of ``key`` differs from this job's ``wanted``."""
    if recorded is _ABSENT:
        return f"{key}: absent from the sidecar, {_show(wanted)} for this job"
    lists = isinstance(recorded, list) and isinstance(wanted, list)
    if lists and all(isinstance(x, str) for x in (*recorded, *wanted)):  # ids
        there, here = set(recorded), set(wanted)
        new = [x for x in wanted if x not in there]
        gone = [x for x in recorded if x not in here]
        if not new and not gone:
            return f"{key}: the same {len(wanted)} entries in another order"
        parts = [f"{key}: {len(recorded)} in the sidecar, {len(wanted)} for this job"]
        if new:
            parts.append(f"{len(new)} not in the sidecar ({_show_ids(new)})")
        if gone:
            parts.append(f"{len(gone)} not in this job ({_show_ids(gone)})")
        return ", ".join(parts)
    return f"{key}: {_show(recorded)} in the sidecar, {_show(wanted)} for this job"


def _sidecar_differences(path: Path, meta: dict[str, Any]) -> list[str] | None:
    """None without a sidecar; else how it differs from ``meta`` on ``meta``'s keys."""
    side = meta_path(path)
    try:
        recorded = json.loads(side.read_bytes())
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ResultsError(side, None, f"unreadable results sidecar ({exc})") from None
    if not isinstance(recorded, dict):
        raise ResultsError(side, None, "unreadable results sidecar (not a JSON object)")
    # compare through JSON so that tuples and lists (and int/float keys) compare as stored
    wanted = json.loads(json.dumps(meta))
    return [
        _difference(k, recorded.get(k, _ABSENT), v)
        for k, v in wanted.items()
        if recorded.get(k, _ABSENT) != v
    ]


def _drop_torn_tail(fd: int) -> None:
    """Truncate the file back to just after its last ``"\\n"`` (or to empty if it has none)."""
    size = os.fstat(fd).st_size
    end = size
    while end > 0:
        start = max(0, end - _CHUNK)
        chunk = os.pread(fd, end - start, start)
        cut = chunk.rfind(b"\n")
        if cut >= 0:
            end = start + cut + 1
            break
        end = start
    if end != size:
        os.ftruncate(fd, end)
        os.fsync(fd)


def _lock(fd: int, path: Path) -> None:
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ResultsLockedError(path) from None


def _open_locked(path: Path) -> int:
    """Open ``path`` for appending (created if missing) and take its lock.

    :raises ResultsError: ``path`` is not a regular file.
    """
    for _ in range(_ATTEMPTS):
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, FILE_MODE)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise ResultsError(path, None, "not a regular file; give a file path as --out")
            _lock(fd, path)
            # a writer that compacts the file renames a new one over it: the lock taken must
            # be the one of the file the path names now
            try:
                if os.path.samestat(info, os.stat(path)):
                    return fd
            except FileNotFoundError:
                pass
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
    raise ResultsLockedError(path)


class ResultWriter:
    """Append result rows to a JSONL file durably (one process at a time: an advisory lock);
    reopen to resume. ``done`` holds the ids already in the file, ``relabelled`` how many rows
    ``relabel`` removed.

    :param path: the results file (created with its parent folders if missing).
    :param meta: job identity written to ``<path>.meta.json``; a file with rows is reused only
        if its sidecar agrees on every key of ``meta``.
    :param inputs: the ids this job labels; a file without a sidecar is reused only if every
        row in it is one of them.
    :param relabel: rows for which ``relabel(row)`` is true are removed on open, to be labelled
        again.
    :raises ResultsError: a malformed line, or a file of another job (naming what differs).
    :raises ResultsLockedError: another process is writing the file.
    """

    def __init__(
        self,
        path: str | Path,
        meta: dict[str, Any] | None = None,
        inputs: Collection[str] | None = None,
        relabel: Callable[[dict[str, Any]], bool] | None = None,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = _open_locked(self.path)
        try:
            _drop_torn_tail(self._fd)
            ids: list[str] = []
            redo: list[str] = []
            for _, _, row in iter_result_lines(self.path):
                ids.append(row["id"])
                if relabel is not None and relabel(row):
                    redo.append(row["id"])
            differences = None if meta is None else _sidecar_differences(self.path, meta)
            self._check_owner(ids, differences, inputs)
            if redo:
                self._rewrite_without(set(redo))
            self.relabelled = len(redo)
            self.done: set[str] = set(ids) - set(redo)
            # a missing sidecar is written; a differing one only survives this far when the
            # file is empty (the job it describes wrote nothing), and is replaced
            if meta is not None and differences != []:
                write_atomic(meta_path(self.path), json_bytes(meta, indent=1))
        except BaseException:
            self.close()
            raise

    def _check_owner(
        self, ids: list[str], differences: list[str] | None, inputs: Collection[str] | None
    ) -> None:
        """Refuse a non-empty file that is another job's (see the class docs)."""
        side = meta_path(self.path).name
        problem = None
        if ids and differences:
            problem = (
                f"belongs to another job: its sidecar {side} differs ({'; '.join(differences)})"
            )
        elif ids and differences is None and inputs is not None:
            mine = set(inputs)
            foreign = [i for i in ids if i not in mine]
            if foreign:
                problem = (
                    f"has no sidecar ({side}) and {len(foreign)} of its {len(ids)} rows "
                    f"{'is' if len(foreign) == 1 else 'are'} not among this job's {len(mine)} "
                    f"inputs ({_show_ids(foreign)}): another job's file?"
                )
        if problem:
            restart = "give another --out, or delete the file (and its sidecar) to start over"
            raise ResultsError(self.path, None, f"{problem}; {restart}")

    def _rewrite_without(self, drop: set[str]) -> None:
        """Replace the file by a copy without the rows whose id is in ``drop``, keeping the lock:
        the copy is locked before its rename publishes it."""
        assert self._fd is not None
        fd, tmp = create_temp_file(self.path, append=True)
        try:
            _lock(fd, tmp)  # nobody else can know this file yet: never refused
            try:
                with open(fd, "ab", closefd=False) as dst:  # the old file is still locked by us
                    dst.writelines(
                        raw for _, raw, row in iter_result_lines(self.path) if row["id"] not in drop
                    )
                os.fsync(fd)
            except OSError as exc:
                raise named_os_error(exc, tmp) from exc
            publish(tmp, self.path)
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        old, self._fd = self._fd, fd
        os.close(old)

    def fileno(self) -> int | None:
        """The descriptor holding the lock (None once closed)."""
        return self._fd

    def write(self, rows: Sequence[dict[str, Any]]) -> None:
        """Append ``rows`` durably, dropping those whose id is already written.

        :raises ValueError: a row without a string ``"id"`` or not valid JSON (NaN included);
            nothing of this call is written then.
        :raises OSError: the disk refused the rows (naming the file); they are cut back off and
            the writer is closed.
        """
        if self._fd is None:
            raise ValueError(f"{self.path}: writer is closed")
        lines: dict[str, bytes] = {}  # id -> its line
        for row in rows:
            rid = row.get("id") if isinstance(row, dict) else None
            if not isinstance(rid, str):
                raise ValueError(f"{self.path}: result row without a string 'id': {row!r}")
            if rid in self.done or rid in lines:
                continue
            try:
                lines[rid] = json_bytes(row) + b"\n"
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{self.path}: row {rid!r} is not valid JSON: {exc}") from None
        if not lines:
            return
        size = os.fstat(self._fd).st_size
        try:
            _write_all(self._fd, b"".join(lines.values()))
            os.fsync(self._fd)
            self.done.update(lines)
        except BaseException as exc:
            # cut a refused or interrupted write back off: no torn row for the next to glue onto
            try:
                os.ftruncate(self._fd, size)
            except OSError:
                self.close()  # the next open drops the torn tail
            if isinstance(exc, OSError):
                self.close()
                raise named_os_error(exc, self.path) from exc
            raise

    def close(self) -> None:
        """Close the file (releasing the lock); safe to call twice."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def __enter__(self) -> ResultWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:  # os.write may write less than asked (signals, pipes, quotas)
        view = view[os.write(fd, view) :]


def json_bytes(obj: Any, indent: int | None = None) -> bytes:
    """``obj`` as UTF-8 JSON, refusing NaN/Infinity (not JSON: other tools would reject it)."""
    return json.dumps(obj, ensure_ascii=False, allow_nan=False, indent=indent).encode("utf-8")
