"""The stages the experiment runner (:mod:`videofocus.experiment.runner`) adds to the main
pipeline's: the warm-up model fine-tuned on a heuristic's glimpses (the counterpart of
``finetune`` for a policy that needs no training), and the training time a checkpoint records.
"""

from __future__ import annotations

from pathlib import Path

from videofocus.artifacts.checkpoint import load_checkpoint
from videofocus.artifacts.factory import build_focusnet
from videofocus.config import Config
from videofocus.models import FocusNet
from videofocus.policy.focusnet import PolicyFocusNet, policy_chooses
from videofocus.policy.heuristics import create_policy
from videofocus.train.stages import SupervisedStage, focus_loss


def heuristic_stage(cfg: Config, heuristic: str, option: int) -> SupervisedStage:
    """The warm-up model fine-tuned on a heuristic's glimpses at ``option`` (the counterpart of
    the ``finetune`` stage for a policy that needs no training)."""
    warmup = Path(cfg.train.out_dir) / "warmup" / "final"

    def build(c: Config, num_classes: int) -> FocusNet:
        net = build_focusnet(c, num_classes)
        net.load_state_dict(load_checkpoint(warmup, load_trainer=False).model)
        policy = create_policy(heuristic, net.options, net.grid, option=option)
        return PolicyFocusNet(net, policy, train_local=c.train.finetune_local)

    return SupervisedStage(
        f"finetune_{heuristic}_o{option}",
        build,
        lambda m, ids, t, e, tr: policy_chooses(len(ids), t),
        focus_loss,
    )


def train_seconds(*final_dirs: Path) -> float:
    """Training time the checkpoints' meta records, summed."""
    return sum(load_checkpoint(d, load_trainer=False).meta.train_seconds for d in final_dirs)
