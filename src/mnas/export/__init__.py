"""Layer 6: export a chosen architecture or trained model — ONNX, TorchScript or JSON::

    from mnas.export import export
    export(study.best().arch, "model.onnx", input_size=32, num_classes=10)
    export(None, "model.onnx", weights="runs/train/model.pt")       # a trained model file as it is
"""

import sys
import types

from mnas.export.exporter import FORMATS, ExportResult, export, format_from_path

__all__ = ["FORMATS", "ExportResult", "export", "format_from_path"]


class _CallableModule(types.ModuleType):
    """`mnas.export(...)` calls `export(...)` while `mnas.export.FORMATS` etc. stay reachable."""

    def __call__(self, *args, **kwargs):
        return export(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
