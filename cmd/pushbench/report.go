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
	Storm     *stormR    `json:"storm,omitempty"`
	ResumeTLS *resumeR   `json:"resume_tls,omitempty"`
	// Skipped names the phases (or "unicast api", "unicast client") the
	// target cannot run, and why.
	Skipped map[string]string `json:"skipped,omitempty"`
	// Lost counts connections that ended before the bench closed them, by
	// "phase: reason" (e.g. "broadcast: closed 4004" for a slow consumer).
	Lost map[string]int `json:"lost_connections,omitempty"`
	// SlowConsumers is how many connections the hub cut off as slow during
	// the run (GET /stats; absent for other targets).
	SlowConsumers *uint64 `json:"server_slow_consumers,omitempty"`
	// PeakRSSBytes is the server's VmHWM at the end of the run, summed over
	// its processes.
	PeakRSSBytes    *int64 `json:"peak_rss_bytes,omitempty"`
	CentrifugoPongs int64  `json:"centrifugo_pongs,omitempty"`
	Stray           int64  `json:"stray_frames,omitempty"`
	// Disturbed lists the phases during which other processes took more
	// than disturbedCores of CPU.
	Disturbed []string `json:"disturbed,omitempty"`
	Errors    []string `json:"errors,omitempty"`
	Aborted   string   `json:"aborted,omitempty"`
	ElapsedS  float64  `json:"elapsed_s"`
}

type configOut struct {
	Target       string    `json:"target"`
	WS           []string  `json:"ws"`
	API          []string  `json:"api,omitempty"`
	PIDs         []int     `json:"pids,omitempty"`
	Nodes        int       `json:"nodes"`
	CrossNode    bool      `json:"cross_node,omitempty"`
	N            int       `json:"n"`
	Protocol     string    `json:"protocol"`
	TLS          bool      `json:"tls"`
	JWT          bool      `json:"jwt,omitempty"`
	Phases       []string  `json:"phases"`
	Rate         float64   `json:"rate"`
	Rates        []float64 `json:"rates"`
	DurationS    float64   `json:"duration_s"`
	StepS        float64   `json:"step_s"`
	MsgSize      int       `json:"msg_size"`
	APIConc      int       `json:"api_concurrency"`
	BroadcastVia string    `json:"broadcast_via"`
	SourceAddrs  int       `json:"source_addrs"`
	Redis        bool      `json:"redis,omitempty"`
}

type baseline struct {
	RSSBytes    *int64 `json:"rss_bytes,omitempty"`
	FDs         *int   `json:"fds,omitempty"`
	Goroutines  *int   `json:"goroutines,omitempty"`
	Connections *int64 `json:"connections,omitempty"`
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
	ServerConnections *int64   `json:"server_connections,omitempty"`
}

type idleR struct {
	Connections int64    `json:"connections"`
	SettleS     float64  `json:"settle_s"`
	RSSBytes    *int64   `json:"rss_bytes,omitempty"`
	RSSByPID    []int64  `json:"rss_by_pid,omitempty"`
	RSSPerConn  *float64 `json:"rss_per_conn_bytes,omitempty"`
	// PeakRSSBytes is VmHWM (summed over the processes), PeakPerConn its
	// growth over the baseline's RSS per connection.
	PeakRSSBytes      *int64   `json:"peak_rss_bytes,omitempty"`
	PeakPerConn       *float64 `json:"peak_rss_per_conn_bytes,omitempty"`
	Goroutines        *int     `json:"goroutines,omitempty"`
	GoroutinesPerConn *float64 `json:"goroutines_per_conn,omitempty"`
	WindowS           float64  `json:"window_s"`
	cpuUse
	ServerCPUPercent *float64 `json:"server_cpu_percent,omitempty"`
	ServerCPUPerConn *float64 `json:"server_cpu_per_conn_us_per_s,omitempty"`
}

// rateR is one paced unicast run.
type rateR struct {
	Path       string         `json:"path"`                 // api or client
	CrossNode  bool           `json:"cross_node,omitempty"` // every message went from one node to another
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
	Run      int     `json:"run"` // of -find-max-runs
	StepS    float64 `json:"step_s"`
	MaxP99Ms float64 `json:"max_p99_ms"`
	BestRate float64 `json:"best_rate"`
	// Disturbed counts the steps during which other processes took more
	// than disturbedCores of CPU.
	Disturbed int      `json:"disturbed_steps"`
	Steps     []*rateR `json:"steps"`
}

