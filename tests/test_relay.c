/*
 * test_relay.c - unit tests of src/relay.c against a tiny scripted SMTP
 * server on a loopback socket in a second thread (plaintext, which
 * relay.c allows only to loopback with allow_plaintext): loopback
 * detection, refusals before any connection (config and input), one full
 * transaction with per-recipient replies and dot-stuffing, reuse after a
 * NOOP, a dropped idle session, the command timeout, relay_close_idle()
 * and relay_cancel() from another thread unblocking a stalled send.
 * TLS, AUTH and real servers are in tests/integration/t_relay.py.
 */
#include "build.h"

#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "relay.h"
#include "util.h"

#include "tap.h"

/* ---- the scripted server ----------------------------------------------- */

struct srv {
	int		 lfd;
	uint16_t	 port;
	pthread_t	 thread;
	pthread_mutex_t	 lock;
	int		 stop;
	/* script */
	const char	*stall_cmd;	/* verb to never answer ... */
	int		 stall_nth;	/* ... its n-th time (from 1) */
	int		 drop_after_msgs; /* close after this many messages */
	/* record */
	int		 conns;
	int		 msgs;
	char		 log[8192];	/* "VERB\n" per command */
	char		 data[8192];	/* the last message, un-stuffed */
	size_t		 datalen;
};

static void	 srv_start(struct srv *);
static void	 srv_stop(struct srv *);
static void	*srv_main(void *);
static void	 srv_session(struct srv *, int);
static int	 srv_getline(int, char *, size_t, char *, size_t *);
static void	 srv_put(int, const char *);
static int	 srv_count(struct srv *, const char *);
static void	 srv_script(struct srv *, const char *, int, int);
static void	 msleep(int);

static void
msleep(int ms)
{
	struct timespec	 ts;

	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (long)(ms % 1000) * 1000000L;
	nanosleep(&ts, NULL);
}

static void
srv_start(struct srv *s)
{
	struct sockaddr_in	 sin;
	socklen_t		 sl = sizeof(sin);

	s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (s->lfd == -1 || bind(s->lfd, (struct sockaddr *)&sin,
	    sizeof(sin)) == -1 || listen(s->lfd, 8) == -1 ||
	    getsockname(s->lfd, (struct sockaddr *)&sin, &sl) == -1) {
		printf("Bail out! listen: %s\n", strerror(errno));
		exit(1);
	}
	s->port = ntohs(sin.sin_port);
	pthread_mutex_init(&s->lock, NULL);
	pthread_create(&s->thread, NULL, srv_main, s);
}

static void
srv_stop(struct srv *s)
{
	pthread_mutex_lock(&s->lock);
	s->stop = 1;
	pthread_mutex_unlock(&s->lock);
	shutdown(s->lfd, SHUT_RDWR);
	pthread_join(s->thread, NULL);
	close(s->lfd);
	pthread_mutex_destroy(&s->lock);
}

static int
srv_stopping(struct srv *s)
{
	int	 r;

	pthread_mutex_lock(&s->lock);
	r = s->stop;
	pthread_mutex_unlock(&s->lock);
	return r;
}

static void *
srv_main(void *arg)
{
	struct srv	*s = arg;
	struct pollfd	 pfd;
	int		 fd;

	while (!srv_stopping(s)) {
		pfd.fd = s->lfd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, 100) <= 0)
			continue;
		if ((fd = accept(s->lfd, NULL, NULL)) == -1)
			continue;
		pthread_mutex_lock(&s->lock);
		s->conns++;
		pthread_mutex_unlock(&s->lock);
		srv_session(s, fd);
		close(fd);
	}
	return NULL;
}

/*
 * One line (CRLF stripped) into line; buf/blen carry read-ahead.  0, or
 * -1 on EOF, error, or when stalling is over (stop).
 */
static int
srv_getline(int fd, char *line, size_t linesz, char *buf, size_t *blen)
{
	struct pollfd	 pfd;
	char		*nl;
	ssize_t		 n;
	size_t		 l;

	for (;;) {
		if ((nl = memchr(buf, '\n', *blen)) != NULL) {
			l = (size_t)(nl - buf);
			if (l > 0 && buf[l - 1] == '\r')
				l--;
			if (l >= linesz)
				l = linesz - 1;
			memcpy(line, buf, l);
			line[l] = '\0';
			l = (size_t)(nl - buf) + 1;
			memmove(buf, buf + l, *blen - l);
			*blen -= l;
			return 0;
		}
		pfd.fd = fd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, 5000) <= 0)
			return -1;
		if (*blen >= 4096)
			return -1;
		n = read(fd, buf + *blen, 4096 - *blen);
		if (n <= 0)
			return -1;
		*blen += (size_t)n;
	}
}

