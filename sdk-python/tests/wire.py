"""Test-side model of the wire: decode and encode A6 messages with the generated bindings
(ferrogate_sdk._a6), independently of the SDK's own codec. Shared by the golden-vector tests and
the end-to-end tests of the socket runner."""

import json
from pathlib import Path

import flatbuffers

from ferrogate_sdk._a6.A6 import TextEntry as TextEntryMod
from ferrogate_sdk._a6.A6.Err import Resp as ErrResp
from ferrogate_sdk._a6.A6.Err.Code import Code
from ferrogate_sdk._a6.A6.ExtraInfo import Req as ExtraInfoReq
from ferrogate_sdk._a6.A6.ExtraInfo import ReqBody as ReqBodyMod
from ferrogate_sdk._a6.A6.ExtraInfo import Resp as ExtraInfoResp
from ferrogate_sdk._a6.A6.ExtraInfo import RespBody as RespBodyMod
from ferrogate_sdk._a6.A6.ExtraInfo import Var as VarMod
from ferrogate_sdk._a6.A6.ExtraInfo.Info import Info
from ferrogate_sdk._a6.A6.HTTPReqCall import Req as HTTPReqCallReq
from ferrogate_sdk._a6.A6.HTTPReqCall import Resp as HTTPReqCallResp
from ferrogate_sdk._a6.A6.HTTPReqCall import Rewrite as RewriteMod
from ferrogate_sdk._a6.A6.HTTPReqCall import Stop as StopMod
from ferrogate_sdk._a6.A6.HTTPReqCall.Action import Action
from ferrogate_sdk._a6.A6.HTTPRespCall import Req as HTTPRespCallReq
from ferrogate_sdk._a6.A6.HTTPRespCall import Resp as HTTPRespCallResp
from ferrogate_sdk._a6.A6.Method import Method
from ferrogate_sdk._a6.A6.PrepareConf import Req as PrepareConfReq
from ferrogate_sdk._a6.A6.PrepareConf import Resp as PrepareConfResp

VECTORS = Path(__file__).resolve().parents[2] / "runner-protocol" / "vectors"
MANIFEST = json.loads((VECTORS / "manifest.json").read_text(encoding="utf-8"))
ENTRIES = {v["name"]: v for v in MANIFEST["vectors"]}

# (direction, type byte) -> message kind, as tagged in the manifest.
KINDS = {
    ("to_runner", 1): "PrepareConf",
    ("to_runner", 2): "HttpRequest",
    ("to_runner", 3): "ExtraInfoAnswer",
    ("to_runner", 4): "HttpResponse",
    ("to_gateway", 0): "Error",
    ("to_gateway", 1): "ConfToken",
    ("to_gateway", 2): "HttpRequestReply",
    ("to_gateway", 3): "ExtraInfo",
    ("to_gateway", 4): "HttpResponseReply",
}

METHODS = sorted(
    ((v, k) for k, v in vars(Method).items() if not k.startswith("_")), key=lambda p: p[0]
)
METHOD_NAMES = [name for _, name in METHODS]
assert [v for v, _ in METHODS] == list(range(15)), "Method must be 0..14"

CODES = {
    Code.BAD_REQUEST: "BadRequest",
    Code.SERVICE_UNAVAILABLE: "ServiceUnavailable",
    Code.CONF_TOKEN_NOT_FOUND: "ConfTokenNotFound",
}
CODE_VALUES = {name: value for value, name in CODES.items()}


# ---------------------------------------------------------------------------------------------
# Manifest -> plain Python values (bytes for byte strings)


MAX_PAYLOAD = 0xFFFFFF


def jbytes(value):
    """A manifest byte string: a JSON string (UTF-8), {"hex": "..."}, or {"hex": "61", "repeat": n}
    (the hex bytes repeated n times, written for runs of at least 1024 copies of one byte)."""
    if isinstance(value, str):
        return value.encode("utf-8")
    assert isinstance(value, dict) and set(value) in ({"hex"}, {"hex", "repeat"}), value
    pattern = bytes.fromhex(value["hex"])
    if "repeat" not in value:
        return pattern
    n = value["repeat"]
    assert isinstance(n, int) and n >= 0 and len(pattern) * n <= MAX_PAYLOAD, value
    return pattern * n


def jbytes_opt(value):
    return None if value is None else jbytes(value)


def jentries(items):
    return [{"name": jbytes(e["name"]), "value": jbytes_opt(e.get("value"))} for e in items]


def split_tag(message):
    """An externally tagged value: {"Kind": body} or a bare "Kind" (unit variant)."""
    if isinstance(message, str):
        return message, None
    assert isinstance(message, dict) and len(message) == 1, message
    ((kind, body),) = message.items()
    return kind, body


