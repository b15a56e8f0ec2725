"""The sans-I/O core: entries, request/response objects, plugins, registry and chain."""

from __future__ import annotations

import asyncio
import threading

import pytest

from ferrogate_sdk import (
    Args,
    ConfError,
    Headers,
    Plugin,
    Registry,
    Request,
    RequestHeaders,
    Response,
    ResponseHeaders,
    ResponseReply,
    Rewrite,
    Stop,
    UpstreamResponse,
    inprocess,
    register,
)
from ferrogate_sdk._server import ConfCache
from ferrogate_sdk.testing import call_request, call_response, chain

# --- entries ---------------------------------------------------------------------------------


def test_non_utf8_bytes_round_trip_through_text():
    h = RequestHeaders([(b"x-bin", b"a\xff\xfeb"), (b"x-ok", "caf\u00e9".encode())])
    assert h["x-ok"] == "caf\u00e9"
    assert h.raw() == [(b"x-bin", b"a\xff\xfeb"), (b"x-ok", b"caf\xc3\xa9")]
    h.set("x-copy", h["x-bin"])
    assert h.changes() == [("x-copy", "a\udcff\udcfeb")]
    assert h.raw()[-1] == (b"x-copy", b"a\xff\xfeb")


def test_request_headers_multi_values_case_and_changes():
    h = RequestHeaders([("host", "a"), ("x-m", "1"), ("accept", "*/*"), ("x-m", "2")])
    assert h.get_all("X-M") == ["1", "2"]
    assert "HOST" in h and "nope" not in h and 3 not in h
    assert h.get("nope", "d") == "d"
    with pytest.raises(KeyError):
        h["nope"]
    h["X-M"] = "3"  # replaces both, at the first one's place, name lower-cased
    assert h.items() == [("host", "a"), ("x-m", "3"), ("accept", "*/*")]
    del h["accept"]
    h.set("x-m", "4")
    assert h.changes() == [("accept", None), ("x-m", "4")]
    assert len(h) == 2


def test_args_flags_empty_values_and_changes():
    a = Args([("flag", None), ("k", ""), ("a", "1"), ("a", "2")])
    assert a.get_all("flag") == [None] and a.get("flag") is None and a["flag"] == ""
    assert "flag" in a and a.get("k") == ""
    assert a.raw() == [(b"flag", None), (b"k", b""), (b"a", b"1"), (b"a", b"2")]
    a.set("a", ["x", "y"])
    a.add("n", "v")
    a.delete("k")
    assert a.items() == [("flag", None), ("a", "x"), ("a", "y"), ("n", "v")]
    assert a.changes() == [("a", "x"), ("a", "y"), ("n", "v"), ("k", None)]
    a.add("flag", "z")  # a flag cannot be sent back as a flag: it becomes ""
    assert a.changes() == [
        ("flag", ""), ("a", "x"), ("a", "y"), ("n", "v"), ("flag", "z"), ("k", None)
    ]  # fmt: skip
    # Interleaved names keep the view's order: [a1, b2, a3] travels as such.
    b = Args()
    b.set("a", "1")
    b.set("b", "2")
    b.add("a", "3")
    assert b.changes() == [("a", "1"), ("b", "2"), ("a", "3")]
    assert Args([("A", "1")]).get("a") is None  # names are case-sensitive


def test_response_headers_are_directives():
    h = ResponseHeaders()
    h.add("x-a", "1")
    h.add("x-a", "2")
    h.delete("server")
    h.set("x-b", "1")
    h.set("x-a", "3")
    assert h.items() == [("server", None), ("x-b", "1"), ("x-a", "3")]


def test_upstream_headers_track_changes():
    h = Headers([("a", "1")])
    assert not h.changed
    h.add("b", "2")
    assert h.changed and h.items() == [("a", "1"), ("b", "2")]
    assert h == [("a", "1"), ("b", "2")]


# --- plugins and chain -----------------------------------------------------------------------


class Tag(Plugin[str]):
    """Adds header x-seen: <path as seen>,<conf>; rewrites the path to /<conf>."""

    name = "tag"

    def request_filter(self, conf: str, req: Request, resp: Response) -> None:
        seen = req.headers.get("x-seen")
        req.headers.set("x-seen", f"{seen + ';' if seen else ''}{req.path},{conf}")
        req.path = "/" + conf


