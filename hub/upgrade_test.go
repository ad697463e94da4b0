package hub

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestHandshake: the hub answers a valid opening handshake with 101 and the
// accept key RFC 6455 computes for it (the RFC's own example), and refuses
// an invalid one with ErrHandshake before writing anything, so that its
// caller can answer 400.
func TestHandshake(t *testing.T) {
	h := New("handshake", Options{})
	defer h.Close("test over")
	refusals := make(chan error, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h.Upgrade(w, r, ConnOptions{UID: "u"}); err != nil {
			refusals <- err
			http.Error(w, err.Error(), http.StatusBadRequest)
		}
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")

	exchange := func(request string) (string, *bufio.Reader) {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte(request)); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("reading the answer: %v", err)
		}
		return resp.Status + " " + resp.Header.Get("Sec-WebSocket-Accept"), br
	}
	const good = "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	got, br := exchange(good)
	if got != "101 Switching Protocols s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("answer %q", got)
	}
	// The connection is served: its welcome follows.
	if b, err := br.Peek(2); err != nil || b[0] != finBit|opText {
		t.Fatalf("no welcome frame after the handshake: %v %v", b, err)
	}

	for name, request := range map[string]string{
		"wrong version": strings.Replace(good, "Version: 13", "Version: 8", 1),
		"short key":     strings.Replace(good, "dGhlIHNhbXBsZSBub25jZQ==", "c2hvcnQ=", 1),
		"no upgrade":    strings.Replace(good, "Upgrade: websocket\r\n", "", 1),
		"POST":          strings.Replace(good, "GET", "POST", 1),
	} {
		if got, _ := exchange(request); !strings.HasPrefix(got, "400") {
			t.Errorf("%s: answer %q, want 400", name, got)
		}
		select {
		case err := <-refusals:
			if !errors.Is(err, ErrHandshake) {
				t.Errorf("%s: refusal %v does not wrap ErrHandshake", name, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: no refusal", name)
		}
	}
}
