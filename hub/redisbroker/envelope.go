package redisbroker

import (
	"encoding/json"
	"errors"
	"strconv"

	"github.com/pushhub/caddy-pushhub/hub"
)

// An envelope is one message between nodes on a Pub/Sub channel.
type envelope struct {
	Kind   string `json:"k"`           // kindPush, kindReplies, kindKick, kindJoin, kindLeave, kindStats, kindEcho
	ID     uint64 `json:"i,omitempty"` // a request's id, unique per origin
	Origin string `json:"o,omitempty"` // the node to reply to
	// A push: Target says to whom (targetUIDs: the uids in U, numbered or
	// not; targetGroup: Group's members here; targetAll: everyone here).
	Target string          `json:"t,omitempty"`
	Group  string          `json:"g,omitempty"`
	Msg    json.RawMessage `json:"m,omitempty"` // wireMessage
	WaitMS int64           `json:"w,omitempty"`
	// NoReply: the origin reads no receipt, so nodes do not report.
	NoReply bool     `json:"nr,omitempty"`
	U       []target `json:"u,omitempty"`
	// A kick, join or leave.
	UID    string `json:"uid,omitempty"`
	Reason string `json:"r,omitempty"`
	// Replies, batched per origin.
	Replies []reply `json:"rs,omitempty"`
}

const (
	kindPush    = "p"
	kindReplies = "r"
	kindKick    = "k"
	kindJoin    = "j"
	kindLeave   = "l"
	kindStats   = "s"
	kindEcho    = "e" // a node's message to itself: its inbox is live

	targetUIDs  = "u"
	targetGroup = "g"
	targetAll   = "a"
)

// target is a uid a push reaches on the receiving node and its number
// there (0: the node numbers it): ["uid", seq] on the wire.
type target struct {
	UID string
	Seq uint64
}

func (t *target) UnmarshalJSON(b []byte) error {
	var pair []json.RawMessage
	if err := json.Unmarshal(b, &pair); err != nil {
		return err
	}
	if len(pair) != 2 {
		return errors.New("a target is [uid, seq]")
	}
	if err := json.Unmarshal(pair[0], &t.UID); err != nil {
		return err
	}
	return json.Unmarshal(pair[1], &t.Seq)
}

func (t target) MarshalJSON() ([]byte, error) {
	b := append([]byte{'['}, jsonString(t.UID)...)
	b = append(b, ',')
	b = strconv.AppendUint(b, t.Seq, 10)
	return append(b, ']'), nil
}

// reply answers a request: what the node delivered, or closed, or its
// counters.
type reply struct {
	ID        uint64         `json:"i"`
	Node      string         `json:"n"`
	Delivered int            `json:"d,omitempty"`
	Dropped   int            `json:"x,omitempty"`
	Acked     int            `json:"a,omitempty"`
	Stats     *hub.NodeStats `json:"s,omitempty"`
}

// wireMessage is a push's message between nodes and in history.
type wireMessage struct {
	Data  json.RawMessage `json:"d"`
	From  string          `json:"f,omitempty"`
	Group string          `json:"g,omitempty"`
}

func encodeMessage(m hub.Message) json.RawMessage {
	b, err := json.Marshal(wireMessage{Data: m.Data, From: m.From, Group: m.Group})
	if err != nil {
		panic("redisbroker: encoding a message: " + err.Error()) // RawMessage data is valid JSON
	}
	return b
}

func decodeMessage(b []byte) (*hub.Message, error) {
	var w wireMessage
	if err := json.Unmarshal(b, &w); err != nil {
		return nil, err
	}
	return &hub.Message{Data: w.Data, From: w.From, Group: w.Group}, nil
}

func marshal(e *envelope) []byte {
	b, err := json.Marshal(e)
	if err != nil {
		panic("redisbroker: encoding an envelope: " + err.Error())
	}
	return b
}

// head is a push envelope without its closing brace, for a script to add
// the per-node targets to.
func head(e *envelope) string {
	b := marshal(e)
	return string(b[:len(b)-1])
}

func jsonString(s string) []byte {
	b, _ := json.Marshal(s) // a string always marshals
	return b
}
