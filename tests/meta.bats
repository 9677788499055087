#!/usr/bin/env bats
# meta.bats - memcached's meta commands, statistics and listings on
# kvstored's memcached listener, against memcached 1.6.18 itself: the same
# request sequences to a real memcached started here and to kvstored, the
# replies compared byte for byte but for the differences kvstore-memcached(7)
# lists (cas values, me's exp, cls and size); memcached-tool, memcstat and
# memcdump against kvstored; what me, metadump and cachedump show across
# guests, managers and a demotion.
#
# Needs memcached, libmemcached-tools (memcstat, memcdump) and nc.

bats_require_minimum_version 1.5.0
load helpers
load conn

MCD_PID=
MCD_PORT=
MEMCACHED_TOOL=

teardown() {
	if [[ -n $MCD_PID ]]; then
		kill "$MCD_PID" 2>/dev/null || true
		wait "$MCD_PID" 2>/dev/null || true
	fi
	c_teardown
}

# mcd_start: a real memcached 1.6.18 on a free loopback port (MCD_PORT).
# memcached cannot report a port it chose: try ports until one binds, and
# make sure it is ours that answers (its "stats" pid).
mcd_start() {
	local i j port pid

	command -v memcached >/dev/null || {
		echo "memcached not installed (apt-get install memcached)" >&2
		return 1
	}
	for ((i = 0; i < 20; i++)); do
		port=$((20000 + RANDOM % 40000))
		memcached -U 0 -l 127.0.0.1 -p "$port" -u "$(id -un)" -m 16 \
		    </dev/null >"$BATS_TEST_TMPDIR/memcached.log" 2>&1 3>&- &
		MCD_PID=$!
		for ((j = 0; j < 100; j++)); do
			kill -0 "$MCD_PID" 2>/dev/null || break
			pid=$(printf 'stats\r\n' | timeout 2 nc -N 127.0.0.1 \
			    "$port" 2>/dev/null | tr -d '\r' |
			    sed -n 's/^STAT pid //p')
			if [[ $pid == "$MCD_PID" ]]; then
				MCD_PORT=$port
				return 0
			fi
			sleep 0.05
		done
		kill "$MCD_PID" 2>/dev/null || true
		wait "$MCD_PID" 2>/dev/null || true
		MCD_PID=
	done
	echo "mcd_start: no port for memcached:" >&2
	cat "$BATS_TEST_TMPDIR/memcached.log" >&2
	return 1
}

# memcached_tool: the script Debian's memcached package ships.
find_memcached_tool() {
	local t

	for t in "$(command -v memcached-tool 2>/dev/null)" \
	    /usr/share/memcached/scripts/memcached-tool; do
		if [[ -n $t && -f $t ]]; then
			MEMCACHED_TOOL=$t
			return 0
		fi
	done
	echo "memcached-tool not found (apt-get install memcached)" >&2
	return 1
}

# raw PORT FORMAT: FORMAT (printf) on a new connection to PORT; the reply.
raw() {
	# shellcheck disable=SC2059	# the format is the point
	printf -- "$2" | timeout 10 nc -N 127.0.0.1 "$1"
}

# norm: a reply with the documented differences taken out: cas values
# (c<n>, cas=<n>), me's exp, cls and size, and the numbers of t and l
# (compared apart, by near()).
norm() {
	sed -E 's/ c[0-9]+/ c#/g; s/ cas=[0-9]+/ cas=#/; s/ exp=-?[0-9]+/ exp=#/;
	    s/ cls=[0-9]+/ cls=#/; s/ size=[0-9]+/ size=#/;
	    s/ ([tl])-?[0-9]+/ \1#/g'
}

