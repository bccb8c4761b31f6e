"""One cost authority: ``flops``, ``eval``, ``label`` and ``bench`` count the same GMACs for the
same actions, the learned policy's own compute included."""

from __future__ import annotations

import pytest
import torch

from videofocus.config import config_from_dict
from videofocus.evaluation.evaluate import evaluate_adaptive
from videofocus.evaluation.flops_report import flops_report
from videofocus.evaluation.policy_eval import evaluate_glimpse_model
from videofocus.inference.model import load_inference_model
from videofocus.models.cost import GIGA, CostTable, measure_macs
from videofocus.models.focusnet import GlanceOutput
from videofocus.models.glimpse import dense_actions
from videofocus.policy.focusnet import PolicyFocusNet
from videofocus.runtime import torch_threads


@pytest.fixture(scope="module")
def model(tiny_data, tiny_config):
    """The tiny config's model and learned policy with random weights (no training needed: cost
    depends on shapes, not weights)."""
    cfg = config_from_dict(tiny_config(tiny_data))
    return load_inference_model(config=cfg)


def test_the_policy_is_counted_and_flops_agrees(model) -> None:
    table = model.cost_table()
    net, policy, size = model.net, model.policy, model.cfg.data.frame_size
    glance = net.global_encoder(torch.zeros(1, 3, size, size))
    one_step = GlanceOutput(glance.map[:, None], glance.pooled[:, None])
    # one step of the policy: its projection and its network, nothing else
    assert table.policy == measure_macs(policy.act, one_step) > 0
    assert table.policy >= measure_macs(policy.projection, glance.map)

    report = flops_report(model.cfg)
    comp = report["components"]
    assert comp["policy_per_step"] == pytest.approx(table.policy / GIGA, rel=1e-12)
    assert comp["glance_per_frame"] == pytest.approx(table.glance / GIGA, rel=1e-12)
    assert comp["aggregator_per_step"] == pytest.approx(table.aggregator / GIGA, rel=1e-12)
    assert [o["gmacs"] for o in comp["local_per_glimpse"]] == pytest.approx(
        [macs / GIGA for macs in table.local], rel=1e-12
    )
    steps = model.cfg.data.frames
    for option in range(1, table.num_options + 1):
        gmacs = table.usage_from_actions(dense_actions(1, steps, option)).item()
        assert report["per_video"][f"option_{option}"] == pytest.approx(gmacs)


def test_a_model_with_its_policy_costs_what_the_inference_model_costs(model) -> None:
    # eval and bench measure the policy-carrying model; label measures model + policy
    carried = PolicyFocusNet(model.net, model.policy, train_local=False)
    size = model.cfg.data.frame_size
    assert CostTable.from_model(carried, size) == model.cost_table()
    # a heuristic computes no MACs, so a model without a learned policy pays none
    assert CostTable.from_model(model.net, size).policy == 0


@pytest.mark.slow
def test_eval_bench_and_label_report_the_same_gmacs(model) -> None:
    with torch_threads(1):
        carried = PolicyFocusNet(model.net, model.policy, train_local=False)
        bench = evaluate_glimpse_model(model.cfg, carried, None)  # eval's evaluate_model inside
        label = evaluate_adaptive(model.cfg, model)  # the label job's AdaptiveInferencer
    assert bench["videos"] == label["videos"] > 0
    assert bench["gmacs_per_video"] == pytest.approx(label["gmacs_per_video"], rel=1e-9)
    policy_share = model.cost_table().policy * model.cfg.data.frames / GIGA
    assert label["gmacs_per_video"] > policy_share > 0
