# tests/conn.bash - live connections to a test daemon, for gate.bats and
# hostile.bats (loaded after helpers.bash).
#
# A connection that must stay open across an operator's change, or be fed
# in pieces, is a bash /dev/tcp descriptor.  bash reads a socket a byte at
# a time, so a reply read in a subshell takes nothing that belongs to the
# next one.  Every read has a deadline; nothing sleeps to synchronise.
#
# Background processes a test starts (flooders, holders) go into C_BG; the
# file's teardown calls c_teardown, which kills them by pid.

: "${KVSTORECTL:=$(dirname "$KVSTORED")/kvstorectl}"

C_BG=()		# pids of background processes this test started
MC_PORT=	# the memcached listener's port (mc_start)

# c_teardown: kill this test's background processes, stop the daemon.
c_teardown() {
	local p

	for p in "${C_BG[@]}"; do
		kill -KILL "$p" 2>/dev/null || true
	done
	for p in "${C_BG[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	C_BG=()
	kv_stop
}

# ctl ARGS...: kvstorectl on the test's segment.
ctl() {
	timeout 20 "$KVSTORECTL" -s "$KV_SHM" "$@"
}

# now_ms: milliseconds since the epoch.
now_ms() {
	local ns

	ns=$(date +%s%N)
	echo $((ns / 1000000))
}

# ---- the memcached listener ----------------------------------------------

# mc_log_ports LOG: wait (5 s) for both start: lines in a kvstored log and
# print "NATIVE-PORT MEMCACHED-PORT".
mc_log_ports() {
	local i text native= mc=
	local re1='start: kvstored [^ ]+ listen [^ ]+ port ([0-9]+) '
	local re2='start: memcached protocol listen [^ ]+ port ([0-9]+)'

	for ((i = 0; i < 100; i++)); do
		text=$(<"$1")
		[[ $text =~ $re1 ]] && native=${BASH_REMATCH[1]}
		[[ $text =~ $re2 ]] && mc=${BASH_REMATCH[1]}
		if [[ -n $native && -n $mc ]]; then
			echo "$native $mc"
			return 0
		fi
		sleep 0.05
	done
	echo "mc_log_ports: no memcached listener in $1:" >&2
	cat "$1" >&2
	return 1
}

# mc_start [kvstored flags]: kv_start with a memcached listener on a free
# port; sets KV_PORT (native) and MC_PORT.
mc_start() {
	local ports

	kv_start -M 0 "$@" || return 1
	ports=$(mc_log_ports "$KV_LOG") || return 1
	KV_PORT=${ports% *}
	MC_PORT=${ports#* }
	export KV_PORT MC_PORT
}

# ---- one descriptor ----------------------------------------------------------

# c_open PORT: connect to 127.0.0.1 PORT; the descriptor is left in C_FD.
# Not through run: the descriptor must stay in the test's shell.
c_open() {
	exec {C_FD}<>"/dev/tcp/127.0.0.1/$1"
}

# c_send FD FORMAT [ARGS...]: printf FORMAT to FD.
c_send() {
	local fd=$1 fmt=$2
	shift 2
	# shellcheck disable=SC2059	# the format is the point
	printf -- "$fmt" "$@" >&"$fd"
}

# c_line FD [SECONDS]: one line (10 s at most), CR removed; fails at EOF or
# timeout, saying which.
c_line() {
	local line rc=0

	IFS= read -r -t "${2:-10}" -u "$1" line || rc=$?
	if ((rc != 0)); then
		if ((rc > 128)); then
			echo "c_line: nothing from fd $1 in ${2:-10} s" \
			    "(got '$line')" >&2
		else
			echo "c_line: EOF on fd $1 (got '$line')" >&2
		fi
		return 1
	fi
	printf '%s\n' "${line%$'\r'}"
}

# c_eof FD [SECONDS]: the server closed FD (within 5 s) and sent nothing
# more before closing.
c_eof() {
	local line rc=0

	IFS= read -r -t "${2:-5}" -u "$1" line || rc=$?
	[[ $rc -eq 1 && -z $line ]] && return 0
	if ((rc > 128)); then
		echo "c_eof: fd $1 still open after ${2:-5} s" >&2
	else
		echo "c_eof: fd $1: read returned $rc, '$line'" >&2
	fi
	return 1
}

# c_close FD: close FD in the test's shell.
c_close() {
	local fd=$1

	exec {fd}>&-
}

# ---- the native protocol (kvstore(7)) ----------------------------------------

# nv_reply FD: one whole native reply (VALUE with its data line, STAT...END).
nv_reply() {
	local fd=$1 line

	line=$(c_line "$fd") || return 1
	printf '%s\n' "$line"
	case $line in
	VALUE\ *)
		c_line "$fd" || return 1
		;;
	STAT\ *)
		while line=$(c_line "$fd"); do
			printf '%s\n' "$line"
			[[ $line == END ]] && return 0
		done
		return 1
		;;
	esac
}

