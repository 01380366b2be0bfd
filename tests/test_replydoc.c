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

/* A whole document, as the intake writes it: every field read. */
static void
test_full(void)
{
	struct reply_doc	 in;
	struct letter_doc	*c = letter_doc_new();
	struct replydoc		*rd = NULL;
	const char		*error = NULL;
	char			*doc;
	size_t			 len;

	c->subject = xstrdup("Re: results");
	c->text = xstrdup("Thank you\n> quoted");
	c->natt = 2;
	c->att = xcalloc(2, sizeof(*c->att));
	c->att[0].filename = xstrdup("a.pdf");
	c->att[0].content_type = xstrdup("application/pdf");
	c->att[0].data = (unsigned char *)xstrdup("foob");
	c->att[0].len = 4;
	c->att[1].filename = xstrdup("b.png");
	c->att[1].content_type = xstrdup("image/png");
	c->att[1].data = (unsigned char *)xstrdup("foo");
	c->att[1].len = 3;
	memset(&in, 0, sizeof(in));
	in.new_text = "Thank you";
	in.removed = 1;
	in.original = (unsigned char *)"fo";
	in.original_len = 2;
	in.content = c;
	doc = reply_doc_serialize(&in, &len);
	letter_doc_free(&c);
	if (!ok(doc != NULL && replydoc_parse(doc, len, &rd, &error) == 0,
	    "full document parses")) {
		diag("%s", error ? error : "serialise");
		free(doc);
		return;
	}
	ok(rd->parsed, "parsed content");
	is_str(rd->subject, "Re: results", "subject");
	is_str(rd->new_text, "Thank you", "new text");
	is_str(rd->text, "Thank you\n> quoted", "full text");
	ok(rd->html == NULL, "no html");
	is_int(rd->natt, 2, "two attachments");
	is_str(rd->att[0].filename, "a.pdf", "attachment name");
	is_str(rd->att[0].content_type, "application/pdf", "attachment type");
	is_int(rd->att[0].size, 4, "attachment size");
	is_int(rd->att[1].size, 3, "second attachment size");
	is_int(rd->original_size, 2, "original size");
	replydoc_free(&rd);
	ok(rd == NULL, "free clears the pointer");
	replydoc_free(&rd);
	free(doc);
}

/* Decoded sizes of the original; a document without content. */
static void
test_sizes(void)
{
	static const struct {
		const char	*b64;
		size_t		 size;
	} cases[] = {
		{ "", 0 }, { "Zg==", 1 }, { "Zm8=", 2 }, { "Zm9v", 3 },
		{ "Zm9vYg==", 4 }, { "Zm9vYmE=", 5 }, { "Zm9vYmFy", 6 },
	};
	struct replydoc	*rd = NULL;
	const char	*error = NULL;
	char		 doc[256];
	size_t		 i;

	for (i = 0; i < nitems(cases); i++) {
		snprintf(doc, sizeof doc, "{\"format\":\"sealpost-reply/1\","
		    "\"new_text\":\"\",\"removed\":[],\"original\":\"%s\"}",
		    cases[i].b64);
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
		"{\"format\":\"sealpost-reply/1\",\"new_text\":\"\","
		    "\"removed\":[],\"original\":\"\",\"later\":1}",
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
