"""A learned glimpse policy in a checkpoint: what its meta records, and how it is rebuilt.

A ``policy`` checkpoint holds the policy's weights (``policy.*``, ``projection.*``) and a copy of
the warm-up network it acts on (``focusnet.*``); a ``finetune`` checkpoint holds the policy's
weights inside its model. Both record the policy's shape in ``meta.json``
(:func:`learned_policy_meta`), so either folder rebuilds its policy alone, with no training code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from videofocus.artifacts.checkpoint import Checkpoint, CheckpointError, load_checkpoint
from videofocus.artifacts.factory import build_focusnet, glimpse_options
from videofocus.config import Config
from videofocus.models import FocusNet
from videofocus.policy.algorithms import algorithm_for_network, get_algorithm
from videofocus.policy.heuristics import LearnedGlimpsePolicy
from videofocus.policy.network import (
    FeedForwardGlimpsePolicy,
    GlanceMapEncoder,
    GlimpsePolicyNetwork,
    RecurrentGlimpsePolicy,
)
from videofocus.policy.observation import GlanceProjection

#: The stage name of a policy checkpoint.
STAGE = "policy"


def load_focusnet(
    cfg: Config, path: str | Path, device: torch.device | str = "cpu"
) -> tuple[FocusNet, int]:
    """The FocusNet of a supervised checkpoint folder (e.g. ``<out_dir>/warmup/final``), frozen
    (eval mode, no gradients) on ``device``, and its classes; ``cfg.model`` must match it.

    :raises CheckpointError: when the folder is not a checkpoint (e.g. warm-up not trained yet).
    """
    ckpt = load_checkpoint(path, load_trainer=False)
    return _frozen_focusnet(cfg, ckpt, ckpt.model, device)


def policy_checkpoint_focusnet(
    cfg: Config, path: str | Path, ckpt: Checkpoint
) -> tuple[FocusNet, int]:
    """The frozen FocusNet (on the CPU) a policy-stage checkpoint acts on, from its own copy
    (``focusnet.*`` weights), and its classes.

    :param path: the policy checkpoint folder (named in errors); ``ckpt``: that folder, loaded.
    :raises CheckpointError: for a checkpoint without the copy.
    """
    own = _strip(ckpt.model, "focusnet.")
    if not own:
        raise CheckpointError(
            f"{path}: this policy checkpoint holds no focusnet.* weights (the network it acts "
            "on; written by an older videofocus); train the policy stage again"
        )
    return _frozen_focusnet(cfg, ckpt, own, "cpu")


def _frozen_focusnet(
    cfg: Config, ckpt: Checkpoint, state: dict[str, torch.Tensor], device: torch.device | str
) -> tuple[FocusNet, int]:
    net = build_focusnet(cfg, ckpt.meta.num_classes)
    net.load_state_dict(state)
    return net.to(device).eval().requires_grad_(False), ckpt.meta.num_classes


def network_spec(network: GlimpsePolicyNetwork) -> dict[str, Any]:
    """Plain-data shape of a policy network, enough for :func:`network_from_spec` to rebuild it."""
    encoder = network.features_extractor
    spec: dict[str, Any] = {
        "kind": "recurrent" if isinstance(network, RecurrentGlimpsePolicy) else "feedforward",
        "in_channels": encoder.in_channels,
        "map_hw": list(encoder.map_hw),
        "channels": encoder.reduce.out_channels,
        "features_dim": encoder.features_dim,
        "extras_dim": encoder.extras_dim,
        "action_dims": list(network.action_dims),
        "net_arch": [m.out_features for m in network.policy_net if isinstance(m, torch.nn.Linear)],
    }
    if isinstance(network, RecurrentGlimpsePolicy):
        spec["hidden"] = network.hidden
        spec["num_layers"] = network.num_layers
    return spec


def network_from_spec(spec: dict[str, Any]) -> GlimpsePolicyNetwork:
    """An untrained network of the shape :func:`network_spec` recorded."""
    encoder = GlanceMapEncoder(
        spec["in_channels"],
        tuple(spec["map_hw"]),
        spec["channels"],
        spec["features_dim"],
        spec["extras_dim"],
    )
    if spec["kind"] == "recurrent":
        return RecurrentGlimpsePolicy(
            encoder, spec["hidden"], spec["action_dims"], spec["net_arch"], spec["num_layers"]
        )
    return FeedForwardGlimpsePolicy(encoder, spec["action_dims"], spec["net_arch"])


def learned_policy_meta(
    network: GlimpsePolicyNetwork, projection: GlanceProjection, algo: str | None = None
) -> dict[str, Any]:
    """What a checkpoint's ``meta.policy`` records to rebuild a learned policy without any other
    folder: ``algo``, ``network`` (:func:`network_spec`) and ``projection`` (its shape).

    :param algo: the registered algorithm that trained ``network``; None: the first registered
        one that trains its kind of network
        (:func:`~videofocus.policy.algorithms.algorithm_for_network`).
    :raises ValueError: for an unknown ``algo``, or one that trains another kind of network.
    """
    spec = network_spec(network)
    if algo is None:
        algo = algorithm_for_network(spec["kind"]).name
    elif get_algorithm(algo).network != spec["kind"]:
        raise ValueError(
            f"algorithm {algo!r} trains a {get_algorithm(algo).network} network, "
            f"not a {spec['kind']} one"
        )
    return {
        "algo": algo,
        "network": spec,
        "projection": {
            "in_channels": projection.in_channels,
            "out_channels": projection.out_channels,
            "kept_fraction": projection.kept_fraction,
        },
    }


def learned_policy_from_meta(cfg: Config, spec: dict[str, Any]) -> LearnedGlimpsePolicy:
    """A deterministic learned policy of the shape :func:`learned_policy_meta` recorded
    (``spec``, a checkpoint's ``meta.policy``), with untrained weights, on the CPU; ``cfg`` gives
    the glimpse options, the grid and ``policy.allow_skip``."""
    proj = spec["projection"]
    policy = LearnedGlimpsePolicy(
        glimpse_options(cfg),
        cfg.model.grid,
        GlanceProjection(proj["in_channels"], proj["out_channels"]),
        network_from_spec(spec["network"]),
        allow_skip=cfg.policy.allow_skip,
        deterministic=True,
    )
    return policy.eval().requires_grad_(False)


def load_learned_policy(cfg: Config, path: str | Path | Checkpoint) -> LearnedGlimpsePolicy:
    """The learned policy of a policy-stage checkpoint, deterministic, on the CPU.

    :param path: the checkpoint folder, e.g. ``<out_dir>/policy/final``, or that folder loaded.
    :raises CheckpointError: when the folder is not a policy-stage checkpoint.
    """
    ckpt = path if isinstance(path, Checkpoint) else load_checkpoint(path, load_trainer=False)
    if ckpt.meta.stage != STAGE or ckpt.meta.policy is None:
        where = "the checkpoint" if isinstance(path, Checkpoint) else path
        raise CheckpointError(f"{where}: not a policy-stage checkpoint")
    policy = learned_policy_from_meta(cfg, ckpt.meta.policy)
    policy.network.load_state_dict(_strip(ckpt.model, "policy."))
    policy.projection.load_state_dict(_strip(ckpt.model, "projection."))
    return policy


def _strip(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