def from_manifest(message):
    kind, b = split_tag(message)
    if kind == "PrepareConf":
        body = {"conf": jentries(b["conf"]), "key": jbytes(b["key"])}
    elif kind == "HttpRequest":
        assert b["method"] in METHOD_NAMES, b["method"]
        body = {
            "id": b["id"],
            "src_ip": jbytes(b["src_ip"]),
            "method": b["method"],
            "path": jbytes(b["path"]),
            "args": jentries(b["args"]),
            "headers": jentries(b["headers"]),
            "conf_token": b["conf_token"],
        }
    elif kind == "ExtraInfoAnswer":
        body = jbytes_opt(b)
    elif kind == "HttpResponse":
        body = {
            "id": b["id"],
            "status": b["status"],
            "headers": jentries(b["headers"]),
            "conf_token": b["conf_token"],
        }
    elif kind == "Error":
        assert b in CODE_VALUES, b
        body = b
    elif kind == "ConfToken":
        body = b
    elif kind == "HttpRequestReply":
        action = None
        if b["action"] is not None:
            akind, a = split_tag(b["action"])
            if akind == "Stop":
                action = {
                    "Stop": {
                        "status": a["status"],
                        "headers": jentries(a["headers"]),
                        "body": jbytes(a["body"]),
                    }
                }
            elif akind == "Rewrite":
                action = {
                    "Rewrite": {
                        "path": jbytes_opt(a.get("path")),
                        "headers": jentries(a["headers"]),
                        "args": jentries(a["args"]),
                        "resp_headers": jentries(a["resp_headers"]),
                        "body": jbytes(a["body"]),
                    }
                }
            else:
                raise AssertionError(f"unknown action {akind}")
        body = {"id": b["id"], "action": action}
    elif kind == "ExtraInfo":
        ikind, i = split_tag(b)
        if ikind == "Var":
            body = {"Var": jbytes(i)}
        else:
            assert ikind in ("ReqBody", "RespBody") and i is None, b
            body = ikind
    elif kind == "HttpResponseReply":
        body = {
            "id": b["id"],
            "status": b["status"],
            "headers": jentries(b["headers"]),
            "body": jbytes(b["body"]),
        }
    else:
        raise AssertionError(f"unknown message kind {kind}")
    return {kind: body}


# ---------------------------------------------------------------------------------------------
# Payload -> plain Python values, with the generated readers


def ubytes(table, slot, is_none, length):
    """A [ubyte] field; None when absent. Presence and length come from the generated accessors,
    the bytes in one slice of the buffer at the field's vtable `slot` (4 + 2 * its index): the
    generated per-element accessor would take seconds on the 16 MiB vector."""
    if is_none():
        return None
    tab = table._tab
    o = tab.Offset(slot)
    assert o != 0, f"slot {slot} is not the field"
    start, n = tab.Vector(o), tab.VectorLen(o)
    assert n == length(), f"slot {slot} is not the field"
    return bytes(tab.Bytes[start : start + n])


def or_empty(value):
    return b"" if value is None else value


def read_entries(length, get):
    out = []
    for j in range(length()):
        e = get(j)
        out.append({"name": or_empty(e.Name()), "value": e.Value()})
    return out


def union_table(cls, tab):
    assert tab is not None, f"union value of type {cls.__name__} is absent"
    obj = cls()
    obj.Init(tab.Bytes, tab.Pos)
    return obj


