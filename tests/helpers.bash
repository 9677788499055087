# tests/helpers.bash - shared helpers for the kvstore bats tests.
#
# Each tests/*.bats file starts with
#
#	load helpers
#	teardown() { kv_stop; }
#
# (a file that needs more teardown calls kv_stop from its own teardown).
#
# make check exports KVSTORED, KVSTORE and STORETEST (the build tree's
# programs) and TESTS_DIR (the source tests/ directory).  To run one file by
# hand from the top of a built tree:
#	KVSTORED=$PWD/src/kvstored KVSTORE=$PWD/src/kvstore \
#	    STORETEST=$PWD/tests/storetest bats tests/protocol.bats
#
# Every test gets its own HOME, shared-memory segment and log under
# $BATS_TEST_TMPDIR, so tests may run in parallel and as root, and write
# nothing outside bats' temporary directory (make distcheck needs that).
#
# Variables set for the test:
#	KV_SHM	segment name, /kvt-<pid>-<test number>-<random>
#	KV_LOG	the daemon's log (its stderr), $BATS_TEST_TMPDIR/kvstored.log
#	KV_PID	the daemon's pid (kv_start)
#	KV_PORT	the port it listens on (kv_start; it binds port 0)
#	HOME	$BATS_TEST_TMPDIR/home; the client keeps its secrets in
#		$HOME/.kvstore/secrets/<host>,<port>,<user>
#
# The engine: KV_ENGINE (environment) names the kvstored engine the tests
# run on; unset or "prefork" (the default) is today's one process per
# connection, and kv_start passes no flag for it.  Any other value is
# passed to every daemon kv_start starts as -e "$KV_ENGINE", and
# KV_ENGINE_ARGS (an array: empty, or -e ENGINE) is there for tests that
# start kvstored themselves:
#	KV_ENGINE=event make check	(.ci/run: KV_ENGINES="prefork event")
#
# Cleaning up: kv_stop, from every file's teardown, runs whether the test
# passed or failed.  It stops the daemon kv_start started last, kills
# whatever is left of any daemon this test started (every process whose
# argv names one of this test's segments, -s NAME: the names are unique to
# the test, so no other process can match), and removes those segments.

load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'

: "${KVSTORED:?KVSTORED is not set (run the tests with make check)}"
: "${KVSTORE:?KVSTORE is not set (run the tests with make check)}"

# kv_env: give this test its own HOME, segment name and log file.  Runs when
# this file is loaded into a test; the other helpers call it again in case
# they run from setup_file, where there is no $BATS_TEST_TMPDIR yet.
kv_env() {
	local dir=${BATS_TEST_TMPDIR:-${BATS_FILE_TMPDIR:-${BATS_RUN_TMPDIR:?}}}

	[[ -n ${KV_SHM-} ]] && return 0
	KV_SHM=/kvt-$$-${BATS_TEST_NUMBER:-0}-$RANDOM
	KV_LOG=$dir/kvstored.log
	HOME=$dir/home
	mkdir -p "$HOME"
	export HOME KV_SHM KV_LOG
}

if [[ -n ${BATS_TEST_TMPDIR-} ]]; then
	kv_env
fi

KV_ENGINE=${KV_ENGINE:-prefork}
KV_ENGINE_ARGS=()
if [[ $KV_ENGINE != prefork ]]; then
	KV_ENGINE_ARGS=(-e "$KV_ENGINE")
fi
export KV_ENGINE

# Every segment a daemon of this test used (kv_start adds KV_SHM); kv_stop
# cleans up after each of them.
KV_SEGMENTS=()

