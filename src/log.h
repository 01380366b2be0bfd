/*
 * log.h - logging to stderr or journald.
 *
 * Lines are "key=value" fields led by the letter or session id.  Never log a
 * name, an address body, a subject or any letter content: log_escape() exists
 * for the untrusted protocol bytes (commands, paths) that may be logged.
 * log_fatal* exit(1) (environment trouble); log_panic() aborts (a bug).
 * Thread-safe: each line is written with one write(2).
 */
#ifndef SEALPOST_LOG_H
#define SEALPOST_LOG_H

#include <stddef.h>

enum log_target {
	LOG_TO_STDERR,
	LOG_TO_JOURNAL
};

void	log_init(const char *ident, enum log_target, int debug);
void	log_set_debug(int);
int	log_get_debug(void);

void	log_warn(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_warnx(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_info(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_debug(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_fatal(const char *, ...)
	    __attribute__((format(printf, 1, 2), noreturn));
void	log_fatalx(const char *, ...)
	    __attribute__((format(printf, 1, 2), noreturn));
void	log_panic(const char *, ...)
	    __attribute__((format(printf, 1, 2), noreturn));

/*
 * Escape untrusted bytes for a log line into buf (C-style \xNN for anything
 * outside printable ASCII, quotes and backslash escaped), truncating with
 * "..." to fit.  Returns buf.
 */
char	*log_escape(char *buf, size_t bufsz, const char *src, size_t len);

#endif
