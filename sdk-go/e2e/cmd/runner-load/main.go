// Command runner-load measures a plugin runner alone, without a gateway: it starts the runner
// command given after the flags the way the gateway does (APISIX_LISTEN_ADDRESS,
// APISIX_CONF_EXPIRE_TIME), prepares one conf, then sends request calls on -conns connections
// for -duration, each connection one call at a time as the gateway does, and prints calls/s and
// latency percentiles. Any runner speaking the protocol works (ours, APISIX's Go runner, ...):
//
//	runner-load -conns 16 -duration 10s -plugin conf-rewrite -value '{"headers":[["x-a","1"]]}' -- /path/to/conformance-runner
//	runner-load -plugin say -value '{"body":"hi"}' -- /path/to/go-runner run
package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/ferrogate/ferrogate/sdk-go/internal/a6/A6"
	"github.com/ferrogate/ferrogate/sdk-go/internal/frame"
	pc "github.com/ferrogate/ferrogate/sdk-go/internal/protoclient"
)

func main() {
	conns := flag.Int("conns", 16, "connections, each one call at a time")
	duration := flag.Duration("duration", 5*time.Second, "how long to send calls")
	name := flag.String("plugin", "conf-rewrite", "plugin name in the conf")
	value := flag.String("value", `{"headers":[["x-bench","1"]]}`, "plugin conf value")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: runner-load [flags] -- runner-command [args...]")
		os.Exit(2)
	}
	if err := run(*conns, *duration, *name, *value, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "runner-load:", err)
		os.Exit(1)
	}
}

func run(conns int, duration time.Duration, name, value string, argv []string) error {
	dir, err := os.MkdirTemp("", "runner-load")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "runner.sock")
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "APISIX_LISTEN_ADDRESS=unix:"+sock, "APISIX_CONF_EXPIRE_TIME=3600")
	cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	var setup *pc.Client
	for deadline := time.Now().Add(10 * time.Second); setup == nil; {
		if setup, err = pc.Dial(sock); err != nil {
			if time.Now().After(deadline) {
				return fmt.Errorf("runner socket: %w", err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	token, err := setup.MustPrepare("route#1#ext-plugin-pre-req#1", pc.E(name, value))
	if err != nil {
		return err
	}
	payload := pc.RequestBytes(pc.HTTPRequest{
		ID: 1, SrcIP: []byte{127, 0, 0, 1}, Method: A6.MethodGET, Path: "/bench/path", ConfToken: token,
		Args: []pc.Entry{pc.E("page", "1"), pc.E("q", "go")},
		Headers: []pc.Entry{pc.E("host", "bench.test"), pc.E("user-agent", "runner-load/1"), pc.E("accept", "*/*"),
			pc.E("accept-encoding", "gzip"), pc.E("x-request-id", "0123456789abcdef"), pc.E("cookie", "a=1; b=2")},
	})
	req := make([]byte, frame.HeaderLen+len(payload))
	_ = frame.PutHeader(req, frame.TypeHTTPReq, len(payload))
	copy(req[frame.HeaderLen:], payload)

	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		lat   []time.Duration
		fails int
	)
	stop := time.Now().Add(duration)
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nc, err := net.Dial("unix", sock)
			if err != nil {
				mu.Lock()
				fails++
				mu.Unlock()
				return
			}
			defer nc.Close()
			rd := frame.NewReader(nc, 1<<20)
			var mine []time.Duration
			for time.Now().Before(stop) {
				began := time.Now()
				if _, err := nc.Write(req); err != nil {
					break
				}
				ty, _, err := rd.Next()
				if err != nil || ty != frame.TypeHTTPReq {
					mu.Lock()
					fails++
					mu.Unlock()
					break
				}
				mine = append(mine, time.Since(began))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(lat) == 0 {
		return fmt.Errorf("no call answered (%d failures)", fails)
	}
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[int(float64(len(lat)-1)*p)] }
	fmt.Printf("calls %d in %v on %d connections: %.0f calls/s, p50 %v, p99 %v, failures %d\n",
		len(lat), duration, conns, float64(len(lat))/duration.Seconds(), pct(0.5), pct(0.99), fails)
	return nil
}
