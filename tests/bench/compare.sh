#!/bin/bash
# compare.sh - kvstored side by side with memcached and Redis (issue 6).
#
# usage: compare.sh [--ceiling] [--event] [--native] [--rows LIST]
#
# Starts kvstored (-M memcached listener bound to user "bench"), memcached
# (-t 4) and redis-server (no persistence) on free loopback ports, loads the
# key space into each, runs every workload against each server in turn with
# kvbench, and prints one table: ops/s and p99 per server, kvstored's ratio
# to memcached and to Redis.  kvstored is driven through its memcached
# listener, so all three see the same bytes on the wire.  Every server it
# started is stopped on exit and kvstored's segment removed.
#
# This is a benchmark, not a test: it never fails on a figure.  Compare only
# figures from one run: the machine's noise is larger than most differences.
#
#	--ceiling	also run tests/bench/ceiling: fork per connection,
#			memcached text parsed, nothing stored (the process
#			model's best), and print kv/ceiling
#	--event		also run kvstored's event engine (-e event, a
#			second daemon on its own segment; BENCH_WORKERS for
#			-w) and print ev/mc, ev/redis
#	--native	also drive kvstored through its own protocol (user
#			kvbench, logged in once per connection; the new-
#			connection-per-request row is skipped: a login costs
#			~26 ms of server CPU)
#	--rows LIST	comma-separated subset of: c4,c50,c500,pipe,cpr,big
#
# Environment:
#	BENCH_SECS (5)		measured seconds per workload and server
#	BENCH_WARMUP (1)	unmeasured seconds before each
#	BENCH_KEYS (100000)	key space of the ordinary rows
#	BENCH_BIG_KEYS (10000000)	key space of the large row (0: no row)
#	BENCH_SEGMENT_MB	kvstored -m (default: enough for the large row)
#	BENCH_MEMCACHED_MB	memcached -m (default: the same)
#	BENCH_THREADS (2)	kvbench threads
#	BENCH_CPR_CONNS (50)	concurrent clients in the connect-per-request row
#	BENCH_ROUNDS (1)	repeat each cell, report the median (by ops/s);
#				a row runs round by round, each server in
#				turn, so that the rounds of one cell are
#				spread over the row's time as the others' are
#	BENCH_RATIO (1:10)	set:get   BENCH_VALUE (32)  BENCH_KEY (16)
#	BENCH_HUGE (0)		1, as root: /dev/shm remounted huge=advise for
#				the run (kvstored's segment in 2 MiB pages),
#				its huge= option put back after
#	KVSTORED KVBENCH CEILING MEMCACHED REDIS_SERVER	program paths
set -u
. "$(dirname "$0")/benchlib.sh"

BENCH_SECS=${BENCH_SECS:-5}
BENCH_WARMUP=${BENCH_WARMUP:-1}
BENCH_KEYS=${BENCH_KEYS:-100000}
BENCH_BIG_KEYS=${BENCH_BIG_KEYS:-10000000}
BENCH_THREADS=${BENCH_THREADS:-2}
BENCH_CPR_CONNS=${BENCH_CPR_CONNS:-50}
BENCH_ROUNDS=${BENCH_ROUNDS:-1}
BENCH_RATIO=${BENCH_RATIO:-1:10}
BENCH_VALUE=${BENCH_VALUE:-32}
BENCH_KEY=${BENCH_KEY:-16}
want_ceiling=0
want_native=0
want_event=0
rows=c4,c50,c500,pipe,cpr,big
NATIVE_USER=kvbench
NATIVE_SECRET=kvbench-$$-$RANDOM

while (($#)); do
	case $1 in
	--ceiling) want_ceiling=1 ;;
	--native) want_native=1 ;;
	--event) want_event=1 ;;
	--rows) rows=${2:?--rows needs a list}; shift ;;
	-h|--help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) bench_die "unknown argument: $1 (see --help)" ;;
	esac
	shift
