package pushhub_test

import (
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pushhub/caddy-pushhub/internal/harness"
)

// resumeConfig is a hub with history (json and text endpoints) and a hub
// without ({$HUB2}, its API under /HUB2/).
func resumeConfig(history string) string {
	return `
{$WS_SITE} {
	push_hub /ws {
		hub {$HUB}
		auth first_message
		history ` + history + `
	}
	push_hub /text {
		hub {$HUB}
		protocol text
		auth first_message
		history ` + history + `
	}
	push_hub /nohist {
		hub {$HUB2}
		auth first_message
	}
}

` + harness.APISite("HUB", "HUB2")
}

// login logs in for uid (its since, if any, came in the URL) and returns
// the welcome, resume object and all.
func login(c *harness.Conn, uid string) harness.Frame {
	c.SendJSON(map[string]string{"type": "login", "uid": uid})
	return c.ExpectType("welcome")
}

// expectWelcome asserts a welcome frame exactly.
func expectWelcome(t *testing.T, w harness.Frame, uid string, seq uint64, resume string) {
	t.Helper()
	if want := harness.WelcomeJSON(w, uid, seq, resume); w.Raw != want {
		t.Fatalf("got welcome\n\t%s\nwant\n\t%s", w.Raw, want)
	}
}

// TestResumeUnderLoad: a client that disconnects and reconnects with the
// last seq it saw, several times, while a pusher keeps pushing numbered
// messages, ends up with exactly 1..N: nothing missed, nothing twice, in
// order, across every seam.
func TestResumeUnderLoad(t *testing.T) {
	h := harness.Start(t, resumeConfig("5000 1m"))
	api := h.API()
	const uid = "resumer"

	c := harness.Dial(t, "resumer#0", h.WS+"/ws", nil)
	first := c.Login(uid)
	base, epoch := first.Seq, first.Epoch

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
			rc, err := api.SendErr(fmt.Sprintf(`{"uid":%q,"data":%d}`, uid, i))
			if err != nil {
				pushDone <- err
				return
			}
			if !rc.Stored || rc.Dropped != 0 || rc.Delivered > 1 || rc.Acked != nil {
				pushDone <- fmt.Errorf("push %d: receipt %+v, want stored, nothing dropped, at most one delivery", i, rc)
				return
			}
			if rc.Delivered == 0 {
				offline.Add(1)
			}
			pushed.Store(i)
		}
	}()
	stopped := false
	defer func() {
		if !stopped {
			close(stop)
			<-pushDone
		}
	}()

	var got int64 // data values received: exactly 1..got so far
	last := base  // the last seq seen
	take := func(f harness.Frame) {
		t.Helper()
		n, err := f.Int()
		if err != nil {
			t.Fatal(err)
		}
		if f.Seq != last+1 || n != got+1 {
			t.Fatalf("after %d (seq %d) got %d (seq %d): a gap or a duplicate (frame %s)", got, last, n, f.Seq, f.Raw)
		}
		got, last = n, f.Seq
	}

	const rounds = 6
	for round := 1; round <= rounds; round++ {
		// Read some live messages, then go away while more are in flight.
		for target := got + 5; got < target; {
			take(c.ReadFrame())
		}
		switch round % 3 {
		case 0:
			c.CloseNormally()
		case 1:
			c.Reset() // TCP reset
		case 2:
			_ = c.Close() // FIN, no close frame
		}
		api.WaitOnline(t, uid, 0)
		// Make sure some pushes land while the uid is offline: push p+1 may
		// have been on its way to the old connection, p+2 to p+4 cannot.
		p := pushed.Load()
		harness.Eventually(t, "the pusher pushes while the client is away", func() (bool, string) {
			return pushed.Load() >= p+4, fmt.Sprintf("%d pushed", pushed.Load())
		})

		// Come back with the last seq seen and the epoch: in the login
		// frame on odd rounds, as ?since=&epoch= on even ones.
		name := fmt.Sprintf("resumer#%d", round)
		since := last
		var w harness.Frame
		if round%2 == 1 {
			c = harness.Dial(t, name, h.WS+"/ws", nil)
			w = c.LoginSince(uid, since, epoch)
		} else {
			c = harness.Dial(t, name, fmt.Sprintf("%s/ws?since=%d&epoch=%s", h.WS, since, epoch), nil)
			w = login(c, uid)
		}
		if w.Epoch != epoch {
			t.Fatalf("round %d: welcome %s, want the epoch %q kept", round, w.Raw, epoch)
		}
		r := w.Resume
		if r == nil || r.Since != since || !r.Recovered || r.Reason != "" ||
			r.Replayed < 3 || uint64(r.Replayed) != w.Seq-since {
			t.Fatalf("round %d: welcome %s, want resume since %d, recovered, every missed message (3 or more) replayed",
				round, w.Raw, since)
		}
		// The replayed messages come first, in order (take checks it),
		// and end exactly at the welcome's position.
		for range r.Replayed {
			take(c.ReadFrame())
		}
		if last != w.Seq {
			t.Fatalf("round %d: the replay ended at seq %d, the welcome said %d", round, last, w.Seq)
		}
	}

	close(stop)
	stopped = true
	if err := <-pushDone; err != nil {
		t.Fatal(err)
	}
	n := pushed.Load()
	for got < n {
		take(c.ReadFrame())
	}
	// Nothing more than 1..n: the next frame is the next push.
	api.Send(t, fmt.Sprintf(`{"uid":%q,"data":%d}`, uid, n+1))
	take(c.ReadFrame())
	if offline.Load() < 3*rounds {
		t.Fatalf("only %d of %d pushes found the uid offline, want at least %d (3 per reconnect)", offline.Load(), n, 3*rounds)
	}
}

