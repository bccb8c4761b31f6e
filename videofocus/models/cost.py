"""Cost accounting in multiply-accumulates (MACs): per component, per video, per action sequence.

MACs are ``torch.utils.flop_counter.FlopCounterMode`` FLOPs / 2 (convolutions and matrix
products; element-wise ops, pooling, resizing and cropping count nothing): what the adaptive video
recognition papers call "GFLOPs", said GMACs (10^9 MACs) here to be exact. A video that reads
``n`` steps pays ``n x (glance + policy + aggregator)`` plus its glimpses (none for a skip); a
video leaving at the glance exit pays only ``T x (glance + glance_head)``
(:meth:`CostTable.glance_exit`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from videofocus.models.focusnet import FocusNet, GlanceOutput
from videofocus.models.glimpse import check_actions
from videofocus.models.sar import budgeted_selection

__all__ = ["GIGA", "CostTable", "measure_macs"]

GIGA = 1e9


def measure_macs(fn: Callable[..., Any], *inputs: Any, **kwargs: Any) -> int:
    """Multiply-accumulates of one call ``fn(*inputs, **kwargs)`` (``fn``: a module or any
    callable). Works on any device, ``meta`` included: paper-scale models are measured without
    allocating their weights."""
    with warnings.catch_warnings():
        # Toggling the oneDNN flags warns about TF32 on builds without Intel GPU support.
        warnings.filterwarnings("ignore", message=".*oneDNN.*")
        # Fused RNN kernels (oneDNN on CPU, cuDNN on GPU) are opaque to FlopCounterMode and
        # count as 0; with them off, LSTM/GRU run as matrix products that are counted.
        with (
            torch.backends.mkldnn.flags(enabled=False),
            torch.backends.cudnn.flags(enabled=False),
            torch.no_grad(),
            FlopCounterMode(display=False) as counter,
        ):
            fn(*inputs, **kwargs)
    return counter.get_total_flops() // 2


@dataclass(frozen=True)
class CostTable:
    """MACs of each component of a :class:`~videofocus.models.FocusNet` and its glimpse policy.

    The one cost authority (``flops``, ``eval``, ``label`` and ``bench`` build it with
    :meth:`from_model`), so the same actions cost the same GMACs everywhere.

    Per frame or step: ``glance``, ``policy`` (0 for heuristics), ``aggregator`` (GRU and
    classifier); ``local``: per glimpse of each option (projection included); ``glance_head``:
    the glance-only classifier on one frame's pooled glance (what the glance exit adds).
    """

    glance: int
    policy: int
    local: tuple[int, ...]
    aggregator: int
    glance_head: int = 0

    @classmethod
    def from_model(
        cls,
        net: FocusNet,
        frame_size: int,
        policy: torch.nn.Module | None = None,
    ) -> CostTable:
        """Measure every component of ``net`` (may be on ``meta``) and its policy on one input.

        The policy (None: ``net.policy`` if any) costs one step of its ``act`` on one frame's
        glance, 0 without weights; ``frame_size`` is the side of the square decoded frames.
        """
        if policy is None:
            policy = getattr(net, "policy", None)
        training = net.training
        net.eval()  # BatchNorm in training mode refuses a batch of one 1x1 map
        # SAR backbones refine a data-dependent share of patches: a static table prices each
        # glimpse at its target share (refine_ratio), the same on meta and on real weights
        with budgeted_selection():
            try:
                param = next(net.parameters())
                like = {"device": param.device, "dtype": param.dtype}
                frame = torch.zeros(1, 3, frame_size, frame_size, **like)
                glance = measure_macs(net.global_encoder, frame)
                with torch.no_grad():
                    glance_out = net.global_encoder(frame)
                local = []
                for k, option in enumerate(net.options):
                    crop = torch.zeros(1, 3, option.resolution, option.resolution, **like)
                    local.append(measure_macs(net.local_encoder.pooled, crop, k))
                # every option's features share one width: one aggregator step costs the same
                # for all
                local_feats = torch.zeros(1, net.local_encoder.feature_dim, **like)
                option0 = torch.zeros(1, dtype=torch.long, device=param.device)
                aggregator = measure_macs(
                    net.aggregator.step, glance_out.pooled, local_feats, option0
                )
                glance_head = measure_macs(net.aggregator.glance_head, glance_out.pooled)
                policy_macs = 0
                weights = [] if policy is None else list(policy.parameters())
                if weights:
                    like = {"device": weights[0].device, "dtype": weights[0].dtype}
                    one_step = GlanceOutput(
                        glance_out.map[:, None].to(**like), glance_out.pooled[:, None].to(**like)
                    )
                    policy_macs = measure_macs(policy.act, one_step)
                return cls(glance, policy_macs, tuple(local), aggregator, glance_head)
            finally:
                net.train(training)

    @property
    def num_options(self) -> int:
        """Number ``K`` of glimpse options."""
        return len(self.local)

    @property
    def per_step(self) -> int:
        """MACs every step read pays whatever its action: glance + policy + aggregator."""
        return self.glance + self.policy + self.aggregator

    def glance_exit(self, steps: int) -> int:
        """MACs of the glance-only prediction of a clip of ``steps`` frames (glance and glance
        head on every frame): what a video leaving at the glance exit pays, no policy, no
        glimpse, no GRU step."""
        return steps * (self.glance + self.glance_head)

    def usage_from_actions(
        self,
        actions: torch.Tensor,
        exit_steps: torch.Tensor | None = None,
        macs_over_table: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """GMACs per video (float64 ``[B]``) of the ``actions [B, T, 3]`` actually taken, each
        video reading ``exit_steps [B]`` steps (``1..T``; None: all ``T``); ``macs_over_table
        [B, T]`` (:attr:`FocusOutput.macs_over_table`) adds what input-dependent glimpses spent
        beyond the table's price, as measured."""
        check_actions(actions, self.num_options)
        option = actions[..., 0]
        b, t = option.shape
        if exit_steps is None:
            exit_steps = torch.full((b,), t)
        if exit_steps.shape != (b,):
            raise ValueError(f"exit_steps must be [B={b}], got {tuple(exit_steps.shape)}")
        if bool(((exit_steps < 1) | (exit_steps > t)).any()):
            raise ValueError(f"exit_steps must lie in [1, T={t}]")
        read = torch.arange(t, device=actions.device) < exit_steps.to(actions.device)[:, None]
        option_cost = torch.tensor([0, *self.local], dtype=torch.float64, device=actions.device)
        glimpse_cost = option_cost[option]  # option 0 (skip) costs nothing
        steps = read.sum(dim=1, dtype=torch.float64)
        if macs_over_table is not None:
            if macs_over_table.shape != (b, t):
                raise ValueError(
                    f"macs_over_table must be [B={b}, T={t}], got {tuple(macs_over_table.shape)}"
                )
            glimpse_cost = glimpse_cost + macs_over_table.to(glimpse_cost)
        macs = steps * self.per_step + (glimpse_cost * read).sum(dim=1)
        return macs / GIGA
