package harness

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pushhub/caddy-pushhub/internal/testenv"
)

// Node is a Caddy running as a separate process, from the binary that
// Binary builds, on ports of this binary's block. Its output (Caddy's log)
// is shown in the test log when the test fails; a node still running at
// the end of the test is killed.
type Node struct {
	Admin
	bin string
	dir string
	out *output

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has exited
	err    error         // how it exited, once exited is closed
}

var (
	binaryMu   sync.Mutex
	binaryPath string
)

// Binary builds ./cmd/caddy (Caddy with the standard modules and this
// plugin), with the race detector when this binary has it, and returns its
// path. The test binaries of one checkout share the result: the first one
// to need it builds it while it holds the build lock, and the others then
// find it up to date, as go build relinks nothing that is.
func Binary(t testing.TB) string {
	t.Helper()
	binaryMu.Lock()
	defer binaryMu.Unlock()
	if binaryPath != "" {
		return binaryPath
	}
	goCmd, err := exec.LookPath("go")
	if err != nil {
		testenv.Missing(t, "the go command", "the harness builds ./cmd/caddy with it")
	}
	gomod, err := exec.Command(goCmd, "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	checkout := sha256.Sum256(bytes.TrimSpace(gomod))
	out := filepath.Join(os.TempDir(), "caddy-pushhub-harness", fmt.Sprintf("caddy-%x", checkout[:6]))
	args := []string{"build", "-o", out}
	if raceEnabled {
		out += "-race"
		args = []string{"build", "-race", "-o", out}
	}
	args = append(args, "github.com/pushhub/caddy-pushhub/cmd/caddy")
	unlock := buildLock(t)
	defer unlock()
	if b, err := exec.Command(goCmd, args...).CombinedOutput(); err != nil {
		t.Fatalf("go %v: %v\n%s", args, err, b)
	}
	binaryPath = out
	return out
}

// StartNode starts a Caddy process from Binary with a Caddyfile's sites
// (the harness adds the global options), waits until its admin endpoint
// answers, which is once the config runs, and fails t if it does not.
func StartNode(t testing.TB, caddyfile string) *Node {
	t.Helper()
	if testing.Short() {
		t.Skip("runs a Caddy: not with -short")
	}
	return StartNodeFrom(t, Binary(t), caddyfile)
}

// StartNodeFrom is StartNode with another Caddy binary, such as one that
// xcaddy built. Like InProcess, it skips t under go test -short.
func StartNodeFrom(t testing.TB, bin, caddyfile string) *Node {
	t.Helper()
	if testing.Short() {
		t.Skip("runs a Caddy: not with -short")
	}
	dir := t.TempDir()
	n := &Node{
		Admin: Admin{
			Sites:    newSites(t, Port(t), Port(t), Port(t), Port(t), Port(t)),
			t:        t,
			dataDir:  filepath.Join(dir, "data"),
			logLevel: "INFO",
		},
		bin: bin,
		dir: dir,
		out: new(output),
	}
	n.config = n.whole(caddyfile)
	t.Cleanup(func() {
		if n.running() {
			n.Kill()
		}
		if t.Failed() {
			t.Logf("output of the Caddy process on admin port %d:\n%s", n.AdminPort, n.Output())
		}
	})
	n.start()
	return n
}

// Restart starts the node again, after Stop or Kill, with the config it
// last loaded (Load reloads a running node) and on the same ports.
func (n *Node) Restart() {
	n.t.Helper()
	if n.running() {
		n.t.Fatalf("the Caddy process %d still runs", n.PID())
	}
	n.start()
}

func (n *Node) start() {
	n.t.Helper()
	file := filepath.Join(n.dir, "Caddyfile")
	if err := os.WriteFile(file, []byte(n.config), 0o600); err != nil {
		n.t.Fatal(err)
	}
	cmd := exec.Command(n.bin, "run", "--config", file, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(),
		"XDG_DATA_HOME="+filepath.Join(n.dir, "data"),
		"XDG_CONFIG_HOME="+filepath.Join(n.dir, "config"))
	cmd.Stdout, cmd.Stderr = n.out, n.out
	if err := cmd.Start(); err != nil {
		n.t.Fatalf("starting %s: %v", n.bin, err)
	}
	exited := make(chan struct{})
	n.mu.Lock()
	n.cmd, n.exited, n.err = cmd, exited, nil
	n.mu.Unlock()
	go func() {
		err := cmd.Wait()
		n.mu.Lock()
		n.err = err
		n.mu.Unlock()
		close(exited)
	}()

	admin := fmt.Sprintf("http://localhost:%d/config/", n.AdminPort)
	Eventually(n.t, "the Caddy process answers on its admin endpoint", func() (bool, string) {
		select {
		case <-exited:
			n.t.Fatalf("the Caddy process exited (%v) before its admin endpoint answered:\n%s", n.exitErr(), n.Output())
		default:
		}
		// The admin endpoint answers once the initial config runs: a
		// config load holds the lock that reading the config takes.
		resp, err := httpClient.Get(admin)
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
}

// Stop stops the node gracefully, with SIGTERM as a service manager does,
// waits for it to exit and fails t unless it exits cleanly within Guard.
func (n *Node) Stop() {
	n.t.Helper()
	n.signal(syscall.SIGTERM)
	if !n.wait() {
		n.Kill()
		n.t.Fatalf("the Caddy process did not exit within %s of SIGTERM", Guard)
	}
	if err := n.exitErr(); err != nil {
		n.t.Fatalf("the Caddy process exited with %v after SIGTERM", err)
	}
}

// Kill kills the node with SIGKILL, as a crash would end it, and waits
// for it to be gone.
func (n *Node) Kill() {
	n.t.Helper()
	n.signal(syscall.SIGKILL)
	if !n.wait() {
		n.t.Fatalf("the Caddy process %d outlived SIGKILL by %s", n.PID(), Guard)
	}
}

// PID is the process id of the node (of its latest start), for memory and
// goroutine figures.
func (n *Node) PID() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cmd.Process.Pid
}

// Output is what the node has written to stdout and stderr so far.
func (n *Node) Output() string { return n.out.String() }

func (n *Node) signal(sig syscall.Signal) {
	n.mu.Lock()
	p := n.cmd.Process
	n.mu.Unlock()
	_ = p.Signal(sig)
}

func (n *Node) running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.exited == nil {
		return false
	}
	select {
	case <-n.exited:
		return false
	default:
		return true
	}
}

// wait waits at most Guard for the process to exit.
func (n *Node) wait() bool {
	n.mu.Lock()
	exited := n.exited
	n.mu.Unlock()
	select {
	case <-exited:
		return true
	case <-time.After(Guard):
		return false
	}
}

func (n *Node) exitErr() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.err
}

// output collects a process's output for the test log.
type output struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}
