/*
 * replymail.c - the mails a patient's reply causes: forward (and append),
 * ack, contact, redflag and quarantine, built with mime_build(); and the
 * sealed reply document "sealpost-reply/1" parsed and serialised.
 *
 * Public: replymail_build, replymail_auto_submitted.
 *
 * What reaches whom (the rule the tests hold it to): only a forward (or
 * append) carries content, and only in its body and attachments.  Every
 * subject is ids and fixed words; the ack, contact, redflag and quarantine
 * bodies are fixed text, ids, the practice's contact routes and the
 * reason code.  Error policy: 0 or -1 with a static reason (replymail.h).
 */
#include "build.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>


#include "hash.h"
#include "letter.h"
#include "mime.h"
#include "reply.h"
#include "replymail.h"
#include "store.h"
#include "util.h"

#define RM_FORMAT		"sealpost-reply/1"
#define RM_JSON_FLAGS		(JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL)
#define RM_FILENAME_MAX		255	/* mime_build's bound */
#define RM_ORIGINAL_NAME	"original-message.eml"

#define RM_SAFETY_TEXT							\
	"This mailbox is not for emergencies. If you need urgent help "	\
	"call 999, or NHS 111 for advice when it is less urgent."

/*
 * A forward's body: a document whose text is made here and whose
 * attachments borrow the reply document's data (no copy of the content).
 */
struct rm_fwd {
	struct letter_doc	 doc;
	struct letter_attachment *att;
	char			**names;	/* made filenames, owned */
	size_t			 n;
};

static int	 rm_forward(const struct replymail_in *, struct rm_fwd *,
		    char **, const char **);
static void	 rm_fwd_clear(struct rm_fwd *);
static void	 rm_ack(const struct replymail_in *, char **, char **);
static void	 rm_contact(const struct replymail_in *, char **, char **);
static void	 rm_redflag(const struct replymail_in *, char **, char **);
static void	 rm_quarantine(const struct replymail_in *, char **, char **);
static char	*rm_contact_routes(const struct replymail_in *);
static char	*rm_safety(const struct replymail_in *);
static void	 rm_sender_line(const struct store_reply_mail *, char *,
		    size_t);
static void	 rm_time(int64_t, char *, size_t);
static int	 rm_msgid_ok(const char *);
static char	*rm_filename(const char *, size_t);
static int	 rm_ctype_ok(const char *);
static void	 rm_wipe_free(char *);

/* --- building ------------------------------------------------------------- */

const char *
replymail_auto_submitted(const char *kind)
{
	if (kind == NULL)
		return NULL;
	/* RFC 3834: a reply to the patient's message is "auto-replied". */
	if (strcmp(kind, STORE_RM_ACK) == 0 ||
	    strcmp(kind, STORE_RM_CONTACT) == 0)
		return "auto-replied";
	if (strcmp(kind, STORE_RM_FORWARD) == 0 ||
	    strcmp(kind, STORE_RM_APPEND) == 0 ||
	    strcmp(kind, STORE_RM_REDFLAG) == 0 ||
	    strcmp(kind, STORE_RM_QUARANTINE) == 0)
		return "auto-generated";
	return NULL;
}

