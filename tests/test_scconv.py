"""Tests of SCConv: the SRU's cross reconstruction, shapes and strides, and that it trains."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from videofocus.models import create_backbone
from videofocus.models.cost import measure_macs
from videofocus.models.scconv import (
    ChannelReconstructionUnit,
    SCConv,
    SpatialReconstructionUnit,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_sru_reconstructs_crosswise() -> None:
    torch.manual_seed(0)
    sru = SpatialReconstructionUnit(8, groups=4)
    with torch.no_grad():
        sru.norm.weight.uniform_(0.1, 2.0)
    x = torch.randn(2, 8, 5, 5)
    normed = sru.norm(x)
    w_gamma = (sru.norm.weight / sru.norm.weight.sum()).view(1, -1, 1, 1)
    informative = torch.sigmoid(normed * w_gamma) >= 0.5
    x1, x2 = normed * informative, normed * ~informative
    expected = torch.cat([x1[:, :4] + x2[:, 4:], x1[:, 4:] + x2[:, :4]], dim=1)
    torch.testing.assert_close(sru(x), expected)


@pytest.mark.parametrize(("c_in", "c_out", "stride", "size"), [(16, 16, 1, 8), (8, 16, 2, 9)])
def test_scconv_keeps_the_shape_of_the_conv_it_replaces(c_in, c_out, stride, size) -> None:
    conv = nn.Conv2d(c_in, c_out, 3, stride, 1)
    x = torch.randn(2, c_in, size, size)
    assert SCConv(c_in, c_out, stride)(x).shape == conv(x).shape


def test_cru_uses_a_group_wise_conv_and_reuses_the_lower_features() -> None:
    cru = ChannelReconstructionUnit(16, 32)
    assert cru.gwc.groups == 2 and cru.gwc.kernel_size == (3, 3)
    assert cru.pwc_low.out_channels == 32 - cru.squeeze_low.out_channels  # the rest is reused
    assert cru(torch.randn(1, 16, 6, 6)).shape == (1, 32, 6, 6)


@pytest.mark.parametrize(("name", "plain"), [("tiny_resnet_scconv", "tiny_resnet")])
def test_scconv_backbone_has_the_plain_shapes_and_fewer_macs(name: str, plain: str) -> None:
    x = torch.randn(2, 3, 48, 48)
    ours, theirs = create_backbone(name).eval(), create_backbone(plain).eval()
    assert ours(x).shape == theirs(x).shape and ours.num_features == theirs.num_features
    assert measure_macs(ours, x[:1]) < measure_macs(theirs, x[:1])


def test_scconv_backbone_trains_on_a_tiny_task() -> None:
    torch.manual_seed(0)
    backbone = create_backbone("tiny_resnet_scconv")
    head = nn.Linear(backbone.num_features, 2)
    # class 1: a bright square in the top-left corner; class 0: noise only
    x = torch.randn(32, 3, 32, 32) * 0.5
    y = torch.arange(32) % 2
    x[y == 1, :, 4:12, 4:12] += 2.0
    params = [*backbone.parameters(), *head.parameters()]
    optimiser = torch.optim.Adam(params, lr=3e-3)
    losses = []
    for _ in range(30):
        loss = F.cross_entropy(head(backbone(x).mean(dim=(-2, -1))), y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    assert sum(losses[-5:]) / 5 < 0.3
