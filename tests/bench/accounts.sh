#!/bin/bash
# accounts.sh - what a request and a login cost at 10 accounts and at
# 100,000 (issue 11: "accounts that scale"), in instructions, under
# valgrind --tool=callgrind.
#
# usage: tests/bench/accounts.sh [OUTDIR]	(from the top of a built tree)
#
# For each table, a kvstored (prefork, -k 0: one child per connection) runs
# under callgrind with every account loaded from a users file (-A), all of
# them with one real secret hash taken from a registration.  Three
# connections, each served by a child of its own, log in as the table's
# last account and then send:
#	S0	nothing (login only)
#	S1	N1 x (put kI v, get kI)
#	S2	N2 x (put kI v, get kI)
# Each child's costs are counted from child_serve() (--zero-before), not
# what it inherited from the master.  A request's cost is
# (Ir(S2) - Ir(S1)) / (2 (N2 - N1)): the login, the attach and the exit
# cancel out.  A login's cost is Ir(S0): in all, without crypt_rn() (the
# secret's hash, the same work whatever the table), and the name lookup's
# own (lookup(), inclusive).  -m 128 for the default table; a larger one
# gets the room it needs on top, which buys no buckets (store.c's plan()),
# so the items' hash table is the same size in both.  Last, the login's
# wall time (connect, login, close) against the same daemon without
# valgrind.
#
# Environment: KVSTORED (the build's by default), N1 (1000),
# N2 (3000), ACC_BIG (100000).
set -eu

top=$(cd "$(dirname "$0")/../.." && pwd)
KVSTORED=${KVSTORED:-$top/src/kvstored}
N1=${N1:-1000}
N2=${N2:-3000}
ACC_BIG=${ACC_BIG:-100000}
out=${1:-$(mktemp -d /tmp/kvacc.XXXXXX)}
secret=bench-secret-$$
mkdir -p "$out"
seg=/kvacc-$$
pids=()

cleanup() {
	local p
	for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
	"$KVSTORED" -R -s "$seg" 2>/dev/null || true
}
trap cleanup EXIT

# start_daemon LOG ARGS...: kvstored in the foreground; sets PORT, PID.
start_daemon() {
	local log=$1 i re='start: kvstored [^ ]+ listen [^ ]+ port ([0-9]+) '
	shift
	: >"$log"
	"$@" -f -p 0 -l 127.0.0.1 -s "$seg" -u "$(id -un)" </dev/null \
	    >>"$log" 2>&1 &
	PID=$!
	pids+=("$PID")
	for ((i = 0; i < 1200; i++)); do
		if [[ $(<"$log") =~ $re ]]; then
			PORT=${BASH_REMATCH[1]}
			return 0
		fi
		kill -0 "$PID" 2>/dev/null || break
		sleep 0.1
	done
	echo "kvstored did not start:" >&2
	cat "$log" >&2
	exit 1
}

stop_daemon() {
	kill -TERM "$PID"
	wait "$PID" 2>/dev/null || true
	"$KVSTORED" -R -s "$seg" >/dev/null 2>&1 || true
}

# A real hash: register once, read it from the users file.
users=$out/users.seed
rm -f "$users"
start_daemon "$out/seed.log" "$KVSTORED" -m 16 -A "$users"
printf 'register seed %s\r\n' "$secret" | timeout 10 nc -N 127.0.0.1 "$PORT" \
    >/dev/null
stop_daemon
hash=$(sed -n 's/^seed:guest://p' "$users")
[[ $hash == '$'* ]] || { echo "no hash in $users" >&2; exit 1; }

session() {	# N: login as $last, then N put/get pairs
	{
		printf 'login %s %s\r\n' "$last" "$secret"
		awk -v n="$1" 'BEGIN { for (i = 0; i < n; i++)
		    printf "put k%d v%d\r\nget k%d\r\n", i, i, i }'
		printf 'quit\r\n'
	} | timeout 600 nc -N 127.0.0.1 "$PORT" | tr -d '\r' >"$2"
}

