#!/usr/bin/env bats
# protocol.bats - kvstore(7) on the wire, through nc: framing, every error
# reply, resynchronisation after errors, pipelining, literals, stats, ttl.
#
# (No loop variable is called "i": bats 1.8's run with flags clobbers it.)

bats_require_minimum_version 1.5.0
load helpers

teardown() {
	kv_stop
}

# file NAME: a scratch file of this test.
file() {
	echo "$BATS_TEST_TMPDIR/$1"
}

# send_as USER FILE: log in as USER, send FILE's bytes on the same
# connection, print every reply after the login's.
send_as() {
	local user=$1 secret first

	kv_session "$user" || return 1
	secret=$(<"$(kv_secret "$user")")
	{
		printf 'login %s %s\n' "$user" "$secret"
		cat "$2"
	} | kv_nc | {
		IFS= read -r first || return 1
		[[ $first == "OK $user "* ]] || {
			echo "send_as: login as $user failed: $first" >&2
			return 1
		}
		cat
	}
}

# setup_good: a server where alice has k = good.
setup_good() {
	kv_start
	run -0 kv_raw_as alice 'put k good\r\n'
	assert_output $'OK\r'
}

# bad FORMAT ERROR: send the malformed request FORMAT (printf), then "get k"
# and "ping" on the same connection: the request gets exactly "ERR ERROR",
# and the connection goes on, with k unchanged.
bad() {
	run -0 kv_raw_as alice "$1"'get k\r\nping\r\n'
	assert_output "ERR $2"$'\r\nVALUE 4\r\ngood\r\nPONG\r'
}

# good_after: the store holds alice's k and nothing else.
good_after() {
	run -0 kv_raw_lines_as alice 'get k\r\nstats\r\n'
	assert_line -n 0 'VALUE 4'
	assert_line -n 1 'good'
	assert_line 'STAT items 1'
	assert_line 'STAT user_items 1'
}

@test "malformed: unknown commands" {
	setup_good
	bad 'frob k\r\n' 'syntax unknown command'
	bad 'GET k\r\n' 'syntax unknown command'
	bad 'Put k v\r\n' 'syntax unknown command'
	bad 'get\x80 k\r\n' 'syntax unknown command'
	bad 'set k 0 0 1\r\n' 'syntax unknown command'
	bad '"" k\r\n' 'syntax unknown command'
	good_after
}

@test "malformed: wrong number of arguments, each verb named" {
	setup_good
	bad 'get\r\n' "syntax wrong number of arguments for 'get'"
	bad 'get k k2\r\n' "syntax wrong number of arguments for 'get'"
	bad 'put k\r\n' "syntax wrong number of arguments for 'put'"
	bad 'put k x y\r\n' "syntax wrong number of arguments for 'put'"
	bad 'put k "a" "b"\r\n' "syntax wrong number of arguments for 'put'"
	bad 'put k a b c\r\n' "syntax wrong number of arguments for 'put'"
	bad 'put k a b c d\r\n' 'syntax too many arguments'
	bad 'put k a b c d e f g h\r\n' 'syntax too many arguments'
	bad 'del\r\n' "syntax wrong number of arguments for 'del'"
	bad 'del k x\r\n' "syntax wrong number of arguments for 'del'"
	bad 'expire k\r\n' "syntax wrong number of arguments for 'expire'"
	bad 'ttl\r\n' "syntax wrong number of arguments for 'ttl'"
	bad 'stats now\r\n' "syntax wrong number of arguments for 'stats'"
	bad 'ping pong\r\n' "syntax wrong number of arguments for 'ping'"
	bad 'whoami me\r\n' "syntax wrong number of arguments for 'whoami'"
	bad 'quit now\r\n' "syntax wrong number of arguments for 'quit'"
	bad 'login alice\r\n' "syntax wrong number of arguments for 'login'"
	good_after
}

