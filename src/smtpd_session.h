/*
 * smtpd_session.h - one SMTP submission connection: the state machine, the
 * command parser and the DATA reader.
 *
 * smtpd.c accepts connections and makes one session per connection with
 * smtpd_session_new(); the session answers the client, turns each accepted
 * message into one submit_job per recipient, and replies 250 only once the
 * pipeline has committed every letter.  A session ends by itself (QUIT,
 * EOF, timeout, fatal protocol error) and then calls env->gone(arg) so the
 * listener can forget it; a session whose client left while its letters
 * were in the pipeline stays alive, without I/O, until the last one is done.
 *
 * LMTP mode (RFC 2033, env->lmtp, for lmtpd.c): the same state machine,
 * command parser and DATA reader, with LHLO instead of EHLO/HELO (those,
 * AUTH and STARTTLS are 500), any syntactically valid RCPT TO address
 * (at most env->max_rcpts), and, after the final dot, one
 * intake_job for the whole message handed to env->submit(); when its
 * done() runs the session answers one reply per accepted RCPT, in RCPT
 * order.  A session whose client left keeps no I/O and waits for done().
 *
 * The parsers below are pure functions over bytes, exported for the unit
 * tests and the fuzzers (tests/test_smtpd_parse.c).  Error policy: parsers
 * return 0 on success and a negative value with a static, content-free
 * reason in *why_r; the DATA reader records problems as flags and is judged
 * once at the end of the data by smtpd_data_verdict().
 */
#ifndef SEALPOST_SMTPD_SESSION_H
#define SEALPOST_SMTPD_SESSION_H

#include <stddef.h>
#include <stdint.h>

struct daemon;
struct event_base;
struct intake_job;
struct sockaddr;
struct tlsserver;
struct smtpd_session;

/* Protocol bounds (RFC 5321 section 4.5.3.1). */
#define SMTPD_MAX_CMD_LINE	512	/* command line, incl. CRLF */
#define SMTPD_MAX_MAILBOX	254	/* Mailbox (Path minus "<>") */
#define SMTPD_MAX_LOCAL		64	/* Local-part */
#define SMTPD_MAX_DOMAIN	253	/* Domain */
#define SMTPD_MAX_TOKEN		256	/* AUTH PLAIN passwd (API token) */
#define SMTPD_MAX_AUTHCID	256	/* AUTH PLAIN authcid */
#define SMTPD_MAX_ERRORS	10	/* 4xx/5xx replies before 421 */
#define SMTPD_MAX_AUTH_FAILURES	3	/* failed AUTH before 421 */
#define SMTPD_MAX_PATIENT_DIGITS 18	/* patient-<id>: id < 10^18 */

/* What every session of one listener shares; owned by smtpd.c. */
struct smtpd_session_env {
	struct daemon	*d;
	struct tlsserver *tls;		/* NULL: no STARTTLS offered */
	const char	*hostname;	/* greeting and EHLO name */
	int		 plaintext_auth; /* AUTH allowed off loopback without
					   TLS (allow_plaintext, no TLS) */
	void		(*gone)(void *arg); /* the session freed itself */

	/*
	 * LMTP mode (lmtpd.c).  Then d is NULL and the fields below stand
	 * in for the daemon's: the loop, the drain flag (set by the
	 * listener) and the bounds.  The processor takes a job (submit)
	 * and, once done() ran, the session frees it with job_free.
	 */
	int		 lmtp;
	struct event_base *base;
	int		 draining;	/* refuse new work: 421 */
	int64_t		 timeout;	/* seconds per command */
	size_t		 max_line;	/* DATA line incl. CRLF */
	size_t		 max_header;
	size_t		 max_size;	/* message bytes */
	size_t		 max_rcpts;
	void		(*submit)(struct intake_job *, void *);
	void		*submit_arg;
	void		(*job_free)(struct intake_job **);
};

/*
 * Start a session on an accepted, non-blocking socket: the session owns fd
 * from now on and greets the client.  `arg' is passed back to env->gone.
 */
struct smtpd_session *smtpd_session_new(const struct smtpd_session_env *,
	    int fd, const struct sockaddr *, int socklen, void *arg);
/*
 * Shutdown: an idle session (between commands) says "421 4.3.2" and closes
 * (1 is returned); one in DATA or waiting for a commit finishes its
 * transaction first (0).  The session ends by itself later: env->gone.
 */
int	 smtpd_session_shutdown(struct smtpd_session *);
/* Forced teardown (smtpd_free): no reply, env->gone is NOT called, and
 * jobs still in the pipeline are discarded when they come back. */
void	 smtpd_session_free(struct smtpd_session **);

/* ---- parsers (pure; for the unit tests and fuzzers) ------------------ */

