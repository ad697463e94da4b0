package pushhub

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddytest"
)

// caddyfileCase is one push_hub or push_api block: what it parses to, or
// the error it must give and a token that error must mention.
type caddyfileCase struct {
	name    string
	input   string
	want    any    // *Handler or *API
	wantErr string // "" when the block is valid; else a substring of the error
}

func TestCaddyfileHandler(t *testing.T) {
	cases := []caddyfileCase{
		{
			name:  "empty block",
			input: `push_hub`,
			want:  &Handler{},
		},
		{
			name:  "empty braces",
			input: "push_hub {\n}",
			want:  &Handler{},
		},
		{
			name: "every subdirective",
			input: `push_hub {
				hub chat
				protocol text
				auth first_message
				origins https://app.example.com https://admin.example.com
				origins http://localhost:3000
				ping_interval 20s
				pong_timeout 5s
				write_timeout 3s
				auth_timeout 1m
				max_message_size 64KiB
				send_queue 32
				max_connections_per_uid 4
				max_uid_length 64
				allow_client_publish
				allow_client_groups
				history 100 2m 32MiB
				rate_limit 50 120
				reconnect_jitter 3s
			}`,
			want: &Handler{
				Hub:                  "chat",
				Protocol:             "text",
				Auth:                 &Auth{Mode: AuthFirstMessage},
				Origins:              []string{"https://app.example.com", "https://admin.example.com", "http://localhost:3000"},
				PingInterval:         caddy.Duration(20 * time.Second),
				PongTimeout:          caddy.Duration(5 * time.Second),
				WriteTimeout:         caddy.Duration(3 * time.Second),
				AuthTimeout:          caddy.Duration(time.Minute),
				MaxMessageSize:       64 << 10,
				SendQueue:            32,
				MaxConnectionsPerUID: 4,
				MaxUIDLength:         64,
				AllowClientPublish:   true,
				AllowClientGroups:    true,
				HistorySize:          100,
				HistoryTTL:           caddy.Duration(2 * time.Minute),
				HistoryMaxBytes:      32 << 20,
				RateLimit:            50,
				RateBurst:            120,
				ReconnectJitter:      caddy.Duration(3 * time.Second),
			},
		},
		{
			name:  "history without a max size",
			input: "push_hub {\nhistory 10 30s\n}",
			want:  &Handler{HistorySize: 10, HistoryTTL: caddy.Duration(30 * time.Second)},
		},
		{
			name:  "fractional rate_limit without a burst",
			input: "push_hub {\nrate_limit 0.5\n}",
			want:  &Handler{RateLimit: 0.5},
		},
		{
			name:  "protocol json",
			input: "push_hub {\nprotocol json\n}",
			want:  &Handler{Protocol: "json"},
		},
		{
			name:  "sizes in plain bytes and SI units",
			input: "push_hub {\nmax_message_size 1000\n}",
			want:  &Handler{MaxMessageSize: 1000},
		},
		{
			name:  "size with SI suffix",
			input: "push_hub {\nmax_message_size 1MB\n}",
			want:  &Handler{MaxMessageSize: 1000 * 1000},
		},
		{
			name:  "duration in days",
			input: "push_hub {\nauth_timeout 1d\n}",
			want:  &Handler{AuthTimeout: caddy.Duration(24 * time.Hour)},
		},
		{
			name:  "auth jwt with a secret",
			input: "push_hub {\nauth jwt {env.PUSH_JWT_SECRET}\n}",
			want:  &Handler{Auth: &Auth{Mode: AuthJWT, Secret: "{env.PUSH_JWT_SECRET}"}},
		},
		{
			name: "auth jwt with a block",
			input: `push_hub {
				auth jwt s3cr3t-s3cr3t-s3cr3t {
					uid_claim user_id
					issuer https://auth.example.com
					audience push
				}
				protocol json
			}`,
			want: &Handler{
				Protocol: "json",
				Auth: &Auth{
					Mode:     AuthJWT,
					Secret:   "s3cr3t-s3cr3t-s3cr3t",
					UIDClaim: "user_id",
					Issuer:   "https://auth.example.com",
					Audience: "push",
				},
			},
		},
		{
			name:  "auth jwt_key",
			input: "push_hub {\nauth jwt_key /etc/push/jwt.pem\n}",
			want:  &Handler{Auth: &Auth{Mode: AuthJWT, KeyFile: "/etc/push/jwt.pem"}},
		},
		{
			name: "auth jwt_key with a block",
			input: `push_hub {
				auth jwt_key /etc/push/jwt.pem {
					uid_claim sub
					issuer iss
				}
			}`,
			want: &Handler{Auth: &Auth{Mode: AuthJWT, KeyFile: "/etc/push/jwt.pem", UIDClaim: "sub", Issuer: "iss"}},
		},
		{
			name:  "auth placeholder",
			input: "push_hub {\nauth placeholder {http.auth.user.id}\n}",
			want:  &Handler{Auth: &Auth{Mode: AuthPlaceholder, Placeholder: "{http.auth.user.id}"}},
		},
		{
			name:  "auth first_message",
			input: "push_hub {\nauth first_message\n}",
			want:  &Handler{Auth: &Auth{Mode: AuthFirstMessage}},
		},

		// Errors.
		{name: "argument on the directive", input: `push_hub /ws`, wantErr: `'/ws'`},
		{name: "unknown subdirective", input: "push_hub {\nhistroy 10\n}", wantErr: `unrecognized subdirective histroy`},
		{name: "hub without a name", input: "push_hub {\nhub\n}", wantErr: `'hub'`},
		{name: "hub with two names", input: "push_hub {\nhub a b\n}", wantErr: `'b'`},
		{name: "protocol missing", input: "push_hub {\nprotocol\n}", wantErr: `'protocol'`},
		{name: "bad protocol", input: "push_hub {\nprotocol xml\n}", wantErr: `"xml"`},
		{name: "protocol with two values", input: "push_hub {\nprotocol json text\n}", wantErr: `'text'`},
		{name: "origins without a value", input: "push_hub {\norigins\n}", wantErr: `'origins'`},
		{name: "bad duration", input: "push_hub {\nping_interval soon\n}", wantErr: `"soon"`},
		{name: "zero duration", input: "push_hub {\npong_timeout 0s\n}", wantErr: `0s`},
		{name: "negative duration", input: "push_hub {\nwrite_timeout -5s\n}", wantErr: `-5s`},
		{name: "duration missing", input: "push_hub {\nauth_timeout\n}", wantErr: `'auth_timeout'`},
		{name: "duration with two values", input: "push_hub {\nauth_timeout 1s 2s\n}", wantErr: `'2s'`},
		{name: "bad size", input: "push_hub {\nmax_message_size lots\n}", wantErr: `"lots"`},
		{name: "zero size", input: "push_hub {\nmax_message_size 0\n}", wantErr: `"0"`},
		{name: "huge size", input: "push_hub {\nmax_message_size 2TiB\n}", wantErr: `"2TiB"`},
		{name: "bad number", input: "push_hub {\nsend_queue ten\n}", wantErr: `"ten"`},
		{name: "negative number", input: "push_hub {\nmax_connections_per_uid -1\n}", wantErr: `"-1"`},
		{name: "zero number", input: "push_hub {\nmax_uid_length 0\n}", wantErr: `"0"`},
		{name: "fractional number", input: "push_hub {\nsend_queue 1.5\n}", wantErr: `"1.5"`},
		{name: "history without a ttl", input: "push_hub {\nhistory 100\n}", wantErr: `'100'`},
		{name: "history with too many args", input: "push_hub {\nhistory 100 2m 1MiB 5\n}", wantErr: `'5'`},
		{name: "history bad size", input: "push_hub {\nhistory lots 2m\n}", wantErr: `"lots"`},
		{name: "history zero size", input: "push_hub {\nhistory 0 2m\n}", wantErr: `"0"`},
		{name: "history too big", input: "push_hub {\nhistory 100001 2m\n}", wantErr: `"100001"`},
		{name: "history bad ttl", input: "push_hub {\nhistory 100 forever\n}", wantErr: `"forever"`},
		{name: "history zero ttl", input: "push_hub {\nhistory 100 0s\n}", wantErr: `"0s"`},
		{name: "history bad max size", input: "push_hub {\nhistory 100 2m huge\n}", wantErr: `"huge"`},
		{name: "rate_limit missing", input: "push_hub {\nrate_limit\n}", wantErr: `'rate_limit'`},
		{name: "rate_limit bad rate", input: "push_hub {\nrate_limit fast\n}", wantErr: `"fast"`},
		{name: "rate_limit zero", input: "push_hub {\nrate_limit 0\n}", wantErr: `"0"`},
		{name: "rate_limit bad burst", input: "push_hub {\nrate_limit 10 -3\n}", wantErr: `"-3"`},
		{name: "rate_limit too many args", input: "push_hub {\nrate_limit 10 20 30\n}", wantErr: `'30'`},
		{name: "reconnect_jitter bad", input: "push_hub {\nreconnect_jitter often\n}", wantErr: `"often"`},
		{name: "flag with an argument", input: "push_hub {\nallow_client_publish yes\n}", wantErr: `'yes'`},
		{name: "other flag with an argument", input: "push_hub {\nallow_client_groups no\n}", wantErr: `'no'`},
		{name: "auth without a mode", input: "push_hub {\nauth\n}", wantErr: `'auth'`},
		{name: "unknown auth mode", input: "push_hub {\nauth magic\n}", wantErr: `"magic"`},
		{name: "auth jwt without a secret", input: "push_hub {\nauth jwt\n}", wantErr: `secret`},
		{name: "auth jwt_key without a file", input: "push_hub {\nauth jwt_key\n}", wantErr: `public key file`},
		{name: "auth jwt with two secrets", input: "push_hub {\nauth jwt one two\n}", wantErr: `'two'`},
		{
			name:    "auth jwt block with an unknown subdirective",
			input:   "push_hub {\nauth jwt secret {\nsubject x\n}\n}",
			wantErr: "unrecognized auth subdirective subject",
		},
		{name: "uid_claim without a value", input: "push_hub {\nauth jwt secret {\nuid_claim\n}\n}", wantErr: `'uid_claim'`},
		{name: "issuer with two values", input: "push_hub {\nauth jwt secret {\nissuer a b\n}\n}", wantErr: `'b'`},
		{name: "auth placeholder without a placeholder", input: "push_hub {\nauth placeholder\n}", wantErr: `'placeholder'`},
		{name: "auth placeholder with two", input: "push_hub {\nauth placeholder {a} {b}\n}", wantErr: `'{b}'`},
		{name: "auth first_message with an argument", input: "push_hub {\nauth first_message alice\n}", wantErr: `'alice'`},
		{name: "events without a URL", input: "push_hub {\nevents\n}", wantErr: `'events'`},
		{name: "unknown events subdirective", input: "push_hub {\nevents http://app {\nsecrets x\n}\n}", wantErr: "unrecognized events subdirective secrets"},
		{name: "events kinds empty", input: "push_hub {\nevents http://app {\nkinds\n}\n}", wantErr: `'kinds'`},
		{name: "login_hook without a URL", input: "push_hub {\nlogin_hook\n}", wantErr: `'login_hook'`},
		{name: "unknown login_hook subdirective", input: "push_hub {\nlogin_hook http://app {\nretries 3\n}\n}", wantErr: "unrecognized login_hook subdirective retries"},
		{name: "cluster without a URL", input: "push_hub {\ncluster\n}", wantErr: "needs a Redis URL"},
		{name: "unknown cluster subdirective", input: "push_hub {\ncluster redis://h:6379 {\nttl 3s\n}\n}", wantErr: "unrecognized cluster subdirective ttl"},
		{name: "max_groups_per_uid zero", input: "push_hub {\nmax_groups_per_uid 0\n}", wantErr: `"0"`},
		{name: "max_stored_per_client bad", input: "push_hub {\nmax_stored_per_client lots\n}", wantErr: `"lots"`},
		{
			name:    "auth first_message with a block",
			input:   "push_hub {\nauth first_message {\nuid_claim sub\n}\n}",
			wantErr: "{",
		},
	}
	runCaddyfileCases(t, cases, func() caddyfile.Unmarshaler { return &Handler{} })
}

