#!/usr/bin/env bash
# Runs pushbench against a freshly started server (so its RSS baseline is
# clean) and stops the server after. Usage, from the repository root:
#
#   cmd/pushbench/bench.sh <name> [pushbench flags...]
#
# e.g. cmd/pushbench/bench.sh text-19000 -ws ws://127.0.0.1:28080/ws-text -n 19000 -protocol text -find-max
# Results: $OUT/<name>.txt (the table) and $OUT/<name>.json (the JSON line).
set -euo pipefail
cd "$(dirname "$0")/../.."
name=$1
shift
OUT=${OUT:-/tmp/pushbench-results}
export PUSHBENCH_DATA=${PUSHBENCH_DATA:-/tmp/pushbench-data}
mkdir -p "$OUT"
go build -o "$OUT/caddy" ./cmd/caddy
go build -o "$OUT/pushbench" ./cmd/pushbench

"$OUT/caddy" run --config cmd/pushbench/bench.Caddyfile --adapter caddyfile >"$OUT/$name.caddy.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 50); do
	curl -sf -o /dev/null http://127.0.0.1:27070/stats && break
	sleep 0.2
done
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
"$OUT/pushbench" -api http://127.0.0.1:27070 -pid "$pid" -json-out "$OUT/$name.json" "$@" | tee "$OUT/$name.txt"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
