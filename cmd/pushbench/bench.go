package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pushhub/caddy-pushhub/pushapi"
)

// bench runs the phases against one server, or one cluster of nodes.
type bench struct {
	cfg   *config
	push  pusher // nil for the recipe, which has no push API
	tr    *trackers
	fleet *fleet
	redis *redisClient // with -redis
	log   io.Writer

	redisErr sync.Once
}

// How long to wait for stragglers once a run has stopped sending, and for
// each fan-out push to reach its last connection.
const (
	drainQuiet = time.Second
	drainMax   = 10 * time.Second
	fanoutWait = 10 * time.Second
)

func newBench(cfg *config, log io.Writer) (*bench, error) {
	tr := &trackers{}
	f, err := newFleet(cfg, tr)
	if err != nil {
		return nil, err
	}
	b := &bench{cfg: cfg, push: newPusher(cfg), tr: tr, fleet: f, log: log}
	if cfg.redisURL != "" {
		if b.redis, err = newRedisClient(cfg.redisURL); err != nil {
			return nil, err
		}
		if _, err := b.redis.info(); err != nil {
			return nil, fmt.Errorf("-redis: %v", err)
		}
	}
	return b, nil
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.log, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// run runs the phases in order; a canceled ctx cuts the current phase short
// and skips the rest. The connections are closed before it returns.
func (b *bench) run(ctx context.Context) *report {
	cfg := b.cfg
	start := time.Now()
	rep := &report{Started: start, Config: configOut{
		Target: cfg.target, WS: cfg.wsURLs, API: cfg.apiURLs, PIDs: cfg.pids, Nodes: len(cfg.wsURLs),
		CrossNode: cfg.crossNode(), N: cfg.n, Protocol: cfg.protocol, TLS: cfg.tls, JWT: cfg.jwtSecret != "",
		Phases: cfg.phases, Rate: cfg.rates[0], Rates: cfg.rates, DurationS: cfg.duration.Seconds(),
		StepS: cfg.stepDuration.Seconds(), MsgSize: cfg.msgSize, APIConc: cfg.apiConcurrency,
		BroadcastVia: cfg.broadcastVia, SourceAddrs: len(b.fleet.dialers), Redis: cfg.redisURL != "",
	}}
	if b.redis != nil {
		defer b.redis.close()
	}
	if l := backlogLimit(); l > 0 && l < cfg.n {
		b.logf("warning: net.core.netdev_max_backlog is %d: a broadcast to %d loopback connections can overflow it, and each copy the kernel drops arrives about 200 ms late (the kernel row counts them); raise it (sysctl -w net.core.netdev_max_backlog=65536) to measure the server's tail", l, cfg.n)
	}
	fail := func(phase string, err error) {
		rep.Errors = append(rep.Errors, phase+": "+err.Error())
		b.logf("%s: %v", phase, err)
	}
	skip := func(phase, why string) {
		if rep.Skipped == nil {
			rep.Skipped = map[string]string{}
		}
		rep.Skipped[phase] = why
		b.logf("%s: skipped: %s", phase, why)
	}
	for k, why := range cfg.notes {
		skip(k, why)
	}
	base, stats0, err := b.baseline(ctx)
	if err != nil {
		fail("baseline", err)
	} else {
		rep.Baseline = base
	}
	for _, phase := range cfg.phases {
		if ctx.Err() != nil {
			break
		}
		b.fleet.setPhase(phase)
		b.logf("phase %s", phase)
		switch phase {
		case "connect":
			b.quiet(ctx)
			rep.Connect = b.connect(ctx)
			if rep.Connect.Connected == 0 {
				fail("connect", errors.New("no connection succeeded: "+counts(rep.Connect.Failures)))
				return b.finish(ctx, rep, start, stats0)
			}
		case "idle":
			rep.Idle, err = b.idle(ctx, base)
		case "unicast":
			paths := b.unicastPaths(skip)
			for _, path := range paths {
				for _, rate := range cfg.rates {
					var r *rateR
					r, err = measure(b, ctx, "unicast", func() (*rateR, error) { return b.rateRun(ctx, path, rate, cfg.duration) })
					if r != nil {
						rep.Unicast = append(rep.Unicast, r)
					}
					if err != nil {
						break
					}
				}
				if err != nil {
					break
				}
			}
			if cfg.findMax && err == nil {
				for _, path := range paths {
					if !slices.Contains(cfg.findMaxPaths, path) {
						continue
					}
					for run := range cfg.findMaxRuns {
						var fm *findMax
						if fm, err = b.findMax(ctx, path); fm != nil {
							fm.Run = run + 1
							rep.FindMax = append(rep.FindMax, fm)
						}
						if err != nil {
							break
						}
					}
					if err != nil {
						break
					}
				}
			}
		case "broadcast":
			rep.Broadcast, err = measure(b, ctx, phase, func() (*fanoutR, error) { return b.broadcast(ctx) })
		case "group":
			switch {
			case b.push == nil:
				skip(phase, "the recipe has no push API (no groups)")
			case !b.push.groups():
				skip(phase, "Centrifugo has no groups to join through its API here (a group would be a channel); not measured")
			default:
				rep.Group, err = b.group(ctx)
			}
		case "api":
			if b.push == nil {
				skip(phase, "the recipe has no push API")
			} else {
				rep.API, err = b.apiThroughput(ctx)
			}
		case "storm":
			rep.Storm, err = measure(b, ctx, phase, func() (*stormR, error) { return b.storm(ctx) })
		case "resume-tls":
			if !cfg.tls {
				skip(phase, "the target is ws://, without TLS")
			} else {
				rep.ResumeTLS, err = measure(b, ctx, phase, func() (*resumeR, error) { return b.resumeTLS(ctx) })
			}
		}
		if err != nil {
			fail(phase, err)
		}
	}
	return b.finish(ctx, rep, start, stats0)
}

// unicastPaths are the unicast paths the target has: through the API and
// through clients publishing.
func (b *bench) unicastPaths(skip func(phase, why string)) []string {
	switch b.cfg.target {
	case targetRecipe:
		skip("unicast api", "the recipe has no push API: unicast is measured through clients publishing")
		return []string{"client"}
	case targetCentrifugo:
		skip("unicast client", "Centrifugo's clients may not publish to another user's personal channel: unicast is measured through its API")
		return []string{"api"}
	}
	return []string{"api", "client"}
}

// finish closes the connections and completes the report.
func (b *bench) finish(ctx context.Context, rep *report, start time.Time, stats0 *pushapi.Stats) *report {
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		rep.Aborted = fmt.Sprintf("-timeout %s reached", b.cfg.timeout)
	case ctx.Err() != nil:
		rep.Aborted = "interrupted"
	}
	if _, peak, err := b.serverMem(); err == nil {
		rep.PeakRSSBytes = &peak
	}
	b.fleet.setPhase("end")
	b.logf("closing %d connections", b.fleet.live.Load())
	b.fleet.close(5 * time.Second)
	rep.Lost = b.fleet.lostSoFar()
	rep.Stray = b.tr.stray.Load()
	rep.CentrifugoPongs = b.fleet.pongs.Load()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if b.push != nil && stats0 != nil {
		if st, err := b.push.stats(ctx, 0); err == nil {
			rep.SlowConsumers = ptr(st.SlowConsumers - stats0.SlowConsumers)
		}
	}
	rep.Disturbed = rep.disturbedPhases()
	rep.ElapsedS = round(time.Since(start).Seconds())
	return rep
}

