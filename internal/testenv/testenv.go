// Package testenv lets tests that need an outside component (a browser, a
// redis-server, the xcaddy tool) skip on a machine that lacks it, while CI,
// which sets PUSHHUB_NO_SKIP=1, fails instead: nothing is left out silently.
package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// NoSkipVar is the environment variable that turns missing components into
// test failures.
const NoSkipVar = "PUSHHUB_NO_SKIP"

// Missing skips t (or fails it under PUSHHUB_NO_SKIP) because what is absent.
func Missing(t testing.TB, what, hint string) {
	t.Helper()
	if os.Getenv(NoSkipVar) != "" {
		t.Fatalf("%s is missing and %s is set: %s", what, NoSkipVar, hint)
	}
	t.Skipf("skipped: %s is missing (%s)", what, hint)
}

// LookPath returns the path of a program, or skips (fails under
// PUSHHUB_NO_SKIP) when it is not installed.
func LookPath(t testing.TB, names []string, hint string) string {
	t.Helper()
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	Missing(t, names[0], hint)
	return ""
}
