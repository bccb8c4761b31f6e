"""Typed run configuration: a dataclass schema, YAML files, dotted command-line overrides.

A config file is YAML holding any subset of :class:`Config`; what it leaves out keeps the schema's
default. A file may start from another one with a top-level ``base: other.yaml`` (a path relative
to the file), which is how paper-scale variants share most of their settings::

    base: kinetics_adafocus.yaml
    name: kinetics_adafocus_t16
    data: {frames: 16}

Overrides from the command line are ``key=value`` strings with dotted keys
(``train.epochs=3``, ``model.options[0].extent=0.5``,
``model.options=[{extent: 0.25, resolution: 32}]``); the value is read as YAML. Mappings merge
into what is there, lists replace it.

YAML is read with YAML 1.2 scalars: only ``true``/``false`` are booleans (so ``amp: off`` is the
string ``"off"``) and ``1e-3`` is a float. Relative paths in ``data`` resolve against
``data.root``; ``data.root`` and ``train.out_dir`` resolve against the working directory.

Every problem is a :class:`ConfigError` naming the file (or the override) and the dotted key.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

__all__ = [
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


class ConfigError(ValueError):
    """A config file, override or value is wrong; names the source and the dotted key."""

    def __init__(self, source: str | None, key: str | None, message: str) -> None:
        self.source = source
        self.key = key
        self.message = message
        parts = [p for p in (source, key) if p]
        super().__init__(": ".join([*parts, message]))

    def __reduce__(self):
        return (type(self), (self.source, self.key, self.message))


def _require(ok: bool, key: str, message: str) -> None:
    # Raised from __post_init__ with the field name only; the loader adds the path to the field.
    if not ok:
        raise ConfigError(None, key, message)


def _one_of(value: str, key: str, allowed: tuple[str, ...]) -> None:
    _require(value in allowed, key, f"must be one of {list(allowed)}, got {value!r}")


# ----------------------------------------------------------------------------------- the schema


@dataclass
class SyntheticDataConfig:
    """The generated benchmark written when ``data.root`` does not hold it yet.

    Field for field the knobs of :class:`videofocus.data.synthetic.SyntheticConfig`, which
    checks them.
    """

    num_videos: int = 800  # videos in train + val together
    seed: int = 0  # generator seed: the same config writes the same videos
    width: int = 128  # frame width in pixels (even)
    height: int = 128  # frame height in pixels (even)
    object_size: int = 24  # side of every object (texture + marker frame), in pixels
    num_frames: int = 16  # frames per video
    fps: float = 25.0  # frame rate written into the files
    num_classes: int = 10  # texture classes
    num_distractors: int = 3  # objects with other marker colours and other classes' textures
    hidden_ratio: float = 0.25  # fraction of frames without the target (0 to 0.5)
    val_fraction: float = 0.25  # share of the videos in the val split
    crf: int = 16  # x264 quality; low enough for the fine texture to survive

    def __post_init__(self) -> None:
        for name in ("num_videos", "width", "height", "object_size", "num_frames"):
            _require(getattr(self, name) > 0, name, f"must be > 0, got {getattr(self, name)}")
        _require(self.num_classes >= 2, "num_classes", f"must be >= 2, got {self.num_classes}")
        _require(
            self.num_distractors >= 0,
            "num_distractors",
            f"must be >= 0, got {self.num_distractors}",
        )
        _require(
            0.0 <= self.hidden_ratio <= 0.5,
            "hidden_ratio",
            f"must be in [0, 0.5], got {self.hidden_ratio}",
        )
        _require(
            0.0 <= self.val_fraction < 1.0,
            "val_fraction",
            f"must be in [0, 1), got {self.val_fraction}",
        )


@dataclass
class DataConfig:
    """Where the videos are and how clips are sampled and decoded."""

    root: str = "data/synthetic"  # dataset folder; the files below resolve against it
    manifest: str = "manifest.jsonl"  # training manifest (JSON Lines, see data/manifest.py)
    train_split: str | None = "train"  # rows of the manifest used for training; None: all
    val_manifest: str | None = None  # validation manifest; None: `manifest` rows of val_split
    val_split: str | None = "val"  # rows used for validation; None: all rows of val_manifest
    classes: str = "classes.txt"  # class vocabulary, one name per line
    num_classes: int | None = None  # None: the number of lines of the classes file
    frames: int = 8  # T: frames sampled per clip
    sampler: str = "tsn"  # tsn: one random frame per segment | uniform | dense
    frame_size: int = 128  # short side after decoding, in pixels
    backend: str = "auto"  # decoder: auto | decord | pyav
    num_workers: int = 2  # DataLoader worker processes
    synthetic: SyntheticDataConfig | None = None  # set: generate root if missing

    def __post_init__(self) -> None:
        for name in ("root", "manifest", "classes"):
            _require(bool(getattr(self, name)), name, "must be a non-empty path")
        _require(self.frames > 0, "frames", f"must be > 0, got {self.frames}")
        _require(self.frame_size > 0, "frame_size", f"must be > 0, got {self.frame_size}")
        _require(self.num_workers >= 0, "num_workers", f"must be >= 0, got {self.num_workers}")
        _one_of(self.sampler, "sampler", ("tsn", "uniform", "dense"))
        _one_of(self.backend, "backend", ("auto", "decord", "pyav"))
        if self.num_classes is not None:
            _require(self.num_classes >= 2, "num_classes", f"must be >= 2, got {self.num_classes}")
            if self.synthetic is not None:
                _require(
                    self.num_classes == self.synthetic.num_classes,
                    "num_classes",
                    f"is {self.num_classes} but synthetic.num_classes is "
                    f"{self.synthetic.num_classes}",
                )

    def resolve(self, path: str) -> Path:
        """A data path (``manifest``, ``classes``, ...) resolved against :attr:`root`."""
        return Path(self.root) / path


@dataclass
class GlimpseOptionConfig:
    """One way of looking closely: a square crop of the frame, resized for the local encoder."""

    extent: float  # crop side as a fraction of the frame's short side; 1.0 = whole frame
    resolution: int  # side, in pixels, the crop is resized to
    backbone: str | None = None  # None: model.local_backbone

    def __post_init__(self) -> None:
        _require(0.0 < self.extent <= 1.0, "extent", f"must be in (0, 1], got {self.extent}")
        _require(self.resolution > 0, "resolution", f"must be > 0, got {self.resolution}")
        _require(self.backbone != "", "backbone", "must be a name or null")


@dataclass
class ModelConfig:
    """The networks: glance encoder, local encoder, glimpse options, aggregator, policy sizes."""

    glance_backbone: str = "mobilenet_v2"  # GlobalEncoder backbone (create_backbone name)
    glance_resolution: int = 96  # side every frame is resized to for the glance
    glance_width_mult: float | None = None  # None: the backbone's default width
    local_backbone: str = "resnet50"  # LocalEncoder backbone
    local_width_mult: float | None = None  # None: the backbone's default width
    local_feature_dim: int | None = None  # common glimpse feature width; None: the backbones'
    options: list[GlimpseOptionConfig] = field(
        default_factory=lambda: [GlimpseOptionConfig(extent=0.5, resolution=112)]
    )  # the K glimpse options; action option 0 is "skip"
    grid: int = 7  # G: glimpse centres form a G x G grid
    hidden: int = 1024  # Aggregator GRU hidden size
    glance_pretrained: str | None = None  # local weights file for the glance backbone
    local_pretrained: str | None = None  # local weights file for the local backbone
    policy_channels: int = 64  # policy's 1x1 conv channels over glance maps
    policy_hidden: int = 256  # width of the policy's glance features (Linear after the conv)

    def __post_init__(self) -> None:
        for name in ("glance_backbone", "local_backbone"):
            _require(bool(getattr(self, name)), name, "must be a backbone name")
        for name in ("glance_resolution", "grid", "hidden", "policy_channels", "policy_hidden"):
            _require(getattr(self, name) > 0, name, f"must be > 0, got {getattr(self, name)}")
        for name in ("glance_width_mult", "local_width_mult"):
            value = getattr(self, name)
            _require(value is None or value > 0, name, f"must be > 0 or null, got {value}")
        _require(
            self.local_feature_dim is None or self.local_feature_dim > 0,
            "local_feature_dim",
            f"must be > 0 or null, got {self.local_feature_dim}",
        )
        _require(len(self.options) > 0, "options", "needs at least one glimpse option")


@dataclass
class OptimConfig:
    """Optimiser and learning-rate schedule."""

    name: str = "sgd"  # sgd | adamw
    lr: float = 0.01  # base learning rate for the global batch size
    momentum: float = 0.9  # SGD momentum (ignored by adamw)
    weight_decay: float = 1e-4  # decoupled for adamw, L2 for sgd
    schedule: str = "cosine"  # cosine | constant (after warm-up)
    warmup_epochs: float = 0.0  # linear warm-up length, may be fractional
    lr_mult: dict[str, float] = field(default_factory=dict)  # module name -> lr factor; 0 freezes
    grad_accum: int = 1  # micro-batches per optimiser step
    clip_grad: float | None = None  # max global gradient norm; None: no clipping

    def __post_init__(self) -> None:
        _one_of(self.name, "name", ("sgd", "adamw"))
        _one_of(self.schedule, "schedule", ("cosine", "constant"))
        _require(self.lr > 0, "lr", f"must be > 0, got {self.lr}")
        _require(0.0 <= self.momentum < 1.0, "momentum", f"must be in [0, 1), got {self.momentum}")
        _require(self.weight_decay >= 0, "weight_decay", f"must be >= 0, got {self.weight_decay}")
        _require(
            self.warmup_epochs >= 0, "warmup_epochs", f"must be >= 0, got {self.warmup_epochs}"
        )
        for module, mult in self.lr_mult.items():
            _require(mult >= 0, f"lr_mult.{module}", f"must be >= 0, got {mult}")
        _require(self.grad_accum >= 1, "grad_accum", f"must be >= 1, got {self.grad_accum}")
        _require(
            self.clip_grad is None or self.clip_grad > 0,
            "clip_grad",
            f"must be > 0 or null, got {self.clip_grad}",
        )


@dataclass
class TrainConfig:
    """The supervised stages (warm-up and fine-tune): loop length, batching, precision, outputs."""

    epochs: int = 10  # passes over the training manifest
    batch_size: int = 32  # global batch (all processes together), in clips
    amp: str = "auto"  # auto: bf16 where the device supports it | bf16 | off
    seed: int = 0  # seeds python, numpy and torch (offset by rank under DDP)
    out_dir: str = "runs/${name}"  # the run folder: one sub-folder per stage
    log_every: int = 20  # optimiser steps between logged scalars
    checkpoint_every: int = 1  # epochs between checkpoints
    eval_every: int = 1  # epochs between validation passes (the last epoch is always evaluated)
    freeze_bn: bool = False  # BatchNorm in eval mode (TSN's partial BN): batch-size independent
    device: str = "auto"  # auto: CUDA when available, else CPU | cpu | cuda | cuda:N
    optim: OptimConfig = field(default_factory=OptimConfig)  # optimiser and schedule
    # warm-up starts its glance and local encoders from this checkpoint: "dense" (the dense
    # baseline of this run, i.e. AdaFocus's stage-0 CNN training on whole frames), a path, or None
    warmup_init: str | None = None
    finetune_local: bool = True  # fine-tune stage also trains the local encoder (else frozen)
    finetune_epochs: int | None = None  # epochs of the fine-tune stage; None: `epochs`
    # glimpse option (1..K) of the differentiable (AdaFocusV2-style) baseline's policy; that
    # stage trains as long as the fine-tune stage
    differentiable_option: int = 1

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "log_every", "checkpoint_every", "eval_every"):
            _require(getattr(self, name) > 0, name, f"must be > 0, got {getattr(self, name)}")
        _require(
            self.finetune_epochs is None or self.finetune_epochs > 0,
            "finetune_epochs",
            f"must be > 0 or null, got {self.finetune_epochs}",
        )
        _one_of(self.amp, "amp", ("auto", "bf16", "off"))
        _require(bool(self.out_dir), "out_dir", "must be a non-empty path")
        _require(
            self.differentiable_option >= 1,
            "differentiable_option",
            f"must be >= 1, got {self.differentiable_option}",
        )
        _require(
            self.optim.warmup_epochs <= self.epochs,
            "optim.warmup_epochs",
            f"is {self.optim.warmup_epochs}, longer than training ({self.epochs} epochs)",
        )


@dataclass
class PolicyConfig:
    """The reinforcement-learning stage: PPO on FocusVecEnv (stable-baselines3 names)."""

    algo: str = "recurrent_ppo"  # recurrent_ppo (sb3-contrib) | ppo
    total_timesteps: int = 100_000  # environment steps (one step = one frame of one video)
    n_envs: int = 16  # videos stepped together
    n_steps: int = 64  # steps per environment per rollout
    batch_size: int = 256  # PPO minibatch size
    n_epochs: int = 4  # PPO passes over each rollout
    learning_rate: float = 3e-4  # Adam learning rate of the policy
    gamma: float = 0.99  # discount factor
    gae_lambda: float = 0.95  # GAE smoothing
    clip_range: float = 0.2  # PPO ratio clipping
    ent_coef: float = 0.01  # entropy bonus, keeps the policy exploring glimpse positions
    lstm_hidden: int = 256  # recurrent policy state size
    net_arch: list[int] = field(default_factory=list)  # Tanh MLP after features/LSTM (pi and vf)
    reward: str = "adafocus"  # adafocus | confidence_gain | confidence
    cost_lambda: float = 0.0  # reward penalty x glimpse MACs / dearest option's (skip: 0)
    allow_skip: bool = True  # option 0 (skip the frame) is available to the policy
    seed: int = 0  # seed of the environments and the policy
    obs_channels: int = 8  # glance-map channels the policy observes (fixed PCA projection)
    projection_videos: int = 128  # training videos whose glance maps fit that projection
    cache_local: bool = True  # memoise glimpse features per (video, frame, option, cell)
    cache_dir: str | None = None  # decoded frames + glance features on disk; None: in memory

    def __post_init__(self) -> None:
        _one_of(self.algo, "algo", ("recurrent_ppo", "ppo"))
        _one_of(self.reward, "reward", ("adafocus", "confidence_gain", "confidence"))
        for name in ("total_timesteps", "n_envs", "n_steps", "batch_size", "n_epochs"):
            _require(getattr(self, name) > 0, name, f"must be > 0, got {getattr(self, name)}")
        for name in ("learning_rate", "clip_range", "lstm_hidden", "obs_channels"):
            _require(getattr(self, name) > 0, name, f"must be > 0, got {getattr(self, name)}")
        _require(0.0 < self.gamma <= 1.0, "gamma", f"must be in (0, 1], got {self.gamma}")
        _require(
            0.0 <= self.gae_lambda <= 1.0, "gae_lambda", f"must be in [0, 1], got {self.gae_lambda}"
        )
        _require(self.ent_coef >= 0, "ent_coef", f"must be >= 0, got {self.ent_coef}")
        _require(self.cost_lambda >= 0, "cost_lambda", f"must be >= 0, got {self.cost_lambda}")
        _require(
            self.projection_videos > 0,
            "projection_videos",
            f"must be > 0, got {self.projection_videos}",
        )
        _require(self.cache_dir != "", "cache_dir", "must be a path or null")
        for i, width in enumerate(self.net_arch):
            _require(width > 0, f"net_arch[{i}]", f"must be > 0, got {width}")
        rollout = self.n_envs * self.n_steps
        _require(
            self.batch_size <= rollout,
            "batch_size",
            f"is {self.batch_size}, larger than a rollout (n_envs * n_steps = {rollout})",
        )


@dataclass
class ExitConfig:
    """Early exit: confidence thresholds per step, or a budget to calibrate them for."""

    thresholds: list[float] | None = None  # one per step (or one for all); None: no early exit
    budget_gmacs: float | None = None  # calibrate thresholds to this mean cost per video

    def __post_init__(self) -> None:
        if self.thresholds is not None:
            _require(len(self.thresholds) > 0, "thresholds", "must hold values or be null")
            for i, t in enumerate(self.thresholds):
                _require(0.0 <= t <= 1.0, f"thresholds[{i}]", f"must be in [0, 1], got {t}")
        _require(
            self.budget_gmacs is None or self.budget_gmacs > 0,
            "budget_gmacs",
            f"must be > 0 or null, got {self.budget_gmacs}",
        )


@dataclass
class Config:
    """Everything one run needs; saved as YAML beside the run's outputs."""

    name: str = "videofocus"  # run name, used for the run folder
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    exit: ExitConfig = field(default_factory=ExitConfig)

    def __post_init__(self) -> None:
        _require(bool(self.name), "name", "must be non-empty")
        # YAML resolves the ${name} default itself; this covers configs built in Python.
        self.train.out_dir = self.train.out_dir.replace("${name}", self.name)
        _require(
            self.train.differentiable_option <= len(self.model.options),
            "train.differentiable_option",
            f"is {self.train.differentiable_option} but model.options has "
            f"{len(self.model.options)} entries",
        )
        thresholds = self.exit.thresholds
        if thresholds is not None:
            _require(
                len(thresholds) in (1, self.data.frames),
                "exit.thresholds",
                f"has {len(thresholds)} values; expected 1 or one per frame "
                f"(data.frames = {self.data.frames})",
            )


