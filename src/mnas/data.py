"""Data sets for search and training: ``mnas.data.load("digits" | "cifar10" | path, ...)``.

The implementation lives in `mnas.train.data`; this module is the public name from the design.
"""

from mnas.train.data import Augment, Dataset, from_arrays, load, load_dataset

__all__ = ["Augment", "Dataset", "from_arrays", "load", "load_dataset"]
