"""``videofocus prepare DATASET ...``: the converter modules of :mod:`videofocus.data_prep`.

Only the converter named is imported (its options are its own ``add_arguments``).
"""

from __future__ import annotations

import argparse


def _converter(name: str):
    from videofocus.data_prep import load_converter

    return load_converter(name)


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    converter = _converter(name)
    parser.description = converter.__doc__
    converter.add_arguments(parser)


def run(args: argparse.Namespace, name: str) -> int:
    return _converter(name).run(args)
