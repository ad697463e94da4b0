// Command pushbench is caddy-pushhub's load generator. It opens N WebSocket
// connections to a push_hub endpoint on this machine, logs each in as
// u0 … u<N-1>, then measures the server phase by phase: connecting, idling,
// unicast pushes (through push_api and through clients publishing),
// broadcasts, group pushes and push_api throughput. It prints a table and,
// last, the same results as one JSON line.
//
// Server-side figures (CPU, memory) come from /proc of the server process
// named by -pid, and goroutine counts from push_api's GET /stats. Run it on
// the server's machine, against loopback addresses only:
//
//	caddy run --config bench.Caddyfile & echo $! > caddy.pid
//	pushbench -ws ws://127.0.0.1:8080/ws -api http://127.0.0.1:7070 -pid $(cat caddy.pid) -n 2000
//
// Make sure the ports are the bench server's own: Caddy listens with
// SO_REUSEPORT, so a second server on a busy port starts without error and
// shares its connections with the first. For memory figures, start the
// server fresh: RSS per connection is measured against the RSS before the
// run, which memory kept from an earlier run distorts.
//
// Connections come from source addresses 127.0.0.2, 127.0.0.3, … (2000 per
// address by default), so tens of thousands fit in the ephemeral port range.
// Both the generator and the server need an open-file limit above N.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"
)

// config is the command line.
type config struct {
	wsURL, apiURL, key string
	pid                int
	n, dialConcurrency int
	protocol           string
	phases             []string

	rate         float64
	duration     time.Duration
	findMax      bool
	maxP99       time.Duration
	stepDuration time.Duration

	broadcasts, groupSize, groupPushes int
	apiConcurrency, batch              int
	msgSize                            int
	settle, idleWindow                 time.Duration

	tls      bool
	ca       string
	insecure bool

	perAddr int
	srcBase string
	timeout time.Duration
	jsonOut string
	cpuProf string
}

// allPhases in the order they run; connect always runs first.
var allPhases = []string{"connect", "idle", "unicast", "broadcast", "group", "api"}

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	cfg := &config{}
	fs := flag.NewFlagSet("pushbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.wsURL, "ws", "ws://127.0.0.1:8080/ws", "push_hub WebSocket `URL` (ws:// or wss://, loopback only)")
	fs.StringVar(&cfg.apiURL, "api", "http://127.0.0.1:7070", "push_api base `URL` (loopback only)")
	fs.StringVar(&cfg.key, "key", os.Getenv("PUSH_API_KEY"), "push_api Bearer key (default $PUSH_API_KEY)")
	fs.IntVar(&cfg.pid, "pid", 0, "server process id, for its CPU and memory from /proc (0: leave those figures out)")
	fs.IntVar(&cfg.n, "n", 1000, "WebSocket connections to open")
	fs.IntVar(&cfg.dialConcurrency, "c", 100, "connections being opened at once")
	fs.StringVar(&cfg.protocol, "protocol", "json", "the endpoint's protocol: json or text")
	phases := fs.String("phases", strings.Join(allPhases, ","), "phases to run, comma-separated, or all: "+strings.Join(allPhases, ","))
	fs.Float64Var(&cfg.rate, "rate", 1000, "unicast messages per second (the first step with -find-max)")
	fs.DurationVar(&cfg.duration, "duration", 10*time.Second, "length of each unicast run and each API throughput run")
	fs.BoolVar(&cfg.findMax, "find-max", false, "also search the highest unicast rate whose p99 latency stays under -max-p99")
	fs.DurationVar(&cfg.maxP99, "max-p99", 10*time.Millisecond, "p99 latency bound of -find-max")
	fs.DurationVar(&cfg.stepDuration, "step-duration", 3*time.Second, "length of each -find-max step")
	fs.IntVar(&cfg.broadcasts, "broadcasts", 30, "broadcasts to measure, one at a time")
	fs.IntVar(&cfg.groupSize, "group-size", 100, "members of each group of the group phase")
	fs.IntVar(&cfg.groupPushes, "group-pushes", 30, "group pushes to measure, one at a time")
	fs.IntVar(&cfg.apiConcurrency, "api-c", 32, "concurrent push_api calls (unicast through the API, joins, API throughput)")
	fs.IntVar(&cfg.batch, "batch", 100, "uids per call in the batched API throughput run")
	fs.IntVar(&cfg.msgSize, "msg-size", 64, fmt.Sprintf("bytes per message payload (at least %d)", payloadHeader))
	fs.DurationVar(&cfg.settle, "settle", 3*time.Second, "wait after connecting before idle measurements")
	fs.DurationVar(&cfg.idleWindow, "idle-window", 5*time.Second, "window over which idle server CPU is measured")
	fs.BoolVar(&cfg.tls, "tls", false, "connect over wss (a ws:// -ws URL becomes wss:// on the same port)")
	fs.StringVar(&cfg.ca, "ca", "", "PEM root certificate to trust for wss, e.g. Caddy's local CA root.crt")
	fs.BoolVar(&cfg.insecure, "insecure", false, "skip verification of the server's certificate for wss")
	fs.IntVar(&cfg.perAddr, "per-addr", 2000, "connections per source address")
	fs.StringVar(&cfg.srcBase, "src", "127.0.0.2", "first source address; the next ones follow it")
	fs.DurationVar(&cfg.timeout, "timeout", 5*time.Minute, "bound of the whole run: phases not done by then are cut short (closing takes a few seconds more)")
	fs.StringVar(&cfg.jsonOut, "json-out", "", "also write the JSON result line to this `file`")
	fs.StringVar(&cfg.cpuProf, "cpuprofile", "", "write the generator's own CPU profile to this `file`")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var err error
	if cfg.phases, err = parsePhases(*phases); err != nil {
		return nil, err
	}
	return cfg, cfg.validate()
}

