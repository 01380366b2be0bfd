/*
 * inhdr.c - the routing and trust fields of an inbound reply's header.
 *
 * inhdr_parse() finds the end of the header section, then walks the
 * fields a few times (once for everything but the token candidates, then
 * once per candidate source, so that they come out in the order of
 * inhdr_rcpt_src).  Every walk is linear in the header; every field is
 * read once per walk with a cursor that treats CR and LF as white space,
 * which is unfolding without a copy (a line break inside a field is
 * always followed by WSP).  Lists stop at the fixed array sizes.
 *
 * Addresses go through one strict reader (RFC 5322 3.4, without the
 * obsolete forms): mailbox = addr-spec / [phrase] "<" addr-spec ">",
 * local part a dot-atom or a quoted-string of printable ASCII without
 * space, "@" or escapes (so that an accepted address has one "@" and no
 * white space), domain a dot-atom of letters, digits and hyphens.  From
 * refuses anything else with a flag; token candidates skip what they
 * cannot read and go on with the next list member.
 *
 * inhdr_auth() and inhdr_is_automatic() only read the struct.  Errors:
 * inhdr_parse() fails only for a header over max_header or with a NUL.
 */
#include "build.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "inhdr.h"

/* Tokens of the address reader. */
enum tok {
	T_END,
	T_ATOM,		/* atext and "." (dot-atom text and obs-phrase) */
	T_QSTR,		/* quoted-string, quotes included */
	T_DLIT,		/* domain literal, brackets included */
	T_SPEC,		/* one of < > @ , ; : \ ) */
	T_BAD		/* control, 8-bit (strict), unterminated */
};

struct lex {
	const char	*p, *e;
	int		 eight_ok;	/* 8-bit bytes are atext (lenient) */
};

struct tok_s {
	enum tok	 t;
	const char	*s;
	size_t		 n;
	int		 c;		/* the special, for T_SPEC */
	int		 ws;		/* white space before it */
	int		 cmt;		/* a comment before it */
};

/* What mbox_read() found. */
enum mbox {
	MB_OK,		/* an address, ended by the list's end */
	MB_OK_MORE,	/* an address, then "," */
	MB_OK_SEMI,	/* an address, then ";" */
	MB_GROUP,	/* "phrase:" */
	MB_EMPTY,	/* nothing before "," / ";" / the end */
	MB_BAD_SEP,	/* words without an address, then "," / ";" / end */
	MB_BAD
};

struct field {
	const char	*name, *val;
	size_t		 namelen, vallen;
};

static int	 lc(int);
static int	 is_atext(int);
static int	 name_is(const struct field *, const char *);
static int	 field_next(const char *, size_t, size_t *, struct field *);
static void	 lex_next(struct lex *, struct tok_s *);
static int	 addr_make(const struct tok_s *, const struct tok_s *, char *,
		    size_t);
static enum mbox mbox_read(struct lex *, char *, size_t);
static unsigned	 from_read(const struct field *, char *, size_t);
static int	 encoded_word(const char *, size_t);
static void	 rcpts_read(struct inhdr *, const struct field *,
		    enum inhdr_rcpt_src);
static const char *msgid_next(const char *, const char *, char *, size_t);
static void	 keyword(const struct field *, char *, size_t);
static int	 content_report(const struct field *);
static int	 suppress_hint(const struct field *);
static const char *cfws_skip(const char *, const char *);
static const char *ar_word(const char *, const char *, const char **,
		    size_t *);
static void	 ar_read(struct inhdr_ar *, const struct field *);
static enum inhdr_result ar_result(const char *, size_t, int);
static void	 ar_copy(char *, size_t, const char *, size_t);
static int	 eq_ci(const char *, size_t, const char *);
static int	 aligned(const char *, const char *);

