"""Plugins for runner-python's Rust tests: misbehaviour on purpose (spinning, blocking, raising,
swallowing exceptions) and introspection (which thread runs them)."""

from __future__ import annotations

import threading
import time

from ferrogate_sdk import Plugin, Request, Response, register


def _ms(value: str) -> float:
    return float(value or "0") / 1000.0


@register
class Spin(Plugin[float]):
    """Busy-loops in Python for `value` ms (forever for 0): interruptible at any bytecode."""

    name = "rt-spin"

    def parse_conf(self, value: str) -> float:
        return _ms(value)

    def request_filter(self, conf: float, req: Request, resp: Response) -> None:
        end = time.monotonic() + conf
        while conf == 0 or time.monotonic() < end:
            pass
        resp.stop(200, "spun")


@register
class Block(Plugin[float]):
    """Sleeps in C (`time.sleep`, GIL released) for `value` ms."""

    name = "rt-block"

    def parse_conf(self, value: str) -> float:
        return _ms(value)

    def request_filter(self, conf: float, req: Request, resp: Response) -> None:
        time.sleep(conf)
        resp.stop(200, "slept")


@register
class Swallow(Plugin[str]):
    """Spins forever and swallows every `Exception`: only a BaseException stops it."""

    name = "rt-swallow"

    def request_filter(self, conf: str, req: Request, resp: Response) -> None:
        while True:
            try:
                time.sleep(0.001)
            except Exception:  # noqa: BLE001 - the point of this plugin
                pass


@register
class Where(Plugin[str]):
    """Answers with the name of the thread running it."""

    name = "rt-where"

    def request_filter(self, conf: str, req: Request, resp: Response) -> None:
        resp.stop(200, threading.current_thread().name)


@register
class Raw(Plugin[str]):
    """Copies request header `x-raw` (any bytes) to the rewrite's headers and response headers."""

    name = "rt-raw"

    def request_filter(self, conf: str, req: Request, resp: Response) -> None:
        value = req.headers.get("x-raw")
        if value is not None:
            req.headers.set("x-copied", value)
            req.resp_headers.append_entry("x-copied", value)
