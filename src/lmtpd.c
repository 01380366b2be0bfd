/*
 * lmtpd.c - the LMTP listener (RFC 2033): accept glue.
 *
 * Listens on [lmtp] listen (loopback only: LMTP has no TLS and no AUTH,
 * the practice's own MX is the only client), makes one smtpd_session in
 * LMTP mode per connection, caps them at max_sessions (421 4.7.0 beyond),
 * and on shutdown stops accepting and closes idle sessions (421 4.3.2).
 * The protocol is smtpd_session.c; the processing is the intake pool,
 * reached through params->submit.
 *
 * Public: lmtpd_params_init, lmtpd_start, lmtpd_port,
 * lmtpd_stop_accepting, lmtpd_sessions, lmtpd_close_idle, lmtpd_stop.
 * Error policy: lmtpd_start returns 0 or -1 with a malloc'd reason.
 */
#include "build.h"

#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <netdb.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "config.h"
#include "lmtpd.h"
#include "log.h"
#include "smtpd_session.h"
#include "util.h"

#define LMTPD_BACKLOG		128
#define LMTPD_ACCEPT_PAUSE_MS	1000	/* after EMFILE and friends */

struct lmtpd_conn {
	struct lmtpd		*ld;
	struct smtpd_session	*s;
	TAILQ_ENTRY(lmtpd_conn)	 entry;
};

struct lmtpd {
	struct event_base	*base;
	struct evconnlistener	*lev;
	struct event		*ev_resume;
	struct smtpd_session_env env;	/* env.draining: shutting down */
	char			*hostname;
	char			*addr;		/* for logs */
	int			 port;
	int			 accepting;
	int			 max_sessions;
	int			 nsessions;
	TAILQ_HEAD(, lmtpd_conn) conns;
};

static void	 lmtpd_accept(struct evconnlistener *, evutil_socket_t,
		    struct sockaddr *, int, void *);
static void	 lmtpd_accept_error(struct evconnlistener *, void *);
static void	 lmtpd_resume(evutil_socket_t, short, void *);
static void	 lmtpd_gone(void *);
static void	 lmtpd_refuse(int, const char *);

/* The listener's bounds from the configuration. */
void
lmtpd_params_init(struct lmtpd_params *p, const struct config *cfg)
{
	memset(p, 0, sizeof *p);
	p->listen = cfg->lmtp_listen;
	p->hostname = cfg->smtp_hostname;
	p->timeout = cfg->lmtp_timeout;
	p->max_sessions = cfg->lmtp_max_sessions;
	p->max_size = (size_t)cfg->replies_max_size;
	p->max_line = (size_t)cfg->smtp_max_line_length;
	p->max_header = (size_t)cfg->smtp_max_header_size;
	p->max_rcpts = LMTPD_MAX_RECIPIENTS;
}

/* Bind the listener; *lp is NULL when off. */
int
lmtpd_start(struct event_base *base, const struct lmtpd_params *p,
    struct lmtpd **lp, char **error_r)
{
	struct lmtpd		*ld;
	struct addrinfo		 hints, *ai = NULL;
	struct sockaddr_storage	 ss;
	socklen_t		 sslen = sizeof ss;
	char			*host = NULL, portstr[16], name[256];
	const char		*why;
	int			 port, r;

	*lp = NULL;
	*error_r = NULL;
	if (p->listen == NULL || p->listen[0] == '\0')
		return 0;
	if (p->submit == NULL || p->job_free == NULL)
		log_panic("lmtpd_start: no processor");
	if (p->timeout <= 0 || p->max_sessions <= 0 || p->max_size == 0 ||
	    p->max_line == 0 || p->max_header == 0 || p->max_rcpts == 0) {
		xasprintf(error_r, "lmtp listen %s: a bound is zero",
		    p->listen);
		return -1;
	}
	if ((why = config_split_listen(p->listen, &host, &port)) != NULL) {
		xasprintf(error_r, "lmtp listen %s: %s", p->listen, why);
		return -1;
	}
	/* the config check says so too; this is the second line */
	if (!util_is_loopback(host)) {
		xasprintf(error_r, "lmtp listen %s: LMTP has no TLS or "
		    "authentication: loopback only", p->listen);
		free(host);
		return -1;
	}

