package hub

import (
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"
)

// jsonCodec is the json protocol (PROTOCOL.md): one JSON object with a
// "type" per frame, sequence numbers, acknowledgements and resume.
type jsonCodec struct{ wsFraming }

func (jsonCodec) Name() string           { return "json" }
func (jsonCodec) CheckUID(string) *Error { return nil }
func (jsonCodec) Resumes() bool          { return true }

// jsonClientFrame is every frame a json client may send; Type says which
// fields matter.
type jsonClientFrame struct {
	Type  string          `json:"type"`
	ID    json.RawMessage `json:"id,omitempty"`
	UID   string          `json:"uid,omitempty"`
	Token string          `json:"token,omitempty"`
	To    string          `json:"to,omitempty"`
	Group string          `json:"group,omitempty"`
	All   bool            `json:"all,omitempty"`
	Data  json.RawMessage `json:"data,omitempty"`
	Since *uint64         `json:"since,omitempty"`
	Epoch string          `json:"epoch,omitempty"`
	Seq   *uint64         `json:"seq,omitempty"`
}

func (jsonCodec) Decode(frame []byte, _ DecodeOptions) Command {
	var f jsonClientFrame
	if err := json.Unmarshal(frame, &f); err != nil {
		return Command{Kind: CmdMalformed, Err: newError("bad_frame", "frame is not a JSON object: %v", err)}
	}
	cmd := Command{ID: f.ID}
	switch f.Type {
	case "login":
		cmd.Kind, cmd.Credential, cmd.Since, cmd.Epoch = CmdLogin, f.Token, f.Since, f.Epoch
		if cmd.Credential == "" {
			cmd.Credential = f.UID
		}
	case "ping":
		cmd.Kind = CmdPing
	case "ack":
		if f.Seq == nil {
			return Command{Kind: CmdInvalid, ID: f.ID, Err: newError("bad_frame", `an ack frame carries "seq"`)}
		}
		cmd.Kind, cmd.Seq = CmdAck, *f.Seq
	case "send":
		cmd.Kind, cmd.To, cmd.Group, cmd.All, cmd.Data = CmdSend, f.To, f.Group, f.All, f.Data
	case "join":
		cmd.Kind, cmd.Group = CmdJoin, f.Group
	case "leave":
		cmd.Kind, cmd.Group = CmdLeave, f.Group
	case "app":
		cmd.Kind, cmd.Data = CmdApp, f.Data
	case "":
		return Command{Kind: CmdInvalid, ID: f.ID, Err: newError("bad_frame", "frame has no type")}
	default:
		return Command{Kind: CmdInvalid, ID: f.ID, Err: newError("unknown_type", "unknown frame type %s", quoteShort(f.Type))}
	}
	return cmd
}

type jsonWelcome struct {
	Type   string  `json:"type"`
	UID    string  `json:"uid"`
	ConnID string  `json:"conn_id"`
	Seq    uint64  `json:"seq"`
	Epoch  string  `json:"epoch,omitempty"`
	Resume *Resume `json:"resume,omitempty"`
}

func (jsonCodec) Welcome(w Welcome) outFrame {
	f := jsonWelcome{Type: "welcome", UID: w.UID, ConnID: w.ConnID, Seq: w.Position.Offset, Resume: w.Resume}
	if w.History {
		f.Epoch = w.Position.Epoch
	}
	return jsonFrame(f)
}

type jsonError struct {
	Type    string          `json:"type"`
	ID      json.RawMessage `json:"id,omitempty"`
	Code    string          `json:"code"`
	Message string          `json:"message"`
}

func (jsonCodec) Error(id json.RawMessage, e *Error) (outFrame, bool) {
	return jsonFrame(jsonError{Type: "error", ID: id, Code: e.Code, Message: e.Message}), true
}

