"""Evaluating glimpse policies: accuracy, GMACs, target coverage, budgeted early exit.

What every comparison of glimpse policies measures (``bench policy``, ``quickstart``,
``ablate``): :func:`evaluate_glimpse_model` (accuracy, GMACs per video, videos/s) and
:func:`glimpse_statistics` (target coverage against the synthetic generator's tracks, skip rate,
glimpses per option); :func:`evaluate_budgeted_exit` with early exit under a GMACs budget.
:func:`oracle_actions` centre the glimpses on the target itself, the upper bound of aiming.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from videofocus.config import Config
from videofocus.data.loaders import build_eval_loader, frames_to_input
from videofocus.data.synthetic import TargetTrack
from videofocus.evaluation.evaluate import (
    Actions,
    evaluate_adaptive,
    evaluate_model,
    stage_actions,
)
from videofocus.inference.inferencer import InferenceOptions
from videofocus.inference.model import calibrate_budget, load_inference_model
from videofocus.models import FocusNet, GlimpseOption, actions_to_glimpses, normalised_extents
from videofocus.models.glimpse import nearest_cells
from videofocus.policy.differentiable import DifferentiableFocusNet
from videofocus.policy.focusnet import PolicyFocusNet
from videofocus.policy.heuristics import ORACLE
from videofocus.runtime import select_device

__all__ = [
    "ORACLE",
    "dominant_option",
    "BUDGET_CHUNK_STEPS",
    "evaluate_budgeted_exit",
    "evaluate_glimpse_model",
    "glimpse_geometry",
    "glimpse_statistics",
    "oracle_actions",
    "target_centres",
]


#: Evaluation actions of every glimpse model here: "the model's own policy chooses".
_CHOOSE = stage_actions("finetune")


def target_centres(
    tracks: dict[str, TargetTrack],
    ids: list[str],
    frame_indices: torch.Tensor,
    frame_size: int,
) -> torch.Tensor:
    """Normalised target-box centres ``[B, T, 2]`` in the clips' square frames (short side
    ``frame_size``, centre-cropped as evaluation does), NaN where hidden."""
    out = torch.full((*frame_indices.shape, 2), float("nan"))
    for i, vid in enumerate(ids):
        track = tracks[vid]
        scale = frame_size / min(track.width, track.height)
        off_x = (track.width * scale - frame_size) / 2
        off_y = (track.height * scale - frame_size) / 2
        for j, f in enumerate(frame_indices[i].tolist()):
            box = track.boxes[f]
            if box is not None:
                x0, y0, x1, y1 = box
                out[i, j, 0] = ((x0 + x1) / 2 * scale - off_x) / frame_size
                out[i, j, 1] = ((y0 + y1) / 2 * scale - off_y) / frame_size
    return out


def oracle_actions(
    tracks: dict[str, TargetTrack],
    options: list[GlimpseOption] | tuple[GlimpseOption, ...],
    grid: int,
    option: int,
    frame_size: int,
) -> Actions:
    """The oracle's glimpses: option ``option`` at the cell whose glimpse centre lies nearest to
    the target's centre on every frame (the centre cell where it is hidden). The videos must be
    square: a crop of a wider frame would move the target by an unknown offset."""
    if not 1 <= option <= len(options):
        raise ValueError(f"option must be in [1, {len(options)}], got {option}")
    wide = sorted(v for v, t in tracks.items() if t.width != t.height)
    if wide:
        raise ValueError(f"the oracle needs square videos; {wide[0]} is not")
    extent = options[option - 1].extent

    def act(model: FocusNet, batch: dict[str, Any], steps: int) -> torch.Tensor:
        target = target_centres(tracks, list(batch["id"]), batch["frame_indices"], frame_size)
        cells = torch.where(target.isnan(), grid // 2, nearest_cells(target, grid, extent))
        return torch.cat([torch.full_like(cells[..., :1], option), cells], dim=-1)

    return act


def glimpse_geometry(
    model: FocusNet, frames: torch.Tensor, actions: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``option_index [B, T]`` (-1: skipped), centres ``[B, T, 2]`` and extents ``[B, T]`` of the
    glimpses ``model``'s own policy takes on normalised frames ``[B, T, 3, H, W]`` (or of the
    given ``actions [B, T, 3]``)."""
    h, w = frames.shape[-2:]
    if actions is not None:
        return actions_to_glimpses(actions, model.options, model.grid, aspect=w / h)
    glance = model.glance(frames)
    if isinstance(model, DifferentiableFocusNet):
        centres = model.policy.centres(glance.maps)
        b, t = centres.shape[:2]
        option = torch.full((b, t), model.policy.option - 1, device=centres.device)
        return option, centres, torch.full((b, t), model.policy.extent, device=centres.device)
    if not isinstance(model, PolicyFocusNet):
        raise TypeError(f"{type(model).__name__} has no policy of its own")
    return actions_to_glimpses(model.choose(glance), model.options, model.grid, aspect=w / h)


