package hub_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pushhub/caddy-pushhub/hub"
)

func historySettings(size int) hub.Settings {
	return hub.Settings{HistorySize: size, HistoryTTL: time.Minute}
}

// TestResumeRecoversEverything: a client that reconnects with the last seq
// it saw gets exactly what it missed, in order, before anything new.
func TestResumeRecoversEverything(t *testing.T) {
	forEachReader(t, func(t *testing.T, newServer func(hub.Settings) *testServer) {
		ts := newServer(historySettings(10))
		c := ts.dial("uid=a")
		w := c.readType("welcome")
		s0 := w.Seq
		if s0 != 0 || w.Epoch == "" {
			t.Fatalf("welcome %+v: with history on, a new uid's numbering is a new epoch, from 0", w)
		}
		for i := 1; i <= 3; i++ {
			r := ts.hub.SendToUID("a", msg(fmt.Sprint(i)))
			if r.Delivered != 1 || !r.Stored {
				t.Fatalf("push %d: receipt %+v, want delivered and stored", i, r)
			}
		}
		c.readMessage(s0+1, "1") // the client saw 1 only
		c.ws.Close()
		eventually(t, "a offline", func() bool { return ts.hub.Online("a") == 0 })
		if st := ts.hub.Stats(); st.UIDs != 0 || st.OfflineKept != 1 {
			t.Fatalf("stats with a offline: %+v, want a kept offline", st)
		}
		for i := 4; i <= 5; i++ {
			r := ts.hub.SendToUID("a", msg(fmt.Sprint(i)))
			if r.Delivered != 0 || !r.Stored {
				t.Fatalf("push %d to offline a: receipt %+v, want stored", i, r)
			}
		}

		back := ts.dial(fmt.Sprintf("uid=a&since=%d&epoch=%s", s0+1, w.Epoch))
		epoch := w.Epoch
		w = back.readType("welcome")
		if w.Epoch != epoch {
			t.Fatalf("epoch %q after resuming, want %q", w.Epoch, epoch)
		}
		if w.Seq != s0+5 || w.Resume == nil || !w.Resume.Recovered || w.Resume.Replayed != 4 || w.Resume.Since != s0+1 || w.Resume.Reason != "" {
			t.Fatalf("welcome %+v resume %+v", w, w.Resume)
		}
		for i := 2; i <= 5; i++ {
			back.readMessage(s0+uint64(i), fmt.Sprint(i))
		}
		ts.hub.SendToUID("a", msg(`"new"`))
		back.readMessage(s0+6, `"new"`)

		// since in the login frame does the same.
		again := ts.dial("")
		again.sendJSON(map[string]any{"type": "login", "uid": "a", "since": s0 + 5, "epoch": epoch})
		w = again.readType("welcome")
		if w.Resume == nil || !w.Resume.Recovered || w.Resume.Replayed != 1 {
			t.Fatalf("login-frame resume %+v", w.Resume)
		}
		again.readMessage(s0+6, `"new"`)
		// Up to date: nothing replayed, recovered.
		current := ts.dial(fmt.Sprintf("uid=a&since=%d", s0+6))
		if w := current.readType("welcome"); w.Resume == nil || !w.Resume.Recovered || w.Resume.Replayed != 0 {
			t.Fatalf("up-to-date resume %+v", w.Resume)
		}
	})
}

func TestResumeTooOld(t *testing.T) {
	ts := newTestServer(t, historySettings(2))
	c := ts.jsonUser("a")
	c.ws.Close()
	eventually(t, "a offline", func() bool { return ts.hub.Online("a") == 0 })
	for i := 1; i <= 5; i++ {
		ts.hub.SendToUID("a", msg(fmt.Sprint(i)))
	}
	if st := ts.hub.Stats(); st.HistoryStored != 2 {
		t.Fatalf("history messages %d, want 2 (the size)", st.HistoryStored)
	}
	back := ts.dial("")
	back.sendJSON(map[string]any{"type": "login", "uid": "a", "since": 0})
	w := back.readType("welcome")
	s0 := w.Seq - 5
	// A since of 0 is before the numbering's start: not "unknown".
	if w.Resume == nil || w.Resume.Recovered || w.Resume.Replayed != 2 || w.Resume.Reason != "too_old" {
		t.Fatalf("resume %+v", w.Resume)
	}
	back.readMessage(s0+4, "4")
	back.readMessage(s0+5, "5")
}