# near A B: the t and l numbers of two replies, pairwise within one second
# (a second may tick between a write and the read that shows its TTL).
near() {
	local -a a b
	local i d

	mapfile -t a < <(grep -oE ' [tl]-?[0-9]+' <<<"$1" | cut -c3-)
	mapfile -t b < <(grep -oE ' [tl]-?[0-9]+' <<<"$2" | cut -c3-)
	[[ ${#a[@]} -eq ${#b[@]} ]] || return 1
	for ((i = 0; i < ${#a[@]}; i++)); do
		d=$((a[i] - b[i]))
		((d >= -1 && d <= 1)) || return 1
	done
}

# The comparison table: each entry is one connection's requests (printf
# format), sent to memcached and to kvstored in turn, in this order, so
# that both hold the same items throughout.  @CAS@ is the last c<n> the
# same server sent (so a C flag can name a real cas value).
META_CASES=(
	'mn\r\n'
	'mn foo bar\r\n'
	'mg\r\n'
	'mg \r\n'
	'mg a1 v\r\nmg a1\r\nmg a1 q\r\nmg a1 k O77\r\nmg a1 q k O77\r\nmn\r\n'
	'ms a1 3\r\nbar\r\nmg a1\r\nmg a1 v\r\nmg a1 s v\r\nmg a1 k v\r\nmg a1 f v q\r\n'
	'mg a1 v c\r\n'
	'ms a2 5 F42 T0\r\nhello\r\nmg a2 f s v k O1 t\r\n'
	'mg a1 v v\r\nmg a1 x\r\nmg a1 E5\r\nmg a1 Tabc\r\nmg a1 Cabc\r\nmg a1 Fabc\r\nmg a1 MXY\r\nmg a1 Oabcdefghijabcdefghijabcdefghij1234\r\n'
	'mg a1 a b c d e f g h i j k l m n o p q r s\r\nmg a1 v c f s t l h k O1 q u\r\nmn\r\n'
	'mg a1 l h\r\nmg a1 u l h\r\n'
	'ms a3 2\r\nhi\r\nmg a3 h\r\nmg a3 h\r\nme a3\r\nmg a3 u h\r\n'
	'mg ZTE= b k v\r\nmg foo b\r\nmg Zm9v b\r\nmn\r\n'
	'ms YmluMQ== 4 b\r\nbin1\r\nmg YmluMQ== b k v\r\nmg bin1 k v\r\nmg bin1 v\r\nme YmluMQ== b\r\nmd YmluMQ== b k q\r\nmg bin1 v\r\n'
	'ms k1 2 T100 F5\r\nhi\r\nmg k1 t f\r\nmg k1 t T60 t\r\nmg k1 t T10\r\nmg k1 t\r\nmg k1 T100 R30 t\r\nmg k1 T10 R30 t\r\nmg k1 R30 t\r\nmg k1 R30 t v\r\n'
	'mg n1 N30 v t\r\nmg n1 N30 v t\r\nmg n1 v\r\nmg n1 s\r\n'
	'ms s1 1 T100\r\nx\r\nmd s1 I T50\r\nmg s1 t v\r\nmg s1 t v\r\nmd s1 I q\r\nmg s1 v\r\nmg s1 v\r\nms s1 1 I\r\nz\r\nmg s1 v\r\n'
	'ms s2 1\r\nx\r\nmg s2 c\r\n'
	'ms s2 1 C@CAS@\r\ny\r\nmg s2 v c\r\n'
	'ms s2 1 C1 I\r\nw\r\nmg s2 v\r\nmd s2 I\r\nms s2 1 C@CAS@ I\r\nq\r\nmg s2 v\r\n'
	'ms k2 2 MX\r\nhi\r\nms k2 2 ME\r\nhi\r\nms k2 2 ME\r\nhi\r\nms k3 2 MR\r\nhi\r\nms k3 2 MA\r\nhi\r\nms k3 2 MP\r\nhi\r\nms k2 2 MA\r\nyo\r\nms k2 2 MP q\r\nzz\r\nmg k2 v\r\nms k2 2 MS\r\nab\r\nmg k2 v\r\n'
	'ms k2 2 C999\r\nab\r\nms k9 2 C999\r\nab\r\nms k2 2 MR C999\r\nab\r\nms k9 2 MR\r\nab\r\nms k2 2 MA C999\r\nab\r\nmg k2 v\r\n'
	'ms k4 2 MA N30\r\nab\r\nmg k4 v t\r\nms k5 2 MP N0\r\ncd\r\nmg k5 v t\r\n'
	'ms k6 2 k O9 c\r\nhi\r\nms k6 2 q k\r\nhi\r\nms k6 2 ME q k O3\r\nhi\r\nmn\r\n'
	'ms\r\nms k\r\nms k x\r\nhi\r\nms k -1\r\nmn\r\n'
	'ms k7 2 S2\r\nhi\r\nms k7 2 b\r\nhi\r\nms k7 2 MXY\r\nhi\r\nms k7 2 Fabc\r\nhi\r\nms k7 2 Tabc\r\nhi\r\nms k7 2 v v\r\nhi\r\nmn\r\n'
	'ms k7 2 a b c d e f g h i j k l m n o p q r\r\nhi\r\nmn\r\n'
	'ms k8 3\r\nabcd\r\nmn\r\n'
	'md\r\nmd d1\r\nmd d1 q\r\nmd d1 q k O5\r\nms d1 1\r\nx\r\nmd d1 C999\r\nmd d1 k O5\r\nmd d1\r\nms d1 1\r\nx\r\nmd d1 q\r\nmg d1\r\n'
	'md d2 F5\r\nmd d2 E\r\nmd d2 Tabc\r\nmd d2 Cabc\r\nmd d2 a b c d e f g h i j k l m n o p q r\r\nmn\r\n'
	'ma\r\nma n1x\r\nma n1x N0\r\nma n1x v\r\nma n1x N0 J10 v\r\nma n2x N0 J10 v t\r\nma n2x v D5 MD\r\nma n2x v D50 M-\r\nma n2x v M+ D7\r\nma n2x MI v q\r\nma n2x q\r\nma n2x v\r\n'
	'ma n2x MX\r\nma n2x Dabc\r\nma n2x Jx\r\nma n2x MXY\r\nma n2x J5 v\r\nma n2x C1 v\r\nma n2x k O1 v\r\nma n2x T30 t v\r\nma n2x v t\r\nma nope q\r\nma nope k O2\r\nmn\r\n'
	'ms n3x 1\r\nx\r\nma n3x\r\nma n2x N0 v D18446744073709551615\r\nma n2x v Md D1000\r\n'
	'ma n4x N30 J5 t v\r\nma n4x t\r\nma n5x t N30 J1 v\r\n'
	'me\r\nme nothere\r\nms e1 3\r\nabc\r\nme e1 b\r\nmn\r\n'
	'mx foo\r\nmgg foo\r\nmn\r\n'
	'ms xa 2 c C0\r\nhi\r\nms xa 2 MR c\r\nhi\r\nms xa 2 ME c k O1\r\nhi\r\nmn\r\n'
	'ms xb 3 T0 F4294967295\r\nabc\r\nmg xb f\r\nmn\r\n'
	'ms xc 0\r\n\r\nmg xc v s\r\nms xc 2 MA\r\nhi\r\nmg xc v\r\n'
	'mg xd N30 T60 t v\r\nmg xd t\r\nmg xe T60 N30 t\r\nmg xe t\r\n'
	'ms xf 1 T100\r\nz\r\nmg xf R200 t\r\nmg xf R200 t\r\nmd xf I\r\nmg xf R200 t\r\nmg xf R200 t\r\n'
	'ms eGc= 2 b k c\r\nhi\r\nmd eGc= b k C1\r\nma eGc= b k\r\nmg eGc= b k\r\nmd eGc= b q\r\nmg xg v\r\n'
	'ms AAEC 1 b\r\n!\r\nmg AAEC b k v\r\nme AAEC b\r\nmg AAEC k b s\r\n'
	'mg xh O1 O2\r\nmg xh Ox\r\nms xh 1 O\r\nx\r\nmg xh O k q v\r\nmn\r\n'
	'ma xi N0 J18446744073709551615 v\r\nma xi v\r\nma xi MD D2 v\r\nma xi J99999999999999999999\r\nma xi D-1\r\nmn\r\n'
	'ms xj 20 T-1\r\n12345678901234567890\r\nmg xj v\r\nms xj 3 T-1\r\n123\r\nma xj v\r\n'
	'ms xk 2 I\r\nhi\r\nmg xk v\r\nmd xk I T-1\r\nmg xk v\r\n'
	'ms xl 2\r\nhi\r\nmd xl C@CAS@\r\nmg xl c\r\n'
	'md xl C@CAS@ k\r\nmg xl v\r\n'
	'mg xm P L v\r\nms xm 1 P L\r\nx\r\nmd xm P L\r\nma xm P L\r\n'
	'ms xn 2 Z\r\nhi\r\nms xn 2 Tabc Mxy\r\nhi\r\nms xn 2 Mxy Tabc\r\nhi\r\nmg xn Tabc Cx Mxy\r\nmn\r\n'
	'mg xo s\r\nmg xo s k\r\nmg xo v q\r\nmg xo q v k O9\r\nmd xo\r\nma xo\r\nma xo N10 q\r\nmg xo v t\r\n'
	'mg ya N30 T60 t v\r\nmg ya t\r\nmg yb T60 N30 t\r\nmg yb t\r\nmg yc t N30 T60\r\nmg yc t\r\nmg yd N30 t T60\r\nmg yd t\r\n'
)

# last_cas REPLY: the last c<n> of a reply, or the one before.
last_cas() {
	local c

	c=$(grep -oE ' c[0-9]+' <<<"$1" | tail -1)
	echo "${c:2}"
}

@test "meta commands: ${#META_CASES[@]} request sequences get memcached 1.6.18's replies byte for byte (cas values, me's exp, cls and size apart)" {
	local i req a b c cas_a=0 cas_b=0 bad=0

	mcd_start
	mc_start -B tester
	for ((i = 0; i < ${#META_CASES[@]}; i++)); do
		req=${META_CASES[i]}
		# cat -A: every byte visible, CR as ^M, so that the comparison
		# is byte for byte
		a=$(raw "$MCD_PORT" "${req//@CAS@/$cas_a}" | cat -A)
		b=$(raw "$MC_PORT" "${req//@CAS@/$cas_b}" | cat -A)
		c=$(last_cas "$a") && [[ -n $c ]] && cas_a=$c
		c=$(last_cas "$b") && [[ -n $c ]] && cas_b=$c
		if [[ -z $a ]] || [[ $(norm <<<"$a") != "$(norm <<<"$b")" ]] ||
		    ! near "$a" "$b"; then
			printf 'case %d: %s\nmemcached:\n%s\nkvstored:\n%s\n' \
			    "$i" "$req" "$a" "$b" >&2
			bad=$((bad + 1))
		fi
	done
	[[ $bad -eq 0 ]]
}

@test "meta: q hides only nominal replies; mn ends a pipeline; errors always shown (kvstored alone)" {
	mc_start -B tester
	run raw "$MC_PORT" 'mg nope v q\r\nms k 1 q\r\nx\r\nmg k v q\r\nmd nope q\r\nmd k q\r\nma nope q\r\nmg k x q\r\nmn\r\n'
	assert_output "$(printf 'VA 1\r\nx\r\nNF\r\nNF\r\nCLIENT_ERROR invalid flag\r\nMN\r\n')"
}

@test "a refused ms drops its data block, before login and after: one reply per request" {
	mc_start
	run raw "$MC_PORT" 'ms k 5\r\nhello\r\nadd k 0 0 5\r\nhello\r\nversion\r\n'
	# (version too is refused before login: three requests, three lines)
	assert_output "$(printf 'CLIENT_ERROR unauthenticated\r\nCLIENT_ERROR unauthenticated\r\nCLIENT_ERROR unauthenticated\r\n')"
	kv_stop
	mc_start -B tester
	run raw "$MC_PORT" 'ms k 5 Z\r\nhello\r\nms k 5 MX\r\nhello\r\nms k 5 T1 T2\r\nhello\r\nms k 999999999\r\nmn\r\n'
	# the last one's length is over the value limit: its bytes are
	# dropped as they come, so the mn that follows is data
	assert_output "$(printf 'CLIENT_ERROR invalid flag\r\nCLIENT_ERROR invalid mode for ms M token\r\nCLIENT_ERROR duplicate flag\r\nSERVER_ERROR object too large for cache\r\n')"
}

@test "a binary-protocol request gets memcached's unknown-command response at once, then the connection closes" {
	local req='\x80\x55\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xde\xad\xbe\xef\x00\x00\x00\x00\x00\x00\x00\x00'

	mcd_start
	mc_start -B tester
	want=$(raw "$MCD_PORT" "$req" | od -An -tx1)
	[[ -n $want ]]
	# opcode 0x55 echoed, status 0x0081, body "Unknown command", opaque
	# echoed
	[[ $want == *"81 55 00 00 00 00 00 81 00 00 00 0f de ad be ef"* ]]
	run bash -c "printf '$req' | timeout 5 nc 127.0.0.1 $MC_PORT | od -An -tx1"
	assert_success
	assert_output "$want"
	# before login too
	kv_stop
	mc_start
	run bash -c "printf '$req' | timeout 5 nc 127.0.0.1 $MC_PORT | od -An -tx1"
	assert_output "$want"
}

@test "VERSION says 1.6.18 (clients read it as 1.6.x); stats carries kvstore_version" {
	mc_start -B tester
	run raw "$MC_PORT" 'version\r\n'
	assert_output "$(printf 'VERSION 1.6.18\r\n')"
	run bash -c "printf 'stats\r\n' | timeout 10 nc -N 127.0.0.1 $MC_PORT | tr -d '\r'"
	assert_line 'STAT version 1.6.18'
	assert_line "STAT kvstore_version $("$KVSTORED" -V | cut -d' ' -f2)"
}

# ---- statistics ----------------------------------------------------------------

@test "every stats subcommand ends as memcached's does: END, RESET, OK, or memcached's own error line" {
	local sub a b

	mcd_start
	mc_start -B tester
	for sub in '' items slabs settings sizes conns 'detail on' 'detail dump' \
	    'detail off' reset 'cachedump 1 0' 'cachedump 1 1' 'cachedump 0 0'; do
		a=$(raw "$MCD_PORT" "stats $sub\\r\\n" | tail -1)
		b=$(raw "$MC_PORT" "stats $sub\\r\\n" | tail -1)
		[[ -n $a && $a == "$b" ]] || {
			echo "stats $sub: memcached '$a', kvstored '$b'" >&2
			return 1
		}
	done
	for sub in detail 'detail x' cachedump 'cachedump 1' 'cachedump x 1' \
	    'cachedump 64 0' 'cachedump 99 1' bogus noreply; do
		a=$(raw "$MCD_PORT" "stats $sub\\r\\n")
		b=$(raw "$MC_PORT" "stats $sub\\r\\n")
		[[ -n $a && $a == "$b" ]] || {
			echo "stats $sub: memcached '$a', kvstored '$b'" >&2
			return 1
		}
	done
	# and lru_crawler's
	for sub in 'metadump 0' 'metadump 1,99' 'metadump x' metadump \
	    'crawl all' disable 'tocrawl x' bogus; do
		a=$(raw "$MCD_PORT" "lru_crawler $sub\\r\\n")
		b=$(raw "$MC_PORT" "lru_crawler $sub\\r\\n")
		[[ -n $a && $a == "$b" ]] || {
			echo "lru_crawler $sub: memcached '$a', kvstored '$b'" >&2
			return 1
		}
	done
}

@test "plain stats: the fields clients read, with what kvstore counted" {
	mc_start -B tester
	run raw "$MC_PORT" 'set a 0 0 1\r\n5\r\ndelete nope\r\nincr a 2\r\nincr nope 1\r\ndecr a 1\r\ngets a\r\ncas a 0 0 1 1\r\nx\r\ntouch a 100\r\ntouch nope 1\r\nmd nope\r\n'
	assert_success
	run bash -c "printf 'stats\r\n' | timeout 10 nc -N 127.0.0.1 $MC_PORT | tr -d '\r'"
	assert_line 'STAT threads 1'
	assert_line 'STAT total_items 1'
	assert_line 'STAT curr_items 1'
	assert_line 'STAT delete_misses 2'
	assert_line 'STAT incr_hits 1'
	assert_line 'STAT incr_misses 1'
	assert_line 'STAT decr_hits 1'
	assert_line 'STAT cas_badval 1'
	assert_line 'STAT cas_hits 0'
	assert_line 'STAT touch_hits 1'
	assert_line 'STAT touch_misses 1'
	assert_line 'STAT rejected_connections 0'
	assert_line 'STAT reclaimed 0'
	assert_line 'STAT store_no_memory 0'
	# this connection's bytes: "stats\r\n" read, nothing written before
	assert_line 'STAT bytes_read 7'
	assert_line 'STAT bytes_written 0'
	assert_line 'END'
}

@test "stats items and slabs: the store's items per size class, in memcached's form" {
	mc_start -B tester
	run raw "$MC_PORT" 'set a 0 0 1\r\nx\r\nset b 0 0 1\r\ny\r\nset c 0 0 500\r\n'"$(printf 'z%.0s' {1..500})"'\r\n'
	run bash -c "printf 'stats items\r\n' | timeout 10 nc -N 127.0.0.1 $MC_PORT | tr -d '\r' | grep -E ':number |^END'"
	assert_output --regexp '^STAT items:1:number 2
STAT items:[0-9]+:number 1
END$'
	run bash -c "printf 'stats slabs\r\n' | timeout 10 nc -N 127.0.0.1 $MC_PORT | tr -d '\r'"
	assert_line --regexp '^STAT 1:chunk_size [0-9]+$'
	assert_line 'STAT 1:used_chunks 2'
	assert_line 'STAT 1:total_pages 1'
	assert_line 'STAT 1:free_chunks 0'
	assert_line --regexp '^STAT active_slabs [1-9][0-9]*$'
	assert_line 'END'
	active=$(grep -oE '^STAT active_slabs [0-9]+' <<<"$output")
	active=${active##* }
	# A freed chunk is free; the 500-byte class's page, emptied, goes
	# back to the pool and leaves the listing.
	run raw "$MC_PORT" 'delete a\r\ndelete c\r\n'
	run bash -c "printf 'stats slabs\r\n' | timeout 10 nc -N 127.0.0.1 $MC_PORT | tr -d '\r'"
	assert_line 'STAT 1:used_chunks 1'
	assert_line 'STAT 1:free_chunks 1'
	assert_line "STAT active_slabs $((active - 1))"
	assert_line 'END'
}

@test "a metadump larger than the output bound: every key once, END, then the next request's reply" {
	local i

	mc_start -B tester
	{
		for ((i = 0; i < 20000; i++)); do
			printf 'ms key-%0100d 1 q\r\nx\r\n' "$i"
		done
		printf 'mn\r\n'
	} | timeout 30 nc -N 127.0.0.1 "$MC_PORT" >/dev/null
	# about 3 MiB of lines: the listing stops at the 1 MiB bound and goes
	# on as the client reads
	printf 'lru_crawler metadump all\r\nmn\r\n' |
	    timeout 30 nc -N 127.0.0.1 "$MC_PORT" >"$BATS_TEST_TMPDIR/dump"
	run tail -c 9 "$BATS_TEST_TMPDIR/dump"
	assert_output "$(printf 'END\r\nMN\r')"
	run bash -c "grep '^key=key-' '$BATS_TEST_TMPDIR/dump' | cut -d' ' -f1 | sort -u | wc -l"
	assert_output 20000
	run grep -c '' "$BATS_TEST_TMPDIR/dump"
	assert_output 20002
}

# mc_until_mn FD: the replies on FD up to MN, CRs removed.
mc_until_mn() {
	local line

	while line=$(c_line "$1"); do
		printf '%s\n' "$line"
		[[ $line == MN ]] && return 0
	done
	return 1
}

@test "meta writes are held to the written store's quota; a manager's meta requests on another store are audited per key" {
	mc_start -q 2
	kv_session alice
	kv_session mgr
	run ctl promote mgr
	assert_output "mgr is now a manager"
	mc_open_ok alice
	c_send "$C_FD" 'ms a 1\r\nx\r\nma b N0 J1\r\nms c 1\r\nx\r\nmg d N30\r\nma e N0\r\nms a 1 MA\r\ny\r\nmn\r\n'
	run mc_until_mn "$C_FD"
	assert_output "HD
HD
SERVER_ERROR out of memory: over the user's quota
SERVER_ERROR out of memory: over the user's quota
SERVER_ERROR out of memory: over the user's quota
HD
MN"
	c_close "$C_FD"
	# the manager writing alice's store is held to alice's quota
	mc_open_ok mgr:alice
	c_send "$C_FD" 'ms m 1\r\nx\r\nmg a v\r\nmd b\r\nma z N0\r\nmn\r\n'
	run mc_until_mn "$C_FD"
	assert_output "SERVER_ERROR out of memory: over the user's quota
VA 2
xy
HD
HD
MN"
	c_close "$C_FD"
	audit_has ' user=mgr role=manager action=mg target=alice key="a"$' 1
	audit_has ' user=mgr role=manager action=md target=alice key="b"$' 1
	audit_has ' user=mgr role=manager action=ma target=alice key="z"$' 1
	audit_has ' user=mgr role=manager action=ms target=alice key="m"$' 1
}

# ---- the operators' tools ------------------------------------------------------

@test "memcached-tool display, stats, settings, sizes and dump complete against kvstored" {
	find_memcached_tool
	mc_start -B tester
	run raw "$MC_PORT" 'set a 3 0 2\r\nhi\r\n'
	run raw "$MC_PORT" 'set n%%x 0 0 1\r\n7\r\n'
	run timeout 10 perl "$MEMCACHED_TOOL" "127.0.0.1:$MC_PORT" display
	assert_success
	assert_line --index 0 '  #  Item_Size  Max_age   Pages   Count   Full?  Evicted Evict_Time OOM'
	assert_line --regexp '^  1 +[0-9]+B +[0-9]+s +1 +2 +no +0 +0 +0$'
	run timeout 10 perl "$MEMCACHED_TOOL" "127.0.0.1:$MC_PORT" stats
	assert_success
	assert_line --regexp '^ +curr_items +2[[:space:]]*$'
	assert_line --regexp '^ +version +1\.6\.18[[:space:]]*$'
	run timeout 10 perl "$MEMCACHED_TOOL" "127.0.0.1:$MC_PORT" settings
	assert_success
	assert_line --regexp '^ +item_size_max +1048576[[:space:]]*$'
	run timeout 10 perl "$MEMCACHED_TOOL" "127.0.0.1:$MC_PORT" sizes
	assert_success
	assert_line --regexp '^ +sizes_status +disabled[[:space:]]*$'
	run timeout 10 perl "$MEMCACHED_TOOL" "127.0.0.1:$MC_PORT" dump
	assert_success
	# (memcached-tool writes its add commands with CRLFs)
	assert_line $'add a 3 0 2\r'
	assert_line $'hi\r'
	assert_line $'add n%x 0 0 1\r'
	assert_line $'7\r'
	[[ ${#lines[@]} -eq 5 ]]
}

@test "memcstat and memcdump against kvstored: the figures, every key of the store once" {
	local i
	command -v memcdump >/dev/null && command -v memcstat >/dev/null || {
		echo "libmemcached-tools not installed" >&2
		return 1
	}
	mc_start -B tester
	{
		for ((i = 0; i < 300; i++)); do
			printf 'set key%d 0 0 1 noreply\r\nx\r\n' "$i"
		done
		printf 'mn\r\n'
	} | timeout 10 nc -N 127.0.0.1 "$MC_PORT" >/dev/null
	run timeout 10 memcstat --servers="127.0.0.1:$MC_PORT"
	assert_success
	assert_line --partial 'curr_items: 300'
	run timeout 10 memcdump --servers="127.0.0.1:$MC_PORT"
	assert_success
	[[ $(sort <<<"$output") == "$(for ((i = 0; i < 300; i++)); do echo "key$i"; done | sort)" ]]
}

# ---- isolation -------------------------------------------------------------------

# listing WHO REQUEST: log in as WHO (user or manager:store) and print the
# reply to REQUEST, CRs removed: up to MN when REQUEST ends in mn, else up
# to the first line that ends a reply.
listing() {
	local line

	mc_open_ok "$1" || return 1
	c_send "$C_FD" "$2"
	while line=$(c_line "$C_FD"); do
		printf '%s\n' "$line"
		# a pipeline that ends in mn is read up to its MN
		if [[ $2 == *'mn\r\n' ]]; then
			[[ $line == MN ]] && break
			continue
		fi
		case $line in
		END | EN | ME\ * | CLIENT_ERROR* | SERVER_ERROR*) break ;;
		esac
	done
	c_close "$C_FD"
}

@test "me, metadump, cachedump and memcdump show the caller's store only: guest, manager, demoted manager" {
	local u

	mc_start
	for u in alice bob mgr; do
		kv_session "$u"
	done
	run ctl promote mgr
	assert_output "mgr is now a manager"
	run -0 kv -u alice put as 1
	run -0 kv -u bob put b1 22
	run -0 kv -u bob put b2 333

	# a guest: its own keys; another store's key is a miss
	run listing alice 'lru_crawler metadump all\r\n'
	assert_line --index 0 --regexp '^key=as exp=-1 la=[0-9]+ cas=[0-9]+ fetch=no cls=1 size=[0-9]+$'
	assert_line --index 1 END
	[[ ${#lines[@]} -eq 2 ]]
	run listing alice 'me b1\r\n'
	assert_output EN
	run listing alice 'stats cachedump 1 0\r\n'
	assert_output "$(printf 'ITEM as [1 b; 0 s]\nEND')"
	# the meta commands act on alice's own store: bob's b1 is not there,
	# and alice's writes of that key make an item of her own
	run listing alice 'mg b1 v\r\nmd b1\r\nma b1\r\nms b1 1 MR\r\nx\r\nms b1 1\r\nx\r\nmg b1 v k\r\nmn\r\n'
	assert_output "$(printf 'EN\nNF\nNF\nNS\nHD\nVA 1 kb1\nx\nMN')"
	run listing mgr:bob 'mg b1 v\r\nmn\r\n'
	assert_output "$(printf 'VA 2\n22\nMN')"
	# a guest naming another store is refused at login
	mc_open alice:bob
	assert_equal "$MC_LOGIN" "CLIENT_ERROR denied not a manager"
	c_close "$C_FD"

	# a manager: the store it chose, not its own and not alice's
	run listing mgr:bob 'lru_crawler metadump all\r\n'
	[[ ${#lines[@]} -eq 3 ]]
	assert_line --regexp '^key=b1 '
	assert_line --regexp '^key=b2 '
	assert_line --index 2 END
	run listing mgr:bob 'me b2\r\n'
	assert_output --regexp '^ME b2 exp=-1 la=[0-9]+ cas=[0-9]+ fetch=no cls=1 size=[0-9]+$'
	run listing mgr:bob 'me as\r\n'
	assert_output EN
	run listing mgr 'lru_crawler metadump all\r\n'
	assert_output END

	# demoted with a connection open on bob's store: refused from then on
	mc_open_ok mgr:bob
	local fd=$C_FD
	run ctl demote mgr
	assert_output "mgr is now a guest"
	c_send "$fd" 'lru_crawler metadump all\r\n'
	run c_line "$fd"
	assert_output "CLIENT_ERROR denied not a manager"
	c_send "$fd" 'me b1\r\nstats cachedump 1 0\r\nmg b1 v\r\n'
	run c_line "$fd"
	assert_output "CLIENT_ERROR denied not a manager"
	run c_line "$fd"
	assert_output "CLIENT_ERROR denied not a manager"
	run c_line "$fd"
	assert_output "CLIENT_ERROR denied not a manager"
	c_close "$fd"
	audit_has ' user=mgr role=manager action=metadump target=bob key=""$' 1

	# memcdump on a listener bound to alice: alice's keys only
	kv_stop
	mc_start -B alice
	run raw "$MC_PORT" 'set mine 0 0 1\r\nx\r\n'
	run timeout 10 memcdump --servers="127.0.0.1:$MC_PORT"
	assert_success
	assert_output mine
}
