/*
 * store_sqlite.c - the SQLite backend of the store interface (store.h).
 *
 * Owns: the database connection, its pragmas (WAL, synchronous=FULL,
 * foreign keys, secure_delete, busy timeout), the versioned schema and its
 * migrations, the prepared-statement cache, the group commit of letters and
 * the hash-chained audit log.  <sqlite3.h> is included nowhere else.
 *
 * Public: store_open, store_close, store_schema_version, store_check,
 * store_begin, store_commit, store_rollback, store_practice_add,
 * store_clinician_add, store_patient_add, store_set_identity,
 * store_client_add, store_practice_get, store_practice_by_domain,
 * store_clinician_get, store_clinician_by_email, store_patient_get,
 * store_client_by_token, store_*_free, store_letters_commit,
 * store_idem_lookup, store_letter_get, store_letter_sealed,
 * store_letter_free, store_audit, store_audit_verify, store_stats.
 *
 * Schema: store_migrations[i] takes a database from PRAGMA user_version i
 * to i + 1.  store_open() applies the missing ones in order inside one
 * BEGIN IMMEDIATE transaction (re-reading the version under the lock, since
 * another process may have migrated meanwhile) and refuses a database whose
 * version is newer than the code.  src/schema.sql is the same schema for
 * humans; tests/test_store.c checks that both agree.
 *
 * Audit chain: hash = SHA-256(prev_hash || be64(ts) || be32(len) actor ||
 * be32(len) action || be32(len) object || be32(len) outcome), the first
 * prev_hash being 32 zero bytes.  The last hash is read inside the same
 * write transaction as the insert, so appenders in other connections and
 * processes serialise on the write lock and never fork the chain.
 *
 * Error policy: as store.h.  SQLITE_BUSY, _LOCKED, _FULL, _IOERR and _NOMEM
 * map to STORE_BUSY ("the disk refused, retry later"), anything else to
 * STORE_ERROR.  Reasons are static strings or a thread-local buffer holding
 * sqlite3_errmsg(), which names constraints and columns but never values.
 * Every statement is reset after use, so no read snapshot outlives a call.
 */
#include "build.h"

#include <sys/stat.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "hash.h"
#include "log.h"
#include "store.h"
#include "util.h"

#define STORE_APPLICATION_ID	1397047628	/* 0x5345414c, "SEAL" */
#define STORE_BUSY_TIMEOUT_MS	5000
#define STORE_JOURNAL_LIMIT	(64 * 1024 * 1024)
#define STORE_TEXT_MAX		1024	/* bound on any text column we write */
#define STORE_IDEM_KEY_MAX	255
#define STORE_ERRBUF_LEN	256

/*
 * The migrations, in order.  Never edit a published one: append a new
 * entry, and update src/schema.sql to match the result.
 */
static const char *const store_migrations[] = {
	/* 1: the initial schema. */
	"PRAGMA application_id = 1397047628;\n"
	"CREATE TABLE practices (\n"
	"  id INTEGER PRIMARY KEY,\n"
	"  name TEXT NOT NULL,\n"
	"  domain TEXT NOT NULL COLLATE NOCASE UNIQUE,\n"
	"  created INTEGER NOT NULL,\n"
	"  archive_pk BLOB CHECK (archive_pk IS NULL OR\n"
	"      length(archive_pk) = 32),\n"
	"  archive_wrapped BLOB CHECK (archive_wrapped IS NULL OR\n"
	"      length(archive_wrapped) <= 128)\n"
	");\n"
	"CREATE TABLE clinicians (\n"
	"  id INTEGER PRIMARY KEY,\n"
	"  practice_id INTEGER NOT NULL REFERENCES practices (id),\n"
	"  name TEXT NOT NULL,\n"
	"  email TEXT NOT NULL COLLATE NOCASE,\n"
	"  role TEXT,\n"
	"  active INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),\n"
	"  created INTEGER NOT NULL,\n"
	"  pk BLOB CHECK (pk IS NULL OR length(pk) = 32),\n"
	"  wrapped BLOB CHECK (wrapped IS NULL OR length(wrapped) <= 128),\n"
	"  UNIQUE (practice_id, email),\n"
	"  UNIQUE (practice_id, id)\n"
	");\n"
	"CREATE TABLE patients (\n"
	"  id INTEGER PRIMARY KEY,\n"
	"  practice_id INTEGER NOT NULL REFERENCES practices (id),\n"
	"  name TEXT NOT NULL,\n"
	"  email TEXT COLLATE NOCASE,\n"
	"  verified INTEGER NOT NULL DEFAULT 0 CHECK (verified IN (0, 1)),\n"
	"  consent INTEGER NOT NULL DEFAULT 0 CHECK (consent IN (0, 1)),\n"
	"  age_recipient TEXT,\n"
	"  created INTEGER NOT NULL,\n"
	"  pk BLOB CHECK (pk IS NULL OR length(pk) = 32),\n"
	"  wrapped BLOB CHECK (wrapped IS NULL OR length(wrapped) <= 128),\n"
	"  CHECK (verified = 0 OR email IS NOT NULL),\n"
	"  UNIQUE (practice_id, id)\n"
	");\n"
	"CREATE INDEX patients_email ON patients (practice_id, email);\n"
	"CREATE TABLE clients (\n"
	"  id INTEGER PRIMARY KEY,\n"
	"  practice_id INTEGER NOT NULL REFERENCES practices (id),\n"
	"  name TEXT NOT NULL,\n"
	"  token_hash BLOB NOT NULL UNIQUE CHECK (length(token_hash) = 32),\n"
	"  default_author_id INTEGER,\n"
	"  revoked INTEGER NOT NULL DEFAULT 0 CHECK (revoked IN (0, 1)),\n"
	"  created INTEGER NOT NULL,\n"
	"  UNIQUE (practice_id, id),\n"
	"  FOREIGN KEY (practice_id, default_author_id)\n"
	"      REFERENCES clinicians (practice_id, id)\n"
	");\n"
	"CREATE TABLE letters (\n"
	"  id INTEGER PRIMARY KEY,\n"
	"  practice_id INTEGER NOT NULL REFERENCES practices (id),\n"
	"  client_id INTEGER,\n"
	"  patient_id INTEGER NOT NULL,\n"
	"  author_id INTEGER,\n"
	"  priority INTEGER NOT NULL DEFAULT 0 CHECK (priority >= 0),\n"
	"  channel TEXT NOT NULL,\n"
	"  state TEXT NOT NULL DEFAULT 'accepted',\n"
	"  created INTEGER NOT NULL,\n"
	"  sealed_sha256 BLOB NOT NULL CHECK (length(sealed_sha256) = 32),\n"
	"  sealed_len INTEGER NOT NULL CHECK (sealed_len = length(sealed)),\n"
	"  sealed BLOB NOT NULL,\n"
	"  FOREIGN KEY (practice_id, client_id)\n"
	"      REFERENCES clients (practice_id, id),\n"
	"  FOREIGN KEY (practice_id, patient_id)\n"
	"      REFERENCES patients (practice_id, id),\n"
	"  FOREIGN KEY (practice_id, author_id)\n"
	"      REFERENCES clinicians (practice_id, id)\n"
	");\n"
	"CREATE INDEX letters_patient ON letters (practice_id, patient_id);\n"
	"CREATE TABLE deliveries (\n"
	"  id INTEGER PRIMARY KEY,\n"
	"  letter_id INTEGER NOT NULL REFERENCES letters (id),\n"
	"  practice_id INTEGER NOT NULL REFERENCES practices (id),\n"
	"  recipient TEXT NOT NULL,\n"
	"  address TEXT,\n"
	"  state TEXT NOT NULL DEFAULT 'queued',\n"
	"  attempts INTEGER NOT NULL DEFAULT 0,\n"
	"  next_attempt INTEGER NOT NULL,\n"
	"  updated INTEGER NOT NULL,\n"
	"  last_error TEXT,\n"
	"  UNIQUE (letter_id, recipient)\n"
	");\n"
	"CREATE INDEX deliveries_due ON deliveries (state, next_attempt);\n"
	"CREATE TABLE idempotency (\n"
	"  id INTEGER PRIMARY KEY,\n"
	"  practice_id INTEGER NOT NULL REFERENCES practices (id),\n"
	"  client_id INTEGER NOT NULL REFERENCES clients (id),\n"
	"  key TEXT NOT NULL CHECK (length(key) BETWEEN 1 AND 255),\n"
	"  req_hash BLOB NOT NULL CHECK (length(req_hash) = 32),\n"
	"  letter_id INTEGER NOT NULL REFERENCES letters (id),\n"
	"  created INTEGER NOT NULL,\n"
	"  UNIQUE (client_id, key)\n"
	");\n"
	"CREATE TABLE audit (\n"
	"  id INTEGER PRIMARY KEY,\n"
	"  ts INTEGER NOT NULL,\n"
	"  actor TEXT NOT NULL,\n"
	"  action TEXT NOT NULL,\n"
	"  object TEXT NOT NULL,\n"
	"  outcome TEXT NOT NULL,\n"
	"  prev_hash BLOB NOT NULL CHECK (length(prev_hash) = 32),\n"
	"  hash BLOB NOT NULL CHECK (length(hash) = 32)\n"
	");\n"
	"CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit\n"
	"BEGIN\n"
	"  SELECT RAISE(ABORT, 'audit is append-only');\n"
	"END;\n"
	"CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit\n"
	"BEGIN\n"
	"  SELECT RAISE(ABORT, 'audit is append-only');\n"
	"END;\n",
};
#define STORE_SCHEMA_VERSION	((int)nitems(store_migrations))

