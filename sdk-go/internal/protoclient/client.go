// Package protoclient is the gateway side of the runner protocol, small and strict, for the
// SDK's tests: it sends prepare, request and response calls, answers extra-info questions and
// decodes the replies into plain structs.
package protoclient

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/ferrogate/ferrogate/sdk-go/internal/a6/A6"
	"github.com/ferrogate/ferrogate/sdk-go/internal/a6/A6/Err"
	"github.com/ferrogate/ferrogate/sdk-go/internal/a6/A6/ExtraInfo"
	"github.com/ferrogate/ferrogate/sdk-go/internal/a6/A6/HTTPReqCall"
	"github.com/ferrogate/ferrogate/sdk-go/internal/a6/A6/HTTPRespCall"
	"github.com/ferrogate/ferrogate/sdk-go/internal/a6/A6/PrepareConf"
	"github.com/ferrogate/ferrogate/sdk-go/internal/frame"
	flatbuffers "github.com/google/flatbuffers/go"
)

// Entry is a TextEntry; Value nil is an entry without value.
type Entry struct {
	Name  string
	Value *string
}

// E returns an entry with a value.
func E(name, value string) Entry { return Entry{Name: name, Value: &value} }

// Flag returns an entry without value.
func Flag(name string) Entry { return Entry{Name: name} }

// Question is an extra-info question from the runner.
type Question struct {
	Kind string // "var", "req_body", "resp_body"
	Name string // for "var"
}

// Answerer answers a question: nil is an absent result.
type Answerer func(Question) []byte

// HTTPRequest is a request call.
type HTTPRequest struct {
	ID        uint32
	SrcIP     []byte
	Method    A6.Method
	Path      string
	Args      []Entry
	Headers   []Entry
	ConfToken uint32
}

// HTTPResponse is a response call.
type HTTPResponse struct {
	ID        uint32
	Status    uint16
	Headers   []Entry
	ConfToken uint32
}

// Stop is a Stop action.
type Stop struct {
	Status  uint16
	Headers []Entry
	Body    []byte
}

// Rewrite is a Rewrite action; Path nil when absent.
type Rewrite struct {
	Path        *string
	Headers     []Entry
	Args        []Entry
	RespHeaders []Entry
	Body        []byte
}

// Reply is the runner's final answer to a call.
type Reply struct {
	Type      byte     // the frame type; 0 for an error
	ErrCode   Err.Code // for Type 0
	ID        uint32
	Stop      *Stop
	Rewrite   *Rewrite
	Status    uint16 // response call
	Headers   []Entry
	Body      []byte
	Questions []Question // extra-info questions asked before the reply, in order
}

// Client is one gateway connection to a runner.
type Client struct {
	Conn net.Conn
	rd   *frame.Reader
	// Pipelined makes the next call wait until this many questions have arrived before answering
	// any (a runner that does not pipeline them then hangs and the read deadline fails).
	Pipelined int
	Timeout   time.Duration // per call; default 10 s
}

// Dial connects to a runner's socket.
func Dial(path string) (*Client, error) {
	nc, err := net.Dial("unix", path)
	if err != nil {
		return nil, err
	}
	return New(nc), nil
}

// New wraps a connection.
func New(nc net.Conn) *Client { return &Client{Conn: nc, rd: frame.NewReader(nc, 1<<30)} }

// Close closes the connection.
func (c *Client) Close() error { return c.Conn.Close() }

// WriteFrame sends one frame.
func (c *Client) WriteFrame(ty byte, payload []byte) error {
	out := make([]byte, frame.HeaderLen+len(payload))
	if err := frame.PutHeader(out, ty, len(payload)); err != nil {
		return err
	}
	copy(out[frame.HeaderLen:], payload)
	_, err := c.Conn.Write(out)
	return err
}

// ReadFrame reads one frame (the payload is a copy).
func (c *Client) ReadFrame() (byte, []byte, error) {
	ty, p, err := c.rd.Next()
	return ty, append([]byte(nil), p...), err
}

func entries(b *flatbuffers.Builder, list []Entry) flatbuffers.UOffsetT {
	if len(list) == 0 {
		return 0
	}
	offs := make([]flatbuffers.UOffsetT, len(list))
	for i, e := range list {
		n := b.CreateString(e.Name)
		var v flatbuffers.UOffsetT
		if e.Value != nil {
			v = b.CreateString(*e.Value)
		}
		A6.TextEntryStart(b)
		A6.TextEntryAddName(b, n)
		if e.Value != nil {
			A6.TextEntryAddValue(b, v)
		}
		offs[i] = A6.TextEntryEnd(b)
	}
	b.StartVector(4, len(offs), 4)
	for i := len(offs) - 1; i >= 0; i-- {
		b.PrependUOffsetT(offs[i])
	}
	return b.EndVector(len(offs))
}

