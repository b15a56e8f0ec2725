package plugin

import "github.com/ferrogate/ferrogate/sdk-go/internal/runtime"

// Field is one entry of a Fields list: a header or a query argument.
type Field struct {
	Name  string
	Value string
	// HasValue is false for an entry without value: a query flag (`?flag`); among the changes
	// the runner sends, "remove this name".
	HasValue bool
}

// Fields is an ordered list of name/value pairs: request headers, query arguments, response
// headers. Header names are case-insensitive (the gateway sends them in lower case), argument
// names exact. The list records which names a plugin changed, so that the runner sends only
// those.
//
// The zero value is an empty list. Fields is not safe for concurrent use.
type Fields runtime.Fields

// rt is the runner's view of f (the same memory: no copy).
func (f *Fields) rt() *runtime.Fields { return (*runtime.Fields)(f) }

// Get returns the first value of name, or "" when it has none.
func (f *Fields) Get(name string) string { return f.rt().Get(name) }

// Lookup returns the first value of name and whether there is one.
func (f *Fields) Lookup(name string) (string, bool) { return f.rt().Lookup(name) }

// Has tells whether name is present, with or without value (an argument `?flag` has none).
func (f *Fields) Has(name string) bool { return f.rt().Has(name) }

// Values returns all values of name in order.
func (f *Fields) Values(name string) []string { return f.rt().Values(name) }

// All returns a copy of the list in order, entries without value included.
func (f *Fields) All() []Field { return runtime.All[Field](f.rt()) }

// Len returns the number of entries.
func (f *Fields) Len() int { return f.rt().Len() }

// Set replaces every value of name with value.
func (f *Fields) Set(name, value string) { f.rt().Set(name, value) }

// Add appends a value to name.
func (f *Fields) Add(name, value string) { f.rt().Add(name, value) }

// Del removes name. The runner sends the removal as an entry without value.
func (f *Fields) Del(name string) { f.rt().Del(name) }

// Reset empties the list. In a response filter the entries added afterwards replace all of the
// upstream's headers; elsewhere every name the list held counts as removed.
func (f *Fields) Reset() { f.rt().Reset() }

// Changed tells whether a plugin changed the list.
func (f *Fields) Changed() bool { return f.rt().Changed() }

// Changes calls fn for what the runner sends for a changed list: for each changed name in order
// of first change, its values in order, or one entry without value when it has none left.
func (f *Fields) Changes(fn func(name string, value string, hasValue bool)) { f.rt().Changes(fn) }
