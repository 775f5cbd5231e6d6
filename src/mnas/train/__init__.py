"""Layer 3: data sets, batched augmentation, the proxy trainer and full training.

Search side: ``data = load("digits", val_fraction=0.1, seed=0)`` once, then per candidate
``train_proxy(build_model(arch, data.num_classes, data.channels), data, ProxyConfig(...))``.
Final side: ``train_full(arch, data, recipe("fast", epochs=30), out_dir)`` writes ``model.pt``.
"""

from mnas.train.config import RECIPES, ProxyConfig, TrainConfig, recipe
from mnas.train.data import Augment, Dataset, from_arrays, load, load_dataset
from mnas.train.full import load_model, train_full
from mnas.train.trainer import Result, TrainResult, evaluate, train_proxy

__all__ = [
    "RECIPES", "Augment", "Dataset", "ProxyConfig", "Result", "TrainConfig", "TrainResult", "evaluate",
    "from_arrays", "load", "load_dataset", "load_model", "recipe", "train_full", "train_proxy",
]
