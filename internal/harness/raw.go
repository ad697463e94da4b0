package harness

import (
	"bufio"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"testing"
	"time"
)

// RawConn is a WebSocket client made by hand on a TCP socket: a hand-made
// handshake, frames written and read byte by byte. It is for peers that
// must misbehave below the WebSocket layer: never read, never answer a
// ping, stop halfway through a frame, send a burst in one write.
type RawConn struct {
	t    testing.TB
	Name string
	Conn *net.TCPConn
	br   *bufio.Reader
}

// WebSocket opcodes.
const (
	OpContinuation = 0x0
	OpText         = 0x1
	OpClose        = 0x8
	OpPing         = 0x9
	OpPong         = 0xA
)

// DialRaw upgrades a TCP connection to wsURL (ws:// only). rcvbuf > 0 fixes
// the socket's receive buffer at that size (no autotuning), so that a peer
// that does not read stalls the server soon. The socket is closed when the
// test ends.
func DialRaw(t testing.TB, name, wsURL string, rcvbuf int) *RawConn {
	t.Helper()
	u, err := url.Parse(wsURL)
	if err != nil || u.Scheme != "ws" {
		t.Fatalf("%s: DialRaw takes a ws:// URL, not %q", name, wsURL)
	}
	nc, err := net.DialTimeout("tcp", u.Host, Guard)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	conn := nc.(*net.TCPConn)
	t.Cleanup(func() { _ = conn.Close() })
	if rcvbuf > 0 {
		if err := conn.SetReadBuffer(rcvbuf); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	var k [16]byte
	_, _ = rand.Read(k[:])
	key := base64.StdEncoding.EncodeToString(k[:])
	req := "GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + "\r\n\r\n"
	_ = conn.SetDeadline(time.Now().Add(Guard))
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatalf("%s: writing the handshake: %v", name, err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("%s: reading the handshake answer: %v", name, err)
	}
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	if resp.StatusCode != http.StatusSwitchingProtocols ||
		resp.Header.Get("Sec-Websocket-Accept") != base64.StdEncoding.EncodeToString(sum[:]) {
		t.Fatalf("%s: handshake answered %s %v", name, resp.Status, resp.Header)
	}
	_ = conn.SetDeadline(time.Time{})
	return &RawConn{t: t, Name: name, Conn: conn, br: br}
}

// FrameBytes is a whole, masked client frame.
func FrameBytes(op byte, payload []byte) []byte { return Fragment(op, true, payload) }

// Fragment is a masked client frame with the FIN bit as fin says: a part of
// a fragmented message (op OpText then OpContinuation) when fin is false.
func Fragment(op byte, fin bool, payload []byte) []byte {
	b, mask := FrameHead(op, fin, uint64(len(payload)))
	for i, c := range payload {
		b = append(b, c^mask[i&3])
	}
	return b
}

// FrameHead is the head alone of a masked client frame that announces n
// bytes of payload (any n, an invalid one too), up to and with its masking
// key, which it also returns.
func FrameHead(op byte, fin bool, n uint64) ([]byte, [4]byte) {
	b := []byte{op}
	if fin {
		b[0] |= 0x80
	}
	switch {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n < 1<<16:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, n)
	}
	var mask [4]byte
	_, _ = rand.Read(mask[:])
	return append(b, mask[:]...), mask
}

// WriteBytes writes b as it is: frames, or parts of one.
func (r *RawConn) WriteBytes(b []byte) {
	r.t.Helper()
	_ = r.Conn.SetWriteDeadline(time.Now().Add(Guard))
	if _, err := r.Conn.Write(b); err != nil {
		r.t.Fatalf("%s: writing: %v", r.Name, err)
	}
}

// WriteFrame writes one whole frame.
func (r *RawConn) WriteFrame(op byte, payload []byte) {
	r.t.Helper()
	r.WriteBytes(FrameBytes(op, payload))
}

// ReadFrame reads one server frame (unmasked, unfragmented), waiting at
// most Guard; pings are returned like any frame and never answered.
func (r *RawConn) ReadFrame() (op byte, payload []byte, err error) {
	_ = r.Conn.SetReadDeadline(time.Now().Add(Guard))
	var h [2]byte
	if _, err := io.ReadFull(r.br, h[:]); err != nil {
		return 0, nil, err
	}
	if h[0]&0xf0 != 0x80 || h[1]&0x80 != 0 {
		return 0, nil, fmt.Errorf("bad server frame header %x", h)
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var e [2]byte
		if _, err := io.ReadFull(r.br, e[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(e[:]))
	case 127:
		var e [8]byte
		if _, err := io.ReadFull(r.br, e[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(e[:])
	}
	if n > 1<<20 {
		return 0, nil, fmt.Errorf("server frame of %d bytes", n)
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(r.br, payload); err != nil {
		return 0, nil, err
	}
	return h[0] & 0x0f, payload, nil
}

// Next is ReadFrame, skipping pings (never answered).
func (r *RawConn) Next() (op byte, payload []byte, err error) {
	for {
		op, payload, err = r.ReadFrame()
		if err != nil || op != OpPing {
			return op, payload, err
		}
	}
}

// ReadData returns the next json frame, skipping pings.
func (r *RawConn) ReadData() Frame {
	r.t.Helper()
	op, p, err := r.Next()
	if err != nil {
		r.t.Fatalf("%s: waiting for a frame: %v", r.Name, err)
	}
	if op != OpText {
		r.t.Fatalf("%s: got a frame with opcode %d (%.100q), want a text frame", r.Name, op, p)
	}
	f, err := DecodeFrame(p)
	if err != nil {
		r.t.Fatalf("%s: %v", r.Name, err)
	}
	return f
}

// Login logs in with a json login frame for uid and returns the welcome.
func (r *RawConn) Login(uid string) Frame {
	r.t.Helper()
	r.WriteFrame(OpText, []byte(JSON(map[string]string{"type": "login", "uid": uid})))
	w := r.ReadData()
	if w.Type != "welcome" || w.UID != uid {
		r.t.Fatalf("%s: got %.300s, want a welcome for %q", r.Name, w.Raw, uid)
	}
	return w
}

// CloseCode splits a close frame's payload into its code and reason.
func CloseCode(p []byte) (int, string) {
	if len(p) < 2 {
		return 1005, ""
	}
	return int(binary.BigEndian.Uint16(p)), string(p[2:])
}

// ExpectClose reads, skipping pings and failing on data, until a close
// frame; it asserts its code, then that the server hangs up, and returns
// the reason.
func (r *RawConn) ExpectClose(code int) string {
	r.t.Helper()
	op, p, err := r.Next()
	if err != nil || op != OpClose {
		r.t.Fatalf("%s: got opcode %d (%.100q), %v, want close %d", r.Name, op, p, err, code)
	}
	got, reason := CloseCode(p)
	if got != code {
		r.t.Fatalf("%s: closed with %d %q, want %d", r.Name, got, reason, code)
	}
	r.ExpectHangup()
	return reason
}

// ExpectHangup asserts that the server closes the TCP connection (EOF or
// reset, not a timeout) with nothing but pings before.
func (r *RawConn) ExpectHangup() {
	r.t.Helper()
	op, p, err := r.Next()
	var ne net.Error
	switch {
	case err == nil:
		r.t.Fatalf("%s: got a frame with opcode %d (%.100q), want the server to hang up", r.Name, op, p)
	case errors.As(err, &ne) && ne.Timeout():
		r.t.Fatalf("%s: the server did not close the connection within %s", r.Name, Guard)
	}
}
