"""Evaluation of a trained checkpoint: accuracy, mAP, counted GMACs per video and videos/s.

``videofocus eval CONFIG --checkpoint CKPT`` rebuilds the model the checkpoint's stage trained
(FocusNet, dense or glance-only baseline), runs it over the validation rows (or ``--manifest``)
with that stage's glimpse actions, and reports:

- ``top1``/``top5`` of the fused prediction at the last step, and ``map`` (ActivityNet/FCVID style,
  over the multi-hot targets; classes absent from the set are skipped, never renumbered);
- ``gmacs_per_video``: multiply-accumulates actually spent, from the actions taken
  (:class:`videofocus.flops.CostTable`);
- ``videos_per_s`` end to end (decode included) and ``model_videos_per_s`` (network only).
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from videofocus.config import Config
from videofocus.engine.checkpoint import load_checkpoint
from videofocus.engine.data import build_dataset, build_loader, frames_to_input
from videofocus.engine.distributed import DistInfo, select_device
from videofocus.engine.factory import resolve_num_classes
from videofocus.engine.metrics import mean_average_precision, topk_accuracy
from videofocus.engine.stages import SupervisedStage, create_stage
from videofocus.engine.train_loop import autocast_for
from videofocus.flops import CostTable


@torch.no_grad()
def evaluate_model(
    model, stage: SupervisedStage, loader, device: torch.device, cost: CostTable, amp: str = "off"
) -> dict[str, Any]:
    """Run ``model`` with ``stage``'s actions over ``loader`` and compute every metric."""
    model.eval()
    logits, labels, targets, gmacs = [], [], [], []
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
        labels.append(batch["label"])
        targets.append(batch["target"])
        gmacs.append(cost.usage_from_actions(actions.cpu()))
    seconds = time.perf_counter() - start
    if not labels:
        raise RuntimeError("no video of the evaluation set could be decoded")
    scores, y, multi_hot = torch.cat(logits), torch.cat(labels), torch.cat(targets)
    acc = topk_accuracy(scores, y, ks=(1, 5))
    n = len(y)
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
    stage = create_stage(stage_name, cfg)
    num_classes = int(ckpt.meta.get("num_classes") or resolve_num_classes(cfg))
    device = select_device(cfg.train.device)
    model = stage.build_model(cfg, num_classes)
    model.load_state_dict(ckpt.model)
    model.to(device)
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
        pin_memory=device.type == "cuda",
    )
    cost = CostTable.from_model(model, data.frame_size)
    result = evaluate_model(model, stage, loader, device, cost, cfg.train.amp)
    return {
        "checkpoint": str(checkpoint),
        "stage": stage_name,
        "method": _method_name(stage_name),
        **result,
    }


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
