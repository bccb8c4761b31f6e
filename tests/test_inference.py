"""The batched adaptive inferencer: same numbers as one FocusNet pass, real early exit, costs."""

from __future__ import annotations

import pytest
import torch

from videofocus.config import Config
from videofocus.inference.early_exit import apply_thresholds
from videofocus.inference.inferencer import AdaptiveInferencer, InferenceOptions, chunked_step_costs
from videofocus.inference.model import CalibrationRollouts, InferenceModel, calibrate_budget
from videofocus.models import FocusNet, GlimpseOption, create_focusnet
from videofocus.models.cost import CostTable
from videofocus.policy.heuristics import GlimpsePolicy, RandomPolicy, create_policy

OPTIONS = (GlimpseOption(0.25, 16), GlimpseOption(0.5, 24))
STEPS, SIZE, CLASSES = 6, 48, 5


class FixedPolicy(GlimpsePolicy):
    """Replays given actions (one row per clip, matched by the clip's first pixel)."""

    def __init__(self, actions: torch.Tensor, options=OPTIONS) -> None:
        super().__init__(options, 5)
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


# ------------------------------------------------------------------ the glance exit (RANet)

#: Glance-only logits of 8 clips: a large first logit -> a confident glance (top-1 p ~ 0.9+).
GLANCE_SCORES = torch.tensor([6.0, 0.0, 5.0, 0.5, 0.0, 8.0, 1.0, 4.0])
GLANCE_THRESHOLD = 0.8


def _glance_logits(n: int) -> torch.Tensor:
    return torch.nn.functional.pad(GLANCE_SCORES[:n, None], (0, CLASSES - 1))


def _glance_confidence(n: int) -> torch.Tensor:
    return _glance_logits(n).softmax(-1).max(-1).values


def _counting(monkeypatch, obj, name: str, size) -> list[int]:
    """Replace ``obj.name`` by a wrapper recording ``size(*args)`` of every call."""
    seen: list[int] = []
    original = getattr(obj, name)

    def wrapper(*args, **kwargs):
        seen.append(size(*args))
        return original(*args, **kwargs)

    monkeypatch.setattr(obj, name, wrapper)
    return seen


def test_glance_prediction_is_the_glance_heads_mean_over_frames(net) -> None:
    frames, actions = _clips(3, 20), _random_actions(3, 21)
    with torch.no_grad():
        out = net(frames, actions)
        torch.testing.assert_close(net.glance_prediction(out.glance), out.glance_logits.mean(dim=1))


def test_cost_table_prices_the_glance_head_and_the_glance_exit(net, cost) -> None:
    agg = net.aggregator
    assert cost.glance_head == agg.glance_dim * agg.num_classes  # one Linear on a pooled frame
    assert cost.glance_exit(STEPS) == STEPS * (cost.glance + cost.glance_head)
    actions = _random_actions(4, 22)
    off = chunked_step_costs(actions, cost, 2)
    on = chunked_step_costs(actions, cost, 2, glance_exit=True)
    assert off.shape == (4, STEPS) and on.shape == (4, STEPS + 1)
    assert on[:, 0].tolist() == pytest.approx([cost.glance_exit(STEPS) / 1e9] * 4)
    # past the glance exit every video has paid the glance head too, nothing else changes
    torch.testing.assert_close(on[:, 1:], off + STEPS * cost.glance_head / 1e9)
    assert bool((on[:, 0] < off[:, 0]).all())  # no policy, no glimpse, no GRU step


