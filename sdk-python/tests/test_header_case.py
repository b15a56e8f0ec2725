"""Header names come back lower-cased everywhere: in a rewrite, in a stop, in a response reply,
whatever case the plugin or the test used (the gateway lower-cases them too)."""

from __future__ import annotations

from ferrogate_sdk import (
    Plugin,
    Request,
    Response,
    ResponseReply,
    Rewrite,
    Stop,
    UpstreamResponse,
    inprocess,
)
from ferrogate_sdk.testing import call_request, call_response, chain


class Mixed(Plugin[str]):
    """Writes headers in mixed case; stops when the conf is "stop"."""

    name = "mixed-case"

    def request_filter(self, conf: str, req: Request, resp: Response) -> None:
        if conf == "stop":
            resp.headers.set("Content-Type", "text/plain")
            resp.headers.add("X-Multi", "1")
            resp.headers.add("x-MULTI", "2")
            resp.headers.delete("Server")
            resp.stop(403, "no", headers=[("X-Reason", "case"), ("X-Gone", None)])
            return
        req.headers.set("X-Said", req.headers.get("X-Skip") or "-")
        req.headers.delete("X-Drop")
        req.resp_headers.set("X-Resp", "r")
        req.resp_headers.add("X-Resp", "s")


class MixedResponse(Plugin[str]):
    name = "mixed-case-response"

    def response_filter(self, conf: str, resp: UpstreamResponse) -> None:
        resp.headers.set("Content-Type", "text/html")
        resp.headers.add("X-Added", "1")


def test_a_stop_has_lower_case_header_names():
    assert call_request(Mixed(), "stop") == Stop(
        403,
        [
            (b"content-type", b"text/plain"),
            (b"x-multi", b"1"),
            (b"x-multi", b"2"),
            (b"server", None),
            (b"x-reason", b"case"),
            (b"x-gone", None),
        ],
        b"no",
    )


def test_a_rewrite_has_lower_case_header_names():
    # The test's own header names are lower-cased on the way in, as the gateway sends them.
    action = call_request(Mixed(), "go", headers=[("X-Skip", "yes"), ("X-Drop", "1")])
    assert action == Rewrite(
        None,
        [(b"x-said", b"yes"), (b"x-drop", None)],
        [],
        [(b"x-resp", b"r"), (b"x-resp", b"s")],
        b"",
    )


def test_stop_and_rewrite_agree_on_case():
    stop = call_request(Mixed(), "stop")
    rewrite = call_request(Mixed(), "go")
    assert isinstance(stop, Stop) and isinstance(rewrite, Rewrite)
    names = [n for n, _ in stop.headers + rewrite.headers + rewrite.resp_headers]
    assert names == [n.lower() for n in names]


def test_a_response_reply_has_lower_case_header_names():
    reply = call_response(MixedResponse(), headers=[("Content-Type", "text/plain"), ("X-Up", "u")])
    assert reply == ResponseReply(
        0, [(b"content-type", b"text/html"), (b"x-up", b"u"), (b"x-added", b"1")], b""
    )


def test_the_in_process_entry_point_lowers_too():
    registered = chain((Mixed(), "stop"))
    action = inprocess.request_call(registered, "GET", b"/", [], [], b"\x7f\x00\x00\x01")
    assert action is not None and action[0] == "stop"
    assert action[2][0] == (b"content-type", b"text/plain")


def test_only_ascii_letters_are_lowered():
    # A byte that is not UTF-8 (a lone surrogate in the str) travels back unchanged.
    resp = Response()
    resp.stop(200, "", headers=[("X-\udcc9", "v"), (b"X-\xc9\xc9", b"w")])
    assert resp.headers.raw() == [(b"x-\xc9", b"v"), (b"x-\xc9\xc9", b"w")]
