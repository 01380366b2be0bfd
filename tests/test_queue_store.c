/*
 * test_queue_store.c - unit tests of schema 2 of the SQLite store: the
 * upgrade from schema 1, settings, the delivery queue (claims,
 * transitions and their side effects, recovery, delay warnings, release,
 * cancel, retry, statistics, listing), alerts, callbacks and the paper
 * queue, and the queue at scale (100,000 deliveries: claim fairness,
 * timing, and query plans that use indexes).
 *
 * Each part runs on a fresh database in a private directory under $TMPDIR
 * (or /tmp).  A raw sqlite3 connection inspects what the store wrote and,
 * for the rollback test, plants a failing trigger.  Timings are reported,
 * not asserted: the query plans are.
 */
#include "build.h"

#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sqlite3.h>

#include "hash.h"
#include "letter.h"
#include "store.h"
#include "store_sqlite.h"
#include "util.h"

#include "tap.h"
#include "store_fixture.h"

#define BLOB_LEN	512
#define NSCALE		100000

/* The sealed letter every submit() commits; new bytes at each fresh(). */
static unsigned char	 blob[BLOB_LEN];

static int	 raw_exec(sqlite3 *, const char *);
static struct store *fresh(const char *, char **, struct fixture *);
static int64_t	 submit(struct store *, struct fixture *, int64_t,
		    int64_t, int64_t, int, int64_t, int64_t);
static int64_t	 delivery_of(struct store *, int64_t);
static const char *dstate(struct store *, int64_t);
static const char *lstate(struct store *, int64_t);
static int	 tx(struct store *, int64_t, const char *, const char *,
		    int64_t, int, const char *, unsigned, const char *,
		    const char *, int *);
static void	 test_upgrade(void);
static void	 test_settings(void);
static void	 test_claim(void);
static void	 test_transitions(void);
static void	 test_admin(void);
static void	 test_warn_recover(void);
static void	 test_alerts_callbacks(void);
static void	 test_paper_stats(void);
static void	 flatten(char *);
static void	 plan_check(struct store *, const char *);
static void	 test_scale(void);

/* Execute SQL; SQLITE_OK or the code (the message goes to diag). */
static int
raw_exec(sqlite3 *db, const char *sql)
{
	char	*e = NULL;
	int	 rc;

	rc = sqlite3_exec(db, sql, NULL, NULL, &e);
	if (rc != SQLITE_OK)
		diag("raw exec: %s", e != NULL ? e : "?");
	sqlite3_free(e);
	return rc;
}

/*
 * A new database with the parties of store_fixture.h, p1 with a failsafe
 * address, the client of p1 with a callback URL and token, that of p2
 * without.  *pathp gets the file name.
 */
static struct store *
fresh(const char *name, char **pathp, struct fixture *fx)
{
	struct store	*s = NULL;
	unsigned char	 wrapped[48];
	const char	*e = NULL;

	memset(wrapped, 0xab, sizeof(wrapped));
	hash_random(blob, sizeof(blob));
	rmdb(name);
	*pathp = tpath(name);
	if (store_open(*pathp, STORE_CREATE, &s, &e) != STORE_OK ||
	    make_fixture(s, fx, &e) == -1 ||
	    store_practice_set(s, fx->p1, "failsafe_email",
	    "failsafe@riverside.example", &e) != STORE_OK ||
	    store_client_set(s, fx->cl1, "callback_url",
	    "https://emis.example/hook", &e) != STORE_OK ||
	    store_client_set_callback_token(s, fx->cl1, wrapped,
	    sizeof(wrapped), &e) != STORE_OK) {
		ok(0, "fixture: %s", e != NULL ? e : "?");
		store_close(&s);
		return NULL;
	}
	return s;
}

/* Commit one letter; its id, or 0. */
static int64_t
submit(struct store *s, struct fixture *fx, int64_t practice, int64_t patient,
    int64_t client, int priority, int64_t expires, int64_t warn_at)
{
	struct store_letter_new	 l;
	const char		*e = NULL;

	memset(&l, 0, sizeof(l));
	l.practice_id = practice;
	l.client_id = client;
	l.patient_id = patient;
	l.priority = priority;
	l.channel = "http";
	l.sealed = blob;
	l.sealed_len = sizeof(blob);
	l.address = practice == fx->p1 ? "jo@mail.example" :
	    "sam@mail.example";
	l.expires = expires;
	l.warn_at = warn_at;
	if (store_letters_commit(s, &l, 1, &e) != STORE_OK) {
		diag("submit: %s", e);
		return 0;
	}
	return l.letter_id;
}

/* The (only) delivery of a letter, or 0. */
static int64_t
delivery_of(struct store *s, int64_t letter_id)
{
	struct store_letter	*l = NULL;
	const char		*e;
	int64_t			 id = 0;

	if (store_letter_get(s, letter_id, &l, &e) == STORE_OK &&
	    l->ndeliveries > 0)
		id = l->deliveries[0].id;
	store_letter_free(&l);
	return id;
}

/* A delivery's state (static buffer), "?" if none. */
static const char *
dstate(struct store *s, int64_t id)
{
	static char		 buf[32];
	struct store_delivery	*d = NULL;
	const char		*e;

	strlcpy_sp(buf, "?", sizeof(buf));
	if (store_delivery_get(s, id, &d, &e) == STORE_OK)
		strlcpy_sp(buf, d->state, sizeof(buf));
	store_delivery_free(&d);
	return buf;
}

/* A letter's state (static buffer), "?" if none. */
static const char *
lstate(struct store *s, int64_t id)
{
	static char		 buf[32];
	struct store_letter	*l = NULL;
	const char		*e;

	strlcpy_sp(buf, "?", sizeof(buf));
	if (store_letter_get(s, id, &l, &e) == STORE_OK)
		strlcpy_sp(buf, l->state, sizeof(buf));
	store_letter_free(&l);
	return buf;
}

/* One transition; the store's code, *applied its flag. */
static int
tx(struct store *s, int64_t id, const char *from, const char *to,
    int64_t next, int code, const char *error, unsigned effects,
    const char *kind, const char *paper, int *applied)
{
	struct store_transition	 t;
	const char		*e = NULL;
	int			 rc;

	memset(&t, 0, sizeof(t));
	t.delivery_id = id;
	t.from = from;
	t.to = to;
	t.next_attempt = next;
	t.smtp_code = code;
	t.error = error;
	t.effects = effects;
	t.alert_kind = kind;
	t.paper_reason = paper;
	t.applied = -1;
	rc = store_deliveries_update(s, &t, 1, &e);
	if (rc != STORE_OK)
		diag("transition %s -> %s: %s", from, to, e);
	if (applied != NULL)
		*applied = t.applied;
	return rc;
}

/* A schema 1 database with a letter upgrades in place. */
static void
test_upgrade(void)
{
	struct store		*s = NULL;
	struct store_letter	*l = NULL;
	struct store_practice	*p = NULL;
	struct store_patient	*pt = NULL;
	struct store_client	*c = NULL;
	struct store_claim	*cl = NULL;
	const char		*e = NULL;
	char			*path = tpath("upgrade.db"), *path2, *a, *b;
	sqlite3			*db;
	int64_t			 nrows, bad;
	size_t			 n = 0;
	int			 rc;

	rc = store_sqlite_create(path, 1, &e);
	ok(rc == STORE_OK, "a schema 1 database (%s)", rc == 0 ? "ok" : e);
	if (rc != STORE_OK || (db = raw_open(path)) == NULL) {
		free(path);
		return;
	}
	is_int(raw_int(db, "PRAGMA user_version"), 1, "it is at version 1");
	is_int(raw_int(db, "SELECT count(*) FROM pragma_table_info"
	    "('deliveries') WHERE name = 'expires'"), 0,
	    "without the schema 2 columns");
	/* What sealpost 1 wrote for one urgent letter. */
	ok(raw_exec(db, "INSERT INTO practices (id, name, domain, created) "
	    "VALUES (1, 'Old', 'old.example', 1000);"
	    "INSERT INTO patients (id, practice_id, name, email, verified, "
	    "consent, created) VALUES (1, 1, 'Pat', 'pat@mail.example', 1, 1, "
	    "1000);"
	    "INSERT INTO clients (id, practice_id, name, token_hash, created) "
	    "VALUES (1, 1, 'sys', zeroblob(32), 1000);"
	    "INSERT INTO letters (id, practice_id, client_id, patient_id, "
	    "priority, channel, state, created, sealed_sha256, sealed_len, "
	    "sealed) VALUES (7, 1, 1, 1, 1, 'http', 'accepted', 2000, "
	    "zeroblob(32), 3, x'616263');"
	    "INSERT INTO deliveries (id, letter_id, practice_id, recipient, "
	    "address, state, attempts, next_attempt, updated) VALUES (9, 7, 1, "
	    "'patient', 'pat@mail.example', 'queued', 0, 2000, 2000);") ==
	    SQLITE_OK, "schema 1 rows inserted");
	sqlite3_close(db);

	rc = store_open(path, STORE_RDONLY, &s, &e);
	ok(rc == STORE_ERROR && strstr(e, "open it read-write") != NULL,
	    "read-only open of an old schema refused (%s)", e);
	rc = store_open(path, STORE_RDWR, &s, &e);
	ok(rc == STORE_OK, "the schema 1 database opens (%s)",
	    rc == 0 ? "ok" : e);
	if (rc != STORE_OK) {
		free(path);
		return;
	}
	ok(store_schema_version(s) >= 2, "migrated to version 2 or later");
	rc = store_letter_get(s, 7, &l, &e);
	ok(rc == STORE_OK && l->ndeliveries == 1, "the letter is kept");
	if (rc == STORE_OK && l->ndeliveries == 1) {
		struct store_delivery *d = &l->deliveries[0];

		is_str(l->state, "accepted", "letter state kept");
		ok(l->paper_reason == NULL, "no paper reason");
		is_int(d->id, 9, "delivery kept");
		is_str(d->state, "queued", "delivery state kept");
		is_str(d->address, "pat@mail.example", "address kept");
		is_int(d->letter_id, 7, "delivery letter_id");
		is_int(d->practice_id, 1, "delivery practice_id");
		is_int(d->priority, 1, "priority copied from the letter");
		is_int(d->expires, 2000 + 72 * 3600,
		    "expires defaulted to the update + 72 h");
		is_int(d->warn_at, 0, "no delay warning");
		ok(d->message_id == NULL, "no Message-ID yet");
		is_int(d->smtp_code, 0, "no SMTP code");
		is_int(d->sent_at, 0, "not sent");
		is_int(d->released, 0, "not released");
	}
	store_letter_free(&l);
	rc = store_practice_get(s, 1, &p, &e);
	ok(rc == STORE_OK && strcmp(p->content_policy, "full") == 0 &&
	    p->failsafe_email == NULL && p->reply_domain == NULL &&
	    p->postal_address == NULL && p->phone == NULL,
	    "practice settings defaulted");
	store_practice_free(&p);
	rc = store_patient_get(s, 1, &pt, &e);
	ok(rc == STORE_OK && pt->shared_ok == 0 && pt->postal_address ==
	    NULL && pt->verified == 1, "patient columns defaulted");
	store_patient_free(&pt);
	rc = store_client_get(s, 1, &c, &e);
	ok(rc == STORE_OK && c->callback_url == NULL &&
	    c->callback_token == NULL, "client without callback");
	store_client_free(&c);
	rc = store_deliveries_claim(s, util_time(), 5, 5, &cl, &n, &e);
	ok(rc == STORE_OK && n == 1 && cl[0].delivery_id == 9 &&
	    cl[0].message_id != NULL &&
	    strstr(cl[0].message_id, "@old.example>") != NULL &&
	    cl[0].sealed_len == 3 && memcmp(cl[0].sealed, "abc", 3) == 0,
	    "the old delivery is claimed");
	store_claims_free(&cl, n);
	ok(store_check(s, &e) == STORE_OK, "integrity after the upgrade");
	ok(store_audit_verify(s, &nrows, &bad, &e) == STORE_OK,
	    "audit chain after the upgrade");
	store_close(&s);

	/* The upgraded schema is the fresh one. */
	path2 = tpath("upgrade2.db");
	if (store_open(path2, STORE_CREATE, &s, &e) == STORE_OK)
		store_close(&s);
	a = b = NULL;
	if ((db = raw_open(path)) != NULL) {
		a = raw_text(db, "SELECT group_concat(type || name || "
		    "coalesce(sql, ''), '|') FROM (SELECT * FROM sqlite_master "
		    "ORDER BY type, name)");
		sqlite3_close(db);
	}
	if ((db = raw_open(path2)) != NULL) {
		b = raw_text(db, "SELECT group_concat(type || name || "
		    "coalesce(sql, ''), '|') FROM (SELECT * FROM sqlite_master "
		    "ORDER BY type, name)");
		sqlite3_close(db);
	}
	ok(a != NULL && b != NULL && strcmp(a, b) == 0,
	    "an upgraded schema equals a fresh one");
	free(a);
	free(b);
	free(path);
	free(path2);
}

