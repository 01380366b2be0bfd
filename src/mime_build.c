/*
 * mime_build.c - outbound RFC 5322 / MIME messages for the relay.
 *
 * Owns the message a patient receives: header fields, the MIME tree built
 * with libetpan's API and written by its writer, and the pieces libetpan
 * lacks or gets wrong: an RFC 2047 encoder, RFC 2231 filenames, a
 * quoted-printable encoder, Message-IDs and boundaries from libsodium, and
 * the validation of every value that reaches a header.
 *
 * Public: mime_build, mime_msg_clear, mime_header_encode,
 * mime_header_decode, mime_addr_check, mime_message_id.
 *
 * Where libetpan 1.9.4 is worked around (reference/libetpan.md section 7):
 *  - Message-ID and boundaries: libetpan's generators use unseeded
 *    random(); ours come from hash_random().  A boundary holds "=_", which
 *    neither quoted-printable nor base64 output can contain.
 *  - Date: built from gmtime_r(), not libetpan's gmtime() helpers.
 *  - Quoted-printable: libetpan's encoder doubles trailing white space
 *    ("a \n" becomes "a =20") and drops the byte after a lone CR; text is
 *    encoded here and handed over as already encoded.  Base64 (attachments)
 *    is libetpan's.
 *  - From and To: libetpan quotes any display name that is not one atom,
 *    and an encoded-word inside quotes is not decoded (RFC 2047 section 5),
 *    so they are written as fields whose value is formatted here.
 *  - Content-Disposition: libetpan quotes every parameter value, but an
 *    RFC 2231 extended value must not be quoted, so the disposition is
 *    written as an extension token that carries its parameters, folded
 *    here: attachment; filename*=utf-8''...; filename="ascii fallback".
 *    filename* comes first: Python's email takes the first it meets.
 *  - libetpan's header writer re-folds unstructured values at column 72
 *    on white space and collapses white space runs; the encoder keeps every
 *    word <= 75 characters, and puts white space that would not survive
 *    (runs, tabs, leading, trailing) inside encoded words.
 *
 * The output is checked at the end (CRLF only, no line over 998 octets) and
 * the message refused if the check fails, which would be a bug here.
 *
 * Error policy: 0, or -1 and a static reason naming the field, never the
 * content.  Allocation failure is fatal (x* helpers, and a NULL from a
 * libetpan constructor).  Thread-safe.
 */

#include "build.h"

#include <sys/types.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <libetpan/libetpan.h>

#include "hash.h"
#include "letter.h"
#include "log.h"
#include "mime.h"
#include "util.h"

#define MB_FOLD		76	/* RFC 2047 section 2: encoded lines */
#define MB_WORD_MAX	75	/* RFC 2047 section 2: one encoded-word */
#define MB_HDR_LINE	78	/* RFC 5322 section 2.1.1, SHOULD */
#define MB_LINE_MAX	998	/* RFC 5322 section 2.1.1, MUST */
#define MB_QP_LINE	76	/* RFC 2045 section 6.7 rule 5 */
#define MB_EW_EXTRA	12	/* "=?utf-8?B?" and "?=" */
/*
 * libetpan keeps a word on the current header line only if the line stays
 * under column 72; starting the encoder this much further right makes the
 * first word short enough to stay next to the field name.
 */
#define MB_ETPAN_SLACK	(MB_FOLD - 72 + 1)
#define MB_LOCAL_MAX	64	/* RFC 5321 section 4.5.3.1.1 */
#define MB_DOMAIN_MAX	253
#define MB_LABEL_MAX	63
#define MB_ADDR_MAX	254	/* RFC 5321 path limit less the brackets */
#define MB_NAME_MAX	256	/* bytes of a display name */
#define MB_SUBJECT_MAX	998	/* bytes of a subject (letter.c's rule) */
#define MB_FILENAME_MAX	255	/* bytes of a filename (letter.c's rule) */
#define MB_FALLBACK_MAX	60	/* characters of the ASCII filename */
#define MB_CTYPE_MAX	255
#define MB_TOKEN_MAX	(MB_LOCAL_MAX - 6)	/* "reply+" */
#define MB_REFS_MAX	64	/* Message-IDs in References */
#define MB_XNAME_MAX	76	/* an extra header's name */
#define MB_XVALUE_MAX	900	/* an extra header's value */
#define MB_BOUNDARY_RND	16	/* random bytes in a boundary */
#define MB_MSGID_RND	16	/* random bytes in a Message-ID: 128 bits */

/* A growable byte buffer; wiped when freed, it holds letter content. */
struct obuf {
	char		*p;
	size_t		 len;
	size_t		 cap;
};

/* A header value being laid out: atoms separated by SP or CRLF SP. */
struct fold {
	struct obuf	 ob;
	size_t		 col;		/* length of the current line */
	int		 any;		/* an atom is already written */
};

/* A word or a white-space run of a header value. */
struct hword {
	size_t		 off;
	size_t		 len;
	int		 ws;
	int		 enc;		/* must go inside encoded words */
};

/* Everything mime_build() validated and formatted before libetpan. */
struct build {
	const struct mime_out	*out;
	const struct letter_doc	*doc;
	char			*from;		/* formatted field values */
	char			*to;
	char			*reply_to;	/* addr-spec */
	char			*subject;	/* encoded, or NULL */
	char			 msgid[MIME_MSGID_MAX + 1];
	const char		*text;		/* the bodies to write */
	const char		*html;
	struct obuf		 qp_text;	/* their encodings */
	struct obuf		 qp_html;
};

static void	 ob_grow(struct obuf *, size_t);
static void	 ob_add(struct obuf *, const void *, size_t);
static void	 ob_adds(struct obuf *, const char *);
static void	 ob_addc(struct obuf *, int);
static char	*ob_take(struct obuf *);
static void	 ob_wipe(struct obuf *);
static int	 ob_write(void *, const char *, size_t);
static size_t	 u8_seq(const unsigned char *, size_t);
static const char *value_check(const char *, size_t);
static const char *text_check(const char *);
static int	 is_atext(int);
static int	 is_ws(int);
static size_t	 b64_encode(const unsigned char *, size_t, char *);
static void	 fold_sep(struct fold *, int);
static void	 fold_atom(struct fold *, const char *, size_t);
static void	 fold_encoded(struct fold *, const char *, size_t);
static void	 encode_text(struct fold *, const char *, size_t);
static void	 encode_phrase(struct fold *, const char *, size_t);
static const char *dot_atom_check(const char *, size_t);
static const char *domain_check(const char *, size_t);
static const char *msgid_check(const char *, size_t);
static const char *ctype_check(const char *);
static const char *xheader_check(const struct mime_header *);
static void	 base32_encode(const unsigned char *, size_t, char *);
static void	 boundary_new(char *, size_t);
static int	 mailbox_value(const char *, const char *, size_t, char **,
		    const char **);
