/*
 * test_store.c - unit tests of the SQLite store backend (store.h).
 *
 * Each part runs on a fresh database in a private directory under $TMPDIR
 * (or /tmp).  A raw sqlite3 connection plays the attacker with file access
 * (tampering with the audit chain) and inspects what the store wrote.
 * The schema test needs SEALPOST_SRCDIR (set by tests/run) to find
 * src/schema.sql.  The group-commit figures are reported, not asserted.
 */
#include "build.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "hash.h"
#include "log.h"
#include "store.h"
#include "util.h"

#include "tap.h"
#include "store_fixture.h"

#define BLOB_LEN	4096

struct worker {
	char		*path;
	struct fixture	*fx;
	int		 tag;
	int		 n;
	int		 errors;
	int64_t		 letters;
	int64_t		 audits;
};

static int	 raw_exec(sqlite3 *, const char *, char *, size_t);
static int	 file_mode(const char *);
static void	 fill_letter(struct store_letter_new *, struct fixture *,
		    const unsigned char *, const char *, unsigned char);
static void	 test_open(void);
static void	 test_parties(void);
static void	 test_letters(void);
static void	 test_txn(void);
static void	 test_audit(void);
static void	 test_check(void);
static char	*normalize(const char *);
static char	*schema_dump(sqlite3 *);
static void	 test_schema(void);
static void	*worker_run(void *);
static void	 test_concurrent(void);
static void	 bench(void);

/* Execute SQL; the message (if any) goes to msg. */
static int
raw_exec(sqlite3 *db, const char *sql, char *msg, size_t msglen)
{
	char	*e = NULL;
	int	 rc;

	rc = sqlite3_exec(db, sql, NULL, NULL, &e);
	if (msg != NULL)
		snprintf(msg, msglen, "%s", e != NULL ? e : "");
	sqlite3_free(e);
	return rc;
}

static int
file_mode(const char *path)
{
	struct stat	 sb;

	if (stat(path, &sb) == -1)
		return -1;
	return (int)(sb.st_mode & 07777);
}

/* A letter for patient 1 of practice 1. */
static void
fill_letter(struct store_letter_new *l, struct fixture *fx,
    const unsigned char *blob, const char *key, unsigned char reqtag)
{
	memset(l, 0, sizeof(*l));
	l->practice_id = fx->p1;
	l->client_id = fx->cl1;
	l->patient_id = fx->pat1;
	l->author_id = fx->c1;
	l->priority = 0;
	l->channel = "http";
	l->idem_key = key;
	memset(l->req_hash, reqtag, sizeof(l->req_hash));
	l->sealed = blob;
	l->sealed_len = BLOB_LEN;
	l->address = "jo@mail.example";
}

