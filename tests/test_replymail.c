/*
 * test_replymail.c - the mails a patient's reply causes (replymail.c).
 *
 * Each kind built and read back: the header values (From, To, Subject,
 * Auto-Submitted, Message-ID, In-Reply-To/References), the body parsed
 * back with the inbound parser (mime_parse_letter), the forward's
 * attachments and the original byte for byte.  The no-content rule: every
 * kind but forward is built with a reply document full of marker words
 * at hand, and no marker may appear anywhere in the message.  Injection:
 * a patient's Message-ID or attachment name carrying CRLF never makes a
 * header, an address carrying one is refused.  The sealed document:
 * serialised, parsed back, and malformed ones refused.
 */
#include "build.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "hash.h"
#include "letter.h"
#include "mime.h"
#include "reply.h"
#include "replymail.h"
#include "store.h"
#include "util.h"
#include "tap.h"

/* Words that stand for clinical content: never outside a forward. */
#define MARK_SUBJECT	"ZZSUBJECTCHESTPAIN"
#define MARK_NEW	"ZZNEWTEXTBREATHLESS"
#define MARK_TEXT	"ZZWHOLEBODYQUOTED"
#define MARK_ATT	"ZZATTACHMENTBYTES"
#define MARK_ORIG	"ZZORIGINALMESSAGE"
#define MARK_PHRASE	"ZZREDFLAGPHRASE"

static const char raw_original[] =
    "From: Pat <pat@example.org>\r\n"
    "To: reply+abc@reply.example.net\r\n"
    "Subject: " MARK_SUBJECT "\r\n"
    "Message-ID: <orig.1@example.org>\r\n"
    "\r\n"
    MARK_NEW " since " MARK_PHRASE "\r\n"
    "> " MARK_TEXT "\r\n"
    "\0binary tail \xff\xfe " MARK_ORIG "\r\n";

static const unsigned char att_bytes[] = "\x89PNG\r\n\x1a\n\0" MARK_ATT
    "\xff\x00\x01";

static struct reply_doc *doc_make(void);
static void	 mail_init(struct store_reply_mail *, const char *,
		    const char *);
static void	 mail_clear(struct store_reply_mail *);
static int	 build_clean(const char *, const char *,
		    struct store_reply_mail *, struct replymail_in *,
		    struct reply_doc *, struct mime_msg *);
static void	 in_init(struct replymail_in *, struct store_reply_mail *,
		    const struct reply_doc *);
static char	*header_raw(const char *, const char *);
static int	 header_has(const char *, const char *, const char *);
static const char *body_start(const char *);
static struct letter_doc *parse_back(const struct mime_msg *);
static int	 no_marks(const char *, size_t, const char **);
static void	 test_forward(void);
static void	 test_forward_variants(void);
static void	 test_ack(void);
static void	 test_contact(void);
static void	 test_redflag(void);
static void	 test_quarantine(void);
static void	 test_injection(void);
static void	 test_errors(void);

static struct reply_doc *
doc_make(void)
{
	struct reply_doc	*d;
	struct letter_doc	*c;

	d = xcalloc(1, sizeof(*d));
	c = d->content = letter_doc_new();
	c->subject = xstrdup("Re: " MARK_SUBJECT);
	d->new_text = xstrdup(MARK_NEW " since " MARK_PHRASE);
	c->text = xstrdup(MARK_NEW "\n> " MARK_TEXT);
	c->html = NULL;
	d->removed = REPLY_QUOTE | REPLY_SIGNATURE;
	c->natt = 1;
	c->att = xcalloc(1, sizeof(*c->att));
	c->att[0].filename = xstrdup("scan \xc3\xa9t\xc3\xa9.png");
	c->att[0].content_type = xstrdup("image/png");
	c->att[0].len = sizeof(att_bytes) - 1;
	c->att[0].data = xmemdup(att_bytes, c->att[0].len);
	d->original_len = sizeof(raw_original) - 1;
	d->original = xmemdup(raw_original, d->original_len);
	return d;
}

