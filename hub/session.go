package hub

import (
	"bufio"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"go.uber.org/zap"
)

// LoginFunc verifies the credential a client logs in with (a uid, or a
// token whose subject is the uid) and returns the uid.
type LoginFunc func(credential string) (uid string, err error)

// ConnOptions say how a new connection logs in and what it speaks.
type ConnOptions struct {
	Protocol Protocol
	// UID is set when the connection was authenticated at the upgrade (a
	// placeholder, or a token in a header or query parameter); the connection
	// is then logged in at once.
	UID string
	// Login verifies the first frame's credential when UID is empty.
	Login LoginFunc
	// Since is the last sequence number a resuming json client has seen
	// (the since query parameter); a login frame's since overrides it.
	Since *uint64
	// Endpoint holds the settings of the endpoint the connection came
	// through; nil means the hub's own settings.
	Endpoint *Endpoint
	// Reader is the buffered reader the WebSocket reads from (the one
	// handed to gorilla's Upgrade through Hijack). With it, and on Linux,
	// the connection is read only when its socket is readable and holds no
	// goroutine while idle; without it, a goroutine reads it.
	Reader *bufio.Reader
}

// login verifies nothing: uid is already authenticated. It validates the
// uid, registers the connection and reports whether it is logged in.
func (c *Conn) login(uid string, since *uint64) bool {
	h := c.hub
	if err := ValidName("uid", uid, c.settings().MaxUIDLength); err != nil {
		c.fail(CloseAuthFailed, err)
		return false
	}
	err := h.register(c, uid, since, func(seq uint64, r *Resume) outFrame {
		if c.protocol == ProtocolText {
			return textFrame([]byte("login success, your uid is " + uid))
		}
		return jsonFrame(welcomeFrame{Type: "welcome", UID: uid, ConnID: c.ID(), Seq: seq, Resume: r})
	})
	switch {
	case err == nil:
		if ce := h.logger().Check(zap.DebugLevel, "logged in"); ce != nil {
			ce.Write(zap.String("conn", c.ID()), zap.String("uid", uid), zap.Stringer("remote", c.ws.RemoteAddr()))
		}
		return true
	case errors.Is(err, errTooManyConn):
		c.fail(CloseTooManyConnections, err)
	default:
		c.fail(CloseGoingAway, err)
	}
	return false
}

// authenticate runs a first-frame login.
func (c *Conn) authenticate(credential string, since *uint64) bool {
	if c.opts.Login == nil {
		c.fail(CloseAuthFailed, newError("auth_failed", "this endpoint does not accept logins in frames"))
		return false
	}
	uid, err := c.opts.Login(credential)
	if err != nil {
		c.hub.logger().Info("login refused", zap.String("conn", c.ID()), zap.Stringer("remote", c.ws.RemoteAddr()), zap.Error(err))
		c.fail(CloseAuthFailed, &Error{Code: ErrorCode(err, "auth_failed"), Message: err.Error()})
		return false
	}
	return c.login(uid, since)
}

// fail tells a json client why in an error frame, then closes with code
// after the queue is flushed.
func (c *Conn) fail(code int, err error) {
	e := &Error{Code: ErrorCode(err, "error"), Message: err.Error()}
	if c.protocol == ProtocolJSON {
		c.enqueue(jsonFrame(errorFrame{Type: "error", Code: e.Code, Message: e.Message}))
	}
	c.closeAfterFlush(code, closeReason(e.Code+": "+e.Message), time.Second)
}

// handleText runs the recipe's protocol; it reports whether to keep reading.
func (c *Conn) handleText(data []byte) bool {
	if !c.loggedIn.Load() {
		return c.authenticate(string(data), nil)
	}
	if !c.settings().AllowClientPublish {
		return true // the recipe's protocol has no error frames: ignore it
	}
	to, text, ok := strings.Cut(string(data), ":")
	if !ok {
		return true
	}
	m := Message{Data: jsonString(text), From: c.uid}
	if to == "all" {
		c.hub.Broadcast(m)
	} else {
		c.hub.SendToUID(to, m)
	}
	return true
}

// clientFrame is every frame a json client may send; Type says which
// fields matter.
type clientFrame struct {
	Type  string          `json:"type"`
	ID    json.RawMessage `json:"id,omitempty"`
	UID   string          `json:"uid,omitempty"`
	Token string          `json:"token,omitempty"`
	To    string          `json:"to,omitempty"`
	Group string          `json:"group,omitempty"`
	All   bool            `json:"all,omitempty"`
	Data  json.RawMessage `json:"data,omitempty"`
	Since *uint64         `json:"since,omitempty"`
	Seq   *uint64         `json:"seq,omitempty"`
}

type welcomeFrame struct {
	Type   string  `json:"type"`
	UID    string  `json:"uid"`
	ConnID string  `json:"conn_id"`
	Seq    uint64  `json:"seq"`
	Resume *Resume `json:"resume,omitempty"`
}

