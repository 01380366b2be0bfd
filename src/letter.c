/*
 * letter.c - the letter document: request parsing, validation and the
 * sealed JSON form "sealpost-letter/1".
 *
 * Owns struct letter_doc (clinical content in clear, in memory only) and
 * struct letter_request (the POST /v1/letters body: routing ids, priority
 * and a document).
 *
 * Public: letter_request_parse, letter_request_clear, letter_doc_validate,
 * letter_doc_serialize, letter_doc_parse, letter_doc_new, letter_doc_free,
 * letter_priority_name, letter_priority_parse.
 *
 * Error policy: parsers and the validator return 0, or -1 with a struct
 * letter_error filled (HTTP status, stable code, the field at fault, a
 * human message).  A message names the field and the rule, never the
 * rejected content; jansson's own error text is never copied because it
 * quotes the input ("... near 'Dear Jo'").
 *
 * The request body rules (see letter.h for the codes):
 *   patient, author      required positive integers
 *   practice             optional positive integer
 *   subject              required string, 1..998 bytes, no CR, LF or NUL
 *   text, html           strings, at least one of them
 *   attachments          array of at most max_attachments objects, each
 *     filename           1..255 bytes, no '/', '\', NUL or control
 *                        characters (C0, DEL, C1), not "." or ".."
 *     content_type       type "/" subtype, RFC 2045 tokens, <= 255 bytes
 *     data               standard base64, <= max_attachment_size decoded
 *   priority             "routine" (default) or "urgent"
 * A JSON null counts as an absent field.  Unknown keys are refused, at the
 * top level and in attachments, so a typo is caught rather than ignored.
 */
#include "build.h"

#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "hash.h"
#include "letter.h"
#include "log.h"
#include "util.h"

#define LETTER_SUBJECT_MAX	998	/* RFC 5322 line limit, section 2.1.1 */
#define LETTER_FILENAME_MAX	255
#define LETTER_CTYPE_MAX	255
#define LETTER_JSON_FLAGS	(JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL)

/* Output of the serializer: counts only when p is NULL. */
struct letter_out {
	char	*p;
	size_t	 len;
};

static int	 letter_fail(struct letter_error *, int, const char *,
		    const char *, const char *, ...)
		    __attribute__((format(printf, 5, 6)));
static int	 letter_load(const char *, size_t, json_t **,
		    struct letter_error *);
static int	 letter_known_keys(json_t *, const char *const *,
		    const char *, struct letter_error *);
static int	 letter_get_id(json_t *, const char *, int, int64_t *,
		    struct letter_error *);
static int	 letter_get_string(json_t *, const char *, const char *, int,
		    const char **, size_t *, struct letter_error *);
static int	 letter_get_attachments(json_t *, const struct letter_limits *,
		    struct letter_doc *, struct letter_error *);
static int	 letter_get_data(json_t *, const char *,
		    const struct letter_limits *, struct letter_attachment *,
		    struct letter_error *);
static int	 letter_utf8_valid(const char *, size_t);
static int	 letter_filename_valid(const char *);
static int	 letter_ctype_valid(const char *);
static int	 letter_doc_strings_valid(const struct letter_doc *);
static void	 letter_emit(struct letter_out *, const char *, size_t);
static void	 letter_emit_string(struct letter_out *, const char *);
static void	 letter_emit_doc(struct letter_out *,
		    const struct letter_doc *);
static void	 letter_wipe_string(char *);
static int	 letter_doc_members(json_t *, struct letter_doc **,
		    struct letter_error *);
static void	 letter_json_free(void *);

static const char *const letter_request_keys[] = {
	"patient", "author", "practice", "subject", "text", "html",
	"attachments", "priority", NULL
};
static const char *const letter_doc_keys[] = {
	"format", "subject", "text", "html", "attachments", NULL
};
static const char *const letter_attachment_keys[] = {
	"filename", "content_type", "data", NULL
};

/* Fill err and return -1; field may be NULL. */
static int
letter_fail(struct letter_error *err, int status, const char *code,
    const char *field, const char *fmt, ...)
{
	va_list	 ap;

	if (err == NULL)
		return -1;
	err->status = status;
	strlcpy_sp(err->code, code, sizeof err->code);
	strlcpy_sp(err->field, field != NULL ? field : "", sizeof err->field);
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof err->message, fmt, ap);
	va_end(ap);
	return -1;
}

