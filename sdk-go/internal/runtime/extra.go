package runtime

import (
	"context"
	"errors"
)

// ErrNoGateway is returned for extra information when there is no gateway to ask (a request
// built for a unit test without that variable or body).
var ErrNoGateway = errors.New("no gateway to ask for extra information")

// source answers extra-information questions: the connection to the gateway, or the values of a
// unit test.
type source interface {
	// vars asks for the values of names (all questions first, then the answers in order) and
	// calls set for each answer.
	vars(ctx context.Context, names []string, set func(name string, value []byte, ok bool)) error
	// body returns the request body (resp false) or the upstream response body (resp true).
	body(ctx context.Context, resp bool) ([]byte, error)
}

type varEntry struct {
	name  string
	value []byte
	ok    bool
}

// extra is the per-call cache of extra information, shared by Request and UpstreamResponse.
type extra struct {
	ctx      context.Context
	src      source
	vars     []varEntry
	missing  []string
	body     []byte
	haveBody bool
	resp     bool
	setFn    func(name string, value []byte, ok bool)
}

func (x *extra) reset(ctx context.Context, src source, resp bool) {
	x.ctx, x.src, x.resp = ctx, src, resp
	clear(x.vars)
	x.vars = x.vars[:0]
	x.body, x.haveBody = nil, false
	if x.setFn == nil {
		x.setFn = x.set
	}
}

func (x *extra) set(name string, value []byte, ok bool) {
	x.vars = append(x.vars, varEntry{name: name, value: value, ok: ok})
}

func (x *extra) cached(name string) (*varEntry, bool) {
	for i := range x.vars {
		if x.vars[i].name == name {
			return &x.vars[i], true
		}
	}
	return nil, false
}

// Var returns the value of a gateway variable (an nginx/APISIX variable such as remote_addr,
// route_id, or one of the gateway's own), asking the gateway once per call and caching the
// answer. ok is false when the gateway has no value for it.
func (x *extra) Var(name string) (value []byte, ok bool, err error) {
	if e, hit := x.cached(name); hit {
		return e.value, e.ok, nil
	}
	if err := x.FetchVars(name); err != nil {
		return nil, false, err
	}
	e, _ := x.cached(name)
	return e.value, e.ok, nil
}

// FetchVars asks the gateway for several variables at once: the questions go out back to back
// and the answers are read in order, one round trip instead of one per name. Later calls to Var
// for these names are answered from the cache.
func (x *extra) FetchVars(names ...string) error {
	x.missing = x.missing[:0]
	for _, n := range names {
		if _, hit := x.cached(n); !hit && !contains(x.missing, n) {
			x.missing = append(x.missing, n)
		}
	}
	if len(x.missing) == 0 {
		return nil
	}
	if x.src == nil {
		return ErrNoGateway
	}
	return x.src.vars(x.ctx, x.missing, x.setFn)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func (x *extra) fetchBody() ([]byte, error) {
	if x.haveBody {
		return x.body, nil
	}
	if x.src == nil {
		return nil, ErrNoGateway
	}
	b, err := x.src.body(x.ctx, x.resp)
	if err != nil {
		return nil, err
	}
	x.body, x.haveBody = b, true
	return b, nil
}
