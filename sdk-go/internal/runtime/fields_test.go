package runtime

import (
	"fmt"
	"strings"
	"testing"
)

func changes(f *Fields) string {
	var parts []string
	f.Changes(func(name, value string, has bool) {
		if has {
			parts = append(parts, name+"="+value)
		} else {
			parts = append(parts, name+"=<none>")
		}
	})
	return strings.Join(parts, ",")
}

func headers(entries ...string) *Fields {
	f := &Fields{}
	f.reset(true, nil)
	for _, e := range entries {
		n, v, has := strings.Cut(e, "=")
		f.appendRaw(n, v, has)
	}
	return f
}

func TestFieldsChanges(t *testing.T) {
	for _, c := range []struct {
		name string
		ops  func(f *Fields)
		want string
	}{
		{"untouched", func(*Fields) {}, ""},
		{"set replaces", func(f *Fields) { f.Set("X-A", "2") }, "x-a=2"},
		{"add appends", func(f *Fields) { f.Add("x-a", "2") }, "x-a=1,x-a=2"},
		{"set then add", func(f *Fields) { f.Set("x-n", "1"); f.Add("x-n", "2") }, "x-n=1,x-n=2"},
		{"del", func(f *Fields) { f.Del("x-a") }, "x-a=<none>"},
		{"del of an absent name", func(f *Fields) { f.Del("x-z") }, "x-z=<none>"},
		{"del then add", func(f *Fields) { f.Del("x-a"); f.Add("x-a", "3") }, "x-a=3"},
		{"order of first change", func(f *Fields) { f.Set("b", "1"); f.Set("a", "1"); f.Set("B", "2") }, "b=2,a=1"},
		{"reset removes all", func(f *Fields) { f.Reset() }, "host=<none>,x-a=<none>"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := headers("host=h", "x-a=1")
			c.ops(f)
			if got := changes(f); got != c.want {
				t.Errorf("changes %q, want %q", got, c.want)
			}
			if f.Changed() != (c.want != "") {
				t.Errorf("Changed() = %v", f.Changed())
			}
		})
	}
}

func TestFieldsRead(t *testing.T) {
	f := headers("host=h", "x-multi=1", "x-multi=2", "x-empty=")
	if f.Get("X-MULTI") != "1" || fmt.Sprint(f.Values("x-multi")) != "[1 2]" {
		t.Errorf("multi %q %v", f.Get("x-multi"), f.Values("x-multi"))
	}
	if v, ok := f.Lookup("x-empty"); !ok || v != "" {
		t.Errorf("x-empty %q %v", v, ok)
	}
	if _, ok := f.Lookup("nope"); ok || f.Has("nope") {
		t.Errorf("nope found")
	}
	f.Del("x-multi")
	if f.Has("x-multi") || f.Get("x-multi") != "" || f.Len() != 2 {
		t.Errorf("after Del: %v", All[Field](f))
	}

	// arguments: exact names, flags without value
	a := &Fields{}
	a.reset(false, nil)
	a.appendRaw("flag", "", false)
	a.appendRaw("A", "1", true)
	if !a.Has("flag") || a.Get("flag") != "" || a.Has("a") || a.Get("A") != "1" {
		t.Errorf("args %v", All[Field](a))
	}
}

func TestFieldsLoadLazily(t *testing.T) {
	loads := 0
	f := &Fields{}
	f.reset(true, func(f *Fields) { loads++; f.appendRaw("x", "1", true) })
	if loads != 0 {
		t.Fatal("loaded before use")
	}
	if f.Get("x") != "1" || f.Get("x") != "1" || loads != 1 {
		t.Errorf("loads %d", loads)
	}
}

func TestFieldsSetBeforeLoad(t *testing.T) {
	loads := 0
	f := &Fields{}
	f.reset(true, func(f *Fields) {
		loads++
		f.appendRaw("host", "h", true)
		f.appendRaw("x-a", "1", true)
		f.appendRaw("x-b", "1", true)
	})
	f.Set("X-A", "2")
	f.Del("x-b")
	f.Set("x-new", "n")
	if loads != 0 {
		t.Fatalf("Set/Del loaded the gateway's headers")
	}
	if got := changes(f); got != "x-a=2,x-b=<none>,x-new=n" {
		t.Errorf("changes %q", got)
	}
	// reading afterwards sees the gateway's entries with the changes applied
	var names []string
	for _, e := range All[Field](f) {
		names = append(names, e.Name+"="+e.Value)
	}
	if got := strings.Join(names, ","); got != "host=h,x-a=2,x-new=n" || loads != 1 {
		t.Errorf("after load: %s (loads %d)", got, loads)
	}
	f.Add("x-a", "3")
	if fmt.Sprint(f.Values("x-a")) != "[2 3]" {
		t.Errorf("x-a %v", f.Values("x-a"))
	}
}
