"""What differs between the supervised stages: model, glimpse actions, loss, trainable parts.

The shared loop (:mod:`videofocus.train.loop`) handles data, optimisation, DDP, logging
and checkpoints; a :class:`SupervisedStage` only says what one stage does with a batch.

- ``warmup``: FocusNet with *random* glimpses (AdaFocus stage 1);
- ``dense``: the baseline whose local encoder sees every whole frame at full resolution;
- ``glance_only``: the baseline that never looks closer than the glance;
- ``finetune``: the warm-up model trained further on the learned policy's glimpses (AdaFocus
  stage 3), a :class:`PolicyFocusNet`;
- ``differentiable``: the non-RL baseline (AdaFocusV2-style), the warm-up model trained together
  with a :class:`~videofocus.policy.differentiable.DifferentiableGlimpsePolicy` through a
  differentiable crop.

Each stage is a builder ``cfg -> SupervisedStage`` registered with :func:`register_stage` (plus
its entry in :func:`stage_reads`). A stage's ``actions`` callable sees the batch, not its frames,
so the policy stages' actions are :func:`policy_chooses` placeholders and the model asks its
policy inside ``forward``, after the glance it computes anyway.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from videofocus.artifacts.checkpoint import load_checkpoint
from videofocus.artifacts.factory import (
    build_dense_baseline,
    build_differentiable_focusnet,
    build_focusnet,
)
from videofocus.artifacts.learned_policy import load_learned_policy
from videofocus.config import Config
from videofocus.models import FocusNet, FocusOutput, dense_actions, skip_actions
from videofocus.models.glimpse import random_glimpse_actions
from videofocus.policy.focusnet import PolicyFocusNet, policy_chooses
from videofocus.registry import Registry
from videofocus.runtime import amp_precision, select_device

log = logging.getLogger(__name__)


def _step_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of logits ``[B, T, C]`` at every step against the clip labels ``[B]``."""
    b, t, c = logits.shape
    return F.cross_entropy(logits.reshape(b * t, c).float(), labels.repeat_interleave(t))


