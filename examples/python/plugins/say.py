"""`say`: answer the request itself (the upstream is not contacted).

Conf: ``{"body": "hello", "status": 200, "content_type": "text/plain"}``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ferrogate_sdk import Plugin, Request, Response, register


@dataclass(frozen=True)
class SayConf:
    body: str
    status: int = 200
    content_type: str = "text/plain; charset=utf-8"


@register
class Say(Plugin[SayConf]):
    name = "say"

    def parse_conf(self, value: str) -> SayConf:
        return SayConf(**json.loads(value))  # runs once per prepare, not per request

    def request_filter(self, conf: SayConf, req: Request, resp: Response) -> None:
        resp.headers.set("Content-Type", conf.content_type)
        resp.stop(conf.status, conf.body)
