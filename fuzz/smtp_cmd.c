/*
 * smtp_cmd.c - fuzz target: SMTP command lines through the session parsers.
 *
 * The input is the client's side of a session, one command a line.  Each
 * line goes where smtpd_session.c sends it: "MAIL FROM:" to
 * smtpd_parse_path (null path allowed) and smtpd_parse_mail_params,
 * "RCPT TO:" to smtpd_parse_path, smtpd_parse_rcpt_params and
 * smtpd_parse_patient, "AUTH PLAIN" (initial response, or the next line) to
 * smtpd_auth_plain_decode.  Any other line goes to every parser, so the
 * fuzzer need not find a verb first.  A line is cut at LF, one CR before it
 * is dropped; a line over SMTPD_MAX_CMD_LINE or holding a NUL is skipped,
 * as the session refuses it.
 *
 * Promises checked: a parsed mailbox fits its bounds and parses again, as
 * "<mailbox>", to itself; the parameters point into the line; a patient id
 * is in range and its address formats back (prefix case aside); an AUTH
 * PLAIN pair encodes and decodes to itself; a failure gives a reason.
 */
#include "build.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fuzz.h"
#include "hash.h"
#include "smtpd_session.h"
#include "util.h"

static const char *mbox_at(const char *);
static void	 fuzz_path(const char *, int, int);
static void	 fuzz_mail_params(const char *);
static void	 fuzz_rcpt_params(const char *);
static void	 fuzz_patient(const char *);
static void	 fuzz_auth(const char *);
static void	 fuzz_line(char *, int *);

/*
 * The '@' between local part and domain: after a quoted local part (which
 * may hold '@'), else the first (an address literal may hold '@' too).
 */
static const char *
mbox_at(const char *mbox)
{
	const char	*p = mbox;

	if (*p != '"')
		return strchr(p, '@');
	for (p++; *p != '\0' && *p != '"'; p++) {
		if (*p == '\\' && p[1] != '\0')
			p++;
	}
	return *p == '"' && p[1] == '@' ? p + 1 : NULL;
}

/* A Path, then the same mailbox again; params: go on to the parameters. */
static void
fuzz_path(const char *s, int null_ok, int params)
{
	char		 mbox[SMTPD_MAX_MAILBOX + 1], again[SMTPD_MAX_MAILBOX + 1];
	char		 wrapped[SMTPD_MAX_MAILBOX + 3];
	const char	*rest = NULL, *rest2 = NULL, *why = NULL;
	const char	*at;
	size_t		 len;

	if (smtpd_parse_path(s, null_ok, mbox, sizeof mbox, &rest,
	    &why) != 0) {
		FUZZ_CHECK(why != NULL);
		return;
	}
	len = strlen(mbox);
	FUZZ_CHECK(len <= SMTPD_MAX_MAILBOX);
	FUZZ_CHECK(rest >= s && rest <= s + strlen(s));
	FUZZ_CHECK(*rest != ' ');
	if (len == 0)
		FUZZ_CHECK(null_ok);
	else {
		at = mbox_at(mbox);
		FUZZ_CHECK(at != NULL && at != mbox && at[1] != '\0');
		FUZZ_CHECK((size_t)(at - mbox) <= SMTPD_MAX_LOCAL);
		FUZZ_CHECK(strlen(at + 1) <= SMTPD_MAX_DOMAIN);
	}

	/* the mailbox is canonical: it parses to itself */
	snprintf(wrapped, sizeof wrapped, "<%s>", mbox);
	FUZZ_CHECK(smtpd_parse_path(wrapped, null_ok, again, sizeof again,
	    &rest2, &why) == 0);
	FUZZ_CHECK(strcmp(mbox, again) == 0 && *rest2 == '\0');

	if (!params)
		return;
	if (null_ok)
		fuzz_mail_params(rest);
	else {
		fuzz_rcpt_params(rest);
		if (len > 0)
			fuzz_patient(mbox);
	}
}

/* MAIL parameters. */
static void
fuzz_mail_params(const char *s)
{
	struct smtpd_mail_params mp;
	const char		*why = NULL;
	int			 r;

	r = smtpd_parse_mail_params(s, &mp, &why);
	if (r != 0) {
		FUZZ_CHECK(r == SMTPD_PARAM_SYNTAX || r == SMTPD_PARAM_UNKNOWN);
		FUZZ_CHECK(why != NULL);
		return;
	}
	FUZZ_CHECK(mp.size >= -1);
	FUZZ_CHECK(mp.body == SMTPD_BODY_NONE || mp.body == SMTPD_BODY_7BIT ||
	    mp.body == SMTPD_BODY_8BITMIME);
}

/* RCPT parameters (none supported: only blanks pass). */
static void
fuzz_rcpt_params(const char *s)
{
	const char	*why = NULL;
	int		 r;

	r = smtpd_parse_rcpt_params(s, &why);
	if (r == 0)
		FUZZ_CHECK(s[strspn(s, " ")] == '\0');
	else {
		FUZZ_CHECK(r == SMTPD_PARAM_SYNTAX || r == SMTPD_PARAM_UNKNOWN);
		FUZZ_CHECK(why != NULL);
	}
}