static void
mail_init(struct store_reply_mail *m, const char *kind, const char *to)
{
	memset(m, 0, sizeof(*m));
	m->id = 9;
	m->reply_id = 56;
	m->practice_id = 1;
	m->letter_id = 34;
	m->patient_id = 12;
	m->clinician_id = 3;
	strlcpy_sp(m->kind, kind, sizeof(m->kind));
	m->to = to != NULL ? xstrdup(to) : NULL;
	m->attempts = 1;
	m->message_id = xstrdup("<rm9.abcdef@practice.example.net>");
	m->in_reply_to = xstrdup("<orig.1@example.org>");
	strlcpy_sp(m->sender, "verified", sizeof(m->sender));
}

static void
mail_clear(struct store_reply_mail *m)
{
	free(m->to);
	free(m->message_id);
	free(m->in_reply_to);
	memset(m, 0, sizeof(*m));
}

static void
in_init(struct replymail_in *in, struct store_reply_mail *m,
    const struct reply_doc *doc)
{
	memset(in, 0, sizeof(*in));
	in->mail = m;
	in->practice_name = "Riverside Surgery";
	in->practice_domain = "practice.example.net";
	in->phone = "01632 960000";
	in->postal_address = "1 River Road\nTownton\nTT1 1AA";
	in->received = 1764111600;		/* 2025-11-25 23:00:00 UTC */
	in->forwarded_to = "Dr Ada Example (C3)";
	in->doc = doc;
	in->date = 1764112000;
}

/* The unfolded value of the first header `name', malloc'd, or NULL. */
static char *
header_raw(const char *msg, const char *name)
{
	const char	*p = msg, *e, *v;
	size_t		 n = strlen(name);
	char		*out, *w;

	while (*p != '\0' && !(p[0] == '\r' && p[1] == '\n')) {
		e = p;
		while ((e = strstr(e, "\r\n")) != NULL &&
		    (e[2] == ' ' || e[2] == '\t'))
			e += 2;
		if (e == NULL)
			return NULL;
		if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
			v = p + n + 1;
			while (*v == ' ')
				v++;
			out = xstrndup(v, (size_t)(e - v));
			/* Unfold: CRLF WSP -> WSP. */
			for (w = out; (w = strstr(w, "\r\n")) != NULL; )
				memmove(w, w + 2, strlen(w + 2) + 1);
			return out;
		}
		p = e + 2;
	}
	return NULL;
}

/* Does header `name' exist with exactly `want' (NULL: at all)? */
static int
header_has(const char *msg, const char *name, const char *want)
{
	char	*v = header_raw(msg, name);
	int	 r;

	r = v != NULL && (want == NULL || strcmp(v, want) == 0);
	if (v != NULL && want != NULL && !r)
		diag("  %s: got \"%s\", want \"%s\"", name, v, want);
	free(v);
	return r;
}

static const char *
body_start(const char *msg)
{
	const char	*p = strstr(msg, "\r\n\r\n");

	return p != NULL ? p + 4 : msg + strlen(msg);
}

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

/* No marker, raw or in base64 of the original, anywhere in s[0..len). */
static int
no_marks(const char *s, size_t len, const char **which)
{
	static const char *const marks[] = {
		MARK_SUBJECT, MARK_NEW, MARK_TEXT, MARK_ATT, MARK_ORIG,
		MARK_PHRASE, "scan ", NULL
	};
	char	*b64;
	size_t	 i;

	for (i = 0; marks[i] != NULL; i++) {
		if (memmem(s, len, marks[i], strlen(marks[i])) != NULL) {
			*which = marks[i];
			return 0;
		}
	}
	/* The original's first line in base64 (as an attachment starts). */
	b64 = hash_b64_encode(raw_original, 24);
	b64[24] = '\0';
	if (memmem(s, len, b64, strlen(b64)) != NULL) {
		*which = "the original in base64";
		free(b64);
		return 0;
	}
	free(b64);
	return 1;
}

/* --- forward ---------------------------------------------------------- */

