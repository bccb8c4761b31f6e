"""The label job on Ray Data: decoding in Ray tasks on CPUs, the adaptive model in an actor pool.

``videofocus label INPUT ... --engine ray [--ray-address ADDR]`` streams the inputs through

    item indices -> decode (tasks, one CPU each) -> AdaptiveInferencer (actors) -> result rows

and the driver appends the rows to the same crash-safe output as the in-process job
(:class:`~videofocus.labeling.results.ResultWriter`), so resuming, sharding, error rows and the row
schema are the in-process job's. Decoding is :class:`~videofocus.labeling.decoding.LabelClips`
and inference :func:`~videofocus.labeling.rows.labelled_rows`: the two engines share that code.

Faults: Ray retries a decode task whose worker died and restarts a dead actor (its batch is
retried); the driver drops repeated ids, and a killed driver is resumed by rerunning the command.
A batch that still fails after the retries stops the job (the rows written so far stay; the rerun
labels the rest). Decoding never raises for a bad video (it becomes an error row), so such a stop
means a bug or a file that crashes the decoder process itself: ``videofocus probe`` isolates those.

Ray is imported only here, and only when this engine runs (``pip install 'videofocus[ray]'``).
"""

from __future__ import annotations

import json
import logging
import os
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from videofocus.inference.inferencer import InferenceOptions
from videofocus.inference.model import InferenceModel
from videofocus.labeling.decoding import DecodedBatch, LabelClips
from videofocus.labeling.inputs import LabelItem
from videofocus.labeling.rows import labelled_rows

__all__ = ["RayOptions", "RayRun", "ray_labelled_rows"]

#: Retries of a Ray task (decode or model batch) whose worker process died.
TASK_RETRIES = 3


