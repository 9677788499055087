/*
 * kvstorectl.c - the operator's tool: accounts, roles, the audit log, the
 * store checker.
 *
 * It works on the daemon's segment directly.  The segment is mode 0600 and
 * owned by the daemon's user, so the kernel's own permission check is the
 * local channel the roles rest on: only that user or root can open it, no
 * secret crosses a socket, and no network client can reach this path.  A
 * role change is one store into the segment; live sessions read the role
 * at every request, so it applies at their next one.  The accounts file is
 * rewritten after every change.
 *
 * Whoever can write the segment can write anything in it, the users file's
 * path included.  So root does not act on the segment as root: it checks
 * the segment (a regular file, mode 0600), takes its owner to be the
 * daemon's user and becomes that user before it maps the segment or
 * touches a file.  Every path the segment names is then followed with no
 * more rights than the daemon's user has anyway.  A segment owned by root
 * can have been written by root only, yet the path it records is still not
 * used: root names the file with -A.  The threat model is in kvstorectl(8).
 */
#include <sys/mman.h>
#include <sys/stat.h>

#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "audit.h"
#include "auth.h"
#include "kvstore.h"
#include "log.h"
#include "store.h"
#include "users.h"

static struct store st;
static const char *users_file;
static char users_path[PATH_MAX];	/* copied from the segment */
static const char *users_refused;	/* why the segment's path is not */
static const char *password_file;
static FILE *password_fp;		/* opened before giving up root */
static int password_errno;
static char operator[64];

/* The segment's figures, as "stats" counts them for all stores. */
static void
print_stats(struct store *st)
{
	struct store_stats ss;

	store_stats(st, &ss);
	printf("items %" PRIu64 "\n"
	    "bytes_used %" PRIu64 "\n"
	    "bytes_free %" PRIu64 "\n"
	    "bytes_limit %" PRIu64 "\n"
	    "store_no_memory %" PRIu64 "\n"
	    "reclaimed %" PRIu64 "\n"
	    "crawler_reclaimed %" PRIu64 "\n"
	    "crawler_items_checked %" PRIu64 "\n"
	    "expired_unfetched %" PRIu64 "\n",
	    ss.items, ss.bytes_used, ss.bytes_free, ss.bytes_limit,
	    ss.no_memory, ss.reclaimed, ss.crawler_reclaimed,
	    ss.crawler_checked, ss.expired_unfetched);
	printf("items_moved %" PRIu64 "\n"
	    "pages_moved %" PRIu64 "\n"
	    "cache_mode %s\n"
	    "evictions %" PRIu64 "\n",
	    ss.items_moved, ss.pages_moved, ss.cache_mode ? "on" : "off",
	    ss.evictions);
}

/*
 * The size classes that hold pages, as memcached's "stats slabs" and
 * "stats items" count them for all stores: one line each.
 */
#define KV_CLASSES_SHOWN	64	/* layout.h's KV_CLASSES_MAX */

static void
print_classes(struct store *st)
{
	struct store_class cl[KV_CLASSES_SHOWN];
	uint32_t i, n;

	n = store_classes(st, cl, KV_CLASSES_SHOWN);
	for (i = 0; i < n; i++) {
		if (cl[i].pages == 0 && cl[i].evicted == 0)
			continue;
		printf("class %u chunk_size %u pages %u chunks_per_page %u "
		    "used_chunks %u free_chunks %u unused_chunks %u "
		    "evicted %" PRIu64 "\n", i + 1, cl[i].size, cl[i].pages,
		    cl[i].chunks_per_page, cl[i].used, cl[i].free,
		    cl[i].unused, cl[i].evicted);
	}
}

static void
usage(void)
{
	fprintf(stderr,
	    "usage: kvstorectl [-A users-file] [-p password-file] "
	    "[-s segment] command [argument ...]\n"
	    "commands: users | useradd name [guest|manager] | passwd name |\n"
	    "          userdel name | promote name | demote name | log [count] |"
	    " check | stats | classes\n");
	exit(2);
}

