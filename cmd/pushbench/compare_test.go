package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pushhub/caddy-pushhub/internal/testenv"
)

// result is a small report as pushbench writes it.
func result(target string, connectUS, bestRate, p99 float64) *report {
	r := &report{Config: configOut{Target: target, N: 1000, Nodes: 1, Protocol: "text", Rates: []float64{2000}}}
	r.Connect = &connectR{Connected: 1000, ServerCPUPerConn: ptr(connectUS)}
	r.Unicast = []*rateR{{Path: "client", TargetRate: 2000, SendRate: 2000, Latency: latency{Count: 10, P99Ms: p99}, CPUPerMsg: ptr(50.0)}}
	r.FindMax = []*findMax{{Path: "client", Run: 1, BestRate: bestRate}}
	r.Storm = &stormR{Connections: 1000, Reconnected: 1000, AllBack: true, Seconds: 2}
	return r
}

func writeResult(t *testing.T, dir, name string, r *report) string {
	t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	// As pushbench's stdout: the table, then the JSON line.
	if err := os.WriteFile(p, append([]byte("PHASE FIGURE VALUE\n...\n"), append(b, '\n')...), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCompare(t *testing.T) {
	dir := t.TempDir()
	hub1 := writeResult(t, dir, "hub1", result("hub", 100, 14500, 1))
	hub2 := writeResult(t, dir, "hub2", result("hub", 140, 15500, 3))
	hub3 := writeResult(t, dir, "hub3", result("hub", 120, 15000, 2))
	rec := result("recipe", 60, 20000, 8)
	rec.Skipped = map[string]string{"unicast api": "the recipe has no push API"}
	rec.Disturbed = []string{"broadcast"}
	rec.Unicast[0].SendRate = 1500 // saturated: it sent less than asked
	recipe1 := writeResult(t, dir, "recipe1", rec)
	rec2 := result("recipe", 80, 10000, 4) // a maximum half the other round's
	rec2.Storm.AllBack, rec2.Storm.Reconnected = false, 990
	rec2.Unicast[0].SendRate = 1700
	recipe2 := writeResult(t, dir, "recipe2", rec2)

	var out, errs bytes.Buffer
	md := filepath.Join(dir, "t.md")
	code := run([]string{"compare", "-o", md, "-ratios", "hub/recipe", "hub=" + hub1 + "," + hub2 + "," + hub3, "recipe=" + recipe1 + "," + recipe2}, &out, &errs)
	if code != 0 {
		t.Fatalf("compare exited %d: %s", code, errs.String())
	}
	table := out.String()
	if saved, _ := os.ReadFile(md); string(saved) != table {
		t.Error("-o wrote something else than stdout")
	}
	row := func(title string) string {
		for _, l := range strings.Split(table, "\n") {
			if strings.HasPrefix(l, "| "+title+" |") {
				return l
			}
		}
		t.Errorf("no row %q in\n%s", title, table)
		return ""
	}
	if !strings.HasPrefix(table, "| figure | hub | recipe | hub / recipe |\n|---|---|---|---|\n") {
		t.Errorf("header:\n%s", table)
	}
	// Medians: hub 100,140,120 -> 120; recipe 60,80 -> 70.
	if got := row("server CPU per connect + login (µs)"); got != "| server CPU per connect + login (µs) | 120 | 70.0 | 1.71× |" {
		t.Errorf("connect row %q", got)
	}
	if got := row("unicast by client publishing at 2000/s: p99 (ms)"); got != "| unicast by client publishing at 2000/s: p99 (ms) | 2.00 | 6.00 | 0.33× |" {
		t.Errorf("p99 row %q", got)
	}
	// The rate a paced run reached: the recipe's, below the one asked.
	if got := row("unicast by client publishing at 2000/s: pushes sent per second"); got != "| unicast by client publishing at 2000/s: pushes sent per second | 2000 | 1600 | 1.25× |" {
		t.Errorf("sent rate row %q", got)
	}
	// The recipe's maxima are 2x apart: flagged.
	if got := row("highest client-publishing rate with p99 under the bound (/s)"); got != "| highest client-publishing rate with p99 under the bound (/s) | 15000 | 15000 ⚠ | 1.00× |" {
		t.Errorf("find-max row %q", got)
	}
	// A storm that did not bring everyone back has no time.
	if got := row("reconnect storm: time until all are logged in again (s)"); got != "| reconnect storm: time until all are logged in again (s) | 2.00 | 2.00 | 1.00× |" {
		t.Errorf("storm row %q", got)
	}
	for _, want := range []string{
		"- hub: hub, text over ws, 1000 connection(s) on 1 node(s), median of 3 round(s)\n",
		"skipped: unicast api (the recipe has no push API)",
		"round 1 (" + recipe1 + "): DISTURBED: broadcast",
		"round 2 (" + recipe2 + "): storm: only 990 of 1000 logged in again",
		"- ⚠ recipe, highest client-publishing rate with p99 under the bound (/s): runs' maxima 10000 to 20000, more than 10% apart (unstable)",
	} {
		if !strings.Contains(table, want) {
			t.Errorf("no %q in\n%s", want, table)
		}
	}
	// Rows no column has are left out.
	if strings.Contains(table, "TLS") || strings.Contains(table, "group push") {
		t.Errorf("rows without values:\n%s", table)
	}

	// Without -ratios, each column over the first.
	out.Reset()
	if code := run([]string{"compare", "a=" + hub1, "b=" + recipe1, "c=" + hub2}, &out, &errs); code != 0 || !strings.Contains(out.String(), "| b / a | c / a |") {
		t.Errorf("default ratios (%d):\n%s", code, out.String())
	}
	for _, bad := range [][]string{
		{"compare"},
		{"compare", "a"},
		{"compare", "a=" + filepath.Join(dir, "missing")},
		{"compare", "a=" + hub1, "a=" + hub2},
		{"compare", "-ratios", "a/zz", "a=" + hub1},
		{"compare", "-ratios", "a-b", "a=" + hub1},
	} {
		errs.Reset()
		if code := run(bad, &out, &errs); code == 0 {
			t.Errorf("%q succeeded", bad)
		}
	}
	notJSON := filepath.Join(dir, "bad")
	os.WriteFile(notJSON, []byte("pushbench: -pid 1: no such process\n"), 0o644)
	if code := run([]string{"compare", "a=" + notJSON}, &out, &errs); code == 0 {
		t.Error("a file without a result was read")
	}
}

// TestCompareScriptCounts: compare.sh refuses a procs= or nodes= that is
// not a count before it builds or starts anything (Go ignores a GOMAXPROCS
// it cannot read, and the run would measure the default); a good one goes
// on to the next check (here: Centrifugo's binary, which is not given).
func TestCompareScriptCounts(t *testing.T) {
	bash := testenv.LookPath(t, []string{"bash"}, "compare.sh is a bash script: apt-get install bash")
	run := func(server string) (int, string) {
		cmd := exec.Command(bash, "compare.sh", "t", server)
		cmd.Env = append(os.Environ(), "CENTRIFUGO_BIN=")
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return code, string(out)
	}
	for _, bad := range []string{"procs=x", "procs=", "procs=0", "procs=-1", "nodes=0", "nodes=2x"} {
		code, out := run("cf=centrifugo,redis," + bad)
		name := bad[:strings.IndexByte(bad, '=')]
		if code != 2 || !strings.Contains(out, name+" wants a whole number from 1") {
			t.Errorf("%s: exit %d, %q", bad, code, out)
		}
	}
	code, out := run("cf=centrifugo,redis,nodes=3,procs=1")
	if code != 2 || !strings.Contains(out, "set CENTRIFUGO_BIN") || strings.Contains(out, "whole number") {
		t.Errorf("good counts: exit %d, %q", code, out)
	}
}

func TestMedianAndFormat(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{{[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v", c.in, got)
		}
	}
	for v, want := range map[float64]string{19000: "19000", 209.6: "210", 12.34: "12.3", 4.567: "4.57", 0.3141: "0.314", 0: "0.000"} {
		if got := num(v); got != want {
			t.Errorf("num(%v) = %s, want %s", v, got, want)
		}
	}
	if lo, hi, unstable := spread([]float64{10000, 10900}); lo != 10000 || hi != 10900 || unstable {
		t.Errorf("9%% apart: %v %v %v", lo, hi, unstable)
	}
	if _, _, unstable := spread([]float64{10000, 11500}); !unstable {
		t.Error("15% apart is not flagged")
	}
}

func TestDisturbedPhases(t *testing.T) {
	busy := cpuUse{OthersCores: ptr(0.6)}
	quiet := cpuUse{OthersCores: ptr(0.1)}
	r := &report{
		Connect:   &connectR{cpuUse: quiet},
		Unicast:   []*rateR{{Path: "client", TargetRate: 2000, cpuUse: busy}},
		FindMax:   []*findMax{{Path: "client", Run: 2, Disturbed: 1, Steps: make([]*rateR, 4)}},
		Storm:     &stormR{cpuUse: busy},
		ResumeTLS: &resumeR{Full: &handshakeR{cpuUse: quiet}, Resumed: &handshakeR{cpuUse: busy}},
	}
	got := strings.Join(r.disturbedPhases(), "; ")
	if got != "unicast client 2000/s; find-max client (run 2): 1 of 4 steps; storm; resume-tls resumed" {
		t.Errorf("disturbed: %s", got)
	}
}

func TestPrintTable(t *testing.T) {
	r := result("recipe", 60, 20000, 8)
	r.Config.WS = []string{"ws://127.0.0.1:8181/"}
	r.Skipped = map[string]string{"api": "the recipe has no push API"}
	r.Broadcast = &fanoutR{Via: "client", Pushes: 3, Completed: 3, Expected: 30, Received: 30}
	r.ResumeTLS = &resumeR{Connections: 10, Full: &handshakeR{Connected: 10}, Resumed: &handshakeR{Connected: 10}}
	r.FindMax = append(r.FindMax, &findMax{Path: "client", Run: 2, BestRate: 30000})
	var out bytes.Buffer
	printTable(&out, r)
	for _, want := range []string{
		"pushbench: recipe ws://127.0.0.1:8181/ (text), api none",
		"3 published by a client",
		"n/a (the server does not say) queued by the server, 30 expected, 30 received",
		"client's write",
		"the recipe has no push API",
		"20000 to 30000 msg/s: UNSTABLE",
		"yes after 2.00s",
		"10 reconnected twice",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %q in\n%s", want, out.String())
		}
	}
}