func TestCaddyfileAPI(t *testing.T) {
	cases := []caddyfileCase{
		{name: "empty", input: `push_api`, want: &API{}},
		{
			name: "every subdirective",
			input: `push_api {
				hub chat
				key {env.PUSH_API_KEY}
				max_body_size 256KiB
			}`,
			want: &API{Hub: "chat", Key: "{env.PUSH_API_KEY}", MaxBodySize: 256 << 10},
		},
		{name: "argument on the directive", input: `push_api /push`, wantErr: `'/push'`},
		{name: "unknown subdirective", input: "push_api {\nkeys a\n}", wantErr: `unrecognized subdirective keys`},
		{name: "key missing", input: "push_api {\nkey\n}", wantErr: `'key'`},
		{name: "key with two values", input: "push_api {\nkey a b\n}", wantErr: `'b'`},
		{name: "hub with two values", input: "push_api {\nhub a b\n}", wantErr: `'b'`},
		{name: "bad size", input: "push_api {\nmax_body_size big\n}", wantErr: `"big"`},
		{name: "size missing", input: "push_api {\nmax_body_size\n}", wantErr: `'max_body_size'`},
		{name: "idempotency window missing", input: "push_api {\nidempotency_window\n}", wantErr: `'idempotency_window'`},
	}
	runCaddyfileCases(t, cases, func() caddyfile.Unmarshaler { return &API{} })
}

