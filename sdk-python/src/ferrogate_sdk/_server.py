"""The socket runner: the A6 protocol over a Unix socket with asyncio.

One `asyncio.Protocol` per connection parses frames straight from the transport's buffers. A
call whose filters are plain functions is answered inside ``data_received`` without a task; a
chain with ``async`` filters runs as one task, and until it answers, the connection accepts only
extra-info answers (the protocol allows one call at a time per connection). Questions may be
pipelined: they are answered in order, each answer resolving the oldest pending question.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import secrets
import stat
import time
from typing import Awaitable, Callable, Deque, Dict, List, Optional, Set, Tuple

from . import _codec as codec
from ._http import METHODS, Request, Response, UpstreamResponse
from ._plugin import ConfError, PreparedConf, Registry, default_registry, request_action

log = logging.getLogger("ferrogate_sdk.runner")

ConfEntries = List[Tuple[bytes, Optional[bytes]]]


class ProtocolError(Exception):
    """The gateway broke the conversation (an unexpected frame, an undecodable answer)."""


class ConfCache:
    """Conf tokens -> prepared confs, each expiring `ttl` seconds after its (re-)prepare.

    Preparing again with the same non-empty key and the same entries returns the same token and
    renews it, so a gateway that re-prepares before expiry keeps its token.
    """

    def __init__(
        self,
        registry: Registry,
        ttl: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._registry = registry
        self._ttl = ttl
        self._clock = clock
        self._tokens: Dict[int, Tuple[float, PreparedConf]] = {}
        self._keys: Dict[bytes, Tuple[int, ConfEntries]] = {}
        # A random start: a gateway that missed a restart of this runner (a runner started by
        # hand) gets CONF_TOKEN_NOT_FOUND for its old tokens instead of someone else's conf.
        self._last = secrets.randbits(32)
        self._next_sweep = clock() + ttl

    def __len__(self) -> int:
        return len(self._tokens)

    def prepare(self, conf: ConfEntries, key: bytes) -> int:
        """The token of `conf`; raises `ConfError` when a plugin refuses its value."""
        now = self._clock()
        if now >= self._next_sweep:
            self._sweep(now)
        if key:
            hit = self._keys.get(key)
            if hit is not None and hit[1] == conf:
                entry = self._tokens.get(hit[0])
                if entry is not None:
                    self._tokens[hit[0]] = (now + self._ttl, entry[1])
                    return hit[0]
        prepared = self._registry.prepare((n, v or b"") for n, v in conf)
        token = self._new_token()
        self._tokens[token] = (now + self._ttl, prepared)
        if key:
            self._keys[key] = (token, conf)
        return token

    def get(self, token: int) -> Optional[PreparedConf]:
        entry = self._tokens.get(token)
        if entry is None:
            return None
        if entry[0] <= self._clock():
            del self._tokens[token]
            return None
        return entry[1]

    def _new_token(self) -> int:
        token = self._last
        while True:
            token = token + 1 if token < 0xFFFFFFFF else 1
            if token not in self._tokens:
                self._last = token
                return token

    def _sweep(self, now: float) -> None:
        self._tokens = {t: e for t, e in self._tokens.items() if e[0] > now}
        self._keys = {k: e for k, e in self._keys.items() if e[0] in self._tokens}
        self._next_sweep = now + max(self._ttl / 4, 1.0)


_ERR_BAD_REQUEST = bytes(codec.encode_error(codec.BAD_REQUEST))
_ERR_UNAVAILABLE = bytes(codec.encode_error(codec.SERVICE_UNAVAILABLE))
_ERR_NO_TOKEN = bytes(codec.encode_error(codec.CONF_TOKEN_NOT_FOUND))


class Connection(asyncio.Protocol):
    """One gateway connection."""

    def __init__(self, cache: ConfCache, live: Optional[Set[Connection]] = None) -> None:
        self._cache = cache
        self._live = live
        self._transport: Optional[asyncio.Transport] = None
        self._buf = bytearray()
        self._busy = False
        self._stale = 0
        self._pending: Deque[asyncio.Future[Optional[bytes]]] = collections.deque()
        self._task: Optional[asyncio.Task[None]] = None
        self._closed = False

    @property
    def busy(self) -> bool:
        """A call is in progress (its answer is owed)."""
        return self._busy

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        if self._live is not None:
            self._live.add(self)

    def connection_lost(self, exc: Optional[Exception]) -> None:
        if self._live is not None:
            self._live.discard(self)
        self._closed = True
        if self._task is not None:
            self._task.cancel()
        self._fail_pending(ConnectionError("connection closed"))

    def _fail_pending(self, exc: BaseException) -> None:
        while self._pending:
            fut = self._pending.popleft()
            if not fut.done():
                fut.set_exception(exc)

    def _write(self, data: codec.Frame) -> None:
        if not self._closed and self._transport is not None:
            self._transport.write(data)

    def _abort(self, why: str) -> None:
        log.warning("closing connection: %s", why)
        self._closed = True
        self._fail_pending(ProtocolError(why))
        if self._transport is not None:
            self._transport.close()

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        if not buf:
            # Fast path: the chunk is exactly one frame.
            if len(data) >= 4:
                size = (data[1] << 16) | (data[2] << 8) | data[3]
                if len(data) == size + 4:
                    self._frame(data[0], data[4:])
                    return
            buf += data
        else:
            buf += data
        pos = 0
        end = len(buf)
        while end - pos >= 4 and not self._closed:
            size = (buf[pos + 1] << 16) | (buf[pos + 2] << 8) | buf[pos + 3]
            if end - pos - 4 < size:
                break
            ty = buf[pos]
            with memoryview(buf) as view:
                payload = bytes(view[pos + 4 : pos + 4 + size])
            pos += 4 + size
            self._frame(ty, payload)
        if self._closed:
            buf.clear()
        elif pos:
            del buf[:pos]

    def _frame(self, ty: int, payload: bytes) -> None:
        if self._busy:
            if ty == codec.T_EXTRA and self._pending:
                fut = self._pending.popleft()
                if fut.done():  # its asker was cancelled; the answer is dropped in order
                    return
                try:
                    fut.set_result(codec.decode_extra_answer(payload))
                except codec.DecodeError as e:
                    fut.set_exception(ProtocolError(f"undecodable extra-info answer: {e}"))
                return
            self._abort(f"frame of type {ty} while a call is in progress")
            return
        if ty == codec.T_REQUEST:
            self._request(payload)
        elif ty == codec.T_PREPARE:
            self._prepare(payload)
        elif ty == codec.T_RESPONSE:
            self._response(payload)
        elif ty == codec.T_EXTRA and self._stale:
            self._stale -= 1  # the answer to a question the finished call never awaited
        else:
            log.warning("unexpected frame of type %d", ty)
            self._write(_ERR_BAD_REQUEST)

    def _prepare(self, payload: bytes) -> None:
        try:
            conf, key = codec.decode_prepare(payload)
            token = self._cache.prepare(conf, key)
        except codec.DecodeError as e:
            log.warning("undecodable prepare: %s", e)
            self._write(_ERR_BAD_REQUEST)
        except ConfError as e:
            log.error("%s", e)
            self._write(_ERR_BAD_REQUEST)
        else:
            self._write(codec.encode_conf_token(token))

    def _fetch(self, kind: int, name: Optional[bytes]) -> Awaitable[Optional[bytes]]:
        if self._closed or not self._busy:
            raise ProtocolError("extra info asked outside a call")
        fut: asyncio.Future[Optional[bytes]] = asyncio.get_running_loop().create_future()
        self._pending.append(fut)
        self._write(codec.encode_extra_question(kind, name))
        return fut

    def _request(self, payload: bytes) -> None:
        try:
            f = codec.RequestFields(payload)
            method = METHODS[f.method]
        except (codec.DecodeError, IndexError) as e:
            log.warning("undecodable request call: %s", e)
            self._write(_ERR_BAD_REQUEST)
            return
        prepared = self._cache.get(f.token)
        if prepared is None:
            self._write(_ERR_NO_TOKEN)
            return
        req = Request._lazy(f.id, method, f.path, f.args, f.headers, f.src_ip, self._fetch)
        resp = Response()
        try:
            pending = prepared.start_request(req, resp)
            if pending is None:
                out = codec.encode_request_reply(f.id, request_action(req, resp))
        except codec.DecodeError as e:
            log.warning("undecodable request call: %s", e)
            self._write(_ERR_BAD_REQUEST)
            return
        except Exception:
            log.exception("request filter failed (call %d)", f.id)
            self._write(_ERR_UNAVAILABLE)
            return
        if pending is None:
            self._write(out)
            return
        self._busy = True
        id = f.id
        self._task = asyncio.get_running_loop().create_task(
            self._finish(
                pending, lambda: codec.encode_request_reply(id, request_action(req, resp)), id
            )
        )

    def _response(self, payload: bytes) -> None:
        try:
            f = codec.ResponseFields(payload)
        except codec.DecodeError as e:
            log.warning("undecodable response call: %s", e)
            self._write(_ERR_BAD_REQUEST)
            return
        prepared = self._cache.get(f.token)
        if prepared is None:
            self._write(_ERR_NO_TOKEN)
            return
        resp = UpstreamResponse._lazy(f.id, f.status, f.headers, self._fetch)
        try:
            pending = prepared.start_response(resp)
            if pending is None:
                out = codec.encode_response_reply(f.id, resp._reply())
        except codec.DecodeError as e:
            log.warning("undecodable response call: %s", e)
            self._write(_ERR_BAD_REQUEST)
            return
        except Exception:
            log.exception("response filter failed (call %d)", f.id)
            self._write(_ERR_UNAVAILABLE)
            return
        if pending is None:
            self._write(out)
            return
        self._busy = True
        self._task = asyncio.get_running_loop().create_task(
            self._finish(pending, lambda: codec.encode_response_reply(f.id, resp._reply()), f.id)
        )

    async def _finish(
        self, pending: Awaitable[None], reply: Callable[[], codec.Frame], id: int
    ) -> None:
        try:
            await pending
            out = reply()
        except (codec.DecodeError, ProtocolError) as e:
            if self._closed:
                return
            log.warning("call %d: %s", id, e)
            out = _ERR_BAD_REQUEST
        except ConnectionError:
            return
        except Exception:
            if self._closed:
                return
            log.exception("filter failed (call %d)", id)
            out = _ERR_UNAVAILABLE
        finally:
            self._busy = False
            self._task = None
        self._stale += len(self._pending)
        self._pending.clear()
        self._write(out)


def _remove_socket(path: str) -> None:
    try:
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)
    except FileNotFoundError:
        pass


def socket_path(address: str) -> str:
    """The file path of an ``APISIX_LISTEN_ADDRESS`` (``unix:/abs/path.sock``)."""
    if not address.startswith("unix:"):
        raise ValueError(f"listen address {address!r} must start with 'unix:'")
    path = address[len("unix:") :]
    if not path:
        raise ValueError("listen address has no path")
    return path


async def serve(
    path: str,
    shutdown: Awaitable[object],
    *,
    registry: Optional[Registry] = None,
    conf_expire: float = 3600.0,
    ready: Optional[Callable[[], None]] = None,
    drain: float = 5.0,
) -> None:
    """Serve the runner protocol on the Unix socket `path` until `shutdown` completes.

    A stale socket file at `path` is replaced. On shutdown the socket stops accepting and its
    file is removed, calls in progress get up to `drain` seconds to be answered, then every
    connection is closed.
    """
    cache = ConfCache(default_registry if registry is None else registry, conf_expire)
    loop = asyncio.get_running_loop()
    live: Set[Connection] = set()
    _remove_socket(path)
    server = await loop.create_unix_server(lambda: Connection(cache, live), path=path, backlog=1024)
    log.info("listening on unix:%s", path)
    try:
        if ready is not None:
            ready()
        await shutdown
    finally:
        server.close()
        _remove_socket(path)
        deadline = loop.time() + drain
        while any(c.busy for c in live) and loop.time() < deadline:
            await asyncio.sleep(0.01)
        for c in list(live):
            c.close()
