/*
 * test_intake.c - unit tests of intake_process(): a raw reply message
 * through the token, the trust fields, the parse sandbox, the decision
 * table (TESTPLAN 3.4, T16-T18, T20), the sealing and the commit, with
 * no daemon: a real SQLite store and master key in a private directory,
 * and this binary as the sandbox's child (run with -P it calls
 * sandbox_child_main(), as sealpostd -P does).
 *
 * Each case asserts the outcome, the stored row and the mails it queued
 * (read behind the store with a raw sqlite3 connection), and for a few
 * the sealed document itself, opened with the archive and clinician keys.
 * Several messages keep the header and body shapes of real clients
 * (Gmail, Outlook, iPhone, Thunderbird) from the talon reply fixtures.
 * Last, the LMTP pool: one message for two recipients on worker threads.
 */
#include "build.h"

#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <sqlite3.h>

#include "age.h"
#include "hash.h"
#include "intake.h"
#include "keyring.h"
#include "letter.h"
#include "reply.h"
#include "sandbox.h"
#include "store.h"
#include "token.h"
#include "util.h"

#include "tap.h"
#include "store_fixture.h"
#include "tfile.h"

#define DOMAIN		"riverside.example"
#define AUTHSERV	"mx.riverside.example"
#define TEAM		"team@riverside.example"
#define DUTY		"duty@riverside.example"
#define CLIN		"a@nhs.example"
#define JO		"jo@patient.test"
#define SAM		"sam@patient.test"
#define FAMILY		"family@patient.test"
#define OWN		"pat@riverside.example"

#ifdef SEALPOST_ASAN
#define QUICK_MS	20000	/* the sanitizers only look for a hang */
#else
#define QUICK_MS	3000
#endif

static char		*exe, *dbpath, *keypath;
static struct keyring	*kr;
static struct token_keys tk;
static struct store	*st;
static sqlite3		*raw;
static int64_t		 prac, clin, jo, sam, ann, ben, own;
static int		 msgno;

static int	 identity(const char *, int64_t);
static int64_t	 patient(const char *, const char *);
static int	 setup(void);
static int64_t	 letter(int64_t, const char *);
static int64_t	 letter_by(int64_t, const char *, int64_t);
static char	*raddr(enum token_purpose, int64_t, int64_t, int64_t);
static char	*reply_to(int64_t, int64_t);
static char	*mkmsg(const char *, const char *, const char *,
		    const char *);
static char	*gmail(const char *, const char *, const char *,
		    const char *);
static void	 m365(char *, size_t, const char *);
static struct intake_params params(void);
static struct intake *mkintake(const struct intake_params *);
static void	 run(struct intake *, const char *, size_t, const char *,
		    struct intake_result *);
static char	*mails(int64_t);
static int64_t	 nreplies(void);
static void	 expect(const char *, const struct intake_result *,
		    enum intake_outcome, const char *, const char *, int64_t,
		    int64_t, int, int, const char *);
static enum age_status unseal(int64_t, const char *, int64_t,
		    struct reply_doc **);
static void	 test_red_flag_match(void);
static void	 test_filed(struct intake *);
static void	 test_auth(struct intake *);
static void	 test_tokens(struct intake *);
static void	 test_from(struct intake *);
static void	 test_no_token(struct intake *);
static void	 test_automatic(struct intake *);
static void	 test_red_flags(struct intake *);
static void	 test_attachments(struct intake *);
static void	 test_attachment_limits(void);
static void	 test_hostile(struct intake *);
static void	 test_shared(struct intake *);
static void	 test_routing(void);
static void	 test_reply_domain(struct intake *);
static void	 pool_done(struct intake_job *, void *);
static void	 pool_tick(evutil_socket_t, short, void *);
static void	 test_pool(void);

/* --- set-up -------------------------------------------------------------- */

static int
identity(const char *kind, int64_t id)
{
	unsigned char	 pk[KEYRING_KEY_LEN], wrapped[KEYRING_WRAPPED_LEN];
	char		 ad[64];
	const char	*e = NULL;

	snprintf(ad, sizeof(ad), "%s:%lld", kind, (long long)id);
	if (keyring_identity_new(kr, ad, pk, wrapped, &e) != 0 ||
	    store_set_identity(st, kind, id, pk, wrapped, sizeof(wrapped),
	    &e) != STORE_OK) {
		diag("identity %s: %s", ad, e != NULL ? e : "?");
		return -1;
	}
	return 0;
}

static int64_t
patient(const char *name, const char *email)
{
	int64_t		 id = 0;
	const char	*e = NULL;

	if (store_patient_add(st, prac, name, email, 1, 1, NULL, &id, &e) !=
	    STORE_OK || identity("patient", id) != 0) {
		diag("patient %s: %s", name, e != NULL ? e : "?");
		return 0;
	}
	return id;
}

static int
setup(void)
{
	const char	*e = NULL;

	dbpath = tpath("intake.db");
	keypath = tpath("master.key");
	if (keyring_create_master(keypath, &e) != 0 ||
	    keyring_load(keypath, &kr, &e) != 0) {
		ok(0, "master key: %s", e);
		return -1;
	}
	if (token_key_derive(kr, 1, &tk) != 0) {
		ok(0, "token key");
		return -1;
	}
	if (store_open(dbpath, STORE_CREATE, &st, &e) != STORE_OK) {
		ok(0, "store_open: %s", e);
		return -1;
	}
	if (store_practice_add(st, "Riverside", DOMAIN, &prac, &e) !=
	    STORE_OK || identity("practice", prac) != 0 ||
	    store_practice_set(st, prac, "team_email", TEAM, &e) != STORE_OK ||
	    store_practice_set(st, prac, "duty_email", DUTY, &e) != STORE_OK ||
	    store_practice_set(st, prac, "failsafe_email",
	    "failsafe@" DOMAIN, &e) != STORE_OK ||
	    store_clinician_add(st, prac, "Dr A", CLIN, "gp", &clin, &e) !=
	    STORE_OK || identity("clinician", clin) != 0) {
		ok(0, "practice and clinician: %s", e != NULL ? e : "?");
		return -1;
	}
	if ((jo = patient("Jo", JO)) == 0 || (sam = patient("Sam", SAM)) ==
	    0 || (ann = patient("Ann", FAMILY)) == 0 ||
	    (ben = patient("Ben", FAMILY)) == 0 ||
	    (own = patient("Pat", OWN)) == 0 ||
	    store_patient_set(st, ann, "shared_ok", "1", &e) != STORE_OK ||
	    store_patient_set(st, ben, "shared_ok", "1", &e) != STORE_OK) {
		ok(0, "patients: %s", e != NULL ? e : "?");
		return -1;
	}
	if ((raw = raw_open(dbpath)) == NULL) {
		ok(0, "raw connection");
		return -1;
	}
	return 0;
}

/* A letter by Dr A to a patient: the thread id, or 0. */
static int64_t
letter(int64_t pat, const char *addr)
{
	return letter_by(pat, addr, clin);
}

static int64_t
letter_by(int64_t pat, const char *addr, int64_t author)
{
	static const unsigned char blob[64] = { 1 };
	struct store_letter_new	 l;
	const char		*e = NULL;

	memset(&l, 0, sizeof(l));
	l.practice_id = prac;
	l.patient_id = pat;
	l.author_id = author;
	l.channel = "http";
	l.sealed = blob;
	l.sealed_len = sizeof(blob);
	l.address = addr;
	if (store_letters_commit(st, &l, 1, &e) != STORE_OK) {
		diag("letter: %s", e);
		return 0;
	}
	return l.letter_id;
}

/* "reply+<token>@riverside.example" for thread/recipient. */
static char *
raddr(enum token_purpose p, int64_t thread, int64_t rcpt, int64_t expires)
{
	char	 tok[TOKEN_BUFSZ], *a;

	if (expires == 0)
		expires = util_time() + 60 * 86400;
	if (token_make(&tk, p, thread, rcpt, expires, tok, sizeof(tok)) != 0)
		return xstrdup("reply+broken@" DOMAIN);
	xasprintf(&a, "%s+%s@" DOMAIN, token_prefix(p), tok);
	return a;
}

