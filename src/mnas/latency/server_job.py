"""One measurement inside the device server's worker process: check, load, bind, time.

A worker serves one runtime (`RUNTIMES`): ONNX Runtime (.onnx), LiteRT with its XNNPACK delegate
(.tflite) or ExecuTorch (.pte, XNNPACK-lowered). Every file is checked before the runtime sees it
(`mnas.latency.server_check` for ONNX, `mnas.latency.server_flatbuffers` for the flatbuffers) and
timed by the same protocol (`mnas.latency.base.time_callable`) under the device lock.

Every message returned here is written by mnas, never copied from a runtime: ONNX Runtime's error
text can quote tensor values (an out-of-range ``Gather`` prints the offending index), so it is
returned separately as ``detail`` for the server's log and the client gets the error class only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from mnas.latency.base import Protocol, time_callable
from mnas.latency.device import device_info, device_lock, runtime_versions
from mnas.latency.ort import check_shape, io_binding
from mnas.latency.server_check import ModelRefused, check_model

__all__ = ["FORMATS", "INSTALL", "NAMES", "RUNTIMES", "check_file", "run_job", "runtime_facts"]

RUNTIMES = ("onnxruntime", "litert", "executorch")
FORMATS = {"onnxruntime": ".onnx", "litert": ".tflite", "executorch": ".pte"}
NAMES = {"onnxruntime": "ONNX Runtime", "litert": "LiteRT", "executorch": "ExecuTorch"}
# What a device needs to serve each runtime (the converters of the [litert]/[executorch] extras stay on the client).
INSTALL = {"onnxruntime": "pip install 'mnas[server]'", "litert": "pip install ai-edge-litert",
           "executorch": "pip install executorch"}
MODULES = {"onnxruntime": "onnxruntime", "litert": "ai_edge_litert", "executorch": "executorch"}
DISTRIBUTIONS = {"onnxruntime": "onnxruntime", "litert": "ai-edge-litert", "executorch": "executorch"}
_DETAIL_CHARS = 2000


def runtime_facts(runtime: str = "onnxruntime") -> dict[str, Any]:
    """What the server reports about itself; imports the runtime (the worker's start-up cost)."""
    from mnas.latency.quantize import package_versions

    if runtime == "litert":
        import ai_edge_litert.interpreter  # noqa: F401 - imported here so that the parent never needs it

        versions = {**runtime_versions("numpy"), **package_versions("ai-edge-litert")}
    elif runtime == "executorch":
        import executorch.runtime  # noqa: F401

        versions = {**runtime_versions("torch", "numpy"), **package_versions("executorch")}
    else:
        import onnxruntime  # noqa: F401

        versions = runtime_versions("onnxruntime", "numpy")
    return {"device": device_info(), "runtime": versions}


def check_file(runtime: str, model: bytes) -> None:
    """`ModelRefused` unless `model` passes the structural check of `runtime`'s format."""
    if runtime == "litert":
        from mnas.latency.server_flatbuffers import check_tflite

        check_tflite(model)
    elif runtime == "executorch":
        from mnas.latency.server_flatbuffers import check_pte

        check_pte(model)
    else:
        check_model(model)


class _Failure(Exception):
    def __init__(self, status: int, kind: str, message: str, exc: BaseException | None = None):
        super().__init__(message)
        self.status, self.kind, self.exc = status, kind, exc


def _runtime_failure(exc: BaseException, doing: str, runtime: str = "onnxruntime") -> _Failure:
    """A safe failure for an exception raised inside `runtime` while `doing` something."""
    text = str(exc).lower()
    if isinstance(exc, MemoryError) or "failed to allocate" in text or "bad_alloc" in text or "memoryallocationfailed" in text:
        return _Failure(422, "memory_limit", f"the model needs more memory than the server allows while {doing}"
                        " (the server's --max-memory-mb)", exc)
    return _Failure(400, "invalid_model", f"{NAMES.get(runtime, runtime)} failed while {doing}"
                    f" ({type(exc).__name__}); the details are in the server's log", exc)


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
        binding, keep = io_binding(session, spec.name, x, outputs)
    except Exception as exc:  # noqa: BLE001 - a shape the graph cannot take, or a runtime error in the graph
        raise _runtime_failure(exc, f"running the model at input shape {list(shape)}") from None
    return binding, keep


def _prepare_onnx(model: bytes, shape: tuple[int, ...], threads: int, quiet: bool) -> tuple[Callable[[], None], Any]:
    session = _session(model, threads, quiet)
    binding, keep = _bind(session, shape)
    run_binding = session.run_with_iobinding

    def run() -> None:
        run_binding(binding)

    return run, (session, keep)


def _shape_mismatch(shape: tuple[int, ...], dims: Any) -> _Failure:
    shown = [int(d) for d in list(dims)[:8]]
    return _Failure(400, "invalid_model", f"input shape {list(shape)} does not fit the model's input {shown}")


def _tensor_bytes(it: Any) -> int:
    """What a LiteRT interpreter's tensors take at their declared shapes (0 if it cannot say)."""
    total = 0
    try:
        for detail in it.get_tensor_details():
            total += int(np.prod([max(int(d), 0) for d in detail["shape"]], dtype=np.float64)) * np.dtype(
                detail["dtype"]).itemsize
    except Exception:  # noqa: BLE001 - a tensor of an odd type: no estimate
        return 0
    return total


def _headroom() -> float:
    """Bytes this process may still map under its address-space cap (infinite when there is none)."""
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
        if soft == resource.RLIM_INFINITY:
            return float("inf")
        with open("/proc/self/status") as status:
            size = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))
        return float(soft - size)
    except (ImportError, OSError, StopIteration, ValueError):
        return float("inf")


