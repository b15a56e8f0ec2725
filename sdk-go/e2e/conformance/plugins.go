// Package conformance holds the plugins of the conformance runner, the set every SDK ships with
// the same names and semantics (tests/conformance/PLUGINS.md at the repository root).
package conformance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/ferrogate/ferrogate/sdk-go/plugin"
)

// Register adds the conformance plugins to reg.
func Register(reg *plugin.Registry) error {
	return errors.Join(
		plugin.Register(reg, Stop{}),
		plugin.Register(reg, Rewrite{}),
		plugin.Register(reg, Echo{}),
		plugin.Register(reg, Sleep{}),
		plugin.Register(reg, Fail{}),
		plugin.Register(reg, Response{}),
	)
}

// Pair is a [name, value] pair; Value nil is JSON null (an entry without value).
type Pair struct {
	Name  string
	Value *string
}

// UnmarshalJSON reads a [name, value-or-null] array.
func (p *Pair) UnmarshalJSON(b []byte) error {
	var raw []*string
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	if len(raw) != 2 || raw[0] == nil {
		return fmt.Errorf("pair: want [name, value or null], got %s", b)
	}
	p.Name, p.Value = *raw[0], raw[1]
	return nil
}

// MarshalJSON writes a [name, value-or-null] array.
func (p Pair) MarshalJSON() ([]byte, error) { return json.Marshal([]*string{&p.Name, p.Value}) }

// apply writes pairs to f as protocol entries: the first occurrence of a name replaces it, later
// ones add to it, null removes it.
func apply(f *plugin.Fields, pairs []Pair) {
	seen := map[string]bool{}
	for _, p := range pairs {
		switch {
		case p.Value == nil:
			f.Del(p.Name)
		case seen[p.Name]:
			f.Add(p.Name, *p.Value)
		default:
			f.Set(p.Name, *p.Value)
		}
		seen[p.Name] = true
	}
}

// StopConf is conf-stop's conf.
type StopConf struct {
	Status  int     `json:"status"`
	Headers []Pair  `json:"headers"`
	Body    *string `json:"body"`
}

// Stop is conf-stop: answer with the conf's status (default 200), headers and body.
type Stop struct{ plugin.Default[StopConf] }

func (Stop) Name() string { return "conf-stop" }

func (Stop) RequestFilter(_ context.Context, conf StopConf, w http.ResponseWriter, _ *plugin.Request) error {
	h := plugin.OrderedHeader(w) // the pairs in order, as the protocol carries them
	for _, p := range conf.Headers {
		if p.Value == nil {
			h.Del(p.Name)
		} else {
			h.Add(p.Name, *p.Value)
		}
	}
	status := conf.Status
	if status == 0 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	if conf.Body != nil {
		_, err := w.Write([]byte(*conf.Body))
		return err
	}
	return nil
}

// RewriteConf is conf-rewrite's conf.
type RewriteConf struct {
	Path        *string `json:"path"`
	Headers     []Pair  `json:"headers"`
	Args        []Pair  `json:"args"`
	Body        *string `json:"body"`
	RespHeaders []Pair  `json:"resp_headers"`
}

// Rewrite is conf-rewrite: rewrite with exactly the conf's fields.
type Rewrite struct{ plugin.Default[RewriteConf] }

func (Rewrite) Name() string { return "conf-rewrite" }

func (Rewrite) RequestFilter(_ context.Context, conf RewriteConf, _ http.ResponseWriter, r *plugin.Request) error {
	if conf.Path != nil {
		r.SetPath(*conf.Path)
	}
	apply(r.Header(), conf.Headers)
	apply(r.Args(), conf.Args)
	apply(r.RespHeader(), conf.RespHeaders)
	if conf.Body != nil {
		r.SetBody([]byte(*conf.Body))
	}
	return nil
}

// EchoConf is conf-echo's conf.
type EchoConf struct {
	Vars []string `json:"vars"`
	Body bool     `json:"body"`
}

// Echo is conf-echo: answer 200 with a JSON description of the request as the plugin sees it.
type Echo struct{ plugin.Default[EchoConf] }

func (Echo) Name() string { return "conf-echo" }

