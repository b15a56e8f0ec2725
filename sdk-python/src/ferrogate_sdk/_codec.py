"""The wire format: frames and the A6 FlatBuffers messages (schema runner-protocol/schema).

Readers are hand-written over `struct` (one bounds-checked pass, strings read as bytes and decoded
without loss); a malformed payload raises `DecodeError`, never anything worse. Writers use the
flatbuffers runtime's Builder in the construction order of the Rust encoder, so that our bytes
equal the golden vectors where they pin exact bytes.
"""

from __future__ import annotations

import struct
from typing import List, Optional, Sequence, Tuple, Union

import flatbuffers

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
_ENC = "utf-8"
_ERR = "surrogateescape"

Buf = Union[bytes, bytearray, memoryview]
Frame = Union[bytes, memoryview]


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
    """A [TextEntry] vector as (name, value-or-None) text entries."""
    if not p:
        return []
    start, count = _vector(buf, p, n, 4)
    out: List[Entry] = []
    append = out.append
    for e in range(start, start + 4 * count, 4):
        t = e + _U32(buf, e)[0]
        vt, vtlen = _table(buf, t, n)
        name = ""
        value: Optional[str] = None
        if vtlen > 4:
            off = _U16(buf, vt + 4)[0]
            if off:
                s, ln = _vector(buf, t + off, n, 1)
                name = str(buf[s : s + ln], _ENC, _ERR)
            if vtlen > 6:
                off = _U16(buf, vt + 6)[0]
                if off:
                    s, ln = _vector(buf, t + off, n, 1)
                    value = str(buf[s : s + ln], _ENC, _ERR)
        append((name, value))
    return out


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
            p = _field(buf, t, vt, vtlen, 4)
            self.id: int = _U32(buf, p)[0] if p else 0
            p = _field(buf, t, vt, vtlen, 6)
            self.src_ip = _bytes(buf, p, n) if p else b""
            p = _field(buf, t, vt, vtlen, 8)
            self.method: int = buf[p] if p else 0
            p = _field(buf, t, vt, vtlen, 10)
            if p:
                s, ln = _vector(buf, p, n, 1)
                self.path = str(buf[s : s + ln], _ENC, _ERR)
            else:
                self.path = ""
            self.args_at = _field(buf, t, vt, vtlen, 12)
            self.headers_at = _field(buf, t, vt, vtlen, 14)
            p = _field(buf, t, vt, vtlen, 16)
            self.token: int = _U32(buf, p)[0] if p else 0
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


def _finish(b: flatbuffers.Builder, root: int, ty: int) -> Frame:
    """Finish `b` and return the whole frame; the 4-byte header goes into the builder's free
    space in front of the payload, so the frame is one buffer without a copy."""
    b.Finish(root)
    head: int = b.Head()
    data: bytearray = b.Bytes
    size = len(data) - head
    if size > MAX_PAYLOAD:
        raise ValueError(f"message of {size} bytes does not fit in a frame")
    header = bytes((ty, size >> 16, (size >> 8) & 0xFF, size & 0xFF))
    if head >= 4:
        data[head - 4 : head] = header
        return memoryview(data)[head - 4 :]
    return header + bytes(data[head:])


def frame(ty: int, payload: bytes) -> bytes:
    """A frame around an already-built payload."""
    size = len(payload)
    if size > MAX_PAYLOAD:
        raise ValueError(f"message of {size} bytes does not fit in a frame")
    return bytes((ty, size >> 16, (size >> 8) & 0xFF, size & 0xFF)) + payload


def _entries_vec(b: flatbuffers.Builder, entries: Sequence[RawEntry]) -> int:
    offsets = []
    for name, value in entries:
        n_off = b.CreateString(name)
        if value is None:
            b.StartObject(2)
            b.PrependUOffsetTRelativeSlot(0, n_off, 0)
        else:
            v_off = b.CreateString(value)
            b.StartObject(2)
            b.PrependUOffsetTRelativeSlot(1, v_off, 0)
            b.PrependUOffsetTRelativeSlot(0, n_off, 0)
        offsets.append(b.EndObject())
    b.StartVector(4, len(offsets), 4)
    for off in reversed(offsets):
        b.PrependUOffsetTRelative(off)
    end: int = b.EndVector()
    return end


def _size(entries: Sequence[RawEntry]) -> int:
    return sum(len(n) + len(v or b"") + 24 for n, v in entries)


