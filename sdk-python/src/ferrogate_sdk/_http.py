"""The objects a plugin works with: the request, the answer that stops it, the upstream response.

Nothing here does I/O. Variables and bodies come through a `Fetch` callable supplied by whoever
drives the core (the socket runner asks the gateway over the socket; the in-process runner calls
into the gateway), and are cached for the rest of the call.
"""

from __future__ import annotations

import ipaddress
from typing import Awaitable, Callable, Dict, Iterable, List, NamedTuple, Optional, Tuple, Union

from ._entries import (
    Args,
    Entry,
    Headers,
    RawEntry,
    RequestHeaders,
    ResponseHeaders,
    Text,
    raw_entries,
    to_bytes,
    to_str,
)

#: Extra-info kinds, numbered as the protocol's `Info` union.
VAR = 1
REQ_BODY = 2
RESP_BODY = 3

#: ``fetch(kind, name)``: the value of variable `name` (``VAR``) or the request or upstream
#: response body (``REQ_BODY`` / ``RESP_BODY``, `name` is ``None``); ``None`` when the gateway has
#: no value.
Fetch = Callable[[int, Optional[bytes]], Awaitable[Optional[bytes]]]

#: Method names, numbered as the protocol's `Method` enum.
METHODS: Tuple[str, ...] = (
    "GET", "HEAD", "POST", "PUT", "DELETE", "MKCOL", "COPY", "MOVE", "OPTIONS",
    "PROPFIND", "PROPPATCH", "LOCK", "UNLOCK", "PATCH", "TRACE",
)  # fmt: skip


async def _no_fetch(kind: int, name: Optional[bytes]) -> Optional[bytes]:
    return None


def ip_text(raw: bytes) -> str:
    """The textual form of a source address sent as 4 or 16 raw bytes."""
    if len(raw) in (4, 16):
        return str(ipaddress.ip_address(raw))
    return to_str(raw)


def ip_raw(value: Text) -> bytes:
    """Raw 4 or 16 bytes from an address in text (or already raw) form; text that is not an
    address is kept as its bytes."""
    if isinstance(value, bytes):
        return value
    try:
        return ipaddress.ip_address(value).packed
    except ValueError:
        return to_bytes(value)


class Stop(NamedTuple):
    """Answer the client now: status (0 means 200), header directives, body (empty: none)."""

    status: int
    headers: List[RawEntry]
    body: bytes


class Rewrite(NamedTuple):
    """Continue with changes: new path (``None``: unchanged), header entries (None deletes),
    arg entries, headers to add to the client response, new request body (empty: unchanged)."""

    path: Optional[bytes]
    headers: List[RawEntry]
    args: List[RawEntry]
    resp_headers: List[RawEntry]
    body: bytes


class ResponseReply(NamedTuple):
    """Reply to a response call: status (0 keeps the upstream's), headers (non-empty: the complete
    set that replaces the upstream's), body (empty: keep the upstream's)."""

    status: int
    headers: List[RawEntry]
    body: bytes


Action = Union[None, Stop, Rewrite]


