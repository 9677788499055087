/*
 * log.c - logging in the OpenBSD daemons' manner: log_warn appends the errno
 * text, log_warnx does not, fatal and fatalx exit.  Messages keep errno.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "log.h"

static int	 log_stderr = 1;
static int	 log_verbose;
static const char *log_ident = "kvstore";

void
log_init(const char *ident, int to_stderr, int verbose)
{
	log_ident = ident;
	log_stderr = to_stderr;
	log_verbose = verbose;
	if (!to_stderr)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void
log_to_syslog(void)
{
	if (log_stderr) {
		log_stderr = 0;
		openlog(log_ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
	}
}

static void
vlog(int pri, const char *fmt, va_list ap, int with_errno)
{
	char msg[1024];
	int saved = errno;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (with_errno) {
		size_t n = strlen(msg);
		snprintf(msg + n, sizeof(msg) - n, ": %s", strerror(saved));
	}
	if (log_stderr) {
		/* One write per line, so lines of concurrent children do not mix. */
		char line[1100];
		int n = snprintf(line, sizeof(line), "%s[%d]: %s\n", log_ident,
		    (int)getpid(), msg);
		if (n > (int)sizeof(line) - 1)
			n = sizeof(line) - 1;
		(void)!write(STDERR_FILENO, line, (size_t)n);
	} else
		syslog(pri, "%s", msg);
	errno = saved;
}

#define LOGFN(name, pri, with_errno)				\
void								\
name(const char *fmt, ...)					\
{								\
	va_list ap;						\
	va_start(ap, fmt);					\
	vlog(pri, fmt, ap, with_errno);				\
	va_end(ap);						\
}

LOGFN(log_warn, LOG_WARNING, 1)
LOGFN(log_warnx, LOG_WARNING, 0)
LOGFN(log_info, LOG_INFO, 0)

void
log_debug(const char *fmt, ...)
{
	va_list ap;

	if (!log_verbose)
		return;
	va_start(ap, fmt);
	vlog(LOG_DEBUG, fmt, ap, 0);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_CRIT, fmt, ap, 1);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_CRIT, fmt, ap, 0);
	va_end(ap);
	exit(1);
}
