/*
 * replymail.h - the mails a patient's reply causes (store.h STORE_RM_*),
 * built as RFC 5322 messages with mime_build().
 *
 *   forward/append  to the clinician (or team): a header block (sender
 *                   check, thread, reply, received, shared mailbox),
 *                   the patient's subject and new text, the patient's
 *                   attachments, and the original message attached
 *                   whole as an .eml so that nothing is lost.
 *                   Auto-Submitted: auto-generated.
 *   ack             to the patient: thanks and the safety net, no
 *                   content.  Auto-Submitted: auto-replied, In-Reply-To
 *                   and References the patient's Message-ID.
 *   contact         to the sender of a reply that could not be filed:
 *                   the practice's contact routes and the safety net.
 *                   Auto-Submitted: auto-replied.
 *   redflag         to the duty address: ids only ("a red-flag phrase
 *                   matched"), never the phrase or any content.
 *   quarantine      to the team address: the reply id and the reason.
 *
 * Subjects carry ids only ("Reply from patient P12 on letter L34"); the
 * patient's own subject appears inside a forward's body, never in a
 * header.  A patient's Message-ID that mime_build() would refuse is left
 * out of In-Reply-To/References rather than failing the ack; attachment
 * names and types the builder would refuse are replaced by safe ones
 * rather than losing the forward.
 *
 * The content of a forward comes from the sealed reply document
 * ("sealpost-reply/1", letter.h), opened by the caller and parsed with
 * reply_doc_parse().
 *
 * Pure and thread-safe: no I/O, no logging (the document is clinical),
 * no global state.  Error policy: 0, or -1 with *error_r a static reason
 * that never quotes content.
 */
#ifndef SEALPOST_REPLYMAIL_H
#define SEALPOST_REPLYMAIL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct reply_doc;
struct mime_msg;
struct store_reply_mail;

/* What a mail is built from.  Strings are borrowed; NULL means absent. */
struct replymail_in {
	const struct store_reply_mail *mail;	/* kind, ids, to, Message-IDs,
						   sender mark, reason */
	const char	*practice_name;		/* required */
	const char	*practice_domain;	/* required: From's domain */
	const char	*phone;			/* contact routes */
	const char	*postal_address;	/* lines separated by LF */
	int64_t		 received;		/* the reply's, unix; 0: unknown */
	int		 shared;		/* a shared family mailbox */
	const char	*forwarded_to;		/* redflag: "Dr A (C3)", "the
						   team address"; NULL: not
						   forwarded */
	int		 quarantined;		/* redflag: the reply waits in
						   quarantine */
	const char	*to_name;		/* display name; NULL: none */
	const struct reply_doc *doc;		/* forward/append: required */
	time_t		 date;
};

/* "letters@<domain>": the practice's From address for every kind. */
#define REPLYMAIL_FROM_LOCAL	"letters"

/* Build the mail; the caller owns msg (mime_msg_clear) on success. */
int	 replymail_build(const struct replymail_in *, struct mime_msg *msg,
	    const char **error_r);

/* The Auto-Submitted value a kind carries, or NULL for an unknown kind. */
const char *replymail_auto_submitted(const char *kind);

#endif
