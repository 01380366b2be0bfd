/*
 * test_smtpd_parse.c - unit tests of the SMTP submission parsers: paths,
 * ESMTP parameters, AUTH PLAIN, patient addresses, header lookup and the
 * DATA reader (fed in every possible chunking).
 */
#include "build.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "smtpd_session.h"
#include "util.h"

#include "tap.h"

static void	 test_path(void);
static void	 test_mail_params(void);
static void	 test_rcpt_params(void);
static void	 test_auth_plain(void);
static void	 test_patient(void);
static void	 test_header(void);
static void	 test_data(void);
static void	 test_data_limits(void);
static void	 test_data_big(void);
static void	 test_data_random(void);

/* ---- paths ----------------------------------------------------------- */

struct path_case {
	const char	*in;
	int		 null_ok;
	int		 ret;
	const char	*mbox;		/* expected, when ret == 0 */
	const char	*rest;
};

static const struct path_case path_cases[] = {
	{ "<dr.patel@nhs.example>", 1, 0, "dr.patel@nhs.example", "" },
	{ "<Dr.Patel@NHS.Example>", 1, 0, "Dr.Patel@nhs.example", "" },
	{ "<a@b.c> SIZE=100", 1, 0, "a@b.c", "SIZE=100" },
	{ "<a@b.c>   BODY=8BITMIME", 1, 0, "a@b.c", "BODY=8BITMIME" },
	{ "<>", 1, 0, "", "" },
	{ "<> SIZE=1", 1, 0, "", "SIZE=1" },
	{ "<>", 0, -1, NULL, NULL },
	{ "<\"john doe\"@example.org>", 0, 0, "\"john doe\"@example.org", "" },
	{ "<\"a\\\"b\"@example.org>", 0, 0, "\"a\\\"b\"@example.org", "" },
	{ "<\"a\\\x01\"@example.org>", 0, -1, NULL, NULL },
	{ "<\"unterminated@example.org>", 0, -1, NULL, NULL },
	{ "<@relay.example,@r2.example:user@example.org>", 0, 0,
	    "user@example.org", "" },
	{ "<@relay.example user@example.org>", 0, -1, NULL, NULL },
	{ "<user@[192.0.2.1]>", 0, 0, "user@[192.0.2.1]", "" },
	{ "<user@[IPv6:2001:db8::1]>", 0, 0, "user@[ipv6:2001:db8::1]", "" },
	{ "<user@[]>", 0, -1, NULL, NULL },
	{ "<a!#$%&'*+-/=?^_`{|}~@x.org>", 0, 0, "a!#$%&'*+-/=?^_`{|}~@x.org",
	    "" },
	{ "user@example.org", 0, -1, NULL, NULL },
	{ "<user@example.org", 0, -1, NULL, NULL },
	{ "<user@example.org>junk", 0, -1, NULL, NULL },
	{ "<userexample.org>", 0, -1, NULL, NULL },
	{ "<@example.org>", 0, -1, NULL, NULL },
	{ "<user@>", 0, -1, NULL, NULL },
	{ "<.user@example.org>", 0, -1, NULL, NULL },
	{ "<user.@example.org>", 0, -1, NULL, NULL },
	{ "<us..er@example.org>", 0, -1, NULL, NULL },
	{ "<user@-example.org>", 0, -1, NULL, NULL },
	{ "<user@example-.org>", 0, -1, NULL, NULL },
	{ "<user@example..org>", 0, -1, NULL, NULL },
	{ "<user@example.org.>", 0, -1, NULL, NULL },
	{ "<user@exa_mple.org>", 0, -1, NULL, NULL },
	{ "<us er@example.org>", 0, -1, NULL, NULL },
	{ "<user@example.org\r\nRCPT TO:<x@y>>", 0, -1, NULL, NULL },
	{ "<user\n@example.org>", 0, -1, NULL, NULL },
	{ "<user@exam\rple.org>", 0, -1, NULL, NULL },
	{ "<us\xc3\xa9r@example.org>", 0, -1, NULL, NULL },
	{ "<user@example.org><x@y.z>", 0, -1, NULL, NULL },
	{ "", 0, -1, NULL, NULL },
	{ "<", 0, -1, NULL, NULL },
};

