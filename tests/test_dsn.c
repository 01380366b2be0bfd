/*
 * test_dsn.c - delivery status notifications (dsn.c) and the sandbox's
 * SANDBOX_OP_DSN (sandbox.c).
 *
 * Fixtures in tests/data/dsn/ (README.md there says where each comes
 * from: real Postfix bounces made by tests/rig/make-dsn.sh, real samples
 * from public MIME test suites, hand-written shapes of other MTAs and
 * non-reports); the expected values below were read off the files by
 * hand.  Every fixture must be in the table, and every table entry must
 * exist.  Then dsn_class(), the text form (round trips, and the strict
 * reader's refusals), hostile input (huge and dirty values, 1,000
 * recipient blocks, hostile Message-IDs, missing parts), and the sandbox:
 * this binary is the child program too (-P), every fixture read through
 * sandbox_parse_dsn() must equal dsn_parse() in process, and libetpan's
 * boundary="\"" crash input is stopped by the prefilter in the child.
 */
#include "build.h"

#include <sys/types.h>

#include <dirent.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dsn.h"
#include "hash.h"
#include "letter.h"
#include "mime.h"
#include "sandbox.h"
#include "util.h"
#include "tap.h"
#include "tfile.h"

#ifdef SEALPOST_ASAN
#define BUDGET_MS	5000
#else
#define BUDGET_MS	1000
#endif

#define FAILED		DSN_ACTION_FAILED
#define DELAYED		DSN_ACTION_DELAYED
#define DELIVERED	DSN_ACTION_DELIVERED
#define RELAYED		DSN_ACTION_RELAYED
#define EXPANDED	DSN_ACTION_EXPANDED
#define UNKNOWN		DSN_ACTION_UNKNOWN

struct exp_rcpt {
	const char	*final, *orig;
	enum dsn_action	 action;
	const char	*status, *diag;
};

struct fixture {
	const char	*file;		/* in tests/data/dsn/ */
	enum dsn_result	 res;
	int		 cls;
	const char	*mta, *msgid;
	size_t		 n;
	struct exp_rcpt	 r[5];
};

#define PF_MTA		"dns; smarthost.rig.test"
#define PF_DIAG(a)	"smtp; 550 5.1.1 <" a ">: Recipient address " \
			    "rejected: User unknown in virtual mailbox table"
#define GMAIL_DIAG	"smtp; 550-5.1.1 The email account that you tried " \
			    "to reach does not exist. Please try 550-5.1.1 " \
			    "double-checking the recipient's email address " \
			    "for typos or 550-5.1.1 unnecessary spaces."
/* 282 octets in the file, cut to DSN_TEXT_MAX - 1 = 199. */
#define LL_DIAG		GMAIL_DIAG " Learn more at 5"

