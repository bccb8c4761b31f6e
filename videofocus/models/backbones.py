"""Backbone registry: one ``create_backbone(name, ...)`` entry point for every feature extractor.

Encoders ask this registry by name, so adding an architecture touches this file only. Weights are
an explicit local file (``pretrained=PATH``), never a download.
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torchvision.models as tvm
from torch import nn
from torchvision.models.resnet import BasicBlock

from videofocus.registry import Registry

__all__ = [
    "Backbone",
    "PretrainedWeightsError",
    "backbone_arguments",
    "check_backbone_name",
    "create_backbone",
    "list_backbones",
    "load_pretrained",
    "register_backbone",
]

BackboneBuilder = Callable[..., "Backbone"]  # a function or a Backbone subclass
_REGISTRY: Registry[BackboneBuilder] = Registry("backbone")
_TIMM_PREFIX = "timm/"
# Classifier heads of torchvision (fc., classifier.) and timm (head., fc., classifier.) models:
# a backbone has none, so these keys in a classification checkpoint are expected and dropped.
_HEAD_PREFIXES = ("fc.", "classifier.", "head.")


class Backbone(nn.Module):
    """A feature extractor: ``forward_features(x [N,3,H,W]) -> [N, num_features, h, w]``.
    Subclasses keep the upstream parameter names, so its checkpoints load without renaming."""

    num_features: int

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Return the last feature map ``[N, num_features, h, w]`` of images ``x [N, 3, H, W]``."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)

    def macs_over_table(self) -> torch.Tensor | None:
        """MACs per sample ``[N]`` (float64) that the last forward spent beyond what a static
        cost table (:class:`~videofocus.models.cost.CostTable`) charges for it; None when the
        table is exact (a backbone whose work does not depend on its input)."""
        return None

    @property
    def weights_module(self) -> nn.Module:
        """The module a pretrained state dict is loaded into (``self`` unless it wraps another)."""
        return self


class PretrainedWeightsError(RuntimeError):
    """A pretrained checkpoint (``path``) does not fit the backbone it is loaded into."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self):  # keep both fields when pickled across processes
        return (type(self), (self.path, self.reason))


def register_backbone(name: str) -> Callable[[BackboneBuilder], BackboneBuilder]:
    """Decorator registering a builder ``fn(**kwargs) -> Backbone`` under a new ``name``."""
    return _REGISTRY.register(name)


def list_backbones() -> list[str]:
    """Names of the registered backbones, sorted (``timm/<name>`` is also accepted when timm is
    installed)."""
    return sorted(_REGISTRY.names())


def check_backbone_name(name: str) -> None:
    """Raise ``KeyError`` (listing the registered names) unless :func:`create_backbone`
    accepts ``name``; config loading checks names with it before any build."""
    if name.startswith(_TIMM_PREFIX):
        if importlib.util.find_spec("timm") is None:
            raise KeyError(f"backbone {name!r} needs the timm package (pip install timm)")
    elif name not in _REGISTRY:
        raise KeyError(
            f"unknown backbone {name!r}; registered: {', '.join(list_backbones())} "
            f"(or '{_TIMM_PREFIX}<name>' with timm installed)"
        )


def backbone_arguments(name: str) -> set[str]:
    """The keyword arguments the registered backbone ``name`` takes (config loading checks the
    ``model`` knobs that only some backbones read against it); none are known of timm's."""
    if name.startswith(_TIMM_PREFIX):
        return set()
    return set(inspect.signature(_REGISTRY.get(name)).parameters)


def create_backbone(
    name: str,
    *,
    pretrained: str | Path | None = None,
    width_mult: float | None = None,
    **kwargs: Any,
) -> Backbone:
    """Build a registered backbone, optionally loading local weights.

    :param name: a registered name (see :func:`list_backbones`) or ``"timm/<model>"``.
    :param pretrained: path to a local ``.pth``/``.pt``/``.safetensors`` state dict, or None.
    :param width_mult: channel multiplier; None keeps the backbone's default.
    :raises KeyError: for an unknown name, listing the registered names.
    :raises TypeError: when the backbone does not take one of the given arguments.
    """
    if width_mult is not None:
        kwargs["width_mult"] = width_mult
    check_backbone_name(name)
    if name.startswith(_TIMM_PREFIX):
        import timm

        model = timm.create_model(
            name.removeprefix(_TIMM_PREFIX),
            pretrained=False,
            num_classes=0,
            global_pool="",
            **kwargs,
        )
        backbone: Backbone = _TimmFeatures(model)
    else:
        builder = _REGISTRY.get(name)
        unknown = sorted(kwargs.keys() - backbone_arguments(name))
        if unknown:
            raise TypeError(f"backbone {name!r} takes no argument(s) {unknown}")
        backbone = builder(**kwargs)
    if pretrained is not None:
        load_pretrained(backbone, pretrained)
    return backbone