/* Long inputs are built at run time. */
static void
test_path_lengths(void)
{
	char		 in[1024], mbox[SMTPD_MAX_MAILBOX + 1];
	const char	*rest, *why;
	size_t		 n;

	/* local part of exactly 64 is fine, 65 is not */
	memset(in, 0, sizeof in);
	in[0] = '<';
	memset(in + 1, 'a', 64);
	strcpy(in + 65, "@example.org>");
	is_int(smtpd_parse_path(in, 0, mbox, sizeof mbox, &rest, &why), 0,
	    "path: 64-byte local part");
	in[0] = '<';
	memset(in + 1, 'a', 65);
	strcpy(in + 66, "@example.org>");
	is_int(smtpd_parse_path(in, 0, mbox, sizeof mbox, &rest, &why), -1,
	    "path: 65-byte local part rejected");

	/* a 64-octet label is too long */
	snprintf(in, sizeof in, "<a@%s.org>", "");
	n = strlen("<a@");
	memset(in + n, 'b', 64);
	strcpy(in + n + 64, ".org>");
	is_int(smtpd_parse_path(in, 0, mbox, sizeof mbox, &rest, &why), -1,
	    "path: 64-octet label rejected");
	strcpy(in + n + 63, ".org>");
	is_int(smtpd_parse_path(in, 0, mbox, sizeof mbox, &rest, &why), 0,
	    "path: 63-octet label fine");

	/* the whole mailbox: 254 fine, 255 not */
	in[0] = '<';
	memset(in + 1, 'a', 60);
	in[61] = '@';
	n = 62;
	while (n < 1 + 254 - 4) {
		memset(in + n, 'd', 49);
		n += 49;
		in[n++] = '.';
	}
	/* pad to exactly 254 mailbox bytes ending in "org" */
	n = 1 + 254 - 3;
	memcpy(in + n - 1, ".org", 4);
	in[n + 3] = '>';
	in[n + 4] = '\0';
	ok(strlen(in) == 256, "path: built a 254-byte mailbox (%zu)",
	    strlen(in) - 2);
	is_int(smtpd_parse_path(in, 0, mbox, sizeof mbox, &rest, &why), 0,
	    "path: 254-byte mailbox accepted");
	memmove(in + 2, in + 1, strlen(in + 1) + 1);
	in[1] = 'a';
	is_int(smtpd_parse_path(in, 0, mbox, sizeof mbox, &rest, &why), -1,
	    "path: 255-byte mailbox rejected");

	/* an overlong line of garbage never overflows */
	memset(in, 'x', sizeof in - 1);
	in[0] = '<';
	in[sizeof in - 1] = '\0';
	is_int(smtpd_parse_path(in, 0, mbox, sizeof mbox, &rest, &why), -1,
	    "path: 1 KiB of atext rejected");
}

static void
test_path(void)
{
	char		 mbox[SMTPD_MAX_MAILBOX + 1];
	const char	*rest, *why;
	size_t		 i;
	int		 r;

	for (i = 0; i < nitems(path_cases); i++) {
		const struct path_case *c = &path_cases[i];

		rest = NULL;
		r = smtpd_parse_path(c->in, c->null_ok, mbox, sizeof mbox,
		    &rest, &why);
		is_int(r, c->ret, "path %zu: result", i);
		if (c->ret == 0 && r == 0) {
			is_str(mbox, c->mbox, "path %zu: mailbox", i);
			is_str(rest, c->rest, "path %zu: rest", i);
		} else if (r != 0)
			ok(why != NULL && *why != '\0', "path %zu: reason %s",
			    i, why ? why : "(none)");
	}
	test_path_lengths();
}

/* ---- parameters ------------------------------------------------------ */

struct param_case {
	const char	*in;
	int		 ret;
	int64_t		 size;
	int		 body;
};

static const struct param_case param_cases[] = {
	{ "", 0, -1, SMTPD_BODY_NONE },
	{ "SIZE=1000", 0, 1000, SMTPD_BODY_NONE },
	{ "size=0", 0, 0, SMTPD_BODY_NONE },
	{ "SIZE=1000 BODY=8BITMIME", 0, 1000, SMTPD_BODY_8BITMIME },
	{ "BODY=7bit", 0, -1, SMTPD_BODY_7BIT },
	{ "  SIZE=5  ", 0, 5, SMTPD_BODY_NONE },
	{ "SIZE=99999999999999999999", 0, INT64_MAX, SMTPD_BODY_NONE },
	{ "SIZE=999999999999999999999", SMTPD_PARAM_SYNTAX, 0, 0 },
	{ "AUTH=<>", 0, -1, SMTPD_BODY_NONE },
	{ "AUTH=client+40example.org SIZE=1", 0, 1, SMTPD_BODY_NONE },
	{ "SIZE=", SMTPD_PARAM_SYNTAX, 0, 0 },
	{ "SIZE", SMTPD_PARAM_SYNTAX, 0, 0 },
	{ "SIZE=12a", SMTPD_PARAM_SYNTAX, 0, 0 },
	{ "SIZE=-1", SMTPD_PARAM_SYNTAX, 0, 0 },
	{ "SIZE=1 SIZE=2", SMTPD_PARAM_SYNTAX, 0, 0 },
	{ "BODY=BINARYMIME", SMTPD_PARAM_UNKNOWN, 0, 0 },
	{ "BODY=7BIT BODY=8BITMIME", SMTPD_PARAM_SYNTAX, 0, 0 },
	{ "SMTPUTF8", SMTPD_PARAM_UNKNOWN, 0, 0 },
	{ "RET=HDRS", SMTPD_PARAM_UNKNOWN, 0, 0 },
	{ "=x", SMTPD_PARAM_SYNTAX, 0, 0 },
	{ "SIZE=1=2", SMTPD_PARAM_SYNTAX, 0, 0 },
	{ "SIZE=1\x01", SMTPD_PARAM_SYNTAX, 0, 0 },
	{ "SI_ZE=1", SMTPD_PARAM_SYNTAX, 0, 0 },
};

