"""Batched adaptive inference: glance, policy, glimpses in large cross-video batches, early exit.

:class:`AdaptiveInferencer` streams batches of clips through a :class:`FocusNet` and a
:class:`GlimpsePolicy`:

1. *admission*: one glance call over a batch's frames, one policy roll-out (the policy reads
   glance features only, so every glimpse is known at once), one crop call per option; only the
   crops and pooled glance features are kept;
2. steps run in *chunks* of ``chunk_steps``: a video's next chunk is queued only when the last
   left it below its exit threshold, so early exit really skips the later glimpses;
3. each option's queue feeds the local encoder in batches of ``local_batch`` glimpses mixing
   videos and chunks; a partial batch runs only when nothing else can make progress;
4. videos with a complete chunk go through the aggregator together and either exit (a
   :class:`VideoPrediction`) or queue their next chunk.

With ``glance_exit`` (RANet's idea: easy inputs are read at low resolution alone) the glance-only
head's prediction is exit 0: at admission, the videos whose glance confidence reaches the first
threshold leave before the policy roll-out and the crops, so no policy step and no glimpse is
computed for them.

Per-video state lives in slots of pooled buffers, so the bookkeeping is vectorised. Cost counts
what was computed (:func:`chunked_step_costs` gives the same numbers for calibration).
"""

from __future__ import annotations

import time
from collections.abc import Hashable, Iterable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch
from einops import rearrange

from videofocus.data.transforms import normalise_pixels
from videofocus.inference.early_exit import expand_thresholds
from videofocus.models.cost import GIGA, CostTable
from videofocus.models.focusnet import FocusNet, GlanceOutput
from videofocus.policy.heuristics import GlimpsePolicy

__all__ = ["AdaptiveInferencer", "InferenceOptions", "VideoPrediction", "chunked_step_costs"]

_AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class InferenceOptions:
    """How :class:`AdaptiveInferencer` runs.

    :param chunk_steps: steps per chunk; exit decisions (and savings) happen between chunks.
    :param local_batch: most glimpses per local-encoder call; None: 64 on the CPU (small
        batches stay in cache; docs/benchmarks.md) and 512 elsewhere.
    :param thresholds: early-exit thresholds on the running top-1 probability, one per step or
        one for all (see :mod:`videofocus.inference.early_exit`); None: no early exit. With
        ``glance_exit`` one more: the first is the glance exit's.
    :param glance_exit: the glance-only prediction is the first exit, ahead of step 0: a video
        whose glance confidence reaches its threshold pays the glance alone (no policy, no
        glimpse, no aggregator step).
    :param max_steps: anytime mode: use only the first ``max_steps`` steps; None: all.
    :param amp: ``off``, ``bf16`` or ``fp16`` autocast for the encoders (``bf16`` on CPU too).
    :param compile: ``torch.compile`` the encoders.
    """

    chunk_steps: int = 2
    local_batch: int | None = None
    thresholds: list[float] | None = None
    glance_exit: bool = False
    max_steps: int | None = None
    amp: str = "off"
    compile: bool = False

    def __post_init__(self) -> None:
        if self.chunk_steps < 1 or (self.local_batch is not None and self.local_batch < 1):
            raise ValueError(
                f"chunk_steps and local_batch must be >= 1, got {self.chunk_steps}, "
                f"{self.local_batch}"
            )
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1 or None, got {self.max_steps}")
        if self.amp not in ("off", *_AMP_DTYPES):
            raise ValueError(f"amp must be off, bf16 or fp16, got {self.amp!r}")