func readEntries(n int, at func(*A6.TextEntry, int) bool) []Entry {
	var out []Entry
	var e A6.TextEntry
	for i := 0; i < n; i++ {
		if at(&e, i) {
			en := Entry{Name: string(e.Name())}
			if v := e.Value(); v != nil {
				s := string(v)
				en.Value = &s
			}
			out = append(out, en)
		}
	}
	return out
}

// PrepareBytes encodes a PrepareConf request.
func PrepareBytes(key string, conf []Entry) []byte {
	b := flatbuffers.NewBuilder(256)
	c := entries(b, conf)
	var k flatbuffers.UOffsetT
	if key != "" {
		k = b.CreateString(key)
	}
	PrepareConf.ReqStart(b)
	if c != 0 {
		PrepareConf.ReqAddConf(b, c)
	}
	if k != 0 {
		PrepareConf.ReqAddKey(b, k)
	}
	b.Finish(PrepareConf.ReqEnd(b))
	return b.FinishedBytes()
}

// Prepare sends a PrepareConf call; it returns the token, or the error code of a type 0 reply.
func (c *Client) Prepare(key string, conf ...Entry) (uint32, *Err.Code, error) {
	if err := c.WriteFrame(frame.TypePrepare, PrepareBytes(key, conf)); err != nil {
		return 0, nil, err
	}
	c.deadline()
	ty, p, err := c.ReadFrame()
	if err != nil {
		return 0, nil, err
	}
	switch ty {
	case frame.TypePrepare:
		return PrepareConf.GetRootAsResp(p, 0).ConfToken(), nil, nil
	case frame.TypeError:
		code := Err.GetRootAsResp(p, 0).Code()
		return 0, &code, nil
	}
	return 0, nil, fmt.Errorf("prepare: reply of type %d", ty)
}

// MustPrepare is Prepare that fails on any error reply.
func (c *Client) MustPrepare(key string, conf ...Entry) (uint32, error) {
	t, code, err := c.Prepare(key, conf...)
	if err == nil && code != nil {
		err = fmt.Errorf("prepare: error %s", code)
	}
	return t, err
}

// RequestBytes encodes a request call.
func RequestBytes(r HTTPRequest) []byte {
	b := flatbuffers.NewBuilder(512)
	var src flatbuffers.UOffsetT
	if len(r.SrcIP) > 0 {
		src = b.CreateByteVector(r.SrcIP)
	}
	path := b.CreateString(r.Path)
	args := entries(b, r.Args)
	headers := entries(b, r.Headers)
	HTTPReqCall.ReqStart(b)
	HTTPReqCall.ReqAddId(b, r.ID)
	if src != 0 {
		HTTPReqCall.ReqAddSrcIp(b, src)
	}
	HTTPReqCall.ReqAddMethod(b, r.Method)
	HTTPReqCall.ReqAddPath(b, path)
	if args != 0 {
		HTTPReqCall.ReqAddArgs(b, args)
	}
	if headers != 0 {
		HTTPReqCall.ReqAddHeaders(b, headers)
	}
	HTTPReqCall.ReqAddConfToken(b, r.ConfToken)
	b.Finish(HTTPReqCall.ReqEnd(b))
	return b.FinishedBytes()
}

// ResponseBytes encodes a response call.
func ResponseBytes(r HTTPResponse) []byte {
	b := flatbuffers.NewBuilder(512)
	headers := entries(b, r.Headers)
	HTTPRespCall.ReqStart(b)
	HTTPRespCall.ReqAddId(b, r.ID)
	HTTPRespCall.ReqAddStatus(b, r.Status)
	if headers != 0 {
		HTTPRespCall.ReqAddHeaders(b, headers)
	}
	HTTPRespCall.ReqAddConfToken(b, r.ConfToken)
	b.Finish(HTTPRespCall.ReqEnd(b))
	return b.FinishedBytes()
}

// AnswerBytes encodes an extra-info answer; nil is an absent result.
func AnswerBytes(result []byte) []byte {
	b := flatbuffers.NewBuilder(len(result) + 64)
	var v flatbuffers.UOffsetT
	if result != nil {
		v = b.CreateByteVector(result)
	}
	ExtraInfo.RespStart(b)
	if result != nil {
		ExtraInfo.RespAddResult(b, v)
	}
	b.Finish(ExtraInfo.RespEnd(b))
	return b.FinishedBytes()
}

