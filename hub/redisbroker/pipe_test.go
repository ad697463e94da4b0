package redisbroker

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// Pushes routed without history that follow one another in a pipeline
// share one routing script, from this node, their arguments one after the
// other; a push routed alone gets the leaner script of one push; any
// other script stays on its own, in its place, so that a client's pushes
// keep their order.
func TestScriptUnits(t *testing.T) {
	route := func(key, env string, uids ...any) *scriptCall {
		return &scriptCall{s: scriptRoute, args: append([]any{key, 1000, 5000, env, len(uids)}, uids...)}
	}
	fan := &scriptCall{s: scriptFanOut, args: []any{"all", "n1", "", 0, 0}}
	r1, r2, r3 := route("", "e1", "u1"), route("k2", "e2", "u2", "u3"), route("", "e3", "u4")
	units := scriptUnits("n1", []*scriptCall{r1, r2, fan, r3})
	want := []scriptUnit{
		{s: scriptRoute, args: []any{"n1", "", 1000, 5000, "e1", 1, "u1", "k2", 1000, 5000, "e2", 2, "u2", "u3"}, calls: []*scriptCall{r1, r2}, size: 4},
		{s: scriptFanOut, args: fan.args, calls: []*scriptCall{fan}},
		{s: scriptRouteOne, args: []any{"n1", "e3", "", 1000, 5000, "u4"}, calls: []*scriptCall{r3}, size: 2},
	}
	if !reflect.DeepEqual(units, want) {
		t.Fatalf("units:\n got %+v\nwant %+v", units, want)
	}
	if !reflect.DeepEqual(r1.args, []any{"", 1000, 5000, "e1", 1, "u1"}) {
		t.Fatalf("joining changed a push's own arguments: %v", r1.args)
	}
	if got, want := scriptUnits("n1", []*scriptCall{r2}), []scriptUnit{{s: scriptRouteOne, args: []any{"n1", "e2", "k2", 1000, 5000, "u2", "u3"}, calls: []*scriptCall{r2}, size: 2}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("a push alone:\n got %+v\nwant %+v", got, want)
	}

	// A routing script carries at most routeMaxBytes of envelopes: one
	// message to a node stays far below what Redis lets a subscriber hold.
	big := strings.Repeat("x", routeMaxBytes/2)
	b1, b2, b3 := route("", big, "u1"), route("", big, "u2"), route("", big, "u3")
	if got := scriptUnits("n1", []*scriptCall{b1, b2, b3, r3}); len(got) != 2 || len(got[0].calls) != 2 || len(got[1].calls) != 2 || got[1].calls[0] != b3 {
		t.Fatalf("%d units of big envelopes, the first with %d pushes: want 2 of 2", len(got), len(got[0].calls))
	}

	// Each push gets its own answer from the routing script's: the nodes
	// it went to, or the value of the key another push holds.
	units[0].give([]any{[]any{int64(0), "n2"}, "p:123"}, nil)
	if !reflect.DeepEqual(r1.v, []any{int64(0), "n2"}) || r1.err != nil || r2.v != "p:123" || r2.err != nil {
		t.Fatalf("answers: %v (%v), %v (%v)", r1.v, r1.err, r2.v, r2.err)
	}
	// A failure, or an answer that does not match the pushes, fails each.
	boom := errors.New("boom")
	for _, tc := range []struct {
		v    any
		err  error
		want error
	}{{nil, boom, boom}, {[]any{"p:1"}, nil, errRouteAnswer}, {"p:1", nil, errRouteAnswer}} {
		r1.v, r2.v = nil, nil
		units[0].give(tc.v, tc.err)
		if r1.err != tc.want || r2.err != tc.want || r1.v != nil || r2.v != nil {
			t.Fatalf("give(%v, %v): %v, %v; want %v for both", tc.v, tc.err, r1.err, r2.err, tc.want)
		}
	}
	// Any other script's answer is its push's, whatever it holds.
	units[1].give([]any{int64(0), "n2", "n3"}, nil)
	if !reflect.DeepEqual(fan.v, []any{int64(0), "n2", "n3"}) || fan.err != nil {
		t.Fatalf("fan-out's answer: %v (%v)", fan.v, fan.err)
	}
}
