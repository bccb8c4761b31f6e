"""Evaluation of a trained checkpoint: accuracy, mAP, counted GMACs per video and videos/s.

``videofocus eval CONFIG --checkpoint CKPT`` rebuilds the model the checkpoint's stage trained
(FocusNet, dense or glance-only baseline), runs it over the validation rows (or ``--manifest``)
with that stage's glimpse actions, and reports:

- ``top1``/``top5`` of the fused prediction at the last step, as hit@k (ActivityNet's
  convention: a video counts when *any* of its labels is among the k highest-scoring classes;
  for single-label data this is plain top-k accuracy), and ``map`` (ActivityNet/FCVID style,
  over the multi-hot targets, every label of a row counted; classes absent from the set are
  skipped, never renumbered);
- ``gmacs_per_video``: multiply-accumulates actually spent, from the options the model took
  (:class:`videofocus.flops.CostTable`; glimpse cost depends on the option, not the position);
- ``videos_per_s`` end to end (decode included) and ``model_videos_per_s`` (network only).

A ``policy`` checkpoint is evaluated as the warm-up model it holds a copy of with the learned
policy's glimpses; a ``finetune`` checkpoint holds its policy's weights and shape (checkpoints
written before they were self-contained read ``<run>/warmup/final`` and ``<run>/policy/final``
instead). Both report the method as the policy's algorithm (``recurrent_ppo`` or ``ppo``).
A ``differentiable`` checkpoint (the AdaFocusV2-style baseline) holds its own policy and is
evaluated with its continuous centres and bilinear crop.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from videofocus.config import Config
from videofocus.engine.checkpoint import Checkpoint, load_checkpoint, load_model_state
from videofocus.engine.data import build_dataset, build_loader, frames_to_input
from videofocus.engine.distributed import DistInfo, select_device
from videofocus.engine.factory import build_focusnet, resolve_num_classes
from videofocus.engine.metrics import mean_average_precision, topk_accuracy
from videofocus.engine.stages import (
    PolicyFocusNet,
    SupervisedStage,
    build_differentiable_focusnet,
    build_finetune_focusnet,
    create_stage,
    focus_loss,
    policy_chooses,
)
from videofocus.engine.train_loop import autocast_for
from videofocus.flops import CostTable
from videofocus.models import FocusNet

#: Stages whose glimpses come from a learned policy.
LEARNED_STAGES = ("policy", "finetune")
#: What ``top1`` / ``top5`` count, stated in every evaluation result (multi-label data).
TOPK_CONVENTION = "hit@k: a video counts when any of its labels is among the k top classes"


@torch.no_grad()
def evaluate_model(
    model, stage: SupervisedStage, loader, device: torch.device, cost: CostTable, amp: str = "off"
) -> dict[str, Any]:
    """Run ``model`` with ``stage``'s actions over ``loader`` and compute every metric."""
    model.eval()
    logits, targets, gmacs = [], [], []
    model_seconds = 0.0
    start = time.perf_counter()
    for batch in loader:
        if batch is None:
            continue
        frames = frames_to_input(batch["frames"], device)
        _sync(device)
        t0 = time.perf_counter()
        actions = stage.actions(model, batch["index"], frames.shape[1], 0, False).to(device)
        with autocast_for(device, amp):
            out = model(frames, actions)
        _sync(device)
        model_seconds += time.perf_counter() - t0
        logits.append(out.logits[:, -1].float().cpu())
        targets.append(batch["target"])  # multi-hot: every label of the row
        gmacs.append(cost.usage_from_actions(_taken(out.option_index).cpu()))
    seconds = time.perf_counter() - start
    if not targets:
        raise RuntimeError("no video of the evaluation set could be decoded")
    scores, multi_hot = torch.cat(logits), torch.cat(targets)
    acc = topk_accuracy(scores, multi_hot, ks=(1, 5))  # hit@k
    n = len(multi_hot)
    return {
        "videos": n,
        "top1": acc["top1"],
        "top5": acc["top5"],
        "map": mean_average_precision(scores.softmax(-1), multi_hot),
        "gmacs_per_video": float(torch.cat(gmacs).mean()),
        "videos_per_s": n / seconds,
        "model_videos_per_s": n / max(model_seconds, 1e-9),
    }


