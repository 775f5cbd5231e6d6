"""Refuse ONNX models that refer to files, before ONNX Runtime sees them (standard library only).

A tensor in an ONNX model may keep its bytes in an external file (``data_location = EXTERNAL``
and ``external_data`` entries naming a path). ONNX Runtime resolves such paths on the machine
that loads the model, so a model sent to the device server could read the server's files and leak
their bytes through error messages or timings. This module walks the protobuf wire format of a
``ModelProto`` (no `onnx` package needed) and refuses any tensor anywhere that is not stored
inline: initializers, sparse initializers, attribute tensors, graphs nested in ``Loop``/``If``/
``Scan`` attributes, model-local functions and training graphs.

Only the fields that can hold a tensor are followed; every other field is skipped by its length,
so the walk costs time in the number of fields, not bytes. Field numbers are those of onnx.proto3.
"""

from __future__ import annotations

__all__ = ["MAX_NESTING", "ModelRefused", "check_model"]

MAX_NESTING = 32  # graphs inside graphs; ONNX Runtime's own protobuf limit is 100 messages deep

# message -> {field number: message type of that field}; fields not listed are skipped.
_SCHEMA: dict[str, dict[int, str]] = {
    "model": {7: "graph", 20: "training", 25: "function"},
    "training": {1: "graph", 2: "graph"},
    "graph": {1: "node", 5: "tensor", 15: "sparse"},
    "function": {7: "node", 11: "attribute"},
    "node": {5: "attribute"},
    "attribute": {5: "tensor", 6: "graph", 10: "tensor", 11: "graph", 22: "sparse", 23: "sparse"},
    "sparse": {1: "tensor", 2: "tensor"},
    "tensor": {},  # its own two fields are checked in _check_tensor
}
_TENSOR_EXTERNAL_DATA, _TENSOR_DATA_LOCATION = 13, 14
_NESTS = {"graph"}  # the depth counts graphs, the only recursive element


class ModelRefused(ValueError):
    """The model is not one the server will load; `kind` says why in one safe word."""

    def __init__(self, message: str, kind: str):
        super().__init__(message)
        self.kind = kind


def _varint(buf: memoryview, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise ModelRefused("not a valid ONNX model: truncated or malformed protobuf", "invalid_model")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _fields(buf: memoryview, pos: int, end: int):
    """(field number, wire type, value or (start, stop) of the payload) for each field in buf[pos:end]."""
    while pos < end:
        key, pos = _varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ModelRefused("not a valid ONNX model: field number 0 in the protobuf", "invalid_model")
        if wire == 0:
            value, pos = _varint(buf, pos, end)
            yield number, wire, value
        elif wire == 1 or wire == 5:
            pos += 8 if wire == 1 else 4
            if pos > end:
                raise ModelRefused("not a valid ONNX model: truncated protobuf", "invalid_model")
            yield number, wire, None
        elif wire == 2:
            length, pos = _varint(buf, pos, end)
            if pos + length > end:
                raise ModelRefused("not a valid ONNX model: a field runs past the end of its message", "invalid_model")
            yield number, wire, (pos, pos + length)
            pos += length
        else:  # groups (3, 4) are not used by ONNX; 6 and 7 do not exist
            raise ModelRefused(f"not a valid ONNX model: protobuf wire type {wire}", "invalid_model")


def _check_tensor(buf: memoryview, start: int, stop: int) -> None:
    for number, _wire, value in _fields(buf, start, stop):
        if number == _TENSOR_EXTERNAL_DATA or (number == _TENSOR_DATA_LOCATION and value != 0):
            raise ModelRefused("the model keeps tensor data in an external file, which the device server refuses:"
                               " export with the weights inside the model (onnx.save(..., save_as_external_data=False))",
                               "file_reference")


def check_model(model: bytes | bytearray | memoryview) -> None:
    """Return if `model` is a ModelProto whose every tensor is stored inline; `ModelRefused` otherwise.

    Refuses (kind ``file_reference``) a tensor with external data anywhere in the model, and (kind
    ``invalid_model``) malformed protobuf, a model without a graph, or graphs nested more than
    `MAX_NESTING` deep. Does not check that the model is valid ONNX: ONNX Runtime does that next.
    """
    buf = memoryview(model).cast("B")
    stack: list[tuple[str, int, int, int]] = [("model", 0, len(buf), 0)]
    has_graph = False
    while stack:  # explicit stack: a hostile model cannot exhaust Python's recursion limit
        kind, start, stop, depth = stack.pop()
        if kind == "tensor":
            _check_tensor(buf, start, stop)
            continue
        schema = _SCHEMA[kind]
        for number, wire, value in _fields(buf, start, stop):
            child = schema.get(number)
            if child is None:
                continue
            if wire != 2:
                raise ModelRefused(f"not a valid ONNX model: field {number} of a {kind} is not a message", "invalid_model")
            nested = depth + (child in _NESTS)
            if nested > MAX_NESTING:
                raise ModelRefused(f"the model nests graphs more than {MAX_NESTING} levels deep", "invalid_model")
            has_graph = has_graph or (kind == "model" and number == 7)
            stack.append((child, value[0], value[1], nested))
    if not has_graph:
        raise ModelRefused("not a valid ONNX model: it has no graph", "invalid_model")
