"""Exit statuses of the ``videofocus`` command, and the one line it prints when it fails.

This module imports nothing of the library: it classifies exceptions by the classes already
loaded (a failure may be a broken install, where importing more would fail again).
"""

from __future__ import annotations

import errno
import sys
import textwrap

__all__ = [
    "INTERNAL",
    "INTERRUPTED",
    "LABEL_FAILURES_MAX",
    "OK",
    "SYSTEM",
    "USAGE",
    "UsageError",
    "describe_failure",
    "one_line",
    "statuses_help",
]

OK = 0
#: ``label`` only: 1..100 is the number of inputs whose row says ``error`` (100: 100 or more)
LABEL_FAILURES_MAX = 100
USAGE = 2  # what was given is wrong (an argument, config, manifest, checkpoint, results file)
SYSTEM = 101  # the system refused: a read-only or full disk, a permission, a lock
INTERNAL = 102  # an unexpected exception: a bug
INTERRUPTED = 130  # Ctrl-C (SIGINT)

_STATUSES = (
    (str(OK), "success"),
    (
        f"1-{LABEL_FAILURES_MAX}",
        f"label: that many inputs got an error row (capped at {LABEL_FAILURES_MAX}); the "
        "job finished and printed its JSON summary",
    ),
    (
        str(USAGE),
        "usage or input error: an argument, config key or value, manifest, checkpoint or "
        "results file is wrong; the line names it",
    ),
    (
        str(SYSTEM),
        "system error: read-only or full disk, permission denied, output locked by a running job",
    ),
    (str(INTERNAL), "internal error (a bug): rerun with --debug and report the traceback"),
    (str(INTERRUPTED), "interrupted (Ctrl-C); commands that resume say so"),
)

# OSErrors that say the path given does not exist: an input error, not the system's refusal
_MISSING = (errno.ENOENT, errno.ENOTDIR, errno.EISDIR)


class UsageError(ValueError):
    """A command was called wrongly (what ``argparse`` rejects, or a combination it cannot);
    ``where`` is the command or option at fault, e.g. ``label export`` or ``--backend``."""

    def __init__(self, where: str, reason: str) -> None:
        self.where = where
        self.reason = reason
        super().__init__(f"{where}: {reason}")

    def __reduce__(self):
        return (type(self), (self.where, self.reason))


def statuses_help(width: int = 79) -> str:
    """The exit statuses, as the epilog of ``videofocus --help`` (lines of ``width`` at most)."""
    column = max(len(code) for code, _ in _STATUSES)
    indent = " " * (column + 4)
    lines = [
        textwrap.fill(f"  {code:<{column}}  {what}", width, subsequent_indent=indent)
        for code, what in _STATUSES
    ]
    note = textwrap.fill(
        "A failure prints one line, 'videofocus: error: <file[:line] or key>: <reason>'; "
        "--debug (or VIDEOFOCUS_DEBUG=1) adds the traceback.",
        width,
    )
    return "exit status:\n" + "\n".join(lines) + "\n\n" + note


def _loaded(module: str, name: str) -> type[BaseException] | None:
    """The exception class ``module.name`` if its module is loaded (else nothing raised it)."""
    return getattr(sys.modules.get(module), name, None)


def _input_error_classes() -> tuple[type[BaseException], ...]:
    """Errors that name a wrong input. ``ValueError`` covers ConfigError, ManifestError,
    ResultsError, ShardMergeError, GridError, PrepareError, ...; the others are RuntimeErrors."""
    found = [
        _loaded("videofocus.artifacts.checkpoint", "CheckpointError"),
        _loaded("videofocus.models.backbones", "PretrainedWeightsError"),
        _loaded("videofocus.io.errors", "VideoDecodeError"),
    ]
    return (ValueError, *(cls for cls in found if cls is not None))


def one_line(text: str) -> str:
    """``text`` on one line: a multi-line message (a list of problems) joined with ``; ``."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].endswith(":"):
        return f"{lines[0]} {'; '.join(lines[1:])}"
    return "; ".join(lines)


def _os_error_text(exc: OSError, command: str) -> str:
    reason = exc.strerror or str(exc)
    if exc.filename is None:
        return f"{command}: {reason}"
    target = f" -> {exc.filename2}" if exc.filename2 is not None else ""
    return f"{exc.filename}{target}: {reason}"


def describe_failure(
    exc: BaseException, command: str, resume_hint: str | None = None
) -> tuple[int, str]:
    """The exit status and the one error line (without ``videofocus: error: ``) of ``exc``;
    ``command`` names an error without file or key, ``resume_hint`` follows an interruption."""
    if isinstance(exc, KeyboardInterrupt):
        return INTERRUPTED, f"{command}: interrupted" + (f"; {resume_hint}" if resume_hint else "")
    variant_failed = _loaded("videofocus.experiment.runner", "VariantFailed")
    if variant_failed is not None and isinstance(exc, variant_failed) and exc.__cause__:
        status, _ = describe_failure(exc.__cause__, command)
        return status, one_line(str(exc))
    if isinstance(exc, OSError):
        missing = exc.errno in _MISSING
        return (USAGE if missing else SYSTEM), one_line(_os_error_text(exc, command))
    if isinstance(exc, _input_error_classes()):
        return USAGE, one_line(str(exc)) or f"{command}: {type(exc).__name__}"
    detail = one_line(str(exc))
    return INTERNAL, (
        f"{command}: internal error: {type(exc).__name__}{': ' + detail if detail else ''} "
        "(a bug: rerun with --debug for the traceback and report it)"
    )
