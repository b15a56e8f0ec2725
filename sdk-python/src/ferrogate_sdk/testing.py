"""Helpers for plugin unit tests: run a plugin (or a chain) on a request without a gateway.

``call_request(MyPlugin(), '{"body": "hi"}', path="/x", headers=[("x-a", "1")])`` returns what
the runner would answer: ``None``, a `Stop` or a `Rewrite` (compare with ``==``);
`call_response` does the same for the response phase, `chain` builds a list of several plugins.

Header names are lower-cased on the way in (the gateway sends them so) and in every result: a
`Stop`'s headers, a `Rewrite`'s headers and response headers, a `ResponseReply`'s headers (the
SDK writes every header name lower-cased, and the gateway applies them case-insensitively).
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from ._drive import run
from ._entries import Args, Headers, RequestHeaders, Text, lower_name, to_bytes
from ._http import (
    VAR,
    Action,
    Fetch,
    Request,
    Response,
    ResponseReply,
    UpstreamResponse,
)
from ._plugin import Plugin, PreparedConf, Registry, request_action

__all__ = ["call_request", "call_response", "chain"]


def chain(*entries: Tuple[Plugin[Any], str]) -> PreparedConf:
    """A prepared conf list from (plugin, conf value) pairs, each value parsed by its plugin."""
    registry = Registry()
    for plugin, _ in entries:
        if plugin.name not in registry:
            registry.add(plugin)
    return registry.prepare((p.name, v) for p, v in entries)


def _fetch(variables: Mapping[str, Optional[Text]], body: Optional[Text]) -> Fetch:
    """What the gateway would answer: `variables` by name, `body` for either body."""

    async def fetch(kind: int, name: Optional[bytes]) -> Optional[bytes]:
        if kind == VAR:
            value = variables.get((name or b"").decode("utf-8", "surrogateescape"))
        else:
            value = body
        return None if value is None else to_bytes(value)

    return fetch


def _lowered(
    headers: Sequence[Tuple[Text, Optional[Text]]],
) -> List[Tuple[Text, Optional[Text]]]:
    """Header entries as the gateway sends them: names lower-cased."""
    return [(lower_name(name), value) for name, value in headers]


def _prepared(plugin: Union[Plugin[Any], PreparedConf], conf: str) -> PreparedConf:
    return plugin if isinstance(plugin, PreparedConf) else chain((plugin, conf))


def call_request(
    plugin: Union[Plugin[Any], PreparedConf],
    conf: str = "",
    *,
    method: str = "GET",
    path: str = "/",
    args: Sequence[Tuple[Text, Optional[Text]]] = (),
    headers: Sequence[Tuple[Text, Optional[Text]]] = (),
    src_ip: str = "127.0.0.1",
    vars: Optional[Dict[str, Optional[Text]]] = None,
    body: Optional[Text] = None,
) -> Action:
    """The action `plugin` (with conf value `conf`) or a `chain` answers for this request:
    ``None``, a `Stop` or a `Rewrite`. `vars` and `body` are what the gateway would answer."""
    req = Request(
        method=method,
        path=path,
        args=Args(args),
        headers=RequestHeaders(_lowered(headers)),
        src_ip=src_ip,
        fetch=_fetch(vars or {}, body),
    )
    resp = Response()
    pending = _prepared(plugin, conf).start_request(req, resp)
    if pending is not None:
        run(pending)
    return request_action(req, resp)


def call_response(
    plugin: Union[Plugin[Any], PreparedConf],
    conf: str = "",
    *,
    status: int = 200,
    headers: Sequence[Tuple[Text, Optional[Text]]] = (),
    body: Optional[Text] = None,
    vars: Optional[Dict[str, Optional[Text]]] = None,
) -> Optional[ResponseReply]:
    """The reply `plugin` gives to this upstream response (``None``: keep it unchanged)."""
    resp = UpstreamResponse(
        status=status, headers=Headers(_lowered(headers)), fetch=_fetch(vars or {}, body)
    )
    pending = _prepared(plugin, conf).start_response(resp)
    if pending is not None:
        run(pending)
    return resp._reply()