def load_pretrained(backbone: Backbone, path: str | Path) -> None:
    """Load a torchvision- or timm-style state dict from a local file into ``backbone``.

    Classifier-head keys the backbone lacks are dropped; any other mismatch raises. A DDP
    ``module.`` prefix and a ``state_dict`` / ``model`` wrapper are removed first.

    :param path: ``.safetensors`` or a ``torch.save`` file (read with ``weights_only=True``).
    :raises PretrainedWeightsError: listing the missing / unexpected keys or the shape mismatch.
    """
    path = Path(path)
    if not path.is_file():
        raise PretrainedWeightsError(path, "no such file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state: Any = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    for wrapper in ("state_dict", "model"):
        if isinstance(state, Mapping) and isinstance(state.get(wrapper), Mapping):
            state = state[wrapper]
    if not isinstance(state, Mapping):
        raise PretrainedWeightsError(path, f"expected a state dict, found {type(state).__name__}")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    target = backbone.weights_module
    own = target.state_dict().keys()
    state = {k: v for k, v in state.items() if k in own or not k.startswith(_HEAD_PREFIXES)}
    missing = sorted(own - state.keys())
    unexpected = sorted(state.keys() - own)
    if missing or unexpected:
        raise PretrainedWeightsError(
            path, f"keys do not match the backbone: missing={missing} unexpected={unexpected}"
        )
    try:
        target.load_state_dict(state, strict=True)
    except RuntimeError as err:  # shape mismatches
        raise PretrainedWeightsError(path, str(err)) from err


# torchvision backbones: the classifier is dropped, parameter names are kept.


class _SequentialFeatures(Backbone):
    """MobileNet / EfficientNet: the feature map is ``model.features(x)``."""

    def __init__(self, features: nn.Module, num_features: int) -> None:
        super().__init__()
        self.features = features
        self.num_features = num_features

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def _torchvision_features(model: nn.Module) -> Backbone:
    """A torchvision MobileNet/EfficientNet without its classifier (width: its first Linear's)."""
    width = next(m for m in model.classifier if isinstance(m, nn.Linear)).in_features
    return _SequentialFeatures(model.features, width)


class _ResNetFeatures(Backbone):
    """torchvision ResNet without ``avgpool``/``fc``; names match ``torchvision.models.resnet*``."""

    _PARTS = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")

    def __init__(self, model: tvm.ResNet) -> None:
        super().__init__()
        for name in self._PARTS:
            self.add_module(name, getattr(model, name))
        self.num_features = model.fc.in_features

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        for name in self._PARTS:
            x = self.get_submodule(name)(x)
        return x


def _scalable(build: Callable[..., nn.Module], wrap, width_mult: float = 1.0) -> Backbone:
    return wrap(build(weights=None, width_mult=width_mult))


def _fixed(build: Callable[..., nn.Module], wrap) -> Backbone:
    return wrap(build(weights=None))


# name -> (builder, wrapper)
_TORCHVISION = {
    "mobilenet_v2": (_scalable, _torchvision_features),
    "mobilenet_v3_small": (_scalable, _torchvision_features),
    "mobilenet_v3_large": (_scalable, _torchvision_features),
    "efficientnet_b0": (_fixed, _torchvision_features),
    "resnet18": (_fixed, _ResNetFeatures),
    "resnet34": (_fixed, _ResNetFeatures),
    "resnet50": (_fixed, _ResNetFeatures),
}
for _name, (_builder, _wrap) in _TORCHVISION.items():
    # partial binds the constructor: the signature create_backbone checks is the builder's rest
    _REGISTRY.add(_name, functools.partial(_builder, getattr(tvm, _name), _wrap))


# Small CPU-friendly backbones for the tiny config and for tests.


def _scaled(widths: Sequence[int], width_mult: float) -> list[int]:
    return [max(1, round(w * width_mult)) for w in widths]


def _conv_bn_relu(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


@register_backbone("tiny_cnn")
class TinyCNN(_SequentialFeatures):
    """A stack of 3x3 conv-BN-ReLU blocks of ``widths`` (times ``width_mult``) output channels
    and ``strides``."""

    def __init__(
        self,
        widths: Sequence[int] = (8, 16, 32),
        strides: Sequence[int] = (2, 2, 2),
        width_mult: float = 1.0,
    ) -> None:
        if len(widths) != len(strides) or not widths:
            raise ValueError(
                f"widths {widths} and strides {strides} must be non-empty, same length"
            )
        chans = [3, *_scaled(widths, width_mult)]
        blocks = (_conv_bn_relu(chans[i], chans[i + 1], s) for i, s in enumerate(strides))
        super().__init__(nn.Sequential(*blocks), chans[-1])


@register_backbone("tiny_resnet")
class TinyResNet(Backbone):
    """A conv stem followed by one torchvision ``BasicBlock`` per stage; ``widths`` (times
    ``width_mult``) and ``strides`` are the stem's, then each stage's."""

    def __init__(
        self,
        widths: Sequence[int] = (8, 16, 32, 64),
        strides: Sequence[int] = (2, 1, 2, 2),
        width_mult: float = 1.0,
    ) -> None:
        super().__init__()
        if len(widths) != len(strides) or len(widths) < 2:
            raise ValueError(
                f"widths {widths} and strides {strides} need >= 2 entries, same length"
            )
        chans = _scaled(widths, width_mult)
        self.stem = _conv_bn_relu(3, chans[0], strides[0])
        blocks = []
        for c_in, c_out, stride in zip(chans[:-1], chans[1:], strides[1:], strict=True):
            down = None
            if stride != 1 or c_in != c_out:
                down = nn.Sequential(
                    nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
                )
            blocks.append(self.make_block(c_in, c_out, stride, down))
        self.stages = nn.Sequential(*blocks)
        self.num_features = chans[-1]

    def make_block(
        self, c_in: int, c_out: int, stride: int, downsample: nn.Module | None
    ) -> nn.Module:
        """One stage's residual block; variants (``tiny_resnet_scconv``) override it."""
        return BasicBlock(c_in, c_out, stride=stride, downsample=downsample)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))


# timm, when installed: "timm/<name>".


class _TimmFeatures(Backbone):
    """A timm model without classifier or pooling; weights load into the wrapped model."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.num_features = int(model.num_features)

    @property
    def weights_module(self) -> nn.Module:
        return self.model

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model.forward_features(x)
        if out.ndim != 4:  # token models (ViT) give [N, L, C], not a spatial map
            raise ValueError(
                f"timm model {type(self.model).__name__} returns features of shape "
                f"{tuple(out.shape)}; only models with [N, C, h, w] feature maps are supported"
            )
        return out
