"""SAR: spatially adaptive refinement (after Han et al., IEEE TIP 2021): residual blocks that
convolve everywhere at half resolution and refine only the selected patches at full resolution.

:class:`SARBlock` fuses its two branches by one rule: **the fine result where a patch is selected,
the coarse one elsewhere**, then adds the shortcut (ReLU after). So a block with every patch
selected *is* the plain residual block, and with none it is the upsampled coarse block.

- coarse branch: 2x average pooling, the block's convs (own weights), nearest upsampling.
- mask head: a 1x1 conv on the coarse output, averaged per patch of a ``patch_grid`` x
  ``patch_grid`` grid over the output map -> one logit per patch. Training: Gumbel-sigmoid with
  a straight-through hard mask; evaluation: ``logit > 0``. A mask may also be given.
- fine branch, evaluation: the selected patches are gathered with the halo their convs need
  (zero padding outside the map, intermediate halo outside the map zeroed, as the dense conv's
  padding would be), convolved as one batch without padding and scattered back, so only they
  cost MACs (:func:`~videofocus.models.cost.measure_macs` counts exactly that; the halo is
  recomputed per patch, so a fully selected block costs more than the plain one). Training runs
  the fine branch densely, so that the mask's straight-through gradient reaches every patch.

Cost: :meth:`SARBlock.last_macs` / :meth:`SARBackbone.last_macs` give the MACs per sample
``[B]`` of the last forward's mask, as the sparse path spends them. Static cost tables (``flops``,
``eval``, ``label``) are measured inside :func:`budgeted_selection`, where every sample refines
exactly ``round(refine_ratio x patches)`` patches (its top logits), so they price a SAR glimpse at
its target share, and the ``meta`` device (no values to threshold) selects the same way.

Budget: :func:`refinement_budget_loss` is ``budget_weight x (mean mask - refine_ratio)^2`` over the
masks of the training forwards since its last call; the training loop adds it to the loss.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
import torchvision.models as tvm
from torch import nn

from videofocus.models.backbones import Backbone, _conv_bn_relu, _scaled, register_backbone

__all__ = [
    "SARBackbone",
    "SARBlock",
    "budgeted_selection",
    "refinement_budget_loss",
]

_budgeted = False  # set by budgeted_selection()


@contextlib.contextmanager
def budgeted_selection() -> Iterator[None]:
    """Within it, every :class:`SARBlock` refines exactly its budget of patches per sample (the
    top ``round(refine_ratio x patches)`` logits), whatever their values: the cost the budget
    loss trains for, measurable on ``meta`` weights."""
    global _budgeted
    previous, _budgeted = _budgeted, True
    try:
        yield
    finally:
        _budgeted = previous


@dataclass(frozen=True)
class _Level:
    """Geometry of one conv of a stack, for a patch of side ``p`` at the stack's output."""

    length: int  # side of the window this conv outputs
    offset: int  # window start = patch index * p * scale + offset
    scale: int  # product of the strides of the convs after this one