@pytest.mark.parametrize("chunk", [1, 2])
def test_glance_exit_leaves_before_any_policy_step_or_glimpse(
    net, cost, monkeypatch, chunk
) -> None:
    """Exactly the videos whose glance confidence reaches its threshold leave at exit 0; the
    policy and the local encoder never see them (counted), and they pay the glance alone."""
    n = len(GLANCE_SCORES)
    frames = _clips(n, 23)
    policy = create_policy("saliency", OPTIONS, 5, option=2)  # actions read from each glance
    ref = AdaptiveInferencer(net, policy, cost, InferenceOptions(chunk_steps=chunk)).predict(frames)
    monkeypatch.setattr(net, "glance_prediction", lambda glance: _glance_logits(len(glance[0])))
    acted = _counting(monkeypatch, policy, "act", lambda glance, *_: glance.maps.shape[0])
    encoded = _counting(monkeypatch, net.local_encoder, "pooled", lambda crops, *_: len(crops))
    # exit 0: the glance; the steps never exit early, so every other video reads them all
    thresholds = [GLANCE_THRESHOLD, *[2.0] * STEPS]
    options = InferenceOptions(chunk_steps=chunk, thresholds=thresholds, glance_exit=True)
    preds = AdaptiveInferencer(net, policy, cost, options).predict(frames)

    confident = _glance_confidence(n) >= GLANCE_THRESHOLD
    assert 0 < int(confident.sum()) < n  # both kinds in the batch
    assert [p.glance_exit for p in preds] == confident.tolist()
    assert sum(acted) == n - int(confident.sum())  # the policy acted on the others only
    assert sum(encoded) == (n - int(confident.sum())) * STEPS  # option 2 everywhere: no skip
    glance_only = cost.glance_exit(STEPS) / 1e9
    for i, (p, r) in enumerate(zip(preds, ref, strict=True)):
        assert p.glance_confidence == pytest.approx(float(_glance_confidence(n)[i]))
        assert p.glance_top1 == 0
        if confident[i]:
            assert p.exit_step == -1 and p.steps_read == 0 and p.actions.shape == (0, 3)
            torch.testing.assert_close(p.logits, _glance_logits(n)[i])
            assert p.gmacs == pytest.approx(glance_only)  # glance + glance head, nothing else
            assert p.step_confidence == []
        else:  # read as without the glance exit, plus the glance head that decided
            assert p.exit_step == STEPS - 1 and p.steps_read == STEPS
            torch.testing.assert_close(p.logits, r.logits, atol=1e-4, rtol=1e-4)
            assert torch.equal(p.actions, r.actions)
            assert p.gmacs == pytest.approx(r.gmacs + STEPS * cost.glance_head / 1e9)


def test_glance_exit_of_a_whole_batch_runs_no_policy_and_streams_on(net, cost, monkeypatch) -> None:
    frames = _clips(4, 24)
    policy = create_policy("saliency", OPTIONS, 5, option=1)
    monkeypatch.setattr(net, "glance_prediction", lambda glance: _glance_logits(len(glance[0])))
    acted = _counting(monkeypatch, policy, "act", lambda glance, *_: glance.maps.shape[0])
    options = InferenceOptions(thresholds=[0.0], glance_exit=True)  # everyone leaves at once
    inferencer = AdaptiveInferencer(net, policy, cost, options)
    out = dict(inferencer.run([([0, 1], frames[:2]), ([2, 3], frames[2:])]))
    assert sorted(out) == [0, 1, 2, 3] and all(p.glance_exit for p in out.values())
    assert acted == []


def test_glance_exit_needs_one_threshold_more(net, cost) -> None:
    frames, policy = _clips(2, 25), RandomPolicy(OPTIONS, 5, option=1)
    options = InferenceOptions(thresholds=[0.5] * STEPS, glance_exit=True)
    with pytest.raises(ValueError, match=f"need 1 or {STEPS + 1} exit thresholds"):
        AdaptiveInferencer(net, policy, cost, options).predict(frames)
    # off, the glance head is not even run: no glance confidence, no glance-head MACs
    off = InferenceOptions(thresholds=[0.5] * STEPS)
    preds = AdaptiveInferencer(net, policy, cost, off).predict(frames)
    assert all(p.glance_confidence is None and not p.glance_exit for p in preds)


def _calibrated(net, cost, glance_exit: bool, share: float = 0.5):
    """Saliency roll-outs of 40 clips without exit, then thresholds calibrated on them for
    ``share`` of the way from the cheapest exit to the full cost, as ``--budget-gmacs`` does."""
    frames = _clips(40, 26)
    policy = create_policy("saliency", OPTIONS, 5, option=1)  # the same glimpses however batched
    options = InferenceOptions(chunk_steps=1, glance_exit=glance_exit)
    preds = AdaptiveInferencer(net, policy, cost, options).predict(frames)
    labels = [(i % CLASSES,) for i in range(len(preds))]
    rollouts = CalibrationRollouts.from_predictions(
        zip(labels, preds, strict=True), cost, 1, glance_exit
    )
    floor, ceiling = rollouts.cost_range
    budget = floor + share * (ceiling - floor)
    model = InferenceModel(
        net, policy, Config(), [str(c) for c in range(CLASSES)], "saliency", None
    )
    result = calibrate_budget(model, budget, options, save=False, rollouts=rollouts)
    return frames, policy, options, rollouts, budget, result


