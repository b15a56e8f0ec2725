// Golden-vector test against APISIX's own generated Go code (github.com/api7/ext-plugin-proto
// v0.6.1, go/A6/...): every frame in runner-protocol/vectors must decode with the official
// packages to the content in manifest.json. A separate module, so that test-only dependency never
// reaches users of sdk-go.
//
// The content model is shared with ../vectors_test.go (package vectormodel, reached through the
// replace directive in go.mod). The decoder repeats the one in ../vectors_test.go with the imports
// switched to the official packages: the generated API is the same but the types differ, which Go
// cannot abstract over; keep the two in step.
//
// Set A6_VECTORS_DIR to read the vectors from another directory.
package officialtest

import (
	"fmt"
	. "github.com/ferrogate/ferrogate/sdk-go/internal/a6/vectormodel"
	"testing"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/api7/ext-plugin-proto/go/A6"
	"github.com/api7/ext-plugin-proto/go/A6/Err"
	"github.com/api7/ext-plugin-proto/go/A6/ExtraInfo"
	"github.com/api7/ext-plugin-proto/go/A6/HTTPReqCall"
	"github.com/api7/ext-plugin-proto/go/A6/HTTPRespCall"
	"github.com/api7/ext-plugin-proto/go/A6/PrepareConf"
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
// The tests.

func TestOfficialDecode(t *testing.T) {
	dir, vectors := LoadManifest(t)
	for _, v := range vectors {
		t.Run(v.Name, func(t *testing.T) {
			if want := KindOf[v.Direction][v.Type]; want != v.Message.Kind {
				t.Fatalf("vector %s: %s type %d is %q, but the manifest message is %q", v.Name, v.Direction, v.Type, want, v.Message.Kind)
			}
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
				t.Fatalf("vector %s: decoding %s with github.com/api7/ext-plugin-proto: %v", v.Name, v.File, err)
			}
			if g, want := Canon(got), Canon(v.Message); g != want {
				t.Errorf("vector %s: %s decoded by the official code differs from the manifest\n got: %s\nwant: %s", v.Name, v.File, Clip(g), Clip(want))
			}
		})
	}
}
