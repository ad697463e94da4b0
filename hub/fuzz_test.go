package hub

// Fuzz targets that drive a real hub through real WebSockets: the text and
// json protocols frame by frame, and raw bytes on the socket after the
// handshake (the fuzzer then owns the WebSocket framing, which exercises
// readControl). Every iteration checks that nothing panicked (the hub
// recovers panics in connection goroutines and logs them, so an error log
// is a failure), that the hub is back to its resting state once the fuzzed
// connection is gone, and that two bystanders, one per protocol, logged in
// on the same hub, still get a broadcast sent afterwards.
//
// Seed corpora are in testdata/fuzz/<target>; go test runs them. To fuzz:
// go test -run '^$' -fuzz '^FuzzTextProtocol$' -fuzztime 30s ./hub (or .ci/fuzz).

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

const (
	// fzGuard bounds every wait: it only turns a hang into a failure.
	fzGuard = 10 * time.Second
	// fzMaxFrames is how many frames one input is split into, at most.
	fzMaxFrames = 16
	// fzSep separates an input's frames.
	fzSep = '\n'
	// fzMaxMessage is the hubs' max_message_size: small, so that inputs
	// the fuzzer makes reach the 1009 path.
	fzMaxMessage = 1024
	// fzAutoLoginUID is the uid FuzzJSONFrames logs in as when asked to.
	fzAutoLoginUID = "fuzzer"
)

// fzSettings are the fuzzed hubs' settings: everything a client may do is
// allowed, history is on (json resume), and limits are small. The
// bystanders read only between inputs, so pings would close them in a
// run that fails for a while: there are none.
func fzSettings(history bool) Settings {
	s := Settings{
		PingInterval:       time.Hour,
		MaxMessageSize:     fzMaxMessage,
		MaxUIDLength:       32,
		AllowClientPublish: true,
		AllowClientGroups:  true,
	}
	if history {
		s.HistorySize = 8
		s.HistoryTTL = 2 * time.Second
	}
	return s
}

// fzHub is a hub behind an HTTP server that upgrades the way push_hub does,
// with its bystanders. One serves every iteration of a fuzz target.
type fzHub struct {
	hub       *Hub
	url       string // ws://host:port/
	addr      string // host:port
	errs      *observer.ObservedLogs
	bystander [2]*fzBystander // text, json
	marker    int
}

// newFzHub starts a hub and its server. Query parameters of an upgrade
// choose the connection's options: proto=text, uid=<uid> (logged in at the
// upgrade), goroutine (a reader goroutine instead of the poller).
func newFzHub(tb testing.TB, s Settings) *fzHub {
	tb.Helper()
	core, errs := observer.New(zap.ErrorLevel)
	fh := &fzHub{hub: New("fuzz", Options{Settings: s, Logger: zap.New(core)}), errs: errs}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		o := ConnOptions{UID: q.Get("uid"), Login: fzLogin, QuickLogin: true, Protocol: q.Get("proto")}
		if err := fh.hub.upgrade(w, r, o, !q.Has("goroutine")); err != nil {
			tb.Errorf("upgrade: %v", err)
		}
	}))
	fh.addr = srv.Listener.Addr().String()
	fh.url = "ws://" + fh.addr + "/"
	tb.Cleanup(func() {
		fh.hub.Close("fuzzing over")
		srv.Close()
	})
	var nonce [8]byte
	_, _ = rand.Read(nonce[:])
	// The bystanders' uids cannot be guessed by the fuzzer: only a
	// broadcast reaches them.
	for i, p := range []string{"text", "json"} {
		fh.bystander[i] = &fzBystander{proto: p, uid: "bystander-" + p + "-" + hex.EncodeToString(nonce[:])}
		if err := fh.bystander[i].dial(fh.url); err != nil {
			tb.Fatal(err)
		}
	}
	return fh
}

