/*
 * smtpd_session.c - one SMTP submission connection (RFC 5321, 3207, 4954,
 * 2920, 1870, 6152, 2034): the state machine, the command parser and the
 * DATA reader.
 *
 * States (smtpd_enter_state() logs every "old -> new" at debug):
 *
 *   accept, "220 <host> ESMTP sealpost"
 *      |
 *      v          EHLO/HELO                      AUTH PLAIN (no initial resp.)
 *   GREETED -----------------> HELO -----------------------------> AUTH
 *      ^                      |  ^  ^ <---- 235 / 535 / 501 --------'
 *      |  TLS handshake done  |  |  |
 *     TLS <---- STARTTLS -----'  |  '-------- RSET / EHLO --------.
 *                                |                                |
 *                  MAIL FROM 250 |                                |
 *                                v     RCPT TO 250                |
 *                               MAIL ---------------> RCPT -------'
 *                                                     |  DATA 354
 *                                                     v
 *                       HELO <-- 250/451/554 -- COMMIT <-- DATA
 *                                                  end of data (CRLF.CRLF)
 *
 *   any state: QUIT, timeout, error limit, shutdown, fatal protocol error
 *   -> QUIT (last reply queued) -> flushed -> freed.
 *
 * Commands are read only in GREETED, HELO, MAIL and RCPT; the command table
 * says in which of them each verb is valid, anything else is 503 5.5.1.
 * AUTH reads one SASL line, DATA feeds the DATA reader, TLS and COMMIT read
 * nothing (input stays buffered: pipelined commands after the final dot run
 * once the commit is answered).
 *
 * Policy decisions:
 *  - MAIL always needs an authenticated client (AUTH PLAIN, the password is
 *    the client's API token): there is no address allow-list, so there is
 *    no option to turn AUTH off.
 *  - AUTH is offered over TLS, to loopback peers, and off loopback without
 *    TLS only when the listener has no TLS and allow_plaintext is set.
 *  - The author is the practice's clinician whose work address is the MAIL
 *    FROM address, else the client's default author.
 *  - A DATA line longer than smtp.max_line_length is "500 5.6.0" (RFC 5321
 *    4.5.3.1.10 gives 500 for a line too long); header section and message
 *    size limits are "552 5.3.4"; bare CR/LF in DATA is "550 5.6.0", NUL
 *    is "554 5.6.0".  Each is answered only at the real end of the data.
 *  - A command line over 512 bytes (with CRLF) is "500 5.5.2"; without its
 *    end in sight the session is closed, as OpenSMTPD does.
 *  - Bytes pipelined after DATA (before 354) or after STARTTLS (before the
 *    handshake: CVE-2011-0411) are "554 5.5.0" and close the session.
 *  - Priority: "Importance: high", "Priority: urgent" or "X-Priority: 1|2"
 *    in the message header make the letter urgent, else routine.
 *  - Idempotency key per recipient: "smtp:" + the Message-ID (or the hex
 *    SHA-256 of the message when it has none) + ":" + patient id, so a
 *    client retrying after a 451 or a lost 250 never makes a second letter.
 *  - A Message-ID reused for a different message (idempotency conflict)
 *    is "554 5.6.0"; a commit failure is "451 4.3.0" (retry: what was
 *    committed comes back as a duplicate); shutdown is "421 4.3.2".
 *  - Each recipient's job owns a copy of the message: copies in the
 *    pipeline at once stay within SMTPD_TX_INFLIGHT_BYTES.
 *  - A transaction ending while the daemon drains is "421 4.3.2" with
 *    nothing committed; idle sessions are told the same and closed.
 *  - Logs carry the session id, state, event and ids (client, author,
 *    patient, letters), never addresses, headers or content.
 *
 * LMTP mode (RFC 2033; env->lmtp, lmtpd.c) walks the same states:
 *
 *   "220 <host> LMTP sealpost" -> GREETED --LHLO--> HELO --MAIL--> MAIL
 *   --RCPT--> RCPT --DATA--> DATA --CRLF.CRLF--> COMMIT --done()--> HELO
 *
 *  - EHLO, HELO, AUTH and STARTTLS are not LMTP commands: 500 5.5.1, as
 *    LHLO is to an SMTP session.  There is no AUTH: the listener is on
 *    loopback next to the practice's own MX (config validation).
 *  - MAIL FROM takes any valid Reverse-path (SIZE over the bound: 552);
 *    RCPT TO any valid Forward-path, at most env->max_rcpts (then 452
 *    4.5.3): which recipients are ours is the intake's decision.
 *  - DATA without a successful RCPT is 503 (RFC 2033 4.2).  The DATA
 *    reader and its bounds are the SMTP ones, with env->max_size.
 *  - After the final dot every accepted RCPT gets one reply, in RCPT
 *    order (RFC 2033 4.2): a refused message (bounds, bare CR/LF, NUL)
 *    gets the reader's verdict once per recipient; an accepted one goes
 *    to the intake as one intake_job, and the replies are its results,
 *    written only once done() brought all of them.  Those replies do not
 *    count towards SMTPD_MAX_ERRORS: they judge the message, not the
 *    client.
 *  - The data ending while the listener drains: "451 4.3.2" per
 *    recipient, then 421 and close (nothing was handed over).
 *  - Logs say "lmtp session=..." and carry counts and outcomes, never
 *    addresses.
 *
 * Public: smtpd_session_new, smtpd_session_shutdown, smtpd_session_free and
 * the pure parsers (smtpd_parse_*, smtpd_auth_plain_decode,
 * smtpd_header_get, smtpd_data_*).
 */
#include "build.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "age.h"
#include "config.h"
#include "daemon.h"
#include "hash.h"
#include "intake.h"
#include "letter.h"
#include "log.h"
#include "smtpd_session.h"

/* Longest Message-ID used as an idempotency key ("smtp:" + it + ":" + a
 * 19-digit id must fit the store's 255-octet key). */
#define SMTPD_MSGID_KEY_MAX	200
#include "store.h"
#include "submit.h"
#include "tlsserver.h"
#include "util.h"

enum smtpd_state {
	SMTPD_S_GREETED,	/* 220 sent: EHLO/HELO expected */
	SMTPD_S_HELO,		/* greeted, no transaction */
	SMTPD_S_AUTH,		/* "334 " sent: one SASL line expected */
	SMTPD_S_TLS,		/* STARTTLS: handshake running */
	SMTPD_S_MAIL,		/* MAIL accepted: RCPT expected */
	SMTPD_S_RCPT,		/* >= 1 RCPT accepted: RCPT or DATA */
	SMTPD_S_DATA,		/* 354 sent: reading the message */
	SMTPD_S_COMMIT,		/* letters in the pipeline */
	SMTPD_S_QUIT		/* last reply queued: flush, then free */
};

/* One recipient of the transaction: a patient, and the seal's keys. */
struct smtpd_rcpt {
	int64_t		 patient_id;
	char		*address;		/* patient's address or NULL */
	unsigned char	 pks[SUBMIT_MAX_RECIPIENTS][STORE_KEY_LEN];
	size_t		 npks;
	struct submit_job *job;			/* in the pipeline */
	enum submit_status status;
	int64_t		 letter_id;
	char		 error[200];
};

/* The mail transaction: MAIL, RCPTs, the message. */
struct smtpd_tx {
	int64_t		 author_id;
	unsigned char	 author_pk[STORE_KEY_LEN];
	struct smtpd_rcpt *rcpts;
	size_t		 nrcpts;
	struct smtpd_data data;
	int		 data_active;

	/* after the data: what every recipient's job shares */
	char		*raw;			/* the message */
	size_t		 rawlen;
	unsigned char	 hash[HASH_SHA256_LEN];	/* SHA-256(raw) */
	char		*idem_base;		/* Message-ID or hex hash */
	int		 priority;
	size_t		 next;			/* next rcpt to enqueue */
	size_t		 inflight;		/* jobs in the pipeline */

	/* LMTP: the envelope recipients, then the job in the intake */
	char		**lrcpts;
	size_t		 nlrcpts;
	struct intake_job *ljob;
};

/*
 * Each job owns a copy of the message; copies in the pipeline at once are
 * bounded by this budget (at least one job always runs), so a 25 MB message
 * to 100 patients never holds 2.5 GB.
 */
#define SMTPD_TX_INFLIGHT_BYTES	(64u * 1024 * 1024)

/*
 * A client that pipelines commands without reading the replies stops
 * being read once this much output waits for it (OpenSMTPD pauses the
 * same way), so replies cannot pile up without bound.
 */
#define SMTPD_MAX_PENDING_OUTPUT (64u * 1024)

struct smtpd_session {
	uint64_t	 id;
	char		 idstr[17];
	const struct smtpd_session_env *env;
	struct daemon	*d;
	void		*arg;
	int		 lmtp;			/* RFC 2033 mode */
	const char	*proto;			/* "smtp" | "lmtp", for logs */
	void		(*job_free)(struct intake_job **);

	struct bufferevent *bev;		/* NULL once the client left */
	struct event	*ev_free;
	enum smtpd_state state;
	char		 peer[64];
	int		 loopback;
	int		 tls;			/* TLS is up */
	int		 esmtp;			/* EHLO (not HELO) */
	int		 errors;
	int		 auth_failures;
	int		 out_paused;		/* reading paused on output */

	/* the authenticated client */
	int		 authenticated;
	int64_t		 client_id;
	int64_t		 practice_id;
	int64_t		 default_author_id;
	char		*domain;		/* practice mail domain */
	unsigned char	 archive_pk[STORE_KEY_LEN];

	struct smtpd_tx	 tx;
	size_t		 npending;		/* recipients not answered */
	int		 pumping;
	uint64_t	 nletters;		/* accepted in this session */
};

struct smtpd_cmd {
	const char	*name;
	unsigned	 modes;			/* CM_SMTP and/or CM_LMTP */
	unsigned	 states;		/* where it is valid */
	void		(*proceed)(struct smtpd_session *, const char *);
};

#define CM_SMTP		0x1
#define CM_LMTP		0x2
#define CM_BOTH		(CM_SMTP | CM_LMTP)

#define ST(s)		(1u << (s))
#define ST_CMD		(ST(SMTPD_S_GREETED) | ST(SMTPD_S_HELO) | \
			 ST(SMTPD_S_MAIL) | ST(SMTPD_S_RCPT))

/* DATA reader states. */
enum {
	DS_BOL,			/* at the start of a line */
	DS_DOT,			/* "." at the start of a line */
	DS_DOTCR,		/* ".\r" at the start of a line */
	DS_TEXT,		/* inside a line */
	DS_CR,			/* "\r" inside a line */
	DS_END			/* CRLF.CRLF seen */
};

/* Header classification of the current DATA line. */
enum {
	HK_UNDECIDED,
	HK_HEADER,
	HK_BODY
};

static const char	*smtpd_strstate(enum smtpd_state);
static void		 smtpd_enter_state(struct smtpd_session *,
			    enum smtpd_state);
static void		 smtpd_log(struct smtpd_session *, int, const char *,
			    ...) __attribute__((format(printf, 3, 4)));

/* smtpd_log() levels */
#define SL_INFO		0
#define SL_WARN		1
#define SL_DEBUG	2
static void		 smtpd_reply(struct smtpd_session *, const char *, ...)
			    __attribute__((format(printf, 2, 3)));
static void		 smtpd_readcb(struct bufferevent *, void *);
static void		 smtpd_writecb(struct bufferevent *, void *);
static void		 smtpd_eventcb(struct bufferevent *, short, void *);
static void		 smtpd_freecb(evutil_socket_t, short, void *);
static void		 smtpd_io(struct smtpd_session *, int);
static void		 smtpd_set_io(struct smtpd_session *);
static void		 smtpd_process(struct smtpd_session *);
static int		 smtpd_getline(struct smtpd_session *, char *, size_t);
static void		 smtpd_command(struct smtpd_session *, char *);
static void		 smtpd_auth_response(struct smtpd_session *, char *);
static int		 smtpd_data_input(struct smtpd_session *);
static void		 smtpd_close(struct smtpd_session *, int);
static void		 smtpd_check_flushed(struct smtpd_session *);
static void		 smtpd_release(struct smtpd_session *);
static void		 smtpd_destroy(struct smtpd_session *);
static int		 smtpd_auth_allowed(struct smtpd_session *);
static void		 smtpd_auth_plain(struct smtpd_session *,
			    const char *, size_t);