static char *
reply_to(int64_t thread, int64_t pat)
{
	return raddr(TOKEN_REPLY, thread, pat, 0);
}

/* A plain reply; extra: header lines ending in CRLF, or "". */
static char *
mkmsg(const char *from, const char *to, const char *extra, const char *body)
{
	char	*m;

	xasprintf(&m, "%sFrom: %s\r\nTo: %s\r\nSubject: Re: Your letter from "
	    "Riverside\r\nDate: Mon, 2 Apr 2012 20:21:52 +0400\r\n"
	    "Message-ID: <t%d.%ld@patient.test>\r\nMIME-Version: 1.0\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\n\r\n%s", extra, from,
	    to, ++msgno, (long)getpid(), body);
	return m;
}

/* --- running and looking ------------------------------------------------- */

static struct intake_params
params(void)
{
	struct intake_params	 p;

	memset(&p, 0, sizeof(p));
	p.database = dbpath;
	p.keyring = kr;
	p.tkeys = &tk;
	p.ntkeys = 1;
	p.queue = NULL;
	p.parse_program = exe;
	p.parse_memory_limit = 512LL * 1024 * 1024;
#ifdef SEALPOST_ASAN
	p.parse_timeout = 20;
#else
	p.parse_timeout = 5;
#endif
	p.max_size = 16 * 1024 * 1024;
	p.authserv_id = AUTHSERV;
	p.authserv_topmost = 0;
	p.forward = "smtp";
	p.ack_window = 86400;
	p.red_flags_file = "";
	p.attachment_types = "image/jpeg, image/png,application/pdf";
	p.max_attachments = 10;
	p.max_attachment_size = 5 * 1024 * 1024;
	p.imap_practice = "";
	return p;
}

static struct intake *
mkintake(const struct intake_params *p)
{
	struct intake	*in = NULL;
	const char	*e = NULL;

	if (intake_new(p, &in, &e) != 0)
		diag("intake_new: %s", e != NULL ? e : "?");
	return in;
}

/* Process raw with envelope recipient rcpt (NULL: as IMAP). */
static void
run(struct intake *in, const char *m, size_t len, const char *rcpt,
    struct intake_result *res)
{
	struct intake_msg	 msg;

	memset(&msg, 0, sizeof(msg));
	msg.raw = m;
	msg.len = m != NULL ? (len != 0 ? len : strlen(m)) : len;
	msg.rcpt = rcpt;
	msg.source = rcpt != NULL ? "lmtp" : "imap";
	if (m == NULL)
		msg.source_ref = "INBOX 1/7";
	intake_process(in, &msg, res);
}

/* The mails of a reply, "kind:to" sorted, space-separated ("" none). */
static char *
mails(int64_t reply_id)
{
	char	*s;

	s = raw_text(raw, "SELECT coalesce(group_concat(k, ' '), '') FROM "
	    "(SELECT kind || ':' || coalesce(to_addr, '-') AS k FROM "
	    "reply_mails WHERE reply_id = %lld ORDER BY k)",
	    (long long)reply_id);
	return s != NULL ? s : xstrdup("(error)");
}

static int64_t
nreplies(void)
{
	return raw_int(raw, "SELECT count(*) FROM replies");
}

/*
 * Check a result and its row: outcome, reason (also the row's), state,
 * sender, thread, patient, urgent/shared and the mails.
 */
static void
expect(const char *name, const struct intake_result *res,
    enum intake_outcome outcome, const char *reason, const char *sender,
    int64_t thread, int64_t pat, int urgent, int shared, const char *want)
{
	struct store_reply	 r;
	const char		*e = NULL;
	char			*m;

	is_int(res->outcome, outcome, "%s: outcome", name);
	is_str(res->reason, reason, "%s: reason", name);
	is_int(res->smtp_code, 250, "%s: LMTP 250", name);
	if (store_reply_get(st, res->reply_id, &r, &e) != STORE_OK) {
		ok(0, "%s: row %lld: %s", name, (long long)res->reply_id, e);
		return;
	}
	is_str(r.state, outcome == INTAKE_FILED ? "filed" : "quarantined",
	    "%s: row state", name);
	is_str(r.reason, reason, "%s: row reason", name);
	is_str(r.sender, sender, "%s: sender %s", name, sender);
	is_int(r.letter_id, thread, "%s: thread", name);
	is_int(r.patient_id, pat, "%s: patient", name);
	is_int(r.clinician_id, outcome == INTAKE_FILED ? clin : 0,
	    "%s: clinician", name);
	is_int(r.practice_id, prac, "%s: practice", name);
	is_int(r.urgent, urgent, "%s: urgent %d", name, urgent);
	is_int(r.shared, shared, "%s: shared %d", name, shared);
	m = mails(res->reply_id);
	is_str(m, want, "%s: mails [%s]", name, want);
	free(m);
}

/* Open a reply's sealed document with the identity of kind:id. */
static enum age_status
unseal(int64_t reply_id, const char *kind, int64_t id,
    struct reply_doc **rd)
{
	struct store_practice	*p = NULL;
	struct store_clinician	*c = NULL;
	struct keyring_secret	 sk = { NULL };
	struct age_identity	 ai;
	struct letter_error	 le;
	unsigned char		*blob = NULL, *pt = NULL;
	const unsigned char	*w;
	size_t			 blen = 0, ptlen = 0, wlen;
	const char		*e = NULL;
	char			 ad[64];
	enum age_status		 as = AGE_ERR_HEADER;

	*rd = NULL;
	if (strcmp(kind, "practice") == 0) {
		if (store_practice_get(st, id, &p, &e) != STORE_OK)
			goto out;
		w = p->archive_wrapped;
		wlen = p->archive_wrapped_len;
	} else {
		if (store_clinician_get(st, id, &c, &e) != STORE_OK)
			goto out;
		w = c->wrapped;
		wlen = c->wrapped_len;
	}
	snprintf(ad, sizeof(ad), "%s:%lld", kind, (long long)id);
	if (keyring_identity_unwrap(kr, ad, w, wlen, &sk, &e) != 0 ||
	    store_reply_sealed(st, reply_id, &blob, &blen, &e) != STORE_OK) {
		diag("unseal: %s", e != NULL ? e : "?");
		goto out;
	}
	memset(&ai, 0, sizeof(ai));
	ai.type = AGE_IDENTITY_X25519;
	ai.x25519_sk = sk.key;
	as = age_decrypt(&ai, 1, blob, blen, 0, &pt, &ptlen, &e);
	if (as == AGE_OK && reply_doc_parse((const char *)pt, ptlen, rd,
	    &le) != 0) {
		diag("reply_doc_parse: %s", le.message);
		as = AGE_ERR_PAYLOAD;
	}
out:
	age_free_plaintext(&pt, ptlen);
	free(blob);
	keyring_secret_free(&sk);
	store_practice_free(&p);
	store_clinician_free(&c);
	return as;
}

/* --- the cases ------------------------------------------------------------ */

/* Gmail's multipart/alternative shape (talon standard_replies/gmail.eml). */
static char *
gmail(const char *from, const char *to, const char *extra, const char *news)
{
	char	*m;

	xasprintf(&m, "%sContent-Type: multipart/alternative;\r\n"
	    " boundary=\"===============3455449757443551301==\"\r\n"
	    "MIME-Version: 1.0\r\nDate: Mon, 2 Apr 2012 20:21:52 +0400\r\n"
	    "Message-Id: <CAKsfaBW4hj0Gek6TwbR3erng4P1y0CZzJ0d=%d"
	    "@mail.gmail.com>"
	    "\r\nSubject: Re: Your letter from Riverside\r\n"
	    "From: %s\r\nTo: %s\r\n\r\n"
	    "--===============3455449757443551301==\r\nMIME-Version: 1.0\r\n"
	    "Content-Type: text/plain; charset=\"us-ascii\"\r\n"
	    "Content-Transfer-Encoding: 7bit\r\n\r\n%s\r\n\r\n"
	    "On Mon, Apr 2, 2012 at 6:26 PM, Riverside <no-reply@" DOMAIN
	    "> wrote:\r\n\r\n> Please book a blood test for next week.\r\n"
	    "> Dr A\r\n\r\n"
	    "--===============3455449757443551301==\r\nMIME-Version: 1.0\r\n"
	    "Content-Type: text/html; charset=\"us-ascii\"\r\n"
	    "Content-Transfer-Encoding: 7bit\r\n\r\n%s<br><br><div class=\""
	    "gmail_quote\">On Mon, Apr 2, 2012 at 6:26 PM, Riverside wrote:"
	    "<br><blockquote class=\"gmail_quote\">Please book a blood test "
	    "for next week.</blockquote></div><br>\r\n\r\n"
	    "--===============3455449757443551301==--\r\n", extra, ++msgno,
	    from, to, news, news);
	return m;
}