// fzLogin is auth first_message (the credential is the uid), except that
// it refuses credentials starting with "deny", as a bad token is refused.
func fzLogin(credential string) (Identity, error) {
	if strings.HasPrefix(credential, "deny") {
		return Identity{}, &Error{Code: "auth_failed", Message: "refused by the fuzz harness"}
	}
	return Identity{UID: credential}, nil
}

// fzBystander is a connection that only listens. It is logged in at the
// upgrade and belongs to no group.
type fzBystander struct {
	proto string // "text" or "json"
	uid   string
	ws    *websocket.Conn
	seq   uint64 // json: the last sequence number seen
}

func (b *fzBystander) dial(base string) error {
	q := "?uid=" + b.uid
	if b.proto == "text" {
		q += "&proto=text"
	}
	d := websocket.Dialer{HandshakeTimeout: fzGuard}
	ws, _, err := d.Dial(base+q, nil)
	if err != nil {
		return fmt.Errorf("bystander %s: %v", b.uid, err)
	}
	b.ws = ws
	_, first, err := b.read()
	if err != nil {
		return fmt.Errorf("bystander %s: no login answer: %v", b.uid, err)
	}
	if b.proto == "text" {
		if want := "login success, your uid is " + b.uid; string(first) != want {
			return fmt.Errorf("bystander %s: got %q, want %q", b.uid, first, want)
		}
		return nil
	}
	var w jsonWelcome
	if err := json.Unmarshal(first, &w); err != nil || w.Type != "welcome" || w.UID != b.uid {
		return fmt.Errorf("bystander %s: got %q, want a welcome", b.uid, first)
	}
	b.seq = w.Seq
	return nil
}

func (b *fzBystander) read() (int, []byte, error) {
	if err := b.ws.SetReadDeadline(time.Now().Add(fzGuard)); err != nil {
		return 0, nil, err
	}
	return b.ws.ReadMessage()
}

