#!/usr/bin/env bash
# Runs the same pushbench phases against several servers — Caddy builds, the
# Workerman recipe, Centrifugo — one after the other, each freshly started,
# for one or more rounds, and prints their figures side by side: the median
# over the rounds of each, then ratios. Usage, from the repository root:
#
#   cmd/pushbench/compare.sh [-rounds N] [-retries N] [-ratios "a/b c/d"] <name> \
#       <label>=<server>[,<option>...] ... -- [pushbench flags...]
#
# Servers and their options:
#   build | <caddy binary>   Caddy (build: this checkout's ./cmd/caddy, built first) with
#                            bench.Caddyfile; the text protocol over ws by default.
#                            Options: wss (Caddy's local CA), json, jwt (HS256 logins),
#                            three-ports (bench3.Caddyfile: one hub on three ports, each with
#                            its own push_api; pushbench's cluster mode against it),
#                            nodes=<k> (k Caddy instances with cluster.Caddyfile, one hub on
#                            the Redis at $PUSHBENCH_CLUSTER, on consecutive ports),
#                            cluster (the same with one instance).
#   recipe                   the Workerman recipe, started and stopped through
#                            $RECIPE_DIR/start.sh and stop.sh. Option: wss.
#   centrifugo               $CENTRIFUGO_BIN with a configuration this script writes.
#                            Options: redis (its Redis engine, at $CENTRIFUGO_REDIS),
#                            nodes=<k> (k nodes on consecutive ports).
#   Every Go server (Caddy, Centrifugo) also takes procs=<n>: each of its
#   processes runs with GOMAXPROCS=n (by default Go runs as many threads as
#   the machine has cores, in each process: several nodes on one machine
#   then contend for the cores with more threads than there are).
#
# e.g. cmd/pushbench/compare.sh seams before=/tmp/caddy-before after=build -- \
#          -n 19000 -phases connect,idle,broadcast,group,api
#      RECIPE_DIR=/path/to/peers/recipe cmd/pushbench/compare.sh -rounds 2 side \
#          hub=build recipe=recipe -- -n 19000 -phases connect,idle,broadcast,storm
#
# The pushbench flags after -- come after those this script gives each server
# (-target, -ws, -api, -pid, ...), so they override them; in a run of several
# kinds of server leave -ws, -api and -protocol to the script.
#
# Even rounds run the servers in the reverse order (a, b, then b, a), which
# cancels in the medians the drift of a shared machine between consecutive
# runs.
#
# Before each server the script waits (up to $QUIET_WAIT seconds, default
# 600) until other processes use less than $QUIET_CORES cores (default 0.25);
# pushbench runs with -quiet-wait 60s -redo 2 (it waits for quiet before each
# measured run, and measures a disturbed one again); a server whose run still
# has a phase pushbench marks DISTURBED is run again, up to -retries times
# (default 1, or $RETRIES).
#
# Environment: OUT (results, default /tmp/pushbench-results), PUSHBENCH_DATA
# (Caddy's storage, default /tmp/pushbench-data); Caddy's ports
# PUSHBENCH_WS_PORT, PUSHBENCH_WSS_PORT, PUSHBENCH_API_PORT,
# PUSHBENCH_ADMIN_PORT, PUSHBENCH_WS_PORT1..3, PUSHBENCH_API_PORT1..3 (see the
# Caddyfiles; keep them below the ephemeral range, 32768), PUSHBENCH_CLUSTER
# (default redis://127.0.0.1:6379/0; keys under pushbench-<label>); the recipe's
# RECIPE_DIR, RECIPE_LISTEN (default websocket://127.0.0.1:8181),
# RECIPE_CERT, RECIPE_WORKER_PID_FILE; Centrifugo's CENTRIFUGO_BIN,
# CENTRIFUGO_PORT (its first node, default 8000), CENTRIFUGO_REDIS (default
# redis://127.0.0.1:6379), CENTRIFUGO_SECRET, CENTRIFUGO_API_KEY.
#
# Results: $OUT/<name>-<label>.{json,txt} per server (-r2, -r3, ... for later
# rounds) and $OUT/<name>.md, the table. Everything is bounded in count and
# time and stops by itself; the servers this script starts are stopped when
# it exits, also on an error or an interrupt.
set -euo pipefail
cd "$(dirname "$0")/../.."

rounds=1
retries=${RETRIES:-1}
ratios=
while (($#)); do
	case $1 in
	-rounds) rounds=$2; shift 2 ;;
	-retries) retries=$2; shift 2 ;;
	-ratios) ratios=$2; shift 2 ;;
	-h | -help | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	-*) echo "unknown option $1" >&2; exit 2 ;;
	*) break ;;
	esac
