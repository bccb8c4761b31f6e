"""Run a decoding function in a child process, so that a decoder that hangs or crashes on a bad
file costs a :class:`~videofocus.io.errors.VideoDecodeError` instead of the calling process.

Children start with ``forkserver`` (``spawn`` where it is missing), never ``fork``: the parent
may hold torch's thread pools and locks, which a forked child inherits in an undefined state. Each
call then costs a few milliseconds plus the child's own imports, so keep those light.

The function and its arguments must be picklable (a module-level function, not a lambda), and a
script that calls this must guard its entry point with ``if __name__ == "__main__":``.
"""

from __future__ import annotations

import multiprocessing
import signal
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, TypeVar

from videofocus.io.errors import VideoDecodeError

T = TypeVar("T")

#: seconds a child that has sent its result gets to exit before it is killed
_EXIT_GRACE = 5.0


def start_method() -> str:
    """``"forkserver"`` where available, else ``"spawn"`` (never ``"fork"``)."""
    return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


def run_isolated(fn: Callable[..., T], *args: Any, path: str | Path, timeout: float = 60.0) -> T:
    """Call ``fn(*args)`` in a child process and return its result.

    An exception raised by ``fn`` is raised again here (with its type, when picklable).

    :param path: the file being decoded, named in the errors raised.
    :param timeout: seconds before the child is killed.
    :raises VideoDecodeError: when the child outlives ``timeout`` or dies without answering.
    """
    context = multiprocessing.get_context(start_method())
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_child_main, args=(sender, fn, args), daemon=True)
    child.start()
    sender.close()  # the child holds the only writer: its death reads as end-of-file here
    try:
        ready = wait([receiver, child.sentinel], timeout=timeout)
        if receiver in ready or receiver.poll():
            try:
                ok, value = receiver.recv()
            except EOFError:
                ok, value = None, None
            if ok is not None:
                child.join(_EXIT_GRACE)
                if ok:
                    return value
                raise value
        if not ready:
            raise VideoDecodeError(path, f"decode timed out after {timeout:g}s")
        child.join(_EXIT_GRACE)
        raise VideoDecodeError(path, f"decoder crashed ({_describe_exit(child.exitcode)})")
    finally:
        if child.is_alive():
            child.kill()
            child.join()
        receiver.close()
        child.close()


def _describe_exit(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"exit code {code}, signal {signal.Signals(-code).name}"
        except ValueError:
            pass
    return f"exit code {code}"


def _child_main(sender: Connection, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    """Entry point of the child: send ``(True, result)`` or ``(False, exception)``."""
    try:
        message: tuple[bool, Any] = (True, fn(*args))
    except BaseException as err:  # noqa: BLE001 - everything goes back to the parent
        message = (False, err)
    try:
        sender.send(message)
    except Exception as err:  # the result or exception does not pickle
        sender.send((False, RuntimeError(f"{type(err).__name__}: {err} (from {message[1]!r})")))
    finally:
        sender.close()
