"""A family of your own: search it, measure it, train it and export it with mnas.

A family is a kind of network with a canonical text form. Here: plain conv nets written
``convnet:16-32:k3`` (stage widths, each stage a kxk conv + BN + ReLU, stride 2 after the first;
global pooling; a linear classifier). What mnas needs from it:

1. an architecture class: immutable, ``str(arch)`` is its text, equal when the texts are, ``to_dict``;
2. an `ArchFamily`: `matches(text)` (cheap: is this text mine?), `parse(text)` (a ValueError naming the
   bad token otherwise), a `build(arch, num_classes, in_chans)` method, and optionally `count` (params
   and MACs without building) and `layer_signatures` (ops with their shapes, for a lookup table);
3. ``mnas.space.register_family(family)`` once per process, before any text is parsed (in every worker
   process too: register it at import time of the module that defines it);
4. a `SearchSpace` whose `decode` returns the architectures.

From then on `mnas.space.as_arch(text)`, `mnas.build_model`, the study, the latency backends,
training and export take it like any built-in family. `tests/space/test_family.py` shows how to
run the shared `FamilyTestSuite` on it.

    python examples/custom_family.py          # about a minute on one CPU core
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mnas
from mnas.space import ArchFamily, Decision, SearchSpace, register_family

_TEXT = re.compile(r"\s*convnet:(\S*?):(\S*)\s*\Z")


@dataclass(frozen=True)
class ConvNet:
    """Stage widths and one kernel size: the whole identity of the network."""

    widths: tuple[int, ...]
    kernel: int = 3

    def __post_init__(self) -> None:
        if not self.widths or any(not isinstance(w, int) or w < 1 for w in self.widths):
            raise ValueError(f"widths={self.widths!r}: expected positive integers")
        if self.kernel not in (1, 3, 5, 7):
            raise ValueError(f"kernel={self.kernel!r}: expected 1, 3, 5 or 7")

    def __str__(self) -> str:
        return f"convnet:{'-'.join(map(str, self.widths))}:k{self.kernel}"

    def to_dict(self) -> dict[str, Any]:
        return {"family": "convnet", "arch": str(self), "widths": list(self.widths), "kernel": self.kernel}


class ConvNetFamily(ArchFamily):
    name = "convnet"
    arch_type = ConvNet

    def matches(self, text: str) -> bool:
        return text.lstrip().startswith("convnet:")

    def parse(self, text: str) -> ConvNet:
        m = _TEXT.match(text)
        if not m:
            raise ValueError(f"bad convnet text {text.strip()!r}: expected 'convnet:<w1>-<w2>-...:k<kernel>'")
        widths, kernel = m.groups()
        for tok in widths.split("-"):
            if not tok.isdigit() or tok.startswith("0"):
                raise ValueError(f"bad width '{tok}' in '{text.strip()}': expected a positive integer")
        if not re.fullmatch(r"k[1-9]", kernel):
            raise ValueError(f"bad kernel '{kernel}' in '{text.strip()}': expected k1, k3, k5 or k7")
        return ConvNet(tuple(int(t) for t in widths.split("-")), int(kernel[1:]))

    def build(self, arch: ConvNet, num_classes: int, in_chans: int):  # torch only here, when a model is built
        from torch import nn

        layers, cin = [], in_chans
        for i, w in enumerate(arch.widths):
            layers += [nn.Conv2d(cin, w, arch.kernel, 1 if i == 0 else 2, arch.kernel // 2, bias=False),
                       nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
            cin = w
        model = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes))
        model.arch_string = str(arch)
        return model

    def count(self, arch: ConvNet, num_classes: int, in_chans: int = 3, input_size: int = 32) -> tuple[int, int]:
        params = macs = 0
        cin, res = in_chans, input_size
        for i, w in enumerate(arch.widths):
            res = res if i == 0 else (res - 1) // 2 + 1
            params += cin * w * arch.kernel ** 2 + 2 * w
            macs += cin * w * arch.kernel ** 2 * res * res
            cin = w
        return params + cin * num_classes + num_classes, macs + cin * num_classes


CONVNET = register_family(ConvNetFamily())


class ConvNetSpace(SearchSpace):
    """Three stages; decide each stage's width and the kernel size (3 * 3 * 3 * 2 = 54 networks)."""

    def __init__(self, num_classes: int = 10, input_size: int = 8):
        self.num_classes, self.input_size = num_classes, input_size
        self.decisions = (*(Decision(f"stage{i}_width", (8, 16, 24)) for i in range(3)), Decision("kernel", (3, 5)))

    def decode(self, tokens) -> ConvNet:
        t = self.check_tokens(tokens)
        return ConvNet(tuple(self.decisions[i].choices[t[i]] for i in range(3)), self.decisions[3].choices[t[3]])

    def encode(self, arch: ConvNet) -> list[int]:
        try:
            return [self.decisions[i].choices.index(w) for i, w in enumerate(arch.widths)] + \
                   [self.decisions[3].choices.index(arch.kernel)]
        except (ValueError, IndexError):
            raise ValueError(f"not in this space: '{arch}'") from None

    def settings(self) -> dict[str, Any]:
        return {"num_classes": self.num_classes, "input_size": self.input_size}


