"""`NB201Space` and `DartsSpace`: tokens to cells and back, settings, validation, and every strategy
searching them (the strategies' shared contract tests re-run with these spaces, plus a search)."""

import importlib.util
import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from mnas.space import DARTS_V1, DARTS_V2, DartsSpace, NB201Space, as_arch, parse_arch
from mnas.strategies import STRATEGIES, SyntheticObjective, get_strategy

_CONTRACT = Path(__file__).resolve().parents[1] / "strategies" / "test_contract.py"
_spec = importlib.util.spec_from_file_location("_strategy_contract_for_cells", _CONTRACT)
contract = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(contract)
contract.FAST = defaultdict(dict, contract.FAST)  # a strategy without fast settings runs with its defaults

# The contract's tests that take a space, run again with the cell spaces. Only the strategies with a
# fast-settings entry in the contract (the first four at least); the search test below runs every one.
CONTRACT_NAMES = [n for n in STRATEGIES if n in ("ppo", "reinforce", "evolution", "random")]


@pytest.mark.parametrize("name", CONTRACT_NAMES)
def test_contract_ask_returns_valid_sequences(name, tiny, mnasnet_space):
    contract.test_ask_returns_valid_sequences(name, tiny, mnasnet_space)


@pytest.mark.parametrize("name", CONTRACT_NAMES)
def test_contract_same_seed_same_search(name, tiny, mnasnet_space):
    contract.test_same_seed_same_search_and_different_seeds_differ(name, tiny, mnasnet_space)


@pytest.mark.parametrize("name", CONTRACT_NAMES)
def test_contract_state_dict_round_trip(name, mnasnet_space):
    contract.test_state_dict_round_trip_continues_identically(name, mnasnet_space)


@pytest.fixture(params=["nb201", "darts"])
def cell_space(request):
    return NB201Space() if request.param == "nb201" else DartsSpace()


@pytest.fixture
def tiny(cell_space):
    return cell_space


@pytest.fixture
def mnasnet_space(cell_space):
    return cell_space


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    pass


# The Gaussian-process strategy takes ~18 s on the 24-decision DARTS space here: slow-marked.
ALL_NAMES = [pytest.param(n, marks=pytest.mark.slow) if n == "gp" else n for n in STRATEGIES]


@pytest.mark.parametrize("name", ALL_NAMES)
def test_every_strategy_searches_the_cell_spaces(name, cell_space):
    objective = SyntheticObjective(cell_space, seed=1)
    strategy = get_strategy(name, cell_space, 0, **contract.FAST[name])
    seen = set()
    for _ in range(4):
        tokens = strategy.ask(3)
        for t in tokens:
            arch = cell_space.decode(t)
            assert cell_space.decode(cell_space.encode(arch)) == arch
            assert as_arch(str(arch)) == arch
            seen.add(str(arch))
        results = [objective.evaluate(t) for t in tokens]
        strategy.tell(tokens, [r["reward"] for r in results],
                      infos=[{"accuracy": r["accuracy"], "latency_ms": r["latency_ms"]} for r in results])
    assert len(seen) > 1


def test_nb201_space():
    space = NB201Space()
    assert space.size == 5 ** 6 and len(space.decisions) == 6
    assert [d.name for d in space.decisions] == ["node1_from0", "node2_from0", "node2_from1", "node3_from0",
                                                 "node3_from1", "node3_from2"]
    best = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    tokens = space.encode(parse_arch(best))
    assert tokens == [3, 3, 3, 1, 3, 3] and str(space.decode(tokens)) == best
    assert NB201Space(**json.loads(json.dumps(space.settings()))).settings() == space.settings()
    small = NB201Space(channels=8, cells_per_stage=1, ops=("skip_connect", "nor_conv_3x3"))
    assert small.size == 64 and str(small.decode([1] * 6)).endswith(" | c8_n1")
    with pytest.raises(ValueError, match="not in this space"):
        small.encode(parse_arch(best))
    with pytest.raises(ValueError, match="not among"):
        NB201Space(ops=("skip_connect", "nor_conv_3x3")).encode(parse_arch(best.replace("skip_connect", "none")))


def test_darts_space():
    space = DartsSpace()
    assert len(space.decisions) == 24 and math.isclose(space.size, (3 * 6 * 10 * 7 ** 8) ** 2)
    g = space.sample(np.random.default_rng(0))
    assert g.normal_concat == g.reduce_concat == (2, 3, 4, 5) and not g.auxiliary and g.channels == 16
    assert all(op != "none" for op, _ in g.normal + g.reduce)
    for cell in (g.normal, g.reduce):
        for k in range(4):
            (_, a), (_, b) = cell[2 * k:2 * k + 2]
            assert a < b < k + 2  # two different inputs per node, in order
    assert space.decode(space.encode(g)) == g
    assert DartsSpace(**json.loads(json.dumps(space.settings()))).settings() == space.settings()


def test_darts_space_encodes_the_published_cells():
    paper = DartsSpace(channels=36, layers=20, auxiliary=True, drop_path=0.2)
    for g in (DARTS_V1, DARTS_V2):
        back = paper.decode(paper.encode(g))
        # Same network: each node's two edges come back in input order (both list some the other way).
        for cell in ("normal", "reduce"):
            ours, theirs = getattr(back, cell), getattr(g, cell)
            assert [sorted(ours[i:i + 2], key=lambda e: e[1]) for i in range(0, 8, 2)] == \
                   [sorted(theirs[i:i + 2], key=lambda e: e[1]) for i in range(0, 8, 2)]
    assert paper.decode(paper.encode(DARTS_V2)) != DARTS_V2  # V2's normal node 2 reads state 1, then 0
    with pytest.raises(ValueError, match="settings"):
        DartsSpace().encode(DARTS_V2)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"input_size": 30}, "multiple of 4"), ({"num_classes": 1}, "num_classes"), ({"ops": ("sep_conv_7x7",)}, "sep_conv_7x7"),
    ({"ops": ("skip_connect", "skip_connect")}, "twice"), ({"auxiliary": True, "input_size": 16}, "auxiliary"),
    ({"steps": 0}, "steps"), ({"channels": 0}, "channels"), ({"drop_path": 1.0}, "drop_path"),
])
def test_darts_space_validates(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DartsSpace(**kwargs)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"input_size": 6}, "multiple of 4"), ({"ops": ()}, "unknown op"), ({"channels": -1}, "channels"),
])
def test_nb201_space_validates(kwargs, message):
    with pytest.raises(ValueError, match=message):
        NB201Space(**kwargs)


def test_darts_space_refuses_a_node_reading_one_state_twice():
    g = DARTS_V2.replace(channels=16, layers=8, auxiliary=False, drop_path=0.0)
    twice = g.replace(normal=(("sep_conv_3x3", 0), ("sep_conv_3x3", 0)) + g.normal[2:])
    with pytest.raises(ValueError, match="twice"):
        DartsSpace().encode(twice)
