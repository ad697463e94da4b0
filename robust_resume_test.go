package pushhub_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// rbResumeSites is a hub with history on (json and text endpoints, the same
// settings: a hub's settings are shared by its endpoints) and one without.
func rbResumeSites(hub, noHist, history string) string {
	ws := strings.NewReplacer("HUB", hub, "NOHIST", noHist, "HISTORY", history).Replace(`
	push_hub /ws {
		hub HUB
		auth first_message
		history HISTORY
	}
	push_hub /text {
		hub HUB
		protocol text
		auth first_message
		history HISTORY
	}
	push_hub /nohist {
		hub NOHIST
		auth first_message
	}`)
	api := strings.NewReplacer("HUB", hub, "NOHIST", noHist, "KEY", rbKey).Replace(`
	handle /nohist/* {
		push_api {
			hub NOHIST
			key KEY
		}
	}
	handle {
		push_api {
			hub HUB
			key KEY
		}
	}`)
	return rbSites(ws, api)
}

// TestRobustResumeUnderLoad: a client that disconnects and reconnects with
// the last seq it saw, several times, while a pusher keeps pushing numbered
// messages, ends up with exactly 1..N: nothing missed, nothing twice, in
// order, across every seam.
func TestRobustResumeUnderLoad(t *testing.T) {
	hub := rbHubName("resume")
	rbLoad(t, rbResumeSites(hub, rbHubName("nohist"), "5000 1m"))
	const uid = "resumer"

	c := rbDial(t, "resumer#0", "/ws", nil)
	w := c.login(uid, nil)
	if w.Resume != nil {
		t.Fatalf("a login without since got a resume: %s", w.raw)
	}
	base := w.Seq

	// The pusher pushes 1, 2, 3, ... one after the other until told to stop.
	var pushed, offline atomic.Int64
	stop := make(chan struct{})
	pushDone := make(chan error, 1)
	go func() {
		for i := int64(1); ; i++ {
			select {
			case <-stop:
				pushDone <- nil
				return
			default:
			}
			rc, err := rbSendErr("/send", fmt.Sprintf(`{"uid":%q,"data":%d}`, uid, i))
			if err != nil {
				pushDone <- err
				return
			}
			if !rc.Stored || rc.Dropped != 0 || rc.Delivered > 1 || rc.Acked != nil {
				pushDone <- fmt.Errorf("push %d: receipt %v, want stored, nothing dropped, at most one delivery", i, rc)
				return
			}
			if rc.Delivered == 0 {
				offline.Add(1)
			}
			pushed.Store(i)
		}
	}()
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
	}()

	var got int64 // data values received: exactly 1..got so far
	last := base  // the last seq seen
	take := func(f rbFrame) {
		t.Helper()
		n, err := f.rbInt()
		if err != nil {
			t.Fatal(err)
		}
		if f.Seq != last+1 || n != got+1 {
			t.Fatalf("after %d (seq %d) got %d (seq %d): a gap or a duplicate (frame %s)", got, last, n, f.Seq, f.raw)
		}
		got, last = n, f.Seq
	}

	const rounds = 6
	for round := 1; round <= rounds; round++ {
		// Read some live messages, then go away while more are in flight.
		for target := got + 5; got < target; {
			take(c.read())
		}
		switch round % 3 {
		case 0:
			c.closeNormally()
		case 1:
			c.reset() // TCP reset
		case 2:
			_ = c.ws.Close() // FIN, no close frame
		}
		rbWaitOnline(t, "", uid, 0)
		// Make sure some pushes land while the uid is offline: push p+1 may
		// have been on its way to the old connection, p+2 to p+4 cannot.
		p := pushed.Load()
		eventuallyWithin(t, rbGuard, "the pusher pushes while the client is away", func() (bool, string) {
			return pushed.Load() >= p+4, fmt.Sprintf("%d pushed", pushed.Load())
		})

		// Come back with the last seq seen: the login frame's since on odd
		// rounds, ?since= on even ones.
		name := fmt.Sprintf("resumer#%d", round)
		since := last
		if round%2 == 1 {
			c = rbDial(t, name, "/ws", nil)
			w = c.login(uid, &since)
		} else {
			c = rbDial(t, name, fmt.Sprintf("/ws?since=%d", since), nil)
			w = c.login(uid, nil)
		}
		r := w.Resume
		if r == nil || r.Since != since || !r.Recovered || r.Reason != "" ||
			r.Replayed < 3 || uint64(r.Replayed) != w.Seq-since {
			t.Fatalf("round %d: welcome %s, want resume since %d, recovered, every missed message (%d or more) replayed",
				round, w.raw, since, 3)
		}
		// The replayed messages come first, in order (take checks it),
		// and end exactly at the welcome's position.
		for range r.Replayed {
			take(c.read())
		}
		if last != w.Seq {
			t.Fatalf("round %d: the replay ended at seq %d, the welcome said %d", round, last, w.Seq)
		}
	}

	close(stop)
	if err := <-pushDone; err != nil {
		t.Fatal(err)
	}
	n := pushed.Load()
	for got < n {
		take(c.read())
	}
	// Nothing more than 1..n: the next frame is the next push.
	rbSend(t, "/send", fmt.Sprintf(`{"uid":%q,"data":%d}`, uid, n+1))
	take(c.read())
	if offline.Load() < 3*rounds {
		t.Fatalf("only %d of %d pushes found the uid offline, want at least %d (3 per reconnect)", offline.Load(), n, 3*rounds)
	}
}

