"""Labeling from Python: ``videofocus.load("runs/x/finetune/final").label(["a.mp4", "b.mp4"])``
returns, in memory and in the order given, the rows ``videofocus label`` writes (both go through
:func:`~videofocus.labeling.rows.labelled_rows`; the command adds shards, resume and a crash-safe
file)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from videofocus.inference.inferencer import InferenceOptions
from videofocus.inference.model import InferenceModel
from videofocus.labeling.inputs import LabelItem
from videofocus.labeling.job import LabelJobOptions, label_loader
from videofocus.labeling.rows import labelled_rows

__all__ = ["Labeler"]


class Labeler:
    """Labels videos with one ``model`` (:func:`videofocus.load` makes one), with inference
    ``options``, on ``device`` (default: the config's ``train.device``)."""

    def __init__(
        self,
        model: InferenceModel,
        options: InferenceOptions | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        self.model = model
        self.inferencer = model.inferencer(options or InferenceOptions(), device)

    @property
    def class_names(self) -> list[str]:
        """One name per output class."""
        return self.model.class_names

    def label(
        self, videos: Sequence[str | Path], topk: int = 5, batch_size: int = 8
    ) -> list[dict[str, Any]]:
        """One result row per video file, in the order given (an undecodable one gets an
        ``error`` row), with ``topk`` labels, decoding ``batch_size`` clips per batch."""
        items = [LabelItem(id=str(v), path=Path(v).resolve()) for v in videos]
        loader = label_loader(items, self.model.cfg.data, LabelJobOptions(batch_size=batch_size), 0)
        rows = dict(labelled_rows(items, self.model, self.inferencer, loader, topk))
        return [rows[i] for i in range(len(items))]