// TestResumeReasons: the welcome's resume object in every case, and the
// text protocol unchanged by history.
func TestResumeReasons(t *testing.T) {
	h := harness.Start(t, resumeConfig("3 1m"))
	api, noHist := h.API(), h.API().Under("/HUB2")
	stored := `{"delivered":0,"dropped":0,"stored":true}`
	push := func(t *testing.T, a harness.API, uid string, data int, want string) {
		t.Helper()
		a.Post(t, "/send", fmt.Sprintf(`{"uid":%q,"data":%d}`, uid, data)).ExpectJSON(http.StatusOK, want)
	}
	expectMessage := func(t *testing.T, c *harness.Conn, data int, seq uint64) {
		t.Helper()
		if f := c.ExpectMessage(fmt.Sprint(data)); f.Seq != seq {
			t.Fatalf("%s: message %d has seq %d, want %d", c.Name, data, f.Seq, seq)
		}
	}

	t.Run("recovered, too_old, unknown_position", func(t *testing.T) {
		c := harness.Dial(t, "r#1", h.WS+"/ws", nil)
		first := c.Login("r")
		s, epoch := first.Seq, first.Epoch
		push(t, api, "r", 1, `{"delivered":1,"dropped":0,"stored":true}`)
		expectMessage(t, c, 1, s+1)
		c.CloseNormally()
		api.WaitOnline(t, "r", 0)
		push(t, api, "r", 2, stored)
		push(t, api, "r", 3, stored)

		c = harness.Dial(t, "r#2", fmt.Sprintf("%s/ws?since=%d&epoch=%s", h.WS, s+1, epoch), nil)
		expectWelcome(t, login(c, "r"), "r", s+3, fmt.Sprintf(`{"since":%d,"recovered":true,"replayed":2}`, s+1))
		expectMessage(t, c, 2, s+2)
		expectMessage(t, c, 3, s+3)
		push(t, api, "r", 4, `{"delivered":1,"dropped":0,"stored":true}`)
		expectMessage(t, c, 4, s+4)

		// Missed 10 with room for 3: too_old, the 3 kept are replayed.
		c.CloseNormally()
		api.WaitOnline(t, "r", 0)
		for i := 5; i <= 14; i++ {
			push(t, api, "r", i, stored)
		}
		c = harness.Dial(t, "r#3", h.WS+"/ws", nil)
		expectWelcome(t, c.LoginSince("r", s+4, epoch), "r", s+14, fmt.Sprintf(`{"since":%d,"recovered":false,"replayed":3,"reason":"too_old"}`, s+4))
		for i := 12; i <= 14; i++ {
			expectMessage(t, c, i, s+uint64(i))
		}

		// since ahead of the numbering: unknown_position, nothing replayed,
		// the current position given; the next frame is the next push.
		d := harness.Dial(t, "r#4", h.WS+"/ws", nil)
		expectWelcome(t, d.LoginSince("r", s+1000, epoch), "r", s+14, fmt.Sprintf(`{"since":%d,"recovered":false,"replayed":0,"reason":"unknown_position"}`, s+1000))
		push(t, api, "r", 15, `{"delivered":2,"dropped":0,"stored":true}`)
		expectMessage(t, c, 15, s+15)
		expectMessage(t, d, 15, s+15)
		// Up to date: recovered, nothing replayed. since without an epoch is
		// taken to be in the current numbering.
		e := harness.Dial(t, "r#5", h.WS+"/ws", nil)
		expectWelcome(t, e.LoginSince("r", s+15, ""), "r", s+15, fmt.Sprintf(`{"since":%d,"recovered":true,"replayed":0}`, s+15))
	})

	t.Run("history_off", func(t *testing.T) {
		a := harness.Dial(t, "n#1", h.WS+"/nohist", nil)
		if w := a.Login("n"); w.Seq != 0 {
			t.Fatalf("welcome %s, want seq 0", w.Raw)
		}
		push(t, noHist, "n", 1, harness.ReceiptJSON(1, 0))
		push(t, noHist, "n", 2, harness.ReceiptJSON(1, 0))
		a.ExpectMessage("1")
		a.ExpectMessage("2")
		// A second connection of the uid resumes from 1: it cannot be
		// filled without history.
		b := harness.Dial(t, "n#2", h.WS+"/nohist", nil)
		expectWelcome(t, b.LoginSince("n", 1, ""), "n", 2, `{"since":1,"recovered":false,"replayed":0,"reason":"history_off"}`)
		push(t, noHist, "n", 3, harness.ReceiptJSON(2, 0))
		b.ExpectMessage("3")
		// An offline uid gets nothing stored.
		push(t, noHist, "nobody", 1, harness.ReceiptJSON(0, 0))

		// The usual case: every connection of the uid went away and one
		// comes back with the last seq it saw. The endpoint keeps no
		// history, and the welcome must say so.
		a.CloseNormally()
		b.CloseNormally()
		noHist.WaitOnline(t, "n", 0)
		c := harness.Dial(t, "n#3", h.WS+"/nohist", nil)
		w := c.LoginSince("n", 3, "")
		if w.Resume == nil || w.Resume.Reason != "history_off" || w.Resume.Recovered || w.Resume.Replayed != 0 {
			t.Fatalf("welcome %s, want resume {since 3, recovered false, replayed 0, reason history_off}", w.Raw)
		}
	})

	t.Run("text protocol", func(t *testing.T) {
		// No sequence numbers, no resume, the recipe's frames exactly, even
		// with ?since= and on a hub with history.
		c := harness.Dial(t, "tx#1", h.WS+"/text?since=5", nil)
		c.LoginText("tx")
		api.Post(t, "/send", `{"uid":"tx","data":"hello"}`).ExpectJSON(http.StatusOK, `{"delivered":1,"dropped":0,"stored":true}`)
		c.Expect("hello")
		c.CloseNormally()
		api.WaitOnline(t, "tx", 0)
		api.Send(t, `{"uid":"tx","data":"missed"}`)
		c = harness.Dial(t, "tx#2", h.WS+"/text?since=1", nil)
		c.LoginText("tx")
		api.Send(t, `{"uid":"tx","data":"live"}`)
		c.Expect("live")
	})
}

