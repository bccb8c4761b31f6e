"""A model ready for adaptive inference: network + glimpse policy + cost table + class names.

:func:`load_inference_model` rebuilds it from any checkpoint folder a training stage wrote (the
config travels in the checkpoint's ``meta.json``), or from a config alone with random weights (dry
runs and throughput tests). :func:`evaluate_adaptive` runs it through the
:class:`~videofocus.engine.inference.AdaptiveInferencer` on a labelled manifest, and
:func:`calibrate_budget` turns a GMACs budget into per-step exit thresholds.

Which policy a checkpoint acts with by default:

=================  =====================================================================
stage              policy
=================  =====================================================================
``finetune``       the learned policy it was fine-tuned on (its weights are in the checkpoint)
``policy``         the learned policy, on the warm-up network of the same run
``differentiable`` its own centre network, snapped to the grid
``warmup``         random cells at the last (largest) option, as it was trained
``dense``          the whole frame at every step
``glance_only``    skip every frame
=================  =====================================================================

``policy=NAME`` replaces it by a heuristic (``random``, ``centre``, ``saliency``, ``dense``,
``glance_only``).

A checkpoint folder needs nothing outside itself: a ``finetune`` checkpoint records its policy's
shape and a ``policy`` one holds the warm-up network it acts on (checkpoints written before that
still read their run's ``policy/final`` / ``warmup/final``). Class names come from
:func:`checkpoint_class_names`.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from videofocus.config import Config, config_from_dict, load_config
from videofocus.data.manifest import ManifestError, read_classes
from videofocus.engine.checkpoint import (
    Checkpoint,
    CheckpointError,
    load_checkpoint,
    load_model_state,
)
from videofocus.engine.distributed import select_device
from videofocus.engine.early_exit import ExitCalibration, apply_thresholds, calibrate_thresholds
from videofocus.engine.factory import build_dense_baseline, build_focusnet, resolve_num_classes
from videofocus.engine.inference import (
    AdaptiveInferencer,
    InferenceOptions,
    VideoPrediction,
    chunked_step_costs,
)
from videofocus.engine.metrics import mean_average_precision
from videofocus.flops import CostTable
from videofocus.models import FocusNet
from videofocus.policy.heuristics import GlimpsePolicy, create_policy

__all__ = [
    "CalibrationRollouts",
    "InferenceModel",
    "calibrate_budget",
    "checkpoint_class_names",
    "evaluate_adaptive",
    "load_inference_model",
    "record_rollouts",
    "rollout_manifest",
]

logger = logging.getLogger(__name__)

#: Exit thresholds a calibration stored beside a checkpoint (``label --budget-gmacs`` reuses them).
THRESHOLDS_FILE = "exit_thresholds.json"


@dataclass
class InferenceModel:
    """Everything inference needs.

    :ivar net: the network (weights loaded, eval mode).
    :ivar policy: the glimpse policy it acts with.
    :ivar cfg: the config it was trained with.
    :ivar class_names: one name per output class.
    :ivar method: what acts: ``recurrent_ppo``, ``ppo``, ``random``, ``dense``, ...
    :ivar checkpoint: the folder it came from; None for random weights.
    """

    net: FocusNet
    policy: GlimpsePolicy
    cfg: Config
    class_names: list[str]
    method: str
    checkpoint: Path | None

    @property
    def random_weights(self) -> bool:
        """True when built from a config alone (no trained weights)."""
        return self.checkpoint is None

    def cost_table(self) -> CostTable:
        """MACs of each component at the config's frame size, this model's policy included."""
        return CostTable.from_model(self.net, self.cfg.data.frame_size, self.policy)

    def inferencer(
        self, options: InferenceOptions | None = None, device: torch.device | str | None = None
    ) -> AdaptiveInferencer:
        """An :class:`AdaptiveInferencer` for this model (device: the config's by default)."""
        device = device if device is not None else select_device(self.cfg.train.device)
        return AdaptiveInferencer(self.net, self.policy, self.cost_table(), options, device)


def checkpoint_class_names(
    cfg: Config, meta: dict[str, Any], num_classes: int, checkpoint: Path | None
) -> list[str]:
    """One name per output class of a checkpoint (or of a config's random-weights model).

    Looked for, in this order:

    1. the names the checkpoint's ``meta.json`` records (``class_names``: every checkpoint that
       training writes carries them, so the folder can be copied anywhere);
    2. the config's classes file, ``data.root / data.classes``: an absolute path as it is; a
       relative one first against the folder training ran from, which the checkpoint's own
       location gives when it still sits in its run (``<that folder>/<train.out_dir>/<stage>/
       <final|last>``, for a relative ``train.out_dir`` without ``..``), then against the working
       directory;
    3. none found: ``class_0``, ``class_1``, ... and a one-line warning on stderr naming what
       was looked for.

    A source whose number of names differs from ``num_classes`` is passed over.
    """
    names = meta.get("class_names")
    if names and len(names) == num_classes:
        return list(names)
    looked = [f"{checkpoint / 'meta.json'} class_names"] if checkpoint is not None else []
    for path in _classes_file_candidates(cfg, checkpoint):
        try:
            found = read_classes(path)
        except ManifestError:
            looked.append(str(path))
            continue
        if len(found) == num_classes:
            return found
        looked.append(f"{path} ({len(found)} names)")
    print(
        f"WARNING: no names for the {num_classes} classes (looked for {'; '.join(looked)}); "
        f"labels will read class_0..class_{num_classes - 1}",
        file=sys.stderr,
        flush=True,
    )
    return [f"class_{i}" for i in range(num_classes)]


def _classes_file_candidates(cfg: Config, checkpoint: Path | None) -> list[Path]:
    """Where the config's classes file may be, most trustworthy first (see
    :func:`checkpoint_class_names`)."""
    path = cfg.data.resolve(cfg.data.classes)
    if path.is_absolute():
        return [path]
    candidates = []
    out_dir = Path(cfg.train.out_dir)
    if checkpoint is not None and not out_dir.is_absolute() and ".." not in out_dir.parts:
        run = checkpoint.resolve().parent.parent  # <out_dir>/<stage>/final
        depth = len(out_dir.parts)  # 0 for "."
        if run.parts[len(run.parts) - depth :] == out_dir.parts:
            candidates.append(Path(*run.parts[: len(run.parts) - depth]) / path)
    candidates.append(path.absolute())
    return list(dict.fromkeys(candidates))  # the same folder once


def _heuristic(name: str, net: FocusNet, option: int | None) -> GlimpsePolicy:
    kwargs = {}
    if name in ("random", "centre", "saliency"):
        kwargs["option"] = option if option is not None else net.num_options
    return create_policy(name, net.options, net.grid, **kwargs)


def load_inference_model(
    checkpoint: str | Path | None = None,
    config: str | Path | Config | None = None,
    overrides: Sequence[str] = (),
    policy: str | None = None,
    option: int | None = None,
) -> InferenceModel:
    """Load a checkpoint folder (or build a config's model with random weights) for inference.

    :param checkpoint: a stage's checkpoint folder, e.g. ``runs/x/finetune/final``.
    :param config: without ``checkpoint``: a config (path or object) whose model is built with
        random weights; with it: replaces the config stored in the checkpoint.
    :param overrides: dotted overrides on the config.
    :param policy: a heuristic replacing the checkpoint's own policy (see the module docs).
    :param option: the heuristic's glimpse option (``1..K``; default the last).
    :raises CheckpointError: for a folder that is not a checkpoint.
    """
    if checkpoint is None and config is None:
        raise ValueError("give a checkpoint folder or a config")
    if checkpoint is None:
        cfg = config if isinstance(config, Config) else load_config(config, overrides)
        return _random_model(cfg, policy, option)
    checkpoint = Path(checkpoint)
    ckpt = load_checkpoint(checkpoint, load_trainer=False)
    meta = ckpt.meta
    if isinstance(config, Config):
        cfg = config
    elif config is not None:
        cfg = load_config(config, overrides)
    elif "config" in meta:
        cfg = config_from_dict(meta["config"], overrides, source=str(checkpoint / "meta.json"))
    else:
        raise CheckpointError(f"{checkpoint}: meta.json holds no config; pass --config")
    stage = meta.get("stage")
    if stage == "policy":
        return _policy_model(cfg, checkpoint, ckpt, policy, option)
    num_classes = int(meta.get("num_classes") or resolve_num_classes(cfg))
    net: FocusNet
    if stage == "finetune":
        from videofocus.engine.stages import build_finetune_focusnet

        net, method = build_finetune_focusnet(cfg, checkpoint, meta)
    elif stage == "differentiable":
        from videofocus.engine.evaluate import _checkpoint_option
        from videofocus.engine.stages import build_differentiable_focusnet

        net = build_differentiable_focusnet(_checkpoint_option(cfg, meta), num_classes)
        method = "differentiable"
    elif stage == "dense":
        net, method = build_dense_baseline(cfg, num_classes), "dense"
    elif stage in ("warmup", "glance_only"):
        net = build_focusnet(cfg, num_classes)
        method = "random" if stage == "warmup" else "glance_only"
    else:
        raise CheckpointError(f"{checkpoint}: unknown stage {stage!r} in meta.json")
    load_model_state(net, ckpt.model, checkpoint)
    net.eval().requires_grad_(False)
    own = getattr(net, "policy", None)
    if policy is not None or own is None:
        method = policy or method
        chosen = _heuristic(method, net, option)
    else:
        chosen = own
    names = checkpoint_class_names(cfg, meta, num_classes, checkpoint)
    return InferenceModel(net, chosen, cfg, names, method, checkpoint)


def _policy_model(
    cfg: Config, checkpoint: Path, ckpt: Checkpoint, policy: str | None, option: int | None
) -> InferenceModel:
    from videofocus.engine.policy_stage import load_learned_policy, policy_checkpoint_focusnet

    net, num_classes = policy_checkpoint_focusnet(cfg, checkpoint, ckpt)
    if policy is not None:
        chosen, method = _heuristic(policy, net, option), policy
    else:
        chosen = load_learned_policy(cfg, ckpt)
        method = ckpt.meta.get("algo", "recurrent_ppo")
    names = checkpoint_class_names(cfg, ckpt.meta, num_classes, checkpoint)
    return InferenceModel(net, chosen, cfg, names, method, checkpoint)


def _random_model(cfg: Config, policy: str | None, option: int | None) -> InferenceModel:
    """The config's model with random weights: the learned policy's network too, with a random
    orthonormal glance projection so that its (meaningless) actions still vary with the input."""
    from videofocus.engine.factory import build_learned_policy

    torch.manual_seed(cfg.train.seed)
    num_classes = resolve_num_classes(cfg)
    net = build_focusnet(cfg, num_classes).eval().requires_grad_(False)
    if policy is not None:
        chosen, method = _heuristic(policy, net, option), policy
    else:
        learned = build_learned_policy(cfg, net)
        torch.nn.init.orthogonal_(learned.projection.weight)
        chosen, method = learned.eval(), cfg.policy.algo
    names = checkpoint_class_names(cfg, {}, num_classes, None)
    return InferenceModel(net, chosen, cfg, names, method, None)


# ------------------------------------------------------------------------------ validation sets


def rollout_manifest(
    model: InferenceModel,
    options: InferenceOptions,
    manifest: str | Path | None = None,
    batch_size: int | None = None,
    device: torch.device | str | None = None,
) -> Iterator[tuple[int, tuple[int, ...], VideoPrediction]]:
    """Yield ``(row index, labels, prediction)`` for the config's validation rows (or every row
    of ``manifest``), ``labels`` being every class index of the row (empty when unlabelled);
    undecodable rows are skipped with a warning."""
    from videofocus.engine.evaluate import build_eval_loader

    cfg = model.cfg
    loader = build_eval_loader(cfg, len(model.class_names), manifest, batch_size)
    inferencer = model.inferencer(options, device)
    labels: dict[int, tuple[int, ...]] = {}

    def batches():
        for batch in loader:
            if batch is None:
                continue
            keys = batch["index"].tolist()
            rows = [tuple(t.nonzero().flatten().tolist()) for t in batch["target"]]  # multi-hot
            labels.update(zip(keys, rows, strict=True))
            yield keys, batch["frames"]  # uint8: the inferencer normalises crops only

    for key, prediction in inferencer.run(batches()):
        yield int(key), labels.pop(int(key)), prediction


def evaluate_adaptive(
    cfg: Config | None,
    checkpoint: str | Path | InferenceModel,
    thresholds: list[float] | None = None,
    manifest: str | Path | None = None,
    options: InferenceOptions | None = None,
    policy: str | None = None,
) -> dict[str, Any]:
    """Accuracy, mAP, GMACs per video and videos/s of a checkpoint under early-exit
    ``thresholds``.

    ``accuracy`` and ``top5`` are hit@k (a video counts when any of its labels is among the top
    k classes at its exit step) and ``map`` is over the multi-hot labels (None when no row has
    a label), as in :func:`~videofocus.engine.evaluate.evaluate_checkpoint`.

    :param cfg: the config (None: the one stored in the checkpoint).
    :param checkpoint: a checkpoint folder, or an already loaded :class:`InferenceModel`.
    :param thresholds: per-step exit thresholds (overrides ``options.thresholds``).
    :param manifest: evaluate every row of this manifest instead of the validation rows.
    """
    model = (
        checkpoint
        if isinstance(checkpoint, InferenceModel)
        else load_inference_model(checkpoint, cfg, policy=policy)
    )
    options = replace(options or InferenceOptions(), thresholds=thresholds)
    start = time.perf_counter()
    correct, top5, gmacs, exits, probs, targets = [], [], [], [], [], []
    for _, labels, p in rollout_manifest(model, options, manifest):
        top = p.logits.topk(min(5, p.logits.numel())).indices.tolist()
        correct.append(top[0] in labels)
        top5.append(any(label in top for label in labels))
        gmacs.append(p.gmacs)
        exits.append(p.exit_step)
        probs.append(p.logits.softmax(-1))
        positives = torch.tensor(labels, dtype=torch.long)
        targets.append(torch.zeros_like(p.logits).index_fill_(0, positives, 1.0))
    seconds = time.perf_counter() - start
    n = len(correct)
    if n == 0:
        raise RuntimeError("no video of the evaluation set could be decoded")
    multi_hot = torch.stack(targets)
    steps = max(exits) + 1
    return {
        "method": model.method,
        "videos": n,
        "accuracy": sum(correct) / n,
        "top5": sum(top5) / n,
        "map": mean_average_precision(torch.stack(probs), multi_hot) if multi_hot.any() else None,
        "gmacs_per_video": sum(gmacs) / n,
        "videos_per_s": n / seconds,
        "exit_thresholds": thresholds,
        "exit_fraction": [exits.count(s) / n for s in range(steps)],
    }


@dataclass(frozen=True)
class CalibrationRollouts:
    """What calibration replays: per video and step, the running top-1 probability, whether
    that top-1 is right, and the cost of stopping there (all ``[N, T]``)."""

    confidence: torch.Tensor
    correct: torch.Tensor
    step_costs: torch.Tensor

    @property
    def cost_range(self) -> tuple[float, float]:
        """Mean cost per video when every video stops after its first chunk / never early."""
        return float(self.step_costs[:, 0].mean()), float(self.step_costs[:, -1].mean())


def record_rollouts(
    model: InferenceModel,
    options: InferenceOptions | None = None,
    manifest: str | Path | None = None,
) -> CalibrationRollouts:
    """Run every validation video (or every row of ``manifest``) through all steps, no exit."""
    options = replace(options or InferenceOptions(), thresholds=None)
    confidence, correct, actions = [], [], []
    for _, labels, p in rollout_manifest(model, options, manifest):
        confidence.append(p.step_confidence)
        correct.append([t in labels for t in p.step_top1])  # hit@1
        actions.append(p.actions)
    if not confidence:
        raise RuntimeError("no video of the calibration set could be decoded")
    step_costs = chunked_step_costs(torch.stack(actions), model.cost_table(), options.chunk_steps)
    return CalibrationRollouts(torch.tensor(confidence), torch.tensor(correct), step_costs)


def calibrate_budget(
    model: InferenceModel,
    budget_gmacs: float,
    options: InferenceOptions | None = None,
    manifest: str | Path | None = None,
    save: bool = True,
    rollouts: CalibrationRollouts | None = None,
) -> ExitCalibration:
    """Per-step exit thresholds meeting ``budget_gmacs`` on a labelled validation set.

    Runs every validation video through all steps once (no exit), then searches thresholds on the
    recorded confidences (:func:`~videofocus.engine.early_exit.calibrate_thresholds`) with the
    same chunked cost accounting as inference. With ``save`` and a checkpoint, the result is
    written to ``<checkpoint>/exit_thresholds.json`` for later runs.

    :param rollouts: :func:`record_rollouts` of the same model and options, when already run.
    """
    options = replace(options or InferenceOptions(), thresholds=None)
    rollouts = rollouts or record_rollouts(model, options, manifest)
    result = calibrate_thresholds(
        rollouts.confidence, rollouts.step_costs, budget_gmacs, rollouts.correct
    )
    exits = apply_thresholds(rollouts.confidence, result.thresholds)
    logger.info("calibrated exits %s on %d videos", exits.bincount().tolist(), len(exits))
    if save and model.checkpoint is not None:
        (model.checkpoint / THRESHOLDS_FILE).write_text(
            json.dumps(
                {
                    "budget_gmacs": result.budget,
                    "achieved_gmacs": result.achieved,
                    "accuracy": result.accuracy,
                    "chunk_steps": options.chunk_steps,
                    "thresholds": result.thresholds,
                    "exit_fraction": result.exit_fraction,
                },
                indent=2,
            )
            + "\n",
            encoding="utf-8",
        )
    return result


def stored_thresholds(checkpoint: Path, budget_gmacs: float, chunk_steps: int) -> list[float]:
    """Thresholds a previous calibration stored for this budget and chunking.

    :raises FileNotFoundError: when none matches (naming what to pass instead).
    """
    path = checkpoint / THRESHOLDS_FILE
    if path.is_file():
        data = json.loads(path.read_text(encoding="utf-8"))
        if (
            abs(data.get("budget_gmacs", -1) - budget_gmacs) <= 1e-9 * budget_gmacs
            and data.get("chunk_steps") == chunk_steps
        ):
            return list(data["thresholds"])
    raise FileNotFoundError(
        f"{path}: no exit thresholds calibrated for {budget_gmacs} GMACs/video with chunk "
        f"{chunk_steps}; pass --calibrate MANIFEST (a labelled validation manifest)"
    )
