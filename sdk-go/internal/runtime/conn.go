package runtime

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"slices"
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

const (
	keepReadBuffer    = 1 << 20 // largest read buffer kept between frames
	keepBuilderBuffer = 1 << 20 // largest builder kept between replies
)

// errProtocol marks a broken conversation: the connection is closed after it.
var errProtocol = errors.New("protocol error")

// conn serves one gateway connection: one call at a time, in order, on one goroutine. Everything
// a call needs (decoders, builder, request and response objects, buffers) is reused across calls.
type conn struct {
	s    *Server
	nc   net.Conn
	base context.Context

	calls   *frame.Reader // calls from the gateway
	answers *frame.Reader // extra-info answers (their own buffer: the call's payload stays valid)

	b       *flatbuffers.Builder // replies
	qb      *flatbuffers.Builder // extra-info questions
	offs    []flatbuffers.UOffsetT
	keys    []string
	scratch []byte
	qbuf    []byte

	req    Request
	resp   UpstreamResponse
	stop   StopWriter
	plugin string // the plugin running, for error messages

	broken      bool // the stream is out of step: close after this call
	deadlineSet bool
}

func newConn(s *Server, nc net.Conn, base context.Context) *conn {
	return &conn{
		s: s, nc: nc, base: base,
		calls:   frame.NewReader(nc, keepReadBuffer),
		answers: frame.NewReader(nc, keepReadBuffer),
		b:       flatbuffers.NewBuilder(1024),
		qb:      flatbuffers.NewBuilder(128),
	}
}

func (c *conn) serve() {
	defer c.nc.Close()
	for {
		ty, payload, err := c.calls.Next()
		if err != nil {
			return
		}
		if !c.handle(ty, payload) || c.broken {
			return
		}
	}
}

// handle answers one call; false closes the connection.
func (c *conn) handle(ty byte, payload []byte) (keep bool) {
	defer func() {
		if r := recover(); r != nil {
			// a payload the decoder cannot read, or a bug of ours: answer and drop the connection
			c.s.log().Error("call failed", "type", ty, "panic", r)
			_ = c.sendError(Err.CodeBAD_REQUEST)
			keep = false
		}
	}()
	switch ty {
	case frame.TypePrepare:
		return c.prepare(payload)
	case frame.TypeHTTPReq:
		return c.httpReq(payload)
	case frame.TypeHTTPResp:
		return c.httpResp(payload)
	default:
		c.s.log().Warn("unexpected message type", "type", ty)
		return c.sendError(Err.CodeBAD_REQUEST) == nil && ty != frame.TypeExtraInfo
	}
}

func (c *conn) prepare(payload []byte) bool {
	var req PrepareConf.Req
	req.Init(payload, flatbufRoot(payload))
	token, err := c.s.Confs.Prepare(string(req.Key()), func() ([]link, error) {
		n := req.ConfLength()
		chain := make([]link, 0, n)
		var e A6.TextEntry
		for i := 0; i < n; i++ {
			if !req.Conf(&e, i) {
				return nil, fmt.Errorf("conf entry %d unreadable", i)
			}
			name := string(e.Name())
			entry, ok := c.s.Registry.Lookup(name)
			if !ok {
				return nil, fmt.Errorf("conf entry %d: no plugin named %q in this runner", i, name)
			}
			bound, err := parse(entry, bytes.Clone(e.Value()))
			if err != nil {
				return nil, fmt.Errorf("conf entry %d: plugin %q: %w", i, name, err)
			}
			chain = append(chain, link{name: name, bound: bound})
		}
		return chain, nil
	})
	if err != nil {
		c.s.log().Error("prepare conf failed", "err", err)
		return c.sendError(Err.CodeBAD_REQUEST) == nil
	}
	b := c.builder()
	PrepareConf.RespStart(b)
	PrepareConf.RespAddConfToken(b, token)
	b.Finish(PrepareConf.RespEnd(b))
	return c.send(frame.TypePrepare) == nil
}

