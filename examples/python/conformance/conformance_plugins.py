"""The conformance plugin set (tests/conformance/PLUGINS.md) written with ferrogate_sdk.

Run: ``python3 -m ferrogate_sdk.runner examples/python/conformance``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Dict, List, Optional, Tuple

from ferrogate_sdk import Plugin, Request, Response, UpstreamResponse, register

Pairs = List[Tuple[str, Optional[str]]]


def _obj(value: str) -> Dict[str, Any]:
    conf = json.loads(value) if value.strip() else {}
    if not isinstance(conf, dict):
        raise ValueError("conf must be a JSON object")
    return conf


def _pairs(conf: Dict[str, Any], key: str) -> Pairs:
    out: Pairs = []
    for item in conf.get(key) or []:
        name, value = item
        if not isinstance(name, str) or not (value is None or isinstance(value, str)):
            raise ValueError(f"{key}: pairs of [string, string or null]")
        out.append((name, value))
    return out


def _text(value: str) -> str:
    """Lossless text (lone surrogates for non-UTF-8 bytes) as JSON-safe text (U+FFFD)."""
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


@register
class ConfStop(Plugin[Dict[str, Any]]):
    name = "conf-stop"

    def parse_conf(self, value: str) -> Dict[str, Any]:
        conf = _obj(value)
        return {
            "status": int(conf.get("status", 200)),
            "headers": _pairs(conf, "headers"),
            "body": str(conf.get("body", "")),
        }

    def request_filter(self, conf: Dict[str, Any], req: Request, resp: Response) -> None:
        resp.stop(conf["status"], conf["body"], conf["headers"])


@register
class ConfRewrite(Plugin[Dict[str, Any]]):
    name = "conf-rewrite"

    def parse_conf(self, value: str) -> Dict[str, Any]:
        conf = _obj(value)
        return {
            "path": conf.get("path"),
            "headers": _pairs(conf, "headers"),
            "args": _pairs(conf, "args"),
            "body": conf.get("body"),
            "resp_headers": _pairs(conf, "resp_headers"),
        }

    def request_filter(self, conf: Dict[str, Any], req: Request, resp: Response) -> None:
        if conf["path"] is not None:
            req.path = conf["path"]
        for name, value in conf["headers"]:
            if value is None:
                req.headers.delete(name)
            else:
                req.headers.set(name, value)
        # Args: the protocol's rule (the first entry of a name replaces, later ones append).
        seen = set()
        for name, value in conf["args"]:
            if value is None:
                req.args.delete(name)
                seen.discard(name)
            elif name in seen:
                req.args.add(name, value)
            else:
                req.args.set(name, value)
                seen.add(name)
        if conf["body"] is not None:
            req.set_body(conf["body"])
        for name, value in conf["resp_headers"]:
            req.resp_headers.append_entry(name, value)


@register
class ConfEcho(Plugin[Dict[str, Any]]):
    name = "conf-echo"

    def parse_conf(self, value: str) -> Dict[str, Any]:
        conf = _obj(value)
        names = conf.get("vars") or []
        if not all(isinstance(n, str) for n in names):
            raise ValueError("vars: a list of strings")
        return {"vars": list(names), "body": conf.get("body") is True}

    async def request_filter(self, conf: Dict[str, Any], req: Request, resp: Response) -> None:
        names: List[str] = conf["vars"]
        values = await asyncio.gather(*(req.var(n) for n in names))
        body = await req.body() if conf["body"] else None
        doc = {
            "method": req.method,
            "path": _text(req.path),
            "src_ip": req.src_ip,
            "args": [[_text(n), None if v is None else _text(v)] for n, v in req.args],
            "headers": [[_text(n), None if v is None else _text(v)] for n, v in req.headers],
            "vars": {
                n: None if v is None else v.decode("utf-8", "replace")
                for n, v in zip(names, values)
            },
            "body": None if body is None else body.decode("utf-8", "replace"),
        }
        resp.headers.set("Content-Type", "application/json")
        resp.stop(200, json.dumps(doc, ensure_ascii=False))


@register
class ConfSleep(Plugin[float]):
    name = "conf-sleep"

    def parse_conf(self, value: str) -> float:
        return float(_obj(value).get("ms", 0)) / 1000.0

    async def request_filter(self, conf: float, req: Request, resp: Response) -> None:
        await asyncio.sleep(conf)


@register
class ConfFail(Plugin[str]):
    name = "conf-fail"

    def request_filter(self, conf: str, req: Request, resp: Response) -> None:
        raise RuntimeError("conf-fail fails, as asked")


@register
class ConfResponse(Plugin[Dict[str, Any]]):
    name = "conf-response"

    def parse_conf(self, value: str) -> Dict[str, Any]:
        conf = _obj(value)
        return {
            "status": conf.get("status"),
            "headers": _pairs(conf, "headers"),
            "body": conf.get("body"),
            "body_prefix": conf.get("body_prefix"),
        }

    async def response_filter(self, conf: Dict[str, Any], resp: UpstreamResponse) -> None:
        if conf["status"] is not None:
            resp.status = int(conf["status"])
        if conf["headers"]:
            resp.headers.clear()
            for name, value in conf["headers"]:
                resp.headers.append_entry(name, value)
        if conf["body_prefix"] is not None:
            resp.set_body(conf["body_prefix"].encode() + await resp.body())
        elif conf["body"] is not None:
            resp.set_body(conf["body"])
