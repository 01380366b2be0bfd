/*
 * store_fixture.h - what the SQLite store tests (test_store.c,
 * test_queue_store.c) share, header-only like tap.h: a private directory
 * under $TMPDIR (or /tmp) for their databases, a raw sqlite3 connection to
 * look behind the store, and the parties each part starts from.
 * Include it after tap.h.
 */
#ifndef SEALPOST_STORE_FIXTURE_H
#define SEALPOST_STORE_FIXTURE_H

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "store.h"
#include "util.h"

/* The parties: two practices with a clinician, a patient and a client
 * each, so that every test can also cross a practice boundary. */
struct fixture {
	int64_t		 p1, p2;	/* practices */
	int64_t		 c1, c2;	/* clinicians of p1, p2 */
	int64_t		 pat1, pat2;	/* patients of p1, p2 */
	int64_t		 cl1, cl2;	/* clients of p1, p2 */
};

static char	*tmpdir;

__attribute__((unused)) static int	 tmpdir_make(const char *);
__attribute__((unused)) static void	 tmpdir_remove(const char *const *,
		    size_t);
__attribute__((unused)) static char	*tpath(const char *);
__attribute__((unused)) static void	 rmdb(const char *);
__attribute__((unused)) static sqlite3	*raw_open(const char *);
__attribute__((unused, format(printf, 2, 0)))
static sqlite3_stmt	*raw_prepare(sqlite3 *, const char *, va_list);
__attribute__((unused, format(printf, 2, 3)))
static int64_t		 raw_int(sqlite3 *, const char *, ...);
__attribute__((unused, format(printf, 2, 3)))
static char		*raw_text(sqlite3 *, const char *, ...);
__attribute__((unused)) static int	 make_fixture(struct store *,
		    struct fixture *, const char **);

/* Make the private directory, tmpdir, named after the test; -1 (a failed
 * test) if it cannot be made. */
static int
tmpdir_make(const char *name)
{
	const char	*base = getenv("TMPDIR");

	xasprintf(&tmpdir, "%s/%s-XXXXXX",
	    base != NULL && *base != '\0' ? base : "/tmp", name);
	if (mkdtemp(tmpdir) == NULL) {
		ok(0, "mkdtemp: %s", strerror(errno));
		free(tmpdir);
		tmpdir = NULL;
		return -1;
	}
	return 0;
}

/* Remove the databases named, then the private directory. */
static void
tmpdir_remove(const char *const *dbs, size_t n)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		rmdb(dbs[i]);
	if (rmdir(tmpdir) == -1)
		diag("rmdir %s: %s", tmpdir, strerror(errno));
	free(tmpdir);
	tmpdir = NULL;
}

/* A file name in the private directory; caller frees. */
static char *
tpath(const char *name)
{
	char	*p;

	xasprintf(&p, "%s/%s", tmpdir, name);
	return p;
}

/* Remove a database and its -wal, -shm and -journal files. */
static void
rmdb(const char *name)
{
	const char	*sfx[] = { "", "-wal", "-shm", "-journal" };
	char		*p;
	size_t		 i;

	for (i = 0; i < nitems(sfx); i++) {
		xasprintf(&p, "%s/%s%s", tmpdir, name, sfx[i]);
		unlink(p);
		free(p);
	}
}

/* A raw connection, as another tool or an attacker would open. */
static sqlite3 *
raw_open(const char *path)
{
	sqlite3	*db;

	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) !=
	    SQLITE_OK) {
		diag("raw open: %s", sqlite3_errmsg(db));
		sqlite3_close(db);
		return NULL;
	}
	sqlite3_busy_timeout(db, 5000);
	return db;
}

/* Prepare formatted SQL; NULL (the reason goes to diag) if it fails. */
static sqlite3_stmt *
raw_prepare(sqlite3 *db, const char *fmt, va_list ap)
{
	sqlite3_stmt	*st;
	char		*sql;

	xvasprintf(&sql, fmt, ap);
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		diag("raw prepare: %s", sqlite3_errmsg(db));
		st = NULL;
	}
	free(sql);
	return st;
}

/* The first column of the first row as an integer, or -1. */
static int64_t
raw_int(sqlite3 *db, const char *fmt, ...)
{
	sqlite3_stmt	*st;
	va_list		 ap;
	int64_t		 v = -1;

	va_start(ap, fmt);
	st = raw_prepare(db, fmt, ap);
	va_end(ap);
	if (st == NULL)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* The first column of the first row as a string (malloc'd), or NULL. */
static char *
raw_text(sqlite3 *db, const char *fmt, ...)
{
	sqlite3_stmt	*st;
	va_list		 ap;
	char		*v = NULL;

	va_start(ap, fmt);
	st = raw_prepare(db, fmt, ap);
	va_end(ap);
	if (st == NULL)
		return NULL;
	if (sqlite3_step(st) == SQLITE_ROW &&
	    sqlite3_column_text(st, 0) != NULL)
		v = xstrdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return v;
}

/* Add the parties to an open store; -1 and *e if one is refused. */
static int
make_fixture(struct store *s, struct fixture *fx, const char **e)
{
	unsigned char	 tok1[32], tok2[32];

	memset(fx, 0, sizeof(*fx));
	memset(tok1, 0x11, sizeof(tok1));
	memset(tok2, 0x22, sizeof(tok2));
	*e = NULL;
	if (store_practice_add(s, "Riverside", "riverside.example", &fx->p1,
	    e) != STORE_OK ||
	    store_practice_add(s, "Hillside", "hillside.example", &fx->p2,
	    e) != STORE_OK ||
	    store_clinician_add(s, fx->p1, "Dr A", "a@nhs.example", "gp",
	    &fx->c1, e) != STORE_OK ||
	    store_clinician_add(s, fx->p2, "Dr B", "b@nhs.example", "gp",
	    &fx->c2, e) != STORE_OK ||
	    store_patient_add(s, fx->p1, "Jo", "jo@mail.example", 1, 1, NULL,
	    &fx->pat1, e) != STORE_OK ||
	    store_patient_add(s, fx->p2, "Sam", "sam@mail.example", 1, 1,
	    NULL, &fx->pat2, e) != STORE_OK ||
	    store_client_add(s, fx->p1, "emis", tok1, fx->c1, &fx->cl1,
	    e) != STORE_OK ||
	    store_client_add(s, fx->p2, "tpp", tok2, fx->c2, &fx->cl2,
	    e) != STORE_OK)
		return -1;
	return 0;
}

#endif
