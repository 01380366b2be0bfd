/*
 * queue.c - the delivery scheduler: claims due deliveries, hands them to
 * relay workers, commits their outcome with the failsafe's side effects,
 * sends alerts, reply mails and webhook callbacks, and applies bounces.
 * See queue.h for the shape.
 *
 * Locking: one mutex (q->mu) guards every list and counter below; three
 * condition variables wake the scheduler, the relay workers and the
 * callback worker.  Jobs and results are singly linked lists; a job is
 * owned by whichever list holds it, or by the thread that took it.
 *
 * Content in clear exists only inside a relay worker, between decrypting
 * the sealed letter (or reply) and sending the built message: the
 * plaintext, the document and the message are wiped when freed.
 *
 * Reply mails (replymail.h) go through the same workers and sessions as
 * alerts.  Envelope senders: an ack or contact is an automatic reply to
 * the patient, sent with the null sender <> (RFC 3834 section 3.3, so
 * that nothing answers it back); a forward, red flag or quarantine alert
 * goes out with the practice's failsafe address as its sender (<> when
 * there is none), so that a late bounce of a mail the practice depends
 * on reaches a person instead of vanishing.  Their bounce address is not
 * a bounce+ token: a bounce must never be taken for the patient letter's.
 */
#include "build.h"

#include <sys/types.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/event.h>

#include "age.h"
#include "dsn.h"
#include "hash.h"
#include "keyring.h"
#include "letter.h"
#include "log.h"
#include "mime.h"
#include "queue.h"
#include "replymail.h"
#include "sandbox.h"
#include "store.h"
#include "token.h"
#include "util.h"

#define QUEUE_TICK_MS		1000	/* scheduler wakes at least this often */
#define QUEUE_WARN_EVERY	5	/* seconds between delay-warning scans */
#define QUEUE_CLAIM_MAX		32	/* deliveries per claim */
#define QUEUE_BYTES_MAX		(64 * 1024 * 1024) /* sealed bytes in flight:
						   past this, claim nothing */
#define QUEUE_ALERT_MAX		16
#define QUEUE_CALLBACK_MAX	16
#define QUEUE_CALLBACK_TRIES	10	/* then the callback is "failed" */
#define QUEUE_ALERT_TRIES	20
#define QUEUE_RMAIL_MAX		8	/* reply mails per claim (a forward
					   holds a whole sealed reply) */
#define QUEUE_AUTOREPLY_TRIES	20	/* then an ack/contact is "failed";
					   forwards and alerts about replies
					   keep trying (retry_max apart) */
#define QUEUE_CONFIG_ALERT_GAP	3600	/* one TLS/AUTH alert an hour */
#define QUEUE_BOUNCE_GRACE	(30 * 86400)	/* bounce token outlives the
						   delivery by this */

/* The reason of a delivery waiting for a smarthost to be configured. */
#define QUEUE_NO_RELAY		"waiting: no smarthost configured ([relay] host)"
#define QUEUE_NO_IMAP		"waiting: no IMAP server configured for " \
				"append ([imap] host)"

#define QUEUE_SAFETY_TEXT						\
	"This mailbox is not for emergencies. If you need urgent medical "	\
	"help, call 999, or NHS 111 for advice."

enum qjob_kind {
	QJ_LETTER,
	QJ_ALERT,
	QJ_CALLBACK,
	QJ_RMAIL
};

/* A unit of work for a worker, and its result. */
struct qjob {
	enum qjob_kind		 kind;
	struct store_claim	 claim;		/* QJ_LETTER */
	struct store_alert	 alert;		/* QJ_ALERT */
	struct store_callback	 cb;		/* QJ_CALLBACK */
	struct store_reply_mail	 rmail;		/* QJ_RMAIL */

	/* routing copied from the records when the job was made */
	char			*practice_name;
	char			*practice_domain;
	char			*reply_domain;
	char			*practice_phone;
	int			 notify_only;	/* content_policy "notify" */
	unsigned char		 archive_wrapped[STORE_WRAPPED_MAX];
	size_t			 archive_wrapped_len;
	char			*patient_name;
	char			*to;		/* the address used */
	/* QJ_RMAIL: what replymail_build() needs beyond the row */
	char			*postal_address;
	char			*envfrom;	/* envelope sender, "" = <> */
	char			*forwarded_to;
	int			 quarantined;
	int64_t			 received;
	int			 shared;

	/* result */
	enum relay_result	 rr;
	int			 code;
	char			 status[16];
	char			 text[200];
	char			 err[256];
	int			 http_status;
	int			 requeue;	/* never attempted: back to
						   "queued" as it was */
	int64_t			 reply_lifetime; /* settings when made */
	struct webhook_params	 webhook;

	struct qjob		*next;
};

/*
 * A relay worker's practice archive identities, unwrapped once and kept
 * in libsodium's guarded memory for the worker's life: unwrapping for every
 * letter cost two guarded allocations, whose page-protection changes were
 * a third of the relay's CPU time.  An entry is used only while the
 * practice's wrapped key is byte for byte the one it was made from.
 */
#define QUEUE_KEYS		8

struct queue_key {
	int64_t			 practice_id;	/* 0: empty */
	unsigned char		 wrapped[STORE_WRAPPED_MAX];
	size_t			 wrapped_len;
	struct keyring_secret	 sec;
};

struct queue_keys {
	struct queue_key	 k[QUEUE_KEYS];
	unsigned		 next;		/* slot to replace */
};

struct queue {
	struct event_base	*base;
	struct queue_params	 p;		/* strings owned below */
	char			*s_database, *s_host, *s_tls_name, *s_ca;
	char			*s_user, *s_pass, *s_helo, *s_program;
	char			*s_cb_ca;
	char			*s_fwd, *s_imap_host, *s_imap_tls_name;
	char			*s_imap_ca, *s_imap_user, *s_imap_pass;
	char			*s_imap_folder;
	struct store		*store;		/* scheduler thread's */
	struct token_keys	 tkeys;

	pthread_mutex_t		 mu;
	pthread_cond_t		 cv_sched, cv_relay, cv_cb;
	int			 stopping;
	int			 kicked;
	struct qjob		*relay_jobs, **relay_tail;
	struct qjob		*cb_jobs, **cb_tail;
	struct qjob		*results, **results_tail;
	struct queue_bounce	*bounces_in, *bounces_done;
	size_t			 in_flight;	/* letters claimed, unsettled */
	size_t			 in_flight_bytes; /* their sealed sizes, and
						   the reply mails' */
	size_t			 alerts_in_flight, cbs_in_flight;
	size_t			 rmails_in_flight;
	struct relay_conn	**conns;	/* per worker, for cancel */
	int			 workers_alive;

	pthread_t		 sched;
	pthread_t		*workers;
	pthread_t		 cbworker;
	int			 sched_done;
	struct event		*bounce_ev;
	struct sandbox		*sandbox;	/* scheduler's, for bounces */

	/* SIGHUP: new live settings, taken by the scheduler under mu */
	struct queue_params	 live;
	int			 live_dirty;

	int64_t			 last_config_alert;
	int64_t			 last_warn_scan;
	struct queue_stats	 st;
};

static void	*queue_sched_main(void *);
static void	*queue_relay_main(void *);
static void	*queue_cb_main(void *);
static void	 queue_bounce_cb(evutil_socket_t, short, void *);
static void	 qjob_free(struct qjob *);
static void	 queue_push(struct qjob **, struct qjob ***, struct qjob *);
static void	 queue_push_urgent(struct queue *, struct qjob *);
static struct qjob *queue_pop(struct qjob **, struct qjob ***);
static int	 qjob_urgent(const struct qjob *);
static int	 queue_archive_open(struct queue *, struct queue_keys *,
		    int64_t, const unsigned char *, size_t,
		    const unsigned char *, size_t, unsigned char **, size_t *,
		    char *, size_t);
static int	 queue_build_rmail(struct queue *, struct queue_keys *,
		    struct qjob *, struct mime_msg *, char *, size_t);
static void	 queue_send(struct queue *, struct relay_conn **,
		    struct qjob *, const char *, struct mime_msg *);
static void	 queue_rmail_one(struct queue *, struct queue_keys *,
		    struct relay_conn **, struct qjob *);
static void	 queue_settle_rmail(struct queue *, struct qjob *, int64_t);
static int	 queue_prepare_rmail(struct queue *, struct qjob *,
		    int64_t);

/* --- backoff -------------------------------------------------------------- */

int64_t
queue_backoff(int attempts, int64_t first, int64_t max)
{
	int64_t	 d = first;
	int	 i;

	if (first < 1)
		first = d = 1;
	for (i = 1; i < attempts && d < max; i++)
		d *= 2;
	if (d > max)
		d = max;
	/* Jitter: up to a quarter earlier, so retries of a burst spread. */
	if (d >= 4)
		d -= (int64_t)hash_random_uniform((uint32_t)(d / 4 + 1));
	return d < 1 ? 1 : d;
}

/* --- lists ---------------------------------------------------------------- */

static void
queue_push(struct qjob **head, struct qjob ***tail, struct qjob *j)
{
	j->next = NULL;
	**tail = j;
	*tail = &j->next;
	(void)head;
}

static struct qjob *
queue_pop(struct qjob **head, struct qjob ***tail)
{
	struct qjob	*j = *head;

	if (j == NULL)
		return NULL;
	*head = j->next;
	if (*head == NULL)
		*tail = head;
	j->next = NULL;
	return j;
}

/* An urgent letter, or a reply mail about an urgent reply? */
static int
qjob_urgent(const struct qjob *j)
{
	return (j->kind == QJ_LETTER && j->claim.priority > 0) ||
	    (j->kind == QJ_RMAIL && j->rmail.urgent);
}