/* ASCII lower case, whatever the locale. */
static int
lc(int c)
{
	return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

/* atext = ALPHA / DIGIT / "!#$%&'*+-/=?^_`{|}~" (RFC 5322 3.2.3) */
static int
is_atext(int c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return 1;
	return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

/* s[0..n) equals the NUL-terminated word, ASCII case-insensitively. */
static int
eq_ci(const char *s, size_t n, const char *word)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		if (word[i] == '\0' || lc((unsigned char)s[i]) != word[i])
			return 0;
	return word[n] == '\0';
}

/* The field's name is lname (lower case). */
static int
name_is(const struct field *f, const char *lname)
{
	return eq_ci(f->name, f->namelen, lname);
}

/*
 * The next field of the header h[0..hlen) from *pos:
 * field = field-name *WSP ":" unstructured CRLF, continuation lines
 * start with WSP.  Lines that are not fields (an mbox "From " line, a
 * stray continuation) are stepped over.  0 at the end.
 */
static int
field_next(const char *h, size_t hlen, size_t *pos, struct field *f)
{
	const char	*p, *e = h + hlen, *ls, *le, *nl, *c;

	for (p = h + *pos; p < e; p = le) {
		ls = p;
		nl = memchr(p, '\n', (size_t)(e - p));
		le = nl == NULL ? e : nl + 1;
		/* the field runs on while the next line starts with WSP */
		while (le < e && (*le == ' ' || *le == '\t')) {
			nl = memchr(le, '\n', (size_t)(e - le));
			le = nl == NULL ? e : nl + 1;
		}
		if (*ls == ' ' || *ls == '\t')
			continue;
		/* ftext = %d33-57 / %d59-126 */
		for (c = ls; c < le && *c != ':' && *c > ' ' && *c < 127; c++)
			;
		f->name = ls;
		f->namelen = (size_t)(c - ls);
		while (c < le && (*c == ' ' || *c == '\t'))
			c++;
		if (f->namelen == 0 || c >= le || *c != ':')
			continue;
		f->val = c + 1;
		f->vallen = (size_t)(le - f->val);
		/* the final line end is not part of the value */
		if (f->vallen > 0 && f->val[f->vallen - 1] == '\n')
			f->vallen--;
		if (f->vallen > 0 && f->val[f->vallen - 1] == '\r')
			f->vallen--;
		*pos = (size_t)(le - h);
		return 1;
	}
	*pos = hlen;
	return 0;
}

/* The next token, over white space (CR and LF included) and comments. */
static void
lex_next(struct lex *lx, struct tok_s *t)
{
	const char	*p = lx->p, *e = lx->e;
	unsigned char	 c;
	size_t		 depth;

	t->ws = t->cmt = 0;
	for (;;) {
		while (p < e && (*p == ' ' || *p == '\t' || *p == '\r' ||
		    *p == '\n')) {
			p++;
			t->ws = 1;
		}
		if (p >= e || *p != '(')
			break;
		/* comment = "(" *([FWS] ccontent) [FWS] ")", nested */
		t->cmt = 1;
		for (depth = 0; p < e; p++) {
			if (*p == '\\' && p + 1 < e)
				p++;
			else if (*p == '(')
				depth++;
			else if (*p == ')' && --depth == 0)
				break;
		}
		if (p >= e) {
			t->t = T_BAD;
			t->s = lx->p = e;
			t->n = 0;
			return;
		}
		p++;
	}
	t->s = p;
	t->n = 1;
	if (p >= e) {
		t->t = T_END;
		t->n = 0;
		lx->p = e;
		return;
	}
	c = (unsigned char)*p;
	if (is_atext(c) || c == '.' || (lx->eight_ok && c >= 0x80)) {
		while (p < e && (is_atext((unsigned char)*p) || *p == '.' ||
		    (lx->eight_ok && (unsigned char)*p >= 0x80)))
			p++;
		t->t = T_ATOM;
	} else if (c == '"' || c == '[') {
		/* quoted-string, or domain-literal = "[" *dtext "]" */
		for (p++; p < e && *p != (c == '"' ? '"' : ']'); p++)
			if (*p == '\\' && p + 1 < e)
				p++;
		if (p >= e) {
			t->t = T_BAD;
			t->s = lx->p = e;
			t->n = 0;
			return;
		}
		p++;
		t->t = c == '"' ? T_QSTR : T_DLIT;
	} else if (c != '\0' && strchr("<>@,;:\\)", c) != NULL) {
		p++;
		t->t = T_SPEC;
		t->c = c;
	} else {
		p++;
		t->t = T_BAD;
	}
	t->n = (size_t)(p - t->s);
	lx->p = p;
}

/*
 * addr-spec = local-part "@" domain into out, domain lower-cased.  The
 * local part is a dot-atom, or a quoted-string of printable ASCII
 * without space, "@", "\" (so the result has exactly one "@"); the
 * domain a dot-atom of LDH labels.  0, or -1 when refused.
 */
static int
addr_make(const struct tok_s *local, const struct tok_s *dom, char *out,
    size_t outsz)
{
	size_t		 i, o;
	unsigned char	 c;

	if (local->n == 0 || local->n > 64 || dom->n == 0 ||
	    local->n + 1 + dom->n >= outsz || local->n + 1 + dom->n >
	    INHDR_ADDR_MAX)
		return -1;
	if (local->t == T_ATOM) {
		if (local->s[0] == '.' || local->s[local->n - 1] == '.')
			return -1;
		for (i = 0; i < local->n; i++) {
			c = (unsigned char)local->s[i];
			if (c >= 0x80 || (c == '.' && local->s[i + 1] == '.'))
				return -1;
		}
	} else if (local->t == T_QSTR) {
		if (local->n < 3)
			return -1;
		for (i = 1; i + 1 < local->n; i++) {
			c = (unsigned char)local->s[i];
			if (c <= ' ' || c >= 127 || c == '@' || c == '\\' ||
			    c == '"')
				return -1;
		}
	} else
		return -1;
	if (dom->t != T_ATOM || dom->s[0] == '.' || dom->s[0] == '-' ||
	    dom->s[dom->n - 1] == '.' || dom->s[dom->n - 1] == '-')
		return -1;
	for (i = 0; i < dom->n; i++) {
		c = (unsigned char)dom->s[i];
		if (c == '.') {
			if (dom->s[i + 1] == '.' || dom->s[i + 1] == '-' ||
			    dom->s[i - 1] == '-')
				return -1;
		} else if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-'))
			return -1;
	}
	memcpy(out, local->s, local->n);
	o = local->n;
	out[o++] = '@';
	for (i = 0; i < dom->n; i++)
		out[o++] = (char)lc((unsigned char)dom->s[i]);
	out[o] = '\0';
	return 0;
}

/*
 * One member of an address list:
 *   mailbox = name-addr / addr-spec
 *   name-addr = [display-name] "<" addr-spec ">"
 *   group = display-name ":" [group-list] ";"
 * Strict: no comment or white space inside the addr-spec, none between
 * "<" ">" but white space at its edges; a display name is words only (an
 * unquoted "@" in it is refused, "patient@x <evil@y>").  On MB_BAD the
 * cursor is wherever the reader stopped.
 */
static enum mbox
mbox_read(struct lex *lx, char *out, size_t outsz)
{
	struct tok_s	 t, w1, at, dom;
	size_t		 nwords = 0;

	out[0] = '\0';
	memset(&w1, 0, sizeof w1);
	for (;;) {
		lex_next(lx, &t);
		if (t.t == T_ATOM || t.t == T_QSTR) {
			if (nwords++ == 0)
				w1 = t;
			continue;
		}
		if (t.t != T_SPEC && t.t != T_END)
			return MB_BAD;
		if (t.t == T_END || t.c == ',' || t.c == ';')
			return nwords == 0 ? MB_EMPTY : MB_BAD_SEP;
		if (t.c == ':')
			return nwords > 0 ? MB_GROUP : MB_BAD;
		if (t.c == '@') {
			/* addr-spec: one word, "@", a domain, no gaps */
			at = t;
			lex_next(lx, &dom);
			if (nwords != 1 || at.ws || at.cmt || dom.ws ||
			    dom.cmt || addr_make(&w1, &dom, out, outsz) == -1)
				return MB_BAD;
			break;
		}
		if (t.c != '<')
			return MB_BAD;
		/* name-addr: the words before were the display name */
		lex_next(lx, &w1);
		lex_next(lx, &at);
		lex_next(lx, &dom);
		lex_next(lx, &t);
		if (w1.cmt || at.t != T_SPEC || at.c != '@' || at.ws ||
		    at.cmt || dom.ws || dom.cmt || t.t != T_SPEC ||
		    t.c != '>' || t.cmt ||
		    addr_make(&w1, &dom, out, outsz) == -1)
			return MB_BAD;
		break;
	}
	lex_next(lx, &t);
	if (t.t == T_END)
		return MB_OK;
	if (t.t == T_SPEC && t.c == ',')
		return MB_OK_MORE;
	if (t.t == T_SPEC && t.c == ';')
		return MB_OK_SEMI;
	out[0] = '\0';
	return MB_BAD;
}

/* An RFC 2047 encoded-word "=?" charset "?" enc "?" text "?=" anywhere. */
static int
encoded_word(const char *s, size_t n)
{
	const char	*p, *e = s + n, *q;

	for (p = s; p + 1 < e; p++) {
		if (p[0] != '=' || p[1] != '?')
			continue;
		for (q = p + 2; q + 1 < e; q++)
			if (q[0] == '?' && q[1] == '=')
				return 1;
		return 0;	/* no "?=" after the first "=?" */
	}
	return 0;
}

/* The one mailbox of a From (or Sender) field: its flags, 0 if usable. */
static unsigned
from_read(const struct field *f, char *out, size_t outsz)
{
	struct lex	 lx;
	struct tok_s	 t;
	unsigned	 flags = 0;
	size_t		 i;
	char		 more[INHDR_ADDR_MAX + 1];

	out[0] = '\0';
	/* controls, and a CR that ends no line (some readers break the
	 * field there) */
	for (i = 0; i < f->vallen; i++) {
		if (((unsigned char)f->val[i] < ' ' && f->val[i] != '\t' &&
		    f->val[i] != '\r' && f->val[i] != '\n') ||
		    f->val[i] == 127 || (f->val[i] == '\r' &&
		    (i + 1 >= f->vallen || f->val[i + 1] != '\n'))) {
			flags |= INHDR_FROM_UNPARSABLE;
			break;
		}
	}
	/*
	 * A display name may be UTF-8 (RFC 6532) or hold encoded words: it
	 * is never decoded nor compared, only the addr-spec is.  The
	 * addr-spec itself must be plain ASCII without an encoded word
	 * (Mailsploit hides another address in one).
	 */
	lx.p = f->val;
	lx.e = f->val + f->vallen;
	lx.eight_ok = 1;
	switch (mbox_read(&lx, out, outsz)) {
	case MB_OK:
		if (encoded_word(out, strlen(out)))
			flags |= INHDR_FROM_ENCODED;
		for (i = 0; out[i] != '\0'; i++)
			if ((unsigned char)out[i] >= 0x80)
				flags |= INHDR_FROM_UNPARSABLE;
		break;
	case MB_OK_MORE:
		/* "a@x, b@y" is a list; "a@x," alone is merely odd */
		lx.eight_ok = 1;
		lex_next(&lx, &t);
		flags |= t.t == T_END ? INHDR_FROM_UNPARSABLE :
		    INHDR_FROM_MULTIPLE;
		break;
	case MB_GROUP:
		flags |= INHDR_FROM_GROUP;
		/* a group of two or more is a list as well */
		if (mbox_read(&lx, more, sizeof more) == MB_OK_MORE)
			flags |= INHDR_FROM_MULTIPLE;
		break;
	case MB_OK_SEMI:
	case MB_EMPTY:
	case MB_BAD_SEP:
	case MB_BAD:
		flags |= INHDR_FROM_UNPARSABLE;
		break;
	}
	if (flags != 0)
		out[0] = '\0';
	return flags;
}

/* Token candidates from one address-list field, up to the array's end. */
static void
rcpts_read(struct inhdr *h, const struct field *f, enum inhdr_rcpt_src src)
{
	struct lex	 lx;
	struct tok_s	 t;
	enum mbox	 r;
	struct inhdr_rcpt *rc;

	lx.p = f->val;
	lx.e = f->val + f->vallen;
	lx.eight_ok = 1;
	while (h->nrcpts < INHDR_MAX_RCPTS && lx.p < lx.e) {
		rc = &h->rcpts[h->nrcpts];
		r = mbox_read(&lx, rc->addr, sizeof rc->addr);
		switch (r) {
		case MB_OK:
		case MB_OK_MORE:
		case MB_OK_SEMI:
			rc->src = src;
			h->nrcpts++;
			break;
		case MB_BAD:
			/* resynchronise on the next "," */
			do
				lex_next(&lx, &t);
			while (t.t != T_END && !(t.t == T_SPEC && t.c == ','));
			break;
		case MB_GROUP:
		case MB_EMPTY:
		case MB_BAD_SEP:	/* the separator is read already */
			break;
		}
		if (r == MB_OK)
			break;
	}
}

/*
 * The next msg-id = "<" id-left "@" id-right ">" from p: copied into
 * out with its brackets if it fits and holds no white space, control or
 * 8-bit byte, else out is "".  Returns where to go on, NULL at the end.
 */
static const char *
msgid_next(const char *p, const char *e, char *out, size_t outsz)
{
	const char	*lt, *gt, *q;

	out[0] = '\0';
	if ((lt = memchr(p, '<', (size_t)(e - p))) == NULL)
		return NULL;
	if ((gt = memchr(lt, '>', (size_t)(e - lt))) == NULL)
		return NULL;
	if ((size_t)(gt - lt) + 1 >= outsz || gt - lt < 2)
		return gt + 1;
	for (q = lt + 1; q < gt; q++)
		if ((unsigned char)*q <= ' ' || (unsigned char)*q >= 127 ||
		    *q == '<')
			return gt + 1;
	memcpy(out, lt, (size_t)(gt - lt) + 1);
	out[gt - lt + 1] = '\0';
	return gt + 1;
}

/* The first word of a field (Auto-Submitted, Precedence), lower-cased. */
static void
keyword(const struct field *f, char *out, size_t outsz)
{
	const char	*p = cfws_skip(f->val, f->val + f->vallen);
	const char	*e = f->val + f->vallen;
	size_t		 o = 0;

	while (p < e && o + 1 < outsz && (unsigned char)*p > ' ' &&
	    (unsigned char)*p < 127 && *p != ';' && *p != '(')
		out[o++] = (char)lc((unsigned char)*p++);
	out[o] = '\0';
}

/* Content-Type: multipart/report (RFC 6522). */
static int
content_report(const struct field *f)
{
	const char	*e = f->val + f->vallen;
	const char	*p = cfws_skip(f->val, e);
	const char	*s;
	size_t		 n;

	for (s = p; p < e && *p != '/' && *p != ';' && *p != '(' &&
	    (unsigned char)*p > ' '; p++)
		;
	if (!eq_ci(s, (size_t)(p - s), "multipart"))
		return 0;
	p = cfws_skip(p, e);
	if (p >= e || *p != '/')
		return 0;
	p = cfws_skip(p + 1, e);
	for (s = p, n = 0; p < e && *p != ';' && *p != '(' &&
	    (unsigned char)*p > ' '; p++)
		n++;
	return eq_ci(s, n, "report");
}

/* X-Auto-Response-Suppress: a list holding All or AutoReply. */
static int
suppress_hint(const struct field *f)
{
	const char	*p = f->val, *e = f->val + f->vallen, *s;

	while (p < e) {
		while (p < e && (*p == ',' || *p == ' ' || *p == '\t' ||
		    *p == '\r' || *p == '\n'))
			p++;
		for (s = p; p < e && *p != ',' && *p != ' ' && *p != '\t' &&
		    *p != '\r' && *p != '\n'; p++)
			;
		if (eq_ci(s, (size_t)(p - s), "all") ||
		    eq_ci(s, (size_t)(p - s), "autoreply"))
			return 1;
	}
	return 0;
}

/* Over CFWS: white space and nested comments. */
static const char *
cfws_skip(const char *p, const char *e)
{
	size_t	 depth;

	for (;;) {
		while (p < e && (*p == ' ' || *p == '\t' || *p == '\r' ||
		    *p == '\n'))
			p++;
		if (p >= e || *p != '(')
			return p;
		for (depth = 0; p < e; p++) {
			if (*p == '\\' && p + 1 < e)
				p++;
			else if (*p == '(')
				depth++;
			else if (*p == ')' && --depth == 0)
				break;
		}
		if (p >= e)
			return e;
		p++;
	}
}

/*
 * An A-R value after CFWS: a quoted-string (its content, escapes kept)
 * or a run of bytes up to white space, "(", ";", "=" or '"'.  Returns
 * the position after it; *n is 0 when there is none.
 */
static const char *
ar_word(const char *p, const char *e, const char **s, size_t *n)
{
	p = cfws_skip(p, e);
	*s = p;
	if (p < e && *p == '"') {
		for (p++; p < e && *p != '"'; p++)
			if (*p == '\\' && p + 1 < e)
				p++;
		*s += 1;
		*n = (size_t)(p - *s);
		return p < e ? p + 1 : e;
	}
	while (p < e && *p != ' ' && *p != '\t' && *p != '\r' &&
	    *p != '\n' && *p != '(' && *p != ';' && *p != '=' && *p != '"')
		p++;
	*n = (size_t)(p - *s);
	return p;
}

/* A lower-cased copy, or "" when it does not fit or holds odd bytes. */
static void
ar_copy(char *out, size_t outsz, const char *s, size_t n)
{
	size_t	 i;

	out[0] = '\0';
	if (n >= outsz)
		return;
	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 127)
			return;
	for (i = 0; i < n; i++)
		out[i] = (char)lc((unsigned char)s[i]);
	out[n] = '\0';
}

