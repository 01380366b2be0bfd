/*
 * test_mime_build.c - outbound messages (mime_build.c).
 *
 * The RFC 2047 encoder on a table of cases and on random UTF-8 (each output
 * decoded again by libetpan's decoder, every encoded-word checked on its
 * own: <= 75 characters, whole UTF-8 inside, no line over 76); messages of
 * every shape built and parsed back with the inbound parser
 * (mime_parse_letter: subject, text, HTML, attachments byte for byte,
 * filenames); header injection attempts refused; addresses; Message-ID
 * format and uniqueness; line limits; and a golden message
 * (tests/data/mime_build/golden.eml, boundaries masked).
 *
 * With --dump SHAPE it prints one built message instead (text, alt,
 * mixed, notice) for tests/integration/t_mime_build.py, which has Python's
 * email package parse it.
 */
#include "build.h"

#include <libgen.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "hash.h"
#include "letter.h"
#include "mime.h"
#include "util.h"
#include "tap.h"
#include "tfile.h"

#define MSGID_COUNT	10000
#define RANDOM_SUBJECTS	2000

/* One RFC 2047 case: input, mode, start column, exact output or NULL. */
struct enc_case {
	const char	*name;
	const char	*in;
	int		 mode;
	size_t		 col;
	const char	*want;		/* NULL: check by decoding */
	int		 must_encode;	/* the output holds an encoded-word */
};

static int	 u8_valid(const unsigned char *, size_t);
static int	 words_ok(const char *, size_t, char *, size_t);
static void	 check_encoding(const char *, const char *, int, size_t,
		    int);
static void	 test_encode_table(void);
static void	 test_encode_errors(void);
static void	 test_encode_random(void);
static struct letter_doc *doc_make(const char *, const char *,
		    const char *);
static void	 doc_attach(struct letter_doc *, const char *, const char *,
		    const void *, size_t);
static void	 out_defaults(struct mime_out *, time_t);
static char	*header_raw(const char *, const char *);
static int	 lines_ok(const char *, size_t, size_t, char *, size_t);
static struct letter_doc *parse_back(const struct mime_msg *);
static int	 att_equal(const struct letter_attachment *,
		    const struct letter_attachment *);
static void	 test_shapes(void);
static void	 test_text_bodies(void);
static void	 test_filenames(void);
static void	 test_headers(void);
static void	 test_injection(void);
static void	 test_addresses(void);
static void	 test_message_ids(void);
static char	*mask_boundaries(const char *);
static void	 test_golden(void);
static int	 msgid_cmp(const void *, const void *);
static struct letter_doc *shape_doc(const char *);
static int	 dump(const char *);

static const struct enc_case enc_cases[] = {
	{ "ASCII passes through", "Your test results",
	    MIME_HDR_TEXT, 9, "Your test results", 0 },
	{ "empty text", "", MIME_HDR_TEXT, 9, "", 0 },
	{ "specials are fine in text", "Re: [ref 12] (x), a@b; \"q\"",
	    MIME_HDR_TEXT, 9, "Re: [ref 12] (x), a@b; \"q\"", 0 },
	{ "UTF-8 word", "R\xc3\xa9sultats", MIME_HDR_TEXT, 9, NULL, 1 },
	{ "mixed words keep plain ones",
	    "Results for Zo\xc3\xab M\xc3\xbcller today",
	    MIME_HDR_TEXT, 9, NULL, 1 },
	{ "=? in plain text is encoded", "see =?utf-8?Q?x?= here",
	    MIME_HDR_TEXT, 9, NULL, 1 },
	{ "=? inside a word", "a=?b", MIME_HDR_TEXT, 9, NULL, 1 },
	{ "?= alone is plain", "what?= ok", MIME_HDR_TEXT, 9,
	    "what?= ok", 0 },
	{ "double space kept", "a  b", MIME_HDR_TEXT, 9, NULL, 1 },
	{ "leading space kept", " lead", MIME_HDR_TEXT, 9, NULL, 1 },
	{ "trailing space kept", "trail ", MIME_HDR_TEXT, 9, NULL, 1 },
	{ "tab kept", "tab\there", MIME_HDR_TEXT, 9, NULL, 1 },
	{ "only spaces", "   ", MIME_HDR_TEXT, 9, NULL, 1 },
	{ "control byte", "bell\x07", MIME_HDR_TEXT, 9, NULL, 1 },
	{ "long ASCII folds without encoding",
	    "This is a rather long subject line about the results of the "
	    "blood tests taken last week at the Riverside Surgery, please "
	    "read it carefully and call us if anything is unclear to you",
	    MIME_HDR_TEXT, 9, NULL, 0 },
	{ "one ASCII word longer than a line",
	    "https://example.org/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/end",
	    MIME_HDR_TEXT, 9, NULL, 1 },
	{ "long UTF-8 subject",
	    "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
	    "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
	    "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
	    " r\xc3\xa9sultats d'analyses du laboratoire, \xc3\xa0 lire "
	    "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
	    "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9",
	    MIME_HDR_TEXT, 9, NULL, 1 },
	{ "emoji run", "\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80"
	    "\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80"
	    "\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80"
	    "\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80",
	    MIME_HDR_TEXT, 9, NULL, 1 },
	{ "CJK", "\xe6\xa4\x9c\xe6\x9f\xbb\xe7\xb5\x90\xe6\x9e\x9c\xe3\x81"
	    "\xae\xe3\x81\x8a\xe7\x9f\xa5\xe3\x82\x89\xe3\x81\x9b",
	    MIME_HDR_TEXT, 9, NULL, 1 },
	{ "wide start column", "R\xc3\xa9sultat", MIME_HDR_TEXT, 70, NULL,
	    1 },
	{ "atom phrase", "Riverside Surgery", MIME_HDR_PHRASE, 6,
	    "Riverside Surgery", 0 },
	{ "phrase with specials is quoted", "Smith, Jo", MIME_HDR_PHRASE, 6,
	    "\"Smith, Jo\"", 0 },
	{ "quote and backslash escaped", "Dr. O\"Brien \\ Co",
	    MIME_HDR_PHRASE, 6, "\"Dr. O\\\"Brien \\\\ Co\"", 0 },
	{ "UTF-8 phrase", "Zo\xc3\xab M\xc3\xbcller", MIME_HDR_PHRASE, 6,
	    NULL, 1 },
	{ "=? phrase", "a =?utf-8?B?QQ==?= b", MIME_HDR_PHRASE, 6, NULL, 1 },
	{ "phrase double space", "Jo  Smith", MIME_HDR_PHRASE, 6, NULL, 1 },
	{ "long quoted phrase is encoded",
	    "Riverside Surgery, Group Practice of Doctors Smith, Jones, Patel "
	    "and Ng", MIME_HDR_PHRASE, 6, NULL, 1 },
};