// baseline reads the server before any connection: RSS, open files and,
// from the hub's /stats, goroutines.
func (b *bench) baseline(ctx context.Context) (*baseline, *pushapi.Stats, error) {
	base := &baseline{}
	var stats *pushapi.Stats
	if b.push != nil {
		st, err := b.push.stats(ctx, 0)
		switch {
		case errors.Is(err, errNoStats):
		case err != nil:
			return nil, nil, fmt.Errorf("GET /stats: %w", err)
		default:
			stats = &st
			base.Goroutines, base.Connections = &st.Goroutines, &st.Connections
			if st.Connections > 0 {
				b.logf("warning: the hub already holds %d connections", st.Connections)
			}
		}
	}
	if len(b.cfg.pids) > 0 {
		rss, _, err := b.serverMem()
		if err != nil {
			return nil, nil, err
		}
		base.RSSBytes = &rss
		if fds, err := b.serverFDs(); err == nil {
			base.FDs = &fds
		}
	}
	return base, stats, nil
}

// serverMem sums RSS and peak RSS over the server's processes.
func (b *bench) serverMem() (rss, peak int64, err error) {
	if len(b.cfg.pids) == 0 {
		return 0, 0, errors.New("no -pid")
	}
	for _, pid := range b.cfg.pids {
		r, p, err := procMem(pid)
		if err != nil {
			return 0, 0, err
		}
		rss, peak = rss+r, peak+p
	}
	return rss, peak, nil
}

