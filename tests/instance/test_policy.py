"""InstaNAS's reward, exploration, curriculum and policy-gradient loss."""

from __future__ import annotations

import pytest
import torch

from mnas.instance.policy import curriculum, explore, latency_reward, policy_loss, reward


def test_latency_parabola_is_zero_at_the_bounds_and_one_midway():
    lat = torch.tensor([0.5, 1.0, 2.0, 3.0, 3.5])
    torch.testing.assert_close(latency_reward(lat, 1.0, 3.0), torch.tensor([0.0, 0.0, 1.0, 0.0, 0.0]))
    with pytest.raises(ValueError, match="upper bound"):
        latency_reward(lat, 2.0, 2.0)


def test_reward_scales_correct_images_and_punishes_wrong_ones():
    r = reward(torch.tensor([True, True, False]), torch.tensor([2.0, 2.5, 2.0]), 1.0, 3.0)
    torch.testing.assert_close(r, torch.tensor([10.0, 7.5, -10.0]))


def test_exploration_keeps_probabilities_away_from_zero_and_one():
    torch.testing.assert_close(explore(torch.tensor([0.0, 0.5, 1.0])), torch.tensor([0.2, 0.5, 0.8]))


def test_curriculum_shrinks_the_upper_bound_from_start_to_end():
    bounds = {"all": 10.0, "k3e6": 4.0, "min": 1.0}
    assert curriculum(0, 5, bounds) == (1.0, 7.0)
    assert curriculum(4, 5, bounds) == (1.0, 2.0)
    uppers = [curriculum(e, 5, bounds)[1] for e in range(5)]
    assert uppers == sorted(uppers, reverse=True)
    assert curriculum(4, 5, {"all": 10.0, "k3e6": 1.0, "min": 1.0})[1] == pytest.approx(1.05)  # never below lower


def test_positive_advantage_makes_the_sampled_policy_more_likely():
    logits = torch.zeros(1, 2, 5, requires_grad=True)
    sample = torch.tensor([[[1.0, 0, 1, 0, 0], [0, 1, 0, 0, 1]]])
    policy_loss(explore(torch.sigmoid(logits)), sample, torch.tensor([5.0]), entropy=0.0).backward()
    # gradient descent moves the logits against the gradient: up where sampled on, down where off
    assert torch.all((-logits.grad > 0) == (sample > 0))


def test_entropy_bonus_pulls_probabilities_towards_a_half():
    logits = torch.tensor([[[2.0, -2.0]]], requires_grad=True)
    policy_loss(torch.sigmoid(logits), torch.zeros(1, 1, 2), torch.zeros(1), entropy=1.0).backward()
    assert logits.grad[0, 0, 0] > 0 and logits.grad[0, 0, 1] < 0
