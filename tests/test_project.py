"""Project-level contracts: the README's commands, CI, the console script."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```(?:bash|sh)\n(.*?)```", text, flags=re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def test_ci_runs_exactly_the_readme_test_command():
    commands = _readme_commands()
    test_cmds = [c for c in commands if "pytest" in c and "pip install" in c]
    assert len(test_cmds) == 1, f"README must hold one install+test command, found {test_cmds}"
    ci_lines = [line.strip() for line in (ROOT / ".ci/run").read_text().splitlines()]
    assert test_cmds[0] in ci_lines


def test_readme_main_command_installs_and_runs_videofocus():
    main_cmds = [c for c in _readme_commands() if "pip install" in c and "pytest" not in c]
    assert main_cmds and "videofocus" in main_cmds[0].split("&&")[-1]


def test_console_script_help_lists_every_subcommand():
    out = subprocess.run(
        [sys.executable, "-m", "videofocus.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for name in ("probe", "prepare", "bench"):
        assert name in out


def test_overrides_may_follow_options(capsys):
    from videofocus.cli import main

    config = str(ROOT / "configs" / "synthetic_tiny.yaml")
    assert main(["flops", config, "--json", "data.frames=4"]) == 0
    assert '"frames": 4' in capsys.readouterr().out
    assert main(["flops", config, "data.frames=5", "--json"]) == 0
    assert '"frames": 5' in capsys.readouterr().out


def test_bad_override_key_is_one_line_naming_the_key(capsys):
    from videofocus.cli import main

    config = str(ROOT / "configs" / "synthetic_tiny.yaml")
    assert main(["flops", config, "train.epoch=3"]) == 2
    err = capsys.readouterr().err
    assert "train.epoch" in err and "did you mean 'train.epochs'" in err and "Traceback" not in err
