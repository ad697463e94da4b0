package pushhub_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pushhub/caddy-pushhub/internal/harness"
)

// Cluster mode end to end: real Caddy processes of one hub on a real
// redis-server, with WebSocket clients on every node and pushes through
// every node's API.

// clusterConfig is a node of the test's hub: json at /ws and text at
// /text, clients may publish and join groups, a short lease so that a dead
// node drops out quickly, and the directives given.
func clusterConfig(redis *harness.Redis, directives ...string) string {
	return clusterConfigOf(clusterDirective(redis.URL, "lease 2s"), directives...)
}

// clusterConfigOf is clusterConfig with its own cluster directive.
func clusterConfigOf(cluster string, directives ...string) string {
	return harness.BothProtocols(append([]string{"allow_client_publish", "allow_client_groups", cluster}, directives...)...)
}

// clusterDirective is a cluster directive for Redis at url with the
// subdirectives given.
func clusterDirective(url string, sub ...string) string {
	return "cluster " + url + " {\n\t\t\t" + strings.Join(sub, "\n\t\t\t") + "\n\t\t}"
}

// sameRedis is url written another way: a reload to it gives a hub a new
// broker, on the same Redis keys.
func sameRedis(url string) string {
	if strings.Contains(url, "?") {
		return url + "&dial_timeout=3s"
	}
	return url + "?dial_timeout=3s"
}

// clusterNodes starts n nodes of one hub on redis. A node that has started
// has joined the cluster: its first push is routed, not refused.
func clusterNodes(t *testing.T, redis *harness.Redis, n int, directives ...string) []*harness.Node {
	return clusterNodesOf(t, clusterConfig(redis, directives...), n)
}

// clusterNodesOf is clusterNodes with each node's whole config.
func clusterNodesOf(t *testing.T, config string, n int) []*harness.Node {
	nodes := make([]*harness.Node, n)
	for i := range nodes {
		nodes[i] = harness.StartNode(t, config)
		if st := getClusterStats(t, nodes[i].API()); !st.Cluster.Connected || len(st.Cluster.Nodes) != i+1 {
			t.Fatalf("node %d has started but not joined the cluster: %+v", i+1, st.Cluster)
		}
	}
	return nodes
}

// clusterStats is /stats's cluster part, decoded on its own for checks.
type clusterStats struct {
	Connections int `json:"connections"`
	UIDs        int `json:"uids"`
	Groups      int `json:"groups"`
	Cluster     struct {
		Node      string `json:"node"`
		Connected bool   `json:"connected"`
		Nodes     []struct {
			Node        string `json:"node"`
			Connections int    `json:"connections"`
			Goroutines  int    `json:"goroutines"`
		} `json:"nodes"`
		Unanswered int `json:"unanswered"`
	} `json:"cluster"`
}

func getClusterStats(t *testing.T, api harness.API) clusterStats {
	t.Helper()
	r := api.Get(t, "/stats")
	var st clusterStats
	if r.Status != http.StatusOK || json.Unmarshal([]byte(r.Body), &st) != nil {
		t.Fatalf("GET /stats: HTTP %d %q", r.Status, r.Body)
	}
	return st
}

