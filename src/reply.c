/*
 * reply.c - the new text of a patient's email reply.
 *
 * reply_extract() cuts a plain-text reply body at the first line that
 * starts quoted history, then drops a "-- " signature and trailing
 * mobile footers from what is left.  reply_html_to_text() renders an
 * HTML-only reply as text for it.
 *
 * The body is split into lines once; each rule looks at a line and at
 * most a few lines after it, with joined text capped at JOINMAX bytes,
 * so the whole scan is linear in the body size.  Keywords are compared
 * ASCII-case-insensitively; non-ASCII bytes (the UTF-8 of "Från",
 * "Envoyé", "đã viết") must match exactly.  Errors: only ENOMEM.
 */
#include "build.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reply.h"

#define JOINMAX		1024	/* bytes of joined lines a rule looks at */
#define SHAREMAX	2000	/* longest line searched for an inline "On" */
#define ATTRLINES	6	/* lines an attribution may be wrapped over */
#define WROTETAIL	256	/* bytes at an attribution's end holding "wrote" */
#define HDRLOOK		6	/* lines after "From:" searched for "Sent:" */

struct line {
	const char	*s;
	size_t		 len;
};

static int	 lower(int);
static size_t	 prefix_ci(const char *, size_t, const char *);
static int	 contains_ci(const char *, size_t, const char *);
static size_t	 lskip(const char *, size_t);
static size_t	 rtrim(const char *, size_t);
static size_t	 rtrim_dash(const char *, size_t);
static int	 loose_attribution(const struct line *);
static int	 is_blank(const struct line *);
static int	 broken_quote(const struct line *, const struct line *);
static int	 is_quoted(const struct line *);
static int	 has_time(const char *, size_t);
static int	 on_wrote_text(const char *, size_t, size_t);
static size_t	 on_wrote(const struct line *, size_t, size_t);
static size_t	 share_line(const struct line *);
static int	 header_word(const struct line *, const char *const *);
static int	 from_block(const struct line *, size_t, size_t);
static int	 separator(const struct line *);
static int	 dashed_title(const char *, size_t);
static int	 underscores(const struct line *);
static int	 android_wrote(const struct line *);
static int	 is_signature(const struct line *);
static int	 is_footer(const struct line *);

/* Words opening an attribution line ("On <date>, <name> wrote:"). */
static const char *const on_words[] = {
	"on ", "le ", "am ", "op ", "el ", "il ", "em ", "den ", "dne ",
	"p\xc3\xa5 ",			/* på */
	"v\xc3\xa0o ",			/* vào */
	"w dniu ", "sent from ", NULL
};

/* Verbs closing an attribution line. */
static const char *const wrote_words[] = {
	"wrote", "sent", "schrieb", "\xc3\xa9" "crit", "schreef", "skrev",
	"napisa\xc5\x82",		/* napisał */
	"\xc4\x91\xc3\xa3 vi\xe1\xba\xbft",	/* đã viết */
	"escribi\xc3\xb3", "scritto", "geschreven", "escreveu", "kirjoitti",
	"\xd0\xbd\xd0\xb0\xd0\xbf\xd0\xb8\xd1\x81\xd0\xb0\xd0\xbb", /* написал */
	NULL
};

/* First field of an Outlook header block. */
static const char *const from_words[] = {
	"from", "von", "de", "van", "fra", "fr\xc3\xa5n", "od", "da",
	"t\xe1\xbb\xab",		/* từ */
	"\xd0\xbe\xd1\x82", "\xd0\x9e\xd1\x82",	/* от, От */
	NULL
};

/* A date field, which some clients put first. */
static const char *const date_words[] = { "date", "datum", NULL };

