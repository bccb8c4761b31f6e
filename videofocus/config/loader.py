"""Reading configs: YAML layers (``base:`` inheritance), type checks, dotted overrides."""

from __future__ import annotations

import dataclasses
import difflib
import functools
import re
import types
import typing
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from videofocus.config.schema import Config, ConfigError

_BOOL_TAG = "tag:yaml.org,2002:bool"
_FLOAT_TAG = "tag:yaml.org,2002:float"


class _YamlLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 scalars and no silently repeated keys."""

    def construct_mapping(self, node, deep=False):
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, (str, int, float)) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


# YAML 1.1 reads yes/no/on/off as booleans (so `amp: off` would be False) and needs a dot in
# floats (so `lr: 1e-3` would be a string); swap those two resolvers for YAML 1.2 ones.
_YamlLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_BOOL_TAG, _FLOAT_TAG)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_YamlLoader.add_implicit_resolver(
    _BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_YamlLoader.add_implicit_resolver(
    _FLOAT_TAG,
    re.compile(
        r"^(?:[-+]?[0-9][0-9_]*(?:\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[eE][-+]?[0-9]+)"
        r"|[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


def parse_yaml(text: str, source: str) -> Any:
    """``text`` parsed with the config loader's safe YAML rules (also what ablation grids use);
    malformed YAML raises a ConfigError naming ``source`` (the file) and the line."""
    try:
        return yaml.load(text, Loader=_YamlLoader)  # a SafeLoader subclass: no object tags
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(where, None, f"malformed YAML: {problem}") from None


def _read_layers(path: Path, chain: tuple[Path, ...] = ()) -> list[tuple[str, dict]]:
    """The file and its ``base`` ancestors as (source, mapping) pairs, the farthest base first."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(source, None, "config file not found") from None
    except OSError as exc:
        raise ConfigError(source, None, f"cannot read config file: {exc.strerror}") from None
    data = parse_yaml(text, source)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(source, None, f"expected a mapping at the top, got {_show(data)}")
    base = data.pop("base", None)
    if base is None:
        return [(source, data)]
    if not isinstance(base, str) or not base:
        raise ConfigError(source, "base", f"expected a relative file path, got {_show(base)}")
    chain = (*chain, path.resolve())
    base_path = path.parent / base
    if base_path.resolve() in chain:
        cycle = " -> ".join(str(p) for p in (*chain, base_path.resolve()))
        raise ConfigError(source, "base", f"inherits from itself: {cycle}")
    return [*_read_layers(base_path, chain), (source, data)]


def _show(value: Any, limit: int = 60) -> str:
    text = "null" if value is None else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _split_optional(tp: Any) -> tuple[Any, bool]:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0], len(args) < len(typing.get_args(tp))
    return tp, False


def _type_name(tp: Any) -> str:
    inner, optional = _split_optional(tp)
    origin, args = typing.get_origin(inner), typing.get_args(inner)
    if origin is list:
        name = f"list of {_type_name(args[0])}"
    elif origin is dict:
        name = f"mapping of str to {_type_name(args[1])}"
    elif dataclasses.is_dataclass(inner):
        name = f"mapping ({inner.__name__})"
    else:
        name = inner.__name__
    return f"{name} or null" if optional else name


def _key(prefix: str, seg: str | int) -> str:
    """The dotted key of ``seg`` below ``prefix``: ``a.b``, ``a[0]``, or ``seg`` at the top."""
    if isinstance(seg, int):
        return f"{prefix}[{seg}]"
    return f"{prefix}.{seg}" if prefix else seg


def _unknown_key(source: str, prefix: str, key: str, valid: Sequence[str]) -> ConfigError:
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    if close:
        hint = f"did you mean '{_key(prefix, close[0])}'?"
    else:
        hint = f"valid keys here: {', '.join(valid)}"
    return ConfigError(source, None, f"unknown key '{_key(prefix, key)}' ({hint})")


#: The YAML values each scalar schema type accepts (converted to that type).
_SCALARS: dict[type, tuple[type, ...]] = {
    bool: (bool,),
    int: (int,),
    float: (int, float),
    str: (str, int, float),
}


