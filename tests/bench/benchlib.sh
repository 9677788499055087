# shellcheck shell=bash
# benchlib.sh - what the benchmark scripts share (sourced, not run).
#
# Finds or builds the programs, starts servers on free loopback ports, stops
# every one of them on exit (and removes kvstored's segment), runs kvbench and
# picks fields out of its RESULT line.  Servers bind 127.0.0.1 only.
#
# Programs (environment, else the default):
#	KVSTORED	the daemon: ../../src/kvstored next to this directory
#	KVBENCH		tests/bench/kvbench if built and newer than its source,
#			else compiled into the temporary directory
#	CEILING		the same for tests/bench/ceiling
#	MEMCACHED, REDIS_SERVER, MEMCASLAP	from $PATH

bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BENCH_TMP=$(mktemp -d "${TMPDIR:-/tmp}/kvbench.XXXXXX")
BENCH_PIDS=()
KV_SEG=
KV_PID=
MEMCACHED=${MEMCACHED:-memcached}
REDIS_SERVER=${REDIS_SERVER:-redis-server}
MEMCASLAP=${MEMCASLAP:-memcaslap}

bench_die() {
	echo "${0##*/}: $*" >&2
	exit 1
}

# Progress and notes go to stderr; stdout is for the results.
bench_note() {
	echo "# $*" >&2
}

# bench_stop PID: SIGTERM, ten seconds to go, then SIGKILL; reaped.
bench_stop() {
	local i

	kill -TERM "$1" 2>/dev/null
	for ((i = 0; i < 100; i++)); do
		kill -0 "$1" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$1" 2>/dev/null
	wait "$1" 2>/dev/null
}

bench_cleanup() {
	local pid

	for pid in "${BENCH_PIDS[@]}"; do
		kill -TERM "$pid" 2>/dev/null	# all at once, then each waited
	done
	for pid in "${BENCH_PIDS[@]}"; do
		bench_stop "$pid"
	done
	BENCH_PIDS=()
	for seg in $KV_SEG ${BENCH_SEGS-}; do
		"$KVSTORED" -R -s "$seg" >/dev/null 2>&1
	done
	if [[ -n $KV_SEG ]]; then
		KV_SEG=
	fi
	bench_huge_restore
	rm -rf "$BENCH_TMP"
}
trap bench_cleanup EXIT

# BENCH_HUGE=1 (root only): /dev/shm remounted huge=advise for the run, so
# that kvstored's segment is made of 2 MiB pages (kvstored(8), ENGINES),
# and its huge= option put back on exit.  Before any server starts.
BENCH_HUGE_WAS=
bench_huge() {
	local opts

	[[ ${BENCH_HUGE:-0} == 1 ]] || return 0
	((EUID == 0)) || bench_die "BENCH_HUGE=1 needs root (mount -o remount)"
	opts=$(awk '$2 == "/dev/shm" { print $4 }' /proc/mounts | tail -n 1)
	BENCH_HUGE_WAS=never
	[[ $opts =~ (^|,)huge=([a-z_]+) ]] && BENCH_HUGE_WAS=${BASH_REMATCH[2]}
	mount -o remount,huge=advise /dev/shm ||
	    bench_die "cannot remount /dev/shm huge=advise"
	bench_note "/dev/shm remounted huge=advise (was huge=$BENCH_HUGE_WAS)"
}

bench_huge_restore() {
	[[ -n $BENCH_HUGE_WAS ]] || return 0
	mount -o remount,huge="$BENCH_HUGE_WAS" /dev/shm &&
	    bench_note "/dev/shm huge=$BENCH_HUGE_WAS again"
	BENCH_HUGE_WAS=
}
trap 'exit 130' INT
trap 'exit 143' TERM

# bench_tool VAR NAME: the program named by $VAR, or tests/bench/NAME when
# it is built from the current source, or NAME built now from NAME.c.
bench_tool() {
	local var=$1 name=$2 path=${!1-} src=$bench_dir/$2.c

	if [[ -n $path ]]; then
		[[ -x $path ]] || bench_die "$var=$path is not an executable"
	elif [[ -x $bench_dir/$name && ! $src -nt $bench_dir/$name ]]; then
		path=$bench_dir/$name
	else
		path=$BENCH_TMP/$name
		${CC:-cc} -O2 -Wall -Wextra -pthread -o "$path" "$src" -lm ||
		    bench_die "cannot build $name from $src"
	fi
	printf -v "$var" '%s' "$path"
}

bench_find_kvstored() {
	: "${KVSTORED:=$bench_dir/../../src/kvstored}"
	[[ -x $KVSTORED ]] || bench_die "no kvstored at $KVSTORED:" \
	    "build it, or set KVSTORED to the build tree's src/kvstored"
}

bench_need() {
	command -v "$1" >/dev/null 2>&1 || bench_die "$1 not found" \
	    "(Debian: apt-get install -y memcached libmemcached-tools" \
	    "redis-server)"
}