/* Fields that follow it. */
static const char *const hdr_words[] = {
	"sent", "date", "to", "subject", "cc",
	"gesendet", "an", "betreff", "datum",
	"envoy\xc3\xa9", "\xc3\xa0", "objet",
	"verzonden", "aan", "onderwerp",
	"sendt", "til", "emne", "skickat", "till", "\xc3\xa4mne",
	"wys\xc5\x82" "ane", "do", "temat",
	"g\xe1\xbb\xad" "i", "g\xe1\xbb\xad" "i l\xc3\xba" "c",
	"\xc4\x91\xe1\xba\xbfn", "ch\xe1\xbb\xa7 \xc4\x91\xe1\xbb\x81",
	/* отправлено, Отправлено, кому, Кому, тема, Тема */
	"\xd0\xbe\xd1\x82\xd0\xbf\xd1\x80\xd0\xb0\xd0\xb2\xd0\xbb\xd0\xb5\xd0\xbd\xd0\xbe",
	"\xd0\x9e\xd1\x82\xd0\xbf\xd1\x80\xd0\xb0\xd0\xb2\xd0\xbb\xd0\xb5\xd0\xbd\xd0\xbe",
	"\xd0\xba\xd0\xbe\xd0\xbc\xd1\x83", "\xd0\x9a\xd0\xbe\xd0\xbc\xd1\x83",
	"\xd1\x82\xd0\xb5\xd0\xbc\xd0\xb0", "\xd0\xa2\xd0\xb5\xd0\xbc\xd0\xb0",
	"inviato", "oggetto", "a", "enviado", "para", "asunto", "assunto",
	NULL
};

/* Phrases of a "-----Original Message-----" or forward separator. */
static const char *const sep_words[] = {
	"original message", "forwarded message",
	"ursp\xc3\xbcngliche nachricht", "urspr\xc3\xbcngliche nachricht",
	"weitergeleitete nachricht",
	"oprindelig meddelelse", "videresendt meddelelse",
	"opprinnelig melding", "originalmeddelande", "vidarebefordrat",
	"message d'origine", "message transf\xc3\xa9r\xc3\xa9",
	"oorspronkelijk bericht", "doorgestuurd bericht",
	"mensaje original", "messaggio originale",
	"wiadomo\xc5\x9b\xc4\x87 oryginalna",
	NULL
};

/* Mobile and webmail footers (compared at the start of a line). */
static const char *const footers[] = {
	"sent from my ", "sent from mail for windows", "sent from yahoo mail",
	"sent from outlook", "sent from samsung", "sent from the all new aol",
	"sent from aol", "sent via ", "sent with sparrow", "get outlook for ",
	"von meinem ", "gesendet von meinem ", "envoy\xc3\xa9 de mon ",
	"verzonden vanaf mijn ", "verstuurd vanaf mijn ", "verzonden met ",
	"skickat fr\xc3\xa5n min ", "sendt fra min ",
	"wys\xc5\x82" "ane z mojego ", "enviado desde mi ", "inviato da ",
	NULL
};

static int
lower(int c)
{
	return (c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c;
}

/* Length of p if s[0..n) starts with it (ASCII case folded), else 0. */
static size_t
prefix_ci(const char *s, size_t n, const char *p)
{
	size_t	 i;

	for (i = 0; p[i] != '\0'; i++)
		if (i >= n || lower((unsigned char)s[i]) !=
		    lower((unsigned char)p[i]))
			return 0;
	return i;
}

/* Does s[0..n) contain p?  Callers cap n, so the naive scan is cheap. */
static int
contains_ci(const char *s, size_t n, const char *p)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		if (prefix_ci(s + i, n - i, p))
			return 1;
	return 0;
}

/* Offset of the first byte that is not blank or a bold marker. */
static size_t
lskip(const char *s, size_t n)
{
	size_t	 i = 0;

	while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '*'))
		i++;
	return i;
}

/* Length without trailing blanks and bold markers. */
static size_t
rtrim(const char *s, size_t n)
{
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' ||
	    s[n - 1] == '*'))
		n--;
	return n;
}