static void
srv_put(int fd, const char *s)
{
	(void)!write(fd, s, strlen(s));
}

/* Read until the client goes away: a command never answered. */
static void
srv_stall(struct srv *s, int fd)
{
	struct pollfd	 pfd;
	char		 b[512];

	while (!srv_stopping(s)) {
		pfd.fd = fd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, 100) > 0 && read(fd, b, sizeof(b)) <= 0)
			return;
	}
}

static void
srv_session(struct srv *s, int fd)
{
	char	 buf[4096], line[1100], reply[256];
	size_t	 blen = 0, l;
	int	 indata = 0, nmail = 0, nrcpt = 0, nmsgs = 0, *nth;
	int	 nquit = 0, stall, drop;

	srv_put(fd, "220 test.invalid ESMTP scripted\r\n");
	while (srv_getline(fd, line, sizeof(line), buf, &blen) == 0) {
		if (indata) {
			if (strcmp(line, ".") == 0) {
				indata = 0;
				nmsgs++;
				pthread_mutex_lock(&s->lock);
				s->msgs++;
				pthread_mutex_unlock(&s->lock);
				/* Read before the reply: the client may
				 * change the script as soon as it has it. */
				pthread_mutex_lock(&s->lock);
				drop = s->drop_after_msgs;
				pthread_mutex_unlock(&s->lock);
				srv_put(fd, "250 2.0.0 Ok: queued as X1\r\n");
				if (drop > 0 && nmsgs >= drop)
					return;
				continue;
			}
			l = strlen(line);
			/* RFC 5321 4.5.2: drop one leading dot. */
			pthread_mutex_lock(&s->lock);
			if (line[0] == '.')
				memmove(line, line + 1, l--);
			if (s->datalen + l + 2 < sizeof(s->data)) {
				memcpy(s->data + s->datalen, line, l);
				memcpy(s->data + s->datalen + l, "\r\n", 2);
				s->datalen += l + 2;
			}
			pthread_mutex_unlock(&s->lock);
			continue;
		}
		pthread_mutex_lock(&s->lock);
		l = strlen(s->log);
		snprintf(s->log + l, sizeof(s->log) - l, "%.4s\n", line);
		pthread_mutex_unlock(&s->lock);
		nth = NULL;
		if (strncmp(line, "MAIL", 4) == 0)
			nth = &nmail;
		else if (strncmp(line, "RCPT", 4) == 0)
			nth = &nrcpt;
		else if (strncmp(line, "QUIT", 4) == 0)
			nth = &nquit;
		if (nth != NULL)
			(*nth)++;
		pthread_mutex_lock(&s->lock);
		stall = s->stall_cmd != NULL && nth != NULL &&
		    strncmp(line, s->stall_cmd, 4) == 0 &&
		    *nth == s->stall_nth;
		pthread_mutex_unlock(&s->lock);
		if (stall) {
			srv_stall(s, fd);
			return;
		}
		if (strncmp(line, "EHLO ", 5) == 0)
			srv_put(fd, "250-test.invalid\r\n250-SIZE 1000000\r\n"
			    "250 8BITMIME\r\n");
		else if (strncmp(line, "MAIL FROM:<", 11) == 0) {
			pthread_mutex_lock(&s->lock);
			s->datalen = 0;
			pthread_mutex_unlock(&s->lock);
			srv_put(fd, "250 2.1.0 Ok\r\n");
		} else if (strncmp(line, "RCPT TO:<rej", 12) == 0)
			srv_put(fd, "550-5.1.1 <rej>: Recipient address "
			    "rejected:\r\n550 5.1.1 User unknown\r\n");
		else if (strncmp(line, "RCPT TO:<tmp", 12) == 0)
			srv_put(fd, "451 4.3.0 try later\r\n");
		else if (strncmp(line, "RCPT TO:<", 9) == 0)
			srv_put(fd, "250 2.1.5 Ok\r\n");
		else if (strcmp(line, "DATA") == 0) {
			indata = 1;
			srv_put(fd, "354 End data with <CR><LF>.<CR><LF>\r\n");
		} else if (strcmp(line, "RSET") == 0 ||
		    strcmp(line, "NOOP") == 0)
			srv_put(fd, "250 2.0.0 Ok\r\n");
		else if (strcmp(line, "QUIT") == 0) {
			srv_put(fd, "221 2.0.0 Bye\r\n");
			return;
		} else {
			snprintf(reply, sizeof(reply), "502 5.5.2 no\r\n");
			srv_put(fd, reply);
		}
	}
}

