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
// and the hub names of one test. A Caddyfile given to Start, StartNode,
// Load or LoadErr may use these words, which the harness replaces before
// Caddy reads it (in Caddy's syntax for environment variables, so that the
// text stays a Caddyfile):
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

// Hub is the name that the word HUB ({$HUB}), or HUB2 ... HUB9, stands for.
func (s Sites) Hub(word string) string {
	if word == "HUB" {
		return s.hub
	}
	n, ok := strings.CutPrefix(word, "HUB")
	if !ok || len(n) != 1 || n < "2" || n > "9" {
		panic(fmt.Sprintf("harness: %q is not HUB, HUB2 ... HUB9", word))
	}
	return s.hub + "-" + n
}

var hubWord = regexp.MustCompile(`\{\$(HUB[2-9]?)\}`)

// expand replaces the harness's words in a Caddyfile.
func (s Sites) expand(caddyfile string) string {
	caddyfile = hubWord.ReplaceAllStringFunc(caddyfile, func(w string) string {
		return s.Hub(hubWord.FindStringSubmatch(w)[1])
	})
	return strings.NewReplacer(
		"{$WS_SITE}", s.HTTP,
		"{$API_SITE}", s.apiURL,
		"{$HTTPS_SITE}", s.HTTPS,
	).Replace(caddyfile)
}
