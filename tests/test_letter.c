/*
 * test_letter.c - the POST /v1/letters parser, the document validator and
 * the sealed "sealpost-letter/1" form.
 *
 * A table of request bodies with the expected status, code and field; the
 * good bodies are checked field by field.  Every body carries a canary in
 * its content, and no error message or field may ever contain it.
 */
#include "build.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "hash.h"
#include "letter.h"
#include "util.h"
#include "tap.h"

int	main(void);

#define CANARY	"CANARY-7f3a"
/* The routing half every table body shares. */
#define IDS	"\"patient\":42,\"author\":7,"
#define SUBJ	"\"subject\":\"Results " CANARY "\","
#define TEXT	"\"text\":\"Dear Jo, " CANARY "\""
#define BASE	IDS SUBJ TEXT
/* One good attachment: "hello" in base64. */
#define ATT(fn, ct, data) \
	"{\"filename\":\"" fn "\",\"content_type\":\"" ct "\",\"data\":\"" \
	data "\"}"
#define GOODATT	ATT(CANARY ".pdf", "application/pdf", "aGVsbG8=")

static const struct letter_limits limits = {
	.max_size = 8192,
	.max_attachments = 3,
	.max_attachment_size = 16,
};

static const struct {
	const char	*name;
	const char	*body;
	int		 status;	/* 0: accepted */
	const char	*code;
	const char	*field;
} cases[] = {
	/* accepted */
	{ "minimal letter", "{" BASE "}", 0, NULL, NULL },
	{ "html only", "{" IDS SUBJ "\"html\":\"<p>" CANARY "</p>\"}",
	    0, NULL, NULL },
	{ "practice and urgent", "{" BASE ",\"practice\":3,"
	    "\"priority\":\"urgent\"}", 0, NULL, NULL },
	{ "routine priority", "{" BASE ",\"priority\":\"routine\"}",
	    0, NULL, NULL },
	{ "null optional fields", "{" BASE ",\"practice\":null,"
	    "\"html\":null,\"attachments\":null,\"priority\":null}",
	    0, NULL, NULL },
	{ "empty attachments", "{" BASE ",\"attachments\":[]}", 0, NULL, NULL },
	{ "three attachments", "{" BASE ",\"attachments\":[" GOODATT ","
	    GOODATT "," GOODATT "]}", 0, NULL, NULL },
	{ "16-byte attachment (the limit)", "{" BASE ",\"attachments\":["
	    ATT("a.bin", "application/octet-stream",
	    "MDEyMzQ1Njc4OWFiY2RlZg==") "]}", 0, NULL, NULL },
	{ "empty attachment", "{" BASE ",\"attachments\":["
	    ATT("empty.txt", "text/plain", "") "]}", 0, NULL, NULL },
	{ "vendor content type", "{" BASE ",\"attachments\":["
	    ATT("x.xlsx", "application/vnd.openxmlformats-officedocument."
	    "spreadsheetml.sheet", "aGVsbG8=") "]}", 0, NULL, NULL },
	{ "non-ASCII filename", "{" BASE ",\"attachments\":["
	    ATT("r\\u00e9sum\\u00e9 \\u8840\\u6db2.pdf", "application/pdf",
	    "aGVsbG8=") "]}", 0, NULL, NULL },
	{ "empty text", "{" IDS SUBJ "\"text\":\"\"}", 0, NULL,
	    NULL },

	/* not JSON, not an object */
	{ "empty body", "", 400, "malformed_json", "" },
	{ "truncated", "{" IDS "\"subject\":\"" CANARY, 400,
	    "malformed_json", "" },
	{ "bare word", CANARY, 400, "malformed_json", "" },
	{ "trailing garbage", "{" BASE "} " CANARY, 400, "malformed_json",
	    "" },
	{ "single quotes", "{'patient':42}", 400, "malformed_json", "" },
	{ "invalid UTF-8", "{" IDS "\"subject\":\"\xff" CANARY "\"," TEXT
	    "}", 400, "malformed_json", "" },
	{ "array body", "[{" BASE "}]", 400, "invalid_body", "" },
	{ "string body", "\"" CANARY "\"", 400, "malformed_json", "" },
	{ "duplicate key", "{" BASE ",\"subject\":\"" CANARY "\"}", 400,
	    "duplicate_key", "" },
	{ "duplicate key in an attachment", "{" BASE ",\"attachments\":["
	    "{\"filename\":\"a\",\"filename\":\"b\",\"content_type\":"
	    "\"text/plain\",\"data\":\"\"}]}", 400, "duplicate_key", "" },

	/* ids */
	{ "patient missing", "{\"author\":7," SUBJ TEXT "}", 422,
	    "missing_field", "patient" },
	{ "patient null", "{\"patient\":null,\"author\":7," SUBJ TEXT "}",
	    422, "missing_field", "patient" },
	{ "patient string", "{\"patient\":\"42\",\"author\":7," SUBJ TEXT
	    "}", 422, "invalid_field", "patient" },
	{ "patient real", "{\"patient\":4.2,\"author\":7," SUBJ TEXT "}",
	    422, "invalid_field", "patient" },
	{ "patient zero", "{\"patient\":0,\"author\":7," SUBJ TEXT "}",
	    422, "invalid_field", "patient" },
	{ "patient negative", "{\"patient\":-1,\"author\":7," SUBJ TEXT "}",
	    422, "invalid_field", "patient" },
	{ "patient boolean", "{\"patient\":true,\"author\":7," SUBJ TEXT
	    "}", 422, "invalid_field", "patient" },
	{ "author missing", "{\"patient\":42," SUBJ TEXT "}", 422,
	    "missing_field", "author" },
	{ "author object", "{\"patient\":42,\"author\":{}," SUBJ TEXT "}",
	    422, "invalid_field", "author" },
	{ "practice string", "{" BASE ",\"practice\":\"3\"}", 422,
	    "invalid_field", "practice" },

	/* subject */
	{ "subject missing", "{" IDS TEXT "}", 422, "missing_field",
	    "subject" },
	{ "subject number", "{" IDS "\"subject\":5," TEXT "}", 422,
	    "invalid_field", "subject" },
	{ "subject empty", "{" IDS "\"subject\":\"\"," TEXT "}", 422,
	    "invalid_field", "subject" },
	{ "subject with CR", "{" IDS "\"subject\":\"a\\r" CANARY "\","
	    TEXT "}", 422, "invalid_field", "subject" },
	{ "subject with LF", "{" IDS "\"subject\":\"" CANARY "\\nBcc: x\","
	    TEXT "}", 422, "invalid_field", "subject" },
	{ "subject with NUL", "{" IDS "\"subject\":\"a\\u0000" CANARY "\","
	    TEXT "}", 422, "invalid_field", "subject" },

	/* text, html */
	{ "neither text nor html", "{" IDS "\"subject\":\"" CANARY "\"}",
	    422, "missing_field", "text" },
	{ "text number", "{" IDS SUBJ "\"text\":1}", 422, "invalid_field",
	    "text" },
	{ "html array", "{" BASE ",\"html\":[\"" CANARY "\"]}", 422,
	    "invalid_field", "html" },
	{ "text with NUL", "{" IDS SUBJ "\"text\":\"" CANARY "\\u0000\"}",
	    422, "invalid_field", "text" },

	/* attachments */
	{ "attachments object", "{" BASE ",\"attachments\":{}}", 422,
	    "invalid_field", "attachments" },
	{ "attachment not an object", "{" BASE ",\"attachments\":["
	    GOODATT ",\"" CANARY "\"]}", 422, "invalid_field",
	    "attachments[1]" },
	{ "attachment without filename", "{" BASE ",\"attachments\":["
	    "{\"content_type\":\"text/plain\",\"data\":\"\"}]}", 422,
	    "missing_field", "attachments[0].filename" },
	{ "attachment without content_type", "{" BASE ",\"attachments\":["
	    "{\"filename\":\"a\",\"data\":\"\"}]}", 422, "missing_field",
	    "attachments[0].content_type" },
	{ "attachment without data", "{" BASE ",\"attachments\":["
	    "{\"filename\":\"a\",\"content_type\":\"text/plain\"}]}", 422,
	    "missing_field", "attachments[0].data" },
	{ "filename number", "{" BASE ",\"attachments\":["
	    "{\"filename\":1,\"content_type\":\"text/plain\",\"data\":\"\"}"
	    "]}", 422, "invalid_field", "attachments[0].filename" },
	{ "data number", "{" BASE ",\"attachments\":["
	    "{\"filename\":\"a\",\"content_type\":\"text/plain\",\"data\":1}"
	    "]}", 422, "invalid_field", "attachments[0].data" },
	{ "filename with slash", "{" BASE ",\"attachments\":["
	    ATT("../" CANARY, "text/plain", "") "]}", 422, "invalid_field",
	    "attachments[0].filename" },
	{ "filename with backslash", "{" BASE ",\"attachments\":["
	    ATT("a\\\\" CANARY, "text/plain", "") "]}", 422, "invalid_field",
	    "attachments[0].filename" },
	{ "filename empty", "{" BASE ",\"attachments\":["
	    ATT("", "text/plain", "") "]}", 422, "invalid_field",
	    "attachments[0].filename" },
	{ "filename ..", "{" BASE ",\"attachments\":["
	    ATT("..", "text/plain", "") "]}", 422, "invalid_field",
	    "attachments[0].filename" },
	{ "filename with a control character", "{" BASE ",\"attachments\":["
	    ATT(CANARY "\\u0001", "text/plain", "") "]}", 422,
	    "invalid_field", "attachments[0].filename" },
	{ "filename with a newline", "{" BASE ",\"attachments\":["
	    ATT(CANARY "\\n.pdf", "text/plain", "") "]}", 422,
	    "invalid_field", "attachments[0].filename" },
	{ "filename with DEL", "{" BASE ",\"attachments\":["
	    ATT("a\\u007f", "text/plain", "") "]}", 422,
	    "invalid_field", "attachments[0].filename" },
	{ "filename with a C1 control", "{" BASE ",\"attachments\":["
	    ATT("a\\u0085b", "text/plain", "") "]}", 422,
	    "invalid_field", "attachments[0].filename" },
	{ "filename with NUL", "{" BASE ",\"attachments\":["
	    ATT("a\\u0000b", "text/plain", "") "]}", 422,
	    "invalid_field", "attachments[0].filename" },
	{ "content type without subtype", "{" BASE ",\"attachments\":["
	    ATT("a", "text", "") "]}", 422, "invalid_field",
	    "attachments[0].content_type" },
	{ "content type with parameters", "{" BASE ",\"attachments\":["
	    ATT("a", "text/plain; charset=utf-8", "") "]}", 422,
	    "invalid_field", "attachments[0].content_type" },
	{ "content type with a space", "{" BASE ",\"attachments\":["
	    ATT("a", "text/pl ain", "") "]}", 422, "invalid_field",
	    "attachments[0].content_type" },
	{ "content type with two slashes", "{" BASE ",\"attachments\":["
	    ATT("a", "text/plain/x", "") "]}", 422, "invalid_field",
	    "attachments[0].content_type" },
	{ "content type with an empty type", "{" BASE ",\"attachments\":["
	    ATT("a", "/plain", "") "]}", 422, "invalid_field",
	    "attachments[0].content_type" },
	{ "content type with an empty subtype", "{" BASE
	    ",\"attachments\":[" ATT("a", "text/", "") "]}", 422,
	    "invalid_field", "attachments[0].content_type" },
	{ "content type with a tspecial", "{" BASE ",\"attachments\":["
	    ATT("a", "text/pl@in", "") "]}", 422, "invalid_field",
	    "attachments[0].content_type" },
	{ "bad base64 alphabet", "{" BASE ",\"attachments\":["
	    ATT("a", "text/plain", "aGVs*G8=") "]}", 422, "invalid_base64",
	    "attachments[0].data" },
	{ "base64 with a line break", "{" BASE ",\"attachments\":["
	    ATT("a", "text/plain", "aGVs\\nbG8=") "]}", 422,
	    "invalid_base64", "attachments[0].data" },
	{ "base64url alphabet", "{" BASE ",\"attachments\":["
	    ATT("a", "text/plain", "-_-_") "]}", 422, "invalid_base64",
	    "attachments[0].data" },
	{ "bad base64 in the third attachment", "{" BASE
	    ",\"attachments\":[" GOODATT "," GOODATT ","
	    ATT("a", "text/plain", "!!!!") "]}", 422, "invalid_base64",
	    "attachments[2].data" },
	{ "17-byte attachment", "{" BASE ",\"attachments\":["
	    ATT("a", "text/plain", "MDEyMzQ1Njc4OWFiY2RlZmc=") "]}", 413,
	    "too_large", "attachments[0].data" },
	{ "huge attachment refused before decoding", "{" BASE
	    ",\"attachments\":[" ATT("a", "text/plain",
	    "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB"
	    "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB"
	    "!!!!") "]}", 413, "too_large", "attachments[0].data" },
	{ "four attachments", "{" BASE ",\"attachments\":[" GOODATT ","
	    GOODATT "," GOODATT "," GOODATT "]}", 422,
	    "too_many_attachments", "attachments" },

	/* unknown fields, priority */
	{ "unknown top-level field", "{" BASE ",\"subjet\":\"" CANARY "\"}",
	    422, "unknown_field", "subjet" },
	{ "unknown attachment field", "{" BASE ",\"attachments\":["
	    "{\"filename\":\"a\",\"content_type\":\"text/plain\",\"data\":\"\","
	    "\"size\":1}]}", 422, "unknown_field", "attachments[0].size" },
	{ "unknown field with odd bytes", "{" BASE ",\"x y\\u00e9\":1}",
	    422, "unknown_field", "x?y??" },
	{ "priority upper case", "{" BASE ",\"priority\":\"URGENT\"}", 422,
	    "invalid_field", "priority" },
	{ "priority number", "{" BASE ",\"priority\":1}", 422,
	    "invalid_field", "priority" },
	{ "priority unknown", "{" BASE ",\"priority\":\"" CANARY "\"}", 422,
	    "invalid_field", "priority" },
};

