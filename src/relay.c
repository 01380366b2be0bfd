/*
 * relay.c - outbound SMTP sessions to the smarthost, through libetpan.
 *
 * Owns one struct relay_conn per relay worker: the TCP connection (opened
 * here, not by libetpan, so that the connect timeout, the FD_SETSIZE check
 * and cancellation are ours), the libetpan mailsmtp session on it, and the
 * SMTP transaction driven command by command (libetpan's mailesmtp_send()
 * stops at the first refused RCPT; reference/libetpan.md section 5).
 *
 * Public: relay_global_init, relay_send, relay_close, relay_close_idle,
 * relay_cancel, relay_strresult, relay_host_is_loopback.
 *
 * Session states (relay_enter_state() logs each change at debug level):
 *
 *   NONE -> CONNECTED -> GREETED -> EHLO --------------------.
 *             (TCP,        (220)      |                        |
 *              implicit TLS           | tls starttls           |
 *              verified here)         v                        |
 *                                   TLS (STARTTLS, verified,   |
 *                                        EHLO again)           |
 *                                     |                        |
 *                                     v                        v
 *                                   READY (after AUTH) <-------'
 *                                     |  ^
 *                        MAIL / RCPT  |  | final reply, RSET
 *                                     v  |
 *                                   TRANSACTION
 *
 *   Any state -> CLOSED on an error; a CLOSED conn is freed.
 *
 * Replies are judged on their code, never on libetpan's return values
 * (they conflate 4xx and 5xx).  The outcome of a transaction:
 *   - MAIL 5xx: RELAY_PERMFAIL, every recipient gets that reply;
 *   - RCPT: each reply is kept; 421 (or no reply) ends the attempt with
 *     RELAY_TEMPFAIL; none accepted: RSET and RELAY_OK;
 *   - DATA (the command) 4xx: RELAY_TEMPFAIL; 5xx: RELAY_PERMFAIL, the
 *     accepted recipients get that reply, the others keep their RCPT one;
 *   - final dot: whatever the reply (2xx, 4xx, 5xx), RELAY_OK and every
 *     accepted recipient gets it: the transaction ran and the verdict is
 *     per recipient (RSET follows a refusal); 421 or no reply at all is
 *     RELAY_TEMPFAIL (the message may have been delivered: the caller
 *     re-sends and flags a possible duplicate).
 *
 * Error policy: relay_send() returns an enum relay_result and a one-line
 * reason in err; nothing here logs an address, a password or message
 * content (state changes and reply codes only, at debug level).
 * libetpan's logger is never installed.  Thread safety: see relay.h.
 */

#include "build.h"

#include <sys/types.h>
#include <sys/select.h>
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <libetpan/libetpan.h>
#include <sasl/sasl.h>

#include "log.h"
#include "relay.h"
#include "tls.h"
#include "util.h"

/*
 * Exported by libetpan 1.9.4 but declared only in headers Debian does not
 * install (mailsmtp_private.h, mailsasl.h, mailstream_cancel.h).
 */
int	 mailsmtp_send_command(mailsmtp *, char *);
int	 mailsmtp_read_response(mailsmtp *);
int	 mailesmtp_parse_ehlo(mailsmtp *);
void	 mailsasl_external_ref(void);
int	 mailstream_cancel_get_fd(struct mailstream_cancel *);

/* RFC 5321 4.5.3.1: path 256 octets with the brackets, text line 1000. */
#define RELAY_MAX_ADDR		254
#define RELAY_MAX_LINE		998
/* libetpan builds "AUTH PLAIN <base64>\r\n" in 513 octets and truncates. */
#define RELAY_MAX_PLAIN		375
/* NOOP before reusing a session idle for longer than this. */
#define RELAY_NOOP_AFTER_MS	1000
/* How long QUIT waits for its 221 when a session is closed. */
#define RELAY_QUIT_TIMEOUT	2

enum relay_state {
	RELAY_S_NONE,
	RELAY_S_CONNECTED,
	RELAY_S_GREETED,
	RELAY_S_EHLO,
	RELAY_S_TLS,
	RELAY_S_READY,
	RELAY_S_TRANSACTION,
	RELAY_S_CLOSED
};

struct relay_conn {
	unsigned int	 id;
	struct relay_conn *live_prev, *live_next; /* relay_live, its lock */
	pthread_mutex_t	 lock;		/* fd and cancelled: relay_cancel() */
	int		 fd;		/* the socket while it is open, or -1 */
	int		 cancelled;
	enum relay_state state;
	mailsmtp	*smtp;
	int		 broken;	/* out of sync: close without QUIT */
	uint64_t	 last_used_ms;
	/* The last read: its timeout and how long it took, for err. */
	int		 io_timeout;
	uint64_t	 io_ms;
};

static enum relay_result relay_check_params(const struct relay_params *,
		    char *, size_t);
static const char *relay_check_addr(const char *, int);
static const char *relay_check_helo(const char *);
static const char *relay_check_msg(const struct relay_msg *, int *);
static struct relay_conn *relay_conn_new(void);
static void	 relay_conn_free(struct relay_conn *, int);
static void	 relay_enter_state(struct relay_conn *, enum relay_state);
static const char *relay_strstate(enum relay_state);
static void	 relay_publish_fd(struct relay_conn *, int);
static int	 relay_is_cancelled(struct relay_conn *);
static int	 relay_connect_stopped(void *);
static void	 relay_connect_publish(void *, int);
static int	 relay_connect_tcp(struct relay_conn *,
		    const struct relay_params *, const char *, char *, size_t);
