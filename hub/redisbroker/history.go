package redisbroker

import (
	"bytes"
	"strconv"

	"github.com/pushhub/caddy-pushhub/hub"
)

// storedMsg is one message of a uid's history in Redis:
// "<seq>:<unix ms>:<message>".
type storedMsg struct {
	hub.StoredMessage
	at int64 // unix ms
}

func parseStored(s string) (storedMsg, bool) {
	b := []byte(s)
	i := bytes.IndexByte(b, ':')
	if i < 0 {
		return storedMsg{}, false
	}
	j := bytes.IndexByte(b[i+1:], ':')
	if j < 0 {
		return storedMsg{}, false
	}
	seq, err1 := strconv.ParseUint(s[:i], 10, 64)
	at, err2 := strconv.ParseInt(s[i+1:i+1+j], 10, 64)
	m, err3 := decodeMessage(b[i+2+j:])
	if err1 != nil || err2 != nil || err3 != nil {
		return storedMsg{}, false
	}
	return storedMsg{StoredMessage: hub.StoredMessage{Seq: seq, Message: m}, at: at}, true
}

func resumeOf(since, now hub.Position, replayed int) *hub.Resume {
	return hub.NewResume(since, now, replayed)
}

func formatUint(n uint64) string { return strconv.FormatUint(n, 10) }
