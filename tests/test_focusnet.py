"""Tests of the encoders, the aggregator and FocusNet (tiny backbones, 64x64 frames, T=4)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from videofocus.data.transforms import normalise_pixels
from videofocus.models import (
    Aggregator,
    FocusNet,
    GlimpseOption,
    GlobalEncoder,
    LocalEncoder,
    PatchCropper,
    actions_to_glimpses,
    create_focusnet,
    dense_actions,
    dense_option,
    skip_actions,
)

B, T, SIZE, CLASSES, GRID = 2, 4, 64, 5, 3
OPTIONS = (
    GlimpseOption(0.5, 16),
    GlimpseOption(0.25, 16),  # shares the default backbone with the option above
    GlimpseOption(1.0, 32, backbone="tiny_resnet"),  # AR-Net style: its own backbone
)
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _net(options=OPTIONS, **kw) -> FocusNet:
    torch.manual_seed(0)
    kw = {"local_feature_dim": 24, **kw}
    net = create_focusnet(CLASSES, "tiny_cnn", 32, options, "tiny_cnn", GRID, 16, **kw)
    return net.eval()  # BatchNorm on running statistics: outputs do not depend on batch content


def _actions() -> torch.Tensor:
    # every option, a skip, and several glimpses of the same option across videos
    return torch.tensor(
        [
            [[1, 0, 2], [0, 1, 1], [3, 1, 1], [2, 2, 0]],
            [[1, 2, 2], [1, 1, 0], [0, 0, 0], [3, 0, 0]],
        ]
    )


@pytest.fixture
def frames() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(B, T, 3, SIZE, SIZE)


@pytest.mark.parametrize("device", DEVICES)
def test_output_shapes(frames: torch.Tensor, device: str) -> None:
    net = _net().to(device)
    with torch.no_grad():
        out = net(frames.to(device), _actions().to(device))
    assert out.logits.shape == out.glance_logits.shape == out.local_logits.shape
    assert out.logits.shape == (B, T, CLASSES)
    assert out.local_features.shape == (B, T, 24)
    assert out.glance.maps.shape == (B, T, 32, 4, 4)  # tiny_cnn: stride 8 on the 32x32 glance
    assert out.glance.pooled.shape == (B, T, 32)
    assert out.hidden.shape == (1, B, 16)
    assert out.option_index.tolist() == [[0, -1, 2, 1], [0, 0, -1, 2]]
    for tensor in (out.logits, out.glance_logits, out.local_logits, out.local_features):
        assert torch.isfinite(tensor).all() and tensor.device.type == device


def test_every_step_is_an_exit(frames: torch.Tensor) -> None:
    net, actions = _net(), _actions()
    with torch.no_grad():
        logits = net(frames, actions).logits
        for t in range(T - 1):
            changed = frames.clone()
            changed[:, t + 1 :] = torch.randn_like(changed[:, t + 1 :])
            other = net(changed, actions).logits
            torch.testing.assert_close(other[:, : t + 1], logits[:, : t + 1], rtol=0, atol=0)
            assert not torch.allclose(other[:, t + 1 :], logits[:, t + 1 :])
    assert not torch.allclose(logits[:, 0], logits[:, 1])


def test_skipped_frame_contributes_only_its_glance(frames: torch.Tensor) -> None:
    net, actions = _net(), _actions()  # step 1 of video 0 is skipped
    changed = frames.clone()
    changed[0, 1, :, 16:48, 16:48] += 3.0  # the centre glimpse area of the skipped frame
    with torch.no_grad():
        out = net(frames, actions)
        same_glance = net.forward_from_glance(changed, out.glance, actions)
        new_glance = net(changed, actions)
    for name in ("logits", "local_logits", "local_features", "glance_logits"):
        torch.testing.assert_close(getattr(same_glance, name), getattr(out, name), rtol=0, atol=0)
    assert (out.local_features[0, 1] == 0).all() and (out.local_logits[0, 1] == 0).all()
    # Through the glance, the change reaches step 1 and later, not step 0.
    torch.testing.assert_close(new_glance.logits[0, 0], out.logits[0, 0], rtol=0, atol=0)
    assert not torch.allclose(new_glance.logits[0, 1:], out.logits[0, 1:])
    assert not torch.allclose(new_glance.glance_logits[0, 1], out.glance_logits[0, 1])


def test_grouping_by_option_equals_one_by_one(frames: torch.Tensor) -> None:
    net, actions = _net(), _actions()
    option_index, centres, extents = actions_to_glimpses(actions, OPTIONS, GRID)
    with torch.no_grad():
        grouped, _ = net.local_features(frames, actions)
        for b in range(B):
            for t in range(T):
                k = int(option_index[b, t])
                if k < 0:
                    continue
                crop = net.cropper(
                    frames[b, t][None],
                    torch.tensor([0]),
                    centres[b, t][None],
                    extents[b, t][None],
                    OPTIONS[k].resolution,
                )
                single = net.local_encoder.pooled(crop, k)[0]
                torch.testing.assert_close(grouped[b, t], single, atol=1e-5, rtol=1e-5)


def test_crop_transform_normalises_only_the_crops_of_raw_frames() -> None:
    """uint8 frames cropped first and their crops normalised (the RL episodes' path, which then
    normalises a fraction of the pixels) give the features of normalised frames cropped."""
    net, actions = _net(), _actions()
    raw = torch.randint(0, 256, (B, T, 3, SIZE, SIZE), generator=torch.Generator().manual_seed(2))
    raw = raw.to(torch.uint8)
    seen: list[tuple[int, ...]] = []

    def normalise(crops: torch.Tensor) -> torch.Tensor:
        seen.append(tuple(crops.shape))
        return normalise_pixels(crops)

    with torch.no_grad():
        expected, option_index = net.local_features(normalise_pixels(raw), actions)
        got, got_index = net.local_features(raw, actions, normalise)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
    assert torch.equal(got_index, option_index)
    # one call per option used, on that option's crops only
    used = sorted({int(k) for k in option_index.flatten() if k >= 0})
    assert seen == [
        (int((option_index == k).sum()), 3, OPTIONS[k].resolution, OPTIONS[k].resolution)
        for k in used
    ]


def test_forward_from_glance_equals_forward(frames: torch.Tensor) -> None:
    net, actions = _net(), _actions()
    with torch.no_grad():
        full = net(frames, actions)
        reused = net.forward_from_glance(frames, net.glance(frames), actions)
    for a, b in zip(full, reused, strict=True):
        if isinstance(a, tuple):
            a, b = torch.cat([x.flatten() for x in a]), torch.cat([x.flatten() for x in b])
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_chunked_steps_equal_one_pass(frames: torch.Tensor) -> None:
    net, actions = _net(), _actions()
    with torch.no_grad():
        full = net(frames, actions)
        first = net(frames[:, :2], actions[:, :2])
        second = net(frames[:, 2:], actions[:, 2:], hidden=first.hidden)
    chunked = torch.cat([first.logits, second.logits], dim=1)
    torch.testing.assert_close(chunked, full.logits, atol=1e-6, rtol=1e-6)


def test_dense_baseline_sees_whole_frames(frames: torch.Tensor) -> None:
    net = _net(options=[dense_option(SIZE)], local_feature_dim=None)
    with torch.no_grad():
        out = net(frames, dense_actions(B, T))
        whole = net.local_encoder.pooled(frames.flatten(0, 1), 0).unflatten(0, (B, T))
    assert (out.option_index == 0).all()
    torch.testing.assert_close(out.local_features, whole, atol=1e-6, rtol=1e-6)


def test_glance_only_baseline(frames: torch.Tensor) -> None:
    net = _net()
    with torch.no_grad():
        out = net(frames, skip_actions(B, T))
    assert (out.local_features == 0).all() and (out.local_logits == 0).all()
    assert torch.isfinite(out.logits).all()


def test_backward_reaches_every_part(frames: torch.Tensor) -> None:
    net = _net(differentiable_crop=True).train()
    out = net(frames, _actions())
    loss = sum(
        F.cross_entropy(x.flatten(0, 1), torch.zeros(B * T, dtype=torch.long))
        for x in (out.logits, out.glance_logits, out.local_logits)
    )
    loss.backward()
    for name, param in net.named_parameters():
        assert param.grad is not None, name


# -- parts -------------------------------------------------------------------------------------


def test_local_encoder_shares_backbones_by_name() -> None:
    encoder = LocalEncoder(OPTIONS, "tiny_cnn", feature_dim=24)
    assert encoder.backbone_names == ["tiny_cnn", "tiny_resnet"]
    assert encoder.backbone(0) is encoder.backbone(1) and encoder.backbone(
        2
    ) is not encoder.backbone(0)
    assert encoder.pooled(torch.randn(3, 3, 16, 16), 2).shape == (3, 24)
    # one width and no feature_dim: the backbone's own features, unprojected
    same = LocalEncoder(OPTIONS[:2], "tiny_cnn")
    assert same.feature_dim == 32
    assert all(isinstance(p, torch.nn.Identity) for p in same.projections)
    with pytest.raises(ValueError, match="feature_dim"):
        LocalEncoder(OPTIONS, "tiny_cnn")
    with pytest.raises(IndexError):
        encoder.pooled(torch.randn(1, 3, 16, 16), 3)


def test_global_encoder_resizes_with_antialias() -> None:
    encoder = GlobalEncoder("tiny_cnn", 32).eval()
    frames = torch.randn(2, 3, 64, 64)
    resized = F.interpolate(frames, (32, 32), mode="bilinear", antialias=True)
    with torch.no_grad():
        fmap, pooled = encoder(frames)
        torch.testing.assert_close(fmap, encoder.backbone(resized))
    torch.testing.assert_close(pooled, fmap.mean(dim=(2, 3)))


def test_aggregator_ignores_local_input_of_skipped_steps() -> None:
    torch.manual_seed(0)
    agg = Aggregator(glance_dim=6, local_dim=4, hidden=8, num_classes=3, num_options=2)
    glance, local = torch.randn(2, 3, 6), torch.randn(2, 3, 4)
    option = torch.tensor([[0, -1, 1], [-1, -1, 0]])
    garbage = torch.where((option < 0)[..., None], torch.full_like(local, float("nan")), local)
    out = agg(glance, garbage, option)
    masked = local * (option >= 0)[..., None]
    torch.testing.assert_close(out.logits, agg(glance, masked, option).logits)
    hidden, steps = None, []
    for t in range(3):
        logits, hidden = agg.step(glance[:, t], local[:, t], option[:, t], hidden)
        steps.append(logits)
    torch.testing.assert_close(torch.stack(steps, 1), agg(glance, local, option).logits)


def test_focusnet_checks_its_parts() -> None:
    glance = GlobalEncoder("tiny_cnn", 32)
    local = LocalEncoder(OPTIONS[:2], "tiny_cnn")
    with pytest.raises(ValueError, match="aggregator"):
        FocusNet(glance, local, Aggregator(32, 99, 8, 3, 2), OPTIONS[:2], GRID, PatchCropper())
    with pytest.raises(ValueError, match="options"):
        FocusNet(glance, local, Aggregator(32, 32, 8, 3, 3), OPTIONS, GRID, PatchCropper())


def test_frozen_parts_get_no_gradient_and_stay_in_eval_mode():
    net = _net()
    net.freeze("global_encoder")
    net.train()
    assert not net.global_encoder.training and net.local_encoder.training
    assert not any(p.requires_grad for p in net.global_encoder.parameters())
    assert all(p.requires_grad for p in net.aggregator.parameters())
    net.eval().train()
    assert not net.global_encoder.training
    with pytest.raises(ValueError, match=r"cannot freeze unknown modules \['backbone'\]"):
        net.freeze("backbone")
