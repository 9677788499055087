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
	assert_output --regexp "was created with -m 4 -I 1024 -a 1024, not -m 8 -I 1024 -a 1024"
	run -1 st 4 2048 </dev/null
	assert_output --regexp "was created with -m 4 -I 1024 -a 1024, not -m 4 -I 2048 -a 1024"
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

# ---- accounts: a table sized at creation, names found by the name index ----

# sta MiB ACCOUNTS: storetest on this test's segment with an account table
# of ACCOUNTS slots (-a), values up to 1024 bytes.
sta() {
	"$STORETEST" "$KV_SHM" "$1" 1024 "$2"
}

@test "accounts: a table of 5 holds 5, refuses the 6th, and a userdel makes room" {
	run -0 sta 4 5 <<-'EOF'
	users u 5
	user six
	count
	find u0
	find u4
	find six
	put 2 k v
	userdel 2
	count
	find u1
	user six
	find six
	count
	get 5 k
	check
	EOF
	assert_output "$(printf '%s\n' 'created 5 last 5' FULL 5 1 5 0 OK OK 4 0 \
	    2 2 5 NOT_FOUND clean)"
	# another table size is another geometry
	run -1 sta 4 6 </dev/null
	assert_output --partial "was created with -m 4 -I 1024 -a 5, not -m 4 -I 1024 -a 6"
	run -0 sta 4 5 <<<$'find six\nfind u4'
	assert_output $'2\n5'
}

@test "accounts: a name being deleted stays taken until its userdel is done" {
	run -0 sta 4 8 <<-'EOF'
	user alice
	user bob
	put 1 k v
	mark 1
	find alice
	finddel alice
	user alice
	count
	check
	userdel 1
	finddel alice
	user alice
	find alice
	count
	check
	EOF
	# marked: not found as active, found as being deleted, its name
	# taken, not counted; the userdel finishes it and frees the name
	assert_output "$(printf '%s\n' 1 2 OK OK 0 1 DELETING 1 clean \
	    OK 0 1 1 2 clean)"
}

@test "accounts: churn past the tombstone limit rebuilds the name index; every name is found" {
	local script=$BATS_TEST_TMPDIR/churn i r

	# 100 slots, 256 index entries: a rebuild after 33 tombstones
	{
		echo 'users a 100'
		for ((r = 0; r < 5; r++)); do
			for ((i = 1; i <= 60; i++)); do echo "userdel $i"; done
			for ((i = 0; i < 60; i++)); do echo "user r$r-$i"; done
		done
		echo names
		echo count
		echo 'find a99'
		echo 'find a0'
		echo 'find r4-59'
		echo 'find r3-0'
		echo check
	} >"$script"
	run -0 sta 4 100 <"$script"
	assert_line -n 0 'created 100 last 100'
	refute_output --partial FULL
	assert_line -n -7 --regexp '^rebuilt [1-9][0-9]* tombs [0-9]+$'
	assert_line -n -6 100
	assert_line -n -5 100
	assert_line -n -4 0
	assert_line -n -3 --regexp '^([1-9]|[1-5][0-9]|60)$'
	assert_line -n -2 0
	assert_line -n -1 clean
}

@test "checker: a name index entry lost, or naming an empty slot, is found" {
	run -0 sta 4 10 <<<$'user a\nuser b\ncheck\ncorrupt name 2\ncheck'
	assert_line -n 2 clean
	assert_line -n 4 'check: user 2 (b): not in the name index'
	assert_line -n 5 --partial '1 errors'
	kv_stop
	run -0 sta 4 10 <<<$'user a\ncorrupt stalename 7\ncheck'
	# The first empty entry: 0, unless the segment's hash key put a there
	assert_line -n 1 --regexp '^OK entry [01]$'
	assert_line -n 2 "check: name index: ${lines[1]#OK } names slot 7, which is not an account"
}

@test "accounts: 100000 in a table of 100000, each found by its name" {
	run -0 sta 64 100000 <<<'users u 100000'
	assert_output 'created 100000 last 100000'
	run -0 sta 64 100000 <<<$'user more\nfind u0\nfind u50000\nfind u99999\nfind v1\ncount\ncheck'
	assert_output "$(printf '%s\n' FULL 1 50001 100000 0 100000 clean)"
}

