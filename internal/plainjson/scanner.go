// Package plainjson reads the plain JSON that the hub's own writers and
// most clients produce (no spaces inside, strings without escapes, whole
// numbers) without encoding/json's reflection. Its readers answer false on
// anything else, and their callers then read the input again with
// encoding/json, so that both read every input alike.
package plainjson

import (
	"bytes"
	"encoding/json"
	"math"
	"unicode/utf8"
)

// A Scanner reads plain JSON: no spaces, strings without escapes, whole
// numbers. Each method reads one thing or answers false.
type Scanner struct {
	b []byte
	i int
}

// NewScanner reads b from its start.
func NewScanner(b []byte) Scanner { return Scanner{b: b} }

// Peek is the next byte, or 0 at the end.
func (s *Scanner) Peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

// Lit reads the byte c.
func (s *Scanner) Lit(c byte) bool {
	if s.Peek() != c {
		return false
	}
	s.i++
	return true
}

// SkipSpace moves past JSON's white space.
func (s *Scanner) SkipSpace() {
	for s.i < len(s.b) && isSpace(s.b[s.i]) {
		s.i++
	}
}

// End tells whether everything was read.
func (s *Scanner) End() bool { return s.i == len(s.b) }

// Object reads {"key":value,...}, each value by field(key).
func (s *Scanner) Object(field func(key string) bool) bool {
	if !s.Lit('{') {
		return false
	}
	if s.Lit('}') {
		return true
	}
	for {
		var key string
		if !s.Str(&key) || !s.Lit(':') || !field(key) {
			return false
		}
		if s.Lit('}') {
			return true
		}
		if !s.Lit(',') {
			return false
		}
	}
}

// Array reads [elem,...], each element by elem.
func (s *Scanner) Array(elem func() bool) bool {
	if !s.Lit('[') {
		return false
	}
	if s.Lit(']') {
		return true
	}
	for {
		if !elem() {
			return false
		}
		if s.Lit(']') {
			return true
		}
		if !s.Lit(',') {
			return false
		}
	}
}

// Str reads a string with nothing escaped, in valid UTF-8 (what encoding/json
// would replace or unescape is left to it).
func (s *Scanner) Str(dst *string) bool {
	if !s.Lit('"') {
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
func (s *Scanner) digits() (uint64, bool) {
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
	switch s.Peek() {
	case '.', 'e', 'E': // not a whole number as written
		return 0, false
	}
	return v, true
}

// Uint reads a whole number that a uint64 holds.
func (s *Scanner) Uint(dst *uint64) bool {
	v, ok := s.digits()
	*dst = v
	return ok
}

// Int reads a whole number that an int64 holds.
func (s *Scanner) Int(dst *int64) bool {
	neg := s.Lit('-')
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

// IntOf reads a whole number that an int holds.
func (s *Scanner) IntOf(dst *int) bool {
	var v int64
	if !s.Int(&v) || int64(int(v)) != v {
		return false
	}
	*dst = int(v)
	return true
}

// Bool reads true or false.
func (s *Scanner) Bool(dst *bool) bool {
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

// Raw reads any JSON value, checked as encoding/json checks it, and returns
// a copy of its bytes, as json.RawMessage gets them.
func (s *Scanner) Raw() (json.RawMessage, bool) {
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

// maxDepth bounds the nesting of a value Raw reads. encoding/json refuses
// values nested more than 10,000 deep counting the values around them,
// which json.Valid on the value alone does not see: deep values are left
// to the caller's encoding/json.
const maxDepth = 1000

// skip moves past one JSON value, finding where it ends; Raw checks it.
func (s *Scanner) skip() bool {
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
				s.i = len(s.b) // past a last backslash
				return false
			}
			s.i++
		case '{', '[':
			if depth++; depth > maxDepth {
				return false
			}
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
