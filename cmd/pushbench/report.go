package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// report is everything a run measured; it is printed as a table and as one
// JSON line. Server figures are absent (null) without -pid.
type report struct {
	Started   time.Time  `json:"started"`
	Config    configOut  `json:"config"`
	Baseline  *baseline  `json:"baseline,omitempty"`
	Connect   *connectR  `json:"connect,omitempty"`
	Idle      *idleR     `json:"idle,omitempty"`
	Unicast   []*rateR   `json:"unicast,omitempty"`
	FindMax   []*findMax `json:"find_max,omitempty"`
	Broadcast *fanoutR   `json:"broadcast,omitempty"`
	Group     *fanoutR   `json:"group,omitempty"`
	API       *apiR      `json:"api,omitempty"`
	// Lost counts connections that ended before the bench closed them, by
	// "phase: reason" (e.g. "broadcast: closed 4004" for a slow consumer).
	Lost map[string]int `json:"lost_connections,omitempty"`
	// SlowConsumers is how many connections the server cut off as slow
	// during the run (GET /stats).
	SlowConsumers uint64   `json:"server_slow_consumers"`
	Stray         int64    `json:"stray_frames,omitempty"`
	Errors        []string `json:"errors,omitempty"`
	Aborted       string   `json:"aborted,omitempty"`
	ElapsedS      float64  `json:"elapsed_s"`
}

type configOut struct {
	WS          string   `json:"ws"`
	API         string   `json:"api"`
	PID         int      `json:"pid,omitempty"`
	N           int      `json:"n"`
	Protocol    string   `json:"protocol"`
	TLS         bool     `json:"tls"`
	Phases      []string `json:"phases"`
	Rate        float64  `json:"rate"`
	DurationS   float64  `json:"duration_s"`
	MsgSize     int      `json:"msg_size"`
	APIConc     int      `json:"api_concurrency"`
	SourceAddrs int      `json:"source_addrs"`
}

type baseline struct {
	RSSBytes    *int64 `json:"rss_bytes,omitempty"`
	Goroutines  int    `json:"goroutines"`
	Connections int64  `json:"connections"`
}

type connectR struct {
	Attempted int            `json:"attempted"`
	Connected int            `json:"connected"`
	Failures  map[string]int `json:"failures,omitempty"`
	Seconds   float64        `json:"seconds"`
	PerSecond float64        `json:"conns_per_s"`
	Latency   latency        `json:"connect_latency"`
	cpuUse
	ServerCPUPerConn  *float64 `json:"server_cpu_per_conn_us,omitempty"`
	ServerConnections int64    `json:"server_connections"`
}

type idleR struct {
	Connections       int64    `json:"connections"`
	SettleS           float64  `json:"settle_s"`
	RSSBytes          *int64   `json:"rss_bytes,omitempty"`
	RSSPerConn        *float64 `json:"rss_per_conn_bytes,omitempty"`
	Goroutines        int      `json:"goroutines"`
	GoroutinesPerConn float64  `json:"goroutines_per_conn"`
	WindowS           float64  `json:"window_s"`
	cpuUse
	ServerCPUPercent *float64 `json:"server_cpu_percent,omitempty"`
	ServerCPUPerConn *float64 `json:"server_cpu_per_conn_us_per_s,omitempty"`
}

// rateR is one paced unicast run.
type rateR struct {
	Path       string         `json:"path"` // api or client
	TargetRate float64        `json:"target_rate"`
	SendRate   float64        `json:"send_rate"`
	Seconds    float64        `json:"seconds"`
	Sent       int64          `json:"sent"`
	SendErrors map[string]int `json:"send_errors,omitempty"`
	Expected   int64          `json:"expected"` // copies the server queued (api) or live targets (client)
	Received   int64          `json:"received"`
	Ratio      float64        `json:"received_per_sent"`
	Latency    latency        `json:"latency"`
	SendLagP99 float64        `json:"send_lag_p99_ms"`
	Call       *latency       `json:"api_call,omitempty"`
	cpuUse
	CPUPerMsg *float64 `json:"server_cpu_per_msg_us,omitempty"`
	OK        *bool    `json:"ok,omitempty"` // find-max steps: met the bounds
}

type findMax struct {
	Path     string  `json:"path"`
	MaxP99Ms float64 `json:"max_p99_ms"`
	BestRate float64 `json:"best_rate"`
	// Disturbed counts the steps during which other processes took more
	// than disturbedCores of CPU.
	Disturbed int      `json:"disturbed_steps"`
	Steps     []*rateR `json:"steps"`
}

// fanoutR is the broadcast or group phase.
type fanoutR struct {
	GroupSize   int            `json:"group_size,omitempty"`
	Groups      int            `json:"groups,omitempty"`
	Joins       int            `json:"joins,omitempty"`
	JoinErrors  map[string]int `json:"join_errors,omitempty"`
	JoinsPerS   float64        `json:"joins_per_s,omitempty"`
	Pushes      int            `json:"pushes"`
	Completed   int            `json:"completed"`
	Errors      map[string]int `json:"errors,omitempty"`
	Deliveries  int64          `json:"deliveries"`
	Received    int64          `json:"received"`
	ToLast      latency        `json:"time_to_last"` // per push: until its last copy arrived
	PerDelivery latency        `json:"per_delivery"`
	Call        latency        `json:"api_call"`
	cpuUse
	CPUPerMsg *float64 `json:"server_cpu_per_delivery_us,omitempty"`
}

