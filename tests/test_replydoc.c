/*
 * test_replydoc.c - replydoc.c: reading "sealpost-reply/1" back.
 */
#include "build.h"

#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "letter.h"
#include "replydoc.h"
#include "util.h"
#include "tap.h"

/* A whole document: every field read, the data not copied. */
static void
test_full(void)
{
	static const char doc[] =
	    "{\"format\":\"sealpost-reply/1\",\"subject\":\"Re: results\","
	    "\"new_text\":\"Thank you\",\"text\":\"Thank you\\n> quoted\","
	    "\"html\":null,\"attachments\":[{\"filename\":\"a.pdf\","
	    "\"content_type\":\"application/pdf\",\"data\":\"Zm9vYg==\"},"
	    "{\"filename\":null,\"content_type\":\"image/png\",\"data\":"
	    "\"Zm9v\"}],\"removed\":[\"quote\"],\"original\":\"Zm8=\","
	    "\"later\":1}";
	struct replydoc	*rd = NULL;
	const char	*error = NULL;

	if (!ok(replydoc_parse(doc, sizeof doc - 1, &rd, &error) == 0,
	    "full document parses (unknown key ignored)")) {
		diag("%s", error);
		return;
	}
	ok(rd->parsed, "parsed content");
	is_str(rd->subject, "Re: results", "subject");
	is_str(rd->new_text, "Thank you", "new text");
	is_str(rd->text, "Thank you\n> quoted", "full text");
	ok(rd->html == NULL, "html null");
	is_int(rd->natt, 2, "two attachments");
	is_str(rd->att[0].filename, "a.pdf", "attachment name");
	is_str(rd->att[0].content_type, "application/pdf", "attachment type");
	is_int(rd->att[0].size, 4, "attachment size from padded base64");
	ok(rd->att[1].filename == NULL, "attachment without a name");
	is_int(rd->att[1].size, 3, "attachment size, no padding needed");
	is_int(rd->original_size, 2, "original size");
	replydoc_free(&rd);
	ok(rd == NULL, "free clears the pointer");
	replydoc_free(&rd);
}

/* Decoded sizes for every padding and for unpadded base64. */
static void
test_sizes(void)
{
	static const struct {
		const char	*b64;
		size_t		 size;
	} cases[] = {
		{ "", 0 }, { "Zg==", 1 }, { "Zm8=", 2 }, { "Zm9v", 3 },
		{ "Zm9vYg", 4 }, { "Zm9vYmE", 5 }, { "Zm9vYmFy\\n", 6 },
	};
	struct replydoc	*rd = NULL;
	const char	*error = NULL;
	char		 doc[256];
	size_t		 i;

	for (i = 0; i < nitems(cases); i++) {
		snprintf(doc, sizeof doc, "{\"format\":\"sealpost-reply/1\","
		    "\"original\":\"%s\"}", cases[i].b64);
		if (!ok(replydoc_parse(doc, strlen(doc), &rd, &error) == 0,
		    "original \"%s\" parses", cases[i].b64))
			continue;
		is_int(rd->original_size, cases[i].size, "\"%s\": %zu bytes",
		    cases[i].b64, cases[i].size);
		ok(!rd->parsed, "\"%s\": original only", cases[i].b64);
		replydoc_free(&rd);
	}
}

/* Refused: each with its reason, nothing returned. */
static void
test_bad(void)
{
	static const char *const cases[] = {
		"",
		"not json",
		"[]",
		"{}",
		"{\"format\":\"sealpost-letter/1\"}",
		"{\"format\":1}",
		"{\"format\":\"sealpost-reply/1\",\"subject\":3}",
		"{\"format\":\"sealpost-reply/1\",\"new_text\":[]}",
		"{\"format\":\"sealpost-reply/1\",\"text\":\"a\\u0000b\"}",
		"{\"format\":\"sealpost-reply/1\",\"attachments\":{}}",
		"{\"format\":\"sealpost-reply/1\",\"attachments\":[1]}",
		"{\"format\":\"sealpost-reply/1\",\"attachments\":"
		    "[{\"filename\":2}]}",
		"{\"format\":\"sealpost-reply/1\",\"attachments\":"
		    "[{\"data\":2}]}",
		"{\"format\":\"sealpost-reply/1\",\"original\":5}",
		"{\"format\":\"sealpost-reply/1\",\"format\":"
		    "\"sealpost-reply/1\"}",
	};
	struct replydoc	*rd = NULL;
	const char	*error = NULL;
	size_t		 i;

	for (i = 0; i < nitems(cases); i++) {
		error = NULL;
		ok(replydoc_parse(cases[i], strlen(cases[i]), &rd, &error) ==
		    -1 && rd == NULL && error != NULL,
		    "refused: %s", cases[i][0] != '\0' ? cases[i] : "(empty)");
	}
}

int
main(void)
{
	if (hash_init() != 0)
		return 1;
	letter_json_init();
	test_full();
	test_sizes();
	test_bad();
	return tap_done();
}