/* The settings setters: fields, values, NOTFOUND; no value in errors. */
static void
test_settings(void)
{
	struct store		*s;
	struct store_practice	*p = NULL;
	struct store_patient	*pt = NULL;
	struct store_client	*c = NULL;
	struct fixture		 fx;
	unsigned char		 big[257];
	const char		*e = NULL;
	char			*path;
	int64_t			 q1, q2, q3, n;
	int			 rc;

	if ((s = fresh("settings.db", &path, &fx)) == NULL) {
		free(path);
		return;
	}
	ok(store_practice_set(s, fx.p1, "content_policy", "notify", &e) ==
	    STORE_OK, "content_policy notify");
	rc = store_practice_set(s, fx.p1, "content_policy", "partial", &e);
	ok(rc == STORE_ERROR && strstr(e, "partial") == NULL,
	    "content_policy partial refused (%s)", e);
	rc = store_practice_set(s, fx.p1, "content_policy", NULL, &e);
	ok(rc == STORE_ERROR, "content_policy cannot be cleared (%s)", e);
	rc = store_practice_set(s, fx.p1, "name", "X", &e);
	ok(rc == STORE_ERROR, "unknown field refused (%s)", e);
	rc = store_practice_set(s, fx.p1, NULL, "X", &e);
	ok(rc == STORE_ERROR, "no field refused");
	rc = store_practice_set(s, fx.p1, "failsafe_email",
	    "secret-marker@x.example\r\nBcc: evil@x.example", &e);
	ok(rc == STORE_ERROR && strstr(e, "secret-marker") == NULL,
	    "failsafe_email with CRLF refused, value not echoed (%s)", e);
	rc = store_practice_set(s, fx.p1, "failsafe_email", "no-at", &e);
	ok(rc == STORE_ERROR, "failsafe_email without @ refused (%s)", e);
	ok(store_practice_set(s, fx.p1, "reply_domain", "Mail.Riverside."
	    "Example", &e) == STORE_OK, "reply_domain set");
	rc = store_practice_set(s, fx.p1, "reply_domain", "bad domain", &e);
	ok(rc == STORE_ERROR, "reply_domain with a space refused (%s)", e);
	ok(store_practice_set(s, fx.p1, "postal_address",
	    "1 River Road\nTown\nAB1 2CD", &e) == STORE_OK,
	    "postal_address with LF");
	rc = store_practice_set(s, fx.p1, "postal_address", "1 Road\r\nX",
	    &e);
	ok(rc == STORE_ERROR, "postal_address with CR refused (%s)", e);
	ok(store_practice_set(s, fx.p1, "phone", "01234 567890", &e) ==
	    STORE_OK, "phone");
	rc = store_practice_set(s, fx.p1, "phone", "0123\n4", &e);
	ok(rc == STORE_ERROR, "phone with LF refused (%s)", e);
	rc = store_practice_set(s, 9999, "phone", "1", &e);
	is_int(rc, STORE_NOTFOUND, "practice set: unknown id NOTFOUND");
	rc = store_practice_get(s, fx.p1, &p, &e);
	ok(rc == STORE_OK, "practice get");
	if (rc == STORE_OK) {
		is_str(p->content_policy, "notify", "content_policy stored");
		is_str(p->failsafe_email, "failsafe@riverside.example",
		    "failsafe_email stored");
		is_str(p->reply_domain, "mail.riverside.example",
		    "reply_domain lower-cased");
		is_str(p->postal_address, "1 River Road\nTown\nAB1 2CD",
		    "postal_address stored");
		is_str(p->phone, "01234 567890", "phone stored");
	}
	store_practice_free(&p);
	ok(store_practice_set(s, fx.p1, "phone", NULL, &e) == STORE_OK &&
	    store_practice_get(s, fx.p1, &p, &e) == STORE_OK &&
	    p->phone == NULL, "phone cleared");
	store_practice_free(&p);

	/* Patients. */
	ok(store_patient_set(s, fx.pat1, "email", "JO@mail.example", &e) ==
	    STORE_OK && store_patient_get(s, fx.pat1, &pt, &e) == STORE_OK &&
	    pt->verified == 1, "the same address (any case) stays verified");
	store_patient_free(&pt);
	ok(store_patient_set(s, fx.pat1, "email", "jo.new@mail.example",
	    &e) == STORE_OK && store_patient_get(s, fx.pat1, &pt, &e) ==
	    STORE_OK && pt->verified == 0 &&
	    strcmp(pt->email, "jo.new@mail.example") == 0,
	    "a new address clears verified");
	store_patient_free(&pt);
	ok(store_patient_set(s, fx.pat1, "verified", "1", &e) == STORE_OK,
	    "verified 1");
	rc = store_patient_set(s, fx.pat1, "verified", "yes", &e);
	ok(rc == STORE_ERROR, "verified yes refused (%s)", e);
	rc = store_patient_set(s, fx.pat1, "consent", "2", &e);
	ok(rc == STORE_ERROR, "consent 2 refused (%s)", e);
	ok(store_patient_set(s, fx.pat1, "email", NULL, &e) == STORE_OK &&
	    store_patient_get(s, fx.pat1, &pt, &e) == STORE_OK &&
	    pt->email == NULL && pt->verified == 0,
	    "clearing the address clears verified");
	store_patient_free(&pt);
	rc = store_patient_set(s, fx.pat1, "verified", "1", &e);
	ok(rc == STORE_ERROR, "verified without an address refused (%s)", e);
	ok(store_patient_set(s, fx.pat1, "email", "jo@mail.example", &e) ==
	    STORE_OK && store_patient_set(s, fx.pat1, "verified", "1",
	    &e) == STORE_OK && store_patient_set(s, fx.pat1, "consent", "0",
	    &e) == STORE_OK && store_patient_set(s, fx.pat1, "shared_ok",
	    "1", &e) == STORE_OK && store_patient_set(s, fx.pat1,
	    "postal_address", "2 Lane\nTown", &e) == STORE_OK,
	    "patient fields set");
	rc = store_patient_get(s, fx.pat1, &pt, &e);
	ok(rc == STORE_OK && pt->verified == 1 && pt->consent == 0 &&
	    pt->shared_ok == 1 && strcmp(pt->postal_address,
	    "2 Lane\nTown") == 0, "patient fields read back");
	store_patient_free(&pt);
	rc = store_patient_set(s, 9999, "consent", "1", &e);
	is_int(rc, STORE_NOTFOUND, "patient set: unknown id NOTFOUND");
	rc = store_patient_set(s, fx.pat1, "content_policy", "full", &e);
	ok(rc == STORE_ERROR, "a practice field on a patient refused");

	/* Clients. */
	rc = store_client_get(s, fx.cl1, &c, &e);
	ok(rc == STORE_OK && c->callback_url != NULL &&
	    strcmp(c->callback_url, "https://emis.example/hook") == 0 &&
	    c->callback_token_len == 48 && c->callback_token[0] == 0xab,
	    "client get: callback URL and wrapped token");
	store_client_free(&c);
	ok(c == NULL, "client_free sets NULL");
	rc = store_client_set(s, fx.cl1, "callback_url", "ftp://x.example/",
	    &e);
	ok(rc == STORE_ERROR, "ftp callback refused (%s)", e);
	rc = store_client_set(s, fx.cl1, "callback_url",
	    "https://x.example/a b", &e);
	ok(rc == STORE_ERROR, "callback with white space refused (%s)", e);
	memset(big, 1, sizeof(big));
	rc = store_client_set_callback_token(s, fx.cl1, big, sizeof(big), &e);
	ok(rc == STORE_ERROR, "a 257-byte token refused (%s)", e);
	rc = store_client_set_callback_token(s, 9999, big, 16, &e);
	is_int(rc, STORE_NOTFOUND, "token of an unknown client NOTFOUND");
	ok(store_client_set(s, fx.cl1, "callback_url", NULL, &e) ==
	    STORE_OK && store_client_set_callback_token(s, fx.cl1, NULL, 0,
	    &e) == STORE_OK && store_client_get(s, fx.cl1, &c, &e) ==
	    STORE_OK && c->callback_url == NULL && c->callback_token == NULL,
	    "callback URL and token cleared");
	store_client_free(&c);
	is_int(store_client_get(s, 9999, &c, &e), STORE_NOTFOUND,
	    "client get: unknown id NOTFOUND");

	/* Shared addresses. */
	ok(store_patient_set(s, fx.pat1, "shared_ok", "0", &e) == STORE_OK &&
	    store_patient_add(s, fx.p1, "Jo's mum", "JO@Mail.Example", 0, 1,
	    NULL, &q1, &e) == STORE_OK &&
	    store_patient_add(s, fx.p1, "Other", "other@mail.example", 0, 1,
	    NULL, &q2, &e) == STORE_OK &&
	    store_patient_add(s, fx.p2, "Elsewhere", "jo@mail.example", 0, 1,
	    NULL, &q3, &e) == STORE_OK, "patients sharing an address");
	rc = store_address_shared(s, fx.p1, fx.pat1, "jo@mail.example", &n,
	    &e);
	ok(rc == STORE_OK && n == 1, "one other patient of the practice, any "
	    "case (%lld)", (long long)n);
	rc = store_address_shared(s, fx.p1, 0, "jo@mail.example", &n, &e);
	ok(rc == STORE_OK && n == 2, "a new patient: both count (%lld)",
	    (long long)n);
	store_patient_set(s, q1, "shared_ok", "1", &e);
	rc = store_address_shared(s, fx.p1, fx.pat1, "jo@mail.example", &n,
	    &e);
	ok(rc == STORE_OK && n == 1, "consent on one side only still counts");
	store_patient_set(s, fx.pat1, "shared_ok", "1", &e);
	rc = store_address_shared(s, fx.p1, fx.pat1, "jo@mail.example", &n,
	    &e);
	ok(rc == STORE_OK && n == 0, "consent on both sides: not counted");
	rc = store_address_shared(s, fx.p1, fx.pat1, NULL, &n, &e);
	ok(rc == STORE_OK && n == 0, "no address: 0");
	store_close(&s);
	free(path);
	(void)q2;
	(void)q3;
}

