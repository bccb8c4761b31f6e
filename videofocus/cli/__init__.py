"""The ``videofocus`` command. It only parses arguments and calls library functions.

Each command is one module of this package with ``add_arguments(parser)`` and ``run(args) ->
int``; a module serving several commands (``label merge``, ``prepare DATASET``, ...) gets the
second word too. :func:`main` finds the command from the leading words of argv (the longest that
name one) and imports only its module, which imports torch inside ``run``, so ``videofocus
--help`` never loads it. Failures end in one line on stderr (:mod:`videofocus.exit_status`).
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import os
import shutil
import sys
import textwrap
import traceback
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from videofocus.cli.arguments import HelpFormatter, plain_text
from videofocus.exit_status import UsageError, describe_failure, statuses_help

__all__ = [
    "COMMANDS",
    "GROUPS",
    "RESUME_HINTS",
    "Command",
    "CommandParser",
    "Group",
    "build_parser",
    "command_parser",
    "main",
]

#: what to do after Ctrl-C, per command that picks up where it stopped
RESUME_HINTS = {
    "quickstart": "rerun the same command to resume (finished stages are kept)",
    "train": "rerun with --resume to continue from the last checkpoint (--stage all resumes "
    "by itself)",
    "label": "rerun the same command to resume (finished videos are kept)",
    "ablate": "rerun the same command to resume (finished variants are kept)",
}


@dataclass(frozen=True)
class Command:
    """One command: its module in this package, its summary, and the word it passes on."""

    module: str
    summary: str
    word: str | None = None  # passed to add_arguments / run of a module serving several


@dataclass(frozen=True)
class Group:
    """A two-word command, ``prepare DATASET`` or ``bench NAME``: the second word is a key of a
    registry (a dict of module paths) naming the module :mod:`videofocus.cli.plugin` runs."""

    summary: str
    metavar: str
    kind: str  # what the names are, in the help: "datasets", "benchmarks"
    registry: str  # "module:attribute" of the registry dict

    def modules(self) -> dict[str, str]:
        """The registry: name -> the module implementing it."""
        module, _, attribute = self.registry.partition(":")
        return dict(getattr(importlib.import_module(module), attribute))

    def names(self) -> list[str]:
        """The registry's keys, as it is now."""
        return list(self.modules())

    def name_summary(self, name: str) -> str:
        """The first paragraph of ``name``'s module docstring, read without importing it."""
        origin = importlib.util.find_spec(self.modules()[name]).origin
        doc = ast.get_docstring(ast.parse(Path(origin).read_text(encoding="utf-8"))) or ""
        return " ".join(plain_text(doc.split("\n\n")[0]).split())

    def command(self, name: str) -> Command:
        return Command("plugin", self.name_summary(name), self.modules()[name])


#: command words -> the command (the summaries are the lines of ``videofocus --help``)
COMMANDS: dict[str, Command] = {
    "quickstart": Command(
        "quickstart", "the whole pipeline on built-in synthetic data, ending in a report"
    ),
    "probe": Command("probe", "print one JSON line of metadata per video"),
    "train": Command(
        "train", "train a stage (warmup, policy, finetune, all) or a baseline (dense, glance_only)"
    ),
    "eval": Command("evaluate", "evaluate a checkpoint (top-1/5, mAP, GMACs/video, videos/s)"),
    "flops": Command("flops", "per-component and per-video GMACs of a config"),
    "label": Command("label", "label a video collection (resumable, sharded)"),
    "label merge": Command("label", "join the shard files of a sharded label job", "merge"),
    "label export": Command(
        "label", "convert a labels file to CSV and/or ActivityNet result JSON", "export"
    ),
    "ablate": Command(
        "ablate", "run a grid of policy ablations; write results.csv, results.md and tradeoff.png"
    ),
    "viz": Command(
        "viz", "draw a clip's glimpses (colour per option, skips, running top-1) into a gif or mp4"
    ),
}

#: two-word commands; each name's summary is the first paragraph of its module's docstring
GROUPS: dict[str, Group] = {
    "prepare": Group(
        "build a manifest from dataset annotations",
        "DATASET",
        "datasets",
        "videofocus.data_prep:CONVERTERS",
    ),
    "bench": Group(
        "run a benchmark and print its table",
        "NAME",
        "benchmarks",
        "videofocus.benchmarks:BENCHMARKS",
    ),
}

