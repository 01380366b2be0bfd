/*
 * mime.c - inbound RFC 5322 / MIME messages into a letter document.
 *
 * Owns the prefilter that bounds a message before libetpan sees it, the walk
 * of libetpan's MIME tree into a struct letter_doc, charset conversion to
 * UTF-8 (iconv, with a cache of converters kept open so that nothing has to
 * be loaded once the sandbox's seccomp filter is in place) and the RFC 2231
 * parameter decoding that libetpan 1.9.4 lacks.  Also done here rather than
 * by libetpan, which gets them wrong: quoted-printable (qp_decode), RFC 2047
 * words in the subject and filename= (decode_words), and multiparts with
 * an empty part or no close delimiter (walk_repair).  The only file besides
 * the SMTP/IMAP workers that includes libetpan headers.
 *
 * Public: mime_limits_default, mime_init, mime_prefilter, mime_parse_letter,
 * mime_parse_letter_unfiltered; for dsn.c (mime_int.h): mime_utf8_len,
 * mime_type_name.
 *
 * Prefilter (reference/libetpan.md sections 8 and 11):
 *  - size, top header section size, header line length, NUL in the top
 *    header section;
 *  - nesting depth and part count, from a line scanner that follows
 *    boundaries and message/rfc822 the way libetpan does (libetpan recurses
 *    without bound: deep input would exhaust the stack);
 *  - every Content-Type field anywhere in the message, raw and after RFC 2047
 *    decoding (libetpan decodes the whole Content-Type value before parsing
 *    it): a boundary parameter that is empty or holds a quote or a backslash
 *    is "bad_boundary".  Debian 12's mailmime_extract_boundary() overflows
 *    the heap on boundary="\"".  Encoded words in UTF-16/32/UCS/UTF-7 in a
 *    Content-Type field are "bad_content_type" (they could smuggle a quote).
 *
 * Letter:
 *  - a leading mbox "From " line is skipped;
 *  - subject: RFC 2047 decoded to UTF-8, unfolded, controls become spaces;
 *  - bodies: the first text/plain and the first text/html that are neither
 *    attachments (disposition "attachment" or a filename) nor inside an
 *    attached message; transfer-decoded, converted to UTF-8, CRLF and CR
 *    become LF;
 *  - attachments: every other non-empty leaf part, and each attached
 *    message/rfc822 as one ".eml" attachment (its text is not the letter);
 *    filename from RFC 2231 filename*, RFC 2047 filename=, RFC 2231 name*,
 *    name=, else "attachment-N.bin"; the last path component only, controls
 *    replaced; content type "type/subtype" lower-cased;
 *  - a letter needs content: a subject, a body or an attachment that is not
 *    all white space, else "no_body"; with no text or HTML body (only a
 *    subject or attachments) the text is "".
 *
 * Text conversion: a declared charset iconv knows is converted (invalid
 * bytes become U+FFFD); us-ascii, unknown and undeclared charsets are taken
 * as UTF-8 when the bytes are valid UTF-8, else as windows-1252; ISO-8859-1
 * is read as windows-1252 (what senders mean).  NUL becomes U+FFFD.  In the
 * sandbox a charset outside the preloaded set (conv_preload) cannot be
 * loaded and is treated as unknown.
 *
 * Error policy: 0, or -1 with a struct letter_error (stable code, message
 * without content).  Not thread-safe: it runs in the one-threaded parse
 * child (sandbox.c) and in unit tests.
 */

#include "build.h"

#include <sys/types.h>

#include <ctype.h>
#include <errno.h>
#include <iconv.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libetpan/libetpan.h>

#include "letter.h"
#include "log.h"
#include "mime.h"
#include "mime_int.h"
#include "util.h"

#define MIME_DEFAULT_MAX_SIZE		(64u * 1024 * 1024)
#define MIME_DEFAULT_MAX_HEADER		(256u * 1024)
#define MIME_DEFAULT_MAX_LINE		(32u * 1024)
#define MIME_DEFAULT_MAX_DEPTH		32
#define MIME_DEFAULT_MAX_PARTS		1000
#define MIME_DEFAULT_MAX_ATTACHMENTS	100

#define MIME_CT_MAX		(16 * 1024)	/* one Content-Type value */
#define MIME_CONV_CACHE		64		/* kept-open converters */
#define MIME_CHARSET_MAX	40		/* longest charset name */
#define MIME_2231_SECTIONS	64		/* RFC 2231 continuations */
#define MIME_FILENAME_MAX	200		/* bytes of a filename */
#define MIME_SUBJECT_MAX	998		/* bytes of a subject */
#define MIME_MAX_REPAIRS	16		/* multiparts split by hand */

/* A growable byte buffer. */
struct buf {
	char		*p;
	size_t		 len;
	size_t		 cap;
};

/* One kept converter: cd is (iconv_t)-1 for a name iconv refused. */
struct conv_entry {
	char		 name[MIME_CHARSET_MAX];
	iconv_t		 cd;
};

/* The current header block's Content-Type, as the structure scan sees it. */
struct scan_ct {
	int		 seen;
	int		 multipart;
	int		 message;	/* message/rfc822 */
	int		 digest;	/* multipart/digest */
	char		 boundary[MIME_CT_MAX];
	size_t		 blen;
};

/* An open container in the structure scan: a multipart or a message. */
struct scan_frame {
	char		*boundary;	/* NULL for message/rfc822 */
	size_t		 blen;
	int		 digest;
};

/* State of the walk over libetpan's tree. */
struct walk {
	const struct mime_limits *lim;
	struct letter_doc	*doc;
	struct letter_error	*err;
	size_t			 nodes;
	size_t			 repairs;
};

static void	 buf_grow(struct buf *, size_t);
static void	 buf_add(struct buf *, const void *, size_t);
static void	 buf_addc(struct buf *, int);
static void	 buf_repl(struct buf *);
static char	*buf_cstr(struct buf *);
static void	 buf_wipe(struct buf *);
static int	 utf8_valid(const char *, size_t);
static void	 utf8_sanitize(struct buf *, const char *, size_t);
static void	 latin1_to_utf8(struct buf *, const char *, size_t);
static iconv_t	 conv_get(const char *);
static void	 conv_iconv(iconv_t, struct buf *, const char *, size_t);
static void	 conv_to_utf8(const char *, struct buf *, const char *, size_t);
static int	 conv_hook(const char *, const char *, const char *, size_t,
		    char *, size_t *);
static int	 mime_reject(struct letter_error *, int, const char *,
		    const char *, ...) __attribute__((format(printf, 4, 5)));
static int	 ci_prefix(const char *, size_t, const char *);
static size_t	 skip_cfws(const char *, size_t, size_t);
static int	 is_token_char(int);
static int	 ew_decode(const char *, size_t, struct buf *, int *);
static int	 check_boundaries(const char *, size_t);
static int	 check_content_type(const char *, size_t,
		    struct letter_error *);
static int	 pf_header(const char *, size_t, const struct mime_limits *,
		    struct letter_error *);
static int	 pf_fields(const char *, size_t, struct letter_error *);
static int	 is_field_line(const char *, size_t, size_t *);
static void	 scan_ct_reset(struct scan_ct *);
static void	 scan_ct_parse(const char *, size_t, struct scan_ct *);
static int	 pf_structure(const char *, size_t, const struct mime_limits *,
		    struct letter_error *);
static size_t	 ew_word(const char *, size_t, size_t, char *,
		    struct buf *);
static char	*decode_words(const char *);
static char	*subject_get(struct mailimf_fields *);
static char	*part_ctype(struct mailmime_content *);
static char	*rfc2231_join(const char *const *, const char *const *, size_t,
		    const char *);
static char	*disp_filename(struct mailmime_disposition *);
static char	*ct_filename(struct mailmime_content *);
static char	*filename_clean(const char *);
static char	*text_normalise(const char *, size_t, const char *);
static int	 hexval(int);
static void	 qp_decode(struct buf *, const char *, size_t);
static int	 part_decode(struct walk *, struct mailmime_data *, int,
		    char **, size_t *);
static int	 walk_leaf(struct walk *, struct mailmime *, int);
static int	 walk_node(struct walk *, struct mailmime *, size_t);
static int	 walk_repair(struct walk *, struct mailmime *, size_t);
static int	 delim_line(const char *, size_t, const char *, size_t);
static int	 has_empty_part(struct mailmime *);
static int	 repair_part(struct walk *, const char *, size_t, size_t);
static void	 doc_add_attachment(struct letter_doc *, char *, char *,
		    char *, size_t);
static int	 doc_has_content(const struct letter_doc *);

static struct conv_entry conv_cache[MIME_CONV_CACHE];
static size_t		 conv_ncache;
static int		 mime_ready;

/*
 * Charsets opened by mime_init(): glibc loads a gconv module on first use
 * and keeps it while a converter is open, so after this no file is opened.
 */
static const char *const conv_preload[] = {
	"WINDOWS-1252", "ISO-8859-2", "ISO-8859-3", "ISO-8859-4",
	"ISO-8859-5", "ISO-8859-6", "ISO-8859-7", "ISO-8859-8", "ISO-8859-9",
	"ISO-8859-10", "ISO-8859-13", "ISO-8859-14", "ISO-8859-15",
	"ISO-8859-16", "WINDOWS-1250", "WINDOWS-1251", "WINDOWS-1253",
	"WINDOWS-1254", "WINDOWS-1255", "WINDOWS-1256", "WINDOWS-1257",
	"WINDOWS-1258", "KOI8-R", "KOI8-U", "CP850", "CP437", "CP866",
	"MACINTOSH", "UTF-16", "UTF-16BE", "UTF-16LE", "UTF-32", "UTF-7",
	"SHIFT_JIS", "CP932", "EUC-JP", "ISO-2022-JP-2", "GBK", "GB18030",
	"BIG5", "BIG5-HKSCS", "EUC-KR", "CP949", "ISO-2022-KR", "TIS-620",
	"EUC-TW"
};

