package hub

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"net/http/httptest"
	"testing"
	"unsafe"
)

// TestTLSBuffersReleased: between reads, an idle TLS connection gives back
// the buffers crypto/tls kept from its handshake and its last record; one
// that stopped halfway through a record keeps them; and reading goes on
// correctly after a release. On a Go whose tls.Conn no longer has the
// fields the release expects, this fails rather than letting wss
// connections silently grow again.
func TestTLSBuffersReleased(t *testing.T) {
	if !tlsLayout.ok {
		t.Fatal("crypto/tls's Conn no longer has rawInput, input and hand as bytes.Buffer/bytes.Reader: tls_buffers.go releases nothing on this Go")
	}
	server, client := tlsPair(t)
	held := func() (raw, hand int) {
		p := unsafe.Pointer(server)
		return (*bytes.Buffer)(unsafe.Add(p, tlsLayout.rawInput)).Cap(), (*bytes.Buffer)(unsafe.Add(p, tlsLayout.hand)).Cap()
	}
	if raw, hand := held(); raw == 0 && hand == 0 {
		t.Fatal("nothing held after the handshake: this test would not test the release")
	}
	if !releaseTLSBuffers(server) {
		t.Fatal("nothing released after the handshake")
	}
	if raw, hand := held(); raw != 0 || hand != 0 {
		t.Fatalf("after the release, %d bytes of raw input and %d of handshake data held", raw, hand)
	}

	// A record read halfway: the rest waits in crypto/tls, so nothing may
	// be released.
	big := bytes.Repeat([]byte("0123456789abcdef"), 1000)
	go func() { _, _ = client.Write(big) }()
	got := make([]byte, len(big))
	if _, err := io.ReadFull(server, got[:100]); err != nil {
		t.Fatal(err)
	}
	if releaseTLSBuffers(server) {
		t.Fatal("released buffers in the middle of a record")
	}
	if _, err := io.ReadFull(server, got[100:]); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, big) {
		t.Fatal("the record read across a refused release came out wrong")
	}
	if !releaseTLSBuffers(server) {
		t.Fatal("nothing released once the record was read whole")
	}

	// Reading after a release allocates afresh and reads right.
	for _, msg := range []string{"hello", string(big[:5000])} {
		go func() { _, _ = client.Write([]byte(msg)) }()
		b := make([]byte, len(msg))
		if _, err := io.ReadFull(server, b); err != nil || string(b) != msg {
			t.Fatalf("read %d of %d bytes after a release, err %v", len(b), len(msg), err)
		}
		releaseTLSBuffers(server)
	}
}

// tlsPair is a TLS connection over loopback TCP, handshake done: its
// server side and its client side.
func tlsPair(t *testing.T) (server, client *tls.Conn) {
	ts := httptest.NewUnstartedServer(nil)
	ts.StartTLS() // for its certificate
	cfg := &tls.Config{Certificates: ts.TLS.Certificates}
	ts.Close()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil && c.(*tls.Conn).Handshake() != nil {
			c.Close()
			c = nil
		}
		accepted <- c
	}()
	client, err = tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true}) // the test's own certificate
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	nc := <-accepted
	if nc == nil {
		t.Fatal("the server side's accept or handshake failed")
	}
	server = nc.(*tls.Conn)
	t.Cleanup(func() { server.Close() })
	return server, client
}
