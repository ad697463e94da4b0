package pushhub_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pushhub/caddy-pushhub/internal/harness"
	"github.com/pushhub/caddy-pushhub/pushapi"
)

// idempotencyConfig is a hub with a json endpoint, its push API at the
// root (the default idempotency_window) and under /short/ with a window of
// 2s, and, where extra is set, more for the WebSocket site.
func idempotencyConfig(extra string) string {
	return `
{$WS_SITE} {
	push_hub /ws {
		hub {$HUB}
		auth first_message
	}
	` + extra + `
}

{$API_SITE} {
	handle_path /short/* {
		push_api {
			hub {$HUB}
			idempotency_window 2s
		}
	}
	handle {
		push_api {
			hub {$HUB}
		}
	}
}`
}

// TestIdempotentSend: POST /send with an idempotency_key delivers once per
// key within push_api's idempotency_window: a repeat delivers nothing and
// answers the first receipt byte for byte, with Idempotency-Replayed: true,
// even once the receipt would be another; after the window (2s here) the
// key pushes again; a key that is too long or has a control character is
// refused.
func TestIdempotentSend(t *testing.T) {
	h := harness.Start(t, idempotencyConfig(""))
	api, short := h.API(), h.API().Under("/short")
	c := harness.LoggedIn(t, h.WS+"/ws", "u")
	replayed := func(r harness.Response) string { return r.Header.Get("Idempotency-Replayed") }

	// With a window of 2s: a repeat within it is replayed; once it has
	// passed, the same key pushes again, once.
	short.Post(t, "/send", `{"uid":"u","data":"windowed","idempotency_key":"w"}`).ExpectJSON(http.StatusOK, harness.ReceiptJSON(1, 0))
	if r := short.Post(t, "/send", `{"uid":"u","data":"windowed","idempotency_key":"w"}`); replayed(r) != "true" {
		t.Fatalf("a repeat at once answered %q without Idempotency-Replayed", r.Body)
	}
	c.ExpectMessage(`"windowed"`)
	repeats := 0
	harness.Eventually(t, "the key pushes again after the window", func() (bool, string) {
		r := short.Post(t, "/send", `{"uid":"u","data":"windowed","idempotency_key":"w"}`)
		repeats++
		return r.Status == http.StatusOK && replayed(r) == "", fmt.Sprintf("HTTP %d %q replayed %q", r.Status, r.Body, replayed(r))
	})
	c.ExpectMessage(`"windowed"`)
	api.Send(t, `{"uid":"u","data":"after the window"}`)
	c.ExpectMessage(`"after the window"`)
	t.Logf("%d repeats were replayed before the 2s window ended", repeats-1)

	first := api.Post(t, "/send", `{"uid":"u","data":"once","idempotency_key":"order-1234"}`)
	first.ExpectJSON(http.StatusOK, harness.ReceiptJSON(1, 0))
	if replayed(first) != "" {
		t.Fatalf("the first push has Idempotency-Replayed %q", replayed(first))
	}
	c.ExpectMessage(`"once"`)
	// A second connection of the uid: a push now would reach 2.
	c2 := harness.LoggedIn(t, h.WS+"/ws", "u")
	for range 3 {
		again := api.Post(t, "/send", `{"uid":"u","data":"once","idempotency_key":"order-1234"}`)
		if again.Status != http.StatusOK || again.Body != first.Body || replayed(again) != "true" {
			t.Fatalf("a repeat answered HTTP %d %q (Idempotency-Replayed %q), want the first receipt %q replayed",
				again.Status, again.Body, replayed(again), first.Body)
		}
	}
	// Nothing was delivered again: the next frame of each is the next push.
	api.Post(t, "/send", `{"uid":"u","data":"next","idempotency_key":"order-1235"}`).ExpectJSON(http.StatusOK, harness.ReceiptJSON(2, 0))
	c.ExpectMessage(`"next"`)
	c2.ExpectMessage(`"next"`)

	for _, key := range []string{strings.Repeat("k", 257), "k\u0007", "k\n"} {
		api.Post(t, "/send", `{"uid":"u","data":"refused","idempotency_key":`+harness.JSON(key)+`}`).ExpectError(http.StatusBadRequest, "bad_idempotency_key")
	}
	api.Post(t, "/send", `{"uid":"u","data":"longest","idempotency_key":"`+strings.Repeat("k", 256)+`"}`).ExpectJSON(http.StatusOK, harness.ReceiptJSON(2, 0))
	c.ExpectMessage(`"longest"`)
	c2.ExpectMessage(`"longest"`)
}

