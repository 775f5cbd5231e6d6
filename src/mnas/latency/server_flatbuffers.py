"""Refuse .tflite and .pte files that point outside themselves, before a runtime loads them (standard library only).

LiteRT (.tflite) and ExecuTorch (.pte) files are flatbuffers: tables reached by 32-bit offsets, plus
(in both formats) raw byte ranges named by 64-bit offsets and sizes. A runtime trusts those numbers:
a buffer whose offset runs past the end of the upload makes it read the measuring process's own
memory, and both formats can name data kept in *another file* (a .tflite's external buffers, a
.pte's external tensors and named weights that live in a .ptd file). So the device server walks
every file it is sent, with every read bounds-checked, in its measuring process before the runtime
is given the file (the walk is then under the same time and memory caps as the runtime; the HTTP
process checks only the identifier, `check_identifier`):

`check_tflite` (identifier ``TFL3``): the model's tables, vectors and strings lie inside the file;
every buffer with data outside the flatbuffer (``offset``/``size``) lies inside the file; every
tensor names an existing buffer and every operator an existing operator code and tensors; no custom
operator (``CUSTOM``, ``STABLEHLO_CUSTOM_CALL``: their options are parsed by code that trusts them)
and no ``DELEGATE`` node (a serialised delegate's opaque blob); no external buffers or buffer groups.

`check_pte` (identifier ``ET`` + two characters): the extended header's program size and segment
base inside the file; every data segment (segment base + offset + size) inside the file and inside
the header's segment data; the constant and mutable sub-segments' offsets inside their segment; no
tensor whose data is ``EXTERNAL``; every named-data entry in an existing segment; delegates are
XNNPACK only, their data inline or in an existing segment, and the XNNPACK blob's own header
(``XH00``: flatbuffer and constant-data ranges) inside the blob, its constants inside its constant
data or named in this file's named data (a name not in the file is a reference to an external .ptd).

What is not checked here is left to the runtime and the worker's sandbox (time and memory caps, a
crash answered 422): the operators' semantics, the XNNPACK graph's nodes and values, quantisation
parameters. The walk costs time in the number of tables and vector elements visited, bounded by a
budget proportional to the file's size, so a file whose offsets make the walk revisit the same
tables over and over is refused instead of walked for ever.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator

from mnas.latency.server_check import ModelRefused

__all__ = ["check_identifier", "check_pte", "check_tflite"]

# .tflite: BuiltinOperator codes whose operators run code outside the builtin kernels (schema.fbs).
_TFLITE_CUSTOM, _TFLITE_DELEGATE, _TFLITE_STABLEHLO_CUSTOM_CALL = 32, 51, 173
_TFLITE_REFUSED_OPS = {_TFLITE_CUSTOM: "CUSTOM", _TFLITE_DELEGATE: "DELEGATE",
                       _TFLITE_STABLEHLO_CUSTOM_CALL: "STABLEHLO_CUSTOM_CALL"}
# .pte
_PTE_IDENTIFIER = re.compile(rb"ET[0-9a-zA-Z]{2}")
_PTE_HEADER_MAGIC, _PTE_HEADER_MIN = b"eh00", 24
_PTE_TENSOR = 5  # KernelTypes.Tensor (union types count from 1; 0 is NONE)
_PTE_EXTERNAL = 1  # TensorDataLocation.EXTERNAL
_PTE_INLINE, _PTE_SEGMENT = 0, 1  # DataLocation of a delegate's processed data
_XNNPACK_IDS = {"XnnpackBackend"}
_XNN_HEADER_MAGIC, _XNN_HEADER_LENGTH = b"XH00", 30
_XNN_IDENTIFIER = re.compile(rb"XN[0-9a-zA-Z]{2}")
_UINT64_MAX = 2**64 - 1


def _invalid(what: str, detail: str) -> ModelRefused:
    return ModelRefused(f"not a valid {what}: {detail}", "invalid_model")


class _Flatbuffer:
    """Bounds-checked reads of one flatbuffer inside `buf[base:end]`; offsets are absolute in `buf`.

    Every read that would leave [base, end) raises `ModelRefused` naming `what` (".tflite model",
    ".pte program"); `steps` counts tables and vector elements visited against `budget`."""

    def __init__(self, buf: memoryview, what: str, base: int = 0, end: int | None = None, budget: int | None = None):
        self.buf, self.what, self.base = buf, what, base
        self.end = len(buf) if end is None else end
        self.steps = 0
        # A file walked once costs at most about one step per 2 bytes (a table vector's entry is 4 bytes and
        # counts twice: as an entry and as the table it reaches); more means tables are being revisited.
        self.budget = budget if budget is not None else (self.end - base) // 2 + 10_000

    def fail(self, detail: str) -> ModelRefused:
        return _invalid(self.what, detail)

    def _need(self, pos: int, size: int) -> None:
        if pos < self.base or pos + size > self.end:
            raise self.fail("truncated, or an offset points past the end of the file")

    def _step(self, count: int = 1) -> None:
        self.steps += count
        if self.steps > self.budget:
            raise self.fail("its tables are reached more often than a file of its size can hold (a hostile layout)")

    def scalar(self, fmt: str, pos: int) -> int:
        size = struct.calcsize("<" + fmt)
        self._need(pos, size)
        return struct.unpack_from("<" + fmt, self.buf, pos)[0]

    def root(self) -> int:
        """The position of the root table."""
        return self._table_at(self.base + self.scalar("I", self.base))

    def _table_at(self, pos: int) -> int:
        self._step()
        self._need(pos, 4)
        vtable = pos - self.scalar("i", pos)
        vlen, tlen = self.scalar("H", vtable), self.scalar("H", vtable + 2)
        if vlen < 4 or vlen % 2:
            raise self.fail(f"a table's vtable has length {vlen}")
        self._need(vtable, vlen)
        self._need(pos, max(tlen, 4))
        return pos

    def _field(self, table: int, index: int, size: int) -> int | None:
        """The absolute position of field `index` of the table at `table`, or None when absent."""
        vtable = table - self.scalar("i", table)
        voffset = 4 + 2 * index
        if voffset >= self.scalar("H", vtable):
            return None
        offset = self.scalar("H", vtable + voffset)
        if offset == 0:
            return None
        if offset + size > self.scalar("H", vtable + 2):
            raise self.fail("a field lies outside its table")
        return table + offset

    def get(self, table: int, index: int, fmt: str, default: int = 0) -> int:
        pos = self._field(table, index, struct.calcsize("<" + fmt))
        return default if pos is None else self.scalar(fmt, pos)

    def _target(self, table: int, index: int) -> int | None:
        pos = self._field(table, index, 4)
        if pos is None:
            return None
        target = pos + self.scalar("I", pos)
        self._need(target, 4)
        return target

    def table(self, table: int, index: int) -> int | None:
        target = self._target(table, index)
        return None if target is None else self._table_at(target)

    def vector(self, table: int, index: int, elem_size: int) -> tuple[int, int]:
        """(position of the first element, count) of a vector field; (0, 0) when absent."""
        target = self._target(table, index)
        if target is None:
            return 0, 0
        count = self.scalar("I", target)
        self._need(target + 4, count * elem_size)
        return target + 4, count

    def bytes_range(self, table: int, index: int) -> tuple[int, int]:
        """(start, stop) of a [ubyte] vector's bytes; (0, 0) when absent."""
        start, count = self.vector(table, index, 1)
        return start, start + count

    def string(self, table: int, index: int, limit: int = 200) -> str:
        start, stop = self.bytes_range(table, index)
        return bytes(self.buf[start:min(stop, start + limit)]).decode("utf-8", "replace")

    def count(self, table: int, index: int) -> int:
        """The length of a vector-of-tables field (0 when absent)."""
        return self.vector(table, index, 4)[1]

    def tables(self, table: int, index: int) -> Iterator[int]:
        """The tables of a vector-of-tables field, in order, one at a time (no list: a vector can hold
        millions of entries)."""
        start, count = self.vector(table, index, 4)
        self._step(count)
        for i in range(count):
            yield self._table_at(start + 4 * i + self.scalar("I", start + 4 * i))

    def ints(self, table: int, index: int, fmt: str = "i") -> Iterator[int]:
        size = struct.calcsize("<" + fmt)
        start, count = self.vector(table, index, size)
        self._step(count)
        for (value,) in struct.iter_unpack("<" + fmt, self.buf[start:start + size * count]):
            yield value


