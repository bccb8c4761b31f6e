"""The loop every supervised stage shares: data, optimiser, schedule, AMP, DDP, logs, checkpoints.

A stage folder ``<train.out_dir>/<stage>/`` holds ``config.yaml`` (the resolved config),
``metrics.jsonl`` (one line per epoch), ``tb/`` (TensorBoard scalars), ``last/`` (the resumable
checkpoint, rewritten atomically every ``checkpoint_every`` epochs) and ``final/`` (the finished
model). Every checkpoint's meta records the class names and, for a model with a learned policy
(finetune), that policy's shape, so a checkpoint folder is usable alone, wherever it is copied.
``resume=True`` continues exactly where ``last/`` stopped — model, optimiser, scheduler, RNG
states and epoch — and a stage whose ``final/`` exists is not run again.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from videofocus.artifacts.checkpoint import (
    CheckpointMeta,
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from videofocus.artifacts.factory import resolve_num_classes
from videofocus.artifacts.learned_policy import learned_policy_meta
from videofocus.artifacts.meta import checkpoint_meta
from videofocus.config import Config, save_config
from videofocus.data.loaders import build_dataset, build_loader, ensure_dataset, frames_to_input
from videofocus.evaluation.evaluate import model_outputs
from videofocus.evaluation.metrics import topk_accuracy
from videofocus.models import FocusNet
from videofocus.models.sar import refinement_budget_loss
from videofocus.policy.heuristics import GlimpsePolicy, LearnedGlimpsePolicy, heuristic_spec
from videofocus.runtime import DistInfo, autocast_for, dist_env, init_distributed, select_device
from videofocus.train.stages import SupervisedStage


@dataclass
class StageResult:
    """Where a finished stage left its model, and its last validation metrics."""

    stage: str
    final_dir: Path
    metrics: dict[str, Any]
    seconds: float

    @classmethod
    def finished(cls, stage: str, final_dir: Path) -> StageResult:
        """The result of a stage whose ``final/`` exists already (resume, or a waiting rank)."""
        meta = load_checkpoint(final_dir, load_trainer=False).meta
        return cls(stage, final_dir, meta.metrics, 0.0)


def append_json_line(path: Path, record: dict[str, Any]) -> None:
    """Append ``record`` as one line of the JSON Lines file ``path`` (``metrics.jsonl``)."""
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")


def param_groups(model: nn.Module, lr: float, lr_mult: dict[str, float]) -> list[dict[str, Any]]:
    """One optimiser group per top-level module, at ``lr * lr_mult[name]`` (0 freezes it)."""
    children = dict(model.named_children())
    unknown = sorted(set(lr_mult) - set(children))
    if unknown:
        raise ValueError(
            f"train.optim.lr_mult names unknown modules {unknown}; have {sorted(children)}"
        )
    groups = []
    for name, module in children.items():
        params = [p for p in module.parameters() if p.requires_grad]
        mult = lr_mult.get(name, 1.0)
        if mult == 0.0:
            module.requires_grad_(False)
            continue
        if params:
            groups.append({"params": params, "lr": lr * mult, "name": name})
    return groups


def build_optimizer(
    model: nn.Module, cfg: Config, lr_mult: dict[str, float] | None = None
) -> torch.optim.Optimizer:
    """SGD (Nesterov-free, momentum) or AdamW over the model's parameter groups; ``lr_mult`` are
    the stage's own learning-rate factors per module, under the config's."""
    o = cfg.train.optim
    groups = param_groups(model, o.lr, {**(lr_mult or {}), **o.lr_mult})
    if o.name == "sgd":
        return torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
    return torch.optim.AdamW(groups, lr=o.lr, weight_decay=o.weight_decay)


def build_scheduler(opt: torch.optim.Optimizer, cfg: Config, steps_per_epoch: int):
    """Linear warm-up, then cosine decay to zero (or constant), stepped every optimiser step."""
    total = max(1, cfg.train.epochs * steps_per_epoch)
    warm = int(cfg.train.optim.warmup_epochs * steps_per_epoch)
    cosine = cfg.train.optim.schedule == "cosine"

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        if not cosine:
            return 1.0
        progress = (step - warm) / max(1, total - warm)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def set_batchnorm_eval(model: nn.Module) -> None:
    """Keep BatchNorm layers on their running statistics (TSN's partial BN)."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


class _Logger:
    """tqdm-free scalars: TensorBoard plus one JSON line per epoch (main process only)."""

    def __init__(self, stage_dir: Path, enabled: bool) -> None:
        self.enabled = enabled
        self.path = stage_dir / "metrics.jsonl"
        self.tb = SummaryWriter(str(stage_dir / "tb")) if enabled else None

    def scalars(self, prefix: str, values: dict[str, float], step: int) -> None:
        if self.tb is not None:
            for k, v in values.items():
                self.tb.add_scalar(f"{prefix}/{k}", v, step)

    def epoch(self, record: dict[str, Any]) -> None:
        if self.enabled:
            append_json_line(self.path, record)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def validate(
    model: FocusNet, stage: SupervisedStage, loader, device: torch.device, amp: str
) -> dict[str, float]:
    """Top-1 / top-5 of the fused prediction at the last step, and top-1 of the glance head; as
    hit@k, like :func:`~videofocus.evaluation.evaluate.evaluate_model` (any label of a row
    counts)."""
    logits, glance, targets = [], [], []
    actions = lambda m, b, t: stage.actions(m, b, t, 0, False)  # noqa: E731
    for batch, out, _ in model_outputs(model, actions, loader, device, amp):
        logits.append(out.logits[:, -1].float().cpu())
        glance.append(out.glance_logits.float().mean(1).cpu())
        targets.append(batch["target"])  # multi-hot
    if not targets:
        return {}
    y = torch.cat(targets)
    acc = topk_accuracy(torch.cat(logits), y, ks=(1, 5))
    return {
        "top1": acc["top1"],
        "top5": acc["top5"],
        "glance_top1": topk_accuracy(torch.cat(glance), y, ks=(1,))["top1"],
    }


def run_supervised_stage(
    cfg: Config, stage: SupervisedStage, resume: bool = False, progress: bool = True
) -> StageResult:
    """Train one supervised stage to the end (or resume it) and return where it left its model."""
    start_time = time.perf_counter()
    dist = init_distributed(select_device(cfg.train.device, dist_env().local_rank))
    device = select_device(cfg.train.device, dist.local_rank)
    stage_dir = Path(cfg.train.out_dir) / stage.name
    final_dir = stage_dir / "final"
    if resume and final_dir.is_dir():
        return StageResult.finished(stage.name, final_dir)
    if dist.is_main:
        ensure_dataset(cfg.data, workers=os.cpu_count() or 1, progress=progress)
        stage_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, stage_dir / "config.yaml")
    _barrier(dist)

    torch.manual_seed(cfg.train.seed)  # identical initial weights on every rank
    num_classes = resolve_num_classes(cfg)
    model = stage.build_model(cfg, num_classes).to(device)
    meta_of = _meta_writer(cfg, stage, model, num_classes)
    per_rank, accum = _per_rank_batch(cfg, dist)
    train_set = build_dataset(
        cfg.data, "train", train=True, num_classes=num_classes, seed=cfg.train.seed
    )
    val_set = build_dataset(
        cfg.data, "val", train=False, num_classes=num_classes, seed=cfg.train.seed
    )
    loading = {
        "seed": cfg.train.seed,
        "num_workers": cfg.data.num_workers,
        "pin_memory": device.type == "cuda",
    }
    train_loader, train_sampler = build_loader(
        train_set, per_rank // accum, dist, shuffle=True, drop_last=True, **loading
    )
    val_loader, _ = build_loader(
        val_set, max(1, per_rank // accum), DistInfo(), shuffle=False, drop_last=False, **loading
    )
    steps_per_epoch = max(1, len(train_loader) // accum)
    optimizer = build_optimizer(model, cfg, stage.lr_mult)
    scheduler = build_scheduler(optimizer, cfg, steps_per_epoch)
    start_epoch, global_step = 0, 0
    last_dir = stage_dir / "last"
    if resume and last_dir.is_dir():
        ckpt = load_checkpoint(last_dir)
        model.load_state_dict(ckpt.model)
        optimizer.load_state_dict(ckpt.trainer["optimizer"])
        scheduler.load_state_dict(ckpt.trainer["scheduler"])
        restore_rng_state(ckpt.trainer["rng"])
        start_epoch, global_step = ckpt.trainer["epoch"] + 1, ckpt.trainer["global_step"]

    wrapped: nn.Module = model
    if dist.is_distributed:
        if device.type == "cuda" and not cfg.train.freeze_bn:
            wrapped = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        wrapped = DistributedDataParallel(
            wrapped,
            device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=True,  # options without glimpses in a batch get no gradient
        )
    logger = _Logger(stage_dir, dist.is_main)
    metrics: dict[str, Any] = {}
    for epoch in range(start_epoch, cfg.train.epochs):
        model.train()
        if cfg.train.freeze_bn:
            set_batchnorm_eval(model)
        train_set.set_epoch(epoch)
        if train_sampler is not None:
            train_sampler.set_epoch(epoch)
        sums = {"loss": 0.0, "top1": 0.0}
        seen = 0
        bar = tqdm(
            train_loader,
            desc=f"{stage.name} {epoch + 1}/{cfg.train.epochs}",
            unit="batch",
            disable=not (progress and dist.is_main),
            leave=False,
        )
        optimizer.zero_grad(set_to_none=True)
        for i, batch in enumerate(bar):
            if batch is None:
                continue
            frames = frames_to_input(batch["frames"], device)
            labels = batch["label"].to(device)
            actions = stage.actions(model, batch, frames.shape[1], epoch, True).to(device)
            last_micro = (i + 1) % accum == 0
            sync = nullcontext() if last_micro or not dist.is_distributed else wrapped.no_sync()
            with sync:
                with autocast_for(device, cfg.train.amp):
                    out = wrapped(frames, actions)
                loss, parts = stage.loss(out, labels)
                # SAR backbones: keep the share of refined patches near their refine_ratio
                budget = refinement_budget_loss(model)
                if budget is not None:
                    loss = loss + budget
                    parts = {**parts, "loss": loss.item(), "loss_budget": budget.item()}
                (loss / accum).backward()
            if last_micro:
                if cfg.train.optim.clip_grad is not None:
                    nn.utils.clip_grad_norm_(model.parameters(), cfg.train.optim.clip_grad)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                global_step += 1
                if global_step % cfg.train.log_every == 0:
                    logger.scalars(
                        stage.name, {**parts, "lr": scheduler.get_last_lr()[0]}, global_step
                    )
            n = len(labels)
            seen += n
            sums["loss"] += parts["loss"] * n
            sums["top1"] += (
                topk_accuracy(out.logits[:, -1].detach().float(), labels, ks=(1,))["top1"] * n
            )
            bar.set_postfix(loss=f"{parts['loss']:.3f}")
        record: dict[str, Any] = {
            "epoch": epoch,
            "step": global_step,
            "lr": scheduler.get_last_lr()[0],
            **{f"train/{k}": v / max(1, seen) for k, v in sums.items()},
        }
        last_epoch = epoch == cfg.train.epochs - 1
        if dist.is_main and ((epoch + 1) % cfg.train.eval_every == 0 or last_epoch):
            val = validate(model, stage, val_loader, device, cfg.train.amp)
            record.update({f"val/{k}": v for k, v in val.items()})
            logger.scalars(f"{stage.name}/val", val, global_step)
            metrics = record
        logger.epoch(record)
        if dist.is_main and ((epoch + 1) % cfg.train.checkpoint_every == 0 or last_epoch):
            trainer = {
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "rng": capture_rng_state(),
                "epoch": epoch,
                "global_step": global_step,
            }
            save_checkpoint(last_dir, model.state_dict(), meta_of(epoch, record), trainer)
        _barrier(dist)
    logger.close()
    seconds = time.perf_counter() - start_time
    if dist.is_main:
        meta = meta_of(cfg.train.epochs - 1, metrics, train_seconds=seconds)
        save_checkpoint(final_dir, model.state_dict(), meta)
    _barrier(dist)
    return StageResult(stage.name, final_dir, metrics, seconds)


def _meta_writer(
    cfg: Config, stage: SupervisedStage, model: nn.Module, num_classes: int
) -> Callable[..., CheckpointMeta]:
    """``meta_of(epoch, metrics, **more)``: the stage's checkpoint meta (what does not change
    with the epoch is gathered once; a fine-tuned model's learned policy is recorded, so the
    folder rebuilds it alone)."""
    policy = getattr(model, "policy", None)
    spec = None
    if isinstance(policy, LearnedGlimpsePolicy):
        spec = learned_policy_meta(policy.network, policy.projection, algo=cfg.policy.algo)
    elif isinstance(policy, GlimpsePolicy):  # a heuristic's fine-tune (None: differentiable)
        spec = heuristic_spec(policy)
    fixed = checkpoint_meta(cfg, stage.name, num_classes, spec)
    return lambda epoch, metrics, **more: replace(fixed, epoch=epoch, metrics=metrics, **more)


def _per_rank_batch(cfg: Config, dist: DistInfo) -> tuple[int, int]:
    batch, accum = cfg.train.batch_size, cfg.train.optim.grad_accum
    if batch % (dist.world_size * accum):
        raise ValueError(
            f"train.batch_size={batch} must be divisible by world size {dist.world_size} x "
            f"train.optim.grad_accum {accum}"
        )
    return batch // dist.world_size, accum


def _barrier(dist: DistInfo) -> None:
    if dist.is_distributed:
        torch.distributed.barrier()
