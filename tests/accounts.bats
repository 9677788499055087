#!/usr/bin/env bats
# accounts.bats - the account table sized when the segment is made
# (kvstored -a), against a real kvstored: a full table refuses
# registrations with the -N reply and a userdel makes room, another table
# size is another geometry, and a table of 100000 accounts serves its last
# account as it does its first.

bats_require_minimum_version 1.5.0
load helpers

: "${KVSTORECTL:?KVSTORECTL is not set (run the tests with make check)}"

teardown() {
	kv_stop
}

ctl() {
	timeout 60 "$KVSTORECTL" -s "$KV_SHM" "$@"
}

# term: SIGTERM the daemon and wait for it; the segment stays.
term() {
	local n

	kill -TERM "$KV_PID"
	for ((n = 0; n < 100; n++)); do
		kv_alive "$KV_PID" || return 0
		sleep 0.05
	done
	echo "kvstored $KV_PID ignored SIGTERM" >&2
	return 1
}

@test "a table of 5 accounts: the 6th registration gets ERR full too many accounts; a userdel makes room" {
	local i

	kv_start -a 5
	for i in 1 2 3 4 5; do
		run -0 kv -u "u$i" put k "v$i"
	done
	run kv_raw_lines 'register u6 a-secret-of-u6\r\n'
	assert_output 'ERR full too many accounts'
	run -1 kv -u u6 put k v6
	assert_output "kvstore: 127.0.0.1:$KV_PORT: full too many accounts"
	# the operator's accounts are bounded by the table too
	KVSTORE_PASSWORD=a-secret-of-op run -1 ctl useradd op
	assert_output --partial 'cannot create op: all 5 accounts of the segment are taken (kvstored -a)'
	run -0 ctl userdel u3
	run -0 kv -u u6 put k v6 get k
	assert_output v6
	run kv_raw_lines 'register u7 a-secret-of-u7\r\n'
	assert_output 'ERR full too many accounts'
	run -0 kv -u u5 get k
	assert_output v5
	run -0 ctl users
	assert_equal "${#lines[@]}" 5
	refute_output --partial u3
	run -0 ctl check
	assert_output --partial ' 0 errors'
}

@test "a segment keeps its account count: another -a, or none, is refused; the same is taken" {
	local port

	kv_start -a 5
	run -0 kv -u alice put k v
	port=$KV_PORT
	term
	run -1 timeout 10 "$KVSTORED" -f -p 0 -s "$KV_SHM" -m 16 -a 6 \
	    -u "$(id -un)" 3>&-
	assert_output --partial 'was created with -m 16 -I 1048576 -a 5, not -m 16 -I 1048576 -a 6; start with -m 16 -I 1048576 -a 5'
	run -1 timeout 10 "$KVSTORED" -f -p 0 -s "$KV_SHM" -m 16 \
	    -u "$(id -un)" 3>&-
	assert_output --partial 'was created with -m 16 -I 1048576 -a 5, not -m 16 -I 1048576 -a 1024'
	# kvstorectl takes the segment as it is
	run -0 ctl users
	assert_output --regexp '^alice guest keys 1 bytes [0-9]+$'
	kv_start -a 5 -p "$port"
	run -0 kv -u alice get k
	assert_output v
}

@test "a table too big for -m is refused at start, saying what fits" {
	run -1 timeout 10 "$KVSTORED" -f -p 0 -s "$KV_SHM" -m 64 -a 1000000 \
	    -u "$(id -un)" 3>&-
	assert_output --regexp '1000000 accounts \(-a, 400 bytes each, in the segment\): give -m [0-9]+ or more'
	[[ ! -e /dev/shm/${KV_SHM#/} ]]
	run -2 "$KVSTORED" -a 4000001
	assert_output --partial 'kvstored: -a must be a number from 1 to 4000000'
}

@test "a users file with more accounts than the table is refused at start, naming the line" {
	local f=$BATS_TEST_TMPDIR/users

	printf '%s\n' 'a:guest:*' 'b:guest:*' 'c:manager:*' 'd:guest:*' >"$f"
	chmod 600 "$f"
	run -1 timeout 10 "$KVSTORED" -f -p 0 -s "$KV_SHM" -m 16 -a 3 -A "$f" \
	    -u "$(id -un)" 3>&-
	assert_output --partial "$f:4: cannot add account d: all 3 accounts of the segment are taken (kvstored -a)"
	# the segment was made before the file was read: it stays, of -a 3
	run -0 "$KVSTORED" -R -s "$KV_SHM"
	kv_start -a 4 -A "$f"
	run -0 ctl users
	assert_equal "${#lines[@]}" 4
	assert_line -n 2 'c manager keys 0 bytes 0'
}

@test "100000 accounts: loaded from the users file, the last one logs in and works, the check is clean" {
	local f=$BATS_TEST_TMPDIR/users hash secret=the-secret-of-every-u start t

	# one real hash, from a registration, for every account of the file
	kv_start -A "$f"
	run -0 kv_raw_lines "register seed $secret\\r\\n"
	assert_output 'OK seed guest'
	hash=$(sed -n 's/^seed:guest://p' "$f")
	[[ $hash == '$'* ]]
	kv_stop
	awk -v h="$hash" 'BEGIN { print "# 100000 accounts"
	    for (i = 0; i < 100000; i++) printf "u%d:guest:%s\n", i, h }' >"$f"
	chmod 600 "$f"

	start=$(date +%s%N)
	kv_start -m 128 -a 100000 -N 100000 -A "$f"
	t=$((($(date +%s%N) - start) / 1000000))
	echo "# started with 100000 accounts in $t ms" >&3
	run -0 ctl users
	assert_equal "${#lines[@]}" 100000
	assert_line -n 99999 'u99999 guest keys 0 bytes 0'

	run kv_raw_lines "login u99999 $secret\\r\\nput k hello\\r\\nget k\\r\\nwhoami\\r\\nuse u0\\r\\n"
	assert_output "$(printf '%s\n' 'OK u99999 guest' OK 'VALUE 5' hello \
	    'USER u99999 guest' 'ERR denied not a manager')"
	run kv_raw_lines "login u0 wrong\\r\\n"
	assert_output 'ERR auth login failed'
	run -0 ctl -A "$f" promote u0
	run kv_raw_lines "login u0 $secret\\r\\nuse u99999\\r\\nget k\\r\\n"
	assert_output "$(printf '%s\n' 'OK u0 manager' 'OK u99999' 'VALUE 5' hello)"
	# the table is full: registration refused, until a userdel
	run kv_raw_lines 'register extra a-secret-of-extra\r\n'
	assert_output 'ERR full too many accounts'
	run -0 ctl -A "$f" userdel u50000
	run kv_raw_lines 'register extra a-secret-of-extra\r\nput x y\r\n'
	assert_output $'OK extra guest\nOK'
	run -0 ctl check
	assert_output --partial ' 0 errors'
	refute_output --partial 'check: user'
	refute_output --partial 'name index'
}
