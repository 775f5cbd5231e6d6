"""The report of a gradient search: the architecture weights over epochs, drawn and embedded only
when the study holds a gradient history."""

from __future__ import annotations

import pytest

from mnas.loop.api import create_study
from mnas.objectives import Reward
from mnas.space import NB201Space

pytest.importorskip("matplotlib")

from mnas.reports import write_report  # noqa: E402
from mnas.reports.plots import plot_alphas  # noqa: E402

LABELS = {"alpha": {"rows": ["1<-0", "2<-0", "2<-1", "3<-0", "3<-1", "3<-2"],
                    "choices": ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]}}


def _history(epochs: int = 3) -> dict:
    records = []
    for e in range(1, epochs + 1):
        row = [0.2 + 0.01 * e, 0.2, 0.2, 0.2, 0.2 - 0.01 * e]
        records.append({"epoch": e, "softmax": {"alpha": [row] * 6}, "entropy": 1.6, "arch": "|none~0|+..."})
    return {"strategy": "darts", "labels": LABELS, "epochs": records}


def _is_png(path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_alphas_draws_a_panel_per_edge_and_says_when_nothing_ran(tmp_path):
    path = plot_alphas(_history(), tmp_path / "a.png")
    assert _is_png(path) and path.stat().st_size > 5000
    empty = plot_alphas({"strategy": "gdas", "labels": LABELS, "epochs": []}, tmp_path / "e.png")
    assert _is_png(empty)
    decisions = {"strategy": "fbnet", "epochs": [{"epoch": 1, "softmax": {"decisions": [[0.5, 0.5], [0.2, 0.3, 0.5]]}}],
                 "labels": {"decisions": {"rows": ["b1_op", "b1_kernel"], "choices_per_row": [["a", "b"], ["3", "5", "7"]]}}}
    assert _is_png(plot_alphas(decisions, tmp_path / "d.png"))
    broken = {"epochs": [{"epoch": 1, "softmax": {"alpha": [[0.5, 0.5]]}}, {"epoch": 2, "softmax": {"alpha": [[1.0]]}}]}
    assert _is_png(plot_alphas(broken, tmp_path / "b.png"))  # a short row is a gap, not a crash


def _study(tmp_path, gradient: dict | None):
    space = NB201Space(4, 8, channels=4, cells_per_stage=1)
    study = create_study(tmp_path / "s.db", space=space, reward=Reward.accuracy())
    arch = space.decode([1] * 6)
    number = study.storage.create_trial(space.encode(arch), str(arch))
    study.storage.complete_trial(number, 0.5, 1.0, 0.5, extra={"accuracy_source": "darts", "derived": True})
    if gradient is not None:
        study.storage.set_meta("gradient_history", gradient)
    return study


def test_write_report_embeds_the_alphas_of_a_gradient_study_only(tmp_path):
    with _study(tmp_path / "g", _history()) as study:
        info = write_report(study, tmp_path / "g" / "rep")
    page = (tmp_path / "g" / "rep" / "index.html").read_text()
    assert info["files"]["alphas"].endswith("alphas.png") and _is_png(tmp_path / "g" / "rep" / "alphas.png")
    assert "<h2>Architecture weights</h2>" in page and page.count("data:image/png;base64,") == 3
    with _study(tmp_path / "p", None) as study:
        info = write_report(study, tmp_path / "p" / "rep")
    page = (tmp_path / "p" / "rep" / "index.html").read_text()
    assert "alphas" not in info["files"] and "Architecture weights" not in page
    assert not (tmp_path / "p" / "rep" / "alphas.png").exists()