/* Length without trailing blanks and dashes ("reply--- On ..."). */
static size_t
rtrim_dash(const char *s, size_t n)
{
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' ||
	    s[n - 1] == '-'))
		n--;
	return n;
}

/*
 * A line above "> " quotes naming the quoted author without the usual
 * form: a date first and an address ("2011/4/7 Nathan <n@example.com>").
 */
static int
loose_attribution(const struct line *l)
{
	size_t	 o = lskip(l->s, l->len);

	return l->len - o < JOINMAX && o < l->len &&
	    l->s[o] >= '0' && l->s[o] <= '9' &&
	    memchr(l->s + o, '@', l->len - o) != NULL;
}

/*
 * Is the unquoted line cur, between quoted lines, a piece of the quote
 * that a client's line wrapping broke off?  Only when it ends with the
 * quote's own " >" or the quoted line above ends inside a URL; any other
 * unquoted line there is the patient answering between the quotes.
 */
static int
broken_quote(const struct line *prev, const struct line *cur)
{
	size_t	 n = rtrim(cur->s, cur->len), w;

	if (n > 0 && cur->s[n - 1] == '>')
		return 1;
	if (!is_quoted(prev) || prev->len > JOINMAX)
		return 0;
	n = rtrim(prev->s, prev->len);
	for (w = n; w > 0 && prev->s[w - 1] != ' '; w--)
		;
	return n - w > 3 && memmem(prev->s + w, n - w, "://", 3) != NULL;
}

static int
is_blank(const struct line *l)
{
	size_t	 i;

	for (i = 0; i < l->len; i++)
		if (l->s[i] != ' ' && l->s[i] != '\t')
			return 0;
	return 1;
}

/*
 * Does l start with a quote marker?  ">>> http://example.com <<<" is
 * an advert's arrows around a link, not a quote.
 */
static int
is_quoted(const struct line *l)
{
	size_t	 i = 0;

	while (i < l->len && (l->s[i] == ' ' || l->s[i] == '\t'))
		i++;
	if (i >= l->len || l->s[i] != '>')
		return 0;
	return !(l->len - i <= JOINMAX && l->len - i >= 6 &&
	    memcmp(l->s + i, ">>>", 3) == 0 &&
	    memmem(l->s + i, l->len - i, "<<<", 3) != NULL);
}

/* Does s[0..n) hold a time of day, "14:00"? */
static int
has_time(const char *s, size_t n)
{
	size_t	 i;

	for (i = 0; i + 5 <= n; i++)
		if (s[i] >= '0' && s[i] <= '9' && s[i + 1] >= '0' &&
		    s[i + 1] <= '9' && s[i + 2] == ':' && s[i + 3] >= '0' &&
		    s[i + 3] <= '9' && s[i + 4] >= '0' && s[i + 4] <= '9')
			return 1;
	return 0;
}

/*
 * Is s[0..n) an attribution: "On <date>, <name> wrote:" in one of the
 * languages, or "2014-10-17 11:28 GMT+03:00 Name <addr>:" (Gmail's
 * date-first form), or any line with a time and an address ending in a
 * colon?  It must end with a colon.
 */
static int
on_wrote_text(const char *s, size_t n, size_t lines)
{
	size_t	 i, o;

	o = lskip(s, n);
	s += o;
	n = rtrim(s, n - o);
	if (n < 6 || s[n - 1] != ':')
		return 0;
	for (i = 0; on_words[i] != NULL; i++)
		if (prefix_ci(s, n, on_words[i]))
			break;
	if (on_words[i] != NULL) {
		/* The verb is near the end: "schreef Name <addr>:" at most. */
		size_t	 from = n > WROTETAIL ? n - WROTETAIL : 0;

		for (i = 0; wrote_words[i] != NULL; i++)
			if (contains_ci(s + from, n - from, wrote_words[i]))
				return 1;
		return 0;
	}
	/* Without an "On" to anchor it, a form spans at most two lines. */
	if (lines > 2)
		return 0;
	if (s[0] >= '0' && s[0] <= '9' && memchr(s, '@', n) != NULL)
		return 1;
	/* "Thu, 26 Jun 2014 14:00:51 +0400 от Name <addr>:" (mail.ru) */
	if (lines == 1 && n >= 20 && memchr(s, '@', n) != NULL &&
	    has_time(s, n))
		return 1;
	return 0;
}

