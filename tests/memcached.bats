#!/usr/bin/env bats
# tests/memcached.bats - kvstored's memcached listener (-M, -B): memcached's
# own tools against it, exact replies to bad input, the -Y style login and
# manager store selection, expiry, cas, incr/decr, flush_all, the native
# protocol seeing the same items, and three instances behind twemproxy.
#
# Needs libmemcached-tools (memccapable, memccp, memccat, memcrm, memcstat,
# memcaslap) and nutcracker; a test whose tool is missing is skipped.

bats_require_minimum_version 1.5.0
load helpers

MC_PORT=
NC_PID=
INST_PIDS=()
INST_SHMS=()
INST_PORTS=()

teardown() {
	nc_stop
	inst_stop_all
	kv_stop
}

# mc_log_ports LOG: wait (5 s) for both start: lines in a kvstored log and
# print "NATIVE-PORT MEMCACHED-PORT".
mc_log_ports() {
	local i text native= mc=
	local re1='start: kvstored [^ ]+ listen [^ ]+ port ([0-9]+) '
	local re2='start: memcached protocol listen [^ ]+ port ([0-9]+)'

	for ((i = 0; i < 100; i++)); do
		text=$(<"$1")
		[[ $text =~ $re1 ]] && native=${BASH_REMATCH[1]}
		[[ $text =~ $re2 ]] && mc=${BASH_REMATCH[1]}
		if [[ -n $native && -n $mc ]]; then
			echo "$native $mc"
			return 0
		fi
		sleep 0.05
	done
	echo "mc_log_ports: no memcached listener in $1:" >&2
	cat "$1" >&2
	return 1
}

