/*
 * imap_response.c - fuzz target: an IMAP server's side of a session, as
 * the intake worker (fetch.c) reads it through libetpan.
 *
 * The input is what the server says, from the greeting on; the tags of
 * tagged replies may be anything (libetpan does not compare them).  It is
 * fed by a small in-memory stream (reads from the input, writes counted
 * and dropped, end of input is end-of-file) to fetch_session_run(), which
 * runs the worker's own sequence over fetch.c's bounded read layer:
 * greeting, CAPABILITY, LOGIN (or AUTHENTICATE PLAIN), CAPABILITY,
 * LIST/CREATE of two folders, SELECT, UID SEARCH, UID FETCH sizes, UID
 * FETCH bodies, the moves (MOVE, or COPY + STORE + EXPUNGE / SEARCH
 * DELETED + EXPUNGE), LOGOUT.  Twice: in plaintext, the whole input
 * handed over in one read; then with STARTTLS asked for (its response
 * injection check, then a handshake that fails for lack of a socket), in
 * reads of 1 to 8 octets, so that literal announcements split across
 * reads reach the layer's scanner.
 *
 * Promises checked: every run ends (end of input is an error, never a
 * wait); a message handed to process() has a UID, the watched mailbox's
 * name, and raw NULL or at most max_size octets, all readable; a
 * failure has a reason; no write after the stream closed; and, under
 * ASan, no single allocation during the session is larger than twice
 * the per-command read budget (libetpan allocates an announced literal's
 * size at once, rounded up to a power of two: a literal the budget
 * layer let through is at most FETCH_MAX_RESPONSE).  Leaks are the
 * sanitizer's.  SEALPOST_FUZZ_VERBOSE set: each run's outcome on stderr
 * (for writing seeds).
 */
#include "build.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <libetpan/libetpan.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FUZZ_ASAN_HOOKS 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define FUZZ_ASAN_HOOKS 1
#endif
#ifdef FUZZ_ASAN_HOOKS
/* From <sanitizer/allocator_interface.h>, which gcc does not install. */
int	 __sanitizer_install_malloc_and_free_hooks(
	    void (*)(const volatile void *, size_t),
	    void (*)(const volatile void *));
#endif

#include "fetch.h"
#include "fuzz.h"

/* How a run feeds the input. */
#define FUZZ_PLAIN	0x0
#define FUZZ_STARTTLS	0x1
#define FUZZ_CHUNKED	0x2	/* reads of 1 to 8 octets */

/* Small, so that the body budget (max_size + 64 KiB) is reached too. */
#define FUZZ_IMAP_MAX_SIZE	4096
#define FUZZ_IMAP_MAX_ALLOC	(2 * (size_t)FETCH_MAX_RESPONSE)

struct fuzz_feed {
	const uint8_t	*p;
	size_t		 len, off;
	size_t		 chunk;		/* 0: as much as asked */
	uint32_t	 rnd;
	size_t		 written;
	int		 closed;
};

static ssize_t	 feed_read(mailstream_low *, void *, size_t);
static ssize_t	 feed_write(mailstream_low *, const void *, size_t);
static int	 feed_close(mailstream_low *);
static int	 feed_get_fd(mailstream_low *);
static void	 feed_free(mailstream_low *);
static void	 feed_cancel(mailstream_low *);
static struct mailstream_cancel *feed_get_cancel(mailstream_low *);
static carray	*feed_get_certificate_chain(mailstream_low *);
static enum fetch_verdict fuzz_process(void *, const struct fetch_msg *);
static void	 fuzz_run(const uint8_t *, size_t, int);
static int	 fuzz_has_word(const uint8_t *, size_t, const char *);

static mailstream_low_driver feed_driver = {
	feed_read,
	feed_write,
	feed_close,
	feed_get_fd,
	feed_free,
	feed_cancel,
	feed_get_cancel,
	feed_get_certificate_chain,
	NULL,
	NULL,
	NULL
};

#ifdef FUZZ_ASAN_HOOKS
static volatile int	 fuzz_armed;
static volatile size_t	 fuzz_max_alloc;

static void
fuzz_malloc_hook(const volatile void *ptr, size_t size)
{
	(void)ptr;
	if (fuzz_armed && size > fuzz_max_alloc)
		fuzz_max_alloc = size;
}

static void
fuzz_free_hook(const volatile void *ptr)
{
	(void)ptr;
}
#endif

static ssize_t
feed_read(mailstream_low *low, void *buf, size_t count)
{
	struct fuzz_feed	*f = low->data;
	size_t			 n;

	FUZZ_CHECK(!f->closed);
	n = f->len - f->off;
	if (n > count)
		n = count;
	if (f->chunk > 0) {
		/* xorshift32: chunk sizes 1..8, the same for the same input */
		f->rnd ^= f->rnd << 13;
		f->rnd ^= f->rnd >> 17;
		f->rnd ^= f->rnd << 5;
		if (n > 1 + (f->rnd & 7))
			n = 1 + (f->rnd & 7);
	}
	memcpy(buf, f->p + f->off, n);
	f->off += n;
	return (ssize_t)n;
}

static ssize_t
feed_write(mailstream_low *low, const void *buf, size_t count)
{
	struct fuzz_feed	*f = low->data;

	FUZZ_CHECK(!f->closed && (count == 0 || buf != NULL));
	f->written += count;
	return (ssize_t)count;
}

static int
feed_close(mailstream_low *low)
{
	struct fuzz_feed	*f = low->data;

	f->closed = 1;
	return 0;
}

static int
feed_get_fd(mailstream_low *low)
{
	(void)low;
	return -1;
}

/* The feed itself is the caller's: only the layer goes. */
static void
feed_free(mailstream_low *low)
{
	free(low);
}

