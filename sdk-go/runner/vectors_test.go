package runner_test

// The golden vectors of runner-protocol/vectors through the real runner: every to_runner frame is
// fed to it as the gateway would send it and what the plugin sees is compared with the manifest;
// every to_gateway message a plugin can make is made through the public API and the runner's
// frame compared with the manifest (content; byte layout may differ from the Rust encoder's).

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ferrogate/ferrogate/sdk-go/internal/a6/A6/Err"
	"github.com/ferrogate/ferrogate/sdk-go/internal/a6/A6/HTTPReqCall"
	"github.com/ferrogate/ferrogate/sdk-go/internal/a6/A6/HTTPRespCall"
	vm "github.com/ferrogate/ferrogate/sdk-go/internal/a6/vectormodel"
	"github.com/ferrogate/ferrogate/sdk-go/internal/frame"
	pc "github.com/ferrogate/ferrogate/sdk-go/internal/protoclient"
	"github.com/ferrogate/ferrogate/sdk-go/plugin"
	"github.com/ferrogate/ferrogate/sdk-go/runner"
)

func modelEntries(list []plugin.Field) vm.Entries {
	out := vm.Entries{}
	for _, f := range list {
		e := vm.Entry{Name: vm.Bytes(f.Name)}
		if f.HasValue {
			e.Value = vm.Opt([]byte(f.Value))
		}
		out = append(out, e)
	}
	return out
}

func fromClient(list []pc.Entry) vm.Entries {
	out := vm.Entries{}
	for _, e := range list {
		m := vm.Entry{Name: vm.Bytes(e.Name)}
		if e.Value != nil {
			m.Value = vm.Opt([]byte(*e.Value))
		}
		out = append(out, m)
	}
	return out
}

// applyEntries writes manifest entries through the API: a value sets (later ones add), none removes.
func applyEntries(f *plugin.Fields, list vm.Entries) {
	seen := map[string]bool{}
	for _, e := range list {
		n := string(e.Name)
		switch {
		case e.Value == nil:
			f.Del(n)
		case seen[n]:
			f.Add(n, string(*e.Value))
		default:
			f.Set(n, string(*e.Value))
		}
		seen[n] = true
	}
}

func canon(kind string, body any) string { return vm.Canon(vm.Message{Kind: kind, Body: body}) }

type recorder struct {
	mu   sync.Mutex
	seen []string
	conf []vm.Entry
}

func (r *recorder) add(s string) { r.mu.Lock(); r.seen = append(r.seen, s); r.mu.Unlock() }
func (r *recorder) last() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.seen) == 0 {
		return ""
	}
	return r.seen[len(r.seen)-1]
}

