package runtime

import (
	"errors"
	"sync"
	"testing"
	"time"
)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func chain(name string) func() ([]link, error) {
	return func() ([]link, error) { return []link{{name: name}}, nil }
}

func TestConfCacheTokens(t *testing.T) {
	clk := &clock{now: time.Unix(1000, 0)}
	c := &ConfCache{TTL: 10 * time.Second, Now: clk.Now}
	a, _ := c.Prepare("route#1#pre#1", chain("a"))
	b, _ := c.Prepare("route#1#post#1", chain("b"))
	again, _ := c.Prepare("route#1#pre#1", func() ([]link, error) { t.Fatal("rebuilt a live key"); return nil, nil })
	noKey1, _ := c.Prepare("", chain("c"))
	noKey2, _ := c.Prepare("", chain("c"))
	if a == 0 || a == b || again != a || noKey1 == noKey2 {
		t.Fatalf("tokens %d %d %d %d %d", a, b, again, noKey1, noKey2)
	}
	if l, ok := c.Get(b); !ok || l[0].name != "b" {
		t.Errorf("Get(b) = %v %v", l, ok)
	}
	if _, ok := c.Get(9999); ok {
		t.Errorf("unknown token found")
	}
	if _, err := c.Prepare("bad", func() ([]link, error) { return nil, errors.New("no") }); err == nil {
		t.Errorf("a failing build gave a token")
	}
}

func TestConfCacheExpiry(t *testing.T) {
	clk := &clock{now: time.Unix(1000, 0)}
	c := &ConfCache{TTL: 10 * time.Second, Now: clk.Now}
	a, _ := c.Prepare("k", chain("a"))
	b, _ := c.Prepare("other", chain("b"))
	clk.add(9 * time.Second)
	if _, ok := c.Get(a); !ok {
		t.Fatal("expired early")
	}
	// preparing the same key again renews it
	if again, _ := c.Prepare("k", chain("a")); again != a {
		t.Fatalf("renewal gave token %d, want %d", again, a)
	}
	clk.add(2 * time.Second)
	if _, ok := c.Get(a); !ok {
		t.Errorf("renewed token expired")
	}
	if _, ok := c.Get(b); ok {
		t.Errorf("token b lives past its TTL")
	}
	clk.add(10 * time.Second)
	if _, ok := c.Get(a); ok {
		t.Errorf("token a lives past its renewed TTL")
	}
	// a new prepare after expiry issues a new token and sweeps the old ones
	n, _ := c.Prepare("k", chain("a"))
	if n == a {
		t.Errorf("expired token reissued")
	}
	if c.Len() != 1 {
		t.Errorf("%d tokens held after the sweep, want 1", c.Len())
	}
}

func TestConfCacheTokenWrap(t *testing.T) {
	c := &ConfCache{TTL: time.Hour}
	c.last = ^uint32(0) - 1
	a, _ := c.Prepare("", chain("a"))
	b, _ := c.Prepare("", chain("b"))
	if a != ^uint32(0) || b != 1 {
		t.Errorf("tokens around the wrap %d %d, want max and 1 (never 0)", a, b)
	}
}

func TestConfCacheConcurrent(t *testing.T) {
	c := &ConfCache{TTL: time.Hour}
	tok, _ := c.Prepare("k", chain("a"))
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 200 {
				if i%2 == 0 {
					_, _ = c.Prepare("k", chain("a"))
				} else if _, ok := c.Get(tok); !ok {
					t.Errorf("token lost at %d", j)
					return
				}
			}
		}()
	}
	wg.Wait()
}
