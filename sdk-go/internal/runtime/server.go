package runtime

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"
)

// Serve accepts gateway connections on ln until ctx is done, each served on its own goroutine.
// On return the listener and every connection are closed and their goroutines have ended (or
// shutdownGrace has passed).
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	var (
		mu    sync.Mutex
		conns = map[net.Conn]struct{}{}
		wg    sync.WaitGroup
	)
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var err error
	for {
		nc, aerr := ln.Accept()
		if aerr != nil {
			if ctx.Err() == nil && !errors.Is(aerr, net.ErrClosed) {
				var ne net.Error
				if errors.As(aerr, &ne) && ne.Timeout() {
					time.Sleep(10 * time.Millisecond)
					continue
				}
				err = aerr
			}
			break
		}
		mu.Lock()
		conns[nc] = struct{}{}
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			newConn(s, nc, ctx).serve()
			mu.Lock()
			delete(conns, nc)
			mu.Unlock()
		}()
	}
	ln.Close()
	mu.Lock()
	for nc := range conns {
		nc.Close()
	}
	mu.Unlock()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(shutdownGrace):
	}
	return err
}

const shutdownGrace = 5 * time.Second
