#!/usr/bin/env bats
# store.bats - unit tests of the shared-memory table (src/store.c and the
# files beside it: items.c, alloc.c, accounts.c, ...), driven
# through tests/storetest (see its header for the command language).
#
# A 4 MiB segment has 16384 buckets; with -I 1024 its pages are 64 KiB.

bats_require_minimum_version 1.5.0
load helpers

: "${STORETEST:?STORETEST is not set (run the tests with make check)}"

teardown() {
	kv_stop		# removes $KV_SHM
}

# st [MiB [value-max]]: run storetest on this test's segment, the script on
# stdin.  The segment outlives each run, as it outlives a daemon.
st() {
	"$STORETEST" "$KV_SHM" "${1:-4}" "${2:-1024}"
}

# stats_ok LINE ITEMS: LINE is storetest's stats line for ITEMS items, its
# byte counts consistent (used + free = limit, used a multiple of 8, and
# some bytes used when there are items).  Chunk sizes are store.c's
# business; these tests check that the counts add up, not what they are.
stats_ok() {
	local re='^items ([0-9]+) bytes_used ([0-9]+) bytes_free ([0-9]+) bytes_limit ([0-9]+)$'

	[[ $1 =~ $re ]] || {
		echo "not a stats line: $1" >&2
		return 1
	}
	[ "${BASH_REMATCH[1]}" -eq "$2" ] &&
	    [ $((BASH_REMATCH[2] + BASH_REMATCH[3])) -eq "${BASH_REMATCH[4]}" ] &&
	    [ $((BASH_REMATCH[2] % 8)) -eq 0 ] &&
	    { [ "$2" -eq 0 ] || [ "${BASH_REMATCH[2]}" -gt 0 ]; } || {
		echo "bad stats for $2 items: $1" >&2
		return 1
	}
}

@test "insert, get, replace, delete" {
	run -0 st <<-'EOF'
	user alice
	get 1 k
	put 1 k v1
	get 1 k
	put 1 k a-longer-second-value
	get 1 k
	put 1 k 3
	get 1 k
	del 1 k
	get 1 k
	del 1 k
	put 1 k again
	get 1 k
	stats
	check
	EOF
	stats_ok "${lines[13]}" 1
	lines[13]=STATS
	output=$(printf '%s\n' "${lines[@]}")
	assert_output - <<-'EOF'
	1
	NOT_FOUND
	OK
	VALUE 2 v1
	OK
	VALUE 21 a-longer-second-value
	OK
	VALUE 1 3
	OK
	NOT_FOUND
	NOT_FOUND
	OK
	VALUE 5 again
	STATS
	clean
	EOF
}

@test "binary keys and values: spaces, tabs, newlines, NUL, high bytes" {
	run -0 st <<-'EOF'
	user alice
	put 1 a\sb v\x00\xff\n\t\\
	put 1 a\x00b nul-in-key
	put 1 a nul-prefix
	put 1 \xe0\xa6\x95 bengali-ka
	check
	EOF
	assert_output $'1\nOK\nOK\nOK\nOK\nclean'
	printf 'VALUE 6 v\0\377\n\t\\\n' >"$BATS_TEST_TMPDIR/want"
	st >"$BATS_TEST_TMPDIR/got" <<<'get 1 a\sb'
	cmp "$BATS_TEST_TMPDIR/want" "$BATS_TEST_TMPDIR/got"
	run -0 st <<<$'get 1 a\\x00b\nget 1 a\nget 1 a\\x00\nget 1 b\nget 1 ক'
	assert_output $'VALUE 10 nul-in-key\nVALUE 10 nul-prefix\nNOT_FOUND\nNOT_FOUND\nVALUE 10 bengali-ka'
}

@test "limits: a 250-byte key and a value-max value fit; one byte more does not" {
	k250=$(printf 'k%.0s' {1..250})
	v1024=$(printf 'v%.0s' {1..1024})
	run -0 st <<-EOF
	user alice
	put 1 $k250 x
	put 1 ${k250}k x
	put 1 big $v1024
	put 1 big ${v1024}v
	get 1 $k250
	check
	EOF
	assert_output $'1\nOK\nERROR\nOK\nTOO_LARGE\nVALUE 1 x\nclean'
	# The refused write left the old value.
	run -0 st <<<'get 1 big'
	assert_output "VALUE 1024 $v1024"
}