	ld = xcalloc(1, sizeof *ld);
	ld->base = base;
	TAILQ_INIT(&ld->conns);
	ld->addr = xstrdup(p->listen);
	ld->max_sessions = p->max_sessions > INT32_MAX ? INT32_MAX :
	    (int)p->max_sessions;
	if (p->hostname != NULL && p->hostname[0] != '\0')
		ld->hostname = xstrdup(p->hostname);
	else if (gethostname(name, sizeof name) == 0 && name[0] != '\0') {
		name[sizeof name - 1] = '\0';
		ld->hostname = xstrdup(name);
	} else
		ld->hostname = xstrdup("localhost");

	ld->env.hostname = ld->hostname;
	ld->env.gone = lmtpd_gone;
	ld->env.lmtp = 1;
	ld->env.base = base;
	ld->env.timeout = p->timeout;
	ld->env.max_line = p->max_line;
	ld->env.max_header = p->max_header;
	ld->env.max_size = p->max_size;
	ld->env.max_rcpts = p->max_rcpts;
	ld->env.submit = p->submit;
	ld->env.submit_arg = p->submit_arg;
	ld->env.job_free = p->job_free;

	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(portstr, sizeof portstr, "%d", port);
	if ((r = getaddrinfo(host, portstr, &hints, &ai)) != 0) {
		xasprintf(error_r, "lmtp listen %s: %s", p->listen,
		    gai_strerror(r));
		goto fail;
	}
	ld->lev = evconnlistener_new_bind(base, lmtpd_accept, ld,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
	    LMTPD_BACKLOG, ai->ai_addr, (int)ai->ai_addrlen);
	if (ld->lev == NULL) {
		xasprintf(error_r, "lmtp: cannot listen on %s: %s", p->listen,
		    strerror(errno));
		goto fail;
	}
	freeaddrinfo(ai);
	ai = NULL;
	ld->port = port;
	if (getsockname(evconnlistener_get_fd(ld->lev),
	    (struct sockaddr *)&ss, &sslen) == 0) {
		if (ss.ss_family == AF_INET)
			ld->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		else if (ss.ss_family == AF_INET6)
			ld->port = ntohs(
			    ((struct sockaddr_in6 *)&ss)->sin6_port);
	}
	evconnlistener_set_error_cb(ld->lev, lmtpd_accept_error);
	ld->ev_resume = evtimer_new(base, lmtpd_resume, ld);
	if (ld->ev_resume == NULL)
		log_fatalx("lmtp: evtimer_new failed");
	ld->accepting = 1;
	log_info("lmtp listening addr=%s port=%d max_size=%zu", ld->addr,
	    ld->port, p->max_size);
	free(host);
	*lp = ld;
	return 0;
fail:
	if (ai != NULL)
		freeaddrinfo(ai);
	free(host);
	lmtpd_stop(&ld);
	return -1;
}

/* The bound port, or 0. */
int
lmtpd_port(struct lmtpd *ld)
{
	return ld == NULL ? 0 : ld->port;
}

/* A new connection: a session, or 421 when full or stopping. */
static void
lmtpd_accept(struct evconnlistener *lev, evutil_socket_t fd,
    struct sockaddr *sa, int socklen, void *arg)
{
	struct lmtpd		*ld = arg;
	struct lmtpd_conn	*conn;
	int			 one = 1;

