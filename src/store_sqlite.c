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
 * store_letter_free, store_audit, store_audit_verify, store_stats;
 * schema 2: store_practice_set, store_patient_set, store_client_set,
 * store_client_set_callback_token, store_client_get, store_address_shared,
 * store_deliveries_claim, store_claims_free, store_deliveries_update,
 * store_deliveries_recover, store_deliveries_warn, store_delivery_get,
 * store_delivery_free, store_letter_release, store_letter_cancel,
 * store_deliveries_retry, store_queue_stats, store_queue_list,
 * store_alerts_claim, store_alerts_free, store_alert_done,
 * store_callbacks_claim, store_callbacks_free, store_callback_done,
 * store_paper_list, store_paper_get, store_paper_printed,
 * store_paper_done; schema 3: store_clinician_set, store_replies_commit,
 * store_reply_get, store_reply_sealed, store_replies_list,
 * store_reply_file, store_reply_reject, store_delivery_by_message_id,
 * store_letter_close, store_reply_mails_claim, store_reply_mails_free,
 * store_reply_mail_done, store_reply_mails_recover, store_reply_stats;
 * for the tests (store_sqlite.h): store_sqlite_create, store_sqlite_plan.
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
 *
 * The queue (schema 2): every change of a delivery is one committed
 * transaction before anyone acts on it.  Claims walk deliveries_queue
 * (urgent first, then oldest) and deliveries_due (retries by due time)
 * with INDEXED BY, so a claim costs what it returns, whatever the backlog;
 * store_sqlite_plan lets the tests check the plans.  A transition is
 * checked against the state diagram of store.h before the transaction,
 * applied only from the states it names, and carries its side effects
 * (paper row, alert row, callback row, audit row) in the same transaction.
 * Queue calls made inside an admin's open transaction use a savepoint, so
 * a failure undoes only their own writes.
 *
 * Replies (schema 3) are committed in batches like letters: a duplicate
 * (practice, dedup) only answers with the first copy's id, and the ack
 * window is read inside the same transaction, after the batch's earlier
 * entries, so two replies to one thread in one batch queue one ack.
 */
#include "build.h"

#include <sys/stat.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "hash.h"
#include "log.h"
#include "mime.h"
#include "store.h"
#include "store_sqlite.h"
#include "util.h"

#define STORE_APPLICATION_ID	1397047628	/* 0x5345414c, "SEAL" */
#define STORE_BUSY_TIMEOUT_MS	5000
#define STORE_JOURNAL_LIMIT	(64 * 1024 * 1024)
#define STORE_TEXT_MAX		1024	/* bound on any text column we write */
#define STORE_IDEM_KEY_MAX	255
#define STORE_ERRBUF_LEN	256
#define STORE_LIFETIME		(72 * 3600)	/* default lifetime */
#define STORE_CLAIM_MAX		10000	/* rows of one claim */
#define STORE_REASON_MAX	199	/* alert and paper reasons, bytes */
#define STORE_RREASON_MAX	47	/* reply quarantine codes, bytes */
#define STORE_RMAILS_MAX	16	/* mails one reply causes */

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

	/*
	 * 2: the delivery queue, practice settings, alerts, callbacks and
	 * the paper queue.  ADD COLUMN keeps the migration cheap (no table
	 * copy of the sealed blobs); the state vocabularies of the old
	 * tables are enforced by triggers since a CHECK cannot be added.
	 * Existing deliveries get the default lifetime from their last
	 * update and their letter's priority.
	 */
	"ALTER TABLE practices ADD COLUMN content_policy TEXT NOT NULL\n"
	"    DEFAULT 'full' CHECK (content_policy IN ('full', 'notify'));\n"
	"ALTER TABLE practices ADD COLUMN failsafe_email TEXT;\n"
	"ALTER TABLE practices ADD COLUMN reply_domain TEXT;\n"
	"ALTER TABLE practices ADD COLUMN postal_address TEXT;\n"
	"ALTER TABLE practices ADD COLUMN phone TEXT;\n"
	"ALTER TABLE patients ADD COLUMN postal_address TEXT;\n"
	"ALTER TABLE patients ADD COLUMN shared_ok INTEGER NOT NULL\n"
	"    DEFAULT 0 CHECK (shared_ok IN (0, 1));\n"
	"ALTER TABLE clients ADD COLUMN callback_url TEXT;\n"
	"ALTER TABLE clients ADD COLUMN callback_token BLOB\n"
	"    CHECK (callback_token IS NULL OR length(callback_token) <= 256);\n"
	"ALTER TABLE deliveries ADD COLUMN priority INTEGER NOT NULL\n"
	"    DEFAULT 0 CHECK (priority >= 0);\n"
	"ALTER TABLE deliveries ADD COLUMN message_id TEXT;\n"
	"ALTER TABLE deliveries ADD COLUMN expires INTEGER NOT NULL\n"
	"    DEFAULT 0;\n"
	"ALTER TABLE deliveries ADD COLUMN warn_at INTEGER NOT NULL\n"
	"    DEFAULT 0;\n"
	"ALTER TABLE deliveries ADD COLUMN smtp_code INTEGER NOT NULL\n"
	"    DEFAULT 0;\n"
	"ALTER TABLE deliveries ADD COLUMN sent_at INTEGER NOT NULL\n"
	"    DEFAULT 0;\n"
	"ALTER TABLE deliveries ADD COLUMN released INTEGER NOT NULL\n"
	"    DEFAULT 0 CHECK (released IN (0, 1));\n"
	"UPDATE deliveries SET expires = updated + 259200,\n"
	"    priority = (SELECT priority FROM letters\n"
	"        WHERE letters.id = deliveries.letter_id);\n"
	"CREATE INDEX deliveries_queue ON deliveries\n"
	"    (state, priority DESC, next_attempt);\n"
	"CREATE INDEX deliveries_warn ON deliveries (warn_at)\n"
	"    WHERE warn_at > 0;\n"
	"CREATE UNIQUE INDEX deliveries_message_id ON deliveries (message_id)\n"
	"    WHERE message_id IS NOT NULL;\n"
	"CREATE TRIGGER deliveries_state_insert BEFORE INSERT ON deliveries\n"
	"WHEN NEW.state NOT IN ('queued', 'sending', 'sent', 'deferred',\n"
	"    'failed', 'expired', 'cancelled', 'held')\n"
	"BEGIN\n"
	"  SELECT RAISE(ABORT, 'unknown delivery state');\n"
	"END;\n"
	"CREATE TRIGGER deliveries_state_update BEFORE UPDATE OF state\n"
	"    ON deliveries\n"
	"WHEN NEW.state NOT IN ('queued', 'sending', 'sent', 'deferred',\n"
	"    'failed', 'expired', 'cancelled', 'held')\n"
	"BEGIN\n"
	"  SELECT RAISE(ABORT, 'unknown delivery state');\n"
	"END;\n"
	"CREATE TRIGGER letters_state_insert BEFORE INSERT ON letters\n"
	"WHEN NEW.state NOT IN ('accepted', 'sent', 'paper', 'held',\n"
	"    'cancelled')\n"
	"BEGIN\n"
	"  SELECT RAISE(ABORT, 'unknown letter state');\n"
	"END;\n"
	"CREATE TRIGGER letters_state_update BEFORE UPDATE OF state\n"
	"    ON letters\n"
	"WHEN NEW.state NOT IN ('accepted', 'sent', 'paper', 'held',\n"
	"    'cancelled')\n"
	"BEGIN\n"
	"  SELECT RAISE(ABORT, 'unknown letter state');\n"
	"END;\n"
	"CREATE TABLE paper (\n"
	"  letter_id INTEGER PRIMARY KEY REFERENCES letters (id),\n"
	"  practice_id INTEGER NOT NULL REFERENCES practices (id),\n"
	"  patient_id INTEGER NOT NULL,\n"
	"  reason TEXT NOT NULL,\n"
	"  created INTEGER NOT NULL,\n"
	"  printed INTEGER NOT NULL DEFAULT 0,\n"
	"  done INTEGER NOT NULL DEFAULT 0,\n"
	"  done_by TEXT,\n"
	"  FOREIGN KEY (practice_id, patient_id)\n"
	"      REFERENCES patients (practice_id, id)\n"
	");\n"
	"CREATE INDEX paper_open ON paper (done, created);\n"
	"CREATE TABLE alerts (\n"
	"  id INTEGER PRIMARY KEY,\n"
	"  practice_id INTEGER NOT NULL REFERENCES practices (id),\n"
	"  letter_id INTEGER REFERENCES letters (id),\n"
	"  delivery_id INTEGER REFERENCES deliveries (id),\n"
	"  kind TEXT NOT NULL CHECK (length(kind) BETWEEN 1 AND 15),\n"
	"  reason TEXT NOT NULL,\n"
	"  created INTEGER NOT NULL,\n"
	"  state TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued',\n"
	"      'sending', 'sent', 'failed', 'none')),\n"
	"  attempts INTEGER NOT NULL DEFAULT 0,\n"
	"  next_attempt INTEGER NOT NULL,\n"
	"  message_id TEXT,\n"
	"  last_error TEXT\n"
	");\n"
	"CREATE INDEX alerts_due ON alerts (state, next_attempt);\n"
	"CREATE TABLE callbacks (\n"
	"  id INTEGER PRIMARY KEY,\n"
	"  client_id INTEGER NOT NULL REFERENCES clients (id),\n"
	"  practice_id INTEGER NOT NULL REFERENCES practices (id),\n"
	"  delivery_id INTEGER NOT NULL REFERENCES deliveries (id),\n"
	"  payload TEXT NOT NULL,\n"
	"  state TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued',\n"
	"      'sending', 'sent', 'failed')),\n"
	"  attempts INTEGER NOT NULL DEFAULT 0,\n"
	"  next_attempt INTEGER NOT NULL,\n"
	"  created INTEGER NOT NULL,\n"
	"  http_status INTEGER NOT NULL DEFAULT 0\n"
	");\n"
	"CREATE INDEX callbacks_due ON callbacks (state, next_attempt);\n",

	/*
	 * 3: replies in.  Closing a thread is a row of letter_closed rather
	 * than a column of letters: ADD COLUMN would put it after the sealed
	 * blob, and every letter read would walk its overflow pages.  The
	 * reply mails are claimed per urgency through reply_mails_due, so a
	 * claim costs what it returns; reply_mails_window answers the ack
	 * window without a scan.
	 */
	"ALTER TABLE practices ADD COLUMN team_email TEXT;\n"
	"ALTER TABLE practices ADD COLUMN duty_email TEXT;\n"
	"CREATE TABLE letter_closed (\n"
	"  letter_id INTEGER PRIMARY KEY REFERENCES letters (id),\n"
	"  closed INTEGER NOT NULL CHECK (closed > 0),\n"
	"  closed_by TEXT NOT NULL\n"
	");\n"
	"CREATE TABLE replies (\n"
	"  id INTEGER PRIMARY KEY,\n"
	"  practice_id INTEGER NOT NULL REFERENCES practices (id),\n"
	"  letter_id INTEGER REFERENCES letters (id),\n"
	"  patient_id INTEGER,\n"
	"  clinician_id INTEGER,\n"
	"  state TEXT NOT NULL CHECK (state IN ('filed', 'quarantined',\n"
	"      'rejected')),\n"
	"  reason TEXT CHECK (reason IS NULL OR length(reason) <= 47),\n"
	"  detail TEXT,\n"
	"  sender TEXT NOT NULL CHECK (sender IN ('verified', 'unverified',\n"
	"      'mismatch', 'spoof')),\n"
	"  from_addr TEXT,\n"
	"  message_id TEXT,\n"
	"  source TEXT NOT NULL CHECK (source IN ('imap', 'lmtp')),\n"
	"  dedup BLOB NOT NULL CHECK (length(dedup) = 32),\n"
	"  urgent INTEGER NOT NULL DEFAULT 0 CHECK (urgent IN (0, 1)),\n"
	"  shared INTEGER NOT NULL DEFAULT 0 CHECK (shared IN (0, 1)),\n"
	"  received INTEGER NOT NULL,\n"
	"  created INTEGER NOT NULL,\n"
	"  decided INTEGER NOT NULL DEFAULT 0,\n"
	"  decided_by TEXT,\n"
	"  filed_seq INTEGER,\n"
	"  sealed_len INTEGER NOT NULL CHECK (sealed_len = length(sealed)),\n"
	"  sealed BLOB NOT NULL,\n"
	"  CHECK (state <> 'filed' OR letter_id IS NOT NULL),\n"
	"  CHECK (state = 'filed' OR reason IS NOT NULL),\n"
	"  CHECK ((state = 'filed') = (filed_seq IS NOT NULL)),\n"
	"  UNIQUE (practice_id, dedup),\n"
	"  FOREIGN KEY (practice_id, patient_id)\n"
	"      REFERENCES patients (practice_id, id),\n"
	"  FOREIGN KEY (practice_id, clinician_id)\n"
	"      REFERENCES clinicians (practice_id, id)\n"
	");\n"
	"CREATE INDEX replies_practice ON replies (practice_id, id);\n"
	"CREATE INDEX replies_letter ON replies (letter_id, id);\n"
	"CREATE INDEX replies_state ON replies (state, received);\n"
	"CREATE UNIQUE INDEX replies_filed_seq ON replies (filed_seq)\n"
	"    WHERE filed_seq IS NOT NULL;\n"
	"CREATE INDEX replies_feed ON replies (practice_id, filed_seq)\n"
	"    WHERE filed_seq IS NOT NULL;\n"
	"CREATE TABLE reply_mails (\n"
	"  id INTEGER PRIMARY KEY,\n"
	"  reply_id INTEGER NOT NULL REFERENCES replies (id),\n"
	"  practice_id INTEGER NOT NULL REFERENCES practices (id),\n"
	"  letter_id INTEGER REFERENCES letters (id),\n"
	"  patient_id INTEGER,\n"
	"  clinician_id INTEGER,\n"
	"  kind TEXT NOT NULL CHECK (kind IN ('forward', 'append', 'ack',\n"
	"      'redflag', 'contact', 'quarantine')),\n"
	"  to_addr TEXT COLLATE NOCASE,\n"
	"  state TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued',\n"
	"      'sending', 'sent', 'failed')),\n"
	"  urgent INTEGER NOT NULL DEFAULT 0 CHECK (urgent IN (0, 1)),\n"
	"  attempts INTEGER NOT NULL DEFAULT 0,\n"
	"  next_attempt INTEGER NOT NULL,\n"
	"  created INTEGER NOT NULL,\n"
	"  message_id TEXT,\n"
	"  last_error TEXT,\n"
	"  CHECK ((to_addr IS NULL) = (kind = 'append')),\n"
	"  FOREIGN KEY (practice_id, patient_id)\n"
	"      REFERENCES patients (practice_id, id),\n"
	"  FOREIGN KEY (practice_id, clinician_id)\n"
	"      REFERENCES clinicians (practice_id, id)\n"
	");\n"
	"CREATE INDEX reply_mails_due ON reply_mails\n"
	"    (state, urgent, next_attempt);\n"
	"CREATE INDEX reply_mails_window ON reply_mails\n"
	"    (kind, letter_id, to_addr, created);\n",
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
	/* schema 2 */
	ST_SAVEPOINT,
	ST_RELEASE,
	ST_ROLLBACK_TO,
	ST_CLIENT_GET,
	ST_CLIENT_TOKEN_SET,
	ST_ADDRESS_SHARED,
	ST_CLAIM_QUEUED,
	ST_CLAIM_DEFERRED,
	ST_CLAIM_READ,
	ST_CLAIM_MARK,
	ST_DELIVERY_STATE,
	ST_DELIVERY_APPLY,
	ST_DELIVERY_GET,
	ST_LETTER_HEAD,
	ST_LETTER_COUNTS,
	ST_LETTER_STATE_SET,
	ST_PAPER_INSERT,
	ST_ALERT_INSERT,
	ST_CALLBACK_INSERT,
	ST_CALLBACK_PAYLOAD,
	ST_RECOVER_DELIVERIES,
	ST_RECOVER_ALERTS,
	ST_RECOVER_CALLBACKS,
	ST_WARN_DUE,
	ST_WARN_CLEAR,
	ST_RELEASE_IDS,
	ST_RELEASE_ONE,
	ST_CANCEL_IDS,
	ST_CANCEL_ONE,
	ST_RETRY_LETTER,
	ST_RETRY_ALL,
	ST_RETRY_REASON,
	ST_QSTATS_STATES,
	ST_QSTATS_MORE,
	ST_QUEUE_LIST,
	ST_ALERTS_DUE,
	ST_ALERT_READ,
	ST_ALERT_MARK,
	ST_ALERT_NONE,
	ST_ALERT_DONE,
	ST_CALLBACKS_DUE,
	ST_CALLBACK_READ,
	ST_CALLBACK_MARK,
	ST_CALLBACK_DROP,
	ST_CALLBACK_DONE,
	ST_PAPER_LIST_OPEN,
	ST_PAPER_LIST_ALL,
	ST_PAPER_GET,
	ST_PAPER_PRINTED,
	ST_PAPER_DONE,
	/* schema 3 */
	ST_REPLY_DUP,
	ST_REPLY_INSERT,
	ST_RMAIL_INSERT,
	ST_RMAIL_WINDOW_THREAD,
	ST_RMAIL_WINDOW_ADDR,
	ST_REPLY_HEAD,
	ST_REPLY_GET,
	ST_REPLY_SEALED,
	ST_REPLY_FILE,
	ST_REPLY_REJECT,
	ST_DELIVERY_BY_MSGID,
	ST_LETTER_EXISTS,
	ST_LETTER_CLOSE,
	ST_RMAILS_DUE,
	ST_RMAIL_READ,
	ST_RMAIL_MARK,
	ST_RMAIL_DONE,
	ST_RECOVER_RMAILS,
	ST_REPLY_STATS,
	ST_MAX
};

#define PRACTICE_COLS \
	"id, name, domain, created, archive_pk, archive_wrapped, " \
	"content_policy, failsafe_email, reply_domain, postal_address, phone, " \
	"team_email, duty_email"
#define CLINICIAN_COLS \
	"id, practice_id, name, email, role, active, created, pk, wrapped"
#define PATIENT_COLS \
	"id, practice_id, name, email, verified, consent, age_recipient, " \
	"created, pk, wrapped, postal_address, shared_ok"
#define CLIENT_COLS \
	"id, practice_id, name, default_author_id, revoked, created, " \
	"callback_url, callback_token"