// awaitMarker reads until the marker broadcast arrives. Everything before
// it must be a message too (a broadcast of the fuzzed client), numbered
// one after the other for json.
func (b *fzBystander) awaitMarker(marker string) error {
	for {
		mt, data, err := b.read()
		if err != nil {
			return fmt.Errorf("bystander (%s) lost: %v", b.proto, err)
		}
		if mt != websocket.TextMessage {
			return fmt.Errorf("bystander (%s) got message type %d", b.proto, mt)
		}
		if b.proto == "text" {
			if string(data) == marker {
				return nil
			}
			continue
		}
		var m struct {
			Type string          `json:"type"`
			Seq  uint64          `json:"seq"`
			Data json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(data, &m); err != nil || m.Type != "message" {
			return fmt.Errorf("bystander (json) got %q, want only message frames", data)
		}
		if m.Seq != b.seq+1 {
			return fmt.Errorf("bystander (json) got seq %d after %d: %q", m.Seq, b.seq, data)
		}
		b.seq = m.Seq
		var s string
		if json.Unmarshal(m.Data, &s) == nil && s == marker {
			return nil
		}
	}
}

// settle waits for the hub to be back at rest once the fuzzed connection is
// gone, then checks that the bystanders still get a broadcast and that no
// connection goroutine panicked.
func (fh *fzHub) settle(t *testing.T) {
	t.Helper()
	h := fh.hub
	n := int64(len(fh.bystander))
	var st Stats
	rest := func() bool {
		st = h.stats()
		return h.live.count() == n && st.Connections == n && st.Pending == 0 && st.UIDs == int(n) && st.Groups == 0
	}
	if !fzPoll(rest) {
		t.Fatalf("the hub never came back to rest after the connection closed: live %d, stats %+v", h.live.count(), st)
	}
	if h.Settings().HistorySize == 0 && st.OfflineKept != 0 {
		t.Fatalf("offline uids kept without history: %+v", st)
	}
	if st.HistoryBytes < 0 || st.HistoryStored < 0 {
		t.Fatalf("history accounting went negative: %+v", st)
	}
	fh.marker++
	marker := fmt.Sprintf("marker %d", fh.marker)
	r := h.push(Target{All: true}, Message{Data: jsonString([]byte(marker))})
	if r.Delivered != int(n) || r.Dropped != 0 {
		t.Fatalf("a broadcast after the fuzzed connection reached %+v, want the %d bystanders", r, n)
	}
	for i, b := range fh.bystander {
		if err := b.awaitMarker(marker); err != nil {
			// Dial it again so that the next input starts clean.
			b.ws.Close()
			nb := &fzBystander{proto: b.proto, uid: b.uid}
			if derr := nb.dial(fh.url); derr == nil {
				fh.bystander[i] = nb
			}
			t.Fatal(err)
		}
	}
}

// checkLogs makes the iteration fail, however it ends, on any error the hub
// logged meanwhile: a panic in a connection goroutine is recovered and
// logged, not raised, and it explains whatever else went wrong.
func (fh *fzHub) checkLogs(t *testing.T) {
	fh.errs.TakeAll() // left by an iteration that failed before its end
	t.Cleanup(func() {
		for _, e := range fh.errs.TakeAll() {
			t.Errorf("hub logged an error: %s %v", e.Message, e.ContextMap())
		}
	})
}

// fzPoll polls cond until it holds or fzGuard passes.
func fzPoll(cond func() bool) bool {
	deadline := time.Now().Add(fzGuard)
	for i := 0; !cond(); i++ {
		if time.Now().After(deadline) {
			return false
		}
		if i < 100 {
			runtime.Gosched()
		} else {
			time.Sleep(50 * time.Microsecond)
		}
	}
	return true
}

// fzClient is the fuzzed connection seen from the client: a gorilla
// client whose reader collects everything the server sends.
type fzClient struct {
	ws     *websocket.Conn
	mu     sync.Mutex
	msgs   [][]byte
	kinds  []int
	more   chan struct{} // signalled after each message
	done   chan struct{} // closed when reading ends
	endErr error         // what ended reading
}

func (fh *fzHub) dialClient(t *testing.T, query string) *fzClient {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: fzGuard}
	ws, _, err := d.Dial(fh.url+query, nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { ws.Close() }) // also when the iteration fails midway
	c := &fzClient{ws: ws, more: make(chan struct{}, 1), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		for {
			mt, data, err := ws.ReadMessage()
			if err != nil {
				c.endErr = err
				return
			}
			c.mu.Lock()
			c.msgs = append(c.msgs, data)
			c.kinds = append(c.kinds, mt)
			c.mu.Unlock()
			select {
			case c.more <- struct{}{}:
			default:
			}
		}
	}()
	return c
}

// send writes frames as text messages until one fails (the server may
// close the connection on a bad frame); it reports whether all were sent.
func (c *fzClient) send(frames [][]byte) bool {
	for _, f := range frames {
		if c.ws.SetWriteDeadline(time.Now().Add(fzGuard)) != nil || c.ws.WriteMessage(websocket.TextMessage, f) != nil {
			return false
		}
	}
	return true
}

// await waits until accept holds for what was received, or the server
// ended the connection; false means neither happened within fzGuard.
func (c *fzClient) await(accept func(msgs [][]byte) bool) bool {
	timeout := time.NewTimer(fzGuard)
	defer timeout.Stop()
	for {
		c.mu.Lock()
		ok := accept(c.msgs)
		c.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-c.more:
		case <-c.done:
			return true
		case <-timeout.C:
			return false
		}
	}
}

// snapshot is what has been received so far.
func (c *fzClient) snapshot() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.msgs)
}