/* result keywords of RFC 8601 2.7; dmarc=bestguesspass is no pass. */
static enum inhdr_result
ar_result(const char *s, size_t n, int dkim)
{
	if (eq_ci(s, n, "pass"))
		return INHDR_RES_PASS;
	if (eq_ci(s, n, "fail") || (dkim && eq_ci(s, n, "policy")))
		return INHDR_RES_FAIL;
	if (eq_ci(s, n, "temperror"))
		return INHDR_RES_TEMPERROR;
	if (eq_ci(s, n, "permerror"))
		return INHDR_RES_PERMERROR;
	if (eq_ci(s, n, "none") || eq_ci(s, n, "bestguesspass"))
		return INHDR_RES_NONE;
	return INHDR_RES_OTHER;
}

/*
 * authres-header = [CFWS] authserv-id [CFWS authres-version]
 *                  ( no-result / 1*resinfo ) [CFWS]
 * resinfo = [CFWS] ";" methodspec [CFWS reasonspec] *(CFWS propspec)
 * methodspec = [CFWS] method [CFWS] ["/" version] "=" [CFWS] result
 * propspec = ptype [CFWS] "." [CFWS] property [CFWS] "=" pvalue
 * Microsoft 365 leaves the authserv-id out and starts with a resinfo
 * without its ";": the first word followed by "=" is taken as a method.
 * A resinfo that does not read is skipped to the next ";".
 */
