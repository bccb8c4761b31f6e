"""``videofocus flops``: the per-component and per-video GMACs a config's model costs, measured
by :class:`~videofocus.models.cost.CostTable` on networks built on the ``meta`` device."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

import torch

from videofocus.artifacts.factory import (
    build_dense_baseline,
    build_focusnet,
    build_learned_policy,
    resolve_num_classes,
)
from videofocus.config import Config, load_config
from videofocus.models.cost import GIGA, CostTable
from videofocus.models.glimpse import dense_actions, skip_actions

__all__ = ["flops_report", "format_report", "run_flops"]


def flops_report(cfg: Config) -> dict[str, Any]:
    """Per-component and per-video GMACs of the model ``cfg`` describes (built on ``meta``,
    pretrained paths ignored).

    Per-video totals (``data.frames`` steps, no early exit): ``option_k``, every frame glimpsed
    with option ``k``; ``glance_only``, no policy, no glimpse; ``dense_baseline``, the local
    backbone on every whole frame. ``gmacs_per_video`` is ``option_1``, the default usage.

    :raises ConfigError: when the number of classes cannot be resolved.
    """
    model = dataclasses.replace(cfg.model, glance_pretrained=None, local_pretrained=None)
    cfg = dataclasses.replace(cfg, model=model)
    num_classes = resolve_num_classes(cfg)
    size, steps = cfg.data.frame_size, cfg.data.frames
    with torch.device("meta"):
        net = build_focusnet(cfg, num_classes)
        policy = build_learned_policy(cfg, net)
        dense = build_dense_baseline(cfg, num_classes)
    table = CostTable.from_model(net, size, policy)
    dense_table = CostTable.from_model(dense, size)

    def gmacs(table: CostTable, actions: torch.Tensor) -> float:
        return float(table.usage_from_actions(actions)[0])

    per_video = {
        f"option_{i}": gmacs(table, dense_actions(1, steps, i))
        for i in range(1, table.num_options + 1)
    }
    no_policy = dataclasses.replace(table, policy=0)
    per_video["glance_only"] = gmacs(no_policy, skip_actions(1, steps))
    per_video["dense_baseline"] = gmacs(dense_table, dense_actions(1, steps))
    options = [
        {
            "option": i + 1,
            "backbone": o.backbone or model.local_backbone,
            "extent": o.extent,
            "resolution": o.resolution,
            "gmacs": macs / GIGA,
        }
        for i, (o, macs) in enumerate(zip(model.options, table.local, strict=True))
    ]
    return {
        "config": cfg.name,
        "unit": "GMACs (10^9 multiply-accumulates = FlopCounterMode FLOPs / 2; "
        "the papers' 'GFLOPs')",
        "frames": steps,
        "frame_size": size,
        "glance": {"backbone": model.glance_backbone, "resolution": model.glance_resolution},
        "components": {
            "glance_per_frame": table.glance / GIGA,
            "policy_per_step": table.policy / GIGA,
            "aggregator_per_step": table.aggregator / GIGA,
            "local_per_glimpse": options,
            "dense_local_per_frame": dense_table.local[0] / GIGA,
        },
        "per_video": per_video,
        "gmacs_per_video": per_video["option_1"],
    }


def format_report(report: dict[str, Any]) -> str:
    """The :func:`flops_report` as a plain-text table."""
    comp = report["components"]
    glance, per_video = report["glance"], report["per_video"]
    glance_label = f"glance ({glance['backbone']} @ {glance['resolution']} px) / frame"
    rows: list[tuple[str, float]] = [
        (glance_label, comp["glance_per_frame"]),
        ("policy / step", comp["policy_per_step"]),
        ("aggregator / step", comp["aggregator_per_step"]),
    ]
    for o in comp["local_per_glimpse"]:
        label = f"glimpse option {o['option']} ({o['backbone']}, extent {o['extent']:.3g}, "
        rows.append((label + f"{o['resolution']} px) / glimpse", o["gmacs"]))
    rows.append((f"dense local ({report['frame_size']} px) / frame", comp["dense_local_per_frame"]))
    t = report["frames"]
    video_rows = [
        (f"every frame option {k}" + (" (default)" if k == 1 else ""), per_video[f"option_{k}"])
        for k in (o["option"] for o in comp["local_per_glimpse"])
    ]
    video_rows += [
        ("glance only (no policy, no glimpse)", per_video["glance_only"]),
        ("dense baseline (whole frames, local backbone)", per_video["dense_baseline"]),
    ]
    width = max(len(label) for label, _ in rows + video_rows) + 2
    lines = [
        f"{report['config']}: {t} frames of {report['frame_size']} px",
        f"unit: {report['unit']}",
        "",
        f"{'component':<{width}}{'GMACs':>10}",
        *(f"{label:<{width}}{value:>10.4f}" for label, value in rows),
        "",
        f"{f'per video ({t} frames)':<{width}}{'GMACs':>10}",
        # small models: enough decimals that the tiny config's rows differ
        *(f"{label:<{width}}{value:>10.{2 if value >= 1 else 4}f}" for label, value in video_rows),
    ]
    return "\n".join(lines)


def run_flops(config_path: str, overrides: Sequence[str], as_json: bool) -> int:
    """``videofocus flops CONFIG [--json] [key=value ...]``: print the cost report (as JSON when
    ``as_json``); returns the exit status, 0."""
    report = flops_report(load_config(config_path, overrides))
    print(json.dumps(report, indent=2) if as_json else format_report(report))
    return 0
