"""Every glimpse policy behind one interface: glance of a batch of clips in, actions out.

Heuristics (:class:`GlimpsePolicy` subclasses, :mod:`.base`) have one module each in this
folder (``random``, ``centre``, ``saliency``, ``dense``, ``glance_only``, each saying what it
does); :class:`LearnedGlimpsePolicy` (:mod:`.learned`) runs a trained policy network.

Every module of this folder whose name does not start with ``_`` is imported with the package,
so a new heuristic is one new file here: a :class:`GlimpsePolicy` subclass decorated with
``@register_policy("name")``.
"""

from __future__ import annotations

from videofocus.policy.heuristics.base import (
    ORACLE,
    GlimpsePolicy,
    constant_actions,
    create_policy,
    heuristic_spec,
    list_policies,
    register_policy,
    takes_option,
)
from videofocus.policy.heuristics.centre import CentrePolicy
from videofocus.policy.heuristics.dense import DensePolicy
from videofocus.policy.heuristics.glance_only import GlanceOnlyPolicy
from videofocus.policy.heuristics.learned import LearnedGlimpsePolicy
from videofocus.policy.heuristics.random import RandomPolicy
from videofocus.policy.heuristics.saliency import SaliencyPolicy
from videofocus.registry import import_plugins

__all__ = [
    "ORACLE",
    "CentrePolicy",
    "DensePolicy",
    "GlanceOnlyPolicy",
    "GlimpsePolicy",
    "LearnedGlimpsePolicy",
    "RandomPolicy",
    "SaliencyPolicy",
    "constant_actions",
    "create_policy",
    "heuristic_spec",
    "list_policies",
    "register_policy",
    "takes_option",
]

import_plugins(__name__, __path__)