@test "the same key under two users is two items" {
	run -0 st <<-'EOF'
	user alice
	user bob
	put 1 city Kolkata
	put 2 city Delhi
	get 1 city
	get 2 city
	del 2 city
	get 1 city
	get 2 city
	put 2 only-bob x
	get 1 only-bob
	flush 2
	get 1 city
	counts 1
	counts 2
	check
	EOF
	assert_line -n 13 --regexp '^keys 1 bytes [1-9][0-9]*$'
	output=$(sed '14s/bytes [0-9]*$/bytes SIZE/' <<<"$output")
	assert_output - <<-'EOF'
	1
	2
	OK
	OK
	VALUE 7 Kolkata
	VALUE 5 Delhi
	OK
	VALUE 7 Kolkata
	NOT_FOUND
	OK
	NOT_FOUND
	OK
	VALUE 7 Kolkata
	keys 1 bytes SIZE
	keys 0 bytes 0
	clean
	EOF
}

@test "users: names are unique, counters per user" {
	run -0 st <<-'EOF'
	user alice
	user bob
	user alice
	counts 1
	counts 3
	put 1 a 1
	counts 1
	put 1 b 2
	put 2 a 1
	put 1 a 1
	counts 1
	counts 2
	del 1 a
	counts 1
	stats
	EOF
	assert_line -n 0 1
	assert_line -n 1 2
	assert_line -n 2 EXISTS
	assert_line -n 3 'keys 0 bytes 0'
	assert_line -n 4 NO_USER
	assert_line -n 5 OK
	one=$(sed -n 's/^keys 1 bytes //p' <<<"${lines[6]}")
	[ "$one" -gt 0 ]
	assert_line -n 7 OK
	assert_line -n 8 OK
	assert_line -n 9 OK
	# Same-sized items: two of them are twice one.
	assert_line -n 10 "keys 2 bytes $((2 * one))"
	assert_line -n 11 "keys 1 bytes $one"
	assert_line -n 12 OK
	assert_line -n 13 "keys 1 bytes $one"
	stats_ok "${lines[14]}" 2
	assert_line -n 14 --regexp "^items 2 bytes_used $((2 * one)) "
}

@test "add, replace, append, prepend" {
	run -0 st <<-'EOF'
	user alice
	add 1 a 1
	add 1 a 2
	get 1 a
	replace 1 b x
	get 1 b
	replace 1 a 3
	get 1 a
	append 1 a 45
	prepend 1 a 12
	get 1 a
	append 1 nosuch x
	prepend 1 nosuch x
	get 1 nosuch
	counts 1
	check
	EOF
	output=$(sed 's/^keys 1 bytes [1-9][0-9]*$/keys 1 bytes SIZE/' <<<"$output")
	assert_output - <<-'EOF'
	1
	OK
	NOT_STORED
	VALUE 1 1
	NOT_STORED
	NOT_FOUND
	OK
	VALUE 1 3
	OK
	OK
	VALUE 5 12345
	NOT_STORED
	NOT_STORED
	NOT_FOUND
	keys 1 bytes SIZE
	clean
	EOF
}

@test "incr and decr" {
	run -0 st <<-'EOF'
	user alice
	incr 1 n 1
	put 1 n 10
	incr 1 n 5
	decr 1 n 3
	decr 1 n 100
	incr 1 n 18446744073709551615
	get 1 n
	incr 1 n 1
	get 1 n
	put 1 s abc
	incr 1 s 1
	decr 1 s 1
	get 1 s
	put 1 m 99
	incr 1 m 1
	get 1 m
	decr 1 m 91
	get 1 m
	check
	EOF
	assert_output - <<-'EOF'
	1
	NOT_FOUND
	OK
	15
	12
	0
	18446744073709551615
	VALUE 20 18446744073709551615
	0
	VALUE 1 0
	OK
	NOT_NUMBER
	NOT_NUMBER
	VALUE 3 abc
	OK
	100
	VALUE 3 100
	9
	VALUE 1 9
	clean
	EOF
}

