package e2e_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/ferrogate/ferrogate/sdk-go/internal/a6/A6"
	"github.com/ferrogate/ferrogate/sdk-go/internal/frame"
	pc "github.com/ferrogate/ferrogate/sdk-go/internal/protoclient"
)

// TestExampleRunner builds examples/go's runner and drives two of its plugins through the socket:
// token-auth (a variable asked through extra info) and replace-body (the upstream body).
func TestExampleRunner(t *testing.T) {
	src := filepath.Join("..", "..", "examples", "go")
	if _, err := os.Stat(filepath.Join(src, "go.mod")); err != nil {
		t.Skip("examples/go not present")
	}
	bin := filepath.Join(t.TempDir(), "example-runner")
	build := exec.Command("go", "build", "-o", bin, "./cmd/example-runner")
	build.Dir = src
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the example runner: %v\n%s", err, out)
	}
	c := dial(t, startBin(t, bin))

	auth := prepare(t, c, "auth", pc.E("token-auth", `{"header":"x-token","var":"expected"}`))
	for _, token := range []string{"right", "wrong"} {
		reply, err := c.Request(pc.HTTPRequest{ID: 1, Method: A6.MethodGET, Path: "/", ConfToken: auth,
			Headers: []pc.Entry{pc.E("x-token", token)}}, func(q pc.Question) []byte {
			if q.Kind == "var" && q.Name == "expected" {
				return []byte("right")
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		switch token {
		case "right":
			if reply.Rewrite == nil || show(reply.Rewrite.Headers) != "x-token=<none>" {
				t.Errorf("right token: %+v, want the token header removed", reply)
			}
		case "wrong":
			if reply.Stop == nil || reply.Stop.Status != 401 {
				t.Errorf("wrong token: %+v, want 401", reply)
			}
		}
	}

	body := prepare(t, c, "body", pc.E("replace-body", `{"find":"world","replace":"gopher"}`))
	reply, err := c.Response(pc.HTTPResponse{ID: 2, Status: 200, ConfToken: body,
		Headers: []pc.Entry{pc.E("content-type", "text/plain")}}, func(pc.Question) []byte { return []byte("hello world") })
	if err != nil || reply.Type != frame.TypeHTTPResp {
		t.Fatalf("%+v %v", reply, err)
	}
	if string(reply.Body) != "hello gopher" || show(reply.Headers) != "content-type=text/plain,x-body-rewritten=1" {
		t.Errorf("replace-body: body %q headers %s", reply.Body, show(reply.Headers))
	}
}