class Halt(Plugin[int]):
    name = "halt"

    def parse_conf(self, value: str) -> int:
        return int(value)

    def request_filter(self, conf: int, req: Request, resp: Response) -> None:
        resp.status = conf


class AsyncVar(Plugin[str]):
    name = "async-var"

    async def request_filter(self, conf: str, req: Request, resp: Response) -> None:
        value = await req.var(conf)
        again = await req.var(conf)  # cached: asked once
        assert value == again
        req.headers.set("x-var", (value or b"-").decode())


def test_chain_later_plugins_see_rewrites():
    action = call_request(chain((Tag(), "a"), (AsyncVar(), "v"), (Tag(), "b")), path="/start")
    # Header changes are sent in the order of each name's last change.
    assert action == Rewrite(b"/b", [(b"x-var", b"-"), (b"x-seen", b"/start,a;/a,b")], [], [], b"")


def test_first_stop_ends_the_chain_and_drops_rewrites():
    calls = []

    class Spy(Plugin[str]):
        name = "spy"

        def request_filter(self, conf: str, req: Request, resp: Response) -> None:
            calls.append(conf)

    action = call_request(chain((Tag(), "a"), (Halt(), "401"), (Spy(), "after")))
    assert action == Stop(401, [], b"")
    assert calls == []


def test_headers_alone_do_not_stop():
    class HeaderOnly(Plugin[str]):
        name = "header-only"

        def request_filter(self, conf: str, req: Request, resp: Response) -> None:
            resp.headers.set("x", "1")

    assert call_request(HeaderOnly()) is None


def test_async_stop_mid_chain():
    class AsyncHalt(Plugin[str]):
        name = "async-halt"

        async def request_filter(self, conf: str, req: Request, resp: Response) -> None:
            await asyncio.sleep(0)
            resp.stop(403, "no", [("x-why", "conf")])

    action = call_request(chain((AsyncHalt(), ""), (Tag(), "never")))
    assert action == Stop(403, [(b"x-why", b"conf")], b"no")


def test_request_body_and_vars_are_lazy_and_cached():
    asked = []

    async def fetch(kind, name):
        asked.append((kind, name))
        return {1: b"val", 2: b"body"}[kind]

    req = Request(fetch=fetch)

    async def go():
        assert await req.var("x") == b"val"
        assert await req.var("x") == b"val"
        assert await req.body() == b"body"
        assert await req.body() == b"body"
        req.set_body("new")
        assert await req.body() == b"new"

    asyncio.run(go())
    assert asked == [(1, b"x"), (2, None)]
    assert req._rewrite() == Rewrite(None, [], [], [], b"new")


def test_src_ip_forms():
    assert Request(src_ip=b"\x0a\0\0\x01").src_ip == "10.0.0.1"
    assert Request(src_ip="::1").src_ip_bytes == b"\0" * 15 + b"\x01"
    assert Request().src_ip == ""


def test_response_phase_all_filters_run_in_order():
    class Status(Plugin[str]):
        name = "status"

        def response_filter(self, conf: str, resp: UpstreamResponse) -> None:
            resp.status = resp.status + 1

    class Body(Plugin[str]):
        name = "body"

        async def response_filter(self, conf: str, resp: UpstreamResponse) -> None:
            resp.set_body((await resp.body()).upper() + str(resp.status).encode())
            resp.headers.add("x-b", "1")

    reply = call_response(
        chain((Status(), ""), (Body(), ""), (Status(), "")),
        status=200,
        headers=[("content-type", "text/plain")],
        body="up",
    )
    assert reply == ResponseReply(202, [(b"content-type", b"text/plain"), (b"x-b", b"1")], b"UP201")
    assert call_response(Status(), status=500) == ResponseReply(501, [], b"")
    assert call_response(Tag()) is None  # a request filter only


def test_registry_names_duplicates_and_decorator():
    reg = Registry()
    reg.add(Tag())
    with pytest.raises(ValueError, match="already"):
        reg.add(Tag())

    class NoName(Plugin[str]):
        pass

    with pytest.raises(ValueError, match="name"):
        reg.add(NoName())

    class Decorated(Plugin[str]):
        name = "decorated"

    assert register(Decorated, registry=reg) is Decorated  # the class decorator form

    assert isinstance(Decorated, type)
    assert reg.names() == ["decorated", "tag"]
    assert "tag" in reg and len(reg) == 2


