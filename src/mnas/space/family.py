"""Architecture families: what every layer above `mnas.models` needs from an architecture.

A family is a kind of network with

- a canonical text form, the architecture's identity everywhere (study key, cache key, what a user
  copies into a paper): ``str(arch)``; equality and hashing follow it;
- a parser, `family.parse(text)`, that refuses bad text with one `ValueError` naming the token;
- a JSON form, ``arch.to_dict()`` / `family.from_dict(data)`;
- a builder, ``build(arch, num_classes, in_chans) -> nn.Module`` (registered in `mnas.models.family`,
  or a `build` method on the family for a user's own);
- optionally, analytic counts (`family.count`) and the list of ops with their input shapes
  (`family.layer_signatures`) that a per-op latency table is built from.

Built in: the block chain (``blocks``, `mnas.space.Arch`, text as it always was), the DARTS cell
(``darts``, text ``Genotype(normal=[...], ...)``) and the NAS-Bench-201 cell (``nb201``, text
``|nor_conv_3x3~0|+|...|``). `parse_arch(text)` asks each family whether the text is its own
(`matches`), most recently registered first, and falls back to the block chain, so every block
string and every existing study reads as before. Torch-free.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mnas.space.arch import Arch, decode_arch

__all__ = ["ArchFamily", "BlockChainFamily", "arch_from_dict", "families", "family_of", "get_family", "is_architecture",
           "parse_arch", "register_family"]


class ArchFamily:
    """Base class of a family. Subclasses set `name` and `arch_type` and implement `matches`, `parse`.

    Contract: `parse(str(a)) == a` for every architecture `a` of the family, and `str(parse(t))` is
    the same text for every accepted spelling `t` of one network (the canonical form); `parse`
    raises only `ValueError`, whose message names the offending token; `matches` is cheap, never
    raises, and is true only for text this family should parse (it may then still refuse it);
    architectures are immutable and hashable, compare equal exactly when their texts do, and
    survive ``from_dict(a.to_dict())``.
    """

    name: str = ""
    arch_type: type | None = None

    def matches(self, text: str) -> bool:
        raise NotImplementedError

    def parse(self, text: str) -> Any:
        raise NotImplementedError

    def from_dict(self, data: Mapping[str, Any]) -> Any:
        """The architecture from its JSON dict (``arch.to_dict()``); by default from its ``arch`` text."""
        text = data.get("arch") if isinstance(data, Mapping) else None
        if not isinstance(text, str):
            raise ValueError(f"a {self.name} architecture in JSON needs its text under 'arch'")
        return self.parse(text)

    def count(self, arch: Any, num_classes: int, in_chans: int = 3, input_size: int = 32) -> tuple[int, int]:
        """(parameters, MACs) of `build(arch, num_classes, in_chans)` at `input_size`, without torch.
        MACs follow `mnas.models.count_macs` (FlopCounterMode / 2, eval mode)."""
        raise NotImplementedError(f"family {self.name!r} does not count parameters analytically")

    def layer_signatures(self, arch: Any, input_size: int, num_classes: int, in_chans: int = 3) -> list:
        """Every op of the built network with its input shape (the units of a per-op latency table)."""
        raise NotImplementedError(f"family {self.name!r} does not list its ops")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class BlockChainFamily(ArchFamily):
    """The MnasNet-style chain of blocks (`mnas.space.Arch`); its text is the block-string form."""

    name = "blocks"
    arch_type = Arch

    def matches(self, text: str) -> bool:
        return True  # the fallback: whatever no other family claims is read as block strings

    def parse(self, text: str) -> Arch:
        return decode_arch(text)

    def from_dict(self, data: Mapping[str, Any]) -> Arch:
        return Arch.from_dict(dict(data))


_BLOCKS = BlockChainFamily()
_FAMILIES: dict[str, ArchFamily] = {}


def register_family(family: ArchFamily, *, replace: bool = False) -> ArchFamily:
    """Make `family` known to `parse_arch`, `as_arch` and `build_model`; returns it.

    A second family of the same name is refused unless ``replace=True`` (re-registering the same
    object is a no-op, so a module may register on import)."""
    if not isinstance(family, ArchFamily):
        raise ValueError(f"register_family expects an ArchFamily, got {type(family).__name__}")
    name = family.name
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"family name {name!r}: expected a short identifier such as 'my_cells'")
    if name == _BLOCKS.name:
        raise ValueError(f"family name {name!r} is the block chain's: choose another")
    if family.arch_type is None:
        raise ValueError(f"family {name!r} has no arch_type: set it to the class of its architectures")
    old = _FAMILIES.get(name)
    if old is not None and old is not family and not replace:
        raise ValueError(f"a family named {name!r} is already registered ({old!r}): pass replace=True to replace it")
    _FAMILIES.pop(name, None)
    _FAMILIES[name] = family  # re-insert: the newest family is asked first
    return family


def _ensure_builtins() -> None:
    # The cell families register themselves on import; importing here keeps `mnas.space` import-order free.
    import mnas.space.cells  # noqa: F401


def families() -> tuple[str, ...]:
    """Names of the known families, the block chain first."""
    _ensure_builtins()
    return (_BLOCKS.name, *_FAMILIES)


def get_family(name: str) -> ArchFamily:
    """The family registered as `name`; ValueError listing the known ones otherwise."""
    _ensure_builtins()
    if name == _BLOCKS.name:
        return _BLOCKS
    try:
        return _FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown architecture family {name!r}: expected one of {', '.join(families())}") from None


def family_of(arch: Any) -> ArchFamily:
    """The family an architecture object belongs to (by its class)."""
    _ensure_builtins()
    if isinstance(arch, Arch):
        return _BLOCKS
    for family in reversed(_FAMILIES.values()):
        if isinstance(arch, family.arch_type):
            return family
    raise ValueError(f"{type(arch).__name__} is not an architecture of any registered family ({', '.join(families())})")


def is_architecture(value: Any) -> bool:
    """Whether `value` is an architecture object of a registered family."""
    try:
        family_of(value)
    except ValueError:
        return False
    return True


def parse_arch(text: str) -> Any:
    """Parse an architecture's text with the family whose form it is (the block chain by default)."""
    if not isinstance(text, str):
        raise ValueError(f"an architecture string must be text, got {type(text).__name__}")
    _ensure_builtins()
    for family in reversed(_FAMILIES.values()):
        if family.matches(text):
            return family.parse(text)
    return _BLOCKS.parse(text)


def arch_from_dict(data: Mapping[str, Any]) -> Any:
    """An architecture from JSON: ``{"family": name, ...}``, or a block chain's dict (no 'family' key)."""
    name = data.get("family", _BLOCKS.name) if isinstance(data, Mapping) else _BLOCKS.name
    if not isinstance(data, Mapping):
        return _BLOCKS.from_dict(data)  # Arch.from_dict says what is wrong
    if not isinstance(name, str):
        raise ValueError(f"'family' in architecture JSON must be a name, got {name!r}")
    family = get_family(name)
    if family is _BLOCKS:
        return _BLOCKS.from_dict({k: v for k, v in data.items() if k != "family"})
    return family.from_dict(data)