// TestIdempotencyWindowShortenedByReload: a reload that shortens push_api's
// idempotency_window applies to the keys claimed after it, even while keys
// of the longer window claimed before it are still remembered.
func TestIdempotencyWindowShortenedByReload(t *testing.T) {
	config := func(window string) string {
		return `
{$WS_SITE} {
	push_hub /ws {
		hub {$HUB}
		auth first_message
	}
}

{$API_SITE} {
	push_api {
		hub {$HUB}
		idempotency_window ` + window + `
	}
}`
	}
	h := harness.Start(t, config("10m"))
	api := h.API()
	c := harness.LoggedIn(t, h.WS+"/ws", "u")
	api.Post(t, "/send", `{"uid":"u","data":"before","idempotency_key":"before-the-reload"}`).ExpectJSON(http.StatusOK, harness.ReceiptJSON(1, 0))
	c.ExpectMessage(`"before"`)
	h.Load(config("1s"))
	api.Post(t, "/send", `{"uid":"u","data":"after","idempotency_key":"after-the-reload"}`).ExpectJSON(http.StatusOK, harness.ReceiptJSON(1, 0))
	c.ExpectMessage(`"after"`)
	harness.Eventually(t, "the key claimed after the reload pushes again once its 1s window has passed", func() (bool, string) {
		r := api.Post(t, "/send", `{"uid":"u","data":"after","idempotency_key":"after-the-reload"}`)
		return r.Status == http.StatusOK && r.Header.Get("Idempotency-Replayed") == "", fmt.Sprintf("HTTP %d %q replayed %q", r.Status, r.Body, r.Header.Get("Idempotency-Replayed"))
	})
	c.ExpectMessage(`"after"`)
	// The key of the 10m window is still remembered.
	if r := api.Post(t, "/send", `{"uid":"u","data":"before","idempotency_key":"before-the-reload"}`); r.Header.Get("Idempotency-Replayed") != "true" {
		t.Fatalf("the key claimed before the reload pushed again: %q", r.Body)
	}
	api.Send(t, `{"uid":"u","data":"the end"}`)
	c.ExpectMessage(`"the end"`)
}

// countingTransport counts the requests that go through it and those that
// end in an error (no answer).
type countingTransport struct {
	rt                 http.RoundTripper
	requests, failures atomic.Int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.requests.Add(1)
	resp, err := c.rt.RoundTrip(r)
	if err != nil {
		c.failures.Add(1)
	}
	return resp, err
}

// TestPushesAcrossReloads: pushes through the Go client pushapi, at a few
// hundred per second over several keep-alive connections, while Caddy
// reloads every 2 seconds: every push reaches the connected client exactly
// once. Caddy closes keep-alive connections when it reloads, so a push may
// fail before its answer; pushapi retries it with the same idempotency key,
// and a retry of a push that had landed delivers nothing again.
func TestPushesAcrossReloads(t *testing.T) {
	const (
		workers  = 8
		interval = 25 * time.Millisecond // each worker's pace: 320 pushes/s in all
		reloads  = 5
		every    = 2 * time.Second
	)
	h := harness.Start(t, idempotencyConfig(""))
	api := h.API()
	rc := harness.LoggedIn(t, h.WS+"/ws", "receiver")
	r := rc.StartReader()

	ct := &countingTransport{rt: pushapi.NewTransport(workers)}
	client := pushapi.New(api.URL, "", &http.Client{Transport: ct, Timeout: harness.Guard})
	var next, duplicates atomic.Int64
	errs := make(chan error, workers)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			tick := time.NewTicker(interval)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				n := next.Add(1)
				rcpt, err := client.SendUID(context.Background(), "receiver", n)
				if err == nil && (rcpt.Delivered != 1 || rcpt.Dropped != 0) {
					err = fmt.Errorf("push %d: receipt %+v, want delivered to the receiver's one connection", n, rcpt)
				}
				if err != nil {
					errs <- fmt.Errorf("push %d: %w", n, err)
					return
				}
				if rcpt.Duplicate {
					duplicates.Add(1)
				}
			}
		})
	}
	stopped := false
	stopPushers := func() {
		if !stopped {
			stopped = true
			close(stop)
			wg.Wait()
		}
	}
	defer stopPushers()

	for i := 1; i <= reloads; i++ {
		select {
		case err := <-errs:
			t.Fatal(err)
		case <-time.After(every):
		}
		// The same config, or one with an extra route.
		extra := ""
		if i%2 == 1 {
			extra = fmt.Sprintf(`respond /reload "reload %d"`, i)
		}
		h.Load(idempotencyConfig(extra))
	}
	select {
	case err := <-errs:
		t.Fatal(err)
	case <-time.After(every):
	}
	stopPushers()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}

	// Every number came exactly once.
	total := next.Load()
	seen := make(map[int64]bool, total)
	for range total {
		f, err := harness.DecodeFrame([]byte(r.Next(t, fmt.Sprintf("the pushes (%d of %d seen)", len(seen), total))))
		if err != nil {
			t.Fatal(err)
		}
		n, err := f.Int()
		if err != nil {
			t.Fatal(err)
		}
		if n < 1 || n > total || seen[n] {
			t.Fatalf("push %d arrived twice, or was never made (%d pushes made)", n, total)
		}
		seen[n] = true
	}
	api.Send(t, `{"uid":"receiver","data":"the end"}`)
	r.ExpectMessage(t, `"the end"`)
	if st := api.Stats(t); st.Pushes != uint64(total)+1 {
		t.Fatalf("stats %+v: %d pushes counted, want %d", st, st.Pushes, total+1)
	}
	retries := ct.requests.Load() - total
	t.Logf("%d pushes over %d keep-alive connections across %d reloads: %d requests, %d ended without an answer, %d retries, %d answered as duplicates",
		total, workers, reloads, ct.requests.Load(), ct.failures.Load(), retries, duplicates.Load())
	if retries != ct.failures.Load() {
		t.Fatalf("%d retries for %d requests that failed: pushapi retries exactly the connection errors", retries, ct.failures.Load())
	}
}
