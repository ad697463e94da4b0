package redisbroker

import (
	"bytes"
	"encoding/json"
	"math"
	"unicode/utf8"
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
	s := scanner{b: b}
	if s.object(func(key string) bool {
		switch key {
		case "d":
			if w.Data != nil {
				return false
			}
			raw, ok := s.raw()
			w.Data = raw
			return ok
		case "f":
			return s.str(&w.From)
		case "g":
			return s.str(&w.Group)
		}
		return false
	}) && s.end() {
		return nil
	}
	*w = wireMessage{}
	return json.Unmarshal(b, w)
}

// readPlainEnvelope reads b into e when it has one of the plain shapes; false
// leaves e to be read again from scratch.
func readPlainEnvelope(b []byte, e *envelope) bool {
	s := scanner{b: b}
	return s.object(func(key string) bool {
		switch key {
		case "k":
			return s.str(&e.Kind)
		case "i":
			return s.uint(&e.ID)
		case "o":
			return s.str(&e.Origin)
		case "t":
			return s.str(&e.Target)
		case "g":
			return s.str(&e.Group)
		case "m":
			if e.Msg != nil || s.peek() != '{' {
				return false
			}
			raw, ok := s.raw()
			e.Msg = raw
			return ok
		case "w":
			return s.int(&e.WaitMS)
		case "nr":
			return s.bool(&e.NoReply)
		case "u":
			if e.U != nil {
				return false
			}
			e.U = []target{}
			return s.array(func() bool {
				var t target
				ok := s.lit('[') && s.str(&t.UID) && s.lit(',') && s.uint(&t.Seq) && s.lit(']')
				e.U = append(e.U, t)
				return ok
			})
		case "uid":
			return s.str(&e.UID)
		case "r":
			return s.str(&e.Reason)
		case "rs":
			if e.Replies != nil {
				return false
			}
			e.Replies = []reply{}
			return s.array(func() bool {
				var r reply
				ok := s.object(func(key string) bool {
					switch key {
					case "i":
						return s.uint(&r.ID)
					case "n":
						return s.str(&r.Node)
					case "d":
						return s.intOf(&r.Delivered)
					case "x":
						return s.intOf(&r.Dropped)
					case "a":
						return s.intOf(&r.Acked)
					}
					return false
				})
				e.Replies = append(e.Replies, r)
				return ok
			})
		}
		return false
	}) && s.end()
}

// scanner reads the plain JSON that nodes write: no spaces, strings
// without escapes, whole numbers. Each method reads one thing or answers
// false.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

func (s *scanner) lit(c byte) bool {
	if s.peek() != c {
		return false
	}
	s.i++
	return true
}

func (s *scanner) end() bool { return s.i == len(s.b) }

// object reads {"key":value,...}, each value by field(key).
func (s *scanner) object(field func(key string) bool) bool {
	if !s.lit('{') {
		return false
	}
	if s.lit('}') {
		return true
	}
	for {
		var key string
		if !s.str(&key) || !s.lit(':') || !field(key) {
			return false
		}
		if s.lit('}') {
			return true
		}
		if !s.lit(',') {
			return false
		}
	}
}

// array reads [elem,...], each element by elem.
func (s *scanner) array(elem func() bool) bool {
	if !s.lit('[') {
		return false
	}
	if s.lit(']') {
		return true
	}
	for {
		if !elem() {
			return false
		}
		if s.lit(']') {
			return true
		}
		if !s.lit(',') {
			return false
		}
	}
}

// str reads a string with nothing escaped, in valid UTF-8 (what encoding/json
// would replace or unescape is left to it).
func (s *scanner) str(dst *string) bool {
	if !s.lit('"') {
		return false
	}
	start := s.i
	for ; s.i < len(s.b); s.i++ {
		switch c := s.b[s.i]; {
		case c == '"':
			v := s.b[start:s.i]
			s.i++
			if !utf8.Valid(v) {
				return false
			}
			*dst = string(v)
			return true
		case c == '\\' || c < 0x20:
			return false
		}
	}
	return false
}

// digits reads a whole number's digits as JSON writes them (no leading
// zero), up to what a uint64 holds.
func (s *scanner) digits() (uint64, bool) {
	start := s.i
	var v uint64
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		d := uint64(s.b[s.i] - '0')
		if v > (math.MaxUint64-d)/10 {
			return 0, false
		}
		v = v*10 + d
		s.i++
	}
	n := s.i - start
	if n == 0 || (n > 1 && s.b[start] == '0') {
		return 0, false
	}
	switch s.peek() {
	case '.', 'e', 'E': // not a whole number as written
		return 0, false
	}
	return v, true
}

func (s *scanner) uint(dst *uint64) bool {
	v, ok := s.digits()
	*dst = v
	return ok
}

func (s *scanner) int(dst *int64) bool {
	neg := s.lit('-')
	v, ok := s.digits()
	switch {
	case !ok, !neg && v > math.MaxInt64, neg && v > 1<<63:
		return false
	case neg:
		*dst = -int64(v-1) - 1 // math.MinInt64 too
	default:
		*dst = int64(v)
	}
	return true
}

func (s *scanner) intOf(dst *int) bool {
	var v int64
	if !s.int(&v) || int64(int(v)) != v {
		return false
	}
	*dst = int(v)
	return true
}

func (s *scanner) bool(dst *bool) bool {
	switch {
	case bytes.HasPrefix(s.b[s.i:], []byte("true")):
		*dst, s.i = true, s.i+4
	case bytes.HasPrefix(s.b[s.i:], []byte("false")):
		*dst, s.i = false, s.i+5
	default:
		return false
	}
	return true
}

// raw reads any JSON value, checked as encoding/json checks it, and returns
// a copy of its bytes, as json.RawMessage gets them.
func (s *scanner) raw() (json.RawMessage, bool) {
	start := s.i
	if !s.skip() {
		return nil, false
	}
	v := s.b[start:s.i]
	// encoding/json leaves the spaces around a value out of it.
	if len(v) == 0 || isSpace(v[0]) || isSpace(v[len(v)-1]) || !json.Valid(v) {
		return nil, false
	}
	return append(json.RawMessage(nil), v...), true
}

// skip moves past one JSON value, finding where it ends; raw checks it.
func (s *scanner) skip() bool {
	depth := 0
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch c {
		case '"':
			s.i++
			for s.i < len(s.b) && s.b[s.i] != '"' {
				if s.b[s.i] == '\\' {
					s.i++
				}
				s.i++
			}
			if s.i >= len(s.b) {
				return false
			}
			s.i++
		case '{', '[':
			depth++
			s.i++
		case '}', ']':
			if depth == 0 {
				return s.i > 0 // the end of the enclosing value
			}
			depth--
			s.i++
		case ',', ':':
			if depth == 0 {
				return true
			}
			s.i++
		default:
			s.i++
		}
		if depth == 0 && (c == '"' || c == '}' || c == ']') {
			return true
		}
	}
	return depth == 0
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
