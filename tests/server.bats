#!/usr/bin/env bats
# server.bats - kvstored(8) as a process: restart and the segment, flags,
# log lines, signals, the connection limit, timeouts.
#
# (No loop variable is called "i": bats 1.8's run with flags clobbers it.)

bats_require_minimum_version 1.5.0
load helpers

teardown() {
	exec 5<&- 6<&- 2>/dev/null || true
	if [[ -n ${first_pid-} ]]; then
		# a second daemon's test failed half-way: stop the first too
		(KV_PID=$first_pid KV_SHM=$first_shm && kv_stop)
	fi
	kv_stop
}

# term: SIGTERM the daemon, wait for it (deadline 5 s: kv_alive polls),
# leave the segment.  Sets term_status to the master's exit status.
term() {
	local n

	kill -TERM "$KV_PID"
	for ((n = 0; n < 100; n++)); do
		kv_alive "$KV_PID" || break
		sleep 0.05
	done
	if kv_alive "$KV_PID"; then
		echo "kvstored $KV_PID did not stop on SIGTERM" >&2
		return 1
	fi
	term_status=0
	wait "$KV_PID" || term_status=$?
	KV_PID=
}

# shm_file: the segment's file in /dev/shm.
shm_file() {
	echo "/dev/shm/${KV_SHM#/}"
}

# count_log REGEX N: wait (5 s) until the log has N lines matching REGEX.
count_log() {
	local n

	for ((n = 0; n < 100; n++)); do
		[ "$(grep -Ec -- "$1" "$KV_LOG")" -ge "$2" ] && return 0
		sleep 0.05
	done
	echo "count_log: fewer than $2 lines matching '$1' in $KV_LOG" >&2
	cat "$KV_LOG" >&2
	return 1
}

# client_port: the local port of our one connection to the daemon.
client_port() {
	ss -tnH state established "( dport = :$KV_PORT )" |
	    awk '{ n = split($3, a, ":"); print a[n] }'
}

@test "restart: data written before SIGTERM is there after a restart" {
	kv_start
	run -0 kv put city Kolkata put country India
	run -0 kv -u bob put city Delhi
	port=$KV_PORT
	term
	[ "$term_status" -eq 0 ]
	[ -e "$(shm_file)" ]
	[ "$(stat -c %a "$(shm_file)")" = 600 ]
	# Same port, so that the clients' secrets (per host and port) apply.
	kv_start -p "$port"
	[ "$KV_PORT" = "$port" ]
	kv get country get city get Institute >"$BATS_TEST_TMPDIR/got"
	printf 'India\nKolkata\n\n' >"$BATS_TEST_TMPDIR/want"
	cmp "$BATS_TEST_TMPDIR/want" "$BATS_TEST_TMPDIR/got"
	run -0 kv -u bob get city
	assert_output 'Delhi'
}

@test "restart with another geometry is refused; the segment is untouched" {
	kv_start
	run -0 kv put k v
	port=$KV_PORT
	term
	cp "$(shm_file)" "$BATS_TEST_TMPDIR/segment"
	run -1 timeout 10 "$KVSTORED" -f -p 0 -s "$KV_SHM" -m 32 -u "$(id -un)"
	assert_output --partial 'was created with'
	assert_output --partial -- '-m 16'
	run -1 timeout 10 "$KVSTORED" -f -p 0 -s "$KV_SHM" -m 16 -I 2048 \
	    -u "$(id -un)"
	assert_output --partial 'was created with'
	cmp "$BATS_TEST_TMPDIR/segment" "$(shm_file)"
	kv_start -p "$port"
	run -0 kv get k
	assert_output 'v'
}