@dataclass
class VideoPrediction:
    """What the inferencer concluded about one video.

    :ivar logits: fused logits at the exit step (the glance-only logits after a glance exit),
        float32 ``[num_classes]`` on the CPU.
    :ivar exit_step: 0-based step whose prediction was taken; -1: the glance exit.
    :ivar steps_read: steps whose glimpses were computed (the exit step's chunk included; 0
        after a glance exit).
    :ivar actions: long ``[steps_read, 3]``, the glimpses taken (option 0: skipped).
    :ivar step_confidence: running top-1 probability (``step_top1``: class) after each step read.
    :ivar gmacs: multiply-accumulates spent on this video, in GMACs.
    :ivar model_ms: this video's share of the network time of the batches it was in.
    :ivar glance_confidence: with ``glance_exit``: the glance-only top-1 probability
        (``glance_top1``: class); None otherwise.
    """

    logits: torch.Tensor
    exit_step: int
    steps_read: int
    actions: torch.Tensor
    step_confidence: list[float]
    step_top1: list[int]
    gmacs: float
    model_ms: float = 0.0
    glance_confidence: float | None = None
    glance_top1: int | None = None

    @property
    def glance_exit(self) -> bool:
        """True when the video left at the glance exit, before any glimpse."""
        return self.exit_step < 0