static void
test_forward(void)
{
	struct reply_doc	*d = doc_make();
	struct store_reply_mail	 m;
	struct replymail_in	 in;
	struct mime_msg		 msg;
	struct letter_doc	*back = NULL;
	const char		*error = NULL, *hdr_end;
	size_t			 i;
	int			 seen_att = 0, seen_orig = 0;

	mail_init(&m, STORE_RM_FORWARD, "ada@practice.example.net");
	in_init(&in, &m, d);
	if (!ok(replymail_build(&in, &msg, &error) == 0, "forward built (%s)",
	    error ? error : "ok")) {
		mail_clear(&m);
		reply_doc_free(&d);
		return;
	}
	ok(header_has(msg.data, "From",
	    "Riverside Surgery <letters@practice.example.net>"),
	    "forward: From the practice");
	ok(header_has(msg.data, "To", "ada@practice.example.net") ||
	    header_has(msg.data, "To", "<ada@practice.example.net>"),
	    "forward: To the clinician");
	ok(header_has(msg.data, "Subject",
	    "Reply from patient P12 on letter L34"),
	    "forward: subject ids only");
	ok(header_has(msg.data, "Auto-Submitted", "auto-generated"),
	    "forward: Auto-Submitted: auto-generated");
	ok(header_has(msg.data, "Message-ID",
	    "<rm9.abcdef@practice.example.net>"),
	    "forward: the claim's Message-ID");
	ok(!header_has(msg.data, "In-Reply-To", NULL),
	    "forward: not threaded under the patient's message");
	hdr_end = body_start(msg.data);
	ok(memmem(msg.data, (size_t)(hdr_end - msg.data), "ZZ", 2) == NULL,
	    "forward: no content in the header section");

	if (ok((back = parse_back(&msg)) != NULL, "forward parses back")) {
		const char	*t = back->text ? back->text : "";

		ok(strstr(t, "Sender check:   Sender verified by mail "
		    "provider\n") != NULL, "forward: sender verified line");
		ok(strstr(t, "Thread:         letter L34\n") != NULL,
		    "forward: thread line");
		ok(strstr(t, "Reply:          R56\n") != NULL,
		    "forward: reply line");
		ok(strstr(t, "Received:       2025-11-25 23:00:00 UTC\n") !=
		    NULL, "forward: received time");
		ok(strstr(t, "shared mailbox") == NULL,
		    "forward: no shared-mailbox note when not shared");
		ok(strstr(t, "Their subject:  Re: " MARK_SUBJECT "\n") != NULL,
		    "forward: the patient's subject inside the body");
		ok(strstr(t, MARK_NEW " since " MARK_PHRASE) != NULL,
		    "forward: the new text");
		ok(strstr(t, MARK_TEXT) == NULL,
		    "forward: the quoted history is not in the body");
		ok(strstr(t, "quoted history signature") != NULL,
		    "forward: says what was removed");
		ok(strstr(t, "Sender check") < strstr(t, MARK_NEW),
		    "forward: header block before the new text");
		for (i = 0; i < back->natt; i++) {
			const struct letter_attachment *a = &back->att[i];

			if (strcmp(a->filename, "original-message.eml") == 0) {
				seen_orig++;
				ok(a->len == sizeof(raw_original) - 1 &&
				    memcmp(a->data, raw_original,
				    a->len) == 0,
				    "forward: the original attached intact");
			} else if (strcmp(a->filename,
			    "scan \xc3\xa9t\xc3\xa9.png") == 0) {
				seen_att++;
				ok(a->len == sizeof(att_bytes) - 1 &&
				    memcmp(a->data, att_bytes, a->len) == 0 &&
				    strcmp(a->content_type, "image/png") == 0,
				    "forward: the patient's attachment intact");
			}
		}
		is_int((int)back->natt, 2, "forward: two attachments");
		is_int(seen_orig, 1, "forward: one original-message.eml");
		is_int(seen_att, 1, "forward: the patient's attachment");
	}
	letter_doc_free(&back);
	mime_msg_clear(&msg);

	/* Urgent, unverified, shared. */
	m.urgent = 1;
	in.shared = 1;
	strlcpy_sp(m.sender, "unverified", sizeof(m.sender));
	error = NULL;
	if (ok(replymail_build(&in, &msg, &error) == 0, "urgent forward built"
	    " (%s)", error ? error : "ok")) {
		ok(header_has(msg.data, "Subject",
		    "Reply from patient P12 on letter L34 [URGENT]"),
		    "urgent forward: [URGENT] in the subject");
		back = parse_back(&msg);
		ok(back != NULL && strstr(back->text, "Sender NOT verified "
		    "(unverified patient-reported information)") != NULL,
		    "unverified forward: says so");
		ok(back != NULL && strstr(back->text, "Mailbox:        shared "
		    "mailbox") != NULL, "shared forward: says so");
		ok(back != NULL && strstr(back->text, "Urgent:         a "
		    "red-flag phrase matched") != NULL,
		    "urgent forward: says a red-flag phrase matched");
		letter_doc_free(&back);
		mime_msg_clear(&msg);
	}
	mail_clear(&m);
	reply_doc_free(&d);
}