@test "a segment that is not kvstore's is refused, not reinitialised" {
	head -c $((16 * 1024 * 1024)) /dev/zero | tr '\0' 'Z' >"$(shm_file)"
	chmod 600 "$(shm_file)"
	run -1 timeout 10 "$KVSTORED" -f -p 0 -s "$KV_SHM" -m 16 -u "$(id -un)"
	assert_output --partial "segment $KV_SHM is not a kvstore segment"
	refute_output --partial 'start:'
	[ "$(head -c 8 "$(shm_file)")" = ZZZZZZZZ ]
}

@test "kvstored -R removes the segment; -C checks it" {
	kv_start
	run -0 kv put k v put k2 v2
	run -0 "$KVSTORED" -C -s "$KV_SHM"
	assert_output --regexp '(^| )0 errors$'
	term
	run -0 "$KVSTORED" -C -s "${KV_SHM#/}"
	assert_output --regexp "^check: segment $KV_SHM: 2 items, .* 0 errors\$"
	run -0 "$KVSTORED" -R -s "$KV_SHM"
	[ ! -e "$(shm_file)" ]
	run -1 "$KVSTORED" -R -s "$KV_SHM"
	run -1 "$KVSTORED" -C -s "$KV_SHM"
}

@test "-V prints the version; bad flags are usage errors" {
	run -0 "$KVSTORED" -V
	assert_output 'kvstored 1.0.0'
	run -2 "$KVSTORED" -x
	assert_output --partial 'usage: kvstored'
	run -2 "$KVSTORED" -p 70000
	run -2 "$KVSTORED" -m 1
	run -2 "$KVSTORED" -c 0
	run -2 "$KVSTORED" extra-argument
	run -2 "$KVSTORED" -s /a/b
}

@test "root without -u is refused" {
	[ "$(id -u)" -eq 0 ] || skip "not running as root"
	run -1 timeout 10 "$KVSTORED" -f -p 0 -s "$KV_SHM" -m 16
	assert_output --partial 'refusing to run as root'
	refute_output --partial 'start:'
	[ ! -e "$(shm_file)" ]
}

@test "log: start, conn with the client's port, end" {
	kv_start
	# (The event engine adds its "start: event engine" and "worker:" lines,
	# both engines the crawler's "crawler:" line.)
	assert_equal "$(grep -Evc ': ((worker|crawler): pid [0-9]+|start: event engine, [0-9]+ workers)$' "$KV_LOG")" 1
	run -0 grep -E "^kvstored\\[$KV_PID\\]: start: kvstored 1\\.0\\.0 listen 127\\.0\\.0\\.1 port $KV_PORT segment $KV_SHM size 16M maxconn 1024\$" "$KV_LOG"
	exec 5<>"/dev/tcp/127.0.0.1/$KV_PORT"
	count_log ': conn: pid ' 1
	cport=$(client_port)
	[[ $cport =~ ^[0-9]+$ ]]
	run -0 grep -E ": conn: pid [0-9]+ from 127\\.0\\.0\\.1 port $cport\$" "$KV_LOG"
	child=$(sed -n "s/.*: conn: pid \\([0-9]*\\) from 127\\.0\\.0\\.1 port $cport\$/\\1/p" "$KV_LOG")
	# The connection is served by a child of the master, on the server's
	# own port.
	run -0 pgrep -P "$KV_PID"
	assert_line "$child"
	run -0 ss -tnH state established "( sport = :$KV_PORT and dport = :$cport )"
	[ "${#lines[@]}" -eq 1 ]
	printf 'ping\r\n' >&5
	IFS= read -r -t 5 reply <&5
	[ "$reply" = $'PONG\r' ]
	exec 5<&-
	if [[ ${KV_ENGINE:-prefork} == event ]]; then
		# A worker outlives its connections: no end line for one.
		assert_equal "$(grep -Ec ': (start|conn|worker|crawler|status|stop):' "$KV_LOG")" \
		    "$(grep -c . "$KV_LOG")"
	else
		kv_wait_log ": end: pid $child status 0\$"
		assert_equal "$(grep -Ec ': (start|conn|end|crawler|status|stop):' "$KV_LOG")" \
		    "$(grep -c . "$KV_LOG")"
	fi
}

