"""Optimisers, the learning-rate schedule and the weight EMA, each with state for exact resume."""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn

from mnas.train.config import TrainConfig

__all__ = ["LRSchedule", "ModelEma", "RMSpropTF", "make_optimizer"]


class RMSpropTF(torch.optim.Optimizer):
    """RMSProp as in TensorFlow, which MnasNet was trained with: the mean square starts at one and
    epsilon sits inside the square root (PyTorch's RMSprop differs on both, which matters at
    eps=1e-3). Weight decay is L2, added to the gradient."""

    def __init__(self, params: Any, lr: float, alpha: float = 0.9, eps: float = 1e-3, momentum: float = 0.9,
                 weight_decay: float = 0.0):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, momentum=momentum, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if group["weight_decay"]:
                    grad = grad.add(p, alpha=group["weight_decay"])
                state = self.state[p]
                if not state:
                    state["square_avg"] = torch.ones_like(p)
                    state["momentum_buffer"] = torch.zeros_like(p)
                sq = state["square_avg"]
                sq.mul_(group["alpha"]).addcmul_(grad, grad, value=1 - group["alpha"])
                update = grad / (sq + group["eps"]).sqrt_()
                buf = state["momentum_buffer"]
                buf.mul_(group["momentum"]).add_(update, alpha=group["lr"])
                p.sub_(buf)
        return loss


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """SGD or TF-style RMSProp; weight decay on conv and linear weights only, not on BN or biases."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if config.optimizer == "sgd":
        nesterov = config.nesterov and config.momentum > 0
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=nesterov)
    return RMSpropTF(groups, lr=config.lr, alpha=config.rms_decay, eps=config.eps, momentum=config.momentum)


class LRSchedule:
    """Linear warm-up from ~0 to `base_lr`, then cosine decay to zero or a staircase exponential decay
    (x`decay_rate` every `decay_steps`, MnasNet's schedule). A pure function of the step: its state is
    the step count."""

    def __init__(self, base_lr: float, total_steps: int, warmup_steps: int = 0, kind: str = "cosine",
                 decay_rate: float = 0.97, decay_steps: float = 1.0):
        self.base_lr, self.total_steps, self.kind = base_lr, max(1, total_steps), kind
        self.warmup_steps = min(warmup_steps, self.total_steps - 1) if self.total_steps > 1 else 0
        self.decay_rate, self.decay_steps = decay_rate, max(decay_steps, 1e-9)
        self.step_count = 0

    @classmethod
    def from_config(cls, config: TrainConfig, total_steps: int, steps_per_epoch: int) -> LRSchedule:
        return cls(config.lr, total_steps, int(round(config.warmup_epochs * steps_per_epoch)), config.schedule,
                   config.decay_rate, config.decay_epochs * steps_per_epoch)

    def lr_at(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.base_lr * (step + 1) / (self.warmup_steps + 1)
        t = step - self.warmup_steps
        if self.kind == "cosine":
            span = max(1, self.total_steps - self.warmup_steps)
            return 0.5 * self.base_lr * (1 + math.cos(math.pi * min(t, span) / span))
        return self.base_lr * self.decay_rate ** math.floor(t / self.decay_steps)

    def apply(self, optimizer: torch.optim.Optimizer) -> float:
        """Set the learning rate for the next step on every group; advance the step count."""
        lr = self.lr_at(self.step_count)
        for group in optimizer.param_groups:
            group["lr"] = lr
        self.step_count += 1
        return lr

    def state_dict(self) -> dict[str, Any]:
        return dict(vars(self))

    def load_state_dict(self, state: dict[str, Any]) -> None:
        vars(self).update(state)


class ModelEma:
    """Exponential moving average of a model's weights and buffers, with TensorFlow's ramp
    decay = min(decay, (1 + n) / (10 + n)) so the average is useful early in a run too."""

    def __init__(self, model: nn.Module, decay: float):
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.decay, self.updates = decay, 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        ema_float, model_float = [], []
        for e, m in zip(self.module.state_dict().values(), model.state_dict().values(), strict=True):
            if e.is_floating_point():
                ema_float.append(e)
                model_float.append(m.detach())
            else:
                e.copy_(m)
        torch._foreach_lerp_(ema_float, model_float, 1.0 - d)

    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "updates": self.updates, "module": self.module.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.decay, self.updates = state["decay"], state["updates"]
        self.module.load_state_dict(state["module"])