/* Is s[0..n) well-formed UTF-8 (whole sequences only)? */
static int
u8_valid(const unsigned char *s, size_t n)
{
	size_t	 i = 0, k, j;

	while (i < n) {
		if (s[i] < 0x80)
			k = 1;
		else if (s[i] >= 0xc2 && s[i] <= 0xdf)
			k = 2;
		else if (s[i] >= 0xe0 && s[i] <= 0xef)
			k = 3;
		else if (s[i] >= 0xf0 && s[i] <= 0xf4)
			k = 4;
		else
			return 0;
		if (i + k > n)
			return 0;
		for (j = 1; j < k; j++) {
			if ((s[i + j] & 0xc0) != 0x80)
				return 0;
		}
		i += k;
	}
	return 1;
}

/*
 * Every line of an encoder output (first line after `col' characters) is
 * <= 76, lines are joined by CRLF SP, and every encoded-word is <= 75
 * characters and holds whole UTF-8 sequences.  Reason in why.
 */
static int
words_ok(const char *out, size_t col, char *why, size_t whysz)
{
	const char	*p, *e, *q;
	size_t		 linelen = col, n;
	unsigned char	*dec;
	size_t		 declen;

	for (p = out; *p != '\0'; p++) {
		if (*p == '\r') {
			if (p[1] != '\n' || p[2] != ' ') {
				snprintf(why, whysz, "fold is not CRLF SP");
				return 0;
			}
			linelen = 0;
			p++;
			continue;
		}
		if (*p == '\n') {
			snprintf(why, whysz, "bare LF");
			return 0;
		}
		if (++linelen > 76) {
			snprintf(why, whysz, "line longer than 76");
			return 0;
		}
	}
	for (p = out; (p = strstr(p, "=?utf-8?B?")) != NULL; p = e + 2) {
		if ((e = strstr(p + 10, "?=")) == NULL) {
			snprintf(why, whysz, "unterminated encoded-word");
			return 0;
		}
		n = (size_t)(e + 2 - p);
		if (n > 75) {
			snprintf(why, whysz, "encoded-word of %zu", n);
			return 0;
		}
		for (q = p; q < e; q++) {
			if (*q == ' ' || *q == '\r') {
				snprintf(why, whysz, "space in a word");
				return 0;
			}
		}
		if (hash_b64_decode(p + 10, (size_t)(e - p - 10), &dec,
		    &declen) != 0) {
			snprintf(why, whysz, "bad base64 in a word");
			return 0;
		}
		if (!u8_valid(dec, declen)) {
			free(dec);
			snprintf(why, whysz, "a word splits a UTF-8 sequence");
			return 0;
		}
		free(dec);
	}
	return 1;
}

/* Encode, then check the layout and the round trip through libetpan. */
static void
check_encoding(const char *name, const char *in, int mode, size_t col,
    int must_encode)
{
	const char	*err = NULL;
	char		*out = NULL, *dec, why[80];
	int		 r;

	r = mime_header_encode(in, strlen(in), mode, col, &out, &err);
	if (!ok(r == 0 && out != NULL, "encode: %s", name)) {
		diag("  error: %s", err != NULL ? err : "(none)");
		return;
	}
	why[0] = '\0';
	ok(words_ok(out, col, why, sizeof(why)), "encode: %s: layout%s%s",
	    name, *why != '\0' ? ": " : "", why);
	if (must_encode >= 0)
		ok((strstr(out, "=?utf-8?B?") != NULL) == must_encode,
		    "encode: %s: %s", name, must_encode ? "encoded" :
		    "left plain");
	if (mode == MIME_HDR_TEXT || must_encode > 0) {
		dec = mime_header_decode(out);
		if (!ok(dec != NULL && strcmp(dec, in) == 0,
		    "encode: %s: libetpan decodes it back", name))
			diag("  out \"%s\" decoded \"%s\"", out,
			    dec != NULL ? dec : "(null)");
		free(dec);
	}
	free(out);
}

/* The table of RFC 2047 cases. */
static void
test_encode_table(void)
{
	const struct enc_case	*c;
	const char		*err;
	char			*out, in[64];
	size_t			 i, pre;

	for (i = 0; i < nitems(enc_cases); i++) {
		c = &enc_cases[i];
		if (c->want != NULL) {
			out = NULL;
			if (mime_header_encode(c->in, strlen(c->in), c->mode,
			    c->col, &out, &err) != 0)
				out = NULL;
			is_str(out, c->want, "encode: %s: exact", c->name);
			free(out);
		}
		check_encoding(c->name, c->in, c->mode, c->col,
		    c->must_encode);
	}

	/* Emoji at every offset relative to the 45-byte word limit. */
	for (pre = 0; pre < 4; pre++) {
		memset(in, 'x', pre);
		in[pre] = '\0';
		for (i = 0; i < 12; i++)
			strlcpy_sp(in + strlen(in), "\xf0\x9f\x8e\x89",
			    sizeof(in) - strlen(in));
		check_encoding(pre == 0 ? "emoji, offset 0" :
		    pre == 1 ? "emoji, offset 1" : pre == 2 ?
		    "emoji, offset 2" : "emoji, offset 3", in, MIME_HDR_TEXT,
		    9, 1);
	}
}

