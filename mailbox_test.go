package pushhub_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/pushhub/caddy-pushhub/internal/harness"
)

// TestMailbox: with history on, what is pushed to a uid while it has no
// connection is its mailbox. Its next login without since gets it after
// the welcome, whose resume says where it starts and whether it is whole;
// another connection of the uid gets live messages only; once the uid is
// offline again, what comes meanwhile is its new mailbox. since 0 on a uid
// whose history holds everything since its numbering began is recovered.
// (In cluster mode, the same on Redis: TestClusterHistory.)
func TestMailbox(t *testing.T) {
	h := harness.Start(t, `
{$WS_SITE} {
	push_hub /ws {
		hub {$HUB}
		auth first_message
		history 100 1m
	}
	push_hub /small {
		hub {$HUB2}
		auth first_message
		history 3 1m
	}
}

`+harness.APISite("HUB", "HUB2"))
	api, small := h.API(), h.API().Under("/HUB2")
	stored := `{"delivered":0,"dropped":0,"stored":true}`
	push := func(a harness.API, uid string, data int, want string) {
		t.Helper()
		a.Post(t, "/send", fmt.Sprintf(`{"uid":%q,"data":%d}`, uid, data)).ExpectJSON(http.StatusOK, want)
	}
	expectMessages := func(c *harness.Conn, from, to int) {
		t.Helper()
		for i := from; i <= to; i++ {
			c.Expect(fmt.Sprintf(`{"type":"message","seq":%d,"data":%d}`, i, i))
		}
	}

	// A uid that never connected.
	for i := 1; i <= 5; i++ {
		push(api, "m", i, stored)
	}
	c1 := harness.Dial(t, "m#1", h.WS+"/ws", nil)
	w1 := login(c1, "m")
	expectWelcome(t, w1, "m", 5, `{"since":0,"recovered":true,"replayed":5}`)
	expectMessages(c1, 1, 5)

	// A second connection of the uid: no mailbox, live messages.
	c2 := harness.Dial(t, "m#2", h.WS+"/ws", nil)
	w2 := login(c2, "m")
	expectWelcome(t, w2, "m", 5, "")
	if w2.Epoch != w1.Epoch {
		t.Fatalf("welcomes %s and %s: want one numbering", w1.Raw, w2.Raw)
	}
	push(api, "m", 6, `{"delivered":2,"dropped":0,"stored":true}`)
	expectMessages(c1, 6, 6)
	expectMessages(c2, 6, 6)

	// Offline again: what comes meanwhile is the next mailbox, and only
	// the first login without since gets it.
	c1.CloseNormally()
	c2.CloseNormally()
	api.WaitOnline(t, "m", 0)
	push(api, "m", 7, stored)
	push(api, "m", 8, stored)
	c3 := harness.Dial(t, "m#3", h.WS+"/ws", nil)
	expectWelcome(t, login(c3, "m"), "m", 8, `{"since":6,"recovered":true,"replayed":2}`)
	expectMessages(c3, 7, 8)
	c4 := harness.Dial(t, "m#4", h.WS+"/ws", nil)
	expectWelcome(t, login(c4, "m"), "m", 8, "")

	// since 0: the history holds everything since the numbering began.
	c5 := harness.Dial(t, "m#5", h.WS+"/ws", nil)
	expectWelcome(t, c5.LoginSince("m", 0, w1.Epoch), "m", 8, `{"since":0,"recovered":true,"replayed":8}`)
	expectMessages(c5, 1, 8)
	push(api, "m", 9, `{"delivered":3,"dropped":0,"stored":true}`)
	for _, c := range []*harness.Conn{c3, c4, c5} {
		expectMessages(c, 9, 9)
	}

	// A mailbox larger than the history: what is kept is replayed, and the
	// welcome says the mailbox is not whole; since 0 likewise.
	for i := 1; i <= 5; i++ {
		push(small, "s", i, stored)
	}
	s1 := harness.Dial(t, "s#1", h.WS+"/small", nil)
	ws := login(s1, "s")
	expectWelcome(t, ws, "s", 5, `{"since":0,"recovered":false,"replayed":3,"reason":"too_old"}`)
	expectMessages(s1, 3, 5)
	s2 := harness.Dial(t, "s#2", h.WS+"/small", nil)
	expectWelcome(t, s2.LoginSince("s", 0, ws.Epoch), "s", 5, `{"since":0,"recovered":false,"replayed":3,"reason":"too_old"}`)
	expectMessages(s2, 3, 5)
}