/* Fill the default limits. */
void
mime_limits_default(struct mime_limits *lim)
{
	memset(lim, 0, sizeof(*lim));
	lim->max_size = MIME_DEFAULT_MAX_SIZE;
	lim->max_header_size = MIME_DEFAULT_MAX_HEADER;
	lim->max_line = MIME_DEFAULT_MAX_LINE;
	lim->max_depth = MIME_DEFAULT_MAX_DEPTH;
	lim->max_parts = MIME_DEFAULT_MAX_PARTS;
	lim->max_attachments = MIME_DEFAULT_MAX_ATTACHMENTS;
	lim->max_attachment_size = MIME_DEFAULT_MAX_SIZE;
}

/* Preload converters and set libetpan's process-wide knobs. */
void
mime_init(void)
{
	struct buf	 b;
	size_t		 i;
	iconv_t		 cd;

	if (mime_ready)
		return;
	mime_ready = 1;

	/* Never back a big string with a temporary file. */
	mmap_string_set_ceil((size_t)-1);
	/* libetpan's RFC 2047 decoding converts through conv_to_utf8(). */
	extended_charconv = conv_hook;

	memset(&b, 0, sizeof(b));
	for (i = 0; i < nitems(conv_preload); i++) {
		if ((cd = conv_get(conv_preload[i])) == (iconv_t)-1)
			continue;
		b.len = 0;
		conv_iconv(cd, &b, "a", 1);
	}
	buf_wipe(&b);
}

/* --- buffers and UTF-8 ---------------------------------------------------- */

/* Make room for n more bytes (and a NUL). */
static void
buf_grow(struct buf *b, size_t n)
{
	size_t	 want;

	if (n >= SIZE_MAX / 2 - b->len)
		log_fatalx("mime: buffer overflow");
	want = b->len + n + 1;
	if (want <= b->cap)
		return;
	if (want < b->cap * 2)
		want = b->cap * 2;
	if (want < 64)
		want = 64;
	b->p = xreallocarray(b->p, 1, want);
	b->cap = want;
}

/* Append n bytes. */
static void
buf_add(struct buf *b, const void *s, size_t n)
{
	buf_grow(b, n);
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

/* Append one byte. */
static void
buf_addc(struct buf *b, int c)
{
	char	 ch = (char)c;

	buf_add(b, &ch, 1);
}

/* Append U+FFFD REPLACEMENT CHARACTER. */
static void
buf_repl(struct buf *b)
{
	buf_add(b, "\xef\xbf\xbd", 3);
}

/* Hand the buffer over as a NUL-terminated string. */
static char *
buf_cstr(struct buf *b)
{
	char	*s;

	buf_grow(b, 0);
	b->p[b->len] = '\0';
	s = b->p;
	memset(b, 0, sizeof(*b));
	return s;
}

/* Wipe and free the buffer's storage. */
static void
buf_wipe(struct buf *b)
{
	if (b->p != NULL) {
		explicit_bzero(b->p, b->cap);
		free(b->p);
	}
	memset(b, 0, sizeof(*b));
}

/* Length of the well-formed UTF-8 sequence at s (n > 0 bytes), or 0;
 * dsn.c cleans its values with it too. */
size_t
mime_utf8_len(const unsigned char *s, size_t n)
{
	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		return (n >= 2 && (s[1] & 0xc0) == 0x80) ? 2 : 0;
	if (s[0] >= 0xe0 && s[0] <= 0xef) {
		if (n < 3 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80)
			return 0;
		if (s[0] == 0xe0 && s[1] < 0xa0)
			return 0;	/* overlong */
		if (s[0] == 0xed && s[1] >= 0xa0)
			return 0;	/* surrogate */
		return 3;
	}
	if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		if (n < 4 || (s[1] & 0xc0) != 0x80 ||
		    (s[2] & 0xc0) != 0x80 || (s[3] & 0xc0) != 0x80)
			return 0;
		if (s[0] == 0xf0 && s[1] < 0x90)
			return 0;
		if (s[0] == 0xf4 && s[1] >= 0x90)
			return 0;
		return 4;
	}
	return 0;
}

/* Is s[0..n) well-formed UTF-8? */
static int
utf8_valid(const char *s, size_t n)
{
	const unsigned char	*u = (const unsigned char *)s;
	size_t			 i, k;

	for (i = 0; i < n; i += k) {
		if ((k = mime_utf8_len(u + i, n - i)) == 0)
			return 0;
	}
	return 1;
}

/* Append s as UTF-8: invalid sequences and NUL become U+FFFD. */
static void
utf8_sanitize(struct buf *b, const char *s, size_t n)
{
	const unsigned char	*u = (const unsigned char *)s;
	size_t			 i, k;

	buf_grow(b, n);
	for (i = 0; i < n; i += k) {
		if ((k = mime_utf8_len(u + i, n - i)) == 0 || u[i] == 0) {
			buf_repl(b);
			k = 1;
		} else
			buf_add(b, u + i, k);
	}
}

/* Append ISO-8859-1 bytes as UTF-8 (the converter of last resort). */
static void
latin1_to_utf8(struct buf *b, const char *s, size_t n)
{
	const unsigned char	*u = (const unsigned char *)s;
	size_t			 i;

	buf_grow(b, n * 2);
	for (i = 0; i < n; i++) {
		if (u[i] == 0)
			buf_repl(b);
		else if (u[i] < 0x80)
			buf_addc(b, u[i]);
		else {
			buf_addc(b, 0xc0 | (u[i] >> 6));
			buf_addc(b, 0x80 | (u[i] & 0x3f));
		}
	}
}

/* --- charset conversion --------------------------------------------------- */

/* A converter from `name' to UTF-8, opened once and kept, or (iconv_t)-1. */
static iconv_t
conv_get(const char *name)
{
	struct conv_entry	*e;
	size_t			 i;
	iconv_t			 cd;

	if (strlen(name) >= MIME_CHARSET_MAX)
		return (iconv_t)-1;
	for (i = 0; i < conv_ncache; i++) {
		if (strcasecmp(conv_cache[i].name, name) == 0)
			return conv_cache[i].cd;
	}
	cd = iconv_open("UTF-8", name);
	if (conv_ncache < MIME_CONV_CACHE) {
		e = &conv_cache[conv_ncache++];
		strlcpy_sp(e->name, name, sizeof(e->name));
		e->cd = cd;
	} else if (cd != (iconv_t)-1) {
		/* Cache full: a converter for this call only would leak. */
		iconv_close(cd);
		cd = (iconv_t)-1;
	}
	return cd;
}

/* Convert through iconv, appending UTF-8; bad input becomes U+FFFD. */
static void
conv_iconv(iconv_t cd, struct buf *b, const char *s, size_t n)
{
	char	*ip = (char *)(uintptr_t)s, *op;
	size_t	 il = n, ol, r;

	iconv(cd, NULL, NULL, NULL, NULL);
	buf_grow(b, n * 2 + 16);
	while (il > 0) {
		op = b->p + b->len;
		ol = b->cap - b->len - 1;
		r = iconv(cd, &ip, &il, &op, &ol);
		b->len = (size_t)(op - b->p);
		if (r != (size_t)-1)
			break;
		if (errno == E2BIG) {
			buf_grow(b, il * 4 + 16);
			continue;
		}
		buf_repl(b);
		if (errno != EILSEQ)
			break;		/* EINVAL: truncated at the end */
		ip++;
		il--;
	}
	for (;;) {
		buf_grow(b, 32);
		op = b->p + b->len;
		ol = b->cap - b->len - 1;
		r = iconv(cd, NULL, NULL, &op, &ol);
		b->len = (size_t)(op - b->p);
		if (r != (size_t)-1 || errno != E2BIG)
			break;
	}
}

/* Append s[0..n), in `charset' (may be NULL), as valid UTF-8. */
static void
conv_to_utf8(const char *charset, struct buf *b, const char *s, size_t n)
{
	char		 name[MIME_CHARSET_MAX];
	const char	*cs = charset != NULL ? charset : "";
	struct buf	 tmp;
	size_t		 i, j;
	iconv_t		 cd;

	/* Normalise: no quotes or spaces, lower case, bounded, plain. */
	for (i = 0, j = 0; cs[i] != '\0' && j < sizeof(name) - 1; i++) {
		if (cs[i] == '"' || cs[i] == ' ' || cs[i] == '\t')
			continue;
		if (!isalnum((unsigned char)cs[i]) &&
		    strchr("-_.:", cs[i]) == NULL)
			break;
		name[j++] = (char)tolower((unsigned char)cs[i]);
	}
	name[j] = '\0';
	if (cs[i] != '\0')
		name[0] = '\0';	/* long or odd: taken as undeclared */

	if (strcmp(name, "utf-8") == 0 || strcmp(name, "utf8") == 0 ||
	    ((name[0] == '\0' || strcmp(name, "us-ascii") == 0 ||
	    strcmp(name, "ascii") == 0) && utf8_valid(s, n))) {
		utf8_sanitize(b, s, n);
		return;
	}
	if (name[0] == '\0' || strcmp(name, "us-ascii") == 0 ||
	    strcmp(name, "ascii") == 0 || strcmp(name, "iso-8859-1") == 0 ||
	    strcmp(name, "iso8859-1") == 0 || strcmp(name, "iso_8859-1") == 0 ||
	    strcmp(name, "latin1") == 0 || strcmp(name, "l1") == 0)
		strlcpy_sp(name, "windows-1252", sizeof(name));
	else if (strcmp(name, "gb2312") == 0)
		strlcpy_sp(name, "gbk", sizeof(name));
	else if (strcmp(name, "ks_c_5601-1987") == 0)
		strlcpy_sp(name, "cp949", sizeof(name));
	else if (strcmp(name, "iso-8859-8-i") == 0)
		strlcpy_sp(name, "iso-8859-8", sizeof(name));
	else if (strcmp(name, "iso-2022-jp") == 0)
		strlcpy_sp(name, "iso-2022-jp-2", sizeof(name));

	if ((cd = conv_get(name)) == (iconv_t)-1) {
		/* Unknown charset: keep UTF-8 if it is, else windows-1252. */
		if (utf8_valid(s, n)) {
			utf8_sanitize(b, s, n);
			return;
		}
		if ((cd = conv_get("windows-1252")) == (iconv_t)-1) {
			latin1_to_utf8(b, s, n);
			return;
		}
	}
	memset(&tmp, 0, sizeof(tmp));
	conv_iconv(cd, &tmp, s, n);
	if (memchr(tmp.p, '\0', tmp.len) != NULL || !utf8_valid(tmp.p, tmp.len))
		utf8_sanitize(b, tmp.p, tmp.len);
	else
		buf_add(b, tmp.p, tmp.len);
	buf_wipe(&tmp);
}