/* The prepared-statement cache: one slot per statement, prepared on first
 * use and reset after every use. */
enum store_stmt {
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_PRACTICE_ADD,
	ST_CLINICIAN_ADD,
	ST_PATIENT_ADD,
	ST_CLIENT_ADD,
	ST_IDENT_PRACTICE,
	ST_IDENT_CLINICIAN,
	ST_IDENT_PATIENT,
	ST_PRACTICE_GET,
	ST_PRACTICE_BY_DOMAIN,
	ST_CLINICIAN_GET,
	ST_CLINICIAN_BY_EMAIL,
	ST_PATIENT_GET,
	ST_CLIENT_BY_TOKEN,
	ST_LETTER_INSERT,
	ST_DELIVERY_INSERT,
	ST_IDEM_GET,
	ST_IDEM_INSERT,
	ST_LETTER_GET,
	ST_LETTER_DELIVERIES,
	ST_LETTER_SEALED,
	ST_AUDIT_LAST,
	ST_AUDIT_INSERT,
	ST_AUDIT_WALK,
	ST_STATS,
	ST_MAX
};

#define PRACTICE_COLS \
	"id, name, domain, created, archive_pk, archive_wrapped"
#define CLINICIAN_COLS \
	"id, practice_id, name, email, role, active, created, pk, wrapped"
#define PATIENT_COLS \
	"id, practice_id, name, email, verified, consent, age_recipient, " \
	"created, pk, wrapped"
#define CLIENT_COLS \
	"id, practice_id, name, default_author_id, revoked, created"

static const char *const store_sql[ST_MAX] = {
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	[ST_PRACTICE_ADD] = "INSERT INTO practices (name, domain, created) "
	    "VALUES (?1, ?2, ?3)",
	[ST_CLINICIAN_ADD] = "INSERT INTO clinicians (practice_id, name, "
	    "email, role, active, created) VALUES (?1, ?2, ?3, ?4, 1, ?5)",
	[ST_PATIENT_ADD] = "INSERT INTO patients (practice_id, name, email, "
	    "verified, consent, age_recipient, created) "
	    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
	[ST_CLIENT_ADD] = "INSERT INTO clients (practice_id, name, "
	    "token_hash, default_author_id, revoked, created) "
	    "VALUES (?1, ?2, ?3, ?4, 0, ?5)",
	[ST_IDENT_PRACTICE] = "UPDATE practices SET archive_pk = ?2, "
	    "archive_wrapped = ?3 WHERE id = ?1",
	[ST_IDENT_CLINICIAN] = "UPDATE clinicians SET pk = ?2, wrapped = ?3 "
	    "WHERE id = ?1",
	[ST_IDENT_PATIENT] = "UPDATE patients SET pk = ?2, wrapped = ?3 "
	    "WHERE id = ?1",
	[ST_PRACTICE_GET] = "SELECT " PRACTICE_COLS " FROM practices "
	    "WHERE id = ?1",
	[ST_PRACTICE_BY_DOMAIN] = "SELECT " PRACTICE_COLS " FROM practices "
	    "WHERE domain = ?1",
	[ST_CLINICIAN_GET] = "SELECT " CLINICIAN_COLS " FROM clinicians "
	    "WHERE id = ?1",
	[ST_CLINICIAN_BY_EMAIL] = "SELECT " CLINICIAN_COLS " FROM clinicians "
	    "WHERE practice_id = ?1 AND email = ?2",
	[ST_PATIENT_GET] = "SELECT " PATIENT_COLS " FROM patients "
	    "WHERE id = ?1",
	[ST_CLIENT_BY_TOKEN] = "SELECT " CLIENT_COLS " FROM clients "
	    "WHERE token_hash = ?1",
	[ST_LETTER_INSERT] = "INSERT INTO letters (practice_id, client_id, "
	    "patient_id, author_id, priority, channel, state, created, "
	    "sealed_sha256, sealed_len, sealed) "
	    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'accepted', ?7, ?8, ?9, ?10)",
	[ST_DELIVERY_INSERT] = "INSERT INTO deliveries (letter_id, "
	    "practice_id, recipient, address, state, attempts, next_attempt, "
	    "updated) VALUES (?1, ?2, 'patient', ?3, 'queued', 0, ?4, ?4)",
	[ST_IDEM_GET] = "SELECT req_hash, letter_id FROM idempotency "
	    "WHERE client_id = ?1 AND key = ?2",
	[ST_IDEM_INSERT] = "INSERT INTO idempotency (practice_id, client_id, "
	    "key, req_hash, letter_id, created) "
	    "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	[ST_LETTER_GET] = "SELECT id, practice_id, client_id, patient_id, "
	    "author_id, priority, channel, state, created, sealed_len, "
	    "sealed_sha256 FROM letters WHERE id = ?1",
	[ST_LETTER_DELIVERIES] = "SELECT id, recipient, address, state, "
	    "attempts, next_attempt, updated, last_error FROM deliveries "
	    "WHERE letter_id = ?1 ORDER BY id",
	[ST_LETTER_SEALED] = "SELECT sealed FROM letters WHERE id = ?1",
	[ST_AUDIT_LAST] = "SELECT hash FROM audit ORDER BY id DESC LIMIT 1",
	[ST_AUDIT_INSERT] = "INSERT INTO audit (ts, actor, action, object, "
	    "outcome, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
	[ST_AUDIT_WALK] = "SELECT id, ts, actor, action, object, outcome, "
	    "prev_hash, hash FROM audit ORDER BY id",
	[ST_STATS] = "SELECT (SELECT count(*) FROM practices), "
	    "(SELECT count(*) FROM clinicians), "
	    "(SELECT count(*) FROM patients), "
	    "(SELECT count(*) FROM clients), "
	    "(SELECT count(*) FROM letters), "
	    "(SELECT count(*) FROM deliveries WHERE state = 'queued'), "
	    "(SELECT count(*) FROM audit)"
};

struct store {
	sqlite3		*db;
	int		 flags;
	int		 version;
	sqlite3_stmt	*stmt[ST_MAX];
};

static _Thread_local char store_errbuf[STORE_ERRBUF_LEN];

static int	 store_code(int);
static int	 store_fail(struct store *, int, const char *, const char **);
static int	 store_stmt(struct store *, enum store_stmt, sqlite3_stmt **,
		    const char **);
static void	 store_done(sqlite3_stmt *);
static int	 store_run(struct store *, sqlite3_stmt *, const char *,
		    const char **);
static int	 store_exec(struct store *, const char *, const char *,
		    const char **);
static int	 store_pragma_int(struct store *, const char *, int *,
		    const char **);
static int	 store_create_file(const char *, const char **);
static int	 store_configure(struct store *, const char **);
static int	 store_migrate(struct store *, const char **);
static int	 store_check_version(int, const char **);
static int	 store_text_ok(const char *, int);
static void	 store_bind_text(sqlite3_stmt *, int, const char *);
static void	 store_bind_id(sqlite3_stmt *, int, int64_t);
static char	*store_col_str(sqlite3_stmt *, int);
static int	 store_col_blob(sqlite3_stmt *, int, unsigned char *, size_t,
		    size_t *);
static void	 store_be32(unsigned char *, uint32_t);
static int	 store_insert(struct store *, enum store_stmt, const char *,
		    int64_t *, const char **);
static int	 store_fetch(struct store *, sqlite3_stmt *, const char *,
		    const char **);
