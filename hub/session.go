package hub

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"go.uber.org/zap"
)

// A connection's session: login, then the commands its client sends,
// whatever protocol decoded them.

// handle runs one command; it reports whether to keep reading.
func (c *Conn) handle(cmd Command) bool {
	loggedIn := c.loggedIn.Load()
	switch {
	case cmd.Kind == CmdMalformed:
		c.replyError(cmd.ID, cmd.Err)
		return true
	case !loggedIn && cmd.Kind != CmdLogin && cmd.Kind != CmdPing:
		c.fail(CloseAuthFailed, newError("login_required", "the first frame must be a login frame"))
		return false
	}
	s := c.settings()
	switch cmd.Kind {
	case CmdInvalid:
		c.replyError(cmd.ID, cmd.Err)
	case CmdLogin:
		if loggedIn {
			c.replyError(cmd.ID, newError("already_logged_in", "this connection is logged in as %s", c.uid))
			return true
		}
		return c.authenticate(cmd)
	case CmdPing:
		c.reply(Reply{Kind: ReplyPong, ID: cmd.ID})
	case CmdAck:
		// Acknowledgements are cumulative: seq covers everything before it.
		if cmd.Seq > c.acked.Load() {
			c.acked.Store(cmd.Seq) // only this reader writes it
			c.hub.acks.notify()
		}
	case CmdSend:
		if !s.AllowClientPublish {
			c.replyError(cmd.ID, newError("publish_forbidden", "clients may not publish on this endpoint"))
			return true
		}
		c.publish(cmd)
	case CmdJoin, CmdLeave:
		if !s.AllowClientGroups {
			c.replyError(cmd.ID, newError("groups_forbidden", "clients may not join or leave groups on this endpoint"))
			return true
		}
		c.membership(cmd)
	case CmdApp:
		c.toApp(cmd)
	}
	return true
}

// toApp hands a client's message to the application as a message event.
func (c *Conn) toApp(cmd Command) {
	if len(cmd.Data) == 0 {
		c.replyError(cmd.ID, newError("bad_frame", `an app frame carries "data"`))
		return
	}
	sink := c.hooks().Events
	if sink == nil || !sink.Wants(EventMessage) {
		c.replyError(cmd.ID, newError("app_unavailable", "this endpoint sends no messages to the application"))
		return
	}
	if !c.emit(EventMessage, func(e *Event) { e.Data = cmd.Data }) {
		c.replyError(cmd.ID, newError("app_busy", "the queue of events to the application is full: the message was dropped"))
		return
	}
	if len(cmd.ID) > 0 {
		c.reply(Reply{Kind: ReplyQueued, ID: cmd.ID})
	}
}

// login binds the connection to the uid it authenticated as, once the
// login hook (if any) allowed it, and reports whether it is logged in.
func (c *Conn) login(id Identity, since *Position) bool {
	h := c.hub
	var headers map[string]string
	if c.pre != nil {
		headers = c.pre.headers
	}
	c.pre = nil
	uid := id.UID
	if err := ValidName("uid", uid, c.settings().MaxUIDLength); err != nil {
		c.fail(CloseAuthFailed, err)
		return false
	}
	if err := c.proto.CheckUID(uid); err != nil {
		c.fail(CloseAuthFailed, err)
		return false
	}
	var groups []string
	if hook := c.hooks().Login; hook != nil {
		ctx, cancel := context.WithTimeout(context.Background(), loginTimeout)
		answer, err := hook.Check(ctx, LoginRequest{
			UID: uid, ConnID: c.ID(), Remote: c.nc.RemoteAddr().String(), Protocol: c.proto.Name(),
			Claims: id.Claims, Headers: headers,
		})
		cancel()
		if err != nil {
			h.hookFailed(c, uid, answer.Allow, err)
		}
		if !answer.Allow {
			reason := answer.Reason
			if reason == "" {
				reason = "the application refused the login"
			}
			h.logger().Info("login refused by the login hook", zap.String("conn", c.ID()), zap.String("uid", uid),
				zap.String("reason", reason), zap.Error(err))
			c.fail(CloseAuthFailed, newError("login_refused", "%s", reason))
			return false
		}
		groups = answer.Groups
	}
	err := h.register(c, uid, since, groups)
	switch {
	case err == nil:
		h.outcomes.logins.Add(1)
		if ce := h.logger().Check(zap.DebugLevel, "logged in"); ce != nil {
			ce.Write(zap.String("conn", c.ID()), zap.String("uid", uid), zap.Stringer("remote", c.nc.RemoteAddr()))
		}
		c.emit(EventLogin, func(e *Event) { e.Claims = id.Claims })
		return true
	case errors.Is(err, errTooManyConn):
		c.fail(CloseTooManyConnections, err)
	default:
		c.fail(CloseGoingAway, err)
	}
	return false
}

