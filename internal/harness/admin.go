package harness

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

// Admin loads configs into one Caddy, in this process or a separate one,
// through its admin endpoint, as caddy reload does. Caddy and Node have
// one.
type Admin struct {
	Sites
	t        testing.TB
	dataDir  string // Caddy's storage
	logLevel string // of Caddy's default log
	config   string // the whole Caddyfile last loaded
	before   func() // runs before a load
	after    func() // runs after a load, refused or not
}

// Load loads a Caddyfile's sites (the harness adds the global options),
// replacing the running config, and fails the test if Caddy refuses it.
func (a *Admin) Load(caddyfile string) {
	a.t.Helper()
	if err := a.LoadErr(caddyfile); err != nil {
		a.t.Fatalf("loading the config failed: %v\n%s", err, caddyfile)
	}
}

// LoadErr is Load for configs Caddy may refuse: it returns Caddy's answer
// to a refused config (the running config then stays) instead of failing.
func (a *Admin) LoadErr(caddyfile string) error {
	a.t.Helper()
	if a.before != nil {
		a.before()
	}
	config := a.whole(caddyfile)
	err := postLoad(a.AdminPort, config)
	if err == nil {
		a.config = config
	}
	if a.after != nil {
		a.after()
	}
	return err
}

// whole is a Caddyfile with the global options and the harness's words
// replaced.
func (a *Admin) whole(caddyfile string) string {
	return a.globals(a.dataDir, a.logLevel) + a.expand(caddyfile)
}

// globals are the global options that precede a config: dataDir holds
// Caddy's storage, and logLevel is that of Caddy's default log.
func (s Sites) globals(dataDir, logLevel string) string {
	return fmt.Sprintf(`{
	admin localhost:%d
	http_port %d
	https_port %d
	storage file_system %q
	skip_install_trust
	persist_config off
	grace_period 1s
	log {
		level %s
	}
}
`, s.AdminPort, s.HTTPPort, s.HTTPSPort, dataDir, logLevel)
}

// postLoad POSTs a Caddyfile to the /load endpoint of the admin API on
// port: a config load, or a reload when one runs.
func postLoad(port int, caddyfile string) error {
	req, err := http.NewRequest(http.MethodPost, fmt.Sprintf("http://localhost:%d/load", port), strings.NewReader(caddyfile))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "text/caddyfile")
	// Idle keep-alive connections would point at the servers this load
	// replaces.
	httpClient.CloseIdleConnections()
	defer httpClient.CloseIdleConnections()
	resp, err := httpClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST /load: HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return nil
}
