package hub

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestTLSSocketInline: over TLS on the poller, crypto/tls writes onto a
// socket that never waits, so a frame is encrypted by the goroutine that
// delivers it, and what the socket cannot take waits, in order, for the
// writer. Publishers on several goroutines flood a client that does not
// read, far beyond the socket buffers; then it reads while they publish
// more. Every frame comes, in each publisher's order, through a TLS stream
// that decrypts (a record out of order or cut would fail it). On a Go
// whose tls.Conn has no conn field this fails, rather than letting wss
// frames silently go back to a writer goroutine each.
func TestTLSSocketInline(t *testing.T) {
	if !tlsConnKnown {
		t.Fatal("crypto/tls's Conn no longer has its conn field as a net.Conn: tls_socket.go replaces nothing on this Go")
	}
	h, url := burstServer(t, true)
	c, ws := dialWSS(t, h, url, func(conn *net.TCPConn) net.Conn {
		_ = conn.SetReadBuffer(64 << 10)
		return conn
	})
	waitPolled(t, c)
	if !c.tlsOut.inline() {
		t.Fatal("a wss connection on the poller does not write inline: this test would not test it")
	}
	// The welcome went out before the connection reached the poller, by a
	// writer goroutine that may not have ended yet on a busy machine.
	waitFor(t, "the welcome's writer gone", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return !c.writing && len(c.queue) == 0
	})
	// A push to an idle connection is encrypted and written by the
	// goroutine that delivers it: no writer goroutine is started.
	for i := range 20 {
		if r := h.push(Target{UID: "me"}, Message{Data: json.RawMessage(`"idle"`)}); r.Delivered != 1 {
			t.Fatalf("push %d: receipt %+v", i, r)
		}
		c.mu.Lock()
		writing := c.writing
		c.mu.Unlock()
		if writing {
			t.Fatalf("push %d to an idle wss connection started its writer", i)
		}
		if _, b, err := ws.ReadMessage(); err != nil || (!strings.Contains(string(b), `"idle"`) && !strings.Contains(string(b), `"welcome"`)) {
			t.Fatalf("push %d: read %q, %v", i, b, err)
		}
	}

	const publishers = 4
	pad := strings.Repeat("p", 4000)
	next := [publishers]int{}
	publish := func(each int) {
		var wg sync.WaitGroup
		for p := range publishers {
			wg.Go(func() {
				for range each {
					next[p]++
					m := Message{Data: json.RawMessage(fmt.Sprintf(`{"p":%d,"i":%d,"pad":%q}`, p, next[p], pad))}
					if r := h.push(Target{UID: "me"}, m); r.Delivered != 1 {
						t.Errorf("publisher %d, message %d: receipt %+v", p, next[p], r)
						return
					}
				}
			})
		}
		wg.Wait()
	}
	got := [publishers]int{}
	read := func(until int) {
		_ = ws.SetReadDeadline(time.Now().Add(20 * time.Second))
		for total := 0; total < until; {
			_, b, err := ws.ReadMessage()
			if err != nil {
				t.Fatalf("after %v: %v", got, err)
			}
			var f struct {
				Type string
				Data struct{ P, I int }
			}
			if json.Unmarshal(b, &f) != nil || f.Type != "message" {
				continue // the welcome
			}
			if got[f.Data.P]++; f.Data.I != got[f.Data.P] {
				t.Fatalf("publisher %d's message %d came where %d was due", f.Data.P, f.Data.I, got[f.Data.P])
			}
			total++
		}
	}

	// 8 MB to a client that reads nothing: most of it waits on the hub.
	publish(500)
	if c.queued() == 0 && !c.tlsOut.hasPending() {
		t.Fatal("the socket took 8 MB at once: this test would not test what waits for the writer")
	}
	read(publishers * 500)

	// Reading while publishing: frames go inline, then wait, then go
	// inline again, as the socket fills and drains.
	done := make(chan struct{})
	go func() {
		defer close(done)
		publish(300)
	}()
	read(publishers * 300)
	<-done
	if t.Failed() {
		return
	}
	waitFor(t, "the writer done and nothing left pending", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return !c.writing && !c.tlsOut.hasPending()
	})
}

// TestTLSRecordsInPieces: the poller decrypts a wss client's records
// itself, without waiting; a record that arrives in pieces stays in
// crypto/tls between reads and is finished by a worker, and a message
// larger than a record spans several. Every message arrives, in order,
// however the bytes were cut.
func TestTLSRecordsInPieces(t *testing.T) {
	h, url := burstServer(t, true)
	pc := &piecesConn{}
	c, ws := dialWSS(t, h, url, func(conn *net.TCPConn) net.Conn {
		pc.Conn = conn
		return pc
	})
	waitPolled(t, c)
	if !c.readsInline() {
		t.Fatal("a logged-in wss client is not read by the poller: this test would not test it")
	}

	sizes := []int{0, 0, 0, 1000, 5000, 20000, 0}
	cuts := [][]int{{1}, {5}, {30}, {}, {100, 100, 1000}, {3000}, {}} // a cut applies to the next write, a record of at most 4 KiB
	for i, size := range sizes {
		pc.cut(cuts[i])
		frame := fmt.Sprintf(`{"type":"send","to":"me","data":{"n":%d,"pad":%q}}`, i+1, strings.Repeat("p", size))
		if err := ws.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
			t.Fatal(err)
		}
	}
	_ = ws.SetReadDeadline(time.Now().Add(20 * time.Second))
	for want := 1; want <= len(sizes); {
		_, b, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("after %d of %d messages: %v", want-1, len(sizes), err)
		}
		var f struct {
			Type string
			Data struct {
				N   int
				Pad string
			}
		}
		if json.Unmarshal(b, &f) != nil || f.Type != "message" {
			continue // the welcome
		}
		if f.Data.N != want || len(f.Data.Pad) != sizes[want-1] {
			t.Fatalf("got message %d with %d bytes, want %d with %d", f.Data.N, len(f.Data.Pad), want, sizes[want-1])
		}
		want++
	}
}