def evaluate_checkpoint(
    cfg: Config,
    checkpoint: str | Path,
    manifest: str | Path | None = None,
    batch_size: int | None = None,
) -> dict[str, Any]:
    """Evaluate a checkpoint folder of any supervised stage on the config's validation rows.

    :param manifest: evaluate every row of this manifest instead of the config's ``val`` rows.
    """
    ckpt = load_checkpoint(checkpoint, load_trainer=False)
    stage_name = ckpt.meta.get("stage", "warmup")
    num_classes = int(ckpt.meta.get("num_classes") or resolve_num_classes(cfg))
    device = select_device(cfg.train.device)
    method = _method_name(stage_name)
    model: FocusNet
    if stage_name in LEARNED_STAGES:
        stage = SupervisedStage(
            stage_name,
            build_focusnet,
            lambda m, ids, t, e, tr: policy_chooses(len(ids), t),
            focus_loss,
        )
        model, method = _learned_model(cfg, Path(checkpoint), ckpt)
    elif stage_name == "differentiable":
        # the policy's option is a buffer of the checkpoint, so any valid option builds the shape
        stage = SupervisedStage(
            stage_name,
            build_focusnet,
            lambda m, ids, t, e, tr: policy_chooses(len(ids), t),
            focus_loss,
        )
        model = build_differentiable_focusnet(_checkpoint_option(cfg, ckpt.meta), num_classes)
        load_model_state(model, ckpt.model, checkpoint)
    else:
        stage = create_stage(stage_name, cfg)
        model = stage.build_model(cfg, num_classes)
        load_model_state(model, ckpt.model, checkpoint)
    model.to(device)
    loader = build_eval_loader(cfg, num_classes, manifest, batch_size)
    cost = CostTable.from_model(model, cfg.data.frame_size)
    result = evaluate_model(model, stage, loader, device, cost, cfg.train.amp)
    return {
        "checkpoint": str(checkpoint),
        "stage": stage_name,
        "method": method,
        "topk": TOPK_CONVENTION,
        **result,
    }


def build_eval_loader(
    cfg: Config,
    num_classes: int,
    manifest: str | Path | None = None,
    batch_size: int | None = None,
):
    """The evaluation loader: the config's validation rows (or every row of ``manifest``), in
    order, with evaluation-mode sampling.

    :param cfg: the run config.
    :param num_classes: output classes.
    :param manifest: evaluate every row of this manifest instead of the config's ``val`` rows.
    :param batch_size: clips per batch; None: ``train.batch_size``.
    """
    data = cfg.data
    if manifest is not None:
        data = replace(data, val_manifest=str(Path(manifest).resolve()), val_split=None)
    dataset = build_dataset(data, "val", train=False, num_classes=num_classes, seed=cfg.train.seed)
    loader, _ = build_loader(
        dataset,
        batch_size or cfg.train.batch_size,
        DistInfo(),
        shuffle=False,
        seed=cfg.train.seed,
        num_workers=data.num_workers,
        drop_last=False,
        pin_memory=select_device(cfg.train.device).type == "cuda",
    )
    return loader


def _checkpoint_option(cfg: Config, meta: dict[str, Any]) -> Config:
    """``cfg`` with the ``differentiable_option`` a checkpoint was trained with."""
    trained = meta.get("config", {}).get("train", {}).get("differentiable_option")
    if trained is None or trained > len(cfg.model.options):
        return cfg
    return replace(cfg, train=replace(cfg.train, differentiable_option=int(trained)))


def _learned_model(cfg: Config, checkpoint: Path, ckpt: Checkpoint) -> tuple[PolicyFocusNet, str]:
    """The model of a ``policy`` or ``finetune`` checkpoint, and its method (the algorithm)."""
    from videofocus.engine.policy_stage import load_learned_policy, policy_checkpoint_focusnet

    if ckpt.meta["stage"] == "policy":
        net, _ = policy_checkpoint_focusnet(cfg, checkpoint, ckpt)
        model = PolicyFocusNet(net, load_learned_policy(cfg, ckpt), train_local=False)
        return model, ckpt.meta.get("algo", "recurrent_ppo")
    model, algo = build_finetune_focusnet(cfg, checkpoint, ckpt.meta)
    load_model_state(model, ckpt.model, checkpoint)
    return model, algo


def _taken(option_index: torch.Tensor) -> torch.Tensor:
    """Actions ``[B, T, 3]`` with the options a pass took (cells 0: cost ignores position)."""
    option = option_index + 1  # -1 (skipped) -> option 0
    return torch.stack([option, torch.zeros_like(option), torch.zeros_like(option)], dim=-1)


def _method_name(stage: str) -> str:
    return {"warmup": "random", "dense": "dense", "glance_only": "glance_only"}.get(stage, stage)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def write_json(result: dict[str, Any], path: str | Path | None) -> None:
    """Print ``result`` as JSON, and also write it to ``path`` when given."""
    text = json.dumps(result, indent=2)
    print(text)
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text + "\n", encoding="utf-8")