static const struct fixture fixtures[] = {
	/* Postfix 3.7, tests/rig/make-dsn.sh */
	{ "postfix-hard-hdrs.eml", DSN_OK, 5, PF_MTA,
	    "<hard-hdrs.1@sealpost.test>", 1, {
	    { "nosuchuser@reject.test", "nosuchuser@reject.test", FAILED,
	    "5.1.1", PF_DIAG("nosuchuser@reject.test") } } },
	{ "postfix-hard-hdrs-crlf.eml", DSN_OK, 5, PF_MTA,
	    "<hard-hdrs.1@sealpost.test>", 1, {
	    { "nosuchuser@reject.test", "nosuchuser@reject.test", FAILED,
	    "5.1.1", PF_DIAG("nosuchuser@reject.test") } } },
	{ "postfix-hard-full.eml", DSN_OK, 5, PF_MTA,
	    "<hard-full.1@sealpost.test>", 1, {
	    { "nosuchuser@reject.test", "nosuchuser@reject.test", FAILED,
	    "5.1.1", PF_DIAG("nosuchuser@reject.test") } } },
	{ "postfix-multi.eml", DSN_OK, 5, PF_MTA, "<multi.1@sealpost.test>",
	    2, {
	    { "alice@reject.test", "alice@reject.test", FAILED, "5.1.1",
	    PF_DIAG("alice@reject.test") },
	    { "bob@reject.test", "robert@sealpost.test", FAILED, "5.1.1",
	    PF_DIAG("bob@reject.test") } } },
	{ "postfix-relayed.eml", DSN_OK, 2, PF_MTA,
	    "<relayed.1@sealpost.test>", 1, {
	    { "dave@accept.test", "dave@accept.test", RELAYED, "2.0.0",
	    "smtp; 250 2.0.0 Ok" } } },
	{ "postfix-delayed.eml", DSN_OK, 4, PF_MTA,
	    "<delayed.1@sealpost.test>", 1, {
	    { "erin@soft.test", "erin@soft.test", DELAYED, "4.2.2",
	    "smtp; 452 4.2.2 <erin@soft.test>: Recipient address rejected: "
	    "Mailbox full" } } },
	/* Action: failed with the last 4.x.x: the smarthost gave up. */
	{ "postfix-expired.eml", DSN_OK, 5, "dns; smarthost2.rig.test",
	    "<expired.1@sealpost.test>", 1, {
	    { "frank@soft.test", "frank@soft.test", FAILED, "4.2.2",
	    "smtp; 452 4.2.2 <frank@soft.test>: Recipient address rejected: "
	    "Mailbox full" } } },

	/* Other MTAs' shapes, written for sealpost */
	{ "exchange-multi.eml", DSN_OK, 5,
	    "dns; AM0PR01MB1234.eurprd01.prod.exchangelabs.com",
	    "<exch.1@sealpost.test>", 2, {
	    { "jane.doe@contoso.example", "jane.doe@contoso.example", FAILED,
	    "5.1.10", "smtp; 550 5.1.10 RESOLVER.ADR.RecipientNotFound; "
	    "Recipient not found by SMTP address lookup" },
	    { "john.roe@contoso.example", "john.roe@contoso.example", FAILED,
	    "5.2.2", "smtp; 554 5.2.2 mailbox full; STOREDRV.Deliver."
	    "Exception:QuotaExceededException.MapiExceptionShutoffQuota"
	    "Exceeded" } } },
	{ "gmail.eml", DSN_OK, 5, "dns; googlemail.com",
	    "<gmail.1@sealpost.test>", 1, {
	    { "nobody.here.at.all@gmail.com", "", FAILED, "5.1.1",
	    GMAIL_DIAG } } },
	{ "sendmail-delayed.eml", DSN_OK, 4, "dns; mail.example.net",
	    "<sendmail.1@sealpost.test>", 1, {
	    { "pat@slow.example", "", DELAYED, "4.4.7", "smtp; 421 4.4.7 "
	    "Connection timed out with mx.slow.example." } } },
	{ "lenient-layout.eml", DSN_OK, 5, "dns; mx.lenient.example", "", 3, {
	    { "first@one.example", "", FAILED, "5.0.0",
	    "x-local; user unknown, see the manual" },
	    { "second@two.example", "", FAILED, "5.7.1",
	    "smtp; 550 5.7.1 relaying denied" },
	    { "third@three.example", "third-alias@three.example", DELAYED,
	    "4.4.1", "" } } },
	{ "missing-status.eml", DSN_OK, 5, "dns; old.example",
	    "<missing.1@sealpost.test>", 3, {
	    { "gone@old.example", "", FAILED, "", "" },
	    { "full@old.example", "", UNKNOWN, "4.2.2",
	    "smtp; 452 mailbox full" },
	    { "odd@old.example", "", FAILED, "", "" } } },
	{ "global-dsn.eml", DSN_OK, 5, "dns; mx.utf8.example",
	    "<global.1@sealpost.test>", 1, {
	    { "j\xc3\xb6rg@b\xc3\xbc" "cher.example", "", FAILED, "5.1.1",
	    "smtp; 550 5.1.1 <j\xc3\xb6rg@b\xc3\xbc" "cher.example>: "
	    "unbekannt" } } },
	{ "base64-status.eml", DSN_OK, 5, "dns; b64.example",
	    "<b64.1@sealpost.test>", 1, {
	    { "enc@b64.example", "", FAILED, "5.1.2",
	    "smtp; 550 5.1.2 bad destination system" } } },
	{ "no-report-type.eml", DSN_OK, 5, "dns; nort.example", "", 1, {
	    { "who@nort.example", "", FAILED, "5.1.1", "" } } },
	{ "success.eml", DSN_OK, 2, "dns; lmtp.example",
	    "<success.1@sealpost.test>", 2, {
	    { "in@lmtp.example", "", DELIVERED, "2.0.0",
	    "smtp; 250 2.0.0 <in@lmtp.example> Ok: delivered" },
	    { "list@lmtp.example", "", EXPANDED, "2.0.0", "" } } },
	/* A bounce of a bounce: the outer report only. */
	{ "nested-report.eml", DSN_OK, 5, "dns; outer.example",
	    "<inner-bounce.1@inner.example>", 1, {
	    { "outer-rcpt@outer.example", "", FAILED, "5.1.1", "" } } },
	{ "not-report-plain.eml", DSN_NOT_REPORT, 0, "", "", 0, { { 0 } } },
	{ "not-report-autoreply.eml", DSN_NOT_REPORT, 0, "", "", 0,
	    { { 0 } } },
	{ "not-report-mdn.eml", DSN_NOT_REPORT, 0, "", "", 0, { { 0 } } },
	{ "not-report-mixed.eml", DSN_NOT_REPORT, 0, "", "", 0, { { 0 } } },
	{ "malformed-no-status-part.eml", DSN_MALFORMED, 0, "", "", 0,
	    { { 0 } } },
	{ "malformed-no-rcpt.eml", DSN_MALFORMED, 0, "", "", 0, { { 0 } } },

	/* Real samples (MimeKit, Ruby Mail): see README.md */
	{ "mk-delivery-status.eml", DSN_OK, 5, "dns; mm1",
	    "<31FC7EB4.41C6@netscape.com>", 1, {
	    { "newsletter-request@imusic.com", "", FAILED, "",
	    "x-local; 500 (err.nosuchuser)" } } },
	{ "mk-delivery-status2.eml", DSN_OK, 5,
	    "dns; smtp-out.dis-hosting.net", "", 1, {
	    { "source@domain.com", "", FAILED, "5.0.0", "" } } },
	{ "mk-delivery-status-multiple-blank-lines.eml", DSN_OK, 5,
	    "dns; someserver.com", "", 1, {
	    { "orig_recip@customer.com", "orig_recip@customer.com", UNKNOWN,
	    "5.5.0", "smtp; 550 Requested action not taken" } } },
	{ "mk-delivery-status-anonymized.eml", DSN_NOT_REPORT, 0, "", "", 0,
	    { { 0 } } },
	{ "mail-report_422.eml", DSN_OK, 4, "dns; mail11.ttttt.com.au",
	    "<15655788.13.1200472642578.JavaMail.Administrator@"
	    "mail.ttttt.com.au>", 1, {
	    { "fraser@oooooooo.com.au", "", DELAYED, "4.2.2",
	    "smtp; 452 4.2.2 <fraser@oooooooo.com.au>... Mailbox full" } } },
	{ "mail-report_530.eml", DSN_OK, 5, "dns; mail12.rrrr.com.au",
	    "<200712232303.lBNN3jDq002941@mail12.rrrr.com.au>", 1, {
	    { "edwin@zzzzzzz.com", "", FAILED, "5.3.0", "smtp; 553 5.3.0 "
	    "<edwin@zzzzzzz.com>... Unknown E-Mail Address" } } },
	/* Two delivery-status parts, the first one human text. */
	{ "mail-multipart_report_multiple_status.eml", DSN_OK, 5,
	    "dns; schemailmta04.ci.com",
	    "<4c2a146147ac8_61ff157c4ec1652df@s.h.c.mail>", 1, {
	    { "u@ci.com", "u@ci.com", FAILED, "5.3.0", "" } } },
	{ "mail-multi_address_bounce1.eml", DSN_OK, 5, "dns; lvmail01.LL.com",
	    "<118707422.15521266992174819.JavaMail.root@lvmail01>", 5, {
	    { "bbbbvhvbbvkjbhfbvbvjhb@gmail.com",
	    "bbbbvhvbbvkjbhfbvbvjhb@gmail.com", FAILED, "5.1.1", LL_DIAG },
	    { "bscdbcjhasbcjhbdscbhbsdhcbj@gmail.com",
	    "bscdbcjhasbcjhbdscbhbsdhcbj@gmail.com", FAILED, "5.1.1",
	    LL_DIAG },
	    { "egyfefsdvsfvvhjsd@gmail.com", "egyfefsdvsfvvhjsd@gmail.com",
	    FAILED, "5.1.1", LL_DIAG },
	    { "kfhejkfbsjkjsbhds@gmail.com", "kfhejkfbsjkjsbhds@gmail.com",
	    FAILED, "5.1.1", LL_DIAG },
	    { "qfvhgsvhgsduiohncdhcvhsdfvsfygusd@gmail.com",
	    "qfvhgsvhgsduiohncdhcvhsdfvsfygusd@gmail.com", FAILED, "5.1.1",
	    LL_DIAG } } },
};

/* Proofpoint re-encoded the recipient blocks of this Postfix bounce into
 * base64 inside the delivery-status body: nothing usable is left. */
#define CORPUS_BOUNCE	"/work/shared/corpora/mime/mimekit/UnitTests/" \
			    "TestData/messages/bounce.txt"

static char	*crash_msg =
    "From: a@example.org\r\n"
    "Subject: boom\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: multipart/report; report-type=delivery-status; "
    "boundary=\"\\\"\"\r\n"
    "\r\n"
    "--\"\r\n"
    "Content-Type: message/delivery-status\r\n"
    "\r\n"
    "Final-Recipient: rfc822; a@b.example\r\n";

static char	*fixture_read(const char *, size_t *);
static int	 report_equal(const struct dsn_report *,
		    const struct dsn_report *);
static int	 check_fixture(const struct fixture *,
		    const struct dsn_report *, enum dsn_result, const char *);
