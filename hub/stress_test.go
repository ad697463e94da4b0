package hub_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"runtime"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pushhub/caddy-pushhub/hub"
)

// TestStress runs logins, pushes, joins, leaves, kicks, client sends and
// closes from many goroutines at once, for a bounded number of operations,
// then requires an empty hub and no goroutine left behind. The race
// detector does the rest.
func TestStress(t *testing.T) {
	forEachReader(t, func(t *testing.T, newServer func(hub.Settings) *testServer) {
		const workers, rounds = 8, 60
		uids := []string{"u0", "u1", "u2", "u3", "u4", "u5"}
		groups := []string{"g0", "g1", "g2"}
		settings := hub.Settings{
			MaxConnectionsPerUID: 3,  // some logins are refused
			SendQueue:            16, // some clients are cut off
			AllowClientPublish:   true,
			AllowClientGroups:    true,
		}

		base := runtime.NumGoroutine()
		ts := newServer(settings)
		h := ts.hub

		var readers sync.WaitGroup
		// open dials a connection and drains it on a goroutine of its own
		// until it ends.
		open := func(r *rand.Rand) *client {
			uid := uids[r.IntN(len(uids))]
			var query string
			switch r.IntN(4) {
			case 0:
				query = "uid=" + uid
			case 1:
				query = "proto=text&uid=" + uid
			case 2:
				query = "" // logs in with a frame below
			default:
				query = "proto=text"
			}
			c, err := ts.tryDial(query)
			if err != nil {
				return nil // the server may refuse under load; not the point here
			}
			switch query {
			case "":
				_ = c.ws.WriteMessage(1, fmt.Appendf(nil, `{"type":"login","uid":%q}`, uid))
			case "proto=text":
				_ = c.ws.WriteMessage(1, []byte(uid))
			}
			readers.Add(1)
			go func() {
				defer readers.Done()
				for {
					if _, _, err := c.next(); err != nil {
						return
					}
				}
			}()
			return c
		}

		var workersDone sync.WaitGroup
		var allConns sync.Map
		// Some of everything must have happened, or the test proves nothing.
		var delivered, joined, kicked atomic.Int64
		for w := range workers {
			workersDone.Add(1)
			go func() {
				defer workersDone.Done()
				r := rand.New(rand.NewPCG(uint64(w), 42))
				var mine []*client
				for range rounds {
					uid := uids[r.IntN(len(uids))]
					group := groups[r.IntN(len(groups))]
					m := msg(fmt.Sprintf(`{"w":%d}`, w))
					switch r.IntN(14) {
					case 0, 1, 2:
						if c := open(r); c != nil {
							mine = append(mine, c)
							allConns.Store(c, true)
						}
					case 3:
						delivered.Add(int64(h.SendToUID(uid, m).Delivered))
					case 4:
						delivered.Add(int64(h.SendToUIDs([]string{uid, uids[r.IntN(len(uids))], uid}, m).Delivered))
					case 5:
						delivered.Add(int64(h.SendToGroup(group, m).Delivered))
					case 6:
						delivered.Add(int64(h.Broadcast(m).Delivered))
					case 7:
						if h.Join(uid, group) == nil {
							joined.Add(1)
						}
					case 8:
						h.Leave(uid, group)
					case 9:
						kicked.Add(int64(h.Kick(uid, "stress")))
					case 10:
						h.Online(uid)
						h.UIDs("", "", 2)
						h.UIDs(group, "u1", 0)
						h.Stats()
					case 11:
						if len(mine) > 0 {
							c := mine[r.IntN(len(mine))]
							switch r.IntN(4) {
							case 0:
								_ = c.ws.WriteMessage(1, fmt.Appendf(nil, `{"type":"send","to":%q,"data":1}`, uid))
							case 1:
								_ = c.ws.WriteMessage(1, fmt.Appendf(nil, `{"type":"join","group":%q}`, group))
							case 2:
								_ = c.ws.WriteMessage(1, fmt.Appendf(nil, `{"type":"leave","group":%q}`, group))
							default:
								_ = c.ws.WriteMessage(1, []byte(uid+":hello"))
							}
						}
					case 12:
						if len(mine) > 0 {
							i := r.IntN(len(mine))
							mine[i].ws.Close()
							mine = append(mine[:i], mine[i+1:]...)
						}
					case 13:
						s := settings
						s.SendQueue = 8 + r.IntN(32)
						h.Configure(s)
					}
				}
			}()
		}
		// A publisher that never pauses, throughout.
		stop := make(chan struct{})
		var publisher sync.WaitGroup
		publisher.Add(1)
		go func() {
			defer publisher.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				h.Broadcast(msg(fmt.Sprint(i)))
				h.SendToGroup(groups[i%len(groups)], msg(fmt.Sprint(i)))
			}
		}()
		workersDone.Wait()
		close(stop)
		publisher.Wait()
		if delivered.Load() == 0 || joined.Load() == 0 || kicked.Load() == 0 {
			t.Errorf("too little happened: %d deliveries, %d joins, %d kicks", delivered.Load(), joined.Load(), kicked.Load())
		}

		// Every client leaves; the hub must forget them all.
		allConns.Range(func(k, _ any) bool {
			k.(*client).ws.Close()
			return true
		})
		readers.Wait()
		waitStats(t, h, "an empty hub", func(s hub.Stats) bool {
			return s.Connections == 0 && s.UIDs == 0 && s.Groups == 0 && s.Pending == 0 && s.OfflineKept == 0
		})
		for _, uid := range uids {
			if n := h.Online(uid); n != 0 {
				t.Fatalf("Online(%s) = %d", uid, n)
			}
		}
		if uids, more := h.UIDs("", "", 0); len(uids) != 0 || more {
			t.Fatalf("UIDs of an empty hub: %v", uids)
		}

		// After the hub and its server are gone, so are their goroutines.
		ts.shutdown()
		waitGoroutines(t, base)
	})
}

// waitGoroutines waits until no more goroutines run than base; on a hang
// it shows which are left.
func waitGoroutines(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(2 * guard)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			var buf bytes.Buffer
			_ = pprof.Lookup("goroutine").WriteTo(&buf, 1)
			t.Fatalf("%d goroutines, %d before the test:\n%s", runtime.NumGoroutine(), base, buf.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
