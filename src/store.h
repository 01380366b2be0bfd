/*
 * store.h - the store interface: practices, clinicians, patients, clients,
 * letters, deliveries, idempotency keys and the audit log.
 *
 * No SQL outside the backend.  The one backend today is SQLite
 * (store_sqlite.c: WAL, synchronous=FULL, foreign keys, versioned schema
 * with migrations applied by store_open()); a PostgreSQL backend would be a
 * second implementation of this header.
 *
 * Threading: a struct store is one connection and belongs to one thread at
 * a time.  The daemon opens one for the group-commit writer thread and one
 * for reads on the event loop; sealpostctl opens its own.  Writers in other
 * processes wait on the lock (busy timeout) rather than fail.
 *
 * Clear routing data only: names, addresses, ids, states, times, public
 * keys, wrapped secrets, sealed blobs.  Nothing clinical is ever passed in
 * clear to this interface.
 *
 * Error policy: calls return STORE_OK (0), STORE_NOTFOUND (1) or
 * STORE_ERROR (-1) with a static or thread-local reason in *error_r; the
 * reason never holds row content.  Returned structs are heap-allocated and
 * freed with the matching *_free(), which accepts NULL.
 */
#ifndef SEALPOST_STORE_H
#define SEALPOST_STORE_H

#include <stddef.h>
#include <stdint.h>

#define STORE_OK	 0
#define STORE_NOTFOUND	 1
#define STORE_ERROR	-1
#define STORE_BUSY	-2	/* the disk or lock refused: retry later (503) */

#define STORE_KEY_LEN	32
#define STORE_WRAPPED_MAX 128

struct store;

enum store_open_flags {
	STORE_RDWR	= 0,
	STORE_RDONLY	= 1,
	STORE_CREATE	= 2	/* create the file if missing */
};

struct store_practice {
	int64_t		 id;
	char		*name;
	char		*domain;		/* mail domain, lower-case */
	unsigned char	 archive_pk[STORE_KEY_LEN];	/* archive identity */
	unsigned char	 archive_wrapped[STORE_WRAPPED_MAX];
	size_t		 archive_wrapped_len;
	int64_t		 created;
	/* schema 2 */
	char		*content_policy;	/* "full" or "notify" */
	char		*failsafe_email;	/* alerts go here; NULL: none */
	char		*reply_domain;		/* NULL: domain */
	char		*postal_address;	/* paper letter header; NULL */
	char		*phone;			/* contact routes; NULL */
	/* schema 3 */
	char		*team_email;		/* replies when the clinician is
						   absent; NULL: failsafe_email */
	char		*duty_email;		/* red-flag alerts; NULL:
						   team_email */
};

struct store_clinician {
	int64_t		 id;
	int64_t		 practice_id;
	char		*name;
	char		*email;			/* work address */
	char		*role;
	int		 active;
	unsigned char	 pk[STORE_KEY_LEN];
	unsigned char	 wrapped[STORE_WRAPPED_MAX];
	size_t		 wrapped_len;
	int64_t		 created;
};

struct store_patient {
	int64_t		 id;
	int64_t		 practice_id;
	char		*name;
	char		*email;			/* NULL if none */
	int		 verified;		/* address verified */
	int		 consent;		/* consent to email */
	char		*age_recipient;		/* optional own "age1..." */
	unsigned char	 pk[STORE_KEY_LEN];
	unsigned char	 wrapped[STORE_WRAPPED_MAX];
	size_t		 wrapped_len;
	int64_t		 created;
	/* schema 2 */
	char		*postal_address;	/* lines separated by LF; NULL */
	int		 shared_ok;		/* a shared address is recorded
						   with consent (proxy) */
};

struct store_client {
	int64_t		 id;
	int64_t		 practice_id;
	char		*name;
	int64_t		 default_author_id;	/* 0 = none */
	int		 revoked;
	int64_t		 created;
	/* schema 2 */
	char		*callback_url;		/* https://... or NULL */
	unsigned char	*callback_token;	/* wrapped bearer token, or NULL */
	size_t		 callback_token_len;
};

