"""The proxy trainer: learns, is reproducible, reports failures instead of raising, keeps budgets."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from mnas._util import seed_everything
from mnas.models import build_model
from mnas.train import ProxyConfig, Result, evaluate, train_proxy
from mnas.train.loop import threads


def _model(arch: str, data, seed: int = 0) -> nn.Module:
    seed_everything(seed)
    return build_model(arch, num_classes=data.num_classes, in_chans=data.channels)


def test_proxy_run_learns_digits(digits, tiny_arch):
    r = train_proxy(_model(tiny_arch, digits), digits, ProxyConfig(epochs=3, threads=1))
    assert isinstance(r, Result) and r.ok and r.failure is None
    assert r.accuracy > 0.5  # chance is 0.1
    assert math.isfinite(r.loss) and r.images_per_second > 0 and r.seconds >= r.train_seconds > 0
    assert r.steps == 3 * (len(digits.y_train) // 32) and r.epochs == pytest.approx(3.0)
    d = r.to_dict()
    assert d["accuracy"] == r.accuracy and set(d) >= {"ok", "loss", "images_per_second", "seconds", "failure"}


def test_same_seed_same_result_and_seed_matters(digits, tiny_arch):
    config = ProxyConfig(steps=12, threads=1, seed=3)
    a = train_proxy(_model(tiny_arch, digits), digits, config)
    b = train_proxy(_model(tiny_arch, digits), digits, config)
    c = train_proxy(_model(tiny_arch, digits), digits, config.replace(seed=4))
    assert (a.accuracy, a.loss, a.train_loss) == (b.accuracy, b.loss, b.train_loss)
    assert (a.loss, a.train_loss) != (c.loss, c.train_loss)


def test_caller_rng_and_threads_are_left_alone(digits, tiny_arch):
    model = _model(tiny_arch, digits)
    before_threads = torch.get_num_threads()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    r = train_proxy(model, digits, ProxyConfig(steps=2, threads=1))
    assert r.threads == 1 and torch.get_num_threads() == before_threads
    assert torch.equal(torch.rand(3), expected)


class _NaNAfter(nn.Module):
    """A model whose output turns NaN from the `n`-th forward pass in training mode."""

    def __init__(self, inner: nn.Module, n: int):
        super().__init__()
        self.inner, self.n, self.calls = inner, n, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.inner(x)
        if self.training:
            self.calls += 1
            if self.calls >= self.n:
                out = out * float("nan")
        return out


def test_nan_loss_stops_at_once_with_a_reason(digits, tiny_arch):
    model = _NaNAfter(_model(tiny_arch, digits), n=3)
    r = train_proxy(model, digits, ProxyConfig(epochs=5, threads=1))
    assert not r.ok and r.accuracy is None and "nan" in r.failure and "step 3" in r.failure
    assert r.steps == 2 and model.calls == 3


def test_runtime_error_of_a_candidate_is_a_failure_not_a_crash(digits):
    class Broken(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(5, 10)

        def forward(self, x):
            return self.fc(x.flatten(1))  # 64 features, not 5

    r = train_proxy(Broken(), digits, ProxyConfig(steps=2, threads=1))
    assert not r.ok and r.failure.startswith("RuntimeError")


def test_step_budget_and_wall_clock_cap(digits, tiny_arch):
    r = train_proxy(_model(tiny_arch, digits), digits, ProxyConfig(steps=7, threads=1))
    assert r.ok and r.steps == 7 and not r.truncated
    capped = train_proxy(_model(tiny_arch, digits), digits, ProxyConfig(epochs=50, max_seconds=0.01, threads=1))
    assert capped.ok and capped.truncated and capped.steps < 50 * (len(digits.y_train) // 32)
    assert 0 <= capped.accuracy <= 1


def test_bn_momentum_follows_the_run_length_or_the_config(digits, tiny_arch):
    def momenta(config):
        model = _model(tiny_arch, digits)
        train_proxy(model, digits, config)
        return {m.momentum for m in model.modules() if isinstance(m, nn.BatchNorm2d)}

    assert momenta(ProxyConfig(steps=10, threads=1)) == {0.4}  # 4 / steps: the initial statistics fade out
    assert momenta(ProxyConfig(steps=2, bn_momentum=0.01, threads=1)) == {0.01}


def test_layout_input_size_and_rmsprop_options(digits, tiny_arch):
    for config in (ProxyConfig(steps=3, channels_last=False, threads=1),
                   ProxyConfig(steps=3, input_size=12, optimizer="rmsprop", lr=0.01, threads=1),
                   ProxyConfig(steps=3, augment=False, ema_decay=0.99, schedule="exponential", threads=1)):
        r = train_proxy(_model(tiny_arch, digits), digits, config)
        assert r.ok, r.failure
        assert r.channels_last is (config.channels_last is not False)


def test_evaluate_scores_a_trained_model(digits, tiny_arch):
    model = _model(tiny_arch, digits)
    train_proxy(model, digits, ProxyConfig(epochs=2, threads=1))
    momenta = [m.momentum for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    # MnasNet's BN momentum 0.01 is raised to 0.1 so running statistics keep up in a short run.
    assert momenta and all(m == pytest.approx(0.1) for m in momenta)
    with threads(1):
        acc, loss = evaluate(model, digits, "test")
    assert 0.2 < acc <= 1 and math.isfinite(loss)
    assert [m.momentum for m in model.modules() if isinstance(m, nn.BatchNorm2d)] == momenta


def test_bad_inputs_raise_clear_errors(digits, tiny_arch, synthetic):
    from mnas.data import from_arrays

    with pytest.raises(ValueError, match="no validation split"):
        train_proxy(_model(tiny_arch, digits), from_arrays("syn", **synthetic(channels=1), val_fraction=0.0))
    with pytest.raises(ValueError, match="mnas Dataset"):
        train_proxy(_model(tiny_arch, digits), {"x": 1})
    for bad, match in [({"epochs": 0}, "epochs=0"), ({"optimizer": "adam"}, "sgd or rmsprop"),
                       ({"batch_size": 0}, "batch_size"), ({"lr": float("nan")}, "lr=nan"),
                       ({"label_smoothing": 1.0}, "label_smoothing"), ({"device": "tpu"}, "device")]:
        with pytest.raises(ValueError, match=match):
            ProxyConfig(**bad)


def test_read_only_arrays_train_without_warnings():
    """Ray hands workers read-only arrays (zero-copy); training must not warn or write to them."""
    import warnings

    from mnas.models import build_model
    from mnas.space import MnasNetSpace
    from mnas.train import ProxyConfig, load, train_proxy

    data = load("digits")
    before = data.x_train.copy()
    for array in (data.x_train, data.y_train, data.x_val, data.y_val):
        array.flags.writeable = False
    model = build_model(MnasNetSpace(10, 8, width_mult=0.25, head_chs=32).sample(0), 10, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = train_proxy(model, data, ProxyConfig(steps=2, threads=1))
    assert result.ok and (data.x_train == before).all()
