package pushhub

import (
	"reflect"
	"strings"
	"testing"
)

// TestSendReading: the bodies backends write are read without reflection,
// into what encoding/json reads; everything else is left to encoding/json
// (readSend then answers as decodeBody does, refusals included).
func TestSendReading(t *testing.T) {
	for _, c := range []struct {
		body  string
		plain bool
	}{
		{`{"uid":"42","data":{"text":"hi","n":[1,2.5,null]}}`, true},
		{`{"data":"x","uid":"u1","idempotency_key":"8f0c2a"}` + "\n", true},
		{` {"uids":["a","b"],"data":[{"a":"b"}]}`, true},
		{`{"uids":[],"data":1}`, true},
		{`{"group":"room","data":true}`, true},
		{`{"all":true,"data":"é \u00e9"}`, true},
		{`{"all":false,"uid":"x","data":null}`, true},
		{`{}`, true},
		{`{"uid": "42", "data": 1}`, false},             // spaces between tokens (Python's json.dumps)
		{`{"uid":"4\"2","data":1}`, false},              // an escape
		{`{"UID":"42","data":1}`, false},                // a key in another case
		{`{"uid":"1","uid":"2","data":1}`, false},       // a key twice
		{`{"uid":"1","data":1,"wait_ack":"2s"}`, false}, // wait_ack
		{`{"uid":"1","data":1,"extra":0}`, false},       // an unknown key
		{`{"uid":"1","data":1}{}`, false},               // data after the object
		{`{"uid":"1","data":01}`, false},                // invalid JSON
		{`{"uid":"1","data":{"a":}}`, false},
		{`{"uids":["a",1],"data":1}`, false},
		{`{"all":"yes","data":1}`, false},
		{``, false},
		// data nested as deep as encoding/json takes a value alone, too deep
		// inside the body: encoding/json refuses it, so the plain reader must not take it
		{`{"uid":"a","data":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `}`, false},
	} {
		var plain, want, got SendRequest
		if ok := readPlainSend([]byte(c.body), &plain); ok != c.plain {
			t.Errorf("%q read without reflection: %v, want %v", c.body, ok, c.plain)
			continue
		}
		werr := decodeBody([]byte(c.body), &want)
		if c.plain && (werr != nil || !reflect.DeepEqual(plain, want)) {
			t.Errorf("%q: %+v without reflection, %+v (%v) by encoding/json", c.body, plain, want, werr)
		}
		gerr := readSend([]byte(c.body), &got)
		if !reflect.DeepEqual(got, want) || !reflect.DeepEqual(gerr, werr) {
			t.Errorf("%q: readSend %+v (%v), decodeBody %+v (%v)", c.body, got, gerr, want, werr)
		}
	}
}

// BenchmarkSendReading reads a body as pushapi writes it (a uid, 64 bytes
// of data, an idempotency key), without reflection and by encoding/json.
func BenchmarkSendReading(b *testing.B) {
	body := []byte(`{"uid":"u12345","data":"0123456789012345678901234567890123456789012345678901234567890","idempotency_key":"6b1f0e5c9a3d4e2f8a7b6c5d4e3f2a1b"}`)
	for _, r := range []struct {
		name string
		read func([]byte, *SendRequest) *apiError
	}{
		{"plain", readSend},
		{"encoding-json", func(body []byte, req *SendRequest) *apiError { return decodeBody(body, req) }},
	} {
		b.Run(r.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var req SendRequest
				if r.read(body, &req) != nil || req.UID == "" {
					b.Fatal("not read")
				}
			}
		})
	}
}
