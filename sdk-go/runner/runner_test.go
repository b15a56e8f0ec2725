package runner_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrogate/ferrogate/sdk-go/internal/a6/A6/Err"
	"github.com/ferrogate/ferrogate/sdk-go/internal/frame"
	pc "github.com/ferrogate/ferrogate/sdk-go/internal/protoclient"
	"github.com/ferrogate/ferrogate/sdk-go/plugin"
	"github.com/ferrogate/ferrogate/sdk-go/runner"
)

func TestOptionsFromEnv(t *testing.T) {
	for _, c := range []struct {
		addr, expire, call string
		socket             string
		conf, timeout      time.Duration
		bad                string // a word of the error, "" when valid
	}{
		{"unix:/tmp/r.sock", "", "", "/tmp/r.sock", 0, 0, ""},
		{"unix:/tmp/r.sock", "60", "5", "/tmp/r.sock", time.Minute, 5 * time.Second, ""},
		{"unix:/tmp/r.sock", "0.5", "", "/tmp/r.sock", 500 * time.Millisecond, 0, ""},
		{"/tmp/r.sock", "", "", "", 0, 0, "APISIX_LISTEN_ADDRESS"},
		{"tcp:127.0.0.1:1", "", "", "", 0, 0, "APISIX_LISTEN_ADDRESS"},
		{"unix:", "", "", "", 0, 0, "APISIX_LISTEN_ADDRESS"},
		{"", "", "", "", 0, 0, "APISIX_LISTEN_ADDRESS"},
		{"unix:/tmp/r.sock", "-1", "", "", 0, 0, "APISIX_CONF_EXPIRE_TIME"},
		{"unix:/tmp/r.sock", "soon", "", "", 0, 0, "APISIX_CONF_EXPIRE_TIME"},
		{"unix:/tmp/r.sock", "", "0", "", 0, 0, "FERROGATE_RUNNER_CALL_TIMEOUT"},
	} {
		t.Setenv(runner.EnvListenAddress, c.addr)
		t.Setenv(runner.EnvConfExpire, c.expire)
		t.Setenv(runner.EnvCallTimeout, c.call)
		o, err := runner.OptionsFromEnv()
		switch {
		case c.bad != "" && (err == nil || !strings.Contains(err.Error(), c.bad)):
			t.Errorf("%q %q: error %v, want one naming %s", c.addr, c.expire, err, c.bad)
		case c.bad == "" && (err != nil || o.Socket != c.socket || o.ConfExpire != c.conf || o.CallTimeout != c.timeout):
			t.Errorf("%q %q: %+v %v", c.addr, c.expire, o, err)
		}
	}
}

func stopPlugin() plugin.Plugin[struct{}] {
	return fn[struct{}]{name: "stop", req: func(_ context.Context, _ struct{}, w httpWriter, _ *plugin.Request) error {
		w.WriteHeader(204)
		return nil
	}}
}

