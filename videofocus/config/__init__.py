"""Typed run configuration: a dataclass schema, YAML files, dotted command-line overrides.

A config file is YAML holding any subset of :class:`Config`; what it leaves out keeps the schema's
default. A file may start from another one with a top-level ``base: other.yaml`` (a path relative
to the file), which is how paper-scale variants share most of their settings::

    base: kinetics_adafocus.yaml
    name: kinetics_adafocus_t16
    data: {frames: 16}

Overrides are ``key=value`` strings with dotted keys (``train.epochs=3``,
``model.options[0].extent=0.5``, ``model.options=[{extent: 0.25, resolution: 32}]``), the value
read as YAML; mappings merge into what is there, lists replace it.

YAML is read with YAML 1.2 scalars: only ``true``/``false`` are booleans (so ``amp: off`` is the
string ``"off"``) and ``1e-3`` is a float. Relative paths in ``data`` resolve against
``data.root``; ``data.root`` and ``train.out_dir`` resolve against the working directory.

Every problem is a :class:`ConfigError` naming the file (or the override) and the dotted key.
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
