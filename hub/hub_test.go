package hub_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/pushhub/caddy-pushhub/hub"
)

func TestValidName(t *testing.T) {
	cases := []struct {
		name string
		max  int
		ok   bool
		says string // part of the error message
	}{
		{"alice", 128, true, ""},
		{"42", 128, true, ""},
		{"with space:and colon", 128, true, ""},
		{"日本語", 9, true, ""}, // 9 bytes exactly
		{"abc", 3, true, ""},
		{"", 128, false, "empty"},
		{"abcd", 3, false, "longer than 3 bytes"},
		{"日本語", 8, false, "longer than 8 bytes"},
		{"a\x00b", 128, false, "control character"},
		{"line\nbreak", 128, false, "control character"},
		{"tab\t", 128, false, "control character"},
		{"del\x7f", 128, false, "control character"},
		{"c1\u0085", 128, false, "control character"},
		{"bad\xffutf8", 128, false, "not valid UTF-8"},
		{"\xc3", 128, false, "not valid UTF-8"},
	}
	for _, tc := range cases {
		for _, kind := range []string{"uid", "group"} {
			err := hub.ValidName(kind, tc.name, tc.max)
			if tc.ok {
				if err != nil {
					t.Errorf("ValidName(%q, %q, %d) = %v, want nil", kind, tc.name, tc.max, err)
				}
				continue
			}
			if err == nil {
				t.Errorf("ValidName(%q, %q, %d) accepted it", kind, tc.name, tc.max)
				continue
			}
			if code := hub.ErrorCode(err, ""); code != "invalid_"+kind {
				t.Errorf("ValidName(%q, %q): code %q, want invalid_%s", kind, tc.name, code, kind)
			}
			if !strings.Contains(err.Error(), tc.says) || !strings.HasPrefix(err.Error(), kind) {
				t.Errorf("ValidName(%q, %q): message %q, want it to start with %q and say %q", kind, tc.name, err, kind, tc.says)
			}
		}
	}
}

func TestErrorCode(t *testing.T) {
	if got := hub.ErrorCode(hub.ErrOffline, "x"); got != "uid_offline" {
		t.Errorf("ErrorCode(ErrOffline) = %q", got)
	}
	if got := hub.ErrorCode(fmt.Errorf("wrapped: %w", hub.ErrHubClosed), "x"); got != "hub_closed" {
		t.Errorf("ErrorCode(wrapped ErrHubClosed) = %q", got)
	}
	if got := hub.ErrorCode(errors.New("plain"), "fallback"); got != "fallback" {
		t.Errorf("ErrorCode(plain error) = %q, want the fallback", got)
	}
}

func TestTextPayload(t *testing.T) {
	cases := []struct{ data, want string }{
		{`"hello"`, "hello"},
		{`"hello:world"`, "hello:world"},
		{`"quote \" and \\ backslash"`, `quote " and \ backslash`},
		{`"\u00e9t\u00e9 \ud83d\ude00"`, "été 😀"},
		{`""`, ""},
		{`{"a":1}`, `{"a":1}`},
		{`[1,"two"]`, `[1,"two"]`},
		{`42`, `42`},
		{`true`, `true`},
		{`null`, `null`},
		{`"unterminated`, `"unterminated`}, // not a JSON string: sent as it is
		{``, ``},
	}
	for _, tc := range cases {
		if got := string(hub.TextPayload(json.RawMessage(tc.data))); got != tc.want {
			t.Errorf("TextPayload(%s) = %q, want %q", tc.data, got, tc.want)
		}
	}
}

