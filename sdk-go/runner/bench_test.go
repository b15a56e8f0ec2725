package runner_test

import (
	"context"
	"io"
	"net"
	"testing"

	"github.com/ferrogate/ferrogate/sdk-go/internal/a6/A6"
	"github.com/ferrogate/ferrogate/sdk-go/internal/frame"
	pc "github.com/ferrogate/ferrogate/sdk-go/internal/protoclient"
	"github.com/ferrogate/ferrogate/sdk-go/plugin"
	"github.com/ferrogate/ferrogate/sdk-go/runner"
)

type hdrConf struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// setHeader is the benchmark scenario's plugin: rewrite one request header.
func setHeader() plugin.Plugin[hdrConf] {
	return fn[hdrConf]{name: "set-header", req: func(_ context.Context, c hdrConf, _ httpWriter, r *plugin.Request) error {
		r.Header().Set(c.Name, c.Value)
		return nil
	}}
}

// rawCall sends a pre-encoded request frame and reads the reply into buf: no allocation on the
// client side, so allocs/op are the runner's.
func rawCall(tb testing.TB, nc net.Conn, req, buf []byte) {
	if _, err := nc.Write(req); err != nil {
		tb.Fatal(err)
	}
	if _, err := io.ReadFull(nc, buf[:frame.HeaderLen]); err != nil {
		tb.Fatal(err)
	}
	ty, n := frame.ParseHeader(buf)
	if ty != frame.TypeHTTPReq {
		tb.Fatalf("reply type %d", ty)
	}
	if _, err := io.ReadFull(nc, buf[:n]); err != nil {
		tb.Fatal(err)
	}
}

func benchSetup(tb testing.TB) (net.Conn, []byte) {
	reg := plugin.NewRegistry()
	plugin.MustRegister(reg, setHeader())
	sock := serve(tb, reg, runner.Options{})
	c := client(tb, sock)
	tok, err := c.MustPrepare("k", pc.E("set-header", `{"name":"x-bench","value":"1"}`))
	if err != nil {
		tb.Fatal(err)
	}
	payload := pc.RequestBytes(pc.HTTPRequest{
		ID: 1, SrcIP: []byte{127, 0, 0, 1}, Method: A6.MethodGET, Path: "/bench", ConfToken: tok,
		Headers: []pc.Entry{pc.E("host", "bench.test"), pc.E("user-agent", "wrk"), pc.E("accept", "*/*")},
	})
	req := make([]byte, frame.HeaderLen+len(payload))
	_ = frame.PutHeader(req, frame.TypeHTTPReq, len(payload))
	copy(req[frame.HeaderLen:], payload)
	return c.Conn, req
}

func BenchmarkRequestCall(b *testing.B) {
	nc, req := benchSetup(b)
	buf := make([]byte, 64<<10)
	b.ReportAllocs()
	for b.Loop() {
		rawCall(b, nc, req, buf)
	}
}

// TestRequestCallAllocations keeps the hot path lean: a call whose plugin sets one header costs
// one allocation (the call's context; 2 allowed for slack), nothing for decoding or the reply.
func TestRequestCallAllocations(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation count")
	}
	nc, req := benchSetup(t)
	buf := make([]byte, 64<<10)
	rawCall(t, nc, req, buf) // warm the connection's buffers
	allocs := testing.AllocsPerRun(200, func() { rawCall(t, nc, req, buf) })
	if allocs > 2 {
		t.Errorf("%.1f allocations per request call, want at most 2", allocs)
	}
	t.Logf("%.1f allocations per request call", allocs)
}
