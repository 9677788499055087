#!/usr/bin/env bats
# gate.bats - issue 13, one gate: roles and quotas through the memcached
# listener, held to what the native protocol does.  The isolation matrix
# of roles.bats on the memcached listener, retrieval lines that span a
# demotion or the deletion of their store, and one table of quota cases run
# through both protocols.
#
# Every test starts its own daemon with its own segment and HOME.

bats_require_minimum_version 1.5.0
load helpers
load conn

teardown() {
	c_teardown
}

# ---- the isolation matrix on the memcached listener --------------------------

G_CMDS=(get gets gat gats set add replace append prepend cas delete incr
    decr touch stats flush_all)

# The columns: who sends the request, and to which store.
#	guest-own	guest alice, logged in as alice
#	guest-other	guest alice, whose login as alice:bob was refused
#	mgr-own		manager mgr, logged in as mgr
#	mgr-other	manager mgr, logged in as mgr:alice
#	demoted-own	dora, logged in as dora while a manager, then demoted
#	demoted-other	dora, logged in as dora:bob while a manager, then demoted
#	deleted-own	erin, logged in as erin, then userdel erin
#	deleted-other	manager mgr, logged in as mgr:carol, then userdel carol
#			and a new account carol made by the operator
G_COLS=(guest-own guest-other mgr-own mgr-other demoted-own demoted-other
    deleted-own deleted-other)
declare -gA G_TARGET=([guest-own]=alice [guest-other]=bob [mgr-own]=mgr
    [mgr-other]=alice [demoted-own]=dora [demoted-other]=bob
    [deleted-own]=erin [deleted-other]=carol)
# Each store's seed value: a number (for incr/decr) that names the store,
# so that a value of the wrong store shows.
declare -gA G_SEED=([alice]=1001 [bob]=2002 [mgr]=3003 [dora]=4004
    [carol]=5005 [erin]=6006)

# g_request CMD KEY CAS: the request a cell sends (printf format).
g_request() {
	case $1 in
	get | gets) echo "$1 $2\\r\\n" ;;
	gat | gats) echo "$1 1000 $2\\r\\n" ;;
	set | add | replace) echo "$1 $2 0 0 3\\r\\nnew\\r\\n" ;;
	append | prepend) echo "$1 $2 0 0 1\\r\\nx\\r\\n" ;;
	cas) echo "cas $2 0 0 3 $3\\r\\nnew\\r\\n" ;;
	delete) echo "delete $2\\r\\n" ;;
	incr | decr) echo "$1 $2 5\\r\\n" ;;
	touch) echo "touch $2 1000\\r\\n" ;;
	stats) echo "stats\\r\\n" ;;
	flush_all) echo "flush_all\\r\\n" ;;
	esac
}

# g_hit CMD KEY VALUE: the exact reply of an allowed cell on a store where
# KEY holds VALUE with flags 0 and no expiry (add: KEY is absent; the cas
# of gets/gats shows as C; stats is checked apart).
g_hit() {
	case $1 in
	get | gat) printf 'VALUE %s 0 %d\n%s\nEND' "$2" "${#3}" "$3" ;;
	gets | gats) printf 'VALUE %s 0 %d C\n%s\nEND' "$2" "${#3}" "$3" ;;
	set | add | replace | append | prepend | cas) echo STORED ;;
	delete) echo DELETED ;;
	incr) echo $(($3 + 5)) ;;
	decr) echo $(($3 - 5)) ;;
	touch) echo TOUCHED ;;
	flush_all) echo OK ;;
	esac
}

# g_prelogin CMD: the replies of a connection that is not logged in (its
# login was refused) to CMD's request: a set is a login attempt whose data
# is no "user secret"; another storage command is refused and its data
# block dropped with it, so that the next request is read from the right
# byte; the rest are refused.
g_prelogin() {
	case $1 in
	set) echo "CLIENT_ERROR bad authentication token format" ;;
	*) echo "CLIENT_ERROR unauthenticated" ;;
	esac
}