static void
test_forward_variants(void)
{
	struct reply_doc	*d = doc_make();
	struct store_reply_mail	 m;
	struct replymail_in	 in;
	struct mime_msg		 msg;
	struct letter_doc	*back = NULL;
	const char		*error = NULL;
	size_t			 i;
	int			 found = 0;

	/* A quarantined reply filed by staff to the team. */
	mail_init(&m, STORE_RM_FORWARD, "team@practice.example.net");
	strlcpy_sp(m.reason, "from_mismatch", sizeof(m.reason));
	strlcpy_sp(m.sender, "mismatch", sizeof(m.sender));
	in_init(&in, &m, d);
	if (ok(replymail_build(&in, &msg, &error) == 0, "filed-from-"
	    "quarantine forward built")) {
		back = parse_back(&msg);
		ok(back != NULL && strstr(back->text, "Sender NOT verified: "
		    "this reply was quarantined (from_mismatch) and filed by "
		    "staff") != NULL, "quarantined-then-filed: says so");
		letter_doc_free(&back);
		mime_msg_clear(&msg);
	}

	/*
	 * Hostile names: CRLF in the patient's subject and an attachment
	 * name; a bad content type; a name over 255 bytes.
	 */
	free(d->content->subject);
	d->content->subject = xstrdup("x\r\nSender check:   Sender verified by mail "
	    "provider");
	free(d->content->att[0].filename);
	d->content->att[0].filename = xstrdup("evil\r\nBcc: x@example.com.png");
	free(d->content->att[0].content_type);
	d->content->att[0].content_type = xstrdup("image/png\r\nX-Evil: 1");
	error = NULL;
	if (ok(replymail_build(&in, &msg, &error) == 0, "hostile names: "
	    "forward still built (%s)", error ? error : "ok")) {
		ok(strstr(msg.data, "\r\nBcc:") == NULL &&
		    strstr(msg.data, "\r\nX-Evil") == NULL,
		    "hostile names: no injected header line");
		back = parse_back(&msg);
		ok(back != NULL && strstr(back->text, "\nSender check:   "
		    "Sender verified") == NULL,
		    "hostile subject: cannot pose as a header block line");
		for (i = 0; back != NULL && i < back->natt; i++) {
			if (strcmp(back->att[i].filename,
			    "evil__Bcc: x@example.com.png") == 0) {
				found = 1;
				ok(back->att[i].len == sizeof(att_bytes) - 1,
				    "hostile name: data kept");
			}
		}
		ok(found, "hostile name: controls replaced, file kept");
		letter_doc_free(&back);
		mime_msg_clear(&msg);
	}

	/* No new text, no attachments: the original still goes. */
	free(d->new_text);
	d->new_text = xstrdup("");
	for (i = 0; i < d->content->natt; i++) {
		free(d->content->att[i].filename);
		free(d->content->att[i].content_type);
		free(d->content->att[i].data);
	}
	free(d->content->att);
	d->content->att = NULL;
	d->content->natt = 0;
	error = NULL;
	if (ok(replymail_build(&in, &msg, &error) == 0, "empty reply: "
	    "forward built")) {
		back = parse_back(&msg);
		ok(back != NULL && strstr(back->text, "(no new text: see the "
		    "original message)") != NULL, "empty reply: says so");
		ok(back != NULL && back->natt == 1 &&
		    strcmp(back->att[0].filename, "original-message.eml") == 0,
		    "empty reply: the original attached");
		letter_doc_free(&back);
		mime_msg_clear(&msg);
	}

	/* Append: no recipient; the message is addressed to the practice. */
	mail_clear(&m);
	mail_init(&m, STORE_RM_APPEND, NULL);
	in_init(&in, &m, d);
	error = NULL;
	if (ok(replymail_build(&in, &msg, &error) == 0, "append built (%s)",
	    error ? error : "ok")) {
		ok(header_has(msg.data, "Auto-Submitted", "auto-generated"),
		    "append: auto-generated");
		ok(header_has(msg.data, "Subject",
		    "Reply from patient P12 on letter L34"),
		    "append: same subject as a forward");
		mime_msg_clear(&msg);
	}
	mail_clear(&m);
	reply_doc_free(&d);
}