func TestSendToUIDReachesEveryConnectionOfTheUID(t *testing.T) {
	ts := newTestServer(t, hub.Settings{})
	a1, a2 := ts.jsonUser("a"), ts.jsonUser("a")
	aText := ts.textUser("a")
	b := ts.jsonUser("b")

	wantReceipt(t, "send to a", ts.hub.SendToUID("a", msg(`{"n":1}`)), 3, 0)
	for _, c := range []*client{a1, a2} {
		f := c.readMessage(1, `{"n":1}`)
		if f.From != "" || f.Group != "" {
			t.Fatalf("a push API message has from %q group %q", f.From, f.Group)
		}
	}
	aText.expectText(`{"n":1}`)

	wantReceipt(t, "send a string to a", ts.hub.SendToUID("a", msg(`"plain text"`)), 3, 0)
	a1.readMessage(2, `"plain text"`)
	a2.readMessage(2, `"plain text"`)
	aText.expectText("plain text")

	// b got nothing of a's: its first message is its own, numbered 1.
	wantReceipt(t, "send to b", ts.hub.SendToUID("b", msg(`"for b"`)), 1, 0)
	b.readMessage(1, `"for b"`)

	wantReceipt(t, "send to an offline uid", ts.hub.SendToUID("nobody", msg(`1`)), 0, 0)

	fromAlice := ts.hub.SendToUID("b", hub.Message{Data: json.RawMessage(`"hi"`), From: "alice"})
	wantReceipt(t, "send with from", fromAlice, 1, 0)
	if f := b.readMessage(2, `"hi"`); f.From != "alice" {
		t.Fatalf("from = %q, want alice", f.From)
	}
}

func TestSendToUIDsSendsDuplicatesOnce(t *testing.T) {
	ts := newTestServer(t, hub.Settings{})
	a1, a2, b := ts.jsonUser("a"), ts.jsonUser("a"), ts.jsonUser("b")
	c := ts.jsonUser("c")

	r := ts.hub.SendToUIDs([]string{"a", "b", "a", "offline", "b", "a"}, msg(`"once"`))
	wantReceipt(t, "send to a, b, a, offline, b, a", r, 3, 0)
	wantReceipt(t, "send to no uid", ts.hub.SendToUIDs(nil, msg(`1`)), 0, 0)
	wantReceipt(t, "send to an empty list", ts.hub.SendToUIDs([]string{}, msg(`1`)), 0, 0)

	// The next message after "once" is "twice": nothing was sent twice.
	wantReceipt(t, "second send", ts.hub.SendToUIDs([]string{"a", "b"}, msg(`"twice"`)), 3, 0)
	for _, cl := range []*client{a1, a2, b} {
		cl.readMessage(1, `"once"`)
		cl.readMessage(2, `"twice"`)
	}
	// c was not named: its first message is the one sent to it now.
	wantReceipt(t, "send to c", ts.hub.SendToUIDs([]string{"c"}, msg(`"c"`)), 1, 0)
	c.readMessage(1, `"c"`)
}

func TestSendToGroup(t *testing.T) {
	ts := newTestServer(t, hub.Settings{})
	a1, a2 := ts.jsonUser("a"), ts.jsonUser("a")
	bText := ts.textUser("b")
	c := ts.jsonUser("c")
	for _, uid := range []string{"a", "b"} {
		if err := ts.hub.Join(uid, "room"); err != nil {
			t.Fatalf("Join(%s): %v", uid, err)
		}
	}
	if err := ts.hub.Join("c", "other"); err != nil {
		t.Fatal(err)
	}

	wantReceipt(t, "send to room", ts.hub.SendToGroup("room", msg(`{"x":true}`)), 3, 0)
	for _, cl := range []*client{a1, a2} {
		if f := cl.readMessage(1, `{"x":true}`); f.Group != "room" {
			t.Fatalf("group = %q, want room", f.Group)
		}
	}
	bText.expectText(`{"x":true}`)

	wantReceipt(t, "send to a group nobody is in", ts.hub.SendToGroup("empty", msg(`1`)), 0, 0)
	wantReceipt(t, "send to other", ts.hub.SendToGroup("other", msg(`"o"`)), 1, 0)
	if f := c.readMessage(1, `"o"`); f.Group != "other" {
		t.Fatalf("group = %q, want other", f.Group)
	}
}