def main(trials: int = 4, out: str | Path | None = None) -> dict[str, Any]:
    """Search, measure, train and export; returns what it did (the test checks it)."""
    out = Path(out or tempfile.mkdtemp(prefix="mnas_custom_family_"))
    data = mnas.data.load("digits")  # 8x8 grey digits, bundled with scikit-learn: no download
    latency = mnas.latency.OnnxRuntime(threads=1)
    proxy = mnas.train.ProxyConfig(epochs=1, batch_size=64, threads=1, augment=False)
    space = ConvNetSpace(num_classes=data.num_classes, input_size=data.input_size)

    # 1. Search: proxy training on the data, latency measured by ONNX Runtime, every trial stored.
    study = mnas.search(space, data=data, latency=latency, proxy=proxy, reward=mnas.Reward.soft(target_ms=0.2),
                        strategy="evolution", budget=mnas.Budget(trials=trials), storage=f"sqlite:///{out}/study.db",
                        seed=0)
    best = study.best()
    arch = mnas.space.as_arch(best.arch)  # the stored text parses back into our family
    print(f"best of {len(study.trials)} trials: {arch} accuracy {best.accuracy:.3f}, {best.latency_ms:.3f} ms")

    # 2. Latency of the chosen network, on its own.
    measured = latency.measure(arch, data.input_size, data.num_classes, in_chans=data.channels)
    print(f"latency (ONNX Runtime, 1 thread): {measured.median_ms:.3f} ms median")

    # 3. Train it a little longer.
    model = mnas.build_model(arch, num_classes=data.num_classes, in_chans=data.channels)
    trained = mnas.train.train_proxy(model, data, mnas.train.ProxyConfig(epochs=3, batch_size=64, threads=1))
    print(f"trained 3 epochs: validation accuracy {trained.accuracy:.3f}")

    # 4. Export the trained module (ONNX, checked against PyTorch) and the architecture (JSON).
    onnx = mnas.export(model, out / "model.onnx", input_size=data.input_size, num_classes=data.num_classes,
                       in_chans=data.channels, check=True)
    mnas.export(arch, out / "model.json", input_size=data.input_size, num_classes=data.num_classes,
                in_chans=data.channels)
    print(f"exported {onnx.path} ({onnx.bytes} bytes, max |diff| {onnx.max_abs_diff:.2e}) and {out / 'model.json'}")
    return {"study": study, "arch": arch, "latency_ms": measured.median_ms, "accuracy": trained.accuracy,
            "onnx": onnx, "out": out}


if __name__ == "__main__":
    main()
