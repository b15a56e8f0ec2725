// Golden-vector tests of the generated Go A6 code (APISIX ext-plugin protocol 0.6.1).
//
// The vectors live in runner-protocol/vectors (written by the Rust encoder): each .bin file is a
// whole frame (type byte, 24-bit big-endian payload length, payload) and manifest.json holds the
// decoded content of each. For every vector this test
//  1. checks the frame header (type byte, declared length = payload length),
//  2. decodes the payload with the generated Go code and compares it with the manifest,
//  3. builds the message from the manifest with the Go FlatBufferBuilder, decodes those bytes and
//     compares again, and
//  4. where `exact_bytes` is true, asserts the Go bytes equal the Rust bytes: the builder below adds
//     fields in the order of the Rust generated `create` functions (largest scalars first, later
//     fields first), creates strings and vectors in the same order and omits empty vectors and
//     default scalars like the Rust encoder, so both write the same buffer. A vector with
//     `exact_bytes: false` was written differently on purpose (e.g. present but empty vectors); for
//     it only the content is compared and byte equality is merely logged.
//
// Set A6_VECTORS_DIR to read the vectors from another directory.
package a6_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"unicode/utf8"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/ferrogate/ferrogate/sdk-go/internal/a6/A6"
	"github.com/ferrogate/ferrogate/sdk-go/internal/a6/A6/Err"
	"github.com/ferrogate/ferrogate/sdk-go/internal/a6/A6/ExtraInfo"
	"github.com/ferrogate/ferrogate/sdk-go/internal/a6/A6/HTTPReqCall"
	"github.com/ferrogate/ferrogate/sdk-go/internal/a6/A6/HTTPRespCall"
	"github.com/ferrogate/ferrogate/sdk-go/internal/a6/A6/PrepareConf"
)

// ---------------------------------------------------------------------------------------------
// The content model: mirrors runner-protocol/src/message.rs (serde names = manifest keys).
// Comparison is done on canonical JSON of these values, so failure messages show both sides.

// Bytes is a byte string: a JSON string, or {"hex": "..."} when it is not UTF-8.
type Bytes []byte

func (b *Bytes) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err == nil {
		*b = Bytes(s)
		return nil
	}
	var h struct {
		Hex *string `json:"hex"`
	}
	if err := json.Unmarshal(data, &h); err != nil || h.Hex == nil {
		return fmt.Errorf("byte string: want a string or {\"hex\": ...}, got %s", data)
	}
	raw, err := hex.DecodeString(*h.Hex)
	if err != nil {
		return fmt.Errorf("byte string: %w", err)
	}
	*b = raw
	return nil
}

func (b Bytes) MarshalJSON() ([]byte, error) {
	if utf8.Valid(b) {
		return json.Marshal(string(b))
	}
	return json.Marshal(map[string]string{"hex": hex.EncodeToString(b)})
}

// opt returns an optional byte string: nil stays absent, anything else (even empty) is present.
func opt(b []byte) *Bytes {
	if b == nil {
		return nil
	}
	v := Bytes(append([]byte{}, b...))
	return &v
}

type Entry struct {
	Name  Bytes  `json:"name"`
	Value *Bytes `json:"value"` // nil: absent (`?flag`, "remove"); differs from "".
}

// Entries marshals as [] when empty, so an absent vector equals an empty one.
type Entries []Entry

func (e Entries) MarshalJSON() ([]byte, error) {
	if len(e) == 0 {
		return []byte("[]"), nil
	}
	return json.Marshal([]Entry(e))
}

type PrepareConfMsg struct {
	Conf Entries `json:"conf"`
	Key  Bytes   `json:"key"`
}

type HTTPRequestMsg struct {
	ID        uint32  `json:"id"`
	SrcIP     Bytes   `json:"src_ip"`
	Method    string  `json:"method"`
	Path      Bytes   `json:"path"`
	Args      Entries `json:"args"`
	Headers   Entries `json:"headers"`
	ConfToken uint32  `json:"conf_token"`
}

type HTTPResponseMsg struct {
	ID        uint32  `json:"id"`
	Status    uint16  `json:"status"`
	Headers   Entries `json:"headers"`
	ConfToken uint32  `json:"conf_token"`
}

type StopMsg struct {
	Status  uint16  `json:"status"`
	Headers Entries `json:"headers"`
	Body    Bytes   `json:"body"`
}