static void
test_mail_params(void)
{
	struct smtpd_mail_params p;
	const char		*why;
	size_t			 i;
	int			 r;

	for (i = 0; i < nitems(param_cases); i++) {
		const struct param_case *c = &param_cases[i];

		r = smtpd_parse_mail_params(c->in, &p, &why);
		is_int(r, c->ret, "mail params %zu (%s)", i, c->in);
		if (r == 0 && c->ret == 0) {
			is_int(p.size, c->size, "mail params %zu: size", i);
			is_int(p.body, c->body, "mail params %zu: body", i);
		}
	}
}

static void
test_rcpt_params(void)
{
	const char	*why;

	is_int(smtpd_parse_rcpt_params("", &why), 0, "rcpt params: none");
	is_int(smtpd_parse_rcpt_params("   ", &why), 0, "rcpt params: blank");
	is_int(smtpd_parse_rcpt_params("NOTIFY=NEVER", &why),
	    SMTPD_PARAM_UNKNOWN, "rcpt params: NOTIFY unsupported");
	is_int(smtpd_parse_rcpt_params("<x>", &why), SMTPD_PARAM_SYNTAX,
	    "rcpt params: junk is a syntax error");
}

/* ---- AUTH PLAIN ------------------------------------------------------ */

struct auth_case {
	const char	*raw;		/* decoded form */
	size_t		 rawlen;
	int		 ret;
	const char	*authcid;
	const char	*passwd;
};

#define RAW(s)	s, sizeof(s) - 1

static const struct auth_case auth_cases[] = {
	{ RAW("\0client\0tok-123"), 0, "client", "tok-123" },
	{ RAW("admin\0client\0secret"), 0, "client", "secret" },
	{ RAW("\0c\0p"), 0, "c", "p" },
	{ RAW("\0client\0"), -1, NULL, NULL },		/* empty password */
	{ RAW("\0\0secret"), -1, NULL, NULL },		/* empty authcid */
	{ RAW("client\0secret"), -1, NULL, NULL },	/* one NUL */
	{ RAW("clientsecret"), -1, NULL, NULL },	/* no NUL */
	{ RAW("\0client\0sec\0ret"), -1, NULL, NULL },	/* NUL in passwd */
	{ RAW(""), -1, NULL, NULL },
};

static void
test_auth_plain(void)
{
	char		 authcid[SMTPD_MAX_AUTHCID + 1];
	char		 passwd[SMTPD_MAX_TOKEN + 1];
	char		*b64, big[SMTPD_MAX_TOKEN + 40];
	const char	*why;
	size_t		 i;
	int		 r;

	for (i = 0; i < nitems(auth_cases); i++) {
		const struct auth_case *c = &auth_cases[i];

		b64 = hash_b64_encode(c->raw, c->rawlen);
		r = smtpd_auth_plain_decode(b64, strlen(b64), authcid,
		    sizeof authcid, passwd, sizeof passwd, &why);
		is_int(r, c->ret, "auth plain %zu: result", i);
		if (r == 0 && c->ret == 0) {
			is_str(authcid, c->authcid, "auth plain %zu: authcid",
			    i);
			is_str(passwd, c->passwd, "auth plain %zu: passwd", i);
		} else if (r != 0)
			ok(why != NULL && passwd[0] == '\0',
			    "auth plain %zu: reason (%s), no password", i,
			    why ? why : "none");
		free(b64);
	}

	/* bad base64 */
	is_int(smtpd_auth_plain_decode("AGNsaWVudABzZWNyZXQ*", 20, authcid,
	    sizeof authcid, passwd, sizeof passwd, &why), -1,
	    "auth plain: '*' is not base64");
	is_int(smtpd_auth_plain_decode("AGNsaWVud ABzZWNyZXQ=", 21, authcid,
	    sizeof authcid, passwd, sizeof passwd, &why), -1,
	    "auth plain: space is not base64");
	is_int(smtpd_auth_plain_decode("=", 1, authcid, sizeof authcid,
	    passwd, sizeof passwd, &why), -1, "auth plain: '=' alone");
	is_int(smtpd_auth_plain_decode("", 0, authcid, sizeof authcid,
	    passwd, sizeof passwd, &why), -1, "auth plain: empty");
	/* unpadded is accepted (hash_b64_decode), and decodes the same */
	is_int(smtpd_auth_plain_decode("AGMAcA", 6, authcid, sizeof authcid,
	    passwd, sizeof passwd, &why), 0, "auth plain: unpadded");

	/* a password longer than the buffer */
	big[0] = '\0';
	memcpy(big + 1, "c", 1);
	big[2] = '\0';
	memset(big + 3, 'p', sizeof big - 3);
	b64 = hash_b64_encode(big, sizeof big);
	is_int(smtpd_auth_plain_decode(b64, strlen(b64), authcid,
	    sizeof authcid, passwd, sizeof passwd, &why), -1,
	    "auth plain: overlong password rejected");
	free(b64);
}

