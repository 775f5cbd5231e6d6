"""Issue 21 item 3: the device server refuses options that would break every request, before it starts."""

from __future__ import annotations

import os

import pytest

pytest.importorskip("onnxruntime")

from mnas.latency.server import DeviceServer  # noqa: E402

TOKEN = "server-options-token"


def refused(match: str, *args, **kwargs) -> None:
    try:
        server = DeviceServer(*args, **kwargs)
    except ValueError as exc:
        assert match in str(exc), str(exc)
        return
    server.shutdown()  # it started: close what it opened before failing
    pytest.fail(f"DeviceServer{args} {kwargs} started")


@pytest.mark.parametrize("token, match", [
    (" " * 8, "not all blank"),
    ("\n" * 10, "not all blank"),
    (" " + TOKEN, "no space at either end"),
    (TOKEN + "\n", "no space at either end"),
    ("tökén-ünïcode-123", "printable ASCII"),
    ("short", "at least 8 characters"),
])
def test_tokens_no_client_could_send_are_refused(token, match):
    refused(match, token)


@pytest.mark.parametrize("kwargs, match", [
    ({"time_limit_s": 1e308}, "time_limit_s=1e+308: expected at most 86400"),
    ({"threads": 100_000}, "threads=100000: expected at most"),
    ({"max_connections": 100_000}, "max_connections=100000: expected at most 1024"),
    ({"max_body_bytes": 2**40}, "max_body_bytes"),
    ({"max_memory_bytes": 10**30}, "max_memory_bytes"),
    ({"header_timeout_s": 1e308}, "header_timeout_s"),
])
def test_limits_past_their_range_are_refused(kwargs, match):
    refused(match, TOKEN, "127.0.0.1", 0, **kwargs)


def test_a_token_with_inner_spaces_and_the_cpu_count_of_threads_still_start():
    with DeviceServer("a token with spaces", "127.0.0.1", 0, threads=os.cpu_count() or 1, quiet=True) as server:
        assert server.info()["settings"]["threads"] == (os.cpu_count() or 1)
