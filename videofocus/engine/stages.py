"""What differs between the supervised stages: model, glimpse actions, loss, trainable parts.

The shared loop (:mod:`videofocus.engine.train_loop`) handles data, optimisation, DDP, logging
and checkpoints; a :class:`SupervisedStage` only says what one stage does with a batch.

- ``warmup``: FocusNet with *random* glimpses (AdaFocus stage 1);
- ``dense``: the baseline whose local encoder sees every whole frame at full resolution;
- ``glance_only``: the baseline that never looks closer than the glance;
- ``finetune``: the warm-up model trained further on the learned policy's glimpses (AdaFocus
  stage 3): a :class:`PolicyFocusNet` whose frozen policy chooses the glimpses from the model's
  own glance;
- ``differentiable``: the non-RL baseline (AdaFocusV2-style): the warm-up model trained as long
  as ``finetune`` together with a :class:`~videofocus.policy.differentiable.
  DifferentiableGlimpsePolicy` whose continuous centres (option ``train.differentiable_option``)
  the loss trains through a differentiable crop.

A stage's ``actions`` callable sees sample ids, not frames, so the finetune stage's actions
are :func:`policy_chooses` placeholders and the model asks its policy inside ``forward``, after
the glance it computes anyway.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from videofocus.config import Config
from videofocus.models import FocusNet, FocusOutput, GlanceOutput, dense_actions, skip_actions
from videofocus.policy.heuristics import GlimpsePolicy

#: The option value of :func:`policy_chooses`: "the model's own policy picks this glimpse".
POLICY_CHOOSES = -1


log = logging.getLogger(__name__)


def random_glimpse_actions(
    num_options: int,
    grid: int,
    sample_ids: torch.Tensor,
    steps: int,
    seed: int,
    epoch: int,
    allow_skip: bool = False,
    skip_rate: float = 0.0,
) -> torch.Tensor:
    """Uniformly random actions ``[B, T, 3]``, drawn per sample from (seed, epoch, sample id).

    ``epoch`` may be -1 (evaluation: the same glimpses every time). ``skip_rate``: probability
    that a step skips its frame (option 0) instead, so that the aggregator learns what a skipped
    step looks like before a policy that may skip is trained on it.

    Seeding per sample (not per batch) makes the glimpses independent of batch composition, so
    one process and N DDP processes see the same glimpse for the same video.
    """
    low = 0 if allow_skip else 1
    out = torch.empty(len(sample_ids), steps, 3, dtype=torch.long)
    for row, sid in enumerate(sample_ids.tolist()):
        entropy = np.random.SeedSequence([seed, epoch + 1, int(sid)]).generate_state(1)[0]
        g = torch.Generator().manual_seed(int(entropy))
        out[row, :, 0] = torch.randint(low, num_options + 1, (steps,), generator=g)
        out[row, :, 1:] = torch.randint(0, grid, (steps, 2), generator=g)
        if skip_rate > 0:  # drawn last: skip_rate 0 keeps the glimpses of earlier versions
            out[row, :, 0] *= (torch.rand(steps, generator=g) >= skip_rate).long()
    return out


def focus_loss(out: FocusOutput, labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """Cross-entropy on fused logits at every step, plus glance-only and glimpse-only heads.

    Every step's fused logits are supervised because every step is a possible exit.
    """
    b, t, c = out.logits.shape
    per_step = labels.repeat_interleave(t)
    fused = F.cross_entropy(out.logits.reshape(b * t, c).float(), per_step)
    glance = F.cross_entropy(out.glance_logits.reshape(b * t, c).float(), per_step)
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


def fused_only_loss(
    out: FocusOutput, labels: torch.Tensor
) -> tuple[torch.Tensor, dict[str, float]]:
    """Cross-entropy on the fused logits at every step (the glance-only baseline's loss)."""
    b, t, c = out.logits.shape
    loss = F.cross_entropy(out.logits.reshape(b * t, c).float(), labels.repeat_interleave(t))
    return loss, {"loss": loss.item()}


def policy_chooses(batch: int, steps: int) -> torch.Tensor:
    """Placeholder actions ``[B, T, 3]`` (all :data:`POLICY_CHOOSES`) telling a
    :class:`PolicyFocusNet` to take its policy's glimpses."""
    return torch.full((batch, steps, 3), POLICY_CHOOSES, dtype=torch.long)


class PolicyFocusNet(FocusNet):
    """A FocusNet whose glimpses a frozen :class:`GlimpsePolicy` chooses from the model's glance.

    The glance encoder is frozen too (the policy was trained on its features): it runs without
    gradients and, like the policy, stays in eval mode under ``train()`` so BatchNorm statistics
    do not drift. With ``train_local=False`` the local encoder is frozen the same way; the
    aggregator always trains. The policy's weights are part of the ``state_dict`` (``policy.*``),
    so a checkpoint of this model is self-contained.

    :param net: the model whose modules this one takes over (e.g. the warm-up model).
    :param policy: the glimpse policy, e.g. a deterministic
        :class:`~videofocus.policy.LearnedGlimpsePolicy`.
    :param train_local: whether the local encoder keeps training.
    """

    def __init__(self, net: FocusNet, policy: GlimpsePolicy, train_local: bool = True) -> None:
        super().__init__(
            net.global_encoder,
            net.local_encoder,
            net.aggregator,
            net.options,
            net.grid,
            net.cropper,
        )
        if policy.options != self.options or policy.grid != self.grid:
            raise ValueError("the policy acts on other glimpse options or another grid")
        self.policy = policy
        self.freeze("policy", "global_encoder", *(() if train_local else ("local_encoder",)))

    @torch.no_grad()
    def choose(self, glance: GlanceOutput) -> torch.Tensor:
        """The policy's actions ``[B, T, 3]`` for a glance (in float32, outside autocast, so a
        bf16 run takes the glimpses the policy was trained to take)."""
        with torch.autocast(glance.maps.device.type, enabled=False):
            return self.policy.act(GlanceOutput(glance.maps.float(), glance.pooled.float()))

    def forward(
        self, frames: torch.Tensor, actions: torch.Tensor, hidden: torch.Tensor | None = None
    ) -> FocusOutput:
        """Glance, the policy's glimpses (where ``actions`` is :func:`policy_chooses`) or the
        given ones, and fused logits of frames ``[B, T, 3, H, W]``."""
        with torch.no_grad():
            glance = self.glance(frames)
        chosen = actions[..., 0] == POLICY_CHOOSES
        if bool(chosen.all()):
            actions = self.choose(glance)
        elif bool(chosen.any()):
            raise ValueError("actions mix policy_chooses placeholders with given glimpses")
        return self.forward_from_glance(frames, glance, actions, hidden)


@dataclass(frozen=True)
class SupervisedStage:
    """One supervised stage: how to build its model, act, and score a batch."""

    name: str
    build_model: Callable[[Config, int], FocusNet]
    actions: Callable[[FocusNet, torch.Tensor, int, int, bool], torch.Tensor]
    loss: Callable[[FocusOutput, torch.Tensor], tuple[torch.Tensor, dict[str, float]]]


def _warmup_actions(
    model: FocusNet,
    ids: torch.Tensor,
    steps: int,
    epoch: int,
    train: bool,
    seed: int = 0,
    skip_rate: float = 0.0,
) -> torch.Tensor:
    # evaluation uses a fixed epoch so validation glimpses do not change between epochs
    return random_glimpse_actions(
        model.num_options,
        model.grid,
        ids,
        steps,
        seed,
        epoch if train else -1,
        skip_rate=skip_rate,
    )


def build_policy_focusnet(
    cfg: Config,
    num_classes: int,
    policy_dir: str | Path,
    init_from: str | Path | None = None,
) -> PolicyFocusNet:
    """The finetune stage's model: FocusNet + the learned policy of ``policy_dir``.

    :param cfg: the run config (``train.finetune_local`` says whether the local encoder trains).
    :param num_classes: output classes.
    :param policy_dir: a policy-stage checkpoint folder (``<out_dir>/policy/final``).
    :param init_from: a FocusNet checkpoint to start from (``<out_dir>/warmup/final``); None
        leaves the FocusNet at its initialisation (e.g. to load a finetune checkpoint into).
    """
    from videofocus.engine.checkpoint import load_checkpoint
    from videofocus.engine.factory import build_focusnet
    from videofocus.engine.policy_stage import load_learned_policy

    net = build_focusnet(cfg, num_classes)
    if init_from is not None:
        net.load_state_dict(load_checkpoint(init_from, load_trainer=False).model)
    policy = load_learned_policy(cfg, policy_dir)
    return PolicyFocusNet(net, policy, train_local=cfg.train.finetune_local)


def build_finetune_focusnet(
    cfg: Config, checkpoint: str | Path, meta: dict[str, Any]
) -> tuple[PolicyFocusNet, str]:
    """The shape of a finetune checkpoint's model (load its weights into it) and the algorithm
    of its policy.

    The checkpoint's meta records its policy's shape (``network``, ``projection``, ``algo``), so
    the folder needs no other; one written before it did takes the shape from its run's
    ``policy/final`` (the folder's grandparent's).

    :param cfg: the run config.
    :param checkpoint: the finetune checkpoint folder.
    :param meta: its ``meta.json``.
    :raises CheckpointError: for an older checkpoint whose run has no ``policy/final``.
    """
    from videofocus.engine.checkpoint import CheckpointError, load_checkpoint
    from videofocus.engine.factory import build_focusnet
    from videofocus.engine.policy_stage import learned_policy_from_meta

    num_classes = int(meta["num_classes"])
    if "network" in meta:
        policy = learned_policy_from_meta(cfg, meta)
        net = PolicyFocusNet(build_focusnet(cfg, num_classes), policy, cfg.train.finetune_local)
        return net, str(meta["algo"])
    policy_dir = Path(checkpoint).resolve().parent.parent / "policy" / "final"
    if not policy_dir.is_dir():
        raise CheckpointError(
            f"{checkpoint}: this finetune checkpoint predates self-contained ones and needs its "
            f"run's policy checkpoint, {policy_dir}, which does not exist"
        )
    algo = load_checkpoint(policy_dir, load_trainer=False).meta.get("algo", "recurrent_ppo")
    return build_policy_focusnet(cfg, num_classes, policy_dir), algo


def build_differentiable_focusnet(
    cfg: Config, num_classes: int, init_from: str | Path | None = None
) -> FocusNet:
    """The ``differentiable`` stage's model: FocusNet + a fresh continuous-centre policy.

    :param cfg: the run config (``train.differentiable_option``, ``train.finetune_local``,
        ``model.policy_channels`` / ``model.policy_hidden`` size the policy).
    :param num_classes: output classes.
    :param init_from: a FocusNet checkpoint to start from (``<out_dir>/warmup/final``); None
        leaves it at its initialisation (e.g. to load a ``differentiable`` checkpoint into).
    """
    from videofocus.engine.checkpoint import load_checkpoint
    from videofocus.engine.factory import build_focusnet, glance_map_hw
    from videofocus.policy.differentiable import DifferentiableFocusNet, DifferentiableGlimpsePolicy

    net = build_focusnet(cfg, num_classes)
    if init_from is not None:
        net.load_state_dict(load_checkpoint(init_from, load_trainer=False).model)
    option = cfg.train.differentiable_option
    policy = DifferentiableGlimpsePolicy(
        net.options,
        net.grid,
        option,
        net.global_encoder.num_features,
        glance_map_hw(net),
        channels=cfg.model.policy_channels,
        hidden=cfg.model.policy_hidden,
    )
    glimpse = net.options[option - 1]
    # enough bilinear samples per output pixel to average every input pixel a crop covers
    supersample = max(1, round(glimpse.extent * cfg.data.frame_size / glimpse.resolution))
    return DifferentiableFocusNet(net, policy, cfg.train.finetune_local, supersample)


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
    from videofocus.engine.checkpoint import load_checkpoint

    source = load_checkpoint(path, load_trainer=False).model
    own = net.state_dict()
    take = {
        k: v
        for k, v in source.items()
        if k.startswith(("global_encoder.", "local_encoder."))
        and k in own
        and own[k].shape == v.shape
    }
    wanted = [k for k in own if k.startswith(("global_encoder.", "local_encoder."))]
    if not take:
        raise ValueError(f"{path}: no encoder weight matches this model; is it the same config?")
    net.load_state_dict({**own, **take})
    missing = sorted(set(wanted) - set(take))
    if missing:
        log.warning(
            "%s: %d encoder tensors kept their initialisation: %s", path, len(missing), missing[:5]
        )
    return net


def create_stage(name: str, cfg: Config) -> SupervisedStage:
    """The stage called ``name`` (``warmup``, ``dense``, ``glance_only``, ``finetune`` or
    ``differentiable``).

    ``finetune`` starts from ``<out_dir>/warmup/final`` and takes the glimpses of the policy in
    ``<out_dir>/policy/final``; both must exist when its model is built.
    """
    from videofocus.engine.factory import build_dense_baseline, build_focusnet

    seed = cfg.train.seed
    if name == "warmup":
        return SupervisedStage(
            "warmup",
            lambda c, n: _init_encoders(build_focusnet(c, n), warmup_init_path(c)),
            lambda m, ids, t, e, tr: _warmup_actions(
                m, ids, t, e, tr, seed, cfg.train.warmup_skip_rate
            ),
            focus_loss,
        )
    if name == "dense":
        return SupervisedStage(
            "dense",
            lambda c, n: build_dense_baseline(c, n),
            lambda m, ids, t, e, tr: dense_actions(len(ids), t),
            focus_loss,
        )
    if name == "glance_only":
        return SupervisedStage(
            "glance_only",
            lambda c, n: build_focusnet(c, n),
            lambda m, ids, t, e, tr: skip_actions(len(ids), t),
            fused_only_loss,
        )
    if name == "finetune":
        out_dir = Path(cfg.train.out_dir)
        return SupervisedStage(
            "finetune",
            lambda c, n: build_policy_focusnet(
                c, n, out_dir / "policy" / "final", init_from=out_dir / "warmup" / "final"
            ),
            lambda m, ids, t, e, tr: policy_chooses(len(ids), t),
            focus_loss,
        )
    if name == "differentiable":
        out_dir = Path(cfg.train.out_dir)
        return SupervisedStage(
            "differentiable",
            lambda c, n: build_differentiable_focusnet(c, n, out_dir / "warmup" / "final"),
            lambda m, ids, t, e, tr: policy_chooses(len(ids), t),
            focus_loss,
        )
    raise ValueError(f"unknown supervised stage {name!r}; choose one of {list(SUPERVISED_STAGES)}")


SUPERVISED_STAGES = ("warmup", "dense", "glance_only", "finetune", "differentiable")