/* libetpan's extended_charconv hook: conversions to UTF-8 come here. */
static int
conv_hook(const char *tocode, const char *fromcode, const char *s, size_t n,
    char *result, size_t *result_len)
{
	struct buf	 b;

	if (strcasecmp(tocode, "utf-8") != 0 && strcasecmp(tocode, "utf8") != 0)
		return MAIL_CHARCONV_ERROR_UNKNOWN_CHARSET;
	memset(&b, 0, sizeof(b));
	conv_to_utf8(fromcode, &b, s, n);
	if (b.len > *result_len) {
		buf_wipe(&b);
		return MAIL_CHARCONV_ERROR_MEMORY;
	}
	if (b.len > 0)
		memcpy(result, b.p, b.len);
	*result_len = b.len;
	buf_wipe(&b);
	return MAIL_CHARCONV_NO_ERROR;
}

/* --- errors --------------------------------------------------------------- */

/* Fill err and return -1. */
static int
mime_reject(struct letter_error *err, int status, const char *code,
    const char *fmt, ...)
{
	va_list	 ap;

	memset(err, 0, sizeof(*err));
	err->status = status;
	strlcpy_sp(err->code, code, sizeof(err->code));
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	return -1;
}

/* --- prefilter ------------------------------------------------------------ */

/* Does s[0..n) start with `prefix' (ASCII case-insensitive)? */
static int
ci_prefix(const char *s, size_t n, const char *prefix)
{
	size_t	 k = strlen(prefix);

	return n >= k && strncasecmp(s, prefix, k) == 0;
}

/* Skip white space, line breaks and (nested (comments)) from i. */
static size_t
skip_cfws(const char *s, size_t n, size_t i)
{
	size_t	 depth = 0;

	while (i < n) {
		if (depth > 0 && s[i] == '\\' && i + 1 < n)
			i += 2;
		else if (s[i] == '(') {
			depth++;
			i++;
		} else if (depth > 0 && s[i] == ')') {
			depth--;
			i++;
		} else if (depth > 0 || s[i] == ' ' || s[i] == '\t' ||
		    s[i] == '\r' || s[i] == '\n')
			i++;
		else
			break;
	}
	return i;
}

/* RFC 2045 token character. */
static int
is_token_char(int c)
{
	if (c <= 32 || c >= 127)
		return 0;
	return strchr("()<>@,;:\\\"/[]?=", c) == NULL;
}

/*
 * Decode every RFC 2047 encoded word of s[0..n) into bytes (no charset
 * conversion), the rest copied.  *danger is set when a word's charset is not
 * ASCII-compatible (its decoded bytes say nothing about quotes).  Returns
 * whether any word was found.  Linear: the positions of the next "?" and
 * "?=" only move forward.
 */
/* encoded-word = "=?" charset ["*" lang] "?" ("B" / "Q") "?" text "?=" */
static int
ew_decode(const char *s, size_t n, struct buf *out, int *danger)
{
	static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
			    "abcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t		 i = 0, cs, ce = 0, ts, te = 0, k;
	unsigned int	 acc, bits;
	int		 found = 0, enc;
	const char	*q;
	char		 cset[MIME_CHARSET_MAX], hex[3];

	while (i < n) {
		if (s[i] != '=' || i + 1 >= n || s[i + 1] != '?') {
			buf_addc(out, s[i++]);
			continue;
		}
		cs = i + 2;
		if (ce < cs) {
			q = memchr(s + cs, '?', n - cs);
			ce = q != NULL ? (size_t)(q - s) : n;
		}
		if (ce + 3 >= n || s[ce + 2] != '?') {
			buf_addc(out, s[i++]);
			continue;
		}
		enc = (unsigned char)s[ce + 1];
		ts = ce + 3;
		if (te < ts) {
			for (te = ts; te + 1 < n && !(s[te] == '?' &&
			    s[te + 1] == '='); te++)
				;
		}
		if (te + 1 >= n || (enc != 'b' && enc != 'B' && enc != 'q' &&
		    enc != 'Q')) {
			buf_addc(out, s[i++]);
			continue;
		}
		found = 1;
		for (k = 0; k < ce - cs && k < sizeof(cset) - 1; k++)
			cset[k] = (char)tolower((unsigned char)s[cs + k]);
		cset[k] = '\0';
		if (strstr(cset, "16") != NULL || strstr(cset, "32") != NULL ||
		    strstr(cset, "ucs") != NULL ||
		    strstr(cset, "utf-7") != NULL ||
		    strstr(cset, "utf7") != NULL || ce - cs >= sizeof(cset))
			*danger = 1;
		if (enc == 'q' || enc == 'Q') {
			for (k = ts; k < te; k++) {
				if (s[k] == '_')
					buf_addc(out, ' ');
				else if (s[k] == '=' && k + 2 < te &&
				    isxdigit((unsigned char)s[k + 1]) &&
				    isxdigit((unsigned char)s[k + 2])) {
					hex[0] = s[k + 1];
					hex[1] = s[k + 2];
					hex[2] = '\0';
					buf_addc(out,
					    (int)strtoul(hex, NULL, 16));
					k += 2;
				} else
					buf_addc(out, s[k]);
			}
		} else {
			acc = 0;
			bits = 0;
			for (k = ts; k < te; k++) {
				if (s[k] == '\0' ||
				    (q = strchr(b64, s[k])) == NULL)
					continue;
				acc = (acc << 6) | (unsigned int)(q - b64);
				bits += 6;
				if (bits >= 8) {
					bits -= 8;
					buf_addc(out,
					    (int)((acc >> bits) & 0xff));
				}
			}
		}
		i = te + 2;
	}
	return found;
}

/*
 * Is every `boundary' parameter in this Content-Type value safe for
 * libetpan?  0 if so, -1 if one is empty, holds a quote or a backslash, or
 * has a comment around its "=".  Conservative: any "boundary" followed by
 * "=" counts, wherever it is.  Linear: the search resumes after each value.
 */
static int
check_boundaries(const char *v, size_t n)
{
	size_t	 i = 0, j, k;

	while (i + 8 <= n) {
		if (strncasecmp(v + i, "boundary", 8) != 0) {
			i++;
			continue;
		}
		for (j = i + 8; j < n && (v[j] == ' ' || v[j] == '\t' ||
		    v[j] == '\r' || v[j] == '\n'); j++)
			;
		if (j < n && v[j] == '(')
			return -1;
		if (j >= n || v[j] != '=') {
			i = j > i + 8 ? j : i + 8;
			continue;	/* not a parameter (or boundary*) */
		}
		for (j++; j < n && (v[j] == ' ' || v[j] == '\t' ||
		    v[j] == '\r' || v[j] == '\n'); j++)
			;
		if (j >= n || v[j] == ';' || v[j] == '(')
			return -1;	/* empty, or a comment */
		if (v[j] == '"') {
			for (k = j + 1; k < n && v[k] != '"'; k++) {
				if (v[k] == '\\')
					return -1;
			}
			if (k == j + 1)
				return -1;	/* "" */
		} else {
			for (k = j; k < n && v[k] != ';' && v[k] != ' ' &&
			    v[k] != '\t' && v[k] != '\r' && v[k] != '\n' &&
			    v[k] != '('; k++) {
				if (v[k] == '"' || v[k] == '\\')
					return -1;
			}
		}
		i = k + 1;
	}
	return 0;
}

/* Check one Content-Type value: raw, then with its encoded words decoded. */
static int
check_content_type(const char *v, size_t n, struct letter_error *err)
{
	struct buf	 d;
	int		 danger = 0, r = 0;

	if (check_boundaries(v, n) != 0)
		return mime_reject(err, 422, "bad_boundary",
		    "a Content-Type boundary parameter is empty or malformed");
	if (memmem(v, n, "=?", 2) == NULL)
		return 0;
	memset(&d, 0, sizeof(d));
	if (ew_decode(v, n, &d, &danger)) {
		if (danger)
			r = mime_reject(err, 422, "bad_content_type",
			    "a Content-Type field has an encoded word in a "
			    "charset that is not ASCII-compatible");
		else if (check_boundaries(d.p, d.len) != 0)
			r = mime_reject(err, 422, "bad_boundary",
			    "a Content-Type boundary parameter is empty or "
			    "malformed");
	}
	buf_wipe(&d);
	return r;
}