static void	 store_read_practice(sqlite3_stmt *, struct store_practice *);
static void	 store_read_clinician(sqlite3_stmt *,
		    struct store_clinician *);
static int	 store_practice_query(struct store *, enum store_stmt,
		    int64_t, const char *, struct store_practice **,
		    const char **);
static int	 store_clinician_query(struct store *, enum store_stmt,
		    int64_t, const char *, struct store_clinician **,
		    const char **);
static int	 store_letter_one(struct store *, struct store_letter_new *,
		    int64_t, unsigned char *, const char **);
static int	 store_idem_find(struct store *, int64_t, const char *,
		    unsigned char *, int64_t *, const char **);
static void	 store_audit_hash(const unsigned char *, int64_t,
		    const char *, size_t, const char *, size_t, const char *,
		    size_t, const char *, size_t, unsigned char *);
static int	 store_audit_last(struct store *, unsigned char *,
		    const char **);
static int	 store_audit_append(struct store *, int64_t, const char *,
		    const char *, const char *, const char *, unsigned char *,
		    const char **);

/* Map an SQLite result code to STORE_BUSY (retry later) or STORE_ERROR. */
static int
store_code(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
	case SQLITE_FULL:
	case SQLITE_IOERR:
	case SQLITE_NOMEM:
		return STORE_BUSY;
	default:
		return STORE_ERROR;
	}
}

/* Set *error_r to "what: sqlite message" and return the store code. */
static int
store_fail(struct store *s, int rc, const char *what, const char **error_r)
{
	snprintf(store_errbuf, sizeof(store_errbuf), "%s: %s", what,
	    s->db != NULL ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
	*error_r = store_errbuf;
	return store_code(rc);
}

/* Get a cached statement, preparing it on first use. */
static int
store_stmt(struct store *s, enum store_stmt id, sqlite3_stmt **stp,
    const char **error_r)
{
	int	 rc;

	*stp = NULL;
	if (s->stmt[id] == NULL) {
		rc = sqlite3_prepare_v3(s->db, store_sql[id], -1,
		    SQLITE_PREPARE_PERSISTENT, &s->stmt[id], NULL);
		if (rc != SQLITE_OK) {
			s->stmt[id] = NULL;
			return store_fail(s, rc, "prepare", error_r);
		}
	}
	*stp = s->stmt[id];
	return STORE_OK;
}

/* Release a statement after use: no snapshot or binding outlives a call. */
static void
store_done(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

/* Step a bound statement that returns no row of interest, then reset it. */
static int
store_run(struct store *s, sqlite3_stmt *st, const char *what,
    const char **error_r)
{
	int	 rc, ret = STORE_OK;

	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		ret = store_fail(s, rc, what, error_r);
	store_done(st);
	return ret;
}

/* Run SQL text without parameters (pragmas, migrations). */
static int
store_exec(struct store *s, const char *sql, const char *what,
    const char **error_r)
{
	char	*msg = NULL;
	int	 rc;

	rc = sqlite3_exec(s->db, sql, NULL, NULL, &msg);
	if (rc != SQLITE_OK) {
		snprintf(store_errbuf, sizeof(store_errbuf), "%s: %s", what,
		    msg != NULL ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
		*error_r = store_errbuf;
		return store_code(rc);
	}
	return STORE_OK;
}

/* Read an integer pragma (user_version, application_id, ...). */
static int
store_pragma_int(struct store *s, const char *name, int *v,
    const char **error_r)
{
	sqlite3_stmt	*st;
	char		 sql[64];
	int		 rc;

	snprintf(sql, sizeof(sql), "PRAGMA %s", name);
	rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return store_fail(s, rc, "pragma", error_r);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		rc = store_fail(s, rc == SQLITE_DONE ? SQLITE_ERROR : rc,
		    "pragma", error_r);
		if (rc == STORE_ERROR)
			*error_r = "pragma: no result (unsupported pragma?)";
		sqlite3_finalize(st);
		return rc;
	}
	*v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return STORE_OK;
}

/*
 * Create the database file mode 0600 if it does not exist, so the -wal and
 * -shm files, which SQLite creates with the database's mode, are 0600 too.
 */
static int
store_create_file(const char *path, const char **error_r)
{
	int	 fd;

	if (*path == '\0' || strcmp(path, ":memory:") == 0)
		return STORE_OK;
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	    S_IRUSR | S_IWUSR);
	if (fd == -1) {
		if (errno == EEXIST)
			return STORE_OK;
		snprintf(store_errbuf, sizeof(store_errbuf),
		    "cannot create database: %s", strerror(errno));
		*error_r = store_errbuf;
		return STORE_ERROR;
	}
	/* The umask may have narrowed it; it can only be stricter. */
	close(fd);
	return STORE_OK;
}

/* Connection settings: durability, integrity, hardening. */
static int
store_configure(struct store *s, const char **error_r)
{
	sqlite3_stmt	*st;
	const char	*mode;
	char		 sql[64];
	int		 rc, v;

	sqlite3_extended_result_codes(s->db, 1);
	sqlite3_busy_timeout(s->db, STORE_BUSY_TIMEOUT_MS);
	/* No writable_schema tricks, no functions run from schema code. */
	sqlite3_db_config(s->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
	sqlite3_db_config(s->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);

	rc = store_exec(s, "PRAGMA foreign_keys = ON; "
	    "PRAGMA secure_delete = ON; "
	    "PRAGMA synchronous = FULL", "pragma", error_r);
	if (rc != STORE_OK)
		return rc;
	if ((rc = store_pragma_int(s, "foreign_keys", &v, error_r)) != 0)
		return rc;
	if (v != 1) {
		*error_r = "this SQLite does not enforce foreign keys";
		return STORE_ERROR;
	}
	if (s->flags & STORE_RDONLY)
		return STORE_OK;

	rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &st,
	    NULL);
	if (rc != SQLITE_OK)
		return store_fail(s, rc, "journal_mode", error_r);
	rc = sqlite3_step(st);
	mode = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) :
	    NULL;
	if (mode == NULL || strcmp(mode, "wal") != 0) {
		if (rc != SQLITE_ROW)
			rc = store_fail(s, rc, "journal_mode", error_r);
		else {
			*error_r = "cannot switch the database to WAL mode";
			rc = STORE_ERROR;
		}
		sqlite3_finalize(st);
		return rc;
	}
	sqlite3_finalize(st);

	/* Truncate the WAL after checkpoints past this size. */
	snprintf(sql, sizeof(sql), "PRAGMA journal_size_limit = %d",
	    STORE_JOURNAL_LIMIT);
	return store_exec(s, sql, "journal_size_limit", error_r);
}

/* Refuse a schema newer than the code. */
static int
store_check_version(int v, const char **error_r)
{
	if (v > STORE_SCHEMA_VERSION) {
		snprintf(store_errbuf, sizeof(store_errbuf),
		    "database schema version %d is newer than this sealpost "
		    "(%d); upgrade sealpost", v, STORE_SCHEMA_VERSION);
		*error_r = store_errbuf;
		return STORE_ERROR;
	}
	if (v < 0) {
		*error_r = "database schema version is negative";
		return STORE_ERROR;
	}
	return STORE_OK;
}