/* Create, configure, migrate, reopen; modes; version refusal. */
static void
test_open(void)
{
	struct store	*s = NULL;
	const char	*e = NULL;
	char		*path = tpath("open.db"), *wal, *shm, want[160];
	sqlite3		*db;
	int64_t		 id;
	int		 rc, v;

	rc = store_open(path, STORE_RDWR, &s, &e);
	ok(rc == STORE_ERROR && s == NULL, "open of a missing file without "
	    "STORE_CREATE fails (%s)", e != NULL ? e : "?");

	rc = store_open(path, STORE_CREATE, &s, &e);
	ok(rc == STORE_OK && s != NULL, "create and migrate (%s)",
	    rc == STORE_OK ? "ok" : e);
	if (s == NULL) {
		free(path);
		return;
	}
	v = store_schema_version(s);
	ok(v >= 1, "schema version %d", v);
	is_int(file_mode(path), 0600, "database file mode 0600");
	ok(store_practice_add(s, "P", "p.example", &id, &e) == STORE_OK,
	    "first write");
	xasprintf(&wal, "%s-wal", path);
	xasprintf(&shm, "%s-shm", path);
	is_int(file_mode(wal), 0600, "-wal file mode 0600");
	is_int(file_mode(shm), 0600, "-shm file mode 0600");
	free(wal);
	free(shm);

	if ((db = raw_open(path)) != NULL) {
		sqlite3_stmt	*st;
		const char	*mode = NULL;

		if (sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st,
		    NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
			mode = (const char *)sqlite3_column_text(st, 0);
		is_str(mode, "wal", "journal mode is WAL");
		sqlite3_finalize(st);
		is_int(raw_int(db, "PRAGMA user_version"), v,
		    "user_version is the schema version");
		is_int(raw_int(db, "PRAGMA application_id"), 0x5345414c,
		    "application_id is SEAL");
		sqlite3_close(db);
	}
	store_close(&s);
	ok(s == NULL, "store_close sets the pointer to NULL");
	store_close(&s);

	rc = store_open(path, STORE_RDWR, &s, &e);
	ok(rc == STORE_OK && store_schema_version(s) == v,
	    "reopen keeps the version");
	store_close(&s);

	rc = store_open(path, STORE_RDONLY, &s, &e);
	ok(rc == STORE_OK, "read-only open");
	if (rc == STORE_OK) {
		rc = store_practice_add(s, "Q", "q.example", &id, &e);
		ok(rc == STORE_ERROR, "write on a read-only store fails (%s)",
		    e);
		store_close(&s);
	}

	/* A database from a newer sealpost. */
	if ((db = raw_open(path)) != NULL) {
		raw_exec(db, "PRAGMA user_version = 99", NULL, 0);
		sqlite3_close(db);
	}
	e = NULL;
	rc = store_open(path, STORE_RDWR, &s, &e);
	snprintf(want, sizeof(want), "database schema version 99 is newer "
	    "than this sealpost (%d); upgrade sealpost", v);
	ok(rc == STORE_ERROR && s == NULL, "a newer schema is refused");
	is_str(e, want, "refusal message");
	rc = store_open(path, STORE_RDONLY, &s, &e);
	ok(rc == STORE_ERROR && s == NULL, "refused read-only too");
	if ((db = raw_open(path)) != NULL) {
		is_int(raw_int(db, "PRAGMA user_version"), 99,
		    "the refused database was left alone");
		snprintf(want, sizeof(want), "PRAGMA user_version = %d", v);
		raw_exec(db, want, NULL, 0);
		sqlite3_close(db);
	}
	rc = store_open(path, STORE_RDWR, &s, &e);
	ok(rc == STORE_OK, "opens again at the known version");
	store_close(&s);
	free(path);

	/* Someone else's database. */
	path = tpath("foreign.db");
	db = NULL;
	if (sqlite3_open(path, &db) == SQLITE_OK)
		raw_exec(db, "PRAGMA application_id = 42; "
		    "CREATE TABLE t (x)", NULL, 0);
	sqlite3_close(db);
	rc = store_open(path, STORE_CREATE, &s, &e);
	ok(rc == STORE_ERROR && strstr(e, "not a sealpost") != NULL,
	    "a foreign database is refused (%s)", e);
	free(path);

	rc = store_open("/nonexistent-dir/x.db", STORE_CREATE, &s, &e);
	ok(rc == STORE_ERROR && s == NULL, "create in a missing directory "
	    "fails (%s)", e);
}

/* Practices, clinicians, patients, identities, clients. */
static void
test_parties(void)
{
	struct store		*s = NULL;
	struct store_practice	*p = NULL;
	struct store_clinician	*c = NULL;
	struct store_patient	*pt = NULL;
	struct store_client	*cl = NULL;
	const char		*e = NULL;
	char			*path = tpath("parties.db");
	unsigned char		 pk[32], wr[STORE_WRAPPED_MAX + 1], tok[32];
	int64_t			 p1, p2, c1, c2, pat1, pat2, cl1, id;
	int			 rc;

	if (store_open(path, STORE_CREATE, &s, &e) != STORE_OK) {
		ok(0, "open: %s", e);
		free(path);
		return;
	}
	free(path);

	ok(store_practice_add(s, "Riverside Surgery", "Riverside.Example",
	    &p1, &e) == STORE_OK && p1 > 0, "practice add");
	ok(store_practice_add(s, "Hillside", "hillside.example", &p2, &e) ==
	    STORE_OK && p2 != p1, "second practice");
	rc = store_practice_add(s, "Dup", "RIVERSIDE.example", &id, &e);
	ok(rc == STORE_ERROR, "duplicate domain (any case) refused (%s)", e);
	rc = store_practice_add(s, NULL, "x.example", &id, &e);
	ok(rc == STORE_ERROR, "practice without a name refused");

	rc = store_practice_get(s, p1, &p, &e);
	ok(rc == STORE_OK && p != NULL, "practice get");
	if (p != NULL) {
		is_str(p->name, "Riverside Surgery", "practice name");
		is_str(p->domain, "riverside.example", "domain lower-cased");
		is_int(p->archive_wrapped_len, 0, "no archive identity yet");
		ok(p->created > 0, "created set");
	}
	store_practice_free(&p);
	ok(p == NULL, "practice_free sets NULL");
	store_practice_free(&p);
	rc = store_practice_by_domain(s, "RIVERSIDE.EXAMPLE", &p, &e);
	ok(rc == STORE_OK && p != NULL && p->id == p1,
	    "practice by domain, case-insensitive");
	store_practice_free(&p);
	rc = store_practice_by_domain(s, "nowhere.example", &p, &e);
	is_int(rc, STORE_NOTFOUND, "unknown domain: NOTFOUND");
	ok(p == NULL, "no struct on NOTFOUND");
	is_int(store_practice_get(s, 9999, &p, &e), STORE_NOTFOUND,
	    "unknown practice id: NOTFOUND");

	ok(store_clinician_add(s, p1, "Dr Patel", "Dr.Patel@nhs.example",
	    "gp", &c1, &e) == STORE_OK, "clinician add");
	ok(store_clinician_add(s, p2, "Dr Patel", "dr.patel@nhs.example",
	    NULL, &c2, &e) == STORE_OK,
	    "same address in another practice, no role");
	rc = store_clinician_add(s, p1, "Dr P", "DR.PATEL@nhs.example", "gp",
	    &id, &e);
	ok(rc == STORE_ERROR, "duplicate address in a practice refused (%s)",
	    e);
	rc = store_clinician_add(s, 9999, "Dr X", "x@nhs.example", "gp", &id,
	    &e);
	ok(rc == STORE_ERROR, "clinician of a missing practice refused (%s)",
	    e);
	rc = store_clinician_get(s, c1, &c, &e);
	ok(rc == STORE_OK && c != NULL, "clinician get");
	if (c != NULL) {
		is_int(c->practice_id, p1, "clinician practice");
		is_str(c->name, "Dr Patel", "clinician name");
		is_str(c->email, "Dr.Patel@nhs.example", "clinician email");
		is_str(c->role, "gp", "clinician role");
		is_int(c->active, 1, "clinician active");
	}
	store_clinician_free(&c);
	rc = store_clinician_by_email(s, p2, "DR.PATEL@NHS.EXAMPLE", &c, &e);
	ok(rc == STORE_OK && c != NULL && c->id == c2 && c->role == NULL,
	    "clinician by email within the practice");
	store_clinician_free(&c);
	rc = store_clinician_by_email(s, p1, "nobody@nhs.example", &c, &e);
	is_int(rc, STORE_NOTFOUND, "unknown clinician address: NOTFOUND");
	is_int(store_clinician_get(s, 9999, &c, &e), STORE_NOTFOUND,
	    "unknown clinician id: NOTFOUND");

	ok(store_patient_add(s, p1, "Jo Bloggs", "jo@mail.example", 1, 1,
	    "age1examplexyz", &pat1, &e) == STORE_OK, "patient add");
	ok(store_patient_add(s, p1, "No Mail", NULL, 0, 0, NULL, &pat2,
	    &e) == STORE_OK, "patient without address");
	rc = store_patient_add(s, p1, "Odd", NULL, 1, 1, NULL, &id, &e);
	ok(rc == STORE_ERROR, "verified without address refused (%s)", e);
	rc = store_patient_get(s, pat1, &pt, &e);
	ok(rc == STORE_OK && pt != NULL, "patient get");
	if (pt != NULL) {
		is_int(pt->practice_id, p1, "patient practice");
		is_str(pt->name, "Jo Bloggs", "patient name");
		is_str(pt->email, "jo@mail.example", "patient email");
		ok(pt->verified == 1 && pt->consent == 1,
		    "verified and consent");
		is_str(pt->age_recipient, "age1examplexyz", "age recipient");
		is_int(pt->wrapped_len, 0, "no identity yet");
	}
	store_patient_free(&pt);
	rc = store_patient_get(s, pat2, &pt, &e);
	ok(rc == STORE_OK && pt != NULL && pt->email == NULL &&
	    pt->age_recipient == NULL && pt->verified == 0,
	    "NULL address and recipient read back as NULL");
	store_patient_free(&pt);
	is_int(store_patient_get(s, 9999, &pt, &e), STORE_NOTFOUND,
	    "unknown patient: NOTFOUND");

	/* Identities. */
	memset(pk, 0xa1, sizeof(pk));
	memset(wr, 0xb2, sizeof(wr));
	ok(store_set_identity(s, "practice", p1, pk, wr, 72, &e) == STORE_OK,
	    "practice identity");
	pk[0] = 2;
	ok(store_set_identity(s, "clinician", c1, pk, wr, 72, &e) ==
	    STORE_OK, "clinician identity");
	pk[0] = 3;
	ok(store_set_identity(s, "patient", pat1, pk, wr, STORE_WRAPPED_MAX,
	    &e) == STORE_OK, "patient identity (maximum wrapped size)");
	is_int(store_set_identity(s, "patient", 9999, pk, wr, 72, &e),
	    STORE_NOTFOUND, "identity of a missing row: NOTFOUND");
	is_int(store_set_identity(s, "client", 1, pk, wr, 72, &e),
	    STORE_ERROR, "unknown identity kind");
	is_int(store_set_identity(s, "patient", pat1, pk, wr,
	    STORE_WRAPPED_MAX + 1, &e), STORE_ERROR,
	    "oversized wrapped key refused");
	if (store_practice_get(s, p1, &p, &e) == STORE_OK) {
		ok(p->archive_pk[0] == 0xa1 && p->archive_pk[31] == 0xa1 &&
		    p->archive_wrapped_len == 72 &&
		    p->archive_wrapped[71] == 0xb2,
		    "practice identity read back");
		store_practice_free(&p);
	} else
		ok(0, "practice identity read back: %s", e);
	if (store_clinician_get(s, c1, &c, &e) == STORE_OK) {
		ok(c->pk[0] == 2 && c->pk[1] == 0xa1 && c->wrapped_len == 72,
		    "clinician identity read back");
		store_clinician_free(&c);
	} else
		ok(0, "clinician identity read back: %s", e);
	if (store_patient_get(s, pat1, &pt, &e) == STORE_OK) {
		ok(pt->pk[0] == 3 && pt->wrapped_len == STORE_WRAPPED_MAX &&
		    pt->wrapped[STORE_WRAPPED_MAX - 1] == 0xb2,
		    "patient identity read back");
		store_patient_free(&pt);
	} else
		ok(0, "patient identity read back: %s", e);

	/* Clients. */
	memset(tok, 0x5c, sizeof(tok));
	ok(store_client_add(s, p1, "EMIS", tok, c1, &cl1, &e) == STORE_OK,
	    "client add");
	rc = store_client_add(s, p1, "again", tok, 0, &id, &e);
	ok(rc == STORE_ERROR, "duplicate token hash refused (%s)", e);
	tok[0] = 1;
	rc = store_client_add(s, p2, "cross", tok, c1, &id, &e);
	ok(rc == STORE_ERROR,
	    "default author from another practice refused (%s)", e);
	ok(store_client_add(s, p2, "no author", tok, 0, &id, &e) == STORE_OK,
	    "client without default author");
	tok[0] = 0x5c;
	rc = store_client_by_token(s, tok, &cl, &e);
	ok(rc == STORE_OK && cl != NULL, "client by token hash");
	if (cl != NULL) {
		is_int(cl->id, cl1, "client id");
		is_int(cl->practice_id, p1, "client practice");
		is_str(cl->name, "EMIS", "client name");
		is_int(cl->default_author_id, c1, "default author");
		is_int(cl->revoked, 0, "not revoked");
	}
	store_client_free(&cl);
	tok[0] = 1;
	rc = store_client_by_token(s, tok, &cl, &e);
	ok(rc == STORE_OK && cl != NULL && cl->default_author_id == 0,
	    "no default author reads as 0");
	store_client_free(&cl);
	tok[0] = 2;
	is_int(store_client_by_token(s, tok, &cl, &e), STORE_NOTFOUND,
	    "unknown token: NOTFOUND");
	store_close(&s);
}

/* Group commit: new, duplicate, conflict; deliveries; audit rows. */
static void
test_letters(void)
{
	struct store		*s = NULL, *ro = NULL;
	struct store_letter	*lt = NULL;
	struct store_letter_new	 l[5];
	struct store_stats	 st0, st1;
	struct fixture		 fx;
	const char		*e = NULL;
	char			*path = tpath("letters.db");
	unsigned char		 blob[2][BLOB_LEN], dig[32], h[32];
	unsigned char		*got = NULL;
	size_t			 gotlen;
	int64_t			 a, b, lid;
	sqlite3			*db;
	int			 rc;

	if (store_open(path, STORE_CREATE, &s, &e) != STORE_OK ||
	    make_fixture(s, &fx, &e) == -1) {
		ok(0, "open and fixture: %s", e);
		store_close(&s);
		free(path);
		return;
	}
	hash_random(blob[0], BLOB_LEN);
	hash_random(blob[1], BLOB_LEN);
	store_stats(s, &st0, &e);

	is_int(store_letters_commit(s, l, 0, &e), STORE_OK,
	    "empty batch is a no-op");

	fill_letter(&l[0], &fx, blob[0], "k1", 1);
	fill_letter(&l[1], &fx, blob[1], NULL, 0);
	l[1].address = NULL;
	l[1].priority = 1;
	l[1].channel = "smtp";
	fill_letter(&l[2], &fx, blob[0], "k1", 1);	/* same key, same req */
	fill_letter(&l[3], &fx, blob[1], "k1", 2);	/* same key, other req */
	fill_letter(&l[4], &fx, blob[1], "k2", 3);
	rc = store_letters_commit(s, l, 5, &e);
	ok(rc == STORE_OK, "batch of 5 committed (%s)",
	    rc == STORE_OK ? "ok" : e);
	is_int(l[0].result, STORE_LETTER_NEW, "entry 0 NEW");
	is_int(l[1].result, STORE_LETTER_NEW, "entry 1 NEW (no key)");
	is_int(l[2].result, STORE_LETTER_DUPLICATE,
	    "entry 2 with the same key in the same batch is a DUPLICATE");
	is_int(l[2].letter_id, l[0].letter_id, "... of entry 0");
	is_int(l[3].result, STORE_LETTER_CONFLICT,
	    "entry 3 with the same key and another request is a CONFLICT");
	is_int(l[3].letter_id, 0, "a conflict names no letter");
	is_int(l[4].result, STORE_LETTER_NEW, "entry 4 NEW");
	a = l[0].letter_id;
	b = l[1].letter_id;
	ok(a > 0 && b > 0 && l[4].letter_id > 0 && a != b &&
	    b != l[4].letter_id, "distinct letter ids");

	rc = store_letter_get(s, a, &lt, &e);
	ok(rc == STORE_OK && lt != NULL, "letter get");
	if (lt != NULL) {
		hash_sha256(blob[0], BLOB_LEN, dig);
		ok(lt->practice_id == fx.p1 && lt->patient_id == fx.pat1 &&
		    lt->author_id == fx.c1 && lt->client_id == fx.cl1,
		    "routing ids");
		is_int(lt->priority, 0, "priority");
		is_str(lt->channel, "http", "channel");
		is_str(lt->state, "accepted", "state accepted");
		is_int(lt->sealed_len, BLOB_LEN, "sealed length");
		ok(memcmp(lt->sealed_sha256, dig, 32) == 0, "sealed sha256");
		ok(lt->created > 0, "created");
		is_int(lt->ndeliveries, 1, "one delivery");
		if (lt->ndeliveries == 1) {
			struct store_delivery *d = &lt->deliveries[0];

			is_str(d->recipient, "patient", "recipient patient");
			is_str(d->address, "jo@mail.example",
			    "delivery address");
			is_str(d->state, "queued", "delivery queued");
			is_int(d->attempts, 0, "no attempts");
			ok(d->next_attempt > 0 && d->updated > 0,
			    "next attempt and updated set");
			ok(d->last_error == NULL, "no last error");
		}
	}
	store_letter_free(&lt);
	ok(lt == NULL, "letter_free sets NULL");
	rc = store_letter_get(s, b, &lt, &e);
	ok(rc == STORE_OK && lt != NULL && lt->priority == 1 &&
	    strcmp(lt->channel, "smtp") == 0 && lt->ndeliveries == 1 &&
	    lt->deliveries[0].address == NULL,
	    "letter without address: delivery address NULL");
	store_letter_free(&lt);
	is_int(store_letter_get(s, 99999, &lt, &e), STORE_NOTFOUND,
	    "unknown letter: NOTFOUND");

	rc = store_letter_sealed(s, a, &got, &gotlen, &e);
	ok(rc == STORE_OK && gotlen == BLOB_LEN &&
	    memcmp(got, blob[0], BLOB_LEN) == 0, "sealed blob read back");
	free(got);
	is_int(store_letter_sealed(s, 99999, &got, &gotlen, &e),
	    STORE_NOTFOUND, "sealed blob of an unknown letter: NOTFOUND");

	rc = store_idem_lookup(s, fx.cl1, "k1", h, &lid, &e);
	memset(dig, 1, sizeof(dig));
	ok(rc == STORE_OK && lid == a && memcmp(h, dig, 32) == 0,
	    "idempotency lookup");
	is_int(store_idem_lookup(s, fx.cl1, "nope", h, &lid, &e),
	    STORE_NOTFOUND, "unknown key: NOTFOUND");

	store_stats(s, &st1, &e);
	is_int(st1.letters - st0.letters, 3, "3 letters stored");
	is_int(st1.deliveries_queued - st0.deliveries_queued, 3,
	    "3 deliveries queued");
	is_int(st1.audit_rows - st0.audit_rows, 3, "3 audit rows");

	/* A later batch meets the committed keys. */
	fill_letter(&l[0], &fx, blob[0], "k1", 1);
	fill_letter(&l[1], &fx, blob[0], "k2", 9);
	fill_letter(&l[2], &fx, blob[0], "k3", 1);
	rc = store_letters_commit(s, l, 3, &e);
	ok(rc == STORE_OK && l[0].result == STORE_LETTER_DUPLICATE &&
	    l[0].letter_id == a && l[1].result == STORE_LETTER_CONFLICT &&
	    l[2].result == STORE_LETTER_NEW,
	    "second batch: duplicate, conflict, new");

	if ((db = raw_open(path)) != NULL) {
		char	 q[160];
		int64_t	 n;

		snprintf(q, sizeof(q), "SELECT count(*) FROM audit WHERE "
		    "actor = 'client:%lld' AND action = 'letter.submit' AND "
		    "object = 'letter:%lld' AND outcome = 'ok'",
		    (long long)fx.cl1, (long long)l[2].letter_id);
		is_int(raw_int(db, "%s", q), 1, "audit row of the new letter");
		n = raw_int(db, "SELECT count(*) FROM idempotency");
		is_int(n, 3, "one idempotency row per new keyed letter");
		sqlite3_close(db);
	}

	/* All or nothing: one bad entry fails the batch. */
	store_stats(s, &st0, &e);
	fill_letter(&l[0], &fx, blob[0], "k4", 1);
	fill_letter(&l[1], &fx, blob[0], NULL, 0);
	l[1].patient_id = fx.pat2;	/* a patient of another practice */
	rc = store_letters_commit(s, l, 2, &e);
	ok(rc == STORE_ERROR, "a patient outside the practice fails the "
	    "batch (%s)", e);
	ok(l[0].letter_id == 0 && l[1].letter_id == 0,
	    "no ids handed out on failure");
	store_stats(s, &st1, &e);
	ok(st1.letters == st0.letters && st1.audit_rows == st0.audit_rows &&
	    st1.deliveries_queued == st0.deliveries_queued,
	    "nothing committed");
	is_int(store_idem_lookup(s, fx.cl1, "k4", h, &lid, &e),
	    STORE_NOTFOUND, "the good entry's key was rolled back");

	fill_letter(&l[0], &fx, blob[0], "k5", 1);
	l[0].sealed = NULL;
	is_int(store_letters_commit(s, l, 1, &e), STORE_ERROR,
	    "letter without blob refused");
	fill_letter(&l[0], &fx, blob[0], "k5", 1);
	l[0].client_id = 0;
	is_int(store_letters_commit(s, l, 1, &e), STORE_ERROR,
	    "idempotency key without client refused");

	if (store_begin(s, &e) == STORE_OK) {
		fill_letter(&l[0], &fx, blob[0], NULL, 1);
		is_int(store_letters_commit(s, l, 1, &e), STORE_ERROR,
		    "group commit inside an open transaction refused");
		store_rollback(s);
	}

	/* Another writer holds the lock past the busy timeout: retry later. */
	if ((db = raw_open(path)) != NULL) {
		uint64_t	 t0;

		store_stats(s, &st0, &e);
		if (raw_exec(db, "BEGIN IMMEDIATE", NULL, 0) == SQLITE_OK) {
			fill_letter(&l[0], &fx, blob[0], "k6", 1);
			t0 = util_now_ms();
			rc = store_letters_commit(s, l, 1, &e);
			t0 = util_now_ms() - t0;
			is_int(rc, STORE_BUSY, "a held write lock gives "
			    "STORE_BUSY (%s)", rc == STORE_OK ? "ok" : e);
			ok(t0 >= 4000, "after waiting the busy timeout "
			    "(%llu ms)", (unsigned long long)t0);
			raw_exec(db, "ROLLBACK", NULL, 0);
		} else
			ok(0, "raw BEGIN IMMEDIATE");
		sqlite3_close(db);
		store_stats(s, &st1, &e);
		ok(st1.letters == st0.letters &&
		    store_idem_lookup(s, fx.cl1, "k6", h, &lid, &e) ==
		    STORE_NOTFOUND, "nothing committed while busy");
		rc = store_letters_commit(s, l, 1, &e);
		ok(rc == STORE_OK && l[0].result == STORE_LETTER_NEW,
		    "the retry succeeds once the lock is free");
	}

	rc = store_open(path, STORE_RDONLY, &ro, &e);
	if (rc == STORE_OK) {
		fill_letter(&l[0], &fx, blob[0], NULL, 1);
		rc = store_letters_commit(ro, l, 1, &e);
		ok(rc == STORE_ERROR || rc == STORE_BUSY,
		    "commit on a read-only connection fails (%s)", e);
		store_close(&ro);
	} else
		ok(0, "read-only open: %s", e);

	store_close(&s);
	free(path);
}

/* Explicit transactions. */
static void
test_txn(void)
{
	struct store		*s = NULL;
	struct store_practice	*p = NULL;
	const char		*e = NULL;
	char			*path = tpath("txn.db");
	int64_t			 id, n, bad;

	if (store_open(path, STORE_CREATE, &s, &e) != STORE_OK) {
		ok(0, "open: %s", e);
		free(path);
		return;
	}
	free(path);
	is_int(store_commit(s, &e), STORE_ERROR, "commit without begin");
	ok(store_begin(s, &e) == STORE_OK, "begin");
	is_int(store_begin(s, &e), STORE_ERROR, "nested begin refused");
	ok(store_practice_add(s, "Gone", "gone.example", &id, &e) == STORE_OK,
	    "insert inside the transaction");
	store_rollback(s);
	is_int(store_practice_by_domain(s, "gone.example", &p, &e),
	    STORE_NOTFOUND, "rolled back");
	store_rollback(s);	/* harmless without a transaction */

	ok(store_begin(s, &e) == STORE_OK, "begin again");
	ok(store_practice_add(s, "Kept", "kept.example", &id, &e) ==
	    STORE_OK, "insert");
	ok(store_audit(s, "admin:root", "practice.add", "practice:1", "ok",
	    &e) == STORE_OK, "audit inside the transaction");
	ok(store_commit(s, &e) == STORE_OK, "commit");
	ok(store_practice_by_domain(s, "kept.example", &p, &e) == STORE_OK,
	    "committed");
	store_practice_free(&p);
	ok(store_audit_verify(s, &n, &bad, &e) == STORE_OK && n == 1,
	    "chain intact");
	store_close(&s);
}

/* The audit chain: append, verify, triggers, tampering. */
static void
test_audit(void)
{
	struct store	*s = NULL;
	const char	*e = NULL;
	char		*path = tpath("audit.db"), msg[256], q[160];
	int64_t		 n, bad, ids[6];
	sqlite3		*db;
	int		 i, rc;

	if (store_open(path, STORE_CREATE, &s, &e) != STORE_OK) {
		ok(0, "open: %s", e);
		free(path);
		return;
	}
	rc = store_audit_verify(s, &n, &bad, &e);
	ok(rc == STORE_OK && n == 0 && bad == 0, "empty chain verifies");
	for (i = 0; i < 6; i++) {
		char	 obj[32];

		snprintf(obj, sizeof(obj), "patient:%d", i + 1);
		if (store_audit(s, "admin:root", "patient.add", obj, "ok",
		    &e) != STORE_OK)
			break;
	}
	is_int(i, 6, "6 audit rows appended");
	rc = store_audit(s, NULL, "x", "y", "ok", &e);
	is_int(rc, STORE_ERROR, "audit without actor refused");
	rc = store_audit_verify(s, &n, &bad, &e);
	ok(rc == STORE_OK && n == 6 && bad == 0, "chain of 6 verifies");

	if ((db = raw_open(path)) == NULL) {
		ok(0, "raw open");
		store_close(&s);
		free(path);
		return;
	}
	for (i = 0; i < 6; i++) {
		snprintf(q, sizeof(q), "SELECT id FROM audit ORDER BY id "
		    "LIMIT 1 OFFSET %d", i);
		ids[i] = raw_int(db, "%s", q);
	}
	is_int(raw_int(db, "SELECT count(*) FROM audit WHERE id = (SELECT "
	    "min(id) FROM audit) AND prev_hash = zeroblob(32)"), 1,
	    "first row links to 32 zero bytes");

	snprintf(q, sizeof(q), "UPDATE audit SET outcome = 'denied' "
	    "WHERE id = %lld", (long long)ids[1]);
	rc = raw_exec(db, q, msg, sizeof(msg));
	ok(rc != SQLITE_OK && strstr(msg, "append-only") != NULL,
	    "UPDATE rejected by the trigger (%s)", msg);
	snprintf(q, sizeof(q), "DELETE FROM audit WHERE id = %lld",
	    (long long)ids[2]);
	rc = raw_exec(db, q, msg, sizeof(msg));
	ok(rc != SQLITE_OK && strstr(msg, "append-only") != NULL,
	    "DELETE rejected by the trigger (%s)", msg);

	/* The attacker drops the triggers first. */
	ok(raw_exec(db, "DROP TRIGGER audit_no_update; "
	    "DROP TRIGGER audit_no_delete", msg, sizeof(msg)) == SQLITE_OK,
	    "attacker drops the triggers");
	snprintf(q, sizeof(q), "UPDATE audit SET outcome = 'denied' "
	    "WHERE id = %lld", (long long)ids[1]);
	raw_exec(db, q, NULL, 0);
	rc = store_audit_verify(s, &n, &bad, &e);
	ok(rc == STORE_ERROR && bad == ids[1],
	    "edited outcome: verify names row %lld (got %lld, %s)",
	    (long long)ids[1], (long long)bad, rc == STORE_OK ? "ok" : e);
	snprintf(q, sizeof(q), "UPDATE audit SET outcome = 'ok' "
	    "WHERE id = %lld", (long long)ids[1]);
	raw_exec(db, q, NULL, 0);
	rc = store_audit_verify(s, &n, &bad, &e);
	ok(rc == STORE_OK && n == 6, "restored row verifies again");

	snprintf(q, sizeof(q), "UPDATE audit SET ts = ts + 1 WHERE id = %lld",
	    (long long)ids[4]);
	raw_exec(db, q, NULL, 0);
	rc = store_audit_verify(s, &n, &bad, &e);
	ok(rc == STORE_ERROR && bad == ids[4], "edited time: row %lld named",
	    (long long)bad);
	snprintf(q, sizeof(q), "UPDATE audit SET ts = ts - 1 WHERE id = %lld",
	    (long long)ids[4]);
	raw_exec(db, q, NULL, 0);

	/* Moving bytes between fields must not keep the hash. */
	snprintf(q, sizeof(q), "UPDATE audit SET actor = 'admin:roo', "
	    "action = 'tpatient.add' WHERE id = %lld", (long long)ids[3]);
	raw_exec(db, q, NULL, 0);
	rc = store_audit_verify(s, &n, &bad, &e);
	ok(rc == STORE_ERROR && bad == ids[3],
	    "shifted field boundary detected (row %lld)", (long long)bad);
	snprintf(q, sizeof(q), "UPDATE audit SET actor = 'admin:root', "
	    "action = 'patient.add' WHERE id = %lld", (long long)ids[3]);
	raw_exec(db, q, NULL, 0);

	snprintf(q, sizeof(q), "DELETE FROM audit WHERE id = %lld",
	    (long long)ids[2]);
	raw_exec(db, q, NULL, 0);
	rc = store_audit_verify(s, &n, &bad, &e);
	ok(rc == STORE_ERROR && bad == ids[3],
	    "deleted row: the next row %lld is named (got %lld)",
	    (long long)ids[3], (long long)bad);
	sqlite3_close(db);
	store_close(&s);
	free(path);
}

/* integrity_check and foreign_key_check. */
static void
test_check(void)
{
	struct store	*s = NULL;
	const char	*e = NULL;
	char		*path = tpath("check.db");
	sqlite3		*db;
	int		 rc;

	if (store_open(path, STORE_CREATE, &s, &e) != STORE_OK) {
		ok(0, "open: %s", e);
		free(path);
		return;
	}
	rc = store_check(s, &e);
	ok(rc == STORE_OK, "integrity check of a fresh database (%s)",
	    rc == STORE_OK ? "ok" : e);
	if ((db = raw_open(path)) != NULL) {
		/* Foreign keys are off by default on a raw connection. */
		raw_exec(db, "INSERT INTO clinicians (practice_id, name, email, "
		    "created) VALUES (4242, 'x', 'x@y', 1)", NULL, 0);
		sqlite3_close(db);
	}
	rc = store_check(s, &e);
	ok(rc == STORE_ERROR && strstr(e, "foreign_key_check") != NULL,
	    "a dangling reference is reported (%s)", e);
	store_close(&s);
	free(path);
}

/* Comments out, white space collapsed, none around punctuation. */
static char *
normalize(const char *sql)
{
	char		*out = xmalloc(strlen(sql) + 1), *o = out;
	const char	*p;
	int		 quoted = 0, space = 0;

	for (p = sql; *p != '\0'; p++) {
		if (!quoted && p[0] == '-' && p[1] == '-') {
			while (*p != '\0' && *p != '\n')
				p++;
			if (*p == '\0')
				break;
		}
		if (*p == '\'')
			quoted = !quoted;
		if (!quoted && isspace((unsigned char)*p)) {
			space = 1;
			continue;
		}
		if (space && o != out && strchr("(,)", *p) == NULL &&
		    o[-1] != '(')
			*o++ = ' ';
		space = 0;
		*o++ = *p;
	}
	*o = '\0';
	return out;
}

/* sqlite_master as normalised lines, sorted. */
static char *
schema_dump(sqlite3 *db)
{
	sqlite3_stmt	*st;
	char		*out = xstrdup(""), *n, *t;

	if (sqlite3_prepare_v2(db, "SELECT type, name, tbl_name, sql FROM "
	    "sqlite_master ORDER BY type, name", -1, &st, NULL) != SQLITE_OK)
		return out;
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *sql = (const char *)sqlite3_column_text(st, 3);

		n = normalize(sql != NULL ? sql : "");
		xasprintf(&t, "%s%s|%s|%s|%s\n", out,
		    sqlite3_column_text(st, 0), sqlite3_column_text(st, 1),
		    sqlite3_column_text(st, 2), n);
		free(n);
		free(out);
		out = t;
	}
	sqlite3_finalize(st);
	return out;
}