// serverFDs sums the open files of the server's processes.
func (b *bench) serverFDs() (int, error) {
	if len(b.cfg.pids) == 0 {
		return 0, errors.New("no -pid")
	}
	n := 0
	for _, pid := range b.cfg.pids {
		k, err := procFDs(pid)
		if err != nil {
			return 0, err
		}
		n += k
	}
	return n, nil
}

// usage samples the clock and the CPU time of the server's processes, the
// generator, Redis (with -redis) and the whole machine, and the kernel's
// network counters.
type usage struct {
	at                  time.Time
	server              []time.Duration // by -pid
	machine             time.Duration
	serverOK, machineOK bool
	generator           time.Duration
	redis               *redisInfo
	kernel              kernelCounters
	kernelOK            bool
}

func (b *bench) sample() usage {
	u := usage{at: time.Now(), generator: selfCPU(), serverOK: len(b.cfg.pids) > 0}
	for _, pid := range b.cfg.pids {
		cpu, err := procCPU(pid)
		u.server = append(u.server, cpu)
		u.serverOK = u.serverOK && err == nil
	}
	busy, err := machineBusy()
	u.machine, u.machineOK = busy, err == nil
	u.kernel, u.kernelOK = readKernel()
	if b.redis != nil {
		var err error
		if u.redis, err = b.redis.info(); err != nil {
			b.redisErr.Do(func() { b.logf("warning: redis INFO: %v", err) })
		}
	}
	return u
}

// cpuFrom is the CPU time spent from u to v, and the server's per unit of
// count in microseconds (nil when unknown or count is 0). With several
// server processes, the server's figure is their sum, also given by process.
func cpuFrom(u, v usage, count int64) (c cpuUse, perUnit *float64) {
	gen := v.generator - u.generator
	c.GeneratorCPUS = round(gen.Seconds())
	if u.kernelOK && v.kernelOK {
		c.Kernel = kernelDelta(u.kernel, v.kernel)
	}
	if !u.serverOK || !v.serverOK || len(u.server) != len(v.server) {
		return c, nil
	}
	var server time.Duration
	for i := range v.server {
		server += v.server[i] - u.server[i]
	}
	if len(v.server) > 1 {
		for i := range v.server {
			c.ServerCPUByPID = append(c.ServerCPUByPID, round((v.server[i] - u.server[i]).Seconds()))
		}
	}
	c.ServerCPUS = ptr(round(server.Seconds()))
	if u.machineOK && v.machineOK {
		var redis time.Duration
		if u.redis != nil && v.redis != nil {
			redis = time.Duration((v.redis.cpu - u.redis.cpu) * 1e9)
		}
		others := max(v.machine-u.machine-server-gen-redis, 0).Seconds()
		c.OthersCPUS = ptr(round(others))
		if wall := v.at.Sub(u.at).Seconds(); wall > 0 {
			c.OthersCores = ptr(round(others / wall))
		}
	}
	if count > 0 {
		perUnit = ptr(round(float64(server.Nanoseconds()) / 1e3 / float64(count)))
	}
	return c, perUnit
}

func ptr[T any](v T) *T { return &v }

// round keeps three decimals, enough for every figure reported.
func round(v float64) float64 { return math.Round(v*1000) / 1000 }

// dialRun is the outcome of opening a set of connections.
type dialRun struct {
	ok, resumed atomic.Int64
	mu          sync.Mutex
	failures    map[string]int
	hist        histogram
	lastOK      atomic.Int64 // unix nanoseconds of the last login
}

// dialAll opens the connections idx names, conc at a time, and logs them in.
// tlsFor, when set, gives connection idx[k] its own TLS configuration.
func (b *bench) dialAll(ctx context.Context, idx []int, conc int, tlsFor func(k int) *tls.Config) *dialRun {
	d := &dialRun{failures: map[string]int{}}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(conc, len(idx)) {
		wg.Go(func() {
			for {
				k := int(next.Add(1) - 1)
				if k >= len(idx) {
					return
				}
				if ctx.Err() != nil {
					d.mu.Lock()
					d.failures["not attempted: "+reason(ctx.Err())]++
					d.mu.Unlock()
					continue
				}
				var tc *tls.Config
				if tlsFor != nil {
					tc = tlsFor(k)
				}
				t0 := time.Now()
				resumed, err := b.fleet.dial(ctx, idx[k], tc)
				if err != nil {
					d.mu.Lock()
					d.failures[reason(err)]++
					d.mu.Unlock()
					continue
				}
				now := time.Now()
				d.hist.record(now.Sub(t0))
				for {
					last := d.lastOK.Load()
					if now.UnixNano() <= last || d.lastOK.CompareAndSwap(last, now.UnixNano()) {
						break
					}
				}
				if resumed {
					d.resumed.Add(1)
				}
				if c := d.ok.Add(1); c%5000 == 0 {
					b.logf("  %d connected", c)
				}
			}
		})
	}
	wg.Wait()
	return d
}

