package redisbroker

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/pushhub/caddy-pushhub/hub"
)

// wireEnvelopes are envelopes as nodes and scripts write them: pushes (with
// their targets, numbered or not), replies, kicks, joins and leaves, stats.
func wireEnvelopes() []string {
	var out []string
	for _, e := range pushEnvelopes() {
		out = append(out, pushEnvelope(&e), routedEnvelope(&e, []string{"u1"}), routedEnvelope(&e, names),
			head(&e)+`,"u":[["u42",7],["u43",0],["u44",123456789012]]}`, head(&e)+`,"u":[]}`)
	}
	for _, r := range [][]reply{
		{{ID: 1, Node: "n-1", Delivered: 2}},
		{{ID: 1<<63 + 5, Node: "n-2", Delivered: 1, Dropped: 3, Acked: 1}, {ID: 9, Node: "n-3"}},
		{{ID: 2, Node: "n", Stats: &hub.NodeStats{Node: "n", Connections: 3}}},
		{},
	} {
		out = append(out, string(repliesEnvelope(r)))
	}
	for _, name := range names {
		out = append(out,
			string(marshal(&envelope{Kind: kindKick, ID: 3, Origin: "n1", UID: name, Reason: name})),
			string(marshal(&envelope{Kind: kindJoin, UID: name, Group: name})),
			string(marshal(&envelope{Kind: kindStats, ID: 4, Origin: name})))
	}
	return out
}

// Envelopes are read as encoding/json reads them, and those nodes write in
// the plain shapes without it.
func TestEnvelopeReading(t *testing.T) {
	inputs := wireEnvelopes()
	for _, w := range wireEnvelopes()[:40] { // and variants encoding/json reads its own way
		inputs = append(inputs, strings.Replace(w, `"k"`, `"K"`, 1), strings.Replace(w, `:`, `: `, 1),
			strings.Replace(w, `,`, `,"x":[1,{"y":null}],`, 1), strings.Replace(w, `"i":`, `"i":0`, 1),
			strings.Replace(w, `"k":"p"`, `"k":"p","k":"\u0070"`, 1), w[:len(w)-1], w+" ", w+"x")
	}
	inputs = append(inputs, `{"k":"p","m":{"d":1},"m":{"d":2}}`, `{"k":"r","rs":[{"i":1,"d":5}],"rs":[{"i":2}]}`,
		`{"k":"p","m":{"d":"\"}"},"u":[["a",1]]}`, `{"k":"p","m":{"d":[1,2,{"a":"]"}]}}`, `{"k":"p","m":null}`,
		`{"k":"p","w":-12,"nr":false,"i":18446744073709551615}`, `{"k":"p","i":1e3}`, `{"k":"p","i":-1}`,
		`{"k":"p","i":18446744073709551616}`, `{"k":"p","w":-9223372036854775808}`, `{"k":"p","w":-9223372036854775809}`,
		`{"k":"p","w":9223372036854775807}`, `{"k":"p","w":9223372036854775808}`, `{"k":"r","rs":[{"d":-9223372036854775808}]}`, `{}`, `[]`, ``)
	for _, w := range inputs {
		got, gotErr := readEnvelope([]byte(w))
		var want envelope
		wantErr := json.Unmarshal([]byte(w), &want)
		if (gotErr == nil) != (wantErr == nil) || (gotErr == nil && !reflect.DeepEqual(*got, want)) {
			t.Errorf("%s:\n read %+v (%v)\n want %+v (%v)", w, got, gotErr, want, wantErr)
		}
	}
	// Every push, reply without stats, kick, join and leave that nodes
	// write takes the plain path, unless a name in it needs escaping.
	for _, w := range wireEnvelopes() {
		if strings.Contains(w, `\`) || strings.Contains(w, `"s":`) || strings.Contains(w, `"k":"s"`) {
			continue
		}
		if e := (envelope{}); !readPlainEnvelope([]byte(w), &e) {
			t.Errorf("%s: read through encoding/json", w)
		}
	}
}

// A push's message is read as encoding/json reads it.
func TestMessageReading(t *testing.T) {
	for _, w := range []string{
		string(encodeMessage(hub.Message{Data: json.RawMessage(`"hi"`)})),
		string(encodeMessage(hub.Message{Data: json.RawMessage(`{"a":[1,"x\"y"],"b":null}`), From: "u1", Group: "g"})),
		string(encodeMessage(hub.Message{Data: json.RawMessage(`"<b>"`), From: "é", Group: `q"`})),
		`{"d":1,"d":2}`, `{"d": 1}`, `{"d":1 }`, `{"d":tru}`, `{"d":"x","f":null}`, `{"D":3}`, `{}`, `{"d":1}x`, `"x"`,
	} {
		var got, want wireMessage
		gotErr, wantErr := readMessage([]byte(w), &got), json.Unmarshal([]byte(w), &want)
		if (gotErr == nil) != (wantErr == nil) || (gotErr == nil && !reflect.DeepEqual(got, want)) {
			t.Errorf("%s:\n read %+v (%v)\n want %+v (%v)", w, got, gotErr, want, wantErr)
		}
	}
}

// Whatever comes on a cluster's channel, the envelope and the message in
// it are read as encoding/json reads them.
func FuzzEnvelopeReading(f *testing.F) {
	for _, w := range wireEnvelopes()[:60] {
		f.Add([]byte(w))
	}
	f.Add([]byte(`{"d":{"a":"\\"},"f":"x"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, gotErr := readEnvelope(b)
		var want envelope
		wantErr := json.Unmarshal(b, &want)
		if (gotErr == nil) != (wantErr == nil) || (gotErr == nil && !reflect.DeepEqual(*got, want)) {
			t.Fatalf("%q:\n read %+v (%v)\n want %+v (%v)", b, got, gotErr, want, wantErr)
		}
		var gm, wm wireMessage
		gotErr, wantErr = readMessage(b, &gm), json.Unmarshal(b, &wm)
		if (gotErr == nil) != (wantErr == nil) || (gotErr == nil && !reflect.DeepEqual(gm, wm)) {
			t.Fatalf("message %q:\n read %+v (%v)\n want %+v (%v)", b, gm, gotErr, wm, wantErr)
		}
	})
}
