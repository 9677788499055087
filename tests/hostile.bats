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

# h_start N PORT HELLO LINES [CHUNK TOTAL]: start client N on PORT.
h_start() {
	local n=$1 f=$BATS_TEST_TMPDIR/client.$1

	: >"$f"
	H_HELLO=$3 H_LINES=$4 H_CHUNK=${5-} H_TOTAL=${6:-0} \
	    perl -e "$H_PERL" "$2" "$f" </dev/null >/dev/null 2>&1 3>&- &
	H_PIDS[n]=$!
	H_FILES[n]=$f
	C_BG+=("$!")
}

# h_wait N WORD [SECONDS]: until client N's status has a WORD line (10 s);
# prints that line.
h_wait() {
	local f=${H_FILES[$1]} i n=$((${3:-10} * 20)) line

	for ((i = 0; i < n; i++)); do
		line=$(grep -m1 "^$2" "$f" 2>/dev/null) && {
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
# format), the first reply line (CR removed) printed.  With "close", then
# whether the server closed it: "LINE" alone if it did (within 3 s) with
# nothing more, "LINE +more" if it did not.
probe() {
	local fd line rc=0 check=${3-}

	exec {fd}<>"/dev/tcp/127.0.0.1/$1" || return 1
	# shellcheck disable=SC2059
	printf -- "$2" >&"$fd" 2>/dev/null || true
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
	kv_wait_log 'timeout: 127\.0\.0\.1.*: replies not read after 2 s'
	[[ $(grep -Ec 'timeout: 127\.0\.0\.1.*: replies not read after 2 s' "$KV_LOG") -eq 4 ]]
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