#: the order of ``videofocus --help``
_ORDER = [
    "quickstart",
    "probe",
    "train",
    "eval",
    "flops",
    "prepare",
    "label",
    "label merge",
    "label export",
    "ablate",
    "viz",
    "bench",
]


class CommandParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are :class:`UsageError` s, reported in one line like
    every other failure."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix("videofocus").strip() or "videofocus"
        where, sep, reason = message.partition(": ")
        if not (sep and where.startswith("argument ")):
            where, reason = command, message
        else:
            where = where.removeprefix("argument ")
        raise UsageError(where, f"{reason} (see '{self.prog} --help')")


def _listing(title: str, entries: Sequence[tuple[str, str]]) -> str:
    """``title:`` and one indented ``name  summary`` entry per line, summaries wrapped."""
    column = max(len(name) for name, _ in entries) + 4
    width = max(60, min(shutil.get_terminal_size().columns - 2, 100))
    lines = [f"{title}:"]
    for name, summary in entries:
        head = f"  {name:<{column - 4}}  "
        lines.append(
            textwrap.fill(summary, width, initial_indent=head, subsequent_indent=" " * column)
            if summary
            else head.rstrip()
        )
    return "\n".join(lines)


def _command_start(argv: Sequence[str]) -> int:
    """Index of the first command word: the first that is not an option of ``videofocus``."""
    return next((i for i, word in enumerate(argv) if not word.startswith("-")), len(argv))


def _lookup(words: Sequence[str]) -> tuple[str, Command | Group | None, int]:
    """The command the leading ``words`` name (the longest match), and how many words it took;
    a group when the next word is not one of its names, None for an unknown word."""
    if not words:
        return "", None, 0
    head, two = words[0], " ".join(words[:2])
    if two in COMMANDS:
        return two, COMMANDS[two], 2
    if head in GROUPS:
        group = GROUPS[head]
        if len(words) > 1 and words[1] in group.names():
            return two, group.command(words[1]), 2
        return head, group, 1
    if head in COMMANDS:
        return head, COMMANDS[head], 1
    return head, None, 0


def _find(name: str) -> Command:
    """The command called ``name`` (``label merge``, ``prepare kinetics``)."""
    _, found, _ = _lookup(name.split())
    if not isinstance(found, Command):
        raise KeyError(f"unknown command {name!r}")
    return found


def _call(command: Command, function: str, arg):
    """``function(arg)`` of the command's module, given the command's word too if it has one."""
    module = importlib.import_module(f"videofocus.cli.{command.module}")
    return getattr(module, function)(arg, *(() if command.word is None else (command.word,)))


def command_parser(name: str) -> CommandParser:
    """The parser of one command, e.g. ``command_parser("label merge")``; builds no other."""
    command = _find(name)
    parser = CommandParser(prog=f"videofocus {name}")
    _call(command, "add_arguments", parser)
    return parser


def _group_parser(name: str, group: Group) -> CommandParser:
    """``videofocus prepare`` / ``bench`` without a valid second word: its help lists the
    names."""
    names = group.names()
    parser = CommandParser(
        prog=f"videofocus {name}",
        usage=f"%(prog)s {group.metavar} [ARGS ...]",
        description=f"{group.summary[:1].upper()}{group.summary[1:]}.\n\n"
        + _listing(group.kind, [(n, group.name_summary(n)) for n in names]),
        epilog=f"'videofocus {name} {group.metavar} --help' shows the options of one.",
    )
    parser.add_argument("name", metavar=group.metavar, choices=names, help=argparse.SUPPRESS)
    return parser


