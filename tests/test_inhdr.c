/*
 * test_inhdr.c - the daemon's reader of an inbound reply's header.
 *
 * Table-driven From cases (every flag, and the spoofs of TESTPLAN T17),
 * the Authentication-Results trust rules of T18 and 3.3, the token
 * candidates, the loop-prevention hints of T20, the reading rules
 * (folding, CRLF and LF, limits, NUL), timing on hostile sizes, and every
 * file of the shared MIME and reply corpora (no crash, under ASan too).
 */
#include "build.h"

#include <sys/stat.h>

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "inhdr.h"
#include "util.h"
#include "tap.h"
#include "tfile.h"

int	main(void);

#define MAXHDR		(256 * 1024)
#define TIME_LIMIT_MS	50

static struct inhdr	 H;
static const char	*err;

static int	 parse(const char *);
static int	 parse_max(const char *, size_t);
static double	 ms_since(const struct timespec *);
static void	 test_from(void);
static void	 test_sender(void);
static void	 test_ids(void);
static void	 test_rcpts(void);
static void	 test_ar_parse(void);
static void	 test_auth(void);
static void	 test_automatic(void);
static void	 test_reading(void);
static void	 test_timing(void);
static void	 test_corpus(void);
static void	 corpus_walk(const char *, size_t *, size_t *, size_t *);

/* Parse a NUL-terminated message with the default limit. */
static int
parse(const char *raw)
{
	return parse_max(raw, MAXHDR);
}

static int
parse_max(const char *raw, size_t max)
{
	err = NULL;
	return inhdr_parse(raw, strlen(raw), max, &H, &err);
}

