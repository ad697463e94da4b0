package redisbroker

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"unicode/utf8"

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
	if uid, seq, ok := plainTarget(b); ok {
		t.UID, t.Seq = uid, seq
		return nil
	}
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

// plainTarget reads a target written as Redis's cjson writes the common
// one, ["uid",seq] with a uid that has nothing escaped and a whole seq,
// without encoding/json's reflection; ok is false for any other form,
// which UnmarshalJSON reads the general way. b is valid JSON (encoding/json
// checks the whole message before it calls UnmarshalJSON).
func plainTarget(b []byte) (uid string, seq uint64, ok bool) {
	if len(b) < 6 || b[0] != '[' || b[1] != '"' || b[len(b)-1] != ']' {
		return "", 0, false
	}
	end := bytes.IndexByte(b[2:], '"')
	if end < 0 {
		return "", 0, false
	}
	u := b[2 : 2+end]
	if bytes.IndexByte(u, '\\') >= 0 || !utf8.Valid(u) { // escapes, or bytes json would replace
		return "", 0, false
	}
	digits := b[2+end+1 : len(b)-1]
	if len(digits) < 2 || digits[0] != ',' {
		return "", 0, false
	}
	digits = digits[1:]
	if len(digits) > 19 { // beyond this, ParseUint's overflow check is needed
		return "", 0, false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return "", 0, false
		}
		seq = seq*10 + uint64(c-'0')
	}
	return string(u), seq, true
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
	if err := readMessage(b, &w); err != nil {
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

// repliesEnvelope is the envelope of replies to one origin: the same bytes
// as encoding/json writes (the tests compare them), without its
// reflection for the replies to pushes, which are most of them.
func repliesEnvelope(rs []reply) []byte {
	n := 16
	for _, r := range rs {
		if r.Stats != nil {
			return marshal(&envelope{Kind: kindReplies, Replies: rs})
		}
		n += 48 + len(r.Node)
	}
	if len(rs) == 0 {
		return marshal(&envelope{Kind: kindReplies})
	}
	b := append(make([]byte, 0, n), `{"k":"r","rs":[`...)
	for i, r := range rs {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendUint(append(b, `{"i":`...), r.ID, 10)
		b = appendJSONString(append(b, `,"n":`...), r.Node)
		b = appendCount(b, `,"d":`, r.Delivered)
		b = appendCount(b, `,"x":`, r.Dropped)
		b = append(appendCount(b, `,"a":`, r.Acked), '}')
	}
	return append(b, "]}"...)
}

// appendCount writes a reply's count after its name, unless it is 0
// (omitempty).
func appendCount(dst []byte, name string, n int) []byte {
	if n == 0 {
		return dst
	}
	return strconv.AppendInt(append(dst, name...), int64(n), 10)
}

// head is a push envelope as pushCall makes it, without its closing
// brace, for a script to add the per-node targets to.
func head(e *envelope) string { return string(appendPushHead(headBuffer(e, 0), e)) }

// pushEnvelope is a push envelope as it goes to every node (a broadcast,
// or a group's push, without history).
func pushEnvelope(e *envelope) string {
	return string(append(appendPushHead(headBuffer(e, 0), e), '}'))
}

// routedEnvelope is a push envelope without history to uids, whole: the
// same envelope goes to every node holding one of them, and each delivers
// to those it holds (unnumbered: seq 0).
func routedEnvelope(e *envelope, uids []string) string {
	n := 8 // ,"u":[ and ]
	for _, u := range uids {
		n += len(u) + 8 // ["",0],
	}
	b := append(appendPushHead(headBuffer(e, n), e), `,"u":[`...)
	for i, u := range uids {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(appendJSONString(append(b, '['), u), ",0]"...)
	}
	return string(append(b, "]}"...))
}

// headBuffer is room for e's head, its closing brace and extra bytes.
func headBuffer(e *envelope, extra int) []byte {
	return make([]byte, 0, 64+len(e.Origin)+len(e.Target)+len(e.Group)+len(e.Msg)+extra)
}

// appendPushHead writes a push envelope as pushCall makes one (no targets
// yet, none of another kind's fields) without its closing brace: the same
// bytes as encoding/json writes (the tests compare them), without its
// reflection, since this runs for every push. Msg is encodeMessage's,
// compact and escaped as encoding/json leaves it.
func appendPushHead(dst []byte, e *envelope) []byte {
	dst = append(dst, `{"k":"p"`...)
	if e.ID != 0 {
		dst = strconv.AppendUint(append(dst, `,"i":`...), e.ID, 10)
	}
	if e.Origin != "" {
		dst = appendJSONString(append(dst, `,"o":`...), e.Origin)
	}
	if e.Target != "" {
		dst = appendJSONString(append(dst, `,"t":`...), e.Target)
	}
	if e.Group != "" {
		dst = appendJSONString(append(dst, `,"g":`...), e.Group)
	}
	if len(e.Msg) != 0 {
		dst = append(append(dst, `,"m":`...), e.Msg...)
	}
	if e.WaitMS != 0 {
		dst = strconv.AppendInt(append(dst, `,"w":`...), e.WaitMS, 10)
	}
	if e.NoReply {
		dst = append(dst, `,"nr":true`...)
	}
	return dst
}

// appendJSONString writes s as encoding/json does: printable ASCII that
// needs no escaping (the common case: node ids, targets, group names) as
// it is, anything else through encoding/json.
func appendJSONString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return append(dst, jsonString(s)...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

func jsonString(s string) []byte {
	b, _ := json.Marshal(s) // a string always marshals
	return b
}