/* T16/T20: a valid reply is filed, forwarded and acknowledged once. */
static void
test_filed(struct intake *in)
{
	struct intake_params	 p = params();
	struct intake		*in0;
	struct intake_result	 res;
	struct reply_doc	*rd;
	int64_t			 l, first;
	char			*to, *m, *m2, *m3;

	l = letter(jo, JO);
	to = reply_to(l, jo);
	m = gmail("Jo Bloggs <" JO ">", to, "", "Thanks, I will come on "
	    "Tuesday morning.");
	run(in, m, 0, to, &res);
	expect("valid", &res, INTAKE_FILED, "", "unverified", l, jo, 0, 0,
	    "ack:" JO " forward:" CLIN);
	is_str(res.smtp_text, "2.0.0 reply filed", "valid: LMTP text");
	first = res.reply_id;

	/* the sealed document: archive and clinician, byte for byte */
	if (unseal(first, "practice", prac, &rd) == AGE_OK) {
		ok(strstr(rd->new_text, "Tuesday morning") != NULL &&
		    strstr(rd->new_text, "blood test") == NULL,
		    "sealed: new_text without the quoted history");
		ok(rd->removed & REPLY_QUOTE, "sealed: the quote removed");
		ok(rd->original_len == strlen(m) &&
		    memcmp(rd->original, m, strlen(m)) == 0,
		    "sealed: original equal to the raw message");
		ok(rd->content != NULL && rd->content->text != NULL &&
		    strstr(rd->content->text, "blood test") != NULL,
		    "sealed: the whole text kept");
		reply_doc_free(&rd);
	} else
		ok(0, "sealed: the archive opens the filed reply");
	ok(unseal(first, "clinician", clin, &rd) == AGE_OK && rd != NULL &&
	    strstr(rd->new_text, "Tuesday") != NULL,
	    "sealed: the clinician opens the filed reply");
	reply_doc_free(&rd);

	/* the second reply in the thread: filed, no second ack */
	m2 = mkmsg(JO, to, "", "And can I bring my son?\r\n");
	run(in, m2, 0, to, &res);
	expect("second in thread", &res, INTAKE_FILED, "", "unverified", l,
	    jo, 0, 0, "forward:" CLIN);

	/* ack_window 0: every reply is acknowledged */
	p.ack_window = 0;
	if ((in0 = mkintake(&p)) != NULL) {
		m3 = mkmsg(JO, to, "", "One more thing.\r\n");
		run(in0, m3, 0, to, &res);
		expect("ack_window 0", &res, INTAKE_FILED, "", "unverified", l,
		    jo, 0, 0, "ack:" JO " forward:" CLIN);
		free(m3);
		intake_free(&in0);
	} else
		ok(0, "intake with ack_window 0");

	/* the same message again: a duplicate, one row */
	run(in, m, 0, to, &res);
	is_int(res.outcome, INTAKE_DUPLICATE, "duplicate: outcome");
	is_int(res.reply_id, first, "duplicate: the first copy's id");
	is_int(res.smtp_code, 250, "duplicate: LMTP 250");
	is_int(raw_int(raw, "SELECT count(*) FROM replies WHERE letter_id = "
	    "%lld", (long long)l), 3, "duplicate: no new row");
	is_int(raw_int(raw, "SELECT count(*) FROM reply_mails r JOIN replies "
	    "p ON p.id = r.reply_id WHERE p.letter_id = %lld",
	    (long long)l), 5, "duplicate: no new mails");

	/* IMAP: the token from the header recipients */
	free(m);
	free(m2);
	free(to);
	l = letter(jo, JO);
	to = reply_to(l, jo);
	m2 = mkmsg("<" JO ">", to, "Delivered-To: replies@" DOMAIN "\r\n",
	    "By IMAP.\r\n");
	run(in, m2, 0, NULL, &res);
	expect("imap, token in To", &res, INTAKE_FILED, "", "unverified", l,
	    jo, 0, 0, "ack:" JO " forward:" CLIN);
	free(m2);
	free(to);
}

/* Microsoft 365's Authentication-Results: no authserv-id. */
static void
m365(char *buf, size_t sz, const char *dmarc)
{
	snprintf(buf, sz, "Authentication-Results: spf=pass (sender IP is "
	    "192.0.2.1) smtp.mailfrom=patient.test; dkim=pass (signature was "
	    "verified) header.d=patient.test;dmarc=%s action=none "
	    "header.from=patient.test;compauth=pass reason=100\r\n", dmarc);
}

/* T18: which Authentication-Results decides. */
static void
test_auth(struct intake *in)
{
	struct intake_params	 p = params();
	struct intake		*top;
	struct intake_result	 res;
	char			*to, *m, hdr[512];
	int64_t			 l;

	l = letter(jo, JO);
	to = reply_to(l, jo);

	m = mkmsg(JO, to, "Authentication-Results: " AUTHSERV "; dkim=pass "
	    "header.d=patient.test; dmarc=pass header.from=patient.test\r\n",
	    "Verified.\r\n");
	run(in, m, 0, to, &res);
	expect("dmarc=pass", &res, INTAKE_FILED, "", "verified", l, jo, 0, 0,
	    "ack:" JO " forward:" CLIN);
	free(m);

	m = mkmsg(JO, to, "Authentication-Results: " AUTHSERV "; dmarc=fail "
	    "header.from=patient.test\r\n", "Spoofed.\r\n");
	run(in, m, 0, to, &res);
	expect("dmarc=fail", &res, INTAKE_QUARANTINED, "dmarc_fail", "spoof",
	    l, jo, 0, 0, "quarantine:" TEAM);
	free(m);

	m = mkmsg(JO, to, "Authentication-Results: " AUTHSERV "; dmarc=pass "
	    "header.from=patient.test\r\nReceived: from evil by x\r\n"
	    "Authentication-Results: " AUTHSERV "; dmarc=fail "
	    "header.from=patient.test\r\n", "Forged below pass.\r\n");
	run(in, m, 0, to, &res);
	expect("forged fail below the top pass", &res, INTAKE_FILED, "",
	    "verified", l, jo, 0, 0, "forward:" CLIN);
	free(m);

	m = mkmsg(JO, to, "Authentication-Results: " AUTHSERV "; dmarc=fail "
	    "header.from=patient.test\r\nReceived: from evil by x\r\n"
	    "Authentication-Results: " AUTHSERV "; dmarc=pass "
	    "header.from=patient.test\r\n", "Forged pass below.\r\n");
	run(in, m, 0, to, &res);
	expect("forged pass below the top fail", &res, INTAKE_QUARANTINED,
	    "dmarc_fail", "spoof", l, jo, 0, 0, "quarantine:" TEAM);
	free(m);

	/* Microsoft 365: no authserv-id */
	m365(hdr, sizeof(hdr), "fail");
	m = mkmsg(JO, to, hdr, "M365, fail, not trusted.\r\n");
	run(in, m, 0, to, &res);
	expect("M365 A-R ignored with authserv_id", &res, INTAKE_FILED, "",
	    "unverified", l, jo, 0, 0, "forward:" CLIN);
	free(m);

	p.authserv_id = "";
	p.authserv_topmost = 1;
	if ((top = mkintake(&p)) == NULL) {
		ok(0, "intake with authserv_topmost");
		free(to);
		return;
	}
	m365(hdr, sizeof(hdr), "pass");
	m = mkmsg(JO, to, hdr, "M365, pass, topmost.\r\n");
	run(top, m, 0, to, &res);
	expect("M365 topmost pass", &res, INTAKE_FILED, "", "verified", l, jo,
	    0, 0, "forward:" CLIN);
	free(m);
	m365(hdr, sizeof(hdr), "fail");
	m = mkmsg(JO, to, hdr, "M365, fail, topmost.\r\n");
	run(top, m, 0, to, &res);
	expect("M365 topmost fail", &res, INTAKE_QUARANTINED, "dmarc_fail",
	    "spoof", l, jo, 0, 0, "quarantine:" TEAM);
	free(m);
	intake_free(&top);
	free(to);
}

