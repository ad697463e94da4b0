package pushhub

// Fuzz targets of the Caddy side: the push API's request decoding and
// validation, and the Caddyfile directives. Seed corpora are in
// testdata/fuzz/<target>; go test runs them. To fuzz:
// go test -run '^$' -fuzz '^FuzzAPIRequest$' -fuzztime 30s . (or .ci/fuzz).

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/pushhub/caddy-pushhub/hub"
)

// FuzzAPIRequest feeds a body to the push API: call names the call ("send",
// "join", "leave", "kick", or anything else for all of them). The decoding
// and validation functions are checked directly, then the whole call through
// ServeHTTP (for a GET call the body is the query string). Every refusal is
// a 4xx with a stable code; an accepted send names exactly one target and
// carries data.
func FuzzAPIRequest(f *testing.F) {
	h := hub.New("fuzz", hub.Options{})
	f.Cleanup(func() { h.Close("fuzzing over") })
	a := &API{hub: h, MaxBodySize: 1 << 20, logger: zap.NewNop()}
	f.Fuzz(func(t *testing.T, call string, body []byte) {
		switch call {
		case "send":
			fuzzSendBody(t, a, body)
		case "join", "leave":
			fuzzMembershipBody(t, a, body)
		case "kick":
			fuzzKickBody(t, a, body)
		default:
			fuzzSendBody(t, a, body)
			fuzzMembershipBody(t, a, body)
			fuzzKickBody(t, a, body)
		}
		fuzzServeAPI(t, a, call, body)
	})
}

// fuzzAccepted reports whether a call took its body, and checks that a
// refusal is a client error with a code and a message.
func fuzzAccepted(t *testing.T, what string, aerr *apiError) bool {
	t.Helper()
	if aerr == nil {
		return true
	}
	if aerr.status < 400 || aerr.status > 499 || aerr.code == "" || aerr.message == "" {
		t.Fatalf("%s refused with %+v: want a 4xx with a code and a message", what, aerr)
	}
	return false
}

func fuzzSendBody(t *testing.T, a *API, body []byte) {
	t.Helper()
	var req SendRequest
	aerr := decodeBody(body, &req)
	// The plain reader reads what encoding/json reads, or leaves it to it.
	var plain SendRequest
	if readPlainSend(body, &plain) && (aerr != nil || !reflect.DeepEqual(plain, req)) {
		t.Fatalf("%q read as %+v without reflection, as %+v (%v) by encoding/json", body, plain, req, aerr)
	}
	if aerr == nil {
		aerr = a.validateSend(&req)
	}
	if !fuzzAccepted(t, "send", aerr) {
		return
	}
	targets := 0
	for _, set := range []bool{req.UID != "", req.UIDs != nil, req.Group != "", req.All} {
		if set {
			targets++
		}
	}
	if targets != 1 {
		t.Fatalf("accepted a send with %d targets: %+v", targets, req)
	}
	data := bytes.TrimSpace(req.Data)
	if len(data) == 0 || string(data) == "null" || !json.Valid(data) {
		t.Fatalf("accepted a send with data %q", req.Data)
	}
	if req.WaitAck < 0 || time.Duration(req.WaitAck) > maxWaitAck {
		t.Fatalf("accepted wait_ack %v", time.Duration(req.WaitAck))
	}
	max := a.hub.Settings().MaxUIDLength
	uids := req.UIDs
	if req.UID != "" {
		uids = []string{req.UID}
	}
	for _, uid := range uids {
		if hub.ValidName("uid", uid, max) != nil {
			t.Fatalf("accepted the uid %q", uid)
		}
	}
	if req.Group != "" && hub.ValidName("group", req.Group, max) != nil {
		t.Fatalf("accepted the group %q", req.Group)
	}
}

func fuzzPost(call string, body []byte) *http.Request {
	return httptest.NewRequest(http.MethodPost, "/"+call, bytes.NewReader(body))
}