/* One letter to commit, filled by the submission pipeline. */
struct store_letter_new {
	/* in */
	int64_t		 practice_id;
	int64_t		 client_id;
	int64_t		 patient_id;
	int64_t		 author_id;
	int		 priority;		/* enum letter_priority */
	const char	*channel;		/* "http" or "smtp" */
	const char	*idem_key;		/* NULL: none */
	unsigned char	 req_hash[32];		/* SHA-256 of the request */
	const unsigned char *sealed;		/* the age blob */
	size_t		 sealed_len;
	const char	*address;		/* patient address now, or NULL */
	int64_t		 expires;		/* delivery lifetime end (unix);
						   0: created + 72 h */
	int64_t		 warn_at;		/* delay warning due; 0: none */
	/* out */
	int		 result;		/* STORE_LETTER_* */
	int64_t		 letter_id;
};

enum store_letter_result {
	STORE_LETTER_NEW = 0,		/* inserted */
	STORE_LETTER_DUPLICATE = 1,	/* same idempotency key and request */
	STORE_LETTER_CONFLICT = 2	/* same key, different request */
};

struct store_delivery {
	int64_t		 id;
	char		*recipient;		/* "patient" */
	char		*address;		/* NULL when none on record */
	char		*state;			/* "queued", ... */
	int		 attempts;
	int64_t		 next_attempt;
	int64_t		 updated;
	char		*last_error;		/* NULL or a reason */
	/* schema 2 */
	int64_t		 letter_id;
	int64_t		 practice_id;
	int		 priority;
	char		*message_id;		/* "<...@...>" once claimed */
	int64_t		 expires;		/* lifetime ends */
	int64_t		 warn_at;		/* delay warning due; 0 = none */
	int		 smtp_code;		/* last reply code, 0 = none */
	int64_t		 sent_at;		/* 0 unless sent */
	int		 released;		/* misrouting hold released */
};

struct store_letter {
	int64_t		 id;
	int64_t		 practice_id;
	int64_t		 client_id;
	int64_t		 patient_id;
	int64_t		 author_id;
	int		 priority;
	char		*channel;
	char		*state;			/* "accepted", "sent", "paper",
						   "held", "cancelled" */
	char		*paper_reason;		/* NULL unless state "paper" */
	int64_t		 created;
	size_t		 sealed_len;
	unsigned char	 sealed_sha256[32];
	struct store_delivery *deliveries;
	size_t		 ndeliveries;
	/* schema 3 */
	int64_t		 closed;		/* thread closed at; 0: open */
};

struct store_stats {
	int64_t		 practices, clinicians, patients, clients;
	int64_t		 letters, deliveries_queued, audit_rows;
};

/* Open (and migrate) a database; a newer schema version is refused. */
int	 store_open(const char *path, int flags, struct store **,
	    const char **error_r);
void	 store_close(struct store **);
int	 store_schema_version(struct store *);
/* PRAGMA integrity_check: STORE_OK when "ok". */
int	 store_check(struct store *, const char **error_r);

/* Explicit transactions for admin work (BEGIN IMMEDIATE). */
int	 store_begin(struct store *, const char **error_r);
int	 store_commit(struct store *, const char **error_r);
void	 store_rollback(struct store *);

/*
 * Parties.  *_add inserts a row and returns its id; the identity is set
 * afterwards with store_set_identity(), inside the same transaction,
 * because the wrapped key is bound to the row id.
 */
int	 store_practice_add(struct store *, const char *name,
	    const char *domain, int64_t *id, const char **error_r);
int	 store_clinician_add(struct store *, int64_t practice_id,
	    const char *name, const char *email, const char *role,
	    int64_t *id, const char **error_r);
int	 store_patient_add(struct store *, int64_t practice_id,
	    const char *name, const char *email, int verified, int consent,
	    const char *age_recipient, int64_t *id, const char **error_r);