static void
die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void
die(const char *fmt, ...)
{
	va_list ap;

	fputs("kvstorectl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

/*
 * Before a change: refuse it, with the segment untouched, when the change
 * could not be saved to the users file kvstorectl was pointed at.
 */
static void
can_save(void)
{
	if (users_refused != NULL)
		die("segment %s %s: give the file with -A", st.name,
		    users_refused);
}

static void
save(void)
{
	char err[512];

	if (users_file != NULL && users_save(&st, users_file, err,
	    sizeof(err)) == -1)
		die("%s", err);
}

static uint32_t
existing(const char *name)
{
	uint32_t id;

	if (!auth_valid_name(name, strlen(name)))
		die("bad user name '%s'", name);
	if ((id = store_user_find(&st, name)) == 0)
		die("no such user: %s", name);
	return id;
}

/* Read a line from the tty with echo off. */
static void
prompt(const char *what, char *out, size_t n)
{
	struct termios t, quiet;
	FILE *tty = fopen("/dev/tty", "r+");

	if (tty == NULL)
		die("no password: use -p FILE, KVSTORE_PASSWORD, or a terminal");
	fprintf(tty, "%s: ", what);
	fflush(tty);
	tcgetattr(fileno(tty), &t);
	quiet = t;
	quiet.c_lflag &= ~(tcflag_t)ECHO;
	tcsetattr(fileno(tty), TCSAFLUSH, &quiet);
	if (fgets(out, (int)n, tty) == NULL)
		out[0] = '\0';
	tcsetattr(fileno(tty), TCSAFLUSH, &t);
	fputc('\n', tty);
	fclose(tty);
	out[strcspn(out, "\r\n")] = '\0';
}

/* The new password: -p FILE (mode 0600), KVSTORE_PASSWORD, or the tty. */
static void
new_password(char *out, size_t n)
{
	const char *env = getenv("KVSTORE_PASSWORD");
	char again[KV_SECRET_MAX + 2];
	struct stat sb;
	FILE *f;

	if (password_file != NULL) {
		if ((f = password_fp) == NULL)
			die("%s: %s", password_file, strerror(password_errno));
		password_fp = NULL;
		if (fstat(fileno(f), &sb) == -1 || (sb.st_mode & 077) != 0)
			die("%s must not be readable by group or others",
			    password_file);
		if (fgets(out, (int)n, f) == NULL)
			out[0] = '\0';
		fclose(f);
		out[strcspn(out, "\r\n")] = '\0';
	} else if (env != NULL)
		snprintf(out, n, "%s", env);
	else {
		prompt("New password", out, n);
		prompt("Again", again, sizeof(again));
		if (strcmp(out, again) != 0)
			die("the passwords differ");
	}
	if (out[0] == '\0' || strlen(out) > KV_SECRET_MAX ||
	    strpbrk(out, " \t") != NULL)
		die("a password is 1 to %d bytes without spaces", KV_SECRET_MAX);
}

static void
event(const char *action, const char *target)
{
	audit(&st, NULL, operator, -1, action, target, NULL, 0);
}

/* ctx: non-zero for a cache (kvstored -E), whose lines end in evictions. */
static void
print_user(void *ctx, const struct user_view *v)
{
	printf("%s %s keys %llu bytes %llu", v->name, role_name(v->role),
	    (unsigned long long)v->keys, (unsigned long long)v->bytes);
	if (*(const int *)ctx)
		printf(" evictions %llu", (unsigned long long)v->evictions);
	printf("\n");
}

/* An account being deleted: by a live userdel, or left by a killed one. */
static void
print_deleting(void *ctx, const struct user_view *v)
{
	(void)ctx;
	printf("%s deleting keys %llu bytes %llu ", v->name,
	    (unsigned long long)v->keys, (unsigned long long)v->bytes);
	if (v->deleter_alive)
		printf("by pid %u\n", (unsigned)v->deleter);
	else
		printf("interrupted: finish it with kvstorectl userdel %s\n",
		    v->name);
}

/*
 * userdel: mark the account, save the users file without it, then remove
 * its items and free its slot.  A userdel killed on the way leaves the
 * account marked as being deleted; this finishes it.
 */
static void
userdel(const char *name)
{
	uint32_t id;

	if (!auth_valid_name(name, strlen(name)))
		die("bad user name '%s'", name);
	if ((id = store_user_find(&st, name)) == 0 &&
	    (id = store_user_find_deleting(&st, name)) == 0)
		die("no such user: %s", name);
	can_save();
	if (store_user_mark_deleting(&st, id) != ST_OK)
		die("no such user: %s", name);
	save();
	store_user_delete(&st, id);
	event("userdel", name);
	printf("%s deleted, with its keys\n", name);
}

static void
print_line(void *ctx, const char *line)
{
	(void)ctx;
	printf("%s\n", line);
}

static int
set_role(const char *name, int role)
{
	uint32_t id = existing(name);

	can_save();
	if (store_user_set(&st, id, role, NULL) != ST_OK)
		die("cannot change %s", name);
	event(role == KV_ROLE_MANAGER ? "promote" : "demote", name);
	save();
	printf("%s is now a %s\n", name, role_name(role));
	return 0;
}

/*
 * Trust the segment open on FD only if it is a regular file of mode 0600
 * owned by root or by the user kvstorectl acts as (root acts as the owner,
 * see become_owner()).  Mode 0600 is what kvstored makes; anything wider
 * means users other than the owner may have written into it.
 */
static void
check_segment(int fd, const char *name, struct stat *sb)
{
	if (fstat(fd, sb) == -1)
		die("segment %s: %s", name, strerror(errno));
	if (geteuid() != 0 && sb->st_uid != 0 && sb->st_uid != geteuid())
		die("segment %s is owned by uid %u, not by root or uid %u "
		    "(who runs kvstorectl): not trusted", name,
		    (unsigned)sb->st_uid, (unsigned)geteuid());
	if (!S_ISREG(sb->st_mode) || (sb->st_mode & 07777) != 0600)
		die("segment %s has mode %04o, not 0600: not trusted "
		    "(remove it with kvstored -R -s %s)", name,
		    (unsigned)(sb->st_mode & 07777), name);
}

/* Look at the segment before it is mapped: who owns it. */
static void
segment_owner(const char *name, uid_t *uid, gid_t *gid)
{
	struct stat sb;
	int fd;

	if ((fd = shm_open(name, O_RDONLY, 0)) == -1) {
		int e = errno;

		die("shm_open %s: %s%s", name, strerror(e), e == EACCES ?
		    " (run as root or as the daemon's user)" : "");
	}
	check_segment(fd, name, &sb);
	close(fd);
	*uid = sb.st_uid;
	*gid = sb.st_gid;
}

/*
 * Root becomes the segment's owner, the daemon's user, for good: the
 * segment is then mapped, and the users file written, with that user's
 * rights only, and no path or name read from the segment can reach
 * further than that user could alone.
 */
static void
become_owner(uid_t uid, gid_t gid)
{
	if (setgroups(1, &gid) == -1 || setgid(gid) == -1 ||
	    setuid(uid) == -1)
		die("cannot become uid %u gid %u, the segment's owner: %s",
		    (unsigned)uid, (unsigned)gid, strerror(errno));
	if (getuid() != uid || geteuid() != uid || getgid() != gid ||
	    getegid() != gid || setuid(0) != -1)
		die("could not give up root for uid %u", (unsigned)uid);
}

/*
 * The users file the segment names: a terminated absolute path, copied
 * once, so that a writer of the segment cannot change it under us.  (The
 * header's field is shorter than PATH_MAX and the segment is megabytes
 * long, so the bounded scan stays inside the mapping.)
 */
static void
segment_users_file(uid_t owner)
{
	const char *p = store_users_file(&st);
	size_t n;

	if (p == NULL)
		return;
	if (owner == 0) {
		users_refused = "belongs to root, and kvstorectl does not take "
		    "the users file from it";
		return;
	}
	if ((n = strnlen(p, sizeof(users_path))) == sizeof(users_path) ||
	    p[0] != '/') {
		users_refused = "records no valid users file path";
		return;
	}
	memcpy(users_path, p, n + 1);
	users_file = users_path;
}

#ifdef KV_TEST_HOOKS
/*
 * Test builds only (-DKV_TEST_HOOKS, tests/kvstorectl-hooks): with
 * KVSTORE_TEST_STOP_AFTER_STRIPE=N in the environment, a walk that goes a
 * stripe at a time (check, userdel) says so on standard error and stops
 * itself (SIGSTOP) once, after its Nth stripe, holding no lock; a test can
 * then look at the store, kill it, or let it go on (SIGCONT).
 */
static unsigned test_stop_after;

static void
test_stripe(uint32_t done, uint32_t of)
{
	if (test_stop_after == 0 || done != test_stop_after)
		return;
	test_stop_after = 0;
	fprintf(stderr, "kvstorectl: test: pid %ld stops after stripe %u of "
	    "%u\n", (long)getpid(), (unsigned)done, (unsigned)of);
	raise(SIGSTOP);
}

static void
test_hooks(void)
{
	const char *n = getenv("KVSTORE_TEST_STOP_AFTER_STRIPE");

	if (n != NULL && (test_stop_after = (unsigned)strtoul(n, NULL, 10)))
		store_test_stripe = test_stripe;
}
#endif

int
main(int argc, char **argv)
{
	const char *segment = KV_DEFAULT_SEGMENT, *cmd;
	char seg[256], err[512], pass[KV_SECRET_MAX + 2], hash[KV_HASH_MAX];
	struct passwd *pw;
	struct stat sb;
	uid_t owner;
	gid_t group;
	uint32_t id;
	int ch, role, rc = 0;

	while ((ch = getopt(argc, argv, "A:p:s:")) != -1) {
		switch (ch) {
		case 'A':
			users_file = optarg;
			break;
		case 'p':
			password_file = optarg;
			break;
		case 's':
			segment = optarg;
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1)
		usage();
	cmd = argv[0];
	log_init("kvstorectl", 0, 0);
#ifdef KV_TEST_HOOKS
	test_hooks();
#endif
	pw = getpwuid(getuid());
	snprintf(operator, sizeof(operator), "%s%s", pw ? "" : "uid:",
	    pw ? pw->pw_name : "?");
	snprintf(seg, sizeof(seg), "%s%s", segment[0] == '/' ? "" : "/",
	    segment);
	if (password_file != NULL &&
	    (password_fp = fopen(password_file, "r")) == NULL)
		password_errno = errno;
	segment_owner(seg, &owner, &group);
	if (geteuid() == 0 && owner != 0)
		become_owner(owner, group);
	if (store_open(&st, seg, NULL, 0, err, sizeof(err)) == -1)
		die("%s%s", err, errno == EACCES ?
		    " (run as root or as the daemon's user)" : "");
	/* What was mapped, not what was looked at: it may have been swapped. */
	check_segment(st.fd, seg, &sb);
	if (sb.st_uid != owner)
		die("segment %s changed owner while it was opened", seg);
	if (store_attach_process(&st) == -1)
		die("cannot attach to segment %s", seg);
	if (users_file == NULL)
		segment_users_file(owner);

	if (strcmp(cmd, "users") == 0 && argc == 1) {
		struct store_stats ss;

		store_stats(&st, &ss);
		store_user_list(&st, print_user, &ss.cache_mode);
		store_user_list_deleting(&st, print_deleting, NULL);
	}
	else if (strcmp(cmd, "useradd") == 0 && (argc == 2 || argc == 3)) {
		role = argc == 3 ? role_parse(argv[2]) : KV_ROLE_GUEST;
		if (role < 0 || !auth_valid_name(argv[1], strlen(argv[1])))
			usage();
		if (store_user_find(&st, argv[1]) != 0)
			die("user %s exists", argv[1]);
		can_save();
		if (store_user_find_deleting(&st, argv[1]) != 0)
			die("user %s is being deleted: finish it with "
			    "kvstorectl userdel %s", argv[1], argv[1]);
		new_password(pass, sizeof(pass));
		if (auth_hash(pass, hash, sizeof(hash)) == -1)
			die("cannot hash the password");
		explicit_bzero(pass, sizeof(pass));
		if ((rc = store_user_create(&st, argv[1], role, hash, &id)) ==
		    ST_FULL)
			die("cannot create %s: all %u accounts of the segment "
			    "are taken (kvstored -a)", argv[1],
			    store_accounts_max(&st));
		else if (rc != ST_OK)
			die("cannot create %s", argv[1]);
		event("useradd", argv[1]);
		save();
		printf("%s added as %s\n", argv[1], role_name(role));
	} else if (strcmp(cmd, "passwd") == 0 && argc == 2) {
		id = existing(argv[1]);
		can_save();
		new_password(pass, sizeof(pass));
		if (auth_hash(pass, hash, sizeof(hash)) == -1)
			die("cannot hash the password");
		explicit_bzero(pass, sizeof(pass));
		store_user_set(&st, id, -1, hash);
		event("passwd", argv[1]);
		save();
		printf("password of %s changed\n", argv[1]);
	} else if (strcmp(cmd, "userdel") == 0 && argc == 2)
		userdel(argv[1]);
	else if (strcmp(cmd, "promote") == 0 && argc == 2)
		rc = set_role(argv[1], KV_ROLE_MANAGER);
	else if (strcmp(cmd, "demote") == 0 && argc == 2)
		rc = set_role(argv[1], KV_ROLE_GUEST);
	else if (strcmp(cmd, "log") == 0 && argc <= 2)
		store_audit_read(&st, argc == 2 ? (unsigned)atoi(argv[1]) : 20,
		    print_line, NULL);
	else if (strcmp(cmd, "check") == 0 && argc == 1)
		rc = store_check(&st, stdout);
	else if (strcmp(cmd, "stats") == 0 && argc == 1)
		print_stats(&st);
	else if (strcmp(cmd, "classes") == 0 && argc == 1)
		print_classes(&st);
	else
		usage();
	store_close(&st);
	return rc;
}