static void
ar_read(struct inhdr_ar *ar, const struct field *f)
{
	const char	*e = f->val + f->vallen, *p, *s, *v, *slash;
	size_t		 n, vn, i;
	enum inhdr_result res;
	int		 meth, first, dkim_seen = 0, dmarc_seen = 0, have;
	char		 dom[256];

	memset(ar, 0, sizeof *ar);
	p = ar_word(f->val, e, &s, &n);
	first = cfws_skip(p, e) < e && *cfws_skip(p, e) == '=';
	if (first)
		p = f->val;		/* no authserv-id */
	else {
		ar_copy(ar->authserv_id, sizeof ar->authserv_id, s, n);
		v = ar_word(p, e, &s, &n);
		for (i = 0; i < n && s[i] >= '0' && s[i] <= '9'; i++)
			;
		if (n > 0 && i == n)
			p = v;		/* authres-version */
	}
	while (p < e) {
		if (!first) {
			p = cfws_skip(p, e);
			if (p >= e)
				break;
			if (*p != ';') {
				/* not a resinfo: on to the next ";" */
				while (p < e && *p != ';')
					p++;
				continue;
			}
			p++;
		}
		first = 0;
		p = ar_word(p, e, &s, &n);
		if ((slash = memchr(s, '/', n)) != NULL)
			n = (size_t)(slash - s);
		meth = eq_ci(s, n, "dmarc") ? 1 : eq_ci(s, n, "dkim") ? 2 : 0;
		p = cfws_skip(p, e);
		if (p >= e || *p != '=')
			continue;
		p = ar_word(p + 1, e, &v, &vn);
		res = ar_result(v, vn, meth == 2);
		dom[0] = '\0';
		have = 0;
		/* reasonspec and propspecs up to the next ";" */
		for (;;) {
			p = ar_word(p, e, &s, &n);
			if (n == 0) {
				p = cfws_skip(p, e);
				if (p < e && *p != ';')
					p++;	/* a stray "=" or '"' */
				if (p >= e || *p == ';')
					break;
				continue;
			}
			p = cfws_skip(p, e);
			if (p >= e || *p != '=')
				continue;
			p = ar_word(p + 1, e, &v, &vn);
			if ((meth == 1 && eq_ci(s, n, "header.from")) ||
			    (meth == 2 && eq_ci(s, n, "header.d"))) {
				ar_copy(dom, sizeof dom, v, vn);
				have = 1;
			} else if (meth == 2 && eq_ci(s, n, "header.i") &&
			    !have && (s = memchr(v, '@', vn)) != NULL) {
				/* header.i=[local]@domain */
				ar_copy(dom, sizeof dom, s + 1,
				    vn - (size_t)(s + 1 - v));
			}
		}
		if (meth == 1 && !dmarc_seen) {
			dmarc_seen = 1;
			ar->dmarc = res;
			memcpy(ar->dmarc_from, dom, sizeof dom);
		} else if (meth == 2 && (!dkim_seen ||
		    (ar->dkim != INHDR_RES_PASS && res == INHDR_RES_PASS))) {
			/* the first passing signature, else the first */
			dkim_seen = 1;
			ar->dkim = res;
			memcpy(ar->dkim_domain, dom, sizeof dom);
		}
	}
}

