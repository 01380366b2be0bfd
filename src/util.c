/*
 * util.c - allocation, strings, time and fd helpers.
 *
 * Public: x* allocators (fatal on failure), strlcpy_sp, util_*.
 * Error policy: allocation failure aborts through log_fatalx(); every other
 * helper returns -1 and sets errno, or a boolean.
 */
#include "build.h"

#include <sys/types.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

/* Allocate or die. */
void *
xmalloc(size_t n)
{
	void	*p;

	if (n == 0)
		n = 1;
	if ((p = malloc(n)) == NULL)
		log_fatalx("xmalloc: out of memory (%zu bytes)", n);
	return p;
}

/* Allocate zeroed or die. */
void *
xcalloc(size_t n, size_t size)
{
	void	*p;

	if (n == 0 || size == 0)
		n = size = 1;
	if ((p = calloc(n, size)) == NULL)
		log_fatalx("xcalloc: out of memory (%zu x %zu)", n, size);
	return p;
}

/* Resize an array or die; overflow-checked. */
void *
xreallocarray(void *old, size_t n, size_t size)
{
	void	*p;

	if (size != 0 && n > SIZE_MAX / size)
		log_fatalx("xreallocarray: overflow (%zu x %zu)", n, size);
	if (n * size == 0)
		n = size = 1;
	if ((p = realloc(old, n * size)) == NULL)
		log_fatalx("xreallocarray: out of memory (%zu x %zu)", n, size);
	return p;
}

/* Duplicate a string or die. */
char *
xstrdup(const char *s)
{
	return xmemdup(s, strlen(s) + 1);
}

