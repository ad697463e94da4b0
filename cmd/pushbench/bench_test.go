package main

import (
	"bytes"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

func TestPayloadRoundTrip(t *testing.T) {
	const ts = int64(1795483401490334123)
	p := appendPayload(nil, runTag{'K', '7'}, 42, ts, 64)
	if len(p) != 64 {
		t.Fatalf("payload is %d bytes, want 64: %q", len(p), p)
	}
	for _, frame := range [][]byte{
		p, // text protocol: the bare payload
		[]byte(`{"type":"message","seq":7,"data":"` + string(p) + `","from":"u3"}`), // json protocol
	} {
		tag, id, sent, ok := parsePayload(frame)
		if !ok || tag != (runTag{'K', '7'}) || id != 42 || sent != ts {
			t.Errorf("parsePayload(%q) = %s %d %d %v", frame, tag[:], id, sent, ok)
		}
	}
	for _, bad := range []string{"", "login success, your uid is u1", `{"type":"welcome"}`, "~pbK700000000", "~pbK70000000042x795483401490334123~", "~pbK70000000042179548340149033412x~"} {
		if _, _, _, ok := parsePayload([]byte(bad)); ok {
			t.Errorf("parsePayload(%q) found a payload", bad)
		}
	}
}

func TestHistogram(t *testing.T) {
	var h histogram
	for i := 1; i <= 1000; i++ {
		h.record(time.Duration(i) * 100 * time.Microsecond) // 0.1ms … 100ms
	}
	h.record(-time.Second) // counts as 0
	check := func(name string, got, want time.Duration) {
		t.Helper()
		if diff := got - want; diff < -want/50 || diff > want/50 {
			t.Errorf("%s = %v, want %v within 2%%", name, got, want)
		}
	}
	check("p50", h.quantile(0.5), 50*time.Millisecond)
	check("p99", h.quantile(0.99), 99*time.Millisecond)
	if h.max() != 100*time.Millisecond {
		t.Errorf("max = %v, want 100ms exactly", h.max())
	}
	if got := h.quantile(1); got != h.max() {
		t.Errorf("p100 = %v, want the max %v", got, h.max())
	}
	for us := uint64(0); us < 1<<22; us = us*2 + 1 {
		i := histIndex(us)
		if i >= histBuckets || histUpper(i) < us || (i > 0 && histUpper(i-1) >= us) {
			t.Fatalf("value %d lands in bucket %d of [%d, %d]", us, i, histUpper(i-1)+1, histUpper(i))
		}
	}
	if histIndex(histMaxUS) != histBuckets-1 {
		t.Errorf("the largest value lands in bucket %d of %d", histIndex(histMaxUS), histBuckets)
	}
	var empty histogram
	if s := empty.summary(); s != (latency{}) {
		t.Errorf("empty summary %+v", s)
	}
}

func TestTrackersDeliver(t *testing.T) {
	var ts trackers
	tag, tr, err := ts.start(3)
	if err != nil {
		t.Fatal(err)
	}
	sent := time.Now().UnixNano()
	frame := appendPayload(nil, tag, 2, sent, 64)
	ts.deliver(frame, sent+int64(3*time.Millisecond))
	ts.deliver(frame, sent+int64(time.Millisecond))
	ts.deliver([]byte("login success, your uid is u1"), sent)
	ts.deliver(appendPayload(nil, runTag{'z', 'z'}, 0, sent, 64), sent)
	ts.deliver(appendPayload(nil, runTag{'~', 'z'}, 0, sent, 64), sent)
	if tr.received.Load() != 2 || tr.pushes[2].count.Load() != 2 {
		t.Errorf("received %d, push 2 counted %d; want 2 and 2", tr.received.Load(), tr.pushes[2].count.Load())
	}
	if got := time.Duration(tr.pushes[2].last.Load() - sent); got != 3*time.Millisecond {
		t.Errorf("last copy after %v, want 3ms", got)
	}
	if ts.other.Load() != 1 || ts.stray.Load() != 2 {
		t.Errorf("other %d stray %d, want 1 and 2", ts.other.Load(), ts.stray.Load())
	}
	if allocs := testing.AllocsPerRun(100, func() { ts.deliver(frame, sent) }); allocs != 0 {
		t.Errorf("deliver allocates %.0f times per frame", allocs)
	}
	for range maxRuns - 1 {
		if _, _, err := ts.start(0); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := ts.start(0); err == nil {
		t.Error("more runs than tags were started")
	}
}

func TestReadFrame(t *testing.T) {
	buf := make([]byte, 8)
	n, err := readFrame(iotest.OneByteReader(strings.NewReader("hello")), buf)
	if err != nil || string(buf[:n]) != "hello" {
		t.Errorf("short frame: %q, %v", buf[:n], err)
	}
	long := strings.Repeat("x", 1000)
	n, err = readFrame(strings.NewReader(long), buf)
	if err != nil || n != 8 {
		t.Errorf("long frame: kept %d bytes, %v; want its head of 8", n, err)
	}
	if _, err := readFrame(io.MultiReader(strings.NewReader("ab"), iotest.ErrReader(io.ErrClosedPipe)), buf); err != io.ErrClosedPipe {
		t.Errorf("a read error was %v", err)
	}
}

func TestProcParsing(t *testing.T) {
	stat := []byte("4242 (caddy (bench) x) S 1 4242 4242 0 -1 4194560 2711 0 0 0 123 45 0 0 20 0 12 0 1681 1390166016 16440 18446744073709551615\n")
	if cpu, err := parseStatCPU(stat); err != nil || cpu != 1680*time.Millisecond {
		t.Errorf("parseStatCPU = %v, %v; want 1.68s", cpu, err)
	}
	if _, err := parseStatCPU([]byte("garbage")); err == nil {
		t.Error("parseStatCPU accepted garbage")
	}
	status := []byte("Name:\tcaddy\nVmPeak:\t  999 kB\nVmRSS:\t   61632 kB\nRssAnon:\t 1 kB\n")
	if rss, err := parseStatusRSS(status); err != nil || rss != 61632<<10 {
		t.Errorf("parseStatusRSS = %d, %v", rss, err)
	}
	if _, err := parseStatusRSS([]byte("Name:\tx\n")); err == nil {
		t.Error("parseStatusRSS found a VmRSS in nothing")
	}
	if hwm, err := parseStatusKB([]byte("VmHWM:\t   70000 kB\nVmRSS:\t   61632 kB\n"), "VmHWM:"); err != nil || hwm != 70000<<10 {
		t.Errorf("VmHWM = %d, %v", hwm, err)
	}
	if rss, peak, err := procMem(os.Getpid()); err != nil || rss <= 0 || peak < rss {
		t.Errorf("procMem(self) = %d, %d, %v", rss, peak, err)
	}
	if n, err := procFDs(os.Getpid()); err != nil || n < 3 {
		t.Errorf("procFDs(self) = %d, %v", n, err)
	}
	procStat := []byte("cpu  100 5 50 1000 20 1 2 3 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n")
	if busy, err := parseMachineBusy(procStat); err != nil || busy != 161*clockTick {
		t.Errorf("parseMachineBusy = %v, %v; want 1.61s", busy, err)
	}
	// The real files of this process parse.
	if _, err := procCPU(1); err != nil {
		t.Errorf("procCPU(1): %v", err)
	}
	if _, err := machineBusy(); err != nil {
		t.Errorf("machineBusy: %v", err)
	}
	soft := []byte("00a952b8 000012ce 00000002 0\n00af650e 00001e35 00000003 0\n")
	if n, err := parseSoftnetDrops(soft); err != nil || n != 0x12ce+0x1e35 {
		t.Errorf("parseSoftnetDrops = %d, %v; want %d", n, err, 0x12ce+0x1e35)
	}
	snmp := []byte("Ip: Forwarding DefaultTTL\nIp: 1 64\nTcp: RtoAlgorithm RetransSegs InErrs\nTcp: 1 10288 0\n")
	if n, err := procNetField(snmp, "Tcp:", "RetransSegs"); err != nil || n != 10288 {
		t.Errorf("RetransSegs = %d, %v; want 10288", n, err)
	}
	if _, err := procNetField(snmp, "Tcp:", "TCPLossProbes"); err == nil {
		t.Error("procNetField found a counter that is not there")
	}
	if k := kernelDelta(kernelCounters{1, 2, 3}, kernelCounters{11, 2, 5}); k.BacklogDrops != 10 || k.Retransmits != 0 || k.LossProbes != 2 {
		t.Errorf("kernelDelta = %+v", *k)
	}
	if _, ok := readKernel(); !ok && runtime.GOOS == "linux" {
		t.Error("readKernel could not read this machine's /proc/net")
	}
}

func TestLoopbackOnly(t *testing.T) {
	for _, ok := range []string{"ws://127.0.0.1:8080/ws", "wss://localhost/ws", "ws://127.9.9.9:1/x", "ws://[::1]:80/"} {
		if _, err := loopbackURL(ok, "ws", "wss"); err != nil {
			t.Errorf("%s refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"ws://10.0.0.1/ws", "ws://example.com/ws", "ws://0.0.0.0:80/", "http://127.0.0.1/", "ws:///ws", "ws://localhost.example.com/"} {
		if _, err := loopbackURL(bad, "ws", "wss"); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	cfg, err := parseFlags([]string{"-ws", "ws://127.0.0.1:1/ws", "-tls"}, io.Discard)
	if err != nil || cfg.wsURLs[0] != "wss://127.0.0.1:1/ws" || !cfg.tls {
		t.Errorf("-tls on a ws URL: %v, %v", cfg, err)
	}
	if _, err := parseFlags([]string{"-api", "http://192.168.1.1:7070"}, io.Discard); err == nil {
		t.Error("a LAN API address was accepted")
	}
	if _, err := parseFlags([]string{"-ws", "ws://[::1]:80/ws"}, io.Discard); err == nil {
		t.Error("an IPv6 WebSocket target was accepted with IPv4 source addresses")
	}
}

func TestSourceAddrs(t *testing.T) {
	addrs, err := sourceAddrs("127.0.0.2", 19000, 2000)
	if err != nil || len(addrs) != 10 || !addrs[0].Equal(net.IPv4(127, 0, 0, 2)) || !addrs[9].Equal(net.IPv4(127, 0, 0, 11)) {
		t.Errorf("sourceAddrs = %v, %v; want 127.0.0.2 … 127.0.0.11", addrs, err)
	}
	if _, err := sourceAddrs("127.0.0.250", 19000, 2000); err == nil {
		t.Error("addresses past .254 were handed out")
	}
	if _, err := sourceAddrs("10.0.0.2", 1, 1); err == nil {
		t.Error("a non-loopback source was accepted")
	}
}

func TestParsePhases(t *testing.T) {
	got, err := parsePhases("group, idle")
	if err != nil || strings.Join(got, ",") != "connect,idle,group" {
		t.Errorf("parsePhases = %v, %v; want connect first and the run order", got, err)
	}
	if _, err := parsePhases("idle,bogus"); err == nil {
		t.Error("an unknown phase was accepted")
	}
}

func TestReason(t *testing.T) {
	err := &net.OpError{Op: "dial", Net: "tcp4", Err: io.EOF}
	if got := reason(err); got != "connection closed by the server" {
		t.Errorf("reason(EOF) = %q", got)
	}
	if got := reason(bytes.ErrTooLarge); got != bytes.ErrTooLarge.Error() {
		t.Errorf("reason(other) = %q", got)
	}
}

func TestMeasureRedo(t *testing.T) {
	busy, quiet := cpuUse{OthersCores: ptr(0.9)}, cpuUse{OthersCores: ptr(0.0)}
	for _, c := range []struct {
		redo   int
		runs   []cpuUse
		calls  int
		redone int
	}{
		{0, []cpuUse{busy, quiet}, 1, 0},
		{2, []cpuUse{quiet}, 1, 0},
		{2, []cpuUse{busy, busy, quiet}, 3, 2},
		{2, []cpuUse{busy, busy, busy, quiet}, 3, 2},
	} {
		b := &bench{cfg: &config{redo: c.redo}, log: io.Discard}
		calls := 0
		r, err := measure(b, t.Context(), "x", func() (*rateR, error) {
			calls++
			return &rateR{cpuUse: c.runs[calls-1]}, nil
		})
		if err != nil || calls != c.calls || r.Redone != c.redone {
			t.Errorf("redo %d over %d runs: %d calls, redone %d, %v; want %d and %d", c.redo, len(c.runs), calls, r.Redone, err, c.calls, c.redone)
		}
	}
}