// rbExpectResume asserts a welcome frame exactly.
func rbExpectResume(t *testing.T, w rbFrame, uid string, seq uint64, resume string) {
	t.Helper()
	epoch := ""
	if w.Epoch != "" {
		epoch = `,"epoch":` + jsonText(w.Epoch)
	}
	want := fmt.Sprintf(`{"type":"welcome","uid":%s,"conn_id":%s,"seq":%d%s,"resume":%s}`, jsonText(uid), jsonText(w.ConnID), seq, epoch, resume)
	if w.raw != want {
		t.Fatalf("got welcome\n\t%s\nwant\n\t%s", w.raw, want)
	}
}

// TestRobustResumeReasons: the welcome's resume object in every case, and
// the text protocol unchanged by history.
func TestRobustResumeReasons(t *testing.T) {
	hub, noHist := rbHubName("reasons"), rbHubName("nohist")
	rbLoad(t, rbResumeSites(hub, noHist, "3 1m"))
	stored := `{"delivered":0,"dropped":0,"stored":true}`
	push := func(prefix, uid string, data int, want string) {
		t.Helper()
		r := rbAPI(t, http.MethodPost, prefix+"/send", fmt.Sprintf(`{"uid":%q,"data":%d}`, uid, data), nil)
		rbExpectBody(t, r, http.StatusOK, want)
	}

	t.Run("recovered", func(t *testing.T) {
		c := rbDial(t, "r#1", "/ws", nil)
		s := c.login("r", nil).Seq
		push("", "r", 1, `{"delivered":1,"dropped":0,"stored":true}`)
		if f := c.expectMessage("1"); f.Seq != s+1 {
			t.Fatalf("seq %d, want %d", f.Seq, s+1)
		}
		c.closeNormally()
		rbWaitOnline(t, "", "r", 0)
		push("", "r", 2, stored)
		push("", "r", 3, stored)

		c = rbDial(t, "r#2", fmt.Sprintf("/ws?since=%d", s+1), nil)
		rbExpectResume(t, c.login("r", nil), "r", s+3, fmt.Sprintf(`{"since":%d,"recovered":true,"replayed":2}`, s+1))
		for i := uint64(2); i <= 3; i++ {
			if f := c.expectMessage(fmt.Sprint(i)); f.Seq != s+i {
				t.Fatalf("seq %d, want %d", f.Seq, s+i)
			}
		}
		push("", "r", 4, `{"delivered":1,"dropped":0,"stored":true}`)
		if f := c.expectMessage("4"); f.Seq != s+4 {
			t.Fatalf("seq %d, want %d", f.Seq, s+4)
		}

		// Missed 10 with room for 3: too_old, the 3 kept are replayed.
		c.closeNormally()
		rbWaitOnline(t, "", "r", 0)
		for i := 5; i <= 14; i++ {
			push("", "r", i, stored)
		}
		c = rbDial(t, "r#3", "/ws", nil)
		since := s + 4
		rbExpectResume(t, c.login("r", &since), "r", s+14, fmt.Sprintf(`{"since":%d,"recovered":false,"replayed":3,"reason":"too_old"}`, since))
		for i := uint64(12); i <= 14; i++ {
			if f := c.expectMessage(fmt.Sprint(i)); f.Seq != s+i {
				t.Fatalf("seq %d, want %d", f.Seq, s+i)
			}
		}

		// since ahead of the numbering: unknown_position, nothing replayed,
		// the current position given; the next frame is the next push.
		d := rbDial(t, "r#4", "/ws", nil)
		ahead := s + 1000
		rbExpectResume(t, d.login("r", &ahead), "r", s+14, fmt.Sprintf(`{"since":%d,"recovered":false,"replayed":0,"reason":"unknown_position"}`, ahead))
		push("", "r", 15, `{"delivered":2,"dropped":0,"stored":true}`)
		for _, x := range []*rbClient{c, d} {
			if f := x.expectMessage("15"); f.Seq != s+15 {
				t.Fatalf("%s: seq %d, want %d", x.name, f.Seq, s+15)
			}
		}
		// Up to date: recovered, nothing replayed.
		e := rbDial(t, "r#5", "/ws", nil)
		now := s + 15
		rbExpectResume(t, e.login("r", &now), "r", s+15, fmt.Sprintf(`{"since":%d,"recovered":true,"replayed":0}`, now))
	})

	t.Run("history_off", func(t *testing.T) {
		a := rbDial(t, "n#1", "/nohist", nil)
		if w := a.login("n", nil); w.Seq != 0 || w.Resume != nil {
			t.Fatalf("welcome %s, want seq 0 and no resume", w.raw)
		}
		push("/nohist", "n", 1, `{"delivered":1,"dropped":0,"stored":false}`)
		push("/nohist", "n", 2, `{"delivered":1,"dropped":0,"stored":false}`)
		a.expectMessage("1")
		a.expectMessage("2")
		// A second connection of the uid resumes from 1: it cannot be
		// filled without history.
		b := rbDial(t, "n#2", "/nohist", nil)
		one := uint64(1)
		rbExpectResume(t, b.login("n", &one), "n", 2, `{"since":1,"recovered":false,"replayed":0,"reason":"history_off"}`)
		push("/nohist", "n", 3, `{"delivered":2,"dropped":0,"stored":false}`)
		b.expectMessage("3")
		// An offline uid gets nothing stored.
		push("/nohist", "nobody", 1, `{"delivered":0,"dropped":0,"stored":false}`)

		// The usual case: every connection of the uid went away and one
		// comes back with the last seq it saw. The endpoint keeps no
		// history, and the welcome must say so.
		a.closeNormally()
		b.closeNormally()
		rbWaitOnline(t, "/nohist", "n", 0)
		c := rbDial(t, "n#3", "/nohist", nil)
		three := uint64(3)
		w := c.login("n", &three)
		if w.Resume == nil || w.Resume.Reason != "history_off" || w.Resume.Recovered || w.Resume.Replayed != 0 {
			t.Fatalf("welcome %s, want resume {since 3, recovered false, replayed 0, reason history_off}", w.raw)
		}
	})

	t.Run("text protocol", func(t *testing.T) {
		// No sequence numbers, no resume, the recipe's frames exactly, even
		// with ?since= and on a hub with history.
		c := rbDial(t, "tx#1", "/text?since=5", nil)
		c.sendText("tx")
		c.expectText("login success, your uid is tx")
		rbExpectBody(t, rbAPI(t, http.MethodPost, "/send", `{"uid":"tx","data":"hello"}`, nil), http.StatusOK,
			`{"delivered":1,"dropped":0,"stored":true}`)
		c.expectText("hello")
		rbSend(t, "/send", `{"uid":"tx","data":{"a":1}}`)
		c.expectText(`{"a":1}`)
		rbSend(t, "/send", `{"uid":"tx","data":42}`)
		c.expectText(`42`)
		c.closeNormally()
		rbWaitOnline(t, "", "tx", 0)
		rbSend(t, "/send", `{"uid":"tx","data":"missed"}`)
		c = rbDial(t, "tx#2", "/text?since=1", nil)
		c.sendText("tx")
		c.expectText("login success, your uid is tx")
		rbSend(t, "/send", `{"uid":"tx","data":"live"}`)
		c.expectText("live")
	})
}