/* Bring the schema to STORE_SCHEMA_VERSION, one transaction for all. */
static int
store_migrate(struct store *s, const char **error_r)
{
	char	 sql[64];
	int	 rc, v, app, from;

	if ((rc = store_pragma_int(s, "application_id", &app, error_r)) != 0)
		return rc;
	if (app != 0 && app != STORE_APPLICATION_ID) {
		*error_r = "not a sealpost database (foreign application_id)";
		return STORE_ERROR;
	}
	if ((rc = store_pragma_int(s, "user_version", &v, error_r)) != 0)
		return rc;
	if ((rc = store_check_version(v, error_r)) != STORE_OK)
		return rc;
	if (v == STORE_SCHEMA_VERSION) {
		s->version = v;
		return STORE_OK;
	}
	if (s->flags & STORE_RDONLY) {
		snprintf(store_errbuf, sizeof(store_errbuf),
		    "database schema version %d is older than this sealpost "
		    "(%d); open it read-write once to migrate", v,
		    STORE_SCHEMA_VERSION);
		*error_r = store_errbuf;
		return STORE_ERROR;
	}

	if ((rc = store_exec(s, "BEGIN IMMEDIATE", "migrate", error_r)) != 0)
		return rc;
	/* Another process may have migrated while we waited for the lock. */
	if ((rc = store_pragma_int(s, "user_version", &v, error_r)) != 0 ||
	    (rc = store_check_version(v, error_r)) != STORE_OK)
		goto fail;
	from = v;
	for (; v < STORE_SCHEMA_VERSION; v++) {
		rc = store_exec(s, store_migrations[v], "migrate", error_r);
		if (rc != STORE_OK)
			goto fail;
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", v + 1);
		if ((rc = store_exec(s, sql, "migrate", error_r)) != STORE_OK)
			goto fail;
	}
	if ((rc = store_exec(s, "COMMIT", "migrate", error_r)) != STORE_OK)
		goto fail;
	if (from != v)
		log_info("store: schema migrated from=%d to=%d", from, v);
	s->version = v;
	return STORE_OK;

fail:
	if (!sqlite3_get_autocommit(s->db))
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

/* Open (and migrate) a database; a newer schema version is refused. */
int
store_open(const char *path, int flags, struct store **sp,
    const char **error_r)
{
	struct store	*s;
	struct stat	 sb;
	int		 oflags, rc;

	*sp = NULL;
	if (sqlite3_threadsafe() == 0) {
		*error_r = "SQLite was built without thread support";
		return STORE_ERROR;
	}
	if ((flags & STORE_RDONLY) && (flags & STORE_CREATE)) {
		*error_r = "cannot create a database read-only";
		return STORE_ERROR;
	}
	if (flags & STORE_CREATE) {
		if ((rc = store_create_file(path, error_r)) != STORE_OK)
			return rc;
	}

	s = xcalloc(1, sizeof(*s));
	s->flags = flags;
	oflags = SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW;
#ifdef SQLITE_OPEN_EXRESCODE
	oflags |= SQLITE_OPEN_EXRESCODE;
#endif
	if (flags & STORE_RDONLY)
		oflags |= SQLITE_OPEN_READONLY;
	else
		oflags |= SQLITE_OPEN_READWRITE;
	if (flags & STORE_CREATE)
		oflags |= SQLITE_OPEN_CREATE;

	rc = sqlite3_open_v2(path, &s->db, oflags, NULL);
	if (rc != SQLITE_OK) {
		rc = store_fail(s, rc, "cannot open database", error_r);
		store_close(&s);
		return rc;
	}
	if ((rc = store_configure(s, error_r)) != STORE_OK ||
	    (rc = store_migrate(s, error_r)) != STORE_OK) {
		store_close(&s);
		return rc;
	}
	/* Names and addresses are in clear: say so if others can read. */
	if (stat(path, &sb) == 0 && (sb.st_mode & (S_IRWXG | S_IRWXO)) != 0)
		log_warnx("store: database file mode=%03o is open to group or "
		    "others; 0600 is expected", (unsigned)(sb.st_mode & 0777));
	*sp = s;
	return STORE_OK;
}

/* Close a connection (rolling back any open transaction); accepts NULL. */
void
store_close(struct store **sp)
{
	struct store	*s = *sp;
	size_t		 i;

	if (s == NULL)
		return;
	for (i = 0; i < ST_MAX; i++)
		sqlite3_finalize(s->stmt[i]);
	if (s->db != NULL && sqlite3_close(s->db) != SQLITE_OK)
		log_warnx("store: close failed: %s", sqlite3_errmsg(s->db));
	free(s);
	*sp = NULL;
}

/* The schema version of the open database. */
int
store_schema_version(struct store *s)
{
	return s->version;
}

/* PRAGMA integrity_check and foreign_key_check: STORE_OK when clean. */
int
store_check(struct store *s, const char **error_r)
{
	sqlite3_stmt	*st;
	const char	*msg;
	int		 rc, ret = STORE_OK;

	rc = sqlite3_prepare_v2(s->db, "PRAGMA integrity_check", -1, &st,
	    NULL);
	if (rc != SQLITE_OK)
		return store_fail(s, rc, "integrity_check", error_r);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW)
		ret = store_fail(s, rc, "integrity_check", error_r);
	else {
		msg = (const char *)sqlite3_column_text(st, 0);
		if (msg == NULL || strcmp(msg, "ok") != 0) {
			/* Page and index names only: no row content. */
			snprintf(store_errbuf, sizeof(store_errbuf),
			    "integrity_check: %s", msg != NULL ? msg : "?");
			*error_r = store_errbuf;
			ret = STORE_ERROR;
		}
	}
	sqlite3_finalize(st);
	if (ret != STORE_OK)
		return ret;

	rc = sqlite3_prepare_v2(s->db, "PRAGMA foreign_key_check", -1, &st,
	    NULL);
	if (rc != SQLITE_OK)
		return store_fail(s, rc, "foreign_key_check", error_r);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		snprintf(store_errbuf, sizeof(store_errbuf),
		    "foreign_key_check: table %s row %lld refers to a missing "
		    "%s", (const char *)sqlite3_column_text(st, 0),
		    (long long)sqlite3_column_int64(st, 1),
		    (const char *)sqlite3_column_text(st, 2));
		*error_r = store_errbuf;
		ret = STORE_ERROR;
	} else if (rc != SQLITE_DONE)
		ret = store_fail(s, rc, "foreign_key_check", error_r);
	sqlite3_finalize(st);
	return ret;
}

/* Start an explicit write transaction (BEGIN IMMEDIATE). */
int
store_begin(struct store *s, const char **error_r)
{
	sqlite3_stmt	*st;
	int		 rc;

	if (!sqlite3_get_autocommit(s->db)) {
		*error_r = "a transaction is already open";
		return STORE_ERROR;
	}
	if ((rc = store_stmt(s, ST_BEGIN, &st, error_r)) != STORE_OK)
		return rc;
	return store_run(s, st, "begin", error_r);
}

/* Commit the explicit transaction; on failure it is rolled back. */
int
store_commit(struct store *s, const char **error_r)
{
	sqlite3_stmt	*st;
	int		 rc;

	if (sqlite3_get_autocommit(s->db)) {
		*error_r = "no transaction is open";
		return STORE_ERROR;
	}
	if ((rc = store_stmt(s, ST_COMMIT, &st, error_r)) != STORE_OK)
		return rc;
	if ((rc = store_run(s, st, "commit", error_r)) != STORE_OK)
		store_rollback(s);
	return rc;
}

/* Roll back the open transaction, if any. */
void
store_rollback(struct store *s)
{
	sqlite3_stmt	*st;
	const char	*error;

	if (sqlite3_get_autocommit(s->db))
		return;
	if (store_stmt(s, ST_ROLLBACK, &st, &error) != STORE_OK ||
	    store_run(s, st, "rollback", &error) != STORE_OK) {
		/* SQLite rolls back on its own when ROLLBACK itself fails. */
		log_warnx("store: %s", error);
	}
}

/* Is a text argument present (or allowed NULL) and bounded? */
static int
store_text_ok(const char *p, int nullable)
{
	if (p == NULL)
		return nullable;
	return strlen(p) <= STORE_TEXT_MAX;
}

/* Bind text that outlives the step; NULL binds SQL NULL. */
static void
store_bind_text(sqlite3_stmt *st, int i, const char *p)
{
	if (p == NULL)
		sqlite3_bind_null(st, i);
	else
		sqlite3_bind_text(st, i, p, -1, SQLITE_STATIC);
}

/* Bind a row id; 0 means none and binds SQL NULL. */
static void
store_bind_id(sqlite3_stmt *st, int i, int64_t id)
{
	if (id == 0)
		sqlite3_bind_null(st, i);
	else
		sqlite3_bind_int64(st, i, id);
}

/* Copy a text column; NULL stays NULL. */
static char *
store_col_str(sqlite3_stmt *st, int i)
{
	const unsigned char	*p;

	if ((p = sqlite3_column_text(st, i)) == NULL)
		return NULL;
	return xstrdup((const char *)p);
}

/* Copy a blob column of at most max bytes (NULL reads as empty); -1 if
 * larger. */
static int
store_col_blob(sqlite3_stmt *st, int i, unsigned char *out, size_t max,
    size_t *lenp)
{
	const void	*p;
	int		 n;

	p = sqlite3_column_blob(st, i);
	n = sqlite3_column_bytes(st, i);
	if (n < 0 || (size_t)n > max)
		return -1;
	if (n > 0)
		memcpy(out, p, (size_t)n);
	*lenp = (size_t)n;
	return 0;
}

