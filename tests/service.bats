#!/usr/bin/env bats
# service.bats - issue 4: kvstored launched every way an administrator
# launches it, all ending at the same segment: standalone, inetd mode (-i)
# through systemd-socket-activate --inetd and through a real xinetd,
# systemd socket activation with Accept=yes and Accept=no; and the daemon
# conventions: SIGTERM under load, SIGHUP, the connection limit, privilege
# drop, daemonizing with a pidfile, the log lines.
#
# The command lines come from the shipped files in contrib/ (ExecStart=,
# ListenStream=, Accept=, xinetd's server and server_args): only the
# program's path, the port, the user and the segment are the test's own.
# Each test starts its own processes on 127.0.0.1 and free ports, with its
# own segment, and teardown stops exactly those pids and removes the
# segment, also when the test fails.
#
# Accounts live in the segment, but the client keeps its secret per host,
# port and user: a second port onto the same segment needs the same secret
# file under the second port's name (svc_share_secret), or the client
# registers again and is told the name is taken.
#
# (No loop variable is called "i": bats 1.8's run with flags clobbers it.)

bats_require_minimum_version 1.5.0
load helpers

CONTRIB=${TESTS_DIR:-$BATS_TEST_DIRNAME}/../contrib
SVC_PIDS=()	# processes this test started; teardown stops them
SVC_DIRS=()	# directories outside $BATS_TEST_TMPDIR to remove

setup() {
	KV_SHM=/kvsvc-$$-$BATS_TEST_NUMBER-$RANDOM
	export KV_SHM
	# Children of the daemons run as SVC_USER: when we are root, a
	# throwaway system user, as kvstored(8) advises (not nobody), provided
	# that it can run the build's kvstored (xinetd execs it as that user);
	# else ourselves.  SVC_SYSUSER is that system user in any case.
	SVC_USER=$(id -un)
	SVC_SYSUSER=
	if [[ $(id -u) -eq 0 ]]; then
		kv_sysuser SVC_SYSUSER
		if runuser -u "$SVC_SYSUSER" -- test -x "$KVSTORED" \
		    2>/dev/null; then
			SVC_USER=$SVC_SYSUSER
		fi
	fi
}

teardown() {
	local p

	exec 5<&- 6<&- 7<&- 2>/dev/null || true
	for p in "${SVC_PIDS[@]}"; do
		svc_kill "$p"
	done
	kv_stop
	kv_sysusers_remove
	for p in "${SVC_DIRS[@]}"; do
		rm -rf "$p"
	done
}

# ---- process helpers ---------------------------------------------------------

