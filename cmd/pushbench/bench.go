package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pushhub/caddy-pushhub/pushapi"
)

// bench runs the phases against one server.
type bench struct {
	cfg   *config
	api   *pushapi.Client
	tr    *trackers
	fleet *fleet
	log   io.Writer
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
	hc := &http.Client{Transport: pushapi.NewTransport(2 * cfg.apiConcurrency), Timeout: 30 * time.Second}
	return &bench{cfg: cfg, api: pushapi.New(cfg.apiURL, cfg.key, hc), tr: tr, fleet: f, log: log}, nil
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
		WS: cfg.wsURL, API: cfg.apiURL, PID: cfg.pid, N: cfg.n, Protocol: cfg.protocol, TLS: cfg.tls,
		Phases: cfg.phases, Rate: cfg.rate, DurationS: cfg.duration.Seconds(), MsgSize: cfg.msgSize,
		APIConc: cfg.apiConcurrency, SourceAddrs: len(b.fleet.dialers),
	}}
	fail := func(phase string, err error) {
		rep.Errors = append(rep.Errors, phase+": "+err.Error())
		b.logf("%s: %v", phase, err)
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
			rep.Connect = b.connect(ctx)
			if rep.Connect.Connected == 0 {
				fail("connect", errors.New("no connection succeeded: "+counts(rep.Connect.Failures)))
				return b.finish(ctx, rep, start, stats0)
			}
		case "idle":
			rep.Idle, err = b.idle(ctx, base)
		case "unicast":
			for _, path := range []string{"api", "client"} {
				var r *rateR
				if r, err = b.rateRun(ctx, path, cfg.rate, cfg.duration); r != nil {
					rep.Unicast = append(rep.Unicast, r)
				}
				if err != nil {
					break
				}
			}
			if cfg.findMax && err == nil {
				for _, path := range []string{"api", "client"} {
					var fm *findMax
					if fm, err = b.findMax(ctx, path); fm != nil {
						rep.FindMax = append(rep.FindMax, fm)
					}
					if err != nil {
						break
					}
				}
			}
		case "broadcast":
			rep.Broadcast, err = b.fanout(ctx, cfg.broadcasts, func(int) pushapi.SendRequest {
				return pushapi.SendRequest{All: true}
			})
		case "group":
			rep.Group, err = b.group(ctx)
		case "api":
			rep.API, err = b.apiThroughput(ctx)
		}
		if err != nil {
			fail(phase, err)
		}
	}
	return b.finish(ctx, rep, start, stats0)
}

// finish closes the connections and completes the report.
func (b *bench) finish(ctx context.Context, rep *report, start time.Time, stats0 *pushapi.Stats) *report {
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		rep.Aborted = fmt.Sprintf("-timeout %s reached", b.cfg.timeout)
	case ctx.Err() != nil:
		rep.Aborted = "interrupted"
	}
	b.fleet.setPhase("end")
	b.logf("closing %d connections", b.fleet.live.Load())
	b.fleet.close(5 * time.Second)
	rep.Lost = b.fleet.lostSoFar()
	rep.Stray = b.tr.stray.Load()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if st, err := b.api.Stats(ctx); err == nil && stats0 != nil {
		rep.SlowConsumers = st.SlowConsumers - stats0.SlowConsumers
	}
	rep.ElapsedS = round(time.Since(start).Seconds())
	return rep
}

// baseline reads the server before any connection: RSS and goroutines.
func (b *bench) baseline(ctx context.Context) (*baseline, *pushapi.Stats, error) {
	st, err := b.api.Stats(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("GET /stats: %w", err)
	}
	base := &baseline{Goroutines: st.Goroutines, Connections: st.Connections}
	if b.cfg.pid > 0 {
		rss, err := procRSS(b.cfg.pid)
		if err != nil {
			return nil, nil, err
		}
		base.RSSBytes = &rss
	}
	if st.Connections > 0 {
		b.logf("warning: the hub already holds %d connections", st.Connections)
	}
	return base, &st, nil
}

// usage samples the clock and the CPU time of the server, the generator and
// the whole machine.
type usage struct {
	at                  time.Time
	server, machine     time.Duration
	serverOK, machineOK bool
	generator           time.Duration
}

func (b *bench) sample() usage {
	u := usage{at: time.Now(), generator: selfCPU()}
	if b.cfg.pid > 0 {
		cpu, err := procCPU(b.cfg.pid)
		u.server, u.serverOK = cpu, err == nil
	}
	busy, err := machineBusy()
	u.machine, u.machineOK = busy, err == nil
	return u
}

