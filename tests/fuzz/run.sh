#!/bin/sh
# run.sh DURATION [protocol|mcproto|store ...] - build the libFuzzer targets with
# clang (-fsanitize=fuzzer,address,undefined) and run each for DURATION
# seconds, starting from the seed corpus in tests/fuzz/corpus/.
#
# Exits 0 when every target ran its time without a crash, 1 on any crash,
# leak, sanitizer report or failed check (the reproducer is left in
# $FUZZ_OUT, whose path is printed), 2 when the targets cannot be built.
# Prints one line per target: its exec count, time and new corpus size.
#
# Environment: CC (default clang), FUZZ_OUT (work directory: binaries,
# logs, the grown corpus, crash artifacts; default a new temporary
# directory), FUZZ_FLAGS (more libFuzzer flags), KV_FUZZ_CRASH=1 (the store
# target also kills writers that hold a stripe; slower).
set -u

dur=${1:-60}
shift 2>/dev/null || true
targets=${*:-protocol mcproto store}
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
cc=${CC:-clang}
out=${FUZZ_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/kvfuzz.XXXXXX")}
flags="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -D_GNU_SOURCE"

case $dur in
''|*[!0-9]*) echo "usage: run.sh DURATION [protocol|mcproto|store ...]" >&2; exit 2 ;;
esac
mkdir -p "$out" || exit 2
# The sources include config.h only for PACKAGE_VERSION.
printf '#define PACKAGE_VERSION "fuzz"\n' >"$out/config.h"

build() {
	extra=
	case $1 in
	protocol) srcs="src/protocol.c src/buf.c src/log.c" ;;
	mcproto) srcs="src/mcparse.c" ;;
	store) srcs="src/store.c src/items.c src/alloc.c src/accounts.c
		    src/peers.c src/recover.c src/check.c src/stats.c src/conns.c
		    src/lock.c src/meta.c src/room.c src/expire.c src/evict.c
		    src/log.c src/buf.c"
		# The checker's walk runs for every input: without coverage
		# callbacks in it the target is ~10 times faster.
		extra="-fsanitize-coverage-ignorelist=$here/ignore-coverage.txt"
		;;
	*) echo "run.sh: no target '$1'" >&2; return 1 ;;
	esac
	# shellcheck disable=SC2086	# word lists on purpose
	(cd "$top" && $cc $flags $extra -I"$out" -Isrc -o "$out/fuzz_$1" \
	    "tests/fuzz/fuzz_$1.c" $srcs -lrt -lpthread)
}

status=0
for t in $targets; do
	if ! build "$t"; then
		echo "run.sh: cannot build fuzz_$t with $cc (Debian: apt-get" \
		    "install clang libclang-rt-14-dev)" >&2
		exit 2
	fi
	mkdir -p "$out/corpus-$t"
	# New inputs go to the first directory; the seeds stay untouched.
	# shellcheck disable=SC2086
	"$out/fuzz_$t" -max_total_time="$dur" -print_final_stats=1 \
	    -artifact_prefix="$out/$t-" -timeout=10 ${FUZZ_FLAGS:-} \
	    "$out/corpus-$t" "$here/corpus/$t" >"$out/$t.log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/$t.log")
	secs=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$out/$t.log")
	corpus=$(ls "$out/corpus-$t" | wc -l)
	if [ "$rc" -eq 0 ]; then
		echo "fuzz_$t: ok: ${execs:-?} execs in ${dur} s" \
		    "(${secs:-?}/s), $corpus new corpus inputs"
	else
		status=1
		echo "fuzz_$t: FAILED (exit $rc) after ${execs:-?} execs;" \
		    "log $out/$t.log"
		grep -E 'ERROR|SUMMARY|fuzz_(store|protocol|mcproto):|artifact' \
		    "$out/$t.log" | head -20
	fi
done
echo "fuzz: work directory $out"
exit $status
