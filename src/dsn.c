/*
 * dsn.c - delivery status notifications (RFC 3464) read with libetpan.
 *
 * Owns the walk from a bounce to a struct dsn_report and the report's
 * text form for the sandbox pipe.  Public: dsn_parse, dsn_class,
 * dsn_action_name, dsn_serialize, dsn_deserialize.
 *
 * Structure (RFC 3462: "the Multipart/Report Content-Type must be the
 * top-level MIME content type for any report message"): only a top-level
 * multipart/report counts.  Its report-type must be delivery-status (or
 * RFC 6533's global-delivery-status); one that names none counts when a
 * direct child is a delivery-status part, and any other report-type
 * (disposition-notification, feedback-report) is DSN_NOT_REPORT.  A report
 * wrapped in multipart/mixed, or a report returned inside a bounce of a
 * bounce, is never read: only direct children of the top report are.
 *
 * The delivery-status part (message/delivery-status or
 * message/global-delivery-status; the first one that names a recipient, as
 * some MTAs label their human text so too) is read by hand, not with
 * libetpan's RFC 5322 parser, which has no notion of its blank-line groups:
 *
 *   delivery-status-content = per-message-fields
 *                             1*( CRLF per-recipient-fields )
 *   per-recipient-fields = [ original-recipient-field CRLF ]
 *             final-recipient-field CRLF action-field CRLF
 *             status-field CRLF [ remote-mta-field CRLF ]
 *             [ diagnostic-code-field CRLF ] ... *( extension-field CRLF )
 *   final-recipient-field = "Final-Recipient" ":" address-type ";"
 *             generic-address
 *   action-value = "failed" / "delayed" / "delivered" / "relayed" /
 *             "expanded"
 *   status-code = DIGIT "." 1*3DIGIT "." 1*3DIGIT
 *
 * Leniency, for what MTAs send: CRLF or LF lines; blank lines repeated,
 * white-space-only or missing (a per-recipient field in the per-message
 * group starts the first recipient block; Final-Recipient, Original-
 * Recipient, Action or Status met twice in one block starts the next);
 * text after the status code or action ("5.0.0 (permanent failure)") is
 * ignored; a status that does not match the grammar is kept as "".  A
 * block with neither Final- nor Original-Recipient is skipped (it cannot
 * say whom it is about); without Final-Recipient the Original-Recipient's
 * address stands in.  An address longer than DSN_ADDR_MAX - 1 is treated
 * as absent rather than truncated into a different address.  The first
 * DSN_MAX_RCPTS blocks are kept and the rest is not read.
 *
 * Values: unfolded; controls (C0, DEL, C1) become spaces, bytes that are
 * not UTF-8 become '?', runs of white space one space, trimmed; too long
 * ones are cut at a character boundary (reporting MTA, diagnostic).  A
 * "type; value" field (Reporting-MTA, Diagnostic-Code) is written as
 * lower-case type, "; ", value.
 *
 * The returned message: the first direct child that is message/rfc822 or
 * message/global (its header only), text/rfc822-headers or
 * message/global-headers gives orig_msgid, the first word of the first
 * Message-ID field as "<id>" (printable ASCII, no space or angle bracket
 * inside, at most DSN_MSGID_MAX octets; anything else leaves "").  Its
 * body is not read.
 *
 * Text form (dsn_serialize), LF-terminated lines, fields separated by TAB
 * (values hold neither):
 *
 *   sealpost-dsn/1
 *   mta TAB reporting_mta
 *   msgid TAB orig_msgid
 *   rcpt TAB final TAB orig TAB action TAB status TAB diagnostic
 *        (1 to DSN_MAX_RCPTS lines)
 *
 * dsn_deserialize() accepts exactly that: every value already clean (as
 * the parser writes it) and within its buffer, known action names, a
 * status "" or matching the grammar, a message-id "" or well formed, at
 * least one recipient with a non-empty final recipient, nothing after the
 * last line.
 *
 * Error policy: dsn_parse returns a result and a static reason that never
 * quotes the message; serialize gives NULL, deserialize -1, for anything
 * outside the rules above.  Runs in the parse sandbox behind
 * mime_prefilter() (not thread-safe: mime_init()'s converter cache).
 */

#include "build.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libetpan/libetpan.h>

#include "dsn.h"
#include "mime.h"
#include "mime_int.h"
#include "util.h"

#define DSN_TEXT_MAGIC	"sealpost-dsn/1"

/* One field of a delivery-status group: name and raw (folded) value. */
struct dsn_field {
	const char	*name;
	size_t		 nlen;
	const char	*val;
	size_t		 vlen;
};

