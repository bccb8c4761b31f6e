"""A model ready for adaptive inference: network + glimpse policy + cost table + class names.

:func:`load_inference_model` loads any checkpoint folder (or builds a config's model with random
weights, for dry runs); :func:`rollout_manifest` runs it on a labelled manifest and
:func:`calibrate_budget` turns a GMACs budget into per-step exit thresholds.

A checkpoint acts with its own policy or, for the supervised stages, with what it was trained on
(``warmup``: random cells at the largest option; ``dense``: whole frames; ``glance_only``: no
glimpse); ``policy=NAME`` replaces it by a heuristic.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from videofocus.artifacts.factory import build_focusnet, build_learned_policy, resolve_num_classes
from videofocus.artifacts.load import class_names_or_placeholders, load_model
from videofocus.config import Config, load_config
from videofocus.data.loaders import build_eval_loader
from videofocus.data.manifest import ManifestError, read_classes
from videofocus.inference.early_exit import ExitCalibration, apply_thresholds, calibrate_thresholds
from videofocus.inference.inferencer import (
    AdaptiveInferencer,
    InferenceOptions,
    VideoPrediction,
    chunked_step_costs,
)
from videofocus.models import FocusNet
from videofocus.models.cost import CostTable
from videofocus.policy.heuristics import GlimpsePolicy, create_policy, takes_option
from videofocus.runtime import select_device

__all__ = [
    "CalibrationRollouts",
    "InferenceModel",
    "calibrate_budget",
    "config_class_names",
    "load_inference_model",
    "record_rollouts",
    "rollout_manifest",
]

logger = logging.getLogger(__name__)

#: Exit thresholds a calibration stored beside a checkpoint (``label --budget-gmacs`` reuses them).
THRESHOLDS_FILE = "exit_thresholds.json"


@dataclass
class InferenceModel:
    """Everything inference needs: the network (eval mode), the policy it acts with, its config
    and class names, ``method`` (what acts: ``ppo``, ``random``, ``dense``, ...) and the
    ``checkpoint`` folder it came from (None for random weights)."""

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


def config_class_names(cfg: Config, num_classes: int) -> list[str]:
    """The class names of a config's random-weights model: its classes file when that names
    ``num_classes`` classes, else placeholders (with a warning)."""
    try:
        names: list[str] | None = read_classes(cfg.data.resolve(cfg.data.classes))
    except ManifestError:
        names = None
    return class_names_or_placeholders(names, num_classes, f"config {cfg.name}")


def _heuristic(name: str, net: FocusNet, option: int | None) -> GlimpsePolicy:
    kwargs = {}
    if takes_option(name):
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
    :param policy: a heuristic replacing the checkpoint's own policy.
    :param option: the heuristic's glimpse option (``1..K``; default the last).
    """
    if checkpoint is None and config is None:
        raise ValueError("give a checkpoint folder or a config")
    if checkpoint is None:
        cfg = config if isinstance(config, Config) else load_config(config, overrides)
        return _random_model(cfg, policy, option)
    loaded = load_model(checkpoint, config, overrides)
    net, method = loaded.net, policy or loaded.method
    chosen = getattr(net, "policy", None)
    if policy is not None or chosen is None:
        chosen = _heuristic(method, net, option)
    return InferenceModel(net, chosen, loaded.cfg, loaded.class_names, method, loaded.path)


def _random_model(cfg: Config, policy: str | None, option: int | None) -> InferenceModel:
    """The config's model with random weights: the learned policy's network too, with a random
    orthonormal glance projection so that its (meaningless) actions still vary with the input."""
    torch.manual_seed(cfg.train.seed)
    num_classes = resolve_num_classes(cfg)
    net = build_focusnet(cfg, num_classes).eval().requires_grad_(False)
    if policy is not None:
        chosen, method = _heuristic(policy, net, option), policy
    else:
        learned = build_learned_policy(cfg, net)
        torch.nn.init.orthogonal_(learned.projection.weight)
        chosen, method = learned.eval(), cfg.policy.algo
    return InferenceModel(net, chosen, cfg, config_class_names(cfg, num_classes), method, None)


def rollout_manifest(
    model: InferenceModel,
    options: InferenceOptions,
    manifest: str | Path | None = None,
) -> Iterator[tuple[int, tuple[int, ...], VideoPrediction]]:
    """Yield ``(row index, labels, prediction)`` for the config's validation rows (or every row
    of ``manifest``), ``labels`` being every class index of the row (empty when unlabelled);
    undecodable rows are skipped with a warning."""
    loader = build_eval_loader(model.cfg, len(model.class_names), manifest)
    inferencer = model.inferencer(options)
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


