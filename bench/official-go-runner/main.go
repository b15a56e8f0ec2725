// Command official-go-runner is APISIX's official Go runner SDK
// (github.com/apache/apisix-go-plugin-runner v0.5.0) serving one plugin, conf-rewrite, that sets
// the request headers its conf lists: the benchmark's trivial header-rewriting plugin, written
// the official runner's way, to compare with the same plugin on our SDKs' runners.
package main

import (
	"encoding/json"
	"net/http"

	pkgHTTP "github.com/apache/apisix-go-plugin-runner/pkg/http"
	"github.com/apache/apisix-go-plugin-runner/pkg/plugin"
	"github.com/apache/apisix-go-plugin-runner/pkg/runner"
	"go.uber.org/zap/zapcore"
)

// headerRewrite sets headers: its conf is {"headers": [["name", "value"], ...]} (the
// conformance plugin conf-rewrite's header part).
type headerRewrite struct {
	plugin.DefaultPlugin
}

type conf struct {
	Headers [][2]string `json:"headers"`
}

func (*headerRewrite) Name() string { return "conf-rewrite" }

func (*headerRewrite) ParseConf(in []byte) (interface{}, error) {
	var c conf
	err := json.Unmarshal(in, &c)
	return c, err
}

func (*headerRewrite) RequestFilter(c interface{}, _ http.ResponseWriter, r pkgHTTP.Request) {
	for _, h := range c.(conf).Headers {
		r.Header().Set(h[0], h[1])
	}
}

func main() {
	if err := plugin.RegisterPlugin(&headerRewrite{}); err != nil {
		panic(err)
	}
	runner.Run(runner.RunnerConfig{LogLevel: zapcore.WarnLevel})
}
