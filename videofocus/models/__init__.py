"""Models of videofocus: backbones, encoders, croppers, the aggregator and FocusNet. They know
nothing of RL, data loading or config files: they take plain Python arguments."""

# imported for their registrations: the SCConv and SAR backbone families (issue 15)
from videofocus.models import sar, scconv  # noqa: F401
from videofocus.models.aggregator import Aggregator, AggregatorOutput
from videofocus.models.backbones import (
    Backbone,
    PretrainedWeightsError,
    create_backbone,
    list_backbones,
    load_pretrained,
    register_backbone,
)
from videofocus.models.cropper import DifferentiableCropper, PatchCropper
from videofocus.models.encoders import EncoderOutput, GlobalEncoder, LocalEncoder
from videofocus.models.focusnet import FocusNet, FocusOutput, GlanceOutput, create_focusnet
from videofocus.models.glimpse import (
    GlimpseOption,
    actions_to_glimpses,
    dense_actions,
    dense_option,
    grid_centres,
    normalised_extents,
    skip_actions,
)

__all__ = [
    "Aggregator",
    "AggregatorOutput",
    "Backbone",
    "DifferentiableCropper",
    "EncoderOutput",
    "FocusNet",
    "FocusOutput",
    "GlanceOutput",
    "GlimpseOption",
    "GlobalEncoder",
    "LocalEncoder",
    "PatchCropper",
    "PretrainedWeightsError",
    "actions_to_glimpses",
    "create_backbone",
    "create_focusnet",
    "dense_actions",
    "dense_option",
    "grid_centres",
    "list_backbones",
    "load_pretrained",
    "normalised_extents",
    "register_backbone",
    "skip_actions",
]
