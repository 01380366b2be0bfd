/*
 * smtp_data.c - fuzz target: the chunk-fed DATA reader and header lookup.
 *
 * The input is what a client sends after "354": dot-stuffed lines, the
 * final "CRLF.CRLF", perhaps more.  It is read twice per set of bounds
 * (the daemon's defaults, then tight ones that trip every limit): once in
 * one piece and once in chunks whose sizes come from a hash of the input,
 * so every mutation also tries another cut.  Both readings must agree on
 * the end, the flags, the verdict and every message byte.  A message the
 * reader accepts is checked once more: dot-stuffed again by this file and
 * fed to a fresh reader, it must come back unchanged and clean.  Then the
 * header fields the session looks up (Message-ID, Importance, Priority,
 * X-Priority) are read with the session's buffer sizes and with a large
 * one, and must agree.
 */
#include "build.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "fuzz.h"
#include "hash.h"
#include "smtpd_session.h"
#include "util.h"

struct reading {
	int		 r;		/* SMTPD_DATA_END or _MORE */
	size_t		 used;		/* input bytes up to the end */
	unsigned	 flags;
	int		 verdict;
	char		 reply[128];
	char		*msg;
	size_t		 len;
};

static void	 read_whole(const uint8_t *, size_t, const size_t *,
		    struct reading *);
static void	 read_chunked(const uint8_t *, size_t, const size_t *,
		    uint64_t, struct reading *);
static void	 reading_end(struct smtpd_data *, struct reading *);
static void	 reading_clear(struct reading *);
static void	 restuff(const struct reading *, const size_t *);
static void	 headers(const char *, size_t, int);

/* The header fields smtpd_session.c reads, with its buffer sizes. */
static const struct {
	const char	*name;
	size_t		 size;
} fields[] = {
	{ "Message-ID", 256 },
	{ "Importance", 64 },
	{ "Priority", 64 },
	{ "X-Priority", 64 },
};

/* Take the reader's result into r. */
static void
reading_end(struct smtpd_data *d, struct reading *r)
{
	size_t	 used = 0;

	r->flags = d->flags;
	r->verdict = smtpd_data_verdict(d, r->reply, sizeof r->reply);
	if (r->r == SMTPD_DATA_END) {
		/* nothing is read past the end */
		FUZZ_CHECK(smtpd_data_feed(d, "x\r\n.\r\n", 6, &used) ==
		    SMTPD_DATA_END && used == 0);
		FUZZ_CHECK(d->flags == r->flags);
	}
	FUZZ_CHECK(r->verdict == 0 || strncmp(r->reply, "4", 1) == 0 ||
	    strncmp(r->reply, "5", 1) == 0);
	if (r->r != SMTPD_DATA_END)
		FUZZ_CHECK(r->verdict != 0);
	r->msg = smtpd_data_take(d, &r->len);
	FUZZ_CHECK(r->msg != NULL);
	smtpd_data_clear(d);
}

/* Feed the input in one piece. */
static void
read_whole(const uint8_t *data, size_t size, const size_t *lim,
    struct reading *r)
{
	struct smtpd_data	 d;

	memset(r, 0, sizeof *r);
	smtpd_data_init(&d, lim[0], lim[1], lim[2]);
	r->r = smtpd_data_feed(&d, (const char *)data, size, &r->used);
	FUZZ_CHECK(r->used <= size);
	if (r->r == SMTPD_DATA_MORE)
		FUZZ_CHECK(r->used == size);
	else
		FUZZ_CHECK(r->r == SMTPD_DATA_END);
	reading_end(&d, r);
}

/* Feed the input in pseudo-random chunks (1 byte to 4 KiB). */
static void
read_chunked(const uint8_t *data, size_t size, const size_t *lim,
    uint64_t seed, struct reading *r)
{
	struct smtpd_data	 d;
	size_t			 off = 0, n, used;

	memset(r, 0, sizeof *r);
	r->r = SMTPD_DATA_MORE;
	smtpd_data_init(&d, lim[0], lim[1], lim[2]);
	while (off < size) {
		/* xorshift64: short chunks often, long ones sometimes */
		seed ^= seed << 13;
		seed ^= seed >> 7;
		seed ^= seed << 17;
		n = (seed & 3) == 0 ? (size_t)(seed >> 8) % 4096 + 1 :
		    (size_t)(seed >> 8) % 8 + 1;
		if (n > size - off)
			n = size - off;
		used = 0;
		r->r = smtpd_data_feed(&d, (const char *)data + off, n,
		    &used);
		FUZZ_CHECK(used <= n);
		if (r->r == SMTPD_DATA_END) {
			off += used;
			break;
		}
		FUZZ_CHECK(r->r == SMTPD_DATA_MORE && used == n);
		off += n;
	}
	r->used = off;
	reading_end(&d, r);
}