/* kind: "practice" (archive identity), "clinician" or "patient". */
int	 store_set_identity(struct store *, const char *kind, int64_t id,
	    const unsigned char pk[STORE_KEY_LEN], const unsigned char *wrapped,
	    size_t wrappedlen, const char **error_r);
/* The token itself is never stored: only its SHA-256. */
int	 store_client_add(struct store *, int64_t practice_id,
	    const char *name, const unsigned char token_hash[32],
	    int64_t default_author_id, int64_t *id, const char **error_r);

int	 store_practice_get(struct store *, int64_t, struct store_practice **,
	    const char **error_r);
/* By mail domain, else by reply domain (case-insensitive). */
int	 store_practice_by_domain(struct store *, const char *,
	    struct store_practice **, const char **error_r);
int	 store_clinician_get(struct store *, int64_t,
	    struct store_clinician **, const char **error_r);
int	 store_clinician_by_email(struct store *, int64_t practice_id,
	    const char *email, struct store_clinician **, const char **error_r);
int	 store_patient_get(struct store *, int64_t, struct store_patient **,
	    const char **error_r);
int	 store_client_by_token(struct store *, const unsigned char hash[32],
	    struct store_client **, const char **error_r);

void	 store_practice_free(struct store_practice **);
void	 store_clinician_free(struct store_clinician **);
void	 store_patient_free(struct store_patient **);
void	 store_client_free(struct store_client **);

/*
 * Group commit: insert n letters (each with one delivery row for the
 * patient, state "queued", and one audit row) in one transaction with one
 * fsync.  An idempotency key already present yields DUPLICATE (the first
 * letter's id) or CONFLICT (a different request hash) for that entry and
 * inserts nothing for it.  All-or-nothing: on STORE_ERROR or STORE_BUSY
 * nothing is committed and every entry must be answered with a failure.
 */
int	 store_letters_commit(struct store *, struct store_letter_new *,
	    size_t n, const char **error_r);

/* Look up an idempotency key before doing the work (may race: the commit
 * decides). */
int	 store_idem_lookup(struct store *, int64_t client_id, const char *key,
	    unsigned char req_hash[32], int64_t *letter_id,
	    const char **error_r);

int	 store_letter_get(struct store *, int64_t id, struct store_letter **,
	    const char **error_r);
/* The sealed blob of a letter, malloc'd. */
int	 store_letter_sealed(struct store *, int64_t id, unsigned char **blob,
	    size_t *len, const char **error_r);
void	 store_letter_free(struct store_letter **);

/*
 * Audit: append one row to the hash chain.  actor: "client:3",
 * "admin:root", "daemon"; action: "letter.submit", "patient.add", ...;
 * object: "letter:42"; outcome: "ok" or a short reason.
 */
int	 store_audit(struct store *, const char *actor, const char *action,
	    const char *object, const char *outcome, const char **error_r);
/* Walk the chain; on a break, *bad_id is the first bad row. */
int	 store_audit_verify(struct store *, int64_t *nrows, int64_t *bad_id,
	    const char **error_r);

int	 store_stats(struct store *, struct store_stats *, const char **error_r);

/* --- settings (schema 2) ---------------------------------------------- */

/*
 * Set one field of a party; value NULL clears it (where NULL is allowed).
 * practice: "content_policy" ("full"|"notify"), "failsafe_email",
 *   "reply_domain", "postal_address", "phone", "team_email", "duty_email".
 * clinician: "active" ("0"|"1": absent or left = 0), "email".
 * patient: "email" (also clears verified), "postal_address",
 *   "verified" ("0"|"1"), "consent" ("0"|"1"), "shared_ok" ("0"|"1").
 * client: "callback_url".  The callback token goes through
 *   store_client_set_callback_token (it is a wrapped secret).
 * STORE_NOTFOUND if no such row; STORE_ERROR for an unknown field or a
 * value the schema refuses.  The caller audits.
 */
int	 store_practice_set(struct store *, int64_t id, const char *field,
	    const char *value, const char **error_r);
int	 store_patient_set(struct store *, int64_t id, const char *field,
	    const char *value, const char **error_r);
