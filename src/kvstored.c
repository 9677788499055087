/*
 * kvstored.c - the daemon's entry: flags, then one of the launch paths.
 *
 *   standalone		bind -l/-p, daemonize unless -f, master_run()
 *   systemd Accept=no	the listening socket is fd 3 (LISTEN_FDS): master_run()
 *   systemd Accept=yes	the connection is fd 3: serve it, exit
 *   inetd, xinetd (-i)	the connection is stdin/stdout: serve it, exit
 *
 * Every path ends at the same segment by its name.  Under inetd, stderr may
 * be the client's socket (xinetd hands it fds 0, 1 and 2), so -i logs only
 * to syslog; and fd 3 is trusted only when LISTEN_PID names this process.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "kvstore.h"
#include "cmd.h"
#include "log.h"
#include "master.h"
#include "net.h"
#include "store.h"
#include "users.h"

#define SD_LISTEN_FDS_START	3
/* Sessions wait in milliseconds, in an int: seconds * 1000 must fit. */
#define TIMEOUT_MAX		(INT_MAX / 1000)

struct options {
	const char	*port;
	const char	*address;
	char		 segment[256];
	uint64_t	 size_mb;
	uint32_t	 value_max;
	int		 maxconn;
	int		 max_spares;
	int		 idle_timeout;
	int		 partial_timeout;
	int		 foreground;
	int		 inetd;
	int		 verbose;
	int		 remove;
	int		 check;
	int		 cache;		/* -E: the segment is a cache */
	int		 closed;
	const char	*pidfile;
	const char	*user;
	uint64_t	 quota_keys;
	uint64_t	 quota_bytes;
	const char	*mc_port;
	char		 users_file[PATH_MAX];
	int		 login_timeout;
	int		 mc_idle_timeout;
	unsigned	 per_addr;
	unsigned	 per_addr_prelogin;
	unsigned	 throttle_ms;
	int		 engine;
	int		 workers;
	unsigned	 reg_limit;
	unsigned	 max_accounts;
	uint32_t	 accounts;
	const char	*bound_user;
};

static void
usage(void)
{
	fprintf(stderr,
	    "usage: kvstored [-CEfhiRrVv] [-A users-file] [-a table-size] "
	    "[-B user] [-c maxconn]\n"
	    "                [-D throttle-ms] [-e prefork|event] "
	    "[-g registrations] [-H per-address]\n"
	    "                "
	    "[-U per-address-before-login]\n"
	    "                "
	    "[-W memcached-idle-seconds] [-w workers]\n"
	    "                [-I value-max] [-k spares] [-L seconds] [-l address] "
	    "[-M memcached-port] [-m MiB]\n"
	    "                [-N accounts] [-P pidfile] [-p port] "
	    "[-Q quota-bytes] [-q quota-keys]\n"
	    "                [-s segment] [-T seconds] [-t seconds] "
	    "[-u user]\n");
	exit(2);
}

static uint64_t
number(const char *s, uint64_t min, uint64_t max, const char *what)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (s[0] == '\0' || s[0] == '-' || *end != '\0' || errno != 0 ||
	    v < min || v > max) {
		fprintf(stderr, "kvstored: %s must be a number from %llu to "
		    "%llu, not '%s'\n", what, (unsigned long long)min,
		    (unsigned long long)max, s);
		exit(2);
	}
	return v;
}

/* The daemon chdirs to / and removes its pidfile at the end from there. */
static const char *
absolute(const char *path)
{
	char cwd[PATH_MAX], *abs;

	if (path[0] == '/')
		return path;
	if (getcwd(cwd, sizeof(cwd)) == NULL ||
	    asprintf(&abs, "%s/%s", cwd, path) == -1) {
		fprintf(stderr, "kvstored: %s: cannot make the path absolute\n",
		    path);
		exit(2);
	}
	return abs;
}

