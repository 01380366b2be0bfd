-- schema.sql - the sealpost database schema (SQLite), current version: 3.
--
-- This file is for humans and for the unit test.  The store does not read
-- it: store_open() applies the migrations compiled into src/store_sqlite.c
-- (store_migrations[]) in order, each in one transaction, and sets
-- PRAGMA user_version to the number of migrations applied.  This file must
-- create the same schema as all migrations together; tests/test_store.c
-- builds a database from each and compares sqlite_master (comments and
-- white space aside).  A new version appends a migration there and updates
-- this file; a database with a newer version than the code is refused.
-- Columns added by a later version (ALTER TABLE ADD COLUMN) are written
-- where SQLite puts them: after the last column, before the table
-- constraints; "-- 2:" and "-- 3:" mark them.
--
-- Conventions: times are seconds since the epoch (UTC); every row holding
-- people or letters carries practice_id, and the composite foreign keys
-- make a letter's patient, author and client belong to the letter's
-- practice.  Parties are deactivated or revoked, never deleted: erasure is
-- crypto-shredding (the wrapped key is destroyed).  Nothing clinical is in
-- clear: letters.sealed is an age v1 blob.  Large blobs are the last column
-- of their table so reading the other columns never touches overflow pages.
--
-- The audit table is append-only (triggers) and hash-chained:
--   hash = SHA-256(prev_hash || be64(ts) || be32(len) actor || be32(len)
--                  action || be32(len) object || be32(len) outcome)
-- computed by the store in C; the first row's prev_hash is 32 zero bytes.

PRAGMA application_id = 1397047628; -- 0x5345414c, "SEAL"

CREATE TABLE practices (
	id		INTEGER PRIMARY KEY,
	name		TEXT NOT NULL,
	domain		TEXT NOT NULL COLLATE NOCASE UNIQUE,
	created		INTEGER NOT NULL,
	archive_pk	BLOB CHECK (archive_pk IS NULL OR length(archive_pk) = 32),
	archive_wrapped	BLOB CHECK (archive_wrapped IS NULL OR length(archive_wrapped) <= 128),
	-- 2: "notify" mails only a notice, the letter stays behind the link
	content_policy	TEXT NOT NULL DEFAULT 'full'
	    CHECK (content_policy IN ('full', 'notify')),
	failsafe_email	TEXT,		-- alerts go here; NULL: none
	reply_domain	TEXT,		-- NULL: domain
	postal_address	TEXT,		-- paper letter header, LF-separated
	phone		TEXT,
	-- 3: replies when the clinician is absent (NULL: failsafe_email)
	-- and red-flag alerts (NULL: team_email)
	team_email	TEXT,
	duty_email	TEXT
);

CREATE TABLE clinicians (
	id		INTEGER PRIMARY KEY,
	practice_id	INTEGER NOT NULL REFERENCES practices (id),
	name		TEXT NOT NULL,
	email		TEXT NOT NULL COLLATE NOCASE,
	role		TEXT,
	active		INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
	created		INTEGER NOT NULL,
	pk		BLOB CHECK (pk IS NULL OR length(pk) = 32),
	wrapped		BLOB CHECK (wrapped IS NULL OR length(wrapped) <= 128),
	UNIQUE (practice_id, email),
	UNIQUE (practice_id, id)
);

CREATE TABLE patients (
	id		INTEGER PRIMARY KEY,
	practice_id	INTEGER NOT NULL REFERENCES practices (id),
	name		TEXT NOT NULL,
	email		TEXT COLLATE NOCASE,
	verified	INTEGER NOT NULL DEFAULT 0 CHECK (verified IN (0, 1)),
	consent		INTEGER NOT NULL DEFAULT 0 CHECK (consent IN (0, 1)),
	age_recipient	TEXT,
	created		INTEGER NOT NULL,
	pk		BLOB CHECK (pk IS NULL OR length(pk) = 32),
	wrapped		BLOB CHECK (wrapped IS NULL OR length(wrapped) <= 128),
	-- 2:
	postal_address	TEXT,		-- LF-separated
	shared_ok	INTEGER NOT NULL DEFAULT 0
	    CHECK (shared_ok IN (0, 1)),	-- shared address, with consent
	CHECK (verified = 0 OR email IS NOT NULL),
	UNIQUE (practice_id, id)
);
CREATE INDEX patients_email ON patients (practice_id, email);