func fuzzMembershipBody(t *testing.T, a *API, body []byte) {
	t.Helper()
	req, aerr := a.membership(fuzzPost("join", body))
	max := a.hub.Settings().MaxUIDLength
	if fuzzAccepted(t, "join", aerr) && (hub.ValidName("uid", req.UID, max) != nil || hub.ValidName("group", req.Group, max) != nil) {
		t.Fatalf("accepted the membership %+v", req)
	}
}

func fuzzKickBody(t *testing.T, a *API, body []byte) {
	t.Helper()
	out, aerr := a.kick(nil, fuzzPost("kick", body))
	if !fuzzAccepted(t, "kick", aerr) {
		return
	}
	m, ok := out.(map[string]any)
	uid, _ := m["uid"].(string)
	if !ok || hub.ValidName("uid", uid, a.hub.Settings().MaxUIDLength) != nil || m["closed"] != 0 {
		t.Fatalf("kick answered %v", out)
	}
}

// fuzzServeAPI makes the call through ServeHTTP, from loopback, and checks
// the answer: 200 or a 4xx, always a JSON body, an error code on refusals.
func fuzzServeAPI(t *testing.T, a *API, call string, body []byte) {
	t.Helper()
	method := http.MethodPost
	if c, ok := calls[call]; ok {
		method = c.method
	}
	r := httptest.NewRequest(method, "/", bytes.NewReader(body))
	r.URL = &url.URL{Path: "/" + call}
	if method == http.MethodGet {
		r.URL.RawQuery = string(body)
	}
	r.RemoteAddr = "127.0.0.1:9"
	w := httptest.NewRecorder()
	if err := a.ServeHTTP(w, r, nil); err != nil {
		t.Fatalf("ServeHTTP: %v", err)
	}
	var answer struct {
		Error *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &answer); err != nil {
		t.Fatalf("%s answered %d with a body that is not JSON: %q", call, w.Code, w.Body)
	}
	switch {
	case w.Code == http.StatusOK && answer.Error == nil:
	case w.Code >= 400 && w.Code <= 499 && answer.Error != nil && answer.Error.Code != "" && answer.Error.Message != "":
	default:
		t.Fatalf("%s answered %d %q: want 200, or a 4xx with an error code", call, w.Code, w.Body)
	}
}

// FuzzCaddyfile parses an input as the block of push_hub and of push_api.
// Whatever parses must validate without a panic and survive a JSON round
// trip unchanged, as the Caddyfile adapter's output is JSON.
func FuzzCaddyfile(f *testing.F) {
	f.Fuzz(func(t *testing.T, input string) {
		for _, dir := range []struct {
			name  string
			fresh func() caddyfile.Unmarshaler
		}{
			{"push_hub", func() caddyfile.Unmarshaler { return new(Handler) }},
			{"push_api", func() caddyfile.Unmarshaler { return new(API) }},
		} {
			// caddyfile.NewTestDispenser does this, but exits the
			// process when Caddy's lexer refuses the input.
			tokens, err := caddyfile.Tokenize([]byte(dir.name+" {\n"+input+"\n}"), "Caddyfile")
			if err != nil {
				continue // the lexer is Caddy's, not ours
			}
			u := dir.fresh()
			if u.UnmarshalCaddyfile(caddyfile.NewDispenser(tokens)) != nil {
				continue
			}
			_ = u.(caddy.Validator).Validate()
			b, err := json.Marshal(u)
			if err != nil {
				t.Fatalf("%s %+v parsed but does not encode as JSON: %v", dir.name, u, err)
			}
			back := dir.fresh()
			if err := json.Unmarshal(b, back); err != nil {
				t.Fatalf("%s: its JSON %s does not decode: %v", dir.name, b, err)
			}
			if !reflect.DeepEqual(u, back) {
				t.Fatalf("%s: JSON round trip changed\n%+v\ninto\n%+v (JSON %s)", dir.name, u, back, b)
			}
		}
	})
}