int	 store_client_set(struct store *, int64_t id, const char *field,
	    const char *value, const char **error_r);
int	 store_clinician_set(struct store *, int64_t id, const char *field,
	    const char *value, const char **error_r);
int	 store_client_set_callback_token(struct store *, int64_t id,
	    const unsigned char *wrapped, size_t len, const char **error_r);
int	 store_client_get(struct store *, int64_t, struct store_client **,
	    const char **error_r);
/*
 * Other patients of the practice with the same address (case-insensitive)
 * and shared_ok = 0 on either side: *n is their number (0 = not shared
 * without consent).
 */
int	 store_address_shared(struct store *, int64_t practice_id,
	    int64_t patient_id, const char *email, int64_t *n,
	    const char **error_r);

/* --- the delivery queue (schema 2) ------------------------------------ */

/*
 * Delivery states.  Every transition is committed before it is acted on.
 *
 *   queued --claim--> sending --> sent
 *                        |------> deferred --claim--> sending ...
 *                        |------> failed     (terminal, failsafe)
 *                        `------> expired    (terminal, failsafe)
 *   queued|deferred --> held (misrouting guard) --release--> queued
 *   queued|deferred|held --> cancelled (terminal)
 *   sent --bounce (DSN)--> failed (terminal, failsafe)
 *
 * A letter's state follows: "accepted" while any delivery is open, "sent"
 * when all are sent, "held" while one is held, "paper" once the failsafe
 * ran (paper_reason says why), "cancelled".
 */
#define STORE_DS_QUEUED		"queued"
#define STORE_DS_SENDING	"sending"
#define STORE_DS_SENT		"sent"
#define STORE_DS_DEFERRED	"deferred"
#define STORE_DS_FAILED		"failed"
#define STORE_DS_EXPIRED	"expired"
#define STORE_DS_CANCELLED	"cancelled"
#define STORE_DS_HELD		"held"

/* A delivery claimed for an attempt (its row is now "sending"). */
struct store_claim {
	int64_t		 delivery_id;
	int64_t		 letter_id;
	int64_t		 practice_id;
	int64_t		 patient_id;
	int64_t		 client_id;		/* 0: none */
	int64_t		 author_id;		/* 0: none */
	int		 priority;
	int		 attempts;		/* including this one */
	int		 released;		/* a held delivery let go */
	int64_t		 created;		/* the letter's */
	int64_t		 expires;
	char		*address;		/* recorded at submission; NULL */
	char		*message_id;		/* stable for every attempt */
	unsigned char	*sealed;		/* the letter's age blob */
	size_t		 sealed_len;
};

/*
 * Claim up to max_new deliveries in state "queued" (urgent first, then
 * oldest) and up to max_retry in state "deferred", all with next_attempt
 * <= now, in one transaction: each becomes "sending" with attempts + 1;
 * one without a Message-ID gets mime_message_id(practice domain) and keeps
 * it for every later attempt.  Index-driven: cost follows the number
 * claimed, not the backlog.  *out is an array of *n claims
 * (store_claims_free).
 */
int	 store_deliveries_claim(struct store *, int64_t now, size_t max_new,
	    size_t max_retry, struct store_claim **out, size_t *n,
	    const char **error_r);
void	 store_claims_free(struct store_claim **, size_t n);

/* Side effects a transition carries (bit mask). */
#define STORE_TX_PAPER		0x01	/* failsafe: the letter to paper */
#define STORE_TX_ALERT		0x02	/* an alert mail to the practice */
#define STORE_TX_CALLBACK	0x04	/* a webhook event for the client */

/*
 * One state change of a delivery.  The store applies it only if the row
 * is in one of the states `from' names (a '|'-separated list, e.g.
 * "sending" or "sent|sending|deferred"); otherwise it is skipped and
 * `applied' says 0 (a late bounce for a delivery already failed, a result
 * for a row the admin cancelled).
 */
