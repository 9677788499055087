#!/usr/bin/env bats
# roles.bats - issue 3: identity, authentication and roles, end to end with a
# real kvstored, the real client and kvstorectl: the isolation matrix, live
# role changes, impersonation, throttling, quotas, the users file, the
# interactive prompt through a pty, closed registration, pre-login limits.
#
# Every test starts its own daemon (kv_start) with its own segment and HOME.
# Connections that must stay open across an operator's change are bash
# /dev/tcp descriptors (r_open); bash reads a socket a byte at a time, so a
# reply read in a subshell (run) takes nothing that belongs to the next one.

bats_require_minimum_version 1.5.0
load helpers

# make check does not export it yet: the build tree keeps it next to kvstored.
: "${KVSTORECTL:=$(dirname "$KVSTORED")/kvstorectl}"

R_BG=()		# background processes this test started (killed in teardown)

teardown() {
	local p

	for p in "${R_BG[@]}"; do
		kill -KILL "$p" 2>/dev/null || true
	done
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

# ---- live connections ------------------------------------------------------

# r_line FD: one reply line (10 s at most), CR removed; fails at EOF/timeout.
r_line() {
	local line

	if ! IFS= read -r -t 10 -u "$1" line; then
		echo "r_line: no line from fd $1 (EOF or timeout)" >&2
		return 1
	fi
	printf '%s\n' "${line%$'\r'}"
}

# r_reply FD: one whole reply (VALUE with its data line, STAT...END).
r_reply() {
	local fd=$1 line

	line=$(r_line "$fd") || return 1
	printf '%s\n' "$line"
	case $line in
	VALUE\ *)
		r_line "$fd" || return 1
		;;
	STAT\ *)
		while line=$(r_line "$fd"); do
			printf '%s\n' "$line"
			[[ $line == END ]] && return 0
		done
		return 1
		;;
	esac
}

# r_req FD REQUEST...: send every REQUEST (one line each) in one write, then
# print one reply per request.
r_req() {
	local fd=$1 req out=
	shift

	for req in "$@"; do
		out+="$req"$'\r\n'
	done
	printf '%s' "$out" >&"$fd"
	for req in "$@"; do
		r_reply "$fd" || return 1
	done
}

# r_eof FD: true when the server closed the connection (within 5 s).
r_eof() {
	local line rc=0

	IFS= read -r -t 5 -u "$1" line || rc=$?
	[[ $rc -eq 1 && -z $line ]] && return 0
	echo "r_eof: read from fd $1 returned $rc, '$line'" >&2
	return 1
}

# r_open USER: connect, log in as USER (registering it first if needed);
# the descriptor is left in R_FD.  Not through run: the fd must stay here.
r_open() {
	local user=$1 secret line

	kv_session "$user" || return 1
	secret=$(<"$(kv_secret "$user")")
	exec {R_FD}<>"/dev/tcp/127.0.0.1/$KV_PORT" || return 1
	printf 'login %s %s\r\n' "$user" "$secret" >&"$R_FD"
	line=$(r_line "$R_FD") || return 1
	if [[ $line != "OK $user "* ]]; then
		echo "r_open: login as $user: $line" >&2
		return 1
	fi
}

# wait_for FILE TEXT [SECONDS]: until FILE contains TEXT (a fixed string;
# 10 s at most by default).
wait_for() {
	local file=$1 text=$2 i n=$((${3:-10} * 20))

	for ((i = 0; i < n; i++)); do
		[[ -f $file && $(<"$file") == *"$text"* ]] && return 0
		sleep 0.05
	done
	echo "wait_for: no '$text' in $file after ${3:-10} s; it has:" >&2
	cat -A "$file" >&2
	return 1
}

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

# ---- the isolation matrix ----------------------------------------------------

M_CMDS=(put get del expire ttl stats)

# m_request CMD KEY: the request line a cell sends.
m_request() {
	case $1 in
	put) echo "put $2 new.$2" ;;
	get) echo "get $2" ;;
	del) echo "del $2" ;;
	expire) echo "expire $2 1000" ;;
	ttl) echo "ttl $2" ;;
	stats) echo "stats" ;;
	esac
}

# m_hit CMD KEY VALUE: the exact reply to CMD on a store where KEY holds
# VALUE without expiry (stats is checked apart).
m_hit() {
	case $1 in
	put | del | expire) echo OK ;;
	get) printf 'VALUE %d\n%s\n' "${#3}" "$3" ;;
	ttl) echo "TTL -1" ;;
	esac
}

# m_after CMD KEY VALUE: what the store's owner then sees: get KEY, ttl KEY.
m_after() {
	case $1 in
	put) printf 'VALUE %d\nnew.%s\nTTL -1\n' $((${#2} + 4)) "$2" ;;
	del) printf 'NOT_FOUND\nNOT_FOUND\n' ;;
	expire) printf 'VALUE %d\n%s\nTTL 1000\n' "${#3}" "$3" ;;
	*) printf 'VALUE %d\n%s\nTTL -1\n' "${#3}" "$3" ;;
	esac
}

# m_state FD KEY: get KEY, ttl KEY on FD, a session of the store's owner
# (TTL 999 counts as 1000: a second may tick between expire and the check).
m_state() {
	r_req "$1" "get $2" "ttl $2" | sed 's/^TTL 999$/TTL 1000/'
}

