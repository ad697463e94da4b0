package pushhub_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pushhub/caddy-pushhub/internal/harness"
)

// TestSlowConsumer: clients that stop reading during a burst of large
// broadcasts are cut off (4004) without costing the others a single
// message; what they were sent before, they find in order; the receipts
// and /stats count them; the server's memory does not grow with the burst.
func TestSlowConsumer(t *testing.T) {
	h := harness.Start(t, harness.OneHub("send_queue 16"))
	api := h.API()
	const (
		// 300 broadcasts of 64 KiB: 19 MiB to each client, several times
		// what the kernel buffers for one that does not read (its receive
		// buffer below, the server's send buffer autotuned up to 4 MiB).
		burst  = 300
		size   = 64 << 10
		goodN  = 3
		stallN = 4 // several, so that queues that grew would show in the heap
	)

	// The good clients read everything, checking order as they go.
	type result struct {
		name  string
		count int
		err   error
	}
	results := make(chan result, goodN)
	for i := range goodN {
		c := harness.Dial(t, fmt.Sprintf("good%d", i), h.WS+"/ws", nil)
		c.Login(c.Name)
		go func() {
			res := result{name: c.Name}
			defer func() { results <- res }()
			for res.count < burst {
				_ = c.SetReadDeadline(time.Now().Add(harness.Guard))
				_, b, err := c.ReadMessage()
				if err != nil {
					res.err = err
					return
				}
				if err := expectNumbered(b, res.count+1); err != nil {
					res.err = err
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
	stalled := make([]*harness.RawConn, stallN)
	for i := range stalled {
		stalled[i] = harness.DialRaw(t, fmt.Sprintf("stalled%d", i), h.WS+"/ws", 256<<10)
		stalled[i].Login(stalled[i].Name)
	}
	if st := api.Stats(t); st.Connections != goodN+stallN || st.SlowConsumers != 0 {
		t.Fatalf("stats %+v, want %d connections and no slow consumer yet", st, goodN+stallN)
	}

	baseAlloc, baseInuse := harness.Heap()
	pad := strings.Repeat("x", size)
	dropped, lastCut := 0, 0
	for i := 1; i <= burst; i++ {
		rc := api.Send(t, fmt.Sprintf(`{"all":true,"data":"%d:%s"}`, i, pad))
		if rc.Delivered < goodN || rc.Delivered+rc.Dropped > goodN+stallN {
			t.Fatalf("push %d: receipt %+v, want the %d good clients reached", i, rc, goodN)
		}
		if dropped += rc.Dropped; rc.Dropped > 0 {
			lastCut = i
		}
	}
	for range goodN {
		select {
		case r := <-results:
			if r.err != nil || r.count != burst {
				t.Fatalf("%s: received %d of %d (%v)", r.name, r.count, burst, r.err)
			}
		case <-time.After(harness.Guard):
			t.Fatalf("the good clients did not receive the burst within %s", harness.Guard)
		}
	}
	// Measured while the stalled clients still hold their sockets open: a
	// queue that grew with the burst would still be in the heap.
	afterAlloc, afterInuse := harness.Heap()
	t.Logf("heap in use %d MiB before the burst, %d MiB after (allocated %d -> %d MiB)",
		baseInuse/harness.MiB, afterInuse/harness.MiB, baseAlloc/harness.MiB, afterAlloc/harness.MiB)
	// Queues that grew would hold what was pushed after the stalled
	// clients' buffers filled: most of the burst.
	if afterInuse > baseInuse+burst*size/2 {
		t.Fatalf("heap in use grew from %d MiB to %d MiB with a burst of %d MiB",
			baseInuse/harness.MiB, afterInuse/harness.MiB, burst*size/harness.MiB)
	}
	if st := api.Stats(t); st.SlowConsumers != stallN {
		t.Fatalf("stats %+v, want exactly %d slow consumers", st, stallN)
	}
	if dropped != stallN {
		t.Fatalf("the receipts counted %d drops, want %d: one per slow consumer cut off", dropped, stallN)
	}

	// Each stalled client finds what the kernel buffered, in order, at most
	// a close frame 4004 (it may not fit), then the server's hang-up.
	for _, r := range stalled {
		frames := 0
		for {
			op, p, err := r.ReadFrame()
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					t.Fatalf("%s: the server did not close the connection", r.Name)
				}
				if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, syscall.ECONNRESET) {
					t.Fatalf("%s: %v, want the server's hang-up", r.Name, err)
				}
				break
			}
			if op == harness.OpClose {
				if code, reason := harness.CloseCode(p); code != 4004 {
					t.Fatalf("%s: closed with %d %q, want 4004", r.Name, code, reason)
				}
				r.ExpectHangup()
				break
			}
			if op != harness.OpText {
				t.Fatalf("%s: got opcode %d", r.Name, op)
			}
			if err := expectNumbered(p, frames+1); err != nil {
				t.Fatalf("%s: %v", r.Name, err)
			}
			frames++
		}
		// Cut off by push lastCut at the latest, it got none from there on.
		if frames >= lastCut {
			t.Fatalf("%s: got %d messages, but all were cut off by push %d", r.Name, frames, lastCut)
		}
	}
	harness.Eventually(t, "only the good clients remain", func() (bool, string) {
		st := api.Stats(t)
		return st.Connections == goodN, fmt.Sprintf("%+v", st)
	})
}

// expectNumbered checks that a frame is the json message "<n>:<padding>",
// reading only its head: the frames are large.
func expectNumbered(b []byte, n int) error {
	head := b[:min(len(b), 80)]
	_, data, found := bytes.Cut(head, []byte(`,"data":"`))
	if !bytes.HasPrefix(head, []byte(`{"type":"message","seq":`)) || !found {
		return fmt.Errorf("got %.80q, want a message", b)
	}
	if got, _, _ := bytes.Cut(data, []byte(":")); string(got) != strconv.Itoa(n) {
		return fmt.Errorf("got message %s, want %d", got, n)
	}
	return nil
}
