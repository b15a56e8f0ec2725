"""`token-check`: compare a request header with a gateway variable; 401 when they differ.

Conf: ``{"header": "x-api-token", "var": "arg_expected"}``: the header's value must equal the
value of the nginx/APISIX variable (asked from the gateway once per call). Constant-time compare.
"""

from __future__ import annotations

import hmac
import json
from typing import Tuple

from ferrogate_sdk import Plugin, Request, Response, register


@register
class TokenCheck(Plugin[Tuple[str, str]]):
    name = "token-check"

    def parse_conf(self, value: str) -> Tuple[str, str]:
        conf = json.loads(value)
        return str(conf["header"]), str(conf["var"])

    async def request_filter(self, conf: Tuple[str, str], req: Request, resp: Response) -> None:
        header, var = conf
        given = req.headers.get(header)
        expected = await req.var(var)
        if (
            given is None
            or not expected
            or not hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected)
        ):
            resp.headers.set("Content-Type", "application/json")
            resp.headers.set("WWW-Authenticate", "Token")
            resp.stop(401, '{"error": "invalid token"}')
            return
        req.headers.delete(header)  # the upstream does not need it
