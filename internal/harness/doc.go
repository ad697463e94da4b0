// Package harness is the one test harness of the module's end-to-end
// tests: real Caddy, real WebSocket clients, a real redis-server, no mocks.
// Only tests import it.
//
//   - Caddy in the test process (InProcess, Caddy.Load, Caddy.LoadErr): one
//     per test binary, through caddytest, with fresh hub names per test.
//   - Caddy as a separate process (StartNode): the binary built from
//     ./cmd/caddy, started, reloaded, stopped with SIGTERM or killed.
//   - Redis (StartRedis): REDIS_URL's, or a redis-server of the test's own
//     that it can stop and restart.
//   - WebSocket clients: Dial (gorilla/websocket, ws and wss), and DialRaw
//     for peers that misbehave below the WebSocket layer.
//   - The push API (API), waiting for a condition (Eventually), JWTs
//     (Token), heap and goroutine readings (Heap, Goroutines).
//
// Ports: each test binary claims a block of 100 ports (20000 and up) by
// holding a listener on its first port, so that the packages of go test
// ./... and several checkouts run at once without meeting. Every wait is
// bounded by Guard, a failure guard and never an assertion on speed.
package harness
