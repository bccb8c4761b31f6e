"""``videofocus label INPUT ...``, ``videofocus label merge OUT``, ``videofocus label export``.

The arguments and runners live in :mod:`videofocus.labeling.command`, whose import is light (no
torch): the label job's modules load in its runners.
"""

from __future__ import annotations

import argparse
import inspect


def _command():
    from videofocus.labeling import command

    return command


def _description(module_doc: str) -> str:
    # the module docstring's first paragraph is about the module; the rest is about the command
    _, _, body = module_doc.strip().partition("\n\n")
    return (
        f"{body}\n\nAlso: 'videofocus label merge' joins the shard files of a sharded job;\n"
        "'videofocus label export' converts a labels file to CSV or ActivityNet JSON."
    )


def add_arguments(parser: argparse.ArgumentParser, word: str | None = None) -> None:
    command = _command()
    if word is None:
        parser.description = _description(command.__doc__ or "")
        command.add_arguments(parser)
    elif word == "merge":
        parser.description = inspect.cleandoc(command.run_merge.__doc__ or "")
        command.add_merge_arguments(parser)
    elif word == "export":
        parser.description = inspect.cleandoc(command.run_export.__doc__ or "")
        command.add_export_arguments(parser)
    else:
        raise KeyError(f"unknown label command {word!r}")


def run(args: argparse.Namespace, word: str | None = None) -> int:
    command = _command()
    runner = {None: command.run, "merge": command.run_merge, "export": command.run_export}[word]
    return runner(args)