/* --- no-content kinds ------------------------------------------------- */

/* Build kind with the document at hand; check it holds no content. */
static int
build_clean(const char *kind, const char *to, struct store_reply_mail *m,
    struct replymail_in *in, struct reply_doc *d, struct mime_msg *msg)
{
	const char	*error = NULL, *which = NULL;

	mail_init(m, kind, to);
	in_init(in, m, d);
	if (!ok(replymail_build(in, msg, &error) == 0, "%s built (%s)", kind,
	    error ? error : "ok"))
		return 0;
	ok(no_marks(msg->data, msg->len, &which), "%s: no content (%s)",
	    kind, which ? which : "none found");
	return 1;
}

static void
test_ack(void)
{
	struct reply_doc	*d = doc_make();
	struct store_reply_mail	 m;
	struct replymail_in	 in;
	struct mime_msg		 msg;
	struct letter_doc	*back;

	if (build_clean(STORE_RM_ACK, "pat@example.org", &m, &in, d, &msg)) {
		ok(header_has(msg.data, "To", "pat@example.org") ||
		    header_has(msg.data, "To", "<pat@example.org>"),
		    "ack: to the patient");
		ok(header_has(msg.data, "From",
		    "Riverside Surgery <letters@practice.example.net>"),
		    "ack: from the practice");
		ok(header_has(msg.data, "Subject",
		    "Re: your reply to Riverside Surgery"),
		    "ack: fixed subject, never the patient's");
		ok(header_has(msg.data, "Auto-Submitted", "auto-replied"),
		    "ack: Auto-Submitted: auto-replied");
		ok(header_has(msg.data, "In-Reply-To", "<orig.1@example.org>"),
		    "ack: In-Reply-To the patient's Message-ID");
		ok(header_has(msg.data, "References", "<orig.1@example.org>"),
		    "ack: References the patient's Message-ID");
		back = parse_back(&msg);
		ok(back != NULL && strstr(back->text, "This mailbox is not "
		    "for emergencies. If you need urgent help call 999, or "
		    "NHS 111") != NULL, "ack: the safety net");
		ok(back != NULL && strstr(back->text, "01632 960000") != NULL,
		    "ack: the practice phone");
		letter_doc_free(&back);
		mime_msg_clear(&msg);
	}
	mail_clear(&m);

	/* Without a phone the safety net stands alone. */
	mail_init(&m, STORE_RM_ACK, "pat@example.org");
	in_init(&in, &m, NULL);
	in.phone = NULL;
	if (ok(replymail_build(&in, &msg, NULL) == 0, "ack without phone")) {
		back = parse_back(&msg);
		ok(back != NULL && strstr(back->text, "call 999") != NULL &&
		    strstr(back->text, "01632") == NULL,
		    "ack without phone: safety net, no number");
		letter_doc_free(&back);
		mime_msg_clear(&msg);
	}
	mail_clear(&m);
	reply_doc_free(&d);
}

