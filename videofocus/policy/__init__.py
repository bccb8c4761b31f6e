"""Where to look: the glimpse policies, in plain torch.

The policy networks (:mod:`~videofocus.policy.network`, run without stable-baselines3),
every policy behind one :class:`GlimpsePolicy` interface (:mod:`~videofocus.policy.heuristics`),
the rewards and RL algorithms by name, a FocusNet acting with its own policy and the
AdaFocusV2-style one trained through the crop. RL training lives in :mod:`videofocus.train.rl`.
"""

from videofocus.policy.actions import glimpse_action_dims, resolve_actions
from videofocus.policy.algorithms import (
    Algorithm,
    get_algorithm,
    list_algorithms,
    register_algorithm,
)
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
    heuristic_spec,
    list_policies,
    register_policy,
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
from videofocus.policy.rewards import Reward, get_reward, list_rewards, register_reward

__all__ = [
    "POLICY_CHOOSES",
    "Algorithm",
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
    "Reward",
    "SaliencyPolicy",
    "create_policy",
    "get_algorithm",
    "get_reward",
    "glimpse_action_dims",
    "heuristic_spec",
    "list_algorithms",
    "list_policies",
    "list_rewards",
    "policy_chooses",
    "progress_dim",
    "progress_features",
    "progress_observation",
    "register_algorithm",
    "register_policy",
    "register_reward",
    "resolve_actions",
]