static int	 relay_stream_fds_ok(mailstream *);
static void	 relay_set_timeout(struct relay_conn *, int);
static int	 relay_read_reply(struct relay_conn *, int);
static int	 relay_command(struct relay_conn *, int, const char *, ...)
		    __attribute__((format(printf, 3, 4)));
static void	 relay_reply_err(struct relay_conn *, const char *, char *,
		    size_t);
static void	 relay_io_err(struct relay_conn *, const char *, char *,
		    size_t);
static void	 relay_set_rcpt(struct relay_conn *, struct relay_rcpt *);
static void	 relay_clear_rcpts(struct relay_msg *);
static enum relay_result relay_open(struct relay_conn *,
		    const struct relay_params *, char *, size_t);
static enum relay_result relay_ehlo(struct relay_conn *,
		    const struct relay_params *, char *, size_t);
static enum relay_result relay_starttls(struct relay_conn *,
		    const struct relay_params *, const char *, char *, size_t);
static enum relay_result relay_auth(struct relay_conn *,
		    const struct relay_params *, const char *, char *, size_t);
static enum relay_result relay_transaction(struct relay_conn *,
		    const struct relay_params *, struct relay_msg *, int,
		    char *, size_t);
static int	 relay_rset(struct relay_conn *, const struct relay_params *);
static void	*relay_sasl_mutex_alloc(void);
static int	 relay_sasl_mutex_lock(void *);
static int	 relay_sasl_mutex_unlock(void *);
static void	 relay_sasl_mutex_free(void *);
static int	 relay_sasl_log(void *, int, const char *);

/*
 * Every conn not yet freed, so that relay_cancel() from another thread
 * never touches a conn that relay_send() has just freed: relay_send()
 * frees the conn on failure, possibly while a canceller holds a copy of
 * the pointer.  Lock order: relay_live_lock, then a conn's lock.
 */
static pthread_mutex_t	 relay_live_lock = PTHREAD_MUTEX_INITIALIZER;
static struct relay_conn *relay_live;
static unsigned int	 relay_next_id;
static int		 relay_initialised;

/* Cyrus SASL is thread-safe only with mutex callbacks. */
static void *
relay_sasl_mutex_alloc(void)
{
	pthread_mutex_t	*m = xmalloc(sizeof(*m));

	pthread_mutex_init(m, NULL);
	return m;
}

static int
relay_sasl_mutex_lock(void *m)
{
	return pthread_mutex_lock(m) == 0 ? SASL_OK : SASL_FAIL;
}

static int
relay_sasl_mutex_unlock(void *m)
{
	return pthread_mutex_unlock(m) == 0 ? SASL_OK : SASL_FAIL;
}

static void
relay_sasl_mutex_free(void *m)
{
	pthread_mutex_destroy(m);
	free(m);
}

/* SASL's own messages go to our log, not to syslog. */
static int
relay_sasl_log(void *ctx, int level, const char *msg)
{
	char	 buf[256];

	if (msg != NULL && level <= SASL_LOG_WARN)
		log_debug("relay: sasl: %s",
		    log_escape(buf, sizeof(buf), msg, strlen(msg)));
	return SASL_OK;
}

/* Process-wide setup, once, before any relay worker starts. */
int
relay_global_init(void)
{
	static sasl_callback_t	 cbs[] = {
		/* sasl_callback_t's proc is untyped: cast via void (*)(void). */
		{ SASL_CB_LOG, (int (*)(void))(void (*)(void))relay_sasl_log,
		    NULL },
		{ SASL_CB_LIST_END, NULL, NULL }
	};
	struct sigaction	 sa;
	int			 r;

	if (relay_initialised)
		return 0;
	/* libetpan and GnuTLS write with send(..., 0): no MSG_NOSIGNAL. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGPIPE, &sa, NULL) == -1) {
		log_warn("relay: sigaction SIGPIPE");
		return -1;
	}
	/*
	 * The fallback for any read or write whose stream has no timeout of
	 * its own; every stream opened here gets one.  Not thread-safe, so
	 * set before the workers exist.
	 */
	mailstream_network_delay.tv_sec = 60;
	mailstream_network_delay.tv_usec = 0;

	sasl_set_mutex(relay_sasl_mutex_alloc, relay_sasl_mutex_lock,
	    relay_sasl_mutex_unlock, relay_sasl_mutex_free);
	if ((r = sasl_client_init(cbs)) != SASL_OK) {
		log_warnx("relay: sasl_client_init: %s",
		    sasl_errstring(r, NULL, NULL));
		return -1;
	}
	/* Tell libetpan SASL is initialised (it only refcounts it). */
	mailsasl_external_ref();
	relay_initialised = 1;
	return 0;
}

const char *
relay_strresult(enum relay_result r)
{
	switch (r) {
	case RELAY_OK:
		return "ok";
	case RELAY_TEMPFAIL:
		return "tempfail";
	case RELAY_PERMFAIL:
		return "permfail";
	case RELAY_TLSFAIL:
		return "tlsfail";
	case RELAY_AUTHFAIL:
		return "authfail";
	case RELAY_CONFIG:
		return "config";
	case RELAY_INPUT:
		return "input";
	}
	return "unknown";
}

static const char *
relay_strstate(enum relay_state s)
{
	switch (s) {
	case RELAY_S_NONE:
		return "none";
	case RELAY_S_CONNECTED:
		return "connected";
	case RELAY_S_GREETED:
		return "greeted";
	case RELAY_S_EHLO:
		return "ehlo";
	case RELAY_S_TLS:
		return "tls";
	case RELAY_S_READY:
		return "ready";
	case RELAY_S_TRANSACTION:
		return "transaction";
	case RELAY_S_CLOSED:
		return "closed";
	}
	log_panic("relay: unknown state %d", (int)s);
}