def _prepare_tflite(model: bytes, shape: tuple[int, ...], threads: int, quiet: bool) -> tuple[Callable[[], None], Any]:
    """A LiteRT interpreter (its default XNNPACK delegate, as `mnas.latency.litert`) with a seeded input set."""
    from ai_edge_litert import interpreter as interp

    from mnas.latency.litert import _input_array

    try:
        it = interp.Interpreter(model_content=model, num_threads=int(threads))
    except Exception as exc:  # noqa: BLE001 - the interpreter raises ValueError/RuntimeError for a bad file
        raise _runtime_failure(exc, "loading the model", "litert") from None
    try:
        it.allocate_tensors()
    except Exception as exc:  # noqa: BLE001 - an allocation over the cap raises RuntimeError with no text
        if _tensor_bytes(it) > _headroom():
            raise _Failure(422, "memory_limit", "the model's tensors need more memory than the server allows"
                           " (the server's --max-memory-mb)", exc) from None
        raise _runtime_failure(exc, "allocating the model's tensors", "litert") from None
    details = it.get_input_details()
    if len(details) != 1:
        raise _Failure(400, "invalid_model", f"the model has {len(details)} inputs: latency is measured for models"
                       " with exactly one")
    detail = details[0]
    if tuple(int(d) for d in detail["shape"]) != tuple(shape):
        raise _shape_mismatch(shape, detail["shape"])
    dtype = np.dtype(detail["dtype"])
    if dtype.kind not in "fiu" or dtype.itemsize > 4:
        raise _Failure(400, "invalid_model", f"the model's input is {dtype.name}: expected a float or 8-bit integer tensor")
    try:
        it.set_tensor(detail["index"], _input_array(detail, shape))
        it.invoke()  # a shape or op the runtime cannot take fails here, outside the timing
    except Exception as exc:  # noqa: BLE001
        raise _runtime_failure(exc, f"running the model at input shape {list(shape)}", "litert") from None
    return it.invoke, it


def _prepare_pte(model: bytes, shape: tuple[int, ...], threads: int, quiet: bool) -> tuple[Callable[[], None], Any]:
    """The program's ``forward`` method (ExecuTorch's runtime, full verification) with a seeded float input."""
    import torch
    from executorch.runtime import Runtime, Verification

    from mnas.latency.executorch_backend import _set_threads

    _set_threads(threads)
    try:
        program = Runtime.get().load_program(bytes(model), verification=Verification.InternalConsistency)
        method = program.load_method("forward")
    except Exception as exc:  # noqa: BLE001 - the runtime raises RuntimeError/ValueError for a bad program
        raise _runtime_failure(exc, "loading the program", "executorch") from None
    if method is None:
        raise _Failure(400, "invalid_model", "the program has no 'forward' method")
    try:
        meta = method.metadata
        count = meta.num_inputs()
        sizes = tuple(int(d) for d in meta.input_tensor_meta(0).sizes()) if count == 1 else ()
    except Exception as exc:  # noqa: BLE001
        raise _runtime_failure(exc, "reading the program's inputs", "executorch") from None
    if count != 1:
        raise _Failure(400, "invalid_model", f"the program has {count} inputs: latency is measured for programs with"
                       " exactly one")
    if sizes != tuple(shape):
        raise _shape_mismatch(shape, sizes)
    inputs = [torch.randn(shape, generator=torch.Generator().manual_seed(0))]
    execute = method.execute
    try:
        execute(inputs)
    except Exception as exc:  # noqa: BLE001
        raise _runtime_failure(exc, f"running the program at input shape {list(shape)}", "executorch") from None

    def run() -> None:
        execute(inputs)

    return run, (program, method, inputs)


_PREPARE = {"onnxruntime": _prepare_onnx, "litert": _prepare_tflite, "executorch": _prepare_pte}


def run_job(model: bytes, job: dict[str, Any], threads: int, quiet: bool,
            send: Callable[[dict[str, Any]], None], runtime: str = "onnxruntime") -> dict[str, Any]:
    """Measure one job in `runtime`; the reply to send: ``{"ok": stats}`` or ``{"status", "kind", "error", "detail"}``.

    `send` reports ``wait``/``go`` around taking the device lock, so the parent can stop its clock.
    A reply with ``restart`` asks the parent for a fresh process (after a failed allocation)."""
    try:
        try:
            check_file(runtime, model)
        except ModelRefused as exc:
            raise _Failure(400, exc.kind, str(exc)) from None
        try:
            shape = check_shape(job.get("shape"))
            protocol = Protocol.from_dict(job.get("protocol") or {})
        except (TypeError, ValueError) as exc:
            raise _Failure(400, "bad_request", str(exc)) from None
        run, keep = _PREPARE[runtime](model, shape, threads, quiet)
        del model
        send({"event": "wait"})
        with device_lock("cpu"):
            send({"event": "go"})
            if runtime == "executorch":  # its thread pool is process-wide: set it again under the lock
                from mnas.latency.executorch_backend import _set_threads

                _set_threads(threads)
            try:
                timing = time_callable(run, protocol, "auto", single_thread=threads == 1)
            except Exception as exc:  # noqa: BLE001
                raise _runtime_failure(exc, "timing the model", runtime) from None
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