#define DELIVERY_COLS \
	"id, recipient, address, state, attempts, next_attempt, updated, " \
	"last_error, letter_id, practice_id, priority, message_id, expires, " \
	"warn_at, smtp_code, sent_at, released"
#define REPLY_COLS \
	"id, practice_id, letter_id, patient_id, clinician_id, state, " \
	"reason, detail, sender, from_addr, message_id, source, urgent, " \
	"shared, received, created, decided, decided_by, sealed_len, " \
	"filed_seq"
/* The next place in the filed replies' feed (GET /v1/replies). */
#define NEXT_FILED_SEQ \
	"(SELECT coalesce(max(filed_seq), 0) + 1 FROM replies " \
	"INDEXED BY replies_filed_seq WHERE filed_seq IS NOT NULL)"
#define PAPER_COLS \
	"letter_id, practice_id, patient_id, reason, created, printed, " \
	"done, done_by"
/* The open delivery states, as an SQL list. */
#define OPEN_STATES \
	"('queued', 'sending', 'deferred', 'held')"

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
	    "WHERE domain = lower(?1) OR lower(reply_domain) = lower(?1) "
	    "ORDER BY domain = lower(?1) DESC, id LIMIT 1",
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
	    "updated, priority, expires, warn_at) "
	    "VALUES (?1, ?2, 'patient', ?3, 'queued', 0, ?4, ?4, ?5, ?6, ?7)",
	[ST_IDEM_GET] = "SELECT req_hash, letter_id FROM idempotency "
	    "WHERE client_id = ?1 AND key = ?2",
	[ST_IDEM_INSERT] = "INSERT INTO idempotency (practice_id, client_id, "
	    "key, req_hash, letter_id, created) "
	    "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	[ST_LETTER_GET] = "SELECT id, practice_id, client_id, patient_id, "
	    "author_id, priority, channel, state, created, sealed_len, "
	    "sealed_sha256, CASE state WHEN 'paper' THEN (SELECT reason "
	    "FROM paper WHERE paper.letter_id = letters.id) END, "
	    "(SELECT closed FROM letter_closed "
	    "WHERE letter_closed.letter_id = letters.id) "
	    "FROM letters WHERE id = ?1",
	[ST_LETTER_DELIVERIES] = "SELECT " DELIVERY_COLS " FROM deliveries "
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
	    "(SELECT count(*) FROM audit)",

	/* schema 2 */
	[ST_SAVEPOINT] = "SAVEPOINT store",
	[ST_RELEASE] = "RELEASE store",
	[ST_ROLLBACK_TO] = "ROLLBACK TO store",
	[ST_CLIENT_GET] = "SELECT " CLIENT_COLS " FROM clients WHERE id = ?1",
	[ST_CLIENT_TOKEN_SET] = "UPDATE clients SET callback_token = ?2 "
	    "WHERE id = ?1",
	[ST_ADDRESS_SHARED] = "SELECT count(*) FROM patients "
	    "WHERE practice_id = ?1 AND id <> ?2 AND email = ?3 AND "
	    "(shared_ok = 0 OR coalesce((SELECT shared_ok FROM patients "
	    "WHERE id = ?2), 0) = 0)",
	/* Both claims walk an index in claim order and stop at the limit:
	 * the cost follows the number claimed, not the backlog. */
	[ST_CLAIM_QUEUED] = "SELECT id FROM deliveries "
	    "INDEXED BY deliveries_queue WHERE state = 'queued' AND "
	    "next_attempt <= ?1 ORDER BY priority DESC, next_attempt, id "
	    "LIMIT ?2",
	[ST_CLAIM_DEFERRED] = "SELECT id FROM deliveries "
	    "INDEXED BY deliveries_due WHERE state = 'deferred' AND "
	    "next_attempt <= ?1 ORDER BY next_attempt, id LIMIT ?2",
	[ST_CLAIM_READ] = "SELECT d.letter_id, d.practice_id, l.patient_id, "
	    "l.client_id, l.author_id, d.priority, d.attempts, d.released, "
	    "l.created, d.expires, d.address, d.message_id, p.domain, "
	    "l.sealed FROM deliveries d JOIN letters l ON l.id = d.letter_id "
	    "JOIN practices p ON p.id = d.practice_id WHERE d.id = ?1",
	[ST_CLAIM_MARK] = "UPDATE deliveries SET state = 'sending', "
	    "attempts = attempts + 1, message_id = ?2, updated = ?3 "
	    "WHERE id = ?1 AND state IN ('queued', 'deferred')",
	[ST_DELIVERY_STATE] = "SELECT state, letter_id FROM deliveries "
	    "WHERE id = ?1",
	[ST_DELIVERY_APPLY] = "UPDATE deliveries SET state = ?2, "
	    "next_attempt = CASE WHEN ?3 > 0 THEN ?3 ELSE next_attempt END, "
	    "smtp_code = ?4, last_error = ?5, updated = ?6, "
	    "sent_at = CASE WHEN ?2 = 'sent' THEN ?6 ELSE sent_at END, "
	    "address = coalesce(?7, address), "
	    "attempts = max(attempts - ?8, 0), "
	    "warn_at = CASE WHEN ?2 IN " OPEN_STATES " THEN warn_at ELSE 0 END "
	    "WHERE id = ?1",
	[ST_DELIVERY_GET] = "SELECT " DELIVERY_COLS " FROM deliveries "
	    "WHERE id = ?1",
	[ST_LETTER_HEAD] = "SELECT l.state, l.practice_id, l.patient_id, "
	    "l.client_id, p.email FROM letters l "
	    "JOIN patients p ON p.id = l.patient_id WHERE l.id = ?1",
	[ST_LETTER_COUNTS] = "SELECT state, count(*) FROM deliveries "
	    "WHERE letter_id = ?1 GROUP BY state",
	[ST_LETTER_STATE_SET] = "UPDATE letters SET state = ?2 WHERE id = ?1",
	[ST_PAPER_INSERT] = "INSERT INTO paper (letter_id, practice_id, "
	    "patient_id, reason, created) SELECT id, practice_id, patient_id, "
	    "?2, ?3 FROM letters WHERE id = ?1 "
	    "ON CONFLICT (letter_id) DO NOTHING",
	[ST_ALERT_INSERT] = "INSERT INTO alerts (practice_id, letter_id, "
	    "delivery_id, kind, reason, created, state, attempts, "
	    "next_attempt) SELECT id, ?2, ?3, ?4, ?5, ?6, "
	    "CASE WHEN failsafe_email IS NULL THEN 'none' ELSE 'queued' END, "
	    "0, ?6 FROM practices WHERE id = ?1",
	[ST_CALLBACK_INSERT] = "INSERT INTO callbacks (client_id, "
	    "practice_id, delivery_id, payload, state, attempts, "
	    "next_attempt, created, http_status) SELECT id, practice_id, ?2, "
	    "'', 'queued', 0, ?3, ?3, 0 FROM clients "
	    "WHERE id = ?1 AND callback_url IS NOT NULL",
	[ST_CALLBACK_PAYLOAD] = "UPDATE callbacks SET payload = ?2 "
	    "WHERE id = ?1",
	[ST_RECOVER_DELIVERIES] = "UPDATE deliveries SET state = 'queued', "
	    "updated = ?1 WHERE state = 'sending'",
	[ST_RECOVER_ALERTS] = "UPDATE alerts SET state = 'queued' "
	    "WHERE state = 'sending'",
	[ST_RECOVER_CALLBACKS] = "UPDATE callbacks SET state = 'queued' "
	    "WHERE state = 'sending'",
	[ST_WARN_DUE] = "SELECT id, letter_id, practice_id, last_error "
	    "FROM deliveries INDEXED BY deliveries_warn "
	    "WHERE warn_at > 0 AND warn_at <= ?1 AND state IN " OPEN_STATES
	    " ORDER BY warn_at, id LIMIT ?2",
	[ST_WARN_CLEAR] = "UPDATE deliveries SET warn_at = 0 WHERE id = ?1",
	[ST_RELEASE_IDS] = "SELECT id FROM deliveries "
	    "WHERE letter_id = ?1 AND state = 'held' ORDER BY id",
	[ST_RELEASE_ONE] = "UPDATE deliveries SET state = 'queued', "
	    "released = 1, address = ?2, next_attempt = ?3, updated = ?3 "
	    "WHERE id = ?1",
	[ST_CANCEL_IDS] = "SELECT id FROM deliveries WHERE letter_id = ?1 "
	    "AND state IN ('queued', 'deferred', 'held') ORDER BY id",
	[ST_CANCEL_ONE] = "UPDATE deliveries SET state = 'cancelled', "
	    "warn_at = 0, updated = ?2 WHERE id = ?1",
	[ST_RETRY_LETTER] = "UPDATE deliveries SET next_attempt = ?2, "
	    "updated = ?2 WHERE letter_id = ?1 AND state = 'deferred'",
	[ST_RETRY_ALL] = "UPDATE deliveries SET next_attempt = ?1, "
	    "updated = ?1 WHERE state = 'deferred'",
	[ST_RETRY_REASON] = "UPDATE deliveries SET next_attempt = ?1, "
	    "updated = ?1 WHERE state = 'deferred' AND "
	    "substr(last_error, 1, length(?2)) = ?2",
	[ST_QSTATS_STATES] = "SELECT state, count(*) FROM deliveries "
	    "GROUP BY state",
	[ST_QSTATS_MORE] = "SELECT (SELECT min(l.created) FROM deliveries d "
	    "JOIN letters l ON l.id = d.letter_id "
	    "WHERE d.state IN " OPEN_STATES "), "
	    "(SELECT count(*) FROM paper WHERE done = 0), "
	    "(SELECT count(*) FROM alerts WHERE state = 'queued'), "
	    "(SELECT count(*) FROM callbacks WHERE state = 'queued'), "
	    "(SELECT min(next_attempt) FROM deliveries "
	    "WHERE state = 'queued'), "
	    "(SELECT min(next_attempt) FROM deliveries "
	    "WHERE state = 'deferred')",
	[ST_QUEUE_LIST] = "SELECT d.id, d.letter_id, l.patient_id, d.state, "
	    "d.attempts, d.next_attempt, l.created, d.last_error "
	    "FROM deliveries d JOIN letters l ON l.id = d.letter_id "
	    "WHERE d.state IN (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) "
	    "ORDER BY d.id LIMIT ?9",
	[ST_ALERTS_DUE] = "SELECT id FROM alerts INDEXED BY alerts_due "
	    "WHERE state = 'queued' AND next_attempt <= ?1 "
	    "ORDER BY next_attempt, id LIMIT ?2",
	[ST_ALERT_READ] = "SELECT a.practice_id, a.letter_id, "
	    "a.delivery_id, l.patient_id, a.kind, a.reason, a.created, "
	    "a.attempts, p.failsafe_email, a.message_id, p.domain "
	    "FROM alerts a JOIN practices p ON p.id = a.practice_id "
	    "LEFT JOIN letters l ON l.id = a.letter_id WHERE a.id = ?1",
	[ST_ALERT_MARK] = "UPDATE alerts SET state = 'sending', "
	    "attempts = attempts + 1, message_id = ?2 "
	    "WHERE id = ?1 AND state = 'queued'",
	[ST_ALERT_NONE] = "UPDATE alerts SET state = 'none' WHERE id = ?1",
	[ST_ALERT_DONE] = "UPDATE alerts SET state = ?2, "
	    "next_attempt = CASE WHEN ?2 = 'queued' THEN ?3 "
	    "ELSE next_attempt END, last_error = ?4 "
	    "WHERE id = ?1 AND state = 'sending'",
	[ST_CALLBACKS_DUE] = "SELECT id FROM callbacks "
	    "INDEXED BY callbacks_due WHERE state = 'queued' AND "
	    "next_attempt <= ?1 ORDER BY next_attempt, id LIMIT ?2",
	[ST_CALLBACK_READ] = "SELECT cb.client_id, cb.delivery_id, "
	    "cb.attempts, c.callback_url, c.revoked, cb.payload, "
	    "c.callback_token FROM callbacks cb "
	    "JOIN clients c ON c.id = cb.client_id WHERE cb.id = ?1",
	[ST_CALLBACK_MARK] = "UPDATE callbacks SET state = 'sending', "
	    "attempts = attempts + 1 WHERE id = ?1 AND state = 'queued'",
	[ST_CALLBACK_DROP] = "UPDATE callbacks SET state = 'failed' "
	    "WHERE id = ?1",
	[ST_CALLBACK_DONE] = "UPDATE callbacks SET state = ?2, "
	    "next_attempt = CASE WHEN ?2 = 'queued' THEN ?3 "
	    "ELSE next_attempt END, http_status = ?4 "
	    "WHERE id = ?1 AND state = 'sending'",
	[ST_PAPER_LIST_OPEN] = "SELECT " PAPER_COLS " FROM paper "
	    "WHERE done = 0 AND (?1 = 0 OR practice_id = ?1) "
	    "ORDER BY created, letter_id",
	[ST_PAPER_LIST_ALL] = "SELECT " PAPER_COLS " FROM paper "
	    "WHERE ?1 = 0 OR practice_id = ?1 ORDER BY created, letter_id",
	[ST_PAPER_GET] = "SELECT " PAPER_COLS " FROM paper "
	    "WHERE letter_id = ?1",
	[ST_PAPER_PRINTED] = "UPDATE paper SET printed = CASE WHEN "
	    "printed = 0 THEN ?2 ELSE printed END WHERE letter_id = ?1",
	[ST_PAPER_DONE] = "UPDATE paper SET done = ?2, done_by = ?3 "
	    "WHERE letter_id = ?1 AND done = 0",

	/* schema 3 */
	[ST_REPLY_DUP] = "SELECT id FROM replies "
	    "WHERE practice_id = ?1 AND dedup = ?2",
	[ST_REPLY_INSERT] = "INSERT INTO replies (practice_id, letter_id, "
	    "patient_id, clinician_id, state, reason, detail, sender, "
	    "from_addr, message_id, source, dedup, urgent, shared, received, "
	    "created, sealed_len, sealed, filed_seq) VALUES (?1, ?2, ?3, ?4, "
	    "?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, "
	    "CASE WHEN ?5 = 'filed' THEN " NEXT_FILED_SEQ " END)",
	[ST_RMAIL_INSERT] = "INSERT INTO reply_mails (reply_id, practice_id, "
	    "letter_id, patient_id, clinician_id, kind, to_addr, state, "
	    "urgent, attempts, next_attempt, created) SELECT id, practice_id, "
	    "letter_id, patient_id, ?2, ?3, ?4, 'queued', urgent, 0, ?5, ?5 "
	    "FROM replies WHERE id = ?1",
	/* The ack window: a mail of the kind for the thread, or without a
	 * thread for the address, created after ?3. */
	[ST_RMAIL_WINDOW_THREAD] = "SELECT 1 FROM reply_mails "
	    "INDEXED BY reply_mails_window WHERE kind = ?1 AND "
	    "letter_id = ?2 AND created > ?3 LIMIT 1",
	[ST_RMAIL_WINDOW_ADDR] = "SELECT 1 FROM reply_mails "
	    "INDEXED BY reply_mails_window WHERE kind = ?1 AND "
	    "letter_id IS NULL AND to_addr = ?2 AND created > ?3 AND "
	    "practice_id = ?4 LIMIT 1",
	[ST_REPLY_HEAD] = "SELECT state, practice_id FROM replies "
	    "WHERE id = ?1",
	[ST_REPLY_GET] = "SELECT " REPLY_COLS " FROM replies WHERE id = ?1",
	[ST_REPLY_SEALED] = "SELECT sealed FROM replies WHERE id = ?1",
	[ST_REPLY_FILE] = "UPDATE replies SET state = 'filed', "
	    "letter_id = ?2, patient_id = ?3, clinician_id = ?4, "
	    "decided = ?5, decided_by = ?6, sealed_len = ?7, sealed = ?8, "
	    "filed_seq = " NEXT_FILED_SEQ " "
	    "WHERE id = ?1 AND state = 'quarantined'",
	[ST_REPLY_REJECT] = "UPDATE replies SET state = 'rejected', "
	    "reason = ?2, decided = ?3, decided_by = ?4 "
	    "WHERE id = ?1 AND state = 'quarantined'",
	[ST_DELIVERY_BY_MSGID] = "SELECT d.id, d.letter_id, l.patient_id "
	    "FROM deliveries d INDEXED BY deliveries_message_id "
	    "JOIN letters l ON l.id = d.letter_id WHERE d.message_id = ?1",
	[ST_LETTER_EXISTS] = "SELECT id FROM letters WHERE id = ?1",
	[ST_LETTER_CLOSE] = "INSERT INTO letter_closed (letter_id, closed, "
	    "closed_by) VALUES (?1, ?2, ?3) "
	    "ON CONFLICT (letter_id) DO NOTHING",
	/* Walked once per urgency (?3), in due order, up to the limit. */
	[ST_RMAILS_DUE] = "SELECT id FROM reply_mails "
	    "INDEXED BY reply_mails_due WHERE state = 'queued' AND "
	    "urgent = ?3 AND next_attempt <= ?1 ORDER BY next_attempt, id "
	    "LIMIT ?2",
	[ST_RMAIL_READ] = "SELECT m.reply_id, m.practice_id, m.letter_id, "
	    "m.patient_id, m.clinician_id, m.kind, m.to_addr, m.attempts, "
	    "m.urgent, m.message_id, r.message_id, r.sender, r.reason, "
	    "coalesce(p.reply_domain, p.domain), "
	    "CASE WHEN m.kind IN ('forward', 'append') THEN r.sealed END "
	    "FROM reply_mails m JOIN replies r ON r.id = m.reply_id "
	    "JOIN practices p ON p.id = m.practice_id WHERE m.id = ?1",
	[ST_RMAIL_MARK] = "UPDATE reply_mails SET state = 'sending', "
	    "attempts = attempts + 1, message_id = ?2 "
	    "WHERE id = ?1 AND state = 'queued'",
	[ST_RMAIL_DONE] = "UPDATE reply_mails SET state = ?2, "
	    "next_attempt = CASE WHEN ?2 = 'queued' THEN ?3 "
	    "ELSE next_attempt END, last_error = ?4 "
	    "WHERE id = ?1 AND state = 'sending'",
	[ST_RECOVER_RMAILS] = "UPDATE reply_mails SET state = 'queued' "
	    "WHERE state = 'sending'",
	[ST_REPLY_STATS] = "SELECT "
	    "(SELECT count(*) FROM replies WHERE state = 'filed'), "
	    "(SELECT count(*) FROM replies WHERE state = 'quarantined'), "
	    "(SELECT count(*) FROM replies WHERE state = 'rejected'), "
	    "(SELECT count(*) FROM reply_mails WHERE state = 'queued'), "
	    "(SELECT count(*) FROM reply_mails WHERE state = 'failed'), "
	    "(SELECT min(received) FROM replies WHERE state = 'quarantined')"
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
static int	 store_open_at(const char *, int, int, struct store **,
		    const char **);