# g_after CMD KEY VALUE CHANGED: what the store's owner sees with the native
# protocol afterwards (get KEY, ttl KEY); CHANGED 0 for a refused cell.
g_after() {
	local v=$3

	if [[ $4 == 0 ]]; then
		if [[ $1 == add ]]; then
			printf 'NOT_FOUND\nNOT_FOUND'
		else
			printf 'VALUE %d\n%s\nTTL -1' "${#v}" "$v"
		fi
		return
	fi
	case $1 in
	set | add | replace | cas) v=new ;;
	append) v=${v}x ;;
	prepend) v=x$v ;;
	incr) v=$((v + 5)) ;;
	decr) v=$((v - 5)) ;;
	delete | flush_all)
		printf 'NOT_FOUND\nNOT_FOUND'
		return
		;;
	esac
	case $1 in
	gat | gats | touch) printf 'VALUE %d\n%s\nTTL 1000' "${#v}" "$v" ;;
	*) printf 'VALUE %d\n%s\nTTL -1' "${#v}" "$v" ;;
	esac
}

# g_state FD KEY: get KEY, ttl KEY on a native session of the store's owner
# (TTL 999 counts as 1000: a second may tick between the change and this).
g_state() {
	nv_req "$1" "get $2" "ttl $2" | sed 's/^TTL 999$/TTL 1000/'
}

# g_replies N FD: read N memcached replies from FD.
g_replies() {
	local i

	for ((i = 0; i < $1; i++)); do
		mc_reply "$2" || return 1
	done
}

