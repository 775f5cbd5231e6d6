"""`mnas device serve` (on the target device) and `mnas device info` (from anywhere).

Imports nothing heavy at module level: the server must run where PyTorch is not installed.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable

from mnas.cli._common import UsageError, emit_json, positive_float, positive_int, thread_count

TOKEN_ENV = "MNAS_DEVICE_TOKEN"


def register(sub: argparse._SubParsersAction) -> None:
    dev = sub.add_parser("device", help="the latency server that runs on the target device")
    dev_sub = dev.add_subparsers(dest="device_command", metavar="ACTION")

    p = dev_sub.add_parser("serve", help="serve latency measurements over HTTP (ONNX Runtime, LiteRT, ExecuTorch)")
    p.add_argument("--port", type=int, required=True, help="TCP port (0: any free port)")
    p.add_argument("--token", help=f"the shared secret clients must send (or set {TOKEN_ENV}); at least 8 characters")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    p.add_argument("--threads", type=thread_count, default=1,
                   help="the runtime's intra-op threads, at most the device's CPU count (default 1)")
    p.add_argument("--runtimes", default=None, metavar="LIST",
                   help="comma-separated runtimes to measure in, among onnxruntime (.onnx), litert (.tflite, needs"
                        " ai-edge-litert) and executorch (.pte, needs executorch); default: every one installed here")
    p.add_argument("--max-body-mb", type=_bounded(positive_float, 2048), default=64.0,
                   help="largest upload (.onnx, .tflite or .pte), at most 2048 (default 64 MiB)")
    p.add_argument("--time-limit-s", type=_bounded(positive_float, 86400), default=60.0,
                   help="longest one model may take to load and time, not counting a wait for the device lock;"
                        " over it the measuring process is restarted and the client gets 422 (default 60, at most"
                        " 86400)")
    p.add_argument("--max-memory-mb", type=_bounded(positive_float, 2**20), default=1024.0,
                   help="memory a measurement may use above the measuring process's idle size (an address-space"
                        " cap, Linux); over it the client gets 422 (default 1024, at most 1048576)")
    p.add_argument("--max-connections", type=_bounded(positive_int, 1024), default=16,
                   help="connections served at once, at most 1024; more are answered 503 (default 16)")
    p.add_argument("--quiet", action="store_true", help="do not log requests")
    p.set_defaults(handler=cmd_serve)

    p = dev_sub.add_parser("info", help="ask a device server what it is")
    p.add_argument("--url", required=True, help="http://HOST:PORT")
    p.add_argument("--token", help=f"the server's token (or set {TOKEN_ENV})")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(handler=cmd_info)


def _bounded(parse: Callable[[str], float], limit: float) -> Callable[[str], float]:
    """An argparse type: `parse`, then at most `limit` (a typo such as 1e308 would break every request)."""
    def check(text: str) -> float:
        value = parse(text)
        if value > limit:
            raise argparse.ArgumentTypeError(f"{text}: expected at most {limit:,.10g}")
        return value
    check.__name__ = parse.__name__
    return check


def cmd_serve(args: argparse.Namespace) -> int:
    from mnas.latency.server import DeviceServer, check_runtimes, check_token

    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port {args.port}: expected 0 to 65535")
    token = args.token if args.token is not None else os.environ.get(TOKEN_ENV)
    if not token:
        raise UsageError(f"the device server needs a token: pass --token or set {TOKEN_ENV}")
    try:
        check_token(token)  # before the measuring process starts: a token no client can send is refused at once
    except ValueError as exc:
        raise UsageError(f"{'--token' if args.token is not None else TOKEN_ENV}: {exc}") from None
    try:
        runtimes = check_runtimes(args.runtimes)
    except (ValueError, ImportError) as exc:
        raise UsageError(f"--runtimes: {exc}" if args.runtimes is not None else str(exc)) from None
    try:
        server = DeviceServer(token, args.host, args.port, args.threads, int(args.max_body_mb * 2**20), quiet=args.quiet,
                              time_limit_s=args.time_limit_s, max_memory_bytes=int(args.max_memory_mb * 2**20),
                              max_connections=args.max_connections, runtimes=runtimes)
    except RuntimeError as exc:  # the measuring process could not start
        raise UsageError(str(exc)) from None
    print(f"mnas device server on {server.url} ({args.threads} thread(s); {', '.join(runtimes)}); Ctrl-C to stop",
          file=sys.stderr, flush=True)

    def stop(signum: int, frame: object) -> None:  # SIGTERM: close the listener and the measuring process too
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.httpd.server_close()
        server.close_workers()
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from mnas.latency.remote import DeviceUnavailable, Remote

    try:
        info = Remote(args.url, args.token, timeout=30.0, retries=1).info()
    except DeviceUnavailable as exc:
        raise UsageError(str(exc)) from None
    if args.json:
        emit_json(info)
        return 0
    device, runtime, settings = info.get("device", {}), info.get("runtime", {}), info.get("settings", {})
    print(f"cpu:      {device.get('cpu')} ({device.get('logical_cpus')} logical CPUs, {device.get('system')})")
    print("runtime:  " + ", ".join(f"{k} {v}" for k, v in runtime.items()))
    served = info.get("runtimes") if isinstance(info.get("runtimes"), dict) else {"onnxruntime": {}}
    for name, facts in served.items():
        facts = facts if isinstance(facts, dict) else {}
        versions = ", ".join(f"{k} {v}" for k, v in (facts.get("versions") or {}).items() if k != "mnas")
        print(f"measures: {name} ({facts.get('format', '.onnx')}, {'/'.join(facts.get('precisions') or ['fp32', 'int8'])})"
              + (f": {versions}" if versions else ""))
    print(f"threads:  {settings.get('threads')}")
    return 0
