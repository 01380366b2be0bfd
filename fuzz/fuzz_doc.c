/*
 * fuzz_doc.c - the letter document round trip, for the targets that make
 * documents (letter_request, letter_doc, mime_letter).
 *
 * Public: fuzz_doc_roundtrip.  Whatever a parser accepted is sealed as
 * "sealpost-letter/1" and read back by the daemon (the parse sandbox sends
 * its result the same way), so it must serialise, parse back to an equal
 * document, and serialise again to the same bytes.  A failure aborts.
 */
#include "build.h"

#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "hash.h"
#include "letter.h"

static int	 str_equal(const char *, const char *);

/* Equal strings, both NULL counting as equal. */
static int
str_equal(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

/* Serialise, parse back, compare, serialise again. */
void
fuzz_doc_roundtrip(const struct letter_doc *doc)
{
	struct letter_doc	*back = NULL;
	struct letter_error	 err;
	const struct letter_attachment *a, *b;
	char			*json, *json2;
	size_t			 len, len2, i;

	json = letter_doc_serialize(doc, &len);
	FUZZ_CHECK(json != NULL);
	FUZZ_CHECK(strlen(json) == len);
	FUZZ_CHECK(letter_doc_parse(json, len, &back, &err) == 0);
	FUZZ_CHECK(back != NULL);

	FUZZ_CHECK(str_equal(doc->subject != NULL ? doc->subject : "",
	    back->subject != NULL ? back->subject : ""));
	FUZZ_CHECK(str_equal(doc->text, back->text));
	FUZZ_CHECK(str_equal(doc->html, back->html));
	FUZZ_CHECK(doc->natt == back->natt);
	for (i = 0; i < doc->natt; i++) {
		a = &doc->att[i];
		b = &back->att[i];
		FUZZ_CHECK(str_equal(a->filename, b->filename));
		FUZZ_CHECK(str_equal(a->content_type, b->content_type));
		FUZZ_CHECK(a->len == b->len);
		FUZZ_CHECK(a->len == 0 || memcmp(a->data, b->data,
		    a->len) == 0);
	}

	json2 = letter_doc_serialize(back, &len2);
	FUZZ_CHECK(json2 != NULL);
	FUZZ_CHECK(len2 == len && memcmp(json, json2, len) == 0);

	hash_wipe(json, len);
	free(json);
	hash_wipe(json2, len2);
	free(json2);
	letter_doc_free(&back);
}