func (b *bench) connect(ctx context.Context) *connectR {
	n := b.cfg.n
	r := &connectR{Attempted: n}
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	start := b.sample()
	d := b.dialAll(ctx, idx, b.cfg.dialConcurrency, nil)
	end := b.sample()
	r.Connected = int(d.ok.Load())
	r.Failures = d.failures
	wall := end.at.Sub(start.at).Seconds()
	r.Seconds = round(wall)
	r.PerSecond = round(float64(r.Connected) / wall)
	r.Latency = d.hist.summary()
	r.cpuUse, r.ServerCPUPerConn = cpuFrom(start, end, d.ok.Load())
	r.Redis = redisDelta(start.redis, end.redis, d.ok.Load(), "connection")
	if b.push != nil {
		if st, err := b.push.stats(ctx, 0); err == nil {
			r.ServerConnections = &st.Connections
		}
	}
	b.logf("  %d/%d connected in %.2fs, failures: %s", r.Connected, n, r.Seconds, counts(r.Failures))
	return r
}

func (b *bench) idle(ctx context.Context, base *baseline) (*idleR, error) {
	if base == nil {
		return nil, errors.New("no baseline to compare with")
	}
	if !sleep(ctx, b.cfg.settle) {
		return nil, context.Cause(ctx)
	}
	r := &idleR{SettleS: b.cfg.settle.Seconds(), WindowS: b.cfg.idleWindow.Seconds()}
	s0 := b.sample()
	if !sleep(ctx, b.cfg.idleWindow) {
		return nil, context.Cause(ctx)
	}
	s1 := b.sample()
	live := b.fleet.live.Load()
	r.Connections = live
	if b.push != nil && base.Goroutines != nil {
		st, err := b.push.stats(ctx, 0)
		if err != nil {
			return nil, fmt.Errorf("GET /stats: %w", err)
		}
		r.Goroutines = &st.Goroutines
		if live > 0 {
			r.GoroutinesPerConn = ptr(round(float64(st.Goroutines-*base.Goroutines) / float64(live)))
		}
	}
	if len(b.cfg.pids) > 0 && base.RSSBytes != nil {
		for _, pid := range b.cfg.pids {
			rss, peak, err := procMem(pid)
			if err != nil {
				return nil, err
			}
			r.RSSBytes = ptr(deref(r.RSSBytes) + rss)
			r.PeakRSSBytes = ptr(deref(r.PeakRSSBytes) + peak)
			if len(b.cfg.pids) > 1 {
				r.RSSByPID = append(r.RSSByPID, rss)
			}
		}
		if live > 0 {
			r.RSSPerConn = ptr(round(float64(*r.RSSBytes-*base.RSSBytes) / float64(live)))
			r.PeakPerConn = ptr(round(float64(*r.PeakRSSBytes-*base.RSSBytes) / float64(live)))
		}
	}
	r.cpuUse, _ = cpuFrom(s0, s1, 0)
	if r.ServerCPUS != nil {
		window := s1.at.Sub(s0.at).Seconds()
		r.ServerCPUPercent = ptr(round(100 * *r.ServerCPUS / window))
		if live > 0 {
			r.ServerCPUPerConn = ptr(round(*r.ServerCPUS * 1e6 / window / float64(live)))
		}
	}
	return r, nil
}

func deref[T any](p *T) T {
	if p == nil {
		var zero T
		return zero
	}
	return *p
}

// apiNode is the node whose API pushes to connection i: another node than
// i's in a cluster with an API per node (a cross-node push), else the first.
func (b *bench) apiNode(i int) int {
	if !b.cfg.crossNode() {
		return 0
	}
	return (b.fleet.node(i) + 1) % len(b.cfg.wsURLs)
}

