/*
 * log.h - one way to report: stderr in the foreground, syslog otherwise.
 * Every message is one line.  In inetd mode stderr may be the client's
 * socket, so log_init() must be told not to use it.
 */
#ifndef LOG_H
#define LOG_H

#include <stdarg.h>

void	log_init(const char *ident, int to_stderr, int verbose);
void	log_to_syslog(void);
void	log_warn(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_warnx(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_info(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_debug(const char *, ...) __attribute__((format(printf, 1, 2)));
void	fatal(const char *, ...)
	    __attribute__((format(printf, 1, 2), noreturn));
void	fatalx(const char *, ...)
	    __attribute__((format(printf, 1, 2), noreturn));

#endif
