// Golden-vector tests of the generated Go A6 code (APISIX ext-plugin protocol 0.6.1).
//
// The vectors live in runner-protocol/vectors (written by the Rust encoder): each .bin file is a
// whole frame (type byte, 24-bit big-endian payload length, payload), a .bin.gz file the same
// gzip-compressed (the 16 MiB frame at the size limit), and manifest.json holds the decoded content
// of each. For every vector this test
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
	"encoding/json"
	"fmt"
	. "github.com/ferrogate/ferrogate/sdk-go/internal/a6/vectormodel"
	"sort"
	"strings"
	"testing"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/ferrogate/ferrogate/sdk-go/internal/a6/A6"
	"github.com/ferrogate/ferrogate/sdk-go/internal/a6/A6/Err"
	"github.com/ferrogate/ferrogate/sdk-go/internal/a6/A6/ExtraInfo"
	"github.com/ferrogate/ferrogate/sdk-go/internal/a6/A6/HTTPReqCall"
	"github.com/ferrogate/ferrogate/sdk-go/internal/a6/A6/HTTPRespCall"
	"github.com/ferrogate/ferrogate/sdk-go/internal/a6/A6/PrepareConf"
)

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
		out = append(out, Entry{Name: Bytes(append([]byte{}, e.Name()...)), Value: Opt(e.Value())})
	}
	return out, nil
}

// decode turns a payload into a Message. The Go runtime has no verifier, so a malformed buffer
// panics: that is turned into an error.
func decode(direction string, ty byte, buf []byte) (msg Message, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("decoding panicked: %v", r)
		}
	}()
	kind, ok := KindOf[direction][ty]
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
		return Message{Kind: kind, Body: &PrepareConfMsg{Conf: conf, Key: CopyBytes(m.Key())}}, nil
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
		return Message{Kind: kind, Body: &HTTPRequestMsg{
			ID: m.Id(), SrcIP: CopyBytes(m.SrcIpBytes()), Method: method, Path: CopyBytes(m.Path()),
			Args: args, Headers: headers, ConfToken: m.ConfToken(),
		}}, nil
	case "ExtraInfoAnswer":
		m := ExtraInfo.GetRootAsResp(buf, 0)
		result := Opt(m.ResultBytes()) // a present empty vector reads as a non-nil empty slice
		return Message{Kind: kind, Body: &result}, nil
	case "HttpResponse":
		m := HTTPRespCall.GetRootAsReq(buf, 0)
		headers, err := readEntries(m.HeadersLength(), m.Headers)
		if err != nil {
			return Message{}, fmt.Errorf("headers: %w", err)
		}
		return Message{Kind: kind, Body: &HTTPResponseMsg{ID: m.Id(), Status: m.Status(), Headers: headers, ConfToken: m.ConfToken()}}, nil
	case "Error":
		m := Err.GetRootAsResp(buf, 0)
		code, ok := errorCodes[m.Code()]
		if !ok {
			return Message{}, fmt.Errorf("unknown error code %d", m.Code())
		}
		return Message{Kind: kind, Body: &code}, nil
	case "ConfToken":
		token := PrepareConf.GetRootAsResp(buf, 0).ConfToken()
		return Message{Kind: kind, Body: &token}, nil
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
			reply.Action = &ActionMsg{Stop: &StopMsg{Status: s.Status(), Headers: headers, Body: CopyBytes(s.BodyBytes())}}
		case HTTPReqCall.ActionRewrite:
			if !m.Action(&t) {
				return Message{}, fmt.Errorf("action type Rewrite without a table")
			}
			var r HTTPReqCall.Rewrite
			r.Init(t.Bytes, t.Pos)
			rw := &RewriteMsg{Path: Opt(r.Path()), Body: CopyBytes(r.BodyBytes())}
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
		return Message{Kind: kind, Body: reply}, nil
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
			name := CopyBytes(v.Name())
			return Message{Kind: kind, Body: &ExtraInfoMsg{Kind: "Var", Var: &name}}, nil
		case ExtraInfo.InfoReqBody:
			return Message{Kind: kind, Body: &ExtraInfoMsg{Kind: "ReqBody"}}, nil
		case ExtraInfo.InfoRespBody:
			return Message{Kind: kind, Body: &ExtraInfoMsg{Kind: "RespBody"}}, nil
		default:
			return Message{}, fmt.Errorf("unknown extra info type %d", m.InfoType())
		}
	case "HttpResponseReply":
		m := HTTPRespCall.GetRootAsResp(buf, 0)
		headers, err := readEntries(m.HeadersLength(), m.Headers)
		if err != nil {
			return Message{}, fmt.Errorf("headers: %w", err)
		}
		return Message{Kind: kind, Body: &HTTPResponseReplyMsg{ID: m.Id(), Status: m.Status(), Headers: headers, Body: CopyBytes(m.BodyBytes())}}, nil
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

