/*
 * dsn.h - delivery status notifications (bounces): RFC 3464
 * multipart/report; report-type=delivery-status, parsed with libetpan.
 *
 * A bounce arrives at a VERP address bounce+<token>@<reply domain>; the
 * token (token.h) names the delivery.  This module reads the report: for
 * each per-recipient block its Final-Recipient, Original-Recipient,
 * Action, Status and Diagnostic-Code, and the Message-ID of the returned
 * message (text/rfc822-headers or message/rfc822 part, when present) so
 * the caller can cross-check it against the delivery's own Message-ID.
 *
 * Untrusted input: dsn_parse() runs only in the parse sandbox (op
 * SANDBOX_OP_DSN), behind mime_prefilter().  The result crosses the pipe
 * as the compact text of dsn_serialize()/dsn_deserialize(), which the
 * daemon side parses strictly.
 *
 * Everything kept is routing data: addresses, codes, the remote MTA's
 * diagnostic text (truncated to DSN_TEXT_MAX, CR/LF/controls replaced by
 * spaces).  The returned message's body is never read or kept.
 *
 * A message that is not a delivery-status report (a plain-text bounce
 * from an old MTA, an auto-reply, spam at the bounce address) gives
 * DSN_NOT_REPORT: the caller decides (quarantine; never a state change).
 */
#ifndef SEALPOST_DSN_H
#define SEALPOST_DSN_H

#include <stddef.h>

#define DSN_MAX_RCPTS		16
#define DSN_ADDR_MAX		256
#define DSN_TEXT_MAX		200
#define DSN_MSGID_MAX		250

enum dsn_action {
	DSN_ACTION_UNKNOWN = 0,
	DSN_ACTION_FAILED,
	DSN_ACTION_DELAYED,
	DSN_ACTION_DELIVERED,
	DSN_ACTION_RELAYED,
	DSN_ACTION_EXPANDED
};

struct dsn_rcpt {
	char		 final_rcpt[DSN_ADDR_MAX];	/* addr, type stripped */
	char		 orig_rcpt[DSN_ADDR_MAX];	/* "" if absent */
	enum dsn_action	 action;
	char		 status[16];			/* "5.1.1" */
	char		 diagnostic[DSN_TEXT_MAX];	/* "smtp; 550 ..." */
};

struct dsn_report {
	char		 reporting_mta[DSN_ADDR_MAX];	/* "dns; mx.example" */
	char		 orig_msgid[DSN_MSGID_MAX + 1];	/* "<..>" or "" */
	struct dsn_rcpt	 rcpts[DSN_MAX_RCPTS];
	size_t		 nrcpts;	/* the first DSN_MAX_RCPTS blocks */
};

enum dsn_result {
	DSN_OK = 0,		/* a report with >= 1 recipient block */
	DSN_NOT_REPORT,		/* not multipart/report delivery-status */
	DSN_MALFORMED		/* a report, but unusable */
};

/* Parse raw[0..len); err gets a static reason unless DSN_OK. */
enum dsn_result dsn_parse(const char *raw, size_t len,
	    struct dsn_report *, const char **error_r);

/*
 * The most severe verdict of the report: 5 if any recipient failed
 * (Action: failed whatever its status: an MTA that gives up after
 * retrying, as Postfix does at maximal_queue_lifetime, reports its last
 * 4.x.x) or has a 5.x.x status, 4 if delayed or 4.x.x, 2 if only
 * delivered/relayed/expanded (or 2.x.x), 0 if nothing usable.
 */
int	 dsn_class(const struct dsn_report *);

const char *dsn_action_name(enum dsn_action);

/* Text form across the sandbox pipe; malloc'd / 0 or -1. */
char	*dsn_serialize(const struct dsn_report *, size_t *lenp);
int	 dsn_deserialize(const char *, size_t, struct dsn_report *);

#endif
