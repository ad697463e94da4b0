package hub

import (
	"bytes"
	"crypto/tls"
	"reflect"
	"unsafe"
)

// An idle connection over TLS should hold no more than one over plain TCP
// plus its keys. crypto/tls keeps the buffers it read the handshake and
// the last records into for as long as the connection lives: a few KiB of
// raw input and handshake data per connection, empty but never released,
// which an idle hub of wss clients pays on every one of them. The standard
// library offers no way to release them, so the hub does it between reads,
// when it is the only reader and the buffers are empty: it drops them, and
// crypto/tls allocates again, from its usual sizes, on the next record.
//
// This reaches into crypto/tls's unexported fields. Their names and types
// are checked once, at start; on a Go whose tls.Conn differs, release does
// nothing (and TestTLSBuffersReleased fails, so that the project notices).

// tlsLayout holds the offsets of tls.Conn's input buffers, or ok false.
var tlsLayout = findTLSLayout()

type tlsOffsets struct {
	ok                    bool
	rawInput, input, hand uintptr
}

func findTLSLayout() tlsOffsets {
	t := reflect.TypeFor[tls.Conn]()
	field := func(name string, want reflect.Type) (uintptr, bool) {
		f, ok := t.FieldByName(name)
		if !ok || f.Type != want || len(f.Index) != 1 {
			return 0, false
		}
		return f.Offset, true
	}
	buffer, reader := reflect.TypeFor[bytes.Buffer](), reflect.TypeFor[bytes.Reader]()
	var l tlsOffsets
	var ok1, ok2, ok3 bool
	l.rawInput, ok1 = field("rawInput", buffer)
	l.input, ok2 = field("input", reader)
	l.hand, ok3 = field("hand", buffer)
	l.ok = ok1 && ok2 && ok3
	return l
}

// tlsBuffered reports whether crypto/tls holds bytes of tc's peer that no
// read has taken: a record whole or begun, decrypted data, a handshake
// message begun. Only tc's reader may call it.
func tlsBuffered(tc *tls.Conn) bool {
	if !tlsLayout.ok {
		return true // unknown: the reader goes on as if so
	}
	p := unsafe.Pointer(tc)
	return (*bytes.Buffer)(unsafe.Add(p, tlsLayout.rawInput)).Len() != 0 ||
		(*bytes.Reader)(unsafe.Add(p, tlsLayout.input)).Len() != 0 ||
		(*bytes.Buffer)(unsafe.Add(p, tlsLayout.hand)).Len() != 0
}

// releaseTLSBuffers drops tc's empty input buffers. Only the goroutine
// that reads tc may call it, between reads (tls.Conn's own writers never
// touch them). It reports whether it released anything.
func releaseTLSBuffers(tc *tls.Conn) bool {
	if !tlsLayout.ok {
		return false
	}
	p := unsafe.Pointer(tc)
	raw := (*bytes.Buffer)(unsafe.Add(p, tlsLayout.rawInput))
	in := (*bytes.Reader)(unsafe.Add(p, tlsLayout.input))
	hand := (*bytes.Buffer)(unsafe.Add(p, tlsLayout.hand))
	if raw.Len() != 0 || in.Len() != 0 || hand.Len() != 0 {
		return false // a record or message is half read: keep it
	}
	if raw.Cap() == 0 && hand.Cap() == 0 {
		return false
	}
	*raw = bytes.Buffer{}
	in.Reset(nil) // it points into the raw input's memory
	*hand = bytes.Buffer{}
	return true
}