/* Inputs the encoder must refuse. */
static void
test_encode_errors(void)
{
	static const struct {
		const char	*name;
		const char	*s;
		size_t		 len;
	} bad[] = {
		{ "CR", "a\rb", 3 },
		{ "LF", "a\nBcc: x@example.org", 20 },
		{ "CRLF", "hello\r\nBcc: x@example.org", 25 },
		{ "NUL", "a\0b", 3 },
		{ "invalid byte", "a\xff", 2 },
		{ "overlong", "\xc0\xaf", 2 },
		{ "surrogate", "\xed\xa0\x80", 3 },
		{ "truncated", "\xe2\x82", 2 },
		{ "above U+10FFFF", "\xf4\x90\x80\x80", 4 },
	};
	const char	*err;
	char		*out;
	size_t		 i;
	int		 m, r;

	for (i = 0; i < nitems(bad); i++) {
		for (m = MIME_HDR_TEXT; m <= MIME_HDR_PHRASE; m++) {
			out = NULL;
			err = NULL;
			r = mime_header_encode(bad[i].s, bad[i].len, m, 9,
			    &out, &err);
			ok(r == -1 && out == NULL && err != NULL,
			    "encode refuses %s (%s)", bad[i].name,
			    m == MIME_HDR_TEXT ? "text" : "phrase");
			free(out);
		}
	}
}

/* Random UTF-8 strings: layout and round trip hold for all of them. */
static void
test_encode_random(void)
{
	static const char *const pieces[] = {
		"a", "Z", "0", " ", " ", "  ", "\t", "=", "?", "=?", "\"",
		"\xc3\xa9", "\xc3\xbc", "\xe2\x80\x93", "\xe2\x82\xac",
		"\xf0\x9f\x98\x80", "\xf0\x9f\x8f\xa5", "\xe6\xa4\x9c",
		"word", "results", ",", ".", "(", "<", "\x01",
	};
	char		 s[400], *out, *dec, why[80];
	const char	*err;
	size_t		 i, n, k, col, fails = 0, layout_fails = 0;
	uint32_t	 len;

	for (i = 0; i < RANDOM_SUBJECTS; i++) {
		len = hash_random_uniform(60);
		s[0] = '\0';
		for (n = 0; n < len; n++) {
			k = hash_random_uniform(nitems(pieces));
			if (strlen(s) + strlen(pieces[k]) >= sizeof(s))
				break;
			strlcpy_sp(s + strlen(s), pieces[k],
			    sizeof(s) - strlen(s));
		}
		col = 4 + hash_random_uniform(30);
		out = NULL;
		if (mime_header_encode(s, strlen(s), MIME_HDR_TEXT, col, &out,
		    &err) != 0) {
			fails++;
			continue;
		}
		if (!words_ok(out, col, why, sizeof(why)))
			layout_fails++;
		dec = mime_header_decode(out);
		if (dec == NULL || strcmp(dec, s) != 0) {
			if (fails++ == 0)
				diag("  first failure: in \"%s\" out \"%s\"",
				    s, out);
		}
		free(dec);
		free(out);
	}
	is_int(layout_fails, 0, "random text: %d outputs well laid out",
	    RANDOM_SUBJECTS);
	is_int(fails, 0, "random text: %d round trips through libetpan",
	    RANDOM_SUBJECTS);
}

/* A letter document. */
static struct letter_doc *
doc_make(const char *subject, const char *text, const char *html)
{
	struct letter_doc	*doc = letter_doc_new();

	doc->subject = subject != NULL ? xstrdup(subject) : NULL;
	doc->text = text != NULL ? xstrdup(text) : NULL;
	doc->html = html != NULL ? xstrdup(html) : NULL;
	return doc;
}

/* Add an attachment (copied). */
static void
doc_attach(struct letter_doc *doc, const char *filename, const char *ctype,
    const void *data, size_t len)
{
	struct letter_attachment	*a;

	doc->att = xreallocarray(doc->att, doc->natt + 1, sizeof(*doc->att));
	a = &doc->att[doc->natt++];
	a->filename = xstrdup(filename);
	a->content_type = xstrdup(ctype);
	a->data = xmemdup(data, len > 0 ? len : 1);
	a->len = len;
}

/* The usual routing fields of a practice writing to a patient. */
static void
out_defaults(struct mime_out *o, time_t date)
{
	memset(o, 0, sizeof(*o));
	o->from_name = "Riverside Surgery";
	o->from_addr = "letters@riverside.example";
	o->to_name = "Zo\xc3\xab M\xc3\xbcller";
	o->to_addr = "zoe@patient.example";
	o->reply_token = "abcdefgh234567";
	o->reply_domain = "reply.riverside.example";
	o->date = date;
}

/* The raw (folded) value of a top-level header field, or NULL. */
static char *
header_raw(const char *msg, const char *name)
{
	const char	*p = msg, *e, *v;
	size_t		 n = strlen(name);

	while (*p != '\0' && !(p[0] == '\r' && p[1] == '\n')) {
		e = p;
		/* The field ends at a CRLF not followed by WSP. */
		while ((e = strstr(e, "\r\n")) != NULL &&
		    (e[2] == ' ' || e[2] == '\t'))
			e += 2;
		if (e == NULL)
			return NULL;
		if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
			v = p + n + 1;
			while (*v == ' ')
				v++;
			return xstrndup(v, (size_t)(e - v));
		}
		p = e + 2;
	}
	return NULL;
}

/*
 * CRLF only, no line over max; the longest line in *why when it fails.
 */
static int
lines_ok(const char *s, size_t len, size_t max, char *why, size_t whysz)
{
	size_t	 i, start = 0;

	snprintf(why, whysz, "fine");
	for (i = 0; i < len; i++) {
		if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r')) {
			snprintf(why, whysz, "bare LF at %zu", i);
			return 0;
		}
		if (s[i] == '\r' && (i + 1 == len || s[i + 1] != '\n')) {
			snprintf(why, whysz, "bare CR at %zu", i);
			return 0;
		}
		if (s[i] == '\n') {
			if (i - 1 - start > max) {
				snprintf(why, whysz, "line of %zu at %zu",
				    i - 1 - start, start);
				return 0;
			}
			start = i + 1;
		}
	}
	if (start != len) {
		snprintf(why, whysz, "no final CRLF");
		return 0;
	}
	return 1;
}

/* The inbound parser's reading of a built message. */
static struct letter_doc *
parse_back(const struct mime_msg *m)
{
	struct mime_limits	 lim;
	struct letter_doc	*doc = NULL;
	struct letter_error	 err;

	mime_limits_default(&lim);
	if (mime_parse_letter(m->data, m->len, &lim, &doc, &err) != 0) {
		diag("  parse: %s: %s", err.code, err.message);
		return NULL;
	}
	return doc;
}

