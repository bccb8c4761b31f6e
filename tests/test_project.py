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


def _pyproject() -> dict:
    import tomllib

    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_the_wheel_lists_every_package_folder() -> None:
    setuptools = _pyproject()["tool"]["setuptools"]
    mapped = {name: ROOT / folder for name, folder in setuptools["package-dir"].items()}
    found = {
        ".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "videofocus").rglob("*.py")
    }
    found |= {
        f"{name}.{'.'.join(p.parent.relative_to(folder).parts)}".rstrip(".")
        for name, folder in mapped.items()
        for p in folder.rglob("__init__.py")
    }
    assert sorted(setuptools["packages"]) == sorted(found)
    assert mapped == {
        "videofocus.data_prep": ROOT / "data_prep",
        "videofocus.configs": ROOT / "configs",
    }


def test_every_imported_library_is_declared() -> None:
    import ast
    import re
    import sys

    declared = {
        re.split(r"[<>=!;\[ ]", d)[0].lower().replace("-", "_")
        for d in _pyproject()["project"]["dependencies"]
    }
    # import name -> distribution name, where they differ
    alias = {"pil": "pillow", "yaml": "pyyaml", "av": "av", "sb3_contrib": "sb3_contrib"}
    optional = {"decord", "torchcodec", "timm", "ray"}  # imported inside functions, when asked for
    used = set()
    for base in ("videofocus", "data_prep"):
        for path in (ROOT / base).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    used |= {a.name.split(".")[0] for a in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    used.add(node.module.split(".")[0])
    third_party = {u for u in used if u not in sys.stdlib_module_names} - {"videofocus"}
    missing = {alias.get(u.lower(), u.lower()) for u in third_party - optional} - declared
    assert not missing, f"imported but not declared in pyproject dependencies: {missing}"
