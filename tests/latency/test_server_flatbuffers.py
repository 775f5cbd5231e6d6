"""The device server's structural checks of .tflite and .pte files (`mnas.latency.server_flatbuffers`).

Standard library only: the files are written by `mnas.latency.server_testing`'s builder, so these
run where neither LiteRT nor ExecuTorch is installed. Each hostile file is refused with
`ModelRefused` (one line, a safe kind) and nothing else is ever raised."""

from __future__ import annotations

import random
import struct
import time

import pytest

from mnas.latency.server_check import ModelRefused
from mnas.latency.server_flatbuffers import check_pte, check_tflite
from mnas.latency.server_testing import Table, Vector, build_flatbuffer, pte_program, relu_tflite, xnnpack_blob


def refused(check, data, kind, match=""):
    with pytest.raises(ModelRefused) as info:
        check(data)
    assert info.value.kind == kind, str(info.value)
    assert match in str(info.value), str(info.value)
    assert "\n" not in str(info.value)
    return str(info.value)


# -- .tflite ------------------------------------------------------------------------------------

def test_a_valid_tflite_passes():
    check_tflite(relu_tflite())
    check_tflite(relu_tflite(weight_offset=0))  # weights after the flatbuffer, inside the file (a >2 GB layout)


@pytest.mark.parametrize("ident", [b"TFL2", b"ET12", b"\0\0\0\0", b"tfl3"])
def test_tflite_with_the_wrong_identifier_is_refused(ident):
    data = relu_tflite()
    refused(check_tflite, data[:4] + ident + data[8:], "invalid_model", "identifier")


def test_every_truncation_of_a_tflite_is_refused():
    data = relu_tflite(weight_offset=0)
    for cut in range(len(data)):
        with pytest.raises(ModelRefused):
            check_tflite(data[:cut])


@pytest.mark.parametrize("offset", [10**9, 2**63, 300])
def test_a_tflite_buffer_past_the_end_is_refused(offset):
    message = refused(check_tflite, relu_tflite(weight_offset=offset), "invalid_model", "past the end")
    assert "buffer 2" in message


def test_a_tflite_buffer_whose_size_overflows_is_refused():
    refused(check_tflite, relu_tflite(weight_offset=64, weight_size=2**64 - 1), "invalid_model", "past the end")


@pytest.mark.parametrize("op, custom, name", [(32, "Convolution2DTransposeBias", "Convolution2DTransposeBias"),
                                             (32, "FlexConv2D", "FlexConv2D"), (32, None, "CUSTOM"),
                                             (51, None, "DELEGATE"), (173, None, "STABLEHLO_CUSTOM_CALL")])
def test_tflite_custom_and_delegate_operators_are_refused(op, custom, name):
    refused(check_tflite, relu_tflite(op=op, custom_code=custom), "unsupported_op", name)


def test_tflite_external_buffers_are_refused():
    refused(check_tflite, relu_tflite(external_buffer=True), "file_reference", "external")


@pytest.mark.parametrize("kwargs, match", [({"tensor_buffer": 99}, "names buffer 99"),
                                           ({"op_input": 99}, "names tensor 99"),
                                           ({"op_input": -2}, "names tensor -2")])
def test_tflite_indices_out_of_range_are_refused(kwargs, match):
    refused(check_tflite, relu_tflite(**kwargs), "invalid_model", match)


def test_a_tflite_offset_pointing_outside_is_refused():
    data = bytearray(relu_tflite())
    struct.pack_into("<I", data, 0, len(data) + 64)  # the root table past the end
    refused(check_tflite, bytes(data), "invalid_model", "past the end")


def test_a_tflite_that_makes_the_walk_revisit_one_table_is_refused_quickly():
    """A DAG: 3,000 subgraph entries share one subgraph of 3,000 tensors (9 M visits in a 25 kB file)."""
    tensor = Table({0: Vector("i32", [1]), 2: ("u32", 0)})
    subgraph = Table({0: Vector("table", [tensor] * 3000), 1: Vector("i32", [0]), 2: Vector("i32", [0])})
    model = Table({0: ("u32", 3), 1: Vector("table", [Table({3: ("i32", 19)})]),
                   2: Vector("table", [subgraph] * 3000), 4: Vector("table", [Table()])})
    data = build_flatbuffer(model, b"TFL3")
    assert len(data) < 30_000
    t0 = time.process_time()
    refused(check_tflite, data, "invalid_model", "hostile layout")
    assert time.process_time() - t0 < 2.0


def test_random_corruptions_of_a_tflite_raise_only_model_refused():
    rng = random.Random(0)
    base = relu_tflite(weight_offset=0)
    for _ in range(300):
        data = bytearray(base)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        try:
            check_tflite(bytes(data))
        except ModelRefused:
            pass


# -- .pte ---------------------------------------------------------------------------------------