# mc_start [kvstored flags]: kv_start with a memcached listener on a free
# port; sets KV_PORT (native) and MC_PORT.
mc_start() {
	local ports

	kv_start -M 0 "$@" || return 1
	ports=$(mc_log_ports "$KV_LOG") || return 1
	KV_PORT=${ports% *}
	MC_PORT=${ports#* }
	export KV_PORT MC_PORT
}

# mc_nc [PORT]: stdin to the memcached listener (MC_PORT by default), the
# raw reply to stdout.
mc_nc() {
	timeout 10 nc -N 127.0.0.1 "${1:-$MC_PORT}"
}

# mc_lines FORMAT [ARGS]: printf FORMAT to the listener, reply without CRs.
mc_lines() {
	local fmt=$1
	shift
	printf -- "$fmt" "$@" | mc_nc | tr -d '\r'
}

# mc_check REQUEST REPLY: send printf format REQUEST on a new connection;
# the reply must be printf format REPLY, byte for byte.
mc_check() {
	local got want

	got=$(printf -- "$1" | mc_nc | od -An -c)
	want=$(printf -- "$2" | od -An -c)
	if [[ $got != "$want" ]]; then
		printf 'request: %q\nwant:%s\ngot: %s\n' "$1" "$want" "$got" >&2
		return 1
	fi
}

# mc_login WHO SECRET: memcached -Y's login, a set whose data is
# "WHO SECRET"; WHO is a user, or manager:user to act on user's store.
mc_login() {
	local data="$1 $2"

	printf 'set auth 0 0 %d\r\n%s\r\n' "${#data}" "$data"
}

# mc_as USER FORMAT [ARGS]: log in as USER (registered through the native
# client first), then send FORMAT; print the replies after the login's.
mc_as() {
	local user=$1 fmt=$2 first
	shift 2

	kv_session "$user" || return 1
	{
		mc_login "$user" "$(<"$(kv_secret "$user")")"
		printf -- "$fmt" "$@"
	} | mc_nc | tr -d '\r' | {
		IFS= read -r first
		if [[ $first != STORED ]]; then
			echo "mc_as: login as $user failed: $first" >&2
			return 1
		fi
		cat
	}
}

# kv_version: the daemon's version, as "stats" shows it in kvstore_version.
kv_version() {
	"$KVSTORED" -V | cut -d' ' -f2
}

need() {
	local t

	for t in "$@"; do
		command -v "$t" >/dev/null ||
		    skip "$t not installed (apt-get install libmemcached-tools nutcracker)"
	done
}

# ---- several instances, for the proxy --------------------------------------

# inst_start N: another kvstored, memcached listener bound to account
# "pool", on the engine KV_ENGINE names (helpers.bash); its memcached port
# goes to INST_PORTS[N].
inst_start() {
	local n=$1 log=$BATS_TEST_TMPDIR/inst$1.log shm=$KV_SHM-$1 ports

	: >"$log"
	"$KVSTORED" -f -p 0 -l 127.0.0.1 -M 0 -B pool -s "$shm" -m 16 \
	    -u "$(id -un)" "${KV_ENGINE_ARGS[@]}" </dev/null >"$log" 2>&1 3>&- &
	INST_PIDS[n]=$!
	INST_SHMS[n]=$shm
	ports=$(mc_log_ports "$log") || return 1
	INST_PORTS[n]=${ports#* }
}

# inst_stop N: stop instance N and its connection processes (a host gone).
inst_stop() {
	local pid=${INST_PIDS[$1]-} kids k

	if [[ -n $pid ]]; then
		kids=$(pgrep -P "$pid" 2>/dev/null || true)
		kill -TERM "$pid" 2>/dev/null || true
		for k in $kids; do
			kill -KILL "$k" 2>/dev/null || true
		done
		wait "$pid" 2>/dev/null || true
		INST_PIDS[$1]=
	fi
	if [[ -n ${INST_SHMS[$1]-} ]]; then
		"$KVSTORED" -R -s "${INST_SHMS[$1]}" >/dev/null 2>&1 || true
		INST_SHMS[$1]=
	fi
}

inst_stop_all() {
	local n

	for n in "${!INST_PIDS[@]}"; do
		inst_stop "$n"
	done
}

# nc_start: nutcracker (twemproxy) over the instances in INST_PORTS, as in
# contrib/nutcracker.yml: ketama over fnv1a_64, and a host that fails is not
# ejected (auto_eject_hosts: false), so its keys never move to another one.
# A long timeout: a loaded test machine must not turn into proxy timeouts.
# Picks free loopback ports; sets NC_PORT.
nc_start() {
	local conf=$BATS_TEST_TMPDIR/nutcracker.yml try i n

	for ((try = 0; try < 10; try++)); do
		NC_PORT=$((20000 + RANDOM % 12000))	# below the ephemeral ports
		{
			echo "kvstore:"
			echo "  listen: 127.0.0.1:$NC_PORT"
			echo "  hash: fnv1a_64"
			echo "  distribution: ketama"
			echo "  timeout: 10000"
			echo "  auto_eject_hosts: false"
			echo "  servers:"
			for n in "${!INST_PORTS[@]}"; do
				echo "   - 127.0.0.1:${INST_PORTS[n]}:1 kv$n"
			done
		} >"$conf"
		nutcracker -c "$conf" -s $((NC_PORT + 1)) -a 127.0.0.1 \
		    -p "$BATS_TEST_TMPDIR/nutcracker.pid" \
		    -o "$BATS_TEST_TMPDIR/nutcracker.log" </dev/null \
		    >/dev/null 2>&1 3>&- &
		NC_PID=$!
		for ((i = 0; i < 100; i++)); do
			kv_alive "$NC_PID" || break
			nc -z 127.0.0.1 "$NC_PORT" 2>/dev/null && return 0
			sleep 0.05
		done
		nc_stop
	done
	echo "nc_start: nutcracker did not start" >&2
	cat "$BATS_TEST_TMPDIR/nutcracker.log" >&2
	return 1
}

nc_stop() {
	if [[ -n ${NC_PID-} ]]; then
		kill -TERM "$NC_PID" 2>/dev/null || true
		wait "$NC_PID" 2>/dev/null || true
		NC_PID=
	fi
}

# ---- memcached's tools ------------------------------------------------------

@test "memccapable: all 27 ASCII conformance tests pass" {
	need memccapable
	mc_start -B tester
	# -t 10: a loaded machine must not turn into its 2 s I/O timeouts
	run timeout 120 memccapable -t 10 -h 127.0.0.1 -p "$MC_PORT" -a
	assert_success
	assert_output --partial "All tests passed"
	[[ $(grep -c '\[pass\]' <<<"$output") -eq 27 ]]
}

@test "memccp, memccat, memcstat and memcrm round trip a file" {
	need memccp memccat memcstat memcrm
	mc_start -B tester
	local srv=127.0.0.1:$MC_PORT f=$BATS_TEST_TMPDIR/blob.bin
	head -c 70000 /dev/urandom >"$f"

	run memccp --servers="$srv" "$f"
	assert_success
	# memccat ends the value with a newline of its own
	memccat --servers="$srv" blob.bin | head -c 70000 | cmp - "$f"
	run memcstat --servers="$srv"
	assert_success
	assert_line --partial "curr_items: 1"
	assert_line --partial "version: 1.6.18"
	refute_line --partial "version: 1.6.18+"
	assert_line --partial "kvstore_version: $(kv_version)"
	run memcrm --servers="$srv" blob.bin
	assert_success
	run memccat --servers="$srv" blob.bin
	assert_failure
}

@test "memcaslap: 5 s of load with verification, no verify failures" {
	need memcaslap
	mc_start -B tester -m 128
	run timeout 60 memcaslap -s "127.0.0.1:$MC_PORT" -t 5s -T 1 -c 16 \
	    -w 2k -v 0.1 -e 0.05
	assert_success
	echo "$output" | grep -E '^(cmd_get|cmd_set|get_misses|verify_|expired_get|unexpired_unget|Run time)'
	assert_line "verify_failed: 0"
	assert_line "verify_misses: 0"
	assert_line "unexpired_unget: 0"
	assert_line --regexp '^cmd_get: [1-9][0-9]*$'
	assert_line --regexp '^cmd_set: [1-9][0-9]*$'
}

# ---- exact replies -----------------------------------------------------------

@test "malformed requests get memcached's exact replies, and the connection goes on" {
	mc_start -B tester
	local k251
	k251=$(printf 'a%.0s' {1..251})

	mc_check 'bogus\r\n' 'ERROR\r\n'
	mc_check '\r\n' 'ERROR\r\n'
	mc_check 'get\r\n' 'ERROR\r\n'
	mc_check 'set k 0 0\r\n' 'ERROR\r\n'
	mc_check 'set k 0 0 1 noreply extra\r\nx\r\n' 'ERROR\r\nERROR\r\n'
	mc_check 'set k 0 0 x\r\nab\r\n' \
	    'CLIENT_ERROR bad command line format\r\nERROR\r\n'
	mc_check 'set k 0 0 -1\r\n' 'CLIENT_ERROR bad command line format\r\n'
	mc_check 'set k 4294967296 0 1\r\nx\r\n' \
	    'CLIENT_ERROR bad command line format\r\nERROR\r\n'
	mc_check "set $k251 0 0 1\\r\\nx\\r\\n" \
	    'CLIENT_ERROR bad command line format\r\nERROR\r\n'
	mc_check "get k $k251\\r\\n" 'CLIENT_ERROR bad command line format\r\n'
	mc_check 'get k\0x\r\n' 'CLIENT_ERROR bad command line format\r\n'
	mc_check 'set k 0 0 3\r\nabcd\r\n' \
	    'CLIENT_ERROR bad data chunk\r\nERROR\r\n'
	mc_check 'set k 0 0 noreply\r\nx\r\n' 'ERROR\r\n'
	mc_check 'incr k abc\r\n' 'CLIENT_ERROR invalid numeric delta argument\r\n'
	mc_check 'incr k 18446744073709551616\r\n' \
	    'CLIENT_ERROR invalid numeric delta argument\r\n'
	mc_check 'set k 0 0 1\r\nx\r\nincr k 1\r\n' \
	    'STORED\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n'
	mc_check 'touch k abc\r\n' 'CLIENT_ERROR invalid exptime argument\r\n'
	mc_check 'gat x k\r\n' 'CLIENT_ERROR invalid exptime argument\r\n'
	mc_check 'flush_all x\r\n' 'CLIENT_ERROR invalid exptime argument\r\n'
	mc_check 'delete k 5\r\n' \
	    'CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n'
	mc_check 'delete a b c d e\r\n' 'ERROR\r\n'
	mc_check 'verbosity x\r\n' 'CLIENT_ERROR bad command line format\r\n'
	mc_check 'verbosity\r\n' 'ERROR\r\n'
	mc_check 'stats noreply\r\n' 'ERROR\r\n'
	mc_check 'stats bogus\r\n' 'ERROR\r\n'
	# after all of these in one stream, the connection still answers
	mc_check 'bogus\r\nset k 0 0 x\r\nab\r\nset k 0 0 3\r\nabcd\r\nversion foo\r\n' \
	    "ERROR\\r\\nCLIENT_ERROR bad command line format\\r\\nERROR\\r\\nCLIENT_ERROR bad data chunk\\r\\nERROR\\r\\nVERSION 1.6.18\\r\\n"
}

@test "oversized values are refused and swallowed; huge lengths allocate nothing" {
	mc_start -B tester
	local max=1048576

	# exactly the value limit is stored and read back whole
	run bash -c "{ printf 'set big 0 0 $max\r\n'; head -c $max /dev/zero |
	    tr '\\0' z; printf '\r\nget big\r\n'; } | timeout 10 nc -N 127.0.0.1 $MC_PORT | wc -c"
	assert_output "$((8 + 21 + max + 2 + 5))"
	# one byte more: refused, the data dropped, the old value gone (as
	# memcached), the stream in step again
	run bash -c "{ printf 'set big 0 0 $((max + 1))\r\n'; head -c $((max + 1)) /dev/zero |
	    tr '\\0' z; printf '\r\nget big\r\nversion\r\n'; } |
	    timeout 10 nc -N 127.0.0.1 $MC_PORT | tr -d '\r'"
	assert_output "SERVER_ERROR object too large for cache
END
VERSION 1.6.18"
	# a declared 2 GiB is refused at once, nothing buffered; with noreply
	# even that is silent
	mc_check 'set k 0 0 2147483645\r\n' \
	    'SERVER_ERROR object too large for cache\r\n'
	mc_check 'set k 0 0 2147483645 noreply\r\n' ''
	# a 2147483648-byte length is no int32: memcached's format error
	mc_check 'set k 0 0 2147483648\r\n' \
	    'CLIENT_ERROR bad command line format\r\n'
	# while 20 MB of a declared 2 GB value stream in, the connection's
	# process stays small: nothing is buffered for it
	local fd line child rss
	exec {fd}<>"/dev/tcp/127.0.0.1/$MC_PORT"
	printf 'set k 0 0 2000000000\r\n' >&"$fd"
	head -c 20000000 /dev/zero >&"$fd"
	IFS= read -r -t 5 line <&"$fd"
	child=$(pgrep -n -P "$KV_PID")
	rss=$(ps -o rss= -p "$child")
	exec {fd}>&-
	[[ $line == $'SERVER_ERROR object too large for cache\r' ]]
	echo "connection process $child: rss $rss KiB"
	[[ $rss -lt 16384 ]]
}

