"""A FocusNet that acts with its own glimpse policy.

:class:`PolicyFocusNet` is how the fine-tune stage trains, how evaluation and the benchmarks run a
model with a learned or heuristic policy, and what a ``finetune`` checkpoint holds: the policy's
weights are part of its ``state_dict``.
"""

from __future__ import annotations

import torch

from videofocus.models import FocusNet, FocusOutput, GlanceOutput
from videofocus.models.focusnet import Cropper
from videofocus.policy.heuristics import GlimpsePolicy

#: The option value of :func:`policy_chooses`: "the model's own policy picks this glimpse".
POLICY_CHOOSES = -1


def policy_chooses(batch: int, steps: int) -> torch.Tensor:
    """Placeholder actions ``[B, T, 3]`` (all :data:`POLICY_CHOOSES`) telling a
    :class:`PolicyFocusNet` to take its policy's glimpses."""
    return torch.full((batch, steps, 3), POLICY_CHOOSES, dtype=torch.long)


class _PolicyDriven(FocusNet):
    """A FocusNet on the modules of ``net`` (e.g. the warm-up model) whose glimpses ``policy``
    places; the glance encoder is frozen (the policy reads its features), the local encoder too
    unless ``train_local``."""

    def __init__(
        self, net: FocusNet, policy: GlimpsePolicy, train_local: bool, cropper: Cropper
    ) -> None:
        super().__init__(
            net.global_encoder, net.local_encoder, net.aggregator, net.options, net.grid, cropper
        )
        if policy.options != self.options or policy.grid != self.grid:
            raise ValueError("the policy acts on other glimpse options or another grid")
        self.policy = policy
        self.freeze_encoders(train_local)


class PolicyFocusNet(_PolicyDriven):
    """A FocusNet whose glimpses a frozen :class:`GlimpsePolicy` chooses from the model's glance.

    The frozen glance encoder and policy run without gradients and stay in eval mode under
    ``train()``, so BatchNorm statistics do not drift; the aggregator always trains.
    """

    def __init__(self, net: FocusNet, policy: GlimpsePolicy, train_local: bool = True) -> None:
        super().__init__(net, policy, train_local, net.cropper)
        self.freeze("policy")

    @torch.no_grad()
    def choose(self, glance: GlanceOutput) -> torch.Tensor:
        """The policy's actions ``[B, T, 3]`` for a glance (in float32, outside autocast, so a
        bf16 run takes the glimpses the policy was trained to take)."""
        with torch.autocast(glance.maps.device.type, enabled=False):
            return self.policy.act(GlanceOutput(glance.maps.float(), glance.pooled.float()))

    def forward(
        self, frames: torch.Tensor, actions: torch.Tensor, hidden: torch.Tensor | None = None
    ) -> FocusOutput:
        """Glance, the policy's glimpses (where ``actions`` is :func:`policy_chooses`) or the
        given ones, and fused logits of frames ``[B, T, 3, H, W]``."""
        with torch.no_grad():
            glance = self.glance(frames)
        chosen = actions[..., 0] == POLICY_CHOOSES
        if bool(chosen.all()):
            actions = self.choose(glance)
        elif bool(chosen.any()):
            raise ValueError("actions mix policy_chooses placeholders with given glimpses")
        return self.forward_from_glance(frames, glance, actions, hidden)