// TestHistoryTTL: a push to an offline uid is stored and delivered when the
// uid comes back within the ttl, not after; /stats counts the history and
// goes back to 0 when it expires; the uid's numbering expires with it, and
// a client that comes back from it is told it is in a new epoch.
func TestHistoryTTL(t *testing.T) {
	h := harness.InProcess(t)
	h.Load(resumeConfig("10 1s"))
	api := h.API()
	const uid = "ttl"
	stored := `{"delivered":0,"dropped":0,"stored":true}`
	c := harness.Dial(t, "ttl#1", h.WS+"/ws", nil)
	first := c.Login(uid)
	s := first.Seq
	c.CloseNormally()
	api.WaitOnline(t, uid, 0)

	api.Post(t, "/send", `{"uid":"ttl","data":"A"}`).ExpectJSON(http.StatusOK, stored)
	if st := api.Stats(t); st.HistoryStored != 1 || st.HistoryBytes <= 0 || st.OfflineKept != 1 || st.Connections != 0 {
		t.Fatalf("stats %+v, want 1 message stored, its bytes counted, 1 offline uid kept", st)
	}
	c = harness.Dial(t, "ttl#2", h.WS+"/ws", nil)
	expectWelcome(t, c.LoginSince(uid, s, first.Epoch), uid, s+1, fmt.Sprintf(`{"since":%d,"recovered":true,"replayed":1}`, s))
	c.ExpectMessage(`"A"`)
	c.CloseNormally()
	api.WaitOnline(t, uid, 0)

	api.Post(t, "/send", `{"uid":"ttl","data":"B"}`).ExpectJSON(http.StatusOK, stored)
	if st := api.Stats(t); st.HistoryStored < 1 || st.HistoryBytes <= 0 {
		t.Fatalf("stats %+v, want B stored", st)
	}
	// The reaper expires it: memory reclaimed, the offline uid forgotten.
	harness.Eventually(t, "history expires", func() (bool, string) {
		st := api.Stats(t)
		return st.HistoryStored == 0 && st.HistoryBytes == 0 && st.OfflineKept == 0, fmt.Sprintf("%+v", st)
	})
	c = harness.Dial(t, "ttl#3", h.WS+"/ws", nil)
	w := c.LoginSince(uid, s+1, first.Epoch)
	if w.Epoch == "" || w.Epoch == first.Epoch {
		t.Fatalf("welcome %s: epoch %q, want a new numbering, not %q", w.Raw, w.Epoch, first.Epoch)
	}
	expectWelcome(t, w, uid, w.Seq, fmt.Sprintf(`{"since":%d,"recovered":false,"replayed":0,"reason":"epoch_changed"}`, s+1))
	api.Send(t, `{"uid":"ttl","data":"C"}`)
	if f := c.ExpectMessage(`"C"`); f.Seq != w.Seq+1 {
		t.Fatalf("seq %d, want %d", f.Seq, w.Seq+1)
	}
}

