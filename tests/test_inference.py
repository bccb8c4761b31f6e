"""The batched adaptive inferencer: same numbers as one FocusNet pass, real early exit, costs."""

from __future__ import annotations

import pytest
import torch

from videofocus.inference.inferencer import AdaptiveInferencer, InferenceOptions, chunked_step_costs
from videofocus.models import FocusNet, GlimpseOption, create_focusnet
from videofocus.models.cost import CostTable
from videofocus.policy.heuristics import GlimpsePolicy, RandomPolicy, create_policy

OPTIONS = (GlimpseOption(0.25, 16), GlimpseOption(0.5, 24))
STEPS, SIZE, CLASSES = 6, 48, 5


class FixedPolicy(GlimpsePolicy):
    """Replays given actions (one row per clip, matched by the clip's first pixel)."""

    def __init__(self, actions: torch.Tensor) -> None:
        super().__init__(OPTIONS, 5)
        self.table = actions

    def act(self, glance, generator=None):  # noqa: D102
        return self.table[: glance.maps.shape[0]].to(glance.maps.device)


@pytest.fixture(scope="module")
def net() -> FocusNet:
    torch.manual_seed(0)
    return create_focusnet(CLASSES, "tiny_cnn", 24, OPTIONS, "tiny_cnn", 5, 16).eval()


@pytest.fixture(scope="module")
def cost(net: FocusNet) -> CostTable:
    return CostTable.from_model(net, SIZE)