/* Claims: order, Message-ID, attempts, due times, rollback. */
static void
test_claim(void)
{
	struct store		*s;
	struct store_claim	*c = NULL;
	struct store_delivery	*d = NULL;
	struct fixture		 fx;
	const char		*e = NULL;
	char			*path, *mid = NULL;
	int64_t			 l1, l2, l3, l4, d1, d2, d3, now;
	int64_t			 p3, pat3;
	size_t			 n = 0;
	int			 rc, applied;

	if ((s = fresh("claim.db", &path, &fx)) == NULL) {
		free(path);
		return;
	}
	now = util_time();
	l1 = submit(s, &fx, fx.p1, fx.pat1, fx.cl1, LETTER_ROUTINE, 0, 0);
	l2 = submit(s, &fx, fx.p1, fx.pat1, fx.cl1, LETTER_URGENT,
	    now + 3600, 0);
	l3 = submit(s, &fx, fx.p2, fx.pat2, fx.cl2, LETTER_ROUTINE, 0, 0);
	d1 = delivery_of(s, l1);
	d2 = delivery_of(s, l2);
	d3 = delivery_of(s, l3);
	ok(l1 && l2 && l3 && d1 && d2 && d3, "three letters committed");
	ok(submit(s, &fx, fx.p1, fx.pat1, fx.cl1, LETTER_ROUTINE, -1, 0) == 0,
	    "a negative expiry refused");
	if (store_delivery_get(s, d1, &d, &e) == STORE_OK) {
		ok(d->expires >= now + 72 * 3600 &&
		    d->expires <= util_time() + 72 * 3600,
		    "expires 0 means created + 72 h");
		is_int(d->priority, LETTER_ROUTINE, "priority written");
	}
	store_delivery_free(&d);
	if (store_delivery_get(s, d2, &d, &e) == STORE_OK) {
		is_int(d->expires, now + 3600, "an explicit expiry is kept");
		is_int(d->priority, LETTER_URGENT, "urgent priority written");
	}
	store_delivery_free(&d);

	rc = store_deliveries_claim(s, util_time(), 2, 0, &c, &n, &e);
	ok(rc == STORE_OK && n == 2, "claim 2 new (%zu)", n);
	if (rc == STORE_OK && n == 2) {
		is_int(c[0].delivery_id, d2, "urgent first");
		is_int(c[1].delivery_id, d1, "then the oldest routine");
		is_int(c[0].attempts, 1, "attempts counts this one");
		is_int(c[0].letter_id, l2, "claim letter");
		is_int(c[0].practice_id, fx.p1, "claim practice");
		is_int(c[0].patient_id, fx.pat1, "claim patient");
		is_int(c[0].client_id, fx.cl1, "claim client");
		is_int(c[0].author_id, 0, "no author");
		is_int(c[0].priority, LETTER_URGENT, "claim priority");
		is_int(c[0].expires, now + 3600, "claim expires");
		ok(c[0].created >= now, "claim created");
		is_str(c[0].address, "jo@mail.example", "claim address");
		ok(c[0].message_id != NULL && c[0].message_id[0] == '<' &&
		    strstr(c[0].message_id, "@riverside.example>") != NULL,
		    "Message-ID in the practice domain (%s)",
		    c[0].message_id != NULL ? c[0].message_id : "NULL");
		ok(c[0].sealed_len == BLOB_LEN &&
		    memcmp(c[0].sealed, blob, BLOB_LEN) == 0,
		    "the sealed blob comes with the claim");
		ok(strcmp(c[0].message_id, c[1].message_id) != 0,
		    "distinct Message-IDs");
		mid = xstrdup(c[0].message_id);
	}
	store_claims_free(&c, n);
	ok(c == NULL, "claims_free sets NULL");
	is_str(dstate(s, d2), "sending", "a claimed row is sending");
	is_str(lstate(s, l2), "accepted", "its letter stays accepted");
	if (store_delivery_get(s, d2, &d, &e) == STORE_OK) {
		is_int(d->attempts, 1, "attempts stored");
		is_str(d->message_id, mid, "Message-ID stored");
	}
	store_delivery_free(&d);
	rc = store_deliveries_claim(s, util_time(), 5, 5, &c, &n, &e);
	ok(rc == STORE_OK && n == 1 && c[0].delivery_id == d3 &&
	    strstr(c[0].message_id, "@hillside.example>") != NULL,
	    "a sending row is not claimed again; the other practice's domain");
	store_claims_free(&c, n);

	/* A retry keeps its Message-ID. */
	ok(tx(s, d2, "sending", "deferred", now - 1, 451, "451 4.7.1 later",
	    0, NULL, NULL, &applied) == STORE_OK && applied == 1,
	    "sending -> deferred");
	rc = store_deliveries_claim(s, util_time(), 0, 5, &c, &n, &e);
	ok(rc == STORE_OK && n == 1 && c[0].delivery_id == d2 &&
	    c[0].attempts == 2 && mid != NULL &&
	    strcmp(c[0].message_id, mid) == 0,
	    "the retry keeps its Message-ID, attempt 2");
	store_claims_free(&c, n);
	ok(tx(s, d2, "sending", "deferred", util_time() + 3600, 451, "later",
	    0, NULL, NULL, &applied) == STORE_OK && applied == 1,
	    "deferred for an hour");
	rc = store_deliveries_claim(s, util_time(), 5, 5, &c, &n, &e);
	ok(rc == STORE_OK && n == 0, "a row not yet due is not claimed");
	store_claims_free(&c, n);
	rc = store_deliveries_claim(s, util_time() + 3601, 0, 5, &c, &n, &e);
	ok(rc == STORE_OK && n == 1 && c[0].delivery_id == d2,
	    "it is claimed when due");
	store_claims_free(&c, n);
	rc = store_deliveries_claim(s, util_time(), 0, 0, &c, &n, &e);
	ok(rc == STORE_OK && n == 0 && c == NULL, "claim of nothing");
	rc = store_deliveries_claim(s, util_time(), 100000, 0, &c, &n, &e);
	ok(rc == STORE_ERROR, "an unbounded claim refused (%s)", e);

	/* A failure inside a claim undoes the whole claim. */
	ok(store_practice_add(s, "Bad", "bad_domain.example", &p3, &e) ==
	    STORE_OK && store_patient_add(s, p3, "P", "p@mail.example", 1, 1,
	    NULL, &pat3, &e) == STORE_OK, "a practice whose domain cannot "
	    "make a Message-ID");
	l4 = submit(s, &fx, fx.p1, fx.pat1, fx.cl1, LETTER_ROUTINE, 0, 0);
	(void)submit(s, &fx, p3, pat3, 0, LETTER_ROUTINE, 0, 0);
	rc = store_deliveries_claim(s, util_time(), 5, 0, &c, &n, &e);
	ok(rc == STORE_ERROR && n == 0 && c == NULL,
	    "the claim fails (%s)", e);
	is_str(dstate(s, delivery_of(s, l4)), "queued",
	    "and the good row claimed before it is queued again");
	free(mid);
	store_close(&s);
	free(path);
}

