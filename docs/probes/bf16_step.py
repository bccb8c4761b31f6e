"""Probe: does bf16 autocast pay for a training step on this CPU?

One TinyResNet training step (forward, a scalar loss, backward, AdamW) on a channels-last batch of
``--batch`` frames of ``--size`` px, in fp32 and under ``torch.autocast("cpu", torch.bfloat16)``,
alternating the two so that machine drift hits both; prints the median milliseconds of each.
Only a CPU with native bf16 (AVX-512 BF16 or AMX) is expected to gain; elsewhere bf16 is slower.

    python docs/probes/bf16_step.py --batch 64 --size 128 --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import time
from contextlib import nullcontext

import torch

from videofocus.models import create_backbone


def main() -> None:
    """Time the two precisions and print one line each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=6)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = create_backbone("tiny_resnet").to(memory_format=torch.channels_last)
    frames = torch.randn(args.batch, 3, args.size, args.size).contiguous(
        memory_format=torch.channels_last
    )
    optimiser = torch.optim.AdamW(model.parameters())

    def step(bf16: bool) -> None:
        context = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext()
        with context:
            loss = model(frames).float().pow(2).mean()
        loss.backward()
        optimiser.step()
        optimiser.zero_grad()

    for bf16 in (False, True, False, True):  # warm-up: oneDNN picks its kernels
        step(bf16)
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(args.repeats):
        for bf16 in (False, True):
            start = time.perf_counter()
            step(bf16)
            times[bf16].append(time.perf_counter() - start)
    fp32, bf16 = (statistics.median(times[k]) * 1e3 for k in (False, True))
    print(f"fp32 {fp32:.1f} ms  bf16 {bf16:.1f} ms  speed-up {fp32 / bf16:.2f}x")


if __name__ == "__main__":
    main()