func TestVectorsToRunner(t *testing.T) {
	dir, vectors := vm.LoadManifest(t)
	rec := &recorder{}
	reg := plugin.NewRegistry()
	// the plugins of prepare_conf record the values they parse
	for _, name := range []string{"say", "auth"} {
		plugin.MustRegister(reg, confRecorder{name: name, rec: rec})
	}
	plugin.MustRegister(reg, fn[struct{}]{name: "see",
		req: func(_ context.Context, _ struct{}, w httpWriter, r *plugin.Request) error {
			m := &vm.HTTPRequestMsg{ID: r.ID(), Method: r.Method(), Path: vm.Bytes(r.Path()),
				Args: modelEntries(r.Args().All()), Headers: modelEntries(r.Header().All())}
			if ip := r.SrcIP(); ip.IsValid() {
				m.SrcIP = ip.AsSlice()
			}
			rec.add(canonNoToken(m))
			w.WriteHeader(200)
			return nil
		},
		resp: func(_ context.Context, _ struct{}, w *plugin.UpstreamResponse) error {
			rec.add(canon("HttpResponse", &vm.HTTPResponseMsg{ID: w.ID(), Status: uint16(w.UpstreamStatus()), Headers: modelEntries(w.Header().All())}))
			return nil
		}})
	plugin.MustRegister(reg, fn[struct{}]{name: "ask",
		req: func(_ context.Context, _ struct{}, w httpWriter, r *plugin.Request) error {
			v, ok, err := r.Var("x")
			if err != nil {
				return err
			}
			var res *vm.Bytes
			if ok {
				res = vm.Opt(v)
			}
			rec.add(canon("ExtraInfoAnswer", &res))
			w.WriteHeader(200)
			return nil
		}})
	c := client(t, serve(t, reg, runner.Options{}))
	see, _ := c.MustPrepare("see", pc.E("see", ""))
	ask, _ := c.MustPrepare("ask", pc.E("ask", ""))

	for _, v := range vectors {
		if v.Direction != "to_runner" {
			continue
		}
		t.Run(v.Name, func(t *testing.T) {
			raw, err := vm.ReadFrame(dir, v.File)
			if err != nil {
				t.Fatal(err)
			}
			payload, err := vm.SplitFrame(raw, v.Type)
			if err != nil {
				t.Fatal(err)
			}
			switch body := v.Message.Body.(type) {
			case *vm.PrepareConfMsg:
				rec.takeConf()
				if err := c.WriteFrame(frame.TypePrepare, payload); err != nil {
					t.Fatal(err)
				}
				if ty, _, err := c.ReadFrame(); err != nil || ty != frame.TypePrepare {
					t.Fatalf("reply type %d %v", ty, err)
				}
				got := canon("PrepareConf", &vm.PrepareConfMsg{Conf: rec.takeConf(), Key: body.Key})
				if want := canon("PrepareConf", body); got != want {
					t.Errorf("parsed %s\nwant %s", got, want)
				}
			case *vm.HTTPRequestMsg:
				HTTPReqCall.GetRootAsReq(payload, 0).MutateConfToken(see)
				if err := c.WriteFrame(frame.TypeHTTPReq, payload); err != nil {
					t.Fatal(err)
				}
				if ty, _, err := c.ReadFrame(); err != nil || ty != frame.TypeHTTPReq {
					t.Fatalf("reply type %d %v", ty, err)
				}
				if got, want := rec.last(), canonNoToken(body); got != want {
					t.Errorf("plugin saw %s\nwant %s", vm.Clip(got), vm.Clip(want))
				}
			case *vm.HTTPResponseMsg:
				HTTPRespCall.GetRootAsReq(payload, 0).MutateConfToken(see)
				if err := c.WriteFrame(frame.TypeHTTPResp, payload); err != nil {
					t.Fatal(err)
				}
				if ty, _, err := c.ReadFrame(); err != nil || ty != frame.TypeHTTPResp {
					t.Fatalf("reply type %d %v", ty, err)
				}
				b := *body
				b.ConfToken = 0
				if got, want := rec.last(), canon("HttpResponse", &b); got != want {
					t.Errorf("plugin saw %s\nwant %s", got, want)
				}
			case **vm.Bytes:
				if err := c.WriteFrame(frame.TypeHTTPReq, pc.RequestBytes(pc.HTTPRequest{ID: 1, ConfToken: ask})); err != nil {
					t.Fatal(err)
				}
				if ty, _, err := c.ReadFrame(); err != nil || ty != frame.TypeExtraInfo {
					t.Fatalf("question type %d %v", ty, err)
				}
				if err := c.WriteFrame(frame.TypeExtraInfo, payload); err != nil {
					t.Fatal(err)
				}
				if ty, _, err := c.ReadFrame(); err != nil || ty != frame.TypeHTTPReq {
					t.Fatalf("reply type %d %v", ty, err)
				}
				if got, want := rec.last(), canon("ExtraInfoAnswer", body); got != want {
					t.Errorf("plugin got %s\nwant %s", vm.Clip(got), vm.Clip(want))
				}
			default:
				t.Fatalf("unhandled %T", body)
			}
		})
	}
}

// canonNoToken is the request without its conf token (the runner's token replaces the vector's).
func canonNoToken(m *vm.HTTPRequestMsg) string {
	c := *m
	c.ConfToken = 0
	return canon("HttpRequest", &c)
}

type confRecorder struct {
	plugin.Default[string]
	name string
	rec  *recorder
}

func (p confRecorder) Name() string { return p.name }

