"""Entry point for a runner that embeds CPython (the pyo3 ``runner-python`` crate).

No FlatBuffers and no socket: the embedding code passes plain Python values and gets plain
values back. The same plugin modules as the socket runner's are used unchanged.

Contract (all functions may be called from any thread holding the GIL; a chain with ``async``
filters runs on that thread's own asyncio loop, created on first use, without signal handlers):

``load(paths=(), modules=()) -> list[str]``
    Import plugin modules (see `ferrogate_sdk.load_plugins`: ``.py`` files, directories of them,
    module names). Returns the names registered so far. Raises what the import raised.

``prepare(conf) -> PreparedConf``
    `conf` is the route's conf list: ``[(name, value), ...]``, each ``str`` or ``bytes``. Parses
    every value once; the returned handle is immutable and may be shared by threads and kept for
    as long as the route's config version lives. Unknown plugin names are skipped (logged);
    a value its plugin refuses raises `ConfError` (answer the route with 503 or degrade).

``request_call(prepared, method, path, args, headers, src_ip, fetch=None, id=0) -> action``
    * `method`: upper-case name (``"GET"``); `path`: ``bytes`` or ``str``, no query;
    * `args`: ``[(name, value or None), ...]`` in order (``None`` = ``?flag``, ``""`` = ``?k=``);
    * `headers`: ``[(name, value), ...]`` in order, names lower-case, one entry per value;
    * `src_ip`: 4 or 16 raw bytes, or the textual address;
    * `fetch(kind, name) -> bytes | None`: called synchronously, at most once per variable and
      body per call, only if a plugin asks: kind 1 = variable `name` (``bytes``), 2 = request
      body (`name` ``None``). Return ``None`` when the gateway has no value. ``fetch=None``: no
      values.
    * Returns ``None`` (continue unchanged),
      ``("stop", status, headers, body)`` (status 0 means 200) or
      ``("rewrite", path_or_None, headers, args, resp_headers, body)``,
      with every header/arg list as ``[(bytes, bytes or None), ...]`` and body ``bytes`` (empty:
      unchanged/none). The meaning of each field is the protocol's (docs/runner-protocol.md).
    * Raises whatever a plugin raised (treat as the runner's SERVICE_UNAVAILABLE).

``response_call(prepared, status, headers, fetch=None, id=0) -> None | (status, headers, body)``
    The upstream's status and headers; `fetch` kind 3 = the upstream body, 1 = a variable.
    ``None`` keeps the upstream response; otherwise status 0 keeps the upstream's, a non-empty
    header list replaces the upstream's headers, a non-empty body replaces its body.

Threads: calls on several threads at once are safe for the SDK (prepared confs are immutable,
every call builds its own objects); plugins must keep per-call state in locals, as they would for
the socket runner. An exception thrown into the thread (a timeout) propagates out of the call;
that thread's loop is then replaced on its next call.

Cost: a chain of plain-function filters runs without any event loop; a chain with ``async``
filters costs one ``run_until_complete`` on the thread's loop.

`Request`, `Response`, `UpstreamResponse`, `PreparedConf.start_request`/`start_response` and
`ferrogate_sdk._plugin.request_action` are what these functions are made of, for an embedding
that prefers to build the objects itself.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple, Union

from ._drive import SyncFetch, async_fetch, run
from ._entries import Entry, Text, to_str
from ._http import (
    REQ_BODY,
    RESP_BODY,
    VAR,
    Request,
    Response,
    Rewrite,
    Stop,
    UpstreamResponse,
    ip_raw,
)
from ._loader import load_plugins
from ._plugin import ConfError, PreparedConf, Registry, default_registry, request_action

__all__ = [
    "VAR",
    "REQ_BODY",
    "RESP_BODY",
    "ConfError",
    "PreparedConf",
    "load",
    "prepare",
    "request_call",
    "response_call",
]

RawList = List[Tuple[bytes, Optional[bytes]]]
StopTuple = Tuple[str, int, RawList, bytes]
RewriteTuple = Tuple[str, Optional[bytes], RawList, RawList, RawList, bytes]


def _text_entries(entries: Sequence[Tuple[Text, Optional[Text]]]) -> List[Entry]:
    return [(to_str(n), None if v is None else to_str(v)) for n, v in entries]


def load(paths: Sequence[str] = (), modules: Sequence[str] = ()) -> List[str]:
    """Import plugin files, directories and modules; the registered plugin names."""
    load_plugins(paths, modules)
    return default_registry.names()


def prepare(conf: Sequence[Tuple[Text, Text]], registry: Optional[Registry] = None) -> PreparedConf:
    """Parse a route's conf list once."""
    return (default_registry if registry is None else registry).prepare(conf)


def request_call(
    prepared: PreparedConf,
    method: str,
    path: Text,
    args: Sequence[Tuple[Text, Optional[Text]]],
    headers: Sequence[Tuple[Text, Optional[Text]]],
    src_ip: Text,
    fetch: Optional[SyncFetch] = None,
    id: int = 0,
) -> Union[StopTuple, RewriteTuple, None]:
    """Run the request filters; see the module's docstring."""
    # Args and headers are converted on first use: a plugin that reads neither pays nothing.
    req = Request._lazy(
        id,
        method,
        to_str(path),
        lambda: _text_entries(args),
        lambda: _text_entries(headers),
        ip_raw(src_ip),
        async_fetch(fetch),
    )
    resp = Response()
    pending = prepared.start_request(req, resp)
    if pending is not None:
        run(pending)
    action = request_action(req, resp)
    if action is None:
        return None
    if isinstance(action, Stop):
        return ("stop", action.status, action.headers, action.body)
    assert isinstance(action, Rewrite)
    return ("rewrite", action.path, action.headers, action.args, action.resp_headers, action.body)


def response_call(
    prepared: PreparedConf,
    status: int,
    headers: Sequence[Tuple[Text, Optional[Text]]],
    fetch: Optional[SyncFetch] = None,
    id: int = 0,
) -> Optional[Tuple[int, RawList, bytes]]:
    """Run the response filters; see the module's docstring."""
    resp = UpstreamResponse._lazy(id, status, lambda: _text_entries(headers), async_fetch(fetch))
    pending = prepared.start_response(resp)
    if pending is not None:
        run(pending)
    reply = resp._reply()
    return None if reply is None else (reply.status, reply.headers, reply.body)