static void		 smtpd_tx_reset(struct smtpd_session *);
static void		 smtpd_tx_commit(struct smtpd_session *);
static void		 smtpd_tx_pump(struct smtpd_session *);
static void		 smtpd_job_done(struct submit_job *, void *);
static void		 smtpd_job_discard(struct submit_job *, void *);
static void		 smtpd_tx_answer(struct smtpd_session *);
static void		 smtpd_cmd_helo(struct smtpd_session *, const char *);
static void		 smtpd_cmd_ehlo(struct smtpd_session *, const char *);
static void		 smtpd_cmd_starttls(struct smtpd_session *,
			    const char *);
static void		 smtpd_cmd_auth(struct smtpd_session *, const char *);
static int		 smtpd_mail_args(struct smtpd_session *, const char *,
			    int, char *, struct smtpd_mail_params *);
static int		 smtpd_rcpt_args(struct smtpd_session *, const char *,
			    char *);
static void		 smtpd_cmd_mail(struct smtpd_session *, const char *);
static void		 smtpd_cmd_rcpt(struct smtpd_session *, const char *);
static void		 smtpd_cmd_data(struct smtpd_session *, const char *);
static void		 smtpd_cmd_rset(struct smtpd_session *, const char *);
static void		 smtpd_cmd_noop(struct smtpd_session *, const char *);
static void		 smtpd_cmd_quit(struct smtpd_session *, const char *);
static void		 smtpd_cmd_vrfy(struct smtpd_session *, const char *);
static void		 smtpd_cmd_help(struct smtpd_session *, const char *);
static void		 smtpd_cmd_unimplemented(struct smtpd_session *,
			    const char *);
static int		 smtpd_is_atext(int);
static const char	*smtpd_parse_domain(const char *, size_t *);
static void		 smtpd_data_put(struct smtpd_data *, const char *,
			    size_t);
static void		 smtpd_data_eol(struct smtpd_data *);
static int		 smtpd_priority(const char *, size_t);
static void		 smtpd_sanitize(char *);
static int		 smtpd_printable(const char *);
static int		 smtpd_draining(struct smtpd_session *);
static void		 smtpd_cmd_lhlo(struct smtpd_session *, const char *);
static void		 smtpd_cmd_lmtp_mail(struct smtpd_session *,
			    const char *);
static void		 smtpd_cmd_lmtp_rcpt(struct smtpd_session *,
			    const char *);
static void		 smtpd_lmtp_reply_each(struct smtpd_session *,
			    const char *);
static void		 smtpd_lmtp_commit(struct smtpd_session *);
static void		 smtpd_lmtp_done(struct intake_job *, void *);
static void		 smtpd_lmtp_discard(struct intake_job *, void *);
static void		 smtpd_tx_resume(struct smtpd_session *, int);

/* I/O events, one switch in smtpd_io(). */
enum {
	SMTPD_IO_DATAIN,		/* input arrived */
	SMTPD_IO_LOWAT,			/* output flushed */
	SMTPD_IO_CONNECTED,		/* TLS handshake done */
	SMTPD_IO_EOF,
	SMTPD_IO_ERROR,
	SMTPD_IO_TIMEOUT
};

/* A verb not of the session's mode is unknown to it (500). */
static const struct smtpd_cmd smtpd_cmds[] = {
	{ "EHLO",	CM_SMTP, ST_CMD,		smtpd_cmd_ehlo },
	{ "HELO",	CM_SMTP, ST_CMD,		smtpd_cmd_helo },
	{ "LHLO",	CM_LMTP, ST_CMD,		smtpd_cmd_lhlo },
	{ "STARTTLS",	CM_SMTP, ST(SMTPD_S_HELO),	smtpd_cmd_starttls },
	{ "AUTH",	CM_SMTP, ST(SMTPD_S_HELO),	smtpd_cmd_auth },
	{ "MAIL",	CM_SMTP, ST(SMTPD_S_HELO),	smtpd_cmd_mail },
	{ "MAIL",	CM_LMTP, ST(SMTPD_S_HELO),
	    smtpd_cmd_lmtp_mail },
	{ "RCPT",	CM_SMTP, ST(SMTPD_S_MAIL) | ST(SMTPD_S_RCPT),
	    smtpd_cmd_rcpt },
	{ "RCPT",	CM_LMTP, ST(SMTPD_S_MAIL) | ST(SMTPD_S_RCPT),
	    smtpd_cmd_lmtp_rcpt },
	{ "DATA",	CM_BOTH, ST(SMTPD_S_MAIL) | ST(SMTPD_S_RCPT),
	    smtpd_cmd_data },
	{ "RSET",	CM_BOTH, ST_CMD,		smtpd_cmd_rset },
	{ "NOOP",	CM_BOTH, ST_CMD,		smtpd_cmd_noop },
	{ "QUIT",	CM_BOTH, ST_CMD,		smtpd_cmd_quit },
	{ "VRFY",	CM_BOTH, ST_CMD,		smtpd_cmd_vrfy },
	{ "HELP",	CM_BOTH, ST_CMD,		smtpd_cmd_help },
	{ "EXPN",	CM_BOTH, ST_CMD,	smtpd_cmd_unimplemented },
	{ "BDAT",	CM_BOTH, ST_CMD,	smtpd_cmd_unimplemented },
	{ "ETRN",	CM_BOTH, ST_CMD,	smtpd_cmd_unimplemented },
	{ "TURN",	CM_BOTH, ST_CMD,	smtpd_cmd_unimplemented },
};

/* ---- state ----------------------------------------------------------- */

/* The name of a state, for logs. */
static const char *
smtpd_strstate(enum smtpd_state st)
{
	switch (st) {
	case SMTPD_S_GREETED:	return "greeted";
	case SMTPD_S_HELO:	return "helo";
	case SMTPD_S_AUTH:	return "auth";
	case SMTPD_S_TLS:	return "tls";
	case SMTPD_S_MAIL:	return "mail";
	case SMTPD_S_RCPT:	return "rcpt";
	case SMTPD_S_DATA:	return "data";
	case SMTPD_S_COMMIT:	return "commit";
	case SMTPD_S_QUIT:	return "quit";
	}
	return "unknown";
}

/* Move to a new state, logging the transition. */
static void
smtpd_enter_state(struct smtpd_session *s, enum smtpd_state st)
{
	if (s->state == st)
		return;
	log_debug("%s session=%s state=%s event=state new=%s", s->proto,
	    s->idstr, smtpd_strstate(s->state), smtpd_strstate(st));
	s->state = st;
}

/* Log one line led by the session id and state, at level SL_*. */
static void
smtpd_log(struct smtpd_session *s, int level, const char *fmt, ...)
{
	char	 msg[480];
	va_list	 ap;

	if (level == SL_DEBUG && !log_get_debug())
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (level == SL_WARN)
		log_warnx("%s session=%s state=%s %s", s->proto, s->idstr,
		    smtpd_strstate(s->state), msg);
	else if (level == SL_DEBUG)
		log_debug("%s session=%s state=%s %s", s->proto, s->idstr,
		    smtpd_strstate(s->state), msg);
	else
		log_info("%s session=%s state=%s %s", s->proto, s->idstr,
		    smtpd_strstate(s->state), msg);
}

/* Queue one reply line (CRLF added); 4xx/5xx replies count as errors. */
static void
smtpd_reply(struct smtpd_session *s, const char *fmt, ...)
{
	char	 line[SMTPD_MAX_CMD_LINE];
	va_list	 ap;
	int	 n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof line - 2, fmt, ap);
	va_end(ap);
	if (n < 0)
		log_panic("smtp session=%s reply format failed", s->idstr);
	if ((size_t)n >= sizeof line - 2)
		n = sizeof line - 3;
	if (line[0] == '4' || line[0] == '5') {
		s->errors++;
		smtpd_log(s, SL_INFO, "event=reply code=%.3s", line);
	} else
		log_debug("%s session=%s state=%s event=reply code=%.3s",
		    s->proto, s->idstr, smtpd_strstate(s->state), line);
	if (s->bev == NULL)
		return;
	line[n++] = '\r';
	line[n++] = '\n';
	bufferevent_write(s->bev, line, n);
}

/* ---- life cycle ------------------------------------------------------ */

/* Start a session on an accepted socket and greet the client. */
struct smtpd_session *
smtpd_session_new(const struct smtpd_session_env *env, int fd,
    const struct sockaddr *sa, int socklen, void *arg)
{
	struct smtpd_session	*s;
	struct event_base	*base = env->lmtp ? env->base : env->d->base;
	char			 host[INET6_ADDRSTRLEN];

	s = xcalloc(1, sizeof *s);
	s->env = env;
	s->d = env->lmtp ? NULL : env->d;
	s->arg = arg;
	s->lmtp = env->lmtp;
	s->proto = s->lmtp ? "lmtp" : "smtp";
	s->job_free = env->job_free;
	if (s->lmtp && (base == NULL || env->submit == NULL ||
	    env->job_free == NULL))
		log_panic("lmtp: session without loop or processor");
	s->state = SMTPD_S_GREETED;
	hash_random(&s->id, sizeof s->id);
	snprintf(s->idstr, sizeof s->idstr, "%016llx",
	    (unsigned long long)s->id);

	strlcpy_sp(s->peer, "unknown", sizeof s->peer);
	if (sa != NULL && sa->sa_family == AF_INET &&
	    (size_t)socklen >= sizeof(struct sockaddr_in)) {
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr,
		    host, sizeof host);
		strlcpy_sp(s->peer, host, sizeof s->peer);
	} else if (sa != NULL && sa->sa_family == AF_INET6 &&
	    (size_t)socklen >= sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *sin6 = (const void *)sa;

		inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof host);
		/* ::ffff:127.0.0.1 is loopback too */
		if (strncmp(host, "::ffff:", 7) == 0 && strchr(host, '.'))
			strlcpy_sp(s->peer, host + 7, sizeof s->peer);
		else
			strlcpy_sp(s->peer, host, sizeof s->peer);
	}
	s->loopback = util_is_loopback(s->peer);

	s->ev_free = event_new(base, -1, 0, smtpd_freecb, s);
	if (s->ev_free == NULL)
		log_fatalx("smtp: event_new failed");
	s->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (s->bev == NULL)
		log_fatalx("smtp: bufferevent_socket_new failed");
	smtpd_set_io(s);

	smtpd_log(s, SL_INFO, "event=connect addr=%s", s->peer);
	smtpd_reply(s, "220 %s %s sealpost", env->hostname,
	    s->lmtp ? "LMTP" : "ESMTP");
	return s;
}

/* Callbacks, timeouts and events on the current bufferevent. */
static void
smtpd_set_io(struct smtpd_session *s)
{
	struct timeval	 tv;
	int64_t		 t = s->lmtp ? s->env->timeout :
			    s->d->cfg->smtp_timeout;

	tv.tv_sec = t > 0 ? (time_t)t : 300;
	tv.tv_usec = 0;
	bufferevent_setcb(s->bev, smtpd_readcb, smtpd_writecb, smtpd_eventcb,
	    s);
	bufferevent_set_timeouts(s->bev, &tv, &tv);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
}

/* Shutdown: close an idle session with 421; 1 if it is closing. */
int
smtpd_session_shutdown(struct smtpd_session *s)
{
	switch (s->state) {
	case SMTPD_S_GREETED:
	case SMTPD_S_HELO:
	case SMTPD_S_AUTH:
	case SMTPD_S_MAIL:
	case SMTPD_S_RCPT:
		smtpd_reply(s, "421 4.3.2 %s shutting down",
		    s->env->hostname);
		smtpd_close(s, 1);
		return 1;
	case SMTPD_S_TLS:
		smtpd_close(s, 0);
		return 1;
	case SMTPD_S_QUIT:
		return 1;
	case SMTPD_S_DATA:
	case SMTPD_S_COMMIT:
		return 0;
	}
	log_panic("smtp session=%s bad state %d", s->idstr, (int)s->state);
}

