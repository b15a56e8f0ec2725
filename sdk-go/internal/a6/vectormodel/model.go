// Package vectormodel is the content model of the golden vectors in runner-protocol/vectors,
// shared by the tests of the generated A6 code and by the test against APISIX's own generated
// package (sdk-go/internal/a6/officialtest). It mirrors runner-protocol/src/message.rs (serde names
// = manifest keys); comparisons use canonical JSON of these values, so failures show both sides.
//
// Set A6_VECTORS_DIR to read the vectors from another directory.
package vectormodel

import (
	"bytes"
	"compress/gzip"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"unicode/utf8"
)

// RunThreshold is the shortest run of one repeated byte written as {"hex": "..", "repeat": n}, as
// runner-protocol/src/byte_text.rs does.
const RunThreshold = 1024

// maxPayload is the largest frame payload (24-bit length); no byte string is longer.
const maxPayload = 0xFF_FFFF

// CopyBytes copies b out of a FlatBuffers buffer.
func CopyBytes(b []byte) Bytes { return Bytes(append([]byte{}, b...)) }

// Bytes is a byte string: a JSON string, or {"hex": "..."} when it is not UTF-8, or
// {"hex": "61", "repeat": n} (the hex bytes repeated n times) for a run of at least RunThreshold
// copies of one byte.
type Bytes []byte

func (b *Bytes) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err == nil {
		*b = Bytes(s)
		return nil
	}
	var h struct {
		Hex    *string `json:"hex"`
		Repeat *int    `json:"repeat"`
	}
	if err := json.Unmarshal(data, &h); err != nil || h.Hex == nil {
		return fmt.Errorf("byte string: want a string, {\"hex\": ...} or {\"hex\": ..., \"repeat\": n}, got %s", data)
	}
	raw, err := hex.DecodeString(*h.Hex)
	if err != nil {
		return fmt.Errorf("byte string: %w", err)
	}
	if h.Repeat != nil {
		n := *h.Repeat
		if n < 0 || (len(raw) > 0 && n > maxPayload/len(raw)) {
			return fmt.Errorf("byte string: %q repeated %d times is longer than %d bytes", *h.Hex, n, maxPayload)
		}
		raw = bytes.Repeat(raw, n)
	}
	*b = raw
	return nil
}

// isRun tells whether b is a run of at least RunThreshold copies of one byte (b equals itself
// shifted by one).
func isRun(b []byte) bool {
	return len(b) >= RunThreshold && bytes.Equal(b[1:], b[:len(b)-1])
}

func (b Bytes) MarshalJSON() ([]byte, error) {
	if isRun(b) {
		return json.Marshal(struct {
			Hex    string `json:"hex"`
			Repeat int    `json:"repeat"`
		}{hex.EncodeToString(b[:1]), len(b)})
	}
	if utf8.Valid(b) {
		return json.Marshal(string(b))
	}
	return json.Marshal(map[string]string{"hex": hex.EncodeToString(b)})
}

// opt returns an optional byte string: nil stays absent, anything else (even empty) is present.
func Opt(b []byte) *Bytes {
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

func Canon(m Message) string {
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
var KindOf = map[string]map[byte]string{
	"to_runner":  {1: "PrepareConf", 2: "HttpRequest", 3: "ExtraInfoAnswer", 4: "HttpResponse"},
	"to_gateway": {0: "Error", 1: "ConfToken", 2: "HttpRequestReply", 3: "ExtraInfo", 4: "HttpResponseReply"},
}

func VectorsDir(t testing.TB) string {
	t.Helper()
	if dir := os.Getenv("A6_VECTORS_DIR"); dir != "" {
		return dir
	}
	// This file is sdk-go/internal/a6/vectormodel/model.go; the vectors are in
	// runner-protocol/vectors at the repository root.
	_, here, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the vector model source")
	}
	return filepath.Join(filepath.Dir(here), "..", "..", "..", "..", "runner-protocol", "vectors")
}

func LoadManifest(t testing.TB) (string, []Vector) {
	t.Helper()
	dir := VectorsDir(t)
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

// clipAt is how much of a value a failure message shows (the largest vector is 16 MiB).
const clipAt = 4096

// Clip shortens s for a failure message.
func Clip(s string) string {
	if len(s) <= clipAt {
		return s
	}
	return fmt.Sprintf("%s... (%d bytes in all)", s[:clipAt], len(s))
}

// ClipHex is b in hex, shortened for a failure message.
func ClipHex(b []byte) string {
	if len(b) <= clipAt/2 {
		return hex.EncodeToString(b)
	}
	return fmt.Sprintf("%x... (%d bytes in all)", b[:clipAt/2], len(b))
}

// ReadFrame reads a vector's file: a whole frame, gzip-compressed when the name ends in ".gz".
func ReadFrame(dir, file string) ([]byte, error) {
	raw, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil || !strings.HasSuffix(file, ".gz") {
		return raw, err
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	frame, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return frame, nil
}

// VectorFiles lists the vector files in dir (*.bin and *.bin.gz), by base name.
func VectorFiles(dir string) ([]string, error) {
	var names []string
	for _, pattern := range []string{"*.bin", "*.bin.gz"} {
		files, err := filepath.Glob(filepath.Join(dir, pattern))
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			names = append(names, filepath.Base(f))
		}
	}
	return names, nil
}

// SplitFrame checks the frame header and returns the payload.
func SplitFrame(frame []byte, wantType byte) ([]byte, error) {
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