class Request:
    """The HTTP request as the plugin sees it (after earlier plugins' rewrites in the chain).

    `method` is the upper-case name; `path` has no query; `args` and `headers` are ordered
    multi-maps (`Args`, `RequestHeaders`); `src_ip` is the client address in text form. Setting
    `path`, changing `headers` or `args`, `set_body` and `resp_headers` (headers added to the
    client's response) make the call answer with a rewrite.
    """

    __slots__ = (
        "_args",
        "_args_load",
        "_body",
        "_body_changed",
        "_fetch",
        "_headers",
        "_headers_load",
        "_path",
        "_path_changed",
        "_src_ip",
        "_vars",
        "id",
        "method",
        "resp_headers",
    )  # fmt: skip

    def __init__(
        self,
        *,
        id: int = 0,
        method: str = "GET",
        path: Text = "/",
        args: Union[Args, Iterable[Tuple[Text, Optional[Text]]]] = (),
        headers: Union[RequestHeaders, Iterable[Tuple[Text, Optional[Text]]]] = (),
        src_ip: Text = b"",
        fetch: Optional[Fetch] = None,
    ) -> None:
        self.id = id
        self.method = method
        self._path = to_str(path)
        self._path_changed = False
        self._args: Optional[Args] = args if isinstance(args, Args) else Args(args)
        self._args_load: Optional[Callable[[], List[Entry]]] = None
        self._headers: Optional[RequestHeaders] = (
            headers if isinstance(headers, RequestHeaders) else RequestHeaders(headers)
        )
        self._headers_load: Optional[Callable[[], List[Entry]]] = None
        self._src_ip = ip_raw(src_ip)
        self._fetch: Fetch = fetch or _no_fetch
        self._vars: Dict[str, Optional[bytes]] = {}
        self._body: Optional[bytes] = None
        self._body_changed = False
        self.resp_headers = ResponseHeaders()

    @classmethod
    def _lazy(
        cls,
        id: int,
        method: str,
        path: str,
        args_load: Callable[[], List[Entry]],
        headers_load: Callable[[], List[Entry]],
        src_ip: bytes,
        fetch: Fetch,
    ) -> Request:
        """A request whose args and headers are decoded on first use (the socket runner)."""
        self = cls.__new__(cls)
        self.id = id
        self.method = method
        self._path = path
        self._path_changed = False
        self._args = None
        self._args_load = args_load
        self._headers = None
        self._headers_load = headers_load
        self._src_ip = src_ip
        self._fetch = fetch
        self._vars = {}
        self._body = None
        self._body_changed = False
        self.resp_headers = ResponseHeaders()
        return self

    @property
    def path(self) -> str:
        return self._path

    @path.setter
    def path(self, value: str) -> None:
        self._path = value
        self._path_changed = True

    @property
    def args(self) -> Args:
        a = self._args
        if a is None:
            assert self._args_load is not None
            a = self._args = Args._wrap(self._args_load())
        return a

    @property
    def headers(self) -> RequestHeaders:
        h = self._headers
        if h is None:
            assert self._headers_load is not None
            h = self._headers = RequestHeaders._lazy(self._headers_load)
        return h

    @property
    def src_ip(self) -> str:
        return ip_text(self._src_ip)

    @property
    def src_ip_bytes(self) -> bytes:
        return self._src_ip

    async def var(self, name: str) -> Optional[bytes]:
        """An nginx/APISIX variable (``remote_addr``, ``route_id``, ...); ``None`` when unset.
        Asked once per call, then cached."""
        try:
            return self._vars[name]
        except KeyError:
            value = await self._fetch(VAR, to_bytes(name))
            self._vars[name] = value
            return value

    async def body(self) -> bytes:
        """The request body (as rewritten by an earlier plugin, if one did)."""
        if self._body is None:
            self._body = await self._fetch(REQ_BODY, None) or b""
        return self._body

    def set_body(self, body: Text) -> None:
        """Replace the request body sent upstream (an empty body leaves it unchanged)."""
        self._body = to_bytes(body)
        self._body_changed = True

    def _rewrite(self) -> Optional[Rewrite]:
        headers = self._headers.changes() if self._headers is not None else []
        args = self._args.changes() if self._args is not None else []
        resp_headers = self.resp_headers._entries
        if not (self._path_changed or headers or args or resp_headers or self._body_changed):
            return None

        return Rewrite(
            to_bytes(self._path) if self._path_changed else None,
            raw_entries(headers),
            raw_entries(args),
            raw_entries(resp_headers),
            self._body if self._body_changed and self._body else b"",
        )


