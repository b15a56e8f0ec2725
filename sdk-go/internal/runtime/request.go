package runtime

import (
	"net/netip"

	"github.com/ferrogate/ferrogate/sdk-go/internal/a6/A6"
	"github.com/ferrogate/ferrogate/sdk-go/internal/a6/A6/HTTPReqCall"
)

// Request is the client request in a request call (ext-plugin-pre-req, ext-plugin-post-req):
// package plugin's Request, which documents its methods.
type Request struct {
	extra

	fb       HTTPReqCall.Req
	fromWire bool

	id        uint32
	srcIP     netip.Addr
	method    string
	path      string
	pathReady bool
	pathSet   bool
	newBody   []byte
	bodySet   bool

	header     Fields
	args       Fields
	respHeader Fields

	loadHeaderFn, loadArgsFn func(*Fields)
}

func (r *Request) initWire(buf []byte) {
	r.fb.Init(buf, flatbufRoot(buf))
	r.fromWire = true
	r.id = r.fb.Id()
	r.srcIP = netip.Addr{}
	r.method = ""
	r.path, r.pathReady, r.pathSet = "", false, false
	r.newBody, r.bodySet = nil, false
	if r.loadHeaderFn == nil {
		r.loadHeaderFn, r.loadArgsFn = r.loadHeaders, r.loadArgs
	}
	r.header.reset(true, r.loadHeaderFn)
	r.args.reset(false, r.loadArgsFn)
	r.respHeader.reset(true, nil)
}

// newLocalRequest returns a request that does not come from a gateway (see NewLocalRequest).
func newLocalRequest(id uint32, srcIP netip.Addr, method, path string, args, headers []Field, src source) *Request {
	r := &Request{id: id, srcIP: srcIP, method: method, path: path, pathReady: true}
	r.header.reset(true, nil)
	r.args.reset(false, nil)
	r.respHeader.reset(true, nil)
	for _, f := range headers {
		r.header.appendRaw(lower(f.Name), f.Value, f.HasValue)
	}
	for _, f := range args {
		r.args.appendRaw(f.Name, f.Value, f.HasValue)
	}
	r.extra.reset(nil, src, false)
	return r
}

func (r *Request) loadHeaders(f *Fields) { loadEntries(f, r.fb.HeadersLength(), r.fb.Headers) }
func (r *Request) loadArgs(f *Fields)    { loadEntries(f, r.fb.ArgsLength(), r.fb.Args) }

func loadEntries(f *Fields, n int, at func(*A6.TextEntry, int) bool) {
	var e A6.TextEntry
	for i := 0; i < n; i++ {
		if at(&e, i) {
			v := e.Value()
			f.appendRaw(string(e.Name()), string(v), v != nil)
		}
	}
}

// ID returns the gateway's id of this call.
func (r *Request) ID() uint32 { return r.id }

// SrcIP returns the client's address (the zero Addr when the gateway sent none).
func (r *Request) SrcIP() netip.Addr {
	if r.fromWire && !r.srcIP.IsValid() {
		r.srcIP, _ = netip.AddrFromSlice(r.fb.SrcIpBytes()) // 4 or 16 bytes; anything else: invalid
	}
	return r.srcIP
}

// Method returns the HTTP method in upper case (GET, POST, ...).
func (r *Request) Method() string {
	if r.fromWire && r.method == "" {
		r.method = A6.EnumNamesMethod[r.fb.Method()]
	}
	return r.method
}

// Path returns the request path: decoded, normalised, without the query; the path as rewritten
// by an earlier plugin or route, and by SetPath.
func (r *Request) Path() string {
	if !r.pathReady {
		r.path, r.pathReady = string(r.fb.Path()), true
	}
	return r.path
}

// SetPath rewrites the path sent upstream (the query is kept; the gateway percent-encodes the
// path so that it cannot smuggle a query).
func (r *Request) SetPath(path string) {
	r.path, r.pathReady, r.pathSet = path, true, true
}

// Header returns the request headers (names in lower case, one entry per value). Changes go
// upstream: Set replaces a header (the gateway keeps only the last value of a name), Del removes it;
// setting "host" also changes the upstream Host.
func (r *Request) Header() *Fields { return &r.header }

// Args returns the query arguments in order (`?flag` is an entry without value). Changes go
// upstream: Set replaces every value of a name, Add appends one, Del removes the name.
func (r *Request) Args() *Fields { return &r.args }

// RespHeader returns headers to add to the client's response, whatever answers it (Set and Add
// send values, Del removes the header). The gateway skips hop-by-hop and entity headers such as
// connection, content-length, content-type, location and server.
func (r *Request) RespHeader() *Fields { return &r.respHeader }

// Body returns the request body, asking the gateway for it once per call.
func (r *Request) Body() ([]byte, error) {
	if r.bodySet {
		return r.newBody, nil
	}
	return r.fetchBody()
}

// SetBody replaces the request body sent upstream (an empty body leaves it unchanged).
func (r *Request) SetBody(body []byte) { r.newBody, r.bodySet = body, true }

// PathChanged tells whether a plugin called SetPath.
func (r *Request) PathChanged() bool { return r.pathSet }

// NewBody returns the body set with SetBody and whether it was set.
func (r *Request) NewBody() ([]byte, bool) { return r.newBody, r.bodySet }

// Changed tells whether a plugin rewrote anything.
func (r *Request) Changed() bool {
	return r.pathSet || (r.bodySet && len(r.newBody) > 0) || r.header.Changed() || r.args.Changed() || r.respHeader.Changed()
}
