package hub

import "encoding/binary"

// The WebSocket framing the hub writes and parses itself (RFC 6455, section
// 5.2). Server frames are unmasked, so a frame is a header and the payload,
// and one frame's bytes can be shared by every connection a push reaches.

// Opcodes and header bits.
const (
	opText   = 0x1
	opBinary = 0x2
	opClose  = 0x8
	opPing   = 0x9
	opPong   = 0xa

	finBit    = 0x80
	rsvBits   = 0x70
	opMask    = 0x0f
	maskBit   = 0x80
	maxCtlLen = 125
)

// outFrame is one frame waiting to be written.
type outFrame struct {
	wire  []byte // the whole frame, header included; shared, never modified
	close bool   // a close frame: nothing after it is written
	at    int64  // a push's frame: unix nanoseconds this node took the push (latency.go)
}

// frameHeaderLen is the size of a server frame header for a payload of n.
func frameHeaderLen(n int) int {
	switch {
	case n < 126:
		return 2
	case n <= 0xffff:
		return 4
	default:
		return 10
	}
}

// appendFrameHeader appends an unmasked, final frame header.
func appendFrameHeader(b []byte, op byte, n int) []byte {
	b = append(b, finBit|op)
	switch {
	case n < 126:
		return append(b, byte(n))
	case n <= 0xffff:
		return append(b, 126, byte(n>>8), byte(n))
	default:
		b = append(b, 127)
		return binary.BigEndian.AppendUint64(b, uint64(n))
	}
}

// wireFrame encodes one frame.
func wireFrame(op byte, payload []byte) []byte {
	b := make([]byte, 0, frameHeaderLen(len(payload))+len(payload))
	b = appendFrameHeader(b, op, len(payload))
	return append(b, payload...)
}

// textFrame is a text frame of one connection's own.
func textFrame(payload []byte) outFrame {
	return outFrame{wire: wireFrame(opText, payload)}
}

// pingWire is the server's ping: no payload.
var pingWire = []byte{finBit | opPing, 0}

// closeFrame encodes a close frame. 1005 (no status) is answered with an
// empty close frame, as the RFC reserves it from the wire.
func closeFrame(code int, reason string) outFrame {
	var payload []byte
	if code != 1005 {
		payload = make([]byte, 2, 2+len(reason))
		binary.BigEndian.PutUint16(payload, uint16(code))
		payload = append(payload, reason...)
	}
	return outFrame{wire: wireFrame(opClose, payload), close: true}
}