/*
 * Parse a Path (RCPT TO) or a Reverse-path (MAIL FROM, null_ok) at s.
 * Copies the Mailbox, domain lower-cased, to mbox (size at least
 * SMTPD_MAX_MAILBOX + 1; "" for the null path "<>") and points *rest_r at
 * the parameters after '>' (leading spaces skipped).  0 or -1.
 */
int	 smtpd_parse_path(const char *s, int null_ok, char *mbox,
	    size_t mboxsz, const char **rest_r, const char **why_r);

enum smtpd_body {
	SMTPD_BODY_NONE = 0,
	SMTPD_BODY_7BIT,
	SMTPD_BODY_8BITMIME
};

struct smtpd_mail_params {
	int64_t		 size;		/* SIZE=, -1 when absent */
	int		 body;		/* enum smtpd_body */
};

#define SMTPD_PARAM_SYNTAX	-1	/* 501 5.5.4 */
#define SMTPD_PARAM_UNKNOWN	-2	/* 555 5.5.4 */

/* MAIL FROM parameters (SIZE, BODY, AUTH); 0 or SMTPD_PARAM_*. */
int	 smtpd_parse_mail_params(const char *, struct smtpd_mail_params *,
	    const char **why_r);
/* RCPT TO parameters: none are supported; 0 or SMTPD_PARAM_*. */
int	 smtpd_parse_rcpt_params(const char *, const char **why_r);

/*
 * Decode an AUTH PLAIN response (RFC 4616: [authzid] NUL authcid NUL
 * passwd, in base64) into authcid and passwd (NUL-terminated; the caller
 * wipes passwd).  0 or -1.
 */
int	 smtpd_auth_plain_decode(const char *b64, size_t len, char *authcid,
	    size_t authcidsz, char *passwd, size_t passwdsz,
	    const char **why_r);

/*
 * A patient address: "patient-<id>@<domain>", the prefix in any case, id
 * decimal without leading zeros, 1 <= id < 10^18.  Sets *id and points
 * *domain_r into mbox.  0 or -1.
 */
int	 smtpd_parse_patient(const char *mbox, int64_t *id,
	    const char **domain_r, const char **why_r);

/*
 * The unfolded, trimmed value of the first header field `name' in the
 * header section of msg (which ends at the first empty line).  1 when
 * found, 0 when absent, -1 when the value does not fit in out.
 */
int	 smtpd_header_get(const char *msg, size_t len, const char *name,
	    char *out, size_t outsz);

/* ---- the DATA reader: a chunk-fed state machine ---------------------- */

#define SMTPD_DATA_BARE_LF	0x01	/* LF not preceded by CR */
#define SMTPD_DATA_BARE_CR	0x02	/* CR not followed by LF */
#define SMTPD_DATA_NUL		0x04
#define SMTPD_DATA_LONG_LINE	0x08	/* a line over max_line */
#define SMTPD_DATA_BIG_HEADER	0x10	/* header section over max_header */
#define SMTPD_DATA_TOO_BIG	0x20	/* message over max_size */

enum smtpd_data_result {
	SMTPD_DATA_MORE = 0,		/* every byte consumed: feed more */
	SMTPD_DATA_END = 1		/* "CRLF.CRLF" seen: *used bytes were
					   the message, the rest is not */
};

struct smtpd_data {
	size_t		 max_line;	/* bytes, incl. CRLF */
	size_t		 max_header;
	size_t		 max_size;
	int		 st;		/* reader state */
	int		 in_header;
	int		 hkind;		/* this line: header or body? */
	size_t		 hname;		/* field-name bytes so far */
	size_t		 linelen;	/* wire bytes of this line */
	size_t		 header_size;
	uint64_t	 total;		/* message bytes (unstuffed) */
	unsigned	 flags;		/* SMTPD_DATA_* */
	char		*buf;		/* the message, while acceptable */
	size_t		 len, cap;
};

void	 smtpd_data_init(struct smtpd_data *, size_t max_line,
	    size_t max_header, size_t max_size);
/*
 * Feed wire bytes (dot-stuffed, CRLF lines).  Only CR LF "." CR LF ends
 * the data: a bare LF or CR never starts a line, so "\n.\n", "\r.\r",
 * "\n.\r\n" and friends are message bytes (and flag the message).
 */
int	 smtpd_data_feed(struct smtpd_data *, const char *, size_t,
	    size_t *used);
/* After SMTPD_DATA_END: 0 when acceptable, else -1 with the SMTP reply
 * ("554 5.6.0 ...", no CRLF) in reply. */
int	 smtpd_data_verdict(const struct smtpd_data *, char *reply,
	    size_t replysz);
/* Take the message (malloc'd, not NUL-terminated); the reader is left
 * empty. */
char	*smtpd_data_take(struct smtpd_data *, size_t *lenp);
/* Wipe and free what the reader holds. */
void	 smtpd_data_clear(struct smtpd_data *);

#endif