/* Same filename, type and bytes? */
static int
att_equal(const struct letter_attachment *a,
    const struct letter_attachment *b)
{
	return strcmp(a->filename, b->filename) == 0 &&
	    strcmp(a->content_type, b->content_type) == 0 &&
	    a->len == b->len && memcmp(a->data, b->data, a->len) == 0;
}

/* Each shape, built and parsed back. */
static void
test_shapes(void)
{
	static const char *const names[] = {
		"text", "alt", "html", "mixed", "attachments only", "notice"
	};
	struct mime_out		 o;
	struct mime_msg		 m;
	struct letter_doc	*doc, *back;
	const char		*err;
	char			*ct, why[80];
	size_t			 s, i;
	int			 r, same;

	for (s = 0; s < nitems(names); s++) {
		out_defaults(&o, 1700000000);
		doc = NULL;
		if (strcmp(names[s], "notice") == 0) {
			o.subject = "A letter is waiting for you";
			o.notice = "Riverside Surgery has sent you a letter.\n"
			    "Reply to this message to receive it by email.\n";
		} else if (strcmp(names[s], "attachments only") == 0) {
			doc = shape_doc("mixed");
			free(doc->text);
			free(doc->html);
			doc->text = doc->html = NULL;
		} else
			doc = shape_doc(names[s]);
		o.doc = doc;
		err = NULL;
		r = mime_build(&o, &m, &err);
		if (!ok(r == 0, "build %s", names[s])) {
			diag("  error: %s", err != NULL ? err : "(none)");
			letter_doc_free(&doc);
			continue;
		}
		ok(lines_ok(m.data, m.len, 78, why, sizeof(why)),
		    "%s: CRLF only, lines <= 78 (%s)", names[s], why);
		ct = header_raw(m.data, "Content-Type");
		ok(ct != NULL && strncmp(ct, strcmp(names[s], "text") == 0 ||
		    strcmp(names[s], "notice") == 0 ? "text/plain;" :
		    strcmp(names[s], "html") == 0 ? "text/html;" :
		    strcmp(names[s], "alt") == 0 ? "multipart/alternative;" :
		    "multipart/mixed;", strlen(strcmp(names[s], "text") == 0 ||
		    strcmp(names[s], "notice") == 0 ? "text/plain;" :
		    strcmp(names[s], "html") == 0 ? "text/html;" :
		    strcmp(names[s], "alt") == 0 ? "multipart/alternative;" :
		    "multipart/mixed;")) == 0, "%s: top Content-Type",
		    names[s]);
		free(ct);

		back = parse_back(&m);
		if (!ok(back != NULL, "%s: parses back", names[s])) {
			mime_msg_clear(&m);
			letter_doc_free(&doc);
			continue;
		}
		is_str(back->subject, doc != NULL ? doc->subject : o.subject,
		    "%s: subject", names[s]);
		if (doc == NULL) {
			is_str(back->text, o.notice, "%s: text", names[s]);
		} else {
			/* The parser gives "" only when there is no HTML. */
			is_str(back->text, doc->text != NULL ? doc->text :
			    doc->html != NULL ? NULL : "", "%s: text",
			    names[s]);
			is_str(back->html, doc->html, "%s: html", names[s]);
			same = back->natt == doc->natt;
			for (i = 0; same && i < doc->natt; i++)
				same = att_equal(&back->att[i], &doc->att[i]);
			ok(same, "%s: %zu attachments byte-identical, names "
			    "and types", names[s], doc->natt);
		}
		letter_doc_free(&back);
		mime_msg_clear(&m);
		ok(m.data == NULL && m.len == 0, "%s: cleared", names[s]);
		letter_doc_free(&doc);
	}
}

/* Text bodies whose quoted-printable form is awkward. */
static void
test_text_bodies(void)
{
	static const struct {
		const char	*name;
		const char	*in;
		const char	*want;	/* after parsing back: LF only */
	} cases[] = {
		{ "trailing spaces", "a  \nb\t\nc ", "a  \nb\t\nc " },
		{ "From and dot lines", "From here\n.\n..x\nFrom\n",
		    "From here\n.\n..x\nFrom\n" },
		{ "CRLF and lone CR", "a\r\nb\rc\n", "a\nb\nc\n" },
		{ "no final newline", "last line", "last line" },
		{ "equals and controls", "x=3D\x01\x7f=", "x=3D\x01\x7f=" },
		{ "only a newline", "\n", "\n" },
		{ "blank lines", "\n\n\nx\n\n", "\n\n\nx\n\n" },
	};
	struct mime_out		 o;
	struct mime_msg		 m;
	struct letter_doc	*doc, *back;
	const char		*err;
	char			 why[80], *longline, *p;
	size_t			 i, k;

	for (i = 0; i < nitems(cases); i++) {
		out_defaults(&o, 1700000000);
		doc = doc_make("Text", cases[i].in, NULL);
		o.doc = doc;
		if (!ok(mime_build(&o, &m, &err) == 0, "text %s: built",
		    cases[i].name)) {
			letter_doc_free(&doc);
			continue;
		}
		ok(lines_ok(m.data, m.len, 76, why, sizeof(why)),
		    "text %s: lines <= 76 (%s)", cases[i].name, why);
		/* Transports may strip it (RFC 2045 section 6.7 rule 3). */
		ok(strstr(m.data, " \r\n") == NULL &&
		    strstr(m.data, "\t\r\n") == NULL,
		    "text %s: no white space at the end of a line",
		    cases[i].name);
		ok(strstr(m.data, "\r\nFrom ") == NULL &&
		    strstr(m.data, "\r\n.") == NULL,
		    "text %s: no line starts with \"From \" or \".\"",
		    cases[i].name);
		back = parse_back(&m);
		is_str(back != NULL ? back->text : NULL, cases[i].want,
		    "text %s: parses back", cases[i].name);
		letter_doc_free(&back);
		mime_msg_clear(&m);
		letter_doc_free(&doc);
	}

	/* A 3000-character line of mixed content, and UTF-8 on breaks. */
	longline = xmalloc(3000 * 3 + 2);
	for (p = longline, k = 0; k < 3000; k++) {
		if (k % 7 == 3) {
			memcpy(p, "\xc3\xa9", 2);
			p += 2;
		} else if (k % 11 == 5)
			*p++ = ' ';
		else if (k % 13 == 0)
			*p++ = '=';
		else
			*p++ = (char)('a' + k % 26);
	}
	*p++ = '\n';
	*p = '\0';
	for (i = 0; i < 2; i++) {
		out_defaults(&o, 1700000000);
		doc = doc_make("Long", i == 0 ? longline : NULL,
		    i == 1 ? longline : NULL);
		o.doc = doc;
		if (!ok(mime_build(&o, &m, &err) == 0, "long %s line: built",
		    i == 0 ? "text" : "html")) {
			letter_doc_free(&doc);
			continue;
		}
		ok(lines_ok(m.data, m.len, 76, why, sizeof(why)),
		    "long %s line: every line <= 76 (%s)",
		    i == 0 ? "text" : "html", why);
		back = parse_back(&m);
		is_str(back == NULL ? NULL : i == 0 ? back->text : back->html,
		    longline, "long %s line: parses back",
		    i == 0 ? "text" : "html");
		letter_doc_free(&back);
		mime_msg_clear(&m);
		letter_doc_free(&doc);
	}
	free(longline);

	out_defaults(&o, 1700000000);
	doc = doc_make("Bad", "caf\xe9", NULL);
	o.doc = doc;
	err = NULL;
	ok(mime_build(&o, &m, &err) == -1 && m.data == NULL && err != NULL &&
	    strncmp(err, "text:", 5) == 0, "text that is not UTF-8 refused");
	letter_doc_free(&doc);
}

