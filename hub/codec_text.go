package hub

import (
	"bytes"
	"encoding/json"
	"strings"
	"time"
)

// textCodec is the Workerman recipe's protocol: the first frame logs in
// and is answered "login success, your uid is <uid>"; then "<uid>:<text>"
// goes to a uid and "all:<text>" to everyone; pushes arrive as bare text.
// It has no error frames, sequence numbers or replies: what it cannot do
// is ignored, as the recipe ignores it.
type textCodec struct{ wsFraming }

func (textCodec) Name() string { return "text" }

// CheckUID refuses the uids "uid:message" cannot address: "all" (that is
// everyone) and any uid with a colon (the message would start at it).
func (textCodec) CheckUID(uid string) *Error {
	switch {
	case uid == textAll:
		return newError("invalid_uid", `the text protocol cannot address the uid "all": it means everyone`)
	case strings.Contains(uid, ":"):
		return newError("invalid_uid", "the text protocol cannot address a uid with a colon")
	}
	return nil
}
func (textCodec) Resumes() bool { return false }

// textAll is the recipe's name for everyone.
const textAll = "all"

func (textCodec) Decode(frame []byte, o DecodeOptions) Command {
	if !o.LoggedIn {
		return Command{Kind: CmdLogin, Credential: string(frame)}
	}
	if o.ToApp {
		return Command{Kind: CmdApp, Data: jsonString(frame)}
	}
	// Split at the first colon only, so that messages may contain colons.
	to, text, ok := bytes.Cut(frame, []byte{':'})
	if !ok {
		return Command{}
	}
	cmd := Command{Kind: CmdSend, Data: jsonString(text)}
	if string(to) == textAll {
		cmd.All = true
	} else {
		cmd.To = string(to)
	}
	return cmd
}

func (textCodec) Welcome(w Welcome) outFrame {
	return textFrame([]byte("login success, your uid is " + w.UID))
}

func (textCodec) Error(json.RawMessage, *Error) (outFrame, bool)   { return outFrame{}, false }
func (textCodec) Reply(Reply) (outFrame, bool)                     { return outFrame{}, false }
func (textCodec) GoingAway(string, time.Duration) (outFrame, bool) { return outFrame{}, false }

// textMessage is a push's one frame, shared by every text connection.
type textMessage struct{ wire []byte }

func (textCodec) Message(m *Message) PreparedMessage {
	return textMessage{wire: wireFrame(opText, TextPayload(m.Data))}
}

func (p textMessage) Frame(uint64) []byte { return p.wire }

// TextPayload is what the text protocol sends for data: a JSON string's
// content, or the JSON text of any other value.
func TextPayload(data json.RawMessage) []byte {
	if len(data) > 0 && data[0] == '"' {
		if len(data) >= 2 && data[len(data)-1] == '"' && !bytes.ContainsAny(data[1:len(data)-1], "\\\"") {
			return data[1 : len(data)-1] // no escapes: the content as it is
		}
		var s string
		if json.Unmarshal(data, &s) == nil {
			return []byte(s)
		}
	}
	return data
}