type errorFrame struct {
	Type    string          `json:"type"`
	ID      json.RawMessage `json:"id,omitempty"`
	Code    string          `json:"code"`
	Message string          `json:"message"`
}

type replyFrame struct {
	Type      string          `json:"type"`
	ID        json.RawMessage `json:"id,omitempty"`
	Delivered *int            `json:"delivered,omitempty"`
	Dropped   *int            `json:"dropped,omitempty"`
	Group     string          `json:"group,omitempty"`
}

// handleJSON runs the json protocol; it reports whether to keep reading.
func (c *Conn) handleJSON(data []byte) bool {
	var f clientFrame
	if err := json.Unmarshal(data, &f); err != nil {
		c.reply(errorFrame{Type: "error", Code: "bad_frame", Message: "frame is not a JSON object: " + err.Error()})
		return true
	}
	if !c.loggedIn.Load() && f.Type != "login" && f.Type != "ping" {
		c.fail(CloseAuthFailed, newError("login_required", "the first frame must be a login frame"))
		return false
	}
	s := c.settings()
	switch f.Type {
	case "login":
		if c.loggedIn.Load() {
			c.reply(errorFrame{Type: "error", ID: f.ID, Code: "already_logged_in", Message: "this connection is logged in as " + c.uid})
			return true
		}
		credential := f.Token
		if credential == "" {
			credential = f.UID
		}
		since := c.opts.Since
		if f.Since != nil {
			since = f.Since
		}
		return c.authenticate(credential, since)
	case "ack":
		if f.Seq == nil {
			c.reply(errorFrame{Type: "error", ID: f.ID, Code: "bad_frame", Message: `an ack frame carries "seq"`})
			return true
		}
		// Acknowledgements are cumulative: seq covers everything before it.
		if *f.Seq > c.acked.Load() {
			c.acked.Store(*f.Seq) // only this reader writes it
		}
	case "ping":
		c.reply(replyFrame{Type: "pong", ID: f.ID})
	case "send":
		if !s.AllowClientPublish {
			c.reply(errorFrame{Type: "error", ID: f.ID, Code: "publish_forbidden", Message: "clients may not publish on this endpoint"})
			return true
		}
		c.publish(f)
	case "join", "leave":
		if !s.AllowClientGroups {
			c.reply(errorFrame{Type: "error", ID: f.ID, Code: "groups_forbidden", Message: "clients may not join or leave groups on this endpoint"})
			return true
		}
		answer := "left"
		if err := ValidName("group", f.Group, s.MaxUIDLength); err != nil {
			c.reply(errorFrame{Type: "error", ID: f.ID, Code: ErrorCode(err, "invalid_group"), Message: err.Error()})
			return true
		}
		if f.Type == "join" {
			if err := c.hub.Join(c.uid, f.Group); err != nil {
				c.reply(errorFrame{Type: "error", ID: f.ID, Code: ErrorCode(err, "join_failed"), Message: err.Error()})
				return true
			}
			answer = "joined"
		} else {
			c.hub.Leave(c.uid, f.Group)
		}
		c.reply(replyFrame{Type: answer, ID: f.ID, Group: f.Group})
	case "":
		c.reply(errorFrame{Type: "error", ID: f.ID, Code: "bad_frame", Message: "frame has no type"})
	default:
		c.reply(errorFrame{Type: "error", ID: f.ID, Code: "unknown_type", Message: "unknown frame type " + quoteShort(f.Type)})
	}
	return true
}

// publish runs a client's send frame.
func (c *Conn) publish(f clientFrame) {
	targets := 0
	for _, set := range []bool{f.To != "", f.Group != "", f.All} {
		if set {
			targets++
		}
	}
	if targets != 1 {
		c.reply(errorFrame{Type: "error", ID: f.ID, Code: "bad_target", Message: `a send frame names exactly one of "to", "group" and "all"`})
		return
	}
	if len(f.Data) == 0 {
		c.reply(errorFrame{Type: "error", ID: f.ID, Code: "bad_frame", Message: `a send frame carries "data"`})
		return
	}
	m := Message{Data: f.Data, From: c.uid}
	var r Receipt
	switch {
	case f.All:
		r = c.hub.Broadcast(m)
	case f.Group != "":
		r = c.hub.SendToGroup(f.Group, m)
	default:
		r = c.hub.SendToUID(f.To, m)
	}
	if len(f.ID) > 0 {
		c.reply(replyFrame{Type: "sent", ID: f.ID, Delivered: &r.Delivered, Dropped: &r.Dropped})
	}
}

// reply queues a server frame to this json connection.
func (c *Conn) reply(v any) {
	c.enqueue(jsonFrame(v))
}

func jsonString(s string) json.RawMessage {
	b, _ := json.Marshal(s) // a string always marshals
	return b
}

// quoteShort quotes a client-supplied name for an error message, cut to a
// readable length.
func quoteShort(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	b, _ := json.Marshal(s)
	return string(b)
}