/* Forced teardown: discard pending jobs, free everything, no gone(). */
void
smtpd_session_free(struct smtpd_session **sp)
{
	struct smtpd_session	*s;
	size_t			 i;

	if (sp == NULL || (s = *sp) == NULL)
		return;
	*sp = NULL;
	for (i = 0; i < s->tx.nrcpts; i++) {
		struct submit_job *job = s->tx.rcpts[i].job;

		if (job != NULL) {
			job->done = smtpd_job_discard;
			job->arg = NULL;
			s->tx.rcpts[i].job = NULL;
		}
	}
	if (s->tx.ljob != NULL) {
		/* the job outlives the session: its done() only frees it */
		struct intake_job *job = s->tx.ljob;
		void (**freep)(struct intake_job **);

		freep = xmalloc(sizeof *freep);
		*freep = s->job_free;
		job->done = smtpd_lmtp_discard;
		job->arg = freep;
		s->tx.ljob = NULL;
	}
	s->npending = 0;
	s->env = NULL;
	smtpd_destroy(s);
}

/*
 * Close the connection: flush (the last reply goes out first) or at once.
 * The free itself always runs from the ev_free event, never inside a
 * bufferevent callback chain.
 */
static void
smtpd_close(struct smtpd_session *s, int flush)
{
	if (s->bev == NULL)
		return;
	smtpd_enter_state(s, SMTPD_S_QUIT);
	bufferevent_disable(s->bev, EV_READ);
	if (flush)
		smtpd_check_flushed(s);
	else
		event_active(s->ev_free, 0, 0);
}

/* In QUIT: schedule the free once all output (through TLS, too) is
 * gone. */
static void
smtpd_check_flushed(struct smtpd_session *s)
{
	struct bufferevent	*under;

	if (evbuffer_get_length(bufferevent_get_output(s->bev)) != 0)
		return;
	under = bufferevent_get_underlying(s->bev);
	if (under != NULL &&
	    evbuffer_get_length(bufferevent_get_output(under)) != 0) {
		/* the TLS layer has not flushed: look again shortly */
		struct timeval tv = { 0, 20000 };

		event_add(s->ev_free, &tv);
		return;
	}
	event_active(s->ev_free, 0, 0);
}

/* The ev_free event: release the connection (or re-check a TLS flush). */
static void
smtpd_freecb(evutil_socket_t fd, short what, void *arg)
{
	struct smtpd_session	*s = arg;

	(void)fd;
	if ((what & EV_TIMEOUT) && s->bev != NULL &&
	    s->state == SMTPD_S_QUIT) {
		struct bufferevent *under = bufferevent_get_underlying(s->bev);

		if (under != NULL &&
		    evbuffer_get_length(bufferevent_get_output(under)) != 0) {
			struct timeval tv = { 0, 20000 };

			event_add(s->ev_free, &tv);
			return;
		}
	}
	smtpd_release(s);
}

/* Drop the connection; free the session unless letters are pending. */
static void
smtpd_release(struct smtpd_session *s)
{
	if (s->bev != NULL) {
		smtpd_log(s, SL_INFO, "event=disconnect letters=%llu errors=%d",
		    (unsigned long long)s->nletters, s->errors);
		bufferevent_free(s->bev);
		s->bev = NULL;
	}
	if (s->npending > 0)
		return;		/* smtpd_tx_answer() finishes the job */
	if (s->env != NULL && s->env->gone != NULL)
		s->env->gone(s->arg);
	smtpd_destroy(s);
}

/* Free the session's memory and I/O. */
static void
smtpd_destroy(struct smtpd_session *s)
{
	if (s->bev != NULL)
		bufferevent_free(s->bev);
	if (s->ev_free != NULL)
		event_free(s->ev_free);
	smtpd_tx_reset(s);
	free(s->domain);
	hash_wipe(s, sizeof *s);
	free(s);
}

/* ---- I/O ------------------------------------------------------------- */

/* bufferevent read callback. */
static void
smtpd_readcb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	smtpd_io(arg, SMTPD_IO_DATAIN);
}

/* bufferevent write callback: the output buffer is empty. */
static void
smtpd_writecb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	smtpd_io(arg, SMTPD_IO_LOWAT);
}

/* bufferevent event callback. */
static void
smtpd_eventcb(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	if (what & BEV_EVENT_CONNECTED)
		smtpd_io(arg, SMTPD_IO_CONNECTED);
	else if (what & BEV_EVENT_TIMEOUT)
		smtpd_io(arg, SMTPD_IO_TIMEOUT);
	else if (what & BEV_EVENT_EOF)
		smtpd_io(arg, SMTPD_IO_EOF);
	else
		smtpd_io(arg, SMTPD_IO_ERROR);
}

/* Every connection event goes through this one switch. */
static void
smtpd_io(struct smtpd_session *s, int ev)
{
	char	 err[160];

	switch (ev) {
	case SMTPD_IO_DATAIN:
		if (s->state == SMTPD_S_TLS) {
			/* data after the handshake, before the event */
			s->tls = 1;
			smtpd_enter_state(s, SMTPD_S_GREETED);
		}
		smtpd_process(s);
		break;
	case SMTPD_IO_LOWAT:
		if (s->state == SMTPD_S_QUIT)
			smtpd_check_flushed(s);
		else if (s->out_paused) {
			s->out_paused = 0;
			if (s->state != SMTPD_S_COMMIT)
				bufferevent_enable(s->bev, EV_READ);
			smtpd_process(s);
		}
		break;
	case SMTPD_IO_CONNECTED:
		if (s->state != SMTPD_S_TLS)
			break;
		s->tls = 1;
		smtpd_log(s, SL_INFO, "event=starttls version=%s",
		    tlsserver_version(s->bev) ? tlsserver_version(s->bev) :
		    "unknown");
		smtpd_enter_state(s, SMTPD_S_GREETED);
		smtpd_process(s);
		break;
	case SMTPD_IO_EOF:
		smtpd_log(s, SL_INFO, "event=eof");
		smtpd_close(s, 0);
		break;
	case SMTPD_IO_ERROR:
		if (s->state == SMTPD_S_TLS || s->tls) {
			tlsserver_last_error(s->bev, err, sizeof err);
			smtpd_log(s, SL_INFO, "event=error tls=\"%s\"", err);
		} else
			smtpd_log(s, SL_INFO, "event=error errno=%d", errno);
		smtpd_close(s, 0);
		break;
	case SMTPD_IO_TIMEOUT:
		if (s->state == SMTPD_S_QUIT || s->state == SMTPD_S_TLS) {
			smtpd_close(s, 0);
			break;
		}
		smtpd_log(s, SL_INFO, "event=timeout");
		smtpd_reply(s, "421 4.4.2 %s timeout, closing connection",
		    s->env->hostname);
		bufferevent_enable(s->bev, EV_WRITE);
		smtpd_close(s, 1);
		break;
	default:
		log_panic("smtp session=%s unknown io event %d", s->idstr, ev);
	}
}

/* Work through the buffered input as far as the state allows. */
static void
smtpd_process(struct smtpd_session *s)
{
	char	 line[SMTPD_MAX_CMD_LINE + 1];
	int	 r;

	while (s->bev != NULL) {
		switch (s->state) {
		case SMTPD_S_DATA:
			if (smtpd_data_input(s) == 0)
				return;
			continue;
		case SMTPD_S_GREETED:
		case SMTPD_S_HELO:
		case SMTPD_S_MAIL:
		case SMTPD_S_RCPT:
		case SMTPD_S_AUTH:
			break;
		case SMTPD_S_TLS:
		case SMTPD_S_COMMIT:
		case SMTPD_S_QUIT:
			return;
		}
		if (evbuffer_get_length(bufferevent_get_output(s->bev)) >
		    SMTPD_MAX_PENDING_OUTPUT) {
			/* the client is not reading: wait for it */
			s->out_paused = 1;
			bufferevent_disable(s->bev, EV_READ);
			return;
		}
		r = smtpd_getline(s, line, sizeof line);
		if (r == 0)
			return;
		if (r < 0 && s->state == SMTPD_S_AUTH)
			/* the SASL exchange is over */
			smtpd_enter_state(s, SMTPD_S_HELO);
		if (r > 0) {
			if (s->state == SMTPD_S_AUTH)
				smtpd_auth_response(s, line);
			else
				smtpd_command(s, line);
			hash_wipe(line, sizeof line);
		}
		if (s->state == SMTPD_S_QUIT)
			return;
		if (s->auth_failures >= SMTPD_MAX_AUTH_FAILURES) {
			smtpd_reply(s, "421 4.7.0 %s too many authentication "
			    "failures, closing connection", s->env->hostname);
			smtpd_close(s, 1);
			return;
		}
		if (s->errors >= SMTPD_MAX_ERRORS) {
			smtpd_reply(s, "421 4.7.0 %s too many errors, closing "
			    "connection", s->env->hostname);
			smtpd_close(s, 1);
			return;
		}
	}
}

/*
 * Take one CRLF-terminated command line out of the input into buf (without
 * the CRLF).  1: a line; 0: need more input; -1: a bad line was answered
 * (and dropped, or the session is closing).
 */
static int
smtpd_getline(struct smtpd_session *s, char *buf, size_t bufsz)
{
	struct evbuffer		*in = bufferevent_get_input(s->bev);
	struct evbuffer_ptr	 p;
	size_t			 eol_len, len, i;

	p = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_LF);
	if (p.pos == -1) {
		if (evbuffer_get_length(in) >= SMTPD_MAX_CMD_LINE) {
			/* no end in sight: we cannot find the next command */
			smtpd_reply(s, "500 5.5.2 line too long");
			smtpd_close(s, 1);
			return -1;
		}
		return 0;
	}
	len = (size_t)p.pos + 1;		/* through the LF */
	if (len > SMTPD_MAX_CMD_LINE || len > bufsz - 1) {
		evbuffer_drain(in, len);
		smtpd_reply(s, "500 5.5.2 line too long");
		return -1;
	}
	evbuffer_remove(in, buf, len);
	buf[len] = '\0';
	if (len < 2 || buf[len - 2] != '\r') {
		smtpd_reply(s, "500 5.5.2 bare LF not permitted");
		return -1;
	}
	len -= 2;
	buf[len] = '\0';
	for (i = 0; i < len; i++) {
		if (buf[i] == '\r' || buf[i] == '\0') {
			smtpd_reply(s, "500 5.5.2 bare CR or NUL not "
			    "permitted");
			return -1;
		}
	}
	return 1;
}

/* Look the verb up in the command table, check the state, run it. */
static void
smtpd_command(struct smtpd_session *s, char *line)
{
	const struct smtpd_cmd	*c = NULL;
	char			*arg;
	char			 esc[40];
	size_t			 i, vlen;

	vlen = strcspn(line, " ");
	arg = line + vlen;
	while (*arg == ' ')
		arg++;
	for (i = 0; i < nitems(smtpd_cmds); i++) {
		if ((smtpd_cmds[i].modes & (s->lmtp ? CM_LMTP : CM_SMTP)) &&
		    strlen(smtpd_cmds[i].name) == vlen &&
		    strncasecmp(line, smtpd_cmds[i].name, vlen) == 0) {
			c = &smtpd_cmds[i];
			break;
		}
	}
	if (c == NULL) {
		log_debug("%s session=%s state=%s event=command verb=%s "
		    "unknown", s->proto, s->idstr, smtpd_strstate(s->state),
		    log_escape(esc, sizeof esc, line, vlen > 16 ? 16 : vlen));
		smtpd_reply(s, "500 5.5.1 command unrecognized");
		return;
	}
	log_debug("%s session=%s state=%s event=command verb=%s", s->proto,
	    s->idstr, smtpd_strstate(s->state), c->name);
	if (smtpd_draining(s)) {
		smtpd_reply(s, "421 4.3.2 %s shutting down",
		    s->env->hostname);
		smtpd_close(s, 1);
		return;
	}
	if ((c->states & ST(s->state)) == 0) {
		if (s->state == SMTPD_S_GREETED)
			smtpd_reply(s, "503 5.5.1 send %s first",
			    s->lmtp ? "LHLO" : "EHLO");
		else
			smtpd_reply(s, "503 5.5.1 bad sequence of commands");
		return;
	}
	c->proceed(s, arg);
}

/* ---- commands -------------------------------------------------------- */