int
replymail_build(const struct replymail_in *in, struct mime_msg *msg,
    const char **error_r)
{
	const struct store_reply_mail *m = in->mail;
	struct mime_out		 o;
	struct mime_header	 hdr[1];
	struct rm_fwd		 fwd;
	const char		*auto_sub, *error = NULL;
	char			*subject = NULL, *text = NULL, *from = NULL;
	int			 rc = -1, r, forward, reply;

	memset(msg, 0, sizeof(*msg));
	memset(&fwd, 0, sizeof(fwd));
	if (m == NULL || in->practice_name == NULL ||
	    in->practice_domain == NULL) {
		*error_r = "replymail: mail and practice are required";
		return -1;
	}
	if ((auto_sub = replymail_auto_submitted(m->kind)) == NULL) {
		*error_r = "replymail: unknown kind";
		return -1;
	}
	forward = strcmp(m->kind, STORE_RM_FORWARD) == 0 ||
	    strcmp(m->kind, STORE_RM_APPEND) == 0;
	reply = strcmp(m->kind, STORE_RM_ACK) == 0 ||
	    strcmp(m->kind, STORE_RM_CONTACT) == 0;
	if (m->to == NULL && strcmp(m->kind, STORE_RM_APPEND) != 0) {
		*error_r = "replymail: no recipient";
		return -1;
	}

	memset(&o, 0, sizeof(o));
	xasprintf(&from, REPLYMAIL_FROM_LOCAL "@%s", in->practice_domain);
	o.from_name = in->practice_name;
	o.from_addr = from;
	o.to_name = in->to_name;
	/*
	 * An append has no envelope: the message still needs a To, and the
	 * mailbox it lands in is the practice's own.
	 */
	o.to_addr = m->to != NULL ? m->to : from;
	o.date = in->date;
	o.message_id = m->message_id;
	o.msgid_domain = in->practice_domain;
	hdr[0].name = "Auto-Submitted";
	hdr[0].value = auto_sub;
	o.headers = hdr;
	o.nheaders = 1;

	if (forward) {
		if (rm_forward(in, &fwd, &subject, error_r) != 0)
			goto out;
		o.doc = &fwd.doc;
	} else if (strcmp(m->kind, STORE_RM_ACK) == 0)
		rm_ack(in, &subject, &text);
	else if (strcmp(m->kind, STORE_RM_CONTACT) == 0)
		rm_contact(in, &subject, &text);
	else if (strcmp(m->kind, STORE_RM_REDFLAG) == 0)
		rm_redflag(in, &subject, &text);
	else
		rm_quarantine(in, &subject, &text);
	o.subject = subject;
	o.notice = text;

	/*
	 * The auto-replies thread under the patient's message.  Its
	 * Message-ID is the sender's bytes: one the builder would refuse is
	 * left out, the ack still goes.
	 */
	if (reply && m->in_reply_to != NULL && rm_msgid_ok(m->in_reply_to)) {
		o.in_reply_to = m->in_reply_to;
		o.references = m->in_reply_to;
	}
	r = mime_build(&o, msg, &error);
	if (r != 0 && o.in_reply_to != NULL) {
		o.in_reply_to = o.references = NULL;
		r = mime_build(&o, msg, &error);
	}
	if (r != 0) {
		*error_r = error;
		goto out;
	}
	rc = 0;
out:
	rm_fwd_clear(&fwd);
	rm_wipe_free(text);
	free(subject);
	free(from);
	return rc;
}

/* The sender check a forward states first, in words a clinician reads. */
static void
rm_sender_line(const struct store_reply_mail *m, char *out, size_t outsz)
{
	if (m->reason[0] != '\0')
		snprintf(out, outsz, "Sender NOT verified: this reply was "
		    "quarantined (%s) and filed by staff; treat it as "
		    "unverified patient-reported information", m->reason);
	else if (strcmp(m->sender, "verified") == 0)
		snprintf(out, outsz, "Sender verified by mail provider");
	else
		snprintf(out, outsz, "Sender NOT verified (unverified "
		    "patient-reported information)");
}

