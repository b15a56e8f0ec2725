package plugin

import (
	"net/netip"

	"github.com/ferrogate/ferrogate/sdk-go/internal/runtime"
)

// Request is the client request in a request call (ext-plugin-pre-req, ext-plugin-post-req), as
// the gateway describes it. A plugin reads it and changes it: path, headers, query arguments and
// body go upstream rewritten, response headers are added to the client's response. A later plugin
// of the same chain sees the changes of the earlier ones.
//
// A Request is valid only during the call; do not keep it or use it from other goroutines.
type Request runtime.Request

// rt is the runner's view of r (the same memory: no copy).
func (r *Request) rt() *runtime.Request { return (*runtime.Request)(r) }

// ID returns the gateway's id of this call.
func (r *Request) ID() uint32 { return r.rt().ID() }

// SrcIP returns the client's address (the zero Addr when the gateway sent none).
func (r *Request) SrcIP() netip.Addr { return r.rt().SrcIP() }

// Method returns the HTTP method in upper case (GET, POST, ...).
func (r *Request) Method() string { return r.rt().Method() }

// Path returns the request path: decoded, normalised, without the query; the path as rewritten
// by an earlier plugin or route, and by SetPath.
func (r *Request) Path() string { return r.rt().Path() }

// SetPath rewrites the path sent upstream (the query is kept; the gateway percent-encodes the
// path so that it cannot smuggle a query).
func (r *Request) SetPath(path string) { r.rt().SetPath(path) }

// Header returns the request headers (names in lower case, one entry per value). Changes go
// upstream: Set replaces a header (the gateway keeps only the last value of a name), Del removes
// it; setting "host" also changes the upstream Host.
func (r *Request) Header() *Fields { return (*Fields)(r.rt().Header()) }

// Args returns the query arguments in order (`?flag` is an entry without value). Changes go
// upstream: Set replaces every value of a name, Add appends one, Del removes the name.
func (r *Request) Args() *Fields { return (*Fields)(r.rt().Args()) }

// RespHeader returns headers to add to the client's response, whatever answers it (Set and Add
// send values, Del removes the header). The gateway skips hop-by-hop and entity headers such as
// connection, content-length, content-type, location and server.
func (r *Request) RespHeader() *Fields { return (*Fields)(r.rt().RespHeader()) }

// Body returns the request body, asking the gateway for it once per call; after SetBody, the
// body set.
func (r *Request) Body() ([]byte, error) { return r.rt().Body() }

// SetBody replaces the request body sent upstream (an empty body leaves it unchanged).
func (r *Request) SetBody(body []byte) { r.rt().SetBody(body) }

// Var returns the value of a gateway variable (an nginx/APISIX variable such as remote_addr,
// route_id, or one of the gateway's own), asking the gateway once per call and caching the
// answer. ok is false when the gateway has no value for it.
func (r *Request) Var(name string) (value []byte, ok bool, err error) { return r.rt().Var(name) }

// FetchVars asks the gateway for several variables at once: the questions go out back to back
// and the answers are read in order, one round trip instead of one per name. Later calls to Var
// for these names are answered from the cache.
func (r *Request) FetchVars(names ...string) error { return r.rt().FetchVars(names...) }

// PathChanged tells whether a plugin called SetPath.
func (r *Request) PathChanged() bool { return r.rt().PathChanged() }

// NewBody returns the body set with SetBody and whether it was set.
func (r *Request) NewBody() ([]byte, bool) { return r.rt().NewBody() }

// Changed tells whether a plugin rewrote anything (path, body, headers, arguments or response
// headers).
func (r *Request) Changed() bool { return r.rt().Changed() }
