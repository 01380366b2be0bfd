/*
 * util.h - allocation, strings, time and fd helpers shared by every module.
 *
 * Allocation failure is fatal (x* helpers, as tmux xmalloc.c): callers never
 * check for NULL.  Nothing here touches a foreign library.
 */
#ifndef SEALPOST_UTIL_H
#define SEALPOST_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdarg.h>

struct sockaddr;

#define nitems(a) (sizeof(a) / sizeof((a)[0]))

void	*xmalloc(size_t);
void	*xcalloc(size_t, size_t);
void	*xreallocarray(void *, size_t, size_t);
char	*xstrdup(const char *);
char	*xstrndup(const char *, size_t);
void	*xmemdup(const void *, size_t);
int	 xasprintf(char **, const char *, ...)
	    __attribute__((format(printf, 2, 3)));
int	 xvasprintf(char **, const char *, va_list)
	    __attribute__((format(printf, 2, 0)));

/* Copy with truncation, always NUL-terminated; returns strlen(src). */
size_t	 strlcpy_sp(char *, const char *, size_t);

/* Monotonic milliseconds, and wall-clock seconds since the epoch. */
uint64_t util_now_ms(void);
int64_t	 util_time(void);

/* Set O_NONBLOCK / FD_CLOEXEC; 0 or -1 with errno. */
int	 util_set_nonblock(int);
int	 util_set_cloexec(int);
/* fsync the directory holding path; 0 or -1 with errno. */
int	 util_fsync_dir(const char *);

/* Parse a decimal int64 in [min, max]; 0 on success, -1 otherwise. */
int	 util_parse_i64(const char *, int64_t, int64_t, int64_t *);

/* Is the NUL-terminated address a loopback address (127/8, ::1, localhost)? */
int	 util_is_loopback(const char *);
/* Is a resolved address a loopback one (127/8, ::1, IPv4-mapped 127/8)? */
int	 util_sockaddr_is_loopback(const struct sockaddr *);
/*
 * Server text for an error or a result: controls as spaces, non-ASCII
 * as '?', trailing spaces trimmed, truncated to dstsz (NUL included).
 */
void	 util_clean_text(char *, size_t, const char *);

/*
 * A TCP connect for a libetpan session (relay, IMAP fetch), from a
 * worker thread: every address of host within timeout seconds together,
 * polled in slices so that stopped(arg) is seen within 200 ms ("connect:
 * <stopword>").  With loopback_only any other address is refused.
 * publish(arg, fd) is told the socket while it connects, and -1 before
 * it is closed, so that another thread can shut it down.
 */
struct util_connect {
	const char	*host;		/* name or literal; "[::1]" too */
	unsigned int	 port;
	int		 timeout;	/* seconds */
	int		 loopback_only;	/* plaintext: loopback addresses only */
	const char	*stopword;	/* "stopped", "cancelled" */
	int		(*stopped)(void *);
	void		(*publish)(void *, int);
	void		*arg;
};

/*
 * The connected socket: blocking (as libetpan expects), below FD_SETSIZE
 * (libetpan select()s on it).  Else -1 with the last address's reason in
 * err, and *refused set when that reason is a refused address.
 */
int	 util_connect_tcp(const struct util_connect *, char *err, size_t errsz,
	    int *refused);

/* Does `s' end with `suffix' (ASCII case-insensitive)? */
int	 util_endswith_ci(const char *, const char *);

#endif
