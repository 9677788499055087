#!/usr/bin/env bats
# client.bats - kvstore(1) end to end: a real kvstored on a loopback port and
# the real client, its output compared byte for byte.

bats_require_minimum_version 1.5.0
load helpers

teardown() {
	if [[ -n ${fake_pid-} ]]; then
		kill "$fake_pid" 2>/dev/null || true
		wait "$fake_pid" 2>/dev/null || true
	fi
	kv_stop
}

# fake_server PORT FILE [nc flags]: a one-connection server on 127.0.0.1
# PORT that sends FILE's bytes; waits (5 s) until it listens.
fake_server() {
	local port=$1 file=$2 n
	shift 2

	nc "$@" -l 127.0.0.1 "$port" <"$file" >/dev/null &
	fake_pid=$!
	for ((n = 0; n < 100; n++)); do
		[ -n "$(ss -tlnH "( sport = :$port )")" ] && return 0
		sleep 0.05
	done
	echo "fake_server: nothing listens on port $port" >&2
	return 1
}

# free_port: a loopback port nothing listens on (a stopped kvstored's).
free_port() {
	kv_start
	port=$KV_PORT
	kv_stop
}

# out FILE: where a test keeps its byte-exact outputs.
out() {
	echo "$BATS_TEST_TMPDIR/$1"
}