static void
relay_enter_state(struct relay_conn *c, enum relay_state s)
{
	log_debug("relay %u: %s -> %s", c->id, relay_strstate(c->state),
	    relay_strstate(s));
	c->state = s;
}

/*
 * Is this host a loopback name or literal?  Strict: "localhost", an IPv4
 * literal in 127.0.0.0/8, "::1" (bracketed or not) or an IPv4-mapped
 * 127/8; "127.example.com" is not one.
 */
int
relay_host_is_loopback(const char *host)
{
	struct in_addr	 a4;
	struct in6_addr	 a6;
	char		 buf[INET6_ADDRSTRLEN + 2];
	size_t		 len;

	if (host == NULL)
		return 0;
	if (strcasecmp(host, "localhost") == 0 ||
	    strcasecmp(host, "localhost.") == 0)
		return 1;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	len = strlen(host);
	if (len >= 2 && host[0] == '[' && host[len - 1] == ']') {
		if (len - 2 >= sizeof(buf))
			return 0;
		memcpy(buf, host + 1, len - 2);
		buf[len - 2] = '\0';
		host = buf;
	}
	if (inet_pton(AF_INET6, host, &a6) == 1) {
		if (IN6_IS_ADDR_LOOPBACK(&a6))
			return 1;
		if (IN6_IS_ADDR_V4MAPPED(&a6))
			return a6.s6_addr[12] == 127;
	}
	return 0;
}

/*
 * An address before it goes into MAIL FROM:<> or RCPT TO:<>: a reason
 * or NULL.  libetpan formats commands with snprintf() and no check, so a
 * CR or LF would inject a command and '>' would end the path early.
 * Nothing is cleaned: a refused address is reported, never altered.
 */
static const char *
relay_check_addr(const char *a, int empty_ok)
{
	const unsigned char	*p;
	size_t			 len;

	if (a == NULL)
		return "missing";
	len = strlen(a);
	if (len == 0)
		return empty_ok ? NULL : "empty";
	if (len > RELAY_MAX_ADDR)
		return "longer than 254 octets";
	for (p = (const unsigned char *)a; *p != '\0'; p++) {
		if (*p == '\r' || *p == '\n')
			return "contains CR or LF";
		if (*p < 0x20 || *p == 0x7f)
			return "contains a control character";
		if (*p == ' ')
			return "contains a space";
		if (*p == '<' || *p == '>')
			return "contains '<' or '>'";
		/* No SMTPUTF8 support: a UTF-8 address cannot be sent. */
		if (*p >= 0x80)
			return "contains non-ASCII octets (no SMTPUTF8)";
	}
	return NULL;
}

