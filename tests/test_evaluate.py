"""Multi-label evaluation through its entry points (``evaluate_checkpoint``, which ``videofocus
eval`` calls, and ``evaluate_adaptive``): mAP counts every label of a row, top-k is hit@k, and
single-label data scores as plain top-k accuracy / one-hot mAP."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from videofocus.artifacts.checkpoint import load_checkpoint
from videofocus.config import config_from_dict
from videofocus.data.loaders import build_eval_loader, frames_to_input
from videofocus.evaluation.evaluate import evaluate_adaptive, evaluate_checkpoint
from videofocus.inference.inferencer import InferenceOptions
from videofocus.inference.model import load_inference_model, rollout_manifest
from videofocus.models import FocusOutput
from videofocus.train.pipeline import run_stages
from videofocus.train.stages import create_stage

CLASSES = 3


@pytest.fixture(scope="module")
def warmup_run(tiny_data, tiny_config, tmp_path_factory):
    """A warm-up checkpoint trained for one epoch on the tiny data, and its config."""
    out = tmp_path_factory.mktemp("eval_run")
    cfg = config_from_dict(tiny_config(tiny_data, out, training=True, name="eval_test"))
    (result,) = run_stages(cfg, ["warmup"], progress=False)
    return cfg, result.final_dir


def _manifest(tiny_data: Path, path: Path, extra_label: bool) -> tuple[Path, list[list[int]]]:
    """All 16 rows of the tiny data as one manifest; with ``extra_label`` the first row also has
    the label after its own (a two-label row). Returns the path and every row's labels."""
    rows = [json.loads(line) for line in (tiny_data / "manifest.jsonl").open()]
    for row in rows:
        row["path"] = str((tiny_data / row["path"]).resolve())
    if extra_label:
        rows[0]["labels"] = [rows[0]["labels"][0], (rows[0]["labels"][0] + 1) % CLASSES]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path, [r["labels"] for r in rows]


def _warmup_outputs(cfg, final: Path, manifest: Path) -> list[FocusOutput]:
    """The warm-up model's outputs, computed here independently of the evaluation code, in
    batches of manifest order."""
    stage = create_stage("warmup", cfg)
    model = stage.build_model(cfg, CLASSES)
    model.load_state_dict(load_checkpoint(final, load_trainer=False).model)
    model.eval()
    outputs = []
    with torch.no_grad():
        for batch in build_eval_loader(cfg, CLASSES, manifest, batch_size=4):
            frames = frames_to_input(batch["frames"], torch.device("cpu"))
            actions = stage.actions(model, batch, frames.shape[1], 0, False)
            outputs.append(model(frames, actions))
    return outputs


def _probabilities(cfg, final: Path, manifest: Path) -> torch.Tensor:
    """The warm-up model's class probabilities ``[N, C]`` at the last step, row by row in
    manifest order."""
    return torch.cat(
        [out.logits[:, -1].softmax(-1) for out in _warmup_outputs(cfg, final, manifest)]
    )


def _hand_map(scores: torch.Tensor, labels: list[list[int]]) -> float:
    """mAP by its definition: per class, the mean over its positive videos of the precision
    among the videos ranked at or above that one; averaged over classes with a positive."""
    aps = []
    for c in range(scores.shape[1]):
        order = scores[:, c].argsort(descending=True).tolist()
        hits, precisions = 0, []
        for rank, video in enumerate(order, start=1):
            if c in labels[video]:
                hits += 1
                precisions.append(hits / rank)
        if precisions:
            aps.append(sum(precisions) / len(precisions))
    return sum(aps) / len(aps)


def _hand_hit_at_1(scores: torch.Tensor, labels: list[list[int]]) -> float:
    return sum(int(s.argmax()) in row for s, row in zip(scores, labels, strict=True)) / len(labels)


