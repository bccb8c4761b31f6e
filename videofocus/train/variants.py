"""The stages the experiment runner (:mod:`videofocus.experiment.runner`) adds to the main
pipeline's: the warm-up model fine-tuned on a heuristic's (or the oracle's) glimpses (the
counterpart of ``finetune`` for a policy that needs no training), and the training time a
checkpoint records.
"""

from __future__ import annotations

from pathlib import Path

from videofocus.artifacts.checkpoint import load_checkpoint
from videofocus.artifacts.factory import glimpse_options
from videofocus.config import Config
from videofocus.data.synthetic import read_targets
from videofocus.evaluation.policy_eval import ORACLE, oracle_actions
from videofocus.models import FocusNet
from videofocus.policy.focusnet import PolicyFocusNet, policy_chooses
from videofocus.policy.heuristics import create_policy
from videofocus.train.stages import SupervisedStage, fixed_actions, focus_loss, focusnet_from


def heuristic_stage(cfg: Config, heuristic: str, option: int) -> SupervisedStage:
    """The warm-up model fine-tuned on a heuristic's glimpses at ``option``; ``heuristic`` may be
    :data:`~videofocus.evaluation.policy_eval.ORACLE` (the target tracks' glimpses, the same
    parts frozen)."""
    warmup = Path(cfg.train.out_dir) / "warmup" / "final"
    name = f"finetune_{heuristic}_o{option}"
    if heuristic == ORACLE:
        act = oracle_actions(
            read_targets(cfg.data.root),
            glimpse_options(cfg),
            cfg.model.grid,
            option,
            cfg.data.frame_size,
        )

        def build_oracle(c: Config, num_classes: int) -> FocusNet:
            net = focusnet_from(c, num_classes, warmup)
            net.freeze_encoders(c.train.finetune_local)
            return net

        return SupervisedStage(
            name, build_oracle, lambda m, batch, t, e, tr: act(m, batch, t), focus_loss
        )

    def build(c: Config, num_classes: int) -> FocusNet:
        net = focusnet_from(c, num_classes, warmup)
        policy = create_policy(heuristic, net.options, net.grid, option=option)
        return PolicyFocusNet(net, policy, train_local=c.train.finetune_local)

    return SupervisedStage(name, build, fixed_actions(policy_chooses), focus_loss)


def train_seconds(*final_dirs: Path) -> float:
    """Training time the checkpoints' meta records, summed."""
    return sum(load_checkpoint(d, load_trainer=False).meta.train_seconds for d in final_dirs)
