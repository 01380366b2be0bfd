/*
 * intake.h - replies in: from a raw message to a committed, sealed reply
 * (filed or quarantined) or a bounce handed to the queue.
 *
 *   raw message + envelope recipients (LMTP) or none (IMAP)
 *   -> inhdr_parse (in the daemon: routing and trust fields only)
 *   -> the token: the first envelope recipient, else the first header
 *      recipient (Delivered-To, X-Original-To, To, Cc) whose local part
 *      is reply+<token> or bounce+<token> at a practice's reply domain
 *   -> bounce+: queue_bounce() (the DSN parser in the sandbox, then the
 *      failsafe); the intake waits for its answer
 *   -> reply+: token_check(TOKEN_REPLY); no token: In-Reply-To/References
 *      to a Message-ID we sent (lower trust: quarantined "references_only")
 *   -> the content in the parse sandbox (SANDBOX_OP_PARSE: subject, text,
 *      HTML, attachments with RFC 2231 names), then reply_extract() on
 *      the text (or on reply_html_to_text() of the HTML)
 *   -> the decision (TESTPLAN 3.4):
 *        token valid, thread open, From = the patient's address, trusted
 *        A-R not dmarc=fail, attachments allowed        -> filed
 *        (sender "verified" with dmarc/aligned dkim pass, else
 *        "unverified")
 *        otherwise quarantined with a reason: "bad_token",
 *        "expired_token", "unknown_thread", "thread_closed",
 *        "references_only", "no_token", "from_mismatch", "from_unusable",
 *        "dmarc_fail", "attachment_type", "too_large", "parse_failed",
 *        "parse_crashed", "no_practice"
 *   -> seal the document (below) for the thread's clinician and the
 *      practice archive (no thread: the archive only)
 *   -> store_replies_commit() with the mails it causes: forward (or
 *      append) to the clinician, or the team address when the clinician
 *      is inactive; ack (safety-net text, at most one per thread per
 *      ack_window) unless the message is automatic (inhdr_is_automatic)
 *      or from one of our own addresses; redflag (urgent) to the duty
 *      address and an immediate ack when a red-flag phrase matched;
 *      contact (once per address per ack_window) for an expired or bad
 *      token when not automatic; quarantine alert to the team address
 *   -> the outcome.
 *
 * The sealed document "sealpost-reply/1" (letter.h, struct reply_doc;
 * JSON, then age):
 *   {"format":"sealpost-reply/1","subject":"...","text":"...",
 *    "html":"...","attachments":[{"filename":...,"content_type":...,
 *    "data":"<base64>"}],"new_text":"...","removed":["quote",...],
 *    "original":"<base64 of the raw message>"}
 * (the original is kept whole, so nothing the patient wrote is lost).
 * A message the sandbox could not parse keeps "original" only (with
 * new_text "" and removed []).  Read it with reply_doc_parse().
 *
 * Threads: an intake is one worker's context (its own store connection
 * and parse sandbox); intake_process() blocks.  The IMAP worker owns one;
 * the LMTP listener hands jobs to an intake pool (threads each owning
 * one) and gets the outcome back on the loop thread.
 */
#ifndef SEALPOST_INTAKE_H
#define SEALPOST_INTAKE_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct keyring;
struct queue;
struct token_keys;
struct intake;
struct intake_pool;

struct intake_params {
	const char	*database;
	struct keyring	*keyring;
	const struct token_keys *tkeys;		/* current first */
	size_t		 ntkeys;
	struct queue	*queue;			/* bounces; kicked after a
						   commit that queued mails */
	/* the parse sandbox */
	const char	*parse_program;
	int64_t		 parse_memory_limit;
	int64_t		 parse_timeout;
	/* [replies] */
	size_t		 max_size;
	const char	*authserv_id;		/* "" = none */
	int		 authserv_topmost;
	const char	*forward;		/* "smtp" | "imap" | "none" */
	int64_t		 ack_window;		/* seconds */
	const char	*red_flags_file;	/* "" = built-in list */
	const char	*attachment_types;	/* comma-separated */
	size_t		 max_attachments;
	size_t		 max_attachment_size;
	const char	*imap_practice;		/* IMAP mailbox's practice
						   domain; "" = by address */
};

/* What became of one message (for one envelope recipient). */
enum intake_outcome {
	INTAKE_FILED = 0,
	INTAKE_QUARANTINED,
	INTAKE_DUPLICATE,	/* seen before: nothing new committed */
	INTAKE_BOUNCE,		/* a bounce, handled by the queue */
	INTAKE_REFUSED,		/* LMTP only: not an address of ours (550) */
	INTAKE_TEMPFAIL		/* nothing committed: try again later (451) */
};

struct intake_msg {
	const char	*raw;		/* NULL: too large, only len known */
	size_t		 len;
	const char	*rcpt;		/* envelope recipient, or NULL (IMAP) */
	const char	*source;	/* "imap" | "lmtp" */
	const char	*source_ref;	/* "INBOX uidvalidity/uid", for a
					   message too large to read */
};

struct intake_result {
	enum intake_outcome outcome;
	int64_t		 reply_id;	/* filed/quarantined/duplicate */
	char		 reason[48];	/* quarantine reason or "" */
	/* for LMTP: the reply to this recipient */
	int		 smtp_code;	/* 250, 451, 550, 552, 554 */
	char		 smtp_text[160];	/* "2.0.0 reply filed", ... */
};

/* One worker's context.  0, or -1 and a reason. */
int	 intake_new(const struct intake_params *, struct intake **,
	    const char **error_r);
/* Process one message; never fails without filling result. */
void	 intake_process(struct intake *, const struct intake_msg *,
	    struct intake_result *);
void	 intake_free(struct intake **);

/*
 * The red-flag phrase list: from the file (one a line, # comments,
 * blank lines skipped, each <= 100 bytes, <= 1000 phrases), or the
 * built-in list when path is NULL or "".  0, or -1 and a reason.
 */
int	 intake_red_flags_load(const char *path, char ***phrases, size_t *n,
	    const char **error_r);
void	 intake_red_flags_free(char **, size_t);
/* Whether text contains a phrase (case-insensitive ASCII, whole words). */
int	 intake_red_flag_match(const char *text, char *const *phrases,
	    size_t n, const char **which);

/* --- the pool, for the LMTP listener ------------------------------------ */

struct intake_job {
	char		*raw;		/* owned, wiped when freed */
	size_t		 len;
	char		**rcpts;	/* envelope recipients, owned */
	size_t		 nrcpts;
	struct intake_result *results;	/* one per recipient, by the pool */
	void		(*done)(struct intake_job *, void *);	/* loop */
	void		*arg;
	struct intake_job *next;
};

int	 intake_pool_start(struct event_base *, const struct intake_params *,
	    int threads, struct intake_pool **, const char **error_r);
/* Queue a job; done() runs on the loop thread; it frees the job. */
void	 intake_pool_submit(struct intake_pool *, struct intake_job *);
void	 intake_job_free(struct intake_job **);
/* Finish jobs in flight (their done() runs), join; 0 or -1 (timeout). */
int	 intake_pool_stop(struct intake_pool **, uint64_t timeout_ms);

#endif