// finish waits, when the server is expected to close the connection, for
// it to do so; then closes it cleanly from the client's side (a close
// frame, then the write side) and waits until the server has closed it
// too. It returns the close code the server sent, 0 for none (gorilla's
// 1006 stands for none).
func (c *fzClient) finish(t *testing.T, serverCloses bool) int {
	t.Helper()
	timeout := time.NewTimer(fzGuard)
	defer timeout.Stop()
	if serverCloses {
		// Not writing meanwhile: data arriving at a closed socket
		// resets the connection, which can cost the client the close
		// frame.
		select {
		case <-c.done:
		case <-timeout.C:
			t.Fatalf("the server did not close the connection; got %q", c.snapshot())
		}
	}
	_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""),
		time.Now().Add(fzGuard))
	if tc, ok := c.ws.NetConn().(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
	select {
	case <-c.done:
	case <-timeout.C:
		t.Fatal("the server kept the connection open after the client closed it")
	}
	c.ws.Close()
	var ce *websocket.CloseError
	if errors.As(c.endErr, &ce) && ce.Code != websocket.CloseAbnormalClosure {
		return ce.Code
	}
	return 0
}

// fzSplit splits an input into at most fzMaxFrames frames.
func fzSplit(data []byte) [][]byte {
	return bytes.SplitN(data, []byte{fzSep}, fzMaxFrames)
}

// FuzzTextProtocol sends an input to a text-protocol connection as frames
// (split at newlines): the first logs in, the rest publish. The text
// protocol is simple enough to predict exactly what the client gets back
// and how the connection ends.
func FuzzTextProtocol(f *testing.F) {
	fh := newFzHub(f, fzSettings(false))
	f.Fuzz(func(t *testing.T, data []byte) {
		fh.checkLogs(t)
		c := fh.dialClient(t, "?proto=text")
		want, code, read := fzTextExpect(fzSplit(data), fh.hub.Settings())
		c.send(read)
		if code == 0 {
			// The connection stays open: everything must arrive before
			// the client closes it, and the server answers the close.
			if !c.await(func(got [][]byte) bool { return len(got) >= len(want) }) {
				t.Fatalf("after %v got %q, want %q", fzGuard, c.snapshot(), want)
			}
		}
		gotCode := c.finish(t, code != 0)
		if code == 0 {
			code = websocket.CloseNormalClosure
		}
		got := c.msgs
		for i, k := range c.kinds {
			if k != websocket.TextMessage {
				t.Fatalf("frame %d is of type %d, want text", i, k)
			}
		}
		// A frame over max_message_size or not UTF-8 closes the
		// connection at once, dropping what was queued to it: then what
		// arrives need only be a prefix of what was sent.
		prefix := code == CloseMessageTooBig || code == CloseInvalidPayload
		if len(got) > len(want) || (!prefix && len(got) != len(want)) {
			t.Fatalf("got %q, want %q", got, want)
		}
		for i := range got {
			if string(got[i]) != want[i] {
				t.Fatalf("frame %d: got %q, want %q (all: %q)", i, got[i], want[i], got)
			}
		}
		if gotCode != code {
			t.Fatalf("closed with %d, want %d; got %q", gotCode, code, got)
		}
		fh.settle(t)
	})
}

// fzTextExpect is what the text protocol answers frames with (PROTOCOL.md):
// the frames the client gets, the close code the server ends the
// connection with (0 when it does not) and the frames it reads, up to the
// one that closes the connection.
func fzTextExpect(frames [][]byte, s Settings) (want []string, code int, read [][]byte) {
	var uid string
	for i, f := range frames {
		read = frames[:i+1]
		switch {
		case int64(len(f)) > s.MaxMessageSize:
			return want, CloseMessageTooBig, read
		case !utf8.Valid(f):
			return want, CloseInvalidPayload, read
		case i == 0:
			if _, err := fzLogin(string(f)); err != nil || ValidName("uid", string(f), s.MaxUIDLength) != nil || (textCodec{}).CheckUID(string(f)) != nil {
				return want, CloseAuthFailed, read
			}
			uid = string(f)
			want = append(want, "login success, your uid is "+uid)
		default:
			to, text, ok := strings.Cut(string(f), ":")
			if ok && (to == "all" || to == uid) {
				want = append(want, text)
			}
		}
	}
	return want, 0, read
}

