package hub

import (
	"encoding/json"
	"sort"
	"time"
)

// Codec is one wire protocol: it turns a client's text frames into
// commands and encodes what the hub sends. The engine never asks which
// protocol a connection speaks; it asks the connection's codec. A new
// protocol is one file implementing Codec and one line in protocols below.
type Codec interface {
	// Name is the protocol's name in the configuration.
	Name() string
	// Decode turns one text frame from a client into a command. The
	// command keeps nothing of frame, which the reader reuses at once.
	Decode(frame []byte, o DecodeOptions) Command
	// CheckUID refuses, at login, a uid the protocol could not address
	// (beyond the names every protocol refuses).
	CheckUID(uid string) *Error
	// Welcome answers a successful login.
	Welcome(w Welcome) outFrame
	// Message prepares a pushed message for this protocol once per push;
	// its frames are then made per sequence number.
	Message(m *Message) PreparedMessage
	// Resumes tells whether the protocol's clients see sequence numbers:
	// they can acknowledge messages and resume after a reconnect.
	Resumes() bool
	// Error tells the client that a command failed; ok is false when the
	// protocol has no error frames (the command is then ignored silently).
	Error(id json.RawMessage, e *Error) (f outFrame, ok bool)
	// Reply answers a command that succeeded; ok is false when the
	// protocol does not answer it.
	Reply(r Reply) (f outFrame, ok bool)
	// GoingAway tells the client, before the close frame, that the hub is
	// closing and when to come back; ok is false when the protocol cannot.
	GoingAway(reason string, retry time.Duration) (f outFrame, ok bool)
	// Ping keeps a quiet connection alive and finds dead peers.
	Ping() outFrame
	// Close ends the connection with a code and a reason; nothing is
	// written after it.
	Close(code int, reason string) outFrame
}

// wsFraming is the WebSocket's own ping and close frames, for the codecs
// of WebSocket protocols.
type wsFraming struct{}

func (wsFraming) Ping() outFrame                         { return outFrame{wire: pingWire} }
func (wsFraming) Close(code int, reason string) outFrame { return closeFrame(code, reason) }

// PreparedMessage is a pushed message encoded once for a protocol.
type PreparedMessage interface {
	// Frame is the whole wire frame of the message numbered seq. A
	// protocol without sequence numbers returns the same shared bytes for
	// every seq.
	Frame(seq uint64) []byte
}

// protocols lists every wire protocol; the index is the protocol's id.
var protocols = []Codec{
	jsonCodec{},
	textCodec{},
}

// maxProtocols bounds the per-push caches of encoded frames.
const maxProtocols = 4

func init() {
	if len(protocols) > maxProtocols {
		panic("hub: raise maxProtocols")
	}
}

// protocol is a registered codec and its id.
type protocol struct {
	Codec
	id int
}

var protocolByName = func() map[string]*protocol {
	m := make(map[string]*protocol, len(protocols))
	for i, c := range protocols {
		m[c.Name()] = &protocol{Codec: c, id: i}
	}
	return m
}()

// DefaultProtocol is the protocol of a connection whose options name none.
const DefaultProtocol = "json"

// ProtocolNames lists the protocols the hub speaks, sorted.
func ProtocolNames() []string {
	names := make([]string, 0, len(protocols))
	for _, c := range protocols {
		names = append(names, c.Name())
	}
	sort.Strings(names)
	return names
}

// KnownProtocol reports whether name is a protocol the hub speaks.
func KnownProtocol(name string) bool {
	_, ok := protocolByName[name]
	return ok
}

func lookupProtocol(name string) *protocol {
	if name == "" {
		name = DefaultProtocol
	}
	return protocolByName[name]
}

// DecodeOptions is what decoding a frame depends on.
type DecodeOptions struct {
	LoggedIn bool // the connection has logged in already
	// ToApp: the endpoint hands client frames to the application (Hooks.
	// TextToApp) rather than routing them, where the protocol has no frame
	// type of its own for that.
	ToApp bool
}

// CommandKind says what a client asked for.
type CommandKind uint8

// What a client frame can ask for.
const (
	CmdNone      CommandKind = iota // nothing: the frame is ignored
	CmdMalformed                    // not a frame of the protocol at all (Err says why); answered even before login
	CmdInvalid                      // a frame of the protocol that is wrong (Err says why)
	CmdLogin                        // log in with Credential, resuming from Since/Epoch
	CmdPing                         // ask for a pong
	CmdAck                          // acknowledge every message up to Seq
	CmdSend                         // publish Data to To, Group or All
	CmdJoin                         // join Group
	CmdLeave                        // leave Group
	CmdApp                          // hand Data to the application (a message event)
)

// Command is one decoded client frame.
type Command struct {
	Kind CommandKind
	// ID is the client's request id, echoed in the answer.
	ID json.RawMessage
	// Err says why a frame is malformed or invalid.
	Err *Error

	Credential string  // login: a uid or a token
	Since      *uint64 // login: the last sequence number seen
	Epoch      string  // login: the numbering Since belongs to

	To    string          // send: a uid
	Group string          // send, join, leave: a group
	All   bool            // send: everyone
	Data  json.RawMessage // send: the message

	Seq uint64 // ack
}

// Welcome is what a successful login is answered with.
type Welcome struct {
	UID    string
	ConnID string
	// Position is the uid's current position: its last message's
	// sequence number and the numbering (epoch) it belongs to.
	Position Position
	// Resume says how a resuming client's gap was filled; nil when the
	// client did not ask to resume.
	Resume *Resume
	// History tells whether the uid's messages are kept for resume.
	History bool
}

// ReplyKind says which command a reply answers.
type ReplyKind uint8

// Replies to commands that succeeded.
const (
	ReplyPong ReplyKind = iota
	ReplySent
	ReplyJoined
	ReplyLeft
	ReplyQueued // an app message was queued for the application
)

// Reply answers a command that succeeded.
type Reply struct {
	Kind    ReplyKind
	ID      json.RawMessage
	Group   string  // joined, left
	Receipt Receipt // sent
}