// cpuFrom is the CPU time spent from u to v, and the server's per unit of
// count in microseconds (nil when unknown or count is 0).
func cpuFrom(u, v usage, count int64) (c cpuUse, perUnit *float64) {
	gen := v.generator - u.generator
	c.GeneratorCPUS = round(gen.Seconds())
	if !u.serverOK || !v.serverOK {
		return c, nil
	}
	server := v.server - u.server
	c.ServerCPUS = ptr(round(server.Seconds()))
	if u.machineOK && v.machineOK {
		others := max(v.machine-u.machine-server-gen, 0).Seconds()
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

func (b *bench) connect(ctx context.Context) *connectR {
	n := b.cfg.n
	r := &connectR{Attempted: n, Failures: map[string]int{}}
	var (
		next  atomic.Int64
		mu    sync.Mutex
		hist  histogram
		wg    sync.WaitGroup
		ok    atomic.Int64
		start = b.sample()
	)
	for range min(b.cfg.dialConcurrency, n) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if ctx.Err() != nil {
					mu.Lock()
					r.Failures["not attempted: "+reason(ctx.Err())]++
					mu.Unlock()
					continue
				}
				t0 := time.Now()
				if err := b.fleet.dial(ctx, i); err != nil {
					mu.Lock()
					r.Failures[reason(err)]++
					mu.Unlock()
					continue
				}
				hist.record(time.Since(t0))
				if c := ok.Add(1); c%5000 == 0 {
					b.logf("  %d connected", c)
				}
			}
		})
	}
	wg.Wait()
	end := b.sample()
	r.Connected = int(ok.Load())
	wall := end.at.Sub(start.at).Seconds()
	r.Seconds = round(wall)
	r.PerSecond = round(float64(r.Connected) / wall)
	r.Latency = hist.summary()
	r.cpuUse, r.ServerCPUPerConn = cpuFrom(start, end, ok.Load())
	if st, err := b.api.Stats(ctx); err == nil {
		r.ServerConnections = st.Connections
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
	st, err := b.api.Stats(ctx)
	if err != nil {
		return nil, fmt.Errorf("GET /stats: %w", err)
	}
	live := b.fleet.live.Load()
	r.Connections = live
	r.Goroutines = st.Goroutines
	if live > 0 {
		r.GoroutinesPerConn = round(float64(st.Goroutines-base.Goroutines) / float64(live))
	}
	if b.cfg.pid > 0 && base.RSSBytes != nil {
		rss, err := procRSS(b.cfg.pid)
		if err != nil {
			return nil, err
		}
		r.RSSBytes = &rss
		if live > 0 {
			r.RSSPerConn = ptr(round(float64(rss-*base.RSSBytes) / float64(live)))
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

// rateRun sends unicast messages at rate for d, through the API or from
// clients, to uids at random, and measures how they arrive. Each message
// carries the time it was sent; how far sending fell behind the schedule is
// reported apart as the send lag.
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
					rc, err := b.api.Send(ctx, pushapi.SendRequest{UID: b.fleet.uids[to], Data: json.RawMessage(jsonQuoted(payload))})
					call.record(time.Since(now))
					if err != nil {
						noteErr(reason(err))
						continue
					}
					sent.Add(1)
					expected.Add(int64(rc.Delivered))
					continue
				}
				from := b.fleet.randomLive()
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
		Path: path, TargetRate: rate, Seconds: round(wall), SendRate: round(float64(sent.Load()) / wall),
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
	b.logf("  %s at %.0f/s: sent %d, received %d, p50 %.2fms p99 %.2fms max %.2fms",
		path, rate, r.Sent, received, r.Latency.P50Ms, r.Latency.P99Ms, r.Latency.MaxMs)
	return r, ctx.Err()
}

// findMax steps the unicast rate up from -rate, doubling while the bounds
// hold and then bisecting, to find the highest rate at which p99 latency
// stays under -max-p99 with every message delivered and sending on
// schedule. It takes at most maxSteps steps.
func (b *bench) findMax(ctx context.Context, path string) (*findMax, error) {
	const maxSteps = 12
	fm := &findMax{Path: path, MaxP99Ms: ms(b.cfg.maxP99)}
	rate, good, bad := b.cfg.rate, 0.0, 0.0
	for range maxSteps {
		r, err := b.rateRun(ctx, path, rate, b.cfg.stepDuration)
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

// fanout sends pushes through the API one at a time, each to the target
// req(i) names, and times each until its last copy has arrived.
func (b *bench) fanout(ctx context.Context, pushes int, req func(i int) pushapi.SendRequest) (*fanoutR, error) {
	tag, t, err := b.tr.start(pushes)
	if err != nil {
		return nil, err
	}
	r := &fanoutR{Pushes: pushes, Errors: map[string]int{}}
	var call, toLast histogram
	var toLastAll []time.Duration
	payload := make([]byte, 0, b.cfg.msgSize)
	s0 := b.sample()
	for i := range pushes {
		if ctx.Err() != nil {
			break
		}
		q := req(i)
		now := time.Now()
		payload = appendPayload(payload[:0], tag, uint64(i), now.UnixNano(), b.cfg.msgSize)
		q.Data = json.RawMessage(jsonQuoted(payload))
		rc, err := b.api.Send(ctx, q)
		call.record(time.Since(now))
		if err != nil {
			r.Errors[reason(err)]++
			continue
		}
		r.Deliveries += int64(rc.Delivered)
		p := &t.pushes[i]
		deadline := time.Now().Add(fanoutWait)
		for p.count.Load() < int64(rc.Delivered) && time.Now().Before(deadline) && ctx.Err() == nil {
			time.Sleep(200 * time.Microsecond)
		}
		if p.count.Load() < int64(rc.Delivered) {
			r.Errors[fmt.Sprintf("incomplete after %s", fanoutWait)]++
			continue
		}
		r.Completed++
		if rc.Delivered > 0 {
			d := time.Duration(p.last.Load() - now.UnixNano())
			toLast.record(d)
			toLastAll = append(toLastAll, d)
		}
	}
	s1 := b.sample()
	r.Received = t.received.Load()
	r.ToLast = exactSummary(toLastAll, &toLast)
	r.PerDelivery = t.latency.summary()
	r.Call = call.summary()
	r.cpuUse, r.CPUPerMsg = cpuFrom(s0, s1, r.Received)
	if len(r.Errors) == 0 {
		r.Errors = nil
	}
	b.logf("  %d pushes, %d copies: to last copy p50 %.2fms p99 %.2fms", r.Completed, r.Received, r.ToLast.P50Ms, r.ToLast.P99Ms)
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
				if err := b.api.Join(ctx, b.fleet.uids[i], name(i/size)); err != nil {
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
	r, err := b.fanout(ctx, b.cfg.groupPushes, func(i int) pushapi.SendRequest {
		return pushapi.SendRequest{Group: name(i % groups)}
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

// apiThroughput drives push_api as fast as -api-c callers can: single-uid
// sends, then sends to -batch uids at once.
func (b *bench) apiThroughput(ctx context.Context) (*apiR, error) {
	r := &apiR{Concurrency: b.cfg.apiConcurrency}
	n := b.cfg.n
	var err error
	r.Single, err = b.hammer(ctx, 1, func(rng *rand.Rand) pushapi.SendRequest {
		return pushapi.SendRequest{UID: b.fleet.uids[rng.IntN(n)]}
	})
	if err != nil {
		return r, err
	}
	batch := min(b.cfg.batch, n)
	r.Batched, err = b.hammer(ctx, batch, func(rng *rand.Rand) pushapi.SendRequest {
		off := rng.IntN(n - batch + 1)
		return pushapi.SendRequest{UIDs: b.fleet.uids[off : off+batch]}
	})
	return r, err
}

func (b *bench) hammer(ctx context.Context, batch int, target func(*rand.Rand) pushapi.SendRequest) (*throughputR, error) {
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
				q := target(rng)
				payload = appendPayload(payload[:0], tag, 0, now.UnixNano(), b.cfg.msgSize)
				q.Data = json.RawMessage(jsonQuoted(payload))
				rc, err := b.api.Send(ctx, q)
				call.record(time.Since(now))
				if err != nil {
					mu.Lock()
					errs[reason(err)]++
					mu.Unlock()
					continue
				}
				calls.Add(1)
				msgs.Add(int64(rc.Delivered))
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
	b.logf("  batch %d: %.0f calls/s, %.0f msg/s, received %d/%d", batch, r.CallsPerS, r.MsgPerS, received, r.Messages)
	return r, ctx.Err()
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