/* T16: tokens that must not file. */
static void
test_tokens(struct intake *in)
{
	struct intake_result	 res;
	struct reply_doc	*rd;
	const char		*e = NULL;
	char			*to, *bad, *m, *p;
	int64_t			 l, n;

	/* one character flipped */
	l = letter(jo, JO);
	to = reply_to(l, jo);
	bad = xstrdup(to);
	p = bad + strlen("reply+") + 10;
	*p = *p == 'a' ? 'b' : 'a';
	m = mkmsg(JO, bad, "", "Flipped.\r\n");
	run(in, m, 0, bad, &res);
	expect("flipped token", &res, INTAKE_QUARANTINED, "bad_token",
	    "unverified", 0, 0, 0, 0, "contact:" JO " quarantine:" TEAM);
	free(m);
	/* the same from a sender the provider says is forged: no answer
	 * (no backscatter to the forged address) */
	m = mkmsg("forged@patient.test", bad, "Authentication-Results: "
	    AUTHSERV "; dmarc=fail header.from=patient.test\r\n",
	    "Flipped, forged.\r\n");
	run(in, m, 0, bad, &res);
	expect("flipped token, dmarc=fail", &res, INTAKE_QUARANTINED,
	    "bad_token", "spoof", 0, 0, 0, 0, "quarantine:" TEAM);
	/* archive only: the clinician cannot open it */
	ok(unseal(res.reply_id, "practice", prac, &rd) == AGE_OK &&
	    rd->original_len == strlen(m), "quarantined: the archive opens it");
	reply_doc_free(&rd);
	is_int(unseal(res.reply_id, "clinician", clin, &rd), AGE_ERR_NO_MATCH,
	    "quarantined: the clinician cannot open it");
	reply_doc_free(&rd);
	free(m);
	/* a second bad reply from the same address: one contact a window */
	m = mkmsg(JO, bad, "", "Flipped again.\r\n");
	run(in, m, 0, bad, &res);
	expect("flipped token again", &res, INTAKE_QUARANTINED, "bad_token",
	    "unverified", 0, 0, 0, 0, "quarantine:" TEAM);
	free(m);
	free(bad);

	/* a token for another patient: Jo's thread, Sam as recipient */
	bad = reply_to(l, sam);
	m = mkmsg(SAM, bad, "", "Not my letter.\r\n");
	run(in, m, 0, bad, &res);
	expect("token for another patient", &res, INTAKE_QUARANTINED,
	    "unknown_thread", "unverified", 0, 0, 0, 0,
	    "contact:" SAM " quarantine:" TEAM);
	free(m);
	free(bad);

	/* a thread this store does not hold */
	bad = reply_to(l + 1000, jo);
	m = mkmsg(JO, bad, "", "No such letter.\r\n");
	run(in, m, 0, bad, &res);
	is_str(res.reason, "unknown_thread", "unknown letter: unknown_thread");
	free(m);
	free(bad);

	/* expired: quarantined, a contact mail to From */
	bad = raddr(TOKEN_REPLY, l, jo, util_time() - 3 * 86400);
	m = mkmsg("Jo <" JO ">", bad, "", "Late reply.\r\n");
	run(in, m, 0, bad, &res);
	expect("expired token", &res, INTAKE_QUARANTINED, "expired_token",
	    "unverified", l, jo, 0, 0, "contact:" JO " quarantine:" TEAM);
	free(m);
	free(bad);

	/* closed thread */
	if (store_letter_close(st, l, "admin:test", &e) != STORE_OK)
		diag("close: %s", e);
	m = mkmsg(JO, to, "", "After closing.\r\n");
	run(in, m, 0, to, &res);
	expect("closed thread", &res, INTAKE_QUARANTINED, "thread_closed",
	    "unverified", l, jo, 0, 0, "quarantine:" TEAM);
	free(m);
	free(to);

	/* a closed thread gets its contact mail on a fresh thread */
	l = letter(jo, JO);
	to = reply_to(l, jo);
	store_letter_close(st, l, "admin:test", &e);
	m = mkmsg(JO, to, "", "After closing.\r\n");
	run(in, m, 0, to, &res);
	expect("closed thread, first", &res, INTAKE_QUARANTINED,
	    "thread_closed", "unverified", l, jo, 0, 0,
	    "contact:" JO " quarantine:" TEAM);
	free(m);
	free(to);

	/* a bounce+ token: the queue decides; none here: 451, no row */
	n = nreplies();
	bad = raddr(TOKEN_BOUNCE, l, 1, 0);
	m = mkmsg("MAILER-DAEMON@mx.patient.test", bad, "",
	    "Delivery failed.\r\n");
	run(in, m, 0, bad, &res);
	is_int(res.outcome, INTAKE_TEMPFAIL, "bounce, no queue: tempfail");
	is_int(res.smtp_code, 451, "bounce, no queue: 451");
	is_int(nreplies(), n, "bounce, no queue: nothing stored");
	free(m);
	free(bad);
	/* a bounce+ address with a bad token: quarantined, never answered */
	bad = xstrdup("bounce+aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@" DOMAIN);
	m = mkmsg(JO, bad, "", "Bounce junk.\r\n");
	run(in, m, 0, bad, &res);
	expect("bounce, bad token", &res, INTAKE_QUARANTINED, "bad_token",
	    "unverified", 0, 0, 0, 0, "quarantine:" TEAM);
	free(m);
	free(bad);
}

/* T17: From is not the patient's registered address. */
static void
test_from(struct intake *in)
{
	static const struct {
		const char	*from;
		const char	*reason;
		const char	*name;
	} cases[] = {
		{ "Jo <jo@other.test>", "from_mismatch", "exact mismatch" },
		{ "Jo@patient.test", "from_mismatch", "local part case" },
		{ "jo@xn--patint-eva.test", "from_mismatch",
		  "IDN look-alike domain" },
		{ "j\xd0\xbe@patient.test", "from_unusable",
		  "Unicode look-alike (Cyrillic o)" },
		{ "\"jo@patient.test\" <evil@x.test>", "from_mismatch",
		  "display-name spoof" },
		{ "jo@patient.test <evil@x.test>", "from_unusable",
		  "unquoted address as display name" },
		{ "jo@patient.test, evil@x.test", "from_unusable",
		  "two mailboxes" },
		{ "friends: jo@patient.test;", "from_unusable", "group" },
		{ "=?utf-8?q?jo=40patient=2Etest?=@x.test", "from_unusable",
		  "encoded word" },
	};
	struct intake_result	 res;
	char			*to, *m, name[96];
	int64_t			 l;
	size_t			 i;

	l = letter(jo, JO);
	to = reply_to(l, jo);
	for (i = 0; i < nitems(cases); i++) {
		m = mkmsg(cases[i].from, to, "", "Hello.\r\n");
		run(in, m, 0, to, &res);
		snprintf(name, sizeof(name), "From %s", cases[i].name);
		expect(name, &res, INTAKE_QUARANTINED, cases[i].reason,
		    "mismatch", l, jo, 0, 0, "quarantine:" TEAM);
		free(m);
	}
	/* two From fields */
	m = mkmsg(JO, to, "From: evil@x.test\r\n", "Hello.\r\n");
	run(in, m, 0, to, &res);
	expect("two From fields", &res, INTAKE_QUARANTINED, "from_unusable",
	    "mismatch", l, jo, 0, 0, "quarantine:" TEAM);
	free(m);
	/* Sender other than From */
	m = mkmsg(JO, to, "Sender: evil@x.test\r\n", "Hello.\r\n");
	run(in, m, 0, to, &res);
	expect("Sender differs", &res, INTAKE_QUARANTINED, "from_unusable",
	    "mismatch", l, jo, 0, 0, "quarantine:" TEAM);
	free(m);
	is_int(raw_int(raw, "SELECT count(*) FROM replies WHERE letter_id = "
	    "%lld AND state = 'filed'", (long long)l), 0,
	    "From cases: none filed");
	free(to);
}

