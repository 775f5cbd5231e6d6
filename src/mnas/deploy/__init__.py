"""Layer 7: deploy a chosen architecture or trained model — the files a runtime runs: ONNX,
TorchScript, JSON (and LiteRT/ExecuTorch with their extras)::

    import mnas
    mnas.export(study.best().arch, "model.onnx", input_size=32, num_classes=10)
    mnas.export(None, "model.onnx", weights="runs/train/model.pt")       # a trained model file as it is

`mnas.export` is the function `mnas.deploy.export`; this package was `mnas.export`, a module that
was also callable, until issue 21 (as `mnas.search` became only the function and its package
`mnas.loop`), so that `mnas.export` is one thing whatever was imported before.
"""

from mnas.deploy.exporter import FORMATS, ExportResult, export, format_from_path

__all__ = ["FORMATS", "ExportResult", "export", "format_from_path"]