# kv_alive PID: true while PID runs (a zombie, exited but not yet waited
# for, counts as gone).  Builtins only: bash reaps its background jobs at
# any moment, and a failing command substitution would trip bats' ERR trap.
kv_alive() {
	local stat
	{ IFS= read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 1
	stat=${stat##*) }
	[[ ${stat%% *} != Z ]]
}

# kv_start [kvstored flags...]: start the daemon in the foreground, in the
# background of the test, on 127.0.0.1 and a free port, with a 16 MiB
# segment, as the current user, on the engine KV_ENGINE names.  Later flags
# override these (kvstored takes the last of a repeated flag).  Waits (10 s
# at most) for the log's start: line and sets KV_PORT and KV_PID; on
# failure prints the log and fails.
kv_start() {
	local i rc re='start: kvstored [^ ]+ listen [^ ]+ port ([0-9]+) '

	kv_env
	: >"$KV_LOG"
	KV_SEGMENTS+=("$KV_SHM")
	# fd 3 is bats' own output: a background process must not hold it.
	"$KVSTORED" -f -p 0 -l 127.0.0.1 -s "$KV_SHM" -m 16 -u "$(id -un)" \
	    "${KV_ENGINE_ARGS[@]}" "$@" </dev/null >>"$KV_LOG" 2>&1 3>&- &
	KV_PID=$!
	KV_PORT=
	for ((i = 0; i < 200; i++)); do
		if [[ $(<"$KV_LOG") =~ $re ]]; then
			KV_PORT=${BASH_REMATCH[1]}
			export KV_PID KV_PORT
			return 0
		fi
		kv_alive "$KV_PID" || break
		sleep 0.05
	done
	if kv_alive "$KV_PID"; then
		echo "kv_start: no start: line in $KV_LOG after 10 s" >&2
	else
		# (not a bare wait: under bats' errexit its status would end
		# the function before the log is shown)
		rc=0
		wait "$KV_PID" 2>/dev/null || rc=$?
		echo "kv_start: kvstored exited with status $rc" >&2
	fi
	echo "--- $KV_LOG ---" >&2
	cat "$KV_LOG" >&2
	echo "---" >&2
	kv_stop
	return 1
}

# kv_stop: SIGTERM the daemon (KV_PID), wait for it (5 s, then SIGKILL);
# then SIGKILL every process left that names one of this test's segments in
# its argv (connection processes of this or of an earlier daemon of the
# test, one whose master was killed, one started by hand with -s
# "$KV_SHM"), and remove those segments.  Safe to call more than once, and
# when kv_start was never called.
kv_stop() {
	local i seg done=" "

	if [[ -n ${KV_PID-} ]]; then
		if kv_alive "$KV_PID"; then
			kill -TERM "$KV_PID" 2>/dev/null || true
			for ((i = 0; i < 100; i++)); do
				kv_alive "$KV_PID" || break
				sleep 0.05
			done
			if kv_alive "$KV_PID"; then
				echo "kv_stop: kvstored $KV_PID ignored SIGTERM;" \
				    "killing it" >&2
				kill -KILL "$KV_PID" 2>/dev/null || true
			fi
		fi
		wait "$KV_PID" 2>/dev/null || true
		KV_PID=
	fi
	for seg in ${KV_SHM-} "${KV_SEGMENTS[@]}"; do
		[[ -n $seg && $done != *" $seg "* ]] || continue
		done+="$seg "
		kv_kill_segment "$seg"
		"$KVSTORED" -R -s "$seg" >/dev/null 2>&1 || true
		rm -f "/dev/shm/${seg#/}"
	done
	return 0
}

# kv_kill_segment NAME: SIGKILL every process whose argv has -s NAME (as
# two arguments), and wait (5 s at most) until they are gone.  Builtins
# only, and the argv read just before the kill: a pid reused since names no
# segment of ours.
kv_kill_segment() {
	local p i args left

	for ((i = 0; i < 100; i++)); do
		left=
		for p in /proc/[0-9]*; do
			p=${p#/proc/}
			[[ $p == "$$" || $p == "$BASHPID" ]] && continue
			args=()
			{ mapfile -d '' args <"/proc/$p/cmdline"; } 2>/dev/null ||
			    continue
			kv_argv_has_segment "$1" "${args[@]}" || continue
			left+=" $p"
			kill -KILL "$p" 2>/dev/null || true
		done
		# (A killed process, even one nobody has reaped yet, has an
		# empty cmdline: it drops out of the next round.)
		[[ -z $left ]] && return 0
		sleep 0.05
	done
	echo "kv_stop: still running with segment $1:$left" >&2
	return 0
}

# kv_argv_has_segment NAME ARG...: true if the ARGs have -s NAME.
kv_argv_has_segment() {
	local seg=$1 prev= a

	shift
	for a in "$@"; do
		[[ $prev == -s && $a == "$seg" ]] && return 0
		prev=$a
	done
	return 1
}

# kv ARGS...: the client against the test's daemon (127.0.0.1 $KV_PORT),
# as the current user unless ARGS start with -u USER.  Use with run:
#	run kv put k v get k
kv() {
	local opts=()

	kv_env
	# client options go before host and port
	while [[ $# -gt 0 && $1 == -* ]]; do
		case $1 in
		-q) opts+=("$1"); shift ;;
		--) opts+=("$1"); shift; break ;;
		*) opts+=("$1" "$2"); shift 2 ;;
		esac
	done
	timeout 30 "$KVSTORE" "${opts[@]}" 127.0.0.1 "$KV_PORT" "$@"
}

# kv_nc: send stdin to the daemon and print everything it answers (raw,
# CRLFs kept).  nc -N shuts down the sending side at the end of stdin; the
# daemon then answers what it read and closes.  10 s at most.
kv_nc() {
	timeout 10 nc -N 127.0.0.1 "$KV_PORT"
}

# kv_raw FORMAT [ARGS...]: send printf FORMAT ARGS as one stream (not logged
# in) and print the raw reply, e.g.
#	run kv_raw 'ping\r\nquit\n'
#	assert_output $'PONG\r\nBYE\r'
# (run drops the final LF, not the CR before it).
kv_raw() {
	local fmt=$1
	shift
	# shellcheck disable=SC2059	# the format is the point
	printf -- "$fmt" "$@" | kv_nc
}

# kv_raw_lines FORMAT [ARGS...]: kv_raw with the CRs removed, for
# assert_line and friends.
kv_raw_lines() {
	kv_raw "$@" | tr -d '\r'
}

# kv_secret USER: the path of the client's secret file for USER on the
# test's daemon.
kv_secret() {
	echo "$HOME/.kvstore/secrets/127.0.0.1,$KV_PORT,$1"
}

# kv_session USER: make sure USER has an account on the test's daemon and a
# secret file (the client registers USER on first use).
kv_session() {
	[[ -s $(kv_secret "$1") ]] && return 0
	kv -u "$1" get kv-session-probe >/dev/null || {
		echo "kv_session: cannot register $1" >&2
		return 1
	}
	[[ -s $(kv_secret "$1") ]] || {
		echo "kv_session: no secret file $(kv_secret "$1")" >&2
		return 1
	}
}

# kv_raw_as USER FORMAT [ARGS...]: like kv_raw, logged in as USER first
# (kv_session makes the account).  The login reply (OK USER ROLE) is
# checked and dropped; only the replies to FORMAT are printed.
kv_raw_as() {
	local user=$1 fmt=$2 secret first
	shift 2

	kv_session "$user" || return 1
	secret=$(<"$(kv_secret "$user")")
	{
		printf 'login %s %s\n' "$user" "$secret"
		# shellcheck disable=SC2059	# the format is the point
		printf -- "$fmt" "$@"
	} | kv_nc | {
		if ! IFS= read -r first; then
			echo "kv_raw_as: no reply to login" >&2
			return 1
		fi
		if [[ $first != "OK $user "* ]]; then
			echo "kv_raw_as: login as $user failed: $first" >&2
			return 1
		fi
		cat
	}
}

# kv_raw_lines_as USER FORMAT [ARGS...]: kv_raw_as without the CRs.
kv_raw_lines_as() {
	kv_raw_as "$@" | tr -d '\r'
}

# kv_fill USER put|get|del PREFIX FIRST COUNT [SIZE|STEP]: many puts, gets
# or dels at once, pipelined, as USER (kv_session makes the account):
# tests/cachefill.py, which prints "stored N full M", "found N missing M"
# or "deleted N missing M".
kv_fill() {
	local user=$1
	shift
	kv_session "$user" || return 1
	timeout 120 python3 "$TESTS_DIR/cachefill.py" "$KV_PORT" "$user" \
	    "$(<"$(kv_secret "$user")")" "$@"
}

# kv_wait_log REGEX [SECONDS]: wait (default 5 s) until the daemon's log has
# a line matching the extended regular expression REGEX.
kv_wait_log() {
	local i n=$((${2:-5} * 20))

	for ((i = 0; i < n; i++)); do
		grep -Eq -- "$1" "$KV_LOG" && return 0
		sleep 0.05
	done
	echo "kv_wait_log: no line matching '$1' in $KV_LOG" >&2
	cat "$KV_LOG" >&2
	return 1
}

# kv_sysuser VAR: as root, create a throwaway system user (no home, no login
# shell, a group of its own), put its name in VAR and remember it for
# kv_sysusers_remove, which a teardown calls after kv_stop (userdel refuses a
# user that still runs processes).
KV_SYSUSERS=()
kv_sysuser() {
	local name=kvt$$-${BATS_TEST_NUMBER:-0}-${#KV_SYSUSERS[@]}$RANDOM

	useradd --system --no-create-home --shell /usr/sbin/nologin \
	    --user-group "$name" || {
		echo "kv_sysuser: useradd $name failed" >&2
		return 1
	}
	KV_SYSUSERS+=("$name")
	printf -v "$1" '%s' "$name"
}

kv_sysusers_remove() {
	local u

	for u in "${KV_SYSUSERS[@]}"; do
		userdel -f "$u" 2>/dev/null || true
		groupdel "$u" 2>/dev/null || true
	done
	KV_SYSUSERS=()
}
