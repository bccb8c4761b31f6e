"""Ablation grid files: parsing, validation and expansion into named variants.

A grid file is YAML (read with the same YAML 1.2 rules as config files)::

    base: ../synthetic_tiny.yaml          # the config every variant starts from (relative path)
    overrides: [train.epochs=6]           # applied to every variant
    policies: [recurrent_ppo, random]     # default [recurrent_ppo]
    axes:                                 # cartesian product of dotted config keys
      policy.cost_lambda: [0.0, 0.02]
    variants:                             # explicit named variants, added to the product
      - {name: no_skip, overrides: [policy.allow_skip=false]}
    exit_thresholds: [null, [0.9]]        # evaluation-time only: one row per entry

Policies are ``recurrent_ppo`` / ``ppo`` (learned: policy stage + fine-tune), ``random`` /
``centre`` / ``saliency`` (heuristics: the warm-up model fine-tuned on the heuristic's glimpses,
at glimpse option ``policy.option`` when that pseudo-key is an axis, else the last option) and
``dense`` / ``glance_only`` (baselines with stages of their own).

A product variant is named after its policy and the axis values it uses, e.g.
``recurrent_ppo__cost_lambda=0.02``; an axis a policy cannot feel (``policy.*`` for heuristics and
baselines, ``policy.option`` for learned policies) is left out of its name, and the variants that
become identical that way are kept once. Every problem is a :class:`GridError` naming the grid
file and the key.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from videofocus.config import (
    Config,
    ConfigError,
    config_from_dict,
    config_to_dict,
    load_config,
    resolve_config_path,
)

# The config loader's YAML reader: YAML 1.2 scalars (`1e-3` is a float, `off` a string) and no
# silently repeated keys, so a grid reads exactly like the config files it varies.
from videofocus.config.loader import parse_yaml
from videofocus.policy.algorithms import list_algorithms

__all__ = [
    "BASELINES",
    "HEURISTICS",
    "LEARNED",
    "OPTION_KEY",
    "POLICIES",
    "ExplicitVariant",
    "Grid",
    "GridError",
    "Variant",
    "axis_applies",
    "config_value",
    "expand_grid",
    "load_grid",
    "value_label",
    "variant_name",
]

#: The RL algorithms (a learned variant trains its policy with one of them).
LEARNED = tuple(list_algorithms())
HEURISTICS = ("random", "centre", "saliency")
BASELINES = ("dense", "glance_only")
#: Every policy a grid may name, in the order tables list them.
POLICIES = (*LEARNED, *HEURISTICS, *BASELINES)
#: Axis pseudo-key: the glimpse option (1..K) of heuristic policies.
OPTION_KEY = "policy.option"

_TOP_KEYS = ("base", "overrides", "policies", "axes", "variants", "exit_thresholds")
_VARIANT_KEYS = ("name", "overrides", "policy")
# Keys the grid sets itself: varying them by hand would fight the runner.
_RESERVED = {
    "name": "variants are named by the grid",
    "train.out_dir": "the runner places every stage under --out",
    "policy.algo": "list the algorithms under policies: instead",
}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._=+-]*$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._=+-]+")


class GridError(ConfigError):
    """A grid file is wrong; names the file and the grid key (``axes.policy.cost_lambda``)."""


@dataclass(frozen=True)
class ExplicitVariant:
    """A variant listed by name under ``variants:``."""

    name: str
    overrides: tuple[str, ...]
    policy: str | None  # None: the grid's first policy


@dataclass(frozen=True)
class Grid:
    """A parsed, structurally valid grid file."""

    path: Path
    base: Path  # the base config, resolved against the grid file's folder
    overrides: tuple[str, ...]
    policies: tuple[str, ...]
    axes: dict[str, list[Any]]  # dotted key -> values, in file order
    variants: tuple[ExplicitVariant, ...]
    exit_thresholds: tuple[list[float] | None, ...]  # None: no early exit


@dataclass(frozen=True)
class Variant:
    """One trainable, evaluable point of a grid."""

    name: str
    policy: str
    cfg: Config  # the resolved config (``train.out_dir`` not yet placed by the runner)
    axes: dict[str, Any]  # the axis values this variant uses (axes it ignores left out)
    option: int | None  # heuristics: the glimpse option 1..K; otherwise None
    curve: str  # plot line this variant belongs to (its name without the last axis)


# ------------------------------------------------------------------------------------- parsing


def _error(path: Path, key: str | None, message: str) -> GridError:
    return GridError(str(path), key, message)


def _str_list(path: Path, key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise _error(path, key, f"expected a list of strings, got {value!r}")
    return tuple(value)


def _check_reserved(path: Path, where: str, key: str) -> None:
    for reserved, why in _RESERVED.items():
        if key == reserved or key.startswith((reserved + ".", reserved + "[")):
            raise _error(path, where, f"cannot set {key!r}: {why}")


def _overrides(path: Path, where: str, value: Any) -> tuple[str, ...]:
    """A list of ``key=value`` overrides, none of them setting a key the grid owns."""
    overrides = _str_list(path, where, value)
    for i, text in enumerate(overrides):
        _check_reserved(path, f"{where}[{i}]", text.split("=", 1)[0].strip())
    return overrides


def _parse_thresholds(path: Path, value: Any) -> tuple[list[float] | None, ...]:
    if not isinstance(value, list) or not value:
        raise _error(path, "exit_thresholds", f"expected a non-empty list, got {value!r}")
    entries: list[list[float] | None] = []
    for i, entry in enumerate(value):
        key = f"exit_thresholds[{i}]"
        if entry is None:
            entries.append(None)
            continue
        numbers = isinstance(entry, list) and entry
        if not numbers or not all(
            isinstance(t, (int, float)) and not isinstance(t, bool) and t >= 0 for t in entry
        ):
            raise _error(
                path, key, f"expected null or a non-empty list of numbers >= 0, got {entry!r}"
            )
        thresholds = [float(t) for t in entry]
        if thresholds in entries:
            raise _error(path, key, f"repeats {entry!r}")
        entries.append(thresholds)
    return tuple(entries)


def load_grid(path: str | Path) -> Grid:
    """Read and check a grid file (structure only; :func:`expand_grid` checks config keys).

    :param path: the grid YAML, or a built-in grid's name (``ablations/reward``).
    :raises GridError: for a missing file, malformed YAML, an unknown key, a bad policy name or a
        malformed value; the message names the file and the key.
    """
    try:
        path = resolve_config_path(path)
    except ConfigError:
        raise _error(Path(path), None, "grid file not found") from None
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise _error(path, None, "grid file not found") from None
    try:
        data = parse_yaml(text, str(path))
    except ConfigError as err:  # malformed YAML, with the line it broke on
        raise GridError(err.source, err.key, err.message) from None
    if not isinstance(data, dict):
        raise _error(path, None, f"expected a mapping at the top, got {data!r}")
    for key in data:
        if key not in _TOP_KEYS:
            raise _error(path, None, f"unknown key {key!r} (valid keys: {', '.join(_TOP_KEYS)})")
    base = data.get("base")
    if not isinstance(base, str) or not base:
        raise _error(path, "base", "required: the config file the variants start from")
    base_path = path.parent / base
    if not base_path.is_file():
        raise _error(path, "base", f"config file not found: {base_path}")

    policies = _str_list(path, "policies", data.get("policies", ["recurrent_ppo"]))
    if not policies:
        raise _error(path, "policies", "needs at least one policy")
    for i, policy in enumerate(policies):
        if policy not in POLICIES:
            raise _error(
                path, f"policies[{i}]", f"unknown policy {policy!r}; choose from {list(POLICIES)}"
            )
    if len(set(policies)) < len(policies):
        raise _error(path, "policies", f"lists a policy twice: {list(policies)}")

    axes_data = data.get("axes", {}) or {}
    if not isinstance(axes_data, dict):
        raise _error(path, "axes", f"expected a mapping of dotted keys to lists, got {axes_data!r}")
    axes: dict[str, list[Any]] = {}
    for key, values in axes_data.items():
        where = f"axes.{key}"
        if not isinstance(key, str) or not key:
            raise _error(path, "axes", f"axis keys are dotted config keys, got {key!r}")
        _check_reserved(path, where, key)
        if key == "exit" or key.startswith("exit."):
            raise _error(path, where, "exit settings are evaluation-only: use exit_thresholds:")
        if not isinstance(values, list) or not values:
            raise _error(path, where, f"expected a non-empty list of values, got {values!r}")
        if key == OPTION_KEY and not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in values
        ):
            raise _error(path, where, f"glimpse options are integers >= 1, got {values!r}")
        labels = [value_label(v) for v in values]
        if len(set(labels)) < len(labels):
            raise _error(path, where, f"values must be distinct, got {values!r}")
        axes[key] = values

    explicit: list[ExplicitVariant] = []
    variants_data = data.get("variants", []) or []
    if not isinstance(variants_data, list):
        raise _error(path, "variants", f"expected a list of mappings, got {variants_data!r}")
    for i, item in enumerate(variants_data):
        where = f"variants[{i}]"
        if not isinstance(item, dict):
            raise _error(path, where, f"expected a mapping with name/overrides, got {item!r}")
        for key in item:
            if key not in _VARIANT_KEYS:
                raise _error(
                    path, f"{where}.{key}", f"unknown key (valid: {', '.join(_VARIANT_KEYS)})"
                )
        name = item.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise _error(
                path, f"{where}.name", f"needs a folder-safe name ([A-Za-z0-9._=+-]), got {name!r}"
            )
        policy = item.get("policy")
        if policy is not None and policy not in POLICIES:
            raise _error(
                path, f"{where}.policy", f"unknown policy {policy!r}; choose from {list(POLICIES)}"
            )
        overrides = _overrides(path, f"{where}.overrides", item.get("overrides", []))
        explicit.append(ExplicitVariant(name, overrides, policy))

    return Grid(
        path=path,
        base=base_path,
        overrides=_overrides(path, "overrides", data.get("overrides", [])),
        policies=policies,
        axes=axes,
        variants=tuple(explicit),
        exit_thresholds=_parse_thresholds(path, data.get("exit_thresholds", [None])),
    )


# -------------------------------------------------------------------------------------- naming


def value_label(value: Any) -> str:
    """A short, folder-safe spelling of an axis value: ``0.02``, ``false``, ``0.25x32+0.5x64``.

    Lists join their items with ``+``; mappings join their values with ``x`` (so a glimpse option
    ``{extent: 0.25, resolution: 32}`` reads ``0.25x32``).
    """
    if isinstance(value, bool) or value is None:
        text = json.dumps(value)
    elif isinstance(value, float):
        text = repr(value)
    elif isinstance(value, list):
        text = "+".join(value_label(v) for v in value)
    elif isinstance(value, dict):
        text = "x".join(value_label(v) for v in value.values())
    else:
        text = str(value)
    return _UNSAFE.sub("-", text)


def _short_keys(keys: Sequence[str]) -> dict[str, str]:
    """Each dotted key's last part, or the whole key where two keys share that last part."""
    last = [k.rsplit(".", 1)[-1] for k in keys]
    return {k: (s if last.count(s) == 1 else k) for k, s in zip(keys, last, strict=True)}


