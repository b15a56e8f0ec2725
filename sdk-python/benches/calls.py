"""Per-call cost of the SDK's two paths, in microseconds, without the network.

    python3 sdk-python/benches/calls.py [N]

* socket: a header-rewriting call through `Connection.data_received` (decode the frame, run the
  plugin, encode and write the reply) with a fake transport: the runner's CPU per call minus
  the socket system calls;
* inprocess: the same plugin through `ferrogate_sdk.inprocess.request_call`, and a plugin that
  does nothing (the floor).

The request has 8 headers and one arg, as a typical browser or load-tool request. The frame is
built with the generated bindings (needs flatbuffers, as the tests do).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Callable, List

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "src"), str(HERE.parent / "tests")]

from wire import encode, frame  # noqa: E402

from ferrogate_sdk import Plugin, Registry, Request, Response, inprocess  # noqa: E402
from ferrogate_sdk._server import ConfCache, Connection  # noqa: E402


class HeaderRewrite(Plugin[str]):
    name = "hdr"

    def request_filter(self, conf: str, req: Request, resp: Response) -> None:
        req.headers.set("x-plugin", "1")


class Noop(Plugin[str]):
    name = "noop"

    def request_filter(self, conf: str, req: Request, resp: Response) -> None:
        pass


HEADERS = [
    ("host", "example.com"),
    ("user-agent", "wrk/4.2"),
    ("accept", "*/*"),
    ("accept-encoding", "gzip"),
    ("connection", "keep-alive"),
    ("x-request-id", "abcdef0123456789"),
    ("cookie", "a=b; c=d"),
    ("x-forwarded-for", "10.0.0.1"),
]


class _Transport:
    def __init__(self) -> None:
        self.out: List[bytes] = []

    def write(self, data: bytes) -> None:
        self.out.append(data)

    def close(self) -> None:
        pass


def _time(fn: Callable[[], Any], n: int) -> float:
    fn()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n * 1e6


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50000
    reg = Registry()
    reg.add(HeaderRewrite())
    reg.add(Noop())

    cache = ConfCache(reg, 3600)
    token = cache.prepare([(b"hdr", b"")], b"bench")
    conn = Connection(cache)
    transport = _Transport()
    conn._transport = transport
    msg = frame(
        2,
        encode(
            {
                "HttpRequest": {
                    "id": 7,
                    "src_ip": b"\x7f\0\0\1",
                    "method": "GET",
                    "path": b"/api/v1/items",
                    "args": [{"name": b"a", "value": b"1"}],
                    "headers": [{"name": k.encode(), "value": v.encode()} for k, v in HEADERS],
                    "conf_token": token,
                }
            }
        ),
    )

    def socket_call() -> None:
        conn.data_received(msg)
        transport.out.clear()

    print(f"socket    header rewrite: {_time(socket_call, n):6.2f} us/call")

    raw = [(k.encode(), v.encode()) for k, v in HEADERS]
    for name, label in (("hdr", "header rewrite"), ("noop", "no-op")):
        prepared = inprocess.prepare([(name, "")], registry=reg)
        us = _time(
            lambda p=prepared: inprocess.request_call(
                p, "GET", b"/api/v1/items", [(b"a", b"1")], raw, b"\x7f\0\0\1", None, 7
            ),
            n,
        )
        print(f"inprocess {label}: {us:6.2f} us/call")


if __name__ == "__main__":
    main()