# roundtrip VALUE...: put each VALUE under its own key, then get them all
# back, in one client run; compare the bytes exactly (the client prints each
# value and one newline).
roundtrip() {
	local -a args=()
	local n

	for ((n = 1; n <= $#; n++)); do
		args+=(put "k$n" "${!n}")
	done
	for ((n = 1; n <= $#; n++)); do
		args+=(get "k$n")
	done
	roundtrip_run "$@"
}

# roundtrip_keys KEY...: the same with the KEYs as keys and v1, v2... as
# their values.
roundtrip_keys() {
	local -a args=() vals=()
	local n

	for ((n = 1; n <= $#; n++)); do
		args+=(put "${!n}" "v$n")
		vals+=("v$n")
	done
	for ((n = 1; n <= $#; n++)); do
		args+=(get "${!n}")
	done
	roundtrip_run "${vals[@]}"
}

roundtrip_run() {
	kv "${args[@]}" >"$(out got)" || {
		echo "kvstore failed ($?)" >&2
		return 1
	}
	printf '%s\n' "$@" >"$(out want)"
	if ! cmp "$(out want)" "$(out got)"; then
		diff <(od -c "$(out want)") <(od -c "$(out got)") | head -20 >&2
		return 1
	fi
}

# kv_stat_field NAME: one field of the server's stats, as user "watcher".
kv_stat_field() {
	kv_raw_lines_as watcher 'stats\n' | sed -n "s/^STAT $1 //p"
}

@test "the assignment example, byte for byte" {
	kv_start
	kv put city Kolkata put country India get country get city \
	    get Institute >"$(out got)"
	printf 'India\nKolkata\n\n' >"$(out want)"
	cmp "$(out want)" "$(out got)"
}

@test "the assignment example, run twice: the data is still there" {
	kv_start
	run -0 kv put city Kolkata put country India
	assert_output ''
	kv get country get city get Institute >"$(out got)"
	printf 'India\nKolkata\n\n' >"$(out want)"
	cmp "$(out want)" "$(out got)"
}

@test "del removes a key; del of an absent key is not an error" {
	kv_start
	kv put a 1 put b 2 del a del nosuch get a get b >"$(out got)"
	printf '\n2\n' >"$(out want)"
	cmp "$(out want)" "$(out got)"
}

@test "put replaces the value" {
	kv_start
	kv put k first put k second get k >"$(out got)"
	printf 'second\n' >"$(out want)"
	cmp "$(out want)" "$(out got)"
}

@test "usage errors: exit 2, usage on stderr, nothing sent" {
	kv_start
	kv_session watcher
	before=$(kv_stat_field total_connections)
	# A good command before the bad one must not run either.
	run -2 --separate-stderr kv put k v frob x
	assert_output ''
	[[ $stderr == *"unknown command 'frob'"* ]]
	[[ $stderr == *"usage: kvstore"* ]]
	run -2 --separate-stderr kv put k v put onlykey
	assert_output ''
	[[ $stderr == *"usage: kvstore"* ]]
	run -2 --separate-stderr kv put k v get
	[[ $stderr == *"usage: kvstore"* ]]
	run -2 --separate-stderr kv put k v del
	[[ $stderr == *"usage: kvstore"* ]]
	run -2 --separate-stderr kv PUT k v
	[[ $stderr == *"usage: kvstore"* ]]
	run -2 --separate-stderr kv put "" v
	[[ $stderr == *"usage: kvstore"* ]]
	run -2 --separate-stderr kv get "$(printf 'k%.0s' {1..251})"
	[[ $stderr == *"usage: kvstore"* ]]
	for port in notaport 0 65536 -1 12x ""; do
		run -2 --separate-stderr "$KVSTORE" 127.0.0.1 "$port" put k v
		assert_output ''
		[[ $stderr == *"usage: kvstore"* ]]
	done
	run -2 --separate-stderr "$KVSTORE"
	[[ $stderr == *"usage: kvstore"* ]]
	run -2 --separate-stderr "$KVSTORE" 127.0.0.1
	[[ $stderr == *"usage: kvstore"* ]]
	run -2 --separate-stderr "$KVSTORE" -x 127.0.0.1 "$KV_PORT" get k
	[[ $stderr == *"usage: kvstore"* ]]
	run -2 --separate-stderr "$KVSTORE" -t 0 127.0.0.1 "$KV_PORT" get k
	[[ $stderr == *"usage: kvstore"* ]]
	# Not one connection was made (only the stats request below counts),
	# and k was never stored.
	after=$(kv_stat_field total_connections)
	[ "$after" -eq $((before + 1)) ]
	run -0 kv_raw_lines_as watcher 'get k\n'
	assert_output 'NOT_FOUND'
	run -0 kv get k
	assert_output ''
}

@test "connection refused: exit 3 and one line naming host:port" {
	kv_start
	port=$KV_PORT
	kv_stop
	run -3 --separate-stderr "$KVSTORE" 127.0.0.1 "$port" put k v get k
	assert_output ''
	[ "$stderr" = "kvstore: 127.0.0.1:$port: Connection refused" ]
}

@test "unknown host: exit 3" {
	run -3 --separate-stderr "$KVSTORE" no-such-host.invalid 5555 get k
	assert_output ''
	[[ $stderr == "kvstore: no-such-host.invalid:5555: "* ]]
	[ "$(wc -l <<<"$stderr")" -eq 1 ]
}

@test "connection closed by the server: exit 4" {
	free_port
	: >"$(out empty)"
	fake_server "$port" "$(out empty)" -N
	run -4 --separate-stderr "$KVSTORE" 127.0.0.1 "$port" get k
	assert_output ''
	[ "$stderr" = "kvstore: 127.0.0.1:$port: connection closed by server" ]
}

@test "a reply the client cannot read: exit 4" {
	free_port
	printf 'OK %s guest\r\nVALUE x\r\n' "$(id -un)" >"$(out reply)"
	fake_server "$port" "$(out reply)"
	run -4 --separate-stderr "$KVSTORE" 127.0.0.1 "$port" get k
	assert_output ''
	[ "$stderr" = "kvstore: 127.0.0.1:$port: unreadable reply from server" ]
}

@test "no reply within -t seconds: exit 4" {
	free_port
	: >"$(out empty)"
	fake_server "$port" "$(out empty)"
	run -4 --separate-stderr "$KVSTORE" -t 1 127.0.0.1 "$port" get k
	assert_output ''
	[ "$stderr" = "kvstore: 127.0.0.1:$port: no reply within 1 seconds" ]
}

@test "an error reply: exit 1, the message on stderr, earlier output printed" {
	kv_start -m 4 -I 65536
	v=$(head -c 60000 /dev/zero | tr '\0' x)
	kv put first hello
	# Fill the store, ten 60000-byte values per client, until a put fails.
	full=
	# (not "i": bats 1.8's run with flags clobbers a global i)
	for ((round = 0; round < 30; round++)); do
		args=()
		for ((j = 0; j < 10; j++)); do
			args+=(put "big-$round-$j" "$v")
		done
		run --separate-stderr kv "${args[@]}"
		if [ "$status" -eq 1 ]; then
			full=$round
			break
		fi
		[ "$status" -eq 0 ]
	done
	[ -n "$full" ]
	[ "$stderr" = "kvstore: 127.0.0.1:$KV_PORT: full store is full" ]
	# The commands before the refused one ran and printed; none after it.
	run -1 --separate-stderr kv get first put one-more "$v" get first
	assert_output 'hello'
	[ "$stderr" = "kvstore: 127.0.0.1:$KV_PORT: full store is full" ]
	kv get first get big-0-0 >"$(out got)"
	printf 'hello\n%s\n' "$v" >"$(out want)"
	cmp "$(out want)" "$(out got)"
	# A small value still fits in a class that has room, or it is refused
	# the same way: either way the earlier data is intact.
	run kv put small x
	[[ $status -eq 0 || $status -eq 1 ]]
	run -0 kv get first
	assert_output 'hello'
}

@test "a value over the server's -I limit: exit 1, the limit named" {
	kv_start -I 1000
	ok=$(head -c 1000 /dev/zero | tr '\0' a)
	run -0 kv put k "$ok"
	run -1 --separate-stderr kv put k "${ok}b" get k
	assert_output ''
	[ "$stderr" = "kvstore: 127.0.0.1:$KV_PORT: limit value longer than 1000 bytes" ]
	roundtrip "$ok"
}

@test "two users, same key, separate values; neither sees the other's" {
	kv_start
	run -0 kv -u alice put city Kolkata put mine alice-only
	run -0 kv -u bob put city Delhi
	kv -u alice get city get mine >"$(out got)"
	printf 'Kolkata\nalice-only\n' >"$(out want)"
	cmp "$(out want)" "$(out got)"
	kv -u bob get city get mine >"$(out got)"
	printf 'Delhi\n\n' >"$(out want)"
	cmp "$(out want)" "$(out got)"
	# bob deleting "city" deletes his own only.
	run -0 kv -u bob del city del mine get city
	assert_output ''
	run -0 kv -u alice get city
	assert_output 'Kolkata'
	# Each user has a secret file of 64 hex digits, mode 0600.
	for u in alice bob; do
		f=$(kv_secret "$u")
		[ "$(stat -c %a "$f")" = 600 ]
		[[ $(<"$f") =~ ^[0-9a-f]{64}$ ]]
	done
	[ "$(stat -c %a "$HOME/.kvstore/secrets")" = 700 ]
}

@test "impersonation: another HOME claiming alice's name gets exit 5" {
	kv_start
	run -0 kv -u alice put secret mine
	real_home=$HOME
	HOME=$BATS_TEST_TMPDIR/mallory
	mkdir -p "$HOME"
	# No secret: the client tries to register alice, who exists.
	run -5 --separate-stderr kv -u alice get secret
	assert_output ''
	[[ $stderr == "kvstore: 127.0.0.1:$KV_PORT: "* ]]
	[ ! -e "$(kv_secret alice)" ]
	# A made-up secret: login failed.
	mkdir -p -m 700 "$HOME/.kvstore" "$HOME/.kvstore/secrets"
	(umask 077 && printf '%064d\n' 0 >"$(kv_secret alice)")
	run -5 --separate-stderr kv -u alice get secret put secret stolen
	assert_output ''
	[ "$stderr" = "kvstore: 127.0.0.1:$KV_PORT: auth login failed" ]
	HOME=$real_home
	run -0 kv -u alice get secret
	assert_output 'mine'
}

@test "a secret file readable by others is refused" {
	kv_start
	run -0 kv -u carol put k v
	chmod 644 "$(kv_secret carol)"
	run -5 --separate-stderr kv -u carol get k
	assert_output ''
	chmod 600 "$(kv_secret carol)"
	run -0 kv -u carol get k
	assert_output 'v'
}

@test "binary-safe values: spaces, quotes, tabs, newlines, UTF-8, backslashes" {
	kv_start
	# The last ones straddle the inline/literal boundary (64 bytes); the
	# very last holds every byte but NUL (argv cannot hold a NUL).
	roundtrip \
	    'Unity in diversity' \
	    '  leading and trailing spaces  ' \
	    'say "hello"' \
	    '"' \
	    '"starts with a quote' \
	    '{starts with a brace' \
	    '{5}' \
	    '{}' \
	    $'tab\there' \
	    $'line one\nline two' \
	    $'ends in a newline\n' \
	    $'\n\n' \
	    $'carriage\rreturn' \
	    $'crlf\r\n' \
	    'কলকাতা' \
	    'ভারত — India — Индия — 印度 🇮🇳' \
	    'back\slash' \
	    '\\double\\' \
	    '\n is not a newline' \
	    '\x41\0' \
	    $'\x01\x02\x1b[31m\x7f' \
	    $'\xff\xfe not UTF-8 \x80' \
	    '' \
	    ' ' \
	    'get' \
	    '-u' \
	    'ERR syntax unknown command' \
	    'VALUE 5' \
	    $'a\r\nVALUE 3\r\nabc' \
	    "$(printf 'x %.0s' {1..32})" \
	    "$(printf 'x %.0s' {1..32})y" \
	    "$(printf '"%.0s' {1..65})" \
	    "$(printf '\\\\%.0s' {1..100})" \
	    "$(printf 'line\n%.0s' {1..100})" \
	    "$(printf "$(printf '\\x%02x' {1..255})")"
}

@test "binary-safe keys: spaces, quotes, UTF-8, a 250-byte key" {
	kv_start
	roundtrip_keys \
	    'my key' \
	    'কলকাতা' \
	    '"quoted"' \
	    '{3}' \
	    $'tab\tkey' \
	    $'new\nline' \
	    'put' \
	    "$(printf 'k%.0s' {1..250})" \
	    "$(printf 'a %.0s' {1..125})" \
	    "$(printf 'é%.0s' {1..125})"
	# Distinct keys stayed distinct.
	kv get 'my key' get 'কলকাতা' get '"quoted"' get '{3}' \
	    get "$(printf 'a %.0s' {1..125})" >"$(out got)"
	printf 'v1\nv2\nv3\nv4\nv9\n' >"$(out want)"
	cmp "$(out want)" "$(out got)"
	kv get quoted get 'my' get 'my  key' >"$(out got)"
	printf '\n\n\n' >"$(out want)"
	cmp "$(out want)" "$(out got)"
}

@test "a 100 KiB value through argv" {
	kv_start
	head -c 76800 /dev/urandom | base64 -w0 >"$(out val)"
	[ "$(wc -c <"$(out val)")" -eq 102400 ]
	roundtrip "$(<"$(out val)")"
}

@test "a 1 MiB value round-trips; one byte more is refused" {
	# One argv string is at most 128 KiB on Linux (MAX_ARG_STRLEN), so
	# these go through the client's stdin: one command per line.
	kv_start
	head -c 1048576 /dev/urandom | base64 -w0 | head -c 1048576 \
	    >"$(out val)"
	[ "$(wc -c <"$(out val)")" -eq 1048576 ]
	{ printf 'put big '; cat "$(out val)"; printf '\nget big\n'; } |
	    kv >"$(out got)"
	{ cat "$(out val)"; echo; } >"$(out want)"
	cmp "$(out want)" "$(out got)"
	{ printf 'put big '; cat "$(out val)"; printf 'X\n'; } >"$(out cmds)"
	run -1 --separate-stderr kv <"$(out cmds)"
	assert_output ''
	[ "$stderr" = "kvstore: 127.0.0.1:$KV_PORT: limit value longer than 1048576 bytes" ]
	# The refused put changed nothing.
	echo 'get big' | kv >"$(out got)"
	cmp "$(out want)" "$(out got)"
}

@test "commands from stdin: same output as the argument form" {
	kv_start
	printf '%s\n' 'put city Kolkata' 'put country India' 'get country' \
	    'get city' 'get Institute' 'put motto "Unity in diversity"' \
	    'get motto' | kv >"$(out got)"
	printf 'India\nKolkata\n\nUnity in diversity\n' >"$(out want)"
	cmp "$(out want)" "$(out got)"
	run -2 kv <<<'frob x'
}

@test "100 concurrent clients, each writing and reading back 100 keys" {
	kv_start -g 1000
	local -a pids args
	for ((c = 0; c < 100; c++)); do
		# put key0 value-C-0 ... put key99 value-C-99 get key0 ... get key99
		mapfile -t args < <(seq 0 99 | sed "s/.*/put\nkey&\nvalue-$c-&/"
		    seq 0 99 | sed 's/^/get\nkey/')
		kv -u "user$c" "${args[@]}" >"$(out "c$c.out")" \
		    2>"$(out "c$c.err")" &
		pids[c]=$!
	done
	failed=0
	for ((c = 0; c < 100; c++)); do
		if ! wait "${pids[c]}"; then
			echo "client $c failed: $(<"$(out "c$c.err")")" >&2
			failed=$((failed + 1))
		fi
	done
	[ "$failed" -eq 0 ]
	for ((c = 0; c < 100; c++)); do
		seq 0 99 | sed "s/^/value-$c-/"
	done >"$(out want)"
	for ((c = 0; c < 100; c++)); do
		cat "$(out "c$c.out")"
	done >"$(out got)"
	cmp "$(out want)" "$(out got)"
	# Every store holds its own 100 keys, nothing else.
	[ "$(kv_stat_field items)" -eq 10000 ]
}
