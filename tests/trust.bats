#!/usr/bin/env bats
# trust.bats - issue 10: trust boundaries on the host.  Root's kvstorectl
# against a segment that the daemon's user (here a throwaway system user)
# may write: planted symbolic links and a users file path rewritten in the
# segment reach nothing outside the daemon's own directory; kvstorectl
# refuses a segment of the wrong owner or mode; kvstored warns about
# -u nobody; time-valued flags have maxima that cannot overflow.
#
# The cases that need a second user need root, to create it: CI runs as
# root.  Run by another user they are skipped, each saying so (need_root);
# .ci/run counts skips apart from passes.
#
# Layout of the root cases, under a directory of their own outside bats'
# (root's alone, which a system user cannot enter):
#	$T		root's, 0755
#	$T/daemon	the daemon user's, 0700: the users file is there
#	$T/root		root's, 0700: holds victim, which must stay as it is
#
# (No loop variable is called "i": bats 1.8's run with flags clobbers it.)

bats_require_minimum_version 1.5.0
load helpers

: "${KVSTORECTL:=$(dirname "$KVSTORED")/kvstorectl}"

T=

teardown() {
	kv_stop
	kv_sysusers_remove
	if [[ -n $T ]]; then
		rm -rf "$T"
	fi
}

need_root() {
	[[ $(id -u) -eq 0 ]] || skip "$1 needs root"
}

# ctl ARGS...: kvstorectl on the test's segment.
ctl() {
	timeout 20 "$KVSTORECTL" -s "$KV_SHM" "$@"
}

seg() {
	echo "/dev/shm/${KV_SHM#/}"
}

# daemon_user: a throwaway system user DUSER runs kvstored with its users
# file in $T/daemon; bob registers (so the daemon writes the file).
daemon_user() {
	kv_sysuser DUSER
	T=$(mktemp -d "${TMPDIR:-/tmp}/kvtrust.XXXXXX")
	chmod 755 "$T"
	mkdir -m 700 "$T/daemon" "$T/root"
	chown "$DUSER:" "$T/daemon"
	printf 'precious\n' >"$T/root/victim"
	chmod 600 "$T/root/victim"
	kv_start -u "$DUSER" -A "$T/daemon/users"
	kv_session bob
	[ "$(stat -c '%U %a' "$(seg)")" = "$DUSER 600" ]
	run -0 grep -c '^bob:guest:' "$T/daemon/users"
}

# as_daemon CMD...: CMD as the daemon's user.
as_daemon() {
	runuser -u "$DUSER" -- "$@"
}

# untouched: root's directory holds the victim alone, as it was; nothing
# outside $T/daemon belongs to the daemon's user, and nothing inside it to
# root.
untouched() {
	run -0 find "$T/root" -mindepth 1
	assert_output "$T/root/victim"
	[ "$(cat "$T/root/victim")" = precious ]
	[ "$(stat -c '%U %a' "$T/root/victim")" = "root 600" ]
	run -0 find "$T" -user "$DUSER" ! -path "$T/daemon" \
	    ! -path "$T/daemon/*"
	assert_output ''
	run -0 find "$T/daemon" ! -user "$DUSER"
	assert_output ''
}

# ctl_pid1 ARGS...: ctl as pid 1 of a pid namespace of its own where the
# kernel allows one, so that a name made from its pid is known in advance
# (a planted link then cannot miss); elsewhere as it is.
ctl_pid1() {
	if unshare --pid --fork true 2>/dev/null; then
		timeout 20 unshare --pid --fork "$KVSTORECTL" -s "$KV_SHM" "$@"
	else
		ctl "$@"
	fi
}