def _identifier(buf: memoryview, what: str, expected: re.Pattern, shown: str) -> None:
    if len(buf) < 8:
        raise _invalid(what, f"{len(buf)} bytes is too short for a flatbuffer")
    ident = bytes(buf[4:8])
    if not expected.fullmatch(ident):
        raise _invalid(what, f"its file identifier is {ident!r}, expected {shown}")


def check_identifier(model: bytes | bytearray | memoryview, fmt: str) -> None:
    """`ModelRefused` unless `model` carries the file identifier of `fmt` ("tflite" or "pte"): constant time,
    for the server's HTTP process to refuse an obviously wrong file before a runtime's process starts."""
    buf = memoryview(model).cast("B")
    if fmt == "tflite":
        _identifier(buf, ".tflite model", re.compile(rb"TFL3"), "b'TFL3'")
    else:
        _identifier(buf, ".pte program", _PTE_IDENTIFIER, "b'ET' and two letters or digits (b'ET12')")


def _inside(fb: _Flatbuffer, what: str, start: int, size: int, limit: int) -> None:
    if start > limit or size > limit - start:
        raise fb.fail(f"{what} covers bytes {start}..{start + size}, past the end of the {limit}-byte file")


# ----------------------------------------------------------------------------------------------
# .tflite (LiteRT schema.fbs; field numbers are the vtable slots, counted from 0)

