package pushhub_test

import (
	"net/http"
	"testing"

	"github.com/pushhub/caddy-pushhub/internal/harness"
)

// recipeConfig serves the recipe's protocol (text, the first frame is the
// uid, clients may publish) at site, and the push API to the same hub.
func recipeConfig(site, tls string) string {
	return site + ` {
	` + tls + `
	push_hub /ws {
		hub {$HUB}
		protocol text
		auth first_message
		allow_client_publish
	}
}

{$API_SITE} {
	push_api {
		hub {$HUB}
	}
}`
}

// recipeTranscript plays the Workerman recipe's session, frame by frame,
// against the text protocol at url.
func recipeTranscript(t *testing.T, api harness.API, url string) {
	// Logging in: the first text frame is the uid.
	tab1 := harness.Dial(t, "tab1 (uid 7)", url, nil)
	tab1.LoginText("7")
	tab2 := harness.Dial(t, "tab2 (uid 7)", url, nil)
	tab2.LoginText("7")
	eight := harness.Dial(t, "uid 8", url, nil)
	eight.LoginText("8")
	api.WaitOnline(t, "7", 2)
	lurker := harness.Dial(t, "not logged in yet", url, nil)

	// <uid>:<message> reaches every connection of the uid, split at the
	// first colon only.
	eight.Send("7:hello:world")
	tab1.Expect("hello:world")
	tab2.Expect("hello:world")

	// all:<message> reaches every logged-in connection, the sender's too.
	tab1.Send("all:hi everyone")
	tab1.Expect("hi everyone")
	tab2.Expect("hi everyone")
	eight.Expect("hi everyone") // and uid 8 did not get "hello:world"

	// An unknown uid is ignored and its sender stays connected; a frame
	// without a colon is ignored too.
	eight.Send("nobody:lost")
	eight.Send("no colon here")
	eight.Send("8:still here")
	eight.Expect("still here")
	eight.Send("7:after the unknown uid")
	tab1.Expect("after the unknown uid") // so "lost" went to nobody
	tab2.Expect("after the unknown uid")

	// The connection that had not logged in got no broadcast: its first
	// frame is its login answer.
	lurker.LoginText("9")

	// Pushing from another project: the push API reaches the uid; a string
	// arrives as its bare text, any other JSON value as its JSON text.
	api.Post(t, "/send", `{"uid":"7","data":"from the backend"}`).ExpectJSON(http.StatusOK, harness.ReceiptJSON(2, 0))
	tab1.Expect("from the backend")
	tab2.Expect("from the backend")
	api.Post(t, "/send", `{"uid":"8","data":{"order":42,"state":"paid"}}`).ExpectJSON(http.StatusOK, harness.ReceiptJSON(1, 0))
	eight.Expect(`{"order":42,"state":"paid"}`)
	api.Post(t, "/send", `{"uid":"8","data":42}`).ExpectJSON(http.StatusOK, harness.ReceiptJSON(1, 0))
	eight.Expect(`42`)

	// Closing one connection unbinds that connection only: the uid's other
	// tab still receives, and the recipe's one-connection-per-uid map would
	// have lost it.
	tab1.CloseNormally()
	api.WaitOnline(t, "7", 1)
	eight.Send("7:after tab1 closed")
	tab2.Expect("after tab1 closed")
	eight.Send("all:bye")
	tab2.Expect("bye")
	eight.Expect("bye")
	lurker.Expect("bye")
	tab2.CloseNormally()
	api.WaitOnline(t, "7", 0)
	api.WaitOnline(t, "8", 1)
}

// TestRecipeTranscript: the recipe's session over ws:// through Caddy.
func TestRecipeTranscript(t *testing.T) {
	h := harness.Start(t, recipeConfig("{$WS_SITE}", ""))
	recipeTranscript(t, h.API(), h.WS+"/ws")
}

// TestRecipeOverWSS: the same session over wss:// with tls internal, the
// client trusting Caddy's local CA and nothing else.
func TestRecipeOverWSS(t *testing.T) {
	h := harness.Start(t, recipeConfig("{$HTTPS_SITE}", "tls internal"))
	h.WaitForCert()
	recipeTranscript(t, h.API(), h.WSS+"/ws")
}
