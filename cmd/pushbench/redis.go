package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// redisClient reads a Redis server's INFO over RESP, enough to tell what a
// cluster costs Redis: the commands by name, their total and Redis's own CPU,
// before and after each phase.
type redisClient struct {
	addr, user, pass string

	mu   sync.Mutex
	conn net.Conn
	r    *bufio.Reader
}

// redisTarget is a parsed -redis URL.
type redisTarget struct{ addr, user, pass string }

// parseRedisURL reads redis://[[user]:password@]host[:port][/db]; the host
// must be this machine.
func parseRedisURL(raw string) (redisTarget, error) {
	u, err := loopbackURL(raw, "redis")
	if err != nil {
		return redisTarget{}, err
	}
	t := redisTarget{addr: u.Host}
	if u.Port() == "" {
		t.addr = net.JoinHostPort(u.Hostname(), "6379")
	}
	if u.User != nil {
		t.user = u.User.Username()
		t.pass, _ = u.User.Password()
		if t.pass == "" { // redis://secret@host: the password alone
			t.user, t.pass = "", t.user
		}
	}
	if p := strings.Trim(u.Path, "/"); p != "" {
		if _, err := strconv.Atoi(p); err != nil {
			return redisTarget{}, fmt.Errorf("%q: the path must be a database number", (&url.URL{Path: u.Path}).String())
		}
	}
	return t, nil
}

func newRedisClient(raw string) (*redisClient, error) {
	t, err := parseRedisURL(raw)
	if err != nil {
		return nil, err
	}
	return &redisClient{addr: t.addr, user: t.user, pass: t.pass}, nil
}

// do sends one command and reads its reply, dialing (and authenticating) when
// it has no connection; an error closes the connection.
func (c *redisClient) do(args ...string) (any, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == nil {
		conn, err := net.DialTimeout("tcp", c.addr, 2*time.Second)
		if err != nil {
			return nil, err
		}
		c.conn, c.r = conn, bufio.NewReader(conn)
		if c.pass != "" {
			auth := []string{"AUTH", c.pass}
			if c.user != "" {
				auth = []string{"AUTH", c.user, c.pass}
			}
			if _, err := c.roundTrip(auth); err != nil {
				c.closeLocked()
				return nil, fmt.Errorf("AUTH: %w", err)
			}
		}
	}
	v, err := c.roundTrip(args)
	var re redisError
	if err != nil && !errors.As(err, &re) {
		c.closeLocked()
	}
	return v, err
}

func (c *redisClient) roundTrip(args []string) (any, error) {
	_ = c.conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.conn.Write(appendCommand(nil, args...)); err != nil {
		return nil, err
	}
	return readRESP(c.r)
}

func (c *redisClient) closeLocked() {
	if c.conn != nil {
		c.conn.Close()
		c.conn, c.r = nil, nil
	}
}

func (c *redisClient) close() {
	c.mu.Lock()
	c.closeLocked()
	c.mu.Unlock()
}

// appendCommand encodes a command as a RESP array of bulk strings.
func appendCommand(b []byte, args ...string) []byte {
	b = append(b, '*')
	b = strconv.AppendInt(b, int64(len(args)), 10)
	b = append(b, "\r\n"...)
	for _, a := range args {
		b = append(b, '$')
		b = strconv.AppendInt(b, int64(len(a)), 10)
		b = append(b, "\r\n"...)
		b = append(b, a...)
		b = append(b, "\r\n"...)
	}
	return b
}

// redisError is an error reply (-ERR ...).
type redisError string

func (e redisError) Error() string { return "redis: " + string(e) }

// readRESP reads one reply: a simple string, an error (returned as a
// redisError), an integer, a bulk string (nil when null) or an array of
// those. RESP3 types are not asked for, so not read.
func readRESP(r *bufio.Reader) (any, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return nil, fmt.Errorf("redis: malformed reply %.40q", line)
	}
	kind, body := line[0], line[1:len(line)-2]
	switch kind {
	case '+':
		return body, nil
	case '-':
		return nil, redisError(body)
	case ':':
		n, err := strconv.ParseInt(body, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("redis: malformed integer %.40q", body)
		}
		return n, nil
	case '$':
		n, err := strconv.Atoi(body)
		if err != nil || n < -1 || n > 64<<20 {
			return nil, fmt.Errorf("redis: malformed bulk length %.40q", body)
		}
		if n == -1 {
			return nil, nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		if buf[n] != '\r' || buf[n+1] != '\n' {
			return nil, errors.New("redis: bulk string not ended by CRLF")
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(body)
		if err != nil || n < -1 || n > 1<<20 {
			return nil, fmt.Errorf("redis: malformed array length %.40q", body)
		}
		if n == -1 {
			return nil, nil
		}
		out := make([]any, n)
		for i := range out {
			v, err := readRESP(r)
			var re redisError
			if err != nil && !errors.As(err, &re) {
				return nil, err
			}
			if err != nil {
				v = re
			}
			out[i] = v
		}
		return out, nil
	}
	return nil, fmt.Errorf("redis: unknown reply type %q", kind)
}

// redisInfo is what INFO says at one moment.
type redisInfo struct {
	calls map[string]int64 // by command name, from commandstats
	total int64            // total_commands_processed
	cpu   float64          // used_cpu_sys + used_cpu_user, seconds
}

// infoCalls is how many INFO commands one sample makes; they are counted in
// the next sample and taken out of it.
const infoCalls = 3

// info samples the server: three INFO commands, pipelined on any version.
func (c *redisClient) info() (*redisInfo, error) {
	out := &redisInfo{calls: map[string]int64{}}
	for _, section := range []string{"commandstats", "stats", "cpu"} {
		v, err := c.do("INFO", section)
		if err != nil {
			return nil, err
		}
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("redis: INFO %s answered %T", section, v)
		}
		parseInfo(s, out)
	}
	return out, nil
}

