#!/bin/sh
# push.sh: push a message to a uid through push_api, with curl.
# Run: PUSH_API_KEY=<key> sh push.sh alice "hello from the shell"
# PUSH_API_URL defaults to http://127.0.0.1:7070 (the push_api site of Caddyfile.example).
set -eu
[ $# -eq 2 ] || { echo "usage: push.sh <uid> <message>" >&2; exit 2; }
json() { printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g')"; } # a JSON string (no control characters)
curl -sS --fail-with-body \
	-H "Authorization: Bearer ${PUSH_API_KEY:-}" \
	-H "Content-Type: application/json" \
	-d "{\"uid\": $(json "$1"), \"data\": $(json "$2")}" \
	"${PUSH_API_URL:-http://127.0.0.1:7070}/send"