// fanoutR is the broadcast or group phase.
type fanoutR struct {
	Via         string         `json:"via,omitempty"` // broadcasts: api or client
	GroupSize   int            `json:"group_size,omitempty"`
	Groups      int            `json:"groups,omitempty"`
	Joins       int            `json:"joins,omitempty"`
	JoinErrors  map[string]int `json:"join_errors,omitempty"`
	JoinsPerS   float64        `json:"joins_per_s,omitempty"`
	Pushes      int            `json:"pushes"`
	Completed   int            `json:"completed"`
	Errors      map[string]int `json:"errors,omitempty"`
	Deliveries  *int64         `json:"deliveries,omitempty"` // copies the server says it queued
	Expected    int64          `json:"expected"`             // copies waited for: one per live connection (broadcast)
	Received    int64          `json:"received"`
	ToLast      latency        `json:"time_to_last"` // per push: until its last copy arrived
	PerDelivery latency        `json:"per_delivery"`
	Call        latency        `json:"api_call"`
	cpuUse
	CPUPerMsg *float64 `json:"server_cpu_per_delivery_us,omitempty"`
}

type apiR struct {
	Concurrency int          `json:"concurrency"`
	CrossNode   bool         `json:"cross_node,omitempty"`
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
	ServerCPUS     *float64  `json:"server_cpu_s,omitempty"`
	ServerCPUByPID []float64 `json:"server_cpu_s_by_pid,omitempty"` // several -pid
	GeneratorCPUS  float64   `json:"generator_cpu_s"`
	OthersCPUS     *float64  `json:"others_cpu_s,omitempty"`
	// OthersCores is OthersCPUS per second of the phase: above
	// disturbedCores, latency and rate figures say more about the machine
	// than about the server.
	OthersCores *float64 `json:"others_cores,omitempty"`
	// Redis is what the phase cost the cluster's Redis (-redis); its CPU
	// is not counted among the others'.
	Redis *redisUse `json:"redis,omitempty"`
	// Kernel is what the kernel did to the phase's packets: drops at the
	// loopback's backlog and what TCP sent again.
	Kernel *kernelUse `json:"kernel,omitempty"`
	// Redone counts the earlier measurements of this run that other
	// processes disturbed (-redo); the figures are the last one's.
	Redone int `json:"redone,omitempty"`
}

func (c *cpuUse) setRedone(n int) { c.Redone = n }

// stormR is the reconnect storm: every connection dropped at once, then
// every one reconnecting at once.
type stormR struct {
	Connections   int     `json:"connections"`
	DropS         float64 `json:"drop_s"`
	ServerClosedS float64 `json:"server_closed_s"` // until the server had closed them all
	Concurrency   int     `json:"concurrency"`
	Reconnected   int     `json:"reconnected"`
	// Seconds is from the start of the reconnection to the last login.
	Seconds       float64        `json:"seconds"`
	AllBack       bool           `json:"all_back"`
	Failures      map[string]int `json:"failures,omitempty"` // of the first pass
	Retried       int            `json:"retried,omitempty"`
	FinalFailures map[string]int `json:"final_failures,omitempty"`
	Latency       latency        `json:"connect_latency"`
	cpuUse
	ServerCPUPerConn *float64 `json:"server_cpu_per_conn_us,omitempty"`
}

// resumeR is the resume-tls phase.
type resumeR struct {
	Connections int `json:"connections"`
	// Tickets counts the connections that got a session ticket in the
	// full round.
	Tickets int         `json:"tickets"`
	Full    *handshakeR `json:"full,omitempty"`
	Resumed *handshakeR `json:"resumed,omitempty"`
	// Ratio is the server's CPU per resumed connection over its CPU per
	// full one.
	Ratio  *float64 `json:"resumed_over_full,omitempty"`
	Redone int      `json:"redone,omitempty"`
}

func (r *resumeR) disturbed() bool {
	return (r.Full != nil && r.Full.disturbed()) || (r.Resumed != nil && r.Resumed.disturbed())
}