func (p confRecorder) ParseConf(value []byte) (string, error) {
	p.rec.mu.Lock()
	p.rec.conf = append(p.rec.conf, vm.Entry{Name: vm.Bytes(p.name), Value: vm.Opt(value)})
	p.rec.mu.Unlock()
	return string(value), nil
}

func (r *recorder) takeConf() []vm.Entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.conf
	r.conf = nil
	return c
}

func TestVectorsToGateway(t *testing.T) {
	_, vectors := vm.LoadManifest(t)
	byName := map[string]vm.Vector{}
	for _, v := range vectors {
		byName[v.Name] = v
	}
	reg := plugin.NewRegistry()
	// "replay" makes the reply of the vector named by its conf through the public API
	plugin.MustRegister(reg, fn[string]{name: "replay",
		req: func(_ context.Context, name string, w httpWriter, r *plugin.Request) error {
			m := byName[name].Message.Body.(*vm.HTTPRequestReplyMsg)
			switch {
			case m.Action == nil:
			case m.Action.Stop != nil:
				s := m.Action.Stop
				for _, e := range s.Headers {
					if e.Value == nil {
						w.Header()[string(e.Name)] = []string{}
					} else {
						w.Header()[string(e.Name)] = append(w.Header()[string(e.Name)], string(*e.Value))
					}
				}
				if s.Status != 0 {
					w.WriteHeader(int(s.Status))
				}
				_, _ = w.Write(s.Body)
			case m.Action.Rewrite != nil:
				rw := m.Action.Rewrite
				if rw.Path != nil {
					r.SetPath(string(*rw.Path))
				}
				applyEntries(r.Header(), rw.Headers)
				applyEntries(r.Args(), rw.Args)
				applyEntries(r.RespHeader(), rw.RespHeaders)
				r.SetBody(rw.Body)
			}
			return nil
		},
		resp: func(_ context.Context, name string, w *plugin.UpstreamResponse) error {
			m := byName[name].Message.Body.(*vm.HTTPResponseReplyMsg)
			if m.Status != 0 {
				w.WriteHeader(int(m.Status))
			}
			if len(m.Headers) > 0 {
				w.Header().Reset()
				applyEntries(w.Header(), m.Headers)
			}
			_, _ = w.Write(m.Body)
			return nil
		}})
	plugin.MustRegister(reg, fn[string]{name: "ask",
		req: func(_ context.Context, what string, _ httpWriter, r *plugin.Request) error {
			if what == "ReqBody" {
				_, err := r.Body()
				return err
			}
			_, _, err := r.Var(what)
			return err
		},
		resp: func(_ context.Context, _ string, w *plugin.UpstreamResponse) error {
			_, err := w.ReadBody()
			return err
		}})
	plugin.MustRegister(reg, fn[struct{}]{name: "fail",
		req: func(context.Context, struct{}, httpWriter, *plugin.Request) error { return fmt.Errorf("no") }})
	c := client(t, serve(t, reg, runner.Options{}))

	for _, v := range vectors {
		if v.Direction != "to_gateway" {
			continue
		}
		t.Run(v.Name, func(t *testing.T) {
			want := vm.Canon(v.Message)
			var got string
			switch body := v.Message.Body.(type) {
			case *string: // Error
				var code *Err.Code
				switch *body {
				case "BadRequest":
					_, code, _ = c.Prepare("", pc.E("no-such-plugin", ""))
				case "ServiceUnavailable":
					tok, _ := c.MustPrepare("fail", pc.E("fail", ""))
					reply, _ := c.Request(pc.HTTPRequest{ID: 1, ConfToken: tok}, nil)
					code = &reply.ErrCode
				case "ConfTokenNotFound":
					reply, _ := c.Request(pc.HTTPRequest{ID: 1, ConfToken: 1 << 30}, nil)
					code = &reply.ErrCode
				}
				if code == nil {
					t.Fatal("no error reply")
				}
				name := map[Err.Code]string{Err.CodeBAD_REQUEST: "BadRequest", Err.CodeSERVICE_UNAVAILABLE: "ServiceUnavailable", Err.CodeCONF_TOKEN_NOT_FOUND: "ConfTokenNotFound"}[*code]
				got = canon("Error", &name)
			case *uint32:
				t.Skip("token values are the runner's own: covered by the token tests")
			case *vm.HTTPRequestReplyMsg:
				if body.Action != nil && body.Action.Rewrite != nil && isEmptyRewrite(body.Action.Rewrite) {
					t.Skip("an empty Rewrite changes nothing: the runner sends no action instead")
				}
				tok, _ := c.MustPrepare("", pc.E("replay", fmt.Sprintf("%q", v.Name)))
				reply, err := c.Request(pc.HTTPRequest{ID: body.ID, ConfToken: tok}, nil)
				if err != nil || reply.Type != frame.TypeHTTPReq {
					t.Fatalf("%+v %v", reply, err)
				}
				m := &vm.HTTPRequestReplyMsg{ID: reply.ID}
				switch {
				case reply.Stop != nil:
					m.Action = &vm.ActionMsg{Stop: &vm.StopMsg{Status: reply.Stop.Status, Headers: fromClient(reply.Stop.Headers), Body: reply.Stop.Body}}
					// stop headers go out sorted by name: compare them sorted
					sortEntries(body.Action.Stop.Headers)
				case reply.Rewrite != nil:
					rw := reply.Rewrite
					m.Action = &vm.ActionMsg{Rewrite: &vm.RewriteMsg{Headers: fromClient(rw.Headers), Args: fromClient(rw.Args), RespHeaders: fromClient(rw.RespHeaders), Body: rw.Body}}
					if rw.Path != nil {
						m.Action.Rewrite.Path = vm.Opt([]byte(*rw.Path))
					}
				}
				got, want = canon("HttpRequestReply", m), vm.Canon(v.Message)
			case *vm.HTTPResponseReplyMsg:
				tok, _ := c.MustPrepare("", pc.E("replay", fmt.Sprintf("%q", v.Name)))
				reply, err := c.Response(pc.HTTPResponse{ID: body.ID, Status: 200, Headers: []pc.Entry{pc.E("x-up", "1")}, ConfToken: tok}, nil)
				if err != nil || reply.Type != frame.TypeHTTPResp {
					t.Fatalf("%+v %v", reply, err)
				}
				got = canon("HttpResponseReply", &vm.HTTPResponseReplyMsg{ID: reply.ID, Status: reply.Status, Headers: fromClient(reply.Headers), Body: reply.Body})
			case *vm.ExtraInfoMsg:
				what := body.Kind
				if body.Var != nil {
					what = string(*body.Var)
				}
				tok, _ := c.MustPrepare("", pc.E("ask", fmt.Sprintf("%q", what)))
				var reply *pc.Reply
				if body.Kind == "RespBody" {
					reply, _ = c.Response(pc.HTTPResponse{ID: 1, ConfToken: tok}, nil)
				} else {
					reply, _ = c.Request(pc.HTTPRequest{ID: 1, ConfToken: tok}, nil)
				}
				if reply == nil || len(reply.Questions) != 1 {
					t.Fatalf("questions: %+v", reply)
				}
				q := reply.Questions[0]
				m := &vm.ExtraInfoMsg{Kind: map[string]string{"var": "Var", "req_body": "ReqBody", "resp_body": "RespBody"}[q.Kind]}
				if q.Kind == "var" {
					m.Var = vm.Opt([]byte(q.Name))
				}
				got = canon("ExtraInfo", m)
			default:
				t.Fatalf("unhandled %T", body)
			}
			if got != want {
				t.Errorf("runner sent %s\nwant %s", got, want)
			}
		})
	}
}

func isEmptyRewrite(r *vm.RewriteMsg) bool {
	return r.Path == nil && len(r.Headers) == 0 && len(r.Args) == 0 && len(r.RespHeaders) == 0 && len(r.Body) == 0
}

func sortEntries(list vm.Entries) {
	slices.SortStableFunc(list, func(a, b vm.Entry) int { return strings.Compare(string(a.Name), string(b.Name)) })
}