// authenticate runs a login command: it verifies the credential.
func (c *Conn) authenticate(cmd Command) bool {
	pre := c.pre
	if pre == nil || pre.login == nil {
		c.fail(CloseAuthFailed, newError("auth_failed", "this endpoint does not accept logins in frames"))
		return false
	}
	id, err := pre.login(cmd.Credential)
	if err != nil {
		c.hub.logger().Info("login refused", zap.String("conn", c.ID()), zap.Stringer("remote", c.nc.RemoteAddr()), zap.Error(err))
		c.fail(CloseAuthFailed, &Error{Code: ErrorCode(err, "auth_failed"), Message: err.Error()})
		return false
	}
	since := pre.since
	if cmd.Since != nil {
		since = &Position{Epoch: cmd.Epoch, Offset: *cmd.Since}
	}
	return c.login(id, since)
}

// welcome is the frame answering a login at position pos.
func (c *Conn) welcome(pos Position, r *Resume, history bool) outFrame {
	return c.proto.Welcome(Welcome{UID: c.uid, ConnID: c.ID(), Position: pos, Resume: r, History: history})
}

// fail tells the client why in an error frame, where its protocol has them,
// then closes with code after the queue is flushed.
func (c *Conn) fail(code int, err error) {
	e := &Error{Code: ErrorCode(err, "error"), Message: err.Error()}
	if !c.loggedIn.Load() {
		c.hub.outcomes.refused(e.Code)
	}
	if f, ok := c.proto.Error(nil, e); ok {
		c.enqueue(f)
	}
	c.closeAfterFlush(code, closeReason(e.Code+": "+e.Message), time.Second)
}

// replyError answers a command that failed, where the protocol can.
func (c *Conn) replyError(id json.RawMessage, e *Error) {
	if f, ok := c.proto.Error(id, e); ok {
		c.enqueue(f)
	}
}

// reply answers a command that succeeded, where the protocol does.
func (c *Conn) reply(r Reply) {
	if f, ok := c.proto.Reply(r); ok {
		c.enqueue(f)
	}
}

// publish runs a client's send command.
func (c *Conn) publish(cmd Command) {
	targets := 0
	for _, set := range []bool{cmd.To != "", cmd.Group != "", cmd.All} {
		if set {
			targets++
		}
	}
	if targets != 1 {
		c.replyError(cmd.ID, newError("bad_target", `a send frame names exactly one of "to", "group" and "all"`))
		return
	}
	if len(cmd.Data) == 0 {
		c.replyError(cmd.ID, newError("bad_frame", `a send frame carries "data"`))
		return
	}
	// A name from a client is checked as the push API checks it, before
	// anything is looked up or kept for it.
	max := c.hub.Settings().MaxUIDLength
	if cmd.To != "" {
		if err := ValidName("uid", cmd.To, max); err != nil {
			c.replyError(cmd.ID, err.(*Error))
			return
		}
	}
	if cmd.Group != "" {
		if err := ValidName("group", cmd.Group, max); err != nil {
			c.replyError(cmd.ID, err.(*Error))
			return
		}
	}
	t := Target{UID: cmd.To, Group: cmd.Group, All: cmd.All}
	if c.account == nil {
		c.account = &StoreAccount{}
	}
	c.account.max.Store(c.settings().MaxStoredPerClient)
	m, o := Message{Data: cmd.Data, From: c.uid}, SendOptions{Account: c.account, NoReceipt: len(cmd.ID) == 0}
	if c.hub.direct() { // at once, without the closure a lane needs: the single-node hot path
		r, err := c.hub.Send(context.Background(), t, m, o)
		c.published(cmd.ID, r, err)
		return
	}
	id := cmd.ID
	c.hub.sendFrom(c, publication(t, m, o), func(r Receipt, err error) { c.published(id, r, err) })
}

// published answers a send command with its receipt, where it asked for
// one (an id), or with its error.
func (c *Conn) published(id json.RawMessage, r Receipt, err error) {
	switch {
	case err != nil:
		c.replyError(id, &Error{Code: ErrorCode(err, "send_failed"), Message: err.Error()})
	case len(id) > 0:
		c.reply(Reply{Kind: ReplySent, ID: id, Receipt: r})
	}
}

// membership runs a client's join or leave command, behind its earlier
// commands.
func (c *Conn) membership(cmd Command) {
	if err := ValidName("group", cmd.Group, c.hub.Settings().MaxUIDLength); err != nil {
		c.replyError(cmd.ID, &Error{Code: ErrorCode(err, "invalid_group"), Message: err.Error()})
		return
	}
	if c.hub.direct() {
		c.joinOrLeave(cmd)
		return
	}
	c.hub.laterFrom(c, func() { c.joinOrLeave(cmd) })
}

func (c *Conn) joinOrLeave(cmd Command) {
	ctx := context.Background()
	if cmd.Kind == CmdLeave {
		if _, err := c.hub.Leave(ctx, c.uid, cmd.Group); err != nil {
			c.replyError(cmd.ID, &Error{Code: ErrorCode(err, "leave_failed"), Message: err.Error()})
			return
		}
		c.reply(Reply{Kind: ReplyLeft, ID: cmd.ID, Group: cmd.Group})
		return
	}
	if err := c.hub.Join(ctx, c.uid, cmd.Group); err != nil {
		c.replyError(cmd.ID, &Error{Code: ErrorCode(err, "join_failed"), Message: err.Error()})
		return
	}
	c.reply(Reply{Kind: ReplyJoined, ID: cmd.ID, Group: cmd.Group})
}