// rateRun sends unicast messages at rate for d, through the API or from
// clients, to uids at random, and measures how they arrive. Each message
// carries the time it was sent; how far sending fell behind the schedule is
// reported apart as the send lag. In a cluster, every message crosses
// nodes: the API call goes to another node than the target's, and a
// publishing client is on another node.
func (b *bench) rateRun(ctx context.Context, path string, rate float64, d time.Duration) (*rateR, error) {
	tag, t, err := b.tr.start(0)
	if err != nil {
		return nil, err
	}
	total := max(int64(rate*d.Seconds()), 1)
	workers := b.cfg.apiConcurrency
	if path == "client" {
		workers = 8 // a client write seldom blocks; a few writers keep up
	}
	multi := len(b.cfg.wsURLs) > 1
	var (
		next, sent, expected atomic.Int64
		lag, call            histogram
		errMu                sync.Mutex
		sendErrs             = map[string]int{}
		wg                   sync.WaitGroup
	)
	noteErr := func(why string) {
		errMu.Lock()
		sendErrs[why]++
		errMu.Unlock()
	}
	s0 := b.sample()
	for range workers {
		wg.Go(func() {
			payload := make([]byte, 0, b.cfg.msgSize)
			frame := make([]byte, 0, b.cfg.msgSize+64)
			for {
				i := next.Add(1) - 1
				if i >= total {
					return
				}
				due := s0.at.Add(time.Duration(float64(i) / rate * 1e9))
				if !sleep(ctx, time.Until(due)) {
					return
				}
				to := b.fleet.randomLive()
				if to < 0 {
					noteErr("no live connection")
					continue
				}
				now := time.Now()
				lag.record(now.Sub(due))
				payload = appendPayload(payload[:0], tag, 0, now.UnixNano(), b.cfg.msgSize)
				if path == "api" {
					delivered, err := b.push.send(ctx, b.apiNode(to), pushTarget{uid: b.fleet.uids[to]}, jsonQuoted(payload))
					call.record(time.Since(now))
					if err != nil {
						noteErr(reason(err))
						continue
					}
					sent.Add(1)
					if delivered < 0 {
						delivered = 1
					}
					expected.Add(int64(delivered))
					continue
				}
				from := b.fleet.randomLive()
				if multi {
					from = b.fleet.randomLiveOff(b.fleet.node(to))
				}
				if from < 0 {
					noteErr("no live connection")
					continue
				}
				frame = publishFrame(frame[:0], b.cfg.protocol, b.fleet.uids[to], payload)
				if err := b.fleet.clients[from].write(frame); err != nil {
					noteErr(reason(err))
					continue
				}
				sent.Add(1)
				expected.Add(1)
			}
		})
	}
	wg.Wait()
	sendEnd := time.Now()
	received := waitReceived(t, expected.Load(), drainQuiet, drainMax)
	s1 := b.sample()
	wall := sendEnd.Sub(s0.at).Seconds()
	r := &rateR{
		Path: path, CrossNode: multi && (path == "client" || b.cfg.crossNode()),
		TargetRate: rate, Seconds: round(wall), SendRate: round(float64(sent.Load()) / wall),
		Sent: sent.Load(), SendErrors: sendErrs, Expected: expected.Load(), Received: received,
		Latency: t.latency.summary(), SendLagP99: ms(lag.quantile(0.99)),
	}
	if len(sendErrs) == 0 {
		r.SendErrors = nil
	}
	if r.Sent > 0 {
		r.Ratio = round(float64(received) / float64(r.Sent))
	}
	if path == "api" {
		r.Call = ptr(call.summary())
	}
	r.cpuUse, r.CPUPerMsg = cpuFrom(s0, s1, received)
	r.Redis = redisDelta(s0.redis, s1.redis, r.Sent, "push")
	b.logf("  %s at %.0f/s: sent %d, received %d, p50 %.2fms p99 %.2fms max %.2fms",
		path, rate, r.Sent, received, r.Latency.P50Ms, r.Latency.P99Ms, r.Latency.MaxMs)
	return r, ctx.Err()
}

