"""Which sub-networks a supernet trains on: uniform, stratified by predicted latency, or fair
(FairNAS: a step's sub-networks drawn together so that each choice of each decision is drawn
equally often; see `FairSampler`).

Uniform samples of a factorized space pile up in the middle of its latency range (a sum of many
independent choices), so the fastest and slowest sub-networks are rarely trained. The stratified
sampler splits [latency(smallest), latency(largest)] into `bands` bands of equal width, picks a
band uniformly, then draws uniform architectures until one falls in it — at most `tries` draws.
Uniform draws almost never reach the outer bands (on the MnasNet space at width 0.25 with 5 MACs
bands, 4% and 0% of the draws asked for the two largest landed there), so after them the sampler
walks from the nearest draw, one decision at a time, keeping a change when it brings the prediction
closer to the band, for at most `walk` changes; the closest architecture found is taken (bounded,
never a `while True`). `describe()` reports how often each band was hit by a draw and in all.

The predictor is any `arch -> number`: a `mnas.latency.LookupTable` (its `predict`), a latency
backend, or `estimate_macs` (the default: analytic MACs, free and exact for the block chain).
Every draw comes from a generator the caller passes, seeded per step by the trainer, so all
ranks of a distributed run and a resumed run sample the same sub-networks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from mnas.models.profile import arch_profile
from mnas.space import Arch, SearchSpace

__all__ = ["FairSampler", "StratifiedSampler", "UniformSampler", "estimate_macs", "make_predictor"]


def estimate_macs(arch: Arch, input_size: int, num_classes: int, in_chans: int = 3) -> int:
    """Multiply-accumulates of `arch` as `mnas.models.count_macs` counts them, without building it
    (`mnas.models.profile.arch_profile`, which covers every layer type, `proj` included)."""
    return arch_profile(arch, input_size, num_classes, in_chans).macs


def make_predictor(space: SearchSpace, latency: Any = None, in_chans: int = 3) -> Callable[[Arch], float]:
    """`arch -> float` for stratification: `latency` if given (a callable, a LookupTable, or a latency
    backend measured at the space's input size), else analytic MACs."""
    size = int(getattr(space, "input_size", 224))
    classes = int(getattr(space, "num_classes", 1000))
    if latency is None:
        return lambda arch: float(estimate_macs(arch, size, classes, in_chans))
    if hasattr(latency, "predict"):
        return lambda arch: float(latency.predict(arch))
    if hasattr(latency, "measure"):
        return lambda arch: float(latency.measure(arch, size, classes, in_chans=in_chans).median_ms)
    if callable(latency):
        return lambda arch: float(latency(arch))
    raise ValueError(f"latency predictor {type(latency).__name__}: expected a LookupTable, a latency backend or a callable")


class UniformSampler:
    """Uniform over the space's tokens."""

    def __init__(self, space: SearchSpace):
        self.space = space

    def sample(self, rng: np.random.Generator) -> Arch:
        return self.space.sample(rng)

    def describe(self) -> dict[str, Any]:
        return {"kind": "uniform"}


class FairSampler:
    """FairNAS's strict fairness (Chu et al., ICCV 2021) over the drawn tokens: the sub-networks of one
    step are drawn together so that, at every decision, each choice is drawn equally often — with as
    many sub-networks as a decision has choices, each exactly once (3 paths a step over {skip, k3e3,
    k5e6}) — where the sandwich rule adds the largest and the smallest network every step.
    `sample_group(rng, n)`: tokens of decision i are consecutive random permutations of its choices,
    cut at n (a decision with more choices than n takes n distinct ones).

    What it balances is how often each op *configuration* runs, not the weights' updates: ops that
    share a super-kernel (k3e3 is the centre and channel prefix of k5e6 in the MBConv family) share
    updates whichever of them runs. And the supernet trains a network's canonical form
    (`LayerwiseSpace.encode`: kept layers first, identity skips last in a stage), so where a stage
    mixes skips and ops the positions' shares move: on NAS-Bench-Macro's space with 3 paths a step,
    positions 3 and 6 run skip / k3e3 / k5e6 about 0.11 / 0.44 / 0.45 of the time and positions 4 and
    7 about 0.56 / 0.22 / 0.22 — k3e3 and k5e6 stay balanced at every position, which is what the
    sampler was built to test (docs/design/nbmacro.md)."""

    def __init__(self, space: SearchSpace):
        self.space = space

    def sample(self, rng: np.random.Generator) -> Arch:
        return self.space.sample(rng)

    def group_tokens(self, rng: np.random.Generator, n: int) -> list[list[int]]:
        if n < 1:
            return []
        columns = []
        for d in self.space.decisions:
            k = len(d.choices)
            perms = np.concatenate([rng.permutation(k) for _ in range(-(-n // k))])
            columns.append(perms[:n])
        return [[int(c[i]) for c in columns] for i in range(n)]

    def sample_group(self, rng: np.random.Generator, n: int) -> list[Arch]:
        return [self.space.decode(t) for t in self.group_tokens(rng, n)]

    def describe(self) -> dict[str, Any]:
        return {"kind": "fair"}


class StratifiedSampler:
    """Band uniformly, then an architecture in the band by bounded rejection (see the module doc)."""

    def __init__(self, space: SearchSpace, predictor: Callable[[Arch], float], low: float, high: float,
                 bands: int = 5, tries: int = 30, walk: int | None = None):
        if bands < 1 or tries < 1:
            raise ValueError(f"bands={bands}, tries={tries}: expected positive integers")
        walk = 20 * len(space.decisions) if walk is None else walk
        if isinstance(walk, bool) or not isinstance(walk, int) or walk < 0:
            raise ValueError(f"walk={walk!r}: expected a number of single-decision changes >= 0")
        if not high > low:
            raise ValueError(f"latency range [{low}, {high}] is empty: the predictor ranks the largest sub-network"
                             " no slower than the smallest")
        self.space, self.predictor, self.low, self.high = space, predictor, float(low), float(high)
        self.bands, self.tries, self.walk = int(bands), int(tries), walk
        self.edges = np.linspace(self.low, self.high, self.bands + 1)
        self.hits = np.zeros(self.bands, dtype=np.int64)  # samples in the band asked for, drawn or walked
        self.drawn = np.zeros(self.bands, dtype=np.int64)  # of those, found by a uniform draw
        self.asked = np.zeros(self.bands, dtype=np.int64)

    @classmethod
    def for_space(cls, space: SearchSpace, smallest: Arch, largest: Arch, latency: Any = None, in_chans: int = 3,
                  bands: int = 5, tries: int = 30) -> StratifiedSampler:
        predictor = make_predictor(space, latency, in_chans)
        return cls(space, predictor, predictor(smallest), predictor(largest), bands, tries)

    def band_of(self, value: float) -> int:
        return int(np.clip(np.searchsorted(self.edges, value, side="right") - 1, 0, self.bands - 1))

    def sample(self, rng: np.random.Generator) -> Arch:
        band = int(rng.integers(self.bands))
        lo, hi = self.edges[band], self.edges[band + 1]
        self.asked[band] += 1

        def gap(value: float) -> float:  # 0 inside the band
            return max(lo - value, value - hi, 0.0)

        best, best_arch, best_gap = None, None, np.inf
        for _ in range(self.tries):
            tokens = self.space.sample_tokens(rng)
            arch = self.space.decode(tokens)
            g = gap(self.predictor(arch))
            if g == 0:
                self.hits[band] += 1
                self.drawn[band] += 1
                return arch
            if g < best_gap:
                best, best_arch, best_gap = tokens, arch, g
        for _ in range(self.walk):
            tokens = self.space.mutate_tokens(best, rng)
            arch = self.space.decode(tokens)
            g = gap(self.predictor(arch))
            if g < best_gap:
                best, best_arch, best_gap = tokens, arch, g
                if g == 0:
                    self.hits[band] += 1
                    break
        return best_arch

    def describe(self) -> dict[str, Any]:
        def rates(counts: np.ndarray) -> list[float | None]:
            return [float(h / a) if a else None for h, a in zip(counts, self.asked, strict=True)]

        return {"kind": "stratified", "bands": self.bands, "tries": self.tries, "walk": self.walk, "low": self.low,
                "high": self.high, "hit_rate": rates(self.hits), "draw_hit_rate": rates(self.drawn)}
