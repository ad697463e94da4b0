// Package harness is the one harness of the module's end-to-end tests: a
// real Caddy, real WebSocket clients, a real redis-server, no mocks. Only
// tests import it.
//
//   - Caddy in the test process: Start, InProcess, Caddy.Load and
//     Caddy.LoadErr; one per test binary, through caddytest.
//   - Caddy as a separate process: StartNode, from the binary that Binary
//     builds from ./cmd/caddy; Node.Load reloads it, Node.Stop stops it
//     with SIGTERM, Node.Kill kills it, Node.Restart starts it again.
//   - Configs: Caddyfiles with the words of Sites ({$WS_SITE}, {$HUB} ...),
//     and OneHub, BothProtocols and APISite for the usual ones.
//   - Redis: StartRedis, REDIS_URL's or a redis-server of the test's own
//     that it can stop and restart.
//   - WebSocket clients: Dial, LoggedIn (gorilla/websocket, ws and wss),
//     Conn.StartReader; DialRaw for peers that misbehave below the
//     WebSocket layer.
//   - The push API: API. Waiting: Eventually. JWTs: Token. Leak checks:
//     Heap, Goroutines.
//
// Ports: each test binary claims a block of 100 ports (20000 and up) by
// holding a listener on its first port, so that the packages of go test
// ./... and several checkouts run at once without meeting. Every wait is
// bounded by Guard, a failure guard and never an assertion on speed.
package harness
