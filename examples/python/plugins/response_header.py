"""`response-header`: let the request through and add a header to the client's response.

Conf: ``{"name": "x-served-by", "value": "ferrogate"}``.
"""

from __future__ import annotations

import json
from typing import Tuple

from ferrogate_sdk import Plugin, Request, Response, register


@register
class ResponseHeader(Plugin[Tuple[str, str]]):
    name = "response-header"

    def parse_conf(self, value: str) -> Tuple[str, str]:
        conf = json.loads(value)
        return str(conf["name"]), str(conf["value"])

    def request_filter(self, conf: Tuple[str, str], req: Request, resp: Response) -> None:
        req.resp_headers.set(*conf)