// TestCluster: three nodes behave as one hub. A push through any node's API
// to a uid, several uids, a group or everyone reaches every connection of
// those uids on every node, and the receipt counts them all; clients
// publish across nodes in both protocols; joins through the API or a
// client, presence, paging, stats, kicks and idempotency keys are
// cluster-wide; a node killed with SIGKILL drops out within its lease.
func TestCluster(t *testing.T) {
	redis := harness.StartRedis(t)
	nodes := clusterNodes(t, redis, 3)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]

	alice1 := harness.Dial(t, "alice on n1", n1.WS+"/ws", nil)
	alice1.Login("alice")
	alice2 := harness.Dial(t, "alice on n2", n2.WS+"/ws", nil)
	alice2.Login("alice")
	bob := harness.LoggedInText(t, n2.WS+"/text", "bob")
	carol := harness.Dial(t, "carol on n3", n3.WS+"/ws", nil)
	carol.Login("carol")

	// To a uid on two other nodes, through the third.
	n3.API().Post(t, "/send", `{"uid":"alice","data":"to alice"}`).ExpectJSON(http.StatusOK, harness.ReceiptJSON(2, 0))
	alice1.Expect(`{"type":"message","seq":1,"data":"to alice"}`)
	alice2.Expect(`{"type":"message","seq":1,"data":"to alice"}`)

	// To several uids.
	n1.API().Post(t, "/send", `{"uids":["alice","bob"],"data":"to both"}`).ExpectJSON(http.StatusOK, harness.ReceiptJSON(3, 0))
	alice1.Expect(`{"type":"message","seq":2,"data":"to both"}`)
	alice2.Expect(`{"type":"message","seq":2,"data":"to both"}`)
	bob.Expect("to both")

	// Groups: bob joins through n1's API (he is on n2), carol through her
	// own client on n3; a group push through n2 reaches both.
	n1.API().Post(t, "/join", `{"uid":"bob","group":"g"}`).ExpectJSON(http.StatusOK, `{"ok":true}`)
	carol.Send(`{"type":"join","id":"j","group":"g"}`)
	carol.Expect(`{"type":"joined","id":"j","group":"g"}`)
	n2.API().Post(t, "/send", `{"group":"g","data":"to g"}`).ExpectJSON(http.StatusOK, harness.ReceiptJSON(2, 0))
	bob.Expect("to g")
	carol.Expect(`{"type":"message","seq":1,"data":"to g","group":"g"}`)
	n3.API().Get(t, "/uids?group=g").ExpectJSON(http.StatusOK, `{"group":"g","uids":["bob","carol"]}`)

	// Everyone.
	n1.API().Post(t, "/send", `{"all":true,"data":"to all"}`).ExpectJSON(http.StatusOK, harness.ReceiptJSON(4, 0))
	alice1.Expect(`{"type":"message","seq":3,"data":"to all"}`)
	alice2.Expect(`{"type":"message","seq":3,"data":"to all"}`)
	bob.Expect("to all")
	carol.Expect(`{"type":"message","seq":2,"data":"to all"}`)

	// Clients publish across nodes: text (bob on n2 to carol on n3) and
	// json (carol to alice on n1 and n2), and everyone (bob's all:).
	bob.Send("carol:hi carol")
	carol.Expect(`{"type":"message","seq":3,"data":"hi carol","from":"bob"}`)
	carol.Send(`{"type":"send","id":1,"to":"alice","data":"hi alice"}`)
	carol.Expect(`{"type":"sent","id":1,"delivered":2,"dropped":0}`)
	alice1.Expect(`{"type":"message","seq":4,"data":"hi alice","from":"carol"}`)
	alice2.Expect(`{"type":"message","seq":4,"data":"hi alice","from":"carol"}`)

	// Presence and paging, asked of any node.
	n3.API().Get(t, "/online?uid=alice").ExpectJSON(http.StatusOK, harness.OnlineJSON("alice", 2))
	n2.API().Get(t, "/uids").ExpectJSON(http.StatusOK, `{"uids":["alice","bob","carol"]}`)
	n1.API().Get(t, "/uids?limit=2").ExpectJSON(http.StatusOK, `{"next":"bob","uids":["alice","bob"]}`)
	n1.API().Get(t, "/uids?limit=2&after=bob").ExpectJSON(http.StatusOK, `{"uids":["carol"]}`)
	st := getClusterStats(t, n1.API())
	if !st.Cluster.Connected || len(st.Cluster.Nodes) != 3 || st.Cluster.Unanswered != 0 || st.Connections != 4 || st.UIDs != 3 || st.Groups != 1 {
		t.Fatalf("stats %+v: want 3 nodes, 4 connections, 3 uids, 1 group in all", st)
	}

	// A retry with the same idempotency key delivers nothing again, even
	// through another node, and answers the first receipt.
	first := n1.API().Post(t, "/send", `{"uid":"carol","data":"once","idempotency_key":"k-1"}`)
	again := n2.API().Post(t, "/send", `{"uid":"carol","data":"once","idempotency_key":"k-1"}`)
	if first.Body != again.Body || again.Header.Get("Idempotency-Replayed") != "true" || first.Header.Get("Idempotency-Replayed") != "" {
		t.Fatalf("first %q, retry %q (replayed %q)", first.Body, again.Body, again.Header.Get("Idempotency-Replayed"))
	}
	carol.Expect(`{"type":"message","seq":4,"data":"once"}`)

	// The same key through three nodes at once, to a group: one push goes,
	// the other two wait for its receipt and answer it.
	var wg sync.WaitGroup
	res := make([]harness.Response, len(nodes))
	errs := make([]error, len(nodes))
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i], errs[i] = n.API().Request(http.MethodPost, "/send", `{"group":"g","data":"once to g","idempotency_key":"k-g"}`, nil)
		}()
	}
	wg.Wait()
	replayed := 0
	for i, r := range res {
		if errs[i] != nil || r.Status != http.StatusOK || r.Body != res[0].Body {
			t.Fatalf("node %d: %v, %d %q (node 1: %q)", i+1, errs[i], r.Status, r.Body, res[0].Body)
		}
		if r.Header.Get("Idempotency-Replayed") == "true" {
			replayed++
		}
	}
	if replayed != len(nodes)-1 {
		t.Fatalf("%d of %d answers replayed, want all but one", replayed, len(nodes))
	}
	bob.Expect("once to g")
	carol.Expect(`{"type":"message","seq":5,"data":"once to g","group":"g"}`)

	// A kick through n3 closes alice's connections on n1 and n2.
	n3.API().Post(t, "/kick", `{"uid":"alice","reason":"bye"}`).ExpectJSON(http.StatusOK, `{"closed":2,"uid":"alice"}`)
	for _, c := range []*harness.Conn{alice1, alice2} {
		c.ExpectError("kicked", "")
		c.ExpectClose(4005)
	}
	n2.API().WaitOnline(t, "alice", 0)
	carol.Send(`{"type":"ping","id":"before"}`) // carol only now sees nothing more of the idempotent push
	carol.Expect(`{"type":"pong","id":"before"}`)

	// n3 dies without leaving: within its lease (2s), carol is offline for
	// every node, and a push to her is routed nowhere.
	n3.Kill()
	harness.Eventually(t, "carol offline once n3's lease ends", func() (bool, string) {
		r := n1.API().Get(t, "/online?uid=carol")
		return r.Body == harness.OnlineJSON("carol", 0)+"\n", r.Body
	})
	n2.API().Post(t, "/send", `{"uid":"carol","data":"nobody"}`).ExpectJSON(http.StatusOK, harness.ReceiptJSON(0, 0))
	n1.API().Get(t, "/uids").ExpectJSON(http.StatusOK, `{"uids":["bob"]}`)
	if st := getClusterStats(t, n2.API()); len(st.Cluster.Nodes) != 2 || st.Connections != 1 {
		t.Fatalf("stats after n3 died %+v", st)
	}
}