static void	 test_fixtures(void);
static void	 test_fixture_dir(void);
static void	 test_corpus_bounce(void);
static void	 test_class(void);
static void	 test_text(void);
static void	 test_text_refusals(void);
static char	*report_msg(const char *, const char *, const char *);
static void	 test_hostile(void);
static void	 test_many_rcpts(void);
static void	 test_msgids(void);
static void	 test_missing_parts(void);
static void	 test_sandbox(const char *);

/* Read tests/data/dsn/<name>, exactly its size (no slack to read into). */
static char *
fixture_read(const char *name, size_t *lenp)
{
	char	*rel, *path, *raw, *exact;

	xasprintf(&rel, "tests/data/dsn/%s", name);
	path = srcdir_file(rel);
	free(rel);
	raw = read_file(path, lenp);
	free(path);
	if (raw == NULL)
		return NULL;
	exact = xmalloc(*lenp > 0 ? *lenp : 1);
	memcpy(exact, raw, *lenp);
	free(raw);
	return exact;
}

/* Field by field: the bytes after each NUL do not count. */
static int
report_equal(const struct dsn_report *a, const struct dsn_report *b)
{
	size_t	 i;

	if (strcmp(a->reporting_mta, b->reporting_mta) != 0 ||
	    strcmp(a->orig_msgid, b->orig_msgid) != 0 ||
	    a->nrcpts != b->nrcpts)
		return 0;
	for (i = 0; i < a->nrcpts && i < DSN_MAX_RCPTS; i++) {
		if (strcmp(a->rcpts[i].final_rcpt, b->rcpts[i].final_rcpt) ||
		    strcmp(a->rcpts[i].orig_rcpt, b->rcpts[i].orig_rcpt) ||
		    a->rcpts[i].action != b->rcpts[i].action ||
		    strcmp(a->rcpts[i].status, b->rcpts[i].status) ||
		    strcmp(a->rcpts[i].diagnostic, b->rcpts[i].diagnostic))
			return 0;
	}
	return 1;
}

/* Compare a parse with the table; diag() every difference. */
static int
check_fixture(const struct fixture *fx, const struct dsn_report *rep,
    enum dsn_result res, const char *why)
{
	const struct exp_rcpt	*e;
	const struct dsn_rcpt	*r;
	size_t			 i;
	int			 good = 1;

#define DIFF(cond, ...) do {						\
	if (cond) {							\
		diag(__VA_ARGS__);					\
		good = 0;						\
	}								\
} while (0)
	DIFF(res != fx->res, "  result %d, want %d (%s)", res, fx->res,
	    why != NULL ? why : "no reason");
	DIFF((res == DSN_OK) != (why == NULL), "  reason %s with result %d",
	    why != NULL ? why : "NULL", res);
	DIFF(dsn_class(rep) != fx->cls, "  class %d, want %d",
	    dsn_class(rep), fx->cls);
	DIFF(strcmp(rep->reporting_mta, fx->mta) != 0, "  mta [%s], want [%s]",
	    rep->reporting_mta, fx->mta);
	DIFF(strcmp(rep->orig_msgid, fx->msgid) != 0, "  msgid [%s], want [%s]",
	    rep->orig_msgid, fx->msgid);
	DIFF(rep->nrcpts != fx->n, "  %zu recipients, want %zu", rep->nrcpts,
	    fx->n);
	for (i = 0; i < fx->n && i < rep->nrcpts; i++) {
		e = &fx->r[i];
		r = &rep->rcpts[i];
		DIFF(strcmp(r->final_rcpt, e->final) != 0,
		    "  [%zu] final [%s], want [%s]", i, r->final_rcpt,
		    e->final);
		DIFF(strcmp(r->orig_rcpt, e->orig) != 0,
		    "  [%zu] orig [%s], want [%s]", i, r->orig_rcpt, e->orig);
		DIFF(r->action != e->action, "  [%zu] action %s, want %s", i,
		    dsn_action_name(r->action), dsn_action_name(e->action));
		DIFF(strcmp(r->status, e->status) != 0,
		    "  [%zu] status [%s], want [%s]", i, r->status, e->status);
		DIFF(strcmp(r->diagnostic, e->diag) != 0,
		    "  [%zu] diagnostic [%s], want [%s]", i, r->diagnostic,
		    e->diag);
	}
#undef DIFF
	return good;
}

/* Every fixture, and its text form. */
static void
test_fixtures(void)
{
	const struct fixture	*fx;
	struct dsn_report	 rep, back;
	const char		*why;
	char			*raw, *text, *again;
	size_t			 i, len, tlen, alen;
	enum dsn_result		 res;

	for (i = 0; i < nitems(fixtures); i++) {
		fx = &fixtures[i];
		if ((raw = fixture_read(fx->file, &len)) == NULL) {
			ok(0, "%s: read", fx->file);
			continue;
		}
		why = "unset";
		res = dsn_parse(raw, len, &rep, &why);
		ok(check_fixture(fx, &rep, res, why), "%s: %s, %zu recipient%s, "
		    "class %d", fx->file, res == DSN_OK ? "report" :
		    res == DSN_NOT_REPORT ? "not a report" : "malformed",
		    rep.nrcpts, rep.nrcpts == 1 ? "" : "s", dsn_class(&rep));
		free(raw);
		if (res != DSN_OK)
			continue;
		text = dsn_serialize(&rep, &tlen);
		again = NULL;
		alen = 0;
		if (text != NULL && dsn_deserialize(text, tlen, &back) == 0)
			again = dsn_serialize(&back, &alen);
		ok(text != NULL && again != NULL && report_equal(&rep, &back) &&
		    alen == tlen && memcmp(text, again, tlen) == 0,
		    "%s: text form round trip (%zu bytes)", fx->file, tlen);
		free(text);
		free(again);
	}
}

/* Every file in tests/data/dsn/ is in the table. */
static void
test_fixture_dir(void)
{
	struct dirent	*de;
	DIR		*d;
	char		*path, missing[512] = "";
	size_t		 i, n = 0, len;

	path = srcdir_file("tests/data/dsn");
	if ((d = opendir(path)) == NULL) {
		ok(0, "opendir tests/data/dsn");
		free(path);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		len = strlen(de->d_name);
		if (len < 4 || strcmp(de->d_name + len - 4, ".eml") != 0)
			continue;
		n++;
		for (i = 0; i < nitems(fixtures); i++) {
			if (strcmp(fixtures[i].file, de->d_name) == 0)
				break;
		}
		if (i == nitems(fixtures) && strlen(missing) + len + 2 <
		    sizeof(missing))
			snprintf(missing + strlen(missing), sizeof(missing) -
			    strlen(missing), " %s", de->d_name);
	}
	closedir(d);
	free(path);
	ok(n == nitems(fixtures) && missing[0] == '\0',
	    "tests/data/dsn: %zu .eml files, %zu in the table%s%s", n,
	    nitems(fixtures), missing[0] != '\0' ? "; not in it:" : "",
	    missing);
}