// fzServerFrame is any json-protocol frame from the server.
type fzServerFrame struct {
	Type      string          `json:"type"`
	ID        json.RawMessage `json:"id"`
	UID       string          `json:"uid"`
	ConnID    string          `json:"conn_id"`
	Seq       *uint64         `json:"seq"`
	Data      json.RawMessage `json:"data"`
	Group     string          `json:"group"`
	Code      string          `json:"code"`
	Message   string          `json:"message"`
	Delivered *int            `json:"delivered"`
	Dropped   *int            `json:"dropped"`
}

// FuzzJSONFrames sends an input to a json-protocol connection as frames
// (split at newlines), after a login frame of the harness's when autoLogin
// is set, and then a ping whose pong says that every answer has arrived.
// Every frame gets the answer PROTOCOL.md gives it, in order, repeating its
// id; the connection ends with the documented close code; pushes to the
// client's own uid are numbered one after the other.
func FuzzJSONFrames(f *testing.F) {
	fh := newFzHub(f, fzSettings(true))
	sentinel := 0
	f.Fuzz(func(t *testing.T, autoLogin bool, data []byte) {
		fh.checkLogs(t)
		c := fh.dialClient(t, "")
		frames := fzSplit(data)
		if autoLogin {
			frames = append([][]byte{[]byte(`{"type":"login","uid":"` + fzAutoLoginUID + `"}`)}, frames...)
		}
		sentinel++
		endID := json.RawMessage(fmt.Sprintf(`"end of input %d"`, sentinel))
		frames = append(frames, []byte(`{"type":"ping","id":`+string(endID)+`}`))
		want, code, read := fzJSONExpect(frames, fh.hub.Settings())
		c.send(read)
		if code == 0 && !c.await(func(got [][]byte) bool {
			var last fzServerFrame
			return len(got) > 0 && json.Unmarshal(got[len(got)-1], &last) == nil &&
				last.Type == "pong" && bytes.Equal(last.ID, endID)
		}) {
			t.Fatalf("no pong to the ping after the input; got %q", c.snapshot())
		}
		gotCode := c.finish(t, code != 0)
		if code == 0 {
			code = websocket.CloseNormalClosure
		}
		if gotCode != code {
			t.Fatalf("closed with %d, want %d; got %q", gotCode, code, c.msgs)
		}
		prefix := code == CloseMessageTooBig || code == CloseInvalidPayload
		fzCheckJSONSession(t, c.kinds, c.msgs, want, prefix)
		fh.settle(t)
	})
}

// fzReply is a frame the server answers a client frame with: its type,
// its error code for an error, its id, its group for joined and left, and
// its uid for a welcome.
type fzReply struct {
	typ   string
	code  string
	id    json.RawMessage
	group string
	uid   string
}

