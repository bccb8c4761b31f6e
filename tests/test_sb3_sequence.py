"""SequenceLstmPolicy: sb3-contrib's recurrent policy with one LSTM call per minibatch."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("sb3_contrib")

from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy  # noqa: E402

from videofocus.policy.algorithms import get_algorithm  # noqa: E402
from videofocus.train.rl.sb3 import SequenceLstmPolicy  # noqa: E402

N_SEQ, LENGTH, FEATURES, HIDDEN = 6, 8, 5, 7


def _inputs(starts: torch.Tensor):
    g = torch.Generator().manual_seed(0)
    features = torch.randn(N_SEQ * LENGTH, FEATURES, generator=g, requires_grad=True)
    states = (
        torch.randn(1, N_SEQ, HIDDEN, generator=g),
        torch.randn(1, N_SEQ, HIDDEN, generator=g),
    )
    return features, states, starts.reshape(-1)  # sequences are rows of the flat batch


class _CountingLstm(torch.nn.LSTM):
    calls = 0

    def forward(self, *args, **kwargs):
        type(self).calls += 1
        return super().forward(*args, **kwargs)


@pytest.mark.parametrize("where", ["first_step", "none", "mid_sequence"])
def test_one_call_gives_the_step_by_step_outputs_and_gradients(where):
    starts = torch.zeros(N_SEQ, LENGTH)
    if where == "first_step":  # how RecurrentRolloutBuffer cuts sequences: at episode starts
        starts[::2, 0] = 1.0
    elif where == "mid_sequence":
        starts[1, 3] = 1.0
    torch.manual_seed(0)
    lstm = _CountingLstm(FEATURES, HIDDEN)
    results = []
    for process in (
        RecurrentActorCriticPolicy._process_sequence,
        SequenceLstmPolicy._process_sequence,
    ):
        features, states, flat = _inputs(starts)
        _CountingLstm.calls = 0
        out, (h, c) = process(features, states, flat, lstm)
        out.square().sum().backward()
        results.append((out, h, c, features.grad, _CountingLstm.calls))
    (out_a, h_a, c_a, grad_a, calls_a), (out_b, h_b, c_b, grad_b, calls_b) = results
    for a, b in ((out_a, out_b), (h_a, h_b), (c_a, c_b), (grad_a, grad_b)):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5)
    if where == "first_step":
        assert (calls_a, calls_b) == (LENGTH, 1)  # the loop sb3-contrib would take, gone
    elif where == "none":
        assert calls_a == calls_b == 1
    else:  # a start inside a sequence: the step-by-step loop still
        assert calls_a == calls_b == LENGTH


def test_recurrent_ppo_trains_with_it():
    assert get_algorithm("recurrent_ppo").sb3_policy_class() is SequenceLstmPolicy
