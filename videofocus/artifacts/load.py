"""Any checkpoint folder -> its model: the one stage switch every command uses.

==================  ==============================================================  ==========
stage               model                                                           method
==================  ==============================================================  ==========
``finetune``        ``PolicyFocusNet``: the fine-tuned network with the learned     its algo
                    policy it was fine-tuned on (weights inside)
``policy``          the same on the copy of the warm-up network it holds            its algo
``differentiable``  ``DifferentiableFocusNet`` (AdaFocusV2-style centres)           differentiable
``warmup``          ``FocusNet`` (trained on random glimpses)                       random
``dense``           the dense baseline (whole frames at full resolution)            dense
``glance_only``     ``FocusNet``, every frame skipped                               glance_only
``finetune_<h>``    the warm-up network fine-tuned on heuristic ``h``'s glimpses    ``h``
                    (``h`` = ``oracle``: a plain ``FocusNet``, given its glimpses)
==================  ==============================================================  ==========

A folder needs nothing outside itself: its ``meta.json`` holds the config, the class names and
the learned policy's shape, its weights everything else. So ``final/`` copied alone anywhere
loads the same model, and loading needs no training code.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from videofocus.artifacts.checkpoint import (
    META_FILE,
    Checkpoint,
    CheckpointError,
    CheckpointMeta,
    load_checkpoint,
    load_model_state,
)
from videofocus.artifacts.factory import (
    build_dense_baseline,
    build_differentiable_focusnet,
    build_focusnet,
)
from videofocus.artifacts.learned_policy import (
    learned_policy_from_meta,
    load_learned_policy,
    policy_checkpoint_focusnet,
)
from videofocus.config import Config, config_from_dict, config_to_dict, load_config
from videofocus.models import FocusNet
from videofocus.policy.focusnet import PolicyFocusNet
from videofocus.policy.heuristics import ORACLE, create_policy

__all__ = ["STAGE_METHODS", "LoadedModel", "class_names_or_placeholders", "load_model"]

#: What acts in a checkpoint of each stage without a learned policy (see the table above).
STAGE_METHODS = {
    "warmup": "random",
    "dense": "dense",
    "glance_only": "glance_only",
    "differentiable": "differentiable",
}


@dataclass
class LoadedModel:
    """A checkpoint's model, ready to run (eval mode, no gradients, on the CPU).

    :ivar net: the network; for ``policy``, ``finetune`` and ``differentiable`` it carries its
        own policy (``net.policy``).
    :ivar cfg: the config it was trained with (or the one given instead).
    """

    net: FocusNet
    cfg: Config
    meta: CheckpointMeta
    path: Path
    class_names: list[str]

    @property
    def stage(self) -> str:
        """The stage that wrote the checkpoint."""
        return self.meta.stage

    @property
    def method(self) -> str:
        """What chooses the glimpses: the policy's algorithm (or heuristic), else the stage's."""
        policy = self.meta.policy or {}
        if "algo" in policy or "heuristic" in policy:
            return str(policy.get("algo") or policy["heuristic"])
        return ORACLE if _oracle_stage(self.meta.stage) else STAGE_METHODS[self.meta.stage]


def class_names_or_placeholders(
    names: list[str] | None, num_classes: int, source: str
) -> list[str]:
    """``names``, or ``class_0``, ``class_1``, ... with a one-line warning on stderr when
    training recorded none (its classes file could not be read)."""
    if names is not None and len(names) == num_classes:
        return list(names)
    print(
        f"WARNING: {source} names none of its {num_classes} classes; labels will read "
        f"class_0..class_{num_classes - 1}",
        file=sys.stderr,
        flush=True,
    )
    return [f"class_{i}" for i in range(num_classes)]


def load_model(
    path: str | Path, config: str | Path | Config | None = None, overrides: Sequence[str] = ()
) -> LoadedModel:
    """Load the model of any checkpoint folder (e.g. ``runs/x/finetune/final``).

    :param config: replaces the config stored in the checkpoint (a path or a config).
    :param overrides: dotted overrides on the config.
    :raises CheckpointError: for a folder that is not a checkpoint, one of an older videofocus
        or weights that do not fit the config's model.
    """
    path = Path(path)
    ckpt = load_checkpoint(path, load_trainer=False)
    meta = ckpt.meta
    if isinstance(config, Config):
        cfg = config
        if overrides:
            cfg = config_from_dict(config_to_dict(config), overrides, source=config.name)
    elif config is not None:
        cfg = load_config(config, overrides)
    else:
        cfg = config_from_dict(meta.config, overrides, source=str(path / META_FILE))
    net = _build(cfg, path, ckpt)
    net.eval().requires_grad_(False)
    names = class_names_or_placeholders(meta.class_names, meta.num_classes, str(path))
    return LoadedModel(net, cfg, meta, path, names)


def _build(cfg: Config, path: Path, ckpt: Checkpoint) -> FocusNet:
    meta = ckpt.meta
    n = meta.num_classes
    if meta.stage == "policy":
        net, _ = policy_checkpoint_focusnet(cfg, path, ckpt)
        return PolicyFocusNet(net, load_learned_policy(cfg, ckpt), train_local=False)
    model: FocusNet
    if meta.policy is not None and "heuristic" in meta.policy:  # fine-tuned on a heuristic
        net = build_focusnet(cfg, n)
        option = {} if meta.policy["option"] is None else {"option": meta.policy["option"]}
        heuristic = create_policy(meta.policy["heuristic"], net.options, net.grid, **option)
        model = PolicyFocusNet(net, heuristic, cfg.train.finetune_local)
    elif meta.stage == "finetune":
        assert meta.policy is not None  # CheckpointMeta.from_dict requires it
        policy = learned_policy_from_meta(cfg, meta.policy)
        model = PolicyFocusNet(build_focusnet(cfg, n), policy, cfg.train.finetune_local)
    elif meta.stage == "differentiable":
        model = build_differentiable_focusnet(_trained_option(cfg, meta), n)
    elif meta.stage == "dense":
        model = build_dense_baseline(cfg, n)
    elif meta.stage in ("warmup", "glance_only") or _oracle_stage(meta.stage):
        model = build_focusnet(cfg, n)
    else:
        raise CheckpointError(f"{path / META_FILE}: unknown stage {meta.stage!r}")
    load_model_state(model, ckpt.model, path)
    return model


def _oracle_stage(stage: str) -> bool:
    """Whether ``stage`` is the oracle's fine-tune (``finetune_oracle_o<k>``)."""
    return stage.startswith(f"finetune_{ORACLE}_")


def _trained_option(cfg: Config, meta: CheckpointMeta) -> Config:
    """``cfg`` with the ``differentiable_option`` the checkpoint was trained with (its policy's
    option is a buffer of the weights, so the model must be built for it)."""
    trained = meta.config.get("train", {}).get("differentiable_option")
    if trained is None or trained > len(cfg.model.options):
        return cfg
    return replace(cfg, train=replace(cfg.train, differentiable_option=int(trained)))
