"""The wire format: frames and the A6 FlatBuffers messages (schema runner-protocol/schema).

Readers are hand-written over `struct` (one bounds-checked pass, strings read as bytes and decoded
without loss); a malformed payload raises `DecodeError`, never anything worse. Writers use the
hand-laid layout (see "Writing") that is several times faster than the flatbuffers Builder and
decode (with the generated bindings in the tests) to the golden vectors' content.
"""

from __future__ import annotations

import struct
from typing import List, Optional, Sequence, Tuple, Union

from ._entries import Entry, RawEntry
from ._http import ResponseReply, Rewrite, Stop

# Frame types.
T_ERROR = 0
T_PREPARE = 1
T_REQUEST = 2
T_EXTRA = 3
T_RESPONSE = 4

# A6.Err.Code
BAD_REQUEST = 0
SERVICE_UNAVAILABLE = 1
CONF_TOKEN_NOT_FOUND = 2

MAX_PAYLOAD = 0xFFFFFF

_U32 = struct.Struct("<I").unpack_from
_I32 = struct.Struct("<i").unpack_from
_U16 = struct.Struct("<H").unpack_from
_HH = struct.Struct("<HH").unpack_from
_VT2 = struct.Struct("<4H").unpack_from
_REQ_SLOTS = struct.Struct("<7H").unpack_from
_ENC = "utf-8"
_ERR = "surrogateescape"

Buf = bytes
Frame = bytes


class DecodeError(ValueError):
    """A payload that is not the FlatBuffers message its frame type announces."""


# ---------------------------------------------------------------------------------------------
# Reading


def _table(buf: Buf, t: int, n: int) -> Tuple[int, int]:
    """(vtable position, vtable length) of the table at `t`, bounds-checked."""
    if t + 4 > n:
        raise DecodeError("table out of bounds")
    vt = t - _I32(buf, t)[0]
    if vt < 0 or vt + 4 > n:
        raise DecodeError("vtable out of bounds")
    vtlen, tlen = _HH(buf, vt)
    if vtlen < 4 or vtlen & 1 or vt + vtlen > n or t + tlen > n:
        raise DecodeError("vtable out of bounds")
    return vt, vtlen


def _root(buf: Buf, n: int) -> Tuple[int, int, int]:
    if n < 4:
        raise DecodeError("payload shorter than a root offset")
    t = _U32(buf, 0)[0]
    vt, vtlen = _table(buf, t, n)
    return t, vt, vtlen


def _field(buf: Buf, t: int, vt: int, vtlen: int, slot: int) -> int:
    """Absolute position of the field at vtable `slot` (4 + 2 * index), 0 when absent."""
    if slot >= vtlen:
        return 0
    off: int = _U16(buf, vt + slot)[0]
    return t + off if off else 0


def _vector(buf: Buf, p: int, n: int, elem: int) -> Tuple[int, int]:
    """(start, count) of the vector referenced at `p`."""
    v = p + _U32(buf, p)[0]
    if v + 4 > n:
        raise DecodeError("vector out of bounds")
    count: int = _U32(buf, v)[0]
    if v + 4 + count * elem > n:
        raise DecodeError("vector out of bounds")
    return v + 4, count


def _bytes(buf: Buf, p: int, n: int) -> bytes:
    start, count = _vector(buf, p, n, 1)
    return bytes(buf[start : start + count])


def _entries(buf: Buf, p: int, n: int) -> List[Entry]:
    """A [TextEntry] vector as (name, value-or-None) text entries (the hot path: inlined)."""
    if not p:
        return []
    u32 = _U32
    v = p + u32(buf, p)[0]
    count: int = u32(buf, v)[0]
    start = v + 4
    if start + 4 * count > n:
        raise DecodeError("vector out of bounds")
    out: List[Entry] = []
    append = out.append
    for e in range(start, start + 4 * count, 4):
        t = e + u32(buf, e)[0]
        vt = t - _I32(buf, t)[0]
        if vt < 0:
            raise DecodeError("vtable out of bounds")
        _, _, o_name, o_value = _VT2(buf, vt) if _U16(buf, vt)[0] >= 8 else _vt_short(buf, vt)
        name = ""
        value: Optional[str] = None
        if o_name:
            s = t + o_name
            s += u32(buf, s)[0]
            ln = u32(buf, s)[0]
            s += 4
            if s + ln > n:
                raise DecodeError("string out of bounds")
            name = buf[s : s + ln].decode(_ENC, _ERR)
        if o_value:
            s = t + o_value
            s += u32(buf, s)[0]
            ln = u32(buf, s)[0]
            s += 4
            if s + ln > n:
                raise DecodeError("string out of bounds")
            value = buf[s : s + ln].decode(_ENC, _ERR)
        append((name, value))
    return out


