// Command pushbench is caddy-pushhub's load generator. It opens N WebSocket
// connections to a server on this machine, logs each in as u0 … u<N-1>, then
// measures the server phase by phase: connecting, idling, unicast pushes
// (through the push API and through clients publishing), broadcasts, group
// pushes, API throughput, and, when asked, a reconnect storm and TLS session
// resumption. It prints a table and, last, the same results as one JSON line.
//
// It drives three targets through the same phases, so that every figure
// means the same for each (-target): the hub (push_hub and push_api), the
// Workerman recipe the hub grew from (its text protocol; no push API, so
// unicast and broadcast go through clients publishing), and Centrifugo (its
// JSON protocol and HTTP API). See target.go.
//
// Server-side figures (CPU, memory, open files) come from /proc of the server
// processes named by -pid, and the hub's goroutine counts from push_api's
// GET /stats. Run it on the server's machine, against loopback addresses
// only:
//
//	caddy run --config bench.Caddyfile & echo $! > caddy.pid
//	pushbench -ws ws://127.0.0.1:28080/ws -api http://127.0.0.1:27070 -pid $(cat caddy.pid) -n 2000
//	pushbench -target recipe -ws ws://127.0.0.1:8181/ -pid <the recipe's worker> -n 2000
//	pushbench -target centrifugo -pid <centrifugo> -n 2000
//
// Cluster mode: -ws, -api and -pid take comma-separated lists, one per node.
// Connections are spread over the nodes round-robin; API pushes to a uid go
// to another node than the one holding it (cross-node), publishing clients
// are on another node than their target, and a broadcast through one node
// must reach every connection on every node. CPU and memory are summed over
// the processes (and given per process). -redis reads the cluster's Redis
// INFO before and after each phase: commands per push by name, and Redis's
// own CPU.
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
//
// "pushbench compare label=result.json ..." prints several results side by
// side as one markdown table (compare.go); compare.sh and sidebyside.sh run
// the servers and call it.
package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// config is the command line.
type config struct {
	target          string   // hub, recipe or centrifugo
	wsURLs, apiURLs []string // one per node; apiURLs is empty for the recipe
	key             string
	jwtSecret       string
	pids            []int
	redisURL        string

	n, dialConcurrency int
	protocol           string // the wire: json or text (hub, recipe), centrifugo
	phases             []string

	rates        []float64
	duration     time.Duration
	findMax      bool
	findMaxPaths []string
	findMaxRuns  int
	maxP99       time.Duration
	stepDuration time.Duration
	broadcastVia string
	notes        map[string]string // what the target measures otherwise than asked, for the report

	broadcasts, groupSize, groupPushes int
	apiConcurrency, batch              int
	apiKeys                            bool
	msgSize                            int
	settle, idleWindow                 time.Duration
	stormConcurrency                   int
	closeWait                          time.Duration
	resumeN                            int
	quietWait                          time.Duration
	redo                               int

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
var allPhases = []string{"connect", "idle", "unicast", "broadcast", "group", "api", "storm", "resume-tls"}

// defaultPhases is what runs without -phases: every phase but the
// reconnecting ones, which replace the connections.
const defaultPhases = "connect,idle,unicast,broadcast,group,api"

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	cfg := &config{}
	fs := flag.NewFlagSet("pushbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: pushbench [flags]\n       pushbench compare [-h] label=result.json[,result.json...] ...\n\nflags:\n")
		fs.PrintDefaults()
	}
	var ws, api, pids, rates, findMaxPaths string
	fs.StringVar(&cfg.target, "target", targetHub, "what is measured: hub (push_hub and push_api), recipe (the Workerman recipe's text protocol, no push API) or centrifugo (its JSON protocol and HTTP API)")
	fs.StringVar(&ws, "ws", "", "WebSocket `URLs`, comma-separated, one per node (ws:// or wss://, loopback only; default per target: "+
		defaultWS[targetHub]+", "+defaultWS[targetRecipe]+", "+defaultWS[targetCentrifugo]+")")
	fs.StringVar(&api, "api", "", "push API base `URLs`, comma-separated: one, or one per node (loopback only; default per target: "+
		defaultAPI[targetHub]+", none, "+defaultAPI[targetCentrifugo]+")")
	fs.StringVar(&cfg.key, "key", "", "API key: push_api's Bearer key (default $PUSH_API_KEY) or Centrifugo's X-API-Key (default $CENTRIFUGO_API_KEY, else "+defaultCentrifugoKey+")")
	fs.StringVar(&cfg.jwtSecret, "jwt-secret", "", "HS256 secret of login tokens: with it a hub login sends a token {sub: uid} (an endpoint with auth jwt), and Centrifugo's token is {sub: uid, channels: [broadcast]} (default $PUSHBENCH_JWT_SECRET; for centrifugo, else "+defaultJWTSecret+")")
	fs.StringVar(&pids, "pid", "", "server process `ids`, comma-separated, for CPU and memory from /proc, summed over them (none: leave those figures out)")
	fs.StringVar(&cfg.redisURL, "redis", "", "redis://host:port of the cluster's Redis (loopback only): its commands and CPU per push, from INFO, before and after each phase")
	fs.IntVar(&cfg.n, "n", 1000, "WebSocket connections to open, spread over the -ws nodes round-robin")
	fs.IntVar(&cfg.dialConcurrency, "c", 100, "connections being opened at once")
	fs.StringVar(&cfg.protocol, "protocol", "", "the hub endpoint's protocol: json (default) or text; the recipe speaks text")
	phases := fs.String("phases", defaultPhases, "phases to run, comma-separated, or all: "+strings.Join(allPhases, ","))
	fs.StringVar(&rates, "rate", "1000", "unicast messages per second, comma-separated for several runs (the first is the first step of -find-max)")
	fs.DurationVar(&cfg.duration, "duration", 10*time.Second, "length of each unicast run and each API throughput run")
	fs.BoolVar(&cfg.findMax, "find-max", false, "also search the highest unicast rate whose p99 latency stays under -max-p99")
	fs.StringVar(&findMaxPaths, "find-max-path", "all", "unicast paths -find-max searches: api, client or all (those the target has)")
	fs.IntVar(&cfg.findMaxRuns, "find-max-runs", 1, "searches per path; with 2 or more, maxima more than 10% apart are flagged")
	fs.DurationVar(&cfg.maxP99, "max-p99", 10*time.Millisecond, "p99 latency bound of -find-max")
	fs.DurationVar(&cfg.stepDuration, "step-duration", 10*time.Second, "length of each -find-max step (shorter steps make the maximum less stable)")
	fs.StringVar(&cfg.broadcastVia, "broadcast-via", "", "how broadcasts are sent: api (default for hub and centrifugo) or client (a client publishes to all; the only way for the recipe)")
	fs.IntVar(&cfg.broadcasts, "broadcasts", 30, "broadcasts to measure, one at a time")
	fs.IntVar(&cfg.groupSize, "group-size", 100, "members of each group of the group phase")
	fs.IntVar(&cfg.groupPushes, "group-pushes", 30, "group pushes to measure, one at a time")
	fs.IntVar(&cfg.apiConcurrency, "api-c", 32, "concurrent API calls (unicast through the API, joins, API throughput)")
	fs.BoolVar(&cfg.apiKeys, "api-keys", true, "each API push carries an idempotency key: to the hub as pushapi sends it by default, to Centrifugo as its publish's idempotency_key (false: none, and the hub's client makes no retries)")
	fs.IntVar(&cfg.batch, "batch", 100, "uids per call in the batched API throughput run")
	fs.IntVar(&cfg.msgSize, "msg-size", 64, fmt.Sprintf("bytes per message payload (at least %d)", payloadHeader))
	fs.DurationVar(&cfg.settle, "settle", 3*time.Second, "wait after connecting before idle measurements")
	fs.DurationVar(&cfg.idleWindow, "idle-window", 5*time.Second, "window over which idle server CPU is measured")
	fs.IntVar(&cfg.stormConcurrency, "storm-c", 0, "storm: connections reopened at once (0: all of them)")
	fs.DurationVar(&cfg.closeWait, "close-wait", 30*time.Second, "storm and resume-tls: longest wait for the server to close the dropped connections before they reconnect")
	fs.DurationVar(&cfg.quietWait, "quiet-wait", 0, "before each measured run, wait up to this long until other processes use less than 0.25 cores (0: do not wait)")
	fs.IntVar(&cfg.redo, "redo", 0, "measure a run again, up to this many times, when other processes disturbed it (connect and idle excepted)")
	fs.IntVar(&cfg.resumeN, "resume-n", 2000, "resume-tls: connections that reconnect, first with full TLS handshakes, then resuming")
	fs.BoolVar(&cfg.tls, "tls", false, "connect over wss (ws:// -ws URLs become wss:// on the same port)")
	fs.StringVar(&cfg.ca, "ca", "", "PEM root certificate to trust for wss, e.g. Caddy's local CA root.crt or the recipe's cert.pem")
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
	if cfg.rates, err = parseRates(rates); err != nil {
		return nil, fmt.Errorf("-rate: %v", err)
	}
	if cfg.pids, err = parsePIDs(pids); err != nil {
		return nil, fmt.Errorf("-pid: %v", err)
	}
	switch findMaxPaths {
	case "all":
		cfg.findMaxPaths = []string{"api", "client"}
	case "api", "client":
		cfg.findMaxPaths = []string{findMaxPaths}
	default:
		return nil, fmt.Errorf("-find-max-path must be api, client or all, not %q", findMaxPaths)
	}
	if err := cfg.applyTarget(ws, api); err != nil {
		return nil, err
	}
	return cfg, cfg.validate()
}