/* Set the script: stall at the n-th cmd, drop after msgs messages. */
static void
srv_script(struct srv *s, const char *cmd, int nth, int msgs)
{
	pthread_mutex_lock(&s->lock);
	s->stall_cmd = cmd;
	s->stall_nth = nth;
	s->drop_after_msgs = msgs;
	pthread_mutex_unlock(&s->lock);
}

/* How many commands with this verb the server saw. */
static int
srv_count(struct srv *s, const char *verb)
{
	const char	*p;
	int		 n = 0;

	pthread_mutex_lock(&s->lock);
	for (p = s->log; (p = strstr(p, verb)) != NULL; p += strlen(verb))
		if (p == s->log || p[-1] == '\n')
			n++;
	pthread_mutex_unlock(&s->lock);
	return n;
}

static int
srv_conns(struct srv *s)
{
	int	 n;

	pthread_mutex_lock(&s->lock);
	n = s->conns;
	pthread_mutex_unlock(&s->lock);
	return n;
}

/* ---- helpers ------------------------------------------------------------ */

static const char msg_text[] =
    "From: a@test.invalid\r\n"
    "To: b@test.invalid\r\n"
    "Subject: relay unit\r\n"
    "\r\n"
    ".a line that starts with a dot\r\n"
    "..and one with two\r\n"
    ".\r\n"
    "last\r\n";

static void
params_init(struct relay_params *p, uint16_t port)
{
	memset(p, 0, sizeof(*p));
	p->host = "127.0.0.1";
	p->port = port;
	p->tls = RELAY_TLS_NONE;
	p->allow_plaintext = 1;
	p->helo_name = "client.test.invalid";
	p->connect_timeout = 5;
	p->command_timeout = 5;
	p->data_timeout = 5;
	p->idle_timeout = 60;
}

/* msg_text from `from' to the n recipients rc, each ok@test.invalid
 * until the test says otherwise. */
static void
msg_init(struct relay_msg *m, struct relay_rcpt *rc, size_t n,
    const char *from)
{
	size_t	 i;

	memset(rc, 0, n * sizeof(*rc));
	for (i = 0; i < n; i++)
		rc[i].addr = "ok@test.invalid";
	memset(m, 0, sizeof(*m));
	m->from = from;
	m->rcpts = rc;
	m->nrcpts = n;
	m->data = msg_text;
	m->len = sizeof(msg_text) - 1;
}

/* ---- tests -------------------------------------------------------------- */

static void
test_strresult(void)
{
	is_str(relay_strresult(RELAY_OK), "ok", "strresult ok");
	is_str(relay_strresult(RELAY_TEMPFAIL), "tempfail", "strresult temp");
	is_str(relay_strresult(RELAY_PERMFAIL), "permfail", "strresult perm");
	is_str(relay_strresult(RELAY_TLSFAIL), "tlsfail", "strresult tls");
	is_str(relay_strresult(RELAY_AUTHFAIL), "authfail", "strresult auth");
	is_str(relay_strresult(RELAY_CONFIG), "config", "strresult config");
	is_str(relay_strresult(RELAY_INPUT), "input", "strresult input");
}

static void
test_loopback(void)
{
	static const struct {
		const char	*host;
		int		 want;
	} cases[] = {
		{ "localhost", 1 }, { "LocalHost", 1 }, { "localhost.", 1 },
		{ "127.0.0.1", 1 }, { "127.255.3.4", 1 }, { "::1", 1 },
		{ "[::1]", 1 }, { "::ffff:127.0.0.1", 1 },
		{ "127.example.com", 0 }, { "127.0.0.1.example", 0 },
		{ "128.0.0.1", 0 }, { "10.0.0.1", 0 }, { "192.0.2.1", 0 },
		{ "::2", 0 }, { "[::2]", 0 }, { "localhost.example.com", 0 },
		{ "", 0 }, { "127.1", 0 }, { "::ffff:10.0.0.1", 0 },
	};
	size_t	 i;

	for (i = 0; i < nitems(cases); i++)
		is_int(relay_host_is_loopback(cases[i].host), cases[i].want,
		    "loopback \"%s\"", cases[i].host);
	is_int(relay_host_is_loopback(NULL), 0, "loopback NULL");
}