/* No token: References, or nothing, or not ours at all. */
static void
test_no_token(struct intake *in)
{
	struct intake_result	 res;
	char			*m;
	int64_t			 l, n;

	l = letter(jo, JO);
	if (raw_int(raw, "UPDATE deliveries SET message_id = "
	    "'<sent%lld@" DOMAIN ">' WHERE letter_id = %lld RETURNING 1",
	    (long long)l, (long long)l) != 1)
		ok(0, "set the delivery's Message-ID");
	/* Outlook's shape (talon standard_replies/outlook.eml) */
	xasprintf(&m, "Subject: RE: Your letter\r\nFrom: " JO "\r\n"
	    "To: surgery@" DOMAIN "\r\nMessage-ID: <ol%d@patient.test>\r\n"
	    "In-Reply-To: <sent%lld@" DOMAIN ">\r\nMIME-Version: 1.0\r\n"
	    "Content-Type: multipart/alternative; boundary=0016364c440b2e8b63"
	    "049acd5370\r\nX-Mailgun-Tag: tag\r\n\r\n"
	    "--0016364c440b2e8b63049acd5370\r\nContent-Type: text/plain; "
	    "charset=ISO-8859-1\r\n\r\nHello\r\n\r\nFrom: Riverside "
	    "[mailto:no-reply@" DOMAIN "]\r\nSent: March-09-12 4:22 PM\r\n"
	    "To: Jo\r\nSubject: Your letter\r\n\r\nPlease book a test.\r\n\r\n"
	    "--0016364c440b2e8b63049acd5370\r\nContent-Type: text/html; "
	    "charset=ISO-8859-1\r\n\r\n<html><body><p>Hello</p></body></html>"
	    "\r\n\r\n--0016364c440b2e8b63049acd5370--\r\n", ++msgno,
	    (long long)l);
	run(in, m, 0, "surgery@" DOMAIN, &res);
	expect("References only", &res, INTAKE_QUARANTINED, "references_only",
	    "unverified", l, jo, 0, 0, "quarantine:" TEAM);
	free(m);

	/* (Jo had a contact mail in this window: the bad tokens above) */
	m = mkmsg("new@patient.test", "surgery@" DOMAIN, "",
	    "No token at all.\r\n");
	run(in, m, 0, "surgery@" DOMAIN, &res);
	expect("no token", &res, INTAKE_QUARANTINED, "no_token", "unverified",
	    0, 0, 0, 0, "contact:new@patient.test quarantine:" TEAM);
	free(m);
	m = mkmsg(JO, "surgery@" DOMAIN, "", "No token, Jo.\r\n");
	run(in, m, 0, "surgery@" DOMAIN, &res);
	expect("no token, contacted within the window", &res,
	    INTAKE_QUARANTINED, "no_token", "unverified", 0, 0, 0, 0,
	    "quarantine:" TEAM);
	free(m);

	n = nreplies();
	m = mkmsg(JO, "someone@nowhere.example", "", "Not ours.\r\n");
	run(in, m, 0, "someone@nowhere.example", &res);
	is_int(res.outcome, INTAKE_REFUSED, "unknown domain: refused");
	is_int(res.smtp_code, 550, "unknown domain: 550");
	is_int(nreplies(), n, "unknown domain: nothing stored");
	free(m);
}

/* T20: automatic messages and our own addresses are never answered. */
static void
test_automatic(struct intake *in)
{
	static const struct {
		const char	*from;
		const char	*extra;
		const char	*name;
	} cases[] = {
		{ JO, "Auto-Submitted: auto-replied\r\n", "Auto-Submitted" },
		{ JO, "Precedence: bulk\r\n", "Precedence bulk" },
		{ JO, "Return-Path: <>\r\n", "null Return-Path" },
		{ JO, "X-Autoreply: yes\r\n", "X-Autoreply" },
	};
	struct intake_result	 res;
	char			*to, *m, *bad, name[96];
	int64_t			 l;
	size_t			 i;

	for (i = 0; i < nitems(cases); i++) {
		/* a fresh thread each: no ack window hides the ack */
		l = letter(jo, JO);
		to = reply_to(l, jo);
		m = mkmsg(cases[i].from, to, cases[i].extra, "I am away.\r\n");
		run(in, m, 0, to, &res);
		snprintf(name, sizeof(name), "%s: filed, no ack",
		    cases[i].name);
		expect(name, &res, INTAKE_FILED, "", "unverified", l, jo, 0, 0,
		    "forward:" CLIN);
		free(m);
		/* and an expired token: no contact mail either */
		bad = raddr(TOKEN_REPLY, l, jo, util_time() - 3 * 86400);
		m = mkmsg(cases[i].from, bad, cases[i].extra, "Away.\r\n");
		run(in, m, 0, bad, &res);
		snprintf(name, sizeof(name), "%s: expired, no contact",
		    cases[i].name);
		expect(name, &res, INTAKE_QUARANTINED, "expired_token",
		    "unverified", l, jo, 0, 0, "quarantine:" TEAM);
		free(m);
		free(bad);
		free(to);
	}

	m = mkmsg("Mail Delivery System <MAILER-DAEMON@mx.patient.test>",
	    "surgery@" DOMAIN, "", "Undeliverable.\r\n");
	run(in, m, 0, "surgery@" DOMAIN, &res);
	expect("mailer-daemon: no contact", &res, INTAKE_QUARANTINED,
	    "no_token", "unverified", 0, 0, 0, 0, "quarantine:" TEAM);
	free(m);

	m = mkmsg("reception@" DOMAIN, "surgery@" DOMAIN, "", "Loop?\r\n");
	run(in, m, 0, "surgery@" DOMAIN, &res);
	expect("own domain: no contact", &res, INTAKE_QUARANTINED, "no_token",
	    "unverified", 0, 0, 0, 0, "quarantine:" TEAM);
	free(m);

	/* a patient whose address is at the practice's own domain */
	l = letter(own, OWN);
	to = reply_to(l, own);
	m = mkmsg(OWN, to, "", "From inside.\r\n");
	run(in, m, 0, to, &res);
	expect("own domain: filed, no ack", &res, INTAKE_FILED, "",
	    "unverified", l, own, 0, 0, "forward:" CLIN);
	free(m);
	free(to);
}

