"""Where to look: the glimpse policy.

:mod:`videofocus.policy.network` holds the canonical recurrent policy network in plain torch
(glance map encoder -> LSTM -> logits of ``MultiDiscrete([K + 1, G, G])``), which label-time
inference runs without stable-baselines3.
"""

from videofocus.policy.network import (
    GlanceMapEncoder,
    PolicyState,
    RecurrentGlimpsePolicy,
    progress_dim,
    progress_features,
)

__all__ = [
    "GlanceMapEncoder",
    "PolicyState",
    "RecurrentGlimpsePolicy",
    "progress_dim",
    "progress_features",
]
