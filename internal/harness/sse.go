package harness

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"
)

// Event is one Server-Sent Event as an EventSource sees it: its name
// ("message" when the stream names none), its data, and the id it set.
type Event struct {
	ID    string
	HasID bool
	Name  string
	Data  string
}

// Stream is a client of an event stream, read on a goroutine of its own
// as the HTML standard's parser reads it; comments are counted, not handed
// over.
type Stream struct {
	Resp     *http.Response // its Proto tells HTTP/1.1 from HTTP/2 and HTTP/3
	name     string
	events   chan Event
	done     chan error
	comments atomic.Int64
	cancel   context.CancelFunc
}

// HTTPClient is an HTTP client for the sites of the in-process Caddy that
// trusts its local CA (see WaitForCert) and nothing else; with http2 false
// it speaks HTTP/1.1 only, over TLS too.
func HTTPClient(t testing.TB, http2 bool) *http.Client {
	t.Helper()
	tr := &http.Transport{Proxy: nil, ForceAttemptHTTP2: http2}
	if !http2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	if _, err := readRoots(localCAFile(t)); err == nil {
		tr.TLSClientConfig = localTLS(t)
		if !http2 {
			tr.TLSClientConfig.NextProtos = []string{"http/1.1"}
		}
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// OpenStream GETs url asking for an event stream (Accept:
// text/event-stream, and hdr) and fails t unless it gets one. The stream is
// closed when the test ends.
func OpenStream(t testing.TB, name string, client *http.Client, url string, hdr http.Header) *Stream {
	t.Helper()
	resp, cancel, err := getStream(client, url, hdr)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		cancel()
		t.Fatalf("%s: GET %s: HTTP %d (%s), want 200 and an event stream", name, url, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	s := &Stream{Resp: resp, name: name, events: make(chan Event, 1024), done: make(chan error, 1), cancel: cancel}
	go s.read()
	t.Cleanup(s.Close)
	return s
}

// StreamRefused asserts that a GET of url for an event stream is refused
// with HTTP status.
func StreamRefused(t testing.TB, client *http.Client, url string, hdr http.Header, status int) {
	t.Helper()
	resp, cancel, err := getStream(client, url, hdr)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer cancel()
	if resp.StatusCode != status {
		t.Fatalf("GET %s (headers %v) for an event stream: HTTP %d, want %d", url, hdr, resp.StatusCode, status)
	}
}

func getStream(client *http.Client, url string, hdr http.Header) (*http.Response, context.CancelFunc, error) {
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		cancel()
		return nil, nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	for k, v := range hdr {
		req.Header[k] = v
	}
	// The headers come at once; the stream then stays open.
	timer := time.AfterFunc(Guard, cancel)
	resp, err := client.Do(req)
	timer.Stop()
	if err != nil {
		cancel()
		return nil, nil, fmt.Errorf("GET %s: %v", url, err)
	}
	return resp, func() { cancel(); _ = resp.Body.Close() }, nil
}

// read parses the stream (the HTML standard's "interpreting an event
// stream") until it ends.
func (s *Stream) read() {
	sc := bufio.NewScanner(s.Resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var ev Event
	var data []string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if data != nil {
				ev.Data = strings.Join(data, "\n")
				if ev.Name == "" {
					ev.Name = "message"
				}
				s.events <- ev
			}
			ev, data = Event{}, nil
			continue
		case strings.HasPrefix(line, ":"):
			s.comments.Add(1)
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "event":
			ev.Name = value
		case "data":
			data = append(data, value)
		case "id":
			ev.ID, ev.HasID = value, true
		}
	}
	err := sc.Err()
	if err == nil {
		err = fmt.Errorf("the stream ended")
	}
	s.done <- err
}

// Next returns the next event.
func (s *Stream) Next(t testing.TB, what string) Event {
	t.Helper()
	select { // events the reader handed over come before its end
	case ev := <-s.events:
		return ev
	default:
	}
	select {
	case ev := <-s.events:
		return ev
	case err := <-s.done:
		s.done <- err
		select {
		case ev := <-s.events:
			return ev
		default:
		}
		t.Fatalf("%s: the stream ended (%v) while waiting for %s", s.name, err, what)
	case <-time.After(Guard):
		t.Fatalf("%s: nothing came within %s while waiting for %s", s.name, Guard, what)
	}
	return Event{}
}

// Expect asserts that the next event is named name and carries exactly
// data, and returns it.
func (s *Stream) Expect(t testing.TB, name, data string) Event {
	t.Helper()
	ev := s.Next(t, fmt.Sprintf("a %s event %.200s", name, data))
	if ev.Name != name || ev.Data != data {
		t.Fatalf("%s: got event %q %.300s, want %q %.300s", s.name, ev.Name, ev.Data, name, data)
	}
	return ev
}

// ExpectWelcome asserts that the next event is a welcome for uid and
// returns its data.
func (s *Stream) ExpectWelcome(t testing.TB, uid string) Frame {
	t.Helper()
	ev := s.Next(t, "a welcome")
	f, err := DecodeFrame([]byte(ev.Data))
	if err != nil || ev.Name != "welcome" || f.Type != "welcome" || f.UID != uid || f.ConnID == "" || ev.HasID {
		t.Fatalf("%s: got event %q %s (%v), want a welcome for %q without an id", s.name, ev.Name, ev.Data, err, uid)
	}
	return f
}

// ExpectMessage asserts that the next event is a message with data (JSON
// text) whose id is its seq, and returns the frame.
func (s *Stream) ExpectMessage(t testing.TB, data string) Frame {
	t.Helper()
	ev := s.Next(t, "a message with data "+data)
	f, err := DecodeFrame([]byte(ev.Data))
	if err != nil || ev.Name != "message" || f.Type != "message" || string(f.Data) != data {
		t.Fatalf("%s: got event %q %.300s (%v), want a message with data %s", s.name, ev.Name, ev.Data, err, data)
	}
	if !ev.HasID || ev.ID != fmt.Sprint(f.Seq) {
		t.Fatalf("%s: message %s has id %q, want its seq %d", s.name, ev.Data, ev.ID, f.Seq)
	}
	return f
}

// ExpectEnd asserts that the server ends the stream.
func (s *Stream) ExpectEnd(t testing.TB) {
	t.Helper()
	select {
	case err := <-s.done:
		s.done <- err
	case <-time.After(Guard):
		t.Fatalf("%s: the stream is still open after %s", s.name, Guard)
	}
	select { // the reader hands every event over before it ends
	case ev := <-s.events:
		t.Fatalf("%s: got event %q %.300s, want the stream to end", s.name, ev.Name, ev.Data)
	default:
	}
}

// Comments counts the comment lines (heartbeats) read so far.
func (s *Stream) Comments() int64 { return s.comments.Load() }

// Close ends the request, as a browser closing its EventSource does.
func (s *Stream) Close() { s.cancel() }

// HTTP3Client is an HTTP/3 client (QUIC, quic-go's, as Caddy serves it)
// for the https site of the in-process Caddy, trusting its local CA.
func HTTP3Client(t testing.TB) *http.Client {
	t.Helper()
	tr := &http3.Transport{TLSClientConfig: localTLS(t)}
	t.Cleanup(func() { _ = tr.Close() })
	return &http.Client{Transport: tr}
}
