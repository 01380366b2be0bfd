/*
 * store_sqlite.h - hooks of the SQLite backend for its unit tests.
 *
 * Not part of the store interface (store.h): another backend has neither
 * numbered SQLite migrations nor query plans.  Only tests include this.
 */
#ifndef SEALPOST_STORE_SQLITE_H
#define SEALPOST_STORE_SQLITE_H

struct store;

/* Create a database at path with only the first `version' migrations
 * applied (an old sealpost's file, to test the upgrade). */
int	 store_sqlite_create(const char *path, int version,
	    const char **error_r);

/*
 * EXPLAIN QUERY PLAN of a named internal statement: "claim_queued",
 * "claim_deferred", "warn", "alerts_claim", "callbacks_claim",
 * "queue_stats"; schema 3: "reply_mails_claim", "ack_window_thread",
 * "ack_window_addr", "reply_dup", "delivery_by_message_id",
 * "reply_stats".  *plan (malloc'd) holds one detail line per step.
 */
int	 store_sqlite_plan(struct store *, const char *name, char **plan,
	    const char **error_r);

#endif
