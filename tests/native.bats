#!/usr/bin/env bats
# native.bats - kvstore(7)'s gets/cas, incr/decr, scan and users, and the
# client's verbs for them: exact replies, a 100k-key store listed in pieces,
# and what each role sees of keys and accounts, demotions included.
#
# (No loop variable is called "i": bats 1.8's run with flags clobbers it.)

bats_require_minimum_version 1.5.0
load helpers

: "${KVSTORECTL:=$(dirname "$KVSTORED")/kvstorectl}"

teardown() { kv_stop; }

ctl() {
	timeout 20 "$KVSTORECTL" -s "$KV_SHM" "$@"
}

# walk USER PATTERN: every piece of a raw scan, one connection, cursor after
# cursor; prints the keys (KEY lines without "KEY "); fails on anything but
# KEYS/KEY/END, or a piece whose count is wrong.  (A bash loop: for small
# stores only.)
walk() {
	local user=$1 pat=$2 cur=0 line n k pieces=0 secret

	kv_session "$user" || return 1
	secret=$(<"$(kv_secret "$user")")
	coproc W { timeout 60 nc -N 127.0.0.1 "$KV_PORT" 2>/dev/null; }
	printf 'login %s %s\n' "$user" "$secret" >&"${W[1]}"
	IFS= read -r -t 10 -u "${W[0]}" line || return 1
	[[ $line == "OK $user "* ]] || return 1
	while :; do
		printf 'scan %s %s\n' "$cur" "$pat" >&"${W[1]}"
		IFS= read -r -t 10 -u "${W[0]}" line || return 1
		line=${line%$'\r'}
		[[ $line =~ ^KEYS\ ([0-9]+)\ ([0-9]+)$ ]] || {
			echo "walk: bad header '$line'" >&2
			return 1
		}
		cur=${BASH_REMATCH[1]} n=${BASH_REMATCH[2]}
		for ((k = 0; k < n; k++)); do
			IFS= read -r -t 10 -u "${W[0]}" line || {
				echo "walk: no line $k of $n at cursor $cur after ${SECONDS}s" >&2
				return 1
			}
			line=${line%$'\r'}
			[[ $line == "KEY "* ]] || {
				echo "walk: bad line '$line'" >&2
				return 1
			}
			printf '%s\n' "${line#KEY }"
		done
		IFS= read -r -t 10 -u "${W[0]}" line || return 1
		[[ ${line%$'\r'} == END ]] || return 1
		pieces=$((pieces + 1))
		[[ $cur == 0 ]] && break
	done
	printf 'quit\n' >&"${W[1]}"
	IFS= read -r -t 10 -u "${W[0]}" line
	[[ ${line%$'\r'} == BYE ]] || return 1
	# nc ends at the end of its input
	eval "exec ${W[1]}>&-"
	wait "$W_PID" 2>/dev/null || true
}

@test "gets shows the cas; cas stores only while it still matches" {
	kv_start
	run -0 kv_raw_lines_as alice 'put k v1\r\ngets k\r\n'
	assert_line -n 0 OK
	[[ ${lines[1]} =~ ^VALUE\ 2\ ([0-9]+)$ ]]
	cas=${BASH_REMATCH[1]}
	assert_line -n 2 v1
	run -0 kv_raw_lines_as alice "cas k $cas v2\r\ncas k $cas v3\r\nget k\r\ncas nope 1 x\r\ncas k x y\r\ncas k 99999999999999999999 y\r\ngets nope\r\n"
	assert_output "OK
EXISTS
VALUE 2
v2
NOT_FOUND
ERR syntax bad number
ERR syntax bad number
NOT_FOUND"
	# the native cas and the memcached listener's are the same number
	run -0 kv_raw_lines_as alice 'cas k 1 {5}\r\nhello\r\nget k\r\n'
	assert_output "EXISTS
VALUE 2
v2"
}

@test "incr and decr: numbers, defaults, wrap, floor, refusals" {
	kv_start
	run -0 kv_raw_lines_as alice 'put n 5\r\nincr n\r\nincr n 10\r\ndecr n 3\r\ndecr n 100\r\nput big 18446744073709551615\r\nincr big\r\nput s abc\r\nincr s\r\nget s\r\nincr none\r\nincr n -1\r\nincr n 18446744073709551616\r\nincr\r\nincr a b c\r\n'
	assert_output "OK
NUMBER 6
NUMBER 16
NUMBER 13
NUMBER 0
OK
NUMBER 0
OK
ERR denied value is not a number
VALUE 3
abc
NOT_FOUND
ERR syntax bad number
ERR syntax bad number
ERR syntax wrong number of arguments for 'incr'
ERR syntax wrong number of arguments for 'incr'"
}

