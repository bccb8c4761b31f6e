"""The differentiable (AdaFocusV2-style) glimpse policy: gradients through the crop, centres kept
inside the frame, training moves them towards what the label needs, and its engine stage."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest
import torch
import torchvision.transforms.v2.functional as TF

from videofocus.artifacts.factory import build_differentiable_focusnet, build_focusnet
from videofocus.config import Config, ConfigError, config_from_dict
from videofocus.evaluation.evaluate import evaluate_checkpoint
from videofocus.models import GlimpseOption, create_focusnet, dense_actions, grid_centres
from videofocus.models.cost import CostTable
from videofocus.policy import differentiable as differentiable_module
from videofocus.policy.differentiable import (
    CENTRE_HEADS,
    DifferentiableFocusNet,
    DifferentiableGlimpsePolicy,
)
from videofocus.policy.focusnet import policy_chooses
from videofocus.train.pipeline import run_stages
from videofocus.train.stages import averaged_loss, focus_loss

OPTIONS = [GlimpseOption(0.25, 12), GlimpseOption(0.5, 24)]


# float reductions, hence trained weights and exact numbers, depend on the thread count
pytestmark = pytest.mark.usefixtures("one_thread")


def make_model(
    option: int = 2, num_classes: int = 3, seed: int = 0, head: str = "regress"
) -> DifferentiableFocusNet:
    torch.manual_seed(seed)
    net = create_focusnet(num_classes, "tiny_cnn", 16, OPTIONS, "tiny_cnn", grid=5, hidden=16)
    policy = DifferentiableGlimpsePolicy(
        net.options, net.grid, option, net.global_encoder.num_features, (2, 2), 4, 16, head=head
    )
    return DifferentiableFocusNet(net, policy)


def test_gradient_reaches_the_policy_through_the_crop():
    model = make_model().train()
    frames = torch.randn(2, 3, 3, 48, 48)
    out = model(frames, policy_chooses(2, 3))
    loss, _ = focus_loss(out, torch.tensor([0, 2]))
    loss.backward()
    policy = model.policy
    # the centres reach the loss only through the crop, so a gradient here came through it
    assert policy.head.weight.grad is not None and policy.head.weight.grad.abs().sum() > 0
    assert policy.head.bias.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.global_encoder.parameters())  # frozen glance
    assert next(iter(model.local_encoder.parameters())).grad is not None  # trains
    # past the zero-initialised output layer, the gradient reaches the map encoder too
    model.zero_grad()
    torch.nn.init.normal_(policy.head.weight, std=0.5)
    loss, _ = focus_loss(model(frames, policy_chooses(2, 3)), torch.tensor([0, 2]))
    loss.backward()
    assert policy.reduce.weight.grad.abs().sum() > 0
    assert policy.gru.weight_hh_l0.grad.abs().sum() > 0


@pytest.mark.parametrize("option", [1, 2])
def test_centres_start_centred_and_stay_inside_the_frame(option):
    model = make_model(option).eval()
    maps = model.glance(torch.randn(3, 4, 3, 48, 48)).maps
    centres = model.policy.centres(maps)
    assert torch.allclose(centres, torch.full_like(centres, 0.5))
    half = OPTIONS[option - 1].extent / 2
    for bias in (-50.0, 50.0):  # saturate the sigmoid both ways
        with torch.no_grad():
            torch.nn.init.normal_(model.policy.head.weight, std=10.0)
            model.policy.head.bias.fill_(bias)
        centres = model.policy.centres(maps * 100)
        assert centres.shape == (3, 4, 2)
        assert bool((centres >= half - 1e-6).all()) and bool((centres <= 1 - half + 1e-6).all())


def test_soft_argmax_centres_are_the_scored_cells_mean_position():
    """The soft-argmax head: equal scores give the frame centre, a score added to every cell
    (what one shared bias would do: the drift of every centre to a corner) changes nothing, and
    one dominant cell puts the centre on that cell's position, kept inside the frame."""
    model = make_model(option=1, head="soft_argmax").eval()
    policy = model.policy
    maps = model.glance(torch.randn(3, 4, 3, 48, 48)).maps
    centres = policy.centres(maps)
    assert torch.allclose(centres, torch.full_like(centres, 0.5))
    with torch.no_grad():
        policy.head.bias.fill_(30.0)
    torch.testing.assert_close(policy.centres(maps), centres)
    with torch.no_grad():  # 2x2 map: the cells sit at 0.25 / 0.75; cell 1 is (x 0.75, y 0.25)
        policy.head.bias.copy_(torch.tensor([0.0, 40.0, 0.0, 0.0]))
    torch.testing.assert_close(policy.centres(maps), torch.tensor([0.75, 0.25]).expand(3, 4, 2))
    big = make_model(option=2, head="soft_argmax").eval().policy  # extent 0.5: centres in
    with torch.no_grad():  # [0.25, 0.75]; a corner cell's 0.25 / 0.75 is the allowed limit
        big.head.bias.copy_(torch.tensor([40.0, 0.0, 0.0, 0.0]))
    assert torch.allclose(big.centres(maps), torch.tensor(0.25))
    with pytest.raises(ValueError, match="head must be one of"):
        make_model(head="argmax")


