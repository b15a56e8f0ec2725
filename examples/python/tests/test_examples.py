"""Unit tests of the example plugins with ferrogate_sdk.testing (sdk-python/tests/test_runner.py
also serves this directory through the socket runner)."""

from __future__ import annotations

import pytest
import response_body
import response_header
import rewrite
import say
import token_check

from ferrogate_sdk import ConfError, ResponseReply, Rewrite, Stop
from ferrogate_sdk.testing import call_request, call_response, chain


def test_say_stops_with_the_body():
    action = call_request(say.Say(), '{"body": "hi", "status": 201}')
    assert action == Stop(201, [(b"content-type", b"text/plain; charset=utf-8")], b"hi")


def test_say_refuses_a_bad_conf():
    with pytest.raises(ConfError):
        chain((say.Say(), '{"nobody": 1}'))


def test_rewrite_path_header_and_arg():
    action = call_request(
        rewrite.Rewrite(),
        '{"prefix": "/v2", "set_header": ["X-Version", "2"], "drop_arg": "debug"}',
        path="/items",
        args=[("debug", None), ("q", "1")],
    )
    assert action == Rewrite(b"/v2/items", [(b"x-version", b"2")], [(b"debug", None)], [], b"")
    assert call_request(rewrite.Rewrite(), "{}") is None


def test_response_header_is_added_on_continue():
    action = call_request(response_header.ResponseHeader(), '{"name": "x-by", "value": "fg"}')
    assert action == Rewrite(None, [], [], [(b"x-by", b"fg")], b"")


def test_response_body_is_rewritten():
    reply = call_response(
        response_body.ResponseBody(),
        '{"replace": ["world", "there"]}',
        status=200,
        headers=[("content-type", "text/plain")],
        body="hello world",
    )
    assert reply == ResponseReply(0, [], b"hello there")


def test_token_check():
    conf = '{"header": "x-api-token", "var": "arg_expected"}'
    plugin = token_check.TokenCheck()
    ok = call_request(
        plugin, conf, headers=[("x-api-token", "s3cret")], vars={"arg_expected": "s3cret"}
    )
    assert ok == Rewrite(None, [(b"x-api-token", None)], [], [], b"")
    for headers, expected in (
        ([("x-api-token", "wrong")], "s3cret"),
        ([], "s3cret"),
        ([("x-api-token", "")], None),
    ):
        action = call_request(plugin, conf, headers=headers, vars={"arg_expected": expected})
        assert isinstance(action, Stop) and action.status == 401


def test_chain_of_examples():
    action = call_request(
        chain(
            (rewrite.Rewrite(), '{"prefix": "/api"}'),
            (response_header.ResponseHeader(), '{"name": "x-by", "value": "fg"}'),
        ),
        path="/x",
    )
    assert action == Rewrite(b"/api/x", [], [], [(b"x-by", b"fg")], b"")