def variant_name(policy: str, axes: dict[str, Any], short: dict[str, str] | None = None) -> str:
    """``policy__key=value__...`` over ``axes`` in order (keys shortened to their last part).

    :param policy: the variant's policy.
    :param axes: dotted axis key -> value.
    :param short: the spelling of each key; default: :func:`_short_keys` of ``axes``.
    """
    short = short or _short_keys(list(axes))
    return "__".join([policy, *(f"{short[k]}={value_label(v)}" for k, v in axes.items())])


# ------------------------------------------------------------------------------------ expansion


def config_value(cfg: Config, key: str) -> Any:
    """The value at dotted ``key`` (``model.options[0].extent`` style) of ``cfg``, as plain data."""
    node: Any = config_to_dict(cfg)
    for seg in re.findall(r"[A-Za-z_]\w*|\d+", key):
        node = node[int(seg)] if seg.isdigit() and isinstance(node, list) else node[seg]
    return node


def axis_applies(policy: str, key: str) -> bool:
    """Whether axis ``key`` can change what a ``policy`` variant trains or evaluates."""
    if key == OPTION_KEY:
        return policy in HEURISTICS
    if key.startswith("policy."):
        return policy in LEARNED
    return True


def _override(key: str, value: Any) -> str:
    # JSON is YAML 1.2 flow syntax: the override parser reads the value back unchanged.
    return f"{key}={json.dumps(value)}"