/* A line scanner over the delivery-status body. */
struct dsn_scan {
	const char	*p;
	size_t		 len;
	size_t		 pos;
};

/* The recipient block being read. */
struct dsn_block {
	struct dsn_rcpt	 r;
	int		 has_final, has_orig, has_action, has_status;
	int		 has_diag, any;
};

#define SCAN_END	0
#define SCAN_FIELD	1
#define SCAN_BLANK	2

static int	 clean_value(char *, size_t, const char *, size_t);
static int	 is_clean(const char *, size_t);
static int	 typed_value(char *, size_t, const char *, size_t);
static int	 address_value(char *, size_t, const char *, size_t);
static enum dsn_action action_value(const char *, size_t);
static void	 status_value(char *, size_t, const char *, size_t);
static int	 status_valid(const char *, size_t);
static int	 msgid_valid(const char *, size_t);
static int	 name_is(const struct dsn_field *, const char *);
static int	 is_rcpt_field(const struct dsn_field *);
static int	 scan_next(struct dsn_scan *, struct dsn_field *);
static void	 block_field(struct dsn_block *, const struct dsn_field *);
static int	 block_repeats(const struct dsn_block *,
		    const struct dsn_field *);
static void	 block_finish(struct dsn_report *, struct dsn_block *);
static size_t	 status_parse(const char *, size_t, struct dsn_report *);
static void	 ctype_name(struct mailmime_content *, char *, size_t);
static const char *ctype_param(struct mailmime_content *, const char *);
static int	 part_decode(struct mailmime *, char **, size_t *);
static void	 msgid_from_part(struct mailmime *, char *, size_t);
static int	 rcpt_valid(const struct dsn_rcpt *);
static int	 report_valid(const struct dsn_report *);
static int	 take_field(const char **, const char *, int, char *, size_t);

static const char *const action_names[] = {
	[DSN_ACTION_UNKNOWN] = "unknown",
	[DSN_ACTION_FAILED] = "failed",
	[DSN_ACTION_DELAYED] = "delayed",
	[DSN_ACTION_DELIVERED] = "delivered",
	[DSN_ACTION_RELAYED] = "relayed",
	[DSN_ACTION_EXPANDED] = "expanded",
};

/* Per-recipient field names (RFC 3464 section 2.3). */
static const char *const rcpt_fields[] = {
	"Original-Recipient", "Final-Recipient", "Action", "Status",
	"Remote-MTA", "Diagnostic-Code", "Last-Attempt-Date", "Final-Log-ID",
	"Will-Retry-Until",
};

/* --- values --------------------------------------------------------------- */

/*
 * Write src[0..n) into dst (size dstsz >= 1) as a clean value: controls
 * (C0, DEL, C1, CR and LF of the folding too) become white space, bytes
 * that are not UTF-8 '?', runs of white space one space, no white space
 * at either end.  Cut at a character boundary when it does not fit:
 * returns 1 then, else 0.
 */
static int
clean_value(char *dst, size_t dstsz, const char *src, size_t n)
{
	const unsigned char	*s = (const unsigned char *)src;
	size_t			 i, k, j = 0;
	int			 space = 0, ws, bad;

	for (i = 0; i < n; i += k) {
		k = mime_utf8_len(s + i, n - i);
		if ((bad = k == 0)) {
			k = 1;		/* not UTF-8: one '?' a byte */
			ws = 0;
		} else if (k == 1)
			ws = s[i] <= ' ' || s[i] == 0x7f;
		else
			ws = k == 2 && s[i] == 0xc2 && s[i + 1] < 0xa0; /* C1 */
		if (ws) {
			space = j > 0;
			continue;
		}
		if (j + (size_t)space + k >= dstsz) {
			dst[j] = '\0';
			return 1;
		}
		if (space)
			dst[j++] = ' ';
		space = 0;
		if (bad)
			dst[j++] = '?';
		else {
			memcpy(dst + j, s + i, k);
			j += k;
		}
	}
	dst[j] = '\0';
	return 0;
}

/* Is s[0..n) exactly what clean_value() writes? */
static int
is_clean(const char *s, size_t n)
{
	char	*tmp;
	int	 r;

	tmp = xmalloc(n + 1);
	r = clean_value(tmp, n + 1, s, n) == 0 && strlen(tmp) == n &&
	    memcmp(tmp, s, n) == 0;
	free(tmp);
	return r;
}

/*
 * A "type; value" field (mta-name-type ";" mta-name, diagnostic-type ";"
 * *text): "type; value" with the type in lower case, or the cleaned whole
 * when there is no ";".  1 if cut to fit.
 */