/* Decode JSON text into an object; errors name the place, not the text. */
static int
letter_load(const char *s, size_t len, json_t **rootp,
    struct letter_error *err)
{
	json_error_t	 jerr;
	json_t		*root;

	*rootp = NULL;
	if ((root = json_loadb(s, len, LETTER_JSON_FLAGS, &jerr)) == NULL) {
		switch (json_error_code(&jerr)) {
		case json_error_duplicate_key:
			return letter_fail(err, 400, "duplicate_key", NULL,
			    "an object has the same key twice (line %d, "
			    "column %d)", jerr.line, jerr.column);
		case json_error_invalid_utf8:
			return letter_fail(err, 400, "malformed_json", NULL,
			    "the body is not valid UTF-8 (line %d, column %d)",
			    jerr.line, jerr.column);
		default:
			return letter_fail(err, 400, "malformed_json", NULL,
			    "malformed JSON at line %d, column %d",
			    jerr.line, jerr.column);
		}
	}
	if (!json_is_object(root)) {
		json_decref(root);
		return letter_fail(err, 400, "invalid_body", NULL,
		    "the body must be a JSON object");
	}
	*rootp = root;
	return 0;
}

/* Refuse keys of obj not in `known'; prefix names the object. */
static int
letter_known_keys(json_t *obj, const char *const *known, const char *prefix,
    struct letter_error *err)
{
	const char	*key;
	json_t		*v;
	char		 name[48], field[64];
	size_t		 i, n;

	json_object_foreach(obj, key, v) {
		for (i = 0; known[i] != NULL; i++)
			if (strcmp(key, known[i]) == 0)
				break;
		if (known[i] != NULL)
			continue;
		/* The key is untrusted: printable ASCII only, bounded. */
		for (n = 0; key[n] != '\0' && n < sizeof name - 1; n++)
			name[n] = key[n] > ' ' && key[n] < 0x7f ? key[n] : '?';
		name[n] = '\0';
		snprintf(field, sizeof field, "%s%s", prefix, name);
		return letter_fail(err, 422, "unknown_field", field,
		    "unknown field (check its spelling)");
	}
	return 0;
}

/* A positive integer id: 1 found, 0 absent (optional), -1 error. */
static int
letter_get_id(json_t *obj, const char *key, int required, int64_t *out,
    struct letter_error *err)
{
	json_t		*v = json_object_get(obj, key);
	json_int_t	 n;

	if (v == NULL || json_is_null(v)) {
		if (required)
			return letter_fail(err, 422, "missing_field", key,
			    "required field is missing");
		return 0;
	}
	if (!json_is_integer(v))
		return letter_fail(err, 422, "invalid_field", key,
		    "must be an integer id");
	if ((n = json_integer_value(v)) <= 0)
		return letter_fail(err, 422, "invalid_field", key,
		    "must be a positive integer id");
	*out = (int64_t)n;
	return 1;
}

/* A string without NUL: 1 found, 0 absent (optional), -1 error. */
static int
letter_get_string(json_t *obj, const char *key, const char *field,
    int required, const char **out, size_t *lenp, struct letter_error *err)
{
	json_t		*v = json_object_get(obj, key);
	const char	*s;
	size_t		 len;

	if (v == NULL || json_is_null(v)) {
		if (required)
			return letter_fail(err, 422, "missing_field", field,
			    "required field is missing");
		return 0;
	}
	if (!json_is_string(v))
		return letter_fail(err, 422, "invalid_field", field,
		    "must be a string");
	s = json_string_value(v);
	len = json_string_length(v);
	/* JSON_ALLOW_NUL lets "\u0000" through so it is named here. */
	if (strlen(s) != len)
		return letter_fail(err, 422, "invalid_field", field,
		    "must not contain a NUL character");
	*out = s;
	if (lenp != NULL)
		*lenp = len;
	return 1;
}

/* Parse a POST /v1/letters body into req (see the rules at the top). */
int
letter_request_parse(const char *body, size_t len,
    const struct letter_limits *lim, struct letter_request *req,
    struct letter_error *err)
{
	json_t		*root = NULL, *v;
	struct letter_doc *doc;
	const char	*s;
	size_t		 slen;
	int		 r;

	memset(req, 0, sizeof *req);
	req->priority = LETTER_ROUTINE;
	if (err != NULL)
		memset(err, 0, sizeof *err);
	if (len > lim->max_size)
		return letter_fail(err, 413, "too_large", NULL,
		    "the body is larger than %zu bytes", lim->max_size);
	if (letter_load(body, len, &root, err) != 0)
		return -1;
	if (letter_known_keys(root, letter_request_keys, "", err) != 0)
		goto fail;