func TestBroadcastReachesLoggedInConnectionsOnly(t *testing.T) {
	ts := newTestServer(t, hub.Settings{})
	a1, a2 := ts.jsonUser("a"), ts.jsonUser("a")
	bText := ts.textUser("b")
	pending := ts.dial("")
	waitStats(t, ts.hub, "one pending connection", func(s hub.Stats) bool { return s.Pending == 1 })

	wantReceipt(t, "broadcast", ts.hub.Broadcast(msg(`"all"`)), 3, 0)
	a1.readMessage(1, `"all"`)
	a2.readMessage(1, `"all"`)
	bText.expectText("all")

	// The pending connection got nothing: after its login, the welcome is
	// its first frame and the next broadcast its second.
	if w := pending.loginJSON("p"); w.Seq != 0 {
		t.Fatalf("welcome seq %d for a new uid, want 0", w.Seq)
	}
	wantReceipt(t, "second broadcast", ts.hub.Broadcast(msg(`"again"`)), 4, 0)
	pending.readMessage(1, `"again"`)
	a1.readMessage(2, `"again"`)
}

func TestSequenceNumbersPerUID(t *testing.T) {
	ts := newTestServer(t, hub.Settings{})
	a1 := ts.jsonUser("a")
	b := ts.jsonUser("b")
	for i := 1; i <= 3; i++ {
		ts.hub.SendToUID("a", msg(fmt.Sprint(i)))
	}
	for i := 1; i <= 3; i++ {
		a1.readMessage(uint64(i), fmt.Sprint(i))
	}
	// A second connection starts at the uid's position.
	a2 := ts.dial("")
	if w := a2.loginJSON("a"); w.Seq != 3 {
		t.Fatalf("second connection's welcome seq %d, want 3", w.Seq)
	}
	if err := ts.hub.Join("a", "g"); err != nil {
		t.Fatal(err)
	}
	ts.hub.SendToUID("a", msg(`"direct"`))
	ts.hub.SendToGroup("g", msg(`"group"`))
	ts.hub.Broadcast(msg(`"everyone"`))
	ts.hub.SendToUIDs([]string{"b", "a"}, msg(`"list"`))
	for _, c := range []*client{a1, a2} {
		c.readMessage(4, `"direct"`)
		c.readMessage(5, `"group"`)
		c.readMessage(6, `"everyone"`)
		c.readMessage(7, `"list"`)
	}
	// b has its own numbering.
	b.readMessage(1, `"everyone"`)
	b.readMessage(2, `"list"`)
}

// TestOrderingUnderConcurrentPublishers: many goroutines push to one uid at
// once through every kind of target; each of the uid's connections sees
// 1..N in order without a gap, the same message under the same number, and
// each publisher's messages in the order it sent them.
func TestOrderingUnderConcurrentPublishers(t *testing.T) {
	const publishers, perPublisher = 8, 150
	const total = publishers * perPublisher
	ts := newTestServer(t, hub.Settings{SendQueue: total + 16})
	conns := []*client{ts.jsonUser("hot"), ts.jsonUser("hot"), ts.jsonUser("hot")}
	if err := ts.hub.Join("hot", "g"); err != nil {
		t.Fatal(err)
	}

	type item struct {
		P, K int
	}
	results := make([][]item, len(conns))
	errs := make(chan error, len(conns)+publishers)
	var readers sync.WaitGroup
	for i, c := range conns {
		readers.Add(1)
		go func() {
			defer readers.Done()
			next := make([]int, publishers)
			for want := uint64(1); want <= total; want++ {
				f, err := c.nextFrame()
				if err != nil {
					errs <- fmt.Errorf("connection %d after seq %d: %v", i, want-1, err)
					return
				}
				if f.Type != "message" || f.Seq != want {
					errs <- fmt.Errorf("connection %d: got %s seq %d, want message seq %d", i, f.Type, f.Seq, want)
					return
				}
				var it item
				if err := json.Unmarshal(f.Data, &it); err != nil {
					errs <- err
					return
				}
				if it.K != next[it.P] {
					errs <- fmt.Errorf("connection %d: publisher %d's message %d came when %d was due", i, it.P, it.K, next[it.P])
					return
				}
				next[it.P]++
				results[i] = append(results[i], it)
			}
		}()
	}

	var pubs sync.WaitGroup
	for p := range publishers {
		pubs.Add(1)
		go func() {
			defer pubs.Done()
			for k := range perPublisher {
				m := msg(fmt.Sprintf(`{"P":%d,"K":%d}`, p, k))
				var r hub.Receipt
				switch (p + k) % 4 {
				case 0:
					r = ts.hub.SendToUID("hot", m)
				case 1:
					r = ts.hub.SendToUIDs([]string{"hot", "hot"}, m)
				case 2:
					r = ts.hub.SendToGroup("g", m)
				default:
					r = ts.hub.Broadcast(m)
				}
				if r.Delivered != 3 || r.Dropped != 0 {
					errs <- fmt.Errorf("publisher %d message %d: receipt %+v", p, k, r)
					return
				}
			}
		}()
	}
	pubs.Wait()
	readers.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	for i := 1; i < len(results); i++ {
		if !slices.Equal(results[i], results[0]) {
			t.Fatalf("connection %d saw a different message under some seq than connection 0", i)
		}
	}
}