struct store_transition {
	int64_t		 delivery_id;
	const char	*from;			/* allowed current states */
	const char	*to;			/* STORE_DS_* */
	int64_t		 next_attempt;		/* deferred: when */
	int		 smtp_code;		/* 0: none */
	const char	*error;			/* short reason, no content:
						   "550 5.1.1 from smarthost",
						   "tls: certificate expired" */
	const char	*address;		/* NULL: unchanged */
	unsigned	 effects;		/* STORE_TX_* */
	const char	*alert_kind;		/* "failed", "expired",
						   "bounced", "delayed",
						   "held", "tls" ... */
	const char	*paper_reason;		/* short, no content */
	int		 undo_attempt;		/* the claim's attempt did not
						   happen (stopping): take
						   attempts back by one */
	/* out */
	int		 applied;
};

/*
 * Apply n transitions in one transaction (one fsync): update each row
 * (state, next_attempt, smtp_code, last_error, updated, sent_at when
 * "sent"), the letter's state, and per effect: a paper row (the letter
 * enters the paper queue once, later reasons are kept in the audit),
 * an alert row (state "queued", or "none" when the practice has no
 * failsafe_email), a callback row (only when the client has a
 * callback_url; the payload is JSON made by the store: delivery id,
 * letter id, state, smtp code, reason, time -- never content).  Every
 * terminal transition and every hold writes an audit row
 * ("delivery.<state>", object "delivery:ID", outcome the reason).
 * All-or-nothing like store_letters_commit.
 */
int	 store_deliveries_update(struct store *, struct store_transition *,
	    size_t n, const char **error_r);

/* At start: every "sending" row back to "queued" (its Message-ID kept). */
int	 store_deliveries_recover(struct store *, int64_t *n,
	    const char **error_r);

/*
 * Delay warnings: for up to max deliveries not yet terminal or sent with
 * 0 < warn_at <= now, add a "delayed" alert row and set warn_at = 0, in
 * one transaction.  *n is how many.
 */
int	 store_deliveries_warn(struct store *, int64_t now, size_t max,
	    int64_t *n, const char **error_r);

/* One delivery (for bounces and the CLI). */
int	 store_delivery_get(struct store *, int64_t id,
	    struct store_delivery **, const char **error_r);
void	 store_delivery_free(struct store_delivery **);

/*
 * Admin: every "held" delivery of the letter back to "queued" with
 * released = 1 and address = the patient's current address; cancel: every
 * open delivery (queued, deferred, held) to "cancelled".  *n is how many
 * rows changed; audited.
 */
int	 store_letter_release(struct store *, int64_t letter_id,
	    const char *actor, int64_t *n, const char **error_r);
int	 store_letter_cancel(struct store *, int64_t letter_id,
	    const char *actor, int64_t *n, const char **error_r);
/*
 * Due now: every deferred delivery whose last_error starts with prefix
 * (the daemon's own "waiting: ..." reasons, once their cause is gone).
 */
int	 store_deliveries_retry_reason(struct store *, const char *prefix,
	    int64_t now, int64_t *n, const char **error_r);
/* Admin: due now -- every deferred delivery of the letter (0: all). */
int	 store_deliveries_retry(struct store *, int64_t letter_id,
	    int64_t now, int64_t *n, const char **error_r);

/* Counts and the oldest open delivery, for status and /metrics. */
struct store_queue_stats {
	int64_t		 queued, sending, deferred, held, sent, failed;
	int64_t		 expired, cancelled;
	int64_t		 oldest_open;		/* created of the oldest open
						   delivery, 0: none */
	int64_t		 paper_open;		/* paper rows not done */
	int64_t		 alerts_queued, callbacks_queued;
	int64_t		 next_due;		/* min next_attempt of queued or
						   deferred rows, 0: none */
};
int	 store_queue_stats(struct store *, struct store_queue_stats *,
	    const char **error_r);

/* A listing row for "sealpostctl queue list". */
struct store_queue_row {
	int64_t		 delivery_id, letter_id, patient_id;
	char		 state[16];
	int		 attempts;
	int64_t		 next_attempt, created;
	char		 last_error[200];
};
/* states: '|'-separated filter, NULL = every open state; oldest first;
 * max 0: no limit. */