def test_valid_pte_structures_pass():
    check_pte(pte_program())
    check_pte(pte_program(delegate=xnnpack_blob()))  # inline XNNPACK blob
    check_pte(pte_program(segments=[xnnpack_blob()], delegate=b"", delegate_in_segment=0))
    check_pte(pte_program(delegate=xnnpack_blob(named_key="w0"), named={"w0": 0}, segments=[bytes(16)]))
    check_pte(pte_program(delegate=xnnpack_blob(header=False)))  # an XNNGraph without the XH00 header


@pytest.mark.parametrize("ident", [b"TFL3", b"E\0\0\0", b"ET\xff1", b"\0\0\0\0"])
def test_pte_with_the_wrong_identifier_is_refused(ident):
    refused(check_pte, pte_program(identifier=ident), "invalid_model", "identifier")


def test_every_truncation_of_a_pte_is_refused():
    data = pte_program(segments=[xnnpack_blob()], delegate=b"", delegate_in_segment=0)
    for cut in range(len(data)):
        with pytest.raises(ModelRefused):
            check_pte(data[:cut])


@pytest.mark.parametrize("offset, size", [(0, 10**6), (2**40, 16), (2**64 - 8, 16), (0, 2**64 - 1)])
def test_a_pte_segment_past_the_end_is_refused(offset, size):
    data = pte_program(segments=[bytes(16)], segment_offsets=[(offset, size)])
    refused(check_pte, data, "invalid_model", "past the end")


def test_a_pte_extended_header_past_the_end_is_refused():
    data = bytearray(pte_program(segments=[bytes(16)]))
    struct.pack_into("<Q", data, 24, len(data) + 4096)  # segment base offset
    refused(check_pte, bytes(data), "invalid_model", "past the end")
    data = bytearray(pte_program(segments=[bytes(16)]))
    struct.pack_into("<Q", data, 16, 2**62)  # program size
    refused(check_pte, bytes(data), "invalid_model", "past the end")


def test_pte_segments_without_a_header_are_refused():
    refused(check_pte, pte_program(segment_offsets=[(0, 16)], header=False), "invalid_model", "no extended header")


def test_a_pte_tensor_in_an_external_file_is_refused():
    refused(check_pte, pte_program(external_tensor=True), "file_reference", "external data file")


def test_xnnpack_weights_named_but_not_in_the_pte_are_refused():
    """A named key the program does not hold is looked up in a .ptd file: an external reference."""
    refused(check_pte, pte_program(delegate=xnnpack_blob(named_key="w0")), "file_reference", "not in the program")


@pytest.mark.parametrize("delegate_id", ["CoreMLBackend", "VulkanBackend", ""])
def test_pte_delegates_other_than_xnnpack_are_refused(delegate_id):
    refused(check_pte, pte_program(delegate=xnnpack_blob(), delegate_id=delegate_id), "unsupported_op", "XNNPACK")


def test_pte_references_out_of_range_are_refused():
    refused(check_pte, pte_program(delegate=b"", delegate_in_segment=3, segments=[bytes(16)]), "invalid_model",
            "segment 3 of 1")
    refused(check_pte, pte_program(named={"w": 5}, segments=[bytes(16)]), "invalid_model", "segment 5 of 1")


@pytest.mark.parametrize("blob_kwargs, match", [
    ({"constant_offset": 8, "constant_size": 64}, "XNNPACK constant"),
    ({"constant_offset": 2**64 - 2, "constant_size": 4}, "XNNPACK constant"),
])
def test_xnnpack_constants_outside_their_data_are_refused(blob_kwargs, match):
    refused(check_pte, pte_program(delegate=xnnpack_blob(**blob_kwargs)), "invalid_model", match)


def test_an_xnnpack_header_pointing_outside_its_blob_is_refused():
    blob = bytearray(xnnpack_blob())
    struct.pack_into("<Q", blob, 22, 2**40)  # constant data size
    refused(check_pte, pte_program(delegate=bytes(blob)), "invalid_model", "XNNPACK constant data")
    blob = bytearray(xnnpack_blob())
    struct.pack_into("<I", blob, 14, len(blob))  # flatbuffer size
    refused(check_pte, pte_program(delegate=bytes(blob)), "invalid_model", "XNNPACK graph")


def test_a_delegate_that_is_not_an_xnnpack_graph_is_refused():
    refused(check_pte, pte_program(delegate=b"\0" * 64), "invalid_model", "not an XNNPACK graph")


def test_random_corruptions_of_a_pte_raise_only_model_refused():
    rng = random.Random(1)
    base = pte_program(delegate=xnnpack_blob(named_key="w0"), named={"w0": 0}, segments=[bytes(16)])
    for _ in range(300):
        data = bytearray(base)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        try:
            check_pte(bytes(data))
        except ModelRefused:
            pass
