"""The ``videofocus label`` job: label a video collection, fast, within a budget, losing nothing.

This process's shard of the inputs, less the videos already in the output (resume), is decoded
by ``DataLoader`` workers and run through the
:class:`~videofocus.inference.inferencer.AdaptiveInferencer`. Every input ends as one JSON line
(``status: ok`` with top-k labels and scores, or ``status: error`` with the reason), appended
durably as videos finish, so rerunning the same command resumes a killed job.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from videofocus.config import DataConfig
from videofocus.inference.inferencer import InferenceOptions
from videofocus.inference.model import InferenceModel, calibrate_budget, stored_thresholds
from videofocus.labeling.decoding import LabelClips, collate_decoded
from videofocus.labeling.inputs import LabelItem, read_inputs
from videofocus.labeling.ray_engine import RayOptions, RayRun, ray_labelled_rows
from videofocus.labeling.results import ResultWriter
from videofocus.labeling.rows import error_row, labelled_rows, prediction_row
from videofocus.labeling.sharding import (
    ShardSpec,
    resolve_shard,
    select_shard,
    shard_meta,
    shard_path,
)
from videofocus.runtime import torch_threads

__all__ = ["LabelJobOptions", "LabelSummary", "error_row", "prediction_row", "run_label_job"]

#: Batches each decoding worker reads ahead.
PREFETCH = 4
#: Where the job runs: in this process, or on Ray Data.
ENGINES = ("local", "ray")


@dataclass(frozen=True)
class LabelJobOptions:
    """How the job runs (inference options are separate: :class:`InferenceOptions`).

    :param batch_size: clips per decoded batch (the local encoder batches across them).
    :param num_workers: decoding processes (0: the main process); None: see :func:`plan_cpu`.
    :param threads: torch threads of the network on the CPU; None: the cores the decoding
        workers leave (oversubscribed cores make both sides slower).
    :param decode_timeout: seconds allowed to decode one video.
    :param glimpses: write each video's glimpse actions.
    :param budget_gmacs: calibrate (or reuse stored) exit thresholds to this mean cost.
    :param calibrate: labelled manifest to calibrate the budget on (default: the config's
        validation rows); the thresholds are stored beside the checkpoint.
    :param retry_errors: label again the inputs whose row says ``error`` (replacing it).
    :param engine: ``local`` (decoding workers and the model in this process) or ``ray`` (Ray
        Data: :mod:`videofocus.labeling.ray_engine`, configured by ``ray``).
    """

    batch_size: int = 32
    num_workers: int | None = None
    threads: int | None = None
    decode_timeout: float | None = 60.0
    topk: int = 5
    glimpses: bool = False
    budget_gmacs: float | None = None
    calibrate: str | None = None
    progress: bool = True
    retry_errors: bool = False
    engine: str = "local"
    ray: RayOptions | None = None

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {self.engine!r}")


@dataclass
class LabelSummary:
    """What one run of the job did."""

    out: str
    shard: str
    inputs: int
    already_done: int
    labelled: int
    ok: int
    failed: int
    mean_gmacs: float | None
    videos_per_s: float
    seconds: float
    thresholds: list[float] | None
    retried: int = 0  # error rows of an earlier run labelled again (--retry-errors)
    engine: str = "local"
    # --engine ray: seconds until the first row came back (Ray's start, actors, first batch)
    ray_startup_s: float | None = None
    ray_videos_per_s: float | None = None  # --engine ray: after the first batch of rows

    def to_json(self) -> dict[str, Any]:
        """The summary as plain data."""
        return dict(self.__dict__)


def resolve_thresholds(
    model: InferenceModel, options: InferenceOptions, job: LabelJobOptions
) -> list[float] | None:
    """Exit thresholds of the run: explicit ones, else calibrated for ``--budget-gmacs`` (stored
    from an earlier calibration of the same budget, or calibrated now), else the config's."""
    if options.thresholds is not None:
        return options.thresholds
    if job.budget_gmacs is None:
        return model.cfg.exit.thresholds
    if job.calibrate is None and model.checkpoint is not None:
        try:
            return stored_thresholds(
                model.checkpoint, job.budget_gmacs, options.chunk_steps, options.glance_exit
            )
        except FileNotFoundError:
            pass  # calibrate on the config's validation rows below
    calibration = calibrate_budget(model, job.budget_gmacs, options, job.calibrate)
    rounded = [round(t, 4) for t in calibration.thresholds]
    print(
        f"calibrated exit thresholds for {job.budget_gmacs:g} GMACs/video: "
        f"{calibration.achieved:.4g} GMACs/video on the calibration set "
        f"(accuracy {calibration.accuracy}), thresholds {rounded}",
        file=sys.stderr,
    )
    return calibration.thresholds


