/*
 * kvstore.c - the client: kvstore host port [put KEY VALUE | get KEY | ...]
 *
 * The whole command sequence is checked before anything is sent; then the
 * client logs in (creating its secret on first contact) and runs the
 * commands in order over one connection, one at a time, so that a command
 * the server refused stops the sequence with everything before it done and
 * printed.
 */
#include <sys/random.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <poll.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "buf.h"
#include "kvstore.h"
#include "net.h"
#include "protocol.h"

#define EXIT_SERVER	1	/* the server answered an error */
#define EXIT_USAGE	2
#define EXIT_CONNECT	3
#define EXIT_LOST	4	/* connection lost, or a reply we cannot read */
#define EXIT_AUTH	5

#define SECRET_BYTES	32

struct command {
	enum verb	 verb;
	const char	*word;
	char		**args;
	int		 nargs;
};

static struct {
	const char	*host;
	const char	*port;
	char		 where[300];	/* host:port for messages */
	int		 fd;
	int		 timeout;	/* seconds */
	int		 interactive;	/* a server error is reported, not fatal */
	const char	*password_file;
	int		 ask_password;
	struct buf	 in, out;
} conn;

static void
usage(void)
{
	fprintf(stderr,
	    "usage: kvstore [-p] [--password-file file] [-t seconds] "
	    "[-u user] host port\n"
	    "               [put key value | get key | del key | use user |\n"
	    "                keys pattern | users | incr key [n] | decr key [n] |\n"
	    "                gets key | cas key cas value] ...\n");
	exit(EXIT_USAGE);
}

static void
die(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3),
    noreturn));

static void
die(int code, const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fprintf(stderr, "kvstore: %s: ", conn.where);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(code);
}

static const struct {
	const char	*word;
	enum verb	 verb;
	int		 nargs;
	int		 optnum;	/* a number may follow: incr k 5 */
	int		 key;		/* the first argument is a key */
} words[] = {
	{ "put", CMD_PUT, 2, 0, 1 },
	{ "get", CMD_GET, 1, 0, 1 },
	{ "del", CMD_DEL, 1, 0, 1 },
	{ "use", CMD_USE, 1, 0, 0 },
	{ "keys", CMD_SCAN, 1, 0, 0 },
	{ "users", CMD_USERS, 0, 0, 0 },
	{ "incr", CMD_INCR, 1, 1, 1 },
	{ "decr", CMD_DECR, 1, 1, 1 },
	{ "gets", CMD_GETS, 1, 0, 1 },
	{ "cas", CMD_CAS, 3, 0, 1 },
};

static int
all_digits(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s != '\0'; s++)
		if (*s < '0' || *s > '9')
			return 0;
	return 1;
}

/* Split argv into commands; any mistake is a usage error, nothing sent. */
static int
parse_commands(int argc, char **argv, struct command *cmds)
{
	int n = 0, i = 0;
	size_t w;

	while (i < argc) {
		for (w = 0; w < sizeof(words) / sizeof(words[0]); w++)
			if (strcmp(argv[i], words[w].word) == 0)
				break;
		if (w == sizeof(words) / sizeof(words[0])) {
			fprintf(stderr, "kvstore: unknown command '%s'\n",
			    argv[i]);
			return -1;
		}
		if (argc - i - 1 < words[w].nargs) {
			fprintf(stderr, "kvstore: '%s' needs %d argument%s\n",
			    argv[i], words[w].nargs,
			    words[w].nargs == 1 ? "" : "s");
			return -1;
		}
		cmds[n].verb = words[w].verb;
		cmds[n].word = words[w].word;
		cmds[n].args = argv + i + 1;
		cmds[n].nargs = words[w].nargs;
		/* A command word is never a number: "incr k 5 get k" is clear. */
		if (words[w].optnum && i + 1 + cmds[n].nargs < argc &&
		    all_digits(argv[i + 1 + cmds[n].nargs]))
			cmds[n].nargs++;
		if (words[w].key && (strlen(cmds[n].args[0]) == 0 ||
		    strlen(cmds[n].args[0]) > KV_KEY_MAX)) {
			fprintf(stderr, "kvstore: a key is 1 to %d bytes\n",
			    KV_KEY_MAX);
			return -1;
		}
		if (cmds[n].verb == CMD_CAS && !all_digits(cmds[n].args[1])) {
			fprintf(stderr, "kvstore: a cas value is a decimal "
			    "number\n");
			return -1;
		}
		i += 1 + cmds[n].nargs;
		n++;
	}
	return n;
}