# m_stats_ok OUTPUT OWNER OTHER...: a stats reply about OWNER's store only:
# STAT user OWNER, user_items/user_bytes as kvstorectl users counts them,
# and no word of any OTHER user.
m_stats_ok() {
	local out=$1 owner=$2 o keys bytes
	shift 2

	read -r _ _ _ keys _ bytes < <(ctl users | grep "^$owner ")
	[[ $out == *$'\nSTAT user '"$owner"$'\n'* ]] || {
		echo "stats: not about $owner: $out" >&2
		return 1
	}
	[[ $out == *$'\nSTAT user_items '"$keys"$'\n'* &&
	    $out == *$'\nSTAT user_bytes '"$bytes"$'\n'* ]] || {
		echo "stats: $owner has $keys keys $bytes bytes: $out" >&2
		return 1
	}
	[[ $(grep -c '^STAT ' <<<"$out") -eq 25 && $out == *$'\nEND' ]] || {
		echo "stats: not 25 STAT lines and END: $out" >&2
		return 1
	}
	for o in "$@"; do
		if grep -q -- "$o" <<<"$out"; then
			echo "stats of $owner mentions $o: $out" >&2
			return 1
		fi
	done
}

@test "isolation matrix: every command x own/other store x role gives exact replies; crossings are audited" {
	local actor cmd where key target req fd dfd out want cells=0 u
	local -a seed

	kv_start
	for actor in alice bob mgr dora; do
		kv_session "$actor"
	done
	run ctl promote mgr
	assert_success
	assert_output "mgr is now a manager"
	run ctl promote dora
	assert_output "dora is now a manager"

	# other(actor): whose store the actor tries to reach with use.
	declare -A other=([alice]=bob [bob]=alice [mgr]=alice [dora]=bob)

	# Each owner's own session, to seed and to look at its store.
	declare -A vfd
	for u in alice bob mgr dora; do
		r_open "$u"
		vfd[$u]=$R_FD
	done
	# Seed: every cell's key, in the store the cell targets, value
	# seed.<owner>.<key>.  A guest's "other" cell key exists ONLY in the
	# other store, so a leak would show as a hit.
	for u in alice bob mgr dora; do
		seed=()
		for actor in alice bob mgr dora; do
			for where in own other; do
				target=$actor
				[[ $where == other ]] && target=${other[$actor]}
				[[ $target == "$u" ]] || continue
				for cmd in "${M_CMDS[@]}"; do
					key=k.$cmd.$actor.$where
					seed+=("put $key seed.$target.$key")
				done
			done
		done
		run r_req "${vfd[$u]}" "${seed[@]}"
		assert_success
		assert_output "$(printf 'OK\n%.0s' "${seed[@]}")"
	done

	# dora: a manager that chose bob's store, then was demoted with the
	# session open: every request on bob's store is now refused.
	r_open dora
	dfd=$R_FD
	run r_req "$dfd" "use bob"
	assert_output "OK bob"
	run ctl demote dora
	assert_output "dora is now a guest"

	for actor in alice bob mgr dora; do
		# other first: dora's session still points at bob's store
		for where in other own; do
			for cmd in "${M_CMDS[@]}"; do
				key=k.$cmd.$actor.$where
				target=$actor
				[[ $where == other ]] && target=${other[$actor]}
				req=$(m_request "$cmd" "$key")
				if [[ $actor == dora ]]; then
					fd=$dfd
					if [[ $where == own && $cmd == put ]]; then
						# back to its own store: allowed to anyone
						run r_req "$fd" "use dora"
						assert_output "OK dora"
					fi
					run r_req "$fd" "$req"
				else
					r_open "$actor"
					fd=$R_FD
					if [[ $where == other ]]; then
						run r_req "$fd" "use $target" "$req"
					else
						run r_req "$fd" "$req"
					fi
					exec {fd}>&-
				fi
				assert_success
				cells=$((cells + 1))

				# the exact reply
				if [[ $where == own || $actor == mgr ]]; then
					want=$(m_hit "$cmd" "$key" "seed.$target.$key")
					[[ $where == other ]] && want="OK $target"$'\n'$want
				elif [[ $actor == dora ]]; then
					want="ERR denied not a manager"
				else
					# a guest: use is refused, and the request
					# then acts on its own store, where the key
					# is absent: bob's key is not even revealed.
					want="ERR denied not a manager"$'\n'
					case $cmd in
					put) want+=OK ;;
					stats) want= ;;
					*) want+=NOT_FOUND ;;
					esac
				fi
				if [[ $cmd == stats ]]; then
					if [[ $actor == dora && $where == other ]]; then
						assert_output "$want"
					elif [[ $where == own || $actor == mgr ]]; then
						[[ $where == own ]] || assert_line -n 0 "OK $target"
						m_stats_ok $'\n'"$output" "$target" \
						    $(printf '%s\n' alice bob mgr dora | grep -vx "$target")
					else
						assert_line -n 0 "ERR denied not a manager"
						m_stats_ok $'\n'"$output" "$actor" \
						    $(printf '%s\n' alice bob mgr dora | grep -vx "$actor")
					fi
				else
					assert_output "$want"
				fi

				# what the target store's owner sees afterwards
				run m_state "${vfd[$target]}" "$key"
				assert_success
				if [[ $where == other && $actor != mgr ]]; then
					# refused: untouched
					assert_output "$(m_after get "$key" "seed.$target.$key")"
				else
					assert_output "$(m_after "$cmd" "$key" "seed.$target.$key")"
				fi
				# a refused guest's put landed in its own store
				if [[ $where == other && $actor != mgr && $actor != dora &&
				    $cmd == put ]]; then
					run m_state "${vfd[$actor]}" "$key"
					assert_output "$(m_after put "$key" x)"
				fi
			done
		done
	done
	exec {dfd}>&-
	for u in alice bob mgr dora; do
		fd=${vfd[$u]}
		exec {fd}>&-
	done

	# The audit ring: each guest's 6 tries to use another store, the
	# manager's 6 uses and every request it made there, the demoted
	# manager's refused requests with their keys; nothing about requests
	# on one's own store.
	audit_has '^time=[^ ]+ peer=127\.0\.0\.1:[0-9]+ user=alice role=guest action=use target=bob key=""$' 6
	audit_has ' user=bob role=guest action=use target=alice key=""$' 6
	audit_has ' user=mgr role=manager action=use target=alice key=""$' 6
	audit_has ' user=dora role=manager action=use target=bob key=""$' 1
	for cmd in "${M_CMDS[@]}"; do
		key="k.$cmd.mgr.other"
		[[ $cmd == stats ]] && key=
		audit_has " user=mgr role=manager action=$cmd target=alice key=\"$key\"\$" 1
		key="k.$cmd.dora.other"
		[[ $cmd == stats ]] && key=
		audit_has " user=dora role=guest action=$cmd target=bob key=\"$key\"\$" 1
	done
	audit_has ' user=(alice|bob|mgr|dora) role=[a-z]+ action=[a-z]+ target=[a-z]+ key="k\.[a-z]+\.[a-z]+\.own"' 0
	# the same lines reach the daemon's log
	grep -Eq 'audit: time=.* user=mgr role=manager action=get target=alice key="k.get.mgr.other"' "$KV_LOG"
	grep -Eq 'audit: time=.* user=dora role=guest action=put target=bob key="k.put.dora.other"' "$KV_LOG"

	[[ $cells -eq 48 ]]
	echo "# matrix=6 commands x 2 stores (own, other via use) x 2 roles (guest, manager; 4 principals: guests alice and bob, manager mgr, manager dora demoted mid-session) = $cells cells" >&3
}