done
((BENCH_BIG_KEYS > 0)) || rows=${rows//big/}

# Items of 16-byte keys and 32-byte values take 104 bytes of kvstored's
# arena each (issue 6, memory.sh); leave room for the hash buckets too.
stores=$((1 + want_native))
big=$((BENCH_BIG_KEYS > BENCH_KEYS ? BENCH_BIG_KEYS : BENCH_KEYS))
auto_mb=$((256 + big * (BENCH_KEY + BENCH_VALUE + 100) * stores / 1048576))
BENCH_SEGMENT_MB=${BENCH_SEGMENT_MB:-$auto_mb}
BENCH_MEMCACHED_MB=${BENCH_MEMCACHED_MB:-$auto_mb}

bench_tool KVBENCH kvbench
bench_huge
if ((want_event)); then
	bench_start_kvstored "$BENCH_SEGMENT_MB" event -e event \
	    ${BENCH_WORKERS:+-w "$BENCH_WORKERS"}
	EV_MC_PORT=$KV_MC_PORT EV_PID=$KV_PID
fi
bench_start_kvstored "$BENCH_SEGMENT_MB"
bench_start_memcached "$BENCH_MEMCACHED_MB"
bench_start_redis
((want_ceiling)) && bench_start_ceiling

bench_note "kvstored pid $KV_PID native port $KV_PORT memcached-listener" \
    "port $KV_MC_PORT segment $KV_SEG ${BENCH_SEGMENT_MB}M"
bench_note "memcached $($MEMCACHED -V 2>/dev/null | awk '{print $2}')" \
    "pid $MC_PID port $MC_PORT -m $BENCH_MEMCACHED_MB;" \
    "redis $($REDIS_SERVER --version | sed -n 's/.* v=\([^ ]*\).*/\1/p')" \
    "pid $REDIS_PID port $REDIS_PORT"
((want_ceiling)) && bench_note "ceiling pid $CEIL_PID port $CEIL_PORT"
bench_note "$(nproc) CPUs, $(sed -n 's/^model name\t*: //p' /proc/cpuinfo |
    head -n 1); ${BENCH_SECS}s per cell, set:get $BENCH_RATIO," \
    "${BENCH_VALUE}-byte values"

# The servers, by column: name, protocol, port, extra kvbench flags.
servers=(kv mc redis)
declare -A S_PROTO=([kv]=memcache [mc]=memcache [redis]=resp
    [native]=native [ceil]=memcache)
declare -A S_PORT=([kv]=$KV_MC_PORT [mc]=$MC_PORT [redis]=$REDIS_PORT
    [native]=$KV_PORT [ceil]=${CEIL_PORT:-0} [ev]=${EV_MC_PORT:-0})
declare -A S_NAME=([kv]="kvstored" [mc]="memcached" [redis]="redis"
    [native]="kvstored native" [ceil]="ceiling" [ev]="kvstored event")
S_PROTO[ev]=memcache
((want_event)) && servers+=(ev)
((want_ceiling)) && servers+=(ceil)
((want_native)) && servers+=(native)

server_flags() {
	if [[ $1 == native ]]; then
		echo "-P native -u $NATIVE_USER -S $NATIVE_SECRET"
	else
		echo "-P ${S_PROTO[$1]}"
	fi
}

# One round of kvbench against server $1 with flags "$@": its RESULT line.
measure_once() {
	local s=$1
	shift
	# shellcheck disable=SC2046
	bench_run -p "${S_PORT[$s]}" $(server_flags "$s") \
	    -t "$BENCH_THREADS" -r "$BENCH_RATIO" \
	    --key-size "$BENCH_KEY" --value-size "$BENCH_VALUE" \
	    -D "$BENCH_SECS" -w "$BENCH_WARMUP" "$@" -l "$s"
}

# The median (by ops/s) of the RESULT lines on stdin.
median() {
	local line

	while IFS= read -r line; do
		[[ -n $line ]] && echo "$(bench_field ops_s "$line") $line"
	done | sort -n | sed -n "$(((BENCH_ROUNDS + 1) / 2))p" | cut -d' ' -f2-
}

