package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestTargetFlags(t *testing.T) {
	t.Setenv("PUSH_API_KEY", "")
	t.Setenv("PUSHBENCH_JWT_SECRET", "")
	t.Setenv("CENTRIFUGO_API_KEY", "")
	t.Setenv("CENTRIFUGO_SECRET", "")
	cfg, err := parseFlags(nil, io.Discard)
	if err != nil || cfg.target != targetHub || cfg.protocol != "json" || cfg.broadcastVia != "api" ||
		!slices.Equal(cfg.wsURLs, []string{"ws://127.0.0.1:8080/ws"}) || !slices.Equal(cfg.apiURLs, []string{"http://127.0.0.1:7070"}) {
		t.Errorf("hub defaults: %+v, %v", cfg, err)
	}
	cfg, err = parseFlags([]string{"-target", "recipe"}, io.Discard)
	if err != nil || cfg.protocol != "text" || cfg.broadcastVia != "client" || len(cfg.apiURLs) != 0 ||
		!slices.Equal(cfg.wsURLs, []string{"ws://127.0.0.1:8181/"}) {
		t.Errorf("recipe defaults: %+v, %v", cfg, err)
	}
	cfg, err = parseFlags([]string{"-target", "centrifugo", "-broadcast-via", "client"}, io.Discard)
	if err != nil || cfg.protocol != protoCentrifugo || cfg.key != defaultCentrifugoKey || cfg.jwtSecret != defaultJWTSecret ||
		cfg.broadcastVia != "api" || cfg.notes["broadcast via client"] == "" ||
		!slices.Equal(cfg.apiURLs, []string{"http://127.0.0.1:8000"}) {
		t.Errorf("centrifugo defaults: %+v, %v", cfg, err)
	}
	t.Setenv("CENTRIFUGO_API_KEY", "k2")
	t.Setenv("CENTRIFUGO_SECRET", "s2")
	if cfg, err := parseFlags([]string{"-target", "centrifugo"}, io.Discard); err != nil || cfg.key != "k2" || cfg.jwtSecret != "s2" {
		t.Errorf("centrifugo from the environment: key %q secret %q, %v", cfg.key, cfg.jwtSecret, err)
	}
	if cfg, err := parseFlags([]string{"-target", "centrifugo", "-key", "k3", "-jwt-secret", "s3"}, io.Discard); err != nil || cfg.key != "k3" || cfg.jwtSecret != "s3" {
		t.Errorf("centrifugo flags: key %q secret %q, %v", cfg.key, cfg.jwtSecret, err)
	}
	for _, bad := range [][]string{
		{"-target", "mercure"},
		{"-target", "recipe", "-protocol", "json"},
		{"-target", "recipe", "-api", "http://127.0.0.1:1"},
		{"-target", "recipe", "-broadcast-via", "api"},
		{"-target", "recipe", "-jwt-secret", "x"},
		{"-target", "centrifugo", "-protocol", "text"},
		{"-broadcast-via", "carrier-pigeon"},
		{"-ws", "ws://127.0.0.1:1/,ws://127.0.0.1:2/,ws://127.0.0.1:3/", "-api", "http://127.0.0.1:1,http://127.0.0.1:2"},
		{"-ws", "ws://127.0.0.1:1/,wss://127.0.0.1:2/"},
		{"-rate", "1000,-5"},
		{"-rate", ""},
		{"-pid", "12,x"},
		{"-find-max-path", "both"},
		{"-redis", "redis://10.1.1.1:6379"},
		{"-redis", "http://127.0.0.1:6379"},
		{"-find-max-runs", "0"},
	} {
		if _, err := parseFlags(bad, io.Discard); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestClusterFlags(t *testing.T) {
	cfg, err := parseFlags([]string{
		"-ws", "ws://127.0.0.1:1/ws, ws://127.0.0.1:2/ws,ws://127.0.0.1:3/ws",
		"-api", "http://127.0.0.1:4,http://127.0.0.1:5,http://127.0.0.1:6",
		"-rate", "2000, 10000", "-find-max-path", "client", "-redis", "redis://:pw@127.0.0.1:6379/0",
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.wsURLs) != 3 || cfg.wsURLs[1] != "ws://127.0.0.1:2/ws" || !cfg.crossNode() ||
		!slices.Equal(cfg.rates, []float64{2000, 10000}) || !slices.Equal(cfg.findMaxPaths, []string{"client"}) {
		t.Errorf("cluster flags: %+v", cfg)
	}
	// -tls turns every node to wss.
	cfg, err = parseFlags([]string{"-ws", "ws://127.0.0.1:1/,ws://127.0.0.1:2/", "-tls"}, io.Discard)
	if err != nil || !cfg.tls || !slices.Equal(cfg.wsURLs, []string{"wss://127.0.0.1:1/", "wss://127.0.0.1:2/"}) || cfg.crossNode() {
		t.Errorf("-tls on two nodes with one API: %v, %v", cfg, err)
	}
	// Pushes cross nodes: connection i is on node i%3, its API call goes to the next node.
	b := &bench{cfg: &config{wsURLs: make([]string, 3), apiURLs: make([]string, 3)}, fleet: &fleet{targets: make([]string, 3)}}
	for i := range 9 {
		if got, want := b.apiNode(i), (i%3+1)%3; got != want || got == b.fleet.node(i) {
			t.Errorf("apiNode(%d) = %d, want %d (node %d)", i, got, want, b.fleet.node(i))
		}
	}
	b.cfg.apiURLs = b.cfg.apiURLs[:1]
	if b.apiNode(4) != 0 {
		t.Error("with one API, every push should go to it")
	}
	pids, err := parsePIDs("12, 7,12,0")
	if err != nil || !slices.Equal(pids, []int{12, 7}) {
		t.Errorf("parsePIDs = %v, %v; want 12 and 7 once each", pids, err)
	}
}

func TestParsePhasesDefaults(t *testing.T) {
	got, err := parsePhases(defaultPhases)
	if err != nil || slices.Contains(got, "storm") || slices.Contains(got, "resume-tls") || got[0] != "connect" {
		t.Errorf("default phases %v, %v", got, err)
	}
	got, _ = parsePhases("all")
	if !slices.Equal(got, allPhases) || got[len(got)-1] != "resume-tls" {
		t.Errorf("all = %v", got)
	}
	got, _ = parsePhases("resume-tls,storm,idle")
	if strings.Join(got, ",") != "connect,idle,storm,resume-tls" {
		t.Errorf("reconnecting phases run last: %v", got)
	}
}

func TestJWT(t *testing.T) {
	const secret = "pushhub-bench-hmac-secret-0123456789abcdef"
	tok := loginToken(protoCentrifugo, secret, "u42")
	claims := jwt.MapClaims{}
	parsed, err := jwt.ParseWithClaims(tok, claims, func(*jwt.Token) (any, error) { return []byte(secret), nil },
		jwt.WithValidMethods([]string{"HS256"}))
	if err != nil || !parsed.Valid || claims["sub"] != "u42" {
		t.Fatalf("token %s: %v, claims %v", tok, err, claims)
	}
	if ch, _ := claims["channels"].([]any); len(ch) != 1 || ch[0] != "broadcast" {
		t.Errorf("channels claim %v", claims["channels"])
	}
	if _, err := jwt.Parse(tok, func(*jwt.Token) (any, error) { return []byte("wrong"), nil }); err == nil {
		t.Error("a token verified with the wrong secret")
	}
	hubTok := loginToken("text", secret, "u7")
	claims = jwt.MapClaims{}
	if _, err := jwt.ParseWithClaims(hubTok, claims, func(*jwt.Token) (any, error) { return []byte(secret), nil }); err != nil || claims["sub"] != "u7" || claims["channels"] != nil {
		t.Errorf("hub token: %v, %v", claims, err)
	}
	if loginToken("json", "", "u7") != "" || loginToken("text", "", "u7") != "" {
		t.Error("a token without a secret")
	}
}

func TestLoginFrames(t *testing.T) {
	for _, c := range []struct{ wire, token, want string }{
		{"text", "", "u3"},
		{"text", "T", "T"},
		{"json", "", `{"type":"login","uid":"u3"}`},
		{"json", "T", `{"type":"login","token":"T"}`},
		{protoCentrifugo, "T", `{"id":1,"connect":{"token":"T"}}`},
	} {
		if got := string(loginFrame(c.wire, "u3", c.token)); got != c.want {
			t.Errorf("loginFrame(%s, %q) = %s, want %s", c.wire, c.token, got, c.want)
		}
	}
	if _, err := checkGreeting("text", "u3", []byte("login success, your uid is u3")); err != nil {
		t.Error(err)
	}
	// The recipe keeps one connection per uid: a greeting for another uid is a failure.
	if _, err := checkGreeting("text", "u3", []byte("login success, your uid is u33")); err == nil {
		t.Error("a greeting for another uid was accepted")
	}
	if _, err := checkGreeting("json", "u3", []byte(`{"type":"welcome","uid":"u3","conn_id":"c1","seq":0}`)); err != nil {
		t.Error(err)
	}
	if _, err := checkGreeting("json", "u3", []byte(`{"type":"error","code":"auth_failed"}`)); err == nil {
		t.Error("a json error was taken for a welcome")
	}
	push := `{"push":{"channel":"#u3","pub":{"data":"~pbA0000000000000000000000000000001~"}}}`
	rest, err := checkGreeting(protoCentrifugo, "u3",
		[]byte(`{"id":1,"connect":{"client":"9f1","version":"6.9.1 OSS","subs":{"broadcast":{},"#u3":{}},"ping":25,"pong":true}}`+"\n"+push))
	if err != nil || len(rest) != 1 || string(rest[0]) != push {
		t.Errorf("connect reply with a push: %q, %v", rest, err)
	}
	if _, err := checkGreeting(protoCentrifugo, "u3", []byte(`{"id":1,"error":{"code":109,"message":"token expired"}}`)); err == nil || !strings.Contains(err.Error(), "token expired") {
		t.Errorf("a refused connect: %v", err)
	}
	for _, bad := range []string{"", "{}", "not json", `{"id":2,"connect":{}}`, `{"id":1}`} {
		if _, err := checkGreeting(protoCentrifugo, "u3", []byte(bad)); err == nil {
			t.Errorf("connect answered %q accepted", bad)
		}
	}
}

func TestClientFrames(t *testing.T) {
	p := appendPayload(nil, runTag{'K', 'z'}, 0, 1795483401490334123, 64)
	if strings.ContainsRune(string(p), ':') {
		t.Fatalf("payload %q holds a colon, which the recipe splits at", p)
	}
	if got := string(publishFrame(nil, "text", "u42", []byte("~pb"))); got != "u42:~pb" {
		t.Errorf("text publish %q", got)
	}
	if got := string(publishFrame(nil, "json", "u42", []byte("~pb"))); got != `{"type":"send","to":"u42","data":"~pb"}` {
		t.Errorf("json publish %q", got)
	}
	if got := string(broadcastFrame(nil, "text", []byte("~pb"))); got != "all:~pb" {
		t.Errorf("text broadcast %q", got)
	}
	if got := string(broadcastFrame(nil, "json", []byte("~pb"))); got != `{"type":"send","all":true,"data":"~pb"}` {
		t.Errorf("json broadcast %q", got)
	}
}

func TestCentrifugoKind(t *testing.T) {
	for _, c := range []struct {
		line string
		want cfKind
	}{
		{`{}`, cfPing},
		{` {} `, cfPing},
		{`{"push":{"channel":"#u1","pub":{"data":"x"}}}`, cfPush},
		{`{"push":{"channel":"broadcast","pub":{"data":{"text":"hi"},"offset":3}}}`, cfPush},
		{`{"push":{"pub":{"data":"x"},"channel":"#u1"}}`, cfPush}, // another field order
		{`{"push":{"disconnect":{"code":3012,"reason":"no pong"}}}`, cfDisconnect},
		{`{"id":3,"publish":{}}`, cfReply},
		{`{"id":3,"error":{"code":103,"message":"permission denied"}}`, cfError},
		{`{"push":{"channel":"#u1","join":{"info":{}}}}`, cfOther},
		{`garbage`, cfOther},
	} {
		if got := centrifugoKind([]byte(c.line)); got != c.want {
			t.Errorf("centrifugoKind(%s) = %d, want %d", c.line, got, c.want)
		}
	}
}

func TestReadLines(t *testing.T) {
	collect := func(r io.Reader, size int) ([]string, error) {
		var out []string
		err := readLines(r, make([]byte, size), func(l []byte) { out = append(out, string(l)) })
		return out, err
	}
	frame := "{}\n" + `{"push":{"channel":"#u1","pub":{"data":"a"}}}` + "\n\n" + `{"push":{"channel":"#u1","pub":{"data":"b"}}}`
	want := []string{"{}", `{"push":{"channel":"#u1","pub":{"data":"a"}}}`, `{"push":{"channel":"#u1","pub":{"data":"b"}}}`}
	for _, r := range []io.Reader{strings.NewReader(frame), iotest.OneByteReader(strings.NewReader(frame)), iotest.HalfReader(strings.NewReader(frame))} {
		got, err := collect(r, 64)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("lines %q, %v; want %q", got, err, want)
		}
	}
	// A line longer than the buffer is cut to its head; the next ones are whole.
	long := strings.Repeat("x", 100)
	got, err := collect(iotest.HalfReader(strings.NewReader(long+"\nshort\n"+long)), 16)
	if err != nil || !slices.Equal(got, []string{long[:16], "short", long[:16]}) {
		t.Errorf("overlong lines: %q, %v", got, err)
	}
	if _, err := collect(io.MultiReader(strings.NewReader("ab\ncd"), iotest.ErrReader(io.ErrClosedPipe)), 16); err != io.ErrClosedPipe {
		t.Errorf("a read error was %v", err)
	}
	// Receivers account for Centrifugo pushes without allocating.
	var ts trackers
	tag, tr, _ := ts.start(0)
	push := []byte(`{"push":{"channel":"#u1","pub":{"data":"` + string(appendPayload(nil, tag, 0, time.Now().UnixNano(), 64)) + `"}}}` + "\n")
	r := strings.NewReader("")
	buf := make([]byte, frameBufSize)
	fn := func(l []byte) {
		if centrifugoKind(l) == cfPush {
			ts.deliver(l, time.Now().UnixNano())
		}
	}
	if allocs := testing.AllocsPerRun(100, func() { r.Reset(string(push)); _ = readLines(r, buf, fn) }); allocs > 1 {
		// r.Reset's string conversion is the one allocation.
		t.Errorf("reading a push allocates %.0f times", allocs)
	}
	if tr.received.Load() < 100 {
		t.Errorf("received %d pushes, want 101", tr.received.Load())
	}
}

func TestCentrifugoPusher(t *testing.T) {
	var (
		mu    sync.Mutex
		calls []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		calls = append(calls, r.URL.Path+" "+r.Header.Get("X-API-Key")+" "+string(body))
		mu.Unlock()
		switch {
		case strings.Contains(string(body), "refuse"):
			io.WriteString(w, `{"error":{"code":102,"message":"unknown channel"}}`)
		case r.URL.Path == "/api/broadcast":
			io.WriteString(w, `{"result":{"responses":[{"result":{}},{"result":{}}]}}`)
		default:
			io.WriteString(w, `{"result":{}}`)
		}
	}))
	defer srv.Close()
	p := &centrifugoPusher{bases: []string{srv.URL, srv.URL + "/"}, key: "K", hc: srv.Client()}
	ctx := context.Background()
	if n, err := p.send(ctx, 0, pushTarget{uid: "u1"}, []byte(`"hi"`)); err != nil || n != -1 {
		t.Errorf("publish: %d, %v", n, err)
	}
	if _, err := p.send(ctx, 1, pushTarget{all: true}, []byte(`{"a":1}`)); err != nil {
		t.Error(err)
	}
	if _, err := p.send(ctx, 2, pushTarget{uids: []string{"u1", "u2"}}, []byte(`"b"`)); err != nil {
		t.Error(err)
	}
	if _, err := p.send(ctx, 0, pushTarget{uid: "u1"}, []byte(`"refuse"`)); err == nil || !strings.Contains(err.Error(), "unknown channel") {
		t.Errorf("a refused publish: %v", err)
	}
	if _, err := p.send(ctx, 0, pushTarget{group: "g"}, []byte(`1`)); err == nil {
		t.Error("a group push was sent to Centrifugo")
	}
	if _, err := p.stats(ctx, 0); err != errNoStats || p.groups() {
		t.Errorf("stats %v, groups %v", err, p.groups())
	}
	want := []string{
		`/api/publish K {"channel":"#u1","data":"hi"}`,
		`/api/publish K {"channel":"broadcast","data":{"a":1}}`,
		`/api/broadcast K {"channels":["#u1","#u2"],"data":"b"}`,
		`/api/publish K {"channel":"#u1","data":"refuse"}`,
	}
	if !slices.Equal(calls, want) {
		t.Errorf("calls\n%q\nwant\n%q", calls, want)
	}
	// With keys, each push carries its own idempotency_key, in valid JSON.
	calls = nil
	p.keys = true
	for range 2 {
		if _, err := p.send(ctx, 0, pushTarget{uid: "u1"}, []byte(`"k"`)); err != nil {
			t.Error(err)
		}
	}
	if _, err := p.send(ctx, 0, pushTarget{uids: []string{"u1", "u2"}}, []byte(`"k"`)); err != nil {
		t.Error(err)
	}
	if _, err := p.send(ctx, 0, pushTarget{all: true}, []byte(`"k"`)); err != nil {
		t.Error(err)
	}
	keys := map[string]bool{}
	for _, c := range calls {
		var body struct {
			Data string `json:"data"`
			Key  string `json:"idempotency_key"`
		}
		if err := json.Unmarshal([]byte(c[strings.LastIndex(c, " K ")+3:]), &body); err != nil || body.Data != "k" || len(body.Key) != 32 {
			t.Errorf("a keyed push: %s (%v)", c, err)
		}
		keys[body.Key] = true
	}
	if len(calls) != 4 || len(keys) != 4 {
		t.Errorf("%d keyed pushes with %d keys: %q", len(calls), len(keys), calls)
	}
	for _, c := range []struct {
		status int
		body   string
		ok     bool
	}{
		{200, `{"result":{}}`, true},
		{200, `{"result":{"responses":[{"error":{"code":102,"message":"x"}}]}}`, false},
		{401, `Unauthorized`, false},
		{200, `<html>`, false},
	} {
		if err := centrifugoAPIError(c.status, []byte(c.body)); (err == nil) != c.ok {
			t.Errorf("centrifugoAPIError(%d, %s) = %v", c.status, c.body, err)
		}
	}
}

func TestSessionSlot(t *testing.T) {
	var s sessionSlot
	if _, ok := s.Get("x"); ok || s.has() {
		t.Error("an empty slot has a session")
	}
	s.Put("x", nil)
	if s.puts != 0 || s.has() {
		t.Error("a nil session counted")
	}
}

func TestMergeHist(t *testing.T) {
	var a, b histogram
	a.record(time.Millisecond)
	b.record(3 * time.Millisecond)
	b.record(5 * time.Millisecond)
	mergeHist(&a, &b)
	if a.n.Load() != 3 || a.max() != 5*time.Millisecond || a.quantile(0.5) < 2900*time.Microsecond {
		t.Errorf("merged: n %d max %v p50 %v", a.n.Load(), a.max(), a.quantile(0.5))
	}
}
