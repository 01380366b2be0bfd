/*
 * test_reply_store.c - unit tests of schema 3 of the SQLite store: the
 * upgrade from schema 2, the practice and clinician settings it adds,
 * the group commit of replies (filed, quarantined, duplicates in one
 * batch and across batches, the ack window), the reply mails outbox
 * (urgent first, outcomes, recovery), listing, the staff decisions (file,
 * reject), closing a thread, the Message-ID lookup and the refusals the
 * schema makes (foreign keys, CHECKs) as STORE_ERROR.
 *
 * Each part runs on a fresh database in a private directory under $TMPDIR
 * (or /tmp); a raw sqlite3 connection inspects what the store wrote.
 */
#include "build.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "hash.h"
#include "store.h"
#include "store_sqlite.h"
#include "util.h"

#include "tap.h"
#include "store_fixture.h"

#define BLOB_LEN	300

static unsigned char	 blob[BLOB_LEN];

static int	 raw_exec_ok(sqlite3 *, const char *);
static struct store *fresh(const char *, char **, struct fixture *);
static int64_t	 submit(struct store *, int64_t, int64_t);
static void	 reply_init(struct store_reply_new *, int64_t, int64_t,
		    int64_t, const char *, const char *, int);
static int	 commit1(struct store *, struct store_reply_new *);
static int64_t	 count(const char *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static void	 plan_check(struct store *, const char *, const char *);
static void	 test_upgrade(void);
static void	 test_settings(void);
static void	 test_commit(void);
static void	 test_ack_window(void);
static void	 test_mails(void);
static void	 test_list(void);
static void	 test_decisions(void);
static void	 test_refusals(void);
static void	 test_message_id(void);

/* Execute SQL; 1 if it ran (else the message goes to diag). */
static int
raw_exec_ok(sqlite3 *db, const char *sql)
{
	char	*e = NULL;
	int	 rc;

	rc = sqlite3_exec(db, sql, NULL, NULL, &e);
	if (rc != SQLITE_OK)
		diag("raw exec: %s", e != NULL ? e : "?");
	sqlite3_free(e);
	return rc == SQLITE_OK;
}

/* A new database with the parties of store_fixture.h; p1 has a failsafe
 * and a team address.  *pathp gets the file name. */
static struct store *
fresh(const char *name, char **pathp, struct fixture *fx)
{
	struct store	*s = NULL;
	const char	*e = NULL;

	hash_random(blob, sizeof(blob));
	rmdb(name);
	*pathp = tpath(name);
	if (store_open(*pathp, STORE_CREATE, &s, &e) != STORE_OK ||
	    make_fixture(s, fx, &e) == -1 ||
	    store_practice_set(s, fx->p1, "failsafe_email",
	    "failsafe@riverside.example", &e) != STORE_OK ||
	    store_practice_set(s, fx->p1, "team_email",
	    "team@riverside.example", &e) != STORE_OK) {
		ok(0, "fixture: %s", e != NULL ? e : "?");
		store_close(&s);
		return NULL;
	}
	return s;
}

/* Commit one letter to a patient; its id, or 0. */
static int64_t
submit(struct store *s, int64_t practice, int64_t patient)
{
	struct store_letter_new	 l;
	const char		*e = NULL;

	memset(&l, 0, sizeof(l));
	l.practice_id = practice;
	l.patient_id = patient;
	l.channel = "http";
	l.sealed = blob;
	l.sealed_len = sizeof(blob);
	l.address = "jo@mail.example";
	if (store_letters_commit(s, &l, 1, &e) != STORE_OK) {
		diag("submit: %s", e);
		return 0;
	}
	return l.letter_id;
}

/*
 * A reply of practice p: filed to thread letter (patient pat) or, with
 * letter 0, quarantined ("no_thread"); dedup from tag.  No mails.
 */
static void
reply_init(struct store_reply_new *r, int64_t p, int64_t letter,
    int64_t pat, const char *tag, const char *msgid, int urgent)
{
	memset(r, 0, sizeof(*r));
	r->practice_id = p;
	r->letter_id = letter;
	r->patient_id = pat;
	r->state = letter != 0 ? STORE_RS_FILED : STORE_RS_QUARANTINED;
	r->reason = letter != 0 ? NULL : "no_thread";
	r->detail = letter != 0 ? NULL : "no In-Reply-To we sent";
	r->sender = letter != 0 ? "verified" : "unverified";
	r->from_addr = "jo@mail.example";
	r->message_id = msgid;
	r->source = "imap";
	hash_sha256(tag, strlen(tag), r->dedup);
	r->urgent = urgent;
	r->sealed = blob;
	r->sealed_len = sizeof(blob);
	r->received = 1700000000;
}

/* Commit one reply; the store's code (the reason goes to diag). */
static int
commit1(struct store *s, struct store_reply_new *r)
{
	const char	*e = NULL;
	int		 rc;

	if ((rc = store_replies_commit(s, r, 1, &e)) != STORE_OK)
		diag("commit: %s", e);
	return rc;
}

/* A count through a raw connection to the database at path; -1 on
 * error. */
static int64_t
count(const char *path, const char *fmt, ...)
{
	sqlite3	*db;
	va_list	 ap;
	char	*sql;
	int64_t	 v;

	if ((db = raw_open(path)) == NULL)
		return -1;
	va_start(ap, fmt);
	xvasprintf(&sql, fmt, ap);
	va_end(ap);
	v = raw_int(db, "%s", sql);
	free(sql);
	sqlite3_close(db);
	return v;
}

/* A named statement's plan searches the index named and scans nothing. */
static void
plan_check(struct store *s, const char *name, const char *index)
{
	const char	*e = NULL;
	char		*plan = NULL, *p;
	int		 rc, scans = 0;

	rc = store_sqlite_plan(s, name, &plan, &e);
	for (p = plan; p != NULL && *p != '\0'; p++) {
		if (*p == '\n' && p[1] != '\0')
			*p = ';';
		else if (*p == '\n')
			*p = '\0';
	}
	/* A scalar subquery's "SCAN CONSTANT ROW" reads no table. */
	for (p = plan; p != NULL && (p = strstr(p, "SCAN ")) != NULL; p++) {
		if (strncmp(p, "SCAN CONSTANT ROW", 17) != 0)
			scans++;
	}
	ok(rc == STORE_OK && plan != NULL && strstr(plan, "SEARCH") != NULL &&
	    strstr(plan, index) != NULL && scans == 0 &&
	    strstr(plan, "TEMP B-TREE") == NULL,
	    "%s: plan uses %s: %s", name, index, plan != NULL ? plan : e);
	free(plan);
}

/* A schema 2 database with a sent letter upgrades in place. */
static void
test_upgrade(void)
{
	struct store		*s = NULL;
	struct store_practice	*p = NULL;
	struct store_letter	*l = NULL;
	struct store_reply_new	 r;
	const char		*e = NULL;
	char			*path = tpath("upgrade.db"), *path2, *a, *b;
	sqlite3			*db;
	int64_t			 did, lid, pid, nrows, bad;
	int			 rc;

	rc = store_sqlite_create(path, 2, &e);
	ok(rc == STORE_OK, "a schema 2 database (%s)", rc == 0 ? "ok" : e);
	if (rc != STORE_OK || (db = raw_open(path)) == NULL) {
		free(path);
		return;
	}
	is_int(raw_int(db, "PRAGMA user_version"), 2, "it is at version 2");
	is_int(raw_int(db, "SELECT count(*) FROM sqlite_master WHERE "
	    "name IN ('replies', 'reply_mails', 'letter_closed')"), 0,
	    "without the schema 3 tables");
	ok(raw_exec_ok(db, "INSERT INTO practices (id, name, domain, "
	    "created, failsafe_email) VALUES (1, 'Old', 'old.example', 1000, "
	    "'fs@old.example');"
	    "INSERT INTO patients (id, practice_id, name, email, verified, "
	    "consent, created) VALUES (1, 1, 'Pat', 'pat@mail.example', 1, 1, "
	    "1000);"
	    "INSERT INTO letters (id, practice_id, patient_id, priority, "
	    "channel, state, created, sealed_sha256, sealed_len, sealed) "
	    "VALUES (7, 1, 1, 0, 'http', 'sent', 2000, zeroblob(32), 3, "
	    "x'616263');"
	    "INSERT INTO deliveries (id, letter_id, practice_id, recipient, "
	    "address, state, attempts, next_attempt, updated, message_id, "
	    "sent_at) VALUES (9, 7, 1, 'patient', 'pat@mail.example', 'sent', "
	    "1, 2000, 2000, '<old.1@old.example>', 2001);"),
	    "schema 2 rows inserted");
	sqlite3_close(db);

	rc = store_open(path, STORE_RDWR, &s, &e);
	ok(rc == STORE_OK, "the schema 2 database opens (%s)",
	    rc == 0 ? "ok" : e);
	if (rc != STORE_OK) {
		free(path);
		return;
	}
	is_int(store_schema_version(s), 3, "migrated to version 3");
	rc = store_practice_get(s, 1, &p, &e);
	ok(rc == STORE_OK && p->team_email == NULL && p->duty_email == NULL &&
	    strcmp(p->failsafe_email, "fs@old.example") == 0,
	    "practice: team and duty unset, failsafe kept");
	store_practice_free(&p);
	rc = store_letter_get(s, 7, &l, &e);
	ok(rc == STORE_OK && l->closed == 0 && strcmp(l->state, "sent") == 0,
	    "the old letter is an open thread");
	store_letter_free(&l);
	rc = store_delivery_by_message_id(s, "<old.1@old.example>", &did,
	    &lid, &pid, &e);
	ok(rc == STORE_OK && did == 9 && lid == 7 && pid == 1,
	    "the old Message-ID finds its delivery, letter and patient");
	reply_init(&r, 1, 7, 1, "old reply", "<p.1@mail.example>", 0);
	ok(commit1(s, &r) == STORE_OK && r.result == STORE_REPLY_NEW,
	    "a reply to the old thread commits");
	ok(store_check(s, &e) == STORE_OK, "integrity after the upgrade");
	ok(store_audit_verify(s, &nrows, &bad, &e) == STORE_OK && nrows == 1,
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

/* The schema 3 setters: team and duty addresses, clinician active and
 * email. */
static void
test_settings(void)
{
	struct store		*s;
	struct store_practice	*p = NULL;
	struct store_clinician	*c = NULL;
	struct fixture		 fx;
	const char		*e = NULL;
	char			*path;
	int64_t			 c3;
	int			 rc;

	if ((s = fresh("settings.db", &path, &fx)) == NULL) {
		free(path);
		return;
	}
	ok(store_practice_set(s, fx.p1, "duty_email", "duty@riverside.example",
	    &e) == STORE_OK, "duty_email set");
	rc = store_practice_get(s, fx.p1, &p, &e);
	ok(rc == STORE_OK && p->team_email != NULL && p->duty_email != NULL &&
	    strcmp(p->team_email, "team@riverside.example") == 0 &&
	    strcmp(p->duty_email, "duty@riverside.example") == 0,
	    "practice_get returns team and duty addresses");
	store_practice_free(&p);
	rc = store_practice_set(s, fx.p1, "team_email", "not an address", &e);
	ok(rc == STORE_ERROR && strstr(e, "team_email") != NULL &&
	    strstr(e, "not an address") == NULL,
	    "a bad team address is refused without echoing it (%s)", e);
	rc = store_practice_set(s, fx.p1, "duty_email", "a@b.example\r\nBcc: x",
	    &e);
	is_int(rc, STORE_ERROR, "a header injection in duty_email refused");
	ok(store_practice_set(s, fx.p1, "duty_email", NULL, &e) == STORE_OK,
	    "duty_email cleared");
	rc = store_practice_get(s, fx.p1, &p, &e);
	ok(rc == STORE_OK && p->duty_email == NULL &&
	    p->team_email != NULL, "cleared: NULL, the team address kept");
	store_practice_free(&p);
	is_int(store_practice_set(s, 999, "team_email", "t@x.example", &e),
	    STORE_NOTFOUND, "team_email of no practice: NOTFOUND");

	ok(store_clinician_set(s, fx.c1, "active", "0", &e) == STORE_OK,
	    "clinician set inactive");
	rc = store_clinician_get(s, fx.c1, &c, &e);
	ok(rc == STORE_OK && c->active == 0, "clinician reads inactive");
	store_clinician_free(&c);
	ok(store_clinician_set(s, fx.c1, "active", "1", &e) == STORE_OK,
	    "clinician back");
	rc = store_clinician_get(s, fx.c1, &c, &e);
	ok(rc == STORE_OK && c->active == 1, "clinician reads active");
	store_clinician_free(&c);
	is_int(store_clinician_set(s, fx.c1, "active", "2", &e), STORE_ERROR,
	    "active must be 0 or 1");
	is_int(store_clinician_set(s, fx.c1, "active", NULL, &e), STORE_ERROR,
	    "active cannot be cleared");
	ok(store_clinician_set(s, fx.c1, "email", "a.new@nhs.example", &e) ==
	    STORE_OK, "clinician email set");
	rc = store_clinician_get(s, fx.c1, &c, &e);
	ok(rc == STORE_OK && strcmp(c->email, "a.new@nhs.example") == 0,
	    "clinician reads the new email");
	store_clinician_free(&c);
	is_int(store_clinician_set(s, fx.c1, "email", NULL, &e), STORE_ERROR,
	    "clinician email cannot be cleared");
	is_int(store_clinician_set(s, fx.c1, "email", "nope", &e),
	    STORE_ERROR, "clinician email must be an address");
	ok(store_clinician_add(s, fx.p1, "Dr C", "c@nhs.example", NULL, &c3,
	    &e) == STORE_OK, "a second clinician");
	rc = store_clinician_set(s, c3, "email", "A.NEW@nhs.example", &e);
	is_int(rc, STORE_ERROR, "an address another clinician of the "
	    "practice holds is refused (%s)", e);
	ok(store_clinician_set(s, fx.c2, "email", "a.new@nhs.example", &e) ==
	    STORE_OK, "the same address in another practice is fine");
	is_int(store_clinician_set(s, fx.c1, "role", "gp", &e), STORE_ERROR,
	    "an unknown clinician field is refused");
	is_int(store_clinician_set(s, 999, "active", "0", &e),
	    STORE_NOTFOUND, "no such clinician: NOTFOUND");
	store_close(&s);
	free(path);
}

/* Filed and quarantined replies, their mails, audit rows; duplicates. */
static void
test_commit(void)
{
	struct store			*s;
	struct store_reply_new		 r[3], d[2];
	struct store_reply		 g;
	struct store_reply_stats	 st;
	struct store_reply_mail_new	 m1[3], m2[2];
	struct fixture			 fx;
	unsigned char			*sb = NULL;
	const char			*e = NULL;
	char				*path, *t;
	size_t				 sl = 0;
	int64_t				 L, nrows, bad, mails, audits;
	int				 rc;

	if ((s = fresh("commit.db", &path, &fx)) == NULL) {
		free(path);
		return;
	}
	L = submit(s, fx.p1, fx.pat1);
	ok(L != 0, "a letter, the thread");

	m1[0] = (struct store_reply_mail_new){ STORE_RM_FORWARD,
	    "a@nhs.example", fx.c1 };
	m1[1] = (struct store_reply_mail_new){ STORE_RM_APPEND, NULL, fx.c1 };
	m1[2] = (struct store_reply_mail_new){ STORE_RM_ACK,
	    "jo@mail.example", 0 };
	m2[0] = (struct store_reply_mail_new){ STORE_RM_CONTACT,
	    "stranger@mail.example", 0 };
	m2[1] = (struct store_reply_mail_new){ STORE_RM_QUARANTINE,
	    "team@riverside.example", 0 };
	reply_init(&r[0], fx.p1, L, fx.pat1, "m1", "<m1@mail.example>", 0);
	r[0].clinician_id = fx.c1;
	r[0].shared = 1;
	r[0].mails = m1;
	r[0].nmails = 3;
	r[0].ack_window = 3600;
	reply_init(&r[1], fx.p1, 0, 0, "m2", "<m2@mail.example>", 0);
	r[1].from_addr = "stranger@mail.example";
	r[1].mails = m2;
	r[1].nmails = 2;
	r[1].ack_window = 3600;
	rc = store_replies_commit(s, r, 2, &e);
	ok(rc == STORE_OK, "two replies committed (%s)", rc == 0 ? "ok" : e);
	ok(r[0].result == STORE_REPLY_NEW && r[0].reply_id > 0 &&
	    r[0].acked == 1, "filed: new, acked");
	ok(r[1].result == STORE_REPLY_NEW && r[1].reply_id > r[0].reply_id &&
	    r[1].acked == 1, "quarantined: new, contact queued");

	rc = store_reply_get(s, r[0].reply_id, &g, &e);
	ok(rc == STORE_OK && g.practice_id == fx.p1 && g.letter_id == L &&
	    g.patient_id == fx.pat1 && g.clinician_id == fx.c1 &&
	    strcmp(g.state, "filed") == 0 && g.reason[0] == '\0' &&
	    strcmp(g.sender, "verified") == 0 &&
	    strcmp(g.from_addr, "jo@mail.example") == 0 &&
	    strcmp(g.message_id, "<m1@mail.example>") == 0 &&
	    strcmp(g.source, "imap") == 0 && g.urgent == 0 && g.shared == 1 &&
	    g.received == 1700000000 && g.created > 0 && g.decided == 0 &&
	    g.decided_by[0] == '\0' && g.sealed_len == sizeof(blob),
	    "the filed reply reads back");
	rc = store_reply_get(s, r[1].reply_id, &g, &e);
	ok(rc == STORE_OK && g.letter_id == 0 && g.patient_id == 0 &&
	    g.clinician_id == 0 && strcmp(g.state, "quarantined") == 0 &&
	    strcmp(g.reason, "no_thread") == 0 &&
	    strcmp(g.detail, "no In-Reply-To we sent") == 0,
	    "the quarantined reply reads back");
	is_int(store_reply_get(s, 999, &g, &e), STORE_NOTFOUND,
	    "no such reply: NOTFOUND");
	rc = store_reply_sealed(s, r[0].reply_id, &sb, &sl, &e);
	ok(rc == STORE_OK && sl == sizeof(blob) &&
	    memcmp(sb, blob, sl) == 0, "the sealed document reads back");
	free(sb);
	is_int(store_reply_sealed(s, 999, &sb, &sl, &e), STORE_NOTFOUND,
	    "no such reply's document: NOTFOUND");

	is_int(count(path, "SELECT count(*) FROM reply_mails WHERE "
	    "reply_id = %lld", (long long)r[0].reply_id), 3,
	    "three mails for the filed reply");
	is_int(count(path, "SELECT count(*) FROM reply_mails WHERE "
	    "reply_id = %lld AND kind = 'append' AND to_addr IS NULL AND "
	    "letter_id = %lld AND patient_id = %lld AND clinician_id = %lld "
	    "AND state = 'queued'", (long long)r[0].reply_id, (long long)L,
	    (long long)fx.pat1, (long long)fx.c1), 1,
	    "the append: no address, thread, patient, clinician, queued");
	is_int(count(path, "SELECT count(*) FROM reply_mails WHERE "
	    "reply_id = %lld AND letter_id IS NULL AND patient_id IS NULL",
	    (long long)r[1].reply_id), 2,
	    "two mails for the quarantined reply, no thread");
	{
		sqlite3	*db = raw_open(path);

		t = db != NULL ? raw_text(db, "SELECT group_concat(actor || "
		    "' ' || action || ' ' || object || ' ' || outcome, '|') "
		    "FROM (SELECT * FROM audit WHERE action LIKE 'reply.%%' "
		    "ORDER BY id)") : NULL;
		if (db != NULL)
			sqlite3_close(db);
	}
	{
		char	*want;

		xasprintf(&want, "daemon reply.filed reply:%lld ok|"
		    "daemon reply.quarantined reply:%lld no_thread",
		    (long long)r[0].reply_id, (long long)r[1].reply_id);
		is_str(t, want, "one audit row each, outcome the reason");
		free(want);
	}
	free(t);

	/* Across batches: the same message again inserts nothing. */
	mails = count(path, "SELECT count(*) FROM reply_mails");
	audits = count(path, "SELECT count(*) FROM audit");
	reply_init(&d[0], fx.p1, L, fx.pat1, "m1", "<m1@mail.example>", 0);
	d[0].mails = m1;
	d[0].nmails = 3;
	ok(commit1(s, &d[0]) == STORE_OK &&
	    d[0].result == STORE_REPLY_DUPLICATE &&
	    d[0].reply_id == r[0].reply_id && d[0].acked == 0,
	    "a second copy is a duplicate of the first");
	is_int(count(path, "SELECT count(*) FROM reply_mails"), mails,
	    "no mails for the duplicate");
	is_int(count(path, "SELECT count(*) FROM audit"), audits,
	    "no audit row for the duplicate");
	/* The same dedup in another practice is another reply. */
	reply_init(&d[0], fx.p2, 0, 0, "m1", "<m1@mail.example>", 0);
	ok(commit1(s, &d[0]) == STORE_OK && d[0].result == STORE_REPLY_NEW,
	    "the same dedup in another practice is new");

	/* In one batch: the second copy sees the first. */
	reply_init(&d[0], fx.p1, L, fx.pat1, "m3", "<m3@mail.example>", 0);
	reply_init(&d[1], fx.p1, L, fx.pat1, "m3", "<m3@mail.example>", 0);
	d[0].mails = d[1].mails = m1;
	d[0].nmails = d[1].nmails = 1;
	mails = count(path, "SELECT count(*) FROM reply_mails");
	rc = store_replies_commit(s, d, 2, &e);
	ok(rc == STORE_OK && d[0].result == STORE_REPLY_NEW &&
	    d[1].result == STORE_REPLY_DUPLICATE &&
	    d[1].reply_id == d[0].reply_id,
	    "two copies in one batch: new, then duplicate of it");
	is_int(count(path, "SELECT count(*) FROM reply_mails"), mails + 1,
	    "one forward for the two copies");

	ok(store_reply_stats(s, &st, &e) == STORE_OK && st.filed == 2 &&
	    st.quarantined == 2 && st.rejected == 0 &&
	    st.mails_queued == 6 && st.mails_failed == 0 &&
	    st.oldest_quarantined == 1700000000,
	    "stats: 2 filed, 2 quarantined, 6 mails queued");
	ok(store_audit_verify(s, &nrows, &bad, &e) == STORE_OK,
	    "audit chain verifies (%lld rows)", (long long)nrows);
	ok(store_check(s, &e) == STORE_OK, "integrity");
	store_close(&s);
	free(path);
}

/* The ack window: per thread, per address without a thread, in a
 * batch. */
static void
test_ack_window(void)
{
	struct store			*s;
	struct store_reply_new		 r, b[2];
	struct store_reply_mail_new	 ack[2], contact;
	struct fixture			 fx;
	const char			*e = NULL;
	char				*path;
	int64_t				 L, L2;
	sqlite3				*db;
	int				 rc;

	if ((s = fresh("ack.db", &path, &fx)) == NULL) {
		free(path);
		return;
	}
	L = submit(s, fx.p1, fx.pat1);
	L2 = submit(s, fx.p1, fx.pat1);
	ack[0] = (struct store_reply_mail_new){ STORE_RM_ACK,
	    "jo@mail.example", 0 };
	ack[1] = (struct store_reply_mail_new){ STORE_RM_FORWARD,
	    "a@nhs.example", fx.c1 };

	reply_init(&r, fx.p1, L, fx.pat1, "w1", NULL, 0);
	r.mails = ack;
	r.nmails = 2;
	r.ack_window = 3600;
	ok(commit1(s, &r) == STORE_OK && r.acked == 1,
	    "first reply to the thread: acked");
	reply_init(&r, fx.p1, L, fx.pat1, "w2", NULL, 0);
	r.mails = ack;
	r.nmails = 2;
	r.ack_window = 3600;
	ok(commit1(s, &r) == STORE_OK && r.result == STORE_REPLY_NEW &&
	    r.acked == 0, "second within the window: not acked");
	is_int(count(path, "SELECT count(*) FROM reply_mails WHERE "
	    "kind = 'ack' AND letter_id = %lld", (long long)L), 1,
	    "one ack for the thread");
	is_int(count(path, "SELECT count(*) FROM reply_mails WHERE "
	    "kind = 'forward' AND letter_id = %lld", (long long)L), 2,
	    "the window holds back acks only: both forwarded");
	reply_init(&r, fx.p1, L2, fx.pat1, "w2b", NULL, 0);
	r.mails = ack;
	r.nmails = 1;
	r.ack_window = 3600;
	ok(commit1(s, &r) == STORE_OK && r.acked == 1,
	    "another thread of the same patient: acked");
	reply_init(&r, fx.p1, L, fx.pat1, "w3", NULL, 0);
	r.mails = ack;
	r.nmails = 1;
	r.ack_window = 0;
	ok(commit1(s, &r) == STORE_OK && r.acked == 1,
	    "window 0: always acked");

	/* Age the thread's acks past the window. */
	if ((db = raw_open(path)) != NULL) {
		ok(raw_exec_ok(db, "UPDATE reply_mails SET created = "
		    "created - 3601 WHERE kind = 'ack'"), "acks aged 3601 s");
		sqlite3_close(db);
	}
	reply_init(&r, fx.p1, L, fx.pat1, "w4", NULL, 0);
	r.mails = ack;
	r.nmails = 1;
	r.ack_window = 3600;
	ok(commit1(s, &r) == STORE_OK && r.acked == 1,
	    "after the window: acked again");
	reply_init(&r, fx.p1, L, fx.pat1, "w5", NULL, 0);
	r.mails = ack;
	r.nmails = 1;
	r.ack_window = 7200;
	ok(commit1(s, &r) == STORE_OK && r.acked == 0,
	    "a wider window still sees the new one");

	/* Without a thread: by address, within the practice. */
	contact = (struct store_reply_mail_new){ STORE_RM_CONTACT,
	    "who@mail.example", 0 };
	reply_init(&r, fx.p1, 0, 0, "c1", NULL, 0);
	r.mails = &contact;
	r.nmails = 1;
	r.ack_window = 3600;
	ok(commit1(s, &r) == STORE_OK && r.acked == 1,
	    "no thread: contact queued");
	contact.to = "Who@Mail.Example";
	reply_init(&r, fx.p1, 0, 0, "c2", NULL, 0);
	r.mails = &contact;
	r.nmails = 1;
	r.ack_window = 3600;
	ok(commit1(s, &r) == STORE_OK && r.acked == 0,
	    "the same address (any case) within the window: held back");
	contact.to = "other@mail.example";
	reply_init(&r, fx.p1, 0, 0, "c3", NULL, 0);
	r.mails = &contact;
	r.nmails = 1;
	r.ack_window = 3600;
	ok(commit1(s, &r) == STORE_OK && r.acked == 1,
	    "another address: queued");
	contact.to = "who@mail.example";
	reply_init(&r, fx.p2, 0, 0, "c4", NULL, 0);
	r.mails = &contact;
	r.nmails = 1;
	r.ack_window = 3600;
	ok(commit1(s, &r) == STORE_OK && r.acked == 1,
	    "the same address in another practice: queued");
	contact.to = "jo@mail.example";
	reply_init(&r, fx.p1, 0, 0, "c5", NULL, 0);
	r.mails = &contact;
	r.nmails = 1;
	r.ack_window = 3600;
	ok(commit1(s, &r) == STORE_OK && r.acked == 1,
	    "a contact is not held back by a thread's ack to the address");

	/* Two entries of one batch for one thread: the second sees the
	 * first's ack. */
	reply_init(&b[0], fx.p1, L2, fx.pat1, "b1", NULL, 0);
	reply_init(&b[1], fx.p1, L2, fx.pat1, "b2", NULL, 0);
	if ((db = raw_open(path)) != NULL) {
		ok(raw_exec_ok(db, "UPDATE reply_mails SET created = "
		    "created - 3601 WHERE kind = 'ack'"), "acks aged again");
		sqlite3_close(db);
	}
	b[0].mails = b[1].mails = ack;
	b[0].nmails = b[1].nmails = 1;
	b[0].ack_window = b[1].ack_window = 3600;
	rc = store_replies_commit(s, b, 2, &e);
	ok(rc == STORE_OK && b[0].acked == 1 && b[1].acked == 0 &&
	    b[1].result == STORE_REPLY_NEW,
	    "one batch, one thread: the first acked, the second not");
	plan_check(s, "ack_window_thread", "reply_mails_window");
	plan_check(s, "ack_window_addr", "reply_mails_window");
	store_close(&s);
	free(path);
}

/* The reply mails outbox: urgent first, Message-IDs, outcomes,
 * recovery. */
static void
test_mails(void)
{
	struct store			*s;
	struct store_reply_new		 r[2];
	struct store_reply_mail_new	 m0[3], m1;
	struct store_reply_mail		*c = NULL;
	struct store_reply_stats	 st;
	struct fixture			 fx;
	const char			*e = NULL;
	char				*path, *mid = NULL, *fwd_mid = NULL;
	size_t				 n = 0, i;
	int64_t				 L, now, fwd = 0, ak = 0;
	int64_t				 ap = 0, k;
	int				 rc, seen = 0;

	if ((s = fresh("mails.db", &path, &fx)) == NULL) {
		free(path);
		return;
	}
	ok(store_practice_set(s, fx.p1, "reply_domain",
	    "Reply.Riverside.example", &e) == STORE_OK, "a reply domain");
	L = submit(s, fx.p1, fx.pat1);
	m0[0] = (struct store_reply_mail_new){ STORE_RM_FORWARD,
	    "a@nhs.example", fx.c1 };
	m0[1] = (struct store_reply_mail_new){ STORE_RM_ACK,
	    "jo@mail.example", 0 };
	m0[2] = (struct store_reply_mail_new){ STORE_RM_APPEND, NULL, 0 };
	m1 = (struct store_reply_mail_new){ STORE_RM_REDFLAG,
	    "duty@riverside.example", 0 };
	reply_init(&r[0], fx.p1, L, fx.pat1, "plain", "<plain@mail.example>",
	    0);
	r[0].mails = m0;
	r[0].nmails = 3;
	reply_init(&r[1], fx.p1, 0, 0, "urgent", "<urgent@mail.example>", 1);
	r[1].reason = "bad_token";
	r[1].sender = "mismatch";
	r[1].mails = &m1;
	r[1].nmails = 1;
	ok(store_replies_commit(s, r, 2, &e) == STORE_OK,
	    "a plain reply (3 mails) then an urgent one (red flag)");
	/* After the commit: its mails are due at its time, not later. */
	now = util_time();

	rc = store_reply_mails_claim(s, now, 1, &c, &n, &e);
	ok(rc == STORE_OK && n == 1 && c[0].reply_id == r[1].reply_id &&
	    strcmp(c[0].kind, "redflag") == 0 && c[0].urgent == 1,
	    "a claim of one takes the urgent mail though queued last");
	if (rc == STORE_OK && n == 1) {
		ok(c[0].to != NULL &&
		    strcmp(c[0].to, "duty@riverside.example") == 0 &&
		    c[0].attempts == 1 && c[0].letter_id == 0 &&
		    c[0].practice_id == fx.p1 &&
		    strcmp(c[0].in_reply_to, "<urgent@mail.example>") == 0 &&
		    strcmp(c[0].sender, "mismatch") == 0 &&
		    strcmp(c[0].reason, "bad_token") == 0 &&
		    c[0].sealed == NULL && c[0].sealed_len == 0,
		    "the red flag: address, ids, the reply's marks, no "
		    "content");
		ok(c[0].message_id != NULL && c[0].message_id[0] == '<' &&
		    strstr(c[0].message_id, "@reply.riverside.example>") !=
		    NULL, "Message-ID in the reply domain: %s",
		    c[0].message_id != NULL ? c[0].message_id : "NULL");
		mid = xstrdup(c[0].message_id);
		ok(store_reply_mail_done(s, c[0].id, "sent", 0, NULL, &e) ==
		    STORE_OK, "red flag sent");
		is_int(store_reply_mail_done(s, c[0].id, "sent", 0, NULL, &e),
		    STORE_NOTFOUND, "a second outcome: NOTFOUND");
	}
	store_reply_mails_free(&c, n);

	rc = store_reply_mails_claim(s, now, 10, &c, &n, &e);
	ok(rc == STORE_OK && n == 3, "the other three claimed (%zu)", n);
	for (i = 0; rc == STORE_OK && i < n; i++) {
		if (strcmp(c[i].kind, "forward") == 0) {
			fwd = c[i].id;
			fwd_mid = xstrdup(c[i].message_id);
			seen += c[i].sealed_len == sizeof(blob) &&
			    memcmp(c[i].sealed, blob, sizeof(blob)) == 0 &&
			    c[i].clinician_id == fx.c1 &&
			    c[i].letter_id == L && c[i].patient_id == fx.pat1 &&
			    strcmp(c[i].to, "a@nhs.example") == 0 &&
			    c[i].sender[0] == 'v' && c[i].reason[0] == '\0';
		} else if (strcmp(c[i].kind, "append") == 0) {
			ap = c[i].id;
			seen += c[i].to == NULL &&
			    c[i].sealed_len == sizeof(blob);
		} else if (strcmp(c[i].kind, "ack") == 0) {
			ak = c[i].id;
			seen += c[i].sealed == NULL &&
			    strcmp(c[i].in_reply_to,
			    "<plain@mail.example>") == 0;
		}
		if (mid != NULL && c[i].message_id != NULL &&
		    strcmp(c[i].message_id, mid) == 0)
			seen = -100;
	}
	is_int(seen, 3, "forward and append carry the document, the ack not; "
	    "every Message-ID differs");
	store_reply_mails_free(&c, n);
	is_int(store_reply_mails_claim(s, now, 10, &c, &n, &e), STORE_OK,
	    "claim with nothing due");
	is_int(n, 0, "nothing claimed twice");
	store_reply_mails_free(&c, n);

	ok(store_reply_mail_done(s, fwd, "queued", now + 600, "421 busy",
	    &e) == STORE_OK, "the forward retries in 10 minutes");
	ok(store_reply_mail_done(s, ak, "failed", 0, "550 no such user",
	    &e) == STORE_OK, "the ack failed");
	is_int(store_reply_mail_done(s, ap, "queued", 0, NULL, &e),
	    STORE_ERROR, "a retry without a time is refused");
	is_int(store_reply_mail_done(s, ap, "bounced", 0, NULL, &e),
	    STORE_ERROR, "an unknown outcome is refused");
	ok(store_reply_stats(s, &st, &e) == STORE_OK &&
	    st.mails_queued == 1 && st.mails_failed == 1,
	    "stats: one queued (the retry), one failed");

	/* A stop while sending: recovery gives the append back. */
	k = -1;
	rc = store_reply_mails_recover(s, &k, &e);
	ok(rc == STORE_OK && k == 1, "recover: the append back to queued "
	    "(%lld)", (long long)k);
	rc = store_reply_mails_claim(s, now, 10, &c, &n, &e);
	ok(rc == STORE_OK && n == 1 && c[0].id == ap && c[0].attempts == 2,
	    "the recovered append is claimed again, attempt 2");
	store_reply_mails_free(&c, n);
	rc = store_reply_mails_claim(s, now + 601, 10, &c, &n, &e);
	ok(rc == STORE_OK && n == 1 && c[0].id == fwd &&
	    c[0].attempts == 2 && fwd_mid != NULL &&
	    strcmp(c[0].message_id, fwd_mid) == 0,
	    "the retry is due later, with the same Message-ID");
	store_reply_mails_free(&c, n);
	is_int(store_reply_mails_claim(s, now, SIZE_MAX, &c, &n,
	    &e), STORE_ERROR, "an oversized claim is refused");
	plan_check(s, "reply_mails_claim", "reply_mails_due");
	plan_check(s, "reply_stats", "replies_state");
	free(mid);
	free(fwd_mid);
	store_close(&s);
	free(path);
}

/* Listing: filters and the id cursor. */
static void
test_list(void)
{
	struct store		*s;
	struct store_reply_new	 r;
	struct store_reply	*rows = NULL;
	struct fixture		 fx;
	const char		*e = NULL;
	char			*path, tag[16];
	int64_t			 L1, L2, id[6], since;
	size_t			 n = 0, total = 0;
	int			 i, rc, pages = 0, sorted = 1;

	if ((s = fresh("list.db", &path, &fx)) == NULL) {
		free(path);
		return;
	}
	L1 = submit(s, fx.p1, fx.pat1);
	L2 = submit(s, fx.p1, fx.pat1);
	/* p1: filed L1, filed L2, quarantined, filed L1; p2: two
	 * quarantined. */
	for (i = 0; i < 6; i++) {
		snprintf(tag, sizeof(tag), "l%d", i);
		if (i < 4)
			reply_init(&r, fx.p1, i == 2 ? 0 : i == 1 ? L2 : L1,
			    i == 2 ? 0 : fx.pat1, tag, NULL, 0);
		else
			reply_init(&r, fx.p2, 0, 0, tag, NULL, 0);
		id[i] = commit1(s, &r) == STORE_OK ? r.reply_id : 0;
	}
	ok(id[5] > id[0] && id[0] > 0, "six replies");
	ok(store_reply_reject(s, id[5], "spam", "admin:root", &e) == STORE_OK,
	    "one of p2 rejected");

	rc = store_replies_list(s, 0, 0, NULL, 0, 0, &rows, &n, &e);
	ok(rc == STORE_OK && n == 6 && rows[0].id == id[0] &&
	    rows[5].id == id[5], "all: six in id order");
	free(rows);
	rc = store_replies_list(s, fx.p1, 0, NULL, 0, 0, &rows, &n, &e);
	ok(rc == STORE_OK && n == 4 && rows[3].id == id[3],
	    "practice filter: four");
	free(rows);
	rc = store_replies_list(s, 0, L1, NULL, 0, 0, &rows, &n, &e);
	ok(rc == STORE_OK && n == 2 && rows[0].id == id[0] &&
	    rows[1].id == id[3], "thread filter: two");
	free(rows);
	rc = store_replies_list(s, 0, 0, "quarantined", 0, 0, &rows, &n, &e);
	ok(rc == STORE_OK && n == 2 && rows[0].id == id[2] &&
	    rows[1].id == id[4], "state filter: two quarantined");
	free(rows);
	rc = store_replies_list(s, fx.p2, 0, "filed|rejected", 0, 0, &rows,
	    &n, &e);
	ok(rc == STORE_OK && n == 1 && rows[0].id == id[5] &&
	    strcmp(rows[0].state, "rejected") == 0 &&
	    strcmp(rows[0].reason, "spam") == 0 &&
	    strcmp(rows[0].decided_by, "admin:root") == 0,
	    "two states and a practice: the rejected one");
	free(rows);
	rc = store_replies_list(s, fx.p1, L2, "quarantined", 0, 0, &rows, &n,
	    &e);
	ok(rc == STORE_OK && n == 0 && rows == NULL, "no match: empty");
	free(rows);

	/* Pages of two after the cursor. */
	for (since = 0;; pages++) {
		rc = store_replies_list(s, 0, 0, NULL, since, 2, &rows, &n,
		    &e);
		if (rc != STORE_OK || n == 0 || pages > 5)
			break;
		if (rows[0].id <= since)
			sorted = 0;
		total += n;
		since = rows[n - 1].id;
		free(rows);
		rows = NULL;
	}
	free(rows);
	ok(rc == STORE_OK && pages == 3 && total == 6 && sorted,
	    "the cursor pages through all six, two at a time");
	is_int(store_replies_list(s, 0, 0, "bogus", 0, 0, &rows, &n, &e),
	    STORE_ERROR, "an unknown state is refused");
	is_int(store_replies_list(s, 0, 0, "", 0, 0, &rows, &n, &e),
	    STORE_ERROR, "an empty state list is refused");
	is_int(store_replies_list(s, 0, 0, "filed|filed|filed|filed", 0, 0,
	    &rows, &n, &e), STORE_ERROR, "too many states are refused");
	store_close(&s);
	free(path);
}

/* Staff decisions: file and reject only from quarantine; thread close. */
static void
test_decisions(void)
{
	struct store			*s;
	struct store_reply_new		 r;
	struct store_reply		 g;
	struct store_reply_mail_new	 fw;
	struct store_letter		*l = NULL;
	struct fixture			 fx;
	unsigned char			 resealed[64], *sb = NULL;
	const char			*e = NULL;
	char				*path, *t, *want;
	size_t				 sl = 0;
	int64_t				 L, Lp2, q1, q2, f, mails, audits;
	int64_t				 nrows, bad;
	sqlite3				*db;
	int				 rc;

	if ((s = fresh("decide.db", &path, &fx)) == NULL) {
		free(path);
		return;
	}
	L = submit(s, fx.p1, fx.pat1);
	Lp2 = submit(s, fx.p2, fx.pat2);
	reply_init(&r, fx.p1, 0, 0, "q1", NULL, 0);
	q1 = commit1(s, &r) == STORE_OK ? r.reply_id : 0;
	reply_init(&r, fx.p1, 0, 0, "q2", NULL, 0);
	q2 = commit1(s, &r) == STORE_OK ? r.reply_id : 0;
	reply_init(&r, fx.p1, L, fx.pat1, "f", NULL, 0);
	f = commit1(s, &r) == STORE_OK ? r.reply_id : 0;
	ok(q1 > 0 && q2 > 0 && f > 0, "two quarantined, one filed");

	memset(resealed, 0x5a, sizeof(resealed));
	fw = (struct store_reply_mail_new){ STORE_RM_FORWARD, "a@nhs.example",
	    fx.c1 };
	rc = store_reply_file(s, q1, Lp2, fx.c2, resealed, sizeof(resealed),
	    &fw, 1, "admin:root", &e);
	ok(rc == STORE_ERROR, "filing to another practice's thread is "
	    "refused (%s)", e);
	rc = store_reply_file(s, q1, 999, fx.c1, resealed, sizeof(resealed),
	    &fw, 1, "admin:root", &e);
	is_int(rc, STORE_ERROR, "filing to no thread is refused");
	rc = store_reply_file(s, q1, L, fx.c2, resealed, sizeof(resealed),
	    &fw, 1, "admin:root", &e);
	is_int(rc, STORE_ERROR, "filing for another practice's clinician is "
	    "refused");
	ok(store_reply_get(s, q1, &g, &e) == STORE_OK &&
	    strcmp(g.state, "quarantined") == 0 && g.letter_id == 0,
	    "after the refusals the reply is still in quarantine");
	mails = count(path, "SELECT count(*) FROM reply_mails");
	audits = count(path, "SELECT count(*) FROM audit");
	is_int(mails, 0, "and no mail was left behind");

	rc = store_reply_file(s, q1, L, fx.c1, resealed, sizeof(resealed),
	    &fw, 1, "admin:root", &e);
	ok(rc == STORE_OK, "filed by staff (%s)", rc == 0 ? "ok" : e);
	ok(store_reply_get(s, q1, &g, &e) == STORE_OK &&
	    strcmp(g.state, "filed") == 0 && g.letter_id == L &&
	    g.patient_id == fx.pat1 && g.clinician_id == fx.c1 &&
	    g.decided > 0 && strcmp(g.decided_by, "admin:root") == 0 &&
	    g.sealed_len == sizeof(resealed) &&
	    strcmp(g.reason, "no_thread") == 0,
	    "filed: thread, its patient, clinician, decided by; the "
	    "quarantine reason kept");
	rc = store_reply_sealed(s, q1, &sb, &sl, &e);
	ok(rc == STORE_OK && sl == sizeof(resealed) &&
	    memcmp(sb, resealed, sl) == 0, "the resealed document replaced "
	    "the archive-only one");
	free(sb);
	is_int(count(path, "SELECT count(*) FROM reply_mails WHERE "
	    "reply_id = %lld AND kind = 'forward' AND letter_id = %lld AND "
	    "patient_id = %lld", (long long)q1, (long long)L,
	    (long long)fx.pat1), 1, "its forward is queued for the thread");
	is_int(count(path, "SELECT count(*) FROM audit"), audits + 1,
	    "one audit row");
	db = raw_open(path);
	t = db != NULL ? raw_text(db, "SELECT actor || ' ' || action || ' ' "
	    "|| object || ' ' || outcome FROM audit ORDER BY id DESC "
	    "LIMIT 1") : NULL;
	xasprintf(&want, "admin:root reply.file reply:%lld ok",
	    (long long)q1);
	is_str(t, want, "the audit row names the actor");
	free(t);
	free(want);

	is_int(store_reply_file(s, q1, L, fx.c1, resealed, sizeof(resealed),
	    NULL, 0, "admin:root", &e), STORE_NOTFOUND,
	    "filing a filed reply: NOTFOUND");
	is_int(store_reply_reject(s, f, "spam", "admin:root", &e),
	    STORE_NOTFOUND, "rejecting a filed reply: NOTFOUND");
	is_int(store_reply_reject(s, 999, "spam", "admin:root", &e),
	    STORE_NOTFOUND, "rejecting no reply: NOTFOUND");
	is_int(store_reply_reject(s, q2, NULL, "admin:root", &e),
	    STORE_ERROR, "a rejection needs a reason");
	is_int(store_reply_reject(s, q2, "spam", NULL, &e), STORE_ERROR,
	    "a rejection needs an actor");
	ok(store_reply_reject(s, q2, "not_for_record", "admin:jo", &e) ==
	    STORE_OK, "rejected");
	ok(store_reply_get(s, q2, &g, &e) == STORE_OK &&
	    strcmp(g.state, "rejected") == 0 &&
	    strcmp(g.reason, "not_for_record") == 0 && g.decided > 0 &&
	    strcmp(g.decided_by, "admin:jo") == 0, "rejected: reason, by");
	t = db != NULL ? raw_text(db, "SELECT actor || ' ' || action || ' ' "
	    "|| object || ' ' || outcome FROM audit ORDER BY id DESC "
	    "LIMIT 1") : NULL;
	xasprintf(&want, "admin:jo reply.reject reply:%lld not_for_record",
	    (long long)q2);
	is_str(t, want, "the rejection is audited with its reason");
	free(t);
	free(want);
	is_int(store_reply_file(s, q2, L, 0, resealed, sizeof(resealed), NULL,
	    0, "admin:root", &e), STORE_NOTFOUND,
	    "filing a rejected reply: NOTFOUND");

	/* Closing a thread. */
	ok(store_letter_get(s, L, &l, &e) == STORE_OK && l->closed == 0,
	    "the thread is open");
	store_letter_free(&l);
	ok(store_letter_close(s, L, "admin:root", &e) == STORE_OK,
	    "thread closed");
	ok(store_letter_get(s, L, &l, &e) == STORE_OK && l->closed > 0,
	    "the letter reads closed");
	store_letter_free(&l);
	t = db != NULL ? raw_text(db, "SELECT actor || ' ' || action || ' ' "
	    "|| object || ' ' || outcome FROM audit ORDER BY id DESC "
	    "LIMIT 1") : NULL;
	xasprintf(&want, "admin:root letter.close letter:%lld ok",
	    (long long)L);
	is_str(t, want, "the close is audited");
	free(t);
	free(want);
	audits = count(path, "SELECT count(*) FROM audit");
	ok(store_letter_close(s, L, "admin:jo", &e) == STORE_OK,
	    "closing again is fine");
	is_int(count(path, "SELECT count(*) FROM audit"), audits,
	    "and changes nothing");
	is_int(store_letter_close(s, 999, "admin:root", &e), STORE_NOTFOUND,
	    "closing no letter: NOTFOUND");
	ok(store_letter_get(s, Lp2, &l, &e) == STORE_OK && l->closed == 0,
	    "another thread stays open");
	store_letter_free(&l);
	if (db != NULL)
		sqlite3_close(db);

	/* Inside an admin's transaction the decision rolls back with it. */
	reply_init(&r, fx.p1, 0, 0, "q3", NULL, 0);
	ok(commit1(s, &r) == STORE_OK, "another quarantined reply");
	ok(store_begin(s, &e) == STORE_OK &&
	    store_reply_reject(s, r.reply_id, "spam", "admin:root", &e) ==
	    STORE_OK, "rejected inside an open transaction");
	store_rollback(s);
	ok(store_reply_get(s, r.reply_id, &g, &e) == STORE_OK &&
	    strcmp(g.state, "quarantined") == 0,
	    "rolled back: still quarantined");
	ok(store_audit_verify(s, &nrows, &bad, &e) == STORE_OK,
	    "audit chain verifies (%lld rows)", (long long)nrows);
	ok(store_check(s, &e) == STORE_OK, "integrity");
	store_close(&s);
	free(path);
}

/* Refusals: bad input before the transaction, schema refusals as
 * STORE_ERROR, all-or-nothing batches. */
static void
test_refusals(void)
{
	struct store			*s;
	struct store_reply_new		 r[2];
	struct store_reply_mail_new	 m;
	struct fixture			 fx;
	const char			*e = NULL;
	char				*path;
	int64_t				 L, Lp2, replies;
	sqlite3				*db;
	int				 rc;

	if ((s = fresh("refuse.db", &path, &fx)) == NULL) {
		free(path);
		return;
	}
	L = submit(s, fx.p1, fx.pat1);
	Lp2 = submit(s, fx.p2, fx.pat2);

#define REFUSE(what, setup) do {					\
	reply_init(&r[0], fx.p1, L, fx.pat1, "ok", NULL, 0);		\
	setup;								\
	rc = store_replies_commit(s, r, 1, &e);				\
	ok(rc == STORE_ERROR && r[0].reply_id == 0, "refused: %s (%s)",	\
	    what, rc == STORE_ERROR ? e : "accepted");			\
} while (0)
	REFUSE("no such practice", r[0].practice_id = 999);
	REFUSE("a thread of another practice", r[0].letter_id = Lp2);
	REFUSE("no such thread", r[0].letter_id = 999);
	REFUSE("a patient of another practice", r[0].patient_id = fx.pat2);
	REFUSE("a clinician of another practice",
	    r[0].clinician_id = fx.c2);
	REFUSE("filed without a thread", r[0].letter_id = 0);
	REFUSE("filed with a reason", r[0].reason = "bad_token");
	REFUSE("quarantined without a reason",
	    r[0].state = STORE_RS_QUARANTINED);
	REFUSE("an unknown state", r[0].state = "pending");
	REFUSE("an unknown sender mark", r[0].sender = "trusted");
	REFUSE("an unknown source", r[0].source = "pop3");
	REFUSE("no sealed document", r[0].sealed = NULL);
	REFUSE("an overlong reason", (r[0].state = STORE_RS_QUARANTINED,
	    r[0].reason = "a_reason_code_that_is_much_longer_than_the_47_"
	    "bytes"));
	REFUSE("a line break in the Message-ID",
	    r[0].message_id = "<a@b>\r\nBcc: x@y.example");
	REFUSE("a control character in the detail", (r[0].state =
	    STORE_RS_QUARANTINED, r[0].reason = "no_thread",
	    r[0].detail = "tab\there"));
	m = (struct store_reply_mail_new){ STORE_RM_ACK, NULL, 0 };
	REFUSE("an ack without an address", (r[0].mails = &m,
	    r[0].nmails = 1));
	m = (struct store_reply_mail_new){ STORE_RM_APPEND, "a@nhs.example",
	    0 };
	REFUSE("an append with an address", (r[0].mails = &m,
	    r[0].nmails = 1));
	m = (struct store_reply_mail_new){ "fax", "a@nhs.example", 0 };
	REFUSE("an unknown mail kind", (r[0].mails = &m, r[0].nmails = 1));
	m = (struct store_reply_mail_new){ STORE_RM_FORWARD,
	    "a@nhs.example\r\nBcc: x@y.example", 0 };
	REFUSE("a header in a mail address", (r[0].mails = &m,
	    r[0].nmails = 1));
	m = (struct store_reply_mail_new){ STORE_RM_FORWARD,
	    "b@nhs.example", fx.c2 };
	REFUSE("a forward to another practice's clinician",
	    (r[0].mails = &m, r[0].nmails = 1));
#undef REFUSE

	/* All or nothing: a good entry before a bad one is not kept. */
	reply_init(&r[0], fx.p1, L, fx.pat1, "good", NULL, 0);
	reply_init(&r[1], fx.p1, L, fx.pat1, "bad", NULL, 0);
	r[1].clinician_id = fx.c2;
	rc = store_replies_commit(s, r, 2, &e);
	ok(rc == STORE_ERROR && r[0].reply_id == 0 &&
	    r[0].result == STORE_REPLY_NEW, "a batch with a bad entry fails "
	    "whole");
	replies = count(path, "SELECT count(*) FROM replies");
	is_int(replies, 0, "nothing of it was kept");
	is_int(count(path, "SELECT count(*) FROM audit WHERE action LIKE "
	    "'reply.%%'"), 0, "no audit row either");
	ok(commit1(s, &r[0]) == STORE_OK && r[0].result == STORE_REPLY_NEW,
	    "the good entry alone commits");

	/* The schema itself refuses what the C checks would let by. */
	if ((db = raw_open(path)) != NULL) {
		ok(sqlite3_exec(db, "PRAGMA foreign_keys = ON; "
		    "UPDATE replies SET state = 'lost'", NULL, NULL, NULL) ==
		    SQLITE_CONSTRAINT, "CHECK: an unknown reply state");
		ok(sqlite3_exec(db, "UPDATE replies SET letter_id = NULL",
		    NULL, NULL, NULL) == SQLITE_CONSTRAINT,
		    "CHECK: a filed reply keeps its thread");
		ok(sqlite3_exec(db, "INSERT INTO reply_mails (reply_id, "
		    "practice_id, kind, to_addr, next_attempt, created) "
		    "SELECT id, practice_id, 'ack', NULL, 0, 0 FROM replies",
		    NULL, NULL, NULL) == SQLITE_CONSTRAINT,
		    "CHECK: only an append has no address");
		ok(sqlite3_exec(db, "INSERT INTO reply_mails (reply_id, "
		    "practice_id, kind, to_addr, next_attempt, created) "
		    "VALUES (999, 1, 'ack', 'x@y.example', 0, 0)", NULL, NULL,
		    NULL) == SQLITE_CONSTRAINT, "FK: a mail of no reply");
		sqlite3_close(db);
	}
	ok(store_check(s, &e) == STORE_OK, "integrity");
	store_close(&s);
	free(path);
}

/* Matching by Message-ID, through the index. */
static void
test_message_id(void)
{
	struct store		*s;
	struct store_claim	*c = NULL;
	struct fixture		 fx;
	const char		*e = NULL;
	char			*path;
	size_t			 n = 0;
	int64_t			 L, did = -1, lid = -1, pid = -1;
	int			 rc;

	if ((s = fresh("msgid.db", &path, &fx)) == NULL) {
		free(path);
		return;
	}
	L = submit(s, fx.p1, fx.pat1);
	rc = store_deliveries_claim(s, util_time(), 1, 0, &c, &n, &e);
	ok(rc == STORE_OK && n == 1 && c[0].message_id != NULL,
	    "a claimed delivery has a Message-ID");
	if (rc == STORE_OK && n == 1) {
		rc = store_delivery_by_message_id(s, c[0].message_id, &did,
		    &lid, &pid, &e);
		ok(rc == STORE_OK && did == c[0].delivery_id && lid == L &&
		    pid == fx.pat1, "found: delivery, letter, patient");
	}
	store_claims_free(&c, n);
	rc = store_delivery_by_message_id(s, "<nobody@riverside.example>",
	    &did, &lid, &pid, &e);
	ok(rc == STORE_NOTFOUND && did == 0 && lid == 0 && pid == 0,
	    "an unknown Message-ID: NOTFOUND, ids zero");
	is_int(store_delivery_by_message_id(s, NULL, &did, &lid, &pid, &e),
	    STORE_ERROR, "no Message-ID: refused");
	plan_check(s, "delivery_by_message_id", "deliveries_message_id");
	plan_check(s, "reply_dup", "sqlite_autoindex_replies");
	store_close(&s);
	free(path);
}

int
main(void)
{
	const char *const dbs[] = { "upgrade.db", "upgrade2.db",
	    "settings.db", "commit.db", "ack.db", "mails.db", "list.db",
	    "decide.db", "refuse.db", "msgid.db" };

	if (hash_init() == -1) {
		ok(0, "hash_init");
		return tap_done();
	}
	if (tmpdir_make("sealpost-rstore") == -1)
		return tap_done();
	test_upgrade();
	test_settings();
	test_commit();
	test_ack_window();
	test_mails();
	test_list();
	test_decisions();
	test_refusals();
	test_message_id();

	tmpdir_remove(dbs, nitems(dbs));
	return tap_done();
}