/* Filenames: RFC 2231 with an ASCII fallback, continuations, quotes. */
static void
test_filenames(void)
{
	static const char *const names[] = {
		"results.pdf",
		"R\xc3\xa9sultat du test \xe2\x80\x93 M\xc3\xbcller.pdf",
		"\xe6\xa4\x9c\xe6\x9f\xbb\xe7\xb5\x90\xe6\x9e\x9c.pdf",
		"quote\"in name.txt",
		"spaces  and (parens) [x] {y} 100% ; = ?.bin",
		"looks =?utf-8?B?QQ==?= encoded.txt",
		"\xf0\x9f\x98\x80\xf0\x9f\x98\x80 emoji.png",
		"A very long ASCII filename that is longer than sixty "
		"characters, for sure.docx",
	};
	struct mime_out		 o;
	struct mime_msg		 m;
	struct letter_doc	*doc, *back;
	const char		*err;
	char			 longname[256], why[80], *p;
	unsigned char		 data[400];
	size_t			 i;

	/* 60 x 3-byte characters + ".pdf": many RFC 2231 sections. */
	for (p = longname, i = 0; i < 60; i++, p += 3)
		memcpy(p, "\xe2\x82\xac", 3);
	strlcpy_sp(p, ".pdf", sizeof(longname) - (size_t)(p - longname));

	for (i = 0; i < sizeof(data); i++)
		data[i] = (unsigned char)(i * 7);
	doc = doc_make("Files", "See attached.\n", NULL);
	for (i = 0; i < nitems(names); i++)
		doc_attach(doc, names[i], "application/octet-stream", data,
		    (i + 1) * 40);
	doc_attach(doc, longname, "application/pdf", data, sizeof(data));
	doc_attach(doc, "note.eml", "message/rfc822", "From: a@b\r\n\r\nx\r\n",
	    16);
	out_defaults(&o, 1700000000);
	o.doc = doc;
	if (!ok(mime_build(&o, &m, &err) == 0, "filenames: built")) {
		diag("  error: %s", err);
		letter_doc_free(&doc);
		return;
	}
	ok(lines_ok(m.data, m.len, 78, why, sizeof(why)),
	    "filenames: lines <= 78 (%s)", why);
	ok(strstr(m.data, "filename*=utf-8''R%C3%A9sultat%20du%20test%20"
	    "%E2%80%93%20M%C3%BCller.pdf;\r\n filename=\"R_sultat du test _ "
	    "M_ller.pdf\"") != NULL, "filenames: RFC 2231 form, then the "
	    "ASCII fallback");
	ok(strstr(m.data, "filename*0*=utf-8''%E2%82%AC") != NULL &&
	    strstr(m.data, "filename*1*=%E2%82%AC") != NULL,
	    "filenames: a long name is split into sections");
	ok(strstr(m.data, "Content-Disposition: attachment; "
	    "filename=\"results.pdf\"\r\n") != NULL,
	    "filenames: plain ASCII stays plain");
	ok(strstr(m.data, "Content-Type: application/octet-stream;"
	    " name=\"note.eml\"") != NULL || strstr(m.data,
	    "Content-Type: application/octet-stream; \r\n name=\"note.eml\"")
	    != NULL, "filenames: message/rfc822 goes as octet-stream, "
	    "not base64 under message/");
	back = parse_back(&m);
	if (ok(back != NULL && back->natt == doc->natt,
	    "filenames: all attachments parse back")) {
		for (i = 0; i < doc->natt; i++) {
			is_str(back->att[i].filename, doc->att[i].filename,
			    "filenames: name %zu", i);
			ok(back->att[i].len == doc->att[i].len &&
			    memcmp(back->att[i].data, doc->att[i].data,
			    doc->att[i].len) == 0, "filenames: bytes %zu", i);
		}
	}
	letter_doc_free(&back);
	mime_msg_clear(&m);
	letter_doc_free(&doc);
}

