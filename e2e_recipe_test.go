package pushhub_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/gorilla/websocket"
)

// recipeSites serves the recipe's protocol (text, the first frame is the
// uid, clients may publish) on hub at siteAddr, and the push API to the same
// hub on the API site.
func recipeSites(siteAddr, tlsLine, hub string) string {
	return fmt.Sprintf(`%s {
	%s
	push_hub /ws {
		hub %s
		protocol text
		auth first_message
		allow_client_publish
	}
}

http://localhost:%d {
	push_api {
		hub %s
	}
}
`, siteAddr, tlsLine, hub, apiPort, hub)
}

// recipeTranscript plays the Workerman recipe's session, frame by frame,
// against the text protocol at url.
func recipeTranscript(t *testing.T, d *websocket.Dialer, url string) {
	// Logging in: the first text frame is the uid.
	tab1 := dialWith(t, d, "tab1 (uid 7)", url, nil)
	tab1.send("7")
	tab1.expect("login success, your uid is 7")
	tab2 := dialWith(t, d, "tab2 (uid 7)", url, nil)
	tab2.send("7")
	tab2.expect("login success, your uid is 7")
	eight := dialWith(t, d, "uid 8", url, nil)
	eight.send("8")
	eight.expect("login success, your uid is 8")
	waitOnline(t, apiURL, "7", 2)
	lurker := dialWith(t, d, "not logged in yet", url, nil)

	// <uid>:<message> reaches every connection of the uid, split at the
	// first colon only.
	eight.send("7:hello:world")
	tab1.expect("hello:world")
	tab2.expect("hello:world")

	// all:<message> reaches every logged-in connection, the sender's too.
	tab1.send("all:hi everyone")
	tab1.expect("hi everyone")
	tab2.expect("hi everyone")
	eight.expect("hi everyone") // and uid 8 did not get "hello:world"

	// An unknown uid is ignored and its sender stays connected; a frame
	// without a colon is ignored too.
	eight.send("nobody:lost")
	eight.send("no colon here")
	eight.send("8:still here")
	eight.expect("still here")
	eight.send("7:after the unknown uid")
	tab1.expect("after the unknown uid") // so "lost" went to nobody
	tab2.expect("after the unknown uid")

	// The connection that had not logged in got no broadcast: its first
	// frame is its login answer.
	lurker.send("9")
	lurker.expect("login success, your uid is 9")

	// Pushing from another project: the push API reaches the uid; a string
	// arrives as its bare text, any other JSON value as its JSON text.
	post(t, apiURL+"/send", `{"uid":"7","data":"from the backend"}`).expectJSON(t, http.StatusOK, receipt(2, 0))
	tab1.expect("from the backend")
	tab2.expect("from the backend")
	post(t, apiURL+"/send", `{"uid":"8","data":{"order":42,"state":"paid"}}`).expectJSON(t, http.StatusOK, receipt(1, 0))
	eight.expect(`{"order":42,"state":"paid"}`)

	// Closing one connection unbinds that connection only: the uid's other
	// tab still receives, and the recipe's one-connection-per-uid map would
	// have lost it.
	tab1.closeNormally()
	waitOnline(t, apiURL, "7", 1)
	eight.send("7:after tab1 closed")
	tab2.expect("after tab1 closed")
	eight.send("all:bye")
	tab2.expect("bye")
	eight.expect("bye")
	lurker.expect("bye")
	tab2.closeNormally()
	waitOnline(t, apiURL, "7", 0)
	waitOnline(t, apiURL, "8", 1)
}

// TestE2ERecipeTranscript: the recipe's session over ws:// through Caddy.
func TestE2ERecipeTranscript(t *testing.T) {
	loadConfig(t, recipeSites(fmt.Sprintf("http://localhost:%d", wsPort), "", "e2e_recipe"))
	recipeTranscript(t, dialer, wsURL+"/ws")
}

// TestE2ERecipeOverWSS: the same session over wss:// with tls internal,
// the client trusting Caddy's local CA and nothing else.
func TestE2ERecipeOverWSS(t *testing.T) {
	loadConfig(t, recipeSites(httpsURL, "tls internal", "e2e_recipe_wss"))
	d := &websocket.Dialer{HandshakeTimeout: ioTimeout, TLSClientConfig: waitForCert(t)}
	recipeTranscript(t, d, wssURL+"/ws")
}
