package harness

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/pushhub/caddy-pushhub/pushapi"
)

// httpClient speaks to every site of the tests. Config loads close its idle
// connections, which may point at servers the load replaced.
var httpClient = &http.Client{
	Timeout:   Guard,
	Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 32},
}

// CloseIdleConnections closes the idle keep-alive connections of the
// harness's HTTP client, so that a goroutine count does not include them.
func CloseIdleConnections() { httpClient.CloseIdleConnections() }

// API calls the push API at URL (a site's root, or a prefix under it),
// with Authorization: Bearer Key when Key is set.
type API struct {
	URL string
	Key string
}

// WithKey is the same API called with key.
func (a API) WithKey(key string) API { a.Key = key; return a }

// Under is the same API under a path prefix, such as "/push".
func (a API) Under(prefix string) API { a.URL += prefix; return a }

// Response is an HTTP answer, read whole.
type Response struct {
	t      testing.TB
	Status int
	Header http.Header
	Body   string
}

// Request makes a call without a testing.TB, for goroutines of a test: the
// body is sent as JSON when not empty, headers in hdr replace the key's.
func (a API) Request(method, path, body string, hdr http.Header) (Response, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, a.URL+path, rd)
	if err != nil {
		return Response{}, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if a.Key != "" {
		req.Header.Set("Authorization", "Bearer "+a.Key)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return Response{}, fmt.Errorf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return Response{}, fmt.Errorf("%s %s: reading the body: %v", method, path, err)
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: string(b)}, nil
}

// For is r with t for its checks, for an answer Request got in a goroutine
// of the test; err, Request's, fails t.
func (r Response) For(t testing.TB, err error) Response {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	r.t = t
	return r
}

// Do makes a call and fails t if no answer comes.
func (a API) Do(t testing.TB, method, path, body string, hdr http.Header) Response {
	t.Helper()
	r, err := a.Request(method, path, body, hdr)
	if err != nil {
		t.Fatal(err)
	}
	r.t = t
	return r
}

// Post sends a JSON body to a call, such as "/send".
func (a API) Post(t testing.TB, path, body string) Response {
	t.Helper()
	return a.Do(t, http.MethodPost, path, body, nil)
}

// Get makes a GET call, such as "/online?uid=42".
func (a API) Get(t testing.TB, path string) Response {
	t.Helper()
	return a.Do(t, http.MethodGet, path, "", nil)
}

// ExpectJSON asserts the status, a JSON content type and exactly body (the
// API ends its bodies with a newline, which body leaves out).
func (r Response) ExpectJSON(status int, body string) {
	r.t.Helper()
	if r.Status != status || r.Body != body+"\n" {
		r.t.Fatalf("got HTTP %d %q, want HTTP %d %q", r.Status, r.Body, status, body+"\n")
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		r.t.Fatalf("Content-Type %q, want application/json", ct)
	}
}

// ExpectError asserts the status and an error body
// {"error":{"code":code,"message":"..."}} with nothing more.
func (r Response) ExpectError(status int, code string) {
	r.t.Helper()
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if r.Status != status {
		r.t.Fatalf("got HTTP %d %q, want HTTP %d with error code %q", r.Status, r.Body, status, code)
	}
	if err := StrictJSON(r.Body, &body); err != nil || body.Error.Code != code || body.Error.Message == "" {
		r.t.Fatalf("error body %q (%v), want code %q and a message", r.Body, err, code)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		r.t.Fatalf("Content-Type %q, want application/json", ct)
	}
}

// Receipt is the answer of POST /send, as the Go client pushapi decodes it.
type Receipt = pushapi.SendReceipt

// ReceiptJSON is the exact body of a receipt with nothing stored and no
// wait for acknowledgements.
func ReceiptJSON(delivered, dropped int) string {
	return fmt.Sprintf(`{"delivered":%d,"dropped":%d,"stored":false}`, delivered, dropped)
}

// OnlineJSON is the exact body of GET /online?uid=uid for n connections.
func OnlineJSON(uid string, n int) string {
	return fmt.Sprintf(`{"connections":%d,"online":%t,"uid":%s}`, n, n > 0, JSON(uid))
}

// SendErr posts body to /send and decodes the receipt, without a
// testing.TB, for goroutines of a test.
func (a API) SendErr(body string) (Receipt, error) {
	r, err := a.Request(http.MethodPost, "/send", body, nil)
	if err != nil {
		return Receipt{}, err
	}
	if r.Status != http.StatusOK {
		return Receipt{}, fmt.Errorf("POST /send %.200s: HTTP %d %q", body, r.Status, r.Body)
	}
	var rc Receipt
	if err := StrictJSON(r.Body, &rc); err != nil {
		return Receipt{}, fmt.Errorf("POST /send: receipt %q: %v", r.Body, err)
	}
	return rc, nil
}

// Send posts body to /send and returns the receipt; anything but a 200 with
// a receipt fails t.
func (a API) Send(t testing.TB, body string) Receipt {
	t.Helper()
	rc, err := a.SendErr(body)
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

// Stats is the answer of GET /stats, as the Go client pushapi decodes it.
type Stats = pushapi.Stats

// Stats reads GET /stats.
func (a API) Stats(t testing.TB) Stats {
	t.Helper()
	r := a.Get(t, "/stats")
	if r.Status != http.StatusOK {
		t.Fatalf("GET /stats: HTTP %d %q", r.Status, r.Body)
	}
	var s Stats
	if err := json.Unmarshal([]byte(r.Body), &s); err != nil {
		t.Fatalf("GET /stats %q: %v", r.Body, err)
	}
	return s
}

// WaitOnline waits until GET /online?uid=uid reports n connections.
func (a API) WaitOnline(t testing.TB, uid string, n int) {
	t.Helper()
	want := OnlineJSON(uid, n) + "\n"
	Eventually(t, fmt.Sprintf("uid %q holds %d connections", uid, n), func() (bool, string) {
		r := a.Get(t, "/online?uid="+url.QueryEscape(uid))
		return r.Status == http.StatusOK && r.Body == want, fmt.Sprintf("HTTP %d %q", r.Status, r.Body)
	})
}
