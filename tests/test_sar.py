"""Tests of SAR blocks: the fusion rule at the extremes, sparse MACs, per-sample costs, budget."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.resnet import BasicBlock

from videofocus.models import create_backbone
from videofocus.models.cost import measure_macs
from videofocus.models.sar import (
    SARBackbone,
    SARBlock,
    _basic_stack,
    _bottleneck_stack,
    _projection,
    budgeted_selection,
    refinement_budget_loss,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def _block(c_in: int, c_out: int, stride: int, patch_grid: int = 4) -> SARBlock:
    """An eval-mode block with random BatchNorm statistics, so a wrong gather shows."""
    torch.manual_seed(0)
    block = SARBlock(
        _basic_stack(c_in, c_out, stride),
        _basic_stack(c_in, c_out, stride),
        _projection(c_in, c_out, stride),
        patch_grid=patch_grid,
    )
    with torch.no_grad():
        for bn in block.modules():
            if isinstance(bn, nn.BatchNorm2d):
                bn.running_mean.uniform_(-1, 1)
                bn.running_var.uniform_(0.5, 2)
                bn.weight.uniform_(0.5, 1.5)
                bn.bias.uniform_(-0.5, 0.5)
    return block.eval()


def _plain_block(block: SARBlock) -> BasicBlock:
    """torchvision's BasicBlock with the SAR block's fine weights and shortcut."""
    shortcut = None if isinstance(block.shortcut, nn.Identity) else block.shortcut
    plain = BasicBlock(1, 1, downsample=shortcut)
    plain.conv1, plain.conv2 = block.fine.convs
    plain.bn1, plain.bn2 = block.fine.norms
    plain.stride = block.fine.convs[0].stride[0]
    return plain.eval()


def _output_grid(block: SARBlock, size: int) -> tuple[int, int, int]:
    """Output side and mask grid (rows, cols) of ``block`` on a square input of ``size``."""
    h_out = block.fine.sizes(size)[-1]
    _, gh, gw = block._grid(h_out, h_out)
    return h_out, gh, gw


def _mask(batch: int, grid: tuple[int, int], selected: int) -> torch.Tensor:
    """``selected`` patches of every sample, spread over the grid."""
    order = torch.randperm(grid[0] * grid[1], generator=torch.Generator().manual_seed(1))
    mask = torch.zeros(batch, grid[0] * grid[1])
    mask[:, order[:selected]] = 1
    return mask.view(batch, *grid)


# (c_in, c_out, stride, input side): identity shortcut, projection, strided, odd sides that leave
# the last patch row partly outside the map
CASES = [(8, 8, 1, 16), (8, 16, 1, 32), (16, 32, 2, 16), (16, 16, 1, 13), (8, 16, 2, 15)]


@pytest.mark.parametrize(("c_in", "c_out", "stride", "size"), CASES)
def test_every_patch_selected_is_the_plain_block(c_in, c_out, stride, size) -> None:
    block = _block(c_in, c_out, stride)
    x = torch.randn(3, c_in, size, size)
    _, gh, gw = _output_grid(block, size)
    with torch.no_grad():
        torch.testing.assert_close(
            block(x, mask=torch.ones(3, gh, gw)), _plain_block(block)(x), rtol=1e-5, atol=1e-5
        )


@pytest.mark.parametrize(("c_in", "c_out", "stride", "size"), CASES)
def test_no_patch_selected_is_the_coarse_branch(c_in, c_out, stride, size) -> None:
    block = _block(c_in, c_out, stride)
    x = torch.randn(2, c_in, size, size)
    h_out, gh, gw = _output_grid(block, size)
    with torch.no_grad():
        coarse = block.coarse(F.avg_pool2d(x, 2, ceil_mode=True))
        coarse = F.interpolate(coarse, size=(h_out, h_out), mode="nearest")
        expected = F.relu(block.shortcut(x) + coarse)
        torch.testing.assert_close(block(x, mask=torch.zeros(2, gh, gw)), expected)


def test_a_partial_mask_mixes_fine_and_coarse_patch_by_patch() -> None:
    block = _block(8, 16, 1)
    x = torch.randn(2, 8, 16, 16)
    mask = _mask(2, (4, 4), 5)
    with torch.no_grad():
        out = block(x, mask=mask)
        fine = block(x, mask=torch.ones(2, 4, 4))
        coarse = block(x, mask=torch.zeros(2, 4, 4))
    pixels = mask.repeat_interleave(4, 1).repeat_interleave(4, 2)[:, None].bool()
    torch.testing.assert_close(out, torch.where(pixels, fine, coarse))


def test_sparse_branch_computes_only_the_selected_patches() -> None:
    block = _block(8, 16, 1)  # 16 x 16 output, 4 x 4 patches of 4 x 4
    x = torch.randn(1, 8, 16, 16)
    macs = {r: measure_macs(block, x, mask=_mask(1, (4, 4), round(16 * r))) for r in (0, 0.25, 1)}
    assert macs[0] < macs[0.25] < macs[1]
    # fixed part: coarse convs at 8 x 8, the 1x1 mask head on 8 x 8, the 1x1 projection at 16 x 16
    coarse = 16 * 8 * 9 * 64 + 16 * 16 * 9 * 64
    fixed = coarse + 16 * 64 + 16 * 8 * 256
    # a 4 x 4 output patch: conv2 on 4 x 4, conv1 on its 6 x 6 halo window
    per_patch = 16 * 16 * 9 * 16 + 16 * 8 * 9 * 36
    assert macs[0] == fixed
    assert macs[0.25] == fixed + 4 * per_patch
    assert macs[1] == fixed + 16 * per_patch


def test_last_macs_are_per_sample_and_match_the_counter() -> None:
    block = _block(16, 32, 2)
    x = torch.randn(3, 16, 16, 16)
    masks = torch.stack([_mask(1, (4, 4), k)[0] for k in (0, 3, 16)])
    with torch.no_grad():
        block(x, mask=masks)
    per_sample = block.last_macs()
    assert per_sample.shape == (3,) and per_sample.dtype == torch.float64
    for i in range(3):
        assert per_sample[i] == measure_macs(block, x[i : i + 1], mask=masks[i : i + 1])
    assert per_sample[0] < per_sample[1] < per_sample[2]


@pytest.mark.parametrize("name", ["tiny_resnet_sar"])
def test_backbone_last_macs_match_the_counter(name: str) -> None:
    torch.manual_seed(0)
    backbone = create_backbone(name).eval()
    assert isinstance(backbone, SARBackbone)
    x = torch.randn(4, 3, 48, 48)
    with torch.no_grad():
        backbone(x)
    per_sample = backbone.last_macs()
    for i in range(4):
        assert per_sample[i] == measure_macs(backbone, x[i : i + 1])


def test_budgeted_selection_refines_the_target_share_on_meta_and_real_weights() -> None:
    torch.manual_seed(0)
    plain = measure_macs(create_backbone("tiny_resnet"), torch.zeros(1, 3, 64, 64))
    costs = {}
    for ratio in (0.0, 0.25, 0.5, 1.0):
        real = create_backbone("tiny_resnet_sar", refine_ratio=ratio).eval()
        with budgeted_selection():
            costs[ratio] = measure_macs(real, torch.zeros(1, 3, 64, 64))
        with torch.device("meta"):
            meta = create_backbone("tiny_resnet_sar", refine_ratio=ratio).eval()
        assert measure_macs(meta, torch.zeros(1, 3, 64, 64, device="meta")) == costs[ratio]
    assert costs[0.0] < costs[0.25] < costs[0.5] < costs[1.0]
    assert costs[0.25] < plain < costs[1.0]  # the halo is recomputed per patch


def test_training_path_equals_eval_path_for_a_given_mask() -> None:
    block = _block(8, 16, 2)
    x = torch.randn(2, 8, 16, 16)
    mask = _mask(2, (4, 4), 6)
    with torch.no_grad():
        sparse = block(x, mask=mask)
        block.train()
        for bn in block.modules():  # dense path with the same (running) statistics
            if isinstance(bn, nn.BatchNorm2d):
                bn.eval()
        dense = block(x, mask=mask)
    torch.testing.assert_close(dense, sparse, rtol=1e-5, atol=1e-5)


def test_budget_loss_pulls_the_mask_share_to_refine_ratio() -> None:
    torch.manual_seed(0)
    backbone = create_backbone("tiny_resnet_sar", refine_ratio=0.25).train()
    heads = [p for b in backbone.blocks for p in b.mask_head.parameters()]
    with torch.no_grad():
        for block in backbone.blocks:
            block.mask_head.bias.fill_(3.0)  # start refining almost everything
    optimiser = torch.optim.SGD(heads, lr=30.0)
    x = torch.randn(8, 3, 32, 32)
    shares = []
    for _ in range(40):
        backbone(x)
        masks = [m.detach().flatten() for b in backbone.blocks for m in b.masks]
        shares.append(float(torch.cat(masks).mean()))
        loss = refinement_budget_loss(backbone)
        assert loss is not None and all(not b.masks for b in backbone.blocks)  # consumed
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert shares[0] > 0.8
    assert sum(shares[-5:]) / 5 == pytest.approx(0.25, abs=0.12)
    backbone.eval()
    with torch.no_grad():
        backbone(x)
    assert refinement_budget_loss(backbone) is None  # evaluation records nothing


def test_gradients_reach_the_mask_head_and_both_branches() -> None:
    torch.manual_seed(0)
    block = SARBlock(_bottleneck_stack(16, 4, 16, 1), _bottleneck_stack(16, 4, 16, 1)).train()
    out = block(torch.randn(2, 16, 8, 8))
    (out.square().mean() + refinement_budget_loss(block)).backward()
    for part in (block.mask_head, block.fine, block.coarse):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters())


def test_resnet50_sar_on_meta_has_resnet50_shape() -> None:
    with torch.device("meta"):
        backbone = create_backbone("resnet50_sar").eval()
        out = backbone(torch.zeros(2, 3, 224, 224))
    assert out.shape == (2, 2048, 7, 7) and backbone.num_features == 2048
    assert backbone.last_macs().shape == (2,)


def test_invalid_knobs_are_refused() -> None:
    with pytest.raises(ValueError, match="refine_ratio"):
        create_backbone("tiny_resnet_sar", refine_ratio=1.5)


@pytest.mark.parametrize("bias", [-20.0, 0.3, 20.0])
def test_per_video_gmacs_follow_the_masks_actually_used(bias: float) -> None:
    # eval's GMACs per video = the static table's glance/policy/aggregator + every glimpse's
    # local-encoder MACs as FlopCounterMode counts them for that glimpse's own mask
    from videofocus.models import GlimpseOption, create_focusnet
    from videofocus.models.cost import CostTable

    torch.manual_seed(0)
    options = [GlimpseOption(0.375, 48), GlimpseOption(0.5, 64)]
    net = create_focusnet(10, "tiny_cnn", 32, options, "tiny_resnet_sar", 5, 32).eval()
    for block in net.local_encoder.modules():
        if isinstance(block, SARBlock):  # the mask head's share: none / some / every patch
            nn.init.normal_(block.mask_head.weight, std=1.0)
            nn.init.constant_(block.mask_head.bias, bias)
    frames = torch.randn(3, 4, 3, 128, 128)
    actions = torch.tensor(  # [option (0: skip), cell x, cell y] per video and step
        [
            [[1, 3, 0], [2, 1, 4], [0, 0, 0], [2, 4, 2]],
            [[2, 0, 0], [1, 2, 2], [2, 3, 1], [0, 0, 0]],
            [[1, 4, 4], [0, 0, 0], [1, 0, 3], [2, 2, 0]],
        ]
    )
    table = CostTable.from_model(net, 128)
    with torch.no_grad():
        out = net(frames, actions)
    gmacs = table.usage_from_actions(actions, macs_over_table=out.macs_over_table)

    _, groups = net.glimpse_crops(frames, actions)
    counted = torch.zeros(3 * 4, dtype=torch.float64)
    for k, rows, crops in groups:
        for row, crop in zip(rows.tolist(), crops, strict=True):
            counted[row] = measure_macs(net.local_encoder.pooled, crop[None], k)
    expected = 4 * table.per_step + counted.view(3, 4).sum(1)
    assert torch.allclose(gmacs * 1e9, expected, rtol=1e-9)
    static = table.usage_from_actions(actions)
    if bias > 10:  # every patch refined: above the table's refine_ratio price
        assert bool((gmacs > static).all())
    elif bias < -10:  # none refined: below it
        assert bool((gmacs < static).all())
    else:  # a data-dependent share, different per video
        assert len(set(gmacs.tolist())) > 1
