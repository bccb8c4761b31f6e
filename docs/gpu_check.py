"""The short GPU check of docs/gpu.md: model-only and end-to-end labeling speed, memory, RL steps/s.

On synthetic 340x256 videos with ``configs/activitynet_adafocus_p128.yaml`` (MobileNetV2 glance,
ResNet-50 on 128 px glimpses, 16 frames) and random weights, it measures

1. model-only videos/s (clips decoded and on the device beforehand) at video batch = local batch
   128, 256 and 512, bf16 autocast, channels-last (always on), then once more with
   ``torch.compile`` at 256;
2. end-to-end ``videofocus label`` videos/s with every core but one decoding, against the same
   decoding alone (decode-only);
3. the GPU memory peak of each row;
4. the RL policy stage's environment, ``FocusVecEnv`` with the network on the GPU: steps/s of
   random actions over 64 parallel videos (roll-outs only, no PPO update).

It prints one Markdown table per part and writes them with the raw rows to ``--out``:

    python docs/gpu_check.py --out gpu_check          # the GPU run (about 5-7 minutes)
    python docs/gpu_check.py --quick --out /tmp/gc    # the same code path, tiny, on any machine
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from videofocus.benchmarks.label import decode_only, model_only
from videofocus.config import load_config
from videofocus.data.loaders import build_dataset, ensure_dataset
from videofocus.inference.inferencer import InferenceOptions
from videofocus.inference.model import load_inference_model
from videofocus.labeling.job import LabelJobOptions, run_label_job
from videofocus.labeling.sharding import ShardSpec
from videofocus.train.rl.vec_env import FocusVecEnv

ROOT = Path(__file__).resolve().parents[1]


def _config(workdir: Path, quick: bool):
    """The p128 config on generated synthetic 340x256 videos (random weights need no classes)."""
    layer = {
        "base": str(ROOT / "configs" / "activitynet_adafocus_p128.yaml"),
        "name": "gpu_check",
        "data": {
            "root": str(workdir / "videos"),
            "num_classes": 10,
            "synthetic": {
                "num_videos": 16 if quick else 640,
                "width": 340,
                "height": 256,
                "num_frames": 32,
                "num_classes": 10,
                "object_size": 64,
                "val_fraction": 0.1,
            },
        },
        "policy": {"n_envs": 4 if quick else 64},
        "train": {"device": "auto"},
    }
    path = workdir / "gpu_check.yaml"
    path.write_text(yaml.safe_dump(layer), encoding="utf-8")
    quick_sizes = ["data.frame_size=112", "model.glance_resolution=112", "data.frames=4"]
    overrides = quick_sizes if quick else []
    return load_config(path, overrides)


def _amp(device: torch.device) -> str:
    # bf16 on a CPU without native bf16 units is emulated, many times slower: --quick runs fp32
    return "bf16" if device.type == "cuda" else "off"


def _peak_gb(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def model_rows(model, source, device, batches, cores) -> list[dict]:
    """Model-only videos/s per (batch, compile)."""
    rows = []
    runs = [(b, False) for b in batches]
    if device.type == "cuda":  # on a CPU (--quick) compiling would take longer than the check
        runs.append((batches[1], True))
    for batch, compiled in runs:
        _reset_peak(device)
        options = InferenceOptions(local_batch=batch, amp=_amp(device), compile=compiled)
        job = LabelJobOptions(batch_size=batch, num_workers=max(1, cores - 1), progress=False)
        start = time.perf_counter()
        speed = model_only(model, source, options, job, device)
        rows.append(
            {
                "part": "model-only",
                "batch": batch,
                "compile": compiled,
                "videos_per_s": speed,
                "peak_gb": _peak_gb(device),
                "seconds": time.perf_counter() - start,
            }
        )
        print(rows[-1], flush=True)
    return rows


def end_to_end_rows(model, cfg, source, device, batch, cores, workdir) -> list[dict]:
    """Decode-only and end-to-end labeling videos/s with every core but one decoding."""
    job = LabelJobOptions(batch_size=64, num_workers=max(1, cores - 1), progress=False)
    decoding = decode_only(source, cfg, job, device)
    _reset_peak(device)
    options = InferenceOptions(local_batch=batch, amp=_amp(device))
    speeds = []
    for i in range(2):  # the first pass also warms the file cache and the kernels
        out = workdir / f"labels{i}.jsonl"
        speeds.append(
            run_label_job(source, model, out, options, job, ShardSpec(1, 0), device).videos_per_s
        )
    return [
        {
            "part": "decode-only",
            "workers": job.num_workers,
            "videos_per_s": decoding["videos_per_s"],
        },
        {
            "part": "end-to-end",
            "workers": job.num_workers,
            "videos_per_s": speeds[-1],
            "share_of_decode_only": speeds[-1] / decoding["videos_per_s"],
            "peak_gb": _peak_gb(device),
        },
    ]


def rl_row(model, cfg, device, steps: int) -> dict:
    """Steps/s of the policy stage's vectorised environment with random actions."""
    _reset_peak(device)
    net = model.net.to(device)
    train_set = build_dataset(cfg.data, "train", train=False, num_classes=10, seed=0)
    env = FocusVecEnv.from_config(cfg, net, train_set)
    rng = np.random.default_rng(0)
    nvec = env.action_space.nvec
    env.reset()

    def actions() -> np.ndarray:
        return np.stack([rng.integers(0, n, size=env.num_envs) for n in nvec], axis=1)

    for _ in range(5):  # warm-up: the first videos' glance features
        env.step(actions())
    times = []
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(steps):
            env.step(actions())
        times.append(env.num_envs * steps / (time.perf_counter() - start))
    return {
        "part": "rl-env",
        "n_envs": env.num_envs,
        "steps_per_s": statistics.median(times),
        "peak_gb": _peak_gb(device),
    }


def _table(rows: list[dict]) -> str:
    keys = list(dict.fromkeys(k for r in rows for k in r))
    lines = ["| " + " | ".join(keys) + " |", "|" + " --- |" * len(keys)]
    for r in rows:
        cells = [f"{v:.4g}" if isinstance(v, float) else str(v) for v in (r.get(k) for k in keys)]
        lines.append("| " + " | ".join("-" if c == "None" else c for c in cells) + " |")
    return "\n".join(lines)


def main() -> None:
    """Run every part and write ``rows.json`` and ``tables.md`` into ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: check the code path")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    cores = os.cpu_count() or 1
    cfg = _config(workdir, args.quick)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    started = time.perf_counter()
    ensure_dataset(cfg.data, workers=cores, progress=False)
    source = cfg.data.resolve(cfg.data.manifest)
    print(f"{cfg.data.synthetic.num_videos} videos in {time.perf_counter() - started:.0f} s")
    model = load_inference_model(config=cfg)
    batches = (2, 4, 8) if args.quick else (128, 256, 512)
    parts = {
        "model-only": model_rows(model, source, device, batches, cores),
        "end-to-end": end_to_end_rows(model, cfg, source, device, batches[1], cores, workdir),
        "rl-env": [rl_row(model, cfg, device, 2 if args.quick else 50)],
    }
    info = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "cores": cores,
        "seconds": time.perf_counter() - started,
    }
    tables = [f"{info}"] + [f"### {name}\n\n{_table(rows)}" for name, rows in parts.items()]
    text = "\n\n".join(tables)
    print(text)
    (args.out / "tables.md").write_text(text + "\n", encoding="utf-8")
    (args.out / "rows.json").write_text(json.dumps({"info": info, **parts}, indent=1) + "\n")


if __name__ == "__main__":
    main()