/* Does the error leak the canary anywhere? */
static int
leaks(const struct letter_error *err)
{
	return strstr(err->message, CANARY) != NULL ||
	    strstr(err->field, CANARY) != NULL ||
	    strstr(err->code, CANARY) != NULL;
}

static void
test_table(void)
{
	struct letter_request	 req;
	struct letter_error	 err;
	size_t			 i;
	int			 rc;

	for (i = 0; i < nitems(cases); i++) {
		memset(&err, 0x55, sizeof err);
		err.message[sizeof err.message - 1] = '\0';
		rc = letter_request_parse(cases[i].body,
		    strlen(cases[i].body), &limits, &req, &err);
		if (cases[i].status == 0) {
			if (!ok(rc == 0 && req.doc != NULL, "%s: accepted",
			    cases[i].name))
				diag("  %d %s %s: %s", err.status, err.code,
				    err.field, err.message);
			letter_request_clear(&req);
			continue;
		}
		ok(rc == -1 && req.doc == NULL && err.status ==
		    cases[i].status && strcmp(err.code, cases[i].code) == 0 &&
		    strcmp(err.field, cases[i].field) == 0 &&
		    err.message[0] != '\0' && !leaks(&err),
		    "%s: %d %s %s", cases[i].name, cases[i].status,
		    cases[i].code, cases[i].field);
		if (rc != -1 || err.status != cases[i].status ||
		    strcmp(err.code, cases[i].code) != 0 ||
		    strcmp(err.field, cases[i].field) != 0 || leaks(&err))
			diag("  got rc=%d %d %s '%s': %s", rc, err.status,
			    err.code, err.field, err.message);
	}
}

