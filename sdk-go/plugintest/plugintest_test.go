package plugintest_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/ferrogate/ferrogate/sdk-go/plugin"
	"github.com/ferrogate/ferrogate/sdk-go/plugintest"
)

func TestNewRequest(t *testing.T) {
	r := plugintest.NewRequest("post", "/a%20b?x=1&flag&k=&x=2&e=%26",
		plugintest.Header("X-A", "1"), plugintest.SrcIP("::1"), plugintest.ID(9),
		plugintest.Var("route_id", "7"), plugintest.Body([]byte("payload")))
	if r.Method() != "POST" || r.Path() != "/a b" || r.ID() != 9 || r.SrcIP().String() != "::1" {
		t.Errorf("%s %q %d %s", r.Method(), r.Path(), r.ID(), r.SrcIP())
	}
	args := r.Args()
	if got := args.Values("x"); len(got) != 2 || got[1] != "2" || !args.Has("flag") || args.Get("flag") != "" || args.Get("e") != "&" {
		t.Errorf("args %v", args.All())
	}
	if v, ok := args.Lookup("k"); !ok || v != "" {
		t.Errorf("k: %q %v", v, ok)
	}
	if r.Header().Get("x-a") != "1" || r.Header().All()[0].Name != "x-a" {
		t.Errorf("headers %v", r.Header().All())
	}
	if v, ok, err := r.Var("route_id"); err != nil || !ok || string(v) != "7" {
		t.Errorf("route_id %q %v %v", v, ok, err)
	}
	if _, ok, err := r.Var("nope"); err != nil || ok {
		t.Errorf("nope: %v %v", ok, err)
	}
	if b, err := r.Body(); err != nil || string(b) != "payload" {
		t.Errorf("body %q %v", b, err)
	}
	if r.Changed() {
		t.Errorf("a fresh request reports changes")
	}
	// defaults
	r = plugintest.NewRequest("GET", "/")
	if r.SrcIP().String() != "127.0.0.1" || r.ID() != 1 || r.Args().Len() != 0 {
		t.Errorf("defaults: %s %d", r.SrcIP(), r.ID())
	}
	if b, err := r.Body(); err != nil || len(b) != 0 {
		t.Errorf("no body: %q %v", b, err)
	}
}

func TestRecorder(t *testing.T) {
	rec := plugintest.NewRecorder()
	if rec.Stopped() {
		t.Errorf("fresh recorder stopped")
	}
	rec.Header().Set("X", "1")
	if !rec.Stopped() || rec.Code != 200 {
		t.Errorf("a header alone stops with 200: %v %d", rec.Stopped(), rec.Code)
	}
	rec = plugintest.NewRecorder()
	rec.WriteHeader(403)
	rec.WriteHeader(500)
	_, _ = rec.Write([]byte("no"))
	if rec.Code != 403 || rec.Body.String() != "no" {
		t.Errorf("%d %q", rec.Code, rec.Body.String())
	}
}

type echoStatus struct {
	plugin.Default[struct{ Status int }]
}

func (echoStatus) Name() string { return "s" }
func (echoStatus) RequestFilter(ctx context.Context, c struct{ Status int }, w http.ResponseWriter, _ *plugin.Request) error {
	if _, ok := ctx.Deadline(); !ok {
		w.WriteHeader(599)
		return nil
	}
	w.WriteHeader(c.Status)
	return nil
}
func (echoStatus) ResponseFilter(_ context.Context, c struct{ Status int }, w *plugin.UpstreamResponse) error {
	w.WriteHeader(c.Status)
	w.Header().Del("server")
	return nil
}

func TestRun(t *testing.T) {
	rec := plugintest.NewRecorder()
	if err := plugintest.RunRequest(echoStatus{}, `{"Status":418}`, rec, plugintest.NewRequest("GET", "/")); err != nil || rec.Code != 418 {
		t.Errorf("%d %v", rec.Code, err)
	}
	if err := plugintest.RunRequest(echoStatus{}, `{`, rec, plugintest.NewRequest("GET", "/")); err == nil {
		t.Errorf("bad conf accepted")
	}
	w := plugintest.NewUpstreamResponse(200, plugintest.Header("Server", "up"))
	if err := plugintest.RunResponse(echoStatus{}, `{"Status":201}`, w); err != nil {
		t.Fatal(err)
	}
	if w.StatusCode() != 201 || w.UpstreamStatus() != 200 || w.NewStatus() != 201 || w.Header().Has("server") || !w.Header().Changed() {
		t.Errorf("%d %d %v", w.StatusCode(), w.UpstreamStatus(), w.Header().All())
	}
}

func TestOrderedHeader(t *testing.T) {
	rec := plugintest.NewRecorder()
	h := plugin.OrderedHeader(rec)
	h.Add("x-b", "1")
	h.Add("x-a", "2")
	h.Del("x-gone")
	if !rec.Stopped() || rec.Code != 200 {
		t.Errorf("ordered headers did not stop")
	}
	var got []string
	for _, f := range rec.Ordered.All() {
		got = append(got, f.Name+"="+f.Value)
	}
	if len(got) != 2 || got[0] != "x-b=1" || got[1] != "x-a=2" {
		t.Errorf("ordered %v", got)
	}
	if plugin.OrderedHeader(httptestWriter{}) != nil {
		t.Errorf("a foreign writer got ordered headers")
	}
}

type httptestWriter struct{ http.ResponseWriter }

// oldStatus is written against the former names: plugin.Response and plugintest.NewResponse.
type oldStatus struct{ plugin.Default[struct{}] }

func (oldStatus) Name() string { return "old-status" }
func (oldStatus) ResponseFilter(_ context.Context, _ struct{}, w *plugin.Response) error {
	w.WriteHeader(204)
	return nil
}

func TestFormerNames(t *testing.T) {
	w := plugintest.NewResponse(200) //nolint:staticcheck // the deprecated name must keep working
	if err := plugintest.RunResponse(oldStatus{}, "", w); err != nil || w.StatusCode() != 204 {
		t.Errorf("%d %v", w.StatusCode(), err)
	}
}