def _check(value: Any, tp: Any, key: str, source: str) -> Any:
    """``value`` checked against the schema type ``tp``; numbers in str or float fields coerced."""
    inner, optional = _split_optional(tp)
    if value is None:
        if optional:
            return None
        raise ConfigError(source, key or None, f"expected {_type_name(tp)}, got null")
    if isinstance(value, str) and "${" in value:  # OmegaConf resolves and checks it later
        return value
    origin, args = typing.get_origin(inner), typing.get_args(inner)

    def wrong() -> ConfigError:
        return ConfigError(source, key or None, f"expected {_type_name(tp)}, got {_show(value)}")

    if dataclasses.is_dataclass(inner):
        if not isinstance(value, Mapping):
            raise wrong()
        hints = _hints(inner)
        out = {}
        for k, v in value.items():
            if not isinstance(k, str) or k not in hints:
                raise _unknown_key(source, key, str(k), list(hints))
            out[k] = _check(v, hints[k], _key(key, k), source)
        return out
    if origin is list:
        if not isinstance(value, list):
            raise wrong()
        return [_check(v, args[0], _key(key, i), source) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            raise wrong()
        return {k: _check(v, args[1], f"{key}.{k}", source) for k, v in value.items()}
    if inner in _SCALARS:
        # `name: 2024` is a string in spirit; booleans are not (they were typed as such).
        if isinstance(value, bool) != (inner is bool) or not isinstance(value, _SCALARS[inner]):
            raise wrong()
        return inner(value)
    raise TypeError(f"unsupported schema type {tp!r} at {key!r}")  # a bug in the schema itself


_OVERRIDE_KEY = re.compile(r"^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*|\.\d+|\[\d+\])*$")


def _override_path(text: str) -> tuple[list[str | int], str, Any]:
    """Split ``key=value`` into key segments, the key in OmegaConf spelling, and the YAML value."""
    source = f"override '{text}'"
    if "=" not in text:
        raise ConfigError(source, None, "expected key=value (for example train.epochs=3)")
    key, raw = (part.strip() for part in text.split("=", 1))
    if not _OVERRIDE_KEY.match(key):
        raise ConfigError(source, None, f"malformed key {key!r}; use dotted names like model.grid")
    if not raw:
        raise ConfigError(source, key, "empty value; write null to unset an optional field")
    value = parse_yaml(raw, source)
    segments: list[str | int] = [
        int(s) if s.isdigit() else s for s in re.findall(r"[A-Za-z_]\w*|\d+", key)
    ]
    return segments, functools.reduce(_key, segments, ""), value


def _type_at(segments: Sequence[str | int], source: str) -> Any:
    """The schema type found by following ``segments`` down from :class:`Config`."""
    tp: Any = Config
    walked = ""
    for seg in segments:
        inner, _ = _split_optional(tp)
        origin, args = typing.get_origin(inner), typing.get_args(inner)
        if dataclasses.is_dataclass(inner) and isinstance(seg, str):
            hints = _hints(inner)
            if seg not in hints:
                raise _unknown_key(source, walked, seg, list(hints))
            tp, walked = hints[seg], _key(walked, seg)
        elif origin is list and isinstance(seg, int):
            tp, walked = args[0], _key(walked, seg)
        elif origin is dict:
            tp, walked = args[1], f"{walked}.{seg}"
        else:
            raise ConfigError(source, walked, f"has type {_type_name(tp)}; no key {seg!r} below it")
    return tp


def _check_reachable(cfg: DictConfig, segments: Sequence[str | int], source: str) -> None:
    """Fail clearly where an override reaches past a list's end or into a null section."""
    node: Any = cfg
    walked = ""
    for seg in segments[:-1]:
        walked = _key(walked, seg)
        if isinstance(node, ListConfig):
            if seg >= len(node):
                raise ConfigError(source, walked, f"out of range: the list has {len(node)} entries")
        elif seg not in node:  # a new key of a free mapping such as lr_mult
            return
        node = node[seg]
        if node is None:
            raise ConfigError(source, walked, f"is null; set it first, e.g. {walked}={{}}")
    last = segments[-1]
    if isinstance(node, ListConfig) and isinstance(last, int) and last >= len(node):
        key = _key(walked, last)
        raise ConfigError(source, key, f"out of range: the list has {len(node)} entries")


def _merge_error(source: str, exc: OmegaConfBaseException) -> ConfigError:
    key = getattr(exc, "full_key", None) or None
    if isinstance(exc, MissingMandatoryValue):
        return ConfigError(source, key, "required value not set")
    message = (getattr(exc, "msg", None) or str(exc)).splitlines()[0]
    return ConfigError(source, key, message)


def _blame(key: str | None, overrides: Sequence[tuple[str, str]], default: str) -> str:
    """The source of an invalid value: the last override touching ``key``, else the file."""
    for spelled, source in reversed(overrides):
        if key is not None and any(
            a == b or a.startswith(b + ".") or a.startswith(b + "[")
            for a, b in ((key, spelled), (spelled, key))
        ):
            return source
    return default


def _locate_invalid(node: DictConfig | ListConfig, prefix: str) -> ConfigError | None:
    """Find the innermost dataclass whose ``__post_init__`` rejects its values; key in full."""
    keys = list(node.keys()) if isinstance(node, DictConfig) else range(len(node))
    for k in keys:
        try:
            child = node[k]
        except OmegaConfBaseException:  # a missing or broken value: not what failed validation
            continue
        if isinstance(child, (DictConfig, ListConfig)):
            found = _locate_invalid(child, _key(prefix, k))
            if found is not None:
                return found
    if isinstance(node, DictConfig) and OmegaConf.get_type(node) is not dict:
        try:
            OmegaConf.to_object(node)
        except ConfigError as exc:
            return ConfigError(None, _key(prefix, exc.key), exc.message)
    return None


def config_from_dict(
    data: Mapping[str, Any] | Sequence[tuple[str, Mapping[str, Any]]],
    overrides: Sequence[str] = (),
    source: str = "<dict>",
) -> Config:
    """Build a validated :class:`Config` from plain data merged onto the schema's defaults.

    :param data: one mapping, or ``(source, mapping)`` layers merged in order (later wins).
    :param overrides: dotted ``key=value`` strings applied after every layer.
    :param source: the name errors give a single mapping.
    :raises ConfigError: naming the source and the dotted key of the first problem.
    """
    layers = [(source, data)] if isinstance(data, Mapping) else list(data)
    cfg = OmegaConf.structured(Config)
    for layer_source, mapping in layers:
        checked = _check(mapping, Config, "", layer_source)
        try:
            cfg = OmegaConf.merge(cfg, checked)
        except OmegaConfBaseException as exc:
            raise _merge_error(layer_source, exc) from None
    applied: list[tuple[str, str]] = []
    for text in overrides:
        segments, spelled, value = _override_path(text)
        override_source = f"override '{text}'"
        tp = _type_at(segments, override_source)
        _check_reachable(cfg, segments, override_source)
        applied.append((spelled, override_source))
        checked = _check(value, tp, spelled, override_source)
        try:
            OmegaConf.update(cfg, spelled, checked, merge=True)
        except OmegaConfBaseException as exc:
            raise _merge_error(override_source, exc) from None
    final_source = layers[-1][0] if layers else source
    try:
        obj = OmegaConf.to_object(cfg)
    except (ConfigError, OmegaConfBaseException) as exc:
        if isinstance(exc, ConfigError):
            error = _locate_invalid(cfg, "") or exc
        else:
            error = _merge_error(final_source, exc)
        source = _blame(error.key, applied, final_source)
        raise ConfigError(source, error.key, error.message) from None
    assert isinstance(obj, Config)
    _check_backbones(obj, applied, final_source)
    return obj


def _check_backbones(cfg: Config, applied: Sequence[tuple[str, str]], default: str) -> None:
    """Every backbone name must be one the registry builds, so that a typo fails here, naming
    its key, rather than as a bare ``KeyError`` once a network is built."""
    # the registry knows the names and what each backbone takes
    from videofocus.models.backbones import backbone_arguments, check_backbone_name

    model = cfg.model
    named = [
        ("model.glance_backbone", model.glance_backbone),
        ("model.local_backbone", model.local_backbone),
        *((f"model.options[{i}].backbone", o.backbone) for i, o in enumerate(model.options)),
    ]
    for key, name in named:
        if name is None:
            continue
        try:
            check_backbone_name(name)
        except KeyError as exc:
            raise ConfigError(_blame(key, applied, default), key, str(exc.args[0])) from None
    # knobs of some local backbones only: every glimpse backbone must take them
    local = {model.local_backbone, *(o.backbone for o in model.options if o.backbone)}
    for key, argument in (("refine_ratio", "refine_ratio"), ("sar_patch_grid", "patch_grid")):
        if getattr(model, key) is None:
            continue
        refusing = sorted(n for n in local if argument not in backbone_arguments(n))
        if refusing:
            full = f"model.{key}"
            raise ConfigError(
                _blame(full, applied, default),
                full,
                f"only SAR backbones take it; the glimpse backbone(s) {refusing} do not",
            )


def builtin_configs() -> list[str]:
    """Names of the configs that ship with videofocus (``videofocus.configs``)."""
    return sorted(p.stem for p in _builtin_folder().glob("*.yaml"))


def _builtin_folder() -> Path:
    return Path(str(resources.files("videofocus.configs")))


def resolve_config_path(name_or_path: str | Path) -> Path:
    """The YAML file a command's config argument names: a file path as it is, else a built-in
    config by name (``synthetic_tiny``, ``ablations/reward``); else a ConfigError."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    text = str(name_or_path)
    builtin = _builtin_folder() / (text if text.endswith((".yaml", ".yml")) else f"{text}.yaml")
    if not path.is_absolute() and builtin.is_file():
        return builtin
    if len(path.parts) > 1:  # a path, not a name
        raise ConfigError(text, None, "config file not found")
    names = ", ".join(builtin_configs())
    raise ConfigError(text, None, f"config file not found, nor a built-in config ({names})")


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> Config:
    """Read a YAML config (and its ``base`` chain), apply overrides, validate.

    :param path: the YAML file, or the name of a built-in config (:func:`resolve_config_path`).
    :raises ConfigError: for a missing or malformed file, an unknown key, a wrong type, an invalid
        value or a malformed override, naming the file (or override) and the key.
    """
    return config_from_dict(_read_layers(resolve_config_path(path)), overrides, source=str(path))


def config_to_dict(cfg: Config) -> dict[str, Any]:
    """The config as plain nested dicts and lists (YAML/JSON ready)."""
    return dataclasses.asdict(cfg)


def save_config(cfg: Config, path: str | Path) -> Path:
    """Write the resolved config as YAML to ``path`` (parent folders created) and return it;
    :func:`load_config` reads it back to an equal config."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(config_to_dict(cfg), sort_keys=False, default_flow_style=False)
    path.write_text(f"# resolved videofocus config: {cfg.name}\n{text}", encoding="utf-8")
    return path