static void
test_contact(void)
{
	struct reply_doc	*d = doc_make();
	struct store_reply_mail	 m;
	struct replymail_in	 in;
	struct mime_msg		 msg;
	struct letter_doc	*back;

	if (build_clean(STORE_RM_CONTACT, "someone@example.org", &m, &in, d,
	    &msg)) {
		ok(header_has(msg.data, "Auto-Submitted", "auto-replied"),
		    "contact: auto-replied");
		ok(header_has(msg.data, "Subject",
		    "Re: your message to Riverside Surgery"),
		    "contact: fixed subject");
		back = parse_back(&msg);
		ok(back != NULL && strstr(back->text, "01632 960000") &&
		    strstr(back->text, "  1 River Road\n  Townton\n  TT1 1AA")
		    != NULL, "contact: phone and postal address");
		ok(back != NULL && strstr(back->text, "call 999") != NULL,
		    "contact: the safety net");
		letter_doc_free(&back);
		mime_msg_clear(&msg);
	}
	mail_clear(&m);
	reply_doc_free(&d);
}

static void
test_redflag(void)
{
	struct reply_doc	*d = doc_make();
	struct store_reply_mail	 m;
	struct replymail_in	 in;
	struct mime_msg		 msg;
	struct letter_doc	*back;

	if (build_clean(STORE_RM_REDFLAG, "duty@practice.example.net", &m,
	    &in, d, &msg)) {
		ok(header_has(msg.data, "Subject", "URGENT: a patient's reply "
		    "on letter L34 (reply R56) contains a red-flag phrase"),
		    "redflag: subject ids only");
		ok(header_has(msg.data, "Auto-Submitted", "auto-generated"),
		    "redflag: auto-generated");
		back = parse_back(&msg);
		ok(back != NULL && strstr(back->text, "it has been forwarded "
		    "to Dr Ada Example (C3).") != NULL,
		    "redflag: says where it was forwarded");
		letter_doc_free(&back);
		mime_msg_clear(&msg);
	}
	mail_clear(&m);

	/* Not forwarded (quarantined): says so and how to see it. */
	mail_init(&m, STORE_RM_REDFLAG, "duty@practice.example.net");
	in_init(&in, &m, NULL);
	in.forwarded_to = NULL;
	in.quarantined = 1;
	if (ok(replymail_build(&in, &msg, NULL) == 0, "redflag, quarantined")) {
		back = parse_back(&msg);
		ok(back != NULL && strstr(back->text, "NOT been forwarded") &&
		    strstr(back->text, "sealpostctl quarantine show R56"),
		    "redflag, quarantined: says so");
		letter_doc_free(&back);
		mime_msg_clear(&msg);
	}
	/* Filed, but [replies] forward = none. */
	in.quarantined = 0;
	if (ok(replymail_build(&in, &msg, NULL) == 0, "redflag, not "
	    "forwarded")) {
		back = parse_back(&msg);
		ok(back != NULL && strstr(back->text, "filed on its thread "
		    "but has NOT been forwarded by email") != NULL &&
		    strstr(back->text, "quarantine") == NULL,
		    "redflag, not forwarded: says so");
		letter_doc_free(&back);
		mime_msg_clear(&msg);
	}
	mail_clear(&m);
	reply_doc_free(&d);
}

static void
test_quarantine(void)
{
	struct reply_doc	*d = doc_make();
	struct store_reply_mail	 m;
	struct replymail_in	 in;
	struct mime_msg		 msg;
	struct letter_doc	*back;

	mail_init(&m, STORE_RM_QUARANTINE, "team@practice.example.net");
	strlcpy_sp(m.reason, "dmarc_fail", sizeof(m.reason));
	in_init(&in, &m, d);
	if (ok(replymail_build(&in, &msg, NULL) == 0, "quarantine built")) {
		const char	*which = NULL;

		ok(no_marks(msg.data, msg.len, &which), "quarantine: no "
		    "content (%s)", which ? which : "none found");
		ok(header_has(msg.data, "Subject", "A reply waits in "
		    "quarantine: reply R56, reason dmarc_fail"),
		    "quarantine: subject with id and reason");
		ok(header_has(msg.data, "Auto-Submitted", "auto-generated"),
		    "quarantine: auto-generated");
		back = parse_back(&msg);
		ok(back != NULL && strstr(back->text, "sealpostctl quarantine "
		    "show R56") != NULL, "quarantine: the command");
		letter_doc_free(&back);
		mime_msg_clear(&msg);
	}
	mail_clear(&m);
	reply_doc_free(&d);
}

/* --- injection and errors --------------------------------------------- */

