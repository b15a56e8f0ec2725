package runtime

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
)

// Bound is a plugin together with one parsed conf, ready to filter calls.
type Bound interface {
	Request(ctx context.Context, w http.ResponseWriter, r *Request) error
	Response(ctx context.Context, w *UpstreamResponse) error
}

// Entry is a registered plugin: its name and how to parse a conf value into a Bound.
type Entry struct {
	Name  string
	Parse func(value []byte) (Bound, error)
}

// Registry holds the plugins a runner serves, by name.
type Registry struct {
	mu      sync.RWMutex
	entries map[string]*Entry
	order   []string
}

// RegistryOf returns the runtime registry inside a *plugin.Registry; package plugin sets it.
var RegistryOf func(v any) *Registry

// ErrDuplicate is returned when a name is registered twice.
var ErrDuplicate = errors.New("plugin already registered")

// Add registers e. It fails for an empty or over-long name and for a name already registered.
func (r *Registry) Add(e Entry) error {
	if e.Name == "" {
		return errors.New("plugin name is empty")
	}
	if len(e.Name) > 128 {
		return fmt.Errorf("plugin name %.20q...: longer than 128 bytes", e.Name)
	}
	if e.Parse == nil {
		return fmt.Errorf("plugin %q: no conf parser", e.Name)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.entries == nil {
		r.entries = map[string]*Entry{}
	}
	if _, dup := r.entries[e.Name]; dup {
		return fmt.Errorf("%w: %q", ErrDuplicate, e.Name)
	}
	r.entries[e.Name] = &e
	r.order = append(r.order, e.Name)
	return nil
}

// Lookup returns the plugin registered under name.
func (r *Registry) Lookup(name string) (*Entry, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	e, ok := r.entries[name]
	return e, ok
}

// Names returns the registered names in registration order.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return append([]string(nil), r.order...)
}