# A port nobody listens on, below the ephemeral range.
bench_free_port() {
	local p i

	for ((i = 0; i < 100; i++)); do
		p=$((12000 + RANDOM % 20000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	bench_die "no free port found"
}

# bench_wait_port PORT PID: until PORT answers (0), or PID is gone / 10 s (1).
bench_wait_port() {
	local i

	for ((i = 0; i < 100; i++)); do
		kill -0 "$2" 2>/dev/null || return 1
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

# bench_start NAME PORTVAR PIDVAR COMMAND...: run COMMAND with @PORT@
# replaced by a free port until it listens there (a few tries: the port may
# have been taken in between).
bench_start() {
	local name=$1 portvar=$2 pidvar=$3 port pid a
	local -a cmd
	shift 3
	for _ in 1 2 3 4 5; do
		port=$(bench_free_port)
		cmd=()
		for a in "$@"; do
			cmd+=("${a//@PORT@/$port}")
		done
		"${cmd[@]}" >"$BENCH_TMP/$name.log" 2>&1 &
		pid=$!
		if bench_wait_port "$port" "$pid"; then
			BENCH_PIDS+=("$pid")
			printf -v "$portvar" '%s' "$port"
			printf -v "$pidvar" '%s' "$pid"
			return 0
		fi
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	bench_die "cannot start $name: $(tail -n 3 "$BENCH_TMP/$name.log")"
}

bench_start_memcached() {	# MiB
	bench_need "$MEMCACHED"
	bench_start memcached MC_PORT MC_PID "$MEMCACHED" -u nobody \
	    -p @PORT@ -l 127.0.0.1 -t 4 -m "$1" -c 8192
}

bench_start_redis() {
	bench_need "$REDIS_SERVER"
	bench_start redis REDIS_PORT REDIS_PID "$REDIS_SERVER" --save '' \
	    --appendonly no --port @PORT@ --bind 127.0.0.1 --daemonize no \
	    --maxclients 10000 --dir "$BENCH_TMP"
}

bench_start_ceiling() {
	local i

	bench_tool CEILING ceiling
	: >"$BENCH_TMP/ceiling.log"
	"$CEILING" -p 0 >"$BENCH_TMP/ceiling.log" 2>&1 &
	CEIL_PID=$!
	BENCH_PIDS+=("$CEIL_PID")
	for ((i = 0; i < 100; i++)); do
		CEIL_PORT=$(sed -n 's/^ceiling: listen .* port \([0-9]*\)$/\1/p' \
		    "$BENCH_TMP/ceiling.log")
		[[ -n $CEIL_PORT ]] && return 0
		kill -0 "$CEIL_PID" 2>/dev/null || break
		sleep 0.1
	done
	bench_die "ceiling did not start: $(cat "$BENCH_TMP/ceiling.log")"
}

# bench_start_kvstored MiB [NAME [FLAGS...]]: sets KV_PORT (native),
# KV_MC_PORT (memcached listener bound to user "bench"), KV_PID, KV_SEG,
# KV_LOG.  NAME (default kvstored) names the log and the segment, FLAGS go
# to kvstored (say -e event), so that two can run side by side.
bench_start_kvstored() {
	local i mb=$1 name=${2:-kvstored} log

	shift
	shift 2>/dev/null || true
	log=$BENCH_TMP/$name.log
	bench_find_kvstored
	[[ -n ${KV_SEG-} ]] && BENCH_SEGS="${BENCH_SEGS-} $KV_SEG"
	KV_SEG=/kvbench-$$-$name
	# shellcheck disable=SC2034 # for the callers
	KV_LOG=$log
	"$KVSTORED" -R -s "$KV_SEG" >/dev/null 2>&1
	: >"$log"
	"$KVSTORED" -f -p 0 -M 0 -B bench -m "$mb" -c 4096 -u "$(id -un)" \
	    -s "$KV_SEG" "$@" >"$log" 2>&1 &
	KV_PID=$!
	BENCH_PIDS+=("$KV_PID")
	for ((i = 0; i < 600; i++)); do
		KV_PORT=$(sed -n 's/.*start: kvstored .* port \([0-9]*\) .*/\1/p' \
		    "$log")
		KV_MC_PORT=$(sed -n \
		    's/.*start: memcached protocol listen .* port \([0-9]*\).*/\1/p' \
		    "$log")
		[[ -n $KV_PORT && -n $KV_MC_PORT ]] && return 0
		kill -0 "$KV_PID" 2>/dev/null || break
		sleep 0.1
	done
	bench_die "kvstored did not start: $(tail -n 5 "$log")"
}

# bench_kv_stats USER SECRET [register]: kvstored's STAT lines, logged in
# natively (or registering USER first).
bench_kv_stats() {
	local line
	exec 9<>"/dev/tcp/127.0.0.1/$KV_PORT" || return 1
	printf '%s %s %s\r\nstats\r\nquit\r\n' "${3:-login}" "$1" "$2" >&9
	while IFS= read -r -t 30 line <&9; do
		line=${line%$'\r'}
		[[ $line == STAT\ * ]] && echo "$line"
		[[ $line == BYE || $line == END ]] && break
	done
	exec 9>&-
}

# bench_mc_stats PORT: a memcached-protocol server's STAT lines.
bench_mc_stats() {
	local line
	exec 9<>"/dev/tcp/127.0.0.1/$1" || return 1
	printf 'stats\r\n' >&9
	while IFS= read -r -t 30 line <&9; do
		line=${line%$'\r'}
		[[ $line == STAT\ * ]] && echo "$line"
		[[ $line == END || $line == ERROR ]] && break
	done
	exec 9>&-
}

# bench_rss PID: resident set size in bytes.
bench_rss() {
	awk '/^VmRSS:/ { print $2 * 1024 }' "/proc/$1/status"
}

# bench_run ARGS...: run kvbench quietly; prints its RESULT line (or a
# RESULT line with ops=0 when it produced none).  Never fails.
bench_run() {
	local out secs=${BENCH_SECS:-5} limit
	secs=${secs%.*}
	limit=$((${secs:-0} * 3 + 600))

	out=$(timeout "$limit" "$KVBENCH" -q "$@" 2>>"$BENCH_TMP/kvbench.err")
	out=$(grep '^RESULT ' <<<"$out" | tail -n 1)
	echo "${out:-RESULT ops=0 ops_s=0 p99_us=0 errors=-1 prefilled=0}"
}

# bench_field NAME RESULTLINE
bench_field() {
	local v
	v=$(sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2")
	echo "${v:-0}"
}
