"""Published ImageNet weights (timm's) in the zoo builds.

The zoo builds line up with timm's builds of the same networks one to one: the same tensors in the
same order with the same shapes, only named differently (``conv_stem.0.weight`` for timm's
``conv_stem.weight``, ``conv_stem.1.*`` for ``bn1.*``, ...). So a timm state dict maps onto a zoo
build by position, checked tensor by tensor. Measured with timm 1.0.31: with the mapped weights and
timm's batch-norm epsilon the zoo build's logits equal timm's bit for bit for MnasNet-A1/B1/small and
MobileNetV2 at every multiplier timm has. timm's PyTorch-trained weights use eps 1e-5; the zoo builds
default to TensorFlow's 1e-3 (the papers' code), so `load_timm_weights` sets 1e-5 on the model it
fills: with 1e-3 the logits of MnasNet-B1 differ by up to 2% of their scale.

Downloading needs the internet (`download_published`); everything else works on a file the user
already has (``pytorch_model.bin``, ``model.safetensors`` with the optional `safetensors` package,
or any ``torch.save``-d state dict).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

__all__ = ["PUBLISHED", "TIMM_BN_EPS", "download_published", "load_timm_weights", "read_state_dict", "timm_name"]

TIMM_BN_EPS = 1e-5

# timm's pretrained tags for the zoo networks that have ImageNet weights (timm 1.0.x); the others
# (e.g. MnasNet-B1 x0.5) exist in timm only untrained
PUBLISHED: dict[str, str] = {
    "mnasnet_b1": "mnasnet_100.rmsp_in1k",
    "mnasnet_a1": "semnasnet_100.rmsp_in1k",
    "mnasnet_a1_x0.75": "semnasnet_075.rmsp_in1k",
    "mnasnet_small": "mnasnet_small.lamb_in1k",
    "mobilenetv2": "mobilenetv2_100.ra_in1k",
    "mobilenetv2_x0.5": "mobilenetv2_050.lamb_in1k",
    "mobilenetv2_x1.4": "mobilenetv2_140.ra_in1k",
}
_TIMM_FAMILY = {"mnasnet_b1": "mnasnet", "mnasnet_a1": "semnasnet", "mobilenetv2": "mobilenetv2"}
_URL = "https://huggingface.co/timm/{tag}/resolve/main/{file}"


def timm_name(zoo_name: str) -> str:
    """timm's model name for a zoo name: ``mnasnet_b1_x0.5`` -> ``mnasnet_050``, ``mnasnet_a1`` -> ``semnasnet_100``."""
    if zoo_name == "mnasnet_small":
        return zoo_name
    m = re.fullmatch(r"(mnasnet_b1|mnasnet_a1|mobilenetv2)(?:_x(\d+(?:\.\d+)?))?", zoo_name)
    if not m:
        raise ValueError(f"{zoo_name!r}: not a zoo network timm builds (expected mnasnet_a1, mnasnet_b1, mnasnet_small "
                         "or mobilenetv2, optionally with _x<multiplier>)")
    multiplier = float(m.group(2) or 1.0)
    return f"{_TIMM_FAMILY[m.group(1)]}_{round(multiplier * 100):03d}"


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from a file: ``.safetensors`` (needs `safetensors`), else a ``torch.save``-d dict
    (``pytorch_model.bin``, ``.pth``; a checkpoint holding it under ``state_dict``/``model`` works too)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file (download one with mnas.models.published.download_published)")
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise ValueError(f"{path}: reading .safetensors needs the safetensors package (pip install safetensors), "
                             "or use the pytorch_model.bin file") from None
        return load_file(str(path))
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same one-line answer
        raise ValueError(f"{path}: not a PyTorch state dict ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})") from None
    for key in ("state_dict", "model"):
        if isinstance(data, dict) and isinstance(data.get(key), dict):
            data = data[key]
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise ValueError(f"{path}: expected a dict of tensors (a state dict)")
    return data


def load_timm_weights(model: nn.Module | str, weights: Mapping[str, torch.Tensor] | str | Path, *,
                      classifier: bool | None = None) -> nn.Module:
    """Fill a zoo build (or the zoo name, built for timm's class count) with a timm state dict.

    Tensors are matched by position and every shape is checked; a mismatch raises a one-line
    ValueError naming both tensors. `classifier=None` copies the classifier only when the class
    counts agree (fine-tuning to other classes keeps the model's own); the model's batch norm gets
    timm's epsilon. Returns the model, in eval mode.
    """
    state = dict(read_state_dict(weights) if isinstance(weights, (str, Path)) else weights)
    if isinstance(model, str):
        from mnas.models.builder import build_model

        classes = state.get("classifier.weight")
        model = build_model(model, num_classes=int(classes.shape[0]) if classes is not None else 1000)
    ours = model.state_dict()
    theirs_keys, our_keys = list(state), list(ours)
    if len(theirs_keys) != len(our_keys):
        raise ValueError(f"the weights hold {len(theirs_keys)} tensors, the model {len(our_keys)}: not timm's build of "
                         "this network (check the name and multiplier with mnas.models.published.timm_name)")
    same_head = tuple(state[theirs_keys[-1]].shape) == tuple(ours[our_keys[-1]].shape) and \
        tuple(state[theirs_keys[-2]].shape) == tuple(ours[our_keys[-2]].shape)
    if classifier is None:
        classifier = same_head
    elif classifier and not same_head:
        raise ValueError(f"classifier: the weights have {tuple(state[theirs_keys[-2]].shape)}, the model "
                         f"{tuple(ours[our_keys[-2]].shape)}: build the model with timm's class count or pass classifier=False")
    mapped: dict[str, torch.Tensor] = {}
    body = len(our_keys) - (0 if classifier else 2)
    for theirs, mine in zip(theirs_keys[:body], our_keys[:body], strict=True):
        if tuple(state[theirs].shape) != tuple(ours[mine].shape):
            raise ValueError(f"tensor {theirs} {tuple(state[theirs].shape)} does not fit {mine} {tuple(ours[mine].shape)}: "
                             "not timm's build of this network")
        mapped[mine] = state[theirs]
    model.load_state_dict(mapped, strict=False)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eps = TIMM_BN_EPS
    return model.eval()


def download_published(zoo_name: str, directory: str | Path, *, progress: bool = True) -> Path:
    """Download the ImageNet weights timm publishes for `zoo_name` into `directory` (needs the
    internet; skipped when the file is already there) and return the file's path."""
    tag = PUBLISHED.get(zoo_name)
    if tag is None:
        raise ValueError(f"{zoo_name!r}: timm publishes no ImageNet weights for it (published: {', '.join(PUBLISHED)})")
    target = Path(directory) / f"{tag}.bin"
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(_URL.format(tag=tag, file="pytorch_model.bin"), str(target), progress=progress)
    return target