func TestJoinAndLeave(t *testing.T) {
	ts := newTestServer(t, hub.Settings{MaxUIDLength: 8})
	ts.jsonUser("a")
	ts.jsonUser("b")

	err := ts.hub.Join("nobody", "g")
	if !errors.Is(err, hub.ErrOffline) || hub.ErrorCode(err, "") != "uid_offline" {
		t.Fatalf("Join of an offline uid: %v, want ErrOffline", err)
	}
	for _, bad := range []string{"", "too-long-group", "a\nb"} {
		if err := ts.hub.Join("a", bad); hub.ErrorCode(err, "") != "invalid_group" {
			t.Errorf("Join(a, %q) = %v, want invalid_group", bad, err)
		}
	}
	if st := ts.hub.Stats(); st.Groups != 0 {
		t.Fatalf("groups after refused joins: %d", st.Groups)
	}

	for range 2 { // joining twice is joining once
		if err := ts.hub.Join("a", "g"); err != nil {
			t.Fatal(err)
		}
	}
	if err := ts.hub.Join("b", "g"); err != nil {
		t.Fatal(err)
	}
	if err := ts.hub.Join("a", "h"); err != nil {
		t.Fatal(err)
	}
	if uids, more := ts.hub.UIDs("g", "", 0); !slices.Equal(uids, []string{"a", "b"}) || more {
		t.Fatalf("members of g: %v %v", uids, more)
	}
	if st := ts.hub.Stats(); st.Groups != 2 {
		t.Fatalf("groups: %d, want 2", st.Groups)
	}
	wantReceipt(t, "send to g", ts.hub.SendToGroup("g", msg(`1`)), 2, 0)

	if !ts.hub.Leave("a", "g") {
		t.Fatal("Leave(a, g) = false for a member")
	}
	if ts.hub.Leave("a", "g") {
		t.Fatal("Leave(a, g) = true twice")
	}
	if ts.hub.Leave("a", "never-joined") || ts.hub.Leave("nobody", "g") {
		t.Fatal("Leave of a non-member reported membership")
	}
	if uids, _ := ts.hub.UIDs("g", "", 0); !slices.Equal(uids, []string{"b"}) {
		t.Fatalf("members of g after a left: %v", uids)
	}
	wantReceipt(t, "send to g after a left", ts.hub.SendToGroup("g", msg(`2`)), 1, 0)

	// The group disappears with its last member.
	if !ts.hub.Leave("b", "g") {
		t.Fatal("Leave(b, g) = false")
	}
	if st := ts.hub.Stats(); st.Groups != 1 {
		t.Fatalf("groups after g emptied: %d, want 1 (h)", st.Groups)
	}
	if uids, more := ts.hub.UIDs("g", "", 0); len(uids) != 0 || more {
		t.Fatalf("members of the empty group: %v", uids)
	}
	wantReceipt(t, "send to the emptied group", ts.hub.SendToGroup("g", msg(`3`)), 0, 0)
}

