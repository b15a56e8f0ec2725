package plugin_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/ferrogate/ferrogate/sdk-go/plugin"
)

type conf struct {
	N int `json:"n"`
}

type p struct {
	plugin.Default[conf]
	name string
}

func (x p) Name() string { return x.name }

func TestRegister(t *testing.T) {
	reg := plugin.NewRegistry()
	if err := plugin.Register(reg, p{name: "a"}); err != nil {
		t.Fatal(err)
	}
	if err := plugin.Register(reg, p{name: "b"}); err != nil {
		t.Fatal(err)
	}
	if err := plugin.Register(reg, p{name: "a"}); !errors.Is(err, plugin.ErrDuplicate) {
		t.Errorf("duplicate: %v, want ErrDuplicate", err)
	}
	for _, bad := range []string{"", strings.Repeat("x", 129)} {
		if err := plugin.Register(reg, p{name: bad}); err == nil {
			t.Errorf("name of %d bytes accepted", len(bad))
		}
	}
	if err := plugin.Register(reg, p{name: strings.Repeat("x", 128)}); err != nil {
		t.Errorf("128-byte name: %v", err)
	}
	if got := strings.Join(reg.Names(), ","); got != "a,b,"+strings.Repeat("x", 128) {
		t.Errorf("names %s", got)
	}
	defer func() {
		if recover() == nil {
			t.Errorf("MustRegister of a duplicate did not panic")
		}
	}()
	plugin.MustRegister(reg, p{name: "a"})
}

func TestDefault(t *testing.T) {
	var d plugin.Default[conf]
	if c, err := d.ParseConf([]byte(`{"n":3,"other":1}`)); err != nil || c.N != 3 {
		t.Errorf("%+v %v", c, err)
	}
	if c, err := d.ParseConf(nil); err != nil || c.N != 0 {
		t.Errorf("empty value: %+v %v", c, err)
	}
	if _, err := d.ParseConf([]byte(`{"n":"x"}`)); err == nil {
		t.Errorf("bad JSON accepted")
	}
	if err := d.RequestFilter(context.Background(), conf{}, nil, nil); err != nil {
		t.Error(err)
	}
	if err := d.ResponseFilter(context.Background(), conf{}, nil); err != nil {
		t.Error(err)
	}
	// the zero Registry works too
	var reg plugin.Registry
	if err := plugin.Register(&reg, p{name: "z"}); err != nil {
		t.Error(err)
	}
}