static int
typed_value(char *dst, size_t dstsz, const char *v, size_t n)
{
	const char	*semi;
	size_t		 tlen, i;
	int		 cut;

	if ((semi = memchr(v, ';', n)) == NULL)
		return clean_value(dst, dstsz, v, n);
	cut = clean_value(dst, dstsz, v, (size_t)(semi - v));
	tlen = strlen(dst);
	for (i = 0; i < tlen; i++) {
		if (dst[i] >= 'A' && dst[i] <= 'Z')
			dst[i] = (char)(dst[i] - 'A' + 'a');
	}
	if (cut || tlen + 3 >= dstsz) {
		if (tlen + 1 < dstsz) {
			dst[tlen] = ';';
			dst[tlen + 1] = '\0';
		}
		return 1;
	}
	dst[tlen] = ';';
	dst[tlen + 1] = ' ';
	cut = clean_value(dst + tlen + 2, dstsz - tlen - 2, semi + 1,
	    n - (size_t)(semi - v) - 1);
	if (dst[tlen + 2] == '\0')
		dst[tlen + 1] = '\0';	/* "type;" and no value */
	return cut;
}

/*
 * address-type ";" generic-address, e.g. "rfc822; <a@b.example>": the
 * address without its type and angle brackets.  0, or -1 when it is
 * empty or does not fit (dst is then "").
 */
static int
address_value(char *dst, size_t dstsz, const char *v, size_t n)
{
	const char	*semi;
	size_t		 len;

	if ((semi = memchr(v, ';', n)) != NULL) {
		n -= (size_t)(semi - v) + 1;
		v = semi + 1;
	}
	if (clean_value(dst, dstsz, v, n) != 0) {
		dst[0] = '\0';
		return -1;
	}
	len = strlen(dst);
	if (len >= 2 && dst[0] == '<' && dst[len - 1] == '>') {
		memmove(dst, dst + 1, len - 2);
		dst[len - 2] = '\0';
		/* "< a@b >": clean again so no space is left at an end */
		len = strlen(dst);
		if (len > 0 && (dst[0] == ' ' || dst[len - 1] == ' ')) {
			char	tmp[DSN_ADDR_MAX];

			(void)clean_value(tmp, sizeof(tmp), dst, len);
			memcpy(dst, tmp, strlen(tmp) + 1);
		}
	}
	return dst[0] == '\0' ? -1 : 0;
}

/* action-value: the first word, any case; text after it is ignored. */
static enum dsn_action
action_value(const char *v, size_t n)
{
	size_t	 i = 0, s, a;

	while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == '\r' ||
	    v[i] == '\n'))
		i++;
	for (s = i; i < n && ((v[i] >= 'a' && v[i] <= 'z') ||
	    (v[i] >= 'A' && v[i] <= 'Z')); i++)
		;
	for (a = DSN_ACTION_FAILED; a < nitems(action_names); a++) {
		if (i - s == strlen(action_names[a]) &&
		    strncasecmp(v + s, action_names[a], i - s) == 0)
			return (enum dsn_action)a;
	}
	return DSN_ACTION_UNKNOWN;
}

/* Does s[0..n) match status-code, with a class of 2, 4 or 5? */
static int
status_valid(const char *s, size_t n)
{
	size_t	 i = 0, d, part;

	if (n < 5 || (s[0] != '2' && s[0] != '4' && s[0] != '5') ||
	    s[1] != '.')
		return 0;
	for (i = 2, part = 0; part < 2; part++) {
		for (d = 0; i < n && s[i] >= '0' && s[i] <= '9'; i++)
			d++;
		if (d < 1 || d > 3)
			return 0;
		if (part == 0) {
			if (i >= n || s[i] != '.')
				return 0;
			i++;
		}
	}
	return i == n;
}

/* status-code: the first token if it matches the grammar, else "". */
static void
status_value(char *dst, size_t dstsz, const char *v, size_t n)
{
	size_t	 i = 0, s;

	dst[0] = '\0';
	while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == '\r' ||
	    v[i] == '\n'))
		i++;
	for (s = i; i < n && ((v[i] >= '0' && v[i] <= '9') || v[i] == '.');
	    i++)
		;
	if (i - s < dstsz && status_valid(v + s, i - s)) {
		memcpy(dst, v + s, i - s);
		dst[i - s] = '\0';
	}
}

