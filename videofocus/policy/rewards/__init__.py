"""Rewards of the glimpse task, by name (``policy.reward``): one module per reward.

Every module of this folder whose name does not start with ``_`` (other than :mod:`.base`) is
imported when the package is, and registers its reward with
:func:`~videofocus.policy.rewards.base.register_reward`; a new reward is one new file here::

    from videofocus.policy.rewards.base import register_reward

    @register_reward("my_gain", baseline="skip")
    def gain(confidence, baseline, previous):
        \"\"\"p(chosen) - p(skip), halved.\"\"\"
        return (confidence - baseline) / 2

The config accepts its name and the episode core computes it, with no other change.
"""

from __future__ import annotations

from videofocus.policy.rewards.base import (
    BASELINES,
    GainFn,
    Reward,
    get_reward,
    list_rewards,
    register_reward,
)
from videofocus.registry import import_plugins

__all__ = ["BASELINES", "GainFn", "Reward", "get_reward", "list_rewards", "register_reward"]

import_plugins(__name__, __path__)