/* The forward's subject, body text and attachments. */
static int
rm_forward(const struct replymail_in *in, struct rm_fwd *f, char **subjectp,
    const char **error_r)
{
	const struct store_reply_mail *m = in->mail;
	const struct reply_doc	*d = in->doc;
	const struct letter_doc	*c;
	static const struct letter_doc none;	/* an unparsed message */
	struct letter_attachment *a;
	char			 who[48], thread[48], when[48], sender[200];
	char			 removed[80], *psubj, *p;
	size_t			 i;

	if (d == NULL) {
		*error_r = "replymail: a forward needs the reply document";
		return -1;
	}
	c = d->content != NULL ? d->content : &none;
	if (m->patient_id > 0)
		snprintf(who, sizeof(who), "patient P%lld",
		    (long long)m->patient_id);
	else
		snprintf(who, sizeof(who), "an unknown sender");
	if (m->letter_id > 0)
		snprintf(thread, sizeof(thread), "letter L%lld",
		    (long long)m->letter_id);
	else
		snprintf(thread, sizeof(thread), "none");
	if (m->letter_id > 0)
		xasprintf(subjectp, "Reply from %s on letter L%lld%s", who,
		    (long long)m->letter_id, m->urgent ? " [URGENT]" : "");
	else
		xasprintf(subjectp, "Reply R%lld from %s%s",
		    (long long)m->reply_id, who, m->urgent ? " [URGENT]" : "");
	rm_sender_line(m, sender, sizeof(sender));
	rm_time(in->received, when, sizeof(when));
	removed[0] = '\0';
	if (d->removed != 0)
		snprintf(removed, sizeof(removed), "Removed above:  %s%s%s\n",
		    (d->removed & REPLY_QUOTE) ? "quoted history " : "",
		    (d->removed & REPLY_SIGNATURE) ? "signature " : "",
		    (d->removed & REPLY_FOOTER) ? "mobile footer " : "");

	/*
	 * The patient's subject is the sender's bytes: on one line, so that
	 * it cannot pose as a line of the header block.
	 */
	psubj = xstrdup(c->subject != NULL ? c->subject : "");
	for (p = psubj; *p != '\0'; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	}
	xasprintf(&f->doc.text,
	    "Reply from %s on %s (reply R%lld)%s\n"
	    "\n"
	    "Sender check:   %s\n"
	    "Thread:         %s\n"
	    "Reply:          R%lld\n"
	    "Received:       %s\n"
	    "%s"
	    "%s"
	    "Their subject:  %s\n"
	    "%s"
	    "\n"
	    "----- new text of the reply -----\n"
	    "%s\n"
	    "----- end of the new text -----\n"
	    "\n"
	    "Attached: the patient's attachments (%zu) and the original "
	    "message (%s), which holds everything the patient sent.\n",
	    who, thread, (long long)m->reply_id,
	    m->urgent ? " [URGENT]" : "",
	    sender, thread, (long long)m->reply_id, when,
	    in->shared ? "Mailbox:        shared mailbox (more than one "
	    "person may use this address: the writer may not be the "
	    "patient)\n" : "",
	    m->urgent ? "Urgent:         a red-flag phrase matched; the "
	    "duty address was alerted\n" : "",
	    psubj, removed,
	    d->new_text != NULL && *d->new_text != '\0' ? d->new_text :
	    "(no new text: see the original message)",
	    c->natt, RM_ORIGINAL_NAME);
	rm_wipe_free(psubj);

	f->att = xcalloc(c->natt + 1, sizeof(*f->att));
	f->names = xcalloc(c->natt + 1, sizeof(*f->names));
	for (i = 0; i < c->natt; i++) {
		a = &f->att[f->n];
		f->names[f->n] = rm_filename(c->att[i].filename, i + 1);
		a->filename = f->names[f->n];
		a->content_type = rm_ctype_ok(c->att[i].content_type) ?
		    c->att[i].content_type : "application/octet-stream";
		a->data = c->att[i].data;
		a->len = c->att[i].len;
		f->n++;
	}
	if (d->original != NULL && d->original_len > 0) {
		a = &f->att[f->n];
		f->names[f->n] = xstrdup(RM_ORIGINAL_NAME);
		a->filename = f->names[f->n];
		/* mime_build sends it as octet-stream in base64: byte-exact. */
		a->content_type = "message/rfc822";
		a->data = d->original;
		a->len = d->original_len;
		f->n++;
	}
	f->doc.att = f->att;
	f->doc.natt = f->n;
	return 0;
}

static void
rm_fwd_clear(struct rm_fwd *f)
{
	size_t	 i;

	rm_wipe_free(f->doc.text);
	for (i = 0; i < f->n; i++)
		rm_wipe_free(f->names[i]);
	free(f->names);
	free(f->att);		/* the data was borrowed */
	memset(f, 0, sizeof(*f));
}

/* The safety net, with the practice's phone when there is one. */
static char *
rm_safety(const struct replymail_in *in)
{
	char	*s;

	if (in->phone != NULL && *in->phone != '\0')
		xasprintf(&s, "%s To contact %s, call %s.", RM_SAFETY_TEXT,
		    in->practice_name, in->phone);
	else
		s = xstrdup(RM_SAFETY_TEXT);
	return s;
}