/* Date, Reply-To, threading and extra headers. */
static void
test_headers(void)
{
	static const struct mime_header extra[] = {
		{ "Auto-Submitted", "auto-replied" },
		{ "X-Sealpost-Letter", "1234" },
	};
	struct mime_out		 o;
	struct mime_msg		 m;
	struct letter_doc	*doc;
	const char		*err;
	char			*v, *d;

	doc = doc_make("Your results \xe2\x80\x93 R\xc3\xa9sultats", "Hi\n",
	    NULL);
	out_defaults(&o, 0);
	o.doc = doc;
	o.message_id = "<fixed.1@riverside.example>";
	o.in_reply_to = "<parent@mail.patient.example>";
	o.references = "<root@a.example>  <parent@mail.patient.example>";
	o.headers = extra;
	o.nheaders = nitems(extra);
	if (!ok(mime_build(&o, &m, &err) == 0, "headers: built")) {
		letter_doc_free(&doc);
		return;
	}
	v = header_raw(m.data, "Date");
	is_str(v, "Thu, 1 Jan 1970 00:00:00 +0000", "headers: Date in UTC");
	free(v);
	v = header_raw(m.data, "From");
	is_str(v, "Riverside Surgery <letters@riverside.example>",
	    "headers: From");
	free(v);
	v = header_raw(m.data, "To");
	d = v != NULL ? mime_header_decode(v) : NULL;
	is_str(d, "Zo\xc3\xab M\xc3\xbcller <zoe@patient.example>",
	    "headers: To decodes to the patient's name");
	ok(v != NULL && strncmp(v, "=?utf-8?B?", 10) == 0,
	    "headers: To display name is encoded");
	free(d);
	free(v);
	v = header_raw(m.data, "Reply-To");
	is_str(v, "reply+abcdefgh234567@reply.riverside.example",
	    "headers: Reply-To");
	free(v);
	v = header_raw(m.data, "Subject");
	d = v != NULL ? mime_header_decode(v) : NULL;
	is_str(d, doc->subject, "headers: Subject decodes");
	free(d);
	free(v);
	v = header_raw(m.data, "Message-ID");
	is_str(v, "<fixed.1@riverside.example>", "headers: given Message-ID");
	free(v);
	is_str(m.message_id, "<fixed.1@riverside.example>",
	    "headers: Message-ID reported");
	v = header_raw(m.data, "In-Reply-To");
	is_str(v, "<parent@mail.patient.example>", "headers: In-Reply-To");
	free(v);
	v = header_raw(m.data, "References");
	is_str(v, "<root@a.example> <parent@mail.patient.example>",
	    "headers: References");
	free(v);
	v = header_raw(m.data, "Auto-Submitted");
	is_str(v, "auto-replied", "headers: Auto-Submitted");
	free(v);
	v = header_raw(m.data, "X-Sealpost-Letter");
	is_str(v, "1234", "headers: X-Sealpost-Letter");
	free(v);
	v = header_raw(m.data, "MIME-Version");
	is_str(v, "1.0", "headers: MIME-Version");
	free(v);
	mime_msg_clear(&m);

	/* 2023-11-14T22:13:20Z; no Reply-To without a token. */
	out_defaults(&o, 1700000000);
	o.reply_token = NULL;
	o.reply_domain = NULL;
	o.doc = doc;
	if (ok(mime_build(&o, &m, &err) == 0, "headers: built again")) {
		v = header_raw(m.data, "Date");
		is_str(v, "Tue, 14 Nov 2023 22:13:20 +0000",
		    "headers: Date of 1700000000");
		free(v);
		v = header_raw(m.data, "Reply-To");
		ok(v == NULL, "headers: no token, no Reply-To");
		free(v);
		v = header_raw(m.data, "Message-ID");
		is_str(v, m.message_id, "headers: generated Message-ID "
		    "written and reported");
		ok(util_endswith_ci(m.message_id, "@riverside.example>"),
		    "headers: generated in the From domain");
		free(v);
		mime_msg_clear(&m);
	}
	letter_doc_free(&doc);
}

/* Every way CR, LF or a bad value could reach a header is refused. */
static void
test_injection(void)
{
	static const char *const inj = "x\r\nBcc: victim@evil.example";
	struct mime_header	 xh;
	struct mime_out		 o;
	struct mime_msg		 m;
	struct letter_doc	*doc;
	const char		*err;
	size_t			 i;
	int			 r;
	enum {
		F_FROM_NAME, F_FROM_ADDR, F_TO_NAME, F_TO_ADDR, F_TOKEN,
		F_REPLY_DOMAIN, F_SUBJECT, F_MSGID, F_IRT, F_REFS, F_XNAME,
		F_XVALUE, F_FILENAME, F_CTYPE, F_DOC_SUBJECT, F_MSGID_DOMAIN,
		F_XRESERVED, F_TOKEN_CHARS, F_LF_ONLY, F_TOO_LONG_NAME,
		F_NONE
	};
	static const char *const what[] = {
		"from_name", "from_addr", "to_name", "to_addr", "reply_token",
		"reply_domain", "subject", "message_id", "in_reply_to",
		"references", "headers", "headers", "attachment filename",
		"attachment content_type", "subject", "msgid_domain",
		"headers", "reply_token", "to_name", "from_name"
	};
	char	 longname[300];

	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	for (i = 0; i < F_NONE; i++) {
		doc = doc_make("Subject", "Body\n", NULL);
		doc_attach(doc, "a.pdf", "application/pdf", "%PDF", 4);
		out_defaults(&o, 1700000000);
		o.doc = doc;
		xh.name = "X-Test";
		xh.value = "ok";
		o.headers = &xh;
		o.nheaders = 1;
		switch (i) {
		case F_FROM_NAME:
			o.from_name = inj;
			break;
		case F_FROM_ADDR:
			o.from_addr = "a@b.example\r\nBcc: x@evil.example";
			break;
		case F_TO_NAME:
			o.to_name = inj;
			break;
		case F_TO_ADDR:
			o.to_addr = "zoe@patient.example\n";
			break;
		case F_TOKEN:
			o.reply_token = "abc\r\nBcc: x";
			break;
		case F_REPLY_DOMAIN:
			o.reply_domain = "reply.example\r\nBcc: x@evil.example";
			break;
		case F_SUBJECT:
			o.subject = inj;
			break;
		case F_MSGID:
			o.message_id = "<a@b>\r\nBcc: x@evil.example";
			break;
		case F_IRT:
			o.in_reply_to = "<a@b>\nBcc: x@evil.example";
			break;
		case F_REFS:
			o.references = "<a@b> <c@d>\r\nBcc: x@evil.example";
			break;
		case F_XNAME:
			xh.name = "X-Bad: yes\r\nBcc";
			break;
		case F_XVALUE:
			xh.value = inj;
			break;
		case F_FILENAME:
			free(doc->att[0].filename);
			doc->att[0].filename = xstrdup("a.pdf\r\nX-Evil: 1");
			break;
		case F_CTYPE:
			free(doc->att[0].content_type);
			doc->att[0].content_type =
			    xstrdup("text/plain\r\nX-Evil: 1");
			break;
		case F_DOC_SUBJECT:
			free(doc->subject);
			doc->subject = xstrdup(inj);
			break;
		case F_MSGID_DOMAIN:
			o.msgid_domain = "riverside.example>\r\nBcc: x";
			break;
		case F_XRESERVED:
			xh.name = "bcc";
			xh.value = "victim@evil.example";
			break;
		case F_TOKEN_CHARS:
			o.reply_token = "abc@evil.example>";
			break;
		case F_LF_ONLY:
			o.to_name = "Zo\xc3\xab\nBcc: x@evil.example";
			break;
		case F_TOO_LONG_NAME:
			o.from_name = longname;
			break;
		}
		err = NULL;
		r = mime_build(&o, &m, &err);
		if (!ok(r == -1 && m.data == NULL && err != NULL &&
		    strncmp(err, what[i], strlen(what[i])) == 0,
		    "injection via %s refused", what[i]))
			diag("  r=%d error=%s", r,
			    err != NULL ? err : "(none)");
		if (r == 0)
			mime_msg_clear(&m);
		letter_doc_free(&doc);
	}

	/* The same message with clean values builds. */
	doc = doc_make("Subject", "Body\n", NULL);
	out_defaults(&o, 1700000000);
	o.doc = doc;
	ok(mime_build(&o, &m, &err) == 0, "injection: clean values build");
	mime_msg_clear(&m);

	/* A letter and a notice, or neither. */
	o.notice = "x";
	ok(mime_build(&o, &m, &err) == -1 && strncmp(err, "content:", 8) ==
	    0, "letter and notice together refused");
	o.doc = NULL;
	o.notice = NULL;
	ok(mime_build(&o, &m, &err) == -1 && strncmp(err, "content:", 8) ==
	    0, "no content refused");
	letter_doc_free(&doc);
}