def _clips(n: int, seed: int) -> torch.Tensor:
    return torch.randn(n, STEPS, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


def _random_actions(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    option = torch.randint(0, 3, (n, STEPS, 1), generator=g)  # includes skips
    cells = torch.randint(0, 5, (n, STEPS, 2), generator=g)
    return torch.cat([option, cells], dim=-1)


@pytest.mark.parametrize(("chunk", "local_batch"), [(1, 3), (2, 7), (4, 256), (6, 1)])
def test_without_exit_equals_one_focusnet_pass(net, cost, chunk, local_batch) -> None:
    frames, actions = _clips(5, 1), _random_actions(5, 2)
    inferencer = AdaptiveInferencer(
        net,
        FixedPolicy(actions),
        cost,
        InferenceOptions(chunk_steps=chunk, local_batch=local_batch),
    )
    preds = inferencer.predict(frames)
    with torch.no_grad():
        ref = net(frames, actions)
    expected_costs = chunked_step_costs(actions, cost, chunk)[:, -1]
    for i, p in enumerate(preds):
        torch.testing.assert_close(p.logits, ref.logits[i, -1], atol=1e-4, rtol=1e-4)
        assert p.exit_step == STEPS - 1 and p.steps_read == STEPS
        assert torch.equal(p.actions, actions[i])
        probs = ref.logits[i].softmax(-1)
        assert p.step_top1 == probs.argmax(-1).tolist()
        assert p.step_confidence == pytest.approx(probs.max(-1).values.tolist(), abs=1e-4)
        assert p.gmacs == pytest.approx(float(expected_costs[i]))
    # all steps read: the counted cost equals the cost table's count of these actions
    assert [p.gmacs for p in preds] == pytest.approx(cost.usage_from_actions(actions).tolist())


def test_stream_carries_partial_batches_across_clip_batches(net, cost) -> None:
    frames, actions = _clips(9, 3), _random_actions(9, 4)
    policy = create_policy("saliency", OPTIONS, 5, option=2)
    with torch.no_grad():
        ref = net(frames, policy.act(net.glance(frames)))
    inferencer = AdaptiveInferencer(net, policy, cost, InferenceOptions(2, local_batch=8))
    batches = [(list(range(i, min(i + 4, 9))), frames[i : i + 4]) for i in range(0, 9, 4)]
    out = dict(inferencer.run(batches))
    assert sorted(out) == list(range(9))
    for i in range(9):
        torch.testing.assert_close(out[i].logits, ref.logits[i, -1], atol=1e-4, rtol=1e-4)
    del actions


def test_zero_threshold_exits_after_the_first_chunk_and_skips_later_glimpses(net, cost) -> None:
    frames, actions = _clips(4, 5), _random_actions(4, 6)
    options = InferenceOptions(chunk_steps=2, thresholds=[0.0])
    preds = AdaptiveInferencer(net, FixedPolicy(actions), cost, options).predict(frames)
    with torch.no_grad():
        ref = net(frames, actions)
    costs = chunked_step_costs(actions, cost, 2)
    for i, p in enumerate(preds):
        assert p.exit_step == 0 and p.steps_read == 2 and p.actions.shape == (2, 3)
        torch.testing.assert_close(p.logits, ref.logits[i, 0], atol=1e-4, rtol=1e-4)
        assert p.gmacs == pytest.approx(float(costs[i, 0]))
        assert p.gmacs < cost.usage_from_actions(actions[i : i + 1]).item() or not bool(
            actions[i, 2:, 0].any()
        )


def test_exit_step_is_the_first_step_reaching_its_threshold(net, cost) -> None:
    frames, actions = _clips(6, 7), _random_actions(6, 8)
    full = AdaptiveInferencer(net, FixedPolicy(actions), cost).predict(frames)
    confidence = torch.tensor([p.step_confidence for p in full])
    threshold = float(confidence.median())
    options = InferenceOptions(chunk_steps=1, thresholds=[threshold])
    preds = AdaptiveInferencer(net, FixedPolicy(actions), cost, options).predict(frames)
    costs = chunked_step_costs(actions, cost, 1)
    for i, p in enumerate(preds):
        hits = (confidence[i] >= threshold).nonzero()
        expected = int(hits[0]) if len(hits) else STEPS - 1
        assert p.exit_step == expected and p.steps_read == expected + 1
        assert p.gmacs == pytest.approx(float(costs[i, expected]))


def test_anytime_mode_reads_a_fixed_number_of_steps(net, cost) -> None:
    frames = _clips(3, 9)
    policy = RandomPolicy(OPTIONS, 5, option=1)
    preds = AdaptiveInferencer(net, policy, cost, InferenceOptions(max_steps=3)).predict(frames)
    assert all(p.steps_read == 3 and p.exit_step == 2 for p in preds)


def test_clip_shape_change_and_bad_options_are_errors(net, cost) -> None:
    inferencer = AdaptiveInferencer(net, RandomPolicy(OPTIONS, 5), cost)
    inferencer.predict(_clips(2, 0))
    with pytest.raises(ValueError, match="one inferencer per clip shape"):
        inferencer.predict(torch.zeros(1, STEPS - 1, 3, SIZE, SIZE))
    with pytest.raises(ValueError, match="chunk_steps"):
        InferenceOptions(chunk_steps=0)
    with pytest.raises(ValueError, match="amp"):
        InferenceOptions(amp="fp8")


def test_bf16_autocast_on_cpu_runs_and_stays_close(net, cost) -> None:
    frames, actions = _clips(3, 10), _random_actions(3, 11)
    ref = AdaptiveInferencer(net, FixedPolicy(actions), cost).predict(frames)
    options = InferenceOptions(amp="bf16")
    preds = AdaptiveInferencer(net, FixedPolicy(actions), cost, options).predict(frames)
    for a, b in zip(ref, preds, strict=True):
        torch.testing.assert_close(a.logits, b.logits, atol=0.1, rtol=0.1)


def test_uint8_frames_give_the_float_path_results(net, cost) -> None:
    g = torch.Generator().manual_seed(12)
    pixels = torch.randint(0, 256, (4, STEPS, 3, SIZE, SIZE), dtype=torch.uint8, generator=g)
    from videofocus.data.loaders import frames_to_input

    actions = _random_actions(4, 13)
    ref = AdaptiveInferencer(net, FixedPolicy(actions), cost).predict(
        frames_to_input(pixels, torch.device("cpu"))
    )
    fast = AdaptiveInferencer(net, FixedPolicy(actions), cost).predict(pixels)
    for a, b in zip(ref, fast, strict=True):
        # crops are exact; the 8-bit glance resize moves inputs by at most one grey level
        torch.testing.assert_close(a.logits, b.logits, atol=2e-2, rtol=2e-2)
        assert a.gmacs == b.gmacs


@pytest.mark.parametrize("thresholds", [None, [0.0]])
def test_local_encoder_sees_exactly_the_unskipped_glimpses_it_reads(
    net, cost, monkeypatch, thresholds
) -> None:
    """Skips and early exits save work: count the crops the local encoder really encodes."""
    frames, actions = _clips(6, 7), _random_actions(6, 8)
    encoded = []
    original = net.local_encoder.pooled

    def counting(crops, *args, **kwargs):
        encoded.append(crops.shape[0])
        return original(crops, *args, **kwargs)

    monkeypatch.setattr(net.local_encoder, "pooled", counting)
    options = InferenceOptions(chunk_steps=2, local_batch=4, thresholds=thresholds)
    preds = AdaptiveInferencer(net, FixedPolicy(actions), cost, options).predict(frames)
    read = torch.tensor([p.steps_read for p in preds])
    assert read.tolist() == ([STEPS] * 6 if thresholds is None else [2] * 6)
    steps = torch.arange(STEPS)[None, :] < read[:, None]
    unskipped = int(((actions[..., 0] > 0) & steps).sum())
    assert 0 < unskipped < actions.shape[0] * STEPS  # the draw has skips to save
    assert sum(encoded) == unskipped
    assert max(encoded) <= 4
