package hub

import (
	"encoding/json"
	"strconv"
	"sync"
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
	msg      Message
	textOnce sync.Once
	text     outFrame // the text protocol's frame, shared by every text connection
	// jsonTail is the json frame after its sequence number:
	// `,"data":...,"from":"...","group":"..."}`.
	jsonTail []byte
	// acks, when set, collects the json connections reached, for waiting
	// on their acknowledgements.
	acks *[]ackTarget
}

func newDelivery(m Message) *delivery {
	d := &delivery{msg: m}
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

// textFrame is the message as the text protocol delivers it.
func (d *delivery) textFrame() outFrame {
	d.textOnce.Do(func() { d.text = textFrame(TextPayload(d.msg.Data)) })
	return d.text
}

const jsonHead = `{"type":"message","seq":`

// jsonWire is the message as the json protocol delivers it with sequence
// seq: a whole frame, encoded in one allocation.
func (d *delivery) jsonWire(seq uint64) []byte {
	var digits [20]byte
	num := strconv.AppendUint(digits[:0], seq, 10)
	n := len(jsonHead) + len(num) + len(d.jsonTail)
	b := make([]byte, 0, frameHeaderLen(n)+n)
	b = appendFrameHeader(b, opText, n)
	b = append(b, jsonHead...)
	b = append(b, num...)
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
