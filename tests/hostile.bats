#!/usr/bin/env bats
# hostile.bats - issue 13, the connection core: clients that never read
# their replies, per-address limits and limits on connections not logged
# in, the busy reply, idle and login deadlines and shutdown, each in the
# words of the listener that took the connection (kvstore(7) or memcached).
#
# The clients that must hold a socket open, or write without reading, are
# small perl programs (perl-base: IO::Socket::INET), one process per
# connection, so that a test can kill one with SIGKILL.  Each one reports
# what happened to it in a status file; the tests poll those with a
# deadline.

bats_require_minimum_version 1.5.0
load helpers
load conn

teardown() {
	c_teardown
}

# The client.  Arguments: port, status file.  Environment:
#	H_HELLO	bytes to send first (\r and \n written as such)
#	H_LINES	reply lines to read to them before "ready"
#	H_CHUNK	bytes to send over and over after that, never reading
#	H_TOTAL	how many bytes of H_CHUNK at most (0: none)
# Status lines: "ready LOCALPORT REPLIES" (replies without CRs, lines
# joined by |), "stalled SENT" once no byte could be written for 0.3 s,
# "closed ERRNO" when a write failed, "eof DATA" when the server closed a
# connection that was not flooding.
H_PERL='
use strict; use warnings; use IO::Socket::INET;
my ($port, $status) = @ARGV;
sub st { open(my $f, ">>", $status) or die; print $f "@_\n"; close $f }
sub unesc { my $x = shift // ""; $x =~ s/\\r/\r/g; $x =~ s/\\n/\n/g; $x }
$SIG{PIPE} = "IGNORE";
my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1", PeerPort => $port,
    Proto => "tcp") or do { st("error connect $!"); exit 1 };
