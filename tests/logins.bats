#!/usr/bin/env bats
# logins.bats - issue 10: logins that cannot be sprayed or squatted.  Guesses
# from one address are served one at a time and pay every delay; a success
# does not wipe an address's failures; the delay is the same for a name that
# is an account and one that is not; -B's account is reserved at start.
#
# Every client here connects to 127.0.0.1, from a loopback source address
# chosen with nc -s where the test needs addresses of their own.  -D scales
# the delays down so that the cases stay short.

bats_require_minimum_version 1.5.0
load helpers

teardown() {
	local p
	for p in "${L_BG[@]}"; do
		kill -KILL "$p" 2>/dev/null || true
	done
	kv_stop
}

L_BG=()

now_ms() {
	local ns
	ns=$(date +%s%N)
	echo $((ns / 1000000))
}

# login_from SRC NAME SECRET: one native login from source address SRC;
# prints the reply line without CR.
login_from() {
	printf 'login %s %s\r\n' "$2" "$3" |
	    timeout 30 nc -N -s "$1" 127.0.0.1 "$KV_PORT" | tr -d '\r'
}

# timed_login SRC NAME SECRET: the milliseconds a failed login took.
timed_login() {
	local t0 out
	t0=$(now_ms)
	out=$(login_from "$@")
	[[ $out == 'ERR auth login failed' ]] || {
		echo "timed_login $*: got '$out'" >&2
		return 1
	}
	echo $(($(now_ms) - t0))
}

# wait_count REGEX N: wait (10 s at most) for N log lines matching REGEX.
wait_count() {
	local i
	for ((i = 0; i < 200; i++)); do
		[ "$(grep -Ec -- "$1" "$KV_LOG")" -ge "$2" ] && return 0
		sleep 0.05
	done
	echo "wait_count: fewer than $2 lines matching '$1'" >&2
	cat "$KV_LOG" >&2
	return 1
}