static void
send_request(const char *word, char **args, int nargs)
{
	ssize_t n;
	int i;

	buf_reset(&conn.out);
	buf_appendstr(&conn.out, word);
	for (i = 0; i < nargs; i++)
		proto_append_arg(&conn.out, args[i], strlen(args[i]),
		    i == nargs - 1);
	buf_append(&conn.out, "\r\n", 2);
	while (buf_avail(&conn.out) > 0) {
		n = write(conn.fd, buf_head(&conn.out), buf_avail(&conn.out));
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			die(EXIT_LOST, "%s", n == 0 ? "write failed" :
			    strerror(errno));
		buf_consume(&conn.out, (size_t)n);
	}
}

/* Read until one whole reply is buffered; r points into conn.in. */
static void
read_reply(struct reply *r)
{
	struct pollfd pfd;
	ssize_t n;

	buf_consume(&conn.in, r->consumed);
	r->consumed = 0;
	for (;;) {
		switch (proto_parse_reply(buf_head(&conn.in),
		    buf_avail(&conn.in), KV_VALUE_MAX_LIMIT, r)) {
		case PARSE_OK:
			return;
		case PARSE_ERROR:
			die(EXIT_LOST, "unreadable reply from server");
		default:
			break;
		}
		pfd.fd = conn.fd;
		pfd.events = POLLIN;
		n = poll(&pfd, 1, conn.timeout * 1000);
		if (n == 0)
			die(EXIT_LOST, "no reply within %d seconds",
			    conn.timeout);
		if (n == -1 && errno == EINTR)
			continue;
		buf_reserve(&conn.in, 65536);
		n = read(conn.fd, conn.in.data + conn.in.len,
		    conn.in.cap - conn.in.len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == 0)
			die(EXIT_LOST, "connection closed by server");
		if (n == -1)
			die(EXIT_LOST, "%s", strerror(errno));
		conn.in.len += (size_t)n;
	}
}

/* 1 after an error reply: fatal, except at an interactive prompt. */
static int
fail_on_error(const struct reply *r)
{
	if (r->kind != REPLY_ERR)
		return 0;
	if (conn.interactive) {
		fprintf(stderr, "kvstore: %.*s\n", (int)r->linelen, r->line);
		return 1;
	}
	die(r->linelen >= 5 && memcmp(r->line, "auth ", 5) == 0 ? EXIT_AUTH :
	    EXIT_SERVER, "%.*s", (int)r->linelen, r->line);
}

/* ---- identity ------------------------------------------------------------ */

static void
secret_path(char *path, size_t n, const char *user, int mkdirs)
{
	const char *home = getenv("HOME");
	char dir[PATH_MAX];

	if (home == NULL || home[0] == '\0')
		die(EXIT_AUTH, "HOME is not set: nowhere to keep the secret");
	snprintf(dir, sizeof(dir), "%s/.kvstore", home);
	if (mkdirs && mkdir(dir, 0700) == -1 && errno != EEXIST)
		die(EXIT_AUTH, "mkdir %s: %s", dir, strerror(errno));
	snprintf(dir, sizeof(dir), "%s/.kvstore/secrets", home);
	if (mkdirs && mkdir(dir, 0700) == -1 && errno != EEXIST)
		die(EXIT_AUTH, "mkdir %s: %s", dir, strerror(errno));
	if ((size_t)snprintf(path, n, "%s/%s,%s,%s", dir, conn.host, conn.port,
	    user) >= n)
		die(EXIT_AUTH, "secret path too long");
}