// TestRobustHistoryTTL: a push to an offline uid is stored and delivered
// when the uid comes back within the ttl, not after; /stats counts the
// history and goes back to 0 when it expires.
func TestRobustHistoryTTL(t *testing.T) {
	rbLoad(t, rbResumeSites(rbHubName("ttl"), rbHubName("nohist"), "10 1s"))
	const uid = "ttl"
	stored := `{"delivered":0,"dropped":0,"stored":true}`
	c := rbDial(t, "ttl#1", "/ws", nil)
	first := c.login(uid, nil)
	s := first.Seq
	c.closeNormally()
	rbWaitOnline(t, "", uid, 0)

	rbExpectBody(t, rbAPI(t, http.MethodPost, "/send", `{"uid":"ttl","data":"A"}`, nil), http.StatusOK, stored)
	st := rbGetStats(t, "")
	if st.HistoryMessages != 1 || st.HistoryBytes <= 0 || st.OfflineKept != 1 || st.Connections != 0 {
		t.Fatalf("stats %+v, want 1 message stored, its bytes counted, 1 offline uid kept", st)
	}
	c = rbDial(t, "ttl#2", "/ws", nil)
	rbExpectResume(t, c.login(uid, &s), uid, s+1, fmt.Sprintf(`{"since":%d,"recovered":true,"replayed":1}`, s))
	c.expectMessage(`"A"`)
	c.closeNormally()
	rbWaitOnline(t, "", uid, 0)

	rbExpectBody(t, rbAPI(t, http.MethodPost, "/send", `{"uid":"ttl","data":"B"}`, nil), http.StatusOK, stored)
	if st := rbGetStats(t, ""); st.HistoryMessages < 1 || st.HistoryBytes <= 0 {
		t.Fatalf("stats %+v, want B stored", st)
	}
	// The reaper expires it: memory reclaimed, the offline uid forgotten.
	eventuallyWithin(t, rbGuard, "history expires", func() (bool, string) {
		st := rbGetStats(t, "")
		return st.HistoryMessages == 0 && st.HistoryBytes == 0 && st.OfflineKept == 0, fmt.Sprintf("%+v", st)
	})
	// The uid's numbering expired with it: coming back from it is a new
	// epoch, and the client is told its gap could not be filled.
	c = rbDial(t, "ttl#3", "/ws", nil)
	since := s + 1
	c.sendJSON(map[string]any{"type": "login", "uid": uid, "since": since, "epoch": first.Epoch})
	w := c.read()
	if w.Epoch == "" || w.Epoch == first.Epoch {
		t.Fatalf("welcome %s: epoch %q, want a new numbering, not %q", w.raw, w.Epoch, first.Epoch)
	}
	rbExpectResume(t, w, uid, w.Seq, fmt.Sprintf(`{"since":%d,"recovered":false,"replayed":0,"reason":"epoch_changed"}`, since))
	rbSend(t, "/send", `{"uid":"ttl","data":"C"}`)
	if f := c.expectMessage(`"C"`); f.Seq != w.Seq+1 {
		t.Fatalf("seq %d, want %d", f.Seq, w.Seq+1)
	}
}