	if (letter_get_id(root, "patient", 1, &req->patient_id, err) < 0 ||
	    letter_get_id(root, "author", 1, &req->author_id, err) < 0 ||
	    letter_get_id(root, "practice", 0, &req->practice_id, err) < 0)
		goto fail;

	req->doc = doc = letter_doc_new();
	if (letter_get_string(root, "subject", "subject", 1, &s, &slen,
	    err) < 0)
		goto fail;
	if (slen == 0) {
		letter_fail(err, 422, "invalid_field", "subject",
		    "must not be empty");
		goto fail;
	}
	doc->subject = xstrndup(s, slen);
	if ((r = letter_get_string(root, "text", "text", 0, &s, &slen,
	    err)) < 0)
		goto fail;
	if (r == 1)
		doc->text = xstrndup(s, slen);
	if ((r = letter_get_string(root, "html", "html", 0, &s, &slen,
	    err)) < 0)
		goto fail;
	if (r == 1)
		doc->html = xstrndup(s, slen);
	if (doc->text == NULL && doc->html == NULL) {
		letter_fail(err, 422, "missing_field", "text",
		    "one of text or html is required");
		goto fail;
	}

	v = json_object_get(root, "attachments");
	if (v != NULL && !json_is_null(v) &&
	    letter_get_attachments(v, lim, doc, err) != 0)
		goto fail;

	if ((r = letter_get_string(root, "priority", "priority", 0, &s, NULL,
	    err)) < 0)
		goto fail;
	if (r == 1 && (req->priority = letter_priority_parse(s)) == -1) {
		letter_fail(err, 422, "invalid_field", "priority",
		    "must be \"routine\" or \"urgent\"");
		goto fail;
	}

	/* The content rules are shared with the SMTP path. */
	if (letter_doc_validate(doc, lim, err) != 0)
		goto fail;
	json_decref(root);
	return 0;

fail:
	json_decref(root);
	letter_request_clear(req);
	return -1;
}

/*
 * The attachments array: count first, then each object in turn.  lim is
 * NULL for a sealed document, which was checked when it was made.
 */
static int
letter_get_attachments(json_t *arr, const struct letter_limits *lim,
    struct letter_doc *doc, struct letter_error *err)
{
	struct letter_attachment *a;
	json_t		*o;
	const char	*s;
	char		 prefix[40], field[64];
	size_t		 i, n;

	if (!json_is_array(arr))
		return letter_fail(err, 422, "invalid_field", "attachments",
		    "must be an array");
	/* Count before decoding anything. */
	n = json_array_size(arr);
	if (lim != NULL && n > lim->max_attachments)
		return letter_fail(err, 422, "too_many_attachments",
		    "attachments", "at most %zu attachments are allowed",
		    lim->max_attachments);
	if (n == 0)
		return 0;
	doc->att = xcalloc(n, sizeof *doc->att);
	for (i = 0; i < n; i++) {
		o = json_array_get(arr, i);
		snprintf(prefix, sizeof prefix, "attachments[%zu]", i);
		if (!json_is_object(o))
			return letter_fail(err, 422, "invalid_field", prefix,
			    "must be an object");
		snprintf(prefix, sizeof prefix, "attachments[%zu].", i);
		if (letter_known_keys(o, letter_attachment_keys, prefix,
		    err) != 0)
			return -1;
		a = &doc->att[doc->natt++];

		snprintf(field, sizeof field, "%sfilename", prefix);
		if (letter_get_string(o, "filename", field, 1, &s, NULL,
		    err) < 0)
			return -1;
		a->filename = xstrdup(s);
		snprintf(field, sizeof field, "%scontent_type", prefix);
		if (letter_get_string(o, "content_type", field, 1, &s, NULL,
		    err) < 0)
			return -1;
		a->content_type = xstrdup(s);
		snprintf(field, sizeof field, "%sdata", prefix);
		if (letter_get_data(o, field, lim, a, err) != 0)
			return -1;
	}
	return 0;
}

/* Decode an attachment's base64 "data", refusing oversize before work. */
static int
letter_get_data(json_t *o, const char *field, const struct letter_limits *lim,
    struct letter_attachment *a, struct letter_error *err)
{
	const char	*s;
	size_t		 len, least;