type RewriteMsg struct {
	Path        *Bytes  `json:"path"` // nil: absent; differs from "".
	Headers     Entries `json:"headers"`
	Args        Entries `json:"args"`
	RespHeaders Entries `json:"resp_headers"`
	Body        Bytes   `json:"body"`
}

type ActionMsg struct {
	Stop    *StopMsg    `json:"Stop,omitempty"`
	Rewrite *RewriteMsg `json:"Rewrite,omitempty"`
}

type HTTPRequestReplyMsg struct {
	ID     uint32     `json:"id"`
	Action *ActionMsg `json:"action"` // nil: continue unchanged.
}

type HTTPResponseReplyMsg struct {
	ID      uint32  `json:"id"`
	Status  uint16  `json:"status"`
	Headers Entries `json:"headers"`
	Body    Bytes   `json:"body"`
}

// ExtraInfoMsg is {"Var": name}, "ReqBody" or "RespBody".
type ExtraInfoMsg struct {
	Var  *Bytes
	Kind string // "Var", "ReqBody" or "RespBody"
}

func (e *ExtraInfoMsg) UnmarshalJSON(data []byte) error {
	var unit string
	if err := json.Unmarshal(data, &unit); err == nil {
		if unit != "ReqBody" && unit != "RespBody" {
			return fmt.Errorf("unknown extra info %q", unit)
		}
		e.Kind = unit
		return nil
	}
	var v struct {
		Var *Bytes `json:"Var"`
	}
	if err := json.Unmarshal(data, &v); err != nil || v.Var == nil {
		return fmt.Errorf("extra info: want \"ReqBody\", \"RespBody\" or {\"Var\": ...}, got %s", data)
	}
	e.Kind, e.Var = "Var", v.Var
	return nil
}

func (e ExtraInfoMsg) MarshalJSON() ([]byte, error) {
	if e.Kind == "Var" {
		name := Bytes{}
		if e.Var != nil {
			name = *e.Var
		}
		return json.Marshal(map[string]Bytes{"Var": name})
	}
	return json.Marshal(e.Kind)
}

// Message is one externally tagged message: Kind is the tag, Body a pointer to its content.
type Message struct {
	Kind string
	Body any
}

func (m *Message) UnmarshalJSON(data []byte) error {
	var tagged map[string]json.RawMessage
	if err := json.Unmarshal(data, &tagged); err != nil {
		return err
	}
	if len(tagged) != 1 {
		return fmt.Errorf("message: want exactly one kind, got %d", len(tagged))
	}
	for kind, raw := range tagged {
		var body any
		switch kind {
		case "PrepareConf":
			body = new(PrepareConfMsg)
		case "HttpRequest":
			body = new(HTTPRequestMsg)
		case "ExtraInfoAnswer":
			body = new(*Bytes) // null: absent result
		case "HttpResponse":
			body = new(HTTPResponseMsg)
		case "Error":
			body = new(string)
		case "ConfToken":
			body = new(uint32)
		case "HttpRequestReply":
			body = new(HTTPRequestReplyMsg)
		case "ExtraInfo":
			body = new(ExtraInfoMsg)
		case "HttpResponseReply":
			body = new(HTTPResponseReplyMsg)
		default:
			return fmt.Errorf("unknown message kind %q", kind)
		}
		if err := json.Unmarshal(raw, body); err != nil {
			return fmt.Errorf("%s: %w", kind, err)
		}
		m.Kind, m.Body = kind, body
	}
	return nil
}

func (m Message) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]any{m.Kind: m.Body})
}

func canon(m Message) string {
	out, err := json.Marshal(m)
	if err != nil {
		return fmt.Sprintf("<unmarshalable %#v: %v>", m, err)
	}
	return string(out)
}

type Vector struct {
	Name       string  `json:"name"`
	File       string  `json:"file"`
	Direction  string  `json:"direction"`
	Type       byte    `json:"type"`
	ExactBytes bool    `json:"exact_bytes"`
	Message    Message `json:"message"`
}

// kindOf maps (direction, frame type) to the manifest's message kind.
var kindOf = map[string]map[byte]string{
	"to_runner":  {1: "PrepareConf", 2: "HttpRequest", 3: "ExtraInfoAnswer", 4: "HttpResponse"},
	"to_gateway": {0: "Error", 1: "ConfToken", 2: "HttpRequestReply", 3: "ExtraInfo", 4: "HttpResponseReply"},
}