/* ---- patient addresses ----------------------------------------------- */

struct patient_case {
	const char	*in;
	int		 ret;
	int64_t		 id;
	const char	*domain;
};

static const struct patient_case patient_cases[] = {
	{ "patient-42@riverside.example", 0, 42, "riverside.example" },
	{ "Patient-7@riverside.example", 0, 7, "riverside.example" },
	{ "PATIENT-123456789012345678@x.example", 0, 123456789012345678LL,
	    "x.example" },
	{ "patient-1234567890123456789@x.example", -1, 0, NULL },
	{ "patient-0@riverside.example", -1, 0, NULL },
	{ "patient-007@riverside.example", -1, 0, NULL },
	{ "patient-x@riverside.example", -1, 0, NULL },
	{ "patient-42.1@riverside.example", -1, 0, NULL },
	{ "patient-42x@riverside.example", -1, 0, NULL },
	{ "patient--42@riverside.example", -1, 0, NULL },
	{ "patient-+42@riverside.example", -1, 0, NULL },
	{ "patient-@riverside.example", -1, 0, NULL },
	{ "patient42@riverside.example", -1, 0, NULL },
	{ "patients-42@riverside.example", -1, 0, NULL },
	{ "\"patient-42\"@riverside.example", -1, 0, NULL },
	{ "patient-42@", -1, 0, NULL },
	{ "patient-42", -1, 0, NULL },
	{ "dr.patel@riverside.example", -1, 0, NULL },
};

static void
test_patient(void)
{
	const char	*domain, *why;
	int64_t		 id;
	size_t		 i;
	int		 r;

	for (i = 0; i < nitems(patient_cases); i++) {
		const struct patient_case *c = &patient_cases[i];

		id = -1;
		domain = NULL;
		r = smtpd_parse_patient(c->in, &id, &domain, &why);
		is_int(r, c->ret, "patient %zu (%s)", i, c->in);
		if (r == 0 && c->ret == 0) {
			is_int(id, c->id, "patient %zu: id", i);
			is_str(domain, c->domain, "patient %zu: domain", i);
		}
	}
}

/* ---- header lookup --------------------------------------------------- */

struct header_case {
	const char	*msg;
	const char	*name;
	int		 ret;
	const char	*value;
};

static const struct header_case header_cases[] = {
	{ "Message-ID: <a@b>\r\n\r\nbody\r\n", "Message-ID", 1, "<a@b>" },
	{ "message-id:<a@b>\r\n\r\n", "Message-ID", 1, "<a@b>" },
	{ "Subject: x\r\nMessage-ID:\r\n <a@b>\r\n\r\n", "Message-ID", 1,
	    "<a@b>" },
	{ "Subject: x\r\n\tMessage-ID: <no>\r\n\r\n", "Message-ID", 0, NULL },
	{ "Subject: x\r\n\r\nMessage-ID: <body@x>\r\n", "Message-ID", 0,
	    NULL },
	{ "X-Message-ID: <x>\r\n\r\n", "Message-ID", 0, NULL },
	{ "Message-IDx: <x>\r\n\r\n", "Message-ID", 0, NULL },
	{ "Importance: High \r\n\r\n", "Importance", 1, "High" },
	{ "A: 1\nMessage-ID: <lf@x>\n\n", "Message-ID", 1, "<lf@x>" },
	{ "Message-ID: <a@b>\r\nMessage-ID: <c@d>\r\n\r\n", "Message-ID", 1,
	    "<a@b>" },
	{ "Message-ID: <a@b>", "Message-ID", 1, "<a@b>" },
	{ "", "Message-ID", 0, NULL },
};

static void
test_header(void)
{
	char	 out[64], small[4];
	size_t	 i;
	int	 r;

	for (i = 0; i < nitems(header_cases); i++) {
		const struct header_case *c = &header_cases[i];

		r = smtpd_header_get(c->msg, strlen(c->msg), c->name, out,
		    sizeof out);
		is_int(r, c->ret, "header %zu: result", i);
		if (r == 1 && c->ret == 1)
			is_str(out, c->value, "header %zu: value", i);
	}
	is_int(smtpd_header_get("Message-ID: <abcdef@x>\r\n\r\n", 26,
	    "Message-ID", small, sizeof small), -1,
	    "header: value too long for the buffer");
}

/* ---- the DATA reader ------------------------------------------------- */

#define NO_END	((size_t)-1)