	if (letter_get_string(o, "data", field, 1, &s, &len, err) < 0)
		return -1;
	/* 4 base64 characters carry 3 bytes, less at most 2 of padding. */
	least = len / 4 * 3;
	least = least >= 2 ? least - 2 : 0;
	if (lim != NULL && least > lim->max_attachment_size)
		return letter_fail(err, 413, "too_large", field,
		    "an attachment may be at most %zu bytes",
		    lim->max_attachment_size);
	if (hash_b64_decode(s, len, &a->data, &a->len) != 0)
		return letter_fail(err, 422, "invalid_base64", field,
		    "must be standard base64 (RFC 4648 section 4) without "
		    "line breaks");
	if (lim != NULL && a->len > lim->max_attachment_size)
		return letter_fail(err, 413, "too_large", field,
		    "an attachment may be at most %zu bytes",
		    lim->max_attachment_size);
	return 0;
}

/* Free the document of a request and clear it. */
void
letter_request_clear(struct letter_request *req)
{
	if (req == NULL)
		return;
	letter_doc_free(&req->doc);
	memset(req, 0, sizeof *req);
}

/*
 * Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing
 * above U+10FFFF.  1 if valid.
 */
static int
letter_utf8_valid(const char *s, size_t len)
{
	const unsigned char	*p = (const unsigned char *)s;
	size_t			 i = 0, n, k;
	uint32_t		 c, min;

	while (i < len) {
		c = p[i];
		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			n = 1;
			c &= 0x1f;
			min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			n = 2;
			c &= 0x0f;
			min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			n = 3;
			c &= 0x07;
			min = 0x10000;
		} else
			return 0;
		if (len - i <= n)
			return 0;
		for (k = 1; k <= n; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return 0;
			c = (c << 6) | (p[i + k] & 0x3f);
		}
		if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
			return 0;
		i += n + 1;
	}
	return 1;
}

/*
 * An attachment filename: 1..255 bytes of UTF-8, no path separator, no
 * control character (C0, DEL, or C1 as U+0080..U+009F), not "." or "..".
 */
static int
letter_filename_valid(const char *s)
{
	const unsigned char	*p = (const unsigned char *)s;
	size_t			 len = strlen(s), i;

	if (len == 0 || len > LETTER_FILENAME_MAX ||
	    strcmp(s, ".") == 0 || strcmp(s, "..") == 0 ||
	    !letter_utf8_valid(s, len))
		return 0;
	for (i = 0; i < len; i++) {
		if (p[i] < 0x20 || p[i] == 0x7f || p[i] == '/' || p[i] == '\\')
			return 0;
		if (p[i] == 0xc2 && i + 1 < len && p[i + 1] >= 0x80 &&
		    p[i + 1] <= 0x9f)
			return 0;
	}
	return 1;
}

/*
 * A media type without parameters (RFC 2045 section 5.1):
 *   type "/" subtype
 *   token := 1*<any (US-ASCII) CHAR except SPACE, CTLs, or tspecials>
 *   tspecials := "(" / ")" / "<" / ">" / "@" / "," / ";" / ":" / "\" /
 *                <"> / "/" / "[" / "]" / "?" / "="
 */
static int
letter_ctype_valid(const char *s)
{
	const char	*p;
	size_t		 tok = 0, slashes = 0;

	if (strlen(s) > LETTER_CTYPE_MAX)
		return 0;
	for (p = s; *p != '\0'; p++) {
		if (*p == '/') {
			if (tok == 0 || ++slashes > 1)
				return 0;
			tok = 0;
			continue;
		}
		if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f ||
		    strchr("()<>@,;:\\\"[]?=", *p) != NULL)
			return 0;
		tok++;
	}
	return slashes == 1 && tok > 0;
}

