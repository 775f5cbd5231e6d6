"""Small ONNX models, legitimate and hostile, for testing the device server (needs the `onnx` package).

Used by the server's tests and by ``benchmarks/probe_server.py``; the server itself never imports
this module. Every model is a few hundred bytes: what makes the hostile ones hostile is what they
ask the runtime to do (read a file, loop 10^15 times, allocate gigabytes), not their size.
"""

from __future__ import annotations

from typing import Any

__all__ = ["expand_bomb", "external_data_model", "gather_out_of_range", "loop_bomb", "relu_model", "serialise"]

OPSET = 17
IR_VERSION = 8


def _onnx() -> Any:
    from mnas._util import require

    return require("onnx", "the device server's test models")


def serialise(graph: Any, functions: list[Any] | None = None) -> bytes:
    """A ModelProto around `graph` at a fixed opset, as bytes (not checked: hostile models are invalid)."""
    onnx = _onnx()
    opsets = [onnx.helper.make_opsetid("", OPSET)]
    if functions:
        opsets.append(onnx.helper.make_opsetid("mnas.test", 1))
    model = onnx.helper.make_model(graph, opset_imports=opsets, functions=functions or [])
    model.ir_version = IR_VERSION
    return model.SerializeToString()


def relu_model(shape: tuple[int, ...] = (1, 3, 16, 16)) -> bytes:
    """y = relu(x) for a float input of `shape`: a legitimate model that loads and times in milliseconds."""
    onnx = _onnx()
    h, TP = onnx.helper, onnx.TensorProto
    graph = h.make_graph([h.make_node("Relu", ["x"], ["y"])], "relu",
                         [h.make_tensor_value_info("x", TP.FLOAT, list(shape))],
                         [h.make_tensor_value_info("y", TP.FLOAT, list(shape))])
    return serialise(graph)


def _external_tensor(name: str, location: str, data_type: int, dims: list[int], length: int,
                     with_entries: bool = True) -> Any:
    onnx = _onnx()
    tensor = onnx.TensorProto(name=name, data_type=data_type, dims=dims)
    tensor.data_location = onnx.TensorProto.EXTERNAL
    if with_entries:
        for key, value in (("location", location), ("offset", "0"), ("length", str(length))):
            entry = tensor.external_data.add()
            entry.key, entry.value = key, value
    return tensor


def external_data_model(location: str = "secret.bin", where: str = "initializer") -> bytes:
    """A model whose int64 tensor lives in the file `location` (relative to the runtime's directory).

    A ``Gather`` uses it as indices into a 2-element table, so ONNX Runtime's out-of-range error
    would print the file's first 8 bytes as an integer. `where` puts the tensor in the main graph's
    ``initializer``, a ``sparse`` initializer, a ``constant`` node's attribute, the body of a
    ``loop``, a branch of an ``if``, a model-local ``function``, or marks it EXTERNAL with
    ``no_entries``. Input: float x of shape [1].
    """
    onnx = _onnx()
    h, TP = onnx.helper, onnx.TensorProto
    table = h.make_tensor("table", TP.FLOAT, [2], [0.0, 1.0])
    x_in = h.make_tensor_value_info("x", TP.FLOAT, [1])
    y_out = h.make_tensor_value_info("y", TP.FLOAT, None)
    secret = _external_tensor("idx", location, TP.INT64, [1], 8, with_entries=where != "no_entries")
    gather = h.make_node("Gather", ["table", "idx"], ["g"])
    add = h.make_node("Add", ["x", "g"], ["y"])
    functions: list[Any] = []
    if where in ("initializer", "no_entries"):
        graph = h.make_graph([gather, add], "ext", [x_in], [y_out], initializer=[table, secret])
    elif where == "sparse":
        indices = h.make_tensor("idx_i", TP.INT64, [1], [0])
        sparse = h.make_sparse_tensor(secret, indices, [1])
        graph = h.make_graph([gather, add], "ext", [x_in], [y_out], initializer=[table], sparse_initializer=[sparse])
    elif where == "constant":
        const = h.make_node("Constant", [], ["idx"], value=secret)
        graph = h.make_graph([const, gather, add], "ext", [x_in], [y_out], initializer=[table])
    elif where in ("loop", "if"):
        if where == "if":
            branch = h.make_graph([h.make_node("Gather", ["table", "idx"], ["g"])], "branch", [],
                                  [h.make_tensor_value_info("g", TP.FLOAT, None)], initializer=[secret])
            cond = h.make_tensor("cond", TP.BOOL, [], [True])
            node = h.make_node("If", ["cond"], ["g"], then_branch=branch, else_branch=branch)
            graph = h.make_graph([node, add], "ext", [x_in], [y_out], initializer=[table, cond])
        else:
            body = h.make_graph(
                [h.make_node("Gather", ["table", "idx"], ["g_in"]), h.make_node("Add", ["s_in", "g_in"], ["s_out"]),
                 h.make_node("Identity", ["c_in"], ["c_out"])], "body",
                [h.make_tensor_value_info("i", TP.INT64, []), h.make_tensor_value_info("c_in", TP.BOOL, []),
                 h.make_tensor_value_info("s_in", TP.FLOAT, [1])],
                [h.make_tensor_value_info("c_out", TP.BOOL, []), h.make_tensor_value_info("s_out", TP.FLOAT, None)],
                initializer=[secret])
            trips, cond = h.make_tensor("M", TP.INT64, [], [1]), h.make_tensor("c", TP.BOOL, [], [True])
            node = h.make_node("Loop", ["M", "c", "x"], ["g"], body=body)
            graph = h.make_graph([node, add], "ext", [x_in], [y_out], initializer=[table, trips, cond])
    elif where == "function":
        const = h.make_node("Constant", [], ["idx"], value=secret)
        fn = h.make_function("mnas.test", "Leak", ["t"], ["o"], [const, h.make_node("Gather", ["t", "idx"], ["o"])],
                             [h.make_opsetid("", OPSET)])
        functions.append(fn)
        graph = h.make_graph([h.make_node("Leak", ["table"], ["g"], domain="mnas.test"), add], "ext", [x_in], [y_out],
                             initializer=[table])
    else:
        raise ValueError(f"where={where!r}: expected initializer, sparse, constant, loop, if, function or no_entries")
    return serialise(graph, functions)


