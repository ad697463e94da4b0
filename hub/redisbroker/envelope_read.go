package redisbroker

import (
	"encoding/json"

	"github.com/pushhub/caddy-pushhub/internal/plainjson"
)

// Every push a node delivers and every receipt it gets back is an
// envelope read from Redis: the shapes nodes write for them (appendPushHead,
// routedEnvelope, the routing scripts, marshal of replies) are read here
// without encoding/json's reflection. Anything else, or anything unusual in
// them (an escaped string, a key in another case, a null, spaces, a key
// that holds a list or a message twice), is read by encoding/json, so that both read every input alike (the tests and a
// fuzz target compare them).

// readEnvelope reads one envelope as json.Unmarshal would.
func readEnvelope(b []byte) (*envelope, error) {
	e := new(envelope)
	if readPlainEnvelope(b, e) {
		return e, nil
	}
	*e = envelope{}
	if err := json.Unmarshal(b, e); err != nil {
		return nil, err
	}
	return e, nil
}

// readMessage reads a push's message (wireMessage) as decodeMessage's
// json.Unmarshal would.
func readMessage(b []byte, w *wireMessage) error {
	s := plainjson.NewScanner(b)
	if s.Object(func(key string) bool {
		switch key {
		case "d":
			if w.Data != nil {
				return false
			}
			raw, ok := s.Raw()
			w.Data = raw
			return ok
		case "f":
			return s.Str(&w.From)
		case "g":
			return s.Str(&w.Group)
		}
		return false
	}) && s.End() {
		return nil
	}
	*w = wireMessage{}
	return json.Unmarshal(b, w)
}

// readPlainEnvelope reads b into e when it has one of the plain shapes; false
// leaves e to be read again from scratch.
func readPlainEnvelope(b []byte, e *envelope) bool {
	s := plainjson.NewScanner(b)
	return s.Object(func(key string) bool {
		switch key {
		case "k":
			return s.Str(&e.Kind)
		case "i":
			return s.Uint(&e.ID)
		case "o":
			return s.Str(&e.Origin)
		case "t":
			return s.Str(&e.Target)
		case "g":
			return s.Str(&e.Group)
		case "m":
			if e.Msg != nil || s.Peek() != '{' {
				return false
			}
			raw, ok := s.Raw()
			e.Msg = raw
			return ok
		case "w":
			return s.Int(&e.WaitMS)
		case "nr":
			return s.Bool(&e.NoReply)
		case "u":
			if e.U != nil {
				return false
			}
			e.U = []target{}
			return s.Array(func() bool {
				var t target
				ok := s.Lit('[') && s.Str(&t.UID) && s.Lit(',') && s.Uint(&t.Seq) && s.Lit(']')
				e.U = append(e.U, t)
				return ok
			})
		case "uid":
			return s.Str(&e.UID)
		case "r":
			return s.Str(&e.Reason)
		case "rs":
			if e.Replies != nil {
				return false
			}
			e.Replies = []reply{}
			return s.Array(func() bool {
				var r reply
				ok := s.Object(func(key string) bool {
					switch key {
					case "i":
						return s.Uint(&r.ID)
					case "n":
						return s.Str(&r.Node)
					case "d":
						return s.IntOf(&r.Delivered)
					case "x":
						return s.IntOf(&r.Dropped)
					case "a":
						return s.IntOf(&r.Acked)
					}
					return false
				})
				e.Replies = append(e.Replies, r)
				return ok
			})
		}
		return false
	}) && s.End()
}