type echoed struct {
	Method  string             `json:"method"`
	Path    string             `json:"path"`
	SrcIP   string             `json:"src_ip"`
	Args    []Pair             `json:"args"`
	Headers []Pair             `json:"headers"`
	Vars    map[string]*string `json:"vars"`
	Body    *string            `json:"body"`
}

func pairs(fields []plugin.Field) []Pair {
	out := make([]Pair, 0, len(fields))
	for _, f := range fields {
		p := Pair{Name: f.Name}
		if f.HasValue {
			v := f.Value
			p.Value = &v
		}
		out = append(out, p)
	}
	return out
}

func (Echo) RequestFilter(_ context.Context, conf EchoConf, w http.ResponseWriter, r *plugin.Request) error {
	e := echoed{
		Method: r.Method(), Path: r.Path(),
		Args: pairs(r.Args().All()), Headers: pairs(r.Header().All()),
		Vars: map[string]*string{},
	}
	if ip := r.SrcIP(); ip.IsValid() {
		e.SrcIP = ip.String()
	}
	// all the questions at once: one round trip
	if err := r.FetchVars(conf.Vars...); err != nil {
		return err
	}
	for _, name := range conf.Vars {
		v, ok, err := r.Var(name)
		if err != nil {
			return err
		}
		if ok {
			s := string(v) // json.Marshal writes invalid UTF-8 as U+FFFD
			e.Vars[name] = &s
		} else {
			e.Vars[name] = nil
		}
	}
	if conf.Body {
		b, err := r.Body()
		if err != nil {
			return err
		}
		s := string(b)
		e.Body = &s
	}
	out, err := json.Marshal(e)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, err = w.Write(out)
	return err
}

// SleepConf is conf-sleep's conf.
type SleepConf struct {
	MS int `json:"ms"`
}

// Sleep is conf-sleep: wait, then continue unchanged (it gives up when the call's context ends).
type Sleep struct{ plugin.Default[SleepConf] }

func (Sleep) Name() string { return "conf-sleep" }

func (Sleep) RequestFilter(ctx context.Context, conf SleepConf, _ http.ResponseWriter, _ *plugin.Request) error {
	t := time.NewTimer(time.Duration(conf.MS) * time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// FailConf is conf-fail's conf: {"panic": true} panics instead of returning an error.
type FailConf struct {
	Panic bool `json:"panic"`
}

// Fail is conf-fail: the filter fails (an error, or a panic), so the runner answers with an error.
type Fail struct{ plugin.Default[FailConf] }

func (Fail) Name() string { return "conf-fail" }

// ErrFail is the error conf-fail returns.
var ErrFail = errors.New("conf-fail fails on purpose")

func (Fail) RequestFilter(_ context.Context, conf FailConf, _ http.ResponseWriter, _ *plugin.Request) error {
	if conf.Panic {
		panic(ErrFail)
	}
	return ErrFail
}

// ResponseConf is conf-response's conf.
type ResponseConf struct {
	Status     int     `json:"status"`
	Headers    []Pair  `json:"headers"`
	Body       *string `json:"body"`
	BodyPrefix *string `json:"body_prefix"`
}

// Response is conf-response: answer the response call with the conf's status, headers (the
// complete list the client gets) and body, or body_prefix + the upstream's body.
type Response struct{ plugin.Default[ResponseConf] }

func (Response) Name() string { return "conf-response" }

func (Response) ResponseFilter(_ context.Context, conf ResponseConf, w *plugin.UpstreamResponse) error {
	if conf.Status != 0 {
		w.WriteHeader(conf.Status)
	}
	if len(conf.Headers) > 0 {
		h := w.Header()
		h.Reset()
		for _, p := range conf.Headers {
			if p.Value == nil {
				h.Del(p.Name)
			} else {
				h.Add(p.Name, *p.Value)
			}
		}
	}
	switch {
	case conf.BodyPrefix != nil:
		upstream, err := w.ReadBody()
		if err != nil {
			return err
		}
		_, _ = w.WriteString(*conf.BodyPrefix)
		_, _ = w.Write(upstream)
	case conf.Body != nil:
		_, _ = w.WriteString(*conf.Body)
	}
	return nil
}
