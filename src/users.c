/*
 * users.c - load and save the accounts file.
 *
 * The segment is the live truth while kvstored runs; the file is how the
 * accounts survive a reboot.  Every writer (a child that registered a guest,
 * kvstorectl after a role change) writes the whole table from the segment:
 * under an fcntl lock on PATH.lock, to a new temporary file with a random
 * name in the same directory, fsync, rename over PATH, fsync the directory.
 * A reader therefore sees the old file or the new one, never half of
 * either.  The writer follows no symbolic link it finds in that directory
 * and gives the file to no one: kvstorectl run by root writes it as the
 * segment's owner, the daemon's user (see kvstorectl.c).
 *
 * Format, one account per line:  name:role:hash   (role guest or manager)
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "kvstore.h"
#include "users.h"

const char *
role_name(int role)
{
	return role == KV_ROLE_MANAGER ? "manager" : "guest";
}

int
role_parse(const char *s)
{
	if (strcmp(s, "guest") == 0)
		return KV_ROLE_GUEST;
	if (strcmp(s, "manager") == 0)
		return KV_ROLE_MANAGER;
	return -1;
}

/* An absent file is fine (it is made on the first save); a readable one is not. */
int
users_check_file(const char *path, char *err, size_t errlen)
{
	struct stat sb;

	if (stat(path, &sb) == -1) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "users file %s: %s", path,
		    strerror(errno));
		return -1;
	}
	if (!S_ISREG(sb.st_mode)) {
		snprintf(err, errlen, "users file %s is not a regular file",
		    path);
		return -1;
	}
	if ((sb.st_mode & 077) != 0) {
		snprintf(err, errlen, "users file %s is mode %03o: it must not "
		    "be readable by group or others (chmod 600)", path,
		    (unsigned)(sb.st_mode & 0777));
		return -1;
	}
	if (sb.st_uid != geteuid()) {
		snprintf(err, errlen, "users file %s is owned by uid %u, not by "
		    "this daemon's uid %u", path, (unsigned)sb.st_uid,
		    (unsigned)geteuid());
		return -1;
	}
	return 0;
}

/*
 * The directory PATH is in, opened: every later step works relative to this
 * descriptor, so a directory swapped in meanwhile changes nothing.  It must
 * belong to the writer (or root) and be closed to group and others: in a
 * directory another user may write, that user could plant names for the
 * writer to follow.
 */
static int
open_dir(const char *path, char *base, size_t baselen, char *err,
    size_t errlen)
{
	char copy[PATH_MAX], copy2[PATH_MAX], *dir;
	struct stat sb;
	int dfd;

	/* basename() and dirname() may write into their argument: two copies. */
	if (snprintf(copy, sizeof(copy), "%s", path) >= (int)sizeof(copy) ||
	    snprintf(copy2, sizeof(copy2), "%s", path) >= (int)sizeof(copy2) ||
	    snprintf(base, baselen, "%s", basename(copy)) >= (int)baselen) {
		snprintf(err, errlen, "users file %s: path too long", path);
		return -1;
	}
	if (strcmp(base, "/") == 0 || strcmp(base, ".") == 0 ||
	    strcmp(base, "..") == 0) {
		snprintf(err, errlen, "users file %s: not a file name", path);
		return -1;
	}
	dir = dirname(copy2);
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		return -1;
	}
	if (fstat(dfd, &sb) == -1 || (sb.st_uid != geteuid() &&
	    sb.st_uid != 0) || (sb.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
		snprintf(err, errlen, "users file directory %s must belong to "
		    "uid %u and not be writable by group or others", dir,
		    (unsigned)geteuid());
		close(dfd);
		return -1;
	}
	return dfd;
}

/* The lock, PATH.lock: never through a symbolic link, and only a file. */
static int
lock_file(int dfd, const char *path, const char *base, char *err,
    size_t errlen)
{
	char name[NAME_MAX + 1];
	struct flock fl;
	struct stat sb;
	int fd;

	if (snprintf(name, sizeof(name), "%s.lock", base) >=
	    (int)sizeof(name)) {
		snprintf(err, errlen, "%s.lock: name too long", path);
		return -1;
	}
	if ((fd = openat(dfd, name, O_RDWR | O_CREAT | O_NOFOLLOW |
	    O_NONBLOCK | O_CLOEXEC, 0600)) == -1) {
		snprintf(err, errlen, "%s.lock: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &sb) == -1 || !S_ISREG(sb.st_mode)) {
		snprintf(err, errlen, "%s.lock is not a regular file", path);
		close(fd);
		return -1;
	}
	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	while (fcntl(fd, F_SETLKW, &fl) == -1) {
		if (errno != EINTR) {
			snprintf(err, errlen, "lock %s.lock: %s", path,
			    strerror(errno));
			close(fd);
			return -1;
		}
	}
	return fd;
}

/*
 * A new temporary file BASE.tmp.XXXXXX, as mkstemp(3) makes one but in the
 * opened directory: a fresh random name, created here and now (O_EXCL), and
 * never a symbolic link planted at that name (O_NOFOLLOW).
 */
static int
temp_file(int dfd, const char *path, const char *base, char *name,
    size_t namelen, char *err, size_t errlen)
{
	static const char set[] = "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
	unsigned char rnd[6];
	size_t i, n;
	int tries, fd;

	n = (size_t)snprintf(name, namelen, "%s.tmp.", base);
	if (n + sizeof(rnd) >= namelen) {
		snprintf(err, errlen, "%s.tmp: name too long", path);
		return -1;
	}
	for (tries = 0; tries < 100; tries++) {
		if (getentropy(rnd, sizeof(rnd)) == -1)
			break;
		for (i = 0; i < sizeof(rnd); i++)
			name[n + i] = set[rnd[i] % (sizeof(set) - 1)];
		name[n + i] = '\0';
		fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL |
		    O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd != -1)
			return fd;
		if (errno != EEXIST)
			break;
	}
	snprintf(err, errlen, "%s: no temporary file beside it: %s", path,
	    strerror(errno));
	return -1;
}