func (c *Client) deadline() {
	t := c.Timeout
	if t == 0 {
		t = 10 * time.Second
	}
	_ = c.Conn.SetReadDeadline(time.Now().Add(t))
}

// Request sends a request call and answers its questions with answer (nil: every answer absent).
func (c *Client) Request(r HTTPRequest, answer Answerer) (*Reply, error) {
	if err := c.WriteFrame(frame.TypeHTTPReq, RequestBytes(r)); err != nil {
		return nil, err
	}
	return c.finish(frame.TypeHTTPReq, answer)
}

// Response sends a response call and answers its questions.
func (c *Client) Response(r HTTPResponse, answer Answerer) (*Reply, error) {
	if err := c.WriteFrame(frame.TypeHTTPResp, ResponseBytes(r)); err != nil {
		return nil, err
	}
	return c.finish(frame.TypeHTTPResp, answer)
}

// ErrUnexpected is returned for a reply of a type that does not answer the call.
var ErrUnexpected = errors.New("unexpected reply type")

func (c *Client) finish(want byte, answer Answerer) (*Reply, error) {
	c.deadline()
	reply := &Reply{}
	var pending []Question
	flush := func() error {
		for _, q := range pending {
			var res []byte
			if answer != nil {
				res = answer(q)
			}
			if err := c.WriteFrame(frame.TypeExtraInfo, AnswerBytes(res)); err != nil {
				return err
			}
		}
		pending = pending[:0]
		return nil
	}
	for {
		ty, p, err := c.ReadFrame()
		if err != nil {
			return reply, err
		}
		if ty == frame.TypeExtraInfo {
			q, err := decodeQuestion(p)
			if err != nil {
				return reply, err
			}
			reply.Questions = append(reply.Questions, q)
			pending = append(pending, q)
			if len(reply.Questions) >= c.Pipelined {
				if err := flush(); err != nil {
					return reply, err
				}
			}
			continue
		}
		c.Pipelined = 0
		reply.Type = ty
		switch ty {
		case frame.TypeError:
			reply.ErrCode = Err.GetRootAsResp(p, 0).Code()
		case want:
			if want == frame.TypeHTTPReq {
				decodeReqReply(p, reply)
			} else {
				decodeRespReply(p, reply)
			}
		default:
			return reply, fmt.Errorf("%w %d", ErrUnexpected, ty)
		}
		return reply, nil
	}
}

func decodeQuestion(p []byte) (Question, error) {
	m := ExtraInfo.GetRootAsReq(p, 0)
	var t flatbuffers.Table
	switch m.InfoType() {
	case ExtraInfo.InfoVar:
		if !m.Info(&t) {
			return Question{}, errors.New("var question without table")
		}
		var v ExtraInfo.Var
		v.Init(t.Bytes, t.Pos)
		return Question{Kind: "var", Name: string(v.Name())}, nil
	case ExtraInfo.InfoReqBody:
		return Question{Kind: "req_body"}, nil
	case ExtraInfo.InfoRespBody:
		return Question{Kind: "resp_body"}, nil
	}
	return Question{}, fmt.Errorf("unknown question type %d", m.InfoType())
}

func decodeReqReply(p []byte, reply *Reply) {
	m := HTTPReqCall.GetRootAsResp(p, 0)
	reply.ID = m.Id()
	var t flatbuffers.Table
	switch m.ActionType() {
	case HTTPReqCall.ActionStop:
		m.Action(&t)
		var s HTTPReqCall.Stop
		s.Init(t.Bytes, t.Pos)
		reply.Stop = &Stop{Status: s.Status(), Headers: readEntries(s.HeadersLength(), s.Headers), Body: append([]byte(nil), s.BodyBytes()...)}
	case HTTPReqCall.ActionRewrite:
		m.Action(&t)
		var r HTTPReqCall.Rewrite
		r.Init(t.Bytes, t.Pos)
		rw := &Rewrite{
			Headers: readEntries(r.HeadersLength(), r.Headers), Args: readEntries(r.ArgsLength(), r.Args),
			RespHeaders: readEntries(r.RespHeadersLength(), r.RespHeaders), Body: append([]byte(nil), r.BodyBytes()...),
		}
		if p := r.Path(); p != nil {
			s := string(p)
			rw.Path = &s
		}
		reply.Rewrite = rw
	}
}

func decodeRespReply(p []byte, reply *Reply) {
	m := HTTPRespCall.GetRootAsResp(p, 0)
	reply.ID = m.Id()
	reply.Status = m.Status()
	reply.Headers = readEntries(m.HeadersLength(), m.Headers)
	reply.Body = append([]byte(nil), m.BodyBytes()...)
}
