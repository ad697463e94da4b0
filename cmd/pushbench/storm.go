package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"sync"
	"time"
)

// The reconnecting phases: a storm (every connection dropped at once, then
// every one reconnecting at once, as after a restart or a network failure)
// and resume-tls (connections reconnecting first with full TLS handshakes,
// then resuming their TLS sessions).

// stormPasses bounds how often a storm retries the connections that failed,
// as clients would.
const stormPasses = 3

// storm drops every live connection at once, waits until the server has
// closed them (its open files, from /proc), then reopens them all at once
// (-storm-c at a time) and measures the time until every one is logged in
// again. Connections that fail are retried right away, up to stormPasses
// passes in all.
func (b *bench) storm(ctx context.Context) (*stormR, error) {
	idx := b.fleet.liveIndexes(-1)
	if len(idx) == 0 {
		return nil, errors.New("no live connection to drop")
	}
	r := &stormR{Connections: len(idx)}
	if err := b.dropAndWait(ctx, idx, &r.DropS, &r.ServerClosedS); err != nil {
		return nil, err
	}
	conc := b.cfg.stormConcurrency
	if conc == 0 {
		conc = len(idx)
	}
	r.Concurrency = conc
	b.logf("  %d dropped; the server closed them in %.2fs; reconnecting %d at once", len(idx), r.ServerClosedS, conc)
	s0 := b.sample()
	var hist histogram
	var last int64
	todo := idx
	for pass := range stormPasses {
		d := b.dialAll(ctx, todo, conc, nil)
		mergeHist(&hist, &d.hist)
		last = max(last, d.lastOK.Load())
		r.Reconnected += int(d.ok.Load())
		if pass == 0 {
			r.Failures = d.failures
		} else {
			r.Retried += len(todo)
		}
		todo = todo[:0:0]
		for _, i := range idx {
			if c := b.fleet.clients[i]; c == nil || c.dead.Load() {
				todo = append(todo, i)
			}
		}
		if len(todo) == 0 || ctx.Err() != nil {
			break
		}
		if pass == stormPasses-1 {
			r.FinalFailures = d.failures
		}
	}
	s1 := b.sample()
	if last > 0 {
		r.Seconds = round(time.Duration(last - s0.at.UnixNano()).Seconds())
	}
	r.AllBack = len(todo) == 0
	r.Latency = hist.summary()
	r.cpuUse, r.ServerCPUPerConn = cpuFrom(s0, s1, int64(r.Reconnected))
	r.Redis = redisDelta(s0.redis, s1.redis, int64(r.Reconnected), "connection")
	b.logf("  %d/%d logged in again after %.2fs (all back: %v), failures on the first pass: %s",
		r.Reconnected, r.Connections, r.Seconds, r.AllBack, counts(r.Failures))
	return r, ctx.Err()
}

// mergeHist adds the counts of src to dst.
func mergeHist(dst, src *histogram) {
	for i := range src.counts {
		if n := src.counts[i].Load(); n > 0 {
			dst.counts[i].Add(n)
		}
	}
	dst.n.Add(src.n.Load())
	dst.sumUS.Add(src.sumUS.Load())
	for {
		m, s := dst.maxUS.Load(), src.maxUS.Load()
		if s <= m || dst.maxUS.CompareAndSwap(m, s) {
			return
		}
	}
}

// dropAndWait drops the connections idx names and waits until the server
// has closed its side, by its open files (with -pid), at most -close-wait.
// Reconnecting sooner would race each new login with the close of the
// connection it replaces: the recipe, which keeps one connection per uid,
// would unmap the new connection when the old one's close comes through.
func (b *bench) dropAndWait(ctx context.Context, idx []int, dropS, closedS *float64) error {
	fd0, fdErr := b.serverFDs()
	t0 := time.Now()
	b.fleet.drop(idx, 10*time.Second)
	*dropS = round(time.Since(t0).Seconds())
	if fdErr != nil {
		// No -pid: give the server a moment.
		if !sleep(ctx, 2*time.Second) {
			return context.Cause(ctx)
		}
		*closedS = round(time.Since(t0).Seconds())
		return nil
	}
	want := fd0 - len(idx)*99/100
	deadline := time.Now().Add(b.cfg.closeWait)
	for {
		fds, err := b.serverFDs()
		if err != nil {
			return err
		}
		if fds <= want {
			*closedS = round(time.Since(t0).Seconds())
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the server still had %d files open %s after %d connections were dropped (%d before)",
				fds, b.cfg.closeWait, len(idx), fd0)
		}
		if !sleep(ctx, 10*time.Millisecond) {
			return context.Cause(ctx)
		}
	}
}

// sessionSlot is one connection's TLS session cache: it keeps the last
// ticket the server gave, as a browser keeps one per site.
type sessionSlot struct {
	mu   sync.Mutex
	s    *tls.ClientSessionState
	puts int
}

func (c *sessionSlot) Get(string) (*tls.ClientSessionState, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.s, c.s != nil
}

func (c *sessionSlot) Put(_ string, s *tls.ClientSessionState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.s = s
	if s != nil {
		c.puts++
	}
}

func (c *sessionSlot) has() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.s != nil
}

// resumeTLS reconnects -resume-n connections twice, each with its own TLS
// session cache: first from empty caches (full handshakes, which fill
// them), then resuming. It compares the server's CPU per connect + login.
func (b *bench) resumeTLS(ctx context.Context) (*resumeR, error) {
	idx := b.fleet.liveIndexes(b.cfg.resumeN)
	if len(idx) == 0 {
		return nil, errors.New("no live connection")
	}
	base, err := b.cfg.tlsConfig()
	if err != nil {
		return nil, err
	}
	slots := make([]sessionSlot, len(idx))
	confs := make([]*tls.Config, len(idx))
	for k := range confs {
		confs[k] = base.Clone()
		confs[k].ClientSessionCache = &slots[k]
	}
	r := &resumeR{Connections: len(idx)}
	reconnect := func(name string) (*handshakeR, error) {
		h := &handshakeR{}
		if err := b.dropAndWait(ctx, idx, new(float64), &h.ServerClosedS); err != nil {
			return nil, err
		}
		s0 := b.sample()
		d := b.dialAll(ctx, idx, b.cfg.dialConcurrency, func(k int) *tls.Config { return confs[k] })
		s1 := b.sample()
		h.Connected, h.Resumed = int(d.ok.Load()), int(d.resumed.Load())
		h.Failures = d.failures
		if len(h.Failures) == 0 {
			h.Failures = nil
		}
		h.Seconds = round(s1.at.Sub(s0.at).Seconds())
		h.Latency = d.hist.summary()
		h.cpuUse, h.ServerCPUPerConn = cpuFrom(s0, s1, d.ok.Load())
		b.logf("  %s: %d/%d reconnected (%d resumed) in %.2fs, server %s per connection",
			name, h.Connected, len(idx), h.Resumed, h.Seconds, micros(h.ServerCPUPerConn))
		return h, ctx.Err()
	}
	if r.Full, err = reconnect("full handshakes"); err != nil {
		return r, err
	}
	for k := range slots {
		if slots[k].has() {
			r.Tickets++
		}
	}
	if r.Resumed, err = reconnect("resumed"); err != nil {
		return r, err
	}
	if f, s := r.Full.ServerCPUPerConn, r.Resumed.ServerCPUPerConn; f != nil && s != nil && *f > 0 {
		r.Ratio = ptr(round(*s / *f))
	}
	return r, nil
}
