package main

import (
	"cmp"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"slices"
	"strings"
)

// pushbench compare reads the JSON results of several servers (each of one
// or more rounds) and prints one markdown table: a column per server with
// the median over its rounds, then the ratios asked for. compare.sh calls it
// at the end of a run.

// column is one server's results.
type column struct {
	label   string
	files   []string
	reports []*report
}

// figure is a row of the table: how to read its values from one report
// (several where one run measures it several times, as -find-max-runs).
type figure struct {
	title string
	get   func(r *report) []float64
	// spread: flag columns whose values are more than maxSpread apart.
	spread bool
}

func compareMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("pushbench compare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("o", "", "also write the table to this `file`")
	ratios := fs.String("ratios", "", "ratio columns, comma-separated `a/b` label pairs (default: each column over the first)")
	title := fs.String("title", "", "a heading above the table")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: pushbench compare [flags] label=result.json[,result.json...] ...\n\n"+
			"One markdown table of pushbench results: a column per label with the median over its\n"+
			"files (rounds), then ratio columns.\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	cols, err := loadColumns(fs.Args())
	if err != nil {
		fmt.Fprintln(stderr, "pushbench compare:", err)
		return 2
	}
	pairs, err := parseRatios(*ratios, cols)
	if err != nil {
		fmt.Fprintln(stderr, "pushbench compare:", err)
		return 2
	}
	var sb strings.Builder
	if *title != "" {
		fmt.Fprintf(&sb, "### %s\n\n", *title)
	}
	writeCompare(&sb, cols, pairs)
	io.WriteString(stdout, sb.String())
	if *out != "" {
		if err := os.WriteFile(*out, []byte(sb.String()), 0o644); err != nil {
			fmt.Fprintln(stderr, "pushbench compare:", err)
			return 1
		}
	}
	return 0
}

// loadColumns reads label=file[,file...] arguments.
func loadColumns(args []string) ([]*column, error) {
	if len(args) == 0 {
		return nil, errors.New("no results given: label=result.json[,result.json...]")
	}
	var cols []*column
	for _, a := range args {
		label, files, ok := strings.Cut(a, "=")
		if !ok || label == "" || files == "" {
			return nil, fmt.Errorf("%q: want label=result.json[,result.json...]", a)
		}
		for _, c := range cols {
			if c.label == label {
				return nil, fmt.Errorf("label %q given twice", label)
			}
		}
		c := &column{label: label}
		for _, f := range splitList(files) {
			b, err := os.ReadFile(f)
			if err != nil {
				return nil, err
			}
			r, err := parseResult(b)
			if err != nil {
				return nil, fmt.Errorf("%s: %v", f, err)
			}
			c.files = append(c.files, f)
			c.reports = append(c.reports, r)
		}
		cols = append(cols, c)
	}
	return cols, nil
}

// parseResult reads pushbench's JSON result: the file -json-out writes, or
// the last line of its output.
func parseResult(b []byte) (*report, error) {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	r := &report{}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), r); err != nil {
		return nil, fmt.Errorf("not a pushbench result: %v", err)
	}
	return r, nil
}

// ratioPair is a ratio column: num's median over den's.
type ratioPair struct{ num, den int }

func parseRatios(s string, cols []*column) ([]ratioPair, error) {
	find := func(label string) int {
		return slices.IndexFunc(cols, func(c *column) bool { return c.label == label })
	}
	var out []ratioPair
	if strings.TrimSpace(s) == "" {
		for i := 1; i < len(cols); i++ {
			out = append(out, ratioPair{i, 0})
		}
		return out, nil
	}
	for _, p := range splitList(strings.ReplaceAll(s, " ", ",")) {
		a, b, ok := strings.Cut(p, "/")
		if !ok {
			return nil, fmt.Errorf("-ratios: %q is not a/b", p)
		}
		i, j := find(a), find(b)
		if i < 0 || j < 0 {
			return nil, fmt.Errorf("-ratios: %q names a label that has no results", p)
		}
		out = append(out, ratioPair{i, j})
	}
	return out, nil
}

// one wraps a single optional value.
func one(v *float64) []float64 {
	if v == nil {
		return nil
	}
	return []float64{*v}
}

