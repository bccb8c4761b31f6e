"""Probe: do the issue-15 backbones save time where they save MACs? Model only, CPU, inference.

For ``tiny_resnet``, ``tiny_resnet_scconv`` and ``tiny_resnet_sar`` (at several refine ratios,
each sample refining exactly that share of patches: ``budgeted_selection``) on one glimpse batch
(random weights, channels-last, ``torch.inference_mode``), prints the median milliseconds per
batch over ``--repeats`` timed runs (after ``--warmup`` runs) and the MACs per sample
(FlopCounterMode, as ``videofocus flops`` counts them).

    python docs/probes/backbone_speed.py --batch 128 --size 64 --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import time
from contextlib import nullcontext

import torch

from videofocus.models import create_backbone
from videofocus.models.cost import measure_macs
from videofocus.models.sar import budgeted_selection

#: (row label, backbone name, builder arguments); SAR rows time the budgeted selection
ROWS = [
    ("tiny_resnet", "tiny_resnet", {}),
    ("tiny_resnet_scconv", "tiny_resnet_scconv", {}),
    *(
        (f"tiny_resnet_sar (refine {r:g})", "tiny_resnet_sar", {"refine_ratio": r})
        for r in (0.25, 0.5, 1.0)
    ),
]


def time_backbone(
    model: torch.nn.Module, x: torch.Tensor, warmup: int, repeats: int, budgeted: bool
) -> float:
    """Median ms of ``model(x)`` over ``repeats`` runs after ``warmup`` runs."""
    times = []
    with torch.inference_mode(), budgeted_selection() if budgeted else nullcontext():
        for i in range(warmup + repeats):
            start = time.perf_counter()
            model(x)
            if i >= warmup:
                times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--size", type=int, default=64, help="glimpse side in pixels")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.randn(args.batch, 3, args.size, args.size).contiguous(
        memory_format=torch.channels_last
    )
    print(
        f"batch {args.batch} x 3 x {args.size} x {args.size}, channels-last, inference, "
        f"{args.threads} threads, median of {args.repeats}"
    )
    print(f"{'backbone':<30}{'ms / batch':>12}{'MMACs / sample':>16}")
    for label, name, kwargs in ROWS:
        model = create_backbone(name, **kwargs).eval().to(memory_format=torch.channels_last)
        budgeted = name.endswith("_sar")
        with budgeted_selection():
            macs = measure_macs(model, x[:1])
        ms = time_backbone(model, x, args.warmup, args.repeats, budgeted)
        print(f"{label:<30}{ms:>12.1f}{macs / 1e6:>16.2f}")


if __name__ == "__main__":
    main()