def _check_axes(grid: Grid, base: Config) -> None:
    """Every axis key and value applied alone to the base config, errors named after the axis."""
    data = config_to_dict(base)
    for key, values in grid.axes.items():
        if key == OPTION_KEY:
            continue
        for value in values:
            try:
                config_from_dict(data, [_override(key, value)], source=str(grid.base))
            except ConfigError as err:
                detail = err.message if err.key in (None, key) else f"{err.key}: {err.message}"
                raise _error(grid.path, f"axes.{key}", detail) from None


def _build(grid: Grid, overrides: Sequence[str], name: str, where: str) -> Config:
    try:
        cfg = load_config(grid.base, list(overrides))
    except ConfigError as err:
        detail = ": ".join(p for p in (err.source, err.key, err.message) if p)
        raise _error(grid.path, where, f"variant {name!r}: {detail}") from None
    for i, thresholds in enumerate(grid.exit_thresholds):
        if thresholds is not None and len(thresholds) not in (1, cfg.data.frames):
            raise _error(
                grid.path,
                f"exit_thresholds[{i}]",
                f"has {len(thresholds)} values; variant {name!r} needs 1 or one per frame "
                f"(data.frames = {cfg.data.frames})",
            )
    return cfg


def _check_exit(grid: Grid, policy: str, name: str, where: str) -> None:
    """Exit thresholds go through the adaptive inferencer, which reads the checkpoints of the
    learned policies and the baselines but not a heuristic's own fine-tune stage."""
    if policy in HEURISTICS and any(t is not None for t in grid.exit_thresholds):
        raise _error(
            grid.path,
            where,
            f"variant {name!r}: heuristic policies are evaluated without early exit only; "
            "keep exit_thresholds at [null] or move the heuristics to a grid of their own",
        )


