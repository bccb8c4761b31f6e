"""Result rows of the label job: the ``ok`` row of a prediction, the ``error`` row of a video that
could not be labelled, and the stream of rows from decoded batches that both engines (in-process
and :mod:`~videofocus.labeling.ray_engine`) produce."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from videofocus.inference.inferencer import AdaptiveInferencer, VideoPrediction
from videofocus.inference.model import InferenceModel
from videofocus.labeling.decoding import DecodedBatch
from videofocus.labeling.inputs import LabelItem

__all__ = ["error_row", "labelled_rows", "prediction_row"]


def prediction_row(
    item: LabelItem,
    prediction: VideoPrediction,
    class_names: list[str],
    topk: int,
    frames_read: int,
    decode_ms: float,
    glimpses: bool,
    sampled_times: Sequence[float],
) -> dict[str, Any]:
    """The ``status: ok`` result line of one video; ``sampled_times``: the presentation time in
    seconds of each frame read (keyframe sampling: the keyframes; a time repeats where segments
    shared a keyframe)."""
    probs = prediction.logits.float().softmax(dim=-1)
    scores, ids = probs.topk(min(topk, probs.numel()))
    row: dict[str, Any] = {
        "id": item.id,
        "path": str(item.path),
        "status": "ok",
        "labels": [class_names[i] for i in ids.tolist()],
        "label_ids": ids.tolist(),
        "scores": [round(s, 6) for s in scores.tolist()],
        "exit_step": prediction.exit_step,
        "frames_read": frames_read,
        "sampled_times": [round(float(t), 6) for t in sampled_times],
        "gmacs": round(prediction.gmacs, 6),
        "decode_ms": round(decode_ms, 2),
        "model_ms": round(prediction.model_ms, 3),
    }
    if glimpses:
        row["glimpses"] = prediction.actions.tolist()
    return row


def error_row(item: LabelItem, error: str, decode_ms: float) -> dict[str, Any]:
    """The ``status: error`` result line of a video that could not be labelled."""
    return {
        "id": item.id,
        "path": str(item.path),
        "status": "error",
        "error": error,
        "labels": [],
        "label_ids": [],
        "scores": [],
        "exit_step": None,
        "frames_read": 0,
        "sampled_times": [],
        "gmacs": 0.0,
        "decode_ms": round(decode_ms, 2),
        "model_ms": 0.0,
    }


def labelled_rows(
    items: Sequence[LabelItem],
    model: InferenceModel,
    inferencer: AdaptiveInferencer,
    loader: Iterable[DecodedBatch],
    topk: int = 5,
    glimpses: bool = False,
) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(index in items, row)`` for every item, as it finishes (its error or prediction row),
    from ``loader``'s batches of :class:`LabelClips` over ``items``."""
    decode_ms: dict[int, float] = {}
    times: dict[int, list[float]] = {}
    failures: list[tuple[int, dict[str, Any]]] = []

    def batches():
        for batch in loader:
            failures.extend((i, error_row(items[i], e, ms)) for i, e, ms in batch.failures)
            if batch.frames is None:
                continue
            decode_ms.update(zip(batch.indices, batch.decode_ms, strict=True))
            times.update(zip(batch.indices, batch.sampled_times, strict=True))
            yield batch.indices, batch.frames  # uint8: the inferencer normalises crops only

    frames = model.cfg.data.frames
    for index, prediction in inferencer.run(batches()):
        yield from failures
        failures.clear()
        ms, sampled = decode_ms.pop(index), times.pop(index)
        row = prediction_row(
            items[index], prediction, model.class_names, topk, frames, ms, glimpses, sampled
        )
        yield index, row
    yield from failures