var errorCodes = map[Err.Code]string{
	Err.CodeBAD_REQUEST:          "BadRequest",
	Err.CodeSERVICE_UNAVAILABLE:  "ServiceUnavailable",
	Err.CodeCONF_TOKEN_NOT_FOUND: "ConfTokenNotFound",
}

// ---------------------------------------------------------------------------------------------
// Decoding with the generated code.

func readEntries(n int, at func(*A6.TextEntry, int) bool) (Entries, error) {
	out := make(Entries, 0, n)
	for j := 0; j < n; j++ {
		var e A6.TextEntry
		if !at(&e, j) {
			return nil, fmt.Errorf("entry %d unreadable", j)
		}
		out = append(out, Entry{Name: Bytes(append([]byte{}, e.Name()...)), Value: opt(e.Value())})
	}
	return out, nil
}

func copyBytes(b []byte) Bytes { return Bytes(append([]byte{}, b...)) }

// decode turns a payload into a Message. The Go runtime has no verifier, so a malformed buffer
// panics: that is turned into an error.
func decode(direction string, ty byte, buf []byte) (msg Message, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("decoding panicked: %v", r)
		}
	}()
	kind, ok := kindOf[direction][ty]
	if !ok {
		return Message{}, fmt.Errorf("no message of type %d travels %s", ty, direction)
	}
	switch kind {
	case "PrepareConf":
		m := PrepareConf.GetRootAsReq(buf, 0)
		conf, err := readEntries(m.ConfLength(), m.Conf)
		if err != nil {
			return Message{}, fmt.Errorf("conf: %w", err)
		}
		return Message{kind, &PrepareConfMsg{Conf: conf, Key: copyBytes(m.Key())}}, nil
	case "HttpRequest":
		m := HTTPReqCall.GetRootAsReq(buf, 0)
		method, ok := A6.EnumNamesMethod[m.Method()]
		if !ok {
			return Message{}, fmt.Errorf("unknown method %d", m.Method())
		}
		args, err := readEntries(m.ArgsLength(), m.Args)
		if err != nil {
			return Message{}, fmt.Errorf("args: %w", err)
		}
		headers, err := readEntries(m.HeadersLength(), m.Headers)
		if err != nil {
			return Message{}, fmt.Errorf("headers: %w", err)
		}
		return Message{kind, &HTTPRequestMsg{
			ID: m.Id(), SrcIP: copyBytes(m.SrcIpBytes()), Method: method, Path: copyBytes(m.Path()),
			Args: args, Headers: headers, ConfToken: m.ConfToken(),
		}}, nil
	case "ExtraInfoAnswer":
		m := ExtraInfo.GetRootAsResp(buf, 0)
		result := opt(m.ResultBytes()) // a present empty vector reads as a non-nil empty slice
		return Message{kind, &result}, nil
	case "HttpResponse":
		m := HTTPRespCall.GetRootAsReq(buf, 0)
		headers, err := readEntries(m.HeadersLength(), m.Headers)
		if err != nil {
			return Message{}, fmt.Errorf("headers: %w", err)
		}
		return Message{kind, &HTTPResponseMsg{ID: m.Id(), Status: m.Status(), Headers: headers, ConfToken: m.ConfToken()}}, nil
	case "Error":
		m := Err.GetRootAsResp(buf, 0)
		code, ok := errorCodes[m.Code()]
		if !ok {
			return Message{}, fmt.Errorf("unknown error code %d", m.Code())
		}
		return Message{kind, &code}, nil
	case "ConfToken":
		token := PrepareConf.GetRootAsResp(buf, 0).ConfToken()
		return Message{kind, &token}, nil
	case "HttpRequestReply":
		m := HTTPReqCall.GetRootAsResp(buf, 0)
		reply := &HTTPRequestReplyMsg{ID: m.Id()}
		var t flatbuffers.Table
		switch m.ActionType() {
		case HTTPReqCall.ActionNONE:
		case HTTPReqCall.ActionStop:
			if !m.Action(&t) {
				return Message{}, fmt.Errorf("action type Stop without a table")
			}
			var s HTTPReqCall.Stop
			s.Init(t.Bytes, t.Pos)
			headers, err := readEntries(s.HeadersLength(), s.Headers)
			if err != nil {
				return Message{}, fmt.Errorf("stop headers: %w", err)
			}
			reply.Action = &ActionMsg{Stop: &StopMsg{Status: s.Status(), Headers: headers, Body: copyBytes(s.BodyBytes())}}
		case HTTPReqCall.ActionRewrite:
			if !m.Action(&t) {
				return Message{}, fmt.Errorf("action type Rewrite without a table")
			}
			var r HTTPReqCall.Rewrite
			r.Init(t.Bytes, t.Pos)
			rw := &RewriteMsg{Path: opt(r.Path()), Body: copyBytes(r.BodyBytes())}
			if rw.Headers, err = readEntries(r.HeadersLength(), r.Headers); err != nil {
				return Message{}, fmt.Errorf("rewrite headers: %w", err)
			}
			if rw.Args, err = readEntries(r.ArgsLength(), r.Args); err != nil {
				return Message{}, fmt.Errorf("rewrite args: %w", err)
			}
			if rw.RespHeaders, err = readEntries(r.RespHeadersLength(), r.RespHeaders); err != nil {
				return Message{}, fmt.Errorf("rewrite resp_headers: %w", err)
			}
			reply.Action = &ActionMsg{Rewrite: rw}
		default:
			return Message{}, fmt.Errorf("unknown action type %d", m.ActionType())
		}
		return Message{kind, reply}, nil
	case "ExtraInfo":
		m := ExtraInfo.GetRootAsReq(buf, 0)
		var t flatbuffers.Table
		switch m.InfoType() {
		case ExtraInfo.InfoVar:
			if !m.Info(&t) {
				return Message{}, fmt.Errorf("info type Var without a table")
			}
			var v ExtraInfo.Var
			v.Init(t.Bytes, t.Pos)
			name := copyBytes(v.Name())
			return Message{kind, &ExtraInfoMsg{Kind: "Var", Var: &name}}, nil
		case ExtraInfo.InfoReqBody:
			return Message{kind, &ExtraInfoMsg{Kind: "ReqBody"}}, nil
		case ExtraInfo.InfoRespBody:
			return Message{kind, &ExtraInfoMsg{Kind: "RespBody"}}, nil
		default:
			return Message{}, fmt.Errorf("unknown extra info type %d", m.InfoType())
		}
	case "HttpResponseReply":
		m := HTTPRespCall.GetRootAsResp(buf, 0)
		headers, err := readEntries(m.HeadersLength(), m.Headers)
		if err != nil {
			return Message{}, fmt.Errorf("headers: %w", err)
		}
		return Message{kind, &HTTPResponseReplyMsg{ID: m.Id(), Status: m.Status(), Headers: headers, Body: copyBytes(m.BodyBytes())}}, nil
	}
	return Message{}, fmt.Errorf("unhandled kind %q", kind)
}