@test "malformed: bad quoting" {
	setup_good
	bad 'put k "unterminated\r\n' 'syntax bad quoting'
	bad 'put k "a"b\r\n' 'syntax bad quoting'
	bad 'put k "a""b"\r\n' 'syntax bad quoting'
	bad 'put k "bad \\q escape"\r\n' 'syntax bad quoting'
	bad 'put k "\\x4"\r\n' 'syntax bad quoting'
	bad 'put k "\\xZZ"\r\n' 'syntax bad quoting'
	bad 'put k "ends in a backslash\\"\r\n' 'syntax bad quoting'
	bad 'put k "raw\ttab"\r\n' 'syntax bad quoting'
	bad 'put k "raw\x00nul"\r\n' 'syntax bad quoting'
	bad 'put k "raw\rcr"\r\n' 'syntax bad quoting'
	bad 'put "k v\r\n' 'syntax bad quoting'
	good_after
}

@test "malformed: control bytes in a bare token, NUL and bare CR included" {
	setup_good
	bad 'put k a\tb\r\n' 'syntax control byte in request'
	bad 'put k a\x00b\r\n' 'syntax control byte in request'
	bad 'put k \x00\r\n' 'syntax control byte in request'
	bad 'put k a\rb\r\n' 'syntax control byte in request'
	bad 'put k v\r\r\n' 'syntax control byte in request'
	bad 'put k \x1b[0m\r\n' 'syntax control byte in request'
	bad 'put k \x7f\r\n' 'syntax control byte in request'
	bad '\x00\r\n' 'syntax control byte in request'
	bad 'get\tk\r\n' 'syntax control byte in request'
	good_after
}

@test "malformed: bad literals" {
	setup_good
	bad 'put k {x}\r\n' 'syntax bad literal'
	bad 'put k {1}{2}\r\n' 'syntax bad literal'
	bad 'put k {-1}\r\n' 'syntax bad literal'
	bad 'put k {+1}\r\n' 'syntax bad literal'
	bad 'put k {}\r\n' 'syntax bad literal'
	bad 'put k {1\r\n' 'syntax bad literal'
	bad 'put k { 1}\r\n' 'syntax bad literal'
	bad 'put k {99999999999999999999}\r\n' 'syntax bad literal'
	bad 'put k {1234567890123456789}\r\n' 'syntax bad literal'
	bad 'put {1} v\r\n' 'syntax bad literal'
	bad 'put k {1} v\r\n' 'syntax bad literal'
	# Literal data not followed by a line end: the rest of that line goes.
	bad 'put k {5}\r\nhelloX\r\n' 'syntax bad literal'
	bad 'put k {5}\r\nhello world\r\n' 'syntax bad literal'
	good_after
}

@test "malformed: a malformed line ending in {N} has its N bytes skipped" {
	setup_good
	bad 'frob k {5}\r\nhello\r\n' 'syntax unknown command'
	bad 'get k k2 {12}\r\nput k bad\r\n\r\n' "syntax wrong number of arguments for 'get'"
	bad 'put k "bad {9}\r\nput k bad\r\n' 'syntax bad quoting'
	bad 'put k a\x01 {9}\r\nput k bad\r\n' 'syntax control byte in request'
	bad 'put k v w x y {9}\r\nput k bad\r\n' 'syntax too many arguments'
	good_after
}

@test "malformed: empty and over-long keys" {
	setup_good
	k250=$(printf 'k%.0s' {1..250})
	bad 'get ""\r\n' 'syntax empty key'
	bad 'put "" v\r\n' 'syntax empty key'
	bad 'del ""\r\n' 'syntax empty key'
	bad 'ttl ""\r\n' 'syntax empty key'
	bad 'expire "" 5\r\n' 'syntax empty key'
	bad 'get {0}\r\n\r\n' 'syntax empty key'
	bad "get ${k250}x\r\n" 'limit key longer than 250 bytes'
	bad "put ${k250}x v\r\n" 'limit key longer than 250 bytes'
	bad "get \"${k250}\\\\x00\"\r\n" 'limit key longer than 250 bytes'
	bad "get {251}\r\n${k250}x\r\n" 'limit key longer than 250 bytes'
	# 250 bytes is allowed.
	run -0 kv_raw_lines_as alice "put $k250 max\r\nget $k250\r\ndel $k250\r\n"
	assert_output $'OK\nVALUE 3\nmax\nOK'
	good_after
}

@test "malformed: expire with a bad number" {
	setup_good
	bad 'expire k abc\r\n' 'syntax bad number'
	bad 'expire k 1.5\r\n' 'syntax bad number'
	bad 'expire k ""\r\n' 'syntax bad number'
	bad 'expire k -\r\n' 'syntax bad number'
	bad 'expire k 10s\r\n' 'syntax bad number'
	bad 'expire k 99999999999\r\n' 'syntax bad number'
	run -0 kv_raw_lines_as alice 'ttl k\r\n'
	assert_output 'TTL -1'
	good_after
}

