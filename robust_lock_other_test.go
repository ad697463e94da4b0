//go:build !unix

package pushhub_test

// rbLockPorts: without flock, concurrent test processes must not run the
// robustness tests at the same time.
func rbLockPorts() error { return nil }