/* HELO domain: plain SMTP, no extensions. */
static void
smtpd_cmd_helo(struct smtpd_session *s, const char *arg)
{
	if (*arg == '\0') {
		smtpd_reply(s, "501 5.5.4 syntax: HELO hostname");
		return;
	}
	smtpd_tx_reset(s);
	s->esmtp = 0;
	smtpd_enter_state(s, SMTPD_S_HELO);
	smtpd_reply(s, "250 %s", s->env->hostname);
}

/* EHLO domain: list the extensions. */
static void
smtpd_cmd_ehlo(struct smtpd_session *s, const char *arg)
{
	const char	*ext[8];
	char		 size[40];
	size_t		 n = 0, i;

	if (*arg == '\0') {
		smtpd_reply(s, "501 5.5.4 syntax: EHLO hostname");
		return;
	}
	smtpd_tx_reset(s);
	s->esmtp = 1;
	smtpd_enter_state(s, SMTPD_S_HELO);

	snprintf(size, sizeof size, "SIZE %lld",
	    (long long)s->d->cfg->max_letter_size);
	ext[n++] = size;
	ext[n++] = "8BITMIME";
	ext[n++] = "PIPELINING";
	ext[n++] = "ENHANCEDSTATUSCODES";
	if (s->env->tls != NULL && !s->tls)
		ext[n++] = "STARTTLS";
	if (smtpd_auth_allowed(s) && !s->authenticated)
		ext[n++] = "AUTH PLAIN";
	ext[n++] = "HELP";
	smtpd_reply(s, "250-%s", s->env->hostname);
	for (i = 0; i < n; i++)
		smtpd_reply(s, "250%c%s", i + 1 == n ? ' ' : '-', ext[i]);
}

/*
 * STARTTLS (RFC 3207).  Anything the client pipelined after the command
 * would be read as if it came over TLS (CVE-2011-0411): refuse and close.
 */
static void
smtpd_cmd_starttls(struct smtpd_session *s, const char *arg)
{
	struct bufferevent	*nbev;

	if (*arg != '\0') {
		smtpd_reply(s, "501 5.5.4 syntax: STARTTLS");
		return;
	}
	if (s->env->tls == NULL) {
		smtpd_reply(s, "454 4.7.0 TLS not available");
		return;
	}
	if (s->tls) {
		smtpd_reply(s, "503 5.5.1 TLS already active");
		return;
	}
	if (evbuffer_get_length(bufferevent_get_input(s->bev)) != 0) {
		smtpd_log(s, SL_WARN, "event=starttls-injection");
		smtpd_reply(s, "554 5.5.0 improper pipelining after STARTTLS");
		smtpd_close(s, 1);
		return;
	}
	smtpd_reply(s, "220 2.0.0 Ready to start TLS");
	/*
	 * The 220 sits in the plain bufferevent's output, ahead of anything
	 * the TLS filter will write: the client sends its ClientHello only
	 * after reading it.
	 */
	bufferevent_setcb(s->bev, NULL, NULL, NULL, NULL);
	nbev = tlsserver_starttls(s->env->tls, s->d->base, s->bev);
	if (nbev == NULL) {
		smtpd_log(s, SL_WARN, "event=starttls-failed");
		bufferevent_setcb(s->bev, smtpd_readcb, smtpd_writecb,
		    smtpd_eventcb, s);
		smtpd_close(s, 1);
		return;
	}
	s->bev = nbev;
	smtpd_set_io(s);
	/* RFC 3207 4.2: forget everything learnt before TLS */
	smtpd_tx_reset(s);
	s->esmtp = 0;
	smtpd_enter_state(s, SMTPD_S_TLS);
}

/* Is AUTH allowed on this connection? */
static int
smtpd_auth_allowed(struct smtpd_session *s)
{
	return s->tls || s->loopback || s->env->plaintext_auth;
}

/* AUTH PLAIN [initial-response] (RFC 4954, RFC 4616). */
static void
smtpd_cmd_auth(struct smtpd_session *s, const char *arg)
{
	size_t	 mlen = strcspn(arg, " ");
	const char *ir = arg + mlen;

	if (s->authenticated) {
		smtpd_reply(s, "503 5.5.1 already authenticated");
		return;
	}
	if (mlen == 0) {
		smtpd_reply(s, "501 5.5.4 syntax: AUTH mechanism");
		return;
	}
	if (mlen != 5 || strncasecmp(arg, "PLAIN", 5) != 0) {
		smtpd_reply(s, "504 5.5.4 unrecognized authentication type");
		return;
	}
	if (!smtpd_auth_allowed(s)) {
		smtpd_reply(s, "538 5.7.11 encryption required for requested "
		    "authentication mechanism");
		return;
	}
	while (*ir == ' ')
		ir++;
	if (*ir == '\0') {
		smtpd_enter_state(s, SMTPD_S_AUTH);
		smtpd_reply(s, "334 ");
		return;
	}
	if (strcmp(ir, "=") == 0)
		smtpd_auth_plain(s, NULL, 0);	/* an empty response */
	else
		smtpd_auth_plain(s, ir, strlen(ir));
}

/* The SASL line after "334 ". */
static void
smtpd_auth_response(struct smtpd_session *s, char *line)
{
	smtpd_enter_state(s, SMTPD_S_HELO);
	if (strcmp(line, "*") == 0) {
		smtpd_reply(s, "501 5.7.0 authentication cancelled");
		return;
	}
	smtpd_auth_plain(s, line, strlen(line));
}

/*
 * Check an AUTH PLAIN response: the password is the client's API token.
 * The caller wipes the line that held the response.
 */
static void
smtpd_auth_plain(struct smtpd_session *s, const char *b64, size_t len)
{
	struct store_client	*client = NULL;
	struct store_practice	*practice = NULL;
	unsigned char		 hash[HASH_SHA256_LEN];
	char			 authcid[SMTPD_MAX_AUTHCID + 1];
	char			 token[SMTPD_MAX_TOKEN + 1];
	const char		*why, *err;
	int			 r;

	if (smtpd_auth_plain_decode(b64 ? b64 : "", len, authcid,
	    sizeof authcid, token, sizeof token, &why) != 0) {
		s->auth_failures++;
		smtpd_log(s, SL_INFO, "event=auth result=malformed "
		    "reason=\"%s\"", why);
		smtpd_reply(s, "501 5.5.2 cannot decode AUTH response");
		goto out;
	}
	hash_sha256(token, strlen(token), hash);
	r = store_client_by_token(s->d->store, hash, &client, &err);
	if (r == STORE_ERROR || r == STORE_BUSY) {
		smtpd_log(s, SL_WARN, "event=auth result=temperror "
		    "reason=\"%s\"", err);
		smtpd_reply(s, "454 4.7.0 temporary authentication failure");
		goto out;
	}
	if (r == STORE_NOTFOUND || client->revoked) {
		s->auth_failures++;
		smtpd_log(s, SL_INFO, "event=auth result=fail%s",
		    r == STORE_OK ? " reason=revoked" : "");
		smtpd_reply(s, "535 5.7.8 authentication credentials invalid");
		goto out;
	}
	r = store_practice_get(s->d->store, client->practice_id, &practice,
	    &err);
	if (r != STORE_OK) {
		smtpd_log(s, SL_WARN, "event=auth result=temperror client=%lld "
		    "reason=\"%s\"", (long long)client->id,
		    r == STORE_NOTFOUND ? "no practice" : err);
		smtpd_reply(s, "454 4.7.0 temporary authentication failure");
		goto out;
	}
	s->authenticated = 1;
	s->client_id = client->id;
	s->practice_id = client->practice_id;
	s->default_author_id = client->default_author_id;
	free(s->domain);
	s->domain = xstrdup(practice->domain);
	memcpy(s->archive_pk, practice->archive_pk, STORE_KEY_LEN);
	smtpd_log(s, SL_INFO, "event=auth result=ok client=%lld practice=%lld",
	    (long long)s->client_id, (long long)s->practice_id);
	smtpd_reply(s, "235 2.7.0 Authentication successful");
out:
	store_client_free(&client);
	store_practice_free(&practice);
	hash_wipe(token, sizeof token);
	hash_wipe(authcid, sizeof authcid);
	hash_wipe(hash, sizeof hash);
}

/*
 * MAIL FROM:, up to its parameters: the reverse-path into mbox (of
 * SMTPD_MAX_MAILBOX + 1 bytes) and *p; 0, or -1 once the error is said.
 * need_auth: a client that has not authenticated gets 530 before its
 * path is read.
 */
static int
smtpd_mail_args(struct smtpd_session *s, const char *arg, int need_auth,
    char *mbox, struct smtpd_mail_params *p)
{
	const char	*rest, *why;
	int		 r;

	if (strncasecmp(arg, "FROM:", 5) != 0) {
		smtpd_reply(s, "501 5.5.4 syntax: MAIL FROM:<address>");
		return -1;
	}
	arg += 5;
	while (*arg == ' ')
		arg++;
	if (need_auth && !s->authenticated) {
		smtpd_reply(s, "530 5.7.0 authentication required");
		return -1;
	}
	if (smtpd_parse_path(arg, 1, mbox, SMTPD_MAX_MAILBOX + 1, &rest,
	    &why) != 0) {
		smtpd_reply(s, "501 5.1.7 bad sender address syntax (%s)",
		    why);
		return -1;
	}
	if ((r = smtpd_parse_mail_params(rest, p, &why)) != 0) {
		smtpd_reply(s, "%s 5.5.4 %s",
		    r == SMTPD_PARAM_UNKNOWN ? "555" : "501", why);
		return -1;
	}
	return 0;
}

/* RCPT TO: and its parameters: the forward-path into mbox (of
 * SMTPD_MAX_MAILBOX + 1 bytes); 0, or -1 once the error is said. */
static int
smtpd_rcpt_args(struct smtpd_session *s, const char *arg, char *mbox)
{
	const char	*rest, *why;
	int		 r;

	if (strncasecmp(arg, "TO:", 3) != 0) {
		smtpd_reply(s, "501 5.5.4 syntax: RCPT TO:<address>");
		return -1;
	}
	arg += 3;
	while (*arg == ' ')
		arg++;
	if (smtpd_parse_path(arg, 0, mbox, SMTPD_MAX_MAILBOX + 1, &rest,
	    &why) != 0) {
		smtpd_reply(s, "501 5.1.3 bad recipient address syntax (%s)",
		    why);
		return -1;
	}
	if ((r = smtpd_parse_rcpt_params(rest, &why)) != 0) {
		smtpd_reply(s, "%s 5.5.4 %s",
		    r == SMTPD_PARAM_UNKNOWN ? "555" : "501", why);
		return -1;
	}
	return 0;
}

/*
 * mail = "MAIL FROM:" Reverse-path [SP Mail-parameters] CRLF
 * (RFC 5321 4.1.1.2; a space after the colon is tolerated).
 */
static void
smtpd_cmd_mail(struct smtpd_session *s, const char *arg)
{
	struct smtpd_mail_params p;
	struct store_clinician	*c = NULL;
	char			 mbox[SMTPD_MAX_MAILBOX + 1];
	const char		*err;
	int			 r;

	if (smtpd_mail_args(s, arg, 1, mbox, &p) != 0)
		return;
	if (p.size > s->d->cfg->max_letter_size) {
		smtpd_reply(s, "552 5.3.4 message size exceeds fixed limit");
		return;
	}

	/* the author: the clinician with this work address, or the
	 * client's default author */
	r = STORE_NOTFOUND;
	if (mbox[0] != '\0')
		r = store_clinician_by_email(s->d->store, s->practice_id, mbox,
		    &c, &err);
	if (r == STORE_NOTFOUND && s->default_author_id > 0)
		r = store_clinician_get(s->d->store, s->default_author_id, &c,
		    &err);
	if (r == STORE_ERROR || r == STORE_BUSY) {
		smtpd_log(s, SL_WARN, "event=mail result=temperror "
		    "reason=\"%s\"", err);
		smtpd_reply(s, "451 4.3.0 temporary lookup failure");
		goto out;
	}
	if (r == STORE_NOTFOUND || c->practice_id != s->practice_id) {
		smtpd_reply(s, "550 5.7.1 sender is not a clinician of this "
		    "practice");
		goto out;
	}
	if (!c->active) {
		smtpd_reply(s, "550 5.7.1 sender is not an active clinician");
		goto out;
	}
	smtpd_tx_reset(s);
	s->tx.author_id = c->id;
	memcpy(s->tx.author_pk, c->pk, STORE_KEY_LEN);
	smtpd_log(s, SL_DEBUG, "event=mail author=%lld size=%lld",
	    (long long)c->id, (long long)p.size);
	smtpd_enter_state(s, SMTPD_S_MAIL);
	smtpd_reply(s, "250 2.1.0 Ok");
out:
	store_clinician_free(&c);
}

