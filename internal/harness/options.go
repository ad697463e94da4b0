package harness

import "strings"

// LoadWithOptions is Load with more global options (such as a servers
// block with trusted_proxies) after the harness's own.
func (a *Admin) LoadWithOptions(options, caddyfile string) {
	a.t.Helper()
	if a.before != nil {
		a.before()
	}
	globals := strings.TrimSuffix(a.globals(a.dataDir, a.logLevel), "}\n")
	config := globals + options + "\n}\n" + a.expand(caddyfile)
	err := postLoad(a.AdminPort, config)
	if err == nil {
		a.config = config
	}
	if a.after != nil {
		a.after()
	}
	if err != nil {
		a.t.Fatalf("loading the config failed: %v\n%s", err, config)
	}
}
