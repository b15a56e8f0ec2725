package runtime

import "strings"

// Field is one name/value pair as the protocol carries it: package plugin's Field, which
// documents it.
type Field fieldStruct

// fieldStruct is the struct type of Field, which package plugin's Field shares (see All).
type fieldStruct = struct {
	Name     string
	Value    string
	HasValue bool
}

// Fields is an ordered list of name/value pairs that records which names a plugin changed, so
// that the runner sends only those: package plugin's Fields, which documents its methods. Names
// are case-insensitive when fold is set (headers). The zero value is an empty list.
type Fields struct {
	list    []Field
	touched []string // changed names, in order of first change
	removed []string // names removed with Del and not added since
	fold    bool     // names are case-insensitive (headers)
	load    func(*Fields)
	loaded  bool
	cleared bool // Reset was called: the whole list is the new state
}

func (f *Fields) reset(fold bool, load func(*Fields)) {
	clear(f.list)
	f.list = f.list[:0]
	clear(f.touched)
	f.touched = f.touched[:0]
	clear(f.removed)
	f.removed = f.removed[:0]
	f.fold, f.load, f.loaded, f.cleared = fold, load, load == nil, false
}

// ensure loads the gateway's entries on first use. Set and Del work before that (the common
// "set one header" plugin then never decodes the others): the entries they made stay after the
// loaded ones, and loaded entries of the names they changed are skipped.
func (f *Fields) ensure() {
	if f.loaded {
		return
	}
	f.loaded = true
	if f.load == nil {
		return
	}
	if len(f.touched) == 0 {
		f.load(f)
		return
	}
	pending := append([]Field(nil), f.list...)
	f.list = f.list[:0]
	f.load(f)
	out := f.list[:0]
	for _, e := range f.list {
		if !f.changed(e.Name) {
			out = append(out, e)
		}
	}
	clear(f.list[len(out):])
	f.list = append(out, pending...)
}

func (f *Fields) changed(name string) bool {
	for _, t := range f.touched {
		if f.same(t, name) {
			return true
		}
	}
	return false
}

func (f *Fields) key(name string) string {
	if f.fold {
		return lower(name)
	}
	return name
}

func (f *Fields) same(a, b string) bool {
	if f.fold {
		return strings.EqualFold(a, b)
	}
	return a == b
}

// lower returns s in ASCII lower case without allocating when it already is.
func lower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}

func (f *Fields) touch(name string) {
	for _, t := range f.touched {
		if f.same(t, name) {
			return
		}
	}
	f.touched = append(f.touched, name)
}

// Get returns the first value of name, or "" when it has none.
func (f *Fields) Get(name string) string {
	v, _ := f.Lookup(name)
	return v
}

// Lookup returns the first value of name and whether there is one.
func (f *Fields) Lookup(name string) (string, bool) {
	f.ensure()
	for i := range f.list {
		if e := &f.list[i]; e.HasValue && f.same(e.Name, name) {
			return e.Value, true
		}
	}
	return "", false
}

// Has tells whether name is present, with or without value (an argument `?flag` has none).
func (f *Fields) Has(name string) bool {
	f.ensure()
	for i := range f.list {
		if f.same(f.list[i].Name, name) {
			return true
		}
	}
	return false
}

// Values returns all values of name in order.
func (f *Fields) Values(name string) []string {
	f.ensure()
	var out []string
	for i := range f.list {
		if e := &f.list[i]; e.HasValue && f.same(e.Name, name) {
			out = append(out, e.Value)
		}
	}
	return out
}

// All returns a copy of f's list in order, entries without value included, as a slice of T:
// Field, or package plugin's Field (a type of its own with the same fields, converted while
// copying). It returns nil for an empty list.
func All[T ~fieldStruct](f *Fields) []T {
	f.ensure()
	if len(f.list) == 0 {
		return nil
	}
	out := make([]T, len(f.list))
	for i, e := range f.list {
		out[i] = T(e)
	}
	return out
}

// Len returns the number of entries.
func (f *Fields) Len() int {
	f.ensure()
	return len(f.list)
}

// Set replaces every value of name with value.
func (f *Fields) Set(name, value string) {
	name = f.key(name)
	f.drop(name)
	f.list = append(f.list, Field{Name: name, Value: value, HasValue: true})
	f.touch(name)
}

// Add appends a value to name.
func (f *Fields) Add(name, value string) {
	f.ensure()
	name = f.key(name)
	f.unremove(name)
	f.list = append(f.list, Field{Name: name, Value: value, HasValue: true})
	f.touch(name)
}

// Del removes name. The runner sends the removal as an entry without value.
func (f *Fields) Del(name string) {
	name = f.key(name)
	f.drop(name)
	f.touch(name)
	for _, r := range f.removed {
		if f.same(r, name) {
			return
		}
	}
	f.removed = append(f.removed, name)
}

// Reset empties the list. In a response filter the entries added afterwards replace all of the
// upstream's headers; elsewhere every name the list held counts as removed.
func (f *Fields) Reset() {
	f.ensure()
	for i := range f.list {
		f.touch(f.key(f.list[i].Name))
	}
	clear(f.list)
	f.list = f.list[:0]
	f.cleared = true
}

// drop removes every entry of name.
func (f *Fields) drop(name string) {
	out := f.list[:0]
	for _, e := range f.list {
		if !f.same(e.Name, name) {
			out = append(out, e)
		}
	}
	clear(f.list[len(out):])
	f.list = out
	f.unremove(name)
}

func (f *Fields) unremove(name string) {
	for i, r := range f.removed {
		if f.same(r, name) {
			f.removed = append(f.removed[:i], f.removed[i+1:]...)
			return
		}
	}
}

// Changed tells whether a plugin changed the list.
func (f *Fields) Changed() bool { return len(f.touched) > 0 || f.cleared }

// Changes calls fn for what the runner sends for a changed list: for each changed name in order
// of first change, its values in order, or one entry without value when it has none left.
func (f *Fields) Changes(fn func(name string, value string, hasValue bool)) {
	for _, name := range f.touched {
		n := 0
		for i := range f.list {
			if e := &f.list[i]; e.HasValue && f.same(e.Name, name) {
				fn(e.Name, e.Value, true)
				n++
			}
		}
		if n == 0 {
			fn(name, "", false)
		}
	}
}

// appendRaw adds an entry as the gateway sent it (no change recorded).
func (f *Fields) appendRaw(name, value string, hasValue bool) {
	f.list = append(f.list, Field{Name: name, Value: value, HasValue: hasValue})
}
