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
    seeds: [0, 1, 2]                      # every variant trained once per seed
    reference: recurrent_ppo              # paired comparisons subtract it (default: the first)

Policies are ``recurrent_ppo`` / ``ppo`` (learned: policy stage + fine-tune), ``random`` /
``centre`` / ``saliency`` (heuristics: the warm-up model fine-tuned on their glimpses),
``differentiable`` (AdaFocusV2-style, trained end to end from the warm-up) and ``dense`` /
``glance_only`` (baselines with stages of their own). Heuristic and differentiable variants
glimpse at option ``policy.option`` when that pseudo-key is an axis, else the last option (the
differentiable one: ``train.differentiable_option``).

An explicit variant may also set ``option`` (1..K), ``option_of: NAME`` (the option the earlier
variant NAME glimpses with most, known once it has run), ``finetune: false`` (a learned or
heuristic policy read by the shared warm-up network, not by a model fine-tuned on its glimpses)
and ``exit`` (its own exit entries instead of ``exit_thresholds``). An exit entry is ``null``
(no early exit), a list of thresholds (one, or one per frame), ``{max_steps: K}`` (every video
stops after its first K steps: the fixed truncation a calibrated exit must beat) or
``{budget_share: S, of: NAME}``: thresholds calibrated on the validation rows (the training rows
when val reports) for S times the GMACs per video of the earlier variant NAME (default: the
variant itself without early exit; with ``max_steps: K`` too: that variant truncated at K steps,
so that the calibrated exit and the truncation cost the same). ``glance_exit: true`` in a budget
makes the glance-only prediction its first exit, before any glimpse (one threshold more,
calibrated with the others).

With ``seeds``, every variant is trained and evaluated once per seed (``train.seed`` and
``policy.seed`` set to it; the same data, so every seed is tested on the same videos), named
``<variant>__seed=<s>``; its ``option_of`` and budgets refer to the same seed's runs. The copies
run seed by seed (every variant of the first seed, then the next), so an interrupted run has whole
seeds finished.

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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields, replace
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
from videofocus.evaluation.policy_eval import ORACLE
from videofocus.policy.algorithms import list_algorithms

__all__ = [
    "BASELINES",
    "DIFFERENTIABLE",
    "HEURISTICS",
    "LEARNED",
    "ONE_OPTION",
    "OPTION_KEY",
    "POLICIES",
    "Budget",
    "ExitEntry",
    "ExplicitVariant",
    "Truncate",
    "Grid",
    "GridError",
    "Variant",
    "axis_applies",
    "config_value",
    "expand_grid",
    "load_grid",
    "value_label",
    "seeded_name",
    "unseeded_exit",
    "variant_name",
    "with_option",
]

#: The RL algorithms (a learned variant trains its policy with one of them).
LEARNED = tuple(list_algorithms())
HEURISTICS = ("random", "centre", "saliency")
BASELINES = ("dense", "glance_only")
DIFFERENTIABLE = "differentiable"
#: Every policy a grid may name, in the order tables list them (``oracle``: glimpses centred on
#: the target, from the synthetic generator's tracks).
POLICIES = (*LEARNED, *HEURISTICS, ORACLE, DIFFERENTIABLE, *BASELINES)
#: Policies that glimpse at one fixed option (set by ``policy.option``, ``option`` or
#: ``option_of``).
ONE_OPTION = (*HEURISTICS, ORACLE, DIFFERENTIABLE)
#: Axis pseudo-key: the glimpse option (1..K) of heuristic policies.
OPTION_KEY = "policy.option"

_VARIANT_KEYS = ("name", "overrides", "policy", "option", "option_of", "finetune", "exit")
_BUDGET_KEYS = ("budget_share", "of", "max_steps", "glance_exit")
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
class Budget:
    """An exit entry: thresholds calibrated for ``share`` times a variant's GMACs per video."""

    share: float
    of: str | None = None  # the earlier variant whose cost it is a share of; None: itself
    max_steps: int | None = None  # of that variant's run truncated at this many steps
    glance_exit: bool = False  # the glance-only prediction is exit 0, before any glimpse

    def to_json(self) -> dict[str, Any]:
        """The entry as the grid file spells it (``glance_exit`` only when on, so that records
        of budgets without it keep their key)."""
        out: dict[str, Any] = {"budget_share": self.share, "of": self.of}
        if self.max_steps is not None:
            out["max_steps"] = self.max_steps
        if self.glance_exit:
            out["glance_exit"] = True
        return out