def _parse_command(
    parser: CommandParser, words: list[str], namespace: argparse.Namespace | None
) -> argparse.Namespace:
    # KEY=VALUE overrides may also follow options (`train CFG --stage dense a.b=1`), where
    # argparse has already closed the positional list: collect them from the leftovers.
    args, extra = parser.parse_known_args(words, namespace)
    stray = [x for x in extra if x.startswith("-") or "=" not in x]
    if stray or (extra and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(stray or extra)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    return args


class VideofocusParser(CommandParser):
    """The ``videofocus`` parser: it parses its own options, finds the command from the next
    words and hands the rest to that command's parser only; the result has ``command`` set to
    the command's name."""

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        argv = list(sys.argv[1:] if args is None else args)
        start = _command_start(argv)
        _, extra = super().parse_known_args(argv[:start])  # --help and --version exit here
        if extra:
            self.error(f"unrecognized arguments: {' '.join(extra)}")
        words = argv[start:]
        name, found, used = _lookup(words)
        if not words:
            self.print_help()
            self.exit(2)
        if found is None:
            choices = ", ".join(repr(w) for w in dict.fromkeys(n.split()[0] for n in _ORDER))
            self.error(f"argument COMMAND: invalid choice: {name!r} (choose from {choices})")
        if isinstance(found, Group):
            group = _group_parser(name, found)
            group.parse_known_args(words[used:])  # --help, or no / an unknown name: it exits
            group.error(f"the {found.metavar} comes first, before any option")
        parsed = _parse_command(command_parser(name), words[used:], namespace)
        parsed.command = name
        return parsed, []


def build_parser() -> VideofocusParser:
    """The ``videofocus`` parser; it imports no command module until it parses a command."""
    from videofocus import __version__

    entries = [
        (f"{key} {GROUPS[key].metavar}", GROUPS[key].summary)
        if key in GROUPS
        else (key, COMMANDS[key].summary)
        for key in _ORDER
    ]
    parser = VideofocusParser(
        prog="videofocus",
        usage="%(prog)s [-h] [--version] [--debug] COMMAND [ARGS ...]",
        description="Adaptive video recognition: glance, focus, exit early.\n\n"
        + _listing("commands", entries),
        epilog="'videofocus COMMAND --help' shows the options of a command.\n\n" + statuses_help(),
    )
    parser.add_argument("--version", action="version", version=f"videofocus {__version__}")
    parser.add_argument(
        "--debug",
        action="store_true",
        help="on failure print the traceback too, and show warnings in full "
        "(also: VIDEOFOCUS_DEBUG=1); put it before COMMAND",
    )
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the command ``args`` were parsed for (``args.command``); returns its exit status."""
    return int(_call(_find(args.command), "run", args) or 0)


def _debug_requested(argv: Sequence[str]) -> bool:
    """Whether ``--debug`` comes before the command or ``VIDEOFOCUS_DEBUG`` is set."""
    debug = os.environ.get("VIDEOFOCUS_DEBUG", "").strip() not in ("", "0")
    return debug or "--debug" in argv[: _command_start(argv)]


def _command_name(args: argparse.Namespace | None, argv: Sequence[str]) -> str:
    """``label``, ``label merge``, ``prepare kinetics``, ... for error lines."""
    if args is not None:
        return str(getattr(args, "command", None) or "videofocus")
    name, found, _ = _lookup(argv[_command_start(argv) :])
    return name if found is not None else "videofocus"


@contextmanager
def _warnings_as_lines(debug: bool) -> Iterator[None]:
    """Without ``debug``, show each warning as one ``videofocus: warning: ...`` line instead of
    Python's two."""
    if debug:
        yield
        return

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        text = " ".join(str(message).split())
        print(f"videofocus: warning: {category.__name__}: {text}", file=sys.stderr, flush=True)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``videofocus`` console script; returns the exit status. A failure
    prints one line on stderr, ``videofocus: error: <file[:line] or key>: <reason>`` (after the
    traceback with ``--debug`` or ``VIDEOFOCUS_DEBUG=1``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = _debug_requested(argv)
    args: argparse.Namespace | None = None
    try:
        with _warnings_as_lines(debug):
            args = build_parser().parse_args(argv)
            return run(args)
    except (Exception, KeyboardInterrupt) as exc:  # SystemExit (--help, --version) goes on
        command = _command_name(args, argv)
        status, line = describe_failure(exc, command, RESUME_HINTS.get(command))
        if debug:
            traceback.print_exception(exc, file=sys.stderr)
        print(f"videofocus: error: {line}", file=sys.stderr, flush=True)
        return status