def encode_error(code: int) -> Frame:
    b = flatbuffers.Builder(32)
    b.StartObject(1)
    b.PrependUint8Slot(0, code, 0)
    return _finish(b, b.EndObject(), T_ERROR)


def encode_conf_token(token: int) -> Frame:
    b = flatbuffers.Builder(32)
    b.StartObject(1)
    b.PrependUint32Slot(0, token, 0)
    return _finish(b, b.EndObject(), T_PREPARE)


def encode_request_reply(id: int, action: Union[Stop, Rewrite, None]) -> Frame:
    """HTTPReqCall.Resp for `action` (``None``: continue unchanged)."""
    if action is None:
        b = flatbuffers.Builder(32)
        b.StartObject(3)
        b.PrependUint32Slot(0, id, 0)
        return _finish(b, b.EndObject(), T_REQUEST)
    if isinstance(action, Stop):
        b = flatbuffers.Builder(64 + len(action.body) + _size(action.headers))
        headers = _entries_vec(b, action.headers) if action.headers else 0
        body = b.CreateByteVector(action.body) if action.body else 0
        b.StartObject(3)
        if body:
            b.PrependUOffsetTRelativeSlot(2, body, 0)
        if headers:
            b.PrependUOffsetTRelativeSlot(1, headers, 0)
        b.PrependUint16Slot(0, action.status, 0)
        kind = 1
    else:
        size = 96 + len(action.body) + len(action.path or b"")
        size += _size(action.headers) + _size(action.args) + _size(action.resp_headers)
        b = flatbuffers.Builder(size)
        path = b.CreateString(action.path) if action.path is not None else 0
        headers = _entries_vec(b, action.headers) if action.headers else 0
        args = _entries_vec(b, action.args) if action.args else 0
        resp_headers = _entries_vec(b, action.resp_headers) if action.resp_headers else 0
        body = b.CreateByteVector(action.body) if action.body else 0
        b.StartObject(5)
        if body:
            b.PrependUOffsetTRelativeSlot(4, body, 0)
        if resp_headers:
            b.PrependUOffsetTRelativeSlot(3, resp_headers, 0)
        if args:
            b.PrependUOffsetTRelativeSlot(2, args, 0)
        if headers:
            b.PrependUOffsetTRelativeSlot(1, headers, 0)
        if action.path is not None:
            b.PrependUOffsetTRelativeSlot(0, path, 0)
        kind = 2
    table = b.EndObject()
    b.StartObject(3)
    b.PrependUOffsetTRelativeSlot(2, table, 0)
    b.PrependUint32Slot(0, id, 0)
    b.PrependUint8Slot(1, kind, 0)
    return _finish(b, b.EndObject(), T_REQUEST)


def encode_extra_question(kind: int, name: Optional[bytes]) -> Frame:
    """ExtraInfo.Req: Var(name) (kind 1), ReqBody (2) or RespBody (3)."""
    b = flatbuffers.Builder(64 + len(name or b""))
    if kind == 1:
        s = b.CreateString(name or b"")
        b.StartObject(1)
        b.PrependUOffsetTRelativeSlot(0, s, 0)
    else:
        b.StartObject(0)
    info = b.EndObject()
    b.StartObject(2)
    b.PrependUOffsetTRelativeSlot(1, info, 0)
    b.PrependUint8Slot(0, kind, 0)
    return _finish(b, b.EndObject(), T_EXTRA)


def encode_response_reply(id: int, reply: Optional[ResponseReply]) -> Frame:
    """HTTPRespCall.Resp (``None``: keep the upstream's response)."""
    if reply is None:
        b = flatbuffers.Builder(32)
        b.StartObject(4)
        b.PrependUint32Slot(0, id, 0)
        return _finish(b, b.EndObject(), T_RESPONSE)
    b = flatbuffers.Builder(64 + len(reply.body) + _size(reply.headers))
    headers = _entries_vec(b, reply.headers) if reply.headers else 0
    body = b.CreateByteVector(reply.body) if reply.body else 0
    b.StartObject(4)
    if body:
        b.PrependUOffsetTRelativeSlot(3, body, 0)
    if headers:
        b.PrependUOffsetTRelativeSlot(2, headers, 0)
    b.PrependUint32Slot(0, id, 0)
    b.PrependUint16Slot(1, reply.status, 0)
    return _finish(b, b.EndObject(), T_RESPONSE)
