package runtime

import (
	"sync"
	"time"
)

// link is one plugin of a prepared chain.
type link struct {
	name  string
	bound Bound
}

type prepared struct {
	chain   []link
	key     string
	expires time.Time
}

// ConfCache maps conf tokens to prepared plugin chains. A token expires TTL after its last
// prepare; the gateway re-prepares a conf in use before that (APISIX_CONF_EXPIRE_TIME).
type ConfCache struct {
	TTL time.Duration
	Now func() time.Time // for tests; nil: time.Now

	mu        sync.RWMutex
	last      uint32
	byToken   map[uint32]*prepared
	byKey     map[string]uint32
	nextSweep time.Time
}

func (c *ConfCache) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// byKeyFresh returns the live token prepared under key and renews it.
func (c *ConfCache) byKeyFresh(key string, now time.Time) (uint32, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.byKey[key]
	if !ok {
		return 0, false
	}
	p := c.byToken[t]
	if p == nil || !now.Before(p.expires) {
		return 0, false
	}
	p.expires = now.Add(c.TTL)
	return t, true
}

// Prepare returns the token of a chain. A key seen before (the gateway's idempotency key) gets its
// live token back; otherwise build makes the chain (outside the lock) and a new token is issued.
func (c *ConfCache) Prepare(key string, build func() ([]link, error)) (uint32, error) {
	now := c.now()
	if key != "" {
		if t, ok := c.byKeyFresh(key, now); ok {
			return t, nil
		}
	}
	chain, err := build()
	if err != nil {
		return 0, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byToken == nil {
		c.byToken, c.byKey = map[uint32]*prepared{}, map[string]uint32{}
	}
	if now.After(c.nextSweep) {
		c.sweepLocked(now)
		c.nextSweep = now.Add(c.TTL / 4)
	}
	for {
		c.last++
		if _, used := c.byToken[c.last]; c.last != 0 && !used {
			break
		}
	}
	c.byToken[c.last] = &prepared{chain: chain, key: key, expires: now.Add(c.TTL)}
	if key != "" {
		c.byKey[key] = c.last
	}
	return c.last, nil
}

func (c *ConfCache) sweepLocked(now time.Time) {
	for t, p := range c.byToken {
		if !now.Before(p.expires) {
			delete(c.byToken, t)
			if c.byKey[p.key] == t {
				delete(c.byKey, p.key)
			}
		}
	}
}

// Get returns the chain of a live token.
func (c *ConfCache) Get(token uint32) ([]link, bool) {
	c.mu.RLock()
	p := c.byToken[token]
	var expires time.Time
	if p != nil {
		expires = p.expires
	}
	c.mu.RUnlock()
	if p == nil || !c.now().Before(expires) {
		return nil, false
	}
	return p.chain, true
}

// Len returns the number of tokens held, expired ones not yet swept included.
func (c *ConfCache) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.byToken)
}