static void
test_good_fields(void)
{
	static const char body[] = "{\"patient\":42,\"author\":7,"
	    "\"practice\":3,\"subject\":\"R\\u00e9sultats " CANARY "\","
	    "\"text\":\"line1\\nline2\",\"html\":\"<p>x</p>\","
	    "\"priority\":\"urgent\",\"attachments\":["
	    ATT("a.pdf", "application/pdf", "AAEC/w==") ","
	    ATT("b.txt", "text/plain", "aGVsbG8") "]}";
	static const unsigned char bin[] = { 0x00, 0x01, 0x02, 0xff };
	struct letter_request	 req;
	struct letter_error	 err;
	struct letter_doc	*d;

	if (!ok(letter_request_parse(body, strlen(body), &limits, &req,
	    &err) == 0, "a full request parses")) {
		diag("  %s %s: %s", err.code, err.field, err.message);
		return;
	}
	d = req.doc;
	is_int(req.patient_id, 42, "patient id");
	is_int(req.author_id, 7, "author id");
	is_int(req.practice_id, 3, "practice id");
	is_int(req.priority, LETTER_URGENT, "priority urgent");
	is_str(d->subject, "R\xc3\xa9sultats " CANARY, "subject, UTF-8");
	is_str(d->text, "line1\nline2", "text with a newline");
	is_str(d->html, "<p>x</p>", "html");
	is_int(d->natt, 2, "two attachments");
	is_str(d->att[0].filename, "a.pdf", "filename");
	is_str(d->att[0].content_type, "application/pdf", "content type");
	ok(d->att[0].len == 4 && memcmp(d->att[0].data, bin, 4) == 0,
	    "binary attachment bytes decoded");
	ok(d->att[1].len == 5 && memcmp(d->att[1].data, "hello", 5) == 0,
	    "unpadded base64 decoded");
	letter_request_clear(&req);
	ok(req.doc == NULL && req.patient_id == 0, "request cleared");

	{
		static const char b2[] = "{" BASE "}";

		ok(letter_request_parse(b2, strlen(b2), &limits, &req,
		    &err) == 0 && req.priority == LETTER_ROUTINE &&
		    req.practice_id == 0 && req.doc->html == NULL &&
		    req.doc->natt == 0, "defaults: routine, no practice, "
		    "no html, no attachments");
		letter_request_clear(&req);
	}
}