	(void)lev;
	if (ld->env.draining || !ld->accepting) {
		lmtpd_refuse(fd, "421 4.3.2 shutting down, try again later");
		return;
	}
	if (ld->nsessions >= ld->max_sessions) {
		log_warnx("lmtp event=refused reason=max-sessions sessions=%d",
		    ld->nsessions);
		lmtpd_refuse(fd, "421 4.7.0 too many sessions, try again "
		    "later");
		return;
	}
	/* replies are small and answer the client: do not wait on Nagle */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	conn = xcalloc(1, sizeof *conn);
	conn->ld = ld;
	TAILQ_INSERT_TAIL(&ld->conns, conn, entry);
	ld->nsessions++;
	conn->s = smtpd_session_new(&ld->env, fd, sa, socklen, conn);
}

/* Say a one-line refusal without a session and close. */
static void
lmtpd_refuse(int fd, const char *line)
{
	char	 buf[128];
	int	 n;

	n = snprintf(buf, sizeof buf, "%s\r\n", line);
	/* best effort: the socket is fresh, so its buffer has room */
	if (write(fd, buf, (size_t)n) < 0)
		log_debug("lmtp event=refuse-write errno=%d", errno);
	close(fd);
}

/* accept() failed (EMFILE, ENFILE, ENOBUFS): pause instead of spinning. */
static void
lmtpd_accept_error(struct evconnlistener *lev, void *arg)
{
	struct lmtpd	*ld = arg;
	struct timeval	 tv = { LMTPD_ACCEPT_PAUSE_MS / 1000,
			    (LMTPD_ACCEPT_PAUSE_MS % 1000) * 1000 };

	log_warn("lmtp: accept");
	evconnlistener_disable(lev);
	evtimer_add(ld->ev_resume, &tv);
}

/* Accept again after a pause. */
static void
lmtpd_resume(evutil_socket_t fd, short what, void *arg)
{
	struct lmtpd	*ld = arg;

	(void)fd;
	(void)what;
	if (ld->accepting)
		evconnlistener_enable(ld->lev);
}

/* A session ended by itself: forget it. */
static void
lmtpd_gone(void *arg)
{
	struct lmtpd_conn	*conn = arg;
	struct lmtpd		*ld = conn->ld;

	TAILQ_REMOVE(&ld->conns, conn, entry);
	ld->nsessions--;
	free(conn);
}

/* Stop accepting connections and refuse new work (shutdown). */
void
lmtpd_stop_accepting(struct lmtpd *ld)
{
	if (ld == NULL || !ld->accepting)
		return;
	ld->accepting = 0;
	ld->env.draining = 1;
	evconnlistener_disable(ld->lev);
	evtimer_del(ld->ev_resume);
	log_info("lmtp event=stop-accepting addr=%s sessions=%d", ld->addr,
	    ld->nsessions);
}

/* Sessions still alive, including those waiting for the intake. */
int
lmtpd_sessions(struct lmtpd *ld)
{
	return ld == NULL ? 0 : ld->nsessions;
}

/* Tell every idle session 421 and close it; busy ones finish first. */
void
lmtpd_close_idle(struct lmtpd *ld)
{
	struct lmtpd_conn	*conn;

	if (ld == NULL)
		return;
	ld->env.draining = 1;
	/* sessions close through their own events: the list stays intact */
	TAILQ_FOREACH(conn, &ld->conns, entry)
		smtpd_session_shutdown(conn->s);
}

/* Close the listener and tear down every session. */
void
lmtpd_stop(struct lmtpd **lp)
{
	struct lmtpd		*ld;
	struct lmtpd_conn	*conn;

	if (lp == NULL || (ld = *lp) == NULL)
		return;
	*lp = NULL;
	while ((conn = TAILQ_FIRST(&ld->conns)) != NULL) {
		TAILQ_REMOVE(&ld->conns, conn, entry);
		smtpd_session_free(&conn->s);
		free(conn);
	}
	if (ld->lev != NULL)
		evconnlistener_free(ld->lev);
	if (ld->ev_resume != NULL)
		event_free(ld->ev_resume);
	free(ld->hostname);
	free(ld->addr);
	free(ld);
}
