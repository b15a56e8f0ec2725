// Package plugin is the API for writing gateway plugins in Go: a plugin has a name, parses its
// conf once per prepare into a type of its own, and filters client requests (change the Request
// to rewrite it, or answer through the http.ResponseWriter to stop the chain) and upstream
// responses (change the UpstreamResponse the client gets).
//
// A minimal plugin:
//
//	type HelloConf struct{ Greeting string `json:"greeting"` }
//
//	type Hello struct{ plugin.Default[HelloConf] }
//
//	func (Hello) Name() string { return "hello" }
//
//	func (Hello) RequestFilter(ctx context.Context, conf HelloConf, w http.ResponseWriter, r *plugin.Request) error {
//		w.Header().Set("Content-Type", "text/plain")
//		_, err := w.Write([]byte(conf.Greeting))
//		return err
//	}
//
// Register it in a Registry and serve the registry with package runner; test it with package
// plugintest.
package plugin

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/ferrogate/ferrogate/sdk-go/internal/runtime"
)

// OrderedHeader returns headers for a stop answer that keep their order, for when the order or
// the exact entries matter (an http.Header has no order; its names are sent sorted). They are sent
// after w.Header()'s: Set/Add send values (the gateway's rule: the first entry of a name sets the
// header, later ones add), Del sends an entry without value (the gateway removes the header).
// Changing them stops the chain like writing to w. It returns nil when w is neither the runner's
// writer nor a plugintest.ResponseRecorder.
func OrderedHeader(w http.ResponseWriter) *Fields {
	switch o := w.(type) {
	case interface{ OrderedHeader() *runtime.Fields }: // the runner's writer
		return (*Fields)(o.OrderedHeader())
	case interface{ OrderedHeader() *Fields }: // plugintest.ResponseRecorder
		return o.OrderedHeader()
	}
	return nil
}

// ErrDuplicate is returned by Register for a name already registered.
var ErrDuplicate = runtime.ErrDuplicate

// Plugin is a plugin whose parsed conf has type C.
//
// The runner calls ParseConf once when the gateway prepares a conf (the `value` of the plugin's
// entry in the route's `conf` list, usually JSON), then RequestFilter or ResponseFilter for each
// call with that conf's token. ctx carries the call's deadline, a little under the gateway's
// timeout, and is cancelled when the call ends.
//
// A filter that returns an error or panics makes the runner answer the call with an error
// (SERVICE_UNAVAILABLE): the gateway answers 503, or skips the plugin when the route allows
// degradation. Filters run concurrently for different connections: they must not change
// shared state without synchronisation. Embed Default to get the filters you do not need.
type Plugin[C any] interface {
	// Name is the name routes use in `{"name": ..., "value": ...}`; 1 to 128 bytes.
	Name() string
	// ParseConf parses a conf value; an error fails the prepare (the gateway answers 503).
	ParseConf(value []byte) (C, error)
	// RequestFilter filters a request call. Writing to w (a status, a header or the body)
	// stops the chain and answers the client without contacting the upstream; otherwise the
	// changes made to r are sent upstream and the next plugin of the chain runs.
	RequestFilter(ctx context.Context, conf C, w http.ResponseWriter, r *Request) error
	// ResponseFilter filters a response call: w holds the upstream's status and headers, and
	// changes made to it go to the client.
	ResponseFilter(ctx context.Context, conf C, w *UpstreamResponse) error
}

// Default is the type to embed in a plugin: it parses the conf as JSON into C (an empty value
// gives the zero C) and has filters that do nothing. Define your own methods to replace them.
type Default[C any] struct{}

// ParseConf decodes value as JSON into a C; unknown fields are ignored.
func (Default[C]) ParseConf(value []byte) (C, error) {
	var conf C
	if len(value) == 0 {
		return conf, nil
	}
	err := json.Unmarshal(value, &conf)
	return conf, err
}

// RequestFilter does nothing.
func (Default[C]) RequestFilter(context.Context, C, http.ResponseWriter, *Request) error {
	return nil
}

// ResponseFilter does nothing.
func (Default[C]) ResponseFilter(context.Context, C, *UpstreamResponse) error { return nil }

// Registry is the set of plugins a runner serves. The zero value is empty and ready to use; it
// is safe for concurrent use.
type Registry struct {
	r runtime.Registry
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{} }

// Names returns the registered plugin names in registration order.
func (g *Registry) Names() []string { return g.r.Names() }

func init() {
	// lets package runner reach the registry without a public accessor
	runtime.RegistryOf = func(v any) *runtime.Registry { return &v.(*Registry).r }
}

// Register adds p to g. It fails when p's name is empty, longer than 128 bytes, or already
// registered (the error wraps ErrDuplicate).
func Register[C any](g *Registry, p Plugin[C]) error {
	return g.r.Add(runtime.Entry{
		Name: p.Name(),
		Parse: func(value []byte) (runtime.Bound, error) {
			conf, err := p.ParseConf(value)
			if err != nil {
				return nil, err
			}
			return &bound[C]{p: p, conf: conf}, nil
		},
	})
}

// MustRegister is Register that panics on error, for registrations in main.
func MustRegister[C any](g *Registry, p Plugin[C]) {
	if err := Register(g, p); err != nil {
		panic(err)
	}
}

type bound[C any] struct {
	p    Plugin[C]
	conf C
}

func (b *bound[C]) Request(ctx context.Context, w http.ResponseWriter, r *runtime.Request) error {
	return b.p.RequestFilter(ctx, b.conf, w, (*Request)(r))
}

func (b *bound[C]) Response(ctx context.Context, w *runtime.UpstreamResponse) error {
	return b.p.ResponseFilter(ctx, b.conf, (*UpstreamResponse)(w))
}