@test "malformed: login and register after login" {
	setup_good
	bad 'login alice whatever\r\n' 'denied already logged in'
	bad 'register mallory secret\r\n' 'denied already logged in'
	bad 'use bob\r\n' 'denied not a manager'
	good_after
}

@test "an over-long line: an error, the rest of the line dropped, the connection usable" {
	setup_good
	head -c 20000 /dev/zero | tr '\0' v >"$(file long)"
	{
		printf 'put k '
		cat "$(file long)"
		printf '\r\nget k\r\nping\r\n'
	} >"$(file req)"
	run -0 send_as alice "$(file req)"
	assert_output $'ERR limit request line longer than 16384 bytes\r\nVALUE 4\r\ngood\r\nPONG\r'
	# The limit is exact: 16384 bytes before the LF pass, 16385 do not.
	{
		printf 'put k '
		head -c $((16384 - 6 - 1)) "$(file long)"
		printf '\r\nget k\r\n'
	} >"$(file req)"
	send_as alice "$(file req)" >"$(file got)"
	{
		printf 'OK\r\nVALUE %d\r\n' $((16384 - 7))
		head -c $((16384 - 7)) "$(file long)"
		printf '\r\n'
	} >"$(file want)"
	cmp "$(file want)" "$(file got)"
	{
		printf 'put k '
		head -c $((16384 - 6)) "$(file long)"
		printf '\nget k\r\n'
	} >"$(file req)"
	send_as alice "$(file req)" >"$(file got)"
	{
		printf 'OK\r\nVALUE %d\r\n' $((16384 - 6))
		head -c $((16384 - 6)) "$(file long)"
		printf '\r\n'
	} >"$(file want)"
	cmp "$(file want)" "$(file got)"
	{
		printf 'put x '
		head -c $((16384 - 5)) "$(file long)"
		printf '\nget x\r\nget k\r\n'
	} >"$(file req)"
	send_as alice "$(file req)" >"$(file got)"
	{
		printf 'ERR limit request line longer than 16384 bytes\r\n'
		printf 'NOT_FOUND\r\nVALUE %d\r\n' $((16384 - 6))
		head -c $((16384 - 6)) "$(file long)"
		printf '\r\n'
	} >"$(file want)"
	cmp "$(file want)" "$(file got)"
}

@test "an over-limit literal: its data is skipped, the connection resynchronises" {
	setup_good
	{
		printf 'put k {2000000}\r\n'
		head -c 2000000 /dev/zero | tr '\0' 'p'
		printf '\r\nget k\r\nping\r\n'
	} >"$(file req)"
	run -0 send_as alice "$(file req)"
	assert_output $'ERR limit value longer than 1048576 bytes\r\nVALUE 4\r\ngood\r\nPONG\r'
	# Its data may hold anything, request lines included.
	{
		printf 'put k {1048577}\r\n'
		for ((n = 0; n < 1024; n++)); do
			printf 'put k bad%1013d\r\n' "$n"
		done
		printf '\r\nget k\r\n'
	} >"$(file req)"
	[ "$(head -1 "$(file req)" | wc -c)" -eq 17 ]
	[ "$(wc -c <"$(file req)")" -eq $((17 + 1048576 + 2 + 7)) ]
	run -0 send_as alice "$(file req)"
	assert_output $'ERR limit value longer than 1048576 bytes\r\nVALUE 4\r\ngood\r'
}

@test "a value over the server's -I limit, bare, quoted or literal" {
	kv_start -I 10
	run -0 kv_raw_as alice 'put k 0123456789\r\nput k 0123456789X\r\nput k "0123456789\\n"\r\nput k {11}\r\n0123456789X\r\nget k\r\n'
	assert_output $'OK\r\nERR limit value longer than 10 bytes\r\nERR limit value longer than 10 bytes\r\nERR limit value longer than 10 bytes\r\nVALUE 10\r\n0123456789\r'
}

