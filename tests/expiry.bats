#!/usr/bin/env bats
# tests/expiry.bats - expired items are reclaimed (issue 11): a write that
# would be refused reclaims first, in inetd mode (no master, no crawler) as
# under the daemon; expired keys do not count against -q; the master's
# crawler reclaims with no request touching the keys, is restarted after
# kill -9 (wherever it was, and while it holds a stripe: KVSTORED_HOOKS),
# leaves the store clean, and stops with the daemon.
#
# Every wait is a poll with a deadline: for the clock to pass an expiry, or
# for a counter in "stats" to move.

bats_require_minimum_version 1.5.0
load helpers

MC_PORT=

teardown() {
	kv_stop
}

VAL10K=$(printf '%010000d' 0)

# mc_ports: wait (5 s) for the memcached listener's start: line; sets MC_PORT.
mc_ports() {
	local i re='start: memcached protocol listen [^ ]+ port ([0-9]+)'

	for ((i = 0; i < 100; i++)); do
		if [[ $(<"$KV_LOG") =~ $re ]]; then
			MC_PORT=${BASH_REMATCH[1]}
			return 0
		fi
		sleep 0.05
	done
	echo "mc_ports: no memcached listener in $KV_LOG" >&2
	cat "$KV_LOG" >&2
	return 1
}

# mc_send FILE: FILE to the memcached listener, the reply without CRs.
mc_send() {
	timeout 30 nc -N 127.0.0.1 "$MC_PORT" <"$1" | tr -d '\r'
}

# mc_stat NAME: one figure of the memcached listener's "stats".
mc_stat() {
	printf 'stats\r\n' | timeout 10 nc -N 127.0.0.1 "$MC_PORT" |
	    tr -d '\r' | awk -v n="$1" '$1 == "STAT" && $2 == n { print $3 }'
}

# mc_auth USER: memcached -Y's login as USER (kv_session made it).
mc_auth() {
	local s

	s=$(<"$(kv_secret "$1")")
	printf 'set auth 0 0 %d\r\n%s %s\r\n' $((${#1} + 1 + ${#s})) "$1" "$s"
}

# mc_sets FILE N PREFIX EXPTIME [VALUE]: N memcached sets, of a 10,000-byte
# value unless VALUE is given.
mc_sets() {
	awk -v n="$2" -v p="$3" -v e="$4" -v v="${5:-$VAL10K}" 'BEGIN {
		for (i = 1; i <= n; i++)
			printf "set %s%d 0 %s %d\r\n%s\r\n", p, i, e, length(v), v
	}' >"$1"
}

# wait_clock T: poll the clock (30 s at most) until it is at least T.
wait_clock() {
	local i

	for ((i = 0; i < 600; i++)); do
		(($(date +%s) >= $1)) && return 0
		sleep 0.05
	done
	echo "wait_clock: $(date +%s) is still before $1" >&2
	return 1
}

# wait_stat NAME VALUE [SECONDS]: poll "stats" (default 20 s) until NAME
# is VALUE.
wait_stat() {
	local i got n=$((${3:-20} * 10))

	for ((i = 0; i < n; i++)); do
		got=$(mc_stat "$1")
		[[ $got == "$2" ]] && return 0
		sleep 0.1
	done
	echo "wait_stat: $1 is '$got' after ${3:-20} s, not '$2'" >&2
	return 1
}

# inetd FILE [FLAGS]: one inetd-mode connection (kvstored -i: no master,
# so no crawler) on the test's segment, FILE as its input; the replies
# without CRs.  (The test adds KV_SHM to KV_SEGMENTS, for kv_stop.)
inetd() {
	local in=$1
	shift
	timeout 60 "$KVSTORED" -i -s "$KV_SHM" -m 16 -u "$(id -un)" "$@" \
	    <"$in" 2>>"$KV_LOG" | tr -d '\r'
}

# crawler_pids: the crawlers the daemon's log names, oldest first.
crawler_pids() {
	grep -Eo ': crawler: pid [0-9]+$' "$KV_LOG" | awk '{ print $4 }'
}

@test "expiry: in inetd mode a write that would be refused reclaims expired items first, for another user" {
	local req=$BATS_TEST_TMPDIR/req out n full t_end
	KV_SEGMENTS+=("$KV_SHM")

	# alice fills the store with keys that expire 3 s after they are set.
	{
		printf 'register alice alicesecret1\r\n'
		awk -v v="$VAL10K" 'BEGIN {
			for (i = 1; i <= 2000; i++)
				printf "put a%d %s\r\nexpire a%d 3\r\n", i, v, i
		}'
	} >"$req"
	out=$(inetd "$req")
	t_end=$(date +%s)
	n=$(grep -c '^OK$' <<<"$out")
	full=$(grep -c '^ERR full store is full$' <<<"$out")
	# every stored put had its expire (OK twice), the rest were refused
	echo "# stored=$((n / 2)) refused=$full" >&3
	((n % 2 == 0 && n / 2 > 1000 && full > 0))
	((n / 2 + full == 2000))
	n=$((n / 2))

	# Once they have expired, bob puts as many again: all fit, with no
	# crawler and no request for alice's keys.
	wait_clock $((t_end + 4))
	{
		printf 'register bob bobsecret123\r\n'
		awk -v n="$n" -v v="$VAL10K" 'BEGIN {
			for (i = 1; i <= n; i++)
				printf "put b%d %s\r\n", i, v
		}'
		printf 'stats\r\n'
	} >"$req"
	out=$(inetd "$req")
	[ "$(grep -c '^OK$' <<<"$out")" -eq "$n" ]
	[ "$(grep -c '^ERR' <<<"$out")" -eq 0 ]
	grep -qx "STAT user_items $n" <<<"$out"
	grep -qx "STAT items $n" <<<"$out"
	grep -qx "STAT reclaimed $n" <<<"$out"
	grep -qx "STAT crawler_reclaimed 0" <<<"$out"
	run -0 "$KVSTORED" -C -s "$KV_SHM"
	assert_output --partial " 0 errors"
}

