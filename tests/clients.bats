#!/usr/bin/env bats
# clients.bats - memcached client libraries against kvstored's memcached
# listener (-M, bound with -B) and against memcached 1.6.18 started in the
# same test: each tests/clients/ script does the same operations and prints
# one canonical line each; the two outputs must be the same but for the
# differences kvstore-memcached(7) lists:
#	set-1mib	kvstored's -I counts the value, memcached's -I the
#			whole item (key, value, header): a value of exactly
#			1 MiB is stored by kvstored, refused by memcached.
# stats contents differ and are not compared: each script checks only that
# stats answers with pid and curr_items.
#
# Needs memcached, python3-pymemcache, libcache-memcached-fast-perl,
# php-cli and php-memcached, nodejs, and the npm packages of
# tests/clients/node (.ci/run installs them with npm ci).

bats_require_minimum_version 1.5.0
load helpers

MC_PID=
teardown() {
	if [[ -n $MC_PID ]]; then
		kill "$MC_PID" 2>/dev/null || true
		wait "$MC_PID" 2>/dev/null || true
	fi
	kv_stop
}

# both: kvstored with a memcached listener bound to one account (KVMC_PORT)
# and a memcached 1.6.18 (MEMC_PORT), both on loopback with 64 MiB.
both() {
	local re='start: memcached protocol listen [^ ]+ port ([0-9]+)' n p

	command -v memcached >/dev/null || skip "memcached is not installed"
	kv_start -m 64 -M 0 -B clients || return 1
	for ((n = 0; n < 100; n++)); do
		[[ $(<"$KV_LOG") =~ $re ]] && break
		sleep 0.05
	done
	KVMC_PORT=${BASH_REMATCH[1]}
	[[ -n $KVMC_PORT ]] || return 1
	# memcached cannot bind port 0 and say which: a free port, retried
	for ((n = 0; n < 20; n++)); do
		p=$((20000 + RANDOM % 12000))
		[[ -n $(ss -Hltn "( sport = :$p )") ]] && continue
		memcached -u "$(id -un)" -l 127.0.0.1 -p "$p" -U 0 -m 64 \
		    </dev/null >"$BATS_TEST_TMPDIR/memcached.log" 2>&1 3>&- &
		MC_PID=$!
		for ((k = 0; k < 100; k++)); do
			if ss -Hltn "( sport = :$p )" | grep -q .; then
				MEMC_PORT=$p
				return 0
			fi
			kv_alive "$MC_PID" || break
			sleep 0.05
		done
		kill "$MC_PID" 2>/dev/null || true
		wait "$MC_PID" 2>/dev/null || true
		MC_PID=
	done
	cat "$BATS_TEST_TMPDIR/memcached.log" >&2
	return 1
}

# compare NAME CMD...: run CMD HOST PORT against memcached, then kvstored;
# both must succeed, print every operation, and agree but for set-1mib.
compare() {
	local name=$1 d=$BATS_TEST_TMPDIR
	shift

	timeout 120 "$@" 127.0.0.1 "$MEMC_PORT" >"$d/$name.memcached" 2>"$d/$name.err1" || {
		cat "$d/$name.err1" >&2
		return 1
	}
	timeout 120 "$@" 127.0.0.1 "$KVMC_PORT" >"$d/$name.kvstore" 2>"$d/$name.err2" || {
		cat "$d/$name.err2" >&2
		return 1
	}
	run cat "$d/$name.memcached"
	assert_line 'set True'
	assert_line 'get-100k True'
	assert_line 'get-utf8 True'
	assert_line 'get-flushed None' || assert_line 'get-flushed False NOTFOUND'
	assert_equal "${#lines[@]}" 44
	# the documented differences
	run grep -x 'set-1mib True' "$d/$name.kvstore"
	assert_success
	run grep -x 'set-1mib True' "$d/$name.memcached"
	assert_failure
	run diff <(grep -v '^set-1mib ' "$d/$name.memcached") \
	    <(grep -v '^set-1mib ' "$d/$name.kvstore")
	assert_success
	assert_output ''
}

@test "pymemcache: the same results as memcached 1.6.18" {
	/usr/bin/python3 -c 'import pymemcache' 2>/dev/null ||
	    skip "python3-pymemcache is not installed"
	both
	compare python /usr/bin/python3 "$TESTS_DIR/clients/python.py"
	run cat "$BATS_TEST_TMPDIR/python.kvstore"
	assert_line 'set-key251 error MemcacheIllegalInputError'
	assert_line 'set-2mib error MemcacheServerError'
	assert_line 'cas-stale False'
	assert_line 'version 1.6.x'
}

@test "Cache::Memcached::Fast: the same results as memcached 1.6.18" {
	perl -MCache::Memcached::Fast -e 1 2>/dev/null ||
	    skip "libcache-memcached-fast-perl is not installed"
	both
	compare perl perl "$TESTS_DIR/clients/perl.pl"
	run cat "$BATS_TEST_TMPDIR/perl.kvstore"
	assert_line 'incr b:15'
	assert_line 'after-2mib b:two'
	assert_line 'version 1.6.x'
}

@test "php-memcached: the same results as memcached 1.6.18" {
	php -r 'exit(class_exists("Memcached") ? 0 : 1);' 2>/dev/null ||
	    skip "php-cli and php-memcached are not installed"
	both
	compare php php "$TESTS_DIR/clients/php.php"
	run cat "$BATS_TEST_TMPDIR/php.kvstore"
	assert_line 'cas-stale False EXISTS'
	assert_line 'set-2mib False E2BIG'
	assert_line 'stats ok'
	assert_line 'version 1.6.x'
}

@test "node memcached (npm): the same results as memcached 1.6.18" {
	local dir=$TESTS_DIR/clients/node

	command -v node >/dev/null || skip "nodejs is not installed"
	[[ -d $dir/node_modules/memcached ]] ||
	    skip "no $dir/node_modules: run npm ci there (.ci/run does)"
	both
	compare node node "$dir/client.js"
	run cat "$BATS_TEST_TMPDIR/node.memcached"
	assert_line 'version 1.6.x'
	run cat "$BATS_TEST_TMPDIR/node.kvstore"
	# VERSION 1.6.18, so the client reads kvstored as 1.6 too
	assert_line 'version 1.6.x'
	assert_line 'cas-stale False'
	assert_line 'set-2mib error The length of the value is greater than 1048576'
	assert_line 'stats ok'
}
