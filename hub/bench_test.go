package hub

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"
)

// The benchmarks measure the hub's own work: numbering, encoding and
// queueing a push, and the writers draining the queues into WebSocket
// frames. The sockets discard what is written, because a 19,000-way fan-out
// over real loopback sockets needs twice as many file descriptors as one
// process may open here; cmd/pushbench measures the kernel's share.

// sinkConn is a net.Conn that discards writes and blocks reads until closed.
type sinkConn struct {
	once   sync.Once
	closed chan struct{}
}

func newSinkConn() *sinkConn { return &sinkConn{closed: make(chan struct{})} }

func (c *sinkConn) Read([]byte) (int, error)    { <-c.closed; return 0, io.EOF }
func (c *sinkConn) Write(b []byte) (int, error) { return len(b), nil }
func (c *sinkConn) Close() error                { c.once.Do(func() { close(c.closed) }); return nil }
func (c *sinkConn) LocalAddr() net.Addr         { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }
func (c *sinkConn) RemoteAddr() net.Addr        { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2} }
func (c *sinkConn) SetDeadline(time.Time) error { return nil }
func (c *sinkConn) SetReadDeadline(t time.Time) error {
	if !t.IsZero() { // nothing will ever arrive: a deadline ends the read at once
		c.Close()
	}
	return nil
}
func (c *sinkConn) SetWriteDeadline(time.Time) error {
	return nil
}

// benchHub logs in n connections as uids u0..u(n-1) of the given protocol.
func benchHub(b *testing.B, n int, p string) *Hub {
	b.Helper()
	h := New("bench", Options{Settings: Settings{SendQueue: 1 << 16, PingInterval: time.Hour, AuthTimeout: time.Hour}})
	b.Cleanup(func() { h.Close("benchmark over") })
	for i := range n {
		h.serveConn(newSinkConn(), ConnOptions{Protocol: p, UID: "u" + strconv.Itoa(i)})
	}
	if got := h.stats().Connections; got != int64(n) {
		b.Fatalf("%d connections logged in, want %d", got, n)
	}
	return h
}

var payload64 = json.RawMessage(`"` + string(make64()) + `"`)

func make64() []byte {
	p := make([]byte, 62)
	for i := range p {
		p[i] = 'a' + byte(i%26)
	}
	return p
}

// drain waits until every queued frame has been written, so a benchmark
// counts the writers' work too.
func drain(b *testing.B, h *Hub) {
	b.Helper()
	for i := range h.uids {
		s := &h.uids[i]
		s.mu.RLock()
		for _, e := range s.m {
			for _, c := range e.conns {
				for {
					c.mu.Lock()
					busy := c.writing
					c.mu.Unlock()
					if !busy {
						break
					}
					time.Sleep(50 * time.Microsecond)
				}
			}
		}
		s.mu.RUnlock()
	}
}

func BenchmarkSendToUID(b *testing.B) {
	for _, p := range []string{"text", "json"} {
		b.Run(p, func(b *testing.B) {
			h := benchHub(b, 1000, p)
			m := Message{Data: payload64}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				if r := h.push(Target{UID: "u" + strconv.Itoa(i%1000)}, m); r.Delivered != 1 {
					b.Fatalf("delivered %d", r.Delivered)
				}
			}
			drain(b, h)
		})
	}
}

func BenchmarkSendToGroup1k(b *testing.B) {
	h := benchHub(b, 1000, "json")
	for i := range 1000 {
		if err := h.Join(context.Background(), "u"+strconv.Itoa(i), "g"); err != nil {
			b.Fatal(err)
		}
	}
	m := Message{Data: payload64}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if r := h.push(Target{Group: "g"}, m); r.Delivered != 1000 {
			b.Fatalf("delivered %d", r.Delivered)
		}
		drain(b, h)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1000), "ns/delivery")
}

func BenchmarkBroadcast(b *testing.B) {
	for _, n := range []int{10000, 19000} {
		for _, p := range []string{"text", "json"} {
			b.Run(strconv.Itoa(n)+"/"+p, func(b *testing.B) {
				h := benchHub(b, n, p)
				m := Message{Data: payload64}
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					if r := h.push(Target{All: true}, m); r.Delivered != n {
						b.Fatalf("delivered %d", r.Delivered)
					}
					drain(b, h)
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/delivery")
			})
		}
	}
}

func BenchmarkLogin(b *testing.B) {
	h := New("bench", Options{Settings: Settings{PingInterval: time.Hour, AuthTimeout: time.Hour}})
	b.Cleanup(func() { h.Close("benchmark over") })
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		c := h.serveConn(newSinkConn(), ConnOptions{Protocol: "json", UID: "u" + strconv.Itoa(i)})
		c.teardown()
	}
}

func BenchmarkJoin(b *testing.B) {
	h := benchHub(b, 1000, "json")
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		uid := "u" + strconv.Itoa(i%1000)
		if err := h.Join(context.Background(), uid, "g"+strconv.Itoa(i%100)); err != nil {
			b.Fatal(err)
		}
	}
}
