//go:build !race

package harness

// raceEnabled: this binary runs without the race detector.
const raceEnabled = false