total_ir() {	# callgrind file: its total Ir
	awk '/^(summary|totals):/ { print $2; exit }' "$1"
}

for n in 10 "$ACC_BIG"; do
	table=$n
	((table < 1024)) && table=1024
	awk -v h="$hash" -v n="$n" 'BEGIN { for (i = 0; i < n; i++)
	    printf "u%d:guest:%s\n", i, h }' >"$out/users.$n"
	chmod 600 "$out/users.$n"
	last=u$((n - 1))
	rm -f "$out"/cg.$n.*
	# (-a and -N only where they are needed: a build before -a can run
	# the 10 and 1000 cases, for comparison)
	flags=(-m 128)
	# room for a large table on top (kvstored(8) -a: 392 bytes and 8 to 16
	# of index each); one larger than the default buys no buckets, so the
	# items' hash table stays the same size
	((table != 1024)) && flags=(-m $((128 + table * 400 / 1048576 + 1))
	    -a "$table")
	((n > 1000)) && flags+=(-N "$n")
	start_daemon "$out/kvstored.$n.log" valgrind --tool=callgrind \
	    --callgrind-out-file="$out/cg.$n.%p" --zero-before=child_serve \
	    "$KVSTORED" -k 0 "${flags[@]}" -A "$out/users.$n"
	session 0 "$out/s0.$n"
	session "$N1" "$out/s1.$n"
	session "$N2" "$out/s2.$n"
	stop_daemon
	grep -q "^OK $last guest" "$out/s2.$n" || {
		echo "login as $last failed: $(head -1 "$out/s2.$n")" >&2
		exit 1
	}
	# the children that ran cmd_login, in the order they were forked
	mapfile -t files < <(grep -l 'cmd_login' "$out"/cg.$n.* |
	    awk -F. '{ print $NF, $0 }' | sort -n | cut -d' ' -f2)
	[[ ${#files[@]} -eq 3 ]] || { echo "children: ${files[*]}" >&2; exit 1; }
	s0=$(total_ir "${files[0]}")
	s1=$(total_ir "${files[1]}")
	s2=$(total_ir "${files[2]}")
	incl() {	# FUNCTION: its inclusive Ir in S0's child
		callgrind_annotate --inclusive=yes --threshold=100 \
		    "${files[0]}" 2>/dev/null | awk -v f="$1" \
		    'index($0, f " [") { gsub(",", "", $1); print $1; exit }'
	}
	find_ir=$(incl accounts.c:lookup)
	crypt_ir=$(incl :crypt_rn)
	per=$(awk -v a="$s1" -v b="$s2" -v n1="$N1" -v n2="$N2" \
	    'BEGIN { printf "%.1f", (b - a) / (2 * (n2 - n1)) }')

	# and the login's wall time, without valgrind: the median of 21
	start_daemon "$out/plain.$n.log" "$KVSTORED" "${flags[@]}" \
	    -A "$out/users.$n"
	ms=()
	for ((i = 0; i < 21; i++)); do
		t0=$EPOCHREALTIME
		printf 'login %s %s\r\n' "$last" "$secret" |
		    timeout 10 nc -N 127.0.0.1 "$PORT" >/dev/null
		t1=$EPOCHREALTIME
		ms+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) * 1000 }')")
	done
	stop_daemon
	med=$(printf '%s\n' "${ms[@]}" | sort -n | sed -n 11p)
	min=$(printf '%s\n' "${ms[@]}" | sort -n | sed -n 1p)
	printf '%7d accounts (-a %7d): login %s Ir, %s without crypt, name lookup %s; request %s Ir; login %s ms median, %s min (21, wall)\n' \
	    "$n" "$table" "$s0" "$((s0 - ${crypt_ir:-0}))" "${find_ir:-?}" \
	    "$per" "$med" "$min" | tee -a "$out/summary"
done
echo "callgrind files and replies in $out"
