package harness

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pushhub/caddy-pushhub/internal/testenv"
)

// RedisURLVar names an outside Redis for the tests to use instead of
// starting redis-server.
const RedisURLVar = "REDIS_URL"

// Redis is a Redis for one test: the one REDIS_URL names, or else a
// redis-server of the test's own on a port of the block, without
// persistence, in a temporary directory, stopped when the test ends.
type Redis struct {
	URL  string // redis://host:port[/db], what a cluster directive takes
	Addr string // host:port

	t        testing.TB
	password string
	db       int
	own      bool   // a redis-server this test started
	server   string // its path
	dir      string
	cmd      *exec.Cmd
	exited   chan struct{}
	out      *output
}

// StartRedis returns a Redis for t: REDIS_URL's when set; else it starts
// redis-server, and skips t (fails it under PUSHHUB_NO_SKIP) when
// redis-server is not installed.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	if s := os.Getenv(RedisURLVar); s != "" {
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
			t.Fatalf("%s=%q is not a redis:// URL", RedisURLVar, s)
		}
		if u.Scheme == "rediss" {
			t.Fatalf("%s=%q: the harness speaks to Redis without TLS", RedisURLVar, s)
		}
		r := &Redis{URL: s, Addr: u.Host, t: t}
		r.password, _ = u.User.Password()
		if db := strings.Trim(u.Path, "/"); db != "" {
			if r.db, err = strconv.Atoi(db); err != nil {
				t.Fatalf("%s=%q: database %q is not a number", RedisURLVar, s, db)
			}
		}
		if _, err := r.Do("PING"); err != nil {
			t.Fatalf("%s=%q: %v", RedisURLVar, s, err)
		}
		return r
	}
	server := testenv.LookPath(t, []string{"redis-server"}, "apt-get install redis-server, or set "+RedisURLVar)
	port := Port(t)
	r := &Redis{
		URL:    fmt.Sprintf("redis://127.0.0.1:%d/0", port),
		Addr:   fmt.Sprintf("127.0.0.1:%d", port),
		t:      t,
		own:    true,
		server: server,
		dir:    t.TempDir(),
		out:    new(output),
	}
	t.Cleanup(func() {
		if r.running() {
			r.kill()
		}
		if t.Failed() {
			t.Logf("output of redis-server on %s:\n%s", r.Addr, r.out.String())
		}
	})
	r.Start()
	return r
}

// Start starts the test's redis-server (again, after Stop) on its port, and
// waits until it answers PING.
func (r *Redis) Start() {
	r.t.Helper()
	r.mustOwn("start")
	if r.running() {
		r.t.Fatal("redis-server is running already")
	}
	_, port, _ := net.SplitHostPort(r.Addr)
	cmd := exec.Command(r.server,
		"--port", port, "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no",
		"--dir", r.dir, "--logfile", "")
	cmd.Stdout, cmd.Stderr = r.out, r.out
	if err := cmd.Start(); err != nil {
		r.t.Fatalf("starting redis-server: %v", err)
	}
	r.cmd, r.exited = cmd, make(chan struct{})
	exited := r.exited
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	Eventually(r.t, "redis-server answers PING", func() (bool, string) {
		select {
		case <-exited:
			r.t.Fatalf("redis-server exited at start:\n%s", r.out.String())
		default:
		}
		pong, err := r.Do("PING")
		if err != nil {
			return false, err.Error()
		}
		return pong == "PONG", pong
	})
}

// Stop stops the test's redis-server (SIGTERM) and waits until it has
// exited; what it held is gone, as nothing is persisted.
func (r *Redis) Stop() {
	r.t.Helper()
	r.mustOwn("stop")
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.exited:
	case <-time.After(Guard):
		r.kill()
		r.t.Fatalf("redis-server did not exit within %s of SIGTERM", Guard)
	}
}

// Restart stops the test's redis-server and starts it again on the same
// port, empty: a Redis outage in the middle of the traffic.
func (r *Redis) Restart() {
	r.t.Helper()
	r.Stop()
	r.Start()
}

// Pause freezes the test's redis-server (SIGSTOP): it keeps its data and
// its connections but answers nothing, as a Redis behind a broken network
// does, until Resume.
func (r *Redis) Pause() {
	r.t.Helper()
	r.mustOwn("pause")
	_ = r.cmd.Process.Signal(syscall.SIGSTOP)
}

// Resume lets a paused redis-server go on (SIGCONT), data and all.
func (r *Redis) Resume() {
	r.t.Helper()
	r.mustOwn("resume")
	_ = r.cmd.Process.Signal(syscall.SIGCONT)
}

// mustOwn skips t (fails it under PUSHHUB_NO_SKIP) where the Redis is
// REDIS_URL's, which a test must not stop.
func (r *Redis) mustOwn(what string) {
	r.t.Helper()
	if !r.own {
		testenv.Missing(r.t, "a redis-server of the test's own",
			"the test would "+what+" Redis, and "+RedisURLVar+" names an outside one; unset it")
	}
}

func (r *Redis) running() bool {
	if r.exited == nil {
		return false
	}
	select {
	case <-r.exited:
		return false
	default:
		return true
	}
}

func (r *Redis) kill() {
	_ = r.cmd.Process.Signal(syscall.SIGCONT) // a paused one too
	_ = r.cmd.Process.Kill()
	<-r.exited
}

// Do runs one command on a connection of its own and returns the reply: a
// status or bulk string as it is, an integer in decimal, "" for nil. A
// Redis error is returned as an error.
func (r *Redis) Do(args ...string) (string, error) {
	conn, err := net.DialTimeout("tcp", r.Addr, Guard)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(Guard))
	br := bufio.NewReader(conn)
	if r.password != "" {
		if _, err := command(conn, br, "AUTH", r.password); err != nil {
			return "", err
		}
	}
	if r.db != 0 {
		if _, err := command(conn, br, "SELECT", strconv.Itoa(r.db)); err != nil {
			return "", err
		}
	}
	return command(conn, br, args...)
}

// command writes one command and reads its reply.
func command(conn net.Conn, br *bufio.Reader, args ...string) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := conn.Write([]byte(b.String())); err != nil {
		return "", err
	}
	reply, err := readReply(br)
	if err != nil {
		return "", fmt.Errorf("%s: %w", args[0], err)
	}
	return reply, nil
}

// readReply reads one RESP reply that is not an array.
func readReply(br *bufio.Reader) (string, error) {
	line, err := br.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return "", errors.New("empty reply")
	}
	switch line[0] {
	case '+', ':':
		return line[1:], nil
	case '-':
		return "", errors.New(line[1:])
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return "", fmt.Errorf("bad bulk length %q", line)
		}
		if n < 0 {
			return "", nil
		}
		b := make([]byte, n+2)
		if _, err := io.ReadFull(br, b); err != nil {
			return "", err
		}
		return string(b[:n]), nil
	}
	return "", fmt.Errorf("unexpected reply %q", line)
}