# nv_req FD REQUEST...: send every REQUEST (one line each) in one write,
# then print one reply per request.
nv_req() {
	local fd=$1 req out=
	shift

	for req in "$@"; do
		out+="$req"$'\r\n'
	done
	printf '%s' "$out" >&"$fd"
	for req in "$@"; do
		nv_reply "$fd" || return 1
	done
}

# nv_open USER [SECRET]: a native connection logged in as USER (with the
# client's secret file unless SECRET is given; kv_session registers USER
# first); the descriptor is left in C_FD.
nv_open() {
	local user=$1 secret=${2-} line

	if [[ -z $secret ]]; then
		kv_session "$user" || return 1
		secret=$(<"$(kv_secret "$user")")
	fi
	c_open "$KV_PORT" || return 1
	printf 'login %s %s\r\n' "$user" "$secret" >&"$C_FD"
	line=$(c_line "$C_FD") || return 1
	if [[ $line != "OK $user "* ]]; then
		echo "nv_open: login as $user: $line" >&2
		return 1
	fi
}

# ---- the memcached protocol --------------------------------------------------

# mc_reply FD: one whole memcached reply: VALUE lines with their data up to
# the line that ends them, STAT lines up to END, or one line.
mc_reply() {
	local fd=$1 line

	while line=$(c_line "$fd"); do
		printf '%s\n' "$line"
		case $line in
		VALUE\ *)
			c_line "$fd" || return 1
			;;
		STAT\ *) ;;
		*) return 0 ;;
		esac
	done
	return 1
}

# mc_req_raw FD FORMAT: send FORMAT (printf), print one memcached reply.
mc_req_raw() {
	c_send "$1" "$2"
	mc_reply "$1"
}

# mc_login_req WHO SECRET: the login request, a set whose data is
# "WHO SECRET" (WHO: user, or manager:user).
mc_login_req() {
	local data="$1 $2"

	printf 'set auth 0 0 %d\r\n%s\r\n' "${#data}" "$data"
}

# mc_open WHO [SECRET]: a memcached connection that sent the login of WHO
# (user or manager:store) with USER's secret file unless SECRET is given;
# descriptor in C_FD, the login's reply in MC_LOGIN.  Fails only when no
# reply came: the caller checks MC_LOGIN.
mc_open() {
	local who=$1 user=${1%%:*} secret=${2-}

	if [[ -z $secret ]]; then
		kv_session "$user" || return 1
		secret=$(<"$(kv_secret "$user")")
	fi
	c_open "$MC_PORT" || return 1
	mc_login_req "$who" "$secret" >&"$C_FD"
	MC_LOGIN=$(c_line "$C_FD") || return 1
}

# mc_open_ok WHO [SECRET]: mc_open, and the login must have been STORED.
mc_open_ok() {
	mc_open "$@" || return 1
	if [[ $MC_LOGIN != STORED ]]; then
		echo "mc_open_ok: login as $1: $MC_LOGIN" >&2
		return 1
	fi
}

# ---- the daemon's log ------------------------------------------------------------

# log_count REGEX N [SECONDS]: wait (5 s) until the daemon's log has exactly
# N lines matching the extended regular expression REGEX.
log_count() {
	local i n=$((${3:-5} * 20)) got

	for ((i = 0; i < n; i++)); do
		got=$(grep -Ec -- "$1" "$KV_LOG" || true)
		[[ $got -eq $2 ]] && return 0
		[[ $got -gt $2 ]] && break
		sleep 0.05
	done
	echo "log_count: $got lines match '$1', wanted $2; log:" >&2
	cat "$KV_LOG" >&2
	return 1
}

# ---- the audit ring ------------------------------------------------------------

# audit_has REGEX [COUNT]: kvstorectl log shows REGEX (exactly COUNT times).
audit_has() {
	local n

	n=$(ctl log 256 | grep -Ec -- "$1" || true)
	if [[ -n ${2-} ]]; then
		[[ $n -eq $2 ]] && return 0
	else
		[[ $n -gt 0 ]] && return 0
	fi
	echo "audit_has: '$1' found $n times, wanted ${2:-some}; log:" >&2
	ctl log 256 >&2
	return 1
}