func parse(e *Entry, value []byte) (bound Bound, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("conf parser panicked: %v", r)
		}
	}()
	return e.Parse(value)
}

func (c *conn) startCall() *callCtx {
	return newCallCtx(c.base, time.Now().Add(c.s.callTimeout()))
}

func (c *conn) endCall(ctx *callCtx) {
	ctx.finish()
	if c.deadlineSet {
		c.deadlineSet = false
		if err := c.nc.SetReadDeadline(time.Time{}); err != nil {
			c.broken = true
		}
	}
}

func (c *conn) httpReq(payload []byte) bool {
	r := &c.req
	r.initWire(payload)
	chain, ok := c.s.Confs.Get(r.fb.ConfToken())
	if !ok {
		return c.sendError(Err.CodeCONF_TOKEN_NOT_FOUND) == nil
	}
	ctx := c.startCall()
	r.extra.reset(ctx, c, false)
	c.stop.reset()
	err := c.runRequest(ctx, chain)
	if err == nil && !validStatus(c.stop.status) {
		err = fmt.Errorf("plugin %q: status %d does not fit the protocol's 16 bits", c.plugin, c.stop.status)
	}
	c.endCall(ctx)
	if c.broken {
		return false
	}
	if err != nil {
		c.s.log().Error("request filter failed", "id", r.id, "err", err)
		return c.sendError(Err.CodeSERVICE_UNAVAILABLE) == nil
	}
	c.encodeReqReply()
	return c.send(frame.TypeHTTPReq) == nil
}

func (c *conn) runRequest(ctx context.Context, chain []link) (err error) {
	defer c.recoverPlugin(&err)
	for i := range chain {
		c.plugin = chain[i].name
		if err := chain[i].bound.Request(ctx, &c.stop, &c.req); err != nil {
			return fmt.Errorf("plugin %q: %w", c.plugin, err)
		}
		if c.stop.Stopped() {
			break
		}
	}
	return nil
}

// validStatus refuses a status the 16-bit field would truncate.
func validStatus(s int) bool { return s >= 0 && s <= 0xFFFF }

func (c *conn) recoverPlugin(err *error) {
	if r := recover(); r != nil {
		c.s.log().Error("plugin panicked", "plugin", c.plugin, "panic", r, "stack", string(debug.Stack()))
		*err = fmt.Errorf("plugin %q panicked: %v", c.plugin, r)
	}
}

func (c *conn) httpResp(payload []byte) bool {
	w := &c.resp
	w.initWire(payload)
	chain, ok := c.s.Confs.Get(w.fb.ConfToken())
	if !ok {
		return c.sendError(Err.CodeCONF_TOKEN_NOT_FOUND) == nil
	}
	ctx := c.startCall()
	w.extra.reset(ctx, c, true)
	err := c.runResponse(ctx, chain)
	if err == nil && !validStatus(w.status) {
		err = fmt.Errorf("plugin %q: status %d does not fit the protocol's 16 bits", c.plugin, w.status)
	}
	c.endCall(ctx)
	if c.broken {
		return false
	}
	if err != nil {
		c.s.log().Error("response filter failed", "id", w.id, "err", err)
		return c.sendError(Err.CodeSERVICE_UNAVAILABLE) == nil
	}
	c.encodeRespReply()
	return c.send(frame.TypeHTTPResp) == nil
}

func (c *conn) runResponse(ctx context.Context, chain []link) (err error) {
	defer c.recoverPlugin(&err)
	for i := range chain {
		c.plugin = chain[i].name
		if err := chain[i].bound.Response(ctx, &c.resp); err != nil {
			return fmt.Errorf("plugin %q: %w", c.plugin, err)
		}
	}
	return nil
}

// ---------------------------------------------------------------------------------------------
// Replies.

func (c *conn) builder() *flatbuffers.Builder {
	if cap(c.b.Bytes) > keepBuilderBuffer {
		c.b = flatbuffers.NewBuilder(1024)
	}
	c.b.Reset()
	return c.b
}