@test "before login: store commands need a login; ping, whoami, quit work" {
	kv_start
	run -0 kv_raw 'get k\r\nput k v\r\ndel k\r\nstats\r\nttl k\r\nexpire k 5\r\nuse bob\r\nwhoami\r\nping\r\n'
	assert_output "$(printf 'ERR auth login required\r\n%.0s' {1..7})"$'\nUSER - none\r\nPONG\r'
	run -0 kv_raw 'frob\r\nping\r\nquit\r\nping\r\n'
	assert_output $'ERR syntax unknown command\r\nPONG\r\nBYE\r'
}

@test "before login: a line over 512 bytes is refused and the connection closed" {
	kv_start
	long=$(printf 'x%.0s' {1..600})
	run -0 kv_raw "ping\r\nlogin $long y\r\nping\r\n"
	assert_output $'PONG\r\nERR limit request line longer than 512 bytes before login\r'
}

@test "login: a wrong secret and an unknown user get the same reply" {
	kv_start
	kv_session alice
	run -0 kv_raw 'login alice 0000\r\nping\r\n'
	assert_output $'ERR auth login failed\r\nPONG\r'
	run -0 kv_raw 'login nobody-here 0000\r\nwhoami\r\n'
	assert_output $'ERR auth login failed\r\nUSER - none\r'
	run -0 kv_raw 'login bad/name 0000\r\nlogin alice ""\r\n'
	assert_output $'ERR syntax bad user name\r\nERR syntax bad secret\r'
	run -0 kv_raw 'register alice whatever\r\n'
	assert_output $'ERR auth name taken\r'
	run -0 kv_raw_lines_as alice 'whoami\r\nstats\r\n'
	assert_line -n 0 'USER alice guest'
	assert_line 'STAT auth_failures 2'
}

@test "whoami before and after login" {
	kv_start
	kv_session alice
	secret=$(<"$(kv_secret alice)")
	run -0 kv_raw "whoami\r\nlogin alice $secret\r\nwhoami\r\n"
	assert_output $'USER - none\r\nOK alice guest\r\nUSER alice guest\r'
}

@test "register over the wire, then log in with it" {
	kv_start
	run -0 kv_raw 'register dave s3cret-dave\r\nput k v\r\nget k\r\n'
	assert_output $'OK dave guest\r\nOK\r\nVALUE 1\r\nv\r'
	run -0 kv_raw 'login dave s3cret-dave\r\nget k\r\n'
	assert_output $'OK dave guest\r\nVALUE 1\r\nv\r'
}

@test "framing: LF or CRLF, extra spaces, empty lines" {
	kv_start
	run -0 kv_raw_as alice 'put a 1\nput b 2\r\n\r\n\n   \n  get   a  \r\nget b\n'
	assert_output $'OK\r\nOK\r\nVALUE 1\r\n1\r\nVALUE 1\r\n2\r'
}

@test "absent and empty are different" {
	kv_start
	run -0 kv_raw_as alice 'put e ""\r\nget e\r\nget nosuch\r\nput z {0}\r\n\r\nget z\r\n'
	assert_output $'OK\r\nVALUE 0\r\n\r\nNOT_FOUND\r\nOK\r\nVALUE 0\r\n\r'
	run -0 kv_raw_as alice 'del e\r\ndel e\r\nget e\r\nttl e\r\nexpire e 5\r\n'
	assert_output $'OK\r\nNOT_FOUND\r\nNOT_FOUND\r\nNOT_FOUND\r\nNOT_FOUND\r'
}

@test "quoting round trip: every escape" {
	kv_start
	kv_raw_as alice 'put q "a b\\t\\"c\\"\\\\\\n\\r\\x41\\xfF\\0z \\x00"\r\nget q\r\n' \
	    >"$(file got)"
	{
		printf 'OK\r\nVALUE 16\r\n'
		printf 'a b\t"c"\\\n\rA\xff\0z \0\r\n'
	} >"$(file want)"
	cmp "$(file want)" "$(file got)"
	# A quoted verb and key are still a verb and a key; UTF-8 passes bare.
	run -0 kv_raw_as alice '"get" "q"\r\nput কলকাতা ভারত\r\nget "কলকাতা"\r\n'
	assert_line -n 0 $'VALUE 16\r'
	assert_output --partial $'OK\r\nVALUE 12\r\nভারত\r'
}