// TestClusterConcurrentPushes: pushes through one node's API from many
// callers at once, half to uids on another node, half on the uids' own
// node, share pipelined round trips to Redis, and each caller still gets
// its own push's receipt, with or without an idempotency key: the number of
// its uid's connections (none for an offline uid). Every connection gets
// exactly the pushes to its uid, each caller's in the order sent. Every
// key's receipt is in Redis afterwards: a repeat through the other node
// delivers nothing and answers the first push's receipt.
func TestClusterConcurrentPushes(t *testing.T) {
	redis := harness.StartRedis(t)
	nodes := clusterNodes(t, redis, 2)
	api := nodes[0].API()
	apiOf := func(c int) harness.API { return nodes[c%2].API() }
	const uids, callers, each = 12, 32, 20
	conns := make([][]*harness.Conn, uids) // uid u<i> holds i%3 connections on the second node
	for i := range conns {
		for range i % 3 {
			conns[i] = append(conns[i], harness.LoggedInText(t, nodes[1].WS+"/text", fmt.Sprintf("u%d", i)))
		}
	}
	target := func(c, k int) int { return (c*7 + k) % uids }
	pushScripts := func() (scripts, trips uint64) {
		for _, n := range nodes {
			st := n.API().Stats(t).Cluster
			scripts, trips = scripts+st.PushScripts, trips+st.PushRoundTrips
		}
		return scripts, trips
	}
	scripts0, trips0 := pushScripts()

	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for c := range callers {
		wg.Go(func() {
			for k := range each {
				i := target(c, k)
				body := fmt.Sprintf(`{"uid":"u%d","data":"%d-%d"}`, i, c, k)
				if k%2 == 1 {
					body = fmt.Sprintf(`{"uid":"u%d","data":"%d-%d","idempotency_key":"k%d-%d"}`, i, c, k, c, k)
				}
				rc, err := apiOf(c).SendErr(body)
				if err == nil && (rc.Delivered != i%3 || rc.Dropped != 0 || rc.Duplicate || rc.UnreachedNodes != 0 || rc.ClusterUnavailable) {
					err = fmt.Errorf("push %s: receipt %+v, want %d delivered", body, rc, i%3)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	for i, cs := range conns {
		want := 0
		for c := range callers {
			for k := range each {
				if target(c, k) == i {
					want++
				}
			}
		}
		for _, conn := range cs {
			last := make([]int, callers) // each caller's last push seen, +1
			for range want {
				var c, k int
				msg := conn.Read()
				if _, err := fmt.Sscanf(msg, "%d-%d", &c, &k); err != nil || c < 0 || c >= callers || target(c, k) != i || k+1 <= last[c] {
					t.Fatalf("%s: %q is not the next push to u%d of its caller", conn.Name, msg, i)
				}
				last[c] = k + 1
			}
		}
	}
	for c := range callers { // repeats deliver nothing, and answer the first receipt
		for k := 1; k < each; k += 2 {
			i := target(c, k)
			r, err := apiOf(c+1).Request(http.MethodPost, "/send", fmt.Sprintf(`{"uid":"u%d","data":"%d-%d","idempotency_key":"k%d-%d"}`, i, c, k, c, k), nil)
			if want := harness.ReceiptJSON(i%3, 0); err != nil || r.Header.Get("Idempotency-Replayed") != "true" || strings.TrimSpace(r.Body) != want {
				t.Fatalf("repeat of key k%d-%d: %+v, %v; want a replay of %s", c, k, r, err, want)
			}
		}
	}
	for i, cs := range conns { // nothing more came before this
		api.Send(t, fmt.Sprintf(`{"uid":"u%d","data":"end"}`, i))
		for _, conn := range cs {
			conn.Expect("end")
		}
	}

	scripts1, trips1 := pushScripts()
	scripts, trips := scripts1-scripts0, trips1-trips0
	if want := uint64(callers*each + uids + callers*each/2); scripts != want || trips >= scripts { // the pushes, the "end"s, the repeats
		t.Fatalf("%d push scripts in %d round trips: want %d scripts, and the %d sent at once sharing round trips", scripts, trips, want, callers*each)
	}
	t.Logf("%d push scripts in %d round trips", scripts, trips)
}

// TestClusterKeyWaitingForAcks: a push with an idempotency key that waits
// long for an acknowledgement that does not come stays its key's push for
// as long as it waits. A retry through another node, made after the time
// at which a push without that wait would be taken for dead (reply
// timeout + 10 s, 10.5 s here), waits for the first push's receipt and
// answers it, delivering nothing again.
func TestClusterKeyWaitingForAcks(t *testing.T) {
	redis := harness.StartRedis(t)
	nodes := clusterNodesOf(t, clusterConfigOf(clusterDirective(redis.URL, "lease 2s", "reply_timeout 500ms")), 2)
	n1, n2 := nodes[0], nodes[1]
	quinn := harness.LoggedIn(t, n2.WS+"/ws", "quinn") // never acknowledges
	const body = `{"uid":"quinn","data":"once","wait_ack":"12s","idempotency_key":"k-ack"}`
	first := make(chan harness.Response, 1)
	go func() {
		r, err := n1.API().Request(http.MethodPost, "/send", body, nil)
		if err != nil {
			r.Body = err.Error()
		}
		first <- r
	}()
	if f := quinn.ExpectType("message"); string(f.Data) != `"once"` {
		t.Fatalf("quinn got %s", f.Raw)
	}
	time.Sleep(11 * time.Second) // the first push still waits
	again := n2.API().Post(t, "/send", body)
	f := <-first
	if f.Body != again.Body || again.Header.Get("Idempotency-Replayed") != "true" || !strings.Contains(f.Body, `"acked":0`) {
		t.Fatalf("first %q, retry %q (replayed %q)", f.Body, again.Body, again.Header.Get("Idempotency-Replayed"))
	}
	quinn.StillOpen() // and no second copy before the pong
}

// TestClusterHistory: with history, Redis numbers and keeps a uid's
// messages: a client that reconnects to another node with its last seq and
// epoch gets exactly what it missed, in order, before anything new; a uid
// that was never online finds its mailbox on any node; once Redis has lost
// its data, a resuming client is told its gap could not be filled.
func TestClusterHistory(t *testing.T) {
	redis := harness.StartRedis(t)
	nodes := clusterNodes(t, redis, 2, "history 100 1m")
	n1, n2 := nodes[0], nodes[1]

	dave := harness.Dial(t, "dave on n1", n1.WS+"/ws", nil)
	w := dave.Login("dave")
	if w.Seq != 0 || w.Epoch == "" {
		t.Fatalf("welcome %s: want seq 0 in an epoch", w.Raw)
	}
	for i := 1; i <= 3; i++ {
		rc := n2.API().Send(t, fmt.Sprintf(`{"uid":"dave","data":%d}`, i))
		if rc.Delivered != 1 || !rc.Stored {
			t.Fatalf("push %d: %+v", i, rc)
		}
	}
	dave.Expect(`{"type":"message","seq":1,"data":1}`)
	dave.Expect(`{"type":"message","seq":2,"data":2}`)
	dave.CloseNormally()
	n2.API().WaitOnline(t, "dave", 0)
	for i, body := range []string{`{"uid":"dave","data":4}`, `{"uids":["dave","dave"],"data":5}`} { // named twice, stored once
		if rc := n1.API().Send(t, body); rc.Delivered != 0 || !rc.Stored {
			t.Fatalf("push %d to dave offline: %+v", i+4, rc)
		}
	}
	back := harness.Dial(t, "dave back on n2", n2.WS+"/ws", nil)
	w2 := back.LoginSince("dave", 2, w.Epoch)
	expectWelcome(t, w2, "dave", 5, `{"since":2,"recovered":true,"replayed":3}`)
	for i := 3; i <= 5; i++ {
		back.Expect(fmt.Sprintf(`{"type":"message","seq":%d,"data":%d}`, i, i))
	}
	n1.API().Send(t, `{"uid":"dave","data":6}`)
	back.Expect(`{"type":"message","seq":6,"data":6}`)

	// erin was never online: her pushes wait in her mailbox, which her
	// first login, on another node and without since, gets.
	for i := 1; i <= 3; i++ {
		n1.API().Send(t, fmt.Sprintf(`{"uid":"erin","data":%d}`, i))
	}
	erin := harness.Dial(t, "erin on n2", n2.WS+"/ws", nil)
	we := login(erin, "erin")
	expectWelcome(t, we, "erin", 3, `{"since":0,"recovered":true,"replayed":3}`)
	for i := 1; i <= 3; i++ {
		erin.Expect(fmt.Sprintf(`{"type":"message","seq":%d,"data":%d}`, i, i))
	}
	// A second connection gets no mailbox: the first took it.
	erin2 := harness.Dial(t, "erin again", n1.WS+"/ws", nil)
	if w := login(erin2, "erin"); w.Resume != nil || w.Seq != 3 {
		t.Fatalf("a second login got %s, want no mailbox", w.Raw)
	}

	// Redis loses everything: the numbering is a new epoch, and dave,
	// resuming from the old one, is told his gap cannot be filled.
	redis.Restart()
	back.CloseNormally()
	harness.Eventually(t, "the nodes have found Redis again", func() (bool, string) {
		st := getClusterStats(t, n1.API())
		return st.Cluster.Connected && len(st.Cluster.Nodes) == 2, fmt.Sprintf("%+v", st.Cluster)
	})
	again := harness.Dial(t, "dave after the loss", n1.WS+"/ws", nil)
	w3 := again.LoginSince("dave", 6, w.Epoch)
	if w3.Epoch == w.Epoch || w3.Resume == nil || w3.Resume.Recovered || w3.Resume.Reason != "epoch_changed" {
		t.Fatalf("welcome after Redis lost its data: %s", w3.Raw)
	}
}

// TestClusterDeadNodeMailbox: a node killed with its uids still leased to
// it delivered nothing after it last renewed its lease. A login without
// since gets, in its mailbox, what was stored for the uid since then: fay,
// after the dead node was reaped, gets a push made while its lease still
// ran; gus gets what came once the lease had ended, whether the node was
// reaped by then or not.
func TestClusterDeadNodeMailbox(t *testing.T) {
	redis := harness.StartRedis(t)
	// A lease long enough for the first push to come while it runs.
	nodes := clusterNodesOf(t, clusterConfigOf(clusterDirective(redis.URL, "lease 5s"), "history 100 1m"), 2)
	n1, n2 := nodes[0], nodes[1]
	for _, uid := range []string{"fay", "gus"} {
		harness.Dial(t, uid+" on n2", n2.WS+"/ws", nil).Login(uid)
	}
	n2.Kill()
	if rc := n1.API().Send(t, `{"uid":"fay","data":"a"}`); rc.Delivered != 0 || !rc.Stored || rc.UnreachedNodes != 1 {
		t.Fatalf("push while n2's lease runs: %+v, want it stored and routed to n2, which did not answer", rc)
	}
	n1.API().WaitOnline(t, "gus", 0)
	if rc := n1.API().Send(t, `{"uids":["fay","gus"],"data":"b"}`); rc.Delivered != 0 || !rc.Stored {
		t.Fatalf("push once n2's lease ended: %+v", rc)
	}
	mailbox := func(uid string, want ...string) {
		t.Helper()
		c := harness.Dial(t, uid+" on n1", n1.WS+"/ws", nil)
		expectWelcome(t, login(c, uid), uid, uint64(len(want)), fmt.Sprintf(`{"since":0,"recovered":true,"replayed":%d}`, len(want)))
		for i, m := range want {
			c.Expect(fmt.Sprintf(`{"type":"message","seq":%d,"data":%q}`, i+1, m))
		}
	}
	mailbox("gus", "b")
	harness.Eventually(t, "n2 reaped", func() (bool, string) {
		n, err := redis.Do("ZCARD", "pushhub:{"+n1.Hub("HUB")+"}:nodes")
		return err == nil && n == "1", fmt.Sprintf("nodes in Redis: %q, %v", n, err)
	})
	mailbox("fay", "a", "b")
}

// TestClusterRedisOutage: while Redis answers nothing, each node goes on
// delivering to its own connections and says the others were not reached
// (receipts, /stats, metrics); once Redis is back, routing across nodes
// resumes without a restart, and what was acknowledged as stored before is
// still there. No goroutine is left behind by the outage.
func TestClusterRedisOutage(t *testing.T) {
	redis := harness.StartRedis(t)
	nodes := clusterNodes(t, redis, 2, "history 100 1m")
	n1, n2 := nodes[0], nodes[1]
	frank := harness.Dial(t, "frank on n1", n1.WS+"/ws", nil)
	frank.Login("frank")
	gina := harness.Dial(t, "gina on n2", n2.WS+"/ws", nil)
	wg := gina.Login("gina")
	// Stored before the outage.
	if rc := n1.API().Send(t, `{"uid":"gina","data":"before"}`); !rc.Stored || rc.Delivered != 1 {
		t.Fatalf("push before the outage %+v", rc)
	}
	gina.Expect(`{"type":"message","seq":1,"data":"before"}`)
	n2.API().Post(t, "/join", `{"uid":"gina","group":"left-away"}`).ExpectJSON(http.StatusOK, `{"ok":true}`)
	baseline := map[string]int{}
	for _, n := range nodes {
		st := getClusterStats(t, n.API())
		baseline[st.Cluster.Node] = st.Cluster.Nodes[0].Goroutines
	}

	redis.Pause()
	// Pushes made at once as Redis stops answering wait together for the
	// first of them to find it gone; then each is answered as any push
	// during the outage: one with a key refused, one without delivered
	// here alone, once.
	const burst = 8
	var bwg sync.WaitGroup
	answers := make([]harness.Response, burst)
	errs := make([]error, burst)
	for i := range burst {
		bwg.Go(func() {
			body := fmt.Sprintf(`{"uid":"frank","data":"b%d"}`, i)
			if i%2 == 1 {
				body = fmt.Sprintf(`{"uid":"frank","data":"b%d","idempotency_key":"k-b%d"}`, i, i)
			}
			answers[i], errs[i] = n1.API().Request(http.MethodPost, "/send", body, nil)
		})
	}
	bwg.Wait()
	for i, r := range answers {
		r = r.For(t, errs[i])
		if i%2 == 1 {
			r.ExpectError(http.StatusServiceUnavailable, "cluster_unavailable")
		} else {
			r.ExpectJSON(http.StatusOK, `{"delivered":1,"dropped":0,"stored":false,"cluster_unavailable":true}`)
		}
	}
	got := map[string]bool{}
	for range burst / 2 {
		got[string(frank.ExpectType("message").Data)] = true
	}
	if len(got) != burst/2 || !got[`"b0"`] || !got[`"b2"`] || !got[`"b4"`] || !got[`"b6"`] {
		t.Fatalf("frank got %v of the pushes made as Redis stopped, want b0, b2, b4 and b6 once each", got)
	}
	// Pushes go on, each answered: delivered here, told that the cluster
	// is unreachable, nothing stored.
	for i := 1; i <= 5; i++ {
		r := n1.API().Post(t, "/send", fmt.Sprintf(`{"uid":"frank","data":%d}`, i))
		r.ExpectJSON(http.StatusOK, `{"delivered":1,"dropped":0,"stored":false,"cluster_unavailable":true}`)
		frank.Expect(fmt.Sprintf(`{"type":"message","seq":%d,"data":%d}`, burst/2+i, i))
	}
	n1.API().Post(t, "/send", `{"uid":"gina","data":"unreachable"}`).
		ExpectJSON(http.StatusOK, `{"delivered":0,"dropped":0,"stored":false,"cluster_unavailable":true}`)
	// A push with an idempotency key is refused: its key cannot be checked.
	n1.API().Post(t, "/send", `{"uid":"frank","data":"keyed","idempotency_key":"k-out"}`).
		ExpectError(http.StatusServiceUnavailable, "cluster_unavailable")
	// A join and a leave apply on their node only while Redis is away;
	// the cluster learns of them once it is back (below).
	n1.API().Post(t, "/join", `{"uid":"frank","group":"joined-away"}`).ExpectJSON(http.StatusOK, `{"ok":true}`)
	n2.API().Post(t, "/leave", `{"uid":"gina","group":"left-away"}`)
	if st := getClusterStats(t, n1.API()); st.Cluster.Connected {
		t.Fatalf("stats during the outage say connected: %+v", st.Cluster)
	}
	admin := harness.API{URL: fmt.Sprintf("http://localhost:%d", n1.AdminPort)}
	if m := admin.Get(t, "/metrics").Body; !strings.Contains(m, `caddy_pushhub_cluster_connected{hub="`+n1.Hub("HUB")+`"} 0`) {
		t.Fatalf("metrics during the outage:\n%s", grepLines(m, "cluster"))
	}

	redis.Resume()
	harness.Eventually(t, "routing across nodes again", func() (bool, string) {
		r := n1.API().Post(t, "/send", `{"uid":"gina","data":"back"}`)
		return strings.HasPrefix(r.Body, `{"delivered":1,`), r.Body
	})
	// gina gets the pushes that said delivered, in order; the stored one
	// from before the outage is still there for a resume.
	gina.SkipToMessage(`"back"`)
	// The join and the leave made during the outage reached Redis: a push
	// to the group frank joined, through the other node, reaches him, and
	// the group gina left lists nobody.
	harness.Eventually(t, "the join made during the outage known to the cluster", func() (bool, string) {
		r := n2.API().Post(t, "/send", `{"group":"joined-away","data":"joined while away"}`)
		return strings.HasPrefix(r.Body, `{"delivered":1,`), r.Body
	})
	frank.SkipToMessage(`"joined while away"`)
	harness.Eventually(t, "the leave made during the outage known to the cluster", func() (bool, string) {
		r := n1.API().Get(t, "/uids?group=left-away")
		return strings.Contains(r.Body, `"uids":[]`), r.Body
	})
	gina.CloseNormally()
	n1.API().WaitOnline(t, "gina", 0)
	resumed := harness.Dial(t, "gina resumes", n1.WS+"/ws", nil)
	w := resumed.LoginSince("gina", 0, wg.Epoch)
	if w.Resume == nil || w.Resume.Replayed < 1 {
		t.Fatalf("resume after the outage %s: the stored push is gone", w.Raw)
	}
	resumed.Expect(`{"type":"message","seq":1,"data":"before"}`)

	// No goroutine left behind: each node is back near where it was.
	for _, n := range nodes {
		harness.Eventually(t, "goroutines back after the outage", func() (bool, string) {
			st := getClusterStats(t, n.API())
			g := st.Cluster.Nodes[0].Goroutines
			return g <= baseline[st.Cluster.Node]+5, fmt.Sprintf("%d goroutines, %d before", g, baseline[st.Cluster.Node])
		})
	}
}

// TestClusterRedisRestart: Redis stopped and started again, empty, while
// pushes go on through one node's API to a uid on that node, a uid on the
// other node and a uid that is offline. Every push is answered; the local
// uid gets every one; a push said delivered to the remote uid was received
// by it, once and in order; a push said stored once Redis was back is in
// the offline uid's mailbox. (Whether any receipt says the cluster was
// degraded depends on how fast Redis came back: go-redis retries a command
// across a short gap.)
func TestClusterRedisRestart(t *testing.T) {
	redis := harness.StartRedis(t)
	nodes := clusterNodes(t, redis, 2, "history 1000 1m")
	n1, n2 := nodes[0], nodes[1]
	frank := harness.LoggedIn(t, n1.WS+"/ws", "frank")
	gina := harness.LoggedIn(t, n2.WS+"/ws", "gina")

	// Pushes go on through the restart: 150 before it begins, and 300 more
	// once Redis is back, however long that takes.
	const before, afterBack = 150, 300
	uids := []string{"frank", "gina", "hal"}
	var receipts []harness.Receipt
	var errs []error
	restart, done := make(chan struct{}), make(chan struct{})
	var sent, back atomic.Int64 // pushes answered so far; the first push sent once Redis was back (+1)
	go func() {
		defer close(done)
		for i := 0; i < 20000; i++ { // bounded, should the restart fail
			if i == before {
				close(restart)
			}
			if b := back.Load(); b > 0 && i >= int(b)-1+afterBack {
				return
			}
			rc, err := n1.API().SendErr(fmt.Sprintf(`{"uid":%q,"data":%d}`, uids[i%3], i))
			receipts, errs = append(receipts, rc), append(errs, err)
			sent.Add(1)
			time.Sleep(5 * time.Millisecond)
		}
	}()
	<-restart
	redis.Restart()
	// Pushes from after are sent once Redis is back (the one in flight
	// may have started before): one stored from then on is in the new Redis.
	after := int(sent.Load()) + 1
	back.Store(int64(after) + 1)
	<-done
	pushes := len(receipts)

	harness.Eventually(t, "routing across nodes again", func() (bool, string) {
		r := n1.API().Post(t, "/send", `{"uid":"gina","data":"back"}`)
		return strings.HasPrefix(r.Body, `{"delivered":1,`), r.Body
	})
	n1.API().Send(t, `{"uid":"frank","data":"end"}`)
	n1.API().Send(t, `{"uid":"gina","data":"end"}`)

	var degraded, remoteSaid, storedAfter int
	wantHal := map[string]bool{}
	for i := range pushes {
		if errs[i] != nil {
			t.Fatalf("push %d was not answered: %v", i, errs[i])
		}
		rc := receipts[i]
		if rc.ClusterUnavailable || rc.UnreachedNodes > 0 {
			degraded++
		}
		switch uids[i%3] {
		case "frank":
			if rc.Delivered != 1 {
				t.Fatalf("push %d to the local uid: %+v", i, rc)
			}
		case "gina":
			if rc.Delivered == 1 {
				remoteSaid++
			}
		case "hal":
			if rc.Stored && i >= after {
				wantHal[fmt.Sprint(i)] = true
				storedAfter++
			}
		}
	}
	// frank got every push to him, in order.
	for i := 0; i < pushes; i += 3 {
		frank.ExpectMessage(fmt.Sprint(i))
	}
	frank.ExpectMessage(`"end"`)
	// gina got each push said delivered, none twice, in order.
	missed := func(from, to int) {
		for j := from; j < to; j++ {
			if j%3 == 1 && receipts[j].Delivered == 1 {
				t.Fatalf("push %d said delivered to gina, who never got it", j)
			}
		}
	}
	last, got := -1, 0
	for {
		f := gina.ExpectType("message")
		d := string(f.Data)
		if d == `"back"` {
			continue
		}
		if d == `"end"` {
			break
		}
		var i int
		if _, err := fmt.Sscan(d, &i); err != nil || i%3 != 1 || i <= last {
			t.Fatalf("gina got %s after push %d", f.Raw, last)
		}
		missed(last+1, i)
		last, got = i, got+1
	}
	missed(last+1, pushes)
	// hal's mailbox holds every push stored since Redis came back.
	hal := harness.Dial(t, "hal", n2.WS+"/ws", nil)
	w := login(hal, "hal")
	replayed := 0
	if w.Resume != nil {
		replayed = w.Resume.Replayed
	}
	if replayed < storedAfter {
		t.Fatalf("hal's welcome %s: want at least the %d pushes stored since Redis came back", w.Raw, storedAfter)
	}
	for range replayed {
		delete(wantHal, string(hal.ExpectType("message").Data))
	}
	if len(wantHal) > 0 {
		t.Fatalf("pushes said stored after the restart but not in hal's mailbox: %v", wantHal)
	}
	t.Logf("%d pushes across a Redis restart (back at push %d): %d receipts said degraded; the local uid got all %d; "+
		"the remote uid got %d, %d of them said delivered; %d stored for the offline uid after the restart, all in its mailbox",
		pushes, after, degraded, (pushes+2)/3, got, remoteSaid, storedAfter)
}

// TestClusterRedisFlush: Redis loses the cluster's state while every node
// stays connected to it (FLUSHALL, as a failover to an empty replica would),
// and a node keeps pushing as fast as its callers can all along: the node
// still gets back in (its uids routed to it again) and its uids' groups are
// recorded again, and no push is refused meanwhile.
func TestClusterRedisFlush(t *testing.T) {
	redis := harness.StartRedis(t)
	nodes := clusterNodes(t, redis, 2, "history 100 1m")
	n1, n2 := nodes[0], nodes[1]
	frank := harness.LoggedIn(t, n1.WS+"/ws", "frank")
	n2.API().Post(t, "/join", `{"uid":"frank","group":"team"}`).ExpectJSON(http.StatusOK, `{"ok":true}`)

	// Callers of n1's API that never pause, to a uid nobody holds.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var pushed, refused atomic.Int64
	var firstErr atomic.Value
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := n1.API().SendErr(`{"uid":"nobody","data":"load"}`); err != nil {
					refused.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				}
				pushed.Add(1)
			}
		})
	}
	var once sync.Once
	stopLoad := func() { once.Do(func() { close(stop); wg.Wait() }) }
	defer stopLoad()
	harness.Eventually(t, "pushes flowing", func() (bool, string) { return pushed.Load() > 100, fmt.Sprint(pushed.Load()) })
	if _, err := redis.Do("FLUSHALL"); err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, "n1 back in the cluster, under its callers' pushes", func() (bool, string) {
		r := n2.API().Post(t, "/send", `{"uid":"frank","data":"probe"}`)
		return strings.HasPrefix(r.Body, `{"delivered":1,`), r.Body
	})
	n2.API().Get(t, "/uids?group=team").ExpectJSON(http.StatusOK, `{"group":"team","uids":["frank"]}`)
	if rc := n2.API().Send(t, `{"group":"team","data":"to the team"}`); rc.Delivered != 1 || !rc.Stored {
		t.Fatalf("a push to frank's group from the other node: %+v", rc)
	}
	for {
		if f := frank.ExpectType("message"); string(f.Data) == `"to the team"` {
			break
		}
	}
	stopLoad()
	if n := refused.Load(); n > 0 {
		t.Fatalf("%d of %d pushes refused across the flush, the first: %v", n, pushed.Load(), firstErr.Load())
	}
	t.Logf("%d pushes through n1 across the flush, none refused", pushed.Load())
}