/* Refusals before any connection: nothing reaches the server. */
static void
test_refusals(struct srv *s)
{
	struct relay_params	 p;
	struct relay_rcpt	 rc[1];
	struct relay_msg	 m;
	struct relay_conn	*conn = NULL;
	char			 err[256], longaddr[300];
	enum relay_result	 r;
	uint64_t		 t0;
	size_t			 i;
	int			 before = srv_conns(s);
	static const struct {
		const char	*addr;
		const char	*what;
	} bad[] = {
		{ "a@x\r\nRCPT TO:<evil@x", "CR LF injection" },
		{ "a@x\n", "bare LF" },
		{ "a@x\r", "bare CR" },
		{ "a@x>", "'>'" },
		{ "<a@x", "'<'" },
		{ "a b@x", "space" },
		{ "a\tb@x", "tab" },
		{ "a\x01@x", "control" },
		{ "a\x7f@x", "DEL" },
		{ "\xc3\xa9@x", "non-ASCII" },
		{ "", "empty" },
	};
	static const struct {
		const char	*data;
		size_t		 len;
		const char	*what;
	} badmsg[] = {
		{ "a\r\nb\n", 5, "bare LF" },
		{ "a\rb\r\n", 5, "bare CR" },
		{ "a\r\nb", 4, "no final CRLF" },
		{ "a\0b\r\n", 5, "NUL" },
		{ "", 0, "empty" },
	};
	char	 *longline;

	params_init(&p, s->port);
	msg_init(&m, rc, nitems(rc), "sender@test.invalid");

	for (i = 0; i < nitems(bad); i++) {
		rc[0].addr = bad[i].addr;
		rc[0].code = 999;
		r = relay_send(&conn, &p, &m, err, sizeof(err));
		is_int(r, RELAY_INPUT, "rcpt with %s: input (%s)", bad[i].what,
		    err);
		ok(conn == NULL && rc[0].code == 0, "rcpt with %s: no conn, "
		    "code 0", bad[i].what);
	}
	memset(longaddr, 'a', sizeof(longaddr));
	memcpy(longaddr + 250, "@x.y", 5);	/* 254 octets */
	rc[0].addr = longaddr;
	m.from = "a@x\r\nQUIT";
	is_int(relay_send(&conn, &p, &m, err, sizeof(err)), RELAY_INPUT,
	    "sender with CRLF: input");
	m.from = "sender@test.invalid";
	longaddr[254] = 'z';
	longaddr[255] = '\0';			/* 255 octets */
	is_int(relay_send(&conn, &p, &m, err, sizeof(err)), RELAY_INPUT,
	    "255-octet address: input (%s)", err);
	rc[0].addr = "ok@test.invalid";
	for (i = 0; i < nitems(badmsg); i++) {
		m.data = badmsg[i].data;
		m.len = badmsg[i].len;
		is_int(relay_send(&conn, &p, &m, err, sizeof(err)),
		    RELAY_INPUT, "message with %s: input (%s)",
		    badmsg[i].what, err);
	}
	longline = xmalloc(1001);
	memset(longline, 'x', 999);
	memcpy(longline + 999, "\r\n", 2);
	m.data = longline;
	m.len = 1001;
	is_int(relay_send(&conn, &p, &m, err, sizeof(err)), RELAY_INPUT,
	    "999-octet line: input (%s)", err);
	m.data = msg_text;
	m.len = sizeof(msg_text) - 1;
	m.nrcpts = 0;
	is_int(relay_send(&conn, &p, &m, err, sizeof(err)), RELAY_INPUT,
	    "no recipients: input");
	m.nrcpts = 1;
	p.helo_name = "bad name";
	is_int(relay_send(&conn, &p, &m, err, sizeof(err)), RELAY_INPUT,
	    "helo name with a space: input");
	p.helo_name = "client.test.invalid\r\nMAIL FROM:<x>";
	is_int(relay_send(&conn, &p, &m, err, sizeof(err)), RELAY_INPUT,
	    "helo name with CRLF: input");
	p.helo_name = NULL;
	is_int(relay_send(&conn, &p, &m, err, sizeof(err)), RELAY_CONFIG,
	    "no helo name: config");
	p.helo_name = "client.test.invalid";

	p.allow_plaintext = 0;
	is_int(relay_send(&conn, &p, &m, err, sizeof(err)), RELAY_CONFIG,
	    "tls none without allow_plaintext: config (%s)", err);
	p.allow_plaintext = 1;
	p.host = "192.0.2.1";		/* TEST-NET-1: never reached */
	t0 = util_now_ms();
	is_int(relay_send(&conn, &p, &m, err, sizeof(err)), RELAY_CONFIG,
	    "plaintext to a non-loopback host: config (%s)", err);
	ok(util_now_ms() - t0 < 500, "refused without connecting");
	p.host = "127.0.0.1";
	p.command_timeout = 0;
	is_int(relay_send(&conn, &p, &m, err, sizeof(err)), RELAY_CONFIG,
	    "zero timeout: config");
	p.command_timeout = 5;
	p.username = "user";
	p.password = NULL;
	is_int(relay_send(&conn, &p, &m, err, sizeof(err)), RELAY_CONFIG,
	    "username without password: config");
	p.username = NULL;
	p.port = 0;
	is_int(relay_send(&conn, &p, &m, err, sizeof(err)), RELAY_CONFIG,
	    "port 0: config");

	is_int(srv_conns(s), before, "no connection for any refusal");
	free(longline);
}