/* A real bounce whose report a filter mangled: malformed, not a crash. */
static void
test_corpus_bounce(void)
{
	struct dsn_report	 rep;
	const char		*why = NULL;
	char			*raw;
	size_t			 len;

	if ((raw = read_file(CORPUS_BOUNCE, &len)) == NULL) {
		skip("%s: absent (the shared corpora are not here)",
		    CORPUS_BOUNCE);
		return;
	}
	ok(dsn_parse(raw, len, &rep, &why) == DSN_MALFORMED &&
	    rep.nrcpts == 0 && why != NULL &&
	    strcmp(why, "the delivery-status part names no recipient") == 0,
	    "MimeKit bounce.txt (recipient blocks re-encoded by a filter): "
	    "malformed (%s)", why != NULL ? why : "no reason");
	free(raw);
}

/* dsn_class() and dsn_action_name(). */
static void
test_class(void)
{
	static const struct {
		enum dsn_action	 a1;
		const char	*s1;
		enum dsn_action	 a2;
		const char	*s2;
		size_t		 n;
		int		 want;
		const char	*what;
	} t[] = {
		{ FAILED, "", 0, "", 1, 5, "failed, no status" },
		{ FAILED, "5.1.1", 0, "", 1, 5, "failed 5.1.1" },
		{ FAILED, "4.4.1", 0, "", 1, 5, "failed 4.4.1 (gave up)" },
		{ UNKNOWN, "5.2.2", 0, "", 1, 5, "no action, 5.2.2" },
		{ DELIVERED, "5.0.0", 0, "", 1, 5, "delivered yet 5.0.0" },
		{ DELAYED, "4.4.7", 0, "", 1, 4, "delayed 4.4.7" },
		{ DELAYED, "", 0, "", 1, 4, "delayed, no status" },
		{ UNKNOWN, "4.2.2", 0, "", 1, 4, "no action, 4.2.2" },
		{ DELIVERED, "2.0.0", 0, "", 1, 2, "delivered" },
		{ RELAYED, "", EXPANDED, "2.0.0", 2, 2, "relayed, expanded" },
		{ UNKNOWN, "2.1.5", 0, "", 1, 2, "no action, 2.1.5" },
		{ DELIVERED, "2.0.0", DELAYED, "4.0.0", 2, 4,
		    "delivered and delayed" },
		{ DELAYED, "4.0.0", FAILED, "5.0.0", 2, 5,
		    "delayed and failed" },
		{ UNKNOWN, "", UNKNOWN, "", 2, 0, "nothing usable" },
		{ FAILED, "", 0, "", 0, 0, "no recipients" },
	};
	struct dsn_report	 rep;
	size_t			 i;

	for (i = 0; i < nitems(t); i++) {
		memset(&rep, 0, sizeof(rep));
		rep.nrcpts = t[i].n;
		strlcpy_sp(rep.rcpts[0].final_rcpt, "a@b.example",
		    sizeof(rep.rcpts[0].final_rcpt));
		rep.rcpts[0].action = t[i].a1;
		strlcpy_sp(rep.rcpts[0].status, t[i].s1,
		    sizeof(rep.rcpts[0].status));
		rep.rcpts[1].action = t[i].a2;
		strlcpy_sp(rep.rcpts[1].status, t[i].s2,
		    sizeof(rep.rcpts[1].status));
		is_int(dsn_class(&rep), t[i].want, "dsn_class: %s", t[i].what);
	}
	ok(strcmp(dsn_action_name(DSN_ACTION_FAILED), "failed") == 0 &&
	    strcmp(dsn_action_name(DSN_ACTION_DELAYED), "delayed") == 0 &&
	    strcmp(dsn_action_name(DSN_ACTION_DELIVERED), "delivered") == 0 &&
	    strcmp(dsn_action_name(DSN_ACTION_RELAYED), "relayed") == 0 &&
	    strcmp(dsn_action_name(DSN_ACTION_EXPANDED), "expanded") == 0 &&
	    strcmp(dsn_action_name(DSN_ACTION_UNKNOWN), "unknown") == 0 &&
	    strcmp(dsn_action_name((enum dsn_action)99), "unknown") == 0,
	    "dsn_action_name: the five actions, unknown for the rest");
}

/* The text form: exact bytes, and what serialize refuses. */
static void
test_text(void)
{
	static const char	 want[] =
	    "sealpost-dsn/1\n"
	    "mta\tdns; mx.example\n"
	    "msgid\t<m.1@sealpost.test>\n"
	    "rcpt\ta@b.example\t\tfailed\t5.1.1\tsmtp; 550 no\n"
	    "rcpt\tj\xc3\xb6rg@c.example\tj@c.example\tunknown\t\t\n";
	struct dsn_report	 rep, back, bad;
	char			*text;
	size_t			 len;

	memset(&rep, 0, sizeof(rep));
	strlcpy_sp(rep.reporting_mta, "dns; mx.example",
	    sizeof(rep.reporting_mta));
	strlcpy_sp(rep.orig_msgid, "<m.1@sealpost.test>",
	    sizeof(rep.orig_msgid));
	rep.nrcpts = 2;
	strlcpy_sp(rep.rcpts[0].final_rcpt, "a@b.example", DSN_ADDR_MAX);
	rep.rcpts[0].action = DSN_ACTION_FAILED;
	strlcpy_sp(rep.rcpts[0].status, "5.1.1", 16);
	strlcpy_sp(rep.rcpts[0].diagnostic, "smtp; 550 no", DSN_TEXT_MAX);
	strlcpy_sp(rep.rcpts[1].final_rcpt, "j\xc3\xb6rg@c.example",
	    DSN_ADDR_MAX);
	strlcpy_sp(rep.rcpts[1].orig_rcpt, "j@c.example", DSN_ADDR_MAX);
	text = dsn_serialize(&rep, &len);
	ok(text != NULL && len == strlen(want) && memcmp(text, want, len) == 0,
	    "dsn_serialize: the documented text");
	ok(text != NULL && dsn_deserialize(text, len, &back) == 0 &&
	    report_equal(&rep, &back), "dsn_deserialize: reads it back");
	free(text);

	/* What the serializer refuses (the reader would too). */
#define REFUSE(what, change) do {					\
	bad = rep;							\
	change;								\
	text = dsn_serialize(&bad, &len);				\
	ok(text == NULL && len == 0, "dsn_serialize refuses %s", what);	\
	free(text);							\
} while (0)
	REFUSE("no recipients", bad.nrcpts = 0);
	REFUSE("17 recipients", bad.nrcpts = DSN_MAX_RCPTS + 1);
	REFUSE("an empty final recipient", bad.rcpts[1].final_rcpt[0] = '\0');
	REFUSE("a TAB in a diagnostic", bad.rcpts[0].diagnostic[4] = '\t');
	REFUSE("a LF in the reporting MTA", bad.reporting_mta[3] = '\n');
	REFUSE("a double space", memcpy(bad.rcpts[0].diagnostic, "a  b", 5));
	REFUSE("a trailing space", memcpy(bad.rcpts[0].final_rcpt, "a ", 3));
	REFUSE("a C1 control", memcpy(bad.rcpts[0].orig_rcpt, "a\xc2\x85",
	    4));
	REFUSE("invalid UTF-8", memcpy(bad.rcpts[0].orig_rcpt, "a\xff", 3));
	REFUSE("a field without its NUL", memset(bad.rcpts[0].final_rcpt, 'a',
	    DSN_ADDR_MAX));
	REFUSE("an action out of range", bad.rcpts[0].action =
	    (enum dsn_action)6);
	REFUSE("a status off the grammar", memcpy(bad.rcpts[0].status,
	    "5.1", 4));
	REFUSE("a status of class 3", memcpy(bad.rcpts[0].status, "3.1.1",
	    6));
	REFUSE("a message-id without brackets", memcpy(bad.orig_msgid,
	    "m.1@x", 6));
	REFUSE("a message-id with a space", memcpy(bad.orig_msgid,
	    "<m 1@x>", 8));
