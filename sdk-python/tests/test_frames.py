"""The SDK's own layout of the messages it writes, pinned byte for byte.

tests/frames/*.bin were written by this encoder and accepted by the gateway's verifying reader
(runner-protocol's `ToGateway::decode`, which accepts exactly what the flatbuffers verifier
accepts) when the layout was made. A change of layout must be checked against that reader again
before these files are rewritten (FERROGATE_WRITE_FRAMES=1 rewrites them).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ferrogate_sdk import ResponseReply, Rewrite, Stop
from ferrogate_sdk import _codec as codec

FRAMES = Path(__file__).resolve().parent / "frames"

CASES = {
    "error_bad_request": lambda: codec.encode_error(codec.BAD_REQUEST),
    "error_service_unavailable": lambda: codec.encode_error(codec.SERVICE_UNAVAILABLE),
    "error_conf_token_not_found": lambda: codec.encode_error(codec.CONF_TOKEN_NOT_FOUND),
    "conf_token": lambda: codec.encode_conf_token(7),
    "conf_token_max": lambda: codec.encode_conf_token(0xFFFFFFFF),
    "request_continue": lambda: codec.encode_request_reply(1, None),
    "request_stop": lambda: codec.encode_request_reply(
        2,
        Stop(
            403,
            [(b"x-a", b"1"), (b"x-a", b""), (b"server", None), (b"", b"\xff\xfe")],
            b"body\x00\xff",
        ),
    ),
    "request_stop_empty": lambda: codec.encode_request_reply(3, Stop(0, [], b"")),
    "request_stop_body": lambda: codec.encode_request_reply(3, Stop(200, [], b"abc")),
    "request_rewrite": lambda: codec.encode_request_reply(
        4,
        Rewrite(
            b"/p\xff?",
            [(b"h", b"v"), (b"d", None)],
            [(b"a", b"1"), (b"a", b"")],
            [(b"r", b"x" * 7)],
            b"B" * 5,
        ),
    ),
    "request_rewrite_empty_path": lambda: codec.encode_request_reply(
        5, Rewrite(b"", [], [], [], b"")
    ),
    "request_rewrite_resp_headers": lambda: codec.encode_request_reply(
        6, Rewrite(None, [], [], [(b"x", None)], b"")
    ),
    "extra_var": lambda: codec.encode_extra_question(1, b"remote_addr"),
    "extra_var_empty": lambda: codec.encode_extra_question(1, b""),
    "extra_req_body": lambda: codec.encode_extra_question(2, None),
    "extra_resp_body": lambda: codec.encode_extra_question(3, None),
    "response_keep": lambda: codec.encode_response_reply(9, None),
    "response_full": lambda: codec.encode_response_reply(
        10, ResponseReply(201, [(b"a", b"1"), (b"b", None)], b"xyz")
    ),
    "response_status": lambda: codec.encode_response_reply(11, ResponseReply(500, [], b"")),
    "response_body": lambda: codec.encode_response_reply(12, ResponseReply(0, [], b"12345678")),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_frame_layout_is_pinned(name):
    ours = CASES[name]()
    path = FRAMES / f"{name}.bin"
    if os.environ.get("FERROGATE_WRITE_FRAMES") == "1":
        path.write_bytes(ours)
    assert ours == path.read_bytes()


def test_no_stray_frame_files():
    assert sorted(p.stem for p in FRAMES.glob("*.bin")) == sorted(CASES)
