"""Tests of the GlimpsePolicy interface: heuristics on planted glance maps, the factory, and the
learned policy acting exactly as it does inside the environment."""

from __future__ import annotations

import pytest
import torch

from videofocus.models import GlanceOutput, GlimpseOption, create_focusnet, grid_centres
from videofocus.policy.heuristics import (
    CentrePolicy,
    DensePolicy,
    GlanceOnlyPolicy,
    GlimpsePolicy,
    LearnedGlimpsePolicy,
    RandomPolicy,
    SaliencyPolicy,
    create_policy,
    list_policies,
)
from videofocus.policy.network import GlanceMapEncoder, RecurrentGlimpsePolicy, progress_dim
from videofocus.train.rl.clips import ClipSource, fit_projection
from videofocus.train.rl.env import FocusEnv
from videofocus.train.rl.episodes import EpisodeBatch

B, T, C, HW = 2, 3, 6, (8, 8)
OPTIONS = (GlimpseOption(0.25, 16), GlimpseOption(1.0, 32))
GRID = 4


def _glance(maps: torch.Tensor | None = None) -> GlanceOutput:
    if maps is None:
        maps = torch.rand(B, T, C, *HW, generator=torch.Generator().manual_seed(0))
    return GlanceOutput(maps, maps.mean(dim=(-2, -1)))


@pytest.mark.parametrize("name", ["random", "centre", "saliency", "dense", "glance_only"])
def test_every_heuristic_gives_valid_actions(name):
    policy = create_policy(name, OPTIONS, GRID)
    assert isinstance(policy, GlimpsePolicy)
    actions = policy(_glance(), torch.Generator().manual_seed(1))
    assert actions.shape == (B, T, 3) and actions.dtype == torch.long
    assert bool((actions[..., 0] >= 0).all() and (actions[..., 0] <= len(OPTIONS)).all())
    assert bool((actions[..., 1:] >= 0).all() and (actions[..., 1:] < GRID).all())


def test_fixed_heuristics():
    glance = _glance()
    assert (GlanceOnlyPolicy(OPTIONS, GRID).act(glance) == 0).all()
    assert DensePolicy(OPTIONS, GRID).act(glance)[0, 0].tolist() == [2, 0, 0]  # extent 1.0
    centre = CentrePolicy(OPTIONS, 5, option=2).act(glance)
    assert (centre == torch.tensor([2, 2, 2])).all()
    with pytest.raises(ValueError, match="extent 1.0"):
        DensePolicy(OPTIONS[:1], GRID)
    with pytest.raises(ValueError, match="option must be"):
        CentrePolicy(OPTIONS, GRID, option=3)
    with pytest.raises(ValueError, match="unknown glimpse policy"):
        create_policy("oracle", OPTIONS, GRID)
    assert list_policies() == ["centre", "dense", "glance_only", "random", "saliency"]


def test_random_policy_is_reproducible_and_uniform():
    policy = RandomPolicy(OPTIONS, GRID, option=2)
    maps = torch.zeros(64, 8, C, *HW)
    a = policy.act(_glance(maps), torch.Generator().manual_seed(3))
    b = policy.act(_glance(maps), torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and (a[..., 0] == 2).all()
    counts = torch.bincount(a[..., 1].flatten(), minlength=GRID).float()
    assert bool((counts / counts.sum() - 1 / GRID).abs().max() < 0.05)


def test_saliency_picks_the_cell_of_a_planted_peak():
    maps = torch.zeros(B, T, C, *HW)
    # (batch, step, map x, map y) of single-pixel peaks spread over two channels
    peaks = [(0, 0, 6, 1), (0, 1, 0, 0), (0, 2, 3, 5), (1, 0, 7, 7), (1, 1, 4, 2), (1, 2, 1, 6)]
    for b, t, x, y in peaks:
        maps[b, t, 0, y, x] = 1.0
        maps[b, t, 3, y, x] = 2.0
    maps += 0.01  # a uniform floor does not move the peak
    policy = SaliencyPolicy(OPTIONS, GRID, option=1)
    actions = policy.act(_glance(maps))
    # Expected, per axis: the cell whose glimpse centre (extent 0.25) is nearest the peak pixel.
    axis = grid_centres(torch.arange(GRID)[:, None].expand(GRID, 2), GRID, OPTIONS[0].extent)[:, 0]
    for b, t, x, y in peaks:
        nearest_x = int((axis - (x + 0.5) / HW[1]).abs().argmin())
        nearest_y = int((axis - (y + 0.5) / HW[0]).abs().argmin())
        assert actions[b, t].tolist() == [1, nearest_x, nearest_y], (b, t, x, y)
    assert actions[0, 0, 1:].tolist() == [3, 0]  # top right, spelled out for one case


def test_learned_policy_acts_as_in_the_environment():
    """The exported policy on whole clips == the same network stepping FocusEnv's observations."""
    torch.manual_seed(0)
    net = create_focusnet(5, "tiny_cnn", 32, OPTIONS, "tiny_cnn", GRID, 16).eval()
    g = torch.Generator().manual_seed(2)
    frames = torch.randint(0, 256, (3, T, 3, 48, 48), dtype=torch.uint8, generator=g)
    dataset = [{"frames": f, "label": i} for i, f in enumerate(frames)]
    source = ClipSource(dataset, net)
    projection = fit_projection(source, 4, 3)
    dims = (len(OPTIONS) + 1, GRID, GRID)
    encoder = GlanceMapEncoder(
        4, (4, 4), channels=4, features_dim=16, extras_dim=progress_dim(dims)
    )
    network = RecurrentGlimpsePolicy(encoder, hidden=8, action_dims=dims).eval()
    with torch.no_grad():  # sharpen the logits so that argmax ties cannot differ by rounding
        network.action_net.weight.mul_(20.0)
    learned = LearnedGlimpsePolicy(OPTIONS, GRID, projection, network, allow_skip=False)

    clips = source.load([0, 1, 2])
    batch_actions = learned.act(clips.glance)
    env = FocusEnv(source, EpisodeBatch(net, projection, [1.0, 2.0], allow_skip=False))
    for video in range(3):
        obs, _ = env.reset(options={"video": video})
        state = network.initial_state(1)
        for t in range(T):
            action, state = network.act(
                torch.from_numpy(obs["glance"])[None],
                torch.from_numpy(obs["progress"])[None],
                state,
                deterministic=True,
            )
            obs, *_ = env.step(action[0].numpy())
            executed = action[0].clone()
            executed[0] = max(int(executed[0]), 1)  # skipping is off: option 0 glimpses with 1
            assert batch_actions[video, t].tolist() == executed.tolist()
    with pytest.raises(ValueError, match="acts in"):
        LearnedGlimpsePolicy(OPTIONS[:1], GRID, projection, network)