/* addr-spec validation. */
static void
test_addresses(void)
{
	static const struct {
		const char	*addr;
		int		 good;
	} cases[] = {
		{ "jo@gmail.example", 1 },
		{ "a@b", 1 },
		{ "first.last+tag@sub.example.org", 1 },
		{ "o'brien@example.ie", 1 },
		{ "x@xn--bcher-kva.example", 1 },
		{ "no-at-sign", 0 },
		{ "two@@example.org", 0 },
		{ "a b@example.org", 0 },
		{ "<a@example.org>", 0 },
		{ "Name <a@example.org>", 0 },
		{ ".a@example.org", 0 },
		{ "a.@example.org", 0 },
		{ "a..b@example.org", 0 },
		{ "a@-b.example", 0 },
		{ "a@b-.example", 0 },
		{ "a@b..example", 0 },
		{ "a@b_c.example", 0 },
		{ "a@", 0 },
		{ "@example.org", 0 },
		{ "a@[127.0.0.1]", 0 },
		{ "\"quoted\"@example.org", 0 },
		{ "zo\xc3\xab@example.org", 0 },
		{ "a@example.org\r\n", 0 },
		{ "a,b@example.org", 0 },
	};
	char	 local[70], addr[300];
	size_t	 i;

	for (i = 0; i < nitems(cases); i++)
		ok((mime_addr_check(cases[i].addr) == NULL) == cases[i].good,
		    "address %zu is %s", i, cases[i].good ? "accepted" :
		    "refused");

	memset(local, 'l', 64);
	local[64] = '\0';
	snprintf(addr, sizeof(addr), "%s@example.org", local);
	ok(mime_addr_check(addr) == NULL, "64-octet local part accepted");
	local[64] = 'l';
	local[65] = '\0';
	snprintf(addr, sizeof(addr), "%s@example.org", local);
	ok(mime_addr_check(addr) != NULL, "65-octet local part refused");

	/* 254 octets exactly: 64 + 1 + 189 (three 62-labels and "com"...). */
	memset(local, 'l', 64);
	local[64] = '\0';
	snprintf(addr, sizeof(addr), "%s@%.62s.%.62s.%.59s.com", local,
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	    "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
	    "ccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc");
	is_int(strlen(addr), 254, "a 254-octet address is built");
	ok(mime_addr_check(addr) == NULL, "254-octet address accepted");
	snprintf(addr, sizeof(addr), "%s@%.62s.%.62s.%.60s.com", local,
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	    "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
	    "ccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc");
	ok(mime_addr_check(addr) != NULL, "255-octet address refused");
	snprintf(addr, sizeof(addr), "a@%.64s.example",
	    "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd");
	ok(mime_addr_check(addr) != NULL, "64-octet label refused");
}

/* Sort Message-IDs. */
static int
msgid_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Format and uniqueness of generated Message-IDs. */
static void
test_message_ids(void)
{
	char	**ids, *id;
	size_t	  i, k, bad = 0, dups = 0;

	ids = xcalloc(MSGID_COUNT, sizeof(*ids));
	for (i = 0; i < MSGID_COUNT; i++) {
		ids[i] = id = mime_message_id("riverside.example");
		if (id == NULL || strlen(id) != 1 + 26 + 1 + 17 + 1 ||
		    id[0] != '<' || id[27] != '@' ||
		    strcmp(id + 28, "riverside.example>") != 0) {
			bad++;
			continue;
		}
		for (k = 1; k < 27; k++) {
			if (!((id[k] >= 'a' && id[k] <= 'z') ||
			    (id[k] >= '2' && id[k] <= '7')))
				bad++;
		}
		/* 128 bits in 26 characters: the last holds 3 bits. */
		if (strchr("aeimquy4", id[26]) == NULL)
			bad++;
	}
	is_int(bad, 0, "%d Message-IDs are <26 base32@domain>", MSGID_COUNT);
	qsort(ids, MSGID_COUNT, sizeof(*ids), msgid_cmp);
	for (i = 1; i < MSGID_COUNT; i++) {
		if (ids[i] != NULL && ids[i - 1] != NULL &&
		    strcmp(ids[i], ids[i - 1]) == 0)
			dups++;
	}
	is_int(dups, 0, "%d Message-IDs are all different", MSGID_COUNT);
	for (i = 0; i < MSGID_COUNT; i++)
		free(ids[i]);
	free(ids);

	ok(mime_message_id("bad domain") == NULL, "Message-ID: bad domain");
	ok(mime_message_id("a..b") == NULL, "Message-ID: empty label");
	ok(mime_message_id(NULL) == NULL, "Message-ID: no domain");
}