func runCaddyfileCases(t *testing.T, cases []caddyfileCase, fresh func() caddyfile.Unmarshaler) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := fresh()
			err := got.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.input))
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("no error for %q; parsed to %+v", tc.input, got)
				}
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %q does not mention %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("parsed\n%+v\nwant\n%+v", got, tc.want)
			}
		})
	}
}

// provisionCtx is a bare Caddy context, as a module gets one outside a
// running config.
func provisionCtx(t *testing.T) caddy.Context {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	return ctx
}

func TestProvisionHandlerErrors(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "missing.pem")
	cases := []struct {
		name    string
		h       Handler
		wantErr string
	}{
		{"missing auth", Handler{}, "auth mode"},
		{"empty env secret", Handler{Auth: &Auth{Mode: AuthJWT, Secret: "{env.NOPE_NOT_SET}"}}, "{env.NOPE_NOT_SET}"},
		{"secret and key file", Handler{Auth: &Auth{Mode: AuthJWT, Secret: "0123456789abcdef0123", KeyFile: keyFile}}, "not both"},
		{"jwt without a key", Handler{Auth: &Auth{Mode: AuthJWT}}, "required"},
		{"short secret", Handler{Auth: &Auth{Mode: AuthJWT, Secret: "short"}}, "short"},
		{"missing key file", Handler{Auth: &Auth{Mode: AuthJWT, KeyFile: keyFile}}, "missing.pem"},
		{"placeholder without a placeholder", Handler{Auth: &Auth{Mode: AuthPlaceholder}}, "placeholder"},
		{"unknown auth mode", Handler{Auth: &Auth{Mode: "magic"}}, `"magic"`},
		{"unknown protocol", Handler{Protocol: "xml", Auth: &Auth{Mode: AuthFirstMessage}}, `"xml"`},
		{"bad origin", Handler{Auth: &Auth{Mode: AuthFirstMessage}, Origins: []string{"app.example.com"}}, "app.example.com"},
		{"cluster without a URL", Handler{Auth: &Auth{Mode: AuthFirstMessage}, Cluster: &Cluster{}}, "a Redis URL is required"},
		{"cluster with a bad URL", Handler{Auth: &Auth{Mode: AuthFirstMessage}, Cluster: &Cluster{URLs: []string{"http://x"}}}, "http://x"},
		{"cluster with an empty env URL", Handler{Auth: &Auth{Mode: AuthFirstMessage}, Cluster: &Cluster{URLs: []string{"{env.NOPE_NOT_SET}"}}}, "{env.NOPE_NOT_SET}"},
		{"cluster lease too short", Handler{Auth: &Auth{Mode: AuthFirstMessage}, Cluster: &Cluster{URLs: []string{"redis://h:6379"}, Lease: caddy.Duration(time.Millisecond)}}, "lease"},
		{"events without a URL", Handler{Auth: &Auth{Mode: AuthFirstMessage}, Events: &Events{}}, "events"},
		{"events of an unknown kind", Handler{Auth: &Auth{Mode: AuthFirstMessage}, Events: &Events{URL: "http://app", Kinds: []string{"logout"}}}, `"logout"`},
		{"events text_messages", Handler{Auth: &Auth{Mode: AuthFirstMessage}, Events: &Events{URL: "http://app", TextMessages: "both"}}, `"both"`},
		{"login_hook on_error", Handler{Auth: &Auth{Mode: AuthFirstMessage}, LoginHook: &LoginHook{URL: "http://app", OnError: "maybe"}}, `"maybe"`},
		{"login_hook URL", Handler{Auth: &Auth{Mode: AuthFirstMessage}, LoginHook: &LoginHook{URL: "ftp://app"}}, "ftp://app"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := tc.h
			h.Hub = "provision-test"
			err := h.Provision(provisionCtx(t))
			// Cleanup runs after a failed Provision too, and must not fail.
			if cerr := h.Cleanup(); cerr != nil {
				t.Errorf("Cleanup after a failed Provision: %v", cerr)
			}
			if err == nil {
				t.Fatalf("Provision accepted %+v", tc.h)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %q does not mention %q", err, tc.wantErr)
			}
		})
	}
}

