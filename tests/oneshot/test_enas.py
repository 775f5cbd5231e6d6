"""ENAS on tiny data: the alternation runs, rewards are the MnasNet reward, and resume is exact."""

import numpy as np
import pytest
import torch

from mnas.objectives import Reward
from mnas.oneshot import arch_macs, build_supernet
from mnas.oneshot.enas import EnasConfig, search_enas
from mnas.space import MnasNetSpace
from mnas.train.config import recipe
from mnas.train.datasets import from_arrays

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _data():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 240)
    x = (rng.random((240, 8, 8, 3)) * 60).astype(np.uint8)
    x[np.arange(240), y * 2, :, :] = 250  # a learnable cue: one bright row per class
    return from_arrays("tiny", x[:200], y[:200], x[200:], y[200:], val_fraction=0.3, seed=0)


def _space():
    return MnasNetSpace(3, 8, width_mult=0.25, ops=("ds", "mbconv3"), se_ratios=(0.0,), skips=("identity",),
                        filter_mults=(0.5, 1.0), head_chs=32)


def _config(**kw):
    settings = dict(rounds=2, shared_steps=2, controller_updates=2, archs_per_update=2, val_batch_size=32, derive=3,
                    derive_batches=2, train=recipe("proxy", batch_size=16, threads=1, device="cpu"))
    return EnasConfig(**{**settings, **kw})


def _latency(arch):  # a stand-in for a latency backend: proportional to MACs
    return arch_macs(arch, 8, 3) / 1e4


def test_enas_alternates_and_returns_derived_archs_with_the_mnasnet_reward():
    space = _space()
    net = build_supernet(space)
    reward = Reward.soft(target_ms=float(np.median([_latency(space.sample(i)) for i in range(20)])))
    entries = []
    result = search_enas(net, _data(), reward, latency=_latency, config=_config(), log=entries.append)
    assert [e["round"] for e in result.history] == [1, 2] and entries == result.history
    assert result.controller.num_updates == 2 * 2  # one REINFORCE update per batch of archs_per_update
    assert 1 <= len(result.derived) <= 3
    rewards = [d["reward"] for d in result.derived]
    assert rewards == sorted(rewards, reverse=True)
    for d in result.derived:
        assert d["latency_ms"] == pytest.approx(_latency(space.decode(d["tokens"])))
        assert d["reward"] == pytest.approx(reward(d["accuracy"], d["latency_ms"]))
        assert str(space.decode(d["tokens"])) == d["arch"]
    assert result.best is result.derived[0]


@pytest.mark.slow  # three short searches: ~10-15 s on a busy 2-core machine
def test_resume_continues_exactly(tmp_path):
    space, data, reward = _space(), _data(), Reward.soft(target_ms=1.0)
    config = _config(controller_updates=1, derive=2, derive_batches=1)
    torch.manual_seed(0)
    whole = search_enas(build_supernet(space), data, reward, _latency, config)
    torch.manual_seed(0)
    path = tmp_path / "enas.pt"
    part = search_enas(build_supernet(space), data, reward, _latency, config, out=path, stop_after=1)
    assert part.derived == [] and len(part.history) == 1
    torch.manual_seed(123)  # the resumed run must not depend on the global RNG it starts with
    resumed = search_enas(build_supernet(space), data, reward, _latency, config, out=path, resume=True)
    assert resumed.history == whole.history
    assert resumed.derived == whole.derived
    for k, v in whole.supernet.state_dict().items():
        torch.testing.assert_close(resumed.supernet.state_dict()[k], v, msg=k)
    assert resumed.controller.state_dict() == whole.controller.state_dict()


def test_bad_setups_fail_in_one_line(tmp_path):
    space, data = _space(), _data()
    with pytest.raises(ValueError, match="pass latency="):
        search_enas(build_supernet(space), data, Reward.soft(target_ms=1.0), None, _config())
    with pytest.raises(ValueError, match="nothing to resume"):
        search_enas(build_supernet(space), data, Reward.accuracy(), None, _config(), out=tmp_path / "x.pt", resume=True)
    with pytest.raises(ValueError, match="rounds"):
        EnasConfig(rounds=0)
    path = tmp_path / "e.pt"
    search_enas(build_supernet(space), data, Reward.accuracy(), None, _config(), out=path, stop_after=1)
    with pytest.raises(ValueError, match="another enas"):
        search_enas(build_supernet(space), data, Reward.accuracy(), None, _config(entropy_weight=0.1), out=path, resume=True)