func TestVectors(t *testing.T) {
	dir, vectors := LoadManifest(t)
	for _, v := range vectors {
		t.Run(v.Name, func(t *testing.T) {
			if want := KindOf[v.Direction][v.Type]; want != v.Message.Kind {
				t.Fatalf("vector %s: %s type %d is %q, but the manifest message is %q", v.Name, v.Direction, v.Type, want, v.Message.Kind)
			}
			want := Canon(v.Message)
			frame, err := ReadFrame(dir, v.File)
			if err != nil {
				t.Fatalf("vector %s: %v", v.Name, err)
			}
			payload, err := SplitFrame(frame, v.Type)
			if err != nil {
				t.Fatalf("vector %s (%s): bad frame: %v", v.Name, v.File, err)
			}

			got, err := decode(v.Direction, v.Type, payload)
			if err != nil {
				t.Fatalf("vector %s: decoding %s with the generated Go code: %v", v.Name, v.File, err)
			}
			if g := Canon(got); g != want {
				t.Errorf("vector %s: decoded %s differs from the manifest\n got: %s\nwant: %s", v.Name, v.File, Clip(g), Clip(want))
			}

			ours, err := encode(v.Message)
			if err != nil {
				t.Fatalf("vector %s: encoding the manifest message with the Go builder: %v", v.Name, err)
			}
			again, err := decode(v.Direction, v.Type, ours)
			if err != nil {
				t.Fatalf("vector %s: decoding the Go builder's bytes: %v", v.Name, err)
			}
			if g := Canon(again); g != want {
				t.Errorf("vector %s: the Go builder's bytes decode differently from the manifest\n got: %s\nwant: %s", v.Name, Clip(g), Clip(want))
			}

			same := bytes.Equal(ours, payload)
			switch {
			case v.ExactBytes && !same:
				t.Errorf("vector %s: exact_bytes, but the Go builder's payload differs from %s\n  go: %s\nrust: %s", v.Name, v.File, ClipHex(ours), ClipHex(payload))
			case !v.ExactBytes:
				t.Logf("vector %s: exact_bytes false, content compared only; bytes equal: %v", v.Name, same)
			}
		})
	}
}

// TestManifestCoversFiles checks that every .bin and .bin.gz file is listed and every listed file exists,
// and that each (direction, type) pair has at least one vector.
func TestManifestCoversFiles(t *testing.T) {
	dir, vectors := LoadManifest(t)
	listed := map[string]bool{}
	covered := map[string]bool{}
	for _, v := range vectors {
		if listed[v.File] {
			t.Errorf("vector %s: file %s listed twice", v.Name, v.File)
		}
		listed[v.File] = true
		covered[fmt.Sprintf("%s/%d", v.Direction, v.Type)] = true
	}
	files, err := VectorFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	var unlisted []string
	for _, f := range files {
		if !listed[f] {
			unlisted = append(unlisted, f)
		}
	}
	if len(unlisted) > 0 {
		t.Errorf("vector files not in the manifest: %s", strings.Join(unlisted, ", "))
	}
	var missing []string
	for direction, types := range KindOf {
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
		if _, err := SplitFrame(c.frame, 2); err == nil {
			t.Errorf("%s: frame %x accepted", c.name, c.frame)
		}
	}
}

// TestByteStringForms checks the manifest's byte-string forms, the run-length one among them, as
// runner-protocol/src/byte_text.rs writes and reads them.
func TestByteStringForms(t *testing.T) {
	run := bytes.Repeat([]byte{'a'}, RunThreshold)
	for _, c := range []struct {
		bytes []byte
		json  string
	}{
		{[]byte("café"), `"café"`},
		{[]byte{0xff, 0x00}, `{"hex":"ff00"}`},
		{run[:RunThreshold-1], `"` + strings.Repeat("a", RunThreshold-1) + `"`},
		{run, `{"hex":"61","repeat":1024}`},
		{bytes.Repeat([]byte{0xff}, 5000), `{"hex":"ff","repeat":5000}`},
	} {
		out, err := json.Marshal(Bytes(c.bytes))
		if err != nil || string(out) != c.json {
			t.Errorf("%.20x...: got %s (%v), want %s", c.bytes, out, err, c.json)
		}
		var back Bytes
		if err := json.Unmarshal([]byte(c.json), &back); err != nil || !bytes.Equal(back, c.bytes) {
			t.Errorf("%s: read back %.20x... (%v)", c.json, []byte(back), err)
		}
	}
	var b Bytes
	if err := json.Unmarshal([]byte(`{"hex":"0102","repeat":3}`), &b); err != nil || !bytes.Equal(b, []byte{1, 2, 1, 2, 1, 2}) {
		t.Errorf("pattern run: %x (%v)", []byte(b), err)
	}
	for _, bad := range []string{`{"hex":"0000","repeat":8388608}`, `{"hex":"00","repeat":-1}`, `{"hex":"0","repeat":2}`} {
		if err := json.Unmarshal([]byte(bad), &b); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}
