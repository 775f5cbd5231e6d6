"""Fixtures for the latency tests: a fast protocol and a live device server on 127.0.0.1."""

from __future__ import annotations

import pytest
from latency_helpers import TOKEN, fast_protocol


@pytest.fixture(scope="session")
def protocol():
    return fast_protocol()


@pytest.fixture(scope="module")
def device_server():
    pytest.importorskip("onnxruntime")
    from mnas.latency.server import DeviceServer

    with DeviceServer(TOKEN, "127.0.0.1", 0, threads=1, max_body_bytes=4 * 2**20, protocol=fast_protocol(),
                      quiet=True) as server:
        yield server
