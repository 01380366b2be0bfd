/*
 * mime_letter.c - fuzz target: inbound MIME through mime.c and libetpan.
 *
 * The input is a message as the parse sandbox receives it.  As there,
 * mime_init() runs once and each message goes through mime_parse_letter(),
 * which runs mime_prefilter() before libetpan sees a byte: an input that
 * crashes here crashes the sandbox child too, so any crash is a finding
 * (in mime.c, or a libetpan bug the prefilter must stop).  Unlike the
 * daemon's request buffer, the input is not NUL-terminated, so a read past
 * its end is caught.
 *
 * With the daemon's limits first; an accepted message is parsed again under
 * tight limits (depth 3, 8 parts, 2 attachments of 1 KiB) to reach the
 * refusal paths.  An accepted letter must validate and survive the sealed
 * round trip (fuzz_doc.c), as the sandbox sends it to the daemon that way.
 */
#include "build.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "hash.h"
#include "letter.h"
#include "mime.h"

static int	 fuzz_parse(const char *, size_t, const struct mime_limits *);

/* One parse; 1 when the message was accepted. */
static int
fuzz_parse(const char *raw, size_t len, const struct mime_limits *lim)
{
	struct letter_doc	*doc = NULL;
	struct letter_error	 err;
	struct letter_limits	 llim;

	if (mime_parse_letter(raw, len, lim, &doc, &err) != 0) {
		FUZZ_CHECK(doc == NULL);
		FUZZ_CHECK(err.code[0] != '\0');
		FUZZ_CHECK(memchr(err.message, '\0', sizeof err.message) !=
		    NULL);
		return 0;
	}
	FUZZ_CHECK(doc != NULL);
	FUZZ_CHECK(doc->subject != NULL);
	FUZZ_CHECK(doc->text != NULL || doc->html != NULL);
	FUZZ_CHECK(doc->natt <= lim->max_attachments);
	llim.max_size = lim->max_size;
	llim.max_attachments = lim->max_attachments;
	llim.max_attachment_size = lim->max_attachment_size;
	FUZZ_CHECK(letter_doc_validate(doc, &llim, &err) == 0);
	fuzz_doc_roundtrip(doc);
	letter_doc_free(&doc);
	return 1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct mime_limits	 deflim, tight;
	static int			 ready;

	if (size > FUZZ_MAX_INPUT)
		return 0;
	if (!ready) {
		if (hash_init() != 0)
			abort();
		letter_json_init();
		mime_init();
		mime_limits_default(&deflim);
		tight = deflim;
		tight.max_depth = 3;
		tight.max_parts = 8;
		tight.max_attachments = 2;
		tight.max_attachment_size = 1024;
		ready = 1;
	}
	if (fuzz_parse((const char *)data, size, &deflim))
		(void)fuzz_parse((const char *)data, size, &tight);
	return 0;
}
