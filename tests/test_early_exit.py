"""Early-exit thresholds: where videos exit, what it costs, and calibration to a budget."""

from __future__ import annotations

import pytest
import torch

from videofocus.inference.early_exit import (
    NEVER,
    apply_thresholds,
    calibrate_thresholds,
    exit_costs,
    expand_thresholds,
)


def test_apply_thresholds_first_step_reaching_its_threshold_else_last() -> None:
    confidence = torch.tensor([[0.2, 0.9, 0.95], [0.1, 0.2, 0.3], [0.99, 0.1, 0.1]])
    assert apply_thresholds(confidence, [0.95, 0.8, 0.5]).tolist() == [1, 2, 0]
    assert apply_thresholds(confidence, None).tolist() == [2, 2, 2]
    assert apply_thresholds(confidence, [0.9]).tolist() == [1, 2, 0]


def test_expand_thresholds_checks_length() -> None:
    assert expand_thresholds(None, 2) == [NEVER, NEVER]
    with pytest.raises(ValueError, match="need 1 or 3"):
        expand_thresholds([0.5, 0.5], 3)


def test_exit_costs_gathers_the_cumulative_cost() -> None:
    costs = torch.tensor([[1.0, 2.0, 3.0], [1.0, 5.0, 9.0]])
    assert exit_costs(costs, torch.tensor([2, 1])).tolist() == [3.0, 5.0]


def _rollouts(n: int = 200, t: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    # confidence rises over the steps at a per-video speed, as a fused prediction's does
    speed = torch.rand(n, 1, generator=g)
    confidence = (0.1 + speed * torch.arange(1, t + 1) / t).clamp(max=1.0)
    confidence = confidence + 0.01 * torch.rand(n, t, generator=g)
    per_step = 0.05 + 0.02 * torch.rand(n, t, generator=g)  # cost varies with options taken
    return confidence, per_step.cumsum(dim=1)


@pytest.mark.parametrize("fraction", [0.3, 0.5, 0.7, 0.9])
def test_calibration_meets_budget_within_5_percent(fraction: float) -> None:
    confidence, costs = _rollouts()
    floor, ceiling = float(costs[:, 0].mean()), float(costs[:, -1].mean())
    budget = floor + fraction * (ceiling - floor)
    result = calibrate_thresholds(confidence, costs, budget)
    assert result.achieved <= budget
    assert result.achieved >= 0.95 * budget
    # the thresholds, applied afresh, give the reported cost
    exits = apply_thresholds(confidence, result.thresholds)
    assert float(exit_costs(costs, exits).mean()) == pytest.approx(result.achieved)
    assert sum(result.exit_fraction) == pytest.approx(1.0)
    assert result.thresholds[-1] == 0.0


def test_calibration_reports_accuracy_at_the_exits() -> None:
    confidence, costs = _rollouts()
    correct = confidence > 0.3
    result = calibrate_thresholds(confidence, costs, float(costs.mean()), correct=correct)
    exits = apply_thresholds(confidence, result.thresholds)
    expected = correct.gather(1, exits.view(-1, 1)).float().mean()
    assert result.accuracy == pytest.approx(float(expected))


def test_budget_above_full_cost_never_exits_and_below_floor_is_an_error() -> None:
    confidence, costs = _rollouts()
    full = calibrate_thresholds(confidence, costs, float(costs[:, -1].mean()) * 2)
    assert full.exit_fraction[-1] == 1.0
    assert full.achieved == pytest.approx(float(costs[:, -1].mean()))
    with pytest.raises(ValueError, match="below the cheapest"):
        calibrate_thresholds(confidence, costs, float(costs[:, 0].mean()) / 2)


def test_with_labels_a_shared_threshold_wins_where_an_exit_is_confidently_wrong() -> None:
    """Exit 0 is a head at chance (low confidence, wrong) and the later steps are right when
    confident: MSDNet's geometric quota still sends videos out of exit 0, the shared threshold
    sends none, and with labels the calibration keeps the more accurate shared rule."""
    n, t = 200, 5
    g = torch.Generator().manual_seed(3)
    confidence = torch.empty(n, t)
    confidence[:, 0] = 0.1 + 0.1 * torch.rand(n, generator=g)  # the chance-level head
    speed = torch.rand(n, 1, generator=g)
    confidence[:, 1:] = (0.3 + 0.7 * speed * torch.arange(1, t) / (t - 1)).clamp(max=1.0)
    correct = torch.ones(n, t, dtype=torch.bool)
    correct[:, 0] = False
    costs = torch.cat([torch.full((n, 1), 0.01), torch.full((n, t - 1), 0.1)], 1).cumsum(1)
    budget = float(costs[:, 2].mean())
    geometric = calibrate_thresholds(confidence, costs, budget)
    assert geometric.rule == "geometric" and geometric.exit_fraction[0] > 0.1
    chosen = calibrate_thresholds(confidence, costs, budget, correct=correct)
    assert chosen.rule == "shared" and chosen.exit_fraction[0] == 0.0
    assert chosen.achieved <= budget and chosen.accuracy == 1.0
    assert chosen.thresholds[-1] == 0.0
    # the geometric rule, scored with the same labels, loses what its exit-0 quota got wrong
    exits = apply_thresholds(confidence, geometric.thresholds)
    assert float(correct.gather(1, exits.view(-1, 1)).float().mean()) < chosen.accuracy


def test_with_labels_ties_keep_the_geometric_rule() -> None:
    confidence, costs = _rollouts()
    correct = torch.ones_like(confidence, dtype=torch.bool)  # every exit right: a tie
    result = calibrate_thresholds(confidence, costs, float(costs.mean()), correct=correct)
    assert result.rule == "geometric" and result.accuracy == 1.0


def test_thresholds_keep_a_margin_from_every_recorded_confidence() -> None:
    """No threshold sits on a recorded confidence (each is moved just below by MARGIN, at most
    half the gap to the next lower one): a second pass whose confidences differ by float
    rounding exits the same videos."""
    confidence, costs = _rollouts()
    correct = confidence > 0.3
    budget = float(costs.mean())
    for labels in (None, correct):
        result = calibrate_thresholds(confidence, costs, budget, correct=labels)
        exits = apply_thresholds(confidence, result.thresholds)
        for step, threshold in enumerate(result.thresholds[:-1]):
            if threshold < NEVER:
                assert float((confidence[:, step] - threshold).abs().min()) > 1e-6
        jittered = confidence + 1e-7 * torch.randn(
            confidence.shape, generator=torch.Generator().manual_seed(0)
        )
        assert torch.equal(apply_thresholds(jittered, result.thresholds), exits)
        assert float(exit_costs(costs, exits).mean()) == pytest.approx(result.achieved)