static void
test_sizes(void)
{
	struct letter_request	 req;
	struct letter_error	 err;
	struct letter_limits	 small = limits;
	char			*body, *p;
	const char		*lit;
	size_t			 i;

	/* Subject of exactly 998 bytes, then 999. */
	body = xmalloc(1200);
	for (i = 998; i <= 999; i++) {
		p = body + sprintf(body, "{" IDS "\"subject\":\"");
		memset(p, 'x', i);
		p += i;
		sprintf(p, "\"," TEXT "}");
		letter_request_parse(body, strlen(body), &limits, &req, &err);
		if (i == 998)
			ok(req.doc != NULL && strlen(req.doc->subject) == 998,
			    "a 998-byte subject is accepted");
		else
			ok(req.doc == NULL && err.status == 422 &&
			    strcmp(err.field, "subject") == 0,
			    "a 999-byte subject is refused");
		letter_request_clear(&req);
	}
	/* A 255-byte filename, then 256. */
	for (i = 255; i <= 256; i++) {
		p = body + sprintf(body, "{" BASE ",\"attachments\":[{"
		    "\"filename\":\"");
		memset(p, 'f', i);
		p += i;
		sprintf(p, "\",\"content_type\":\"text/plain\",\"data\":\"\"}]}");
		letter_request_parse(body, strlen(body), &limits, &req, &err);
		if (i == 255)
			ok(req.doc != NULL, "a 255-byte filename is accepted");
		else
			ok(req.doc == NULL && strcmp(err.field,
			    "attachments[0].filename") == 0,
			    "a 256-byte filename is refused");
		letter_request_clear(&req);
	}
	free(body);

	/* The lit bound. */
	lit = "{" BASE "}";
	small.max_size = strlen(lit);
	ok(letter_request_parse(lit, strlen(lit), &small, &req, &err) == 0,
	    "a lit of exactly max_size is accepted");
	letter_request_clear(&req);
	small.max_size = strlen(lit) - 1;
	ok(letter_request_parse(lit, strlen(lit), &small, &req, &err) ==
	    -1 && err.status == 413 && strcmp(err.code, "too_large") == 0,
	    "a lit over max_size is 413 too_large");
	small = limits;
	small.max_attachments = 0;
	lit = "{" BASE ",\"attachments\":[" GOODATT "]}";
	ok(letter_request_parse(lit, strlen(lit), &small, &req, &err) ==
	    -1 && strcmp(err.code, "too_many_attachments") == 0,
	    "max_attachments 0 allows none");
	letter_request_clear(&req);
	/* The length argument is honoured: the lit is not read past it. */
	lit = "{" BASE "}" "{";
	ok(letter_request_parse(lit, strlen(lit) - 1, &limits, &req,
	    &err) == 0, "only len bytes of the lit are parsed");
	letter_request_clear(&req);
}

