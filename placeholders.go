package pushhub

import (
	"fmt"

	"github.com/caddyserver/caddy/v2"
)

// expandRequired expands the placeholders (such as {env.PUSH_API_KEY}) of
// a value the configuration sets and needs: one that is empty once
// expanded, an unset environment variable most likely, is an error that
// begins with what (such as "push_api: the key").
func expandRequired(what, value string) (string, error) {
	v := caddy.NewReplacer().ReplaceKnown(value, "")
	if v == "" {
		return "", fmt.Errorf("%s %q is empty once expanded (is the environment variable set?)", what, value)
	}
	return v, nil
}