/* Transitions: edges, from-lists, effects, callbacks, audit, rollback. */
static void
test_transitions(void)
{
	struct store		*s;
	struct store_claim	*c = NULL;
	struct store_delivery	*d = NULL;
	struct store_letter	*l = NULL;
	struct store_paper	 pp;
	struct store_transition	 t[2];
	struct fixture		 fx;
	json_t			*js;
	json_error_t		 jerr;
	struct tm		 tm;
	const char		*e = NULL;
	char			*path, *payload;
	sqlite3			*db;
	int64_t			 l1, l2, l3, d1, d2, d3, dx, audits, now;
	int64_t			 nrows, bad;
	size_t			 n = 0;
	int			 rc, applied;

	if ((s = fresh("tx.db", &path, &fx)) == NULL) {
		free(path);
		return;
	}
	db = raw_open(path);
	l1 = submit(s, &fx, fx.p1, fx.pat1, fx.cl1, LETTER_ROUTINE, 0, 0);
	l2 = submit(s, &fx, fx.p1, fx.pat1, fx.cl1, LETTER_ROUTINE, 0, 0);
	l3 = submit(s, &fx, fx.p2, fx.pat2, fx.cl2, LETTER_ROUTINE, 0, 0);
	d1 = delivery_of(s, l1);
	d2 = delivery_of(s, l2);
	d3 = delivery_of(s, l3);
	rc = store_deliveries_claim(s, util_time(), 5, 0, &c, &n, &e);
	ok(rc == STORE_OK && n == 3, "three claimed");
	store_claims_free(&c, n);

	/* Edges the diagram does not have. */
	audits = raw_int(db, "SELECT count(*) FROM audit");
	rc = tx(s, d1, "sending", "sending", 0, 0, NULL, 0, NULL, NULL, NULL);
	is_int(rc, STORE_ERROR, "-> sending refused (only a claim)");
	rc = tx(s, d1, "failed", "queued", 0, 0, NULL, 0, NULL, NULL, NULL);
	is_int(rc, STORE_ERROR, "failed -> queued refused");
	rc = tx(s, d1, "sent", "deferred", 1, 0, NULL, 0, NULL, NULL, NULL);
	is_int(rc, STORE_ERROR, "sent -> deferred refused");
	rc = tx(s, d1, "queued", "sent", 0, 0, NULL, 0, NULL, NULL, NULL);
	is_int(rc, STORE_ERROR, "queued -> sent refused");
	rc = tx(s, d1, "held", "deferred", 1, 0, NULL, 0, NULL, NULL, NULL);
	is_int(rc, STORE_ERROR, "held -> deferred refused");
	rc = tx(s, d1, "sending", "bogus", 0, 0, NULL, 0, NULL, NULL, NULL);
	is_int(rc, STORE_ERROR, "unknown target refused");
	rc = tx(s, d1, "sending|nope", "sent", 0, 0, NULL, 0, NULL, NULL,
	    NULL);
	is_int(rc, STORE_ERROR, "unknown state in the from-list refused");
	rc = tx(s, d1, "", "sent", 0, 0, NULL, 0, NULL, NULL, NULL);
	is_int(rc, STORE_ERROR, "empty from-list refused");
	rc = tx(s, d1, "sending", "deferred", 0, 0, NULL, 0, NULL, NULL,
	    NULL);
	is_int(rc, STORE_ERROR, "deferred without a time refused");
	rc = tx(s, d1, "sending", "failed", 0, 0, "x", STORE_TX_ALERT, NULL,
	    NULL, NULL);
	is_int(rc, STORE_ERROR, "an alert without a kind refused");
	rc = tx(s, d1, "sending", "failed", 0, 0, "x", 0x40, NULL, NULL,
	    NULL);
	is_int(rc, STORE_ERROR, "an unknown effect refused");
	is_str(dstate(s, d1), "sending", "nothing changed");
	is_int(raw_int(db, "SELECT count(*) FROM audit"), audits,
	    "no audit row for refused transitions");

	/* sent, with a callback. */
	now = util_time();
	rc = tx(s, d1, "sending", "sent", 0, 250, "250 2.0.0 ok queued as X",
	    STORE_TX_CALLBACK, NULL, NULL, &applied);
	ok(rc == STORE_OK && applied == 1, "sending -> sent applied");
	rc = store_delivery_get(s, d1, &d, &e);
	ok(rc == STORE_OK && strcmp(d->state, "sent") == 0 &&
	    d->sent_at >= now && d->smtp_code == 250 &&
	    strcmp(d->last_error, "250 2.0.0 ok queued as X") == 0 &&
	    d->updated >= now, "state, sent_at, code and reply stored");
	store_delivery_free(&d);
	is_str(lstate(s, l1), "sent", "the letter is sent");
	is_int(raw_int(db, "SELECT count(*) FROM audit WHERE action = "
	    "'delivery.sent' AND object = 'delivery:%lld'", (long long)d1), 1,
	    "audited as delivery.sent");
	is_int(raw_int(db, "SELECT count(*) FROM callbacks WHERE "
	    "delivery_id = %lld AND state = 'queued' AND client_id = %lld",
	    (long long)d1, (long long)fx.cl1), 1, "one callback queued");
	payload = raw_text(db, "SELECT payload FROM callbacks WHERE "
	    "delivery_id = %lld", (long long)d1);
	js = payload != NULL ? json_loads(payload, 0, &jerr) : NULL;
	ok(js != NULL && json_is_object(js), "the payload is JSON (%s)",
	    payload != NULL ? payload : "NULL");
	if (js != NULL) {
		const char *when = json_string_value(json_object_get(js,
		    "time"));
		const char *endp;

		is_int(json_integer_value(json_object_get(js, "id")),
		    raw_int(db, "SELECT id FROM callbacks WHERE delivery_id = "
		    "%lld", (long long)d1), "payload id is the callback's");
		is_int(json_integer_value(json_object_get(js, "delivery_id")),
		    d1, "payload delivery_id");
		is_int(json_integer_value(json_object_get(js, "letter_id")),
		    l1, "payload letter_id");
		is_str(json_string_value(json_object_get(js, "state")),
		    "sent", "payload state");
		is_int(json_integer_value(json_object_get(js, "smtp_code")),
		    250, "payload smtp_code");
		is_str(json_string_value(json_object_get(js, "reason")),
		    "250 2.0.0 ok queued as X", "payload reason");
		memset(&tm, 0, sizeof(tm));
		endp = when != NULL ? strptime(when, "%Y-%m-%dT%H:%M:%SZ",
		    &tm) : NULL;
		ok(endp != NULL && *endp == '\0' && timegm(&tm) >= now &&
		    timegm(&tm) <= util_time(), "payload time is RFC 3339 UTC "
		    "(%s)", when != NULL ? when : "NULL");
		is_int(json_object_size(js), 7, "nothing else in the payload");
		json_decref(js);
	}
	free(payload);

	/* Late results for a row that moved on are skipped. */
	rc = tx(s, d1, "sending", "deferred", now + 60, 451, "x", 0, NULL,
	    NULL, &applied);
	ok(rc == STORE_OK && applied == 0, "a late result is not applied");
	is_str(dstate(s, d1), "sent", "state untouched");
	rc = tx(s, 999999, "sending", "sent", 0, 250, NULL, 0, NULL, NULL,
	    &applied);
	ok(rc == STORE_OK && applied == 0, "an unknown delivery: applied 0");

	/* A bounce after sent: failsafe. */
	rc = tx(s, d1, "sent|sending|deferred", "failed", 0, 550,
	    "550 5.1.1 \"user\" unknown\\\x01", STORE_TX_PAPER |
	    STORE_TX_ALERT | STORE_TX_CALLBACK, "bounced", "bounced by the "
	    "recipient's server", &applied);
	ok(rc == STORE_OK && applied == 1, "sent -> failed (bounce)");
	is_str(lstate(s, l1), "paper", "the letter goes to paper");
	rc = store_letter_get(s, l1, &l, &e);
	ok(rc == STORE_OK && l->paper_reason != NULL &&
	    strcmp(l->paper_reason, "bounced by the recipient's server") == 0,
	    "letter_get gives the paper reason");
	store_letter_free(&l);
	rc = store_paper_get(s, l1, &pp, &e);
	ok(rc == STORE_OK && pp.practice_id == fx.p1 &&
	    pp.patient_id == fx.pat1 && pp.printed == 0 && pp.done == 0 &&
	    strcmp(pp.reason, "bounced by the recipient's server") == 0,
	    "a paper row");
	is_int(raw_int(db, "SELECT count(*) FROM alerts WHERE delivery_id = "
	    "%lld AND kind = 'bounced' AND state = 'queued' AND reason LIKE "
	    "'550 5.1.1%%'", (long long)d1), 1, "a queued alert");
	is_int(raw_int(db, "SELECT count(*) FROM audit WHERE action = "
	    "'delivery.failed' AND object = 'delivery:%lld'", (long long)d1),
	    1, "audited as delivery.failed");
	is_int(raw_int(db, "SELECT count(*) FROM audit WHERE action = "
	    "'letter.paper' AND object = 'letter:%lld'", (long long)l1), 1,
	    "audited as letter.paper");
	payload = raw_text(db, "SELECT payload FROM callbacks WHERE "
	    "delivery_id = %lld ORDER BY id DESC LIMIT 1", (long long)d1);
	js = payload != NULL ? json_loads(payload, 0, &jerr) : NULL;
	ok(js != NULL && strcmp(json_string_value(json_object_get(js,
	    "state")), "failed") == 0 && strcmp(json_string_value(
	    json_object_get(js, "reason")),
	    "550 5.1.1 \"user\" unknown\\\x01") == 0,
	    "a second callback; quotes, backslash and control bytes escaped "
	    "(%s)", payload != NULL ? payload : "NULL");
	json_decref(js);
	free(payload);

	/* A letter enters paper once; later reasons go to the audit. */
	is_int(d1, 1, "the first delivery has id 1");
	ok(raw_exec(db, "INSERT INTO deliveries (letter_id, practice_id, "
	    "recipient, address, state, next_attempt, updated) SELECT "
	    "letter_id, practice_id, 'carer', address, 'sending', 0, 0 FROM "
	    "deliveries WHERE id = 1") == SQLITE_OK, "a second delivery of "
	    "the letter");
	dx = raw_int(db, "SELECT id FROM deliveries WHERE recipient = "
	    "'carer'");
	rc = tx(s, dx, "sending", "expired", 0, 0, "expired after 72 h",
	    STORE_TX_PAPER, NULL, "no delivery within 72 h", &applied);
	ok(rc == STORE_OK && applied == 1, "the second delivery expires");
	is_int(raw_int(db, "SELECT count(*) FROM paper WHERE letter_id = "
	    "%lld", (long long)l1), 1, "still one paper row");
	ok(store_paper_get(s, l1, &pp, &e) == STORE_OK &&
	    strcmp(pp.reason, "bounced by the recipient's server") == 0,
	    "with the first reason");
	is_int(raw_int(db, "SELECT count(*) FROM audit WHERE action = "
	    "'letter.paper' AND outcome = 'no delivery within 72 h'"), 1,
	    "the later reason is audited");
	is_str(lstate(s, l1), "paper", "paper stays");

	/* A practice without a failsafe address: alert row "none"; a client
	 * without a callback URL: no callback row. */
	rc = tx(s, d3, "sending", "failed", 0, 554, "554 rejected",
	    STORE_TX_PAPER | STORE_TX_ALERT | STORE_TX_CALLBACK, "failed",
	    NULL, &applied);
	ok(rc == STORE_OK && applied == 1, "failure in the other practice");
	is_int(raw_int(db, "SELECT count(*) FROM alerts WHERE delivery_id = "
	    "%lld AND state = 'none'", (long long)d3), 1,
	    "alert row in state none");
	is_int(raw_int(db, "SELECT count(*) FROM callbacks WHERE "
	    "delivery_id = %lld", (long long)d3), 0, "no callback row");
	ok(store_paper_get(s, l3, &pp, &e) == STORE_OK &&
	    strcmp(pp.reason, "554 rejected") == 0,
	    "without a paper reason the error is the reason");

	/* All-or-nothing: a failure in the second undoes the first. */
	ok(raw_exec(db, "CREATE TRIGGER t_fail BEFORE INSERT ON alerts "
	    "BEGIN SELECT RAISE(ABORT, 'planted failure'); END") == SQLITE_OK,
	    "a planted failure on alert insert");
	audits = raw_int(db, "SELECT count(*) FROM audit");
	memset(t, 0, sizeof(t));
	t[0].delivery_id = d2;
	t[0].from = "sending";
	t[0].to = "sent";
	t[0].smtp_code = 250;
	t[0].effects = STORE_TX_CALLBACK;
	t[1].delivery_id = d2;
	t[1].from = "sent";
	t[1].to = "failed";
	t[1].effects = STORE_TX_ALERT;
	t[1].alert_kind = "bounced";
	rc = store_deliveries_update(s, t, 2, &e);
	ok(rc == STORE_ERROR && t[0].applied == 0 && t[1].applied == 0,
	    "the batch fails (%s)", e);
	is_str(dstate(s, d2), "sending", "the first transition is undone");
	is_int(raw_int(db, "SELECT count(*) FROM audit"), audits,
	    "no audit row kept");
	is_int(raw_int(db, "SELECT count(*) FROM callbacks WHERE "
	    "delivery_id = %lld", (long long)d2), 0, "no callback row kept");
	raw_exec(db, "DROP TRIGGER t_fail");
	rc = store_deliveries_update(s, t, 2, &e);
	ok(rc == STORE_OK && t[0].applied == 1 && t[1].applied == 1,
	    "the same batch applies, in order, once the trigger is gone");
	is_str(dstate(s, d2), "failed", "sent then failed");

	rc = store_audit_verify(s, &nrows, &bad, &e);
	ok(rc == STORE_OK && bad == 0, "audit chain intact (%lld rows)",
	    (long long)nrows);
	sqlite3_close(db);
	store_close(&s);
	free(path);
}