def test_snapped_actions_are_the_nearest_grid_cells():
    model = make_model(option=1)
    policy = model.policy
    cells = torch.tensor([[[0, 4], [2, 1], [4, 3]]])
    exact = grid_centres(cells, 5, OPTIONS[0].extent)
    assert torch.equal(policy.snap(exact + 0.01), cells)
    actions = policy.act(model.glance(torch.randn(1, 2, 3, 48, 48)))
    assert actions.shape == (1, 2, 3)
    assert bool((actions[..., 0] == 1).all()) and torch.equal(
        actions[..., 1:], torch.tensor([[[2, 2], [2, 2]]])
    )


def corner_clips(n: int, label_seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Clips whose class is the colour of a patch near the top-left corner, the rest grey."""
    g = torch.Generator().manual_seed(label_seed)
    labels = torch.randint(0, 3, (n,), generator=g)
    frames = torch.zeros(n, 2, 3, 48, 48)
    for i, label in enumerate(labels.tolist()):
        frames[i, :, label, 4:20, 4:20] = 2.0
    return frames, labels


# not saliency_prior: it starts at an untrained glance's saliency peak, noise here; its own test
# below checks where it starts and that the prior does not pin its centres
@pytest.mark.parametrize("head", [h for h in CENTRE_HEADS if h != "saliency_prior"])
def test_training_moves_the_centres_towards_the_informative_corner(head):
    model = make_model(option=2, head=head).train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=0.02)
    frames, labels = corner_clips(12, 0)
    before = model.policy.centres(model.glance(frames).maps).detach()
    for _ in range(30):
        loss, _ = focus_loss(model(frames, policy_chooses(12, 2)), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = model.policy.centres(model.glance(frames).maps).detach()
    moved = before - after  # towards the top-left corner: both coordinates decrease
    # the soft-argmax centre is a mean over the 2x2 map's cells: it moves, more slowly
    assert bool((moved > (0.02 if head == "regress" else 0.005)).all()), moved.mean((0, 1))


def test_centre_gradient_is_the_smoothed_frames_while_the_crop_stays_sharp():
    # AdaFocusV2's straight-through crop: values from the sharp frame, the centres' gradient
    # from a Gaussian-smoothed copy of it, so a 2 px texture no longer makes the gradient
    # flip sign with every pixel of offset
    model = make_model(option=1).train()
    model.blur = 2.0
    frames = torch.zeros(2, 3, 48, 48)
    yy, xx = torch.meshgrid(torch.arange(16), torch.arange(16), indexing="ij")
    frames[:, :, 16:32, 16:32] = 1.0 + 2.0 * ((xx + yy) % 2).float()  # bright, 2 px texture
    weights = torch.randn(2, 3, 12, 12, generator=torch.Generator().manual_seed(0))

    def grad_and_crop(images, blur):
        model.blur = blur
        centres = torch.tensor([[0.40, 0.45], [0.55, 0.62]], requires_grad=True)
        crops = model._crop(images, centres)
        (crops * weights).sum().backward()
        return centres.grad, crops.detach()

    grad, crops = grad_and_crop(frames, 2.0)
    sharp_grad, sharp_crops = grad_and_crop(frames, 0.0)
    torch.testing.assert_close(crops, sharp_crops)  # forward values: the sharp crop's
    smooth = TF.gaussian_blur(frames, [13, 13], [2.0, 2.0])
    smooth_grad, _ = grad_and_crop(smooth, 0.0)
    torch.testing.assert_close(grad, smooth_grad)  # gradient: the smoothed crop's
    assert not torch.allclose(grad, sharp_grad, atol=1e-3)
    # one pixel of offset flips the sharp gradient's x component on the texture, not the
    # smoothed one: it varies smoothly with the offset
    shifted = torch.roll(frames, 1, dims=-1)
    sharp_shifted, _ = grad_and_crop(shifted, 0.0)
    smooth_shifted, _ = grad_and_crop(shifted, 2.0)
    assert (sharp_shifted[:, 0] * sharp_grad[:, 0] < 0).any()
    assert bool((smooth_shifted[:, 0] * grad[:, 0] > 0).all())


def test_the_smoothed_copy_is_blurred_in_fp32_outside_autocast(monkeypatch):
    # under CPU bf16 autocast the depthwise blur of channels-last frames takes minutes per
    # batch (the quickstart's differentiable stage stalled on it): the blur must leave autocast
    seen = []
    blur = TF.gaussian_blur

    def recording_blur(images, *args, **kwargs):
        seen.append((images.dtype, torch.is_autocast_enabled("cpu")))
        return blur(images, *args, **kwargs)

    monkeypatch.setattr(differentiable_module.TF, "gaussian_blur", recording_blur)
    model = make_model(option=1).train()
    model.blur = 2.0
    frames = torch.rand(2, 3, 48, 48).contiguous(memory_format=torch.channels_last)
    centres = torch.tensor([[0.40, 0.45], [0.55, 0.62]], requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        crops = model._crop(frames, centres)
    crops.float().sum().backward()
    assert seen == [(torch.float32, False)]
    assert centres.grad is not None and centres.grad.abs().sum() > 0


def test_random_branch_and_smoothed_gradient_only_in_training():
    model = make_model(option=1)
    model.blur, model.random_branch = 2.0, True
    frames = torch.randn(2, 3, 3, 48, 48)
    out = model.train()(frames, policy_chooses(2, 3))
    assert out.auxiliary is not None and out.auxiliary.logits.shape == out.logits.shape
    loss, parts = averaged_loss(out, torch.tensor([0, 2]))
    assert "loss_random" in parts
    expected = (focus_loss(out, torch.tensor([0, 2]))[0] + parts["loss_random"]) / 2
    assert float(loss.detach()) == pytest.approx(float(expected.detach()))
    # the forward values are the sharp crop's: the same as without the smoothing
    with torch.no_grad():
        glance = model.glance(frames)
    centres = model.policy.centres(glance.maps)
    smoothed = model.forward_at(frames, glance, centres).logits
    model.blur = 0.0
    torch.testing.assert_close(smoothed, model.forward_at(frames, glance, centres).logits)
    assert model.eval()(frames, policy_chooses(2, 3)).auxiliary is None


def test_jitter_crops_at_noisy_centres_in_training_only():
    """``jitter``: in training the crop (and its gradient) is taken at the centres plus Gaussian
    noise of ``jitter`` pixels; evaluation crops at the centres themselves."""
    model = make_model(option=1)
    model.jitter = 3.0
    frames = torch.rand(2, 3, 48, 40)  # W != H: x noise scales by the width, y by the height
    exact = torch.tensor([[0.40, 0.45], [0.55, 0.62]])

    def crop(centres: torch.Tensor, seed: int) -> torch.Tensor:
        torch.manual_seed(seed)
        return model._crop(frames, centres)

    centres = exact.clone().requires_grad_(True)
    jittered = crop(centres, 7).detach()
    torch.manual_seed(7)
    noisy = exact + torch.randn(2, 2) * 3.0 / torch.tensor([40.0, 48.0])
    model.jitter = 0.0
    torch.testing.assert_close(jittered, crop(noisy.requires_grad_(True), 0).detach())
    model.jitter = 3.0
    assert not torch.allclose(jittered, crop(exact.clone().requires_grad_(True), 0).detach())
    weights = torch.randn_like(jittered)
    (crop(centres, 7) * weights).sum().backward()
    at_noisy = noisy.detach().requires_grad_(True)
    model.jitter = 0.0
    (crop(at_noisy, 0) * weights).sum().backward()
    torch.testing.assert_close(centres.grad, at_noisy.grad)  # the gradient at the noisy centre
    model.jitter = 3.0
    model.eval()
    plain = make_model(option=1).eval()
    plain.load_state_dict(model.state_dict())
    rows = exact.clone().requires_grad_(True)
    torch.testing.assert_close(model._crop(frames, rows), plain._crop(frames, rows))


def test_given_grid_actions_still_work_and_placeholders_may_not_mix():
    model = make_model().eval()
    frames = torch.randn(1, 2, 3, 48, 48)
    actions = torch.tensor([[[1, 0, 0], [2, 4, 4]]])
    out = model(frames, actions)
    assert out.option_index.tolist() == [[0, 1]]
    mixed = actions.clone()
    mixed[0, 0] = -1
    with pytest.raises(ValueError, match="mix"):
        model(frames, mixed)


def test_option_is_part_of_the_checkpoint():
    trained = make_model(option=1)
    other = make_model(option=2)
    other.load_state_dict(trained.state_dict())
    assert other.policy.option == 1


# --------------------------------------------------------------------- config and engine stage


@pytest.fixture
def stage_config(tiny_config) -> Callable[..., Config]:
    """``stage_config(data_root, out_dir, **train) -> Config``: the tiny config with training
    knobs, ``train`` merged into its ``train`` section."""

    def build(data_root, out_dir, **train) -> Config:
        data = tiny_config(data_root, out_dir, training=True, name="test", train=train)
        return config_from_dict(data)

    return build


def test_config_checks_the_differentiable_option(tmp_path, stage_config):
    assert stage_config(tmp_path, tmp_path).train.differentiable_option == 1
    assert (
        stage_config(tmp_path, tmp_path, differentiable_option=2).train.differentiable_option == 2
    )
    with pytest.raises(ConfigError, match="train.differentiable_option"):
        stage_config(tmp_path, tmp_path, differentiable_option=3)
    with pytest.raises(ConfigError, match="differentiable_option"):
        stage_config(tmp_path, tmp_path, differentiable_option=0)


def test_differentiable_stage_trains_from_warmup_and_evaluates(tmp_path, stage_config):
    from videofocus.data.synthetic import SyntheticConfig, generate

    data = tmp_path / "data"
    generate(
        data,
        SyntheticConfig(
            num_videos=12, width=48, height=48, object_size=16, num_frames=4, num_classes=3
        ),
        progress=False,
    )
    cfg = stage_config(data, tmp_path / "run", differentiable_option=2, finetune_epochs=2)
    results = run_stages(cfg, ["warmup", "differentiable"], progress=False)
    assert [r.stage for r in results] == ["warmup", "differentiable"]
    lines = (tmp_path / "run" / "differentiable" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2  # trained as long as the fine-tune stage (finetune_epochs)
    ev = evaluate_checkpoint(cfg, results[1].final_dir)
    assert ev["stage"] == "differentiable" and ev["method"] == "differentiable"
    # evaluated with another option in the config, the checkpoint's own option still applies
    other = stage_config(data, tmp_path / "run", differentiable_option=1)
    assert evaluate_checkpoint(other, results[1].final_dir)["gmacs_per_video"] == pytest.approx(
        ev["gmacs_per_video"]
    )
    # its cost: every frame at option 2 plus the centre network's own step on every frame
    table = CostTable.from_model(build_differentiable_focusnet(cfg, 3), 48)
    no_policy = CostTable.from_model(build_focusnet(cfg, 3), 48)
    assert table.policy > 0 and replace(table, policy=0) == no_policy
    assert ev["gmacs_per_video"] == pytest.approx(
        table.usage_from_actions(dense_actions(1, 4, 2)).item()
    )


def test_the_config_accepts_exactly_the_policys_centre_heads():
    from videofocus.config.schema import DIFFERENTIABLE_HEADS

    assert DIFFERENTIABLE_HEADS == CENTRE_HEADS


def test_the_saliency_prior_head_starts_at_the_saliency_peak_and_can_leave_it():
    # a 4x4 glance map with one strong cell per frame: the prior head's initial centre lies at
    # that cell (as the saliency heuristic aims), where the plain soft-argmax starts at the
    # frame centre
    h = w = 4
    prior = DifferentiableGlimpsePolicy(OPTIONS, 5, 1, 3, (h, w), 4, 16, head="saliency_prior")
    plain = DifferentiableGlimpsePolicy(OPTIONS, 5, 1, 3, (h, w), 4, 16, head="soft_argmax")
    maps = torch.rand(2, 3, 3, h, w, generator=torch.Generator().manual_seed(0)) * 0.1
    peaks = [(0, 0), (3, 1), (2, 3), (1, 2), (3, 3), (0, 2)]  # (row, column) per frame
    for n, (r, c) in enumerate(peaks):
        maps[n // 3, n % 3, :, r, c] += 5.0
    want = torch.tensor([[(c + 0.5) / w, (r + 0.5) / h] for r, c in peaks]).view(2, 3, 2)
    span = OPTIONS[0].extent
    want = want.clamp(span / 2, 1 - span / 2)  # a glimpse stays inside the frame
    torch.testing.assert_close(prior.centres(maps).detach(), want, atol=0.03, rtol=0)
    torch.testing.assert_close(plain.centres(maps).detach(), torch.full_like(want, 0.5))
    # the prior does not pin the centres: a loss that wants every centre in the top-left
    # corner gets them there against a prior that points elsewhere
    opt = torch.optim.Adam(prior.parameters(), lr=0.05)
    corner = torch.tensor([span / 2, span / 2])
    for _ in range(100):
        loss = (prior.centres(maps) - corner).abs().sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.testing.assert_close(
        prior.centres(maps).detach(), corner.expand(2, 3, 2), atol=0.03, rtol=0
    )


@pytest.mark.parametrize("blur", [0.0, 2.0])
def test_a_pixel_aligned_crop_is_cut_at_whole_pixels_with_the_exact_centres_gradient(blur):
    # a 2 px checkerboard: a crop at a half-pixel offset blends it to flat grey; the aligned
    # crop keeps the texture in training and evaluation, and its centre gradient is the one
    # the exact (sub-pixel) centre has, so training still sees how the loss moves with it
    model = make_model(option=1).train()
    model.blur = blur
    yy, xx = torch.meshgrid(torch.arange(48), torch.arange(48), indexing="ij")
    frames = ((xx + yy) % 2).float().expand(2, 3, 48, 48).contiguous()
    weights = torch.randn(2, 3, 12, 12, generator=torch.Generator().manual_seed(0))
    at = [[24.5 / 48, 24 / 48], [19 / 48, 29.5 / 48]]  # 12 px crops half a pixel off in x, y

    def grad_and_crop(aligned: bool):
        model.pixel_aligned = aligned
        centres = torch.tensor(at, requires_grad=True)
        crops = model._crop(frames, centres)
        (crops * weights).sum().backward()
        return centres.grad, crops.detach()

    grad, crops = grad_and_crop(True)
    blended_grad, blended = grad_and_crop(False)
    assert blended.std() < 0.01  # the sub-pixel crop: the texture is gone
    # aligned: the frame's own 0/1 pixels (up to the straight-through sum's rounding)
    torch.testing.assert_close(crops, crops.round(), atol=1e-5, rtol=0)
    assert crops.std() > 0.45
    torch.testing.assert_close(grad, blended_grad)
    model.pixel_aligned = True
    model.eval()
    with torch.no_grad():
        crops = model._crop(frames, torch.tensor(at))
    torch.testing.assert_close(crops, crops.round(), atol=1e-5, rtol=0)
    assert crops.std() > 0.45