/*
 * Is the line at s[0..n) a header field ("name:")?  *vstart is set to the
 * offset after the colon.  field-name = 1*(%d33-57 / %d59-126), then WSP.
 */
static int
is_field_line(const char *s, size_t n, size_t *vstart)
{
	size_t	 i = 0;

	while (i < n && (unsigned char)s[i] > 32 && (unsigned char)s[i] < 127 &&
	    s[i] != ':')
		i++;
	if (i == 0)
		return 0;
	while (i < n && (s[i] == ' ' || s[i] == '\t'))
		i++;
	if (i >= n || s[i] != ':')
		return 0;
	*vstart = i + 1;
	return 1;
}

/*
 * The top header section: its size, each line's length, no NUL.  It ends
 * at the first empty line or, as for libetpan, at the first line that is
 * neither a field nor a continuation.
 */
static int
pf_header(const char *raw, size_t len, const struct mime_limits *lim,
    struct letter_error *err)
{
	const char	*nl;
	size_t		 pos = 0, end, clen, vs;

	while (pos < len) {
		nl = memchr(raw + pos, '\n', len - pos);
		end = nl != NULL ? (size_t)(nl - raw) : len;
		clen = end - pos;
		if (clen > 0 && raw[end - 1] == '\r')
			clen--;
		if (end - pos > lim->max_line)
			return mime_reject(err, 413, "line_too_long",
			    "a header line is longer than %zu bytes",
			    lim->max_line);
		if (clen == 0)
			break;
		if (raw[pos] != ' ' && raw[pos] != '\t' &&
		    !is_field_line(raw + pos, clen, &vs))
			break;
		if (memchr(raw + pos, '\0', end - pos) != NULL)
			return mime_reject(err, 422, "nul_in_header",
			    "the header section contains a NUL byte");
		if (end >= lim->max_header_size)
			return mime_reject(err, 413, "header_too_large",
			    "the header section is larger than %zu bytes",
			    lim->max_header_size);
		pos = end + 1;
	}
	return 0;
}

/*
 * Every Content-Type field that starts a line anywhere in the message (after
 * LF, CRLF or a bare CR: more places than libetpan looks), unfolded.
 */
static int
pf_fields(const char *raw, size_t len, struct letter_error *err)
{
	struct buf	 v;
	size_t		 pos, i, vs;
	int		 r = 0;

	memset(&v, 0, sizeof(v));
	for (pos = 0; pos < len && r == 0; pos++) {
		if (pos > 0 && raw[pos - 1] != '\n' && raw[pos - 1] != '\r')
			continue;
		if (!ci_prefix(raw + pos, len - pos, "content-type"))
			continue;
		i = pos + 12;
		while (i < len && (raw[i] == ' ' || raw[i] == '\t'))
			i++;
		if (i >= len || raw[i] != ':')
			continue;
		vs = i + 1;
		/* The value runs until a line break not followed by WSP. */
		for (i = vs; i < len; i++) {
			if (raw[i] != '\r' && raw[i] != '\n')
				continue;
			if (raw[i] == '\r' && i + 1 < len && raw[i + 1] == '\n')
				i++;
			if (i + 1 >= len || (raw[i + 1] != ' ' &&
			    raw[i + 1] != '\t'))
				break;
		}
		if (i - vs > MIME_CT_MAX) {
			r = mime_reject(err, 413, "header_too_large",
			    "a Content-Type field is longer than %d bytes",
			    MIME_CT_MAX);
			break;
		}
		v.len = 0;
		buf_add(&v, raw + vs, (i < len ? i : len) - vs);
		r = check_content_type(v.p, v.len, err);
	}
	buf_wipe(&v);
	return r;
}

/* Forget the last header block's Content-Type (not the big buffer). */
static void
scan_ct_reset(struct scan_ct *ct)
{
	ct->seen = ct->multipart = ct->message = ct->digest = 0;
	ct->blen = 0;
}

/*
 * Parse a Content-Type value the way libetpan would for the structure scan:
 * type "/" subtype *(";" attribute "=" value), encoded words decoded.
 */
static void
scan_ct_parse(const char *raw, size_t rawlen, struct scan_ct *ct)
{
	struct buf	 d;
	const char	*v;
	size_t		 n, i, ts, te, ss, se, as, ae, k;
	int		 danger = 0, is_boundary;

	memset(&d, 0, sizeof(d));
	if (memmem(raw, rawlen, "=?", 2) != NULL &&
	    ew_decode(raw, rawlen, &d, &danger)) {
		v = d.p;
		n = d.len;
	} else {
		v = raw;
		n = rawlen;
	}

	i = skip_cfws(v, n, 0);
	for (ts = i; i < n && is_token_char((unsigned char)v[i]); i++)
		;
	te = i;
	i = skip_cfws(v, n, i);
	if (te == ts || i >= n || v[i] != '/')
		goto out;
	i = skip_cfws(v, n, i + 1);
	for (ss = i; i < n && is_token_char((unsigned char)v[i]); i++)
		;
	se = i;
	if (se == ss)
		goto out;
	ct->seen = 1;
	if (te - ts == 9 && strncasecmp(v + ts, "multipart", 9) == 0) {
		ct->multipart = 1;
		ct->digest = se - ss == 6 &&
		    strncasecmp(v + ss, "digest", 6) == 0;
	} else if (te - ts == 7 && strncasecmp(v + ts, "message", 7) == 0 &&
	    se - ss == 6 && strncasecmp(v + ss, "rfc822", 6) == 0)
		ct->message = 1;

	/* Parameters: the first "boundary" wins, as in libetpan. */
	for (;;) {
		i = skip_cfws(v, n, i);
		if (i >= n || v[i] != ';')
			break;
		i = skip_cfws(v, n, i + 1);
		for (as = i; i < n && is_token_char((unsigned char)v[i]); i++)
			;
		ae = i;
		i = skip_cfws(v, n, i);
		if (ae == as || i >= n || v[i] != '=')
			break;
		i = skip_cfws(v, n, i + 1);
		is_boundary = ae - as == 8 &&
		    strncasecmp(v + as, "boundary", 8) == 0 && ct->blen == 0;
		if (i < n && v[i] == '"') {
			for (i++, k = 0; i < n && v[i] != '"'; i++) {
				if (v[i] == '\\' && i + 1 < n)
					i++;
				if (is_boundary && k < sizeof(ct->boundary))
					ct->boundary[k++] = v[i];
			}
			if (i >= n)
				break;
			i++;
		} else {
			for (k = 0; i < n && is_token_char((unsigned char)v[i]);
			    i++) {
				if (is_boundary && k < sizeof(ct->boundary))
					ct->boundary[k++] = v[i];
			}
		}
		if (is_boundary)
			ct->blen = k;
	}
out:
	buf_wipe(&d);
}

/*
 * Follow the MIME structure line by line: a stack of open multiparts (their
 * boundaries) and message/rfc822 parts, as libetpan will recurse into them.
 * Bounds the depth and the number of parts before libetpan recurses.
 */
static int
pf_structure(const char *raw, size_t len, const struct mime_limits *lim,
    struct letter_error *err)
{
	struct scan_frame	*fr;
	struct scan_ct		*ct;
	struct buf		 fv;
	const char		*s, *nl;
	size_t			 nfr = 0, parts = 1, pos = 0, end, n, i, vs;
	size_t			 maxfr = lim->max_depth + 1;
	int			 in_hdr = 1, in_ct = 0, dflt_msg = 0, r = 0;
	int			 hdr_done;

	fr = xcalloc(maxfr, sizeof(*fr));
	ct = xcalloc(1, sizeof(*ct));
	memset(&fv, 0, sizeof(fv));