def loop_bomb(trips: int = 10**15) -> bytes:
    """A ``Loop`` of `trips` iterations around an Identity: a valid model that never finishes. Input: float [1]."""
    onnx = _onnx()
    h, TP = onnx.helper, onnx.TensorProto
    body = h.make_graph(
        [h.make_node("Identity", ["c_in"], ["c_out"]), h.make_node("Identity", ["s_in"], ["s_out"])], "body",
        [h.make_tensor_value_info("i", TP.INT64, []), h.make_tensor_value_info("c_in", TP.BOOL, []),
         h.make_tensor_value_info("s_in", TP.FLOAT, [1])],
        [h.make_tensor_value_info("c_out", TP.BOOL, []), h.make_tensor_value_info("s_out", TP.FLOAT, [1])])
    graph = h.make_graph([h.make_node("Loop", ["M", "c", "x"], ["y"], body=body)], "loop",
                         [h.make_tensor_value_info("x", TP.FLOAT, [1])], [h.make_tensor_value_info("y", TP.FLOAT, [1])],
                         initializer=[h.make_tensor("M", TP.INT64, [], [trips]), h.make_tensor("c", TP.BOOL, [], [True])])
    return serialise(graph)


def expand_bomb(n: int = 20000) -> bytes:
    """``Expand`` of a 1-element input to n x n floats (1.6 GB at n=20000). Input: float [1]."""
    onnx = _onnx()
    h, TP = onnx.helper, onnx.TensorProto
    graph = h.make_graph([h.make_node("Expand", ["x", "s"], ["y"])], "expand",
                         [h.make_tensor_value_info("x", TP.FLOAT, [1])], [h.make_tensor_value_info("y", TP.FLOAT, None)],
                         initializer=[h.make_tensor("s", TP.INT64, [2], [n, n])])
    return serialise(graph)


def gather_out_of_range(index: int = 987654321) -> bytes:
    """A ``Gather`` at `index` (inline) into a 2-element table: ONNX Runtime's error text prints the index,
    as it would print bytes read from a file. Input: float [1]."""
    onnx = _onnx()
    h, TP = onnx.helper, onnx.TensorProto
    graph = h.make_graph([h.make_node("Gather", ["table", "idx"], ["g"]), h.make_node("Add", ["x", "g"], ["y"])], "gather",
                         [h.make_tensor_value_info("x", TP.FLOAT, [1])], [h.make_tensor_value_info("y", TP.FLOAT, None)],
                         initializer=[h.make_tensor("table", TP.FLOAT, [2], [0.0, 1.0]),
                                      h.make_tensor("idx", TP.INT64, [1], [index])])
    return serialise(graph)