@test "expiry: under -q 2, two expired keys do not make a third put over quota (inetd mode and the daemon)" {
	local req=$BATS_TEST_TMPDIR/req out t0
	KV_SEGMENTS+=("$KV_SHM")

	t0=$(date +%s)
	printf 'register alice alicesecret1\r\nput a 1\r\nexpire a 1\r\nput b 2\r\nexpire b 1\r\nput c 3\r\n' >"$req"
	run -0 inetd "$req" -q 2
	assert_output $'OK alice guest\nOK\nOK\nOK\nOK\nERR quota over the user\'s quota'
	wait_clock $((t0 + 2))
	printf 'login alice alicesecret1\r\nput c 3\r\nget c\r\nput d 4\r\nstats\r\n' >"$req"
	run -0 inetd "$req" -q 2
	assert_line --index 1 'OK'
	assert_line --index 2 'VALUE 1'
	assert_line --index 3 '3'
	assert_line --index 4 'OK'
	assert_line 'STAT user_items 2'
	assert_line 'STAT reclaimed 2'

	# The same under the daemon, where the crawler may be first.
	kv_start -q 2
	t0=$(date +%s)
	run -0 kv_raw_lines_as carol 'put a 1\r\nexpire a 1\r\nput b 2\r\nexpire b 1\r\nput c 3\r\n'
	assert_output $'OK\nOK\nOK\nOK\nERR quota over the user\'s quota'
	wait_clock $((t0 + 2))
	run -0 kv_raw_lines_as carol 'put c 3\r\nput d 4\r\nget c\r\n'
	assert_output $'OK\nOK\nVALUE 1\n3'
}

@test "expiry: a store full of expired memcached items takes a full store's worth of another user's sets" {
	local req=$BATS_TEST_TMPDIR/req out n full t_exp

	kv_start -M 0
	mc_ports
	kv_session alice
	kv_session bob
	# An absolute expiry, the same for every item, 3 s ahead: the fill
	# is over long before it.
	t_exp=$(($(date +%s) + 3))
	mc_sets "$req.sets" 2000 a "$t_exp"
	{ mc_auth alice; cat "$req.sets"; } >"$req"
	out=$(mc_send "$req")
	n=$(($(grep -c '^STORED$' <<<"$out") - 1))
	full=$(grep -c '^SERVER_ERROR out of memory storing object$' <<<"$out")
	echo "# stored=$n refused=$full" >&3
	((n > 1000 && full > 0 && n + full == 2000))

	wait_clock $((t_exp + 1))
	mc_sets "$req.sets" "$n" b 0
	{ mc_auth bob; cat "$req.sets"; } >"$req"
	out=$(mc_send "$req")
	[ "$(grep -c '^STORED$' <<<"$out")" -eq $((n + 1)) ]
	[ "$(grep -vc '^STORED$' <<<"$out")" -eq 0 ]
}

