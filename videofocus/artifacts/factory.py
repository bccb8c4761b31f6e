"""Networks from a :class:`~videofocus.config.Config`: the one place config keys become modules.

The adaptive model, the dense baseline (one option: whole frames at full resolution, the
reference point of every accuracy-vs-compute comparison), the policy network of the kind
``policy.algo`` trains and the differentiable stage's model. Unset (None) config values are never
passed on, so the backbones' own defaults hold.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from videofocus.artifacts.checkpoint import load_checkpoint
from videofocus.config import Config, ConfigError
from videofocus.data.manifest import ManifestError, read_classes
from videofocus.models.focusnet import FocusNet, create_focusnet
from videofocus.models.glimpse import GlimpseOption, dense_option
from videofocus.policy.algorithms import get_algorithm
from videofocus.policy.differentiable import DifferentiableFocusNet, DifferentiableGlimpsePolicy
from videofocus.policy.heuristics import LearnedGlimpsePolicy
from videofocus.policy.network import (
    FeedForwardGlimpsePolicy,
    GlanceMapEncoder,
    GlimpsePolicyNetwork,
    RecurrentGlimpsePolicy,
    progress_dim,
)
from videofocus.policy.observation import GlanceProjection

__all__ = [
    "build_dense_baseline",
    "build_differentiable_focusnet",
    "build_focusnet",
    "build_learned_policy",
    "build_policy_network",
    "glance_map_hw",
    "glimpse_options",
    "policy_action_dims",
    "resolve_num_classes",
]


def resolve_num_classes(cfg: Config) -> int:
    """``data.num_classes``, else the synthetic generator's classes, else the classes file's lines.

    :raises ConfigError: when none of them is available.
    """
    data = cfg.data
    if data.num_classes is not None:
        return data.num_classes
    if data.synthetic is not None:
        return data.synthetic.num_classes
    try:
        return len(read_classes(data.resolve(data.classes)))
    except ManifestError as err:
        raise ConfigError(
            None, "data.num_classes", f"is null and the classes file is unusable ({err})"
        ) from err


def glimpse_options(cfg: Config) -> list[GlimpseOption]:
    """The configured glimpse options, in action order (action option ``k`` is entry ``k - 1``)."""
    return [GlimpseOption(o.extent, o.resolution, o.backbone) for o in cfg.model.options]


def policy_action_dims(cfg: Config) -> tuple[int, int, int]:
    """``(K + 1, G, G)``: the sizes of the ``MultiDiscrete`` action space."""
    return (len(cfg.model.options) + 1, cfg.model.grid, cfg.model.grid)


def _given(**kwargs: Any) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if v is not None}


def build_focusnet(cfg: Config, num_classes: int | None = None) -> FocusNet:
    """The adaptive model described by ``cfg.model``."""
    return _create(cfg, num_classes, glimpse_options(cfg))


def build_dense_baseline(cfg: Config, num_classes: int | None = None) -> FocusNet:
    """The dense baseline: ``cfg``'s glance encoder and ``model.local_backbone``, with one option,
    the whole frame at ``data.frame_size`` (use it with ``dense_actions``)."""
    return _create(cfg, num_classes, [dense_option(cfg.data.frame_size)])


def _create(cfg: Config, num_classes: int | None, options: list[GlimpseOption]) -> FocusNet:
    """The FocusNet of ``cfg.model`` with ``options``: the adaptive model or the dense baseline."""
    model = cfg.model
    # local_pretrained holds the weights of model.local_backbone; options naming another
    # backbone start from its random initialisation.
    per_backbone: dict[str, dict[str, Any]] = {}
    if model.local_pretrained is not None:
        per_backbone[model.local_backbone] = {"pretrained": model.local_pretrained}
    return create_focusnet(
        num_classes if num_classes is not None else resolve_num_classes(cfg),
        model.glance_backbone,
        model.glance_resolution,
        options,
        model.local_backbone,
        model.grid,
        model.hidden,
        glance_backbone_kw=_given(
            width_mult=model.glance_width_mult, pretrained=model.glance_pretrained
        ),
        local_backbone_kw=_given(
            width_mult=model.local_width_mult,
            refine_ratio=model.refine_ratio,
            patch_grid=model.sar_patch_grid,
        ),
        per_backbone_kw=per_backbone,
        local_feature_dim=model.local_feature_dim,
        pixel_aligned=model.pixel_aligned_glimpses,
    )


def glance_map_hw(net: FocusNet) -> tuple[int, int]:
    """Spatial size ``(h, w)`` of ``net``'s glance feature map, found by encoding one glance."""
    encoder = net.global_encoder
    param = next(encoder.parameters())
    r = encoder.resolution
    fmap = encoder.backbone.forward_features(
        torch.zeros(1, 3, r, r, device=param.device, dtype=param.dtype)
    )
    return int(fmap.shape[-2]), int(fmap.shape[-1])