/* Before the routine work waiting, after the urgent work. */
static void
queue_push_urgent(struct queue *q, struct qjob *j)
{
	struct qjob	**pp = &q->relay_jobs;

	while (*pp != NULL && qjob_urgent(*pp))
		pp = &(*pp)->next;
	j->next = *pp;
	*pp = j;
	if (j->next == NULL)
		q->relay_tail = &j->next;
}

static void
qjob_free(struct qjob *j)
{
	if (j == NULL)
		return;
	if (j->claim.sealed != NULL) {
		hash_wipe(j->claim.sealed, j->claim.sealed_len);
		free(j->claim.sealed);
	}
	free(j->claim.address);
	free(j->claim.message_id);
	free(j->alert.to);
	free(j->alert.message_id);
	free(j->cb.url);
	if (j->cb.token != NULL) {
		hash_wipe(j->cb.token, j->cb.token_len);
		free(j->cb.token);
	}
	free(j->cb.payload);
	free(j->rmail.to);
	free(j->rmail.message_id);
	free(j->rmail.in_reply_to);
	if (j->rmail.sealed != NULL) {
		hash_wipe(j->rmail.sealed, j->rmail.sealed_len);
		free(j->rmail.sealed);
	}
	free(j->postal_address);
	free(j->envfrom);
	free(j->forwarded_to);
	free(j->practice_name);
	free(j->practice_domain);
	free(j->reply_domain);
	free(j->practice_phone);
	free(j->patient_name);
	free(j->to);
	hash_wipe(j->archive_wrapped, sizeof(j->archive_wrapped));
	free(j);
}

/* --- building messages (relay workers) ----------------------------------- */

/* Append the safety-net text to the letter's bodies (a new allocation). */
static void
queue_add_safety(struct letter_doc *doc)
{
	char	*s;

	if (doc->text != NULL) {
		xasprintf(&s, "%s\n\n-- \n%s\n", doc->text, QUEUE_SAFETY_TEXT);
		hash_wipe(doc->text, strlen(doc->text));
		free(doc->text);
		doc->text = s;
	} else {
		doc->text = xstrdup(QUEUE_SAFETY_TEXT "\n");
	}
	if (doc->html != NULL) {
		xasprintf(&s, "%s\n<hr><p>%s</p>\n", doc->html,
		    QUEUE_SAFETY_TEXT);
		hash_wipe(doc->html, strlen(doc->html));
		free(doc->html);
		doc->html = s;
	}
}

/*
 * Decrypt a sealed blob with the practice archive identity, unwrapped
 * once per worker and kept (struct queue_keys).  0 and the plaintext
 * (age_free_plaintext), or -1 and a reason naming `what'.
 */
static int
queue_archive_open(struct queue *q, struct queue_keys *wk, int64_t practice_id,
    const unsigned char *wrapped, size_t wrapped_len,
    const unsigned char *sealed, size_t sealed_len, unsigned char **pt,
    size_t *ptlen, char *err, size_t errsz)
{
	struct queue_key	*key = NULL;
	struct age_identity	 id;
	const char		*error = NULL;
	char			 ad[64];
	enum age_status		 as;
	size_t			 i;

	for (i = 0; i < QUEUE_KEYS; i++) {
		if (wk->k[i].practice_id == practice_id &&
		    wk->k[i].wrapped_len == wrapped_len &&
		    memcmp(wk->k[i].wrapped, wrapped, wrapped_len) == 0) {
			key = &wk->k[i];
			break;
		}
	}
	if (key == NULL) {
		key = &wk->k[wk->next];
		wk->next = (wk->next + 1) % QUEUE_KEYS;
		keyring_secret_free(&key->sec);
		key->practice_id = 0;
		snprintf(ad, sizeof(ad), "practice:%lld",
		    (long long)practice_id);
		if (keyring_identity_unwrap(q->p.keyring, ad, wrapped,
		    wrapped_len, &key->sec, &error) != 0) {
			snprintf(err, errsz, "archive identity: %s", error);
			return -1;
		}
		key->practice_id = practice_id;
		memcpy(key->wrapped, wrapped, wrapped_len);
		key->wrapped_len = wrapped_len;
	}
	memset(&id, 0, sizeof(id));
	id.type = AGE_IDENTITY_X25519;
	id.x25519_sk = key->sec.key;
	as = age_decrypt(&id, 1, sealed, sealed_len, 0, pt, ptlen, &error);
	if (as != AGE_OK) {
		snprintf(err, errsz, "%s", age_status_name(as));
		return -1;
	}
	return 0;
}

/* Decrypt the sealed letter with the practice archive identity. */
static int
queue_open_letter(struct queue *q, struct queue_keys *wk, struct qjob *j,
    struct letter_doc **doc, char *err, size_t errsz)
{
	struct letter_error	 lerr;
	unsigned char		*pt = NULL;
	size_t			 ptlen = 0;
	char			 why[128];
	int			 rc = -1;

	if (queue_archive_open(q, wk, j->claim.practice_id,
	    j->archive_wrapped, j->archive_wrapped_len, j->claim.sealed,
	    j->claim.sealed_len, &pt, &ptlen, why, sizeof(why)) != 0) {
		if (strncmp(why, "archive identity", 16) == 0)
			snprintf(err, errsz, "%s", why);
		else
			snprintf(err, errsz, "sealed letter: %s", why);
		return -1;
	}
	if (letter_doc_parse((const char *)pt, ptlen, doc, &lerr) != 0)
		snprintf(err, errsz, "sealed letter: %s", lerr.code);
	else
		rc = 0;
	age_free_plaintext(&pt, ptlen);
	return rc;
}

static int
queue_build_letter(struct queue *q, struct queue_keys *wk, struct qjob *j,
    struct mime_msg *msg, char *envfrom, size_t envfromsz, char *err,
    size_t errsz)
{
	struct letter_doc	*doc = NULL;
	struct mime_out		 o;
	struct mime_header	 hdr[1];
	const char		*error = NULL;
	char			 rtok[TOKEN_BUFSZ], btok[TOKEN_BUFSZ];
	char			 local[TOKEN_LOCAL_BUFSZ], *from = NULL;
	char			*notice = NULL, *subject = NULL;
	int64_t			 rexp, bexp;
	int			 rc = -1;

	rexp = j->claim.created + j->reply_lifetime;
	bexp = j->claim.expires + QUEUE_BOUNCE_GRACE;
	if (rexp > TOKEN_EXPIRES_MAX)
		rexp = TOKEN_EXPIRES_MAX;
	if (bexp > TOKEN_EXPIRES_MAX)
		bexp = TOKEN_EXPIRES_MAX;
	if (token_make(&q->tkeys, TOKEN_REPLY, j->claim.letter_id,
	    j->claim.patient_id, rexp, rtok, sizeof(rtok)) != 0 ||
	    token_make(&q->tkeys, TOKEN_BOUNCE, j->claim.letter_id,
	    j->claim.delivery_id, bexp, btok, sizeof(btok)) != 0 ||
	    token_local_part(TOKEN_BOUNCE, btok, local, sizeof(local)) != 0) {
		snprintf(err, errsz, "cannot make tokens");
		return -1;
	}
	snprintf(envfrom, envfromsz, "%s@%s", local, j->reply_domain);

	memset(&o, 0, sizeof(o));
	if (j->notify_only) {
		xasprintf(&subject, "A new letter from %s", j->practice_name);
		xasprintf(&notice,
		    "Dear %s,\n\n"
		    "%s has a new letter for you. For your privacy it is not "
		    "included in this email; it will be posted to you.\n\n"
		    "If you would rather receive it by email, reply to this "
		    "message and say so.\n\n"
		    "Our reference: L%lld\n\n-- \n%s\n",
		    j->patient_name, j->practice_name,
		    (long long)j->claim.letter_id, QUEUE_SAFETY_TEXT);
		o.subject = subject;
		o.notice = notice;
	} else {
		if (queue_open_letter(q, wk, j, &doc, err, errsz) != 0)
			goto out;
		queue_add_safety(doc);
		if (doc->subject == NULL || *doc->subject == '\0') {
			xasprintf(&subject, "A letter from %s",
			    j->practice_name);
			o.subject = subject;
		}
		o.doc = doc;
	}
	xasprintf(&from, "letters@%s", j->practice_domain);
	o.from_name = j->practice_name;
	o.from_addr = from;
	o.to_name = j->patient_name;
	o.to_addr = j->to;
	o.reply_token = rtok;
	o.reply_domain = j->reply_domain;
	o.date = time(NULL);
	o.message_id = j->claim.message_id;
	hdr[0].name = "Auto-Submitted";
	hdr[0].value = "auto-generated";
	o.headers = hdr;
	o.nheaders = 1;
	if (mime_build(&o, msg, &error) != 0) {
		snprintf(err, errsz, "build: %s", error);
		goto out;
	}
	rc = 0;
out:
	letter_doc_free(&doc);
	if (notice != NULL) {
		hash_wipe(notice, strlen(notice));
		free(notice);
	}
	free(subject);
	free(from);
	hash_wipe(rtok, sizeof(rtok));
	return rc;
}