@test "expiry: the crawler reclaims expired items that no request touches" {
	local req=$BATS_TEST_TMPDIR/req

	kv_start -M 0 -B tester
	mc_ports
	kv_wait_log ': crawler: pid [0-9]+$'
	mc_sets "$req" 200 k 1
	run -0 mc_send "$req"
	[ "$(grep -c '^STORED$' <<<"$output")" -eq 200 ]
	[ "$(mc_stat curr_items)" -eq 200 ]
	wait_stat curr_items 0
	[ "$(mc_stat crawler_reclaimed)" -eq 200 ]
	[ "$(mc_stat reclaimed)" -eq 200 ]
	[ "$(mc_stat expired_unfetched)" -eq 200 ]
	(($(mc_stat crawler_items_checked) >= 200))
	[ "$(mc_stat get_misses)" -eq 0 ]
	[ "$(mc_stat kvstore_items)" -eq 0 ]
	run -0 "$KVSTORECTL" -s "$KV_SHM" stats
	assert_line 'items 0'
	assert_line 'reclaimed 200'
	assert_line 'crawler_reclaimed 200'
	assert_line 'expired_unfetched 200'
	assert_line --regexp '^crawler_items_checked [0-9]+$'

	# A delayed flush_all's items go too, with no request after it.
	printf 'set x 0 0 1\r\n1\r\nset y 0 0 1\r\n2\r\nflush_all 1\r\n' >"$req"
	run -0 mc_send "$req"
	assert_output $'STORED\nSTORED\nOK'
	wait_stat curr_items 0
	[ "$(mc_stat crawler_reclaimed)" -eq 202 ]
}

@test "expiry: kill -9 of the crawler at work: the master restarts it, the store checks clean, it stops with the daemon" {
	local req=$BATS_TEST_TMPDIR/req round pid old t0 i

	kv_start -M 0 -B tester
	mc_ports
	kv_wait_log ': crawler: pid [0-9]+$'
	for round in 1 2 3; do
		old=$(crawler_pids | tail -n 1)
		t0=$(mc_stat crawler_reclaimed)
		mc_sets "$req" 3000 "r${round}k" 1 v
		run -0 mc_send "$req"
		[ "$(grep -c '^STORED$' <<<"$output")" -eq 3000 ]
		# Once it is reclaiming, kill it wherever it is.
		for ((i = 0; i < 200; i++)); do
			(($(mc_stat crawler_reclaimed) > t0)) && break
			sleep 0.05
		done
		(($(mc_stat crawler_reclaimed) > t0))
		kill -KILL "$old"
		kv_wait_log ": crawler: pid $old signal 9\$"
		for ((i = 0; i < 100; i++)); do
			pid=$(crawler_pids | tail -n 1)
			[[ $pid != "$old" ]] && break
			sleep 0.05
		done
		[ "$pid" != "$old" ]
		kv_alive "$pid"
	done
	# The last one finishes what its predecessors left.
	wait_stat curr_items 0
	run -0 "$KVSTORED" -C -s "$KV_SHM"
	assert_output --partial " 0 errors"
	if grep -E 'undo log full|taken twice|does not hold it|open transaction' "$KV_LOG"; then
		return 1
	fi

	# SIGTERM: the master waits for its crawler, which goes cleanly.
	kill -TERM "$KV_PID"
	for ((i = 0; i < 100; i++)); do
		kv_alive "$KV_PID" || break
		sleep 0.05
	done
	run ! kv_alive "$KV_PID"
	run ! kv_alive "$pid"
	grep -q ": crawler: pid $pid status 0\$" "$KV_LOG"
}

@test "expiry: kill -9 of the crawler while it holds a stripe: the lock is taken over, the store checks clean" {
	local req=$BATS_TEST_TMPDIR/req pid

	: "${KVSTORED_HOOKS:?}"
	# (tests/kvstored-hooks: the first crawler to reclaim an item holds
	# its stripe and says so.)
	KVSTORE_TEST_CRAWL_HOLD=$BATS_TEST_TMPDIR/held KVSTORED=$KVSTORED_HOOKS \
	    kv_start -M 0 -B tester
	mc_ports
	mc_sets "$req" 100 k 1 v
	run -0 mc_send "$req"
	[ "$(grep -c '^STORED$' <<<"$output")" -eq 100 ]
	kv_wait_log ': test: crawler pid [0-9]+ holds a stripe$' 20
	pid=$(sed -n 's/.*: test: crawler pid \([0-9]*\) holds a stripe$/\1/p' "$KV_LOG")
	[ "$(crawler_pids | tail -n 1)" = "$pid" ]
	kill -KILL "$pid"
	kv_wait_log ": crawler: pid $pid signal 9\$"
	# Its successor takes the stripe over and reclaims the rest; writes
	# to every key, the held stripe's included, go through.
	wait_stat curr_items 0
	[ "$(mc_stat crawler_reclaimed)" -eq 100 ]
	mc_sets "$req" 100 k 0 w
	run -0 mc_send "$req"
	[ "$(grep -c '^STORED$' <<<"$output")" -eq 100 ]
	[ "$(mc_stat curr_items)" -eq 100 ]
	run -0 "$KVSTORED" -C -s "$KV_SHM"
	assert_output --partial " 0 errors"
}
