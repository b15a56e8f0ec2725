// Command conformance-runner is the Go SDK's conformance runner: the plugins of
// tests/conformance/PLUGINS.md served like any runner (APISIX_LISTEN_ADDRESS=unix:/path.sock,
// APISIX_CONF_EXPIRE_TIME=<seconds>).
package main

import (
	"fmt"
	"os"

	"github.com/ferrogate/ferrogate/sdk-go/e2e/conformance"
	"github.com/ferrogate/ferrogate/sdk-go/plugin"
	"github.com/ferrogate/ferrogate/sdk-go/runner"
)

func main() {
	reg := plugin.NewRegistry()
	if err := conformance.Register(reg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	runner.Main(reg)
}
