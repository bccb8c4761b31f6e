"""Where to look: the glimpse policies, in plain torch.

:mod:`~videofocus.policy.network` holds the policy networks (glance map encoder -> LSTM or MLP
-> logits of ``MultiDiscrete([K + 1, G, G])``, sb3-contrib's layout), which inference runs
without stable-baselines3; :mod:`~videofocus.policy.heuristics` puts every policy, learned or
not, behind one :class:`GlimpsePolicy` interface; :mod:`~videofocus.policy.focusnet` is a
FocusNet acting with its own policy and :mod:`~videofocus.policy.differentiable` the
AdaFocusV2-style one trained through the crop. Training a policy with reinforcement learning
(environments, PPO) lives in :mod:`videofocus.train.rl`.
"""

from videofocus.policy.actions import glimpse_action_dims, resolve_actions
from videofocus.policy.focusnet import POLICY_CHOOSES, PolicyFocusNet, policy_chooses
from videofocus.policy.heuristics import (
    CentrePolicy,
    DensePolicy,
    GlanceOnlyPolicy,
    GlimpsePolicy,
    LearnedGlimpsePolicy,
    RandomPolicy,
    SaliencyPolicy,
    create_policy,
    list_policies,
)
from videofocus.policy.network import (
    FeedForwardGlimpsePolicy,
    GlanceMapEncoder,
    GlimpsePolicyNetwork,
    PolicyState,
    RecurrentGlimpsePolicy,
    progress_dim,
    progress_features,
)
from videofocus.policy.observation import GlanceProjection, progress_observation

__all__ = [
    "POLICY_CHOOSES",
    "CentrePolicy",
    "DensePolicy",
    "FeedForwardGlimpsePolicy",
    "GlanceMapEncoder",
    "GlanceOnlyPolicy",
    "GlanceProjection",
    "GlimpsePolicy",
    "GlimpsePolicyNetwork",
    "LearnedGlimpsePolicy",
    "PolicyFocusNet",
    "PolicyState",
    "RandomPolicy",
    "RecurrentGlimpsePolicy",
    "SaliencyPolicy",
    "create_policy",
    "glimpse_action_dims",
    "list_policies",
    "policy_chooses",
    "progress_dim",
    "progress_features",
    "progress_observation",
    "resolve_actions",
]