	while (pos <= len && r == 0) {
		nl = memchr(raw + pos, '\n', len - pos);
		end = nl != NULL ? (size_t)(nl - raw) : len;
		s = raw + pos;
		n = end - pos;
		if (n > 0 && s[n - 1] == '\r')
			n--;

		/* A delimiter of an open multipart: outermost match wins. */
		if (n >= 2 && s[0] == '-' && s[1] == '-' && nfr > 0) {
			for (i = 0; i < nfr; i++) {
				const struct scan_frame	*f = &fr[i];
				size_t			 k;

				if (f->boundary == NULL || n - 2 < f->blen ||
				    memcmp(s + 2, f->boundary, f->blen) != 0)
					continue;
				k = 2 + f->blen;
				if (n - k >= 2 && s[k] == '-' &&
				    s[k + 1] == '-')
					break;
				while (k < n && (s[k] == ' ' || s[k] == '\t'))
					k++;
				if (k == n)
					break;
			}
			if (i < nfr) {
				const struct scan_frame	*f = &fr[i];
				size_t			 k = 2 + f->blen, j;
				int			 close;

				close = n - k >= 2 && s[k] == '-' &&
				    s[k + 1] == '-';
				for (j = i + 1; j < nfr; j++)
					free(fr[j].boundary);
				nfr = i + 1;
				in_ct = 0;
				if (close) {
					free(fr[i].boundary);
					nfr = i;
					in_hdr = 0;
				} else {
					if (++parts > lim->max_parts) {
						r = mime_reject(err, 422,
						    "too_many_parts", "the "
						    "message has more than %zu "
						    "parts", lim->max_parts);
						break;
					}
					in_hdr = 1;
					dflt_msg = fr[i].digest;
					scan_ct_reset(ct);
				}
				goto next;
			}
		}
		if (!in_hdr)
			goto next;

		hdr_done = 0;
		if (n == 0)
			hdr_done = 1;
		else if (s[0] == ' ' || s[0] == '\t') {
			if (in_ct && fv.len + n > MIME_CT_MAX) {
				r = mime_reject(err, 413, "header_too_large",
				    "a Content-Type field is longer than %d "
				    "bytes", MIME_CT_MAX);
				break;
			}
			if (in_ct)
				buf_add(&fv, s, n);
		} else if (is_field_line(s, n, &vs)) {
			if (in_ct && !ct->seen)
				scan_ct_parse(fv.p, fv.len, ct);
			in_ct = 0;
			if (!ct->seen && ci_prefix(s, n, "content-type") &&
			    (s[12] == ':' || s[12] == ' ' || s[12] == '\t')) {
				if (n - vs > MIME_CT_MAX) {
					r = mime_reject(err, 413,
					    "header_too_large", "a Content-"
					    "Type field is longer than %d "
					    "bytes", MIME_CT_MAX);
					break;
				}
				in_ct = 1;
				fv.len = 0;
				buf_add(&fv, s + vs, n - vs);
			}
		} else
			hdr_done = 1;	/* libetpan: the body starts here */
		if (!hdr_done && end < len)
			goto next;

		/* End of a header block: what does its body hold? */
		if (in_ct && !ct->seen)
			scan_ct_parse(fv.p, fv.len, ct);
		in_ct = 0;
		in_hdr = 0;
		if (ct->multipart && ct->blen > 0) {
			if (nfr >= lim->max_depth) {
				r = mime_reject(err, 422, "too_deep", "MIME "
				    "parts are nested deeper than %zu",
				    lim->max_depth);
				break;
			}
			fr[nfr].boundary = xmemdup(ct->boundary, ct->blen);
			fr[nfr].blen = ct->blen;
			fr[nfr].digest = ct->digest;
			nfr++;
		} else if (ct->message || (!ct->seen && dflt_msg)) {
			if (nfr >= lim->max_depth) {
				r = mime_reject(err, 422, "too_deep", "MIME "
				    "parts are nested deeper than %zu",
				    lim->max_depth);
				break;
			}
			if (++parts > lim->max_parts) {
				r = mime_reject(err, 422, "too_many_parts",
				    "the message has more than %zu parts",
				    lim->max_parts);
				break;
			}
			fr[nfr].boundary = NULL;
			fr[nfr].blen = 0;
			fr[nfr].digest = 0;
			nfr++;
			in_hdr = n == 0;	/* the inner header follows */
		}
		dflt_msg = 0;
		scan_ct_reset(ct);
next:
		if (nl == NULL)
			break;
		pos = end + 1;
	}
	for (i = 0; i < nfr; i++)
		free(fr[i].boundary);
	free(fr);
	free(ct);
	buf_wipe(&fv);
	return r;
}

/* Bound the message before libetpan sees it. */
int
mime_prefilter(const char *raw, size_t len, const struct mime_limits *lim,
    struct letter_error *err)
{
	if (len > lim->max_size)
		return mime_reject(err, 413, "too_large",
		    "the message is larger than %zu bytes", lim->max_size);
	if (pf_header(raw, len, lim, err) != 0)
		return -1;
	if (pf_fields(raw, len, err) != 0)
		return -1;
	if (pf_structure(raw, len, lim, err) != 0)
		return -1;
	return 0;
}

/* --- the letter ----------------------------------------------------------- */

/*
 * One RFC 2047 encoded word at s[i..n), its charset (language dropped) in
 * cset and its bytes appended to bytes: the index after it, or 0 if there
 * is no well-formed word there.
 *   encoded-word = "=?" charset ["*" language] "?" encoding "?"
 *                  encoded-text "?="
 */
static size_t
ew_word(const char *s, size_t n, size_t i, char *cset, struct buf *bytes)
{
	static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
			    "abcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t		 cs, ce, ts, te, k;
	unsigned int	 acc = 0, bits = 0;
	const char	*q;
	int		 enc, hi, lo;

	if (i + 1 >= n || s[i] != '=' || s[i + 1] != '?')
		return 0;
	for (cs = ce = i + 2; ce < n && s[ce] != '?'; ce++) {
		if (s[ce] == ' ' || s[ce] == '\t' || s[ce] == '\r' ||
		    s[ce] == '\n')
			return 0;
	}
	if (ce == cs || ce - cs >= MIME_CHARSET_MAX || ce + 2 >= n ||
	    s[ce + 2] != '?')
		return 0;
	enc = s[ce + 1];
	if (enc != 'b' && enc != 'B' && enc != 'q' && enc != 'Q')
		return 0;
	for (ts = te = ce + 3; te + 1 < n && !(s[te] == '?' &&
	    s[te + 1] == '='); te++) {
		if (s[te] == ' ' || s[te] == '\t' || s[te] == '\r' ||
		    s[te] == '\n' || s[te] == '?')
			return 0;
	}
	if (te + 1 >= n)
		return 0;
	memcpy(cset, s + cs, ce - cs);
	cset[ce - cs] = '\0';
	cset[strcspn(cset, "*")] = '\0';
	for (k = ts; k < te; k++) {
		if (enc == 'q' || enc == 'Q') {
			if (s[k] == '_')
				buf_addc(bytes, ' ');
			else if (s[k] == '=' && k + 2 < te &&
			    (hi = hexval((unsigned char)s[k + 1])) >= 0 &&
			    (lo = hexval((unsigned char)s[k + 2])) >= 0) {
				buf_addc(bytes, hi << 4 | lo);
				k += 2;
			} else
				buf_addc(bytes, s[k]);
		} else if (s[k] != '\0' && (q = strchr(b64, s[k])) != NULL) {
			acc = (acc << 6) | (unsigned int)(q - b64);
			bits += 6;
			if (bits >= 8) {
				bits -= 8;
				buf_addc(bytes, (int)((acc >> bits) & 0xff));
			}
		}
	}
	return te + 2;
}

/*
 * RFC 2047-decode a header value to a malloc'd UTF-8 string.  Done here,
 * not with libetpan's mailmime_encoded_phrase_parse(), which collapses
 * every run of white space to one space ("Priceless  Moment" lost a
 * space).  White space between two encoded words goes (section 6.2); the
 * bytes of adjacent words in one charset are converted together, since
 * senders split a multibyte character across words.  Text outside words is
 * UTF-8 if the whole value is, else windows-1252; a malformed word stays as
 * it is written.
 */
static char *
decode_words(const char *raw)
{
	struct buf	 b, pend;
	const char	*dflt;
	char		 cset[MIME_CHARSET_MAX], pcset[MIME_CHARSET_MAX];
	size_t		 n = strlen(raw), i, k, plain = 0, end, mark;
	int		 prev_word = 0, only_ws;

	dflt = utf8_valid(raw, n) ? "utf-8" : "windows-1252";
	memset(&b, 0, sizeof(b));
	memset(&pend, 0, sizeof(pend));
	buf_grow(&pend, 0);	/* never NULL, also for empty words */
	pcset[0] = '\0';
	for (i = 0; i < n; ) {
		mark = pend.len;
		if ((end = ew_word(raw, n, i, cset, &pend)) == 0) {
			i++;
			continue;
		}
		for (only_ws = 1, k = plain; k < i && only_ws; k++)
			only_ws = raw[k] == ' ' || raw[k] == '\t' ||
			    raw[k] == '\r' || raw[k] == '\n';
		if (!(prev_word && only_ws && strcasecmp(cset, pcset) == 0)) {
			/* Convert what came before this word's bytes. */
			conv_to_utf8(pcset, &b, pend.p, mark);
			memmove(pend.p, pend.p + mark, pend.len - mark);
			pend.len -= mark;
			if (!(prev_word && only_ws))
				conv_to_utf8(dflt, &b, raw + plain, i - plain);
			strlcpy_sp(pcset, cset, sizeof(pcset));
		}
		prev_word = 1;
		plain = i = end;
	}
	conv_to_utf8(pcset, &b, pend.p, pend.len);
	conv_to_utf8(dflt, &b, raw + plain, n - plain);
	buf_wipe(&pend);
	return buf_cstr(&b);
}

/* The decoded, unfolded Subject of the top header, or "". */
static char *
subject_get(struct mailimf_fields *fields)
{
	struct mailimf_field	*f;
	const char		*raw = NULL;
	char			*d, *s;
	size_t			 i, j, n;
	clistiter		*it;

	if (fields == NULL)
		return xstrdup("");
	for (it = clist_begin(fields->fld_list); it != NULL && raw == NULL;
	    it = clist_next(it)) {
		f = clist_content(it);
		if (f->fld_type == MAILIMF_FIELD_SUBJECT &&
		    f->fld_data.fld_subject != NULL)
			raw = f->fld_data.fld_subject->sbj_value;
		else if (f->fld_type == MAILIMF_FIELD_OPTIONAL_FIELD &&
		    f->fld_data.fld_optional_field != NULL &&
		    strcasecmp(f->fld_data.fld_optional_field->fld_name,
		    "Subject") == 0)
			raw = f->fld_data.fld_optional_field->fld_value;
	}
	if (raw == NULL)
		return xstrdup("");
	d = decode_words(raw);

	/* Unfold (drop CR LF), controls become spaces, trim, bound. */
	n = strlen(d);
	s = xmalloc(n + 1);
	for (i = 0, j = 0; i < n; i++) {
		unsigned char	 c = (unsigned char)d[i];

		if (c == '\r' || c == '\n')
			continue;
		s[j++] = (c < 32 || c == 127) ? ' ' : (char)c;
	}
	while (j > 0 && s[j - 1] == ' ')
		j--;
	for (i = 0; i < j && s[i] == ' '; i++)
		;
	memmove(s, s + i, j - i);
	j -= i;
	if (j > MIME_SUBJECT_MAX) {
		j = MIME_SUBJECT_MAX;
		while (j > 0 && ((unsigned char)s[j] & 0xc0) == 0x80)
			j--;	/* not inside a UTF-8 sequence */
	}
	s[j] = '\0';
	explicit_bzero(d, n);
	free(d);
	return s;
}

