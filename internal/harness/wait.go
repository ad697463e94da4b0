package harness

import (
	"runtime"
	"testing"
	"time"
)

// Guard bounds every wait of the harness (reads, requests, conditions): it
// turns a hang into a failure and is never an assertion on speed.
const Guard = 15 * time.Second

// Eventually polls cond until it holds, and fails t after Guard. cond also
// describes what it last saw, for the failure message. It is for effects
// that the server applies a moment after the client's side is done (a
// closed socket is unbound when the server reads its end).
func Eventually(t testing.TB, what string, cond func() (ok bool, seen string)) {
	t.Helper()
	deadline := time.Now().Add(Guard)
	for {
		ok, seen := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still not true after %s: %s (last seen: %s)", Guard, what, seen)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Heap returns this process's live heap (HeapAlloc) and the heap spans in
// use (HeapInuse) after a full collection: readings for leak checks of the
// in-process Caddy.
func Heap() (alloc, inuse uint64) {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc, m.HeapInuse
}

// Goroutines returns how many goroutines this process runs.
func Goroutines() int { return runtime.NumGoroutine() }

// Stacks returns every goroutine's stack, to show what a leak holds.
func Stacks() string {
	buf := make([]byte, 1<<20)
	return string(buf[:runtime.Stack(buf, true)])
}

// MiB is a mebibyte, for heap readings.
const MiB = 1 << 20