func val(v float64) []float64 { return []float64{v} }

// unicastRun finds a report's paced run of a path at a rate.
func unicastRun(r *report, path string, rate float64) *rateR {
	for _, x := range r.Unicast {
		if x.Path == path && x.TargetRate == rate {
			return x
		}
	}
	return nil
}

// figures lists the rows of the table for the results at hand.
func figures(cols []*column) []figure {
	kib := func(v *float64) []float64 {
		if v == nil {
			return nil
		}
		return val(*v / 1024)
	}
	fs := []figure{
		{title: "server CPU per connect + login (µs)", get: func(r *report) []float64 {
			if r.Connect == nil {
				return nil
			}
			return one(r.Connect.ServerCPUPerConn)
		}},
		{title: "connect + login p99 (ms)", get: func(r *report) []float64 {
			if r.Connect == nil {
				return nil
			}
			return val(r.Connect.Latency.P99Ms)
		}},
		{title: "reconnect storm: time until all are logged in again (s)", get: func(r *report) []float64 {
			if r.Storm == nil || !r.Storm.AllBack {
				return nil
			}
			return val(r.Storm.Seconds)
		}},
		{title: "reconnect storm: server CPU per reconnect + login (µs)", get: func(r *report) []float64 {
			if r.Storm == nil {
				return nil
			}
			return one(r.Storm.ServerCPUPerConn)
		}},
		{title: "RSS per idle connection after the burst (KiB)", get: func(r *report) []float64 {
			if r.Idle == nil {
				return nil
			}
			return kib(r.Idle.RSSPerConn)
		}},
		{title: "peak RSS (VmHWM) per connection (KiB)", get: func(r *report) []float64 {
			if r.Idle == nil {
				return nil
			}
			return kib(r.Idle.PeakPerConn)
		}},
		{title: "goroutines per idle connection", get: func(r *report) []float64 {
			if r.Idle == nil {
				return nil
			}
			return one(r.Idle.GoroutinesPerConn)
		}},
		{title: "idle server CPU per connection (µs/s)", get: func(r *report) []float64 {
			if r.Idle == nil {
				return nil
			}
			return one(r.Idle.ServerCPUPerConn)
		}},
	}
	// The paced unicast runs, by path and rate, as the results have them.
	type run struct {
		path string
		rate float64
	}
	var runs []run
	for _, c := range cols {
		for _, r := range c.reports {
			for _, x := range r.Unicast {
				if k := (run{x.Path, x.TargetRate}); !slices.Contains(runs, k) {
					runs = append(runs, k)
				}
			}
		}
	}
	slices.SortStableFunc(runs, func(a, b run) int {
		if a.path != b.path {
			return -strings.Compare(a.path, b.path) // client first: the recipe's only path
		}
		return cmp.Compare(a.rate, b.rate)
	})
	for _, u := range runs {
		name := "unicast by client publishing"
		if u.path == "api" {
			name = "unicast through the API"
		}
		name = fmt.Sprintf("%s at %.0f/s", name, u.rate)
		get := func(f func(x *rateR) []float64) func(r *report) []float64 {
			return func(r *report) []float64 {
				if x := unicastRun(r, u.path, u.rate); x != nil {
					return f(x)
				}
				return nil
			}
		}
		fs = append(fs,
			// A saturated machine sends less than it was asked to: its
			// latencies are those of the rate it reached.
			figure{title: name + ": pushes sent per second", get: get(func(x *rateR) []float64 { return val(x.SendRate) })},
			figure{title: name + ": p50 (ms)", get: get(func(x *rateR) []float64 { return val(x.Latency.P50Ms) })},
			figure{title: name + ": p99 (ms)", get: get(func(x *rateR) []float64 { return val(x.Latency.P99Ms) })},
			figure{title: name + ": server CPU per message (µs)", get: get(func(x *rateR) []float64 { return one(x.CPUPerMsg) })},
			figure{title: name + ": Redis commands per push", get: get(func(x *rateR) []float64 {
				if x.Redis == nil {
					return nil
				}
				return one(x.Redis.CommandsPerUnit)
			})},
			figure{title: name + ": Redis CPU per push (µs)", get: get(func(x *rateR) []float64 {
				if x.Redis == nil {
					return nil
				}
				return one(x.Redis.CPUPerUnitUS)
			})},
		)
	}
	findMaxFig := func(path, name string) figure {
		return figure{title: name, spread: true, get: func(r *report) []float64 {
			var out []float64
			for _, f := range r.FindMax {
				if f.Path == path {
					out = append(out, f.BestRate)
				}
			}
			return out
		}}
	}
	fanout := func(name string, pick func(r *report) *fanoutR, f func(x *fanoutR) []float64) figure {
		return figure{title: name, get: func(r *report) []float64 {
			if x := pick(r); x != nil && x.Completed > 0 {
				return f(x)
			}
			return nil
		}}
	}
	bc := func(r *report) *fanoutR { return r.Broadcast }
	grp := func(r *report) *fanoutR { return r.Group }
	fs = append(fs,
		findMaxFig("client", "highest client-publishing rate with p99 under the bound (/s)"),
		findMaxFig("api", "highest API unicast rate with p99 under the bound (/s)"),
		fanout("server CPU per broadcast copy (µs)", bc, func(x *fanoutR) []float64 { return one(x.CPUPerMsg) }),
		fanout("broadcast, time to the last copy p50 (ms)", bc, func(x *fanoutR) []float64 { return val(x.ToLast.P50Ms) }),
		fanout("broadcast, time to the last copy p99 (ms)", bc, func(x *fanoutR) []float64 { return val(x.ToLast.P99Ms) }),
		fanout("broadcast: Redis commands per push", bc, func(x *fanoutR) []float64 {
			if x.Redis == nil {
				return nil
			}
			return one(x.Redis.CommandsPerUnit)
		}),
		fanout("broadcast: packets the kernel dropped at the loopback's backlog", bc, func(x *fanoutR) []float64 {
			if x.Kernel == nil {
				return nil
			}
			return val(float64(x.Kernel.BacklogDrops))
		}),
		fanout("group push, time to the last copy p50 (ms)", grp, func(x *fanoutR) []float64 { return val(x.ToLast.P50Ms) }),
		fanout("group push, time to the last copy p99 (ms)", grp, func(x *fanoutR) []float64 { return val(x.ToLast.P99Ms) }),
		figure{title: "single API pushes per second", get: func(r *report) []float64 {
			if r.API == nil || r.API.Single == nil {
				return nil
			}
			return val(r.API.Single.CallsPerS)
		}},
		figure{title: "batched API messages per second", get: func(r *report) []float64 {
			if r.API == nil || r.API.Batched == nil {
				return nil
			}
			return val(r.API.Batched.MsgPerS)
		}},
		figure{title: "TLS: server CPU per connect + login, full handshake (µs)", get: func(r *report) []float64 {
			if r.ResumeTLS == nil || r.ResumeTLS.Full == nil {
				return nil
			}
			return one(r.ResumeTLS.Full.ServerCPUPerConn)
		}},
		figure{title: "TLS: server CPU per connect + login, resumed session (µs)", get: func(r *report) []float64 {
			if r.ResumeTLS == nil || r.ResumeTLS.Resumed == nil {
				return nil
			}
			return one(r.ResumeTLS.Resumed.ServerCPUPerConn)
		}},
		figure{title: "TLS: sessions resumed (%)", get: func(r *report) []float64 {
			if r.ResumeTLS == nil || r.ResumeTLS.Resumed == nil || r.ResumeTLS.Resumed.Connected == 0 {
				return nil
			}
			return val(100 * float64(r.ResumeTLS.Resumed.Resumed) / float64(r.ResumeTLS.Resumed.Connected))
		}},
		figure{title: "TLS: resumed / full server CPU", get: func(r *report) []float64 {
			if r.ResumeTLS == nil {
				return nil
			}
			return one(r.ResumeTLS.Ratio)
		}},
	)
	return fs
}

