#!/usr/bin/env bats
# storetrust.bats - issue 10, the store's side of the trust boundaries: a
# segment someone else made is not adopted, a write racing userdel is not
# acknowledged nor inherited, an interrupted userdel is finished by the
# next, and the checker does not stop the other tenants.
#
# Programs, from make check's environment (helpers.bash for the first two):
#   KVSTORED, KVSTORE	the daemon and the client
#   KVSTORECTL		kvstorectl (default: next to kvstored)
#   KVSTORED_HOOKS	tests/kvstored-hooks (kvstored built -DKV_TEST_HOOKS)
#   KVSTORECTL_HOOKS	tests/kvstorectl-hooks (kvstorectl built likewise)
#   FAULTLOAD		tests/faultload (load with verification)
# The tests that need a hook build fail, not skip, without it: make check
# always builds both.  The tests of another owner need root (CI runs as
# root) and are skipped otherwise.

bats_require_minimum_version 1.5.0
load helpers

: "${KVSTORECTL:=$(dirname "$KVSTORED")/kvstorectl}"
: "${KVSTORED_HOOKS:=$(dirname "$KVSTORED")/../tests/kvstored-hooks}"
: "${KVSTORECTL_HOOKS:=$(dirname "$KVSTORED")/../tests/kvstorectl-hooks}"
: "${FAULTLOAD:=$(dirname "$KVSTORED")/../tests/faultload}"

T_BG=()		# background processes this test started (killed in teardown)

teardown() {
	local p

	for p in "${T_BG[@]}"; do
		kill -CONT "$p" 2>/dev/null || true
		kill -KILL "$p" 2>/dev/null || true
	done
	kv_stop
}

# ctl ARGS...: kvstorectl on the test's segment.
ctl() {
	timeout 20 "$KVSTORECTL" -s "$KV_SHM" "$@"
}

# seg_file: the test's segment in /dev/shm.
seg_file() {
	echo "/dev/shm/${KV_SHM#/}"
}

# make_segment: create the test's segment (a valid one, with an account
# "alice") the way kvstored does, with no daemon left running: one inetd-
# mode session on a pipe.
make_segment() {
	kv_env
	printf 'register alice alicesecret1\r\nquit\r\n' |
	    "$KVSTORED" -i -s "$KV_SHM" -m 16 -u "$(id -un)" >/dev/null 2>&1 3>&-
	[[ -f $(seg_file) ]] || {
		echo "make_segment: no $(seg_file)" >&2
		return 1
	}
}

# start_refused: kvstored on the test's segment must exit 1 at once (10 s
# at most), its message in $output.
start_refused() {
	run -1 timeout 10 "$KVSTORED" -f -p 0 -l 127.0.0.1 -s "$KV_SHM" -m 16 \
	    -u "$(id -un)" 3>&-
}

# ---- live connections (bash /dev/tcp, as in roles.bats) --------------------

# t_line FD: one reply line (10 s at most), CR removed.
t_line() {
	local line

	if ! IFS= read -r -t 10 -u "$1" line; then
		echo "t_line: no line from fd $1 (EOF or timeout)" >&2
		return 1
	fi
	printf '%s\n' "${line%$'\r'}"
}

# t_open USER: connect and log in as USER (registered first if needed); the
# descriptor is left in T_FD.
t_open() {
	local user=$1 secret line

	kv_session "$user" || return 1
	secret=$(<"$(kv_secret "$user")")
	exec {T_FD}<>"/dev/tcp/127.0.0.1/$KV_PORT" || return 1
	printf 'login %s %s\r\n' "$user" "$secret" >&"$T_FD"
	line=$(t_line "$T_FD") || return 1
	if [[ $line != "OK $user "* ]]; then
		echo "t_open: login as $user: $line" >&2
		return 1
	fi
}

# ---- 1: the segment is the daemon's alone --------------------------------

@test "segment: one made writable for others (mode 0666) is refused by kvstored and kvstorectl" {
	make_segment
	chmod 666 "$(seg_file)"
	start_refused
	assert_output --partial "segment $KV_SHM: mode 0666, not 0600"
	assert_output --partial "refusing it (remove it with kvstored -R -s $KV_SHM"
	# (kvstorectl may refuse it before store_open does, in words of its
	# own: both name the segment and the mode)
	run -1 ctl users
	assert_output --regexp "^kvstorectl: segment $KV_SHM(:| has) mode 0666, not 0600: "
	refute_output --partial alice
	# as it was, it is taken
	chmod 600 "$(seg_file)"
	run -0 ctl users
	assert_output "alice guest keys 0 bytes 0"
}

