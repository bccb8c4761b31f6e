"""Early exit: per-step confidence thresholds, their effect, and calibration to a compute budget.

A video *exits* after the first step ``t`` whose running top-1 probability reaches
``thresholds[t]`` (the last step always exits), with that step's fused logits and the cost of
what was computed up to then (a per-step cost table the caller gives).

Calibration follows MSDNet's budgeted-batch recipe (Huang et al., 2018): exits are spread over
the steps as ``p_t ~ q^t``, each step's threshold lets that share of the running videos leave,
and ``q`` is searched so that the mean cost meets the budget. That recipe sends its quota out of
every exit however poor the exit's predictions (a glance head at chance still loses its share),
so with labels a second rule competes: one confidence threshold shared by every exit, searched
for the same budget; the rule with the higher accuracy on the calibration roll-outs is kept
(a choice made there, never on the rows a result is reported from). The glimpses never depend
on the thresholds, so this is tensor arithmetic on roll-outs recorded once.

The functions see exits, not what they are: with the inferencer's ``glance_exit`` the glance-only
prediction is exit 0 (its cost the glance alone) and step ``t`` exit ``t + 1``, so the
thresholds hold one value more and the calibration spreads the exits over both.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

__all__ = [
    "ExitCalibration",
    "MARGIN",
    "NEVER",
    "RULES",
    "apply_thresholds",
    "calibrate_thresholds",
    "exit_costs",
    "expand_thresholds",
]

#: A threshold no probability reaches: that step never exits early.
NEVER = 1.0 + 1e-6


def expand_thresholds(thresholds: Sequence[float] | None, steps: int) -> list[float]:
    """One threshold per step: None -> never exit early; one value -> the same at every step.

    :raises ValueError: for a length other than 1 or ``steps``.
    """
    if thresholds is None:
        return [NEVER] * steps
    values = [float(t) for t in thresholds]
    if len(values) == 1:
        return values * steps
    if len(values) != steps:
        raise ValueError(f"need 1 or {steps} exit thresholds (one per step), got {len(values)}")
    return values


def apply_thresholds(confidence: torch.Tensor, thresholds: Sequence[float] | None) -> torch.Tensor:
    """Exit step (0-based, long ``[N]``) of each video, from its running top-1 probability
    after each step (``confidence``, ``[N, T]``)."""
    t = confidence.shape[1]
    limits = torch.tensor(expand_thresholds(thresholds, t), dtype=confidence.dtype)
    passed = confidence >= limits.to(confidence.device)
    passed[:, -1] = True
    return passed.int().argmax(dim=1)  # first True


def exit_costs(step_costs: torch.Tensor, exit_step: torch.Tensor) -> torch.Tensor:
    """Cost per video of stopping at ``exit_step``, from the cumulative ``[N, T]`` step costs."""
    return step_costs.gather(1, exit_step.view(-1, 1).to(step_costs.device)).squeeze(1)


@dataclass(frozen=True)
class ExitCalibration:
    """Thresholds (one per step, the last 0) meeting a ``budget`` (mean cost per video), and what
    they achieve on the calibration set: the mean cost, top-1 ``accuracy`` at the exits (None
    without labels), the share of videos exiting at each step, and the ``rule`` that chose them
    (:data:`RULES`)."""

    thresholds: list[float]
    budget: float
    achieved: float
    accuracy: float | None
    exit_fraction: list[float]
    rule: str = "geometric"


#: Calibration rules: MSDNet's geometric spread of exits, one threshold shared by every exit.
RULES = ("geometric", "shared")


def _thresholds_for(confidence: torch.Tensor, q: float) -> list[float]:
    """Per-step thresholds letting a ``q^t``-shaped share of the videos exit at step ``t``."""
    n, t = confidence.shape
    weights = torch.tensor([q**i for i in range(t)], dtype=torch.float64)
    quota = weights / weights.sum() * n
    running = torch.ones(n, dtype=torch.bool)
    thresholds = []
    exited = 0.0
    for step in range(t - 1):
        exited += float(quota[step])
        want = round(exited) - (n - int(running.sum()))  # cumulative quota, kept on track
        remaining = confidence[running, step]
        if want <= 0 or remaining.numel() == 0:
            thresholds.append(NEVER)
            continue
        threshold = float(remaining.topk(min(want, remaining.numel())).values[-1])
        thresholds.append(threshold)
        running &= ~(confidence[:, step] >= threshold)
    return [*thresholds, 0.0]


#: How far below a calibrated threshold the next lower confidence may sit before the threshold
#: moves down by it (at most halfway to it): far above float32 rounding, far below any choice.
MARGIN = 1e-4


def _with_margin(confidence: torch.Tensor, thresholds: list[float]) -> list[float]:
    """The same exits on these roll-outs, each threshold moved down by :data:`MARGIN` (at most
    halfway to the next lower confidence at its step): both rules put a threshold exactly on
    some video's confidence, and another pass over the same videos (other batches, other float
    rounding) must not flip it."""
    out = []
    for step, threshold in enumerate(thresholds[:-1]):
        if threshold >= NEVER:
            out.append(threshold)
            continue
        values = confidence[:, step]
        below = values[values < threshold]
        floor = float(below.max()) if below.numel() else 0.0
        out.append(threshold - min(MARGIN, (threshold - floor) / 2))
    return [*out, thresholds[-1]]


def calibrate_thresholds(
    confidence: torch.Tensor,
    step_costs: torch.Tensor,
    budget: float,
    correct: torch.Tensor | None = None,
) -> ExitCalibration:
    """Per-step thresholds whose mean cost on these roll-outs comes as close to ``budget``
    (mean cost per video) as the data allows without exceeding it.

    :param confidence: running top-1 probability after each step, ``[N, T]``.
    :param step_costs: ``[N, T]`` cumulative cost of stopping after each step.
    :param correct: bool ``[N, T]``, whether each step's top-1 is right: the accuracy report,
        and the choice between the :data:`RULES` (without it: the geometric rule).
    :raises ValueError: for a budget below the cost of every video exiting at its first step.
    """
    if confidence.shape != step_costs.shape or confidence.ndim != 2 or confidence.shape[0] == 0:
        raise ValueError(
            f"confidence {tuple(confidence.shape)} and step_costs {tuple(step_costs.shape)} must "
            "both be [N > 0, T]"
        )
    confidence, step_costs = confidence.double().cpu(), step_costs.double().cpu()
    floor = float(step_costs[:, 0].mean())
    if budget < floor * (1 - 1e-9):
        raise ValueError(
            f"budget {budget:.6g} GMACs/video is below the cheapest possible {floor:.6g} "
            "(every video stopping after its first step)"
        )

    steps = confidence.shape[1]

    def cost_of(thresholds: list[float]) -> float:
        return float(exit_costs(step_costs, apply_thresholds(confidence, thresholds)).mean())

    def accuracy_of(thresholds: list[float]) -> float | None:
        if correct is None:
            return None
        exits = apply_thresholds(confidence, thresholds)
        return float(correct.cpu().gather(1, exits.view(-1, 1)).float().mean())

    def search(thresholds_at: Callable[[float], list[float]], lo: float, hi: float) -> list[float]:
        """The thresholds at the largest x in [lo, hi] whose cost is within budget (cost grows
        with x; ``thresholds_at(lo)`` is within budget)."""
        best = thresholds_at(lo)
        for _ in range(60):  # bisection steps: 60 halvings reach float precision
            mid = (lo + hi) / 2
            candidate = thresholds_at(mid)
            if cost_of(candidate) <= budget:
                lo, best = mid, candidate
            else:
                hi = mid
        return best

    best, rule = expand_thresholds(None, steps), "geometric"  # never exit early, if in budget
    if cost_of(best) > budget:
        # log q from "everyone exits first" to "everyone runs to the end"; cost grows with q
        best = search(lambda log_q: _thresholds_for(confidence, math.exp(log_q)), -30.0, 30.0)
        if correct is not None:  # one threshold for every exit, from 0 (all exit first) up
            shared = search(lambda tau: [tau] * (steps - 1) + [0.0], 0.0, NEVER)
            if accuracy_of(shared) > accuracy_of(best):  # ties keep MSDNet's rule
                best, rule = shared, "shared"
    best = _with_margin(confidence, best)
    exits = apply_thresholds(confidence, best)
    fraction = torch.bincount(exits, minlength=steps).double() / len(exits)
    return ExitCalibration(
        thresholds=best,
        budget=float(budget),
        achieved=float(exit_costs(step_costs, exits).mean()),
        accuracy=accuracy_of(best),
        exit_fraction=[float(f) for f in fraction],
        rule=rule,
    )