/* One message, per-recipient replies, reuse, the bytes that arrived. */
static void
test_transaction(struct srv *s)
{
	struct relay_params	 p;
	struct relay_rcpt	 rc[3];
	struct relay_msg	 m;
	struct relay_conn	*conn = NULL, *first;
	char			 err[256];
	enum relay_result	 r;
	int			 before = srv_conns(s), i;

	params_init(&p, s->port);
	msg_init(&m, rc, nitems(rc), "");
	rc[1].addr = "rej@test.invalid";
	rc[2].addr = "tmp@test.invalid";

	r = relay_send(&conn, &p, &m, err, sizeof(err));
	is_int(r, RELAY_OK, "send: ok (%s)", err);
	ok(conn != NULL, "conn kept");
	is_int(rc[0].code, 250, "accepted rcpt: final dot reply");
	is_str(rc[0].status, "2.0.0", "accepted rcpt: status");
	is_str(rc[0].text, "2.0.0 Ok: queued as X1", "accepted rcpt: text");
	is_int(rc[1].code, 550, "rejected rcpt: 550");
	is_str(rc[1].status, "5.1.1", "rejected rcpt: status");
	is_str(rc[1].text, "5.1.1 <rej>: Recipient address rejected: "
	    "5.1.1 User unknown", "rejected rcpt: multi-line text joined");
	is_int(rc[2].code, 451, "deferred rcpt: 451");
	is_str(rc[2].status, "4.3.0", "deferred rcpt: status");
	pthread_mutex_lock(&s->lock);
	ok(s->datalen == m.len && memcmp(s->data, m.data, m.len) == 0,
	    "server got the exact bytes (dot-stuffed, no extra line)");
	pthread_mutex_unlock(&s->lock);
	is_int(srv_count(s, "DATA"), 1, "one DATA");

	first = conn;
	for (i = 0; i < 2; i++) {
		r = relay_send(&conn, &p, &m, err, sizeof(err));
		is_int(r, RELAY_OK, "send %d again: ok", i + 2);
	}
	ok(conn == first, "same conn for three messages");
	is_int(srv_conns(s) - before, 1, "one connection for three messages");
	is_int(srv_count(s, "NOOP"), 0, "no NOOP between quick sends");

	/* All refused: RSET, still OK, the session stays. */
	m.rcpts = &rc[1];
	m.nrcpts = 2;
	r = relay_send(&conn, &p, &m, err, sizeof(err));
	is_int(r, RELAY_OK, "no rcpt accepted: ok");
	is_int(rc[1].code, 550, "no rcpt accepted: 550 kept");
	is_int(srv_count(s, "RSET"), 1, "no rcpt accepted: RSET sent");
	is_int(srv_count(s, "DATA"), 3, "no rcpt accepted: no DATA");
	ok(conn == first, "session kept after RSET");

	relay_close(&conn);
	ok(conn == NULL, "relay_close sets NULL");
	msleep(100);
	is_int(srv_count(s, "QUIT"), 1, "relay_close sent QUIT");
	relay_close(&conn);		/* NULL is fine */
}