/* A document with every awkward byte. */
static struct letter_doc *
awkward_doc(void)
{
	struct letter_doc	*d = letter_doc_new();
	size_t			 i;

	d->subject = xstrdup("R\xc3\xa9sultats \xe2\x80\x94 \xe8\xa1\x80"
	    "\xe6\xb6\xb2 \xf0\x9f\x98\x80 \"quoted\" back\\slash " CANARY);
	d->text = xstrdup("Dear Jo,\r\n\ttab \x01\x1f\x7f </script> \\u0041 "
	    "\xe2\x80\xa8 end");
	d->html = xstrdup("");
	d->natt = 3;
	d->att = xcalloc(3, sizeof *d->att);
	d->att[0].filename = xstrdup("r\xc3\xa9sum\xc3\xa9.pdf");
	d->att[0].content_type = xstrdup("application/pdf");
	d->att[0].len = 256;
	d->att[0].data = xmalloc(256);
	for (i = 0; i < 256; i++)
		d->att[0].data[i] = (unsigned char)(255 - i);
	d->att[1].filename = xstrdup("empty");
	d->att[1].content_type = xstrdup("text/plain");
	d->att[2].filename = xstrdup("one");
	d->att[2].content_type = xstrdup("application/octet-stream");
	d->att[2].len = 1;
	d->att[2].data = xmemdup("\0", 1);
	return d;
}