static int	 store_migrate(struct store *, int, const char **);
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
static void	 store_read_client(sqlite3_stmt *, struct store_client *);
static int	 store_client_query(struct store *, enum store_stmt, int64_t,
		    const unsigned char *, struct store_client **,
		    const char **);
static void	 store_read_delivery(sqlite3_stmt *,
		    struct store_delivery *);
static void	 store_delivery_clear(struct store_delivery *);
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

struct store_head;
static int	 store_tx_begin(struct store *, int *, const char **);
static int	 store_tx_end(struct store *, int, int, const char **);
static int	 store_admin_begin(struct store *, const char *, int *,
		    int64_t *, const char **);
static void	 store_clip(char *, size_t, const char *);
static int	 store_dstate_known(const char *, size_t);
static int	 store_states_parse(const char *, char [][16], size_t,
		    size_t *);
static int	 store_dstate_final(const char *);
static int	 store_edge_ok(const char *, const char *);
static int	 store_ids(struct store *, enum store_stmt, int64_t, int64_t,
		    int64_t, int64_t **, size_t *, const char **);
static char	*store_json_str(const char *);
static char	*store_callback_json(int64_t,
		    const struct store_transition *, int64_t, int64_t);
static int	 store_letter_head(struct store *, int64_t,
		    struct store_head *, const char **);
static int	 store_letter_restate(struct store *, int64_t, const char *,
		    int, const char **);
static int	 store_alert_add(struct store *, int64_t, int64_t, int64_t,
		    const char *, const char *, int64_t, const char **);
static const char *store_text_check(const char *, int);
static int	 store_set_field(struct store *, const char *, int64_t,
		    const char *, const char *, const char **);
static int	 store_claim_one(struct store *, int64_t, int64_t,
		    struct store_claim *, const char **);
static const char *store_transition_check(const struct store_transition *);
static int	 store_transition_one(struct store *,
		    struct store_transition *, int64_t, unsigned char *,
		    const char **);
static int	 store_letter_admin(struct store *, int64_t, const char *,
		    int, int64_t *, const char **);
struct store_outbox;
static int	 store_outbox_claim(struct store *,
		    const struct store_outbox *, int64_t, size_t, void **,
		    size_t *, const char **);
static int	 store_outbox_check(const struct store_outbox *, const char *,
		    int64_t, const char **);
static int	 store_outbox_close(struct store *,
		    const struct store_outbox *, sqlite3_stmt *,
		    const char **);
static int	 store_outbox_done(struct store *,
		    const struct store_outbox *, int64_t, const char *,
		    int64_t, const char *, const char **);
static int	 store_alert_one(struct store *, int64_t, void *, int *,
		    const char **);
static void	 store_alerts_release(void *, size_t);
static int	 store_callback_one(struct store *, int64_t, void *, int *,
		    const char **);
static void	 store_callbacks_release(void *, size_t);
static void	 store_read_paper(sqlite3_stmt *, struct store_paper *);
static int	 store_paper_mark(struct store *, int64_t, const char *, int,
		    const char **);
static int	 store_rm_kind_known(const char *);
static const char *store_rmails_check(const struct store_reply_mail_new *,
		    size_t);
static const char *store_reply_check(const struct store_reply_new *);
static int	 store_thread_of(struct store *, int64_t, int64_t *,
		    int64_t *, const char **);
static int	 store_rmail_recent(struct store *, const char *, int64_t,
		    int64_t, const char *, int64_t, int *, const char **);
static int	 store_rmails_add(struct store *, int64_t, int64_t, int64_t,
		    const struct store_reply_mail_new *, size_t, int64_t,
		    int64_t, int *, const char **);
static int	 store_reply_one(struct store *, struct store_reply_new *,
		    int64_t, unsigned char *, const char **);
static void	 store_read_reply(sqlite3_stmt *, struct store_reply *);
static int	 store_reply_pending(struct store *, int64_t, int64_t *,
		    const char **);
static int	 store_rmail_one(struct store *, int64_t, void *, int *,
		    const char **);
static void	 store_rmails_release(void *, size_t);

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

/* Bring the schema to version target (STORE_SCHEMA_VERSION but in
 * tests), one transaction for all. */
