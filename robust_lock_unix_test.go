//go:build unix

package pushhub_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

var (
	rbLockOnce sync.Once
	rbLockErr  error
	rbLockFile *os.File // referenced for the process's life: its finalizer would unlock
)

// rbLockPorts makes the test processes of this package that run the
// robustness tests take turns: they all use ports 9600-9602, so two at once
// would load configs into each other's Caddy. The lock is an flock, taken
// on the first config load and held until the process exits (its Caddy
// keeps serving the admin port until then).
func rbLockPorts() error {
	rbLockOnce.Do(func() {
		name := filepath.Join(os.TempDir(), fmt.Sprintf("caddy-pushhub-robust-%d.lock", rbAdminPort))
		f, err := os.OpenFile(name, os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			rbLockErr = err
			return
		}
		deadline := time.Now().Add(5 * time.Minute)
		for {
			err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
			if err == nil {
				rbLockFile = f
				return
			}
			if !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
				_ = f.Close()
				rbLockErr = fmt.Errorf("another test process holds %s (ports %d-%d): %v", name, rbAdminPort, rbAPIPort, err)
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
	return rbLockErr
}