/* Step a bound INSERT and return the new row id. */
static int
store_insert(struct store *s, enum store_stmt id, const char *what,
    int64_t *idp, const char **error_r)
{
	int	 rc;

	rc = store_run(s, s->stmt[id], what, error_r);
	if (rc == STORE_OK && idp != NULL)
		*idp = sqlite3_last_insert_rowid(s->db);
	return rc;
}

/* Step a bound SELECT once: STORE_OK with a row, NOTFOUND, or an error.
 * On STORE_OK the caller reads the row and then calls store_done(). */
static int
store_fetch(struct store *s, sqlite3_stmt *st, const char *what,
    const char **error_r)
{
	int	 rc;

	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		return STORE_OK;
	if (rc == SQLITE_DONE) {
		*error_r = "not found";
		rc = STORE_NOTFOUND;
	} else
		rc = store_fail(s, rc, what, error_r);
	store_done(st);
	return rc;
}

/* Insert a practice; the domain is stored lower-case. */
int
store_practice_add(struct store *s, const char *name, const char *domain,
    int64_t *id, const char **error_r)
{
	sqlite3_stmt	*st;
	char		*lower, *p;
	int		 rc;

	if (!store_text_ok(name, 0) || !store_text_ok(domain, 0)) {
		*error_r = "practice name or domain missing or too long";
		return STORE_ERROR;
	}
	if ((rc = store_stmt(s, ST_PRACTICE_ADD, &st, error_r)) != STORE_OK)
		return rc;
	lower = xstrdup(domain);
	for (p = lower; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	store_bind_text(st, 1, name);
	store_bind_text(st, 2, lower);
	sqlite3_bind_int64(st, 3, util_time());
	rc = store_insert(s, ST_PRACTICE_ADD, "practice add", id, error_r);
	free(lower);
	return rc;
}

/* Insert a clinician, active. */
int
store_clinician_add(struct store *s, int64_t practice_id, const char *name,
    const char *email, const char *role, int64_t *id, const char **error_r)
{
	sqlite3_stmt	*st;
	int		 rc;

	if (!store_text_ok(name, 0) || !store_text_ok(email, 0) ||
	    !store_text_ok(role, 1)) {
		*error_r = "clinician name, email or role missing or too long";
		return STORE_ERROR;
	}
	if ((rc = store_stmt(s, ST_CLINICIAN_ADD, &st, error_r)) != STORE_OK)
		return rc;
	sqlite3_bind_int64(st, 1, practice_id);
	store_bind_text(st, 2, name);
	store_bind_text(st, 3, email);
	store_bind_text(st, 4, role);
	sqlite3_bind_int64(st, 5, util_time());
	return store_insert(s, ST_CLINICIAN_ADD, "clinician add", id, error_r);
}

/* Insert a patient. */
int
store_patient_add(struct store *s, int64_t practice_id, const char *name,
    const char *email, int verified, int consent, const char *age_recipient,
    int64_t *id, const char **error_r)
{
	sqlite3_stmt	*st;
	int		 rc;

	if (!store_text_ok(name, 0) || !store_text_ok(email, 1) ||
	    !store_text_ok(age_recipient, 1)) {
		*error_r = "patient name, email or recipient missing or too "
		    "long";
		return STORE_ERROR;
	}
	if ((rc = store_stmt(s, ST_PATIENT_ADD, &st, error_r)) != STORE_OK)
		return rc;
	sqlite3_bind_int64(st, 1, practice_id);
	store_bind_text(st, 2, name);
	store_bind_text(st, 3, email);
	sqlite3_bind_int(st, 4, verified != 0);
	sqlite3_bind_int(st, 5, consent != 0);
	store_bind_text(st, 6, age_recipient);
	sqlite3_bind_int64(st, 7, util_time());
	return store_insert(s, ST_PATIENT_ADD, "patient add", id, error_r);
}

/* Set the public key and wrapped secret of a practice, clinician or
 * patient. */
int
store_set_identity(struct store *s, const char *kind, int64_t id,
    const unsigned char pk[STORE_KEY_LEN], const unsigned char *wrapped,
    size_t wrappedlen, const char **error_r)
{
	sqlite3_stmt	*st;
	enum store_stmt	 which;
	int		 rc;

	if (strcmp(kind, "practice") == 0)
		which = ST_IDENT_PRACTICE;
	else if (strcmp(kind, "clinician") == 0)
		which = ST_IDENT_CLINICIAN;
	else if (strcmp(kind, "patient") == 0)
		which = ST_IDENT_PATIENT;
	else {
		*error_r = "unknown identity kind";
		return STORE_ERROR;
	}
	if (wrapped == NULL || wrappedlen == 0 ||
	    wrappedlen > STORE_WRAPPED_MAX) {
		*error_r = "wrapped key missing or too long";
		return STORE_ERROR;
	}
	if ((rc = store_stmt(s, which, &st, error_r)) != STORE_OK)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_blob(st, 2, pk, STORE_KEY_LEN, SQLITE_STATIC);
	sqlite3_bind_blob(st, 3, wrapped, (int)wrappedlen, SQLITE_STATIC);
	if ((rc = store_run(s, st, "set identity", error_r)) != STORE_OK)
		return rc;
	return sqlite3_changes(s->db) == 0 ? STORE_NOTFOUND : STORE_OK;
}

/* Insert a client; only the SHA-256 of its token is stored. */
int
store_client_add(struct store *s, int64_t practice_id, const char *name,
    const unsigned char token_hash[32], int64_t default_author_id,
    int64_t *id, const char **error_r)
{
	sqlite3_stmt	*st;
	int		 rc;

	if (!store_text_ok(name, 0)) {
		*error_r = "client name missing or too long";
		return STORE_ERROR;
	}
	if ((rc = store_stmt(s, ST_CLIENT_ADD, &st, error_r)) != STORE_OK)
		return rc;
	sqlite3_bind_int64(st, 1, practice_id);
	store_bind_text(st, 2, name);
	sqlite3_bind_blob(st, 3, token_hash, 32, SQLITE_STATIC);
	store_bind_id(st, 4, default_author_id);
	sqlite3_bind_int64(st, 5, util_time());
	return store_insert(s, ST_CLIENT_ADD, "client add", id, error_r);
}

/* Fill a practice from a row of PRACTICE_COLS. */
static void
store_read_practice(sqlite3_stmt *st, struct store_practice *p)
{
	size_t	 n;

	p->id = sqlite3_column_int64(st, 0);
	p->name = store_col_str(st, 1);
	p->domain = store_col_str(st, 2);
	p->created = sqlite3_column_int64(st, 3);
	/* The schema bounds both; a NULL key reads as all zeroes. */
	if (store_col_blob(st, 4, p->archive_pk, STORE_KEY_LEN, &n) == -1 ||
	    n != STORE_KEY_LEN)
		memset(p->archive_pk, 0, STORE_KEY_LEN);
	if (store_col_blob(st, 5, p->archive_wrapped, STORE_WRAPPED_MAX,
	    &p->archive_wrapped_len) == -1)
		p->archive_wrapped_len = 0;
}

/* Look a practice up by id or by domain. */
static int
store_practice_query(struct store *s, enum store_stmt which, int64_t id,
    const char *domain, struct store_practice **pp, const char **error_r)
{
	sqlite3_stmt	*st;
	int		 rc;

	*pp = NULL;
	if ((rc = store_stmt(s, which, &st, error_r)) != STORE_OK)
		return rc;
	if (domain != NULL)
		store_bind_text(st, 1, domain);
	else
		sqlite3_bind_int64(st, 1, id);
	if ((rc = store_fetch(s, st, "practice get", error_r)) != STORE_OK)
		return rc;
	*pp = xcalloc(1, sizeof(**pp));
	store_read_practice(st, *pp);
	store_done(st);
	return STORE_OK;
}

/* A practice by id. */
int
store_practice_get(struct store *s, int64_t id, struct store_practice **pp,
    const char **error_r)
{
	return store_practice_query(s, ST_PRACTICE_GET, id, NULL, pp,
	    error_r);
}

/* By mail domain, case-insensitive. */
int
store_practice_by_domain(struct store *s, const char *domain,
    struct store_practice **pp, const char **error_r)
{
	if (domain == NULL) {
		*pp = NULL;
		*error_r = "no domain";
		return STORE_ERROR;
	}
	return store_practice_query(s, ST_PRACTICE_BY_DOMAIN, 0, domain, pp,
	    error_r);
}

/* Fill a clinician from a row of CLINICIAN_COLS. */
static void
store_read_clinician(sqlite3_stmt *st, struct store_clinician *c)
{
	size_t	 n;

	c->id = sqlite3_column_int64(st, 0);
	c->practice_id = sqlite3_column_int64(st, 1);
	c->name = store_col_str(st, 2);
	c->email = store_col_str(st, 3);
	c->role = store_col_str(st, 4);
	c->active = sqlite3_column_int(st, 5);
	c->created = sqlite3_column_int64(st, 6);
	if (store_col_blob(st, 7, c->pk, STORE_KEY_LEN, &n) == -1 ||
	    n != STORE_KEY_LEN)
		memset(c->pk, 0, STORE_KEY_LEN);
	if (store_col_blob(st, 8, c->wrapped, STORE_WRAPPED_MAX,
	    &c->wrapped_len) == -1)
		c->wrapped_len = 0;
}

/* Look a clinician up by id or by (practice, email). */
static int
store_clinician_query(struct store *s, enum store_stmt which, int64_t id,
    const char *email, struct store_clinician **cp, const char **error_r)
{
	sqlite3_stmt	*st;
	int		 rc;

	*cp = NULL;
	if ((rc = store_stmt(s, which, &st, error_r)) != STORE_OK)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	if (email != NULL)
		store_bind_text(st, 2, email);
	if ((rc = store_fetch(s, st, "clinician get", error_r)) != STORE_OK)
		return rc;
	*cp = xcalloc(1, sizeof(**cp));
	store_read_clinician(st, *cp);
	store_done(st);
	return STORE_OK;
}

/* A clinician by id. */
int
store_clinician_get(struct store *s, int64_t id, struct store_clinician **cp,
    const char **error_r)
{
	return store_clinician_query(s, ST_CLINICIAN_GET, id, NULL, cp,
	    error_r);
}

/* By work address within a practice, case-insensitive. */
int
store_clinician_by_email(struct store *s, int64_t practice_id,
    const char *email, struct store_clinician **cp, const char **error_r)
{
	if (email == NULL) {
		*cp = NULL;
		*error_r = "no email";
		return STORE_ERROR;
	}
	return store_clinician_query(s, ST_CLINICIAN_BY_EMAIL, practice_id,
	    email, cp, error_r);
}

/* A patient by id. */
int
store_patient_get(struct store *s, int64_t id, struct store_patient **pp,
    const char **error_r)
{
	struct store_patient	*p;
	sqlite3_stmt		*st;
	size_t			 n;
	int			 rc;

	*pp = NULL;
	if ((rc = store_stmt(s, ST_PATIENT_GET, &st, error_r)) != STORE_OK)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	if ((rc = store_fetch(s, st, "patient get", error_r)) != STORE_OK)
		return rc;
	p = xcalloc(1, sizeof(*p));
	p->id = sqlite3_column_int64(st, 0);
	p->practice_id = sqlite3_column_int64(st, 1);
	p->name = store_col_str(st, 2);
	p->email = store_col_str(st, 3);
	p->verified = sqlite3_column_int(st, 4);
	p->consent = sqlite3_column_int(st, 5);
	p->age_recipient = store_col_str(st, 6);
	p->created = sqlite3_column_int64(st, 7);
	if (store_col_blob(st, 8, p->pk, STORE_KEY_LEN, &n) == -1 ||
	    n != STORE_KEY_LEN)
		memset(p->pk, 0, STORE_KEY_LEN);
	if (store_col_blob(st, 9, p->wrapped, STORE_WRAPPED_MAX,
	    &p->wrapped_len) == -1)
		p->wrapped_len = 0;
	store_done(st);
	*pp = p;
	return STORE_OK;
}

/* The client holding a token, by the token's SHA-256. */
int
store_client_by_token(struct store *s, const unsigned char hash[32],
    struct store_client **cp, const char **error_r)
{
	struct store_client	*c;
	sqlite3_stmt		*st;
	int			 rc;

	*cp = NULL;
	if ((rc = store_stmt(s, ST_CLIENT_BY_TOKEN, &st, error_r)) != 0)
		return rc;
	sqlite3_bind_blob(st, 1, hash, 32, SQLITE_STATIC);
	if ((rc = store_fetch(s, st, "client get", error_r)) != STORE_OK)
		return rc;
	c = xcalloc(1, sizeof(*c));
	c->id = sqlite3_column_int64(st, 0);
	c->practice_id = sqlite3_column_int64(st, 1);
	c->name = store_col_str(st, 2);
	c->default_author_id = sqlite3_column_int64(st, 3);	/* NULL: 0 */
	c->revoked = sqlite3_column_int(st, 4);
	c->created = sqlite3_column_int64(st, 5);
	store_done(st);
	*cp = c;
	return STORE_OK;
}

/* Free a practice; accepts NULL. */
void
store_practice_free(struct store_practice **pp)
{
	struct store_practice	*p = *pp;

	if (p == NULL)
		return;
	free(p->name);
	free(p->domain);
	hash_wipe(p, sizeof(*p));
	free(p);
	*pp = NULL;
}

/* Free a clinician; accepts NULL. */
void
store_clinician_free(struct store_clinician **cp)
{
	struct store_clinician	*c = *cp;

	if (c == NULL)
		return;
	free(c->name);
	free(c->email);
	free(c->role);
	hash_wipe(c, sizeof(*c));
	free(c);
	*cp = NULL;
}

/* Free a patient; accepts NULL. */
void
store_patient_free(struct store_patient **pp)
{
	struct store_patient	*p = *pp;

	if (p == NULL)
		return;
	free(p->name);
	free(p->email);
	free(p->age_recipient);
	hash_wipe(p, sizeof(*p));
	free(p);
	*pp = NULL;
}

/* Free a client; accepts NULL. */
void
store_client_free(struct store_client **cp)
{
	struct store_client	*c = *cp;

	if (c == NULL)
		return;
	free(c->name);
	free(c);
	*cp = NULL;
}

/* Find an idempotency key: STORE_OK with its request hash and letter. */
static int
store_idem_find(struct store *s, int64_t client_id, const char *key,
    unsigned char *req_hash, int64_t *letter_id, const char **error_r)
{
	sqlite3_stmt	*st;
	size_t		 n;
	int		 rc;

	if ((rc = store_stmt(s, ST_IDEM_GET, &st, error_r)) != STORE_OK)
		return rc;
	sqlite3_bind_int64(st, 1, client_id);
	store_bind_text(st, 2, key);
	if ((rc = store_fetch(s, st, "idempotency get", error_r)) != 0)
		return rc;
	if (store_col_blob(st, 0, req_hash, 32, &n) == -1 || n != 32) {
		store_done(st);
		*error_r = "idempotency row with a bad request hash";
		return STORE_ERROR;
	}
	*letter_id = sqlite3_column_int64(st, 1);
	store_done(st);
	return STORE_OK;
}

/* Look up an idempotency key before doing the work. */
int
store_idem_lookup(struct store *s, int64_t client_id, const char *key,
    unsigned char req_hash[32], int64_t *letter_id, const char **error_r)
{
	if (key == NULL || strlen(key) > STORE_IDEM_KEY_MAX) {
		*error_r = "idempotency key missing or too long";
		return STORE_ERROR;
	}
	return store_idem_find(s, client_id, key, req_hash, letter_id,
	    error_r);
}

/*
 * One entry of a group commit, inside the open transaction: check its
 * idempotency key, or insert the letter, its delivery, its key and its
 * audit row.  prev is the running audit hash.
 */
static int
store_letter_one(struct store *s, struct store_letter_new *l, int64_t now,
    unsigned char *prev, const char **error_r)
{
	sqlite3_stmt	*st;
	unsigned char	 digest[HASH_SHA256_LEN], seen[32];
	char		 actor[32], object[32];
	int64_t		 id, seen_id;
	int		 rc;

	l->result = STORE_LETTER_NEW;
	l->letter_id = 0;
	if (l->idem_key != NULL) {
		/* Earlier entries of this batch are visible here too. */
		rc = store_idem_find(s, l->client_id, l->idem_key, seen,
		    &seen_id, error_r);
		if (rc == STORE_OK) {
			if (memcmp(seen, l->req_hash, 32) == 0) {
				l->result = STORE_LETTER_DUPLICATE;
				l->letter_id = seen_id;
			} else
				l->result = STORE_LETTER_CONFLICT;
			return STORE_OK;
		}
		if (rc != STORE_NOTFOUND)
			return rc;
	}

	if ((rc = store_stmt(s, ST_LETTER_INSERT, &st, error_r)) != STORE_OK)
		return rc;
	hash_sha256(l->sealed, l->sealed_len, digest);
	sqlite3_bind_int64(st, 1, l->practice_id);
	store_bind_id(st, 2, l->client_id);
	sqlite3_bind_int64(st, 3, l->patient_id);
	store_bind_id(st, 4, l->author_id);
	sqlite3_bind_int(st, 5, l->priority);
	store_bind_text(st, 6, l->channel);
	sqlite3_bind_int64(st, 7, now);
	sqlite3_bind_blob(st, 8, digest, sizeof(digest), SQLITE_STATIC);
	sqlite3_bind_int64(st, 9, (sqlite3_int64)l->sealed_len);
	rc = sqlite3_bind_blob64(st, 10, l->sealed, l->sealed_len,
	    SQLITE_STATIC);
	if (rc != SQLITE_OK) {
		store_done(st);
		return store_fail(s, rc, "letter insert", error_r);
	}
	if ((rc = store_insert(s, ST_LETTER_INSERT, "letter insert", &id,
	    error_r)) != STORE_OK)
		return rc;

	if ((rc = store_stmt(s, ST_DELIVERY_INSERT, &st, error_r)) != 0)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, l->practice_id);
	store_bind_text(st, 3, l->address);
	sqlite3_bind_int64(st, 4, now);
	if ((rc = store_insert(s, ST_DELIVERY_INSERT, "delivery insert",
	    NULL, error_r)) != STORE_OK)
		return rc;

	if (l->idem_key != NULL) {
		if ((rc = store_stmt(s, ST_IDEM_INSERT, &st, error_r)) != 0)
			return rc;
		sqlite3_bind_int64(st, 1, l->practice_id);
		sqlite3_bind_int64(st, 2, l->client_id);
		store_bind_text(st, 3, l->idem_key);
		sqlite3_bind_blob(st, 4, l->req_hash, 32, SQLITE_STATIC);
		sqlite3_bind_int64(st, 5, id);
		sqlite3_bind_int64(st, 6, now);
		if ((rc = store_insert(s, ST_IDEM_INSERT, "idempotency insert",
		    NULL, error_r)) != STORE_OK)
			return rc;
	}

	if (l->client_id != 0)
		snprintf(actor, sizeof(actor), "client:%lld",
		    (long long)l->client_id);
	else
		strlcpy_sp(actor, "daemon", sizeof(actor));
	snprintf(object, sizeof(object), "letter:%lld", (long long)id);
	rc = store_audit_append(s, now, actor, "letter.submit", object, "ok",
	    prev, error_r);
	if (rc != STORE_OK)
		return rc;
	l->letter_id = id;
	return STORE_OK;
}

