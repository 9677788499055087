#!/usr/bin/env bats
# cache.bats - cache mode (kvstored -E, issue 11): a write that finds no
# room evicts instead of being refused, least recently used first, fair
# between tenants; without -E nothing acknowledged is ever lost.
#
# Every test starts its own daemon (16 MiB segment) with its own segment
# and HOME.  kv_fill (tests/cachefill.py) pipelines many puts or gets.

bats_require_minimum_version 1.5.0
load helpers
load conn

teardown() {
	c_teardown
}


# stat_of USER NAME: a native STAT figure, logged in as USER.
stat_of() {
	kv_raw_lines_as "$1" 'stats\r\nquit\r\n' |
	    awk -v n="$2" '$1 == "STAT" && $2 == n { print $3 }'
}

@test "without -E a full store refuses writes, and loses nothing it acknowledged" {
	local stored
	kv_start
	run -0 kv_fill alice put k 0 30000 1000
	[[ $output =~ ^stored\ ([0-9]+)\ full\ ([0-9]+)$ ]]
	stored=${BASH_REMATCH[1]}
	((stored > 5000 && BASH_REMATCH[2] > 0))
	run -0 kv_fill alice get k 0 "$stored"
	assert_output "found $stored missing 0"
	run -0 stat_of alice evictions
	assert_output 0
}

@test "-E: a full store evicts; every write is stored, the newest are readable, evictions are counted" {
	local ev
	kv_start -E
	grep -q 'start: cache mode: a write that finds no room evicts' "$KV_LOG"
	run -0 kv_fill alice put k 0 40000 1000
	assert_output 'stored 40000 full 0'
	run -0 kv_fill alice get k 39000 1000
	assert_output 'found 1000 missing 0'
	ev=$(stat_of alice user_evictions)
	((ev > 20000))
	run -0 stat_of alice evictions
	assert_output "$ev"
	run -0 ctl users
	assert_line --regexp "^alice guest keys [0-9]+ bytes [0-9]+ evictions $ev\$"
	run -0 ctl check
}

@test "-E through the memcached listener: sets evict, stats say evictions; kvstorectl agrees" {
	local ev slabs
	mc_start -E -B cache
	python3 - "$MC_PORT" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
f = s.makefile("rb")
v = b"v" * 1000
for lo in range(0, 40000, 256):
    s.sendall(b"".join(b"set k%d 0 0 1000\r\n%s\r\n" % (k, v)
                       for k in range(lo, lo + 256)))
    for k in range(lo, lo + 256):
        r = f.readline()
        if r != b"STORED\r\n":
            sys.exit("set k%d: %r" % (k, r))
PY
	run -0 bash -c 'printf "get k39999\r\nstats\r\nstats settings\r\nstats items\r\nquit\r\n" |
	    timeout 10 nc -N 127.0.0.1 "$1" | tr -d "\r"' _ "$MC_PORT"
	assert_line 'VALUE k39999 0 1000'
	assert_line 'STAT evictions on'
	ev=$(awk '$2 == "evictions" && $3 ~ /^[0-9]+$/ { print $3 }' <<<"$output")
	((ev > 20000))
	assert_line "STAT kvstore_evictions $ev"
	assert_line --regexp '^STAT items:[0-9]+:evicted [1-9][0-9]*$'
	# kvstorectl says the same: the evictions, and each class's pages and
	# free chunks as stats slabs has them.
	run -0 ctl stats
	assert_line 'cache_mode on'
	assert_line "evictions $ev"
	slabs=$(printf 'stats slabs\r\nquit\r\n' |
	    timeout 10 nc -N 127.0.0.1 "$MC_PORT" | tr -d '\r' | awk -F'[ :]' '
	    $3 == "chunk_size" { size[$2] = $4 }
	    $3 == "total_pages" { pages[$2] = $4 }
	    $3 == "free_chunks" { free[$2] = $4 }
	    END { for (c in size) print c, size[c], pages[c], free[c] }' |
	    sort -n)
	run -0 ctl classes
	[ -n "$slabs" ]
	echo "# stats slabs (class, chunk size, pages, free chunks): $slabs" >&3
	assert_equal "$(awk '$6 > 0 { print $2, $4, $6, $14 }' <<<"$output")" "$slabs"
	assert_equal "$(awk '{ n += $NF } END { print n }' <<<"$output")" "$ev"
}

