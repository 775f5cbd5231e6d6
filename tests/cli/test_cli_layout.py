"""Issue 21 item 7: the command line's modules import each other in one direction only, and what
`mnas search` prints at the end tells a front's trials apart (item 6)."""

from __future__ import annotations

import ast
from pathlib import Path

import mnas

SRC = Path(mnas.__file__).parent


def _imports(package: str) -> dict[str, set[str]]:
    """module -> the modules of `package` it imports, lazy (function-level) imports included."""
    folder = SRC / package.split(".", 1)[1].replace(".", "/")
    graph: dict[str, set[str]] = {}
    for path in folder.glob("*.py"):
        name = f"{package}.{path.stem}" if path.stem != "__init__" else package
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                deps.add(node.module)
                deps.update(f"{node.module}.{a.name}" for a in node.names)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names)
        graph[name] = deps
    return {m: {d for d in deps if d in graph and d not in (m, package)} for m, deps in graph.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(v: str) -> list[str] | None:
        state[v] = 1
        stack.append(v)
        for w in sorted(graph[v]):
            if state.get(w) == 1:
                return stack[stack.index(w):] + [w]
            if w not in state and (found := visit(w)):
                return found
        stack.pop()
        state[v] = 2
        return None

    for v in sorted(graph):
        if v not in state and (found := visit(v)):
            return found
    return None


def test_no_import_circle_between_cli_modules():
    # before: mnas.cli._gradient imported _report/_device_error from mnas.cli.search_cmd, which imports _gradient
    assert _cycle(_imports("mnas.cli")) is None, " -> ".join(_cycle(_imports("mnas.cli")) or [])


def test_pareto_table_tells_two_accuracies_apart(capsys):
    from mnas.cli._report import distinct_decimals, report_study
    from mnas.loop import create_study
    from mnas.objectives import Reward
    from mnas.space import MnasNetSpace

    assert distinct_decimals([22.875, 22.92], least=1) == 2 and distinct_decimals([91.2, 80.0], least=1) == 1
    assert distinct_decimals([1.0, 1.0], least=3) == 3
    space = MnasNetSpace(10, 224)
    study = create_study(None, space=space, reward=Reward.soft(20))
    for i, (acc, lat) in enumerate(((0.22875, 10.0), (0.2292, 11.0))):
        n = study.storage.create_trial([0] * len(space.decisions), f"r1_k3_s11_e1_i32_o16 | s{i + 1}_h8_d0.0_relu")
        study.storage.complete_trial(n, acc, lat, acc)
    assert report_study(study, "x.db", 1.0, False) == 0
    out = capsys.readouterr().out
    assert "22.88%" in out and "22.92%" in out  # before: '22.9%' twice
