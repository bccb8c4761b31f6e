"""Evaluation of a trained checkpoint: accuracy, mAP, counted GMACs per video and videos/s.

``videofocus eval`` (:mod:`videofocus.cli.evaluate` says what it reports) runs a checkpoint's
model with that stage's glimpses, its GMACs counted by :class:`CostTable`: a learned or
``differentiable`` checkpoint's own policy chooses them; ``warmup`` takes the random glimpses it
was trained with (fixed per video), ``dense`` whole frames, ``glance_only`` none.
:func:`evaluate_adaptive` does the same through the label job's batched inferencer, with early
exit.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from videofocus.artifacts.load import load_model
from videofocus.config import Config
from videofocus.data.loaders import build_eval_loader, frames_to_input
from videofocus.evaluation.metrics import mean_average_precision, topk_accuracy
from videofocus.inference.inferencer import InferenceOptions
from videofocus.inference.model import InferenceModel, load_inference_model, rollout_manifest
from videofocus.models import FocusNet, FocusOutput
from videofocus.models.cost import CostTable
from videofocus.models.glimpse import dense_actions, random_glimpse_actions, skip_actions
from videofocus.policy.focusnet import policy_chooses
from videofocus.policy.heuristics import ORACLE
from videofocus.runtime import autocast_for, select_device

__all__ = [
    "TOPK_CONVENTION",
    "evaluate_adaptive",
    "evaluate_checkpoint",
    "evaluate_model",
    "model_outputs",
    "stage_actions",
    "write_json",
]

#: What ``top1`` / ``top5`` count, stated in every evaluation result (multi-label data).
TOPK_CONVENTION = "hit@k: a video counts when any of its labels is among the k top classes"

#: ``actions(model, batch, steps) -> [B, T, 3]``: the glimpses an evaluation takes, given the
#: loader's batch (its ``index``; ``id`` and ``frame_indices`` for the oracle).
Actions = Callable[[FocusNet, dict[str, Any], int], torch.Tensor]


def stage_actions(stage: str, cfg: Config | None = None) -> Actions:
    """The glimpses a checkpoint of ``stage`` is evaluated with (see the module docs); only
    ``warmup`` reads ``cfg`` (the seed and skip rate of its glimpses)."""
    if stage == "warmup":
        if cfg is None:
            raise ValueError("the warm-up's evaluation glimpses need the run config")
        seed, skip_rate = cfg.train.seed, cfg.train.warmup_skip_rate
        # epoch -1: the same random glimpses at every evaluation, as in the warm-up's validation
        return lambda m, batch, t: random_glimpse_actions(
            m.num_options, m.grid, batch["index"], t, seed, -1, skip_rate=skip_rate
        )
    if stage.startswith(f"finetune_{ORACLE}_"):
        raise ValueError(
            f"a {stage} checkpoint takes its glimpses from the target tracks: evaluate it with "
            "the experiment runner (bench policy, ablate), which gives them"
        )
    # any other stage: the model's own policy
    make = {"dense": dense_actions, "glance_only": skip_actions}.get(stage, policy_chooses)
    return lambda m, batch, t: make(len(batch["index"]), t)


@torch.no_grad()
def model_outputs(
    model: FocusNet, actions: Actions, loader, device: torch.device, amp: str = "off"
) -> Iterator[tuple[dict[str, Any], FocusOutput, float]]:
    """``(batch, output, seconds)`` for each decoded batch of ``loader``: ``model`` (in eval mode)
    under ``actions``, and the seconds it took, glimpse choice included."""
    model.eval()
    for batch in loader:
        if batch is None:
            continue
        frames = frames_to_input(batch["frames"], device)
        _sync(device)
        t0 = time.perf_counter()
        taken = actions(model, batch, frames.shape[1]).to(device)
        with autocast_for(device, amp):
            out = model(frames, taken)
        _sync(device)
        yield batch, out, time.perf_counter() - t0


def evaluate_model(
    model: FocusNet,
    actions: Actions,
    loader,
    device: torch.device,
    frame_size: int,
    amp: str = "off",
) -> dict[str, Any]:
    """Run ``model`` with ``actions`` over ``loader`` (square clips of side ``frame_size``) and
    compute every metric."""
    cost = CostTable.from_model(model, frame_size)
    logits, targets, gmacs, index = [], [], [], []
    model_seconds = 0.0
    start = time.perf_counter()
    for batch, out, batch_seconds in model_outputs(model, actions, loader, device, amp):
        model_seconds += batch_seconds
        logits.append(out.logits[:, -1].float().cpu())
        targets.append(batch["target"])  # multi-hot: every label of the row
        index.append(batch["index"])
        # the options taken as actions (-1, skipped -> option 0; cells 0: cost ignores position)
        actions_taken = F.pad(out.option_index.cpu()[..., None] + 1, (0, 2))
        gmacs.append(cost.usage_from_actions(actions_taken, macs_over_table=out.macs_over_table))
    seconds = time.perf_counter() - start
    if not targets:
        raise RuntimeError("no video of the evaluation set could be decoded")
    scores, multi_hot = torch.cat(logits), torch.cat(targets)
    n = len(multi_hot)
    hits = multi_hot.gather(1, scores.argmax(dim=1, keepdim=True)).squeeze(1) > 0
    return {
        "videos": n,
        **_per_video(torch.cat(index).tolist(), hits.tolist()),
        **topk_accuracy(scores, multi_hot, ks=(1, 5)),  # top1, top5 as hit@k
        "map": mean_average_precision(scores.softmax(-1), multi_hot),
        "gmacs_per_video": float(torch.cat(gmacs).mean()),
        "videos_per_s": n / seconds,
        "model_videos_per_s": n / max(model_seconds, 1e-9),
    }


def evaluate_checkpoint(
    cfg: Config | None,
    checkpoint: str | Path,
    manifest: str | Path | None = None,
    batch_size: int | None = None,
) -> dict[str, Any]:
    """Evaluate a checkpoint folder of any stage on the validation rows of ``cfg`` (None: the
    checkpoint's config), or on every row of ``manifest``."""
    loaded = load_model(checkpoint, cfg)
    cfg = loaded.cfg
    device = select_device(cfg.train.device)
    model = loaded.net.to(device)
    loader = build_eval_loader(cfg, loaded.meta.num_classes, manifest, batch_size)
    actions = stage_actions(loaded.stage, cfg)
    return {
        "checkpoint": str(checkpoint),
        "stage": loaded.stage,
        "method": loaded.method,
        "topk": TOPK_CONVENTION,
        **evaluate_model(model, actions, loader, device, cfg.data.frame_size, cfg.train.amp),
    }


def evaluate_adaptive(
    cfg: Config | None,
    checkpoint: str | Path | InferenceModel,
    thresholds: list[float] | None = None,
    manifest: str | Path | None = None,
    options: InferenceOptions | None = None,
) -> dict[str, Any]:
    """Accuracy, mAP, GMACs per video and videos/s of a checkpoint under early-exit
    ``thresholds`` (overriding ``options.thresholds``), as :func:`evaluate_checkpoint` counts
    them at each video's exit step (``map``: None when no row has a label). ``exit_fraction`` is
    the share of videos per exit; with ``options.glance_exit`` exit 0 is the glance exit,
    ``glance_exit_rate`` its share and ``glance_top1`` the glance-only head's top-1 on every
    video (the glance exit is only as good as that head).

    :param checkpoint: a checkpoint folder, or an already loaded :class:`InferenceModel`.
    """
    model = checkpoint
    if not isinstance(model, InferenceModel):
        model = load_inference_model(checkpoint, cfg)
    options = replace(options or InferenceOptions(), thresholds=thresholds)
    start = time.perf_counter()
    correct, top5, gmacs, exits, probs, targets, index = [], [], [], [], [], [], []
    glance_correct = []
    # exit indices: the glance exit (exit_step -1) is exit 0 when it is on
    first_exit = 1 if options.glance_exit else 0
    for row, labels, p in rollout_manifest(model, options, manifest):
        index.append(row)
        top = p.logits.topk(min(5, p.logits.numel())).indices.tolist()
        correct.append(top[0] in labels)
        top5.append(any(label in top for label in labels))
        gmacs.append(p.gmacs)
        exits.append(p.exit_step + first_exit)
        glance_correct.append(p.glance_top1 in labels)
        probs.append(p.logits.softmax(-1))
        targets.append(torch.zeros_like(p.logits).index_fill_(0, torch.tensor(labels).long(), 1))
    seconds = time.perf_counter() - start
    n = len(correct)
    if n == 0:
        raise RuntimeError("no video of the evaluation set could be decoded")
    multi_hot = torch.stack(targets)
    glance = {}
    if options.glance_exit:
        glance = {"glance_exit_rate": exits.count(0) / n, "glance_top1": sum(glance_correct) / n}
    return {
        "method": model.method,
        "videos": n,
        **_per_video(index, correct),
        "accuracy": sum(correct) / n,
        "top5": sum(top5) / n,
        "map": mean_average_precision(torch.stack(probs), multi_hot) if multi_hot.any() else None,
        "gmacs_per_video": sum(gmacs) / n,
        "videos_per_s": n / seconds,
        "exit_thresholds": thresholds,
        "exit_fraction": [exits.count(s) / n for s in range(max(exits) + 1)],
        **glance,
    }


def _per_video(index: list[int], correct: list[bool]) -> dict[str, list[int]]:
    """Each video's top-1 hit (1/0) in row order of the evaluated split, for paired comparisons
    of two methods on the same videos."""
    order = sorted(range(len(index)), key=index.__getitem__)
    return {
        "video_index": [int(index[i]) for i in order],
        "video_correct": [int(correct[i]) for i in order],
    }


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
