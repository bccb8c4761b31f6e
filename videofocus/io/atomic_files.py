"""Files and folders replaced atomically: written under a temporary name beside the target, made
durable (``fsync``), then renamed over it.

A reader, or a run killed at any moment, sees the old version or the new one, never a mix, and a
failed write leaves no temporary behind. Temporaries get the permissions a plain ``open`` /
``mkdir`` gives (0666 / 0777 minus the umask), not :mod:`tempfile`'s private 0600 / 0700, which
the rename would carry over to the published file. Every OSError raised here names its file.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

__all__ = [
    "atomic_directory",
    "create_temp_file",
    "current_umask",
    "fsync_directory",
    "named_os_error",
    "publish",
    "write_atomic",
]

#: modes asked of the kernel, which removes the umask's bits (what ``open`` and ``mkdir`` do)
FILE_MODE = 0o666
DIR_MODE = 0o777
_ATTEMPTS = 100

_T = TypeVar("_T")


def named_os_error(exc: OSError, path: str | Path) -> OSError:
    """``exc`` itself when it names a file, else the same error naming ``path``.

    ``os.write`` / ``os.fsync`` errors (disk full, I/O error) carry no file name.
    """
    if exc.filename is not None or exc.errno is None:
        return exc
    named = type(exc)(exc.errno, exc.strerror, str(path))
    named.__cause__ = exc
    return named


def current_umask() -> int:
    """The process's umask, from ``/proc/self/status`` where it exists (``os.umask`` reads it
    only by setting it, which races with other threads creating files)."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _new_sibling(target: Path, create: Callable[[Path], _T]) -> tuple[_T, Path]:
    """``create(tmp)`` for a fresh temporary name ``tmp`` beside ``target`` (its folders made if
    missing), and ``tmp``; ``create`` raises FileExistsError for a name already taken."""
    target.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(_ATTEMPTS):
        # hidden, and unique per call: concurrent writers of one target never share a temporary
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        try:
            return create(tmp), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {target}")


def create_temp_file(target: str | Path, append: bool = False) -> tuple[int, Path]:
    """Create a new empty temporary file (mode ``0666 & ~umask``) beside ``target``, which it
    will replace (:func:`publish`); its folders are made if missing.

    :param append: open with ``O_APPEND`` (for a file that is appended to after publishing).
    :returns: ``(descriptor open for reading and writing, path of the temporary)``.
    """
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    if append:
        flags |= os.O_APPEND
    return _new_sibling(Path(target), lambda tmp: os.open(tmp, flags, FILE_MODE))


def fsync_directory(path: str | Path) -> None:
    """Make renames inside folder ``path`` durable, as far as its filesystem allows."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def publish(tmp: str | Path, target: str | Path) -> None:
    """Rename the finished, fsynced temporary ``tmp`` over ``target``, durably."""
    target = Path(target)
    os.replace(tmp, target)
    fsync_directory(target.parent)


def write_atomic(path: str | Path, data: bytes | str) -> Path:
    """Replace ``path`` by ``data`` (``str`` is written as UTF-8) atomically and durably.

    :returns: ``path``.
    :raises OSError: naming ``path`` (or its temporary); ``path`` is then unchanged.
    """
    path = Path(path)
    blob = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = create_temp_file(path)
    try:
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(blob)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise named_os_error(exc, path) from exc
        publish(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


@contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Build a folder that replaces ``path`` only once it is complete.

    Yields an empty temporary folder beside ``path``. When the block ends normally, every file in
    it gets mode ``0666 & ~umask`` (some writers, such as safetensors, create private files) and
    is fsynced, and the folder takes ``path``'s place (an old ``path`` is moved to
    ``.<name>.old`` and deleted after); when the block raises, ``path`` is left as it was.
    """
    path = Path(path)
    _, tmp = _new_sibling(path, lambda tmp: os.mkdir(tmp, DIR_MODE))
    try:
        yield tmp
        mode = FILE_MODE & ~current_umask()
        for f in tmp.iterdir():  # the data must be durable before the rename publishes it
            if f.is_file():
                os.chmod(f, mode)
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
        fsync_directory(tmp)
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
        publish(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
