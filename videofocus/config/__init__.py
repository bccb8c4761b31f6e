"""Typed run configuration: a dataclass schema, YAML files, dotted command-line overrides.

A config file is YAML holding any subset of :class:`Config` (the rest keeps the schema's
defaults); it may start from another one with a top-level ``base: other.yaml`` (relative to it).

Overrides are ``key=value`` strings with dotted keys (``train.epochs=3``,
``model.options[0].extent=0.5``, ``model.options=[{extent: 0.25, resolution: 32}]``), the value
read as YAML; mappings merge into what is there, lists replace it.

YAML is read with YAML 1.2 scalars (``amp: off`` is the string ``"off"``, ``1e-3`` a float).
Paths in ``data`` resolve against ``data.root``. Every problem is a :class:`ConfigError` naming
the file (or the override) and the dotted key.
"""

from videofocus.config.loader import (
    builtin_configs,
    config_from_dict,
    config_to_dict,
    load_config,
    resolve_config_path,
    save_config,
)
from videofocus.config.schema import (
    Config,
    ConfigError,
    DataConfig,
    ExitConfig,
    GlimpseOptionConfig,
    ModelConfig,
    OptimConfig,
    PolicyConfig,
    SyntheticDataConfig,
    TrainConfig,
)

__all__ = [
    "builtin_configs",
    "resolve_config_path",
    "Config",
    "ConfigError",
    "DataConfig",
    "ExitConfig",
    "GlimpseOptionConfig",
    "ModelConfig",
    "OptimConfig",
    "PolicyConfig",
    "SyntheticDataConfig",
    "TrainConfig",
    "config_from_dict",
    "config_to_dict",
    "load_config",
    "save_config",
]