/* "<id>": printable ASCII, no space or angle bracket inside. */
static int
msgid_valid(const char *s, size_t n)
{
	size_t	 i;

	if (n < 3 || n > DSN_MSGID_MAX || s[0] != '<' || s[n - 1] != '>')
		return 0;
	for (i = 1; i < n - 1; i++) {
		if (s[i] <= ' ' || s[i] >= 0x7f || s[i] == '<' || s[i] == '>')
			return 0;
	}
	return 1;
}

/* --- the delivery-status part --------------------------------------------- */

/* Is the field named `name' (any case)? */
static int
name_is(const struct dsn_field *f, const char *name)
{
	return f->nlen == strlen(name) && strncasecmp(f->name, name,
	    f->nlen) == 0;
}

/* A per-recipient field? */
static int
is_rcpt_field(const struct dsn_field *f)
{
	size_t	 i;

	for (i = 0; i < nitems(rcpt_fields); i++) {
		if (name_is(f, rcpt_fields[i]))
			return 1;
	}
	return 0;
}

/*
 * The next field (unfolded over its continuation lines) or blank line.
 * A line that is neither (text, a continuation with no field) is skipped;
 * a line of white space only counts as blank.
 * field-name = 1*(%d33-57 / %d59-126), then optional WSP, ":".
 */
static int
scan_next(struct dsn_scan *sc, struct dsn_field *f)
{
	const char	*s, *nl;
	size_t		 n, i, end;
	int		 blank;

	while (sc->pos < sc->len) {
		s = sc->p + sc->pos;
		nl = memchr(s, '\n', sc->len - sc->pos);
		n = nl != NULL ? (size_t)(nl - s) : sc->len - sc->pos;
		end = sc->pos + n + (nl != NULL);
		for (i = 0, blank = 1; i < n && blank; i++)
			blank = s[i] == ' ' || s[i] == '\t' || s[i] == '\r';
		if (blank) {
			sc->pos = end;
			return SCAN_BLANK;
		}
		for (i = 0; i < n && (unsigned char)s[i] > ' ' &&
		    (unsigned char)s[i] < 0x7f && s[i] != ':'; i++)
			;
		f->name = s;
		f->nlen = i;
		while (i < n && (s[i] == ' ' || s[i] == '\t'))
			i++;
		sc->pos = end;
		if (f->nlen == 0 || i >= n || s[i] != ':')
			continue;	/* not a field: skipped */

		/* The value runs on over lines that start with WSP. */
		f->val = s + i + 1;
		while (sc->pos < sc->len && (sc->p[sc->pos] == ' ' ||
		    sc->p[sc->pos] == '\t')) {
			const char	*c = sc->p + sc->pos;
			size_t		 cn, j;

			nl = memchr(c, '\n', sc->len - sc->pos);
			cn = nl != NULL ? (size_t)(nl - c) : sc->len - sc->pos;
			for (j = 0; j < cn && (c[j] == ' ' || c[j] == '\t' ||
			    c[j] == '\r'); j++)
				;
			if (j == cn)
				break;		/* white space only: blank */
			sc->pos += cn + (nl != NULL);
		}
		f->vlen = (size_t)(sc->p + sc->pos - f->val);
		return SCAN_FIELD;
	}
	return SCAN_END;
}

/* Would this field begin the next recipient (no blank line between)? */
static int
block_repeats(const struct dsn_block *b, const struct dsn_field *f)
{
	return (b->has_final && name_is(f, "Final-Recipient")) ||
	    (b->has_orig && name_is(f, "Original-Recipient")) ||
	    (b->has_action && name_is(f, "Action")) ||
	    (b->has_status && name_is(f, "Status"));
}

/* Take one field into the recipient block; repeats are ignored. */
static void
block_field(struct dsn_block *b, const struct dsn_field *f)
{
	struct dsn_rcpt	*r = &b->r;

	b->any = 1;
	if (name_is(f, "Final-Recipient") && !b->has_final) {
		b->has_final = 1;
		(void)address_value(r->final_rcpt, sizeof(r->final_rcpt),
		    f->val, f->vlen);
	} else if (name_is(f, "Original-Recipient") && !b->has_orig) {
		b->has_orig = 1;
		(void)address_value(r->orig_rcpt, sizeof(r->orig_rcpt),
		    f->val, f->vlen);
	} else if (name_is(f, "Action") && !b->has_action) {
		b->has_action = 1;
		r->action = action_value(f->val, f->vlen);
	} else if (name_is(f, "Status") && !b->has_status) {
		b->has_status = 1;
		status_value(r->status, sizeof(r->status), f->val, f->vlen);
	} else if (name_is(f, "Diagnostic-Code") && !b->has_diag) {
		b->has_diag = 1;
		(void)typed_value(r->diagnostic, sizeof(r->diagnostic),
		    f->val, f->vlen);
	}
}

