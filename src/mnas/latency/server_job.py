"""One measurement inside the device server's worker process: check, load, bind, time.

Every message returned here is written by mnas, never copied from ONNX Runtime: its error text
can quote tensor values (an out-of-range ``Gather`` prints the offending index), so it is returned
separately as ``detail`` for the server's log and the client gets the runtime's error class only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from mnas.latency.base import Protocol, time_callable
from mnas.latency.device import device_info, device_lock, runtime_versions
from mnas.latency.ort import check_shape
from mnas.latency.server_check import ModelRefused, check_model

__all__ = ["run_job", "runtime_facts"]

_DETAIL_CHARS = 2000


def runtime_facts() -> dict[str, Any]:
    """What the server reports about itself; imports ONNX Runtime (the worker's start-up cost)."""
    import onnxruntime  # noqa: F401 - imported here so that the parent never needs it

    return {"device": device_info(), "runtime": runtime_versions("onnxruntime", "numpy")}


class _Failure(Exception):
    def __init__(self, status: int, kind: str, message: str, exc: BaseException | None = None):
        super().__init__(message)
        self.status, self.kind, self.exc = status, kind, exc


def _runtime_failure(exc: BaseException, doing: str) -> _Failure:
    """A safe failure for an exception raised inside ONNX Runtime while `doing` something."""
    if isinstance(exc, MemoryError) or "failed to allocate" in str(exc).lower() or "bad_alloc" in str(exc).lower():
        return _Failure(422, "memory_limit", f"the model needs more memory than the server allows while {doing}"
                        " (the server's --max-memory-mb)", exc)
    return _Failure(400, "invalid_model", f"ONNX Runtime failed while {doing} ({type(exc).__name__}); the details"
                    " are in the server's log", exc)


def _session(model: bytes, threads: int, quiet: bool) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 4 if quiet else 3
    opts.add_session_config_entry("session.load_model_format", "ONNX")  # never sniff for the ORT format
    try:
        return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - ORT raises its own types for every kind of bad file
        raise _runtime_failure(exc, "loading the model") from None


def _bind(session: Any, shape: tuple[int, ...]) -> tuple[Any, list[Any]]:
    """An I/O binding with a random input of `shape` and pre-allocated outputs, as `mnas.latency.ort` does."""
    import onnxruntime as ort

    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise _Failure(400, "invalid_model", f"the model has {len(inputs)} inputs: latency is measured for models"
                       " with exactly one")
    spec = inputs[0]
    if spec.type != "tensor(float)":
        raise _Failure(400, "invalid_model", f"the model's input is {str(spec.type)[:40]}: expected tensor(float)")
    dims = [d if isinstance(d, int) else str(d)[:20] for d in spec.shape][:8]
    if len(spec.shape) != len(shape) or any(isinstance(d, int) and d != s for d, s in zip(spec.shape, shape, strict=True)):
        raise _Failure(400, "invalid_model", f"input shape {list(shape)} does not fit the model's input {dims}")
    x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    try:
        outputs = session.run(None, {spec.name: x})
        binding = session.io_binding()
        keep = [ort.OrtValue.ortvalue_from_numpy(x)]
        binding.bind_ortvalue_input(spec.name, keep[0])
        for out_spec, value in zip(session.get_outputs(), outputs, strict=True):
            buf = ort.OrtValue.ortvalue_from_numpy(np.empty_like(np.asarray(value)))
            binding.bind_ortvalue_output(out_spec.name, buf)
            keep.append(buf)
    except Exception as exc:  # noqa: BLE001 - a shape the graph cannot take, or a runtime error in the graph
        raise _runtime_failure(exc, f"running the model at input shape {list(shape)}") from None
    return binding, keep


def run_job(model: bytes, job: dict[str, Any], threads: int, quiet: bool,
            send: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Measure one job; the reply to send: ``{"ok": stats}`` or ``{"status", "kind", "error", "detail"}``.

    `send` reports ``wait``/``go`` around taking the device lock, so the parent can stop its clock.
    A reply with ``restart`` asks the parent for a fresh process (after a failed allocation)."""
    try:
        try:
            check_model(model)
        except ModelRefused as exc:
            raise _Failure(400, exc.kind, str(exc)) from None
        try:
            shape = check_shape(job.get("shape"))
            protocol = Protocol.from_dict(job.get("protocol") or {})
        except (TypeError, ValueError) as exc:
            raise _Failure(400, "bad_request", str(exc)) from None
        session = _session(model, threads, quiet)
        del model
        binding, keep = _bind(session, shape)
        run_binding = session.run_with_iobinding

        def run() -> None:
            run_binding(binding)

        send({"event": "wait"})
        with device_lock("cpu"):
            send({"event": "go"})
            try:
                timing = time_callable(run, protocol, "auto", single_thread=threads == 1)
            except Exception as exc:  # noqa: BLE001
                raise _runtime_failure(exc, "timing the model") from None
        del keep
        return {"ok": timing.stats()}
    except _Failure as failure:
        detail = "" if failure.exc is None else f"{type(failure.exc).__name__}: {failure.exc}"[:_DETAIL_CHARS]
        return {"status": failure.status, "kind": failure.kind, "error": str(failure), "detail": detail,
                "restart": failure.kind == "memory_limit"}
    except MemoryError:
        return {"status": 422, "kind": "memory_limit", "error": "the model needs more memory than the server allows"
                " (the server's --max-memory-mb)", "detail": "MemoryError", "restart": True}
    except Exception as exc:  # noqa: BLE001 - a defect here must not take the text of the model's tensors along
        return {"status": 500, "kind": "internal", "error": f"internal error in the measuring process"
                f" ({type(exc).__name__}); the details are in the server's log",
                "detail": f"{type(exc).__name__}: {exc}"[:_DETAIL_CHARS], "restart": True}