def decode(direction, ty, payload):
    buf = bytearray(payload)
    kind = KINDS[(direction, ty)]
    if kind == "PrepareConf":
        m = PrepareConfReq.Req.GetRootAs(buf, 0)
        body = {"conf": read_entries(m.ConfLength, m.Conf), "key": or_empty(m.Key())}
    elif kind == "HttpRequest":
        m = HTTPReqCallReq.Req.GetRootAs(buf, 0)
        body = {
            "id": m.Id(),
            "src_ip": or_empty(ubytes(m, 6, m.SrcIpIsNone, m.SrcIpLength)),
            "method": METHOD_NAMES[m.Method()],
            "path": or_empty(m.Path()),
            "args": read_entries(m.ArgsLength, m.Args),
            "headers": read_entries(m.HeadersLength, m.Headers),
            "conf_token": m.ConfToken(),
        }
    elif kind == "ExtraInfoAnswer":
        m = ExtraInfoResp.Resp.GetRootAs(buf, 0)
        body = ubytes(m, 4, m.ResultIsNone, m.ResultLength)
    elif kind == "HttpResponse":
        m = HTTPRespCallReq.Req.GetRootAs(buf, 0)
        body = {
            "id": m.Id(),
            "status": m.Status(),
            "headers": read_entries(m.HeadersLength, m.Headers),
            "conf_token": m.ConfToken(),
        }
    elif kind == "Error":
        m = ErrResp.Resp.GetRootAs(buf, 0)
        body = CODES[m.Code()]
    elif kind == "ConfToken":
        m = PrepareConfResp.Resp.GetRootAs(buf, 0)
        body = m.ConfToken()
    elif kind == "HttpRequestReply":
        m = HTTPReqCallResp.Resp.GetRootAs(buf, 0)
        at = m.ActionType()
        if at == Action.NONE:
            assert m.Action() is None, "action value without a type"
            action = None
        elif at == Action.Stop:
            s = union_table(StopMod.Stop, m.Action())
            action = {
                "Stop": {
                    "status": s.Status(),
                    "headers": read_entries(s.HeadersLength, s.Headers),
                    "body": or_empty(ubytes(s, 8, s.BodyIsNone, s.BodyLength)),
                }
            }
        elif at == Action.Rewrite:
            r = union_table(RewriteMod.Rewrite, m.Action())
            action = {
                "Rewrite": {
                    "path": r.Path(),
                    "headers": read_entries(r.HeadersLength, r.Headers),
                    "args": read_entries(r.ArgsLength, r.Args),
                    "resp_headers": read_entries(r.RespHeadersLength, r.RespHeaders),
                    "body": or_empty(ubytes(r, 12, r.BodyIsNone, r.BodyLength)),
                }
            }
        else:
            raise AssertionError(f"unknown action type {at}")
        body = {"id": m.Id(), "action": action}
    elif kind == "ExtraInfo":
        m = ExtraInfoReq.Req.GetRootAs(buf, 0)
        it = m.InfoType()
        if it == Info.Var:
            body = {"Var": or_empty(union_table(VarMod.Var, m.Info()).Name())}
        elif it == Info.ReqBody:
            union_table(ReqBodyMod.ReqBody, m.Info())
            body = "ReqBody"
        elif it == Info.RespBody:
            union_table(RespBodyMod.RespBody, m.Info())
            body = "RespBody"
        else:
            raise AssertionError(f"unknown info type {it}")
    elif kind == "HttpResponseReply":
        m = HTTPRespCallResp.Resp.GetRootAs(buf, 0)
        body = {
            "id": m.Id(),
            "status": m.Status(),
            "headers": read_entries(m.HeadersLength, m.Headers),
            "body": or_empty(ubytes(m, 10, m.BodyIsNone, m.BodyLength)),
        }
    else:
        raise AssertionError(kind)
    return {kind: body}


# ---------------------------------------------------------------------------------------------
# Plain Python values -> payload, with the generated builders.
#
# The construction order mirrors the Rust encoder (runner-protocol/src/message.rs) so that the
# bytes can match: per table, child objects are created in field order (for a TextEntry list:
# each entry's name, value, then the entry table; then the vector of offsets); empty vectors and
# strings (except a TextEntry value, a Rewrite path and an ExtraInfo result that are present but
# empty) are omitted; fields are added in the order of the generated Rust `create` (scalars and
# offsets by size, largest first, and in reverse field order within a size); default scalars are
# skipped by the Prepend*Slot helpers; `Finish` writes no size prefix and no identifier.


def w_string(b, data):
    return b.CreateString(data)


def w_string_opt(b, data):
    return w_string(b, data) if data else None


def w_bytes_opt(b, data):
    return b.CreateByteVector(data) if data else None


def w_entries(b, entries):
    if not entries:
        return None
    offsets = []
    for e in entries:
        name = w_string(b, e["name"])
        value = None if e["value"] is None else w_string(b, e["value"])
        TextEntryMod.Start(b)
        if value is not None:
            TextEntryMod.AddValue(b, value)
        TextEntryMod.AddName(b, name)
        offsets.append(TextEntryMod.End(b))
    b.StartVector(4, len(offsets), 4)
    for off in reversed(offsets):
        b.PrependUOffsetTRelative(off)
    return b.EndVector()


def add_opt(add, b, off):
    if off is not None:
        add(b, off)