@test "root's kvstorectl: symbolic links planted at the temporary names lead nowhere; the file stays the daemon user's" {
	local links=() last max p n

	need_root "a throwaway daemon user planting links"
	daemon_user
	# The old writer named its file users.tmp.PID: plant a link for pid
	# 1 and for the next 3000 pids, each to a new name in root's
	# directory.  One ln makes them all (a pid each would use them up).
	read -r last </proc/sys/kernel/ns_last_pid
	read -r max </proc/sys/kernel/pid_max
	links=("$T/root/users.tmp.1")
	for ((p = last + 1; p <= last + 3000; p++)); do
		links+=("$T/root/users.tmp.$((p < max ? p : p - max + 300))")
	done
	as_daemon ln -s "${links[@]}" "$T/daemon/"
	n=$(find "$T/daemon" -type l | wc -l)
	[ "$n" -eq 3001 ]
	run -0 ctl_pid1 promote bob
	assert_output 'bob is now a manager'
	# the file was replaced by a regular file of the daemon's user
	[ ! -L "$T/daemon/users" ]
	[ "$(stat -c '%U %a %F' "$T/daemon/users")" = "$DUSER 600 regular file" ]
	run -0 grep -c '^bob:manager:' "$T/daemon/users"
	assert_output 1
	# every link is still there, still dangling
	[ "$(find "$T/daemon" -type l | wc -l)" -eq 3001 ]
	[ "$(find -L "$T/daemon" -type l | wc -l)" -eq 3001 ]
	untouched
}

@test "root's kvstorectl: a symbolic link at users.lock is not followed" {
	need_root "a throwaway daemon user planting links"
	daemon_user
	cp -p "$T/daemon/users" "$T/users.before"
	as_daemon rm "$T/daemon/users.lock"
	as_daemon ln -s "$T/root/made-by-root" "$T/daemon/users.lock"
	run -1 ctl promote bob
	assert_output "kvstorectl: $T/daemon/users.lock: Too many levels of symbolic links"
	# the change is in the segment all the same, as kvstorectl(8) says
	run -0 ctl users
	assert_output --regexp '^bob manager keys'
	cmp "$T/users.before" "$T/daemon/users"
	[ -L "$T/daemon/users.lock" ]
	rm "$T/users.before"
	untouched
}

@test "root's kvstorectl: a users file path rewritten in the segment by its owner writes nothing there" {
	local off

	need_root "a throwaway daemon user rewriting the segment"
	daemon_user
	# The daemon's user may write its segment: point the recorded users
	# file at root's victim.
	off=$(grep -obaF -m1 -- "$T/daemon/users" "$(seg)" | cut -d: -f1)
	[[ $off =~ ^[0-9]+$ ]]
	printf '%s\0' "$T/root/victim" |
	    as_daemon dd of="$(seg)" bs=1 seek="$off" conv=notrunc status=none
	run -0 grep -obaF -m1 -- "$T/root/victim" "$(seg)"
	run -1 ctl promote bob
	assert_output "kvstorectl: $T/root: Permission denied"
	untouched
	# the daemon's own file was not written either
	run -0 grep -c '^bob:guest:' "$T/daemon/users"
	assert_output 1
}

@test "root's kvstorectl on a segment of root's: the users file comes only from -A" {
	local f=$BATS_TEST_TMPDIR/users

	need_root "a segment owned by root"
	kv_start -u root -A "$f"
	kv_session bob
	[ "$(stat -c '%U %a' "$(seg)")" = "root 600" ]
	run -1 ctl promote bob
	assert_output "kvstorectl: segment $KV_SHM belongs to root, and kvstorectl does not take the users file from it: give the file with -A"
	# refused before the change: bob is still a guest, in both places
	run -0 ctl users
	assert_output --regexp '^bob guest keys'
	run -0 grep -c '^bob:guest:' "$f"
	# reading commands need no file
	run -0 ctl log 1
	run -0 ctl -A "$f" promote bob
	assert_output 'bob is now a manager'
	run -0 grep -c '^bob:manager:' "$f"
	[ "$(stat -c '%U %a' "$f")" = "root 600" ]
}

@test "kvstorectl refuses a segment of mode 0666, and changes nothing in it" {
	kv_start
	kv_session bob
	chmod 666 "$(seg)"
	run -1 ctl promote bob
	assert_output "kvstorectl: segment $KV_SHM has mode 0666, not 0600: not trusted (remove it with kvstored -R -s $KV_SHM)"
	run -1 ctl users
	assert_output "kvstorectl: segment $KV_SHM has mode 0666, not 0600: not trusted (remove it with kvstored -R -s $KV_SHM)"
	chmod 600 "$(seg)"
	run -0 ctl users
	assert_output --regexp '^bob guest keys'
}