class ConvStack(nn.Module):
    """Convs, each followed by BatchNorm and optionally ReLU: a residual block's body, runnable
    densely (``forward``) or on gathered windows without padding (``forward_windows``)."""

    def __init__(self, convs: Sequence[nn.Conv2d], relu: Sequence[bool]) -> None:
        super().__init__()
        self.convs = nn.ModuleList(convs)
        self.norms = nn.ModuleList(nn.BatchNorm2d(c.out_channels) for c in convs)
        self.relu = tuple(relu)

    @property
    def out_channels(self) -> int:
        return self.convs[-1].out_channels

    def _post(self, i: int, x: torch.Tensor) -> torch.Tensor:
        x = self.norms[i](x)
        return F.relu(x) if self.relu[i] else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, conv in enumerate(self.convs):
            x = self._post(i, conv(x))
        return x

    def sizes(self, size: int) -> list[int]:
        """Map side at the input and after each conv, for an input of side ``size``."""
        out = [size]
        for conv in self.convs:
            out.append(_conv_size(conv, out[-1]))
        return out

    def levels(self, patch: int) -> list[_Level]:
        """Window geometry at the input (index 0) and after each conv, for output patches of
        side ``patch``: walking back, a conv (k, s, pad) needs input ``[a*s - pad, (b-1)*s -
        pad + k)`` for output ``[a, b)``."""
        levels = [_Level(patch, 0, 1)]
        for conv in reversed(self.convs):
            k, s, p = conv.kernel_size[0], conv.stride[0], conv.padding[0]
            after = levels[0]
            levels.insert(
                0, _Level((after.length - 1) * s + k, after.offset * s - p, after.scale * s)
            )
        return levels

    def forward_windows(
        self,
        windows: torch.Tensor,
        starts: Sequence[tuple[torch.Tensor, torch.Tensor]],
        sizes: Sequence[tuple[int, int]],
    ) -> torch.Tensor:
        """Run the stack without padding on ``windows [n, C, L0, L0]``; after each inner conv,
        positions outside the map (window ``starts[l]`` (rows, cols) ``[n]``, map ``sizes[l]``)
        are zeroed, as the dense run's zero padding makes them."""
        x = windows
        for i, conv in enumerate(self.convs):
            x = self._post(i, F.conv2d(x, conv.weight, conv.bias, conv.stride, 0, 1, conv.groups))
            if i + 1 < len(self.convs):
                (rows, cols), (h, w) = starts[i + 1], sizes[i + 1]
                span = torch.arange(x.shape[-1], device=x.device)
                inside_r = ((rows[:, None] + span) >= 0) & ((rows[:, None] + span) < h)
                inside_c = ((cols[:, None] + span) >= 0) & ((cols[:, None] + span) < w)
                x = x * (inside_r[:, None, :, None] & inside_c[:, None, None, :]).to(x.dtype)
        return x

    def macs(self, size: tuple[int, int]) -> int:
        """MACs of a dense run on one input of ``size`` (H, W)."""
        hs, ws = self.sizes(size[0]), self.sizes(size[1])
        return sum(_conv_macs(c, hs[i + 1] * ws[i + 1]) for i, c in enumerate(self.convs))

    def window_macs(self, patch: int) -> int:
        """MACs of one gathered window for an output patch of side ``patch``."""
        levels = self.levels(patch)
        return sum(_conv_macs(c, levels[i + 1].length ** 2) for i, c in enumerate(self.convs))