#undef REFUSE
}

/* dsn_deserialize() is strict: each of these is refused. */
static void
test_text_refusals(void)
{
	static const struct {
		const char	*text;
		const char	*what;
	} t[] = {
		{ "", "empty" },
		{ "sealpost-dsn/2\nmta\t\nmsgid\t\nrcpt\ta@b\t\tfailed\t\t\n",
		    "another version" },
		{ "sealpost-dsn/1\nmta\t\nmsgid\t\n", "no recipient" },
		{ "sealpost-dsn/1\nmta\t\nmsgid\t\nrcpt\ta@b\t\tfailed\t\t",
		    "no final newline" },
		{ "sealpost-dsn/1\nmta\t\nmsgid\t\nrcpt\ta@b\t\tfailed\t\t\nx",
		    "trailing bytes" },
		{ "sealpost-dsn/1\nmta\t\nmsgid\t\nrcpt\ta@b\t\tfailed\t\t\n\n",
		    "a trailing empty line" },
		{ "sealpost-dsn/1\r\nmta\t\r\nmsgid\t\r\nrcpt\ta@b\t\tfailed"
		    "\t\t\r\n", "CRLF lines" },
		{ "sealpost-dsn/1\nmsgid\t\nmta\t\nrcpt\ta@b\t\tfailed\t\t\n",
		    "lines out of order" },
		{ "sealpost-dsn/1\nmta\t\nmsgid\t\nRCPT\ta@b\t\tfailed\t\t\n",
		    "an upper-case key" },
		{ "sealpost-dsn/1\nmta\t\nmsgid\t\nrcpt\ta@b\t\tfailed\t\n",
		    "a field short" },
		{ "sealpost-dsn/1\nmta\t\nmsgid\t\nrcpt\ta@b\t\tfailed\t\t\t\n",
		    "a field over (a TAB in the diagnostic)" },
		{ "sealpost-dsn/1\nmta\t\nmsgid\t\nrcpt\t\t\tfailed\t\t\n",
		    "an empty final recipient" },
		{ "sealpost-dsn/1\nmta\t\nmsgid\t\nrcpt\ta@b\t\tFailed\t\t\n",
		    "an action in upper case" },
		{ "sealpost-dsn/1\nmta\t\nmsgid\t\nrcpt\ta@b\t\tbounced\t\t\n",
		    "an unknown action name" },
		{ "sealpost-dsn/1\nmta\t\nmsgid\t\nrcpt\ta@b\t\tfailed\t5.1."
		    "\t\n", "a bad status" },
		{ "sealpost-dsn/1\nmta\t\nmsgid\t\nrcpt\ta@b\t\tfailed\t5.1.1"
		    "1111\t\n", "a status too long" },
		{ "sealpost-dsn/1\nmta\t\nmsgid\tm@x\nrcpt\ta@b\t\tfailed\t\t\n",
		    "a message-id without brackets" },
		{ "sealpost-dsn/1\nmta\t dns; x\nmsgid\t\nrcpt\ta@b\t\tfailed"
		    "\t\t\n", "a leading space" },
		{ "sealpost-dsn/1\nmta\tdns;  x\nmsgid\t\nrcpt\ta@b\t\tfailed"
		    "\t\t\n", "two spaces" },
		{ "sealpost-dsn/1\nmta\tdns; \x01x\nmsgid\t\nrcpt\ta@b\t\t"
		    "failed\t\t\n", "a control character" },
		{ "sealpost-dsn/1\nmta\tdns; \x7fx\nmsgid\t\nrcpt\ta@b\t\t"
		    "failed\t\t\n", "DEL" },
		{ "sealpost-dsn/1\nmta\tdns; \xc3x\nmsgid\t\nrcpt\ta@b\t\t"
		    "failed\t\t\n", "invalid UTF-8" },
		{ "sealpost-dsn/1\nmta\tdns; \xed\xa0\x80\nmsgid\t\nrcpt\ta@b"
		    "\t\tfailed\t\t\n", "a UTF-16 surrogate" },
	};
	struct dsn_report	 rep;
	char			*buf, *text, *big;
	size_t			 i, len, n;

	for (i = 0; i < nitems(t); i++) {
		/* exactly the bytes, so an overread would show under ASan */
		len = strlen(t[i].text);
		buf = xmalloc(len > 0 ? len : 1);
		memcpy(buf, t[i].text, len);
		memset(&rep, 0x5a, sizeof(rep));
		ok(dsn_deserialize(buf, len, &rep) == -1 && rep.nrcpts == 0 &&
		    rep.reporting_mta[0] == '\0', "dsn_deserialize refuses %s",
		    t[i].what);
		free(buf);
	}

	/* A NUL inside, a 256-octet address, 17 recipients. */
	text = xstrdup("sealpost-dsn/1\nmta\tdns; x\nmsgid\t\n"
	    "rcpt\ta@b\t\tfailed\t\t\n");
	len = strlen(text);
	text[20] = '\0';
	ok(dsn_deserialize(text, len, &rep) == -1,
	    "dsn_deserialize refuses a NUL inside");
	free(text);

	big = xmalloc(DSN_ADDR_MAX + 1);
	memset(big, 'a', DSN_ADDR_MAX);
	big[DSN_ADDR_MAX] = '\0';
	xasprintf(&text, "sealpost-dsn/1\nmta\t\nmsgid\t\nrcpt\t%s\t\tfailed"
	    "\t\t\n", big);
	ok(dsn_deserialize(text, strlen(text), &rep) == -1,
	    "dsn_deserialize refuses a %d-octet address", DSN_ADDR_MAX);
	free(text);
	big[DSN_ADDR_MAX - 1] = '\0';
	xasprintf(&text, "sealpost-dsn/1\nmta\t\nmsgid\t\nrcpt\t%s\t\tfailed"
	    "\t\t\n", big);
	ok(dsn_deserialize(text, strlen(text), &rep) == 0 &&
	    strlen(rep.rcpts[0].final_rcpt) == DSN_ADDR_MAX - 1,
	    "dsn_deserialize takes a %d-octet address", DSN_ADDR_MAX - 1);
	free(text);
	free(big);

	text = xstrdup("sealpost-dsn/1\nmta\t\nmsgid\t\n");
	for (n = 0; n <= DSN_MAX_RCPTS; n++) {
		char	*more;

		xasprintf(&more, "%srcpt\tr%zu@b\t\tfailed\t\t\n", text, n);
		free(text);
		text = more;
		if (n == DSN_MAX_RCPTS - 1)
			ok(dsn_deserialize(text, strlen(text), &rep) == 0 &&
			    rep.nrcpts == DSN_MAX_RCPTS,
			    "dsn_deserialize takes %d recipients",
			    DSN_MAX_RCPTS);
	}
	ok(dsn_deserialize(text, strlen(text), &rep) == -1,
	    "dsn_deserialize refuses %d recipients", DSN_MAX_RCPTS + 1);
	free(text);
}