/* An alert to the practice: ids, states and reasons, never content. */
static int
queue_build_alert(struct qjob *j, struct mime_msg *msg, char *err,
    size_t errsz)
{
	struct mime_out		 o;
	struct mime_header	 hdr[1];
	const struct store_alert *a = &j->alert;
	const char		*error = NULL, *what, *next;
	char			*subject = NULL, *text = NULL, *from = NULL;
	int			 rc;

	if (strcmp(a->kind, "delayed") == 0) {
		what = "has not been delivered yet";
		next = "sealpost keeps trying until the letter's lifetime "
		    "ends; then it goes to the paper queue.";
	} else if (strcmp(a->kind, "held") == 0) {
		what = "is held by the misrouting guard";
		next = "Check the patient's address, then release it with\n"
		    "  sealpostctl letter release ID\n"
		    "or cancel it with\n  sealpostctl letter cancel ID";
	} else if (strcmp(a->kind, "tls") == 0 ||
	    strcmp(a->kind, "relay") == 0) {
		what = "is waiting: the smarthost cannot be used";
		next = "Letters stay queued and are retried. Check the "
		    "smarthost (certificate, credentials) now.";
	} else {
		what = "could not be delivered by email";
		next = "The letter is in the paper queue: print it with\n"
		    "  sealpostctl paper print ID";
	}
	xasprintf(&subject, "[sealpost] Letter L%lld %s (%s)",
	    (long long)a->letter_id, what, a->kind);
	xasprintf(&text,
	    "Letter L%lld for patient P%lld %s.\n\n"
	    "Letter:    L%lld\n"
	    "Patient:   P%lld\n"
	    "Delivery:  D%lld\n"
	    "Problem:   %s\n"
	    "Reason:    %s\n\n"
	    "%s\n\n(ID is %lld.)\n",
	    (long long)a->letter_id, (long long)a->patient_id, what,
	    (long long)a->letter_id, (long long)a->patient_id,
	    (long long)a->delivery_id, a->kind, a->reason, next,
	    (long long)a->letter_id);
	xasprintf(&from, "letters@%s", j->practice_domain);
	memset(&o, 0, sizeof(o));
	o.from_name = "sealpost";
	o.from_addr = from;
	o.to_addr = a->to;
	o.subject = subject;
	o.date = time(NULL);
	o.message_id = a->message_id;
	o.msgid_domain = j->practice_domain;
	o.notice = text;
	hdr[0].name = "Auto-Submitted";
	hdr[0].value = "auto-generated";
	o.headers = hdr;
	o.nheaders = 1;
	rc = mime_build(&o, msg, &error);
	if (rc != 0)
		snprintf(err, errsz, "build: %s", error);
	free(subject);
	free(text);
	free(from);
	return rc == 0 ? 0 : -1;
}

/*
 * A mail a reply caused (replymail.h).  A forward or append opens the
 * sealed reply with the practice archive identity; the other kinds never
 * touch it.
 */
static int
queue_build_rmail(struct queue *q, struct queue_keys *wk, struct qjob *j,
    struct mime_msg *msg, char *err, size_t errsz)
{
	struct store_reply_mail	*m = &j->rmail;
	struct reply_doc	*doc = NULL;
	struct replymail_in	 in;
	struct letter_error	 lerr;
	const char		*error = NULL;
	unsigned char		*pt = NULL;
	size_t			 ptlen = 0;
	char			 why[128];
	int			 rc = -1;

	if (strcmp(m->kind, STORE_RM_FORWARD) == 0 ||
	    strcmp(m->kind, STORE_RM_APPEND) == 0) {
		if (m->sealed == NULL || queue_archive_open(q, wk,
		    m->practice_id, j->archive_wrapped,
		    j->archive_wrapped_len, m->sealed, m->sealed_len, &pt,
		    &ptlen, why, sizeof(why)) != 0) {
			snprintf(err, errsz, "sealed reply: %s",
			    m->sealed == NULL ? "missing" : why);
			return -1;
		}
		if (reply_doc_parse((const char *)pt, ptlen, &doc,
		    &lerr) != 0) {
			snprintf(err, errsz, "reply document: %s", lerr.code);
			goto out;
		}
	}
	memset(&in, 0, sizeof(in));
	in.mail = m;
	in.practice_name = j->practice_name;
	in.practice_domain = j->practice_domain;
	in.phone = j->practice_phone;
	in.postal_address = j->postal_address;
	in.received = j->received;
	in.shared = j->shared;
	in.forwarded_to = j->forwarded_to;
	in.quarantined = j->quarantined;
	in.doc = doc;
	in.date = time(NULL);
	if (replymail_build(&in, msg, &error) != 0) {
		snprintf(err, errsz, "build: %s", error);
		goto out;
	}
	rc = 0;
out:
	reply_doc_free(&doc);
	if (pt != NULL)
		age_free_plaintext(&pt, ptlen);
	return rc;
}

/* --- relay workers -------------------------------------------------------- */

struct worker_arg {
	struct queue	*q;
	int		 n;
};

/*
 * Send a built message to j->to over the worker's session, the result
 * into j as relay_send() puts it; the message is cleared.
 */
static void
queue_send(struct queue *q, struct relay_conn **conn, struct qjob *j,
    const char *from, struct mime_msg *msg)
{
	struct relay_rcpt	 rc;
	struct relay_msg	 m;

	memset(&rc, 0, sizeof(rc));
	rc.addr = j->to;
	m.from = from;
	m.rcpts = &rc;
	m.nrcpts = 1;
	m.data = msg->data;
	m.len = msg->len;
	j->rr = relay_send(conn, &q->p.relay, &m, j->err, sizeof(j->err));
	j->code = rc.code;
	strlcpy_sp(j->status, rc.status, sizeof(j->status));
	strlcpy_sp(j->text, rc.text, sizeof(j->text));
	mime_msg_clear(msg);
}

/*
 * Send one reply mail: SMTP over the worker's session, or IMAP APPEND
 * for kind "append".  The result is put the way relay_send() puts it.
 */
static void
queue_rmail_one(struct queue *q, struct queue_keys *wk,
    struct relay_conn **conn, struct qjob *j)
{
	struct mime_msg		 msg;
	int			 append, temporary = 0;

	memset(&msg, 0, sizeof(msg));
	append = strcmp(j->rmail.kind, STORE_RM_APPEND) == 0;
	if (append ? q->p.imap_server.host == NULL ||
	    q->p.imap_append_folder == NULL : !q->p.relay_enabled) {
		j->rr = RELAY_TEMPFAIL;
		snprintf(j->err, sizeof(j->err), "%s",
		    append ? QUEUE_NO_IMAP : QUEUE_NO_RELAY);
		return;
	}
	if (queue_build_rmail(q, wk, j, &msg, j->err, sizeof(j->err)) != 0) {
		j->rr = RELAY_INPUT;
		return;
	}
	if (append) {
		/* No envelope: the message goes into the practice's folder. */
		if (fetch_append(&q->p.imap_server, q->p.imap_append_folder,
		    msg.data, msg.len, &temporary, j->err,
		    sizeof(j->err)) == 0) {
			j->rr = RELAY_OK;
			j->code = 250;
			snprintf(j->text, sizeof(j->text), "appended to %s",
			    q->p.imap_append_folder);
		} else
			j->rr = temporary ? RELAY_TEMPFAIL : RELAY_PERMFAIL;
		mime_msg_clear(&msg);
		return;
	}
	queue_send(q, conn, j, j->envfrom, &msg);
}

static void
queue_relay_one(struct queue *q, struct queue_keys *wk,
    struct relay_conn **conn, struct qjob *j)
{
	struct mime_msg		 msg;
	char			 envfrom[TOKEN_LOCAL_BUFSZ + 256];
	int			 built;

	if (j->kind == QJ_RMAIL) {
		queue_rmail_one(q, wk, conn, j);
		return;
	}
	memset(&msg, 0, sizeof(msg));
	envfrom[0] = '\0';
	if (!q->p.relay_enabled) {
		/* An alert with nowhere to go: it waits like the letters. */
		j->rr = RELAY_TEMPFAIL;
		snprintf(j->err, sizeof(j->err), "%s", QUEUE_NO_RELAY);
		return;
	}
	if (j->kind == QJ_LETTER)
		built = queue_build_letter(q, wk, j, &msg, envfrom,
		    sizeof(envfrom), j->err, sizeof(j->err));
	else
		built = queue_build_alert(j, &msg, j->err, sizeof(j->err));
	if (built != 0) {
		j->rr = RELAY_INPUT;
		return;
	}
	queue_send(q, conn, j, envfrom, &msg);
}

static void *
queue_relay_main(void *arg)
{
	struct worker_arg	*wa = arg;
	struct queue		*q = wa->q;
	struct relay_conn	*conn = NULL;
	struct queue_keys	 wk;
	struct qjob		*j;
	struct timespec		 ts;
	size_t			 i;
	int			 n = wa->n;

	free(wa);
	memset(&wk, 0, sizeof(wk));
	pthread_mutex_lock(&q->mu);
	for (;;) {
		while (q->relay_jobs == NULL && !q->stopping) {
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += 1;
			pthread_cond_timedwait(&q->cv_relay, &q->mu, &ts);
			if (q->relay_jobs == NULL && conn != NULL) {
				/* Idle: maybe close the session. */
				q->conns[n] = NULL;
				pthread_mutex_unlock(&q->mu);
				relay_close_idle(&conn, &q->p.relay);
				pthread_mutex_lock(&q->mu);
				q->conns[n] = conn;
			}
		}
		if (q->stopping)
			break;
		j = queue_pop(&q->relay_jobs, &q->relay_tail);
		q->conns[n] = conn;
		pthread_mutex_unlock(&q->mu);

		queue_relay_one(q, &wk, &conn, j);

		pthread_mutex_lock(&q->mu);
		q->conns[n] = conn;
		queue_push(&q->results, &q->results_tail, j);
		pthread_cond_signal(&q->cv_sched);
	}
	q->conns[n] = NULL;
	q->workers_alive--;
	pthread_cond_broadcast(&q->cv_sched);
	pthread_mutex_unlock(&q->mu);
	relay_close(&conn);
	for (i = 0; i < QUEUE_KEYS; i++)
		keyring_secret_free(&wk.k[i].sec);
	hash_wipe(&wk, sizeof(wk));
	return NULL;
}

/* --- callback worker ------------------------------------------------------ */

static void
queue_cb_one(struct queue *q, struct qjob *j)
{
	struct keyring_secret	 sec = { NULL };
	const char		*error = NULL;
	char			 ad[64], *bearer;

	snprintf(ad, sizeof(ad), "callback:%lld", (long long)j->cb.client_id);
	if (keyring_identity_unwrap(q->p.keyring, ad, j->cb.token,
	    j->cb.token_len, &sec, &error) != 0) {
		j->http_status = -1;
		snprintf(j->err, sizeof(j->err), "callback token: %s", error);
		return;
	}
	bearer = hash_b64_encode(sec.key, KEYRING_KEY_LEN);
	keyring_secret_free(&sec);
	j->http_status = webhook_post(&j->webhook, j->cb.url, bearer,
	    j->cb.payload, strlen(j->cb.payload), j->err, sizeof(j->err));
	hash_wipe(bearer, strlen(bearer));
	free(bearer);
}