/* Hold, release, cancel, retry; their audit rows; savepoints. */
static void
test_admin(void)
{
	struct store		*s;
	struct store_claim	*c = NULL;
	struct store_delivery	*d = NULL;
	struct fixture		 fx;
	const char		*e = NULL;
	char			*path;
	sqlite3			*db;
	int64_t			 l1, l2, l3, d1, d2, d3, n, nrows, bad;
	int64_t			 audits;
	size_t			 nc = 0;
	int			 rc, applied;

	if ((s = fresh("admin.db", &path, &fx)) == NULL) {
		free(path);
		return;
	}
	db = raw_open(path);
	l1 = submit(s, &fx, fx.p1, fx.pat1, fx.cl1, LETTER_ROUTINE, 0, 0);
	l2 = submit(s, &fx, fx.p1, fx.pat1, fx.cl1, LETTER_ROUTINE, 0, 0);
	l3 = submit(s, &fx, fx.p1, fx.pat1, fx.cl1, LETTER_ROUTINE, 0, 0);
	d1 = delivery_of(s, l1);
	d2 = delivery_of(s, l2);
	d3 = delivery_of(s, l3);

	/* The misrouting guard holds; the admin releases. */
	rc = tx(s, d1, "queued|deferred", "held", 0, 0, "address changed "
	    "since submission", STORE_TX_ALERT, "held", NULL, &applied);
	ok(rc == STORE_OK && applied == 1, "queued -> held");
	is_str(lstate(s, l1), "held", "the letter is held");
	is_int(raw_int(db, "SELECT count(*) FROM audit WHERE action = "
	    "'delivery.held' AND actor = 'daemon' AND outcome = 'address "
	    "changed since submission'"), 1, "the hold is audited");
	rc = store_deliveries_claim(s, util_time(), 5, 5, &c, &nc, &e);
	ok(rc == STORE_OK && nc == 2, "a held row is not claimed");
	store_claims_free(&c, nc);
	store_patient_set(s, fx.pat1, "email", "jo.moved@mail.example", &e);
	rc = store_letter_release(s, l1, "admin:root", &n, &e);
	ok(rc == STORE_OK && n == 1, "release: one row");
	rc = store_delivery_get(s, d1, &d, &e);
	ok(rc == STORE_OK && strcmp(d->state, "queued") == 0 &&
	    d->released == 1 && d->address != NULL &&
	    strcmp(d->address, "jo.moved@mail.example") == 0,
	    "queued, released, with the patient's current address");
	store_delivery_free(&d);
	is_str(lstate(s, l1), "accepted", "the letter is accepted again");
	is_int(raw_int(db, "SELECT count(*) FROM audit WHERE action = "
	    "'delivery.released' AND actor = 'admin:root' AND object = "
	    "'delivery:%lld'", (long long)d1), 1, "the release is audited");
	rc = store_letter_release(s, l1, "admin:root", &n, &e);
	ok(rc == STORE_OK && n == 0, "a second release changes nothing");
	rc = store_deliveries_claim(s, util_time(), 5, 0, &c, &nc, &e);
	ok(rc == STORE_OK && nc == 1 && c[0].delivery_id == d1 &&
	    c[0].released == 1 && strcmp(c[0].address,
	    "jo.moved@mail.example") == 0, "the claim says released");
	store_claims_free(&c, nc);
	is_int(store_letter_release(s, 999999, "admin:root", &n, &e),
	    STORE_NOTFOUND, "release of an unknown letter NOTFOUND");

	/* Cancel: open rows only; a sending row is left to its result. */
	rc = store_letter_cancel(s, l1, "admin:root", &n, &e);
	ok(rc == STORE_OK && n == 0, "a sending row is not cancelled");
	rc = tx(s, d2, "sending", "deferred", util_time() + 3600, 421,
	    "421 busy", 0, NULL, NULL, &applied);
	ok(rc == STORE_OK && applied == 1, "d2 deferred");
	rc = store_letter_cancel(s, l2, "admin:alice", &n, &e);
	ok(rc == STORE_OK && n == 1, "cancel a deferred row");
	is_str(dstate(s, d2), "cancelled", "cancelled");
	is_str(lstate(s, l2), "cancelled", "the letter is cancelled");
	is_int(raw_int(db, "SELECT count(*) FROM audit WHERE action = "
	    "'delivery.cancelled' AND actor = 'admin:alice'"), 1,
	    "the cancel is audited");
	rc = tx(s, d2, "cancelled", "queued", 0, 0, NULL, 0, NULL, NULL,
	    &applied);
	is_int(rc, STORE_ERROR, "cancelled is final");
	is_int(store_letter_cancel(s, 999999, "admin:root", &n, &e),
	    STORE_NOTFOUND, "cancel of an unknown letter NOTFOUND");
	rc = store_letter_cancel(s, l3, NULL, &n, &e);
	ok(rc == STORE_ERROR, "cancel without an actor refused");

	/* Retry: deferred rows due now. */
	rc = tx(s, d1, "sending", "deferred", util_time() + 3600, 451, "x",
	    0, NULL, NULL, &applied);
	ok(rc == STORE_OK && applied == 1, "d1 deferred an hour");
	rc = store_deliveries_retry(s, l1, util_time(), &n, &e);
	ok(rc == STORE_OK && n == 1, "retry of the letter: one row");
	rc = store_deliveries_claim(s, util_time(), 0, 5, &c, &nc, &e);
	ok(rc == STORE_OK && nc == 1 && c[0].delivery_id == d1,
	    "it is due now");
	store_claims_free(&c, nc);
	rc = tx(s, d1, "sending", "deferred", util_time() + 3600, 451, "x",
	    0, NULL, NULL, &applied);
	rc = store_deliveries_retry(s, 0, util_time(), &n, &e);
	ok(rc == STORE_OK && n == 1, "retry of all deferred rows");
	is_int(store_deliveries_retry(s, 999999, util_time(), &n, &e),
	    STORE_NOTFOUND, "retry of an unknown letter NOTFOUND");

	/* Inside an admin transaction: a savepoint, undone by a rollback;
	 * a failing call undoes only itself. */
	rc = tx(s, d3, "sending", "queued", 0, 0, NULL, 0, NULL, NULL,
	    &applied);
	ok(rc == STORE_OK && applied == 1, "sending -> queued (given back)");
	audits = raw_int(db, "SELECT count(*) FROM audit");
	ok(store_begin(s, &e) == STORE_OK, "begin");
	rc = store_letter_cancel(s, l3, "admin:root", &n, &e);
	ok(rc == STORE_OK && n == 1, "cancel inside a transaction");
	store_rollback(s);
	is_str(dstate(s, d3), "queued", "rolled back with the transaction");
	ok(store_begin(s, &e) == STORE_OK &&
	    store_audit(s, "admin:root", "test.step", "x", "ok", &e) ==
	    STORE_OK, "an admin step");
	is_int(store_letter_cancel(s, 999999, "admin:root", &n, &e),
	    STORE_NOTFOUND, "a failing call inside");
	ok(store_commit(s, &e) == STORE_OK, "commit");
	is_int(raw_int(db, "SELECT count(*) FROM audit"), audits + 1,
	    "the admin's own step is kept");

	rc = store_audit_verify(s, &nrows, &bad, &e);
	ok(rc == STORE_OK && bad == 0, "audit chain intact (%lld rows)",
	    (long long)nrows);
	sqlite3_close(db);
	store_close(&s);
	free(path);
}

