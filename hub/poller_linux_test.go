//go:build linux

package hub

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// A plain socket is watched edge-triggered: while a worker reads it, the
// poller must leave it alone, and what arrives meanwhile, whose event the
// poller ignored, must still be read once the worker hands it back.
func TestPollerEventsWhileAWorkerReads(t *testing.T) {
	h := New("edge", Options{Settings: Settings{PingInterval: time.Hour}})
	t.Cleanup(func() { h.Close("test over") })
	if h.poller == nil {
		t.Skip("no epoll here")
	}
	c, client := servePolled(t, h, ConnOptions{Protocol: "text", UID: "alice"})
	if c.raw == nil {
		t.Fatal("the connection is not on the poller")
	}
	br := bufio.NewReader(client)
	ping := func(payload string) {
		t.Helper()
		// A masked ping with a zero key: the payload goes as it is.
		f := append([]byte{0x80 | opPing, 0x80 | byte(len(payload)), 0, 0, 0, 0}, payload...)
		if _, err := client.Write(f); err != nil {
			t.Fatal(err)
		}
	}
	// pong reads the next pong (past the login's welcome), if one comes in
	// time.
	pong := func(within time.Duration) (string, bool) {
		t.Helper()
		_ = client.SetReadDeadline(time.Now().Add(within))
		for {
			h := make([]byte, 2)
			if _, err := io.ReadFull(br, h); err != nil {
				return "", false
			}
			p := make([]byte, h[1])
			if _, err := io.ReadFull(br, p); err != nil {
				t.Fatalf("reading a frame: %v", err)
			}
			switch h[0] {
			case 0x80 | opPong:
				return string(p), true
			case 0x80 | opText:
			default:
				t.Fatalf("frame %x %q, want a pong", h, p)
			}
		}
	}

	ping("idle")
	if p, ok := pong(5 * time.Second); !ok || p != "idle" {
		t.Fatalf("pong %q, %v: the poller did not read an idle connection", p, ok)
	}

	// A worker holds the connection: the poller ignores its event.
	c.busy.Store(true)
	ping("meanwhile")
	if p, ok := pong(200 * time.Millisecond); ok {
		t.Fatalf("pong %q while a worker held the connection: two readers", p)
	}
	// The worker is done and hands it back: what came meanwhile is read.
	if !h.poller.rearm(c) {
		t.Fatal("rearm failed")
	}
	if p, ok := pong(5 * time.Second); !ok || p != "meanwhile" {
		t.Fatalf("pong %q, %v: a frame that came while a worker held the connection was never read", p, ok)
	}

	// And the next frames raise events of their own, with no re-arming.
	for _, p := range []string{"one", "two", "three"} {
		ping(p)
		if got, ok := pong(5 * time.Second); !ok || got != p {
			t.Fatalf("pong %q, %v, want %q", got, ok, p)
		}
	}
}

// Once a client's reading has ended (here with its close frame, whose
// answer waits behind a backlog the client does not read), nothing it
// sends after is read: no publish gets through while its close is under
// way.
func TestPollerReadsNothingAfterTheClose(t *testing.T) {
	h := New("closed", Options{Settings: Settings{PingInterval: time.Hour, AllowClientPublish: true, SendQueue: 1 << 20}})
	t.Cleanup(func() { h.Close("test over") })
	if h.poller == nil {
		t.Skip("no epoll here")
	}
	bob := newRecordConn()
	h.serveConn(bob, ConnOptions{Protocol: "text", UID: "bob"})
	c, client := servePolled(t, h, ConnOptions{Protocol: "text", UID: "alice"})
	send := func(op byte, payload string) {
		t.Helper()
		f := append([]byte{0x80 | op, 0x80 | byte(len(payload)), 0, 0, 0, 0}, payload...)
		if _, err := client.Write(f); err != nil {
			t.Fatal(err)
		}
	}
	send(opText, "bob:before")
	waitFor(t, "bob got alice's publish", func() bool { return bob.wrote("before") })

	// A backlog alice does not read, so that her close waits behind it.
	big := Message{Data: json.RawMessage(`"` + strings.Repeat("x", 60000) + `"`)}
	waitFor(t, "a backlog on alice's connection", func() bool {
		h.push(Target{UID: "alice"}, big)
		return c.queued() > 0
	})
	send(opClose, "\x03\xe8")
	waitFor(t, "alice's close under way", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.closing
	})
	send(opText, "bob:after the close")
	// The close gives up on the backlog within a second and tears the
	// connection down; from then on nothing of it can be read.
	waitFor(t, "alice's connection torn down", c.torn.Load)
	if bob.wrote("after the close") {
		t.Fatal("a publish sent after the client's close frame was read and delivered")
	}
}

// A worker handed an edge-triggered socket whose bytes a worker before it
// already read finds nothing there: it hands the socket back at once
// rather than wait, holding a goroutine, for a frame that may never come.
func TestPollerWorkerFindsNothingToRead(t *testing.T) {
	h := New("nothing", Options{Settings: Settings{PingInterval: time.Hour, PongTimeout: time.Minute, AuthTimeout: time.Minute}})
	t.Cleanup(func() { h.Close("test over") })
	if h.poller == nil {
		t.Skip("no epoll here")
	}
	// Not logged in, and a login that may wait: workers read it.
	login := func(string) (Identity, error) { return Identity{UID: "alice"}, nil }
	c, client := servePolled(t, h, ConnOptions{Protocol: "text", Login: login})
	if c.raw == nil || c.readsInline() {
		t.Fatal("want a connection on the poller that workers read")
	}

	c.busy.Store(true) // handed to a worker, for an event whose bytes are gone
	done := make(chan struct{})
	go func() {
		c.readReady()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("a worker waited on a socket with nothing to read")
	}

	// Handed back: the next frame is read.
	if _, err := client.Write([]byte{0x80 | opPing, 0x80 | 2, 0, 0, 0, 0, 'h', 'i'}); err != nil {
		t.Fatal(err)
	}
	_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
	var pong [4]byte
	if _, err := io.ReadFull(client, pong[:]); err != nil || string(pong[:]) != string([]byte{0x80 | opPong, 2, 'h', 'i'}) {
		t.Fatalf("got %x (%v), want a pong", pong, err)
	}
}

// servePolled hands h the server side of a loopback TCP connection, to be
// read through its poller, and returns it with the client side.
func servePolled(t *testing.T, h *Hub, o ConnOptions) (*Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	nc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	return h.serve(nc, lookupProtocol(o.Protocol), o, true), client
}
