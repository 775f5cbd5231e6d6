"""Evaluating a sub-network: BN recalibration on fixed images, determinism, the supernet untouched."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from mnas.oneshot.evaluate import calibration_indices, evaluate_subnet, evaluate_subnets, recalibrate_bn

sys.path.insert(0, str(Path(__file__).parent))
from _train_helpers import make_supernet, tiny_data, tiny_space  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_recalibration_is_the_cumulative_average_over_all_batches():
    model = nn.Sequential(nn.BatchNorm2d(3))
    model[0].momentum = 0.1
    batches = [torch.randn(8, 3, 4, 4) * (i + 1) + i for i in range(3)]
    model[0].running_mean.fill_(100.0)
    recalibrate_bn(model, batches)
    means = torch.stack([b.mean((0, 2, 3)) for b in batches]).mean(0)
    assert torch.allclose(model[0].running_mean, means, atol=1e-5)  # nothing left of the old statistics
    assert model[0].momentum == 0.1 and not model.training


def test_calibration_images_are_fixed_by_the_seed():
    data = tiny_data()
    assert np.array_equal(calibration_indices(data, 20, 0), calibration_indices(data, 20, 0))
    assert not np.array_equal(calibration_indices(data, 20, 0), calibration_indices(data, 20, 1))
    assert len(calibration_indices(data, 10_000, 0)) == len(data.y_train)
    with pytest.raises(ValueError, match="num_images"):
        calibration_indices(data, 0)


def test_evaluation_is_deterministic_and_leaves_the_supernet_unchanged():
    space, data = tiny_space(), tiny_data()
    net = make_supernet(space)
    for bn in net.bn_modules():  # make the stored statistics wrong, as sharing leaves them
        bn.running_mean.normal_()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    arch = space.sample(0)
    a = evaluate_subnet(net, arch, data, num_images=32, batch_size=16)
    b = evaluate_subnet(net, arch, data, num_images=32, batch_size=16)
    assert a.accuracy == b.accuracy and a.loss == b.loss and a.num_images == 32 and a.num_eval == len(data.y_val)
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k
    # recalibration changes the answer: scoring with the wrong statistics gives another loss
    sub = net.subnet(arch).eval()
    from mnas.train.augment import BatchTransform
    from mnas.train.datasets import NO_AUGMENT

    x = BatchTransform(data.mean, data.std, NO_AUGMENT)(torch.from_numpy(data.x_val), train=False)
    with torch.no_grad():
        stale = float(nn.functional.cross_entropy(sub(x), torch.from_numpy(data.y_val)))
    assert abs(stale - a.loss) > 1e-4


def test_fewer_calibration_images_is_another_sample():
    space, data = tiny_space(), tiny_data()
    net = make_supernet(space)
    arch = space.sample(1)
    a = evaluate_subnet(net, arch, data, num_images=8, batch_size=8)
    b = evaluate_subnet(net, arch, data, num_images=64, batch_size=8)
    assert a.num_images == 8 and b.num_images == 64 and a.loss != b.loss


@pytest.mark.slow  # two spawned processes import torch: ~20-60 s on a busy 2-core machine
def test_two_workers_give_the_serial_results():
    space, data = tiny_space(), tiny_data()
    net = make_supernet(space)
    archs = [space.sample(i) for i in range(3)]
    serial = evaluate_subnets(net, archs, data, num_images=16)
    parallel = evaluate_subnets(net, archs, data, num_images=16, workers=2)
    assert [r.accuracy for r in serial] == [r.accuracy for r in parallel]
    assert [r.loss for r in serial] == pytest.approx([r.loss for r in parallel], abs=1e-6)