def _vt_short(buf: Buf, vt: int) -> Tuple[int, int, int, int]:
    """A TextEntry vtable shorter than both fields: the absent ones read as 0."""
    vtlen: int = _U16(buf, vt)[0]
    if vtlen < 4:
        raise DecodeError("vtable too short")
    o_name: int = _U16(buf, vt + 4)[0] if vtlen >= 6 else 0
    return vtlen, 0, o_name, 0


def _raw_entries(buf: Buf, p: int, n: int) -> List[Tuple[bytes, Optional[bytes]]]:
    if not p:
        return []
    start, count = _vector(buf, p, n, 4)
    out: List[Tuple[bytes, Optional[bytes]]] = []
    for e in range(start, start + 4 * count, 4):
        t = e + _U32(buf, e)[0]
        vt, vtlen = _table(buf, t, n)
        pn = _field(buf, t, vt, vtlen, 4)
        pv = _field(buf, t, vt, vtlen, 6)
        out.append((_bytes(buf, pn, n) if pn else b"", _bytes(buf, pv, n) if pv else None))
    return out


def decode_prepare(buf: Buf) -> Tuple[List[Tuple[bytes, Optional[bytes]]], bytes]:
    """PrepareConf.Req -> (conf entries as bytes, key)."""
    try:
        n = len(buf)
        t, vt, vtlen = _root(buf, n)
        conf = _raw_entries(buf, _field(buf, t, vt, vtlen, 4), n)
        pk = _field(buf, t, vt, vtlen, 6)
        return conf, _bytes(buf, pk, n) if pk else b""
    except struct.error as e:
        raise DecodeError(str(e)) from None


class RequestFields:
    """The fields of an HTTPReqCall.Req; args and headers are decoded on demand."""

    __slots__ = ("args_at", "buf", "headers_at", "id", "method", "n", "path", "src_ip", "token")

    def __init__(self, buf: Buf) -> None:
        try:
            n = len(buf)
            t, vt, vtlen = _root(buf, n)
            self.buf = buf
            self.n = n
            if vtlen >= 18:  # every field has a slot: read the seven offsets at once
                o_id, o_ip, o_method, o_path, o_args, o_headers, o_token = _REQ_SLOTS(buf, vt + 4)
            else:
                o_id, o_ip, o_method, o_path, o_args, o_headers, o_token = (
                    _U16(buf, vt + slot)[0] if slot < vtlen else 0
                    for slot in (4, 6, 8, 10, 12, 14, 16)
                )
            self.id: int = _U32(buf, t + o_id)[0] if o_id else 0
            self.src_ip = _bytes(buf, t + o_ip, n) if o_ip else b""
            self.method: int = buf[t + o_method] if o_method else 0
            if o_path:
                s, ln = _vector(buf, t + o_path, n, 1)
                self.path = buf[s : s + ln].decode(_ENC, _ERR)
            else:
                self.path = ""
            self.args_at = t + o_args if o_args else 0
            self.headers_at = t + o_headers if o_headers else 0
            self.token: int = _U32(buf, t + o_token)[0] if o_token else 0
        except (struct.error, IndexError) as e:
            raise DecodeError(str(e)) from None

    def args(self) -> List[Entry]:
        try:
            return _entries(self.buf, self.args_at, self.n)
        except (struct.error, IndexError) as e:
            raise DecodeError(str(e)) from None

    def headers(self) -> List[Entry]:
        try:
            return _entries(self.buf, self.headers_at, self.n)
        except (struct.error, IndexError) as e:
            raise DecodeError(str(e)) from None


class ResponseFields:
    """The fields of an HTTPRespCall.Req; headers are decoded on demand."""

    __slots__ = ("buf", "headers_at", "id", "n", "status", "token")

    def __init__(self, buf: Buf) -> None:
        try:
            n = len(buf)
            t, vt, vtlen = _root(buf, n)
            self.buf = buf
            self.n = n
            p = _field(buf, t, vt, vtlen, 4)
            self.id: int = _U32(buf, p)[0] if p else 0
            p = _field(buf, t, vt, vtlen, 6)
            self.status: int = _U16(buf, p)[0] if p else 0
            self.headers_at = _field(buf, t, vt, vtlen, 8)
            p = _field(buf, t, vt, vtlen, 10)
            self.token: int = _U32(buf, p)[0] if p else 0
        except (struct.error, IndexError) as e:
            raise DecodeError(str(e)) from None

    def headers(self) -> List[Entry]:
        try:
            return _entries(self.buf, self.headers_at, self.n)
        except (struct.error, IndexError) as e:
            raise DecodeError(str(e)) from None


