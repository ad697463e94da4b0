package hub

import (
	"errors"
	"fmt"
	"unicode"
	"unicode/utf8"
)

// WebSocket close codes the hub sends. The 4xxx codes are this project's
// (RFC 6455 leaves 4000-4999 to applications); PROTOCOL.md lists them.
const (
	CloseGoingAway          = 1001 // server shutting down or hub removed: reconnect later
	CloseProtocolError      = 1002 // a frame that breaks RFC 6455
	CloseUnsupportedData    = 1003 // a binary frame
	CloseInvalidPayload     = 1007 // a text frame that is not UTF-8
	CloseMessageTooBig      = 1009 // a frame over max_message_size
	CloseAuthFailed         = 4001 // login refused, or a frame before login
	CloseAuthTimeout        = 4002 // no login within auth_timeout
	CloseTooManyConnections = 4003 // the uid already holds max_connections_per_uid
	CloseSlowConsumer       = 4004 // the send queue overflowed
	CloseKicked             = 4005 // closed through the push API's /kick
	ClosePingTimeout        = 4006 // no pong or frame within ping_interval + pong_timeout
	CloseRateLimited        = 4008 // the client sent frames faster than rate_limit
)

// Error is an error with a stable code, sent to json clients in error frames
// and to API callers in error bodies.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Message }

func newError(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Errors returned by the hub's API.
var (
	ErrOffline   = &Error{Code: "uid_offline", Message: "the uid has no connection on this hub"}
	ErrHubClosed = &Error{Code: "hub_closed", Message: "the hub is shutting down"}
	// ErrTooManyGroups refuses a join over max_groups_per_uid or max_groups.
	ErrTooManyGroups = &Error{Code: "too_many_groups", Message: "the uid, or the hub, holds the maximum number of groups"}
	errTooManyConn   = &Error{Code: "too_many_connections", Message: "the uid holds the maximum number of connections"}
)

// ErrorCode returns err's stable code, or fallback when it has none.
func ErrorCode(err error, fallback string) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return fallback
}

// ValidName checks a uid or group name: non-empty, at most max bytes, valid
// UTF-8, no control characters.
func ValidName(kind, name string, max int) error {
	switch {
	case name == "":
		return newError("invalid_"+kind, "%s is empty", kind)
	case len(name) > max:
		return newError("invalid_"+kind, "%s is longer than %d bytes", kind, max)
	case !utf8.ValidString(name):
		return newError("invalid_"+kind, "%s is not valid UTF-8", kind)
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return newError("invalid_"+kind, "%s contains a control character", kind)
		}
	}
	return nil
}