/* The EHLO argument: a domain or an address literal, nothing else. */
static const char *
relay_check_helo(const char *h)
{
	const char	*why, *p;

	if (h == NULL || *h == '\0')
		return "helo_name is not set";
	if ((why = relay_check_addr(h, 0)) != NULL)
		return why;
	for (p = h; *p != '\0'; p++)
		if (strchr("abcdefghijklmnopqrstuvwxyz"
		    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_:[]", *p) == NULL)
			return "is not a domain or an address literal";
	return NULL;
}

/*
 * The message: CRLF lines of at most 998 octets, ending in CRLF, no NUL,
 * no bare CR or LF (libetpan would rewrite them, and the smarthost must
 * get exactly the bytes that were stored).  *eightbit is set when an
 * octet >= 0x80 appears.
 */
static const char *
relay_check_msg(const struct relay_msg *m, int *eightbit)
{
	const unsigned char	*p;
	size_t			 i, line = 0;

	*eightbit = 0;
	if (m->data == NULL || m->len < 2)
		return "message: empty";
	if (m->data[m->len - 2] != '\r' || m->data[m->len - 1] != '\n')
		return "message: does not end in CRLF";
	p = (const unsigned char *)m->data;
	for (i = 0; i < m->len; i++) {
		switch (p[i]) {
		case '\0':
			return "message: contains NUL";
		case '\r':
			if (i + 1 >= m->len || p[i + 1] != '\n')
				return "message: bare CR";
			i++;
			line = 0;
			continue;
		case '\n':
			return "message: bare LF";
		}
		if (p[i] >= 0x80)
			*eightbit = 1;
		if (++line > RELAY_MAX_LINE)
			return "message: line longer than 998 octets";
	}
	return NULL;
}

/* Parameters that can be refused before any connection. */
static enum relay_result
relay_check_params(const struct relay_params *p, char *err, size_t errsz)
{
	const char	*why;
	size_t		 ul, pl;

	if (p->host == NULL || *p->host == '\0') {
		snprintf(err, errsz, "config: no smarthost host");
		return RELAY_CONFIG;
	}
	if ((why = relay_check_helo(p->host)) != NULL) {
		snprintf(err, errsz, "config: host %s", why);
		return RELAY_CONFIG;
	}
	if (p->tls_name != NULL && (why = relay_check_helo(p->tls_name))
	    != NULL) {
		snprintf(err, errsz, "config: tls_name %s", why);
		return RELAY_CONFIG;
	}
	if (p->port == 0) {
		snprintf(err, errsz, "config: no smarthost port");
		return RELAY_CONFIG;
	}
	switch (p->tls) {
	case RELAY_TLS_STARTTLS:
	case RELAY_TLS_IMPLICIT:
		break;
	case RELAY_TLS_NONE:
		if (!p->allow_plaintext) {
			snprintf(err, errsz, "config: tls none needs "
			    "allow_plaintext");
			return RELAY_CONFIG;
		}
		if (!relay_host_is_loopback(p->host)) {
			snprintf(err, errsz, "config: plaintext relay only "
			    "to a loopback host");
			return RELAY_CONFIG;
		}
		break;
	default:
		snprintf(err, errsz, "config: unknown tls mode %d",
		    (int)p->tls);
		return RELAY_CONFIG;
	}
	if (p->connect_timeout <= 0 || p->command_timeout <= 0 ||
	    p->data_timeout <= 0 || p->idle_timeout < 0) {
		snprintf(err, errsz, "config: timeouts must be positive");
		return RELAY_CONFIG;
	}
	if (p->username != NULL) {
		if (p->password == NULL) {
			snprintf(err, errsz, "config: username without "
			    "password");
			return RELAY_CONFIG;
		}
		ul = strlen(p->username);
		pl = strlen(p->password);
		if (ul == 0 || 2 * ul + pl + 2 > RELAY_MAX_PLAIN) {
			snprintf(err, errsz, "config: username or password "
			    "length unusable for AUTH");
			return RELAY_CONFIG;
		}
	}
	if ((why = relay_check_helo(p->helo_name)) != NULL) {
		snprintf(err, errsz, "helo_name %s", why);
		return p->helo_name == NULL || *p->helo_name == '\0' ?
		    RELAY_CONFIG : RELAY_INPUT;
	}
	return RELAY_OK;
}

static struct relay_conn *
relay_conn_new(void)
{
	struct relay_conn	*c;

	c = xcalloc(1, sizeof(*c));
	pthread_mutex_init(&c->lock, NULL);
	c->fd = -1;
	c->state = RELAY_S_NONE;
	pthread_mutex_lock(&relay_live_lock);
	c->id = ++relay_next_id;
	c->live_next = relay_live;
	if (relay_live != NULL)
		relay_live->live_prev = c;
	relay_live = c;
	pthread_mutex_unlock(&relay_live_lock);
	return c;
}

/*
 * Make the socket visible to relay_cancel(), or hide it (-1).  It is
 * hidden before anything can close it, so a cancel never shuts down a
 * descriptor number that another thread has reused.
 */
static void
relay_publish_fd(struct relay_conn *c, int fd)
{
	pthread_mutex_lock(&c->lock);
	c->fd = fd;
	pthread_mutex_unlock(&c->lock);
}

static int
relay_is_cancelled(struct relay_conn *c)
{
	int	 r;

	pthread_mutex_lock(&c->lock);
	r = c->cancelled;
	pthread_mutex_unlock(&c->lock);
	return r;
}

/*
 * From any thread: wake the owner's blocked call.  A pointer to a conn
 * that is already freed is ignored (or, if its address was reused for a
 * new conn, that one is cancelled: a spurious TEMPFAIL, never a crash).
 */
void
relay_cancel(struct relay_conn *c)
{
	struct relay_conn	*l;

	if (c == NULL)
		return;
	pthread_mutex_lock(&relay_live_lock);
	for (l = relay_live; l != NULL && l != c; l = l->live_next)
		;
	if (l == NULL) {
		pthread_mutex_unlock(&relay_live_lock);
		return;
	}
	pthread_mutex_lock(&c->lock);
	c->cancelled = 1;
	/*
	 * shutdown() rather than mailstream_cancel(): it works in every
	 * phase (connect, handshake, plain or TLS stream, which libetpan
	 * swaps under us at STARTTLS) and the socket stays open, so the
	 * owner closes it as usual.
	 */
	if (c->fd != -1)
		shutdown(c->fd, SHUT_RDWR);
	pthread_mutex_unlock(&c->lock);
	pthread_mutex_unlock(&relay_live_lock);
}

/*
 * Close and free.  With quit, QUIT is sent and its reply awaited briefly;
 * a broken or cancelled session is just closed.
 */
static void
relay_conn_free(struct relay_conn *c, int quit)
{
	if (c == NULL)
		return;
	if (c->smtp != NULL) {
		if (c->smtp->stream != NULL && quit && !c->broken &&
		    !relay_is_cancelled(c) && c->state >= RELAY_S_GREETED)
			(void)relay_command(c, RELAY_QUIT_TIMEOUT, "QUIT\r\n");
		relay_publish_fd(c, -1);
		if (c->smtp->stream != NULL) {
			mailstream_close(c->smtp->stream);
			c->smtp->stream = NULL;
		}
		mailsmtp_free(c->smtp);
		c->smtp = NULL;
	} else if (c->fd != -1) {
		int	 fd = c->fd;

		relay_publish_fd(c, -1);
		close(fd);
	}
	if (c->state != RELAY_S_NONE)
		relay_enter_state(c, RELAY_S_CLOSED);
	pthread_mutex_lock(&relay_live_lock);
	if (c->live_prev != NULL)
		c->live_prev->live_next = c->live_next;
	else
		relay_live = c->live_next;
	if (c->live_next != NULL)
		c->live_next->live_prev = c->live_prev;
	pthread_mutex_unlock(&relay_live_lock);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

void
relay_close(struct relay_conn **cp)
{
	if (cp == NULL || *cp == NULL)
		return;
	relay_conn_free(*cp, 1);
	*cp = NULL;
}

void
relay_close_idle(struct relay_conn **cp, const struct relay_params *p)
{
	if (cp == NULL || *cp == NULL)
		return;
	if (util_now_ms() - (*cp)->last_used_ms >
	    (uint64_t)p->idle_timeout * 1000)
		relay_close(cp);
}

/*
 * TCP connect within connect_timeout (util_connect_tcp), noticing a
 * cancel.  With plaintext only loopback addresses are tried ("localhost"
 * could be mapped elsewhere).  Returns the connected, blocking socket
 * (published), or -1 with err.
 */
static int
relay_connect_tcp(struct relay_conn *c, const struct relay_params *p,
    const char *host, char *err, size_t errsz)
{
	struct util_connect	 uc;
	int			 refused;

	memset(&uc, 0, sizeof(uc));
	uc.host = host;
	uc.port = p->port;
	uc.timeout = p->connect_timeout;
	uc.loopback_only = p->tls == RELAY_TLS_NONE;
	uc.stopword = "cancelled";
	uc.stopped = relay_connect_stopped;
	uc.publish = relay_connect_publish;
	uc.arg = c;
	return util_connect_tcp(&uc, err, errsz, &refused);
}

/* util_connect_tcp's view of a conn. */
static int
relay_connect_stopped(void *arg)
{
	return relay_is_cancelled(arg);
}

static void
relay_connect_publish(void *arg, int fd)
{
	relay_publish_fd(arg, fd);
}

/* Every descriptor libetpan will select() on is below FD_SETSIZE? */
static int
relay_stream_fds_ok(mailstream *s)
{
	mailstream_low			*low = mailstream_get_low(s);
	struct mailstream_cancel	*cancel;

	if (low == NULL || mailstream_low_get_fd(low) >= FD_SETSIZE)
		return 0;
	/* Each low layer has its own cancel pipe, also in the fd_set. */
	cancel = mailstream_low_get_cancel(low);
	return cancel == NULL || mailstream_cancel_get_fd(cancel) < FD_SETSIZE;
}

/*
 * The timeout of the next reads and writes.  Set on the low layer:
 * libetpan's plaintext phase ignores mailsmtp_set_timeout().
 */
static void
relay_set_timeout(struct relay_conn *c, int secs)
{
	mailstream_low_set_timeout(mailstream_get_low(c->smtp->stream),
	    secs);
	c->io_timeout = secs;
}

/* Read one reply within secs: its code, or 0 when none came. */
static int
relay_read_reply(struct relay_conn *c, int secs)
{
	uint64_t	 t0;
	int		 code;

	relay_set_timeout(c, secs);
	t0 = util_now_ms();
	code = mailsmtp_read_response(c->smtp);
	c->io_ms = util_now_ms() - t0;
	if (code < 100 || code > 599) {
		c->smtp->response_code = 0;
		code = 0;
	}
	if (code == 0 || code == 421)
		c->broken = 1;
	return code;
}

/* Send one command and read its reply within secs: code, or 0. */
static int
relay_command(struct relay_conn *c, int secs, const char *fmt, ...)
{
	char		 cmd[RELAY_MAX_ADDR + 128];
	va_list		 ap;
	uint64_t	 t0;
	int		 n;

	va_start(ap, fmt);
	n = vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(cmd))
		log_panic("relay %u: command too long", c->id);
	relay_set_timeout(c, secs);
	c->smtp->response_code = 0;
	t0 = util_now_ms();
	if (mailsmtp_send_command(c->smtp, cmd) == -1) {
		c->io_ms = util_now_ms() - t0;
		c->broken = 1;
		return 0;
	}
	return relay_read_reply(c, secs);
}

/* err = "what: 550 5.1.1 text" from the last reply. */
static void
relay_reply_err(struct relay_conn *c, const char *what, char *err,
    size_t errsz)
{
	char	 text[200];

	if (c->smtp->response_code == 0) {
		relay_io_err(c, what, err, errsz);
		return;
	}
	util_clean_text(text, sizeof(text), c->smtp->response);
	snprintf(err, errsz, "%s: %d %s", what, c->smtp->response_code, text);
}

/* err for a read or write that got nothing: cancelled, timeout, lost. */
static void
relay_io_err(struct relay_conn *c, const char *what, char *err,
    size_t errsz)
{
	c->broken = 1;
	if (relay_is_cancelled(c))
		snprintf(err, errsz, "%s: cancelled", what);
	else if (c->io_timeout > 0 &&
	    c->io_ms + 100 >= (uint64_t)c->io_timeout * 1000)
		snprintf(err, errsz, "%s: timed out after %d s", what,
		    c->io_timeout);
	else
		snprintf(err, errsz, "%s: connection lost or malformed reply",
		    what);
}

/*
 * A recipient's result from the last reply.  status is the enhanced code
 * (RFC 3463) when the text starts with one of the reply's class.
 */
static void
relay_set_rcpt(struct relay_conn *c, struct relay_rcpt *r)
{
	const char	*t = c->smtp->response != NULL ? c->smtp->response : "";
	size_t		 i, n;
	int		 parts = 0, digits = 0;

	r->code = c->smtp->response_code;
	r->status[0] = '\0';
	util_clean_text(r->text, sizeof(r->text), t);
	/* status-code = class "." subject "." detail, 1-3 digits each */
	if (t[0] != '0' + r->code / 100 || t[1] != '.')
		return;
	for (i = 2; ; i++) {
		if (t[i] >= '0' && t[i] <= '9') {
			if (++digits > 3)
				return;
			continue;
		}
		if (digits == 0)
			return;
		parts++;
		digits = 0;
		if (parts == 1 && t[i] == '.')
			continue;
		if (parts == 2 && (t[i] == ' ' || t[i] == '\n' ||
		    t[i] == '\r' || t[i] == '\0'))
			break;
		return;
	}
	n = i < sizeof(r->status) - 1 ? i : sizeof(r->status) - 1;
	memcpy(r->status, t, n);
	r->status[n] = '\0';
}

static void
relay_clear_rcpts(struct relay_msg *m)
{
	size_t	 i;

	for (i = 0; i < m->nrcpts; i++) {
		m->rcpts[i].code = 0;
		m->rcpts[i].status[0] = '\0';
		m->rcpts[i].text[0] = '\0';
	}
}

/* EHLO helo_name; the capabilities replace everything known before. */
static enum relay_result
relay_ehlo(struct relay_conn *c, const struct relay_params *p, char *err,
    size_t errsz)
{
	int	 code;

	code = relay_command(c, p->command_timeout, "EHLO %s\r\n",
	    p->helo_name);
	if (code != 250) {
		relay_reply_err(c, "EHLO", err, errsz);
		return RELAY_TEMPFAIL;
	}
	c->smtp->smtp_max_msg_size = 0;
	mailesmtp_parse_ehlo(c->smtp);
	return RELAY_OK;
}

/* STARTTLS, handshake with SNI, verification, EHLO again. */
static enum relay_result
relay_starttls(struct relay_conn *c, const struct relay_params *p,
    const char *name, char *err, size_t errsz)
{
	char	 why[256];
	int	 r;

	if ((c->smtp->esmtp & MAILSMTP_ESMTP_STARTTLS) == 0) {
		snprintf(err, errsz, "tls: STARTTLS not offered");
		return RELAY_TLSFAIL;
	}
	relay_set_timeout(c, p->command_timeout);
	/* The handshake runs under the session timeout: connect_timeout. */
	mailsmtp_set_timeout(c->smtp, p->connect_timeout);
	c->smtp->response_code = 0;
	r = mailsmtp_socket_starttls_with_callback(c->smtp, tls_sni_callback,
	    (void *)name);
	if (r != MAILSMTP_NO_ERROR) {
		c->broken = 1;
		if (c->smtp->response_code == 220) {
			/* CVE-2020-15953 check: bytes after the 220. */
			if (c->smtp->stream->read_buffer_len > 0)
				snprintf(err, errsz, "tls: data after the "
				    "STARTTLS reply (response injection)");
			else if (relay_is_cancelled(c))
				snprintf(err, errsz, "tls: cancelled");
			else
				snprintf(err, errsz, "tls: handshake failed");
			return RELAY_TLSFAIL;
		}
		if (c->smtp->response_code == 0) {
			relay_io_err(c, "STARTTLS", err, errsz);
			return RELAY_TEMPFAIL;
		}
		relay_reply_err(c, "tls: STARTTLS", err, errsz);
		return RELAY_TLSFAIL;
	}
	if (!relay_stream_fds_ok(c->smtp->stream)) {
		c->broken = 1;
		snprintf(err, errsz, "fd limit: TLS cancel pipe >= FD_SETSIZE");
		return RELAY_TEMPFAIL;
	}
	/* Before anything else goes out on the TLS stream. */
	if (tls_verify_stream(c->smtp->stream, name, p->ca_file, why,
	    sizeof(why)) == -1) {
		c->broken = 1;
		snprintf(err, errsz, "tls: %s", why);
		return RELAY_TLSFAIL;
	}
	relay_enter_state(c, RELAY_S_TLS);
	return relay_ehlo(c, p, err, errsz);
}

/* AUTH PLAIN, else LOGIN, through Cyrus SASL. */
static enum relay_result
relay_auth(struct relay_conn *c, const struct relay_params *p,
    const char *name, char *err, size_t errsz)
{
	const char	*mech;
	char		 what[16];
	int		 code, ret;

	if (c->smtp->auth & MAILSMTP_AUTH_PLAIN)
		mech = "PLAIN";
	else if (c->smtp->auth & MAILSMTP_AUTH_LOGIN)
		mech = "LOGIN";
	else {
		snprintf(err, errsz, "AUTH: server offers neither PLAIN nor "
		    "LOGIN");
		return RELAY_AUTHFAIL;
	}
	snprintf(what, sizeof(what), "AUTH %s", mech);
	relay_set_timeout(c, p->command_timeout);
	/* Stale after a local SASL failure: mark it. */
	c->smtp->response_code = -1;
	ret = mailesmtp_auth_sasl(c->smtp, mech, name, NULL, NULL,
	    p->username, p->username, p->password, NULL);
	/* libetpan keeps these pointers; they are the caller's. */
	c->smtp->smtp_sasl.sasl_login = NULL;
	c->smtp->smtp_sasl.sasl_auth_name = NULL;
	c->smtp->smtp_sasl.sasl_password = NULL;
	code = c->smtp->response_code;
	if (code == -1 && ret == MAILSMTP_ERROR_STREAM) {
		c->smtp->response_code = 0;
		relay_io_err(c, what, err, errsz);
		return RELAY_TEMPFAIL;
	}
	if (code == -1) {
		c->smtp->response_code = 0;
		snprintf(err, errsz, "%s: SASL client failed before sending "
		    "(libsasl2-modules missing?)", what);
		return RELAY_AUTHFAIL;
	}
	if (code == 235)
		return RELAY_OK;
	if (code == 0 || code == 421) {
		c->broken = 1;
		relay_reply_err(c, what, err, errsz);
		return RELAY_TEMPFAIL;
	}
	relay_reply_err(c, what, err, errsz);
	if (code == 334) {
		/* The exchange stopped halfway on our side. */
		c->broken = 1;
		return RELAY_AUTHFAIL;
	}
	return code / 100 == 4 ? RELAY_TEMPFAIL : RELAY_AUTHFAIL;
}

/* Connect, greeting, EHLO, TLS, verification, AUTH: READY or an error. */
static enum relay_result
relay_open(struct relay_conn *c, const struct relay_params *p, char *err,
    size_t errsz)
{
	mailstream		*stream;
	enum relay_result	 r;
	char			 host[256], why[256];
	const char		*name;
	size_t			 len;
	int			 fd, code;

	/* "[::1]" for the resolver is "::1". */
	len = strlen(p->host);
	if (len >= 2 && p->host[0] == '[' && p->host[len - 1] == ']' &&
	    len - 2 < sizeof(host)) {
		memcpy(host, p->host + 1, len - 2);
		host[len - 2] = '\0';
	} else
		strlcpy_sp(host, p->host, sizeof(host));
	name = p->tls_name != NULL ? p->tls_name : host;

	if ((fd = relay_connect_tcp(c, p, host, err, errsz)) == -1)
		return RELAY_TEMPFAIL;
	relay_enter_state(c, RELAY_S_CONNECTED);

	if (p->tls == RELAY_TLS_IMPLICIT) {
		stream = mailstream_ssl_open_with_callback_timeout(fd,
		    p->connect_timeout, tls_sni_callback, (void *)name);
		if (stream == NULL) {
			if (relay_is_cancelled(c))
				snprintf(err, errsz, "tls: cancelled");
			else
				snprintf(err, errsz, "tls: handshake failed");
			return RELAY_TLSFAIL;
		}
	} else
		stream = mailstream_socket_open_timeout(fd, p->connect_timeout);
	if (stream == NULL) {
		snprintf(err, errsz, "connect: cannot open a stream");
		return RELAY_TEMPFAIL;
	}
	/* From here the stream owns fd: mailstream_close() closes it. */
	c->smtp = mailsmtp_new(0, NULL);
	if (c->smtp == NULL) {
		relay_publish_fd(c, -1);
		mailstream_close(stream);
		snprintf(err, errsz, "connect: out of memory");
		return RELAY_TEMPFAIL;
	}
	c->smtp->stream = stream;
	mailsmtp_set_timeout(c->smtp, p->connect_timeout);
	if (!relay_stream_fds_ok(stream)) {
		c->broken = 1;
		snprintf(err, errsz, "fd limit: cancel pipe >= FD_SETSIZE");
		return RELAY_TEMPFAIL;
	}
	if (p->tls == RELAY_TLS_IMPLICIT) {
		if (tls_verify_stream(stream, name, p->ca_file, why,
		    sizeof(why)) == -1) {
			c->broken = 1;
			snprintf(err, errsz, "tls: %s", why);
			return RELAY_TLSFAIL;
		}
	}

	/* The greeting, under connect_timeout; not mailsmtp_connect(),
	 * which closes the socket behind our back on a non-220. */
	code = relay_read_reply(c, p->connect_timeout);
	if (code != 220) {
		relay_reply_err(c, "greeting", err, errsz);
		c->broken = 1;
		return RELAY_TEMPFAIL;
	}
	relay_enter_state(c, RELAY_S_GREETED);
	if ((r = relay_ehlo(c, p, err, errsz)) != RELAY_OK)
		return r;
	relay_enter_state(c, RELAY_S_EHLO);
	if (p->tls == RELAY_TLS_STARTTLS &&
	    (r = relay_starttls(c, p, name, err, errsz)) != RELAY_OK)
		return r;
	if (p->username != NULL &&
	    (r = relay_auth(c, p, name, err, errsz)) != RELAY_OK)
		return r;
	relay_enter_state(c, RELAY_S_READY);
	return RELAY_OK;
}

/* RSET: 0 when the session is still usable, -1 otherwise. */
static int
relay_rset(struct relay_conn *c, const struct relay_params *p)
{
	if (relay_command(c, p->command_timeout, "RSET\r\n") != 250) {
		c->broken = 1;
		return -1;
	}
	return 0;
}

/* MAIL, RCPT for each, DATA or RSET; see the top of the file. */
static enum relay_result
relay_transaction(struct relay_conn *c, const struct relay_params *p,
    struct relay_msg *m, int eightbit, char *err, size_t errsz)
{
	char		 size[32];
	const char	*body;
	size_t		 i, accepted = 0;
	int		 code, ct = p->command_timeout;

	size[0] = '\0';
	if (c->smtp->esmtp & MAILSMTP_ESMTP_SIZE)
		snprintf(size, sizeof(size), " SIZE=%zu", m->len);
	body = eightbit && (c->smtp->esmtp & MAILSMTP_ESMTP_8BITMIME) ?
	    " BODY=8BITMIME" : "";

	relay_enter_state(c, RELAY_S_TRANSACTION);
	code = relay_command(c, ct, "MAIL FROM:<%s>%s%s\r\n", m->from, size,
	    body);
	log_debug("relay %u: MAIL %d", c->id, code);
	if (code / 100 == 5) {
		for (i = 0; i < m->nrcpts; i++)
			relay_set_rcpt(c, &m->rcpts[i]);
		relay_reply_err(c, "MAIL", err, errsz);
		relay_enter_state(c, RELAY_S_READY);
		return RELAY_PERMFAIL;
	}
	if (code != 250) {
		if (code / 100 != 4)
			c->broken = 1;
		relay_reply_err(c, "MAIL", err, errsz);
		return RELAY_TEMPFAIL;
	}

	for (i = 0; i < m->nrcpts; i++) {
		code = relay_command(c, ct, "RCPT TO:<%s>\r\n",
		    m->rcpts[i].addr);
		log_debug("relay %u: RCPT %zu %d", c->id, i, code);
		if (code == 0 || code == 421 ||
		    (code / 100 != 2 && code / 100 != 4 && code / 100 != 5)) {
			c->broken = 1;
			relay_reply_err(c, "RCPT", err, errsz);
			relay_clear_rcpts(m);
			return RELAY_TEMPFAIL;
		}
		relay_set_rcpt(c, &m->rcpts[i]);
		if (code / 100 == 2)
			accepted++;
	}
	if (accepted == 0) {
		(void)relay_rset(c, p);
		relay_enter_state(c, RELAY_S_READY);
		return RELAY_OK;
	}

	code = relay_command(c, ct, "DATA\r\n");
	log_debug("relay %u: DATA %d", c->id, code);
	if (code / 100 == 5) {
		relay_reply_err(c, "DATA", err, errsz);
		for (i = 0; i < m->nrcpts; i++)
			if (m->rcpts[i].code / 100 == 2)
				relay_set_rcpt(c, &m->rcpts[i]);
		(void)relay_rset(c, p);
		relay_enter_state(c, RELAY_S_READY);
		return RELAY_PERMFAIL;
	}
	if (code != 354) {
		if (code / 100 != 4)
			c->broken = 1;
		relay_reply_err(c, "DATA", err, errsz);
		relay_clear_rcpts(m);
		return RELAY_TEMPFAIL;
	}

	/*
	 * libetpan dot-stuffs and appends CRLF "." CRLF itself: leave out
	 * the message's final CRLF or the smarthost gets an extra line.
	 * The checks above left no bare CR or LF for it to rewrite.
	 */
	relay_set_timeout(c, p->data_timeout);
	c->smtp->response_code = -1;
	{
		uint64_t	 t0 = util_now_ms();

		(void)mailsmtp_data_message(c->smtp, m->data, m->len - 2);
		c->io_ms = util_now_ms() - t0;
	}
	code = c->smtp->response_code;
	log_debug("relay %u: end of data %d", c->id, code);
	if (code == -1) {
		c->smtp->response_code = 0;
		relay_io_err(c, "DATA: sending the message", err, errsz);
		relay_clear_rcpts(m);
		return RELAY_TEMPFAIL;
	}
	if (code < 200 || code > 599 || code / 100 == 3 || code == 421) {
		if (code < 200 || code > 599)
			c->smtp->response_code = 0;
		c->broken = 1;
		relay_reply_err(c, "DATA: after the final dot (the message "
		    "may have been delivered)", err, errsz);
		relay_clear_rcpts(m);
		return RELAY_TEMPFAIL;
	}
	for (i = 0; i < m->nrcpts; i++)
		if (m->rcpts[i].code / 100 == 2)
			relay_set_rcpt(c, &m->rcpts[i]);
	/*
	 * RFC 5321 ends the transaction with any reply to the dot, but
	 * Postfix keeps it open after an end-of-data reject ("503 nested
	 * MAIL command" next): RSET, as Postfix's own client does.
	 */
	if (code / 100 != 2)
		(void)relay_rset(c, p);
	relay_enter_state(c, RELAY_S_READY);
	return RELAY_OK;
}

/* Send one message over *connp; see relay.h. */
enum relay_result
relay_send(struct relay_conn **connp, const struct relay_params *p,
    struct relay_msg *m, char *err, size_t errsz)
{
	struct relay_conn	*c = *connp;
	enum relay_result	 r;
	const char		*why;
	char			 tmp[256];
	size_t			 i;
	int			 eightbit = 0, code;

	if (errsz > 0)
		err[0] = '\0';
	relay_clear_rcpts(m);

	/* Everything that can be refused is refused before connecting. */
	if ((r = relay_check_params(p, err, errsz)) != RELAY_OK)
		goto fail;
	r = RELAY_INPUT;
	if ((why = relay_check_addr(m->from, 1)) != NULL) {
		snprintf(err, errsz, "sender address %s", why);
		goto fail;
	}
	if (m->nrcpts == 0 || m->rcpts == NULL) {
		snprintf(err, errsz, "no recipients");
		goto fail;
	}
	for (i = 0; i < m->nrcpts; i++) {
		if ((why = relay_check_addr(m->rcpts[i].addr, 0)) != NULL) {
			snprintf(err, errsz, "recipient %zu address %s", i,
			    why);
			goto fail;
		}
	}
	if ((why = relay_check_msg(m, &eightbit)) != NULL) {
		snprintf(err, errsz, "%s", why);
		goto fail;
	}

	if (c != NULL && relay_is_cancelled(c)) {
		snprintf(err, errsz, "cancelled");
		r = RELAY_TEMPFAIL;
		goto fail;
	}
	/* A session idle for a while may have been dropped: NOOP first. */
	if (c != NULL && util_now_ms() - c->last_used_ms >
	    RELAY_NOOP_AFTER_MS) {
		code = relay_command(c, p->command_timeout, "NOOP\r\n");
		log_debug("relay %u: NOOP %d", c->id, code);
		if (code != 250) {
			relay_reply_err(c, "NOOP", tmp, sizeof(tmp));
			log_debug("relay %u: not reused: %s", c->id, tmp);
			relay_close(&c);
		}
	}
	if (c == NULL) {
		c = relay_conn_new();
		if ((r = relay_open(c, p, err, errsz)) != RELAY_OK)
			goto fail;
	}

	r = relay_transaction(c, p, m, eightbit, err, errsz);
	c->last_used_ms = util_now_ms();
	if (r == RELAY_OK || r == RELAY_PERMFAIL) {
		/* The verdicts stand even when the session is gone. */
		if (c->broken || relay_is_cancelled(c))
			relay_close(&c);
		*connp = c;
		return r;
	}

 fail:
	relay_clear_rcpts(m);
	relay_close(&c);
	*connp = NULL;
	return r;
}