/* Validate a document from either channel against the limits. */
int
letter_doc_validate(const struct letter_doc *doc,
    const struct letter_limits *lim, struct letter_error *err)
{
	const struct letter_attachment *a;
	const char	*subject = doc->subject != NULL ? doc->subject : "";
	char		 field[64];
	size_t		 i, slen, total;

	slen = strlen(subject);
	if (slen > LETTER_SUBJECT_MAX)
		return letter_fail(err, 422, "invalid_field", "subject",
		    "must be at most %d bytes", LETTER_SUBJECT_MAX);
	if (strpbrk(subject, "\r\n") != NULL)
		return letter_fail(err, 422, "invalid_field", "subject",
		    "must not contain CR or LF");
	if (!letter_utf8_valid(subject, slen))
		return letter_fail(err, 422, "invalid_field", "subject",
		    "must be valid UTF-8");
	if (doc->text == NULL && doc->html == NULL)
		return letter_fail(err, 422, "missing_field", "text",
		    "one of text or html is required");
	total = slen;
	if (doc->text != NULL) {
		total += strlen(doc->text);
		if (!letter_utf8_valid(doc->text, strlen(doc->text)))
			return letter_fail(err, 422, "invalid_field", "text",
			    "must be valid UTF-8");
	}
	if (doc->html != NULL) {
		total += strlen(doc->html);
		if (!letter_utf8_valid(doc->html, strlen(doc->html)))
			return letter_fail(err, 422, "invalid_field", "html",
			    "must be valid UTF-8");
	}
	if (doc->natt > lim->max_attachments)
		return letter_fail(err, 422, "too_many_attachments",
		    "attachments", "at most %zu attachments are allowed",
		    lim->max_attachments);
	for (i = 0; i < doc->natt; i++) {
		a = &doc->att[i];
		snprintf(field, sizeof field, "attachments[%zu].filename", i);
		if (a->filename == NULL || !letter_filename_valid(a->filename))
			return letter_fail(err, 422, "invalid_field", field,
			    "must be 1 to %d bytes of UTF-8 without '/', '\\' "
			    "or control characters", LETTER_FILENAME_MAX);
		snprintf(field, sizeof field, "attachments[%zu].content_type",
		    i);
		if (a->content_type == NULL ||
		    !letter_ctype_valid(a->content_type))
			return letter_fail(err, 422, "invalid_field", field,
			    "must be a media type \"type/subtype\" "
			    "(RFC 2045 tokens, no parameters)");
		snprintf(field, sizeof field, "attachments[%zu].data", i);
		if (a->data == NULL && a->len != 0)
			return letter_fail(err, 422, "invalid_field", field,
			    "has a length but no data");
		if (a->len > lim->max_attachment_size)
			return letter_fail(err, 413, "too_large", field,
			    "an attachment may be at most %zu bytes",
			    lim->max_attachment_size);
		total += a->len;
	}
	if (total > lim->max_size)
		return letter_fail(err, 413, "too_large", NULL,
		    "the letter is larger than %zu bytes", lim->max_size);
	return 0;
}

/* Is every string of doc valid UTF-8 (the JSON form needs it)? */
static int
letter_doc_strings_valid(const struct letter_doc *doc)
{
	const char	*s[3] = { doc->subject, doc->text, doc->html };
	size_t		 i;

	for (i = 0; i < nitems(s); i++)
		if (s[i] != NULL && !letter_utf8_valid(s[i], strlen(s[i])))
			return 0;
	for (i = 0; i < doc->natt; i++) {
		if (doc->att[i].filename == NULL ||
		    doc->att[i].content_type == NULL ||
		    (doc->att[i].data == NULL && doc->att[i].len != 0))
			return 0;
		if (!letter_utf8_valid(doc->att[i].filename,
		    strlen(doc->att[i].filename)) ||
		    !letter_utf8_valid(doc->att[i].content_type,
		    strlen(doc->att[i].content_type)))
			return 0;
	}
	return 1;
}

/* Append n bytes (or only count them). */
static void
letter_emit(struct letter_out *o, const char *s, size_t n)
{
	if (o->p != NULL)
		memcpy(o->p + o->len, s, n);
	o->len += n;
}

/* Append a JSON string literal; s is valid UTF-8, copied as is. */
static void
letter_emit_string(struct letter_out *o, const char *s)
{
	const char	*run = s;
	char		 esc[8];
	unsigned char	 c;

	letter_emit(o, "\"", 1);
	for (; *s != '\0'; s++) {
		c = (unsigned char)*s;
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		letter_emit(o, run, (size_t)(s - run));
		run = s + 1;
		switch (c) {
		case '"':
			letter_emit(o, "\\\"", 2);
			break;
		case '\\':
			letter_emit(o, "\\\\", 2);
			break;
		case '\n':
			letter_emit(o, "\\n", 2);
			break;
		case '\r':
			letter_emit(o, "\\r", 2);
			break;
		case '\t':
			letter_emit(o, "\\t", 2);
			break;
		default:
			snprintf(esc, sizeof esc, "\\u%04x", c);
			letter_emit(o, esc, 6);
			break;
		}
	}
	letter_emit(o, run, (size_t)(s - run));
	letter_emit(o, "\"", 1);
}