// ---------------------------------------------------------------------------------------------
// Encoding with the Go builder, in the Rust encoder's order (see the file comment).

// entries writes a TextEntry vector; 0 (absent) when empty. Per entry: name, value, table; then
// the vector, like runner-protocol's `entries`.
func entries(b *flatbuffers.Builder, list Entries, startVector func(*flatbuffers.Builder, int) flatbuffers.UOffsetT) flatbuffers.UOffsetT {
	if len(list) == 0 {
		return 0
	}
	offsets := make([]flatbuffers.UOffsetT, len(list))
	for i, e := range list {
		name := b.CreateByteString(e.Name)
		var value flatbuffers.UOffsetT
		if e.Value != nil {
			value = b.CreateByteString(*e.Value)
		}
		A6.TextEntryStart(b)
		if e.Value != nil {
			A6.TextEntryAddValue(b, value)
		}
		A6.TextEntryAddName(b, name)
		offsets[i] = A6.TextEntryEnd(b)
	}
	startVector(b, len(offsets))
	for i := len(offsets) - 1; i >= 0; i-- {
		b.PrependUOffsetT(offsets[i])
	}
	return b.EndVector(len(offsets))
}

// byteVector writes a [ubyte]; 0 (absent) when empty.
func byteVector(b *flatbuffers.Builder, v []byte) flatbuffers.UOffsetT {
	if len(v) == 0 {
		return 0
	}
	return b.CreateByteVector(v)
}

// stringOpt writes a string; 0 (absent) when empty.
func stringOpt(b *flatbuffers.Builder, v []byte) flatbuffers.UOffsetT {
	if len(v) == 0 {
		return 0
	}
	return b.CreateByteString(v)
}