static void *
queue_cb_main(void *arg)
{
	struct queue	*q = arg;
	struct qjob	*j;

	pthread_mutex_lock(&q->mu);
	for (;;) {
		while (q->cb_jobs == NULL && !q->stopping)
			pthread_cond_wait(&q->cv_cb, &q->mu);
		if (q->stopping)
			break;
		j = queue_pop(&q->cb_jobs, &q->cb_tail);
		pthread_mutex_unlock(&q->mu);
		queue_cb_one(q, j);
		pthread_mutex_lock(&q->mu);
		queue_push(&q->results, &q->results_tail, j);
		pthread_cond_signal(&q->cv_sched);
	}
	q->workers_alive--;
	pthread_cond_broadcast(&q->cv_sched);
	pthread_mutex_unlock(&q->mu);
	return NULL;
}

/* --- the scheduler -------------------------------------------------------- */

/* A transition and the strings it points at. */
struct qtx {
	struct store_transition	 t;
	char			 error[256];
	char			 paper[200];
	char			*address;
};

struct qbatch {
	struct qtx	*tx;
	size_t		 n, cap;
};

static struct qtx *
qbatch_add(struct qbatch *b, int64_t delivery_id, const char *from,
    const char *to)
{
	struct qtx	*x;

	if (b->n == b->cap) {
		b->cap = b->cap ? b->cap * 2 : 32;
		b->tx = xreallocarray(b->tx, b->cap, sizeof(*b->tx));
	}
	x = &b->tx[b->n++];
	memset(x, 0, sizeof(*x));
	x->t.delivery_id = delivery_id;
	x->t.from = from;
	x->t.to = to;
	return x;
}

static void
qbatch_reset(struct qbatch *b)
{
	size_t	 i;

	for (i = 0; i < b->n; i++)
		free(b->tx[i].address);
	b->n = 0;
}

/* Finish the pointers (the array may have moved) and commit. */
static int
qbatch_commit(struct queue *q, struct qbatch *b)
{
	struct store_transition	*t;
	const char		*error = NULL;
	size_t			 i;
	int			 r;

	if (b->n == 0)
		return 0;
	t = xcalloc(b->n, sizeof(*t));
	for (i = 0; i < b->n; i++) {
		t[i] = b->tx[i].t;
		t[i].error = b->tx[i].error[0] ? b->tx[i].error : NULL;
		t[i].paper_reason = b->tx[i].paper[0] ? b->tx[i].paper : NULL;
		t[i].address = b->tx[i].address;
	}
	r = store_deliveries_update(q->store, t, b->n, &error);
	for (i = 0; i < b->n; i++)
		b->tx[i].t.applied = t[i].applied;
	free(t);
	if (r != STORE_OK) {
		log_warnx("queue: cannot commit %zu delivery state changes: %s",
		    b->n, error);
		return -1;
	}
	pthread_mutex_lock(&q->mu);
	q->st.transactions++;
	pthread_mutex_unlock(&q->mu);
	qbatch_reset(b);
	return 0;
}

static void
qtx_fail(struct qtx *x, const char *to, const char *kind, const char *why)
{
	size_t	 len;

	x->t.to = to;
	x->t.effects = STORE_TX_PAPER | STORE_TX_ALERT | STORE_TX_CALLBACK;
	x->t.alert_kind = kind;
	strlcpy_sp(x->error, why, sizeof(x->error));
	/* Truncation is fine: the full reason is in last_error. */
	len = strlcpy_sp(x->paper, kind, sizeof(x->paper));
	if (len + 2 < sizeof(x->paper)) {
		memcpy(x->paper + len, ": ", 3);
		strlcpy_sp(x->paper + len + 2, why, sizeof(x->paper) - len - 2);
	}
}

/* The deferral of a delivery, or its expiry when the lifetime is over. */
static void
qtx_defer(struct queue *q, struct qtx *x, const struct store_claim *c,
    int64_t now, const char *why)
{
	int64_t	 next;

	next = now + queue_backoff(c->attempts, q->p.retry_first,
	    q->p.retry_max);
	if (next > c->expires)
		next = c->expires;	/* claimed again at expiry: expired */
	x->t.to = STORE_DS_DEFERRED;
	x->t.next_attempt = next;
	x->t.effects = STORE_TX_CALLBACK;
	strlcpy_sp(x->error, why, sizeof(x->error));
}

/* One alert about the smarthost itself, at most once an hour. */
static unsigned
queue_config_alert(struct queue *q, int64_t now)
{
	if (now - q->last_config_alert < QUEUE_CONFIG_ALERT_GAP)
		return 0;
	q->last_config_alert = now;
	return STORE_TX_ALERT;
}

/* Turn a relay result into a transition (scheduler thread). */
static void
queue_settle_letter(struct queue *q, struct qbatch *b, struct qjob *j,
    int64_t now)
{
	struct store_claim	*c = &j->claim;
	struct qtx		*x;
	char			 why[256];

	x = qbatch_add(b, c->delivery_id, STORE_DS_SENDING, NULL);
	if (j->requeue) {
		/* Never attempted: back as it was, due at once. */
		x->t.to = c->attempts > 1 ? STORE_DS_DEFERRED :
		    STORE_DS_QUEUED;
		x->t.next_attempt = now;
		x->t.undo_attempt = 1;
		strlcpy_sp(x->error, j->err, sizeof(x->error));
		return;
	}
	x->t.smtp_code = j->code;
	if (j->code > 0 && j->status[0] != '\0' &&
	    strncmp(j->text, j->status, strlen(j->status)) != 0)
		snprintf(why, sizeof(why), "%d %s %s", j->code, j->status,
		    j->text);
	else if (j->code > 0)
		snprintf(why, sizeof(why), "%d %s", j->code, j->text);
	else
		strlcpy_sp(why, j->err, sizeof(why));

	switch (j->rr) {
	case RELAY_OK:
	case RELAY_PERMFAIL:
		if (j->code >= 200 && j->code < 300) {
			x->t.to = STORE_DS_SENT;
			x->t.effects = STORE_TX_CALLBACK;
			snprintf(x->error, sizeof(x->error), "%s", why);
			if (j->notify_only) {
				x->t.effects |= STORE_TX_PAPER;
				snprintf(x->paper, sizeof(x->paper),
				    "content policy notify: the patient was "
				    "told, the letter goes by post");
			}
			q->st.sent++;
			log_info("delivery=%lld letter=%lld sent: %s",
			    (long long)c->delivery_id,
			    (long long)c->letter_id, why);
		} else if (j->code >= 400 && j->code < 500) {
			qtx_defer(q, x, c, now, why);
			q->st.deferred++;
			log_info("delivery=%lld deferred: %s",
			    (long long)c->delivery_id, why);
		} else {
			qtx_fail(x, STORE_DS_FAILED, "failed", why);
			q->st.failed++;
			log_warnx("delivery=%lld letter=%lld failed, to paper: "
			    "%s", (long long)c->delivery_id,
			    (long long)c->letter_id, why);
		}
		break;
	case RELAY_INPUT:
		qtx_fail(x, STORE_DS_FAILED, "failed", why);
		q->st.failed++;
		log_warnx("delivery=%lld letter=%lld failed, to paper: %s",
		    (long long)c->delivery_id, (long long)c->letter_id, why);
		break;
	case RELAY_TLSFAIL:
	case RELAY_AUTHFAIL:
	case RELAY_CONFIG:
		qtx_defer(q, x, c, now, why);
		x->t.effects |= queue_config_alert(q, now);
		x->t.alert_kind = j->rr == RELAY_TLSFAIL ? "tls" : "relay";
		q->st.deferred++;
		log_warnx("delivery=%lld deferred, smarthost unusable (%s): "
		    "%s", (long long)c->delivery_id, relay_strresult(j->rr),
		    why);
		break;
	case RELAY_TEMPFAIL:
	default:
		qtx_defer(q, x, c, now, why);
		q->st.deferred++;
		log_info("delivery=%lld deferred: %s",
		    (long long)c->delivery_id, why);
		break;
	}
}

static void
queue_settle_alert(struct queue *q, struct qjob *j, int64_t now)
{
	const char	*error = NULL, *state;
	int64_t		 next = 0;
	char		 why[256];

	if (j->code >= 200 && j->code < 300 && (j->rr == RELAY_OK)) {
		state = "sent";
		q->st.alerts_sent++;
		log_info("alert=%lld letter=%lld (%s) sent to the practice",
		    (long long)j->alert.id, (long long)j->alert.letter_id,
		    j->alert.kind);
	} else if ((j->code >= 500 || j->rr == RELAY_INPUT) ||
	    j->alert.attempts >= QUEUE_ALERT_TRIES) {
		state = "failed";
		log_warnx("alert=%lld letter=%lld (%s) could not be sent to "
		    "the practice's failsafe address: %s",
		    (long long)j->alert.id, (long long)j->alert.letter_id,
		    j->alert.kind, j->err[0] ? j->err : j->text);
	} else {
		state = "queued";
		next = now + queue_backoff(j->alert.attempts,
		    q->p.retry_first, q->p.retry_max);
	}
	if (j->code > 0)
		snprintf(why, sizeof(why), "%d %s", j->code, j->text);
	else
		strlcpy_sp(why, j->err, sizeof(why));
	if (store_alert_done(q->store, j->alert.id, state, next, why,
	    &error) != STORE_OK)
		log_warnx("queue: alert %lld: %s", (long long)j->alert.id,
		    error);
}