def check_tflite(model: bytes | bytearray | memoryview) -> None:
    """Return if `model` is a .tflite flatbuffer that stays inside itself (see the module docstring);
    `ModelRefused` otherwise (kinds ``invalid_model``, ``unsupported_op``, ``file_reference``)."""
    buf = memoryview(model).cast("B")
    what = ".tflite model"
    _identifier(buf, what, re.compile(rb"TFL3"), "b'TFL3'")
    fb = _Flatbuffer(buf, what)
    model_t = fb.root()
    size = len(buf)
    # Model: 0 version, 1 operator_codes, 2 subgraphs, 3 description, 4 buffers, 5 metadata_buffer,
    # 6 metadata, 7 signature_defs, 8 external_buffer_groups, 9 external_buffers
    if fb.vector(model_t, 8, 4)[1] or fb.vector(model_t, 9, 4)[1]:
        raise ModelRefused("the model keeps weights in external files (external buffers), which the device server"
                           " refuses: convert with the weights inside the .tflite", "file_reference")
    fb.string(model_t, 3)
    codes = []
    for code in fb.tables(model_t, 1):  # OperatorCode: 0 deprecated_builtin_code (byte), 1 custom_code, 3 builtin_code
        builtin = max(fb.get(code, 0, "b"), fb.get(code, 3, "i"))
        if builtin in _TFLITE_REFUSED_OPS:
            name = fb.string(code, 1, 60) or _TFLITE_REFUSED_OPS[builtin]
            raise ModelRefused(f"the model uses the operator {name!r} ({_TFLITE_REFUSED_OPS[builtin]}), which the device"
                               " server refuses: convert with LiteRT's builtin operators only", "unsupported_op")
        codes.append(builtin)
    n_buffers = fb.count(model_t, 4)
    for i, buffer in enumerate(fb.tables(model_t, 4)):  # Buffer: 0 data, 1 offset (from the file's start), 2 size
        fb.bytes_range(buffer, 0)
        offset, length = fb.get(buffer, 1, "Q"), fb.get(buffer, 2, "Q")
        if offset > 1:  # 0 and 1 mean "in `data`" (1 is the converter's placeholder)
            _inside(fb, f"buffer {i}", offset, length, size)
    for index in fb.ints(model_t, 5):
        if not 0 <= index < n_buffers:
            raise fb.fail(f"metadata names buffer {index} of {n_buffers}")
    for meta in fb.tables(model_t, 6):  # Metadata: 0 name, 1 buffer
        fb.string(meta, 0)
        if fb.get(meta, 1, "I") >= max(n_buffers, 1):
            raise fb.fail(f"metadata names buffer {fb.get(meta, 1, 'I')} of {n_buffers}")
    n_subgraphs = fb.count(model_t, 2)
    for sg, subgraph in enumerate(fb.tables(model_t, 2)):
        _check_subgraph(fb, sg, subgraph, len(codes), n_buffers, size)
    for signature in fb.tables(model_t, 7):  # SignatureDef: 0 inputs, 1 outputs, 2 signature_key, 4 subgraph_index
        for maps in (0, 1):
            for tensor_map in fb.tables(signature, maps):
                fb.string(tensor_map, 0)
        fb.string(signature, 2)
        if fb.get(signature, 4, "I") >= max(n_subgraphs, 1):
            raise fb.fail(f"a signature names subgraph {fb.get(signature, 4, 'I')} of {n_subgraphs}")
    if not n_subgraphs:
        raise fb.fail("it has no subgraph")