int
inhdr_parse(const char *raw, size_t len, size_t max_header, struct inhdr *h,
    const char **error_r)
{
	const char	*p, *e, *nl, *q;
	struct field	 f;
	size_t		 pos, hlen, scan, nfrom = 0, nsender = 0, i, r;
	int		 src, rp_seen = 0, mid_seen = 0, irt_seen = 0;
	int		 refs_seen = 0, ct_seen = 0;
	unsigned	 sflags;
	char		 id[INHDR_MSGID_MAX + 1];
	char		 ring[INHDR_MAX_REFS][INHDR_MSGID_MAX + 1];
	size_t		 nring = 0;

	memset(h, 0, sizeof *h);
	/* the header ends at the first empty line, or at the end */
	scan = len;
	if (max_header < SIZE_MAX - 2 && scan > max_header + 2)
		scan = max_header + 2;	/* room for the empty line */
	hlen = len;
	for (p = raw, e = raw + scan; p < e; p = nl + 1) {
		if (*p == '\n' || (*p == '\r' && p + 1 < e && p[1] == '\n')) {
			hlen = (size_t)(p - raw);
			break;
		}
		if ((nl = memchr(p, '\n', (size_t)(e - p))) == NULL) {
			p = e;
			break;
		}
	}
	if (p >= e && (len > max_header)) {
		*error_r = "header section too large";
		return -1;
	}
	if (hlen > max_header) {
		*error_r = "header section too large";
		return -1;
	}
	if (memchr(raw, '\0', hlen) != NULL) {
		*error_r = "NUL byte in the header section";
		return -1;
	}
	h->header_len = hlen;

	for (pos = 0; field_next(raw, hlen, &pos, &f); ) {
		if (name_is(&f, "from")) {
			if (nfrom++ == 0)
				h->from_flags |= from_read(&f, h->from,
				    sizeof h->from);
		} else if (name_is(&f, "sender")) {
			if (nsender++ == 0)
				sflags = from_read(&f, h->sender,
				    sizeof h->sender);
			else
				sflags = INHDR_FROM_MULTIPLE;
			if (sflags != 0)
				h->from_flags |= INHDR_SENDER_DIFFERS;
		} else if (name_is(&f, "return-path")) {
			/* path = "<" ">" with CFWS; the topmost counts */
			if (rp_seen++)
				continue;
			q = cfws_skip(f.val, f.val + f.vallen);
			if (q < f.val + f.vallen && *q == '<') {
				q = cfws_skip(q + 1, f.val + f.vallen);
				if (q < f.val + f.vallen && *q == '>' &&
				    cfws_skip(q + 1, f.val + f.vallen) ==
				    f.val + f.vallen)
					h->return_path_null = 1;
			}
		} else if (name_is(&f, "message-id")) {
			if (mid_seen++ == 0)
				msgid_next(f.val, f.val + f.vallen,
				    h->message_id, sizeof h->message_id);
		} else if (name_is(&f, "in-reply-to")) {
			if (irt_seen++ == 0)
				msgid_next(f.val, f.val + f.vallen,
				    h->in_reply_to, sizeof h->in_reply_to);
		} else if (name_is(&f, "references")) {
			/* keep the last INHDR_MAX_REFS in a ring */
			if (refs_seen++)
				continue;
			q = f.val;
			while ((q = msgid_next(q, f.val + f.vallen, id,
			    sizeof id)) != NULL)
				if (id[0] != '\0')
					memcpy(ring[nring++ % INHDR_MAX_REFS],
					    id, sizeof id);
		} else if (name_is(&f, "auto-submitted")) {
			if (h->auto_submitted[0] == '\0')
				keyword(&f, h->auto_submitted,
				    sizeof h->auto_submitted);
		} else if (name_is(&f, "precedence")) {
			if (h->precedence[0] == '\0')
				keyword(&f, h->precedence,
				    sizeof h->precedence);
		} else if (name_is(&f, "list-id") ||
		    name_is(&f, "list-unsubscribe"))
			h->list_id = 1;
		else if (name_is(&f, "x-autoreply") ||
		    name_is(&f, "x-autorespond"))
			h->autoreply_hint = 1;
		else if (name_is(&f, "x-auto-response-suppress")) {
			if (suppress_hint(&f))
				h->autoreply_hint = 1;
		} else if (name_is(&f, "content-type")) {
			if (ct_seen++ == 0)
				h->report = content_report(&f);
		} else if (name_is(&f, "authentication-results")) {
			if (h->nar < INHDR_MAX_AR)
				ar_read(&h->ar[h->nar++], &f);
		}
	}
	if (nfrom == 0)
		h->from_flags |= INHDR_FROM_MISSING;
	else if (nfrom > 1)
		h->from_flags |= INHDR_FROM_MULTIPLE;
	if ((h->from_flags & ~(unsigned)INHDR_SENDER_DIFFERS) != 0)
		h->from[0] = '\0';
	/* a Sender that is From's address is no difference */
	if (h->sender[0] != '\0' && !(h->from_flags & INHDR_SENDER_DIFFERS)) {
		p = strrchr(h->sender, '@');
		q = strrchr(h->from, '@');
		if (q == NULL || (size_t)(p - h->sender) !=
		    (size_t)(q - h->from) || memcmp(h->sender, h->from,
		    (size_t)(p - h->sender)) != 0 || strcmp(p, q) != 0)
			h->from_flags |= INHDR_SENDER_DIFFERS;
	}
	r = nring > INHDR_MAX_REFS ? nring - INHDR_MAX_REFS : 0;
	for (i = 0; r + i < nring; i++)
		memcpy(h->refs[i], ring[(r + i) % INHDR_MAX_REFS],
		    sizeof h->refs[i]);
	h->nrefs = i;

	/* token candidates, source by source */
	for (src = INHDR_DELIVERED_TO; src <= INHDR_CC; src++) {
		for (pos = 0; h->nrcpts < INHDR_MAX_RCPTS &&
		    field_next(raw, hlen, &pos, &f); ) {
			if ((src == INHDR_DELIVERED_TO &&
			    name_is(&f, "delivered-to")) ||
			    (src == INHDR_ORIGINAL_TO &&
			    name_is(&f, "x-original-to")) ||
			    (src == INHDR_TO && name_is(&f, "to")) ||
			    (src == INHDR_CC && name_is(&f, "cc")))
				rcpts_read(h, &f, (enum inhdr_rcpt_src)src);
		}
	}
	return 0;
}

