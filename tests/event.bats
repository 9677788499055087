#!/usr/bin/env bats
# event.bats - issue 12: the event engine (-e event).  The rest of the suite
# runs on it too with KV_ENGINE=event; these are what only it has: workers
# that the master restarts, and logins that do not stall a worker.

bats_require_minimum_version 1.5.0
load helpers

teardown() {
	local p
	for p in "${E_BG[@]}"; do
		kill -KILL "$p" 2>/dev/null || true
	done
	kv_stop
}

E_BG=()

now_ms() {
	local ns
	ns=$(date +%s%N)
	echo $((ns / 1000000))
}

# wait_log_count REGEX N: wait (10 s at most) for N log lines matching REGEX.
wait_log_count() {
	local i
	for ((i = 0; i < 200; i++)); do
		[ "$(grep -Ec -- "$1" "$KV_LOG")" -ge "$2" ] && return 0
		sleep 0.05
	done
	echo "wait_log_count: fewer than $2 lines matching '$1'" >&2
	cat "$KV_LOG" >&2
	return 1
}

# workers: the pids of the event workers the log names, newest last.
workers() {
	grep -Eo ': worker: pid [0-9]+$' "$KV_LOG" | awk '{ print $4 }'
}

@test "event engine: -e takes prefork or event, -w 1 to 256" {
	run "$KVSTORED" -e threads -f -p 0 -s "$KV_SHM"
	assert_failure 2
	assert_output "kvstored: -e must be prefork or event, not 'threads'"
	run "$KVSTORED" -e event -w 0 -f -p 0 -s "$KV_SHM"
	assert_failure 2
	assert_output --partial '-w must be a number from 1 to 256'
	kv_start -e event -w 3
	grep -q ': start: event engine, 3 workers$' "$KV_LOG"
	kv_wait_log ': worker: pid [0-9]+$'
	kv put city Kolkata put country India get country get city \
	    get Institute >"$BATS_TEST_TMPDIR/got"
	printf 'India\nKolkata\n\n' >"$BATS_TEST_TMPDIR/want"
	cmp "$BATS_TEST_TMPDIR/want" "$BATS_TEST_TMPDIR/got"
}

@test "event engine: one worker serves many connections at once" {
	local i fds=()
	kv_start -e event -w 1
	kv_session alice
	for i in $(seq 1 20); do
		exec {fd}<>"/dev/tcp/127.0.0.1/$KV_PORT"
		fds+=("$fd")
	done
	# All twenty are open on the one worker; each is answered in turn.
	for fd in "${fds[@]}"; do
		printf 'ping\r\n' >&"$fd"
	done
	for fd in "${fds[@]}"; do
		read -r -t 5 line <&"$fd"
		assert_equal "$line" $'PONG\r'
	done
	for fd in "${fds[@]}"; do
		exec {fd}>&-
	done
	[ "$(workers | wc -l)" -eq 1 ]
	[ "$(grep -c ': conn: pid ' "$KV_LOG")" -ge 21 ]
}

@test "event engine: a slow login does not hold up the other connections of its worker" {
	local t0 dt secret fd out=$BATS_TEST_TMPDIR/login.out
	: "${KVSTORED_HOOKS:?}"
	KVSTORED=$KVSTORED_HOOKS kv_start -e event -w 1 -M 0 -B tester
	kv_session alice
	secret=$(<"$(kv_secret alice)")
	mc_port=$(grep -Eo 'memcached protocol listen [^ ]+ port [0-9]+' \
	    "$KV_LOG" | awk '{ print $6 }')
	# From here every secret check takes 2 s (the hook), in a helper.
	kill -TERM "$KV_PID"
	wait "$KV_PID" || true
	KVSTORE_TEST_LOGIN_MS=2000 KVSTORED=$KVSTORED_HOOKS kv_start -e event \
	    -w 1 -M 0 -B tester
	mc_port=$(grep -Eo 'memcached protocol listen [^ ]+ port [0-9]+' \
	    "$KV_LOG" | awk '{ print $6 }')
	t0=$(now_ms)
	printf 'login alice %s\r\nget k\r\n' "$secret" |
	    timeout 10 nc -N 127.0.0.1 "$KV_PORT" >"$out" &
	E_BG+=($!)
	kv_wait_log ': test: pid [0-9]+ checks a secret for 2000 ms$'
	# Meanwhile, on the same (only) worker: a ping and a store request.
	dt=$(now_ms)
	run bash -c 'printf "ping\r\n" | timeout 5 nc -N 127.0.0.1 "$1"' _ "$KV_PORT"
	assert_output $'PONG\r'
	run bash -c 'printf "set k 0 0 1\r\nv\r\nget k\r\n" |
	    timeout 5 nc -N 127.0.0.1 "$1"' _ "$mc_port"
	assert_output $'STORED\r\nVALUE k 0 1\r\nv\r\nEND\r'
	dt=$(($(now_ms) - dt))
	echo "# two other connections answered in $dt ms during a 2 s login" >&3
	((dt < 1000))
	wait "${E_BG[0]}"
	E_BG=()
	assert_equal "$(tr -d '\r' <"$out")" $'OK alice guest\nNOT_FOUND'
	(($(now_ms) - t0 >= 2000))
}

