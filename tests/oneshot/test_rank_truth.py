"""Rank check against a given ground truth: sampling, mapping by token, bands, the verdict, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mnas.oneshot import build_supernet
from mnas.oneshot.rank_truth import quantile_groups, rank_check_truth, verdict
from mnas.space.ground_truth import load_ground_truth
from mnas.space.presets import nas_bench_macro_space

sys.path.insert(0, str(Path(__file__).parent))
from _train_helpers import tiny_data  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _truth_file(tmp_path: Path, n: int = 40, seed: int = 0) -> tuple[Path, dict[str, float]]:
    """An NAS-Bench-Macro-format file whose accuracy grows with the number of k5e6 layers (plus seed noise)."""
    rng = np.random.default_rng(seed)
    keys = {"".join(str(int(c)) for c in rng.integers(0, 3, 8)) for _ in range(n)}
    doc, mean = {}, {}
    for k in sorted(keys):
        base = 80 + 1.5 * k.count("2") + 0.5 * k.count("1")
        seeds = [base + float(rng.normal(0, 0.2)) for _ in range(3)]
        doc[k] = {"test_acc": seeds, "mean_acc": float(np.mean(seeds)), "std": 0.1, "params": 1, "flops": 1}
        mean[k] = float(np.mean(seeds))
    path = tmp_path / "nbm.json"
    path.write_text(json.dumps(doc))
    return path, mean


def test_quantile_groups_are_equal_count():
    groups = quantile_groups([5, 1, 4, 2, 3, 6, 7, 8, 9, 10], 5)
    assert [len(g) for g in groups] == [2] * 5 and groups[0] == [1, 3]


def test_rank_check_truth_maps_by_token_and_reports_bands_noise_and_verdict(tmp_path):
    path, _ = _truth_file(tmp_path)
    truth = load_ground_truth(path)
    data = tiny_data(n=48, val=32)
    net = build_supernet(nas_bench_macro_space(4, 8, width_mult=0.125))
    # a perfect scorer (the truth's own ranking through the supernet-space text) and the real inherited one
    want = {truth.arch_in(e, net.space): e.accuracy for e in truth.entries}
    perfect = rank_check_truth(net, data, truth, n=20, scores=lambda archs: [want[a] for a in archs], n_resamples=50,
                               top_k=5, bands=2)
    assert perfect["inherited"]["tau"] == pytest.approx(1.0) and perfect["inherited"]["top5_overlap"] == 1.0
    assert perfect["mapped"] == "by token" and perfect["n"] == 20 and perfect["macs_bands"] == 2
    assert perfect["inherited"]["in_macs_bands"]["mean_tau"] == pytest.approx(1.0)
    assert {"macs", "params"} <= set(perfect["predictors"]) and "in_macs_bands" in perfect["predictors"]["macs"]
    assert 0 < perfect["noise_ceiling"]["tau"] < 1 and "icc" in perfect["noise_ceiling"]
    assert "better than" in perfect["verdict"] or "no better" in perfect["verdict"]
    real = rank_check_truth(net, data, truth, n=6, num_images=16, n_resamples=20, out=tmp_path / "r.json")
    assert len(real["archs"]) == 6 and all(0 <= a["inherited"] <= 1 for a in real["archs"])
    # the same evaluations' log-likelihood is ranked beside accuracy (higher is better: the negated loss)
    from mnas.oneshot.rank import rank_stats

    neg = [-a["inherited_loss"] for a in real["archs"]]
    assert all(a["inherited_loss"] > 0 for a in real["archs"]) and "in_macs_bands" in real["inherited_loss"]
    want_tau = rank_stats(neg, [a["truth"] for a in real["archs"]], top_k=10, n_resamples=20)["tau"]
    assert real["inherited_loss"]["tau"] == pytest.approx(want_tau, nan_ok=True)
    assert "inherited_loss" not in perfect  # a given scorer has no loss
    assert json.loads((tmp_path / "r.json").read_text())["n"] == 6
    # the same seed samples the same networks
    again = rank_check_truth(net, data, truth, n=6, num_images=16, n_resamples=20)
    assert [a["arch"] for a in again["archs"]] == [a["arch"] for a in real["archs"]]


def test_verdict_says_plainly_when_inherited_accuracy_is_not_worth_using():
    def rep(tau, ci, macs):
        return {"inherited": {"tau": tau, "tau_ci": ci}, "predictors": {"macs": {"tau": macs}}}
    assert "worth using" in verdict(rep(0.8, [0.75, 0.85], 0.5))
    assert "WORSE" in verdict(rep(0.2, [0.1, 0.3], 0.5)) and "rank by macs" in verdict(rep(0.2, [0.1, 0.3], 0.5))
    assert "no better" in verdict(rep(0.55, [0.45, 0.65], 0.5))
    # with the likelihood measured, the verdict judges it: the score a supernet search uses by default
    both = {**rep(0.55, [0.45, 0.65], 0.5), "inherited_loss": {"tau": 0.8, "tau_ci": [0.75, 0.85]}}
    assert "the inherited likelihood" in verdict(both) and "worth using" in verdict(both)


def test_cli_rank_check_with_ground_truth(tmp_path):
    import torch

    from mnas.oneshot.train import CHECKPOINT_FORMAT

    path, _ = _truth_file(tmp_path, n=30)
    data = tiny_data(n=48, val=32)
    npz = tmp_path / "d.npz"
    np.savez(npz, x_train=np.concatenate([data.x_train, data.x_val]), y_train=np.concatenate([data.y_train, data.y_val]),
             x_test=data.x_test, y_test=data.y_test)
    net = build_supernet(nas_bench_macro_space(4, 8, width_mult=0.125))
    ckpt = tmp_path / "s.pt"
    torch.save({"format": CHECKPOINT_FORMAT, "config": net.config(), "state_dict": net.state_dict()}, ckpt)
    cmd = [sys.executable, "-m", "mnas.cli", "supernet", "rank-check", str(ckpt), "--data", str(npz),
           "--ground-truth", str(path), "--n", "8", "--images", "16", "--bootstrap", "20", "--bands", "2",
           "--out", str(tmp_path / "out")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "rank check against NAS-Bench-Macro" in done.stdout and "tau in 2 MACs bands" in done.stdout
    assert "the inherited likelihood" in done.stdout.splitlines()[-2] and "inherited -loss" in done.stdout
    report = json.loads((tmp_path / "out" / "rank-check-truth.json").read_text())
    assert report["n"] == 8
    bad = subprocess.run(cmd[:-2] + ["--ground-truth", str(tmp_path / "nope.json")], capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode == 2 and "ground truth not found" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_rank_check_truth_smooths_the_score_by_its_marginal_fit(tmp_path):
    # a scorer that is the truth plus independent noise per network: its marginal-effects fit over the
    # sampled networks averages the noise out, so the smoothed score ranks better than the score itself
    path, _ = _truth_file(tmp_path, n=400, seed=1)
    truth = load_ground_truth(path)
    net = build_supernet(nas_bench_macro_space(4, 8, width_mult=0.125))
    rng = np.random.default_rng(3)
    noisy = {truth.arch_in(e, net.space): e.accuracy + float(rng.normal(0, 0.03)) for e in truth.entries}
    report = rank_check_truth(net, tiny_data(n=48, val=32), truth, n=200, n_resamples=20,
                              scores=lambda archs: [noisy[a] for a in archs])
    smooth = report["inherited_smoothed"]
    assert smooth["score"] == "inherited" and "in_macs_bands" in smooth and "in_bands" in smooth
    assert smooth["tau"] > report["inherited"]["tau"] + 0.1, (smooth["tau"], report["inherited"]["tau"])
    # one diverged sub-network (an infinite score) would make every fitted value NaN: no smoothed row (review)
    from mnas.oneshot.rank_truth import _sample

    first = truth.arch_in(truth.entries[_sample(truth, 200, 0)[0]], net.space)  # one of the 200 sampled
    broken = {**noisy, first: float("-inf")}
    chosen = rank_check_truth(net, tiny_data(n=48, val=32), truth, n=200, n_resamples=20,
                              scores=lambda archs: [broken[a] for a in archs])
    assert "inherited_smoothed" not in chosen and "inherited" in chosen
    # with fewer networks than two a token, no fit is made
    few = rank_check_truth(net, tiny_data(n=48, val=32), truth, n=30, n_resamples=20,
                           scores=lambda archs: [noisy[a] for a in archs])
    assert "inherited_smoothed" not in few


def test_rank_check_table_has_the_smoothed_row():
    from mnas.cli.supernet_cmd import _predictor_rows

    stats = {"tau": 0.8, "tau_ci": [0.7, 0.9], "rho": 0.9, "rho_ci": [0.8, 0.95], "top10_overlap": 0.7,
             "in_bands": {"mean_tau": 0.6}, "in_macs_bands": {"mean_tau": 0.65}}
    report = {"inherited": stats, "inherited_loss": stats, "predictors": {"macs": stats},
              "inherited_smoothed": {**stats, "score": "likelihood"}}
    names = [row["name"] for row in _predictor_rows(report)]
    assert names == ["inherited", "inherited -loss", "inherited -loss + marginal fit", "macs"]
    report["inherited_smoothed"]["score"] = "inherited"
    assert "inherited + marginal fit" in [row["name"] for row in _predictor_rows(report)]