struct data_case {
	const char	*name;
	const char	*in;
	size_t		 inlen;		/* 0: strlen */
	size_t		 used;		/* bytes up to the end, or NO_END */
	unsigned	 flags;
	const char	*out;		/* message when acceptable, or NULL */
	const char	*verdict;	/* reply prefix when refused */
};

static const struct data_case data_cases[] = {
	{ "simple", "Subject: hi\r\n\r\nhello\r\n.\r\n", 0, 25, 0,
	    "Subject: hi\r\n\r\nhello\r\n", NULL },
	{ "empty message", ".\r\n", 0, 3, 0, "", NULL },
	{ "pipelined QUIT after the dot", "a: b\r\n\r\nx\r\n.\r\nQUIT\r\n",
	    0, 14, 0, "a: b\r\n\r\nx\r\n", NULL },
	{ "dot stuffing", "a: b\r\n\r\n..hidden\r\n...\r\n.x\r\n.\r\n", 0,
	    30, 0, "a: b\r\n\r\n.hidden\r\n..\r\nx\r\n", NULL },
	{ "no end yet", "a: b\r\n\r\nbody\r\n", 0, NO_END, 0, NULL, NULL },
	{ "dot without CRLF", "a: b\r\n\r\nbody\r\n.", 0, NO_END, 0, NULL,
	    NULL },
	/* SMTP smuggling: none of these may end the data */
	{ "smuggle \\n.\\n", "a: b\r\n\r\nx\n.\nMAIL FROM:<e@x>\r\n", 0,
	    NO_END, SMTPD_DATA_BARE_LF, NULL, NULL },
	{ "smuggle \\r\\n.\\n", "a: b\r\n\r\nx\r\n.\nMAIL FROM:<e@x>\r\n", 0,
	    NO_END, SMTPD_DATA_BARE_LF, NULL, NULL },
	{ "smuggle \\n.\\r\\n", "a: b\r\n\r\nx\n.\r\nMAIL FROM:<e@x>\r\n", 0,
	    NO_END, SMTPD_DATA_BARE_LF, NULL, NULL },
	{ "smuggle \\r.\\r", "a: b\r\n\r\nx\r.\rMAIL FROM:<e@x>\r\n", 0,
	    NO_END, SMTPD_DATA_BARE_CR, NULL, NULL },
	{ "smuggle \\r.\\r\\n", "a: b\r\n\r\nx\r.\r\nMAIL FROM:<e@x>\r\n", 0,
	    NO_END, SMTPD_DATA_BARE_CR, NULL, NULL },
	{ "smuggle \\r\\n.\\r", "a: b\r\n\r\nx\r\n.\rMAIL FROM:<e@x>\r\n", 0,
	    NO_END, SMTPD_DATA_BARE_CR, NULL, NULL },
	{ "smuggle \\r\\n\\x00.\\r\\n", "a: b\r\n\r\nx\r\n\0.\r\nMAIL\r\n",
	    21, NO_END, SMTPD_DATA_NUL, NULL, NULL },
	/* the same, completed by a real end: one message, refused */
	{ "smuggle \\n.\\n then real end",
	    "a: b\r\n\r\nx\n.\nMAIL FROM:<e@x>\r\n.\r\n", 0, 32,
	    SMTPD_DATA_BARE_LF, NULL, "550 5.6.0" },
	{ "smuggle \\r.\\r then real end",
	    "a: b\r\n\r\nx\r.\rMAIL FROM:<e@x>\r\n.\r\n", 0, 32,
	    SMTPD_DATA_BARE_CR, NULL, "550 5.6.0" },
	{ "smuggle \\r\\n.\\n then real end",
	    "a: b\r\n\r\nx\r\n.\nRSET\r\n.\r\n", 0, 22, SMTPD_DATA_BARE_LF,
	    NULL, "550 5.6.0" },
	{ "bare LF at line start", "a: b\r\n\n.\r\n.\r\n", 0, 13,
	    SMTPD_DATA_BARE_LF, NULL, "550 5.6.0" },
	{ "bare CR after CR", "a: b\r\n\r\nx\r\r\n.\r\n", 0, 15,
	    SMTPD_DATA_BARE_CR, NULL, "550 5.6.0" },
	{ "NUL", "a: b\r\n\r\nx\0y\r\n.\r\n", 16, 16, SMTPD_DATA_NUL, NULL,
	    "554 5.6.0" },
	{ "NUL and bare LF: NUL wins", "a: b\r\n\r\n\0\n\r\n.\r\n", 15, 15,
	    SMTPD_DATA_NUL | SMTPD_DATA_BARE_LF, NULL, "554 5.6.0" },
	{ "header then body without colon", "Subject: x\r\nnot a header\r\n"
	    "\r\n.\r\n", 0, 31, 0, "Subject: x\r\nnot a header\r\n\r\n",
	    NULL },
};

/* Feed one case in the given chunk size (0: all at once) and check. */
static int
data_run(const struct data_case *c, size_t chunk, size_t split,
    struct smtpd_data *d, size_t *usedp)
{
	size_t	 len = c->inlen ? c->inlen : strlen(c->in);
	size_t	 off = 0, n, used;
	int	 r = SMTPD_DATA_MORE;

