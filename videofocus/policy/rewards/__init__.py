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

import importlib
import pkgutil

from videofocus.policy.rewards.base import (
    BASELINES,
    GainFn,
    Reward,
    get_reward,
    list_rewards,
    register_reward,
)

__all__ = ["BASELINES", "GainFn", "Reward", "get_reward", "list_rewards", "register_reward"]


def _import_rewards() -> None:
    for module in pkgutil.iter_modules(__path__):
        if module.name != "base" and not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")


_import_rewards()