// findMax steps the unicast rate up from the first -rate, doubling while
// the bounds hold and then bisecting, to find the highest rate at which p99
// latency stays under -max-p99 with every message delivered and sending on
// schedule. It takes at most maxSteps steps of -step-duration each.
func (b *bench) findMax(ctx context.Context, path string) (*findMax, error) {
	const maxSteps = 12
	fm := &findMax{Path: path, MaxP99Ms: ms(b.cfg.maxP99), StepS: b.cfg.stepDuration.Seconds()}
	rate, good, bad := b.cfg.rates[0], 0.0, 0.0
	for range maxSteps {
		r, err := measure(b, ctx, "find-max step", func() (*rateR, error) { return b.rateRun(ctx, path, rate, b.cfg.stepDuration) })
		if r != nil {
			ok := r.Latency.Count > 0 && r.Latency.P99Ms < ms(b.cfg.maxP99) &&
				r.SendRate >= 0.95*rate && len(r.SendErrors) == 0 &&
				float64(r.Received) >= 0.999*float64(r.Sent)
			r.OK = &ok
			fm.Steps = append(fm.Steps, r)
			if r.disturbed() {
				fm.Disturbed++
			}
			if ok {
				good = max(good, rate)
			} else if bad == 0 || rate < bad {
				bad = rate
			}
		}
		if err != nil {
			return fm, err
		}
		switch {
		case bad == 0:
			rate *= 2
		case good == 0:
			rate = bad / 2
			if rate < 1 {
				fm.BestRate = good
				return fm, nil
			}
		default:
			if bad-good <= 0.1*good {
				fm.BestRate = good
				return fm, nil
			}
			rate = math.Round((good + bad) / 2)
		}
	}
	fm.BestRate = good
	return fm, nil
}

// broadcast measures -broadcasts pushes to everyone: through the first
// node's API, or published by a client at random ("all:<payload>" in the
// text protocol). Every live connection must get a copy, on every node.
func (b *bench) broadcast(ctx context.Context) (*fanoutR, error) {
	if b.cfg.broadcastVia == "client" {
		frame := make([]byte, 0, b.cfg.msgSize+64)
		r, err := b.fanout(ctx, b.cfg.broadcasts, func(_ int, payload []byte) (int, int, error) {
			from := b.fleet.randomLive()
			if from < 0 {
				return 0, 0, errors.New("no live connection")
			}
			frame = broadcastFrame(frame[:0], b.cfg.protocol, payload)
			return -1, -1, b.fleet.clients[from].write(frame)
		})
		if r != nil {
			r.Via = "client"
		}
		return r, err
	}
	r, err := b.fanout(ctx, b.cfg.broadcasts, func(_ int, payload []byte) (int, int, error) {
		delivered, err := b.push.send(ctx, 0, pushTarget{all: true}, jsonQuoted(payload))
		return -1, delivered, err
	})
	if r != nil {
		r.Via = "api"
	}
	return r, err
}

// fanout sends pushes one at a time, each through send, and times each
// until its last copy has arrived. send returns the copies to wait for (-1:
// one per live connection) and the copies the server says it queued (-1: it
// does not say).
func (b *bench) fanout(ctx context.Context, pushes int, send func(i int, payload []byte) (expected, queued int, err error)) (*fanoutR, error) {
	tag, t, err := b.tr.start(pushes)
	if err != nil {
		return nil, err
	}
	r := &fanoutR{Pushes: pushes, Errors: map[string]int{}}
	var call, toLast histogram
	var toLastAll []time.Duration
	var slowest time.Duration
	slowestAt, slowestSent := 0, time.Time{} // which push, and when it was sent
	payload := make([]byte, 0, b.cfg.msgSize)
	s0 := b.sample()
	for i := range pushes {
		if ctx.Err() != nil {
			break
		}
		now := time.Now()
		payload = appendPayload(payload[:0], tag, uint64(i), now.UnixNano(), b.cfg.msgSize)
		live := b.fleet.live.Load()
		expected, queued, err := send(i, payload)
		call.record(time.Since(now))
		if err != nil {
			r.Errors[reason(err)]++
			continue
		}
		if queued >= 0 {
			r.Deliveries = ptr(deref(r.Deliveries) + int64(queued))
		}
		want := int64(expected)
		if expected < 0 {
			want = live
		}
		r.Expected += want
		p := &t.pushes[i]
		deadline := time.Now().Add(fanoutWait)
		// A connection that ends meanwhile gets no copy: wait for the live ones.
		for p.count.Load() < min(want, b.fleet.live.Load()) && time.Now().Before(deadline) && ctx.Err() == nil {
			time.Sleep(200 * time.Microsecond)
		}
		if p.count.Load() < min(want, b.fleet.live.Load()) {
			r.Errors[fmt.Sprintf("incomplete after %s", fanoutWait)]++
			continue
		}
		r.Completed++
		if want > 0 {
			d := time.Duration(p.last.Load() - now.UnixNano())
			toLast.record(d)
			toLastAll = append(toLastAll, d)
			if d > slowest {
				slowest, slowestAt, slowestSent = d, i+1, now
			}
		}
	}
	s1 := b.sample()
	r.Received = t.received.Load()
	r.ToLast = exactSummary(toLastAll, &toLast)
	r.PerDelivery = t.latency.summary()
	r.Call = call.summary()
	r.cpuUse, r.CPUPerMsg = cpuFrom(s0, s1, r.Received)
	r.Redis = redisDelta(s0.redis, s1.redis, int64(r.Completed), "push")
	if len(r.Errors) == 0 {
		r.Errors = nil
	}
	b.logf("  %d pushes, %d copies: to last copy p50 %.2fms p99 %.2fms, the slowest the %d. (%.2fms, sent at %s)",
		r.Completed, r.Received, r.ToLast.P50Ms, r.ToLast.P99Ms, slowestAt, ms(slowest), slowestSent.Format("15:04:05.000"))
	return r, ctx.Err()
}