# proc_start PID: when PID started (field 22 of /proc/PID/stat), to know it
# again later: pids are reused, and soon where pid_max is 32768.
proc_start() {
	local stat

	{ IFS= read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 1
	stat=${stat##*) }
	read -r -a stat <<<"$stat"
	echo "${stat[19]}"
}

# same_proc PID:START: PID is still the process that started at START.
same_proc() {
	[[ $(proc_start "${1%%:*}") == "${1#*:}" ]]
}

# svc_track PID: stop PID in teardown (if it is still that process).
svc_track() {
	SVC_PIDS+=("$1:$(proc_start "$1")")
}

# svc_kill PID[:START]: SIGTERM PID, wait (5 s), then SIGKILL it and
# whatever children it had; only processes that are still the ones seen.
svc_kill() {
	local pid=${1%%:*} start kids=() k n

	start=${1#"$pid"}
	start=${start#:}
	[[ -n $start ]] || start=$(proc_start "$pid") || return 0
	same_proc "$pid:$start" || return 0
	for k in $(pgrep -P "$pid" 2>/dev/null); do
		kids+=("$k:$(proc_start "$k")")
	done
	kill -TERM "$pid" 2>/dev/null || true
	for ((n = 0; n < 100; n++)); do
		kv_alive "$pid" || break
		sleep 0.05
	done
	if kv_alive "$pid" && same_proc "$pid:$start"; then
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
	for k in "${kids[@]}"; do
		if same_proc "$k"; then
			kill -KILL "${k%%:*}" 2>/dev/null || true
		fi
	done
	return 0
}

# free_port: a port nobody listens on, below the ephemeral range so that no
# client's connection takes it meanwhile.  A start that still loses the race
# retries with another.
free_port() {
	local n p

	for ((n = 0; n < 100; n++)); do
		p=$((20000 + RANDOM % 12000))
		if [[ -z $(ss -Hltn "( sport = :$p )") ]]; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

# listening PID PORT: PID has a listening socket on PORT.
listening() {
	ss -Hltnp "( sport = :$2 )" | grep -q "pid=$1,"
}

# svc_dump FILE...: show files after a failure.
svc_dump() {
	local f

	for f in "$@"; do
		echo "--- $f ---" >&2
		cat "$f" >&2 2>/dev/null
	done
	echo "---" >&2
}

# wait_lines FILE REGEX N: wait (5 s) until FILE has N lines matching the
# extended REGEX.
wait_lines() {
	local n

	for ((n = 0; n < 100; n++)); do
		[ "$(grep -Ec -- "$2" "$1")" -ge "$3" ] && return 0
		sleep 0.05
	done
	echo "wait_lines: fewer than $3 lines matching '$2'" >&2
	svc_dump "$1"
	return 1
}

# no_children PID: wait (5 s) until PID has no child process left.
no_children() {
	local n

	for ((n = 0; n < 100; n++)); do
		pgrep -P "$1" >/dev/null || return 0
		sleep 0.05
	done
	echo "no_children: $1 still has children:" $(pgrep -P "$1") >&2
	return 1
}

# ---- the shipped files -------------------------------------------------------

# unit_value FILE KEY: the value of KEY= in a shipped unit file (the first).
unit_value() {
	sed -n "s/^$2=//p" "$CONTRIB/systemd/$1" | sed -n 1p
}

# xinetd_value KEY: the value of KEY in the shipped xinetd snippet.
xinetd_value() {
	sed -n "s/^[[:space:]]*$1[[:space:]]*=[[:space:]]*//p" \
	    "$CONTRIB/xinetd/kvstore"
}

# svc_command WORDS: set SVC_CMD to a shipped command line, run with the
# build's kvstored, as SVC_USER, on the test's segment (kvstored takes the
# last of a repeated flag, so these override the shipped ones).
svc_command() {
	local words

	read -r -a words <<<"$1"
	[[ ${words[0]} == /*/kvstored ]] || {
		echo "svc_command: '$1' does not run kvstored" >&2
		return 1
	}
	SVC_CMD=("$KVSTORED" "${words[@]:1}" -u "$SVC_USER" -s "$KV_SHM" -m 16)
}

# listen_address UNIT: the address part of the socket unit's ListenStream=.
listen_address() {
	local l

	l=$(unit_value "$1" ListenStream)
	[[ $l == *:* ]] || {
		echo "listen_address: $1 has ListenStream=$l" >&2
		return 1
	}
	echo "${l%:*}"
}

# ---- launchers -----------------------------------------------------------

# ssa_start NAME ADDRESS [systemd-socket-activate flags] -- COMMAND...: start
# systemd-socket-activate on ADDRESS and a free port; its output (and the
# daemon's stderr) go to $BATS_TEST_TMPDIR/NAME.log.  Sets SSA_PID,
# SSA_PORT, SSA_LOG.
ssa_start() {
	local name=$1 addr=$2 flags=() try n
	shift 2

	while [[ $1 != -- ]]; do
		flags+=("$1")
		shift
	done
	shift
	command -v systemd-socket-activate >/dev/null ||
	    skip "no systemd-socket-activate (apt-get install systemd)"
	SSA_LOG=$BATS_TEST_TMPDIR/$name.log
	for ((try = 0; try < 5; try++)); do
		SSA_PORT=$(free_port) || return 1
		: >"$SSA_LOG"
		systemd-socket-activate "${flags[@]}" -l "$addr:$SSA_PORT" \
		    "$@" </dev/null >>"$SSA_LOG" 2>&1 3>&- &
		SSA_PID=$!
		svc_track "$SSA_PID"
		for ((n = 0; n < 200; n++)); do
			grep -q "^Listening on $addr:$SSA_PORT as 3\\.\$" \
			    "$SSA_LOG" && return 0
			kv_alive "$SSA_PID" || break
			sleep 0.05
		done
		svc_kill "${SVC_PIDS[-1]}"
		grep -q 'Address already in use' "$SSA_LOG" || break
	done
	echo "ssa_start: systemd-socket-activate did not listen" >&2
	svc_dump "$SSA_LOG"
	return 1
}

# xinetd_start: a real xinetd serving the shipped snippet, with the
# build's kvstored as the server, on a free port; the user, segment and size
# are the test's.  Sets XI_PID, XI_PORT, XI_LOG.
xinetd_start() {
	local conf=$BATS_TEST_TMPDIR/xinetd.conf try n

	XI_LOG=$BATS_TEST_TMPDIR/xinetd.log
	for ((try = 0; try < 5; try++)); do
		XI_PORT=$(free_port) || return 1
		sed -e "s|^\\([[:space:]]*port[[:space:]]*=\\).*|\\1 $XI_PORT|" \
		    -e "s|^\\([[:space:]]*server[[:space:]]*=\\).*|\\1 $KVSTORED|" \
		    -e "s|^\\([[:space:]]*user[[:space:]]*=\\).*|\\1 $SVC_USER|" \
		    -e "s|^\\([[:space:]]*server_args[[:space:]]*=.*\\)|\\1 -u $SVC_USER -s $KV_SHM -m 16 ${XI_EXTRA-}|" \
		    "$CONTRIB/xinetd/kvstore" >"$conf"
		: >"$XI_LOG"
		xinetd -dontfork -f "$conf" -pidfile "$BATS_TEST_TMPDIR/xinetd.pid" \
		    -filelog "$XI_LOG" </dev/null \
		    >>"$BATS_TEST_TMPDIR/xinetd.out" 2>&1 3>&- &
		XI_PID=$!
		svc_track "$XI_PID"
		for ((n = 0; n < 200; n++)); do
			listening "$XI_PID" "$XI_PORT" && return 0
			kv_alive "$XI_PID" || break
			sleep 0.05
		done
		svc_kill "${SVC_PIDS[-1]}"
	done
	echo "xinetd_start: xinetd did not listen" >&2
	svc_dump "$conf" "$XI_LOG" "$BATS_TEST_TMPDIR/xinetd.out"
	return 1
}

# need_xinetd: skip, saying why, where xinetd is not installed.  (It runs
# unprivileged too, the snippet's user then being ourselves.)
need_xinetd() {
	command -v xinetd >/dev/null || skip "no xinetd (apt-get install xinetd)"
}

# need_root WHAT: skip, saying why, unless we are root.
need_root() {
	[[ $(id -u) -eq 0 ]] || skip "$1 needs root"
}

# ---- clients -------------------------------------------------------------

# at [-u USER] PORT ARGS...: the client against 127.0.0.1 PORT.
at() {
	local opts=() port

	if [[ $1 == -u ]]; then
		opts=(-u "$2")
		shift 2
	fi
	port=$1
	shift
	timeout 30 "$KVSTORE" "${opts[@]}" 127.0.0.1 "$port" "$@"
}

# svc_share_secret FROM TO: the client's secret for our user on port FROM,
# also for port TO (same segment, so the same account).
svc_share_secret() {
	local d=$HOME/.kvstore/secrets u

	u=$(id -un)
	cp -p "$d/127.0.0.1,$1,$u" "$d/127.0.0.1,$2,$u"
}

# assignment PORT: the assignment's example, its output compared byte for
# byte: India, Kolkata, an empty line.
assignment() {
	at "$1" put city Kolkata put country India get country get city \
	    get Institute >"$BATS_TEST_TMPDIR/got"
	printf 'India\nKolkata\n\n' >"$BATS_TEST_TMPDIR/want"
	cmp "$BATS_TEST_TMPDIR/want" "$BATS_TEST_TMPDIR/got"
}

# standalone_sees PORT: a standalone kvstored on the same segment (same
# -m and -I) sees what was written through PORT.
standalone_sees() {
	kv_start -u "$SVC_USER"
	svc_share_secret "$1" "$KV_PORT"
	run -0 kv get country get city
	assert_output $'India\nKolkata'
	run -0 kv put seen-by standalone
	run -0 at "$1" get seen-by
	assert_output 'standalone'
}

# ---- the shipped files themselves ------------------------------------------

@test "shipped units: systemd-analyze verify" {
	local f out

	command -v systemd-analyze >/dev/null ||
	    skip "no systemd-analyze (apt-get install systemd)"
	[ "$(unit_value kvstored.socket Accept)" = no ]
	[ "$(unit_value kvstored-inetd.socket Accept)" = yes ]
	# The files as shipped; the only complaint allowed is that kvstored
	# is not installed yet where ExecStart= says.
	cd "$CONTRIB/systemd"
	out=$(systemd-analyze verify --man=no ./kvstored.socket \
	    ./kvstored.service ./kvstored-inetd.socket \
	    ./kvstored-inetd@.service 2>&1) || true
	if [[ -x /usr/sbin/kvstored ]]; then
		assert_equal "$out" ''
	else
		run grep -v '^kvstored[-a-z@]*\.service: Command /usr/sbin/kvstored is not executable: No such file or directory$' <<<"$out"
		assert_output ''
	fi
	# The same files with the build's kvstored in ExecStart= verify clean.
	for f in kvstored.socket kvstored.service kvstored-inetd.socket \
	    kvstored-inetd@.service; do
		sed "s|^ExecStart=/usr/sbin/kvstored |ExecStart=$KVSTORED |" \
		    "$f" >"$BATS_TEST_TMPDIR/$f"
	done
	cd "$BATS_TEST_TMPDIR"
	run -0 systemd-analyze verify --man=no ./kvstored.socket \
	    ./kvstored.service ./kvstored-inetd.socket ./kvstored-inetd@.service
	assert_output ''
	# the system user, for systemd-sysusers
	run -0 systemd-sysusers --dry-run \
	    "$(cd "$CONTRIB/systemd" && pwd)/kvstore.sysusers.conf"
	assert_output --partial "Creating user 'kvstore'"
}

@test "shipped xinetd snippet: an unlisted stream service, wait = no, inetd mode" {
	[ "$(sed -n 's/^service[[:space:]]*//p' "$CONTRIB/xinetd/kvstore")" = kvstore ]
	[ "$(xinetd_value wait)" = no ]
	[ "$(xinetd_value socket_type)" = stream ]
	[ "$(xinetd_value type)" = UNLISTED ]
	[[ " $(xinetd_value server_args) " == *" -i "* ]]
	[[ $(xinetd_value server) == /*/kvstored ]]
	[[ $(xinetd_value bind) == 127.0.0.1 ]]
}

# ---- launch modes --------------------------------------------------------

@test "inetd mode (-i) through systemd-socket-activate --inetd: the assignment, shared with a standalone kvstored" {
	svc_command "$(xinetd_value server) $(xinetd_value server_args)"
	ssa_start inetd 127.0.0.1 --inetd -a -- "${SVC_CMD[@]}"
	assignment "$SSA_PORT"
	standalone_sees "$SSA_PORT"
	# Two connections, two processes, both done; -i said nothing on
	# stderr (under xinetd that is the client's socket).
	wait_lines "$SSA_LOG" '^Child [0-9]+ died with code 0$' 2
	run grep -F 'kvstored[' "$SSA_LOG"
	assert_output ''
}

@test "Accept=yes (kvstored-inetd.socket): the connection on fd 3, one process each" {
	local addr

	addr=$(listen_address kvstored-inetd.socket)
	[ "$(unit_value kvstored-inetd.socket Accept)" = yes ]
	svc_command "$(unit_value kvstored-inetd@.service ExecStart)"
	ssa_start accept-yes "$addr" -a -- "${SVC_CMD[@]}"
	assignment "$SSA_PORT"
	standalone_sees "$SSA_PORT"
	# one kvstored per connection, each its own pid, each gone when done
	wait_lines "$SSA_LOG" '^Child [0-9]+ died with code 0$' 2
	wait_lines "$SSA_LOG" '^kvstored\[[0-9]+\]: conn: pid [0-9]+ from 127\.0\.0\.1 port [0-9]+$' 2
	no_children "$SSA_PID"
}

@test "Accept=yes with the connection passed non-blocking (NonBlocking=yes): served, and idle it costs no CPU" {
	command -v python3 >/dev/null || skip "no python3 (apt-get install python3)"
	svc_command "$(unit_value kvstored-inetd@.service ExecStart)"
	export NB_LOG=$BATS_TEST_TMPDIR/nb.log
	run -0 python3 "$TESTS_DIR/nonblocking-fd3.py" "${SVC_CMD[@]}"
	cat "$BATS_TEST_TMPDIR/nb.log"
	assert_line --index 0 'reply PONG'
	[[ ${lines[1]} =~ ^idle_ticks\ ([0-9]+)$ ]]
	echo "# idle 1.5 s: ${BASH_REMATCH[1]} ticks of CPU" >&3
	# A wait that does not wait spins: ~150 ticks in 1.5 s.
	[ "${BASH_REMATCH[1]}" -le 20 ]
	assert_line --index 2 'exit 0'
}

@test "Accept=no (kvstored.socket): one master on the passed listening socket" {
	local addr kids k

	addr=$(listen_address kvstored.socket)
	[ "$(unit_value kvstored.socket Accept)" = no ]
	svc_command "$(unit_value kvstored.service ExecStart)"
	ssa_start accept-no "$addr" -- "${SVC_CMD[@]}"
	# systemd-socket-activate execs kvstored at the first connection.
	assignment "$SSA_PORT"
	run -0 grep -E "^kvstored\\[$SSA_PID\\]: start: kvstored 1\\.0\\.0 listen 127\\.0\\.0\\.1 port $SSA_PORT segment $KV_SHM size 16M maxconn 1024\$" "$SSA_LOG"
	# the master is the process systemd-socket-activate became, and it
	# forks per connection
	[ "$(tr '\0' ' ' <"/proc/$SSA_PID/cmdline")" = "${SVC_CMD[*]} " ]
	wait_lines "$SSA_LOG" "^kvstored\\[$SSA_PID\\]: conn: pid [0-9]+ from 127\\.0\\.0\\.1 port [0-9]+\$" 1
	standalone_sees "$SSA_PORT"
	# SIGTERM: exit 0, no child left
	kids=$(pgrep -P "$SSA_PID")
	kill -TERM "$SSA_PID"
	status=0
	wait "$SSA_PID" || status=$?
	[ "$status" -eq 0 ]
	for k in $kids; do
		run ! kv_alive "$k"
	done
	grep -q ': stop: all children done$' "$SSA_LOG"
}

@test "xinetd (wait = no): the assignment, shared with a standalone kvstored" {
	need_xinetd
	xinetd_start
	# xinetd took the snippet without a complaint
	run grep -E 'WARNING|ERROR' "$XI_LOG"
	assert_output ''
	assignment "$XI_PORT"
	standalone_sees "$XI_PORT"
	# the children ran as the snippet's user and are gone
	[ "$(stat -c '%a %U' "/dev/shm/${KV_SHM#/}")" = "600 $SVC_USER" ]
	no_children "$XI_PID"
}

@test "xinetd: a second port onto the same segment needs the client's secret under that port's name" {
	need_xinetd
	xinetd_start
	run -0 at "$XI_PORT" put k via-xinetd
	kv_start -u "$SVC_USER"
	# The account is in the segment; a client with no secret for this
	# port registers again, and the name is taken.
	run -5 kv get k
	assert_output "kvstore: 127.0.0.1:$KV_PORT: user $(id -un) is registered here with another secret"
	[ ! -e "$(kv_secret "$(id -un)")" ]
	svc_share_secret "$XI_PORT" "$KV_PORT"
	run -0 kv get k
	assert_output 'via-xinetd'
	# a fresh user registers through either port and is known through both
	run -0 kv -u carol put c 1
	cp -p "$(kv_secret carol)" "$HOME/.kvstore/secrets/127.0.0.1,$XI_PORT,carol"
	run -0 at -u carol "$XI_PORT" get c
	assert_output '1'
}

@test "xinetd: kvstored -i writes nothing but replies on the socket, even when it fails" {
	need_xinetd
	kv_start -u "$SVC_USER"
	port=$KV_PORT
	# A segment made with -m 16: -m 32 is refused, and the refusal goes to
	# syslog, never to stderr (fd 2 is the client's socket here).
	XI_EXTRA='-m 32' xinetd_start
	KV_PORT=$XI_PORT
	run -0 kv_raw 'ping\r\n'
	assert_output ''
	KV_PORT=$port
	run -0 kv_raw 'ping\r\n'
	assert_output $'PONG\r'
}

@test "all launch modes at once on one segment see each other's writes" {
	local p ports=() modes=(standalone inetd accept-yes accept-no) m

	kv_start -u "$SVC_USER"
	ports+=("$KV_PORT")
	svc_command "$(xinetd_value server) $(xinetd_value server_args)"
	ssa_start inetd 127.0.0.1 --inetd -a -- "${SVC_CMD[@]}"
	ports+=("$SSA_PORT")
	svc_command "$(unit_value kvstored-inetd@.service ExecStart)"
	ssa_start accept-yes "$(listen_address kvstored-inetd.socket)" -a -- \
	    "${SVC_CMD[@]}"
	ports+=("$SSA_PORT")
	svc_command "$(unit_value kvstored.service ExecStart)"
	ssa_start accept-no "$(listen_address kvstored.socket)" -- \
	    "${SVC_CMD[@]}"
	ports+=("$SSA_PORT")
	if command -v xinetd >/dev/null; then
		xinetd_start
		ports+=("$XI_PORT")
		modes+=(xinetd)
	fi
	run -0 kv put mode standalone
	for p in "${ports[@]:1}"; do
		svc_share_secret "$KV_PORT" "$p"
	done
	for ((n = 0; n < ${#ports[@]}; n++)); do
		run -0 at "${ports[n]}" put "key-${modes[n]}" "${modes[n]}"
	done
	for p in "${ports[@]}"; do
		args=()
		for m in "${modes[@]}"; do
			args+=(get "key-$m")
		done
		run -0 at "$p" "${args[@]}"
		assert_output "$(printf '%s\n' "${modes[@]}")"
	done
}

@test "inetd mode: ten first connections at once create one segment between them" {
	local n pids=()

	[ ! -e "/dev/shm/${KV_SHM#/}" ]
	svc_command "$(xinetd_value server) $(xinetd_value server_args)"
	ssa_start inetd 127.0.0.1 --inetd -a -- "${SVC_CMD[@]}"
	for ((n = 0; n < 10; n++)); do
		at -u "user$n" "$SSA_PORT" put k "v$n" get k \
		    >"$BATS_TEST_TMPDIR/out$n" 2>&1 3>&- &
		pids+=($!)
	done
	for ((n = 0; n < 10; n++)); do
		wait "${pids[n]}" || {
			svc_dump "$BATS_TEST_TMPDIR/out$n" "$SSA_LOG"
			return 1
		}
		[ "$(<"$BATS_TEST_TMPDIR/out$n")" = "v$n" ]
	done
	run -0 "$KVSTORED" -C -s "$KV_SHM"
	assert_output --regexp ' 10 items, .* 0 errors$'
}

# ---- daemon conventions ----------------------------------------------------

# load_client N USER SECRET: one connection, logged in, doing put after put
# until the server goes away; each put answered OK is appended to
# $BATS_TEST_TMPDIR/acked.N as "KEY VALUE".
load_client() {
	local n=$1 j=0 fd reply

	exec {fd}<>"/dev/tcp/127.0.0.1/$KV_PORT" || return 1
	printf 'login %s %s\r\n' "$2" "$3" >&"$fd"
	IFS= read -r -t 10 reply <&"$fd" || return 1
	[[ $reply == "OK $2 "* ]] || return 1
	: >"$BATS_TEST_TMPDIR/acked.$n"
	while :; do
		j=$((j + 1))
		printf 'put load-%d-%d v%d\r\n' "$n" "$j" "$j" 1>&"$fd" 2>/dev/null ||
		    break
		IFS= read -r -t 10 reply <&"$fd" || break
		[[ $reply == $'OK\r' ]] || break
		echo "load-$n-$j v$j" >>"$BATS_TEST_TMPDIR/acked.$n"
	done
	exec {fd}<&-
	return 0
}

@test "SIGTERM under load: every acknowledged put is stored, the master exits 0, no child is left" {
	local n user secret pids=() kids k v keys=() want=()

	kv_start
	user=$(id -un)
	kv_session "$user"
	secret=$(<"$(kv_secret "$user")")
	port=$KV_PORT
	for ((n = 0; n < 20; n++)); do
		load_client "$n" "$user" "$secret" 3>&- &
		pids+=($!)
		svc_track "$!"
	done
	# every client connected and acknowledged puts
	for ((n = 0; n < 20; n++)); do
		for ((k = 0; k < 200; k++)); do
			[[ -s $BATS_TEST_TMPDIR/acked.$n ]] && break
			sleep 0.05
		done
		[[ -s $BATS_TEST_TMPDIR/acked.$n ]]
	done
	kids=$(pgrep -P "$KV_PID")
	if [[ ${KV_ENGINE:-prefork} == event ]]; then
		[ "$(wc -w <<<"$kids")" -ge 1 ]	# the workers serve them all
	else
		[ "$(wc -w <<<"$kids")" -ge 20 ]
	fi
	kill -TERM "$KV_PID"
	status=0
	wait "$KV_PID" || status=$?
	[ "$status" -eq 0 ]
	for k in $kids; do
		run ! kv_alive "$k"
	done
	run -1 pgrep -P "$KV_PID"
	KV_PID=
	grep -q ': stop: SIGTERM, [0-9]* children to finish$' "$KV_LOG"
	grep -q ': stop: all children done$' "$KV_LOG"
	for ((n = 0; n < 20; n++)); do
		wait "${pids[n]}"
	done
	# restart on the same segment and read back every acknowledged put
	kv_start
	svc_share_secret "$port" "$KV_PORT"
	while read -r k v; do
		keys+=(get "$k")
		want+=("$v")
	done < <(cat "$BATS_TEST_TMPDIR"/acked.*)
	[ "${#want[@]}" -ge 20 ]
	echo "# ${#want[@]} puts acknowledged" >&3
	kv "${keys[@]}" >"$BATS_TEST_TMPDIR/got"
	printf '%s\n' "${want[@]}" >"$BATS_TEST_TMPDIR/want"
	cmp "$BATS_TEST_TMPDIR/want" "$BATS_TEST_TMPDIR/got"
	run -0 "$KVSTORED" -C -s "$KV_SHM"
	assert_output --regexp ' 0 errors$'
}

@test "SIGHUP: the users file is reloaded and a live session is not dropped" {
	local user secret reply

	user=$(id -un)
	kv_start -A "$BATS_TEST_TMPDIR/users"
	kv_session "$user"
	secret=$(<"$(kv_secret "$user")")
	exec 5<>"/dev/tcp/127.0.0.1/$KV_PORT"
	printf 'login %s %s\r\nput k before\r\n' "$user" "$secret" >&5
	IFS= read -r -t 5 reply <&5
	[[ $reply == "OK $user "* ]]
	IFS= read -r -t 5 reply <&5
	[ "$reply" = $'OK\r' ]
	kids=$(pgrep -P "$KV_PID")
	kill -HUP "$KV_PID"
	kv_wait_log ": reload: users file $BATS_TEST_TMPDIR/users, 1 accounts\$"
	# same master, same children, and the session answers
	kv_alive "$KV_PID"
	for k in $kids; do
		kv_alive "$k"
	done
	printf 'get k\r\nput k after\r\nping\r\n' >&5
	IFS= read -r -t 5 reply <&5
	[ "$reply" = $'VALUE 6\r' ]
	IFS= read -r -t 5 reply <&5
	[ "$reply" = $'before\r' ]
	IFS= read -r -t 5 reply <&5
	[ "$reply" = $'OK\r' ]
	IFS= read -r -t 5 reply <&5
	[ "$reply" = $'PONG\r' ]
	run -0 kv get k
	assert_output 'after'
	run ! grep -q 'reload: SIGHUP' "$KV_LOG"
}

@test "SIGHUP without a users file: logged, nothing dropped" {
	local reply

	kv_start
	exec 5<>"/dev/tcp/127.0.0.1/$KV_PORT"
	printf 'ping\r\n' >&5
	IFS= read -r -t 5 reply <&5
	[ "$reply" = $'PONG\r' ]
	kill -HUP "$KV_PID"
	kv_wait_log ': reload: SIGHUP, no users file to reload$'
	printf 'ping\r\n' >&5
	IFS= read -r -t 5 reply <&5
	[ "$reply" = $'PONG\r' ]
	kv_alive "$KV_PID"
}

@test "connection limit -c 2 on a systemd-passed socket: the third gets ERR busy, a freed slot serves" {
	local reply n served=

	svc_command "$(unit_value kvstored.service ExecStart)"
	SVC_CMD+=(-c 2 -v)	# -v: the status: lines the test waits on
	ssa_start accept-no "$(listen_address kvstored.socket)" -- \
	    "${SVC_CMD[@]}"
	KV_PORT=$SSA_PORT KV_LOG=$SSA_LOG
	exec 5<>"/dev/tcp/127.0.0.1/$KV_PORT"
	kv_wait_log ': start: '
	exec 6<>"/dev/tcp/127.0.0.1/$KV_PORT"
	printf 'ping\r\n' >&5
	IFS= read -r -t 5 reply <&5
	[ "$reply" = $'PONG\r' ]
	printf 'ping\r\n' >&6
	IFS= read -r -t 5 reply <&6
	[ "$reply" = $'PONG\r' ]
	kv_wait_log ': status: 2/2$'
	run -0 kv_raw 'ping\r\n'
	assert_output $'ERR busy too many connections\r'
	grep -Eq ': busy: refused 127\.0\.0\.1 port [0-9]+ at 2/2$' "$KV_LOG"
	exec 5<&-
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

@test "privilege drop: -u a system user: master and children run as it, the segment is its own and 0600" {
	local reply child uid gid

	need_root "dropping privileges"
	uid=$(id -u "$SVC_SYSUSER")
	gid=$(id -g "$SVC_SYSUSER")
	kv_start -u "$SVC_SYSUSER"
	exec 5<>"/dev/tcp/127.0.0.1/$KV_PORT"
	printf 'ping\r\n' >&5
	IFS= read -r -t 5 reply <&5
	[ "$reply" = $'PONG\r' ]
	kv_wait_log ': conn: pid [0-9]+ from '
	child=$(sed -n 's/.*: conn: pid \([0-9]*\) from .*/\1/p' "$KV_LOG")
	run -0 pgrep -P "$KV_PID"
	assert_line "$child"
	for p in "$KV_PID" $output; do
		run -0 grep -E '^(Uid|Gid|Groups):' "/proc/$p/status"
		assert_output "$(printf 'Uid:\t%s\t%s\t%s\t%s\nGid:\t%s\t%s\t%s\t%s\nGroups:\t%s ' \
		    "$uid" "$uid" "$uid" "$uid" "$gid" "$gid" "$gid" "$gid" "$gid")"
	done
	[ "$(stat -c '%a %U %G' "/dev/shm/${KV_SHM#/}")" = "600 $SVC_SYSUSER $SVC_SYSUSER" ]
	run -1 grep -c nobody "$KV_LOG"
}

@test "as root without -u: refused, exit 1, in every mode; -i says it only to syslog" {
	need_root "the root check"
	run -1 timeout 10 "$KVSTORED" -p 0 -s "$KV_SHM" -m 16
	assert_output --regexp '^kvstored\[[0-9]+\]: refusing to run as root: name a user with -u \(-u root to insist\)$'
	run -1 --separate-stderr timeout 10 "$KVSTORED" -i -s "$KV_SHM" -m 16 \
	    </dev/null
	assert_output ''
	[ -z "$stderr" ]
	[ ! -e "/dev/shm/${KV_SHM#/}" ]
}

@test "daemonize with -P: the pidfile names the daemon, SIGTERM removes it" {
	local dir pid port reply user

	# As root, -u a system user, and a directory it may write, so that the
	# daemon can remove the pidfile when it stops ($BATS_TEST_TMPDIR is
	# root's alone).
	user=$(id -un)
	dir=$(mktemp -d "${TMPDIR:-/tmp}/kvsvc.XXXXXX")
	SVC_DIRS+=("$dir")
	if [[ $(id -u) -eq 0 ]]; then
		user=$SVC_SYSUSER
		chown "$user" "$dir"
	fi
	chmod 755 "$dir"
	port=$(free_port)
	# a relative -P, from another directory: the daemon chdirs to /
	cd "$dir"
	run -0 --separate-stderr timeout 10 "$KVSTORED" -p "$port" -l 127.0.0.1 \
	    -u "$user" -s "$KV_SHM" -m 16 -P kvstored.pid
	[ -z "$output" ]
	[ -z "$stderr" ]
	# the daemon is the process listening on the port (teardown stops it
	# even if what follows fails)
	pid=$(ss -Hltnp "( sport = :$port )" |
	    sed -n 's/.*pid=\([0-9]*\),.*/\1/p' | sed -n 1p)
	[[ $pid =~ ^[0-9]+$ ]]
	svc_track "$pid"
	# the pidfile names it, and is there as soon as kvstored returns
	[ "$(cat "$dir/kvstored.pid")" = "$pid" ]
	# a daemon: its own session, no terminal, cwd /, stdio on /dev/null
	[ "$(ps -o sid= -p "$pid" | tr -d ' ')" = "$pid" ]
	[ "$(readlink "/proc/$pid/cwd")" = / ]
	[ "$(readlink "/proc/$pid/fd/0")" = /dev/null ]
	[ "$(readlink "/proc/$pid/fd/2")" = /dev/null ]
	KV_PORT=$port
	run -0 kv_raw 'ping\r\n'
	assert_output $'PONG\r'
	kill -TERM "$pid"
	for ((n = 0; n < 100; n++)); do
		kv_alive "$pid" || break
		sleep 0.05
	done
	run ! kv_alive "$pid"
	[ ! -e "$dir/kvstored.pid" ]
	# an unwritable pidfile is an error on the terminal, exit 1
	run -1 --separate-stderr timeout 10 "$KVSTORED" -p "$port" \
	    -l 127.0.0.1 -u "$user" -s "$KV_SHM" -m 16 -P /proc/kvstored.pid
	[[ $stderr == *'pidfile /proc/kvstored.pid: '* ]]
	run -1 listening "$pid" "$port"
}

# one_child_log: wait for a prefork child's end: line; child is its pid,
# lines the master's conn:, status: and end: lines, the first its conn:.
one_child_log() {
	kv_wait_log ': end: pid [0-9]+ status 0$'
	child=$(sed -n 's/.*: conn: pid \([0-9]*\) from .*/\1/p' "$KV_LOG")
	[[ $child =~ ^[0-9]+$ ]]
	run -0 grep -E "^kvstored\\[$KV_PID\\]: (conn|status|end): " "$KV_LOG"
	assert_line --index 0 --regexp "^kvstored\\[$KV_PID\\]: conn: pid $child from 127\\.0\\.0\\.1 port [0-9]+\$"
}

@test "log lines without -v: a connection is its conn: line (and, prefork, its end: line), no status: lines" {
	local child

	kv_start -c 5
	run -0 kv put k v
	if [[ ${KV_ENGINE:-prefork} == event ]]; then
		kv_wait_log ': conn: pid [0-9]+ from 127\.0\.0\.1 port [0-9]+$'
	else
		one_child_log
		assert_line --index 1 "kvstored[$KV_PID]: end: pid $child status 0"
		[ "${#lines[@]}" -eq 2 ]
	fi
	run -1 grep -c ': status: ' "$KV_LOG"
	assert_output 0
}

@test "log lines with -f -v: start, conn, status n/limit, end; a killed child with its pid, peer and signal" {
	local reply child cport

	kv_start -c 5 -v
	run -0 grep -E "^kvstored\\[$KV_PID\\]: start: kvstored 1\\.0\\.0 listen 127\\.0\\.0\\.1 port $KV_PORT segment $KV_SHM size 16M maxconn 5\$" "$KV_LOG"
	run -0 kv put k v
	if [[ ${KV_ENGINE:-prefork} == event ]]; then
		# A worker logs each connection it takes; the master logs each
		# worker, and a worker that dies by a signal.
		run -0 grep -E "^kvstored\\[[0-9]+\\]: conn: pid [0-9]+ from 127\\.0\\.0\\.1 port [0-9]+\$" "$KV_LOG"
		child=$(sed -n "s/^kvstored\\[$KV_PID\\]: worker: pid \\([0-9]*\\)\$/\\1/p" "$KV_LOG" | head -1)
		[[ $child =~ ^[0-9]+$ ]]
		kill -KILL "$child"
		kv_wait_log "^kvstored\\[$KV_PID\\]: end: pid $child signal 9 from worker\$"
		kv_wait_log "^kvstored\\[$KV_PID\\]: worker: pid [0-9]+\$"
		[ "$(grep -c ": worker: pid " "$KV_LOG")" -ge 2 ]
		return 0
	fi
	one_child_log
	assert_line --index 1 "kvstored[$KV_PID]: status: 1/5"
	assert_line --index 2 "kvstored[$KV_PID]: end: pid $child status 0"
	assert_line --index 3 "kvstored[$KV_PID]: status: 0/5"
	# a child that dies by a signal: pid, peer (with its port), signal
	exec 5<>"/dev/tcp/127.0.0.1/$KV_PORT"
	printf 'ping\r\n' >&5
	IFS= read -r -t 5 reply <&5
	[ "$reply" = $'PONG\r' ]
	cport=$(ss -tnH state established "( dport = :$KV_PORT )" |
	    awk '{ n = split($3, a, ":"); print a[n] }')
	kv_wait_log ": conn: pid [0-9]+ from 127\\.0\\.0\\.1 port $cport\$"
	child=$(sed -n "s/.*: conn: pid \\([0-9]*\\) from 127\\.0\\.0\\.1 port $cport\$/\\1/p" "$KV_LOG")
	kill -KILL "$child"
	kv_wait_log ": end: pid $child signal 9 from 127\\.0\\.0\\.1 port $cport\$"
	kv_wait_log ': status: 0/5$'
	# the store is still sound and serving
	run -0 kv get k
	assert_output 'v'
}