-- A clinic system allowed to submit.  Only the SHA-256 of its token.
CREATE TABLE clients (
	id		INTEGER PRIMARY KEY,
	practice_id	INTEGER NOT NULL REFERENCES practices (id),
	name		TEXT NOT NULL,
	token_hash	BLOB NOT NULL UNIQUE CHECK (length(token_hash) = 32),
	default_author_id INTEGER,
	revoked		INTEGER NOT NULL DEFAULT 0 CHECK (revoked IN (0, 1)),
	created		INTEGER NOT NULL,
	-- 2: delivery-state webhooks; the bearer token is wrapped
	callback_url	TEXT,
	callback_token	BLOB
	    CHECK (callback_token IS NULL OR length(callback_token) <= 256),
	UNIQUE (practice_id, id),
	FOREIGN KEY (practice_id, default_author_id)
	    REFERENCES clinicians (practice_id, id)
);

CREATE TABLE letters (
	id		INTEGER PRIMARY KEY,
	practice_id	INTEGER NOT NULL REFERENCES practices (id),
	client_id	INTEGER,
	patient_id	INTEGER NOT NULL,
	author_id	INTEGER,
	priority	INTEGER NOT NULL DEFAULT 0 CHECK (priority >= 0),
	channel		TEXT NOT NULL,
	state		TEXT NOT NULL DEFAULT 'accepted',
	created		INTEGER NOT NULL,
	sealed_sha256	BLOB NOT NULL CHECK (length(sealed_sha256) = 32),
	sealed_len	INTEGER NOT NULL CHECK (sealed_len = length(sealed)),
	sealed		BLOB NOT NULL,
	FOREIGN KEY (practice_id, client_id) REFERENCES clients (practice_id, id),
	FOREIGN KEY (practice_id, patient_id)
	    REFERENCES patients (practice_id, id),
	FOREIGN KEY (practice_id, author_id)
	    REFERENCES clinicians (practice_id, id)
);
CREATE INDEX letters_patient ON letters (practice_id, patient_id);

-- One row per recipient of a letter; the scheduler reads deliveries_due.
CREATE TABLE deliveries (
	id		INTEGER PRIMARY KEY,
	letter_id	INTEGER NOT NULL REFERENCES letters (id),
	practice_id	INTEGER NOT NULL REFERENCES practices (id),
	recipient	TEXT NOT NULL,
	address		TEXT,
	state		TEXT NOT NULL DEFAULT 'queued',
	attempts	INTEGER NOT NULL DEFAULT 0,
	next_attempt	INTEGER NOT NULL,
	updated		INTEGER NOT NULL,
	last_error	TEXT,
	-- 2:
	priority	INTEGER NOT NULL DEFAULT 0 CHECK (priority >= 0),
	message_id	TEXT,		-- set at the first claim, then kept
	expires		INTEGER NOT NULL DEFAULT 0,	-- lifetime end
	warn_at		INTEGER NOT NULL DEFAULT 0,	-- delay warning, 0: none
	smtp_code	INTEGER NOT NULL DEFAULT 0,	-- last reply, 0: none
	sent_at		INTEGER NOT NULL DEFAULT 0,
	released	INTEGER NOT NULL DEFAULT 0 CHECK (released IN (0, 1)),
	UNIQUE (letter_id, recipient)
);
-- Retries are claimed through deliveries_due, new ones urgent first
-- through deliveries_queue; the partial indexes stay small.
CREATE INDEX deliveries_due ON deliveries (state, next_attempt);
CREATE INDEX deliveries_queue ON deliveries
    (state, priority DESC, next_attempt);
CREATE INDEX deliveries_warn ON deliveries (warn_at)
    WHERE warn_at > 0;
CREATE UNIQUE INDEX deliveries_message_id ON deliveries (message_id)
    WHERE message_id IS NOT NULL;

-- The state vocabularies (triggers: a CHECK cannot be added to a table).
-- Deliveries:
--   queued --claim--> sending --> sent | deferred | failed | expired
--   queued|deferred --> held --release--> queued
--   queued|deferred|held --> cancelled;  sent --bounce--> failed
-- A letter is accepted while a delivery is open, held while one is held,
-- sent when all are sent, paper once the failsafe ran, or cancelled.
CREATE TRIGGER deliveries_state_insert BEFORE INSERT ON deliveries
WHEN NEW.state NOT IN ('queued', 'sending', 'sent', 'deferred',
    'failed', 'expired', 'cancelled', 'held')
BEGIN
	SELECT RAISE(ABORT, 'unknown delivery state');
END;
CREATE TRIGGER deliveries_state_update BEFORE UPDATE OF state
    ON deliveries