/* The top-level media type of a Content-Type (mime_int.h), or NULL. */
const char *
mime_type_name(const struct mailmime_type *t)
{
	if (t == NULL)
		return NULL;
	if (t->tp_type == MAILMIME_TYPE_DISCRETE_TYPE &&
	    t->tp_data.tp_discrete_type != NULL) {
		switch (t->tp_data.tp_discrete_type->dt_type) {
		case MAILMIME_DISCRETE_TYPE_TEXT:
			return "text";
		case MAILMIME_DISCRETE_TYPE_IMAGE:
			return "image";
		case MAILMIME_DISCRETE_TYPE_AUDIO:
			return "audio";
		case MAILMIME_DISCRETE_TYPE_VIDEO:
			return "video";
		case MAILMIME_DISCRETE_TYPE_APPLICATION:
			return "application";
		default:
			return t->tp_data.tp_discrete_type->dt_extension;
		}
	}
	if (t->tp_type == MAILMIME_TYPE_COMPOSITE_TYPE &&
	    t->tp_data.tp_composite_type != NULL) {
		switch (t->tp_data.tp_composite_type->ct_type) {
		case MAILMIME_COMPOSITE_TYPE_MESSAGE:
			return "message";
		case MAILMIME_COMPOSITE_TYPE_MULTIPART:
			return "multipart";
		default:
			return t->tp_data.tp_composite_type->ct_token;
		}
	}
	return NULL;
}

/* "type/subtype", lower case, of a part (application/octet-stream if odd). */
static char *
part_ctype(struct mailmime_content *ct)
{
	const char	*type = NULL, *sub;
	char		*s;
	size_t		 i;

	if (ct == NULL || ct->ct_type == NULL)
		return xstrdup("text/plain");
	type = mime_type_name(ct->ct_type);
	sub = ct->ct_subtype;
	if (type == NULL || sub == NULL || *type == '\0' || *sub == '\0' ||
	    strlen(type) > 64 || strlen(sub) > 64)
		return xstrdup("application/octet-stream");
	xasprintf(&s, "%s/%s", type, sub);
	for (i = 0; s[i] != '\0'; i++) {
		if (s[i] != '/' && !is_token_char((unsigned char)s[i])) {
			free(s);
			return xstrdup("application/octet-stream");
		}
		s[i] = (char)tolower((unsigned char)s[i]);
	}
	return s;
}

/*
 * RFC 2231: join `base*' or `base*0*', `base*1', ... (names[i], values[i])
 * into UTF-8.  charset'lang'%XX on the first extended section.  NULL if the
 * parameter is not there.
 */
static char *
rfc2231_join(const char *const *names, const char *const *values, size_t n,
    const char *base)
{
	const char	*sec[MIME_2231_SECTIONS], *single = NULL, *v, *q1, *q2;
	int		 ext[MIME_2231_SECTIONS], single_ext = 0;
	char		 charset[MIME_CHARSET_MAX], hex[3];
	struct buf	 raw, out;
	size_t		 blen = strlen(base), i, k, num;
	const char	*p;

	memset(sec, 0, sizeof(sec));
	memset(ext, 0, sizeof(ext));
	for (i = 0; i < n; i++) {
		if (names[i] == NULL || values[i] == NULL ||
		    strncasecmp(names[i], base, blen) != 0 ||
		    names[i][blen] != '*')
			continue;
		p = names[i] + blen + 1;
		if (*p == '\0') {
			if (single == NULL) {
				single = values[i];
				single_ext = 1;
			}
			continue;
		}
		for (num = 0, k = 0; isdigit((unsigned char)p[k]) && k < 4; k++)
			num = num * 10 + (size_t)(p[k] - '0');
		if (k == 0 || num >= MIME_2231_SECTIONS)
			continue;
		p += k;
		if (*p != '\0' && !(p[0] == '*' && p[1] == '\0'))
			continue;
		if (sec[num] == NULL) {
			sec[num] = values[i];
			ext[num] = *p == '*';
		}
	}
	if (sec[0] == NULL && single == NULL)
		return NULL;
	if (sec[0] == NULL) {
		sec[0] = single;
		ext[0] = single_ext;
		for (k = 1; k < MIME_2231_SECTIONS; k++)
			sec[k] = NULL;
	}

	memset(&raw, 0, sizeof(raw));
	memset(&out, 0, sizeof(out));
	charset[0] = '\0';
	for (k = 0; k < MIME_2231_SECTIONS && sec[k] != NULL; k++) {
		v = sec[k];
		if (!ext[k]) {
			buf_add(&raw, v, strlen(v));
			continue;
		}
		if (k == 0 && (q1 = strchr(v, '\'')) != NULL &&
		    (q2 = strchr(q1 + 1, '\'')) != NULL) {
			if ((size_t)(q1 - v) < sizeof(charset)) {
				memcpy(charset, v, (size_t)(q1 - v));
				charset[q1 - v] = '\0';
			}
			v = q2 + 1;
		}
		for (; *v != '\0'; v++) {
			if (v[0] == '%' && isxdigit((unsigned char)v[1]) &&
			    isxdigit((unsigned char)v[2])) {
				hex[0] = v[1];
				hex[1] = v[2];
				hex[2] = '\0';
				buf_addc(&raw, (int)strtoul(hex, NULL, 16));
				v += 2;
			} else
				buf_addc(&raw, *v);
		}
	}
	conv_to_utf8(charset, &out, raw.p != NULL ? raw.p : "", raw.len);
	buf_wipe(&raw);
	return buf_cstr(&out);
}

/* The filename of a Content-Disposition: RFC 2231, then RFC 2047. */
static char *
disp_filename(struct mailmime_disposition *dsp)
{
	struct mailmime_disposition_parm *dp;
	const char		**names, **values, *plain = NULL;
	size_t			  n = 0, cap;
	char			 *s;
	clistiter		 *it;

	if (dsp == NULL || dsp->dsp_parms == NULL)
		return NULL;
	cap = (size_t)clist_count(dsp->dsp_parms);
	names = xcalloc(cap + 1, sizeof(*names));
	values = xcalloc(cap + 1, sizeof(*values));
	for (it = clist_begin(dsp->dsp_parms); it != NULL;
	    it = clist_next(it)) {
		dp = clist_content(it);
		if (dp->pa_type == MAILMIME_DISPOSITION_PARM_FILENAME &&
		    plain == NULL)
			plain = dp->pa_data.pa_filename;
		else if (dp->pa_type == MAILMIME_DISPOSITION_PARM_PARAMETER &&
		    dp->pa_data.pa_parameter != NULL && n < cap) {
			names[n] = dp->pa_data.pa_parameter->pa_name;
			values[n] = dp->pa_data.pa_parameter->pa_value;
			n++;
		}
	}
	s = rfc2231_join(names, values, n, "filename");
	free(names);
	free(values);
	if (s == NULL && plain != NULL)
		s = decode_words(plain);
	return s;
}

/* The name of a Content-Type: RFC 2231 name*, then name= (decoded). */
static char *
ct_filename(struct mailmime_content *ct)
{
	struct mailmime_parameter	 *pa;
	const char			**names, **values, *plain = NULL;
	size_t				  n = 0, cap;
	char				 *s;
	struct buf			  b;
	clistiter			 *it;

	if (ct == NULL || ct->ct_parameters == NULL)
		return NULL;
	cap = (size_t)clist_count(ct->ct_parameters);
	names = xcalloc(cap + 1, sizeof(*names));
	values = xcalloc(cap + 1, sizeof(*values));
	for (it = clist_begin(ct->ct_parameters); it != NULL;
	    it = clist_next(it)) {
		pa = clist_content(it);
		if (pa == NULL || n >= cap)
			continue;
		if (strcasecmp(pa->pa_name, "name") == 0 && plain == NULL)
			plain = pa->pa_value;
		names[n] = pa->pa_name;
		values[n] = pa->pa_value;
		n++;
	}
	s = rfc2231_join(names, values, n, "name");
	free(names);
	free(values);
	if (s == NULL && plain != NULL) {
		/* libetpan decoded the whole Content-Type value already. */
		memset(&b, 0, sizeof(b));
		utf8_sanitize(&b, plain, strlen(plain));
		s = buf_cstr(&b);
	}
	return s;
}

/*
 * A filename fit to hand to a clinician's machine: the last path component,
 * C0, DEL and C1 controls replaced, trimmed, bounded.  NULL if nothing
 * usable is left.
 */
static char *
filename_clean(const char *name)
{
	const char	*base = name, *p;
	char		*s;
	size_t		 i, j, n;

	for (p = name; *p != '\0'; p++) {
		if (*p == '/' || *p == '\\')
			base = p + 1;
	}
	while (*base == ' ')
		base++;
	n = strlen(base);
	while (n > 0 && (base[n - 1] == ' ' || base[n - 1] == '.'))
		n--;
	if (n > MIME_FILENAME_MAX) {
		n = MIME_FILENAME_MAX;
		while (n > 0 && ((unsigned char)base[n] & 0xc0) == 0x80)
			n--;
	}
	if (n == 0)
		return NULL;
	s = xmalloc(n + 1);
	for (i = 0, j = 0; i < n; i++) {
		unsigned char	 c = (unsigned char)base[i];

		if (c == 0xc2 && i + 1 < n &&
		    (unsigned char)base[i + 1] >= 0x80 &&
		    (unsigned char)base[i + 1] <= 0x9f) {
			s[j++] = '_';	/* a C1 control */
			i++;
		} else
			s[j++] = (c < 32 || c == 127) ? '_' : (char)c;
	}
	s[j] = '\0';
	return s;
}