/* Group commit: n letters in one transaction with one fsync. */
int
store_letters_commit(struct store *s, struct store_letter_new *ls, size_t n,
    const char **error_r)
{
	sqlite3_stmt	*st;
	unsigned char	 prev[HASH_SHA256_LEN];
	int64_t		 now;
	size_t		 i;
	int		 rc;

	for (i = 0; i < n; i++) {
		ls[i].result = STORE_LETTER_NEW;
		ls[i].letter_id = 0;
	}
	for (i = 0; i < n; i++) {
		const struct store_letter_new *l = &ls[i];

		if (l->sealed == NULL || l->sealed_len == 0 ||
		    l->channel == NULL || !store_text_ok(l->address, 1)) {
			*error_r = "letter without sealed blob or channel";
			return STORE_ERROR;
		}
		if (l->idem_key != NULL && (l->client_id == 0 ||
		    *l->idem_key == '\0' ||
		    strlen(l->idem_key) > STORE_IDEM_KEY_MAX)) {
			*error_r = "bad idempotency key or no client";
			return STORE_ERROR;
		}
	}
	if (n == 0)
		return STORE_OK;
	if (!sqlite3_get_autocommit(s->db)) {
		*error_r = "group commit inside an open transaction";
		return STORE_ERROR;
	}

	if ((rc = store_stmt(s, ST_BEGIN, &st, error_r)) != STORE_OK ||
	    (rc = store_run(s, st, "begin", error_r)) != STORE_OK)
		return rc;
	if ((rc = store_audit_last(s, prev, error_r)) != STORE_OK)
		goto fail;
	now = util_time();
	for (i = 0; i < n; i++) {
		if ((rc = store_letter_one(s, &ls[i], now, prev, error_r)) != 0)
			goto fail;
	}
	if ((rc = store_stmt(s, ST_COMMIT, &st, error_r)) != STORE_OK ||
	    (rc = store_run(s, st, "commit", error_r)) != STORE_OK)
		goto fail;
	return STORE_OK;

fail:
	store_rollback(s);
	for (i = 0; i < n; i++) {
		ls[i].result = STORE_LETTER_NEW;
		ls[i].letter_id = 0;
	}
	return rc;
}

