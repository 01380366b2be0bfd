/*
 * sp-loadgen.c - a small load generator for sealpost's benchmark.
 *
 * N client threads, each with one connection (reconnecting if the server
 * closes it), submit letters as fast as acknowledgements come back:
 *
 *   http: POST /v1/letters with a JSON body (HTTP/1.1 keep-alive)
 *   smtp: EHLO, AUTH PLAIN once, then MAIL/RCPT/DATA per letter
 *         (-N: no AUTH, for a plain MTA such as Postfix relaying for
 *         127.0.0.0/8; the RCPT is patient-PATIENT@DOMAIN either way)
 *
 * Prints one line: mode, letters acknowledged, failures, seconds, letters/s,
 * median and p99 latency in ms.  Blocking sockets on threads keep it simple
 * and cheap next to the daemon (it is not part of the daemon).
 *
 * usage: sp-loadgen -m http|smtp -p PORT -t TOKEN -P PATIENT -A AUTHOR
 *            [-d DOMAIN] [-f FROM] [-c CONNS] [-n LETTERS] [-s SIZE]
 *        sp-loadgen -m smtp -N -p PORT -P PATIENT [-d DOMAIN] ...
 */
#define _GNU_SOURCE
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct opts {
	const char	*mode, *token, *domain, *from;
	int		 port, conns, size, noauth;
	long		 letters, patient, author;
};

static struct opts	 o = { "http", NULL, "riverside.example",
			    "dr.patel@riverside.example", 0, 20, 4096, 0,
			    2000, 0, 0 };
static long		 next_letter;
static long		 done_ok, done_fail;
static double		*lat;
static long		 nlat;
static pthread_mutex_t	 mu = PTHREAD_MUTEX_INITIALIZER;
static char		*body_text;	/* SMTP: CRLF line breaks */
static char		*body_json;	/* JSON: \n escapes */

