package redisbroker

import (
	"encoding/json"
	"errors"
	"math"
	"testing"

	"github.com/pushhub/caddy-pushhub/hub"
)

// names covers what node ids, targets, groups and uids may hold: plain
// ASCII, what JSON escapes, what encoding/json escapes for HTML, UTF-8,
// invalid UTF-8 (replaced), U+2028 (escaped), DEL, and nothing.
var names = []string{
	"", "n1", "node-7f3a", "g", "team:ops", `q"uote`, `back\slash`, "tab\there", "nl\n", "\x01ctl",
	"<b>&amp;", "é", "日本", "bad\xffutf8", "line\u2028sep", "del\x7f", "a/b", " spaced ",
}

// pushEnvelopes are push envelopes as pushCall makes them.
func pushEnvelopes() []envelope {
	msgs := []json.RawMessage{
		nil,
		encodeMessage(hub.Message{Data: json.RawMessage(`"hi"`)}),
		encodeMessage(hub.Message{Data: json.RawMessage(`{ "html": "<b>&</b>", "n": [1, 2.5e3] }`), From: "u1", Group: "g<1>"}),
		encodeMessage(hub.Message{Data: json.RawMessage(`"é\u2028"`), From: `q"`}),
	}
	var out []envelope
	for i, name := range names {
		for j, m := range msgs {
			e := envelope{Kind: kindPush, ID: uint64(i * j * 997), Origin: name, Msg: m}
			switch (i + j) % 4 {
			case 0:
				e.Target = targetUIDs
			case 1:
				e.Target, e.Group = targetGroup, names[(i+j)%len(names)]
			case 2:
				e.Target, e.WaitMS, e.NoReply = targetAll, int64(i*1000), true
			case 3:
				e.ID, e.WaitMS = math.MaxUint64, -1
			}
			out = append(out, e)
		}
	}
	return out
}

// The push envelope written by hand is the one encoding/json writes.
func TestPushEnvelopeAsEncodingJSON(t *testing.T) {
	for _, e := range pushEnvelopes() {
		want := string(marshal(&e))
		if got := pushEnvelope(&e); got != want {
			t.Errorf("pushEnvelope(%+v)\n got %s\nwant %s", e, got, want)
		}
		if got := head(&e); got != want[:len(want)-1] {
			t.Errorf("head(%+v)\n got %s\nwant %s", e, got, want[:len(want)-1])
		}
		// A push without history to uids carries them all, unnumbered.
		for n := 1; n <= 3; n++ {
			uids := names[:n]
			if n == 3 {
				uids = names[len(names)-n:]
			}
			r := e
			r.U = nil
			for _, u := range uids {
				r.U = append(r.U, target{UID: u})
			}
			if got, want := routedEnvelope(&e, uids), string(marshal(&r)); got != want {
				t.Errorf("routedEnvelope(%+v, %q)\n got %s\nwant %s", e, uids, got, want)
			}
		}
	}
}

// The replies envelope written by hand is the one encoding/json writes.
func TestRepliesEnvelopeAsEncodingJSON(t *testing.T) {
	var all []reply
	for i, name := range names {
		r := reply{ID: uint64(i) * 1e17, Node: name, Delivered: i % 3, Dropped: i % 2 * -i, Acked: i % 4}
		all = append(all, r)
		if i == 5 {
			r.Stats = &hub.NodeStats{Node: name, Connections: 7}
		}
		for _, rs := range [][]reply{{r}, all} {
			if got, want := string(repliesEnvelope(rs)), string(marshal(&envelope{Kind: kindReplies, Replies: rs})); got != want {
				t.Errorf("repliesEnvelope(%+v)\n got %s\nwant %s", rs, got, want)
			}
		}
	}
	if got, want := string(repliesEnvelope(nil)), string(marshal(&envelope{Kind: kindReplies})); got != want {
		t.Errorf("repliesEnvelope(nil) = %s, want %s", got, want)
	}
}

// Targets read by the plain path are what the general path reads, for
// every form a target can take on the wire.
func TestTargetDecoding(t *testing.T) {
	seqs := []uint64{0, 1, 42, 1e18, math.MaxUint64}
	var wires []string
	for _, uid := range names {
		for _, seq := range seqs {
			b, err := target{uid, seq}.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			wires = append(wires, string(b))
		}
	}
	// As Redis's cjson writes them: "/" escaped, a large seq in exponent form.
	// Raw invalid UTF-8 (read as U+FFFD), and a seq past uint64.
	wires = append(wires, `["a\/b",3]`, `["u",1e+14]`, `[ "u" , 5 ]`, `["u",-1]`, `["u",1.5]`, `["u"]`, `["u",1,2]`,
		"[\"bad\xff\",1]", `["u",18446744073709551616]`, `["u",99999999999999999999]`)
	for _, w := range wires {
		var fast target
		fastErr := json.Unmarshal([]byte(w), &fast)
		var pair []json.RawMessage
		var slow target
		slowErr := json.Unmarshal([]byte(w), &pair)
		if slowErr == nil && len(pair) == 2 {
			slowErr = json.Unmarshal(pair[0], &slow.UID)
			if slowErr == nil {
				slowErr = json.Unmarshal(pair[1], &slow.Seq)
			}
		} else if slowErr == nil {
			slowErr = errors.New("not a pair")
		}
		if (fastErr == nil) != (slowErr == nil) || fast != slow {
			t.Errorf("%s: read as %+v (%v), want %+v (%v)", w, fast, fastErr, slow, slowErr)
		}
	}
}

// A push envelope as a node reads it: the head pushCall writes, with the
// targets Redis adds.
const wirePush = `{"k":"p","i":123456,"o":"n-3f9c2a","t":"u","m":{"d":"a message of some length, 0123456789"},"u":[["u4242",0]]}`

func BenchmarkPushHead(b *testing.B) {
	e := envelope{Kind: kindPush, ID: 123456, Origin: "n-3f9c2a", Target: targetUIDs,
		Msg: encodeMessage(hub.Message{Data: json.RawMessage(`"a message of some length, 0123456789"`)})}
	b.ReportAllocs()
	for b.Loop() {
		_ = head(&e)
	}
}

// Reading a push and a batch of replies, as a node reads them, against
// encoding/json.
func BenchmarkReadEnvelope(b *testing.B) {
	replies := string(marshal(&envelope{Kind: kindReplies, Replies: []reply{{ID: 123456, Node: "n-3f9c2a", Delivered: 1}, {ID: 123457, Node: "n-3f9c2a", Delivered: 2}}}))
	for _, w := range []struct{ name, wire string }{{"push", wirePush}, {"replies", replies}} {
		b.Run(w.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				e, err := readEnvelope([]byte(w.wire))
				if err != nil || len(e.U)+len(e.Replies) == 0 {
					b.Fatal(err)
				}
				if e.Kind == kindPush {
					if _, err := decodeMessage(e.Msg); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
		b.Run(w.name+"/encoding-json", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var e envelope
				if err := json.Unmarshal([]byte(w.wire), &e); err != nil || len(e.U)+len(e.Replies) == 0 {
					b.Fatal(err)
				}
				if e.Kind == kindPush {
					var m wireMessage
					if err := json.Unmarshal(e.Msg, &m); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// Writing a batch of two replies, against encoding/json.
func BenchmarkWriteReplies(b *testing.B) {
	rs := []reply{{ID: 123456, Node: "n-3f9c2a", Delivered: 1}, {ID: 123457, Node: "n-3f9c2a", Delivered: 2}}
	b.Run("plain", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = repliesEnvelope(rs)
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = marshal(&envelope{Kind: kindReplies, Replies: rs})
		}
	})
}