/* Convert a text body to UTF-8 with LF line ends. */
static char *
text_normalise(const char *s, size_t n, const char *charset)
{
	struct buf	 u, out;
	size_t		 i;

	memset(&u, 0, sizeof(u));
	memset(&out, 0, sizeof(out));
	conv_to_utf8(charset, &u, s, n);
	buf_grow(&out, u.len);
	for (i = 0; i < u.len; i++) {
		if (u.p[i] == '\r') {
			buf_addc(&out, '\n');
			if (i + 1 < u.len && u.p[i + 1] == '\n')
				i++;
		} else
			buf_addc(&out, u.p[i]);
	}
	buf_wipe(&u);
	return buf_cstr(&out);
}

/* The value of a hex digit, or -1. */
static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * RFC 2045 section 6.7 quoted-printable, decoded here rather than by
 * libetpan 1.9.4, which turns "=" followed by anything but a line end into
 * a byte, reading a non-hex character as 0 ("version=\"1.0\"" became
 * "version\x01.0\"") and so silently changes the text.  Rules:
 *   qp-octet = "=" 2(HEXDIG) -> that octet (lower case accepted);
 *   "=" *(SP / HTAB) line end, or at the end -> soft line break, removed;
 *   any other "=" -> kept as it is (the robust reading of note (2));
 *   white space at the end of a line -> removed (rule 3: added in
 *   transport);
 *   line ends (CRLF, LF, a lone CR) -> CRLF, the canonical form, as
 *   libetpan's decoder gives them.
 */
static void
qp_decode(struct buf *out, const char *s, size_t n)
{
	size_t	 i, j, ws;
	int	 hi, lo;

	buf_grow(out, n);
	for (i = 0; i < n; i++) {
		if (s[i] == '\r' || s[i] == '\n') {
			if (s[i] == '\r' && i + 1 < n && s[i + 1] == '\n')
				i++;
			buf_add(out, "\r\n", 2);
			continue;
		}
		if (s[i] == ' ' || s[i] == '\t') {
			/* Keep white space only if text follows on the line. */
			for (j = i; j < n && (s[j] == ' ' || s[j] == '\t'); j++)
				;
			ws = j - i;
			if (j < n && s[j] != '\r' && s[j] != '\n')
				buf_add(out, s + i, ws);
			i = j - 1;
			continue;
		}
		if (s[i] != '=') {
			buf_addc(out, s[i]);
			continue;
		}
		if (i + 2 < n && (hi = hexval((unsigned char)s[i + 1])) >= 0 &&
		    (lo = hexval((unsigned char)s[i + 2])) >= 0) {
			buf_addc(out, hi << 4 | lo);
			i += 2;
			continue;
		}
		for (j = i + 1; j < n && (s[j] == ' ' || s[j] == '\t'); j++)
			;
		if (j == n || s[j] == '\r' || s[j] == '\n') {
			/* A soft line break: the line end goes too. */
			if (j < n && s[j] == '\r' && j + 1 < n &&
			    s[j + 1] == '\n')
				j++;
			i = j;
			continue;
		}
		buf_addc(out, '=');
	}
}

/* Transfer-decode a part's body into a malloc'd copy. */
static int
part_decode(struct walk *w, struct mailmime_data *data, int enc, char **outp,
    size_t *outlenp)
{
	struct buf	 qp;
	char		*dec = NULL;
	size_t		 cur = 0, dlen = 0;
	int		 r;

	*outp = NULL;
	*outlenp = 0;
	if (data == NULL || data->dt_type != MAILMIME_DATA_TEXT ||
	    data->dt_data.dt_text.dt_data == NULL ||
	    data->dt_data.dt_text.dt_length == 0) {
		*outp = xstrdup("");
		return 0;
	}
	if (enc == MAILMIME_MECHANISM_QUOTED_PRINTABLE) {
		memset(&qp, 0, sizeof(qp));
		qp_decode(&qp, data->dt_data.dt_text.dt_data,
		    data->dt_data.dt_text.dt_length);
		if (qp.len > w->lim->max_attachment_size) {
			buf_wipe(&qp);
			return mime_reject(w->err, 413, "attachment_too_large",
			    "a part is larger than %zu bytes",
			    w->lim->max_attachment_size);
		}
		*outlenp = qp.len;
		*outp = buf_cstr(&qp);
		return 0;
	}
	r = mailmime_part_parse(data->dt_data.dt_text.dt_data,
	    data->dt_data.dt_text.dt_length, &cur, enc, &dec, &dlen);
	if (r != MAILIMF_NO_ERROR || dec == NULL) {
		if (r == MAILIMF_ERROR_MEMORY)
			return mime_reject(w->err, 422, "out_of_memory",
			    "the message needs more memory than allowed");
		return mime_reject(w->err, 422, "parse_failed",
		    "a part's transfer encoding could not be decoded");
	}
	if (dlen > w->lim->max_attachment_size) {
		explicit_bzero(dec, dlen);
		mmap_string_unref(dec);
		return mime_reject(w->err, 413, "attachment_too_large",
		    "a part is larger than %zu bytes",
		    w->lim->max_attachment_size);
	}
	*outp = xmalloc(dlen + 1);
	memcpy(*outp, dec, dlen);
	(*outp)[dlen] = '\0';
	*outlenp = dlen;
	explicit_bzero(dec, dlen);
	mmap_string_unref(dec);
	return 0;
}

/* Append an attachment to the document (takes the strings and data). */
static void
doc_add_attachment(struct letter_doc *doc, char *filename, char *ctype,
    char *data, size_t len)
{
	struct letter_attachment	*a;

	doc->att = xreallocarray(doc->att, doc->natt + 1, sizeof(*doc->att));
	a = &doc->att[doc->natt++];
	a->filename = filename;
	a->content_type = ctype;
	a->data = (unsigned char *)data;
	a->len = len;
}

/* A leaf (or an attached message): a body or an attachment. */
static int
walk_leaf(struct walk *w, struct mailmime *m, int is_message)
{
	struct mailmime_single_fields	 sf;
	struct mailmime_data		*data;
	char				*ctype, *name = NULL, *clean = NULL;
	char				*body = NULL;
	size_t				 blen;
	int				 enc, attach_disp, has_name;

	mailmime_single_fields_init(&sf, m->mm_mime_fields, m->mm_content_type);
	enc = sf.fld_encoding != NULL ? sf.fld_encoding->enc_type :
	    MAILMIME_MECHANISM_8BIT;
	attach_disp = sf.fld_disposition != NULL &&
	    sf.fld_disposition->dsp_type != NULL &&
	    sf.fld_disposition->dsp_type->dsp_type ==
	    MAILMIME_DISPOSITION_TYPE_ATTACHMENT;
	ctype = is_message ? xstrdup("message/rfc822") :
	    part_ctype(m->mm_content_type);
	if ((name = disp_filename(sf.fld_disposition)) == NULL)
		name = ct_filename(m->mm_content_type);
	has_name = name != NULL;
	if (name != NULL) {
		clean = filename_clean(name);
		explicit_bzero(name, strlen(name));
		free(name);
	}

	data = is_message ? m->mm_body : m->mm_data.mm_single;
	if (part_decode(w, data, enc, &body, &blen) != 0) {
		free(ctype);
		free(clean);
		return -1;
	}

	/* The letter's bodies: first plain and first HTML, not attachments. */
	if (!is_message && !attach_disp && !has_name &&
	    (strcmp(ctype, "text/plain") == 0 ||
	    strcmp(ctype, "text/html") == 0)) {
		char	**slot = ctype[5] == 'p' ? &w->doc->text :
		    &w->doc->html;

		if (*slot == NULL) {
			*slot = text_normalise(body, blen,
			    sf.fld_content_charset);
			explicit_bzero(body, blen);
			free(body);
			free(ctype);
			return 0;
		}
	}

	if (blen == 0) {
		/* An empty part carries nothing worth keeping. */
		free(body);
		free(ctype);
		free(clean);
		return 0;
	}
	if (w->doc->natt >= w->lim->max_attachments) {
		explicit_bzero(body, blen);
		free(body);
		free(ctype);
		free(clean);
		return mime_reject(w->err, 422, "too_many_attachments",
		    "the message has more than %zu attachments",
		    w->lim->max_attachments);
	}
	if (clean == NULL)
		xasprintf(&clean, "attachment-%zu.%s", w->doc->natt + 1,
		    strcmp(ctype, "message/rfc822") == 0 ? "eml" :
		    strcmp(ctype, "text/plain") == 0 ? "txt" :
		    strcmp(ctype, "text/html") == 0 ? "html" : "bin");
	doc_add_attachment(w->doc, clean, ctype, body, blen);
	return 0;
}

/* Parse one part split out by walk_repair() and walk it. */
static int
repair_part(struct walk *w, const char *s, size_t n, size_t depth)
{
	struct mailmime	*root = NULL;
	size_t		 idx = 0, i;
	int		 r = 0;

	/* The line break before the delimiter belongs to the delimiter. */
	if (n > 0 && s[n - 1] == '\n')
		n--;
	if (n > 0 && s[n - 1] == '\r')
		n--;
	for (i = 0; i < n && (s[i] == '\r' || s[i] == '\n'); i++)
		;
	if (i == n)
		return 0;	/* an empty part */
	if (mailmime_parse(s, n, &idx, &root) == MAILIMF_NO_ERROR &&
	    root != NULL && root->mm_type == MAILMIME_MESSAGE)
		r = walk_node(w, root->mm_data.mm_message.mm_msg_mime,
		    depth + 1);
	if (root != NULL)
		mailmime_free(root);
	return r;
}