static double
now(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Claim the next letter number, or -1 when all are claimed. */
static long
claim(void)
{
	long	 n;

	pthread_mutex_lock(&mu);
	n = next_letter < o.letters ? next_letter++ : -1;
	pthread_mutex_unlock(&mu);
	return n;
}

static void
record(int ok, double ms)
{
	pthread_mutex_lock(&mu);
	if (ok) {
		done_ok++;
		lat[nlat++] = ms;
	} else
		done_fail++;
	pthread_mutex_unlock(&mu);
}

static int
dial(void)
{
	struct sockaddr_in	 sin;
	int			 fd, one = 1;

	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) == -1)
		return -1;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)o.port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1) {
		close(fd);
		return -1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static int
writeall(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t	 w = write(fd, p, n);

		if (w <= 0) {
			if (w == -1 && errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* A tiny line/response reader over a socket. */
struct rd {
	int	 fd;
	char	 buf[65536];
	size_t	 len, off;
};

static int
rd_fill(struct rd *r)
{
	ssize_t	 n;

	if (r->off > 0) {
		memmove(r->buf, r->buf + r->off, r->len - r->off);
		r->len -= r->off;
		r->off = 0;
	}
	if (r->len == sizeof(r->buf))
		return -1;
	n = read(r->fd, r->buf + r->len, sizeof(r->buf) - r->len);
	if (n <= 0)
		return -1;
	r->len += (size_t)n;
	return 0;
}

/* Read one CRLF line into out (without CRLF). */
static int
rd_line(struct rd *r, char *out, size_t outsz)
{
	for (;;) {
		char	*nl = memchr(r->buf + r->off, '\n', r->len - r->off);

		if (nl != NULL) {
			size_t	 n = (size_t)(nl - (r->buf + r->off));
			size_t	 c = n < outsz - 1 ? n : outsz - 1;

			memcpy(out, r->buf + r->off, c);
			out[c] = '\0';
			if (c > 0 && out[c - 1] == '\r')
				out[c - 1] = '\0';
			r->off += n + 1;
			return 0;
		}
		if (rd_fill(r) != 0)
			return -1;
	}
}

/* SMTP reply: read lines until "NNN " ; return the code. */
static int
smtp_reply(struct rd *r)
{
	char	 line[1024];

	do {
		if (rd_line(r, line, sizeof(line)) != 0)
			return -1;
	} while (strlen(line) >= 4 && line[3] == '-');
	return atoi(line);
}

/* HTTP response: status, then skip headers and a Content-Length body. */
static int
http_reply(struct rd *r)
{
	char	 line[1024];
	long	 clen = 0;
	int	 status;

	if (rd_line(r, line, sizeof(line)) != 0)
		return -1;
	status = atoi(line + 9);
	for (;;) {
		if (rd_line(r, line, sizeof(line)) != 0)
			return -1;
		if (line[0] == '\0')
			break;
		if (strncasecmp(line, "Content-Length:", 15) == 0)
			clen = atol(line + 15);
	}
	while ((long)(r->len - r->off) < clen)
		if (rd_fill(r) != 0)
			return -1;
	r->off += (size_t)clen;
	return status;
}

static void *
http_client(void *arg)
{
	struct rd	*r = calloc(1, sizeof(*r));
	char		*req, *body;
	size_t		 cap = (size_t)o.size * 2 + 4096;
	long		 n;

	req = malloc(cap + 1024);
	body = malloc(cap);
	r->fd = -1;
	while ((n = claim()) != -1) {
		double	 t0 = now();
		int	 blen, rlen, st;

		blen = snprintf(body, cap, "{\"patient\":%ld,\"author\":%ld,"
		    "\"subject\":\"Bench letter %ld\",\"text\":\"%s\"}",
		    o.patient, o.author, n, body_json);
		rlen = snprintf(req, cap + 1024, "POST /v1/letters HTTP/1.1\r\n"
		    "Host: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
		    "Content-Type: application/json\r\n"
		    "Content-Length: %d\r\n\r\n%s", o.token, blen, body);
		if (r->fd == -1) {
			r->len = r->off = 0;
			if ((r->fd = dial()) == -1) {
				record(0, 0);
				continue;
			}
		}
		if (writeall(r->fd, req, (size_t)rlen) != 0 ||
		    (st = http_reply(r)) < 0) {
			close(r->fd);
			r->fd = -1;
			record(0, 0);
			continue;
		}
		record(st == 202, (now() - t0) * 1000);
	}
	if (r->fd != -1)
		close(r->fd);
	free(req);
	free(body);
	free(r);
	return NULL;
}

/* base64 of "\0user\0token" for AUTH PLAIN. */
static char *
b64(const unsigned char *p, size_t n)
{
	static const char	 t[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char			*out = malloc(n / 3 * 4 + 8), *q = out;
	size_t			 i;

	for (i = 0; i + 2 < n; i += 3) {
		*q++ = t[p[i] >> 2];
		*q++ = t[((p[i] & 3) << 4) | (p[i + 1] >> 4)];
		*q++ = t[((p[i + 1] & 15) << 2) | (p[i + 2] >> 6)];
		*q++ = t[p[i + 2] & 63];
	}
	if (n - i == 1) {
		*q++ = t[p[i] >> 2];
		*q++ = t[(p[i] & 3) << 4];
		*q++ = '=';
		*q++ = '=';
	} else if (n - i == 2) {
		*q++ = t[p[i] >> 2];
		*q++ = t[((p[i] & 3) << 4) | (p[i + 1] >> 4)];
		*q++ = t[(p[i + 1] & 15) << 2];
		*q++ = '=';
	}
	*q = '\0';
	return out;
}

static int
smtp_open(struct rd *r)
{
	char		 cmd[512], plain[256];
	char		*a;
	size_t		 tl;
	int		 n;

	r->len = r->off = 0;
	if ((r->fd = dial()) == -1)
		return -1;
	if (smtp_reply(r) != 220)
		goto fail;
	if (writeall(r->fd, "EHLO loadgen.example\r\n", 22) != 0 ||
	    smtp_reply(r) != 250)
		goto fail;
	if (o.noauth)
		return 0;
	tl = strlen(o.token);
	if (tl > sizeof(plain) - 8)
		goto fail;
	plain[0] = '\0';
	memcpy(plain + 1, "bench", 5);
	plain[6] = '\0';
	memcpy(plain + 7, o.token, tl);
	a = b64((unsigned char *)plain, 7 + tl);
	n = snprintf(cmd, sizeof(cmd), "AUTH PLAIN %s\r\n", a);
	free(a);
	if (writeall(r->fd, cmd, (size_t)n) != 0 || smtp_reply(r) != 235)
		goto fail;
	return 0;
fail:
	close(r->fd);
	r->fd = -1;
	return -1;
}

static void *
smtp_client(void *arg)
{
	struct rd	*r = calloc(1, sizeof(*r));
	char		*msg, env[512];
	size_t		 cap = (size_t)o.size * 2 + 4096;
	long		 n;

	msg = malloc(cap);
	r->fd = -1;
	while ((n = claim()) != -1) {
		double	 t0 = now();
		int	 elen, mlen, ok;

		if (r->fd == -1 && smtp_open(r) != 0) {
			record(0, 0);
			continue;
		}
		elen = snprintf(env, sizeof(env), "MAIL FROM:<%s>\r\n"
		    "RCPT TO:<patient-%ld@%s>\r\nDATA\r\n", o.from, o.patient,
		    o.domain);
		mlen = snprintf(msg, cap, "From: <%s>\r\nTo: <patient-%ld@%s>"
		    "\r\nSubject: Bench letter %ld\r\nMessage-ID: <bench-%ld-"
		    "%ld@loadgen.example>\r\n\r\n%s\r\n.\r\n", o.from,
		    o.patient, o.domain, n, (long)getpid(), n, body_text);
		/* PIPELINING: MAIL, RCPT, DATA in one write. */
		ok = writeall(r->fd, env, (size_t)elen) == 0 &&
		    smtp_reply(r) == 250 && smtp_reply(r) == 250 &&
		    smtp_reply(r) == 354 &&
		    writeall(r->fd, msg, (size_t)mlen) == 0;
		if (ok) {
			int	 code = smtp_reply(r);

			if (code < 0) {
				close(r->fd);
				r->fd = -1;
			}
			record(code == 250, (now() - t0) * 1000);
		} else {
			close(r->fd);
			r->fd = -1;
			record(0, 0);
		}
	}
	if (r->fd != -1) {
		writeall(r->fd, "QUIT\r\n", 6);
		close(r->fd);
	}
	free(msg);
	free(r);
	return NULL;
}

static int
cmpd(const void *a, const void *b)
{
	double	 x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int
main(int argc, char *argv[])
{
	pthread_t	*th;
	double		 t0, el;
	int		 ch, i, j;

	while ((ch = getopt(argc, argv, "m:p:t:P:A:d:f:c:n:s:N")) != -1) {
		switch (ch) {
		case 'm': o.mode = optarg; break;
		case 'p': o.port = atoi(optarg); break;
		case 't': o.token = optarg; break;
		case 'P': o.patient = atol(optarg); break;
		case 'A': o.author = atol(optarg); break;
		case 'd': o.domain = optarg; break;
		case 'f': o.from = optarg; break;
		case 'c': o.conns = atoi(optarg); break;
		case 'n': o.letters = atol(optarg); break;
		case 's': o.size = atoi(optarg); break;
		case 'N': o.noauth = 1; break;
		default:
			fprintf(stderr, "usage: sp-loadgen -m http|smtp -p PORT "
			    "-t TOKEN -P PATIENT -A AUTHOR [-d DOMAIN] [-f FROM]"
			    " [-c CONNS] [-n LETTERS] [-s SIZE] [-N]\n");
			return 2;
		}
	}
	if (o.noauth && strcmp(o.mode, "smtp") != 0) {
		fprintf(stderr, "sp-loadgen: -N is for -m smtp\n");
		return 2;
	}
	if (o.port == 0 || (o.token == NULL && !o.noauth) || o.patient == 0 ||
	    o.conns < 1 || o.letters < 1 || o.size < 1) {
		fprintf(stderr, "sp-loadgen: -p, -P and -t (or -N) are "
		    "required\n");
		return 2;
	}
	/* A body of o.size bytes of letters in 78-byte lines. */
	body_text = malloc((size_t)o.size + 2);
	body_json = malloc((size_t)o.size * 2 + 2);
	for (i = 0, j = 0; i < o.size; i++) {
		if (i % 78 == 76 && i + 1 < o.size) {
			body_text[i] = '\r';
			body_text[i + 1] = '\n';
			body_json[j++] = '\\';
			body_json[j++] = 'n';
			i++;
			continue;
		}
		body_text[i] = (char)('a' + (i * 7 + 3) % 26);
		body_json[j++] = body_text[i];
	}
	body_text[o.size] = '\0';
	body_json[j] = '\0';
	lat = calloc((size_t)o.letters, sizeof(double));
	th = calloc((size_t)o.conns, sizeof(*th));
	t0 = now();
	for (i = 0; i < o.conns; i++)
		pthread_create(&th[i], NULL, strcmp(o.mode, "smtp") == 0 ?
		    smtp_client : http_client, NULL);
	for (i = 0; i < o.conns; i++)
		pthread_join(th[i], NULL);
	el = now() - t0;
	qsort(lat, (size_t)nlat, sizeof(double), cmpd);
	printf("mode=%s conns=%d size=%d acked=%ld failed=%ld seconds=%.2f "
	    "letters_per_s=%.0f median_ms=%.2f p99_ms=%.2f\n", o.mode, o.conns,
	    o.size, done_ok, done_fail, el, done_ok / el,
	    nlat ? lat[nlat / 2] : 0.0,
	    nlat ? lat[(long)(nlat * 0.99)] : 0.0);
	return done_fail == 0 ? 0 : 1;
}
