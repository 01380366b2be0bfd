/*
 * inhdr.h - the header fields of an inbound message that decide where it
 * goes and whether it is trusted: read by the daemon itself, never by the
 * sandboxed MIME parser, so that a parser a hostile message subverted
 * cannot forge a sender, a token or an authentication verdict.
 *
 * The scanner reads only the header section (up to the first empty line,
 * at most max_header bytes), unfolds fields, and keeps the few it needs.
 * It is strict where strictness is safe: anything it cannot read with
 * certainty is reported as a flag, and every flag on From means
 * quarantine (TESTPLAN 3.2), never a guess.
 *
 * From: exactly one field holding exactly one mailbox whose addr-spec is
 * plain ASCII dot-atom (or quoted-string) "@" domain.  Flags:
 *   INHDR_FROM_MISSING     no From field
 *   INHDR_FROM_MULTIPLE    two From fields, or a list of mailboxes
 *   INHDR_FROM_GROUP       group syntax ("name: a@b;")
 *   INHDR_FROM_ENCODED     an RFC 2047 encoded-word in the addr-spec
 *                          (Mailsploit: "=?utf-8?b?...?=@x" hiding
 *                          another address)
 *   INHDR_FROM_UNPARSABLE  anything else the strict reader refuses
 *                          (8-bit bytes in the addr-spec, controls,
 *                          unbalanced <>, comments inside the addr-spec,
 *                          a display name that is itself an address
 *                          followed by another, ...)
 * A display name may be UTF-8 or hold encoded words: it is never decoded
 * nor compared (a name spoofing another address still yields the real
 * addr-spec, which then fails the comparison with the patient's).
 *   INHDR_SENDER_DIFFERS   a Sender field whose addr-spec is not From's
 * The addr-spec is returned with the domain lower-cased and the local part
 * as written (the caller decides on case, TESTPLAN 3.2).
 *
 * Authentication-Results (RFC 8601): every field, top to bottom, with its
 * authserv-id ("" when the field has none, as Microsoft 365 writes) and
 * the results of the methods dmarc and dkim (with header.d / header.i).
 * inhdr_auth() picks the trusted one and gives the verdict.
 *
 * Pure: no I/O, no logging (headers may quote clinical subjects; the
 * fields kept here are routing data), linear in the header size,
 * thread-safe.  Error policy: inhdr_parse returns 0, or -1 with a static
 * reason when the header section is over max_header or has no end.
 */
#ifndef SEALPOST_INHDR_H
#define SEALPOST_INHDR_H

#include <stddef.h>

#define INHDR_ADDR_MAX		254	/* RFC 5321 path limit */
#define INHDR_MSGID_MAX		250
#define INHDR_MAX_RCPTS		32	/* token candidates kept */
#define INHDR_MAX_REFS		32	/* References ids kept (the last) */
#define INHDR_MAX_AR		16	/* A-R fields kept (the topmost) */

#define INHDR_FROM_MISSING	0x01
#define INHDR_FROM_MULTIPLE	0x02
#define INHDR_FROM_GROUP	0x04
#define INHDR_FROM_ENCODED	0x08
#define INHDR_FROM_UNPARSABLE	0x10
#define INHDR_SENDER_DIFFERS	0x20

/* The result of one method in an A-R field. */
enum inhdr_result {
	INHDR_RES_NONE = 0,	/* method absent, or "none" */
	INHDR_RES_PASS,		/* pass (and dmarc=bestguesspass: no: NONE) */
	INHDR_RES_FAIL,		/* fail, and for dkim also "policy" */
	INHDR_RES_TEMPERROR,
	INHDR_RES_PERMERROR,
	INHDR_RES_OTHER		/* neutral, softfail, ... */
};

