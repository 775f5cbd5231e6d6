"""Small models, legitimate and hostile, for testing the device server.

ONNX models need the `onnx` package; .tflite and .pte flatbuffers are written by a small builder
here (standard library only), so the structural checks can be tested where neither LiteRT nor
ExecuTorch is installed. Used by the server's tests and by ``benchmarks/probe_server.py``; the
server itself never imports this module. Every model is a few hundred bytes: what makes the hostile
ones hostile is what they ask the runtime to do (read a file, loop 10^15 times, allocate gigabytes,
read past the end of the upload), not their size.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Table", "Vector", "build_flatbuffer", "expand_bomb", "external_data_model", "gather_out_of_range",
           "loop_bomb", "patch_pte_segment", "pte_program", "relu_model", "relu_tflite", "serialise", "tflite_while_bomb",
           "xnnpack_blob"]

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


# ----------------------------------------------------------------------------------------------
# Flatbuffers (.tflite, .pte), written front to back: a parent before its children, so that every
# 32-bit offset points forward as the format requires. Enough of the format for test files.

_SCALARS = {"u8": "B", "i8": "b", "u16": "H", "i16": "h", "u32": "I", "i32": "i", "u64": "Q", "i64": "q", "f32": "f"}


@dataclass
class Table:
    """A flatbuffer table: field slot -> ("u32", 5) for a scalar, or a `Table`, `Vector`, str (a
    string) or bytes (a [ubyte] vector, 16-byte aligned). The same object used twice is written once
    and shared where the offset can still point forward (the entries of one vector), as flatbuffers
    allow and as a hostile file does to make a walk revisit it."""

    fields: dict[int, Any] = field(default_factory=dict)


@dataclass
class Vector:
    """A vector of scalars (`kind` one of the scalar names) or of tables (`kind` "table") or strings ("string")."""

    kind: str
    items: list[Any]


class _Writer:
    def __init__(self, prefix: int):
        self.out = bytearray(prefix)
        self.placed: dict[int, int] = {}  # id of a Table or Vector -> its position: one object used twice is shared

    def align(self, n: int, extra: int = 0) -> None:
        while (len(self.out) + extra) % n:
            self.out.append(0)

    def patch(self, slot: int, target: int) -> None:
        struct.pack_into("<I", self.out, slot, target - slot)

    def place(self, value: Any, slot: int = 0) -> int:
        if isinstance(value, (Table, Vector)):
            if self.placed.get(id(value), -1) <= slot:  # shared only where the offset still points forward
                self.placed[id(value)] = self.table(value) if isinstance(value, Table) else self.vector(value)
            return self.placed[id(value)]
        if isinstance(value, str):
            value = value.encode()
            self.align(4)
            pos = len(self.out)
            self.out += struct.pack("<I", len(value)) + value + b"\0"
            return pos
        if isinstance(value, (bytes, bytearray)):
            self.align(16, 4)
            pos = len(self.out)
            self.out += struct.pack("<I", len(value)) + bytes(value)
            return pos
        raise TypeError(f"cannot write {type(value).__name__} as a flatbuffer object")

    def table(self, table: Table) -> int:
        layout, size, refs = {}, 4, []
        for index in sorted(table.fields):
            value = table.fields[index]
            width = struct.calcsize("<" + _SCALARS[value[0]]) if isinstance(value, tuple) else 4
            size += -size % width
            layout[index] = size
            size += width
        slots = max(table.fields, default=-1) + 1
        self.align(2)
        vtable = len(self.out)
        self.out += struct.pack(f"<HH{slots}H", 4 + 2 * slots, size, *[layout.get(i, 0) for i in range(slots)])
        self.align(8)
        pos = len(self.out)
        self.out += bytes(size)
        struct.pack_into("<i", self.out, pos, pos - vtable)
        for index, value in table.fields.items():
            if isinstance(value, tuple):
                struct.pack_into("<" + _SCALARS[value[0]], self.out, pos + layout[index], value[1])
            else:
                refs.append((pos + layout[index], value))
        for slot, value in refs:
            self.patch(slot, self.place(value, slot))
        return pos

    def vector(self, vector: Vector) -> int:
        if vector.kind in _SCALARS:
            fmt = "<" + _SCALARS[vector.kind]
            self.align(max(4, struct.calcsize(fmt)), 4)
            pos = len(self.out)
            self.out += struct.pack("<I", len(vector.items))
            for item in vector.items:
                self.out += struct.pack(fmt, item)
            return pos
        self.align(4)
        pos = len(self.out)
        self.out += struct.pack("<I", len(vector.items)) + bytes(4 * len(vector.items))
        for i, item in enumerate(vector.items):
            self.patch(pos + 4 + 4 * i, self.place(item, pos + 4 + 4 * i))
        return pos


def build_flatbuffer(root: Table, identifier: bytes, header: bytes = b"") -> bytes:
    """`root` as a flatbuffer with `identifier` (4 bytes) and, after it, `header` (the .pte extended header)."""
    writer = _Writer(8 + len(header))
    writer.out[4:8] = identifier
    writer.out[8:8 + len(header)] = header
    struct.pack_into("<I", writer.out, 0, writer.table(root))
    return bytes(writer.out)


# .tflite: LiteRT's schema.fbs (slots counted from 0), TensorType FLOAT32 = 0, BuiltinOperator RELU = 19.

def relu_tflite(shape: tuple[int, ...] = (1, 3, 8, 8), op: int = 19, custom_code: str | None = None,
                weight_offset: int | None = None, weight_size: int | None = None, external_buffer: bool = False,
                tensor_buffer: int = 0, op_input: int = 0, chain: int = 1) -> bytes:
    """y = relu(x) as a .tflite LiteRT loads and runs. The hostile variants: another builtin `op`
    (32 CUSTOM with `custom_code`, 51 DELEGATE); y = x + w with the constant w stored at
    `weight_offset` from the file's start (`weight_size` bytes, default w's size: 0 puts it right
    after the flatbuffer, a valid file), a tensor with an `external_buffer`, a tensor naming buffer
    `tensor_buffer`, an operator reading tensor `op_input`; `chain` Relus in a row (three tensors
    alive at once from two on: the input stays, as LiteRT keeps it)."""
    numel = 1
    for d in shape:
        numel *= d
    code = {0: ("i8", min(op, 127)), 2: ("i32", 1), 3: ("i32", op)}
    if custom_code is not None:
        code[1] = custom_code
    tensor = {0: Vector("i32", list(shape)), 1: ("u8", 0), 2: ("u32", tensor_buffer)}
    x = Table({**tensor, 3: "x"})
    y = Table({**tensor, 3: "y", **({10: ("u32", 1)} if external_buffer else {})})
    tensors, inputs, buffers = [x, y], [op_input], [Table(), Table()]
    if weight_offset is not None:
        if op == 19:
            code = {0: ("i8", 0), 2: ("i32", 1), 3: ("i32", 0)}  # ADD
        tensors.append(Table({**tensor, 2: ("u32", 2), 3: "w"}))
        inputs.append(2)
        buffers.append(Table({1: ("u64", weight_offset or 1), 2: ("u64", 4 * numel if weight_size is None else weight_size)}))
    steps = [0] + [len(tensors) + i for i in range(chain - 1)] + [1]  # x, the intermediates, y
    tensors += [Table({**tensor, 3: f"t{i}"}) for i in range(chain - 1)]
    operators = [Table({0: ("u32", 0), 1: Vector("i32", inputs if i == 0 else [steps[i]]),
                        2: Vector("i32", [steps[i + 1]])}) for i in range(chain)]
    subgraph = Table({0: Vector("table", tensors), 1: Vector("i32", [0]), 2: Vector("i32", [1]),
                      3: Vector("table", operators), 4: "main"})
    model = {0: ("u32", 3), 1: Vector("table", [Table(code)]), 2: Vector("table", [subgraph]), 3: "mnas test",
             4: Vector("table", buffers)}
    if external_buffer:
        model[8] = Vector("table", [Table({1: "weights.bin"})])
        model[9] = Vector("table", [Table({0: ("u32", 1), 1: ("u32", 0), 2: ("u64", 0), 3: ("u64", 64)})])
    data = build_flatbuffer(Table(model), b"TFL3")
    if weight_offset == 0:  # the weights after the flatbuffer, where a >2 GB model keeps its buffers: valid
        data += bytes(-len(data) % 16)
        at = len(data)
        data = _set_buffer_offset(data, at) + bytes(4 * numel)
    return data


def _set_buffer_offset(data: bytes, offset: int) -> bytes:
    """`data` with the offset of its last buffer (written as 1 by `relu_tflite`) set to `offset`."""
    from mnas.latency.server_flatbuffers import _Flatbuffer

    fb = _Flatbuffer(memoryview(data), ".tflite model")
    buffer = list(fb.tables(fb.root(), 4))[-1]
    out = bytearray(data)
    struct.pack_into("<Q", out, fb._field(buffer, 1, 8), offset)
    return bytes(out)


def tflite_while_bomb() -> bytes:
    """A valid .tflite whose ``WHILE`` never ends (its body adds 0 to the counter): what the time limit is for.
    Input and output: float [1]."""
    def tensor(name: str, kind: int, buffer: int = 0) -> Table:
        return Table({0: Vector("i32", [1]), 1: ("u8", kind), 2: ("u32", buffer), 3: name})

    float32, int32, boolean = 0, 2, 6
    less, add, while_ = 0, 1, 2  # operator code indices
    main = Table({0: Vector("table", [tensor("x", float32), tensor("i0", int32, 1), tensor("i", int32),
                                      tensor("y", float32)]),
                  1: Vector("i32", [0]), 2: Vector("i32", [3]),
                  3: Vector("table", [Table({0: ("u32", while_), 1: Vector("i32", [1, 0]), 2: Vector("i32", [2, 3]),
                                             3: ("u8", 93), 4: Table({0: ("i32", 1), 1: ("i32", 2)})})])})
    cond = Table({0: Vector("table", [tensor("i", int32), tensor("v", float32), tensor("limit", int32, 2),
                                      tensor("c", boolean)]),
                  1: Vector("i32", [0, 1]), 2: Vector("i32", [3]),
                  3: Vector("table", [Table({0: ("u32", less), 1: Vector("i32", [0, 2]), 2: Vector("i32", [3])})])})
    body = Table({0: Vector("table", [tensor("i", int32), tensor("v", float32), tensor("zero", int32, 3),
                                      tensor("i2", int32)]),
                  1: Vector("i32", [0, 1]), 2: Vector("i32", [3, 1]),
                  3: Vector("table", [Table({0: ("u32", add), 1: Vector("i32", [0, 2]), 2: Vector("i32", [3])})])})
    codes = [Table({0: ("i8", c), 2: ("i32", 1), 3: ("i32", c)}) for c in (58, 0, 119)]
    buffers = [Table(), Table({0: struct.pack("<i", 0)}), Table({0: struct.pack("<i", 1)}), Table({0: struct.pack("<i", 0)})]
    return build_flatbuffer(Table({0: ("u32", 3), 1: Vector("table", codes), 2: Vector("table", [main, cond, body]),
                                   4: Vector("table", buffers)}), b"TFL3")


# .pte: ExecuTorch's program.fbs, the extended header of exir/_serialize/_program.py, and the
# XNNPACK delegate's blob (backends/xnnpack/serialization).

def xnnpack_blob(named_key: str | None = None, constant_offset: int = 0, constant_size: int = 16,
                 constants: bytes = bytes(16), header: bool = True) -> bytes:
    """An XNNPACK delegate blob: header ``XH00``, an XNNGraph flatbuffer (``XN01``) with one constant
    (`named_key` in the program's named data, or `constant_offset`/`constant_size` in `constants`);
    without the `header`, the older layout: the graph alone, its constant inline in ``constant_buffer``."""
    if not header:
        return build_flatbuffer(Table({0: "1", 6: Vector("table", [Table(), Table({0: constants})])}), b"XN01")
    entry = {1: ("u64", constant_size)}
    if named_key:
        entry.update({0: ("u64", 2**64 - 1), 2: named_key})
    else:
        entry[0] = ("u64", constant_offset)
    graph = build_flatbuffer(Table({0: "1", 8: Vector("table", [Table(entry)])}), b"XN01")
    graph += bytes(-len(graph) % 16)
    head = bytes(4) + b"XH00" + struct.pack("<HIIIQ", 30, 32, len(graph), 32 + len(graph), len(constants))
    return head + bytes(2) + graph + constants


def pte_program(segments: list[bytes] | None = None, segment_offsets: list[tuple[int, int]] | None = None,
                delegate: bytes | None = None, delegate_in_segment: int | None = None,
                delegate_id: str = "XnnpackBackend", external_tensor: bool = False,
                named: dict[str, int] | None = None, identifier: bytes = b"ET12", header: bool | None = None) -> bytes:
    """A .pte program's structure (not a runnable program): one plan "forward" with one float tensor,
    optionally an XNNPACK `delegate` blob inline or in segment `delegate_in_segment`, data `segments`
    after the program (their (offset, size) from `segment_offsets`, else packed), an `external_tensor`
    (its data in a .ptd file), and `named` data (key -> segment index)."""
    segments = segments or []
    extra = Table({1: "weight", 2: ("i8", 1)}) if external_tensor else None
    tensor = Table({0: ("i8", 6), 2: Vector("i32", [1, 3, 8, 8]), 3: Vector("u8", [0, 1, 2, 3]),
                    **({9: extra} if extra else {})})
    plan = {0: "forward", 2: Vector("table", [Table({0: ("u8", 5), 1: tensor})]), 3: Vector("i32", [0]),
            4: Vector("i32", [0])}
    program = {0: ("u32", 0), 1: Vector("table", [Table(plan)])}
    if delegate is not None:
        where = {0: ("i8", 1), 1: ("u32", delegate_in_segment)} if delegate_in_segment is not None else {1: ("u32", 0)}
        plan[7] = Vector("table", [Table({0: delegate_id, 1: Table(where)})])
        if delegate_in_segment is None:
            program[3] = Vector("table", [Table({0: delegate})])
    packed, cursor = [], 0  # where the segments are written; `segment_offsets` is what the program claims
    for data in segments:
        cursor += -cursor % 16
        packed.append((cursor, len(data)))
        cursor += len(data)
    offsets = segment_offsets if segment_offsets is not None else packed
    if offsets:
        program[4] = Vector("table", [Table({0: ("u64", o), 1: ("u64", n)}) for o, n in offsets])
    if named:
        program[7] = Vector("table", [Table({0: key, 1: ("u32", index)}) for key, index in named.items()])
    with_header = bool(segments or offsets) if header is None else header
    data = bytearray(build_flatbuffer(Table(program), identifier, bytes(32) if with_header else b""))
    if not with_header:
        return bytes(data)
    data += bytes(-len(data) % 16)
    base = len(data)
    for (offset, _size), blob in zip(packed, segments, strict=True):
        data += bytes(base + offset - len(data))
        data += blob
    struct.pack_into("<4sIQQQ", data, 8, b"eh00", 32, base, base, len(data) - base)
    return bytes(data)


def patch_pte_segment(program: bytes, index: int = -1, offset: int | None = None, size: int | None = None) -> bytes:
    """A real .pte with data segment `index`'s offset and/or size (relative to the segment base) replaced,
    e.g. pointing past the end of the file."""
    from mnas.latency.server_flatbuffers import _Flatbuffer

    fb = _Flatbuffer(memoryview(program), ".pte program")
    segment = list(fb.tables(fb.root(), 4))[index]
    out = bytearray(program)
    for slot, value in ((0, offset), (1, size)):
        if value is not None:
            pos = fb._field(segment, slot, 8)
            if pos is None:
                raise ValueError(f"segment {index} has no field {slot} to patch")
            struct.pack_into("<Q", out, pos, value)
    return bytes(out)