/* src/schema.sql creates the same schema as the compiled migrations. */
static void
test_schema(void)
{
	struct store	*s = NULL;
	const char	*srcdir = getenv("SEALPOST_SRCDIR"), *e = NULL;
	char		*file, *path, *text = NULL, *a = NULL, *b = NULL;
	char		 msg[256];
	FILE		*f;
	long		 len;
	sqlite3		*mem = NULL, *db;
	int		 v;

	if (srcdir == NULL) {
		skip("SEALPOST_SRCDIR not set: cannot find src/schema.sql");
		return;
	}
	xasprintf(&file, "%s/src/schema.sql", srcdir);
	if ((f = fopen(file, "r")) != NULL && fseek(f, 0, SEEK_END) == 0 &&
	    (len = ftell(f)) > 0 && fseek(f, 0, SEEK_SET) == 0) {
		text = xcalloc(1, (size_t)len + 1);
		if (fread(text, 1, (size_t)len, f) != (size_t)len) {
			free(text);
			text = NULL;
		}
	}
	if (f != NULL)
		fclose(f);
	ok(text != NULL, "read %s", file);
	free(file);
	if (text == NULL)
		return;

	sqlite3_open(":memory:", &mem);
	ok(raw_exec(mem, text, msg, sizeof(msg)) == SQLITE_OK,
	    "schema.sql runs (%s)", msg);
	free(text);

	path = tpath("schema.db");
	if (store_open(path, STORE_CREATE, &s, &e) != STORE_OK) {
		ok(0, "open: %s", e);
		sqlite3_close(mem);
		free(path);
		return;
	}
	v = store_schema_version(s);
	store_close(&s);
	if ((db = raw_open(path)) != NULL) {
		a = schema_dump(db);
		b = schema_dump(mem);
		ok(strlen(a) > 100 && strcmp(a, b) == 0,
		    "migrations and schema.sql create the same schema");
		if (strcmp(a, b) != 0)
			diag("migrations:\n%s\nschema.sql:\n%s", a, b);
		is_int(raw_int(mem, "PRAGMA user_version"), v,
		    "schema.sql declares the code's version");
		is_int(raw_int(mem, "PRAGMA application_id"),
		    raw_int(db, "PRAGMA application_id"),
		    "same application_id");
		sqlite3_close(db);
	}
	free(a);
	free(b);
	sqlite3_close(mem);
	free(path);
}

