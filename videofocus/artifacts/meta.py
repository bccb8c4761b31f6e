"""The :class:`~videofocus.artifacts.checkpoint.CheckpointMeta` a training stage writes."""

from __future__ import annotations

from typing import Any

import torch

import videofocus
from videofocus.artifacts.checkpoint import CheckpointMeta
from videofocus.config import Config, config_to_dict
from videofocus.data.loaders import recorded_class_names
from videofocus.data.transforms import IMAGENET_MEAN, IMAGENET_STD


def preprocessing(cfg: Config) -> dict[str, Any]:
    """How a clip becomes the network's input: RGB in ``[0, 1]``, then ``(x - mean) / std``, on
    square clips of ``frame_size`` pixels (short side resized, centre crop at evaluation)."""
    return {
        "mean": list(IMAGENET_MEAN),
        "std": list(IMAGENET_STD),
        "frame_size": cfg.data.frame_size,
        "frames": cfg.data.frames,
    }


def checkpoint_meta(
    cfg: Config,
    stage: str,
    num_classes: int,
    policy: dict[str, Any] | None = None,
    **fields: Any,
) -> CheckpointMeta:
    """The meta of a checkpoint of ``stage``: the config, the class names, the preprocessing, the
    library versions and the learned policy's shape (``policy``, from
    :func:`~videofocus.artifacts.learned_policy.learned_policy_meta`) if it holds one.

    :param fields: the other :class:`CheckpointMeta` fields (``epoch``, ``metrics``,
        ``train_seconds``).
    """
    return CheckpointMeta(
        stage=stage,
        num_classes=num_classes,
        class_names=recorded_class_names(cfg.data, num_classes),
        config=config_to_dict(cfg),
        preprocessing=preprocessing(cfg),
        policy=policy,
        versions={"videofocus": videofocus.__version__, "torch": torch.__version__},
        **fields,
    )