/* Close a block: keep it if it names a recipient and there is room. */
static void
block_finish(struct dsn_report *rep, struct dsn_block *b)
{
	if (b->any && rep->nrcpts < DSN_MAX_RCPTS) {
		if (b->r.final_rcpt[0] == '\0')
			memcpy(b->r.final_rcpt, b->r.orig_rcpt,
			    sizeof(b->r.final_rcpt));
		if (b->r.final_rcpt[0] != '\0')
			rep->rcpts[rep->nrcpts++] = b->r;
	}
	memset(b, 0, sizeof(*b));
}

/*
 * Read one delivery-status body: the per-message group, then recipient
 * blocks.  Returns the number of recipients added to rep.
 */
static size_t
status_parse(const char *p, size_t len, struct dsn_report *rep)
{
	struct dsn_scan		 sc = { p, len, 0 };
	struct dsn_field	 f;
	struct dsn_block	 b;
	size_t			 before = rep->nrcpts;
	char			 mta[DSN_ADDR_MAX] = "";
	int			 t, group = 0;	/* 0 per-message, 1 rcpt, 2 none */
	int			 had = 0;

	memset(&b, 0, sizeof(b));
	while ((t = scan_next(&sc, &f)) != SCAN_END) {
		if (t == SCAN_BLANK) {
			if (group == 1) {
				block_finish(rep, &b);
				group = 2;
			} else if (group == 0 && had)
				group = 2;
			continue;
		}
		had = 1;
		if (group == 0 && !is_rcpt_field(&f)) {
			if (name_is(&f, "Reporting-MTA") && mta[0] == '\0')
				(void)typed_value(mta, sizeof(mta), f.val,
				    f.vlen);
			continue;
		}
		if (group == 1 && block_repeats(&b, &f)) {
			block_finish(rep, &b);
			group = 2;
		}
		if (group != 1) {
			if (rep->nrcpts >= DSN_MAX_RCPTS)
				break;		/* the rest is not read */
			group = 1;
		}
		block_field(&b, &f);
	}
	if (group == 1)
		block_finish(rep, &b);
	if (rep->nrcpts > before && rep->reporting_mta[0] == '\0')
		memcpy(rep->reporting_mta, mta, sizeof(mta));
	return rep->nrcpts - before;
}

/* --- MIME ----------------------------------------------------------------- */

/* "type/subtype" of a part, lower case ("" if there is none). */
static void
ctype_name(struct mailmime_content *ct, char *buf, size_t bufsz)
{
	const char	*type;
	size_t		 i;

	buf[0] = '\0';
	if (ct == NULL || ct->ct_type == NULL || ct->ct_subtype == NULL ||
	    (type = mime_type_name(ct->ct_type)) == NULL)
		return;
	if ((size_t)snprintf(buf, bufsz, "%s/%s", type, ct->ct_subtype) >=
	    bufsz) {
		buf[0] = '\0';
		return;
	}
	for (i = 0; buf[i] != '\0'; i++) {
		if (buf[i] >= 'A' && buf[i] <= 'Z')
			buf[i] = (char)(buf[i] - 'A' + 'a');
	}
}

/* The first parameter named `name' (any case), or NULL. */
static const char *
ctype_param(struct mailmime_content *ct, const char *name)
{
	struct mailmime_parameter	*p;
	clistiter			*it;

	if (ct == NULL || ct->ct_parameters == NULL)
		return NULL;
	for (it = clist_begin(ct->ct_parameters); it != NULL;
	    it = clist_next(it)) {
		p = clist_content(it);
		if (p != NULL && p->pa_name != NULL && p->pa_value != NULL &&
		    strcasecmp(p->pa_name, name) == 0)
			return p->pa_value;
	}
	return NULL;
}

/* Transfer-decode a single part into a malloc'd copy: 0 or -1. */
static int
part_decode(struct mailmime *m, char **outp, size_t *outlenp)
{
	struct mailmime_single_fields	 sf;
	struct mailmime_data		*d;
	char				*dec = NULL;
	size_t				 cur = 0, dlen = 0;
	int				 enc;

	*outp = NULL;
	*outlenp = 0;
	if (m->mm_type != MAILMIME_SINGLE || (d = m->mm_data.mm_single) ==
	    NULL || d->dt_type != MAILMIME_DATA_TEXT ||
	    d->dt_data.dt_text.dt_data == NULL)
		return -1;
	mailmime_single_fields_init(&sf, m->mm_mime_fields, m->mm_content_type);
	enc = sf.fld_encoding != NULL ? sf.fld_encoding->enc_type :
	    MAILMIME_MECHANISM_8BIT;
	if (d->dt_data.dt_text.dt_length == 0) {
		*outp = xstrdup("");
		return 0;
	}
	if (mailmime_part_parse(d->dt_data.dt_text.dt_data,
	    d->dt_data.dt_text.dt_length, &cur, enc, &dec, &dlen) !=
	    MAILIMF_NO_ERROR || dec == NULL)
		return -1;
	*outp = xmalloc(dlen + 1);
	memcpy(*outp, dec, dlen);
	(*outp)[dlen] = '\0';
	*outlenp = dlen;
	mmap_string_unref(dec);
	return 0;
}

