package harness

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Each test binary that uses the harness claims a block of blockSize ports
// for its whole life by holding a listener on the block's first port. So
// several test binaries (this module's packages under go test ./..., or two
// checkouts on one machine) run at once without loading configs into each
// other's Caddy or fighting over a port. The blocks lie below Linux's
// ephemeral range (32768 and up), where outgoing connections take theirs.
const (
	firstBlock = 20000
	blockSize  = 100
	blockCount = 40
)

// Offsets in a block: the lock, the ports of the in-process Caddy, then the
// pool that Port hands out (Caddy processes, redis-server).
const (
	offLock   = 0
	offAdmin  = 1
	offWS     = 2
	offAPI    = 3
	offHTTPS  = 4
	offHTTP   = 5
	offSpare  = 6 // two spare site ports
	offPool   = 10
	spareSize = 2
)

var (
	blockMu   sync.Mutex
	blockLock net.Listener // on the claimed block's first port, held for the life of the binary
	blockBase int
	poolNext  int
)

// base returns the first port of this binary's block, claiming one on
// first use; it fails t when every block is taken.
func base(t testing.TB) int {
	t.Helper()
	blockMu.Lock()
	defer blockMu.Unlock()
	if blockLock != nil {
		return blockBase
	}
	for i := range blockCount {
		b := firstBlock + i*blockSize
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", b+offLock))
		if err == nil {
			blockLock, blockBase = l, b
			return b
		}
	}
	t.Fatalf("every port block (%d-%d) is taken: are %d other test binaries running?",
		firstBlock, firstBlock+blockCount*blockSize-1, blockCount)
	return 0
}

// Port returns a port of this binary's block that nothing listens on now,
// for a Caddy process or a redis-server the test starts. Ports are handed
// out in turn and come round again once the pool is used up.
func Port(t testing.TB) int {
	t.Helper()
	b := base(t)
	blockMu.Lock()
	defer blockMu.Unlock()
	for range blockSize - offPool {
		p := b + offPool + poolNext
		poolNext = (poolNext + 1) % (blockSize - offPool)
		if l, err := net.Listen("tcp", fmt.Sprintf(":%d", p)); err == nil {
			_ = l.Close()
			return p
		}
	}
	t.Fatalf("no free port left in %d-%d", b+offPool, b+blockSize-1)
	return 0
}

// buildLockPort is held by the test binary that builds the Caddy binary,
// so that the others wait for it rather than build it too.
const buildLockPort = firstBlock - 1

// buildLock waits for the build lock and returns its release. A cold build
// takes minutes: the wait is a failure guard of 10 minutes.
func buildLock(t testing.TB) (unlock func()) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Minute)
	for {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", buildLockPort))
		if err == nil {
			return func() { _ = l.Close() }
		}
		if time.Now().After(deadline) {
			t.Fatalf("the build lock (port %d) is still held after 10 minutes: %v", buildLockPort, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stateDir is a directory of this binary's block that outlives the test
// binary and is reused by the next one to claim the block: the in-process
// Caddy's storage (its local CA) lives there, so that repeated runs
// neither redo that work nor leave copies behind.
func stateDir(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(os.TempDir(), "caddy-pushhub-harness", fmt.Sprint(base(t)))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}