// parseInfo adds the fields of an INFO text that redisInfo keeps.
func parseInfo(text string, into *redisInfo) {
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		key, val, ok := strings.Cut(line, ":")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		switch {
		case strings.HasPrefix(key, "cmdstat_"):
			// cmdstat_get:calls=21,usec=175,usec_per_call=8.33,rejected_calls=0,failed_calls=0
			for f := range strings.SplitSeq(val, ",") {
				if n, ok := strings.CutPrefix(f, "calls="); ok {
					if v, err := strconv.ParseInt(n, 10, 64); err == nil {
						into.calls[strings.TrimPrefix(key, "cmdstat_")] = v
					}
				}
			}
		case key == "total_commands_processed":
			into.total, _ = strconv.ParseInt(val, 10, 64)
		case key == "used_cpu_sys" || key == "used_cpu_user":
			v, _ := strconv.ParseFloat(val, 64)
			into.cpu += v
		}
	}
}

// redisUse is what a phase cost Redis, per unit of its work (a push, a
// connection).
type redisUse struct {
	Unit            string             `json:"unit"`
	Units           int64              `json:"units"`
	Commands        int64              `json:"commands"`
	CommandsPerUnit *float64           `json:"commands_per_unit,omitempty"`
	ByCommand       map[string]int64   `json:"by_command,omitempty"`
	PerUnit         map[string]float64 `json:"by_command_per_unit,omitempty"`
	CPUS            float64            `json:"cpu_s"`
	CPUPerUnitUS    *float64           `json:"cpu_per_unit_us,omitempty"`
}

// redisDelta is the work between two samples, less the sampling's own INFO
// commands.
func redisDelta(a, b *redisInfo, units int64, unit string) *redisUse {
	if a == nil || b == nil {
		return nil
	}
	u := &redisUse{Unit: unit, Units: units, ByCommand: map[string]int64{}, CPUS: round(max(b.cpu-a.cpu, 0))}
	u.Commands = max(b.total-a.total-infoCalls, 0)
	for name, n := range b.calls {
		d := n - a.calls[name]
		if name == "info" {
			d -= infoCalls
		}
		if d > 0 {
			u.ByCommand[name] = d
		}
	}
	if units > 0 {
		u.CommandsPerUnit = ptr(round(float64(u.Commands) / float64(units)))
		u.CPUPerUnitUS = ptr(round(u.CPUS * 1e6 / float64(units)))
		u.PerUnit = map[string]float64{}
		for name, d := range u.ByCommand {
			u.PerUnit[name] = round(float64(d) / float64(units))
		}
	}
	if len(u.ByCommand) == 0 {
		u.ByCommand, u.PerUnit = nil, nil
	}
	return u
}

// text is the table's line: commands per unit, the busiest first.
func (u *redisUse) text() string {
	if u == nil {
		return "n/a"
	}
	names := slices.Collect(maps.Keys(u.ByCommand))
	slices.SortFunc(names, func(x, y string) int {
		if c := u.ByCommand[y] - u.ByCommand[x]; c != 0 {
			return int(c)
		}
		return strings.Compare(x, y)
	})
	var parts []string
	for i, name := range names {
		if i == 6 {
			parts = append(parts, "…")
			break
		}
		if u.PerUnit != nil {
			parts = append(parts, fmt.Sprintf("%s %.2f", name, u.PerUnit[name]))
		} else {
			parts = append(parts, fmt.Sprintf("%s %d", name, u.ByCommand[name]))
		}
	}
	per := "n/a"
	if u.CommandsPerUnit != nil {
		per = fmt.Sprintf("%.2f", *u.CommandsPerUnit)
	}
	list := ""
	if len(parts) > 0 {
		list = " (" + strings.Join(parts, ", ") + ")"
	}
	return fmt.Sprintf("%s commands per %s%s; Redis CPU %s per %s", per, u.Unit, list, micros(u.CPUPerUnitUS), u.Unit)
}