	smtpd_data_init(d, 1000, 102400, 1024 * 1024);
	*usedp = NO_END;
	while (off < len) {
		if (split != 0)
			n = off < split ? split - off : len - off;
		else
			n = chunk == 0 ? len - off : chunk;
		if (n > len - off)
			n = len - off;
		r = smtpd_data_feed(d, c->in + off, n, &used);
		if (r == SMTPD_DATA_END) {
			*usedp = off + used;
			break;
		}
		if (used != n)
			return -1;
		off += n;
	}
	return r;
}

static void
test_data(void)
{
	struct smtpd_data	 d;
	char			 reply[128];
	size_t			 i, used, len, k, outlen;
	int			 r, bad;
	char			*out;

	for (i = 0; i < nitems(data_cases); i++) {
		const struct data_case *c = &data_cases[i];

		len = c->inlen ? c->inlen : strlen(c->in);
		r = data_run(c, 0, 0, &d, &used);
		ok(used == c->used, "data %s: end at %zd (want %zd)",
		    c->name, used == NO_END ? (ssize_t)-1 : (ssize_t)used,
		    c->used == NO_END ? (ssize_t)-1 : (ssize_t)c->used);
		is_int(d.flags, c->flags, "data %s: flags", c->name);
		if (r == SMTPD_DATA_END) {
			int v = smtpd_data_verdict(&d, reply, sizeof reply);

			if (c->verdict == NULL) {
				is_int(v, 0, "data %s: accepted", c->name);
				out = smtpd_data_take(&d, &outlen);
				ok(outlen == strlen(c->out) &&
				    memcmp(out, c->out, outlen) == 0,
				    "data %s: message bytes", c->name);
				free(out);
			} else
				ok(v == -1 && strncmp(reply, c->verdict,
				    strlen(c->verdict)) == 0,
				    "data %s: verdict %s", c->name, reply);
		}
		smtpd_data_clear(&d);

		/* every chunking gives the same end and flags */
		bad = 0;
		for (k = 1; k <= len; k++) {
			struct smtpd_data d2;
			size_t used2;

			data_run(c, k, 0, &d2, &used2);
			if (used2 != c->used || d2.flags != c->flags)
				bad++;
			smtpd_data_clear(&d2);
			data_run(c, 0, k, &d2, &used2);
			if (used2 != c->used || d2.flags != c->flags)
				bad++;
			smtpd_data_clear(&d2);
		}
		is_int(bad, 0, "data %s: same result for every chunking",
		    c->name);
	}

	/* feeding after the end consumes nothing */
	smtpd_data_init(&d, 1000, 1000, 1000);
	r = smtpd_data_feed(&d, ".\r\n", 3, &used);
	is_int(r, SMTPD_DATA_END, "data: end");
	r = smtpd_data_feed(&d, "more", 4, &used);
	ok(r == SMTPD_DATA_END && used == 0, "data: nothing after the end");
	smtpd_data_clear(&d);

	/* a verdict before the end is a temporary failure */
	smtpd_data_init(&d, 1000, 1000, 1000);
	smtpd_data_feed(&d, "x", 1, &used);
	ok(smtpd_data_verdict(&d, reply, sizeof reply) == -1 &&
	    reply[0] == '4', "data: verdict before the end is 4xx");
	smtpd_data_clear(&d);
}

/* Feed a NUL-terminated string to a reader in one go. */
static int
data_feed_str(struct smtpd_data *d, const char *s, size_t *used)
{
	return smtpd_data_feed(d, s, strlen(s), used);
}

