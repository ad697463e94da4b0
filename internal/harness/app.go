package harness

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"
)

// App is a real HTTP server standing in for the application behind a hub:
// push_hub POSTs its events to App.URL+"/events" and asks its login hook at
// App.URL+"/login". It checks every request's signature as the README tells
// an application to, decodes every body strictly (a field the README does
// not list fails the test), records what it is sent, and answers as the
// test says: at once, slowly (SetDelay), with an answer of the test's
// (AnswerEvents, AnswerLogin), or not at all (Stop).
type App struct {
	URL    string // http://127.0.0.1:<port>
	Secret string // the secret the requests must be signed with; "" wants them unsigned

	t    testing.TB
	addr string

	mu           sync.Mutex
	srv          *http.Server
	stopped      chan struct{} // closed by Stop: ends the waits of slow answers
	delay        time.Duration
	eventsStatus int
	eventsBody   string
	loginAnswer  func(LoginCall) (status int, body string)
	batches      []EventBatch
	held         chan struct{}  // while open, event POSTs wait (Hold)
	deliveries   []string       // X-PushHub-Delivery of every event POST, taken or not
	arrived      map[string]int // requests per path, answered or not
	logins       []LoginCall
}

// EventBatch is one POST of events, as the application gets it.
type EventBatch struct {
	Hub    string     `json:"hub"`
	Node   string     `json:"node"`
	Events []AppEvent `json:"events"`

	Delivery string `json:"-"` // the X-PushHub-Delivery header: the same on each retry of a batch
}

// AppEvent is one event of a batch.
type AppEvent struct {
	Kind       string          `json:"kind"`
	Time       time.Time       `json:"time"`
	UID        string          `json:"uid"`
	ConnID     string          `json:"conn_id"`
	Remote     string          `json:"remote"`
	Protocol   string          `json:"protocol"`
	Claims     map[string]any  `json:"claims"`
	Code       int             `json:"code"`
	Reason     string          `json:"reason"`
	DurationMS int64           `json:"duration_ms"`
	Data       json.RawMessage `json:"data"`
}

// LoginCall is what the login hook asks the application.
type LoginCall struct {
	UID      string            `json:"uid"`
	ConnID   string            `json:"conn_id"`
	Remote   string            `json:"remote"`
	Protocol string            `json:"protocol"`
	Claims   map[string]any    `json:"claims"`
	Headers  map[string]string `json:"headers"`
}

// StartApp starts an application on a port of the test binary's block; it
// stops when the test ends.
func StartApp(t testing.TB, secret string) *App {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", Port(t))
	a := &App{URL: "http://" + addr, Secret: secret, t: t, addr: addr, eventsStatus: http.StatusNoContent}
	a.Restart()
	t.Cleanup(a.Stop)
	return a
}

// Stop closes the application's listener and its connections: the hub
// then finds nobody there (connection refused).
func (a *App) Stop() {
	a.mu.Lock()
	srv := a.srv
	a.srv = nil
	if srv != nil {
		close(a.stopped)
	}
	a.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

// Restart listens again on the same address after Stop (and first, from
// StartApp).
func (a *App) Restart() {
	a.t.Helper()
	var l net.Listener
	Eventually(a.t, "the application's port is free", func() (bool, string) {
		var err error
		l, err = net.Listen("tcp", a.addr)
		return err == nil, fmt.Sprint(err)
	})
	srv := &http.Server{Handler: http.HandlerFunc(a.serve), ReadHeaderTimeout: Guard}
	a.mu.Lock()
	a.srv, a.stopped = srv, make(chan struct{})
	a.mu.Unlock()
	go func() { _ = srv.Serve(l) }()
}

// SetDelay makes the application wait d before it answers anything.
func (a *App) SetDelay(d time.Duration) {
	a.mu.Lock()
	a.delay = d
	a.mu.Unlock()
}

// Hold makes event POSTs wait, unanswered, until release is called.
func (a *App) Hold() (release func()) {
	held := make(chan struct{})
	a.mu.Lock()
	a.held = held
	a.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			a.mu.Lock()
			a.held = nil
			a.mu.Unlock()
			close(held)
		})
	}
}

// AnswerEvents makes the application answer event POSTs with status and
// body (by default 204 and nothing). A batch answered with a status other
// than 2xx is not recorded.
func (a *App) AnswerEvents(status int, body string) {
	a.mu.Lock()
	a.eventsStatus, a.eventsBody = status, body
	a.mu.Unlock()
}