// TestGroupsEndWithTheUIDsLastConnection: membership belongs to the uid and
// survives while any of its connections is open.
func TestGroupsEndWithTheUIDsLastConnection(t *testing.T) {
	ts := newTestServer(t, hub.Settings{})
	a1, a2 := ts.jsonUser("a"), ts.jsonUser("a")
	ts.jsonUser("b")
	for _, g := range []string{"g1", "g2"} {
		if err := ts.hub.Join("a", g); err != nil {
			t.Fatal(err)
		}
	}
	if err := ts.hub.Join("b", "g2"); err != nil {
		t.Fatal(err)
	}

	a1.ws.Close()
	eventually(t, "a down to one connection", func() bool { return ts.hub.Online("a") == 1 })
	if st := ts.hub.Stats(); st.Groups != 2 {
		t.Fatalf("groups with a still online: %d, want 2", st.Groups)
	}
	wantReceipt(t, "send to g1 with one connection of a left", ts.hub.SendToGroup("g1", msg(`"still"`)), 1, 0)
	a2.readMessage(1, `"still"`)

	a2.ws.Close()
	waitStats(t, ts.hub, "a offline and g1 gone", func(s hub.Stats) bool {
		return s.UIDs == 1 && s.Groups == 1 && s.Connections == 1
	})
	if uids, _ := ts.hub.UIDs("g2", "", 0); !slices.Equal(uids, []string{"b"}) {
		t.Fatalf("members of g2 after a went offline: %v", uids)
	}

	// Back online, a is in no group.
	a3 := ts.jsonUser("a")
	wantReceipt(t, "send to g1 after a came back", ts.hub.SendToGroup("g1", msg(`1`)), 0, 0)
	if ts.hub.Leave("a", "g2") {
		t.Fatal("a is still a member of g2 after going offline")
	}
	ts.hub.SendToUID("a", msg(`"fresh"`))
	a3.readMessage(1, `"fresh"`)
}

func TestKick(t *testing.T) {
	ts := newTestServer(t, hub.Settings{})
	aJSON := ts.jsonUser("a")
	aText := ts.textUser("a")
	b := ts.jsonUser("b")
	if err := ts.hub.Join("a", "g"); err != nil {
		t.Fatal(err)
	}

	ts.hub.SendToUID("a", msg(`"before the kick"`))
	if n := ts.hub.Kick("a", "account suspended"); n != 2 {
		t.Fatalf("Kick closed %d connections, want 2", n)
	}
	// What was queued comes first, then the kick.
	aJSON.readMessage(1, `"before the kick"`)
	f := aJSON.readType("error")
	if f.Code != "kicked" || f.Message != "account suspended" {
		t.Fatalf("kick frame %+v", f)
	}
	if reason := aJSON.expectClose(hub.CloseKicked); reason != "account suspended" {
		t.Fatalf("close reason %q", reason)
	}
	aText.expectText("before the kick")
	if reason := aText.expectClose(hub.CloseKicked); reason != "account suspended" {
		t.Fatalf("text close reason %q", reason)
	}

	waitStats(t, ts.hub, "a gone with its group", func(s hub.Stats) bool {
		return s.Connections == 1 && s.UIDs == 1 && s.Groups == 0
	})
	if n := ts.hub.Online("a"); n != 0 {
		t.Fatalf("Online(a) = %d after the kick", n)
	}
	if n := ts.hub.Kick("a", "again"); n != 0 {
		t.Fatalf("kicking an offline uid closed %d", n)
	}
	wantReceipt(t, "b unaffected", ts.hub.SendToUID("b", msg(`"ok"`)), 1, 0)
	b.readMessage(1, `"ok"`)
}

func TestKickTrimsALongReasonToACloseFrame(t *testing.T) {
	ts := newTestServer(t, hub.Settings{})
	a := ts.jsonUser("a")
	reason := strings.Repeat("é", 100) // 200 bytes; a close reason holds 123
	ts.hub.Kick("a", reason)
	if f := a.readType("error"); f.Message != reason {
		t.Fatalf("the error frame should carry the whole reason, got %q", f.Message)
	}
	got := a.expectClose(hub.CloseKicked)
	if len(got) > 123 || !utf8.ValidString(got) || !strings.HasPrefix(reason, got) || len(got) < 120 {
		t.Fatalf("close reason %q (%d bytes): want the longest valid UTF-8 prefix within 123 bytes", got, len(got))
	}
}

