#!/usr/bin/env bats
# faults.bats - kvstored under faults, hostile input and load (issue 5).
#
# Every test starts its own daemon on its own segment (helpers.bash) and
# prints its figures as "# name=value ..." lines, which the CI log shows.
#
# Programs, from make check's environment:
#   KVSTORED, KVSTORE	the daemon and the client (helpers.bash)
#   FAULTLOAD		tests/faultload (built here from $TESTS_DIR/faultload.c
#			with ${CC:-cc} when unset)
#   LOCKTORTURE		tests/locktorture (likewise, from locktorture.c and
#			the store's sources)
#   KVSTORED_HOOKS	tests/kvstored-hooks, kvstored built with
#			-DKV_TEST_HOOKS (the stripe-holder test is skipped
#			without it)
# Knobs:
#   KV_KILLS		children to SIGKILL in the kill storm (default 100;
#			with KV_LONG=1, 1000)
#   KV_TORTURE_KILLS	writers to SIGKILL inside store.c (default 200; with
#			KV_LONG=1, 2000)
#   KV_LONG=1		the long forms: 1000 and 2000 kills (a few minutes)
#   KV_RECOVERY_SLACK_MS	added to the 1 s recovery bound for the longest
#			request under the kill storm (default 1000: a loaded
#			2-core machine schedules late)

bats_require_minimum_version 1.5.0
load helpers

setup_file() {
	: "${TESTS_DIR:=$BATS_TEST_DIRNAME}"
	export TESTS_DIR
	if [[ -z ${FAULTLOAD-} ]]; then
		FAULTLOAD=$BATS_FILE_TMPDIR/faultload
		"${CC:-cc}" -O2 -o "$FAULTLOAD" "$TESTS_DIR/faultload.c" || {
			echo "cannot build faultload from $TESTS_DIR" >&2
			return 1
		}
	fi
	export FAULTLOAD
	if [[ -z ${LOCKTORTURE-} ]]; then
		LOCKTORTURE=$BATS_FILE_TMPDIR/locktorture
		printf '#define PACKAGE_VERSION "test"\n' >"$BATS_FILE_TMPDIR/config.h"
		"${CC:-cc}" -O2 -D_GNU_SOURCE -I"$BATS_FILE_TMPDIR" \
		    -I"$TESTS_DIR/../src" -o "$LOCKTORTURE" \
		    "$TESTS_DIR/locktorture.c" \
		    "$TESTS_DIR"/../src/{store,items,alloc,accounts}.c \
		    "$TESTS_DIR"/../src/{peers,recover,check,stats,conns,meta,room}.c \
		    "$TESTS_DIR/../src/lock.c" "$TESTS_DIR/../src/log.c" \
		    "$TESTS_DIR/../src/buf.c" || {
			echo "cannot build locktorture from $TESTS_DIR" >&2
			return 1
		}
	fi
	export LOCKTORTURE
}

teardown() {
	local p

	for p in ${FL_BG-}; do
		kill -TERM "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	kv_stop
}

FL_SECRET=s3cret-for-faults

# fl_users: an accounts file with guests load, other and third, all with
# FL_SECRET, hashed with SHA-512 crypt ($6$): a login costs ~2 ms, not the
# ~26 ms of the yescrypt hash that register makes, so thousands of logins
# fit in a test.  Sets FL_USERS.
fl_users() {
	local hash u

	FL_USERS=$BATS_TEST_TMPDIR/users
	if command -v openssl >/dev/null; then
		hash=$(openssl passwd -6 -salt faultsalt "$FL_SECRET")
	elif command -v mkpasswd >/dev/null; then
		hash=$(mkpasswd -m sha-512 -S faultsalt "$FL_SECRET")
	else
		skip "needs openssl or mkpasswd for a \$6\$ hash"
	fi
	: >"$FL_USERS"
	chmod 600 "$FL_USERS"
	for u in load other third; do
		echo "$u:guest:$hash" >>"$FL_USERS"
	done
}

# fl_ms: milliseconds since the epoch.
fl_ms() {
	local t=${EPOCHREALTIME/./}
	echo $((t / 1000))
}

# fl_log_clean: the daemon's log shows no sanitizer report and no fatal
# lock error.
fl_log_clean() {
	if grep -E 'AddressSanitizer|LeakSanitizer|runtime error:|undo log full|taken twice|does not hold it|open transaction' "$KV_LOG"; then
		echo "the daemon's log shows the errors above" >&2
		return 1
	fi
}

# fl_check: the store checker finds the segment clean.
fl_check() {
	run "$KVSTORED" -C -s "$KV_SHM"
	echo "$output"
	assert_success
	assert_output --partial " 0 errors"
}

# fl_open: a connection on fd FL_FD, logged in as $1 (default load).
fl_open() {
	local line

	exec {FL_FD}<>"/dev/tcp/127.0.0.1/$KV_PORT"
	printf 'login %s %s\r\n' "${1:-load}" "$FL_SECRET" >&"$FL_FD"
	IFS= read -r -t 5 -u "$FL_FD" line
	[[ $line == "OK ${1:-load} "* ]] || {
		echo "login: '$line'" >&2
		return 1
	}
}