// piecesConn is a client's connection whose next write goes out in
// pieces: cut at the given lengths, each landing on its own.
type piecesConn struct {
	net.Conn
	mu   sync.Mutex
	cuts []int
}

func (pc *piecesConn) cut(at []int) {
	pc.mu.Lock()
	pc.cuts = at
	pc.mu.Unlock()
}

func (pc *piecesConn) Write(b []byte) (int, error) {
	pc.mu.Lock()
	cuts := pc.cuts
	pc.cuts = nil
	pc.mu.Unlock()
	n := 0
	for _, at := range cuts {
		if at >= len(b)-n {
			break
		}
		m, err := pc.Conn.Write(b[n : n+at])
		n += m
		if err != nil {
			return n, err
		}
		time.Sleep(20 * time.Millisecond) // let the piece land on its own
	}
	m, err := pc.Conn.Write(b[n:])
	return n + m, err
}

// TestTLSSocketBounds: what a socket keeps for a peer that reads nothing
// is bounded, and closing it never waits. crypto/tls's own writes onto
// bytes already kept (as the answers to KeyUpdates would be) fail the
// socket past maxUnflushed; once closed with a record cut short, its
// close_notify is refused at once instead of waiting on the full socket.
func TestTLSSocketBounds(t *testing.T) {
	// addUntilRefused adds crypto/tls's own small records onto what s
	// keeps until s refuses them; past twice the bound, there is none.
	addUntilRefused := func(s *tlsSocket, when string) {
		t.Helper()
		for added := 0; ; added += 100 {
			if _, err := s.Write(make([]byte, 100)); err != nil {
				if err != errTLSUnflushed {
					t.Fatalf("%s, after %d bytes added: %v", when, added, err)
				}
				return
			}
			if added > 2*maxUnflushed {
				t.Fatalf("%s: %d bytes added, and no bound", when, added)
			}
		}
	}

	_, s := fullTLSSocket(t)
	addUntilRefused(s, "onto what the socket kept")

	// The same while the writer waits on the full socket to flush.
	server, s := fullTLSSocket(t)
	flushed := make(chan error, 1)
	go func() { flushed <- s.flush() }()
	waitFor(t, "the writer's flush under way", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.holding && len(s.pending) == 0
	})
	addUntilRefused(s, "during a flush")
	server.NetConn().Close() // ends the flush
	<-flushed

	// A fresh connection, closed with bytes kept.
	server, s = fullTLSSocket(t)
	s.detach()
	if err := server.Close(); !errors.Is(err, errTLSClosed) {
		t.Fatalf("closing with a record cut short: %v, want close_notify refused at once (%v)", err, errTLSClosed)
	}
}

// fullTLSSocket is the server side of a TLS connection whose client reads
// nothing, and its socket, which keeps bytes its full send buffer did not
// take.
func fullTLSSocket(t *testing.T) (*tls.Conn, *tlsSocket) {
	t.Helper()
	server, client := tlsPair(t)
	_ = client.NetConn().(*net.TCPConn).SetReadBuffer(16 << 10)
	s := wrapTLS(server)
	if s == nil {
		t.Fatal("no socket under the TLS connection: this test would not test it")
	}
	chunk := make([]byte, 16<<10)
	for !s.hasPending() {
		if _, err := server.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	return server, s
}

// dialWSS logs "me" in to the burst server over wss, trusting its
// certificate, and returns the hub's side and the client's; wrap makes the
// client's connection of its TCP connection.
func dialWSS(t *testing.T, h *Hub, url string, wrap func(*net.TCPConn) net.Conn) (*Conn, *websocket.Conn) {
	t.Helper()
	d := websocket.Dialer{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // the test server's own certificate
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var nd net.Dialer
			conn, err := nd.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return wrap(conn.(*net.TCPConn)), nil
		},
	}
	ws, _, err := d.Dial(url+"/?uid=me", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	return h.connOf(t, "me"), ws
}

// TestTLSReadAfterALaneHandOver: a wss client whose lane is busy is read
// by a worker, and then by the poller again, without waiting: nothing the
// worker left (a read deadline, which a probe of crypto/tls under a
// deadline in the past once left set) may fail that read and close the
// connection.
func TestTLSReadAfterALaneHandOver(t *testing.T) {
	h, url := burstServer(t, true)
	c, ws := dialWSS(t, h, url, func(conn *net.TCPConn) net.Conn { return conn })
	waitPolled(t, c)
	holding, release := make(chan struct{}), make(chan struct{})
	h.laterFrom(c, func() { close(holding); <-release }) // holds c's lane up
	<-holding
	for range laneSize/2 + 1 {
		h.laterFrom(c, func() {})
	}
	if !h.laneBusy(c) {
		t.Fatal("c's lane is not busy: this test would not test the worker's read")
	}
	send := func(n int) {
		if err := ws.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, `{"type":"send","to":"me","data":%d}`, n)); err != nil {
			t.Fatal(err)
		}
	}
	send(1)
	lane := h.lanes.chs[c.pollID%laneCount]
	waitFor(t, "the worker queued message 1 and handed the socket back", func() bool {
		return len(lane) == laneSize/2+2 && !c.busy.Load()
	})
	close(release)
	send(2)
	readNumbered(t, ws, 2)
}