func TestProvisionHandlerExpandsEnvSecret(t *testing.T) {
	t.Setenv("PUSHHUB_TEST_JWT_SECRET", "0123456789abcdef0123456789abcdef")
	h := Handler{Hub: "provision-test-ok", Auth: &Auth{Mode: AuthJWT, Secret: "{env.PUSHHUB_TEST_JWT_SECRET}"}}
	if err := h.provisionAuth(); err != nil {
		t.Fatalf("provisionAuth: %v", err)
	}
	if h.verifier == nil {
		t.Fatal("provisionAuth left no verifier")
	}
}

func TestProvisionHandlerKeyFiles(t *testing.T) {
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	pubFile, privFile := filepath.Join(dir, "pub.pem"), filepath.Join(dir, "priv.pem")
	if err := os.WriteFile(pubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(privFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: priv}), 0o600); err != nil {
		t.Fatal(err)
	}

	ok := Handler{Hub: "provision-test-key", Auth: &Auth{Mode: AuthJWT, KeyFile: pubFile}}
	if err := ok.provisionAuth(); err != nil {
		t.Fatalf("a P-256 public key: %v", err)
	}
	// The hub needs only the public half: a private key is refused.
	bad := Handler{Hub: "provision-test-key", Auth: &Auth{Mode: AuthJWT, KeyFile: privFile}}
	if err := bad.provisionAuth(); err == nil {
		t.Fatal("a private key file was accepted")
	}
}

