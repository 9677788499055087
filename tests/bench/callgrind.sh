#!/bin/bash
# callgrind.sh - instructions per request of kvstored, counted by callgrind.
#
# usage: callgrind.sh [-e ENGINE] [REQUESTS]
#
# Starts kvstored under valgrind --tool=callgrind (memcached listener bound
# to user "bench", a 64 MiB segment of its own), sends one connection
# REQUESTS (default 20000) pipelined requests, alternately "set" and "get"
# of 16-byte keys ("key:" and 12 digits, 5000 of them in turn) with 32-byte
# values, 100 requests in flight, reads every reply, and stops the daemon.
# It does so twice, with REQUESTS and 2 x REQUESTS, and reads the process
# that served the connection (the one that ran the most instructions: a
# prefork child, or the event worker).  The difference of the two counts,
# divided by REQUESTS, is the cost of one request with the start, the
# accept and the exit taken out.  Prints:
#
#	requests N Ir A  requests 2N Ir B  Ir/request (B-A)/N
#	hash_key Ir/call C calls D	(when callgrind saw the function)
#
# This is a measurement, not a test; instruction counts, unlike timings,
# repeat to within a few in a million on one build.  Compare two builds
# with the same command: KVSTORED=/other/build/src/kvstored callgrind.sh.
#
# Environment: KVSTORED (default: the build tree's src/kvstored),
# VALGRIND (valgrind), CG_KEEP=1 keeps the callgrind files (the directory
# is printed).
set -u

here=$(cd "$(dirname "$0")" && pwd)
KVSTORED=${KVSTORED:-$here/../../src/kvstored}
VALGRIND=${VALGRIND:-valgrind}
engine=()
while getopts e: opt; do
	case $opt in
	e) engine=(-e "$OPTARG") ;;
	*) echo "usage: callgrind.sh [-e ENGINE] [REQUESTS]" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
n=${1:-20000}
[[ $n =~ ^[1-9][0-9]*$ ]] || { echo "callgrind.sh: bad count $n" >&2; exit 2; }
command -v "$VALGRIND" >/dev/null || { echo "callgrind.sh: no valgrind" >&2; exit 2; }
command -v python3 >/dev/null || { echo "callgrind.sh: no python3" >&2; exit 2; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/kvcg.XXXXXX") || exit 2
seg=/kvcg-$$
pid=
cleanup() {
	[[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	"$KVSTORED" -R -s "$seg" >/dev/null 2>&1
	if [[ ${CG_KEEP-} == 1 ]]; then
		echo "callgrind files: $tmp"
	else
		rm -rf "$tmp"
	fi
}
trap cleanup EXIT

# session PORT COUNT: the pipelined requests; fails on a wrong reply.
session() {
	python3 - "$1" "$2" <<'EOF'
import socket, sys
port, count = int(sys.argv[1]), int(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port))
f = s.makefile("rb")
def req(i):
    k = b"key:%012d" % (i // 2 % 5000)
    if i % 2 == 0:
        v = (k * 2)[:32]
        return b"set " + k + b" 0 0 32\r\n" + v + b"\r\n"
    return b"get " + k + b"\r\n"
i = 0
while i < count:
    batch = range(i, min(i + 100, count))
    s.sendall(b"".join(req(j) for j in batch))
    for j in batch:
        line = f.readline()
        if j % 2 == 0:
            ok = line == b"STORED\r\n"
        else:
            ok = line.startswith(b"VALUE ") and f.readline() and \
                f.readline() == b"END\r\n"
        if not ok:
            sys.exit("request %d: %r" % (j, line))
    i += len(batch)
s.close()
EOF
}

# run COUNT: prints the serving process's Ir and its hash_key line.
run() {
	local out=$tmp/$1 log i port= best=0 file= ir f

	mkdir -p "$out"
	log=$out/kvstored.log
	"$KVSTORED" -R -s "$seg" >/dev/null 2>&1
	: >"$log"
	"$VALGRIND" --tool=callgrind --callgrind-out-file="$out/cg.%p" \
	    "$KVSTORED" -f -p 0 -M 0 -B bench -m 64 -u "$(id -un)" \
	    -s "$seg" "${engine[@]}" >"$log" 2>&1 &
	pid=$!
	for ((i = 0; i < 600; i++)); do
		port=$(sed -n 's/.*start: memcached protocol listen .* port \([0-9]*\).*/\1/p' "$log")
		[[ -n $port ]] && break
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	[[ -n $port ]] || { echo "kvstored did not start:" >&2; tail -5 "$log" >&2; return 1; }
	session "$port" "$1" || return 1
	kill "$pid"
	wait "$pid" 2>/dev/null
	pid=
	for f in "$out"/cg.*; do
		ir=$(sed -n 's/^summary: \([0-9]*\).*/\1/p' "$f")
		[[ -n $ir ]] && ((ir > best)) && best=$ir file=$f
	done
	echo "$best"
	callgrind_annotate --inclusive=yes "$file" 2>/dev/null |
	    awk '$0 ~ /[ :]hash_key( |$)/ { gsub(",", "", $1); print $1; exit }'
	echo "${file}" >"$out/serving"
}

a=($(run "$n")) || exit 1
b=($(run $((2 * n)))) || exit 1
echo "requests $n Ir ${a[0]}  requests $((2 * n)) Ir ${b[0]}" \
    " Ir/request $(((b[0] - a[0]) / n))"
if [[ -n ${b[1]-} && -n ${a[1]-} ]]; then
	echo "hash_key Ir/request $(((b[1] - a[1]) / n))"
fi