/* The outcome of a reply mail (scheduler thread). */
static void
queue_settle_rmail(struct queue *q, struct qjob *j, int64_t now)
{
	struct store_reply_mail	*m = &j->rmail;
	const char		*error = NULL, *state;
	int64_t			 next = 0;
	char			 why[256];
	int			 autoreply, permanent;

	if (j->code > 0)
		snprintf(why, sizeof(why), "%d %s", j->code, j->text);
	else
		strlcpy_sp(why, j->err, sizeof(why));
	autoreply = strcmp(m->kind, STORE_RM_ACK) == 0 ||
	    strcmp(m->kind, STORE_RM_CONTACT) == 0;
	permanent = !j->requeue && (j->rr == RELAY_INPUT ||
	    j->rr == RELAY_PERMFAIL || j->code >= 500);
	if (!j->requeue && j->rr == RELAY_OK && j->code >= 200 &&
	    j->code < 300) {
		state = "sent";
		q->st.reply_mails_sent++;
		log_info("reply-mail=%lld reply=%lld letter=%lld %s sent: %s",
		    (long long)m->id, (long long)m->reply_id,
		    (long long)m->letter_id, m->kind, why);
	} else if (permanent || (autoreply &&
	    m->attempts >= QUEUE_AUTOREPLY_TRIES)) {
		/*
		 * The store has no alert row for a reply mail: the log is
		 * where a failed forward shows (the reply itself is filed).
		 */
		state = "failed";
		q->st.reply_mails_failed++;
		log_warnx("reply-mail=%lld reply=%lld letter=%lld %s failed "
		    "after %d attempt%s: %s%s", (long long)m->id,
		    (long long)m->reply_id, (long long)m->letter_id, m->kind,
		    m->attempts, m->attempts == 1 ? "" : "s", why,
		    strcmp(m->kind, STORE_RM_FORWARD) == 0 ||
		    strcmp(m->kind, STORE_RM_APPEND) == 0 ?
		    " (the reply is stored but did not reach the clinician)" :
		    "");
	} else {
		state = "queued";
		next = j->requeue ? now : now + queue_backoff(m->attempts,
		    q->p.retry_first, q->p.retry_max);
		q->st.reply_mails_deferred++;
		log_info("reply-mail=%lld reply=%lld %s deferred: %s",
		    (long long)m->id, (long long)m->reply_id, m->kind, why);
	}
	if (store_reply_mail_done(q->store, m->id, state, next, why,
	    &error) != STORE_OK)
		log_warnx("queue: reply mail %lld: %s", (long long)m->id,
		    error);
}

/*
 * Routing for a claimed reply mail, from the records as they are now:
 * 0 when it goes to a worker, -1 when it was settled here.
 */
static int
queue_prepare_rmail(struct queue *q, struct qjob *j, int64_t now)
{
	struct store_reply_mail	*m = &j->rmail;
	struct store_practice	*pr = NULL;
	struct store_clinician	*cl = NULL;
	struct store_reply	 r;
	const char		*error = NULL, *fwd;
	int			 content, autoreply, rc = -1;

	content = strcmp(m->kind, STORE_RM_FORWARD) == 0 ||
	    strcmp(m->kind, STORE_RM_APPEND) == 0;
	autoreply = strcmp(m->kind, STORE_RM_ACK) == 0 ||
	    strcmp(m->kind, STORE_RM_CONTACT) == 0;
	memset(&r, 0, sizeof(r));
	if (store_practice_get(q->store, m->practice_id, &pr, &error) !=
	    STORE_OK || (!autoreply && store_reply_get(q->store, m->reply_id,
	    &r, &error) != STORE_OK)) {
		/* The store is unwell: try again later. */
		j->rr = RELAY_TEMPFAIL;
		snprintf(j->err, sizeof(j->err), "store: %s",
		    error ? error : "record missing");
		goto settle;
	}
	if (content && (pr->archive_wrapped_len == 0 ||
	    pr->archive_wrapped_len > sizeof(j->archive_wrapped))) {
		j->rr = RELAY_INPUT;
		snprintf(j->err, sizeof(j->err), "the practice has no archive "
		    "identity");
		goto settle;
	}
	j->practice_name = xstrdup(pr->name);
	j->practice_domain = xstrdup(pr->domain);
	j->practice_phone = pr->phone ? xstrdup(pr->phone) : NULL;
	j->postal_address = pr->postal_address ?
	    xstrdup(pr->postal_address) : NULL;
	if (content) {
		memcpy(j->archive_wrapped, pr->archive_wrapped,
		    pr->archive_wrapped_len);
		j->archive_wrapped_len = pr->archive_wrapped_len;
	}
	/* See the top of the file for the envelope senders. */
	j->envfrom = xstrdup(!autoreply && pr->failsafe_email != NULL ?
	    pr->failsafe_email : "");
	j->to = m->to != NULL ? xstrdup(m->to) : NULL;
	j->received = r.received;
	j->shared = r.shared;
	if (strcmp(m->kind, STORE_RM_REDFLAG) == 0) {
		fwd = q->p.reply_forward != NULL ? q->p.reply_forward : "smtp";
		if (strcmp(r.state, STORE_RS_QUARANTINED) == 0)
			j->quarantined = 1;
		else if (strcmp(fwd, "none") == 0)
			;	/* filed, not forwarded: replymail says so */
		else if (strcmp(fwd, "imap") == 0)
			xasprintf(&j->forwarded_to, "the shared IMAP folder %s",
			    q->p.imap_append_folder ? q->p.imap_append_folder :
			    "(not configured)");
		else if (r.clinician_id > 0 && store_clinician_get(q->store,
		    r.clinician_id, &cl, &error) == STORE_OK && cl->active)
			xasprintf(&j->forwarded_to, "%s (C%lld)", cl->name,
			    (long long)cl->id);
		else
			j->forwarded_to = xstrdup("the practice team address");
		store_clinician_free(&cl);
	}
	rc = 0;
	goto out;
settle:
	queue_settle_rmail(q, j, now);
out:
	store_practice_free(&pr);
	hash_wipe(&r, sizeof(r));
	return rc;
}

static void
queue_settle_cb(struct queue *q, struct qjob *j, int64_t now)
{
	const char	*error = NULL, *state;
	int64_t		 next = 0;

	if (j->http_status >= 200 && j->http_status < 300) {
		state = "sent";
		q->st.callbacks_sent++;
	} else if (j->cb.attempts >= QUEUE_CALLBACK_TRIES) {
		state = "failed";
		log_warnx("callback=%lld client=%lld given up after %d "
		    "attempts: %s", (long long)j->cb.id,
		    (long long)j->cb.client_id, j->cb.attempts,
		    j->http_status > 0 ? "HTTP error" : j->err);
	} else {
		state = "queued";
		next = now + queue_backoff(j->cb.attempts, q->p.retry_first,
		    q->p.retry_max);
	}
	if (store_callback_done(q->store, j->cb.id, state, next,
	    j->http_status, &error) != STORE_OK)
		log_warnx("queue: callback %lld: %s", (long long)j->cb.id,
		    error);
}

/*
 * Decide what to do with a claimed delivery before any SMTP: returns 1
 * when a transition settled it, 0 when it goes to a worker (j filled).
 */
static int
queue_check_claim(struct queue *q, struct qbatch *b, struct qjob *j,
    int64_t now)
{
	struct store_claim	*c = &j->claim;
	struct store_practice	*pr = NULL;
	struct store_patient	*pt = NULL;
	const char		*error = NULL;
	struct qtx		*x;
	const char		*nomail = NULL;
	int64_t			 shared = 0;
	int			 settled = 1;

	x = qbatch_add(b, c->delivery_id, STORE_DS_SENDING, NULL);
	if (store_practice_get(q->store, c->practice_id, &pr, &error) !=
	    STORE_OK || store_patient_get(q->store, c->patient_id, &pt,
	    &error) != STORE_OK) {
		/* The store is unwell: put it back for later. */
		x->t.to = c->attempts > 1 ? STORE_DS_DEFERRED :
		    STORE_DS_QUEUED;
		x->t.next_attempt = now + q->p.retry_first;
		x->t.undo_attempt = 1;
		snprintf(x->error, sizeof(x->error), "store: %s",
		    error ? error : "record missing");
		goto done;
	}
	if (now >= c->expires) {
		char	 why[160];

		snprintf(why, sizeof(why), "lifetime ended after %d "
		    "attempt%s", c->attempts - 1, c->attempts == 2 ? "" : "s");
		qtx_fail(x, STORE_DS_EXPIRED, "expired", why);
		q->st.expired++;
		log_warnx("delivery=%lld letter=%lld expired, to paper",
		    (long long)c->delivery_id, (long long)c->letter_id);
		goto done;
	}
	if (pt->email == NULL || *pt->email == '\0')
		nomail = "the patient has no email address";
	else if (!pt->verified)
		nomail = "the patient's email address is not verified";
	else if (!pt->consent)
		nomail = "the patient has not consented to email";
	if (nomail != NULL) {
		qtx_fail(x, STORE_DS_FAILED, "failed", nomail);
		q->st.failed++;
		log_warnx("delivery=%lld letter=%lld not emailed, to paper: %s",
		    (long long)c->delivery_id, (long long)c->letter_id,
		    nomail);
		goto done;
	}
	if (!c->released) {
		const char	*why = NULL;

		if (c->address == NULL ||
		    strcasecmp(c->address, pt->email) != 0)
			why = "the patient's address changed since the letter "
			    "was submitted";
		else if (!pt->shared_ok) {
			if (store_address_shared(q->store, c->practice_id,
			    c->patient_id, pt->email, &shared, &error) !=
			    STORE_OK) {
				x->t.to = c->attempts > 1 ?
				    STORE_DS_DEFERRED : STORE_DS_QUEUED;
				x->t.next_attempt = now + q->p.retry_first;
				x->t.undo_attempt = 1;
				snprintf(x->error, sizeof(x->error),
				    "store: %s", error);
				goto done;
			}
			if (shared > 0)
				why = "the address is shared with another "
				    "patient and no proxy is recorded";
		}
		if (why != NULL) {
			x->t.to = STORE_DS_HELD;
			x->t.effects = STORE_TX_ALERT | STORE_TX_CALLBACK;
			x->t.alert_kind = "held";
			strlcpy_sp(x->error, why, sizeof(x->error));
			q->st.held++;
			log_warnx("delivery=%lld letter=%lld held: %s",
			    (long long)c->delivery_id,
			    (long long)c->letter_id, why);
			goto done;
		}
	}
	if (!q->p.relay_enabled) {
		/*
		 * Nowhere to send it: it waits, without counting an attempt,
		 * until its lifetime ends (then: expired, paper) or a start
		 * with a smarthost makes it due at once.
		 */
		x->t.to = STORE_DS_DEFERRED;
		x->t.next_attempt = c->expires > now ? c->expires : now;
		x->t.undo_attempt = 1;
		strlcpy_sp(x->error, QUEUE_NO_RELAY, sizeof(x->error));
		goto done;
	}
	if (pr->archive_wrapped_len == 0 ||
	    pr->archive_wrapped_len > sizeof(j->archive_wrapped)) {
		qtx_fail(x, STORE_DS_FAILED, "failed",
		    "the practice has no archive identity");
		goto done;
	}

	/* To a worker. */
	b->n--;
	settled = 0;
	j->practice_name = xstrdup(pr->name);
	j->practice_domain = xstrdup(pr->domain);
	j->reply_domain = xstrdup(pr->reply_domain != NULL &&
	    *pr->reply_domain != '\0' ? pr->reply_domain : pr->domain);
	j->practice_phone = pr->phone ? xstrdup(pr->phone) : NULL;
	j->notify_only = pr->content_policy != NULL &&
	    strcmp(pr->content_policy, "notify") == 0;
	memcpy(j->archive_wrapped, pr->archive_wrapped,
	    pr->archive_wrapped_len);
	j->archive_wrapped_len = pr->archive_wrapped_len;
	j->patient_name = xstrdup(pt->name);
	j->to = xstrdup(pt->email);
done:
	store_practice_free(&pr);
	store_patient_free(&pt);
	return settled;
}

