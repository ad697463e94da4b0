package pushhub_test

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/pushhub/caddy-pushhub/internal/harness"
)

// What a client can make the hub hold for offline uids is counted fully
// and bounded per connection (issue 11).

// TestHistoryCountsOfflineEntries: the history budget counts what keeping
// an offline uid costs, its name included, not only the message's bytes.
func TestHistoryCountsOfflineEntries(t *testing.T) {
	h := harness.Start(t, harness.OneHub("history 10 1m", "max_uid_length 4096"))
	api := h.API()
	uid := strings.Repeat("n", 4000)
	api.Post(t, "/send", `{"uid":"`+uid+`","data":"x"}`).ExpectJSON(http.StatusOK, `{"delivered":0,"dropped":0,"stored":true}`)
	st := api.Stats(t)
	if st.HistoryStored != 1 || st.OfflineKept != 1 {
		t.Fatalf("stats %+v, want 1 message stored for 1 offline uid", st)
	}
	if min := int64(len(uid) + len(`"x"`)); st.HistoryBytes < min {
		t.Fatalf("history_bytes %d for a 3-byte message to an offline uid of %d bytes, want at least %d: the uid's entry and name counted",
			st.HistoryBytes, len(uid), min)
	}
}

// TestStoreBudgetPerClient: max_stored_per_client bounds what one
// connection's publishes keep for offline uids: past it they are answered
// as usual ("sent", delivered 0) but not stored; its publishes to online
// uids are delivered as ever, and another client and the push API still
// store for offline uids.
func TestStoreBudgetPerClient(t *testing.T) {
	h := harness.Start(t, harness.OneHub("history 100 1m", "allow_client_publish", "max_stored_per_client 4KiB"))
	api := h.API()
	const sends, size = 20, 500
	data := harness.JSON(strings.Repeat("s", size-2)) // size bytes of JSON
	c := harness.LoggedIn(t, h.WS+"/ws", "sprayer")
	for i := range sends {
		c.Send(fmt.Sprintf(`{"type":"send","id":%d,"to":"offline-%d","data":%s}`, i, i, data))
		c.Expect(fmt.Sprintf(`{"type":"sent","id":%d,"delivered":0,"dropped":0}`, i))
	}
	st := api.Stats(t)
	kept := st.HistoryStored
	if kept < 1 || kept*size > 4<<10 || st.OfflineKept != int(kept) {
		t.Fatalf("stats %+v after %d publishes of %d bytes to offline uids: want at least one and at most 4 KiB of them stored, one offline uid kept for each",
			st, sends, size)
	}
	t.Logf("%d of %d publishes of %d bytes stored within max_stored_per_client 4KiB", kept, sends, size)

	// Its publishes to an online uid still go.
	other := harness.LoggedIn(t, h.WS+"/ws", "other")
	c.Send(`{"type":"send","id":"online","to":"other","data":"hello"}`)
	c.Expect(`{"type":"sent","id":"online","delivered":1,"dropped":0}`)
	other.ExpectMessage(`"hello"`)
	// Another client, and the push API, still store for offline uids.
	other.Send(`{"type":"send","id":1,"to":"friend","data":"from other"}`)
	other.Expect(`{"type":"sent","id":1,"delivered":0,"dropped":0}`)
	api.Post(t, "/send", `{"uid":"friend","data":"from the API"}`).ExpectJSON(http.StatusOK, `{"delivered":0,"dropped":0,"stored":true}`)
	if st := api.Stats(t); st.OfflineKept != int(kept)+1 {
		t.Fatalf("stats %+v, want the friend kept too", st)
	}
	f := harness.Dial(t, "friend", h.WS+"/ws", nil)
	if w := login(f, "friend"); w.Resume == nil || w.Resume.Replayed != 2 {
		t.Fatalf("friend's welcome %s, want its 2 stored messages", w.Raw)
	}
	f.ExpectMessage(`"from other"`)
	f.ExpectMessage(`"from the API"`)

	// A reload that raises the bound reaches the open connection at its
	// next publish: it stores again, up to the new bound.
	h.Load(harness.OneHub("history 100 1m", "allow_client_publish", "max_stored_per_client 8KiB"))
	for i := range sends {
		c.Send(fmt.Sprintf(`{"type":"send","id":%d,"to":"later-%d","data":%s}`, i, i, data))
		c.Expect(fmt.Sprintf(`{"type":"sent","id":%d,"delivered":0,"dropped":0}`, i))
	}
	after := api.Stats(t).HistoryStored - kept - 2
	if all := (kept + after) * size; all <= 4<<10 || all > 8<<10 {
		t.Fatalf("%d more stored after the bound went from 4 KiB to 8 KiB, %d before: want more than 4 KiB in all, at most 8 KiB", after, kept)
	}
}

