"""videofocus: adaptive video recognition.

A light CNN glances at every frame, an RL policy chooses where, how sharply and whether to look
closely, and a high-capacity CNN sees only those glimpses (``docs/architecture.md``). The API
loads its modules when called, so ``import videofocus`` stays light::

    import videofocus
    labeler = videofocus.load("runs/x/finetune/final")    # any checkpoint folder
    rows = labeler.label(["a.mp4", "b.mp4"])              # one result row per video
    net = videofocus.create_model("synthetic_tiny")       # a config's FocusNet, random weights
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from videofocus.config import Config
    from videofocus.labeling.labeler import Labeler
    from videofocus.models import FocusNet

__version__ = "0.1.0"

__all__ = ["__version__", "create_model", "load"]


def load(checkpoint: str | Path, device: str | None = None, policy: str | None = None) -> Labeler:
    """A checkpoint folder of any stage (e.g. ``runs/x/finetune/final``), ready to label
    videos: ``load(path).label(videos)``.

    :param device: ``cpu``, ``cuda``, ... (default: the checkpoint config's ``train.device``).
    :param policy: a heuristic replacing the checkpoint's own policy (``random``, ``centre``, ...).
    """
    from videofocus.inference.model import load_inference_model
    from videofocus.labeling.labeler import Labeler

    return Labeler(load_inference_model(checkpoint, policy=policy), device=device)


def create_model(config: str | Path | Config, overrides: tuple[str, ...] = ()) -> FocusNet:
    """The FocusNet a config (name, YAML path or :class:`~videofocus.config.Config`) describes,
    with random weights."""
    from videofocus.artifacts.factory import build_focusnet
    from videofocus.config import Config, load_config

    cfg = config if isinstance(config, Config) else load_config(config, overrides)
    return build_focusnet(cfg)
