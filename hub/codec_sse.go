package hub

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"
)

// sseCodec is Server-Sent Events for clients that only listen (sse.go):
// every event's data is the json protocol's frame, so a client reads the
// same JSON either way. A message's id is its sequence number, which an
// EventSource sends back as Last-Event-ID when it reconnects. Comments
// keep the connection alive; a close is a last event.
type sseCodec struct{}

// sseProtocol is not a protocol of the configuration: the hub speaks it to
// a request that asks for an event stream (ServeSSE).
var sseProtocol = &protocol{Codec: sseCodec{}, id: len(protocols)}

func init() {
	if len(protocols)+1 > maxProtocols {
		panic("hub: raise maxProtocols")
	}
}

func (sseCodec) Name() string           { return "sse" }
func (sseCodec) Resumes() bool          { return true }
func (sseCodec) CheckUID(string) *Error { return nil }

// Decode is never called: an event stream has no client frames.
func (sseCodec) Decode([]byte, DecodeOptions) Command { return Command{} }

// sseEvent frames data as one event.
func sseEvent(name string, data []byte) []byte {
	b := make([]byte, 0, len(name)+len(data)+16)
	b = append(b, "event: "...)
	b = append(b, name...)
	b = append(b, "\ndata: "...)
	b = append(b, data...)
	return append(b, "\n\n"...)
}

// sseJSON frames v's JSON as one event.
func sseJSON(name string, v any) outFrame {
	b, err := json.Marshal(v)
	if err != nil {
		panic("hub: encoding an event: " + err.Error())
	}
	return outFrame{wire: sseEvent(name, b)}
}

func (c sseCodec) Welcome(w Welcome) outFrame {
	f := jsonWelcome{Type: "welcome", UID: w.UID, ConnID: w.ConnID, Seq: w.Position.Offset, Resume: w.Resume}
	if w.History {
		f.Epoch = w.Position.Epoch
	}
	return sseJSON("welcome", f)
}

func (sseCodec) Error(id json.RawMessage, e *Error) (outFrame, bool) {
	return sseJSON("error", jsonError{Type: "error", ID: id, Code: e.Code, Message: e.Message}), true
}

func (sseCodec) Reply(Reply) (outFrame, bool) { return outFrame{}, false }

func (sseCodec) GoingAway(reason string, retry time.Duration) (outFrame, bool) {
	return sseJSON("going_away", jsonGoingAway{Type: "going_away", Reason: reason, RetryMS: retry.Milliseconds()}), true
}

func (sseCodec) Ping() outFrame { return outFrame{wire: []byte(": ping\n\n")} }

type sseClose struct {
	Type   string `json:"type"`
	Code   int    `json:"close_code"`
	Reason string `json:"reason,omitempty"`
}

func (sseCodec) Close(code int, reason string) outFrame {
	f := sseJSON("close", sseClose{Type: "close", Code: code, Reason: reason})
	f.close = true
	return f
}

// sseMessage is a push as an event: the json protocol's frame as data, its
// sequence number as id.
type sseMessage struct{ json jsonMessage }

func (sseCodec) Message(m *Message) PreparedMessage {
	if bytes.ContainsAny(m.Data, "\r\n") {
		// An event's data is one line: data sent pretty-printed is
		// compacted (it is valid JSON: the API and clients check it).
		var b bytes.Buffer
		if json.Compact(&b, m.Data) == nil {
			c := *m
			c.Data = b.Bytes()
			m = &c
		}
	}
	return sseMessage{json: jsonCodec{}.Message(m).(jsonMessage)}
}

func (p sseMessage) Frame(seq uint64) []byte {
	var digits [20]byte
	num := strconv.AppendUint(digits[:0], seq, 10)
	n := len("id: ") + len(num) + len("\nevent: message\ndata: ") + len(jsonMessageHead) + len(num) + len(p.json.tail) + 2
	b := make([]byte, 0, n)
	b = append(b, "id: "...)
	b = append(b, num...)
	b = append(b, "\nevent: message\ndata: "...)
	b = append(b, jsonMessageHead...)
	b = append(b, num...)
	b = append(b, p.json.tail...)
	return append(b, "\n\n"...)
}