@test "client: incr, decr, gets, cas and their exit statuses" {
	kv_start
	run -0 kv -u alice put n 41 incr n decr n 2 incr n 10 get n
	assert_output $'42\n40\n50\n50'
	run -0 kv -u alice gets n
	[[ $output =~ ^([0-9]+)\ 50$ ]]
	cas=${BASH_REMATCH[1]}
	run -0 kv -u alice cas n "$cas" 7 get n
	assert_output 7
	run -1 kv -u alice cas n "$cas" 8
	assert_output "kvstore: 127.0.0.1:$KV_PORT: 'n' was changed since that cas was read"
	run -1 kv -u alice incr nope
	assert_output "kvstore: 127.0.0.1:$KV_PORT: no such key 'nope'"
	run -2 kv -u alice cas n x 8
	assert_line 'kvstore: a cas value is a decimal number'
	run -0 kv -u alice get n
	assert_output 7
}

@test "scan: exact replies, patterns, binary keys as tokens" {
	kv_start
	run -0 kv_raw_as alice 'put "a b" 1\r\nput "nl\\nx" 2\r\nput "z\\0" 3\r\nput user:1 4\r\nput user:22 5\r\nput "q\\"" 6\r\n'
	run -0 walk alice '*'
	run sort <<<"$output"
	assert_output '"a b"
"nl\nx"
"z\x00"
q"
user:1
user:22'
	run -0 walk alice 'user:?'
	assert_output user:1
	run -0 walk alice 'user:[!1]*'
	assert_output user:22
	run -0 walk alice '"a*"'
	assert_output '"a b"'
	# cursor past the end: an empty last piece; errors
	run -0 kv_raw_lines_as alice 'scan 99999\r\nscan x\r\nscan -1\r\nscan 4294967296\r\nscan\r\n'
	assert_output "KEYS 0 0
END
ERR syntax bad number
ERR syntax bad number
ERR syntax bad number
ERR syntax wrong number of arguments for 'scan'"
	long=$(printf 'x%.0s' {1..513})
	run -0 kv_raw_lines_as alice "scan 0 $long\r\n"
	assert_output 'ERR limit pattern longer than 512 bytes'
	# the client prints the keys' bytes, one per line
	run -0 kv -u alice keys 'user:*'
	run sort <<<"$output"
	assert_output $'user:1\nuser:22'
	run -0 kv -u alice keys 'a *'
	assert_output 'a b'
	run -0 kv -u alice keys 'none*'
	assert_output ''
}

@test "scan over 100000 keys, in pieces, lists every key once" {
	kv_start -m 64
	kv_session alice
	secret=$(<"$(kv_secret alice)")
	{
		printf 'login alice %s\n' "$secret"
		seq -f 'put k%06g v' 0 99999
		printf 'quit\n'
	} | timeout 60 nc -N 127.0.0.1 "$KV_PORT" | tr -d '\r' | sort | uniq -c >"$BATS_TEST_TMPDIR/load"
	run cat "$BATS_TEST_TMPDIR/load"
	assert_line --regexp '^ *100000 OK$'
	# one piece is a small part of the store
	run -0 kv_raw_lines_as alice 'scan 0\r\n'
	[[ ${lines[0]} =~ ^KEYS\ 16\ ([0-9]+)$ ]]
	(( BASH_REMATCH[1] > 0 && BASH_REMATCH[1] < 5000 ))
	# the raw walk, pipelined: 64 pieces of 16 stripes, each naming the
	# next one's cursor, 0 at the last; every key once
	{
		printf 'login alice %s\n' "$secret"
		seq -f 'scan %g' 0 16 1008
		printf 'quit\n'
	} | timeout 60 nc -N 127.0.0.1 "$KV_PORT" | tr -d '\r' | awk -v out="$BATS_TEST_TMPDIR/keys" '
		NR == 1 { next }
		/^KEYS / { if (left != 0) bad = "short piece"; left = $3
			want = pieces < 63 ? (pieces + 1) * 16 : 0
			if ($2 != want) bad = "cursor " $2 " not " want
			pieces++; next }
		/^KEY / { left--; print substr($0, 5) > out; next }
		/^END$/ { if (left != 0) bad = "count"; next }
		/^BYE$/ { next }
		{ bad = "line " $0 }
		END { print pieces, (bad == "" ? "ok" : bad) }' >"$BATS_TEST_TMPDIR/walk"
	run cat "$BATS_TEST_TMPDIR/walk"
	assert_output '64 ok'
	run -0 bash -c "sort '$BATS_TEST_TMPDIR/keys' | uniq -d | wc -l"
	assert_output 0
	run -0 bash -c "seq -f 'k%06g' 0 99999 | cmp - <(sort '$BATS_TEST_TMPDIR/keys')"
	# the client's walk
	run -0 bash -c "timeout 60 '$KVSTORE' -u alice 127.0.0.1 $KV_PORT keys '*' | sort | cmp - <(seq -f 'k%06g' 0 99999)"
	# the client's walk, with a pattern
	run -0 bash -c "timeout 60 '$KVSTORE' -u alice 127.0.0.1 $KV_PORT keys 'k01*' | sort | uniq | wc -l"
	assert_output 10000
}