// AnswerLogin makes the application answer the login hook with what
// answer returns (by default 200 {"allow":true}).
func (a *App) AnswerLogin(answer func(LoginCall) (status int, body string)) {
	a.mu.Lock()
	a.loginAnswer = answer
	a.mu.Unlock()
}

// Signature is the signature header an application expects on body: the
// README's recipe, written here on its own rather than taken from the
// engine, so that the tests check what the README says.
func Signature(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func (a *App) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	a.mu.Lock()
	delay, stopped, held := a.delay, a.stopped, a.held
	if a.arrived == nil {
		a.arrived = make(map[string]int)
	}
	a.arrived[r.URL.Path]++
	if r.URL.Path == "/events" {
		a.deliveries = append(a.deliveries, r.Header.Get("X-PushHub-Delivery"))
	} else {
		held = nil
	}
	a.mu.Unlock()
	if held != nil {
		select {
		case <-held:
		case <-stopped:
			return
		case <-r.Context().Done():
			return
		}
	}
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-stopped:
			return
		case <-r.Context().Done():
			return
		}
	}
	if err := a.check(r, body); err != nil {
		a.t.Errorf("the application got a bad request: %v", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	switch r.URL.Path {
	case "/events":
		var b EventBatch
		if err := StrictJSON(string(body), &b); err != nil {
			a.t.Errorf("an event batch not as the README says: %v\n%s", err, body)
			http.Error(w, "bad batch", http.StatusBadRequest)
			return
		}
		b.Delivery = r.Header.Get("X-PushHub-Delivery")
		a.mu.Lock()
		status, answer := a.eventsStatus, a.eventsBody
		if status >= 200 && status <= 299 {
			a.batches = append(a.batches, b)
		}
		a.mu.Unlock()
		w.WriteHeader(status)
		_, _ = io.WriteString(w, answer)
	case "/login":
		var c LoginCall
		if err := StrictJSON(string(body), &c); err != nil {
			a.t.Errorf("a login hook request not as the README says: %v\n%s", err, body)
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		a.mu.Lock()
		a.logins = append(a.logins, c)
		answer := a.loginAnswer
		a.mu.Unlock()
		status, out := http.StatusOK, `{"allow":true}`
		if answer != nil {
			status, out = answer(c)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, out)
	default:
		http.NotFound(w, r)
	}
}

// check verifies what every request of the hub carries.
func (a *App) check(r *http.Request, body []byte) error {
	if r.Method != http.MethodPost {
		return fmt.Errorf("%s %s, want POST", r.Method, r.URL.Path)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		return fmt.Errorf("Content-Type %q, want application/json", ct)
	}
	if r.Header.Get("X-PushHub-Delivery") == "" {
		return errors.New("no X-PushHub-Delivery header")
	}
	sig := r.Header.Get("X-PushHub-Signature")
	switch {
	case a.Secret == "" && sig != "":
		return fmt.Errorf("signed (%q), want unsigned", sig)
	case a.Secret != "" && !hmac.Equal([]byte(sig), []byte(Signature(a.Secret, body))):
		return fmt.Errorf("X-PushHub-Signature %q is not the body's", sig)
	}
	return nil
}

// Batches returns the event batches the application took, in order.
func (a *App) Batches() []EventBatch {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]EventBatch(nil), a.batches...)
}

// Events returns the events the application took, in order.
func (a *App) Events() []AppEvent {
	var evs []AppEvent
	for _, b := range a.Batches() {
		evs = append(evs, b.Events...)
	}
	return evs
}

// Deliveries returns the X-PushHub-Delivery header of every POST of
// events that reached the application, taken or not, in order.
func (a *App) Deliveries() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.deliveries...)
}

// Arrived counts the requests for path that reached the application,
// answered or not.
func (a *App) Arrived(path string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.arrived[path]
}

// Logins returns the login hook's requests, in order.
func (a *App) Logins() []LoginCall {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]LoginCall(nil), a.logins...)
}

// WaitEvent waits until the application has taken an event that match
// accepts, and returns it.
func (a *App) WaitEvent(t testing.TB, what string, match func(AppEvent) bool) AppEvent {
	t.Helper()
	var found AppEvent
	Eventually(t, "the application gets "+what, func() (bool, string) {
		evs := a.Events()
		for _, e := range evs {
			if match(e) {
				found = e
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d events: %s", len(evs), JSON(evs))
	})
	return found
}