@dataclass(frozen=True)
class Truncate:
    """An exit entry: every video stops after its first ``max_steps`` steps (anytime mode)."""

    max_steps: int

    def to_json(self) -> dict[str, Any]:
        """The entry as the grid file spells it."""
        return {"max_steps": self.max_steps}


#: One exit entry: None (no early exit), thresholds, a :class:`Budget` or a :class:`Truncate`.
ExitEntry = list[float] | Budget | Truncate | None


@dataclass(frozen=True)
class ExplicitVariant:
    """A variant listed by name under ``variants:``."""

    name: str
    overrides: tuple[str, ...] = ()
    policy: str | None = None  # None: the grid's first policy
    option: int | None = None
    option_of: str | None = None
    finetune: bool = True
    exits: tuple[ExitEntry, ...] | None = None  # None: the grid's exit_thresholds


@dataclass(frozen=True)
class Grid:
    """A parsed, structurally valid grid file."""

    path: Path
    base: Path  # the base config, resolved against the grid file's folder
    overrides: tuple[str, ...]
    policies: tuple[str, ...]
    axes: dict[str, list[Any]]  # dotted key -> values, in file order
    variants: tuple[ExplicitVariant, ...]
    exit_thresholds: tuple[ExitEntry, ...]
    seeds: tuple[int | None, ...] = (None,)  # None: the config's own seeds, no name suffix
    reference: str | None = None  # the method paired comparisons subtract; None: the first
    #: further paired comparisons: (method, exit, reference method, reference exit), exits as
    #: the grid spells them (None: without early exit)
    pairs: tuple[tuple[str, Any, str, Any], ...] = ()


# A grid file's keys: Grid's fields, less its own path and the pairs only code sets.
_TOP_KEYS = tuple(f.name for f in fields(Grid) if f.name not in ("path", "pairs"))


@dataclass(frozen=True)
class Variant:
    """One trainable, evaluable point of a grid."""

    name: str
    policy: str
    cfg: Config  # the resolved config (``train.out_dir`` not yet placed by the runner)
    axes: dict[str, Any]  # the axis values this variant uses (axes it ignores left out)
    option: int | None  # heuristics, differentiable: the glimpse option 1..K; otherwise None
    curve: str  # plot line this variant belongs to (its name without the last axis)
    finetune: bool = True  # False: read by the shared warm-up network
    option_of: str | None = None  # the option is that earlier variant's most used one
    exits: tuple[ExitEntry, ...] = (None,)
    seed: int | None = None  # the grid's seed for this copy (None: the config's)
    method: str = ""  # the name without the seed suffix (the rows a summary pools)

    @property
    def protocol(self) -> str:
        """``own checkpoint`` (a baseline), ``fine-tuned`` (a model trained on its own glimpses)
        or ``warm-up network`` (the shared warm-up model): how its numbers were made."""
        if self.policy in BASELINES:
            return "own checkpoint"
        return "fine-tuned" if self.finetune else "warm-up network"


