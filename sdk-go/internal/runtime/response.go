package runtime

import (
	"github.com/ferrogate/ferrogate/sdk-go/internal/a6/A6/HTTPRespCall"
	flatbuffers "github.com/google/flatbuffers/go"
)

// UpstreamResponse is the upstream's response in a response call (ext-plugin-post-resp): package
// plugin's UpstreamResponse, which documents its methods.
type UpstreamResponse struct {
	extra

	fb       HTTPRespCall.Req
	fromWire bool

	id       uint32
	upstream int
	status   int
	body     []byte
	wrote    bool

	header       Fields
	loadHeaderFn func(*Fields)
}

func flatbufRoot(buf []byte) flatbuffers.UOffsetT { return flatbuffers.GetUOffsetT(buf) }

func (w *UpstreamResponse) initWire(buf []byte) {
	w.fb.Init(buf, flatbufRoot(buf))
	w.fromWire = true
	w.id = w.fb.Id()
	w.upstream = int(w.fb.Status())
	w.status = 0
	w.body, w.wrote = trim(w.body), false
	if w.loadHeaderFn == nil {
		w.loadHeaderFn = w.loadHeaders
	}
	w.header.reset(true, w.loadHeaderFn)
}

func newLocalUpstreamResponse(id uint32, status int, headers []Field, src source) *UpstreamResponse {
	w := &UpstreamResponse{id: id, upstream: status}
	w.header.reset(true, nil)
	for _, f := range headers {
		w.header.appendRaw(f.Name, f.Value, f.HasValue)
	}
	w.extra.reset(nil, src, true)
	return w
}

func (w *UpstreamResponse) loadHeaders(f *Fields) { loadEntries(f, w.fb.HeadersLength(), w.fb.Headers) }

// ID returns the gateway's id of this call.
func (w *UpstreamResponse) ID() uint32 { return w.id }

// UpstreamStatus returns the status the upstream answered.
func (w *UpstreamResponse) UpstreamStatus() int { return w.upstream }

// StatusCode returns the status the client will get: the one set with WriteHeader, else the
// upstream's.
func (w *UpstreamResponse) StatusCode() int {
	if w.status != 0 {
		return w.status
	}
	return w.upstream
}

// WriteHeader sets the status the client gets (the last call wins).
func (w *UpstreamResponse) WriteHeader(status int) { w.status = status }

// Header returns the upstream's response headers. When a plugin changes them the runner sends the
// whole resulting list, which replaces the upstream's headers (APISIX's rule); a header removed
// with Del is also sent as an entry without value.
func (w *UpstreamResponse) Header() *Fields { return &w.header }

// Write appends to the body the client gets instead of the upstream's (an empty body leaves the
// upstream's).
func (w *UpstreamResponse) Write(p []byte) (int, error) {
	w.body = append(w.body, p...)
	w.wrote = true
	return len(p), nil
}

// WriteString is Write for a string.
func (w *UpstreamResponse) WriteString(s string) (int, error) {
	w.body = append(w.body, s...)
	w.wrote = true
	return len(s), nil
}

// ReadBody returns the upstream's response body, asking the gateway for it once per call.
func (w *UpstreamResponse) ReadBody() ([]byte, error) { return w.fetchBody() }

// NewBody returns what the plugins wrote and whether they wrote at all.
func (w *UpstreamResponse) NewBody() ([]byte, bool) { return w.body, w.wrote }

// NewStatus returns the status set with WriteHeader, 0 when none.
func (w *UpstreamResponse) NewStatus() int { return w.status }
