"""Where to look: the glimpse policies, in plain torch.

:mod:`~videofocus.policy.network` holds the policy networks (glance map encoder -> LSTM or MLP
-> logits of ``MultiDiscrete([K + 1, G, G])``, sb3-contrib's layout), which inference runs
without stable-baselines3; :mod:`~videofocus.policy.heuristics` puts every policy, learned or
not, behind one :class:`GlimpsePolicy` interface (heuristics by name, one module each);
:mod:`~videofocus.policy.rewards` holds the rewards of the glimpse task by name (one module
each) and :mod:`~videofocus.policy.algorithms` the RL algorithms that train a policy (plain
data; no stable-baselines3 import); :mod:`~videofocus.policy.focusnet` is a
FocusNet acting with its own policy and :mod:`~videofocus.policy.differentiable` the
AdaFocusV2-style one trained through the crop. Training a policy with reinforcement learning
(environments, PPO) lives in :mod:`videofocus.train.rl`.
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