median() {
	sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

@test "-B's account is reserved at start: not registered, not logged in to, natively" {
	kv_start -M 0 -B pool
	# No memcached session has run yet: the name is taken all the same.
	run bash -c 'printf "register pool s3cret\r\n" |
	    timeout 10 nc -N 127.0.0.1 "$1" | tr -d "\r"' _ "$KV_PORT"
	assert_output 'ERR auth name taken'
	run login_from 127.0.0.1 pool '*'
	assert_output 'ERR auth login failed'
	run -0 "$KVSTORECTL" -s "$KV_SHM" users
	assert_line --regexp '^pool +guest'
}

@test "-B of an account that has a password: kvstored refuses to start" {
	local pid log=$BATS_TEST_TMPDIR/second.log
	kv_start
	kv_session pool
	# The segment stays; a second daemon on it binds -B to that account.
	kill -TERM "$KV_PID"
	wait "$KV_PID" || true
	run "$KVSTORED" -f -p 0 -l 127.0.0.1 -M 0 -B pool -s "$KV_SHM" -m 16 \
	    -u "$(id -un)"
	assert_failure 1
	assert_output --partial '-B pool: the account has a password'
}

# parallel_guesses ARGS...: six wrong logins at once from one address,
# against a daemon started with ARGS; they pay every delay.
parallel_guesses() {
	local t0 dt i
	kv_start -D 50 "$@"
	# Six guesses at once, at six names (no name's count helps): checked
	# one after another, they wait 0+50+100+200+400+800 ms.
	t0=$(now_ms)
	for i in 1 2 3 4 5 6; do
		login_from 127.0.0.21 "ghost$i" wrong >"$BATS_TEST_TMPDIR/g$i" &
		L_BG+=($!)
	done
	for i in 1 2 3 4 5 6; do
		wait "${L_BG[$((i - 1))]}"
		assert_equal "$(<"$BATS_TEST_TMPDIR/g$i")" 'ERR auth login failed'
	done
	L_BG=()
	dt=$(($(now_ms) - t0))
	echo "# 6 parallel guesses took $dt ms (the delays add up to 1550)" >&3
	((dt >= 1500))
	grep -q ': login: 127.0.0.21 port [0-9]*: waits for the login in progress from its address$' "$KV_LOG"
	# Another address is not held up.
	t0=$(now_ms)
	run login_from 127.0.0.22 ghost wrong
	assert_output 'ERR auth login failed'
	(($(now_ms) - t0 < 1000))
}

@test "parallel wrong logins from one address are checked one at a time and pay every delay" {
	parallel_guesses
}

@test "the same on the event engine, with the guesses spread over 6 workers" {
	KV_ENGINE_ARGS=(-e event)
	parallel_guesses -w 6
}

@test "a successful login does not reset the address's failure count" {
	local dt secret
	kv_start -D 50
	kv_session alice
	secret=$(<"$(kv_secret alice)")
	# kv_session logged in from 127.0.0.1; these come from 127.0.0.23.
	run login_from 127.0.0.23 ghost1 wrong
	run login_from 127.0.0.23 ghost2 wrong
	run login_from 127.0.0.23 ghost3 wrong
	run login_from 127.0.0.23 alice "$secret"
	assert_output 'OK alice guest'
	# Three failures still count: the next wrong login waits 200 ms (it
	# would not wait at all if the success had wiped them).
	dt=$(timed_login 127.0.0.23 ghost4 wrong)
	echo "# a failure after a success took $dt ms" >&3
	((dt >= 190))
}

@test "a name that is an account and one that is not are throttled alike" {
	local i e m
	local -a te=() tm=()
	kv_start -D 100
	for i in $(seq 1 20); do
		kv_session "e$i"
	done
	# Each name fails once (from an address of its own), then its second
	# failure is timed from a fresh address: only the name's count can
	# slow it, and a missing name must be slowed exactly as much.
	for i in $(seq 1 20); do
		run login_from "127.0.1.$i" "e$i" wrong
		run login_from "127.0.2.$i" "m$i" wrong
		te+=("$(timed_login "127.0.3.$i" "e$i" wrong)")
		tm+=("$(timed_login "127.0.4.$i" "m$i" wrong)")
	done
	e=$(printf '%s\n' "${te[@]}" | median)
	m=$(printf '%s\n' "${tm[@]}" | median)
	echo "# median second failure: account $e ms, no account $m ms" >&3
	# One failure of the name: 100 ms, for both.  (Counting accounts'
	# names only would make it 100 ms against none.)
	((e >= 95 && m >= 95))
	((e - m < 50 && m - e < 50))
}

@test "a login whose process is killed gives up its address's turn" {
	local pid t0
	kv_start -D 1000
	# One failure from .24: the next attempt from there waits 1 s, holding
	# the address's turn; a second one queues behind it.
	run login_from 127.0.0.24 ghost wrong
	login_from 127.0.0.24 ghost wrong >/dev/null &
	L_BG+=($!)
	wait_count ': conn: pid [0-9]+ from 127\.0\.0\.24 port [0-9]+$' 2
	pid=$(grep -E ': conn: pid [0-9]+ from 127\.0\.0\.24 ' "$KV_LOG" |
	    tail -1 | sed -E 's/.*conn: pid ([0-9]+) .*/\1/')
	# The event engine checks logins in helper processes: the one that
	# logged the first failure holds this one too.
	[[ ${KV_ENGINE:-prefork} == event ]] &&
	    pid=$(grep -E 'action=login-failed' "$KV_LOG" | tail -1 |
	    sed -E 's/^kvstored\[([0-9]+)\].*/\1/')
	login_from 127.0.0.24 ghost wrong >"$BATS_TEST_TMPDIR/third" &
	L_BG+=($!)
	wait_count ': login: 127\.0\.0\.24 port [0-9]+: waits for the login in progress' 1
	# The holder dies mid-delay: the waiting one takes over at once and
	# pays only its own delay (2 failures counted: 2 s).
	t0=$(now_ms)
	kill -KILL "$pid"
	wait "${L_BG[1]}"
	assert_equal "$(<"$BATS_TEST_TMPDIR/third")" 'ERR auth login failed'
	(($(now_ms) - t0 < 6000))
}