def decode_extra_answer(buf: Buf) -> Optional[bytes]:
    """ExtraInfo.Resp -> result (``None`` when absent)."""
    try:
        n = len(buf)
        t, vt, vtlen = _root(buf, n)
        p = _field(buf, t, vt, vtlen, 4)
        return _bytes(buf, p, n) if p else None
    except struct.error as e:
        raise DecodeError(str(e)) from None


# ---------------------------------------------------------------------------------------------
# Writing
#
# Messages are laid out front to back by hand: each table's vtable just before it, children after
# their parent (offsets point forward), every table, vector and string 4-aligned, strings
# NUL-terminated, absent fields (empty vectors, zero scalars) left out of the vtable. A list of
# TextEntry tables shares two vtables (with and without value). Every blob below is
# position-independent (all offsets are relative), so parts are built separately and joined.
# This is several times faster than flatbuffers.Builder, which the tests use as the reference
# (the bytes differ, the decoded messages are the same; the gateway verifies what it reads).

_PAD_STR = (b"\0\0\0\0", b"\0\0\0", b"\0\0", b"\0")  # NUL + padding after a string of len % 4
_PAD_VEC = (b"", b"\0\0\0", b"\0\0", b"\0")
_P_U32 = struct.Struct("<I").pack
_P_ENTRY_V = struct.Struct("<iII").pack
_P_ENTRY_NV = struct.Struct("<iI").pack
# Entry vtables: (vtable size 8, table size 12, name at 4, value at 8) and without value.
_ENTRY_VTABLES = struct.pack("<4H4H", 8, 12, 4, 8, 8, 8, 4, 0)

_P_REQ_REPLY = struct.Struct("<I5H2xiIIB3x").pack
_P_STOP = struct.Struct("<5H2xiIIH2x").pack
_P_REWRITE = struct.Struct("<7H2xiIIIII").pack
_P_RESP_REPLY = struct.Struct("<I6HiIIIH2x").pack
_P_SMALL = struct.Struct("<I3H2xiI").pack  # one 4-byte field: conf token, id
_P_ERROR = struct.Struct("<I3H2xiB3x").pack
_P_EXTRA = struct.Struct("<I4HiIB3x").pack
_P_VAR = struct.Struct("<3H2xiI").pack


def _string(data: bytes) -> bytes:
    return _P_U32(len(data)) + data + _PAD_STR[len(data) & 3]


def _byte_vector(data: bytes) -> bytes:
    return _P_U32(len(data)) + data + _PAD_VEC[len(data) & 3]


def _entry_vector(entries: Sequence[RawEntry]) -> bytes:
    """A [TextEntry] vector, self-contained: count, offsets, the two vtables, the entries."""
    n = len(entries)
    vt = 4 + 4 * n  # the vtable with value; the one without follows at vt + 8
    pos = vt + 16
    offsets = []
    parts = []
    for i, (name, value) in enumerate(entries):
        offsets.append(pos - 4 - 4 * i)
        ln = len(name)
        sn = 4 + ((ln + 4) & ~3)
        if value is None:
            parts.append(_P_ENTRY_NV(pos - vt - 8, 4))
            parts.append(_P_U32(ln) + name + _PAD_STR[ln & 3])
            pos += 8 + sn
        else:
            lv = len(value)
            parts.append(_P_ENTRY_V(pos - vt, 8, 4 + sn))
            parts.append(_P_U32(ln) + name + _PAD_STR[ln & 3])
            parts.append(_P_U32(lv) + value + _PAD_STR[lv & 3])
            pos += 12 + sn + 4 + ((lv + 4) & ~3)
    return struct.pack(f"<I{n}I", n, *offsets) + _ENTRY_VTABLES + b"".join(parts)


def _frame(ty: int, parts: List[bytes]) -> bytes:
    size = sum(map(len, parts))
    if size > MAX_PAYLOAD:
        raise ValueError(f"message of {size} bytes does not fit in a frame")
    parts.insert(0, bytes((ty, size >> 16, (size >> 8) & 0xFF, size & 0xFF)))
    return b"".join(parts)


def frame(ty: int, payload: bytes) -> bytes:
    """A frame around an already-built payload."""
    return _frame(ty, [payload])


def _small(ty: int, value: int) -> bytes:
    # root -> table at 12; vtable (6 bytes: size 6, table size 8, field at 4) + 2 padding.
    return _frame(ty, [_P_SMALL(12, 6, 8, 4 if value else 0, 8, value)])