@test "collisions: 50,000 keys in 16384 buckets, all read back, half deleted" {
	script=$BATS_TEST_TMPDIR/script
	out=$BATS_TEST_TMPDIR/out
	want=$BATS_TEST_TMPDIR/want
	# Empty values keep every item in the smallest chunk class, so that
	# 50,000 of them fit in 4 MiB: three per bucket on average.
	{
		echo 'user alice'
		echo 'fill 1 k 50000 0'
		echo stats
		echo check
		seq 0 49999 | sed 's/^/get 1 k/'
		echo 'get 1 k50000'
	} >"$script"
	st <"$script" >"$out"
	run -0 sed -n 1,4p "$out"
	assert_line -n 0 1
	assert_line -n 1 'stored 50000 OK'
	stats_ok "${lines[2]}" 50000
	assert_line -n 3 clean
	[ "$(sed -n '5,50004p' "$out" | grep -cx 'VALUE 0 ')" -eq 50000 ]
	[ "$(sed -n '50005,$p' "$out")" = NOT_FOUND ]
	# Delete the odd ones, from the middle of every chain; give the even
	# ones a value of their own (one byte: the same chunk class).
	{
		seq 1 2 49999 | sed 's/^/del 1 k/'
		seq 0 2 49998 | awk '{ printf "put 1 k%d %d\n", $1, $1 % 10 }'
		seq 0 49999 | sed 's/^/get 1 k/'
		echo stats
		echo 'counts 1'
		echo check
	} >"$script"
	st <"$script" >"$out"
	{
		yes OK | head -n 50000
		seq 0 49999 | awk '{ if ($1 % 2) print "NOT_FOUND";
		    else printf "VALUE 1 %d\n", $1 % 10 }'
	} >"$want"
	head -n 100000 "$out" | cmp "$want" -
	run -0 tail -n 3 "$out"
	stats_ok "${lines[0]}" 25000
	assert_line -n 1 --regexp '^keys 25000 bytes [0-9]+$'
	assert_line -n 2 clean
}

@test "free-space accounting: put then del gives back every byte" {
	run -0 st <<<$'user alice\nuser bob\nput 2 other thing\nstats'
	before=${lines[3]}
	big=$(printf 'x%.0s' {1..500})
	run -0 st <<-EOF
	put 1 a 1
	put 1 b $big
	put 1 c 123456789012345678901234567890
	put 1 a $big
	put 1 a 1
	append 1 c $big
	del 1 a
	del 1 b
	del 1 c
	stats
	counts 1
	check
	EOF
	assert_output - <<-EOF
	OK
	OK
	OK
	OK
	OK
	OK
	OK
	OK
	OK
	$before
	keys 0 bytes 0
	clean
	EOF
}

@test "free-space accounting: user bytes add up to bytes_used" {
	run -0 st <<-'EOF'
	user alice
	user bob
	fill 1 a 100 10
	fill 2 b 30 500
	fill 1 c 7 1000
	counts 1
	counts 2
	stats
	check
	EOF
	assert_line -n 2 'stored 100 OK'
	assert_line -n 3 'stored 30 OK'
	assert_line -n 4 'stored 7 OK'
	a=$(sed -n 's/^keys 107 bytes //p' <<<"${lines[5]}")
	b=$(sed -n 's/^keys 30 bytes //p' <<<"${lines[6]}")
	[ -n "$a" ]
	[ -n "$b" ]
	assert_line -n 7 --regexp "^items 137 bytes_used $((a + b)) "
	assert_line -n 8 clean
}