static char	*filename_fallback(const char *);
static char	*disposition_value(const char *);
static void	 qp_encode(struct obuf *, const char *, size_t);
static const char *msg_check(const char *, size_t);
static void	*etpan_check(void *);
static void	 etpan_ok(int);
static clist	*msgid_list(const char *);
static struct mailmime *part_single(const char *, const char *,
		    const char *, char *, int);
static void	 part_body(struct mailmime *, const char *, size_t, int);
static struct mailmime *part_multi(const char *);
static struct mailmime *part_text(const char *, struct obuf *);
static struct mailmime *body_tree(struct build *);
static struct mailimf_fields *header_fields(struct build *);
static int	 build_check(struct build *, const char **);
static void	 build_free(struct build *);

/* Reserved: built here, so never accepted as an extra header. */
static const char *const reserved_headers[] = {
	"Date", "From", "Sender", "Reply-To", "To", "Cc", "Bcc",
	"Message-ID", "In-Reply-To", "References", "Subject",
	"MIME-Version", "Return-Path", "Received"
};

/* --- buffers ---------------------------------------------------------- */

/* Make room for n more bytes and a NUL. */
static void
ob_grow(struct obuf *b, size_t n)
{
	size_t	 cap;
	char	*p;

	if (n >= SIZE_MAX / 2 - b->len)
		log_fatalx("mime_build: buffer overflow");
	if (b->len + n + 1 <= b->cap)
		return;
	cap = b->cap == 0 ? 256 : b->cap;
	while (cap < b->len + n + 1)
		cap *= 2;
	/* Not realloc: the old block would be freed unwiped. */
	p = xmalloc(cap);
	if (b->len > 0)
		memcpy(p, b->p, b->len);
	if (b->p != NULL) {
		hash_wipe(b->p, b->cap);
		free(b->p);
	}
	b->p = p;
	b->cap = cap;
}