/* rcpt = "RCPT TO:" ( "<Postmaster@" Domain ">" / "<Postmaster>" /
 *        Forward-path ) [SP Rcpt-parameters] CRLF  (RFC 5321 4.1.1.3) */
static void
smtpd_cmd_rcpt(struct smtpd_session *s, const char *arg)
{
	struct store_patient	*pt = NULL;
	struct smtpd_rcpt	*rc;
	char			 mbox[SMTPD_MAX_MAILBOX + 1];
	const char		*why, *err, *domain;
	int64_t			 id;
	size_t			 i;
	int			 r;

	if (smtpd_rcpt_args(s, arg, mbox) != 0)
		return;
	if ((int64_t)s->tx.nrcpts >= s->d->cfg->smtp_max_recipients ||
	    s->tx.nrcpts >= 1000) {
		smtpd_reply(s, "452 4.5.3 too many recipients");
		return;
	}
	domain = strchr(mbox, '@');
	if (domain == NULL || strcasecmp(domain + 1, s->domain) != 0) {
		smtpd_reply(s, "550 5.7.1 relaying denied: not a patient "
		    "address of this practice");
		return;
	}
	if (smtpd_parse_patient(mbox, &id, &domain, &why) != 0) {
		smtpd_reply(s, "550 5.1.1 no such patient (address must be "
		    "patient-<id>@%s)", s->domain);
		return;
	}
	for (i = 0; i < s->tx.nrcpts; i++) {
		if (s->tx.rcpts[i].patient_id == id) {
			smtpd_reply(s, "250 2.1.5 Ok (duplicate recipient)");
			return;
		}
	}
	r = store_patient_get(s->d->store, id, &pt, &err);
	if (r == STORE_ERROR || r == STORE_BUSY) {
		smtpd_log(s, SL_WARN, "event=rcpt result=temperror "
		    "reason=\"%s\"", err);
		smtpd_reply(s, "451 4.3.0 temporary lookup failure");
		goto out;
	}
	if (r == STORE_NOTFOUND || pt->practice_id != s->practice_id) {
		smtpd_log(s, SL_INFO, "event=rcpt result=unknown patient=%lld",
		    (long long)id);
		smtpd_reply(s, "550 5.1.1 no such patient");
		goto out;
	}

	s->tx.rcpts = xreallocarray(s->tx.rcpts, s->tx.nrcpts + 1,
	    sizeof *s->tx.rcpts);
	rc = &s->tx.rcpts[s->tx.nrcpts];
	memset(rc, 0, sizeof *rc);
	rc->patient_id = pt->id;
	rc->address = pt->email != NULL ? xstrdup(pt->email) : NULL;
	memcpy(rc->pks[rc->npks++], pt->pk, STORE_KEY_LEN);
	if (pt->age_recipient != NULL && pt->age_recipient[0] != '\0') {
		if (age_recipient_parse(pt->age_recipient,
		    rc->pks[rc->npks]) != 0) {
			smtpd_log(s, SL_WARN, "event=rcpt result=temperror "
			    "patient=%lld reason=\"bad stored age recipient\"",
			    (long long)id);
			free(rc->address);
			smtpd_reply(s, "451 4.3.0 recipient key error");
			goto out;
		}
		rc->npks++;
	}
	memcpy(rc->pks[rc->npks++], s->tx.author_pk, STORE_KEY_LEN);
	memcpy(rc->pks[rc->npks++], s->archive_pk, STORE_KEY_LEN);
	s->tx.nrcpts++;
	smtpd_log(s, SL_DEBUG, "event=rcpt patient=%lld", (long long)id);
	smtpd_enter_state(s, SMTPD_S_RCPT);
	smtpd_reply(s, "250 2.1.5 Ok");
out:
	store_patient_free(&pt);
}

/* DATA: 354, unless the client pipelined beyond it (RFC 2920 3.1). */
static void
smtpd_cmd_data(struct smtpd_session *s, const char *arg)
{
	if (*arg != '\0') {
		smtpd_reply(s, "501 5.5.4 syntax: DATA");
		return;
	}
	if (s->lmtp && s->tx.nlrcpts == 0) {
		/* RFC 2033 4.2: 503 without a successful RCPT */
		smtpd_reply(s, "503 5.5.1 no valid recipients");
		return;
	}
	if (!s->lmtp && s->tx.nrcpts == 0) {
		smtpd_reply(s, "554 5.5.1 no valid recipients");
		return;
	}
	if (evbuffer_get_length(bufferevent_get_input(s->bev)) != 0) {
		smtpd_log(s, SL_WARN, "event=improper-pipelining");
		smtpd_reply(s, "554 5.5.0 improper pipelining after DATA");
		smtpd_close(s, 1);
		return;
	}
	if (s->lmtp)
		smtpd_data_init(&s->tx.data, s->env->max_line,
		    s->env->max_header, s->env->max_size);
	else
		smtpd_data_init(&s->tx.data,
		    (size_t)s->d->cfg->smtp_max_line_length,
		    (size_t)s->d->cfg->smtp_max_header_size,
		    (size_t)s->d->cfg->max_letter_size);
	s->tx.data_active = 1;
	smtpd_enter_state(s, SMTPD_S_DATA);
	smtpd_reply(s, "354 End data with <CR><LF>.<CR><LF>");
}

/* RSET: abort the transaction. */
static void
smtpd_cmd_rset(struct smtpd_session *s, const char *arg)
{
	if (*arg != '\0') {
		smtpd_reply(s, "501 5.5.4 syntax: RSET");
		return;
	}
	smtpd_tx_reset(s);
	if (s->state != SMTPD_S_GREETED)
		smtpd_enter_state(s, SMTPD_S_HELO);
	smtpd_reply(s, "250 2.0.0 Ok");
}

/* NOOP [string]. */
static void
smtpd_cmd_noop(struct smtpd_session *s, const char *arg)
{
	(void)arg;
	smtpd_reply(s, "250 2.0.0 Ok");
}

/* QUIT: 221 and close once flushed. */
static void
smtpd_cmd_quit(struct smtpd_session *s, const char *arg)
{
	(void)arg;
	smtpd_reply(s, "221 2.0.0 Bye");
	smtpd_close(s, 1);
}

/* VRFY: never reveal patients. */
static void
smtpd_cmd_vrfy(struct smtpd_session *s, const char *arg)
{
	(void)arg;
	smtpd_reply(s, "252 2.0.0 Cannot VRFY; send some mail and see");
}

/* HELP. */
static void
smtpd_cmd_help(struct smtpd_session *s, const char *arg)
{
	(void)arg;
	if (s->lmtp)
		smtpd_reply(s, "214 2.0.0 sealpost: LMTP for replies and "
		    "bounces (RFC 2033)");
	else
		smtpd_reply(s, "214 2.0.0 sealpost: RCPT TO:<patient-ID@"
		    "practice domain>, after AUTH PLAIN with the client's API "
		    "token");
}

/* EXPN, BDAT (no CHUNKING), ETRN, TURN. */
static void
smtpd_cmd_unimplemented(struct smtpd_session *s, const char *arg)
{
	(void)arg;
	smtpd_reply(s, "502 5.5.1 command not implemented");
}

/* ---- the transaction ------------------------------------------------- */

/* Forget the transaction (recipients, keys, message). */
static void
smtpd_tx_reset(struct smtpd_session *s)
{
	size_t	 i;

	for (i = 0; i < s->tx.nrcpts; i++) {
		if (s->tx.rcpts[i].job != NULL)
			log_panic("smtp session=%s reset with a pending job",
			    s->idstr);
		free(s->tx.rcpts[i].address);
	}
	free(s->tx.rcpts);
	if (s->tx.ljob != NULL)
		log_panic("lmtp session=%s reset with a pending job", s->idstr);
	for (i = 0; i < s->tx.nlrcpts; i++)
		free(s->tx.lrcpts[i]);
	free(s->tx.lrcpts);
	if (s->tx.data_active)
		smtpd_data_clear(&s->tx.data);
	if (s->tx.raw != NULL) {
		hash_wipe(s->tx.raw, s->tx.rawlen);
		free(s->tx.raw);
	}
	free(s->tx.idem_base);
	memset(&s->tx, 0, sizeof s->tx);
}

/* Feed DATA input to the reader; 1 if the state moved on, 0 if all input
 * was consumed. */
static int
smtpd_data_input(struct smtpd_session *s)
{
	struct evbuffer		*in = bufferevent_get_input(s->bev);
	struct evbuffer_iovec	 v[16];
	size_t			 used, total = 0;
	int			 n, i, r = SMTPD_DATA_MORE;
	char			 reply[120];

	if (evbuffer_get_length(in) == 0)
		return 0;
	n = evbuffer_peek(in, -1, NULL, v, (int)nitems(v));
	if (n > (int)nitems(v))
		n = (int)nitems(v);
	for (i = 0; i < n && r == SMTPD_DATA_MORE; i++) {
		r = smtpd_data_feed(&s->tx.data, v[i].iov_base, v[i].iov_len,
		    &used);
		total += used;
	}
	evbuffer_drain(in, total);
	if (r == SMTPD_DATA_MORE)
		return evbuffer_get_length(in) != 0;

	if (smtpd_data_verdict(&s->tx.data, reply, sizeof reply) != 0) {
		smtpd_log(s, SL_INFO, "event=data result=reject flags=0x%x",
		    s->tx.data.flags);
		smtpd_enter_state(s, SMTPD_S_HELO);
		if (s->lmtp)
			smtpd_lmtp_reply_each(s, reply);
		else
			smtpd_reply(s, "%s", reply);
		smtpd_tx_reset(s);
		return 1;
	}
	if (s->lmtp) {
		if (smtpd_draining(s)) {
			smtpd_lmtp_reply_each(s, "451 4.3.2 shutting down, "
			    "try again later");
			smtpd_tx_reset(s);
			smtpd_reply(s, "421 4.3.2 %s shutting down",
			    s->env->hostname);
			smtpd_close(s, 1);
			return 1;
		}
		smtpd_lmtp_commit(s);
		return 1;
	}
	if (s->d->draining || s->d->submit == NULL) {
		smtpd_tx_reset(s);
		smtpd_reply(s, "421 4.3.2 %s shutting down",
		    s->env->hostname);
		smtpd_close(s, 1);
		return 1;
	}
	smtpd_tx_commit(s);
	return 1;
}

/* The message is in: one job per recipient into the pipeline. */
static void
smtpd_tx_commit(struct smtpd_session *s)
{
	struct smtpd_tx		*tx = &s->tx;
	char			 msgid[256], hex[HASH_SHA256_HEX];

	tx->raw = smtpd_data_take(&tx->data, &tx->rawlen);
	tx->data_active = 0;
	hash_sha256(tx->raw, tx->rawlen, tx->hash);
	tx->priority = smtpd_priority(tx->raw, tx->rawlen);
	/*
	 * The key is stored with "smtp:" and ":<patient id>" around it, in a
	 * column of at most 255 octets: a longer Message-ID uses the hash.
	 */
	if (smtpd_header_get(tx->raw, tx->rawlen, "Message-ID", msgid,
	    sizeof msgid) == 1 && strlen(msgid) >= 3 &&
	    strlen(msgid) <= SMTPD_MSGID_KEY_MAX && smtpd_printable(msgid))
		tx->idem_base = xstrdup(msgid);
	else {
		hash_hex(tx->hash, sizeof tx->hash, hex);
		tx->idem_base = xstrdup(hex);
	}
	smtpd_log(s, SL_DEBUG, "event=data result=submitted size=%zu rcpts=%zu "
	    "priority=%s", tx->rawlen, tx->nrcpts,
	    letter_priority_name(tx->priority));

	smtpd_enter_state(s, SMTPD_S_COMMIT);
	bufferevent_disable(s->bev, EV_READ);
	s->npending = tx->nrcpts;
	tx->next = 0;
	tx->inflight = 0;
	smtpd_tx_pump(s);
}

