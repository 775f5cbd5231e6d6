"""The Pareto front of (accuracy, latency): higher accuracy and lower latency are better; its hypervolume."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

__all__ = ["dominates", "hypervolume", "pareto_front"]


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """True when point `a` = (accuracy, latency_ms) is at least as good as `b` in both and better in one."""
    return a[0] >= b[0] and a[1] <= b[1] and (a[0] > b[0] or a[1] < b[1])


def pareto_front(points: Iterable[Sequence[float]]) -> list[int]:
    """Indices of the non-dominated points among (accuracy, latency_ms) pairs, in O(n log n).

    Ties: a point is dropped only if another is strictly better in one objective and no worse in the
    other, so exact duplicates on the front are all kept. The indices come ordered along the front,
    by increasing latency (and increasing accuracy), duplicates by index.
    """
    pts = []
    for i, p in enumerate(points):
        try:
            acc, lat = (float(v) for v in p)
        except (TypeError, ValueError):
            raise ValueError(f"point {i} = {p!r}: expected an (accuracy, latency_ms) pair of numbers") from None
        if not (math.isfinite(acc) and math.isfinite(lat)):
            raise ValueError(f"point {i} = {p!r}: accuracy and latency must be finite (leave failed trials out)")
        pts.append((acc, lat))
    # Fastest first; within equal latency, most accurate first, then by index for a stable order.
    order = sorted(range(len(pts)), key=lambda i: (pts[i][1], -pts[i][0], i))
    front: list[int] = []
    best_acc = -math.inf  # best accuracy among strictly faster points
    k = 0
    while k < len(order):
        lat = pts[order[k]][1]
        group_acc = pts[order[k]][0]  # the group's best accuracy (sorted first)
        j = k
        while j < len(order) and pts[order[j]][1] == lat:
            if pts[order[j]][0] == group_acc and group_acc > best_acc:
                front.append(order[j])
            j += 1
        best_acc = max(best_acc, group_acc)
        k = j
    return front


def hypervolume(points: Iterable[Sequence[float]], reference: Sequence[float]) -> float:
    """The area of (accuracy, latency_ms) space that the points dominate, bounded by `reference` =
    (lowest accuracy that counts, highest latency that counts): 0.0 when no point beats the reference.

    Larger is better; it grows when the front moves up (more accurate) or left (faster) or widens.
    Compare hypervolumes only at the same reference point.
    """
    try:
        acc_ref, lat_ref = (float(v) for v in reference)
    except (TypeError, ValueError):
        raise ValueError(f"reference={reference!r}: expected an (accuracy, latency_ms) pair of numbers") from None
    if not (math.isfinite(acc_ref) and math.isfinite(lat_ref)):
        raise ValueError(f"reference={reference!r}: expected finite numbers")
    pts = [(float(a), float(lat)) for a, lat in points]
    inside = [p for p in pts if p[0] > acc_ref and p[1] < lat_ref]
    front = [inside[i] for i in pareto_front(inside)]  # by increasing latency and accuracy
    area = 0.0
    for i, (acc, lat) in enumerate(front):
        next_lat = front[i + 1][1] if i + 1 < len(front) else lat_ref
        area += (next_lat - lat) * (acc - acc_ref)
    return area
