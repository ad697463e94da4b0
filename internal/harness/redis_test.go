package harness_test

import (
	"net"
	"testing"

	"github.com/pushhub/caddy-pushhub/internal/harness"
)

// TestRedis: the harness's Redis stores and answers.
func TestRedis(t *testing.T) {
	r := harness.StartRedis(t)
	key := "harness-test:" + t.Name()
	if got, err := r.Do("SET", key, "v1"); err != nil || got != "OK" {
		t.Fatalf("SET: %q, %v", got, err)
	}
	if got, err := r.Do("GET", key); err != nil || got != "v1" {
		t.Fatalf("GET: %q, %v, want v1", got, err)
	}
	if _, err := r.Do("NOSUCHCOMMAND"); err == nil {
		t.Fatal("an unknown command did not return Redis's error")
	}
	if _, err := r.Do("DEL", key); err != nil {
		t.Fatal(err)
	}
}

// TestRedisRestart: the test's own redis-server stops, starts again, and
// comes back from a restart empty on the same address.
func TestRedisRestart(t *testing.T) {
	r := harness.StartRedis(t)
	key := "harness-test:" + t.Name()
	r.Stop()
	if c, err := net.Dial("tcp", r.Addr); err == nil {
		c.Close()
		t.Fatalf("%s still accepts connections after Stop", r.Addr)
	}
	r.Start()
	if _, err := r.Do("SET", key, "v2"); err != nil {
		t.Fatal(err)
	}
	r.Restart()
	if got, err := r.Do("GET", key); err != nil || got != "" {
		t.Fatalf("GET after a restart: %q, %v, want nothing (no persistence)", got, err)
	}
}
