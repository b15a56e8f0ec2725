// Package plugintest is for unit-testing plugins without a gateway, in the manner of
// net/http/httptest: build a Request or UpstreamResponse as the gateway would send it, run the
// filter (with a ResponseRecorder for a request filter), then check what the plugin answered or
// changed.
//
//	req := plugintest.NewRequest("GET", "/hello?name=x", plugintest.Header("authorization", "t"))
//	rec := plugintest.NewRecorder()
//	err := plugintest.RunRequest(Hello{}, `{"greeting":"hi"}`, rec, req)
//	// rec.Stopped(), rec.Code, rec.Body.String(); req.Path(), req.Header().Get("x-a"), ...
package plugintest

import (
	"bytes"
	"context"
	"net/http"
	"net/netip"
	"net/url"
	"strings"

	"github.com/ferrogate/ferrogate/sdk-go/internal/runtime"
	"github.com/ferrogate/ferrogate/sdk-go/plugin"
)

type config struct {
	headers []runtime.Field
	local   runtime.Local
	srcIP   netip.Addr
	id      uint32
}

// Option sets up a Request or UpstreamResponse.
type Option func(*config)

// Header adds a header (one entry per call, names lower-cased as the gateway sends them).
func Header(name, value string) Option {
	return func(c *config) {
		c.headers = append(c.headers, runtime.Field{Name: strings.ToLower(name), Value: value, HasValue: true})
	}
}

// Var gives a gateway variable a value (Var on the request or upstream response returns it;
// variables not given have no value).
func Var(name, value string) Option {
	return func(c *config) {
		if c.local.Vars == nil {
			c.local.Vars = map[string]string{}
		}
		c.local.Vars[name] = value
	}
}

// Body sets the request body (NewRequest) or the upstream's body (NewUpstreamResponse).
func Body(body []byte) Option {
	return func(c *config) { c.local.Body, c.local.HaveBody = body, true }
}

// SrcIP sets the client address (default 127.0.0.1); it panics when ip does not parse.
func SrcIP(ip string) Option {
	return func(c *config) { c.srcIP = netip.MustParseAddr(ip) }
}

// ID sets the call id (default 1).
func ID(id uint32) Option {
	return func(c *config) { c.id = id }
}

func build(opts []Option) *config {
	c := &config{srcIP: netip.AddrFrom4([4]byte{127, 0, 0, 1}), id: 1}
	for _, o := range opts {
		o(c)
	}
	return c
}

// NewRequest returns a request as the gateway sends it: target is the path with an optional
// query ("/p?a=1&flag"); path and arguments are percent-decoded, `flag` without "=" is an
// argument without value. It panics when the query does not decode.
func NewRequest(method, target string, opts ...Option) *plugin.Request {
	c := build(opts)
	path, query, _ := strings.Cut(target, "?")
	if p, err := url.PathUnescape(path); err == nil {
		path = p
	}
	var args []runtime.Field
	for part := range strings.SplitSeq(query, "&") {
		if part == "" {
			continue
		}
		k, v, hasValue := strings.Cut(part, "=")
		k, err := url.QueryUnescape(k)
		if err != nil {
			panic(err)
		}
		if v, err = url.QueryUnescape(v); err != nil {
			panic(err)
		}
		args = append(args, runtime.Field{Name: k, Value: v, HasValue: hasValue})
	}
	r := runtime.NewLocalRequest(context.Background(), c.id, c.srcIP, strings.ToUpper(method), path, args, c.headers, &c.local)
	return (*plugin.Request)(r)
}

// NewUpstreamResponse returns an upstream response as the gateway sends it in a response call.
func NewUpstreamResponse(status int, opts ...Option) *plugin.UpstreamResponse {
	c := build(opts)
	w := runtime.NewLocalUpstreamResponse(context.Background(), c.id, status, c.headers, &c.local)
	return (*plugin.UpstreamResponse)(w)
}

// NewResponse is the former name of NewUpstreamResponse.
//
// Deprecated: use NewUpstreamResponse.
func NewResponse(status int, opts ...Option) *plugin.UpstreamResponse {
	return NewUpstreamResponse(status, opts...)
}

// ResponseRecorder is the http.ResponseWriter of a request filter under test: it records the
// answer that would stop the chain.
type ResponseRecorder struct {
	Code      int         // status written; 200 when only the body or headers were written
	HeaderMap http.Header // headers written
	Body      bytes.Buffer
	Ordered   plugin.Fields // headers written through plugin.OrderedHeader
	wrote     bool
}

// OrderedHeader returns the recorder's ordered headers (see plugin.OrderedHeader).
func (rw *ResponseRecorder) OrderedHeader() *plugin.Fields { return &rw.Ordered }

// NewRecorder returns an empty recorder.
func NewRecorder() *ResponseRecorder {
	return &ResponseRecorder{HeaderMap: http.Header{}}
}

// Header returns the answer's headers.
func (rw *ResponseRecorder) Header() http.Header {
	if rw.HeaderMap == nil {
		rw.HeaderMap = http.Header{}
	}
	return rw.HeaderMap
}

// Write appends to the answer's body.
func (rw *ResponseRecorder) Write(p []byte) (int, error) {
	if rw.Code == 0 {
		rw.Code = http.StatusOK
	}
	rw.wrote = true
	return rw.Body.Write(p)
}

// WriteHeader sets the answer's status (the first call wins).
func (rw *ResponseRecorder) WriteHeader(code int) {
	if !rw.wrote || rw.Code == 0 {
		rw.Code = code
	}
	rw.wrote = true
}

// Stopped tells whether the plugin answered (so the gateway would not contact the upstream),
// by the runner's rule: a status, a body or a header was written.
func (rw *ResponseRecorder) Stopped() bool {
	stopped := rw.wrote || len(rw.HeaderMap) > 0 || rw.Ordered.Changed()
	if stopped && rw.Code == 0 {
		rw.Code = http.StatusOK
	}
	return stopped
}

// RunRequest parses conf with p as a prepare would, then runs p's request filter on req with rec
// as the writer and a context with the runner's default deadline.
func RunRequest[C any](p plugin.Plugin[C], conf string, rec http.ResponseWriter, req *plugin.Request) error {
	c, err := p.ParseConf([]byte(conf))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), defaultDeadline)
	defer cancel()
	return p.RequestFilter(ctx, c, rec, req)
}

// RunResponse parses conf with p as a prepare would, then runs p's response filter on w.
func RunResponse[C any](p plugin.Plugin[C], conf string, w *plugin.UpstreamResponse) error {
	c, err := p.ParseConf([]byte(conf))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), defaultDeadline)
	defer cancel()
	return p.ResponseFilter(ctx, c, w)
}

const defaultDeadline = 55e9 // the runner's default call deadline (55 s)