done
(($# >= 1)) || { echo "usage: $0 [-rounds N] [-retries N] [-ratios \"a/b ...\"] <name> <label>=<server>... -- [pushbench flags]" >&2; exit 2; }
name=$1
shift
servers=()
while (($#)) && [ "$1" != "--" ]; do
	servers+=("$1")
	shift
done
[ "${1:-}" = "--" ] && shift
((${#servers[@]})) || { echo "no servers given" >&2; exit 2; }
common=("$@")

OUT=${OUT:-/tmp/pushbench-results}
export PUSHBENCH_DATA=${PUSHBENCH_DATA:-/tmp/pushbench-data}
QUIET_WAIT=${QUIET_WAIT:-600}
QUIET_CORES=${QUIET_CORES:-0.25}
ws_port=${PUSHBENCH_WS_PORT:-28080}
wss_port=${PUSHBENCH_WSS_PORT:-28443}
api_port=${PUSHBENCH_API_PORT:-27070}
admin_port=${PUSHBENCH_ADMIN_PORT:-22019}
cluster_url=${PUSHBENCH_CLUSTER:-redis://127.0.0.1:6379/0}
jwt_secret=${PUSHBENCH_JWT_SECRET:-pushhub-bench-hmac-secret-0123456789abcdef}
recipe_listen=${RECIPE_LISTEN:-websocket://127.0.0.1:8181}
recipe_port=${recipe_listen##*:}
cf_port=${CENTRIFUGO_PORT:-8000}
cf_redis=${CENTRIFUGO_REDIS:-redis://127.0.0.1:6379}
cf_secret=${CENTRIFUGO_SECRET:-pushhub-bench-hmac-secret-0123456789abcdef}
cf_key=${CENTRIFUGO_API_KEY:-pushhub-bench-api-key}
mkdir -p "$OUT"
# Every server holds about N connections: raise the open-file limit for them.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# Check every server's prerequisites before the first run.
need_build=
for s in "${servers[@]}"; do
	kind=${s#*=}
	kind=${kind%%,*}
	# Counts must be counts: Go ignores a GOMAXPROCS it cannot read, and the
	# run would measure the default without a word.
	opts=${s#*=}
	for o in ${opts//,/ }; do
		case $o in
		procs=* | nodes=*)
			[[ ${o#*=} =~ ^[1-9][0-9]*$ ]] || { echo "$s: ${o%%=*} wants a whole number from 1, not '${o#*=}'" >&2; exit 2; }
			;;
		esac
	done
	case $kind in
	build) need_build=1 ;;
	recipe)
		if [ -z "${RECIPE_DIR:-}" ] || [ ! -x "$RECIPE_DIR/start.sh" ] || [ ! -x "$RECIPE_DIR/stop.sh" ]; then
			cat >&2 <<-'EOF'
				recipe: set RECIPE_DIR to the folder of the Workerman recipe, built outside the repository
				as ../shared/PEERS.md (next to this checkout) describes: PHP 8.2 with ext-event built from
				its source, Workerman 5.2.2's source, the recipe's server.php listening on $RECIPE_LISTEN
				(count = 1) and server-ssl.php (the same with Workerman's ssl transport and an ECDSA P-256
				certificate for 127.0.0.1, $RECIPE_CERT), and two scripts: start.sh [ws|wss], which starts
				it in the background and writes the worker's pid to $RECIPE_WORKER_PID_FILE (default
				worker.pid there), and stop.sh [ws|wss]. E.g. RECIPE_DIR=/path/to/peers/recipe
			EOF
			exit 2
		fi
		;;
	centrifugo)
		if [ -z "${CENTRIFUGO_BIN:-}" ] || [ ! -x "$CENTRIFUGO_BIN" ]; then
			cat >&2 <<-'EOF'
				centrifugo: set CENTRIFUGO_BIN to a Centrifugo v6 binary, built outside the repository as
				../shared/PEERS.md (next to this checkout) describes: `go build` in a checkout of
				centrifugal/centrifugo v6.9.1 (with a stub for internal/swaggerui/statik.go if the
				snapshot lacks it). E.g. CENTRIFUGO_BIN=/path/to/peers/centrifugo/centrifugo
			EOF
			exit 2
		fi
		;;
	*) [ -x "$kind" ] || { echo "$s: $kind is not build, recipe, centrifugo or an executable Caddy" >&2; exit 2; } ;;
	esac
done

go build -o "$OUT/pushbench" ./cmd/pushbench
caddy_build=$OUT/caddy-$name
if [ -n "$need_build" ]; then
	go build -o "$caddy_build" ./cmd/caddy
fi

# port_busy tells whether something accepts connections on a loopback port.
# Caddy listens with SO_REUSEPORT: started on a busy port it would share the
# other server's connections without a word.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# others_cores is the CPU the whole machine used over 3 seconds, in cores;
# no server of this script runs while it is measured.
others_cores() {
	local a b
	a=$(awk '/^cpu /{print $2+$3+$4+$7+$8+$9}' /proc/stat)
	sleep 3
	b=$(awk '/^cpu /{print $2+$3+$4+$7+$8+$9}' /proc/stat)
	awk -v a="$a" -v b="$b" 'BEGIN{printf "%.2f", (b-a)/100/3}'
}

wait_quiet() {
	local deadline=$((SECONDS + QUIET_WAIT)) c
	while :; do
		c=$(others_cores)
		if awk -v c="$c" -v q="$QUIET_CORES" 'BEGIN{exit !(c < q)}'; then
			echo "   machine quiet: $c cores busy"
			return
		fi
		if ((SECONDS >= deadline)); then
			echo "   warning: the machine is still busy ($c cores) after ${QUIET_WAIT}s; running anyway"
			return
		fi
		echo "   machine busy ($c cores, load $(cut -d' ' -f1-3 /proc/loadavg)); waiting"
		sleep 10
	done
}

# The running server: its pids, how to stop it, the pushbench flags it needs.
pids=()
stop_cmd=()
flags=()

stop_server() {
	if ((${#stop_cmd[@]})); then
		"${stop_cmd[@]}" >/dev/null 2>&1 || true
	fi
	for p in "${pids[@]}"; do
		# Our own children; Centrifugo takes up to its shutdown timeout.
		for _ in $(seq 400); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$p" 2>/dev/null || true
	done
	pids=()
	stop_cmd=()
}
trap stop_server EXIT
trap 'exit 130' INT TERM

has_opt() { [[ ",$1," == *",$2,"* ]]; }

# procs_env <options>: the environment a Go server's process gets for
# procs=<n> (GOMAXPROCS=n), or none.
procs_env() {
	local o
	for o in ${1//,/ }; do [[ $o == procs=* ]] && echo "GOMAXPROCS=${o#procs=}"; done
	return 0
}

start_caddy() { # <binary> <options> <log>
	local bin=$1 opts=$2 log=$3 conf=cmd/pushbench/bench.Caddyfile path=/ws-text proto=text nodes=0 o
	has_opt "$opts" json && { path=/ws; proto=json; }
	has_opt "$opts" jwt && path=$path-jwt
	has_opt "$opts" cluster && nodes=1
	for o in ${opts//,/ }; do [[ $o == nodes=* ]] && nodes=${o#nodes=}; done
	if ((nodes > 0)); then
		start_caddy_cluster "$bin" "$opts" "$log" "$nodes" "$path" "$proto"
		return 0
	fi
	local ws_list api_list check_ports
	if has_opt "$opts" three-ports; then
		conf=cmd/pushbench/bench3.Caddyfile
		local w1=${PUSHBENCH_WS_PORT1:-28081} w2=${PUSHBENCH_WS_PORT2:-28082} w3=${PUSHBENCH_WS_PORT3:-28083}
		local a1=${PUSHBENCH_API_PORT1:-27071} a2=${PUSHBENCH_API_PORT2:-27072} a3=${PUSHBENCH_API_PORT3:-27073}
		ws_list="ws://127.0.0.1:$w1$path,ws://127.0.0.1:$w2$path,ws://127.0.0.1:$w3$path"
		api_list="http://127.0.0.1:$a1,http://127.0.0.1:$a2,http://127.0.0.1:$a3"
		check_ports="$w1 $w2 $w3 $a1 $a2 $a3"
	elif has_opt "$opts" wss; then
		ws_list="wss://127.0.0.1:$wss_port$path"
		api_list="http://127.0.0.1:$api_port"
		check_ports="$wss_port $ws_port $api_port"
	else
		ws_list="ws://127.0.0.1:$ws_port$path"
		api_list="http://127.0.0.1:$api_port"
		check_ports="$ws_port $wss_port $api_port"
	fi
	for p in $check_ports; do
		port_busy "$p" && { echo "port $p is already in use: stop that server or set PUSHBENCH_*_PORT" >&2; exit 1; }
	done
	env $(procs_env "$opts") "$bin" run --config "$conf" --adapter caddyfile >"$log" 2>&1 &
	pids=($!)
	stop_cmd=(kill -TERM "${pids[0]}")
	local first_api=${api_list%%,*}
	for _ in $(seq 100); do
		curl -sf -o /dev/null "$first_api/stats" && break
		kill -0 "${pids[0]}" 2>/dev/null || { cat "$log" >&2; exit 1; }
		sleep 0.2
	done
	flags=(-target hub -ws "$ws_list" -api "$api_list" -pid "${pids[0]}" -protocol "$proto")
	has_opt "$opts" jwt && flags+=(-jwt-secret "$jwt_secret")
	has_opt "$opts" wss && flags+=(-ca "$PUSHBENCH_DATA/pki/authorities/local/root.crt")
	return 0
}

# start_caddy_cluster starts k Caddy instances of one hub on Redis, node i
# on the ws, API and admin ports plus i.
start_caddy_cluster() { # <binary> <options> <log> <k> <path> <protocol>
	local bin=$1 opts=$2 log=$3 nodes=$4 path=$5 proto=$6 k
	if has_opt "$opts" wss || has_opt "$opts" jwt || has_opt "$opts" three-ports; then
		echo "cluster.Caddyfile has ws endpoints with auth first_message only: no wss, jwt or three-ports with nodes=" >&2
		exit 2
	fi
	local ws_list= api_list= pid_list=
	for ((k = 0; k < nodes; k++)); do
		local ws=$((ws_port + k)) api=$((api_port + k)) admin=$((admin_port + k)) p
		for p in $ws $api $admin; do
			port_busy "$p" && { echo "port $p is already in use: stop that server or set PUSHBENCH_*_PORT" >&2; exit 1; }
		done
		PUSHBENCH_WS_PORT=$ws PUSHBENCH_API_PORT=$api PUSHBENCH_ADMIN_PORT=$admin \
			PUSHBENCH_CLUSTER=$cluster_url PUSHBENCH_CLUSTER_PREFIX=pushbench-$cur_label \
			env $(procs_env "$opts") "$bin" run --config cmd/pushbench/cluster.Caddyfile --adapter caddyfile >"$log-node$k" 2>&1 &
		pids+=($!)
		for _ in $(seq 100); do
			curl -sf -o /dev/null "http://127.0.0.1:$api/stats" && break
			kill -0 "${pids[-1]}" 2>/dev/null || { cat "$log-node$k" >&2; exit 1; }
			sleep 0.2
		done
		ws_list+=${ws_list:+,}ws://127.0.0.1:$ws$path
		api_list+=${api_list:+,}http://127.0.0.1:$api
		pid_list+=${pid_list:+,}${pids[-1]}
	done
	stop_cmd=(kill -TERM "${pids[@]}")
	flags=(-target hub -ws "$ws_list" -api "$api_list" -pid "$pid_list" -protocol "$proto" -redis "$cluster_url")
}

start_recipe() { # <options> <log>
	local variant=ws scheme=ws
	has_opt "$1" wss && { variant=wss; scheme=wss; }
	port_busy "$recipe_port" && { echo "port $recipe_port is already in use" >&2; exit 1; }
	"$RECIPE_DIR/start.sh" "$variant" >"$2" 2>&1 || { cat "$2" >&2; exit 1; }
	stop_cmd=("$RECIPE_DIR/stop.sh" "$variant")
	local pid
	pid=$(cat "${RECIPE_WORKER_PID_FILE:-$RECIPE_DIR/worker.pid}")
	pids=("$pid")
	flags=(-target recipe -ws "$scheme://127.0.0.1:$recipe_port/" -pid "$pid")
	[ "$variant" = wss ] && flags+=(-ca "${RECIPE_CERT:-$RECIPE_DIR/cert.pem}")
	return 0
}

start_centrifugo() { # <options> <log prefix>
	local engine=memory nodes=1 o
	has_opt "$1" redis && engine=redis
	for o in ${1//,/ }; do [[ $o == nodes=* ]] && nodes=${o#nodes=}; done
	local conf=$OUT/centrifugo-$name-$engine.json engine_json=
	if [ "$engine" = redis ]; then
		engine_json='"engine": {"type": "redis", "redis": {"address": ["'$cf_redis'"], "prefix": "pushbench"}},'
	fi
	cat >"$conf" <<-EOF
		{
		  "http_server": {"address": "127.0.0.1", "port": $cf_port},
		  "log": {"level": "warn"},
		  $engine_json
		  "client": {
		    "token": {"hmac_secret_key": "$cf_secret"},
		    "subscribe_to_user_personal_channel": {"enabled": true}
		  },
		  "channel": {"without_namespace": {"presence": false, "join_leave": false, "history_size": 0}},
		  "http_api": {"key": "$cf_key"},
		  "usage_stats": {"disabled": true}
		}
	EOF
	local ws_list= api_list= pid_list= k port
	for ((k = 0; k < nodes; k++)); do
		port=$((cf_port + k))
		port_busy "$port" && { echo "port $port is already in use" >&2; exit 1; }
		# Centrifugo reads CENTRIFUGO_* variables as configuration: give it only its port.
		env -u CENTRIFUGO_BIN -u CENTRIFUGO_PORT -u CENTRIFUGO_REDIS -u CENTRIFUGO_SECRET -u CENTRIFUGO_API_KEY \
			$(procs_env "$1") CENTRIFUGO_HTTP_SERVER_PORT="$port" "$CENTRIFUGO_BIN" -c "$conf" >"$2-node$k.log" 2>&1 &
		pids+=($!)
		for _ in $(seq 100); do
			[ "$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "X-API-Key: $cf_key" -d '{}' "http://127.0.0.1:$port/api/info")" = 200 ] && break
			kill -0 "${pids[-1]}" 2>/dev/null || { cat "$2-node$k.log" >&2; exit 1; }
			sleep 0.2
		done
		ws_list+=${ws_list:+,}ws://127.0.0.1:$port/connection/websocket
		api_list+=${api_list:+,}http://127.0.0.1:$port
		pid_list+=${pid_list:+,}${pids[-1]}
	done
	stop_cmd=(kill -TERM "${pids[@]}")
	flags=(-target centrifugo -ws "$ws_list" -api "$api_list" -pid "$pid_list" -jwt-secret "$cf_secret" -key "$cf_key")
	[ "$engine" = redis ] && flags+=(-redis "$cf_redis")
	return 0
}

# run_one <label> <spec> <result base>: starts the server, runs pushbench,
# stops the server; reports whether pushbench found a phase disturbed.
run_one() {
	local label=$1 spec=$2 base=$3 kind opts bin
	cur_label=$label
	kind=${spec%%,*}
	opts=${spec#"$kind"}
	opts=${opts#,}
	case $kind in
	recipe) start_recipe "$opts" "$base.server.log" ;;
	centrifugo) start_centrifugo "$opts" "$base.server" ;;
	*)
		bin=$kind
		[ "$bin" = build ] && bin=$caddy_build
		start_caddy "$bin" "$opts" "$base.server.log"
		;;
	esac
	echo "== $label ($spec), pids ${pids[*]}, load $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "   $OUT/pushbench ${flags[*]} ${robust[*]} -json-out $base.json ${common[*]}"
	local rc=0
	"$OUT/pushbench" "${flags[@]}" "${robust[@]}" -json-out "$base.json" "${common[@]}" >"$base.txt" 2>"$base.log" || rc=$?
	stop_server
	sed -n '/^pushbench:/,/^$/p' "$base.txt"
	((rc == 0)) || echo "   pushbench exited with $rc (see $base.log)"
	[ -s "$base.json" ] || { echo "no result in $base.json" >&2; return 2; }
	jq -e '(.disturbed // []) | length == 0' "$base.json" >/dev/null
}

# On a shared machine: before each measured run pushbench waits for the other
# processes to calm down, and measures a disturbed run again.
robust=(-quiet-wait 60s -redo 2 -timeout 60m)

labels=()
for s in "${servers[@]}"; do labels+=("${s%%=*}"); done
declare -A files
for ((r = 1; r <= rounds; r++)); do
	# Even rounds run the servers in the reverse order: on this kind of
	# machine whichever server runs first in a pair tends to do better, and
	# alternating cancels that in the medians.
	order=("${servers[@]}")
	if ((r % 2 == 0)); then
		order=()
		for ((i = ${#servers[@]} - 1; i >= 0; i--)); do order+=("${servers[i]}"); done
	fi
	for s in "${order[@]}"; do
		label=${s%%=*}
		base=$OUT/$name-$label
		((r > 1)) && base+=-r$r
		for ((try = 0; try <= retries; try++)); do
			echo "-- round $r/$rounds, $label$( ((try)) && echo ", retry $try")"
			wait_quiet
			run_one "$label" "${s#*=}" "$base" && break
			((try < retries)) && echo "   DISTURBED: running $label again"
			sleep 2
		done
		files[$label]+=${files[$label]:+,}$base.json
		sleep 2
	done
done

args=()
for l in "${labels[@]}"; do args+=("$l=${files[$l]}"); done
"$OUT/pushbench" compare -o "$OUT/$name.md" ${ratios:+-ratios "$ratios"} "${args[@]}"
echo "(table in $OUT/$name.md)"