func TestOnline(t *testing.T) {
	ts := newTestServer(t, hub.Settings{})
	if n := ts.hub.Online("a"); n != 0 {
		t.Fatalf("Online before any connection = %d", n)
	}
	a1 := ts.jsonUser("a")
	if n := ts.hub.Online("a"); n != 1 {
		t.Fatalf("Online = %d, want 1", n)
	}
	ts.textUser("a")
	if n := ts.hub.Online("a"); n != 2 {
		t.Fatalf("Online = %d, want 2", n)
	}
	ts.dial("") // pending: not a's
	if n := ts.hub.Online("a"); n != 2 {
		t.Fatalf("Online = %d, want 2", n)
	}
	a1.ws.Close()
	eventually(t, "Online(a) back to 1", func() bool { return ts.hub.Online("a") == 1 })
}

func TestUIDsPaging(t *testing.T) {
	ts := newTestServer(t, hub.Settings{})
	for _, uid := range []string{"e", "c", "a", "d", "b"} {
		ts.jsonUser(uid)
	}
	ts.jsonUser("c") // a second connection is not a second uid
	for _, uid := range []string{"b", "c", "e"} {
		if err := ts.hub.Join(uid, "g"); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		group, after string
		limit        int
		want         []string
		more         bool
	}{
		{"", "", 0, []string{"a", "b", "c", "d", "e"}, false},
		{"", "", 2, []string{"a", "b"}, true},
		{"", "b", 2, []string{"c", "d"}, true},
		{"", "d", 2, []string{"e"}, false},
		{"", "c", 2, []string{"d", "e"}, false},
		{"", "e", 2, nil, false},
		{"", "bb", 1, []string{"c"}, true},
		{"", "", 5, []string{"a", "b", "c", "d", "e"}, false},
		{"g", "", 0, []string{"b", "c", "e"}, false},
		{"g", "", 2, []string{"b", "c"}, true},
		{"g", "c", 2, []string{"e"}, false},
		{"nogroup", "", 10, nil, false},
	}
	for _, tc := range cases {
		got, more := ts.hub.UIDs(tc.group, tc.after, tc.limit)
		if !slices.Equal(got, tc.want) || more != tc.more {
			t.Errorf("UIDs(%q, %q, %d) = %v, %v; want %v, %v", tc.group, tc.after, tc.limit, got, more, tc.want, tc.more)
		}
	}
}

func TestStats(t *testing.T) {
	ts := newTestServer(t, hub.Settings{})
	if st := ts.hub.Stats(); st.Hub != "test" || st.Connections != 0 || st.UIDs != 0 || st.Pending != 0 || st.Groups != 0 {
		t.Fatalf("stats of a new hub: %+v", st)
	}
	a1, _ := ts.jsonUser("a"), ts.jsonUser("a")
	b := ts.textUser("b")
	ts.dial("")
	ts.dial("proto=text")
	if err := ts.hub.Join("a", "g1"); err != nil {
		t.Fatal(err)
	}
	if err := ts.hub.Join("b", "g2"); err != nil {
		t.Fatal(err)
	}
	st := waitStats(t, ts.hub, "3 connections, 2 pending", func(s hub.Stats) bool {
		return s.Connections == 3 && s.Pending == 2
	})
	if st.UIDs != 2 || st.Groups != 2 {
		t.Fatalf("stats %+v, want 2 uids, 2 groups", st)
	}

	before := ts.hub.Stats()
	ts.hub.SendToUID("a", msg(`1`))    // 2 frames out
	ts.hub.Broadcast(msg(`2`))         // 3 frames out
	ts.hub.SendToUID("none", msg(`3`)) // a push that reaches nobody
	a1.sendJSON(map[string]any{"type": "ping"})
	b.send("ignored: client publish is off")
	a1.readMessage(1, `1`)
	a1.readMessage(2, `2`)
	a1.readType("pong")
	b.expectText("2")
	st = waitStats(t, ts.hub, "2 more frames in", func(s hub.Stats) bool { return s.MessagesIn == before.MessagesIn+2 })
	if st.Pushes != before.Pushes+3 {
		t.Errorf("pushes %d, want %d", st.Pushes, before.Pushes+3)
	}
	if st.MessagesOut != before.MessagesOut+5 {
		t.Errorf("messages out %d, want %d", st.MessagesOut, before.MessagesOut+5)
	}
	if st.SlowConsumers != 0 {
		t.Errorf("slow consumers %d", st.SlowConsumers)
	}
}