func (c *conn) entry(name, value string, hasValue bool) {
	b := c.b
	n := b.CreateString(name)
	var v flatbuffers.UOffsetT
	if hasValue {
		v = b.CreateString(value)
	}
	A6.TextEntryStart(b)
	A6.TextEntryAddName(b, n)
	if hasValue {
		A6.TextEntryAddValue(b, v)
	}
	c.offs = append(c.offs, A6.TextEntryEnd(b))
}

// vector ends the entries made since c.offs had length from; 0 when there are none.
func (c *conn) vector(from int) flatbuffers.UOffsetT {
	offs := c.offs[from:]
	if len(offs) == 0 {
		return 0
	}
	c.b.StartVector(4, len(offs), 4)
	for i := len(offs) - 1; i >= 0; i-- {
		c.b.PrependUOffsetT(offs[i])
	}
	c.offs = c.offs[:from]
	return c.b.EndVector(len(offs))
}

// changes writes what changed in f: per changed name its values, or an entry without value.
func (c *conn) changes(f *Fields) flatbuffers.UOffsetT {
	if !f.Changed() {
		return 0
	}
	from := len(c.offs)
	for _, name := range f.touched {
		n := 0
		for i := range f.list {
			if e := &f.list[i]; e.HasValue && f.same(e.Name, name) {
				c.entry(e.Name, e.Value, true)
				n++
			}
		}
		if n == 0 {
			c.entry(name, "", false)
		}
	}
	return c.vector(from)
}

// whole writes all of f, then an entry without value for each name removed with Del.
func (c *conn) whole(f *Fields) flatbuffers.UOffsetT {
	f.ensure()
	from := len(c.offs)
	for i := range f.list {
		e := &f.list[i]
		c.entry(e.Name, e.Value, e.HasValue)
	}
	for _, name := range f.removed {
		c.entry(name, "", false)
	}
	return c.vector(from)
}

// stopHeaders writes the headers of a Stop: h sorted by name, then the ordered ones.
func (c *conn) stopHeaders(h http.Header, ordered *Fields) flatbuffers.UOffsetT {
	from := len(c.offs)
	c.keys = c.keys[:0]
	for k := range h {
		c.keys = append(c.keys, k)
	}
	slices.Sort(c.keys)
	for _, k := range c.keys {
		vs := h[k]
		if len(vs) == 0 {
			c.entry(k, "", false)
		}
		for _, v := range vs {
			c.entry(k, v, true)
		}
	}
	clear(c.keys)
	if ordered.Changed() {
		for i := range ordered.list {
			e := &ordered.list[i]
			c.entry(e.Name, e.Value, e.HasValue)
		}
		for _, name := range ordered.removed {
			c.entry(name, "", false)
		}
	}
	return c.vector(from)
}

func (c *conn) bytesVector(p []byte) flatbuffers.UOffsetT {
	if len(p) == 0 {
		return 0
	}
	return c.b.CreateByteVector(p)
}

