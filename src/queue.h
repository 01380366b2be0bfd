/*
 * queue.h - the delivery scheduler: letters out, retries, expiry, the
 * failsafe, alerts, webhook callbacks and bounces.
 *
 *   scheduler thread (owns a store connection)
 *     claim due deliveries ----> relay workers (pool_size threads, each
 *     (index-driven, fair:        owning one smarthost session): decrypt
 *      new and retries             with the practice archive identity,
 *      alternate, urgent           build the MIME message, relay_send
 *      first, at most              |
 *      max_active in flight)       |
 *     apply results in one  <------'  (result list + condition variable)
 *     transaction: sent / deferred (backoff with jitter) / failed /
 *     expired, with the failsafe's paper row, alert and callback rows
 *     claim alerts ------------> relay workers (alert mails, no content)
 *     claim reply mails -------> relay workers (replymail.h: forwards
 *     (urgent first)              decrypted with the archive identity,
 *                                 acks, red flags; an append goes by
 *                                 IMAP APPEND instead of SMTP)
 *     claim callbacks ---------> callback worker (libcurl, webhook.h)
 *     parse bounces (sandbox) -> failed + failsafe, answer on the loop
 *
 * Before a delivery is handed to a worker the scheduler checks, from the
 * patient record as it is now: an address, verified, consent (else
 * failed, no SMTP, straight to paper); the lifetime (else expired); the
 * misrouting guard (address changed since submission, or shared with
 * another patient without a recorded proxy: held for "sealpostctl letter
 * release"), unless the delivery was released.
 *
 * Every state change is committed before it is acted on: a claim is
 * "sending" on disk before the worker connects; a crash leaves it
 * "sending" and store_deliveries_recover() requeues it at the next start
 * (the Message-ID is kept, so a duplicate is recognisable).
 *
 * Threads: queue_start, queue_kick, queue_reload, queue_stats and
 * queue_stop are called on the loop thread; bounce jobs complete on the
 * loop thread through event_active.  No SQL runs on the loop thread.
 */
#ifndef SEALPOST_QUEUE_H
#define SEALPOST_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#include "fetch.h"
#include "relay.h"
#include "webhook.h"

struct event_base;
struct keyring;
struct queue;

struct queue_params {
	const char	*database;
	struct keyring	*keyring;
	int		 relay_enabled;		/* a smarthost is configured */
	struct relay_params relay;
	int		 pool_size;
	int64_t		 retry_first;		/* seconds */
	int64_t		 retry_max;
	int64_t		 reply_lifetime;
	int		 max_active;
	struct webhook_params webhook;
	/* the parse sandbox for bounces */
	const char	*parse_program;
	int64_t		 parse_memory_limit;
	int64_t		 parse_timeout;
	size_t		 max_bounce_size;
	/*
	 * Replies (schema 3).  reply_forward: "smtp" (NULL too), "imap" or
	 * "none", only to say in a red-flag alert where the reply went.
	 * Reply mails of kind "append" go to imap_append_folder on
	 * imap_server (host NULL: none configured, they wait).
	 */
	const char	*reply_forward;
	struct fetch_server imap_server;
	const char	*imap_append_folder;
};

struct queue_stats {
	uint64_t	 claimed, sent, deferred, failed, expired, held;
	uint64_t	 bounced, alerts_sent, callbacks_sent, transactions;
	uint64_t	 in_flight;
	/* reply mails (replymail.h) */
	uint64_t	 reply_mails_sent, reply_mails_deferred;
	uint64_t	 reply_mails_failed, reply_mails_in_flight;
};

/* A bounce for a delivery, from the SMTP listener. */
enum queue_bounce_status {
	QB_PENDING = 0,
	QB_APPLIED,		/* the delivery failed: failsafe ran */
	QB_NOTED,		/* a report, nothing to change (delayed,
				   success, already failed) */
	QB_NOT_REPORT,		/* not a delivery-status report */
	QB_HOSTILE,		/* the parser crashed or timed out */
	QB_TEMPFAIL		/* store or sandbox unavailable: retry */
};

struct queue_bounce {
	int64_t		 letter_id;		/* from the verified token */
	int64_t		 delivery_id;
	char		*raw;			/* owned, wiped when freed */
	size_t		 len;
	/* result, valid in done() */
	enum queue_bounce_status status;
	char		 error[200];
	void		(*done)(struct queue_bounce *, void *);
	void		*arg;
	struct queue_bounce *next;
};

/*
 * Start the scheduler thread, the relay workers and the callback worker;
 * requeue "sending" rows left by a crash.  0, or -1 and a reason.
 */
int	 queue_start(struct event_base *, const struct queue_params *,
	    struct queue **, const char **error_r);
/* New letters were committed: look now instead of at the next tick. */
void	 queue_kick(struct queue *);
/* SIGHUP: the live settings. */
void	 queue_reload(struct queue *, int64_t retry_first, int64_t retry_max,
	    int64_t reply_lifetime, int max_active, int callback_timeout);
/* Hand a bounce over; done() runs on the loop thread; it frees the job. */
void	 queue_bounce(struct queue *, struct queue_bounce *);
void	 queue_bounce_free(struct queue_bounce **);
void	 queue_get_stats(struct queue *, struct queue_stats *);
/*
 * Stop claiming; cancel sessions in flight (their deliveries return to
 * the queue); apply the last results; join the threads, waiting at most
 * timeout_ms.  0, or -1 when a thread did not stop in time (it is
 * abandoned and the caller must exit; the rows stay "sending" and are
 * requeued at the next start).
 */
int	 queue_stop(struct queue **, uint64_t timeout_ms);

/* The retry delay after `attempts' attempts, jitter included: seconds. */
int64_t	 queue_backoff(int attempts, int64_t first, int64_t max);

#endif
