#!/bin/bash
# scaling.sh - how kvstored's engines use the CPUs they are given (issue 12).
#
# usage: scaling.sh [--rows LIST]
#
# Runs each configuration in turn on its own segment and loopback port,
# through the memcached listener, with the same kvbench rows as
# compare.sh: the event engine with 1 worker and with one per CPU, both
# on every CPU and pinned with taskset(1) to CPU 0 (the daemon and every
# process it forks; kvbench stays unpinned), and the prefork engine the
# same.  Prints one table of ops/s and p99 per configuration.  On a
# 2-CPU machine this is what can be shown of scaling; the segment, the
# stripes and the accept path are the same at any count.
#
# A benchmark, not a test: nothing fails on a figure.
#
#	--rows LIST	comma-separated subset of: c4,c50,c500,pipe (c50,pipe)
#
# Environment: BENCH_SECS (5), BENCH_WARMUP (1), BENCH_KEYS (100000),
# BENCH_THREADS (2), BENCH_ROUNDS (1; the median), BENCH_RATIO (1:10),
# BENCH_VALUE (32), BENCH_KEY (16), BENCH_HUGE (0; see compare.sh);
# KVSTORED, KVBENCH.
set -u
. "$(dirname "$0")/benchlib.sh"

BENCH_SECS=${BENCH_SECS:-5}
BENCH_WARMUP=${BENCH_WARMUP:-1}
BENCH_KEYS=${BENCH_KEYS:-100000}
BENCH_THREADS=${BENCH_THREADS:-2}
BENCH_ROUNDS=${BENCH_ROUNDS:-1}
BENCH_RATIO=${BENCH_RATIO:-1:10}
BENCH_VALUE=${BENCH_VALUE:-32}
BENCH_KEY=${BENCH_KEY:-16}
rows=c50,pipe

while (($#)); do
	case $1 in
	--rows) rows=${2:?--rows needs a list}; shift ;;
	-h|--help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) bench_die "unknown argument: $1 (see --help)" ;;
	esac
	shift
done
command -v taskset >/dev/null || bench_die "no taskset (util-linux)"
bench_tool KVBENCH kvbench
bench_huge
cpus=$(nproc)

declare -A ROW_NAME=([c4]="4 conns" [c50]="50 conns" [c500]="500 conns"
    [pipe]="50 conns, depth 16")
declare -A ROW_ARGS=([c4]="-c 4" [c50]="-c 50" [c500]="-c 500"
    [pipe]="-c 50 -d 16")

# Every process of the daemon started last onto CPU 0: the ones there now;
# those forked later inherit it from their parent.
pin() {
	local pid

	for pid in $KV_PID $(pgrep -P "$KV_PID") $(pgrep -P "$KV_PID" |
	    xargs -r -n 1 pgrep -P); do
		taskset -a -p -c 0 "$pid" >/dev/null ||
		    bench_die "taskset $pid failed"
	done
}

# The daemon started last goes before the next starts: one at a time.
stop_kvstored() {
	bench_stop "$KV_PID"
	"$KVSTORED" -R -s "$KV_SEG" >/dev/null 2>&1
}

# config name, pinned (0/1), kvstored flags
configs=(
	"event -w 1|0|-e event -w 1"
	"event -w $cpus|0|-e event -w $cpus"
	"event -w 1, CPU 0|1|-e event -w 1"
	"event -w $cpus, CPU 0|1|-e event -w $cpus"
	"prefork|0|"
	"prefork, CPU 0|1|"
)

declare -A R=()
n=0
for cfg in "${configs[@]}"; do
	IFS='|' read -r name pinned flags <<<"$cfg"
	n=$((n + 1))
	# shellcheck disable=SC2086
	bench_start_kvstored 512 "scaling$n" $flags
	((pinned)) && pin
	bench_note "$name: pid $KV_PID port $KV_MC_PORT"
	line=$(bench_run -p "$KV_MC_PORT" -P memcache -c 8 -t "$BENCH_THREADS" \
	    -k "$BENCH_KEYS" --prefill -D 0 --key-size "$BENCH_KEY" \
	    --value-size "$BENCH_VALUE" --timeout 60)
	bench_note "prefill: $(bench_field prefilled "$line") stored"
	for row in c4 c50 c500 pipe; do
		[[ ,$rows, == *,$row,* ]] || continue
		lines=()
		for ((r = 0; r < BENCH_ROUNDS; r++)); do
			# shellcheck disable=SC2086
			line=$(bench_run -p "$KV_MC_PORT" -P memcache \
			    -t "$BENCH_THREADS" -r "$BENCH_RATIO" \
			    --key-size "$BENCH_KEY" --value-size "$BENCH_VALUE" \
			    -D "$BENCH_SECS" -w "$BENCH_WARMUP" \
			    -k "$BENCH_KEYS" ${ROW_ARGS[$row]} -l "$name")
			bench_note "$row: $line"
			lines+=("$(bench_field ops_s "$line") $line")
		done
		R[$n,$row]=$(printf '%s\n' "${lines[@]}" | sort -n |
		    sed -n "$(((BENCH_ROUNDS + 1) / 2))p" | cut -d' ' -f2-)
	done
	stop_kvstored
done

hdr="| engine |"
sep="|---|"
for row in c4 c50 c500 pipe; do
	[[ ,$rows, == *,$row,* ]] || continue
	hdr+=" ${ROW_NAME[$row]} |"
	sep+="---|"
done
echo "$hdr"
echo "$sep"
n=0
for cfg in "${configs[@]}"; do
	IFS='|' read -r name _ _ <<<"$cfg"
	n=$((n + 1))
	out="| $name |"
	for row in c4 c50 c500 pipe; do
		[[ ,$rows, == *,$row,* ]] || continue
		out+=" $(awk -v o="$(bench_field ops_s "${R[$n,$row]}")" \
		    -v p="$(bench_field p99_us "${R[$n,$row]}")" 'BEGIN {
			printf "%.1fk %.2fms", o / 1e3, p / 1000 }') |"
	done
	echo "$out"
done
