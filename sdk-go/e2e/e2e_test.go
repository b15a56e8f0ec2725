// End-to-end tests: the conformance runner built as a program, started like the gateway starts a
// runner (environment, Unix socket), driven by a test client that speaks the protocol.
package e2e_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ferrogate/ferrogate/sdk-go/internal/a6/A6"
	"github.com/ferrogate/ferrogate/sdk-go/internal/a6/A6/Err"
	"github.com/ferrogate/ferrogate/sdk-go/internal/frame"
	pc "github.com/ferrogate/ferrogate/sdk-go/internal/protoclient"
)

var runnerBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sdk-go-e2e")
	if err != nil {
		panic(err)
	}
	runnerBin = filepath.Join(dir, "conformance-runner")
	args := []string{"build", "-o", runnerBin}
	if raceBuild {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, "./cmd/conformance-runner")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the conformance runner:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type runner struct {
	sock string
	cmd  *exec.Cmd
	out  *bytes.Buffer
	done chan error
}

// start runs the conformance runner with the gateway's environment and waits for its socket.
func start(t *testing.T, env ...string) *runner {
	t.Helper()
	return startBin(t, runnerBin, env...)
}

// startBin starts the runner program bin on a fresh socket and waits for it.
func startBin(t *testing.T, bin string, env ...string) *runner {
	t.Helper()
	r := startProgram(t, bin, filepath.Join(t.TempDir(), "runner.sock"), env...)
	waitSocket(t, r)
	return r
}

func startAt(t *testing.T, sock string, env ...string) *runner {
	t.Helper()
	return startProgram(t, runnerBin, sock, env...)
}

func startProgram(t *testing.T, bin, sock string, env ...string) *runner {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "APISIX_LISTEN_ADDRESS=unix:"+sock, "APISIX_CONF_EXPIRE_TIME=3600")
	cmd.Env = append(cmd.Env, env...)
	out := &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := &runner{sock: sock, cmd: cmd, out: out, done: make(chan error, 1)}
	go func() { r.done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-r.done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
		}
		if t.Failed() {
			t.Logf("runner output:\n%s", out)
		}
	})
	return r
}

func waitSocket(t *testing.T, r *runner) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("unix", r.sock); err == nil {
			c.Close()
			return
		}
		select {
		case err := <-r.done:
			t.Fatalf("runner exited early: %v\n%s", err, r.out)
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatalf("runner socket %s never appeared\n%s", r.sock, r.out)
}

