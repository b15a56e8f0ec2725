"""Golden vectors of the runner protocol, checked with the generated Python bindings.

For every entry of runner-protocol/vectors/manifest.json:
  * the frame's header (type byte, 24-bit big-endian length) matches the file and the manifest;
  * the payload, decoded with the generated classes, equals the manifest's content;
  * the message built from the manifest with the Python Builder decodes to the same content;
  * where `exact_bytes` is true, those bytes equal the golden payload byte for byte.

A file named *.bin.gz holds its frame gzip-compressed (the 16 MiB frame at the size limit).
Strings are read as raw bytes (header values and paths may not be UTF-8). Absent vectors equal
empty ones, except a TextEntry's value, a Rewrite's path and an ExtraInfo answer's result, where
absent (None) and empty (b"") differ.
"""

import contextlib
import gzip
import random

import pytest
from wire import (
    KINDS,
    MANIFEST,
    MAX_PAYLOAD,
    VECTORS,
    decode,
    encode,
    frame,
    from_manifest,
    jbytes,
    split_tag,
)

ENTRIES = {v["name"]: v for v in MANIFEST["vectors"]}


# ---------------------------------------------------------------------------------------------
# Tests


def clip(value, limit=2000):
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars in all)"


def same(got, want, what):
    """Equality with a short message: pytest's own diff of two 16 MiB values would take minutes."""
    if got != want:
        raise AssertionError(f"{what} differs\n got: {clip(got)}\nwant: {clip(want)}")


def test_manifest_lists_every_vector_file():
    names = [v["name"] for v in MANIFEST["vectors"]]
    assert len(names) == len(set(names)), "duplicate vector names"
    files = [v["file"] for v in MANIFEST["vectors"]]
    assert len(files) == len(set(files)), "duplicate vector files"
    on_disk = sorted(p.name for pattern in ("*.bin", "*.bin.gz") for p in VECTORS.glob(pattern))
    assert on_disk == sorted(files)
    assert set(KINDS.values()) <= {split_tag(v["message"])[0] for v in MANIFEST["vectors"]}


@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_vector(name):
    entry = ENTRIES[name]
    data = (VECTORS / entry["file"]).read_bytes()
    if entry["file"].endswith(".gz"):
        data = gzip.decompress(data)
    direction, ty = entry["direction"], entry["type"]

    # Frame header.
    assert len(data) >= 4, "shorter than a frame header"
    assert data[0] == ty, "type byte"
    length = int.from_bytes(data[1:4], "big")
    assert length == len(data) - 4, "declared payload length"
    payload = data[4:]

    kind, _ = split_tag(entry["message"])
    assert KINDS[(direction, ty)] == kind, f"{kind} does not travel as type {ty} {direction}"
    expected = from_manifest(entry["message"])

    # Golden payload -> content.
    same(decode(direction, ty, payload), expected, "decoded golden payload")

    # Content -> our payload -> content.
    ours = encode(expected)
    same(decode(direction, ty, ours), expected, "decoded Python-built payload")

    # Our bytes, where the encoder's choices are pinned.
    if entry["exact_bytes"]:
        same(frame(ty, ours), data, "frame bytes")


