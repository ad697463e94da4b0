package pushhub

import "github.com/pushhub/caddy-pushhub/internal/plainjson"

// readSend reads the body of a send into req exactly as decodeBody does.
// The bodies backends write (pushapi, PHP's json_encode, JavaScript's
// JSON.stringify: no spaces inside, strings without escapes) are read
// without encoding/json's reflection; anything else (spaces between
// tokens, an escaped string, a key in another case or twice, wait_ack, an
// unknown key, data nested deeper than plainjson reads, a malformed body)
// goes to decodeBody, which answers it as always. A fuzz target checks
// that both read every body alike.
func readSend(body []byte, req *SendRequest) *apiError {
	if readPlainSend(body, req) {
		return nil
	}
	*req = SendRequest{}
	return decodeBody(body, req)
}

// readPlainSend reads body into req when it is a plain JSON object of a
// send's fields, each at most once; false leaves req to be read again from
// scratch.
func readPlainSend(body []byte, req *SendRequest) bool {
	s := plainjson.NewScanner(body)
	var seen uint8
	once := func(field uint8) bool {
		if seen&field != 0 {
			return false
		}
		seen |= field
		return true
	}
	s.SkipSpace()
	if !s.Object(func(key string) bool {
		switch key {
		case "uid":
			return once(1) && s.Str(&req.UID)
		case "uids":
			if !once(2) {
				return false
			}
			req.UIDs = []string{}
			return s.Array(func() bool {
				var uid string
				ok := s.Str(&uid)
				req.UIDs = append(req.UIDs, uid)
				return ok
			})
		case "group":
			return once(4) && s.Str(&req.Group)
		case "all":
			return once(8) && s.Bool(&req.All)
		case "data":
			if !once(16) {
				return false
			}
			raw, ok := s.Raw()
			req.Data = raw
			return ok
		case "idempotency_key":
			return once(32) && s.Str(&req.IdempotencyKey)
		}
		return false
	}) {
		return false
	}
	s.SkipSpace()
	return s.End()
}
