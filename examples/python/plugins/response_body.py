"""`response-body`: rewrite the upstream's response body (route plugin ``ext-plugin-post-resp``).

Conf: ``{"replace": ["old", "new"], "status": 200}`` (status optional). Reads the upstream body
through the gateway (one extra-info round trip), replaces text, keeps the upstream's headers.
"""

from __future__ import annotations

import json
from typing import Any, Dict

from ferrogate_sdk import Plugin, UpstreamResponse, register


@register
class ResponseBody(Plugin[Dict[str, Any]]):
    name = "response-body"

    def parse_conf(self, value: str) -> Dict[str, Any]:
        conf = json.loads(value)
        old, new = conf["replace"]
        return {"old": old.encode(), "new": new.encode(), "status": conf.get("status")}

    async def response_filter(self, conf: Dict[str, Any], resp: UpstreamResponse) -> None:
        body = await resp.body()
        resp.set_body(body.replace(conf["old"], conf["new"]))
        if conf["status"] is not None:
            resp.status = conf["status"]