fl_close() {
	exec {FL_FD}>&-
}

# fl_line: the next reply line on FL_FD (5 s at most), CR removed, in $line.
fl_line() {
	line=
	IFS= read -r -t "${1:-5}" -u "$FL_FD" line || return 1
	line=${line%$'\r'}
}

# fl_closed [SECONDS]: the server closes FL_FD (end of file within SECONDS,
# default 5) and sends nothing more first.  Not "! fl_line": in the middle
# of a test bats does not fail on a negated command, and a read that timed
# out (the connection still open) would pass for a close.
fl_closed() {
	local rest rc=0

	IFS= read -r -t "${1:-5}" -u "$FL_FD" rest || rc=$?
	((rc == 1)) && [[ -z $rest ]] && return 0
	echo "fl_closed: expected end of file; read returned $rc, '$rest'" >&2
	return 1
}

# fl_silent SECONDS: nothing at all arrives on FL_FD for SECONDS, and the
# connection stays open (the read times out: status above 128).
fl_silent() {
	local rest rc=0

	IFS= read -r -t "$1" -u "$FL_FD" rest || rc=$?
	((rc > 128)) && [[ -z $rest ]] && return 0
	echo "fl_silent: expected silence; read returned $rc, '$rest'" >&2
	return 1
}

# fl_parent PID: the parent pid of PID.
fl_parent() {
	local l
	while read -r l; do
		[[ $l == PPid:* ]] && { echo "${l#PPid:}" | tr -d '[:space:]'; return; }
	done <"/proc/$1/status"
}

# fl_rss PID: resident memory of PID in KiB.
fl_rss() {
	local k v
	while read -r k v _; do
		[[ $k == VmRSS: ]] && { echo "$v"; return; }
	done <"/proc/$1/status"
}

# fl_bytes_used: the store's bytes_used (stats).
fl_bytes_used() {
	kv_raw_lines "login load $FL_SECRET\r\nstats\r\nquit\r\n" |
	    awk '$2 == "bytes_used" { print $3 }'
}

# fl_gone PID... : wait (10 s at most) until every PID has exited.
fl_gone() {
	local i p left

	for ((i = 0; i < 200; i++)); do
		left=
		for p in "$@"; do
			kv_alive "$p" && left+=" $p"
		done
		[[ -z $left ]] && return 0
		sleep 0.05
	done
	echo "still running:$left" >&2
	return 1
}

# ---- lock-holder death ---------------------------------------------------

@test "faults: a child killed holding a stripe; the next request on that key succeeds within 1 s" {
	[[ -n ${KVSTORED_HOOKS-} ]] ||
	    skip "KVSTORED_HOOKS unset (tests/kvstored-hooks, -DKV_TEST_HOOKS)"
	fl_users
	KVSTORED=$KVSTORED_HOOKS KVSTORE_TEST_HOLD_MS=1000 \
	    kv_start -A "$FL_USERS"
	# Every put holds its stripe 1 s in this build: this one just waits.
	KVSTORE_PASSWORD=$FL_SECRET run kv -u load put hk old
	assert_success
	fl_open
	printf 'put hk new\r\n' >&"$FL_FD"
	kv_wait_log 'test: pid [0-9]+ holds.*' 5
	local holder t0 t1 ms
	holder=$(grep -oE 'test: pid [0-9]+ holds' "$KV_LOG" | tail -1 |
	    awk '{ print $3 }')
	[[ $(fl_parent "$holder") == "$KV_PID" ]]
	kill -KILL "$holder"
	t0=$(fl_ms)
	KVSTORE_PASSWORD=$FL_SECRET run kv -u load get hk
	t1=$(fl_ms)
	ms=$((t1 - t0))
	echo "# kills=1 recovery_ms=$ms" >&3
	assert_success
	assert_output old	# the killed write was never acknowledged
	fl_closed		# and its client got no OK, only a close
	fl_close
	((ms < 1000))
	kv_wait_log "holder pid $holder died, recovering" 5
	KVSTORE_PASSWORD=$FL_SECRET run kv -u load get hk
	assert_output old
	fl_check
	fl_log_clean
}