# A server that cannot answer a few requests gets no rows (kvstored's
# memcached listener may not be there yet): one line says why, not 10M.
declare -A BROKEN=()
probe() {
	local s line reg=
	for s in "${servers[@]}"; do
		[[ $s == native ]] && reg=--register
		# shellcheck disable=SC2046
		line=$(bench_run -p "${S_PORT[$s]}" $(server_flags "$s") $reg \
		    -c 1 -k 10 -n 20 --timeout 10)
		if [[ $(bench_field ops "$line") == 0 ||
		    $(bench_field errors "$line") != 0 ]]; then
			BROKEN[$s]=1
			bench_note "${S_NAME[$s]} does not work; no figures for it:"
			bench_note "$line"
		fi
	done
}

prefill() {	# keys
	local s line
	for s in "${servers[@]}"; do
		[[ $s == ceil || -n ${BROKEN[$s]-} ]] && continue
		# shellcheck disable=SC2046
		line=$(bench_run -p "${S_PORT[$s]}" $(server_flags "$s") \
		    -c 8 -t "$BENCH_THREADS" -k "$1" --prefill -D 0 \
		    --key-size "$BENCH_KEY" --value-size "$BENCH_VALUE" \
		    --timeout 60)
		bench_note "prefill ${S_NAME[$s]} $1 keys:" \
		    "$(bench_field prefilled "$line") stored," \
		    "errors $(bench_field errors "$line")"
	done
}

# One table cell: "63.2k 0.41ms", or why there is no figure.
cell() {
	local ops errs p99
	ops=$(bench_field ops "$1")
	errs=$(bench_field errors "$1")
	p99=$(bench_field p99_us "$1")
	if [[ $ops == 0 ]]; then
		case $errs in
		-1) echo "no result" ;;
		-2) echo "not working" ;;
		*) echo "failed ($errs errors)" ;;
		esac
		return
	fi
	awk -v o="$(bench_field ops_s "$1")" -v p="$p99" -v e="$errs" \
	    -v v="$(bench_field verify_fail "$1")" 'BEGIN {
		if (o >= 1e6) s = sprintf("%.2fM", o / 1e6)
		else if (o >= 1e3) s = sprintf("%.1fk", o / 1e3)
		else s = sprintf("%d", o)
		s = s sprintf(" %.2fms", p / 1000)
		if (e > 0) s = s sprintf(" (%d err)", e)
		if (v > 0) s = s sprintf(" (%d BAD)", v)
		print s }'
}

ratio() {
	local a b
	a=$(bench_field ops "$1")
	b=$(bench_field ops "$2")
	if [[ $a == 0 || $b == 0 ]]; then
		echo "-"
		return
	fi
	awk -v a="$(bench_field ops_s "$1")" -v b="$(bench_field ops_s "$2")" \
	    'BEGIN { printf "%.2f\n", a / b }'
}

human() {
	awk -v n="$1" 'BEGIN { if (n >= 1e6 && n % 1e6 == 0) printf "%dM", n / 1e6
	    else if (n >= 1e3 && n % 1e3 == 0) printf "%dk", n / 1e3
	    else printf "%d", n }'
}

declare -A ROW_NAME=(
	[c4]="4 conns"
	[c50]="50 conns"
	[c500]="500 conns"
	[pipe]="50 conns, depth 16"
	[cpr]="new conn per request ($BENCH_CPR_CONNS clients)"
	[big]="$(human "$BENCH_BIG_KEYS") keys, 50 conns"
)
declare -A ROW_ARGS=(
	[c4]="-c 4 -k $BENCH_KEYS"
	[c50]="-c 50 -k $BENCH_KEYS"
	[c500]="-c 500 -k $BENCH_KEYS"
	[pipe]="-c 50 -d 16 -k $BENCH_KEYS"
	[cpr]="-C -c $BENCH_CPR_CONNS -k $BENCH_KEYS"
	[big]="-c 50 -k $BENCH_BIG_KEYS"
)