@test "accounts: a table too big for -m is refused, saying what fits" {
	run -1 sta 8 1000000 </dev/null
	assert_output --regexp 'too small for values of 1024 bytes \(-I\) and 1000000 accounts \(-a, [0-9]+ bytes each, in the segment\): give -m [0-9]+ or more$'
	[[ ! -e /dev/shm/${KV_SHM#/} ]]
	run -1 sta 8 4000001 </dev/null
	assert_output --partial 'a segment holds 1 to 4000000 accounts'
}

@test "accounts: a process killed inside a change of the accounts leaves the index as before it" {
	local script=$BATS_TEST_TMPDIR/churn i

	run -0 sta 4 8 <<<'users u 3'
	# a registration: the name indexed, the slot published, not committed
	run -9 sta 4 8 <<<$'crash create\nuser x'
	assert_output ''
	# the next holder of the users lock (the checker) undoes it
	run -0 sta 4 8 <<<$'check\nfind x\ncount\nuser y\nfind y\ncheck'
	assert_output --partial 'holder pid'
	assert_output --partial 'died, recovering'
	assert_line -n -6 clean
	assert_line -n -5 0
	assert_line -n -4 3
	assert_line -n -3 4
	assert_line -n -2 4
	assert_line -n -1 clean
	# a userdel's last step: the name's tombstone left, the slot freed
	run -9 sta 4 8 <<<$'put 1 k v\ncrash delete\nuserdel 1'
	assert_output 'OK'
	run -0 sta 4 8 <<<$'check'
	assert_output --partial 'user 1 (u0): left being deleted by an interrupted userdel, 0 items to go'
	run -0 sta 4 8 <<<$'finddel u0\nuser u0\nuserdel 1\nfinddel u0\nuser u0\ncheck'
	assert_line -n -6 1
	assert_line -n -5 DELETING
	assert_line -n -4 OK
	assert_line -n -3 0
	assert_line -n -2 1
	assert_line -n -1 clean
	# a rebuild cut short, the index emptied: the next lookup redoes it
	{
		echo 'crash rebuild'
		for ((i = 0; i < 10; i++)); do echo 'userdel 2'; echo "user z$i"; done
	} >"$script"
	run -9 sta 4 8 <"$script"
	run -0 sta 4 8 <<<$'names\nfind u2\nfind y\nnames\ncheck'
	assert_line -n 0 --regexp '^rebuilt 0 tombs [1-9][0-9]*$'
	assert_line -n -4 3
	assert_line -n -3 4
	assert_line -n -2 'rebuilt 1 tombs 0'
	assert_line -n -1 clean
}

# --- pages that return, compaction (alloc.c) -------------------------------

@test "alloc: a 64 MiB store filled with 1-byte values and emptied takes a 512 KiB value and one of every class, by another user" {
	run -0 st 64 1048576 <<-'EOF'
	user alice
	user bob
	fill 1 k 2000000 1
	classfill 2 c
	unfill 1 k 2000000 1
	stats
	check
	fill 2 big 1 524288
	classfill 2 c
	check
	EOF
	assert_line -n 2 --regexp '^stored [0-9]{7} FULL$'
	# Full: every class but the first one or two is refused.
	assert_line -n 3 --regexp '^classes [0-9]+ stored ([0-2]) FULL$'
	m=${lines[3]#classes * stored }
	n=${lines[2]#stored }
	assert_line -n 4 "deleted ${n% FULL}"
	stats_ok "${lines[5]}" "${m% FULL}"
	assert_line -n 6 clean
	assert_line -n 7 'stored 1 OK'
	assert_line -n 8 --regexp '^classes ([0-9]+) stored \1 OK$'
	assert_line -n 9 clean
}

@test "alloc: half of a store of 1-byte values deleted, a 512 KiB value compacts a page free; every item left is read back once" {
	run -0 st 64 1048576 <<-'EOF'
	user alice
	fill 1 k 2000000 1
	unfill 1 k 2000000 2
	put 1 a-key-of-41-bytes-for-a-class-with-no-page x
	moves
	fill 1 big 1 524288
	moves
	check
	EOF
	assert_line -n 1 --regexp '^stored [0-9]{7} FULL$'
	n=${lines[1]#stored }
	n=${n% FULL}
	assert_line -n 2 "deleted $(((n + 1) / 2))"
	assert_line -n 3 OK
	# The fill's last put was refused (counted once: nothing to compact
	# in a full store); the put of a class with no page compacted one.
	assert_line -n 4 --regexp '^items_moved ([1-9][0-9]*) pages_moved 1 no_memory 1$'
	moved=${lines[4]#items_moved }
	moved=${moved%% *}
	assert_line -n 5 'stored 1 OK'
	assert_line -n 6 --regexp '^items_moved ([1-9][0-9]*) pages_moved 2 no_memory 1$'
	now=${lines[6]#items_moved }
	((${now%% *} > moved))
	assert_line -n 7 clean
	run -0 st 64 1048576 <<-EOF
	probe 1 k $n 1
	check
	EOF
	assert_line -n 0 "present $((n / 2)) absent $(((n + 1) / 2)) bad 0"
	assert_line -n 1 clean
}

@test "alloc: mixed sizes, a random half deleted: writes of other sizes for half the free bytes all succeed" {
	local seed

	for seed in 1 2 3; do
		run -0 --separate-stderr st 64 65536 <<-EOF
		user alice
		mixed 1 $seed
		check
		EOF
		echo "# seed $seed: ${lines[1]}; $stderr" >&3
		assert_line -n 1 --regexp '^filled [0-9]+ deleted [0-9]+ wrote [0-9]+ refused 0$'
		assert_line -n 2 clean
		kv_stop
	done
}

@test "alloc: the checker finds a page whose count of chunks handed out is off, and a class list that lost a page" {
	run -0 st <<-'EOF'
	user alice
	put 1 a x
	put 1 b y
	corrupt pageused 1 a
	check
	EOF
	assert_line -n 3 OK
	assert_line -n 4 --regexp '^check: page [0-9]+: 3 chunks handed out and 0 free, 2 carved$'
	assert_line -n 5 --regexp '^check: class [0-9]+: counts 1/2 pages/chunks, found 1/3$'
	"$KVSTORED" -R -s "$KV_SHM" >/dev/null 2>&1
	run -0 st <<-'EOF'
	user alice
	put 1 a x
	corrupt unlist 1 a
	check
	EOF
	assert_line -n 2 OK
	assert_line -n 3 --regexp '^check: page [0-9]+: partly free, not on class [0-9]+.s list$'
	"$KVSTORED" -R -s "$KV_SHM" >/dev/null 2>&1
	run -0 st <<-'EOF'
	user alice
	put 1 a x
	del 1 a
	corrupt pool
	check
	EOF
	assert_line -n 3 OK
	assert_line -n 4 --regexp '^check: page [0-9]+: empty, not in the pool$'
}

@test "alloc: a writer that dies in the middle of a compaction's move leaves every item once; the next write compacts" {
	run -0 --separate-stderr st 8 16384 <<-'EOF'
	user alice
	fill 1 k 1000000 1
	unfill 1 k 1000000 2
	crashmove 1 big 10000
	check
	EOF
	assert_line -n 1 --regexp '^stored [0-9]+ FULL$'
	n=${lines[1]#stored }
	n=${n% FULL}
	assert_line -n 3 'died in a move'
	assert_line -n 4 clean
	[[ $stderr == *'holder pid '*' died, recovering'* ]]
	run -0 st 8 16384 <<-EOF
	probe 1 k $n 1
	get 1 big
	moves
	fill 1 big 1 10000
	moves
	check
	EOF
	assert_line -n 0 "present $((n / 2)) absent $(((n + 1) / 2)) bad 0"
	assert_line -n 1 NOT_FOUND
	# The dead one's copy was given back, its move not counted.
	assert_line -n 2 'items_moved 0 pages_moved 0 no_memory 1'
	assert_line -n 3 'stored 1 OK'
	assert_line -n 4 --regexp '^items_moved [1-9][0-9]* pages_moved 1 no_memory 1$'
	assert_line -n 5 clean
}

@test "alloc: churn at 80% and 90% full, sizes from 1 byte to 64 KiB on a log scale: no write refused" {
	local pct

	for pct in 80 90; do
		run -0 st 64 65536 <<-EOF
		user alice
		churn 1 5 200000 $pct
		check
		moves
		EOF
		echo "# $pct%: ${lines[1]}; ${lines[3]}" >&3
		assert_line -n 1 --regexp '^sets [0-9]+ refused 0 refused_at_4x_free 0 worst_ratio 0.0$'
		assert_line -n 2 clean
		kv_stop
	done
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

@test "locks: a word 4 GiB past another is rolled back exactly after a death" {
	: "${UNDOTEST:?UNDOTEST is not set (run the tests with make check)}"
	run -0 "$UNDOTEST"
	assert_output 'far 0xaaaa near 0x1111'
}