type apiR struct {
	Concurrency int          `json:"concurrency"`
	Single      *throughputR `json:"single,omitempty"`
	Batched     *throughputR `json:"batched,omitempty"`
}

type throughputR struct {
	Batch     int            `json:"batch"`
	Seconds   float64        `json:"seconds"`
	Calls     int64          `json:"calls"`
	Errors    map[string]int `json:"errors,omitempty"`
	CallsPerS float64        `json:"calls_per_s"`
	Messages  int64          `json:"messages"` // copies the server queued
	MsgPerS   float64        `json:"msg_per_s"`
	Received  int64          `json:"received"`
	Call      latency        `json:"api_call"`
	Latency   latency        `json:"latency"`
	cpuUse
	CPUPerMsg *float64 `json:"server_cpu_per_msg_us,omitempty"`
}

// cpuUse is the CPU time of a phase: the server's (with -pid), the
// generator's own, and that of every other process on the machine, which
// tells how much the figures were disturbed.
type cpuUse struct {
	ServerCPUS    *float64 `json:"server_cpu_s,omitempty"`
	GeneratorCPUS float64  `json:"generator_cpu_s"`
	OthersCPUS    *float64 `json:"others_cpu_s,omitempty"`
	// OthersCores is OthersCPUS per second of the phase: above
	// disturbedCores, latency and rate figures say more about the machine
	// than about the server.
	OthersCores *float64 `json:"others_cores,omitempty"`
}

// disturbedCores is how much CPU other processes may take during a phase
// before its figures are flagged as disturbed.
const disturbedCores = 0.25

func (c cpuUse) disturbed() bool { return c.OthersCores != nil && *c.OthersCores > disturbedCores }

// table collects rows of phase, figure, value.
type table struct {
	tw    *tabwriter.Writer
	phase string
	rows  int
}

func (t *table) row(figure, format string, args ...any) {
	fmt.Fprintf(t.tw, "%s\t%s\t%s\n", t.phase, figure, fmt.Sprintf(format, args...))
	t.phase = ""
	t.rows++
}

func (t *table) section(name string) {
	if t.rows > 0 {
		fmt.Fprintf(t.tw, "\t\t\n")
	}
	t.phase = name
}

