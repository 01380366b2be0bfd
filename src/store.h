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
};

struct store_client {
	int64_t		 id;
	int64_t		 practice_id;
	char		*name;
	int64_t		 default_author_id;	/* 0 = none */
	int		 revoked;
	int64_t		 created;
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
};

struct store_letter {
	int64_t		 id;
	int64_t		 practice_id;
	int64_t		 client_id;
	int64_t		 patient_id;
	int64_t		 author_id;
	int		 priority;
	char		*channel;
	char		*state;			/* "accepted", ... */
	int64_t		 created;
	size_t		 sealed_len;
	unsigned char	 sealed_sha256[32];
	struct store_delivery *deliveries;
	size_t		 ndeliveries;
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

#endif
