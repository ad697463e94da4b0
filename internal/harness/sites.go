package harness

import (
	"fmt"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// Sites are the addresses of one Caddy (in this process or a separate one)
// and the hub names of one test. A Caddyfile given to Load, StartNode or
// Reload may use these words, which the harness replaces before Caddy reads
// it (Caddy's own syntax for environment variables, so the text stays a
// Caddyfile):
//
//	{$WS_SITE}     the WebSocket site, http://localhost:<WSPort>
//	{$API_SITE}    the push API site, http://localhost:<APIPort>
//	{$HTTPS_SITE}  an https site, https://localhost:<HTTPSPort> (with tls internal)
//	{$HUB}         a hub name no other test of this binary uses; {$HUB2} ... {$HUB9} more
type Sites struct {
	AdminPort, WSPort, APIPort, HTTPSPort, HTTPPort int

	WS    string // ws://localhost:<WSPort>
	HTTP  string // http://localhost:<WSPort>, the WebSocket site over HTTP
	WSS   string // wss://localhost:<HTTPSPort>
	HTTPS string // https://localhost:<HTTPSPort>

	apiURL string
	hub    string // {$HUB}; {$HUBn} adds -n
}

var (
	hubSeq   atomic.Int64
	hubNames sync.Map // testing.TB -> its {$HUB}
)

// hubName is t's {$HUB}: one per test, so that a test's Caddy processes and
// the in-process Caddy agree on it, and never the same for two tests, nor
// for two runs of one test under -count.
func hubName(t testing.TB) string {
	name := fmt.Sprintf("%s-%d", nonName.ReplaceAllString(t.Name(), "_"), hubSeq.Add(1))
	if v, loaded := hubNames.LoadOrStore(t, name); loaded {
		return v.(string)
	}
	t.Cleanup(func() { hubNames.Delete(t) })
	return name
}

var nonName = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

func newSites(t testing.TB, admin, ws, api, https, http int) Sites {
	return Sites{
		AdminPort: admin, WSPort: ws, APIPort: api, HTTPSPort: https, HTTPPort: http,
		WS:     fmt.Sprintf("ws://localhost:%d", ws),
		HTTP:   fmt.Sprintf("http://localhost:%d", ws),
		WSS:    fmt.Sprintf("wss://localhost:%d", https),
		HTTPS:  fmt.Sprintf("https://localhost:%d", https),
		apiURL: fmt.Sprintf("http://localhost:%d", api),
		hub:    hubName(t),
	}
}

// API is the push API on the API site, without a key.
func (s Sites) API() API { return API{URL: s.apiURL} }

// Hub is the name that a word {$HUB}, {$HUB2} ... {$HUB9} stands for.
func (s Sites) Hub(word string) string {
	m := hubWord.FindStringSubmatch("{$" + word + "}")
	if m == nil {
		panic(fmt.Sprintf("harness: %q is not HUB, HUB2 ... HUB9", word))
	}
	if m[1] == "" {
		return s.hub
	}
	return s.hub + "-" + m[1]
}

var hubWord = regexp.MustCompile(`\{\$HUB([2-9]?)\}`)

// expand replaces the harness's words in a Caddyfile.
func (s Sites) expand(caddyfile string) string {
	caddyfile = hubWord.ReplaceAllStringFunc(caddyfile, func(w string) string {
		return s.Hub(strings.TrimSuffix(strings.TrimPrefix(w, "{$"), "}"))
	})
	return strings.NewReplacer(
		"{$WS_SITE}", s.HTTP,
		"{$API_SITE}", s.apiURL,
		"{$HTTPS_SITE}", s.HTTPS,
	).Replace(caddyfile)
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

// OneHub is the config most tests need: on the WebSocket site a json
// push_hub at /ws on hub {$HUB} with auth first_message and then the
// directives given, one a line; on the API site, push_api for {$HUB}.
func OneHub(directives ...string) string {
	return "{$WS_SITE} {\n" + endpoint("/ws", "", directives) + "}\n\n" + APISite("HUB")
}

// BothProtocols is OneHub with a second endpoint on {$HUB}, at /text, that
// speaks the text protocol; both take the directives given.
func BothProtocols(directives ...string) string {
	return "{$WS_SITE} {\n" + endpoint("/ws", "", directives) + endpoint("/text", "text", directives) + "}\n\n" + APISite("HUB")
}

func endpoint(path, protocol string, directives []string) string {
	if protocol != "" {
		directives = append([]string{"protocol " + protocol}, directives...)
	}
	var b strings.Builder
	b.WriteString("\tpush_hub " + path + " {\n\t\thub {$HUB}\n\t\tauth first_message\n")
	for _, d := range directives {
		b.WriteString("\t\t" + d + "\n")
	}
	b.WriteString("\t}\n")
	return b.String()
}

// APISite is the API site of a config: push_api for each hub word (HUB,
// HUB2 ...) under /<word>/, such as /HUB2/send, which
// Sites.API().Under("/HUB2") calls, and for the first one at the root too.
func APISite(hubs ...string) string {
	var b strings.Builder
	b.WriteString("{$API_SITE} {\n")
	for _, hub := range hubs {
		fmt.Fprintf(&b, "\thandle_path /%s/* {\n\t\tpush_api {\n\t\t\thub {$%s}\n\t\t}\n\t}\n", hub, hub)
	}
	fmt.Fprintf(&b, "\thandle {\n\t\tpush_api {\n\t\t\thub {$%s}\n\t\t}\n\t}\n}\n", hubs[0])
	return b.String()
}