func TestProvisionHandlerValidate(t *testing.T) {
	cases := []struct {
		name    string
		h       Handler
		wantErr string
	}{
		{"negative send queue", Handler{SendQueue: -1}, "negative"},
		{"negative max message size", Handler{MaxMessageSize: -1}, "negative"},
		{"negative duration", Handler{PingInterval: caddy.Duration(-time.Second)}, "negative"},
		{"uid length too big", Handler{MaxUIDLength: 5000}, "max_uid_length"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.h.Validate()
			if err == nil {
				t.Fatalf("Validate accepted %+v", tc.h)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %q does not mention %q", err, tc.wantErr)
			}
		})
	}
	if err := (&Handler{}).Validate(); err != nil {
		t.Fatalf("Validate refused the zero handler: %v", err)
	}
}

func TestProvisionAPIErrors(t *testing.T) {
	a := API{Hub: "provision-test", Key: "{env.NOPE_NOT_SET}"}
	err := a.Provision(provisionCtx(t))
	if cerr := a.Cleanup(); cerr != nil {
		t.Errorf("Cleanup after a failed Provision: %v", cerr)
	}
	if err == nil || !strings.Contains(err.Error(), "{env.NOPE_NOT_SET}") {
		t.Fatalf("Provision with an empty env key: error %v, want one naming the placeholder", err)
	}
	if err := (&API{MaxBodySize: -1}).Validate(); err == nil || !strings.Contains(err.Error(), "max_body_size") {
		t.Fatalf("Validate with a negative max_body_size: %v", err)
	}
}