@test "segment: one owned by another user is refused by the daemon; root's kvstorectl takes it only at 0600" {
	[[ $EUID -eq 0 ]] || skip "needs root to give the segment to another uid"
	make_segment
	chown 64123:64123 "$(seg_file)"
	start_refused
	assert_output --partial "segment $KV_SHM: owned by uid 64123, not by uid 0"
	# the operator (root) works on the daemon user's segment...
	run -0 ctl users
	assert_output "alice guest keys 0 bytes 0"
	# ...but not on one that others could have written
	chmod 640 "$(seg_file)"
	run -1 ctl users
	assert_output --regexp "^kvstorectl: segment $KV_SHM(:| has) mode 0640, not 0600: "
}

@test "segment: a symbolic link in its place is not followed" {
	local target=$BATS_TEST_TMPDIR/target

	make_segment
	cp "$(seg_file)" "$target"
	rm -f "$(seg_file)"
	ln -s "$target" "$(seg_file)"
	start_refused
	assert_output --partial "$KV_SHM"
	run -1 ctl users
	refute_output --partial alice
}

@test "users file: a symbolic link planted as its .lock is not followed" {
	local f=$BATS_TEST_TMPDIR/acct/users victim=$BATS_TEST_TMPDIR/victim

	mkdir -m 700 "$BATS_TEST_TMPDIR/acct"
	make_segment
	ln -s "$victim" "$f.lock"
	KVSTORE_PASSWORD=bobsecret1 run -1 ctl -A "$f" useradd bob
	assert_output --partial "$f.lock: Too many levels of symbolic links"
	[[ ! -e $victim ]]
	[[ ! -e $f ]]
}

# ---- 5: writes check the account generation under the stripe lock --------

@test "store: a write names the account's generation; a deleted account's, or its successor's, is refused" {
	: "${STORETEST:?STORETEST is not set (run the tests with make check)}"
	run -0 "$STORETEST" "$KV_SHM" 16 1024 <<-'EOF'
	user alice
	gen 1
	putg 1 0 k v
	putg 1 7 k v
	userdel 1
	putg 1 0 k v
	put 1 k v
	user bob
	gen 1
	putg 1 0 k v
	get 1 k
	putg 1 1 k v
	get 1 k
	check
	EOF
	assert_output - <<-'EOF'
	1
	gen 0
	OK
	NO_USER
	OK
	NO_USER
	NO_USER
	1
	gen 1
	NO_USER
	NOT_FOUND
	OK
	VALUE 1 v
	clean
	EOF
}

@test "userdel racing a put that passed its account check: not acknowledged, and not inherited by the next account in the slot" {
	local fa

	KVSTORED=$KVSTORED_HOOKS KVSTORE_TEST_WRITE_PAUSE_MS=3000 kv_start
	t_open alice
	fa=$T_FD
	# The session has checked alice; the store has not yet (3 s).
	printf 'put k stolen\r\n' >&"$fa"
	kv_wait_log 'test: pid [0-9]+ pauses a write for 3000 ms' 5
	run -0 ctl userdel alice
	assert_output "alice deleted, with its keys"
	# bob is the only account now: he has the first free slot, alice's.
	kv_session bob
	run -0 ctl users
	assert_output "bob guest keys 0 bytes 0"
	run -0 t_line "$fa"
	assert_output "ERR auth account removed"
	run -1 t_line "$fa"
	exec {fa}>&-
	run -0 kv_raw_lines_as bob 'get k\r\nstats\r\nquit\r\n'
	assert_line -n 0 NOT_FOUND
	assert_line "STAT user_items 0"
	assert_line "STAT items 0"
	run -0 ctl users
	assert_output "bob guest keys 0 bytes 0"
	run -0 ctl check
	assert_output --partial " 0 errors"
}

@test "userdel while a put holds its stripe: the put sees the deletion at its commit and is not acknowledged" {
	local fa

	KVSTORED=$KVSTORED_HOOKS KVSTORE_TEST_HOLD_MS=2000 kv_start
	t_open alice
	fa=$T_FD
	printf 'put k stolen\r\n' >&"$fa"
	kv_wait_log 'test: pid [0-9]+ holds a stripe for 2000 ms' 5
	# userdel marks alice first, then waits for the stripe to flush it
	run -0 ctl userdel alice
	assert_output "alice deleted, with its keys"
	run -0 t_line "$fa"
	assert_output "ERR auth account removed"
	exec {fa}>&-
	kv_session bob
	run -0 kv_raw_lines_as bob 'get k\r\nquit\r\n'
	assert_output $'NOT_FOUND\nBYE'
	run -0 ctl check
	assert_output --partial " 0 errors"
}

# ---- 6: userdel is resumable ----------------------------------------------