/* Delay warnings once per delivery; recovery after a stop. */
static void
test_warn_recover(void)
{
	struct store		*s;
	struct store_claim	*c = NULL;
	struct store_delivery	*d = NULL;
	struct fixture		 fx;
	const char		*e = NULL;
	char			*path, *mid = NULL;
	sqlite3			*db;
	int64_t			 now, l1, l2, l3, l4, d1, n;
	size_t			 nc = 0;
	int			 rc, applied;

	if ((s = fresh("warn.db", &path, &fx)) == NULL) {
		free(path);
		return;
	}
	db = raw_open(path);
	now = util_time();
	l1 = submit(s, &fx, fx.p1, fx.pat1, fx.cl1, LETTER_ROUTINE, 0,
	    now - 10);
	l2 = submit(s, &fx, fx.p1, fx.pat1, fx.cl1, LETTER_ROUTINE, 0,
	    now + 3600);
	l3 = submit(s, &fx, fx.p1, fx.pat1, fx.cl1, LETTER_ROUTINE, 0, 0);
	l4 = submit(s, &fx, fx.p2, fx.pat2, fx.cl2, LETTER_ROUTINE, 0,
	    now - 5);
	d1 = delivery_of(s, l1);
	if (store_delivery_get(s, d1, &d, &e) == STORE_OK)
		is_int(d->warn_at, now - 10, "warn_at written");
	store_delivery_free(&d);
	rc = store_deliveries_warn(s, now, 10, &n, &e);
	ok(rc == STORE_OK && n == 2, "two warnings due (%lld)", (long long)n);
	is_int(raw_int(db, "SELECT count(*) FROM alerts WHERE kind = "
	    "'delayed' AND delivery_id = %lld AND state = 'queued'",
	    (long long)d1), 1, "a delayed alert");
	is_int(raw_int(db, "SELECT count(*) FROM alerts WHERE kind = "
	    "'delayed' AND delivery_id = %lld AND state = 'none'",
	    (long long)delivery_of(s, l4)), 1,
	    "state none without a failsafe address");
	rc = store_deliveries_warn(s, now, 10, &n, &e);
	ok(rc == STORE_OK && n == 0, "exactly once");
	if (store_delivery_get(s, d1, &d, &e) == STORE_OK)
		is_int(d->warn_at, 0, "warn_at cleared");
	store_delivery_free(&d);
	rc = tx(s, delivery_of(s, l2), "queued", "cancelled", 0, 0, NULL, 0,
	    NULL, NULL, &applied);
	rc = store_deliveries_warn(s, now + 7200, 10, &n, &e);
	ok(rc == STORE_OK && n == 0, "no warning for a cancelled delivery");
	(void)l3;

	/* Recovery. */
	rc = store_deliveries_claim(s, util_time(), 5, 0, &c, &nc, &e);
	ok(rc == STORE_OK && nc == 3, "three claimed (%zu)", nc);
	if (nc > 0)
		mid = xstrdup(c[0].message_id);
	store_claims_free(&c, nc);
	ok(raw_exec(db, "UPDATE alerts SET state = 'sending' WHERE state = "
	    "'queued'") == SQLITE_OK, "an alert left sending");
	rc = store_deliveries_recover(s, &n, &e);
	ok(rc == STORE_OK && n == 3, "recover: three rows (%lld)",
	    (long long)n);
	is_str(dstate(s, d1), "queued", "sending -> queued");
	is_int(raw_int(db, "SELECT count(*) FROM alerts WHERE state = "
	    "'sending'"), 0, "alerts recovered too");
	rc = store_deliveries_claim(s, util_time(), 5, 0, &c, &nc, &e);
	ok(rc == STORE_OK && nc == 3 && mid != NULL &&
	    strcmp(c[0].message_id, mid) == 0 && c[0].attempts == 2,
	    "reclaimed with the same Message-ID, attempt 2");
	store_claims_free(&c, nc);
	rc = store_deliveries_recover(s, &n, &e);
	rc = store_deliveries_recover(s, &n, &e);
	ok(rc == STORE_OK && n == 0, "nothing left to recover");
	free(mid);
	sqlite3_close(db);
	store_close(&s);
	free(path);
}

/* Alerts and callbacks: claim, retry, done. */
static void
test_alerts_callbacks(void)
{
	struct store		*s;
	struct store_alert	*a = NULL;
	struct store_callback	*cb = NULL;
	struct store_claim	*c = NULL;
	struct fixture		 fx;
	const char		*e = NULL;
	char			*path, *mid = NULL;
	sqlite3			*db;
	int64_t			 l1, l2, d1, d2, now;
	size_t			 n = 0;
	int			 rc, applied;

	if ((s = fresh("alerts.db", &path, &fx)) == NULL) {
		free(path);
		return;
	}
	db = raw_open(path);
	l1 = submit(s, &fx, fx.p1, fx.pat1, fx.cl1, LETTER_ROUTINE, 0, 0);
	l2 = submit(s, &fx, fx.p1, fx.pat1, fx.cl1, LETTER_ROUTINE, 0, 0);
	d1 = delivery_of(s, l1);
	d2 = delivery_of(s, l2);
	rc = store_deliveries_claim(s, util_time(), 5, 0, &c, &n, &e);
	store_claims_free(&c, n);
	rc = tx(s, d1, "sending", "failed", 0, 550, "550 no such user",
	    STORE_TX_ALERT | STORE_TX_CALLBACK | STORE_TX_PAPER, "failed",
	    NULL, &applied);
	ok(rc == STORE_OK && applied == 1, "a failure with an alert and a "
	    "callback");
	now = util_time();

	rc = store_alerts_claim(s, now, 10, &a, &n, &e);
	ok(rc == STORE_OK && n == 1, "one alert claimed");
	if (rc == STORE_OK && n == 1) {
		is_str(a[0].to, "failsafe@riverside.example",
		    "to the failsafe address");
		is_str(a[0].kind, "failed", "kind");
		is_str(a[0].reason, "550 no such user", "reason");
		is_int(a[0].letter_id, l1, "alert letter");
		is_int(a[0].delivery_id, d1, "alert delivery");
		is_int(a[0].patient_id, fx.pat1, "alert patient");
		is_int(a[0].practice_id, fx.p1, "alert practice");
		is_int(a[0].attempts, 1, "alert attempt 1");
		ok(a[0].message_id != NULL && strstr(a[0].message_id,
		    "@riverside.example>") != NULL, "alert Message-ID");
		mid = xstrdup(a[0].message_id);
		rc = store_alert_done(s, a[0].id, "queued", now + 600,
		    "421 try later", &e);
		ok(rc == STORE_OK, "alert retry later");
		rc = store_alert_done(s, a[0].id, "queued", now + 600, NULL,
		    &e);
		is_int(rc, STORE_NOTFOUND, "done on an alert not being sent");
	}
	store_alerts_free(&a, n);
	ok(a == NULL, "alerts_free sets NULL");
	rc = store_alerts_claim(s, now, 10, &a, &n, &e);
	ok(rc == STORE_OK && n == 0, "not due yet");
	store_alerts_free(&a, n);
	rc = store_alerts_claim(s, now + 600, 10, &a, &n, &e);
	ok(rc == STORE_OK && n == 1 && a[0].attempts == 2 && mid != NULL &&
	    strcmp(a[0].message_id, mid) == 0,
	    "due again: same Message-ID, attempt 2");
	if (rc == STORE_OK && n == 1) {
		ok(store_alert_done(s, a[0].id, "sent", 0, NULL, &e) ==
		    STORE_OK, "alert sent");
		rc = store_alert_done(s, a[0].id, "lost", 0, NULL, &e);
		ok(rc == STORE_ERROR, "an unknown alert state refused");
	}
	store_alerts_free(&a, n);
	is_int(raw_int(db, "SELECT count(*) FROM alerts WHERE state = "
	    "'sent' AND last_error IS NULL"), 1, "alert row sent");

	/* The failsafe address removed before the claim: state none. */
	rc = tx(s, d2, "sending", "failed", 0, 550, "550",
	    STORE_TX_ALERT, "failed", NULL, &applied);
	store_practice_set(s, fx.p1, "failsafe_email", NULL, &e);
	rc = store_alerts_claim(s, now + 600, 10, &a, &n, &e);
	ok(rc == STORE_OK && n == 0, "no alert to a practice without an "
	    "address");
	store_alerts_free(&a, n);
	is_int(raw_int(db, "SELECT count(*) FROM alerts WHERE delivery_id = "
	    "%lld AND state = 'none'", (long long)d2), 1,
	    "the alert is marked none");

	/* Callbacks. */
	rc = store_callbacks_claim(s, now, 10, &cb, &n, &e);
	ok(rc == STORE_OK && n == 1, "one callback claimed");
	if (rc == STORE_OK && n == 1) {
		is_str(cb[0].url, "https://emis.example/hook", "callback URL");
		ok(cb[0].token_len == 48 && cb[0].token[0] == 0xab,
		    "the wrapped token as stored");
		is_int(cb[0].client_id, fx.cl1, "callback client");
		is_int(cb[0].delivery_id, d1, "callback delivery");
		is_int(cb[0].attempts, 1, "callback attempt 1");
		ok(cb[0].payload != NULL && strstr(cb[0].payload,
		    "\"state\":\"failed\"") != NULL, "callback payload");
		ok(store_callback_done(s, cb[0].id, "queued", now + 60, 503,
		    &e) == STORE_OK, "callback retry later");
	}
	store_callbacks_free(&cb, n);
	ok(cb == NULL, "callbacks_free sets NULL");
	rc = store_callbacks_claim(s, now + 60, 10, &cb, &n, &e);
	ok(rc == STORE_OK && n == 1 && cb[0].attempts == 2, "due again");
	if (rc == STORE_OK && n == 1)
		ok(store_callback_done(s, cb[0].id, "sent", 0, 204, &e) ==
		    STORE_OK, "callback sent");
	store_callbacks_free(&cb, n);
	is_int(raw_int(db, "SELECT http_status FROM callbacks WHERE state = "
	    "'sent'"), 204, "status stored");
	is_int(store_callback_done(s, 999999, "sent", 0, 200, &e),
	    STORE_NOTFOUND, "done on an unknown callback");
	ok(store_callback_done(s, 1, "queued", 0, 200, &e) == STORE_ERROR,
	    "a retry without a time refused");

	/* A client whose URL was removed: the callback fails unsent. */
	ok(raw_exec(db, "INSERT INTO callbacks (client_id, practice_id, "
	    "delivery_id, payload, state, next_attempt, created) VALUES "
	    "(1, 1, 1, '{}', 'queued', 0, 0)") == SQLITE_OK, "a queued "
	    "callback");
	store_client_set(s, fx.cl1, "callback_url", NULL, &e);
	rc = store_callbacks_claim(s, now + 60, 10, &cb, &n, &e);
	ok(rc == STORE_OK && n == 0, "not posted without a URL");
	store_callbacks_free(&cb, n);
	is_int(raw_int(db, "SELECT count(*) FROM callbacks WHERE state = "
	    "'failed'"), 1, "marked failed");
	free(mid);
	sqlite3_close(db);
	store_close(&s);
	free(path);
}

