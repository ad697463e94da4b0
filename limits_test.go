package pushhub_test

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pushhub/caddy-pushhub/internal/harness"
)

// The limits a hostile client must not slip past (issue 11), each with a
// well-behaved client of the same hub that keeps receiving through it
// (README's hostile-input table).

// bystander is a json client of a test's hub that reads all the time.
type bystander struct {
	api harness.API
	uid string
	r   *harness.Reader
	n   int
}

func newBystander(t *testing.T, h *harness.Caddy, uid string) *bystander {
	t.Helper()
	return &bystander{api: h.API(), uid: uid, r: harness.LoggedIn(t, h.WS+"/ws", uid).StartReader()}
}

// served pushes the next numbered message to the bystander through the API
// and asserts that it arrives: the hub still serves the others.
func (b *bystander) served(t *testing.T) {
	t.Helper()
	b.n++
	data := harness.JSON(fmt.Sprintf("%s #%d", b.uid, b.n))
	if rc := b.api.Send(t, fmt.Sprintf(`{"uid":%q,"data":%s}`, b.uid, data)); rc.Delivered != 1 || rc.Dropped != 0 {
		t.Fatalf("push to the bystander %q: receipt %+v, want it delivered to its one connection", b.uid, rc)
	}
	b.r.ExpectMessage(t, data)
}

// TestClientNamesValidated: a uid or group name a client sends is checked
// as the push API checks it before anything is looked up or kept for it:
// json gets invalid_uid / invalid_group and stays connected, text frames
// with such a uid (or none) are ignored, and with history on nothing is
// stored for any of them, no offline uid kept.
func TestClientNamesValidated(t *testing.T) {
	h := harness.Start(t, harness.BothProtocols("history 100 1m", "allow_client_publish", "max_uid_length 16"))
	api := h.API()
	obs := newBystander(t, h, "observer")
	long := strings.Repeat("u", 17)

	j := harness.LoggedIn(t, h.WS+"/ws", "json-sender")
	for i, tc := range []struct{ field, name, code string }{
		{"to", long, "invalid_uid"},
		{"to", "a\u0007b", "invalid_uid"},
		{"to", "nul\u0000", "invalid_uid"},
		{"group", long, "invalid_group"},
		{"group", "g\u001b[31m", "invalid_group"},
		// An empty name names no target, as "uid": "" does in the API.
		{"to", "", "bad_target"},
		{"group", "", "bad_target"},
	} {
		j.SendJSON(map[string]any{"type": "send", "id": i, tc.field: tc.name, "data": "spam"})
		j.ExpectError(tc.code, strconv.Itoa(i))
	}
	j.StillOpen()

	tx := harness.LoggedInText(t, h.WS+"/text", "text-sender")
	for _, f := range []string{long + ":spam", "a\u0007b:spam", ":spam", "\u0000:spam"} {
		tx.Send(f)
	}
	// The text client is still served, and its frames are handled in
	// order: once this arrives, the ones above were handled.
	tx.Send("observer:after the bad names")
	obs.r.ExpectMessage(t, `"after the bad names"`)
	j.Send(`{"type":"send","id":"ok","to":"observer","data":"a good name"}`)
	j.Expect(`{"type":"sent","id":"ok","delivered":1,"dropped":0}`)
	obs.r.ExpectMessage(t, `"a good name"`)

	// The two messages to the observer are all the history holds; no uid
	// was kept for the bad names.
	if st := api.Stats(t); st.HistoryStored != 2 || st.OfflineKept != 0 || st.UIDs != 3 {
		t.Fatalf("stats %+v, want the observer's 2 messages stored, no offline uid kept, 3 uids", st)
	}
	obs.served(t)
}