def test_byte_string_forms():
    assert jbytes("café") == "café".encode()
    assert jbytes({"hex": "ff00"}) == b"\xff\x00"
    assert jbytes({"hex": "61", "repeat": 1024}) == b"a" * 1024
    assert jbytes({"hex": "0102", "repeat": 3}) == b"\x01\x02" * 3
    assert jbytes({"hex": "00", "repeat": 0}) == b""
    for bad in ({"hex": "0000", "repeat": MAX_PAYLOAD // 2 + 1}, {"hex": "00", "repeat": -1}):
        with pytest.raises(AssertionError):
            jbytes(bad)


# ---------------------------------------------------------------------------------------------
# The SDK's own codec (ferrogate_sdk._codec) against the same vectors: it reads every message
# the gateway sends as the manifest says, and what it writes for every message the runner sends
# decodes, with the generated bindings, to the manifest's content.

from ferrogate_sdk import ResponseReply, Rewrite, Stop  # noqa: E402
from ferrogate_sdk import _codec as codec  # noqa: E402
from ferrogate_sdk._http import METHODS  # noqa: E402


def _b(text):
    return text.encode("utf-8", "surrogateescape")


def _sdk_entries(entries):
    return [{"name": _b(n), "value": None if v is None else _b(v)} for n, v in entries]


def _raw(entries):
    return [(e["name"], e["value"]) for e in entries]


def sdk_decode(kind, payload):
    if kind == "PrepareConf":
        conf, key = codec.decode_prepare(payload)
        return {kind: {"conf": [{"name": n, "value": v} for n, v in conf], "key": key}}
    if kind == "HttpRequest":
        f = codec.RequestFields(payload)
        return {
            kind: {
                "id": f.id,
                "src_ip": f.src_ip,
                "method": METHODS[f.method],
                "path": _b(f.path),
                "args": _sdk_entries(f.args()),
                "headers": _sdk_entries(f.headers()),
                "conf_token": f.token,
            }
        }
    if kind == "ExtraInfoAnswer":
        return {kind: codec.decode_extra_answer(payload)}
    assert kind == "HttpResponse"
    f = codec.ResponseFields(payload)
    return {
        kind: {
            "id": f.id,
            "status": f.status,
            "headers": _sdk_entries(f.headers()),
            "conf_token": f.token,
        }
    }


def sdk_encode(kind, m):
    if kind == "Error":
        return codec.encode_error(wire.CODE_VALUES[m])
    if kind == "ConfToken":
        return codec.encode_conf_token(m)
    if kind == "HttpRequestReply":
        action = m["action"]
        if action is None:
            return codec.encode_request_reply(m["id"], None)
        ((akind, a),) = action.items()
        if akind == "Stop":
            act = Stop(a["status"], _raw(a["headers"]), a["body"])
        else:
            act = Rewrite(
                a["path"], _raw(a["headers"]), _raw(a["args"]), _raw(a["resp_headers"]), a["body"]
            )
        return codec.encode_request_reply(m["id"], act)
    if kind == "ExtraInfo":
        if isinstance(m, dict):
            return codec.encode_extra_question(1, m["Var"])
        return codec.encode_extra_question(2 if m == "ReqBody" else 3, None)
    assert kind == "HttpResponseReply"
    reply = ResponseReply(m["status"], _raw(m["headers"]), m["body"])
    return codec.encode_response_reply(m["id"], reply)


import wire  # noqa: E402


@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_vector_sdk_codec(name):
    entry = ENTRIES[name]
    data = (VECTORS / entry["file"]).read_bytes()
    if entry["file"].endswith(".gz"):
        data = gzip.decompress(data)
    direction, ty = entry["direction"], entry["type"]
    expected = from_manifest(entry["message"])
    ((kind, body),) = expected.items()
    if direction == "to_runner":
        same(sdk_decode(kind, data[4:]), expected, "payload decoded by the SDK")
        return
    ours = bytes(sdk_encode(kind, body))
    assert ours[0] == ty
    assert int.from_bytes(ours[1:4], "big") == len(ours) - 4
    same(decode(direction, ty, ours[4:]), expected, "decoded SDK-built payload")
    # The SDK lays messages out by hand (not flatbuffers.Builder): content, not bytes, must match.


def _decode_all(payload):
    f = codec.RequestFields(payload)
    return f.args(), f.headers()


def test_sdk_codec_fails_only_with_decode_error():
    """Truncations and random byte flips of a valid request either decode or raise
    DecodeError (which the runner answers with BAD_REQUEST), never anything else."""
    data = (VECTORS / "http_request_ipv6_non_utf8.bin").read_bytes()[4:]
    for cut in range(len(data)):
        with contextlib.suppress(codec.DecodeError):
            _decode_all(data[:cut])
    rng = random.Random(7)
    for _ in range(3000):
        mutated = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        with contextlib.suppress(codec.DecodeError):
            _decode_all(bytes(mutated))
    for junk in (b"", b"\x00", b"\xff\xff\xff\xff", b"\x04\x00\x00\x00\xff\xff\xff\x7f"):
        with pytest.raises(codec.DecodeError):
            _decode_all(junk)
