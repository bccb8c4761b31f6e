"""Where to look: the glimpse policy.

:mod:`videofocus.policy.network` holds the canonical recurrent policy network in plain torch
(glance map encoder -> LSTM -> logits of ``MultiDiscrete([K + 1, G, G])``), which label-time
inference runs without stable-baselines3. :mod:`~videofocus.policy.episodes` is the batched
episode core that :class:`FocusEnv` (gymnasium, one video) and :class:`FocusVecEnv`
(stable-baselines3, N videos in one batch) wrap; :mod:`~videofocus.policy.heuristics` puts every
policy, learned or not, behind one :class:`GlimpsePolicy` interface.
:mod:`~videofocus.policy.sb3` trains the policy with stable-baselines3 / sb3-contrib and exports
it into the plain-torch network (imported on demand: inference needs no SB3 runtime).
"""

from videofocus.policy.env import FocusEnv
from videofocus.policy.episodes import (
    REWARDS,
    Clips,
    ClipSource,
    EpisodeBatch,
    LocalFeatureMemo,
    StepResult,
    VideoCache,
    VideoStream,
    build_episode_core,
    fit_projection,
)
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
from videofocus.policy.spaces import (
    glance_observation_space,
    glimpse_action_dims,
    glimpse_action_space,
    resolve_actions,
)
from videofocus.policy.vec_env import FocusVecEnv

__all__ = [
    "REWARDS",
    "CentrePolicy",
    "ClipSource",
    "Clips",
    "DensePolicy",
    "EpisodeBatch",
    "FeedForwardGlimpsePolicy",
    "FocusEnv",
    "FocusVecEnv",
    "GlanceMapEncoder",
    "GlanceOnlyPolicy",
    "GlanceProjection",
    "GlimpsePolicy",
    "GlimpsePolicyNetwork",
    "LearnedGlimpsePolicy",
    "LocalFeatureMemo",
    "PolicyState",
    "RandomPolicy",
    "RecurrentGlimpsePolicy",
    "SaliencyPolicy",
    "StepResult",
    "VideoCache",
    "VideoStream",
    "build_episode_core",
    "create_policy",
    "fit_projection",
    "glance_observation_space",
    "glimpse_action_dims",
    "glimpse_action_space",
    "list_policies",
    "progress_dim",
    "progress_features",
    "progress_observation",
    "resolve_actions",
]