def _check_subgraph(fb: _Flatbuffer, sg: int, subgraph: int, n_codes: int, n_buffers: int, size: int) -> None:
    # SubGraph: 0 tensors, 1 inputs, 2 outputs, 3 operators, 4 name
    n = fb.count(subgraph, 0)
    for t, tensor in enumerate(fb.tables(subgraph, 0)):
        # Tensor: 0 shape, 1 type, 2 buffer, 3 name, 4 quantization, 6 sparsity, 7 shape_signature, 10 external_buffer
        fb.vector(tensor, 0, 4)
        fb.vector(tensor, 7, 4)
        fb.string(tensor, 3)
        if fb.get(tensor, 10, "I"):
            raise ModelRefused("the model keeps a tensor's data in an external file (external buffer), which the device"
                               " server refuses: convert with the weights inside the .tflite", "file_reference")
        if fb.get(tensor, 2, "I") >= max(n_buffers, 1):
            raise fb.fail(f"tensor {t} of subgraph {sg} names buffer {fb.get(tensor, 2, 'I')} of {n_buffers}")
        quant = fb.table(tensor, 4)
        if quant is not None:  # QuantizationParameters: 0 min, 1 max, 2 scale, 3 zero_point (vectors)
            for field, width in ((0, 4), (1, 4), (2, 4), (3, 8)):
                fb.vector(quant, field, width)
    for which, index in (("input", 1), ("output", 2)):
        for value in fb.ints(subgraph, index):
            if not 0 <= value < n:
                raise fb.fail(f"subgraph {sg}'s {which} is tensor {value} of {n}")
    for o, op in enumerate(fb.tables(subgraph, 3)):
        # Operator: 0 opcode_index, 1 inputs, 2 outputs, 5 custom_options, 7 mutating_variable_inputs,
        # 8 intermediates, 9 large_custom_options_offset, 10 large_custom_options_size
        if fb.get(op, 0, "I") >= n_codes:
            raise fb.fail(f"operator {o} of subgraph {sg} names operator code {fb.get(op, 0, 'I')} of {n_codes}")
        for index in (1, 2, 8):
            for value in fb.ints(op, index):
                if not -1 <= value < n:
                    raise fb.fail(f"operator {o} of subgraph {sg} names tensor {value} of {n}")
        fb.bytes_range(op, 5)
        fb.vector(op, 7, 1)
        offset, length = fb.get(op, 9, "Q"), fb.get(op, 10, "Q")
        if offset > 1:
            _inside(fb, f"operator {o}'s options", offset, length, size)


# ----------------------------------------------------------------------------------------------
# .pte (ExecuTorch program.fbs, and the extended header of exir/_serialize/_program.py)

def _pte_header(buf: memoryview, fb: _Flatbuffer) -> tuple[int, int] | None:
    """(segment base offset, segment data size) from the extended header, or None when there is none."""
    if len(buf) < 8 + 8 or bytes(buf[8:12]) != _PTE_HEADER_MAGIC:
        return None
    length = fb.scalar("I", 12)
    if length < _PTE_HEADER_MIN:
        raise fb.fail(f"its extended header says it is {length} bytes long")
    program_size, base = fb.scalar("Q", 16), fb.scalar("Q", 24)
    data_size = fb.scalar("Q", 32) if length >= _PTE_HEADER_MIN + 8 else 0
    _inside(fb, "the program (extended header)", 0, program_size, len(buf))
    if base:
        _inside(fb, "the segment data (extended header)", base, data_size, len(buf))
    return base, data_size


