/*
 * users.c - load and save the accounts file.
 *
 * The segment is the live truth while kvstored runs; the file is how the
 * accounts survive a reboot.  Every writer (a child that registered a guest,
 * kvstorectl after a role change) writes the whole table from the segment:
 * under an fcntl lock on PATH.lock, to a temporary file in the same
 * directory, fsync, rename over PATH, fsync the directory.  A reader
 * therefore sees the old file or the new one, never half of either.
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

static int
lock_file(const char *path, char *err, size_t errlen)
{
	char lockpath[PATH_MAX];
	struct flock fl;
	int fd;

	snprintf(lockpath, sizeof(lockpath), "%s.lock", path);
	if ((fd = open(lockpath, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
	    0600)) == -1) {
		snprintf(err, errlen, "%s: %s", lockpath, strerror(errno));
		return -1;
	}
	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	while (fcntl(fd, F_SETLKW, &fl) == -1) {
		if (errno != EINTR) {
			snprintf(err, errlen, "lock %s: %s", lockpath,
			    strerror(errno));
			close(fd);
			return -1;
		}
	}
	return fd;
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
		else if (store_user_create(st, name, r, hash, &id) != ST_OK) {
			snprintf(err, errlen, "%s:%d: cannot add account %s",
			    path, lineno, name);
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
	char tmp[PATH_MAX], dir[PATH_MAX];
	struct saver sv = { NULL, 0 };
	struct stat sb;
	int lockfd, fd, dfd;

	if ((lockfd = lock_file(path, err, errlen)) == -1)
		return -1;
	snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) ==
	    -1 || (sv.f = fdopen(fd, "w")) == NULL) {
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		if (fd != -1)
			close(fd);
		close(lockfd);
		return -1;
	}
	/* Root (kvstorectl) writes it for the daemon's user, who owns the segment. */
	if (geteuid() == 0 && fstat(st->fd, &sb) == 0 &&
	    fchown(fd, sb.st_uid, sb.st_gid) == -1) {
		snprintf(err, errlen, "chown %s: %s", tmp, strerror(errno));
		fclose(sv.f);
		unlink(tmp);
		close(lockfd);
		return -1;
	}
	fputs("# kvstore accounts: name:role:hash (written by kvstored and "
	    "kvstorectl)\n", sv.f);
	store_user_list(st, save_one, &sv);
	if (sv.failed || fflush(sv.f) == EOF || fsync(fd) == -1 ||
	    fclose(sv.f) == EOF || rename(tmp, path) == -1) {
		snprintf(err, errlen, "write %s: %s", path, strerror(errno));
		unlink(tmp);
		close(lockfd);
		return -1;
	}
	snprintf(dir, sizeof(dir), "%s", path);
	if ((dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY)) != -1) {
		fsync(dfd);
		close(dfd);
	}
	close(lockfd);
	return 0;
}
