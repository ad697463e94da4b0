//go:build race

package harness

// raceEnabled: this binary runs with the race detector, and so do the Caddy
// processes it starts.
const raceEnabled = true