/* A report around a delivery-status body and returned headers. */
static char *
report_msg(const char *ctype, const char *status, const char *headers)
{
	char	*m;

	xasprintf(&m, "From: MAILER-DAEMON@h.example\r\n"
	    "To: bounce+tok@sealpost.test\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: %s; boundary=\"BB\"\r\n"
	    "\r\n"
	    "--BB\r\n"
	    "Content-Type: text/plain\r\n"
	    "\r\n"
	    "Bounced.\r\n"
	    "--BB\r\n"
	    "Content-Type: message/delivery-status\r\n"
	    "\r\n"
	    "%s\r\n"
	    "--BB\r\n"
	    "Content-Type: text/rfc822-headers\r\n"
	    "\r\n"
	    "%s\r\n"
	    "--BB--\r\n", ctype, status, headers);
	return m;
}

#define REPORT_CT	"multipart/report; report-type=delivery-status"

/* Huge and dirty values. */
static void
test_hostile(void)
{
	struct dsn_report	 rep;
	const char		*why;
	char			*status, *m, *big, *p;
	size_t			 i, n, k;
	enum dsn_result		 res;
	int			 valid;

	/* 100 KB of folded diagnostic, two-octet characters: cut at 199
	 * octets or fewer, at a character boundary. */
	n = 50000;
	big = xmalloc(n * 2 + n / 30 * 3 + 1);
	for (i = 0, p = big; i < n; i++) {
		*p++ = (char)0xc3;
		*p++ = (char)0xa9;
		if (i % 30 == 29) {
			*p++ = '\r';
			*p++ = '\n';
			*p++ = ' ';
		}
	}
	*p = '\0';
	xasprintf(&status, "Reporting-MTA: dns; h.example\r\n\r\n"
	    "Final-Recipient: rfc822; a@b.example\r\nAction: failed\r\n"
	    "Status: 5.0.0\r\nDiagnostic-Code: smtp; %s", big);
	m = report_msg(REPORT_CT, status, "Message-ID: <h.1@sealpost.test>");
	res = dsn_parse(m, strlen(m), &rep, &why);
	n = strlen(rep.rcpts[0].diagnostic);
	for (k = 6, valid = 1; k < n; k += 2) {	/* after "smtp; " */
		if ((unsigned char)rep.rcpts[0].diagnostic[k] != 0xc3 &&
		    (unsigned char)rep.rcpts[0].diagnostic[k] != ' ')
			valid = 0;
		if (rep.rcpts[0].diagnostic[k] == ' ')
			k--;	/* the folding's space: one octet */
	}
	ok(res == DSN_OK && n >= DSN_TEXT_MAX - 4 && n <= DSN_TEXT_MAX - 1 &&
	    valid && (unsigned char)rep.rcpts[0].diagnostic[n - 1] == 0xa9 &&
	    strncmp(rep.rcpts[0].diagnostic, "smtp; \xc3\xa9", 8) == 0,
	    "a 100 KB folded diagnostic is cut to %zu octets at a character "
	    "boundary", n);
	free(m);
	free(status);
	free(big);

	/* Controls in every field: spaces; bytes not UTF-8: '?'. */
	status = xstrdup("Reporting-MTA: dns;\x01h.example\x1b[2J\r\n\r\n"
	    "Final-Recipient: rfc822; a\x7f" "b@c.example\r\n"
	    "Original-Recipient: rfc822; o\xc2\x85p@c.example\xff\r\n"
	    "Action: failed\r\nStatus: 5.1.1\x07\r\n"
	    "Diagnostic-Code: smtp; 550\x01x\x1b[31mred\rcr\tend");
	m = report_msg(REPORT_CT, status, "Message-ID: <h.2@sealpost.test>");
	res = dsn_parse(m, strlen(m), &rep, &why);
	ok(res == DSN_OK &&
	    strcmp(rep.reporting_mta, "dns; h.example [2J") == 0 &&
	    strcmp(rep.rcpts[0].final_rcpt, "a b@c.example") == 0 &&
	    strcmp(rep.rcpts[0].orig_rcpt, "o p@c.example?") == 0 &&
	    strcmp(rep.rcpts[0].status, "5.1.1") == 0 &&
	    strcmp(rep.rcpts[0].diagnostic, "smtp; 550 x [31mred cr end") == 0,
	    "controls become spaces, invalid UTF-8 '?' (mta [%s] final [%s] "
	    "orig [%s] diag [%s])", rep.reporting_mta, rep.rcpts[0].final_rcpt,
	    rep.rcpts[0].orig_rcpt, rep.rcpts[0].diagnostic);
	free(m);
	free(status);

	/* A NUL in the middle of a value, with its real length. */
	{
		static const char	 raw[] = "MIME-Version: 1.0\r\n"
		    "Content-Type: " REPORT_CT "; boundary=X\r\n\r\n"
		    "--X\r\nContent-Type: message/delivery-status\r\n\r\n"
		    "Final-Recipient: rfc822; n@x.example\r\n"
		    "Action: failed\r\n"
		    "Diagnostic-Code: smtp; 550 before\0after\r\n"
		    "--X--\r\n";

		res = dsn_parse(raw, sizeof(raw) - 1, &rep, &why);
		ok(res == DSN_OK && strcmp(rep.rcpts[0].diagnostic,
		    "smtp; 550 before after") == 0,
		    "a NUL in a value becomes a space ([%s])",
		    rep.rcpts[0].diagnostic);
	}

	/* An address that does not fit is dropped, not cut. */
	big = xmalloc(DSN_ADDR_MAX + 20);
	memset(big, 'x', DSN_ADDR_MAX + 10);
	memcpy(big + DSN_ADDR_MAX, "@h.example", 11);
	xasprintf(&status, "Final-Recipient: rfc822; %s\r\nAction: failed",
	    big);
	m = report_msg(REPORT_CT, status, "");
	res = dsn_parse(m, strlen(m), &rep, &why);
	ok(res == DSN_MALFORMED && rep.nrcpts == 0,
	    "a %zu-octet final recipient alone: malformed", strlen(big));
	free(m);
	free(status);
	xasprintf(&status, "Original-Recipient: rfc822; o@h.example\r\n"
	    "Final-Recipient: rfc822; %s\r\nAction: failed", big);
	m = report_msg(REPORT_CT, status, "");
	res = dsn_parse(m, strlen(m), &rep, &why);
	ok(res == DSN_OK && rep.nrcpts == 1 &&
	    strcmp(rep.rcpts[0].final_rcpt, "o@h.example") == 0,
	    "an over-long final recipient: the original one stands in");
	free(m);
	free(status);
	free(big);

	/* "<>" and "rfc822;" alone name nobody. */
	m = report_msg(REPORT_CT, "Final-Recipient: rfc822; <>\r\n"
	    "Action: failed\r\n\r\nFinal-Recipient: rfc822;\r\n"
	    "Action: failed", "");
	res = dsn_parse(m, strlen(m), &rep, &why);
	ok(res == DSN_MALFORMED && why != NULL,
	    "empty recipient addresses: malformed (%s)", why ? why : "");
	free(m);
}