# ---- live role changes ---------------------------------------------------------

@test "live role change: demoted manager is refused at its next request, promoted guest crosses at its next" {
	local fm fb

	kv_start
	kv_session alice
	run kv -u alice put city Kolkata
	assert_success
	kv_session mgr
	kv_session bob
	ctl promote mgr

	r_open mgr
	fm=$R_FD
	r_open bob
	fb=$R_FD

	run r_req "$fm" "whoami" "use alice" "get city"
	assert_output $'USER mgr manager\nOK alice\nVALUE 7\nKolkata'
	run r_req "$fb" "whoami" "use alice" "get city"
	assert_output $'USER bob guest\nERR denied not a manager\nNOT_FOUND'
	# a guest cannot even learn which names exist; a manager can
	run r_req "$fb" "use nosuchuser"
	assert_output "ERR denied not a manager"
	run r_req "$fm" "use nosuchuser" "get city"
	assert_output $'ERR denied no such user\nVALUE 7\nKolkata'

	run ctl demote mgr
	assert_output "mgr is now a guest"
	run ctl promote bob
	assert_output "bob is now a manager"

	# the very next request of each open session sees the change
	run r_req "$fm" "get city" "put city London" "whoami"
	assert_output $'ERR denied not a manager\nERR denied not a manager\nUSER mgr guest'
	run r_req "$fb" "use alice" "get city" "whoami"
	assert_output $'OK alice\nVALUE 7\nKolkata\nUSER bob manager'
	# the demoted one still has its own store
	run r_req "$fm" "use mgr" "put own 1" "get own" "use alice"
	assert_output $'OK mgr\nOK\nVALUE 1\n1\nERR denied not a manager'
	run kv -u alice get city
	assert_output Kolkata

	audit_has ' user=mgr role=guest action=get target=alice key="city"$' 1
	audit_has ' user=mgr role=guest action=put target=alice key="city"$' 1
	audit_has ' user=mgr role=guest action=use target=alice key=""$' 1
	audit_has ' user=bob role=manager action=get target=alice key="city"$' 1
	audit_has 'peer=local user=[^ ]+ role=- action=demote target=mgr key=""$' 1
	audit_has 'peer=local user=[^ ]+ role=- action=promote target=bob key=""$' 1
	exec {fm}>&- {fb}>&-
}