/* Red flags: the new text only, and an ack whatever the window. */
static void
test_red_flags(struct intake *in)
{
	struct intake_result	 res;
	char			*to, *m;
	int64_t			 l;

	l = letter(jo, JO);
	to = reply_to(l, jo);
	m = mkmsg(JO, to, "", "Thank you.\r\n");
	run(in, m, 0, to, &res);
	expect("before the red flag", &res, INTAKE_FILED, "", "unverified", l,
	    jo, 0, 0, "ack:" JO " forward:" CLIN);
	free(m);
	/* iPhone's shape: the new words, the footer, the quote */
	m = mkmsg(JO, to, "", "Since this morning I have chest pain and "
	    "feel dizzy.\r\n\r\nSent from my iPhone\r\n\r\nOn Apr 3, 2012, "
	    "at 4:19 PM, Riverside <no-reply@" DOMAIN "> wrote:\r\n\r\n"
	    "> Your results are normal.\r\n");
	run(in, m, 0, to, &res);
	expect("red flag", &res, INTAKE_FILED, "", "unverified", l, jo, 1, 0,
	    "ack:" JO " forward:" CLIN " redflag:" DUTY);
	free(m);
	free(to);

	/* the phrase only in the quoted history */
	l = letter(jo, JO);
	to = reply_to(l, jo);
	m = mkmsg(JO, to, "", "Thanks, that is reassuring.\r\n\r\n"
	    "On Tue, Apr 3, 2012 at 10:00 AM, Riverside <no-reply@" DOMAIN
	    "> wrote:\r\n> If you develop chest pain, call 999.\r\n"
	    "> Dr A\r\n");
	run(in, m, 0, to, &res);
	expect("red flag only quoted", &res, INTAKE_FILED, "", "unverified",
	    l, jo, 0, 0, "ack:" JO " forward:" CLIN);
	free(m);
	/* HTML only, and HTML beside an empty text part: the HTML is read */
	free(to);
	l = letter(jo, JO);
	to = reply_to(l, jo);
	xasprintf(&m, "From: " JO "\r\nTo: %s\r\nMessage-ID: <ho%d@x>\r\n"
	    "MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8"
	    "\r\n\r\n<html><body><p>I can&#8217;t breathe properly</p>"
	    "<blockquote>Your results</blockquote></body></html>\r\n", to,
	    ++msgno);
	run(in, m, 0, to, &res);
	expect("red flag in HTML only", &res, INTAKE_FILED, "", "unverified",
	    l, jo, 1, 0, "ack:" JO " forward:" CLIN " redflag:" DUTY);
	free(m);
	xasprintf(&m, "From: " JO "\r\nTo: %s\r\nMessage-ID: <he%d@x>\r\n"
	    "MIME-Version: 1.0\r\nContent-Type: multipart/alternative; "
	    "boundary=zz\r\n\r\n--zz\r\nContent-Type: text/plain; "
	    "charset=utf-8\r\n\r\n\r\n--zz\r\nContent-Type: text/html; "
	    "charset=utf-8\r\n\r\n<p>He collapsed this morning</p>\r\n"
	    "--zz--\r\n", to, ++msgno);
	run(in, m, 0, to, &res);
	expect("red flag in HTML beside an empty text part", &res,
	    INTAKE_FILED, "", "unverified", l, jo, 1, 0,
	    "ack:" JO " forward:" CLIN " redflag:" DUTY);
	free(m);

	/* a red flag in a quarantined reply still alerts the duty address */
	m = mkmsg("someone@else.test", to, "", "He collapsed.\r\n");
	run(in, m, 0, to, &res);
	expect("red flag, quarantined", &res, INTAKE_QUARANTINED,
	    "from_mismatch", "mismatch", l, jo, 1, 0,
	    "quarantine:" TEAM " redflag:" DUTY);
	free(m);
	free(to);
}

static void
test_red_flag_match(void)
{
	char		*ph[] = { "chest pain", "can't breathe", "stroke" };
	const char	*which = NULL;
	char		**v = NULL, *path, longp[120];
	size_t		 n = 0;
	const char	*e = NULL;
	FILE		*fp;

	ok(intake_red_flag_match("I have CHEST   Pain\nsince", ph, 3, &which)
	    && which != NULL && strcmp(which, "chest pain") == 0,
	    "match: case and white space folded");
	ok(!intake_red_flag_match("my chest painful", ph, 3, NULL),
	    "match: whole words only (after)");
	ok(!intake_red_flag_match("I did backstroke", ph, 3, NULL),
	    "match: whole words only (before)");
	ok(intake_red_flag_match("a stroke, maybe", ph, 3, &which) &&
	    strcmp(which, "stroke") == 0, "match: punctuation ends a word");
	ok(intake_red_flag_match("I can\xe2\x80\x99t breathe", ph, 3,
	    &which) && strcmp(which, "can't breathe") == 0,
	    "match: typographic apostrophe");
	ok(!intake_red_flag_match("all fine, thanks", ph, 3, &which) &&
	    which == NULL, "match: none");
	ok(!intake_red_flag_match(NULL, ph, 3, NULL), "match: NULL text");
	ok(!intake_red_flag_match("chest pain", ph, 0, NULL),
	    "match: no phrases");

	ok(intake_red_flags_load(NULL, &v, &n, &e) == 0 && n > 0 &&
	    intake_red_flag_match("sudden chest pain", v, n, NULL),
	    "load: the built-in list");
	intake_red_flags_free(v, n);

	path = tpath("flags.txt");
	fp = fopen(path, "w");
	fputs("# red flags\n\n  chest pain  \r\nfainting\n\t# more\n", fp);
	fclose(fp);
	v = NULL;
	n = 0;
	ok(intake_red_flags_load(path, &v, &n, &e) == 0 && n == 2 &&
	    strcmp(v[0], "chest pain") == 0 && strcmp(v[1], "fainting") == 0,
	    "load: comments, blank lines and spaces skipped");
	intake_red_flags_free(v, n);

	memset(longp, 'a', 101);
	longp[101] = '\0';
	fp = fopen(path, "w");
	fprintf(fp, "chest pain\n%s\n", longp);
	fclose(fp);
	e = NULL;
	ok(intake_red_flags_load(path, &v, &n, &e) == -1 && v == NULL &&
	    e != NULL, "load: a phrase over 100 bytes refused (%s)",
	    e != NULL ? e : "?");
	longp[100] = '\0';
	fp = fopen(path, "w");
	fprintf(fp, "%s\n", longp);
	fclose(fp);
	ok(intake_red_flags_load(path, &v, &n, &e) == 0 && n == 1,
	    "load: a phrase of 100 bytes taken");
	intake_red_flags_free(v, n);

	fp = fopen(path, "w");
	fclose(fp);
	e = NULL;
	ok(intake_red_flags_load(path, &v, &n, &e) == -1 && e != NULL,
	    "load: an empty file refused");
	fp = fopen(path, "w");
	fputs("# only\n\n", fp);
	fclose(fp);
	ok(intake_red_flags_load(path, &v, &n, &e) == -1,
	    "load: only comments refused");
	unlink(path);
	ok(intake_red_flags_load(path, &v, &n, &e) == -1,
	    "load: a missing file refused");
	free(path);
}

/* Attachments: the allow-list; Thunderbird's multipart/mixed shape. */
static void
test_attachments(struct intake *in)
{
	struct intake_result	 res;
	char			*to, *m;
	int64_t			 l;
	const char		*types[] = { "application/x-msdownload",
				    "image/jpeg" };
	size_t			 i;

	for (i = 0; i < nitems(types); i++) {
		l = letter(jo, JO);
		to = reply_to(l, jo);
		xasprintf(&m, "Message-ID: <tb%d@patient.test>\r\n"
		    "Date: Tue, 3 Apr 2012 09:00:00 +0100\r\n"
		    "From: Jo <" JO ">\r\nUser-Agent: Mozilla/5.0 "
		    "Thunderbird/11.0\r\nMIME-Version: 1.0\r\nTo: %s\r\n"
		    "Subject: Re: photo\r\nContent-Type: multipart/mixed;\r\n"
		    " boundary=\"------------050600060500020705030802\"\r\n\r\n"
		    "This is a multi-part message in MIME format.\r\n"
		    "--------------050600060500020705030802\r\n"
		    "Content-Type: text/plain; charset=UTF-8; format=flowed\r\n"
		    "Content-Transfer-Encoding: 7bit\r\n\r\nHere it is.\r\n\r\n"
		    "--------------050600060500020705030802\r\n"
		    "Content-Type: %s; name=\"rash.bin\"\r\n"
		    "Content-Transfer-Encoding: base64\r\n"
		    "Content-Disposition: attachment; filename=\"rash.bin\"\r\n"
		    "\r\n/9j/4AAQSkZJRgABAQEASABIAAD/2wBDAP//////////\r\n\r\n"
		    "--------------050600060500020705030802--\r\n", ++msgno,
		    to, types[i]);
		run(in, m, 0, to, &res);
		if (i == 0)
			expect("attachment not allowed", &res,
			    INTAKE_QUARANTINED, "attachment_type",
			    "unverified", l, jo, 0, 0, "quarantine:" TEAM);
		else
			expect("attachment image/jpeg", &res, INTAKE_FILED, "",
			    "unverified", l, jo, 0, 0,
			    "ack:" JO " forward:" CLIN);
		free(m);
		free(to);
	}
}