// TestResumeThenPublish: a chat client reconnects with since and, in the
// same write as its login, sends the message its outbox held. It must get
// the welcome, every missed message, then its own message, even when it
// missed more messages than send_queue holds: the replay is bounded by
// history, not by the send queue, and a client reading at full speed is
// not a slow consumer.
func TestResumeThenPublish(t *testing.T) {
	h := harness.Start(t, harness.OneHub("history 100 1m", "send_queue 16", "allow_client_publish"))
	api := h.API()
	const missed = 40
	for round := 1; round <= 5; round++ {
		uid := fmt.Sprintf("chat%d", round)
		c := harness.Dial(t, uid+"#1", h.WS+"/ws", nil)
		s := c.Login(uid).Seq
		c.CloseNormally()
		api.WaitOnline(t, uid, 0)
		for i := 1; i <= missed; i++ {
			api.Send(t, fmt.Sprintf(`{"uid":%q,"data":%d}`, uid, i))
		}

		d := harness.Dial(t, uid+"#2", h.WS+"/ws", nil)
		b := harness.FrameBytes(harness.OpText, []byte(fmt.Sprintf(`{"type":"login","uid":%q,"since":%d}`, uid, s)))
		b = append(b, harness.FrameBytes(harness.OpText, []byte(fmt.Sprintf(`{"type":"send","id":1,"to":%q,"data":"outbox"}`, uid)))...)
		_ = d.NetConn().SetWriteDeadline(time.Now().Add(harness.Guard))
		if _, err := d.NetConn().Write(b); err != nil {
			t.Fatal(err)
		}
		expectWelcome(t, d.ExpectType("welcome"), uid, s+missed, fmt.Sprintf(`{"since":%d,"recovered":true,"replayed":%d}`, s, missed))
		for i := uint64(1); i <= missed; i++ {
			if f := d.ExpectMessage(fmt.Sprint(i)); f.Seq != s+i {
				t.Fatalf("round %d: message %d has seq %d, want %d", round, i, f.Seq, s+i)
			}
		}
		own := fmt.Sprintf(`{"type":"message","seq":%d,"data":"outbox","from":%q}`, s+missed+1, uid)
		sent := `{"type":"sent","id":1,"delivered":1,"dropped":0}`
		got := []string{d.Read(), d.Read()}
		if !(got[0] == own && got[1] == sent) && !(got[0] == sent && got[1] == own) {
			t.Fatalf("round %d: got %q, want %s and %s", round, got, own, sent)
		}
		d.CloseNormally()
	}
}