/* 1 when a secret was read, 0 when there is none yet. */
static int
read_secret(const char *path, char *secret, size_t n)
{
	struct stat sb;
	ssize_t len;
	int fd;

	if ((fd = open(path, O_RDONLY | O_NOFOLLOW)) == -1) {
		if (errno == ENOENT)
			return 0;
		die(EXIT_AUTH, "%s: %s", path, strerror(errno));
	}
	if (fstat(fd, &sb) == -1 || (sb.st_mode & 077) != 0 ||
	    sb.st_uid != getuid())
		die(EXIT_AUTH, "%s must be yours and mode 0600", path);
	len = read(fd, secret, n - 1);
	close(fd);
	if (len <= 0)
		die(EXIT_AUTH, "%s is empty", path);
	secret[len] = '\0';
	secret[strcspn(secret, "\r\n")] = '\0';
	return 1;
}

static void
new_secret(const char *path, char *secret, size_t n)
{
	unsigned char raw[SECRET_BYTES];
	int fd, i;

	if (n < 2 * SECRET_BYTES + 2 ||
	    getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
		die(EXIT_AUTH, "cannot make a secret");
	for (i = 0; i < SECRET_BYTES; i++)
		snprintf(secret + 2 * i, 3, "%02x", raw[i]);
	if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600)) ==
	    -1)
		die(EXIT_AUTH, "%s: %s", path, strerror(errno));
	if (dprintf(fd, "%s\n", secret) < 0 || fsync(fd) == -1 ||
	    close(fd) == -1)
		die(EXIT_AUTH, "%s: %s", path, strerror(errno));
}

