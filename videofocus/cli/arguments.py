"""What the command parsers share: plain-text help that shows defaults, and common arguments
(imports only the standard library)."""

from __future__ import annotations

import argparse
import copy
import re

__all__ = [
    "CONFIG_HELP",
    "add_export_arguments",
    "add_model_arguments",
    "float_list",
    "HelpFormatter",
    "add_config_arguments",
    "add_overrides",
    "config_help",
    "plain_text",
]

#: what a command's config argument accepts (load_config resolves names and paths alike)
CONFIG_HELP = "a built-in config name, e.g. synthetic_tiny, or a YAML path"

# :mod:`x`, :func:`~a.b`, :class:`text <target>`, :py:data:`X`
_ROLE = re.compile(r":(?:[a-z]+:)?[a-z]+:`([^`]*)`")
_LITERAL = re.compile(r"``(.+?)``", flags=re.S)
_LITERAL_BLOCK = re.compile(r"(\S)::$", flags=re.M)


def _role_text(match: re.Match[str]) -> str:
    target = "".join(match.group(1).split())  # a role may wrap over lines
    label, sep, ref = match.group(1).partition(" <")
    if sep and ref.endswith(">"):
        return " ".join(label.split())
    target = target.lstrip("!")
    return target[1:].rsplit(".", 1)[-1] if target.startswith("~") else target


def plain_text(text: str | None) -> str:
    """``text`` (a docstring) without reStructuredText markup: roles such as ``:mod:`x``` become
    ``x`` (``~a.b.c``: ``c``), double backquotes are dropped, a ``::`` ending a line becomes
    ``:``."""
    if not text:
        return ""
    text = _ROLE.sub(_role_text, text)
    text = _LITERAL.sub(r"\1", text)
    return _LITERAL_BLOCK.sub(r"\1:", text)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and epilogs as written (line breaks kept), all help in plain text, and each
    option's default appended where it has one: not for flags, nor for a default of None, an
    empty list, or a help text that already says its default."""

    def _format_text(self, text: str) -> str:
        return super()._format_text(plain_text(text))

    def _expand_help(self, action: argparse.Action) -> str:
        return plain_text(super()._expand_help(action))

    @staticmethod
    def _shows_default(action: argparse.Action) -> bool:
        return (
            action.nargs != 0  # store_true / store_false / store_const / count / help / version
            and action.default not in (None, argparse.SUPPRESS, [], ())
            and bool(
                action.option_strings or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE)
            )
            and not re.search(r"\bdefault", action.help or "", flags=re.I)
        )

    def _format_action(self, action: argparse.Action) -> str:
        if not action.help and self._shows_default(action):  # argparse skips an empty help
            action = copy.copy(action)
            action.help = "(default: %(default)s)"
        return super()._format_action(action)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        return f"{text} (default: %(default)s)" if self._shows_default(action) else text


def config_help() -> str:
    """Help of a config argument, naming the built-in configs."""
    from videofocus.config import builtin_configs  # omegaconf, no torch

    return f"{CONFIG_HELP} (built-in: {', '.join(builtin_configs())})"


def add_overrides(parser: argparse.ArgumentParser, help: str | None = None) -> None:
    """The trailing ``KEY=VALUE`` dotted config overrides (they may also follow options)."""
    parser.add_argument(
        "overrides",
        nargs="*",
        default=[],  # else argparse calls the list required in its errors
        metavar="KEY=VALUE",
        help=help or "dotted config overrides, e.g. train.epochs=3 model.grid=5",
    )


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """``CONFIG [KEY=VALUE ...]``, as train, eval and flops take them."""
    parser.add_argument("config", metavar="CONFIG", help=config_help())
    add_overrides(parser)


def float_list(text: str) -> list[float]:
    """``argparse`` type of comma-separated numbers, e.g. ``--thresholds 0.9,0.8``."""
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, got {text!r}"
        ) from None


def add_model_arguments(parser: argparse.ArgumentParser, verb: str) -> None:
    """The model a command runs (``label``, ``viz``): ``--checkpoint`` or ``--config``, and
    ``--policy`` / ``--option`` / ``--thresholds``; ``--policy`` is checked when the command
    runs (building the parser imports no torch)."""
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="a checkpoint folder, e.g. runs/x/finetune/final")
    src.add_argument(
        "--config", help=f"{verb} this config's model with RANDOM weights (dry runs): {CONFIG_HELP}"
    )
    parser.add_argument(
        "--policy",
        metavar="NAME",
        help="replace the model's policy by a heuristic "
        "(random, centre, saliency, dense, glance_only)",
    )
    parser.add_argument("--option", type=int, help="glimpse option of that heuristic (1..K)")
    parser.add_argument(
        "--thresholds", type=float_list, help="early-exit thresholds, one or one per step (0.9,...)"
    )


def add_export_arguments(parser: argparse.ArgumentParser, what: str) -> None:
    """``--csv`` and ``--activitynet``: where ``what`` is also exported."""
    parser.add_argument("--csv", metavar="PATH", help=f"also export {what} as CSV")
    parser.add_argument("--activitynet", metavar="PATH", help="also export ActivityNet result JSON")
