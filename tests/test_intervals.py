"""Intervals of reported numbers: t intervals over seeds, paired bootstrap differences."""

from __future__ import annotations

import math

import numpy as np
import pytest

from videofocus.evaluation.intervals import Interval, paired_difference, seed_interval


def test_seed_interval_is_students_t():
    got = seed_interval([0.80, 0.82, 0.84])
    half = 4.302652729911275 * 0.02 / math.sqrt(3)  # t(0.975, 2 degrees of freedom)
    assert got.mean == pytest.approx(0.82) and got.std == pytest.approx(0.02)
    assert (got.low, got.high) == pytest.approx((0.82 - half, 0.82 + half))
    assert got.n == 3
    assert got.format() == "82.0 ± 2.0 [77.0, 87.0]"


def test_one_seed_has_no_interval():
    got = seed_interval([0.5])
    assert got.mean == 0.5 and got.std == 0.0 and math.isnan(got.low) and got.n == 1
    assert got.format() == "50.0 ± 0.0"
    with pytest.raises(ValueError):
        seed_interval([])


def test_paired_difference_of_equal_and_opposite_methods():
    right, wrong = np.ones((3, 50)), np.zeros((3, 50))
    assert paired_difference(right, right) == Interval(0.0, 0.0, 0.0, 0.0, 3)
    assert paired_difference(right, wrong) == Interval(1.0, 0.0, 1.0, 1.0, 3)
    with pytest.raises(ValueError, match="one shape"):
        paired_difference(right, np.ones((2, 50)))


def test_paired_difference_cancels_what_both_methods_share():
    rng = np.random.default_rng(1)
    hard = rng.random((3, 400)) < 0.5  # videos both methods get wrong, per seed
    b = (~hard).astype(float)
    a = b.copy()
    a[:, :40] = 1.0  # a also gets 40 of the 400 videos right that b may miss
    gain = float((a - b).mean())
    got = paired_difference(a, b, resamples=2000)
    assert got.mean == pytest.approx(gain) and got.low <= gain <= got.high
    assert 0.0 < got.low and got.high - got.low < 0.06  # paired: narrower than either accuracy's
    unpaired = paired_difference(a, b[:, ::-1].copy(), resamples=2000)  # videos mismatched
    assert unpaired.high - unpaired.low > got.high - got.low
    again = paired_difference(a, b, resamples=2000)
    assert again == got  # the bootstrap's own draws are seeded