def plan_cpu(job: LabelJobOptions, device: torch.device) -> tuple[int, int]:
    """(decoding workers, network threads) for this machine, from ``job`` or its defaults:
    workers on all cores but one beside an accelerator, on half of them beside the CPU."""
    cores = os.cpu_count() or 1
    workers = job.num_workers
    if workers is None:
        workers = max(1, cores - 1) if device.type != "cpu" else max(1, cores // 2)
    threads = job.threads
    if threads is None:
        threads = max(1, cores - workers) if device.type == "cpu" else torch.get_num_threads()
    return workers, threads


def _close_inherited(path: Path, fd: int, worker_id: int) -> None:
    """In a forked decoding worker: close the inherited descriptor of the locked output file, so
    that a worker outliving a killed job does not keep the lock (flock locks belong to the open
    file, which forked children share)."""
    with contextlib.suppress(OSError):  # not inherited (spawned worker) or already gone
        if os.path.samestat(os.fstat(fd), os.stat(path)):
            os.close(fd)


def label_loader(
    items: Sequence[LabelItem], data: DataConfig, job: LabelJobOptions, workers: int, **kwargs: Any
) -> torch.utils.data.DataLoader:
    """The job's decoding ``DataLoader`` (given ``kwargs``) of :class:`LabelClips` of ``items``."""
    return torch.utils.data.DataLoader(
        LabelClips(items, data, timeout=job.decode_timeout),
        batch_size=job.batch_size,
        num_workers=workers,
        collate_fn=collate_decoded,
        prefetch_factor=PREFETCH if workers > 0 else None,
        **kwargs,
    )


def run_label_job(
    source: str | Path,
    model: InferenceModel,
    out: str | Path,
    options: InferenceOptions | None = None,
    job: LabelJobOptions | None = None,
    shard: ShardSpec | None = None,
    device: torch.device | str | None = None,
) -> LabelSummary:
    """Label every video of ``source`` (this process's shard of it) into ``out``.

    :param source: a manifest, a folder of videos or a text list of paths.
    :param out: the JSONL output (:func:`shard_path` with several shards).
    :param shard: this process's shard (default: :func:`resolve_shard`).
    """
    start = time.perf_counter()
    options = options or InferenceOptions()
    job = job or LabelJobOptions()
    shard = shard or resolve_shard()
    if model.random_weights:
        print(
            "WARNING: RANDOM WEIGHTS - no checkpoint given; labels and scores are meaningless "
            "(use this for throughput tests and dry runs only)",
            file=sys.stderr,
        )
    items = select_shard(read_inputs(source), shard)
    path = shard_path(out, shard)
    thresholds = resolve_thresholds(model, options, job)
    options = replace(options, thresholds=thresholds)
    ok_gmacs: list[float] = []  # of each ok row
    ray_run = RayRun()
    failed = 0
    # the Ray engine builds its inferencers in the actors, on their devices
    inferencer = model.inferencer(options, device) if job.engine == "local" else None
    workers, threads = plan_cpu(job, inferencer.device if inferencer else torch.device("cpu"))
    ids = [it.id for it in items]
    relabel = (lambda row: row.get("status") == "error") if job.retry_errors else None
    with (
        torch_threads(threads),
        ResultWriter(path, shard_meta(source, shard, ids), set(ids), relabel) as writer,
    ):
        todo = [it for it in items if it.id not in writer.done]
        already = len(items) - len(todo)
        if job.engine == "ray":
            rows = ray_labelled_rows(
                todo,
                model,
                options,
                batch_size=job.batch_size,
                decode_timeout=job.decode_timeout,
                topk=job.topk,
                glimpses=job.glimpses,
                ray_options=job.ray,
                run=ray_run,
            )
        else:
            loader = label_loader(
                todo,
                model.cfg.data,
                job,
                workers,
                worker_init_fn=functools.partial(_close_inherited, path, writer.fileno()),
                pin_memory=inferencer.device.type == "cuda",
            )
            rows = labelled_rows(todo, model, inferencer, loader, job.topk, job.glimpses)
        bar = tqdm(
            total=len(todo), desc=f"label {path.name}", unit="video", disable=not job.progress
        )
        pending: list[dict[str, Any]] = []

        def flush() -> None:
            nonlocal failed
            if not pending:
                return
            writer.write(pending)
            ok_gmacs.extend(row["gmacs"] for row in pending if row["status"] == "ok")
            failed += sum(row["status"] != "ok" for row in pending)
            bar.update(len(pending))
            bar.set_postfix(failed=failed)
            pending.clear()

        try:
            for _, row in rows:
                pending.append(row)
                if len(pending) >= job.batch_size:
                    flush()
        except KeyboardInterrupt:
            flush()  # keep the videos already finished: the rerun resumes after them
            raise
        finally:
            bar.close()
        flush()
    seconds = time.perf_counter() - start
    ok = len(ok_gmacs)
    labelled = ok + failed
    return LabelSummary(
        out=str(path),
        shard=f"{shard.index}/{shard.num_shards}",
        inputs=len(items),
        already_done=already,
        retried=writer.relabelled,
        labelled=labelled,
        ok=ok,
        failed=failed,
        mean_gmacs=sum(ok_gmacs) / ok if ok else None,
        videos_per_s=labelled / seconds if seconds > 0 else math.inf,
        seconds=seconds,
        thresholds=thresholds,
        engine=job.engine,
        ray_startup_s=ray_run.first_row_s if job.engine == "ray" else None,
        ray_videos_per_s=ray_run.steady_videos_per_s if job.engine == "ray" else None,
    )


def print_summary(summary: LabelSummary) -> None:
    """One human line on stderr and the JSON summary on stdout."""
    gmacs = "n/a" if summary.mean_gmacs is None else f"{summary.mean_gmacs:.4g}"
    retried = f", {summary.retried} error rows retried" if summary.retried else ""
    print(
        f"labelled {summary.labelled} videos ({summary.ok} ok, {summary.failed} failed; "
        f"{summary.already_done} already done{retried}) in {summary.seconds:.1f} s: "
        f"{summary.videos_per_s:.1f} videos/s, {gmacs} GMACs/video -> {summary.out}",
        file=sys.stderr,
    )
    print(json.dumps(summary.to_json()), flush=True)
