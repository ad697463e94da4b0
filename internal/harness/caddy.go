package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/caddyserver/caddy/v2/caddytest"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/pushhub/caddy-pushhub"
)

// Caddy is a test's handle on the Caddy that runs inside this test binary:
// one per binary, started through caddytest on first use, with Caddy's
// standard modules and this plugin. Tests that use it share it, so they
// never call t.Parallel; each loads the whole config it needs (Load,
// LoadErr), and hub names from {$HUB} keep one test's hubs (connections,
// groups, history) away from the next test's.
type Caddy struct {
	Admin
}

var (
	inProcessMu      sync.Mutex
	inProcessStarted bool
)

// InProcess returns t's handle on the in-process Caddy, with hub names of
// its own. It skips t under go test -short, as caddytest does.
func InProcess(t testing.TB) *Caddy {
	t.Helper()
	if testing.Short() {
		t.Skip("runs a Caddy: not with -short")
	}
	b := base(t)
	c := &Caddy{Admin{
		Sites:    newSites(t, b+offAdmin, b+offWS, b+offAPI, b+offHTTPS, b+offHTTP),
		t:        t,
		dataDir:  filepath.Join(stateDir(t), "data"),
		logLevel: "ERROR",
	}}
	c.before, c.after = c.start, c.waitOldListenersClosed
	return c
}

// Start is InProcess, then Load of a Caddyfile's sites.
func Start(t testing.TB, caddyfile string) *Caddy {
	t.Helper()
	c := InProcess(t)
	c.Load(caddyfile)
	return c
}

// Spare is one of two more ports (i = 0 or 1) of the in-process Caddy, for
// a test's extra sites.
func (c *Caddy) Spare(i int) int {
	if i < 0 || i >= spareSize {
		panic("harness: Spare(0) or Spare(1)")
	}
	return base(c.t) + offSpare + i
}

// start starts the in-process Caddy through caddytest, once per binary.
func (c *Caddy) start() {
	c.t.Helper()
	inProcessMu.Lock()
	defer inProcessMu.Unlock()
	if inProcessStarted {
		return
	}
	failed := c.t.Failed()
	caddytest.NewTester(c.t).WithDefaultOverrides(caddytest.Config{
		AdminPort:          c.AdminPort,
		LoadRequestTimeout: Guard,
	}).InitServer(c.whole(""), "caddyfile")
	if !failed && c.t.Failed() {
		c.t.Fatal("starting the in-process Caddy failed")
	}
	inProcessStarted = true
}

// waitOldListenersClosed waits until each port of the in-process Caddy has
// at most one listening socket. On Linux, Caddy binds a reloaded config's
// listeners with SO_REUSEPORT next to the old ones, and /load returns once
// the old servers have begun shutting down, not once their sockets are
// closed; a connection that the kernel queued on an old socket in that
// moment is reset (Caddy's behaviour, not the plugin's). A readiness guard
// only: where /proc/net/tcp cannot be read, it returns at once.
func (c *Caddy) waitOldListenersClosed() {
	c.t.Helper()
	ports := []int{c.WSPort, c.APIPort, c.HTTPSPort, c.HTTPPort, c.Spare(0), c.Spare(1)}
	Eventually(c.t, "the previous config's listeners are closed", func() (bool, string) {
		counts, ok := listeningSockets()
		if !ok {
			return true, ""
		}
		for _, p := range ports {
			if counts[p] > 1 {
				return false, fmt.Sprintf("%d sockets listen on port %d", counts[p], p)
			}
		}
		return true, ""
	})
}

// listeningSockets counts the TCP sockets in LISTEN state per local port,
// from /proc/net/tcp and /proc/net/tcp6.
func listeningSockets() (map[int]int, bool) {
	counts := make(map[int]int)
	read := false
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		read = true
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fields := strings.Fields(line)
			if len(fields) < 4 || fields[3] != "0A" { // 0A: LISTEN
				continue
			}
			_, port, ok := strings.Cut(fields[1], ":")
			if !ok {
				continue
			}
			if n, err := strconv.ParseUint(port, 16, 16); err == nil {
				counts[int(n)]++
			}
		}
	}
	return counts, read
}