/*
 * Claim up to `more' further new letters and append them to *claims: the
 * retries did not use their half of the room.  0, or -1 (nothing added).
 */
static int
queue_claim_more(struct queue *q, int64_t now, size_t more,
    struct store_claim **claims, size_t *n)
{
	struct store_claim	*extra = NULL;
	const char		*error = NULL;
	size_t			 m = 0;

	if (store_deliveries_claim(q->store, now, more, 0, &extra, &m,
	    &error) != STORE_OK) {
		log_warnx("queue: claim: %s", error);
		return -1;
	}
	if (m > 0) {
		*claims = xreallocarray(*claims, *n + m, sizeof(**claims));
		memcpy(*claims + *n, extra, m * sizeof(*extra));
		*n += m;
		free(extra);	/* the strings moved into *claims */
	} else
		store_claims_free(&extra, 0);
	return 0;
}

/* Claim due work and dispatch it. */
static void
queue_dispatch(struct queue *q, struct qbatch *b, int64_t now)
{
	struct store_claim	*claims = NULL;
	struct store_alert	*alerts = NULL;
	struct store_callback	*cbs = NULL;
	struct store_reply_mail	*rmails = NULL;
	struct store_practice	*pr = NULL;
	const char		*error = NULL;
	size_t			 n = 0, i, room, max_new, max_retry, nnew;
	struct qjob		*j, *ready = NULL, **rtail = &ready;
	struct qjob		*cready = NULL, **ctail = &cready;
	size_t			 nletters = 0, nalerts = 0, ncbs = 0;
	size_t			 nrmails = 0;
	int			 alert_room, cb_room, rmail_room;

	pthread_mutex_lock(&q->mu);
	room = (size_t)q->p.max_active > q->in_flight ?
	    (size_t)q->p.max_active - q->in_flight : 0;
	if (q->in_flight_bytes >= QUEUE_BYTES_MAX)
		room = 0;		/* large letters: memory stays bounded */
	pthread_mutex_unlock(&q->mu);
	if (room > QUEUE_CLAIM_MAX)
		room = QUEUE_CLAIM_MAX;
	pthread_mutex_lock(&q->mu);
	alert_room = q->alerts_in_flight < QUEUE_ALERT_MAX * 2;
	cb_room = q->cbs_in_flight < QUEUE_CALLBACK_MAX * 2;
	/* Forwards carry sealed replies: the letters' byte bound holds. */
	rmail_room = q->rmails_in_flight < QUEUE_RMAIL_MAX * 2 &&
	    q->in_flight_bytes < QUEUE_BYTES_MAX;
	pthread_mutex_unlock(&q->mu);

	/*
	 * New letters and retries alternate: each gets half the room; what
	 * one side leaves, the new letters may take in a second claim.
	 */
	if (room > 0) {
		max_new = (room + 1) / 2;
		max_retry = room - max_new;
		if (max_retry == 0)
			max_retry = 1;
		if (store_deliveries_claim(q->store, now, max_new, max_retry,
		    &claims, &n, &error) != STORE_OK) {
			log_warnx("queue: claim: %s", error);
			n = 0;
		}
		for (i = 0, nnew = 0; i < n; i++)
			nnew += claims[i].attempts == 1;
		/* All the new letters asked for came: more may wait. */
		if (nnew == max_new && n < room)
			(void)queue_claim_more(q, now, room - n, &claims, &n);
	}
	for (i = 0; i < n; i++) {
		j = xcalloc(1, sizeof(*j));
		j->kind = QJ_LETTER;
		j->reply_lifetime = q->p.reply_lifetime;
		j->claim = claims[i];
		memset(&claims[i], 0, sizeof(claims[i]));
		q->st.claimed++;
		if (queue_check_claim(q, b, j, now)) {
			qjob_free(j);
			continue;
		}
		*rtail = j;
		rtail = &j->next;
		nletters++;
	}
	store_claims_free(&claims, n);
	/* Settled ones (paper, held, expired) commit before anything else. */
	qbatch_commit(q, b);

	n = 0;
	/* Without a smarthost alerts wait queued (they are in the log). */
	if (alert_room && q->p.relay_enabled && store_alerts_claim(q->store,
	    now, QUEUE_ALERT_MAX, &alerts, &n, &error) != STORE_OK) {
		log_warnx("queue: alerts: %s", error);
		n = 0;
	}
	for (i = 0; i < n; i++) {
		j = xcalloc(1, sizeof(*j));
		j->kind = QJ_ALERT;
		j->alert = alerts[i];
		memset(&alerts[i], 0, sizeof(alerts[i]));
		j->to = xstrdup(j->alert.to);
		if (store_practice_get(q->store, j->alert.practice_id, &pr,
		    &error) == STORE_OK) {
			j->practice_domain = xstrdup(pr->domain);
			store_practice_free(&pr);
		} else
			j->practice_domain = xstrdup("localhost");
		*rtail = j;
		rtail = &j->next;
		nalerts++;
	}
	store_alerts_free(&alerts, n);

	/*
	 * Reply mails, urgent first.  Without a smarthost (and no IMAP
	 * server for appends) they wait queued, like the alerts.
	 */
	n = 0;
	if (rmail_room && (q->p.relay_enabled ||
	    q->p.imap_server.host != NULL) && store_reply_mails_claim(q->store,
	    now, QUEUE_RMAIL_MAX, &rmails, &n, &error) != STORE_OK) {
		log_warnx("queue: reply mails: %s", error);
		n = 0;
	}
	for (i = 0; i < n; i++) {
		j = xcalloc(1, sizeof(*j));
		j->kind = QJ_RMAIL;
		j->rmail = rmails[i];
		memset(&rmails[i], 0, sizeof(rmails[i]));
		if (queue_prepare_rmail(q, j, now) != 0) {
			qjob_free(j);
			continue;
		}
		*rtail = j;
		rtail = &j->next;
		nrmails++;
	}
	store_reply_mails_free(&rmails, n);

	n = 0;
	if (cb_room && store_callbacks_claim(q->store, now,
	    QUEUE_CALLBACK_MAX, &cbs, &n, &error) != STORE_OK) {
		log_warnx("queue: callbacks: %s", error);
		n = 0;
	}
	for (i = 0; i < n; i++) {
		j = xcalloc(1, sizeof(*j));
		j->kind = QJ_CALLBACK;
		j->webhook = q->p.webhook;
		j->cb = cbs[i];
		memset(&cbs[i], 0, sizeof(cbs[i]));
		*ctail = j;
		ctail = &j->next;
		ncbs++;
	}
	store_callbacks_free(&cbs, n);

	if (ready == NULL && cready == NULL)
		return;
	pthread_mutex_lock(&q->mu);
	q->in_flight += nletters;
	q->alerts_in_flight += nalerts;
	q->cbs_in_flight += ncbs;
	q->rmails_in_flight += nrmails;
	while ((j = ready) != NULL) {
		ready = j->next;
		if (j->kind == QJ_LETTER)
			q->in_flight_bytes += j->claim.sealed_len;
		else if (j->kind == QJ_RMAIL)
			q->in_flight_bytes += j->rmail.sealed_len;
		/* Urgent work goes before the routine work waiting. */
		if (qjob_urgent(j))
			queue_push_urgent(q, j);
		else
			queue_push(&q->relay_jobs, &q->relay_tail, j);
	}
	while ((j = cready) != NULL) {
		cready = j->next;
		queue_push(&q->cb_jobs, &q->cb_tail, j);
	}
	pthread_cond_broadcast(&q->cv_relay);
	pthread_cond_signal(&q->cv_cb);
	pthread_mutex_unlock(&q->mu);
}