def _conv_macs(conv: nn.Conv2d, out_pixels: int) -> int:
    k = conv.kernel_size[0] * conv.kernel_size[1]
    return conv.out_channels * (conv.in_channels // conv.groups) * k * out_pixels


class SARBlock(nn.Module):
    """A residual block ``relu(shortcut(x) + fused)`` with a coarse and a sparse fine branch.

    :param fine: the block's body at full resolution (its stride included).
    :param coarse: the same body with its own weights, run on the 2x pooled input.
    :param shortcut: identity (None) or the projection of the plain block.
    :param patch_grid: the mask has ``ceil(H_out / p)`` patches per side, ``p = ceil(H_out /
        patch_grid)``.
    :param refine_ratio: target share of refined patches (budget loss, budgeted selection).
    :param budget_weight: weight of this block's budget term.
    :param temperature: Gumbel-sigmoid temperature in training.
    """

    def __init__(
        self,
        fine: ConvStack,
        coarse: ConvStack,
        shortcut: nn.Module | None = None,
        patch_grid: int = 2,
        refine_ratio: float = 0.5,
        budget_weight: float = 1.0,
        temperature: float = 1.0,
    ) -> None:
        super().__init__()
        if not 0.0 <= refine_ratio <= 1.0 or patch_grid < 1:
            raise ValueError(f"refine_ratio {refine_ratio} not in [0, 1] or patch_grid < 1")
        self.fine, self.coarse = fine, coarse
        self.shortcut = shortcut if shortcut is not None else nn.Identity()
        self.mask_head = nn.Conv2d(coarse.out_channels, 1, 1)
        nn.init.normal_(self.mask_head.weight, std=0.01)
        # start near the target share: sigmoid(bias) = refine_ratio
        ratio = min(max(refine_ratio, 1e-4), 1 - 1e-4)
        nn.init.constant_(self.mask_head.bias, math.log(ratio / (1 - ratio)))
        self.patch_grid, self.refine_ratio = patch_grid, refine_ratio
        self.budget_weight, self.temperature = budget_weight, temperature
        self.masks: list[torch.Tensor] = []  # training masks since the last budget loss
        self._last_macs: torch.Tensor | None = None
        self._last_over: torch.Tensor | None = None

    def _grid(self, h: int, w: int) -> tuple[int, int, int]:
        p = math.ceil(max(h, w) / self.patch_grid)
        return p, math.ceil(h / p), math.ceil(w / p)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``x [B, C, H, W] -> [B, C_out, H_out, W_out]``; ``mask [B, gh, gw]`` (bool / 0-1)
        overrides the mask head's."""
        hs, ws = self.fine.sizes(x.shape[-2]), self.fine.sizes(x.shape[-1])
        h_out, w_out = hs[-1], ws[-1]
        p, gh, gw = self._grid(h_out, w_out)
        coarse = self.coarse(F.avg_pool2d(x, 2, ceil_mode=True))
        logits = F.adaptive_avg_pool2d(self.mask_head(coarse), (gh, gw))[:, 0]  # [B, gh, gw]
        coarse = F.interpolate(coarse, size=(h_out, w_out), mode="nearest")
        if self.training:
            m = self._train_mask(logits) if mask is None else mask.to(x.dtype)
            if torch.is_grad_enabled():
                self.masks.append(m)
            # dense fine branch: the straight-through gradient reaches every patch's logit
            pixels = m.repeat_interleave(p, 1).repeat_interleave(p, 2)[:, None, :h_out, :w_out]
            fused = coarse * (1 - pixels) + self.fine(x) * pixels
        else:
            b, py, px, m = self._select(logits, mask)
            fused = self._refine(x, coarse, b, py, px, p, (gh, gw), hs, ws)
        selected = m.flatten(1).sum(1)
        self._last_macs = self._macs(x, p, selected)
        # the static table prices exactly round(refine_ratio x patches) per sample
        budget = round(self.refine_ratio * gh * gw)
        self._last_over = self.fine.window_macs(p) * (selected.detach().double() - budget)
        return F.relu(self.shortcut(x) + fused)

    def _train_mask(self, logits: torch.Tensor) -> torch.Tensor:
        u = torch.rand_like(logits).clamp(1e-6, 1 - 1e-6)
        soft = torch.sigmoid((logits + torch.log(u) - torch.log1p(-u)) / self.temperature)
        return (soft > 0.5).to(soft.dtype) + soft - soft.detach()  # straight-through

    def _select(
        self, logits: torch.Tensor, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Selected patches (sample, row, col indices ``[n]``) and the 0/1 mask ``[B, gh, gw]``."""
        bsz, gh, gw = logits.shape
        if mask is None and (_budgeted or logits.is_meta):
            k = round(self.refine_ratio * gh * gw)
            flat = logits.flatten(1).topk(k, dim=1).indices.flatten()  # [B * k]
            b = torch.arange(bsz, device=logits.device).repeat_interleave(k)
            m = torch.zeros_like(logits).flatten(1)
            m[b, flat] = 1.0
            return b, flat // gw, flat % gw, m.view_as(logits)
        m = (logits > 0) if mask is None else mask.bool()
        b, py, px = m.nonzero(as_tuple=True)
        return b, py, px, m.to(logits.dtype)

    def _refine(
        self,
        x: torch.Tensor,
        coarse: torch.Tensor,
        b: torch.Tensor,
        py: torch.Tensor,
        px: torch.Tensor,
        p: int,
        grid: tuple[int, int],
        hs: list[int],
        ws: list[int],
    ) -> torch.Tensor:
        """``coarse`` with the selected patches replaced by the fine branch run on them only."""
        if b.numel() == 0:
            return coarse
        levels = self.fine.levels(p)
        # starts of every level's windows, per selected patch: rows / cols [n]
        starts = [(py * p * lv.scale + lv.offset, px * p * lv.scale + lv.offset) for lv in levels]
        size = levels[0].length
        rows0, cols0 = starts[0]
        # zero-pad the input so every window lies inside (the dense conv's zero padding)
        lo = max(0, -levels[0].offset)
        hi_r = max(0, (grid[0] - 1) * p * levels[0].scale + levels[0].offset + size - hs[0])
        hi_c = max(0, (grid[1] - 1) * p * levels[0].scale + levels[0].offset + size - ws[0])
        padded = F.pad(x, (lo, hi_c, lo, hi_r))
        span = torch.arange(size, device=x.device)
        r = (rows0 + lo)[:, None] + span  # [n, L0]
        c = (cols0 + lo)[:, None] + span
        windows = padded[b[:, None, None], :, r[:, :, None], c[:, None, :]]  # [n, L0, L0, C]
        windows = windows.permute(0, 3, 1, 2).contiguous()  # "n l m c -> n c l m"
        fine = self.fine.forward_windows(windows, starts, list(zip(hs, ws, strict=True)))
        # scatter: "b c (gh p) (gw p) -> b gh gw c p p", replace the selected, back
        bsz, ch, h_out, w_out = coarse.shape
        gh, gw = grid
        full = F.pad(coarse, (0, gw * p - w_out, 0, gh * p - h_out))
        patches = full.view(bsz, ch, gh, p, gw, p).permute(0, 2, 4, 1, 3, 5)
        patches = patches.index_put((b, py, px), fine.to(patches.dtype))
        full = patches.permute(0, 3, 1, 4, 2, 5).reshape(bsz, ch, gh * p, gw * p)
        return full[..., :h_out, :w_out]

    def _macs(self, x: torch.Tensor, p: int, selected: torch.Tensor) -> torch.Tensor:
        """MACs per sample ``[B]`` of the sparse path for ``selected [B]`` patches."""
        h, w = x.shape[-2:]
        coarse_in = (math.ceil(h / 2), math.ceil(w / 2))
        hc, wc = self.coarse.sizes(coarse_in[0])[-1], self.coarse.sizes(coarse_in[1])[-1]
        fixed = self.coarse.macs(coarse_in) + _conv_macs(self.mask_head, hc * wc)
        if isinstance(self.shortcut, nn.Sequential):  # conv + BN projection
            conv = self.shortcut[0]
            h_out, w_out = self.fine.sizes(h)[-1], self.fine.sizes(w)[-1]
            fixed += _conv_macs(conv, h_out * w_out)
        per_patch = self.fine.window_macs(p)
        return (fixed + per_patch * selected.detach().to(torch.float64)).to(torch.float64)

    def last_macs(self) -> torch.Tensor:
        """MACs per sample ``[B]`` (float64) of the last forward's mask, as the sparse path
        computes them."""
        if self._last_macs is None:
            raise RuntimeError("SARBlock.last_macs() before any forward")
        return self._last_macs

    def macs_over_budget(self) -> torch.Tensor:
        """MACs per sample ``[B]`` (float64) of the last forward beyond its budgeted selection
        (negative where it refined fewer patches than ``refine_ratio`` of them)."""
        if self._last_over is None:
            raise RuntimeError("SARBlock.macs_over_budget() before any forward")
        return self._last_over


def refinement_budget_loss(module: nn.Module) -> torch.Tensor | None:
    """Mean over the :class:`SARBlock` s of ``module`` of ``budget_weight x (mean mask -
    refine_ratio)^2``, over the training masks recorded since the last call (which it clears);
    None when there are none (no SAR block, or no training forward)."""
    terms = []
    for block in module.modules():
        if isinstance(block, SARBlock) and block.masks:
            share = torch.cat([m.flatten() for m in block.masks]).mean()
            terms.append(block.budget_weight * (share - block.refine_ratio) ** 2)
            block.masks.clear()
    return torch.stack(terms).mean() if terms else None


def _basic_stack(c_in: int, c_out: int, stride: int) -> ConvStack:
    convs = [
        nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False),
        nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False),
    ]
    return ConvStack(convs, (True, False))


def _bottleneck_stack(c_in: int, width: int, c_out: int, stride: int) -> ConvStack:
    convs = [
        nn.Conv2d(c_in, width, 1, bias=False),
        nn.Conv2d(width, width, 3, stride, 1, bias=False),
        nn.Conv2d(width, c_out, 1, bias=False),
    ]
    return ConvStack(convs, (True, True, False))


def _projection(c_in: int, c_out: int, stride: int) -> nn.Module | None:
    if stride == 1 and c_in == c_out:
        return None
    return nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))


class SARBackbone(Backbone):
    """A stem (plain) followed by :class:`SARBlock` s; ``forward_features`` as any backbone.

    :param stem: modules before the first block, with ``stem_macs(H, W) -> MACs`` per sample.
    """

    def __init__(self, stem: nn.Module, blocks: Sequence[SARBlock], num_features: int) -> None:
        super().__init__()
        self.stem = stem
        self.blocks = nn.ModuleList(blocks)
        self.num_features = num_features
        self._stem_macs = 0

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        conv = next(m for m in self.stem.modules() if isinstance(m, nn.Conv2d))
        self._stem_macs = _conv_macs(
            conv, _conv_size(conv, x.shape[-2]) * _conv_size(conv, x.shape[-1])
        )
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        return x

    def last_macs(self) -> torch.Tensor:
        """MACs per sample ``[B]`` (float64) of the last forward: the stem's first conv (the
        stems here have no other) plus every block's :meth:`SARBlock.last_macs`."""
        return self._stem_macs + sum(block.last_macs() for block in self.blocks)

    def macs_over_table(self) -> torch.Tensor:
        """The last forward's MACs per sample beyond the static table's price (which assumes
        every block refines its budget, :func:`budgeted_selection`): the cost of the masks
        actually used, less that budget."""
        return sum(block.macs_over_budget() for block in self.blocks)


def _conv_size(conv: nn.Conv2d, size: int) -> int:
    k, s, p = conv.kernel_size[0], conv.stride[0], conv.padding[0]
    return (size + 2 * p - k) // s + 1


@register_backbone("tiny_resnet_sar")
def tiny_resnet_sar(
    widths: Sequence[int] = (8, 16, 32, 64),
    strides: Sequence[int] = (2, 1, 2, 2),
    width_mult: float = 1.0,
    patch_grid: int = 2,
    refine_ratio: float = 0.5,
) -> SARBackbone:
    """:class:`~videofocus.models.backbones.TinyResNet`'s layout with every residual block a
    :class:`SARBlock` (``patch_grid`` x ``patch_grid`` patches each)."""
    if len(widths) != len(strides) or len(widths) < 2:
        raise ValueError(f"widths {widths} and strides {strides} need >= 2 entries, same length")
    chans = _scaled(widths, width_mult)
    blocks = [
        SARBlock(
            _basic_stack(c_in, c_out, s),
            _basic_stack(c_in, c_out, s),
            _projection(c_in, c_out, s),
            patch_grid,
            refine_ratio,
        )
        for c_in, c_out, s in zip(chans[:-1], chans[1:], strides[1:], strict=True)
    ]
    return SARBackbone(_conv_bn_relu(3, chans[0], strides[0]), blocks, chans[-1])


@register_backbone("resnet50_sar")
def resnet50_sar(patch_grid: int = 4, refine_ratio: float = 0.5) -> SARBackbone:
    """ResNet-50 (torchvision's stem and stage layout, 2048 features, stride 32) with every
    bottleneck a :class:`SARBlock`."""
    stem_model = tvm.resnet50(weights=None)
    stem = nn.Sequential(stem_model.conv1, stem_model.bn1, stem_model.relu, stem_model.maxpool)
    blocks, c_in = [], 64
    for width, depth, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
        for i in range(depth):
            s = stride if i == 0 else 1
            c_out = 4 * width
            blocks.append(
                SARBlock(
                    _bottleneck_stack(c_in, width, c_out, s),
                    _bottleneck_stack(c_in, width, c_out, s),
                    _projection(c_in, c_out, s),
                    patch_grid,
                    refine_ratio,
                )
            )
            c_in = c_out
    return SARBackbone(stem, blocks, c_in)