@test "literals: {N} then N raw bytes, any bytes" {
	kv_start
	run -0 kv_raw_as alice 'put k {5}\r\nhello\r\nget k\r\n'
	assert_output $'OK\r\nVALUE 5\r\nhello\r'
	run -0 kv_raw_as alice 'put k {5}\nhello\nget {1}\nk\n'
	assert_output $'OK\r\nVALUE 5\r\nhello\r'
	kv_raw_as alice 'put k {12}\r\na\r\nb\0\nVALUE \r\nget k\r\n' >"$(file got)"
	printf 'OK\r\nVALUE 12\r\na\r\nb\0\nVALUE \r\n' >"$(file want)"
	cmp "$(file want)" "$(file got)"
	# A literal may arrive in pieces.
	{
		printf 'put k {10}\r\nhello'
		sleep 0.2
		printf 'world\r\nget k\r\n'
	} >"$(file req)"
	run -0 send_as alice "$(file req)"
	assert_output $'OK\r\nVALUE 10\r\nhelloworld\r'
}

@test "pipelining: 1000 requests in one stream, all answered in order" {
	kv_start
	seq 1 500 | awk '{ printf "put p%d value-%d\r\nget p%d\r\n", $1, $1, $1 }' \
	    >"$(file req)"
	seq 1 500 | awk '{ v = "value-" $1; printf "OK\r\nVALUE %d\r\n%s\r\n", length(v), v }' \
	    >"$(file want)"
	[ "$(wc -l <"$(file req)")" -eq 1000 ]
	send_as alice "$(file req)" >"$(file got)"
	cmp "$(file want)" "$(file got)"
	run -0 kv_raw_lines_as alice 'stats\r\n'
	assert_line 'STAT user_items 500'
}

@test "stats: every field" {
	kv_start
	run -0 kv_raw_lines_as alice 'stats\r\n'
	for f in pid version uptime time user user_items user_bytes items \
	    bytes_used bytes_free bytes_limit value_max curr_connections \
	    total_connections get_hits get_misses cmd_put cmd_del; do
		assert_line --regexp "^STAT $f [^ ]+\$"
	done
	assert_line 'STAT version 1.0.0'
	assert_line 'STAT user alice'
	assert_line 'STAT user_items 0'
	assert_line 'STAT items 0'
	assert_line 'STAT bytes_used 0'
	assert_line 'STAT value_max 1048576'
	for f in pid uptime time user_bytes bytes_free bytes_limit \
	    curr_connections total_connections get_hits get_misses cmd_put \
	    cmd_del; do
		assert_line --regexp "^STAT $f [0-9]+\$"
	done
	assert_line -n -1 'END'
	# Nothing but STAT lines before END.
	[ "$(grep -cv '^STAT [a-z_]* [^ ]*$' <<<"$output")" -eq 1 ]
	# The counters move.
	stats() {
		kv_raw_lines_as alice "$1stats\r\n" | sed -n 's/^STAT \([a-z_]*\) /\1=/p'
	}
	before=$(stats '' | grep -E '^(get_hits|get_misses|cmd_put|cmd_del|bytes_used)=')
	after=$(stats 'put a 1\r\nget a\r\nget a\r\nget nosuch\r\ndel a\r\n' |
	    grep -E '^(get_hits|get_misses|cmd_put|cmd_del|bytes_used)=')
	eval "$before"
	h0=$get_hits m0=$get_misses p0=$cmd_put d0=$cmd_del b0=$bytes_used
	eval "$after"
	[ "$get_hits" -eq $((h0 + 2)) ]
	[ "$get_misses" -eq $((m0 + 1)) ]
	[ "$cmd_put" -eq $((p0 + 1)) ]
	[ "$cmd_del" -eq $((d0 + 1)) ]
	[ "$bytes_used" -eq "$b0" ]
}

@test "stats: items and bytes count every user, user_ fields only the caller" {
	kv_start
	run -0 kv_raw_as alice 'put a 1\r\nput b 2\r\n'
	run -0 kv_raw_as bob 'put a 1\r\n'
	run -0 kv_raw_lines_as bob 'stats\r\n'
	assert_line 'STAT user bob'
	assert_line 'STAT user_items 1'
	assert_line 'STAT items 3'
	run -0 kv_raw_lines_as alice 'stats\r\n'
	assert_line 'STAT user_items 2'
	assert_line 'STAT items 3'
}

