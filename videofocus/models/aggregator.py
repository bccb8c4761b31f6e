"""The aggregator: a causal GRU over per-step ``[glance ; local feature ; one-hot option]`` (the
local feature zero for a skip) with a classifier at every step, so every step can exit."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

__all__ = ["Aggregator", "AggregatorOutput"]


class AggregatorOutput(NamedTuple):
    """Logits ``[B, T, num_classes]`` (or ``[B, num_classes]`` for one step) and the GRU state
    ``[1, B, hidden]`` after the last step."""

    logits: torch.Tensor
    hidden: torch.Tensor


class Aggregator(nn.Module):
    """Fuse glance and glimpse features over time and classify at every step; ``hidden`` is the
    GRU size, ``num_options`` the number ``K`` of glimpse options (skip excluded)."""

    def __init__(
        self,
        glance_dim: int,
        local_dim: int,
        hidden: int,
        num_classes: int,
        num_options: int,
    ) -> None:
        super().__init__()
        self.glance_dim = glance_dim
        self.local_dim = local_dim
        self.num_options = num_options
        self.num_classes = num_classes
        self.gru = nn.GRU(glance_dim + local_dim + num_options + 1, hidden, batch_first=True)
        self.classifier = nn.Linear(hidden, num_classes)
        # Auxiliary heads of the warm-up stage: glance-only and glimpse-only predictions.
        self.glance_head = nn.Linear(glance_dim, num_classes)
        self.local_head = nn.Linear(local_dim, num_classes)

    def fuse(
        self, glance: torch.Tensor, local: torch.Tensor, option_index: torch.Tensor
    ) -> torch.Tensor:
        """Per-step GRU input ``[..., glance_dim + local_dim + K + 1]``; ``local`` is zeroed
        where ``option_index`` (long ``[...]``) is ``-1``, a skip."""
        skipped = rearrange(option_index < 0, "... -> ... 1")
        # a fill rather than a product: a skipped step's local input may hold anything, even NaN.
        local = local.masked_fill(skipped, 0.0)
        one_hot = F.one_hot(option_index + 1, self.num_options + 1).to(glance.dtype)
        return torch.cat([glance, local.to(glance.dtype), one_hot], dim=-1)

    def forward(
        self,
        glance: torch.Tensor,
        local: torch.Tensor,
        option_index: torch.Tensor,
        hidden: torch.Tensor | None = None,
    ) -> AggregatorOutput:
        """Run ``T`` steps of ``glance [B, T, glance_dim]``, ``local [B, T, local_dim]`` and
        ``option_index [B, T]``, continuing from the GRU state ``hidden [1, B, hidden]`` if given
        (chunks fed with the returned state equal one call over all steps)."""
        out, hidden = self.gru(self.fuse(glance, local, option_index), hidden)
        return AggregatorOutput(self.classifier(out), hidden)

    def step(
        self,
        glance: torch.Tensor,
        local: torch.Tensor,
        option_index: torch.Tensor,
        hidden: torch.Tensor | None = None,
    ) -> AggregatorOutput:
        """Run one step: ``glance [B, glance_dim]``, ``local [B, local_dim]``, ``option_index
        [B]``; returns logits ``[B, num_classes]`` and the new state."""
        out = self.forward(glance[:, None], local[:, None], option_index[:, None], hidden)
        return AggregatorOutput(out.logits[:, 0], out.hidden)