static int
store_migrate(struct store *s, int target, const char **error_r)
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
	if (v >= target) {
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
	for (; v < target; v++) {
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
	return store_open_at(path, flags, STORE_SCHEMA_VERSION, sp, error_r);
}

/* Create a database with only the first version migrations (tests). */
int
store_sqlite_create(const char *path, int version, const char **error_r)
{
	struct store	*s = NULL;
	int		 rc;

	if (version < 1 || version > STORE_SCHEMA_VERSION) {
		*error_r = "no such schema version";
		return STORE_ERROR;
	}
	rc = store_open_at(path, STORE_CREATE, version, &s, error_r);
	store_close(&s);
	return rc;
}

/* Open a database and migrate it to version target. */
static int
store_open_at(const char *path, int flags, int target, struct store **sp,
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
	    (rc = store_migrate(s, target, error_r)) != STORE_OK) {
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
	p->content_policy = store_col_str(st, 6);
	p->failsafe_email = store_col_str(st, 7);
	p->reply_domain = store_col_str(st, 8);
	p->postal_address = store_col_str(st, 9);
	p->phone = store_col_str(st, 10);
	p->team_email = store_col_str(st, 11);
	p->duty_email = store_col_str(st, 12);
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
	p->postal_address = store_col_str(st, 10);
	p->shared_ok = sqlite3_column_int(st, 11);
	store_done(st);
	*pp = p;
	return STORE_OK;
}

/* Fill a client from a row of CLIENT_COLS. */
static void
store_read_client(sqlite3_stmt *st, struct store_client *c)
{
	const void	*p;
	int		 n;

	c->id = sqlite3_column_int64(st, 0);
	c->practice_id = sqlite3_column_int64(st, 1);
	c->name = store_col_str(st, 2);
	c->default_author_id = sqlite3_column_int64(st, 3);	/* NULL: 0 */
	c->revoked = sqlite3_column_int(st, 4);
	c->created = sqlite3_column_int64(st, 5);
	c->callback_url = store_col_str(st, 6);
	p = sqlite3_column_blob(st, 7);
	n = sqlite3_column_bytes(st, 7);
	if (p != NULL && n > 0) {
		c->callback_token = xmemdup(p, (size_t)n);
		c->callback_token_len = (size_t)n;
	}
}

/* Look a client up by id or (hash not NULL) by its token's SHA-256. */
static int
store_client_query(struct store *s, enum store_stmt which, int64_t id,
    const unsigned char *hash, struct store_client **cp,
    const char **error_r)
{
	sqlite3_stmt	*st;
	int		 rc;

	*cp = NULL;
	if ((rc = store_stmt(s, which, &st, error_r)) != STORE_OK)
		return rc;
	if (hash != NULL)
		sqlite3_bind_blob(st, 1, hash, 32, SQLITE_STATIC);
	else
		sqlite3_bind_int64(st, 1, id);
	if ((rc = store_fetch(s, st, "client get", error_r)) != STORE_OK)
		return rc;
	*cp = xcalloc(1, sizeof(**cp));
	store_read_client(st, *cp);
	store_done(st);
	return STORE_OK;
}

/* The client holding a token, by the token's SHA-256. */
int
store_client_by_token(struct store *s, const unsigned char hash[32],
    struct store_client **cp, const char **error_r)
{
	return store_client_query(s, ST_CLIENT_BY_TOKEN, 0, hash, cp,
	    error_r);
}

/* A client by id, with its callback settings. */
int
store_client_get(struct store *s, int64_t id, struct store_client **cp,
    const char **error_r)
{
	return store_client_query(s, ST_CLIENT_GET, id, NULL, cp, error_r);
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
	free(p->content_policy);
	free(p->failsafe_email);
	free(p->reply_domain);
	free(p->postal_address);
	free(p->phone);
	free(p->team_email);
	free(p->duty_email);
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
	free(p->postal_address);
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
	free(c->callback_url);
	if (c->callback_token != NULL) {
		hash_wipe(c->callback_token, c->callback_token_len);
		free(c->callback_token);
	}
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
	sqlite3_bind_int(st, 5, l->priority);
	sqlite3_bind_int64(st, 6, l->expires != 0 ? l->expires :
	    now + STORE_LIFETIME);
	sqlite3_bind_int64(st, 7, l->warn_at);
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
		if (l->expires < 0 || l->warn_at < 0) {
			*error_r = "letter with a negative expiry or warning "
			    "time";
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
	l->paper_reason = store_col_str(st, 11);
	l->closed = sqlite3_column_int64(st, 12);	/* NULL: 0, open */
	store_done(st);

	if ((rc = store_stmt(s, ST_LETTER_DELIVERIES, &st, error_r)) != 0)
		goto fail;
	sqlite3_bind_int64(st, 1, id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		l->deliveries = xreallocarray(l->deliveries,
		    l->ndeliveries + 1, sizeof(*l->deliveries));
		d = &l->deliveries[l->ndeliveries++];
		store_read_delivery(st, d);
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

/* Fill a delivery from a row of DELIVERY_COLS. */
static void
store_read_delivery(sqlite3_stmt *st, struct store_delivery *d)
{
	d->id = sqlite3_column_int64(st, 0);
	d->recipient = store_col_str(st, 1);
	d->address = store_col_str(st, 2);
	d->state = store_col_str(st, 3);
	d->attempts = sqlite3_column_int(st, 4);
	d->next_attempt = sqlite3_column_int64(st, 5);
	d->updated = sqlite3_column_int64(st, 6);
	d->last_error = store_col_str(st, 7);
	d->letter_id = sqlite3_column_int64(st, 8);
	d->practice_id = sqlite3_column_int64(st, 9);
	d->priority = sqlite3_column_int(st, 10);
	d->message_id = store_col_str(st, 11);
	d->expires = sqlite3_column_int64(st, 12);
	d->warn_at = sqlite3_column_int64(st, 13);
	d->smtp_code = sqlite3_column_int(st, 14);
	d->sent_at = sqlite3_column_int64(st, 15);
	d->released = sqlite3_column_int(st, 16);
}

/* Free what a delivery points to. */
static void
store_delivery_clear(struct store_delivery *d)
{
	free(d->recipient);
	free(d->address);
	free(d->state);
	free(d->last_error);
	free(d->message_id);
	memset(d, 0, sizeof(*d));
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
	for (i = 0; i < l->ndeliveries; i++)
		store_delivery_clear(&l->deliveries[i]);
	free(l->deliveries);
	free(l->channel);
	free(l->state);
	free(l->paper_reason);
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

/* --- schema 2: helpers ------------------------------------------------ */

/*
 * Open a write transaction: BEGIN IMMEDIATE when none is open, else a
 * savepoint inside the caller's (an admin command doing several steps),
 * so a failure here undoes only this call's writes.
 */
static int
store_tx_begin(struct store *s, int *own, const char **error_r)
{
	sqlite3_stmt	*st;
	int		 rc;

	*own = sqlite3_get_autocommit(s->db);
	if ((rc = store_stmt(s, *own ? ST_BEGIN : ST_SAVEPOINT, &st,
	    error_r)) != STORE_OK)
		return rc;
	return store_run(s, st, "begin", error_r);
}

/* End what store_tx_begin opened: commit if rc is STORE_OK, else undo
 * everything; returns the final code (*error_r keeps the first reason). */
static int
store_tx_end(struct store *s, int own, int rc, const char **error_r)
{
	sqlite3_stmt	*st;
	const char	*e;

	if (rc == STORE_OK) {
		if ((rc = store_stmt(s, own ? ST_COMMIT : ST_RELEASE, &st,
		    error_r)) == STORE_OK &&
		    (rc = store_run(s, st, "commit", error_r)) == STORE_OK)
			return STORE_OK;
	}
	if (own) {
		store_rollback(s);
		return rc;
	}
	if (store_stmt(s, ST_ROLLBACK_TO, &st, &e) != STORE_OK ||
	    store_run(s, st, "rollback", &e) != STORE_OK ||
	    store_stmt(s, ST_RELEASE, &st, &e) != STORE_OK ||
	    store_run(s, st, "release", &e) != STORE_OK)
		log_warnx("store: %s", e);
	return rc;
}

/*
 * Begin an admin's action (release, cancel, paper): the actor goes into
 * the audit rows, so it is checked first; then the transaction and the
 * time every row of the action carries.
 */
static int
store_admin_begin(struct store *s, const char *actor, int *own,
    int64_t *now, const char **error_r)
{
	int	 rc;

	if (!store_text_ok(actor, 0)) {
		*error_r = "actor missing or too long";
		return STORE_ERROR;
	}
	if ((rc = store_tx_begin(s, own, error_r)) != STORE_OK)
		return rc;
	*now = util_time();
	return STORE_OK;
}

/* Copy at most size - 1 bytes, never cutting a UTF-8 sequence. */
static void
store_clip(char *dst, size_t size, const char *src)
{
	size_t	 n;

	if (src == NULL) {
		*dst = '\0';
		return;
	}
	n = strlen(src);
	if (n >= size) {
		n = size - 1;
		/* Back up over continuation bytes to a sequence start. */
		while (n > 0 && ((unsigned char)src[n] & 0xc0) == 0x80)
			n--;
	}
	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* Is [p, p + len) one of the delivery states? */
static int
store_dstate_known(const char *p, size_t len)
{
	static const char *const states[] = {
		STORE_DS_QUEUED, STORE_DS_SENDING, STORE_DS_SENT,
		STORE_DS_DEFERRED, STORE_DS_FAILED, STORE_DS_EXPIRED,
		STORE_DS_CANCELLED, STORE_DS_HELD
	};
	size_t	 i;

	for (i = 0; i < nitems(states); i++) {
		if (strlen(states[i]) == len && memcmp(states[i], p, len) == 0)
			return 1;
	}
	return 0;
}

/*
 * Split a '|'-separated state list into at most max known states;
 * -1 if empty, unknown or too many.
 */
static int
store_states_parse(const char *list, char out[][16], size_t max, size_t *n)
{
	const char	*p, *bar;
	size_t		 len;

	*n = 0;
	if (list == NULL || *list == '\0')
		return -1;
	for (p = list;; p = bar + 1) {
		bar = strchr(p, '|');
		len = bar != NULL ? (size_t)(bar - p) : strlen(p);
		if (*n == max || !store_dstate_known(p, len))
			return -1;
		memcpy(out[*n], p, len);
		out[(*n)++][len] = '\0';
		if (bar == NULL)
			return 0;
	}
}

/* States a delivery never leaves. */
static int
store_dstate_final(const char *st)
{
	return strcmp(st, STORE_DS_FAILED) == 0 ||
	    strcmp(st, STORE_DS_EXPIRED) == 0 ||
	    strcmp(st, STORE_DS_CANCELLED) == 0;
}

/*
 * Is from -> to an edge of the state diagram (store.h)?  "sending" is
 * entered only by a claim; final states are never left; "sent" only
 * becomes "failed" (a bounce); "held" leaves only for "queued" or an end.
 * A result may also hold a row being sent (the misrouting guard runs on
 * the claim) or give it back to "queued".
 */
static int
store_edge_ok(const char *from, const char *to)
{
	if (strcmp(to, STORE_DS_SENDING) == 0 || store_dstate_final(from))
		return 0;
	if (strcmp(from, STORE_DS_SENT) == 0)
		return strcmp(to, STORE_DS_FAILED) == 0;
	if (strcmp(to, STORE_DS_SENT) == 0)
		return strcmp(from, STORE_DS_SENDING) == 0;
	if (strcmp(from, STORE_DS_HELD) == 0)
		return strcmp(to, STORE_DS_QUEUED) == 0 ||
		    store_dstate_final(to);
	if (strcmp(from, to) == 0)
		return strcmp(to, STORE_DS_DEFERRED) == 0;
	return 1;
}

/*
 * Run a SELECT whose first column is an id, binding ?1 = a and (if the
 * statement has them) ?2 = b, ?3 = c; append the ids to *ids.
 */
static int
store_ids(struct store *s, enum store_stmt which, int64_t a, int64_t b,
    int64_t c, int64_t **ids, size_t *n, const char **error_r)
{
	sqlite3_stmt	*st;
	int		 rc;

	if ((rc = store_stmt(s, which, &st, error_r)) != STORE_OK)
		return rc;
	sqlite3_bind_int64(st, 1, a);
	if (sqlite3_bind_parameter_count(st) >= 2)
		sqlite3_bind_int64(st, 2, b);
	if (sqlite3_bind_parameter_count(st) >= 3)
		sqlite3_bind_int64(st, 3, c);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		*ids = xreallocarray(*ids, *n + 1, sizeof(**ids));
		(*ids)[(*n)++] = sqlite3_column_int64(st, 0);
	}
	if (rc != SQLITE_DONE) {
		rc = store_fail(s, rc, "select", error_r);
		store_done(st);
		return rc;
	}
	store_done(st);
	return STORE_OK;
}

/* A JSON string literal: ASCII kept, control bytes escaped, any other
 * byte (the reasons are ASCII by contract) replaced by '?'. */
static char *
store_json_str(const char *p)
{
	char	*out, *o;

	out = o = xmalloc(strlen(p) * 6 + 3);
	*o++ = '"';
	for (; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;

		if (c == '"' || c == '\\') {
			*o++ = '\\';
			*o++ = (char)c;
		} else if (c < 0x20 || c == 0x7f)
			o += snprintf(o, 7, "\\u%04x", c);
		else if (c >= 0x80)
			*o++ = '?';
		else
			*o++ = (char)c;
	}
	*o++ = '"';
	*o = '\0';
	return out;
}

/* The webhook body of a delivery event: ids, state, code, reason, time;
 * never content.  "id" (the callback row) is stable across retries. */
static char *
store_callback_json(int64_t id, const struct store_transition *t,
    int64_t letter_id, int64_t now)
{
	struct tm	 tm;
	time_t		 tt = (time_t)now;
	char		 when[32], code[16], reason[STORE_REASON_MAX + 1];
	char		*r, *out;

	if (gmtime_r(&tt, &tm) == NULL ||
	    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		strlcpy_sp(when, "1970-01-01T00:00:00Z", sizeof(when));
	if (t->smtp_code != 0)
		snprintf(code, sizeof(code), "%d", t->smtp_code);
	else
		strlcpy_sp(code, "null", sizeof(code));
	if (t->error != NULL) {
		store_clip(reason, sizeof(reason), t->error);
		r = store_json_str(reason);
	} else
		r = xstrdup("null");
	/* t->to was checked against the state list: no escaping needed. */
	xasprintf(&out, "{\"id\":%lld,\"delivery_id\":%lld,\"letter_id\":%lld,"
	    "\"state\":\"%s\",\"smtp_code\":%s,\"reason\":%s,\"time\":\"%s\"}",
	    (long long)id, (long long)t->delivery_id, (long long)letter_id,
	    t->to, code, r, when);
	free(r);
	return out;
}

/* The practice, patient, client, state and the patient's address now of
 * a letter. */
struct store_head {
	char		 state[16];
	int64_t		 practice_id, patient_id, client_id;
	char		*email;
};

static int
store_letter_head(struct store *s, int64_t letter_id, struct store_head *h,
    const char **error_r)
{
	sqlite3_stmt	*st;
	int		 rc;

	memset(h, 0, sizeof(*h));
	if ((rc = store_stmt(s, ST_LETTER_HEAD, &st, error_r)) != STORE_OK)
		return rc;
	sqlite3_bind_int64(st, 1, letter_id);
	if ((rc = store_fetch(s, st, "letter get", error_r)) != STORE_OK)
		return rc;
	store_clip(h->state, sizeof(h->state),
	    (const char *)sqlite3_column_text(st, 0));
	h->practice_id = sqlite3_column_int64(st, 1);
	h->patient_id = sqlite3_column_int64(st, 2);
	h->client_id = sqlite3_column_int64(st, 3);
	h->email = store_col_str(st, 4);
	store_done(st);
	return STORE_OK;
}

/*
 * Derive a letter's state from its deliveries (store.h): paper once the
 * failsafe ran, else held while one is held, accepted while one is open,
 * sent when all are sent (or sent and cancelled), cancelled when all are.
 * A failure without the failsafe leaves the state as it was (a held
 * letter becomes accepted).
 */
static int
store_letter_restate(struct store *s, int64_t letter_id, const char *cur,
    int paper, const char **error_r)
{
	sqlite3_stmt	*st;
	const char	*state, *next;
	int64_t		 c, total = 0, open = 0, held = 0, sent = 0;
	int64_t		 cancelled = 0;
	int		 rc;

	if ((rc = store_stmt(s, ST_LETTER_COUNTS, &st, error_r)) != 0)
		return rc;
	sqlite3_bind_int64(st, 1, letter_id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		state = (const char *)sqlite3_column_text(st, 0);
		c = sqlite3_column_int64(st, 1);
		if (state == NULL)
			continue;
		total += c;
		if (strcmp(state, STORE_DS_HELD) == 0)
			held += c;
		else if (strcmp(state, STORE_DS_SENT) == 0)
			sent += c;
		else if (strcmp(state, STORE_DS_CANCELLED) == 0)
			cancelled += c;
		else if (!store_dstate_final(state))
			open += c;
	}
	if (rc != SQLITE_DONE) {
		rc = store_fail(s, rc, "letter deliveries", error_r);
		store_done(st);
		return rc;
	}
	store_done(st);

	if (paper || strcmp(cur, "paper") == 0)
		next = "paper";
	else if (held > 0)
		next = "held";
	else if (open > 0)
		next = "accepted";
	else if (sent > 0 && sent + cancelled == total)
		next = "sent";
	else if (total > 0 && cancelled == total)
		next = "cancelled";
	else if (strcmp(cur, "held") == 0)
		next = "accepted";
	else
		next = cur;
	if (strcmp(next, cur) == 0)
		return STORE_OK;
	if ((rc = store_stmt(s, ST_LETTER_STATE_SET, &st, error_r)) != 0)
		return rc;
	sqlite3_bind_int64(st, 1, letter_id);
	store_bind_text(st, 2, next);
	return store_run(s, st, "letter state", error_r);
}

/* An alert row: "queued", or "none" when the practice has no failsafe
 * address (kept for the record, never claimed). */
static int
store_alert_add(struct store *s, int64_t practice_id, int64_t letter_id,
    int64_t delivery_id, const char *kind, const char *reason, int64_t now,
    const char **error_r)
{
	sqlite3_stmt	*st;
	char		 r[STORE_REASON_MAX + 1];
	int		 rc;

	store_clip(r, sizeof(r), reason);
	if ((rc = store_stmt(s, ST_ALERT_INSERT, &st, error_r)) != STORE_OK)
		return rc;
	sqlite3_bind_int64(st, 1, practice_id);
	store_bind_id(st, 2, letter_id);
	store_bind_id(st, 3, delivery_id);
	store_bind_text(st, 4, kind);
	store_bind_text(st, 5, r);
	sqlite3_bind_int64(st, 6, now);
	return store_run(s, st, "alert insert", error_r);
}

/* --- settings --------------------------------------------------------- */

enum store_ftype {
	F_POLICY,		/* "full" | "notify" */
	F_EMAIL,		/* an addr-spec */
	F_DOMAIN,		/* a host name, stored lower-case */
	F_LINES,		/* printable text, LF allowed */
	F_LINE,			/* printable text, one line */
	F_URL,			/* http:// or https://, no white space */
	F_BOOL			/* "0" | "1" */
};

struct store_field {
	const char	*kind;
	const char	*name;
	enum store_ftype type;
	int		 nullable;
	const char	*sql;		/* ?1 = id, ?2 = value */
};

static const struct store_field store_fields[] = {
	{ "practice", "content_policy", F_POLICY, 0,
	    "UPDATE practices SET content_policy = ?2 WHERE id = ?1" },
	{ "practice", "failsafe_email", F_EMAIL, 1,
	    "UPDATE practices SET failsafe_email = ?2 WHERE id = ?1" },
	{ "practice", "reply_domain", F_DOMAIN, 1,
	    "UPDATE practices SET reply_domain = ?2 WHERE id = ?1" },
	{ "practice", "postal_address", F_LINES, 1,
	    "UPDATE practices SET postal_address = ?2 WHERE id = ?1" },
	{ "practice", "phone", F_LINE, 1,
	    "UPDATE practices SET phone = ?2 WHERE id = ?1" },
	{ "practice", "team_email", F_EMAIL, 1,
	    "UPDATE practices SET team_email = ?2 WHERE id = ?1" },
	{ "practice", "duty_email", F_EMAIL, 1,
	    "UPDATE practices SET duty_email = ?2 WHERE id = ?1" },
	/* Absent or left: replies go to the team. */
	{ "clinician", "active", F_BOOL, 0,
	    "UPDATE clinicians SET active = ?2 WHERE id = ?1" },
	{ "clinician", "email", F_EMAIL, 0,
	    "UPDATE clinicians SET email = ?2 WHERE id = ?1" },
	/* A new address is unverified; the same one keeps its status. */
	{ "patient", "email", F_EMAIL, 1,
	    "UPDATE patients SET verified = CASE WHEN email IS ?2 "
	    "THEN verified ELSE 0 END, email = ?2 WHERE id = ?1" },
	{ "patient", "postal_address", F_LINES, 1,
	    "UPDATE patients SET postal_address = ?2 WHERE id = ?1" },
	{ "patient", "verified", F_BOOL, 0,
	    "UPDATE patients SET verified = ?2 WHERE id = ?1" },
	{ "patient", "consent", F_BOOL, 0,
	    "UPDATE patients SET consent = ?2 WHERE id = ?1" },
	{ "patient", "shared_ok", F_BOOL, 0,
	    "UPDATE patients SET shared_ok = ?2 WHERE id = ?1" },
	{ "client", "callback_url", F_URL, 1,
	    "UPDATE clients SET callback_url = ?2 WHERE id = ?1" },
};

/* Printable ASCII or UTF-8 bytes, LF too when lines; else a reason. */
static const char *
store_text_check(const char *v, int lines)
{
	const unsigned char	*p;

	for (p = (const unsigned char *)v; *p != '\0'; p++) {
		if (*p == '\n' && lines)
			continue;
		if (*p < 0x20 || *p == 0x7f)
			return "holds a control character";
	}
	return NULL;
}

/* Validate a value for a field; a reason naming the problem, or NULL. */
static const char *
store_field_check(const struct store_field *f, const char *v)
{
	char		*a;
	const char	*why;

	if (v == NULL)
		return f->nullable ? NULL : "cannot be cleared";
	if (strlen(v) > STORE_TEXT_MAX)
		return "is too long";
	switch (f->type) {
	case F_POLICY:
		if (strcmp(v, "full") != 0 && strcmp(v, "notify") != 0)
			return "must be full or notify";
		return NULL;
	case F_BOOL:
		if (strcmp(v, "0") != 0 && strcmp(v, "1") != 0)
			return "must be 0 or 1";
		return NULL;
	case F_EMAIL:
		return mime_addr_check(v);
	case F_DOMAIN:
		xasprintf(&a, "postmaster@%s", v);
		why = mime_addr_check(a);
		free(a);
		return why != NULL ? "is not a domain name" : NULL;
	case F_URL:
		if (strncmp(v, "https://", 8) != 0 &&
		    strncmp(v, "http://", 7) != 0)
			return "must start with https:// or http://";
		if (strpbrk(v, " \t") != NULL)
			return "holds white space";
		return store_text_check(v, 0);
	case F_LINES:
		return store_text_check(v, 1);
	case F_LINE:
		return store_text_check(v, 0);
	}
	return "has an unknown type";
}

/* Set one field of a party (see store.h). */
static int
store_set_field(struct store *s, const char *kind, int64_t id,
    const char *field, const char *value, const char **error_r)
{
	const struct store_field *f = NULL;
	sqlite3_stmt	*st;
	const char	*why;
	char		*lower = NULL, *p;
	size_t		 i;
	int		 rc;

	for (i = 0; field != NULL && i < nitems(store_fields); i++) {
		if (strcmp(store_fields[i].kind, kind) == 0 &&
		    strcmp(store_fields[i].name, field) == 0) {
			f = &store_fields[i];
			break;
		}
	}
	if (f == NULL) {
		snprintf(store_errbuf, sizeof(store_errbuf),
		    "%s has no settable field of that name", kind);
		*error_r = store_errbuf;
		return STORE_ERROR;
	}
	if ((why = store_field_check(f, value)) != NULL) {
		snprintf(store_errbuf, sizeof(store_errbuf), "%s %s", f->name,
		    why);
		*error_r = store_errbuf;
		return STORE_ERROR;
	}
	rc = sqlite3_prepare_v2(s->db, f->sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return store_fail(s, rc, "prepare", error_r);
	sqlite3_bind_int64(st, 1, id);
	if (value == NULL)
		sqlite3_bind_null(st, 2);
	else if (f->type == F_BOOL)
		sqlite3_bind_int(st, 2, value[0] == '1');
	else if (f->type == F_DOMAIN) {
		lower = xstrdup(value);
		for (p = lower; *p != '\0'; p++)
			*p = (char)tolower((unsigned char)*p);
		sqlite3_bind_text(st, 2, lower, -1, SQLITE_STATIC);
	} else
		sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		rc = store_fail(s, rc, f->name, error_r);
	else if (sqlite3_changes(s->db) == 0) {
		*error_r = "not found";
		rc = STORE_NOTFOUND;
	} else
		rc = STORE_OK;
	sqlite3_finalize(st);
	free(lower);
	return rc;
}

int
store_practice_set(struct store *s, int64_t id, const char *field,
    const char *value, const char **error_r)
{
	return store_set_field(s, "practice", id, field, value, error_r);
}

int
store_patient_set(struct store *s, int64_t id, const char *field,
    const char *value, const char **error_r)
{
	return store_set_field(s, "patient", id, field, value, error_r);
}

int
store_client_set(struct store *s, int64_t id, const char *field,
    const char *value, const char **error_r)
{
	return store_set_field(s, "client", id, field, value, error_r);
}

int
store_clinician_set(struct store *s, int64_t id, const char *field,
    const char *value, const char **error_r)
{
	return store_set_field(s, "clinician", id, field, value, error_r);
}

/* Set or (NULL) clear the wrapped callback token of a client. */
int
store_client_set_callback_token(struct store *s, int64_t id,
    const unsigned char *wrapped, size_t len, const char **error_r)
{
	sqlite3_stmt	*st;
	int		 rc;

	if ((wrapped == NULL) != (len == 0) || len > 256) {
		*error_r = "callback token missing or longer than 256 bytes";
		return STORE_ERROR;
	}
	if ((rc = store_stmt(s, ST_CLIENT_TOKEN_SET, &st, error_r)) != 0)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	if (wrapped == NULL)
		sqlite3_bind_null(st, 2);
	else
		sqlite3_bind_blob(st, 2, wrapped, (int)len, SQLITE_STATIC);
	if ((rc = store_run(s, st, "callback token", error_r)) != STORE_OK)
		return rc;
	if (sqlite3_changes(s->db) == 0) {
		*error_r = "not found";
		return STORE_NOTFOUND;
	}
	return STORE_OK;
}

/* How many other patients of the practice share the address without
 * consent on both sides. */
int
store_address_shared(struct store *s, int64_t practice_id,
    int64_t patient_id, const char *email, int64_t *n, const char **error_r)
{
	sqlite3_stmt	*st;
	int		 rc;

	*n = 0;
	if (email == NULL)
		return STORE_OK;
	if (!store_text_ok(email, 0)) {
		*error_r = "address too long";
		return STORE_ERROR;
	}
	if ((rc = store_stmt(s, ST_ADDRESS_SHARED, &st, error_r)) != 0)
		return rc;
	sqlite3_bind_int64(st, 1, practice_id);
	sqlite3_bind_int64(st, 2, patient_id);
	store_bind_text(st, 3, email);
	if ((rc = store_fetch(s, st, "address shared", error_r)) != STORE_OK)
		return rc == STORE_NOTFOUND ? STORE_ERROR : rc;
	*n = sqlite3_column_int64(st, 0);
	store_done(st);
	return STORE_OK;
}

/* --- the delivery queue ----------------------------------------------- */

/* Read and mark one claimed delivery, inside the claim's transaction. */
static int
store_claim_one(struct store *s, int64_t id, int64_t now,
    struct store_claim *c, const char **error_r)
{
	sqlite3_stmt	*st;
	const void	*p;
	int		 rc, n;

	if ((rc = store_stmt(s, ST_CLAIM_READ, &st, error_r)) != STORE_OK)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	if ((rc = store_fetch(s, st, "claim", error_r)) != STORE_OK)
		return rc == STORE_NOTFOUND ? STORE_ERROR : rc;
	c->delivery_id = id;
	c->letter_id = sqlite3_column_int64(st, 0);
	c->practice_id = sqlite3_column_int64(st, 1);
	c->patient_id = sqlite3_column_int64(st, 2);
	c->client_id = sqlite3_column_int64(st, 3);
	c->author_id = sqlite3_column_int64(st, 4);
	c->priority = sqlite3_column_int(st, 5);
	c->attempts = sqlite3_column_int(st, 6) + 1;
	c->released = sqlite3_column_int(st, 7);
	c->created = sqlite3_column_int64(st, 8);
	c->expires = sqlite3_column_int64(st, 9);
	c->address = store_col_str(st, 10);
	c->message_id = store_col_str(st, 11);
	/* Made once, then the same for every attempt. */
	if (c->message_id == NULL &&
	    (c->message_id = mime_message_id((const char *)
	    sqlite3_column_text(st, 12))) == NULL) {
		store_done(st);
		*error_r = "claim: the practice domain cannot make a "
		    "Message-ID";
		return STORE_ERROR;
	}
	p = sqlite3_column_blob(st, 13);
	n = sqlite3_column_bytes(st, 13);
	if (p == NULL || n <= 0) {
		store_done(st);
		*error_r = "claim: letter without a sealed blob";
		return n < 0 || (p == NULL && n > 0) ? STORE_BUSY :
		    STORE_ERROR;
	}
	c->sealed = xmemdup(p, (size_t)n);
	c->sealed_len = (size_t)n;
	store_done(st);

	if ((rc = store_stmt(s, ST_CLAIM_MARK, &st, error_r)) != STORE_OK)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	store_bind_text(st, 2, c->message_id);
	sqlite3_bind_int64(st, 3, now);
	if ((rc = store_run(s, st, "claim", error_r)) != STORE_OK)
		return rc;
	if (sqlite3_changes(s->db) != 1) {
		*error_r = "claim: the row changed state under the lock";
		return STORE_ERROR;
	}
	return STORE_OK;
}

/* Claim due deliveries: new ones urgent first, then retries. */
int
store_deliveries_claim(struct store *s, int64_t now, size_t max_new,
    size_t max_retry, struct store_claim **out, size_t *n,
    const char **error_r)
{
	struct store_claim	*c = NULL;
	int64_t			*ids = NULL;
	size_t			 nids = 0, i;
	int			 own, rc;

	*out = NULL;
	*n = 0;
	if (max_new > STORE_CLAIM_MAX || max_retry > STORE_CLAIM_MAX) {
		*error_r = "claim: too many rows asked for";
		return STORE_ERROR;
	}
	if (max_new + max_retry == 0)
		return STORE_OK;
	if ((rc = store_tx_begin(s, &own, error_r)) != STORE_OK)
		return rc;
	if (max_new > 0)
		rc = store_ids(s, ST_CLAIM_QUEUED, now, (int64_t)max_new,
		    0, &ids, &nids, error_r);
	if (rc == STORE_OK && max_retry > 0)
		rc = store_ids(s, ST_CLAIM_DEFERRED, now, (int64_t)max_retry,
		    0, &ids, &nids, error_r);
	if (rc == STORE_OK && nids > 0) {
		c = xcalloc(nids, sizeof(*c));
		for (i = 0; i < nids && rc == STORE_OK; i++)
			rc = store_claim_one(s, ids[i], now, &c[i], error_r);
	}
	free(ids);
	if ((rc = store_tx_end(s, own, rc, error_r)) != STORE_OK) {
		store_claims_free(&c, nids);
		return rc;
	}
	*out = c;
	*n = nids;
	return STORE_OK;
}

/* Free an array of claims; accepts NULL. */
void
store_claims_free(struct store_claim **cp, size_t n)
{
	struct store_claim	*c = *cp;
	size_t			 i;

	if (c == NULL)
		return;
	for (i = 0; i < n; i++) {
		free(c[i].address);
		free(c[i].message_id);
		free(c[i].sealed);
	}
	free(c);
	*cp = NULL;
}

/* Check a transition before the transaction: states, edges, effects. */
static const char *
store_transition_check(const struct store_transition *t)
{
	char	 from[8][16];
	size_t	 nfrom, i;

	if (t->to == NULL || !store_dstate_known(t->to, strlen(t->to)))
		return "transition: unknown target state";
	if (store_states_parse(t->from, from, nitems(from), &nfrom) == -1)
		return "transition: bad list of current states";
	for (i = 0; i < nfrom; i++) {
		if (!store_edge_ok(from[i], t->to)) {
			snprintf(store_errbuf, sizeof(store_errbuf),
			    "transition not allowed: %s -> %s", from[i],
			    t->to);
			return store_errbuf;
		}
	}
	if (strcmp(t->to, STORE_DS_DEFERRED) == 0 && t->next_attempt <= 0)
		return "transition: deferred without a next attempt";
	if (!store_text_ok(t->error, 1) || !store_text_ok(t->address, 1) ||
	    !store_text_ok(t->paper_reason, 1))
		return "transition: reason or address too long";
	if (t->effects & ~(unsigned)(STORE_TX_PAPER | STORE_TX_ALERT |
	    STORE_TX_CALLBACK))
		return "transition: unknown effect";
	if ((t->effects & STORE_TX_ALERT) && (t->alert_kind == NULL ||
	    *t->alert_kind == '\0' || strlen(t->alert_kind) > 15))
		return "transition: alert without a kind (1-15 characters)";
	return NULL;
}

/*
 * Apply one transition inside the update's transaction: the row, the
 * letter's state, the effects, the audit row.  A row that is missing or in
 * none of the `from' states is skipped (applied = 0).
 */
static int
store_transition_one(struct store *s, struct store_transition *t,
    int64_t now, unsigned char *prev, const char **error_r)
{
	struct store_head	 h;
	sqlite3_stmt		*st;
	char			 cur[16], from[8][16], object[48];
	char			 action[32];
	char			*json;
	const char		*reason;
	int64_t			 letter_id, cb_id;
	size_t			 nfrom, i;
	int			 rc, match = 0, paper;

	t->applied = 0;
	if ((rc = store_stmt(s, ST_DELIVERY_STATE, &st, error_r)) != 0)
		return rc;
	sqlite3_bind_int64(st, 1, t->delivery_id);
	if ((rc = store_fetch(s, st, "delivery state", error_r)) != STORE_OK)
		return rc == STORE_NOTFOUND ? STORE_OK : rc;
	store_clip(cur, sizeof(cur), (const char *)sqlite3_column_text(st, 0));
	letter_id = sqlite3_column_int64(st, 1);
	store_done(st);
	(void)store_states_parse(t->from, from, nitems(from), &nfrom);
	for (i = 0; i < nfrom; i++)
		match |= strcmp(cur, from[i]) == 0;
	if (!match)
		return STORE_OK;

	if ((rc = store_stmt(s, ST_DELIVERY_APPLY, &st, error_r)) != 0)
		return rc;
	sqlite3_bind_int64(st, 1, t->delivery_id);
	store_bind_text(st, 2, t->to);
	sqlite3_bind_int64(st, 3, t->next_attempt);
	sqlite3_bind_int(st, 4, t->smtp_code);
	store_bind_text(st, 5, t->error);
	sqlite3_bind_int64(st, 6, now);
	store_bind_text(st, 7, t->address);
	sqlite3_bind_int(st, 8, t->undo_attempt ? 1 : 0);
	if ((rc = store_run(s, st, "delivery update", error_r)) != STORE_OK)
		return rc;

	if ((rc = store_letter_head(s, letter_id, &h, error_r)) != STORE_OK)
		return rc == STORE_NOTFOUND ? STORE_ERROR : rc;
	free(h.email);
	reason = t->error != NULL ? t->error : t->to;
	paper = (t->effects & STORE_TX_PAPER) != 0;
	if (paper) {
		char	 r[STORE_REASON_MAX + 1];

		store_clip(r, sizeof(r), t->paper_reason != NULL ?
		    t->paper_reason : reason);
		if ((rc = store_stmt(s, ST_PAPER_INSERT, &st, error_r)) != 0)
			return rc;
		sqlite3_bind_int64(st, 1, letter_id);
		store_bind_text(st, 2, r);
		sqlite3_bind_int64(st, 3, now);
		if ((rc = store_run(s, st, "paper insert", error_r)) != 0)
			return rc;
		/* Every reason is kept: the first in the row, all here. */
		snprintf(object, sizeof(object), "letter:%lld",
		    (long long)letter_id);
		if ((rc = store_audit_append(s, now, "daemon", "letter.paper",
		    object, r, prev, error_r)) != STORE_OK)
			return rc;
	}
	if (t->effects & STORE_TX_ALERT) {
		rc = store_alert_add(s, h.practice_id, letter_id,
		    t->delivery_id, t->alert_kind, reason, now, error_r);
		if (rc != STORE_OK)
			return rc;
	}
	if ((t->effects & STORE_TX_CALLBACK) && h.client_id != 0) {
		if ((rc = store_stmt(s, ST_CALLBACK_INSERT, &st, error_r)) != 0)
			return rc;
		sqlite3_bind_int64(st, 1, h.client_id);
		sqlite3_bind_int64(st, 2, t->delivery_id);
		sqlite3_bind_int64(st, 3, now);
		if ((rc = store_run(s, st, "callback insert", error_r)) != 0)
			return rc;
		/* No row when the client has no callback URL. */
		if (sqlite3_changes(s->db) == 1) {
			cb_id = sqlite3_last_insert_rowid(s->db);
			json = store_callback_json(cb_id, t, letter_id, now);
			if ((rc = store_stmt(s, ST_CALLBACK_PAYLOAD, &st,
			    error_r)) != STORE_OK) {
				free(json);
				return rc;
			}
			sqlite3_bind_int64(st, 1, cb_id);
			store_bind_text(st, 2, json);
			rc = store_run(s, st, "callback payload", error_r);
			free(json);
			if (rc != STORE_OK)
				return rc;
		}
	}
	if ((rc = store_letter_restate(s, letter_id, h.state, paper,
	    error_r)) != STORE_OK)
		return rc;

	/* Outcomes and holds go on the record; retries do not. */
	if (store_dstate_final(t->to) || strcmp(t->to, STORE_DS_SENT) == 0 ||
	    strcmp(t->to, STORE_DS_HELD) == 0) {
		snprintf(action, sizeof(action), "delivery.%s", t->to);
		snprintf(object, sizeof(object), "delivery:%lld",
		    (long long)t->delivery_id);
		if ((rc = store_audit_append(s, now, "daemon", action, object,
		    t->error != NULL ? t->error : "ok", prev, error_r)) != 0)
			return rc;
	}
	t->applied = 1;
	return STORE_OK;
}

/* Apply n transitions in one transaction. */
int
store_deliveries_update(struct store *s, struct store_transition *ts,
    size_t n, const char **error_r)
{
	unsigned char	 prev[HASH_SHA256_LEN];
	const char	*why;
	int64_t		 now;
	size_t		 i;
	int		 own, rc;

	for (i = 0; i < n; i++) {
		ts[i].applied = 0;
		if ((why = store_transition_check(&ts[i])) != NULL) {
			*error_r = why;
			return STORE_ERROR;
		}
	}
	if (n == 0)
		return STORE_OK;
	if ((rc = store_tx_begin(s, &own, error_r)) != STORE_OK)
		return rc;
	now = util_time();
	rc = store_audit_last(s, prev, error_r);
	for (i = 0; i < n && rc == STORE_OK; i++)
		rc = store_transition_one(s, &ts[i], now, prev, error_r);
	if ((rc = store_tx_end(s, own, rc, error_r)) != STORE_OK) {
		for (i = 0; i < n; i++)
			ts[i].applied = 0;
	}
	return rc;
}

/* At start: deliveries, alerts and callbacks left "sending" by a stop
 * go back to "queued"; *n counts the deliveries. */
int
store_deliveries_recover(struct store *s, int64_t *n, const char **error_r)
{
	sqlite3_stmt	*st;
	int		 own, rc;

	*n = 0;
	if ((rc = store_tx_begin(s, &own, error_r)) != STORE_OK)
		return rc;
	if ((rc = store_stmt(s, ST_RECOVER_DELIVERIES, &st, error_r)) != 0)
		goto end;
	sqlite3_bind_int64(st, 1, util_time());
	if ((rc = store_run(s, st, "recover", error_r)) != STORE_OK)
		goto end;
	*n = sqlite3_changes(s->db);
	if ((rc = store_stmt(s, ST_RECOVER_ALERTS, &st, error_r)) != 0 ||
	    (rc = store_run(s, st, "recover", error_r)) != STORE_OK)
		goto end;
	if ((rc = store_stmt(s, ST_RECOVER_CALLBACKS, &st, error_r)) != 0 ||
	    (rc = store_run(s, st, "recover", error_r)) != STORE_OK)
		goto end;
end:
	if ((rc = store_tx_end(s, own, rc, error_r)) != STORE_OK)
		*n = 0;
	return rc;
}

/* Delay warnings: a "delayed" alert per due delivery, once. */
int
store_deliveries_warn(struct store *s, int64_t now, size_t max, int64_t *n,
    const char **error_r)
{
	struct due {
		int64_t	 id, letter_id, practice_id;
		char	 reason[STORE_REASON_MAX + 1];
	}		*due = NULL;
	sqlite3_stmt	*st;
	const char	*last;
	size_t		 ndue = 0, i;
	int		 own, rc;

	*n = 0;
	if (max > STORE_CLAIM_MAX) {
		*error_r = "warn: too many rows asked for";
		return STORE_ERROR;
	}
	if (max == 0)
		return STORE_OK;
	if ((rc = store_tx_begin(s, &own, error_r)) != STORE_OK)
		return rc;
	if ((rc = store_stmt(s, ST_WARN_DUE, &st, error_r)) != STORE_OK)
		goto end;
	sqlite3_bind_int64(st, 1, now);
	sqlite3_bind_int64(st, 2, (int64_t)max);
	due = xcalloc(max, sizeof(*due));
	while (ndue < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		char	 buf[STORE_REASON_MAX + 64];

		due[ndue].id = sqlite3_column_int64(st, 0);
		due[ndue].letter_id = sqlite3_column_int64(st, 1);
		due[ndue].practice_id = sqlite3_column_int64(st, 2);
		last = (const char *)sqlite3_column_text(st, 3);
		if (last != NULL)
			snprintf(buf, sizeof(buf), "not delivered yet; last "
			    "error: %s", last);
		else
			strlcpy_sp(buf, "not delivered yet", sizeof(buf));
		store_clip(due[ndue].reason, sizeof(due[ndue].reason), buf);
		ndue++;
	}
	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		rc = store_fail(s, rc, "warn", error_r);
		store_done(st);
		goto end;
	}
	store_done(st);
	rc = STORE_OK;
	for (i = 0; i < ndue && rc == STORE_OK; i++) {
		rc = store_alert_add(s, due[i].practice_id, due[i].letter_id,
		    due[i].id, "delayed", due[i].reason, now, error_r);
		if (rc != STORE_OK)
			break;
		if ((rc = store_stmt(s, ST_WARN_CLEAR, &st, error_r)) != 0)
			break;
		sqlite3_bind_int64(st, 1, due[i].id);
		rc = store_run(s, st, "warn", error_r);
	}
end:
	free(due);
	if ((rc = store_tx_end(s, own, rc, error_r)) == STORE_OK)
		*n = (int64_t)ndue;
	return rc;
}

/* One delivery by id. */
int
store_delivery_get(struct store *s, int64_t id, struct store_delivery **dp,
    const char **error_r)
{
	sqlite3_stmt	*st;
	int		 rc;

	*dp = NULL;
	if ((rc = store_stmt(s, ST_DELIVERY_GET, &st, error_r)) != STORE_OK)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	if ((rc = store_fetch(s, st, "delivery get", error_r)) != STORE_OK)
		return rc;
	*dp = xcalloc(1, sizeof(**dp));
	store_read_delivery(st, *dp);
	store_done(st);
	return STORE_OK;
}

/* Free a delivery; accepts NULL. */
void
store_delivery_free(struct store_delivery **dp)
{
	if (*dp == NULL)
		return;
	store_delivery_clear(*dp);
	free(*dp);
	*dp = NULL;
}

/*
 * Release (held -> queued, released, address now the patient's) or cancel
 * (queued|deferred|held -> cancelled) every matching delivery of a letter,
 * one audit row each, and restate the letter.
 */
static int
store_letter_admin(struct store *s, int64_t letter_id, const char *actor,
    int cancel, int64_t *n, const char **error_r)
{
	struct store_head	 h;
	sqlite3_stmt		*st;
	unsigned char		 prev[HASH_SHA256_LEN];
	char			 object[48];
	int64_t			*ids = NULL, now;
	size_t			 nids = 0, i;
	int			 own, rc;

	*n = 0;
	if ((rc = store_admin_begin(s, actor, &own, &now, error_r)) != 0)
		return rc;
	if ((rc = store_letter_head(s, letter_id, &h, error_r)) != STORE_OK)
		return store_tx_end(s, own, rc, error_r);
	rc = store_ids(s, cancel ? ST_CANCEL_IDS : ST_RELEASE_IDS, letter_id,
	    0, 0, &ids, &nids, error_r);
	if (rc == STORE_OK)
		rc = store_audit_last(s, prev, error_r);
	for (i = 0; i < nids && rc == STORE_OK; i++) {
		if ((rc = store_stmt(s, cancel ? ST_CANCEL_ONE :
		    ST_RELEASE_ONE, &st, error_r)) != STORE_OK)
			break;
		sqlite3_bind_int64(st, 1, ids[i]);
		if (cancel)
			sqlite3_bind_int64(st, 2, now);
		else {
			store_bind_text(st, 2, h.email);
			sqlite3_bind_int64(st, 3, now);
		}
		if ((rc = store_run(s, st, "delivery update", error_r)) != 0)
			break;
		snprintf(object, sizeof(object), "delivery:%lld",
		    (long long)ids[i]);
		rc = store_audit_append(s, now, actor, cancel ?
		    "delivery.cancelled" : "delivery.released", object, "ok",
		    prev, error_r);
	}
	if (rc == STORE_OK && nids > 0)
		rc = store_letter_restate(s, letter_id, h.state, 0, error_r);
	free(ids);
	free(h.email);
	if ((rc = store_tx_end(s, own, rc, error_r)) == STORE_OK)
		*n = (int64_t)nids;
	return rc;
}

int
store_letter_release(struct store *s, int64_t letter_id, const char *actor,
    int64_t *n, const char **error_r)
{
	return store_letter_admin(s, letter_id, actor, 0, n, error_r);
}

int
store_letter_cancel(struct store *s, int64_t letter_id, const char *actor,
    int64_t *n, const char **error_r)
{
	return store_letter_admin(s, letter_id, actor, 1, n, error_r);
}

/* Make deferred deliveries due now: of one letter, or (0) all. */
int
store_deliveries_retry(struct store *s, int64_t letter_id, int64_t now,
    int64_t *n, const char **error_r)
{
	struct store_head	 h;
	sqlite3_stmt		*st;
	int			 rc;

	*n = 0;
	if (letter_id != 0) {
		if ((rc = store_letter_head(s, letter_id, &h, error_r)) != 0)
			return rc;
		free(h.email);
	}
	if ((rc = store_stmt(s, letter_id != 0 ? ST_RETRY_LETTER :
	    ST_RETRY_ALL, &st, error_r)) != STORE_OK)
		return rc;
	if (letter_id != 0) {
		sqlite3_bind_int64(st, 1, letter_id);
		sqlite3_bind_int64(st, 2, now);
	} else
		sqlite3_bind_int64(st, 1, now);
	if ((rc = store_run(s, st, "retry", error_r)) != STORE_OK)
		return rc;
	*n = sqlite3_changes(s->db);
	return STORE_OK;
}

/* Deferred deliveries whose last reason starts with prefix: due now. */
int
store_deliveries_retry_reason(struct store *s, const char *prefix,
    int64_t now, int64_t *n, const char **error_r)
{
	sqlite3_stmt	*st;
	int		 rc;

	*n = 0;
	if ((rc = store_stmt(s, ST_RETRY_REASON, &st, error_r)) != STORE_OK)
		return rc;
	sqlite3_bind_int64(st, 1, now);
	store_bind_text(st, 2, prefix);
	if ((rc = store_run(s, st, "retry", error_r)) != STORE_OK)
		return rc;
	*n = sqlite3_changes(s->db);
	return STORE_OK;
}

/* Counts by state and the queue's edges, for status and /metrics. */
int
store_queue_stats(struct store *s, struct store_queue_stats *q,
    const char **error_r)
{
	static const char *const names[] = {
		STORE_DS_QUEUED, STORE_DS_SENDING, STORE_DS_DEFERRED,
		STORE_DS_HELD, STORE_DS_SENT, STORE_DS_FAILED,
		STORE_DS_EXPIRED, STORE_DS_CANCELLED
	};
	int64_t		*slot[] = {
		&q->queued, &q->sending, &q->deferred, &q->held, &q->sent,
		&q->failed, &q->expired, &q->cancelled
	};
	sqlite3_stmt	*st;
	const char	*state;
	int64_t		 a, b;
	size_t		 i;
	int		 rc;

	memset(q, 0, sizeof(*q));
	if ((rc = store_stmt(s, ST_QSTATS_STATES, &st, error_r)) != STORE_OK)
		return rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		state = (const char *)sqlite3_column_text(st, 0);
		for (i = 0; state != NULL && i < nitems(names); i++) {
			if (strcmp(state, names[i]) == 0)
				*slot[i] = sqlite3_column_int64(st, 1);
		}
	}
	if (rc != SQLITE_DONE) {
		rc = store_fail(s, rc, "queue stats", error_r);
		store_done(st);
		return rc;
	}
	store_done(st);

	if ((rc = store_stmt(s, ST_QSTATS_MORE, &st, error_r)) != STORE_OK)
		return rc;
	if ((rc = store_fetch(s, st, "queue stats", error_r)) != STORE_OK)
		return rc == STORE_NOTFOUND ? STORE_ERROR : rc;
	q->oldest_open = sqlite3_column_int64(st, 0);	/* NULL: 0 */
	q->paper_open = sqlite3_column_int64(st, 1);
	q->alerts_queued = sqlite3_column_int64(st, 2);
	q->callbacks_queued = sqlite3_column_int64(st, 3);
	a = sqlite3_column_type(st, 4) == SQLITE_NULL ? 0 :
	    sqlite3_column_int64(st, 4);
	b = sqlite3_column_type(st, 5) == SQLITE_NULL ? 0 :
	    sqlite3_column_int64(st, 5);
	q->next_due = a == 0 ? b : b == 0 ? a : a < b ? a : b;
	store_done(st);
	return STORE_OK;
}

/* A listing of deliveries in the given states, oldest first; max 0: all. */
int
store_queue_list(struct store *s, const char *states, size_t max,
    struct store_queue_row **out, size_t *n, const char **error_r)
{
	struct store_queue_row	*r;
	sqlite3_stmt		*st;
	char			 want[8][16];
	size_t			 nwant, i;
	int			 rc;

	*out = NULL;
	*n = 0;
	if (states == NULL)
		states = "queued|sending|deferred|held";
	if (store_states_parse(states, want, nitems(want), &nwant) == -1) {
		*error_r = "queue list: bad list of states";
		return STORE_ERROR;
	}
	if ((rc = store_stmt(s, ST_QUEUE_LIST, &st, error_r)) != STORE_OK)
		return rc;
	for (i = 0; i < nwant; i++)
		sqlite3_bind_text(st, (int)i + 1, want[i], -1,
		    SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 9, max == 0 || max > INT64_MAX ? -1 :
	    (int64_t)max);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		*out = xreallocarray(*out, *n + 1, sizeof(**out));
		r = &(*out)[(*n)++];
		memset(r, 0, sizeof(*r));
		r->delivery_id = sqlite3_column_int64(st, 0);
		r->letter_id = sqlite3_column_int64(st, 1);
		r->patient_id = sqlite3_column_int64(st, 2);
		store_clip(r->state, sizeof(r->state),
		    (const char *)sqlite3_column_text(st, 3));
		r->attempts = sqlite3_column_int(st, 4);
		r->next_attempt = sqlite3_column_int64(st, 5);
		r->created = sqlite3_column_int64(st, 6);
		store_clip(r->last_error, sizeof(r->last_error),
		    (const char *)sqlite3_column_text(st, 7));
	}
	if (rc != SQLITE_DONE) {
		rc = store_fail(s, rc, "queue list", error_r);
		store_done(st);
		free(*out);
		*out = NULL;
		*n = 0;
		return rc;
	}
	store_done(st);
	return STORE_OK;
}

/* --- outboxes: alerts and callbacks ---------------------------------- */

/*
 * Alerts, callbacks and reply mails live the same life: due rows are
 * claimed in one transaction ("queued" -> "sending"; a row whose target
 * has gone is closed there and not returned), then each gets an outcome.
 * What tells one outbox from another is here; the reasons stay static
 * strings.
 */
struct store_outbox {
	enum store_stmt	 due;		/* ?1 = now, ?2 = max: the ids */
	int		 urgency;	/* due walked with ?3 = 1, then 0 */
	enum store_stmt	 outcome;	/* a text outcome (store_outbox_done) */
	size_t		 size;		/* of one claimed row */
	/* Read and mark one row; *skip when it was closed instead. */
	int		(*one)(struct store *, int64_t, void *, int *,
			    const char **);
	/* Free n claimed rows (store_*s_free) through a void pointer. */
	void		(*release)(void *, size_t);
	const char	*toomany;
	const char	*badstate;
	const char	*noretry;
	const char	*done;		/* what store_run names */
	const char	*notfound;
	const char	*toolong;	/* a text outcome's reason */
};

static const struct store_outbox store_alerts = {
	ST_ALERTS_DUE, 0, ST_ALERT_DONE, sizeof(struct store_alert),
	store_alert_one, store_alerts_release,
	"alerts: too many rows asked for",
	"alert: state must be sent, queued or failed",
	"alert: a retry without a next attempt",
	"alert done",
	"no such alert being sent",
	"alert: reason too long"
};

/* The outcome of a callback is an HTTP status, not a text. */
static const struct store_outbox store_callbacks = {
	ST_CALLBACKS_DUE, 0, ST_CALLBACK_DONE, sizeof(struct store_callback),
	store_callback_one, store_callbacks_release,
	"callbacks: too many rows asked for",
	"callback: state must be sent, queued or failed",
	"callback: a retry without a next attempt",
	"callback done",
	"no such callback being sent",
	NULL
};

/* Urgent reply mails are claimed first. */
static const struct store_outbox store_rmails = {
	ST_RMAILS_DUE, 1, ST_RMAIL_DONE, sizeof(struct store_reply_mail),
	store_rmail_one, store_rmails_release,
	"reply mails: too many rows asked for",
	"reply mail: state must be sent, queued or failed",
	"reply mail: a retry without a next attempt",
	"reply mail done",
	"no such reply mail being sent",
	"reply mail: reason too long"
};

/* Claim up to max due rows of an outbox into a new array *out. */
static int
store_outbox_claim(struct store *s, const struct store_outbox *o,
    int64_t now, size_t max, void **out, size_t *n, const char **error_r)
{
	unsigned char	*rows = NULL;
	int64_t		*ids = NULL;
	size_t		 nids = 0, i, k = 0;
	int		 own, rc, skip, urgent;

	*out = NULL;
	*n = 0;
	if (max > STORE_CLAIM_MAX) {
		*error_r = o->toomany;
		return STORE_ERROR;
	}
	if (max == 0)
		return STORE_OK;
	if ((rc = store_tx_begin(s, &own, error_r)) != STORE_OK)
		return rc;
	for (urgent = o->urgency; urgent >= 0 && rc == STORE_OK &&
	    nids < max; urgent--)
		rc = store_ids(s, o->due, now, (int64_t)(max - nids), urgent,
		    &ids, &nids, error_r);
	if (rc == STORE_OK && nids > 0)
		rows = xcalloc(nids, o->size);
	for (i = 0; i < nids && rc == STORE_OK; i++) {
		rc = o->one(s, ids[i], rows + k * o->size, &skip, error_r);
		if (rc != STORE_OK || !skip)
			k++;	/* on failure too: free what it holds */
	}
	free(ids);
	if ((rc = store_tx_end(s, own, rc, error_r)) != STORE_OK) {
		o->release(rows, k);
		return rc;
	}
	if (k == 0) {
		o->release(rows, 0);
		rows = NULL;
	}
	*out = rows;
	*n = k;
	return STORE_OK;
}

/* Check an outcome: sent, queued (a retry at next_attempt) or failed. */
static int
store_outbox_check(const struct store_outbox *o, const char *state,
    int64_t next_attempt, const char **error_r)
{
	if (state == NULL || (strcmp(state, "sent") != 0 &&
	    strcmp(state, "queued") != 0 && strcmp(state, "failed") != 0)) {
		*error_r = o->badstate;
		return STORE_ERROR;
	}
	if (strcmp(state, "queued") == 0 && next_attempt <= 0) {
		*error_r = o->noretry;
		return STORE_ERROR;
	}
	return STORE_OK;
}

/* Run a bound outcome statement; STORE_NOTFOUND unless the row was being
 * sent. */
static int
store_outbox_close(struct store *s, const struct store_outbox *o,
    sqlite3_stmt *st, const char **error_r)
{
	int	 rc;

	if ((rc = store_run(s, st, o->done, error_r)) != STORE_OK)
		return rc;
	if (sqlite3_changes(s->db) == 0) {
		*error_r = o->notfound;
		return STORE_NOTFOUND;
	}
	return STORE_OK;
}

/* A text outcome (sent, queued or failed, with a reason) of a row being
 * sent. */
static int
store_outbox_done(struct store *s, const struct store_outbox *o, int64_t id,
    const char *state, int64_t next_attempt, const char *error,
    const char **error_r)
{
	sqlite3_stmt	*st;
	int		 rc;

	if ((rc = store_outbox_check(o, state, next_attempt, error_r)) !=
	    STORE_OK)
		return rc;
	if (!store_text_ok(error, 1)) {
		*error_r = o->toolong;
		return STORE_ERROR;
	}
	if ((rc = store_stmt(s, o->outcome, &st, error_r)) != STORE_OK)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	store_bind_text(st, 2, state);
	sqlite3_bind_int64(st, 3, next_attempt);
	store_bind_text(st, 4, error);
	return store_outbox_close(s, o, st, error_r);
}

/* --- alerts ----------------------------------------------------------- */

/*
 * Read and mark one due alert.  *skip is set when the practice has lost its
 * failsafe address since: the row becomes "none" and is not returned.
 */
static int
store_alert_one(struct store *s, int64_t id, void *row, int *skip,
    const char **error_r)
{
	struct store_alert	*a = row;
	sqlite3_stmt		*st;
	const char		*to;
	int			 rc;

	*skip = 0;
	if ((rc = store_stmt(s, ST_ALERT_READ, &st, error_r)) != STORE_OK)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	if ((rc = store_fetch(s, st, "alert", error_r)) != STORE_OK)
		return rc == STORE_NOTFOUND ? STORE_ERROR : rc;
	to = (const char *)sqlite3_column_text(st, 8);
	if (to == NULL) {
		store_done(st);
		*skip = 1;
		if ((rc = store_stmt(s, ST_ALERT_NONE, &st, error_r)) != 0)
			return rc;
		sqlite3_bind_int64(st, 1, id);
		return store_run(s, st, "alert", error_r);
	}
	a->id = id;
	a->practice_id = sqlite3_column_int64(st, 0);
	a->letter_id = sqlite3_column_int64(st, 1);
	a->delivery_id = sqlite3_column_int64(st, 2);
	a->patient_id = sqlite3_column_int64(st, 3);
	store_clip(a->kind, sizeof(a->kind),
	    (const char *)sqlite3_column_text(st, 4));
	store_clip(a->reason, sizeof(a->reason),
	    (const char *)sqlite3_column_text(st, 5));
	a->created = sqlite3_column_int64(st, 6);
	a->attempts = sqlite3_column_int(st, 7) + 1;
	a->to = xstrdup(to);
	a->message_id = store_col_str(st, 9);
	if (a->message_id == NULL &&
	    (a->message_id = mime_message_id((const char *)
	    sqlite3_column_text(st, 10))) == NULL) {
		store_done(st);
		*error_r = "alert: the practice domain cannot make a "
		    "Message-ID";
		return STORE_ERROR;
	}
	store_done(st);
	if ((rc = store_stmt(s, ST_ALERT_MARK, &st, error_r)) != STORE_OK)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	store_bind_text(st, 2, a->message_id);
	return store_run(s, st, "alert", error_r);
}

/* Claim up to max due alerts. */
int
store_alerts_claim(struct store *s, int64_t now, size_t max,
    struct store_alert **out, size_t *n, const char **error_r)
{
	void	*rows;
	int	 rc;

	rc = store_outbox_claim(s, &store_alerts, now, max, &rows, n,
	    error_r);
	*out = rows;
	return rc;
}

/* store_alerts_free for the outbox. */
static void
store_alerts_release(void *rows, size_t n)
{
	struct store_alert	*a = rows;

	store_alerts_free(&a, n);
}

/* Free an array of alerts; accepts NULL. */
void
store_alerts_free(struct store_alert **ap, size_t n)
{
	struct store_alert	*a = *ap;
	size_t			 i;

	if (a == NULL)
		return;
	for (i = 0; i < n; i++) {
		free(a[i].to);
		free(a[i].message_id);
	}
	free(a);
	*ap = NULL;
}

/* The outcome of an alert being sent. */
int
store_alert_done(struct store *s, int64_t id, const char *state,
    int64_t next_attempt, const char *error, const char **error_r)
{
	return store_outbox_done(s, &store_alerts, id, state, next_attempt,
	    error, error_r);
}

/* --- callbacks -------------------------------------------------------- */

/* Read and mark one due callback; *skip when its client has no URL any
 * more or was revoked (the row becomes "failed"). */
static int
store_callback_one(struct store *s, int64_t id, void *row, int *skip,
    const char **error_r)
{
	struct store_callback	*c = row;
	sqlite3_stmt		*st;
	const char		*url;
	const void		*p;
	int			 rc, n;

	*skip = 0;
	if ((rc = store_stmt(s, ST_CALLBACK_READ, &st, error_r)) != 0)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	if ((rc = store_fetch(s, st, "callback", error_r)) != STORE_OK)
		return rc == STORE_NOTFOUND ? STORE_ERROR : rc;
	url = (const char *)sqlite3_column_text(st, 3);
	if (url == NULL || sqlite3_column_int(st, 4) != 0) {
		store_done(st);
		*skip = 1;
		if ((rc = store_stmt(s, ST_CALLBACK_DROP, &st, error_r)) != 0)
			return rc;
		sqlite3_bind_int64(st, 1, id);
		return store_run(s, st, "callback", error_r);
	}
	c->id = id;
	c->client_id = sqlite3_column_int64(st, 0);
	c->delivery_id = sqlite3_column_int64(st, 1);
	c->attempts = sqlite3_column_int(st, 2) + 1;
	c->url = xstrdup(url);
	c->payload = store_col_str(st, 5);
	p = sqlite3_column_blob(st, 6);
	n = sqlite3_column_bytes(st, 6);
	if (p != NULL && n > 0) {
		c->token = xmemdup(p, (size_t)n);
		c->token_len = (size_t)n;
	}
	store_done(st);
	if (c->payload == NULL) {
		*error_r = "callback without a payload";
		return STORE_ERROR;
	}
	if ((rc = store_stmt(s, ST_CALLBACK_MARK, &st, error_r)) != 0)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	return store_run(s, st, "callback", error_r);
}

/* Claim up to max due callbacks. */
int
store_callbacks_claim(struct store *s, int64_t now, size_t max,
    struct store_callback **out, size_t *n, const char **error_r)
{
	void	*rows;
	int	 rc;

	rc = store_outbox_claim(s, &store_callbacks, now, max, &rows, n,
	    error_r);
	*out = rows;
	return rc;
}

/* store_callbacks_free for the outbox. */
static void
store_callbacks_release(void *rows, size_t n)
{
	struct store_callback	*c = rows;

	store_callbacks_free(&c, n);
}

/* Free an array of callbacks; accepts NULL. */
void
store_callbacks_free(struct store_callback **cp, size_t n)
{
	struct store_callback	*c = *cp;
	size_t			 i;

	if (c == NULL)
		return;
	for (i = 0; i < n; i++) {
		free(c[i].url);
		free(c[i].payload);
		if (c[i].token != NULL) {
			hash_wipe(c[i].token, c[i].token_len);
			free(c[i].token);
		}
	}
	free(c);
	*cp = NULL;
}

/* The outcome of a callback being posted. */
int
store_callback_done(struct store *s, int64_t id, const char *state,
    int64_t next_attempt, int http_status, const char **error_r)
{
	sqlite3_stmt	*st;
	int		 rc;

	if ((rc = store_outbox_check(&store_callbacks, state, next_attempt,
	    error_r)) != STORE_OK)
		return rc;
	if ((rc = store_stmt(s, store_callbacks.outcome, &st, error_r)) != 0)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	store_bind_text(st, 2, state);
	sqlite3_bind_int64(st, 3, next_attempt);
	sqlite3_bind_int(st, 4, http_status);
	return store_outbox_close(s, &store_callbacks, st, error_r);
}

/* --- the paper queue -------------------------------------------------- */

/* Fill a paper row from PAPER_COLS. */
static void
store_read_paper(sqlite3_stmt *st, struct store_paper *p)
{
	memset(p, 0, sizeof(*p));
	p->letter_id = sqlite3_column_int64(st, 0);
	p->practice_id = sqlite3_column_int64(st, 1);
	p->patient_id = sqlite3_column_int64(st, 2);
	store_clip(p->reason, sizeof(p->reason),
	    (const char *)sqlite3_column_text(st, 3));
	p->created = sqlite3_column_int64(st, 4);
	p->printed = sqlite3_column_int64(st, 5);
	p->done = sqlite3_column_int64(st, 6);
	store_clip(p->done_by, sizeof(p->done_by),
	    (const char *)sqlite3_column_text(st, 7));
}

/* The paper queue, oldest first. */
int
store_paper_list(struct store *s, int64_t practice_id, int with_done,
    struct store_paper **out, size_t *n, const char **error_r)
{
	sqlite3_stmt	*st;
	int		 rc;

	*out = NULL;
	*n = 0;
	if ((rc = store_stmt(s, with_done ? ST_PAPER_LIST_ALL :
	    ST_PAPER_LIST_OPEN, &st, error_r)) != STORE_OK)
		return rc;
	sqlite3_bind_int64(st, 1, practice_id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		*out = xreallocarray(*out, *n + 1, sizeof(**out));
		store_read_paper(st, &(*out)[(*n)++]);
	}
	if (rc != SQLITE_DONE) {
		rc = store_fail(s, rc, "paper list", error_r);
		store_done(st);
		free(*out);
		*out = NULL;
		*n = 0;
		return rc;
	}
	store_done(st);
	return STORE_OK;
}

/* One letter's paper row. */
int
store_paper_get(struct store *s, int64_t letter_id, struct store_paper *p,
    const char **error_r)
{
	sqlite3_stmt	*st;
	int		 rc;

	memset(p, 0, sizeof(*p));
	if ((rc = store_stmt(s, ST_PAPER_GET, &st, error_r)) != STORE_OK)
		return rc;
	sqlite3_bind_int64(st, 1, letter_id);
	if ((rc = store_fetch(s, st, "paper get", error_r)) != STORE_OK)
		return rc;
	store_read_paper(st, p);
	store_done(st);
	return STORE_OK;
}

/* Mark printed (the first time is kept) or done (once), with an audit
 * row, in one transaction. */
static int
store_paper_mark(struct store *s, int64_t letter_id, const char *actor,
    int done, const char **error_r)
{
	struct store_paper	 p;
	sqlite3_stmt		*st;
	char			 object[48], by[64];
	int64_t			 now;
	int			 own, rc;

	if ((rc = store_admin_begin(s, actor, &own, &now, error_r)) != 0)
		return rc;
	if ((rc = store_paper_get(s, letter_id, &p, error_r)) != STORE_OK)
		return store_tx_end(s, own, rc, error_r);
	if (done && p.done != 0)	/* already closed: nothing to do */
		return store_tx_end(s, own, STORE_OK, error_r);
	if ((rc = store_stmt(s, done ? ST_PAPER_DONE : ST_PAPER_PRINTED, &st,
	    error_r)) != STORE_OK)
		return store_tx_end(s, own, rc, error_r);
	sqlite3_bind_int64(st, 1, letter_id);
	sqlite3_bind_int64(st, 2, now);
	if (done) {
		store_clip(by, sizeof(by), actor);
		sqlite3_bind_text(st, 3, by, -1, SQLITE_TRANSIENT);
	}
	rc = store_run(s, st, "paper", error_r);
	snprintf(object, sizeof(object), "letter:%lld", (long long)letter_id);
	if (rc == STORE_OK)
		rc = store_audit(s, actor, done ? "paper.done" :
		    "paper.printed", object, "ok", error_r);
	return store_tx_end(s, own, rc, error_r);
}

int
store_paper_printed(struct store *s, int64_t letter_id, const char *actor,
    const char **error_r)
{
	return store_paper_mark(s, letter_id, actor, 0, error_r);
}

int
store_paper_done(struct store *s, int64_t letter_id, const char *actor,
    const char **error_r)
{
	return store_paper_mark(s, letter_id, actor, 1, error_r);
}

/* --- replies (schema 3) ----------------------------------------------- */

/* Is a reply mail kind one of STORE_RM_*? */
static int
store_rm_kind_known(const char *kind)
{
	static const char *const kinds[] = {
		STORE_RM_FORWARD, STORE_RM_APPEND, STORE_RM_ACK,
		STORE_RM_REDFLAG, STORE_RM_CONTACT, STORE_RM_QUARANTINE
	};
	size_t	 i;

	for (i = 0; kind != NULL && i < nitems(kinds); i++) {
		if (strcmp(kind, kinds[i]) == 0)
			return 1;
	}
	return 0;
}

/* Check the mails a reply causes; a reason or NULL. */
static const char *
store_rmails_check(const struct store_reply_mail_new *m, size_t n)
{
	size_t	 i;

	if (n > STORE_RMAILS_MAX || (n > 0 && m == NULL))
		return "reply: too many mails";
	for (i = 0; i < n; i++) {
		if (!store_rm_kind_known(m[i].kind))
			return "reply mail: unknown kind";
		if (strcmp(m[i].kind, STORE_RM_APPEND) == 0) {
			if (m[i].to != NULL)
				return "reply mail: an append has no address";
		} else if (m[i].to == NULL || strlen(m[i].to) >
		    STORE_TEXT_MAX || mime_addr_check(m[i].to) != NULL)
			return "reply mail: address missing or not an "
			    "addr-spec";
		if (m[i].clinician_id < 0)
			return "reply mail: negative clinician id";
	}
	return NULL;
}

/* Check one reply before the transaction; a reason or NULL. */
static const char *
store_reply_check(const struct store_reply_new *r)
{
	static const char *const senders[] = {
		"verified", "unverified", "mismatch", "spoof"
	};
	size_t	 i;
	int	 filed;

	if (r->practice_id <= 0 || r->letter_id < 0 || r->patient_id < 0 ||
	    r->clinician_id < 0)
		return "reply: bad practice, thread, patient or clinician id";
	if (r->state == NULL || (strcmp(r->state, STORE_RS_FILED) != 0 &&
	    strcmp(r->state, STORE_RS_QUARANTINED) != 0))
		return "reply: state must be filed or quarantined";
	filed = strcmp(r->state, STORE_RS_FILED) == 0;
	if (filed && (r->letter_id == 0 || r->reason != NULL))
		return "reply: filed without a thread or with a reason";
	if (!filed && (r->reason == NULL || *r->reason == '\0'))
		return "reply: quarantined without a reason";
	if (r->reason != NULL && strlen(r->reason) > STORE_RREASON_MAX)
		return "reply: reason too long";
	for (i = 0; i < nitems(senders); i++) {
		if (r->sender != NULL && strcmp(r->sender, senders[i]) == 0)
			break;
	}
	if (i == nitems(senders))
		return "reply: unknown sender mark";
	if (r->source == NULL || (strcmp(r->source, "imap") != 0 &&
	    strcmp(r->source, "lmtp") != 0))
		return "reply: source must be imap or lmtp";
	if (!store_text_ok(r->detail, 1) || !store_text_ok(r->from_addr, 1) ||
	    !store_text_ok(r->message_id, 1))
		return "reply: detail, From or Message-ID too long";
	/* The Message-ID goes into the In-Reply-To of our mails: no line
	 * breaks there or in anything shown to staff. */
	if ((r->reason != NULL && store_text_check(r->reason, 0) != NULL) ||
	    (r->detail != NULL && store_text_check(r->detail, 0) != NULL) ||
	    (r->from_addr != NULL &&
	    store_text_check(r->from_addr, 0) != NULL) ||
	    (r->message_id != NULL &&
	    store_text_check(r->message_id, 0) != NULL))
		return "reply: a control character in the reason, detail, "
		    "From or Message-ID";
	if (r->sealed == NULL || r->sealed_len == 0 ||
	    r->sealed_len > INT32_MAX)
		return "reply: no sealed document";
	if (r->received < 0 || r->ack_window < 0)
		return "reply: negative time or ack window";
	return store_rmails_check(r->mails, r->nmails);
}

/* A letter's practice and patient; NOTFOUND if there is no such letter. */
static int
store_thread_of(struct store *s, int64_t letter_id, int64_t *practice_id,
    int64_t *patient_id, const char **error_r)
{
	struct store_head	 h;
	int			 rc;

	if ((rc = store_letter_head(s, letter_id, &h, error_r)) != STORE_OK)
		return rc;
	free(h.email);
	*practice_id = h.practice_id;
	*patient_id = h.patient_id;
	return STORE_OK;
}

/*
 * Was a mail of this kind queued for the thread (thread 0: for the
 * address, within the practice) after since?  *seen says.
 */
static int
store_rmail_recent(struct store *s, const char *kind, int64_t practice_id,
    int64_t letter_id, const char *to, int64_t since, int *seen,
    const char **error_r)
{
	sqlite3_stmt	*st;
	int		 rc;

	*seen = 0;
	if ((rc = store_stmt(s, letter_id != 0 ? ST_RMAIL_WINDOW_THREAD :
	    ST_RMAIL_WINDOW_ADDR, &st, error_r)) != STORE_OK)
		return rc;
	store_bind_text(st, 1, kind);
	if (letter_id != 0)
		sqlite3_bind_int64(st, 2, letter_id);
	else {
		store_bind_text(st, 2, to);
		sqlite3_bind_int64(st, 4, practice_id);
	}
	sqlite3_bind_int64(st, 3, since);
	rc = store_fetch(s, st, "ack window", error_r);
	if (rc == STORE_NOTFOUND)
		return STORE_OK;
	if (rc != STORE_OK)
		return rc;
	store_done(st);
	*seen = 1;
	return STORE_OK;
}

/*
 * Queue the mails of a reply (its practice, thread, patient and urgency
 * copied from the row).  window > 0: an ack or contact is skipped when
 * one of its kind went to the thread (or address) within window seconds;
 * *acked says whether one was queued.
 */
static int
store_rmails_add(struct store *s, int64_t reply_id, int64_t practice_id,
    int64_t letter_id, const struct store_reply_mail_new *m, size_t n,
    int64_t window, int64_t now, int *acked, const char **error_r)
{
	sqlite3_stmt	*st;
	size_t		 i;
	int		 rc, seen, ack;

	if (acked != NULL)
		*acked = 0;
	for (i = 0; i < n; i++) {
		ack = strcmp(m[i].kind, STORE_RM_ACK) == 0 ||
		    strcmp(m[i].kind, STORE_RM_CONTACT) == 0;
		if (ack && window > 0) {
			rc = store_rmail_recent(s, m[i].kind, practice_id,
			    letter_id, m[i].to, now - window, &seen, error_r);
			if (rc != STORE_OK)
				return rc;
			if (seen)
				continue;
		}
		if ((rc = store_stmt(s, ST_RMAIL_INSERT, &st, error_r)) != 0)
			return rc;
		sqlite3_bind_int64(st, 1, reply_id);
		store_bind_id(st, 2, m[i].clinician_id);
		store_bind_text(st, 3, m[i].kind);
		store_bind_text(st, 4, m[i].to);
		sqlite3_bind_int64(st, 5, now);
		if ((rc = store_run(s, st, "reply mail insert", error_r)) != 0)
			return rc;
		if (sqlite3_changes(s->db) != 1) {
			*error_r = "reply mail insert: no such reply";
			return STORE_ERROR;
		}
		if (ack && acked != NULL)
			*acked = 1;
	}
	return STORE_OK;
}

/*
 * One reply of a commit, inside its transaction: a duplicate is only
 * answered; otherwise the row, its mails and its audit row.
 */
static int
store_reply_one(struct store *s, struct store_reply_new *r, int64_t now,
    unsigned char *prev, const char **error_r)
{
	sqlite3_stmt	*st;
	char		 object[48], action[32];
	int64_t		 id, practice_id, patient_id;
	int		 rc;

	/* Earlier entries of this batch are visible here too. */
	if ((rc = store_stmt(s, ST_REPLY_DUP, &st, error_r)) != STORE_OK)
		return rc;
	sqlite3_bind_int64(st, 1, r->practice_id);
	sqlite3_bind_blob(st, 2, r->dedup, 32, SQLITE_STATIC);
	rc = store_fetch(s, st, "reply duplicate", error_r);
	if (rc == STORE_OK) {
		r->result = STORE_REPLY_DUPLICATE;
		r->reply_id = sqlite3_column_int64(st, 0);
		store_done(st);
		return STORE_OK;
	}
	if (rc != STORE_NOTFOUND)
		return rc;

	/* A letter has no (practice, id) key to refer to: checked here. */
	if (r->letter_id != 0) {
		rc = store_thread_of(s, r->letter_id, &practice_id,
		    &patient_id, error_r);
		if (rc != STORE_OK || practice_id != r->practice_id) {
			*error_r = "reply: no such thread in the practice";
			return rc == STORE_OK || rc == STORE_NOTFOUND ?
			    STORE_ERROR : rc;
		}
	}

	if ((rc = store_stmt(s, ST_REPLY_INSERT, &st, error_r)) != STORE_OK)
		return rc;
	sqlite3_bind_int64(st, 1, r->practice_id);
	store_bind_id(st, 2, r->letter_id);
	store_bind_id(st, 3, r->patient_id);
	store_bind_id(st, 4, r->clinician_id);
	store_bind_text(st, 5, r->state);
	store_bind_text(st, 6, r->reason);
	store_bind_text(st, 7, r->detail);
	store_bind_text(st, 8, r->sender);
	store_bind_text(st, 9, r->from_addr);
	store_bind_text(st, 10, r->message_id);
	store_bind_text(st, 11, r->source);
	sqlite3_bind_blob(st, 12, r->dedup, 32, SQLITE_STATIC);
	sqlite3_bind_int(st, 13, r->urgent != 0);
	sqlite3_bind_int(st, 14, r->shared != 0);
	sqlite3_bind_int64(st, 15, r->received);
	sqlite3_bind_int64(st, 16, now);
	sqlite3_bind_int64(st, 17, (sqlite3_int64)r->sealed_len);
	rc = sqlite3_bind_blob64(st, 18, r->sealed, r->sealed_len,
	    SQLITE_STATIC);
	if (rc != SQLITE_OK) {
		store_done(st);
		return store_fail(s, rc, "reply insert", error_r);
	}
	if ((rc = store_insert(s, ST_REPLY_INSERT, "reply insert", &id,
	    error_r)) != STORE_OK)
		return rc;
	if ((rc = store_rmails_add(s, id, r->practice_id, r->letter_id,
	    r->mails, r->nmails, r->ack_window, now, &r->acked,
	    error_r)) != STORE_OK)
		return rc;
	snprintf(action, sizeof(action), "reply.%s", r->state);
	snprintf(object, sizeof(object), "reply:%lld", (long long)id);
	if ((rc = store_audit_append(s, now, "daemon", action, object,
	    r->reason != NULL ? r->reason : "ok", prev, error_r)) != STORE_OK)
		return rc;
	r->reply_id = id;
	return STORE_OK;
}

/* Commit n replies in one transaction. */
int
store_replies_commit(struct store *s, struct store_reply_new *rs, size_t n,
    const char **error_r)
{
	unsigned char	 prev[HASH_SHA256_LEN];
	const char	*why;
	int64_t		 now;
	size_t		 i;
	int		 own, rc;

	for (i = 0; i < n; i++) {
		rs[i].result = STORE_REPLY_NEW;
		rs[i].reply_id = 0;
		rs[i].acked = 0;
		if ((why = store_reply_check(&rs[i])) != NULL) {
			*error_r = why;
			return STORE_ERROR;
		}
	}
	if (n == 0)
		return STORE_OK;
	if ((rc = store_tx_begin(s, &own, error_r)) != STORE_OK)
		return rc;
	now = util_time();
	rc = store_audit_last(s, prev, error_r);
	for (i = 0; i < n && rc == STORE_OK; i++)
		rc = store_reply_one(s, &rs[i], now, prev, error_r);
	if ((rc = store_tx_end(s, own, rc, error_r)) != STORE_OK) {
		for (i = 0; i < n; i++) {
			rs[i].result = STORE_REPLY_NEW;
			rs[i].reply_id = 0;
			rs[i].acked = 0;
		}
	}
	return rc;
}

/* Fill a reply from a row of REPLY_COLS. */
static void
store_read_reply(sqlite3_stmt *st, struct store_reply *r)
{
	memset(r, 0, sizeof(*r));
	r->id = sqlite3_column_int64(st, 0);
	r->practice_id = sqlite3_column_int64(st, 1);
	r->letter_id = sqlite3_column_int64(st, 2);	/* NULL: 0 */
	r->patient_id = sqlite3_column_int64(st, 3);
	r->clinician_id = sqlite3_column_int64(st, 4);
	store_clip(r->state, sizeof(r->state),
	    (const char *)sqlite3_column_text(st, 5));
	store_clip(r->reason, sizeof(r->reason),
	    (const char *)sqlite3_column_text(st, 6));
	store_clip(r->detail, sizeof(r->detail),
	    (const char *)sqlite3_column_text(st, 7));
	store_clip(r->sender, sizeof(r->sender),
	    (const char *)sqlite3_column_text(st, 8));
	store_clip(r->from_addr, sizeof(r->from_addr),
	    (const char *)sqlite3_column_text(st, 9));
	store_clip(r->message_id, sizeof(r->message_id),
	    (const char *)sqlite3_column_text(st, 10));
	store_clip(r->source, sizeof(r->source),
	    (const char *)sqlite3_column_text(st, 11));
	r->urgent = sqlite3_column_int(st, 12);
	r->shared = sqlite3_column_int(st, 13);
	r->received = sqlite3_column_int64(st, 14);
	r->created = sqlite3_column_int64(st, 15);
	r->decided = sqlite3_column_int64(st, 16);
	store_clip(r->decided_by, sizeof(r->decided_by),
	    (const char *)sqlite3_column_text(st, 17));
	r->sealed_len = (size_t)sqlite3_column_int64(st, 18);
	r->filed_seq = sqlite3_column_int64(st, 19);	/* NULL: 0 */
}

/* One reply by id (without its sealed document). */
int
store_reply_get(struct store *s, int64_t id, struct store_reply *r,
    const char **error_r)
{
	sqlite3_stmt	*st;
	int		 rc;

	memset(r, 0, sizeof(*r));
	if ((rc = store_stmt(s, ST_REPLY_GET, &st, error_r)) != STORE_OK)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	if ((rc = store_fetch(s, st, "reply get", error_r)) != STORE_OK)
		return rc;
	store_read_reply(st, r);
	store_done(st);
	return STORE_OK;
}

/* The sealed document of a reply, malloc'd. */
int
store_reply_sealed(struct store *s, int64_t id, unsigned char **blob,
    size_t *len, const char **error_r)
{
	sqlite3_stmt	*st;
	const void	*p;
	int		 rc, n;

	*blob = NULL;
	*len = 0;
	if ((rc = store_stmt(s, ST_REPLY_SEALED, &st, error_r)) != 0)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	if ((rc = store_fetch(s, st, "reply sealed", error_r)) != STORE_OK)
		return rc;
	p = sqlite3_column_blob(st, 0);
	n = sqlite3_column_bytes(st, 0);
	if (p == NULL || n <= 0) {
		store_done(st);
		*error_r = "reply sealed: no document or out of memory";
		return n < 0 || (p == NULL && n > 0) ? STORE_BUSY :
		    STORE_ERROR;
	}
	*blob = xmemdup(p, (size_t)n);
	*len = (size_t)n;
	store_done(st);
	return STORE_OK;
}

/*
 * Replies in id order after since_id.  The statement is put together
 * from the filters given so that each filter can use its index
 * (replies_practice, replies_letter); the id cursor bounds the walk.
 */
int
store_replies_list(struct store *s, int64_t practice_id, int64_t letter_id,
    const char *states, int64_t since_id, size_t max,
    struct store_reply **rows, size_t *n, const char **error_r)
{
	static const char *const known[] = {
		STORE_RS_FILED, STORE_RS_QUARANTINED, STORE_RS_REJECTED
	};
	sqlite3_stmt	*st;
	char		 want[3][16], sql[512];
	const char	*p, *bar;
	size_t		 nwant = 0, len, i, k;
	int		 rc;

	*rows = NULL;
	*n = 0;
	if (practice_id < 0 || letter_id < 0 || since_id < 0) {
		*error_r = "reply list: negative id";
		return STORE_ERROR;
	}
	for (p = states; p != NULL; p = bar != NULL ? bar + 1 : NULL) {
		bar = strchr(p, '|');
		len = bar != NULL ? (size_t)(bar - p) : strlen(p);
		for (i = 0; i < nitems(known); i++) {
			if (strlen(known[i]) == len &&
			    memcmp(known[i], p, len) == 0)
				break;
		}
		if (i == nitems(known) || nwant == nitems(want)) {
			*error_r = "reply list: bad list of states";
			return STORE_ERROR;
		}
		memcpy(want[nwant], p, len);
		want[nwant++][len] = '\0';
	}
	snprintf(sql, sizeof(sql), "SELECT " REPLY_COLS " FROM replies "
	    "WHERE id > ?1%s%s%s ORDER BY id LIMIT ?7",
	    practice_id != 0 ? " AND practice_id = ?2" : "",
	    letter_id != 0 ? " AND letter_id = ?3" : "",
	    nwant > 0 ? " AND state IN (?4, ?5, ?6)" : "");
	rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return store_fail(s, rc, "reply list", error_r);
	sqlite3_bind_int64(st, 1, since_id);
	if (practice_id != 0)
		sqlite3_bind_int64(st, 2, practice_id);
	if (letter_id != 0)
		sqlite3_bind_int64(st, 3, letter_id);
	/* Unused places repeat the first state. */
	for (k = 0; k < 3 && nwant > 0; k++)
		sqlite3_bind_text(st, 4 + (int)k, want[k < nwant ? k : 0], -1,
		    SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 7, max == 0 || max > INT64_MAX ? -1 :
	    (int64_t)max);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		*rows = xreallocarray(*rows, *n + 1, sizeof(**rows));
		store_read_reply(st, &(*rows)[(*n)++]);
	}
	if (rc != SQLITE_DONE) {
		rc = store_fail(s, rc, "reply list", error_r);
		sqlite3_finalize(st);
		free(*rows);
		*rows = NULL;
		*n = 0;
		return rc;
	}
	sqlite3_finalize(st);
	return STORE_OK;
}

/*
 * The practice's filed replies in the order they were filed, after the
 * feed position since_seq (GET /v1/replies): a reply staff file from the
 * quarantine later joins the end, so a cursor never passes it by.
 */
int
store_replies_feed(struct store *s, int64_t practice_id, int64_t since_seq,
    size_t max, struct store_reply **rows, size_t *n, const char **error_r)
{
	sqlite3_stmt	*st;
	int		 rc;

	*rows = NULL;
	*n = 0;
	if (practice_id <= 0 || since_seq < 0) {
		*error_r = "reply feed: bad practice or position";
		return STORE_ERROR;
	}
	rc = sqlite3_prepare_v2(s->db, "SELECT " REPLY_COLS " FROM replies "
	    "INDEXED BY replies_feed WHERE practice_id = ?1 AND "
	    "filed_seq IS NOT NULL AND filed_seq > ?2 ORDER BY filed_seq "
	    "LIMIT ?3", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return store_fail(s, rc, "reply feed", error_r);
	sqlite3_bind_int64(st, 1, practice_id);
	sqlite3_bind_int64(st, 2, since_seq);
	sqlite3_bind_int64(st, 3, max == 0 || max > INT64_MAX ? -1 :
	    (int64_t)max);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		*rows = xreallocarray(*rows, *n + 1, sizeof(**rows));
		store_read_reply(st, &(*rows)[(*n)++]);
	}
	if (rc != SQLITE_DONE) {
		rc = store_fail(s, rc, "reply feed", error_r);
		sqlite3_finalize(st);
		free(*rows);
		*rows = NULL;
		*n = 0;
		return rc;
	}
	sqlite3_finalize(st);
	return STORE_OK;
}

/*
 * The state and practice of a reply for a staff decision, inside its
 * transaction: STORE_NOTFOUND unless it exists and is quarantined.
 */
static int
store_reply_pending(struct store *s, int64_t id, int64_t *practice_id,
    const char **error_r)
{
	sqlite3_stmt	*st;
	const char	*state;
	int		 rc, quarantined;

	if ((rc = store_stmt(s, ST_REPLY_HEAD, &st, error_r)) != STORE_OK)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	if ((rc = store_fetch(s, st, "reply get", error_r)) != STORE_OK)
		return rc;
	state = (const char *)sqlite3_column_text(st, 0);
	quarantined = state != NULL &&
	    strcmp(state, STORE_RS_QUARANTINED) == 0;
	*practice_id = sqlite3_column_int64(st, 1);
	store_done(st);
	if (!quarantined) {
		*error_r = "reply is not in quarantine";
		return STORE_NOTFOUND;
	}
	return STORE_OK;
}

/* Staff file a quarantined reply to a thread, resealed. */
int
store_reply_file(struct store *s, int64_t id, int64_t letter_id,
    int64_t clinician_id, const unsigned char *sealed, size_t sealed_len,
    const struct store_reply_mail_new *mails, size_t nmails,
    const char *actor, const char **error_r)
{
	sqlite3_stmt	*st;
	unsigned char	 prev[HASH_SHA256_LEN];
	char		 object[48], by[64];
	const char	*why;
	int64_t		 now, practice_id, lpractice, patient_id;
	int		 own, rc;

	if (letter_id <= 0 || clinician_id < 0) {
		*error_r = "reply file: no thread or a bad clinician id";
		return STORE_ERROR;
	}
	if (sealed == NULL || sealed_len == 0 || sealed_len > INT32_MAX) {
		*error_r = "reply file: no sealed document";
		return STORE_ERROR;
	}
	if ((why = store_rmails_check(mails, nmails)) != NULL) {
		*error_r = why;
		return STORE_ERROR;
	}
	if ((rc = store_admin_begin(s, actor, &own, &now, error_r)) != 0)
		return rc;
	if ((rc = store_reply_pending(s, id, &practice_id, error_r)) != 0)
		return store_tx_end(s, own, rc, error_r);
	rc = store_thread_of(s, letter_id, &lpractice, &patient_id, error_r);
	if (rc == STORE_NOTFOUND || (rc == STORE_OK &&
	    lpractice != practice_id)) {
		*error_r = "reply file: no such thread in the practice";
		rc = STORE_ERROR;
	}
	if (rc != STORE_OK)
		return store_tx_end(s, own, rc, error_r);
	if ((rc = store_stmt(s, ST_REPLY_FILE, &st, error_r)) != STORE_OK)
		return store_tx_end(s, own, rc, error_r);
	store_clip(by, sizeof(by), actor);
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, letter_id);
	sqlite3_bind_int64(st, 3, patient_id);
	store_bind_id(st, 4, clinician_id);
	sqlite3_bind_int64(st, 5, now);
	sqlite3_bind_text(st, 6, by, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 7, (sqlite3_int64)sealed_len);
	if ((rc = sqlite3_bind_blob64(st, 8, sealed, sealed_len,
	    SQLITE_STATIC)) != SQLITE_OK) {
		store_done(st);
		return store_tx_end(s, own, store_fail(s, rc, "reply file",
		    error_r), error_r);
	}
	if ((rc = store_run(s, st, "reply file", error_r)) != STORE_OK)
		return store_tx_end(s, own, rc, error_r);
	/* The staff's own choice of mails: no ack window. */
	rc = store_rmails_add(s, id, practice_id, letter_id, mails, nmails, 0,
	    now, NULL, error_r);
	snprintf(object, sizeof(object), "reply:%lld", (long long)id);
	if (rc == STORE_OK)
		rc = store_audit_last(s, prev, error_r);
	if (rc == STORE_OK)
		rc = store_audit_append(s, now, actor, "reply.file", object,
		    "ok", prev, error_r);
	return store_tx_end(s, own, rc, error_r);
}

/* Staff reject a quarantined reply. */
int
store_reply_reject(struct store *s, int64_t id, const char *reason,
    const char *actor, const char **error_r)
{
	sqlite3_stmt	*st;
	char		 object[48], by[64];
	int64_t		 now, practice_id;
	int		 own, rc;

	if (reason == NULL || *reason == '\0' ||
	    strlen(reason) > STORE_RREASON_MAX ||
	    store_text_check(reason, 0) != NULL) {
		*error_r = "reply reject: reason missing, too long or not "
		    "one line";
		return STORE_ERROR;
	}
	if ((rc = store_admin_begin(s, actor, &own, &now, error_r)) != 0)
		return rc;
	if ((rc = store_reply_pending(s, id, &practice_id, error_r)) != 0)
		return store_tx_end(s, own, rc, error_r);
	if ((rc = store_stmt(s, ST_REPLY_REJECT, &st, error_r)) != STORE_OK)
		return store_tx_end(s, own, rc, error_r);
	store_clip(by, sizeof(by), actor);
	sqlite3_bind_int64(st, 1, id);
	store_bind_text(st, 2, reason);
	sqlite3_bind_int64(st, 3, now);
	sqlite3_bind_text(st, 4, by, -1, SQLITE_TRANSIENT);
	rc = store_run(s, st, "reply reject", error_r);
	snprintf(object, sizeof(object), "reply:%lld", (long long)id);
	if (rc == STORE_OK)
		rc = store_audit(s, actor, "reply.reject", object, reason,
		    error_r);
	return store_tx_end(s, own, rc, error_r);
}

/* The delivery that sent a Message-ID, with its letter and patient. */
int
store_delivery_by_message_id(struct store *s, const char *msgid,
    int64_t *delivery_id, int64_t *letter_id, int64_t *patient_id,
    const char **error_r)
{
	sqlite3_stmt	*st;
	int		 rc;

	*delivery_id = *letter_id = *patient_id = 0;
	if (msgid == NULL || !store_text_ok(msgid, 0)) {
		*error_r = "Message-ID missing or too long";
		return STORE_ERROR;
	}
	if ((rc = store_stmt(s, ST_DELIVERY_BY_MSGID, &st, error_r)) != 0)
		return rc;
	store_bind_text(st, 1, msgid);
	if ((rc = store_fetch(s, st, "delivery by Message-ID",
	    error_r)) != STORE_OK)
		return rc;
	*delivery_id = sqlite3_column_int64(st, 0);
	*letter_id = sqlite3_column_int64(st, 1);
	*patient_id = sqlite3_column_int64(st, 2);
	store_done(st);
	return STORE_OK;
}

/* Close a thread (once: a second close changes nothing), audited. */
int
store_letter_close(struct store *s, int64_t letter_id, const char *actor,
    const char **error_r)
{
	sqlite3_stmt	*st;
	char		 object[48];
	int64_t		 now;
	int		 own, rc;

	if ((rc = store_admin_begin(s, actor, &own, &now, error_r)) != 0)
		return rc;
	if ((rc = store_stmt(s, ST_LETTER_EXISTS, &st, error_r)) != STORE_OK)
		return store_tx_end(s, own, rc, error_r);
	sqlite3_bind_int64(st, 1, letter_id);
	if ((rc = store_fetch(s, st, "letter get", error_r)) != STORE_OK)
		return store_tx_end(s, own, rc, error_r);
	store_done(st);
	if ((rc = store_stmt(s, ST_LETTER_CLOSE, &st, error_r)) != STORE_OK)
		return store_tx_end(s, own, rc, error_r);
	sqlite3_bind_int64(st, 1, letter_id);
	sqlite3_bind_int64(st, 2, now > 0 ? now : 1);
	store_bind_text(st, 3, actor);
	if ((rc = store_run(s, st, "letter close", error_r)) != STORE_OK ||
	    sqlite3_changes(s->db) == 0)
		return store_tx_end(s, own, rc, error_r);
	snprintf(object, sizeof(object), "letter:%lld", (long long)letter_id);
	rc = store_audit(s, actor, "letter.close", object, "ok", error_r);
	return store_tx_end(s, own, rc, error_r);
}

/* Read and mark one due reply mail, inside the claim's transaction;
 * none is skipped. */
static int
store_rmail_one(struct store *s, int64_t id, void *row, int *skip,
    const char **error_r)
{
	struct store_reply_mail	*m = row;
	sqlite3_stmt		*st;
	const void		*p;
	int			 rc, n, content;

	*skip = 0;
	if ((rc = store_stmt(s, ST_RMAIL_READ, &st, error_r)) != STORE_OK)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	if ((rc = store_fetch(s, st, "reply mail", error_r)) != STORE_OK)
		return rc == STORE_NOTFOUND ? STORE_ERROR : rc;
	m->id = id;
	m->reply_id = sqlite3_column_int64(st, 0);
	m->practice_id = sqlite3_column_int64(st, 1);
	m->letter_id = sqlite3_column_int64(st, 2);
	m->patient_id = sqlite3_column_int64(st, 3);
	m->clinician_id = sqlite3_column_int64(st, 4);
	store_clip(m->kind, sizeof(m->kind),
	    (const char *)sqlite3_column_text(st, 5));
	m->to = store_col_str(st, 6);
	m->attempts = sqlite3_column_int(st, 7) + 1;
	m->urgent = sqlite3_column_int(st, 8);
	m->message_id = store_col_str(st, 9);
	m->in_reply_to = store_col_str(st, 10);
	store_clip(m->sender, sizeof(m->sender),
	    (const char *)sqlite3_column_text(st, 11));
	store_clip(m->reason, sizeof(m->reason),
	    (const char *)sqlite3_column_text(st, 12));
	/* Made once, then the same for every attempt. */
	if (m->message_id == NULL &&
	    (m->message_id = mime_message_id((const char *)
	    sqlite3_column_text(st, 13))) == NULL) {
		store_done(st);
		*error_r = "reply mail: the practice domain cannot make a "
		    "Message-ID";
		return STORE_ERROR;
	}
	content = strcmp(m->kind, STORE_RM_FORWARD) == 0 ||
	    strcmp(m->kind, STORE_RM_APPEND) == 0;
	if (content) {
		p = sqlite3_column_blob(st, 14);
		n = sqlite3_column_bytes(st, 14);
		if (p == NULL || n <= 0) {
			store_done(st);
			*error_r = "reply mail: reply without a sealed "
			    "document";
			return n < 0 || (p == NULL && n > 0) ? STORE_BUSY :
			    STORE_ERROR;
		}
		m->sealed = xmemdup(p, (size_t)n);
		m->sealed_len = (size_t)n;
	}
	store_done(st);
	if ((rc = store_stmt(s, ST_RMAIL_MARK, &st, error_r)) != STORE_OK)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	store_bind_text(st, 2, m->message_id);
	if ((rc = store_run(s, st, "reply mail", error_r)) != STORE_OK)
		return rc;
	if (sqlite3_changes(s->db) != 1) {
		*error_r = "reply mail: the row changed state under the lock";
		return STORE_ERROR;
	}
	return STORE_OK;
}

/* Claim up to max due reply mails, urgent ones first. */
int
store_reply_mails_claim(struct store *s, int64_t now, size_t max,
    struct store_reply_mail **out, size_t *n, const char **error_r)
{
	void	*rows;
	int	 rc;

	rc = store_outbox_claim(s, &store_rmails, now, max, &rows, n,
	    error_r);
	*out = rows;
	return rc;
}

/* store_reply_mails_free for the outbox. */
static void
store_rmails_release(void *rows, size_t n)
{
	struct store_reply_mail	*m = rows;

	store_reply_mails_free(&m, n);
}

/* Free an array of reply mails; accepts NULL. */
void
store_reply_mails_free(struct store_reply_mail **mp, size_t n)
{
	struct store_reply_mail	*m = *mp;
	size_t			 i;

	if (m == NULL)
		return;
	for (i = 0; i < n; i++) {
		free(m[i].to);
		free(m[i].message_id);
		free(m[i].in_reply_to);
		if (m[i].sealed != NULL) {
			hash_wipe(m[i].sealed, m[i].sealed_len);
			free(m[i].sealed);
		}
	}
	free(m);
	*mp = NULL;
}

/* The outcome of a reply mail being sent. */
int
store_reply_mail_done(struct store *s, int64_t id, const char *state,
    int64_t next_attempt, const char *error, const char **error_r)
{
	return store_outbox_done(s, &store_rmails, id, state, next_attempt,
	    error, error_r);
}

/* At start: every reply mail left "sending" goes back to "queued". */
int
store_reply_mails_recover(struct store *s, int64_t *n, const char **error_r)
{
	sqlite3_stmt	*st;
	int		 rc;

	*n = 0;
	if ((rc = store_stmt(s, ST_RECOVER_RMAILS, &st, error_r)) != 0 ||
	    (rc = store_run(s, st, "recover", error_r)) != STORE_OK)
		return rc;
	*n = sqlite3_changes(s->db);
	return STORE_OK;
}

/* Counts of replies and their mails, for status and /metrics. */
int
store_reply_stats(struct store *s, struct store_reply_stats *out,
    const char **error_r)
{
	sqlite3_stmt	*st;
	int		 rc;

	memset(out, 0, sizeof(*out));
	if ((rc = store_stmt(s, ST_REPLY_STATS, &st, error_r)) != STORE_OK)
		return rc;
	if ((rc = store_fetch(s, st, "reply stats", error_r)) != STORE_OK)
		return rc == STORE_NOTFOUND ? STORE_ERROR : rc;
	out->filed = sqlite3_column_int64(st, 0);
	out->quarantined = sqlite3_column_int64(st, 1);
	out->rejected = sqlite3_column_int64(st, 2);
	out->mails_queued = sqlite3_column_int64(st, 3);
	out->mails_failed = sqlite3_column_int64(st, 4);
	out->oldest_quarantined = sqlite3_column_int64(st, 5);	/* NULL: 0 */
	store_done(st);
	return STORE_OK;
}

/* --- test hooks (store_sqlite.h) -------------------------------------- */

/* EXPLAIN QUERY PLAN of a named statement, one detail line per step. */
int
store_sqlite_plan(struct store *s, const char *name, char **plan,
    const char **error_r)
{
	static const struct {
		const char	*name;
		enum store_stmt	 which;
	} names[] = {
		{ "claim_queued", ST_CLAIM_QUEUED },
		{ "claim_deferred", ST_CLAIM_DEFERRED },
		{ "warn", ST_WARN_DUE },
		{ "alerts_claim", ST_ALERTS_DUE },
		{ "callbacks_claim", ST_CALLBACKS_DUE },
		{ "queue_stats", ST_QSTATS_MORE },
		{ "reply_mails_claim", ST_RMAILS_DUE },
		{ "ack_window_thread", ST_RMAIL_WINDOW_THREAD },
		{ "ack_window_addr", ST_RMAIL_WINDOW_ADDR },
		{ "reply_dup", ST_REPLY_DUP },
		{ "delivery_by_message_id", ST_DELIVERY_BY_MSGID },
		{ "reply_stats", ST_REPLY_STATS },
	};
	sqlite3_stmt	*st;
	char		*sql, *out, *t;
	size_t		 i;
	int		 rc;

	*plan = NULL;
	for (i = 0; i < nitems(names); i++) {
		if (strcmp(names[i].name, name) == 0)
			break;
	}
	if (i == nitems(names)) {
		*error_r = "no statement of that name";
		return STORE_ERROR;
	}
	xasprintf(&sql, "EXPLAIN QUERY PLAN %s", store_sql[names[i].which]);
	rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
	free(sql);
	if (rc != SQLITE_OK)
		return store_fail(s, rc, "prepare", error_r);
	out = xstrdup("");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		xasprintf(&t, "%s%s\n", out, sqlite3_column_text(st, 3));
		free(out);
		out = t;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		free(out);
		return store_fail(s, rc, "explain", error_r);
	}
	*plan = out;
	return STORE_OK;
}