@test "ttl and expire" {
	kv_start
	run -0 kv_raw_as alice 'put t v\r\nttl t\r\nexpire t 100\r\nttl t\r\n'
	assert_line -n 0 $'OK\r'
	assert_line -n 1 $'TTL -1\r'
	assert_line -n 2 $'OK\r'
	assert_line -n 3 --regexp $'^TTL (99|100)\r$'
	# put clears the TTL.
	run -0 kv_raw_as alice 'put t w\r\nttl t\r\n'
	assert_output $'OK\r\nTTL -1\r'
	# seconds <= 0 deletes.
	run -0 kv_raw_as alice 'expire t 0\r\nget t\r\nput t v\r\nexpire t -5\r\nttl t\r\n'
	assert_output $'OK\r\nNOT_FOUND\r\nOK\r\nOK\r\nNOT_FOUND\r'
	run -0 kv_raw_as alice 'ttl nosuch\r\nexpire nosuch 5\r\n'
	assert_output $'NOT_FOUND\r\nNOT_FOUND\r'
	# An item with a TTL goes away by itself (deadline 5 s).
	run -0 kv_raw_as alice 'put t v\r\nexpire t 1\r\n'
	gone=
	for ((n = 0; n < 50; n++)); do
		if [ "$(kv_raw_lines_as alice 'get t\r\n')" = NOT_FOUND ]; then
			gone=1
			break
		fi
		sleep 0.1
	done
	[ -n "$gone" ]
	run -0 kv_raw_as alice 'ttl t\r\n'
	assert_output $'NOT_FOUND\r'
}

@test "expire's range: ten years at most, no wrap past 32 bits" {
	kv_start
	# 4000000000 s once wrapped to a time in the past (the key vanished),
	# 2498856555 to 0 (never expires): both are refused now, key unchanged.
	run -0 kv_raw_as alice 'put a v\r\nexpire a 4000000000\r\nttl a\r\nput b v\r\nexpire b 2498856555\r\nttl b\r\n'
	assert_output $'OK\r\nERR limit expire longer than 315360000 seconds\r\nTTL -1\r\nOK\r\nERR limit expire longer than 315360000 seconds\r\nTTL -1\r'
	run -0 kv_raw_as alice 'expire a 315360001\r\nexpire a 315360000\r\nttl a\r\nexpire a 9999999999\r\nexpire a 99999999999\r\n'
	assert_line -n 0 $'ERR limit expire longer than 315360000 seconds\r'
	assert_line -n 1 $'OK\r'
	assert_line -n 2 --regexp $'^TTL (315360000|3153599[0-9][0-9])\r$'
	assert_line -n 3 $'ERR limit expire longer than 315360000 seconds\r'
	assert_line -n 4 $'ERR syntax bad number\r'
	run -0 kv_raw_as alice 'get a\r\nget b\r\n'
	assert_output $'VALUE 1\r\nv\r\nVALUE 1\r\nv\r'
}

@test "quit: BYE, then the server closes the connection" {
	kv_start
	kv_session alice
	secret=$(<"$(kv_secret alice)")
	exec 5<>"/dev/tcp/127.0.0.1/$KV_PORT"
	printf 'login alice %s\r\nping\r\nquit\r\nping\r\n' "$secret" >&5
	# cat ends only when the server closes its end (deadline 5 s).
	run -0 timeout 5 cat <&5
	exec 5<&-
	assert_output $'OK alice guest\r\nPONG\r\nBYE\r'
}

@test "an HTTP request is closed at once, unanswered, and the server survives" {
	kv_start
	run -0 kv_raw 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n'
	assert_output ''
	run -0 kv_raw 'POST /put HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello'
	assert_output ''
	# A header line alone, before login, is refused the same way.
	run -0 kv_raw 'Host: 127.0.0.1\r\nping\r\n'
	assert_output ''
	[ "$(grep -c ': refused: 127.0.0.1 port [0-9]*: an HTTP request on a kvstore listener' "$KV_LOG")" -eq 3 ]
	# Lower-case verbs are requests: a key and a value may look like HTTP.
	run -0 kv_raw 'ping\r\nget / HTTP/1.1\r\n'
	assert_output $'PONG\r\nERR syntax wrong number of arguments for \'get\'\r'
	run -0 kv put /index HTTP/1.1 get /index
	assert_output 'HTTP/1.1'
}