/* d equals the From domain or is a parent of it (relaxed alignment). */
static int
aligned(const char *d, const char *from)
{
	const char	*fd;
	size_t		 dl, fl;

	if (d[0] == '\0' || strchr(d, '.') == NULL ||
	    (fd = strrchr(from, '@')) == NULL)
		return 0;
	fd++;
	dl = strlen(d);
	fl = strlen(fd);
	if (dl == fl)
		return strcmp(d, fd) == 0;
	return dl < fl && fd[fl - dl - 1] == '.' &&
	    strcmp(fd + fl - dl, d) == 0;
}

enum inhdr_auth
inhdr_auth(const struct inhdr *h, const char *authserv_id, int topmost,
    char *why, size_t whysz)
{
	const struct inhdr_ar	*ar = NULL;
	const char		*fd, *by;
	size_t			 i;
	char			 dummy[1];

	if (why == NULL) {
		why = dummy;
		whysz = sizeof dummy;
	}
	if (topmost && h->nar > 0)
		ar = &h->ar[0];
	else if (!topmost && authserv_id != NULL && authserv_id[0] != '\0') {
		for (i = 0; i < h->nar && ar == NULL; i++)
			if (strcasecmp(h->ar[i].authserv_id, authserv_id) == 0)
				ar = &h->ar[i];
	}
	if (ar == NULL) {
		snprintf(why, whysz, "no trusted Authentication-Results");
		return INHDR_AUTH_NONE;
	}
	by = ar->authserv_id[0] != '\0' ? ar->authserv_id :
	    "the topmost Authentication-Results";
	fd = strrchr(h->from, '@');
	fd = fd != NULL ? fd + 1 : "";
	if (ar->dmarc == INHDR_RES_FAIL) {
		snprintf(why, whysz, "dmarc=fail by %s", by);
		return INHDR_AUTH_FAIL;
	}
	/* a pass for another From than the one read here is no pass */
	if (ar->dmarc == INHDR_RES_PASS && fd[0] != '\0' &&
	    (ar->dmarc_from[0] == '\0' || strcmp(ar->dmarc_from, fd) == 0)) {
		snprintf(why, whysz, "dmarc=pass by %s", by);
		return INHDR_AUTH_PASS;
	}
	if (ar->dkim == INHDR_RES_PASS && aligned(ar->dkim_domain, h->from)) {
		snprintf(why, whysz, "dkim=pass header.d=%s by %s",
		    ar->dkim_domain, by);
		return INHDR_AUTH_PASS;
	}
	if (ar->dmarc == INHDR_RES_TEMPERROR) {
		snprintf(why, whysz, "dmarc=temperror by %s", by);
		return INHDR_AUTH_TEMPERROR;
	}
	snprintf(why, whysz, "no dmarc or aligned dkim pass by %s", by);
	return INHDR_AUTH_NONE;
}