int	 store_queue_list(struct store *, const char *states, size_t max,
	    struct store_queue_row **, size_t *n, const char **error_r);

/* --- alerts: mails to the practice's failsafe address ------------------ */

struct store_alert {
	int64_t		 id;
	int64_t		 practice_id;
	int64_t		 letter_id;
	int64_t		 delivery_id;
	int64_t		 patient_id;
	char		 kind[16];		/* "failed", "expired", ... */
	char		 reason[200];		/* no content */
	int64_t		 created;
	int		 attempts;
	char		*to;			/* the failsafe address */
	char		*message_id;		/* stable, set at first claim */
};

/* Claim up to max due alerts (state "queued" -> "sending"). */
int	 store_alerts_claim(struct store *, int64_t now, size_t max,
	    struct store_alert **, size_t *n, const char **error_r);
void	 store_alerts_free(struct store_alert **, size_t n);
/* state: "sent", "queued" (retry at next_attempt) or "failed". */
int	 store_alert_done(struct store *, int64_t id, const char *state,
	    int64_t next_attempt, const char *error, const char **error_r);

/* --- webhook callbacks -------------------------------------------------- */

struct store_callback {
	int64_t		 id;
	int64_t		 client_id;
	int64_t		 delivery_id;
	int		 attempts;
	char		*url;
	unsigned char	*token;			/* wrapped, as stored */
	size_t		 token_len;
	char		*payload;		/* JSON, no content */
};

int	 store_callbacks_claim(struct store *, int64_t now, size_t max,
	    struct store_callback **, size_t *n, const char **error_r);
void	 store_callbacks_free(struct store_callback **, size_t n);
/* state: "sent", "queued" (retry at next_attempt) or "failed". */
int	 store_callback_done(struct store *, int64_t id, const char *state,
	    int64_t next_attempt, int http_status, const char **error_r);

/* --- the paper queue ---------------------------------------------------- */

struct store_paper {
	int64_t		 letter_id;
	int64_t		 practice_id;
	int64_t		 patient_id;
	char		 reason[200];
	int64_t		 created;
	int64_t		 printed;		/* 0: not yet */
	int64_t		 done;			/* 0: open */
	char		 done_by[64];
};

/* practice_id 0: all; with_done: include done rows.  Oldest first. */
int	 store_paper_list(struct store *, int64_t practice_id, int with_done,
	    struct store_paper **, size_t *n, const char **error_r);
int	 store_paper_get(struct store *, int64_t letter_id,
	    struct store_paper *, const char **error_r);
/* Mark printed / done (audited with actor).  NOTFOUND if not in it. */
int	 store_paper_printed(struct store *, int64_t letter_id,
	    const char *actor, const char **error_r);
int	 store_paper_done(struct store *, int64_t letter_id, const char *actor,
	    const char **error_r);

/* --- replies (schema 3) ------------------------------------------------- */

/*
 * A reply is a message that came in for a thread (a thread is a letter:
 * its id is the letter id).  Every reply is stored, sealed: the JSON
 * document "sealpost-reply/1" (intake.h) holding the new text, the whole
 * body, the attachments and the original message, sealed for the
 * thread's clinician and the practice archive (a quarantined reply
 * without a thread: the archive only).  In clear: ids, states, the
 * From address, the patient's Message-ID, times, reasons (no content).
 *
 *   filed        matched a thread and passed every check
 *   quarantined  for staff: a check failed (reason says which)
 *   rejected     staff decided it is not for the record (audited)
 *
 *   quarantined --file (sealpostctl quarantine file)--> filed
 *   quarantined --reject--> rejected
 *
 * Duplicates: (practice_id, dedup) is unique.  dedup is SHA-256 over the
 * Message-ID (else the raw message) and the thread matched, so the same
 * message fetched twice (a crash between commit and IMAP move, a
 * UIDVALIDITY change) is recognised and never filed twice.
 */
#define STORE_RS_FILED		"filed"
#define STORE_RS_QUARANTINED	"quarantined"
#define STORE_RS_REJECTED	"rejected"

