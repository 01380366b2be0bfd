/*
 * letter_doc.c - fuzz target: the sealed letter form "sealpost-letter/1".
 *
 * The input is a document as it comes out of an age blob or the parse
 * sandbox, read by letter_doc_parse().  An accepted document must survive
 * the round trip (fuzz_doc.c); it is also validated against the daemon's
 * default limits and tight ones (the result may go either way, but must
 * not crash), and an error must carry a known status and a code.
 */
#include "build.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "fuzz.h"
#include "hash.h"
#include "letter.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct letter_limits	 deflim;
	static const struct letter_limits tight = { 8192, 3, 16 };
	struct letter_doc		*doc = NULL;
	struct letter_error		 err;
	int				 r;

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
	if (letter_doc_parse((const char *)data, size, &doc, &err) != 0) {
		FUZZ_CHECK(doc == NULL);
		FUZZ_CHECK(err.status == 400 || err.status == 413 ||
		    err.status == 422);
		FUZZ_CHECK(err.code[0] != '\0');
		return 0;
	}
	FUZZ_CHECK(doc != NULL);
	fuzz_doc_roundtrip(doc);
	r = letter_doc_validate(doc, &deflim, &err);
	FUZZ_CHECK(r == 0 || r == -1);
	r = letter_doc_validate(doc, &tight, &err);
	FUZZ_CHECK(r == 0 || r == -1);
	letter_doc_free(&doc);
	FUZZ_CHECK(doc == NULL);
	return 0;
}