/*
 * The Message-ID of a returned message (message/rfc822, message/global)
 * or returned header (text/rfc822-headers, message/global-headers): the
 * first Message-ID field of the header section, read by hand (libetpan's
 * parser would mend "<a b@c>" into "<ab@c>"), its first word if that is a
 * well-formed "<id>".  Nothing after the header is looked at.
 */
static void
msgid_from_part(struct mailmime *m, char *dst, size_t dstsz)
{
	struct mailmime_data	*d;
	struct dsn_scan		 sc;
	struct dsn_field	 f;
	char			*hdr = NULL, id[DSN_MSGID_MAX + 2], *sp;
	size_t			 hlen;
	int			 t;

	dst[0] = '\0';
	if (m->mm_type == MAILMIME_MESSAGE) {
		/* message/rfc822 admits no transfer encoding but 7/8bit */
		d = m->mm_body;
		if (d == NULL || d->dt_type != MAILMIME_DATA_TEXT ||
		    d->dt_data.dt_text.dt_data == NULL)
			return;
		sc.p = d->dt_data.dt_text.dt_data;
		sc.len = d->dt_data.dt_text.dt_length;
	} else {
		if (part_decode(m, &hdr, &hlen) != 0)
			return;
		sc.p = hdr;
		sc.len = hlen;
	}
	sc.pos = 0;
	while ((t = scan_next(&sc, &f)) == SCAN_FIELD) {
		if (!name_is(&f, "Message-ID"))
			continue;
		if (clean_value(id, sizeof(id), f.val, f.vlen) == 0) {
			if ((sp = strchr(id, ' ')) != NULL)
				*sp = '\0';	/* a comment after it */
			if (msgid_valid(id, strlen(id)) && strlen(id) < dstsz)
				memcpy(dst, id, strlen(id) + 1);
		}
		break;
	}
	free(hdr);
}

/* --- public --------------------------------------------------------------- */

/* Parse a bounce into a report. */
enum dsn_result
dsn_parse(const char *raw, size_t len, struct dsn_report *rep,
    const char **error_r)
{
	struct mailmime		*root = NULL, *top, *part;
	clist			*parts;
	clistiter		*it;
	const char		*rtype, *err = NULL;
	char			 ct[128], *body;
	size_t			 idx = 0, blen;
	int			 r, has_status = 0, global, decoded = 0;
	enum dsn_result		 res = DSN_OK;

	memset(rep, 0, sizeof(*rep));
	mime_init();
	r = mailmime_parse(raw, len, &idx, &root);
	if (r != MAILIMF_NO_ERROR || root == NULL) {
		if (root != NULL)
			mailmime_free(root);
		*error_r = "the message could not be parsed as MIME";
		return DSN_MALFORMED;
	}
	top = root->mm_type == MAILMIME_MESSAGE ?
	    root->mm_data.mm_message.mm_msg_mime : root;

	ctype_name(top != NULL ? top->mm_content_type : NULL, ct, sizeof(ct));
	if (top == NULL || strcmp(ct, "multipart/report") != 0) {
		res = DSN_NOT_REPORT;
		err = "the message is not a multipart/report";
		goto done;
	}
	/* Without a usable boundary libetpan may keep no parts at all. */
	parts = top->mm_type == MAILMIME_MULTIPLE ?
	    top->mm_data.mm_multipart.mm_mp_list : NULL;
	for (it = parts != NULL ? clist_begin(parts) : NULL; it != NULL;
	    it = clist_next(it)) {
		part = clist_content(it);
		ctype_name(part->mm_content_type, ct, sizeof(ct));
		if (strcmp(ct, "message/delivery-status") == 0 ||
		    strcmp(ct, "message/global-delivery-status") == 0)
			has_status = 1;
	}
	rtype = ctype_param(top->mm_content_type, "report-type");
	if (rtype != NULL ? strcasecmp(rtype, "delivery-status") != 0 &&
	    strcasecmp(rtype, "global-delivery-status") != 0 : !has_status) {
		res = DSN_NOT_REPORT;
		err = "the report is not a delivery status notification";
		goto done;
	}
	if (!has_status) {
		res = DSN_MALFORMED;
		err = "the report has no delivery-status part";
		goto done;
	}

	/* The first delivery-status part that names a recipient. */
	for (it = clist_begin(parts); it != NULL && rep->nrcpts == 0;
	    it = clist_next(it)) {
		part = clist_content(it);
		ctype_name(part->mm_content_type, ct, sizeof(ct));
		global = strcmp(ct, "message/global-delivery-status") == 0;
		if (!global && strcmp(ct, "message/delivery-status") != 0)
			continue;
		if (part_decode(part, &body, &blen) != 0)
			continue;
		decoded = 1;
		(void)status_parse(body, blen, rep);
		free(body);
	}
	if (rep->nrcpts == 0) {
		memset(rep, 0, sizeof(*rep));
		res = DSN_MALFORMED;
		err = decoded ? "the delivery-status part names no recipient" :
		    "the delivery-status part could not be decoded";
		goto done;
	}

	/* The returned message or its header: its Message-ID only. */
	for (it = clist_begin(parts); it != NULL; it = clist_next(it)) {
		part = clist_content(it);
		ctype_name(part->mm_content_type, ct, sizeof(ct));
		if (part->mm_type == MAILMIME_MESSAGE ||
		    strcmp(ct, "message/rfc822") == 0 ||
		    strcmp(ct, "message/global") == 0 ||
		    strcmp(ct, "text/rfc822-headers") == 0 ||
		    strcmp(ct, "message/global-headers") == 0) {
			msgid_from_part(part, rep->orig_msgid,
			    sizeof(rep->orig_msgid));
			break;
		}
	}

done:
	mailmime_free(root);
	*error_r = err;
	return res;
}