/* Replace each boundary by BOUNDARY<n>, numbered by first appearance. */
static char *
mask_boundaries(const char *s)
{
	char	 seen[8][40], *out, *o;
	size_t	 nseen = 0, i, k;
	int	 found;

	out = o = xmalloc(strlen(s) + 1);
	while (*s != '\0') {
		if (strncmp(s, "=_sp", 4) != 0) {
			*o++ = *s++;
			continue;
		}
		for (k = 4; k < 30 && ((s[k] >= '2' && s[k] <= '7') ||
		    (s[k] >= 'a' && s[k] <= 'z')); k++)
			;
		if (k != 30) {
			*o++ = *s++;
			continue;
		}
		for (found = 0, i = 0; i < nseen; i++) {
			if (memcmp(seen[i], s, 30) == 0) {
				found = 1;
				break;
			}
		}
		if (!found && nseen < nitems(seen))
			memcpy(seen[nseen++], s, 30);
		o += sprintf(o, "BOUNDARY%zu", i + 1);
		s += 30;
	}
	*o = '\0';
	return out;
}

/* The full text of one message against tests/data/mime_build/. */
static void
test_golden(void)
{
	struct mime_out		 o;
	struct mime_msg		 m;
	struct letter_doc	*doc;
	const char		*err;
	char			*path, *want, *got;
	size_t			 wlen, i, line;

	doc = shape_doc("mixed");
	out_defaults(&o, 1700000000);
	o.doc = doc;
	o.message_id = "<golden@riverside.example>";
	o.in_reply_to = "<parent@mail.patient.example>";
	if (!ok(mime_build(&o, &m, &err) == 0, "golden: built")) {
		letter_doc_free(&doc);
		return;
	}
	got = mask_boundaries(m.data);
	path = srcdir_file("tests/data/mime_build/golden.eml");
	want = read_file(path, &wlen);
	if (getenv("SEALPOST_GOLDEN_WRITE") != NULL) {
		FILE	*fp = fopen(path, "wb");

		if (fp != NULL) {
			fputs(got, fp);
			fclose(fp);
		}
	}
	if (want == NULL)
		ok(0, "golden: %s is missing", path);
	else if (!ok(strcmp(got, want) == 0, "golden: message as expected")) {
		for (i = 0, line = 1; got[i] != '\0' && got[i] == want[i];
		    i++)
			line += got[i] == '\n';
		diag("  first difference on line %zu", line);
	}
	ok(strstr(m.data, "BOUNDARY") == NULL && strstr(got, "BOUNDARY1") &&
	    strstr(got, "BOUNDARY2"), "golden: two random boundaries");
	free(want);
	free(path);
	free(got);
	mime_msg_clear(&m);
	letter_doc_free(&doc);
}

/* The documents behind the shapes (also used by --dump). */
static struct letter_doc *
shape_doc(const char *shape)
{
	static const unsigned char	 pdf[] = "%PDF-1.4\n%\xe2\xe3\xcf\xd3\n"
	    "1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n";
	unsigned char			 bin[256];
	struct letter_doc		*doc;
	const char			*subject = "Your blood test results "
	    "\xe2\x80\x93 R\xc3\xa9sultats \xf0\x9f\xa9\xb8";
	const char			*text = "Dear Zo\xc3\xab,\n\n"
	    "Your results are normal.  No action is needed.\n"
	    "From the practice team.\n";
	const char			*html = "<p>Dear Zo\xc3\xab,</p>\n"
	    "<p>Your results are <b>normal</b>.</p>\n";
	size_t				 i;

	if (strcmp(shape, "text") == 0)
		return doc_make(subject, text, NULL);
	if (strcmp(shape, "html") == 0)
		return doc_make(subject, NULL, html);
	if (strcmp(shape, "alt") == 0)
		return doc_make(subject, text, html);
	doc = doc_make(subject, text, html);
	for (i = 0; i < sizeof(bin); i++)
		bin[i] = (unsigned char)i;
	doc_attach(doc, "results.pdf", "application/pdf", pdf,
	    sizeof(pdf) - 1);
	doc_attach(doc, "R\xc3\xa9sultat M\xc3\xbcller.bin",
	    "application/octet-stream", bin, sizeof(bin));
	return doc;
}

/* Print one built message for the Python integration test. */
static int
dump(const char *shape)
{
	struct mime_out		 o;
	struct mime_msg		 m;
	struct letter_doc	*doc = NULL;
	const char		*err;
	static const struct mime_header extra[] = {
		{ "Auto-Submitted", "auto-generated" },
		{ "X-Sealpost-Letter", "42" },
	};

	out_defaults(&o, 1700000000);
	o.from_name = "Riverside Surgery \xe2\x80\x93 Dr. O'Brien";
	o.headers = extra;
	o.nheaders = nitems(extra);
	if (strcmp(shape, "notice") == 0) {
		o.subject = "A letter is waiting \xe2\x80\x93 Riverside";
		o.notice = "A letter is waiting for you.\n";
	} else if (strcmp(shape, "text") == 0 || strcmp(shape, "alt") == 0 ||
	    strcmp(shape, "mixed") == 0)
		o.doc = doc = shape_doc(shape);
	else {
		fprintf(stderr, "unknown shape %s\n", shape);
		return 2;
	}
	if (mime_build(&o, &m, &err) != 0) {
		fprintf(stderr, "build: %s\n", err);
		letter_doc_free(&doc);
		return 1;
	}
	fwrite(m.data, 1, m.len, stdout);
	mime_msg_clear(&m);
	letter_doc_free(&doc);
	return 0;
}

int
main(int argc, char **argv)
{
	if (hash_init() != 0) {
		ok(0, "hash_init");
		return tap_done();
	}
	if (argc == 3 && strcmp(argv[1], "--dump") == 0)
		return dump(argv[2]);

	test_encode_table();
	test_encode_errors();
	test_encode_random();
	test_shapes();
	test_text_bodies();
	test_filenames();
	test_headers();
	test_injection();
	test_addresses();
	test_message_ids();
	test_golden();
	return tap_done();
}