@test "userdel of a user with a live session: next request ERR auth account removed, closed, keys gone" {
	local fc fw fa fm out

	kv_start
	run kv -u carol put k1 v1 put k2 v2
	assert_success
	kv_session alice
	kv_session mgr
	ctl promote mgr
	r_open carol
	fc=$R_FD
	r_open carol
	fw=$R_FD
	r_open alice
	fa=$R_FD
	r_open mgr
	fm=$R_FD
	run r_req "$fc" "get k1"
	assert_output $'VALUE 2\nv1'
	run r_req "$fm" "use carol" "get k2"
	assert_output $'OK carol\nVALUE 2\nv2'

	run ctl userdel carol
	assert_success
	assert_output "carol deleted, with its keys"

	# both of carol's sessions: refused at their next request, closed
	run r_req "$fc" "get k1"
	assert_output "ERR auth account removed"
	r_eof "$fc"
	run r_req "$fw" "whoami"
	assert_output "ERR auth account removed"
	r_eof "$fw"
	exec {fc}>&- {fw}>&-

	# a manager still pointed at carol's store writes nothing there
	run r_req "$fm" "put ghost 1" "get k1" "whoami"
	assert_output $'ERR denied no such user\nERR denied no such user\nUSER mgr manager'
	audit_has ' user=mgr role=manager action=put target=carol key="ghost"$' 1

	run ctl users
	refute_line --partial carol
	# alice's session is unaffected; the store holds no key any more
	run r_req "$fa" "put a 1" "stats"
	assert_line -n 0 OK
	assert_line "STAT items 1"
	exec {fa}>&-
	audit_has ' action=userdel target=carol key=""$' 1

	# dave may get carol's old slot: the manager's stale choice must not
	# reach dave's store either
	run kv -u dave put d 1
	assert_success
	run r_req "$fm" "put ghost 1" "get d"
	assert_output $'ERR denied no such user\nERR denied no such user'
	run kv -u dave get ghost get d
	assert_output $'\n1'

	# a new account of that name starts empty: the old keys are gone
	rm -f "$(kv_secret carol)"
	out=$(kv -u carol get k1 get k2 get ghost; echo "status $?")
	assert_equal "$out" $'\n\n\nstatus 0'
	run r_req "$fm" "use carol" "get k1" "use mgr"
	assert_output $'OK carol\nNOT_FOUND\nOK mgr'
	exec {fm}>&-
}

# ---- impersonation ---------------------------------------------------------------

@test "impersonation: another client claiming alice's name is refused; wrong password and unknown user read the same" {
	local alice_home=$HOME

	kv_start
	run kv -u alice put k v
	assert_success

	# a second client, other HOME, no secret for alice: it registers, and
	# the name is taken
	export HOME=$BATS_TEST_TMPDIR/home2
	mkdir -p "$HOME"
	run kv -u alice get k
	assert_equal "$status" 5
	assert_output "kvstore: 127.0.0.1:$KV_PORT: user alice is registered here with another secret"
	# it keeps no secret that does not work
	[[ ! -e $(kv_secret alice) ]]

	KVSTORE_PASSWORD=wrong run kv -u alice get k
	assert_equal "$status" 5
	assert_output "kvstore: 127.0.0.1:$KV_PORT: auth login failed"
	local wrong=$output
	KVSTORE_PASSWORD=wrong run kv -u nosuchuser get k
	assert_equal "$status" 5
	assert_equal "${output//nosuchuser/alice}" "$wrong"
	assert_output "kvstore: 127.0.0.1:$KV_PORT: auth login failed"

	# on the wire: byte-identical replies
	run kv_raw 'login alice 0000000000000000000000000000000000000000000000000000000000000000\nwhoami\n'
	assert_output $'ERR auth login failed\r\nUSER - none\r'
	run kv_raw 'login nosuchuser 0000000000000000000000000000000000000000000000000000000000000000\nwhoami\n'
	assert_output $'ERR auth login failed\r\nUSER - none\r'
	run kv_raw 'register alice whatever\n'
	assert_output $'ERR auth name taken\r'

	# alice's own client still works; her data was never touched
	export HOME=$alice_home
	run kv -u alice get k
	assert_success
	assert_output v
	audit_has ' user=alice role=- action=login-failed target=alice key=""$' 2
	audit_has ' user=nosuchuser role=- action=login-failed target=nosuchuser key=""$' 2
}

# ---- throttling --------------------------------------------------------------------

