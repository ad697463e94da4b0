package harness

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Frame is any frame of the json protocol that the server sends, its
// fields grouped by the frames that carry them. Decoding is strict: a field
// that PROTOCOL.md does not list fails the test.
type Frame struct {
	Type string          `json:"type"`
	ID   json.RawMessage `json:"id"` // of the client frame answered
	welcomeFields
	messageFields
	sentFields
	closingFields

	Raw string `json:"-"` // the frame as it came
}

// welcomeFields are a welcome's; a message has a seq too. The epoch names
// the numbering of seq where the hub keeps history.
type welcomeFields struct {
	UID    string  `json:"uid"`
	ConnID string  `json:"conn_id"`
	Seq    uint64  `json:"seq"`
	Epoch  string  `json:"epoch"`
	Resume *Resume `json:"resume"`
}

// DecodeFrame decodes a json-protocol frame strictly.
func DecodeFrame(b []byte) (Frame, error) {
	var f Frame
	if err := StrictJSON(string(b), &f); err != nil {
		return f, fmt.Errorf("frame %.300s: %v", b, err)
	}
	f.Raw = string(b)
	return f, nil
}

// Resume is a welcome frame's resume object.
type Resume struct {
	Since     uint64 `json:"since"`
	Recovered bool   `json:"recovered"`
	Replayed  int    `json:"replayed"`
	Reason    string `json:"reason"`
}

// Int is a message's data as an integer.
func (f Frame) Int() (int64, error) {
	var n int64
	if f.Type != "message" {
		return 0, fmt.Errorf("got %.300s, want a message", f.Raw)
	}
	if err := json.Unmarshal(f.Data, &n); err != nil {
		return 0, fmt.Errorf("message data %.100s: %v", f.Data, err)
	}
	return n, nil
}

// messageFields are a message's; joined and left name a group too.
type messageFields struct {
	Data  json.RawMessage `json:"data"`
	From  string          `json:"from"`
	Group string          `json:"group"`
}

// StrictJSON decodes s into v, refusing unknown fields and trailing data.
func StrictJSON(s string, v any) error {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("data after the JSON value")
	}
	return nil
}

// sentFields are the answer to a client's send.
type sentFields struct {
	Delivered *int `json:"delivered"`
	Dropped   *int `json:"dropped"`
}

// JSON is v's JSON text.
func JSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// closingFields are an error's and a going_away's.
type closingFields struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Reason  string `json:"reason"`
	RetryMS *int64 `json:"retry_ms"`
}
