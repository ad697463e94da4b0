package pushhub_test

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/pushhub/caddy-pushhub/internal/harness"
)

// churnCycle is one client's life: connect, log in, receive a push, leave,
// every fifth with a TCP reset instead of a close handshake.
func churnCycle(ws0 string, api harness.API, i int) error {
	ws, err := harness.DialErr(ws0+"/ws", nil)
	if err != nil {
		return err
	}
	defer ws.Close()
	uid := fmt.Sprintf("churn-%d", i)
	_ = ws.NetConn().SetDeadline(time.Now().Add(harness.Guard))
	if err := ws.WriteJSON(map[string]string{"type": "login", "uid": uid}); err != nil {
		return err
	}
	next := func(what, typ, data string) error {
		_, b, err := ws.ReadMessage()
		if err != nil {
			return fmt.Errorf("%s: waiting for %s: %v", uid, what, err)
		}
		if f, err := harness.DecodeFrame(b); err != nil || f.Type != typ || (data != "" && string(f.Data) != data) {
			return fmt.Errorf("%s: got %q (%v), want %s", uid, b, err, what)
		}
		return nil
	}
	if err := next("the welcome", "welcome", ""); err != nil {
		return err
	}
	rc, err := api.SendErr(fmt.Sprintf(`{"uid":%q,"data":%d}`, uid, i))
	if err != nil {
		return err
	}
	if rc.Delivered != 1 || rc.Dropped != 0 {
		return fmt.Errorf("%s: receipt %+v", uid, rc)
	}
	if err := next("the push", "message", fmt.Sprint(i)); err != nil {
		return err
	}
	if i%5 == 4 {
		harness.Reset(ws)
		return nil
	}
	// A close handshake: the server echoes the close frame.
	if err := ws.WriteControl(websocket.CloseMessage,
		websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(harness.Guard)); err != nil {
		return err
	}
	for {
		if _, _, err := ws.ReadMessage(); err != nil {
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != websocket.CloseNormalClosure {
				return fmt.Errorf("%s: closing: %v, want the server's close 1000", uid, err)
			}
			return nil
		}
	}
}

// churn runs cycles from..to-1 on workers goroutines.
func churn(ws string, api harness.API, from, to, workers int) error {
	var next atomic.Int64
	next.Store(int64(from))
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= to {
					return
				}
				if err := churnCycle(ws, api, i); err != nil {
					errs <- err
					next.Store(int64(to)) // stop the others
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// TestChurnNoLeaks: 3000 connect / login / push / disconnect cycles (one in
// five ending in a TCP reset) leave no goroutine, memory or hub entry
// behind.
func TestChurnNoLeaks(t *testing.T) {
	h := harness.Start(t, harness.OneHub())
	api := h.API()
	const (
		warmup  = 200
		cycles  = 3000
		workers = 4
	)
	settled := func() {
		t.Helper()
		harness.Eventually(t, "the hub is empty", func() (bool, string) {
			st := api.Stats(t)
			return st.Connections == 0 && st.Pending == 0 && st.UIDs == 0 && st.OfflineKept == 0, fmt.Sprintf("%+v", st)
		})
		harness.CloseIdleConnections()
	}

	// Warm up pools and caches, then take the baseline.
	if err := churn(h.WS, api, 0, warmup, workers); err != nil {
		t.Fatal(err)
	}
	settled()
	time.Sleep(100 * time.Millisecond) // let exiting goroutines finish before the baseline (not an assertion)
	baseG := harness.Goroutines()
	baseHeap, _ := harness.Heap()

	if err := churn(h.WS, api, warmup, warmup+cycles, workers); err != nil {
		t.Fatal(err)
	}
	settled()
	for deadline := time.Now().Add(harness.Guard); ; time.Sleep(50 * time.Millisecond) {
		g := harness.Goroutines()
		heap, _ := harness.Heap()
		if g <= baseG+50 && heap <= baseHeap+8*harness.MiB {
			t.Logf("goroutines: baseline %d, after %d; live heap: baseline %.2f MiB, after %.2f MiB",
				baseG, g, float64(baseHeap)/harness.MiB, float64(heap)/harness.MiB)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %d cycles: %d goroutines (baseline %d), heap %.1f MiB (baseline %.1f MiB)\n%s",
				cycles, g, baseG, float64(heap)/harness.MiB, float64(baseHeap)/harness.MiB, harness.Stacks())
		}
	}
}