struct inhdr_ar {
	char		 authserv_id[128];	/* lower-case; "" if none */
	enum inhdr_result dmarc;
	char		 dmarc_from[256];	/* header.from=, lower-case */
	/* dkim: the first passing signature, else the first one */
	enum inhdr_result dkim;
	char		 dkim_domain[256];	/* header.d= (or from header.i),
						   lower-case */
};

/* The source of a token candidate, in the order inhdr keeps them. */
enum inhdr_rcpt_src {
	INHDR_DELIVERED_TO = 1,	/* Delivered-To (topmost first) */
	INHDR_ORIGINAL_TO,	/* X-Original-To */
	INHDR_TO,
	INHDR_CC
};

struct inhdr_rcpt {
	enum inhdr_rcpt_src src;
	char		 addr[INHDR_ADDR_MAX + 1];	/* domain lower-cased */
};

struct inhdr {
	size_t		 header_len;	/* bytes of the header section */

	char		 from[INHDR_ADDR_MAX + 1];	/* "" unless usable */
	unsigned	 from_flags;			/* INHDR_FROM_* */
	char		 sender[INHDR_ADDR_MAX + 1];	/* "" if none */
	int		 return_path_null;	/* Return-Path: <> */

	char		 message_id[INHDR_MSGID_MAX + 1];	/* "<...>" */
	char		 in_reply_to[INHDR_MSGID_MAX + 1];	/* first id */
	char		 refs[INHDR_MAX_REFS][INHDR_MSGID_MAX + 1];
	size_t		 nrefs;

	/* Loop prevention (RFC 3834). */
	char		 auto_submitted[32];	/* "" if absent; lower-case */
	char		 precedence[32];	/* lower-case */
	int		 list_id;		/* List-Id or List-Unsubscribe */
	int		 autoreply_hint;	/* X-Autoreply, X-Autorespond,
						   X-Auto-Response-Suppress:
						   All/AutoReply */
	int		 report;		/* Content-Type multipart/report */

	struct inhdr_rcpt rcpts[INHDR_MAX_RCPTS];
	size_t		 nrcpts;

	struct inhdr_ar	 ar[INHDR_MAX_AR];	/* top to bottom */
	size_t		 nar;
};

/* Scan raw[0..len); 0, or -1 and a static reason. */
int	 inhdr_parse(const char *raw, size_t len, size_t max_header,
	    struct inhdr *, const char **error_r);

/* The sender verdict of the trusted A-R field. */
enum inhdr_auth {
	INHDR_AUTH_NONE = 0,	/* no trusted field, or it has no verdict */
	INHDR_AUTH_PASS,	/* dmarc=pass, or dkim=pass aligned with the
				   From domain (same or a subdomain) */
	INHDR_AUTH_FAIL,	/* dmarc=fail */
	INHDR_AUTH_TEMPERROR	/* dmarc=temperror (treated as none) */
};

/*
 * The trusted field is the topmost one whose authserv-id equals
 * authserv_id (case-insensitive); with topmost set, the topmost field
 * whatever its id; with neither (authserv_id NULL or "" and topmost 0),
 * none.  Fields below it are ignored, forged or not.  why (may be NULL)
 * gets a short human reason ("dmarc=pass by mx.example", "no trusted
 * Authentication-Results").
 */
enum inhdr_auth inhdr_auth(const struct inhdr *, const char *authserv_id,
	    int topmost, char *why, size_t whysz);
const char *inhdr_auth_name(enum inhdr_auth);	/* "pass", "none", ... */

/*
 * Whether the message is automatic and must never be answered (RFC 3834
 * and common practice): Auto-Submitted other than "no", Precedence bulk,
 * list or junk, List-Id, the autoreply hints, a delivery report, a null
 * Return-Path, or a From local part of mailer-daemon / postmaster /
 * no-reply / noreply (case-insensitive).  why gets the rule that matched.
 */
int	 inhdr_is_automatic(const struct inhdr *, const char **why);

/* A static name for a From flag set ("multiple From", ...), for reasons. */
const char *inhdr_from_problem(unsigned flags);

#endif