/* Write (or measure) the whole "sealpost-letter/1" document. */
static void
letter_emit_doc(struct letter_out *o, const struct letter_doc *doc)
{
	const struct letter_attachment *a;
	char		*b64;
	size_t		 i;

	letter_emit(o, "{\"format\":", 10);
	letter_emit_string(o, LETTER_FORMAT);
	letter_emit(o, ",\"subject\":", 11);
	letter_emit_string(o, doc->subject != NULL ? doc->subject : "");
	if (doc->text != NULL) {
		letter_emit(o, ",\"text\":", 8);
		letter_emit_string(o, doc->text);
	}
	if (doc->html != NULL) {
		letter_emit(o, ",\"html\":", 8);
		letter_emit_string(o, doc->html);
	}
	letter_emit(o, ",\"attachments\":[", 16);
	for (i = 0; i < doc->natt; i++) {
		a = &doc->att[i];
		letter_emit(o, i == 0 ? "{\"filename\":" : ",{\"filename\":",
		    i == 0 ? 12 : 13);
		letter_emit_string(o, a->filename);
		letter_emit(o, ",\"content_type\":", 16);
		letter_emit_string(o, a->content_type);
		letter_emit(o, ",\"data\":\"", 9);
		if (o->p == NULL)
			o->len += (a->len + 2) / 3 * 4;
		else {
			b64 = hash_b64_encode(a->data != NULL ? a->data :
			    (const unsigned char *)"", a->len);
			letter_emit(o, b64, strlen(b64));
			letter_wipe_string(b64);
			free(b64);
		}
		letter_emit(o, "\"}", 2);
	}
	letter_emit(o, "]}", 2);
}

/*
 * Serialise to the sealed JSON form.  Written by hand rather than with
 * json_dumps(): one exactly-sized allocation, so no grown-and-freed copies
 * of clinical content are left in the heap.  NULL if a string is not valid
 * UTF-8 (validate first).
 */
char *
letter_doc_serialize(const struct letter_doc *doc, size_t *lenp)
{
	struct letter_out	 o = { NULL, 0 };
	size_t			 len;

	if (!letter_doc_strings_valid(doc))
		return NULL;
	letter_emit_doc(&o, doc);
	len = o.len;
	o.p = xmalloc(len + 1);
	o.len = 0;
	letter_emit_doc(&o, doc);
	if (o.len != len)
		log_panic("letter: serialised %zu bytes, measured %zu", o.len,
		    len);
	o.p[len] = '\0';
	if (lenp != NULL)
		*lenp = len;
	return o.p;
}

/* A "sealpost-letter/1" object (format checked) into a document. */
static int
letter_doc_from_json(json_t *root, struct letter_doc **docp,
    struct letter_error *err)
{
	const char	*v;

	*docp = NULL;
	if (!json_is_object(root))
		return letter_fail(err, 422, "invalid_field", "content",
		    "not a JSON object");
	if (letter_get_string(root, "format", "format", 1, &v, NULL,
	    err) < 0)
		return -1;
	if (strcmp(v, LETTER_FORMAT) != 0)
		return letter_fail(err, 422, "unknown_format", "format",
		    "not a %s document", LETTER_FORMAT);
	if (letter_known_keys(root, letter_doc_keys, "", err) != 0)
		return -1;
	return letter_doc_members(root, docp, err);
}

/* subject, text, html and attachments of an object into a document. */
static int
letter_doc_members(json_t *root, struct letter_doc **docp,
    struct letter_error *err)
{
	struct letter_doc *doc;
	json_t		*arr;
	const char	*v;
	size_t		 vlen;
	int		 r;

	*docp = NULL;
	doc = letter_doc_new();
	if (letter_get_string(root, "subject", "subject", 1, &v, &vlen,
	    err) < 0)
		goto fail;
	doc->subject = xstrndup(v, vlen);
	if ((r = letter_get_string(root, "text", "text", 0, &v, &vlen,
	    err)) < 0)
		goto fail;
	if (r == 1)
		doc->text = xstrndup(v, vlen);
	if ((r = letter_get_string(root, "html", "html", 0, &v, &vlen,
	    err)) < 0)
		goto fail;
	if (r == 1)
		doc->html = xstrndup(v, vlen);

	arr = json_object_get(root, "attachments");
	if (arr != NULL && !json_is_null(arr) &&
	    letter_get_attachments(arr, NULL, doc, err) != 0)
		goto fail;
	*docp = doc;
	return 0;

fail:
	letter_doc_free(&doc);
	return -1;
}