/*
 * Enqueue the next recipients' jobs within the in-flight budget; answer
 * once every recipient is done.  Re-entered from smtpd_job_done() (also
 * when the pipeline calls back synchronously: the guard keeps one loop).
 */
static void
smtpd_tx_pump(struct smtpd_session *s)
{
	struct smtpd_tx		*tx = &s->tx;
	struct submit_job	*job;
	struct smtpd_rcpt	*rc;

	if (s->pumping)
		return;
	s->pumping = 1;
	while (tx->next < tx->nrcpts && (tx->inflight == 0 ||
	    (tx->inflight + 1) * tx->rawlen <= SMTPD_TX_INFLIGHT_BYTES)) {
		rc = &tx->rcpts[tx->next];
		if (s->d->draining || s->d->submit == NULL) {
			/* stopping: the client retries the rest later */
			rc->status = SUBMIT_ESHUTDOWN;
			tx->next++;
			s->npending--;
			continue;
		}
		job = submit_job_new();
		job->practice_id = s->practice_id;
		job->client_id = s->client_id;
		job->patient_id = rc->patient_id;
		job->author_id = tx->author_id;
		job->priority = tx->priority;
		job->channel = "smtp";
		xasprintf(&job->idem_key, "smtp:%s:%lld", tx->idem_base,
		    (long long)rc->patient_id);
		memcpy(job->req_hash, tx->hash, sizeof tx->hash);
		job->address = rc->address != NULL ? xstrdup(rc->address) :
		    NULL;
		memcpy(job->recipients, rc->pks, rc->npks * STORE_KEY_LEN);
		job->nrecipients = rc->npks;
		job->content = SUBMIT_RFC5322;
		job->rawlen = tx->rawlen;
		if (tx->next + 1 == tx->nrcpts) {
			job->raw = tx->raw;	/* the last one takes it */
			tx->raw = NULL;
		} else
			job->raw = xmemdup(tx->raw, tx->rawlen);
		job->done = smtpd_job_done;
		job->arg = s;
		rc->job = job;
		rc->status = SUBMIT_PENDING;
		tx->next++;
		tx->inflight++;
		submit_enqueue(s->d->submit, job);
	}
	s->pumping = 0;
	if (s->npending == 0)
		smtpd_tx_answer(s);
}

/* A letter came back from the pipeline (loop thread). */
static void
smtpd_job_done(struct submit_job *job, void *arg)
{
	struct smtpd_session	*s = arg;
	struct smtpd_rcpt	*rc = NULL;
	size_t			 i;

	for (i = 0; i < s->tx.nrcpts; i++) {
		if (s->tx.rcpts[i].job == job) {
			rc = &s->tx.rcpts[i];
			break;
		}
	}
	if (rc == NULL || s->npending == 0 || s->tx.inflight == 0)
		log_panic("smtp session=%s unknown job", s->idstr);
	rc->status = job->status;
	rc->letter_id = job->letter_id;
	strlcpy_sp(rc->error, job->error, sizeof rc->error);
	rc->job = NULL;
	submit_job_free(&job);
	s->npending--;
	s->tx.inflight--;
	smtpd_tx_pump(s);
}

/* A job whose session was torn down: drop it. */
static void
smtpd_job_discard(struct submit_job *job, void *arg)
{
	(void)arg;
	submit_job_free(&job);
}

/* Every letter of the transaction is done: answer the DATA. */
static void
smtpd_tx_answer(struct smtpd_session *s)
{
	struct smtpd_tx	*tx = &s->tx;
	char		 ids[400], pts[200], reason[200], rec[200];
	size_t		 i, off = 0, poff = 0;
	int		 shutdown = 0, estore = 0, einput = 0, conflict = 0;

	ids[0] = '\0';
	pts[0] = '\0';
	reason[0] = '\0';
	for (i = 0; i < tx->nrcpts; i++) {
		struct smtpd_rcpt *rc = &tx->rcpts[i];

		if (poff < sizeof pts - 24)
			poff += (size_t)snprintf(pts + poff, sizeof pts - poff,
			    "%s%lld", poff ? "," : "",
			    (long long)rc->patient_id);
		switch (rc->status) {
		case SUBMIT_OK:
		case SUBMIT_DUPLICATE:
			if (off < sizeof ids - 40) {
				int n = snprintf(ids + off, sizeof ids - off,
				    "%s%lld", off ? "," : "",
				    (long long)rc->letter_id);
				off += (size_t)n;
			} else if (off < sizeof ids - 4) {
				strlcpy_sp(ids + off, ",...", sizeof ids - off);
				off += 4;
			}
			break;
		case SUBMIT_EINPUT:
			einput++;
			if (reason[0] == '\0')
				strlcpy_sp(reason, rc->error, sizeof reason);
			break;
		case SUBMIT_CONFLICT:
			conflict++;
			break;
		case SUBMIT_ESTORE:
			estore++;
			break;
		case SUBMIT_ESHUTDOWN:
			shutdown++;
			break;
		case SUBMIT_PENDING:
			log_panic("smtp session=%s answer with a pending job",
			    s->idstr);
		}
	}

	/* the one record line of the transaction */
	snprintf(rec, sizeof rec, "client=%lld author=%lld size=%zu "
	    "priority=%s patients=%s", (long long)s->client_id,
	    (long long)tx->author_id, tx->rawlen,
	    letter_priority_name(tx->priority), pts);
	if (shutdown == 0 && estore == 0 && einput == 0 && conflict == 0) {
		s->nletters += tx->nrcpts;
		smtpd_log(s, SL_INFO, "event=queued %s letters=%s", rec, ids);
		smtpd_reply(s, "250 2.0.0 Ok: queued as %s", ids);
	} else if (shutdown) {
		smtpd_log(s, SL_INFO, "event=commit result=shutdown %s", rec);
		smtpd_reply(s, "421 4.3.2 %s shutting down, try again later",
		    s->env->hostname);
	} else if (estore) {
		smtpd_log(s, SL_WARN, "event=commit result=store-error %s",
		    rec);
		smtpd_reply(s, "451 4.3.0 queue write error, try again later");
	} else if (einput) {
		smtpd_sanitize(reason);
		smtpd_log(s, SL_INFO, "event=commit result=rejected %s", rec);
		smtpd_reply(s, "554 5.6.0 %s", reason[0] ? reason :
		    "message rejected");
	} else {
		smtpd_log(s, SL_INFO, "event=commit result=conflict %s", rec);
		smtpd_reply(s, "554 5.6.0 Message-ID already used for a "
		    "different message");
	}
	smtpd_tx_reset(s);
	smtpd_tx_resume(s, shutdown);
}

/*
 * The transaction was answered: free a session whose client left, close
 * one that is draining (`said_421': the answer said so already), else
 * read the commands pipelined after the final dot.
 */
static void
smtpd_tx_resume(struct smtpd_session *s, int said_421)
{
	if (s->bev == NULL) {
		/* the client left while the message was processed */
		smtpd_release(s);
		return;
	}
	if (s->state == SMTPD_S_QUIT)
		return;			/* closing already (EOF) */
	if (said_421 || smtpd_draining(s)) {
		if (!said_421)
			smtpd_reply(s, "421 4.3.2 %s shutting down",
			    s->env->hostname);
		smtpd_close(s, 1);
		return;
	}
	smtpd_enter_state(s, SMTPD_S_HELO);
	bufferevent_enable(s->bev, EV_READ);
	/* commands pipelined after the final dot */
	smtpd_process(s);
}

/* ---- LMTP (RFC 2033) ------------------------------------------------- */

/* Whether the daemon (SMTP) or the listener (LMTP) is draining. */
static int
smtpd_draining(struct smtpd_session *s)
{
	if (s->lmtp)
		return s->env != NULL && s->env->draining;
	return s->d->draining;
}

/* LHLO domain (RFC 2033 4.1): the EHLO reply of an LMTP server. */
static void
smtpd_cmd_lhlo(struct smtpd_session *s, const char *arg)
{
	if (*arg == '\0') {
		smtpd_reply(s, "501 5.5.4 syntax: LHLO hostname");
		return;
	}
	smtpd_tx_reset(s);
	s->esmtp = 1;
	smtpd_enter_state(s, SMTPD_S_HELO);
	/* PIPELINING and ENHANCEDSTATUSCODES are a MUST (RFC 2033 5) */
	smtpd_reply(s, "250-%s", s->env->hostname);
	smtpd_reply(s, "250-PIPELINING");
	smtpd_reply(s, "250-ENHANCEDSTATUSCODES");
	smtpd_reply(s, "250-8BITMIME");
	smtpd_reply(s, "250 SIZE %zu", s->env->max_size);
}

/*
 * mail = "MAIL FROM:" Reverse-path [SP Mail-parameters] CRLF
 * The MX decided to accept the message: any valid path will do.
 */
static void
smtpd_cmd_lmtp_mail(struct smtpd_session *s, const char *arg)
{
	struct smtpd_mail_params p;
	char			 mbox[SMTPD_MAX_MAILBOX + 1];

	if (smtpd_mail_args(s, arg, 0, mbox, &p) != 0)
		return;
	if (p.size >= 0 && (uint64_t)p.size > s->env->max_size) {
		smtpd_reply(s, "552 5.3.4 message size exceeds fixed limit");
		return;
	}
	smtpd_tx_reset(s);
	smtpd_log(s, SL_DEBUG, "event=mail null=%d size=%lld",
	    mbox[0] == '\0', (long long)p.size);
	smtpd_enter_state(s, SMTPD_S_MAIL);
	smtpd_reply(s, "250 2.1.0 Ok");
}

/*
 * rcpt = "RCPT TO:" ( "<Postmaster@" Domain ">" / "<Postmaster>" /
 *        Forward-path ) [SP Rcpt-parameters] CRLF
 * Any valid Mailbox: whether it is ours is the intake's answer, given
 * after the data for this recipient alone.
 */
static void
smtpd_cmd_lmtp_rcpt(struct smtpd_session *s, const char *arg)
{
	char		 mbox[SMTPD_MAX_MAILBOX + 1];

	if (smtpd_rcpt_args(s, arg, mbox) != 0)
		return;
	if (s->tx.nlrcpts >= s->env->max_rcpts) {
		smtpd_reply(s, "452 4.5.3 too many recipients");
		return;
	}
	s->tx.lrcpts = xreallocarray(s->tx.lrcpts, s->tx.nlrcpts + 1,
	    sizeof *s->tx.lrcpts);
	s->tx.lrcpts[s->tx.nlrcpts++] = xstrdup(mbox);
	smtpd_log(s, SL_DEBUG, "event=rcpt n=%zu", s->tx.nlrcpts);
	smtpd_enter_state(s, SMTPD_S_RCPT);
	smtpd_reply(s, "250 2.1.5 Ok");
}

/*
 * The same reply to every accepted recipient (a refused message, or
 * shutdown); it counts as one error, not one per recipient.
 */
static void
smtpd_lmtp_reply_each(struct smtpd_session *s, const char *reply)
{
	size_t	 i;
	int	 errors = s->errors;

	for (i = 0; i < s->tx.nlrcpts; i++)
		smtpd_reply(s, "%s", reply);
	if (s->errors > errors)
		s->errors = errors + 1;
}

/* The message is in: one job, all recipients, to the intake. */
static void
smtpd_lmtp_commit(struct smtpd_session *s)
{
	struct smtpd_tx		*tx = &s->tx;
	struct intake_job	*job;

	job = xcalloc(1, sizeof *job);
	job->raw = smtpd_data_take(&tx->data, &job->len);
	tx->data_active = 0;
	/* the recipients go with the job: the transaction forgets them */
	job->rcpts = tx->lrcpts;
	job->nrcpts = tx->nlrcpts;
	tx->lrcpts = NULL;
	tx->nlrcpts = 0;
	job->done = smtpd_lmtp_done;
	job->arg = s;
	tx->rawlen = job->len;
	smtpd_log(s, SL_DEBUG, "event=data result=submitted size=%zu rcpts=%zu",
	    job->len, job->nrcpts);

	smtpd_enter_state(s, SMTPD_S_COMMIT);
	bufferevent_disable(s->bev, EV_READ);
	tx->ljob = job;
	s->npending = 1;
	s->env->submit(job, s->env->submit_arg);
}