@pytest.mark.parametrize("share", [0.3, 0.6])
def test_calibration_with_the_glance_exit_spends_the_budget(net, cost, share) -> None:
    frames, policy, options, rollouts, budget, result = _calibrated(net, cost, True, share)
    assert rollouts.confidence.shape == (40, STEPS + 1)
    assert rollouts.cost_range[0] == pytest.approx(cost.glance_exit(STEPS) / 1e9)
    assert len(result.thresholds) == STEPS + 1 and result.thresholds[-1] == 0.0
    assert 0.95 * budget <= result.achieved <= budget
    assert result.exit_fraction[0] > 0  # some videos leave after the glance
    # the thresholds run for real: the same glance exits (the glance is batched alike), and
    # the mean cost the calibration replayed
    real = AdaptiveInferencer(
        net,
        policy,
        cost,
        InferenceOptions(chunk_steps=1, thresholds=result.thresholds, glance_exit=True),
    ).predict(frames)
    replayed = apply_thresholds(rollouts.confidence, result.thresholds)
    assert [p.glance_exit for p in real] == (replayed == 0).tolist()
    mean = sum(p.gmacs for p in real) / len(real)
    assert mean == pytest.approx(result.achieved, rel=0.02)


def test_calibration_without_the_glance_exit_is_as_before(net, cost) -> None:
    frames, policy, options, rollouts, budget, result = _calibrated(net, cost, False)
    assert rollouts.confidence.shape == (40, STEPS) and len(result.thresholds) == STEPS
    # the cost of stopping after step t, written out: no glance head anywhere
    actions = torch.stack(
        [p.actions for p in AdaptiveInferencer(net, policy, cost, options).predict(frames)]
    )
    local = torch.tensor([0, *cost.local], dtype=torch.float64)[actions[..., 0]]
    by_hand = (local + cost.aggregator).cumsum(1) + STEPS * (cost.glance + cost.policy)
    torch.testing.assert_close(rollouts.step_costs, by_hand / 1e9)
    assert 0.95 * budget <= result.achieved <= budget


def test_sar_glimpses_cost_what_their_masks_computed_as_in_evaluation() -> None:
    # label-time GMACs per video = eval's (FocusOutput.macs_over_table), not the table's price
    from torch import nn

    from videofocus.models.sar import SARBlock

    torch.manual_seed(0)
    options = (GlimpseOption(0.25, 32), GlimpseOption(0.5, 48))
    net = create_focusnet(CLASSES, "tiny_cnn", 24, options, "tiny_resnet_sar", 5, 16).eval()
    for block in net.local_encoder.modules():
        if isinstance(block, SARBlock):  # a data-dependent share of patches refined
            nn.init.normal_(block.mask_head.weight, std=1.0)
            nn.init.constant_(block.mask_head.bias, 0.3)
    frames = torch.randn(4, STEPS, 3, 96, 96, generator=torch.Generator().manual_seed(5))
    actions = _random_actions(4, 6)
    cost = CostTable.from_model(net, 96)
    preds = AdaptiveInferencer(
        net, FixedPolicy(actions, options), cost, InferenceOptions(local_batch=3)
    ).predict(frames)
    with torch.no_grad():
        out = net(frames, actions)
    measured = cost.usage_from_actions(actions, macs_over_table=out.macs_over_table)
    assert [p.gmacs for p in preds] == pytest.approx(measured.tolist(), rel=1e-9)
    assert [p.gmacs for p in preds] != pytest.approx(cost.usage_from_actions(actions).tolist())


def test_a_pixel_aligned_net_is_read_with_its_own_crops() -> None:
    # the inferencer cuts glimpses with the network's own cropper: a net whose crops are cut at
    # whole pixels gives its own forward pass's logits, not those of the same weights cutting
    # at sub-pixel offsets
    torch.manual_seed(0)
    aligned = create_focusnet(
        CLASSES, "tiny_cnn", 24, OPTIONS, "tiny_cnn", 5, 16, pixel_aligned=True
    ).eval()
    blended = create_focusnet(CLASSES, "tiny_cnn", 24, OPTIONS, "tiny_cnn", 5, 16).eval()
    blended.load_state_dict(aligned.state_dict())
    frames, actions = _clips(3, 5), _random_actions(3, 6)
    options = InferenceOptions(chunk_steps=2, local_batch=4)
    cost = CostTable.from_model(aligned, SIZE)
    preds = AdaptiveInferencer(aligned, FixedPolicy(actions), cost, options).predict(frames)
    with torch.no_grad():
        ref, other = aligned(frames, actions), blended(frames, actions)
    got = torch.stack([p.logits for p in preds])
    torch.testing.assert_close(got, ref.logits[:, -1], atol=1e-4, rtol=1e-4)
    assert (got - other.logits[:, -1]).abs().max() > 1e-3
