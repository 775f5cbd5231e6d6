"""Full training: exact resume, atomic checkpoints, the model file, recipes, schedule and optimiser."""

from __future__ import annotations

import math

import pytest
import torch

from mnas.space import as_arch
from mnas.train import load_model, recipe, train_full
from mnas.train.checkpoint import load_file
from mnas.train.full import Progress, Stopped
from mnas.train.optim import LRSchedule, RMSpropTF


def _config(**changes):
    return recipe("fast", **{"epochs": 2, "batch_size": 64, "threads": 1, **changes})


def _weights(path):
    return load_file(path)["state_dict"]


def test_resume_after_a_kill_gives_identical_weights(digits, tiny_arch, tmp_path):
    config = _config(ema_decay=0.99)  # the EMA is part of the state that must come back
    straight = train_full(tiny_arch, digits, config, tmp_path / "a")
    stopped = train_full(tiny_arch, digits, config, tmp_path / "b", stop_after=1)
    assert stopped["stopped"] and stopped["epoch"] == 1
    assert load_file(tmp_path / "b" / "checkpoint.pt")["epoch"] == 1
    assert not (tmp_path / "b" / "model.pt").exists()
    resumed = train_full(tiny_arch, digits, config, tmp_path / "b", resume=True)
    a, b = _weights(tmp_path / "a" / "model.pt"), _weights(tmp_path / "b" / "model.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["test_accuracy"] == straight["test_accuracy"]
    assert [h["train_loss"] for h in resumed["history"]] == [h["train_loss"] for h in straight["history"]]


def test_a_kill_from_a_progress_hook_leaves_the_last_checkpoint(digits, tiny_arch, tmp_path):
    class KillInSecondEpoch(Progress):
        def start_epoch(self, epoch, epochs, steps):
            self.epoch = epoch

        def step(self, loss, accuracy, images_per_second):
            if self.epoch == 1:
                raise Stopped("killed")

    with pytest.raises(Stopped):
        train_full(tiny_arch, digits, _config(), tmp_path, progress=KillInSecondEpoch())
    assert load_file(tmp_path / "checkpoint.pt")["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]  # no temporary files left
    final = train_full(tiny_arch, digits, _config(), tmp_path, resume=True)
    assert final["epochs"] == 2 and len(final["history"]) == 2


def test_model_file_format_and_load_model(digits, tiny_arch, tmp_path):
    final = train_full(tiny_arch, digits, recipe("fast", epochs=1, threads=1), tmp_path)
    info = torch.load(tmp_path / "model.pt", weights_only=True)
    assert info["format"] == "mnas.model/1" and info["arch"] == str(as_arch(tiny_arch))
    assert (info["num_classes"], info["in_chans"], info["input_size"]) == (10, 1, 8)
    assert info["class_names"] == list(digits.class_names)
    assert info["normalization"] == {"mean": list(digits.mean), "std": list(digits.std)}
    assert info["metrics"]["test_accuracy"] == final["test_accuracy"] and 0 <= final["test_accuracy"] <= 1
    model, _ = load_model(tmp_path / "model.pt")
    x = (torch.from_numpy(digits.x_test[:50]).permute(0, 3, 1, 2).float() / 255 - digits.mean[0]) / digits.std[0]
    acc = (model(x).argmax(1).numpy() == digits.y_test[:50]).mean()
    assert math.isfinite(acc) and (tmp_path / "metrics.json").is_file()


def test_refuses_to_overwrite_or_to_resume_something_else(digits, tiny_arch, tmp_path):
    train_full(tiny_arch, digits, _config(), tmp_path, stop_after=1)
    with pytest.raises(ValueError, match="already holds a training checkpoint"):
        train_full(tiny_arch, digits, _config(), tmp_path)
    other = "r1_k3_s11_e1_i8_o8, r1_k3_s22_e3_i8_o24 | s1_h32_d0.1_relu"
    with pytest.raises(ValueError, match="different architecture"):
        train_full(other, digits, _config(), tmp_path, resume=True)
    with pytest.raises(ValueError, match="lr="):
        train_full(tiny_arch, digits, _config(lr=0.5), tmp_path, resume=True)
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        train_full(tiny_arch, digits, _config(), tmp_path / "empty", resume=True)
    with pytest.raises(ValueError, match="whole epochs"):
        train_full(tiny_arch, digits, _config(epochs=1.5), tmp_path / "x")


def test_paper_recipe_matches_reference_md():
    c = recipe("paper", batch_size=512)
    assert (c.optimizer, c.rms_decay, c.momentum, c.eps, c.weight_decay) == ("rmsprop", 0.9, 0.9, 1e-3, 1e-5)
    assert c.lr == pytest.approx(0.016 * 2)  # 0.016 per 256 images
    assert (c.warmup_epochs, c.schedule, c.decay_rate, c.decay_epochs) == (5.0, "exponential", 0.97, 2.4)
    assert (c.ema_decay, c.label_smoothing) == (0.9999, 0.1)
    assert recipe("fast", lr=0.3).lr == 0.3
    with pytest.raises(ValueError, match="unknown recipe"):
        recipe("slow")


def test_lr_schedule_warmup_cosine_and_staircase():
    s = LRSchedule(1.0, total_steps=110, warmup_steps=10)
    lrs = [s.lr_at(i) for i in range(110)]
    assert lrs[0] == pytest.approx(1 / 11) and lrs[9] == pytest.approx(10 / 11) and lrs[10] == 1.0
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:], strict=False)) and lrs[-1] < 0.001
    assert lrs[60] == pytest.approx(0.5)
    e = LRSchedule(1.0, total_steps=100, warmup_steps=5, kind="exponential", decay_rate=0.5, decay_steps=2.4)
    assert [e.lr_at(i) for i in (5, 7, 8, 10)] == pytest.approx([1.0, 1.0, 0.5, 0.25])


def test_rmsprop_tf_matches_the_tensorflow_update():
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    opt = RMSpropTF([p], lr=0.1, alpha=0.9, eps=1e-3, momentum=0.9)
    ms, mom, w = torch.ones(2), torch.zeros(2), p.detach().clone()
    for g in (torch.tensor([0.5, 1.0]), torch.tensor([-0.2, 0.3])):
        p.grad = g.clone()
        opt.step()
        ms = 0.9 * ms + 0.1 * g * g
        mom = 0.9 * mom + 0.1 * g / torch.sqrt(ms + 1e-3)
        w = w - mom
        assert torch.allclose(p.detach(), w)