/*
 * The intake is done with the message (loop thread): one reply per
 * recipient, in RCPT order, from the job's results.
 */
static void
smtpd_lmtp_done(struct intake_job *job, void *arg)
{
	struct smtpd_session	*s = arg;
	struct intake_result	*res;
	char			 text[sizeof res->smtp_text];
	size_t			 i, n[6] = { 0 }, other = 0;
	int			 code, errors;

	if (job != s->tx.ljob || s->npending != 1)
		log_panic("lmtp session=%s unknown job", s->idstr);
	s->tx.ljob = NULL;
	s->npending = 0;

	errors = s->errors;
	for (i = 0; i < job->nrcpts; i++) {
		res = job->results != NULL ? &job->results[i] : NULL;
		code = res != NULL ? res->smtp_code : 0;
		if (res != NULL && (unsigned)res->outcome < nitems(n))
			n[res->outcome]++;
		else
			other++;
		if (code < 200 || code > 599 || (code >= 300 && code < 400)) {
			/* not a final reply: the message must come again */
			smtpd_log(s, SL_WARN, "event=result rcpt=%zu "
			    "reason=\"no valid reply code\"", i + 1);
			smtpd_reply(s, "451 4.3.0 internal error, try again "
			    "later");
			continue;
		}
		strlcpy_sp(text, res->smtp_text, sizeof text);
		smtpd_sanitize(text);
		if (text[0] == '\0')
			strlcpy_sp(text, code < 400 ? "2.0.0 Ok" : code < 500 ?
			    "4.3.0 try again later" : "5.0.0 refused",
			    sizeof text);
		smtpd_reply(s, "%d %s", code, text);
	}
	/* per-recipient outcomes judge the message, not the client */
	s->errors = errors;
	smtpd_log(s, SL_INFO, "event=delivered size=%zu rcpts=%zu filed=%zu "
	    "quarantined=%zu duplicate=%zu bounce=%zu refused=%zu "
	    "tempfail=%zu other=%zu", job->len, job->nrcpts,
	    n[INTAKE_FILED], n[INTAKE_QUARANTINED], n[INTAKE_DUPLICATE],
	    n[INTAKE_BOUNCE], n[INTAKE_REFUSED], n[INTAKE_TEMPFAIL], other);
	s->nletters += job->nrcpts;
	s->job_free(&job);
	smtpd_tx_reset(s);
	smtpd_tx_resume(s, 0);
}

/* A job whose session was torn down (smtpd_session_free): free it. */
static void
smtpd_lmtp_discard(struct intake_job *job, void *arg)
{
	void	(**freep)(struct intake_job **) = arg;

	(*freep)(&job);
	free(freep);
}

/* Urgent when the header says so (Importance, Priority, X-Priority). */
static int
smtpd_priority(const char *msg, size_t len)
{
	char	 v[64];

	if (smtpd_header_get(msg, len, "Importance", v, sizeof v) == 1 &&
	    strcasecmp(v, "high") == 0)
		return LETTER_URGENT;
	if (smtpd_header_get(msg, len, "Priority", v, sizeof v) == 1 &&
	    strcasecmp(v, "urgent") == 0)
		return LETTER_URGENT;
	if (smtpd_header_get(msg, len, "X-Priority", v, sizeof v) == 1 &&
	    (v[0] == '1' || v[0] == '2') && (v[1] == '\0' || v[1] == ' ' ||
	    v[1] == '('))
		return LETTER_URGENT;
	return LETTER_ROUTINE;
}

/* Is s non-empty visible ASCII (no spaces, no controls)? */
static int
smtpd_printable(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s != '\0'; s++) {
		if ((unsigned char)*s < 33 || (unsigned char)*s > 126)
			return 0;
	}
	return 1;
}

/* Make a reason safe for a reply line: printable ASCII only. */
static void
smtpd_sanitize(char *p)
{
	for (; *p != '\0'; p++) {
		if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
			*p = '?';
	}
}

/* ---- parsers --------------------------------------------------------- */

/*
 * atext = ALPHA / DIGIT / "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" /
 *         "-" / "/" / "=" / "?" / "^" / "_" / "`" / "{" / "|" / "}" / "~"
 */
static int
smtpd_is_atext(int c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return 1;
	return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

/*
 * Domain = sub-domain *("." sub-domain)
 * sub-domain = Let-dig [Ldh-str]     (at most 63 octets)
 * address-literal = "[" ( IPv4-address-literal / IPv6-address-literal /
 *                   General-address-literal ) "]"  (dcontent %d33-90 /
 *                   %d94-126 accepted inside the brackets)
 * Returns the end of the domain and its length in *lenp, or NULL.
 */
static const char *
smtpd_parse_domain(const char *p, size_t *lenp)
{
	const char	*start = p, *label;

	if (*p == '[') {
		p++;
		while ((*p >= 33 && *p <= 90) || (*p >= 94 && *p <= 126))
			p++;
		if (*p != ']' || p == start + 1)
			return NULL;
		p++;
		*lenp = (size_t)(p - start);
		return *lenp > SMTPD_MAX_DOMAIN ? NULL : p;
	}
	for (;;) {
		label = p;
		while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '-')
			p++;
		if (p == label || *label == '-' || p[-1] == '-' ||
		    p - label > 63)
			return NULL;
		if (*p != '.')
			break;
		p++;
	}
	*lenp = (size_t)(p - start);
	return *lenp > SMTPD_MAX_DOMAIN ? NULL : p;
}

/*
 * Reverse-path = Path / "<>"
 * Path = "<" [ A-d-l ":" ] Mailbox ">"
 * A-d-l = At-domain *( "," At-domain )    (accepted and ignored, 4.1.2)
 * At-domain = "@" Domain
 * Mailbox = Local-part "@" ( Domain / address-literal )
 * Local-part = Dot-string / Quoted-string
 * Dot-string = Atom *("." Atom)
 * Quoted-string = DQUOTE *QcontentSMTP DQUOTE
 * QcontentSMTP = qtextSMTP / quoted-pairSMTP
 * quoted-pairSMTP = %d92 %d32-126
 * qtextSMTP = %d32-33 / %d35-91 / %d93-126
 */
int
smtpd_parse_path(const char *s, int null_ok, char *mbox, size_t mboxsz,
    const char **rest_r, const char **why_r)
{
	const char	*p = s, *local, *dom, *end;
	size_t		 llen, dlen, i;

	*why_r = NULL;
	if (mboxsz < SMTPD_MAX_MAILBOX + 1)
		log_panic("smtpd_parse_path: buffer too small");
	mbox[0] = '\0';
	if (*p++ != '<') {
		*why_r = "address must be in <>";
		return -1;
	}
	if (*p == '>') {
		if (!null_ok) {
			*why_r = "empty address";
			return -1;
		}
		p++;
		goto params;
	}
	if (*p == '@') {
		/* a source route: @a,@b: */
		for (;;) {
			p++;
			if ((p = smtpd_parse_domain(p, &dlen)) == NULL) {
				*why_r = "bad source route";
				return -1;
			}
			if (*p == ':')
				break;
			if (*p != ',' || p[1] != '@') {
				*why_r = "bad source route";
				return -1;
			}
			p++;
		}
		p++;
	}

	local = p;
	if (*p == '"') {
		p++;
		for (;;) {
			if (*p == '"')
				break;
			if (*p == '\\') {
				if (p[1] < 32 || p[1] > 126) {
					*why_r = "bad quoted pair";
					return -1;
				}
				p += 2;
			} else if (*p >= 32 && *p <= 126)
				p++;
			else {
				*why_r = "bad character in quoted local part";
				return -1;
			}
		}
		p++;
	} else {
		for (;;) {
			const char *atom = p;

			while (smtpd_is_atext((unsigned char)*p))
				p++;
			if (p == atom) {
				*why_r = "bad local part";
				return -1;
			}
			if (*p != '.')
				break;
			p++;
		}
	}
	llen = (size_t)(p - local);
	if (llen > SMTPD_MAX_LOCAL) {
		*why_r = "local part too long";
		return -1;
	}
	if (*p != '@') {
		*why_r = "missing @domain";
		return -1;
	}
	p++;
	dom = p;
	if ((end = smtpd_parse_domain(p, &dlen)) == NULL) {
		*why_r = "bad domain";
		return -1;
	}
	p = end;
	if (*p != '>') {
		*why_r = "bad character in address";
		return -1;
	}
	if (llen + 1 + dlen > SMTPD_MAX_MAILBOX) {
		*why_r = "address too long";
		return -1;
	}
	memcpy(mbox, local, llen);
	mbox[llen] = '@';
	for (i = 0; i < dlen; i++) {
		char c = dom[i];

		mbox[llen + 1 + i] = (c >= 'A' && c <= 'Z') ? c - 'A' + 'a' :
		    c;
	}
	mbox[llen + 1 + dlen] = '\0';
	p++;
params:
	if (*p != '\0' && *p != ' ') {
		*why_r = "junk after address";
		mbox[0] = '\0';
		return -1;
	}
	while (*p == ' ')
		p++;
	*rest_r = p;
	return 0;
}

/*
 * Mail-parameters = esmtp-param *(SP esmtp-param)
 * esmtp-param = esmtp-keyword ["=" esmtp-value]
 * esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
 * esmtp-value = 1*(%d33-60 / %d62-126)
 * Known: SIZE=1*20DIGIT (RFC 1870), BODY=7BIT/8BITMIME (RFC 6152),
 * AUTH=xtext (RFC 4954, ignored).
 */
int
smtpd_parse_mail_params(const char *s, struct smtpd_mail_params *mp,
    const char **why_r)
{
	const char	*p = s, *kw, *val;
	size_t		 kwlen, vlen, i;
	int		 seen_size = 0, seen_auth = 0;

	mp->size = -1;
	mp->body = SMTPD_BODY_NONE;
	*why_r = NULL;
	for (;;) {
		while (*p == ' ')
			p++;
		if (*p == '\0')
			return 0;
		kw = p;
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9'))) {
			*why_r = "bad parameter syntax";
			return SMTPD_PARAM_SYNTAX;
		}
		while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '-')
			p++;
		kwlen = (size_t)(p - kw);
		val = NULL;
		vlen = 0;
		if (*p == '=') {
			val = ++p;
			while (*p >= 33 && *p <= 126 && *p != '=')
				p++;
			vlen = (size_t)(p - val);
			if (vlen == 0) {
				*why_r = "bad parameter syntax";
				return SMTPD_PARAM_SYNTAX;
			}
		}
		if (*p != ' ' && *p != '\0') {
			*why_r = "bad parameter syntax";
			return SMTPD_PARAM_SYNTAX;
		}
		if (kwlen == 4 && strncasecmp(kw, "SIZE", 4) == 0) {
			int64_t v = 0;

			if (seen_size++ || val == NULL || vlen > 20) {
				*why_r = "bad SIZE parameter";
				return SMTPD_PARAM_SYNTAX;
			}
			for (i = 0; i < vlen; i++) {
				if (val[i] < '0' || val[i] > '9') {
					*why_r = "bad SIZE parameter";
					return SMTPD_PARAM_SYNTAX;
				}
				if (v > (INT64_MAX - 9) / 10)
					v = INT64_MAX;	/* saturate */
				else
					v = v * 10 + (val[i] - '0');
			}
			mp->size = v;
		} else if (kwlen == 4 && strncasecmp(kw, "BODY", 4) == 0) {
			if (mp->body != SMTPD_BODY_NONE || val == NULL) {
				*why_r = "bad BODY parameter";
				return SMTPD_PARAM_SYNTAX;
			}
			if (vlen == 4 && strncasecmp(val, "7BIT", 4) == 0)
				mp->body = SMTPD_BODY_7BIT;
			else if (vlen == 8 &&
			    strncasecmp(val, "8BITMIME", 8) == 0)
				mp->body = SMTPD_BODY_8BITMIME;
			else {
				*why_r = "unsupported BODY type";
				return SMTPD_PARAM_UNKNOWN;
			}
		} else if (kwlen == 4 && strncasecmp(kw, "AUTH", 4) == 0) {
			if (seen_auth++ || val == NULL) {
				*why_r = "bad AUTH parameter";
				return SMTPD_PARAM_SYNTAX;
			}
		} else {
			*why_r = "unsupported parameter";
			return SMTPD_PARAM_UNKNOWN;
		}
	}
}