/* The attachment limits of [replies]: count and size. */
static void
test_attachment_limits(void)
{
	struct intake_params	 p = params();
	struct intake		*in;
	struct intake_result	 res;
	char			*to, *m, *parts, *one;
	int64_t			 l;
	size_t			 i, k, natt, len;

	p.max_attachments = 2;
	p.max_attachment_size = 100;
	if ((in = mkintake(&p)) == NULL) {
		ok(0, "intake with attachment limits");
		return;
	}
	for (i = 0; i < 3; i++) {
		/* 2 small ones: filed; 3 small ones; 1 of 150 bytes */
		natt = i == 1 ? 3 : i == 0 ? 2 : 1;
		parts = xstrdup("");
		for (k = 0; k < natt; k++) {
			xasprintf(&one, "%s--zz\r\nContent-Type: image/png\r\n"
			    "Content-Disposition: attachment; filename=p%zu.png"
			    "\r\nContent-Transfer-Encoding: base64\r\n\r\n%s"
			    "\r\n", parts, k, i == 2 ? "iVBORw0KGgoAAAANSUhEUg"
			    "AAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA"
			    "60e6kgAAAABJRU5ErkJggmlWQk9SdzBLR2dvQUFBQU5T"
			    "VWhFVWdBQUFBRUFBQUFCQ0FZQUFBQWZGY1NKQUFBQURV"
			    "bEVRVlI0Mm1Oa1lQaGZEd0FDaHdHQTYwZTZrZ0FBQUFC"
			    "SlJVNUVya0pnZ2c9PQ==" :
			    "iVBORw0KGgo=");
			free(parts);
			parts = one;
		}
		l = letter(jo, JO);
		to = reply_to(l, jo);
		xasprintf(&m, "From: " JO "\r\nTo: %s\r\nMessage-ID: <al%d@x>"
		    "\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; "
		    "boundary=zz\r\n\r\n--zz\r\nContent-Type: text/plain\r\n"
		    "\r\nPictures.\r\n%s--zz--\r\n", to, ++msgno, parts);
		free(parts);
		len = strlen(m);
		run(in, m, len, to, &res);
		if (i == 0)
			expect("2 attachments, max 2", &res, INTAKE_FILED, "",
			    "unverified", l, jo, 0, 0,
			    "ack:" JO " forward:" CLIN);
		else
			expect(i == 1 ? "3 attachments, max 2" :
			    "an attachment over max_attachment_size", &res,
			    INTAKE_QUARANTINED, "too_large", "unverified", l,
			    jo, 0, 0, "quarantine:" TEAM);
		free(m);
		free(to);
	}
	intake_free(&in);
}

/* Hostile and odd messages: quarantined, quickly, and the intake lives. */
static void
test_hostile(struct intake *in)
{
	struct intake_result	 res;
	struct reply_doc	*rd;
	struct intake_params	 p = params();
	struct intake		*imap;
	char			*to, *m, *body, *hdr;
	int64_t			 l, t0, n;
	size_t			 i, len;

	l = letter(jo, JO);
	to = reply_to(l, jo);

	/* the libetpan crasher */
	xasprintf(&m, "From: " JO "\r\nTo: %s\r\nMessage-ID: <c%d@x>\r\n"
	    "Content-Type: multipart/mixed; boundary=\"\\\"\"\r\n\r\n"
	    "--\"\r\nhi\r\n", to, ++msgno);
	run(in, m, 0, to, &res);
	expect("libetpan crasher", &res, INTAKE_QUARANTINED, "parse_failed",
	    "unverified", l, jo, 0, 0, "quarantine:" TEAM);
	free(m);
	m = mkmsg(JO, to, "", "After the crasher.\r\n");
	run(in, m, 0, to, &res);
	is_int(res.outcome, INTAKE_FILED, "after the crasher: filed");
	free(m);

	/* 10,000 nested multiparts */
	len = 0;
	body = xmalloc(10000 * 80 + 1);
	for (i = 0; i < 10000; i++)
		len += (size_t)snprintf(body + len, 80, "--b%zu\r\n"
		    "Content-Type: multipart/mixed; boundary=b%zu\r\n\r\n",
		    i, i + 1);
	xasprintf(&m, "From: " JO "\r\nTo: %s\r\nMessage-ID: <n%d@x>\r\n"
	    "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b0"
	    "\r\n\r\n%sdeep\r\n", to, ++msgno, body);
	free(body);
	t0 = (int64_t)util_now_ms();
	run(in, m, 0, to, &res);
	ok((int64_t)util_now_ms() - t0 < QUICK_MS,
	    "10,000 levels: within %d ms", QUICK_MS);
	expect("10,000 levels", &res, INTAKE_QUARANTINED, "parse_failed",
	    "unverified", l, jo, 0, 0, "quarantine:" TEAM);
	free(m);

	/* a header section over 1 MiB */
	hdr = xmalloc(1100 * 1024);
	len = 0;
	for (i = 0; len < 1050 * 1024; i++)
		len += (size_t)snprintf(hdr + len, 100, "X-Filler-%zu: "
		    "%060d\r\n", i, 0);
	xasprintf(&m, "From: " JO "\r\nTo: %s\r\nMessage-ID: <h%d@x>\r\n"
	    "%s\r\nbody\r\n", to, ++msgno, hdr);
	free(hdr);
	run(in, m, 0, to, &res);
	expect("header over 1 MiB", &res, INTAKE_QUARANTINED,
	    "header_unusable", "unverified", l, jo, 0, 0, "quarantine:" TEAM);
	free(m);
	free(to);

	/* too large to read (IMAP): no content, the archive only */
	p.imap_practice = DOMAIN;
	if ((imap = mkintake(&p)) == NULL) {
		ok(0, "IMAP intake");
		return;
	}
	n = nreplies();
	run(imap, NULL, 50 * 1024 * 1024, NULL, &res);
	expect("too large", &res, INTAKE_QUARANTINED, "too_large",
	    "unverified", 0, 0, 0, 0, "quarantine:" TEAM);
	is_int(nreplies(), n + 1, "too large: one row");
	ok(unseal(res.reply_id, "practice", prac, &rd) == AGE_OK &&
	    rd->original_len == 0 && rd->new_text[0] == '\0' &&
	    rd->content == NULL, "too large: sealed without content");
	reply_doc_free(&rd);
	/* the same again (a retry): a duplicate */
	run(imap, NULL, 50 * 1024 * 1024, NULL, &res);
	is_int(res.outcome, INTAKE_DUPLICATE, "too large again: duplicate");
	intake_free(&imap);
}

/* T20: where a filed reply goes: clinician, team, IMAP, nowhere. */
static void
test_routing(void)
{
	struct intake_params	 p = params();
	struct intake		*in;
	struct intake_result	 res;
	struct store_reply	 r;
	struct reply_doc	*rd;
	const char		*e = NULL, *fwd[] = { "imap", "none" };
	char			*to, *m, *got;
	int64_t			 absent = 0, l;
	size_t			 i;

	if (store_clinician_add(st, prac, "Dr B", "b@nhs.example", "gp",
	    &absent, &e) != STORE_OK || identity("clinician", absent) != 0 ||
	    store_clinician_set(st, absent, "active", "0", &e) != STORE_OK) {
		ok(0, "absent clinician: %s", e != NULL ? e : "?");
		return;
	}
	if ((in = mkintake(&p)) == NULL) {
		ok(0, "intake");
		return;
	}
	l = letter_by(jo, JO, absent);
	to = reply_to(l, jo);
	m = mkmsg(JO, to, "", "For the absent doctor.\r\n");
	run(in, m, 0, to, &res);
	is_int(res.outcome, INTAKE_FILED, "absent clinician: filed");
	ok(store_reply_get(st, res.reply_id, &r, &e) == STORE_OK &&
	    r.clinician_id == 0 && r.letter_id == l,
	    "absent clinician: routed to the team (clinician 0)");
	got = mails(res.reply_id);
	is_str(got, "ack:" JO " forward:" TEAM,
	    "absent clinician: forwarded to the team address");
	free(got);
	ok(unseal(res.reply_id, "practice", prac, &rd) == AGE_OK,
	    "absent clinician: the archive opens it");
	reply_doc_free(&rd);
	free(m);
	free(to);
	intake_free(&in);

	for (i = 0; i < nitems(fwd); i++) {
		p.forward = fwd[i];
		if ((in = mkintake(&p)) == NULL) {
			ok(0, "intake forward=%s", fwd[i]);
			continue;
		}
		l = letter(jo, JO);
		to = reply_to(l, jo);
		m = mkmsg(JO, to, "", "Forwarding.\r\n");
		run(in, m, 0, to, &res);
		expect(i == 0 ? "forward=imap" : "forward=none", &res,
		    INTAKE_FILED, "", "unverified", l, jo, 0, 0, i == 0 ?
		    "ack:" JO " append:-" : "ack:" JO);
		free(m);
		free(to);
		intake_free(&in);
	}
}