func dial(t *testing.T, r *runner) *pc.Client {
	t.Helper()
	c, err := pc.Dial(r.sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func prepare(t *testing.T, c *pc.Client, key string, conf ...pc.Entry) uint32 {
	t.Helper()
	tok, err := c.MustPrepare(key, conf...)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func ptr(s string) *string { return &s }

func show(list []pc.Entry) string {
	var parts []string
	for _, e := range list {
		if e.Value == nil {
			parts = append(parts, e.Name+"=<none>")
		} else {
			parts = append(parts, e.Name+"="+*e.Value)
		}
	}
	return strings.Join(parts, ",")
}

var baseReq = pc.HTTPRequest{
	ID: 7, SrcIP: []byte{127, 0, 0, 1}, Method: A6.MethodGET, Path: "/p",
	Args:    []pc.Entry{pc.E("a", "1"), pc.Flag("flag")},
	Headers: []pc.Entry{pc.E("host", "example.com"), pc.E("x-a", "1")},
}

func request(t *testing.T, c *pc.Client, token uint32, answer pc.Answerer) *pc.Reply {
	t.Helper()
	req := baseReq
	req.ConfToken = token
	reply, err := c.Request(req, answer)
	if err != nil {
		t.Fatal(err)
	}
	return reply
}

func TestStop(t *testing.T) {
	c := dial(t, start(t))
	tok := prepare(t, c, "route#1#ext-plugin-pre-req#1",
		pc.E("conf-stop", `{"status":403,"headers":[["x-b","1"],["x-b","2"],["x-gone",null]],"body":"no"}`))
	reply := request(t, c, tok, nil)
	if reply.Type != frame.TypeHTTPReq || reply.ID != 7 || reply.Stop == nil {
		t.Fatalf("reply %+v: want a Stop for id 7", reply)
	}
	if reply.Stop.Status != 403 || string(reply.Stop.Body) != "no" {
		t.Errorf("stop %d %q, want 403 \"no\"", reply.Stop.Status, reply.Stop.Body)
	}
	if got, want := show(reply.Stop.Headers), "x-b=1,x-b=2,x-gone=<none>"; got != want {
		t.Errorf("stop headers %s, want %s", got, want)
	}

	// pairs keep their order across names; a later null removes what an earlier pair set
	tok = prepare(t, c, "k-order", pc.E("conf-stop", `{"headers":[["x-z","1"],["x-a","2"],["x-z","3"],["x-a",null]]}`))
	if got := show(request(t, c, tok, nil).Stop.Headers); got != "x-z=1,x-z=3,x-a=<none>" {
		t.Errorf("ordered stop headers %s", got)
	}

	// no status in the conf: 200
	tok = prepare(t, c, "k2", pc.E("conf-stop", `{}`))
	if reply := request(t, c, tok, nil); reply.Stop == nil || reply.Stop.Status != 200 {
		t.Errorf("conf-stop {}: %+v, want a Stop with 200", reply.Stop)
	}
}

func TestRewrite(t *testing.T) {
	c := dial(t, start(t))
	tok := prepare(t, c, "k", pc.E("conf-rewrite", `{"path":"/new","headers":[["x-a","2"],["x-del",null],["Host","up.test"]],
		"args":[["a","3"],["a","4"],["flag",null]],"body":"B","resp_headers":[["x-r","1"],["x-r","2"],["x-s",null]]}`))
	reply := request(t, c, tok, nil)
	rw := reply.Rewrite
	if rw == nil {
		t.Fatalf("reply %+v: want a Rewrite", reply)
	}
	if rw.Path == nil || *rw.Path != "/new" || string(rw.Body) != "B" {
		t.Errorf("path %v body %q", rw.Path, rw.Body)
	}
	for _, c := range []struct{ name, got, want string }{
		{"headers", show(rw.Headers), "x-a=2,x-del=<none>,host=up.test"},
		{"args", show(rw.Args), "a=3,a=4,flag=<none>"},
		{"resp_headers", show(rw.RespHeaders), "x-r=1,x-r=2,x-s=<none>"},
	} {
		if c.got != c.want {
			t.Errorf("%s: %s, want %s", c.name, c.got, c.want)
		}
	}

	// an empty conf changes nothing: no action at all
	tok = prepare(t, c, "k-empty", pc.E("conf-rewrite", `{}`))
	if reply := request(t, c, tok, nil); reply.Stop != nil || reply.Rewrite != nil || reply.ID != 7 {
		t.Errorf("conf-rewrite {}: %+v, want no action", reply)
	}
	// and a route without plugins neither
	tok = prepare(t, c, "k-none")
	if reply := request(t, c, tok, nil); reply.Stop != nil || reply.Rewrite != nil {
		t.Errorf("empty conf list: %+v, want no action", reply)
	}
}

type echo struct {
	Method  string             `json:"method"`
	Path    string             `json:"path"`
	SrcIP   string             `json:"src_ip"`
	Args    [][]*string        `json:"args"`
	Headers [][]*string        `json:"headers"`
	Vars    map[string]*string `json:"vars"`
	Body    *string            `json:"body"`
}

func decodeEcho(t *testing.T, reply *pc.Reply) echo {
	t.Helper()
	if reply.Stop == nil {
		t.Fatalf("reply %+v: want conf-echo's Stop", reply)
	}
	var e echo
	if err := json.Unmarshal(reply.Stop.Body, &e); err != nil {
		t.Fatalf("echo body %q: %v", reply.Stop.Body, err)
	}
	return e
}

func pairs(list [][]*string) string {
	var parts []string
	for _, p := range list {
		if p[1] == nil {
			parts = append(parts, *p[0]+"=<none>")
		} else {
			parts = append(parts, *p[0]+"="+*p[1])
		}
	}
	return strings.Join(parts, ",")
}

func TestEchoVarsAndBodyPipelined(t *testing.T) {
	c := dial(t, start(t))
	tok := prepare(t, c, "k", pc.E("conf-echo", `{"vars":["remote_addr","route_id","no_such_var","bad_utf8"],"body":true}`))
	answers := map[string][]byte{"remote_addr": []byte("127.0.0.1"), "route_id": []byte("1"), "bad_utf8": {0xff, 'a'}}
	c.Pipelined = 4 // the four variable questions must all arrive before any answer
	reply := request(t, c, tok, func(q pc.Question) []byte {
		if q.Kind == "req_body" {
			return []byte("hello")
		}
		return answers[q.Name]
	})
	if len(reply.Questions) != 5 {
		t.Fatalf("questions %+v: want 4 vars and the body", reply.Questions)
	}
	e := decodeEcho(t, reply)
	if reply.Stop.Status != 200 || show(reply.Stop.Headers) != "Content-Type=application/json" {
		t.Errorf("echo status %d headers %s", reply.Stop.Status, show(reply.Stop.Headers))
	}
	if e.Method != "GET" || e.Path != "/p" || e.SrcIP != "127.0.0.1" {
		t.Errorf("echo %+v", e)
	}
	if got := pairs(e.Args); got != "a=1,flag=<none>" {
		t.Errorf("args %s", got)
	}
	if got := pairs(e.Headers); got != "host=example.com,x-a=1" {
		t.Errorf("headers %s", got)
	}
	if e.Vars["remote_addr"] == nil || *e.Vars["remote_addr"] != "127.0.0.1" || *e.Vars["route_id"] != "1" {
		t.Errorf("vars %v", e.Vars)
	}
	if v, ok := e.Vars["no_such_var"]; !ok || v != nil {
		t.Errorf("no_such_var: %v %v, want present and null", v, ok)
	}
	if v := e.Vars["bad_utf8"]; v == nil || *v != "\uFFFDa" {
		t.Errorf("bad_utf8: %v, want U+FFFD then a", v)
	}
	if e.Body == nil || *e.Body != "hello" {
		t.Errorf("body %v", e.Body)
	}

	// without body: no body question, body null
	tok = prepare(t, c, "k2", pc.E("conf-echo", `{}`))
	reply = request(t, c, tok, nil)
	if e := decodeEcho(t, reply); e.Body != nil || len(reply.Questions) != 0 {
		t.Errorf("echo {}: body %v, questions %v", e.Body, reply.Questions)
	}
}

func TestChain(t *testing.T) {
	c := dial(t, start(t))
	// a later plugin sees the rewrite of an earlier one
	tok := prepare(t, c, "k", pc.E("conf-rewrite", `{"path":"/r","headers":[["x-a","2"],["x-n","n"]],"args":[["a",null],["b","2"]]}`),
		pc.E("conf-echo", `{}`), pc.E("conf-fail", `{}`))
	e := decodeEcho(t, request(t, c, tok, nil))
	if e.Path != "/r" {
		t.Errorf("path %q, want /r", e.Path)
	}
	if got := pairs(e.Headers); got != "host=example.com,x-a=2,x-n=n" {
		t.Errorf("headers %s", got)
	}
	if got := pairs(e.Args); got != "flag=<none>,b=2" {
		t.Errorf("args %s", got)
	}
	// the first stop ends the chain; rewrites before it are dropped from the reply
	tok = prepare(t, c, "k2", pc.E("conf-stop", `{"status":401}`), pc.E("conf-fail", `{}`))
	if reply := request(t, c, tok, nil); reply.Stop == nil || reply.Stop.Status != 401 {
		t.Errorf("stop then fail: %+v", reply)
	}
	// two rewrites add up
	tok = prepare(t, c, "k3", pc.E("conf-rewrite", `{"path":"/one","headers":[["x-1","1"]]}`),
		pc.E("conf-rewrite", `{"headers":[["x-2","2"]]}`))
	reply := request(t, c, tok, nil)
	if reply.Rewrite == nil || *reply.Rewrite.Path != "/one" || show(reply.Rewrite.Headers) != "x-1=1,x-2=2" {
		t.Errorf("two rewrites: %+v", reply.Rewrite)
	}
}

func TestErrors(t *testing.T) {
	c := dial(t, start(t))
	// unknown token
	req := baseReq
	req.ConfToken = 999
	reply, err := c.Request(req, nil)
	if err != nil || reply.Type != frame.TypeError || reply.ErrCode != Err.CodeCONF_TOKEN_NOT_FOUND {
		t.Fatalf("unknown token: %+v %v, want type 0 CONF_TOKEN_NOT_FOUND", reply, err)
	}
	if reply, err := c.Response(pc.HTTPResponse{ID: 1, Status: 200, ConfToken: 999}, nil); err != nil || reply.Type != 0 || reply.ErrCode != Err.CodeCONF_TOKEN_NOT_FOUND {
		t.Fatalf("unknown token in a response call: %+v %v", reply, err)
	}
	// a failing plugin, by error and by panic; the connection keeps serving
	for _, conf := range []string{`{}`, `{"panic":true}`} {
		tok := prepare(t, c, "fail"+conf, pc.E("conf-fail", conf))
		if reply := request(t, c, tok, nil); reply.Type != frame.TypeError || reply.ErrCode != Err.CodeSERVICE_UNAVAILABLE {
			t.Errorf("conf-fail %s: %+v, want type 0 SERVICE_UNAVAILABLE", conf, reply)
		}
	}
	tok := prepare(t, c, "ok", pc.E("conf-stop", `{}`))
	if reply := request(t, c, tok, nil); reply.Stop == nil {
		t.Errorf("after failures: %+v, want a Stop", reply)
	}
	// prepare with an unknown plugin or a conf that does not parse: BAD_REQUEST
	for _, e := range []pc.Entry{pc.E("no-such-plugin", "{}"), pc.E("conf-stop", `{"status":"x"}`)} {
		_, code, err := c.Prepare("bad", e)
		if err != nil || code == nil || *code != Err.CodeBAD_REQUEST {
			t.Errorf("prepare %s: code %v err %v, want BAD_REQUEST", e.Name, code, err)
		}
	}
	// an unknown message type: BAD_REQUEST, the connection stays
	if err := c.WriteFrame(9, []byte{1, 2, 3, 4}); err != nil {
		t.Fatal(err)
	}
	if ty, p, err := c.ReadFrame(); err != nil || ty != 0 || Err.GetRootAsResp(p, 0).Code() != Err.CodeBAD_REQUEST {
		t.Errorf("type 9: %d %v", ty, err)
	}
	if reply := request(t, c, tok, nil); reply.Stop == nil {
		t.Errorf("after an unknown type: %+v", reply)
	}
	// a payload that is not a FlatBuffers buffer: BAD_REQUEST then the connection is closed
	if err := c.WriteFrame(frame.TypePrepare, []byte{0xff, 0xff, 0xff, 0x7f}); err != nil {
		t.Fatal(err)
	}
	if ty, p, err := c.ReadFrame(); err != nil || ty != 0 || Err.GetRootAsResp(p, 0).Code() != Err.CodeBAD_REQUEST {
		t.Errorf("garbage: %d %v", ty, err)
	}
	if _, _, err := c.ReadFrame(); err == nil {
		t.Errorf("the connection stays open after garbage")
	}
}

func TestResponseCall(t *testing.T) {
	c := dial(t, start(t))
	tok := prepare(t, c, "route#1#ext-plugin-post-resp#1",
		pc.E("conf-response", `{"status":201,"headers":[["x-new","1"],["x-new","2"],["x-up",null]],"body_prefix":"pre:"}`))
	resp := pc.HTTPResponse{ID: 3, Status: 200, Headers: []pc.Entry{pc.E("x-up", "u"), pc.E("content-type", "text/plain")}, ConfToken: tok}
	reply, err := c.Response(resp, func(q pc.Question) []byte {
		if q.Kind == "resp_body" {
			return []byte("upstream")
		}
		return nil
	})
	if err != nil || reply.Type != frame.TypeHTTPResp {
		t.Fatalf("%+v %v", reply, err)
	}
	if reply.ID != 3 || reply.Status != 201 || string(reply.Body) != "pre:upstream" {
		t.Errorf("reply id %d status %d body %q", reply.ID, reply.Status, reply.Body)
	}
	if got := show(reply.Headers); got != "x-new=1,x-new=2,x-up=<none>" {
		t.Errorf("headers %s", got)
	}
	if len(reply.Questions) != 1 || reply.Questions[0].Kind != "resp_body" {
		t.Errorf("questions %v", reply.Questions)
	}
	// empty conf: keep everything
	tok = prepare(t, c, "keep", pc.E("conf-response", `{}`))
	resp.ConfToken = tok
	reply, err = c.Response(resp, nil)
	if err != nil || reply.Status != 0 || len(reply.Headers) != 0 || len(reply.Body) != 0 {
		t.Errorf("keep: %+v %v", reply, err)
	}
	// request filters do nothing in the response phase, response filters nothing in the request phase
	tok = prepare(t, c, "mixed", pc.E("conf-stop", `{}`), pc.E("conf-response", `{"status":500}`))
	resp.ConfToken = tok
	if reply, err := c.Response(resp, nil); err != nil || reply.Status != 500 {
		t.Errorf("mixed chain in the response phase: %+v %v", reply, err)
	}
	tok = prepare(t, c, "mixed2", pc.E("conf-response", `{"status":500}`))
	if reply := request(t, c, tok, nil); reply.Stop != nil || reply.Rewrite != nil {
		t.Errorf("response filter in the request phase: %+v", reply)
	}
}

func TestTokens(t *testing.T) {
	r := start(t)
	c := dial(t, r)
	a := prepare(t, c, "route#1#ext-plugin-pre-req#1", pc.E("conf-stop", `{}`))
	b := prepare(t, c, "route#1#ext-plugin-post-req#1", pc.E("conf-stop", `{}`))
	again := prepare(t, c, "route#1#ext-plugin-pre-req#1", pc.E("conf-stop", `{}`))
	if a == 0 || a == b || again != a {
		t.Errorf("tokens %d %d %d: want non-zero, distinct per key, the same for the same key", a, b, again)
	}
	// a token prepared on one connection works on another
	c2 := dial(t, r)
	if reply := request(t, c2, b, nil); reply.Stop == nil {
		t.Errorf("token on another connection: %+v", reply)
	}
}

func TestConfExpiry(t *testing.T) {
	c := dial(t, start(t, "APISIX_CONF_EXPIRE_TIME=1"))
	tok := prepare(t, c, "k", pc.E("conf-stop", `{}`))
	if reply := request(t, c, tok, nil); reply.Stop == nil {
		t.Fatalf("fresh token: %+v", reply)
	}
	time.Sleep(1300 * time.Millisecond) // 1.2 x the expire time, and some
	if reply := request(t, c, tok, nil); reply.Type != 0 || reply.ErrCode != Err.CodeCONF_TOKEN_NOT_FOUND {
		t.Fatalf("expired token: %+v, want CONF_TOKEN_NOT_FOUND", reply)
	}
	// the gateway prepares again under the same key: a new, working token
	tok2 := prepare(t, c, "k", pc.E("conf-stop", `{}`))
	if tok2 == tok {
		t.Errorf("re-prepare after expiry gave the expired token %d", tok)
	}
	if reply := request(t, c, tok2, nil); reply.Stop == nil {
		t.Errorf("new token: %+v", reply)
	}
}

func TestLargeFrames(t *testing.T) {
	c := dial(t, start(t))
	tok := prepare(t, c, "k", pc.E("conf-echo", `{"body":true}`))
	// a body near the limit arrives whole; echoed as JSON it no longer fits a frame, so the
	// runner answers an error instead of a truncated length
	big := bytes.Repeat([]byte("a"), frame.MaxPayload-64)
	reply := request(t, c, tok, func(pc.Question) []byte { return big })
	if reply.Type != frame.TypeError || reply.ErrCode != Err.CodeSERVICE_UNAVAILABLE {
		t.Fatalf("oversized reply: type %d code %v, want a SERVICE_UNAVAILABLE error", reply.Type, reply.ErrCode)
	}
	// 8 MiB fits
	mid := bytes.Repeat([]byte("b"), 8<<20)
	reply = request(t, c, tok, func(pc.Question) []byte { return mid })
	if e := decodeEcho(t, reply); e.Body == nil || len(*e.Body) != len(mid) {
		t.Fatalf("8 MiB body echoed wrong")
	}
	// a request body rewritten to near the limit
	tok = prepare(t, c, "k2", pc.E("conf-rewrite", fmt.Sprintf(`{"body":%q}`, big[:frame.MaxPayload-1024])))
	reply = request(t, c, tok, nil)
	if reply.Rewrite == nil || len(reply.Rewrite.Body) != frame.MaxPayload-1024 {
		t.Fatalf("large rewrite body: %+v", reply.Type)
	}
}

func TestConcurrentConnections(t *testing.T) {
	r := start(t)
	setup := dial(t, r)
	tok := prepare(t, setup, "k", pc.E("conf-echo", `{"vars":["route_id"]}`))
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := pc.Dial(r.sock)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			for j := range 20 {
				want := fmt.Sprintf("%d-%d", i, j)
				req := baseReq
				req.ID, req.ConfToken, req.Path = uint32(i*100+j+1), tok, "/"+want
				reply, err := c.Request(req, func(pc.Question) []byte { return []byte(want) })
				if err != nil {
					errs <- err
					return
				}
				var e echo
				if reply.Stop == nil || json.Unmarshal(reply.Stop.Body, &e) != nil || e.Path != "/"+want || *e.Vars["route_id"] != want || reply.ID != req.ID {
					errs <- fmt.Errorf("connection %d call %d: %+v", i, j, reply)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestSleepHonoursTheCall(t *testing.T) {
	c := dial(t, start(t))
	tok := prepare(t, c, "k", pc.E("conf-sleep", `{"ms":150}`))
	began := time.Now()
	reply := request(t, c, tok, nil)
	if took := time.Since(began); took < 150*time.Millisecond || reply.Type != frame.TypeHTTPReq || reply.Stop != nil || reply.Rewrite != nil {
		t.Errorf("conf-sleep: %+v after %v, want no action after 150ms", reply, took)
	}
}

func TestSocketLifecycle(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "r.sock")
	// a stale file where the socket goes is replaced
	if err := os.WriteFile(sock, []byte("stale"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := startAt(t, sock)
	waitSocket(t, r)
	if fi, err := os.Stat(sock); err != nil || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("socket %v %v", fi, err)
	}
	// SIGTERM: clean exit and no socket left
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v", err)
		}
		r.done <- err
	case <-time.After(5 * time.Second):
		t.Fatal("runner did not exit on SIGTERM")
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("socket still there after SIGTERM: %v", err)
	}

	// SIGINT too
	r = startAt(t, sock)
	waitSocket(t, r)
	_ = r.cmd.Process.Signal(syscall.SIGINT)
	if err := <-r.done; err != nil {
		t.Errorf("exit after SIGINT: %v", err)
	}
	r.done <- nil
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("socket still there after SIGINT: %v", err)
	}
}

func TestBadEnvironment(t *testing.T) {
	for _, env := range [][]string{
		{"APISIX_LISTEN_ADDRESS=/tmp/no-prefix.sock"},
		{"APISIX_LISTEN_ADDRESS=unix:" + filepath.Join(t.TempDir(), "s.sock"), "APISIX_CONF_EXPIRE_TIME=soon"},
	} {
		cmd := exec.Command(runnerBin)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Errorf("%v: runner started; want exit status 1", env)
		}
		if !strings.Contains(string(out), "APISIX_") {
			t.Errorf("%v: output %q does not name the variable", env, out)
		}
	}
}