def test_a_two_label_row_counts_both_labels(warmup_run, tiny_data, tmp_path) -> None:
    cfg, final = warmup_run
    manifest, labels = _manifest(tiny_data, tmp_path / "two_labels.jsonl", extra_label=True)
    probs = _probabilities(cfg, final, manifest)
    assert probs.shape == (16, CLASSES) and len(labels[0]) == 2

    result = evaluate_checkpoint(cfg, final, manifest=manifest, batch_size=4)

    assert result["videos"] == 16
    assert result["map"] == pytest.approx(_hand_map(probs, labels), abs=1e-9)
    # the second label matters: scoring the row by its first label alone gives another number
    first_only = [row[:1] for row in labels]
    assert abs(_hand_map(probs, labels) - _hand_map(probs, first_only)) > 1e-6
    assert result["top1"] == pytest.approx(_hand_hit_at_1(probs, labels))
    assert result["topk"].startswith("hit@k")


def test_single_label_rows_score_as_before(warmup_run, tiny_data, tmp_path) -> None:
    cfg, final = warmup_run
    manifest, labels = _manifest(tiny_data, tmp_path / "one_label.jsonl", extra_label=False)
    assert all(len(row) == 1 for row in labels)
    probs = _probabilities(cfg, final, manifest)

    result = evaluate_checkpoint(cfg, final, manifest=manifest, batch_size=4)

    assert result["map"] == pytest.approx(_hand_map(probs, labels), abs=1e-9)
    truth = torch.tensor([row[0] for row in labels])
    assert result["top1"] == pytest.approx(float((probs.argmax(-1) == truth).float().mean()))
    top5 = probs.topk(min(5, CLASSES), dim=-1).indices
    assert result["top5"] == pytest.approx(float((top5 == truth[:, None]).any(-1).float().mean()))


def test_adaptive_evaluation_is_multi_label(warmup_run, tiny_data, tmp_path) -> None:
    cfg, final = warmup_run
    manifest, labels = _manifest(tiny_data, tmp_path / "two_labels.jsonl", extra_label=True)
    model = load_inference_model(final, cfg, policy="centre")  # deterministic glimpses
    options = InferenceOptions()
    rolled = sorted(rollout_manifest(model, options, manifest), key=lambda r: r[0])
    assert [list(r[1]) for r in rolled] == [sorted(row) for row in labels]
    probs = torch.stack([p.logits.softmax(-1) for _, _, p in rolled])

    result = evaluate_adaptive(cfg, model, manifest=manifest, options=options)

    assert result["videos"] == 16
    assert result["map"] == pytest.approx(_hand_map(probs, labels), abs=1e-6)
    assert result["accuracy"] == pytest.approx(_hand_hit_at_1(probs, labels))


def test_adaptive_evaluation_reports_the_glance_exit(warmup_run, tiny_data, tmp_path) -> None:
    """With the glance exit: the share of videos leaving after the glance and the glance head's
    own top-1; the glance-only logits agree with those computed here independently."""
    cfg, final = warmup_run
    manifest, labels = _manifest(tiny_data, tmp_path / "one_label.jsonl", extra_label=False)
    glance = [
        o.glance_logits.mean(dim=1).softmax(-1) for o in _warmup_outputs(cfg, final, manifest)
    ]
    model = load_inference_model(final, cfg, policy="centre")
    options = InferenceOptions(glance_exit=True)
    rolled = sorted(rollout_manifest(model, options, manifest), key=lambda r: r[0])
    confidence = torch.tensor([p.glance_confidence for _, _, p in rolled])
    # the inferencer resizes the glance input in 8 bits: confidences a little off, no more
    torch.testing.assert_close(confidence, torch.cat(glance).max(-1).values, atol=5e-3, rtol=0)
    threshold = float(confidence.median())  # about half leave after the glance
    steps = cfg.data.frames
    result = evaluate_adaptive(
        cfg, model, [threshold, *[2.0] * steps], manifest=manifest, options=options
    )
    leave = float((confidence >= threshold).float().mean())
    assert 0 < leave < 1 and result["glance_exit_rate"] == pytest.approx(leave)
    assert result["exit_fraction"][0] == pytest.approx(leave)  # exit 0: the glance exit
    assert len(result["exit_fraction"]) == steps + 1
    hits = [p.glance_top1 in row for (_, row, p) in rolled]
    assert result["glance_top1"] == pytest.approx(sum(hits) / len(hits))
    off = evaluate_adaptive(cfg, model, None, manifest=manifest)
    assert "glance_exit_rate" not in off and len(off["exit_fraction"]) == steps