def build_policy_network(
    cfg: Config, glance_channels: int, map_hw: tuple[int, int]
) -> GlimpsePolicyNetwork:
    """The policy network ``cfg.policy.algo`` trains (recurrent or feed-forward, as the
    algorithm's), for glance maps ``[glance_channels, *map_hw]`` (:func:`glance_map_hw`).

    Sizes: ``model.policy_channels`` (1x1 conv), ``model.policy_hidden`` (feature vector),
    ``policy.net_arch`` (Tanh MLP) and, if recurrent, ``policy.lstm_hidden`` (LSTM); its extras
    hold the previous action unless ``policy.observe_previous_action`` is false.
    """
    dims = policy_action_dims(cfg)
    encoder = GlanceMapEncoder(
        glance_channels,
        map_hw,
        channels=cfg.model.policy_channels,
        features_dim=cfg.model.policy_hidden,
        extras_dim=progress_dim(dims, cfg.policy.observe_previous_action),
    )
    if get_algorithm(cfg.policy.algo).recurrent:
        return RecurrentGlimpsePolicy(encoder, cfg.policy.lstm_hidden, dims, cfg.policy.net_arch)
    return FeedForwardGlimpsePolicy(encoder, dims, cfg.policy.net_arch)


def build_learned_policy(cfg: Config, net: FocusNet) -> LearnedGlimpsePolicy:
    """The learned glimpse policy ``cfg`` trains for ``net``, with untrained weights: the glance
    projection to ``policy.obs_channels`` channels, then :func:`build_policy_network` (its
    shapes and step cost are the trained policy's)."""
    channels = net.global_encoder.num_features
    projection = GlanceProjection(channels, min(cfg.policy.obs_channels, channels))
    network = build_policy_network(cfg, projection.out_channels, glance_map_hw(net))
    return LearnedGlimpsePolicy(
        glimpse_options(cfg), cfg.model.grid, projection, network, cfg.policy.allow_skip
    )


def build_differentiable_focusnet(
    cfg: Config, num_classes: int, init_from: str | Path | None = None
) -> FocusNet:
    """The ``differentiable`` stage's model: FocusNet + a fresh continuous-centre policy.

    :param cfg: the run config (``train.differentiable_*``, ``train.finetune_local``,
        ``model.policy_channels`` / ``model.policy_hidden``).
    :param init_from: a FocusNet checkpoint to start from (``<out_dir>/warmup/final``); None
        leaves it at its initialisation (e.g. to load a ``differentiable`` checkpoint into).
    """
    net = build_focusnet(cfg, num_classes)
    if init_from is not None:
        net.load_state_dict(load_checkpoint(init_from, load_trainer=False).model)
    option = cfg.train.differentiable_option
    policy = DifferentiableGlimpsePolicy(
        net.options,
        net.grid,
        option,
        net.global_encoder.num_features,
        glance_map_hw(net),
        channels=cfg.model.policy_channels,
        hidden=cfg.model.policy_hidden,
        head=cfg.train.differentiable_head,
        prior_scale=cfg.train.differentiable_prior_scale,
    )
    glimpse = net.options[option - 1]
    # enough bilinear samples per output pixel to average every input pixel a crop covers
    supersample = max(1, round(glimpse.extent * cfg.data.frame_size / glimpse.resolution))
    return DifferentiableFocusNet(
        net,
        policy,
        cfg.train.finetune_local,
        supersample,
        blur=cfg.train.differentiable_blur,
        random_branch=cfg.train.differentiable_random_branch,
        jitter=cfg.train.differentiable_jitter,
        pixel_aligned=cfg.train.differentiable_pixel_aligned,
    )