/* Acknowledgement to the patient: thanks and the safety net, no content. */
static void
rm_ack(const struct replymail_in *in, char **subjectp, char **textp)
{
	char	*safety = rm_safety(in);

	xasprintf(subjectp, "Re: your reply to %s", in->practice_name);
	xasprintf(textp,
	    "Thank you for your reply to %s.\n"
	    "\n"
	    "It has reached the practice and has been passed to the "
	    "practice team.\n"
	    "\n"
	    "%s\n"
	    "\n"
	    "-- \n"
	    "This is an automatic message from %s.\n",
	    in->practice_name, safety, in->practice_name);
	free(safety);
}

/* The practice's phone and postal address, as lines. */
static char *
rm_contact_routes(const struct replymail_in *in)
{
	char	*s = NULL, *post = NULL, *p, *line, *save = NULL;

	if (in->postal_address != NULL && *in->postal_address != '\0') {
		char	*copy = xstrdup(in->postal_address);

		/* One indented line per address line, as on an envelope. */
		for (line = strtok_r(copy, "\n", &save); line != NULL;
		    line = strtok_r(NULL, "\n", &save)) {
			xasprintf(&p, "%s  %s\n", post ? post : "", line);
			free(post);
			post = p;
		}
		free(copy);
	}
	if (in->phone != NULL && *in->phone != '\0' && post != NULL)
		xasprintf(&s, "By phone:\n  %s\n\nBy post or in person:\n%s",
		    in->phone, post);
	else if (in->phone != NULL && *in->phone != '\0')
		xasprintf(&s, "By phone:\n  %s\n", in->phone);
	else if (post != NULL)
		xasprintf(&s, "By post or in person:\n%s", post);
	else
		s = xstrdup("By phone or in person at the practice.\n");
	free(post);
	return s;
}

/* To the sender of a reply that could not be filed: how to reach us. */
static void
rm_contact(const struct replymail_in *in, char **subjectp, char **textp)
{
	char	*routes = rm_contact_routes(in);

	xasprintf(subjectp, "Re: your message to %s", in->practice_name);
	xasprintf(textp,
	    "Thank you for your message to %s.\n"
	    "\n"
	    "We could not match it to a current letter from us, so it has "
	    "not been added to a record automatically. The reply address "
	    "it was sent to may have expired. If your message needs an "
	    "answer, please contact the practice:\n"
	    "\n"
	    "%s"
	    "\n"
	    "%s\n"
	    "\n"
	    "-- \n"
	    "This is an automatic message from %s.\n",
	    in->practice_name, routes, RM_SAFETY_TEXT, in->practice_name);
	free(routes);
}

/* To the duty address: ids only, the phrase itself is content. */
static void
rm_redflag(const struct replymail_in *in, char **subjectp, char **textp)
{
	const struct store_reply_mail *m = in->mail;
	char	 on[48], where[200];

	if (m->letter_id > 0)
		snprintf(on, sizeof(on), " on letter L%lld",
		    (long long)m->letter_id);
	else
		on[0] = '\0';
	if (in->forwarded_to != NULL)
		snprintf(where, sizeof(where), "it has been forwarded to %s.",
		    in->forwarded_to);
	else if (in->quarantined)
		snprintf(where, sizeof(where), "it has NOT been forwarded: "
		    "it waits in quarantine; see it with\n"
		    "  sealpostctl quarantine show R%lld",
		    (long long)m->reply_id);
	else
		snprintf(where, sizeof(where), "it is filed on its thread "
		    "but has NOT been forwarded by email.");
	xasprintf(subjectp, "URGENT: a patient's reply%s (reply R%lld) "
	    "contains a red-flag phrase", on, (long long)m->reply_id);
	xasprintf(textp,
	    "URGENT: a patient's reply%s (reply R%lld) contains a red-flag "
	    "phrase; %s\n"
	    "\n"
	    "Reply:    R%lld\n"
	    "Letter:   %s%lld\n"
	    "Patient:  P%lld\n"
	    "\n"
	    "Please make sure someone reads it now.  This alert holds ids "
	    "only, never the reply's content.\n",
	    on, (long long)m->reply_id, where, (long long)m->reply_id,
	    m->letter_id > 0 ? "L" : "", (long long)m->letter_id,
	    (long long)m->patient_id);
}