static void
test_data_limits(void)
{
	struct smtpd_data	 d;
	char			 reply[128], line[200];
	size_t			 used, i;
	int			 r;

	/* max_line counts the CRLF: 98 + 2 = 100 is fine, 101 is not */
	smtpd_data_init(&d, 100, 10000, 100000);
	memset(line, 'x', 98);
	memcpy(line + 98, "\r\n", 3);
	data_feed_str(&d, "a: b\r\n\r\n", &used);
	data_feed_str(&d, line, &used);
	r = data_feed_str(&d, ".\r\n", &used);
	ok(r == SMTPD_DATA_END && d.flags == 0, "data: 100-byte line fine");
	smtpd_data_clear(&d);

	smtpd_data_init(&d, 100, 10000, 100000);
	memset(line, 'x', 99);
	memcpy(line + 99, "\r\n", 3);
	data_feed_str(&d, "a: b\r\n\r\n", &used);
	data_feed_str(&d, line, &used);
	r = data_feed_str(&d, ".\r\n", &used);
	ok(r == SMTPD_DATA_END && d.flags == SMTPD_DATA_LONG_LINE,
	    "data: 101-byte line flagged");
	ok(smtpd_data_verdict(&d, reply, sizeof reply) == -1 &&
	    strncmp(reply, "500 5.6.0", 9) == 0, "data: long line is 500 "
	    "5.6.0 (%s)", reply);
	smtpd_data_clear(&d);

	/* a stuffed dot counts: the wire line is what is bounded */
	smtpd_data_init(&d, 100, 10000, 100000);
	line[0] = '.';
	memset(line + 1, 'x', 98);
	memcpy(line + 99, "\r\n", 3);
	data_feed_str(&d, "a: b\r\n\r\n", &used);
	data_feed_str(&d, line, &used);
	data_feed_str(&d, ".\r\n", &used);
	is_int(d.flags, SMTPD_DATA_LONG_LINE, "data: stuffed dot counts");
	smtpd_data_clear(&d);

	/* header section limit: 3 lines of 10 bytes with max 25 */
	smtpd_data_init(&d, 1000, 25, 100000);
	data_feed_str(&d, "A: 123456\r\nB: 123456\r\n\r\nbody\r\n.\r\n",
	    &used);
	is_int(d.flags, 0, "data: 20-byte header under 25");
	smtpd_data_clear(&d);
	smtpd_data_init(&d, 1000, 25, 100000);
	data_feed_str(&d, "A: 123456\r\nB: 123456\r\nC: 123456\r\n\r\n.\r\n",
	    &used);
	is_int(d.flags, SMTPD_DATA_BIG_HEADER, "data: 30-byte header over 25");
	ok(smtpd_data_verdict(&d, reply, sizeof reply) == -1 &&
	    strncmp(reply, "552 5.3.4", 9) == 0, "data: big header is 552 "
	    "5.3.4");
	smtpd_data_clear(&d);
	/* continuation lines count as header */
	smtpd_data_init(&d, 1000, 25, 100000);
	data_feed_str(&d, "A: 123456\r\n 123456789\r\n 123456789\r\n\r\n.\r\n",
	    &used);
	is_int(d.flags, SMTPD_DATA_BIG_HEADER, "data: folded header counts");
	smtpd_data_clear(&d);
	/* body lines do not */
	smtpd_data_init(&d, 1000, 25, 100000);
	data_feed_str(&d, "A: 123456\r\n\r\nB: 123456\r\nC: 123456\r\n.\r\n",
	    &used);
	is_int(d.flags, 0, "data: body lines are not header");
	smtpd_data_clear(&d);

	/* message size: exactly max is fine, one more is not */
	smtpd_data_init(&d, 1000, 1000, 20);
	data_feed_str(&d, "a: b\r\n\r\n0123456789\r\n.\r\n", &used);
	ok(d.flags == 0 && d.len == 20, "data: 20 bytes at max 20");
	smtpd_data_clear(&d);
	smtpd_data_init(&d, 1000, 1000, 20);
	r = data_feed_str(&d, "a: b\r\n\r\n01234567890\r\n.\r\n", &used);
	ok(r == SMTPD_DATA_END && d.flags == SMTPD_DATA_TOO_BIG &&
	    d.buf == NULL, "data: 21 bytes over max 20, copy dropped");
	ok(smtpd_data_verdict(&d, reply, sizeof reply) == -1 &&
	    strncmp(reply, "552 5.3.4", 9) == 0, "data: too big is 552 5.3.4");
	smtpd_data_clear(&d);

	/* after a refusal nothing more is stored, but the end is found */
	smtpd_data_init(&d, 1000, 1000, 100000);
	data_feed_str(&d, "a: b\r\n\r\nbare\nLF\r\n", &used);
	ok(d.buf == NULL, "data: refused message is not kept");
	for (i = 0; i < 100; i++)
		data_feed_str(&d, "more text\r\n", &used);
	r = data_feed_str(&d, ".\r\n", &used);
	ok(r == SMTPD_DATA_END && d.len == 0, "data: refused message ends");
	smtpd_data_clear(&d);
}

/* A big message in odd chunks keeps every byte, in order. */
static void
test_data_big(void)
{
	struct smtpd_data	 d;
	char			*wire, *want, *out;
	size_t			 wlen = 0, olen = 0, i, off, n, used, outlen;
	int			 r = SMTPD_DATA_MORE;

	wire = xmalloc(3 * 1024 * 1024);
	want = xmalloc(3 * 1024 * 1024);
	wlen += (size_t)sprintf(wire, "Subject: big\r\n\r\n");
	olen += (size_t)sprintf(want, "Subject: big\r\n\r\n");
	for (i = 0; i < 20000; i++) {
		int k = (int)(i % 77);

		if (i % 5 == 0) {
			wlen += (size_t)sprintf(wire + wlen, "..%d-%0*d\r\n",
			    (int)i, k, 0);
			olen += (size_t)sprintf(want + olen, ".%d-%0*d\r\n",
			    (int)i, k, 0);
		} else {
			wlen += (size_t)sprintf(wire + wlen, "line %d %0*d\r\n",
			    (int)i, k, 0);
			olen += (size_t)sprintf(want + olen, "line %d %0*d\r\n",
			    (int)i, k, 0);
		}
	}
	memcpy(wire + wlen, ".\r\n", 3);
	wlen += 3;

	smtpd_data_init(&d, 1000, 102400, 4 * 1024 * 1024);
	for (off = 0, n = 1; off < wlen; off += n, n = n * 7 % 4099 + 1) {
		if (n > wlen - off)
			n = wlen - off;
		r = smtpd_data_feed(&d, wire + off, n, &used);
		if (r == SMTPD_DATA_END) {
			off += used;
			break;
		}
	}
	ok(r == SMTPD_DATA_END && off == wlen, "data big: end at the end");
	out = smtpd_data_take(&d, &outlen);
	ok(outlen == olen && memcmp(out, want, olen) == 0,
	    "data big: %zu bytes unstuffed intact", olen);
	free(out);
	smtpd_data_clear(&d);
	free(wire);
	free(want);
}