// TestResumeFromAnotherEpoch: a client whose position belongs to a
// numbering the hub no longer has (the uid expired, or the hub restarted)
// is told its gap could not be filled, and gets what the current numbering
// holds rather than messages that happen to share its numbers.
func TestResumeFromAnotherEpoch(t *testing.T) {
	ts := newTestServer(t, historySettings(10))
	for i := 1; i <= 3; i++ {
		ts.hub.SendToUID("a", msg(fmt.Sprint(i))) // a is offline: stored
	}
	c := ts.dial("uid=a&since=1&epoch=gone")
	w := c.readType("welcome")
	if w.Seq != 3 || w.Epoch == "" || w.Epoch == "gone" || w.Resume == nil || w.Resume.Recovered ||
		w.Resume.Replayed != 3 || w.Resume.Reason != "epoch_changed" {
		t.Fatalf("welcome %+v resume %+v", w, w.Resume)
	}
	for i := 1; i <= 3; i++ {
		c.readMessage(uint64(i), fmt.Sprint(i))
	}
	// Without an epoch, the position is taken in the current numbering.
	legacy := ts.dial("uid=a&since=1")
	if w := legacy.readType("welcome"); w.Resume == nil || !w.Resume.Recovered || w.Resume.Replayed != 2 {
		t.Fatalf("resume without an epoch %+v", w.Resume)
	}
}