static void
parse_options(int argc, char **argv, struct options *o)
{
	const char *seg = KV_DEFAULT_SEGMENT;
	int ch;

	memset(o, 0, sizeof(*o));
	o->port = KV_DEFAULT_PORT;
	o->address = KV_DEFAULT_ADDRESS;
	o->size_mb = KV_DEFAULT_SIZE_MB;
	o->value_max = KV_VALUE_MAX;
	o->maxconn = 1024;
	o->max_spares = 8;
	o->idle_timeout = 300;
	o->partial_timeout = 30;
	o->login_timeout = 10;
	o->per_addr = 512;
	o->per_addr_prelogin = 64;
	o->throttle_ms = 100;
	o->engine = ENGINE_PREFORK;
	o->workers = (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (o->workers < 1)
		o->workers = 1;
	o->reg_limit = 100;
	o->max_accounts = 1000;
	o->accounts = KV_ACCOUNTS_DEFAULT;
	while ((ch = getopt(argc, argv, "a:A:B:c:CD:Ee:fg:H:hiI:k:L:l:M:m:N:P:p:Q:q:RrT:t:s:U:u:VvW:w:")) !=
	    -1) {
		switch (ch) {
		case 'a':
			o->accounts = (uint32_t)number(optarg, 1,
			    KV_ACCOUNTS_MAX, "-a");
			break;
		case 'c':
			o->maxconn = (int)number(optarg, 1, 65536, "-c");
			break;
		case 'C':
			o->check = 1;
			break;
		case 'E':
			o->cache = 1;
			break;
		case 'f':
			o->foreground = 1;
			break;
		case 'i':
			o->inetd = 1;
			break;
		case 'I':
			o->value_max = (uint32_t)number(optarg, 1,
			    KV_VALUE_MAX_LIMIT, "-I");
			break;
		case 'A':
			/* Absolute: children and kvstorectl find it from anywhere. */
			if (realpath(optarg, o->users_file) == NULL &&
			    (optarg[0] != '/' || snprintf(o->users_file,
			    sizeof(o->users_file), "%s", optarg) >=
			    (int)sizeof(o->users_file))) {
				fprintf(stderr, "kvstored: users file %s: give "
				    "an absolute path or an existing file\n",
				    optarg);
				exit(2);
			}
			break;
		case 'B':
			o->bound_user = optarg;
			break;
		case 'g':
			o->reg_limit = (unsigned)number(optarg, 0, 1000000,
			    "-g");
			break;
		case 'k':
			o->max_spares = (int)number(optarg, 0, 256, "-k");
			break;
		case 'D':
			o->throttle_ms = (unsigned)number(optarg, 1, 1000, "-D");
			break;
		case 'e':
			if (strcmp(optarg, "prefork") == 0)
				o->engine = ENGINE_PREFORK;
			else if (strcmp(optarg, "event") == 0)
				o->engine = ENGINE_EVENT;
			else {
				fprintf(stderr, "kvstored: -e must be prefork or "
				    "event, not '%s'\n", optarg);
				exit(2);
			}
			break;
		case 'w':
			o->workers = (int)number(optarg, 1, 256, "-w");
			break;
		case 'H':
			o->per_addr = (unsigned)number(optarg, 0, 1000000,
			    "-H");
			break;
		case 'U':
			o->per_addr_prelogin = (unsigned)number(optarg, 0,
			    1000000, "-U");
			break;
		case 'W':
			o->mc_idle_timeout = (int)number(optarg, 0, TIMEOUT_MAX,
			    "-W");
			break;
		case 'L':
			o->login_timeout = (int)number(optarg, 0, 3600, "-L");
			break;
		case 'N':
			o->max_accounts = (unsigned)number(optarg, 1,
			    KV_ACCOUNTS_MAX, "-N");
			break;
		case 'q':
			o->quota_keys = number(optarg, 0, UINT64_MAX / 2, "-q");
			break;
		case 'l':
			o->address = optarg;
			break;
		case 'm':
			o->size_mb = number(optarg, KV_MIN_SIZE_MB,
			    KV_MAX_SIZE_MB, "-m");
			break;
		case 'M':
			number(optarg, 0, 65535, "-M");
			o->mc_port = optarg;
			break;
		case 'Q':
			o->quota_bytes = number(optarg, 0, UINT64_MAX / 2,
			    "-Q");
			break;
		case 'P':
			o->pidfile = absolute(optarg);
			break;
		case 'p':
			number(optarg, 0, 65535, "-p");
			o->port = optarg;
			break;
		case 'R':
			o->remove = 1;
			break;
		case 'r':
			o->closed = 1;
			break;
		case 's':
			seg = optarg;
			break;
		case 'T':
			o->partial_timeout = (int)number(optarg, 0, 86400,
			    "-T");
			break;
		case 't':
			o->idle_timeout = (int)number(optarg, 0, TIMEOUT_MAX,
			    "-t");
			break;
		case 'u':
			o->user = optarg;
			break;
		case 'V':
			printf("kvstored %s\n", KV_VERSION);
			exit(0);
		case 'v':
			o->verbose = 1;
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	if (o->bound_user != NULL && !auth_valid_name(o->bound_user,
	    strlen(o->bound_user))) {
		fprintf(stderr, "kvstored: bad user name '%s'\n",
		    o->bound_user);
		exit(2);
	}
	if (snprintf(o->segment, sizeof(o->segment), "%s%s",
	    seg[0] == '/' ? "" : "/", seg) >= (int)sizeof(o->segment) ||
	    strchr(o->segment + 1, '/') != NULL || o->segment[1] == '\0') {
		fprintf(stderr, "kvstored: bad segment name '%s'\n", seg);
		exit(2);
	}
}

/* Drop to -u's user, or refuse to serve as root without being told. */
static void
drop_privileges(const struct options *o)
{
	struct passwd *pw;

	if (o->user == NULL) {
		if (geteuid() == 0)
			fatalx("refusing to run as root: name a user with -u "
			    "(-u root to insist)");
		return;
	}
	if ((pw = getpwnam(o->user)) == NULL)
		fatalx("no such user '%s'", o->user);
	/* nobody is everyone's: each service running as nobody could open
	 * the segment and so act as the operator. */
	if (strcmp(pw->pw_name, "nobody") == 0)
		log_warnx("-u %s: every process running as nobody can change "
		    "the accounts and roles; run kvstored as a user of its "
		    "own (see kvstored(8))", o->user);
	if (pw->pw_uid == geteuid())
		return;
	if (setgroups(1, &pw->pw_gid) == -1 || setgid(pw->pw_gid) == -1 ||
	    setuid(pw->pw_uid) == -1)
		fatal("cannot become user %s", o->user);
	if (setuid(0) != -1)
		fatalx("could regain root after dropping to %s", o->user);
}

/*
 * -B's account belongs to the memcached listener: made now, with no usable
 * secret, so that nobody can register the name before the first memcached
 * session; one that already has a secret would let whoever knows it log in
 * natively to the store that listener serves to anyone.
 */
static void
reserve_bound_user(struct store *st, const char *name)
{
	struct user_view v;
	uint32_t id = store_user_find(st, name);

	if (id == 0) {
		if (store_user_create(st, name, KV_ROLE_GUEST, "*", &id) !=
		    ST_OK && store_user_find(st, name) == 0)
			fatalx("-B %s: cannot reserve the account", name);
		return;
	}
	if (store_user_get(st, id, &v) == ST_OK && auth_hash_ok(v.hash))
		fatalx("-B %s: the account has a password, and anyone who knows "
		    "it could log in to the store the memcached listener serves; "
		    "bind another name, or remove the account first "
		    "(kvstorectl userdel %s)", name, name);
}

static void
open_store(const struct options *o, struct store *st)
{
	struct store_geometry g;
	char err[512];

	store_geometry_default(&g, o->size_mb, o->value_max);
	g.cache = o->cache;
	g.users = o->accounts;
	if (store_open(st, o->segment, &g, STORE_CREATE, err, sizeof(err)) ==
	    -1)
		fatalx("%s", err);
	if (store_attach_process(st) == -1)
		fatalx("cannot attach to segment %s", o->segment);
	/* Finish what processes that died with no master of ours watching
	 * left behind: a killed master's children, inetd mode's. */
	store_reap(st, 0);
	if (o->users_file[0] != '\0') {
		if (users_load(st, o->users_file, err, sizeof(err)) == -1)
			fatalx("%s", err);
		store_set_users_file(st, o->users_file);
	}
	if (o->bound_user != NULL)
		reserve_bound_user(st, o->bound_user);
	store_detach_process(st);
}

static void
write_pidfile(const char *path)
{
	FILE *f;

	if (path == NULL)
		return;
	if ((f = fopen(path, "w")) == NULL)
		fatal("pidfile %s", path);
	fprintf(f, "%ld\n", (long)getpid());
	if (fclose(f) == EOF)
		fatal("pidfile %s", path);
}

/*
 * The pidfile is opened before the fork, so that failing to is an error on
 * the terminal with exit status 1, and filled in by the parent, so that it
 * names the daemon as soon as kvstored returns: scripts and systemd's
 * PIDFile= read it then.  It is written as -u's user, who removes it at
 * the end: put it in a directory that user may write.
 */
static void
daemonize(const char *pidfile)
{
	FILE *pf = NULL;
	pid_t pid;
	int fd;

	if (pidfile != NULL && (pf = fopen(pidfile, "w")) == NULL)
		fatal("pidfile %s", pidfile);
	switch ((pid = fork())) {
	case -1:
		fatal("fork");
	case 0:
		if (pf != NULL)
			fclose(pf);
		break;
	default:
		if (pf != NULL && (fprintf(pf, "%ld\n", (long)pid) < 0 ||
		    fclose(pf) == EOF)) {
			log_warn("pidfile %s", pidfile);
			kill(pid, SIGTERM);
			unlink(pidfile);
			_exit(1);
		}
		_exit(0);
	}
	if (setsid() == -1)
		fatal("setsid");
	if (chdir("/") == -1)
		fatal("chdir /");
	if ((fd = open("/dev/null", O_RDWR)) != -1) {
		dup2(fd, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		if (fd > STDERR_FILENO)
			close(fd);
	}
	log_to_syslog();
}

/* sd_listen_fds(3) in a few lines: how many sockets systemd passed us. */
static int
systemd_fds(void)
{
	const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
	char *end;
	long n;
	int i;

	if (pid == NULL || fds == NULL)
		return 0;
	if (strtol(pid, &end, 10) != (long)getpid() || *end != '\0')
		return 0;
	n = strtol(fds, &end, 10);
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	if (*end != '\0' || n <= 0 || n > MASTER_MAX_LISTEN)
		return 0;
	for (i = 0; i < n; i++)
		fcntl(SD_LISTEN_FDS_START + i, F_SETFD, FD_CLOEXEC);
	return (int)n;
}

static void
serve_one(const struct options *o, struct conn_config *sc, int in, int out)
{
	char peer[NET_NAME_MAX];
	struct store st;

	open_store(o, &st);
	sc->store = &st;
	sc->bound_user = NULL;	/* -B binds the memcached listener only */
	auth_init();
	net_peer(in, peer, sizeof(peer));
	log_info("conn: pid %ld from %s", (long)getpid(), peer);
	child_serve(in, out, sc, PROTO_NATIVE, peer);
}

static void
log_start(const struct options *o, struct master_config *mc)
{
	char addr[64];
	int port = 0, i;

	if (net_local(mc->lfd[0], addr, sizeof(addr), &port) == -1)
		snprintf(addr, sizeof(addr), "unknown");
	log_info("start: kvstored %s listen %s port %d segment %s size %luM "
	    "maxconn %d", KV_VERSION, addr, port, o->segment,
	    (unsigned long)o->size_mb, o->maxconn);
	if (o->engine == ENGINE_EVENT)
		log_info("start: event engine, %d workers", o->workers);
	if (o->cache)
		log_info("start: cache mode: a write that finds no room "
		    "evicts");
	for (i = 1; i < mc->nlfd; i++)
		if (mc->lproto[i] == PROTO_MEMCACHED &&
		    net_local(mc->lfd[i], addr, sizeof(addr), &port) == 0)
			log_info("start: memcached protocol listen %s port %d%s%s",
			    addr, port, o->bound_user ? " as user " : "",
			    o->bound_user ? o->bound_user : "");
}

#ifdef KV_TEST_HOOKS
/*
 * Test builds only (-DKV_TEST_HOOKS, tests/kvstored-hooks): with
 * KVSTORE_TEST_HOLD_MS=N in the environment every put holds its stripe N ms
 * after filling its new chunk and before publishing it, and says so in the
 * log, so a test can kill a lock holder at a known moment.  With
 * KVSTORE_TEST_WRITE_PAUSE_MS=N every put waits N ms after the session has
 * checked its account and before the store takes the stripe, holding no
 * lock, so a test can delete the account in between.
 */
static unsigned test_hold_ms, test_pause_ms;

static void
test_hold(void)
{
	struct timespec ts = { test_hold_ms / 1000,
	    (long)(test_hold_ms % 1000) * 1000000L };

	log_info("test: pid %ld holds a stripe for %u ms", (long)getpid(),
	    test_hold_ms);
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/*
 * With KVSTORE_TEST_LOGIN_MS=N every secret check takes N ms more, as a
 * very slow hash would: the event engine must not stall on it.
 */
static unsigned test_login_ms;

static void
test_login(void)
{
	struct timespec ts = { test_login_ms / 1000,
	    (long)(test_login_ms % 1000) * 1000000L };

	log_info("test: pid %ld checks a secret for %u ms", (long)getpid(),
	    test_login_ms);
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

static void
test_pause(void)
{
	struct timespec ts = { test_pause_ms / 1000,
	    (long)(test_pause_ms % 1000) * 1000000L };

	log_info("test: pid %ld pauses a write for %u ms", (long)getpid(),
	    test_pause_ms);
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/*
 * With KVSTORE_TEST_MOVE_PAUSE_MS=N the first item a process moves to empty
 * a page (alloc.c's compaction) waits N ms with its copy made and not yet
 * published, its stripe held, and says so in the log, so a test can kill a
 * process in the middle of a move.  Once a process: the moves after it go
 * at full speed.
 */
static unsigned test_move_ms;

static void
test_move(void)
{
	struct timespec ts = { test_move_ms / 1000,
	    (long)(test_move_ms % 1000) * 1000000L };

	store_test_move = NULL;
	log_info("test: pid %ld moves an item, its copy made, for %u ms",
	    (long)getpid(), test_move_ms);
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/*
 * With KVSTORE_TEST_CRAWL_HOLD=PATH the first crawler to reclaim an item
 * creates PATH and then holds that item's stripe for a minute, saying so
 * in the log, so that a test can kill it there; a crawler that finds PATH
 * already there holds nothing.
 */
static const char *test_crawl_path;

static void
test_crawl(void)
{
	struct timespec ts = { 60, 0 };
	int fd;

	if ((fd = open(test_crawl_path, O_WRONLY | O_CREAT | O_EXCL, 0600)) ==
	    -1)
		return;
	close(fd);
	log_info("test: crawler pid %ld holds a stripe", (long)getpid());
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR && !conn_stop)
		;
}

static void
test_hooks(void)
{
	const char *ms = getenv("KVSTORE_TEST_HOLD_MS");

	if (ms != NULL && (test_hold_ms = (unsigned)strtoul(ms, NULL, 10)))
		store_test_hold = test_hold;
	ms = getenv("KVSTORE_TEST_LOGIN_MS");
	if (ms != NULL && (test_login_ms = (unsigned)strtoul(ms, NULL, 10)))
		cmd_test_login_hold = test_login;
	if ((test_crawl_path = getenv("KVSTORE_TEST_CRAWL_HOLD")) != NULL)
		store_test_crawl = test_crawl;
	ms = getenv("KVSTORE_TEST_WRITE_PAUSE_MS");
	if (ms != NULL && (test_pause_ms = (unsigned)strtoul(ms, NULL, 10)))
		store_test_unlocked = test_pause;
	ms = getenv("KVSTORE_TEST_MOVE_PAUSE_MS");
	if (ms != NULL && (test_move_ms = (unsigned)strtoul(ms, NULL, 10)))
		store_test_move = test_move;
}
#endif

int
main(int argc, char **argv)
{
	struct options o;
	struct conn_config sc;
	struct master_config mc;
	struct store st;
	char err[512];
	int nfds, i, rc;

	parse_options(argc, argv, &o);
	log_init("kvstored", !o.inetd, o.verbose);
#ifdef KV_TEST_HOOKS
	test_hooks();
#endif
	if (o.remove) {
		if (store_remove(o.segment) == -1)
			fatal("remove segment %s", o.segment);
		log_info("removed segment %s", o.segment);
		return 0;
	}
	if (o.check) {
		if (store_open(&st, o.segment, NULL, 0, err, sizeof(err)) == -1)
			fatalx("%s", err);
		if (store_attach_process(&st) == -1)
			return 1;
		rc = store_check(&st, stdout);
		store_close(&st);
		return rc;
	}
	memset(&sc, 0, sizeof(sc));
	sc.idle_timeout = o.idle_timeout;
	sc.mc_idle_timeout = o.mc_idle_timeout;
	sc.partial_timeout = o.partial_timeout;
	sc.login_timeout = o.login_timeout;
	sc.per_addr = o.per_addr;
	sc.per_addr_prelogin = o.per_addr_prelogin;
	sc.bound_user = o.bound_user;
	sc.policy.registration = !o.closed;
	sc.policy.quota_keys = o.quota_keys;
	sc.policy.quota_bytes = o.quota_bytes;
	sc.policy.reg_limit = o.reg_limit;
	sc.policy.max_accounts = o.max_accounts;
	sc.policy.users_file = o.users_file[0] ? o.users_file : NULL;
	sc.policy.bound_user = o.bound_user;
	sc.policy.throttle_ms = o.throttle_ms;
	sc.policy.login_wait_ms = (unsigned)o.login_timeout * 1000;
	sc.policy.stop = &conn_stop;

	if (o.inetd) {
		drop_privileges(&o);
		serve_one(&o, &sc, STDIN_FILENO, STDOUT_FILENO);
	}
	memset(&mc, 0, sizeof(mc));
	mc.maxconn = o.maxconn;
	mc.max_spares = o.max_spares < o.maxconn ? o.max_spares : o.maxconn;
	mc.engine = o.engine;
	mc.workers = o.workers;
	mc.conn = &sc;
	mc.users_file = sc.policy.users_file;
	nfds = systemd_fds();
	if (nfds > 0 && net_is_listening(SD_LISTEN_FDS_START) == 0) {
		/* Accept=yes: one connection, already accepted. */
		drop_privileges(&o);
		serve_one(&o, &sc, SD_LISTEN_FDS_START, SD_LISTEN_FDS_START);
	}
	for (i = 0; i < nfds; i++)
		mc.lfd[mc.nlfd++] = SD_LISTEN_FDS_START + i;
	if (mc.nlfd == 0) {
		if ((mc.lfd[0] = net_listen(o.address, o.port, err,
		    sizeof(err))) == -1)
			fatalx("%s", err);
		mc.nlfd = 1;
	}
	if (o.mc_port != NULL) {
		if (mc.nlfd == MASTER_MAX_LISTEN)
			fatalx("too many listening sockets for -M");
		if ((mc.lfd[mc.nlfd] = net_listen(o.address, o.mc_port, err,
		    sizeof(err))) == -1)
			fatalx("%s", err);
		mc.lproto[mc.nlfd++] = PROTO_MEMCACHED;
	}
	drop_privileges(&o);
	open_store(&o, &st);
	sc.store = &st;
	auth_init();
	if (!o.foreground)
		daemonize(o.pidfile);
	else
		write_pidfile(o.pidfile);
	log_start(&o, &mc);
	rc = master_run(&mc);
	if (o.pidfile != NULL)
		unlink(o.pidfile);
	return rc;
}
