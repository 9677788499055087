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
 * rewritten after every change, owned by the segment's owner.
 */
#include <sys/stat.h>

#include <errno.h>
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
static const char *password_file;
static char operator[64];

static void
usage(void)
{
	fprintf(stderr,
	    "usage: kvstorectl [-A users-file] [-p password-file] "
	    "[-s segment] command [argument ...]\n"
	    "commands: users | useradd name [guest|manager] | passwd name |\n"
	    "          userdel name | promote name | demote name | log [count] |"
	    " check\n");
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
		if ((f = fopen(password_file, "r")) == NULL)
			die("%s: %s", password_file, strerror(errno));
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

static void
print_user(void *ctx, const struct user_view *v)
{
	(void)ctx;
	printf("%s %s keys %llu bytes %llu\n", v->name, role_name(v->role),
	    (unsigned long long)v->keys, (unsigned long long)v->bytes);
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

	if (store_user_set(&st, id, role, NULL) != ST_OK)
		die("cannot change %s", name);
	event(role == KV_ROLE_MANAGER ? "promote" : "demote", name);
	save();
	printf("%s is now a %s\n", name, role_name(role));
	return 0;
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
	if (store_open(&st, seg, NULL, 0, err, sizeof(err)) == -1)
		die("%s%s", err, errno == EACCES ?
		    " (run as root or as the daemon's user)" : "");
	if (store_attach_process(&st) == -1)
		die("cannot attach to segment %s", seg);
	if (users_file == NULL)
		users_file = store_users_file(&st);

	if (strcmp(cmd, "users") == 0 && argc == 1) {
		store_user_list(&st, print_user, NULL);
		store_user_list_deleting(&st, print_deleting, NULL);
	}
	else if (strcmp(cmd, "useradd") == 0 && (argc == 2 || argc == 3)) {
		role = argc == 3 ? role_parse(argv[2]) : KV_ROLE_GUEST;
		if (role < 0 || !auth_valid_name(argv[1], strlen(argv[1])))
			usage();
		if (store_user_find(&st, argv[1]) != 0)
			die("user %s exists", argv[1]);
		if (store_user_find_deleting(&st, argv[1]) != 0)
			die("user %s is being deleted: finish it with "
			    "kvstorectl userdel %s", argv[1], argv[1]);
		new_password(pass, sizeof(pass));
		if (auth_hash(pass, hash, sizeof(hash)) == -1)
			die("cannot hash the password");
		explicit_bzero(pass, sizeof(pass));
		if (store_user_create(&st, argv[1], role, hash, &id) != ST_OK)
			die("cannot create %s (too many accounts?)", argv[1]);
		event("useradd", argv[1]);
		save();
		printf("%s added as %s\n", argv[1], role_name(role));
	} else if (strcmp(cmd, "passwd") == 0 && argc == 2) {
		id = existing(argv[1]);
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
	else
		usage();
	store_close(&st);
	return rc;
}
