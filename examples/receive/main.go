// Command receive logs in to a push_hub endpoint (json protocol) and prints the data of every push, a line each.
// Run: go run ./examples/receive ws://localhost:8080/ws alice      (auth first_message, as in Caddyfile.example)
//
//	PUSH_TOKEN=<jwt> go run ./examples/receive wss://push.example.com/ws   (auth jwt)
package main

import (
	"encoding/json"
	"fmt"
	"log"
	"os"

	"github.com/gorilla/websocket"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: receive <ws url> [<uid>]")
		os.Exit(2)
	}
	ws, _, err := websocket.DefaultDialer.Dial(os.Args[1], nil)
	if err != nil {
		log.Fatal(err)
	}
	defer ws.Close()
	login := map[string]string{"type": "login", "token": os.Getenv("PUSH_TOKEN")}
	if login["token"] == "" && len(os.Args) > 2 {
		login = map[string]string{"type": "login", "uid": os.Args[2]}
	}
	if err := ws.WriteJSON(login); err != nil {
		log.Fatal(err)
	}
	for {
		var f struct {
			Type, UID, Code, Message string
			Seq                      uint64
			Data                     json.RawMessage
		}
		if err := ws.ReadJSON(&f); err != nil { // a close frame too: its code and reason
			log.Fatal(err)
		}
		switch f.Type {
		case "welcome":
			fmt.Println("logged in as", f.UID)
		case "message":
			fmt.Println(string(f.Data))
			_ = ws.WriteJSON(map[string]any{"type": "ack", "seq": f.Seq}) // for wait_ack senders
		case "error":
			log.Printf("%s: %s", f.Code, f.Message)
		}
	}
}