// TestResumeAfterCrash: a Caddy that is killed (SIGKILL: no goodbye) drops
// its connections without a close frame. Once it runs again, a client that
// resumes is told that its numbering is gone (a new epoch), as the history
// lived in the process that died, and is served again.
func TestResumeAfterCrash(t *testing.T) {
	n := harness.StartNode(t, harness.OneHub("history 100 1m"))
	api := n.API()
	c := harness.Dial(t, "before the crash", n.WS+"/ws", nil)
	epoch := c.Login("u").Epoch
	api.Send(t, `{"uid":"u","data":1}`)
	since := c.ExpectMessage("1").Seq

	n.Kill()
	_ = c.SetReadDeadline(time.Now().Add(harness.Guard))
	c.ExpectDropped()

	n.Restart()
	d := harness.Dial(t, "after the restart", n.WS+"/ws", nil)
	w := d.LoginSince("u", since, epoch)
	if w.Epoch == "" || w.Epoch == epoch {
		t.Fatalf("welcome %s: epoch %q, want a new numbering, not %q", w.Raw, w.Epoch, epoch)
	}
	expectWelcome(t, w, "u", w.Seq, fmt.Sprintf(`{"since":%d,"recovered":false,"replayed":0,"reason":"epoch_changed"}`, since))
	api.Send(t, `{"uid":"u","data":2}`)
	if f := d.ExpectMessage("2"); f.Seq != w.Seq+1 {
		t.Fatalf("seq %d, want %d", f.Seq, w.Seq+1)
	}
}

// TestHistoryOfTheHub: history is kept per uid for the whole hub, which
// keeps the largest history any of its endpoints configures: a json client
// whose endpoint asks for 2 messages gets the 5 it missed, as the hub's
// text endpoint asks for 10.
func TestHistoryOfTheHub(t *testing.T) {
	h := harness.Start(t, `
{$WS_SITE} {
	push_hub /ws {
		hub {$HUB}
		auth first_message
		history 2 1m
	}
	push_hub /text {
		hub {$HUB}
		protocol text
		auth first_message
		history 10 1m
	}
}

`+harness.APISite("HUB"))
	api := h.API()
	c := harness.Dial(t, "before", h.WS+"/ws", nil)
	first := c.Login("h")
	c.CloseNormally()
	api.WaitOnline(t, "h", 0)
	for i := 1; i <= 5; i++ {
		api.Send(t, fmt.Sprintf(`{"uid":"h","data":%d}`, i))
	}
	c = harness.Dial(t, "after", h.WS+"/ws", nil)
	expectWelcome(t, c.LoginSince("h", first.Seq, first.Epoch), "h", first.Seq+5,
		fmt.Sprintf(`{"since":%d,"recovered":true,"replayed":5}`, first.Seq))
	for i := 1; i <= 5; i++ {
		c.ExpectMessage(fmt.Sprint(i))
	}
}