def _error(path: Path, key: str | None, message: str) -> GridError:
    return GridError(str(path), key, message)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _str_list(path: Path, key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise _error(path, key, f"expected a list of strings, got {value!r}")
    return tuple(value)


def _check_keys(path: Path, where: str, mapping: dict[str, Any], valid: Sequence[str]) -> None:
    for key in mapping:
        if key not in valid:
            raise _error(path, f"{where}.{key}", f"unknown key (valid: {', '.join(valid)})")


def _check_policy(path: Path, where: str, policy: Any) -> None:
    if policy not in POLICIES:
        raise _error(path, where, f"unknown policy {policy!r}; choose from {list(POLICIES)}")


def _name_or_none(path: Path, where: str, value: Any) -> str | None:
    """A reference to a variant by name (or None)."""
    if value is not None and not isinstance(value, str):
        raise _error(path, where, f"expected a variant name, got {value!r}")
    return value


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


def _parse_exit_mapping(path: Path, key: str, entry: dict[str, Any]) -> Budget | Truncate:
    _check_keys(path, key, entry, _BUDGET_KEYS)
    steps = entry.get("max_steps")
    if steps is not None and (not _is_int(steps) or steps < 1):
        raise _error(path, f"{key}.max_steps", f"expected an integer >= 1, got {steps!r}")
    if set(entry) == {"max_steps"}:
        return Truncate(steps)
    share = entry.get("budget_share")
    if not _is_number(share) or share <= 0:
        raise _error(path, f"{key}.budget_share", f"expected a number > 0, got {share!r}")
    glance_exit = entry.get("glance_exit", False)
    if not isinstance(glance_exit, bool):
        raise _error(path, f"{key}.glance_exit", f"expected true or false, got {glance_exit!r}")
    of = _name_or_none(path, f"{key}.of", entry.get("of"))
    return Budget(float(share), of, steps, glance_exit)


def _parse_thresholds(
    path: Path, value: Any, where: str = "exit_thresholds"
) -> tuple[ExitEntry, ...]:
    if not isinstance(value, list) or not value:
        raise _error(path, where, f"expected a non-empty list, got {value!r}")
    entries: list[ExitEntry] = []
    for i, entry in enumerate(value):
        key = f"{where}[{i}]"
        parsed: ExitEntry
        if entry is None:
            parsed = None
        elif isinstance(entry, dict):
            parsed = _parse_exit_mapping(path, key, entry)
        elif isinstance(entry, list) and entry and all(_is_number(t) and t >= 0 for t in entry):
            parsed = [float(t) for t in entry]
        else:
            raise _error(
                path,
                key,
                "expected null, {budget_share: S}, {max_steps: K} or a non-empty list of "
                f"numbers >= 0, got {entry!r}",
            )
        if parsed in entries:
            raise _error(path, key, f"repeats {entry!r}")
        entries.append(parsed)
    return tuple(entries)


def load_grid(path: str | Path) -> Grid:
    """Read and check a grid file (structure only; :func:`expand_grid` checks config keys).

    :param path: the grid YAML, or a built-in grid's name (``ablations/reward``).
    :raises GridError: for a missing file, malformed YAML, an unknown key, a bad policy name or a
        malformed value; the message names the file and the key.
    """
    try:
        path = resolve_config_path(path)
        text = path.read_text(encoding="utf-8")
    except (ConfigError, FileNotFoundError):
        raise _error(Path(path), None, "grid file not found") from None
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
        _check_policy(path, f"policies[{i}]", policy)
    if len(set(policies)) < len(policies):
        raise _error(path, "policies", f"lists a policy twice: {list(policies)}")

    axes = data.get("axes", {}) or {}
    if not isinstance(axes, dict):
        raise _error(path, "axes", f"expected a mapping of dotted keys to lists, got {axes!r}")
    for key, values in axes.items():
        where = f"axes.{key}"
        if not isinstance(key, str) or not key:
            raise _error(path, "axes", f"axis keys are dotted config keys, got {key!r}")
        _check_reserved(path, where, key)
        if key == "exit" or key.startswith("exit."):
            raise _error(path, where, "exit settings are evaluation-only: use exit_thresholds:")
        if not isinstance(values, list) or not values:
            raise _error(path, where, f"expected a non-empty list of values, got {values!r}")
        if key == OPTION_KEY and not all(_is_int(v) and v >= 1 for v in values):
            raise _error(path, where, f"glimpse options are integers >= 1, got {values!r}")
        labels = [value_label(v) for v in values]
        if len(set(labels)) < len(labels):
            raise _error(path, where, f"values must be distinct, got {values!r}")

    explicit: list[ExplicitVariant] = []
    variants = data.get("variants", []) or []
    if not isinstance(variants, list):
        raise _error(path, "variants", f"expected a list of mappings, got {variants!r}")
    for i, item in enumerate(variants):
        where = f"variants[{i}]"
        if not isinstance(item, dict):
            raise _error(path, where, f"expected a mapping with name/overrides, got {item!r}")
        _check_keys(path, where, item, _VARIANT_KEYS)
        name = item.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise _error(
                path, f"{where}.name", f"needs a folder-safe name ([A-Za-z0-9._=+-]), got {name!r}"
            )
        policy = item.get("policy")
        if policy is not None:
            _check_policy(path, f"{where}.policy", policy)
        overrides = _overrides(path, f"{where}.overrides", item.get("overrides", []))
        option = item.get("option")
        if option is not None and not _is_int(option):
            raise _error(path, f"{where}.option", f"expected an integer >= 1, got {option!r}")
        option_of = _name_or_none(path, f"{where}.option_of", item.get("option_of"))
        finetune = item.get("finetune", True)
        if not isinstance(finetune, bool):
            raise _error(path, f"{where}.finetune", f"expected true or false, got {finetune!r}")
        exits = item.get("exit")
        if exits is not None:
            exits = _parse_thresholds(path, exits, f"{where}.exit")
        explicit.append(
            ExplicitVariant(name, overrides, policy, option, option_of, finetune, exits)
        )

    seeds = data.get("seeds", [None])
    if (
        not isinstance(seeds, list)
        or not seeds
        or not all(s is None or _is_int(s) for s in seeds)
        or len(set(seeds)) < len(seeds)
        or (None in seeds and len(seeds) > 1)
    ):
        raise _error(path, "seeds", f"expected a list of distinct integers, got {seeds!r}")
    return Grid(
        path=path,
        base=base_path,
        overrides=_overrides(path, "overrides", data.get("overrides", [])),
        policies=policies,
        axes=dict(axes),
        variants=tuple(explicit),
        exit_thresholds=_parse_thresholds(path, data.get("exit_thresholds", [None])),
        seeds=tuple(seeds),
        reference=_name_or_none(path, "reference", data.get("reference")),
    )


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


def variant_name(policy: str, axes: dict[str, Any], short: dict[str, str]) -> str:
    """``policy__key=value__...`` over ``axes`` (dotted key -> value) in order, each key spelt
    as ``short`` says (:func:`_short_keys`)."""
    return "__".join([policy, *(f"{short[k]}={value_label(v)}" for k, v in axes.items())])


def config_value(cfg: Config, key: str) -> Any:
    """The value at dotted ``key`` (``model.options[0].extent`` style) of ``cfg``, as plain data."""
    node: Any = config_to_dict(cfg)
    for seg in re.findall(r"[A-Za-z_]\w*|\d+", key):
        node = node[int(seg)] if seg.isdigit() and isinstance(node, list) else node[seg]
    return node


def axis_applies(policy: str, key: str) -> bool:
    """Whether axis ``key`` can change what a ``policy`` variant trains or evaluates."""
    if key == OPTION_KEY:
        return policy in ONE_OPTION
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


def _load(grid: Grid, overrides: Sequence[str], where: str, prefix: str = "") -> Config:
    """The base config with ``overrides``, a failure named after the grid key ``where``."""
    try:
        return load_config(grid.base, list(overrides))
    except ConfigError as err:
        detail = ": ".join(p for p in (err.source, err.key, err.message) if p)
        raise _error(grid.path, where, prefix + detail) from None


def _build(
    grid: Grid,
    overrides: Sequence[str],
    policy: str,
    name: str,
    where: str,
    exits: Sequence[ExitEntry],
) -> Config:
    algo = [f"policy.algo={policy}"] if policy in LEARNED else []
    cfg = _load(grid, [*overrides, *algo], where, f"variant {name!r}: ")
    for i, thresholds in enumerate(exits):
        if isinstance(thresholds, list) and len(thresholds) not in (1, cfg.data.frames):
            raise _error(
                grid.path,
                f"exit_thresholds[{i}]",
                f"has {len(thresholds)} values; variant {name!r} needs 1 or one per frame "
                f"(data.frames = {cfg.data.frames})",
            )
    return cfg


def _check_exit(
    grid: Grid, policy: str, finetune: bool, exits: Sequence[ExitEntry], name: str, where: str
) -> None:
    """Exit thresholds go through the adaptive inferencer, which reads the checkpoints of the
    learned policies and the baselines, not a heuristic's or the differentiable policy's."""
    if (policy in ONE_OPTION or not finetune) and any(t is not None for t in exits):
        raise _error(
            grid.path,
            where,
            f"variant {name!r}: heuristic, differentiable and not fine-tuned policies are "
            "evaluated without early exit only; keep exit_thresholds at [null] or move them to "
            "a grid of their own",
        )


def _option(
    grid: Grid, cfg: Config, policy: str, name: str, option: int | None, where: str
) -> tuple[Config, int]:
    """The variant's glimpse option (checked against the config) and its config with the
    differentiable policy's option set to it."""
    count = len(cfg.model.options)
    if option is None:
        option = cfg.train.differentiable_option if policy == DIFFERENTIABLE else count
    if not 1 <= option <= count:
        raise _error(
            grid.path,
            where,
            f"variant {name!r}: option {option} but model.options has {count} entries",
        )
    return with_option(cfg, policy, option), option


def with_option(cfg: Config, policy: str, option: int) -> Config:
    """``cfg`` with the differentiable policy's option set to ``option`` (for that policy)."""
    if policy != DIFFERENTIABLE:
        return cfg
    return replace(cfg, train=replace(cfg.train, differentiable_option=option))


def expand_grid(grid: Grid, overrides: Sequence[str] = ()) -> list[Variant]:
    """Every variant of ``grid``: policies x axes (product order), then the explicit ones.

    :param overrides: extra ``key=value`` overrides for every variant (after the grid's own,
        before axis values), e.g. from the command line.
    :raises GridError: for an unknown or invalid axis key or value, an override that does not
        apply, a name used twice, or exit thresholds of the wrong length.
    """
    common = [*grid.overrides, *overrides]
    _check_axes(grid, _load(grid, common, "overrides"))
    keys = list(grid.axes)
    short = _short_keys(keys)
    out: dict[str, Variant] = {}
    exits = grid.exit_thresholds
    for policy in grid.policies:
        used = [k for k in keys if axis_applies(policy, k)]
        for values in itertools.product(*(grid.axes[k] for k in used)):
            axes = dict(zip(used, values, strict=True))
            name = variant_name(policy, axes, short)
            if name in out:  # an axis this policy ignores: the same variant again
                continue
            _check_exit(grid, policy, True, exits, name, "policies")
            axis_overrides = [_override(k, v) for k, v in axes.items() if k != OPTION_KEY]
            cfg = _build(grid, [*common, *axis_overrides], policy, name, "axes", exits)
            option = None
            if policy in ONE_OPTION:
                where = f"axes.{OPTION_KEY}"
                cfg, option = _option(grid, cfg, policy, name, axes.get(OPTION_KEY), where)
            curve = variant_name(policy, dict(list(axes.items())[:-1]), short)
            out[name] = Variant(name, policy, cfg, axes, option, curve, exits=exits)
    for i, item in enumerate(grid.variants):
        where = f"variants[{i}]"
        if item.name in out:
            raise _error(grid.path, f"{where}.name", f"{item.name!r} is already a variant")
        policy = item.policy or grid.policies[0]
        exits = grid.exit_thresholds if item.exits is None else item.exits
        _check_exit(grid, policy, item.finetune, exits, item.name, f"{where}.policy")
        refs = [(f"{where}.exit", e.of) for e in exits if isinstance(e, Budget)]
        for key, ref in [*refs, (f"{where}.option_of", item.option_of)]:
            if ref is not None and ref not in out:
                raise _error(grid.path, key, f"{ref!r} is no earlier variant")
        if not item.finetune and policy not in (*LEARNED, *HEURISTICS, ORACLE):
            raise _error(grid.path, f"{where}.finetune", f"{policy!r} has no fine-tune to skip")
        cfg = _build(grid, [*common, *item.overrides], policy, item.name, where, exits)
        option = None
        if (item.option_of is not None or item.option is not None) and policy not in ONE_OPTION:
            raise _error(grid.path, f"{where}.option", f"{policy!r} chooses its own options")
        if item.option_of is None and policy in ONE_OPTION:
            cfg, option = _option(grid, cfg, policy, item.name, item.option, f"{where}.option")
        out[item.name] = Variant(
            item.name, policy, cfg, {}, option, item.name, item.finetune, item.option_of, exits
        )
    if grid.reference is not None and grid.reference not in out:
        raise _error(grid.path, "reference", f"{grid.reference!r} is no variant of the grid")
    # seed-major: an interrupted multi-seed run has whole seeds done, each reportable on its own
    return [copy for seed in grid.seeds for v in out.values() for copy in _seeded(v, (seed,))]


def seeded_name(name: str, seed: int | None) -> str:
    """The variant name of ``name``'s copy for ``seed``."""
    return name if seed is None else f"{name}__seed={seed}"


def unseeded_exit(entry: Any, seed: int | None) -> Any:
    """A seed copy's exit entry (as JSON) as the grid names it: a budget's ``of`` without the
    seed's suffix, so one method's rows and per-video hits pool over its seeds and match the
    grid's ``pairs`` (the copy's own record keeps the seeded name it was calibrated against)."""
    if seed is None or not isinstance(entry, dict) or not entry.get("of"):
        return entry
    return {**entry, "of": entry["of"].removesuffix(seeded_name("", seed))}


def _seeded(variant: Variant, seeds: Sequence[int | None]) -> Iterator[Variant]:
    """One copy of ``variant`` per seed, its references pointing at the same seed's copies."""
    for seed in seeds:
        cfg = variant.cfg
        if seed is not None:
            train, policy = replace(cfg.train, seed=seed), replace(cfg.policy, seed=seed)
            cfg = replace(cfg, train=train, policy=policy)
        exits = tuple(
            replace(e, of=seeded_name(e.of, seed)) if isinstance(e, Budget) and e.of else e
            for e in variant.exits
        )
        option_of = None if variant.option_of is None else seeded_name(variant.option_of, seed)
        yield replace(
            variant,
            name=seeded_name(variant.name, seed),
            cfg=cfg,
            option_of=option_of,
            exits=exits,
            seed=seed,
            method=variant.name,
        )