@dataclass(frozen=True)
class CalibrationRollouts:
    """What calibration replays: per video and exit, the running top-1 probability, whether
    that top-1 is right, and the cost of stopping there (all ``[N, T]``, or ``[N, T + 1]`` with
    ``glance_exit``: column 0 the glance-only prediction, exit 0)."""

    confidence: torch.Tensor
    correct: torch.Tensor
    step_costs: torch.Tensor
    glance_exit: bool = False

    @classmethod
    def from_predictions(
        cls,
        labelled: Iterable[tuple[Sequence[int], VideoPrediction]],
        cost: CostTable,
        chunk_steps: int,
        glance_exit: bool = False,
    ) -> CalibrationRollouts:
        """The rollouts of no-exit predictions, each with its row's class indices (hit@1
        counts any of them); ``glance_exit``: they were run with it, column 0 is the glance's.

        :raises RuntimeError: without any prediction.
        """
        confidence, correct, actions = [], [], []
        for labels, p in labelled:
            first = [p.glance_confidence] if glance_exit else []
            first_top1 = [p.glance_top1] if glance_exit else []
            confidence.append([*first, *p.step_confidence])
            correct.append([t in labels for t in (*first_top1, *p.step_top1)])
            actions.append(p.actions)
        if not confidence:
            raise RuntimeError("no video of the calibration set could be decoded")
        step_costs = chunked_step_costs(torch.stack(actions), cost, chunk_steps, glance_exit)
        return cls(torch.tensor(confidence), torch.tensor(correct), step_costs, glance_exit)

    @property
    def cost_range(self) -> tuple[float, float]:
        """Mean cost per video when every video stops at its first exit / never early."""
        return float(self.step_costs[:, 0].mean()), float(self.step_costs[:, -1].mean())


def record_rollouts(
    model: InferenceModel,
    options: InferenceOptions | None = None,
    manifest: str | Path | None = None,
) -> CalibrationRollouts:
    """Run every validation video (or every row of ``manifest``) through all steps, no exit;
    with ``options.glance_exit`` the glance-only prediction is recorded as exit 0."""
    options = replace(options or InferenceOptions(), thresholds=None)
    labelled = ((labels, p) for _, labels, p in rollout_manifest(model, options, manifest))
    return CalibrationRollouts.from_predictions(
        labelled, model.cost_table(), options.chunk_steps, options.glance_exit
    )


def calibrate_budget(
    model: InferenceModel,
    budget_gmacs: float,
    options: InferenceOptions | None = None,
    manifest: str | Path | None = None,
    save: bool = True,
    rollouts: CalibrationRollouts | None = None,
) -> ExitCalibration:
    """Per-step exit thresholds meeting ``budget_gmacs`` on a labelled validation set (or
    ``manifest``), with inference's chunked cost accounting. With ``options.glance_exit`` the
    glance-only prediction is exit 0 with a threshold of its own (one threshold more). With
    ``save`` and a checkpoint, the result is written to ``<checkpoint>/exit_thresholds.json``
    for later runs.

    :param rollouts: :func:`record_rollouts` of the same model and options, when already run.
    """
    options = options or InferenceOptions()
    rollouts = rollouts or record_rollouts(model, options, manifest)
    if rollouts.glance_exit != options.glance_exit:
        raise ValueError(
            f"rollouts recorded with glance_exit={rollouts.glance_exit} cannot calibrate "
            f"glance_exit={options.glance_exit}: record them with the same options"
        )
    result = calibrate_thresholds(
        rollouts.confidence, rollouts.step_costs, budget_gmacs, rollouts.correct
    )
    exits = apply_thresholds(rollouts.confidence, result.thresholds)
    logger.info(
        "calibrated exits %s on %d videos (%s rule)",
        exits.bincount().tolist(),
        len(exits),
        result.rule,
    )
    if save and model.checkpoint is not None:
        stored = {
            "budget_gmacs": result.budget,
            "achieved_gmacs": result.achieved,
            "accuracy": result.accuracy,
            "chunk_steps": options.chunk_steps,
            "glance_exit": options.glance_exit,
            "thresholds": result.thresholds,
            "exit_fraction": result.exit_fraction,
            "rule": result.rule,
        }
        text = json.dumps(stored, indent=2) + "\n"
        (model.checkpoint / THRESHOLDS_FILE).write_text(text, encoding="utf-8")
    return result


def stored_thresholds(
    checkpoint: Path, budget_gmacs: float, chunk_steps: int, glance_exit: bool = False
) -> list[float]:
    """Thresholds a previous calibration stored for this budget, chunking and glance exit (a
    file from before the glance exit was calibrated without it).

    :raises FileNotFoundError: when none matches.
    """
    path = checkpoint / THRESHOLDS_FILE
    if path.is_file():
        data = json.loads(path.read_text(encoding="utf-8"))
        if (
            abs(data.get("budget_gmacs", -1) - budget_gmacs) <= 1e-9 * budget_gmacs
            and data.get("chunk_steps") == chunk_steps
            and data.get("glance_exit", False) == glance_exit
        ):
            return list(data["thresholds"])
    glance = ", glance exit on" if glance_exit else ""
    raise FileNotFoundError(
        f"{path}: no exit thresholds calibrated for {budget_gmacs} GMACs/video with chunk "
        f"{chunk_steps}{glance}; pass --calibrate MANIFEST (a labelled validation manifest)"
    )