/* Mails a reply causes (queued in the same transaction). */
#define STORE_RM_FORWARD	"forward"	/* the reply to the clinician
						   (or team): content */
#define STORE_RM_APPEND		"append"	/* the same by IMAP APPEND */
#define STORE_RM_ACK		"ack"		/* safety-net acknowledgement
						   to the patient: no content */
#define STORE_RM_REDFLAG	"redflag"	/* alert to the duty address:
						   ids only, no content */
#define STORE_RM_CONTACT	"contact"	/* polite auto-reply to a
						   reply we cannot file: the
						   practice's contact routes */
#define STORE_RM_QUARANTINE	"quarantine"	/* alert to the team address:
						   a reply waits in quarantine */

struct store_reply_mail_new {
	const char	*kind;			/* STORE_RM_* */
	const char	*to;			/* addr-spec; NULL for append */
	int64_t		 clinician_id;		/* forward: to whom; 0 team */
};

struct store_reply_new {
	/* in */
	int64_t		 practice_id;
	int64_t		 letter_id;		/* thread; 0: none matched */
	int64_t		 patient_id;		/* 0: unknown */
	int64_t		 clinician_id;		/* routed to; 0: the team */
	const char	*state;			/* filed | quarantined */
	const char	*reason;		/* quarantine code, NULL when
						   filed: "bad_token",
						   "from_mismatch", ... */
	const char	*detail;		/* human, no content */
	const char	*sender;		/* "verified", "unverified",
						   "mismatch", "spoof" */
	const char	*from_addr;		/* From addr-spec or NULL */
	const char	*message_id;		/* the patient's, or NULL */
	const char	*source;		/* "imap" | "lmtp" */
	unsigned char	 dedup[32];
	int		 urgent;		/* a red flag matched */
	int		 shared;		/* a shared family mailbox */
	const unsigned char *sealed;		/* age blob */
	size_t		 sealed_len;
	int64_t		 received;		/* unix */
	const struct store_reply_mail_new *mails;
	size_t		 nmails;
	/*
	 * A mail of kind "ack" (or "contact") is queued only if no mail of
	 * that kind for the same thread (thread 0: the same address) was
	 * queued within the last ack_window seconds; 0: always.
	 */
	int64_t		 ack_window;
	/* out */
	int		 result;		/* STORE_REPLY_* */
	int64_t		 reply_id;		/* new, or the first copy's */
	int		 acked;			/* the ack/contact was queued */
};

enum store_reply_result {
	STORE_REPLY_NEW = 0,
	STORE_REPLY_DUPLICATE = 1		/* nothing inserted */
};

/*
 * Commit n replies in one transaction (one fsync): the reply rows, their
 * mails, an audit row each ("reply.filed" / "reply.quarantined", object
 * "reply:ID", outcome the reason or "ok").  A duplicate inserts nothing
 * for its entry.  All-or-nothing like store_letters_commit.
 */
int	 store_replies_commit(struct store *, struct store_reply_new *,
	    size_t n, const char **error_r);

struct store_reply {
	int64_t		 id;
	int64_t		 practice_id;
	int64_t		 letter_id;		/* 0: no thread */
	int64_t		 patient_id;		/* 0: unknown */
	int64_t		 clinician_id;
	char		 state[16];
	char		 reason[48];		/* "" when filed */
	char		 detail[200];
	char		 sender[16];
	char		 from_addr[256];
	char		 message_id[256];
	char		 source[8];
	int		 urgent;
	int		 shared;
	int64_t		 received;
	int64_t		 created;
	int64_t		 decided;		/* filed/rejected by staff at */
	char		 decided_by[64];
	size_t		 sealed_len;
	int64_t		 filed_seq;		/* place in the feed; 0 unless
						   filed */
};

int	 store_reply_get(struct store *, int64_t id, struct store_reply *,
	    const char **error_r);
/* The sealed document, malloc'd. */
int	 store_reply_sealed(struct store *, int64_t id, unsigned char **blob,
	    size_t *len, const char **error_r);