static void
test_injection(void)
{
	static const char *const ids[] = {
		"<a@b>\r\nBcc: evil@example.com",
		"<a b@example.org>",
		"<no-at-sign>",
		"<\xc3\xa9@example.org>",
		"<a@b>\nX-Evil: 1",
		"<a@[192.0.2.1]>",
	};
	struct store_reply_mail	 m;
	struct replymail_in	 in;
	struct mime_msg		 msg;
	const char		*error;
	size_t			 i;

	for (i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		mail_init(&m, STORE_RM_ACK, "pat@example.org");
		free(m.in_reply_to);
		m.in_reply_to = xstrdup(ids[i]);
		in_init(&in, &m, NULL);
		error = NULL;
		if (ok(replymail_build(&in, &msg, &error) == 0, "ack with "
		    "odd Message-ID %zu still built (%s)", i,
		    error ? error : "ok")) {
			ok(!header_has(msg.data, "In-Reply-To", NULL) &&
			    !header_has(msg.data, "References", NULL) &&
			    strstr(msg.data, "evil") == NULL &&
			    strstr(msg.data, "X-Evil") == NULL,
			    "odd Message-ID %zu left out, nothing injected",
			    i);
			mime_msg_clear(&msg);
		}
		mail_clear(&m);
	}

	mail_init(&m, STORE_RM_ACK, "pat@example.org\r\nBcc: x@example.com");
	in_init(&in, &m, NULL);
	error = NULL;
	ok(replymail_build(&in, &msg, &error) == -1 && msg.data == NULL &&
	    error != NULL, "address with CRLF refused (%s)",
	    error ? error : "?");
	mail_clear(&m);

	mail_init(&m, STORE_RM_QUARANTINE, "team@practice.example.net");
	strlcpy_sp(m.reason, "x\r\nBcc: e@example.com", sizeof(m.reason));
	in_init(&in, &m, NULL);
	error = NULL;
	ok(replymail_build(&in, &msg, &error) == -1 && error != NULL,
	    "reason with CRLF refused, not written into the subject");
	mail_clear(&m);

	mail_init(&m, STORE_RM_ACK, "pat@example.org");
	in_init(&in, &m, NULL);
	in.practice_name = "Evil\r\nBcc: x@example.com";
	error = NULL;
	ok(replymail_build(&in, &msg, &error) == -1 && error != NULL,
	    "practice name with CRLF refused");
	mail_clear(&m);
}

static void
test_errors(void)
{
	struct store_reply_mail	 m;
	struct replymail_in	 in;
	struct mime_msg		 msg;
	const char		*error = NULL;

	mail_init(&m, "letter", "pat@example.org");
	in_init(&in, &m, NULL);
	ok(replymail_build(&in, &msg, &error) == -1 && error != NULL &&
	    strstr(error, "kind") != NULL, "unknown kind refused");
	mail_clear(&m);

	mail_init(&m, STORE_RM_FORWARD, "ada@practice.example.net");
	in_init(&in, &m, NULL);
	error = NULL;
	ok(replymail_build(&in, &msg, &error) == -1 && error != NULL,
	    "forward without the document refused");
	mail_clear(&m);

	mail_init(&m, STORE_RM_ACK, NULL);
	in_init(&in, &m, NULL);
	error = NULL;
	ok(replymail_build(&in, &msg, &error) == -1 && error != NULL,
	    "ack without recipient refused");
	mail_clear(&m);

	is_str(replymail_auto_submitted("ack"), "auto-replied",
	    "auto_submitted(ack)");
	is_str(replymail_auto_submitted("contact"), "auto-replied",
	    "auto_submitted(contact)");
	is_str(replymail_auto_submitted("redflag"), "auto-generated",
	    "auto_submitted(redflag)");
	ok(replymail_auto_submitted("bogus") == NULL,
	    "auto_submitted(bogus) is NULL");
}

int
main(void)
{
	if (hash_init() != 0) {
		ok(0, "hash_init");
		return tap_done();
	}
	letter_json_init();
	test_forward();
	test_forward_variants();
	test_ack();
	test_contact();
	test_redflag();
	test_quarantine();
	test_injection();
	test_errors();
	return tap_done();
}