/* A letter and its deliveries (without the sealed blob). */
int
store_letter_get(struct store *s, int64_t id, struct store_letter **lp,
    const char **error_r)
{
	struct store_letter	*l;
	struct store_delivery	*d;
	sqlite3_stmt		*st;
	size_t			 n;
	int			 rc;

	*lp = NULL;
	if ((rc = store_stmt(s, ST_LETTER_GET, &st, error_r)) != STORE_OK)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	if ((rc = store_fetch(s, st, "letter get", error_r)) != STORE_OK)
		return rc;
	l = xcalloc(1, sizeof(*l));
	l->id = sqlite3_column_int64(st, 0);
	l->practice_id = sqlite3_column_int64(st, 1);
	l->client_id = sqlite3_column_int64(st, 2);
	l->patient_id = sqlite3_column_int64(st, 3);
	l->author_id = sqlite3_column_int64(st, 4);
	l->priority = sqlite3_column_int(st, 5);
	l->channel = store_col_str(st, 6);
	l->state = store_col_str(st, 7);
	l->created = sqlite3_column_int64(st, 8);
	l->sealed_len = (size_t)sqlite3_column_int64(st, 9);
	if (store_col_blob(st, 10, l->sealed_sha256, 32, &n) == -1 ||
	    n != 32)
		memset(l->sealed_sha256, 0, 32);
	store_done(st);

	if ((rc = store_stmt(s, ST_LETTER_DELIVERIES, &st, error_r)) != 0)
		goto fail;
	sqlite3_bind_int64(st, 1, id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		l->deliveries = xreallocarray(l->deliveries,
		    l->ndeliveries + 1, sizeof(*l->deliveries));
		d = &l->deliveries[l->ndeliveries++];
		d->id = sqlite3_column_int64(st, 0);
		d->recipient = store_col_str(st, 1);
		d->address = store_col_str(st, 2);
		d->state = store_col_str(st, 3);
		d->attempts = sqlite3_column_int(st, 4);
		d->next_attempt = sqlite3_column_int64(st, 5);
		d->updated = sqlite3_column_int64(st, 6);
		d->last_error = store_col_str(st, 7);
	}
	if (rc != SQLITE_DONE) {
		rc = store_fail(s, rc, "deliveries get", error_r);
		store_done(st);
		goto fail;
	}
	store_done(st);
	*lp = l;
	return STORE_OK;

fail:
	store_letter_free(&l);
	return rc;
}

/* The sealed blob of a letter, malloc'd. */
int
store_letter_sealed(struct store *s, int64_t id, unsigned char **blob,
    size_t *len, const char **error_r)
{
	sqlite3_stmt	*st;
	const void	*p;
	int		 rc, n;

	*blob = NULL;
	*len = 0;
	if ((rc = store_stmt(s, ST_LETTER_SEALED, &st, error_r)) != 0)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	if ((rc = store_fetch(s, st, "letter sealed", error_r)) != STORE_OK)
		return rc;
	p = sqlite3_column_blob(st, 0);
	n = sqlite3_column_bytes(st, 0);
	if (p == NULL && n > 0) {
		store_done(st);
		*error_r = "letter sealed: out of memory";
		return STORE_BUSY;
	}
	*blob = xmalloc(n > 0 ? (size_t)n : 1);
	if (n > 0)
		memcpy(*blob, p, (size_t)n);
	*len = (size_t)n;
	store_done(st);
	return STORE_OK;
}

/* Free a letter and its deliveries; accepts NULL. */
void
store_letter_free(struct store_letter **lp)
{
	struct store_letter	*l = *lp;
	size_t			 i;

	if (l == NULL)
		return;
	for (i = 0; i < l->ndeliveries; i++) {
		free(l->deliveries[i].recipient);
		free(l->deliveries[i].address);
		free(l->deliveries[i].state);
		free(l->deliveries[i].last_error);
	}
	free(l->deliveries);
	free(l->channel);
	free(l->state);
	free(l);
	*lp = NULL;
}