// encode returns the payload for a message (the frame type is the manifest's).
func encode(m Message) ([]byte, error) {
	b := flatbuffers.NewBuilder(256)
	var root flatbuffers.UOffsetT
	switch body := m.Body.(type) {
	case *PrepareConfMsg:
		conf := entries(b, body.Conf, PrepareConf.ReqStartConfVector)
		key := stringOpt(b, body.Key)
		PrepareConf.ReqStart(b)
		if key != 0 {
			PrepareConf.ReqAddKey(b, key)
		}
		if conf != 0 {
			PrepareConf.ReqAddConf(b, conf)
		}
		root = PrepareConf.ReqEnd(b)
	case *HTTPRequestMsg:
		method, ok := A6.EnumValuesMethod[body.Method]
		if !ok {
			return nil, fmt.Errorf("unknown method %q", body.Method)
		}
		srcIP := byteVector(b, body.SrcIP)
		path := stringOpt(b, body.Path)
		args := entries(b, body.Args, HTTPReqCall.ReqStartArgsVector)
		headers := entries(b, body.Headers, HTTPReqCall.ReqStartHeadersVector)
		HTTPReqCall.ReqStart(b)
		HTTPReqCall.ReqAddConfToken(b, body.ConfToken)
		if headers != 0 {
			HTTPReqCall.ReqAddHeaders(b, headers)
		}
		if args != 0 {
			HTTPReqCall.ReqAddArgs(b, args)
		}
		if path != 0 {
			HTTPReqCall.ReqAddPath(b, path)
		}
		if srcIP != 0 {
			HTTPReqCall.ReqAddSrcIp(b, srcIP)
		}
		HTTPReqCall.ReqAddId(b, body.ID)
		HTTPReqCall.ReqAddMethod(b, method)
		root = HTTPReqCall.ReqEnd(b)
	case **Bytes: // ExtraInfoAnswer
		var result flatbuffers.UOffsetT
		if *body != nil {
			result = b.CreateByteVector(**body) // present even when empty
		}
		ExtraInfo.RespStart(b)
		if *body != nil {
			ExtraInfo.RespAddResult(b, result)
		}
		root = ExtraInfo.RespEnd(b)
	case *HTTPResponseMsg:
		headers := entries(b, body.Headers, HTTPRespCall.ReqStartHeadersVector)
		HTTPRespCall.ReqStart(b)
		HTTPRespCall.ReqAddConfToken(b, body.ConfToken)
		if headers != 0 {
			HTTPRespCall.ReqAddHeaders(b, headers)
		}
		HTTPRespCall.ReqAddId(b, body.ID)
		HTTPRespCall.ReqAddStatus(b, body.Status)
		root = HTTPRespCall.ReqEnd(b)
	case *string: // Error
		code, ok := Err.CodeBAD_REQUEST, false
		for c, name := range errorCodes {
			if name == *body {
				code, ok = c, true
			}
		}
		if !ok {
			return nil, fmt.Errorf("unknown error code %q", *body)
		}
		Err.RespStart(b)
		Err.RespAddCode(b, code)
		root = Err.RespEnd(b)
	case *uint32: // ConfToken
		PrepareConf.RespStart(b)
		PrepareConf.RespAddConfToken(b, *body)
		root = PrepareConf.RespEnd(b)
	case *HTTPRequestReplyMsg:
		actionType, action := HTTPReqCall.ActionNONE, flatbuffers.UOffsetT(0)
		switch {
		case body.Action == nil:
		case body.Action.Stop != nil:
			s := body.Action.Stop
			headers := entries(b, s.Headers, HTTPReqCall.StopStartHeadersVector)
			sbody := byteVector(b, s.Body)
			HTTPReqCall.StopStart(b)
			if sbody != 0 {
				HTTPReqCall.StopAddBody(b, sbody)
			}
			if headers != 0 {
				HTTPReqCall.StopAddHeaders(b, headers)
			}
			HTTPReqCall.StopAddStatus(b, s.Status)
			actionType, action = HTTPReqCall.ActionStop, HTTPReqCall.StopEnd(b)
		case body.Action.Rewrite != nil:
			r := body.Action.Rewrite
			var path flatbuffers.UOffsetT
			if r.Path != nil {
				path = b.CreateByteString(*r.Path) // present even when empty
			}
			headers := entries(b, r.Headers, HTTPReqCall.RewriteStartHeadersVector)
			args := entries(b, r.Args, HTTPReqCall.RewriteStartArgsVector)
			respHeaders := entries(b, r.RespHeaders, HTTPReqCall.RewriteStartRespHeadersVector)
			rbody := byteVector(b, r.Body)
			HTTPReqCall.RewriteStart(b)
			if rbody != 0 {
				HTTPReqCall.RewriteAddBody(b, rbody)
			}
			if respHeaders != 0 {
				HTTPReqCall.RewriteAddRespHeaders(b, respHeaders)
			}
			if args != 0 {
				HTTPReqCall.RewriteAddArgs(b, args)
			}
			if headers != 0 {
				HTTPReqCall.RewriteAddHeaders(b, headers)
			}
			if r.Path != nil {
				HTTPReqCall.RewriteAddPath(b, path)
			}
			actionType, action = HTTPReqCall.ActionRewrite, HTTPReqCall.RewriteEnd(b)
		default:
			return nil, fmt.Errorf("action with neither Stop nor Rewrite")
		}
		HTTPReqCall.RespStart(b)
		if action != 0 {
			HTTPReqCall.RespAddAction(b, action)
		}
		HTTPReqCall.RespAddId(b, body.ID)
		HTTPReqCall.RespAddActionType(b, actionType)
		root = HTTPReqCall.RespEnd(b)
	case *ExtraInfoMsg:
		var infoType ExtraInfo.Info
		var info flatbuffers.UOffsetT
		switch body.Kind {
		case "Var":
			name := b.CreateByteString(*body.Var)
			ExtraInfo.VarStart(b)
			ExtraInfo.VarAddName(b, name)
			infoType, info = ExtraInfo.InfoVar, ExtraInfo.VarEnd(b)
		case "ReqBody":
			ExtraInfo.ReqBodyStart(b)
			infoType, info = ExtraInfo.InfoReqBody, ExtraInfo.ReqBodyEnd(b)
		case "RespBody":
			ExtraInfo.RespBodyStart(b)
			infoType, info = ExtraInfo.InfoRespBody, ExtraInfo.RespBodyEnd(b)
		default:
			return nil, fmt.Errorf("unknown extra info %q", body.Kind)
		}
		ExtraInfo.ReqStart(b)
		ExtraInfo.ReqAddInfo(b, info)
		ExtraInfo.ReqAddInfoType(b, infoType)
		root = ExtraInfo.ReqEnd(b)
	case *HTTPResponseReplyMsg:
		headers := entries(b, body.Headers, HTTPRespCall.RespStartHeadersVector)
		rbody := byteVector(b, body.Body)
		HTTPRespCall.RespStart(b)
		if rbody != 0 {
			HTTPRespCall.RespAddBody(b, rbody)
		}
		if headers != 0 {
			HTTPRespCall.RespAddHeaders(b, headers)
		}
		HTTPRespCall.RespAddId(b, body.ID)
		HTTPRespCall.RespAddStatus(b, body.Status)
		root = HTTPRespCall.RespEnd(b)
	default:
		return nil, fmt.Errorf("cannot encode %s (%T)", m.Kind, m.Body)
	}
	b.Finish(root)
	return b.FinishedBytes(), nil
}

