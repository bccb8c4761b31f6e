"""Crash-safe, resumable JSON Lines results: one row per labelled item.

A run killed at any moment (SIGKILL, out of memory, node lost) leaves a file that reopens with
no partial and no duplicate row, and the rerun skips every id already written:

- each :meth:`ResultWriter.write` serialises its rows to one blob, appends it with ``O_APPEND``
  and ``fsync`` s, so a row is either durable with its ``"\\n"`` or torn;
- a line without its ``"\\n"`` is a torn tail: the writer truncates it away on open and
  :func:`read_results` ignores it;
- rows whose id is already in the file are dropped, so a resumed run never duplicates.

An optional sidecar ``<path>.meta.json`` records which job the file belongs to (input, shard), so
a rerun with another input or shard layout cannot silently append to the wrong file.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

try:  # advisory lock against two jobs appending to one file; absent on Windows
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

_CHUNK = 1 << 16


def meta_path(path: str | Path) -> Path:
    """The sidecar of a results file: ``<path>.meta.json``."""
    path = Path(path)
    return path.with_name(path.name + ".meta.json")


def write_atomic(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary sibling + rename, fsynced.

    A reader (or a run killed half-way) sees the old file or the new one, never a mix.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def iter_result_lines(path: str | Path) -> Iterator[tuple[int, bytes, dict[str, Any]]]:
    """Yield ``(line number, raw line with its newline, parsed row)`` of every complete line.

    Blank lines are skipped; a last line without ``"\\n"`` is torn and ignored.

    :raises ValueError: a complete line that is not a JSON object with a string ``"id"``,
        naming ``file:line``.
    """
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if not raw.endswith(b"\n"):
                return  # torn tail of a killed writer
            if not raw.strip():
                continue
            yield lineno, raw, _parse_line(path, lineno, raw)


def _parse_line(path: str | Path, lineno: int, raw: bytes) -> dict[str, Any]:
    try:
        row = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}:{lineno}: malformed result line ({exc})") from None
    if not isinstance(row, dict) or not isinstance(row.get("id"), str):
        raise ValueError(f"{path}:{lineno}: a result row must be a JSON object with a string 'id'")
    return row


def read_results(path: str | Path) -> list[dict[str, Any]]:
    """Every complete row of a results file, in file order (a torn last line is ignored).

    :raises FileNotFoundError: no such file.
    :raises ValueError: a malformed complete line, naming ``file:line``.
    """
    return [row for _, _, row in iter_result_lines(path)]


def _check_meta(path: Path, meta: dict[str, Any]) -> bool:
    """True when the sidecar exists and agrees with ``meta`` on ``meta``'s keys."""
    side = meta_path(path)
    if not side.exists():
        return False
    try:
        existing = json.loads(side.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{side}: unreadable results sidecar ({exc})") from None
    # compare through JSON so that tuples and lists (and int/float keys) compare as stored
    wanted = json.loads(json.dumps(meta))
    differ = sorted(
        k for k in wanted if not isinstance(existing, dict) or existing.get(k) != wanted[k]
    )
    if differ:
        raise ValueError(
            f"{path} belongs to another job (different input or shard): its sidecar {side} "
            f"differs in {differ}; use another output path or delete both files to start over"
        )
    return True


def _drop_torn_tail(fd: int, path: Path) -> None:
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


class ResultWriter:
    """Append result rows to a JSONL file durably; reopen to resume.

    :param path: the results file (created with its parent folders if missing).
    :param meta: job identity written to ``<path>.meta.json``; if that sidecar already exists and
        differs on any of these keys, the file belongs to another job and ``ValueError`` is raised.

    ``done`` holds the ids already in the file; :meth:`write` drops rows with those ids.
    Only one process may write a file at a time (an advisory lock enforces it where available).
    """

    def __init__(self, path: str | Path, meta: dict[str, Any] | None = None) -> None:
        self.path = Path(path)
        has_sidecar = meta is not None and _check_meta(self.path, meta)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            if fcntl is not None:
                try:
                    fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise RuntimeError(f"{self.path} is being written by another process") from None
            _drop_torn_tail(self._fd, self.path)
            self.done: set[str] = {row["id"] for _, _, row in iter_result_lines(self.path)}
            if meta is not None and not has_sidecar:
                write_atomic(meta_path(self.path), _json_bytes(meta, indent=1))
        except BaseException:
            self.close()
            raise

    def fileno(self) -> int | None:
        """The descriptor holding the lock (None once closed)."""
        return self._fd

    def write(self, rows: Sequence[dict[str, Any]]) -> None:
        """Append ``rows`` (each with a string ``"id"``) and make them durable before returning.

        Rows whose id is already written (or repeated within ``rows``) are dropped silently.

        :raises ValueError: a row without a string ``"id"`` or not JSON-serialisable (NaN
            included); nothing of this call is written then.
        """
        if self._fd is None:
            raise ValueError(f"{self.path}: writer is closed")
        new_ids: set[str] = set()
        lines: list[bytes] = []
        for row in rows:
            rid = row.get("id") if isinstance(row, dict) else None
            if not isinstance(rid, str):
                raise ValueError(f"{self.path}: result row without a string 'id': {row!r}")
            if rid in self.done or rid in new_ids:
                continue
            try:
                lines.append(_json_bytes(row) + b"\n")
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{self.path}: row {rid!r} is not valid JSON: {exc}") from None
            new_ids.add(rid)
        if not lines:
            return
        view = memoryview(b"".join(lines))
        while view:  # os.write may write less than asked (signals, pipes, quotas)
            view = view[os.write(self._fd, view) :]
        os.fsync(self._fd)
        self.done.update(new_ids)

    def close(self) -> None:
        """Close the file (releasing the lock); safe to call twice."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def __enter__(self) -> ResultWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _json_bytes(obj: Any, indent: int | None = None) -> bytes:
    # allow_nan=False: NaN/Infinity are not JSON, other tools would reject the file
    return json.dumps(obj, ensure_ascii=False, allow_nan=False, indent=indent).encode("utf-8")