func printTable(w io.Writer, r *report) {
	c := r.Config
	fmt.Fprintf(w, "\npushbench: %s (%s), api %s, n=%d, pid %s, %.1fs\n",
		c.WS, c.Protocol, c.API, c.N, pidText(c.PID), r.ElapsedS)
	t := &table{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	fmt.Fprintf(t.tw, "PHASE\tFIGURE\tVALUE\n")
	if x := r.Connect; x != nil {
		t.section("connect")
		t.row("connected", "%d / %d in %.2fs = %.0f conn/s", x.Connected, x.Attempted, x.Seconds, x.PerSecond)
		t.row("failures", "%s", counts(x.Failures))
		t.row("connect+login latency", "%s", lat(x.Latency))
		t.row("server CPU", "%s total, %s per connection", secs(x.ServerCPUS), micros(x.ServerCPUPerConn))
		cpuRow(t, x.cpuUse)
		t.row("server sees", "%d connections", x.ServerConnections)
	}
	if x := r.Idle; x != nil {
		t.section("idle")
		t.row("connections", "%d, after %.1fs settling", x.Connections, x.SettleS)
		t.row("server RSS", "%s, %s per connection", bytesText(x.RSSBytes), perConnBytes(x.RSSPerConn))
		t.row("goroutines", "%d, %.2f per connection", x.Goroutines, x.GoroutinesPerConn)
		t.row("server CPU idle", "%s over %.1fs = %s of a core, %s per connection per second",
			secs(x.ServerCPUS), x.WindowS, percent(x.ServerCPUPercent), micros(x.ServerCPUPerConn))
		cpuRow(t, x.cpuUse)
	}
	for _, x := range r.Unicast {
		t.section("unicast " + x.Path)
		rateRows(t, x)
	}
	for _, f := range r.FindMax {
		t.section("find-max " + f.Path)
		disturbed := ""
		if f.Disturbed > 0 {
			disturbed = fmt.Sprintf(" (DISTURBED: other processes took over %.2f cores in %d of %d steps)",
				disturbedCores, f.Disturbed, len(f.Steps))
		}
		t.row("highest rate with p99 < "+fmt.Sprint(f.MaxP99Ms)+"ms", "%.0f msg/s%s", f.BestRate, disturbed)
		for _, s := range f.Steps {
			verdict := "fail"
			if s.OK != nil && *s.OK {
				verdict = "ok"
			}
			t.row(fmt.Sprintf("step %.0f/s", s.TargetRate), "%s: sent %.0f/s, got %d/%d, p99 %.2fms, lag p99 %.2fms, server %s/msg, others CPU %s",
				verdict, s.SendRate, s.Received, s.Sent, s.Latency.P99Ms, s.SendLagP99, micros(s.CPUPerMsg), secs(s.OthersCPUS))
		}
	}
	if x := r.Broadcast; x != nil {
		t.section("broadcast")
		fanoutRows(t, x)
	}
	if x := r.Group; x != nil {
		t.section("group")
		t.row("groups", "%d of %d members; %d joins at %.0f/s, errors %s", x.Groups, x.GroupSize, x.Joins, x.JoinsPerS, counts(x.JoinErrors))
		fanoutRows(t, x)
	}
	if x := r.API; x != nil {
		for _, tp := range []*throughputR{x.Single, x.Batched} {
			if tp == nil {
				continue
			}
			name := "api single"
			if tp.Batch > 1 {
				name = fmt.Sprintf("api batched (%d uids)", tp.Batch)
			}
			t.section(name)
			t.row("calls", "%d in %.1fs = %.0f calls/s at concurrency %d, errors %s", tp.Calls, tp.Seconds, tp.CallsPerS, x.Concurrency, counts(tp.Errors))
			t.row("messages", "%d = %.0f msg/s, received %d", tp.Messages, tp.MsgPerS, tp.Received)
			t.row("call latency", "%s", lat(tp.Call))
			t.row("delivery latency", "%s", lat(tp.Latency))
			t.row("server CPU", "%s, %s per message", secs(tp.ServerCPUS), micros(tp.CPUPerMsg))
			cpuRow(t, tp.cpuUse)
		}
	}
	t.section("run")
	t.row("lost connections", "%s", counts(r.Lost))
	t.row("server slow consumers", "%d", r.SlowConsumers)
	if r.Stray > 0 {
		t.row("stray frames", "%d", r.Stray)
	}
	for _, e := range r.Errors {
		t.row("error", "%s", e)
	}
	if r.Aborted != "" {
		t.row("ABORTED", "%s", r.Aborted)
	}
	t.tw.Flush()
	fmt.Fprintln(w)
}

func rateRows(t *table, x *rateR) {
	t.row("rate", "target %.0f/s, sent %.0f/s for %.1fs", x.TargetRate, x.SendRate, x.Seconds)
	t.row("delivered", "%d received / %d sent (%.2f%%), expected %d; send errors %s",
		x.Received, x.Sent, 100*x.Ratio, x.Expected, counts(x.SendErrors))
	t.row("latency", "%s", lat(x.Latency))
	t.row("send lag p99", "%.2fms (behind schedule)", x.SendLagP99)
	if x.Call != nil {
		t.row("api call", "%s", lat(*x.Call))
	}
	t.row("server CPU", "%s, %s per message", secs(x.ServerCPUS), micros(x.CPUPerMsg))
	cpuRow(t, x.cpuUse)
}

func fanoutRows(t *table, x *fanoutR) {
	t.row("pushes", "%d, %d complete, errors %s", x.Pushes, x.Completed, counts(x.Errors))
	t.row("copies", "%d queued by the server, %d received", x.Deliveries, x.Received)
	t.row("time to last copy", "p50 %.2fms  p99 %.2fms  max %.2fms (over %d pushes)", x.ToLast.P50Ms, x.ToLast.P99Ms, x.ToLast.MaxMs, x.ToLast.Count)
	t.row("per copy latency", "%s", lat(x.PerDelivery))
	t.row("api call", "%s", lat(x.Call))
	t.row("server CPU", "%s, %s per copy", secs(x.ServerCPUS), micros(x.CPUPerMsg))
	cpuRow(t, x.cpuUse)
}

func cpuRow(t *table, c cpuUse) {
	note := ""
	if c.disturbed() {
		note = fmt.Sprintf(" = %.2f cores: DISTURBED by other processes", *c.OthersCores)
	}
	t.row("generator / others CPU", "%.2fs / %s%s", c.GeneratorCPUS, secs(c.OthersCPUS), note)
}

func lat(l latency) string {
	if l.Count == 0 {
		return "-"
	}
	return fmt.Sprintf("p50 %.2fms  p99 %.2fms  max %.2fms  mean %.2fms  (n=%d)", l.P50Ms, l.P99Ms, l.MaxMs, l.MeanMs, l.Count)
}

func counts(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s ×%d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func pidText(pid int) string {
	if pid == 0 {
		return "none"
	}
	return fmt.Sprint(pid)
}

func secs(v *float64) string {
	if v == nil {
		return "n/a"
	}
	return fmt.Sprintf("%.2fs", *v)
}

func micros(v *float64) string {
	if v == nil {
		return "n/a"
	}
	return fmt.Sprintf("%.1fµs", *v)
}

func percent(v *float64) string {
	if v == nil {
		return "n/a"
	}
	return fmt.Sprintf("%.1f%%", *v)
}

func bytesText(v *int64) string {
	if v == nil {
		return "n/a"
	}
	return fmt.Sprintf("%.1f MiB", float64(*v)/(1<<20))
}

func perConnBytes(v *float64) string {
	if v == nil {
		return "n/a"
	}
	return fmt.Sprintf("%.1f KiB", *v/1024)
}