// TestClusterReconnects: a uid whose connection is replaced by a new one
// on the same node, again and again, the old closing as the new logs in
// (an app reconnecting), stays online for the whole cluster, in its
// groups, and reachable from another node, after every replacement.
func TestClusterReconnects(t *testing.T) {
	redis := harness.StartRedis(t)
	nodes := clusterNodes(t, redis, 2)
	n1, n2 := nodes[0], nodes[1]
	old := harness.LoggedIn(t, n1.WS+"/ws", "ursula")
	for i := range 150 {
		n2.API().Post(t, "/join", `{"uid":"ursula","group":"g"}`).ExpectJSON(http.StatusOK, `{"ok":true}`)
		next := harness.Dial(t, "ursula", n1.WS+"/ws", nil)
		closed := make(chan struct{})
		go func() { defer close(closed); old.CloseNormally() }()
		next.Login("ursula")
		<-closed
		old = next
		harness.Eventually(t, fmt.Sprintf("ursula online for the cluster after replacement %d", i), func() (bool, string) {
			r := n2.API().Get(t, "/online?uid=ursula")
			return strings.HasPrefix(r.Body, `{"connections":1,"online":true,`), r.Body
		})
	}
	rc := n2.API().Send(t, `{"uid":"ursula","data":"still here"}`)
	if rc.Delivered != 1 {
		t.Fatalf("a push from the other node after the replacements: %+v", rc)
	}
	if f := old.ExpectType("message"); string(f.Data) != `"still here"` {
		t.Fatalf("ursula got %s", f.Raw)
	}
}