func (c *conn) encodeReqReply() {
	b := c.builder()
	r := &c.req
	actionType, action := HTTPReqCall.ActionNONE, flatbuffers.UOffsetT(0)
	switch {
	case c.stop.Stopped():
		headers := c.stopHeaders(c.stop.header, &c.stop.ordered)
		body := c.bytesVector(c.stop.body)
		HTTPReqCall.StopStart(b)
		if body != 0 {
			HTTPReqCall.StopAddBody(b, body)
		}
		if headers != 0 {
			HTTPReqCall.StopAddHeaders(b, headers)
		}
		HTTPReqCall.StopAddStatus(b, uint16(c.stop.status))
		actionType, action = HTTPReqCall.ActionStop, HTTPReqCall.StopEnd(b)
	case r.Changed():
		var path flatbuffers.UOffsetT
		if r.pathSet {
			path = b.CreateString(r.path)
		}
		headers := c.changes(&r.header)
		args := c.changes(&r.args)
		respHeaders := c.changes(&r.respHeader)
		var body flatbuffers.UOffsetT
		if r.bodySet {
			body = c.bytesVector(r.newBody)
		}
		HTTPReqCall.RewriteStart(b)
		if r.pathSet {
			HTTPReqCall.RewriteAddPath(b, path)
		}
		if headers != 0 {
			HTTPReqCall.RewriteAddHeaders(b, headers)
		}
		if args != 0 {
			HTTPReqCall.RewriteAddArgs(b, args)
		}
		if respHeaders != 0 {
			HTTPReqCall.RewriteAddRespHeaders(b, respHeaders)
		}
		if body != 0 {
			HTTPReqCall.RewriteAddBody(b, body)
		}
		actionType, action = HTTPReqCall.ActionRewrite, HTTPReqCall.RewriteEnd(b)
	}
	HTTPReqCall.RespStart(b)
	HTTPReqCall.RespAddId(b, r.id)
	if action != 0 {
		HTTPReqCall.RespAddActionType(b, actionType)
		HTTPReqCall.RespAddAction(b, action)
	}
	b.Finish(HTTPReqCall.RespEnd(b))
}

func (c *conn) encodeRespReply() {
	b := c.builder()
	w := &c.resp
	var headers, body flatbuffers.UOffsetT
	if w.header.Changed() {
		headers = c.whole(&w.header)
	}
	if w.wrote {
		body = c.bytesVector(w.body)
	}
	HTTPRespCall.RespStart(b)
	HTTPRespCall.RespAddId(b, w.id)
	if w.status != 0 {
		HTTPRespCall.RespAddStatus(b, uint16(w.status))
	}
	if headers != 0 {
		HTTPRespCall.RespAddHeaders(b, headers)
	}
	if body != 0 {
		HTTPRespCall.RespAddBody(b, body)
	}
	b.Finish(HTTPRespCall.RespEnd(b))
}

func (c *conn) sendError(code Err.Code) error {
	b := c.builder()
	Err.RespStart(b)
	Err.RespAddCode(b, code)
	b.Finish(Err.RespEnd(b))
	return c.send(frame.TypeError)
}

// send writes the finished reply in c.b as one frame of type ty, header and payload in one write.
// A reply too large for a frame is replaced by a SERVICE_UNAVAILABLE error.
func (c *conn) send(ty byte) error {
	out, err := c.framed(c.b, ty, &c.scratch)
	if errors.Is(err, frame.ErrTooLarge) {
		c.s.log().Error("reply too large", "type", ty, "err", err)
		return c.sendError(Err.CodeSERVICE_UNAVAILABLE)
	}
	if err != nil {
		return err
	}
	if _, err := c.nc.Write(out); err != nil {
		c.broken = true
		return err
	}
	return nil
}

// framed returns the frame of a finished builder: in place when the builder has room for the
// header before its data (it usually has), else copied into *scratch.
func (c *conn) framed(b *flatbuffers.Builder, ty byte, scratch *[]byte) ([]byte, error) {
	head := int(b.Head())
	payload := b.Bytes[head:]
	var out []byte
	if head >= frame.HeaderLen {
		out = b.Bytes[head-frame.HeaderLen:]
	} else {
		*scratch = append(append((*scratch)[:0], 0, 0, 0, 0), payload...)
		out = *scratch
	}
	return out, frame.PutHeader(out, ty, len(payload))
}

// ---------------------------------------------------------------------------------------------
// Extra information: conn is the source of the call's Request or UpstreamResponse.

func (c *conn) setDeadline(ctx context.Context) error {
	if d, ok := ctx.Deadline(); ok {
		if err := c.nc.SetReadDeadline(d); err != nil {
			return err
		}
		c.deadlineSet = true
	}
	return nil
}