my $hello = unesc($ENV{H_HELLO});
syswrite($s, $hello) if length $hello;
my ($buf, $got, $want) = ("", 0, $ENV{H_LINES} // 0);
$SIG{ALRM} = sub { st("error no reply: $buf"); exit 1 };
alarm 10;
while ($got < $want) {
	my $n = sysread($s, my $c, 1);
	if (!$n) { $buf =~ s/\r//g; st("eof $buf"); exit 0 }
	$buf .= $c;
	$got++ if $c eq "\n";
}
alarm 0;
$buf =~ s/\r//g; $buf =~ s/\n/|/g;
st("ready " . $s->sockport . " $buf");
my $chunk = unesc($ENV{H_CHUNK});
my $total = $ENV{H_TOTAL} // 0;
if ($total > 0 && length $chunk) {
	my $block = $chunk x int(65536 / length $chunk);
	my ($sent, $stalled) = (0, 0);
	$s->blocking(0);
	while ($sent < $total) {
		my $w = ""; vec($w, fileno($s), 1) = 1;
		if (select(undef, $w, undef, 0.3) == 0) {
			st("stalled $sent") unless $stalled++;
			next;
		}
		my $k = syswrite($s, $block);
		if (!defined $k) {
			next if $!{EAGAIN};
			st("closed $!"); exit 0;
		}
		$sent += $k;
	}
	st("sent $sent");
	sleep 1 while 1;
}
$buf = "";
while (1) {
	my $n = sysread($s, my $c, 65536);
	if (!defined $n) { st("closed $!"); exit 0 }
	if ($n == 0) { $buf =~ s/\r//g; $buf =~ s/\n/|/g; st("eof $buf"); exit 0 }
	$buf .= $c;
}
'

H_PIDS=()	# the clients, by number
H_FILES=()	# their status files
H_SEQ=0		# clients started: each gets a status file of its own

# h_start N PORT HELLO LINES [CHUNK TOTAL]: start client N on PORT.
h_start() {
	local n=$1 f=$BATS_TEST_TMPDIR/client.$1.$((++H_SEQ))

	: >"$f"
	H_HELLO=$3 H_LINES=$4 H_CHUNK=${5-} H_TOTAL=${6:-0} \
	    perl -e "$H_PERL" "$2" "$f" </dev/null >/dev/null 2>&1 3>&- &
	H_PIDS[n]=$!
	H_FILES[n]=$f
	C_BG+=("$!")
}

# h_wait N WORDS [SECONDS]: until client N's status has a line that starts
# with one of WORDS (an extended regular expression such as "ready|eof"),
# 10 s at most; prints that line.
h_wait() {
	local f=${H_FILES[$1]} i n=$((${3:-10} * 20)) line

	for ((i = 0; i < n; i++)); do
		line=$(grep -m1 -E "^($2)" "$f" 2>/dev/null) && {
			echo "$line"
			return 0
		}
		sleep 0.05
	done
	echo "h_wait: client $1 has no '$2' after ${3:-10} s; status:" >&2
	cat "$f" >&2
	return 1
}

# probe PORT REQUEST [close]: one connection, REQUEST sent (printf
# format), the first reply line (CR removed) printed.  With "close", for a
# refusal: REQUEST is not sent (a refused connection closed with unread
# bytes may be reset before its line is read), and then whether the server
# closed it: "LINE" alone if it did (within 3 s) with nothing more, "LINE
# +more" if it did not.
probe() {
	local fd line rc=0 check=${3-}

	exec {fd}<>"/dev/tcp/127.0.0.1/$1" || return 1
	if [[ -z $check ]]; then
		# shellcheck disable=SC2059
		printf -- "$2" >&"$fd" 2>/dev/null || true
	fi
	IFS= read -r -t 5 -u "$fd" line || rc=$?
	if ((rc > 128)); then
		echo "(no reply)"
	else
		line=${line%$'\r'}
		if [[ -n $check ]] && ! c_eof "$fd" 3 2>/dev/null; then
			line+=" +more"
		fi
		echo "$line"
	fi
	exec {fd}>&-
}

# probe_until PORT REQUEST WANT SECONDS: probe every 0.1 s until the first
# reply line is WANT (within SECONDS); prints the elapsed ms.  Fails, with
# the last reply, after SECONDS.
probe_until() {
	local t0 out deadline

	t0=$(now_ms)
	deadline=$((t0 + $4 * 1000))
	while (($(now_ms) < deadline)); do
		out=$(probe "$1" "$2")
		if [[ $out == "$3" ]]; then
			echo $(($(now_ms) - t0))
			return 0
		fi
		sleep 0.1
	done
	echo "probe_until: no '$3' in $4 s; last reply: $out" >&2
	return 1
}

# wait_exit PID SECONDS: until PID exits (SECONDS at most); prints the ms.
wait_exit() {
	local t0 i n=$(($2 * 20))

	t0=$(now_ms)
	for ((i = 0; i < n; i++)); do
		kv_alive "$1" || {
			echo $(($(now_ms) - t0))
			return 0
		}
		sleep 0.05
	done
	echo "wait_exit: $1 still running after $2 s" >&2
	return 1
}

# ---- clients that never read ------------------------------------------------

# flood PORT HELLO HELLO-REPLY CHUNK BUSY SERVED: with the daemon at -c 4
# -T 2, four clients send HELLO (and read HELLO-REPLY: they are served),
# then pipeline CHUNK without ever reading.  A fifth is refused with BUSY
# while they hold their slots; once they stop reading, they are dropped
# after -T (logged), and a new client is served (SERVED) within -T plus a
# second of the moment the last of them stalled (2 s of slack).
flood() {
	local port=$1 hello=$2 hreply=$3 chunk=$4 busy=$5 served=$6
	local n t0 dt line

	for n in 1 2 3 4; do
		h_start "$n" "$port" "$hello" 1 "$chunk" $((256 << 20))
	done
	for n in 1 2 3 4; do
		run h_wait "$n" ready
		assert_success
		assert_output --regexp "^ready [0-9]+ $hreply\|\$"
	done
	# all four are served now: the next one is refused
	run probe "$port" "$hello" close
	assert_output "$busy"
	for n in 1 2 3 4; do
		run h_wait "$n" stalled 30
		assert_success
	done
	t0=$(now_ms)
	run probe_until "$port" "$hello" "$served" 10
	assert_success
	dt=$(($(now_ms) - t0))
	echo "# a new client served $dt ms after the last flooder stalled" >&3
	((dt <= 5000))
	# the four were dropped, and each drop is logged
	for n in 1 2 3 4; do
		run h_wait "$n" closed 5
		assert_success
	done
	log_count 'timeout: 127\.0\.0\.1.*: replies not read after 2 s' 4
}

@test "native: 4 connections pipelining ping and never reading, -c 4 -T 2: dropped and logged, a new client served within -T + 1 s" {
	kv_start -c 4 -T 2
	flood "$KV_PORT" 'ping\r\n' PONG 'ping\r\n' \
	    "ERR busy too many connections" PONG
}

@test "memcached before login: 4 connections pipelining version and never reading: dropped, a new client served" {
	mc_start -c 4 -T 2
	flood "$MC_PORT" 'version\r\n' 'CLIENT_ERROR unauthenticated' \
	    'version\r\n' "SERVER_ERROR busy too many connections" \
	    "CLIENT_ERROR unauthenticated"
}

@test "memcached -B (logged in from the first byte): 4 connections pipelining version and never reading: dropped, a new client served" {
	mc_start -c 4 -T 2 -B tester
	flood "$MC_PORT" 'get x\r\n' END 'version\r\n' \
	    "SERVER_ERROR busy too many connections" END
}

@test "SIGTERM with 4 clients that never read: the daemon exits within -T + 1 s, status 0" {
	local n rc=0

	mc_start -c 8 -T 2
	for n in 1 2; do
		h_start "$n" "$KV_PORT" 'ping\r\n' 1 'ping\r\n' $((256 << 20))
	done
	for n in 3 4; do
		h_start "$n" "$MC_PORT" 'version\r\n' 1 'version\r\n' $((256 << 20))
	done
	for n in 1 2 3 4; do
		run h_wait "$n" ready
		assert_success
		run h_wait "$n" stalled 30
		assert_success
	done
	kill -TERM "$KV_PID"
	run wait_exit "$KV_PID" 8
	assert_success
	echo "# kvstored exited $output ms after SIGTERM" >&3
	((output <= 5000))
	wait "$KV_PID" || rc=$?
	assert_equal "$rc" 0
	grep -q 'stop: all children done' "$KV_LOG"
	for n in 1 2 3 4; do
		run h_wait "$n" closed 5
		assert_success
	done
}

# ---- limits per address --------------------------------------------------------

# hold N PORT HELLO WANT: client N connects, sends HELLO, and must get WANT
# as its reply (a connection closed just before may not be counted out yet:
# a busy line is tried again, 5 s at most); it then holds the socket open.
hold() {
	local n=$1 i line

	for ((i = 0; i < 50; i++)); do
		h_start "$n" "$2" "$3" 1
		line=$(h_wait "$n" 'ready|eof') || return 1
		if [[ $line =~ ^ready\ [0-9]+\ (.*)\|$ ]]; then
			[[ ${BASH_REMATCH[1]} == "$4" ]] && return 0
			[[ ${BASH_REMATCH[1]} == *busy* ]] || {
				echo "hold: client $n got '${BASH_REMATCH[1]}'" >&2
				return 1
			}
		fi
		# refused (its line, or a reset that lost it): again
		sleep 0.1
	done
	echo "hold: client $n still refused after 5 s" >&2
	return 1
}

@test "-H 3: a 4th connection from 127.0.0.1 on either listener gets its listener's busy line, logged; SIGKILL gives the count back" {
	local port pid

	mc_start -H 3
	hold 1 "$KV_PORT" 'ping\r\n' PONG
	hold 2 "$KV_PORT" 'ping\r\n' PONG
	hold 3 "$MC_PORT" 'version\r\n' 'CLIENT_ERROR unauthenticated'
	# all listeners together
	run probe "$KV_PORT" 'ping\r\n' close
	assert_output "ERR busy too many connections from this address"
	run probe "$MC_PORT" 'version\r\n' close
	assert_output "SERVER_ERROR busy too many connections from this address"
	log_count 'limit: 127\.0\.0\.1: .*\(-H 3\)' 2

	# a client killed with SIGKILL: its connection is counted out
	kill -KILL "${H_PIDS[1]}"
	run probe_until "$KV_PORT" 'ping\r\n' PONG 5
	assert_success
	hold 4 "$MC_PORT" 'version\r\n' 'CLIENT_ERROR unauthenticated'
	run probe "$KV_PORT" 'ping\r\n' close
	assert_output "ERR busy too many connections from this address"

	# the server's process of a connection killed with SIGKILL: counted
	# out too (the conn: line names the client's port)
	port=$(h_wait 2 ready | cut -d' ' -f2)
	pid=$(sed -n "s/.*conn: pid \([0-9]*\) from 127\.0\.0\.1 port $port\$/\1/p" "$KV_LOG")
	[[ -n $pid ]]
	kill -KILL "$pid"
	run h_wait 2 eof 5
	assert_success
	run probe_until "$MC_PORT" 'version\r\n' 'CLIENT_ERROR unauthenticated' 5
	assert_success
	if [[ ${KV_ENGINE:-prefork} == event ]]; then
		# That process was a worker, and the other connections it
		# served went with it: start again from none held.
		kill -KILL "${H_PIDS[@]}" 2>/dev/null || true
		run probe_until "$KV_PORT" 'ping\r\n' PONG 5
		assert_success
		hold 6 "$KV_PORT" 'ping\r\n' PONG
		hold 7 "$KV_PORT" 'ping\r\n' PONG
	fi
	# and the limit still holds at 3
	hold 5 "$KV_PORT" 'ping\r\n' PONG
	run probe "$MC_PORT" 'version\r\n' close
	assert_output "SERVER_ERROR busy too many connections from this address"
}

@test "-H 1, the per-address table full: held by the living, connections served uncounted, said once; by the dead, swept, and -H counts again" {
	local holder a b i got=

	mc_start -H 1
	# every entry held, for an address nobody has, by a process of ours
	sleep 600 3>&- &
	holder=$!
	C_BG+=("$holder")
	run -0 "$STORETEST" "$KV_SHM" 16 1048576 <<<"fillconns $holder"
	assert_output 'filled 4096'
	c_open "$KV_PORT"
	a=$C_FD
	run nv_req "$a" ping
	assert_output PONG
	c_open "$KV_PORT"
	b=$C_FD
	run nv_req "$b" ping
	assert_output PONG
	c_open "$MC_PORT"
	run mc_req_raw "$C_FD" 'version\r\n'
	assert_output 'CLIENT_ERROR unauthenticated'
	c_close "$C_FD"
	# once a minute, whichever process served it (a child each, in prefork)
	log_count 'limit: the per-address table is full \(4096 connections\): -H and -U do not count 127\.0\.0\.1$' 1
	c_close "$a"
	c_close "$b"

	# the holder dead: a sweep (once a second) gives its entries back,
	# and the second connection of the address is refused again
	kill "$holder"
	wait "$holder" 2>/dev/null || true
	C_BG=()
	for ((i = 0; i < 50; i++)); do
		c_open "$KV_PORT"
		a=$C_FD
		got=$(nv_req "$a" ping)
		# the first counted connection may have been a probe before,
		# not yet counted out
		[[ $got == PONG ]] && got=$(probe "$KV_PORT" 'ping\r\n')
		c_close "$a"
		[[ $got == 'ERR busy too many connections from this address' ]] &&
		    break
		sleep 0.1
	done
	assert_equal "$got" 'ERR busy too many connections from this address'
}

@test "-H 1: an entry held far into the per-address table counts, as does every entry where the reach word is 0; the count reads no further than the reach" {
	local holder

	mc_start -H 1
	sleep 600 3>&- &
	holder=$!
	C_BG+=("$holder")
	# 127.0.0.1's entry 3000, held by a live process, as a claim leaves
	# it: the reach covers it
	run -0 "$STORETEST" "$KV_SHM" 16 1048576 <<<"holdconn 3000 $holder 127.0.0.1"
	assert_output 'reach 3002'
	run probe "$KV_PORT" 'ping\r\n' close
	assert_output 'ERR busy too many connections from this address'
	# a word of 0, which no segment of this layout has: every entry is
	# read
	run -0 "$STORETEST" "$KV_SHM" 16 1048576 <<<"reach 0"
	assert_output 'reach 0'
	run probe "$KV_PORT" 'ping\r\n' close
	assert_output 'ERR busy too many connections from this address'
	run probe "$MC_PORT" 'version\r\n' close
	assert_output 'SERVER_ERROR busy too many connections from this address'
	# a reach short of the entry, which no claim leaves: not read
	run -0 "$STORETEST" "$KV_SHM" 16 1048576 <<<"reach 100"
	assert_output 'reach 100'
	run probe_until "$KV_PORT" 'ping\r\n' PONG 5
	assert_success
	# and a reach past the table, which no claim leaves either: the
	# table's end
	run -0 "$STORETEST" "$KV_SHM" 16 1048576 <<<"reach 4294967295"
	assert_output 'reach 4294967295'
	run probe "$KV_PORT" 'ping\r\n' close
	assert_output 'ERR busy too many connections from this address'
}

@test "-U 2: a 3rd connection not logged in gets its listener's busy line, logged; logged-in connections do not count" {
	local a b c u1 u2

	mc_start -U 2
	kv_session alice
	# logged in, on both listeners: not counted
	nv_open alice
	a=$C_FD
	mc_open_ok alice
	b=$C_FD
	nv_open alice
	c=$C_FD
	# two that are not
	c_open "$KV_PORT"
	u1=$C_FD
	run nv_req "$u1" ping
	assert_output PONG
	c_open "$MC_PORT"
	u2=$C_FD
	run mc_req_raw "$u2" 'version\r\n'
	assert_output "CLIENT_ERROR unauthenticated"

	run probe "$KV_PORT" 'ping\r\n' close
	assert_output "ERR busy too many connections not logged in from this address"
	run probe "$MC_PORT" 'version\r\n' close
	assert_output "SERVER_ERROR busy too many connections not logged in from this address"
	log_count 'limit: 127\.0\.0\.1: .*\(-U 2\)' 2

	# one of them logs in: room for one more
	c_send "$u1" 'login alice %s\r\n' "$(<"$(kv_secret alice)")"
	run c_line "$u1"
	assert_output "OK alice guest"
	run probe_until "$MC_PORT" 'version\r\n' 'CLIENT_ERROR unauthenticated' 5
	assert_success
	# the logged-in ones were served all along
	run nv_req "$a" ping
	assert_output PONG
	run mc_req_raw "$b" 'version\r\n'
	assert_output --regexp '^VERSION '
	run nv_req "$c" whoami
	assert_output "USER alice guest"
	c_close "$a"
	c_close "$b"
	c_close "$c"
	c_close "$u1"
	c_close "$u2"
}

@test "-U 1 and a -B listener: its connections count as logged in from the first byte" {
	local u m1 m2

	mc_start -U 1 -B tester
	c_open "$KV_PORT"
	u=$C_FD
	run nv_req "$u" ping
	assert_output PONG
	c_open "$MC_PORT"
	m1=$C_FD
	run mc_req_raw "$m1" 'version\r\n'
	assert_output --regexp '^VERSION '
	c_open "$MC_PORT"
	m2=$C_FD
	run mc_req_raw "$m2" 'get x\r\n'
	assert_output END
	run probe "$KV_PORT" 'ping\r\n' close
	assert_output "ERR busy too many connections not logged in from this address"
	c_close "$u"
	c_close "$m1"
	c_close "$m2"
}

@test "-c 2: the master's busy reply is in the listener's protocol" {
	local n m

	mc_start -c 2
	c_open "$KV_PORT"
	n=$C_FD
	run nv_req "$n" ping
	assert_output PONG
	c_open "$MC_PORT"
	m=$C_FD
	run mc_req_raw "$m" 'version\r\n'
	assert_output "CLIENT_ERROR unauthenticated"
	run probe "$KV_PORT" 'ping\r\n' close
	assert_output "ERR busy too many connections"
	run probe "$MC_PORT" 'version\r\n' close
	assert_output "SERVER_ERROR busy too many connections"
	log_count 'busy: refused 127\.0\.0\.1 port [0-9]+ at 2/2' 2
	c_close "$n"
	c_close "$m"
}

# ---- idle connections and deadlines --------------------------------------------

@test "idle, -t 2: a native connection is closed with ERR timeout idle; a memcached one is not (memcached closes none)" {
	local n m t0

	mc_start -t 2
	nv_open alice
	n=$C_FD
	mc_open_ok alice
	m=$C_FD
	t0=$(now_ms)
	run c_line "$n" 6
	assert_output "ERR timeout idle"
	c_eof "$n"
	# a bounded wait: the idle time is what is measured here
	while (($(now_ms) - t0 < 3500)); do
		sleep 0.1
	done
	run mc_req_raw "$m" 'version\r\n'
	assert_output --regexp '^VERSION '
	c_close "$n"
	c_close "$m"
}

@test "idle, -W 2: a memcached connection is closed after 2 s without a word; native ones keep -t" {
	local n m t0 dt

	mc_start -W 2
	nv_open alice
	n=$C_FD
	mc_open_ok alice
	m=$C_FD
	t0=$(now_ms)
	run c_eof "$m" 6
	assert_success
	dt=$(($(now_ms) - t0))
	echo "# closed after $dt ms" >&3
	((dt >= 1500 && dt <= 5000))
	run nv_req "$n" ping
	assert_output PONG
	c_close "$n"
	c_close "$m"
}

@test "request half sent past -T 1: ERR timeout idle on kvstore(7), SERVER_ERROR timeout request unfinished on memcached; logged" {
	local n m d t0 dt

	mc_start -T 1
	nv_open alice
	n=$C_FD
	mc_open_ok alice
	m=$C_FD
	mc_open_ok alice
	d=$C_FD
	t0=$(now_ms)
	c_send "$n" 'pin'
	c_send "$m" 'vers'
	c_send "$d" 'set k 0 0 10\r\nabc'
	run c_line "$n" 5
	assert_output "ERR timeout idle"
	c_eof "$n"
	run c_line "$m" 5
	assert_output "SERVER_ERROR timeout request unfinished"
	c_eof "$m"
	run c_line "$d" 5
	assert_output "SERVER_ERROR timeout request unfinished"
	c_eof "$d"
	dt=$(($(now_ms) - t0))
	((dt >= 900 && dt <= 4000))
	log_count 'timeout: 127\.0\.0\.1.*request unfinished after 1 s' 3
	c_close "$n"
	c_close "$m"
	c_close "$d"
}

@test "login deadline -L 1: ERR timeout login on kvstore(7), SERVER_ERROR timeout login on memcached" {
	local n m t0 dt

	mc_start -L 1
	c_open "$KV_PORT"
	n=$C_FD
	c_open "$MC_PORT"
	m=$C_FD
	t0=$(now_ms)
	run c_line "$n" 5
	assert_output "ERR timeout login"
	c_eof "$n"
	run c_line "$m" 5
	assert_output "SERVER_ERROR timeout login"
	c_eof "$m"
	dt=$(($(now_ms) - t0))
	((dt >= 900 && dt <= 4000))
	c_close "$n"
	c_close "$m"
}

@test "SIGTERM mid-session: ERR shutdown server stopping on kvstore(7), SERVER_ERROR shutting down on memcached; exit 0" {
	local n m rc=0

	mc_start
	nv_open alice
	n=$C_FD
	mc_open_ok alice
	m=$C_FD
	run nv_req "$n" ping
	assert_output PONG
	kill -TERM "$KV_PID"
	run c_line "$n" 5
	assert_output "ERR shutdown server stopping"
	c_eof "$n"
	run c_line "$m" 5
	assert_output "SERVER_ERROR shutting down"
	c_eof "$m"
	run wait_exit "$KV_PID" 5
	assert_success
	wait "$KV_PID" || rc=$?
	assert_equal "$rc" 0
	c_close "$n"
	c_close "$m"
}