/* The most severe verdict of the report: 5, 4, 2 or 0. */
int
dsn_class(const struct dsn_report *rep)
{
	const struct dsn_rcpt	*r;
	size_t			 i;
	int			 worst = 0, v;

	for (i = 0; i < rep->nrcpts && i < DSN_MAX_RCPTS; i++) {
		r = &rep->rcpts[i];
		/*
		 * Action: failed is final whatever its status: an MTA that
		 * gives up after retrying (Postfix at maximal_queue_lifetime)
		 * reports the last 4.x.x it met.
		 */
		if (r->action == DSN_ACTION_FAILED || r->status[0] == '5')
			v = 5;
		else if (r->action == DSN_ACTION_DELAYED ||
		    r->status[0] == '4')
			v = 4;
		else if (r->action == DSN_ACTION_DELIVERED ||
		    r->action == DSN_ACTION_RELAYED ||
		    r->action == DSN_ACTION_EXPANDED || r->status[0] == '2')
			v = 2;
		else
			v = 0;
		if (v > worst)
			worst = v;
	}
	return worst;
}

/* "failed", "delayed", ...; "unknown" for anything else. */
const char *
dsn_action_name(enum dsn_action a)
{
	if ((unsigned int)a >= nitems(action_names))
		return action_names[DSN_ACTION_UNKNOWN];
	return action_names[a];
}

/* One recipient as dsn_deserialize() would accept it? */
static int
rcpt_valid(const struct dsn_rcpt *r)
{
	size_t	 fl, ol, sl, dl;

	fl = strnlen(r->final_rcpt, sizeof(r->final_rcpt));
	ol = strnlen(r->orig_rcpt, sizeof(r->orig_rcpt));
	sl = strnlen(r->status, sizeof(r->status));
	dl = strnlen(r->diagnostic, sizeof(r->diagnostic));
	if (fl == 0 || fl == sizeof(r->final_rcpt) ||
	    ol == sizeof(r->orig_rcpt) || sl == sizeof(r->status) ||
	    dl == sizeof(r->diagnostic))
		return 0;
	if ((unsigned int)r->action >= nitems(action_names))
		return 0;
	if (sl != 0 && !status_valid(r->status, sl))
		return 0;
	return is_clean(r->final_rcpt, fl) && is_clean(r->orig_rcpt, ol) &&
	    is_clean(r->diagnostic, dl);
}