// exactSummary summarises a few durations exactly (nearest rank), with the
// histogram's mean.
func exactSummary(ds []time.Duration, h *histogram) latency {
	l := h.summary()
	if len(ds) == 0 {
		return l
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := func(q float64) time.Duration { return s[max(int(math.Ceil(q*float64(len(s))))-1, 0)] }
	l.P50Ms, l.P99Ms, l.MaxMs = ms(rank(0.5)), ms(rank(0.99)), ms(s[len(s)-1])
	return l
}

// group joins uids to groups of -group-size through the API, then measures
// -group-pushes pushes to them like broadcasts.
func (b *bench) group(ctx context.Context) (*fanoutR, error) {
	size := min(b.cfg.groupSize, b.cfg.n)
	groups := max(min(b.cfg.groupPushes, b.cfg.n/size), 1)
	name := func(k int) string { return fmt.Sprintf("bench-g%d", k) }
	var (
		next, joined atomic.Int64
		mu           sync.Mutex
		joinErrs     = map[string]int{}
		wg           sync.WaitGroup
	)
	t0 := time.Now()
	for range b.cfg.apiConcurrency {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= groups*size || ctx.Err() != nil {
					return
				}
				if err := b.push.join(ctx, b.apiNode(i), b.fleet.uids[i], name(i/size)); err != nil {
					mu.Lock()
					joinErrs[reason(err)]++
					mu.Unlock()
					continue
				}
				joined.Add(1)
			}
		})
	}
	wg.Wait()
	joinTime := time.Since(t0)
	b.logf("  %d joins in %.2fs", joined.Load(), joinTime.Seconds())
	r, err := measure(b, ctx, "group", func() (*fanoutR, error) {
		return b.fanout(ctx, b.cfg.groupPushes, func(i int, payload []byte) (int, int, error) {
			delivered, err := b.push.send(ctx, 0, pushTarget{group: name(i % groups)}, jsonQuoted(payload))
			return delivered, delivered, err
		})
	})
	if r != nil {
		r.GroupSize, r.Groups, r.Joins = size, groups, int(joined.Load())
		r.JoinsPerS = round(float64(joined.Load()) / joinTime.Seconds())
		if len(joinErrs) > 0 {
			r.JoinErrors = joinErrs
		}
	}
	return r, err
}

// apiThroughput drives the API as fast as -api-c callers can: single-uid
// sends (in a cluster, each to another node than the uid's), then sends to
// -batch uids at once (Centrifugo: /api/broadcast to their channels).
func (b *bench) apiThroughput(ctx context.Context) (*apiR, error) {
	r := &apiR{Concurrency: b.cfg.apiConcurrency, CrossNode: b.cfg.crossNode()}
	n := b.cfg.n
	var err error
	r.Single, err = measure(b, ctx, "api single", func() (*throughputR, error) {
		return b.hammer(ctx, 1, func(rng *rand.Rand) (int, pushTarget) {
			i := rng.IntN(n)
			return b.apiNode(i), pushTarget{uid: b.fleet.uids[i]}
		})
	})
	if err != nil {
		return r, err
	}
	batch := min(b.cfg.batch, n)
	r.Batched, err = measure(b, ctx, "api batched", func() (*throughputR, error) {
		return b.hammer(ctx, batch, func(rng *rand.Rand) (int, pushTarget) {
			off := rng.IntN(n - batch + 1)
			return rng.IntN(len(b.cfg.apiURLs)), pushTarget{uids: b.fleet.uids[off : off+batch]}
		})
	})
	return r, err
}