/* Free what a reading holds. */
static void
reading_clear(struct reading *r)
{
	if (r->msg != NULL) {
		hash_wipe(r->msg, r->len);
		free(r->msg);
	}
	memset(r, 0, sizeof *r);
}

/* Stuff an accepted message again: the reader must give it back as is. */
static void
restuff(const struct reading *r, const size_t *lim)
{
	struct smtpd_data	 d;
	char			*wire, *msg;
	size_t			 i, n = 0, used = 0, len;
	int			 bol = 1;

	wire = xmalloc(r->len * 2 + 3);
	for (i = 0; i < r->len; i++) {
		if (bol && r->msg[i] == '.')
			wire[n++] = '.';
		wire[n++] = r->msg[i];
		bol = r->msg[i] == '\n';
	}
	FUZZ_CHECK(bol);		/* a clean message ends with CRLF */
	memcpy(wire + n, ".\r\n", 3);
	n += 3;

	smtpd_data_init(&d, lim[0], lim[1], lim[2]);
	FUZZ_CHECK(smtpd_data_feed(&d, wire, n, &used) == SMTPD_DATA_END);
	FUZZ_CHECK(used == n && d.flags == 0);
	msg = smtpd_data_take(&d, &len);
	FUZZ_CHECK(len == r->len && memcmp(msg, r->msg, len) == 0);
	smtpd_data_clear(&d);
	hash_wipe(msg, len);
	free(msg);
	free(wire);
}

/* Look the session's header fields up; clean: msg is an accepted one. */
static void
headers(const char *msg, size_t len, int clean)
{
	char	 small[256], *big;
	size_t	 i, bigsz = len + 1;	/* a value is never longer */
	int	 r1, r2;

	big = xmalloc(bigsz);
	for (i = 0; i < nitems(fields); i++) {
		r1 = smtpd_header_get(msg, len, fields[i].name, small,
		    fields[i].size);
		r2 = smtpd_header_get(msg, len, fields[i].name, big, bigsz);
		FUZZ_CHECK(r1 >= -1 && r1 <= 1 && r2 >= -1 && r2 <= 1);
		if (r1 == 1) {
			FUZZ_CHECK(strlen(small) < fields[i].size);
			FUZZ_CHECK(r2 == 1 && strcmp(small, big) == 0);
		}
		if (r1 == 0)
			FUZZ_CHECK(r2 == 0);
		if (r1 != 0)
			FUZZ_CHECK(r2 != 0);
		if (clean && r2 == 1)
			FUZZ_CHECK(strpbrk(big, "\r\n") == NULL);
	}
	free(big);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct reading	 whole, chunked;
	size_t		 lims[2][3], i;
	uint64_t	 seed = UINT64_C(0xcbf29ce484222325);
	static size_t	 deflim[3];

	if (size > FUZZ_MAX_INPUT)
		return 0;
	if (deflim[0] == 0) {
		struct config	*cfg = config_defaults();

		deflim[0] = (size_t)cfg->smtp_max_line_length;
		deflim[1] = (size_t)cfg->smtp_max_header_size;
		deflim[2] = (size_t)cfg->max_letter_size;
		config_free(&cfg);
		if (hash_init() != 0)
			abort();
	}
	memcpy(lims[0], deflim, sizeof deflim);
	lims[1][0] = 80;		/* tight: a long line, */
	lims[1][1] = 300;		/* a big header, */
	lims[1][2] = 2000;		/* a big message */

	for (i = 0; i < size; i++)	/* FNV-1a: the chunking seed */
		seed = (seed ^ data[i]) * UINT64_C(0x100000001b3);
	if (seed == 0)
		seed = 1;

	for (i = 0; i < 2; i++) {
		read_whole(data, size, lims[i], &whole);
		read_chunked(data, size, lims[i], seed, &chunked);
		FUZZ_CHECK(whole.r == chunked.r);
		FUZZ_CHECK(whole.used == chunked.used);
		FUZZ_CHECK(whole.flags == chunked.flags);
		FUZZ_CHECK(whole.verdict == chunked.verdict);
		FUZZ_CHECK(strcmp(whole.reply, chunked.reply) == 0);
		FUZZ_CHECK(whole.len == chunked.len);
		FUZZ_CHECK(memcmp(whole.msg, chunked.msg, whole.len) == 0);
		if (whole.verdict == 0) {
			FUZZ_CHECK(whole.flags == 0);
			restuff(&whole, lims[i]);
			headers(whole.msg, whole.len, 1);
		}
		reading_clear(&whole);
		reading_clear(&chunked);
	}
	/* the lookup is a parser of its own: any bytes at all */
	headers((const char *)data, size, 0);
	return 0;
}