// TestPublishSprayBesideBystander: a client that sprays publishes at uids
// that never log in (valid names, under a generous rate_limit) beside a
// bystander that keeps receiving pushes throughout. The hub keeps no more
// for the sprayer than max_stored_per_client (the default, 256 KiB) lets
// it, whatever the hub-wide history budget: the server's heap and
// goroutines stay put, and the bystander's messages for an offline uid are
// still stored.
func TestPublishSprayBesideBystander(t *testing.T) {
	const (
		perClient = 256 << 10 // max_stored_per_client's default
		budget    = 16 << 20  // the hub's history budget
		frames    = 1500
		size      = 16 << 10 // bytes of data per publish: 24 MiB in all, over the budget
	)
	h := harness.Start(t, harness.OneHub(
		fmt.Sprintf("history 100 1m %d", budget),
		"allow_client_publish",
		"rate_limit 100000 100000",
	))
	api := h.API()
	sprayer := harness.LoggedIn(t, h.WS+"/ws", "sprayer")
	by := harness.LoggedIn(t, h.WS+"/ws", "bystander")
	byR := by.StartReader()
	pad := strings.Repeat("z", size)
	harness.CloseIdleConnections()
	heapBefore, inuseBefore := harness.Heap()
	goBefore := harness.Goroutines()

	// The bystander gets pushes from the API all through the spray.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var pushed int
	var pushErr error
	wg.Go(func() {
		for pushed = 0; ; pushed++ {
			select {
			case <-stop:
				return
			default:
			}
			rc, err := api.SendErr(fmt.Sprintf(`{"uid":"bystander","data":%d}`, pushed+1))
			if err == nil && rc.Delivered != 1 {
				err = fmt.Errorf("push %d to the bystander: receipt %+v", pushed+1, rc)
			}
			if err != nil {
				pushErr = err
				return
			}
			time.Sleep(time.Millisecond) // pacing, to leave the sprayer the CPU
		}
	})
	for i := range frames {
		sprayer.Write(websocket.TextMessage, fmt.Appendf(nil, `{"type":"send","to":"ghost-%d","data":%q}`, i, pad))
	}
	// Its frames are handled in order: the answer to this one comes after
	// every publish above was handled.
	sprayer.Send(`{"type":"send","id":"last","to":"ghost-last","data":"x"}`)
	sprayer.Expect(`{"type":"sent","id":"last","delivered":0,"dropped":0}`)
	close(stop)
	wg.Wait()
	if pushErr != nil {
		t.Fatal(pushErr)
	}
	for i := 1; i <= pushed; i++ {
		byR.ExpectMessage(t, fmt.Sprint(i))
	}
	st := api.Stats(t)

	harness.CloseIdleConnections()
	heapAfter, inuseAfter := harness.Heap()
	goAfter := harness.Goroutines()
	t.Logf("sprayed %d publishes of %d KiB (%d MiB) while the bystander got %d pushes; heap (HeapAlloc) %.1f -> %.1f MiB, in use %.1f -> %.1f MiB; goroutines %d -> %d; stats: %d messages, %d offline uids, %d history bytes",
		frames, size>>10, frames*size>>20, pushed, mib(heapBefore), mib(heapAfter), mib(inuseBefore), mib(inuseAfter),
		goBefore, goAfter, st.HistoryStored, st.OfflineKept, st.HistoryBytes)
	if st.OfflineKept*size > perClient {
		t.Errorf("%d offline uids kept for the sprayer's %d KiB publishes, more than max_stored_per_client (%d KiB) holds", st.OfflineKept, size>>10, perClient>>10)
	}
	// A generous margin over what the sprayer may keep (16 times it); what
	// it sprayed is 96 times it, and the hub-wide budget 64 times.
	if heapAfter > heapBefore+16*perClient {
		t.Errorf("the heap grew from %.1f to %.1f MiB: more than 16 times max_stored_per_client (%d KiB)",
			mib(heapBefore), mib(heapAfter), perClient>>10)
	}
	if goAfter > goBefore+5 {
		t.Errorf("goroutines %d -> %d\n%s", goBefore, goAfter, harness.Stacks())
	}

	// The budget is not spent for everyone: the bystander's publish to an
	// offline uid, and an API push, as large as the sprayer's, are stored;
	// the uid gets them when it comes.
	before := api.Stats(t)
	by.Send(fmt.Sprintf(`{"type":"send","id":1,"to":"friend","data":%q}`, pad))
	if f := byR.Next(t, "the answer to the bystander's send"); f != `{"type":"sent","id":1,"delivered":0,"dropped":0}` {
		t.Fatalf("bystander: got %s, want its send answered", f)
	}
	api.Post(t, "/send", fmt.Sprintf(`{"uid":"friend","data":%q}`, pad)).ExpectJSON(http.StatusOK, `{"delivered":0,"dropped":0,"stored":true}`)
	if after := api.Stats(t); after.HistoryStored != before.HistoryStored+2 || after.OfflineKept != before.OfflineKept+1 {
		t.Fatalf("stats %+v before the bystander's publish and the API push to an offline uid, %+v after: want both stored", before, after)
	}
	f := harness.Dial(t, "friend", h.WS+"/ws", nil)
	if w := login(f, "friend"); w.Resume == nil || w.Resume.Replayed != 2 {
		t.Fatalf("friend's welcome %s, want the 2 messages stored for it", w.Raw)
	}
	for range 2 {
		if m := f.ReadFrame(); m.Type != "message" || string(m.Data) != strconv.Quote(pad) {
			t.Fatalf("friend: got %.100s, want a stored message", m.Raw)
		}
	}
}

func mib(n uint64) float64 { return float64(n) / harness.MiB }