/* The paper queue, queue statistics and the listing. */
static void
test_paper_stats(void)
{
	struct store		*s;
	struct store_paper	*pl = NULL, pp;
	struct store_queue_stats q;
	struct store_queue_row	*r = NULL;
	struct store_claim	*c = NULL;
	struct fixture		 fx;
	const char		*e = NULL;
	char			*path;
	sqlite3			*db;
	int64_t			 l[6], d[6], now, created1;
	size_t			 n = 0, i;
	int			 rc, applied;

	if ((s = fresh("paper.db", &path, &fx)) == NULL) {
		free(path);
		return;
	}
	db = raw_open(path);
	now = util_time();
	rc = store_queue_stats(s, &q, &e);
	ok(rc == STORE_OK && q.queued == 0 && q.oldest_open == 0 &&
	    q.next_due == 0, "stats of an empty queue");
	for (i = 0; i < 6; i++) {
		l[i] = submit(s, &fx, i < 5 ? fx.p1 : fx.p2, i < 5 ? fx.pat1 :
		    fx.pat2, i < 5 ? fx.cl1 : fx.cl2, LETTER_ROUTINE, 0, 0);
		d[i] = delivery_of(s, l[i]);
	}
	raw_exec(db, "UPDATE letters SET created = created - 100 WHERE "
	    "id = 1");
	created1 = raw_int(db, "SELECT created FROM letters WHERE id = 1");
	rc = store_deliveries_claim(s, util_time(), 6, 0, &c, &n, &e);
	store_claims_free(&c, n);
	tx(s, d[0], "sending", "sent", 0, 250, NULL, 0, NULL, NULL, &applied);
	tx(s, d[1], "sending", "failed", 0, 550, "550 a", STORE_TX_PAPER |
	    STORE_TX_ALERT | STORE_TX_CALLBACK, "failed", NULL, &applied);
	tx(s, d[2], "sending", "expired", 0, 0, "expired", STORE_TX_PAPER,
	    NULL, "expired", &applied);
	tx(s, d[3], "sending", "deferred", now + 300, 451, "451 b", 0, NULL,
	    NULL, &applied);
	tx(s, d[4], "sending", "queued", 0, 0, NULL, 0, NULL, NULL, &applied);
	tx(s, d[5], "sending", "failed", 0, 550, "550 c", STORE_TX_PAPER,
	    NULL, "bounced", &applied);

	rc = store_queue_stats(s, &q, &e);
	ok(rc == STORE_OK, "queue stats");
	is_int(q.sent, 1, "stats: sent");
	is_int(q.failed, 2, "stats: failed");
	is_int(q.expired, 1, "stats: expired");
	is_int(q.deferred, 1, "stats: deferred");
	is_int(q.queued, 1, "stats: queued");
	is_int(q.sending + q.held + q.cancelled, 0, "stats: none else");
	is_int(q.paper_open, 3, "stats: paper open");
	is_int(q.alerts_queued, 1, "stats: alerts queued");
	is_int(q.callbacks_queued, 1, "stats: callbacks queued");
	is_int(q.oldest_open, raw_int(db, "SELECT min(l.created) FROM "
	    "letters l JOIN deliveries d ON d.letter_id = l.id WHERE d.state "
	    "IN ('queued', 'deferred')"), "stats: oldest open");
	ok(created1 < q.oldest_open, "the oldest (sent) letter is not open");
	is_int(q.next_due, raw_int(db, "SELECT next_attempt FROM deliveries "
	    "WHERE id = %lld", (long long)d[4]), "stats: next due is the "
	    "queued row's");

	rc = store_queue_list(s, NULL, 0, &r, &n, &e);
	ok(rc == STORE_OK && n == 2 && r[0].delivery_id == d[3] &&
	    r[1].delivery_id == d[4], "list of open rows, oldest first");
	if (rc == STORE_OK && n == 2) {
		is_str(r[0].state, "deferred", "row state");
		is_str(r[0].last_error, "451 b", "row last error");
		is_int(r[0].attempts, 1, "row attempts");
		is_int(r[0].next_attempt, now + 300, "row next attempt");
		is_int(r[0].letter_id, l[3], "row letter");
		is_int(r[0].patient_id, fx.pat1, "row patient");
		ok(r[0].created >= now, "row created");
	}
	free(r);
	rc = store_queue_list(s, "failed|expired", 0, &r, &n, &e);
	ok(rc == STORE_OK && n == 3, "list failed|expired");
	free(r);
	rc = store_queue_list(s, "failed|expired", 2, &r, &n, &e);
	ok(rc == STORE_OK && n == 2, "list with a maximum");
	free(r);
	rc = store_queue_list(s, "failed|lost", 0, &r, &n, &e);
	ok(rc == STORE_ERROR && r == NULL, "an unknown state refused (%s)",
	    e);

	/* Paper. */
	rc = store_paper_list(s, 0, 0, &pl, &n, &e);
	ok(rc == STORE_OK && n == 3 && pl[0].letter_id == l[1] &&
	    pl[1].letter_id == l[2] && pl[2].letter_id == l[5],
	    "paper list, oldest first");
	free(pl);
	rc = store_paper_list(s, fx.p2, 0, &pl, &n, &e);
	ok(rc == STORE_OK && n == 1 && pl[0].letter_id == l[5] &&
	    strcmp(pl[0].reason, "bounced") == 0, "paper list of a practice");
	free(pl);
	ok(store_paper_printed(s, l[1], "admin:alice", &e) == STORE_OK &&
	    store_paper_get(s, l[1], &pp, &e) == STORE_OK && pp.printed >= now
	    && pp.done == 0, "printed");
	ok(store_paper_done(s, l[1], "admin:alice", &e) == STORE_OK &&
	    store_paper_get(s, l[1], &pp, &e) == STORE_OK && pp.done >= now &&
	    strcmp(pp.done_by, "admin:alice") == 0, "done, by whom");
	ok(store_paper_done(s, l[1], "admin:bob", &e) == STORE_OK &&
	    store_paper_get(s, l[1], &pp, &e) == STORE_OK &&
	    strcmp(pp.done_by, "admin:alice") == 0, "done twice keeps the "
	    "first");
	is_int(raw_int(db, "SELECT count(*) FROM audit WHERE action IN "
	    "('paper.printed', 'paper.done') AND object = 'letter:%lld'",
	    (long long)l[1]), 2, "printed and done are audited once each");
	rc = store_paper_list(s, 0, 0, &pl, &n, &e);
	ok(rc == STORE_OK && n == 2, "a done row leaves the open list");
	free(pl);
	rc = store_paper_list(s, 0, 1, &pl, &n, &e);
	ok(rc == STORE_OK && n == 3, "with_done lists it");
	free(pl);
	is_int(store_paper_get(s, l[0], &pp, &e), STORE_NOTFOUND,
	    "a sent letter is not in the paper queue");
	is_int(store_paper_printed(s, l[0], "admin:x", &e), STORE_NOTFOUND,
	    "printed: NOTFOUND");
	is_int(store_paper_done(s, 999999, "admin:x", &e), STORE_NOTFOUND,
	    "done: NOTFOUND");
	rc = store_queue_stats(s, &q, &e);
	ok(rc == STORE_OK && q.paper_open == 2, "stats: paper open after done");
	sqlite3_close(db);
	store_close(&s);
	free(path);
}