/* Rcpt-parameters: this server supports none (no DSN, no SMTPUTF8). */
int
smtpd_parse_rcpt_params(const char *s, const char **why_r)
{
	*why_r = NULL;
	while (*s == ' ')
		s++;
	if (*s == '\0')
		return 0;
	if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
	    (*s >= '0' && *s <= '9'))) {
		*why_r = "bad parameter syntax";
		return SMTPD_PARAM_SYNTAX;
	}
	*why_r = "unsupported parameter";
	return SMTPD_PARAM_UNKNOWN;
}

/* message = [authzid] UTF8NUL authcid UTF8NUL passwd (RFC 4616 2). */
int
smtpd_auth_plain_decode(const char *b64, size_t len, char *authcid,
    size_t authcidsz, char *passwd, size_t passwdsz, const char **why_r)
{
	unsigned char	*buf = NULL, *nul1, *nul2;
	size_t		 n = 0, clen, plen;
	int		 ret = -1;

	authcid[0] = '\0';
	passwd[0] = '\0';
	*why_r = NULL;
	if (len == 0 || len > SMTPD_MAX_CMD_LINE) {
		*why_r = len == 0 ? "empty response" : "response too long";
		return -1;
	}
	if (hash_b64_decode(b64, len, &buf, &n) != 0) {
		*why_r = "bad base64";
		return -1;
	}
	if ((nul1 = memchr(buf, '\0', n)) == NULL ||
	    (nul2 = memchr(nul1 + 1, '\0', n - (size_t)(nul1 + 1 - buf))) ==
	    NULL) {
		*why_r = "missing NUL separators";
		goto out;
	}
	clen = (size_t)(nul2 - (nul1 + 1));
	plen = n - (size_t)(nul2 + 1 - buf);
	if (memchr(nul2 + 1, '\0', plen) != NULL) {
		*why_r = "NUL in password";
		goto out;
	}
	if (clen == 0 || plen == 0) {
		*why_r = "empty authcid or password";
		goto out;
	}
	if (clen >= authcidsz || plen >= passwdsz) {
		*why_r = "authcid or password too long";
		goto out;
	}
	memcpy(authcid, nul1 + 1, clen);
	authcid[clen] = '\0';
	memcpy(passwd, nul2 + 1, plen);
	passwd[plen] = '\0';
	ret = 0;
out:
	hash_wipe(buf, n);
	free(buf);
	return ret;
}

/* patient-address = "patient-" id "@" domain; id = %x31-39 *DIGIT */
int
smtpd_parse_patient(const char *mbox, int64_t *id, const char **domain_r,
    const char **why_r)
{
	const char	*p;
	int64_t		 v = 0;
	size_t		 nd = 0;

	*why_r = NULL;
	if (strncasecmp(mbox, "patient-", 8) != 0) {
		*why_r = "not a patient address";
		return -1;
	}
	p = mbox + 8;
	if (*p < '1' || *p > '9') {
		*why_r = "bad patient id";
		return -1;
	}
	while (*p >= '0' && *p <= '9') {
		if (++nd > SMTPD_MAX_PATIENT_DIGITS) {
			*why_r = "patient id too long";
			return -1;
		}
		v = v * 10 + (*p - '0');
		p++;
	}
	if (*p != '@' || p[1] == '\0') {
		*why_r = "bad patient id";
		return -1;
	}
	*id = v;
	*domain_r = p + 1;
	return 0;
}

/*
 * header-field = field-name ":" unstructured CRLF (RFC 5322 2.2), folded
 * lines start with WSP; the header section ends at the first empty line.
 */
int
smtpd_header_get(const char *msg, size_t len, const char *name, char *out,
    size_t outsz)
{
	size_t	 nlen = strlen(name), i = 0, o = 0, eol;
	int	 found = 0;

	if (outsz == 0)
		return -1;
	out[0] = '\0';
	while (i < len) {
		const char *line = msg + i;
		const char *nl = memchr(line, '\n', len - i);
		size_t ll;

		eol = nl != NULL ? (size_t)(nl - msg) + 1 : len;
		ll = eol - i;
		while (ll > 0 && (line[ll - 1] == '\n' || line[ll - 1] == '\r'))
			ll--;
		if (ll == 0)
			break;			/* end of the header section */
		if (found) {
			if (line[0] != ' ' && line[0] != '\t')
				break;		/* the field ended */
		} else if (ll > nlen && line[nlen] == ':' &&
		    strncasecmp(line, name, nlen) == 0) {
			found = 1;
			line += nlen + 1;
			ll -= nlen + 1;
		} else {
			i = eol;
			continue;
		}
		if (o + ll >= outsz)
			return -1;
		memcpy(out + o, line, ll);
		o += ll;
		out[o] = '\0';
		i = eol;
	}
	if (!found)
		return 0;
	/* trim WSP on both ends */
	while (o > 0 && (out[o - 1] == ' ' || out[o - 1] == '\t'))
		out[--o] = '\0';
	i = strspn(out, " \t");
	memmove(out, out + i, o - i + 1);
	return 1;
}

/* ---- the DATA reader ------------------------------------------------- */

/* Start reading a message with these bounds. */
void
smtpd_data_init(struct smtpd_data *d, size_t max_line, size_t max_header,
    size_t max_size)
{
	memset(d, 0, sizeof *d);
	d->max_line = max_line;
	d->max_header = max_header;
	d->max_size = max_size;
	d->st = DS_BOL;
	d->in_header = 1;
	d->hkind = HK_UNDECIDED;
}

/* Append message bytes (unless the message is already refused). */
static void
smtpd_data_put(struct smtpd_data *d, const char *p, size_t n)
{
	size_t	 k, ncap;

	d->total += n;
	if (d->total > d->max_size)
		d->flags |= SMTPD_DATA_TOO_BIG;
	/*
	 * Which kind of line is this: field, continuation or body?  Decided
	 * for a refused message too, so that the header size, and with it
	 * the verdict, does not depend on how TCP cut the data.
	 */
	for (k = 0; k < n && d->in_header && d->hkind == HK_UNDECIDED; k++) {
		unsigned char c = (unsigned char)p[k];

		if (d->hname == 0 && (c == ' ' || c == '\t'))
			d->hkind = HK_HEADER;
		else if (c == ':')
			d->hkind = d->hname > 0 ? HK_HEADER : HK_BODY;
		else if (c >= 33 && c <= 126)
			d->hname++;
		else
			d->hkind = HK_BODY;
	}
	if (d->flags != 0) {
		if (d->buf != NULL) {
			/* refused: no need to keep (or grow) the copy */
			hash_wipe(d->buf, d->len);
			free(d->buf);
			d->buf = NULL;
			d->len = d->cap = 0;
		}
		return;
	}
	if (d->len + n > d->cap) {
		ncap = d->cap ? d->cap : 4096;
		while (ncap < d->len + n)
			ncap *= 2;
		if (ncap > d->max_size + 2)
			ncap = d->max_size + 2;
		d->buf = xreallocarray(d->buf, ncap, 1);
		d->cap = ncap;
	}
	memcpy(d->buf + d->len, p, n);
	d->len += n;
}

/* A CRLF ended a line: header bookkeeping, line length. */
static void
smtpd_data_eol(struct smtpd_data *d)
{
	if (d->linelen > d->max_line)
		d->flags |= SMTPD_DATA_LONG_LINE;
	if (d->in_header) {
		if (d->linelen == 2 || d->hkind != HK_HEADER)
			d->in_header = 0;	/* empty line, or body */
		else {
			d->header_size += d->linelen;
			if (d->header_size > d->max_header)
				d->flags |= SMTPD_DATA_BIG_HEADER;
		}
	}
	d->linelen = 0;
	d->hname = 0;
	d->hkind = HK_UNDECIDED;
}

/* Feed wire bytes; see smtpd_session.h. */
int
smtpd_data_feed(struct smtpd_data *d, const char *buf, size_t len,
    size_t *used)
{
	size_t	 i = 0, j;
	char	 c;

	while (i < len) {
		c = buf[i];
		switch (d->st) {
		case DS_BOL:
			if (c == '.') {
				d->st = DS_DOT;
				d->linelen++;
				i++;
			} else
				d->st = DS_TEXT;	/* re-read c as text */
			break;
		case DS_DOT:
			if (c == '\r') {
				d->st = DS_DOTCR;
				d->linelen++;
				i++;
			} else
				/* the dot was stuffing */
				d->st = DS_TEXT;
			break;
		case DS_DOTCR:
			if (c == '\n') {
				d->st = DS_END;
				*used = i + 1;
				return SMTPD_DATA_END;
			}
			/* "." CR and no LF: a stuffed dot and a bare CR */
			d->flags |= SMTPD_DATA_BARE_CR;
			smtpd_data_put(d, "\r", 1);
			d->st = DS_TEXT;
			break;
		case DS_TEXT:
			for (j = i; j < len && buf[j] != '\r' &&
			    buf[j] != '\n' && buf[j] != '\0'; j++)
				;
			if (j > i) {
				d->linelen += j - i;
				if (d->linelen > d->max_line)
					d->flags |= SMTPD_DATA_LONG_LINE;
				smtpd_data_put(d, buf + i, j - i);
				i = j;
				break;
			}
			d->linelen++;
			i++;
			if (c == '\r')
				d->st = DS_CR;
			else {
				/* a bare LF is text: it never starts a line */
				d->flags |= c == '\n' ? SMTPD_DATA_BARE_LF :
				    SMTPD_DATA_NUL;
				smtpd_data_put(d, &c, 1);
			}
			break;
		case DS_CR:
			if (c == '\n') {
				d->linelen++;
				i++;
				smtpd_data_put(d, "\r\n", 2);
				smtpd_data_eol(d);
				d->st = DS_BOL;
			} else {
				/* a bare CR; re-read c as text */
				d->flags |= SMTPD_DATA_BARE_CR;
				smtpd_data_put(d, "\r", 1);
				d->st = DS_TEXT;
			}
			break;
		case DS_END:
			*used = 0;
			return SMTPD_DATA_END;
		default:
			log_panic("smtpd_data_feed: bad state %d", d->st);
		}
	}
	*used = len;
	return SMTPD_DATA_MORE;
}

/* Judge a complete message; the reply names the first problem. */
int
smtpd_data_verdict(const struct smtpd_data *d, char *reply, size_t replysz)
{
	if (d->st != DS_END)
		snprintf(reply, replysz, "451 4.3.0 message incomplete");
	else if (d->flags & SMTPD_DATA_NUL)
		snprintf(reply, replysz, "554 5.6.0 NUL characters not "
		    "permitted");
	else if (d->flags & (SMTPD_DATA_BARE_LF | SMTPD_DATA_BARE_CR))
		snprintf(reply, replysz, "550 5.6.0 bare LF/CR not permitted");
	else if (d->flags & SMTPD_DATA_TOO_BIG)
		snprintf(reply, replysz, "552 5.3.4 message too big (limit "
		    "%zu bytes)", d->max_size);
	else if (d->flags & SMTPD_DATA_BIG_HEADER)
		snprintf(reply, replysz, "552 5.3.4 message header too big "
		    "(limit %zu bytes)", d->max_header);
	else if (d->flags & SMTPD_DATA_LONG_LINE)
		snprintf(reply, replysz, "500 5.6.0 message line too long "
		    "(limit %zu bytes)", d->max_line);
	else
		return 0;
	return -1;
}

/* Hand the message over; the reader keeps nothing. */
char *
smtpd_data_take(struct smtpd_data *d, size_t *lenp)
{
	char	*p = d->buf;

	*lenp = d->len;
	if (p == NULL)
		p = xmalloc(1);
	d->buf = NULL;
	d->len = d->cap = 0;
	return p;
}

/* Wipe and free the reader's copy. */
void
smtpd_data_clear(struct smtpd_data *d)
{
	if (d->buf != NULL) {
		hash_wipe(d->buf, d->len);
		free(d->buf);
	}
	memset(d, 0, sizeof *d);
}