# ---------------------------------------------------------------------------------- YAML reading

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


def _parse_yaml(text: str, source: str) -> Any:
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
    data = _parse_yaml(text, source)
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
    parents = _read_layers(base_path, chain)
    return [*parents, (source, data)]


# ---------------------------------------------------------------------------- type checking


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


def _is_interpolation(value: Any) -> bool:
    # OmegaConf resolves "${other.key}" later and checks the resolved value's type itself.
    return isinstance(value, str) and "${" in value


def _unknown_key(source: str, prefix: str, key: str, valid: Sequence[str]) -> ConfigError:
    full = f"{prefix}.{key}" if prefix else key
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    if close:
        hint = f"did you mean '{prefix + '.' if prefix else ''}{close[0]}'?"
    else:
        hint = f"valid keys here: {', '.join(valid)}"
    return ConfigError(source, None, f"unknown key '{full}' ({hint})")


def _check(value: Any, tp: Any, key: str, source: str) -> Any:
    """``value`` checked against the schema type ``tp``; numbers in str or float fields coerced."""
    inner, optional = _split_optional(tp)
    if value is None:
        if optional:
            return None
        raise ConfigError(source, key or None, f"expected {_type_name(tp)}, got null")
    if _is_interpolation(value):
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
            out[k] = _check(v, hints[k], f"{key}.{k}" if key else k, source)
        return out
    if origin is list:
        if not isinstance(value, list):
            raise wrong()
        return [_check(v, args[0], f"{key}[{i}]", source) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            raise wrong()
        return {k: _check(v, args[1], f"{key}.{k}", source) for k, v in value.items()}
    if inner is bool:
        if not isinstance(value, bool):
            raise wrong()
        return value
    if inner is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong()
        return value
    if inner is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise wrong()
        return float(value)
    if inner is str:
        # `name: 2024` is a string in spirit; booleans are not (they were typed as such).
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise wrong()
        return str(value)
    raise TypeError(f"unsupported schema type {tp!r} at {key!r}")  # a bug in the schema itself


# -------------------------------------------------------------------------------- overrides

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
    value = _parse_yaml(raw, source)
    segments: list[str | int] = [
        int(s) if s.isdigit() else s for s in re.findall(r"[A-Za-z_]\w*|\d+", key)
    ]
    spelled = "".join(
        f"[{s}]" if isinstance(s, int) else (f".{s}" if i else s) for i, s in enumerate(segments)
    )
    return segments, spelled, value


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
            tp = hints[seg]
            walked = f"{walked}.{seg}" if walked else seg
        elif origin is list and isinstance(seg, int):
            tp, walked = args[0], f"{walked}[{seg}]"
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
        walked = (
            f"{walked}[{seg}]" if isinstance(seg, int) else (f"{walked}.{seg}" if walked else seg)
        )
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
        key = f"{walked}[{last}]"
        raise ConfigError(source, key, f"out of range: the list has {len(node)} entries")


# ------------------------------------------------------------------------------- public API


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
            path = f"{prefix}[{k}]" if isinstance(k, int) else (f"{prefix}.{k}" if prefix else k)
            found = _locate_invalid(child, path)
            if found is not None:
                return found
    if isinstance(node, DictConfig) and OmegaConf.get_type(node) is not dict:
        try:
            OmegaConf.to_object(node)
        except ConfigError as exc:
            return ConfigError(None, f"{prefix}.{exc.key}" if prefix else exc.key, exc.message)
    return None


def config_from_dict(
    data: Mapping[str, Any] | Sequence[tuple[str, Mapping[str, Any]]],
    overrides: Sequence[str] = (),
    source: str = "<dict>",
) -> Config:
    """Build a validated :class:`Config` from plain data merged onto the schema's defaults.

    :param data: one mapping, or ``(source, mapping)`` layers merged in order (later wins).
    :param overrides: dotted ``key=value`` strings applied after every layer.
    :param source: name used in error messages for a single mapping and for value checks.
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
    except ConfigError as exc:
        located = _locate_invalid(cfg, "") or exc
        source = _blame(located.key, applied, final_source)
        raise ConfigError(source, located.key, located.message) from None
    except OmegaConfBaseException as exc:
        error = _merge_error(final_source, exc)
        source = _blame(error.key, applied, final_source)
        raise ConfigError(source, error.key, error.message) from None
    assert isinstance(obj, Config)
    return obj


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> Config:
    """Read a YAML config (and its ``base`` chain), apply overrides, validate.

    :param path: the YAML file.
    :param overrides: dotted ``key=value`` strings, e.g. ``["train.epochs=3"]``.
    :returns: a :class:`Config` dataclass instance.
    :raises ConfigError: for a missing or malformed file, an unknown key, a wrong type, an invalid
        value or a malformed override; the message names the file (or override) and the key.
    """
    return config_from_dict(_read_layers(Path(path)), overrides, source=str(path))


def config_to_dict(cfg: Config) -> dict[str, Any]:
    """The config as plain nested dicts and lists (YAML/JSON ready)."""
    return dataclasses.asdict(cfg)


def save_config(cfg: Config, path: str | Path) -> Path:
    """Write the resolved config as YAML (what :func:`load_config` reads back to an equal config).

    :param cfg: the config to save.
    :param path: the file to write; missing parent folders are created.
    :returns: the path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(config_to_dict(cfg), sort_keys=False, default_flow_style=False)
    path.write_text(f"# resolved videofocus config: {cfg.name}\n{text}", encoding="utf-8")
    return path