/*
 * Replies in id order after since_id: practice_id 0 = all, letter_id 0 =
 * any thread, states NULL = every state ('|'-separated otherwise), max 0 =
 * no limit.  *rows is an array of *n (free()).
 */
int	 store_replies_list(struct store *, int64_t practice_id,
	    int64_t letter_id, const char *states, int64_t since_id,
	    size_t max, struct store_reply **rows, size_t *n,
	    const char **error_r);

/*
 * The feed: the practice's filed replies in the order they were filed
 * (each filing, by the intake or by staff, takes the next filed_seq),
 * after since_seq; max 0 = no limit.  A client that keeps the last
 * filed_seq it saw never misses a reply filed later from the quarantine.
 */
int	 store_replies_feed(struct store *, int64_t practice_id,
	    int64_t since_seq, size_t max, struct store_reply **rows,
	    size_t *n, const char **error_r);

/*
 * Staff decisions on a quarantined reply (STORE_NOTFOUND unless it is
 * quarantined).  File: to thread letter_id (its patient), resealed for
 * that thread's clinician + archive (sealed: the new blob), state filed,
 * the given mails queued; reject: state rejected with reason.  Both set
 * decided/decided_by and write an audit row ("reply.file" /
 * "reply.reject", actor).
 */
int	 store_reply_file(struct store *, int64_t id, int64_t letter_id,
	    int64_t clinician_id, const unsigned char *sealed,
	    size_t sealed_len, const struct store_reply_mail_new *mails,
	    size_t nmails, const char *actor, const char **error_r);
int	 store_reply_reject(struct store *, int64_t id, const char *reason,
	    const char *actor, const char **error_r);

/*
 * Matching by In-Reply-To/References: the delivery that sent the
 * Message-ID msgid ("<...>"), with its letter and patient.  NOTFOUND if
 * none.
 */
int	 store_delivery_by_message_id(struct store *, const char *msgid,
	    int64_t *delivery_id, int64_t *letter_id, int64_t *patient_id,
	    const char **error_r);

/* Close a thread: later replies are quarantined ("thread_closed"). */
int	 store_letter_close(struct store *, int64_t letter_id,
	    const char *actor, const char **error_r);

/* One mail a reply caused, claimed for sending. */
struct store_reply_mail {
	int64_t		 id;
	int64_t		 reply_id;
	int64_t		 practice_id;
	int64_t		 letter_id;		/* 0: none */
	int64_t		 patient_id;		/* 0: unknown */
	int64_t		 clinician_id;
	char		 kind[16];		/* STORE_RM_* */
	char		*to;			/* NULL for append */
	int		 attempts;		/* including this one */
	int		 urgent;
	char		*message_id;		/* ours, stable per mail */
	char		*in_reply_to;		/* the patient's Message-ID */
	char		 sender[16];		/* the reply's sender mark */
	char		 reason[48];		/* the reply's reason */
	unsigned char	*sealed;		/* forward/append: the reply */
	size_t		 sealed_len;
};

/*
 * Claim up to max due reply mails (state queued -> sending, attempts + 1,
 * a Message-ID made at the first claim and kept); urgent first.
 */
int	 store_reply_mails_claim(struct store *, int64_t now, size_t max,
	    struct store_reply_mail **, size_t *n, const char **error_r);
void	 store_reply_mails_free(struct store_reply_mail **, size_t n);
/* state: "sent", "queued" (retry at next_attempt) or "failed". */
int	 store_reply_mail_done(struct store *, int64_t id, const char *state,
	    int64_t next_attempt, const char *error, const char **error_r);
/* At start: every "sending" reply mail back to "queued". */
int	 store_reply_mails_recover(struct store *, int64_t *n,
	    const char **error_r);

struct store_reply_stats {
	int64_t		 filed, quarantined, rejected;
	int64_t		 mails_queued, mails_failed;
	int64_t		 oldest_quarantined;	/* received, 0: none */
};
int	 store_reply_stats(struct store *, struct store_reply_stats *,
	    const char **error_r);

#endif
