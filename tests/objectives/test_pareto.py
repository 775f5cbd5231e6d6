import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mnas.objectives import dominates, pareto_front


def brute_force(points):
    return {i for i, p in enumerate(points) if not any(dominates(q, p) for q in points)}


def test_small_example_with_ties_and_duplicates():
    pts = [(0.7, 10), (0.7, 10), (0.8, 20), (0.75, 20), (0.6, 5), (0.8, 30), (0.6, 10), (0.7, 12)]
    # (0.75, 20) loses to (0.8, 20); (0.8, 30) to (0.8, 20); (0.6, 10) and (0.7, 12) to (0.7, 10).
    assert pareto_front(pts) == [4, 0, 1, 2]


def test_empty_and_single():
    assert pareto_front([]) == []
    assert pareto_front([(0.5, 3.0)]) == [0]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(1, 6)), max_size=40))
def test_matches_brute_force_and_is_ordered_along_the_front(points):
    pts = [(a / 6, float(lat)) for a, lat in points]
    front = pareto_front(pts)
    assert set(front) == brute_force(pts)
    assert len(front) == len(set(front))
    keys = [(pts[i][1], pts[i][0], i) for i in front]
    assert keys == sorted(keys)


@pytest.mark.parametrize("bad", [[(0.5,)], [(0.5, 1, 2)], [("a", 1)], [None], [(math.nan, 1)], [(0.5, math.inf)]])
def test_bad_points(bad):
    with pytest.raises(ValueError, match="point 0"):
        pareto_front(bad)