/* Big-endian encodings for the audit hash input. */
static void
store_be32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

/* The hash of one audit row (see the header comment for the encoding). */
static void
store_audit_hash(const unsigned char *prev, int64_t ts, const char *actor,
    size_t actorlen, const char *action, size_t actionlen,
    const char *object, size_t objectlen, const char *outcome,
    size_t outcomelen, unsigned char *out)
{
	unsigned char	 tsb[8], l1[4], l2[4], l3[4], l4[4];
	uint64_t	 u = (uint64_t)ts;

	store_be32(tsb, (uint32_t)(u >> 32));
	store_be32(tsb + 4, (uint32_t)u);
	store_be32(l1, (uint32_t)actorlen);
	store_be32(l2, (uint32_t)actionlen);
	store_be32(l3, (uint32_t)objectlen);
	store_be32(l4, (uint32_t)outcomelen);
	hash_sha256_v(out,
	    (const void *)prev, (size_t)HASH_SHA256_LEN,
	    (const void *)tsb, sizeof(tsb),
	    (const void *)l1, sizeof(l1), (const void *)actor, actorlen,
	    (const void *)l2, sizeof(l2), (const void *)action, actionlen,
	    (const void *)l3, sizeof(l3), (const void *)object, objectlen,
	    (const void *)l4, sizeof(l4), (const void *)outcome, outcomelen,
	    (const void *)NULL);
}

/* The hash of the last audit row, or zeroes; call inside the write
 * transaction. */
static int
store_audit_last(struct store *s, unsigned char *prev, const char **error_r)
{
	sqlite3_stmt	*st;
	size_t		 n;
	int		 rc;

	if ((rc = store_stmt(s, ST_AUDIT_LAST, &st, error_r)) != STORE_OK)
		return rc;
	rc = store_fetch(s, st, "audit last", error_r);
	if (rc == STORE_NOTFOUND) {
		memset(prev, 0, HASH_SHA256_LEN);
		return STORE_OK;
	}
	if (rc != STORE_OK)
		return rc;
	rc = store_col_blob(st, 0, prev, HASH_SHA256_LEN, &n);
	store_done(st);
	if (rc == -1 || n != HASH_SHA256_LEN) {
		*error_r = "audit: last row has a malformed hash";
		return STORE_ERROR;
	}
	return STORE_OK;
}

/* Insert one audit row after prev and advance prev to its hash. */
static int
store_audit_append(struct store *s, int64_t ts, const char *actor,
    const char *action, const char *object, const char *outcome,
    unsigned char *prev, const char **error_r)
{
	sqlite3_stmt	*st;
	unsigned char	 h[HASH_SHA256_LEN];
	int		 rc;

	if ((rc = store_stmt(s, ST_AUDIT_INSERT, &st, error_r)) != STORE_OK)
		return rc;
	store_audit_hash(prev, ts, actor, strlen(actor), action,
	    strlen(action), object, strlen(object), outcome, strlen(outcome),
	    h);
	sqlite3_bind_int64(st, 1, ts);
	store_bind_text(st, 2, actor);
	store_bind_text(st, 3, action);
	store_bind_text(st, 4, object);
	store_bind_text(st, 5, outcome);
	sqlite3_bind_blob(st, 6, prev, HASH_SHA256_LEN, SQLITE_STATIC);
	sqlite3_bind_blob(st, 7, h, HASH_SHA256_LEN, SQLITE_STATIC);
	if ((rc = store_insert(s, ST_AUDIT_INSERT, "audit insert", NULL,
	    error_r)) != STORE_OK)
		return rc;
	memcpy(prev, h, HASH_SHA256_LEN);
	return STORE_OK;
}

/* Append one row to the audit chain (in the open transaction, or in one of
 * its own). */
int
store_audit(struct store *s, const char *actor, const char *action,
    const char *object, const char *outcome, const char **error_r)
{
	sqlite3_stmt	*st;
	unsigned char	 prev[HASH_SHA256_LEN];
	int		 own, rc;

	if (object == NULL)
		object = "";
	if (!store_text_ok(actor, 0) || !store_text_ok(action, 0) ||
	    !store_text_ok(object, 0) || !store_text_ok(outcome, 0)) {
		*error_r = "audit field missing or too long";
		return STORE_ERROR;
	}
	own = sqlite3_get_autocommit(s->db);
	if (own) {
		if ((rc = store_stmt(s, ST_BEGIN, &st, error_r)) != STORE_OK ||
		    (rc = store_run(s, st, "begin", error_r)) != STORE_OK)
			return rc;
	}
	if ((rc = store_audit_last(s, prev, error_r)) != STORE_OK ||
	    (rc = store_audit_append(s, util_time(), actor, action, object,
	    outcome, prev, error_r)) != STORE_OK)
		goto fail;
	if (own) {
		if ((rc = store_stmt(s, ST_COMMIT, &st, error_r)) != 0 ||
		    (rc = store_run(s, st, "commit", error_r)) != STORE_OK)
			goto fail;
	}
	return STORE_OK;

fail:
	if (own)
		store_rollback(s);
	return rc;
}

/*
 * Walk the chain in id order, checking each row's link to the previous
 * hash and its own hash.  A break returns STORE_ERROR with *bad_id the
 * first bad row; any other error leaves *bad_id 0.
 */
int
store_audit_verify(struct store *s, int64_t *nrows, int64_t *bad_id,
    const char **error_r)
{
	sqlite3_stmt		*st;
	unsigned char		 prev[HASH_SHA256_LEN], h[HASH_SHA256_LEN];
	const unsigned char	*ph, *hh;
	const char		*f[4];
	size_t			 fl[4];
	int64_t			 id;
	int			 i, rc;

	*nrows = 0;
	*bad_id = 0;
	memset(prev, 0, sizeof(prev));
	if ((rc = store_stmt(s, ST_AUDIT_WALK, &st, error_r)) != STORE_OK)
		return rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		id = sqlite3_column_int64(st, 0);
		for (i = 0; i < 4; i++) {
			f[i] = (const char *)sqlite3_column_text(st, 2 + i);
			fl[i] = (size_t)sqlite3_column_bytes(st, 2 + i);
		}
		ph = sqlite3_column_blob(st, 6);
		if (sqlite3_column_bytes(st, 6) != HASH_SHA256_LEN ||
		    memcmp(ph, prev, HASH_SHA256_LEN) != 0)
			goto broken;
		if (f[0] == NULL || f[1] == NULL || f[2] == NULL ||
		    f[3] == NULL)
			goto broken;
		store_audit_hash(prev, sqlite3_column_int64(st, 1), f[0],
		    fl[0], f[1], fl[1], f[2], fl[2], f[3], fl[3], h);
		hh = sqlite3_column_blob(st, 7);
		if (sqlite3_column_bytes(st, 7) != HASH_SHA256_LEN ||
		    memcmp(hh, h, HASH_SHA256_LEN) != 0)
			goto broken;
		memcpy(prev, h, sizeof(prev));
		(*nrows)++;
	}
	if (rc != SQLITE_DONE) {
		rc = store_fail(s, rc, "audit verify", error_r);
		store_done(st);
		return rc;
	}
	store_done(st);
	return STORE_OK;

broken:
	*bad_id = id;
	store_done(st);
	snprintf(store_errbuf, sizeof(store_errbuf),
	    "audit chain broken at row %lld", (long long)id);
	*error_r = store_errbuf;
	return STORE_ERROR;
}

/* Row counts. */
int
store_stats(struct store *s, struct store_stats *out, const char **error_r)
{
	sqlite3_stmt	*st;
	int		 rc;

	memset(out, 0, sizeof(*out));
	if ((rc = store_stmt(s, ST_STATS, &st, error_r)) != STORE_OK)
		return rc;
	if ((rc = store_fetch(s, st, "stats", error_r)) != STORE_OK)
		return rc == STORE_NOTFOUND ? STORE_ERROR : rc;
	out->practices = sqlite3_column_int64(st, 0);
	out->clinicians = sqlite3_column_int64(st, 1);
	out->patients = sqlite3_column_int64(st, 2);
	out->clients = sqlite3_column_int64(st, 3);
	out->letters = sqlite3_column_int64(st, 4);
	out->deliveries_queued = sqlite3_column_int64(st, 5);
	out->audit_rows = sqlite3_column_int64(st, 6);
	store_done(st);
	return STORE_OK;
}
