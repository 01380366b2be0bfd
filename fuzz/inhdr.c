/*
 * inhdr.c - fuzz target: the daemon's own reader of a reply's header.
 *
 * The input is a raw message as it arrives over IMAP; inhdr_parse() reads
 * its header section with a 64 KiB limit (and again with a limit of half
 * the input, so that the "too large" path is reached), then inhdr_auth()
 * judges it against a fixed authserv-id and by position, and
 * inhdr_is_automatic() classifies it.  The input is not NUL-terminated,
 * so a read past its end is caught.
 *
 * Promises checked: a failure gives a reason and only for a header over
 * the limit or with a NUL; header_len is within the input and the limit;
 * a From without a From flag is set, a From flag leaves it empty; an
 * accepted address (From, Sender, every candidate) has exactly one "@",
 * a non-empty local part and domain, no white space, control or 8-bit
 * byte, and a lower-case domain; the counts stay within the arrays; every
 * string is terminated; the verdicts and reasons are among the known.
 */
#include "build.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "inhdr.h"

#define FUZZ_INHDR_MAX	(64 * 1024)

static void	 fuzz_addr(const char *, size_t);
static void	 fuzz_str(const char *, size_t);

/* A terminated string inside its buffer. */
static void
fuzz_str(const char *s, size_t sz)
{
	FUZZ_CHECK(memchr(s, '\0', sz) != NULL);
}

/* An address the strict reader accepted. */
static void
fuzz_addr(const char *a, size_t sz)
{
	const char	*at, *p;

	fuzz_str(a, sz);
	if (a[0] == '\0')
		return;
	FUZZ_CHECK(strlen(a) <= INHDR_ADDR_MAX);
	at = strchr(a, '@');
	FUZZ_CHECK(at != NULL && at > a && at[1] != '\0');
	FUZZ_CHECK(strchr(at + 1, '@') == NULL);
	for (p = a; *p != '\0'; p++)
		FUZZ_CHECK((unsigned char)*p > ' ' &&
		    (unsigned char)*p < 127);
	for (p = at + 1; *p != '\0'; p++)
		FUZZ_CHECK(!(*p >= 'A' && *p <= 'Z'));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const autos[] = {
		"", "Auto-Submitted", "Precedence", "List-Id",
		"autoreply header", "delivery report", "null Return-Path",
		"From mailer-daemon, postmaster or no-reply"
	};
	struct inhdr	*h;
	const char	*raw = (const char *)data, *err, *why;
	char		 reason[512];
	enum inhdr_auth	 a;
	size_t		 i, limit;
	int		 r, k, found;

	if (size > FUZZ_MAX_INPUT)
		return 0;
	if ((h = malloc(sizeof *h)) == NULL)
		abort();
	for (k = 0; k < 2; k++) {
		limit = k == 0 ? FUZZ_INHDR_MAX : size / 2;
		err = NULL;
		memset(h, 0xa5, sizeof *h);
		r = inhdr_parse(raw, size, limit, h, &err);
		if (r == -1) {
			FUZZ_CHECK(err != NULL && err[0] != '\0');
			FUZZ_CHECK(size > limit ||
			    memchr(raw, '\0', size) != NULL);
			continue;
		}
		FUZZ_CHECK(r == 0);
		FUZZ_CHECK(h->header_len <= size && h->header_len <= limit);
		FUZZ_CHECK(memchr(raw, '\0', h->header_len) == NULL);
		FUZZ_CHECK((h->from_flags & ~0x3fu) == 0);
		if ((h->from_flags & ~(unsigned)INHDR_SENDER_DIFFERS) == 0)
			FUZZ_CHECK(h->from[0] != '\0');
		else
			FUZZ_CHECK(h->from[0] == '\0');
		fuzz_addr(h->from, sizeof h->from);
		fuzz_addr(h->sender, sizeof h->sender);
		FUZZ_CHECK(h->nrcpts <= INHDR_MAX_RCPTS);
		for (i = 0; i < h->nrcpts; i++) {
			FUZZ_CHECK(h->rcpts[i].src >= INHDR_DELIVERED_TO &&
			    h->rcpts[i].src <= INHDR_CC);
			FUZZ_CHECK(i == 0 ||
			    h->rcpts[i].src >= h->rcpts[i - 1].src);
			FUZZ_CHECK(h->rcpts[i].addr[0] != '\0');
			fuzz_addr(h->rcpts[i].addr, sizeof h->rcpts[i].addr);
		}
		FUZZ_CHECK(h->nrefs <= INHDR_MAX_REFS);
		for (i = 0; i < h->nrefs; i++)
			FUZZ_CHECK(h->refs[i][0] == '<');
		fuzz_str(h->message_id, sizeof h->message_id);
		fuzz_str(h->in_reply_to, sizeof h->in_reply_to);
		fuzz_str(h->auto_submitted, sizeof h->auto_submitted);
		fuzz_str(h->precedence, sizeof h->precedence);
		FUZZ_CHECK(h->nar <= INHDR_MAX_AR);
		for (i = 0; i < h->nar; i++) {
			fuzz_str(h->ar[i].authserv_id,
			    sizeof h->ar[i].authserv_id);
			fuzz_str(h->ar[i].dmarc_from,
			    sizeof h->ar[i].dmarc_from);
			fuzz_str(h->ar[i].dkim_domain,
			    sizeof h->ar[i].dkim_domain);
			FUZZ_CHECK(h->ar[i].dmarc <= INHDR_RES_OTHER &&
			    h->ar[i].dkim <= INHDR_RES_OTHER);
		}
		a = inhdr_auth(h, "mx.example.org", 0, reason, sizeof reason);
		FUZZ_CHECK(a <= INHDR_AUTH_TEMPERROR && reason[0] != '\0');
		FUZZ_CHECK(a == INHDR_AUTH_NONE || h->nar > 0);
		a = inhdr_auth(h, NULL, 1, NULL, 0);
		FUZZ_CHECK(strcmp(inhdr_auth_name(a), "unknown") != 0);
		FUZZ_CHECK(inhdr_auth(h, NULL, 0, reason, sizeof reason) ==
		    INHDR_AUTH_NONE);
		why = NULL;
		r = inhdr_is_automatic(h, &why);
		for (i = 0, found = 0; i < sizeof autos / sizeof autos[0]; i++)
			if (why != NULL && strcmp(why, autos[i]) == 0)
				found = 1;
		FUZZ_CHECK(found && (r != 0) == (why[0] != '\0'));
		FUZZ_CHECK(inhdr_from_problem(h->from_flags) != NULL);
	}
	free(h);
	return 0;
}