// fzJSONExpect is what the json protocol answers frames with (PROTOCOL.md),
// on an endpoint that allows client publishing and groups: the answers in
// order (pushed messages aside), the close code the server ends the
// connection with (0 when it does not) and the frames it reads, up to the
// one that closes the connection.
func fzJSONExpect(frames [][]byte, s Settings) (want []fzReply, code int, read [][]byte) {
	loggedIn := false
	for i, f := range frames {
		read = frames[:i+1]
		if int64(len(f)) > s.MaxMessageSize {
			return want, CloseMessageTooBig, read
		}
		if !utf8.Valid(f) {
			return want, CloseInvalidPayload, read
		}
		var cf jsonClientFrame
		if json.Unmarshal(f, &cf) != nil {
			want = append(want, fzReply{typ: "error", code: "bad_frame"})
			continue
		}
		if !loggedIn && cf.Type != "login" && cf.Type != "ping" {
			return append(want, fzReply{typ: "error", code: "login_required"}), CloseAuthFailed, read
		}
		failed := func(code string) fzReply { return fzReply{typ: "error", code: code, id: cf.ID} }
		switch cf.Type {
		case "login":
			if loggedIn {
				want = append(want, failed("already_logged_in"))
				continue
			}
			credential := cf.Token
			if credential == "" {
				credential = cf.UID
			}
			if _, err := fzLogin(credential); err != nil {
				return append(want, fzReply{typ: "error", code: ErrorCode(err, "")}), CloseAuthFailed, read
			}
			if err := ValidName("uid", credential, s.MaxUIDLength); err != nil {
				return append(want, fzReply{typ: "error", code: ErrorCode(err, "")}), CloseAuthFailed, read
			}
			want = append(want, fzReply{typ: "welcome", uid: credential})
			loggedIn = true
		case "ack":
			if cf.Seq == nil {
				want = append(want, failed("bad_frame"))
			}
		case "ping":
			want = append(want, fzReply{typ: "pong", id: cf.ID})
		case "send":
			targets := 0
			for _, set := range []bool{cf.To != "", cf.Group != "", cf.All} {
				if set {
					targets++
				}
			}
			switch {
			case targets != 1:
				want = append(want, failed("bad_target"))
			case len(cf.Data) == 0:
				want = append(want, failed("bad_frame"))
			case cf.To != "" && ValidName("uid", cf.To, s.MaxUIDLength) != nil:
				want = append(want, failed(ErrorCode(ValidName("uid", cf.To, s.MaxUIDLength), "")))
			case cf.Group != "" && ValidName("group", cf.Group, s.MaxUIDLength) != nil:
				want = append(want, failed(ErrorCode(ValidName("group", cf.Group, s.MaxUIDLength), "")))
			case len(cf.ID) > 0:
				want = append(want, fzReply{typ: "sent", id: cf.ID})
			}
		case "join", "leave":
			if err := ValidName("group", cf.Group, s.MaxUIDLength); err != nil {
				want = append(want, failed(ErrorCode(err, "")))
			} else {
				want = append(want, fzReply{typ: map[string]string{"join": "joined", "leave": "left"}[cf.Type], id: cf.ID, group: cf.Group})
			}
		case "":
			want = append(want, failed("bad_frame"))
		default:
			want = append(want, failed("unknown_type"))
		}
	}
	return want, 0, read
}

// fzCheckJSONSession checks what a json client got against the answers
// fzJSONExpect predicts; with prefix, the connection was closed at once and
// a prefix of them is enough.
func fzCheckJSONSession(t *testing.T, kinds []int, got [][]byte, want []fzReply, prefix bool) {
	t.Helper()
	var answers []fzServerFrame
	var welcome *fzServerFrame
	var lastSeq uint64
	var seqs []uint64
	for i, raw := range got {
		var sf fzServerFrame
		if kinds[i] != websocket.TextMessage || json.Unmarshal(raw, &sf) != nil {
			t.Fatalf("frame %d is not a JSON text frame: %q", i, raw)
		}
		switch sf.Type {
		case "message":
			if welcome == nil || sf.Seq == nil || len(sf.Data) == 0 {
				t.Fatalf("bad message or message before the welcome: %q", raw)
			}
			// Replayed messages (seq up to the welcome's), then new
			// ones, which follow the welcome's seq one by one.
			if len(seqs) > 0 && *sf.Seq <= seqs[len(seqs)-1] {
				t.Fatalf("message seq %d after %d: %q", *sf.Seq, seqs[len(seqs)-1], raw)
			}
			seqs = append(seqs, *sf.Seq)
			if *sf.Seq > *welcome.Seq {
				if *sf.Seq != lastSeq+1 {
					t.Fatalf("message seq %d after %d: %q", *sf.Seq, lastSeq, raw)
				}
				lastSeq = *sf.Seq
			}
			continue
		case "welcome":
			if welcome != nil || sf.ConnID == "" || sf.Seq == nil {
				t.Fatalf("bad or second welcome %q", raw)
			}
			welcome = &sf
			lastSeq = *sf.Seq
		case "error":
			if sf.Message == "" {
				t.Fatalf("error frame without a message: %q", raw)
			}
		case "sent":
			if sf.Delivered == nil || sf.Dropped == nil || *sf.Delivered < 0 || *sf.Dropped < 0 {
				t.Fatalf("bad sent frame %q", raw)
			}
		}
		answers = append(answers, sf)
	}
	if len(answers) > len(want) || (!prefix && len(answers) != len(want)) {
		t.Fatalf("got %d answers, want %d: got %q, want %+v", len(answers), len(want), got, want)
	}
	for i, a := range answers {
		w := want[i]
		if a.Type != w.typ || a.Code != w.code || !fzSameJSON(a.ID, w.id) || a.Group != w.group ||
			(w.typ == "welcome" && a.UID != w.uid) {
			t.Fatalf("answer %d is %+v (id %s), want %+v (id %s); got %q", i, a, a.ID, w, w.id, got)
		}
	}
}