// TestTextLoginUnaddressable: a text endpoint refuses at login the uids
// "<uid>:<message>" cannot address, "all" (everyone) and any uid with a
// colon, with 4001 and a reason that says so; the json protocol accepts
// both, and the push API reaches each of them alone.
func TestTextLoginUnaddressable(t *testing.T) {
	h := harness.Start(t, harness.BothProtocols("allow_client_publish"))
	api := h.API()
	obs := newBystander(t, h, "observer")
	for _, uid := range []string{"all", "user:42", ":"} {
		c := harness.Dial(t, "text login "+uid, h.WS+"/text", nil)
		c.Send(uid)
		reason := c.ExpectClose(4001)
		if !strings.HasPrefix(reason, "invalid_uid: ") || !strings.Contains(reason, "text protocol cannot address") {
			t.Fatalf("text login as %q: close reason %q, want invalid_uid saying the text protocol cannot address it", uid, reason)
		}
		c.ExpectHangup()
		obs.served(t)
	}

	all := harness.LoggedIn(t, h.WS+"/ws", "all")
	colon := harness.LoggedIn(t, h.WS+"/ws", "user:42")
	text := harness.LoggedInText(t, h.WS+"/text", "t")
	api.Post(t, "/send", `{"uid":"all","data":"to the uid all"}`).ExpectJSON(http.StatusOK, harness.ReceiptJSON(1, 0))
	all.ExpectMessage(`"to the uid all"`)
	api.Post(t, "/send", `{"uid":"user:42","data":"to user:42"}`).ExpectJSON(http.StatusOK, harness.ReceiptJSON(1, 0))
	colon.ExpectMessage(`"to user:42"`)
	// For a text client, "all:" is everyone.
	text.Send("all:everyone")
	all.ExpectMessage(`"everyone"`)
	colon.ExpectMessage(`"everyone"`)
	obs.r.ExpectMessage(t, `"everyone"`)
	text.Expect("everyone")
}

// TestGroupCaps: max_groups_per_uid (default 64) and max_groups bound the
// groups a uid, and the hub, may hold: a join over either is a 400
// too_many_groups from POST /join and an error frame too_many_groups from
// a json client, joining a group one is already in is no new membership,
// and leaving frees the slot.
func TestGroupCaps(t *testing.T) {
	h := harness.Start(t, harness.OneHub("allow_client_groups", "max_groups 70"))
	api := h.API()
	obs := newBystander(t, h, "observer")
	harness.LoggedIn(t, h.WS+"/ws", "a")
	harness.LoggedIn(t, h.WS+"/ws", "b")
	c := harness.LoggedIn(t, h.WS+"/ws", "c")
	join := func(uid, group string) harness.Response {
		t.Helper()
		return api.Post(t, "/join", fmt.Sprintf(`{"uid":%q,"group":%q}`, uid, group))
	}
	ok := `{"ok":true}`

	// Per uid: the default of 64.
	for i := range 64 {
		join("a", fmt.Sprintf("g%d", i)).ExpectJSON(http.StatusOK, ok)
	}
	join("a", "g64").ExpectError(http.StatusBadRequest, "too_many_groups")
	join("a", "g0").ExpectJSON(http.StatusOK, ok)
	api.Post(t, "/leave", `{"uid":"a","group":"g0"}`).ExpectJSON(http.StatusOK, `{"ok":true,"was_member":true}`)
	join("a", "g64").ExpectJSON(http.StatusOK, ok)
	obs.served(t)

	// Hub-wide: 64 groups now (g0 went with its last member); b makes 70.
	for i := range 6 {
		join("b", fmt.Sprintf("h%d", i)).ExpectJSON(http.StatusOK, ok)
	}
	join("b", "h6").ExpectError(http.StatusBadRequest, "too_many_groups")
	join("b", "g1").ExpectJSON(http.StatusOK, ok) // not a new group
	c.Send(`{"type":"join","id":1,"group":"h6"}`)
	c.ExpectError("too_many_groups", "1")
	c.Send(`{"type":"join","id":2,"group":"h0"}`)
	c.Expect(`{"type":"joined","id":2,"group":"h0"}`)
	if st := api.Stats(t); st.Groups != 70 {
		t.Fatalf("stats %+v, want 70 groups", st)
	}
	// b leaving h5, its only member, frees a group.
	api.Post(t, "/leave", `{"uid":"b","group":"h5"}`).ExpectJSON(http.StatusOK, `{"ok":true,"was_member":true}`)
	c.Send(`{"type":"join","id":3,"group":"h6"}`)
	c.Expect(`{"type":"joined","id":3,"group":"h6"}`)
	api.Get(t, "/uids?group=h6").ExpectJSON(http.StatusOK, `{"group":"h6","uids":["c"]}`)
	api.Post(t, "/send", `{"group":"g1","data":"g1"}`).ExpectJSON(http.StatusOK, harness.ReceiptJSON(2, 0))
	obs.served(t)
}