def check_pte(program: bytes | bytearray | memoryview) -> None:
    """Return if `program` is a .pte flatbuffer that stays inside itself and refers to no other file
    (see the module docstring); `ModelRefused` otherwise (kinds ``invalid_model``, ``unsupported_op``,
    ``file_reference``)."""
    buf = memoryview(program).cast("B")
    what = ".pte program"
    _identifier(buf, what, _PTE_IDENTIFIER, "b'ET' and two letters or digits (b'ET12')")
    fb = _Flatbuffer(buf, what)
    header = _pte_header(buf, fb)
    prog = fb.root()
    # Program: 0 version, 1 execution_plan, 2 constant_buffer, 3 backend_delegate_data, 4 segments,
    # 5 constant_segment, 6 mutable_data_segments, 7 named_data
    segments = []
    for i, segment in enumerate(fb.tables(prog, 4)):  # DataSegment: 0 offset, 1 size
        offset, length = fb.get(segment, 0, "Q"), fb.get(segment, 1, "Q")
        if header is None:
            raise fb.fail("it lists data segments but has no extended header to place them")
        base, data_size = header
        if data_size:
            _inside(fb, f"segment {i} (within the segment data)", offset, length, data_size)
        _inside(fb, f"segment {i}", base + offset, length, len(buf))
        segments.append((base + offset, base + offset + length))
    for buffer in fb.tables(prog, 2):  # Buffer: 0 storage
        fb.bytes_range(buffer, 0)
    inline = [fb.bytes_range(data, 0) for data in fb.tables(prog, 3)]  # BackendDelegateInlineData: 0 data
    constant = fb.table(prog, 5)
    # SubsegmentOffsets: 0 segment_index, 1 offsets
    for sub in ([constant] if constant is not None else []) + list(fb.tables(prog, 6)):
        index = fb.get(sub, 0, "I")
        if index >= len(segments):
            raise fb.fail(f"constant or mutable data names segment {index} of {len(segments)}")
        span = segments[index][1] - segments[index][0]
        for offset in fb.ints(sub, 1, "Q"):
            if offset > span:
                raise fb.fail(f"a constant's offset {offset} is past the end of its {span}-byte segment")
    named = set()
    for entry in fb.tables(prog, 7):  # NamedData: 0 key, 1 segment_index
        if fb.get(entry, 1, "I") >= len(segments):
            raise fb.fail(f"named data names segment {fb.get(entry, 1, 'I')} of {len(segments)}")
        named.add(fb.string(entry, 0, 1 << 16))
    if not fb.count(prog, 1):
        raise fb.fail("it has no execution plan")
    for plan in fb.tables(prog, 1):
        _check_plan(fb, plan, segments, inline, named)


def _check_plan(fb: _Flatbuffer, plan: int, segments: list[tuple[int, int]], inline: list[tuple[int, int]],
                named: set[str]) -> None:
    # ExecutionPlan: 0 name, 1 container_meta_type, 2 values, 3 inputs, 4 outputs, 5 chains, 6 operators, 7 delegates
    fb.string(plan, 0)
    n_values = fb.count(plan, 2)
    for value in fb.tables(plan, 2):  # EValue: 0 val_type (ubyte), 1 val (a KernelTypes table)
        if fb.get(value, 0, "B") != _PTE_TENSOR:
            continue
        tensor = fb.table(value, 1)
        if tensor is None:
            raise fb.fail("a tensor value has no tensor")
        # Tensor: 2 sizes, 3 dim_order, 9 extra_tensor_info (ExtraTensorInfo: 1 fully_qualified_name, 2 location)
        fb.vector(tensor, 2, 4)
        fb.vector(tensor, 3, 1)
        extra = fb.table(tensor, 9)
        if extra is not None and fb.get(extra, 2, "b") == _PTE_EXTERNAL:
            name = fb.string(extra, 1, 60)
            raise ModelRefused(f"the program keeps tensor {name!r} in an external data file (.ptd), which the device"
                               " server refuses: export with the weights inside the .pte", "file_reference")
    for which, index in (("input", 3), ("output", 4)):
        for v in fb.ints(plan, index):
            if not 0 <= v < n_values:
                raise fb.fail(f"the plan's {which} is value {v} of {n_values}")
    for operator in fb.tables(plan, 6):  # Operator: 0 name, 1 overload
        fb.string(operator, 0)
        fb.string(operator, 1)
    for d, delegate in enumerate(fb.tables(plan, 7)):  # BackendDelegate: 0 id, 1 processed, 2 compile_specs
        ident = fb.string(delegate, 0, 80)
        if ident not in _XNNPACK_IDS:
            raise ModelRefused(f"the program is delegated to {ident!r}; the device server runs XNNPACK delegates"
                               " only (lower with XnnpackPartitioner)", "unsupported_op")
        for spec in fb.tables(delegate, 2):  # CompileSpec: 0 key, 1 value
            fb.string(spec, 0)
            fb.bytes_range(spec, 1)
        processed = fb.table(delegate, 1)  # BackendDelegateDataReference: 0 location, 1 index
        if processed is None:
            raise fb.fail(f"delegate {d} has no data")
        location, index = fb.get(processed, 0, "b"), fb.get(processed, 1, "I")
        pool = inline if location == _PTE_INLINE else segments if location == _PTE_SEGMENT else None
        if pool is None:
            raise fb.fail(f"delegate {d}'s data location is {location}")
        if index >= len(pool):
            raise fb.fail(f"delegate {d}'s data is {'inline blob' if pool is inline else 'segment'} {index} of {len(pool)}")
        _check_xnnpack(fb, *pool[index], named)