def encode(message):
    b = flatbuffers.Builder(256)
    ((kind, m),) = message.items()
    if kind == "PrepareConf":
        conf = w_entries(b, m["conf"])
        key = w_string_opt(b, m["key"])
        PrepareConfReq.Start(b)
        add_opt(PrepareConfReq.AddKey, b, key)
        add_opt(PrepareConfReq.AddConf, b, conf)
        root = PrepareConfReq.End(b)
    elif kind == "HttpRequest":
        src_ip = w_bytes_opt(b, m["src_ip"])
        path = w_string_opt(b, m["path"])
        args = w_entries(b, m["args"])
        headers = w_entries(b, m["headers"])
        HTTPReqCallReq.Start(b)
        HTTPReqCallReq.AddConfToken(b, m["conf_token"])
        add_opt(HTTPReqCallReq.AddHeaders, b, headers)
        add_opt(HTTPReqCallReq.AddArgs, b, args)
        add_opt(HTTPReqCallReq.AddPath, b, path)
        add_opt(HTTPReqCallReq.AddSrcIp, b, src_ip)
        HTTPReqCallReq.AddId(b, m["id"])
        HTTPReqCallReq.AddMethod(b, METHOD_NAMES.index(m["method"]))
        root = HTTPReqCallReq.End(b)
    elif kind == "ExtraInfoAnswer":
        result = None if m is None else b.CreateByteVector(m)
        ExtraInfoResp.Start(b)
        add_opt(ExtraInfoResp.AddResult, b, result)
        root = ExtraInfoResp.End(b)
    elif kind == "HttpResponse":
        headers = w_entries(b, m["headers"])
        HTTPRespCallReq.Start(b)
        HTTPRespCallReq.AddConfToken(b, m["conf_token"])
        add_opt(HTTPRespCallReq.AddHeaders, b, headers)
        HTTPRespCallReq.AddId(b, m["id"])
        HTTPRespCallReq.AddStatus(b, m["status"])
        root = HTTPRespCallReq.End(b)
    elif kind == "Error":
        ErrResp.Start(b)
        ErrResp.AddCode(b, CODE_VALUES[m])
        root = ErrResp.End(b)
    elif kind == "ConfToken":
        PrepareConfResp.Start(b)
        PrepareConfResp.AddConfToken(b, m)
        root = PrepareConfResp.End(b)
    elif kind == "HttpRequestReply":
        action_type, action = Action.NONE, None
        if m["action"] is not None:
            ((akind, a),) = m["action"].items()
            if akind == "Stop":
                headers = w_entries(b, a["headers"])
                body = w_bytes_opt(b, a["body"])
                StopMod.Start(b)
                add_opt(StopMod.AddBody, b, body)
                add_opt(StopMod.AddHeaders, b, headers)
                StopMod.AddStatus(b, a["status"])
                action_type, action = Action.Stop, StopMod.End(b)
            else:
                path = None if a["path"] is None else w_string(b, a["path"])
                headers = w_entries(b, a["headers"])
                args = w_entries(b, a["args"])
                resp_headers = w_entries(b, a["resp_headers"])
                body = w_bytes_opt(b, a["body"])
                RewriteMod.Start(b)
                add_opt(RewriteMod.AddBody, b, body)
                add_opt(RewriteMod.AddRespHeaders, b, resp_headers)
                add_opt(RewriteMod.AddArgs, b, args)
                add_opt(RewriteMod.AddHeaders, b, headers)
                add_opt(RewriteMod.AddPath, b, path)
                action_type, action = Action.Rewrite, RewriteMod.End(b)
        HTTPReqCallResp.Start(b)
        add_opt(HTTPReqCallResp.AddAction, b, action)
        HTTPReqCallResp.AddId(b, m["id"])
        HTTPReqCallResp.AddActionType(b, action_type)
        root = HTTPReqCallResp.End(b)
    elif kind == "ExtraInfo":
        if isinstance(m, dict):
            name = w_string(b, m["Var"])
            VarMod.Start(b)
            VarMod.AddName(b, name)
            info_type, info = Info.Var, VarMod.End(b)
        elif m == "ReqBody":
            ReqBodyMod.Start(b)
            info_type, info = Info.ReqBody, ReqBodyMod.End(b)
        else:
            RespBodyMod.Start(b)
            info_type, info = Info.RespBody, RespBodyMod.End(b)
        ExtraInfoReq.Start(b)
        ExtraInfoReq.AddInfo(b, info)
        ExtraInfoReq.AddInfoType(b, info_type)
        root = ExtraInfoReq.End(b)
    elif kind == "HttpResponseReply":
        headers = w_entries(b, m["headers"])
        body = w_bytes_opt(b, m["body"])
        HTTPRespCallResp.Start(b)
        add_opt(HTTPRespCallResp.AddBody, b, body)
        add_opt(HTTPRespCallResp.AddHeaders, b, headers)
        HTTPRespCallResp.AddId(b, m["id"])
        HTTPRespCallResp.AddStatus(b, m["status"])
        root = HTTPRespCallResp.End(b)
    else:
        raise AssertionError(kind)
    b.Finish(root)
    return bytes(b.Output())


def frame(ty, payload):
    assert len(payload) <= 0xFFFFFF
    return bytes([ty]) + len(payload).to_bytes(3, "big") + payload