@test "a full store refuses writes, keeps its data, and recovers after flush" {
	run -0 st <<-'EOF'
	user alice
	user bob
	put 2 keep me
	stats
	fill 1 f 1000000 100
	put 1 one-more 0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789
	get 2 keep
	check
	EOF
	empty=${lines[3]}
	stats_ok "$empty" 1
	assert_line -n 4 --regexp '^stored [0-9]+ FULL$'
	first=${lines[4]}
	assert_line -n 5 FULL
	assert_line -n 6 'VALUE 2 me'
	assert_line -n 7 clean
	run -0 st <<-'EOF'
	stats
	flush 1
	counts 1
	counts 2
	get 2 keep
	check
	fill 1 f 1000000 100
	flush 1
	check
	stats
	EOF
	n=${first#stored }
	stats_ok "${lines[0]}" $((${n% FULL} + 1))
	assert_line -n 1 OK
	assert_line -n 2 'keys 0 bytes 0'
	assert_line -n 3 --regexp '^keys 1 bytes [1-9][0-9]*$'
	assert_line -n 4 'VALUE 2 me'
	assert_line -n 5 clean
	# After a flush the same fill stores exactly as many: nothing leaked.
	assert_line -n 6 "$first"
	assert_line -n 7 OK
	assert_line -n 8 clean
	assert_line -n 9 "$empty"
}

@test "the table outlives the process; another geometry is refused" {
	run -0 st <<<$'user alice\nput 1 k v'
	run -0 st <<<$'get 1 k\nuser alice\ncounts 1\ncheck'
	assert_output --regexp $'^VALUE 1 v\nEXISTS\nkeys 1 bytes [1-9][0-9]*\nclean$'
	run -1 st 8 1024 </dev/null
	assert_output --regexp "was created with -m 4 -I 1024, not -m 8 -I 1024"
	run -1 st 4 2048 </dev/null
	assert_output --regexp "was created with -m 4 -I 1024, not -m 4 -I 2048"
	run -0 st <<<'get 1 k'
	assert_output 'VALUE 1 v'
}

@test "a bigger segment: 1 MiB values, many classes" {
	run -0 st 16 1048576 <<-'EOF'
	user alice
	fill 1 a 3 1048576
	fill 1 b 50 100000
	fill 1 c 500 1000
	fill 1 d 5000 10
	counts 1
	check
	del 1 a0
	del 1 b0
	del 1 c0
	del 1 d0
	counts 1
	check
	EOF
	assert_line -n 1 'stored 3 OK'
	assert_line -n 2 'stored 50 OK'
	assert_line -n 3 'stored 500 OK'
	assert_line -n 4 'stored 5000 OK'
	assert_line -n 5 --regexp '^keys 5553 bytes [0-9]+$'
	assert_line -n 6 clean
	assert_line -n 11 --regexp '^keys 5549 bytes [0-9]+$'
	assert_line -n 12 clean
}

@test "throttle counts: names hashed into a name's probe run cannot evict its recent failures" {
	local script=$BATS_TEST_TMPDIR/evict names
	# 24 names whose entries start where alice's does: more than a probe
	# run holds.
	names=$(st <<<'collide alice 24')
	[ "$(wc -l <<<"$names")" -eq 24 ]
	{
		for i in 1 2 3 4 5; do echo "namefail alice"; done
		while read -r n; do echo "namefail $n"; done <<<"$names"
		echo "namefails alice"
		# a name whose run is full of live counts is the most throttled
		echo "namefails $(tail -1 <<<"$names")"
	} >"$script"
	run -0 st <"$script"
	# five failures stay five: no entry of a recent failure is taken over
	assert_line --index 29 5
	assert_line --index 30 8
}

# ---- the keyed chain hash (items.c's hash_key(), src/siphash.h) ------------

@test "siphash: SipHash-2-4 gives the reference vectors; the store's rounds hash a key and a user id as their bytes" {
	run -0 st <<<'siphash'
	assert_output 'siphash ok'
}

@test "hash key: each segment draws its own, the same keys land in other buckets, and a segment opened again keeps its key" {
	local seg2=$KV_SHM-2 a a2 b keys ba ba2 bb same=0 i
	KV_SEGMENTS+=("$seg2")

	a=$(st <<<'keyid')
	a2=$(st <<<'keyid')
	b=$("$STORETEST" "$seg2" 4 1024 <<<'keyid')
	[[ $a =~ ^[0-9a-f]{16}$ && $b =~ ^[0-9a-f]{16}$ ]]
	[ "$a" = "$a2" ]
	[ "$a" != "$b" ]
	keys=$(for ((i = 0; i < 64; i++)); do echo "bucket 1 key$i"; done)
	ba=$(st <<<"$keys")
	ba2=$(st <<<"$keys")
	bb=$("$STORETEST" "$seg2" 4 1024 <<<"$keys")
	[ "$(wc -l <<<"$ba")" -eq 64 ]
	[ "$(wc -l <<<"$bb")" -eq 64 ]
	[ "$ba" = "$ba2" ]
	# 16384 buckets: a key in the same bucket of both is a 1 in 16384
	# chance; more than 4 of 64 would be the key not mattering.
	same=$(paste -d ' ' <(echo "$ba") <(echo "$bb") |
	    awk '$1 == $3 { n++ } END { print n + 0 }')
	[ "$same" -le 4 ]
	# and the placement is the checker's too: items put through one
	# opening are found, and checked clean, through the next
	run -0 st <<<$'user u\nput 1 k1 v1\nput 1 k2 v2'
	run -0 st <<<$'get 1 k1\nget 1 k2\ncheck'
	assert_output $'VALUE 2 v1\nVALUE 2 v2\nclean'
}