/*
 * Number of lines (1 to ATTRLINES) from l[i] that form an attribution,
 * which clients wrap over several lines (Polymail even with blank lines
 * between); 0 if none.
 */
static size_t
on_wrote(const struct line *l, size_t i, size_t n)
{
	char	 buf[JOINMAX];
	size_t	 k, used = 0;

	for (k = 0; k < ATTRLINES && i + k < n; k++) {
		const struct line *c = &l[i + k];

		if (k == 0 && is_blank(c))
			return 0;
		if (used + c->len + 1 > sizeof(buf))
			return 0;
		if (k > 0)
			buf[used++] = ' ';
		memcpy(buf + used, c->s, c->len);
		used += c->len;
		if (on_wrote_text(buf, used, k + 1))
			return k + 1;
		/* A colon ends the candidate: more lines make it no better. */
		if (rtrim(buf, used) > 0 && buf[rtrim(buf, used) - 1] == ':')
			return 0;
	}
	return 0;
}

/*
 * Offset of an attribution that shares its line with the reply
 * ("Thanks! On Wed, Apr 4, 2012 at 3:59 PM, bob wrote:"), 0 if none.
 */
static size_t
share_line(const struct line *l)
{
	size_t	 p;

	if (l->len > SHAREMAX)
		return 0;
	for (p = 1; p + 3 < l->len; p++)
		if ((l->s[p - 1] == ' ' || l->s[p - 1] == '-') &&
		    memcmp(l->s + p, "On ", 3) == 0 &&
		    on_wrote_text(l->s + p, l->len - p, 1))
			return p;
	return 0;
}

/* Is l "<word>:" (or "*<word>:*", "<word> :") for one of words? */
static int
header_word(const struct line *l, const char *const *words)
{
	size_t	 i, o, k;

	o = lskip(l->s, l->len);
	for (i = 0; words[i] != NULL; i++) {
		k = prefix_ci(l->s + o, l->len - o, words[i]);
		if (k == 0)
			continue;
		k += o;
		while (k < l->len && (l->s[k] == '*' || l->s[k] == ' ' ||
		    (unsigned char)l->s[k] == 0xc2 ||
		    (unsigned char)l->s[k] == 0xa0))
			k++;
		if (k < l->len && l->s[k] == ':')
			return 1;
	}
	return 0;
}

/*
 * An Outlook block: "From: x" with "Sent:"/"To:"/... a few lines on, or
 * "Date: x" with "From:"/"To:"/... a few lines on.
 */
static int
from_block(const struct line *l, size_t i, size_t n)
{
	size_t	 j;

	if (i >= n)
		return 0;
	if (header_word(&l[i], from_words))
		;
	else if (header_word(&l[i], date_words)) {
		/* Some clients put "Date:" first (talon's corpus). */
		for (j = i + 1; j < n && j <= i + HDRLOOK; j++)
			if (header_word(&l[j], from_words))
				return 1;
	} else
		return 0;
	for (j = i + 1; j < n && j <= i + HDRLOOK; j++)
		if (header_word(&l[j], hdr_words))
			return 1;
	return 0;
}

