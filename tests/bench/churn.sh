#!/bin/bash
# churn.sh - issue 11's memory targets, as figures (not a timed test):
#
#   1. refill: fill a 64 MiB store with 1-byte values, delete them all,
#      then store a 512 KiB value and one value of every size class;
#   2. churn: CHURN_SECS (600) of mixed sizes, log-uniform 1 B to 64 KiB,
#      at 80% full, random deletes and sets (churn.py): refusals while
#      the free bytes are at least four times the value's size.
#
# usage: churn.sh [refill|churn|all]
# Environment: CHURN_SECS (600), CHURN_MB (64), CHURN_VALUE_MAX (kvstored
# -I for the churn, which sets the page size; default kvstored's 1 MiB),
# KVSTORED.
set -u
. "$(dirname "$0")/benchlib.sh"

what=${1:-all}
CHURN_SECS=${CHURN_SECS:-600}
CHURN_MB=${CHURN_MB:-64}
here=$(cd "$(dirname "$0")" && pwd)

# mc_call: memcached requests on stdin, replies on stdout.
mc_call() {
	timeout 600 nc -N 127.0.0.1 "$KV_MC_PORT" | tr -d '\r'
}

refill() {
	local n sizes size ok=0 bad=0

	bench_start_kvstored "$CHURN_MB" refill
	n=$(mc_call <<<"stats" | awk '$2 == "limit_maxbytes" { print $3 }')
	# As many 1-byte values as fit (each ~56 bytes of chunk), deleted.
	python3 - "$KV_MC_PORT" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
f = s.makefile("rb")
n = 0
while True:
    batch = b"".join(b"set f%d 0 0 1 \r\nx\r\n" % (n + i) for i in range(512))
    s.sendall(batch)
    got = [f.readline() for _ in range(512)]
    n += sum(1 for g in got if g == b"STORED\r\n")
    if any(g != b"STORED\r\n" for g in got):
        break
for lo in range(0, n + 512, 512):
    s.sendall(b"".join(b"delete f%d noreply\r\n" % k
                       for k in range(lo, lo + 512)))
s.sendall(b"version\r\n")
f.readline()
print("refill: stored %d one-byte values, deleted them all" % n)
PY
	mc_call <<<"stats" | grep -E 'STAT (curr_items|bytes|limit_maxbytes) '
	# Sizes 1.2 apart from 1 byte to 1000 KiB: one in every class.
	sizes=$(awk 'BEGIN { for (s = 1; s < 1024000; s = int(s * 1.2) + 1)
	    print s }')
	for size in 524288 $sizes; do
		if [[ $(head -c "$size" /dev/zero | tr '\0' v |
		    { printf 'set s%s 0 0 %s\r\n' "$size" "$size"; cat;
		    printf '\r\n'; } | mc_call) == STORED ]]; then
			ok=$((ok + 1))
		else
			bad=$((bad + 1))
			bench_note "refill: a $size-byte value was refused"
		fi
	done
	echo "refill: after fill and delete of 1-byte values ($n bytes):" \
	    "$ok of $((ok + bad)) sizes stored (512 KiB, then 1 B to 1000 KiB" \
	    "1.2 apart)"
	bench_cleanup
	BENCH_TMP=$(mktemp -d "${TMPDIR:-/tmp}/kvbench.XXXXXX")
}

churn() {
	bench_start_kvstored "$CHURN_MB" churn ${CHURN_VALUE_MAX:+-I "$CHURN_VALUE_MAX"}
	python3 "$here/churn.py" "$KV_MC_PORT" "$CHURN_SECS" 0.8 65536
	bench_cleanup
}

case $what in
refill) refill ;;
churn) churn ;;
all) refill; churn ;;
*) bench_die "usage: churn.sh [refill|churn|all]" ;;
esac