/* 1,000 recipient blocks: the first DSN_MAX_RCPTS are kept. */
static void
test_many_rcpts(void)
{
	struct dsn_report	 rep;
	const char		*why;
	char			*status, *m, *more, want[64];
	size_t			 i, j;
	uint64_t		 t0, dt;
	enum dsn_result		 res;
	int			 blank, good;

	for (blank = 1; blank >= 0; blank--) {
		status = xstrdup("Reporting-MTA: dns; many.example\r\n");
		for (i = 0; i < 1000; i++) {
			xasprintf(&more, "%s%sFinal-Recipient: rfc822; "
			    "r%zu@many.example\r\nAction: %s\r\nStatus: "
			    "%s\r\n", status, blank ? "\r\n" : "", i,
			    i % 2 ? "failed" : "delayed",
			    i % 2 ? "5.1.1" : "4.4.1");
			free(status);
			status = more;
		}
		m = report_msg(REPORT_CT, status, "Message-ID: <many@x>");
		t0 = util_now_ms();
		res = dsn_parse(m, strlen(m), &rep, &why);
		dt = util_now_ms() - t0;
		good = res == DSN_OK && rep.nrcpts == DSN_MAX_RCPTS;
		for (j = 0; good && j < DSN_MAX_RCPTS; j++) {
			snprintf(want, sizeof(want), "r%zu@many.example", j);
			good = strcmp(rep.rcpts[j].final_rcpt, want) == 0 &&
			    rep.rcpts[j].action == (j % 2 ? FAILED : DELAYED);
		}
		ok(good && dt < BUDGET_MS && dsn_class(&rep) == 5,
		    "1000 recipient blocks%s: the first %d kept, in order "
		    "(%llu ms)", blank ? "" : " without blank lines",
		    DSN_MAX_RCPTS, (unsigned long long)dt);
		free(m);
		free(status);
	}
}

/* Message-IDs of the returned header: only a clean "<id>" is kept. */
static void
test_msgids(void)
{
	static const struct {
		const char	*hdr;
		const char	*want;
		const char	*what;
	} t[] = {
		{ "Message-ID: <ok.1@sealpost.test>", "<ok.1@sealpost.test>",
		    "plain" },
		{ "Message-ID:\r\n  <fold.1@sealpost.test>",
		    "<fold.1@sealpost.test>", "folded" },
		{ "message-id: <lc.1@sealpost.test>", "<lc.1@sealpost.test>",
		    "lower-case name" },
		{ "Message-ID: <a b@sealpost.test>", "", "a space inside" },
		{ "Message-ID: no-brackets@sealpost.test", "",
		    "no brackets" },
		{ "Message-ID: <a\x01" "b@sealpost.test>", "", "a control" },
		{ "Message-ID: <caf\xc3\xa9@sealpost.test>", "", "non-ASCII" },
		{ "Subject: none", "", "absent" },
		{ "Message-ID: <first@x>\r\nMessage-ID: <second@x>",
		    "<first@x>", "the first of two" },
		{ "Message-ID: <c.1@x> (a comment)", "<c.1@x>",
		    "a comment after it" },
		{ "Subject: x\r\n\r\nMessage-ID: <body@x>", "",
		    "only in the body" },
	};
	struct dsn_report	 rep;
	const char		*why;
	char			*m, *big, *hdr;
	size_t			 i;
	enum dsn_result		 res;

	for (i = 0; i < nitems(t); i++) {
		m = report_msg(REPORT_CT, "Final-Recipient: rfc822; a@b\r\n"
		    "Action: failed", t[i].hdr);
		res = dsn_parse(m, strlen(m), &rep, &why);
		ok(res == DSN_OK && strcmp(rep.orig_msgid, t[i].want) == 0,
		    "returned Message-ID, %s: [%s]", t[i].what,
		    rep.orig_msgid);
		free(m);
	}
	/* DSN_MSGID_MAX octets are kept, one more is not. */
	big = xmalloc(DSN_MSGID_MAX + 1);
	memset(big, 'i', DSN_MSGID_MAX);
	memcpy(big + DSN_MSGID_MAX - 7, "@x.test", 8);
	xasprintf(&hdr, "Message-ID: <%s>", big + 2);
	m = report_msg(REPORT_CT, "Final-Recipient: rfc822; a@b\r\n"
	    "Action: failed", hdr);
	res = dsn_parse(m, strlen(m), &rep, &why);
	ok(res == DSN_OK && strlen(rep.orig_msgid) == DSN_MSGID_MAX,
	    "a %d-octet Message-ID is kept", DSN_MSGID_MAX);
	free(m);
	free(hdr);
	xasprintf(&hdr, "Message-ID: <%s>", big + 1);
	m = report_msg(REPORT_CT, "Final-Recipient: rfc822; a@b\r\n"
	    "Action: failed", hdr);
	res = dsn_parse(m, strlen(m), &rep, &why);
	ok(res == DSN_OK && rep.orig_msgid[0] == '\0',
	    "a %d-octet Message-ID is not", DSN_MSGID_MAX + 1);
	free(m);
	free(hdr);
	free(big);
}

/* Reports without their parts, and things that are no message at all. */
static void
test_missing_parts(void)
{
	static const char	 png[] = "\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
	static const struct {
		const char	*raw;
		enum dsn_result	 want;
		const char	*what;
	} t[] = {
		{ "", DSN_NOT_REPORT, "an empty message" },
		{ "Subject: x\r\n", DSN_NOT_REPORT, "a header only" },
		{ png, DSN_NOT_REPORT, "binary" },
		{ "Content-Type: " REPORT_CT "; boundary=Z\r\n\r\nno parts\r\n",
		    DSN_MALFORMED, "a report whose boundary never comes" },
		{ "Content-Type: " REPORT_CT "\r\n\r\n--Z\r\n\r\n--Z--\r\n",
		    DSN_MALFORMED, "a report without a boundary parameter" },
		{ "Content-Type: " REPORT_CT "; boundary=Z\r\n\r\n--Z\r\n"
		    "Content-Type: message/delivery-status\r\n\r\n--Z--\r\n",
		    DSN_MALFORMED, "an empty delivery-status part" },
		{ "Content-Type: " REPORT_CT "; boundary=Z\r\n\r\n--Z\r\n"
		    "Content-Type: message/delivery-status\r\n\r\n"
		    "Reporting-MTA: dns; x\r\n--Z--\r\n",
		    DSN_MALFORMED, "per-message fields only" },
		{ "Content-Type: multipart/report; boundary=Z\r\n\r\n--Z\r\n"
		    "Content-Type: text/plain\r\n\r\nx\r\n--Z--\r\n",
		    DSN_NOT_REPORT, "no report-type and no status part" },
		{ "Content-Type: text/plain\r\n\r\nFinal-Recipient: rfc822; "
		    "a@b\r\nAction: failed\r\n", DSN_NOT_REPORT,
		    "DSN fields in a text/plain body" },
		{ "Content-Type: message/delivery-status\r\n\r\n"
		    "Final-Recipient: rfc822; a@b\r\nAction: failed\r\n",
		    DSN_NOT_REPORT, "a bare message/delivery-status" },
	};
	struct dsn_report	 rep;
	const char		*why;
	char			*buf;
	size_t			 i, len;
	enum dsn_result		 res;

	for (i = 0; i < nitems(t); i++) {
		len = strlen(t[i].raw);
		if (t[i].raw == png)
			len = sizeof(png) - 1;	/* it holds NULs */
		buf = xmalloc(len > 0 ? len : 1);
		memcpy(buf, t[i].raw, len);
		why = NULL;
		res = dsn_parse(buf, len, &rep, &why);
		ok(res == t[i].want && rep.nrcpts == 0 && why != NULL &&
		    dsn_class(&rep) == 0, "%s: %s (%s)", t[i].what,
		    res == DSN_NOT_REPORT ? "not a report" : res ==
		    DSN_MALFORMED ? "malformed" : "a report",
		    why != NULL ? why : "no reason");
		free(buf);
	}
}