/* A patient address, and its id formatted back. */
static void
fuzz_patient(const char *mbox)
{
	const char	*domain = NULL, *why = NULL;
	char		*back;
	int64_t		 id = 0;

	if (smtpd_parse_patient(mbox, &id, &domain, &why) != 0) {
		FUZZ_CHECK(why != NULL);
		return;
	}
	FUZZ_CHECK(id >= 1 && id < INT64_C(1000000000000000000));
	FUZZ_CHECK(domain > mbox && domain[-1] == '@' && *domain != '\0');
	xasprintf(&back, "patient-%lld@%s", (long long)id, domain);
	FUZZ_CHECK(strcasecmp(back, mbox) == 0);
	free(back);
}

/* An AUTH PLAIN response; a decoded pair must survive a round trip. */
static void
fuzz_auth(const char *b64)
{
	char		 authcid[SMTPD_MAX_AUTHCID + 1];
	char		 passwd[SMTPD_MAX_TOKEN + 1];
	char		 authcid2[SMTPD_MAX_AUTHCID + 1];
	char		 passwd2[SMTPD_MAX_TOKEN + 1];
	unsigned char	 raw[2 + SMTPD_MAX_AUTHCID + SMTPD_MAX_TOKEN];
	const char	*why = NULL;
	char		*enc;
	size_t		 clen, plen;

	if (smtpd_auth_plain_decode(b64, strlen(b64), authcid, sizeof authcid,
	    passwd, sizeof passwd, &why) != 0) {
		FUZZ_CHECK(why != NULL);
		FUZZ_CHECK(authcid[0] == '\0' && passwd[0] == '\0');
		return;
	}
	clen = strlen(authcid);
	plen = strlen(passwd);
	FUZZ_CHECK(clen > 0 && clen <= SMTPD_MAX_AUTHCID);
	FUZZ_CHECK(plen > 0 && plen <= SMTPD_MAX_TOKEN);

	raw[0] = '\0';
	memcpy(raw + 1, authcid, clen);
	raw[1 + clen] = '\0';
	memcpy(raw + 2 + clen, passwd, plen);
	enc = hash_b64_encode(raw, 2 + clen + plen);
	if (strlen(enc) <= SMTPD_MAX_CMD_LINE) {
		FUZZ_CHECK(smtpd_auth_plain_decode(enc, strlen(enc), authcid2,
		    sizeof authcid2, passwd2, sizeof passwd2, &why) == 0);
		FUZZ_CHECK(strcmp(authcid, authcid2) == 0);
		FUZZ_CHECK(strcmp(passwd, passwd2) == 0);
	}
	hash_wipe(enc, strlen(enc));
	free(enc);
	hash_wipe(raw, sizeof raw);
	hash_wipe(passwd, sizeof passwd);
	hash_wipe(passwd2, sizeof passwd2);
}

/* One command line, as the session's command table would route it. */
static void
fuzz_line(char *line, int *auth_pending)
{
	const char	*arg;
	size_t		 vlen;

	if (*auth_pending) {
		*auth_pending = 0;
		if (strcmp(line, "*") != 0)
			fuzz_auth(line);
		return;
	}
	vlen = strcspn(line, " ");
	arg = line + vlen;
	while (*arg == ' ')
		arg++;
	if (vlen == 4 && strncasecmp(line, "MAIL", 4) == 0 &&
	    strncasecmp(arg, "FROM:", 5) == 0) {
		arg += 5;
		while (*arg == ' ')
			arg++;
		fuzz_path(arg, 1, 1);
	} else if (vlen == 4 && strncasecmp(line, "RCPT", 4) == 0 &&
	    strncasecmp(arg, "TO:", 3) == 0) {
		arg += 3;
		while (*arg == ' ')
			arg++;
		fuzz_path(arg, 0, 1);
	} else if (vlen == 4 && strncasecmp(line, "AUTH", 4) == 0 &&
	    strncasecmp(arg, "PLAIN", 5) == 0 &&
	    (arg[5] == '\0' || arg[5] == ' ')) {
		arg += 5;
		while (*arg == ' ')
			arg++;
		if (*arg == '\0')
			*auth_pending = 1;
		else if (strcmp(arg, "=") != 0)
			fuzz_auth(arg);
	} else {
		/* not a routed command: every parser gets the line */
		fuzz_path(line, 1, 1);
		fuzz_path(line, 0, 1);
		fuzz_mail_params(line);
		fuzz_rcpt_params(line);
		fuzz_patient(line);
		fuzz_auth(line);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char		 line[SMTPD_MAX_CMD_LINE + 1];
	const uint8_t	*p = data, *end = data + size, *nl;
	size_t		 len;
	int		 auth_pending = 0;
	static int	 ready;

	if (size > FUZZ_MAX_INPUT)
		return 0;
	if (!ready) {
		if (hash_init() != 0)
			abort();
		ready = 1;
	}
	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		len = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
		if (len + 2 <= SMTPD_MAX_CMD_LINE && memchr(p, '\0', len) ==
		    NULL) {
			memcpy(line, p, len);
			if (len > 0 && line[len - 1] == '\r')
				len--;
			line[len] = '\0';
			fuzz_line(line, &auth_pending);
		}
		if (nl == NULL)
			break;
		p = nl + 1;
	}
	return 0;
}
