"""One builder per architecture family: `build(arch, num_classes, in_chans)` for any family.

Built in: the block chain (`mnas.models.build_model`), DARTS (`mnas.models.darts`) and
NAS-Bench-201 (`mnas.models.nb201`). A user's family either has a `build(arch, num_classes,
in_chans)` method or registers a builder here with `register_builder(name, fn)`. Every built
module carries ``arch_string`` (the architecture's canonical text), which export and reports read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from mnas.space.family import family_of, get_family

__all__ = ["build", "register_builder"]

Builder = Callable[[Any, int, int], nn.Module]
_BUILDERS: dict[str, Builder] = {}


def register_builder(family: str, builder: Builder, *, replace: bool = False) -> Builder:
    """Use `builder(arch, num_classes, in_chans) -> nn.Module` for the architectures of `family`."""
    get_family(family)  # the family must be registered first: a clear error names the known ones
    if not callable(builder):
        raise ValueError(f"the builder for {family!r} must be callable, got {type(builder).__name__}")
    if family in _BUILDERS and _BUILDERS[family] is not builder and not replace:
        raise ValueError(f"family {family!r} already has a builder: pass replace=True to replace it")
    _BUILDERS[family] = builder
    return builder


def _block_chain(arch: Any, num_classes: int, in_chans: int) -> nn.Module:
    from mnas.models.builder import build_model
    return build_model(arch, num_classes, in_chans)


def _darts(arch: Any, num_classes: int, in_chans: int) -> nn.Module:
    from mnas.models.darts import build_darts
    return build_darts(arch, num_classes, in_chans)


def _nb201(arch: Any, num_classes: int, in_chans: int) -> nn.Module:
    from mnas.models.nb201 import build_nb201
    return build_nb201(arch, num_classes, in_chans)


_BUILDERS.update(blocks=_block_chain, darts=_darts, nb201=_nb201)


def build(arch: Any, num_classes: int = 1000, in_chans: int = 3) -> nn.Module:
    """Build an architecture of any registered family (an object, not text: see `mnas.space.as_arch`)."""
    family = family_of(arch)
    builder = _BUILDERS.get(family.name) or getattr(family, "build", None)
    if builder is None:
        raise ValueError(f"family {family.name!r} has no builder: give it a build(arch, num_classes, in_chans) method"
                         " or call mnas.models.family.register_builder")
    model = builder(arch, num_classes, in_chans)
    if not isinstance(model, nn.Module):
        raise ValueError(f"the builder of family {family.name!r} returned {type(model).__name__}, expected an nn.Module")
    if not isinstance(getattr(model, "arch_string", None), str):
        model.arch_string = str(arch)
    return model