/* Bring the segment's accounts up to the file: add or update each line. */
int
users_load(struct store *st, const char *path, char *err, size_t errlen)
{
	char line[512];
	FILE *f;
	int lineno = 0, rc = 0;

	if (users_check_file(path, err, errlen) == -1)
		return -1;
	if ((f = fopen(path, "r")) == NULL) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		char *name, *role, *hash, *p = line;
		uint32_t id;
		int r;

		lineno++;
		line[strcspn(line, "\r\n")] = '\0';
		if (line[0] == '#' || line[0] == '\0')
			continue;
		name = strsep(&p, ":");
		role = strsep(&p, ":");
		hash = strsep(&p, ":");
		if (hash == NULL || p != NULL ||
		    !auth_valid_name(name, strlen(name)) ||
		    (r = role_parse(role)) < 0 ||
		    (hash[0] != '*' && !auth_hash_ok(hash))) {
			snprintf(err, errlen, "%s:%d: bad account line", path,
			    lineno);
			rc = -1;
			break;
		}
		if ((id = store_user_find(st, name)) != 0)
			store_user_set(st, id, r, hash);
		else if (store_user_find_deleting(st, name) != 0)
			/* A userdel killed before it saved the file: the
			 * account goes, the next userdel finishes it. */
			continue;
		else if ((r = store_user_create(st, name, r, hash, &id)) !=
		    ST_OK) {
			if (r == ST_FULL)
				snprintf(err, errlen, "%s:%d: cannot add account "
				    "%s: all %u accounts of the segment are "
				    "taken (kvstored -a)", path, lineno, name,
				    store_accounts_max(st));
			else
				snprintf(err, errlen, "%s:%d: cannot add account "
				    "%s", path, lineno, name);
			rc = -1;
			break;
		}
	}
	fclose(f);
	return rc;
}

struct saver {
	FILE	*f;
	int	 failed;
};

static void
save_one(void *ctx, const struct user_view *v)
{
	struct saver *sv = ctx;

	if (fprintf(sv->f, "%s:%s:%s\n", v->name, role_name(v->role),
	    v->hash[0] ? v->hash : "*") < 0)
		sv->failed = 1;
}

int
users_save(struct store *st, const char *path, char *err, size_t errlen)
{
	char base[NAME_MAX + 1], tmp[NAME_MAX + 16];
	struct saver sv = { NULL, 0 };
	int dfd, lockfd, fd;

	if ((dfd = open_dir(path, base, sizeof(base), err, errlen)) == -1)
		return -1;
	if ((lockfd = lock_file(dfd, path, base, err, errlen)) == -1) {
		close(dfd);
		return -1;
	}
	/*
	 * Written as whoever runs this, never handed to anyone: kvstorectl
	 * run by root has become the segment's owner before it gets here.
	 */
	fd = temp_file(dfd, path, base, tmp, sizeof(tmp), err, errlen);
	if (fd == -1 || (sv.f = fdopen(fd, "w")) == NULL) {
		if (fd != -1) {
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			unlinkat(dfd, tmp, 0);
			close(fd);
		}
		close(lockfd);
		close(dfd);
		return -1;
	}
	fputs("# kvstore accounts: name:role:hash (written by kvstored and "
	    "kvstorectl)\n", sv.f);
	store_user_list(st, save_one, &sv);
	if (fflush(sv.f) == EOF || fsync(fd) == -1)
		sv.failed = 1;
	if (fclose(sv.f) == EOF)
		sv.failed = 1;
	if (sv.failed || renameat(dfd, tmp, dfd, base) == -1) {
		snprintf(err, errlen, "write %s: %s", path, strerror(errno));
		unlinkat(dfd, tmp, 0);
		close(lockfd);
		close(dfd);
		return -1;
	}
	fsync(dfd);
	close(lockfd);
	close(dfd);
	return 0;
}