// fzSameJSON compares two JSON values by meaning (numbers by their text,
// which the server repeats as it got it); absent equals null.
func fzSameJSON(a, b json.RawMessage) bool {
	decode := func(raw json.RawMessage) (any, bool) {
		if len(raw) == 0 {
			return nil, true
		}
		var v any
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		return v, dec.Decode(&v) == nil
	}
	va, okA := decode(a)
	vb, okB := decode(b)
	return okA && okB && reflect.DeepEqual(va, vb)
}

// Raw mode bits of FuzzRawFrames.
const (
	fzRawText      = 1 << iota // the text protocol
	fzRawLoggedIn              // logged in at the upgrade
	fzRawGoroutine             // read by a goroutine instead of the poller
)

// FuzzRawFrames writes an input straight onto the socket after the
// WebSocket handshake, so the fuzzer owns the framing: control frames,
// masks, lengths, fragmentation. mode picks the protocol, whether the
// connection is logged in at the upgrade and which reader serves it. What
// the server sends back must be well-formed frames, and each of its pongs
// must answer one of the client's pings, with its payload.
func FuzzRawFrames(f *testing.F) {
	s := fzSettings(true)
	s.RateLimit, s.RateBurst = 50, 10 // so that inputs reach the 4008 path
	fh := newFzHub(f, s)
	f.Fuzz(func(t *testing.T, mode byte, data []byte) {
		fh.checkLogs(t)
		query := "?uid="
		if mode&fzRawLoggedIn != 0 {
			query += "raw"
		}
		if mode&fzRawText != 0 {
			query += "&proto=text"
		}
		if mode&fzRawGoroutine != 0 {
			query += "&goroutine"
		}
		conn, br := fzHandshake(t, fh.addr, query)
		var out bytes.Buffer
		done := make(chan error, 1)
		go func() {
			_, err := io.Copy(&out, br)
			done <- err
		}()
		if err := conn.SetWriteDeadline(time.Now().Add(fzGuard)); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Write(data); err == nil {
			_ = conn.CloseWrite()
		}
		select {
		case <-done:
		case <-time.After(fzGuard):
			conn.Close()
			t.Fatal("the server kept the connection open after the client's end of input")
		}
		conn.Close()
		fzCheckRawOutput(t, out.Bytes(), fzPings(data))
		fh.settle(t)
	})
}

// fzHandshake opens a WebSocket by hand and returns the socket and the
// reader of what follows the server's 101.
func fzHandshake(t *testing.T, addr, query string) (*net.TCPConn, *bufio.Reader) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, fzGuard)
	if err != nil {
		t.Fatal(err)
	}
	conn := nc.(*net.TCPConn)
	t.Cleanup(func() { conn.Close() })
	if err := conn.SetDeadline(time.Now().Add(fzGuard)); err != nil {
		t.Fatal(err)
	}
	req := "GET /" + query + " HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %s", resp.Status)
	}
	return conn, br
}