def _option(grid: Grid, cfg: Config, name: str, axes: dict[str, Any]) -> int:
    count = len(cfg.model.options)
    option = int(axes.get(OPTION_KEY, count))
    if option > count:
        raise _error(
            grid.path,
            f"axes.{OPTION_KEY}",
            f"variant {name!r}: option {option} but model.options has {count} entries",
        )
    return option


def expand_grid(grid: Grid, overrides: Sequence[str] = ()) -> list[Variant]:
    """Every variant of ``grid``: policies x axes (product order), then the explicit ones.

    :param grid: a grid from :func:`load_grid`.
    :param overrides: extra ``key=value`` overrides for every variant (after the grid's own,
        before axis values), e.g. from the command line.
    :raises GridError: for an unknown or invalid axis key or value, an override that does not
        apply, a name used twice, or exit thresholds of the wrong length.
    """
    try:
        base = load_config(grid.base, [*grid.overrides, *overrides])
    except ConfigError as err:
        detail = ": ".join(p for p in (err.source, err.key, err.message) if p)
        raise _error(grid.path, "overrides", detail) from None
    _check_axes(grid, base)
    keys = list(grid.axes)
    short = _short_keys(keys)
    common = [*grid.overrides, *overrides]
    out: dict[str, Variant] = {}
    for policy in grid.policies:
        used = [k for k in keys if axis_applies(policy, k)]
        for values in itertools.product(*(grid.axes[k] for k in used)):
            axes = dict(zip(used, values, strict=True))
            name = variant_name(policy, axes, short)
            if name in out:  # an axis this policy ignores: the same variant again
                continue
            _check_exit(grid, policy, name, "policies")
            axis_overrides = [_override(k, v) for k, v in axes.items() if k != OPTION_KEY]
            algo = [f"policy.algo={policy}"] if policy in LEARNED else []
            cfg = _build(grid, [*common, *axis_overrides, *algo], name, "axes")
            option = _option(grid, cfg, name, axes) if policy in HEURISTICS else None
            curve_axes = dict(list(axes.items())[:-1])
            out[name] = Variant(
                name, policy, cfg, axes, option, variant_name(policy, curve_axes, short)
            )
    for i, item in enumerate(grid.variants):
        if item.name in out:
            raise _error(grid.path, f"variants[{i}].name", f"{item.name!r} is already a variant")
        policy = item.policy or grid.policies[0]
        _check_exit(grid, policy, item.name, f"variants[{i}].policy")
        algo = [f"policy.algo={policy}"] if policy in LEARNED else []
        cfg = _build(grid, [*common, *item.overrides, *algo], item.name, f"variants[{i}]")
        option = _option(grid, cfg, item.name, {}) if policy in HEURISTICS else None
        out[item.name] = Variant(item.name, policy, cfg, {}, option, item.name)
    return list(out.values())
