"""Routes: which modules of each meta-graph layer an image uses, as plain integers and text.

A route holds one 5-bit mask per layer (bit m = module m of `MODULES` on). Its text is one
character per layer, ``0-9a-v`` (the mask in base 32), e.g. ``"vvvv..."`` for every module on.
A route is canonical when every shape-changing layer has a module on (the default, the basic
block, is written in where none was): one network, one text. Torch-free (the runner uses it).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["DEFAULT_MODULE", "MODULES", "canonical_route", "fixed_routes", "parse_route", "policy_bits",
           "route_modules", "route_string"]

MODULES = ("k3e6", "k3e3", "k5e6", "k5e3", "basic")
DEFAULT_MODULE = 4
_DIGITS = "0123456789abcdefghijklmnopqrstuv"
_FULL = (1 << len(MODULES)) - 1


def route_string(route: Sequence[int]) -> str:
    """The text of a route (one base-32 character per layer)."""
    try:
        return "".join(_DIGITS[int(b)] for b in route)
    except IndexError:
        raise ValueError(f"route {list(route)!r}: each layer's mask must be in 0..{_FULL}") from None


def parse_route(text: str, num_layers: int | None = None) -> tuple[int, ...]:
    """A route from its text; ValueError naming the bad character or the wrong length."""
    text = str(text).strip().lower()
    bad = next((c for c in text if c not in _DIGITS), None)
    if bad is not None or not text:
        raise ValueError(f"bad route {text[:40]!r}: expected one character 0-9 or a-v per layer"
                         + (f" (found {bad!r})" if bad else ""))
    if num_layers is not None and len(text) != num_layers:
        raise ValueError(f"route {text!r} has {len(text)} layers: the meta-graph has {num_layers}")
    return tuple(_DIGITS.index(c) for c in text)


def canonical_route(route: Sequence[int], skippable: Sequence[bool]) -> tuple[int, ...]:
    """`route` with the default module on wherever a shape-changing layer has none."""
    if len(route) != len(skippable):
        raise ValueError(f"route has {len(route)} layers: expected {len(skippable)}")
    return tuple(int(b) if (b or s) else 1 << DEFAULT_MODULE for b, s in zip(route, skippable, strict=True))


def policy_bits(policy: np.ndarray, skippable: Sequence[bool]) -> np.ndarray:
    """(B, L, 5) 0/1 policies -> (B, L) canonical masks (int64)."""
    policy = np.asarray(policy)
    if policy.ndim != 3 or policy.shape[1:] != (len(skippable), len(MODULES)):
        raise ValueError(f"policy of shape {policy.shape}: expected (B, {len(skippable)}, {len(MODULES)})")
    bits = ((policy > 0).astype(np.int64) << np.arange(len(MODULES))).sum(2)  # (B, L)
    fixed = ~np.asarray(skippable, dtype=bool)
    return np.where((bits == 0) & fixed[None, :], 1 << DEFAULT_MODULE, bits)


def route_modules(route: Sequence[int]) -> list[list[str]]:
    """Per layer, the names of the modules on."""
    return [[m for i, m in enumerate(MODULES) if int(b) >> i & 1] for b in route]


def fixed_routes(skippable: Sequence[bool]) -> dict[str, tuple[int, ...]]:
    """The single architectures a meta-graph holds that the front compares against: every module on
    (``all``), one module type everywhere (``k3e6`` is MobileNetV2's layer), and the smallest
    network (``min``: shape-keeping layers skipped, the default module elsewhere)."""
    n = len(skippable)
    routes = {"all": (_FULL,) * n}
    routes.update({name: (1 << i,) * n for i, name in enumerate(MODULES)})
    routes["min"] = canonical_route((0,) * n, skippable)
    return routes