@test "memcached isolation matrix: every command x own/other store x guest/manager/demoted/deleted target, exact replies and audit" {
	local cmd col key target req want fd n cells=0 u cas pw
	local -a seed
	local -A cfd vfd efd

	mc_start
	for u in alice bob mgr dora erin carol; do
		kv_session "$u"
	done
	run ctl promote mgr
	assert_output "mgr is now a manager"
	run ctl promote dora
	assert_output "dora is now a manager"

	# Seed every cell's key in the store it targets (not add's: it must
	# be absent), value the store's seed.
	for u in alice bob mgr dora erin carol; do
		seed=()
		for col in "${G_COLS[@]}"; do
			[[ ${G_TARGET[$col]} == "$u" ]] || continue
			for cmd in "${G_CMDS[@]}"; do
				[[ $cmd == add ]] && continue
				seed+=("put k.$cmd.$col ${G_SEED[$u]}")
			done
		done
		nv_open "$u"
		run nv_req "$C_FD" "${seed[@]}"
		assert_success
		assert_output "$(printf 'OK\n%.0s' "${seed[@]}")"
		c_close "$C_FD"
	done

	# The connections of each column, logged in before the changes.
	mc_open_ok alice
	cfd[guest-own]=$C_FD
	mc_open_ok mgr
	cfd[mgr-own]=$C_FD
	mc_open_ok mgr:alice
	cfd[mgr-other]=$C_FD
	mc_open_ok dora
	cfd[demoted-own]=$C_FD
	mc_open_ok dora:bob
	cfd[demoted-other]=$C_FD
	mc_open_ok mgr:carol
	cfd[deleted-other]=$C_FD
	# a deleted account's connection is closed at its first request:
	# one connection per command
	for cmd in "${G_CMDS[@]}"; do
		mc_open_ok erin
		efd[$cmd]=$C_FD
	done

	run ctl demote dora
	assert_output "dora is now a guest"
	run ctl userdel erin
	assert_output "erin deleted, with its keys"
	run ctl userdel carol
	assert_output "carol deleted, with its keys"
	# a new carol, made by the operator: likely in the old one's slot
	pw=$BATS_TEST_TMPDIR/carol.pw
	printf 'new-carol-pw\n' >"$pw"
	chmod 600 "$pw"
	run ctl -p "$pw" useradd carol
	assert_output "carol added as guest"

	# The owners' native sessions, to seed the new carol and to look.
	for u in alice bob mgr dora; do
		nv_open "$u"
		vfd[$u]=$C_FD
	done
	nv_open carol new-carol-pw
	vfd[carol]=$C_FD
	seed=()
	for cmd in "${G_CMDS[@]}"; do
		[[ $cmd == add ]] && continue
		seed+=("put k.$cmd.deleted-other ${G_SEED[carol]}")
	done
	run nv_req "${vfd[carol]}" "${seed[@]}"
	assert_output "$(printf 'OK\n%.0s' "${seed[@]}")"

	for cmd in "${G_CMDS[@]}"; do
		for col in "${G_COLS[@]}"; do
			key=k.$cmd.$col
			target=${G_TARGET[$col]}
			if [[ $cmd == flush_all && -n ${vfd[$target]-} ]]; then
				# an earlier cell may have emptied the store
				run nv_req "${vfd[$target]}" \
				    "put $key ${G_SEED[$target]}"
				assert_output OK
			fi
			# cas: the item's own unique where the cell may use it
			cas=1
			if [[ $cmd == cas && $col == @(guest-own|mgr-own|mgr-other|demoted-own) ]]; then
				mc_open_ok "$target"
				run mc_req_raw "$C_FD" "gets $key\\r\\n"
				c_close "$C_FD"
				cas=$(sed -n 's/^VALUE [^ ]* 0 [0-9]* \([0-9]*\)$/\1/p' <<<"$output")
				[[ -n $cas ]]
			fi
			req=$(g_request "$cmd" "$key" "$cas")
			fd=${cfd[$col]-}
			[[ $col == deleted-own ]] && fd=${efd[$cmd]}
			n=1
			[[ $col == guest-other ]] && n=$(g_prelogin "$cmd" | grep -c "")
			if [[ $col == guest-other ]]; then
				# a new connection (-L would close the old one):
				# the refused login again, then the request
				mc_open alice:bob
				assert_equal "$MC_LOGIN" "CLIENT_ERROR denied not a manager"
				fd=$C_FD
			fi
			c_send "$fd" "$req"
			run g_replies "$n" "$fd"
			assert_success
			cells=$((cells + 1))
			output=$(sed -E 's/^(VALUE [^ ]+ [0-9]+ [0-9]+) [0-9]+$/\1 C/' <<<"$output")

			case $col in
			guest-other)
				assert_output "$(g_prelogin "$cmd")"
				c_close "$fd"
				;;
			demoted-other)
				assert_output "CLIENT_ERROR denied not a manager"
				;;
			deleted-other)
				assert_output "CLIENT_ERROR denied no such user"
				;;
			deleted-own)
				assert_output "SERVER_ERROR account removed"
				c_eof "$fd"
				c_close "$fd"
				continue
				;;
			*)
				if [[ $cmd == stats ]]; then
					read -r _ _ _ u _ _ < <(ctl users | grep "^$target ")
					assert_line "STAT kvstore_user $target"
					assert_line "STAT curr_items $u"
					assert_equal "${lines[-1]}" END
					[[ $(grep -c '^STAT ' <<<"$output") -eq $((${#lines[@]} - 1)) ]]
				else
					assert_output "$(g_hit "$cmd" "$key" "${G_SEED[$target]}")"
				fi
				;;
			esac

			# what the store's owner sees afterwards
			run g_state "${vfd[$target]}" "$key"
			assert_success
			if [[ $col == *-own || $col == mgr-other ]]; then
				assert_output "$(g_after "$cmd" "$key" "${G_SEED[$target]}" 1)"
			else
				assert_output "$(g_after "$cmd" "$key" "${G_SEED[$target]}" 0)"
			fi
		done
	done
	for fd in "${cfd[@]}" "${vfd[@]}"; do
		c_close "$fd"
	done
	run ctl users
	refute_line --partial erin

	# The audit ring: the manager's use of alice's store and every
	# request it made there, each with its key; the demoted manager's and
	# the stale manager's refused requests, each with its key; the guest's
	# 16 refused logins to bob's store; nothing about own stores.
	audit_has ' user=mgr role=manager action=use target=alice key=""$' 1
	audit_has ' user=dora role=manager action=use target=bob key=""$' 1
	audit_has ' user=mgr role=manager action=use target=carol key=""$' 1
	audit_has ' user=alice role=guest action=use target=bob key=""$' 16
	for cmd in "${G_CMDS[@]}"; do
		key="k.$cmd.mgr-other"
		[[ $cmd == @(stats|flush_all) ]] && key=
		audit_has " user=mgr role=manager action=$cmd target=alice key=\"$key\"\$" 1
		key="k.$cmd.demoted-other"
		[[ $cmd == @(stats|flush_all) ]] && key=
		audit_has " user=dora role=guest action=$cmd target=bob key=\"$key\"\$" 1
		key="k.$cmd.deleted-other"
		[[ $cmd == @(stats|flush_all) ]] && key=
		audit_has " user=mgr role=manager action=$cmd target=carol key=\"$key\"\$" 1
	done
	audit_has 'key="k\.[a-z_]+\.[a-z]+-own"' 0
	# erin's account was deleted under its session: only its register.
	audit_has ' user=erin role=[a-z-]+ action=(get|gets|gat|gats|set|add|replace|append|prepend|cas|delete|incr|decr|touch|flush_all|stats) ' 0
	# the same lines reach the daemon's log
	grep -Eq 'audit: time=.* user=mgr role=manager action=gets target=alice key="k.gets.mgr-other"' "$KV_LOG"
	grep -Eq 'audit: time=.* user=dora role=guest action=cas target=bob key="k.cas.demoted-other"' "$KV_LOG"

	[[ $cells -eq 128 ]]
	echo "# matrix=16 commands x 8 columns (guest, manager, demoted manager, deleted account or store; own and other store) = $cells cells" >&3
}

# ---- a retrieval line that spans a change of role or store ---------------------

# span VERB CHANGE: manager bob, logged in on the memcached listener as
# bob:alice, sends "VERB [1000] k1 k2 " without its line end, reads the
# values of k1 and k2 (the server answers keys as they arrive), then the
# operator makes CHANGE (demote: bob is a guest; userdel: alice's account
# is deleted and a new alice made, most likely in its slot, with k3 and k4
# of its own), then the line ends with "k3 k4".  From k3 on nothing of the
# other store is sent: the line ends with the denial instead of END.
span() {
	local verb=$1 change=$2 fd pw=$BATS_TEST_TMPDIR/alice.pw head deny
	local line k role big
	local -a got

	mc_start
	kv_session bob
	run ctl promote bob
	assert_output "bob is now a manager"
	# k1 and k2 are big enough (2 x 140000 bytes) that even a server that
	# holds small replies back until the line ends has written them out
	big=$(head -c 140000 /dev/zero | tr '\0' a)
	nv_open alice
	c_send "$C_FD" 'put k1 {140001}\r\n1%s\r\nput k2 {140001}\r\n2%s\r\n' \
	    "$big" "$big"
	run nv_reply "$C_FD"
	assert_output OK
	run nv_reply "$C_FD"
	assert_output OK
	run nv_req "$C_FD" "put k3 v3" "put k4 v4"
	assert_output $'OK\nOK'
	c_close "$C_FD"
	mc_open_ok bob:alice
	fd=$C_FD

	# 2100 spaces after the verb: a server that waits for the line end of
	# short lines only (memcached's 2048 bytes) starts this one at once
	head="$verb"
	[[ $verb == gat* ]] && head+=" 1000"
	head+=$(printf '%2100s' '')
	c_send "$fd" '%sk1 k2 ' "$head"
	for k in 1 2; do
		run c_line "$fd"
		assert_output --regexp "^VALUE k$k 0 140001( [0-9]+)?\$"
		line=$(c_line "$fd")
		[[ $line == "$k$big" ]] || {
			echo "k$k: not its value (${#line} bytes)" >&2
			false
		}
	done

	case $change in
	demote)
		run ctl demote bob
		assert_output "bob is now a guest"
		deny="CLIENT_ERROR denied not a manager"
		role=guest
		;;
	userdel)
		run ctl userdel alice
		assert_output "alice deleted, with its keys"
		printf 'new-alice-pw\n' >"$pw"
		chmod 600 "$pw"
		run ctl -p "$pw" useradd alice
		assert_output "alice added as guest"
		run kv -u alice --password-file "$pw" put k3 new3 put k4 new4
		assert_success
		deny="CLIENT_ERROR denied no such user"
		role=manager
		;;
	esac

	c_send "$fd" 'k3 k4\r\n'
	run c_line "$fd"
	assert_output "$deny"
	# the connection goes on, and stays refused on that store
	head=$verb
	[[ $verb == gat* ]] && head+=" 1000"
	run mc_req_raw "$fd" "$head k1\\r\\nversion\\r\\n"
	assert_output "$deny"
	run mc_reply "$fd"
	assert_output --regexp '^VERSION '
	c_close "$fd"

	# audited: the denial, with the key it was noticed at, before the
	# request's own line, which names the keys served (and only those)
	audit_has " user=bob role=$role action=$verb target=alice key=\"k3\"\$" 1
	audit_has " user=bob role=[a-z]+ action=$verb target=alice key=\"k1 k2\"\$" 1
	audit_has " action=$verb target=alice key=\"[^\"]*k4" 0
	mapfile -t got < <(ctl log 256 | grep -E " action=$verb target=alice key=\"(k3|k1 k2)\"")
	[[ ${#got[@]} -eq 2 && ${got[0]} == *'key="k3"' ]] || {
		echo "not the denial, then the request's line:" >&2
		printf '%s\n' "${got[@]}" >&2
		false
	}
	# the same lines in the daemon's log
	grep -q "audit: .* user=bob role=$role action=$verb target=alice key=\"k3\"" "$KV_LOG"
}

@test "memcached get line spanning a demotion: k1 k2 served, k3 k4 not, CLIENT_ERROR denied not a manager, audited" {
	span get demote
	# alice's items are as they were
	run kv -u alice get k3 get k4
	assert_output $'v3\nv4'
}

@test "memcached gat line spanning a demotion: items after the change keep their expiry" {
	span gat demote
	nv_open alice
	run nv_req "$C_FD" "ttl k1" "ttl k2" "ttl k3" "ttl k4"
	assert_success
	# 1000 s set a moment ago: allow for a slow machine.
	output=$(sed -E 's/^TTL 99[0-9]$/TTL 1000/' <<<"$output")
	assert_output $'TTL 1000\nTTL 1000\nTTL -1\nTTL -1'
	c_close "$C_FD"
}

@test "memcached get line spanning userdel of its store and a new account in its slot: CLIENT_ERROR denied no such user" {
	span get userdel
	run kv -u alice --password-file "$BATS_TEST_TMPDIR/alice.pw" get k1 get k3 get k4
	assert_output $'\nnew3\nnew4'
}

@test "memcached gats line spanning userdel and a new account: the new account's items are not touched" {
	span gats userdel
	nv_open alice new-alice-pw
	run nv_req "$C_FD" "ttl k1" "ttl k3" "ttl k4"
	assert_success
	assert_output $'NOT_FOUND\nTTL -1\nTTL -1'
	c_close "$C_FD"
}

# ---- quotas: one table, both protocols -----------------------------------------

# Q_CASES: the writes, in order, one "WHO STORE KEY VALUE WANT" each: WHO
# logs in (a manager acting on STORE when it is not WHO's own) and writes
# KEY; VALUE is the value, or =N for N bytes of 'x'; WANT is ok or quota.
# alice and bob are guests, mgr a manager.  Each test sets Q_CASES.

# q_run PROTO: run Q_CASES through PROTO (native or memcached) and print
# "WHO STORE KEY OUTCOME" for each: ok, quota, or the reply itself.
q_run() {
	local proto=$1 row who store key val want reply got fd
	local -A fds

	for row in "${Q_CASES[@]}"; do
		read -r who store key val want <<<"$row"
		[[ $val == =* ]] && val=$(head -c "${val#=}" /dev/zero | tr '\0' x)
		fd=${fds[$who:$store]-}
		if [[ -z $fd ]]; then
			if [[ $proto == native ]]; then
				nv_open "$who" || return 1
				if [[ $store != "$who" ]]; then
					reply=$(nv_req "$C_FD" "use $store")
					[[ $reply == "OK $store" ]] || {
						echo "q_run: use $store: $reply" >&2
						return 1
					}
				fi
			elif [[ $store == "$who" ]]; then
				mc_open_ok "$who" || return 1
			else
				mc_open_ok "$who:$store" || return 1
			fi
			fd=$C_FD
			fds[$who:$store]=$fd
		fi
		if [[ $proto == native ]]; then
			reply=$(nv_req "$fd" "put $key $val") || return 1
		else
			c_send "$fd" 'set %s 0 0 %d\r\n%s\r\n' "$key" "${#val}" "$val"
			reply=$(mc_reply "$fd") || return 1
		fi
		case $reply in
		OK | STORED) got=ok ;;
		"ERR quota over the user's quota") got=quota ;;
		"SERVER_ERROR out of memory: over the user's quota") got=quota ;;
		*) got="reply($reply)" ;;
		esac
		echo "$who $store $key $got"
	done
}

