"""Layer 1: architectures and search spaces. Does not import torch."""

from mnas.space.arch import ACTIVATIONS, Arch, as_arch, decode_arch, encode_arch
from mnas.space.base import Decision, SearchSpace
from mnas.space.blocks import OPS, SKIPS, BlockSpec, decode_block, encode_block
from mnas.space.cells import DARTS_V1, DARTS_V2, CellOp, DartsGenotype, DartsSpace, NB201Cell, NB201Space
from mnas.space.family import ArchFamily, families, family_of, get_family, is_architecture, parse_arch, register_family
from mnas.space.layerwise import DEFAULT_LAYER_OPS, LayerwiseSpace, parse_layer_op
from mnas.space.mnasnet import MOBILENETV2_STAGES, MnasNetSpace, auto_strides
from mnas.space.zoo import ZOO, ZOO_LISTING, adapt_strides, get_arch, is_zoo_name, scale_arch

__all__ = [
    "ACTIVATIONS", "MOBILENETV2_STAGES", "OPS", "adapt_strides", "SKIPS", "ZOO", "ZOO_LISTING", "Arch", "BlockSpec",
    "Decision", "MnasNetSpace", "SearchSpace", "as_arch", "auto_strides", "decode_arch", "decode_block",
    "encode_arch", "encode_block", "get_arch", "is_zoo_name", "scale_arch",
    "DEFAULT_LAYER_OPS", "LayerwiseSpace", "parse_layer_op",
    "ArchFamily", "CellOp", "DARTS_V1", "DARTS_V2", "DartsGenotype", "DartsSpace", "NB201Cell", "NB201Space", "families",
    "family_of", "get_family", "is_architecture", "parse_arch", "register_family",
]