// median of vs (the mean of the middle two for an even count).
func median(vs []float64) float64 {
	s := slices.Clone(vs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// num formats a figure with three significant digits or as an integer.
func num(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.3f", v)
}

// writeCompare writes the table and its notes.
func writeCompare(w io.Writer, cols []*column, pairs []ratioPair) {
	fmt.Fprintf(w, "| figure |")
	for _, c := range cols {
		fmt.Fprintf(w, " %s |", c.label)
	}
	for _, p := range pairs {
		fmt.Fprintf(w, " %s / %s |", cols[p.num].label, cols[p.den].label)
	}
	fmt.Fprintf(w, "\n|---|")
	for range len(cols) + len(pairs) {
		fmt.Fprintf(w, "---|")
	}
	fmt.Fprintln(w)
	var notes []string
	for _, f := range figures(cols) {
		meds := make([]*float64, len(cols))
		cells := make([]string, len(cols))
		have := false
		for i, c := range cols {
			var vs []float64
			for _, r := range c.reports {
				vs = append(vs, f.get(r)...)
			}
			if len(vs) == 0 {
				cells[i] = "-"
				continue
			}
			have = true
			m := median(vs)
			meds[i] = &m
			cells[i] = num(m)
			if f.spread && len(vs) > 1 {
				if lo, hi, unstable := spread(vs); unstable {
					cells[i] += " ⚠"
					notes = append(notes, fmt.Sprintf("%s, %s: runs' maxima %s to %s, more than %.0f%% apart (unstable)",
						c.label, f.title, num(lo), num(hi), 100*maxSpread))
				}
			}
		}
		if !have {
			continue
		}
		fmt.Fprintf(w, "| %s |", f.title)
		for _, s := range cells {
			fmt.Fprintf(w, " %s |", s)
		}
		for _, p := range pairs {
			a, b := meds[p.num], meds[p.den]
			if a == nil || b == nil || *b == 0 {
				fmt.Fprintf(w, " - |")
				continue
			}
			fmt.Fprintf(w, " %.2f× |", *a / *b)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w)
	for _, c := range cols {
		if len(c.reports) == 0 {
			continue
		}
		r := c.reports[0]
		fmt.Fprintf(w, "- %s: %s, %s, %d connection(s) on %d node(s), median of %d round(s)%s\n",
			c.label, r.Config.Target, describeWire(r), r.Config.N, max(r.Config.Nodes, 1), len(c.reports), skippedText(c))
		for k, r := range c.reports {
			var bad []string
			if len(r.Disturbed) > 0 {
				bad = append(bad, "DISTURBED: "+strings.Join(r.Disturbed, "; "))
			}
			if r.Storm != nil && !r.Storm.AllBack {
				bad = append(bad, fmt.Sprintf("storm: only %d of %d logged in again", r.Storm.Reconnected, r.Storm.Connections))
			}
			if len(r.Lost) > 0 {
				bad = append(bad, "lost connections: "+counts(r.Lost))
			}
			bad = append(bad, r.Errors...)
			if r.Aborted != "" {
				bad = append(bad, "aborted: "+r.Aborted)
			}
			if len(bad) > 0 {
				fmt.Fprintf(w, "  - round %d (%s): %s\n", k+1, c.files[k], strings.Join(bad, "; "))
			}
		}
	}
	for _, n := range notes {
		fmt.Fprintf(w, "- ⚠ %s\n", n)
	}
}

func describeWire(r *report) string {
	s := r.Config.Protocol
	if r.Config.TLS {
		s += " over wss"
	} else {
		s += " over ws"
	}
	if r.Config.JWT {
		s += ", JWT login"
	}
	if r.Config.CrossNode {
		s += ", API pushes to another node than the target's"
	}
	if r.Config.BroadcastVia != "" {
		s += ", broadcast through the " + r.Config.BroadcastVia
	}
	return s
}

// skippedText lists what a column's target could not measure.
func skippedText(c *column) string {
	seen := map[string]string{}
	for _, r := range c.reports {
		maps.Copy(seen, r.Skipped)
	}
	if len(seen) == 0 {
		return ""
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(seen)) {
		parts = append(parts, k+" ("+seen[k]+")")
	}
	return "; skipped: " + strings.Join(parts, ", ")
}