/* Read a password with echo off from the terminal. */
static void
ask(const char *what, char *out, size_t n)
{
	struct termios t, quiet;
	FILE *tty = fopen("/dev/tty", "r+");

	if (tty == NULL)
		die(EXIT_AUTH, "no terminal to ask for the password");
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

/*
 * A password the operator gave this account, from --password-file (which
 * must be mode 0600), -p (the terminal), or KVSTORE_PASSWORD; 0 when none
 * was asked for, and trust on first use applies.
 */
static int
password(char *out, size_t n)
{
	const char *env = getenv("KVSTORE_PASSWORD");

	if (conn.password_file != NULL) {
		if (!read_secret(conn.password_file, out, n))
			die(EXIT_AUTH, "%s: %s", conn.password_file,
			    strerror(ENOENT));
		return 1;
	}
	if (conn.ask_password) {
		ask("Password", out, n);
		return 1;
	}
	if (env != NULL) {
		snprintf(out, n, "%s", env);
		return 1;
	}
	return 0;
}

/* Trust on first use: register with a fresh secret, later log in with it. */
static void
log_in(const char *user)
{
	char path[PATH_MAX], secret[KV_SECRET_MAX + 2];
	char *args[2];
	struct reply r = { 0 };
	int known, pw;

	if ((pw = password(secret, sizeof(secret))))
		known = 1;
	else {
		secret_path(path, sizeof(path), user, 1);
		if (!(known = read_secret(path, secret, sizeof(secret))))
			new_secret(path, secret, sizeof(secret));
	}
	args[0] = (char *)user;
	args[1] = secret;
	send_request(known ? "login" : "register", args, 2);
	read_reply(&r);
	explicit_bzero(secret, sizeof(secret));
	if (r.kind == REPLY_ERR) {
		if (!known)
			unlink(path);
		if (!known && r.linelen == 15 &&
		    memcmp(r.line, "auth name taken", 15) == 0)
			die(EXIT_AUTH, "user %s is registered here with "
			    "another secret", user);
		conn.interactive = 0;
		fail_on_error(&r);
	}
	if (r.linelen < 3 || memcmp(r.line, "OK ", 3) != 0)
		die(EXIT_LOST, "unexpected reply to login");
	buf_consume(&conn.in, r.consumed);
}

static const char *
login_name(void)
{
	struct passwd *pw = getpwuid(getuid());

	if (pw == NULL)
		die(EXIT_AUTH, "who are you? (no passwd entry; use -u)");
	return pw->pw_name;
}

/* A refusal that is not an ERR reply (EXISTS, say): as fail_on_error(). */
static void
refused(const char *fmt, const char *arg)
{
	if (conn.interactive) {
		fprintf(stderr, "kvstore: ");
		fprintf(stderr, fmt, arg);
		fputc('\n', stderr);
		return;
	}
	fflush(stdout);
	fprintf(stderr, "kvstore: %s: ", conn.where);
	fprintf(stderr, fmt, arg);
	fputc('\n', stderr);
	exit(EXIT_SERVER);
}

/* "WORD next n" (KEYS, USERS): 0, or -1 when it is not that. */
static int
piece_header(const struct reply *r, const char *word, uint32_t *next,
    unsigned long *n)
{
	char line[64], w[8], extra;

	if (r->kind != REPLY_LINE || r->linelen >= sizeof(line))
		return -1;
	memcpy(line, r->line, r->linelen);
	line[r->linelen] = '\0';
	if (sscanf(line, "%7s %" SCNu32 " %lu%c", w, next, n, &extra) != 3 ||
	    strcmp(w, word) != 0)
		return -1;
	return 0;
}

/*
 * keys PATTERN, users: walk the server's cursor to the end, a piece per
 * request, printing each key (or account) on a line of its own.
 */
static void
run_walk(const struct command *c)
{
	char cur[16], *args[2], key[KV_KEY_MAX * 4 + 4];
	struct reply r = { 0 };
	uint32_t next = 0;
	unsigned long n, k;
	size_t klen;
	int users = c->verb == CMD_USERS;

	do {
		snprintf(cur, sizeof(cur), "%" PRIu32, next);
		args[0] = cur;
		args[1] = users ? NULL : c->args[0];
		send_request(users ? "users" : "scan", args, users ? 1 : 2);
		read_reply(&r);
		if (fail_on_error(&r)) {
			buf_consume(&conn.in, r.consumed);
			return;
		}
		if (piece_header(&r, users ? "USERS" : "KEYS", &next, &n) == -1)
			die(EXIT_LOST, "unexpected reply to %s", c->word);
		for (k = 0; k < n; k++) {
			read_reply(&r);
			if (r.kind != REPLY_LINE || r.linelen < 5 ||
			    memcmp(r.line, users ? "USER " : "KEY ", 4) != 0)
				die(EXIT_LOST, "unexpected reply to %s",
				    c->word);
			if (users) {
				printf("%.*s\n", (int)r.linelen - 5, r.line + 5);
				continue;
			}
			/* proto_token() needs room for the token's length */
			if (r.linelen - 4 > sizeof(key) ||
			    proto_token(r.line + 4, r.linelen - 4, key,
			    &klen) == -1 || klen > KV_KEY_MAX)
				die(EXIT_LOST, "unreadable key from server");
			fwrite(key, 1, klen, stdout);
			putchar('\n');
		}
		read_reply(&r);
		if (r.kind != REPLY_LINE || r.linelen != 3 ||
		    memcmp(r.line, "END", 3) != 0)
			die(EXIT_LOST, "unexpected reply to %s", c->word);
	} while (next != 0);
	buf_consume(&conn.in, r.consumed);
}

static void
run(const struct command *c)
{
	struct reply r = { 0 };

	if (c->verb == CMD_SCAN || c->verb == CMD_USERS) {
		run_walk(c);
		return;
	}
	send_request(c->word, c->args, c->nargs);
	read_reply(&r);
	if (fail_on_error(&r)) {
		buf_consume(&conn.in, r.consumed);
		return;
	}
	switch (c->verb) {
	case CMD_GET:
		if (r.kind == REPLY_VALUE)
			fwrite(r.data, 1, r.datalen, stdout);
		else if (r.kind != REPLY_NOT_FOUND)
			die(EXIT_LOST, "unexpected reply to get");
		putchar('\n');
		break;
	case CMD_PUT:
		if (r.kind != REPLY_LINE || r.linelen != 2)
			die(EXIT_LOST, "unexpected reply to put");
		break;
	case CMD_DEL:
		if (r.kind == REPLY_LINE && r.linelen != 2)
			die(EXIT_LOST, "unexpected reply to del");
		break;
	case CMD_GETS:
		if (r.kind == REPLY_VALUE && r.has_cas) {
			printf("%" PRIu64 " ", r.cas);
			fwrite(r.data, 1, r.datalen, stdout);
		} else if (r.kind != REPLY_NOT_FOUND)
			die(EXIT_LOST, "unexpected reply to gets");
		putchar('\n');
		break;
	case CMD_INCR:
	case CMD_DECR:
		if (r.kind == REPLY_NOT_FOUND) {
			refused("no such key '%s'", c->args[0]);
			break;
		}
		if (r.kind != REPLY_LINE || r.linelen < 8 ||
		    memcmp(r.line, "NUMBER ", 7) != 0)
			die(EXIT_LOST, "unexpected reply to %s", c->word);
		printf("%.*s\n", (int)r.linelen - 7, r.line + 7);
		break;
	case CMD_CAS:
		if (r.kind == REPLY_NOT_FOUND)
			refused("no such key '%s'", c->args[0]);
		else if (r.kind == REPLY_LINE && r.linelen == 6 &&
		    memcmp(r.line, "EXISTS", 6) == 0)
			refused("'%s' was changed since that cas was read",
			    c->args[0]);
		else if (r.kind != REPLY_LINE || r.linelen != 2)
			die(EXIT_LOST, "unexpected reply to cas");
		break;
	default:
		break;
	}
	buf_consume(&conn.in, r.consumed);
}

/*
 * Split a typed line into words: blanks separate, "..." and '...' quote,
 * and inside double quotes \\ \" \n \t are escapes.  In place.
 */
static int
split_line(char *line, char **words, int max)
{
	char *p = line, *o;
	int n = 0;

	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0' || *p == '\n')
			return n;
		if (n == max)
			return -2;
		words[n++] = o = p;
		while (*p != '\0' && *p != '\n' && *p != ' ' && *p != '\t') {
			char q = *p;

			if (q != '"' && q != '\'') {
				*o++ = *p++;
				continue;
			}
			for (p++; *p != q; p++) {
				if (*p == '\0' || *p == '\n')
					return -1;
				if (q == '"' && *p == '\\' && p[1] != '\0') {
					p++;
					*o++ = *p == 'n' ? '\n' : *p == 't' ?
					    '\t' : *p;
				} else
					*o++ = *p;
			}
			p++;
		}
		if (*p != '\0' && *p != '\n')
			p++;
		*o = '\0';
	}
}

