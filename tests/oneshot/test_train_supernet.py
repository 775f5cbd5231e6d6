"""Supernet training: the sandwich schedule, sampling, checkpoints and exact resume."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mnas.models import build_model, count_macs
from mnas.oneshot.sampling import StratifiedSampler, UniformSampler, estimate_macs, make_predictor
from mnas.oneshot.train import SupernetTrainConfig, _Trainer, load_supernet, soft_cross_entropy, train_supernet
from mnas.train import TrainConfig

sys.path.insert(0, str(Path(__file__).parent))
from _train_helpers import make_supernet, tiny_data, tiny_space  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _config(**kw) -> SupernetTrainConfig:
    train = TrainConfig(epochs=kw.pop("epochs", 2), batch_size=16, lr=0.05, warmup_epochs=0.5, seed=3)
    return SupernetTrainConfig(train=train, warmup_epochs=kw.pop("warmup_epochs", 0.5),
                               eval_images=kw.pop("eval_images", 0), **kw)


def test_estimate_macs_equals_the_counted_macs():
    space = tiny_space()
    rng = np.random.default_rng(0)
    for _ in range(2):
        arch = space.sample(rng)
        assert estimate_macs(arch, 8, 4) == count_macs(build_model(arch, 4), 8)


def test_config_refuses_bad_settings():
    with pytest.raises(ValueError, match="sampler"):
        _config(sampler="greedy")
    with pytest.raises(ValueError, match="warmup_epochs"):
        _config(warmup_epochs=5)
    with pytest.raises(ValueError, match="whole epochs"):
        SupernetTrainConfig(train=TrainConfig(epochs=1.5))
    cfg = _config(num_random=3)
    assert SupernetTrainConfig.from_dict(cfg.to_dict()) == cfg


def test_warmup_trains_the_largest_then_the_sandwich_is_seeded_per_step():
    net, data = make_supernet(tiny_space()), tiny_data()
    trainer = _Trainer(net, data, _config(num_random=2))
    assert trainer.warmup_steps == 2  # half of 4 steps per epoch
    assert [str(a) for a in trainer.archs_for(0)] == [str(net.largest_arch())]
    archs = trainer.archs_for(5)
    assert len(archs) == 4 and str(archs[0]) == str(net.largest_arch()) and str(archs[1]) == str(net.smallest_arch())
    assert [str(a) for a in trainer.archs_for(5)] == [str(a) for a in archs]  # a pure function of the step
    assert [str(a) for a in trainer.archs_for(6)] != [str(a) for a in archs]


def test_soft_cross_entropy_of_one_hot_targets_is_cross_entropy():
    logits = torch.randn(6, 4)
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    soft = torch.nn.functional.one_hot(y, 4).float()
    assert torch.allclose(soft_cross_entropy(logits, soft), torch.nn.functional.cross_entropy(logits, y))


def test_stratified_sampler_trains_every_band_and_is_bounded():
    space = tiny_space()
    net = make_supernet(space)
    sampler = StratifiedSampler.for_space(space, net.smallest_arch(), net.largest_arch(), bands=4, tries=40)
    predictor = make_predictor(space)
    rng = np.random.default_rng(1)
    bands = [sampler.band_of(predictor(sampler.sample(rng))) for _ in range(200)]
    counts = np.bincount(bands, minlength=4)
    assert (counts > 20).all(), counts  # uniform sampling leaves the extreme bands nearly empty
    uniform = np.bincount([sampler.band_of(predictor(UniformSampler(space).sample(rng))) for _ in range(200)],
                          minlength=4)
    assert counts.min() > uniform.min()
    one_try = StratifiedSampler(space, predictor, sampler.low, sampler.high, bands=4, tries=1)
    one_try.sample(np.random.default_rng(0))  # never loops: at most `tries` draws
    with pytest.raises(ValueError, match="empty"):
        StratifiedSampler(space, predictor, 5.0, 5.0)


def test_training_lowers_the_loss_and_writes_a_loadable_checkpoint(tmp_path):
    net, data = make_supernet(tiny_space()), tiny_data()
    result = train_supernet(net, data, _config(epochs=3, sampler="stratified", eval_images=16), tmp_path / "sn.pt")
    hist = result["history"]
    assert len(hist) == 3 and all(np.isfinite(h["train_loss"]) for h in hist)
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]
    assert 0 <= hist[-1]["val_accuracy_smallest"] <= 1 and hist[-1]["subnets_per_step"] == 4
    assert result["sampler"]["kind"] == "stratified"
    loaded, state = load_supernet(tmp_path / "sn.pt")
    assert state["format"] == "mnas.supernet/1" and state["epoch"] == 3
    for k, v in net.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    with pytest.raises(ValueError, match="already exists"):
        train_supernet(net, data, _config(), tmp_path / "sn.pt")


def test_interrupted_and_resumed_equals_uninterrupted(tmp_path):
    data, cfg = tiny_data(), _config(epochs=3, num_random=1)
    full = make_supernet(tiny_space())
    train_supernet(full, data, cfg, tmp_path / "a.pt")
    part = make_supernet(tiny_space())
    stopped = train_supernet(part, data, cfg, tmp_path / "b.pt", stop_after=1)
    assert stopped["stopped"] and stopped["epoch"] == 1
    resumed = make_supernet(tiny_space())
    with pytest.raises(ValueError, match="num_random"):
        train_supernet(resumed, data, cfg.replace(num_random=2), tmp_path / "b.pt", resume=True)
    train_supernet(resumed, data, cfg, tmp_path / "b.pt", resume=True)
    for k, v in full.state_dict().items():
        assert torch.equal(resumed.state_dict()[k], v), k  # bitwise on CPU


def test_micro_batches_match_the_whole_batch_without_batch_norm_effects():
    """Gradient accumulation over micro-batches sums to the whole batch's gradient; with batch norm
    the statistics differ per micro-batch, so only the first step is compared loosely."""
    data = tiny_data()
    a, b = make_supernet(tiny_space()), make_supernet(tiny_space())
    train_supernet(a, data, _config(epochs=1, warmup_epochs=0))
    train_supernet(b, data, _config(epochs=1, warmup_epochs=0, micro_batches=2))
    diffs = [float((pa - pb).abs().max()) for pa, pb in zip(a.parameters(), b.parameters(), strict=True)]
    assert max(diffs) < 0.05 and max(diffs) > 0  # close, not identical (BN statistics per micro-batch)


def test_estimate_macs_counts_the_layerwise_proj_layer():
    # regression: the layer-wise space's non-identity skip (`proj`) raised "unknown op 'proj'"
    from mnas.space import LayerwiseSpace
    space = LayerwiseSpace(num_classes=4, input_size=16, width_mult=0.25, head_chs=32)
    archs = [a for a in (space.sample(s) for s in range(40)) if "proj" in str(a)]
    assert archs
    for arch in archs[:3]:
        assert estimate_macs(arch, 16, 4) == count_macs(build_model(arch, 4), 16)


def test_without_the_sandwich_a_step_trains_only_sampled_subnetworks_on_the_labels(tmp_path):
    net, data = make_supernet(tiny_space()), tiny_data()
    trainer = _Trainer(net, data, _config(num_random=2, sandwich=False, warmup_epochs=0))
    sandwich = _Trainer(net, data, _config(num_random=2, warmup_epochs=0))
    archs = [str(a) for a in trainer.archs_for(5)]
    assert len(archs) == 2 and archs == [str(a) for a in sandwich.archs_for(5)[2:]]  # the same draws, no extremes
    with pytest.raises(ValueError, match="num_random"):
        _config(num_random=0, sandwich=False)
    # every sub-network on the labels: distillation is off without a teacher
    seen = []
    original = trainer.criterion
    trainer.criterion = lambda logits, y: seen.append(len(y)) or original(logits, y)
    trainer.step(torch.arange(16))
    assert len(seen) == 2
    result = train_supernet(make_supernet(tiny_space()), data, _config(epochs=2, sandwich=False, num_random=2,
                                                                       warmup_epochs=0), tmp_path / "sn.pt")
    assert result["history"][-1]["subnets_per_step"] == 2 and np.isfinite(result["history"][-1]["train_loss"])


def test_a_checkpoint_from_before_a_setting_existed_resumes_with_its_default(tmp_path):
    """Regression: resume compared every setting with the checkpoint's, so a checkpoint written before
    `sandwich` existed (no such key) could never be resumed."""
    data, cfg = tiny_data(), _config(epochs=2, num_random=1)
    part = make_supernet(tiny_space())
    train_supernet(part, data, cfg, tmp_path / "old.pt", stop_after=1)
    state = torch.load(tmp_path / "old.pt", map_location="cpu", weights_only=True)
    del state["train_config"]["sandwich"]
    torch.save(state, tmp_path / "old.pt")
    result = train_supernet(make_supernet(tiny_space()), data, cfg, tmp_path / "old.pt", resume=True)
    assert result["epochs"] == 2
    with pytest.raises(ValueError, match="sandwich"):
        train_supernet(make_supernet(tiny_space()), data, cfg.replace(sandwich=False), tmp_path / "old.pt", resume=True)


def test_stratified_sampler_reaches_the_outer_bands_of_the_full_space():
    # Stop 17, MnasNet space at width 0.25, 5 MACs bands: uniform draws landed in the two largest bands
    # for 4% and 0% of the samples asked for there, so those bands were trained on off-band networks.
    from mnas.oneshot import build_supernet
    from mnas.space import MnasNetSpace

    space = MnasNetSpace(10, 32, width_mult=0.25, strides=(2, 1, 1, 2, 2, 1, 1, 1))
    net = build_supernet(space)
    sampler = StratifiedSampler.for_space(space, net.smallest_arch(), net.largest_arch(), bands=5)
    predictor = make_predictor(space)
    rng = np.random.default_rng(0)
    bands = [sampler.band_of(predictor(sampler.sample(rng))) for _ in range(100)]
    info = sampler.describe()
    assert min(info["hit_rate"]) >= 0.9, info
    assert min(info["draw_hit_rate"]) < 0.2  # the draws alone do not reach them: the walk does
    assert set(bands) == set(range(5))
    no_walk = StratifiedSampler(space, predictor, sampler.low, sampler.high, bands=5, walk=0)
    for _ in range(100):
        no_walk.sample(rng)
    assert min(no_walk.describe()["hit_rate"]) < 0.2
    with pytest.raises(ValueError, match="walk="):
        StratifiedSampler(space, predictor, sampler.low, sampler.high, walk=-1)


def test_fair_sampler_takes_every_choice_of_every_decision_equally_often():
    from mnas.oneshot.sampling import FairSampler

    space = tiny_space()
    sampler = FairSampler(space)
    rng = np.random.default_rng(0)
    for n in (max(len(d.choices) for d in space.decisions), 7):
        tokens = np.array(sampler.group_tokens(rng, n))
        for i, d in enumerate(space.decisions):
            counts = np.bincount(tokens[:, i], minlength=len(d.choices))
            k = len(d.choices)
            # each choice n // k or n // k + 1 times (exactly once each when n == k)
            assert counts.min() >= min(n // k, 1 if n >= k else 0) and counts.max() <= -(-n // k), (n, i, counts)
            assert counts.sum() == n
    # the trainer draws a step's sub-networks as one fair group, a pure function of (seed, step)
    net, data = make_supernet(space), tiny_data()
    k = max(len(d.choices) for d in space.decisions)
    trainer = _Trainer(net, data, _config(num_random=k, sandwich=False, warmup_epochs=0, sampler="fair"))
    archs = [str(a) for a in trainer.archs_for(3)]
    assert archs == [str(a) for a in trainer.archs_for(3)] and len(archs) == k
    drawn = sampler.group_tokens(np.random.default_rng([3, 3, 0x5a4d]), k)  # the trainer's (seed 3, step 3) draw
    assert archs == [str(space.decode(t)) for t in drawn]
    with pytest.raises(ValueError, match="sampler"):
        _config(sampler="fairest")
    # the sandwich rule's extremes would undo the balance: refused, with what to do
    with pytest.raises(ValueError, match="sandwich=False"):
        _config(sampler="fair", num_random=3)
    assert sampler.group_tokens(rng, 0) == []