type jsonReply struct {
	Type      string          `json:"type"`
	ID        json.RawMessage `json:"id,omitempty"`
	Delivered *int            `json:"delivered,omitempty"`
	Dropped   *int            `json:"dropped,omitempty"`
	Group     string          `json:"group,omitempty"`
}

func (jsonCodec) Reply(r Reply) (outFrame, bool) {
	f := jsonReply{ID: r.ID}
	switch r.Kind {
	case ReplyPong:
		f.Type = "pong"
	case ReplySent:
		f.Type, f.Delivered, f.Dropped = "sent", &r.Receipt.Delivered, &r.Receipt.Dropped
	case ReplyJoined:
		f.Type, f.Group = "joined", r.Group
	case ReplyLeft:
		f.Type, f.Group = "left", r.Group
	case ReplyQueued:
		f.Type = "queued"
	}
	return jsonFrame(f), true
}

type jsonGoingAway struct {
	Type    string `json:"type"`
	Reason  string `json:"reason"`
	RetryMS int64  `json:"retry_ms"`
}

func (jsonCodec) GoingAway(reason string, retry time.Duration) (outFrame, bool) {
	return jsonFrame(jsonGoingAway{Type: "going_away", Reason: reason, RetryMS: retry.Milliseconds()}), true
}

// jsonMessage is a push encoded for the json protocol, but for its
// sequence number: `,"data":...,"from":"...","group":"..."}` follows it.
type jsonMessage struct{ tail []byte }

func (jsonCodec) Message(m *Message) PreparedMessage {
	tail := make([]byte, 0, len(m.Data)+len(m.From)+len(m.Group)+32)
	tail = append(tail, `,"data":`...)
	tail = append(tail, m.Data...)
	if m.From != "" {
		tail = append(tail, `,"from":`...)
		tail = appendJSONString(tail, m.From)
	}
	if m.Group != "" {
		tail = append(tail, `,"group":`...)
		tail = appendJSONString(tail, m.Group)
	}
	return jsonMessage{tail: append(tail, '}')}
}

const jsonMessageHead = `{"type":"message","seq":`

// Frame encodes the whole frame in one allocation.
func (p jsonMessage) Frame(seq uint64) []byte {
	var digits [20]byte
	num := strconv.AppendUint(digits[:0], seq, 10)
	n := len(jsonMessageHead) + len(num) + len(p.tail)
	b := make([]byte, 0, frameHeaderLen(n)+n)
	b = appendFrameHeader(b, opText, n)
	b = append(b, jsonMessageHead...)
	b = append(b, num...)
	return append(b, p.tail...)
}

// jsonFrame encodes a server frame of the json protocol.
func jsonFrame(v any) outFrame {
	b, err := json.Marshal(v)
	if err != nil {
		panic("hub: encoding a server frame: " + err.Error())
	}
	return textFrame(b)
}

func appendJSONString(b []byte, s string) []byte {
	q, _ := json.Marshal(s) // a string always marshals
	return append(b, q...)
}

// jsonString is s as a JSON string, in a slice of its own. Text a client
// sent is valid UTF-8 and usually needs no escaping: then it is only
// quoted.
func jsonString(s []byte) json.RawMessage {
	if plainJSON(s) {
		b := make([]byte, 0, len(s)+2)
		b = append(b, '"')
		b = append(b, s...)
		return append(b, '"')
	}
	b, _ := json.Marshal(string(s)) // a string always marshals
	return b
}

// plainJSON reports whether s is valid UTF-8 that a JSON string holds as it
// is: no quote, backslash, control character, or character encoding/json
// escapes for HTML or JavaScript (<, >, &, U+2028, U+2029).
func plainJSON(s []byte) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if (r == utf8.RuneError && size == 1) || r == '\u2028' || r == '\u2029' {
			return false
		}
		i += size
	}
	return true
}

// quoteShort quotes a client-supplied name for an error message, cut to a
// readable length.
func quoteShort(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	b, _ := json.Marshal(s)
	return string(b)
}
