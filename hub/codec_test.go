package hub

import (
	"encoding/json"
	"testing"
)

// TestJSONStringAndTextPayload: the fast paths of the text protocol's
// conversions give what encoding/json gives, for plain and tricky text.
func TestJSONStringAndTextPayload(t *testing.T) {
	for _, s := range []string{
		"", "hello", "a:b:c", "ünïcödé ✓", `quote " here`, `back\slash`, "tab\there", "new\nline",
		"<b>&amp;</b>", "line\u2028sep", "para\u2029sep", "\x7f", "emoji 😀", "\u00e9\u00e8",
	} {
		want, _ := json.Marshal(s)
		if got := jsonString(s); string(got) != string(want) {
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