static void
help(void)
{
	printf("put KEY VALUE    store VALUE under KEY\n"
	    "get KEY          print the value, or an empty line\n"
	    "del KEY          remove KEY\n"
	    "use USER         (managers) work on USER's store; your own name "
	    "goes back\n"
	    "keys PATTERN     list your keys that match PATTERN (* ? [...])\n"
	    "users            (managers) list the accounts, roles, key counts\n"
	    "incr KEY [N]     add N (1) to a number, print the result\n"
	    "decr KEY [N]     subtract N (1), stopping at 0\n"
	    "gets KEY         print the cas value, a space, the value\n"
	    "cas KEY CAS VAL  store VAL if KEY's cas is still CAS\n"
	    "help, quit\n"
	    "Quote words with spaces: put motto \"Unity in diversity\"\n");
}

/* The prompt tells who and what you are: alice@guest$ or bob@manager# */
static void
show_prompt(void)
{
	static char *none[1];
	struct reply r = { 0 };
	char who[KV_USER_MAX * 3];
	const char *sp;

	send_request("whoami", none, 0);
	read_reply(&r);
	snprintf(who, sizeof(who), "%.*s", (int)r.linelen, r.line);
	buf_consume(&conn.in, r.consumed);
	/* "USER alice guest" */
	if (strncmp(who, "USER ", 5) == 0 && (sp = strchr(who + 5, ' ')) !=
	    NULL) {
		printf("%.*s@%s%s ", (int)(sp - who - 5), who + 5, sp + 1,
		    strcmp(sp + 1, "manager") == 0 ? "#" : "$");
	} else
		printf("kvstore> ");
	fflush(stdout);
}

