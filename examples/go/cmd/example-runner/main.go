// Command example-runner serves the example plugins (say, rewrite-path, served-by, replace-body,
// token-auth). The gateway starts it: ext-plugin: {cmd: ["/path/to/example-runner"]}.
package main

import (
	"fmt"
	"os"

	"github.com/ferrogate/ferrogate/examples/go/plugins"
	"github.com/ferrogate/ferrogate/sdk-go/plugin"
	"github.com/ferrogate/ferrogate/sdk-go/runner"
)

func main() {
	reg := plugin.NewRegistry()
	if err := plugins.Register(reg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	runner.Main(reg)
}