func (c *conn) question(kind ExtraInfo.Info, name string) error {
	qb := c.qb
	qb.Reset()
	var info flatbuffers.UOffsetT
	switch kind {
	case ExtraInfo.InfoVar:
		n := qb.CreateString(name)
		ExtraInfo.VarStart(qb)
		ExtraInfo.VarAddName(qb, n)
		info = ExtraInfo.VarEnd(qb)
	case ExtraInfo.InfoReqBody:
		ExtraInfo.ReqBodyStart(qb)
		info = ExtraInfo.ReqBodyEnd(qb)
	default:
		ExtraInfo.RespBodyStart(qb)
		info = ExtraInfo.RespBodyEnd(qb)
	}
	ExtraInfo.ReqStart(qb)
	ExtraInfo.ReqAddInfoType(qb, kind)
	ExtraInfo.ReqAddInfo(qb, info)
	qb.Finish(ExtraInfo.ReqEnd(qb))
	out, err := c.framed(qb, frame.TypeExtraInfo, &c.scratch)
	if err != nil {
		return err
	}
	c.qbuf = append(c.qbuf, out...)
	return nil
}

// flush writes the questions gathered in c.qbuf at once.
func (c *conn) flush() error {
	_, err := c.nc.Write(c.qbuf)
	c.qbuf = c.qbuf[:0]
	if err != nil {
		c.broken = true
		return fmt.Errorf("asking the gateway: %w", err)
	}
	return nil
}

// answer reads one extra-info answer; result is nil when absent.
func (c *conn) answer() (result []byte, err error) {
	ty, payload, err := c.answers.Next()
	if err != nil {
		c.broken = true
		return nil, fmt.Errorf("reading the gateway's answer: %w", err)
	}
	if ty != frame.TypeExtraInfo {
		c.broken = true
		return nil, fmt.Errorf("%w: answer of type %d to an extra-info question", errProtocol, ty)
	}
	defer func() {
		if r := recover(); r != nil {
			c.broken = true
			err = fmt.Errorf("%w: unreadable extra-info answer: %v", errProtocol, r)
		}
	}()
	var resp ExtraInfo.Resp
	resp.Init(payload, flatbufRoot(payload))
	if v := resp.ResultBytes(); v != nil {
		if c.answers.Detached() {
			return v, nil // a large body in a buffer of its own: no copy
		}
		return bytes.Clone(v), nil
	}
	return nil, nil
}

func (c *conn) vars(ctx context.Context, names []string, set func(string, []byte, bool)) error {
	if c.broken {
		return errProtocol
	}
	for _, n := range names {
		if err := c.question(ExtraInfo.InfoVar, n); err != nil {
			return err
		}
	}
	if err := c.setDeadline(ctx); err != nil {
		return err
	}
	if err := c.flush(); err != nil {
		return err
	}
	for _, n := range names {
		v, err := c.answer()
		if err != nil {
			return err
		}
		set(n, v, v != nil)
	}
	return nil
}

func (c *conn) body(ctx context.Context, resp bool) ([]byte, error) {
	if c.broken {
		return nil, errProtocol
	}
	kind := ExtraInfo.InfoReqBody
	if resp {
		kind = ExtraInfo.InfoRespBody
	}
	if err := c.question(kind, ""); err != nil {
		return nil, err
	}
	if err := c.setDeadline(ctx); err != nil {
		return nil, err
	}
	if err := c.flush(); err != nil {
		return nil, err
	}
	v, err := c.answer()
	if v == nil && err == nil {
		v = []byte{}
	}
	return v, err
}

// ---------------------------------------------------------------------------------------------

// Server serves plugin calls on a listener.
type Server struct {
	Registry    *Registry
	Confs       *ConfCache
	CallTimeout time.Duration // deadline of each call's context; 0: 55 s
	Logger      *slog.Logger  // nil: slog.Default()
}

func (s *Server) log() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

func (s *Server) callTimeout() time.Duration {
	if s.CallTimeout > 0 {
		return s.CallTimeout
	}
	return 55 * time.Second
}
