// Package runner serves a plugin Registry to the gateway (or to APISIX) over the runner protocol:
// it listens on the Unix socket the gateway names in APISIX_LISTEN_ADDRESS and answers prepare,
// request and response calls, one goroutine per connection.
//
// A runner program is a main package that registers its plugins and calls Main:
//
//	func main() {
//		reg := plugin.NewRegistry()
//		plugin.MustRegister(reg, Hello{})
//		runner.Main(reg)
//	}
package runner

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ferrogate/ferrogate/sdk-go/internal/runtime"
	"github.com/ferrogate/ferrogate/sdk-go/plugin"
)

// Environment variables the gateway (or APISIX) sets for the runner it starts.
const (
	EnvListenAddress = "APISIX_LISTEN_ADDRESS"   // unix:/absolute/path.sock
	EnvConfExpire    = "APISIX_CONF_EXPIRE_TIME" // seconds; default 3600
	// EnvCallTimeout is ours, not the gateway's: the deadline of each call's context in seconds
	// (default 55), to set below the gateway's read timeout when that is not the default 60 s.
	EnvCallTimeout = "FERROGATE_RUNNER_CALL_TIMEOUT"
)

// DefaultConfExpire is the conf expiry when APISIX_CONF_EXPIRE_TIME is not set.
const DefaultConfExpire = 3600 * time.Second

// Options configure a runner.
type Options struct {
	// Socket is the path of the Unix socket to create (without the "unix:" prefix).
	Socket string
	// ConfExpire is the gateway's conf expiry (APISIX_CONF_EXPIRE_TIME). A prepared conf lives
	// 1.2 x ConfExpire after its last prepare, as in the official runner, so that it never
	// expires here while the gateway still uses it; an expired token gets CONF_TOKEN_NOT_FOUND
	// and the gateway prepares it again. 0: DefaultConfExpire.
	ConfExpire time.Duration
	// CallTimeout is the deadline of each call's context: a little under the gateway's read
	// timeout (60 s by default). 0: 55 s.
	CallTimeout time.Duration
	// Logger receives the runner's log (stderr, which the gateway copies into its own log).
	// nil: slog.Default().
	Logger *slog.Logger
}

// OptionsFromEnv reads the options the gateway passes in the environment.
//
// It fails when APISIX_LISTEN_ADDRESS is missing or does not start with "unix:", and when
// APISIX_CONF_EXPIRE_TIME or FERROGATE_RUNNER_CALL_TIMEOUT is set but not a positive number of
// seconds.
func OptionsFromEnv() (Options, error) {
	var o Options
	addr := os.Getenv(EnvListenAddress)
	path, ok := strings.CutPrefix(addr, "unix:")
	if !ok || path == "" {
		return o, fmt.Errorf("%s must be unix:/path/to.sock, got %q", EnvListenAddress, addr)
	}
	o.Socket = path
	if v := os.Getenv(EnvConfExpire); v != "" {
		n, err := strconv.ParseFloat(v, 64)
		if err != nil || n <= 0 || n > 1e9 {
			return o, fmt.Errorf("%s must be a positive number of seconds, got %q", EnvConfExpire, v)
		}
		o.ConfExpire = time.Duration(n * float64(time.Second))
	}
	if v := os.Getenv(EnvCallTimeout); v != "" {
		n, err := strconv.ParseFloat(v, 64)
		if err != nil || n <= 0 || n > 1e6 {
			return o, fmt.Errorf("%s must be a positive number of seconds, got %q", EnvCallTimeout, v)
		}
		o.CallTimeout = time.Duration(n * float64(time.Second))
	}
	return o, nil
}

// Main runs the runner as the gateway starts it: options from the environment, serving until
// SIGTERM or SIGINT, then removing the socket. It exits the process with status 1 on error.
func Main(reg *plugin.Registry) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	opts, err := OptionsFromEnv()
	if err == nil {
		err = Run(ctx, reg, opts)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "runner: %v\n", err)
		stop()
		os.Exit(1)
	}
}

// Run creates the socket (removing a stale one first), serves reg until ctx is done, then closes
// every connection and removes the socket.
func Run(ctx context.Context, reg *plugin.Registry, opts Options) error {
	if opts.Socket == "" {
		return errors.New("no socket path")
	}
	if err := removeSocket(opts.Socket); err != nil {
		return err
	}
	ln, err := net.Listen("unix", opts.Socket)
	if err != nil {
		return err
	}
	defer removeSocket(opts.Socket) //nolint:errcheck // best effort on the way out
	// APISIX's workers may run as another user (nobody) than the runner: let them connect. The
	// gateway keeps the socket in a directory only its own user can enter.
	if err := os.Chmod(opts.Socket, 0o766); err != nil {
		ln.Close()
		return err
	}
	logger(opts).Info("runner listening", "socket", opts.Socket, "plugins", reg.Names())
	return Serve(ctx, ln, reg, opts)
}

// Serve answers calls on ln until ctx is done; opts.Socket is ignored. It closes ln.
func Serve(ctx context.Context, ln net.Listener, reg *plugin.Registry, opts Options) error {
	expire := opts.ConfExpire
	if expire <= 0 {
		expire = DefaultConfExpire
	}
	s := &runtime.Server{
		Registry:    runtime.RegistryOf(reg),
		Confs:       &runtime.ConfCache{TTL: expire * 6 / 5},
		CallTimeout: opts.CallTimeout,
		Logger:      logger(opts),
	}
	return s.Serve(ctx, ln)
}

func logger(o Options) *slog.Logger {
	if o.Logger != nil {
		return o.Logger
	}
	return slog.Default()
}

// removeSocket removes path unless it is a directory; a missing file is fine.
func removeSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return fmt.Errorf("socket path %s is a directory", path)
	}
	return os.Remove(path)
}