/* "-----Original Message-----", "---------- Forwarded message ---". */
static int
separator(const struct line *l)
{
	size_t	 i, o, n;

	o = lskip(l->s, l->len);
	n = l->len - o;
	if (n > JOINMAX)
		return 0;
	if (prefix_ci(l->s + o, n, "begin forwarded message"))
		return 1;
	if (n < 2 || l->s[o] != '-' || l->s[o + 1] != '-')
		return 0;
	for (i = 0; sep_words[i] != NULL; i++)
		if (contains_ci(l->s + o, n, sep_words[i]))
			return 1;
	return dashed_title(l->s + o, rtrim(l->s + o, n));
}

/*
 * "-----Reply Message-----", "-----Antwort Nachricht-----": a short
 * title of letters and blanks between runs of three to fifteen dashes
 * (longer rules are decoration a form may ask the reply below),
 * the shape of the separator in any language.
 */
static int
dashed_title(const char *s, size_t n)
{
	size_t	 a = 0, b = n, i;
	int	 letter = 0;

	while (a < n && s[a] == '-')
		a++;
	while (b > a && s[b - 1] == '-')
		b--;
	if (a < 3 || a > 15 || n - b < 3 || n - b > 15 || b - a > 40)
		return 0;
	for (i = a; i < b; i++) {
		unsigned char	 c = (unsigned char)s[i];

		if (c == '-' || (c >= '0' && c <= '9'))
			return 0;
		if (lower(c) >= 'a' && lower(c) <= 'z')
			letter = 1;
	}
	return letter;
}

/* Outlook's "________________________________" rule. */
static int
underscores(const struct line *l)
{
	size_t	 i, o = lskip(l->s, l->len), n = rtrim(l->s, l->len);

	if (n < o + 10)
		return 0;
	for (i = o; i < n; i++)
		if (l->s[i] != '_')
			return 0;
	return 1;
}

/* Android's "---- Name wrote ----" and the like. */
static int
android_wrote(const struct line *l)
{
	size_t	 i, o = lskip(l->s, l->len), n = l->len - o;

	if (n > JOINMAX || n < 4 || memcmp(l->s + o, "---", 3) != 0)
		return 0;
	for (i = 0; wrote_words[i] != NULL; i++)
		if (contains_ci(l->s + o, n, wrote_words[i]))
			return 1;
	return 0;
}

/* The RFC 3676 signature separator "-- " (and its mangled "--"). */
static int
is_signature(const struct line *l)
{
	return (l->len == 3 && memcmp(l->s, "-- ", 3) == 0) ||
	    (l->len == 2 && memcmp(l->s, "--", 2) == 0);
}

static int
is_footer(const struct line *l)
{
	size_t	 i, o = lskip(l->s, l->len);

	for (i = 0; footers[i] != NULL; i++)
		if (prefix_ci(l->s + o, l->len - o, footers[i]))
			return 1;
	return 0;
}