// fzFrame is one parsed WebSocket frame.
type fzFrame struct {
	fin     bool
	rsv     byte
	op      byte
	masked  bool
	payload []byte // unmasked
	size    int    // bytes on the wire
}

// fzParseFrame parses the frame at the start of b; ok is false when b
// holds less than a whole frame or a length over 1 MiB.
func fzParseFrame(b []byte) (f fzFrame, ok bool) {
	if len(b) < 2 {
		return f, false
	}
	f.fin, f.rsv, f.op, f.masked = b[0]&0x80 != 0, b[0]&0x70, b[0]&0x0f, b[1]&0x80 != 0
	n, pos := uint64(b[1]&0x7f), 2
	switch n {
	case 126:
		if len(b) < 4 {
			return f, false
		}
		n, pos = uint64(binary.BigEndian.Uint16(b[2:])), 4
	case 127:
		if len(b) < 10 {
			return f, false
		}
		n, pos = binary.BigEndian.Uint64(b[2:]), 10
	}
	var key []byte
	if f.masked {
		if len(b) < pos+4 {
			return f, false
		}
		key, pos = b[pos:pos+4], pos+4
	}
	if n > 1<<20 || uint64(len(b)-pos) < n {
		return f, false
	}
	f.payload = bytes.Clone(b[pos : pos+int(n)])
	for i := range f.payload {
		if key != nil {
			f.payload[i] ^= key[i&3]
		}
	}
	f.size = pos + int(n)
	return f, true
}

// fzPings lists the payloads of the pings among the client's leading
// well-formed frames: the server may answer only these.
func fzPings(data []byte) [][]byte {
	var pings [][]byte
	for {
		f, ok := fzParseFrame(data)
		if !ok || !f.masked || f.rsv != 0 || f.op == 0x8 {
			return pings
		}
		if f.op == 0x9 {
			pings = append(pings, f.payload)
		}
		data = data[f.size:]
	}
}

// fzCheckRawOutput checks the server's side of a raw session: well-formed,
// unmasked frames (the last may be cut by the server closing), text
// messages that are UTF-8, and pongs that each answer a ping of the
// client, with its payload.
func fzCheckRawOutput(t *testing.T, out []byte, pings [][]byte) {
	t.Helper()
	var msg []byte
	inMessage, text := false, false
	for len(out) > 0 {
		f, ok := fzParseFrame(out)
		if !ok {
			return // cut short
		}
		out = out[f.size:]
		if f.masked || f.rsv != 0 {
			t.Fatalf("server frame masked or with RSV bits: %+v", f)
		}
		switch f.op {
		case 0x0, 0x1, 0x2:
			if (f.op == 0x0) != inMessage {
				t.Fatalf("server frame opcode %d out of sequence", f.op)
			}
			if f.op != 0x0 {
				msg, text = nil, f.op == 0x1
			}
			msg = append(msg, f.payload...)
			inMessage = !f.fin
			if f.fin && text && !utf8.Valid(msg) {
				t.Fatalf("server text message is not UTF-8: %q", msg)
			}
		case 0x8, 0x9, 0xa:
			if !f.fin || len(f.payload) > 125 {
				t.Fatalf("bad server control frame %+v", f)
			}
			if f.op == 0x8 {
				return // nothing may follow a close
			}
			if f.op == 0xa {
				// Not necessarily in order: a ping between messages is
				// answered through the writer's queue, one inside a
				// fragmented message by gorilla at once.
				i := slices.IndexFunc(pings, func(p []byte) bool { return bytes.Equal(p, f.payload) })
				if i < 0 {
					t.Fatalf("server pong %q answers no ping of the client", f.payload)
				}
				pings = slices.Delete(pings, i, i+1)
			}
		default:
			t.Fatalf("server frame with opcode %#x", f.op)
		}
	}
}