WHEN NEW.state NOT IN ('queued', 'sending', 'sent', 'deferred',
    'failed', 'expired', 'cancelled', 'held')
BEGIN
	SELECT RAISE(ABORT, 'unknown delivery state');
END;
CREATE TRIGGER letters_state_insert BEFORE INSERT ON letters
WHEN NEW.state NOT IN ('accepted', 'sent', 'paper', 'held',
    'cancelled')
BEGIN
	SELECT RAISE(ABORT, 'unknown letter state');
END;
CREATE TRIGGER letters_state_update BEFORE UPDATE OF state ON letters
WHEN NEW.state NOT IN ('accepted', 'sent', 'paper', 'held',
    'cancelled')
BEGIN
	SELECT RAISE(ABORT, 'unknown letter state');
END;

-- The paper queue: a letter enters it once, when the failsafe runs
-- (later reasons go to the audit log); the staff print and close it.
CREATE TABLE paper (
	letter_id	INTEGER PRIMARY KEY REFERENCES letters (id),
	practice_id	INTEGER NOT NULL REFERENCES practices (id),
	patient_id	INTEGER NOT NULL,
	reason		TEXT NOT NULL,
	created		INTEGER NOT NULL,
	printed		INTEGER NOT NULL DEFAULT 0,	-- first print, 0: not yet
	done		INTEGER NOT NULL DEFAULT 0,	-- closed, 0: open
	done_by		TEXT,
	FOREIGN KEY (practice_id, patient_id)
	    REFERENCES patients (practice_id, id)
);
CREATE INDEX paper_open ON paper (done, created);

-- Mails to the practice's failsafe address ("none": it had none).
CREATE TABLE alerts (
	id		INTEGER PRIMARY KEY,
	practice_id	INTEGER NOT NULL REFERENCES practices (id),
	letter_id	INTEGER REFERENCES letters (id),
	delivery_id	INTEGER REFERENCES deliveries (id),
	kind		TEXT NOT NULL CHECK (length(kind) BETWEEN 1 AND 15),
	reason		TEXT NOT NULL,
	created		INTEGER NOT NULL,
	state		TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued',
	    'sending', 'sent', 'failed', 'none')),
	attempts	INTEGER NOT NULL DEFAULT 0,
	next_attempt	INTEGER NOT NULL,
	message_id	TEXT,
	last_error	TEXT
);
CREATE INDEX alerts_due ON alerts (state, next_attempt);

-- Webhook events for the client that submitted the letter; the payload
-- is JSON made by the store, ids and states only, never content.
CREATE TABLE callbacks (
	id		INTEGER PRIMARY KEY,
	client_id	INTEGER NOT NULL REFERENCES clients (id),
	practice_id	INTEGER NOT NULL REFERENCES practices (id),
	delivery_id	INTEGER NOT NULL REFERENCES deliveries (id),
	payload		TEXT NOT NULL,
	state		TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued',
	    'sending', 'sent', 'failed')),
	attempts	INTEGER NOT NULL DEFAULT 0,
	next_attempt	INTEGER NOT NULL,
	created		INTEGER NOT NULL,
	http_status	INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX callbacks_due ON callbacks (state, next_attempt);

-- Idempotency-Key of a submission: a repeat returns the first letter.
CREATE TABLE idempotency (
	id		INTEGER PRIMARY KEY,
	practice_id	INTEGER NOT NULL REFERENCES practices (id),
	client_id	INTEGER NOT NULL REFERENCES clients (id),
	key		TEXT NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
	req_hash	BLOB NOT NULL CHECK (length(req_hash) = 32),
	letter_id	INTEGER NOT NULL REFERENCES letters (id),
	created		INTEGER NOT NULL,
	UNIQUE (client_id, key)
);

CREATE TABLE audit (
	id		INTEGER PRIMARY KEY,
	ts		INTEGER NOT NULL,
	actor		TEXT NOT NULL,
	action		TEXT NOT NULL,
	object		TEXT NOT NULL,
	outcome		TEXT NOT NULL,
	prev_hash	BLOB NOT NULL CHECK (length(prev_hash) = 32),
	hash		BLOB NOT NULL CHECK (length(hash) = 32)
);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN
	SELECT RAISE(ABORT, 'audit is append-only');
END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN
	SELECT RAISE(ABORT, 'audit is append-only');
END;