def _check_xnnpack(outer: _Flatbuffer, start: int, stop: int, named: set[str]) -> None:
    """The XNNPACK delegate's blob at buf[start:stop]: its header's ranges inside it, its constants
    inside its constant data or named in the program's named data."""
    buf, size = outer.buf, stop - start
    what = ".pte program (XNNPACK delegate)"
    fb_start, fb_stop, const_start, const_size = start, stop, 0, 0
    if size >= 8 and bytes(buf[start + 4:start + 8]) == _XNN_HEADER_MAGIC:
        if size < _XNN_HEADER_LENGTH:
            raise _invalid(what, f"its {size}-byte blob is shorter than the XNNPACK header")
        length = struct.unpack_from("<H", buf, start + 8)[0]
        flat_offset, flat_size, const_offset = struct.unpack_from("<III", buf, start + 10)
        const_size = struct.unpack_from("<Q", buf, start + 22)[0]
        if length < _XNN_HEADER_LENGTH:
            raise _invalid(what, f"the XNNPACK header says it is {length} bytes long")
        _inside(outer, "the XNNPACK graph", flat_offset, flat_size, size)
        _inside(outer, "the XNNPACK constant data", const_offset, const_size, size)
        fb_start, fb_stop, const_start = start + flat_offset, start + flat_offset + flat_size, start + const_offset
    if fb_stop - fb_start < 8 or not _XNN_IDENTIFIER.fullmatch(bytes(buf[fb_start + 4:fb_start + 8])):
        raise _invalid(what, "the delegate's data is not an XNNPACK graph")
    fb = _Flatbuffer(buf, what, fb_start, fb_stop, budget=outer.budget - outer.steps)
    graph = fb.root()
    # XNNGraph: 0 version, 1 xnodes, 2 xvalues, 3 num_externs, 4 input_ids, 5 output_ids, 6 constant_buffer,
    # 7 mem_buffer_sizes, 8 constant_data
    for field in (1, 2):  # the nodes and values: their tables inside the graph (not their meaning)
        for _ in fb.tables(graph, field):
            pass
    for buffer in fb.tables(graph, 6):  # Buffer: 0 storage
        fb.bytes_range(buffer, 0)
    for entry in fb.tables(graph, 8):  # ConstantDataOffset: 0 offset, 1 size, 2 named_key
        key = fb.string(entry, 2, 1 << 16)
        offset, length = fb.get(entry, 0, "Q"), fb.get(entry, 1, "Q")
        if key:
            if key not in named:
                raise ModelRefused(f"the XNNPACK delegate reads weights {key[:60]!r} that are not in the program (an"
                                   " external data file, .ptd), which the device server refuses: export with the weights"
                                   " inside the .pte", "file_reference")
        elif offset != _UINT64_MAX:
            _inside(fb, "an XNNPACK constant", offset, length, const_size)
    outer.steps += fb.steps
    _ = const_start  # the constants' base; their ranges are checked against const_size above