/* A plan's lines on one TAP line, separated by "; ". */
static void
flatten(char *plan)
{
	char	*p;

	for (p = plan; p != NULL && *p != '\0'; p++) {
		if (*p == '\n')
			*p = p[1] == '\0' ? '\0' : ';';
	}
}

/* A named statement's plan searches indexes, scans nothing, sorts
 * nothing. */
static void
plan_check(struct store *s, const char *name)
{
	const char	*e = NULL;
	char		*plan = NULL;
	int		 rc;

	rc = store_sqlite_plan(s, name, &plan, &e);
	flatten(plan);
	ok(rc == STORE_OK && plan != NULL && strstr(plan, "SEARCH") != NULL &&
	    strstr(plan, "USING") != NULL && strstr(plan, "SCAN") == NULL &&
	    strstr(plan, "TEMP B-TREE") == NULL,
	    "%s: index-driven plan: %s", name, plan != NULL ? plan : e);
	free(plan);
}

/* 100,000 deliveries: fairness, timing, plans. */
static void
test_scale(void)
{
	struct store		*s;
	struct store_claim	*c = NULL;
	struct store_queue_stats q;
	struct fixture		 fx;
	const char		*e = NULL;
	char			*path, *sql, *plan = NULL, *p;
	sqlite3			*db;
	int64_t			 now, la, lb, lc, da, db_, dd1, dd2, n;
	int			 scans;
	uint64_t		 t0, ms;
	size_t			 nc = 0, i;
	int			 rc, mono = 1;

	if ((s = fresh("scale.db", &path, &fx)) == NULL) {
		free(path);
		return;
	}
	now = util_time();
	if ((db = raw_open(path)) == NULL) {
		store_close(&s);
		free(path);
		return;
	}
	t0 = util_now_ms();
	/* i <= 10000: deferred and due (oldest first by i); <= 20000:
	 * deferred an hour ahead; <= 95000: sent; the rest failed. */
	xasprintf(&sql, "PRAGMA cache_size = -65536; BEGIN;"
	    "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c "
	    "WHERE i < %d) INSERT INTO letters (id, practice_id, client_id, "
	    "patient_id, priority, channel, state, created, sealed_sha256, "
	    "sealed_len, sealed) SELECT 1000000 + i, %lld, %lld, %lld, 0, "
	    "'http', CASE WHEN i <= 20000 THEN 'accepted' WHEN i <= 95000 "
	    "THEN 'sent' ELSE 'paper' END, %lld - 200000 + i, zeroblob(32), "
	    "64, zeroblob(64) FROM c;"
	    "INSERT INTO deliveries (letter_id, practice_id, recipient, "
	    "address, state, attempts, next_attempt, updated, priority, "
	    "expires) SELECT id, practice_id, 'patient', 'jo@mail.example', "
	    "CASE WHEN id - 1000000 <= 20000 THEN 'deferred' "
	    "WHEN id - 1000000 <= 95000 THEN 'sent' ELSE 'failed' END, 1, "
	    "CASE WHEN id - 1000000 <= 10000 THEN %lld - 100000 + id - 1000000 "
	    "WHEN id - 1000000 <= 20000 THEN %lld + 3600 ELSE created END, "
	    "created, 0, created + 259200 FROM letters WHERE id > 1000000 "
	    "ORDER BY id;"
	    "COMMIT;", NSCALE, (long long)fx.p1, (long long)fx.cl1,
	    (long long)fx.pat1, (long long)now, (long long)now,
	    (long long)now);
	rc = raw_exec(db, sql);
	free(sql);
	ms = util_now_ms() - t0;
	ok(rc == SQLITE_OK && raw_int(db, "SELECT count(*) FROM deliveries") ==
	    NSCALE, "%d deliveries inserted in one transaction", NSCALE);
	diag("inserted %d letters and deliveries in %llu ms", NSCALE,
	    (unsigned long long)ms);
	raw_exec(db, "UPDATE deliveries SET warn_at = 1 WHERE id IN (SELECT "
	    "id FROM deliveries WHERE state = 'deferred' LIMIT 5)");

	la = submit(s, &fx, fx.p1, fx.pat1, fx.cl1, LETTER_ROUTINE, 0, 0);
	lb = submit(s, &fx, fx.p1, fx.pat1, fx.cl1, LETTER_URGENT, 0, 0);
	lc = submit(s, &fx, fx.p1, fx.pat1, fx.cl1, LETTER_ROUTINE, 0, 0);
	da = delivery_of(s, la);
	db_ = delivery_of(s, lb);
	dd1 = raw_int(db, "SELECT id FROM deliveries WHERE state = "
	    "'deferred' ORDER BY next_attempt, id LIMIT 1");
	dd2 = raw_int(db, "SELECT id FROM deliveries WHERE state = "
	    "'deferred' ORDER BY next_attempt, id LIMIT 1 OFFSET 1");

	now = util_time();
	t0 = util_now_ms();
	rc = store_deliveries_claim(s, now, 2, 2, &c, &nc, &e);
	ms = util_now_ms() - t0;
	ok(rc == STORE_OK && nc == 4, "claim(2, 2) among 10,000 due retries "
	    "and 3 new: 4 rows (%zu)", nc);
	if (rc == STORE_OK && nc == 4) {
		is_int(c[0].delivery_id, db_, "the urgent new one first");
		is_int(c[1].delivery_id, da, "then the oldest routine one");
		is_int(c[2].delivery_id, dd1, "then the retry due first");
		is_int(c[3].delivery_id, dd2, "and the next retry");
		is_int(c[2].attempts, 2, "retry attempt 2");
	}
	store_claims_free(&c, nc);
	diag("claim(2, 2) with 20,000 deferred rows: %llu ms",
	    (unsigned long long)ms);

	t0 = util_now_ms();
	rc = store_deliveries_claim(s, now, 0, 50, &c, &nc, &e);
	ms = util_now_ms() - t0;
	ok(rc == STORE_OK && nc == 50, "claim of 50 retries");
	for (i = 1; i < nc; i++) {
		if (c[i].delivery_id <= c[i - 1].delivery_id)
			mono = 0;
	}
	ok(mono, "retries claimed in due order");
	store_claims_free(&c, nc);
	diag("claim of 50 among %d deliveries: %llu ms", NSCALE,
	    (unsigned long long)ms);

	t0 = util_now_ms();
	rc = store_deliveries_warn(s, now, 100, &n, &e);
	ms = util_now_ms() - t0;
	ok(rc == STORE_OK && n == 5, "warn: 5 of %d (%lld)", NSCALE,
	    (long long)n);
	diag("warn among %d deliveries: %llu ms", NSCALE,
	    (unsigned long long)ms);

	t0 = util_now_ms();
	rc = store_queue_stats(s, &q, &e);
	ms = util_now_ms() - t0;
	ok(rc == STORE_OK && q.sending == 54 && q.queued == 1 &&
	    q.deferred == 20000 - 52 && q.sent == 75000 && q.failed == 5000,
	    "stats at scale (queued %lld sending %lld deferred %lld)",
	    (long long)q.queued, (long long)q.sending, (long long)q.deferred);
	is_int(q.next_due, raw_int(db, "SELECT min(next_attempt) FROM "
	    "deliveries WHERE state IN ('queued', 'deferred')"),
	    "next due: the earliest queued or deferred row");
	ok(q.next_due < now - 80000, "which is the oldest due retry, not "
	    "the queued row (%lld)", (long long)lc);
	diag("queue stats over %d deliveries: %llu ms", NSCALE,
	    (unsigned long long)ms);

	plan_check(s, "claim_queued");
	plan_check(s, "claim_deferred");
	plan_check(s, "warn");
	plan_check(s, "alerts_claim");
	plan_check(s, "callbacks_claim");
	rc = store_sqlite_plan(s, "queue_stats", &plan, &e);
	flatten(plan);
	scans = 0;
	for (p = plan; p != NULL && (p = strstr(p, "SCAN ")) != NULL; p++) {
		if (strncmp(p, "SCAN CONSTANT ROW", 17) != 0)
			scans++;
	}
	ok(rc == STORE_OK && plan != NULL && scans == 0,
	    "queue stats: no table scan: %s",
	    plan != NULL ? plan : e);
	free(plan);
	is_int(store_sqlite_plan(s, "nothing", &plan, &e), STORE_ERROR,
	    "an unknown statement name");
	ok(store_check(s, &e) == STORE_OK, "integrity at scale");
	sqlite3_close(db);
	store_close(&s);
	free(path);
}

int
main(void)
{
	const char *const dbs[] = { "upgrade.db", "upgrade2.db",
	    "settings.db", "claim.db", "tx.db", "admin.db", "warn.db",
	    "alerts.db", "paper.db", "scale.db" };

	if (hash_init() == -1) {
		ok(0, "hash_init");
		return tap_done();
	}
	if (tmpdir_make("sealpost-qstore") == -1)
		return tap_done();
	test_upgrade();
	test_settings();
	test_claim();
	test_transitions();
	test_admin();
	test_warn_recover();
	test_alerts_callbacks();
	test_paper_stats();
	test_scale();

	tmpdir_remove(dbs, nitems(dbs));
	return tap_done();
}