/* xorshift64*: a deterministic stream for the random test. */
static uint64_t
rnd(uint64_t *st)
{
	*st ^= *st >> 12;
	*st ^= *st << 25;
	*st ^= *st >> 27;
	return *st * 2685821657736338717ULL;
}

/*
 * The reference: the data ends at the first CRLF "." CRLF, counting an
 * implicit CRLF before the first byte; a LF is bare unless a CR precedes
 * it, a CR is bare when a byte other than LF follows it.
 */
static void
data_reference(const char *in, size_t len, size_t *used, unsigned *flags)
{
	size_t	 i, end = len;

	*used = NO_END;
	for (i = 0; i + 3 <= len; i++) {
		if ((i == 0 || (i >= 2 && in[i - 2] == '\r' &&
		    in[i - 1] == '\n')) && memcmp(in + i, ".\r\n", 3) == 0) {
			*used = i + 3;
			end = i + 3;
			break;
		}
	}
	*flags = 0;
	for (i = 0; i < end; i++) {
		if (in[i] == '\0')
			*flags |= SMTPD_DATA_NUL;
		if (in[i] == '\n' && (i == 0 || in[i - 1] != '\r'))
			*flags |= SMTPD_DATA_BARE_LF;
		if (in[i] == '\r' && i + 1 < end && in[i + 1] != '\n')
			*flags |= SMTPD_DATA_BARE_CR;
	}
}

/* Random byte soup over the interesting alphabet, randomly chunked,
 * against the reference. */
static void
test_data_random(void)
{
	static const char	 alpha[] = "a.\r\n\0: ";
	static const char	*tokens[] = { "\r\n", ".\r\n", "\r\n.\r\n",
				    "\n.\n", "\r.\r", "..", ".\r" };
	struct smtpd_data	 d;
	uint64_t		 st = 0x5ea1b0575ea1b057ULL;
	char			 in[72];
	size_t			 len, want, i, off, n, used, want_used;
	size_t			 got_used;
	unsigned		 want_flags;
	int			 r, bad = 0, ends = 0;

	for (i = 0; i < 50000; i++) {
		/* single bytes, and now and then a significant token */
		want = rnd(&st) % (sizeof in - 8);
		for (len = 0; len < want; ) {
			if (rnd(&st) % 3 == 0) {
				const char *t = tokens[rnd(&st) %
				    nitems(tokens)];

				memcpy(in + len, t, strlen(t));
				len += strlen(t);
			} else
				in[len++] = alpha[rnd(&st) %
				    (sizeof alpha - 1)];
		}
		data_reference(in, len, &want_used, &want_flags);
		smtpd_data_init(&d, 1000, 1000, 1000);
		got_used = NO_END;
		for (off = 0; off < len; off += n) {
			n = 1 + rnd(&st) % 8;
			if (n > len - off)
				n = len - off;
			r = smtpd_data_feed(&d, in + off, n, &used);
			if (r == SMTPD_DATA_END) {
				got_used = off + used;
				break;
			}
		}
		if (got_used != want_used || (d.flags & (SMTPD_DATA_NUL |
		    SMTPD_DATA_BARE_LF | SMTPD_DATA_BARE_CR)) != want_flags) {
			if (bad++ < 3)
				diag("random input %zu: used %zd/%zd flags "
				    "%#x/%#x", i, (ssize_t)got_used,
				    (ssize_t)want_used, d.flags, want_flags);
		}
		if (want_used != NO_END)
			ends++;
		smtpd_data_clear(&d);
	}
	is_int(bad, 0, "data random: 50000 inputs agree with the reference "
	    "(%d ended)", ends);
}

int
main(void)
{
	if (hash_init() != 0) {
		printf("Bail out! hash_init\n");
		return 1;
	}
	test_path();
	test_mail_params();
	test_rcpt_params();
	test_auth_plain();
	test_patient();
	test_header();
	test_data();
	test_data_limits();
	test_data_big();
	test_data_random();
	return tap_done();
}
