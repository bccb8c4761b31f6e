"""The reinforcement-learning algorithms that train a glimpse policy, by name (``policy.algo``).

An :class:`Algorithm` is plain data: the kind of network it trains (``recurrent`` or
``feedforward``, the exported plain-torch policy) and how stable-baselines3 builds it. Nothing
here imports SB3 (or torch): :meth:`Algorithm.sb3_class` imports the class when a model is built,
so configs and inference check names for free. Adding an algorithm is one
:func:`register_algorithm` entry at the end of this module::

    register_algorithm(Algorithm("a2c", "feedforward", "stable_baselines3:A2C", "MultiInputPolicy"))

It must accept the PPO hyperparameters :func:`~videofocus.train.rl.sb3.make_ppo` passes.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from videofocus.registry import Registry

__all__ = [
    "NETWORK_KINDS",
    "Algorithm",
    "algorithm_for_network",
    "get_algorithm",
    "list_algorithms",
    "register_algorithm",
]

#: The kinds of plain-torch policy network an algorithm trains (``network_spec``'s ``kind``).
NETWORK_KINDS = ("recurrent", "feedforward")


def _import_class(path: str) -> type:
    """The class ``"module:Class"`` names (imports its module now)."""
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class Algorithm:
    """One way to train the glimpse policy with SB3, selected by ``policy.algo == name``.

    :param network: one of :data:`NETWORK_KINDS`.
    :param sb3_model: the SB3 model class, ``"module:Class"``.
    :param sb3_policy: the SB3 policy: one of the model class's ``policy_aliases``, or a policy
        class as ``"module:Class"``.
    :param policy_kwargs: constant SB3 ``policy_kwargs`` it adds to the shared ones.
    :param policy_kwargs_from: SB3 ``policy_kwargs`` name -> the ``policy`` config field whose
        value it takes (e.g. ``lstm_hidden_size`` <- ``policy.lstm_hidden``).
    """

    name: str
    network: str
    sb3_model: str
    sb3_policy: str
    policy_kwargs: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    policy_kwargs_from: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    summary: str = ""

    def __post_init__(self) -> None:
        if self.network not in NETWORK_KINDS:
            raise ValueError(
                f"algorithm {self.name!r}: network must be one of {list(NETWORK_KINDS)}, "
                f"got {self.network!r}"
            )
        if self.sb3_model.count(":") != 1:
            raise ValueError(
                f"algorithm {self.name!r}: sb3_model must be 'module:Class', got {self.sb3_model!r}"
            )

    @property
    def recurrent(self) -> bool:
        """True when it trains a recurrent (LSTM) network."""
        return self.network == "recurrent"

    def sb3_class(self) -> type:
        """The SB3 model class (imports its module now)."""
        return _import_class(self.sb3_model)

    def sb3_policy_class(self) -> str | type:
        """What the SB3 model class takes as its policy: the alias, or the class (imported now)."""
        return _import_class(self.sb3_policy) if ":" in self.sb3_policy else self.sb3_policy

    def sb3_policy_kwargs(self, policy: Any) -> dict[str, Any]:
        """The ``policy_kwargs`` this algorithm adds, read from ``policy`` (a
        :class:`~videofocus.config.PolicyConfig`)."""
        out = {key: getattr(policy, name) for key, name in self.policy_kwargs_from.items()}
        out.update(self.policy_kwargs)
        return out


_REGISTRY: Registry[Algorithm] = Registry("algorithm")


def register_algorithm(algorithm: Algorithm) -> Algorithm:
    """Register ``algorithm`` under its name (which must be new); returns it."""
    return _REGISTRY.add(algorithm.name, algorithm)


def list_algorithms() -> list[str]:
    """Names of the registered algorithms, in registration order."""
    return _REGISTRY.names()


def get_algorithm(name: str) -> Algorithm:
    """The algorithm registered as ``name`` (ValueError for an unknown name)."""
    return _REGISTRY.get(name)


def algorithm_for_network(kind: str) -> Algorithm:
    """The first registered algorithm that trains networks of ``kind`` (what a checkpoint that
    records only its network's shape was most likely trained with); ValueError when none does."""
    for _, algorithm in _REGISTRY.items():
        if algorithm.network == kind:
            return algorithm
    raise ValueError(f"no registered algorithm trains a {kind!r} network")


register_algorithm(
    Algorithm(
        "recurrent_ppo",
        "recurrent",
        "sb3_contrib:RecurrentPPO",
        # sb3-contrib's MultiInputLstmPolicy, one LSTM call per minibatch instead of per step
        "videofocus.train.rl.sb3:SequenceLstmPolicy",
        policy_kwargs=MappingProxyType({"n_lstm_layers": 1}),
        policy_kwargs_from=MappingProxyType({"lstm_hidden_size": "lstm_hidden"}),
        summary="sb3-contrib's RecurrentPPO: an LSTM policy (the default)",
    )
)
register_algorithm(
    Algorithm(
        "ppo",
        "feedforward",
        "stable_baselines3:PPO",
        "MultiInputPolicy",
        summary="SB3's PPO: a feed-forward policy",
    )
)