def focus_loss(out: FocusOutput, labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """Cross-entropy on fused logits at every step (every step is a possible exit), plus the
    glance-only and glimpse-only heads."""
    b, t, c = out.logits.shape
    per_step = labels.repeat_interleave(t)
    fused = _step_loss(out.logits, labels)
    glance = _step_loss(out.glance_logits, labels)
    looked = (out.option_index >= 0).reshape(-1)
    local = (
        F.cross_entropy(out.local_logits.reshape(b * t, c)[looked].float(), per_step[looked])
        if bool(looked.any())
        else out.local_logits.sum() * 0.0
    )
    loss = fused + glance + local
    return loss, {
        "loss": loss.item(),
        "loss_fused": fused.item(),
        "loss_glance": glance.item(),
        "loss_local": local.item(),
    }


def averaged_loss(out: FocusOutput, labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """:func:`focus_loss` of the pass, averaged with that of its auxiliary pass where it has one
    (AdaFocusV2's random-glimpse branch: the local network keeps learning from glimpses the
    still-untrained policy would not take)."""
    loss, parts = focus_loss(out, labels)
    if out.auxiliary is None:
        return loss, parts
    extra, _ = focus_loss(out.auxiliary, labels)
    total = (loss + extra) / 2
    return total, {**parts, "loss": total.item(), "loss_random": extra.item()}


def fused_only_loss(
    out: FocusOutput, labels: torch.Tensor
) -> tuple[torch.Tensor, dict[str, float]]:
    """Cross-entropy on the fused logits at every step (the glance-only baseline's loss)."""
    loss = _step_loss(out.logits, labels)
    return loss, {"loss": loss.item()}


@dataclass(frozen=True)
class SupervisedStage:
    """One supervised stage: how to build its model, act, and score a batch."""

    name: str
    build_model: Callable[[Config, int], FocusNet]
    #: ``(model, batch, steps, epoch, train) -> [B, T, 3]``, given the loader's batch
    actions: ActionsFn
    loss: Callable[[FocusOutput, torch.Tensor], tuple[torch.Tensor, dict[str, float]]]
    #: learning-rate factors of the stage's own modules (``train.optim.lr_mult`` overrides them)
    lr_mult: dict[str, float] = field(default_factory=dict)


ActionsFn = Callable[[FocusNet, dict[str, Any], int, int, bool], torch.Tensor]


def fixed_actions(make: Callable[[int, int], torch.Tensor]) -> ActionsFn:
    """A stage's ``actions`` that are ``make(batch, steps)`` whatever the model and epoch (e.g.
    :func:`policy_chooses`)."""
    return lambda model, batch, steps, epoch, train: make(len(batch["index"]), steps)


def build_policy_focusnet(
    cfg: Config,
    num_classes: int,
    policy_dir: str | Path,
    init_from: str | Path | None = None,
) -> PolicyFocusNet:
    """The finetune stage's model: FocusNet + the learned policy of a policy-stage checkpoint
    folder, the FocusNet loaded from the checkpoint ``init_from`` (None: left at its
    initialisation, e.g. to load a finetune checkpoint into)."""
    net = focusnet_from(cfg, num_classes, init_from)
    policy = load_learned_policy(cfg, policy_dir)
    return PolicyFocusNet(net, policy, train_local=cfg.train.finetune_local)


def focusnet_from(cfg: Config, num_classes: int, init_from: str | Path | None) -> FocusNet:
    """:func:`build_focusnet` with the weights of the checkpoint ``init_from`` (None: none)."""
    net = build_focusnet(cfg, num_classes)
    if init_from is not None:
        net.load_state_dict(load_checkpoint(init_from, load_trainer=False).model)
    return net


def warmup_init_path(cfg: Config) -> Path | None:
    """The checkpoint ``train.warmup_init`` names (``"dense"``: this run's dense baseline)."""
    init = cfg.train.warmup_init
    if init is None:
        return None
    path = Path(cfg.train.out_dir) / "dense" / "final" if init == "dense" else Path(init)
    if not path.is_dir():
        hint = "run `--stage dense` first" if init == "dense" else "check the path"
        raise FileNotFoundError(f"train.warmup_init: {path} does not exist ({hint}, or set null)")
    return path


def _init_encoders(net: FocusNet, path: Path | None) -> FocusNet:
    """Copy the glance and glimpse encoder weights of ``path`` into ``net`` (same shapes only).

    The dense baseline's local encoder read whole frames at full resolution, which is the scale
    the glimpses are read at, so its features transfer to glimpses as they are.
    """
    if path is None:
        return net
    source = load_checkpoint(path, load_trainer=False).model
    own = net.state_dict()
    wanted = [k for k in own if k.startswith(("global_encoder.", "local_encoder."))]
    take = {k: source[k] for k in wanted if k in source and source[k].shape == own[k].shape}
    if not take:
        raise ValueError(f"{path}: no encoder weight matches this model; is it the same config?")
    net.load_state_dict({**own, **take})
    missing = sorted(set(wanted) - set(take))
    if missing:
        log.warning(
            "%s: %d encoder tensors kept their initialisation: %s", path, len(missing), missing[:5]
        )
    return net


#: Builds a stage from the run config (called by :func:`create_stage`).
StageBuilder = Callable[[Config], SupervisedStage]

_STAGES: Registry[StageBuilder] = Registry("supervised stage")


def register_stage(name: str) -> Callable[[StageBuilder], StageBuilder]:
    """Decorator registering ``builder(cfg) -> SupervisedStage`` as the supervised stage ``name``
    (registration order is :data:`SUPERVISED_STAGES`' order); a name already registered is a
    ValueError."""
    return _STAGES.register(name)


def list_stages() -> list[str]:
    """Names of the registered supervised stages, in registration order."""
    return _STAGES.names()


def create_stage(name: str, cfg: Config) -> SupervisedStage:
    """The stage called ``name`` (:func:`list_stages`). ``finetune`` starts from
    ``<out_dir>/warmup/final`` and takes the glimpses of the policy in ``<out_dir>/policy/final``;
    both must exist when its model is built."""
    return _STAGES.get(name)(cfg)


@register_stage("warmup")
def _warmup_stage(cfg: Config) -> SupervisedStage:
    seed, skip_rate = cfg.train.seed, cfg.train.warmup_skip_rate

    def actions(
        model: FocusNet, batch: dict[str, Any], steps: int, epoch: int, train: bool
    ) -> torch.Tensor:
        # evaluation uses a fixed epoch so validation glimpses do not change between epochs
        return random_glimpse_actions(
            model.num_options,
            model.grid,
            batch["index"],
            steps,
            seed,
            epoch if train else -1,
            skip_rate=skip_rate,
        )

    return SupervisedStage(
        "warmup",
        lambda c, n: _init_encoders(build_focusnet(c, n), warmup_init_path(c)),
        actions,
        focus_loss,
    )


@register_stage("dense")
def _dense_stage(cfg: Config) -> SupervisedStage:
    return SupervisedStage("dense", build_dense_baseline, fixed_actions(dense_actions), focus_loss)


@register_stage("glance_only")
def _glance_only_stage(cfg: Config) -> SupervisedStage:
    return SupervisedStage(
        "glance_only", build_focusnet, fixed_actions(skip_actions), fused_only_loss
    )


@register_stage("finetune")
def _finetune_stage(cfg: Config) -> SupervisedStage:
    out_dir = Path(cfg.train.out_dir)
    return SupervisedStage(
        "finetune",
        lambda c, n: build_policy_focusnet(
            c, n, out_dir / "policy" / "final", init_from=out_dir / "warmup" / "final"
        ),
        fixed_actions(policy_chooses),
        focus_loss,
    )


@register_stage("differentiable")
def _differentiable_stage(cfg: Config) -> SupervisedStage:
    out_dir = Path(cfg.train.out_dir)
    return SupervisedStage(
        "differentiable",
        lambda c, n: build_differentiable_focusnet(c, n, out_dir / "warmup" / "final"),
        fixed_actions(policy_chooses),
        averaged_loss,
        {"policy": cfg.train.differentiable_policy_lr_mult},
    )


#: The built-in supervised stages, in registration order (:func:`list_stages` also sees those
#: registered later).
SUPERVISED_STAGES = tuple(_STAGES.names())


# ------------------------------------------------------------------------------ stage identity

#: ``train`` fields that only some stages read.
_FINETUNE_FIELDS = ("finetune_local", "finetune_epochs")
_WARMUP_FIELDS = ("warmup_init", "warmup_skip_rate")
_DIFFERENTIABLE_FIELDS = (
    "differentiable_option",
    "differentiable_policy_lr_mult",
    "differentiable_random_branch",
    "differentiable_blur",
    "differentiable_jitter",
    "differentiable_head",
    "differentiable_prior_scale",
    "differentiable_pixel_aligned",
)
_NOT_READ = ("out_dir", *_DIFFERENTIABLE_FIELDS, *_FINETUNE_FIELDS, *_WARMUP_FIELDS)
#: ``data`` fields only the held-out test split reads: no training choice may depend on them.
_TEST_FIELDS = ("test_manifest", "test_split")
#: ``data`` fields that change how fast clips arrive, never which clips.
_LOADING_FIELDS = ("num_workers", "frame_cache_mb")
#: ``model`` fields of the glimpses and the policy, which the dense baseline never builds (its one
#: option is the whole frame: tests/test_train_loop.py checks its weights do not change with them).
_GLIMPSE_FIELDS = ("options", "grid", "policy_channels", "policy_hidden", "pixel_aligned_glimpses")
#: ``policy`` fields added after runs were recorded, with the value every older run had: left
#: out of the identity at that value, so the stages those runs trained keep their keys.
_POLICY_ADDED = {"observe_previous_action": True}
#: The same for ``model`` fields, and for the differentiable stage's ``train`` fields.
_MODEL_ADDED = {"pixel_aligned_glimpses": False}
_DIFFERENTIABLE_ADDED = {"differentiable_pixel_aligned": False}


def stage_reads(name: str, cfg: Config) -> dict[str, Any]:
    """The part of ``cfg`` that the stage ``name`` reads itself, as plain data: two configs that
    agree on it train the same stage given the same upstream stages (whose identities whoever
    plans the runs adds), so a grid trains it once. A heuristic's fine-tune
    (``finetune_<heuristic>_o<option>``) reads what ``finetune`` reads."""
    data = {
        **_without(asdict(cfg.data), (*_TEST_FIELDS, *_LOADING_FIELDS)),
        "root": _absolute(cfg.data.root),
    }
    train = {k: v for k, v in asdict(cfg.train).items() if k not in _NOT_READ}
    train["amp"] = _precision_identity(cfg)
    model = _without_added(asdict(cfg.model), _MODEL_ADDED)
    if name == "dense":
        return {"data": data, "train": train, "model": _without(model, _GLIMPSE_FIELDS)}
    if name == "glance_only":
        return {"data": data, "train": train, "model": model}
    if name == "warmup":
        init = cfg.train.warmup_init
        train["warmup_init"] = init if init in (None, "dense") else _absolute(init)
        train["warmup_skip_rate"] = cfg.train.warmup_skip_rate
        return {"data": data, "train": train, "model": model}
    if name == "policy":
        policy = _without_added(asdict(cfg.policy), _POLICY_ADDED)
        reads = {"data": data, "model": model, "policy": policy}
        if train["amp"] == "bf16":  # the episodes' glimpse encoder; fp32 policy stages keep keys
            reads["train"] = {"amp": "bf16"}
        return reads
    finetune = {k: getattr(cfg.train, k) for k in _FINETUNE_FIELDS}
    if name == "differentiable":
        finetune.update({k: getattr(cfg.train, k) for k in _DIFFERENTIABLE_FIELDS})
        if cfg.train.differentiable_head != "saliency_prior":
            # only that head reads it; recorded stages of the other heads keep their keys
            del finetune["differentiable_prior_scale"]
        finetune = _without_added(finetune, _DIFFERENTIABLE_ADDED)
    elif name != "finetune" and not name.startswith("finetune_"):
        raise ValueError(f"unknown stage {name!r}")
    return {"data": data, "train": {**train, **finetune}, "model": model}


def _precision_identity(cfg: Config) -> str:
    """What a stage's identity records of ``train.amp``: the precision it trains in on this
    run's device, not how it was asked for: ``"bf16"``, or ``"auto"`` for fp32 (the value every
    fp32 stage recorded before ``auto`` could mean bf16 on a CPU, so those keep their keys)."""
    precision = amp_precision(select_device(cfg.train.device), cfg.train.amp)
    return "bf16" if precision == "bf16" else "auto"


def _without(fields: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if k not in names}


def _without_added(fields: dict[str, Any], added: dict[str, Any]) -> dict[str, Any]:
    """``fields`` less the later-added ones that hold the value every older record had."""
    return {k: v for k, v in fields.items() if k not in added or v != added[k]}


def _absolute(path: str | None) -> str | None:
    return None if path is None else str(Path(path).resolve())