// applyTarget fills in what depends on the target: endpoints, protocol,
// keys, how broadcasts are sent.
func (cfg *config) applyTarget(ws, api string) error {
	switch cfg.target {
	case targetHub, targetRecipe, targetCentrifugo:
	default:
		return fmt.Errorf("-target must be hub, recipe or centrifugo, not %q", cfg.target)
	}
	if ws == "" {
		ws = defaultWS[cfg.target]
	}
	if api == "" {
		api = defaultAPI[cfg.target]
	}
	cfg.wsURLs = splitList(ws)
	cfg.apiURLs = splitList(api)
	if cfg.jwtSecret == "" {
		cfg.jwtSecret = os.Getenv("PUSHBENCH_JWT_SECRET")
	}
	switch cfg.target {
	case targetHub:
		if cfg.protocol == "" {
			cfg.protocol = "json"
		}
		if cfg.protocol != "json" && cfg.protocol != "text" {
			return fmt.Errorf("-protocol must be json or text, not %q", cfg.protocol)
		}
		if cfg.key == "" {
			cfg.key = os.Getenv("PUSH_API_KEY")
		}
	case targetRecipe:
		if cfg.protocol != "" && cfg.protocol != "text" {
			return fmt.Errorf("the recipe speaks the text protocol only, not %q", cfg.protocol)
		}
		cfg.protocol = "text"
		if len(cfg.apiURLs) > 0 {
			return errors.New("the recipe has no push API: leave -api out")
		}
		if cfg.broadcastVia == "api" {
			return errors.New("the recipe has no push API: it broadcasts through a client (-broadcast-via client)")
		}
		cfg.broadcastVia = "client"
		if cfg.jwtSecret != "" {
			return errors.New("the recipe has no token login: leave -jwt-secret out")
		}
	case targetCentrifugo:
		if cfg.protocol != "" && cfg.protocol != protoCentrifugo {
			return fmt.Errorf("centrifugo speaks its own JSON protocol, not %q", cfg.protocol)
		}
		cfg.protocol = protoCentrifugo
		if cfg.key == "" {
			cfg.key = cmp.Or(os.Getenv("CENTRIFUGO_API_KEY"), defaultCentrifugoKey)
		}
		if cfg.jwtSecret == "" {
			cfg.jwtSecret = cmp.Or(os.Getenv("CENTRIFUGO_SECRET"), defaultJWTSecret)
		}
		if cfg.broadcastVia == "client" {
			cfg.broadcastVia = "api"
			cfg.notes = map[string]string{"broadcast via client": "Centrifugo's clients cannot publish here: broadcasts go through its API"}
		}
	}
	if cfg.broadcastVia == "" {
		cfg.broadcastVia = "api"
	}
	if cfg.broadcastVia != "api" && cfg.broadcastVia != "client" {
		return fmt.Errorf("-broadcast-via must be api or client, not %q", cfg.broadcastVia)
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
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

func parseRates(s string) ([]float64, error) {
	var out []float64
	for _, p := range splitList(s) {
		v, err := strconv.ParseFloat(p, 64)
		if err != nil || v <= 0 || math.IsInf(v, 0) || math.IsNaN(v) {
			return nil, fmt.Errorf("%q is not a positive rate", p)
		}
		out = append(out, v)
	}
	if len(out) == 0 {
		return nil, errors.New("no rate given")
	}
	return out, nil
}

// parsePIDs reads a list of process ids; one named twice counts once.
func parsePIDs(s string) ([]int, error) {
	var out []int
	for _, p := range splitList(s) {
		v, err := strconv.Atoi(p)
		if err != nil || v < 0 {
			return nil, fmt.Errorf("%q is not a process id", p)
		}
		if v > 0 && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out, nil
}

func (cfg *config) validate() error {
	if len(cfg.wsURLs) == 0 {
		return errors.New("-ws: no URL")
	}
	for i, raw := range cfg.wsURLs {
		ws, err := loopbackURL(raw, "ws", "wss")
		if err != nil {
			return fmt.Errorf("-ws: %v", err)
		}
		if ip := net.ParseIP(ws.Hostname()); ip != nil && ip.To4() == nil {
			return errors.New("-ws: the target must be IPv4 (127.x.x.x or localhost): the source addresses are")
		}
		if cfg.tls && ws.Scheme == "ws" {
			ws.Scheme = "wss"
		}
		if i > 0 && (ws.Scheme == "wss") != cfg.tls {
			return errors.New("-ws: every node must be ws:// or every node wss://")
		}
		cfg.tls = ws.Scheme == "wss"
		cfg.wsURLs[i] = ws.String()
	}
	for _, raw := range cfg.apiURLs {
		if _, err := loopbackURL(raw, "http", "https"); err != nil {
			return fmt.Errorf("-api: %v", err)
		}
	}
	if cfg.redisURL != "" {
		if _, err := parseRedisURL(cfg.redisURL); err != nil {
			return fmt.Errorf("-redis: %v", err)
		}
	}
	switch {
	case cfg.target != targetRecipe && len(cfg.apiURLs) == 0:
		return errors.New("-api: no URL")
	case len(cfg.apiURLs) > 1 && len(cfg.apiURLs) != len(cfg.wsURLs):
		return fmt.Errorf("-api names %d nodes and -ws %d: give one API, or one per node", len(cfg.apiURLs), len(cfg.wsURLs))
	case cfg.n < 1:
		return errors.New("-n must be at least 1")
	case cfg.dialConcurrency < 1 || cfg.apiConcurrency < 1 || cfg.stormConcurrency < 0:
		return errors.New("-c and -api-c must be at least 1, -storm-c not negative")
	case cfg.duration <= 0 || cfg.stepDuration <= 0 || cfg.timeout <= 0 || cfg.idleWindow <= 0 || cfg.settle < 0 || cfg.closeWait <= 0 || cfg.quietWait < 0:
		return errors.New("durations must be positive")
	case cfg.redo < 0 || cfg.redo > 10:
		return errors.New("-redo must be from 0 to 10")
	case cfg.broadcasts < 1 || cfg.groupPushes < 1 || cfg.groupSize < 1 || cfg.batch < 1 || cfg.findMaxRuns < 1 || cfg.resumeN < 1:
		return errors.New("-broadcasts, -group-pushes, -group-size, -batch, -find-max-runs and -resume-n must be at least 1")
	case cfg.msgSize < payloadHeader || cfg.msgSize > 60000:
		return fmt.Errorf("-msg-size must be from %d to 60000", payloadHeader)
	case cfg.perAddr < 1 || cfg.perAddr > 25000:
		return errors.New("-per-addr must be from 1 to 25000 (the ephemeral port range)")
	}
	for _, pid := range cfg.pids {
		if _, err := procCPU(pid); err != nil {
			return fmt.Errorf("-pid %d: %v", pid, err)
		}
	}
	return nil
}

// crossNode says whether API pushes go to another node than the one holding
// their target: with one API per node, of several.
func (cfg *config) crossNode() bool {
	return len(cfg.wsURLs) > 1 && len(cfg.apiURLs) == len(cfg.wsURLs)
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
	if len(args) > 0 && args[0] == "compare" {
		return compareMain(args[1:], stdout, stderr)
	}
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "pushbench:", err)
		return 2
	}
	if len(cfg.pids) == 0 {
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
