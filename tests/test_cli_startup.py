"""The ``videofocus`` command starts fast: help and ``probe`` load no deep-learning library, every
help text is plain and shows its defaults, and a command is found from its words, never by
rewriting argv."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from videofocus.cli import COMMANDS, GROUPS, build_parser, command_parser
from videofocus.cli.arguments import plain_text

ROOT = Path(__file__).resolve().parents[1]
VIDEO = ROOT / "tests" / "data" / "mmaction2_test.avi"

#: what a start-up must not load (the label job may load torch, never the training stack)
TRAINING = ["stable_baselines3", "sb3_contrib", "gymnasium", "tensorboard", "matplotlib"]
HEAVY = ["torch", "torchvision", *TRAINING]

# runs main() in a fresh interpreter, then names the HEAVY modules it loaded (on the last line)
_LOADED = """
import json, sys
from videofocus.cli import main
try:
    status = main(sys.argv[1:])
except SystemExit as exc:
    status = exc.code
print(json.dumps({"status": status, "loaded": sorted(m for m in %r if m in sys.modules)}))
"""

MARKUP = re.compile(r":(mod|func|class|data|meth|attr|exc):|``")


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "videofocus.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


def _loaded_by(*args: str) -> tuple[int, list[str], str]:
    done = subprocess.run(
        [sys.executable, "-c", _LOADED % (HEAVY,), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    *out, last = done.stdout.splitlines()
    result = json.loads(last)
    return result["status"], result["loaded"], "\n".join(out)


def _all_command_names() -> list[str]:
    names = list(COMMANDS)
    for word, group in GROUPS.items():
        names += [f"{word} {name}" for name in group.names()]
    return names


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        [],
        ["probe", "--help"],
        ["label", "--help"],
        ["label", "merge", "--help"],
        ["label", "export", "--help"],
        ["train", "--help"],
        ["eval", "--help"],
        ["flops", "--help"],
        ["quickstart", "--help"],
        ["ablate", "--help"],
        ["viz", "--help"],
        ["prepare", "--help"],
        ["bench", "--help"],
        ["prepare", "kinetics", "--help"],
    ],
    ids=lambda args: " ".join(args) or "no-command",
)
def test_help_loads_no_deep_learning_library(args):
    status, loaded, out = _loaded_by(*args)
    assert loaded == [], f"videofocus {' '.join(args)} imported {loaded}"
    assert status == (2 if not args else 0) and "usage: videofocus" in out


def test_probe_loads_no_deep_learning_library():
    status, loaded, out = _loaded_by("probe", str(VIDEO), "--timeout", "60")
    assert status == 0 and loaded == [], loaded
    row = json.loads(out.splitlines()[-1])
    assert row["ok"] and row["path"] == str(VIDEO) and row["num_frames"] > 0


def test_the_label_job_loads_no_training_library():
    # nor Ray: only --engine ray imports it
    code = (
        "import sys\n"
        "import videofocus.labeling.job, videofocus.inference.model\n"
        f"print(sorted(m for m in {[*TRAINING, 'ray']!r} if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout


def test_help_lists_every_command_in_plain_text():
    done = _cli("--help")
    assert done.returncode == 0, done.stderr
    for words in [*COMMANDS, *GROUPS]:
        assert re.search(rf"^  {re.escape(words)}\b", done.stdout, flags=re.M), words
    for word, group in GROUPS.items():
        assert f"{word} {group.metavar}" in done.stdout
    assert not MARKUP.search(done.stdout), MARKUP.search(done.stdout)
    assert "exit status:" in done.stdout and "--debug" in done.stdout


def test_python_dash_m_videofocus_is_the_same_command():
    done = subprocess.run(
        [sys.executable, "-m", "videofocus", "--help"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and done.stdout == _cli("--help").stdout


def test_version():
    from videofocus import __version__

    done = _cli("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"videofocus {__version__}"


@pytest.mark.parametrize("name", _all_command_names())
def test_every_command_help_is_plain_and_shows_defaults(name):
    text = command_parser(name).format_help()
    assert text.startswith(f"usage: videofocus {name} ")
    assert not MARKUP.search(text), MARKUP.search(text)
    for noise in ("(default: None)", "(default: False)", "(default: [])", "(default: ())"):
        assert noise not in text


def test_probe_help_shows_its_defaults():
    done = _cli("probe", "--help")
    assert done.returncode == 0, done.stderr
    text = " ".join(done.stdout.split())
    assert "(default: 60.0)" in text and "(default: auto)" in text


def test_config_arguments_accept_a_builtin_name():
    for name in ("train", "eval", "flops", "quickstart"):
        text = " ".join(command_parser(name).format_help().split())
        assert "a built-in config name, e.g. synthetic_tiny, or a YAML path" in text, name


@pytest.mark.parametrize("word", ["merge", "export"])
def test_label_merge_and_export_are_commands_of_their_own(word):
    done = _cli("label", word, "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: videofocus label {word} ")
    args = build_parser().parse_args(["label", word, "labels.jsonl"])
    assert args.command == f"label {word}"
    # `label` itself takes an INPUT, which is not a sub-command
    args = build_parser().parse_args(["label", "videos/", "--config", "c", "--out", "o.jsonl"])
    assert args.command == "label" and args.input == "videos/" and args.overrides == []


def test_overrides_after_options_are_collected_without_reordering_argv():
    argv = ["train", "cfg.yaml", "--stage", "dense", "a.b=1", "c.d=2"]
    args = build_parser().parse_args(argv)
    assert argv == ["train", "cfg.yaml", "--stage", "dense", "a.b=1", "c.d=2"]
    assert (
        args.command == "train" and args.stage == "dense" and args.overrides == ["a.b=1", "c.d=2"]
    )
    args = build_parser().parse_args(["--debug", "prepare", "synthetic", "out", "--frames", "4"])
    assert args.command == "prepare synthetic" and args.num_frames == 4


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["frobnicate"], "COMMAND: invalid choice: 'frobnicate' (choose from 'quickstart'"),
        (["prepare", "nope"], "DATASET: invalid choice: 'nope' (choose from 'activitynet'"),
        (["bench"], "bench: the following arguments are required: NAME"),
        (["label", "merge"], "label merge: the following arguments are required: out"),
        (["--bogus", "probe"], "videofocus: unrecognized arguments: --bogus"),
    ],
)
def test_a_wrong_command_is_one_line_and_status_2(args, says):
    done = _cli(*args)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("videofocus: error: "), done.stderr
    assert says in lines[0], lines[0]
    assert done.stdout == ""


def test_no_command_prints_the_help_and_status_2():
    done = _cli()
    assert done.returncode == 2 and done.stderr == ""
    assert done.stdout == _cli("--help").stdout


@pytest.mark.parametrize("word", list(GROUPS))
def test_group_help_lists_every_name_with_its_module_docstring(word):
    group = GROUPS[word]
    module, _, attribute = group.registry.partition(":")
    registry = getattr(importlib.import_module(module), attribute)
    done = _cli(word, "--help")
    assert done.returncode == 0, done.stderr
    listing = " ".join(done.stdout.split())
    for name, path in registry.items():
        first = importlib.import_module(path).__doc__.split("\n\n")[0]
        assert re.search(rf"^  {name}\b", done.stdout, flags=re.M), name
        assert group.name_summary(name) == " ".join(plain_text(first).split())
        assert f"{name} {group.name_summary(name)}" in listing, name


def test_plain_text_strips_roles_and_literals():
    from videofocus.cli.arguments import plain_text

    text = plain_text(
        "See :mod:`videofocus.x`, :func:`~a.b.run`, :class:`the class <a.B>` and ``x=1``::"
    )
    assert text == "See videofocus.x, run, the class and x=1:"
