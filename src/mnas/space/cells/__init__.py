"""Cell families and their search spaces: the DARTS cell and the NAS-Bench-201 cell. Torch-free.

Importing this package registers both families with `mnas.space.family` (it is imported by
`mnas.space`, so the families are known wherever an architecture is parsed).
"""

from mnas.space.cells.darts import DARTS_OPS, DARTS_V1, DARTS_V2, DartsFamily, DartsGenotype, parse_genotype
from mnas.space.cells.nb201 import NB201_OPS, NB201Cell, NB201Family, parse_nb201
from mnas.space.cells.spaces import DartsSpace, NB201Space
from mnas.space.cells.units import CellOp
from mnas.space.family import register_family

DARTS = register_family(DartsFamily())
NB201 = register_family(NB201Family())

__all__ = ["DARTS", "DARTS_OPS", "DARTS_V1", "DARTS_V2", "NB201", "NB201_OPS", "CellOp", "DartsFamily", "DartsGenotype",
           "DartsSpace", "NB201Cell", "NB201Family", "NB201Space", "parse_genotype", "parse_nb201"]