func TestCloseClosesEveryConnectionAndRefusesLogins(t *testing.T) {
	ts := newTestServer(t, hub.Settings{})
	a := ts.jsonUser("a")
	b := ts.textUser("b")
	pending := ts.dial("")
	pendingText := ts.dial("proto=text")
	waitStats(t, ts.hub, "two pending", func(s hub.Stats) bool { return s.Pending == 2 })
	ts.hub.SendToUIDs([]string{"a", "b"}, msg(`"last words"`))

	ts.hub.Close("maintenance")

	// Queued frames first, then (json) going_away, then 1001.
	a.readMessage(1, `"last words"`)
	ga := a.readType("going_away")
	if ga.Reason != "maintenance" || ga.RetryMS < 500 {
		t.Fatalf("going_away frame %+v", ga)
	}
	reason := a.expectClose(hub.CloseGoingAway)
	if want := fmt.Sprintf("maintenance; retry in %dms", ga.RetryMS); reason != want {
		t.Fatalf("close reason %q, want %q", reason, want)
	}
	b.expectText("last words")
	if reason := b.expectClose(hub.CloseGoingAway); !strings.HasPrefix(reason, "maintenance") {
		t.Fatalf("text close reason %q", reason)
	}
	for _, p := range []*client{pending, pendingText} {
		if reason := p.expectClose(hub.CloseGoingAway); !strings.HasPrefix(reason, "maintenance") {
			t.Fatalf("pending close reason %q", reason)
		}
	}
	waitStats(t, ts.hub, "an empty hub", func(s hub.Stats) bool {
		return s.Connections == 0 && s.Pending == 0 && s.UIDs == 0
	})

	// Later connections are refused, whether they log in at the upgrade
	// or with a frame.
	late := ts.dial("uid=late")
	late.expectClose(hub.CloseGoingAway)
	lateFrame := ts.dial("")
	if mt, b, err := lateFrame.next(); err == nil {
		// It may have been accepted as pending just before: a login must fail.
		t.Fatalf("frame %d %q from a closed hub", mt, b)
	} else if code, _ := closeOf(err); code != hub.CloseGoingAway {
		t.Fatalf("late connection ended with %v, want 1001", err)
	}
	if err := ts.hub.Join("a", "g"); !errors.Is(err, hub.ErrOffline) {
		t.Fatalf("Join after Close: %v", err)
	}
	wantReceipt(t, "send after Close", ts.hub.SendToUID("a", msg(`1`)), 0, 0)
	ts.hub.Close("twice") // a second Close is harmless
	if st := ts.hub.Stats(); st.Connections != 0 || st.Pending != 0 {
		t.Fatalf("stats after Close: %+v", st)
	}
}

// TestDroppedCountsOnlySlowConsumers: Receipt.Dropped is documented as the
// connections cut off as slow consumers; a connection that is closing for
// another reason (kicked here) is not one.
func TestDroppedCountsOnlySlowConsumers(t *testing.T) {
	ts := newTestServer(t, hub.Settings{})
	ts.jsonUser("a")
	ts.jsonUser("a")
	ts.hub.Kick("a", "bye")
	r := ts.hub.SendToUID("a", msg(`1`))
	if st := ts.hub.Stats(); r.Dropped != int(st.SlowConsumers) {
		t.Fatalf("receipt %+v says %d dropped, but there were %d slow consumers", r, r.Dropped, st.SlowConsumers)
	}
}