/* Apply a bounce: parse the report in the sandbox, fail the delivery. */
static void
queue_apply_bounce(struct queue *q, struct qbatch *b, struct queue_bounce *qb)
{
	struct dsn_report	 rep;
	struct letter_error	 lerr;
	struct store_delivery	*d = NULL;
	const char		*error = NULL;
	enum dsn_result		 dr = DSN_NOT_REPORT;
	struct qtx		*x;
	char			 why[256];
	size_t			 i, mine;
	int			 r, cls;

	memset(&rep, 0, sizeof(rep));
	r = sandbox_parse_dsn(q->sandbox, qb->raw, qb->len, &rep, &dr, &lerr);
	if (r == -2 && strcmp(lerr.code, "sandbox_unavailable") == 0) {
		qb->status = QB_TEMPFAIL;
		strlcpy_sp(qb->error, "parser unavailable", sizeof(qb->error));
		return;
	}
	if (r == -2) {
		qb->status = QB_HOSTILE;
		strlcpy_sp(qb->error, lerr.message, sizeof(qb->error));
		return;
	}
	if (r != 0 || dr != DSN_OK) {
		qb->status = QB_NOT_REPORT;
		strlcpy_sp(qb->error, r != 0 ? lerr.message :
		    "not a delivery status report", sizeof(qb->error));
		return;
	}
	if ((r = store_delivery_get(q->store, qb->delivery_id, &d, &error)) !=
	    STORE_OK) {
		qb->status = r == STORE_NOTFOUND ? QB_NOTED : QB_TEMPFAIL;
		strlcpy_sp(qb->error, r == STORE_NOTFOUND ? "no such delivery" :
		    "store unavailable", sizeof(qb->error));
		return;
	}
	if (d->letter_id != qb->letter_id) {
		qb->status = QB_NOTED;
		strlcpy_sp(qb->error, "token does not match the delivery",
		    sizeof(qb->error));
		store_delivery_free(&d);
		return;
	}
	if (rep.orig_msgid[0] != '\0' && d->message_id != NULL &&
	    strcmp(rep.orig_msgid, d->message_id) != 0)
		log_warnx("bounce for delivery=%lld names another Message-ID; "
		    "the token decides", (long long)qb->delivery_id);
	cls = dsn_class(&rep);
	if (cls != 5) {
		qb->status = QB_NOTED;
		snprintf(qb->error, sizeof(qb->error), "report class %d: no "
		    "change", cls);
		log_info("bounce for delivery=%lld: class %d report, no change",
		    (long long)qb->delivery_id, cls);
		store_delivery_free(&d);
		return;
	}
	for (i = 0; i < rep.nrcpts; i++) {
		if (rep.rcpts[i].action == DSN_ACTION_FAILED ||
		    rep.rcpts[i].status[0] == '5')
			break;
	}
	if (i == rep.nrcpts)
		i = 0;
	snprintf(why, sizeof(why), "%s %s",
	    rep.rcpts[i].status[0] ? rep.rcpts[i].status : "5.0.0",
	    rep.rcpts[i].diagnostic);
	x = qbatch_add(b, qb->delivery_id, "sent|sending|deferred|queued",
	    NULL);
	qtx_fail(x, STORE_DS_FAILED, "bounced", why);
	mine = b->n - 1;
	if (qbatch_commit(q, b) != 0) {
		b->n--;			/* this one only: the sender retries */
		free(b->tx[b->n].address);
		qb->status = QB_TEMPFAIL;
		strlcpy_sp(qb->error, "store unavailable", sizeof(qb->error));
	} else if (!b->tx[mine].t.applied) {
		qb->status = QB_NOTED;
		snprintf(qb->error, sizeof(qb->error), "delivery already %s: "
		    "no change", d->state);
	} else {
		qb->status = QB_APPLIED;
		q->st.bounced++;
		strlcpy_sp(qb->error, why, sizeof(qb->error));
		log_warnx("delivery=%lld letter=%lld bounced, to paper: %s",
		    (long long)qb->delivery_id, (long long)qb->letter_id,
		    why);
	}
	store_delivery_free(&d);
}

static void *
queue_sched_main(void *arg)
{
	struct queue		*q = arg;
	struct qbatch		 b;
	struct qjob		*res, *j;
	struct queue_bounce	*bin, *qb;
	struct timespec		 ts;
	const char		*error = NULL;
	int64_t			 now, nw;
	int			 stopping;

	memset(&b, 0, sizeof(b));
	for (;;) {
		pthread_mutex_lock(&q->mu);
		/* Stopping: wait for the workers' last results, not spin. */
		if (q->results == NULL && q->bounces_in == NULL &&
		    (q->stopping ? q->workers_alive > 0 : !q->kicked)) {
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += QUEUE_TICK_MS * 1000000L;
			ts.tv_sec += ts.tv_nsec / 1000000000L;
			ts.tv_nsec %= 1000000000L;
			pthread_cond_timedwait(&q->cv_sched, &q->mu, &ts);
		}
		if (q->live_dirty) {
			/* Only this thread reads q->p's live fields. */
			q->p.retry_first = q->live.retry_first;
			q->p.retry_max = q->live.retry_max;
			q->p.reply_lifetime = q->live.reply_lifetime;
			q->p.max_active = q->live.max_active;
			q->p.webhook.timeout = q->live.webhook.timeout;
			q->live_dirty = 0;
		}
		res = q->results;
		q->results = NULL;
		q->results_tail = &q->results;
		bin = q->bounces_in;
		q->bounces_in = NULL;
		q->kicked = 0;
		stopping = q->stopping;
		pthread_mutex_unlock(&q->mu);

		now = util_time();
		/* Results: one transaction for all letter outcomes. */
		for (j = res; j != NULL; j = j->next) {
			if (j->kind == QJ_LETTER)
				queue_settle_letter(q, &b, j, now);
		}
		/*
		 * On failure the batch stays and is committed with the next
		 * one (the rows are "sending" on disk meanwhile; a restart
		 * would requeue them).
		 */
		(void)qbatch_commit(q, &b);
		while ((j = res) != NULL) {
			res = j->next;
			if (j->kind == QJ_ALERT)
				queue_settle_alert(q, j, now);
			else if (j->kind == QJ_CALLBACK)
				queue_settle_cb(q, j, now);
			else if (j->kind == QJ_RMAIL)
				queue_settle_rmail(q, j, now);
			pthread_mutex_lock(&q->mu);
			if (j->kind == QJ_LETTER) {
				q->in_flight--;
				q->in_flight_bytes -= j->claim.sealed_len;
			} else if (j->kind == QJ_ALERT)
				q->alerts_in_flight--;
			else if (j->kind == QJ_RMAIL) {
				q->rmails_in_flight--;
				q->in_flight_bytes -= j->rmail.sealed_len;
			} else
				q->cbs_in_flight--;
			pthread_mutex_unlock(&q->mu);
			qjob_free(j);
		}
		/* Bounces, oldest first. */
		while ((qb = bin) != NULL) {
			bin = qb->next;
			queue_apply_bounce(q, &b, qb);
			pthread_mutex_lock(&q->mu);
			qb->next = q->bounces_done;
			q->bounces_done = qb;
			pthread_mutex_unlock(&q->mu);
			event_active(q->bounce_ev, 0, 0);
		}
		if (stopping) {
			pthread_mutex_lock(&q->mu);
			if (q->workers_alive == 0 && q->results == NULL) {
				pthread_mutex_unlock(&q->mu);
				break;
			}
			pthread_mutex_unlock(&q->mu);
			continue;
		}
		if (now - q->last_warn_scan >= QUEUE_WARN_EVERY) {
			q->last_warn_scan = now;
			nw = 0;
			if (store_deliveries_warn(q->store, now, 100, &nw,
			    &error) != STORE_OK)
				log_warnx("queue: delay warnings: %s", error);
			else if (nw > 0)
				log_warnx("queue: %lld deliveries delayed past "
				    "the warning age: the practice is told",
				    (long long)nw);
		}
		queue_dispatch(q, &b, now);
	}
	free(b.tx);
	pthread_mutex_lock(&q->mu);
	q->sched_done = 1;
	pthread_cond_broadcast(&q->cv_sched);
	pthread_mutex_unlock(&q->mu);
	return NULL;
}

/* Bounce results on the loop thread. */
static void
queue_bounce_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct queue		*q = arg;
	struct queue_bounce	*list, *qb, *rev = NULL;

	(void)fd;
	(void)ev;
	pthread_mutex_lock(&q->mu);
	list = q->bounces_done;
	q->bounces_done = NULL;
	pthread_mutex_unlock(&q->mu);
	while ((qb = list) != NULL) {		/* restore arrival order */
		list = qb->next;
		qb->next = rev;
		rev = qb;
	}
	while ((qb = rev) != NULL) {
		rev = qb->next;
		qb->next = NULL;
		qb->done(qb, qb->arg);
	}
}

/* --- public --------------------------------------------------------------- */

/* The copies of the parameters' strings, and the queue itself. */
static void
queue_free(struct queue *q)
{
	free(q->s_database);
	free(q->s_host);
	free(q->s_tls_name);
	free(q->s_ca);
	free(q->s_user);
	if (q->s_pass != NULL) {
		hash_wipe(q->s_pass, strlen(q->s_pass));
		free(q->s_pass);
	}
	free(q->s_helo);
	free(q->s_program);
	free(q->s_cb_ca);
	free(q->s_fwd);
	free(q->s_imap_host);
	free(q->s_imap_tls_name);
	free(q->s_imap_ca);
	free(q->s_imap_user);
	if (q->s_imap_pass != NULL) {
		hash_wipe(q->s_imap_pass, strlen(q->s_imap_pass));
		free(q->s_imap_pass);
	}
	free(q->s_imap_folder);
	free(q);
}

int
queue_start(struct event_base *base, const struct queue_params *p,
    struct queue **qp, const char **error_r)
{
	struct queue		*q;
	struct sandbox_params	 sp;
	struct worker_arg	*wa;
	int64_t			 n = 0, rn = 0;
	int			 i;

