/*
 * dsn.c - fuzz target: bounces through dsn.c, and its text form.
 *
 * The input is a message as the parse sandbox receives it for
 * SANDBOX_OP_DSN: as there, mime_init() runs once and mime_prefilter()
 * sees it before libetpan and dsn_parse() do, so any crash is a finding.
 * The input is not NUL-terminated, so a read past its end is caught.  The
 * same bytes also go to dsn_deserialize(), the daemon side's reader of the
 * child's answer.
 *
 * Promises checked: a result is one of the three, with a reason exactly
 * when it is not DSN_OK; a report has 1 to DSN_MAX_RCPTS recipients, each
 * with a final recipient, and a class of 0, 2, 4 or 5 (0 for no report);
 * every report the parser gives has a text form that reads back equal and
 * writes again to the same bytes; and text the reader accepts is exactly
 * what the writer makes of it (one canonical form).
 */
#include "build.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dsn.h"
#include "fuzz.h"
#include "hash.h"
#include "letter.h"
#include "mime.h"

static int	 fuzz_equal(const struct dsn_report *, const struct dsn_report *);
static void	 fuzz_report(const struct dsn_report *);

/* Field by field, as the sandbox test compares them. */
static int
fuzz_equal(const struct dsn_report *a, const struct dsn_report *b)
{
	size_t	 i;

	if (strcmp(a->reporting_mta, b->reporting_mta) != 0 ||
	    strcmp(a->orig_msgid, b->orig_msgid) != 0 ||
	    a->nrcpts != b->nrcpts)
		return 0;
	for (i = 0; i < a->nrcpts; i++) {
		if (strcmp(a->rcpts[i].final_rcpt, b->rcpts[i].final_rcpt) ||
		    strcmp(a->rcpts[i].orig_rcpt, b->rcpts[i].orig_rcpt) ||
		    a->rcpts[i].action != b->rcpts[i].action ||
		    strcmp(a->rcpts[i].status, b->rcpts[i].status) ||
		    strcmp(a->rcpts[i].diagnostic, b->rcpts[i].diagnostic))
			return 0;
	}
	return 1;
}

/* A report from either side: bounded, classed, and a stable text. */
static void
fuzz_report(const struct dsn_report *rep)
{
	struct dsn_report	 back;
	char			*text, *again;
	size_t			 i, len, alen;
	int			 cls;

	FUZZ_CHECK(rep->nrcpts >= 1 && rep->nrcpts <= DSN_MAX_RCPTS);
	for (i = 0; i < rep->nrcpts; i++)
		FUZZ_CHECK(rep->rcpts[i].final_rcpt[0] != '\0');
	cls = dsn_class(rep);
	FUZZ_CHECK(cls == 0 || cls == 2 || cls == 4 || cls == 5);
	text = dsn_serialize(rep, &len);
	FUZZ_CHECK(text != NULL && len > 0 && strlen(text) == len);
	FUZZ_CHECK(dsn_deserialize(text, len, &back) == 0);
	FUZZ_CHECK(fuzz_equal(rep, &back));
	again = dsn_serialize(&back, &alen);
	FUZZ_CHECK(again != NULL && alen == len && memcmp(text, again,
	    len) == 0);
	free(text);
	free(again);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct mime_limits	 lim;
	static int			 ready;
	struct letter_error		 err;
	struct dsn_report		 rep;
	enum dsn_result			 res;
	const char			*why;
	char				*text;
	size_t				 len;

	if (size > FUZZ_MAX_INPUT)
		return 0;
	if (!ready) {
		if (hash_init() != 0)
			abort();
		mime_init();
		mime_limits_default(&lim);
		ready = 1;
	}

	/* The child's side: prefilter, then the report. */
	if (mime_prefilter((const char *)data, size, &lim, &err) == 0) {
		why = "unset";
		res = dsn_parse((const char *)data, size, &rep, &why);
		FUZZ_CHECK(res == DSN_OK || res == DSN_NOT_REPORT ||
		    res == DSN_MALFORMED);
		if (res == DSN_OK) {
			FUZZ_CHECK(why == NULL);
			fuzz_report(&rep);
		} else {
			FUZZ_CHECK(why != NULL && why[0] != '\0');
			FUZZ_CHECK(rep.nrcpts == 0 && dsn_class(&rep) == 0);
		}
	} else
		FUZZ_CHECK(err.code[0] != '\0');

	/* The daemon's side: the answer's text. */
	if (dsn_deserialize((const char *)data, size, &rep) == 0) {
		fuzz_report(&rep);
		text = dsn_serialize(&rep, &len);
		FUZZ_CHECK(text != NULL && len == size &&
		    memcmp(text, data, size) == 0);
		free(text);
	} else
		FUZZ_CHECK(rep.nrcpts == 0);
	return 0;
}
