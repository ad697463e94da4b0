package main

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// histogram counts durations in log-linear buckets of microseconds: exact
// below 128µs, then 64 buckets per power of two (under 1.6% error). Recording
// is lock-free and allocation-free, so thousands of receivers can share one.
type histogram struct {
	counts [histBuckets]atomic.Uint64
	n      atomic.Uint64
	sumUS  atomic.Uint64
	maxUS  atomic.Uint64
}

const (
	histSubBits = 7
	histExact   = 1 << histSubBits // values below are their own bucket
	histHalf    = histExact / 2    // buckets per power of two above
	histMaxUS   = 1<<40 - 1        // about 12 days: anything longer is clamped
	histBuckets = histExact + (40-histSubBits)*histHalf
)

func histIndex(us uint64) int {
	if us < histExact {
		return int(us)
	}
	shift := bits.Len64(us) - histSubBits
	return histExact + (shift-1)*histHalf + int(us>>shift) - histHalf
}

// histUpper is the largest value that falls in bucket i.
func histUpper(i int) uint64 {
	if i < histExact {
		return uint64(i)
	}
	k := i - histExact
	shift := k/histHalf + 1
	m := uint64(k%histHalf + histHalf)
	return (m+1)<<shift - 1
}

// record counts d; a negative d (clocks of two goroutines) counts as 0.
func (h *histogram) record(d time.Duration) {
	us := uint64(0)
	if d > 0 {
		us = min(uint64(d/time.Microsecond), histMaxUS)
	}
	h.counts[histIndex(us)].Add(1)
	h.n.Add(1)
	h.sumUS.Add(us)
	for {
		m := h.maxUS.Load()
		if us <= m || h.maxUS.CompareAndSwap(m, us) {
			return
		}
	}
}

// quantile is the value under which a fraction q of the recorded values lie
// (the upper bound of its bucket, never above the largest value recorded).
func (h *histogram) quantile(q float64) time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	target := uint64(q*float64(n) + 0.999999)
	target = max(min(target, n), 1)
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= target {
			return time.Duration(min(histUpper(i), h.maxUS.Load())) * time.Microsecond
		}
	}
	return h.max()
}

func (h *histogram) max() time.Duration { return time.Duration(h.maxUS.Load()) * time.Microsecond }

func (h *histogram) mean() time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	return time.Duration(h.sumUS.Load()/n) * time.Microsecond
}

// latency is a histogram's summary as reported.
type latency struct {
	Count  uint64  `json:"count"`
	MeanMs float64 `json:"mean_ms"`
	P50Ms  float64 `json:"p50_ms"`
	P99Ms  float64 `json:"p99_ms"`
	MaxMs  float64 `json:"max_ms"`
}

func (h *histogram) summary() latency {
	return latency{
		Count:  h.n.Load(),
		MeanMs: ms(h.mean()),
		P50Ms:  ms(h.quantile(0.50)),
		P99Ms:  ms(h.quantile(0.99)),
		MaxMs:  ms(h.max()),
	}
}

// ms is d in milliseconds, rounded to the microsecond.
func ms(d time.Duration) float64 { return float64(d/time.Microsecond) / 1000 }
