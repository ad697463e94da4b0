#!/usr/bin/env bash
# Runs the same pushbench phases against several Caddy builds, one after the
# other, each on a freshly started server with bench.Caddyfile, and prints
# their figures side by side with each one's ratio to the first. Usage, from
# the repository root:
#
#   cmd/pushbench/compare.sh <name> <label>=<caddy binary> [<label>=<caddy binary>...] -- [pushbench flags...]
#
# e.g. cmd/pushbench/compare.sh seams before=/tmp/caddy-before after=build -- \
#          -ws ws://127.0.0.1:28080/ws-text -n 19000 -protocol text -phases connect,idle,broadcast,group,api
#
# "build" stands for this checkout's ./cmd/caddy, built first. Results:
# $OUT/<name>-<label>.json per server and $OUT/<name>.md, the table.
set -euo pipefail
cd "$(dirname "$0")/../.."
name=$1
shift
OUT=${OUT:-/tmp/pushbench-results}
export PUSHBENCH_DATA=${PUSHBENCH_DATA:-/tmp/pushbench-data}
mkdir -p "$OUT"
servers=()
while (($#)) && [ "$1" != "--" ]; do
	servers+=("$1")
	shift
done
[ "${1:-}" = "--" ] && shift
((${#servers[@]})) || { echo "no servers given" >&2; exit 2; }
go build -o "$OUT/pushbench" ./cmd/pushbench

labels=()
for s in "${servers[@]}"; do
	label=${s%%=*}
	bin=${s#*=}
	if [ "$bin" = build ]; then
		bin="$OUT/caddy-$name-$label"
		go build -o "$bin" ./cmd/caddy
	fi
	labels+=("$label")
	"$bin" run --config cmd/pushbench/bench.Caddyfile --adapter caddyfile >"$OUT/$name-$label.caddy.log" 2>&1 &
	pid=$!
	for _ in $(seq 100); do
		curl -sf -o /dev/null http://127.0.0.1:27070/stats && break
		sleep 0.2
	done
	echo "== $label ($bin), load before: $(cut -d' ' -f1-3 /proc/loadavg)"
	"$OUT/pushbench" -api http://127.0.0.1:27070 -pid "$pid" -json-out "$OUT/$name-$label.json" "$@" | tee "$OUT/$name-$label.txt"
	kill "$pid"
	wait "$pid" 2>/dev/null || true
	sleep 2
done

# The table: one row per figure, one column per server, then ratios.
figures=(
	"server CPU per connect + login (µs)|.connect.server_cpu_per_conn_us"
	"connects per second|.connect.conns_per_s"
	"RSS per idle connection (bytes)|.idle.rss_per_conn_bytes"
	"goroutines per idle connection|.idle.goroutines_per_conn"
	"idle server CPU per connection (µs/s)|.idle.server_cpu_per_conn_us_per_s"
	"unicast p50 (ms)|(.unicast // [])[0].latency.p50_ms"
	"unicast p99 (ms)|(.unicast // [])[0].latency.p99_ms"
	"server CPU per unicast message (µs)|(.unicast // [])[0].server_cpu_per_msg_us"
	"highest unicast rate with p99 under the bound (/s)|(.find_max // [])[0].best_rate"
	"broadcast, time to the last copy p50 (ms)|.broadcast.time_to_last.p50_ms"
	"broadcast, time to the last copy p99 (ms)|.broadcast.time_to_last.p99_ms"
	"server CPU per broadcast copy (µs)|.broadcast.server_cpu_per_delivery_us"
	"group push, time to the last copy p50 (ms)|.group.time_to_last.p50_ms"
	"group push, time to the last copy p99 (ms)|.group.time_to_last.p99_ms"
	"single API pushes per second|.api.single.calls_per_s"
	"batched API messages per second|.api.batched.msg_per_s"
)
{
	printf '| figure |'
	for l in "${labels[@]}"; do printf ' %s |' "$l"; done
	for l in "${labels[@]:1}"; do printf ' %s / %s |' "$l" "${labels[0]}"; done
	printf '\n|---|'
	for _ in "${labels[@]}" "${labels[@]:1}"; do printf -- '---|'; done
	printf '\n'
	for f in "${figures[@]}"; do
		title=${f%%|*}
		expr=${f#*|}
		vals=()
		for l in "${labels[@]}"; do
			vals+=("$(jq -r "($expr) // \"\" | if type == \"number\" then (. * 100 | round / 100) else . end" "$OUT/$name-$l.json")")
		done
		[ -z "$(printf '%s' "${vals[@]}")" ] && continue
		printf '| %s |' "$title"
		for v in "${vals[@]}"; do printf ' %s |' "${v:--}"; done
		for v in "${vals[@]:1}"; do
			if [ -n "$v" ] && [ -n "${vals[0]}" ]; then
				printf ' %s |' "$(jq -n "if $v == 0 or ${vals[0]} == 0 then \"-\" else ($v / ${vals[0]} * 100 | round / 100) end" -r)"
			else
				printf ' - |'
			fi
		done
		printf '\n'
	done
} | tee "$OUT/$name.md"