// TestRateLimitCountsEveryFrame: rate_limit counts every frame, wherever it
// sits: pings inside a fragmented message and unsolicited pongs are closed
// with 4008 once the burst allowance is spent.
func TestRateLimitCountsEveryFrame(t *testing.T) {
	h := harness.Start(t, harness.OneHub("rate_limit 10 20"))
	obs := newBystander(t, h, "observer")

	t.Run("pings inside a fragmented message", func(t *testing.T) {
		r := harness.DialRaw(t, "fragmenter", h.WS+"/ws", 0)
		r.Login("fragmenter")
		flood := harness.Fragment(harness.OpText, false, []byte(`{"type":"pi`))
		for range 200 {
			flood = append(flood, harness.FrameBytes(harness.OpPing, []byte("p"))...)
		}
		flood = append(flood, harness.Fragment(harness.OpContinuation, true, []byte(`ng"}`))...)
		_ = r.Conn.SetWriteDeadline(time.Now().Add(harness.Guard))
		_, _ = r.Conn.Write(flood) // may fail once the server hangs up
		pongs := 0
		for {
			op, p, err := r.Next()
			if err != nil {
				t.Fatalf("after %d pongs: %v, want close 4008", pongs, err)
			}
			if op == harness.OpPong {
				pongs++
				continue
			}
			if op != harness.OpClose {
				t.Fatalf("after %d pongs: got opcode %d (%.100q), want pongs, then close 4008", pongs, op, p)
			}
			if code, reason := harness.CloseCode(p); code != 4008 {
				t.Fatalf("after %d pongs: closed with %d %q, want 4008", pongs, code, reason)
			}
			break
		}
		r.ExpectHangup()
		// The burst allowance (20, less the login and the first fragment,
		// plus what the rate refilled meanwhile) is served, not the flood.
		if pongs < 18 || pongs >= 100 {
			t.Fatalf("%d pongs to 200 pings, want the burst allowance served and the flood cut", pongs)
		}
		obs.served(t)
	})

	t.Run("unsolicited pongs", func(t *testing.T) {
		r := harness.DialRaw(t, "ponger", h.WS+"/ws", 0)
		r.Login("ponger")
		var flood []byte
		for range 200 {
			flood = append(flood, harness.FrameBytes(harness.OpPong, nil)...)
		}
		_ = r.Conn.SetWriteDeadline(time.Now().Add(harness.Guard))
		_, _ = r.Conn.Write(flood)
		r.ExpectClose(4008)
		obs.served(t)
	})
}

// TestFrameHeaderOverMaxMessageSize: a frame whose header announces more
// than max_message_size (or a fragment that takes its message over it) is
// closed with 1009 as soon as the header is read, the payload never sent;
// a 64-bit length with its top bit set is closed with 1002. pong_timeout
// and auth_timeout are far longer than the harness waits, so a close that
// comes is the header's.
func TestFrameHeaderOverMaxMessageSize(t *testing.T) {
	h := harness.Start(t, harness.OneHub("max_message_size 4KiB", "pong_timeout 1m", "auth_timeout 1m"))
	obs := newBystander(t, h, "observer")
	head := func(op byte, fin bool, n uint64) []byte {
		b, _ := harness.FrameHead(op, fin, n)
		return b
	}
	for _, tc := range []struct {
		name  string
		login bool
		bytes []byte
		code  int
	}{
		{"1 MiB announced (64-bit length)", true, head(harness.OpText, true, 1<<20), 1009},
		{"max_message_size + 1 announced (16-bit length)", true, head(harness.OpText, true, 4097), 1009},
		{"1 GiB announced before login", false, head(harness.OpText, true, 1<<30), 1009},
		{"a continuation that takes the message over", true,
			append(harness.Fragment(harness.OpText, false, []byte(`{"type":"ping","id":"`+strings.Repeat("x", 3000))),
				head(harness.OpContinuation, true, 2000)...), 1009},
		{"a 64-bit length with the top bit set", true, head(harness.OpText, true, 1<<63|5), 1002},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := harness.DialRaw(t, tc.name, h.WS+"/ws", 0)
			if tc.login {
				r.Login("header")
			}
			r.WriteBytes(tc.bytes)
			r.ExpectClose(tc.code)
			obs.served(t)
		})
	}
}