@test "kvstorectl refuses a segment owned by another user, even one it can open" {
	local cuser duid cuid

	need_root "a throwaway daemon user and a second user"
	kv_sysuser DUSER
	kv_sysuser cuser
	T=$(mktemp -d "${TMPDIR:-/tmp}/kvtrust.XXXXXX")
	chmod 755 "$T"
	install -m 755 "$KVSTORECTL" "$T/kvstorectl"
	kv_start -u "$DUSER"
	kv_session bob
	chmod 666 "$(seg)"
	duid=$(id -u "$DUSER")
	cuid=$(id -u "$cuser")
	run -1 runuser -u "$cuser" -- "$T/kvstorectl" -s "$KV_SHM" promote bob
	assert_output "kvstorectl: segment $KV_SHM is owned by uid $duid, not by root or uid $cuid (who runs kvstorectl): not trusted"
	run -1 runuser -u "$cuser" -- "$T/kvstorectl" -s "$KV_SHM" users
	assert_output "kvstorectl: segment $KV_SHM is owned by uid $duid, not by root or uid $cuid (who runs kvstorectl): not trusted"
	# root, who would act as the owner, is refused by the mode
	run -1 ctl users
	assert_output "kvstorectl: segment $KV_SHM has mode 0666, not 0600: not trusted (remove it with kvstored -R -s $KV_SHM)"
	chmod 600 "$(seg)"
	run -0 ctl users
	assert_output --regexp '^bob guest keys'
}

@test "kvstored -u nobody: a warning is logged; a user of its own gets none" {
	local warn='kvstored\[[0-9]+\]: -u nobody: every process running as nobody can change the accounts and roles; run kvstored as a user of its own \(see kvstored\(8\)\)$'

	if [[ $(id -u) -eq 0 ]]; then
		kv_start -u nobody
		run -0 grep -cE "$warn" "$KV_LOG"
		assert_output 1
		kv_stop
		kv_sysuser DUSER
		KV_SHM=$KV_SHM-own
		kv_start -u "$DUSER"
		run -1 grep -c 'nobody' "$KV_LOG"
	else
		# Not root: the switch fails, after the warning.
		run -1 timeout 10 "$KVSTORED" -f -p 0 -l 127.0.0.1 \
		    -s "$KV_SHM" -m 16 -u nobody
		assert_line --index 0 --regexp "^$warn"
		assert_line --index 1 --regexp '^kvstored\[[0-9]+\]: cannot become user nobody: '
	fi
}

@test "time flags: one past each maximum is refused (exit 2), each maximum is served" {
	local flag reply

	for flag in '-t 4294968' '-t 2147484' '-T 86401' '-L 3601'; do
		# shellcheck disable=SC2086	# flag and value, two words
		run -2 timeout 10 "$KVSTORED" -f -p 0 -l 127.0.0.1 \
		    -s "$KV_SHM" -m 16 -u "$(id -un)" $flag
		case $flag in
		-t*) assert_output "kvstored: -t must be a number from 0 to 2147483, not '${flag#-t }'" ;;
		-T*) assert_output "kvstored: -T must be a number from 0 to 86400, not '86401'" ;;
		-L*) assert_output "kvstored: -L must be a number from 0 to 3600, not '3601'" ;;
		esac
		[ ! -e "$(seg)" ]
	done
	kv_start -t 2147483 -T 86400 -L 3600
	exec 5<>"/dev/tcp/127.0.0.1/$KV_PORT"
	printf 'ping\r\n' >&5
	IFS= read -r -t 5 reply <&5
	[ "$reply" = $'PONG\r' ]
	# -t 4294968 wrapped to under a second; the maximum must not
	sleep 1.5
	printf 'ping\r\n' >&5
	IFS= read -r -t 5 reply <&5
	[ "$reply" = $'PONG\r' ]
	exec 5<&-
	run -1 grep -c 'timeout' "$KV_LOG"
	assert_output 0
}