class RayUnavailableError(RuntimeError):
    """``--engine ray`` without Ray installed."""


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide the Ray engine runs.

    :param address: an existing cluster (``ray://...`` or ``host:port``, as ``ray.init`` takes);
        None: an embedded local Ray on this machine, started and stopped by the job.
    :param actors: model actors; None: one per GPU of the cluster, else 1.
    :param actor_cpus: CPUs Ray reserves for a CPU actor (its torch threads: at least 1); None:
        1. Fractions let more actors than cores share a small machine.
    :param decode_batches: model batches each decode task reads. Launching a Ray task costs
        0.1-0.2 s on a busy 2-core machine, as long as decoding 32 short clips, so one batch
        per task left the decoding CPU idle half the time.
    """

    address: str | None = None
    actors: int | None = None
    actor_cpus: float | None = None
    decode_batches: int = 4

    def __post_init__(self) -> None:
        if self.decode_batches < 1:
            raise ValueError(f"decode_batches must be >= 1, got {self.decode_batches}")


@dataclass
class RayRun:
    """What the engine measured: Ray's start-up apart from the steady-state labeling.

    ``steady_videos_per_s``: rows per second after the first batch of rows came back (so
    without Ray's start, the actors' model loading and the pipeline's fill).
    """

    first_row_s: float | None = None
    first_batch_rows: int = 0
    last_row_s: float | None = None
    rows: int = 0

    @property
    def steady_videos_per_s(self) -> float | None:
        """Rows per second after the first batch (None with fewer than two batches)."""
        if self.first_row_s is None or self.last_row_s is None:
            return None
        seconds = self.last_row_s - self.first_row_s
        rows = self.rows - self.first_batch_rows
        return rows / seconds if rows > 0 and seconds > 0 else None


def import_ray() -> Any:
    """The ``ray`` module, or :class:`RayUnavailableError` saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401 - the engine needs Ray Data, not only Ray core
    except ImportError as exc:
        raise RayUnavailableError(
            f"--engine ray needs Ray Data ({exc}); install it with: pip install 'videofocus[ray]'"
        ) from None
    return ray


def _frames_shape(clips: LabelClips, steps: int) -> tuple[int, ...]:
    return (steps, 3, clips.data.frame_size, clips.data.frame_size)


def decode_batch(batch: dict[str, np.ndarray], clips: LabelClips, steps: int) -> dict[str, Any]:
    """A Ray task: decode the clips of ``batch["index"]`` (indices into ``clips``).

    A failed video keeps its row with zero frames and its error, so every block has one frame
    shape and every index reaches the model actor (which writes the error row).
    """
    shape = _frames_shape(clips, steps)
    indices = batch["index"].tolist()
    frames = np.zeros((len(indices), *shape), dtype=np.uint8)
    times = np.zeros((len(indices), steps), dtype=np.float64)  # zeros on error rows, unread
    errors, decode_ms = [], []
    for row, index in enumerate(indices):
        clip = clips[index]
        if clip["error"] is None and tuple(clip["frames"].shape) != shape:
            clip["error"] = f"{clips.items[index].path}: clip {tuple(clip['frames'].shape)}"
        if clip["error"] is None:
            frames[row] = clip["frames"].numpy()
            times[row] = clip["sampled_times"]
        errors.append(clip["error"] or "")
        decode_ms.append(clip["decode_ms"])
    return {
        "index": np.asarray(indices, dtype=np.int64),
        "frames": frames,
        "sampled_times": times,
        "error": np.asarray(errors, dtype=object),
        "decode_ms": np.asarray(decode_ms, dtype=np.float64),
    }


class ModelActor:
    """A Ray actor: the batched adaptive inferencer on one device, turning decoded batches into
    result rows (JSON text, so that the rows' nested lists cross Ray unchanged)."""

    def __init__(
        self,
        model: InferenceModel,
        items: Sequence[LabelItem],
        options: InferenceOptions,
        topk: int,
        glimpses: bool,
        threads: int,
    ) -> None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
        if device == "cpu":
            torch.set_num_threads(threads)
        self.model, self.items = model, items
        self.inferencer = model.inferencer(options, device)
        self.topk, self.glimpses = topk, glimpses

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Rows of the batch's videos (error rows for those that did not decode)."""
        errors = [str(e) for e in batch["error"]]
        good = [i for i, e in enumerate(errors) if not e]
        indices, ms = batch["index"].tolist(), batch["decode_ms"].tolist()
        decoded = DecodedBatch(
            indices=[indices[i] for i in good],
            frames=torch.from_numpy(np.ascontiguousarray(batch["frames"][good])) if good else None,
            decode_ms=[ms[i] for i in good],
            failures=[(indices[i], e, ms[i]) for i, e in enumerate(errors) if e],
            sampled_times=[batch["sampled_times"][i].tolist() for i in good],
        )
        rows = labelled_rows(
            self.items, self.model, self.inferencer, [decoded], self.topk, self.glimpses
        )
        return {"row": np.asarray([json.dumps(row) for _, row in rows], dtype=object)}


def _start(ray: Any, options: RayOptions) -> bool:
    """Connect to the cluster (or start a local one); True if this call started it."""
    if ray.is_initialized():
        return False
    # Ray's C++ core and Ray Data log progress lines to stderr; the job prints its own summary
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    quiet = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
    if options.address is None:
        ray.init(address="local", num_cpus=os.cpu_count() or 1, **quiet)  # never a stale one
    else:
        ray.init(address=options.address, log_to_driver=False, logging_level=logging.ERROR)
    return True


def ray_labelled_rows(
    items: Sequence[LabelItem],
    model: InferenceModel,
    options: InferenceOptions,
    *,
    batch_size: int = 32,
    decode_timeout: float | None = 60.0,
    topk: int = 5,
    glimpses: bool = False,
    ray_options: RayOptions | None = None,
    run: RayRun | None = None,
) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(index in items, row)`` for every item, as Ray finishes them (in no fixed order); the
    same rows as :func:`~videofocus.labeling.rows.labelled_rows` gives in-process.

    :param run: filled with the time to the first rows and the rows' arrival (steady state).
    """
    ray = import_ray()
    ray_options = ray_options or RayOptions()
    run = run if run is not None else RayRun()
    if not items:
        return
    start = time.perf_counter()
    started = _start(ray, ray_options)
    try:
        gpus = int(ray.cluster_resources().get("GPU", 0))
        actors = ray_options.actors or max(1, gpus)
        per_actor_gpus = 1.0 if gpus >= actors else 0.0
        actor_cpus = ray_options.actor_cpus or 1.0
        threads = max(1, int(actor_cpus))
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        clips = LabelClips(items, model.cfg.data, timeout=decode_timeout)
        per_task = batch_size * ray_options.decode_batches
        blocks = max(1, min(len(items) // per_task, 1000))
        ds = ray.data.from_items(
            [{"index": i} for i in range(len(items))], override_num_blocks=blocks
        )
        with warnings.catch_warnings():
            # Ray 2.60 names no parameter for the retry and restart limits: they go through
            # **ray_remote_args, which warns. They also keep the two stages apart (Ray fuses a
            # task stage into an actor stage whose remote arguments are the same).
            warnings.simplefilter("ignore", DeprecationWarning)
            ds = ds.map_batches(
                decode_batch,
                batch_size=per_task,
                batch_format="numpy",
                fn_kwargs={"clips": clips, "steps": model.cfg.data.frames},
                num_cpus=1,
                max_retries=TASK_RETRIES,
            )
            ds = ds.map_batches(
                ModelActor,
                batch_size=batch_size,
                batch_format="numpy",
                compute=ray.data.ActorPoolStrategy(size=actors),
                fn_constructor_kwargs={
                    "model": model,
                    "items": list(items),
                    "options": options,
                    "topk": topk,
                    "glimpses": glimpses,
                    "threads": threads,
                },
                num_cpus=0 if per_actor_gpus else actor_cpus,
                num_gpus=per_actor_gpus,
                udf_modifying_row_count=False,
                max_restarts=-1,
                max_task_retries=TASK_RETRIES,
            )
        seen: set[int] = set()
        by_id = {it.id: i for i, it in enumerate(items)}
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            now = time.perf_counter() - start
            if run.first_row_s is None:
                run.first_row_s, run.first_batch_rows = now, len(batch["row"])
            run.last_row_s = now
            run.rows += len(batch["row"])
            for text in batch["row"]:
                row = json.loads(text)
                index = by_id[row["id"]]
                if index not in seen:  # a retried batch may come back twice
                    seen.add(index)
                    yield index, row
        if len(seen) != len(items):
            raise RuntimeError(f"Ray Data returned rows for {len(seen)} of {len(items)} inputs")
    finally:
        if started:
            ray.shutdown()