/* To the team address: a reply waits in quarantine; ids and reason. */
static void
rm_quarantine(const struct replymail_in *in, char **subjectp, char **textp)
{
	const struct store_reply_mail *m = in->mail;
	const char	*reason = m->reason[0] != '\0' ? m->reason : "unknown";

	xasprintf(subjectp, "A reply waits in quarantine: reply R%lld, "
	    "reason %s%s", (long long)m->reply_id, reason,
	    m->urgent ? " [URGENT]" : "");
	xasprintf(textp,
	    "A reply waits in quarantine: reply R%lld, reason %s; use\n"
	    "  sealpostctl quarantine show R%lld\n"
	    "to read it, then file it to a thread or reject it.\n"
	    "%s"
	    "\n"
	    "Reply:    R%lld\n"
	    "Reason:   %s\n"
	    "Sender:   %s\n"
	    "\n"
	    "This alert holds ids only, never the reply's content.\n",
	    (long long)m->reply_id, reason, (long long)m->reply_id,
	    m->urgent ? "\nURGENT: a red-flag phrase matched: look at it "
	    "now.\n" : "",
	    (long long)m->reply_id, reason,
	    m->sender[0] != '\0' ? m->sender : "unknown");
}

/* "2026-11-25 23:10:04 UTC", or "unknown". */
static void
rm_time(int64_t t, char *out, size_t outsz)
{
	struct tm	 tm;
	time_t		 tt = (time_t)t;

	if (t <= 0 || gmtime_r(&tt, &tm) == NULL ||
	    strftime(out, outsz, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		strlcpy_sp(out, "unknown", outsz);
}

/* Shaped like a msg-id: "<" printable ASCII with one "@" ">". */
static int
rm_msgid_ok(const char *s)
{
	size_t	 n = strlen(s), i;

	if (n < 5 || n > MIME_MSGID_MAX || s[0] != '<' || s[n - 1] != '>' ||
	    strchr(s, '@') == NULL)
		return 0;
	for (i = 0; i < n; i++) {
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			return 0;
	}
	return 1;
}

/*
 * An attachment name the builder takes: controls become '_', over 255
 * bytes is cut at a character boundary, none becomes attachment-N.bin.
 */
static char *
rm_filename(const char *name, size_t n)
{
	char	*s, *p;
	size_t	 len;

	if (name == NULL || *name == '\0') {
		xasprintf(&s, "attachment-%zu.bin", n);
		return s;
	}
	len = strlen(name);
	if (len > RM_FILENAME_MAX) {
		len = RM_FILENAME_MAX;
		while (len > 0 && ((unsigned char)name[len] & 0xc0) == 0x80)
			len--;
	}
	s = xstrndup(name, len);
	for (p = s; *p != '\0'; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '_';
	}
	if (*s == '\0') {
		free(s);
		xasprintf(&s, "attachment-%zu.bin", n);
	}
	return s;
}

/* type "/" subtype, RFC 2045 tokens (mime_build's rule). */
static int
rm_ctype_ok(const char *ct)
{
	const char	*slash;
	size_t		 i, n;
	int		 c;

	if (ct == NULL || (n = strlen(ct)) == 0 || n > 255)
		return 0;
	if ((slash = strchr(ct, '/')) == NULL || slash == ct ||
	    slash[1] == '\0')
		return 0;
	for (i = 0; i < n; i++) {
		if (ct + i == slash)
			continue;
		c = (unsigned char)ct[i];
		if (c <= 0x20 || c >= 0x7f ||
		    strchr("()<>@,;:\\\"/[]?=", c) != NULL)
			return 0;
	}
	return 1;
}

static void
rm_wipe_free(char *s)
{
	if (s == NULL)
		return;
	hash_wipe(s, strlen(s));
	free(s);
}