@test "faults: inetd mode, no master: the stripe of a killed holder is recovered by the next process" {
	[[ -n ${KVSTORED_HOOKS-} ]] ||
	    skip "KVSTORED_HOOKS unset (tests/kvstored-hooks, -DKV_TEST_HOOKS)"
	local fifo=$BATS_TEST_TMPDIR/in out=$BATS_TEST_TMPDIR/out w i t0 ms
	local common
	fl_users
	kv_env
	common=(-i -s "$KV_SHM" -m 16 -u "$(id -un)" -A "$FL_USERS")
	run bash -c 'printf "login load %s\r\nput hk old\r\nquit\r\n" "$1" |
	    "$2" "${@:3}"' _ "$FL_SECRET" "$KVSTORED" "${common[@]}"
	assert_output $'OK load guest\r\nOK\r\nBYE\r'
	mkfifo "$fifo"
	KVSTORE_TEST_HOLD_MS=20000 "$KVSTORED_HOOKS" "${common[@]}" \
	    <"$fifo" >"$out" 2>/dev/null 3>&- &
	FL_BG=$!
	exec {w}>"$fifo"
	printf 'login load %s\r\n' "$FL_SECRET" >&"$w"
	for ((i = 0; i < 100; i++)); do
		grep -q 'OK load guest' "$out" && break
		sleep 0.05
	done
	printf 'put hk new\r\n' >&"$w"
	sleep 0.3	# the put is parsed and held (for 20 s)
	kill -KILL "$FL_BG"
	wait "$FL_BG" || true
	FL_BG=
	exec {w}>&-
	t0=$(fl_ms)
	run bash -c 'printf "login load %s\r\nget hk\r\nquit\r\n" "$1" |
	    "$2" "${@:3}"' _ "$FL_SECRET" "$KVSTORED" "${common[@]}"
	ms=$(($(fl_ms) - t0))
	echo "# kills=1 inetd_recovery_ms=$ms" >&3
	assert_output $'OK load guest\r\nVALUE 3\r\nold\r\nBYE\r'
	((ms < 1000))
	fl_check
}

@test "faults: children killed at random mid-write under load: nothing acknowledged is lost" {
	local kills=${KV_KILLS:-100} bound line
	[[ ${KV_LONG-} == 1 ]] && kills=${KV_KILLS:-1000}
	bound=$((1000 + ${KV_RECOVERY_SLACK_MS:-1000}))
	fl_users
	kv_start -A "$FL_USERS" -c 256 -m 64
	run "$FAULTLOAD" -c 20 -k 8 -r 100000000 -d 55 -K "$kills" -i 10 \
	    -m "$KV_PID" -b "$bound" -s 2000 -u load -p "$FL_SECRET" \
	    127.0.0.1 "$KV_PORT"
	echo "$output"
	line=$(grep '^faultload:' <<<"$output" | tail -1)
	echo "# ${line#faultload: } recoveries=$(grep -c 'recovering' "$KV_LOG")" >&3
	assert_success
	assert_line --regexp "kills=$kills "
	assert_line --regexp ' lost=0 '
	fl_check
	fl_log_clean
}

@test "faults: children killed at random while their writes compact the store: nothing acknowledged is lost, every item is there once" {
	local kills=${KV_KILLS:-50} bound line n left moved
	bound=$((1000 + ${KV_RECOVERY_SLACK_MS:-1000}))
	fl_users
	# Values up to 4 KiB (-I): pages small enough for every size class of
	# the load to have some in 16 MiB.
	kv_start -A "$FL_USERS" -c 256 -m 16 -I 4096
	# Another tenant fills the store with 1-byte values and deletes three
	# of every four: its pages stay a quarter full, none is free, and
	# every larger write must move its items (alloc.c's compaction).
	run -0 kv_fill filler put f 0 400000 1
	[[ $output =~ ^stored\ ([0-9]+)\ full\ [1-9][0-9]*$ ]]
	n=${BASH_REMATCH[1]}
	left=$(((n + 3) / 4))
	run -0 kv_fill filler del f 0 "$n" -4
	assert_output "deleted $((n - left)) missing 0"
	run "$FAULTLOAD" -c 20 -k 8 -r 100000000 -d 55 -K "$kills" -i 10 \
	    -m "$KV_PID" -b "$bound" -s 2000 -u load -p "$FL_SECRET" \
	    127.0.0.1 "$KV_PORT"
	echo "$output"
	line=$(grep '^faultload:' <<<"$output" | tail -1)
	moved=$(timeout 20 "$KVSTORECTL" -s "$KV_SHM" stats |
	    awk '$1 == "items_moved" { print $2 }')
	echo "# ${line#faultload: } items_moved=$moved" >&3
	assert_success
	assert_line --regexp "kills=$kills "
	assert_line --regexp ' lost=0 '
	((moved > 0))
	run -0 kv_fill filler get f 0 "$n" 4
	assert_output "found $left missing 0"
	fl_check
	fl_log_clean
}