	*qp = NULL;
	q = xcalloc(1, sizeof(*q));
	q->base = base;
	q->p = *p;
	q->s_database = xstrdup(p->database);
	q->p.database = q->s_database;
#define DUP(field, store) do {						\
	q->store = p->field ? xstrdup(p->field) : NULL;			\
	q->p.field = q->store;						\
} while (0)
	DUP(relay.host, s_host);
	DUP(relay.tls_name, s_tls_name);
	DUP(relay.ca_file, s_ca);
	DUP(relay.username, s_user);
	DUP(relay.password, s_pass);
	DUP(relay.helo_name, s_helo);
	DUP(parse_program, s_program);
	DUP(webhook.ca_file, s_cb_ca);
	DUP(reply_forward, s_fwd);
	DUP(imap_server.host, s_imap_host);
	DUP(imap_server.tls_name, s_imap_tls_name);
	DUP(imap_server.ca_file, s_imap_ca);
	DUP(imap_server.username, s_imap_user);
	DUP(imap_server.password, s_imap_pass);
	DUP(imap_append_folder, s_imap_folder);
#undef DUP
	if (q->p.pool_size < 1)
		q->p.pool_size = 1;
	if (q->p.max_active < 1)
		q->p.max_active = 1;

	if (token_key_derive(q->p.keyring, 1, &q->tkeys) != 0) {
		*error_r = "cannot derive the token key";
		goto fail;
	}
	if (store_open(q->s_database, STORE_RDWR, &q->store, error_r) !=
	    STORE_OK)
		goto fail;
	if (store_deliveries_recover(q->store, &n, error_r) != STORE_OK)
		goto fail;
	if (store_reply_mails_recover(q->store, &rn, error_r) != STORE_OK)
		goto fail;
	if (rn > 0)
		log_warnx("queue: %lld reply mails were being sent when the "
		    "daemon stopped; they are queued again", (long long)rn);
	if (q->p.relay_enabled) {
		int64_t	 w = 0;

		if (store_deliveries_retry_reason(q->store, QUEUE_NO_RELAY,
		    util_time(), &w, error_r) != STORE_OK)
			goto fail;
		if (w > 0)
			log_info("queue: %lld deliveries waited for a smarthost; "
			    "they are due now", (long long)w);
	}
	if (n > 0)
		log_warnx("queue: %lld deliveries were being sent when the "
		    "daemon stopped; they are queued again (the smarthost may "
		    "see a duplicate with the same Message-ID)", (long long)n);

	memset(&sp, 0, sizeof(sp));
	sp.program = q->p.parse_program;
	sp.memory_limit = q->p.parse_memory_limit;
	sp.timeout = q->p.parse_timeout;
	sp.max_size = q->p.max_bounce_size;
	q->sandbox = sandbox_new(&sp);

	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->cv_sched, NULL);
	pthread_cond_init(&q->cv_relay, NULL);
	pthread_cond_init(&q->cv_cb, NULL);
	q->relay_tail = &q->relay_jobs;
	q->cb_tail = &q->cb_jobs;
	q->results_tail = &q->results;
	q->kicked = 1;		/* look at once, not at the first tick */
	q->bounce_ev = event_new(base, -1, 0, queue_bounce_cb, q);
	if (q->bounce_ev == NULL) {
		*error_r = "event_new failed";
		goto fail;
	}
	q->conns = xcalloc((size_t)q->p.pool_size, sizeof(*q->conns));
	q->workers = xcalloc((size_t)q->p.pool_size, sizeof(*q->workers));
	for (i = 0; i < q->p.pool_size; i++) {
		wa = xmalloc(sizeof(*wa));
		wa->q = q;
		wa->n = i;
		q->workers_alive++;
		if (pthread_create(&q->workers[i], NULL, queue_relay_main,
		    wa) != 0)
			log_fatal("queue: pthread_create");
	}
	q->workers_alive++;
	if (pthread_create(&q->cbworker, NULL, queue_cb_main, q) != 0)
		log_fatal("queue: pthread_create");
	if (pthread_create(&q->sched, NULL, queue_sched_main, q) != 0)
		log_fatal("queue: pthread_create");
	*qp = q;
	return 0;
fail:
	store_close(&q->store);
	hash_wipe(&q->tkeys, sizeof(q->tkeys));
	queue_free(q);
	return -1;
}

void
queue_kick(struct queue *q)
{
	if (q == NULL)
		return;
	pthread_mutex_lock(&q->mu);
	q->kicked = 1;
	pthread_cond_signal(&q->cv_sched);
	pthread_mutex_unlock(&q->mu);
}

void
queue_reload(struct queue *q, int64_t retry_first, int64_t retry_max,
    int64_t reply_lifetime, int max_active, int callback_timeout)
{
	pthread_mutex_lock(&q->mu);
	q->live.retry_first = retry_first;
	q->live.retry_max = retry_max;
	q->live.reply_lifetime = reply_lifetime;
	q->live.max_active = max_active < 1 ? 1 : max_active;
	q->live.webhook.timeout = callback_timeout;
	q->live_dirty = 1;
	pthread_cond_signal(&q->cv_sched);
	pthread_mutex_unlock(&q->mu);
}

void
queue_bounce(struct queue *q, struct queue_bounce *qb)
{
	struct queue_bounce	**pp;

	qb->status = QB_PENDING;
	qb->next = NULL;
	pthread_mutex_lock(&q->mu);
	for (pp = &q->bounces_in; *pp != NULL; pp = &(*pp)->next)
		;
	*pp = qb;
	pthread_cond_signal(&q->cv_sched);
	pthread_mutex_unlock(&q->mu);
}

void
queue_bounce_free(struct queue_bounce **qbp)
{
	struct queue_bounce	*qb = *qbp;

	if (qb == NULL)
		return;
	if (qb->raw != NULL) {
		hash_wipe(qb->raw, qb->len);
		free(qb->raw);
	}
	free(qb);
	*qbp = NULL;
}

void
queue_get_stats(struct queue *q, struct queue_stats *st)
{
	pthread_mutex_lock(&q->mu);
	*st = q->st;
	st->in_flight = q->in_flight;
	st->reply_mails_in_flight = q->rmails_in_flight;
	pthread_mutex_unlock(&q->mu);
}

int
queue_stop(struct queue **qp, uint64_t timeout_ms)
{
	struct queue		*q = *qp;
	struct queue_bounce	*qb;
	struct qjob		*j;
	struct timespec		 ts;
	uint64_t		 deadline, cancel_at;
	int			 i, rc = 0, cancelled;

	if (q == NULL)
		return 0;
	deadline = util_now_ms() + timeout_ms;
	pthread_mutex_lock(&q->mu);
	q->stopping = 1;
	/* Jobs not started: back to the queue at once (not an attempt). */
	while ((j = queue_pop(&q->relay_jobs, &q->relay_tail)) != NULL) {
		j->rr = RELAY_TEMPFAIL;
		j->requeue = 1;
		snprintf(j->err, sizeof(j->err), "daemon stopping");
		queue_push(&q->results, &q->results_tail, j);
	}
	while ((j = queue_pop(&q->cb_jobs, &q->cb_tail)) != NULL) {
		j->http_status = -1;
		snprintf(j->err, sizeof(j->err), "daemon stopping");
		queue_push(&q->results, &q->results_tail, j);
	}
	pthread_cond_broadcast(&q->cv_relay);
	pthread_cond_broadcast(&q->cv_cb);
	pthread_cond_broadcast(&q->cv_sched);
	/*
	 * Sessions in flight may finish for half the time: cutting one after
	 * the final dot would make the patient get the letter twice.  Then
	 * they are cancelled (their deliveries are deferred and retried).
	 */
	cancel_at = util_now_ms() + timeout_ms / 2;
	cancelled = 0;
	while (!q->sched_done) {
		uint64_t	 left, now = util_now_ms();

		if (now >= deadline)
			break;
		if (!cancelled && now >= cancel_at) {
			for (i = 0; i < q->p.pool_size; i++) {
				if (q->conns[i] != NULL)
					relay_cancel(q->conns[i]);
			}
			cancelled = 1;
		}
		left = deadline - now;
		if (left > 200)
			left = 200;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += (long)(left * 1000000UL);
		ts.tv_sec += ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		pthread_cond_timedwait(&q->cv_sched, &q->mu, &ts);
		pthread_cond_broadcast(&q->cv_sched);
	}
	if (!q->sched_done) {
		pthread_mutex_unlock(&q->mu);
		log_warnx("queue: threads did not stop in %llu ms; deliveries "
		    "in flight are requeued at the next start",
		    (unsigned long long)timeout_ms);
		*qp = NULL;
		return -1;
	}
	pthread_mutex_unlock(&q->mu);
	pthread_join(q->sched, NULL);
	for (i = 0; i < q->p.pool_size; i++)
		pthread_join(q->workers[i], NULL);
	pthread_join(q->cbworker, NULL);
	/* Bounces answered but not yet called back: run them now. */
	queue_bounce_cb(-1, 0, q);
	while ((qb = q->bounces_in) != NULL) {
		q->bounces_in = qb->next;
		qb->status = QB_TEMPFAIL;
		strlcpy_sp(qb->error, "daemon stopping", sizeof(qb->error));
		qb->done(qb, qb->arg);
	}
	event_free(q->bounce_ev);
	sandbox_free(&q->sandbox);
	store_close(&q->store);
	hash_wipe(&q->tkeys, sizeof(q->tkeys));
	pthread_mutex_destroy(&q->mu);
	pthread_cond_destroy(&q->cv_sched);
	pthread_cond_destroy(&q->cv_relay);
	pthread_cond_destroy(&q->cv_cb);
	free(q->conns);
	free(q->workers);
	queue_free(q);
	*qp = NULL;
	return rc;
}
