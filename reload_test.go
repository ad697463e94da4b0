package pushhub_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

// loadConfigErr loads sites like loadConfig but returns the admin
// endpoint's refusal instead of failing the test.
func loadConfigErr(t *testing.T, sites string) error {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, fmt.Sprintf("http://localhost:%d/load", adminPort), strings.NewReader(globalOptions()+sites))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "text/caddyfile")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	return fmt.Errorf("HTTP %d: %s", resp.StatusCode, body)
}

// TestReloadThatFailsChangesNothing: a config that fails to load, refused
// by the handler's Validate, by another module's Provision, or by a port in
// use, leaves the running hub, its endpoints and its open connections
// exactly as they were. Each failing config turns client publishing off;
// after the failure, publishing still works on the connection that was open
// and on new ones.
func TestReloadThatFailsChangesNothing(t *testing.T) {
	hubSites := func(publish, extraHub, extraSite string) string {
		return fmt.Sprintf(`http://localhost:%d {
	push_hub /ws {
		hub e2e_failed_reload
		auth first_message
		%s
		%s
	}
}

http://localhost:%d {
	push_api {
		hub e2e_failed_reload
	}
}
%s`, wsPort, publish, extraHub, apiPort, extraSite)
	}
	good := hubSites("allow_client_publish", "", "")

	busy, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", extPort))
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()

	failures := []struct {
		name, sites, wantErr string
	}{
		{"refused by Validate", hubSites("", "max_uid_length 5000", ""), "max_uid_length"},
		{"another module's Provision fails", hubSites("", "send_queue 4", fmt.Sprintf(`
http://localhost:%d {
	basic_auth {
		alice not-a-password-hash
	}
}
`, extKeyed)), "basic"},
		{"a port in use", hubSites("", "send_queue 4", fmt.Sprintf(`
http://127.0.0.1:%d {
	bind 127.0.0.1
	respond "never served" 200
}
`, extPort)), "address already in use"},
	}

	loadConfig(t, good)
	sender := dial(t, "sender", wsURL+"/ws", nil)
	sender.loginJSON("uid", "sender", "sender", 0)
	receiver := dial(t, "receiver", wsURL+"/ws", nil)
	receiver.loginJSON("uid", "receiver", "receiver", 0)
	seq := uint64(0)
	// One connection of the running config lives through every failure, so
	// the cases run in turn in this test rather than as subtests.
	for _, f := range failures {
		err := loadConfigErr(t, f.sites)
		if err == nil {
			t.Fatalf("%s: the config loaded; want it refused:\n%s", f.name, f.sites)
		}
		if !strings.Contains(err.Error(), f.wantErr) {
			t.Fatalf("%s: the load failed with %v, want an error mentioning %q", f.name, err, f.wantErr)
		}
		// The open connection still may publish.
		for i := range 6 {
			sender.send(fmt.Sprintf(`{"type":"send","id":%d,"to":"receiver","data":%d}`, i, i))
			sender.expect(fmt.Sprintf(`{"type":"sent","id":%d,"delivered":1,"dropped":0}`, i))
		}
		for i := range 6 {
			seq++
			receiver.expect(fmt.Sprintf(`{"type":"message","seq":%d,"data":%d,"from":"sender"}`, seq, i))
		}
		// So may a new connection, and the running config still serves.
		fresh := dial(t, "a new connection", wsURL+"/ws", nil)
		fresh.loginJSON("uid", "fresh", "fresh", 0)
		fresh.send(`{"type":"send","id":"f","to":"receiver","data":"from a new connection"}`)
		fresh.expect(`{"type":"sent","id":"f","delivered":1,"dropped":0}`)
		seq++
		receiver.expect(fmt.Sprintf(`{"type":"message","seq":%d,"data":"from a new connection","from":"fresh"}`, seq))
		fresh.closeNormally()
		get(t, apiURL+"/online?uid=sender").expectJSON(t, http.StatusOK, online("sender", 1))
	}

	// The same reload that succeeds does change the open connections.
	loadConfig(t, hubSites("", "", ""))
	sender.send(`{"type":"send","id":"after","to":"receiver","data":"refused"}`)
	sender.expectError("publish_forbidden", `"after"`)
}

// TestEndpointsThatShareAHubMustAgree: two endpoints of one hub with the
// same protocol and auth mode share their settings, so different settings
// are refused with an error that says why, and the running config stays.
func TestEndpointsThatShareAHubMustAgree(t *testing.T) {
	loadConfig(t, fmt.Sprintf(`http://localhost:%d {
	push_hub /ws {
		hub e2e_agree
		auth first_message
	}
}
`, wsPort))
	c := dial(t, "open", wsURL+"/ws", nil)
	c.loginJSON("uid", "a", "a", 0)
	err := loadConfigErr(t, fmt.Sprintf(`http://localhost:%d {
	push_hub /ws {
		hub e2e_agree
		auth first_message
		send_queue 10
	}
	push_hub /ws2 {
		hub e2e_agree
		auth first_message
		send_queue 20
	}
}
`, wsPort))
	if err == nil || !strings.Contains(err.Error(), "e2e_agree") || !strings.Contains(err.Error(), "differ in their settings") {
		t.Fatalf("loading two disagreeing endpoints: %v, want a refusal naming the hub and saying they differ", err)
	}
	c.send(`{"type":"ping","id":1}`)
	c.expect(`{"type":"pong","id":1}`)
}
