package plugin

import "github.com/ferrogate/ferrogate/sdk-go/internal/runtime"

// UpstreamResponse is the upstream's response in a response call (ext-plugin-post-resp). A
// plugin reads it and changes the status, the headers and the body the client gets. The plugins
// of a chain run in order and each sees the changes of the earlier ones.
//
// An UpstreamResponse is valid only during the call; do not keep it or use it from other
// goroutines.
type UpstreamResponse runtime.UpstreamResponse

// Response is the former name of UpstreamResponse.
//
// Deprecated: use UpstreamResponse. (A request filter answers the client, and so stops the
// chain, through its http.ResponseWriter.)
type Response = UpstreamResponse

// rt is the runner's view of w (the same memory: no copy).
func (w *UpstreamResponse) rt() *runtime.UpstreamResponse { return (*runtime.UpstreamResponse)(w) }

// ID returns the gateway's id of this call.
func (w *UpstreamResponse) ID() uint32 { return w.rt().ID() }

// UpstreamStatus returns the status the upstream answered.
func (w *UpstreamResponse) UpstreamStatus() int { return w.rt().UpstreamStatus() }

// StatusCode returns the status the client will get: the one set with WriteHeader, else the
// upstream's.
func (w *UpstreamResponse) StatusCode() int { return w.rt().StatusCode() }

// WriteHeader sets the status the client gets (the last call wins).
func (w *UpstreamResponse) WriteHeader(status int) { w.rt().WriteHeader(status) }

// Header returns the upstream's response headers. When a plugin changes them the runner sends
// the whole resulting list, which replaces the upstream's headers (APISIX's rule); a header
// removed with Del is also sent as an entry without value.
func (w *UpstreamResponse) Header() *Fields { return (*Fields)(w.rt().Header()) }

// Write appends to the body the client gets instead of the upstream's (an empty body leaves the
// upstream's).
func (w *UpstreamResponse) Write(p []byte) (int, error) { return w.rt().Write(p) }

// WriteString is Write for a string.
func (w *UpstreamResponse) WriteString(s string) (int, error) { return w.rt().WriteString(s) }

// ReadBody returns the upstream's response body, asking the gateway for it once per call.
func (w *UpstreamResponse) ReadBody() ([]byte, error) { return w.rt().ReadBody() }

// Var returns the value of a gateway variable (an nginx/APISIX variable such as remote_addr,
// route_id, or one of the gateway's own), asking the gateway once per call and caching the
// answer. ok is false when the gateway has no value for it.
func (w *UpstreamResponse) Var(name string) (value []byte, ok bool, err error) {
	return w.rt().Var(name)
}

// FetchVars asks the gateway for several variables at once: the questions go out back to back
// and the answers are read in order, one round trip instead of one per name. Later calls to Var
// for these names are answered from the cache.
func (w *UpstreamResponse) FetchVars(names ...string) error { return w.rt().FetchVars(names...) }

// NewBody returns what the plugins wrote and whether they wrote at all.
func (w *UpstreamResponse) NewBody() ([]byte, bool) { return w.rt().NewBody() }

// NewStatus returns the status set with WriteHeader, 0 when none.
func (w *UpstreamResponse) NewStatus() int { return w.rt().NewStatus() }