/* Append n bytes. */
static void
ob_add(struct obuf *b, const void *s, size_t n)
{
	ob_grow(b, n);
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

/* Append a string. */
static void
ob_adds(struct obuf *b, const char *s)
{
	ob_add(b, s, strlen(s));
}

/* Append one byte. */
static void
ob_addc(struct obuf *b, int c)
{
	char	 ch = (char)c;

	ob_add(b, &ch, 1);
}

/* The contents as a NUL-terminated string; the buffer is left empty. */
static char *
ob_take(struct obuf *b)
{
	char	*s;

	if (b->p == NULL)
		return xstrdup("");
	s = b->p;
	memset(b, 0, sizeof(*b));
	return s;
}

/* Wipe and free. */
static void
ob_wipe(struct obuf *b)
{
	if (b->p != NULL) {
		hash_wipe(b->p, b->cap);
		free(b->p);
	}
	memset(b, 0, sizeof(*b));
}

/* libetpan's writer callback: nonzero is success. */
static int
ob_write(void *arg, const char *s, size_t n)
{
	ob_add(arg, s, n);
	return 1;
}

/* --- characters --------------------------------------------------------- */

/*
 * Length of the well-formed UTF-8 sequence at s (RFC 3629 section 4: no
 * overlong forms, no surrogates, nothing above U+10FFFF), or 0.
 */
static size_t
u8_seq(const unsigned char *s, size_t n)
{
	unsigned char	 c = s[0], lo = 0x80, hi = 0xbf;
	size_t		 k, i;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		k = 2;
	else if (c >= 0xe0 && c <= 0xef) {
		k = 3;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		k = 4;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
	} else
		return 0;
	if (n < k || s[1] < lo || s[1] > hi)
		return 0;
	for (i = 2; i < k; i++) {
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	}
	return k;
}

/* A reason if s[0..n) cannot go into a header: CR, LF, NUL, bad UTF-8. */
static const char *
value_check(const char *s, size_t n)
{
	const unsigned char	*u = (const unsigned char *)s;
	size_t			 i, k;

	for (i = 0; i < n; i += k) {
		if (u[i] == '\r' || u[i] == '\n' || u[i] == '\0')
			return "contains CR, LF or NUL";
		if ((k = u8_seq(u + i, n - i)) == 0)
			return "is not valid UTF-8";
	}
	return NULL;
}

/* A reason if a body text is not UTF-8 (line breaks are fine there). */
static const char *
text_check(const char *s)
{
	const unsigned char	*u = (const unsigned char *)s;
	size_t			 i, k, n = strlen(s);

	for (i = 0; i < n; i += k) {
		if ((k = u8_seq(u + i, n - i)) == 0)
			return "is not valid UTF-8";
	}
	return NULL;
}

/*
 * atext = ALPHA / DIGIT / "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" /
 *         "-" / "/" / "=" / "?" / "^" / "_" / "`" / "{" / "|" / "}" / "~"
 */
static int
is_atext(int c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return 1;
	return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

/* WSP = SP / HTAB */
static int
is_ws(int c)
{
	return c == ' ' || c == '\t';
}

/* Standard padded base64 of s[0..n) into out (NUL-terminated); length. */
static size_t
b64_encode(const unsigned char *s, size_t n, char *out)
{
	static const char	 al[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t			 i, o = 0;
	uint32_t		 v;

	for (i = 0; i + 2 < n; i += 3) {
		v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
		out[o++] = al[v >> 18 & 63];
		out[o++] = al[v >> 12 & 63];
		out[o++] = al[v >> 6 & 63];
		out[o++] = al[v & 63];
	}
	if (i < n) {
		v = (uint32_t)s[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)s[i + 1] << 8;
		out[o++] = al[v >> 18 & 63];
		out[o++] = al[v >> 12 & 63];
		out[o++] = i + 1 < n ? al[v >> 6 & 63] : '=';
		out[o++] = '=';
	}
	out[o] = '\0';
	return o;
}

/* --- RFC 2047 ----------------------------------------------------------- */

/* Separate the next atom: SP, or CRLF SP when fold is set. */
static void
fold_sep(struct fold *f, int fold)
{
	if (fold) {
		ob_add(&f->ob, "\r\n ", 3);
		f->col = 1;
	} else if (f->any) {
		ob_addc(&f->ob, ' ');
		f->col++;
	}
}

/* Append an unbreakable atom, folding before it if the line is full. */
static void
fold_atom(struct fold *f, const char *s, size_t n)
{
	fold_sep(f, f->any && f->col + 1 + n > MB_FOLD);
	ob_add(&f->ob, s, n);
	f->col += n;
	f->any = 1;
}

/*
 * Append s[0..n) (valid UTF-8) as B encoded-words: each <= 75 characters
 * and holding whole code points, the first sized to the room left on the
 * current line.  White space between encoded-words is not part of the
 * text (RFC 2047 section 6.2), so they are separated freely.
 */
static void
fold_encoded(struct fold *f, const char *s, size_t n)
{
	const unsigned char	*u = (const unsigned char *)s;
	char			 word[MB_WORD_MAX + 1];
	size_t			 i = 0, used, room, cap, take, k, fresh;
	int			 fold;

	/* The bytes one encoded-word holds at the start of a line. */
	fresh = ((MB_FOLD - 1 < MB_WORD_MAX ? MB_FOLD - 1 : MB_WORD_MAX) -
	    MB_EW_EXTRA) / 4 * 3;

	while (i < n) {
		fold = 0;
		used = f->col + (f->any ? 1 : 0);
		room = used < MB_FOLD ? MB_FOLD - used : 0;
		if (room > MB_WORD_MAX)
			room = MB_WORD_MAX;
		for (;;) {
			cap = room > MB_EW_EXTRA ?
			    (room - MB_EW_EXTRA) / 4 * 3 : 0;
			for (take = 0; i + take < n; take += k) {
				k = u8_seq(u + i + take, n - i - take);
				if (k == 0)
					log_panic("mime_build: encoding "
					    "unchecked UTF-8");
				if (take + k > cap)
					break;
			}
			/*
			 * Stay on this line if all is in, or if this is the
			 * field's first word; split the rest only if it
			 * would not fit one word on a new line anyway, and
			 * not into a scrap of less than a quarter word.
			 */
			if (fold || (take > 0 && (i + take == n || !f->any ||
			    (room >= MB_WORD_MAX / 4 && n - i > fresh))))
				break;
			fold = 1;
			room = MB_FOLD - 1;
			if (room > MB_WORD_MAX)
				room = MB_WORD_MAX;
		}
		if (take == 0)
			log_panic("mime_build: no room for an encoded word");
		fold_sep(f, fold);
		memcpy(word, "=?utf-8?B?", 10);
		k = 10 + b64_encode(u + i, take, word + 10);
		memcpy(word + k, "?=", 3);
		k += 2;
		ob_add(&f->ob, word, k);
		f->col += k;
		f->any = 1;
		i += take;
	}
}

/*
 * Unstructured text (RFC 5322 section 3.2.5 and RFC 2047 section 5 (1)):
 * plain words stay; a word with a byte outside printable ASCII, or "=?",
 * or too long for a line, is encoded; white space other than one SP
 * between two words goes inside encoded words with its neighbours.
 * Adjacent encoded words merge into one run, with the white space between
 * them inside the encoded text.
 */
static void
encode_text(struct fold *f, const char *s, size_t n)
{
	const unsigned char	*u = (const unsigned char *)s;
	struct hword		*w;
	size_t			 nw = 0, i, j, k, start, end, col0 = f->col;
	int			 words = 0;

	if (n == 0)
		return;
	w = xcalloc(n, sizeof(*w));
	for (i = 0; i < n; i = j) {
		w[nw].off = i;
		w[nw].ws = is_ws(u[i]);
		for (j = i; j < n && is_ws(u[j]) == w[nw].ws; j++)
			;
		w[nw].len = j - i;
		nw++;
	}
	for (i = 0; i < nw; i++) {
		if (w[i].ws)
			continue;
		words = 1;
		if (w[i].len + (i == 0 ? col0 : 1) > MB_FOLD)
			w[i].enc = 1;
		for (k = w[i].off; k < w[i].off + w[i].len; k++) {
			if (u[k] < 0x21 || u[k] > 0x7e ||
			    (u[k] == '=' && k + 1 < n && u[k + 1] == '?'))
				w[i].enc = 1;
		}
	}
	if (!words) {
		/* Only white space: keep it, encoded. */
		fold_encoded(f, s, n);
		free(w);
		return;
	}
	for (i = 0; i < nw; i++) {
		if (!w[i].ws || (w[i].len == 1 && u[w[i].off] == ' ' &&
		    i > 0 && i + 1 < nw))
			continue;
		if (i > 0)
			w[i - 1].enc = 1;
		if (i + 1 < nw)
			w[i + 1].enc = 1;
	}

	for (i = 0; i < nw; i++) {
		if (w[i].ws)
			continue;	/* one SP: the separator */
		if (!w[i].enc) {
			fold_atom(f, s + w[i].off, w[i].len);
			continue;
		}
		/* A run: leading white space, words, trailing white space. */
		start = i == 1 ? 0 : w[i].off;
		for (j = i; j + 2 < nw && w[j + 2].enc; j += 2)
			;
		if (j + 2 == nw)
			j++;
		end = w[j].off + w[j].len;
		fold_encoded(f, s + start, end - start);
		i = j;
	}
	free(w);
}

/*
 * A display name (RFC 5322 section 3.2.5 phrase): atoms as they are, a
 * quoted-string when it holds specials, or encoded-words (RFC 2047
 * section 5 (3)) when it holds anything else or would not fit.
 */
static void
encode_phrase(struct fold *f, const char *s, size_t n)
{
	const unsigned char	*u = (const unsigned char *)s;
	struct obuf		 q;
	size_t			 i, j, wlen = 0, col0 = f->col;
	int			 enc = 0, atoms = 1, first = 1;

	if (n == 0)
		return;
	if (is_ws(u[0]) || is_ws(u[n - 1]))
		enc = 1;
	for (i = 0; i < n && !enc; i++) {
		if (u[i] == '\t' || u[i] < 0x20 || u[i] > 0x7e ||
		    (u[i] == ' ' && i + 1 < n && u[i + 1] == ' ') ||
		    (u[i] == '=' && i + 1 < n && u[i + 1] == '?'))
			enc = 1;
		else if (u[i] == ' ') {
			wlen = 0;
			first = 0;
		} else if (++wlen + (first ? col0 : 1) > MB_FOLD)
			enc = 1;
		if (u[i] != ' ' && !is_atext(u[i]))
			atoms = 0;
	}
	if (!enc && atoms) {
		for (i = 0; i < n; i = j + 1) {
			for (j = i; j < n && u[j] != ' '; j++)
				;
			fold_atom(f, s + i, j - i);
		}
		return;
	}
	if (!enc) {
		/* quoted-string = DQUOTE *([FWS] qcontent) [FWS] DQUOTE */
		memset(&q, 0, sizeof(q));
		ob_addc(&q, '"');
		for (i = 0; i < n; i++) {
			if (u[i] == '"' || u[i] == '\\')
				ob_addc(&q, '\\');
			ob_addc(&q, u[i]);
		}
		ob_addc(&q, '"');
		if (col0 + q.len <= MB_FOLD) {
			fold_atom(f, q.p, q.len);
			ob_wipe(&q);
			return;
		}
		ob_wipe(&q);
	}
	fold_encoded(f, s, n);
}

/* RFC 2047 encode one header value; see mime.h. */
int
mime_header_encode(const char *s, size_t len, int mode, size_t col,
    char **outp, const char **error_r)
{
	struct fold	 f;
	const char	*why;

	*outp = NULL;
	if ((why = value_check(s, len)) != NULL) {
		*error_r = why;
		return -1;
	}
	if (mode != MIME_HDR_TEXT && mode != MIME_HDR_PHRASE) {
		*error_r = "unknown header encoding mode";
		return -1;
	}
	memset(&f, 0, sizeof(f));
	f.col = col < MB_FOLD - 1 ? col : MB_FOLD - 1;
	if (mode == MIME_HDR_TEXT)
		encode_text(&f, s, len);
	else
		encode_phrase(&f, s, len);
	*outp = ob_take(&f.ob);
	return 0;
}

/* Decode encoded words with libetpan; see mime.h. */
char *
mime_header_decode(const char *s)
{
	char	*out = NULL;
	size_t	 idx = 0, n = strlen(s);

	if (mailmime_encoded_phrase_parse("utf-8", s, n, &idx, "utf-8",
	    &out) != MAILIMF_NO_ERROR || out == NULL) {
		free(out);
		return NULL;
	}
	if (idx != n) {
		free(out);
		return NULL;
	}
	return out;
}

/* --- addresses and identifiers ------------------------------------------ */

/* dot-atom-text = 1*atext *("." 1*atext) */
static const char *
dot_atom_check(const char *s, size_t n)
{
	size_t	 i;

	if (n == 0)
		return "is empty";
	if (s[0] == '.' || s[n - 1] == '.')
		return "starts or ends with a dot";
	for (i = 0; i < n; i++) {
		if (s[i] == '.') {
			if (s[i + 1] == '.')
				return "has two dots in a row";
		} else if (!is_atext((unsigned char)s[i]))
			return "has a character outside atext";
	}
	return NULL;
}

/* A host name: LDH labels of 1..63 separated by dots, <= 253 octets. */
static const char *
domain_check(const char *s, size_t n)
{
	size_t	 i, start = 0;
	char	 c;

	if (n == 0 || n > MB_DOMAIN_MAX)
		return "has an empty or over-long domain";
	for (i = 0; i <= n; i++) {
		c = i < n ? s[i] : '.';
		if (c == '.') {
			if (i == start || i - start > MB_LABEL_MAX ||
			    s[start] == '-' || s[i - 1] == '-')
				return "has a bad domain label";
			start = i + 1;
		} else if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-'))
			return "has a character not allowed in a domain";
	}
	return NULL;
}

/* addr-spec = local-part "@" domain (dot-atom local part only). */
const char *
mime_addr_check(const char *addr)
{
	const char	*at, *why;
	size_t		 n;

	if (addr == NULL)
		return "is missing";
	n = strlen(addr);
	if ((why = value_check(addr, n)) != NULL)
		return why;
	if (n > MB_ADDR_MAX)
		return "is longer than 254 octets";
	if ((at = strrchr(addr, '@')) == NULL)
		return "has no @";
	if ((size_t)(at - addr) > MB_LOCAL_MAX)
		return "has a local part over 64 octets";
	if ((why = dot_atom_check(addr, (size_t)(at - addr))) != NULL)
		return why;
	return domain_check(at + 1, strlen(at + 1));
}

/* msg-id = "<" id-left "@" id-right ">" (dot-atom-text both sides). */
static const char *
msgid_check(const char *s, size_t n)
{
	const char	*at;
	const char	*why;

	if (n < 5 || n > MIME_MSGID_MAX || s[0] != '<' || s[n - 1] != '>')
		return "is not <left@right> of at most 250 characters";
	if ((at = memchr(s, '@', n)) == NULL)
		return "has no @";
	if ((why = dot_atom_check(s + 1, (size_t)(at - s - 1))) != NULL)
		return why;
	return dot_atom_check(at + 1, (size_t)(s + n - 1 - at - 1));
}

/*
 * type "/" subtype, each an RFC 2045 token:
 * token = 1*<any CHAR except SPACE, CTLs, or tspecials>
 */
static const char *
ctype_check(const char *ct)
{
	const char	*slash;
	size_t		 i, n = strlen(ct);
	int		 c;

	if (n == 0 || n > MB_CTYPE_MAX)
		return "content type is empty or too long";
	if ((slash = strchr(ct, '/')) == NULL || slash == ct ||
	    slash[1] == '\0')
		return "content type is not type/subtype";
	for (i = 0; i < n; i++) {
		if (ct + i == slash)
			continue;
		c = (unsigned char)ct[i];
		if (c <= 0x20 || c >= 0x7f ||
		    strchr("()<>@,;:\\\"/[]?=", c) != NULL)
			return "content type is not made of tokens";
	}
	return NULL;
}

/* An extra header: a field name and a printable ASCII value. */
static const char *
xheader_check(const struct mime_header *h)
{
	size_t	 i, n;

	if (h->name == NULL || h->value == NULL)
		return "headers: a name or value is missing";
	n = strlen(h->name);
	if (n == 0 || n > MB_XNAME_MAX)
		return "headers: a name is empty or too long";
	/* field-name = 1*ftext; ftext = %d33-57 / %d59-126 */
	for (i = 0; i < n; i++) {
		if ((unsigned char)h->name[i] < 33 ||
		    (unsigned char)h->name[i] > 126 || h->name[i] == ':')
			return "headers: a name is not made of ftext";
	}
	for (i = 0; i < nitems(reserved_headers); i++) {
		if (strcasecmp(h->name, reserved_headers[i]) == 0)
			return "headers: a name is one the builder writes";
	}
	if (strncasecmp(h->name, "Content-", 8) == 0)
		return "headers: a name is one the builder writes";
	n = strlen(h->value);
	if (strpbrk(h->value, "\r\n") != NULL)
		return "headers: a value contains CR, LF or NUL";
	if (n > MB_XVALUE_MAX)
		return "headers: a value is longer than 900 bytes";
	for (i = 0; i < n; i++) {
		if ((unsigned char)h->value[i] < 0x20 ||
		    (unsigned char)h->value[i] > 0x7e)
			return "headers: a value is not printable ASCII";
	}
	return NULL;
}

/* RFC 4648 base32, lower case, unpadded; out holds 8n/5 + 2 bytes. */
static void
base32_encode(const unsigned char *s, size_t n, char *out)
{
	static const char	 al[] = "abcdefghijklmnopqrstuvwxyz234567";
	uint32_t		 acc = 0;
	size_t			 i, o = 0;
	int			 bits = 0;

	for (i = 0; i < n; i++) {
		acc = acc << 8 | s[i];
		bits += 8;
		while (bits >= 5) {
			out[o++] = al[acc >> (bits - 5) & 31];
			bits -= 5;
		}
	}
	if (bits > 0)
		out[o++] = al[acc << (5 - bits) & 31];
	out[o] = '\0';
}

/* A fresh Message-ID; see mime.h. */
char *
mime_message_id(const char *domain)
{
	unsigned char	 rnd[MB_MSGID_RND];
	char		 b32[MB_MSGID_RND * 8 / 5 + 2];
	char		*id;

	if (domain == NULL || domain_check(domain, strlen(domain)) != NULL)
		return NULL;
	hash_random(rnd, sizeof(rnd));
	base32_encode(rnd, sizeof(rnd), b32);
	xasprintf(&id, "<%s@%s>", b32, domain);
	if (strlen(id) > MIME_MSGID_MAX) {
		free(id);
		return NULL;
	}
	return id;
}

/*
 * "=_sp" and 128 random bits in base32: no QP or base64 line can contain
 * "=_", and the parameter still fits the Content-Type line.
 */
static void
boundary_new(char *out, size_t outsz)
{
	unsigned char	 rnd[MB_BOUNDARY_RND];
	char		 b32[MB_BOUNDARY_RND * 8 / 5 + 2];

	hash_random(rnd, sizeof(rnd));
	base32_encode(rnd, sizeof(rnd), b32);
	snprintf(out, outsz, "=_sp%s", b32);
}

/* From and To values: [phrase] "<" addr ">", or the bare addr-spec. */
static int
mailbox_value(const char *name, const char *addr, size_t col, char **outp,
    const char **why)
{
	char	*phrase;

	*outp = NULL;
	if ((*why = mime_addr_check(addr)) != NULL)
		return -1;
	if (name == NULL || *name == '\0') {
		*outp = xstrdup(addr);
		return 0;
	}
	if (strlen(name) > MB_NAME_MAX) {
		*why = "is longer than 256 bytes";
		return -1;
	}
	if (mime_header_encode(name, strlen(name), MIME_HDR_PHRASE,
	    col + MB_ETPAN_SLACK, &phrase, why) != 0)
		return -1;
	xasprintf(outp, "%s <%s>", phrase, addr);
	free(phrase);
	return 0;
}

/* --- attachments -------------------------------------------------------- */

/*
 * The filename in printable ASCII, for readers without RFC 2231: each other
 * code point, quote and backslash become "_"; at most 60 characters, the
 * extension kept.
 */
static char *
filename_fallback(const char *name)
{
	const unsigned char	*u = (const unsigned char *)name;
	struct obuf		 b;
	const char		*dot;
	char			*s, *t;
	size_t			 i, k, n = strlen(name), ext;

	memset(&b, 0, sizeof(b));
	for (i = 0; i < n; i += k) {
		k = u8_seq(u + i, n - i);
		if (k == 0)
			k = 1;
		if (k == 1 && u[i] >= 0x20 && u[i] <= 0x7e && u[i] != '"' &&
		    u[i] != '\\')
			ob_addc(&b, u[i]);
		else
			ob_addc(&b, '_');
	}
	s = ob_take(&b);
	if ((n = strlen(s)) <= MB_FALLBACK_MAX)
		return s;
	dot = strrchr(s, '.');
	ext = dot != NULL && n - (size_t)(dot - s) <= 16 ?
	    n - (size_t)(dot - s) : 0;
	t = xmalloc(MB_FALLBACK_MAX + 1);
	memcpy(t, s, MB_FALLBACK_MAX - ext);
	memcpy(t + MB_FALLBACK_MAX - ext, s + n - ext, ext);
	t[MB_FALLBACK_MAX] = '\0';
	free(s);
	return t;
}

/*
 * The Content-Disposition value, folded:
 *   attachment; filename="name"                  (short plain ASCII)
 *   attachment;\r\n filename*=utf-8''%..;\r\n filename="fallback"
 *   attachment;\r\n filename*0*=utf-8''%..;\r\n filename*1*=%..; ...
 * RFC 2231 section 7: attribute-char is any CHAR but SP, CTLs, "*", "'",
 * "%" and tspecials; of those, the RFC 5987 attr-char set stays as it is
 * and everything else is %XX.  Sections never split a
 * UTF-8 sequence, and each line stays within 78 characters.
 */
static char *
disposition_value(const char *name)
{
	static const char	 hex[] = "0123456789ABCDEF";
	const unsigned char	*u = (const unsigned char *)name;
	struct obuf		 d, pe;
	char			*fb, prefix[32];
	size_t			*cut, ncut = 0, i, k, j, n = strlen(name);
	size_t			 sec, start, lim;

	fb = filename_fallback(name);
	memset(&d, 0, sizeof(d));
	ob_adds(&d, "attachment;");
	/*
	 * The plain form only for names every reader takes as they are:
	 * readers 2047-decode "=?" and collapse white space in filename=.
	 */
	if (strcmp(fb, name) == 0 && strstr(name, "=?") == NULL &&
	    strstr(name, "  ") == NULL && name[0] != ' ' &&
	    name[n - 1] != ' ') {
		/* "Content-Disposition: attachment; filename=\"" is 43. */
		ob_adds(&d, 43 + strlen(fb) + 1 <= MB_HDR_LINE ? " " : "\r\n ");
		ob_adds(&d, "filename=\"");
		ob_adds(&d, fb);
		ob_addc(&d, '"');
		free(fb);
		return ob_take(&d);
	}

	/* Percent-encode, noting where each code point starts. */
	memset(&pe, 0, sizeof(pe));
	cut = xcalloc(n + 1, sizeof(*cut));
	for (i = 0; i < n; i += k) {
		k = u8_seq(u + i, n - i);
		if (k == 0)
			k = 1;
		cut[ncut++] = pe.len;
		for (j = i; j < i + k; j++) {
			if ((u[j] >= 'a' && u[j] <= 'z') ||
			    (u[j] >= 'A' && u[j] <= 'Z') ||
			    (u[j] >= '0' && u[j] <= '9') ||
			    (u[j] != '\0' && u[j] < 0x7f &&
			    strchr("!#$&+-.^_`|~", u[j]) != NULL))
				ob_addc(&pe, u[j]);
			else {
				ob_addc(&pe, '%');
				ob_addc(&pe, hex[u[j] >> 4]);
				ob_addc(&pe, hex[u[j] & 15]);
			}
		}
	}
	cut[ncut] = pe.len;

	if (strlen(" filename*=utf-8'';") + pe.len <= MB_HDR_LINE) {
		ob_adds(&d, "\r\n filename*=utf-8''");
		ob_add(&d, pe.p, pe.len);
		ob_addc(&d, ';');
	} else {
		/* Continuations: filename*0*=utf-8''...; filename*1*=... */
		for (sec = 0, start = 0, i = 0; start < pe.len; sec++) {
			snprintf(prefix, sizeof(prefix), " filename*%zu*=%s",
			    sec, sec == 0 ? "utf-8''" : "");
			lim = MB_HDR_LINE - strlen(prefix) - 1;
			while (i + 1 <= ncut && cut[i + 1] - start <= lim &&
			    cut[i] < pe.len)
				i++;
			if (cut[i] == start)
				log_panic("mime_build: filename section");
			ob_adds(&d, "\r\n");
			ob_adds(&d, prefix);
			ob_add(&d, pe.p + start, cut[i] - start);
			ob_addc(&d, ';');
			start = cut[i];
		}
	}
	ob_adds(&d, "\r\n filename=\"");
	ob_adds(&d, fb);
	ob_addc(&d, '"');
	ob_wipe(&pe);
	free(cut);
	free(fb);
	return ob_take(&d);
}

/* --- bodies ------------------------------------------------------------- */

/*
 * Quoted-printable (RFC 2045 section 6.7) of text: every line break (CRLF,
 * LF or a lone CR) becomes CRLF; "=", controls, bytes over 126 and white
 * space at the end of a line are =XX; a line is at most 76 characters with
 * its soft break; "." or "From " opening a line is encoded too, for
 * transports that would stuff or quote it.  Text that does not end with a
 * line break ends with a soft break, so the output ends with CRLF and
 * decodes to exactly the text.
 */
static void
qp_encode(struct obuf *o, const char *s, size_t n)
{
	static const char	 hex[] = "0123456789ABCDEF";
	const unsigned char	*u = (const unsigned char *)s;
	size_t			 i, col = 0, unit;
	int			 last, lit;

	for (i = 0; i < n; i++) {
		if (u[i] == '\r' || u[i] == '\n') {
			if (u[i] == '\r' && i + 1 < n && u[i + 1] == '\n')
				i++;
			ob_add(o, "\r\n", 2);
			col = 0;
			continue;
		}
		last = i + 1 == n || u[i + 1] == '\r' || u[i + 1] == '\n';
		for (;;) {
			lit = (u[i] >= 33 && u[i] <= 126 && u[i] != '=') ||
			    (is_ws(u[i]) && !last);
			if (col == 0 && (u[i] == '.' || (u[i] == 'F' &&
			    n - i >= 5 && memcmp(s + i, "From ", 5) == 0)))
				lit = 0;
			unit = lit ? 1 : 3;
			/* The last unit of a line needs no room for "=". */
			if (col + unit + (last ? 0 : 1) <= MB_QP_LINE)
				break;
			ob_add(o, "=\r\n", 3);
			col = 0;
		}
		if (lit)
			ob_addc(o, u[i]);
		else {
			ob_addc(o, '=');
			ob_addc(o, hex[u[i] >> 4]);
			ob_addc(o, hex[u[i] & 15]);
		}
		col += unit;
	}
	if (n > 0 && u[n - 1] != '\r' && u[n - 1] != '\n')
		ob_add(o, "=\r\n", 3);
}

/* --- libetpan ----------------------------------------------------------- */

/* A libetpan constructor's result: NULL means no memory. */
static void *
etpan_check(void *p)
{
	if (p == NULL)
		log_fatalx("mime_build: libetpan out of memory");
	return p;
}

/* A libetpan status: anything but success here means no memory. */
static void
etpan_ok(int r)
{
	if (r != MAILIMF_NO_ERROR)
		log_fatalx("mime_build: libetpan error %d", r);
}

/* Message-IDs (checked) as libetpan wants them: a list without <>. */
static clist *
msgid_list(const char *ids)
{
	clist		*l = etpan_check(clist_new());
	const char	*p = ids, *e;

	for (;;) {
		while (is_ws((unsigned char)*p))
			p++;
		if (*p == '\0')
			break;
		for (e = p; *e != '\0' && !is_ws((unsigned char)*e); e++)
			;
		if (clist_append(l, xstrndup(p + 1, (size_t)(e - p - 2))) < 0)
			log_fatalx("mime_build: libetpan out of memory");
		p = e;
	}
	return l;
}

/*
 * A leaf part: content type (checked) with an optional charset and name,
 * a transfer encoding and an optional disposition value (taken).
 */
static struct mailmime *
part_single(const char *ctype, const char *charset, const char *name,
    char *disposition, int encoding)
{
	struct mailmime_content		*ct;
	struct mailmime_fields		*fields;
	struct mailmime_disposition	*dsp;
	struct mailmime_field		*field;
	struct mailmime_parameter	*pa;

	if ((ct = mailmime_content_new_with_str(ctype)) == NULL) {
		free(disposition);
		return NULL;
	}
	if (ct->ct_parameters == NULL)
		ct->ct_parameters = etpan_check(clist_new());
	if (charset != NULL) {
		/* mailmime_param_new_with_data copies its arguments. */
		pa = etpan_check(mailmime_param_new_with_data("charset",
		    (char *)charset));
		if (clist_append(ct->ct_parameters, pa) < 0)
			log_fatalx("mime_build: libetpan out of memory");
	}
	if (name != NULL) {
		pa = etpan_check(mailmime_param_new_with_data("name",
		    (char *)name));
		if (clist_append(ct->ct_parameters, pa) < 0)
			log_fatalx("mime_build: libetpan out of memory");
	}
	fields = etpan_check(mailmime_fields_new_encoding(encoding));
	if (disposition != NULL) {
		dsp = etpan_check(mailmime_disposition_new(
		    etpan_check(mailmime_disposition_type_new(
		    MAILMIME_DISPOSITION_TYPE_EXTENSION, disposition)),
		    etpan_check(clist_new())));
		field = etpan_check(mailmime_field_new(
		    MAILMIME_FIELD_DISPOSITION, NULL, NULL, NULL, NULL, 0, dsp,
		    NULL, NULL));
		etpan_ok(mailmime_fields_add(fields, field));
	}
	return etpan_check(mailmime_new(MAILMIME_SINGLE, NULL, 0, fields, ct,
	    NULL, NULL, NULL, NULL, NULL, NULL));
}

/*
 * Attach a body (not copied: it must outlive the write).  encoded = 1:
 * the bytes are already in the part's transfer encoding.
 */
static void
part_body(struct mailmime *part, const char *p, size_t len, int encoded)
{
	part->mm_data.mm_single = etpan_check(mailmime_data_new(
	    MAILMIME_DATA_TEXT,
	    mailmime_transfer_encoding_get(part->mm_mime_fields), encoded,
	    p, len, NULL));
}

/* An empty multipart/<subtype> with our boundary. */
static struct mailmime *
part_multi(const char *subtype)
{
	struct mailmime_content		*ct;
	struct mailmime_parameter	*pa;
	char				 boundary[64], type[32];

	snprintf(type, sizeof(type), "multipart/%s", subtype);
	ct = etpan_check(mailmime_content_new_with_str(type));
	if (ct->ct_parameters == NULL)
		ct->ct_parameters = etpan_check(clist_new());
	boundary_new(boundary, sizeof(boundary));
	pa = etpan_check(mailmime_param_new_with_data("boundary", boundary));
	if (clist_append(ct->ct_parameters, pa) < 0)
		log_fatalx("mime_build: libetpan out of memory");
	return etpan_check(mailmime_new(MAILMIME_MULTIPLE, NULL, 0,
	    etpan_check(mailmime_fields_new_empty()), ct, NULL, NULL, NULL,
	    etpan_check(clist_new()), NULL, NULL));
}

/* A text/<subtype> part from its quoted-printable encoding. */
static struct mailmime *
part_text(const char *ctype, struct obuf *qp)
{
	struct mailmime	*part;

	part = etpan_check(part_single(ctype, "utf-8", NULL, NULL,
	    MAILMIME_MECHANISM_QUOTED_PRINTABLE));
	part_body(part, qp->p != NULL ? qp->p : "", qp->len, 1);
	return part;
}

/*
 * The MIME tree under the message: text/plain, or multipart/alternative
 * of text and HTML, inside a multipart/mixed with the attachments.  NULL
 * only if libetpan refuses a content type that passed ctype_check().
 */
static struct mailmime *
body_tree(struct build *b)
{
	struct mailmime			*body, *mixed, *part;
	const struct letter_attachment	*a;
	const char			*ct;
	char				*fb;
	size_t				 i;

	if (b->text != NULL && b->html != NULL) {
		body = part_multi("alternative");
		etpan_ok(mailmime_add_part(body,
		    part_text("text/plain", &b->qp_text)));
		etpan_ok(mailmime_add_part(body,
		    part_text("text/html", &b->qp_html)));
	} else if (b->html != NULL)
		body = part_text("text/html", &b->qp_html);
	else
		body = part_text("text/plain", &b->qp_text);
	if (b->doc == NULL || b->doc->natt == 0)
		return body;

	mixed = part_multi("mixed");
	etpan_ok(mailmime_add_part(mixed, body));
	for (i = 0; i < b->doc->natt; i++) {
		a = &b->doc->att[i];
		/* RFC 2046 5.2.1: message/rfc822 is never base64. */
		ct = strncasecmp(a->content_type, "message/", 8) == 0 ||
		    strncasecmp(a->content_type, "multipart/", 10) == 0 ?
		    "application/octet-stream" : a->content_type;
		fb = filename_fallback(a->filename);
		part = part_single(ct, NULL, fb, disposition_value(a->filename),
		    MAILMIME_MECHANISM_BASE64);
		free(fb);
		if (part == NULL) {
			mailmime_free(mixed);
			return NULL;
		}
		part_body(part, (const char *)a->data, a->len, 0);
		etpan_ok(mailmime_add_part(mixed, part));
	}
	return mixed;
}

/* The RFC 5322 header, in the order it is written. */
static struct mailimf_fields *
header_fields(struct build *b)
{
	const struct mime_out		*o = b->out;
	struct mailimf_fields		*f;
	struct mailimf_address_list	*rt;
	struct tm			 tm;
	time_t				 t = o->date;
	size_t				 i;

	f = etpan_check(mailimf_fields_new_empty());
	if (gmtime_r(&t, &tm) == NULL)
		log_panic("mime_build: date checked but not convertible");
	etpan_ok(mailimf_fields_add_data(f, etpan_check(mailimf_date_time_new(
	    tm.tm_mday, tm.tm_mon + 1, tm.tm_year + 1900, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, 0)), NULL, NULL, NULL, NULL, NULL, NULL,
	    NULL, NULL, NULL, NULL));
	etpan_ok(mailimf_fields_add(f, etpan_check(mailimf_field_new_custom(
	    xstrdup("From"), b->from))));
	b->from = NULL;
	etpan_ok(mailimf_fields_add(f, etpan_check(mailimf_field_new_custom(
	    xstrdup("To"), b->to))));
	b->to = NULL;
	if (b->reply_to != NULL) {
		rt = etpan_check(mailimf_address_list_new_empty());
		etpan_ok(mailimf_address_list_add_mb(rt, NULL, b->reply_to));
		b->reply_to = NULL;
		etpan_ok(mailimf_fields_add_data(f, NULL, NULL, NULL, rt, NULL,
		    NULL, NULL, NULL, NULL, NULL, NULL));
	}
	if (b->subject != NULL) {
		etpan_ok(mailimf_fields_add_data(f, NULL, NULL, NULL, NULL,
		    NULL, NULL, NULL, NULL, NULL, NULL, b->subject));
		b->subject = NULL;
	}
	/* libetpan writes the brackets itself. */
	etpan_ok(mailimf_fields_add_data(f, NULL, NULL, NULL, NULL, NULL,
	    NULL, NULL, xstrndup(b->msgid + 1, strlen(b->msgid) - 2), NULL,
	    NULL, NULL));
	if (o->in_reply_to != NULL)
		etpan_ok(mailimf_fields_add_data(f, NULL, NULL, NULL, NULL,
		    NULL, NULL, NULL, NULL, msgid_list(o->in_reply_to), NULL,
		    NULL));
	if (o->references != NULL)
		etpan_ok(mailimf_fields_add_data(f, NULL, NULL, NULL, NULL,
		    NULL, NULL, NULL, NULL, NULL, msgid_list(o->references),
		    NULL));
	for (i = 0; i < o->nheaders; i++)
		etpan_ok(mailimf_fields_add(f, etpan_check(
		    mailimf_field_new_custom(xstrdup(o->headers[i].name),
		    xstrdup(o->headers[i].value)))));
	return f;
}

/* --- mime_build --------------------------------------------------------- */

/* CRLF only, no NUL, no line over 998 octets, CRLF at the end. */
static const char *
msg_check(const char *s, size_t n)
{
	size_t	 i, start = 0;

	for (i = 0; i < n; i++) {
		if (s[i] == '\0')
			return "output: contains NUL";
		if (s[i] == '\n')
			return "output: bare LF";
		if (s[i] != '\r')
			continue;
		if (i + 1 == n || s[i + 1] != '\n')
			return "output: bare CR";
		if (i - start > MB_LINE_MAX)
			return "output: line longer than 998 octets";
		start = i + 2;
		i++;
	}
	if (n < 2 || start != n)
		return "output: not CRLF-terminated";
	return NULL;
}

/* Validate and format everything that goes into a header or a body. */
static int
build_check(struct build *b, const char **error_r)
{
	const struct mime_out	*o = b->out;
	const struct letter_doc	*doc = o->doc;
	const char		*why, *s, *dom;
	char			*id, *addr;
	size_t			 i, n;
	struct tm		 tm;
	time_t			 t = o->date;

#define FAIL(field) do {						\
	*error_r = field;						\
	return -1;							\
} while (0)
#define CHECK(expr, field) do {						\
	if ((why = (expr)) != NULL)					\
		FAIL(field);						\
} while (0)

	if ((doc == NULL) == (o->notice == NULL))
		FAIL("content: give a letter or a notice, not both or none");
	CHECK(mime_addr_check(o->from_addr), "from_addr: not a valid address");
	CHECK(mime_addr_check(o->to_addr), "to_addr: not a valid address");
	if (mailbox_value(o->from_name, o->from_addr, strlen("From: "),
	    &b->from, &why) != 0)
		FAIL("from_name: contains CR, LF or NUL, is not UTF-8 or is "
		    "longer than 256 bytes");
	if (mailbox_value(o->to_name, o->to_addr, strlen("To: "), &b->to,
	    &why) != 0)
		FAIL("to_name: contains CR, LF or NUL, is not UTF-8 or is "
		    "longer than 256 bytes");
	dom = strrchr(o->from_addr, '@') + 1;

	if (o->reply_token != NULL) {
		n = strlen(o->reply_token);
		if (value_check(o->reply_token, n) != NULL)
			FAIL("reply_token: contains CR, LF or NUL");
		if (n == 0 || n > MB_TOKEN_MAX)
			FAIL("reply_token: empty or too long for a local part");
		for (i = 0; i < n; i++) {
			if (!((o->reply_token[i] >= 'a' &&
			    o->reply_token[i] <= 'z') ||
			    (o->reply_token[i] >= 'A' &&
			    o->reply_token[i] <= 'Z') ||
			    (o->reply_token[i] >= '0' &&
			    o->reply_token[i] <= '9')))
				FAIL("reply_token: not letters and digits");
		}
		s = o->reply_domain != NULL ? o->reply_domain : dom;
		if (value_check(s, strlen(s)) != NULL)
			FAIL("reply_domain: contains CR, LF or NUL");
		xasprintf(&addr, "reply+%s@%s", o->reply_token, s);
		b->reply_to = addr;
		if (mime_addr_check(addr) != NULL)
			FAIL("reply_domain: not a valid domain");
	} else if (o->reply_domain != NULL)
		FAIL("reply_domain: given without reply_token");

	s = o->subject != NULL ? o->subject :
	    doc != NULL && doc->subject != NULL ? doc->subject : "";
	n = strlen(s);
	CHECK(value_check(s, n), "subject: contains CR, LF or NUL, or is "
	    "not UTF-8");
	if (n > MB_SUBJECT_MAX)
		FAIL("subject: longer than 998 bytes");
	if (n > 0 && mime_header_encode(s, n, MIME_HDR_TEXT,
	    strlen("Subject: ") + MB_ETPAN_SLACK, &b->subject, &why) != 0)
		FAIL("subject: cannot be encoded");

	if (gmtime_r(&t, &tm) == NULL || tm.tm_year + 1900 < 1970 ||
	    tm.tm_year + 1900 > 9999)
		FAIL("date: outside 1970..9999");

	if (o->message_id != NULL) {
		n = strlen(o->message_id);
		CHECK(value_check(o->message_id, n),
		    "message_id: contains CR, LF or NUL");
		CHECK(msgid_check(o->message_id, n),
		    "message_id: not <left@right> in dot-atoms");
		memcpy(b->msgid, o->message_id, n + 1);
	} else {
		s = o->msgid_domain != NULL ? o->msgid_domain : dom;
		if (value_check(s, strlen(s)) != NULL)
			FAIL("msgid_domain: contains CR, LF or NUL");
		if ((id = mime_message_id(s)) == NULL)
			FAIL("msgid_domain: not a valid domain");
		strlcpy_sp(b->msgid, id, sizeof(b->msgid));
		free(id);
	}
	if (o->in_reply_to != NULL) {
		n = strlen(o->in_reply_to);
		CHECK(value_check(o->in_reply_to, n),
		    "in_reply_to: contains CR, LF or NUL");
		CHECK(msgid_check(o->in_reply_to, n),
		    "in_reply_to: not <left@right> in dot-atoms");
	}
	if (o->references != NULL) {
		const char	*p = o->references, *e;
		size_t		 count = 0;

		CHECK(value_check(p, strlen(p)),
		    "references: contains CR, LF or NUL");
		for (;;) {
			while (is_ws((unsigned char)*p))
				p++;
			if (*p == '\0')
				break;
			for (e = p; *e != '\0' && !is_ws((unsigned char)*e);
			    e++)
				;
			CHECK(msgid_check(p, (size_t)(e - p)),
			    "references: not <left@right> in dot-atoms");
			if (++count > MB_REFS_MAX)
				FAIL("references: more than 64 Message-IDs");
			p = e;
		}
		if (count == 0)
			FAIL("references: empty");
	}
	if (o->nheaders > 0 && o->headers == NULL)
		FAIL("headers: missing");
	for (i = 0; i < o->nheaders; i++)
		CHECK(xheader_check(&o->headers[i]), why);

	/* The content. */
	if (doc == NULL)
		b->text = o->notice;
	else {
		if (doc->text != NULL && (*doc->text != '\0' ||
		    doc->html == NULL || *doc->html == '\0'))
			b->text = doc->text;
		if (doc->html != NULL && *doc->html != '\0')
			b->html = doc->html;
		if (b->text == NULL && b->html == NULL)
			b->text = "";
		if (doc->natt > 0 && doc->att == NULL)
			FAIL("attachments: missing");
		for (i = 0; i < doc->natt; i++) {
			const struct letter_attachment *a = &doc->att[i];

			if (a->filename == NULL || *a->filename == '\0' ||
			    strlen(a->filename) > MB_FILENAME_MAX)
				FAIL("attachment filename: empty or longer "
				    "than 255 bytes");
			CHECK(value_check(a->filename, strlen(a->filename)),
			    "attachment filename: contains CR, LF or NUL, or "
			    "is not UTF-8");
			if (a->content_type == NULL)
				FAIL("attachment content_type: missing");
			CHECK(ctype_check(a->content_type),
			    "attachment content_type: not type/subtype tokens");
			if (a->len > 0 && a->data == NULL)
				FAIL("attachment data: missing");
		}
	}
	if (b->text != NULL) {
		CHECK(text_check(b->text), "text: not valid UTF-8");
		qp_encode(&b->qp_text, b->text, strlen(b->text));
	}
	if (b->html != NULL) {
		CHECK(text_check(b->html), "html: not valid UTF-8");
		qp_encode(&b->qp_html, b->html, strlen(b->html));
	}
	return 0;
#undef CHECK
#undef FAIL
}

/* Free what build_check() made and libetpan did not take. */
static void
build_free(struct build *b)
{
	free(b->from);
	free(b->to);
	free(b->reply_to);
	free(b->subject);
	b->from = b->to = b->reply_to = b->subject = NULL;
	ob_wipe(&b->qp_text);
	ob_wipe(&b->qp_html);
}

/* Build one message; see mime.h. */
int
mime_build(const struct mime_out *o, struct mime_msg *msg,
    const char **error_r)
{
	struct build	 b;
	struct mailmime	*root, *body;
	struct obuf	 ob;
	const char	*why;
	int		 col = 0, r;

	memset(msg, 0, sizeof(*msg));
	memset(&b, 0, sizeof(b));
	b.out = o;
	b.doc = o->doc;
	if (build_check(&b, error_r) != 0) {
		build_free(&b);
		return -1;
	}
	if ((body = body_tree(&b)) == NULL) {
		build_free(&b);
		*error_r = "attachment content_type: refused by libetpan";
		return -1;
	}
	root = etpan_check(mailmime_new_message_data(body));
	mailmime_set_imf_fields(root, header_fields(&b));

	/* The bodies are not copied: free them only after the write. */
	memset(&ob, 0, sizeof(ob));
	r = mailmime_write_driver(ob_write, &ob, &col, root);
	mailmime_free(root);
	build_free(&b);
	if (r != MAILIMF_NO_ERROR) {
		ob_wipe(&ob);
		*error_r = "output: libetpan could not write the message";
		return -1;
	}
	if ((why = msg_check(ob.p, ob.len)) != NULL) {
		log_warnx("mime_build: refused own output reason=\"%s\"", why);
		ob_wipe(&ob);
		*error_r = why;
		return -1;
	}
	msg->len = ob.len;
	msg->data = ob_take(&ob);
	strlcpy_sp(msg->message_id, b.msgid, sizeof(msg->message_id));
	return 0;
}

/* Wipe and free a built message. */
void
mime_msg_clear(struct mime_msg *msg)
{
	if (msg == NULL)
		return;
	if (msg->data != NULL) {
		hash_wipe(msg->data, msg->len);
		free(msg->data);
	}
	memset(msg, 0, sizeof(*msg));
}