def chunked_step_costs(
    actions: torch.Tensor, cost: CostTable, chunk_steps: int, glance_exit: bool = False
) -> torch.Tensor:
    """GMACs ``[N, T]`` each video of the roll-outs' ``actions`` (long ``[N, T, 3]``) would have
    spent had it exited after step ``t``: glance and policy on all ``T`` frames, the aggregator
    and the glimpses up to the end of the chunk holding ``t``.

    :param glance_exit: ``[N, T + 1]`` instead: column 0 the glance exit (glance and glance head
        on all frames, :meth:`CostTable.glance_exit`), then the steps, each also paying the
        glance head, which every video computes to decide.
    """
    n, t, _ = actions.shape
    local = torch.tensor([0, *cost.local], dtype=torch.float64)[actions[..., 0].cpu()]
    per_step = local + cost.aggregator  # [N, T]
    chunk_end = torch.clamp((torch.arange(t) // chunk_steps + 1) * chunk_steps, max=t) - 1
    cumulative = per_step.cumsum(dim=1)[:, chunk_end]
    steps = cumulative + t * (cost.glance + cost.policy)
    if not glance_exit:
        return steps / GIGA
    glance_only = torch.full((n, 1), float(cost.glance_exit(t)), dtype=torch.float64)
    return torch.cat([glance_only, steps + t * cost.glance_head], dim=1) / GIGA


def _enlarge(buf: torch.Tensor, size: int, dim: int = 0, fill: int = 0) -> torch.Tensor:
    """``buf`` grown to ``size`` along ``dim``, new entries set to ``fill``."""
    shape = list(buf.shape)
    shape[dim] = size
    new = torch.full(shape, fill, dtype=buf.dtype, device=buf.device)
    new.narrow(dim, 0, buf.shape[dim]).copy_(buf)
    return new


@dataclass
class _Pending:
    """A video occupying a slot."""

    key: Hashable
    model_seconds: float = 0.0
    glance_confidence: float | None = None
    glance_top1: int | None = None
    confidence: list[float] = field(default_factory=list)
    top1: list[int] = field(default_factory=list)


class AdaptiveInferencer:
    """Runs a :class:`FocusNet` under a :class:`GlimpsePolicy` on streams of clips."""

    def __init__(
        self,
        net: FocusNet,
        policy: GlimpsePolicy,
        cost: CostTable,
        options: InferenceOptions | None = None,
        device: torch.device | str = "cpu",
    ) -> None:
        if policy.options != net.options or policy.grid != net.grid:
            raise ValueError("the policy acts on other glimpse options or another grid")
        self.options = options or InferenceOptions()
        self.device = torch.device(device)
        self.cost = cost
        self.net = net.to(self.device).eval().requires_grad_(False)
        self.policy = policy.to(self.device).eval().requires_grad_(False)
        self.glance_fn, self.local_fn = self.net.glance, self.net.local_encoder.pooled
        if self.options.compile:
            self.glance_fn = torch.compile(self.glance_fn, dynamic=True)
            self.local_fn = torch.compile(self.local_fn, dynamic=True)
        self._steps = 0  # steps per clip, fixed by the first batch (0: none admitted yet)
        self._glance_threshold: float | None = None  # with glance_exit, set with the steps
        self._capacity = 0
        self._free: list[int] = []
        self._slots: dict[int, _Pending] = {}

    def predict(self, frames: torch.Tensor) -> list[VideoPrediction]:
        """Predictions for one batch of clips (as :meth:`run` takes them), in order."""
        out = dict(self.run([(list(range(frames.shape[0])), frames)]))
        return [out[i] for i in range(frames.shape[0])]

    @torch.inference_mode()
    def run(
        self, batches: Iterable[tuple[list[Hashable], torch.Tensor]]
    ) -> Iterator[tuple[Hashable, VideoPrediction]]:
        """Yield ``(key, prediction)`` for every clip of ``batches``, as videos finish.

        :param batches: ``(keys, frames)`` pairs with keys unique across the stream; frames
            ``[B, T, 3, H, W]`` on any device, ImageNet-normalised float or raw uint8 (faster on
            the CPU: only glance inputs and crops are normalised, the glance input resized in 8
            bits, at most one grey level off).
        """
        for keys, frames in batches:
            if len(keys) != frames.shape[0]:
                raise ValueError(f"{len(keys)} keys for {frames.shape[0]} clips")
            if not keys:
                continue
            yield from self._admit(keys, frames)  # the glance exits
            yield from self._drain(flush=False)
        if self._steps:
            yield from self._drain(flush=True)

    def _autocast(self):
        dtype = _AMP_DTYPES.get(self.options.amp)
        return nullcontext() if dtype is None else torch.autocast(self.device.type, dtype=dtype)

    def _setup(self, steps: int, frames: torch.Tensor, glance: GlanceOutput) -> None:
        """Create the slot buffers for clips of ``steps`` steps (the first batch fixes it)."""
        t, dev = steps, self.device
        self._steps = steps
        exits = steps + int(self.options.glance_exit)  # the glance exit comes first
        thresholds = torch.tensor(expand_thresholds(self.options.thresholds, exits))
        self._glance_threshold = float(thresholds[0]) if self.options.glance_exit else None
        self._thresholds = thresholds[exits - steps :]
        self._frame_shape = frames.shape[-3:]
        gru = self.net.aggregator.gru
        self.pooled = torch.zeros(0, t, glance.pooled.shape[-1], device=dev)
        self.local = torch.zeros(0, self.net.local_encoder.feature_dim, device=dev)
        self.option_index = torch.zeros(0, t, dtype=torch.long, device=dev)
        self.hidden = torch.zeros(gru.num_layers, 0, gru.hidden_size, device=dev)
        self.crops = [
            torch.zeros(0, 3, o.resolution, o.resolution, device=dev) for o in self.net.options
        ]
        # CPU: actions, glimpses left in the chunk, its first step, whether it awaits aggregation
        self.actions = torch.zeros(0, t, 3, dtype=torch.long)
        # per glimpse row: MACs beyond the cost table's price (input-dependent backbones: SAR)
        self.local_over = torch.zeros(0, dtype=torch.float64)
        self.remaining = torch.zeros(0, dtype=torch.long)
        self.chunk_start = torch.zeros(0, dtype=torch.long)
        self.ready = torch.zeros(0, dtype=torch.bool)
        self.queues = [torch.zeros(0, dtype=torch.long) for _ in self.net.options]
        self._grow(max(64, 2 * frames.shape[0]))

    def _grow(self, capacity: int) -> None:
        """Enlarge every slot buffer to ``capacity`` slots, keeping their contents."""
        old, t = self._capacity, self._steps
        self.pooled = _enlarge(self.pooled, capacity)
        self.local = _enlarge(self.local, capacity * t)
        self.option_index = _enlarge(self.option_index, capacity)
        self.hidden = _enlarge(self.hidden, capacity, dim=1)
        self.crops = [_enlarge(c, capacity * t) for c in self.crops]
        self.actions = _enlarge(self.actions, capacity)
        self.local_over = _enlarge(self.local_over, capacity * t)
        self.remaining = _enlarge(self.remaining, capacity)
        self.chunk_start = _enlarge(self.chunk_start, capacity, fill=-1)
        self.ready = _enlarge(self.ready, capacity)
        self._free.extend(range(old, capacity))
        self._capacity = capacity

    def _allocate(self, n: int) -> torch.Tensor:
        if len(self._free) < n:
            self._grow(max(2 * self._capacity, self._capacity + n))
        slots, self._free = self._free[:n], self._free[n:]
        return torch.tensor(slots, dtype=torch.long)

    def _admit(
        self, keys: list[Hashable], frames: torch.Tensor
    ) -> list[tuple[Hashable, VideoPrediction]]:
        """Glance, roll out the policy and crop every glimpse of a batch of clips; returns the
        videos that left at the glance exit (never given a slot, a policy step or a crop)."""
        start = time.perf_counter()
        frames = frames.to(self.device, non_blocking=True)
        steps = frames.shape[1]
        if self.options.max_steps is not None:
            steps = min(steps, self.options.max_steps)
            frames = frames[:, :steps]
        raw = frames.dtype == torch.uint8
        if raw and self.device.type != "cpu":
            frames, raw = normalise_pixels(frames), False  # cheap on an accelerator
        flat_frames = rearrange(frames, "b t c h w -> (b t) c h w")
        glance_in = frames
        if raw:
            # resize in uint8 (antialiased, as GlobalEncoder does), normalise the small result
            small = self.net.global_encoder.resize(
                flat_frames.contiguous(memory_format=torch.channels_last)
            )
            glance_in = rearrange(normalise_pixels(small), "(b t) c h w -> b t c h w", t=steps)
        with self._autocast():
            glance = self.glance_fn(glance_in)
        glance = GlanceOutput(glance.maps.float(), glance.pooled.float())
        if not self._steps:
            self._setup(steps, frames, glance)
        elif steps != self._steps or frames.shape[-3:] != self._frame_shape:
            raise ValueError(
                f"clips of {steps} steps {tuple(frames.shape[-3:])} after clips of "
                f"{self._steps} steps {tuple(self._frame_shape)}: one inferencer per clip shape"
            )
        glance_scores: list[tuple[float, int]] = []
        finished: list[tuple[Hashable, VideoPrediction]] = []
        if self._glance_threshold is not None:
            keys, frames, glance, glance_scores, finished = self._glance_exits(
                keys, frames, glance, time.perf_counter() - start
            )
            if not keys:
                return finished
        actions = self.policy.act(glance)  # float32 outside autocast, as the policy trained
        b, t = len(keys), steps
        slots = self._allocate(b)
        slots_dev = slots.to(self.device)
        self.pooled[slots_dev] = glance.pooled
        self.hidden[:, slots_dev] = 0.0
        option_index, groups = self.net.glimpse_crops(frames, actions)
        self.option_index[slots_dev] = option_index
        self.actions[slots] = actions.cpu()
        # destination row of frame (b, t) in the slot buffers
        rows = (slots_dev[:, None] * t + torch.arange(t, device=self.device)).reshape(-1)
        for k, idx, crops in groups:
            self.crops[k][rows[idx]] = normalise_pixels(crops) if raw else crops.float()
        for i, (slot, key) in enumerate(zip(slots.tolist(), keys, strict=True)):
            video = self._slots[slot] = _Pending(key)
            if glance_scores:
                video.glance_confidence, video.glance_top1 = glance_scores[i]
        # the glance-exited videos took their share of the glance time already
        spent = sum(p.model_ms for _, p in finished) / 1000.0
        self._share_time(slots.tolist(), time.perf_counter() - start - spent)
        self._queue_chunks(slots, torch.zeros(b, dtype=torch.long))
        return finished

    def _glance_exits(
        self, keys: list[Hashable], frames: torch.Tensor, glance: GlanceOutput, seconds: float
    ) -> tuple[
        list[Hashable],
        torch.Tensor,
        GlanceOutput,
        list[tuple[float, int]],
        list[tuple[Hashable, VideoPrediction]],
    ]:
        """Split a batch at the glance exit: the videos whose glance-only confidence reaches
        its threshold finish here; the others (keys, frames, glance and their glance
        confidence and class) go on to the policy. ``seconds``: the batch's glance time."""
        logits = self.net.glance_prediction(glance).float()
        confidence, top1 = logits.softmax(dim=-1).max(dim=-1)
        leave = (confidence >= self._glance_threshold).cpu()
        logits, confidence, top1 = logits.cpu(), confidence.cpu().tolist(), top1.cpu().tolist()
        gmacs = self.cost.glance_exit(self._steps) / GIGA
        share_ms = 1000.0 * seconds / len(keys)
        finished = [
            (
                keys[i],
                VideoPrediction(
                    logits=logits[i].clone(),
                    exit_step=-1,
                    steps_read=0,
                    actions=torch.zeros(0, 3, dtype=torch.long),
                    step_confidence=[],
                    step_top1=[],
                    gmacs=gmacs,
                    model_ms=share_ms,
                    glance_confidence=confidence[i],
                    glance_top1=top1[i],
                ),
            )
            for i in torch.nonzero(leave).squeeze(1).tolist()
        ]
        stay = torch.nonzero(~leave).squeeze(1)
        stay_dev = stay.to(frames.device)
        kept = GlanceOutput(glance.maps[stay_dev], glance.pooled[stay_dev])
        scores = [(confidence[i], top1[i]) for i in stay.tolist()]
        return [keys[i] for i in stay.tolist()], frames[stay_dev], kept, scores, finished

    def _share_time(self, slots: list[int], seconds: float) -> None:
        """Attribute network time equally to the (non-empty) ``slots`` a computation served."""
        share = seconds / len(slots)
        for s in slots:
            self._slots[s].model_seconds += share

    def _queue_chunks(self, slots: torch.Tensor, starts: torch.Tensor) -> None:
        """Queue the glimpses of the chunk beginning at ``starts`` for each slot."""
        t, c = self._steps, self.options.chunk_steps
        steps = starts[:, None] + torch.arange(c)
        rows = slots[:, None] * t + steps.clamp(max=t - 1)
        option = self.actions[slots[:, None], steps.clamp(max=t - 1), 0] - 1  # -1: skip
        glimpse = (steps < t) & (option >= 0)
        for k in range(len(self.net.options)):
            self.queues[k] = torch.cat([self.queues[k], rows[glimpse & (option == k)]])
        self.remaining[slots] = glimpse.sum(dim=1)
        self.chunk_start[slots] = starts
        self.ready[slots] = self.remaining[slots] == 0

    def _encode(self, flush: bool) -> bool:
        """Run full local batches (every partial one too when ``flush``); True if any ran."""
        ran = False
        size = self.options.local_batch or (64 if self.device.type == "cpu" else 512)
        t = self._steps
        for k, queue in enumerate(self.queues):
            while queue.numel() >= size or (flush and queue.numel()):
                rows, queue = queue[:size], queue[size:]
                start = time.perf_counter()
                rows_dev = rows.to(self.device)
                crops = self.crops[k][rows_dev]
                with self._autocast():
                    feats = self.local_fn(crops, k)
                self.local.index_copy_(0, rows_dev, feats.float())
                over = self.net.local_encoder.macs_over_table(k)
                if over is not None:
                    self.local_over.index_copy_(0, rows, over.detach().cpu().double())
                slots = rows // t
                self.remaining.index_add_(0, slots, torch.full_like(slots, -1))
                self.ready |= (self.remaining == 0) & (self.chunk_start >= 0)
                self._share_time(slots.tolist(), time.perf_counter() - start)
                ran = True
            self.queues[k] = queue
        return ran

    def _aggregate(self) -> list[tuple[Hashable, VideoPrediction]]:
        """Aggregate every complete chunk; return the videos that exit."""
        ready = torch.nonzero(self.ready).squeeze(1)
        if ready.numel() == 0:
            return []
        self.ready[ready] = False
        t, c = self._steps, self.options.chunk_steps
        finished: list[tuple[Hashable, VideoPrediction]] = []
        continuing, next_starts = [], []
        for start in torch.unique(self.chunk_start[ready]).tolist():
            group = ready[self.chunk_start[ready] == start]
            stop = min(start + c, t)
            timer = time.perf_counter()
            g = group.to(self.device)
            out = self.net.aggregator(
                self.pooled[g, start:stop],
                self.local.view(-1, t, self.local.shape[-1])[g, start:stop],
                self.option_index[g, start:stop],
                self.hidden[:, g].contiguous(),
            )
            self.hidden[:, g] = out.hidden
            probs = out.logits.float().softmax(dim=-1)
            confidence, top1 = probs.max(dim=-1)
            logits, confidence, top1 = out.logits.float().cpu(), confidence.cpu(), top1.cpu()
            self._share_time(group.tolist(), time.perf_counter() - timer)
            passed = confidence >= self._thresholds[start:stop]
            if stop == t:
                passed[:, -1] = True
            for i, slot in enumerate(group.tolist()):
                video = self._slots[slot]
                video.confidence.extend(confidence[i].tolist())
                video.top1.extend(top1[i].tolist())
                hits = torch.nonzero(passed[i]).squeeze(1)
                if hits.numel():
                    exit_step = start + int(hits[0])
                    finished.append((video.key, self._finish(slot, exit_step, stop, logits[i])))
                else:
                    continuing.append(slot)
                    next_starts.append(stop)
        if continuing:
            self._queue_chunks(torch.tensor(continuing), torch.tensor(next_starts))
        return finished

    def _finish(
        self, slot: int, exit_step: int, steps_read: int, chunk_logits: torch.Tensor
    ) -> VideoPrediction:
        video = self._slots.pop(slot)
        start = self.chunk_start[slot].item()
        actions = self.actions[slot, :steps_read].clone()
        local = sum(self.cost.local[k - 1] for k in actions[:, 0].tolist() if k > 0)
        rows = slot * self._steps + torch.arange(steps_read)
        local += float(self.local_over[rows][actions[:, 0] > 0].sum())
        macs = (
            self._steps * (self.cost.glance + self.cost.policy)
            + steps_read * self.cost.aggregator
            + local
        )
        if self._glance_threshold is not None:  # every video's glance head ran to decide
            macs += self._steps * self.cost.glance_head
        self.chunk_start[slot] = -1
        self.remaining[slot] = 0
        self._free.append(slot)
        return VideoPrediction(
            logits=chunk_logits[exit_step - start].clone(),
            exit_step=exit_step,
            steps_read=steps_read,
            actions=actions,
            step_confidence=video.confidence,
            step_top1=video.top1,
            gmacs=macs / GIGA,
            model_ms=1000.0 * video.model_seconds,
            glance_confidence=video.glance_confidence,
            glance_top1=video.glance_top1,
        )

    def _drain(self, flush: bool) -> Iterator[tuple[Hashable, VideoPrediction]]:
        """Advance every video as far as full batches allow (all the way when ``flush``)."""
        progress = True
        while progress:
            yield from self._aggregate()
            progress = (
                self._encode(flush=False)
                or (flush and self._encode(flush=True))
                or bool(self.ready.any())
            )