func (b *bench) hammer(ctx context.Context, batch int, target func(*rand.Rand) (int, pushTarget)) (*throughputR, error) {
	tag, t, err := b.tr.start(0)
	if err != nil {
		return nil, err
	}
	var (
		calls, msgs atomic.Int64
		call        histogram
		mu          sync.Mutex
		errs        = map[string]int{}
		wg          sync.WaitGroup
	)
	s0 := b.sample()
	stop := s0.at.Add(b.cfg.duration)
	for w := range b.cfg.apiConcurrency {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), uint64(s0.at.UnixNano())))
			payload := make([]byte, 0, b.cfg.msgSize)
			for ctx.Err() == nil {
				now := time.Now()
				if now.After(stop) {
					return
				}
				node, to := target(rng)
				payload = appendPayload(payload[:0], tag, 0, now.UnixNano(), b.cfg.msgSize)
				delivered, err := b.push.send(ctx, node, to, jsonQuoted(payload))
				call.record(time.Since(now))
				if err != nil {
					mu.Lock()
					errs[reason(err)]++
					mu.Unlock()
					continue
				}
				if delivered < 0 { // the server does not say: one per uid
					delivered = max(len(to.uids), 1)
				}
				calls.Add(1)
				msgs.Add(int64(delivered))
			}
		})
	}
	wg.Wait()
	wall := time.Since(s0.at).Seconds()
	received := waitReceived(t, msgs.Load(), drainQuiet, drainMax)
	s1 := b.sample()
	r := &throughputR{
		Batch: batch, Seconds: round(wall), Calls: calls.Load(),
		CallsPerS: round(float64(calls.Load()) / wall),
		Messages:  msgs.Load(), MsgPerS: round(float64(msgs.Load()) / wall),
		Received: received, Call: call.summary(), Latency: t.latency.summary(),
	}
	if len(errs) > 0 {
		r.Errors = errs
	}
	r.cpuUse, r.CPUPerMsg = cpuFrom(s0, s1, received)
	r.Redis = redisDelta(s0.redis, s1.redis, calls.Load(), "call")
	b.logf("  batch %d: %.0f calls/s, %.0f msg/s, received %d/%d", batch, r.CallsPerS, r.MsgPerS, received, r.Messages)
	return r, ctx.Err()
}

// quiet waits, up to -quiet-wait, until the other processes of the machine
// use less than disturbedCores, sampled over a second: the generator and
// the server (and Redis) are not counted.
func (b *bench) quiet(ctx context.Context) {
	if b.cfg.quietWait <= 0 {
		return
	}
	start := time.Now()
	for {
		s0 := b.sample()
		if !sleep(ctx, time.Second) {
			return
		}
		c, _ := cpuFrom(s0, b.sample(), 0)
		busy := deref(c.OthersCores)
		waited := time.Since(start)
		switch {
		case busy < disturbedCores:
			if waited > 2*time.Second {
				b.logf("  quiet after %.0fs", waited.Seconds())
			}
			return
		case waited >= b.cfg.quietWait:
			b.logf("  other processes still take %.2f cores after %s: measuring anyway", busy, b.cfg.quietWait)
			return
		case waited < 2*time.Second:
			b.logf("  other processes take %.2f cores: waiting up to %s", busy, b.cfg.quietWait)
		}
	}
}

// measured is a run's result that says whether it was disturbed.
type measured interface {
	disturbed() bool
	setRedone(int)
}

// measure runs f once the machine is quiet, and again (up to -redo more
// times) while other processes disturbed it. The result is the last run's;
// f returns a result or an error.
func measure[T measured](b *bench, ctx context.Context, name string, f func() (T, error)) (T, error) {
	for i := 0; ; i++ {
		b.quiet(ctx)
		r, err := f()
		if err != nil || ctx.Err() != nil {
			return r, err
		}
		if i > 0 {
			r.setRedone(i)
		}
		if i >= b.cfg.redo || !r.disturbed() {
			return r, nil
		}
		b.logf("  %s was disturbed by other processes: measuring it again", name)
	}
}

// sleep waits d or until ctx ends; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