func parsePhases(s string) ([]string, error) {
	want := map[string]bool{"connect": true}
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		switch {
		case p == "all":
			return allPhases, nil
		case p == "":
		case slices.Contains(allPhases, p):
			want[p] = true
		default:
			return nil, fmt.Errorf("unknown phase %q: want %s or all", p, strings.Join(allPhases, ","))
		}
	}
	var out []string
	for _, p := range allPhases {
		if want[p] {
			out = append(out, p)
		}
	}
	return out, nil
}

func (cfg *config) validate() error {
	ws, err := loopbackURL(cfg.wsURL, "ws", "wss")
	if err != nil {
		return fmt.Errorf("-ws: %v", err)
	}
	if ip := net.ParseIP(ws.Hostname()); ip != nil && ip.To4() == nil {
		return errors.New("-ws: the target must be IPv4 (127.x.x.x or localhost): the source addresses are")
	}
	if cfg.tls && ws.Scheme == "ws" {
		ws.Scheme = "wss"
	}
	cfg.tls = ws.Scheme == "wss"
	cfg.wsURL = ws.String()
	if _, err := loopbackURL(cfg.apiURL, "http", "https"); err != nil {
		return fmt.Errorf("-api: %v", err)
	}
	switch {
	case cfg.protocol != "json" && cfg.protocol != "text":
		return fmt.Errorf("-protocol must be json or text, not %q", cfg.protocol)
	case cfg.n < 1:
		return errors.New("-n must be at least 1")
	case cfg.dialConcurrency < 1 || cfg.apiConcurrency < 1:
		return errors.New("-c and -api-c must be at least 1")
	case cfg.rate <= 0:
		return errors.New("-rate must be positive")
	case cfg.duration <= 0 || cfg.stepDuration <= 0 || cfg.timeout <= 0 || cfg.idleWindow <= 0 || cfg.settle < 0:
		return errors.New("durations must be positive")
	case cfg.broadcasts < 1 || cfg.groupPushes < 1 || cfg.groupSize < 1 || cfg.batch < 1:
		return errors.New("-broadcasts, -group-pushes, -group-size and -batch must be at least 1")
	case cfg.msgSize < payloadHeader || cfg.msgSize > 60000:
		return fmt.Errorf("-msg-size must be from %d to 60000", payloadHeader)
	case cfg.perAddr < 1 || cfg.perAddr > 25000:
		return errors.New("-per-addr must be from 1 to 25000 (the ephemeral port range)")
	case cfg.pid < 0:
		return errors.New("-pid must not be negative")
	}
	if cfg.pid > 0 {
		if _, err := procCPU(cfg.pid); err != nil {
			return fmt.Errorf("-pid %d: %v", cfg.pid, err)
		}
	}
	return nil
}

// loopbackURL parses a target URL and refuses anything but this machine:
// pushbench is a load generator, never to be aimed at someone else's server.
func loopbackURL(raw string, schemes ...string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(schemes, u.Scheme) {
		return nil, fmt.Errorf("%q: the scheme must be %s", raw, strings.Join(schemes, " or "))
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("%q is not a loopback address (127.x.x.x, ::1 or localhost): pushbench loads this machine only", host)
	}
	return u, nil
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "pushbench:", err)
		return 2
	}
	if cfg.pid == 0 {
		fmt.Fprintln(stderr, "pushbench: no -pid: server CPU and memory figures are left out")
	}
	// The receivers allocate little; a lazier GC keeps the generator's
	// share of the CPU, which it takes from the server, small.
	debug.SetGCPercent(400)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()

	b, err := newBench(cfg, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "pushbench:", err)
		return 2
	}
	if cfg.cpuProf != "" {
		f, err := os.Create(cfg.cpuProf)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(stderr, "pushbench: -cpuprofile:", err)
			return 2
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	rep := b.run(ctx)

	printTable(stdout, rep)
	line, err := json.Marshal(rep)
	if err != nil {
		fmt.Fprintln(stderr, "pushbench:", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s\n", line)
	if cfg.jsonOut != "" {
		if err := os.WriteFile(cfg.jsonOut, append(line, '\n'), 0o644); err != nil {
			fmt.Fprintln(stderr, "pushbench:", err)
			return 1
		}
	}
	if rep.Aborted != "" || len(rep.Errors) > 0 {
		return 1
	}
	return 0
}