/* Extract the new text; see reply.h. */
char *
reply_extract(const char *text, size_t len, struct reply_result *out)
{
	struct line	*l = NULL;
	char		*res;
	size_t		 n = 0, cap = 0, i, m, cut, first, keep = 0, p;
	unsigned int	 removed = 0;

	/* Split into lines, any line end. */
	for (p = 0; p < len; ) {
		size_t	 s = p;

		while (p < len && text[p] != '\n' && text[p] != '\r')
			p++;
		if (n == cap) {
			struct line	*nl;

			cap = cap ? cap * 2 : 64;
			if ((nl = reallocarray(l, cap, sizeof(*l))) == NULL) {
				free(l);
				errno = ENOMEM;
				return NULL;
			}
			l = nl;
		}
		l[n].s = text + s;
		l[n].len = p - s;
		n++;
		if (p < len && text[p] == '\r' && p + 1 < len &&
		    text[p + 1] == '\n')
			p++;
		if (p < len)
			p++;
	}

	/*
	 * Keep lines up to the first that starts quoted history, compacting
	 * l[] in place: m <= i, the rules read l[i] onwards and the look-back
	 * for a loose attribution reads kept lines only.
	 * History made of "> " lines only, followed by more unquoted text,
	 * is a reply written between or below the quotes: keep scanning.
	 */
	for (i = 0, m = 0; i < n; ) {
		size_t	 k = 0, j;
		int	 tail = 0;

		if (is_quoted(&l[i])) {
			/* A loose "2011/4/7 Name <addr>" just above. */
			for (j = m; j > 0 && is_blank(&l[j - 1]); j--)
				;
			if (j > 0 && loose_attribution(&l[j - 1]))
				m = j - 1;
			tail = 1;
		} else if ((keep = share_line(&l[i])) != 0) {
			l[i].len = rtrim_dash(l[i].s, keep);
			l[m++] = l[i];
			k = 1;
			tail = 1;
		} else if ((k = on_wrote(l, i, n)) != 0)
			tail = 1;
		else if (!(separator(&l[i]) || android_wrote(&l[i]) ||
		    from_block(l, i, n) || (underscores(&l[i]) &&
		    (from_block(l, i + 1, n) || from_block(l, i + 2, n))))) {
			l[m++] = l[i++];
			continue;
		}
		removed |= REPLY_QUOTE;
		if (!tail)
			break;
		for (j = i + k; j < n && is_blank(&l[j]); j++)
			;
		if (j == n || !is_quoted(&l[j]))
			break;
		while (j < n && (is_blank(&l[j]) || is_quoted(&l[j]) ||
		    (j + 1 < n && is_quoted(&l[j + 1]) &&
		    broken_quote(&l[j - 1], &l[j]))))
			j++;
		i = j;
	}
	cut = m;

	/* A signature ends the new text. */
	for (i = 0; i < cut; i++)
		if (is_signature(&l[i])) {
			cut = i;
			removed |= REPLY_SIGNATURE;
			break;
		}

	/* Trailing footers and blank lines. */
	while (cut > 0 && (is_blank(&l[cut - 1]) || is_footer(&l[cut - 1]))) {
		if (!is_blank(&l[cut - 1]))
			removed |= REPLY_FOOTER;
		cut--;
	}
	for (first = 0; first < cut && is_blank(&l[first]); first++)
		;

	/* Join with LF. */
	p = 0;
	for (i = first; i < cut; i++)
		p += l[i].len + 1;
	if ((res = malloc(p + 1)) == NULL) {
		free(l);
		errno = ENOMEM;
		return NULL;
	}
	p = 0;
	for (i = first; i < cut; i++) {
		memcpy(res + p, l[i].s, l[i].len);
		p += l[i].len;
		if (i + 1 < cut)
			res[p++] = '\n';
	}
	res[p] = '\0';
	free(l);
	if (out != NULL) {
		out->len = p;
		out->removed = removed;
	}
	return res;
}

struct buf {
	char	*s;
	size_t	 len, cap;
	int	 bol;		/* at the beginning of an output line */
	int	 space;		/* a collapsed blank is pending */
	int	 quote;		/* <blockquote> depth */
};

static int	 buf_put(struct buf *, const char *, size_t);
static int	 buf_text(struct buf *, const char *, size_t);
static int	 buf_nl(struct buf *);
static int	 tag_is(const char *, size_t, const char *);
static size_t	 entity(const char *, size_t, char *);

/* Elements that break lines. */
static const char *const block_tags[] = {
	"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6",
	"blockquote", "table", "hr", "pre", "ul", "ol", "dl", "dt", "dd",
	"address", "center", "section", "article", "header", "footer",
	"body", "html", "title", NULL
};

static int
buf_put(struct buf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t	 cap = b->cap ? b->cap : 256;
		char	*ns;

		while (b->len + n + 1 > cap)
			cap *= 2;
		if ((ns = realloc(b->s, cap)) == NULL)
			return -1;
		b->s = ns;
		b->cap = cap;
	}
	memcpy(b->s + b->len, s, n);
	b->len += n;
	return 0;
}