@test "throttling: failed logins in a row slow down; other clients are served meanwhile" {
	local i t0 t1 fb bg dt total=0 out=$BATS_TEST_TMPDIR/bg.out
	local -a took=()

	kv_start
	kv_session alice
	kv_session bob
	r_open bob		# a good client, logged in before the attack
	fb=$R_FD

	# delays before the check: 0, 100, 200, 400, 800 ms (then 1600 ...)
	for i in 1 2 3 4 5; do
		t0=$(now_ms)
		KVSTORE_PASSWORD=wrong run kv -u alice get x
		t1=$(now_ms)
		assert_equal "$status" 5
		assert_output "kvstore: 127.0.0.1:$KV_PORT: auth login failed"
		took+=($((t1 - t0)))
		total=$((total + t1 - t0))
	done
	echo "# failed logins took ${took[*]} ms" >&3
	((took[4] >= 780))
	((took[3] >= 380))
	((took[2] >= 180))
	((total >= 1480))

	# A sixth try for alice from another loopback address: the per-user
	# count (5) costs it 1.6 s.  Meanwhile the logged-in client and a
	# fresh login of bob from that address are served at once.
	t0=$(now_ms)
	printf 'login alice wrong\r\n' | timeout 10 nc -N -s 127.0.0.2 \
	    127.0.0.1 "$KV_PORT" >"$out" 2>&1 3>&- &
	bg=$!
	R_BG+=("$bg")
	sleep 0.1
	t1=$(now_ms)
	run r_req "$fb" "ping" "put k v" "get k"
	assert_output $'PONG\nOK\nVALUE 1\nv'
	dt=$(($(now_ms) - t1))
	kv_alive "$bg"		# still waiting out its delay
	((dt < 2000))
	t1=$(now_ms)
	run bash -c 'printf "login bob %s\r\nget k\r\n" "$1" |
	    timeout 10 nc -N -s 127.0.0.2 127.0.0.1 "$2" | tr -d "\r"' _ \
	    "$(<"$(kv_secret bob)")" "$KV_PORT"
	dt=$(($(now_ms) - t1))
	assert_output $'OK bob guest\nVALUE 1\nv'
	((dt < 3000))
	wait "$bg"
	dt=$(($(now_ms) - t0))
	assert_equal "$(tr -d '\r' <"$out")" "ERR auth login failed"
	((dt >= 1550))

	# Per address too: a correct login from 127.0.0.1 now waits (5
	# failures from there: 1.6 s), and succeeds; a success does not clear the address (logins.bats).
	t0=$(now_ms)
	run kv -u bob get k
	dt=$(($(now_ms) - t0))
	assert_success
	assert_output v
	((dt >= 1550))
	t0=$(now_ms)
	run kv -u bob get k
	assert_output v
	echo "# then a good login took $(($(now_ms) - t0)) ms" >&3

	run r_req "$fb" "stats"
	assert_line "STAT auth_failures 6"
	exec {fb}>&-
	audit_has ' peer=127\.0\.0\.1:[0-9]+ user=alice role=- action=login-failed target=alice key=""$' 5
	audit_has ' peer=127\.0\.0\.2:[0-9]+ user=alice role=- action=login-failed target=alice key=""$' 1
	[[ $(grep -c 'audit: .* action=login-failed' "$KV_LOG") -eq 6 ]]
}

# ---- quotas ------------------------------------------------------------------------

@test "quotas: -q 3: alice's 4th key is refused, bob still writes, replacing works, managers' stores are exempt" {
	kv_start -q 3
	run kv -u alice put a 1 put b 2 put c 3
	assert_success
	run kv -u alice put d 4
	assert_equal "$status" 1
	assert_output "kvstore: 127.0.0.1:$KV_PORT: quota over the user's quota"
	run kv_raw_lines_as alice 'put d 4\nget d\n'
	assert_output $'ERR quota over the user\'s quota\nNOT_FOUND'

	# replacing a key at the quota is no new key
	run kv -u alice put a 11 get a
	assert_success
	assert_output 11

	# bob is not affected
	run kv -u bob put a 1 put b 2 put c 3 get c
	assert_success
	assert_output 3

	# a manager's own store has no quota...
	kv_session boss
	ctl promote boss
	run kv -u boss put 1 1 put 2 2 put 3 3 put 4 4 put 5 5 get 5
	assert_success
	assert_output 5
	# ...but alice's store keeps hers, whoever writes into it
	run kv -u boss use alice put e 5
	assert_equal "$status" 1
	assert_output "kvstore: 127.0.0.1:$KV_PORT: quota over the user's quota"
	run kv -u boss use alice del a put e 5 get e
	assert_success
	assert_output 5

	run ctl users
	assert_line --regexp '^alice guest keys 3 bytes [0-9]+$'
	assert_line --regexp '^bob guest keys 3 bytes [0-9]+$'
	assert_line --regexp '^boss manager keys 5 bytes [0-9]+$'
}

# ---- the users file ------------------------------------------------------------------

# users_file_ok FILE: mode 0600 and every line an account or a comment.
users_file_ok() {
	local line n=0
	local -a lines

	[[ $(stat -c %a "$1") == 600 ]] || {
		echo "users file $1 is mode $(stat -c %a "$1")" >&2
		return 1
	}
	mapfile -t lines <"$1" || return 1
	for line in "${lines[@]}"; do
		if [[ $line =~ ^[A-Za-z0-9._-]+:(guest|manager):\$y\$[^:]+$ ]]; then
			n=$((n + 1))
		elif [[ $line != '#'* ]]; then
			echo "users file $1: bad line '$line'" >&2
			return 1
		fi
	done
	((n > 0)) || {
		echo "users file $1: no accounts" >&2
		return 1
	}
}

@test "users file: refused unless mode 0600 and ours" {
	local f=$BATS_TEST_TMPDIR/users

	kv_env
	: >"$f"
	for mode in 644 640 604; do
		chmod "$mode" "$f"
		run timeout 10 "$KVSTORED" -f -p 0 -l 127.0.0.1 -s "$KV_SHM" \
		    -m 16 -u "$(id -un)" -A "$f" 3>&-
		assert_equal "$status" 1
		assert_output --partial "users file $f is mode $mode"
		assert_output --partial "chmod 600"
		refute_output --partial "start:"
	done
	if [[ $(id -u) -eq 0 ]] && id nobody >/dev/null 2>&1; then
		chmod 600 "$f"
		chown nobody "$f"
		run timeout 10 "$KVSTORED" -f -p 0 -l 127.0.0.1 -s "$KV_SHM" \
		    -m 16 -u "$(id -un)" -A "$f" 3>&-
		assert_equal "$status" 1
		assert_output --partial "is owned by uid $(id -u nobody)"
		chown "$(id -u)" "$f"
	fi
	chmod 600 "$f"
	kv_start -A "$f"
	run kv -u alice put k v
	assert_success
}

