"""What the glimpse policy observes: a few channels of the glance map, and progress features.

stable-baselines3 copies every observation from the device to the host at every step, so the
glance map ``[C, h, w]`` (1280 channels for MobileNetV2) is shrunk to ``c`` channels first by a
*fixed* 1x1 projection, :class:`GlanceProjection`, fitted once on training glance maps. The
``h x w`` layout is kept: the policy must see where things are to choose where to look.

The projection is principal component analysis on the channel **second moment** (not the
covariance: no mean is subtracted), each component scaled to unit second moment. Without an
offset it is a plain bias-free 1x1 convolution, so it composes exactly with the policy's own
bias-free 1x1 convolution (:class:`~videofocus.policy.network.GlanceMapEncoder`); and with
non-negative (post-ReLU) features the first component is the overall activation, the cue a
saliency policy uses.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from einops import rearrange
from torch import nn

from videofocus.policy.network import progress_features

__all__ = ["GlanceProjection", "progress_observation"]


class GlanceProjection(nn.Module):
    """Fixed 1x1 channel projection ``[..., C, h, w] -> [..., c, h, w]`` of glance maps.

    Build it with :meth:`fit`; an instance made with the constructor holds zeros until a
    ``state_dict`` is loaded into it (the weights are buffers, saved with the policy).
    """

    weight: torch.Tensor
    second_moments: torch.Tensor
    total_moment: torch.Tensor

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        if not 0 < out_channels <= in_channels:
            raise ValueError(
                f"out_channels must be in [1, in_channels={in_channels}], got {out_channels}"
            )
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.register_buffer("weight", torch.zeros(out_channels, in_channels))
        # Eigenvalues of the kept components and the trace, to report what the projection keeps.
        self.register_buffer("second_moments", torch.zeros(out_channels))
        self.register_buffer("total_moment", torch.zeros(()))

    @classmethod
    @torch.no_grad()
    def fit(
        cls,
        maps: torch.Tensor | Iterable[torch.Tensor],
        out_channels: int,
        eps: float = 1e-6,
    ) -> GlanceProjection:
        """Principal components of the glance channels, each scaled to unit second moment.

        The sign of every component is fixed so that its largest-magnitude weight is positive,
        which makes the result independent of the eigen-solver's arbitrary signs.

        :param maps: glance maps ``[..., C, h, w]``, or an iterable of such batches (streamed:
            only the ``C x C`` moment matrix is kept).
        :param eps: components with a second moment below ``eps`` times the largest one are
            scaled as if they had that floor, so near-empty channels are not blown up.
        :raises ValueError: for no maps, mismatched channel counts or ``c > C``.
        """
        batches = [maps] if torch.is_tensor(maps) else maps
        moment: torch.Tensor | None = None
        count = 0
        for batch in batches:
            if batch.ndim < 3:
                raise ValueError(f"glance maps must be [..., C, h, w], got {tuple(batch.shape)}")
            x = rearrange(batch.detach().double(), "... c h w -> (... h w) c")
            if moment is not None and x.shape[1] != moment.shape[0]:
                raise ValueError(f"glance maps with {x.shape[1]} and {moment.shape[0]} channels")
            part = x.T @ x
            moment = part if moment is None else moment + part.to(moment.device)
            count += x.shape[0]
        if moment is None or count == 0:
            raise ValueError("GlanceProjection.fit needs at least one glance map")
        moment = moment / count
        values, vectors = torch.linalg.eigh(moment.cpu())  # ascending eigenvalues
        values = values.flip(0)[:out_channels].clamp(min=0.0)
        vectors = vectors.flip(1)[:, :out_channels].T  # [c, C], strongest component first
        peak = vectors.gather(1, vectors.abs().argmax(dim=1, keepdim=True))
        vectors = vectors * torch.sign(peak)
        floor = eps * float(values[0]) if float(values[0]) > 0 else eps
        scale = values.clamp(min=floor).rsqrt()
        proj = cls(moment.shape[0], out_channels)
        proj.weight.copy_((vectors * scale[:, None]).float())
        proj.second_moments.copy_(values.float())
        proj.total_moment.copy_(torch.trace(moment).float())
        return proj

    @property
    def kept_fraction(self) -> float:
        """Share of the glance maps' second moment (energy) the kept components hold."""
        total = float(self.total_moment)
        return float(self.second_moments.sum()) / total if total > 0 else 0.0

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        """Projected maps ``[..., c, h, w]`` of glance maps ``[..., C, h, w]``."""
        if maps.ndim < 3 or maps.shape[-3] != self.in_channels:
            raise ValueError(
                f"glance maps must be [..., {self.in_channels}, h, w], got {tuple(maps.shape)}"
            )
        return torch.einsum("oc,...chw->...ohw", self.weight.to(maps.dtype), maps)

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, out_channels={self.out_channels}"


def progress_observation(
    step: int,
    num_steps: int,
    prev_actions: torch.Tensor | None,
    action_dims: Sequence[int],
    batch: int,
    device: torch.device | str | None = None,
    previous_action: bool = True,
) -> torch.Tensor:
    """Progress features ``[batch, E]`` of step ``0..num_steps``, on ``device`` (without
    ``previous_action``: the step fraction only).

    Steps ``0..T-1`` are exactly :func:`~videofocus.policy.network.progress_features` (what the
    exported policy computes at inference); the final observation after the last step
    (``step == T``) has step fraction 1.
    """
    last = step == num_steps
    feats = progress_features(
        step - 1 if last else step, num_steps, prev_actions, action_dims, batch, previous_action
    )
    if last:
        feats[:, 0] = 1.0
    return feats.to(device)
