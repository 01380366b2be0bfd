/*
 * letter_request.c - fuzz target: POST /v1/letters bodies.
 *
 * The input is a request body, parsed by letter_request_parse() as api.c
 * does (jansson set up by letter_json_init(), as sealpostd sets it up),
 * once with the daemon's default limits and once with tight ones (8 KiB,
 * 3 attachments of 16 bytes) so that every limit can trip.  An error must
 * carry a known status and a code; an accepted request must have valid
 * routing fields, pass letter_doc_validate() with the same limits, and its
 * document must survive the sealed-form round trip (fuzz_doc.c).
 */
#include "build.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "fuzz.h"
#include "hash.h"
#include "letter.h"

static void	 fuzz_request(const char *, size_t, const struct letter_limits *);

/* One parse under one set of limits. */
static void
fuzz_request(const char *body, size_t len, const struct letter_limits *lim)
{
	struct letter_request	 req;
	struct letter_error	 err;

	if (letter_request_parse(body, len, lim, &req, &err) != 0) {
		FUZZ_CHECK(err.status == 400 || err.status == 413 ||
		    err.status == 415 || err.status == 422);
		FUZZ_CHECK(memchr(err.code, '\0', sizeof err.code) != NULL);
		FUZZ_CHECK(err.code[0] != '\0');
		FUZZ_CHECK(memchr(err.field, '\0', sizeof err.field) != NULL);
		FUZZ_CHECK(memchr(err.message, '\0', sizeof err.message) !=
		    NULL);
		FUZZ_CHECK(req.doc == NULL);
		letter_request_clear(&req);
		return;
	}
	FUZZ_CHECK(req.patient_id > 0 && req.author_id > 0);
	FUZZ_CHECK(req.practice_id >= 0);
	FUZZ_CHECK(req.priority == LETTER_ROUTINE ||
	    req.priority == LETTER_URGENT);
	FUZZ_CHECK(req.doc != NULL);
	FUZZ_CHECK(req.doc->natt <= lim->max_attachments);
	FUZZ_CHECK(letter_doc_validate(req.doc, lim, &err) == 0);
	fuzz_doc_roundtrip(req.doc);
	letter_request_clear(&req);
	FUZZ_CHECK(req.doc == NULL);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct letter_limits	 deflim;
	static const struct letter_limits tight = { 8192, 3, 16 };

	if (size > FUZZ_MAX_INPUT)
		return 0;
	if (deflim.max_size == 0) {
		struct config	*cfg = config_defaults();

		deflim.max_size = (size_t)cfg->max_letter_size;
		deflim.max_attachments = (size_t)cfg->max_attachments;
		deflim.max_attachment_size = (size_t)cfg->max_attachment_size;
		config_free(&cfg);
		if (hash_init() != 0)
			abort();
		letter_json_init();
	}
	fuzz_request((const char *)data, size, &deflim);
	fuzz_request((const char *)data, size, &tight);
	return 0;
}
