// Golden-vector test against APISIX's own generated Go code (github.com/api7/ext-plugin-proto
// v0.6.1, go/A6/...): every frame in runner-protocol/vectors must decode with the official
// packages to the content in manifest.json. A separate module, so that test-only dependency never
// reaches users of sdk-go.
//
// The content model and decoder are a copy of ../vectors_test.go with the imports switched to the
// official packages (the generated API is the same); keep the two in step.
//
// Set A6_VECTORS_DIR to read the vectors from another directory.
package officialtest

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"unicode/utf8"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/api7/ext-plugin-proto/go/A6"
	"github.com/api7/ext-plugin-proto/go/A6/Err"
	"github.com/api7/ext-plugin-proto/go/A6/ExtraInfo"
	"github.com/api7/ext-plugin-proto/go/A6/HTTPReqCall"
	"github.com/api7/ext-plugin-proto/go/A6/HTTPRespCall"
	"github.com/api7/ext-plugin-proto/go/A6/PrepareConf"
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
// The tests.

func vectorsDir(t *testing.T) string {
	t.Helper()
	if dir := os.Getenv("A6_VECTORS_DIR"); dir != "" {
		return dir
	}
	// The test runs in sdk-go/internal/a6/officialtest.
	dir, err := filepath.Abs(filepath.Join("..", "..", "..", "..", "runner-protocol", "vectors"))
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

// TestOfficialDecode decodes every vector with the official packages and compares the content
// with the manifest (frame header first: type byte and declared length).
func TestOfficialDecode(t *testing.T) {
	dir, vectors := loadManifest(t)
	for _, v := range vectors {
		t.Run(v.Name, func(t *testing.T) {
			if want := kindOf[v.Direction][v.Type]; want != v.Message.Kind {
				t.Fatalf("vector %s: %s type %d is %q, but the manifest message is %q", v.Name, v.Direction, v.Type, want, v.Message.Kind)
			}
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
				t.Fatalf("vector %s: decoding %s with github.com/api7/ext-plugin-proto: %v", v.Name, v.File, err)
			}
			if g, want := canon(got), canon(v.Message); g != want {
				t.Errorf("vector %s: %s decoded by the official code differs from the manifest\n got: %s\nwant: %s", v.Name, v.File, g, want)
			}
		})
	}
}
