"""What differs between the supervised stages: model, glimpse actions, loss, trainable parts.

The shared loop (:mod:`videofocus.engine.train_loop`) handles data, optimisation, DDP, logging
and checkpoints; a :class:`SupervisedStage` only says what one stage does with a batch.

- ``warmup``: FocusNet with *random* glimpses (AdaFocus stage 1);
- ``dense``: the baseline whose local encoder sees every whole frame at full resolution;
- ``glance_only``: the baseline that never looks closer than the glance.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from videofocus.config import Config
from videofocus.models import FocusNet, FocusOutput, dense_actions, skip_actions


def random_glimpse_actions(
    num_options: int,
    grid: int,
    sample_ids: torch.Tensor,
    steps: int,
    seed: int,
    epoch: int,
    allow_skip: bool = False,
) -> torch.Tensor:
    """Uniformly random actions ``[B, T, 3]``, drawn per sample from (seed, epoch, sample id).

    ``epoch`` may be -1 (evaluation: the same glimpses every time).

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


@dataclass(frozen=True)
class SupervisedStage:
    """One supervised stage: how to build its model, act, and score a batch."""

    name: str
    build_model: Callable[[Config, int], FocusNet]
    actions: Callable[[FocusNet, torch.Tensor, int, int, bool], torch.Tensor]
    loss: Callable[[FocusOutput, torch.Tensor], tuple[torch.Tensor, dict[str, float]]]


def _warmup_actions(
    model: FocusNet, ids: torch.Tensor, steps: int, epoch: int, train: bool, seed: int = 0
) -> torch.Tensor:
    # evaluation uses a fixed epoch so validation glimpses do not change between epochs
    return random_glimpse_actions(
        model.num_options, model.grid, ids, steps, seed, epoch if train else -1
    )


def create_stage(name: str, cfg: Config) -> SupervisedStage:
    """The stage called ``name`` (``warmup``, ``dense`` or ``glance_only``) for this config."""
    from videofocus.engine.factory import build_dense_baseline, build_focusnet

    seed = cfg.train.seed
    if name == "warmup":
        return SupervisedStage(
            "warmup",
            lambda c, n: build_focusnet(c, n),
            lambda m, ids, t, e, tr: _warmup_actions(m, ids, t, e, tr, seed),
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
    raise ValueError(f"unknown supervised stage {name!r}; choose warmup, dense or glance_only")


SUPERVISED_STAGES = ("warmup", "dense", "glance_only")
