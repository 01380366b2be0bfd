-- schema.sql - the sealpost database schema (SQLite), current version: 1.
--
-- This file is for humans and for the unit test.  The store does not read
-- it: store_open() applies the migrations compiled into src/store_sqlite.c
-- (store_migrations[]) in order, each in one transaction, and sets
-- PRAGMA user_version to the number of migrations applied.  This file must
-- create the same schema as all migrations together; tests/test_store.c
-- builds a database from each and compares sqlite_master (comments and
-- white space aside).  A new version appends a migration there and updates
-- this file; a database with a newer version than the code is refused.
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
	archive_wrapped	BLOB CHECK (archive_wrapped IS NULL OR length(archive_wrapped) <= 128)
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
	UNIQUE (letter_id, recipient)
);
CREATE INDEX deliveries_due ON deliveries (state, next_attempt);

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

PRAGMA user_version = 1;