def test_conf_parsed_once_per_prepare_and_refusals_raise():
    parsed = []

    class Counting(Plugin[str]):
        name = "counting"

        def parse_conf(self, value: str) -> str:
            parsed.append(value)
            if value == "bad":
                raise ValueError("bad value")
            return value.upper()

        def request_filter(self, conf: str, req: Request, resp: Response) -> None:
            req.headers.set("x-conf", conf)

    reg = Registry()
    reg.add(Counting())
    prepared = reg.prepare([("counting", "v"), ("unknown", "x")])
    for _ in range(3):
        assert call_request(prepared).headers == [(b"x-conf", b"V")]
    assert parsed == ["v"]
    with pytest.raises(ConfError, match="bad value"):
        reg.prepare([(b"counting", b"bad")])


# --- in-process entry point ------------------------------------------------------------------


def _registry():
    reg = Registry()
    for p in (Tag(), Halt(), AsyncVar()):
        reg.add(p)
    return reg


def test_inprocess_request_call_plain_values():
    reg = _registry()
    prepared = inprocess.prepare([("tag", "a"), ("async-var", "remote_addr")], registry=reg)
    asked = []

    def fetch(kind, name):
        asked.append((kind, name))
        return b"10.0.0.9"

    action = inprocess.request_call(
        prepared, "GET", b"/p", [(b"flag", None)], [(b"host", b"h")], b"\x7f\0\0\1", fetch, id=5
    )
    assert action == (
        "rewrite",
        b"/a",
        [(b"x-seen", b"/p,a"), (b"x-var", b"10.0.0.9")],
        [],
        [],
        b"",
    )
    assert asked == [(inprocess.VAR, b"remote_addr")]
    stop = inprocess.request_call(
        inprocess.prepare([("halt", "503")], registry=reg), "POST", "/", [], [], "::1"
    )
    assert stop == ("stop", 503, [], b"")
    empty = inprocess.prepare([], registry=reg)
    assert inprocess.request_call(empty, "GET", "/", [], [], "") is None


def test_inprocess_response_call_and_errors():
    class Fail(Plugin[str]):
        name = "fail"

        def response_filter(self, conf: str, resp: UpstreamResponse) -> None:
            raise RuntimeError("boom")

    reg = Registry()
    reg.add(Fail())
    prepared = inprocess.prepare([("fail", "")], registry=reg)
    with pytest.raises(RuntimeError, match="boom"):
        inprocess.response_call(prepared, 200, [])
    with pytest.raises(ConfError):
        inprocess.prepare([("halt", "x")], registry=_registry())


def test_inprocess_async_chains_on_many_threads():
    reg = _registry()
    prepared = inprocess.prepare([("async-var", "v")], registry=reg)
    results = []

    def worker(n):
        for _ in range(20):
            action = inprocess.request_call(
                prepared, "GET", "/", [], [], "", lambda k, name: str(n).encode()
            )
            results.append(action[2] == [(b"x-var", str(n).encode())])

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [True] * 160


# --- conf cache ------------------------------------------------------------------------------


def test_conf_cache_expiry_renewal_and_sweep():
    now = [100.0]
    reg = _registry()
    cache = ConfCache(reg, ttl=10, clock=lambda: now[0])
    conf = [(b"halt", b"401")]
    t1 = cache.prepare(conf, b"route#1#pre#1")
    assert cache.get(t1) is not None
    now[0] = 109.0
    assert cache.prepare(conf, b"route#1#pre#1") == t1  # re-prepared before expiry: renewed
    now[0] = 115.0
    assert cache.get(t1) is not None
    t2 = cache.prepare([(b"halt", b"402")], b"route#1#pre#1")  # same key, new conf: new token
    assert t2 != t1
    t3 = cache.prepare(conf, b"")  # no key: always a new token
    assert len({t1, t2, t3}) == 3
    now[0] = 119.5
    assert cache.get(t1) is None  # expired 10 s after its last prepare
    assert cache.get(t2) is not None
    now[0] = 200.0
    cache.prepare(conf, b"other")  # sweeps what expired
    assert len(cache) == 1
    with pytest.raises(ConfError):
        cache.prepare([(b"halt", b"nan")], b"")