@test "faults: writers killed inside store.c, most of them holding a lock: nothing lost, checker clean" {
	local kills=${KV_TORTURE_KILLS:-200} secs=55 line
	[[ ${KV_LONG-} == 1 ]] && kills=${KV_TORTURE_KILLS:-2000} secs=300
	kv_env
	run "$LOCKTORTURE" "$KV_SHM" "$secs" 6 "$kills"
	line=$(grep '^locktorture:' <<<"$output")
	echo "# ${line#locktorture: } recoveries=$(grep -c 'recovering' <<<"$output")" \
	    "entry_window=$(grep -c 'died taking it' <<<"$output")" >&3
	grep -v 'recovering$' <<<"$output"
	assert_success
	assert_line --regexp ' bad=0\+0$'
	# All the kills asked for, unless a slow machine ran out of time.
	[[ $line =~ kills=([0-9]+) ]]
	((BASH_REMATCH[1] >= 50))
	[[ ! -e /dev/shm/${KV_SHM#/} ]]
}

@test "faults: the master killed under load and started again: every acknowledged write is there" {
	local kids line
	fl_users
	kv_start -A "$FL_USERS"
	"$FAULTLOAD" -c 10 -k 8 -r 100000000 -d 4 -n -S "$BATS_TEST_TMPDIR/state" \
	    -u load -p "$FL_SECRET" 127.0.0.1 "$KV_PORT" \
	    >"$BATS_TEST_TMPDIR/load.out" 2>&1 3>&- &
	FL_BG=$!
	sleep 1.5
	kids=$(pgrep -P "$KV_PID")
	[[ -n $kids ]]
	kill -KILL "$KV_PID"
	wait "$KV_PID" || true
	# The load goes on over the connections that stay up; then it ends.
	wait "$FL_BG"
	FL_BG=
	cat "$BATS_TEST_TMPDIR/load.out"
	line=$(grep '^faultload:' "$BATS_TEST_TMPDIR/load.out")
	[[ $line == *" errors=0 "* ]]
	# Children of the old master finish their connection or, spares, go.
	fl_gone $kids
	cp "$KV_LOG" "$BATS_TEST_TMPDIR/old.log"
	fl_log_clean
	KV_PID=
	kv_start -A "$FL_USERS"
	run "$FAULTLOAD" -V "$BATS_TEST_TMPDIR/state" -u load -p "$FL_SECRET" \
	    127.0.0.1 "$KV_PORT"
	echo "$output"
	echo "# ${line#faultload: } old_children=$(wc -w <<<"$kids")" \
	    "verify: ${output#faultload: }" >&3
	assert_success
	assert_output --regexp 'keys_verified=[1-9]'
	fl_check
	fl_log_clean
}

# ---- full store, quotas, /dev/shm ----------------------------------------

@test "faults: store full mid-pipeline: the writes that do not fit fail, nothing else changes" {
	local req=$BATS_TEST_TMPDIR/req val ok full i
	fl_users
	# 4 MiB, values up to 64 KiB: about 40 pages of 68 KiB.
	kv_start -A "$FL_USERS" -m 4 -I 65536
	val=$(head -c 60000 /dev/zero | tr '\0' v)
	{
		printf 'login load %s\r\nput keep kept\r\n' "$FL_SECRET"
		for ((i = 0; i < 60; i++)); do
			printf 'put p%d {60000}\r\n%s\r\n' "$i" "$val"
		done
		printf 'get keep\r\nquit\r\n'
	} >"$req"
	run bash -c "timeout 20 nc -N 127.0.0.1 $KV_PORT <'$req' | tr -d '\r'"
	assert_success
	ok=$(grep -c '^OK$' <<<"$output")
	full=$(grep -c '^ERR full store is full$' <<<"$output")
	echo "# pipelined_puts=60 stored=$((ok - 1)) refused_full=$full" >&3
	((ok + full == 61 && full > 0 && ok > 10))
	assert_line --index 0 "OK load guest"
	assert_line --index 1 "OK"		# put keep
	assert_line --index $((ok + full + 1)) "VALUE 4"
	assert_line --index $((ok + full + 2)) "kept"
	# The refused ones are absent, the stored ones whole.
	KVSTORE_PASSWORD=$FL_SECRET run kv -u load get "p$((ok - 1))" get p0
	assert_success
	[[ $output == $'\n'"$val" ]]
	# Room again after a delete.
	KVSTORE_PASSWORD=$FL_SECRET run kv -u load del p0 put again "$val" get keep
	assert_success
	assert_output kept
	fl_check
	fl_log_clean
}

@test "faults: quotas mid-pipeline: the user at quota gets ERR quota, another user still writes" {
	fl_users
	kv_start -A "$FL_USERS" -q 3 -Q 4000
	run kv_raw_lines "login load $FL_SECRET\r\nput q1 a\r\nput q2 b\r\nput q3 c\r\nput q4 d\r\nget q1\r\nput q1 A\r\ndel q2\r\nput q4 d\r\nget q4\r\nput q5 e\r\nquit\r\n"
	assert_success
	assert_output "OK load guest
OK
OK
OK
ERR quota over the user's quota
VALUE 1
a
OK
OK
OK
VALUE 1
d
ERR quota over the user's quota
BYE"
	# Bytes: 1900-byte values take chunks of 2320 bytes; two exceed 4000.
	local big
	big=$(head -c 1900 /dev/zero | tr '\0' b)
	run kv_raw_lines "login other $FL_SECRET\r\nput b1 {1900}\r\n$big\r\nput b2 {1900}\r\n$big\r\nput s1 x\r\nget b2\r\nquit\r\n"
	assert_output "OK other guest
OK
ERR quota over the user's quota
OK
NOT_FOUND
BYE"
	# A third user is not held back by the others' quotas.
	KVSTORE_PASSWORD=$FL_SECRET run kv -u third put t1 1 put t2 2 put t3 3 get t3
	assert_success
	assert_output 3
	KVSTORE_PASSWORD=$FL_SECRET run kv -u load get q1 get q3 get q4
	assert_output "A
c
d"
	echo "# quota_keys=3 quota_bytes=4000 refused=3" >&3
	fl_check
	fl_log_clean
}

@test "faults: /dev/shm too small: kvstored refuses at start, leaves no segment" {
	local total mib
	local daemon=("$KVSTORED" -f -p 0 -l 127.0.0.1 -s "$KV_SHM" -u "$(id -un)")
	total=$(df -k --output=size /dev/shm | tail -1 | tr -d ' ')
	[[ $total =~ ^[0-9]+$ ]]
	mib=$((total / 1024 + 64))
	if ((mib <= 32768)); then
		run "${daemon[@]}" -m "$mib"
	else
		# A /dev/shm larger than -m allows (a machine with more than
		# 64 GiB of memory): a small one in a mount namespace of our
		# own (root: CI runs as root).
		[[ $(id -u) -eq 0 ]] ||
		    skip "/dev/shm ($((total / 1024)) MiB) is larger than -m allows, and a smaller one needs root"
		total=$((16 * 1024)) mib=80
		run unshare -m --propagation private sh -c \
		    'mount -t tmpfs -o size=16m kvt-shm /dev/shm && exec "$@"' \
		    _ "${daemon[@]}" -m "$mib"
	fi
	echo "$output"
	assert_failure 1
	assert_output --partial "cannot reserve $mib MiB for segment $KV_SHM in /dev/shm"
	[[ ! -e /dev/shm/${KV_SHM#/} ]]
	echo "# requested_mib=$mib shm_mib=$((total / 1024))" >&3
}

@test "faults: where /dev/shm gives huge pages (a tmpfs mounted huge=advise), the segment is made of them" {
	local wrap=$BATS_TEST_TMPDIR/kvstored-huge kib major minor
	local thp=/sys/kernel/mm/transparent_hugepage/shmem_enabled

	[[ $(id -u) -eq 0 ]] ||
	    skip "needs root: a tmpfs of its own, mounted huge=advise"
	[[ -e $thp ]] ||
	    skip "this kernel gives no transparent huge pages to shared memory"
	if grep -q '\[deny\]' "$thp"; then
		skip "$thp says deny"
	fi
	# MADV_POPULATE_WRITE came in Linux 5.14; before it the segment is
	# reserved with posix_fallocate, whose pages are small.
	IFS=. read -r major minor _ <<<"$(uname -r)"
	((major > 5 || (major == 5 && minor >= 14))) ||
	    skip "Linux $(uname -r) is older than 5.14"
	# The daemon in a mount namespace of its own, with a /dev/shm that
	# gives huge pages where a mapping asks for them (MADV_HUGEPAGE).
	printf '%s\n' '#!/bin/sh' \
	    'exec unshare -m --propagation private sh -c '\''mount -t tmpfs -o size=64m,huge=advise kvt-huge /dev/shm && exec "$@"'\'' _ "$KVT_REAL" "$@"' \
	    >"$wrap"
	chmod +x "$wrap"
	KVT_REAL=$KVSTORED KVSTORED=$wrap kv_start -m 32
	run kv put k v get k
	assert_success
	assert_output v
	# The master reserved the segment through its mapping, and maps in
	# 2 MiB pages what it touched since (posix_fallocate's pages would
	# all be small: 0).
	kib=$(awk -v seg="/dev/shm/${KV_SHM#/}" '
	    $1 ~ /^[0-9a-f]+-[0-9a-f]+$/ { on = index($0, seg) > 0; next }
	    on && $1 == "ShmemPmdMapped:" { print $2 }' "/proc/$KV_PID/smaps")
	echo "# shmem_pmd_mapped_kib=$kib" >&3
	[ "${kib:-0}" -ge 2048 ]
}

# ---- hostile input -------------------------------------------------------

FL_TRIED=0

# fl_hostile NAME EXPECT INPUT: send INPUT (printf format, no arguments)
# on a logged-in connection, then ping; the replies (CRs removed) must
# contain the line EXPECT (a glob; "-" for no error line) and end with PONG.
fl_hostile() {
	local name=$1 want=$2 fmt=$3 out

	FL_TRIED=$((FL_TRIED + 1))
	# shellcheck disable=SC2059	# the format is the input
	out=$({ printf 'login load %s\r\n' "$FL_SECRET"; printf -- "$fmt"
	    printf 'ping\r\n'; } | timeout 10 nc -N 127.0.0.1 "$KV_PORT" |
	    tr -d '\r' | tail -n +2)
	if [[ $want != - ]] && ! grep -qx -- "$want" <<<"$out"; then
		echo "hostile '$name': no line '$want' in: $out" >&2
		return 1
	fi
	if [[ ${out##*$'\n'} != PONG ]]; then
		echo "hostile '$name': the connection did not go on: $out" >&2
		return 1
	fi
}

@test "faults: a catalogue of hostile requests: each answered, the connection goes on" {
	local long
	fl_users
	kv_start -A "$FL_USERS"
	fl_hostile "huge literal, 19 digits" 'ERR syntax bad literal' 'put k {9999999999999999999}\r\n'
	fl_hostile "literal over 2^64" 'ERR syntax bad literal' 'put k {99999999999999999999999}\r\n'
	fl_hostile "negative literal" 'ERR syntax bad literal' 'put k {-5}\r\n'
	fl_hostile "non-numeric literal" 'ERR syntax bad literal' 'put k {12a}\r\n'
	fl_hostile "empty literal" 'ERR syntax bad literal' 'put k {}\r\n'
	fl_hostile "literal not last" 'ERR syntax bad literal' 'put {3} v\r\n'
	fl_hostile "literal data too long" 'ERR syntax bad literal' 'put k {3}\r\nabcdef\r\n'
	fl_hostile "literal with a space" 'ERR syntax bad literal' 'put k { 3}\r\n'
	fl_hostile "NUL in a token" 'ERR syntax control byte in request' 'get a\0b\r\n'
	fl_hostile "a NUL line" 'ERR syntax control byte in request' '\0\r\n'
	fl_hostile "bare CR inside" 'ERR syntax control byte in request' 'get a\rb\r\n'
	fl_hostile "bare CR line" 'ERR syntax control byte in request' '\r\r\n'
	fl_hostile "tab separator" 'ERR syntax control byte in request' 'get\tk\r\n'
	fl_hostile "DEL byte" 'ERR syntax control byte in request' 'get k\177\r\n'
	fl_hostile "escape byte" 'ERR syntax control byte in request' '\033[2J\r\n'
	fl_hostile "unknown verb" 'ERR syntax unknown command' 'frobnicate x\r\n'
	fl_hostile "upper-case verb" 'ERR syntax unknown command' 'GET k\r\n'
	fl_hostile "UTF-8 in the verb" 'ERR syntax unknown command' 'g\303\251t k\r\n'
	fl_hostile "too few arguments" "ERR syntax wrong number of arguments for 'put'" 'put k\r\n'
	fl_hostile "too many for get" "ERR syntax wrong number of arguments for 'get'" 'get a b\r\n'
	fl_hostile "far too many" 'ERR syntax too many arguments' 'put a b c d e f g h\r\n'
	fl_hostile "empty key" 'ERR syntax empty key' 'get ""\r\n'
	long=$(printf '%0251d' 0)
	fl_hostile "251-byte key" 'ERR limit key longer than 250 bytes' "get $long\\r\\n"
	fl_hostile "unterminated quote" 'ERR syntax bad quoting' 'get "abc\r\n'
	fl_hostile "bad escape" 'ERR syntax bad quoting' 'get "a\\q"\r\n'
	fl_hostile "bad hex escape" 'ERR syntax bad quoting' 'get "\\xZZ"\r\n'
	fl_hostile "quote then a byte" 'ERR syntax bad quoting' 'get "a"b\r\n'
	fl_hostile "raw tab in quotes" 'ERR syntax bad quoting' 'get "a\tb"\r\n'
	fl_hostile "seconds not a number" 'ERR syntax bad number' 'expire k soon\r\n'
	fl_hostile "seconds overflow" 'ERR syntax bad number' 'expire k 99999999999\r\n'
	fl_hostile "negative seconds sign only" 'ERR syntax bad number' 'expire k -\r\n'
	fl_hostile "an HTTP request" 'ERR syntax unknown command' 'GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: x\r\n\r\n'
	fl_hostile "a bad line ending in a literal" 'ERR syntax unknown command' 'bogus {5}\r\nping\r\n'
	fl_hostile "a TLS hello" 'ERR syntax control byte in request' '\026\003\001\002\000\001\000\001\374\003\003\r\n'
	fl_hostile "blank lines only" - '\n\r\n   \n \r\n'
	fl_hostile "spaces around" - '   whoami   \r\n'
	# A line of exactly the limit is parsed; one byte more is refused once.
	long=$(head -c 16384 /dev/zero | tr '\0' x)
	fl_hostile "16384-byte line" 'ERR syntax unknown command' "$long\\n"
	fl_hostile "16385-byte line" 'ERR limit request line longer than 16384 bytes' "${long}y\\n"
	long=$(head -c 100000 /dev/zero | tr '\0' x)
	fl_hostile "100000 bytes, one line" 'ERR limit request line longer than 16384 bytes' "$long\\n"
	# UTF-8 edge cases are bytes: stored and returned as sent.
	run kv_raw_lines "login load $FL_SECRET\r\n"'put u1 \300\257\r\nput u2 \355\240\200\r\nput u3 \377\376\r\nget u1\r\nget u2\r\nget u3\r\nquit\r\n'
	FL_TRIED=$((FL_TRIED + 1))
	[[ $output == $'OK load guest\nOK\nOK\nOK\nVALUE 2\n\300\257\nVALUE 3\n\355\240\200\nVALUE 2\n\377\376\nBYE' ]]
	# A pipelined mix of good and bad: every reply in order.
	run kv_raw_lines "login load $FL_SECRET\r\n"'put a 1\r\nbogus\r\nget a\r\nput\r\nget "a\r\nput a {1}\r\n2\r\nget a\r\nquit\r\n'
	FL_TRIED=$((FL_TRIED + 1))
	assert_output "OK load guest
OK
ERR syntax unknown command
VALUE 1
1
ERR syntax wrong number of arguments for 'put'
ERR syntax bad quoting
OK
VALUE 1
2
BYE"
	echo "# hostile_inputs=$FL_TRIED" >&3
	((FL_TRIED >= 30))
	fl_log_clean
}

@test "faults: binary junk, 10000 bad requests in one write, then a good one" {
	local junk=$BATS_TEST_TMPDIR/junk out n
	fl_users
	kv_start -A "$FL_USERS"
	# Random bytes without '{' (a literal could swallow the ping) and
	# without "quit".
	head -c 65536 /dev/urandom | tr -d '{' >"$junk"
	out=$({ printf 'login load %s\r\n' "$FL_SECRET"; cat "$junk"
	    printf '\nping\r\n'; } | timeout 20 nc -N 127.0.0.1 "$KV_PORT" |
	    tr -d '\r')
	[[ ${out##*$'\n'} == PONG ]]
	n=$(grep -c '^ERR ' <<<"$out" || true)
	# Everything else the junk got was an ERR line (or nothing: blank).
	[[ $(grep -cvE '^(ERR |OK load guest$|PONG$|$)' <<<"$out") == 0 ]]
	out=$({ printf 'login load %s\r\n' "$FL_SECRET"
	    for ((i = 0; i < 10000; i++)); do printf 'x\n'; done
	    printf 'ping\r\n'; } | timeout 20 nc -N 127.0.0.1 "$KV_PORT" |
	    tr -d '\r')
	[[ $(grep -c '^ERR syntax unknown command$' <<<"$out") == 10000 ]]
	[[ ${out##*$'\n'} == PONG ]]
	echo "# junk_bytes=$(wc -c <"$junk") junk_errors=$n pipelined_bad=10000" >&3
	KVSTORE_PASSWORD=$FL_SECRET run kv -u load put after junk get after
	assert_output junk
	fl_log_clean
}

@test "faults: a huge declared length is refused at once and its data never buffered" {
	local pid rss0 rss1 ms t0
	fl_users
	kv_start -A "$FL_USERS"
	fl_open
	printf 'stats\r\n' >&"$FL_FD"
	while fl_line; do
		[[ $line == "STAT pid "* ]] && pid=${line#STAT pid }
		[[ $line == END ]] && break
	done
	[[ -n $pid && $(fl_parent "$pid") == "$KV_PID" ]]
	rss0=$(fl_rss "$pid")
	t0=$(fl_ms)
	printf 'put k {99999999999}\r\n' >&"$FL_FD"
	fl_line 2
	ms=$(($(fl_ms) - t0))
	[[ $line == "ERR limit value longer than 1048576 bytes" ]]
	# 64 MiB of the declared data: thrown away as it streams in.
	head -c $((64 << 20)) /dev/zero >&"$FL_FD"
	printf 'ping\r\n' >&"$FL_FD"
	fl_silent 0.5		# the ping is still literal data: no reply
	rss1=$(fl_rss "$pid")
	fl_close
	echo "# declared=99999999999 refused_ms=$ms rss_kib_before=$rss0 after_64MiB=$rss1" >&3
	((ms < 1000))
	((rss1 - rss0 < 4096))
	# Before login the limit is 512 bytes, and the same holds.
	run kv_raw_lines 'put k {99999999999}\r\n'
	assert_output "ERR limit value longer than 512 bytes"
	# A new connection works.
	KVSTORE_PASSWORD=$FL_SECRET run kv -u load put k v get k
	assert_output v
	fl_log_clean
}

# ---- slow and idle clients, the connection limit --------------------------

@test "faults: idle and half-sent connections are closed after -t and -T" {
	local t0 ms_idle ms_half ms_slow i
	fl_users
	kv_start -A "$FL_USERS" -t 2 -T 1
	# Idle: nothing at all.
	exec {FL_FD}<>"/dev/tcp/127.0.0.1/$KV_PORT"
	t0=$(fl_ms)
	fl_line 6
	ms_idle=$(($(fl_ms) - t0))
	[[ $line == "ERR timeout idle" ]]
	fl_closed	# then closed
	fl_close
	# Half a request.
	fl_open
	printf 'put k' >&"$FL_FD"
	t0=$(fl_ms)
	fl_line 6
	ms_half=$(($(fl_ms) - t0))
	[[ $line == "ERR timeout idle" ]]
	fl_closed
	fl_close
	# Slowloris: a byte every 0.4 s keeps each read within -T, but the
	# request as a whole gets -T from its first byte.
	fl_open
	t0=$(fl_ms)
	# (Write in a subshell: after the close a write may raise SIGPIPE.)
	for ((i = 0; i < 15; i++)); do
		(printf 'x' >&"$FL_FD") 2>/dev/null || break
		fl_line 0.4 && break
	done
	ms_slow=$(($(fl_ms) - t0))
	[[ $line == "ERR timeout idle" ]]
	fl_close
	echo "# idle_close_ms=$ms_idle half_request_close_ms=$ms_half slowloris_close_ms=$ms_slow" >&3
	((ms_idle >= 1500 && ms_idle < 4000))
	((ms_half >= 800 && ms_half < 3000))
	((ms_slow >= 800 && ms_slow < 3000))
	# The server itself is fine.
	KVSTORE_PASSWORD=$FL_SECRET run kv -u load put k v get k
	assert_output v
	fl_log_clean
}

@test "faults: at the connection limit newcomers are refused, the others unaffected" {
	local fds=() fd i line
	fl_users
	kv_start -A "$FL_USERS" -c 3
	for ((i = 0; i < 3; i++)); do
		fl_open
		fds+=("$FL_FD")
	done
	run kv_raw 'ping\r\n'
	assert_output $'ERR busy too many connections\r'
	for fd in "${fds[@]}"; do
		printf 'put k%s v\r\nget k%s\r\n' "$fd" "$fd" >&"$fd"
		IFS= read -r -t 5 -u "$fd" line
		[[ $line == $'OK\r' ]]
		IFS= read -r -t 5 -u "$fd" line
		[[ $line == $'VALUE 1\r' ]]
		IFS= read -r -t 5 -u "$fd" line
	done
	# One leaves: a newcomer gets in (once the master has reaped it).
	fd=${fds[0]}
	exec {fd}>&-
	for ((i = 0; i < 50; i++)); do
		run kv_raw 'ping\r\n'
		[[ $output == $'PONG\r' ]] && break
		sleep 0.1
	done
	assert_output $'PONG\r'
	for fd in "${fds[@]:1}"; do
		exec {fd}>&-
	done
	echo "# maxconn=3 refused_while_full=1 admitted_after_close=1" >&3
	fl_log_clean
}

# ---- load ----------------------------------------------------------------

@test "faults: 1000 concurrent clients, each writing and reading back its own keys" {
	local line
	fl_users
	# All 1000 come from 127.0.0.1: lift the per-address limits (-H, -U);
	# their logins are checked one at a time, so give them a minute (-L).
	kv_start -A "$FL_USERS" -c 1100 -m 64 -H 0 -U 0 -L 60
	run "$FAULTLOAD" -c 1000 -k 2 -r 4 -W -d 55 -u load -p "$FL_SECRET" \
	    127.0.0.1 "$KV_PORT"
	echo "$output"
	line=$(grep '^faultload:' <<<"$output" | tail -1)
	echo "# ${line#faultload: }" >&3
	assert_success
	assert_output --regexp 'clients=1000 .*writes_acked=4000 reads_checked=4000 keys_verified=2000 lost=0'
	fl_check
	fl_log_clean
}

@test "faults: 10000 connections opened and closed: no process, fd or segment growth" {
	local fd0 fd1 used0 used1 kids line i
	fl_users
	kv_start -A "$FL_USERS"
	KVSTORE_PASSWORD=$FL_SECRET run -0 kv -u load put k v
	# Let the spare pool settle before counting.
	sleep 0.5
	fd0=$(ls "/proc/$KV_PID/fd" | wc -l)
	used0=$(fl_bytes_used)
	run "$FAULTLOAD" -N 10000 127.0.0.1 "$KV_PORT"
	echo "$output"
	assert_success
	line=$output
	# Every connection's process ends and is reaped: what stays is at
	# most the 8 spares of -k and the crawler.
	for ((i = 0; i < 100; i++)); do
		kids=$(pgrep -P "$KV_PID" | wc -l)
		((kids <= 9)) && break
		sleep 0.1
	done
	fd1=$(ls "/proc/$KV_PID/fd" | wc -l)
	used1=$(fl_bytes_used)
	echo "# ${line#faultload: } master_fds=$fd0/$fd1 children_after=$kids bytes_used=$used0/$used1" >&3
	((kids <= 9))
	[[ $fd0 == "$fd1" ]]
	[[ -n $used0 && $used0 == "$used1" ]]
	fl_check
	fl_log_clean
}
