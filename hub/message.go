package hub

import (
	"encoding/json"
	"strconv"
	"sync"

	"github.com/gorilla/websocket"
)

// Message is one push: its data and where it came from.
type Message struct {
	// Data is any JSON value. The text protocol delivers a string as its bare
	// text and anything else as its JSON text; the json protocol carries it as
	// it is.
	Data json.RawMessage
	// From is the sending uid when a client published the message; "" when it
	// came through the push API.
	From string
	// Group is set when the message was sent to a group.
	Group string
}

// delivery is a message on its way to one or many connections: every frame
// that can be shared is encoded once.
type delivery struct {
	msg Message
	// many: the text frame goes to many connections, so it is prepared
	// once (gorilla then writes the same frame bytes to each socket).
	many     bool
	textOnce sync.Once
	text     outFrame
	// jsonTail is the json frame after its sequence number:
	// `,"data":...,"from":"...","group":"..."}`.
	jsonTail []byte
	// acks, when set, collects the json connections reached, for waiting
	// on their acknowledgements.
	acks *[]ackTarget
}

func newDelivery(m Message, many bool) *delivery {
	d := &delivery{msg: m, many: many}
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
	d.jsonTail = append(tail, '}')
	return d
}

// textFrame is the message as the text protocol delivers it, shared by every
// text connection.
func (d *delivery) textFrame() outFrame {
	d.textOnce.Do(func() {
		b := TextPayload(d.msg.Data)
		if d.many {
			d.text = outFrame{kind: frameData, pm: mustPrepare(b)}
		} else {
			d.text = outFrame{kind: frameData, data: b}
		}
	})
	return d.text
}

// jsonFrame is the message as the json protocol delivers it with sequence
// seq.
func (d *delivery) jsonFrame(seq uint64) []byte {
	b := make([]byte, 0, len(d.jsonTail)+40)
	b = append(b, `{"type":"message","seq":`...)
	b = strconv.AppendUint(b, seq, 10)
	return append(b, d.jsonTail...)
}

// TextPayload is what the text protocol sends for data: a JSON string's
// content, or the JSON text of any other value.
func TextPayload(data json.RawMessage) []byte {
	if len(data) > 0 && data[0] == '"' {
		var s string
		if json.Unmarshal(data, &s) == nil {
			return []byte(s)
		}
	}
	return data
}

func appendJSONString(b []byte, s string) []byte {
	q, _ := json.Marshal(s) // a string always marshals
	return append(b, q...)
}

// mustPrepare wraps a text payload in a prepared message. NewPreparedMessage
// fails only through a frame encoder error, which text frames cannot produce.
func mustPrepare(b []byte) *websocket.PreparedMessage {
	pm, err := websocket.NewPreparedMessage(websocket.TextMessage, b)
	if err != nil {
		panic("hub: preparing a text frame: " + err.Error())
	}
	return pm
}

// jsonFrame encodes a server frame of the json protocol.
func jsonFrame(v any) outFrame {
	b, err := json.Marshal(v)
	if err != nil {
		panic("hub: encoding a server frame: " + err.Error())
	}
	return outFrame{kind: frameData, data: b}
}