/* A second writer: its own connection, audit rows and group commits. */
static void *
worker_run(void *arg)
{
	struct worker		*w = arg;
	struct store		*s = NULL;
	struct store_letter_new	 l[2];
	unsigned char		 blob[BLOB_LEN];
	const char		*e = NULL;
	char			 obj[32];
	int			 i;

	if (store_open(w->path, STORE_RDWR, &s, &e) != STORE_OK) {
		w->errors++;
		return NULL;
	}
	memset(blob, w->tag, sizeof(blob));
	for (i = 0; i < w->n; i++) {
		snprintf(obj, sizeof(obj), "worker:%d:%d", w->tag, i);
		if (store_audit(s, "daemon", "test.append", obj, "ok", &e) !=
		    STORE_OK)
			w->errors++;
		else
			w->audits++;
		if (i % 2 == 0) {
			fill_letter(&l[0], w->fx, blob, NULL, 0);
			fill_letter(&l[1], w->fx, blob, NULL, 0);
			if (store_letters_commit(s, l, 2, &e) != STORE_OK)
				w->errors++;
			else {
				w->letters += 2;
				w->audits += 2;
			}
		}
	}
	store_close(&s);
	return NULL;
}

/* Two threads and a child process append to one chain. */
static void
test_concurrent(void)
{
	struct store		*s = NULL;
	struct store_stats	 st0, st1;
	struct fixture		 fx;
	struct worker		 w[2];
	pthread_t		 t[2];
	const char		*e = NULL;
	char			*path = tpath("conc.db");
	int64_t			 n, bad, child_audits = 0;
	pid_t			 pid;
	int			 i, status, rc;

	if (store_open(path, STORE_CREATE, &s, &e) != STORE_OK ||
	    make_fixture(s, &fx, &e) == -1) {
		ok(0, "open and fixture: %s", e);
		store_close(&s);
		free(path);
		return;
	}
	store_stats(s, &st0, &e);
	store_close(&s);

	/* The child is a second process, like sealpostctl. */
	pid = fork();
	if (pid == 0) {
		struct worker	 cw;

		memset(&cw, 0, sizeof(cw));
		cw.path = path;
		cw.fx = &fx;
		cw.tag = 9;
		cw.n = 60;
		worker_run(&cw);
		_exit(cw.errors == 0 ? 0 : 1);
	}
	for (i = 0; i < 2; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		w[i].path = path;
		w[i].fx = &fx;
		w[i].tag = i + 1;
		w[i].n = 100;
		pthread_create(&t[i], NULL, worker_run, &w[i]);
	}
	for (i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	status = -1;
	if (pid > 0)
		waitpid(pid, &status, 0);
	ok(pid > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "child process appended without error");
	if (pid > 0)
		child_audits = 60 + 60;	/* 60 rows + 30 commits of 2 */
	is_int(w[0].errors + w[1].errors, 0, "threads appended without error");

	if (store_open(path, STORE_RDWR, &s, &e) != STORE_OK) {
		ok(0, "reopen: %s", e);
		free(path);
		return;
	}
	store_stats(s, &st1, &e);
	is_int(st1.audit_rows - st0.audit_rows,
	    w[0].audits + w[1].audits + child_audits,
	    "every append landed");
	is_int(st1.letters - st0.letters, w[0].letters + w[1].letters + 60,
	    "every letter landed");
	rc = store_audit_verify(s, &n, &bad, &e);
	ok(rc == STORE_OK && bad == 0 && n == st1.audit_rows,
	    "the chain is intact after concurrent appends (%lld rows)",
	    (long long)n);
	rc = store_check(s, &e);
	ok(rc == STORE_OK, "integrity check after concurrent writes");
	store_close(&s);
	free(path);
}

/* Group-commit throughput with synchronous=FULL, reported not asserted. */
static void
bench(void)
{
	static const size_t	 batch[] = { 1, 20, 100 };
	static const size_t	 total[] = { 300, 2000, 5000 };
	struct store		*s = NULL;
	struct store_letter_new	*l;
	struct fixture		 fx;
	unsigned char		*blob;
	const char		*e = NULL;
	char			*path = tpath("bench.db");
	uint64_t		 t0, ms;
	size_t			 i, j, k;
	int			 failed = 0;

	if (store_open(path, STORE_CREATE, &s, &e) != STORE_OK ||
	    make_fixture(s, &fx, &e) == -1) {
		ok(0, "bench open: %s", e);
		store_close(&s);
		free(path);
		return;
	}
	blob = xmalloc(BLOB_LEN);
	hash_random(blob, BLOB_LEN);
	l = xcalloc(100, sizeof(*l));
	for (i = 0; i < nitems(batch); i++) {
		t0 = util_now_ms();
		for (j = 0; j < total[i] / batch[i]; j++) {
			for (k = 0; k < batch[i]; k++)
				fill_letter(&l[k], &fx, blob, NULL, 0);
			if (store_letters_commit(s, l, batch[i], &e) !=
			    STORE_OK)
				failed++;
		}
		ms = util_now_ms() - t0;
		if (ms == 0)
			ms = 1;
		diag("group commit, 4 KiB letters, synchronous=FULL in %s: "
		    "batch %3zu: %zu letters in %llu ms = %llu letters/s",
		    tmpdir, batch[i], total[i], (unsigned long long)ms,
		    (unsigned long long)(total[i] * 1000 / ms));
	}
	is_int(failed, 0, "benchmark commits succeeded");
	free(l);
	free(blob);
	store_close(&s);
	free(path);
}

int
main(void)
{
	const char *const dbs[] = { "open.db", "foreign.db", "parties.db",
	    "letters.db", "txn.db", "audit.db", "check.db", "schema.db",
	    "conc.db", "bench.db" };

	if (hash_init() == -1) {
		ok(0, "hash_init");
		return tap_done();
	}
	if (tmpdir_make("sealpost-store") == -1)
		return tap_done();
	test_open();
	test_parties();
	test_letters();
	test_txn();
	test_audit();
	test_check();
	test_schema();
	test_concurrent();
	bench();

	tmpdir_remove(dbs, nitems(dbs));
	return tap_done();
}