-- 3: replies in.
-- A closed thread (a letter): later replies are quarantined.  A table of
-- its own, not a column of letters: it would come after the sealed blob.
CREATE TABLE letter_closed (
	letter_id	INTEGER PRIMARY KEY REFERENCES letters (id),
	closed		INTEGER NOT NULL CHECK (closed > 0),
	closed_by	TEXT NOT NULL
);

-- Every reply that came in, sealed (a "sealpost-reply/1" document for
-- the thread's clinician and the archive, or the archive only).  In
-- clear: ids, states, the From address, the patient's Message-ID, times,
-- quarantine reasons.  dedup = SHA-256 over the Message-ID (else the raw
-- message) and the thread: the same message is never filed twice.
--   quarantined --file--> filed;  quarantined --reject--> rejected
CREATE TABLE replies (
	id		INTEGER PRIMARY KEY,
	practice_id	INTEGER NOT NULL REFERENCES practices (id),
	letter_id	INTEGER REFERENCES letters (id),	-- NULL: no thread
	patient_id	INTEGER,			-- NULL: unknown
	clinician_id	INTEGER,			-- NULL: the team
	state		TEXT NOT NULL CHECK (state IN ('filed', 'quarantined',
	    'rejected')),
	reason		TEXT CHECK (reason IS NULL OR length(reason) <= 47),
	detail		TEXT,
	sender		TEXT NOT NULL CHECK (sender IN ('verified', 'unverified',
	    'mismatch', 'spoof')),
	from_addr	TEXT,
	message_id	TEXT,
	source		TEXT NOT NULL CHECK (source IN ('imap', 'lmtp')),
	dedup		BLOB NOT NULL CHECK (length(dedup) = 32),
	urgent		INTEGER NOT NULL DEFAULT 0 CHECK (urgent IN (0, 1)),
	shared		INTEGER NOT NULL DEFAULT 0 CHECK (shared IN (0, 1)),
	received	INTEGER NOT NULL,
	created		INTEGER NOT NULL,
	decided		INTEGER NOT NULL DEFAULT 0,	-- by staff, 0: not
	decided_by	TEXT,
	sealed_len	INTEGER NOT NULL CHECK (sealed_len = length(sealed)),
	sealed		BLOB NOT NULL,
	CHECK (state <> 'filed' OR letter_id IS NOT NULL),
	CHECK (state = 'filed' OR reason IS NOT NULL),
	UNIQUE (practice_id, dedup),
	FOREIGN KEY (practice_id, patient_id)
	    REFERENCES patients (practice_id, id),
	FOREIGN KEY (practice_id, clinician_id)
	    REFERENCES clinicians (practice_id, id)
);
CREATE INDEX replies_practice ON replies (practice_id, id);
CREATE INDEX replies_letter ON replies (letter_id, id);
CREATE INDEX replies_state ON replies (state, received);

-- Mails a reply causes, queued with it: forward (to the clinician or
-- team), append (IMAP, no address), ack and contact (to the patient, no
-- content), redflag and quarantine (to the practice, ids only).  Claimed
-- urgent first through reply_mails_due; reply_mails_window finds the
-- last ack of a thread (or, without a thread, of an address).
CREATE TABLE reply_mails (
	id		INTEGER PRIMARY KEY,
	reply_id	INTEGER NOT NULL REFERENCES replies (id),
	practice_id	INTEGER NOT NULL REFERENCES practices (id),
	letter_id	INTEGER REFERENCES letters (id),
	patient_id	INTEGER,
	clinician_id	INTEGER,
	kind		TEXT NOT NULL CHECK (kind IN ('forward', 'append', 'ack',
	    'redflag', 'contact', 'quarantine')),
	to_addr		TEXT COLLATE NOCASE,
	state		TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued',
	    'sending', 'sent', 'failed')),
	urgent		INTEGER NOT NULL DEFAULT 0 CHECK (urgent IN (0, 1)),
	attempts	INTEGER NOT NULL DEFAULT 0,
	next_attempt	INTEGER NOT NULL,
	created		INTEGER NOT NULL,
	message_id	TEXT,		-- set at the first claim, then kept
	last_error	TEXT,
	CHECK ((to_addr IS NULL) = (kind = 'append')),
	FOREIGN KEY (practice_id, patient_id)
	    REFERENCES patients (practice_id, id),
	FOREIGN KEY (practice_id, clinician_id)
	    REFERENCES clinicians (practice_id, id)
);
CREATE INDEX reply_mails_due ON reply_mails
    (state, urgent, next_attempt);
CREATE INDEX reply_mails_window ON reply_mails
    (kind, letter_id, to_addr, created);

PRAGMA user_version = 3;
