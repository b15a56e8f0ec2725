package runtime

import (
	"context"
	"net/netip"
)

// Local holds the extra information of a request or response built without a gateway.
type Local struct {
	Vars     map[string]string
	Body     []byte
	HaveBody bool
}

func (l *Local) vars(_ context.Context, names []string, set func(string, []byte, bool)) error {
	for _, n := range names {
		v, ok := l.Vars[n]
		if !ok {
			set(n, nil, false)
			continue
		}
		set(n, []byte(v), true)
	}
	return nil
}

func (l *Local) body(context.Context, bool) ([]byte, error) {
	if !l.HaveBody {
		return []byte{}, nil
	}
	return l.Body, nil
}

// NewLocalRequest returns a request that does not come from a gateway (unit tests).
func NewLocalRequest(ctx context.Context, id uint32, srcIP netip.Addr, method, path string, args, headers []Field, l *Local) *Request {
	if l == nil {
		l = &Local{}
	}
	r := newLocalRequest(id, srcIP, method, path, args, headers, l)
	r.extra.ctx = ctx
	return r
}

// NewLocalUpstreamResponse returns an upstream response that does not come from a gateway (unit
// tests).
func NewLocalUpstreamResponse(ctx context.Context, id uint32, status int, headers []Field, l *Local) *UpstreamResponse {
	if l == nil {
		l = &Local{}
	}
	w := newLocalUpstreamResponse(id, status, headers, l)
	w.extra.ctx = ctx
	return w
}

// NewStopWriter returns an empty StopWriter.
func NewStopWriter() *StopWriter { return &StopWriter{} }