func TestResumeHistoryOff(t *testing.T) {
	ts := newTestServer(t, hub.Settings{})
	first := ts.jsonUser("a")
	for i := 1; i <= 3; i++ {
		wantReceipt(t, "push", ts.hub.SendToUID("a", msg(fmt.Sprint(i))), 1, 0)
	}
	if r := ts.hub.SendToUID("a", msg(`4`)); r.Stored {
		t.Fatal("stored with history off")
	}
	for i := 1; i <= 4; i++ {
		first.readMessage(uint64(i), fmt.Sprint(i))
	}
	c := ts.dial("uid=a&since=1")
	w := c.readType("welcome")
	if w.Seq != 4 || w.Resume == nil || w.Resume.Recovered || w.Resume.Replayed != 0 || w.Resume.Reason != "history_off" {
		t.Fatalf("welcome %+v resume %+v", w, w.Resume)
	}
	// Nothing is kept for an offline uid.
	if r := ts.hub.SendToUID("offline", msg(`1`)); r.Stored || r.Delivered != 0 {
		t.Fatalf("push to an offline uid with history off: %+v", r)
	}
	if st := ts.hub.Stats(); st.OfflineKept != 0 || st.HistoryStored != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestHistoryBudget(t *testing.T) {
	ts := newTestServer(t, hub.Settings{HistorySize: 1000, HistoryTTL: time.Minute, HistoryMaxBytes: 4096})
	stored, refused := 0, 0
	for i := range 100 {
		if ts.hub.SendToUID(fmt.Sprint("u", i%5), msg(`"0123456789012345678901234567890123456789"`)).Stored {
			stored++
		} else {
			refused++
		}
	}
	st := ts.hub.Stats()
	if stored == 0 || refused == 0 || st.HistoryBytes > 4096 || st.HistoryStored != int64(stored) {
		t.Fatalf("stored %d refused %d, stats %+v: want the budget to stop storing at 4096 bytes", stored, refused, st)
	}
}

// TestWaitAck: Send with WaitAck returns once every json connection it
// reached has acknowledged, and says so.
func TestWaitAck(t *testing.T) {
	forEachReader(t, func(t *testing.T, newServer func(hub.Settings) *testServer) {
		ts := newServer(hub.Settings{})
		a1, a2 := ts.jsonUser("a"), ts.jsonUser("a")
		ts.textUser("a") // text connections cannot ack: not waited for

		receipts := make(chan hub.Receipt, 1)
		send := func(data string) {
			go func() {
				receipts <- ts.hub.sendWait(context.Background(), hub.Target{UID: "a"}, msg(data), hub.SendOptions{WaitAck: time.Hour})
			}()
		}
		receipt := func() hub.Receipt {
			t.Helper()
			select {
			case r := <-receipts:
				return r
			case <-time.After(guard):
				t.Fatal("Send still waits after every connection acknowledged")
				return hub.Receipt{}
			}
		}

		send(`1`)
		for _, c := range []*client{a1, a2} {
			f := c.readMessage(1, `1`)
			c.sendJSON(map[string]any{"type": "ack", "seq": f.Seq})
		}
		if r := receipt(); r.Delivered != 3 || r.Acked != 2 {
			t.Fatalf("receipt %+v, want delivered 3, acked 2", r)
		}

		// Messages sent without a wait are acknowledged like any other;
		// the next wait counts acks of its own message.
		ts.hub.SendToUID("a", msg(`2`))
		ts.hub.SendToUID("a", msg(`3`))
		for _, c := range []*client{a1, a2} {
			c.readMessage(2, `2`)
			c.readMessage(3, `3`)
			c.sendJSON(map[string]any{"type": "ack", "seq": 3})
			c.sendJSON(map[string]any{"type": "ping"})
			c.readType("pong")
		}
		send(`4`)
		a1.readMessage(4, `4`)
		a2.readMessage(4, `4`)
		a1.sendJSON(map[string]any{"type": "ack", "seq": 4})
		a2.sendJSON(map[string]any{"type": "ack", "seq": 4})
		if r := receipt(); r.Acked != 2 {
			t.Fatalf("receipt %+v, want acked 2", r)
		}

		// A context that has ended ends the wait at once.
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if r := ts.hub.sendWait(ctx, hub.Target{UID: "a"}, msg(`5`), hub.SendOptions{WaitAck: time.Hour}); r.Delivered != 3 || r.Acked != 0 {
			t.Fatalf("receipt with an ended context %+v", r)
		}
		// Without WaitAck nothing is waited for or counted.
		if r := ts.hub.SendToUID("a", msg(`6`)); r.Acked != 0 {
			t.Fatalf("receipt without a wait %+v", r)
		}
	})
}

// TestWaitAckCountsAcksBeforeTheWaitEnds: when the wait ends (context or
// WaitAck), every ack that came before is counted.
func TestWaitAckCountsAcksBeforeTheWaitEnds(t *testing.T) {
	ts := newTestServer(t, hub.Settings{})
	acker, silent := ts.jsonUser("a"), ts.jsonUser("a")
	ctx, stopWaiting := context.WithCancel(context.Background())
	defer stopWaiting()
	receipts := make(chan hub.Receipt, 1)
	go func() {
		receipts <- ts.hub.sendWait(ctx, hub.Target{UID: "a"}, msg(`"ack me"`), hub.SendOptions{WaitAck: time.Hour})
	}()
	f := acker.readMessage(1, `"ack me"`)
	silent.readMessage(1, `"ack me"`)
	acker.sendJSON(map[string]any{"type": "ack", "seq": f.Seq})
	acker.sendJSON(map[string]any{"type": "ping"})
	acker.readType("pong") // the ack before it has been read
	stopWaiting()          // silent never acks
	select {
	case r := <-receipts:
		if r.Acked != 1 {
			t.Fatalf("receipt %+v, want acked 1", r)
		}
	case <-time.After(guard):
		t.Fatal("Send did not return when its context ended")
	}
}