/* Parse the sealed JSON form back into a document. */
int
letter_doc_parse(const char *s, size_t len, struct letter_doc **docp,
    struct letter_error *err)
{
	json_t		*root = NULL;
	int		 r;

	*docp = NULL;
	if (err != NULL)
		memset(err, 0, sizeof *err);
	if (letter_load(s, len, &root, err) != 0)
		return -1;
	r = letter_doc_from_json(root, docp, err);
	json_decref(root);
	return r;
}

/* --- the reply document ("sealpost-reply/1") ---------------------------- */

static const char *const reply_doc_keys[] = {
	"format", "subject", "new_text", "text", "html", "attachments",
	"removed", "original", NULL
};
static const char *const reply_removed_names[] = {
	"quote", "signature", "footer"		/* REPLY_* bit order */
};

/* Write (or measure) a reply document. */
static void
reply_emit_doc(struct letter_out *o, const struct reply_doc *rd)
{
	struct letter_out	 inner = { NULL, 0 };
	/* the letter's {"format":"sealpost-letter/1" and its final } go */
	const size_t		 skip = sizeof("{\"format\":\"" LETTER_FORMAT
				    "\"") - 1;
	char			*b64;
	size_t			 i;
	int			 first = 1;

	letter_emit(o, "{\"format\":", 10);
	letter_emit_string(o, REPLY_DOC_FORMAT);
	if (rd->content != NULL) {
		/*
		 * The letter document's members after its format: the
		 * same writer, so both documents encode content alike.
		 */
		letter_emit_doc(&inner, rd->content);
		if (o->p == NULL)
			o->len += inner.len - 1 - skip;
		else {
			inner.p = xmalloc(inner.len);
			inner.len = 0;
			letter_emit_doc(&inner, rd->content);
			letter_emit(o, inner.p + skip, inner.len - 1 - skip);
			hash_wipe(inner.p, inner.len);
			free(inner.p);
		}
	}
	letter_emit(o, ",\"new_text\":", 12);
	letter_emit_string(o, rd->new_text != NULL ? rd->new_text : "");
	letter_emit(o, ",\"removed\":[", 12);
	for (i = 0; i < nitems(reply_removed_names); i++) {
		if ((rd->removed & (1u << i)) == 0)
			continue;
		if (!first)
			letter_emit(o, ",", 1);
		letter_emit_string(o, reply_removed_names[i]);
		first = 0;
	}
	letter_emit(o, "],\"original\":\"", 14);
	if (o->p == NULL)
		o->len += (rd->original_len + 2) / 3 * 4;
	else {
		b64 = hash_b64_encode(rd->original != NULL ? rd->original :
		    (const unsigned char *)"", rd->original_len);
		letter_emit(o, b64, strlen(b64));
		letter_wipe_string(b64);
		free(b64);
	}
	letter_emit(o, "\"}", 2);
}

char *
reply_doc_serialize(const struct reply_doc *rd, size_t *lenp)
{
	struct letter_out	 o = { NULL, 0 };
	size_t			 len;

	if (rd->content != NULL && !letter_doc_strings_valid(rd->content))
		return NULL;
	if (rd->new_text != NULL &&
	    !letter_utf8_valid(rd->new_text, strlen(rd->new_text)))
		return NULL;
	reply_emit_doc(&o, rd);
	len = o.len;
	o.p = xmalloc(len + 1);
	o.len = 0;
	reply_emit_doc(&o, rd);
	if (o.len != len)
		log_panic("letter: reply serialised %zu bytes, measured %zu",
		    o.len, len);
	o.p[len] = '\0';
	if (lenp != NULL)
		*lenp = len;
	return o.p;
}

int
reply_doc_parse(const char *s, size_t len, struct reply_doc **rdp,
    struct letter_error *err)
{
	struct reply_doc *rd;
	json_t		*root = NULL, *arr, *v;
	const char	*str;
	size_t		 slen, i, k;

