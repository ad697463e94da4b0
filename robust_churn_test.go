package pushhub_test

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// rbChurnCycle is one client's life: connect, log in, receive a push,
// leave — every fifth with a TCP reset instead of a close handshake.
func rbChurnCycle(i int) error {
	ws, err := rbDialErr("/ws", nil)
	if err != nil {
		return err
	}
	defer ws.Close()
	uid := fmt.Sprintf("churn-%d", i)
	_ = ws.NetConn().SetDeadline(time.Now().Add(rbGuard))
	if err := ws.WriteJSON(map[string]string{"type": "login", "uid": uid}); err != nil {
		return err
	}
	_, b, err := ws.ReadMessage()
	if err != nil {
		return fmt.Errorf("%s: waiting for the welcome: %v", uid, err)
	}
	if f, err := rbDecodeFrame(b); err != nil || f.Type != "welcome" || f.UID != uid {
		return fmt.Errorf("%s: got %q (%v), want a welcome", uid, b, err)
	}
	rc, err := rbSendErr("/send", fmt.Sprintf(`{"uid":%q,"data":%d}`, uid, i))
	if err != nil {
		return err
	}
	if rc.Delivered != 1 || rc.Dropped != 0 {
		return fmt.Errorf("%s: receipt %v", uid, rc)
	}
	_, b, err = ws.ReadMessage()
	if err != nil {
		return fmt.Errorf("%s: waiting for the push: %v", uid, err)
	}
	if f, err := rbDecodeFrame(b); err != nil || f.Type != "message" || string(f.Data) != fmt.Sprint(i) {
		return fmt.Errorf("%s: got %q (%v), want the push", uid, b, err)
	}
	if i%5 == 4 {
		rbReset(ws)
		return nil
	}
	// A close handshake: the server echoes the close frame.
	if err := ws.WriteControl(websocket.CloseMessage,
		websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(rbGuard)); err != nil {
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

// rbChurn runs cycles from..to-1 on workers goroutines.
func rbChurn(from, to, workers int) error {
	var next atomic.Int64
	next.Store(int64(from))
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= to {
					return
				}
				if err := rbChurnCycle(i); err != nil {
					errs <- err
					next.Store(int64(to)) // stop the others
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// TestRobustChurnNoLeaks: 3000 connect / login / push / disconnect cycles
// (one in five ending in a TCP reset) leave no goroutine, memory or hub
// entry behind.
func TestRobustChurnNoLeaks(t *testing.T) {
	hub := rbHubName("churn")
	ws := fmt.Sprintf(`
	push_hub /ws {
		hub %s
		auth first_message
	}`, hub)
	api := fmt.Sprintf(`
	push_api {
		hub %s
		key %s
	}`, hub, rbKey)
	rbLoad(t, rbSites(ws, api))
	const (
		warmup  = 200
		cycles  = 3000
		workers = 4
	)
	settled := func() {
		t.Helper()
		rbHTTP.CloseIdleConnections()
		eventuallyWithin(t, rbGuard, "the hub is empty", func() (bool, string) {
			st := rbGetStats(t, "")
			return st.Connections == 0 && st.Pending == 0 && st.UIDs == 0 && st.OfflineKept == 0, fmt.Sprintf("%+v", st)
		})
		rbHTTP.CloseIdleConnections()
	}

	// Warm up pools and caches, then take the baseline.
	if err := rbChurn(0, warmup, workers); err != nil {
		t.Fatal(err)
	}
	settled()
	time.Sleep(100 * time.Millisecond) // let exiting goroutines finish before the baseline (not an assertion)
	baseG := runtime.NumGoroutine()
	baseHeap, _ := rbHeap()

	start := time.Now()
	if err := rbChurn(warmup, warmup+cycles, workers); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	settled()
	var g int
	var heap uint64
	deadline := time.Now().Add(rbGuard)
	for {
		g = runtime.NumGoroutine()
		heap, _ = rbHeap()
		if g <= baseG+50 && heap <= baseHeap+8*rbMiB {
			break
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("after %d cycles: %d goroutines (baseline %d), heap %.1f MiB (baseline %.1f MiB)\n%s",
				cycles, g, baseG, float64(heap)/rbMiB, float64(baseHeap)/rbMiB, buf)
		}
		time.Sleep(50 * time.Millisecond)
	}
	st := rbGetStats(t, "")
	t.Logf("churn: %d cycles (every 5th a TCP reset) on %d workers in %v", cycles, workers, took.Round(time.Millisecond))
	t.Logf("goroutines: baseline %d, after %d", baseG, g)
	t.Logf("live heap (HeapAlloc after GC): baseline %.2f MiB, after %.2f MiB", float64(baseHeap)/rbMiB, float64(heap)/rbMiB)
	t.Logf("hub after: %d connections, %d pending, %d uids", st.Connections, st.Pending, st.UIDs)
}