// TestRobustResumeThenPublish: a chat client reconnects with since and, in
// the same write as its login, sends the message its outbox held. It must
// get the welcome, every missed message, then its own message — even when
// it missed more messages than send_queue holds: the replay is bounded by
// history, not by the send queue, and a client reading at full speed is not
// a slow consumer.
func TestRobustResumeThenPublish(t *testing.T) {
	hub := rbHubName("outbox")
	ws := strings.ReplaceAll(`
	push_hub /ws {
		hub HUB
		auth first_message
		history 100 1m
		send_queue 16
		allow_client_publish
	}`, "HUB", hub)
	api := fmt.Sprintf(`
	push_api {
		hub %s
		key %s
	}`, hub, rbKey)
	rbLoad(t, rbSites(ws, api))
	const missed = 40
	for round := 1; round <= 5; round++ {
		uid := fmt.Sprintf("chat%d", round)
		c := rbDial(t, uid+"#1", "/ws", nil)
		s := c.login(uid, nil).Seq
		c.closeNormally()
		rbWaitOnline(t, "", uid, 0)
		for i := 1; i <= missed; i++ {
			rbSend(t, "/send", fmt.Sprintf(`{"uid":%q,"data":%d}`, uid, i))
		}

		d := rbDial(t, uid+"#2", "/ws", nil)
		b := rbFrameBytes(rbOpText, []byte(fmt.Sprintf(`{"type":"login","uid":%q,"since":%d}`, uid, s)))
		b = append(b, rbFrameBytes(rbOpText, []byte(fmt.Sprintf(`{"type":"send","id":1,"to":%q,"data":"outbox"}`, uid)))...)
		_ = d.ws.NetConn().SetWriteDeadline(time.Now().Add(rbGuard))
		if _, err := d.ws.NetConn().Write(b); err != nil {
			t.Fatal(err)
		}
		next := func(what string) rbFrame {
			t.Helper()
			_ = d.ws.SetReadDeadline(time.Now().Add(rbGuard))
			_, m, err := d.ws.ReadMessage()
			if err != nil {
				t.Fatalf("round %d: waiting for %s: %v (a replay of %d messages with send_queue 16: the resumed client was cut off as a slow consumer before anything was written to it)",
					round, what, err, missed)
			}
			f, err := rbDecodeFrame(m)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
		rbExpectResume(t, next("the welcome"), uid, s+missed, fmt.Sprintf(`{"since":%d,"recovered":true,"replayed":%d}`, s, missed))
		for i := uint64(1); i <= missed; i++ {
			if f := next("the replay"); f.Type != "message" || f.Seq != s+i || string(f.Data) != fmt.Sprint(i) {
				t.Fatalf("round %d: got %s, want message %d", round, f.raw, i)
			}
		}
		own := fmt.Sprintf(`{"type":"message","seq":%d,"data":"outbox","from":%q}`, s+missed+1, uid)
		sent := `{"type":"sent","id":1,"delivered":1,"dropped":0}`
		got := []string{next("the own message").raw, next("the sent answer").raw}
		if !(got[0] == own && got[1] == sent) && !(got[0] == sent && got[1] == own) {
			t.Fatalf("round %d: got %q, want %s and %s", round, got, own, sent)
		}
		d.closeNormally()
	}
}
