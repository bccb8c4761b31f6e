"""SCConv (Li, Wen, He, CVPR 2023): a drop-in for the 3x3 convolution of residual blocks that
reconstructs features to cut spatial and channel redundancy.

:class:`SCConv` = :class:`SpatialReconstructionUnit` (SRU: GroupNorm's scale factors say how
informative each channel is; a gate splits the normalised features into an informative and a less
informative part, added crosswise) followed by :class:`ChannelReconstructionUnit` (CRU: split,
squeeze, group-wise + point-wise convs on one part, cheap point-wise features reused on the other,
fused by channel attention). Registered backbones: ``tiny_resnet_scconv`` (both 3x3 convs of every
``BasicBlock``) and ``resnet50_scconv`` (the 3x3 conv of every bottleneck, as the paper does).

SCConv keeps the spatial size, so a stride-2 block average-pools before it (no MACs, and the CRU
then runs on the quarter-size map: what a strided conv would compute, at a quarter of the cost).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
import torchvision.models as tvm
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck

from videofocus.models.backbones import Backbone, TinyResNet, _ResNetFeatures, register_backbone

__all__ = ["ChannelReconstructionUnit", "SCConv", "SpatialReconstructionUnit"]


class SpatialReconstructionUnit(nn.Module):
    """SRU: ``x [N, C, H, W] -> [N, C, H, W]``.

    :param channels: C.
    :param groups: GroupNorm groups (the largest divisor of ``channels`` up to it is used).
    :param threshold: gate on ``sigmoid(w_gamma * GN(x))``: at or above it a position counts as
        informative.
    """

    def __init__(self, channels: int, groups: int = 16, threshold: float = 0.5) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(math.gcd(channels, groups), channels)
        self.threshold = threshold

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        normed = self.norm(x)
        # GroupNorm's gamma measures each channel's spatial variance: its share is informativeness
        gamma = self.norm.weight
        w_gamma = (gamma / gamma.sum()).view(1, -1, 1, 1)
        informative = (torch.sigmoid(normed * w_gamma) >= self.threshold).to(normed.dtype)
        x1, x2 = informative * normed, (1 - informative) * normed
        # cross reconstruction: [x11 + x22, x12 + x21]; rolling x2 by half the channels pairs
        # each half of x1 with the other half of x2 (and is defined for odd C too)
        return x1 + torch.roll(x2, shifts=x.shape[1] // 2, dims=1)


class ChannelReconstructionUnit(nn.Module):
    """CRU: ``x [N, C_in, H, W] -> [N, C_out, H, W]``.

    :param alpha: share of the channels that take the rich (upper) transform.
    :param squeeze: channel reduction of both parts' 1x1 squeeze convs.
    :param groups: groups of the upper part's 3x3 group-wise conv (GWC).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        alpha: float = 0.5,
        squeeze: int = 2,
        groups: int = 2,
        kernel_size: int = 3,
    ) -> None:
        super().__init__()
        self.up_channels = max(1, int(alpha * in_channels))
        low_channels = in_channels - self.up_channels
        if low_channels < 1:
            raise ValueError(f"alpha {alpha} leaves no lower channels of {in_channels}")
        up_sq, low_sq = max(1, self.up_channels // squeeze), max(1, low_channels // squeeze)
        if low_sq >= out_channels:
            raise ValueError(f"{out_channels} output channels cannot reuse {low_sq} squeezed ones")
        self.squeeze_up = nn.Conv2d(self.up_channels, up_sq, 1, bias=False)
        self.squeeze_low = nn.Conv2d(low_channels, low_sq, 1, bias=False)
        g = math.gcd(math.gcd(groups, up_sq), out_channels)
        self.gwc = nn.Conv2d(up_sq, out_channels, kernel_size, padding=kernel_size // 2, groups=g)
        self.pwc_up = nn.Conv2d(up_sq, out_channels, 1, bias=False)
        # the lower part: cheap point-wise features, concatenated with their own input (reuse)
        self.pwc_low = nn.Conv2d(low_sq, out_channels - low_sq, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up, low = torch.split(x, [self.up_channels, x.shape[1] - self.up_channels], dim=1)
        up, low = self.squeeze_up(up), self.squeeze_low(low)
        y1 = self.gwc(up) + self.pwc_up(up)
        y2 = torch.cat([self.pwc_low(low), low], dim=1)
        # fuse: softmax over the 2 x C_out pooled channels weighs each part per channel
        y = torch.cat([y1, y2], dim=1)
        weights = F.softmax(F.adaptive_avg_pool2d(y, 1), dim=1)
        y1, y2 = torch.chunk(y * weights, 2, dim=1)
        return y1 + y2


class SCConv(nn.Module):
    """SRU then CRU, in place of a 3x3 conv ``in_channels -> out_channels`` at ``stride``
    (stride > 1: average pooling first, see the module docstring)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(stride, ceil_mode=True) if stride > 1 else nn.Identity()
        self.sru = SpatialReconstructionUnit(in_channels)
        self.cru = ChannelReconstructionUnit(in_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cru(self.sru(self.pool(x)))


@register_backbone("tiny_resnet_scconv")
class TinyResNetSCConv(TinyResNet):
    """:class:`~videofocus.models.backbones.TinyResNet` with SCConv in place of both 3x3 convs of
    every residual block (the stem stays a plain conv: SCConv needs features, not RGB)."""

    def make_block(
        self, c_in: int, c_out: int, stride: int, downsample: nn.Module | None
    ) -> nn.Module:
        block = BasicBlock(c_in, c_out, stride=stride, downsample=downsample)
        # BasicBlock's forward calls conv1 / conv2 by name: any module of the same shape fits
        block.conv1 = SCConv(c_in, c_out, stride)
        block.conv2 = SCConv(c_out, c_out)
        return block


@register_backbone("resnet50_scconv")
def resnet50_scconv() -> Backbone:
    """ResNet-50 with SCConv in place of every bottleneck's ``conv2`` (2048 features, stride
    32; torchvision's names for every other parameter)."""
    model = tvm.resnet50(weights=None)
    for block in model.modules():
        if isinstance(block, Bottleneck):
            conv = block.conv2
            block.conv2 = SCConv(conv.in_channels, conv.out_channels, block.stride)
    return _ResNetFeatures(model)
