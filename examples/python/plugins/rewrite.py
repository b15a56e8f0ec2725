"""`rewrite`: change what goes upstream: path prefix, a header, a query argument.

Conf: ``{"prefix": "/v2", "set_header": ["x-version", "2"], "drop_arg": "debug"}`` (all optional).
"""

from __future__ import annotations

import json
from typing import Any, Dict

from ferrogate_sdk import Plugin, Request, Response, register


@register
class Rewrite(Plugin[Dict[str, Any]]):
    name = "rewrite"

    def parse_conf(self, value: str) -> Dict[str, Any]:
        conf = json.loads(value)
        if not isinstance(conf, dict):
            raise ValueError("conf must be a JSON object")
        return conf

    def request_filter(self, conf: Dict[str, Any], req: Request, resp: Response) -> None:
        prefix = conf.get("prefix")
        if prefix:
            req.path = prefix + req.path
        header = conf.get("set_header")
        if header:
            req.headers.set(header[0], header[1])
        drop = conf.get("drop_arg")
        if drop and drop in req.args:
            req.args.delete(drop)
