"""Checkpoints that ``torch.load(weights_only=True)`` can read, written atomically.

A checkpoint is a folder of ``model.safetensors`` (the weights: no pickle, memory-mappable),
``trainer.pt`` (optimizer, scheduler, grad-scaler and RNG states, step counters: tensors and plain
data only) and ``meta.json`` (:class:`CheckpointMeta`). It is written into a temporary sibling
folder and renamed into place, so a killed run leaves the previous checkpoint or the new one.
"""

from __future__ import annotations

import dataclasses
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from videofocus.io.atomic_files import atomic_directory

MODEL_FILE = "model.safetensors"
TRAINER_FILE = "trainer.pt"
META_FILE = "meta.json"


class CheckpointError(RuntimeError):
    """A checkpoint folder is missing files or cannot be read; names the path."""


#: Stages whose checkpoint holds a learned policy (its shape in ``CheckpointMeta.policy``).
LEARNED_STAGES = ("policy", "finetune")


@dataclass
class CheckpointMeta:
    """What ``meta.json`` records: enough to rebuild the model and label with it from the
    checkpoint folder alone.

    :ivar class_names: one name per class; None when training could not read them.
    :ivar config: the resolved config, as plain data (``config_to_dict``).
    :ivar preprocessing: :func:`~videofocus.artifacts.meta.preprocessing`.
    :ivar policy: for the learned stages, the policy's shape
        (:func:`~videofocus.artifacts.learned_policy.learned_policy_meta`).
    :ivar epoch: the last epoch trained (None for the policy stage).
    :ivar train_seconds: wall time of the stage (0 for ``last/``).
    """

    stage: str
    num_classes: int
    class_names: list[str] | None
    config: dict[str, Any]
    preprocessing: dict[str, Any]
    policy: dict[str, Any] | None = None
    epoch: int | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    train_seconds: float = 0.0
    versions: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str | Path) -> CheckpointMeta:
        """The meta of ``data`` (a ``meta.json``), checked.

        :raises CheckpointError: naming ``source`` and the first missing or unknown key.
        """
        required = ["stage", "num_classes", "class_names", "config", "preprocessing"]
        if data.get("stage") in LEARNED_STAGES:
            required.append("policy")
        missing = [k for k in required if k not in data]
        if missing:
            raise CheckpointError(
                f"{source}: meta.json has no {missing[0]!r} (written by an older videofocus, "
                "before checkpoints described themselves); train this stage again"
            )
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise CheckpointError(f"{source}: meta.json has unknown key {unknown[0]!r}")
        return cls(**data)


@dataclass
class Checkpoint:
    """What a checkpoint folder holds, loaded."""

    model: dict[str, torch.Tensor]
    meta: CheckpointMeta
    trainer: dict[str, Any] = field(default_factory=dict)


def capture_rng_state() -> dict[str, Any]:
    """Every RNG state a training run depends on, as tensors and plain data."""
    np_state = np.random.get_state()
    py_version, py_internal, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": {"version": py_version, "internal": list(py_internal), "gauss": py_gauss},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    torch.set_rng_state(state["torch"])
    npst = state["numpy"]
    keys = npst["keys"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, npst["pos"], npst["has_gauss"], npst["cached_gaussian"]))
    py = state["python"]
    random.setstate((py["version"], tuple(py["internal"]), py["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    path: str | Path,
    model_state: dict[str, torch.Tensor],
    meta: CheckpointMeta,
    trainer_state: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint folder atomically and return its path.

    :param model_state: a model ``state_dict`` (moved to CPU and made contiguous here).
    :param trainer_state: optimizer/scheduler/RNG state for exact resume (tensors + plain data).
    """
    path = Path(path)
    with atomic_directory(path) as tmp:
        tensors = {k: v.detach().to("cpu").contiguous() for k, v in model_state.items()}
        save_file(tensors, str(tmp / MODEL_FILE))
        if trainer_state is not None:
            torch.save(trainer_state, tmp / TRAINER_FILE)
        (tmp / META_FILE).write_text(
            json.dumps(dataclasses.asdict(meta), indent=2, sort_keys=True), encoding="utf-8"
        )
    return path


def load_checkpoint(path: str | Path, load_trainer: bool = True) -> Checkpoint:
    """Read a checkpoint folder (weights on CPU) with ``weights_only=True`` semantics."""
    path = Path(path)
    for name in (MODEL_FILE, META_FILE):
        if not (path / name).is_file():
            raise CheckpointError(f"{path}: not a checkpoint folder (missing {name})")
    try:
        model = load_file(str(path / MODEL_FILE), device="cpu")
        data = json.loads((path / META_FILE).read_text(encoding="utf-8"))
        trainer: dict[str, Any] = {}
        if load_trainer and (path / TRAINER_FILE).is_file():
            trainer = torch.load(path / TRAINER_FILE, map_location="cpu", weights_only=True)
    except (OSError, ValueError, RuntimeError, SafetensorError) as exc:
        raise CheckpointError(f"{path}: unreadable checkpoint ({exc})") from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"{path / META_FILE}: not a JSON object")
    return Checkpoint(
        model=model, meta=CheckpointMeta.from_dict(data, path / META_FILE), trainer=trainer
    )


def load_model_state(
    module: torch.nn.Module, state: dict[str, torch.Tensor], source: str | Path
) -> None:
    """``module.load_state_dict(state)`` (strict), failing in one line when the weights do not
    fit (torch's own error lists every key of a checkpoint of another config over many lines).

    :param source: the checkpoint folder, named in the error.
    :raises CheckpointError: naming the first differing key and how many more differ.
    """
    own = module.state_dict()
    mismatched = [k for k, v in own.items() if k in state and state[k].shape != v.shape]
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if mismatched:
        key = mismatched[0]
        problem = (
            f"{key} is {list(state[key].shape)} in the checkpoint but {list(own[key].shape)} in "
            "the model of this config"
        )
    elif missing:
        problem = f"{missing[0]} is missing from the checkpoint"
    elif unexpected:
        problem = f"{unexpected[0]} is in the checkpoint, not in the model"
    else:
        module.load_state_dict(state)
        return
    more = len(mismatched) + len(missing) + len(unexpected) - 1
    extra = f" ({more} more keys differ)" if more else ""
    raise CheckpointError(
        f"{source}: weights of another model: {problem}{extra}; was it trained with another "
        "config? (pass that config, or drop the overrides that change the model)"
    )
