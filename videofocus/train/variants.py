"""Variants of a main training run: other configs sharing its finished stages, and the
warm-up model fine-tuned on a heuristic's glimpses (the counterpart of ``finetune`` for a policy
that needs no training). ``bench policy``, the quickstart and ``ablate`` run their comparisons
with these.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from videofocus.artifacts.checkpoint import load_checkpoint
from videofocus.artifacts.factory import build_focusnet
from videofocus.config import Config, config_from_dict, config_to_dict
from videofocus.models import FocusNet
from videofocus.policy.focusnet import PolicyFocusNet, policy_chooses
from videofocus.policy.heuristics import create_policy
from videofocus.train.stages import SupervisedStage, focus_loss

#: The heuristic policies compared with the learned ones.
HEURISTICS = ("random", "centre", "saliency")


#: Stages of the main run folder, in training order.
MAIN_STAGES = ("glance_only", "dense", "warmup", "policy", "finetune")


#: Finished stages a variant folder borrows from the main run.
SHARED_STAGES = ("dense", "warmup")


def with_overrides(cfg: Config, overrides: list[str], out_dir: Path | None = None) -> Config:
    """``cfg`` with dotted ``overrides`` applied (validated) and, if given, another run folder."""
    if overrides:
        cfg = config_from_dict(config_to_dict(cfg), overrides, source=cfg.name)
    if out_dir is not None:
        cfg = replace(cfg, train=replace(cfg.train, out_dir=str(out_dir)))
    return cfg


def share_stages(source: Path, target: Path, stages: tuple[str, ...] = SHARED_STAGES) -> None:
    """Make ``target/<stage>`` a symlink to ``source/<stage>`` for each finished stage.

    A folder already there (a link, or a copy a user made) is kept as it is.
    """
    target.mkdir(parents=True, exist_ok=True)
    for stage in stages:
        src = (source / stage).resolve()
        if not (src / "final").is_dir():
            raise FileNotFoundError(f"{src}/final: stage {stage!r} of the main run is not finished")
        link = target / stage
        if not (link.exists() or link.is_symlink()):
            link.symlink_to(src, target_is_directory=True)


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