class Response:
    """The answer that stops the request (the upstream is not contacted).

    Setting `status` or `body`, or calling `stop`, stops the chain after this plugin; `headers`
    alone do not (they are the stop answer's headers, see `ResponseHeaders`).
    """

    __slots__ = ("_body", "_status", "headers", "stopped")

    def __init__(self) -> None:
        self._status = 0
        self.headers = ResponseHeaders()
        self._body = b""
        self.stopped = False

    @property
    def status(self) -> int:
        return self._status or 200

    @status.setter
    def status(self, value: int) -> None:
        self._status = value
        self.stopped = True

    @property
    def body(self) -> bytes:
        return self._body

    @body.setter
    def body(self, value: Text) -> None:
        self._body = to_bytes(value)
        self.stopped = True

    def stop(
        self,
        status: int = 200,
        body: Text = b"",
        headers: Optional[List[Tuple[str, Optional[str]]]] = None,
    ) -> None:
        """Stop with `status`, `body` and `headers` (each added; ``None`` removes)."""
        self._status = status
        self._body = to_bytes(body)
        for name, value in headers or ():
            self.headers.append_entry(name, value)
        self.stopped = True

    def _stop(self) -> Stop:
        return Stop(self._status, self.headers.raw(), self._body)


class UpstreamResponse:
    """The upstream's response in the response phase (``ext-plugin-post-resp``).

    `status` and `headers` start as the upstream's; changing either, or `set_body`, is sent back.
    A changed header set is sent whole: the gateway replaces the upstream's headers with it.
    """

    __slots__ = (
        "_body",
        "_body_changed",
        "_fetch",
        "_headers",
        "_headers_load",
        "_status",
        "_status_changed",
        "_vars",
        "id",
    )  # fmt: skip

    def __init__(
        self,
        *,
        id: int = 0,
        status: int = 200,
        headers: Union[Headers, Iterable[Tuple[Text, Optional[Text]]]] = (),
        fetch: Optional[Fetch] = None,
    ) -> None:
        self.id = id
        self._status = status
        self._status_changed = False
        self._headers: Optional[Headers] = (
            headers if isinstance(headers, Headers) else Headers(headers)
        )
        self._headers_load: Optional[Callable[[], List[Entry]]] = None
        self._fetch: Fetch = fetch or _no_fetch
        self._vars: Dict[str, Optional[bytes]] = {}
        self._body: Optional[bytes] = None
        self._body_changed = False

    @classmethod
    def _lazy(
        cls, id: int, status: int, headers_load: Callable[[], List[Entry]], fetch: Fetch
    ) -> UpstreamResponse:
        self = cls.__new__(cls)
        self.id = id
        self._status = status
        self._status_changed = False
        self._headers = None
        self._headers_load = headers_load
        self._fetch = fetch
        self._vars = {}
        self._body = None
        self._body_changed = False
        return self

    @property
    def status(self) -> int:
        return self._status

    @status.setter
    def status(self, value: int) -> None:
        self._status = value
        self._status_changed = True

    @property
    def headers(self) -> Headers:
        h = self._headers
        if h is None:
            assert self._headers_load is not None
            h = self._headers = Headers._wrap(self._headers_load())
        return h

    async def var(self, name: str) -> Optional[bytes]:
        """An nginx/APISIX variable; ``None`` when unset. Cached for the call."""
        try:
            return self._vars[name]
        except KeyError:
            value = await self._fetch(VAR, to_bytes(name))
            self._vars[name] = value
            return value

    async def body(self) -> bytes:
        """The upstream's response body (or the body an earlier plugin set)."""
        if self._body is None:
            self._body = await self._fetch(RESP_BODY, None) or b""
        return self._body

    def set_body(self, body: Text) -> None:
        """Replace the body sent to the client (an empty body keeps the upstream's)."""
        self._body = to_bytes(body)
        self._body_changed = True

    def _reply(self) -> Optional[ResponseReply]:
        h = self._headers
        headers_changed = h is not None and h.changed
        if not (self._status_changed or headers_changed or self._body_changed):
            return None
        return ResponseReply(
            self._status if self._status_changed else 0,
            h.raw() if h is not None and headers_changed else [],
            self._body if self._body_changed and self._body else b"",
        )