/* Are two documents byte-for-byte the same? */
static int
doc_equal(const struct letter_doc *a, const struct letter_doc *b)
{
	size_t	 i;

#define SEQ(x, y) ((x) == NULL ? (y) == NULL : \
	    ((y) != NULL && strcmp((x), (y)) == 0))
	if (!SEQ(a->subject, b->subject) || !SEQ(a->text, b->text) ||
	    !SEQ(a->html, b->html) || a->natt != b->natt)
		return 0;
	for (i = 0; i < a->natt; i++) {
		if (!SEQ(a->att[i].filename, b->att[i].filename) ||
		    !SEQ(a->att[i].content_type, b->att[i].content_type) ||
		    a->att[i].len != b->att[i].len ||
		    (a->att[i].len != 0 && memcmp(a->att[i].data,
		    b->att[i].data, a->att[i].len) != 0))
			return 0;
	}
	return 1;
#undef SEQ
}

static void
test_roundtrip(void)
{
	struct letter_doc	*d = awkward_doc(), *back = NULL, *e;
	struct letter_error	 err;
	json_t			*j;
	json_error_t		 jerr;
	char			*s, *s2;
	size_t			 len, len2;

	s = letter_doc_serialize(d, &len);
	if (!ok(s != NULL, "serialise an awkward document"))
		return;
	is_int(len, strlen(s), "the length matches the text");
	j = json_loadb(s, len, JSON_REJECT_DUPLICATES, &jerr);
	ok(j != NULL && json_is_object(j), "jansson reads it as JSON");
	is_str(j != NULL ? json_string_value(json_object_get(j, "format")) :
	    NULL, LETTER_FORMAT, "the format tag is there");
	ok(j != NULL && json_is_array(json_object_get(j, "attachments")) &&
	    json_object_get(j, "html") != NULL, "attachments and html present");
	json_decref(j);
	ok(strstr(s, "\xe8\xa1\x80") != NULL, "UTF-8 is kept as is");

	is_int(letter_doc_parse(s, len, &back, &err), 0, "parse it back");
	ok(back != NULL && doc_equal(d, back), "the round trip is exact");
	s2 = back != NULL ? letter_doc_serialize(back, &len2) : NULL;
	ok(s2 != NULL && len2 == len && memcmp(s, s2, len) == 0,
	    "serialising again gives the same bytes");
	free(s2);
	letter_doc_free(&back);
	ok(back == NULL, "letter_doc_free clears the pointer");
	letter_doc_free(&back);
	free(s);

	/* text NULL and html NULL stay absent; subject NULL reads as "". */
	e = letter_doc_new();
	e->text = xstrdup("t");
	s = letter_doc_serialize(e, &len);
	ok(s != NULL && letter_doc_parse(s, len, &back, &err) == 0 &&
	    back->html == NULL && strcmp(back->text, "t") == 0 &&
	    strcmp(back->subject, "") == 0 && back->natt == 0,
	    "absent html stays absent, NULL subject becomes \"\"");
	free(s);
	letter_doc_free(&back);
	letter_doc_free(&e);

	/* Invalid UTF-8 cannot be serialised. */
	free(d->text);
	d->text = xstrdup("bad \xc0\xaf");
	ok(letter_doc_serialize(d, &len) == NULL,
	    "invalid UTF-8 is not serialised");
	free(d->att[0].filename);
	d->att[0].filename = xstrdup("\xed\xa0\x80");	/* a surrogate */
	free(d->text);
	d->text = xstrdup("ok");
	ok(letter_doc_serialize(d, &len) == NULL,
	    "a UTF-8 surrogate is not serialised");
	letter_doc_free(&d);
}