const char *
inhdr_auth_name(enum inhdr_auth a)
{
	switch (a) {
	case INHDR_AUTH_NONE:
		return "none";
	case INHDR_AUTH_PASS:
		return "pass";
	case INHDR_AUTH_FAIL:
		return "fail";
	case INHDR_AUTH_TEMPERROR:
		return "temperror";
	}
	return "unknown";
}

int
inhdr_is_automatic(const struct inhdr *h, const char **why)
{
	static const char *const locals[] = {
		"mailer-daemon", "postmaster", "no-reply", "noreply"
	};
	const char	*at, *w = NULL;
	size_t		 i;

	if (h->auto_submitted[0] != '\0' &&
	    strcmp(h->auto_submitted, "no") != 0)
		w = "Auto-Submitted";
	else if (strcmp(h->precedence, "bulk") == 0 ||
	    strcmp(h->precedence, "list") == 0 ||
	    strcmp(h->precedence, "junk") == 0)
		w = "Precedence";
	else if (h->list_id)
		w = "List-Id";
	else if (h->autoreply_hint)
		w = "autoreply header";
	else if (h->report)
		w = "delivery report";
	else if (h->return_path_null)
		w = "null Return-Path";
	else if ((at = strrchr(h->from, '@')) != NULL) {
		for (i = 0; i < sizeof locals / sizeof locals[0]; i++)
			if (eq_ci(h->from, (size_t)(at - h->from), locals[i]))
				w = "From mailer-daemon, postmaster or no-reply";
	}
	if (why != NULL)
		*why = w != NULL ? w : "";
	return w != NULL;
}

const char *
inhdr_from_problem(unsigned flags)
{
	if (flags & INHDR_FROM_MISSING)
		return "no From";
	if (flags & INHDR_FROM_MULTIPLE)
		return "multiple From";
	if (flags & INHDR_FROM_GROUP)
		return "group syntax in From";
	if (flags & INHDR_FROM_ENCODED)
		return "encoded-word in From";
	if (flags & INHDR_FROM_UNPARSABLE)
		return "unparsable From";
	if (flags & INHDR_SENDER_DIFFERS)
		return "Sender differs from From";
	return "none";
}