func TestRunSocketLifecycle(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "r.sock")
	if err := os.WriteFile(sock, nil, 0o600); err != nil { // stale
		t.Fatal(err)
	}
	reg := plugin.NewRegistry()
	plugin.MustRegister(reg, stopPlugin())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runner.Run(ctx, reg, runner.Options{Socket: sock, Logger: quiet}) }()
	var c *pc.Client
	for i := 0; i < 500; i++ {
		var err error
		if c, err = pc.Dial(sock); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if c == nil {
		t.Fatal("socket never served")
	}
	defer c.Close()
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o766 {
		t.Errorf("socket mode %v %v, want 0766 (APISIX workers may run as another user)", fi.Mode(), err)
	}
	tok, err := c.MustPrepare("k", pc.E("stop", ""))
	if err != nil {
		t.Fatal(err)
	}
	if r, err := c.Request(pc.HTTPRequest{ID: 1, ConfToken: tok}, nil); err != nil || r.Stop == nil || r.Stop.Status != 204 {
		t.Fatalf("%+v %v", r, err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("socket left behind: %v", err)
	}
	// the open connection was closed
	c.Conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, _, err := c.ReadFrame(); err == nil {
		t.Errorf("connection still open after shutdown")
	}

	// a directory where the socket should go is not removed
	if err := runner.Run(context.Background(), reg, runner.Options{Socket: dir}); err == nil {
		t.Errorf("Run on a directory succeeded")
	}
}

func TestVarsCachedAndPipelined(t *testing.T) {
	reg := plugin.NewRegistry()
	plugin.MustRegister(reg, fn[struct{}]{name: "vars", req: func(_ context.Context, _ struct{}, w httpWriter, r *plugin.Request) error {
		if err := r.FetchVars("a", "b", "a", "c"); err != nil {
			return err
		}
		a, okA, _ := r.Var("a")
		c, okC, _ := r.Var("c")
		d, okD, err := r.Var("d") // one more question
		if err != nil {
			return err
		}
		b1, _ := r.Body()
		b2, _ := r.Body()
		if string(a) != "A" || !okA || okC || c != nil || string(d) != "" || !okD || string(b1) != "body" || string(b2) != "body" {
			return errors.New("unexpected values")
		}
		w.WriteHeader(200)
		return nil
	}})
	c := client(t, serve(t, reg, runner.Options{}))
	tok, _ := c.MustPrepare("", pc.E("vars", ""))
	c.Pipelined = 3
	reply, err := c.Request(pc.HTTPRequest{ID: 1, ConfToken: tok}, func(q pc.Question) []byte {
		switch {
		case q.Kind == "req_body":
			return []byte("body")
		case q.Name == "a":
			return []byte("A")
		case q.Name == "d":
			return []byte{}
		}
		return nil
	})
	if err != nil || reply.Stop == nil {
		t.Fatalf("%+v %v", reply, err)
	}
	var asked []string
	for _, q := range reply.Questions {
		asked = append(asked, q.Kind+":"+q.Name)
	}
	if got := strings.Join(asked, " "); got != "var:a var:b var:c var:d req_body:" {
		t.Errorf("questions %s: want a, b, c at once, then d, then the body once", got)
	}
}

func TestCallContext(t *testing.T) {
	var deadline atomic.Pointer[time.Time]
	var sawCtx atomic.Pointer[context.Context]
	reg := plugin.NewRegistry()
	plugin.MustRegister(reg, fn[struct{}]{name: "ctx", req: func(ctx context.Context, _ struct{}, _ httpWriter, _ *plugin.Request) error {
		d, _ := ctx.Deadline()
		deadline.Store(&d)
		sawCtx.Store(&ctx)
		return nil
	}})
	plugin.MustRegister(reg, fn[struct{}]{name: "wait", req: func(ctx context.Context, _ struct{}, _ httpWriter, _ *plugin.Request) error {
		<-ctx.Done()
		return ctx.Err()
	}})
	c := client(t, serve(t, reg, runner.Options{CallTimeout: 300 * time.Millisecond}))
	tok, _ := c.MustPrepare("", pc.E("ctx", ""))
	began := time.Now()
	if _, err := c.Request(pc.HTTPRequest{ID: 1, ConfToken: tok}, nil); err != nil {
		t.Fatal(err)
	}
	if d := deadline.Load().Sub(began); d <= 0 || d > 400*time.Millisecond {
		t.Errorf("deadline %v after the call, want about 300ms", d)
	}
	if ctx := *sawCtx.Load(); !errors.Is(ctx.Err(), context.Canceled) {
		t.Errorf("context after the call: %v, want Canceled", ctx.Err())
	}
	// a plugin that waits on ctx gets the deadline, and the call answers with an error
	tok, _ = c.MustPrepare("w", pc.E("wait", ""))
	began = time.Now()
	reply, err := c.Request(pc.HTTPRequest{ID: 1, ConfToken: tok}, nil)
	if err != nil || reply.Type != frame.TypeError || reply.ErrCode != Err.CodeSERVICE_UNAVAILABLE {
		t.Errorf("%+v %v", reply, err)
	}
	if took := time.Since(began); took < 250*time.Millisecond || took > 5*time.Second {
		t.Errorf("answered after %v", took)
	}
}

func TestParseFailures(t *testing.T) {
	reg := plugin.NewRegistry()
	plugin.MustRegister(reg, panicky{})
	c := client(t, serve(t, reg, runner.Options{}))
	if _, code, err := c.Prepare("", pc.E("panicky", "")); err != nil || code == nil || *code != Err.CodeBAD_REQUEST {
		t.Errorf("panicking ParseConf: %v %v, want BAD_REQUEST", code, err)
	}
	// still serving
	if _, code, err := c.Prepare(""); err != nil || code != nil {
		t.Errorf("after: %v %v", code, err)
	}
}

type panicky struct{ plugin.Default[int] }

func (panicky) Name() string                  { return "panicky" }
func (panicky) ParseConf([]byte) (int, error) { panic("boom") }

func TestBrokenExtraInfoClosesTheConnection(t *testing.T) {
	reg := plugin.NewRegistry()
	plugin.MustRegister(reg, fn[struct{}]{name: "v", req: func(_ context.Context, _ struct{}, _ httpWriter, r *plugin.Request) error {
		_, _, err := r.Var("x")
		return err
	}})
	c := client(t, serve(t, reg, runner.Options{}))
	tok, _ := c.MustPrepare("", pc.E("v", ""))
	if err := c.WriteFrame(frame.TypeHTTPReq, pc.RequestBytes(pc.HTTPRequest{ID: 1, ConfToken: tok})); err != nil {
		t.Fatal(err)
	}
	if ty, _, err := c.ReadFrame(); err != nil || ty != frame.TypeExtraInfo {
		t.Fatalf("question: %d %v", ty, err)
	}
	// answer with a frame of the wrong type: the runner cannot trust the stream any more
	if err := c.WriteFrame(frame.TypePrepare, pc.PrepareBytes("", nil)); err != nil {
		t.Fatal(err)
	}
	c.Conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := c.ReadFrame(); err == nil {
		t.Errorf("the connection stayed open after a broken exchange")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Errorf("the runner hung instead of closing")
	}
}

func TestStatusOutOfRange(t *testing.T) {
	reg := plugin.NewRegistry()
	plugin.MustRegister(reg, fn[int]{name: "status",
		req: func(_ context.Context, s int, w httpWriter, _ *plugin.Request) error {
			w.WriteHeader(s)
			return nil
		},
		resp: func(_ context.Context, s int, w *plugin.UpstreamResponse) error {
			w.WriteHeader(s)
			return nil
		}})
	c := client(t, serve(t, reg, runner.Options{}))
	tok, _ := c.MustPrepare("", pc.E("status", "70000"))
	if r, err := c.Request(pc.HTTPRequest{ID: 1, ConfToken: tok}, nil); err != nil || r.Type != 0 || r.ErrCode != Err.CodeSERVICE_UNAVAILABLE {
		t.Errorf("stop with status 70000: %+v %v, want an error rather than a truncated status", r, err)
	}
	if r, err := c.Response(pc.HTTPResponse{ID: 1, ConfToken: tok}, nil); err != nil || r.Type != 0 {
		t.Errorf("response status 70000: %+v %v", r, err)
	}
}

func TestOrderedHeaderOfTheRunnersWriter(t *testing.T) {
	reg := plugin.NewRegistry()
	plugin.MustRegister(reg, fn[struct{}]{name: "ordered", req: func(_ context.Context, _ struct{}, w httpWriter, _ *plugin.Request) error {
		h := plugin.OrderedHeader(w)
		if h == nil {
			return errors.New("no ordered headers on the runner's writer")
		}
		h.Add("x-z", "1")
		h.Add("x-a", "2")
		return nil
	}})
	c := client(t, serve(t, reg, runner.Options{}))
	tok, _ := c.MustPrepare("", pc.E("ordered", ""))
	reply, err := c.Request(pc.HTTPRequest{ID: 1, ConfToken: tok}, nil)
	if err != nil || reply.Stop == nil {
		t.Fatalf("%+v %v, want a Stop", reply, err)
	}
	if h := reply.Stop.Headers; len(h) != 2 || h[0].Name != "x-z" || h[1].Name != "x-a" {
		t.Errorf("stop headers %+v", h)
	}
}