static void
test_doc_parse_errors(void)
{
	static const struct {
		const char	*name;
		const char	*s;
		const char	*code;
		const char	*field;
	} bad[] = {
		{ "not JSON", "{" CANARY, "malformed_json", "" },
		{ "no format", "{\"subject\":\"" CANARY "\"}", "missing_field",
		    "format" },
		{ "other format", "{\"format\":\"sealpost-letter/2\","
		    "\"subject\":\"" CANARY "\"}", "unknown_format", "format" },
		{ "unknown key", "{\"format\":\"sealpost-letter/1\","
		    "\"subject\":\"\",\"extra\":1}", "unknown_field", "extra" },
		{ "no subject", "{\"format\":\"sealpost-letter/1\"}",
		    "missing_field", "subject" },
		{ "bad base64", "{\"format\":\"sealpost-letter/1\","
		    "\"subject\":\"\",\"attachments\":[{\"filename\":\"a\","
		    "\"content_type\":\"a/b\",\"data\":\"" CANARY "\"}]}",
		    "invalid_base64", "attachments[0].data" },
		{ "NUL in text", "{\"format\":\"sealpost-letter/1\","
		    "\"subject\":\"\",\"text\":\"a\\u0000" CANARY "\"}",
		    "invalid_field", "text" },
	};
	struct letter_doc	*d;
	struct letter_error	 err;
	size_t			 i;

	for (i = 0; i < nitems(bad); i++) {
		d = NULL;
		ok(letter_doc_parse(bad[i].s, strlen(bad[i].s), &d, &err) ==
		    -1 && d == NULL && strcmp(err.code, bad[i].code) == 0 &&
		    strcmp(err.field, bad[i].field) == 0 && !leaks(&err),
		    "doc parse: %s -> %s %s", bad[i].name, bad[i].code,
		    bad[i].field);
	}
}

static void
test_validate(void)
{
	struct letter_doc	*d;
	struct letter_error	 err;
	struct letter_limits	 lim = limits;

	d = letter_doc_new();
	d->text = xstrdup("body " CANARY);
	ok(letter_doc_validate(d, &lim, &err) == 0,
	    "validate: NULL subject and text only is fine (SMTP path)");
	d->subject = xstrdup("");
	ok(letter_doc_validate(d, &lim, &err) == 0,
	    "validate: an empty subject is fine");
	free(d->subject);
	d->subject = xstrdup(CANARY "\nBcc: x");
	ok(letter_doc_validate(d, &lim, &err) == -1 && err.status == 422 &&
	    strcmp(err.field, "subject") == 0 && !leaks(&err),
	    "validate: LF in the subject is refused");
	free(d->subject);
	d->subject = xstrdup("s");
	free(d->text);
	d->text = NULL;
	ok(letter_doc_validate(d, &lim, &err) == -1 &&
	    strcmp(err.code, "missing_field") == 0,
	    "validate: no text and no html is refused");
	d->html = xstrdup("\xff" CANARY);
	ok(letter_doc_validate(d, &lim, &err) == -1 &&
	    strcmp(err.field, "html") == 0 && !leaks(&err),
	    "validate: invalid UTF-8 in html is refused");
	free(d->html);
	d->html = xstrdup("<p>ok</p>");

	d->natt = 4;
	d->att = xcalloc(4, sizeof *d->att);
	ok(letter_doc_validate(d, &lim, &err) == -1 &&
	    strcmp(err.code, "too_many_attachments") == 0,
	    "validate: too many attachments");
	d->natt = 1;
	ok(letter_doc_validate(d, &lim, &err) == -1 &&
	    strcmp(err.field, "attachments[0].filename") == 0,
	    "validate: a missing filename is refused");
	d->att[0].filename = xstrdup("scan.pdf");
	d->att[0].content_type = xstrdup("application/pdf");
	d->att[0].data = xcalloc(1, 17);
	d->att[0].len = 17;
	ok(letter_doc_validate(d, &lim, &err) == -1 && err.status == 413 &&
	    strcmp(err.field, "attachments[0].data") == 0,
	    "validate: an oversize attachment is 413");
	d->att[0].len = 16;
	ok(letter_doc_validate(d, &lim, &err) == 0,
	    "validate: an attachment at the limit is fine");
	lim.max_size = 20;
	ok(letter_doc_validate(d, &lim, &err) == -1 && err.status == 413 &&
	    strcmp(err.code, "too_large") == 0,
	    "validate: the whole letter over max_size is 413");
	letter_doc_free(&d);
}

static void
test_priority(void)
{
	is_str(letter_priority_name(LETTER_ROUTINE), "routine",
	    "priority name routine");
	is_str(letter_priority_name(LETTER_URGENT), "urgent",
	    "priority name urgent");
	is_int(letter_priority_parse("routine"), LETTER_ROUTINE,
	    "parse routine");
	is_int(letter_priority_parse("urgent"), LETTER_URGENT, "parse urgent");
	is_int(letter_priority_parse("Urgent"), -1, "parse is exact");
	is_int(letter_priority_parse(""), -1, "parse empty");
	is_int(letter_priority_parse(NULL), -1, "parse NULL");
	ok(letter_priority_parse(letter_priority_name(LETTER_URGENT)) ==
	    LETTER_URGENT, "name and parse agree");
}

