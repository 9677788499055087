#!/usr/bin/env bats
# layers.bats - the request path's layers keep to themselves: front-ends
# parse and format, the command layer decides, the core owns the socket.

bats_require_minimum_version 1.5.0
load helpers

teardown() { kv_stop; }

@test "two connections, interleaved in one process, keep their own state" {
	: "${CONNTEST:?CONNTEST is not set (run the tests with make check)}"
	run -0 "$CONNTEST" "$KV_SHM"
	refute_output --partial 'not ok'
	assert_line 'ok 5 - memcached: a retrieval line answers keys as they arrive'
	assert_line 'ok 8 - memcached: a demotion mid-line stops the line at the next key'
	assert_line '1..10'
}

# Every store operation goes through src/cmd.c: a front-end that called the
# store itself would bypass the role, quota and audit checks.
@test "front-ends call no store function and do no I/O" {
	local fe=("$TESTS_DIR"/../src/native.c "$TESTS_DIR"/../src/mcproto.c
	    "$TESTS_DIR"/../src/mcparse.c "$TESTS_DIR"/../src/protocol.c
	    "$TESTS_DIR"/../src/mcmeta.c "$TESTS_DIR"/../src/mcstats.c)

	[ -f "${fe[0]}" ] && [ -f "${fe[1]}" ] && [ -f "${fe[4]}" ] &&
	    [ -f "${fe[5]}" ]
	run grep -nE '\bstore_[a-z_]+[[:space:]]*\(' "${fe[@]}"
	assert_failure 1
	assert_output ''
	run grep -nE '\b(read|write|send|recv|poll|accept4?|close|sleep|nanosleep)[[:space:]]*\(' "${fe[@]}"
	assert_failure 1
	assert_output ''
	# And the command layer formats no protocol text.
	run grep -nE '"(ERR|OK|STORED|VALUE|END|CLIENT_ERROR|SERVER_ERROR)\b' \
	    "$TESTS_DIR"/../src/cmd.c
	assert_failure 1
}