@test "SIGTERM: the master exits 0 and leaves no child, idle connections too" {
	kv_start
	exec 5<>"/dev/tcp/127.0.0.1/$KV_PORT"
	exec 6<>"/dev/tcp/127.0.0.1/$KV_PORT"
	count_log ': conn: pid ' 2
	run -0 pgrep -P "$KV_PID"
	kids=$output
	[ "${#lines[@]}" -ge 2 ]
	master=$KV_PID
	term
	[ "$term_status" -eq 0 ]
	for pid in $kids; do
		run -1 kill -0 "$pid"
	done
	run -1 pgrep -P "$master"
	# Nor any process of this daemon anywhere (spares forked after the
	# pgrep above included): they all have the segment name in argv.
	run -1 pgrep -f -- "-s $KV_SHM( |\$)"
	grep -q ': stop: all children done$' "$KV_LOG"
	# The connections were told, in their protocol, and closed.
	run -0 timeout 5 cat <&5
	assert_output $'ERR shutdown server stopping\r'
}

@test "connection limit: the client over -c gets ERR busy; a freed slot serves again" {
	kv_start -c 2
	exec 5<>"/dev/tcp/127.0.0.1/$KV_PORT"
	exec 6<>"/dev/tcp/127.0.0.1/$KV_PORT"
	count_log ': conn: pid ' 2
	# The refused client only reads: one that has sent a request before
	# the refusal may get a reset instead of the line (the master closes
	# with its request unread), which would make this test flaky.
	run -0 timeout 5 cat <"/dev/tcp/127.0.0.1/$KV_PORT"
	assert_output $'ERR busy too many connections\r'
	run -0 timeout 5 cat <"/dev/tcp/127.0.0.1/$KV_PORT"
	assert_output $'ERR busy too many connections\r'
	grep -Eq ': busy: refused 127\.0\.0\.1 port [0-9]+ at 2/2$' "$KV_LOG"
	# The two held connections still work.
	printf 'ping\r\n' >&5
	IFS= read -r -t 5 reply <&5
	[ "$reply" = $'PONG\r' ]
	exec 5<&-
	served=
	for ((n = 0; n < 100; n++)); do
		if [ "$(kv_raw 'ping\r\n')" = $'PONG\r' ]; then
			served=1
			break
		fi
		sleep 0.05
	done
	[ -n "$served" ]
	printf 'ping\r\n' >&6
	IFS= read -r -t 5 reply <&6
	[ "$reply" = $'PONG\r' ]
}

@test "idle timeout: ERR timeout idle, then close" {
	kv_start -t 1
	exec 5<>"/dev/tcp/127.0.0.1/$KV_PORT"
	printf 'ping\r\n' >&5
	run -0 timeout 10 cat <&5
	assert_output $'PONG\r\nERR timeout idle\r'
}

@test "login deadline: ERR timeout login, then close" {
	kv_start -L 1
	exec 5<>"/dev/tcp/127.0.0.1/$KV_PORT"
	printf 'ping\r\n' >&5
	run -0 timeout 10 cat <&5
	assert_output $'PONG\r\nERR timeout login\r'
}

@test "two servers on two segments do not share data" {
	kv_start
	run -0 kv put k first
	first_pid=$KV_PID first_port=$KV_PORT first_shm=$KV_SHM first_log=$KV_LOG
	KV_SHM=$first_shm-2 KV_LOG=$BATS_TEST_TMPDIR/second.log
	kv_start
	second_pid=$KV_PID second_shm=$KV_SHM
	run -0 kv get k
	assert_output ''
	run -0 kv put k second
	KV_PORT=$first_port
	run -0 kv get k
	assert_output 'first'
	kv_stop
	KV_PID=$first_pid KV_SHM=$first_shm
	first_pid=
}