/* Text: a pending blank, the "> " prefix inside a quote, then s. */
static int
buf_text(struct buf *b, const char *s, size_t n)
{
	int	 i;

	if (b->bol) {
		for (i = 0; i < b->quote && i < 16; i++)
			if (buf_put(b, "> ", 2) == -1)
				return -1;
		b->bol = 0;
		b->space = 0;
	} else if (b->space) {
		if (buf_put(b, " ", 1) == -1)
			return -1;
		b->space = 0;
	}
	return buf_put(b, s, n);
}

static int
buf_nl(struct buf *b)
{
	b->bol = 1;
	b->space = 0;
	return buf_put(b, "\n", 1);
}

/* Is the tag name s[0..n) equal to name (case folded)? */
static int
tag_is(const char *s, size_t n, const char *name)
{
	return prefix_ci(s, n, name) == n && strlen(name) == n;
}

/*
 * Decode the entity at s[0..n) (s[0] is '&') into out (at least 4
 * bytes): the bytes consumed, 0 if it is not one we know.
 */
static size_t
entity(const char *s, size_t n, char *out)
{
	static const struct {
		const char	*name;
		const char	*utf8;
	} named[] = {
		{ "amp;", "&" }, { "lt;", "<" }, { "gt;", ">" },
		{ "quot;", "\"" }, { "apos;", "'" }, { "nbsp;", " " },
		{ "#39;", "'" }, { "ndash;", "\xe2\x80\x93" },
		{ "mdash;", "\xe2\x80\x94" }, { "hellip;", "\xe2\x80\xa6" },
		{ "rsquo;", "\xe2\x80\x99" }, { "lsquo;", "\xe2\x80\x98" },
		{ "rdquo;", "\xe2\x80\x9d" }, { "ldquo;", "\xe2\x80\x9c" },
		{ "copy;", "\xc2\xa9" }, { "eacute;", "\xc3\xa9" },
	};
	uint32_t c = 0;
	size_t	 i, k;
	int	 hex;

	for (i = 0; i < sizeof(named) / sizeof(named[0]); i++)
		if ((k = prefix_ci(s + 1, n - 1, named[i].name)) != 0) {
			strcpy(out, named[i].utf8);
			return k + 1;
		}
	if (n < 4 || s[1] != '#')
		return 0;
	hex = (s[2] == 'x' || s[2] == 'X');
	for (i = hex ? 3 : 2; i < n && i < 12; i++) {
		int	 d = (unsigned char)s[i];

		if (d >= '0' && d <= '9')
			d -= '0';
		else if (hex && lower(d) >= 'a' && lower(d) <= 'f')
			d = lower(d) - 'a' + 10;
		else
			break;
		c = c * (hex ? 16 : 10) + (uint32_t)d;
	}
	if (i >= n || s[i] != ';' || i == (hex ? 3u : 2u))
		return 0;
	if (c == 0 || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		c = 0xfffd;
	if (c == 0xa0)
		c = ' ';
	if (c < 0x80) {
		out[0] = (char)c;
		out[1] = '\0';
	} else if (c < 0x800) {
		out[0] = (char)(0xc0 | (c >> 6));
		out[1] = (char)(0x80 | (c & 0x3f));
		out[2] = '\0';
	} else if (c < 0x10000) {
		out[0] = (char)(0xe0 | (c >> 12));
		out[1] = (char)(0x80 | ((c >> 6) & 0x3f));
		out[2] = (char)(0x80 | (c & 0x3f));
		out[3] = '\0';
	} else {
		out[0] = (char)(0xf0 | (c >> 18));
		out[1] = (char)(0x80 | ((c >> 12) & 0x3f));
		out[2] = (char)(0x80 | ((c >> 6) & 0x3f));
		out[3] = (char)(0x80 | (c & 0x3f));
		out[4] = '\0';
	}
	return i + 1;
}

/* Render HTML as text; see reply.h. */
char *
reply_html_to_text(const char *h, size_t len, size_t *outlen)
{
	struct buf	 b = { NULL, 0, 0, 1, 0, 0 };
	size_t		 p = 0, k;
	char		 ent[8];

	while (p < len) {
		unsigned char	 c = (unsigned char)h[p];

		if (c == '<' && p + 3 < len && memcmp(h + p, "<!--", 4) == 0) {
			const char *e = memmem(h + p + 4, len - p - 4, "-->", 3);

			p = e ? (size_t)(e - h) + 3 : len;
			continue;
		}
		if (c == '<' && p + 1 < len && (h[p + 1] == '/' ||
		    h[p + 1] == '!' || h[p + 1] == '?' ||
		    (lower((unsigned char)h[p + 1]) >= 'a' &&
		    lower((unsigned char)h[p + 1]) <= 'z'))) {
			const char	*name, *gt;
			size_t		 nl, i;
			int		 close = (h[p + 1] == '/');

			name = h + p + 1 + close;
			for (nl = 0; name + nl < h + len &&
			    ((lower((unsigned char)name[nl]) >= 'a' &&
			    lower((unsigned char)name[nl]) <= 'z') ||
			    (name[nl] >= '0' && name[nl] <= '9')); nl++)
				;
			gt = memchr(name, '>', (size_t)(h + len - name));
			p = gt ? (size_t)(gt - h) + 1 : len;
			if (!close && (tag_is(name, nl, "script") ||
			    tag_is(name, nl, "style") ||
			    tag_is(name, nl, "head"))) {
				/* Skip to the matching end tag. */
				char	 end[16];
				size_t	 q;

				snprintf(end, sizeof(end), "</%.*s", (int)nl,
				    name);
				for (q = p; q < len; q++)
					if (h[q] == '<' && prefix_ci(h + q,
					    len - q, end))
						break;
				p = q;
				continue;
			}
			if (tag_is(name, nl, "blockquote")) {
				if (close && b.quote > 0)
					b.quote--;
				else if (!close)
					b.quote++;
			}
			for (i = 0; block_tags[i] != NULL; i++)
				if (tag_is(name, nl, block_tags[i]))
					break;
			if (block_tags[i] != NULL) {
				if (tag_is(name, nl, "br") || !b.bol) {
					if (buf_nl(&b) == -1)
						goto fail;
				}
				if (!close && tag_is(name, nl, "hr") &&
				    (buf_text(&b, "________________________________", 32) == -1 ||
				    buf_nl(&b) == -1))
					goto fail;
			}
			/* Inline tags (<b>, <span>) join their text. */
			continue;
		}
		if (c == '&' && (k = entity(h + p, len - p, ent)) != 0) {
			if (strcmp(ent, " ") == 0)
				b.space = !b.bol;
			else if (buf_text(&b, ent, strlen(ent)) == -1)
				goto fail;
			p += k;
			continue;
		}
		if (c == ' ' || c == '\t' || c == '\n' || c == '\r' ||
		    c == '\f') {
			if (!b.bol)
				b.space = 1;
			p++;
			continue;
		}
		/* A run of plain text. */
		for (k = p; k < len && h[k] != '<' && h[k] != '&' &&
		    h[k] != ' ' && h[k] != '\t' && h[k] != '\n' &&
		    h[k] != '\r' && h[k] != '\f'; k++)
			;
		if (k == p)
			k = p + 1;
		if (buf_text(&b, h + p, k - p) == -1)
			goto fail;
		p = k;
	}
	if (buf_put(&b, "", 0) == -1)
		goto fail;
	while (b.len > 0 && (b.s[b.len - 1] == '\n' || b.s[b.len - 1] == ' '))
		b.len--;
	b.s[b.len] = '\0';
	if (outlen != NULL)
		*outlen = b.len;
	return b.s;
fail:
	free(b.s);
	errno = ENOMEM;
	return NULL;
}
