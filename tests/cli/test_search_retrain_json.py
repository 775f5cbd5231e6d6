"""`mnas search --json --retrain-top K --retrain-reference`: the comparison of the pick with the reference
network, which the console prints as a line (difference, Welch s.e., verdict), is in the JSON document as
fields. Regression: the JSON document had no trace of it (the line went to stderr, the document lacked it)."""

from __future__ import annotations

import json

import pytest
from _cli_helpers import run_cli, tiny_npz

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("seeds, ref_accuracy, verdict", [(3, 0.58, "pick_higher"), (3, 0.65, "reference_higher"),
                                                          (1, 0.65, "one_seed")])
def test_search_json_holds_the_retrain_reference_comparison(tmp_path, capsys, monkeypatch, seeds, ref_accuracy,
                                                             verdict):
    import mnas.evaluate
    import mnas.loop.retrain as retrain

    npz = tiny_npz(tmp_path)
    # the reference's latency is not measured (the one trial is under it) and nothing is retrained for real
    monkeypatch.setattr(mnas.evaluate.ProxyEvaluator, "reference_latency", lambda self, name, space=None: 1e3)
    picked = {}

    def retrain_top(study, data, k, **kwargs):
        src = study.complete_trials[0]
        picked.update(trial=src.number + 100, source_trial=src.number, inherited_accuracy=src.accuracy, accuracy=0.62,
                      accuracy_se=0.01 if seeds > 1 else None, test_accuracy=0.60, latency_ms=src.latency_ms,
                      reward=0.62, seconds=1.0, epochs=1, model="m.pt")
        return [picked]

    ref = {"name": "mnasnet_small", "arch": "ref-arch", "accuracy": ref_accuracy, "test_accuracy": 0.55, "epochs": 1,
           "seed": 5, "seeds": list(range(5, 5 + seeds)), "accuracy_se": 0.01 if seeds > 1 else None}
    monkeypatch.setattr(retrain, "retrain_top", retrain_top)
    monkeypatch.setattr(retrain, "retrain_reference", lambda *a, **k: ref)
    code, out, err = run_cli(capsys, "search", "--data", str(npz), "--trials", "1", "--epochs", "0.2", "--width-mult",
                             "0.25", "--head", "16", "--backend", "torch", "--target", "mnasnet_small", "--storage",
                             str(tmp_path / "s.db"), "--retrain-top", "1", "--retrain-reference", "--retrain-seeds",
                             str(seeds), "--json")
    assert code == 0, err
    c = json.loads(out)["retrain_reference"]
    assert c["reference"] == "mnasnet_small" and c["pick_trial"] == picked["trial"] and c["seeds"] == seeds
    assert c["pick_accuracy"] == 0.62 and c["reference_accuracy"] == ref_accuracy
    assert c["difference"] == pytest.approx(0.62 - ref_accuracy)
    assert c["test_difference"] == pytest.approx(0.05) and c["verdict"] == verdict
    assert c["ship_reference"] is (ref_accuracy > 0.62)
    # the same figures as the console line (stderr under --json)
    assert f"the pick is {100 * c['difference']:+.1f}" in err
    if seeds > 1:
        assert c["difference_se"] == pytest.approx((0.01 ** 2 + 0.01 ** 2) ** 0.5)
        assert c["z"] == round(c["difference"] / c["difference_se"], 1) and f"{c['z']:+.1f} s.e." in err
    else:
        assert c["difference_se"] is None and c["z"] is None and "one seed each" in err
    assert ("ship it" in err) is c["ship_reference"]


def test_search_json_has_no_reference_comparison_without_the_option(tmp_path, capsys):
    code, out, err = run_cli(capsys, "search", "--data", str(tiny_npz(tmp_path)), "--trials", "1", "--epochs", "0.2",
                             "--width-mult", "0.25", "--head", "16", "--backend", "torch", "--target", "5ms",
                             "--storage", str(tmp_path / "s.db"), "--json")
    assert code == 0, err
    assert "retrain_reference" not in json.loads(out)