/* Through the parse child: the same reports, the crash input stopped. */
static void
test_sandbox(const char *exe)
{
	struct sandbox_params	 sp;
	struct sandbox		*sb;
	struct dsn_report	 rep, local;
	struct letter_error	 err;
	struct letter_doc	*doc = NULL;
	enum dsn_result		 res, lres;
	const char		*why, *after = "Subject: after\r\n\r\nhere\r\n";
	char			*raw, *status, *m, *more, *big;
	size_t			 i, len;
	long			 pid;
	int			 r, same = 0, total = 0;

	memset(&sp, 0, sizeof(sp));
	sp.program = exe;
	sp.memory_limit = 512LL * 1024 * 1024;
	sp.timeout = 5;
	sp.max_size = 4 * 1024 * 1024;
	sp.test_ops = 0;	/* as the daemon runs it: the op is not a test op */
	sb = sandbox_new(&sp);

	for (i = 0; i < nitems(fixtures); i++) {
		if ((raw = fixture_read(fixtures[i].file, &len)) == NULL)
			continue;
		total++;
		lres = dsn_parse(raw, len, &local, &why);
		memset(&rep, 0x5a, sizeof(rep));
		r = sandbox_parse_dsn(sb, raw, len, &rep, &res, &err);
		if (r == 0 && res == lres && report_equal(&rep, &local) &&
		    (res == DSN_OK ? err.code[0] == '\0' :
		    strcmp(err.code, res == DSN_NOT_REPORT ? "dsn_not_report" :
		    "dsn_malformed") == 0 && strcmp(err.message, why) == 0 &&
		    err.status == 422))
			same++;
		else
			diag("  %s: r=%d result %d (in process %d) code=%s",
			    fixtures[i].file, r, res, lres, err.code);
		free(raw);
	}
	ok(total > 0 && same == total, "sandbox: %d of %d fixtures read in "
	    "the child equal dsn_parse() in process", same, total);
	pid = sandbox_child_pid(sb);
	ok(pid > 0, "sandbox: one child served them (pid %ld)", pid);

	/* 1,000 blocks through the pipe: the same 16. */
	status = xstrdup("Reporting-MTA: dns; many.example\r\n");
	for (i = 0; i < 1000; i++) {
		xasprintf(&more, "%s\r\nFinal-Recipient: rfc822; r%zu@x\r\n"
		    "Action: failed\r\nStatus: 5.1.1\r\nDiagnostic-Code: smtp; "
		    "550 no such user here\r\n", status, i);
		free(status);
		status = more;
	}
	m = report_msg(REPORT_CT, status, "Message-ID: <many@x>");
	lres = dsn_parse(m, strlen(m), &local, &why);
	r = sandbox_parse_dsn(sb, m, strlen(m), &rep, &res, &err);
	ok(r == 0 && res == DSN_OK && lres == DSN_OK &&
	    rep.nrcpts == DSN_MAX_RCPTS && report_equal(&rep, &local),
	    "sandbox: 1000 recipient blocks give the same %d recipients",
	    DSN_MAX_RCPTS);
	free(m);
	free(status);

	/* libetpan's boundary="\"" overflow: the prefilter stops it. */
	r = sandbox_parse_dsn(sb, crash_msg, strlen(crash_msg), &rep, &res,
	    &err);
	ok(r == -1 && strcmp(err.code, "bad_boundary") == 0 &&
	    rep.nrcpts == 0 && sandbox_child_pid(sb) == pid,
	    "sandbox: the boundary crash input is rejected by the prefilter "
	    "(%d %s), the child lives on", r, err.code);
	raw = fixture_read("postfix-hard-hdrs.eml", &len);
	r = raw != NULL ? sandbox_parse_dsn(sb, raw, len, &rep, &res, &err) :
	    -3;
	ok(r == 0 && res == DSN_OK && rep.nrcpts == 1 &&
	    sandbox_child_pid(sb) == pid,
	    "sandbox: the next bounce is read by the same child");
	free(raw);

	/* Letters and bounces share a child. */
	r = sandbox_parse_letter(sb, after, strlen(after), &doc, &err);
	ok(r == 0 && doc != NULL && strcmp(doc->text, "here\n") == 0 &&
	    sandbox_child_pid(sb) == pid,
	    "sandbox: a letter parses in the same child after bounces");
	letter_doc_free(&doc);

	/* Too large: refused by the parent. */
	big = xcalloc(1, sp.max_size + 1);
	r = sandbox_parse_dsn(sb, big, sp.max_size + 1, &rep, &res, &err);
	ok(r == -1 && strcmp(err.code, "too_large") == 0 && err.status == 413,
	    "sandbox: a bounce over max_size is refused by the parent");
	free(big);

	/* A child that cannot start: -2, sandbox_unavailable. */
	sandbox_free(&sb);
	sp.program = "/nonexistent/sealpostd";
	sb = sandbox_new(&sp);
	r = sandbox_parse_dsn(sb, after, strlen(after), &rep, &res, &err);
	ok(r == -2 && strcmp(err.code, "sandbox_unavailable") == 0,
	    "sandbox: no child program: -2 %s", err.code);
	sandbox_free(&sb);
}

int
main(int argc, char **argv)
{
	char	*exe;

	/* As sealpostd -P: this binary is also the sandbox's child. */
	if (argc > 1 && strcmp(argv[1], "-P") == 0)
		sandbox_child_main();

	signal(SIGPIPE, SIG_IGN);
	if (hash_init() != 0) {
		ok(0, "hash_init");
		return tap_done();
	}
	test_fixture_dir();
	test_fixtures();
	test_corpus_bounce();
	test_class();
	test_text();
	test_text_refusals();
	test_hostile();
	test_many_rcpts();
	test_msgids();
	test_missing_parts();
	if ((exe = self_exe()) == NULL) {
		skip("cannot find /proc/self/exe: no sandbox tests");
		return tap_done();
	}
	test_sandbox(exe);
	free(exe);
	return tap_done();
}
