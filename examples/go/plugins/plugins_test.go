package plugins_test

import (
	"errors"
	"testing"

	"github.com/ferrogate/ferrogate/examples/go/plugins"
	"github.com/ferrogate/ferrogate/sdk-go/plugin"
	"github.com/ferrogate/ferrogate/sdk-go/plugintest"
)

func TestRegisterAll(t *testing.T) {
	reg := plugin.NewRegistry()
	if err := plugins.Register(reg); err != nil {
		t.Fatal(err)
	}
	if got := len(reg.Names()); got != 5 {
		t.Errorf("%d plugins registered, want 5", got)
	}
	if err := plugins.Register(reg); !errors.Is(err, plugin.ErrDuplicate) {
		t.Errorf("registering twice: %v, want ErrDuplicate", err)
	}
}

func TestSay(t *testing.T) {
	rec := plugintest.NewRecorder()
	req := plugintest.NewRequest("GET", "/")
	if err := plugintest.RunRequest(plugins.Say{}, `{"status":418,"body":"teapot"}`, rec, req); err != nil {
		t.Fatal(err)
	}
	if !rec.Stopped() || rec.Code != 418 || rec.Body.String() != "teapot" || rec.Header().Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Errorf("got stopped=%v %d %q %v", rec.Stopped(), rec.Code, rec.Body.String(), rec.HeaderMap)
	}
	rec = plugintest.NewRecorder()
	_ = plugintest.RunRequest(plugins.Say{}, `{"body":"hi"}`, rec, plugintest.NewRequest("GET", "/"))
	if rec.Code != 200 || rec.Body.String() != "hi" {
		t.Errorf("default status: %d %q", rec.Code, rec.Body.String())
	}
}

func TestRewritePath(t *testing.T) {
	req := plugintest.NewRequest("GET", "/api/users?debug=1&page=2")
	rec := plugintest.NewRecorder()
	if err := plugintest.RunRequest(plugins.RewritePath{}, `{"from":"/api","to":"/v2"}`, rec, req); err != nil {
		t.Fatal(err)
	}
	if rec.Stopped() {
		t.Fatal("rewrite-path answered the request")
	}
	if req.Path() != "/v2/users" || !req.PathChanged() {
		t.Errorf("path %q", req.Path())
	}
	if got := req.Header().Get("x-original-path"); got != "/api/users" {
		t.Errorf("x-original-path %q", got)
	}
	if req.Args().Has("debug") || req.Args().Get("page") != "2" {
		t.Errorf("args %v", req.Args().All())
	}

	// another prefix: untouched
	req = plugintest.NewRequest("GET", "/other")
	_ = plugintest.RunRequest(plugins.RewritePath{}, `{"from":"/api","to":"/v2"}`, plugintest.NewRecorder(), req)
	if req.Changed() {
		t.Errorf("/other was changed")
	}
	// a bad conf fails the prepare
	if _, err := (plugins.RewritePath{}).ParseConf([]byte(`{"from":"api"}`)); err == nil {
		t.Errorf("from without / accepted")
	}
}

func TestServedBy(t *testing.T) {
	req := plugintest.NewRequest("GET", "/")
	if err := plugintest.RunRequest(plugins.ServedBy{}, `{}`, plugintest.NewRecorder(), req); err != nil {
		t.Fatal(err)
	}
	if got := req.RespHeader().Get("x-served-by"); got != "ferrogate-go" {
		t.Errorf("x-served-by %q", got)
	}
	req = plugintest.NewRequest("GET", "/")
	_ = plugintest.RunRequest(plugins.ServedBy{}, `{"value":"edge-1"}`, plugintest.NewRecorder(), req)
	if got := req.RespHeader().Get("X-Served-By"); got != "edge-1" {
		t.Errorf("x-served-by %q", got)
	}
}

func TestReplaceBody(t *testing.T) {
	resp := plugintest.NewUpstreamResponse(200, plugintest.Header("content-type", "text/plain"), plugintest.Body([]byte("hello world")))
	if err := plugintest.RunResponse(plugins.ReplaceBody{}, `{"find":"world","replace":"gopher"}`, resp); err != nil {
		t.Fatal(err)
	}
	body, wrote := resp.NewBody()
	if !wrote || string(body) != "hello gopher" {
		t.Errorf("body %q", body)
	}
	if resp.Header().Get("x-body-rewritten") != "1" || resp.Header().Get("content-type") != "text/plain" {
		t.Errorf("headers %v", resp.Header().All())
	}
	if resp.StatusCode() != 200 {
		t.Errorf("status %d", resp.StatusCode())
	}

	// nothing to replace: the upstream's response is kept as is
	resp = plugintest.NewUpstreamResponse(200, plugintest.Body([]byte("bye")))
	_ = plugintest.RunResponse(plugins.ReplaceBody{}, `{"find":"world","replace":"gopher"}`, resp)
	if _, wrote := resp.NewBody(); wrote || resp.Header().Changed() {
		t.Errorf("response changed without a match")
	}
}

func TestTokenAuth(t *testing.T) {
	conf := `{"header":"x-token","var":"expected_token"}`
	for _, c := range []struct {
		name   string
		opts   []plugintest.Option
		status int // 0: let through
	}{
		{"match", []plugintest.Option{plugintest.Header("x-token", "s3cret"), plugintest.Var("expected_token", "s3cret")}, 0},
		{"mismatch", []plugintest.Option{plugintest.Header("x-token", "guess"), plugintest.Var("expected_token", "s3cret")}, 401},
		{"no header", []plugintest.Option{plugintest.Var("expected_token", "s3cret")}, 401},
		{"no variable", []plugintest.Option{plugintest.Header("x-token", "")}, 401},
		{"empty variable", []plugintest.Option{plugintest.Header("x-token", ""), plugintest.Var("expected_token", "")}, 401},
	} {
		t.Run(c.name, func(t *testing.T) {
			req := plugintest.NewRequest("GET", "/", c.opts...)
			rec := plugintest.NewRecorder()
			if err := plugintest.RunRequest(plugins.TokenAuth{}, conf, rec, req); err != nil {
				t.Fatal(err)
			}
			switch {
			case c.status == 0 && rec.Stopped():
				t.Errorf("stopped with %d", rec.Code)
			case c.status == 0 && req.Header().Has("x-token"):
				t.Errorf("token header still sent upstream")
			case c.status != 0 && (!rec.Stopped() || rec.Code != c.status):
				t.Errorf("stopped=%v code %d, want %d", rec.Stopped(), rec.Code, c.status)
			}
		})
	}
	if _, err := (plugins.TokenAuth{}).ParseConf([]byte(`{}`)); err == nil {
		t.Errorf("conf without var accepted")
	}
}