// TestClusterClientOrder: a client's commands take effect in the order it
// sent them, however fast it sends them (its node hands them over to Redis
// in batches, without waiting for each) and across a reload that replaces
// the node's broker: publishes arrive in order, and a publish between a
// join and a leave is the only one the group reaches the client with.
func TestClusterClientOrder(t *testing.T) {
	redis := harness.StartRedis(t)
	nodes := clusterNodes(t, redis, 2)
	texter := harness.LoggedInText(t, nodes[0].WS+"/text", "texter")
	joiner := harness.LoggedIn(t, nodes[0].WS+"/ws", "joiner")
	receiver := harness.LoggedIn(t, nodes[1].WS+"/ws", "receiver")
	nodes[0].API().Post(t, "/join", `{"uid":"receiver","group":"g"}`).ExpectJSON(http.StatusOK, `{"ok":true}`)

	// Half of them before a reload that gives the node a new broker (the
	// same Redis under another URL), half after it.
	const n = 150 // within the default rate limit's burst
	for i := range n / 2 {
		texter.Send(fmt.Sprintf("receiver:%d", i))
	}
	before := getClusterStats(t, nodes[0].API()).Cluster.Node
	nodes[0].Load(clusterConfigOf(clusterDirective(sameRedis(redis.URL), "lease 2s")))
	if getClusterStats(t, nodes[0].API()).Cluster.Node == before {
		t.Fatal("the reload kept the broker")
	}
	for i := n / 2; i < n; i++ {
		texter.Send(fmt.Sprintf("receiver:%d", i))
	}
	for i := range n {
		receiver.Expect(fmt.Sprintf(`{"type":"message","seq":%d,"data":"%d","from":"texter"}`, i+1, i))
	}

	joiner.Send(`{"type":"join","group":"g"}`)
	joiner.Send(`{"type":"send","group":"g","data":"while a member"}`)
	joiner.Send(`{"type":"leave","group":"g"}`)
	joiner.Send(`{"type":"send","id":"s","group":"g","data":"after leaving"}`)
	receiver.Expect(fmt.Sprintf(`{"type":"message","seq":%d,"data":"while a member","from":"joiner","group":"g"}`, n+1))
	receiver.Expect(fmt.Sprintf(`{"type":"message","seq":%d,"data":"after leaving","from":"joiner","group":"g"}`, n+2))
	var got []string
	for {
		f := joiner.ReadFrame()
		if f.Type == "sent" {
			break
		}
		got = append(got, f.Raw)
	}
	want := []string{
		`{"type":"joined","group":"g"}`,
		`{"type":"message","seq":1,"data":"while a member","from":"joiner","group":"g"}`,
		`{"type":"left","group":"g"}`,
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("the joiner got %q before its receipt, want %q in some order", got, want)
	}
}

