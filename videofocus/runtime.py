"""Process-group set-up for ``torchrun`` and Slurm (rank and world size from either's
variables), and the run-time device and thread choice."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in a (possibly single-process) job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_distributed(self) -> bool:
        """True when more than one process takes part."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on the process that logs, writes checkpoints and prints summaries."""
        return self.rank == 0


def _env_int(*names: str) -> int | None:
    for name in names:
        value = os.environ.get(name)
        if value not in (None, ""):
            try:
                return int(value)
            except ValueError:
                raise ValueError(
                    f"environment variable {name}={value!r} is not an integer"
                ) from None
    return None


def dist_env() -> DistInfo:
    """Rank, world size and local rank from torchrun or Slurm variables (1 process if neither)."""
    world = _env_int("WORLD_SIZE", "SLURM_NTASKS") or 1
    rank = _env_int("RANK", "SLURM_PROCID") or 0
    local = _env_int("LOCAL_RANK", "SLURM_LOCALID") or 0
    if not 0 <= rank < world:
        raise ValueError(f"rank {rank} outside world size {world}")
    return DistInfo(rank=rank, world_size=world, local_rank=local)


def select_device(prefer: str = "auto", local_rank: int = 0) -> torch.device:
    """``auto`` -> this process's CUDA device when there is one, else CPU; or an explicit name."""
    if prefer == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        return torch.device("cpu")
    device = torch.device(prefer)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but CUDA is not available")
    return device


def init_distributed(device: torch.device | None = None) -> DistInfo:
    """Join the process group described by the environment (no-op for a single process).
    Under Slurm without torchrun, the job script exports ``MASTER_ADDR``/``MASTER_PORT``."""
    info = dist_env()
    if not info.is_distributed or dist.is_initialized():
        return info
    for var in ("MASTER_ADDR", "MASTER_PORT"):
        if var not in os.environ:
            raise RuntimeError(f"{var} must be set for a {info.world_size}-process job")
    use_nccl = device is not None and device.type == "cuda"
    if use_nccl:
        torch.cuda.set_device(device)
    dist.init_process_group(
        backend="nccl" if use_nccl else "gloo", rank=info.rank, world_size=info.world_size
    )
    return info


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run the block with ``threads`` intra-op threads, then restore the caller's setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def native_bf16(device: torch.device) -> bool:
    """True when ``device`` computes bf16 natively: a CUDA GPU with bf16 support, or a CPU with
    AVX-512 BF16 or AMX tiles (elsewhere bf16 is emulated by conversions and slower than fp32)."""
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)
    return False


def amp_precision(device: torch.device, amp: str) -> str:
    """The precision ``amp`` resolves to on ``device``: ``"bf16"`` (autocast) or ``"fp32"``.
    ``auto`` is bf16 where the device computes it natively, ``bf16`` is bf16 everywhere."""
    if amp not in ("auto", "bf16", "off"):
        raise ValueError(f"amp must be auto, bf16 or off, got {amp!r}")
    use = amp == "bf16" or (amp == "auto" and native_bf16(device))
    return "bf16" if use else "fp32"


def autocast_for(device: torch.device, amp: str):
    """bf16 autocast where :func:`amp_precision` says so, else a context that does nothing."""
    if amp_precision(device, amp) == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
