"""Stage orchestration: ``warmup -> policy -> finetune`` (and the baselines) from one config.

Every stage writes ``<train.out_dir>/<stage>/final/`` when it finishes. :func:`run_stages` runs the
stages it is given in order; with ``resume=True`` a stage whose ``final/`` exists is skipped, and a
supervised stage cut short continues from its ``last/`` checkpoint, so ``--stage all`` started
again after an interruption picks up at the stage that was running. (The policy stage, which
writes nothing before it ends, starts that stage again.)

The finetune stage trains for ``train.finetune_epochs`` epochs when set, else ``train.epochs``;
so does the ``differentiable`` baseline (not part of ``all``: it is a comparison, run by name).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from videofocus.config import Config
from videofocus.train.loop import StageResult, run_supervised_stage
from videofocus.train.stages import SUPERVISED_STAGES, create_stage

__all__ = ["PIPELINE", "STAGES", "expand_stages", "run_stage", "run_stages", "stage_config"]

#: What ``all`` stands for: the three AdaFocus stages.
PIPELINE = ("warmup", "policy", "finetune")

#: Every stage name :func:`run_stage` knows.
STAGES = (*SUPERVISED_STAGES, "policy")


def expand_stages(stages: Sequence[str], cfg: Config | None = None) -> list[str]:
    """``stages`` with ``all`` replaced by :data:`PIPELINE`, repeats dropped, order kept.

    When ``cfg.train.warmup_init`` is ``"dense"``, ``all`` starts with the dense stage that
    warm-up initialises from (AdaFocus's stage 0: the CNNs trained on whole frames).

    :raises ValueError: for an unknown stage name.
    """
    pipeline = PIPELINE
    if cfg is not None and cfg.train.warmup_init == "dense":
        pipeline = ("dense", *PIPELINE)
    out: list[str] = []
    for name in stages:
        names = pipeline if name == "all" else (name,)
        for n in names:
            if n not in STAGES:
                raise ValueError(f"unknown stage {n!r}; choose from {[*STAGES, 'all']}")
            if n not in out:
                out.append(n)
    return out


def stage_config(cfg: Config, name: str) -> Config:
    """The config stage ``name`` runs with (``finetune_epochs`` applied, see the module docs)."""
    if name in ("finetune", "differentiable") and cfg.train.finetune_epochs is not None:
        return replace(cfg, train=replace(cfg.train, epochs=cfg.train.finetune_epochs))
    return cfg


def run_stage(cfg: Config, name: str, resume: bool = False, progress: bool = True) -> StageResult:
    """Run the stage ``name`` (:data:`STAGES`); ``resume`` skips it if finished and continues a
    supervised one from ``last/``; ``progress`` shows progress bars."""
    if name == "policy":
        from videofocus.train.rl.stage import run_policy_stage

        return run_policy_stage(cfg, resume=resume, progress=progress)
    if name not in SUPERVISED_STAGES:
        raise ValueError(f"unknown stage {name!r}; choose from {list(STAGES)}")
    cfg = stage_config(cfg, name)
    return run_supervised_stage(cfg, create_stage(name, cfg), resume=resume, progress=progress)


def run_stages(
    cfg: Config, stages: Sequence[str], resume: bool = False, progress: bool = True
) -> list[StageResult]:
    """Run ``stages`` (e.g. ``["all"]``, ``["policy", "finetune"]``) in order, as
    :func:`run_stage` does; returns one result per stage."""
    return [run_stage(cfg, name, resume, progress) for name in expand_stages(stages, cfg)]