static void
feed_cancel(mailstream_low *low)
{
	(void)low;
}

static struct mailstream_cancel *
feed_get_cancel(mailstream_low *low)
{
	(void)low;
	return NULL;
}

static carray *
feed_get_certificate_chain(mailstream_low *low)
{
	(void)low;
	return NULL;
}

static enum fetch_verdict
fuzz_process(void *arg, const struct fetch_msg *m)
{
	size_t		*calls = arg, i;
	unsigned int	 sum = 0;

	(*calls)++;
	FUZZ_CHECK(m->uid != 0);
	FUZZ_CHECK(m->mailbox != NULL && strcmp(m->mailbox, "INBOX") == 0);
	if (m->raw != NULL) {
		FUZZ_CHECK(m->len <= FUZZ_IMAP_MAX_SIZE);
		/* every octet readable (ASan), not only the first */
		for (i = 0; i < m->len; i++)
			sum += (unsigned char)m->raw[i];
	}
	(void)sum;
	switch (m->uid % 3) {
	case 0:
		return FETCH_MOVE;
	case 1:
		return FETCH_ASIDE;
	default:
		return FETCH_KEEP;
	}
}

static void
fuzz_run(const uint8_t *data, size_t size, int how)
{
	int			 starttls = (how & FUZZ_STARTTLS) != 0;
	struct fetch_params	 p;
	struct fuzz_feed	 feed;
	mailstream_low		*low;
	char			 err[200];
	size_t			 calls = 0;
	int			 r;

	memset(&feed, 0, sizeof(feed));
	feed.p = data;
	feed.len = size;
	feed.chunk = (how & FUZZ_CHUNKED) != 0;
	feed.rnd = 0x9e3779b9u ^ (uint32_t)size;
	if ((low = mailstream_low_new(&feed, &feed_driver)) == NULL)
		abort();

	memset(&p, 0, sizeof(p));
	p.server.host = "127.0.0.1";
	p.server.port = 143;
	p.server.tls = starttls ? RELAY_TLS_STARTTLS : RELAY_TLS_NONE;
	p.server.allow_plaintext = 1;
	p.server.username = "intake";
	p.server.password = "secret";
	p.server.connect_timeout = 1;
	p.server.command_timeout = 1;
	p.mailbox = "INBOX";
	p.processed_folder = "Processed";
	p.aside_folder = "Aside";
	p.poll_interval = 60;
	p.idle_restart = 60;
	p.max_size = FUZZ_IMAP_MAX_SIZE;
	p.max_per_round = 8;
	p.process = fuzz_process;
	p.arg = &calls;

	memset(err, 0xa5, sizeof(err));
#ifdef FUZZ_ASAN_HOOKS
	fuzz_max_alloc = 0;
	fuzz_armed = 1;
#endif
	r = fetch_session_run(&p, low, err, sizeof(err));
#ifdef FUZZ_ASAN_HOOKS
	fuzz_armed = 0;
	if (fuzz_max_alloc > FUZZ_IMAP_MAX_ALLOC)
		fprintf(stderr, "imap_response: an allocation of %zu octets\n",
		    (size_t)fuzz_max_alloc);
	FUZZ_CHECK(fuzz_max_alloc <= FUZZ_IMAP_MAX_ALLOC);
#endif
	/* for writing seeds: how far a session got */
	if (getenv("SEALPOST_FUZZ_VERBOSE") != NULL)
		fprintf(stderr, "imap_response: %s: %zu messages, %zu of %zu "
		    "octets read, %zu written: %s\n", starttls ? "starttls" :
		    how & FUZZ_CHUNKED ? "plain, chunked" : "plain", calls, feed.off, feed.len, feed.written,
		    r == 0 ? "ok" : err);
	FUZZ_CHECK(r == 0 || r == -1);
	FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL);
	FUZZ_CHECK(r == 0 ? err[0] == '\0' : err[0] != '\0');
	/* an error quoting a NO had a NO (or BAD) from the server */
	if (strstr(err, ": NO ") != NULL)
		FUZZ_CHECK(fuzz_has_word(data, size, "NO") ||
		    fuzz_has_word(data, size, "BAD"));
	/* the stream was closed, and never read past the input */
	FUZZ_CHECK(feed.closed && feed.off <= feed.len);
	/* no TLS: a STARTTLS session never gets past the handshake */
	FUZZ_CHECK(!starttls || (r == -1 && calls == 0));
	FUZZ_CHECK(calls <= p.max_per_round);
}

/* Does w (upper case) occur in any case after a space, as a word? */
static int
fuzz_has_word(const uint8_t *p, size_t n, const char *w)
{
	size_t	 i, k, wl = strlen(w);

	for (i = 1; i + wl <= n; i++) {
		if (p[i - 1] != ' ' || (i + wl < n && p[i + wl] != ' ' &&
		    p[i + wl] != '\r' && p[i + wl] != '\n'))
			continue;
		for (k = 0; k < wl; k++)
			if ((p[i + k] & ~0x20) != w[k])
				break;
		if (k == wl)
			return 1;
	}
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
#ifdef FUZZ_ASAN_HOOKS
	static int	 hooked;

	if (!hooked) {
		__sanitizer_install_malloc_and_free_hooks(fuzz_malloc_hook,
		    fuzz_free_hook);
		hooked = 1;
	}
#endif
	if (size > FUZZ_MAX_INPUT)
		return 0;
	fuzz_run(data, size, FUZZ_PLAIN | FUZZ_CHUNKED);
	fuzz_run(data, size, FUZZ_PLAIN);
	fuzz_run(data, size, FUZZ_STARTTLS | FUZZ_CHUNKED);
	return 0;
}