@torch.no_grad()
def glimpse_statistics(
    model: FocusNet,
    loader,
    device: torch.device,
    tracks: dict[str, TargetTrack] | None,
    actions: Actions | None = None,
) -> dict[str, Any]:
    """``target_coverage`` (None without ``tracks``), ``skip_rate`` and ``option_counts``
    (glimpses per action option ``1..K``) of ``model``'s policy (or ``actions``) over ``loader``."""
    model.eval()
    counts = torch.zeros(model.num_options, dtype=torch.long)
    frames_seen = skipped = covered = visible = 0
    for batch in loader:
        if batch is None:
            continue
        frames = frames_to_input(batch["frames"], device)
        given = None if actions is None else actions(model, batch, frames.shape[1]).to(device)
        option, centres, extents = (x.cpu() for x in glimpse_geometry(model, frames, given))
        looked = option >= 0
        counts += torch.bincount(option[looked], minlength=model.num_options)
        frames_seen += option.numel()
        skipped += int((~looked).sum())
        if tracks is not None:
            target = target_centres(
                tracks, list(batch["id"]), batch["frame_indices"], frames.shape[-1]
            )
            seen = ~target.isnan().any(-1)
            half = normalised_extents(extents.float()) / 2
            inside = ((target - centres.float()).abs() <= half).all(-1) & looked
            visible += int(seen.sum())
            covered += int((inside & seen).sum())
    return {
        "target_coverage": covered / visible if tracks is not None and visible else None,
        "skip_rate": skipped / max(1, frames_seen),
        "option_counts": counts.tolist(),
    }


def evaluate_glimpse_model(
    cfg: Config,
    model: FocusNet,
    tracks: dict[str, TargetTrack] | None,
    actions: Actions | None = None,
) -> dict[str, Any]:
    """Accuracy, GMACs/video, videos/s and glimpse statistics of a model with its own policy
    (or with the given ``actions``, e.g. :func:`oracle_actions`)."""
    device = select_device(cfg.train.device)
    model = model.to(device)
    loader = build_eval_loader(cfg, model.aggregator.num_classes)
    torch.manual_seed(cfg.train.seed)  # the random heuristic's glimpses, the same every run
    chosen = actions or _CHOOSE
    result = evaluate_model(model, chosen, loader, device, cfg.data.frame_size, cfg.train.amp)
    torch.manual_seed(cfg.train.seed)
    return {**result, **glimpse_statistics(model, loader, device, tracks, actions)}


def dominant_option(stats: dict[str, Any]) -> int:
    """The action option (``1..K``) a policy glimpsed with most often (1 if it never looked)."""
    counts = stats["option_counts"]
    return max(range(len(counts)), key=counts.__getitem__) + 1


#: Steps per inference chunk of a calibrated budget (calibration and every evaluation of its
#: thresholds): one, so a video can leave after any step, as its per-step thresholds say.
BUDGET_CHUNK_STEPS = 1


def evaluate_budgeted_exit(
    cfg: Config,
    finetune_dir: Path,
    budget: float,
    calibration: Config,
    glance_exit: bool = False,
) -> tuple[list[float], dict[str, Any]]:
    """The fine-tuned learned policy (``finetune_dir``) with exit thresholds calibrated for
    ``budget`` GMACs/video on the evaluation rows of ``calibration``, evaluated on those of
    ``cfg``; with ``glance_exit`` the glance-only prediction is the first exit (one threshold
    more, calibrated with the others).

    Calibrate on held-out rows: thresholds fitted where the network is overconfident (the
    training rows) exit too little elsewhere. Returns the per-step thresholds (``[0.0]`` below
    the cost of exiting at the first step) and the :func:`evaluate_adaptive` result, with
    ``exit_rule`` the calibration rule that chose them
    (:data:`~videofocus.inference.early_exit.RULES`; ``floor`` below that cost).
    """
    model = load_inference_model(finetune_dir, cfg)
    options = InferenceOptions(chunk_steps=BUDGET_CHUNK_STEPS, glance_exit=glance_exit)
    try:
        calibrated = calibrate_budget(replace(model, cfg=calibration), budget, options, save=False)
        thresholds, rule = calibrated.thresholds, calibrated.rule
    except ValueError:  # the budget is below every video exiting at its first step
        thresholds, rule = [0.0], "floor"
    result = evaluate_adaptive(cfg, model, thresholds, options=options)
    return thresholds, {**result, "exit_rule": rule}
