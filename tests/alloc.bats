#!/usr/bin/env bats
# alloc.bats - memory that returns (issue 11), through a real kvstored: a
# store filled and emptied by one tenant takes any size from another, and a
# write that finds no room compacts, surviving a kill -9 in mid-move.
#
# KVSTORED_HOOKS (tests/kvstored-hooks, -DKV_TEST_HOOKS) is needed for the
# kill in mid-move; that test fails without it.

bats_require_minimum_version 1.5.0
load helpers

teardown() {
	kv_stop
}

# al_puts PREFIX FROM TO: native put lines for keys PREFIX<FROM> ..
# PREFIX<TO-1>, each with the 1-byte value x.
al_puts() {
	awk -v p="$1" -v a="$2" -v b="$3" \
	    'BEGIN { for (i = a; i < b; i++) printf "put %s%d x\r\n", p, i }'
}

# al_dels PREFIX FROM TO STEP: native del lines.
al_dels() {
	awk -v p="$1" -v a="$2" -v b="$3" -v s="$4" \
	    'BEGIN { for (i = a; i < b; i += s) printf "del %s%d\r\n", p, i }'
}

# al_value SIZE KEY: a native put of SIZE bytes of c as a literal.
al_value() {
	printf 'put %s {%d}\r\n' "$2" "$1"
	head -c "$1" /dev/zero | tr '\0' c
	printf '\r\n'
}

# al_as USER: send stdin to the daemon logged in as USER, print the
# replies without CRs (the login's reply first); 120 s at most.
al_as() {
	local secret

	kv_session "$1" || return 1
	secret=$(<"$(kv_secret "$1")")
	{
		printf 'login %s %s\r\n' "$1" "$secret"
		cat
		printf 'quit\r\n'
	} | timeout 120 nc -N 127.0.0.1 "$KV_PORT" | tr -d '\r'
}

# al_count FILE WORD: how many lines of FILE are exactly WORD.
al_count() {
	grep -cx -- "$2" "$1" || true
}

# al_sizes: sizes from 1 byte to 1 MiB less a key, each 1.2 times the
# last (so every size class of 1.25 is met).
al_sizes() {
	awk 'BEGIN { for (s = 1; s < 1048000; s = int(s * 1.2) + 1) print s;
	    print 1048000 }'
}

@test "alloc: a 64 MiB store filled with 1-byte values by one tenant and emptied takes a 512 KiB value and every size from another" {
	local out=$BATS_TEST_TMPDIR/out n s i=0 ok

	kv_start -m 64
	al_puts k 0 1400000 | al_as load >"$out"
	n=$(al_count "$out" OK)
	echo "# stored $n 1-byte values" >&3
	((n > 1000000))
	[ "$(al_count "$out" 'ERR full store is full')" -eq $((1400000 - n)) ]
	# Full: another tenant's larger values are refused.
	run -0 al_as other < <(al_value 1000 a)
	assert_line -n 1 'ERR full store is full'
	al_dels k 0 "$n" 1 | al_as load >"$out"
	[ "$(al_count "$out" OK)" -eq "$n" ]
	run -0 al_as other < <(al_value 524288 big; while read -r s; do
	    al_value "$s" "s$s"; done < <(al_sizes))
	ok=$(grep -cx OK <<<"$output")
	echo "# then: $ok of $(($(al_sizes | wc -l) + 1)) values of 1 B .. 1 MiB stored" >&3
	[ "$ok" -eq $(($(al_sizes | wc -l) + 1)) ]
	run -0 al_as other <<<$'get big\r'
	assert_line -n 1 'VALUE 524288'
	run "$KVSTORED" -C -s "$KV_SHM"
	assert_success
	assert_output --partial ' 0 errors'
}

@test "alloc: a compaction killed with -9 between copy and publish leaves every item once, checked clean, and the next write compacts" {
	[[ -n ${KVSTORED_HOOKS-} ]] || {
		echo "KVSTORED_HOOKS unset (tests/kvstored-hooks)" >&2
		return 1
	}
	local out=$BATS_TEST_TMPDIR/out n left mover fd line rest rc=0

	KVSTORED=$KVSTORED_HOOKS KVSTORE_TEST_MOVE_PAUSE_MS=3000 \
	    kv_start -m 8 -I 16384
	al_puts k 0 400000 | al_as load >"$out"
	n=$(al_count "$out" OK)
	((n > 50000))
	# Every other key deleted: no page is empty, no 10 KiB chunk free.
	al_dels k 0 "$n" 2 | al_as load >"$out"
	[ "$(al_count "$out" OK)" -eq $(((n + 1) / 2)) ]
	left=$((n / 2))
	kv_session other
	exec {fd}<>"/dev/tcp/127.0.0.1/$KV_PORT"
	printf 'login other %s\r\n' "$(<"$(kv_secret other)")" >&"$fd"
	IFS= read -r -t 5 -u "$fd" line
	[[ $line == "OK other "* ]]
	al_value 10000 big >&"$fd"
	kv_wait_log 'test: pid [0-9]+ moves an item' 10
	mover=$(grep -oE 'test: pid [0-9]+ moves' "$KV_LOG" | awk '{ print $3 }')
	kill -KILL "$mover"
	echo "# killed pid $mover in mid-move: $(grep 'moves an item' "$KV_LOG")" >&3
	# Its client gets no reply, only the close.
	IFS= read -r -t 5 -u "$fd" rest || rc=$?
	exec {fd}>&-
	[ "$rc" -eq 1 ] && [ -z "$rest" ]
	kv_wait_log "holder pid $mover died, recovering" 5
	run "$KVSTORED" -C -s "$KV_SHM"
	echo "$output"
	assert_success
	assert_output --regexp " $left items, [0-9]+ free chunks, [0-9]+ of [0-9]+ pages, 0 errors"
	# Every item left, once, with its value: the scan lists each key once,
	# and each reads back as x.
	awk -v n="$n" 'BEGIN { for (i = 1; i < n; i += 2) printf "get k%d\r\n", i }' |
	    al_as load >"$out"
	[ "$(al_count "$out" 'VALUE 1')" -eq "$left" ]
	[ "$(al_count "$out" x)" -eq "$left" ]
	kv -u load keys 'k*' >"$out"
	[ "$(grep -c '^k[0-9]*$' "$out")" -eq "$left" ]
	[ "$(sort -u "$out" | wc -l)" -eq "$left" ]
	# The page left half moved is compacted by the next write that needs it.
	run -0 al_as other < <(al_value 10000 big)
	assert_line -n 1 OK
	run "$KVSTORED" -C -s "$KV_SHM"
	assert_success
	assert_output --regexp " $((left + 1)) items, .* 0 errors"
}
