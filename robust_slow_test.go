package pushhub_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRobustSlowConsumer: clients that stop reading during a burst of
// ~8 KiB broadcasts are cut off (4004) without costing the others a single
// message, and the server's memory does not grow with the burst.
func TestRobustSlowConsumer(t *testing.T) {
	hub := rbHubName("slow")
	ws := fmt.Sprintf(`
	push_hub /ws {
		hub %s
		auth first_message
		send_queue 16
	}`, hub)
	api := fmt.Sprintf(`
	push_api {
		hub %s
		key %s
	}`, hub, rbKey)
	rbLoad(t, rbSites(ws, api))
	const (
		burst  = 2000
		goodN  = 3
		stallN = 4 // several, so that unbounded queues would show in the heap
	)

	// The good clients read everything, checking order as they go.
	type result struct {
		name  string
		count int
		err   error
	}
	results := make(chan result, goodN)
	for i := range goodN {
		c := rbDial(t, fmt.Sprintf("good%d", i), "/ws", nil)
		c.login(c.name, nil)
		go func() {
			res := result{name: c.name}
			defer func() { results <- res }()
			for res.count < burst {
				_ = c.ws.SetReadDeadline(time.Now().Add(rbGuard))
				_, b, err := c.ws.ReadMessage()
				if err != nil {
					res.err = err
					return
				}
				var f struct {
					Type string `json:"type"`
					Data string `json:"data"`
				}
				if err := json.Unmarshal(b, &f); err != nil || f.Type != "message" {
					res.err = fmt.Errorf("got %.100q (%v), want a message", b, err)
					return
				}
				n, _, _ := strings.Cut(f.Data, ":")
				if n != strconv.Itoa(res.count+1) {
					res.err = fmt.Errorf("got message %s after %d", n, res.count)
					return
				}
				res.count++
			}
		}()
	}
	// The stalled clients log in, then never read again. Their receive
	// buffers are fixed (no autotuning, which on loopback would take tens
	// of MiB before the server's writes block), yet above loopback's 64 KiB
	// segment size, so that draining them at the end stays quick.
	stalled := make([]*rbRaw, stallN)
	for i := range stalled {
		stalled[i] = rbRawDial(t, fmt.Sprintf("stalled%d", i), "/ws", 256<<10)
		stalled[i].login(stalled[i].name)
	}
	if st := rbGetStats(t, ""); st.Connections != goodN+stallN || st.SlowConsumers != 0 {
		t.Fatalf("stats %+v, want %d connections and no slow consumer yet", st, goodN+stallN)
	}

	baseAlloc, baseInuse := rbHeap()
	pad := strings.Repeat("x", 8<<10)
	dropped := 0
	for i := 1; i <= burst; i++ {
		rc := rbSend(t, "/send", fmt.Sprintf(`{"all":true,"data":"%d:%s"}`, i, pad))
		if rc.Delivered < goodN || rc.Delivered+rc.Dropped > goodN+stallN {
			t.Fatalf("push %d: receipt %v, want the %d good clients reached", i, rc, goodN)
		}
		dropped += rc.Dropped
	}
	for range goodN {
		select {
		case r := <-results:
			if r.err != nil || r.count != burst {
				t.Fatalf("%s: received %d of %d (%v)", r.name, r.count, burst, r.err)
			}
		case <-time.After(rbGuard):
			t.Fatalf("the good clients did not receive the burst within %s", rbGuard)
		}
	}
	// Measured while the stalled clients still hold their sockets open: a
	// queue that grew with the burst would still be in the heap.
	afterAlloc, afterInuse := rbHeap()
	t.Logf("heap in use %d MiB before the burst, %d MiB after (allocated %d -> %d MiB)",
		baseInuse/rbMiB, afterInuse/rbMiB, baseAlloc/rbMiB, afterAlloc/rbMiB)
	if afterInuse > baseInuse+64*rbMiB {
		t.Fatalf("heap in use grew from %d MiB to %d MiB with the burst", baseInuse/rbMiB, afterInuse/rbMiB)
	}
	if st := rbGetStats(t, ""); st.SlowConsumers != stallN {
		t.Fatalf("stats %+v, want exactly %d slow consumers", st, stallN)
	}

	// Each stalled client finds what the kernel buffered, at most a close
	// frame 4004, then the server's hang-up.
	for _, r := range stalled {
		frames := 0
		for {
			op, p, err := r.readFrame()
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					t.Fatalf("%s: the server did not close the connection", r.name)
				}
				if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, syscall.ECONNRESET) {
					t.Fatalf("%s: %v, want the server's hang-up", r.name, err)
				}
				break
			}
			if op == rbOpClose {
				if code, reason := rbCloseCode(p); code != 4004 {
					t.Fatalf("%s: closed with %d %q, want 4004", r.name, code, reason)
				}
				r.expectHangup()
				break
			}
			if op != rbOpText {
				t.Fatalf("%s: got opcode %d", r.name, op)
			}
			frames++
		}
		if frames >= burst {
			t.Fatalf("%s: got all %d messages without reading: it was never stalled", r.name, frames)
		}
	}
	eventuallyWithin(t, rbGuard, "only the good clients remain", func() (bool, string) {
		st := rbGetStats(t, "")
		return st.Connections == goodN, fmt.Sprintf("%+v", st)
	})
	if dropped != stallN {
		t.Fatalf("the receipts counted %d drops, want %d: one per slow consumer cut off", dropped, stallN)
	}
}

