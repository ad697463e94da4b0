package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/pushhub/caddy-pushhub/hub"
)

// LoginConfig says where to ask about logins and what to do when the
// application cannot answer.
type LoginConfig struct {
	URL     string
	Secret  string        // HMAC key of SignatureHeader; "" sends unsigned requests
	Timeout time.Duration // of one request. Default: 3s.
	// AllowOnError lets a login in when the application cannot answer (down,
	// slow, or an answer that is not one); by default it is refused.
	AllowOnError bool
	Client       *http.Client // default: a client of its own
}

// Login asks the application about each login: a POST of the uid, the
// connection, the token's claims and the request's headers the
// configuration names, answered {"allow": bool, "reason": "...",
// "groups": [...]}.
type Login struct {
	cfg LoginConfig
}

// NewLogin makes a login hook.
func NewLogin(cfg LoginConfig) *Login {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 3 * time.Second
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{}
	}
	return &Login{cfg: cfg}
}

type loginRequest struct {
	UID      string            `json:"uid"`
	ConnID   string            `json:"conn_id"`
	Remote   string            `json:"remote"`
	Protocol string            `json:"protocol"`
	Claims   map[string]any    `json:"claims,omitempty"`
	Headers  map[string]string `json:"headers,omitempty"`
}

type loginAnswer struct {
	Allow  *bool    `json:"allow"`
	Reason string   `json:"reason,omitempty"`
	Groups []string `json:"groups,omitempty"`
}

// errNoDecision is an answer without "allow".
var errNoDecision = errors.New(`the application's answer has no "allow"`)

// Check asks the application. When it cannot answer, the answer is the
// configured policy's, and err says why.
func (l *Login) Check(ctx context.Context, req hub.LoginRequest) (hub.LoginAnswer, error) {
	body, err := json.Marshal(loginRequest{req.UID, req.ConnID, req.Remote, req.Protocol, req.Claims, req.Headers})
	if err != nil {
		return l.onError(err)
	}
	var a loginAnswer
	if err := post(ctx, l.cfg.Client, l.cfg.URL, l.cfg.Secret, newID(), body, l.cfg.Timeout, &a); err != nil {
		return l.onError(err)
	}
	if a.Allow == nil {
		return l.onError(errNoDecision)
	}
	return hub.LoginAnswer{Allow: *a.Allow, Reason: a.Reason, Groups: a.Groups}, nil
}

func (l *Login) onError(err error) (hub.LoginAnswer, error) {
	if l.cfg.AllowOnError {
		return hub.LoginAnswer{Allow: true}, err
	}
	return hub.LoginAnswer{Reason: "the application could not be asked about this login"}, err
}

var _ hub.LoginHook = (*Login)(nil)