/* Duplicate at most n bytes of a string, NUL-terminated, or die. */
char *
xstrndup(const char *s, size_t n)
{
	size_t	 len = strnlen(s, n);
	char	*p = xmalloc(len + 1);

	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

/* Duplicate a buffer or die. */
void *
xmemdup(const void *s, size_t n)
{
	void	*p = xmalloc(n);

	if (n > 0)
		memcpy(p, s, n);
	return p;
}

/* vasprintf or die. */
int
xvasprintf(char **ret, const char *fmt, va_list ap)
{
	int	 n;

	if ((n = vasprintf(ret, fmt, ap)) == -1)
		log_fatalx("xvasprintf: out of memory");
	return n;
}

/* asprintf or die. */
int
xasprintf(char **ret, const char *fmt, ...)
{
	va_list	 ap;
	int	 n;

	va_start(ap, fmt);
	n = xvasprintf(ret, fmt, ap);
	va_end(ap);
	return n;
}

/* strlcpy: copy with truncation, always terminated. */
size_t
strlcpy_sp(char *dst, const char *src, size_t size)
{
	size_t	 len = strlen(src);

	if (size > 0) {
		size_t	 n = len >= size ? size - 1 : len;
		memcpy(dst, src, n);
		dst[n] = '\0';
	}
	return len;
}

/* Monotonic clock in milliseconds. */
uint64_t
util_now_ms(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Wall clock in seconds. */
int64_t
util_time(void)
{
	return (int64_t)time(NULL);
}

/* Make an fd non-blocking. */
int
util_set_nonblock(int fd)
{
	int	 flags;

	if ((flags = fcntl(fd, F_GETFL)) == -1)
		return -1;
	return fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

/* Make an fd close-on-exec. */
int
util_set_cloexec(int fd)
{
	int	 flags;

	if ((flags = fcntl(fd, F_GETFD)) == -1)
		return -1;
	return fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
}

/* Parse a whole decimal integer within bounds. */
int
util_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out)
{
	char		*end;
	long long	 v;

	if (s == NULL || *s == '\0')
		return -1;
	if (!(*s == '-' || (*s >= '0' && *s <= '9')))
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -1;
	*out = (int64_t)v;
	return 0;
}

/*
 * Loopback test on an address literal or "localhost".  An IPv4 literal is
 * parsed, not prefix-matched: "127.example.net" is a host name, not
 * loopback.
 */
int
util_is_loopback(const char *addr)
{
	struct in_addr	 a4;

	if (strcasecmp(addr, "localhost") == 0 || strcmp(addr, "::1") == 0 ||
	    strcmp(addr, "[::1]") == 0)
		return 1;
	if (inet_pton(AF_INET, addr, &a4) != 1)
		return 0;
	return (ntohl(a4.s_addr) >> 24) == 127;
}

/* Is a resolved address a loopback one? */
int
util_sockaddr_is_loopback(const struct sockaddr *sa)
{
	const struct sockaddr_in	*s4;
	const struct sockaddr_in6	*s6;

	switch (sa->sa_family) {
	case AF_INET:
		s4 = (const struct sockaddr_in *)(const void *)sa;
		return (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
	case AF_INET6:
		s6 = (const struct sockaddr_in6 *)(const void *)sa;
		if (IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr))
			return 1;
		return IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr) &&
		    s6->sin6_addr.s6_addr[12] == 127;
	}
	return 0;
}

#define UTIL_CONNECT_SLICE_MS	200	/* how soon a stop is seen */

/*
 * TCP connect within c->timeout for all addresses together: see util.h.
 * Each failure replaces err, so the reason is the last address's.
 */
int
util_connect_tcp(const struct util_connect *c, char *err, size_t errsz,
    int *refused)
{
	struct addrinfo	 hints, *res, *ai;
	struct pollfd	 pfd;
	char		 port[8], host[256];
	uint64_t	 deadline, now;
	socklen_t	 sl;
	size_t		 len;
	int		 fd, r, soerr, flags, timeout_ms;

	*refused = 0;
	/* "[::1]" for the resolver is "::1". */
	len = strlen(c->host);
	if (len >= 2 && c->host[0] == '[' && c->host[len - 1] == ']' &&
	    len - 2 < sizeof(host)) {
		memcpy(host, c->host + 1, len - 2);
		host[len - 2] = '\0';
	} else
		strlcpy_sp(host, c->host, sizeof(host));
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	snprintf(port, sizeof(port), "%u", c->port);
	/* getaddrinfo() has no timeout: a server is best an address. */
	if ((r = getaddrinfo(host, port, &hints, &res)) != 0) {
		snprintf(err, errsz, "connect: %s", gai_strerror(r));
		return -1;
	}
	snprintf(err, errsz, "connect: no usable address");
	deadline = util_now_ms() + (uint64_t)c->timeout * 1000;
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		*refused = 0;
		if (c->loopback_only &&
		    !util_sockaddr_is_loopback(ai->ai_addr)) {
			snprintf(err, errsz, "connect: plaintext refused to "
			    "a non-loopback address");
			*refused = 1;
			continue;
		}
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, ai->ai_protocol);
		if (fd == -1) {
			snprintf(err, errsz, "connect: socket: %s",
			    strerror(errno));
			continue;
		}
		/* libetpan select()s on it: FD_SET would abort the process. */
		if (fd >= FD_SETSIZE) {
			close(fd);
			snprintf(err, errsz, "fd limit: socket %d >= "
			    "FD_SETSIZE", fd);
			break;
		}
		c->publish(c->arg, fd);
		if (c->stopped(c->arg)) {
			snprintf(err, errsz, "connect: %s", c->stopword);
			goto fail;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == -1 &&
		    errno != EINPROGRESS) {
			snprintf(err, errsz, "connect: %s", strerror(errno));
			goto fail;
		}
		for (;;) {
			now = util_now_ms();
			if (now >= deadline) {
				snprintf(err, errsz, "connect: timed out "
				    "after %d s", c->timeout);
				goto fail;
			}
			timeout_ms = deadline - now > UTIL_CONNECT_SLICE_MS ?
			    UTIL_CONNECT_SLICE_MS : (int)(deadline - now);
			pfd.fd = fd;
			pfd.events = POLLOUT;
			pfd.revents = 0;
			r = poll(&pfd, 1, timeout_ms);
			if (c->stopped(c->arg)) {
				snprintf(err, errsz, "connect: %s",
				    c->stopword);
				goto fail;
			}
			if (r == -1 && errno != EINTR) {
				snprintf(err, errsz, "connect: poll: %s",
				    strerror(errno));
				goto fail;
			}
			if (r > 0)
				break;
		}
		soerr = 0;
		sl = sizeof(soerr);
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == -1)
			soerr = errno;
		if (soerr != 0) {
			snprintf(err, errsz, "connect: %s", strerror(soerr));
			goto fail;
		}
		if ((flags = fcntl(fd, F_GETFL)) == -1 ||
		    fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) == -1) {
			snprintf(err, errsz, "connect: fcntl: %s",
			    strerror(errno));
			goto fail;
		}
		freeaddrinfo(res);
		err[0] = '\0';
		return fd;
 fail:
		c->publish(c->arg, -1);
		close(fd);
		if (c->stopped(c->arg))
			break;
	}
	freeaddrinfo(res);
	return -1;
}

/* Server text made safe for an error or a log: see util.h. */
void
util_clean_text(char *dst, size_t dstsz, const char *src)
{
	const unsigned char	*p;
	size_t			 o = 0;

	if (dstsz == 0)
		return;
	for (p = (const unsigned char *)(src != NULL ? src : "");
	    *p != '\0' && o + 1 < dstsz; p++) {
		if (*p < 0x20 || *p == 0x7f)
			dst[o++] = ' ';
		else if (*p >= 0x80)
			dst[o++] = '?';
		else
			dst[o++] = (char)*p;
	}
	while (o > 0 && dst[o - 1] == ' ')
		o--;
	dst[o] = '\0';
}

/* Case-insensitive suffix test. */
int
util_endswith_ci(const char *s, const char *suffix)
{
	size_t	 ls = strlen(s), lx = strlen(suffix);

	return ls >= lx && strcasecmp(s + ls - lx, suffix) == 0;
}

/* fsync the directory holding path (after a rename into it); 0 or -1
 * with errno. */
int
util_fsync_dir(const char *path)
{
	char	*dir, *slash;
	int	 fd, rc, saved;

	dir = xstrdup(path);
	if ((slash = strrchr(dir, '/')) == NULL) {
		free(dir);
		dir = xstrdup(".");
	} else if (slash == dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	saved = errno;
	free(dir);
	if (fd == -1) {
		errno = saved;
		return -1;
	}
	rc = fsync(fd);
	saved = errno;
	close(fd);
	errno = saved;
	return rc;
}