/* A session idle past RELAY_NOOP_AFTER_MS is checked; a dead one redone. */
static void
test_reuse(struct srv *s)
{
	struct relay_params	 p;
	struct relay_rcpt	 rc[1];
	struct relay_msg	 m;
	struct relay_conn	*conn = NULL;
	char			 err[256];
	int			 before = srv_conns(s);

	params_init(&p, s->port);
	msg_init(&m, rc, nitems(rc), "s@test.invalid");

	is_int(relay_send(&conn, &p, &m, err, sizeof(err)), RELAY_OK,
	    "reuse: first send");
	msleep(1200);
	is_int(relay_send(&conn, &p, &m, err, sizeof(err)), RELAY_OK,
	    "reuse: send after 1.2 s idle");
	is_int(srv_count(s, "NOOP"), 1, "reuse: NOOP before it");
	is_int(srv_conns(s) - before, 1, "reuse: same connection");

	/* The server drops the session after each message. */
	srv_script(s, NULL, 0, 1);
	is_int(relay_send(&conn, &p, &m, err, sizeof(err)), RELAY_OK,
	    "dropped: send (%s)", err);
	msleep(1200);
	is_int(relay_send(&conn, &p, &m, err, sizeof(err)), RELAY_OK,
	    "dropped: next send reconnects (%s)", err);
	is_int(srv_conns(s) - before, 2, "dropped: a second connection");
	srv_script(s, NULL, 0, 0);

	/* relay_close_idle */
	p.idle_timeout = 60;
	relay_close_idle(&conn, &p);
	ok(conn != NULL, "close_idle: kept under idle_timeout");
	p.idle_timeout = 1;
	msleep(1100);
	relay_close_idle(&conn, &p);
	ok(conn == NULL, "close_idle: closed after idle_timeout");
}

/* A stalled command times out within command_timeout. */
static void
test_timeout(struct srv *s)
{
	struct relay_params	 p;
	struct relay_rcpt	 rc[1];
	struct relay_msg	 m;
	struct relay_conn	*conn = NULL;
	char			 err[256];
	uint64_t		 t0, ms;
	enum relay_result	 r;

	params_init(&p, s->port);
	p.command_timeout = 1;
	msg_init(&m, rc, nitems(rc), "s@test.invalid");

	srv_script(s, "RCPT", 1, 0);
	t0 = util_now_ms();
	r = relay_send(&conn, &p, &m, err, sizeof(err));
	ms = util_now_ms() - t0;
	srv_script(s, NULL, 0, 0);
	is_int(r, RELAY_TEMPFAIL, "stall at RCPT: tempfail");
	ok(strstr(err, "RCPT: timed out after 1 s") != NULL,
	    "stall at RCPT: err says timeout (%s)", err);
	ok(ms >= 900 && ms < 2500, "stall at RCPT: returned after %llu ms "
	    "(timeout 1 s)", (unsigned long long)ms);
	ok(conn == NULL && rc[0].code == 0, "stall: conn closed, code 0");
}

struct cancel_arg {
	struct relay_conn	*conn;
	int			 after_ms;
};

static void *
cancel_main(void *arg)
{
	struct cancel_arg	*a = arg;

	msleep(a->after_ms);
	relay_cancel(a->conn);
	return NULL;
}

