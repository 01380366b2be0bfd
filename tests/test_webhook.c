/*
 * test_webhook.c - webhook_url_check() over a table of URLs, and the
 * refusals of webhook_post() that happen before any byte is sent.
 *
 * Each refused case names a word its reason must contain, so a URL
 * refused for the wrong reason fails too.  The posting itself, against
 * real HTTP and HTTPS servers, is tests/integration/t_webhook.py.
 */
#include "build.h"

#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"
#include "webhook.h"
#include "tap.h"

int	main(void);

struct url_case {
	const char	*url;
	const char	*why;	/* NULL: accepted; else a word of the reason */
};

static const struct url_case url_cases[] = {
	{ "https://example.org/hook", NULL },
	{ "https://example.org:8443/cb/v1?client=7&x=%20y", NULL },
	{ "HTTPS://Example.ORG/", NULL },
	{ "https://192.0.2.10/cb", NULL },
	{ "https://[2001:db8::1]:443/cb", NULL },
	{ "https://localhost/cb", NULL },
	{ "https://example.org/cb#frag", NULL },
	{ "http://127.0.0.1:8080/cb", NULL },
	{ "http://127.1.2.3/", NULL },
	{ "http://127.255.255.254:1/", NULL },
	{ "http://localhost/cb", NULL },
	{ "http://LocalHost:9/cb", NULL },
	{ "http://[::1]:8080/cb", NULL },
	{ "http://[::ffff:127.0.0.1]/cb", NULL },
	/* curl normalises these IPv4 spellings to 127.0.0.1 */
	{ "http://2130706433/cb", NULL },
	{ "http://0x7f.0.0.1/cb", NULL },
	{ "http://127.1/cb", NULL },

	/* plain http leaves the machine */
	{ "http://example.org/cb", "loopback" },
	{ "http://192.0.2.10/cb", "loopback" },
	{ "http://10.0.0.1/cb", "loopback" },
	{ "http://128.0.0.1/cb", "loopback" },
	{ "http://126.255.255.255/cb", "loopback" },
	{ "http://0.0.0.0/cb", "loopback" },
	{ "http://[2001:db8::1]/cb", "loopback" },
	{ "http://[::]/cb", "loopback" },
	{ "http://[::ffff:10.0.0.1]/cb", "loopback" },
	{ "http://127.0.0.1.nip.io/cb", "loopback" },
	{ "http://localhost.example/cb", "loopback" },
	{ "http://localhost./cb", "loopback" },
	{ "http://sub.localhost/cb", "loopback" },

	/* other schemes */
	{ "ftp://example.org/cb", "scheme" },
	{ "ftp://127.0.0.1/cb", "scheme" },
	{ "file:///etc/passwd", "scheme" },
	{ "gopher://example.org/", "scheme" },
	{ "javascript:alert(1)", "scheme" },
	{ "ws://127.0.0.1/cb", "scheme" },
	{ "example.org/cb", "scheme" },
	{ "//example.org/cb", "scheme" },
	{ "example.org:443/cb", "scheme" },

	/* userinfo */
	{ "https://user:secret@example.org/cb", "credentials" },
	{ "https://user@example.org/cb", "credentials" },
	{ "https://:secret@example.org/cb", "credentials" },
	{ "http://user@127.0.0.1/cb", "credentials" },
	{ "https://example.org@evil.example/cb", "credentials" },

	/* bytes that must never reach a request line */
	{ "https://example.org/cb\r\nX-Injected: 1", "CR or LF" },
	{ "https://example.org/cb\n", "CR or LF" },
	{ "https://example.org/c b", "space" },
	{ " https://example.org/cb", "space" },
	{ "https://example.org/\tcb", "control" },
	{ "https://example.org/\x7f", "control" },
	{ "https://example.org/\x01", "control" },
	{ "https://ex\xc3\xa4mple.org/cb", "non-ASCII" },

	/* malformed */
	{ "", "empty" },
	{ "https://", "host" },
	{ "https:///cb", "host" },
	{ "https:/example.org/cb", "host" },
	{ "https:example.org/cb", "host" },
	{ "https://:443/cb", "host" },
	{ "https://example.org:99999/cb", "port" },
	{ "https://example.org:x/cb", "port" },
	{ "https://[::1/cb", "URL" },
	{ "http://[fe80::1%25eth0]/cb", "zone" },
};

/* A URL of exactly n characters: https://example.org/aaaa... */
static char *
long_url(size_t n)
{
	const char	*pre = "https://example.org/";
	char		*u = xmalloc(n + 1);

	memcpy(u, pre, strlen(pre));
	memset(u + strlen(pre), 'a', n - strlen(pre));
	u[n] = '\0';
	return u;
}

