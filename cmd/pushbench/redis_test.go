package main

import (
	"bufio"
	"fmt"
	"net"
	"reflect"
	"strings"
	"testing"
)

func TestRESP(t *testing.T) {
	if got := string(appendCommand(nil, "INFO", "commandstats")); got != "*2\r\n$4\r\nINFO\r\n$12\r\ncommandstats\r\n" {
		t.Errorf("appendCommand = %q", got)
	}
	for _, c := range []struct {
		in   string
		want any
	}{
		{"+OK\r\n", "OK"},
		{":42\r\n", int64(42)},
		{"$5\r\nhello\r\n", "hello"},
		{"$0\r\n\r\n", ""},
		{"$-1\r\n", nil},
		{"*-1\r\n", nil},
		{"$11\r\na\r\nb:c\r\nxyz\r\n", "a\r\nb:c\r\nxyz"}, // CRLF inside a bulk string
		{"*3\r\n:1\r\n$2\r\nab\r\n*1\r\n+x\r\n", []any{int64(1), "ab", []any{"x"}}},
		{"*2\r\n-ERR a\r\n+b\r\n", []any{redisError("ERR a"), "b"}},
	} {
		got, err := readRESP(bufio.NewReader(strings.NewReader(c.in)))
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("readRESP(%q) = %#v, %v; want %#v", c.in, got, err, c.want)
		}
	}
	if _, err := readRESP(bufio.NewReader(strings.NewReader("-WRONGPASS invalid password\r\n"))); err == nil || err.Error() != "redis: WRONGPASS invalid password" {
		t.Errorf("an error reply: %v", err)
	}
	for _, bad := range []string{"", "+OK\n", "?x\r\n", ":x\r\n", "$5\r\nhi\r\n", "$2\r\nhiXX", "$-5\r\n", "*2\r\n:1\r\n", "$99999999999\r\n"} {
		if v, err := readRESP(bufio.NewReader(strings.NewReader(bad))); err == nil {
			t.Errorf("readRESP(%q) = %#v, no error", bad, v)
		}
	}
}

const infoCommandstats = "# Commandstats\r\n" +
	"cmdstat_evalsha:calls=120,usec=900,usec_per_call=7.50,rejected_calls=0,failed_calls=0\r\n" +
	"cmdstat_publish:calls=40,usec=100,usec_per_call=2.50,rejected_calls=0,failed_calls=0\r\n" +
	"cmdstat_client|setname:calls=2,usec=1,usec_per_call=0.50,rejected_calls=0,failed_calls=0\r\n" +
	"cmdstat_info:calls=10,usec=300,usec_per_call=30.00,rejected_calls=0,failed_calls=0\r\n"

func TestParseInfo(t *testing.T) {
	var a redisInfo
	a.calls = map[string]int64{}
	parseInfo(infoCommandstats, &a)
	parseInfo("# Stats\r\ntotal_connections_received:5\r\ntotal_commands_processed:1000\r\n", &a)
	parseInfo("# CPU\r\nused_cpu_sys:1.500000\r\nused_cpu_user:2.250000\r\nused_cpu_sys_children:9.0\r\n", &a)
	want := map[string]int64{"evalsha": 120, "publish": 40, "client|setname": 2, "info": 10}
	if !reflect.DeepEqual(a.calls, want) || a.total != 1000 || a.cpu != 3.75 {
		t.Fatalf("parseInfo: %+v", a)
	}
	b := redisInfo{calls: map[string]int64{"evalsha": 320, "publish": 140, "client|setname": 2, "info": 13, "hset": 50}, total: 1353, cpu: 3.80}
	u := redisDelta(&a, &b, 100, "push")
	if u.Commands != 350 || *u.CommandsPerUnit != 3.5 || u.CPUS != 0.05 || *u.CPUPerUnitUS != 500 {
		t.Errorf("redisDelta: %+v", u)
	}
	if !reflect.DeepEqual(u.ByCommand, map[string]int64{"evalsha": 200, "publish": 100, "hset": 50}) || u.PerUnit["evalsha"] != 2 {
		t.Errorf("by command: %v, per unit %v", u.ByCommand, u.PerUnit)
	}
	if got := u.text(); got != "3.50 commands per push (evalsha 2.00, publish 1.00, hset 0.50); Redis CPU 500.0µs per push" {
		t.Errorf("text = %q", got)
	}
	if redisDelta(nil, &b, 1, "push") != nil {
		t.Error("a delta without a first sample")
	}
	if got := redisDelta(&b, &b, 0, "push").text(); !strings.HasPrefix(got, "n/a commands per push;") {
		t.Errorf("no units: %q", got)
	}
}

func TestRedisURL(t *testing.T) {
	for _, c := range []struct{ in, addr, user, pass string }{
		{"redis://127.0.0.1", "127.0.0.1:6379", "", ""},
		{"redis://localhost:6390/2", "localhost:6390", "", ""},
		{"redis://:pw@127.0.0.1:6379/0", "127.0.0.1:6379", "", "pw"},
		{"redis://bench:pw@127.0.0.1:6379", "127.0.0.1:6379", "bench", "pw"},
		{"redis://pw@127.0.0.1:6379", "127.0.0.1:6379", "", "pw"},
	} {
		got, err := parseRedisURL(c.in)
		if err != nil || got != (redisTarget{c.addr, c.user, c.pass}) {
			t.Errorf("parseRedisURL(%s) = %+v, %v", c.in, got, err)
		}
	}
	for _, bad := range []string{"redis://10.0.0.1:6379", "rediss://127.0.0.1", "redis://127.0.0.1/x", "127.0.0.1:6379"} {
		if _, err := parseRedisURL(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

// TestRedisClient runs the client against a fake Redis on loopback that
// wants a password and answers INFO.
func TestRedisClient(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan []any, 16)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		r := bufio.NewReader(conn)
		for {
			v, err := readRESP(r) // a command is a RESP array
			if err != nil {
				return
			}
			cmd := v.([]any)
			got <- cmd
			var reply string
			switch {
			case cmd[0] == "AUTH" && cmd[1] == "pw":
				reply = "+OK\r\n"
			case cmd[0] == "AUTH":
				reply = "-WRONGPASS invalid\r\n"
			case cmd[0] == "INFO":
				body := map[any]string{"commandstats": infoCommandstats, "stats": "total_commands_processed:7\r\n", "cpu": "used_cpu_user:0.5\r\n"}[cmd[1]]
				reply = fmt.Sprintf("$%d\r\n%s\r\n", len(body), body)
			default:
				reply = "-ERR unknown\r\n"
			}
			conn.Write([]byte(reply))
		}
	}()
	c, err := newRedisClient("redis://:pw@" + ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	info, err := c.info()
	if err != nil {
		t.Fatal(err)
	}
	if info.calls["evalsha"] != 120 || info.total != 7 || info.cpu != 0.5 {
		t.Errorf("info: %+v", info)
	}
	if _, err := c.do("NOPE"); err == nil || !strings.Contains(err.Error(), "unknown") {
		t.Errorf("an error reply: %v", err)
	}
	// The error reply kept the connection: the next command needs no new AUTH.
	if _, err := c.info(); err != nil {
		t.Fatal(err)
	}
	var names []string
	for range len(got) {
		cmd := <-got
		names = append(names, fmt.Sprint(cmd[0]))
	}
	if strings.Join(names, " ") != "AUTH INFO INFO INFO NOPE INFO INFO INFO" {
		t.Errorf("commands sent: %v", names)
	}
}
