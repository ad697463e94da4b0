package hub

import (
	"encoding/binary"
	"encoding/json"
)

// The hub writes server frames itself: they are unmasked, so a frame is a
// header and the payload, and one frame's bytes can be shared by every
// connection a broadcast reaches. gorilla reads (and does the handshake).

// WebSocket opcodes the hub writes.
const (
	opText  = 0x1
	opClose = 0x8
)

// outFrame is one frame waiting to be written.
type outFrame struct {
	wire  []byte // the whole frame, header included; shared, never modified
	close bool   // a close frame: nothing after it is written
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

// textFrame is a data frame of this connection's own.
func textFrame(payload []byte) outFrame {
	return outFrame{wire: wireFrame(opText, payload)}
}

// jsonFrame encodes a server frame of the json protocol.
func jsonFrame(v any) outFrame {
	b, err := json.Marshal(v)
	if err != nil {
		panic("hub: encoding a server frame: " + err.Error())
	}
	return textFrame(b)
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
