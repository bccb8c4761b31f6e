"""Evaluation metrics: hand-computed AP, absent classes, sklearn agreement with ties, top-k."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score

from videofocus.evaluation.metrics import (
    mean_average_precision,
    per_class_average_precision,
    topk_accuracy,
)


def test_average_precision_by_hand():
    scores = np.array(
        [[0.9, 0.1], [0.8, 0.4], [0.7, 0.3], [0.6, 0.2], [0.5, 0.9]],
    )
    targets = np.array([[1, 0], [0, 1], [1, 0], [0, 0], [1, 0]])
    # class 0, ranked by score: + - + - +  -> precision at each positive: 1/1, 2/3, 3/5
    #   AP0 = (1 + 2/3 + 3/5) / 3 = 34/45
    # class 1, ranked: v4 (0.9, -), v1 (0.4, +) -> one positive at rank 2: AP1 = 1/2
    ap = per_class_average_precision(scores, targets)
    np.testing.assert_allclose(ap, [34 / 45, 1 / 2], rtol=0, atol=1e-12)
    assert mean_average_precision(scores, targets) == pytest.approx(
        (34 / 45 + 1 / 2) / 2, abs=1e-12
    )


def test_tied_scores_form_one_threshold():
    # All four videos tie: one threshold with precision 2/4 for both positives, whatever the order.
    scores = np.full((4, 1), 0.5)
    for targets in ([1, 1, 0, 0], [0, 0, 1, 1], [0, 1, 0, 1]):
        t = np.array(targets)[:, None]
        assert per_class_average_precision(scores, t)[0] == pytest.approx(0.5, abs=1e-12)
    # A tie between a positive and a negative at the top: precision 1/2 there, then 2/3.
    scores = np.array([[0.9], [0.9], [0.5]])
    targets = np.array([[1], [0], [1]])
    assert per_class_average_precision(scores, targets)[0] == pytest.approx((1 / 2 + 2 / 3) / 2)


def test_absent_class_is_skipped_without_renumbering():
    rng = np.random.default_rng(3)
    n = 30
    scores = rng.random((n, 4))
    labels = rng.choice([0, 2, 3], size=n)  # class 1 never occurs in this evaluation set
    targets = np.eye(4, dtype=int)[labels]
    # Make each present class easy to rank from its own column, so renumbering visibly hurts.
    scores[np.arange(n), labels] += 1.0

    ap = per_class_average_precision(scores, targets)
    assert np.isnan(ap[1]) and not np.isnan(ap[[0, 2, 3]]).any()
    by_hand = np.mean([average_precision_score(targets[:, c], scores[:, c]) for c in (0, 2, 3)])
    assert mean_average_precision(scores, targets) == pytest.approx(by_hand, abs=1e-12)
    assert by_hand == pytest.approx(1.0)

    # The inherited helper dropped absent classes from the targets, then scored the remaining
    # target columns against score columns 0, 1, 2: classes 2 and 3 met the wrong columns.
    present = [c for c in range(4) if targets[:, c].any()]
    renumbered = np.mean(
        [average_precision_score(targets[:, c], scores[:, i]) for i, c in enumerate(present)]
    )
    assert abs(renumbered - mean_average_precision(scores, targets)) > 0.1


@pytest.mark.parametrize("seed", range(5))
def test_matches_sklearn_on_random_data_with_ties(seed):
    rng = np.random.default_rng(seed)
    n, c = 200, 12
    # Scores on a coarse grid make many ties; some near-empty classes as in real multi-label sets.
    scores = rng.integers(0, 8, size=(n, c)) / 8.0
    targets = (rng.random((n, c)) < rng.uniform(0.01, 0.4, size=c)).astype(int)
    targets[:, 0] = 0  # one class without positives
    targets[5, 1] = 1
    ap = per_class_average_precision(scores, targets)
    for k in range(c):
        if targets[:, k].any():
            assert ap[k] == pytest.approx(
                average_precision_score(targets[:, k], scores[:, k]), abs=1e-9
            )
        else:
            assert np.isnan(ap[k])
    present = targets.any(axis=0)
    expected = average_precision_score(targets[:, present], scores[:, present], average="macro")
    assert mean_average_precision(scores, targets) == pytest.approx(expected, abs=1e-9)


def test_row_order_and_input_types_do_not_matter():
    rng = np.random.default_rng(7)
    scores = rng.integers(0, 5, size=(50, 6)).astype(np.float32)
    labels = rng.integers(0, 6, size=50)
    ap = per_class_average_precision(scores, labels)
    perm = rng.permutation(50)
    np.testing.assert_allclose(per_class_average_precision(scores[perm], labels[perm]), ap)
    # class indices [N] mean the same as their one-hot matrix; tensors (bf16 too) are accepted
    np.testing.assert_allclose(per_class_average_precision(scores, np.eye(6)[labels]), ap)
    tensor_ap = per_class_average_precision(
        torch.from_numpy(scores).bfloat16(), torch.from_numpy(labels)
    )
    np.testing.assert_allclose(tensor_ap, ap)  # small integers are exact in bfloat16


def test_map_input_errors():
    with pytest.raises(ValueError, match="no class has a positive"):
        mean_average_precision(np.ones((3, 2)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="NaN"):
        mean_average_precision(np.array([[np.nan, 1.0]]), [[1, 0]])
    with pytest.raises(ValueError, match="only 0 and 1"):
        mean_average_precision(np.ones((2, 2)), [[2, 0], [0, 1]])
    with pytest.raises(ValueError, match=r"\[N\] labels or a multi-hot"):
        mean_average_precision(np.ones((2, 2)), np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"outside \[0, 2\)"):
        mean_average_precision(np.ones((2, 2)), [0, 2])


def test_topk_accuracy_known_case():
    logits = torch.tensor(
        [
            [0.1, 0.5, 0.2, 0.0, 0.3, 0.9],  # label 5 ranks 1st
            [0.6, 0.5, 0.4, 0.3, 0.2, 0.1],  # label 3 ranks 4th
            [0.0, 0.1, 0.2, 0.3, 0.4, 0.5],  # label 0 ranks 6th
            [0.3, 0.9, 0.1, 0.2, 0.0, 0.4],  # label 5 ranks 2nd
        ]
    )
    labels = torch.tensor([5, 3, 0, 5])
    acc = topk_accuracy(logits, labels, ks=(1, 2, 5))
    assert acc == {"top1": 0.25, "top2": 0.5, "top5": 0.75}


def test_topk_with_fewer_classes_than_k_ties_and_multi_hot():
    logits = np.array([[0.2, 0.8, 0.0], [0.9, 0.05, 0.05]])
    assert topk_accuracy(logits, [0, 2], ks=(1, 3, 5)) == {"top1": 0.0, "top3": 1.0, "top5": 1.0}
    # label 2 ties with class 1 at 0.05: counted behind it, so it ranks 3rd, not 2nd
    assert topk_accuracy(logits, [1, 2], ks=(2,)) == {"top2": 0.5}
    # constant logits never look accurate
    assert topk_accuracy(np.zeros((4, 3)), [0, 1, 2, 0], ks=(1,)) == {"top1": 0.0}
    # multi-hot: a hit when any positive class is in the top k
    multi = np.array([[1, 0, 1], [1, 1, 0]])  # row 0: best positive ranks 2nd; row 1: 1st
    assert topk_accuracy(logits, multi, ks=(1, 2)) == {"top1": 0.5, "top2": 1.0}
    with pytest.raises(ValueError, match="at least one positive"):
        topk_accuracy(logits, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="positive integers"):
        topk_accuracy(logits, [0, 1], ks=(0,))
