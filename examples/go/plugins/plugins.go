// Package plugins holds example plugins for the Go SDK: one that stops, one that rewrites, one
// that adds a response header, one that rewrites the response body and one that checks a token
// against a gateway variable. cmd/example-runner serves them all.
package plugins

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"

	"github.com/ferrogate/ferrogate/sdk-go/plugin"
)

// Register adds every example plugin to reg.
func Register(reg *plugin.Registry) error {
	return errors.Join(
		plugin.Register(reg, Say{}),
		plugin.Register(reg, RewritePath{}),
		plugin.Register(reg, ServedBy{}),
		plugin.Register(reg, ReplaceBody{}),
		plugin.Register(reg, TokenAuth{}),
	)
}

// SayConf configures Say.
type SayConf struct {
	Status int    `json:"status"` // default 200
	Body   string `json:"body"`
}

// Say answers every request itself: the upstream is never contacted.
type Say struct{ plugin.Default[SayConf] }

func (Say) Name() string { return "say" }

func (Say) RequestFilter(_ context.Context, conf SayConf, w http.ResponseWriter, _ *plugin.Request) error {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if conf.Status != 0 {
		w.WriteHeader(conf.Status)
	}
	_, err := w.Write([]byte(conf.Body))
	return err
}

// RewritePathConf configures RewritePath.
type RewritePathConf struct {
	From string `json:"from"` // a path prefix
	To   string `json:"to"`   // what replaces it
}

// RewritePath replaces a path prefix before the request goes upstream, tells the upstream the
// original path in X-Original-Path and drops the debug query argument.
type RewritePath struct {
	plugin.Default[RewritePathConf]
}

func (RewritePath) Name() string { return "rewrite-path" }

// ParseConf checks the conf once, when the gateway prepares it.
func (RewritePath) ParseConf(value []byte) (RewritePathConf, error) {
	conf, err := plugin.Default[RewritePathConf]{}.ParseConf(value)
	if err == nil && !strings.HasPrefix(conf.From, "/") {
		err = errors.New(`"from" must start with /`)
	}
	return conf, err
}

func (RewritePath) RequestFilter(_ context.Context, conf RewritePathConf, _ http.ResponseWriter, r *plugin.Request) error {
	path := r.Path()
	rest, ok := strings.CutPrefix(path, conf.From)
	if !ok {
		return nil
	}
	r.SetPath(conf.To + rest)
	r.Header().Set("X-Original-Path", path)
	if r.Args().Has("debug") {
		r.Args().Del("debug")
	}
	return nil
}

// ServedByConf configures ServedBy.
type ServedByConf struct {
	Value string `json:"value"` // default "ferrogate-go"
}

// ServedBy adds X-Served-By to the client's response, whoever answers it.
type ServedBy struct{ plugin.Default[ServedByConf] }

func (ServedBy) Name() string { return "served-by" }

func (ServedBy) RequestFilter(_ context.Context, conf ServedByConf, _ http.ResponseWriter, r *plugin.Request) error {
	v := conf.Value
	if v == "" {
		v = "ferrogate-go"
	}
	r.RespHeader().Set("X-Served-By", v)
	return nil
}

// ReplaceBodyConf configures ReplaceBody.
type ReplaceBodyConf struct {
	Find    string `json:"find"`
	Replace string `json:"replace"`
}

// ReplaceBody rewrites the upstream's response body (a response filter: route it with
// ext-plugin-post-resp) and marks the response with X-Body-Rewritten.
type ReplaceBody struct {
	plugin.Default[ReplaceBodyConf]
}

func (ReplaceBody) Name() string { return "replace-body" }

func (ReplaceBody) ResponseFilter(_ context.Context, conf ReplaceBodyConf, w *plugin.UpstreamResponse) error {
	if conf.Find == "" {
		return nil
	}
	body, err := w.ReadBody()
	if err != nil {
		return err
	}
	if !strings.Contains(string(body), conf.Find) {
		return nil
	}
	w.Header().Set("X-Body-Rewritten", "1")
	_, err = w.WriteString(strings.ReplaceAll(string(body), conf.Find, conf.Replace))
	return err
}

// TokenAuthConf configures TokenAuth.
type TokenAuthConf struct {
	Header string `json:"header"` // default "x-token"
	Var    string `json:"var"`    // the gateway variable holding the expected token
}

// TokenAuth lets a request through only when its token header equals the value of a gateway
// variable (asked for through extra info, e.g. a variable set by an earlier gateway plugin or
// "arg_..."), and answers 401 otherwise. The header is removed before the request goes upstream.
type TokenAuth struct{ plugin.Default[TokenAuthConf] }

func (TokenAuth) Name() string { return "token-auth" }

func (TokenAuth) ParseConf(value []byte) (TokenAuthConf, error) {
	conf, err := plugin.Default[TokenAuthConf]{}.ParseConf(value)
	if conf.Header == "" {
		conf.Header = "x-token"
	}
	if err == nil && conf.Var == "" {
		err = errors.New(`"var" is required`)
	}
	return conf, err
}

func (TokenAuth) RequestFilter(_ context.Context, conf TokenAuthConf, w http.ResponseWriter, r *plugin.Request) error {
	got, present := r.Header().Lookup(conf.Header)
	want, ok, err := r.Var(conf.Var)
	if err != nil {
		return err
	}
	if !present || !ok || len(want) == 0 || subtle.ConstantTimeCompare([]byte(got), want) != 1 {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, err := w.Write([]byte(`{"message":"invalid token"}`))
		return err
	}
	r.Header().Del(conf.Header)
	return nil
}
