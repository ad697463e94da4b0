package hub

import (
	"encoding/json"
	"fmt"
	"testing"
)

// TestJSONStringAndTextPayload: the fast paths of the text protocol's
// conversions give what encoding/json gives, for plain and tricky text.
func TestJSONStringAndTextPayload(t *testing.T) {
	for _, s := range []string{
		"", "hello", "a:b:c", "ünïcödé ✓", `quote " here`, `back\slash`, "tab\there", "new\nline",
		"<b>&amp;</b>", "line\u2028sep", "para\u2029sep", "\x7f", "emoji 😀", "\u00e9\u00e8",
		// what needs escaping after text that does not (the check goes on past the first non-ASCII character)
		`é"`, `é\`, "é\n", "é<", "é&", "ü\u2028",
	} {
		want, _ := json.Marshal(s)
		if got := jsonString([]byte(s)); string(got) != string(want) {
			t.Errorf("jsonString(%q) = %s, want %s", s, got, want)
		}
		if got := TextPayload(want); string(got) != s {
			t.Errorf("TextPayload(%s) = %q, want %q", want, got, s)
		}
	}
	if got := TextPayload(json.RawMessage(`{"a":1}`)); string(got) != `{"a":1}` {
		t.Errorf("TextPayload of an object = %s", got)
	}
}

// TestDecodeKeepsNothingOfTheFrame: the reader decodes a message where it
// lies in its buffer and reuses the buffer at once, so no command may point
// into the frame it came from.
func TestDecodeKeepsNothingOfTheFrame(t *testing.T) {
	frames := []string{
		"42", "bob:hello there", "all:to everyone", "no colon",
		`{"type":"login","uid":"42","since":3,"epoch":"e1"}`, `{"type":"login","token":"t.o.k"}`,
		`{"type":"send","id":"x1","to":"bob","data":{"a":[1,2]}}`, `{"type":"send","id":7,"group":"g","data":"hi"}`,
		`{"type":"ack","seq":5}`, `{"type":"join","id":1,"group":"g"}`, `{"type":"app","data":"up"}`, `{"type":"nope"}`, `not json`,
	}
	for _, codec := range protocols {
		for _, f := range frames {
			for _, o := range []DecodeOptions{{}, {LoggedIn: true}, {LoggedIn: true, ToApp: true}} {
				frame := []byte(f)
				cmd := codec.Decode(frame, o)
				before := show(cmd)
				for i := range frame {
					frame[i] = '#'
				}
				if after := show(cmd); after != before {
					t.Errorf("%s: Decode(%q, %+v) changed with its frame:\n%s\n%s", codec.Name(), f, o, before, after)
				}
			}
		}
	}
}

// show is a command in full, pointers followed.
func show(cmd Command) string {
	b, err := json.Marshal(cmd)
	return fmt.Sprintf("%s %v", b, err)
}
