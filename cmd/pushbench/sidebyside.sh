#!/usr/bin/env bash
# The hub side by side with its peers in one run: this checkout's Caddy, the
# Workerman recipe and, when CENTRIFUGO_BIN is set, Centrifugo (memory and
# Redis engines), over ws and wss, through the same pushbench phases, one
# after the other, N rounds each (interleaved), then one markdown table of
# medians with hub / peer ratios. It is compare.sh with a fixed set of
# servers and phases. Usage, from the repository root:
#
#   RECIPE_DIR=/path/to/peers/recipe [CENTRIFUGO_BIN=/path/to/centrifugo] \
#       cmd/pushbench/sidebyside.sh [-rounds N] [-n N] [-with "hub recipe ..."] [name] [-- pushbench flags]
#
# -with picks among hub recipe hub-wss recipe-wss hub-jwt centrifugo
# centrifugo-redis (default: all but hub-jwt, the hub with HS256 logins; the
# centrifugo ones only with CENTRIFUGO_BIN set).
# -rounds defaults to 2, -n to 19000, name to "side". centrifugo-redis runs two
# nodes on one Redis and reports Redis's commands and CPU per push.
#
# The phases: connect + login; idle memory 3 s after the burst and its peak
# (VmHWM); unicast by client publishing at 2,000/s and 10,000/s (the API for
# Centrifugo, whose clients cannot publish to another user); the highest
# client-publishing rate with p99 under 10 ms (steps of 10 s; rounds whose
# maxima differ by more than 10% are flagged); broadcasts published by a
# client ("all:<message>"), the only way the recipe has (the API for
# Centrifugo); a reconnect storm; TLS session resumption over wss. Flags after
# -- are added to pushbench's (e.g. -- -step-duration 20s).
set -euo pipefail
here=$(dirname "$0")
rounds=2
n=19000
with="hub recipe hub-wss recipe-wss"
[ -n "${CENTRIFUGO_BIN:-}" ] && with+=" centrifugo centrifugo-redis"
while (($#)); do
	case $1 in
	-rounds) rounds=$2; shift 2 ;;
	-n) n=$2; shift 2 ;;
	-with) with=$2; shift 2 ;;
	-h | -help | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	--) break ;;
	-*) echo "unknown option $1" >&2; exit 2 ;;
	*) name=$1; shift ;;
	esac
done
[ "${1:-}" = "--" ] && shift
name=${name:-side}

declare -A spec=(
	[hub]=build
	[recipe]=recipe
	[hub-wss]=build,wss
	[recipe-wss]=recipe,wss
	[hub-jwt]=build,jwt
	[centrifugo]=centrifugo
	[centrifugo-redis]=centrifugo,redis,nodes=2
)
servers=()
for w in $with; do
	[ -n "${spec[$w]:-}" ] || { echo "-with: unknown server $w (want ${!spec[*]})" >&2; exit 2; }
	servers+=("$w=${spec[$w]}")
done
ratios=
has() { [[ " $with " == *" $1 "* ]]; }
has hub && has recipe && ratios+=" hub/recipe"
has hub-wss && has recipe-wss && ratios+=" hub-wss/recipe-wss"
has hub && has centrifugo && ratios+=" hub/centrifugo"
has hub && has centrifugo-redis && ratios+=" hub/centrifugo-redis"
has hub && has hub-wss && ratios+=" hub-wss/hub"
has hub-jwt && has recipe && ratios+=" hub-jwt/recipe"

# The recipe can only broadcast through a client; the hub does the same here.
# Centrifugo has no client publishing: pushbench uses its API and says so.
exec "$here/compare.sh" -rounds "$rounds" ${ratios:+-ratios "$ratios"} "$name" "${servers[@]}" -- \
	-n "$n" -phases connect,idle,unicast,broadcast,storm,resume-tls \
	-rate 2000,10000 -duration 10s -find-max -find-max-path client -step-duration 10s \
	-broadcasts 30 -broadcast-via client -timeout 30m "$@"