declare -A R=()
order=()
probe
prefill "$BENCH_KEYS"
for row in c4 c50 c500 pipe cpr big; do
	[[ ,$rows, == *,$row,* ]] || continue
	[[ $row == big ]] && prefill "$BENCH_BIG_KEYS"
	order+=("$row")
	bench_note "row: ${ROW_NAME[$row]}"
	# Round by round, every server in turn: a machine that slows down
	# for a while slows one round of each, not every round of one.
	declare -A ROUNDS=()
	for ((r = 0; r < BENCH_ROUNDS; r++)); do
		for s in "${servers[@]}"; do
			[[ $s == native && $row == cpr ]] && continue
			[[ -n ${BROKEN[$s]-} ]] && continue
			# shellcheck disable=SC2086
			line=$(measure_once "$s" ${ROW_ARGS[$row]})
			bench_note "$line"
			ROUNDS[$s]+=$line$'\n'
		done
	done
	for s in "${servers[@]}"; do
		if [[ $s == native && $row == cpr ]]; then
			R[$row,$s]="RESULT ops=0 errors=-1"
		elif [[ -n ${BROKEN[$s]-} ]]; then
			R[$row,$s]="RESULT ops=0 errors=-2"
		else
			R[$row,$s]=$(printf '%s' "${ROUNDS[$s]}" | median)
		fi
	done
	unset ROUNDS
done

# The table (markdown, so it pastes into README and the issue).
hdr="| workload | kvstored (memcached protocol) | memcached | redis | kv/mc | kv/redis |"
sep="|---|---|---|---|---|---|"
if ((want_ceiling)); then
	hdr+=" ceiling | kv/ceiling |"
	sep+="---|---|"
fi
if ((want_event)); then
	hdr+=" kvstored event | ev/mc | ev/redis |"
	sep+="---|---|---|"
	((want_ceiling)) && { hdr+=" ev/ceiling |"; sep+="---|"; }
fi
if ((want_native)); then
	hdr+=" kvstored native | native/mc | native/redis |"
	sep+="---|---|---|"
	((want_ceiling)) && { hdr+=" native/ceiling |"; sep+="---|"; }
fi
echo
echo "kvbench, $(nproc) CPUs, ${BENCH_SECS}s per cell, set:get $BENCH_RATIO," \
    "${BENCH_KEY}-byte keys, ${BENCH_VALUE}-byte values," \
    "$(human "$BENCH_KEYS") keys; cells: ops/s p99"
echo
echo "$hdr"
echo "$sep"
for row in "${order[@]}"; do
	kv=${R[$row,kv]}
	line="| ${ROW_NAME[$row]} | $(cell "$kv") | $(cell "${R[$row,mc]}")"
	line+=" | $(cell "${R[$row,redis]}") | $(ratio "$kv" "${R[$row,mc]}")"
	line+=" | $(ratio "$kv" "${R[$row,redis]}") |"
	if ((want_ceiling)); then
		line+=" $(cell "${R[$row,ceil]}") | $(ratio "$kv" "${R[$row,ceil]}") |"
	fi
	if ((want_event)); then
		ev=${R[$row,ev]}
		line+=" $(cell "$ev") | $(ratio "$ev" "${R[$row,mc]}")"
		line+=" | $(ratio "$ev" "${R[$row,redis]}") |"
		((want_ceiling)) && line+=" $(ratio "$ev" "${R[$row,ceil]}") |"
	fi
	if ((want_native)); then
		nv=${R[$row,native]}
		if [[ $row == cpr ]]; then
			line+=" n/a (login per connection) | - | - |"
		else
			line+=" $(cell "$nv") | $(ratio "$nv" "${R[$row,mc]}")"
			line+=" | $(ratio "$nv" "${R[$row,redis]}") |"
		fi
		((want_ceiling)) && line+=" $(ratio "$nv" "${R[$row,ceil]}") |"
	fi
	echo "$line"
done
if [[ -s $BENCH_TMP/kvbench.err ]]; then
	bench_note "kvbench said (first lines):"
	head -n 20 "$BENCH_TMP/kvbench.err" | sed 's/^/#   /' >&2
fi
exit 0