// TestCaddyfileAdapt checks testdata/caddyfile_adapt/*.caddyfiletest, in
// Caddy's own format: a Caddyfile, a line of dashes, and either the JSON it
// adapts to or a part of the error it must give.
func TestCaddyfileAdapt(t *testing.T) {
	// The example's site address comes from the environment; adapt it with
	// the default.
	t.Setenv("SITE_ADDRESS", "")
	os.Unsetenv("SITE_ADDRESS")

	files, err := filepath.Glob(filepath.Join("testdata", "caddyfile_adapt", "*.caddyfiletest"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no testdata/caddyfile_adapt/*.caddyfiletest files")
	}
	newlines := regexp.MustCompile(`\r?\n`)
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			parts := strings.Split(string(data), "----------")
			if len(parts) != 2 {
				t.Fatalf("%s: want a Caddyfile, a line of dashes and the expected JSON", file)
			}
			input := strings.TrimSpace(parts[0]) + "\n"
			expected := newlines.ReplaceAllString(strings.TrimSpace(parts[1]), "\n")
			if !strings.HasPrefix(expected, "{") {
				adaptErr := adaptCaddyfile(input)
				if adaptErr == nil || !strings.Contains(adaptErr.Error(), expected) {
					t.Fatalf("adapting %s: error %v, want one containing %q", file, adaptErr, expected)
				}
				return
			}
			if !caddytest.CompareAdapt(t, file, input, "caddyfile", expected) {
				t.Errorf("%s does not adapt to its expected JSON (diff above)", file)
			}
		})
	}
}

// TestCaddyfileExampleAdapts: the Caddyfile.example users start from (its
// frozen copy is a golden file above) adapts as it is today, with both
// directives in it.
func TestCaddyfileExampleAdapts(t *testing.T) {
	t.Setenv("SITE_ADDRESS", "")
	os.Unsetenv("SITE_ADDRESS")
	input, err := os.ReadFile("Caddyfile.example")
	if err != nil {
		t.Fatal(err)
	}
	out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt(input, nil)
	if err != nil {
		t.Fatalf("Caddyfile.example does not adapt: %v", err)
	}
	for _, handler := range []string{`"handler":"push_hub"`, `"handler":"push_api"`} {
		if !strings.Contains(string(out), handler) {
			t.Errorf("the adapted example has no %s:\n%s", handler, out)
		}
	}
}

func adaptCaddyfile(input string) error {
	_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(input), nil)
	return err
}