// ---------------------------------------------------------------------------------------------
// The tests.

func vectorsDir(t *testing.T) string {
	t.Helper()
	if dir := os.Getenv("A6_VECTORS_DIR"); dir != "" {
		return dir
	}
	// The test runs in sdk-go/internal/a6.
	dir, err := filepath.Abs(filepath.Join("..", "..", "..", "runner-protocol", "vectors"))
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func loadManifest(t *testing.T) (string, []Vector) {
	t.Helper()
	dir := vectorsDir(t)
	raw, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatalf("reading the manifest: %v", err)
	}
	var doc struct {
		Vectors []Vector `json:"vectors"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("parsing %s: %v", filepath.Join(dir, "manifest.json"), err)
	}
	if len(doc.Vectors) == 0 {
		t.Fatalf("%s lists no vectors", filepath.Join(dir, "manifest.json"))
	}
	return dir, doc.Vectors
}

// splitFrame checks the frame header and returns the payload.
func splitFrame(frame []byte, wantType byte) ([]byte, error) {
	if len(frame) < 4 {
		return nil, fmt.Errorf("frame of %d bytes is shorter than its 4-byte header", len(frame))
	}
	if frame[0] != wantType {
		return nil, fmt.Errorf("type byte %d, manifest says %d", frame[0], wantType)
	}
	declared := int(frame[1])<<16 | int(frame[2])<<8 | int(frame[3])
	if declared != len(frame)-4 {
		return nil, fmt.Errorf("declared payload length %d, actual %d", declared, len(frame)-4)
	}
	return frame[4:], nil
}

func TestVectors(t *testing.T) {
	dir, vectors := loadManifest(t)
	for _, v := range vectors {
		t.Run(v.Name, func(t *testing.T) {
			if want := kindOf[v.Direction][v.Type]; want != v.Message.Kind {
				t.Fatalf("vector %s: %s type %d is %q, but the manifest message is %q", v.Name, v.Direction, v.Type, want, v.Message.Kind)
			}
			want := canon(v.Message)
			frame, err := os.ReadFile(filepath.Join(dir, v.File))
			if err != nil {
				t.Fatalf("vector %s: %v", v.Name, err)
			}
			payload, err := splitFrame(frame, v.Type)
			if err != nil {
				t.Fatalf("vector %s (%s): bad frame: %v", v.Name, v.File, err)
			}

			got, err := decode(v.Direction, v.Type, payload)
			if err != nil {
				t.Fatalf("vector %s: decoding %s with the generated Go code: %v", v.Name, v.File, err)
			}
			if g := canon(got); g != want {
				t.Errorf("vector %s: decoded %s differs from the manifest\n got: %s\nwant: %s", v.Name, v.File, g, want)
			}

			ours, err := encode(v.Message)
			if err != nil {
				t.Fatalf("vector %s: encoding the manifest message with the Go builder: %v", v.Name, err)
			}
			again, err := decode(v.Direction, v.Type, ours)
			if err != nil {
				t.Fatalf("vector %s: decoding the Go builder's bytes: %v", v.Name, err)
			}
			if g := canon(again); g != want {
				t.Errorf("vector %s: the Go builder's bytes decode differently from the manifest\n got: %s\nwant: %s", v.Name, g, want)
			}

			same := bytes.Equal(ours, payload)
			switch {
			case v.ExactBytes && !same:
				t.Errorf("vector %s: exact_bytes, but the Go builder's payload differs from %s\n  go: %x\nrust: %x", v.Name, v.File, ours, payload)
			case !v.ExactBytes:
				t.Logf("vector %s: exact_bytes false, content compared only; bytes equal: %v", v.Name, same)
			}
		})
	}
}

// TestManifestCoversFiles checks that every .bin file is listed and every listed file exists,
// and that each (direction, type) pair has at least one vector.
func TestManifestCoversFiles(t *testing.T) {
	dir, vectors := loadManifest(t)
	listed := map[string]bool{}
	covered := map[string]bool{}
	for _, v := range vectors {
		if listed[v.File] {
			t.Errorf("vector %s: file %s listed twice", v.Name, v.File)
		}
		listed[v.File] = true
		covered[fmt.Sprintf("%s/%d", v.Direction, v.Type)] = true
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.bin"))
	if err != nil {
		t.Fatal(err)
	}
	var unlisted []string
	for _, f := range files {
		if !listed[filepath.Base(f)] {
			unlisted = append(unlisted, filepath.Base(f))
		}
	}
	if len(unlisted) > 0 {
		t.Errorf("vector files not in the manifest: %s", strings.Join(unlisted, ", "))
	}
	var missing []string
	for direction, types := range kindOf {
		for ty, kind := range types {
			if !covered[fmt.Sprintf("%s/%d", direction, ty)] {
				missing = append(missing, fmt.Sprintf("%s type %d (%s)", direction, ty, kind))
			}
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("no vector for: %s", strings.Join(missing, "; "))
	}
}

// TestBadFrames checks that splitFrame rejects broken headers (the helper the tests rely on).
func TestBadFrames(t *testing.T) {
	for _, c := range []struct {
		name  string
		frame []byte
	}{
		{"short header", []byte{2, 0, 0}},
		{"wrong type", []byte{1, 0, 0, 0}},
		{"length too long", []byte{2, 0, 0, 5, 0, 0, 0, 0}},
		{"length too short", []byte{2, 0, 0, 1, 0, 0}},
	} {
		if _, err := splitFrame(c.frame, 2); err == nil {
			t.Errorf("%s: frame %x accepted", c.name, c.frame)
		}
	}
}