static double
ms_since(const struct timespec *t0)
{
	struct timespec	 t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) * 1000.0 +
	    (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

/* From: one addr-spec or a flag, never a guess (TESTPLAN 3.2, T17). */
static void
test_from(void)
{
	static const struct {
		const char	*field;		/* after "From:" */
		const char	*from;		/* expected addr, "" if none */
		unsigned	 flags;
	} cases[] = {
		{ " patient@example.org", "patient@example.org", 0 },
		{ " <patient@example.org>", "patient@example.org", 0 },
		{ " Pat Smith <patient@example.org>", "patient@example.org",
		    0 },
		{ " \"Smith, Pat\" <patient@example.org>",
		    "patient@example.org", 0 },
		{ " (the patient) Pat <patient@example.org> (home)",
		    "patient@example.org", 0 },
		{ " patient@EXAMPLE.Org", "patient@example.org", 0 },
		{ " Patient.Smith@Example.ORG", "Patient.Smith@example.org",
		    0 },
		{ " \"pat.smith\"@example.org", "\"pat.smith\"@example.org",
		    0 },
		{ " Pat Q. Smith <p+tag@mail.example.co.uk>",
		    "p+tag@mail.example.co.uk", 0 },
		{ "patient@example.org", "patient@example.org", 0 },
		{ " \"patient@x.org\" <evil@y.org>", "evil@y.org", 0 },
		{ " patient@x.org <evil@y.org>", "", INHDR_FROM_UNPARSABLE },
		{ " a@x.org, b@y.org", "", INHDR_FROM_MULTIPLE },
		{ " A <a@x.org>, B <b@y.org>", "", INHDR_FROM_MULTIPLE },
		{ " g: a@x.org;", "", INHDR_FROM_GROUP },
		{ " undisclosed-recipients:;", "", INHDR_FROM_GROUP },
		{ " g: a@x.org, b@y.org;", "",
		    INHDR_FROM_GROUP | INHDR_FROM_MULTIPLE },
		{ " =?utf-8?b?cGF0aWVudEB4Lm9yZw==?=@evil.org", "",
		    INHDR_FROM_ENCODED },
		/* display names are never decoded: the addr-spec is used */
		{ " =?utf-8?b?cGF0aWVudEB4Lm9yZw==?= <evil@y.org>",
		    "evil@y.org", 0 },
		{ " \"=?utf-8?q?patient=40x.org?=\" <evil@y.org>",
		    "evil@y.org", 0 },
		{ " =?utf-8?q?Zo=C3=AB_Smith?= <zoe@example.org>",
		    "zoe@example.org", 0 },
		{ " P\xc3\xa4t <patient@example.org>", "patient@example.org",
		    0 },
		{ " <=?utf-8?b?cGF0aWVudEB4Lm9yZw==?=@evil.org>", "",
		    INHDR_FROM_ENCODED },
		{ " \"=?utf-8?b?eA==?=\"@evil.org", "", INHDR_FROM_ENCODED },
		{ " p\xc3\xa4t@example.org", "", INHDR_FROM_UNPARSABLE },
		{ " patient@ex\xc3\xa4mple.org", "", INHDR_FROM_UNPARSABLE },
		{ " <patient@example.org", "", INHDR_FROM_UNPARSABLE },
		{ " patient@example.org>", "", INHDR_FROM_UNPARSABLE },
		{ " <<patient@example.org>>", "", INHDR_FROM_UNPARSABLE },
		{ " patient(c)@example.org", "", INHDR_FROM_UNPARSABLE },
		{ " <patient@(c)example.org>", "", INHDR_FROM_UNPARSABLE },
		{ " patient @ example.org", "", INHDR_FROM_UNPARSABLE },
		{ " patient@[192.0.2.1]", "", INHDR_FROM_UNPARSABLE },
		{ " patient", "", INHDR_FROM_UNPARSABLE },
		{ " Pat Smith", "", INHDR_FROM_UNPARSABLE },
		{ "", "", INHDR_FROM_UNPARSABLE },
		{ " a@x.org,", "", INHDR_FROM_UNPARSABLE },
		{ " a@x.org;", "", INHDR_FROM_UNPARSABLE },
		{ " a@@x.org", "", INHDR_FROM_UNPARSABLE },
		{ " a@x..org", "", INHDR_FROM_UNPARSABLE },
		{ " .a@x.org", "", INHDR_FROM_UNPARSABLE },
		{ " a@-x.org", "", INHDR_FROM_UNPARSABLE },
		{ " a@x_y.org", "", INHDR_FROM_UNPARSABLE },
		{ " \"a@b\"@x.org", "", INHDR_FROM_UNPARSABLE },
		{ " \"a b\"@x.org", "", INHDR_FROM_UNPARSABLE },
		{ " \"unterminated <a@x.org>", "", INHDR_FROM_UNPARSABLE },
		{ " (unterminated <a@x.org>", "", INHDR_FROM_UNPARSABLE },
		{ " Smith, Pat <a@x.org>", "", INHDR_FROM_UNPARSABLE },
		{ " a\x01@x.org", "", INHDR_FROM_UNPARSABLE },
		{ " a@x.org\\", "", INHDR_FROM_UNPARSABLE },
		{ " Pat\r<evil@y.org> <a@x.org>", "", INHDR_FROM_UNPARSABLE },
		{ " a@x.org\r", "", INHDR_FROM_UNPARSABLE },
	};
	char	 raw[512];
	size_t	 i;

	for (i = 0; i < nitems(cases); i++) {
		snprintf(raw, sizeof raw, "From:%s\r\nTo: r@p.example\r\n"
		    "\r\nbody\r\n", cases[i].field);
		if (!ok(parse(raw) == 0, "from %zu parses", i))
			continue;
		if (!ok(strcmp(H.from, cases[i].from) == 0,
		    "from %zu: [%s] -> \"%s\"", i, cases[i].field,
		    cases[i].from))
			diag("  got \"%s\"", H.from);
		is_int(H.from_flags, cases[i].flags, "from %zu: flags %s", i,
		    inhdr_from_problem(cases[i].flags));
	}

	ok(parse("To: r@p.example\n\nhi\n") == 0 &&
	    H.from_flags == INHDR_FROM_MISSING && H.from[0] == '\0',
	    "no From: MISSING");
	ok(parse("From: a@x.org\nFrom: a@x.org\n\n") == 0 &&
	    H.from_flags == INHDR_FROM_MULTIPLE && H.from[0] == '\0',
	    "two From fields, even equal: MULTIPLE");
	ok(parse("FROM: a@x.org\nfrom: b@y.org\n\n") == 0 &&
	    H.from_flags == INHDR_FROM_MULTIPLE, "field names ignore case");
	ok(parse("From : a@x.org\nFrom: b@y.org\n\n") == 0 &&
	    H.from_flags == INHDR_FROM_MULTIPLE,
	    "\"From :\" (obs WSP before the colon) counts as a From field");
	ok(parse("fRoM: Pat\r\n <patient@Example.org>\r\n\r\n") == 0 &&
	    strcmp(H.from, "patient@example.org") == 0 && H.from_flags == 0,
	    "folded From");
	is_str(inhdr_from_problem(INHDR_FROM_ENCODED),
	    "encoded-word in From", "problem name: encoded");
	is_str(inhdr_from_problem(INHDR_FROM_MISSING | INHDR_FROM_GROUP),
	    "no From", "problem name: the first flag");
	is_str(inhdr_from_problem(0), "none", "problem name: none");
}

/* Sender: the same address or a flag. */
static void
test_sender(void)
{
	ok(parse("From: Pat <pat@Example.org>\nSender: pat@EXAMPLE.org\n\n")
	    == 0 && H.from_flags == 0 &&
	    strcmp(H.sender, "pat@example.org") == 0,
	    "Sender equal to From, domain case aside: no flag");
	ok(parse("From: pat@example.org\nSender: Pat@example.org\n\n") == 0 &&
	    H.from_flags == INHDR_SENDER_DIFFERS &&
	    strcmp(H.from, "pat@example.org") == 0,
	    "Sender local part in another case: SENDER_DIFFERS, From kept");
	ok(parse("From: pat@example.org\nSender: sec@example.org\n\n") == 0 &&
	    H.from_flags == INHDR_SENDER_DIFFERS,
	    "Sender another address: SENDER_DIFFERS");
	ok(parse("From: pat@example.org\nSender: a@x.org, b@y.org\n\n") == 0 &&
	    H.from_flags == INHDR_SENDER_DIFFERS && H.sender[0] == '\0',
	    "Sender unreadable: SENDER_DIFFERS");
	ok(parse("From: pat@example.org\nSender: pat@example.org\n"
	    "Sender: pat@example.org\n\n") == 0 &&
	    H.from_flags == INHDR_SENDER_DIFFERS, "two Sender fields");
	ok(parse("From: a@x.org, b@y.org\nSender: a@x.org\n\n") == 0 &&
	    H.from_flags == (INHDR_FROM_MULTIPLE | INHDR_SENDER_DIFFERS) &&
	    H.from[0] == '\0', "Sender with an unusable From");
	is_str(inhdr_from_problem(INHDR_SENDER_DIFFERS),
	    "Sender differs from From", "problem name: sender");
}

/* Return-Path, Message-ID, In-Reply-To, References. */
static void
test_ids(void)
{
	char	*raw, *p;
	size_t	 i, sz = 64 * 1024;

	ok(parse("Return-Path: <>\nFrom: a@x.org\n\n") == 0 &&
	    H.return_path_null == 1, "Return-Path: <>");
	ok(parse("Return-Path: < > (bounce)\nFrom: a@x.org\n\n") == 0 &&
	    H.return_path_null == 1, "Return-Path: < > with CFWS");
	ok(parse("Return-Path: <a@x.org>\nFrom: a@x.org\n\n") == 0 &&
	    H.return_path_null == 0, "Return-Path with an address");
	ok(parse("Return-Path: <a@x.org>\nReturn-Path: <>\n\n") == 0 &&
	    H.return_path_null == 0, "the topmost Return-Path counts");

	ok(parse("Message-ID: <abc.123@mail.example>\n"
	    "In-Reply-To: <r+tok@p.example> <other@x>\n\n") == 0 &&
	    strcmp(H.message_id, "<abc.123@mail.example>") == 0 &&
	    strcmp(H.in_reply_to, "<r+tok@p.example>") == 0,
	    "Message-ID and the first In-Reply-To id");
	ok(parse("Message-ID: (c) <a b@x>\n\n") == 0 &&
	    H.message_id[0] == '\0', "Message-ID with a space: none");
	ok(parse("References: <1@x>\n <2@x>\t<3@x>\n\n") == 0 &&
	    H.nrefs == 3 && strcmp(H.refs[0], "<1@x>") == 0 &&
	    strcmp(H.refs[2], "<3@x>") == 0, "References, folded");

	raw = xmalloc(sz);
	p = raw + snprintf(raw, sz, "References:");
	for (i = 1; i <= 100; i++)
		p += snprintf(p, sz - (size_t)(p - raw), "\r\n <%zu@p.example>",
		    i);
	snprintf(p, sz - (size_t)(p - raw), "\r\n\r\n");
	ok(parse(raw) == 0 && H.nrefs == INHDR_MAX_REFS,
	    "References: 100 ids, %d kept", INHDR_MAX_REFS);
	is_str(H.refs[0], "<69@p.example>", "References: the first kept is "
	    "the 69th");
	is_str(H.refs[INHDR_MAX_REFS - 1], "<100@p.example>",
	    "References: the last kept is the last");
	free(raw);
}

/* Token candidates: Delivered-To, X-Original-To, To, Cc, in that order. */
static void
test_rcpts(void)
{
	static const char raw[] =
	    "Cc: c1@P.example, \"Dr X\" <c2@p.example>\r\n"
	    "To: Practice <r+tok1@Replies.P.example>,\r\n"
	    "\tother@x.org\r\n"
	    "X-Original-To: orig@p.example\r\n"
	    "Delivered-To: top@p.example\r\n"
	    "Received: from x\r\n"
	    "Delivered-To: second@p.example\r\n"
	    "From: a@x.org\r\n\r\n";
	static const struct {
		enum inhdr_rcpt_src	 src;
		const char		*addr;
	} want[] = {
		{ INHDR_DELIVERED_TO, "top@p.example" },
		{ INHDR_DELIVERED_TO, "second@p.example" },
		{ INHDR_ORIGINAL_TO, "orig@p.example" },
		{ INHDR_TO, "r+tok1@replies.p.example" },
		{ INHDR_TO, "other@x.org" },
		{ INHDR_CC, "c1@p.example" },
		{ INHDR_CC, "c2@p.example" },
	};
	char	*big, *p;
	size_t	 i, sz = 16 * 1024;

	ok(parse(raw) == 0, "rcpts: parses");
	is_int(H.nrcpts, nitems(want), "rcpts: count");
	for (i = 0; i < nitems(want) && i < H.nrcpts; i++) {
		is_int(H.rcpts[i].src, want[i].src, "rcpt %zu: source", i);
		is_str(H.rcpts[i].addr, want[i].addr, "rcpt %zu: address", i);
	}

	ok(parse("To: Smith, Pat <r+a@p.example>, M\xc3\xbcller "
	    "<r+b@p.example>, (c) junk junk, g: r+c@p.example;, "
	    "undisclosed-recipients:;\n\n") == 0 && H.nrcpts == 3 &&
	    strcmp(H.rcpts[0].addr, "r+a@p.example") == 0 &&
	    strcmp(H.rcpts[1].addr, "r+b@p.example") == 0 &&
	    strcmp(H.rcpts[2].addr, "r+c@p.example") == 0,
	    "To: odd members skipped, groups and 8-bit names read");
	ok(parse("To: a@x.org <b@y.org>, c@z.org\n\n") == 0 &&
	    H.nrcpts == 1 && strcmp(H.rcpts[0].addr, "c@z.org") == 0,
	    "To: an unreadable member does not hide the next");

	big = xmalloc(sz);
	p = big + snprintf(big, sz, "Delivered-To: d@p.example\nTo: ");
	for (i = 0; i < 40; i++)
		p += snprintf(p, sz - (size_t)(p - big), "%st%zu@p.example",
		    i ? ", " : "", i);
	snprintf(p, sz - (size_t)(p - big), "\nCc: c@p.example\n\n");
	ok(parse(big) == 0 && H.nrcpts == INHDR_MAX_RCPTS &&
	    H.rcpts[0].src == INHDR_DELIVERED_TO &&
	    strcmp(H.rcpts[INHDR_MAX_RCPTS - 1].addr, "t30@p.example") == 0,
	    "To of 40: %d kept, Delivered-To first", INHDR_MAX_RCPTS);
	free(big);
}

/* RFC 8601 fields as read. */
static void
test_ar_parse(void)
{
	ok(parse("Authentication-Results: MX.Example.ORG 1;\r\n"
	    "  spf=pass smtp.mailfrom=x.org;\r\n"
	    "  dkim=pass (good signature) header.d=X.org header.s=s1;\r\n"
	    "  dmarc=pass (p=none) header.from=x.ORG\r\n\r\n") == 0 &&
	    H.nar == 1, "A-R: one field");
	is_str(H.ar[0].authserv_id, "mx.example.org",
	    "A-R: authserv-id lower-cased, version skipped");
	is_int(H.ar[0].dmarc, INHDR_RES_PASS, "A-R: dmarc=pass");
	is_str(H.ar[0].dmarc_from, "x.org", "A-R: header.from");
	is_int(H.ar[0].dkim, INHDR_RES_PASS, "A-R: dkim=pass");
	is_str(H.ar[0].dkim_domain, "x.org", "A-R: header.d");

	ok(parse("Authentication-Results: \"mx (quoted)\"; dkim=fail "
	    "reason=\"bad; sig\" header.d=a.org; dkim=pass header.i=u@b.org;"
	    " dkim=pass header.d=c.org\n\n") == 0 &&
	    strcmp(H.ar[0].authserv_id, "mx (quoted)") != 0,
	    "A-R: a quoted authserv-id with a space is not kept as is");
	ok(H.ar[0].dkim == INHDR_RES_PASS &&
	    strcmp(H.ar[0].dkim_domain, "b.org") == 0,
	    "A-R: quoted reason with ';', the first passing dkim, header.i");

	ok(parse("Authentication-Results: \"mx.example.org\"; "
	    "dmarc=fail (p=reject (nested; comment)) header.from=x.org\n\n")
	    == 0 && strcmp(H.ar[0].authserv_id, "mx.example.org") == 0 &&
	    H.ar[0].dmarc == INHDR_RES_FAIL &&
	    strcmp(H.ar[0].dmarc_from, "x.org") == 0,
	    "A-R: quoted authserv-id, nested comment with ';'");
	ok(parse("Authentication-Results: mx.example.org; none\n\n") == 0 &&
	    H.nar == 1 && H.ar[0].dmarc == INHDR_RES_NONE &&
	    H.ar[0].dkim == INHDR_RES_NONE, "A-R: no-result \"none\"");
	ok(parse("Authentication-Results: mx.example.org;\n dkim=policy "
	    "header.d=x.org; dmarc=temperror\n\n") == 0 &&
	    H.ar[0].dkim == INHDR_RES_FAIL &&
	    H.ar[0].dmarc == INHDR_RES_TEMPERROR,
	    "A-R: dkim=policy is a failure, dmarc=temperror");
	ok(parse("Authentication-Results: m; dmarc=permerror; dkim=neutral"
	    "\n\n") == 0 && H.ar[0].dmarc == INHDR_RES_PERMERROR &&
	    H.ar[0].dkim == INHDR_RES_OTHER, "A-R: permerror, neutral");
	ok(parse("Authentication-Results: spf=pass (sender IP is 192.0.2.1)"
	    " smtp.mailfrom=x.org; dkim=none (message not signed)"
	    " header.d=none;dmarc=bestguesspass action=none"
	    " header.from=x.org;compauth=pass reason=109\n\n") == 0 &&
	    H.nar == 1 && H.ar[0].authserv_id[0] == '\0',
	    "A-R: Microsoft 365 without authserv-id");
	ok(H.ar[0].dmarc == INHDR_RES_NONE && H.ar[0].dkim == INHDR_RES_NONE,
	    "A-R: dmarc=bestguesspass is no pass");
	ok(parse("Authentication-Results: dmarc=pass header.from=x.org\n\n")
	    == 0 && H.ar[0].authserv_id[0] == '\0' &&
	    H.ar[0].dmarc == INHDR_RES_PASS,
	    "A-R: a first resinfo without authserv-id is read");
	ok(parse("Authentication-Results: mx; dkim/1=pass header . d=x.org;"
	    " junk; dmarc = pass\n\n") == 0 && H.ar[0].dkim ==
	    INHDR_RES_PASS && H.ar[0].dmarc == INHDR_RES_PASS,
	    "A-R: method version, spaces around =, a junk resinfo");
}

/* Which A-R is trusted, and the verdict (TESTPLAN T18, 3.3, 3.4). */
static void
test_auth(void)
{
	char	 why[256];
	static const char forged[] =
	    "Authentication-Results: mx.p.example; dmarc=fail "
	    "header.from=gmail.com\r\n"
	    "Received: from mail-x.google.com by mx.p.example\r\n"
	    "Authentication-Results: mx.p.example; dmarc=pass "
	    "header.from=gmail.com\r\n"
	    "From: Pat <pat@gmail.com>\r\n\r\n";

	ok(parse(forged) == 0 && H.nar == 2, "forged: two A-R fields");
	is_int(inhdr_auth(&H, "mx.p.example", 0, why, sizeof why),
	    INHDR_AUTH_FAIL, "forged pass below the trusted fail: ignored");
	is_str(why, "dmarc=fail by mx.p.example", "why: fail");
	is_int(inhdr_auth(&H, "MX.P.Example", 0, NULL, 0), INHDR_AUTH_FAIL,
	    "authserv-id compared without case, why may be NULL");
	is_int(inhdr_auth(&H, "other.example", 0, why, sizeof why),
	    INHDR_AUTH_NONE, "no field with our authserv-id: none");
	is_str(why, "no trusted Authentication-Results", "why: none");
	is_int(inhdr_auth(&H, NULL, 0, why, sizeof why), INHDR_AUTH_NONE,
	    "no id and not topmost: none");
	is_int(inhdr_auth(&H, "", 0, why, sizeof why), INHDR_AUTH_NONE,
	    "empty id and not topmost: none");

	ok(parse("Authentication-Results: mx.p.example; dmarc=pass "
	    "header.from=gmail.com\r\n"
	    "Authentication-Results: mx.p.example; dmarc=fail\r\n"
	    "From: pat@gmail.com\r\n\r\n") == 0, "trusted pass above forged "
	    "fail: parses");
	is_int(inhdr_auth(&H, "mx.p.example", 0, why, sizeof why),
	    INHDR_AUTH_PASS, "trusted pass above a forged fail: pass");
	is_str(why, "dmarc=pass by mx.p.example", "why: pass");

	ok(parse("Authentication-Results: other.example; dmarc=fail\r\n"
	    "Authentication-Results: mx.p.example; dmarc=pass\r\n"
	    "Authentication-Results: mx.p.example; dmarc=fail\r\n"
	    "From: pat@gmail.com\r\n\r\n") == 0 &&
	    inhdr_auth(&H, "mx.p.example", 0, why, sizeof why) ==
	    INHDR_AUTH_PASS, "several A-R: the topmost with our id decides");
	is_int(inhdr_auth(&H, NULL, 1, why, sizeof why), INHDR_AUTH_FAIL,
	    "topmost: the first field whatever its id");

	ok(parse("Authentication-Results: spf=pass (sender IP is 192.0.2.1)"
	    " smtp.mailfrom=outlook.com; dkim=pass (signature was verified)"
	    " header.d=outlook.com;dmarc=pass action=none"
	    " header.from=outlook.com;compauth=pass reason=100\r\n"
	    "Authentication-Results: mx.p.example; dmarc=fail\r\n"
	    "From: pat@outlook.com\r\n\r\n") == 0, "M365: parses");
	is_int(inhdr_auth(&H, NULL, 1, why, sizeof why), INHDR_AUTH_PASS,
	    "M365 without authserv-id, trusted by position");
	is_int(inhdr_auth(&H, "outlook.com", 0, why, sizeof why),
	    INHDR_AUTH_NONE, "M365 without authserv-id: no id to match");

	ok(parse("Authentication-Results: spf=pass smtp.mailfrom=x.org;"
	    " dkim=none; dmarc=bestguesspass action=none header.from=x.org"
	    "\r\nFrom: a@x.org\r\n\r\n") == 0 &&
	    inhdr_auth(&H, NULL, 1, why, sizeof why) == INHDR_AUTH_NONE,
	    "dmarc=bestguesspass: none");

	ok(parse("Authentication-Results: hotmail.com; dkim=pass "
	    "(signature was verified) header.d=gmail.com;x-hmca=pass "
	    "header.id=pat@gmail.com\r\nFrom: pat@gmail.com\r\n\r\n") == 0,
	    "hotmail.com: parses");
	is_int(inhdr_auth(&H, "hotmail.com", 0, why, sizeof why),
	    INHDR_AUTH_PASS, "hotmail.com authserv-id, aligned dkim: pass");
	is_str(why, "dkim=pass header.d=gmail.com by hotmail.com",
	    "why: dkim");

	/* DKIM alignment */
	ok(parse("Authentication-Results: mx; dkim=pass header.d=x.org\r\n"
	    "From: a@mail.eu.x.org\r\n\r\n") == 0 &&
	    inhdr_auth(&H, "mx", 0, why, sizeof why) == INHDR_AUTH_PASS,
	    "dkim d= a parent of the From domain: pass");
	ok(parse("Authentication-Results: mx; dkim=pass header.d=ax.org\r\n"
	    "From: a@x.org\r\n\r\n") == 0 &&
	    inhdr_auth(&H, "mx", 0, why, sizeof why) == INHDR_AUTH_NONE,
	    "dkim d=ax.org for x.org: none (suffix is not a parent)");
	ok(parse("Authentication-Results: mx; dkim=pass header.d=x.org\r\n"
	    "From: a@xx.org\r\n\r\n") == 0 &&
	    inhdr_auth(&H, "mx", 0, why, sizeof why) == INHDR_AUTH_NONE,
	    "dkim d=x.org for xx.org: none");
	ok(parse("Authentication-Results: mx; dkim=pass header.d=evil.org\r\n"
	    "From: a@x.org\r\n\r\n") == 0 &&
	    inhdr_auth(&H, "mx", 0, why, sizeof why) == INHDR_AUTH_NONE,
	    "dkim for an unrelated domain: none");
	is_str(why, "no dmarc or aligned dkim pass by mx", "why: no verdict");
	ok(parse("Authentication-Results: mx; dkim=pass header.d=sub.x.org\r\n"
	    "From: a@x.org\r\n\r\n") == 0 &&
	    inhdr_auth(&H, "mx", 0, why, sizeof why) == INHDR_AUTH_NONE,
	    "dkim d= a subdomain of the From domain: none");
	ok(parse("Authentication-Results: mx; dkim=pass header.d=org\r\n"
	    "From: a@x.org\r\n\r\n") == 0 &&
	    inhdr_auth(&H, "mx", 0, why, sizeof why) == INHDR_AUTH_NONE,
	    "dkim d= a top-level domain: none");
	ok(parse("Authentication-Results: mx; dkim=fail header.d=x.org\r\n"
	    "From: a@x.org\r\n\r\n") == 0 &&
	    inhdr_auth(&H, "mx", 0, why, sizeof why) == INHDR_AUTH_NONE,
	    "dkim=fail, no dmarc: none");
	ok(parse("Authentication-Results: mx; dkim=pass header.d=x.org\r\n"
	    "From: a@x.org, b@x.org\r\n\r\n") == 0 &&
	    inhdr_auth(&H, "mx", 0, why, sizeof why) == INHDR_AUTH_NONE,
	    "dkim=pass but no usable From: none");

	ok(parse("Authentication-Results: mx; dmarc=temperror\r\n"
	    "From: a@x.org\r\n\r\n") == 0 &&
	    inhdr_auth(&H, "mx", 0, why, sizeof why) ==
	    INHDR_AUTH_TEMPERROR, "dmarc=temperror");
	is_str(inhdr_auth_name(INHDR_AUTH_TEMPERROR), "temperror",
	    "name: temperror");
	ok(parse("Authentication-Results: mx; dmarc=fail; dkim=pass "
	    "header.d=x.org\r\nFrom: a@x.org\r\n\r\n") == 0 &&
	    inhdr_auth(&H, "mx", 0, why, sizeof why) == INHDR_AUTH_FAIL,
	    "dmarc=fail wins over an aligned dkim pass");
	ok(parse("Authentication-Results: mx; dmarc=pass header.from=y.org\r\n"
	    "From: a@x.org\r\n\r\n") == 0 &&
	    inhdr_auth(&H, "mx", 0, why, sizeof why) == INHDR_AUTH_NONE,
	    "dmarc=pass for another header.from: none");
	ok(parse("From: a@x.org\r\n\r\n") == 0 &&
	    inhdr_auth(&H, "mx", 1, why, sizeof why) == INHDR_AUTH_NONE,
	    "no A-R at all: none");
	is_str(inhdr_auth_name(INHDR_AUTH_PASS), "pass", "name: pass");
	is_str(inhdr_auth_name(INHDR_AUTH_FAIL), "fail", "name: fail");
	is_str(inhdr_auth_name(INHDR_AUTH_NONE), "none", "name: none");
}

/* RFC 3834 loop prevention (TESTPLAN T20). */
static void
test_automatic(void)
{
	static const struct {
		const char	*hdr;
		int		 automatic;
		const char	*why;
	} cases[] = {
		{ "Auto-Submitted: auto-replied\n", 1, "Auto-Submitted" },
		{ "Auto-Submitted: Auto-Generated (vacation)\n", 1,
		    "Auto-Submitted" },
		{ "Auto-Submitted: no\n", 0, "" },
		{ "Auto-Submitted: No (a person)\n", 0, "" },
		{ "Precedence: bulk\n", 1, "Precedence" },
		{ "Precedence: List\n", 1, "Precedence" },
		{ "Precedence: junk\n", 1, "Precedence" },
		{ "Precedence: first-class\n", 0, "" },
		{ "List-Id: <patients.p.example>\n", 1, "List-Id" },
		{ "List-Unsubscribe: <mailto:u@x>\n", 1, "List-Id" },
		{ "X-Autoreply: yes\n", 1, "autoreply header" },
		{ "X-Autorespond: vacation\n", 1, "autoreply header" },
		{ "X-Auto-Response-Suppress: All\n", 1, "autoreply header" },
		{ "X-Auto-Response-Suppress: DR, AutoReply\n", 1,
		    "autoreply header" },
		{ "X-Auto-Response-Suppress: OOF\n", 0, "" },
		{ "Content-Type: multipart/report; "
		    "report-type=delivery-status\n", 1, "delivery report" },
		{ "Content-Type: Multipart / Report\n", 1,
		    "delivery report" },
		{ "Content-Type: multipart/mixed\n", 0, "" },
		{ "Return-Path: <>\n", 1, "null Return-Path" },
		{ "X-Other: 1\n", 0, "" },
	};
	static const struct {
		const char	*from;
		int		 automatic;
	} froms[] = {
		{ "MAILER-DAEMON@x.org", 1 },
		{ "postmaster@x.org", 1 },
		{ "No-Reply@x.org", 1 },
		{ "noreply@x.org", 1 },
		{ "noreply2@x.org", 0 },
		{ "pat@x.org", 0 },
	};
	char		 raw[512];
	const char	*why;
	size_t		 i;

	for (i = 0; i < nitems(cases); i++) {
		snprintf(raw, sizeof raw, "From: pat@x.org\n%s\nbody\n",
		    cases[i].hdr);
		why = NULL;
		ok(parse(raw) == 0 && inhdr_is_automatic(&H, &why) ==
		    cases[i].automatic && why != NULL &&
		    strcmp(why, cases[i].why) == 0,
		    "automatic %zu: %.*s -> %d", i,
		    (int)strcspn(cases[i].hdr, "\n"), cases[i].hdr,
		    cases[i].automatic);
	}
	for (i = 0; i < nitems(froms); i++) {
		snprintf(raw, sizeof raw, "From: X <%s>\n\n", froms[i].from);
		ok(parse(raw) == 0 && inhdr_is_automatic(&H, NULL) ==
		    froms[i].automatic, "automatic From %s -> %d",
		    froms[i].from, froms[i].automatic);
	}
	ok(parse("From: pat@x.org\nAuto-Submitted: no\nX-Foo: bar\n\n") == 0 &&
	    strcmp(H.auto_submitted, "no") == 0 &&
	    inhdr_is_automatic(&H, &why) == 0,
	    "Auto-Submitted: no is a person");
}

/* Unfolding, line ends, limits, NUL. */
static void
test_reading(void)
{
	static const char crlf[] = "From: Pat\r\n\t<pat@x.org>\r\nTo: r@p.ex"
	    "ample\r\n\r\nFrom: evil@y.org\r\n";
	static const char lf[] = "From: Pat\n\t<pat@x.org>\nTo: r@p.ex"
	    "ample\n\nFrom: evil@y.org\n";
	char	 nul[] = "From: pat@x.org\nX-A: a\0b\n\nbody";
	char	 nulbody[] = "From: pat@x.org\n\nbo\0dy";
	int	 r;

	ok(parse(crlf) == 0 && strcmp(H.from, "pat@x.org") == 0 &&
	    H.from_flags == 0 &&
	    H.header_len == (size_t)(strstr(crlf, "\r\n\r\n") - crlf) + 2,
	    "CRLF: folded From, body not read, header_len %zu", H.header_len);
	ok(parse(lf) == 0 && strcmp(H.from, "pat@x.org") == 0 &&
	    H.from_flags == 0 &&
	    H.header_len == (size_t)(strstr(lf, "\n\n") - lf) + 1,
	    "LF: the same, header_len %zu", H.header_len);
	ok(parse("From: pat@x.org\r\nTo: r@p.example") == 0 &&
	    strcmp(H.from, "pat@x.org") == 0 && H.nrcpts == 1 &&
	    strcmp(H.rcpts[0].addr, "r@p.example") == 0,
	    "header-only message ending at EOF without a line end");
	ok(parse("") == 0 && H.from_flags == INHDR_FROM_MISSING &&
	    H.header_len == 0, "empty message: no From");
	ok(parse("\r\nFrom: pat@x.org\r\n") == 0 &&
	    H.from_flags == INHDR_FROM_MISSING, "empty header section");
	ok(parse(">From pat@x.org\nFrom pat@x.org Mon\n From: x@y.org\n"
	    "From: pat@x.org\n\n") == 0 && strcmp(H.from, "pat@x.org") == 0 &&
	    H.from_flags == 0, "non-field lines and a stray continuation "
	    "skipped");

	ok(parse_max("From: pat@x.org\nX: 0123456789\n\nbody", 30) == 0 &&
	    H.header_len == 30, "header exactly at the limit");
	r = parse_max("From: pat@x.org\nX: 01234567890\n\nbody", 30);
	ok(r == -1 && err != NULL &&
	    strcmp(err, "header section too large") == 0,
	    "header one byte over the limit: %s", err ? err : "(null)");
	ok(parse_max("From: pat@x.org\nX: 0123456789\nY: 1\n", 30) == -1 &&
	    strcmp(err, "header section too large") == 0,
	    "no end within the limit");
	ok(parse_max("From: pat@x.org\nX: 0123456789", 30) == 0,
	    "header-only message within the limit, no end but EOF");
	ok(parse_max("From: pat@x.org\n\nbody", SIZE_MAX) == 0 &&
	    strcmp(H.from, "pat@x.org") == 0, "limit SIZE_MAX");
	err = NULL;
	r = inhdr_parse(nul, sizeof nul - 1, MAXHDR, &H, &err);
	ok(r == -1 && err != NULL && strstr(err, "NUL") != NULL,
	    "NUL in the header: %s", err ? err : "(null)");
	ok(inhdr_parse(nulbody, sizeof nulbody - 1, MAXHDR, &H, &err) == 0 &&
	    strcmp(H.from, "pat@x.org") == 0, "NUL in the body: not read");
}

/* Hostile sizes stay linear (the brief: each under 50 ms). */
static void
test_timing(void)
{
	struct timespec	 t0;
	size_t		 sz = 4 * 1024 * 1024, i, len;
	char		*raw, *p;
	double		 ms;
	int		 r;

	raw = xmalloc(sz);
	/* 1 MiB of fields, with a folded 512 KiB From of words */
	p = raw + snprintf(raw, sz, "From: Pat");
	for (i = 0; i < 512 * 1024 / 8; i++)
		p += snprintf(p, 9, "\r\n word");
	p += snprintf(p, 64, " <pat@x.org>\r\n");
	while ((size_t)(p - raw) < 1024 * 1024)
		p += snprintf(p, 64, "X-Filler: (%07zu) =?x?q?y?=\r\n",
		    (size_t)(p - raw));
	p += snprintf(p, 16, "\r\nbody");
	len = (size_t)(p - raw);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	r = inhdr_parse(raw, len, 2 * 1024 * 1024, &H, &err);
	ms = ms_since(&t0);
	ok(r == 0 && strcmp(H.from, "pat@x.org") == 0 &&
	    H.header_len > 1024 * 1024, "1 MiB header parses");
	ok(ms < TIME_LIMIT_MS, "1 MiB header in %.1f ms (< %d)", ms,
	    TIME_LIMIT_MS);

	/* 100,000 addresses in To, and the same in an A-R and References */
	p = raw + snprintf(raw, sz, "From: pat@x.org\r\nTo: ");
	for (i = 0; i < 100000; i++)
		p += snprintf(p, 40, "%sN <a%zu@p.example>", i ? ",\r\n " : "",
		    i);
	p += snprintf(p, 64, "\r\nCc: c@p.example\r\nReferences: ");
	for (i = 0; i < 20000; i++)
		p += snprintf(p, 40, " <%zu@p.example>", i);
	p += snprintf(p, 64, "\r\nAuthentication-Results: mx");
	for (i = 0; i < 20000; i++)
		p += snprintf(p, 40, "; dkim=fail header.d=x%zu.org", i);
	p += snprintf(p, 16, "\r\n\r\n");
	len = (size_t)(p - raw);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	r = inhdr_parse(raw, len, sz, &H, &err);
	ms = ms_since(&t0);
	ok(r == 0 && H.nrcpts == INHDR_MAX_RCPTS &&
	    strcmp(H.rcpts[31].addr, "a31@p.example") == 0 &&
	    H.nrefs == INHDR_MAX_REFS &&
	    strcmp(H.refs[INHDR_MAX_REFS - 1], "<19999@p.example>") == 0 &&
	    H.ar[0].dkim == INHDR_RES_FAIL &&
	    strcmp(H.ar[0].dkim_domain, "x0.org") == 0,
	    "100,000-address To (%zu bytes) parses", len);
	ok(ms < TIME_LIMIT_MS, "100,000-address To in %.1f ms (< %d)", ms,
	    TIME_LIMIT_MS);

	/* many unterminated comments and quotes: no rescans */
	memset(raw, '(', sz);
	memcpy(raw, "From: ", 6);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	r = inhdr_parse(raw, 1024 * 1024, 2 * 1024 * 1024, &H, &err);
	ms = ms_since(&t0);
	ok(r == 0 && H.from_flags == INHDR_FROM_UNPARSABLE && ms <
	    TIME_LIMIT_MS, "1 MiB of \"(\" in From: unparsable in %.1f ms",
	    ms);
	free(raw);
}

static void
corpus_walk(const char *dir, size_t *files, size_t *parsed, size_t *froms)
{
	struct dirent	*de;
	struct stat	 st;
	DIR		*d;
	char		*p, *raw;
	size_t		 len;

	if ((d = opendir(dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		xasprintf(&p, "%s/%s", dir, de->d_name);
		if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
			corpus_walk(p, files, parsed, froms);
		else if (S_ISREG(st.st_mode) &&
		    (raw = read_file(p, &len)) != NULL) {
			(*files)++;
			if (inhdr_parse(raw, len, MAXHDR, &H, &err) == 0) {
				(*parsed)++;
				if (H.from[0] != '\0')
					(*froms)++;
				(void)inhdr_auth(&H, "mx.google.com", 0, NULL,
				    0);
				(void)inhdr_is_automatic(&H, NULL);
			}
			free(raw);
		}
		free(p);
	}
	closedir(d);
}

/* Real headers: every corpus file, and a few known From values. */
static void
test_corpus(void)
{
	static const struct {
		const char	*file;
		const char	*from;
	} known[] = {
		{ "replies/talon/tests/fixtures/standard_replies/gmail.eml",
		    "xxx@gmail.com" },
		{ "replies/talon/tests/fixtures/standard_replies/aol.eml",
		    "xxx@aol.com" },
		{ "mime/mimekit/UnitTests/TestData/dkim/gmail.msg",
		    "jeff.stedfast@gmail.com" },
	};
	char		*root, *dir, *path, *raw, why[256];
	size_t		 files = 0, parsed = 0, froms = 0, i, len;
	int		 r;

	root = srcdir_file("../shared/corpora");
	for (i = 0; i < 2; i++) {
		xasprintf(&dir, "%s/%s", root, i == 0 ? "mime" : "replies");
		corpus_walk(dir, &files, &parsed, &froms);
		free(dir);
	}
	if (files == 0) {
		skip("corpora not found at %s", root);
		free(root);
		return;
	}
	ok(parsed > 0 && froms > 0, "corpora: %zu files, %zu parsed, "
	    "%zu with a usable From, no crash", files, parsed, froms);
	for (i = 0; i < nitems(known); i++) {
		xasprintf(&path, "%s/%s", root, known[i].file);
		if ((raw = read_file(path, &len)) == NULL) {
			skip("%s absent", known[i].file);
			free(path);
			continue;
		}
		r = inhdr_parse(raw, len, MAXHDR, &H, &err);
		ok(r == 0 && strcmp(H.from, known[i].from) == 0 &&
		    H.from_flags == 0,
		    "corpus %s: From %s (got \"%s\")", known[i].file,
		    known[i].from, H.from);
		if (i == 2)
			ok(inhdr_auth(&H, "mx.google.com", 0, why,
			    sizeof why) == INHDR_AUTH_PASS,
			    "corpus gmail.msg: mx.google.com dkim: %s", why);
		free(raw);
		free(path);
	}
	free(root);
}

int
main(void)
{
	test_from();
	test_sender();
	test_ids();
	test_rcpts();
	test_ar_parse();
	test_auth();
	test_automatic();
	test_reading();
	test_timing();
	test_corpus();
	return tap_done();
}
