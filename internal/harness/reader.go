package harness

import (
	"fmt"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Reader reads a Conn on a goroutine of its own, so that the client
// answers pings while the test waits for something else, and hands the
// text frames over. Its methods take the test (or subtest) that waits.
type Reader struct {
	name   string
	frames chan string
	done   chan error
}

// StartReader starts reading c in the background; c must not be read
// otherwise from then on.
func (c *Conn) StartReader() *Reader {
	r := &Reader{name: c.Name, frames: make(chan string, 8192), done: make(chan error, 1)}
	_ = c.SetReadDeadline(time.Time{})
	go func() {
		for {
			mt, b, err := c.ReadMessage()
			if err == nil && mt != websocket.TextMessage {
				err = fmt.Errorf("got a frame of type %d", mt)
			}
			if err != nil {
				r.done <- err
				return
			}
			r.frames <- string(b)
		}
	}()
	return r
}

// Next returns the next frame; what names it for the failure message.
func (r *Reader) Next(t testing.TB, what string) string {
	t.Helper()
	select {
	case f := <-r.frames:
		return f
	case err := <-r.done:
		r.done <- err
		t.Fatalf("%s: the connection ended (%v) while waiting for %s", r.name, err, what)
	case <-time.After(Guard):
		t.Fatalf("%s: nothing came within %s while waiting for %s", r.name, Guard, what)
	}
	return ""
}

// Expect asserts that the next frame is exactly want.
func (r *Reader) Expect(t testing.TB, want string) {
	t.Helper()
	if got := r.Next(t, fmt.Sprintf("%.200q", want)); got != want {
		t.Fatalf("%s: got frame\n\t%.200s\nwant\n\t%.200s", r.name, got, want)
	}
}

// ExpectMessage asserts that the next frame is a json message whose data
// is exactly data.
func (r *Reader) ExpectMessage(t testing.TB, data string) Frame {
	t.Helper()
	f, err := DecodeFrame([]byte(r.Next(t, "a message with data "+data)))
	if err != nil || f.Type != "message" || string(f.Data) != data {
		t.Fatalf("%s: got %.300s (%v), want a message with data %s", r.name, f.Raw, err, data)
	}
	return f
}

// Ended returns why the connection ended, or nil while it is open.
func (r *Reader) Ended() error {
	select {
	case err := <-r.done:
		r.done <- err
		return err
	default:
		return nil
	}
}