// TestClusterReload: a reload that keeps the cluster keeps the broker (the
// same node id, the same Redis connections) and every socket, and so does
// one that changes only the lease or the reply timeout; one that moves to
// other keys moves the hub over, its sockets staying open, with the uids
// that logged in meanwhile and the groups its uids are in.
func TestClusterReload(t *testing.T) {
	redis := harness.StartRedis(t)
	nodes := clusterNodes(t, redis, 2)
	n1, n2 := nodes[0], nodes[1]
	c := harness.Dial(t, "on n1", n1.WS+"/ws", nil)
	c.Login("hana")
	n2.API().Post(t, "/join", `{"uid":"hana","group":"crew"}`).ExpectJSON(http.StatusOK, `{"ok":true}`)
	before := getClusterStats(t, n1.API()).Cluster.Node

	n1.Load(clusterConfig(redis) + "\n{$WS_SITE}/extra {\n\trespond \"new\" 200\n}\n")
	if after := getClusterStats(t, n1.API()).Cluster.Node; after != before {
		t.Fatalf("node id %s after a reload that kept the cluster, was %s: the broker was replaced", after, before)
	}
	n2.API().Post(t, "/send", `{"uid":"hana","data":"after the reload"}`).ExpectJSON(http.StatusOK, harness.ReceiptJSON(1, 0))
	c.Expect(`{"type":"message","seq":1,"data":"after the reload"}`)

	retuned := clusterConfigOf(clusterDirective(redis.URL, "lease 3s", "reply_timeout 1s"))
	n1.Load(retuned)
	if after := getClusterStats(t, n1.API()).Cluster.Node; after != before {
		t.Fatalf("node id %s after a reload that changed only the lease and reply timeout, was %s", after, before)
	}
	n2.API().Post(t, "/send", `{"all":true,"data":"retuned"}`).ExpectJSON(http.StatusOK, harness.ReceiptJSON(1, 0))
	c.Expect(`{"type":"message","seq":2,"data":"retuned"}`)

	// Both nodes move to another prefix of keys: a new broker, the socket
	// stays, routing works on the new one. Clients log in on n1 all the
	// while it moves.
	moved := clusterConfigOf(clusterDirective(redis.URL, "lease 2s", "prefix moved"))
	type logins struct {
		n     int
		err   error
		conns []interface{ Close() error }
	}
	stop, done := make(chan struct{}), make(chan logins)
	go func() {
		var l logins
		defer func() { done <- l }()
		for ; ; l.n++ {
			select {
			case <-stop:
				return
			default:
			}
			ws, err := harness.DialErr(n1.WS+"/ws", nil)
			if err == nil {
				l.conns = append(l.conns, ws)
				_ = ws.SetReadDeadline(time.Now().Add(harness.Guard))
				err = ws.WriteJSON(map[string]string{"type": "login", "uid": fmt.Sprintf("late-%d", l.n)})
			}
			if err == nil {
				var b []byte
				if _, b, err = ws.ReadMessage(); err == nil {
					if f, _ := harness.DecodeFrame(b); f.Type != "welcome" {
						err = fmt.Errorf("got %s, want a welcome", b)
					}
				}
			}
			if err != nil {
				l.err = fmt.Errorf("late-%d: %v", l.n, err)
				return
			}
		}
	}()
	time.Sleep(20 * time.Millisecond)
	n1.Load(moved)
	time.Sleep(20 * time.Millisecond)
	close(stop)
	late := <-done
	t.Cleanup(func() {
		for _, c := range late.conns {
			_ = c.Close()
		}
	})
	if late.err != nil {
		t.Fatal(late.err)
	}
	n2.Load(moved)
	if after := getClusterStats(t, n1.API()).Cluster.Node; after == before {
		t.Fatal("the same node id after the cluster changed")
	}
	n2.API().Post(t, "/send", `{"uid":"hana","data":"moved"}`).ExpectJSON(http.StatusOK, harness.ReceiptJSON(1, 0))
	c.Expect(`{"type":"message","seq":3,"data":"moved"}`)
	if keys, _ := redis.Do("EXISTS", "moved:{"+n1.Hub("HUB")+"}:nodes"); keys != "1" {
		t.Fatalf("no node set under the new prefix (EXISTS: %q)", keys)
	}
	n2.API().Get(t, "/uids?group=crew").ExpectJSON(http.StatusOK, `{"group":"crew","uids":["hana"]}`)
	harness.Eventually(t, fmt.Sprintf("the %d uids that logged in on n1 while it moved online for the moved cluster", late.n), func() (bool, string) {
		for i := range late.n {
			uid := fmt.Sprintf("late-%d", i)
			if r := n2.API().Get(t, "/online?uid="+uid); !strings.HasPrefix(r.Body, `{"connections":1,"online":true,`) {
				return false, uid + ": " + r.Body
			}
		}
		return true, ""
	})
}

// TestClusterConfig: the cluster belongs to the hub, so endpoints of one
// hub that name different clusters are refused with an error that says so.
func TestClusterConfig(t *testing.T) {
	redis := harness.StartRedis(t)
	n := harness.StartNode(t, clusterConfig(redis))
	err := n.LoadErr(`{$WS_SITE} {
	push_hub /ws {
		hub {$HUB}
		auth first_message
		cluster ` + redis.URL + `
	}
	push_hub /text {
		hub {$HUB}
		protocol text
		auth first_message
	}
}
`)
	if err == nil || !strings.Contains(err.Error(), "name different clusters") {
		t.Fatalf("two endpoints of one hub, one clustered: %v", err)
	}
}

// grepLines keeps the lines of s that contain word.
func grepLines(s, word string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, word) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