func (r *resumeR) setRedone(n int) { r.Redone = n }

type handshakeR struct {
	ServerClosedS float64        `json:"server_closed_s"`
	Connected     int            `json:"connected"`
	Resumed       int            `json:"resumed"`
	Failures      map[string]int `json:"failures,omitempty"`
	Seconds       float64        `json:"seconds"`
	Latency       latency        `json:"connect_latency"`
	cpuUse
	ServerCPUPerConn *float64 `json:"server_cpu_per_conn_us,omitempty"`
}

// disturbedPhases names the phases (and find-max steps) whose figures other
// processes disturbed.
func (r *report) disturbedPhases() []string {
	var out []string
	add := func(name string, c *cpuUse) {
		if c != nil && c.disturbed() {
			out = append(out, name)
		}
	}
	if r.Connect != nil {
		add("connect", &r.Connect.cpuUse)
	}
	if r.Idle != nil {
		add("idle", &r.Idle.cpuUse)
	}
	for _, x := range r.Unicast {
		add(fmt.Sprintf("unicast %s %.0f/s", x.Path, x.TargetRate), &x.cpuUse)
	}
	for _, f := range r.FindMax {
		if f.Disturbed > 0 {
			out = append(out, fmt.Sprintf("find-max %s (run %d): %d of %d steps", f.Path, f.Run, f.Disturbed, len(f.Steps)))
		}
	}
	if r.Broadcast != nil {
		add("broadcast", &r.Broadcast.cpuUse)
	}
	if r.Group != nil {
		add("group", &r.Group.cpuUse)
	}
	if r.API != nil {
		if r.API.Single != nil {
			add("api single", &r.API.Single.cpuUse)
		}
		if r.API.Batched != nil {
			add("api batched", &r.API.Batched.cpuUse)
		}
	}
	if r.Storm != nil {
		add("storm", &r.Storm.cpuUse)
	}
	if r.ResumeTLS != nil {
		if r.ResumeTLS.Full != nil {
			add("resume-tls full", &r.ResumeTLS.Full.cpuUse)
		}
		if r.ResumeTLS.Resumed != nil {
			add("resume-tls resumed", &r.ResumeTLS.Resumed.cpuUse)
		}
	}
	return out
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
	auth := ""
	if c.JWT {
		auth = ", jwt"
	}
	fmt.Fprintf(w, "\npushbench: %s %s (%s%s), api %s, n=%d, pid %s, %.1fs\n",
		c.Target, strings.Join(c.WS, ","), c.Protocol, auth, listText(c.API), c.N, pidsText(c.PIDs), r.ElapsedS)
	t := &table{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	fmt.Fprintf(t.tw, "PHASE\tFIGURE\tVALUE\n")
	if x := r.Connect; x != nil {
		t.section("connect")
		t.row("connected", "%d / %d in %.2fs = %.0f conn/s", x.Connected, x.Attempted, x.Seconds, x.PerSecond)
		t.row("failures", "%s", counts(x.Failures))
		t.row("connect+login latency", "%s", lat(x.Latency))
		t.row("server CPU", "%s total, %s per connection", secs(x.ServerCPUS), micros(x.ServerCPUPerConn))
		cpuRow(t, x.cpuUse)
		if x.ServerConnections != nil {
			t.row("server sees", "%d connections", *x.ServerConnections)
		}
	}
	if x := r.Idle; x != nil {
		t.section("idle")
		t.row("connections", "%d, after %.1fs settling", x.Connections, x.SettleS)
		byProc := ""
		if len(x.RSSByPID) > 1 {
			byProc = "; by process " + joinPIDs(x.RSSByPID, func(v int64) string { return bytesText(&v) })
		}
		t.row("server RSS", "%s, %s per connection%s", bytesText(x.RSSBytes), perConnBytes(x.RSSPerConn), byProc)
		t.row("server peak RSS (VmHWM)", "%s, %s per connection over the baseline", bytesText(x.PeakRSSBytes), perConnBytes(x.PeakPerConn))
		if x.Goroutines != nil {
			t.row("goroutines", "%d, %.2f per connection", *x.Goroutines, deref(x.GoroutinesPerConn))
		}
		t.row("server CPU idle", "%s over %.1fs = %s of a core, %s per connection per second",
			secs(x.ServerCPUS), x.WindowS, percent(x.ServerCPUPercent), micros(x.ServerCPUPerConn))
		cpuRow(t, x.cpuUse)
	}
	for _, x := range r.Unicast {
		t.section(pathName("unicast", x.Path, x.CrossNode))
		rateRows(t, x)
	}
	findMaxRows(t, r.FindMax)
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
			if x.CrossNode {
				name += " (cross-node)"
			}
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
	if x := r.Storm; x != nil {
		t.section("storm")
		t.row("dropped", "%d at once in %.2fs; the server had closed them %.2fs after the drop began", x.Connections, x.DropS, x.ServerClosedS)
		t.row("all logged in again", "%s after %.2fs (%d reconnected, %d at a time)", yesNo(x.AllBack), x.Seconds, x.Reconnected, x.Concurrency)
		t.row("failures", "first pass %s; retried %d; left %s", counts(x.Failures), x.Retried, counts(x.FinalFailures))
		t.row("connect+login latency", "%s", lat(x.Latency))
		t.row("server CPU", "%s total, %s per connection", secs(x.ServerCPUS), micros(x.ServerCPUPerConn))
		cpuRow(t, x.cpuUse)
	}
	if x := r.ResumeTLS; x != nil {
		t.section("resume-tls")
		t.row("connections", "%d reconnected twice; %d got a session ticket", x.Connections, x.Tickets)
		for _, h := range []struct {
			name string
			h    *handshakeR
		}{{"full handshakes", x.Full}, {"resumed", x.Resumed}} {
			if h.h == nil {
				continue
			}
			t.row(h.name, "%d connected, %d resumed, in %.2fs; failures %s", h.h.Connected, h.h.Resumed, h.h.Seconds, counts(h.h.Failures))
			t.row(h.name+": latency", "%s", lat(h.h.Latency))
			t.row(h.name+": server CPU", "%s, %s per connection", secs(h.h.ServerCPUS), micros(h.h.ServerCPUPerConn))
			cpuRow(t, h.h.cpuUse)
		}
		if x.Ratio != nil {
			t.row("resumed / full", "%.2f of the server CPU per connection", *x.Ratio)
		}
	}
	if len(r.Skipped) > 0 {
		t.section("skipped")
		for _, k := range slices.Sorted(maps.Keys(r.Skipped)) {
			t.row(k, "%s", r.Skipped[k])
		}
	}
	t.section("run")
	t.row("lost connections", "%s", counts(r.Lost))
	if r.SlowConsumers != nil {
		t.row("server slow consumers", "%d", *r.SlowConsumers)
	}
	if r.PeakRSSBytes != nil {
		t.row("server peak RSS (VmHWM) at the end", "%s", bytesText(r.PeakRSSBytes))
	}
	if r.CentrifugoPongs > 0 {
		t.row("Centrifugo pings answered", "%d", r.CentrifugoPongs)
	}
	if r.Stray > 0 {
		t.row("stray frames", "%d", r.Stray)
	}
	if len(r.Disturbed) > 0 {
		t.row("DISTURBED", "%s", strings.Join(r.Disturbed, "; "))
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

// findMaxRows prints each search, and flags searches of one path whose
// maxima are more than maxSpread apart.
func findMaxRows(t *table, fms []*findMax) {
	for _, f := range fms {
		name := "find-max " + f.Path
		if f.Run > 1 || len(fms) > 2 {
			name += fmt.Sprintf(" (run %d)", f.Run)
		}
		t.section(name)
		disturbed := ""
		if f.Disturbed > 0 {
			disturbed = fmt.Sprintf(" (DISTURBED: other processes took over %.2f cores in %d of %d steps)",
				disturbedCores, f.Disturbed, len(f.Steps))
		}
		t.row("highest rate with p99 < "+fmt.Sprint(f.MaxP99Ms)+"ms", "%.0f msg/s, steps of %.0fs%s", f.BestRate, f.StepS, disturbed)
		for _, s := range f.Steps {
			verdict := "fail"
			if s.OK != nil && *s.OK {
				verdict = "ok"
			}
			t.row(fmt.Sprintf("step %.0f/s", s.TargetRate), "%s: sent %.0f/s, got %d/%d, p99 %.2fms, lag p99 %.2fms, server %s/msg, others CPU %s",
				verdict, s.SendRate, s.Received, s.Sent, s.Latency.P99Ms, s.SendLagP99, micros(s.CPUPerMsg), secs(s.OthersCPUS))
		}
	}
	byPath := map[string][]float64{}
	for _, f := range fms {
		byPath[f.Path] = append(byPath[f.Path], f.BestRate)
	}
	for _, path := range slices.Sorted(maps.Keys(byPath)) {
		if lo, hi, unstable := spread(byPath[path]); len(byPath[path]) > 1 {
			verdict := "within 10%"
			if unstable {
				verdict = "UNSTABLE: more than 10% apart"
			}
			t.section("find-max " + path)
			t.row("runs' maxima", "%.0f to %.0f msg/s: %s", lo, hi, verdict)
		}
	}
}

// maxSpread is how far apart (as a fraction of the lower) two measurements
// of one maximum may be before they are flagged as unstable.
const maxSpread = 0.10

// spread is the range of vs and whether it is wider than maxSpread.
func spread(vs []float64) (lo, hi float64, unstable bool) {
	if len(vs) == 0 {
		return 0, 0, false
	}
	lo, hi = slices.Min(vs), slices.Max(vs)
	return lo, hi, hi > lo*(1+maxSpread)
}

func pathName(phase, path string, cross bool) string {
	s := phase + " " + path
	if cross {
		s += " (cross-node)"
	}
	return s
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
	via := ""
	if x.Via != "" {
		via = " through the " + x.Via
		if x.Via == "client" {
			via = " published by a client"
		}
	}
	t.row("pushes", "%d%s, %d complete, errors %s", x.Pushes, via, x.Completed, counts(x.Errors))
	queued := "n/a (the server does not say)"
	if x.Deliveries != nil {
		queued = fmt.Sprint(*x.Deliveries)
	}
	t.row("copies", "%s queued by the server, %d expected, %d received", queued, x.Expected, x.Received)
	t.row("time to last copy", "p50 %.2fms  p99 %.2fms  max %.2fms (over %d pushes)", x.ToLast.P50Ms, x.ToLast.P99Ms, x.ToLast.MaxMs, x.ToLast.Count)
	t.row("per copy latency", "%s", lat(x.PerDelivery))
	if x.Via == "client" {
		t.row("client's write", "%s", lat(x.Call))
	} else {
		t.row("api call", "%s", lat(x.Call))
	}
	t.row("server CPU", "%s, %s per copy", secs(x.ServerCPUS), micros(x.CPUPerMsg))
	cpuRow(t, x.cpuUse)
}

func cpuRow(t *table, c cpuUse) {
	if len(c.ServerCPUByPID) > 1 {
		t.row("server CPU by process", "%s", joinPIDs(c.ServerCPUByPID, func(v float64) string { return secs(&v) }))
	}
	if c.Redis != nil {
		t.row("redis", "%s", c.Redis.text())
	}
	if c.Kernel != nil {
		t.row("kernel", "%s", c.Kernel.text())
	}
	note := ""
	if c.disturbed() {
		note = fmt.Sprintf(" = %.2f cores: DISTURBED by other processes", *c.OthersCores)
	}
	if c.Redone > 0 {
		note += fmt.Sprintf(" (measured %d more time(s): the earlier ones were disturbed)", c.Redone)
	}
	t.row("generator / others CPU", "%.2fs / %s%s", c.GeneratorCPUS, secs(c.OthersCPUS), note)
}

// joinPIDs lists figures by process.
func joinPIDs[T any](vs []T, f func(T) string) string {
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = f(v)
	}
	return strings.Join(parts, " + ")
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "NO"
}

func listText(l []string) string {
	if len(l) == 0 {
		return "none"
	}
	return strings.Join(l, ",")
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

func pidsText(pids []int) string {
	if len(pids) == 0 {
		return "none"
	}
	parts := make([]string, len(pids))
	for i, p := range pids {
		parts[i] = fmt.Sprint(p)
	}
	return strings.Join(parts, ",")
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