	*rdp = NULL;
	if (err != NULL)
		memset(err, 0, sizeof *err);
	if (letter_load(s, len, &root, err) != 0)
		return -1;
	rd = xcalloc(1, sizeof(*rd));
	if (letter_get_string(root, "format", "format", 1, &str, NULL,
	    err) < 0)
		goto fail;
	if (strcmp(str, REPLY_DOC_FORMAT) != 0) {
		letter_fail(err, 422, "unknown_format", "format",
		    "not a %s document", REPLY_DOC_FORMAT);
		goto fail;
	}
	if (letter_known_keys(root, reply_doc_keys, "", err) != 0)
		goto fail;
	if (letter_get_string(root, "new_text", "new_text", 1, &str, &slen,
	    err) < 0)
		goto fail;
	rd->new_text = xstrndup(str, slen);
	arr = json_object_get(root, "removed");
	if (arr == NULL || !json_is_array(arr)) {
		letter_fail(err, 422, "invalid_field", "removed",
		    "must be an array of names");
		goto fail;
	}
	json_array_foreach(arr, i, v) {
		if (!json_is_string(v))
			goto bad_removed;
		for (k = 0; k < nitems(reply_removed_names); k++)
			if (strcmp(json_string_value(v),
			    reply_removed_names[k]) == 0)
				break;
		if (k == nitems(reply_removed_names))
			goto bad_removed;
		rd->removed |= 1u << k;
	}
	if (letter_get_string(root, "original", "original", 1, &str, &slen,
	    err) < 0)
		goto fail;
	if (hash_b64_decode(str, slen, &rd->original, &rd->original_len)
	    != 0) {
		letter_fail(err, 422, "invalid_base64", "original",
		    "not standard base64");
		goto fail;
	}
	/* Content: present when the message was parsed (subject set). */
	if (json_object_get(root, "subject") != NULL &&
	    letter_doc_members(root, &rd->content, err) != 0)
		goto fail;
	if (rd->content == NULL && (json_object_get(root, "text") != NULL ||
	    json_object_get(root, "html") != NULL ||
	    json_object_get(root, "attachments") != NULL)) {
		letter_fail(err, 422, "missing_field", "subject",
		    "content without a subject");
		goto fail;
	}
	json_decref(root);
	*rdp = rd;
	return 0;

bad_removed:
	letter_fail(err, 422, "invalid_field", "removed",
	    "unknown name in removed");
fail:
	json_decref(root);
	reply_doc_free(&rd);
	return -1;
}

void
reply_doc_free(struct reply_doc **rdp)
{
	struct reply_doc *rd;

	if (rdp == NULL || (rd = *rdp) == NULL)
		return;
	letter_wipe_string(rd->new_text);
	free(rd->new_text);
	if (rd->original != NULL) {
		hash_wipe(rd->original, rd->original_len);
		free(rd->original);
	}
	letter_doc_free(&rd->content);
	free(rd);
	*rdp = NULL;
}

/* An empty document: subject NULL (read as ""), no body, no attachments. */
struct letter_doc *
letter_doc_new(void)
{
	return xcalloc(1, sizeof(struct letter_doc));
}

/* Wipe a NUL-terminated string in place. */
static void
letter_wipe_string(char *s)
{
	if (s != NULL)
		hash_wipe(s, strlen(s));
}

/* Wipe and free a document and everything it holds. */
void
letter_doc_free(struct letter_doc **docp)
{
	struct letter_doc *doc;
	size_t		 i;

	if (docp == NULL || (doc = *docp) == NULL)
		return;
	letter_wipe_string(doc->subject);
	free(doc->subject);
	letter_wipe_string(doc->text);
	free(doc->text);
	letter_wipe_string(doc->html);
	free(doc->html);
	for (i = 0; i < doc->natt; i++) {
		letter_wipe_string(doc->att[i].filename);
		free(doc->att[i].filename);
		letter_wipe_string(doc->att[i].content_type);
		free(doc->att[i].content_type);
		if (doc->att[i].data != NULL)
			hash_wipe(doc->att[i].data, doc->att[i].len);
		free(doc->att[i].data);
	}
	free(doc->att);
	free(doc);
	*docp = NULL;
}

/* "routine" or "urgent". */
const char *
letter_priority_name(int p)
{
	switch (p) {
	case LETTER_ROUTINE:
		return "routine";
	case LETTER_URGENT:
		return "urgent";
	default:
		return "unknown";
	}
}

/* The priority named s, or -1. */
int
letter_priority_parse(const char *s)
{
	if (s == NULL)
		return -1;
	if (strcmp(s, "routine") == 0)
		return LETTER_ROUTINE;
	if (strcmp(s, "urgent") == 0)
		return LETTER_URGENT;
	return -1;
}

/* jansson's free: wipe the whole block first (content may be clinical). */
static void
letter_json_free(void *p)
{
	if (p == NULL)
		return;
	hash_wipe(p, malloc_usable_size(p));
	free(p);
}

/* Route jansson's allocations through a wiping free. */
void
letter_json_init(void)
{
	json_set_alloc_funcs(malloc, letter_json_free);
}