/*
 * Is the line d[0..n) (line end excluded) a delimiter of boundary b?
 * dash-boundary = "--" boundary; 1 for a delimiter (transport padding
 * allowed after it), 2 for the close delimiter, 0 otherwise.
 */
static int
delim_line(const char *d, size_t n, const char *b, size_t blen)
{
	size_t	 k;

	if (n > 0 && d[n - 1] == '\r')
		n--;
	if (n < 2 + blen || d[0] != '-' || d[1] != '-' ||
	    memcmp(d + 2, b, blen) != 0)
		return 0;
	k = 2 + blen;
	if (n - k >= 2 && d[k] == '-' && d[k + 1] == '-')
		return 2;
	while (k < n && (d[k] == ' ' || d[k] == '\t'))
		k++;
	return k == n ? 1 : 0;
}

/*
 * Does the multipart hold an empty part, a delimiter line right after
 * another or after another and one empty line?  libetpan 1.9.4 takes the line end after the first delimiter as
 * the one before the second, so it misses the second delimiter and runs
 * the empty part on to the next one or to the end: the following part's
 * headers (a named attachment, say) and even the epilogue become body text.
 */
static int
has_empty_part(struct mailmime *m)
{
	struct mailmime_single_fields	 sf;
	struct mailmime_data		*body = m->mm_body;
	const char			*b, *d, *nl;
	size_t				 len, blen, pos, end;
	int				 prev = 0, cur;

	mailmime_single_fields_init(&sf, m->mm_mime_fields, m->mm_content_type);
	if ((b = sf.fld_content_boundary) == NULL || body == NULL ||
	    body->dt_type != MAILMIME_DATA_TEXT ||
	    (d = body->dt_data.dt_text.dt_data) == NULL)
		return 0;
	len = body->dt_data.dt_text.dt_length;
	blen = strlen(b);
	for (pos = 0; pos < len; pos = end + 1) {
		nl = memchr(d + pos, '\n', len - pos);
		end = nl != NULL ? (size_t)(nl - d) : len;
		cur = delim_line(d + pos, end - pos, b, blen);
		if (prev != 0 && cur != 0)
			return 1;
		if (cur == 2)
			return 0;
		/* An empty line alone does not end the empty part either. */
		if (cur == 0 && prev == 1 && (end == pos ||
		    (end == pos + 1 && d[pos] == '\r')))
			cur = 3;
		prev = cur == 2 ? 0 : cur;
	}
	return 0;
}

/*
 * libetpan keeps no part at all of a multipart that lacks its close
 * delimiter, and runs an empty part on into the next (has_empty_part()):
 * split the body on its delimiter lines here and parse each part on its
 * own, so the parts a reader's mail client would show are kept.  Bounded
 * by MIME_MAX_REPAIRS per message.
 */
static int
walk_repair(struct walk *w, struct mailmime *m, size_t depth)
{
	struct mailmime_single_fields	 sf;
	struct mailmime_data		*body = m->mm_body;
	const char			*b, *d, *nl;
	size_t				 len, blen, pos, end;
	size_t				 start = SIZE_MAX;
	int				 r = 0, kind;

	mailmime_single_fields_init(&sf, m->mm_mime_fields, m->mm_content_type);
	if ((b = sf.fld_content_boundary) == NULL || body == NULL ||
	    body->dt_type != MAILMIME_DATA_TEXT ||
	    (d = body->dt_data.dt_text.dt_data) == NULL ||
	    w->repairs >= MIME_MAX_REPAIRS)
		return 0;
	if (*b == '"')
		return 0;	/* only reachable without the prefilter */
	w->repairs++;
	len = body->dt_data.dt_text.dt_length;
	blen = strlen(b);

	for (pos = 0; pos < len && r == 0; pos = end + 1) {
		nl = memchr(d + pos, '\n', len - pos);
		end = nl != NULL ? (size_t)(nl - d) : len;
		if ((kind = delim_line(d + pos, end - pos, b, blen)) == 0)
			continue;
		if (start != SIZE_MAX)
			r = repair_part(w, d + start, pos - start, depth);
		start = kind == 2 || nl == NULL ? SIZE_MAX : end + 1;
		if (kind == 2)
			break;
	}
	if (r == 0 && start != SIZE_MAX && start < len)
		r = repair_part(w, d + start, len - start, depth);
	return r;
}

/* Walk one node of libetpan's tree, bounded in depth and count. */
static int
walk_node(struct walk *w, struct mailmime *m, size_t depth)
{
	clistiter	*it;

	if (m == NULL)
		return 0;
	if (depth > w->lim->max_depth + 2)
		return mime_reject(w->err, 422, "too_deep",
		    "MIME parts are nested deeper than %zu", w->lim->max_depth);
	if (++w->nodes > 2 * w->lim->max_parts + 2)
		return mime_reject(w->err, 422, "too_many_parts",
		    "the message has more than %zu parts", w->lim->max_parts);

	switch (m->mm_type) {
	case MAILMIME_MULTIPLE:
		if (m->mm_data.mm_multipart.mm_mp_list == NULL ||
		    clist_isempty(m->mm_data.mm_multipart.mm_mp_list) ||
		    (w->repairs < MIME_MAX_REPAIRS && has_empty_part(m)))
			return walk_repair(w, m, depth);
		for (it = clist_begin(m->mm_data.mm_multipart.mm_mp_list);
		    it != NULL; it = clist_next(it)) {
			if (walk_node(w, clist_content(it), depth + 1) != 0)
				return -1;
		}
		return 0;
	case MAILMIME_MESSAGE:
		return walk_leaf(w, m, 1);
	case MAILMIME_SINGLE:
		return walk_leaf(w, m, 0);
	default:
		return mime_reject(w->err, 422, "parse_failed",
		    "the MIME structure could not be parsed");
	}
}

/* Has the document anything a clinician could read? */
static int
doc_has_content(const struct letter_doc *doc)
{
	const char	*s[3] = { doc->subject, doc->text, doc->html };
	size_t		 i;
	const char	*p;

	if (doc->natt > 0)
		return 1;
	for (i = 0; i < nitems(s); i++) {
		for (p = s[i]; p != NULL && *p != '\0'; p++) {
			if (*p != ' ' && *p != '\t' && *p != '\n' &&
			    *p != '\r')
				return 1;
		}
	}
	return 0;
}

/* Prefilter, then parse. */
int
mime_parse_letter(const char *raw, size_t len, const struct mime_limits *lim,
    struct letter_doc **docp, struct letter_error *err)
{
	*docp = NULL;
	if (mime_prefilter(raw, len, lim, err) != 0)
		return -1;
	return mime_parse_letter_unfiltered(raw, len, lim, docp, err);
}

/* Parse with libetpan and build the letter document. */
int
mime_parse_letter_unfiltered(const char *raw, size_t len,
    const struct mime_limits *lim, struct letter_doc **docp,
    struct letter_error *err)
{
	struct mailmime		*mime = NULL;
	struct letter_limits	 llim;
	struct walk		 w;
	const char		*nl;
	size_t			 idx = 0;
	int			 r;

	*docp = NULL;
	memset(err, 0, sizeof(*err));
	if (len > lim->max_size)
		return mime_reject(err, 413, "too_large",
		    "the message is larger than %zu bytes", lim->max_size);
	mime_init();

	/*
	 * A message saved from an mbox starts with a "From " envelope line
	 * ("From sender date"), not a header field; libetpan then finds no
	 * header at all, and the letter would lose its subject and show its
	 * header as text.  "From :" is a field in obsolete syntax: kept.
	 */
	if (len > 5 && memcmp(raw, "From ", 5) == 0) {
		for (idx = 5; idx < len && (raw[idx] == ' ' ||
		    raw[idx] == '\t'); idx++)
			;
		if (idx < len && raw[idx] != ':' &&
		    (nl = memchr(raw, '\n', len)) != NULL) {
			len -= (size_t)(nl + 1 - raw);
			raw = nl + 1;
		}
		idx = 0;
	}

	r = mailmime_parse(raw, len, &idx, &mime);
	if (r != MAILIMF_NO_ERROR || mime == NULL) {
		if (mime != NULL)
			mailmime_free(mime);
		if (r == MAILIMF_ERROR_MEMORY)
			return mime_reject(err, 422, "out_of_memory",
			    "the message needs more memory than allowed");
		return mime_reject(err, 422, "parse_failed",
		    "the message could not be parsed as MIME");
	}

	memset(&w, 0, sizeof(w));
	w.lim = lim;
	w.err = err;
	w.doc = letter_doc_new();
	if (mime->mm_type == MAILMIME_MESSAGE) {
		w.doc->subject =
		    subject_get(mime->mm_data.mm_message.mm_fields);
		r = walk_node(&w, mime->mm_data.mm_message.mm_msg_mime, 1);
	} else {
		w.doc->subject = xstrdup("");
		r = walk_node(&w, mime, 1);
	}
	mailmime_free(mime);
	if (r != 0) {
		letter_doc_free(&w.doc);
		return -1;
	}

	if (!doc_has_content(w.doc)) {
		letter_doc_free(&w.doc);
		return mime_reject(err, 422, "no_body",
		    "the message has no subject, text, HTML or attachment");
	}
	if (w.doc->text == NULL && w.doc->html == NULL)
		w.doc->text = xstrdup("");

	memset(&llim, 0, sizeof(llim));
	llim.max_size = lim->max_size;
	llim.max_attachments = lim->max_attachments;
	llim.max_attachment_size = lim->max_attachment_size;
	if (letter_doc_validate(w.doc, &llim, err) != 0) {
		letter_doc_free(&w.doc);
		return -1;
	}
	*docp = w.doc;
	return 0;
}
