package main

import "bytes"

// A bench payload carries what a receiver needs to account for it, in a
// fixed layout it can find and parse without allocating:
//
//	~pb<tag: 2 characters><id: 10 digits><unix nanoseconds: 19 digits>~ then '.' up to the size
//
// tag names the tracker (one per measured run) and id the message within the
// run (the broadcast or group push it belongs to). The payload is plain
// ASCII with nothing to escape, so it travels unchanged as a JSON string, as
// the text protocol's bare text and inside the json protocol's frames.
const (
	payloadMarker = "~pb"
	payloadHeader = len(payloadMarker) + 2 + 10 + 19 + 1
)

var marker = []byte(payloadMarker)

// appendPayload appends a payload of size bytes (at least payloadHeader).
func appendPayload(b []byte, tag runTag, id uint64, unixNano int64, size int) []byte {
	b = append(b, payloadMarker...)
	b = append(b, tag[:]...)
	b = appendDigits(b, id, 10)
	b = appendDigits(b, uint64(unixNano), 19)
	b = append(b, '~')
	for range size - payloadHeader {
		b = append(b, '.')
	}
	return b
}

// appendDigits appends v in exactly width decimal digits (the low ones).
func appendDigits(b []byte, v uint64, width int) []byte {
	n := len(b)
	for range width {
		b = append(b, 0)
	}
	for i := n + width - 1; i >= n; i-- {
		b[i] = byte('0' + v%10)
		v /= 10
	}
	return b
}

// parsePayload finds a payload in a received frame.
func parsePayload(frame []byte) (tag runTag, id uint64, unixNano int64, ok bool) {
	i := bytes.Index(frame, marker)
	if i < 0 || len(frame)-i < payloadHeader {
		return tag, 0, 0, false
	}
	p := frame[i+len(payloadMarker):]
	id, ok1 := parseDigits(p[2:12])
	ts, ok2 := parseDigits(p[12:31])
	if !ok1 || !ok2 || p[31] != '~' {
		return tag, 0, 0, false
	}
	return runTag{p[0], p[1]}, id, int64(ts), true
}

func parseDigits(b []byte) (uint64, bool) {
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
	}
	return v, true
}

// jsonQuoted wraps an ASCII payload, which needs no escaping, in quotes.
func jsonQuoted(payload []byte) []byte {
	q := make([]byte, 0, len(payload)+2)
	q = append(q, '"')
	q = append(q, payload...)
	return append(q, '"')
}