@test "users file: accounts are written as name:role:hash, 0600, and come back after a restart" {
	local f=$BATS_TEST_TMPDIR/users old_port

	kv_start -A "$f"
	[[ ! -e $f ]]
	run kv -u alice put k v
	assert_success
	run kv -u bob put k v
	assert_success
	users_file_ok "$f"
	run grep -v '^#' "$f"
	assert_line -n 0 --regexp '^alice:guest:\$y\$[./A-Za-z0-9$]+$'
	assert_line -n 1 --regexp '^bob:guest:\$y\$[./A-Za-z0-9$]+$'
	assert_equal "${#lines[@]}" 2
	# the daemon does not write the file for a role change; kvstorectl
	# does (-A: run as root the daemon is root's, and kvstorectl takes no
	# path from a segment of root's; trust.bats covers the path that
	# kvstorectl reads from the segment)
	run ctl -A "$f" promote bob
	assert_success
	grep -q '^bob:manager:\$y\$' "$f"
	users_file_ok "$f"

	# restart on a fresh segment: kv_stop removes it (kvstored -R)
	old_port=$KV_PORT
	kv_stop
	[[ ! -e /dev/shm/${KV_SHM#/} ]]
	kv_start -A "$f"
	run ctl users
	assert_output $'alice guest keys 0 bytes 0\nbob manager keys 0 bytes 0'
	# the client's old secrets (kept per host and port) log in again
	for u in alice bob; do
		cp -p "$HOME/.kvstore/secrets/127.0.0.1,$old_port,$u" "$(kv_secret "$u")"
	done
	run kv -u alice put k again get k
	assert_success
	assert_output again
	run kv -u bob use alice get k
	assert_success
	assert_output again
	run kv_raw_lines_as alice 'whoami\n'
	assert_output "USER alice guest"
	# a new client under the name is still refused
	HOME=$BATS_TEST_TMPDIR/other
	mkdir -p "$HOME"
	run kv -u alice get k
	assert_equal "$status" 5
	assert_output --partial "user alice is registered here with another secret"
}

@test "users file: atomic rewrite under 100 promote/demote cycles with kvstorectl and the daemon SIGKILLed" {
	local f=$BATS_TEST_TMPDIR/users stop=$BATS_TEST_TMPDIR/stop
	local bad=$BATS_TEST_TMPDIR/bad samples=$BATS_TEST_TMPDIR/samples
	local i verb p rc reg sampler kids killed=0 k old_port

	kv_start -A "$f"
	kv_session u
	users_file_ok "$f"

	# Sample the file at random moments: always whole, always 0600.
	(
		n=0
		while [[ ! -e $stop ]]; do
			users_file_ok "$f" 2>>"$bad" || echo "sample $n" >>"$bad"
			n=$((n + 1))
			echo "$n" >"$samples"
			sleep 0.01
		done
	) 3>&- &
	sampler=$!
	R_BG+=("$sampler")
	# Registrations meanwhile: each one rewrites the file from a daemon child.
	(
		for ((k = 0; k < 20; k++)); do
			timeout 10 "$KVSTORE" -u "r$k" 127.0.0.1 "$KV_PORT" \
			    get x >/dev/null 2>&1
		done
	) 3>&- &
	reg=$!
	R_BG+=("$reg")

	# The daemon does not write the file for promotions: kvstorectl does
	# (temp file, fsync, rename, fsync dir, under PATH.lock).  Half of the
	# kvstorectl runs are SIGKILLed a few ms in, at any point of that.
	for ((i = 0; i < 100; i++)); do
		if ((i == 60)); then
			# and the daemon itself dies by SIGKILL mid-way
			wait "$reg" || true
			kids=$(pgrep -P "$KV_PID" || true)
			kill -KILL "$KV_PID"
			for p in $kids; do kill -KILL "$p" 2>/dev/null || true; done
			users_file_ok "$f"
		fi
		for verb in promote demote; do
			"$KVSTORECTL" -s "$KV_SHM" -A "$f" "$verb" u \
			    >/dev/null 2>&1 3>&- &
			p=$!
			if ((RANDOM % 2)); then
				sleep "0.00$((RANDOM % 10))"
				kill -KILL "$p" 2>/dev/null || true
			fi
			rc=0
			wait "$p" || rc=$?
			((rc != 137)) || killed=$((killed + 1))
		done
		((i % 10)) || users_file_ok "$f"
	done
	touch "$stop"
	wait "$sampler"
	echo "# $killed kvstorectl runs SIGKILLed, $(<"$samples") samples of the file" >&3
	if [[ -s $bad ]]; then
		cat "$bad" >&2
		false
	fi
	users_file_ok "$f"
	# leftovers of killed writers are never wider than 0600
	for p in "$f".*; do
		[[ -e $p ]] || continue
		[[ $(stat -c %a "$p") == 600 ]] || {
			echo "$p is mode $(stat -c %a "$p")" >&2
			false
		}
	done
	# all 21 accounts are in the file, each once
	[[ $(grep -c ':\$y\$' "$f") -eq 21 ]]
	[[ $(cut -d: -f1 "$f" | grep -v '^#' | sort | uniq -d | wc -l) -eq 0 ]]

	# a clean promotion is recorded, and a restart on a fresh segment
	# (kvstored -R) loads it
	run ctl -A "$f" promote u
	assert_output "u is now a manager"
	grep -q '^u:manager:\$y\$' "$f"
	old_port=$KV_PORT
	kv_stop
	kv_start -A "$f"
	run ctl users
	assert_line "u manager keys 0 bytes 0"
	assert_equal "$(grep -c ' guest keys ' <<<"$output")" 20
	cp -p "$HOME/.kvstore/secrets/127.0.0.1,$old_port,u" "$(kv_secret u)"
	run kv -u u use r0 get x
	assert_success
}

# ---- interactive mode --------------------------------------------------------------

@test "interactive mode through a pty: the prompt shows the role and changes after a promotion" {
	local in=$BATS_TEST_TMPDIR/pty.in out=$BATS_TEST_TMPDIR/pty.out sp w i

	kv_start
	kv_session bob
	run -0 kv -u bob put city Kolkata
	mkfifo "$in"
	# script(1) gives the client a real terminal on its stdin
	script -qfc "$KVSTORE -u alice 127.0.0.1 $KV_PORT" /dev/null \
	    <"$in" >"$out" 2>&1 3>&- &
	sp=$!
	R_BG+=("$sp")
	exec {w}>"$in"

	wait_for "$out" 'alice@guest$ '
	printf 'help\n' >&"$w"
	wait_for "$out" 'use USER'
	run cat "$out"
	assert_output --partial 'put KEY VALUE'
	assert_output --partial 'get KEY'
	assert_output --partial 'del KEY'
	assert_output --partial 'help, quit'

	printf 'put motto "Unity in diversity"\nget motto\n' >&"$w"
	# (the help text has it too, but quoted)
	wait_for "$out" $'Unity in diversity\r\n'
	# a refusal is printed and the prompt goes on
	printf 'use bob\n' >&"$w"
	wait_for "$out" 'kvstore: denied not a manager'

	run ! grep -q "alice@manager#" "$out"
	run ctl promote alice
	assert_output "alice is now a manager"
	printf '\n' >&"$w"
	wait_for "$out" 'alice@manager# '
	printf 'use bob\nget city\n' >&"$w"
	wait_for "$out" $'Kolkata\r\n'
	printf 'quit\n' >&"$w"
	exec {w}>&-
	for ((i = 0; i < 100; i++)); do
		kv_alive "$sp" || break
		sleep 0.05
	done
	run ! kv_alive "$sp"
	audit_has ' user=alice role=manager action=get target=bob key="city"$' 1
}

@test "interactive mode without a terminal: commands from stdin, same output and exit codes" {
	kv_start
	run bash -c 'printf "put a 1\nget a\n" | "$1" -u alice 127.0.0.1 "$2"' _ \
	    "$KVSTORE" "$KV_PORT"
	assert_success
	assert_output 1
	# (an absent key prints an empty line; the echo keeps it in $output)
	run bash -c 'printf "put b \"x y\"\nget b\nget nope\n" |
	    "$1" -u alice 127.0.0.1 "$2"; echo "status $?"' _ "$KVSTORE" \
	    "$KV_PORT"
	assert_success
	assert_output $'x y\n\nstatus 0'
	# a server error ends it with the argument form's status
	run bash -c 'printf "use bob\nget a\n" | "$1" -u alice 127.0.0.1 "$2"' _ \
	    "$KVSTORE" "$KV_PORT"
	assert_equal "$status" 1
	assert_output "kvstore: 127.0.0.1:$KV_PORT: denied not a manager"
	run bash -c 'printf "frobnicate a\n" | "$1" -u alice 127.0.0.1 "$2"' _ \
	    "$KVSTORE" "$KV_PORT"
	assert_equal "$status" 2
}

@test "audit lines escape keys and cut long ones" {
	local fm long

	kv_start
	kv_session alice
	kv_session mgr
	ctl promote mgr
	r_open mgr
	fm=$R_FD
	long=$(printf 'k%.0s' {1..100})
	run r_req "$fm" "use alice" 'get "a\"b\\c\x01\x7f\xc3\xa9 d"' "get $long"
	assert_output $'OK alice\nNOT_FOUND\nNOT_FOUND'
	exec {fm}>&-
	audit_has ' user=mgr role=manager action=get target=alice key="a\\"b\\\\c\\x01\\x7f\\xc3\\xa9\\x20d"$' 1
	audit_has " user=mgr role=manager action=get target=alice key=\"$(printf 'k%.0s' {1..64})\\.\\.\\.\"\$" 1
	# one line each, in the log too: no raw control byte got through
	run grep -c 'audit: .*action=get target=alice' "$KV_LOG"
	assert_output 2
	run grep -c $'\x01' "$KV_LOG"
	assert_output 0
}

@test "registration limits: -g per address per minute, -N accounts" {
	kv_start -g 2
	run kv -u a1 put k v
	assert_success
	run kv -u a2 put k v
	assert_success
	run kv -u a3 put k v
	assert_equal "$status" 1
	assert_output "kvstore: 127.0.0.1:$KV_PORT: denied too many registrations from this address"
	[[ ! -e $(kv_secret a3) ]]
	audit_has ' user=a3 role=- action=register-throttled target=a3 key=""$' 1
	# logging in is not registering
	run kv -u a1 get k
	assert_output v
	kv_stop

	kv_start -N 2
	run kv -u b1 put k v
	assert_success
	run kv -u b2 put k v
	assert_success
	run kv -u b3 put k v
	assert_equal "$status" 1
	assert_output "kvstore: 127.0.0.1:$KV_PORT: full too many accounts"
	run ctl users
	assert_line -n 0 --regexp '^b1 guest keys 1 bytes [0-9]+$'
	assert_line -n 1 --regexp '^b2 guest keys 1 bytes [0-9]+$'
	assert_equal "${#lines[@]}" 2
}

@test "users file: SIGHUP reloads it into the live segment" {
	local f=$BATS_TEST_TMPDIR/users fa

	kv_start -A "$f"
	kv_session alice
	r_open alice
	fa=$R_FD
	run r_req "$fa" "whoami"
	assert_output "USER alice guest"
	# the operator edits the file by hand (as the daemon's user) ...
	sed -i 's/^alice:guest:/alice:manager:/' "$f"
	chmod 600 "$f"
	kill -HUP "$KV_PID"
	kv_wait_log "reload: users file $f, 1 accounts"
	# ... and the open session is a manager at its next request
	run r_req "$fa" "whoami"
	assert_output "USER alice manager"
	exec {fa}>&-
	# a file made readable by others is not loaded, and the daemon lives on
	chmod 644 "$f"
	sed -i 's/^alice:manager:/alice:guest:/' "$f"
	kill -HUP "$KV_PID"
	kv_wait_log "reload: .*chmod 600"
	kv_alive "$KV_PID"
	run kv_raw_lines_as alice 'whoami\n'
	assert_output "USER alice manager"
}

# ---- closed registration ---------------------------------------------------------------

@test "closed registration: unknown names refused; operator-made accounts log in with a 0600 password file" {
	local pw=$BATS_TEST_TMPDIR/pw

	kv_start -r
	run kv -u dave get k
	assert_equal "$status" 1
	assert_output "kvstore: 127.0.0.1:$KV_PORT: denied registration closed"
	[[ ! -e $(kv_secret dave) ]]
	run kv_raw 'register dave s3cret\nwhoami\n'
	assert_output $'ERR denied registration closed\r\nUSER - none\r'
	audit_has ' user=dave role=- action=register-denied target=dave key=""$'

	printf 'carols-pw\n' >"$pw"
	chmod 600 "$pw"
	run ctl -p "$pw" useradd carol
	assert_success
	assert_output "carol added as guest"
	run ctl -p "$pw" useradd boss manager
	assert_output "boss added as manager"
	run ctl users
	assert_output $'carol guest keys 0 bytes 0\nboss manager keys 0 bytes 0'

	run kv -u carol --password-file "$pw" put k v get k
	assert_success
	assert_output v
	run kv -u boss --password-file "$pw" use carol get k
	assert_success
	assert_output v
	KVSTORE_PASSWORD=carols-pw run kv -u carol get k
	assert_success
	assert_output v
	KVSTORE_PASSWORD=nope run kv -u carol get k
	assert_equal "$status" 5
	assert_output "kvstore: 127.0.0.1:$KV_PORT: auth login failed"
	# no trust-on-first-use secret was made for a password login
	[[ ! -e $(kv_secret carol) ]]

	chmod 644 "$pw"
	run kv -u carol --password-file "$pw" get k
	assert_equal "$status" 5
	assert_output "kvstore: 127.0.0.1:$KV_PORT: $pw must be yours and mode 0600"
	run ctl -p "$pw" useradd erin
	assert_equal "$status" 1
	assert_output "kvstorectl: $pw must not be readable by group or others"
	run ctl users
	refute_line --partial erin
}

# ---- before login ----------------------------------------------------------------------

@test "before login: short lines only, login required, and a login deadline (-L 1)" {
	local long fd t0 dt

	kv_start -L 1
	long=$(printf 'x%.0s' {1..600})
	run kv_raw "$long\nping\n"
	assert_output $'ERR limit request line longer than 512 bytes before login\r'
	run kv_raw "login $long\n"
	assert_output $'ERR limit request line longer than 512 bytes before login\r'
	# a literal before login is 512 bytes at most; a longer one is skipped
	run kv_raw "login a {600}\r\n$long\r\nping\r\n"
	assert_output $'ERR limit value longer than 512 bytes\r\nPONG\r'
	run kv_raw 'get x\nput x 1\nstats\nuse bob\nwhoami\nping\nquit\nping\n'
	assert_output $'ERR auth login required\r\nERR auth login required\r\nERR auth login required\r\nERR auth login required\r\nUSER - none\r\nPONG\r\nBYE\r'

	# a connection that never logs in is told and closed after ~1 s
	exec {fd}<>"/dev/tcp/127.0.0.1/$KV_PORT"
	t0=$(now_ms)
	run r_line "$fd"
	dt=$(($(now_ms) - t0))
	assert_output "ERR timeout login"
	r_eof "$fd"
	exec {fd}>&-
	echo "# login deadline hit after $dt ms" >&3
	((dt >= 900 && dt <= 3000))

	# a logged-in one outlives the deadline
	r_open alice
	fd=$R_FD
	sleep 1.5
	run r_req "$fd" ping
	assert_output PONG
	exec {fd}>&-
}