/* relay_cancel() from another thread unblocks a stalled send. */
static void
test_cancel(struct srv *s)
{
	struct relay_params	 p;
	struct relay_rcpt	 rc[1];
	struct relay_msg	 m;
	struct relay_conn	*conn = NULL;
	struct cancel_arg	 ca;
	pthread_t		 t;
	char			 err[256];
	uint64_t		 t0, ms;
	enum relay_result	 r;

	params_init(&p, s->port);
	p.command_timeout = 20;
	p.data_timeout = 20;
	msg_init(&m, rc, nitems(rc), "s@test.invalid");

	is_int(relay_send(&conn, &p, &m, err, sizeof(err)), RELAY_OK,
	    "cancel: first send");
	srv_script(s, "MAIL", 2, 0);
	ca.conn = conn;
	ca.after_ms = 300;
	pthread_create(&t, NULL, cancel_main, &ca);
	t0 = util_now_ms();
	r = relay_send(&conn, &p, &m, err, sizeof(err));
	ms = util_now_ms() - t0;
	pthread_join(t, NULL);
	srv_script(s, NULL, 0, 0);
	is_int(r, RELAY_TEMPFAIL, "cancel: stalled send returns tempfail");
	ok(strstr(err, "cancelled") != NULL, "cancel: err says so (%s)", err);
	ok(ms >= 250 && ms < 2000, "cancel: returned after %llu ms, not the "
	    "20 s timeout", (unsigned long long)ms);
	ok(conn == NULL, "cancel: conn closed");
	/* A stale pointer is ignored, not dereferenced (ASan checks it). */
	relay_cancel(ca.conn);
	relay_cancel(NULL);
	ok(1, "cancel: stale and NULL pointers are ignored");
}

/*
 * libetpan select()s: a descriptor >= FD_SETSIZE would abort the process
 * in FD_SET.  Fill every free slot below FD_SETSIZE (leaving `spare'
 * free) and check relay_send() refuses instead of crashing.
 */
static void
test_fd_limit(struct srv *s)
{
	struct relay_params	 p;
	struct relay_rcpt	 rc[1];
	struct relay_msg	 m;
	struct relay_conn	*conn = NULL;
	struct rlimit		 rl, saved;
	char			 err[256];
	int			*fds, nfds = 0, fd, devnull, spare, i;

	if (getrlimit(RLIMIT_NOFILE, &saved) == -1 ||
	    saved.rlim_max < FD_SETSIZE + 64) {
		skip("fd limit: hard RLIMIT_NOFILE below %d", FD_SETSIZE + 64);
		skip("fd limit: cancel pipe");
		return;
	}
	rl = saved;
	rl.rlim_cur = FD_SETSIZE + 64;
	if (setrlimit(RLIMIT_NOFILE, &rl) == -1) {
		skip("fd limit: setrlimit: %s", strerror(errno));
		skip("fd limit: cancel pipe");
		return;
	}
	params_init(&p, s->port);
	msg_init(&m, rc, nitems(rc), "s@test.invalid");
	fds = xcalloc(FD_SETSIZE, sizeof(*fds));
	devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);

	for (spare = 0; spare <= 1; spare++) {
		/* Take every free slot below FD_SETSIZE ... */
		while ((fd = dup(devnull)) != -1 && fd < FD_SETSIZE)
			fds[nfds++] = fd;
		if (fd != -1)
			close(fd);
		/* ... then give `spare' back: the socket takes it, and the
		 * stream's cancel pipe lands above FD_SETSIZE. */
		for (i = 0; i < spare && nfds > 0; i++)
			close(fds[--nfds]);
		is_int(relay_send(&conn, &p, &m, err, sizeof(err)),
		    RELAY_TEMPFAIL, "fd limit, %d slot%s free: tempfail, no "
		    "abort (%s)", spare, spare == 1 ? "" : "s", err);
		ok(strncmp(err, "fd limit", 8) == 0 && conn == NULL,
		    "fd limit: err says so, conn closed");
		while (nfds > 0)
			close(fds[--nfds]);
	}
	close(devnull);
	free(fds);
	setrlimit(RLIMIT_NOFILE, &saved);
	is_int(relay_send(&conn, &p, &m, err, sizeof(err)), RELAY_OK,
	    "fd limit: fine again once descriptors are free");
	relay_close(&conn);
}

int
main(void)
{
	struct srv	 s;

	log_init("test_relay", LOG_TO_STDERR, 0);
	if (relay_global_init() == -1) {
		printf("Bail out! relay_global_init\n");
		return 1;
	}
	memset(&s, 0, sizeof(s));
	srv_start(&s);

	test_strresult();
	test_loopback();
	test_refusals(&s);
	test_transaction(&s);
	test_reuse(&s);
	test_timeout(&s);
	test_cancel(&s);
	test_fd_limit(&s);

	srv_stop(&s);
	return tap_done();
}