@test "long lines: a multi-get of 3000 keys works, other long lines close" {
	mc_start -B tester
	local keys
	keys=$(awk 'BEGIN { for (i = 0; i < 3000; i++) printf " key%d", i % 3 }')

	run mc_lines "set key1 7 0 2\r\nv1\r\nget$keys\r\n"
	assert_success
	[[ $(grep -c '^VALUE key1 7 2$' <<<"$output") -eq 1000 ]]
	assert_line --index 0 STORED
	[[ ${lines[-1]} == END ]]
	run mc_lines "set$keys\r\nversion\r\n"
	assert_output "CLIENT_ERROR line too long"
}

# ---- behaviour ---------------------------------------------------------------

@test "storage commands, cas, incr/decr, touch and gat answer as memcached" {
	mc_start -B tester

	run mc_lines 'add a 1 0 1\r\nx\r\nadd a 1 0 1\r\ny\r\nreplace b 0 0 1\r\nx\r\nreplace a 2 0 2\r\nxy\r\nappend a 9 0 1\r\nz\r\nprepend a 9 0 1\r\nw\r\nappend none 0 0 1\r\nx\r\nget a none\r\n'
	assert_output "STORED
NOT_STORED
NOT_STORED
STORED
STORED
STORED
NOT_STORED
VALUE a 2 4
wxyz
END"
	# cas: the right unique stores once; a stale one is EXISTS; a missing
	# key is NOT_FOUND
	run mc_lines 'set c 0 0 1\r\n1\r\ngets c\r\n'
	local cas
	cas=$(sed -n 's/^VALUE c 0 1 \([0-9]*\)$/\1/p' <<<"$output")
	[[ -n $cas ]]
	run mc_lines "cas c 5 0 1 $cas\\r\\n2\\r\\ncas c 5 0 1 $cas\\r\\n3\\r\\ncas nokey 0 0 1 $cas\\r\\nx\\r\\ngets c\\r\\n"
	assert_line --index 0 STORED
	assert_line --index 1 EXISTS
	assert_line --index 2 NOT_FOUND
	assert_line --index 3 --regexp '^VALUE c 5 1 [0-9]+$'
	[[ ${lines[3]##* } != "$cas" ]]
	assert_line --index 4 2
	# incr wraps at 2^64, decr stops at 0
	run mc_lines 'set n 0 0 20\r\n18446744073709551615\r\nincr n 1\r\nincr n 41\r\ndecr n 40\r\ndecr n 5\r\nget n\r\nincr nokey 1\r\ndelete n\r\ndelete n\r\n'
	assert_output "STORED
0
41
1
0
VALUE n 0 1
0
END
NOT_FOUND
DELETED
NOT_FOUND"
	# noreply: nothing until the version that follows
	run mc_lines 'set q 0 0 1 noreply\r\nx\r\nincr q 1 noreply\r\ndelete q noreply\r\ntouch q 10 noreply\r\nflush_all noreply\r\nversion\r\n'
	assert_output 'VERSION 1.6.18'
	# touch and gat
	run mc_lines 'set t 3 0 1\r\nv\r\ntouch t 100\r\ntouch none 100\r\ngat 100 t none\r\ngats 0 t\r\n'
	assert_line --index 0 STORED
	assert_line --index 1 TOUCHED
	assert_line --index 2 NOT_FOUND
	assert_line --index 3 "VALUE t 3 1"
	assert_line --index 5 END
	assert_line --index 6 --regexp '^VALUE t 3 1 [0-9]+$'
}

@test "pipelined gets in one write: gets, gets with cas, mg, and values that look like gets, each answered exactly, in order" {
	mc_start -B tester
	local req= want= i big cas

	# The front-end looks ahead over the lines waiting (to warm the store
	# for their keys): a value that looks like a get line, a 250-byte key,
	# a set of 5000 bytes past the look-ahead and the lines after it are
	# all answered as if read one by one.
	big=$(printf '%05000d' 7)
	for ((i = 0; i < 24; i++)); do
		req+="set k$i 0 0 ${#i}\r\n$i\r\n"
		want+="STORED"$'\n'
	done
	req+="set g 0 0 7\r\nget k1 \r\nset $(printf 'x%.0s' {1..250}) 3 0 1\r\nL\r\n"
	want+="STORED"$'\n'"STORED"$'\n'
	for ((i = 0; i < 24; i += 2)); do
		req+="get k$i\r\nget nokey$i\r\n"
		want+="VALUE k$i 0 ${#i}"$'\n'"$i"$'\n'"END"$'\n'"END"$'\n'
	done
	req+="get g\r\nmg k3 v\r\nmg none v\r\nget  k5   k7 \r\n"
	want+="VALUE g 0 7"$'\n'"get k1 "$'\n'"END"$'\n'"VA 1"$'\n'"3"$'\n'"EN"$'\n'
	want+="VALUE k5 0 1"$'\n'"5"$'\n'"VALUE k7 0 1"$'\n'"7"$'\n'"END"$'\n'
	req+="get $(printf 'x%.0s' {1..250})\r\nset b 0 0 5000\r\n$big\r\nget b\r\nget k9\r\ngets k11\r\n"
	want+="VALUE $(printf 'x%.0s' {1..250}) 3 1"$'\n'"L"$'\n'"END"$'\n'"STORED"$'\n'
	want+="VALUE b 0 5000"$'\n'"$big"$'\n'"END"$'\n'"VALUE k9 0 1"$'\n'"9"$'\n'"END"$'\n'
	run mc_lines "${req}gets k11\r\nget $(printf 'y%.0s' {1..251})\r\nget k13\r\n"
	cas=$(sed -n 's/^VALUE k11 0 2 \([0-9]*\)$/\1/p' <<<"$output" | head -n 1)
	[[ -n $cas ]]
	want+="VALUE k11 0 2 $cas"$'\n'"11"$'\n'"END"$'\n'
	want+="VALUE k11 0 2 $cas"$'\n'"11"$'\n'"END"$'\n'
	want+="CLIENT_ERROR bad command line format"$'\n'
	want+="VALUE k13 0 2"$'\n'"13"$'\n'"END"
	assert_output "$want"
}

@test "expiry: relative, absolute, negative; visible as the native TTL" {
	mc_start
	local now i
	now=$(date +%s)

	run mc_as xu "set neg 0 -1 1\\r\\nx\\r\\nget neg\\r\\nset past 0 1000000000 1\\r\\nx\\r\\nget past\\r\\nset rel 0 100 1\\r\\nx\\r\\nset abs 0 $((now + 5000000)) 1\\r\\nx\\r\\nset never 0 0 1\\r\\nx\\r\\nset soon 0 1 1\\r\\nx\\r\\n"
	assert_output "STORED
END
STORED
END
STORED
STORED
STORED
STORED"
	run kv_raw_lines_as xu 'ttl rel\nttl abs\nttl never\n'
	assert_line --index 0 --regexp '^TTL (99|100)$'
	assert_line --index 1 --regexp '^TTL (4999[0-9]{3}|5000000)$'
	assert_line --index 2 'TTL -1'
	# touch and gat move the expiry; 0 means never
	run mc_as xu 'touch rel 2000\r\ngat 0 abs\r\n'
	assert_line --index 0 TOUCHED
	run kv_raw_lines_as xu 'ttl rel\nttl abs\n'
	assert_line --index 0 --regexp '^TTL (1999|2000)$'
	assert_line --index 1 'TTL -1'
	# a 1-second expiry ends within a few seconds (polled, deadline 5 s)
	for ((i = 0; i < 50; i++)); do
		run mc_as xu 'get soon\r\n'
		[[ $output == END ]] && break
		sleep 0.1
	done
	assert_output END
	# a negative touch ends the item at once
	run mc_as xu 'touch rel -1\r\nget rel\r\n'
	assert_output "TOUCHED
END"
}

@test "flush_all empties the caller's store only" {
	mc_start -B tester
	run kv -u other put keep native
	assert_success

	run mc_lines 'set a 0 0 1\r\n1\r\nset b 0 0 1\r\n2\r\nflush_all\r\nget a b\r\nstats\r\n'
	assert_line --index 2 OK
	assert_line --index 3 END
	assert_line "STAT curr_items 0"
	assert_line "STAT kvstore_user tester"
	assert_line --regexp '^STAT kvstore_items [1-9]'
	run kv -u other get keep
	assert_success
	assert_output native
}

# curr_connections is what memcached's is, connections open now: not the
# processes on the segment (spares, the crawler, an event worker's many).
@test "stats: curr_connections counts the connections open now, not processes" {
	local a b c fd line n i
	mc_start -B tester
	# Three held open, each answered once, so each is being served.
	exec {a}<>"/dev/tcp/127.0.0.1/$MC_PORT" {b}<>"/dev/tcp/127.0.0.1/$MC_PORT" \
	    {c}<>"/dev/tcp/127.0.0.1/$MC_PORT"
	for fd in "$a" "$b" "$c"; do
		printf 'version\r\n' >&"$fd"
		IFS= read -r -t 10 line <&"$fd"
		[[ $line == "VERSION "* ]]
	done
	run -0 mc_lines 'stats\r\n'
	assert_line 'STAT curr_connections 4'
	# One closes: the count follows (a deadline, not a sleep).
	exec {c}>&-
	for ((i = 0; i < 100; i++)); do
		n=$(mc_lines 'stats\r\n' | sed -n 's/^STAT curr_connections //p')
		[[ $n == 3 ]] && break
		sleep 0.1
	done
	exec {a}>&- {b}>&-
	echo "curr_connections $n"
	[ "$n" = 3 ]
}

# A connection turned away at -c is counted in rejected_connections, in
# either engine (the event engine refuses in the worker, not the master).
@test "stats: a connection refused at -c counts in rejected_connections" {
	local a b line n i
	mc_start -B tester -c 2
	exec {a}<>"/dev/tcp/127.0.0.1/$MC_PORT" {b}<>"/dev/tcp/127.0.0.1/$MC_PORT"
	for fd in "$a" "$b"; do
		printf 'version\r\n' >&"$fd"
		IFS= read -r -t 10 line <&"$fd"
		[[ $line == "VERSION "* ]]
	done
	run mc_lines 'version\r\n'
	assert_output 'SERVER_ERROR busy too many connections'
	exec {b}>&-
	# Served again once b's end is seen (a deadline, not a sleep).
	for ((i = 0; i < 100; i++)); do
		n=$(mc_lines 'stats\r\n' |
		    sed -n 's/^STAT rejected_connections //p')
		[[ -n $n ]] && break
		sleep 0.1
	done
	exec {a}>&-
	echo "rejected_connections $n"
	[ "$n" = 1 ]
}

# memcached: items stored before the flush time vanish at that time; those
# stored after it stay.  Another store is untouched.
@test "flush_all with a delay: earlier items vanish at the flush time" {
	mc_start -B tester
	run -0 kv -u other put keep native
	start=$(date +%s)
	run mc_lines 'set a 0 0 1\r\n1\r\nflush_all 2\r\nset b 0 0 1\r\n2\r\nget a b\r\n'
	assert_output "STORED
OK
STORED
VALUE a 0 1
1
VALUE b 0 1
2
END"
	# poll, with a deadline, until the flush time has passed
	for ((n = 0; n < 100; n++)); do
		(( $(date +%s) >= start + 3 )) && break
		run mc_lines 'get a\r\n'
		[[ $output == END ]] && break
		sleep 0.1
	done
	(( $(date +%s) >= start + 2 ))
	run mc_lines 'get a b\r\nset c 0 0 1\r\n3\r\nget c\r\nstats\r\n'
	assert_line --index 0 END
	assert_line --index 1 STORED
	assert_line --index 2 "VALUE c 0 1"
	assert_line "STAT curr_items 1"
	run -0 kv -u other get keep
	assert_output native
	# a later flush replaces a pending one; flush_all 0 is now
	run mc_lines 'flush_all 100\r\nflush_all 0\r\nget c\r\nset d 0 0 1\r\n4\r\nflush_all 1000\r\nflush_all -1\r\nget d\r\n'
	assert_output "OK
OK
END
STORED
OK
OK
END"
}

@test "flush_all with a delay from a manager: the store it chose, no other" {
	local ctl=${KVSTORECTL:-$(dirname "$KVSTORED")/kvstorectl} as n
	mc_start
	run -0 kv -u bob put old b
	run -0 kv -u alice put mine a
	run -0 "$ctl" -s "$KV_SHM" promote alice
	as=$(<"$(kv_secret alice)")
	run bash -c "{ $(declare -f mc_login); mc_login alice:bob $as;
	    printf 'flush_all 1\r\nget old\r\n'; } |
	    timeout 10 nc -N 127.0.0.1 $MC_PORT | tr -d '\r'"
	assert_output "STORED
OK
VALUE old 0 1
b
END"
	for ((n = 0; n < 50; n++)); do
		run kv -u bob get old
		[[ $output == '' ]] && break
		sleep 0.1
	done
	assert_output ''
	run -0 kv -u alice get mine
	assert_output a
	run -0 kv -u bob put new n get new
	assert_output n
	grep -q 'user=alice role=manager action=flush_all target=bob' "$KV_LOG"
}

@test "hash key: a daemon started again on its segment keeps the segment's key and finds every item" {
	: "${STORETEST:?STORETEST is not set (run the tests with make check)}"
	local id1 id2 i reqs= gets= out

	mc_start -B tester
	for ((i = 0; i < 300; i++)); do
		reqs+="set key$i 0 0 ${#i}\r\n$i\r\n"
		gets+="get key$i\r\n"
	done
	out=$(printf -- "$reqs" | mc_nc | tr -d '\r' | sort | uniq -c)
	[ "$out" = "    300 STORED" ]
	id1=$("$STORETEST" "$KV_SHM" 16 1048576 <<<'keyid')
	[[ $id1 =~ ^[0-9a-f]{16}$ ]]
	kill -TERM "$KV_PID"
	wait "$KV_PID" || true
	KV_PID=
	[ -e "/dev/shm/${KV_SHM#/}" ]

	mc_start -B tester
	id2=$("$STORETEST" "$KV_SHM" 16 1048576 <<<'keyid')
	[ "$id1" = "$id2" ]
	run -0 bash -c "printf -- '$gets' | timeout 10 nc -N 127.0.0.1 $MC_PORT |
	    tr -d '\r'"
	[ "${#lines[@]}" -eq 900 ]
	for ((i = 0; i < 300; i++)); do
		[ "${lines[3 * i]}" = "VALUE key$i 0 ${#i}" ]
		[ "${lines[3 * i + 1]}" = "$i" ]
		[ "${lines[3 * i + 2]}" = END ]
	done
	# the checker recomputes every item's hash under the segment's key
	run -0 "$STORETEST" "$KV_SHM" 16 1048576 <<<'check'
	assert_output clean
}

# ---- identity ----------------------------------------------------------------

@test "items cross between the memcached and the native protocol" {
	mc_start
	run kv -u xu put fromnative 'bytes with spaces "and" quotes'
	assert_success

	run mc_as xu 'get fromnative\r\nset frommc 42 0 11\r\nhello\tworld\r\n'
	assert_output "VALUE fromnative 0 30
bytes with spaces \"and\" quotes
END
STORED"
	run kv -u xu get frommc
	assert_success
	assert_output $'hello\tworld'
	# another user's store is another namespace
	run kv -u yu get frommc
	assert_success
	assert_output ""
}

@test "login: memcached -Y style, failures alike, managers choose a store" {
	mc_start
	kv_session alice
	kv_session bob
	local as
	as=$(<"$(kv_secret alice)")
	run kv -u bob put k bobs
	assert_success

	# nothing but the login set before login
	mc_check 'get k\r\nversion\r\nquit\r\n' \
	    'CLIENT_ERROR unauthenticated\r\nCLIENT_ERROR unauthenticated\r\nCLIENT_ERROR unauthenticated\r\n'
	# wrong secret and unknown user read the same
	run bash -c "{ $(declare -f mc_login); mc_login alice wrong;
	    mc_login nosuchuser wrong; mc_login alice; printf 'get k\r\n'; } |
	    timeout 10 nc -N 127.0.0.1 $MC_PORT | tr -d '\r'"
	assert_output "CLIENT_ERROR authentication failure
CLIENT_ERROR authentication failure
CLIENT_ERROR bad authentication token format
CLIENT_ERROR unauthenticated"
	# a too-long login is dropped as it streams
	mc_check 'set a 0 0 100000\r\n' 'CLIENT_ERROR authentication failure\r\n'
	# failures are audited and counted as the native protocol's are
	run grep -c 'action=login-failed' "$KV_LOG"
	[[ $output -eq 2 ]]

	# a guest may name its own store, not another's
	run mc_as bob 'get k\r\n'
	assert_output "VALUE k 0 4
bobs
END"
	run bash -c "{ $(declare -f mc_login); mc_login alice:bob $as;
	    printf 'get k\r\n'; } | timeout 10 nc -N 127.0.0.1 $MC_PORT |
	    tr -d '\r'"
	assert_output "CLIENT_ERROR denied not a manager
CLIENT_ERROR unauthenticated"

	# a manager acts on the store it named
	local ctl=${KVSTORECTL:-$(dirname "$KVSTORED")/kvstorectl}
	[[ -x $ctl ]] || skip "no kvstorectl to promote a manager"
	run "$ctl" -s "$KV_SHM" promote alice
	assert_success
	run bash -c "{ $(declare -f mc_login); mc_login alice:bob $as;
	    printf 'get k\r\nset k2 0 0 5\r\nalice\r\nstats\r\n'; } |
	    timeout 10 nc -N 127.0.0.1 $MC_PORT | tr -d '\r'"
	assert_line --index 0 STORED
	assert_line --index 1 "VALUE k 0 4"
	assert_line "STAT kvstore_user bob"
	run kv -u bob get k2
	assert_output alice
	# a manager's every request on another store is audited
	grep -q 'user=alice role=manager action=use target=bob' "$KV_LOG"
	grep -q 'user=alice role=manager action=set target=bob key="k2"' "$KV_LOG"
	run mc_as alice 'stats\r\n'
	assert_line --regexp '^STAT auth_errors [3-9]'
	run bash -c "{ $(declare -f mc_login); mc_login alice:nobody $as; } |
	    timeout 10 nc -N 127.0.0.1 $MC_PORT | tr -d '\r'"
	assert_output "CLIENT_ERROR denied no such user"
}