# wait_stopped PID: until PID is stopped (state T), 10 s at most.
wait_stopped() {
	local i stat

	for ((i = 0; i < 200; i++)); do
		{ IFS= read -r stat <"/proc/$1/stat"; } 2>/dev/null || break
		stat=${stat##*) }
		[[ ${stat%% *} == T ]] && return 0
		sleep 0.05
	done
	echo "wait_stopped: pid $1 did not stop" >&2
	return 1
}

# fill USER N: USER puts keys k0..k(N-1), in one connection.
fill() {
	local user=$1 n=$2 i req=

	for ((i = 0; i < n; i++)); do
		req+="put k$i value-$i"$'\r\n'
	done
	run -0 kv_raw_lines_as "$user" '%squit\r\n' "$req"
	[[ $(grep -c '^OK$' <<<"$output") -eq $n ]]
}

@test "userdel killed half way: shown and checked as being deleted, its name stays taken, the next userdel finishes it" {
	local err=$BATS_TEST_TMPDIR/userdel.err out=$BATS_TEST_TMPDIR/userdel.out
	local pid secret left re

	kv_start -m 64
	fill alice 3000
	secret=$(<"$(kv_secret alice)")
	KVSTORE_TEST_STOP_AFTER_STRIPE=16 "$KVSTORECTL_HOOKS" -s "$KV_SHM" \
	    userdel alice >"$out" 2>"$err" 3>&- &
	pid=$!
	T_BG+=("$pid")
	wait_stopped "$pid"
	run cat "$err"
	assert_output --regexp "^kvstorectl: test: pid $pid stops after stripe 16 of [0-9]+$"
	kill -KILL "$pid"
	wait "$pid" || true
	# killed after 16 stripes: it printed nothing, and left the rest
	[[ ! -s $out ]]
	run -0 ctl users
	re='^alice deleting keys ([0-9]+) bytes [0-9]+ interrupted: finish it with kvstorectl userdel alice$'
	assert_output --regexp "$re"
	[[ $output =~ $re ]]
	left=${BASH_REMATCH[1]}
	echo "# keys left after the interrupted userdel: $left of 3000" >&3
	((left > 0 && left < 3000))
	run -1 ctl check
	assert_output --partial "check: user 1 (alice): left being deleted by an interrupted userdel, $left items to go: finish it with kvstorectl userdel alice"
	# the name is taken, and nobody logs in to it
	run -0 kv_raw_lines 'register alice othersecret1\r\nquit\r\n'
	assert_output $'ERR auth name taken\nBYE'
	run -0 kv_raw_lines 'login alice %s\r\nquit\r\n' "$secret"
	assert_output $'ERR auth login failed\nBYE'
	KVSTORE_PASSWORD=othersecret1 run -1 ctl useradd alice
	assert_output "kvstorectl: user alice is being deleted: finish it with kvstorectl userdel alice"
	# the next userdel finishes it
	run -0 ctl userdel alice
	assert_output "alice deleted, with its keys"
	run -0 ctl users
	assert_output ""
	run -0 ctl check
	assert_output --regexp ": 0 items, .* 0 errors$"
	run -1 ctl userdel alice
	assert_output "kvstorectl: no such user: alice"
	run -0 kv_raw_lines 'register alice othersecret1\r\nquit\r\n'
	assert_output $'OK alice guest\nBYE'
}

# ---- 8: the checker does not freeze the store ------------------------------

# now_ms: milliseconds since the epoch.
now_ms() {
	local ns

	ns=$(date +%s%N)
	echo $((ns / 1000000))
}

@test "check stopped half way holds no lock: other tenants' requests go on, and it finishes clean when let go" {
	local err=$BATS_TEST_TMPDIR/check.err out=$BATS_TEST_TMPDIR/check.out
	local pid fb k req= t0 ms n=64 line got=() want=()

	kv_start -m 64
	fill alice 2000
	t_open bob
	fb=$T_FD
	KVSTORE_TEST_STOP_AFTER_STRIPE=1 "$KVSTORECTL_HOOKS" -s "$KV_SHM" \
	    check >"$out" 2>"$err" 3>&- &
	pid=$!
	T_BG+=("$pid")
	wait_stopped "$pid"
	run cat "$err"
	assert_output --regexp "^kvstorectl: test: pid $pid stops after stripe 1 of [0-9]+$"
	# bob writes and reads keys all over the table while check is stopped
	# (not i: bats' run -0 sets it)
	for ((k = 0; k < n; k++)); do
		req+="put b$k v$k"$'\r\n'"get b$k"$'\r\n'
	done
	t0=$(now_ms)
	printf '%s' "$req" >&"$fb"
	for ((k = 0; k < 3 * n; k++)); do
		IFS= read -r -t 5 -u "$fb" line || break
		got+=("${line%$'\r'}")
	done
	ms=$(($(now_ms) - t0))
	for ((k = 0; k < n; k++)); do
		want+=(OK "VALUE $((1 + ${#k}))" "v$k")
	done
	echo "# $n puts and $n gets while check is stopped: ${#got[@]} of" \
	    "${#want[@]} reply lines in $ms ms" >&3
	[[ "${got[*]}" == "${want[*]}" ]]
	((ms < 1000))
	[[ ! -s $out ]]
	kill -CONT "$pid"
	wait "$pid"
	run cat "$out"
	assert_output --regexp "^check: segment $KV_SHM: 2064 items, [0-9]+ free chunks, [0-9]+ of [0-9]+ pages, 0 errors$"
	exec {fb}>&-
}

@test "check with no writers still finds what it found holding every lock" {
	: "${STORETEST:?STORETEST is not set (run the tests with make check)}"
	local c

	local ba sa bb sb
	for c in "userkeys 1" "stripe" "loop 1 a" "share 1 a b" "free 1 a" \
	    "leak 1 a"; do
		if [[ $c == share* ]]; then
			# The checker walks stripe by stripe, bucket by bucket,
			# and the segment's random hash key decides where a
			# and b are: the chain that goes on into the other's
			# must be walked second, so that the other's is met
			# as a chunk seen before (one error), not first as an
			# item in the wrong bucket.
			read -r ba sa bb sb <<<"$("$STORETEST" "$KV_SHM" 16 1024 \
			    <<<$'bucket 1 a\nbucket 1 b' | tr '\n' ' ')"
			if ((sa < sb || (sa == sb && ba < bb))); then
				c="share 1 b a"
			fi
		fi
		run -0 "$STORETEST" "$KV_SHM" 16 1024 <<-EOF
		user alice
		put 1 a x
		put 1 b y
		put 1 c z
		corrupt $c
		check
		EOF
		"$KVSTORED" -R -s "$KV_SHM" >/dev/null 2>&1
		assert_line -n 4 OK
		case $c in
		userkeys*)
			assert_line -n 5 --regexp "^check: user 1 \(alice\): counts 4/[0-9]+, found 3/[0-9]+$"
			assert_line -n 6 --regexp ": 3 items, 0 free chunks, 1 of [0-9]+ pages, 1 errors$" ;;
		stripe)
			assert_line -n 5 --regexp "^check: stripe 0: counts [0-9]+/[0-9]+ items/bytes, found [0-9]+/[0-9]+$"
			assert_line -n 6 --regexp ": 3 items, .* 1 errors$" ;;
		loop*|share*)
			assert_line -n 5 --regexp "^check: bucket [0-9]+: chain loops or shares ref [0-9]+$"
			assert_line -n 6 --regexp ": 3 items, .* 1 errors$" ;;
		free*)
			assert_line -n 5 --regexp "^check: page [0-9]+: free chunk [0-9]+ is also in use or listed twice$"
			assert_line -n 6 --regexp ": 3 items, .* 1 errors$" ;;
		leak*)
			assert_line -n 5 --regexp "^check: user 1 \(alice\): counts 3/[0-9]+, found 2/[0-9]+$"
			assert_line -n 6 "check: 3 chunks handed out, 2 in use, 0 to free, 0 pending: 1 lost"
			assert_line -n 7 --regexp ": 2 items, 0 free chunks, 1 of [0-9]+ pages, 2 errors$" ;;
		esac
	done
}

@test "check under a write load: no false alarm, and the load loses nothing" {
	local secret load=$BATS_TEST_TMPDIR/load.out k still=0 moved=0

	kv_start -m 64
	kv_session load
	secret=$(<"$(kv_secret load)")
	"$FAULTLOAD" -c 8 -k 64 -r 100000000 -d 4 -s 300 -u load -p "$secret" \
	    127.0.0.1 "$KV_PORT" >"$load" 2>&1 3>&- &
	T_BG+=("$!")
	sleep 0.5	# the load is under way (it runs 4 s)
	for ((k = 0; k < 10; k++)); do
		run -0 ctl check
		assert_line --regexp ", 0 errors$"
		if [[ $output == *"changed during each"* ]]; then
			moved=$((moved + 1))
		else
			still=$((still + 1))
		fi
	done
	echo "# 10 checks under load: $still with every count compared," \
	    "$moved with the store moving in each walk" >&3
	wait "${T_BG[0]}"
	run cat "$load"
	assert_line --regexp ' lost=0 '
	assert_line --regexp ' errors=0 '
	run -0 ctl check
	assert_output --regexp "^check: segment $KV_SHM: [0-9]+ items, [0-9]+ free chunks, [0-9]+ of [0-9]+ pages, 0 errors$"
}
