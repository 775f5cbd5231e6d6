"""The device server's file-reference check (issue 13, item 1): refuse external data anywhere in a model."""

from __future__ import annotations

import pytest

from mnas.latency.server_check import MAX_NESTING, ModelRefused, check_model

onnx = pytest.importorskip("onnx")
from mnas.latency.server_testing import (  # noqa: E402 - needs onnx
    expand_bomb,
    external_data_model,
    loop_bomb,
    relu_model,
)

PLACES = ["initializer", "sparse", "constant", "loop", "if", "function", "no_entries"]


@pytest.mark.parametrize("where", PLACES)
def test_external_data_is_refused_wherever_it_hides(where):
    with pytest.raises(ModelRefused, match="external file") as info:
        check_model(external_data_model("secret.bin", where))
    assert info.value.kind == "file_reference"


@pytest.mark.parametrize("make", [relu_model, loop_bomb, expand_bomb])
def test_inline_models_pass(make):
    check_model(make())  # hostile for other reasons, but they refer to no file


def test_a_real_exported_network_passes():
    pytest.importorskip("torch")
    from latency_helpers import LARGE

    from mnas.latency import onnx_bytes
    from mnas.latency.export import timing_model

    check_model(onnx_bytes(timing_model(LARGE, 32, 10), 32))


@pytest.mark.parametrize("data", [b"", b"this is not onnx", b"\x3a\xff\xff\xff\xff\x0f", b"\x08", b"\x08\x01",
                                  b"\x3a\x02\x0a", bytes(range(256))])
def test_malformed_bytes_are_invalid_models(data):
    with pytest.raises(ModelRefused) as info:
        check_model(data)
    assert info.value.kind == "invalid_model"


def _field(number: int, payload: bytes) -> bytes:
    """One length-delimited protobuf field (lengths here stay below 2**28)."""
    length, out = len(payload), bytearray()
    while True:
        out.append((length & 0x7F) | (0x80 if length > 0x7F else 0))
        length >>= 7
        if not length:
            break
    return bytes([number << 3 | 2]) + bytes(out) + payload


def _nested_graphs(depth: int, leaf: bytes = b"") -> bytes:
    """A model of graphs nested `depth` deep through node attributes (built by hand: onnx's parser stops near 33)."""
    graph = leaf
    for _ in range(depth):
        graph = _field(1, _field(5, _field(6, graph)))  # graph.node[0].attribute[0].g = graph
    return _field(7, graph)


def test_graphs_nested_too_deep_are_refused_without_recursion():
    check_model(_nested_graphs(MAX_NESTING - 1))
    with pytest.raises(ModelRefused, match="levels deep"):
        check_model(_nested_graphs(MAX_NESTING))
    with pytest.raises(ModelRefused, match="levels deep"):
        check_model(_nested_graphs(2000))  # deeper than Python's recursion limit


def test_an_external_tensor_deep_inside_nested_graphs_is_found():
    graph = onnx.load_from_string(external_data_model(where="initializer")).graph.SerializeToString()
    with pytest.raises(ModelRefused, match="external file"):
        check_model(_nested_graphs(MAX_NESTING - 2, graph))