# ---- scale-out ---------------------------------------------------------------

@test "nutcracker: 10,000 keys spread over three instances; one stops, the rest serve" {
	need nutcracker
	kv_env
	local n total=0 items gone=$BATS_TEST_TMPDIR/gone.keys
	for n in 1 2 3; do
		inst_start "$n"
	done
	nc_start

	# 10,000 sets through the proxy, every one STORED
	run bash -c "seq 0 9999 | awk '{ v = \"val\" \$1;
	    printf \"set key%d 0 0 %d\\r\\n%s\\r\\n\", \$1, length(v), v }' |
	    timeout 30 nc -N 127.0.0.1 $NC_PORT | grep -c '^STORED'"
	assert_output 10000
	# every instance holds a share (its own stats say so), all add up
	for n in 1 2 3; do
		items=$(printf 'stats\r\n' | mc_nc "${INST_PORTS[n]}" |
		    tr -d '\r' | sed -n 's/^STAT curr_items //p')
		echo "instance $n: $items items"
		[[ $items -gt 0 ]]
		total=$((total + items))
	done
	[[ $total -eq 10000 ]]
	# every key reads back through the proxy
	seq 0 9999 | awk '{ printf "get key%d\r\n", $1 }' |
	    timeout 30 nc -N 127.0.0.1 "$NC_PORT" >"$BATS_TEST_TMPDIR/got"
	seq 0 9999 | awk '{ v = "val" $1;
	    printf "VALUE key%d 0 %d\r\n%s\r\nEND\r\n", $1, length(v), v }' |
	    cmp - "$BATS_TEST_TMPDIR/got"

	# instance 2 goes away: which keys did it hold?
	seq 0 9999 | awk '{ printf "get key%d\r\n", $1 }' |
	    mc_nc "${INST_PORTS[2]}" | tr -d '\r' |
	    sed -n 's/^VALUE key\([0-9]*\) .*/\1/p' >"$gone"
	[[ -s $gone ]]
	inst_stop 2
	# auto_eject_hosts: false: the proxy keeps the host in the ring, so
	# its keys answer SERVER_ERROR (never a silent miss, never a copy on
	# another host); the keys of the other two are served as before.
	local want=$BATS_TEST_TMPDIR/want
	seq 0 9999 | awk -v gone="$gone" '
	    BEGIN { while ((getline k < gone) > 0) lost[k] = 1 }
	    { v = "val" $1
	      if ($1 in lost) printf "SERVER_ERROR\r\n"
	      else printf "VALUE key%d 0 %d\r\n%s\r\nEND\r\n", $1, length(v), v }' \
	    >"$want"
	seq 0 9999 | awk '{ printf "get key%d\r\n", $1 }' |
	    timeout 30 nc -N 127.0.0.1 "$NC_PORT" |
	    sed 's/^SERVER_ERROR .*/SERVER_ERROR\r/' >"$BATS_TEST_TMPDIR/got"
	cmp "$want" "$BATS_TEST_TMPDIR/got"
	# writes: refused for the stopped host's keys, stored for the others
	local lost kept
	lost=$(head -1 "$gone")
	kept=$(seq 0 9999 | grep -vxF -f "$gone" | head -1)
	run bash -c "printf 'set key$lost 0 0 3\r\nnew\r\nset key$kept 0 0 3\r\nnew\r\nget key$kept\r\n' |
	    timeout 10 nc -N 127.0.0.1 $NC_PORT | tr -d '\r'"
	assert_line --index 0 --regexp '^SERVER_ERROR '
	assert_line --index 1 STORED
	assert_line --index 2 "VALUE key$kept 0 3"
	assert_line --index 3 new
}