static void
test_url_table(void)
{
	const struct url_case	*tc;
	const char		*why;
	char			 esc[128];
	size_t			 i, j, o;
	int			 r;

	for (i = 0; i < nitems(url_cases); i++) {
		tc = &url_cases[i];
		/* A printable copy of the URL for the test name. */
		for (j = o = 0; tc->url[j] != '\0' && o + 5 < sizeof esc; j++)
			if ((unsigned char)tc->url[j] < 0x20 ||
			    (unsigned char)tc->url[j] >= 0x7f)
				o += (size_t)snprintf(esc + o, sizeof esc - o,
				    "\\x%02x", (unsigned char)tc->url[j]);
			else
				esc[o++] = tc->url[j];
		esc[o] = '\0';

		why = NULL;
		r = webhook_url_check(tc->url, &why);
		if (tc->why == NULL) {
			if (!ok(r == 0, "accepted: %s", esc))
				diag("  reason: %s", why ? why : "(none)");
		} else {
			ok(r == -1 && why != NULL && strstr(why, tc->why),
			    "refused (%s): %s", tc->why, esc);
			if (r != -1 || why == NULL || !strstr(why, tc->why))
				diag("  got %d, reason %s", r,
				    why ? why : "(none)");
		}
	}
}

static void
test_url_bounds(void)
{
	const char	*why = NULL;
	char		*u;

	is_int(webhook_url_check(NULL, &why), -1, "NULL URL refused");
	u = long_url(2048);
	is_int(webhook_url_check(u, &why), 0, "2048-character URL accepted");
	free(u);
	u = long_url(2049);
	why = NULL;
	ok(webhook_url_check(u, &why) == -1 && why != NULL &&
	    strstr(why, "2048") != NULL, "2049-character URL refused");
	free(u);
	u = long_url(100000);
	ok(webhook_url_check(u, &why) == -1, "100000-character URL refused");
	free(u);
}

/*
 * webhook_post() refuses before it connects: the URL points at a bound
 * TCP socket that never listens, so a connection attempt would fail with
 * "connect", not with the refusal checked for.
 */
static void
test_post_refusals(void)
{
	struct webhook_params	 wp = { NULL, 5 };
	struct sockaddr_in	 sin;
	socklen_t		 slen = sizeof sin;
	const char		*json = "{\"id\":\"1\"}";
	char			 url[128], bad[160], err[256];
	int			 fd, r;

	fd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd == -1 || bind(fd, (struct sockaddr *)&sin, sizeof sin) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sin, &slen) != 0) {
		skip("cannot bind a loopback socket");
		if (fd != -1)
			close(fd);
		return;
	}
	snprintf(url, sizeof url, "http://127.0.0.1:%u/cb",
	    (unsigned)ntohs(sin.sin_port));

	r = webhook_post(&wp, url, "tok\r\nX-Injected: 1", json, strlen(json),
	    err, sizeof err);
	ok(r == -1 && strstr(err, "refused token") != NULL,
	    "token with CR LF refused: %s", err);
	r = webhook_post(&wp, url, "", json, strlen(json), err, sizeof err);
	ok(r == -1 && strstr(err, "empty bearer") != NULL,
	    "empty token refused: %s", err);
	r = webhook_post(&wp, url, "a b", json, strlen(json), err, sizeof err);
	ok(r == -1 && strstr(err, "refused token") != NULL,
	    "token with a space refused: %s", err);

	wp.timeout = 0;
	r = webhook_post(&wp, url, "tok", json, strlen(json), err, sizeof err);
	ok(r == -1 && strstr(err, "timeout") != NULL,
	    "timeout 0 refused (curl would wait forever): %s", err);
	wp.timeout = 5;

	snprintf(bad, sizeof bad, "ftp://127.0.0.1:%u/cb",
	    (unsigned)ntohs(sin.sin_port));
	r = webhook_post(&wp, bad, "tok", json, strlen(json), err, sizeof err);
	ok(r == -1 && strstr(err, "refused URL") != NULL,
	    "ftp URL refused: %s", err);
	r = webhook_post(&wp, "http://192.0.2.1:9/cb", "tok", json,
	    strlen(json), err, sizeof err);
	ok(r == -1 && strstr(err, "refused URL") != NULL &&
	    strstr(err, "loopback") != NULL,
	    "http to a non-loopback host refused: %s", err);

	/* The control: the same URL with a good token does try to connect. */
	r = webhook_post(&wp, url, "s3cr3t-T0KEN-9x", json, strlen(json),
	    err, sizeof err);
	ok(r == -1 && strncmp(err, "connect:", 8) == 0,
	    "a good call reaches connect (and fails there): %s", err);
	ok(strstr(err, "s3cr3t-T0KEN-9x") == NULL &&
	    strstr(err, "Bearer") == NULL && strstr(err, "\"id\"") == NULL,
	    "the reason carries neither the token nor the payload");
	close(fd);
}

int
main(void)
{
	if (webhook_global_init() != 0) {
		printf("Bail out! webhook_global_init failed\n");
		return 1;
	}
	test_url_table();
	test_url_bounds();
	test_post_refusals();
	webhook_global_cleanup();
	return tap_done();
}