# q_want: what q_run must print for Q_CASES.
q_want() {
	local row who store key val want

	for row in "${Q_CASES[@]}"; do
		read -r who store key val want <<<"$row"
		echo "$who $store $key $want"
	done
}

# q_both KVSTORED-FLAGS...: Q_CASES through the native listener, then on a
# fresh segment through the memcached listener: each gives q_want, and
# both leave the same accounts, keys and bytes (kvstorectl users).
q_both() {
	local proto u
	local -A users

	for proto in native memcached; do
		mc_start "$@"
		for u in alice bob mgr; do
			kv_session "$u"
		done
		run ctl promote mgr
		assert_output "mgr is now a manager"
		run q_run "$proto"
		echo "# $proto:" >&3
		printf '#   %s\n' "${lines[@]}" >&3
		assert_success
		assert_output "$(q_want)"
		users[$proto]=$(ctl users)
		kv_stop
	done
	assert_equal "${users[memcached]}" "${users[native]}"
}

@test "quota -q 2: one table of writes gives the same outcome through kvstore(7) and the memcached listener" {
	Q_CASES=(
		"alice alice a1 1 ok"
		"alice alice a2 1 ok"
		"alice alice a3 1 quota"	# a guest's own store: held
		"alice alice a1 11 ok"		# replacing is no new key
		"mgr alice a3 1 quota"		# a manager in alice's store: her quota
		"mgr alice a2 22 ok"
		"mgr mgr m1 1 ok"
		"mgr mgr m2 1 ok"
		"mgr mgr m3 1 ok"		# a manager's own store: no quota
		"mgr mgr m4 1 ok"
		"bob bob b1 1 ok"
		"mgr bob b2 1 ok"
		"mgr bob b3 1 quota"
		"bob bob b3 1 quota"
		"alice alice a3 1 quota"
	)
	q_both -q 2
}

@test "quota -Q 1024 bytes: one table of writes gives the same outcome through kvstore(7) and the memcached listener" {
	# an item of a 2-byte key takes 48 bytes with a 4-byte value, 280
	# with 200 bytes, 3376 with 3000 (kvstorectl users)
	Q_CASES=(
		"alice alice s1 v1 ok"
		"alice alice s2 =200 ok"
		"alice alice bg =3000 quota"
		"mgr alice bg =3000 quota"	# alice's quota, whoever writes
		"mgr alice s3 =200 ok"
		"mgr alice s4 =200 ok"
		"mgr alice s5 =200 quota"
		"alice alice s2 v2 ok"		# shorter: frees room
		"mgr alice s5 =200 ok"
		"mgr mgr bg =3000 ok"		# a manager's own store: no quota
		"mgr mgr b2 =3000 ok"
		"bob bob bg =3000 quota"
		"mgr bob bg =3000 quota"
	)
	q_both -Q 1024
}
