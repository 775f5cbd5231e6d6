"""Training: both phases run, checkpoints resume exactly, bad settings are refused."""

from __future__ import annotations

import pytest
import torch

from conftest import TINY
from mnas.instance.controller import Controller
from mnas.instance.latency import LatencyTable
from mnas.instance.metagraph import MetaGraph
from mnas.instance.train import CHECKPOINT, MODEL, InstanceConfig, load_instance, train_instance


def _table(data, config):
    meta = MetaGraph(config.meta_config(data))
    return LatencyTable.from_macs(meta, Controller(meta.num_layers, width=config.controller_width))


@pytest.mark.slow  # about 55 s on a loaded 2-core machine (three training runs)
def test_stopped_and_resumed_run_equals_an_uninterrupted_one(tiny_data, tmp_path, one_torch_thread):
    config = InstanceConfig(stem_stride=1, **TINY)
    table = _table(tiny_data, config)
    full = train_instance(tiny_data, config, tmp_path / "a", table=table)
    stopped = train_instance(tiny_data, config, tmp_path / "b", table=table, stop_after=2)
    assert stopped["stopped"] and stopped["epoch"] == 2 and (tmp_path / "b" / CHECKPOINT).is_file()
    resumed = train_instance(tiny_data, config, tmp_path / "b", table=table, resume=True)
    assert [h["phase"] for h in full["history"]] == ["pretrain", "search", "search"]
    assert resumed["accuracy"] == full["accuracy"] and resumed["mean_latency_ms"] == full["mean_latency_ms"]
    a, ca, info = load_instance(tmp_path / "a")
    b, cb, _ = load_instance(tmp_path / "b" / MODEL)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(va, vb), k
    for va, vb in zip(ca.state_dict().values(), cb.state_dict().values(), strict=True):
        assert torch.equal(va, vb)
    search = full["history"][1]
    assert search["window_ms"][0] < search["window_ms"][1] and 0 <= search["val_accuracy"] <= 1
    assert info["table"]["backend"]["measured"] is False


def test_existing_checkpoint_needs_resume_and_matching_settings(tiny_data, tmp_path, one_torch_thread):
    config = InstanceConfig(stem_stride=1, **{**TINY, "search_epochs": 1})
    table = _table(tiny_data, config)
    train_instance(tiny_data, config, tmp_path, table=table, stop_after=1)
    with pytest.raises(ValueError, match="resume it"):
        train_instance(tiny_data, config, tmp_path, table=table)
    with pytest.raises(ValueError, match="entropy=0.8"):
        train_instance(tiny_data, config.__class__.from_dict({**config.to_dict(), "entropy": 0.1}), tmp_path,
                       table=table, resume=True)
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        train_instance(tiny_data, config, tmp_path / "empty", table=table, resume=True)


@pytest.mark.parametrize("kwargs, match", [({"search_epochs": 0}, "search_epochs"), ({"alpha": 0.3}, "alpha"),
                                           ({"stage_strides": (1, 2)}, "stage_strides"), ({"keep_end": 0}, "keep_end")])
def test_bad_settings_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        InstanceConfig(**kwargs)


def test_unknown_setting_is_named():
    with pytest.raises(ValueError, match="unknown instance setting 'epochs'"):
        InstanceConfig.from_dict({"epochs": 3})
