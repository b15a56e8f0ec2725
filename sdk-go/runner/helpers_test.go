package runner_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	pc "github.com/ferrogate/ferrogate/sdk-go/internal/protoclient"
	"github.com/ferrogate/ferrogate/sdk-go/plugin"
	"github.com/ferrogate/ferrogate/sdk-go/runner"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// serve runs reg in-process on a fresh socket until the test ends; it returns the socket path.
func serve(t testing.TB, reg *plugin.Registry, opts runner.Options) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "r.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	if opts.Logger == nil {
		opts.Logger = quiet
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runner.Serve(ctx, ln, reg, opts) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Serve did not return after cancel")
		}
	})
	return sock
}

func client(t testing.TB, sock string) *pc.Client {
	t.Helper()
	c, err := pc.Dial(sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// fn is a plugin made of functions, for tests.
type fn[C any] struct {
	plugin.Default[C]
	name string
	req  func(ctx context.Context, conf C, w httpWriter, r *plugin.Request) error
	resp func(ctx context.Context, conf C, w *plugin.UpstreamResponse) error
}

func (p fn[C]) Name() string { return p.name }

func (p fn[C]) RequestFilter(ctx context.Context, conf C, w httpWriter, r *plugin.Request) error {
	if p.req == nil {
		return nil
	}
	return p.req(ctx, conf, w, r)
}

func (p fn[C]) ResponseFilter(ctx context.Context, conf C, w *plugin.UpstreamResponse) error {
	if p.resp == nil {
		return nil
	}
	return p.resp(ctx, conf, w)
}
