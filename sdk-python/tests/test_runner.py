"""End-to-end tests of the socket runner: the real `python -m ferrogate_sdk.runner` process on a
real Unix socket, serving the conformance plugins (examples/python/conformance), spoken to with
the test-side wire model (generated bindings, not the SDK's codec)."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from wire import decode, encode, frame

SDK = Path(__file__).resolve().parents[1]
CONFORMANCE = SDK.parent / "examples" / "python" / "conformance"
EXAMPLES = SDK.parent / "examples" / "python" / "plugins"
ERR = {0: "BadRequest", 1: "ServiceUnavailable", 2: "ConfTokenNotFound"}


class Runner:
    def __init__(self, expire="3600", plugins=CONFORMANCE, stale_file=False):
        self.dir = tempfile.mkdtemp(prefix="fgpy")
        self.path = os.path.join(self.dir, "runner.sock")
        if stale_file:
            s = socket.socket(socket.AF_UNIX)
            s.bind(self.path)  # a socket file nobody listens on, as a crashed runner leaves
            s.close()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(SDK / "src"), env.get("PYTHONPATH", "")])
        env["APISIX_LISTEN_ADDRESS"] = "unix:" + self.path
        env["APISIX_CONF_EXPIRE_TIME"] = expire
        self.log = open(os.path.join(self.dir, "runner.log"), "w+b")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ferrogate_sdk.runner", str(plugins)],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                self.connect().close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"runner did not start: {self.output()}") from None
                time.sleep(0.02)

    def output(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def connect(self):
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(10)
        try:
            s.connect(self.path)
        except OSError:
            s.close()
            raise
        return Conn(s)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class Conn:
    def __init__(self, sock):
        self.sock = sock
        self.next_id = 1

    def close(self):
        self.sock.close()

    def send(self, ty, message):
        self.sock.sendall(frame(ty, encode(message)))

    def recv_raw(self):
        head = self._exactly(4)
        return head[0], self._exactly(int.from_bytes(head[1:4], "big"))

    def recv(self):
        ty, payload = self.recv_raw()
        ((kind, body),) = decode("to_gateway", ty, payload).items()
        return ty, kind, body

    def _exactly(self, n):
        chunks, got = [], 0
        while got < n:
            chunk = self.sock.recv(min(n - got, 1 << 20))
            if not chunk:
                raise EOFError("connection closed")
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def prepare(self, *conf, key=""):
        entries = [{"name": n.encode(), "value": json.dumps(v).encode()} for n, v in conf]
        self.send(1, {"PrepareConf": {"conf": entries, "key": key.encode()}})
        ty, kind, body = self.recv()
        assert (ty, kind) == (1, "ConfToken"), (ty, kind, body)
        return body

    def request(self, token, path="/p", args=(), headers=(), method="GET", src_ip=b"\x7f\0\0\1"):
        rid = self.next_id
        self.next_id += 1
        self.send(
            2,
            {
                "HttpRequest": {
                    "id": rid,
                    "src_ip": src_ip,
                    "method": method,
                    "path": path.encode() if isinstance(path, str) else path,
                    "args": [{"name": n, "value": v} for n, v in args],
                    "headers": [{"name": n, "value": v} for n, v in headers],
                    "conf_token": token,
                }
            },
        )
        return rid

    def response(self, token, status=200, headers=()):
        rid = self.next_id
        self.next_id += 1
        self.send(
            4,
            {
                "HttpResponse": {
                    "id": rid,
                    "status": status,
                    "headers": [{"name": n, "value": v} for n, v in headers],
                    "conf_token": token,
                }
            },
        )
        return rid

    def answer(self, result):
        self.send(3, {"ExtraInfoAnswer": result})

    def reply(self, rid):
        ty, kind, body = self.recv()
        assert (ty, kind) == (2, "HttpRequestReply"), (ty, kind, body)
        assert body["id"] == rid
        return body["action"]


def entries(*pairs):
    return [{"name": n, "value": v} for n, v in pairs]


@pytest.fixture(scope="module")
def runner():
    r = Runner()
    yield r
    r.stop()


@pytest.fixture
def conn(runner):
    c = runner.connect()
    yield c
    c.close()


def test_stop(conn):
    token = conn.prepare(
        ("conf-stop", {"status": 403, "headers": [["x-a", "1"], ["x-a", "2"], ["server", None]],
                       "body": "denied"})
    )  # fmt: skip
    rid = conn.request(token)
    assert conn.reply(rid) == {
        "Stop": {
            "status": 403,
            "headers": entries((b"x-a", b"1"), (b"x-a", b"2"), (b"server", None)),
            "body": b"denied",
        }
    }
    # Missing status: 200; the same token serves any number of calls.
    token = conn.prepare(("conf-stop", {}))
    for _ in range(3):
        rid = conn.request(token)
        assert conn.reply(rid) == {"Stop": {"status": 200, "headers": [], "body": b""}}


def test_rewrite_exact_fields(conn):
    token = conn.prepare(
        ("conf-rewrite", {"path": "/new", "headers": [["x-add", "v"], ["x-del", None]],
                          "args": [["a", "1"], ["a", "2"], ["gone", None]], "body": "B",
                          "resp_headers": [["x-r", "1"], ["x-r", "2"], ["x-s", None]]})
    )  # fmt: skip
    rid = conn.request(token, args=[(b"gone", b"x")], headers=[(b"x-del", b"1")])
    assert conn.reply(rid) == {
        "Rewrite": {
            "path": b"/new",
            "headers": entries((b"x-add", b"v"), (b"x-del", None)),
            "args": entries((b"a", b"1"), (b"a", b"2"), (b"gone", None)),
            "resp_headers": entries((b"x-r", b"1"), (b"x-r", b"2"), (b"x-s", None)),
            "body": b"B",
        }
    }
    # Nothing to change: continue without an action.
    token = conn.prepare(("conf-rewrite", {}))
    rid = conn.request(token)
    assert conn.reply(rid) is None


def test_echo_pipelined_questions_bytes_and_chain(conn):
    token = conn.prepare(
        ("conf-rewrite", {"headers": [["x-new", "n"]], "args": [["b", "2"]]}),
        ("conf-echo", {"vars": ["remote_addr", "no_such_var"], "body": True}),
    )
    rid = conn.request(
        token,
        path=b"/p\xff",
        args=[(b"flag", None), (b"k", b""), (b"a", b"1")],
        headers=[(b"host", b"example.com"), (b"x-bin", b"a\xffb"), (b"x-a", b"1")],
        src_ip=b"\x20\x01\x0d\xb8" + b"\0" * 11 + b"\x01",
    )
    # Both variables are asked before any answer (the plugin gathers them).
    questions = [conn.recv() for _ in range(2)]
    assert questions == [
        (3, "ExtraInfo", {"Var": b"remote_addr"}),
        (3, "ExtraInfo", {"Var": b"no_such_var"}),
    ]
    conn.answer(b"2001:db8::1")
    conn.answer(None)
    assert conn.recv() == (3, "ExtraInfo", "ReqBody")
    conn.answer(b"payload\xfe")
    action = conn.reply(rid)
    stop = action["Stop"]
    assert stop["status"] == 200
    assert stop["headers"] == entries((b"content-type", b"application/json"))
    assert json.loads(stop["body"]) == {
        "method": "GET",
        "path": "/p\ufffd",
        "src_ip": "2001:db8::1",
        "args": [["flag", None], ["k", ""], ["a", "1"], ["b", "2"]],
        "headers": [["host", "example.com"], ["x-bin", "a\ufffdb"], ["x-a", "1"], ["x-new", "n"]],
        "vars": {"remote_addr": "2001:db8::1", "no_such_var": None},
        "body": "payload\ufffd",
    }


def test_errors_are_type_0_with_the_right_code_and_the_connection_survives(conn):
    # Unknown token, request and response call.
    conn.request(0xDEAD)
    assert conn.recv() == (0, "Error", "ConfTokenNotFound")
    conn.response(0xDEAD)
    assert conn.recv() == (0, "Error", "ConfTokenNotFound")
    # A plugin that raises.
    token = conn.prepare(("conf-fail", {}))
    conn.request(token)
    assert conn.recv() == (0, "Error", "ServiceUnavailable")
    # Undecodable payloads, an unknown type, an answer outside a call.
    for ty, payload in ((2, b"\x01\x02"), (1, b"\xff\xff\xff\xff"), (9, b""), (3, b"")):
        conn.sock.sendall(frame(ty, payload))
        assert conn.recv() == (0, "Error", "BadRequest")
    # A conf its plugin refuses.
    conn.send(1, {"PrepareConf": {"conf": entries((b"conf-stop", b"not json")), "key": b""}})
    assert conn.recv() == (0, "Error", "BadRequest")
    # Still serving.
    token = conn.prepare(("conf-stop", {"status": 204}))
    rid = conn.request(token)
    assert conn.reply(rid)["Stop"]["status"] == 204


def test_unknown_plugin_is_skipped(conn):
    token = conn.prepare(("no-such-plugin", {}), ("conf-stop", {"status": 401}))
    rid = conn.request(token)
    assert conn.reply(rid)["Stop"]["status"] == 401


def test_same_key_same_conf_same_token(conn):
    a = conn.prepare(("conf-stop", {}), key="route#1#ext-plugin-pre-req#1")
    b = conn.prepare(("conf-stop", {}), key="route#1#ext-plugin-pre-req#1")
    c = conn.prepare(("conf-stop", {"status": 500}), key="route#1#ext-plugin-pre-req#1")
    d = conn.prepare(("conf-stop", {}))
    assert a == b
    assert len({a, c, d}) == 3
    assert 0 not in {a, c, d}


def test_response_phase(conn):
    token = conn.prepare(
        ("conf-stop", {"status": 500}),  # request filters do nothing here
        ("conf-response", {"status": 201, "headers": [["x-r", "1"], ["x-r", "2"]],
                           "body_prefix": "pre:"}),
    )  # fmt: skip
    rid = conn.response(token, status=200, headers=[(b"content-type", b"text/plain")])
    assert conn.recv() == (3, "ExtraInfo", "RespBody")
    conn.answer(b"upstream\x00\xff")
    ty, kind, body = conn.recv()
    assert (ty, kind) == (4, "HttpResponseReply")
    assert body == {
        "id": rid,
        "status": 201,
        "headers": entries((b"x-r", b"1"), (b"x-r", b"2")),
        "body": b"pre:upstream\x00\xff",
    }
    # Response filters do nothing in the request phase; no change keeps the upstream response.
    token = conn.prepare(("conf-response", {"status": 201}), ("conf-rewrite", {}))
    rid = conn.request(token)
    assert conn.reply(rid) is None
    token = conn.prepare(("conf-response", {}))
    rid = conn.response(token, status=502)
    assert conn.recv()[2] == {"id": rid, "status": 0, "headers": [], "body": b""}


def test_large_frames(conn):
    big = bytes(range(256)) * (8 << 12)  # 8 MiB
    token = conn.prepare(("conf-response", {"body_prefix": "x"}))
    rid = conn.response(token)
    assert conn.recv() == (3, "ExtraInfo", "RespBody")
    conn.answer(big)
    ty, kind, body = conn.recv()
    assert (ty, kind, body["id"], body["body"]) == (4, "HttpResponseReply", rid, b"x" + big)


def test_frames_split_and_coalesced(conn):
    token = conn.prepare(("conf-stop", {"status": 418}))
    req = lambda rid: frame(2, encode({"HttpRequest": {  # noqa: E731
        "id": rid, "src_ip": b"\x7f\0\0\1", "method": "GET", "path": b"/", "args": [],
        "headers": [], "conf_token": token}}))  # fmt: skip
    data = req(7)
    for i in range(len(data)):
        conn.sock.sendall(data[i : i + 1])
        time.sleep(0.001)
    assert conn.reply(7)["Stop"]["status"] == 418
    conn.sock.sendall(req(8) + req(9) + req(10))
    assert [conn.reply(i)["Stop"]["status"] for i in (8, 9, 10)] == [418] * 3


def test_slow_call_does_not_block_other_connections(runner):
    a, b = runner.connect(), runner.connect()
    try:
        slow = a.prepare(("conf-sleep", {"ms": 1000}))
        fast = b.prepare(("conf-stop", {"status": 202}))
        t0 = time.monotonic()
        rid_a = a.request(slow)
        rid_b = b.request(fast)
        assert b.reply(rid_b)["Stop"]["status"] == 202
        assert time.monotonic() - t0 < 1.0  # answered while the other call sleeps
        assert a.reply(rid_a) is None
        assert time.monotonic() - t0 >= 1.0
    finally:
        a.close()
        b.close()


def test_frame_during_a_call_closes_the_connection(runner):
    c = runner.connect()
    try:
        token = c.prepare(("conf-sleep", {"ms": 200}))
        c.request(token)
        c.request(token)  # a second call before the first is answered
        with pytest.raises((EOFError, ConnectionResetError)):
            c.recv()
    finally:
        c.close()
    c = runner.connect()  # the runner itself is fine
    token = c.prepare(("conf-stop", {}))
    assert c.reply(c.request(token))["Stop"]["status"] == 200
    c.close()


def test_many_connections_ids_never_confused(runner):
    errors = []

    def worker(n):
        try:
            c = runner.connect()
            token = c.prepare(("conf-stop", {"status": 200 + n, "body": str(n)}))
            for _ in range(30):
                rid = c.request(token)
                stop = c.reply(rid)["Stop"]
                assert (stop["status"], stop["body"]) == (200 + n, str(n).encode())
            c.close()
        except Exception as e:
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_conf_tokens_expire():
    r = Runner(expire="1")
    try:
        c = r.connect()
        token = c.prepare(("conf-stop", {}))
        assert c.reply(c.request(token))["Stop"]["status"] == 200
        time.sleep(1.2)
        c.request(token)
        assert c.recv() == (0, "Error", "ConfTokenNotFound")
        token = c.prepare(("conf-stop", {}))  # re-prepared: served again
        assert c.reply(c.request(token))["Stop"]["status"] == 200
        c.close()
    finally:
        r.stop()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_socket_replaced_on_start_and_removed_on_signal(signum):
    r = Runner(stale_file=True)
    try:
        c = r.connect()
        token = c.prepare(("conf-stop", {}))
        assert c.reply(c.request(token))["Stop"]["status"] == 200
        c.close()
        r.proc.send_signal(signum)
        assert r.proc.wait(10) == 0
        assert not os.path.exists(r.path)
    finally:
        r.stop()


def test_bad_listen_address():
    env = dict(os.environ, PYTHONPATH=str(SDK / "src"), APISIX_LISTEN_ADDRESS="/no/prefix.sock")
    p = subprocess.run(
        [sys.executable, "-m", "ferrogate_sdk.runner"],
        env=env,
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert p.returncode == 2
    assert b"unix:" in p.stderr


def test_example_plugins_through_the_socket_runner():
    r = Runner(plugins=EXAMPLES)
    try:
        c = r.connect()
        token = c.prepare(
            ("token-check", {"header": "x-api-token", "var": "arg_expected"}),
            ("rewrite", {"prefix": "/v2"}),
            ("response-header", {"name": "x-by", "value": "fg"}),
        )
        rid = c.request(token, path="/items", headers=[(b"x-api-token", b"s3cret")])
        assert c.recv() == (3, "ExtraInfo", {"Var": b"arg_expected"})
        c.answer(b"s3cret")
        assert c.reply(rid) == {
            "Rewrite": {
                "path": b"/v2/items",
                "headers": entries((b"x-api-token", None)),
                "args": [],
                "resp_headers": entries((b"x-by", b"fg")),
                "body": b"",
            }
        }
        rid = c.request(token, headers=[(b"x-api-token", b"wrong")])
        assert c.recv() == (3, "ExtraInfo", {"Var": b"arg_expected"})
        c.answer(b"s3cret")
        assert c.reply(rid)["Stop"]["status"] == 401
        c.close()
    finally:
        r.stop()


def test_sigterm_drains_calls_in_progress():
    r = Runner()
    try:
        c = r.connect()
        token = c.prepare(("conf-sleep", {"ms": 400}))
        rid = c.request(token)
        time.sleep(0.1)
        r.proc.send_signal(signal.SIGTERM)
        assert c.reply(rid) is None  # answered before the runner exits
        assert r.proc.wait(10) == 0
        assert not os.path.exists(r.path)
        c.close()
    finally:
        r.stop()


def test_garbage_never_takes_the_runner_down(runner):
    """Random frames (types 0-255, random payloads, valid frames with flipped bytes): each is
    answered with a frame or makes the runner close that connection; the runner keeps serving."""
    rng = random.Random(11)
    c = runner.connect()
    token = c.prepare(("conf-echo", {}))
    valid = frame(2, encode({"HttpRequest": {
        "id": 5, "src_ip": b"\x7f\0\0\1", "method": "GET", "path": b"/", "args": [],
        "headers": [{"name": b"a", "value": b"b"}], "conf_token": token}}))  # fmt: skip
    for i in range(300):
        if i % 2:
            data = bytearray(valid)
            for _ in range(rng.randint(1, 6)):
                data[rng.randrange(4, len(data))] = rng.randrange(256)
            data = bytes(data)
        else:
            payload = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 64)))
            data = frame(rng.choice([1, 2, 4, 9, 255]), payload)
        try:
            c.sock.sendall(data)
            ty, _payload = c.recv_raw()
            assert ty in (0, 1, 2, 3, 4)
            if ty == 3:  # a mutated conf-echo may ask for something: not answered, drop it
                raise EOFError
        except (EOFError, ConnectionError):
            c.close()
            c = runner.connect()
            token = c.prepare(("conf-echo", {}))
    c.close()
    c = runner.connect()
    token = c.prepare(("conf-stop", {"status": 299}))
    assert c.reply(c.request(token))["Stop"]["status"] == 299
    c.close()


def test_a_plugin_that_fails_to_import_stops_the_runner(tmp_path):
    (tmp_path / "broken.py").write_text("raise RuntimeError('broken plugin')\n")
    env = dict(
        os.environ,
        PYTHONPATH=str(SDK / "src"),
        APISIX_LISTEN_ADDRESS="unix:" + str(tmp_path / "r.sock"),
    )
    p = subprocess.run(
        [sys.executable, "-m", "ferrogate_sdk.runner", str(tmp_path)],
        env=env,
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert p.returncode == 1
    assert b"broken plugin" in p.stderr
    assert not (tmp_path / "r.sock").exists()


def test_undecodable_extra_info_answer_is_a_bad_request(conn):
    token = conn.prepare(("conf-echo", {"vars": ["x"]}))
    conn.request(token)
    assert conn.recv() == (3, "ExtraInfo", {"Var": b"x"})
    conn.sock.sendall(frame(3, b"\x01"))
    assert conn.recv() == (0, "Error", "BadRequest")
    token = conn.prepare(("conf-stop", {"status": 201}))
    assert conn.reply(conn.request(token))["Stop"]["status"] == 201


def test_many_connections_with_questions(runner):
    """Async calls on many connections at once: every question and answer stays on its own
    connection, in order."""
    errors = []

    def worker(n):
        try:
            c = runner.connect()
            token = c.prepare(("conf-echo", {"vars": ["a", "b"]}))
            for i in range(10):
                rid = c.request(token, path=f"/{n}/{i}")
                assert [c.recv()[2] for _ in range(2)] == [{"Var": b"a"}, {"Var": b"b"}]
                c.answer(f"{n}-{i}".encode())
                c.answer(None)
                doc = json.loads(c.reply(rid)["Stop"]["body"])
                assert (doc["path"], doc["vars"]) == (f"/{n}/{i}", {"a": f"{n}-{i}", "b": None})
            c.close()
        except Exception as e:
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
