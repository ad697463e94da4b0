// Command push pushes a message to a uid through push_api, with the Go client pushapi.
// Run: PUSH_API_KEY=<key> go run ./examples/push alice "hello from Go"
// PUSH_API_URL defaults to http://127.0.0.1:7070 (the push_api site of Caddyfile.example).
package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/pushhub/caddy-pushhub/pushapi"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: push <uid> <message>")
		os.Exit(2)
	}
	api := pushapi.New(cmp.Or(os.Getenv("PUSH_API_URL"), "http://127.0.0.1:7070"), os.Getenv("PUSH_API_KEY"), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	receipt, err := api.SendUID(ctx, os.Args[1], os.Args[2])
	if err != nil {
		log.Fatal(err)
	}
	out, _ := json.Marshal(receipt)
	fmt.Println(string(out))
}
