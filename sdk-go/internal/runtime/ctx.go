package runtime

import (
	"context"
	"sync"
	"time"
)

// callCtx is the context of one call: its deadline is known at once, but its timer and done
// channel are made only when a plugin asks for Done, so a call whose plugins never wait costs no
// timer. It is cancelled when the call ends or the server shuts down.
type callCtx struct {
	parent   context.Context
	deadline time.Time

	mu        sync.Mutex
	done      chan struct{}
	err       error
	timer     *time.Timer
	stopAfter func() bool
}

func newCallCtx(parent context.Context, deadline time.Time) *callCtx {
	return &callCtx{parent: parent, deadline: deadline}
}

func (c *callCtx) Deadline() (time.Time, bool) { return c.deadline, true }

func (c *callCtx) Value(key any) any { return c.parent.Value(key) }

func (c *callCtx) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.errLocked()
}

func (c *callCtx) errLocked() error {
	if c.err != nil {
		return c.err
	}
	if err := c.parent.Err(); err != nil {
		c.err = err
	} else if !time.Now().Before(c.deadline) {
		c.err = context.DeadlineExceeded
	}
	return c.err
}

func (c *callCtx) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done != nil {
		return c.done
	}
	c.done = make(chan struct{})
	if c.errLocked() != nil {
		close(c.done)
		return c.done
	}
	c.timer = time.AfterFunc(time.Until(c.deadline), func() { c.cancel(context.DeadlineExceeded) })
	c.stopAfter = context.AfterFunc(c.parent, func() { c.cancel(c.parent.Err()) })
	return c.done
}

func (c *callCtx) cancel(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = err
	}
	if c.done != nil {
		select {
		case <-c.done:
		default:
			close(c.done)
		}
	}
	if c.timer != nil {
		c.timer.Stop()
	}
	if c.stopAfter != nil {
		c.stopAfter()
	}
}

// finish ends the call: the context reports Canceled from now on (unless it already failed).
func (c *callCtx) finish() { c.cancel(context.Canceled) }