/*
 * A practice whose reply addresses are at its own reply_domain: a valid
 * token files (the thread names the practice); mail with a bad token or
 * none must find the practice by that domain too.
 */
static void
test_reply_domain(struct intake *in)
{
	struct intake_result	 res;
	const char		*e = NULL;
	char			*to, *m, tok[TOKEN_BUFSZ];
	int64_t			 l;

	if (store_practice_set(st, prac, "reply_domain", "replies." DOMAIN,
	    &e) != STORE_OK) {
		ok(0, "reply_domain: %s", e);
		return;
	}
	l = letter(jo, JO);
	token_make(&tk, TOKEN_REPLY, l, jo, util_time() + 86400, tok,
	    sizeof(tok));
	xasprintf(&to, "reply+%s@replies." DOMAIN, tok);
	m = mkmsg(JO, to, "", "At the reply domain.\r\n");
	run(in, m, 0, to, &res);
	expect("reply_domain: valid token", &res, INTAKE_FILED, "",
	    "unverified", l, jo, 0, 0, "ack:" JO " forward:" CLIN);
	free(m);
	to[strlen("reply+") + 3] ^= 1;
	m = mkmsg("other@patient.test", to, "", "Bad token there.\r\n");
	run(in, m, 0, to, &res);
	is_int(res.outcome, INTAKE_QUARANTINED,
	    "reply_domain: a bad token quarantined, not refused");
	is_str(res.reason, "bad_token", "reply_domain: bad_token");
	free(m);
	free(to);
	store_practice_set(st, prac, "reply_domain", NULL, &e);
}

/* A shared family mailbox (recorded with consent): no cross-filing. */
static void
test_shared(struct intake *in)
{
	struct intake_result	 res;
	char			*ta, *tb, *cross, *m;
	int64_t			 la, lb;

	la = letter(ann, FAMILY);
	lb = letter(ben, FAMILY);
	ta = reply_to(la, ann);
	tb = reply_to(lb, ben);
	cross = reply_to(la, ben);
	m = mkmsg("The Smiths <" FAMILY ">", ta, "", "For Ann.\r\n");
	run(in, m, 0, ta, &res);
	expect("shared: Ann's token", &res, INTAKE_FILED, "", "unverified",
	    la, ann, 0, 1, "ack:" FAMILY " forward:" CLIN);
	free(m);
	m = mkmsg(FAMILY, tb, "", "For Ben.\r\n");
	run(in, m, 0, tb, &res);
	expect("shared: Ben's token", &res, INTAKE_FILED, "", "unverified",
	    lb, ben, 0, 1, "ack:" FAMILY " forward:" CLIN);
	free(m);
	m = mkmsg(FAMILY, cross, "", "Cross.\r\n");
	run(in, m, 0, cross, &res);
	expect("shared: Ann's thread, Ben's token", &res, INTAKE_QUARANTINED,
	    "unknown_thread", "unverified", 0, 0, 0, 0,
	    "contact:" FAMILY " quarantine:" TEAM);
	free(m);
	/* IMAP: the first token of the header recipients decides */
	xasprintf(&m, "From: " FAMILY "\r\nTo: %s, %s\r\nMessage-ID: "
	    "<s%d@x>\r\n\r\nFor both?\r\n", tb, ta, ++msgno);
	run(in, m, 0, NULL, &res);
	expect("shared: two tokens in To, the first", &res, INTAKE_FILED, "",
	    "unverified", lb, ben, 0, 1, "forward:" CLIN);
	free(m);
	free(ta);
	free(tb);
	free(cross);
}

/* The pool's answer, on the loop thread. */
static void
pool_done(struct intake_job *job, void *arg)
{
	struct intake_result	*out = arg;
	size_t			 i;

	for (i = 0; i < job->nrcpts; i++)
		out[i] = job->results[i];
	out[job->nrcpts].outcome = INTAKE_FILED;	/* the "done" mark */
	out[job->nrcpts].smtp_code = 1;
	intake_job_free(&job);
}

/* Keeps the loop turning (EVLOOP_ONCE) until the job is done. */
static void
pool_tick(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	(void)arg;
}

/* The LMTP pool: one message, two recipients, answered on the loop. */
static void
test_pool(void)
{
	struct intake_params	 p = params();
	struct event_base	*base;
	struct event		*tick;
	struct intake_pool	*pool = NULL;
	struct intake_job	*job;
	struct intake_result	 out[3];
	struct timeval		 tv = { 0, 20000 };
	const char		*e = NULL;
	char			*to, *bad, *m;
	int64_t			 l;
	uint64_t		 t0;

	if ((base = event_base_new()) == NULL) {
		ok(0, "event_base_new");
		return;
	}
	if (intake_pool_start(base, &p, 2, &pool, &e) != 0) {
		ok(0, "intake_pool_start: %s", e != NULL ? e : "?");
		event_base_free(base);
		return;
	}
	l = letter(jo, JO);
	to = reply_to(l, jo);
	bad = xstrdup(to);
	bad[strlen("reply+") + 5] ^= 1;
	m = mkmsg(JO, to, "", "Through the pool.\r\n");
	memset(out, 0, sizeof(out));
	job = xcalloc(1, sizeof(*job));
	job->raw = m;
	job->len = strlen(m);
	job->rcpts = xcalloc(2, sizeof(*job->rcpts));
	job->rcpts[0] = to;
	job->rcpts[1] = bad;
	job->nrcpts = 2;
	job->done = pool_done;
	job->arg = out;
	intake_pool_submit(pool, job);
	tick = event_new(base, -1, EV_PERSIST, pool_tick, NULL);
	event_add(tick, &tv);
	t0 = util_now_ms();
	while (out[2].smtp_code == 0 && util_now_ms() - t0 < 30000)
		event_base_loop(base, EVLOOP_ONCE);
	ok(out[2].smtp_code == 1, "pool: done() ran on the loop");
	is_int(out[0].outcome, INTAKE_FILED, "pool: first recipient filed");
	is_int(out[1].outcome, INTAKE_QUARANTINED,
	    "pool: second recipient quarantined");
	is_str(out[1].reason, "bad_token", "pool: second bad_token");
	is_int(intake_pool_stop(&pool, 10000), 0, "pool: stopped");
	ok(pool == NULL, "pool: freed");
	event_free(tick);
	event_base_free(base);
}

int
main(int argc, char **argv)
{
	struct intake_params	 p;
	struct intake		*in;
	const char		*dbs[] = { "intake.db" };
	char			*f;

	/* As sealpostd -P: this binary is also the sandbox's child. */
	if (argc > 1 && strcmp(argv[1], "-P") == 0)
		sandbox_child_main();

	signal(SIGPIPE, SIG_IGN);
	if (evthread_use_pthreads() != 0) {
		ok(0, "evthread_use_pthreads");
		return tap_done();
	}
	if (hash_init() != 0) {
		ok(0, "hash_init");
		return tap_done();
	}
	if ((exe = self_exe()) == NULL) {
		skip("cannot find /proc/self/exe: no sandbox, no intake");
		return tap_done();
	}
	if (tmpdir_make("sealpost-intake") == -1)
		return tap_done();
	test_red_flag_match();
	if (setup() == 0) {
		p = params();
		if ((in = mkintake(&p)) != NULL) {
			test_filed(in);
			test_auth(in);
			test_tokens(in);
			test_from(in);
			test_no_token(in);
			test_automatic(in);
			test_red_flags(in);
			test_attachments(in);
			test_attachment_limits();
			test_hostile(in);
			test_shared(in);
			test_routing();
			test_reply_domain(in);
			test_pool();
			intake_free(&in);
		} else
			ok(0, "intake_new");
	}
	if (raw != NULL)
		sqlite3_close(raw);
	store_close(&st);
	keyring_free(&kr);
	if (keypath != NULL)
		unlink(keypath);
	f = tpath("flags.txt");
	unlink(f);
	free(f);
	tmpdir_remove(dbs, nitems(dbs));
	free(dbpath);
	free(keypath);
	free(exe);
	return tap_done();
}