// TestRobustDeadPeers: peers that go silent are closed once ping_interval
// plus pong_timeout pass without a frame or a pong, and healthy idle peers
// are not.
func TestRobustDeadPeers(t *testing.T) {
	hub := rbHubName("dead")
	ws := fmt.Sprintf(`
	push_hub /ws {
		hub %s
		auth first_message
		ping_interval 1s
		pong_timeout 1s
	}`, hub)
	api := fmt.Sprintf(`
	push_api {
		hub %s
		key %s
	}`, hub, rbKey)
	rbLoad(t, rbSites(ws, api))
	obs := rbDial(t, "observer", "/ws", nil)
	obs.login("observer", nil)
	obsR := obs.startReader() // idle but alive: its client answers pings
	n := 0
	othersStillServed := func(t *testing.T) {
		t.Helper()
		n++
		data := jsonText(fmt.Sprintf("after %d", n))
		rbSend(t, "/send", `{"all":true,"data":`+data+`}`)
		obsR.expectMessage(t, data)
	}
	gone := func(t *testing.T, uid string) {
		t.Helper()
		rbWaitOnline(t, "", uid, 0)
		rbExpectBody(t, rbAPI(t, "POST", "/send", `{"uid":"`+uid+`","data":1}`, nil), 200, `{"delivered":0,"dropped":0,"stored":false}`)
	}

	t.Run("silent socket after login", func(t *testing.T) {
		r := rbRawDial(t, "dead-raw", "/ws", 0)
		r.login("dead-raw")
		r.expectClose(4006) // it reads, but never writes: no pong
		gone(t, "dead-raw")
		othersStillServed(t)
	})
	t.Run("client that stopped answering pings", func(t *testing.T) {
		c := rbDial(t, "dead-ws", "/ws", nil)
		c.login("dead-ws", nil)
		c.ws.SetPingHandler(func(string) error { return nil })
		c.expectClose(4006)
		gone(t, "dead-ws")
		othersStillServed(t)
	})
	t.Run("stalls halfway through a frame", func(t *testing.T) {
		r := rbRawDial(t, "half", "/ws", 0)
		r.login("half")
		full := rbFrameBytes(rbOpText, []byte(`{"type":"ping","id":1}`))
		r.writeBytes(full[:4]) // the header, half the mask key: then nothing
		for {
			op, p, err := r.readFrame()
			if err == nil && op == rbOpPing {
				continue
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("the server did not close the connection")
			}
			if err == nil && op != rbOpClose {
				t.Fatalf("got opcode %d %q, want the connection closed", op, p)
			}
			break
		}
		gone(t, "half")
		othersStillServed(t)
	})
	// The observer, idle throughout, was pinged and stayed.
	rbWaitOnline(t, "", "observer", 1)
	select {
	case err := <-obsR.done:
		t.Fatalf("observer: the connection ended: %v", err)
	default:
	}
}