@test "scan and users: guests see their own keys only; managers the store they use" {
	kv_start
	run -0 kv -u alice put a1 x put a2 y
	run -0 kv -u bob put b1 z
	run -0 kv -u mgr put m1 w
	ctl promote mgr
	run -0 kv -u alice keys '*'
	run sort <<<"$output"
	assert_output $'a1\na2'
	run -0 kv -u bob keys '*'
	assert_output b1
	# a guest cannot list accounts, nor walk another's store
	run -1 kv -u bob users
	assert_output "kvstore: 127.0.0.1:$KV_PORT: denied not a manager"
	run -1 kv -u bob use alice keys '*'
	assert_output "kvstore: 127.0.0.1:$KV_PORT: denied not a manager"
	run -0 kv_raw_lines_as bob 'users\r\nusers 0\r\n'
	assert_output 'ERR denied not a manager
ERR denied not a manager'
	# a manager: the accounts with role and key count; the used store's keys
	run -0 kv -u mgr users
	run sort <<<"$output"
	assert_output 'alice guest 2
bob guest 1
mgr manager 1'
	run -0 kv -u mgr keys '*'
	assert_output m1
	run -0 kv -u mgr use alice keys '*' use mgr keys '*'
	run sort <<<"$output"
	assert_output $'a1\na2\nm1'
	run -0 kv_raw_lines_as mgr 'users\r\nusers 1023\r\nusers 1024\r\n'
	assert_line -n 0 --regexp '^USERS 0 3$'
	assert_line -n 5 'USERS 0 0'
	assert_line -n 6 END
	assert_line -n 7 'USERS 0 0'
	# the listing and the crossing are audited, a walk once (at cursor 0)
	run -0 ctl log 256
	assert_line --regexp 'user=mgr role=manager action=users '
	assert_line --regexp 'user=bob role=guest action=users '
	run -0 grep -c 'user=mgr role=manager action=scan target=alice' <<<"$output"
	assert_output 1
}

@test "scan and users after a demotion: refused at the next piece" {
	kv_start
	run -0 kv -u alice put a1 x
	kv_session mgr
	ctl promote mgr
	secret=$(<"$(kv_secret mgr)")
	coproc M { timeout 30 nc 127.0.0.1 "$KV_PORT" 2>/dev/null; }
	printf 'login mgr %s\nuse alice\nscan 0 *\nusers\n' "$secret" >&"${M[1]}"
	# up to the END of the users reply (the scan's END comes first)
	out=() ends=0
	while ((ends < 2)) && IFS= read -r -t 10 -u "${M[0]}" line; do
		out+=("${line%$'\r'}")
		[[ ${line%$'\r'} == END ]] && ends=$((ends + 1))
	done
	[ "${out[0]}" = "OK mgr manager" ]
	[ "${out[1]}" = "OK alice" ]
	[[ ${out[2]} =~ ^KEYS\ 16\ [01]$ ]]
	run printf '%s\n' "${out[@]}"
	assert_line --regexp '^USERS 0 2$'
	assert_line 'USER alice guest 1'
	ctl demote mgr
	printf 'scan 16 *\nusers\nuse mgr\nscan 0 *\nwhoami\nquit\n' >&"${M[1]}"
	out=()
	while IFS= read -r -t 10 -u "${M[0]}" line; do
		out+=("${line%$'\r'}")
	done
	eval "exec ${M[1]}>&-"
	wait "$M_PID" 2>/dev/null || true
	run printf '%s\n' "${out[@]}"
	assert_line -n 0 'ERR denied not a manager'
	assert_line -n 1 'ERR denied not a manager'
	assert_line -n 2 'OK mgr'
	assert_line -n 3 --regexp '^KEYS 16 0$'
	assert_line -n 4 END
	assert_line -n 5 'USER mgr guest'
	assert_line -n 6 BYE
	assert_equal "${#out[@]}" 7
}