/* No commands on the line: read them from stdin, one per line. */
static int
read_commands(void)
{
	char *line = NULL, *words[64];
	struct command cmds[32];
	size_t cap = 0;
	int n, i, rc = 0, tty = isatty(STDIN_FILENO);

	conn.interactive = tty;
	for (;;) {
		if (tty)
			show_prompt();
		if (getline(&line, &cap, stdin) == -1)
			break;
		if ((n = split_line(line, words, 64)) < 0) {
			fprintf(stderr, "kvstore: %s\n", n == -2 ?
			    "more than 64 words on a line" : "unbalanced quotes");
			if (!tty) {
				rc = EXIT_USAGE;
				break;
			}
			continue;
		}
		if (n == 0)
			continue;
		if (strcmp(words[0], "quit") == 0 ||
		    strcmp(words[0], "exit") == 0)
			break;
		if (strcmp(words[0], "help") == 0) {
			help();
			continue;
		}
		if ((n = parse_commands(n, words, cmds)) < 0) {
			if (!tty) {
				rc = EXIT_USAGE;
				break;
			}
			continue;
		}
		for (i = 0; i < n; i++)
			run(&cmds[i]);
		fflush(stdout);
	}
	if (tty)
		putchar('\n');
	free(line);	/* on every path: sanitizer builds count leaks */
	return rc;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "password", no_argument, NULL, 'p' },
		{ "password-file", required_argument, NULL, 'F' },
		{ "timeout", required_argument, NULL, 't' },
		{ "user", required_argument, NULL, 'u' },
		{ NULL, 0, NULL, 0 }
	};
	struct command *cmds;
	const char *user = NULL;
	char err[256], *end;
	long port;
	int ch, n, i, rc = 0;

	conn.timeout = 30;
	while ((ch = getopt_long(argc, argv, "+hpt:u:", longopts, NULL)) !=
	    -1) {
		switch (ch) {
		case 'F':
			conn.password_file = optarg;
			break;
		case 'p':
			conn.ask_password = 1;
			break;
		case 't':
			conn.timeout = (int)strtol(optarg, &end, 10);
			if (*end != '\0' || conn.timeout <= 0)
				usage();
			break;
		case 'u':
			user = optarg;
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 2)
		usage();
	conn.host = argv[0];
	conn.port = argv[1];
	port = strtol(conn.port, &end, 10);
	if (conn.port[0] < '0' || conn.port[0] > '9' || *end != '\0' ||
	    port < 1 || port > 65535) {
		fprintf(stderr, "kvstore: bad port '%s'\n", conn.port);
		usage();
	}
	if (user != NULL && (strlen(user) == 0 || strlen(user) > KV_USER_MAX ||
	    strchr(user, '/') != NULL)) {
		fprintf(stderr, "kvstore: bad user name '%s'\n", user);
		usage();
	}
	if ((cmds = calloc((size_t)argc, sizeof(*cmds))) == NULL)
		return EXIT_USAGE;
	if ((n = parse_commands(argc - 2, argv + 2, cmds)) < 0)
		usage();
	snprintf(conn.where, sizeof(conn.where), strchr(conn.host, ':') ?
	    "[%s]:%s" : "%s:%s", conn.host, conn.port);
	if (user == NULL)
		user = login_name();

	if ((conn.fd = net_connect(conn.host, conn.port, err, sizeof(err))) ==
	    -1)
		die(EXIT_CONNECT, "%s", err);
	log_in(user);
	if (argc == 2)
		rc = read_commands();
	for (i = 0; i < n; i++)
		run(&cmds[i]);
	free(cmds);	/* LeakSanitizer builds count it otherwise */
	if (fflush(stdout) == EOF) {
		perror("kvstore: stdout");
		return EXIT_SERVER;
	}
	return rc;
}
