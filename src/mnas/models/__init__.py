"""Layer 2: layers, blocks and `build_model(arch)`, plus params and MACs (`profile`)."""

from mnas.models.blocks import make_layer
from mnas.models.builder import MnasNetModel, build_block, build_model
from mnas.models.family import register_builder
from mnas.models.layers import ConvBnAct, SqueezeExcite
from mnas.models.profile import Profile, count_macs, count_params, profile

__all__ = [
    "ConvBnAct", "MnasNetModel", "Profile", "SqueezeExcite", "build_block", "build_model",
    "count_macs", "count_params", "make_layer", "profile", "register_builder",
]