@test "-E: an item read after it was written outlives an older one never read (LRU, not FIFO)" {
	local round ev=0
	kv_start -E
	run -0 kv_fill alice put read 0 1 1000
	run -0 kv_fill alice put unread 0 1 1000
	run -0 kv_fill alice get read 0 1
	assert_output 'found 1 missing 0'
	# Fill in batches until the first evictions.  (Not i: bats' run
	# sets it.)
	for ((round = 0; round < 100 && ev == 0; round++)); do
		run -0 kv_fill alice put fill $((round * 500)) 500 1000
		assert_output 'stored 500 full 0'
		ev=$(stat_of alice user_evictions)
	done
	((ev > 0))
	run -0 kv_fill alice get unread 0 1
	assert_output 'found 0 missing 1'
	run -0 kv_fill alice get read 0 1
	assert_output 'found 1 missing 0'
}

@test "-E: a tenant that writes 10 times its share evicts only its own items" {
	local t2 t3
	kv_start -E
	run -0 kv_fill t2 put a 0 3000 1000
	assert_output 'stored 3000 full 0'
	run -0 kv_fill t3 put b 0 3000 1000
	assert_output 'stored 3000 full 0'
	# Three stores, a third of ~16 MiB each: t1 writes ~45 MB.
	run -0 kv_fill t1 put c 0 45000 1000
	assert_output 'stored 45000 full 0'
	run -0 kv_fill t2 get a 0 3000
	assert_output 'found 3000 missing 0'
	run -0 kv_fill t3 get b 0 3000
	assert_output 'found 3000 missing 0'
	run -0 stat_of t2 user_evictions
	assert_output 0
	run -0 stat_of t3 user_evictions
	assert_output 0
	t1=$(stat_of t1 user_evictions)
	((t1 > 30000))
	run -0 stat_of t1 evictions
	assert_output "$t1"
	run -0 ctl check
}

@test "-E: a newcomer to a full cache gets room from the store over its share" {
	kv_start -E
	run -0 kv_fill t1 put c 0 20000 1000
	assert_output 'stored 20000 full 0'
	run -0 kv_fill t2 put a 0 1000 1000
	assert_output 'stored 1000 full 0'
	run -0 kv_fill t2 get a 0 1000
	assert_output 'found 1000 missing 0'
	run -0 stat_of t2 user_evictions
	assert_output 0
}

@test "-E with -q: a store at its quota evicts its own least recently used item instead of refusing" {
	kv_start -E -q 3
	# k1 is read before each write over the quota: k2, then k3, go.
	run -0 kv_raw_lines_as alice 'put k1 v1\r\nput k2 v2\r\nput k3 v3\r\nget k1\r\nput k4 v4\r\nget k1\r\nput k5 v5\r\nquit\r\n'
	assert_output $'OK\nOK\nOK\nVALUE 2\nv1\nOK\nVALUE 2\nv1\nOK\nBYE'
	run -0 kv_raw_lines_as alice 'get k1\r\nget k2\r\nget k3\r\nget k4\r\nget k5\r\nquit\r\n'
	assert_output $'VALUE 2\nv1\nNOT_FOUND\nNOT_FOUND\nVALUE 2\nv4\nVALUE 2\nv5\nBYE'
	run -0 stat_of alice user_evictions
	assert_output 2
}

@test "cache mode belongs to the segment: a daemon without -E on a cache's segment is refused" {
	local port
	kv_start -E
	run -0 kv put k v
	port=$KV_PORT
	kill -TERM "$KV_PID"
	wait "$KV_PID" || true
	run -1 timeout 10 "$KVSTORED" -f -p 0 -l 127.0.0.1 -s "$KV_SHM" -m 16 \
	    -u "$(id -un)"
	assert_output --partial 'was created with -m 16 -I 1048576 -a 1024 -E, not -m 16 -I 1048576 -a 1024;'
	kv_start -E -p "$port"
	run -0 kv get k
	assert_output v
}

@test "-E -q 1 through the meta commands: a create (ma N, mg N) evicts the store's own item too" {
	mc_start -E -q 1 -B cache
	run -0 bash -c 'printf "set a 0 0 1\r\n1\r\nma c N0 J5 v\r\nmg d N30 s v\r\nmg a v\r\nmg c v\r\nquit\r\n" |
	    timeout 10 nc -N 127.0.0.1 "$1" | tr -d "\r"' _ "$MC_PORT"
	assert_output $'STORED\nVA 1\n5\nVA 0 s0 W\n\nEN\nEN'
}
