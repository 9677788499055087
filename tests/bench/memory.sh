#!/bin/bash
# memory.sh - memory per stored item: kvstored, memcached, Redis (issue 6).
#
# usage: memory.sh
#
# Loads the same N items (16-byte keys, 32-byte values; N = MEM_ITEMS,
# default 1M) into a fresh kvstored, memcached (-t 4) and redis-server and
# reports bytes per item:
#   kvstored   shared memory: arena bytes its items occupy (stats bytes_used
#              / items), and the same plus the segment's fixed metadata
#              (segment size - arena size: header, locks, hash buckets, page
#              map), which is what 1M items cost in a segment sized for them.
#   memcached  resident memory growth (VmRSS after - before) / N, and its
#              own item accounting (stats bytes / curr_items).
#   redis      resident memory growth / N, and INFO used_memory growth / N.
# kvstored's items are loaded through its memcached listener (-M, -B bench)
# when that works, else natively.
#
# Environment: MEM_ITEMS (1000000), MEM_SEGMENT_MB (kvstored -m, 512),
# MEM_MEMCACHED_MB (memcached -m, 1024), KVSTORED, KVBENCH.
set -u
. "$(dirname "$0")/benchlib.sh"

MEM_ITEMS=${MEM_ITEMS:-1000000}
MEM_SEGMENT_MB=${MEM_SEGMENT_MB:-512}
MEM_MEMCACHED_MB=${MEM_MEMCACHED_MB:-1024}
USER_NAME=kvmem
SECRET=kvmem-$$-$RANDOM
LOAD=(-k "$MEM_ITEMS" --key-size 16 --value-size 32 --prefill -D 0 -c 8
    --timeout 60)

bench_tool KVBENCH kvbench
bench_start_kvstored "$MEM_SEGMENT_MB"
bench_start_memcached "$MEM_MEMCACHED_MB"
bench_start_redis

stat_of() {	# NAME, STAT lines on stdin
	awk -v n="$1" '$1 == "STAT" && $2 == n { print $3; exit }'
}

# --- kvstored ---------------------------------------------------------------
before=$(bench_kv_stats "$USER_NAME" "$SECRET" register)
[[ -n $before ]] || bench_die "kvstored: no stats (register $USER_NAME)"
line=$(bench_run -p "$KV_MC_PORT" "${LOAD[@]}")
via="memcached listener"
if [[ $(bench_field prefilled "$line") != "$MEM_ITEMS" ]]; then
	bench_note "memcached listener stored $(bench_field prefilled "$line")" \
	    "of $MEM_ITEMS; loading natively"
	line=$(bench_run -P native -p "$KV_PORT" -u "$USER_NAME" -S "$SECRET" \
	    "${LOAD[@]}")
	via="native protocol"
fi
bench_note "kvstored via $via: $line"
after=$(bench_kv_stats "$USER_NAME" "$SECRET")
items=$(($(stat_of items <<<"$after") - $(stat_of items <<<"$before")))
used=$(($(stat_of bytes_used <<<"$after") - $(stat_of bytes_used <<<"$before")))
arena=$(stat_of bytes_limit <<<"$after")
seg=$(stat -c %s "/dev/shm${KV_SEG}")
meta=$((seg - arena))

# --- memcached --------------------------------------------------------------
rss0=$(bench_rss "$MC_PID")
line=$(bench_run -p "$MC_PORT" "${LOAD[@]}")
bench_note "memcached: $line"
rss1=$(bench_rss "$MC_PID")
mcst=$(bench_mc_stats "$MC_PORT")
mc_items=$(stat_of curr_items <<<"$mcst")
mc_bytes=$(stat_of bytes <<<"$mcst")

# --- redis ------------------------------------------------------------------
redis_used() {
	local line
	exec 9<>"/dev/tcp/127.0.0.1/$REDIS_PORT" || return 1
	# shellcheck disable=SC2016 # RESP lengths, not variables
	printf '*2\r\n$4\r\nINFO\r\n$6\r\nmemory\r\n' >&9
	while IFS= read -r -t 30 line <&9; do
		if [[ $line == used_memory:* ]]; then
			line=${line#used_memory:}
			echo "${line%$'\r'}"
			break
		fi
	done
	exec 9>&-
}
rrss0=$(bench_rss "$REDIS_PID")
rused0=$(redis_used)
line=$(bench_run -P resp -p "$REDIS_PORT" "${LOAD[@]}")
bench_note "redis: $line"
rrss1=$(bench_rss "$REDIS_PID")
rused1=$(redis_used)

per() {	# BYTES ITEMS
	awk -v b="$1" -v n="$2" 'BEGIN { if (n > 0) printf "%.1f", b / n
	    else printf "-" }'
}

echo
echo "memory per item: $MEM_ITEMS items, 16-byte keys, 32-byte values"
echo
echo "| server | items | bytes/item | what |"
echo "|---|---|---|---|"
echo "| kvstored | $items | $(per "$used" "$items") |" \
    "shared memory: arena chunks (stats bytes_used / items), via $via |"
echo "| kvstored | $items | $(per $((used + meta)) "$items") |" \
    "the same + segment metadata ($((meta / 1048576)) MiB: header, locks," \
    "hash buckets, page map) |"
echo "| memcached | $mc_items | $(per $((rss1 - rss0)) "$MEM_ITEMS") |" \
    "VmRSS growth / items ($(((rss1 - rss0) / 1048576)) MiB) |"
echo "| memcached | $mc_items | $(per "$mc_bytes" "$mc_items") |" \
    "its own item bytes (stats bytes / curr_items) |"
echo "| redis | $MEM_ITEMS | $(per $((rrss1 - rrss0)) "$MEM_ITEMS") |" \
    "VmRSS growth / items |"
echo "| redis | $MEM_ITEMS | $(per $((rused1 - rused0)) "$MEM_ITEMS") |" \
    "INFO used_memory growth / items |"
echo
echo "kvstored segment: $((seg / 1048576)) MiB (-m $MEM_SEGMENT_MB)," \
    "arena $((arena / 1048576)) MiB, $(stat_of bytes_free <<<"$after")" \
    "bytes free after the load"
exit 0