@test "event engine: a worker killed under load is restarted; nothing acknowledged is lost; the checker is clean" {
	local first line
	kv_start -e event -w 2 -A "$BATS_TEST_TMPDIR/users" -c 256
	kv_session load
	kv_wait_log ': worker: pid [0-9]+$'
	first=$(workers | head -1)
	kill -KILL "$first"
	kv_wait_log ": end: pid $first signal 9 "
	# The master forks a new one; the store is repaired as for any child.
	for ((i = 0; i < 100; i++)); do
		[ "$(workers | wc -l)" -ge 3 ] && break
		sleep 0.05
	done
	[ "$(workers | wc -l)" -ge 3 ]
	if [[ -n ${FAULTLOAD-} ]]; then
		# Under load, kill workers with puts in flight.
		run "$FAULTLOAD" -c 20 -k 4 -r 100000000 -d 30 -K 10 -i 300 \
		    -m "$KV_PID" -s 300 -u load -p "$(<"$(kv_secret load)")" \
		    127.0.0.1 "$KV_PORT"
		echo "$output"
		line=$(grep '^faultload:' <<<"$output" | tail -1)
		echo "# ${line#faultload: }" >&3
		assert_success
		assert_line --regexp ' lost=0 '
	fi
	run -0 "$KVSTORECTL" -s "$KV_SHM" check
	run kv -u load put k v get k
	assert_output v
}

@test "event engine: throttled guesses from two addresses do not hold up another address's login" {
	local i t0 dt secret
	kv_start -e event -w 1 -D 500
	kv_session bob
	secret=$(<"$(kv_secret bob)")
	# Each attacker address has failed once (its next try waits 500 ms,
	# then 1 s, 2 s ...); then each queues five more guesses at once.
	for a in 127.0.0.31 127.0.0.32; do
		printf 'login ghost wrong\r\n' | timeout 10 nc -N -s "$a" \
		    127.0.0.1 "$KV_PORT" >/dev/null
	done
	for a in 127.0.0.31 127.0.0.32; do
		for i in 1 2 3 4 5; do
			printf 'login ghost%s wrong\r\n' "$i" |
			    timeout 30 nc -N -s "$a" 127.0.0.1 "$KV_PORT" \
			    >/dev/null 2>&1 &
			E_BG+=($!)
		done
	done
	wait_log_count ': login: 127\.0\.0\.3[12] port [0-9]+: waits for the login in progress' 8
	# The delays are timers in the worker, not sleeps in its two login
	# helpers: bob, from another address, is checked at once.
	t0=$(now_ms)
	run bash -c 'printf "login bob %s\r\n" "$1" |
	    timeout 10 nc -N 127.0.0.1 "$2" | tr -d "\r"' _ "$secret" "$KV_PORT"
	dt=$(($(now_ms) - t0))
	assert_output 'OK bob guest'
	echo "# bob logged in in $dt ms behind 10 throttled guesses" >&3
	((dt < 1500))
}

# sockets PID: how many sockets, and epoll instances, the process holds.
sockets() {
	find "/proc/$1/fd" -mindepth 1 -maxdepth 1 -printf '%l\n' 2>/dev/null |
	    grep -Ec '^socket:|eventpoll'
}

@test "event engine: a login helper started again holds none of the worker's connections; a half-closed client gets its reply and the end" {
	local w old new h i
	kv_start -e event -w 1
	kv_wait_log ': worker: pid [0-9]+$'
	w=$(workers | tail -1)
	for ((i = 0; i < 100; i++)); do
		[ "$(pgrep -P "$w" | wc -l)" -eq 2 ] && break
		sleep 0.05
	done
	old=$(pgrep -P "$w" | sort -n | tr '\n' ' ')
	[ "$(wc -w <<<"$old")" -eq 2 ]
	# A client the worker serves while one of its helpers is started
	# again; then it asks, half-closes, and reads to the end.
	run timeout 20 python3 - "$KV_PORT" "$w" "${old%% *}" <<'EOF'
import os, socket, subprocess, sys, time
port, worker, helper = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
s = socket.create_connection(("127.0.0.1", port))
s.settimeout(5)
s.sendall(b"ping\r\n")
assert s.recv(100) == b"PONG\r\n"
os.kill(helper, 9)
for _ in range(200):
    kids = subprocess.run(["pgrep", "-P", worker], capture_output=True,
                          text=True).stdout.split()
    if len(kids) == 2 and str(helper) not in kids:
        break
    time.sleep(0.05)
else:
    sys.exit("no new helper")
new = [k for k in kids if k != str(helper)]
print("helpers", " ".join(sorted(new)))
s.sendall(b"ping\r\n")
s.shutdown(socket.SHUT_WR)
got = b""
try:
    while True:
        b = s.recv(100)
        if not b:
            print("reply", got.decode().strip(), "then EOF")
            break
        got += b
except socket.timeout:
    print("reply", got.decode().strip(), "then no EOF in 5 s")
EOF
	echo "$output"
	assert_success
	assert_line "reply PONG then EOF"
	# The new helper holds its own socket only: no connection of the
	# worker's, no other helper's, not the worker's epoll.
	new=$(sed -n 's/^helpers //p' <<<"$output")
	for h in $new; do
		[[ " $old " == *" $h "* ]] && continue
		echo "# helper $h holds $(sockets "$h") sockets" >&3
		[ "$(sockets "$h")" -eq 1 ]
	done
}