/* A report as dsn_deserialize() would accept it? */
static int
report_valid(const struct dsn_report *rep)
{
	size_t	 ml, il, i;

	if (rep->nrcpts == 0 || rep->nrcpts > DSN_MAX_RCPTS)
		return 0;
	ml = strnlen(rep->reporting_mta, sizeof(rep->reporting_mta));
	il = strnlen(rep->orig_msgid, sizeof(rep->orig_msgid));
	if (ml == sizeof(rep->reporting_mta) || il == sizeof(rep->orig_msgid))
		return 0;
	if (!is_clean(rep->reporting_mta, ml) ||
	    (il != 0 && !msgid_valid(rep->orig_msgid, il)))
		return 0;
	for (i = 0; i < rep->nrcpts; i++) {
		if (!rcpt_valid(&rep->rcpts[i]))
			return 0;
	}
	return 1;
}

/* The text form; NULL if the report breaks the rules. */
char *
dsn_serialize(const struct dsn_report *rep, size_t *lenp)
{
	const struct dsn_rcpt	*r;
	char			*out, *line;
	size_t			 i, len;

	*lenp = 0;
	if (!report_valid(rep))
		return NULL;
	xasprintf(&out, "%s\nmta\t%s\nmsgid\t%s\n", DSN_TEXT_MAGIC,
	    rep->reporting_mta, rep->orig_msgid);
	len = strlen(out);
	for (i = 0; i < rep->nrcpts; i++) {
		r = &rep->rcpts[i];
		xasprintf(&line, "rcpt\t%s\t%s\t%s\t%s\t%s\n", r->final_rcpt,
		    r->orig_rcpt, dsn_action_name(r->action), r->status,
		    r->diagnostic);
		out = xreallocarray(out, 1, len + strlen(line) + 1);
		memcpy(out + len, line, strlen(line) + 1);
		len += strlen(line);
		free(line);
	}
	*lenp = len;
	return out;
}

/*
 * Copy the next field of a line into dst: it ends at `sep'.  *sp moves
 * past the separator.  0, or -1 if there is no separator or it does not
 * fit (the caller checks the value itself).
 */
static int
take_field(const char **sp, const char *end, int sep, char *dst,
    size_t dstsz)
{
	const char	*s = *sp, *e;

	if ((e = memchr(s, sep, (size_t)(end - s))) == NULL)
		return -1;
	if ((size_t)(e - s) >= dstsz || memchr(s, '\0', (size_t)(e - s)))
		return -1;
	memcpy(dst, s, (size_t)(e - s));
	dst[e - s] = '\0';
	*sp = e + 1;
	return 0;
}

/* Parse the text form strictly: 0, or -1 with rep zeroed. */
int
dsn_deserialize(const char *s, size_t len, struct dsn_report *rep)
{
	const char	*p = s, *end = s + len;
	struct dsn_rcpt	*r;
	char		 word[16], action[16];
	size_t		 a;

	memset(rep, 0, sizeof(*rep));
	if (take_field(&p, end, '\n', word, sizeof(word)) != 0 ||
	    strcmp(word, DSN_TEXT_MAGIC) != 0)
		goto bad;
	if (take_field(&p, end, '\t', word, sizeof(word)) != 0 ||
	    strcmp(word, "mta") != 0 ||
	    take_field(&p, end, '\n', rep->reporting_mta,
	    sizeof(rep->reporting_mta)) != 0)
		goto bad;
	if (take_field(&p, end, '\t', word, sizeof(word)) != 0 ||
	    strcmp(word, "msgid") != 0 ||
	    take_field(&p, end, '\n', rep->orig_msgid,
	    sizeof(rep->orig_msgid)) != 0)
		goto bad;
	while (p < end) {
		if (rep->nrcpts >= DSN_MAX_RCPTS)
			goto bad;
		r = &rep->rcpts[rep->nrcpts++];
		if (take_field(&p, end, '\t', word, sizeof(word)) != 0 ||
		    strcmp(word, "rcpt") != 0 ||
		    take_field(&p, end, '\t', r->final_rcpt,
		    sizeof(r->final_rcpt)) != 0 ||
		    take_field(&p, end, '\t', r->orig_rcpt,
		    sizeof(r->orig_rcpt)) != 0 ||
		    take_field(&p, end, '\t', action, sizeof(action)) != 0 ||
		    take_field(&p, end, '\t', r->status,
		    sizeof(r->status)) != 0 ||
		    take_field(&p, end, '\n', r->diagnostic,
		    sizeof(r->diagnostic)) != 0)
			goto bad;
		for (a = 0; a < nitems(action_names); a++) {
			if (strcmp(action, action_names[a]) == 0)
				break;
		}
		if (a == nitems(action_names))
			goto bad;
		r->action = (enum dsn_action)a;
	}
	/* Tabs inside a value are caught here: a clean value has none. */
	if (report_valid(rep))
		return 0;
bad:
	memset(rep, 0, sizeof(*rep));
	return -1;
}
