package runtime

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestCallCtxDeadline(t *testing.T) {
	ctx := newCallCtx(context.Background(), time.Now().Add(30*time.Millisecond))
	if d, ok := ctx.Deadline(); !ok || time.Until(d) > 30*time.Millisecond {
		t.Errorf("deadline %v %v", d, ok)
	}
	if ctx.Err() != nil {
		t.Fatal("done early")
	}
	select {
	case <-ctx.Done():
	case <-time.After(2 * time.Second):
		t.Fatal("Done never closed")
	}
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Errorf("err %v", ctx.Err())
	}
	ctx.finish()
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Errorf("finish changed the error to %v", ctx.Err())
	}
}

func TestCallCtxFinishAndParent(t *testing.T) {
	ctx := newCallCtx(context.Background(), time.Now().Add(time.Hour))
	done := ctx.Done()
	ctx.finish()
	select {
	case <-done:
	default:
		t.Fatal("finish did not close Done")
	}
	if !errors.Is(ctx.Err(), context.Canceled) {
		t.Errorf("err %v", ctx.Err())
	}
	// without Done ever called, Err still reports the end
	ctx = newCallCtx(context.Background(), time.Now().Add(time.Hour))
	ctx.finish()
	if !errors.Is(ctx.Err(), context.Canceled) {
		t.Errorf("err %v", ctx.Err())
	}

	parent, cancel := context.WithCancel(context.WithValue(context.Background(), "k", "v"))
	ctx = newCallCtx(parent, time.Now().Add(time.Hour))
	if ctx.Value("k") != "v" {
		t.Errorf("value not inherited")
	}
	done = ctx.Done()
	cancel()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("parent cancel did not reach the call")
	}
	ctx.finish()
}
