/*
 * log.c - logging to stderr or journald.
 *
 * Public: log_init, log_set_debug, log_get_debug, log_warn, log_warnx,
 * log_info, log_debug, log_fatal, log_fatalx, log_panic, log_escape.
 * Each line is formatted into a stack buffer and emitted with one call, so
 * lines from worker threads never interleave.
 */
#include "build.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#ifdef HAVE_SYSTEMD
#include <systemd/sd-journal.h>
#endif

#include "log.h"

static void	 log_vemit(int, int, const char *, va_list)
		    __attribute__((format(printf, 3, 0)));

static const char	*log_ident = "sealpost";
static enum log_target	 log_target = LOG_TO_STDERR;
static int		 log_debug_on;

/* Set the program name, the target and the verbosity. */
void
log_init(const char *ident, enum log_target target, int debug)
{
	log_ident = ident;
	log_target = target;
	log_debug_on = debug;
#ifndef HAVE_SYSTEMD
	if (target == LOG_TO_JOURNAL) {
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
	}
#endif
}

void
log_set_debug(int on)
{
	log_debug_on = on;
}

int
log_get_debug(void)
{
	return log_debug_on;
}

/* Format and emit one line; with_errno appends ": strerror". */
static void
log_vemit(int pri, int with_errno, const char *fmt, va_list ap)
{
	char		 msg[2048], line[2200];
	int		 saved = errno;
	const char	*lvl;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (with_errno) {
		size_t	 len = strlen(msg);
		snprintf(msg + len, sizeof(msg) - len, ": %s", strerror(saved));
	}
	if (log_target == LOG_TO_JOURNAL) {
#ifdef HAVE_SYSTEMD
		sd_journal_print(pri, "%s", msg);
#else
		syslog(pri, "%s", msg);
#endif
		errno = saved;
		return;
	}
	switch (pri) {
	case LOG_CRIT:		lvl = "fatal"; break;
	case LOG_ERR:		lvl = "error"; break;
	case LOG_WARNING:	lvl = "warn"; break;
	case LOG_INFO:		lvl = "info"; break;
	default:		lvl = "debug"; break;
	}
	{
		struct timespec	 ts;
		struct tm	 tm;
		char		 tbuf[32];
		int		 n;

		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		strftime(tbuf, sizeof(tbuf), "%Y-%m-%dT%H:%M:%S", &tm);
		n = snprintf(line, sizeof(line), "%s.%03ldZ %s[%d] %s: %s\n",
		    tbuf, ts.tv_nsec / 1000000, log_ident, (int)getpid(), lvl,
		    msg);
		if (n < 0)
			n = 0;
		if ((size_t)n >= sizeof(line)) {
			n = sizeof(line) - 1;
			line[n - 1] = '\n';
		}
		(void)!write(STDERR_FILENO, line, (size_t)n);
	}
	errno = saved;
}

#define LOG_FN(name, pri, witherr)				\
void								\
name(const char *fmt, ...)					\
{								\
	va_list	 ap;						\
	va_start(ap, fmt);					\
	log_vemit(pri, witherr, fmt, ap);			\
	va_end(ap);						\
}

LOG_FN(log_warn, LOG_WARNING, 1)
LOG_FN(log_warnx, LOG_WARNING, 0)
LOG_FN(log_info, LOG_INFO, 0)

/* Debug lines only when enabled. */
void
log_debug(const char *fmt, ...)
{
	va_list	 ap;

	if (!log_debug_on)
		return;
	va_start(ap, fmt);
	log_vemit(LOG_DEBUG, 0, fmt, ap);
	va_end(ap);
}

/* Environment failure: log with errno and exit. */
void
log_fatal(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_vemit(LOG_CRIT, 1, fmt, ap);
	va_end(ap);
	exit(1);
}

/* Environment failure: log and exit. */
void
log_fatalx(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_vemit(LOG_CRIT, 0, fmt, ap);
	va_end(ap);
	exit(1);
}

/* A bug: log and abort with a core. */
void
log_panic(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_vemit(LOG_CRIT, 0, fmt, ap);
	va_end(ap);
	abort();
}

/* Escape untrusted bytes for logging. */
char *
log_escape(char *buf, size_t bufsz, const char *src, size_t len)
{
	static const char	 hex[] = "0123456789abcdef";
	size_t			 i, o = 0;

	if (bufsz == 0)
		return buf;
	for (i = 0; i < len; i++) {
		unsigned char	 c = (unsigned char)src[i];
		char		 tmp[4];
		size_t		 n;

		if (c == '\\' || c == '"') {
			tmp[0] = '\\'; tmp[1] = (char)c; n = 2;
		} else if (c >= 0x20 && c < 0x7f) {
			tmp[0] = (char)c; n = 1;
		} else {
			tmp[0] = '\\'; tmp[1] = 'x';
			tmp[2] = hex[c >> 4]; tmp[3] = hex[c & 15]; n = 4;
		}
		if (o + n + 4 > bufsz) {
			if (bufsz >= 4) {
				o = o > bufsz - 4 ? bufsz - 4 : o;
				memcpy(buf + o, "...", 3);
				o += 3;
			}
			break;
		}
		memcpy(buf + o, tmp, n);
		o += n;
	}
	buf[o < bufsz ? o : bufsz - 1] = '\0';
	return buf;
}