/* The reply document: round trips, null content, refusals. */
static void
test_reply_doc(void)
{
	struct reply_doc	 rd, *back = NULL;
	struct letter_doc	*doc = letter_doc_new();
	struct letter_error	 err;
	unsigned char		 raw[] = "From: a@b\r\n\r\nhello\x00\xff";
	char			*json;
	size_t			 len;

	doc->subject = xstrdup("Re: results");
	doc->text = xstrdup("Thanks, see you \"Tuesday\"\n> quoted");
	memset(&rd, 0, sizeof(rd));
	rd.new_text = xstrdup("Thanks, see you \"Tuesday\"");
	rd.removed = 0x01 | 0x04;
	rd.original = raw;
	rd.original_len = sizeof(raw) - 1;
	rd.content = doc;
	json = reply_doc_serialize(&rd, &len);
	ok(json != NULL && strlen(json) == len, "reply doc serialises");
	ok(json != NULL && strstr(json, "\"removed\":[\"quote\",\"footer\"]")
	    != NULL, "removed bits by name");
	ok(reply_doc_parse(json, len, &back, &err) == 0, "reply doc parses: %s",
	    err.message);
	if (back != NULL) {
		is_str(back->new_text, rd.new_text, "new text round trip");
		is_int(back->removed, rd.removed, "removed round trip");
		ok(back->original_len == rd.original_len &&
		    memcmp(back->original, raw, rd.original_len) == 0,
		    "original bytes round trip (NUL and 0xff included)");
		ok(back->content != NULL && strcmp(back->content->subject,
		    "Re: results") == 0 && strcmp(back->content->text,
		    doc->text) == 0, "content round trip");
	}
	reply_doc_free(&back);
	free(json);

	rd.content = NULL;
	json = reply_doc_serialize(&rd, &len);
	ok(json != NULL && strstr(json, "\"subject\"") == NULL,
	    "unparsed reply: content absent");
	ok(reply_doc_parse(json, len, &back, &err) == 0 && back != NULL &&
	    back->content == NULL, "reply without content parses");
	reply_doc_free(&back);
	free(json);

	free(rd.new_text);
	rd.new_text = xstrdup("bad \xc3\x28 utf8");
	ok(reply_doc_serialize(&rd, &len) == NULL, "invalid UTF-8 refused");
	free(rd.new_text);
	rd.original = NULL;
	letter_doc_free(&doc);

#define BAD(js, want, what) do {					\
	ok(reply_doc_parse(js, strlen(js), &back, &err) == -1 &&		\
	    back == NULL && strcmp(err.code, want) == 0, "%s: %s", what,	\
	    err.code);							\
} while (0)
	BAD("{\"format\":\"sealpost-letter/1\",\"new_text\":\"\","
	    "\"removed\":[],\"original\":\"\"}",
	    "unknown_format", "a letter is not a reply");
	BAD("{\"format\":\"sealpost-reply/1\",\"new_text\":\"\","
	    "\"removed\":[\"nonsense\"],\"original\":\"\"}",
	    "invalid_field", "unknown removed name");
	BAD("{\"format\":\"sealpost-reply/1\",\"new_text\":\"\","
	    "\"removed\":[],\"original\":\"*\"}",
	    "invalid_base64", "bad base64 original");
	BAD("{\"format\":\"sealpost-reply/1\",\"new_text\":\"\","
	    "\"removed\":[],\"original\":\"\",\"text\":\"x\"}",
	    "missing_field", "content without a subject");
	BAD("{\"format\":\"sealpost-reply/1\",\"new_text\":\"\","
	    "\"removed\":[],\"original\":\"\",\"x\":1}",
	    "unknown_field", "unknown key");
	BAD("{\"format\":\"sealpost-reply/1\",\"new_text\":\"\","
	    "\"removed\":[],\"original\":\"\",\"subject\":\"s\","
	    "\"attachments\":[{\"filename\":\"a\"}]}", "missing_field",
	    "attachment without its fields");
#undef BAD
}

int
main(void)
{
	if (hash_init() != 0) {
		ok(0, "hash_init");
		return tap_done();
	}
	test_table();
	test_good_fields();
	test_sizes();
	test_roundtrip();
	test_doc_parse_errors();
	test_validate();
	test_priority();
	test_reply_doc();
	return tap_done();
}
