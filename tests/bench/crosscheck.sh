#!/bin/bash
# crosscheck.sh - kvbench against memcaslap (libmemcached-tools) on one
# memcached, same settings, to check that kvbench measures what others do.
#
# usage: crosscheck.sh
#
# Starts memcached -t 4 -m 256 on a free loopback port; for each connection
# count runs memcaslap and kvbench alternately (so the machine's noise hits
# both alike), BENCH_ROUNDS times each, and prints the medians and their
# ratio.  Both use 2 threads, 16-byte keys, 32-byte values, set:get 1:10, no
# pipelining.  memcaslap gets keys it has set within a window of 10k keys
# per connection, so kvbench prefills conns * 10k keys and reads them
# uniformly.
#
# Environment: BENCH_SECS (5), BENCH_ROUNDS (3), XC_CONNS ("4 50"),
# KVBENCH, MEMCACHED, MEMCASLAP.
set -u
. "$(dirname "$0")/benchlib.sh"

BENCH_SECS=${BENCH_SECS:-5}
BENCH_ROUNDS=${BENCH_ROUNDS:-3}
XC_CONNS=${XC_CONNS:-4 50}
WIN=10000	# memcaslap -w 10k

bench_need "$MEMCASLAP"
bench_tool KVBENCH kvbench
bench_start_memcached 256
bench_note "memcached pid $MC_PID port $MC_PORT; $(nproc) CPUs;" \
    "${BENCH_SECS}s per run, $BENCH_ROUNDS rounds"

cfg=$BENCH_TMP/memcaslap.cfg
# memcaslap's config: key and value size ranges with weights, then the
# command mix (0 = set, 1 = get) as proportions.
printf 'key\n16 16 1\nvalue\n32 32 1\ncmd\n0 0.0909\n1 0.9091\n' >"$cfg"

median() {
	sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

echo "| connections | memcaslap ops/s | kvbench ops/s | kvbench/memcaslap | kvbench p99 |"
echo "|---|---|---|---|---|"
for c in $XC_CONNS; do
	keys=$((c * WIN))
	bench_run -p "$MC_PORT" -c 8 -k "$keys" --prefill -D 0 >/dev/null
	mcs=()
	kvb=()
	p99=()
	for ((r = 0; r < BENCH_ROUNDS; r++)); do
		out=$(timeout $((BENCH_SECS * 3 + 60)) "$MEMCASLAP" \
		    -s "127.0.0.1:$MC_PORT" -F "$cfg" -T 2 -c "$c" \
		    -w 10k -t "${BENCH_SECS}s" 2>&1)
		tps=$(sed -n 's/.*TPS: \([0-9]*\).*/\1/p' <<<"$out" | tail -n 1)
		bench_note "memcaslap -c $c: ${tps:-no figure}"
		mcs+=("${tps:-0}")
		line=$(bench_run -p "$MC_PORT" -c "$c" -t 2 -k "$keys" \
		    -D "$BENCH_SECS")
		bench_note "$line"
		kvb+=("$(bench_field ops_s "$line")")
		p99+=("$(bench_field p99_us "$line")")
	done
	m=$(printf '%s\n' "${mcs[@]}" | median)
	k=$(printf '%s\n' "${kvb[@]}" | median)
	p=$(printf '%s\n' "${p99[@]}" | median)
	awk -v c="$c" -v m="$m" -v k="$k" -v p="$p" -v a="${mcs[*]}" \
	    -v b="${kvb[*]}" 'BEGIN {
		printf "| %d | %d (%s) | %d (%s) | %.2f | %.0f us |\n",
		    c, m, a, k, b, (m > 0 ? k / m : 0), p }'
done
exit 0