def encode_error(code: int) -> bytes:
    return _frame(T_ERROR, [_P_ERROR(12, 6, 8, 4, 8, code)])


def encode_conf_token(token: int) -> bytes:
    return _small(T_PREPARE, token)


def _stop_blob(action: Stop) -> List[bytes]:
    headers = _entry_vector(action.headers) if action.headers else b""
    body = _byte_vector(action.body) if action.body else b""
    table = _P_STOP(
        10,
        16,
        12 if action.status else 0,
        4 if headers else 0,
        8 if body else 0,
        12,
        28 - 16 if headers else 0,
        28 + len(headers) - 20 if body else 0,
        action.status,
    )
    return [table, headers, body]


def _rewrite_blob(action: Rewrite) -> List[bytes]:
    path = _string(action.path) if action.path is not None else b""
    headers = _entry_vector(action.headers) if action.headers else b""
    args = _entry_vector(action.args) if action.args else b""
    resp = _entry_vector(action.resp_headers) if action.resp_headers else b""
    body = _byte_vector(action.body) if action.body else b""
    at = 40
    p_path = at
    at += len(path)
    p_headers = at
    at += len(headers)
    p_args = at
    at += len(args)
    p_resp = at
    at += len(resp)
    p_body = at
    table = _P_REWRITE(
        14,
        24,
        4 if path else 0,
        8 if headers else 0,
        12 if args else 0,
        16 if resp else 0,
        20 if body else 0,
        16,
        p_path - 20 if path else 0,
        p_headers - 24 if headers else 0,
        p_args - 28 if args else 0,
        p_resp - 32 if resp else 0,
        p_body - 36 if body else 0,
    )
    return [table, path, headers, args, resp, body]


def encode_request_reply(id: int, action: Union[Stop, Rewrite, None]) -> bytes:
    """HTTPReqCall.Resp for `action` (``None``: continue unchanged)."""
    if action is None:
        return _small(T_REQUEST, id)
    # The action's blob starts at 32 with its vtable; the offset (stored at 24) is to its table.
    if isinstance(action, Stop):
        parts, kind, at = _stop_blob(action), 1, 32 + 12
    else:
        parts, kind, at = _rewrite_blob(action), 2, 32 + 16
    # root -> table at 16; vtable: size 10, table size 16, id at 4, type at 12, action at 8.
    parts.insert(0, _P_REQ_REPLY(16, 10, 16, 4 if id else 0, 12, 8, 12, id, at - 24, kind))
    return _frame(T_REQUEST, parts)


# The empty ReqBody / RespBody table at 28, its vtable (size 4, table size 4) at 24.
_EMPTY_TABLE = struct.pack("<2Hi", 4, 4, 4)
_Q_REQ_BODY = _frame(T_EXTRA, [_P_EXTRA(12, 8, 12, 8, 4, 8, 12, 2), _EMPTY_TABLE])
_Q_RESP_BODY = _frame(T_EXTRA, [_P_EXTRA(12, 8, 12, 8, 4, 8, 12, 3), _EMPTY_TABLE])


def encode_extra_question(kind: int, name: Optional[bytes]) -> bytes:
    """ExtraInfo.Req: Var(name) (kind 1), ReqBody (2) or RespBody (3)."""
    if kind == 2:
        return _Q_REQ_BODY
    if kind == 3:
        return _Q_RESP_BODY
    # root -> table at 12 (vtable: size 8, table size 12, type at 8, info at 4); the Var table
    # at 32 (its vtable at 24), its name string at 40.
    return _frame(
        T_EXTRA,
        [_P_EXTRA(12, 8, 12, 8, 4, 8, 16, 1), _P_VAR(6, 8, 4, 8, 4), _string(name or b"")],
    )


def encode_response_reply(id: int, reply: Optional[ResponseReply]) -> bytes:
    """HTTPRespCall.Resp (``None``: keep the upstream's response)."""
    if reply is None:
        return _small(T_RESPONSE, id)
    headers = _entry_vector(reply.headers) if reply.headers else b""
    body = _byte_vector(reply.body) if reply.body else b""
    # root -> table at 16; vtable: size 12, table size 20, id 4, status 16, headers 8, body 12.
    table = _P_RESP_REPLY(
        16,
        12,
        20,
        4 if id else 0,
        16 if reply.status else 0,
        8 if headers else 0,
        12 if body else 0,
        12,
        id,
        36 - 24 if headers else 0,
        36 + len(headers) - 28 if body else 0,
        reply.status,
    )
    return _frame(T_RESPONSE, [table, headers, body])
