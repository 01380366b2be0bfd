/*
 * smtpd.c - the SMTP submission listener: accept glue.
 *
 * Listens on [smtp] listen (an evconnlistener with a backlog of 512: a
 * small backlog dropped connections in OpenSMTPD's benchmark), makes one
 * smtpd_session per connection, caps them at smtp.max_sessions (421 4.7.0
 * beyond), and on shutdown stops accepting and closes idle sessions (421
 * 4.3.2).  The protocol itself is smtpd_session.c.
 *
 * TLS: with tls_cert/tls_key set the sessions offer STARTTLS.  A listener
 * off loopback without TLS is refused unless allow_plaintext is set (the
 * config validation says so too; this is the second line of defence).
 *
 * Public: smtpd_start, smtpd_stop_accepting, smtpd_sessions,
 * smtpd_close_idle, smtpd_free.  Every function accepts the NULL returned
 * by smtpd_start() when [smtp] listen is empty.
 * Error policy: smtpd_start returns 0 or -1 with a malloc'd reason.
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
#include "daemon.h"
#include "log.h"
#include "smtpd.h"
#include "smtpd_session.h"
#include "tlsserver.h"
#include "util.h"

#define SMTPD_BACKLOG		512
#define SMTPD_ACCEPT_PAUSE_MS	1000	/* after EMFILE and friends */

struct smtpd_conn {
	struct smtpd		*sd;
	struct smtpd_session	*s;
	TAILQ_ENTRY(smtpd_conn)	 entry;
};

struct smtpd {
	struct daemon		*d;
	struct evconnlistener	*lev;
	struct event		*ev_resume;
	struct tlsserver	*tls;
	struct smtpd_session_env env;
	char			*hostname;
	char			*addr;		/* for logs */
	int			 accepting;
	int			 nsessions;
	TAILQ_HEAD(, smtpd_conn) conns;
};

static void	 smtpd_accept(struct evconnlistener *, evutil_socket_t,
		    struct sockaddr *, int, void *);
static void	 smtpd_accept_error(struct evconnlistener *, void *);
static void	 smtpd_resume(evutil_socket_t, short, void *);
static void	 smtpd_gone(void *);
static void	 smtpd_refuse(int, const char *);

/* Bind the listener and load the TLS context; *sdp is NULL when off. */
int
smtpd_start(struct daemon *d, struct smtpd **sdp, char **error_r)
{
	const struct config	*cfg = d->cfg;
	struct smtpd		*sd;
	struct addrinfo		 hints, *ai = NULL;
	char			*host = NULL, portstr[16], name[256];
	const char		*why;
	int			 port, loopback, r;

	*sdp = NULL;
	*error_r = NULL;
	if (cfg->smtp_listen == NULL || cfg->smtp_listen[0] == '\0')
		return 0;
	if ((why = config_split_listen(cfg->smtp_listen, &host, &port)) !=
	    NULL) {
		xasprintf(error_r, "smtp listen %s: %s", cfg->smtp_listen, why);
		return -1;
	}
	loopback = util_is_loopback(host);

	sd = xcalloc(1, sizeof *sd);
	sd->d = d;
	TAILQ_INIT(&sd->conns);
	sd->addr = xstrdup(cfg->smtp_listen);

	if (tlsserver_for_listener("smtp", cfg->smtp_listen, loopback,
	    cfg->smtp_tls_cert, cfg->smtp_tls_key, cfg->smtp_allow_plaintext,
	    &sd->tls, error_r) != 0)
		goto fail;

	if (cfg->smtp_hostname != NULL && cfg->smtp_hostname[0] != '\0')
		sd->hostname = xstrdup(cfg->smtp_hostname);
	else if (gethostname(name, sizeof name) == 0 && name[0] != '\0') {
		name[sizeof name - 1] = '\0';
		sd->hostname = xstrdup(name);
	} else
		sd->hostname = xstrdup("localhost");

	sd->env.d = d;
	sd->env.tls = sd->tls;
	sd->env.hostname = sd->hostname;
	sd->env.plaintext_auth = !loopback && sd->tls == NULL &&
	    cfg->smtp_allow_plaintext;
	sd->env.gone = smtpd_gone;

	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(portstr, sizeof portstr, "%d", port);
	if ((r = getaddrinfo(host, portstr, &hints, &ai)) != 0) {
		xasprintf(error_r, "smtp listen %s: %s", cfg->smtp_listen,
		    gai_strerror(r));
		goto fail;
	}
	sd->lev = evconnlistener_new_bind(d->base, smtpd_accept, sd,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
	    SMTPD_BACKLOG, ai->ai_addr, (int)ai->ai_addrlen);
	if (sd->lev == NULL) {
		xasprintf(error_r, "smtp: cannot listen on %s: %s",
		    cfg->smtp_listen, strerror(errno));
		goto fail;
	}
	freeaddrinfo(ai);
	ai = NULL;
	evconnlistener_set_error_cb(sd->lev, smtpd_accept_error);
	sd->ev_resume = evtimer_new(d->base, smtpd_resume, sd);
	if (sd->ev_resume == NULL)
		log_fatalx("smtp: evtimer_new failed");
	sd->accepting = 1;
	log_info("smtp listening addr=%s tls=%s auth=%s", sd->addr,
	    sd->tls != NULL ? "starttls" : "none",
	    loopback ? "loopback" : sd->tls != NULL ? "after-starttls" :
	    "plaintext");
	free(host);
	*sdp = sd;
	return 0;
fail:
	if (ai != NULL)
		freeaddrinfo(ai);
	free(host);
	smtpd_free(&sd);
	return -1;
}

/* A new connection: a session, or 421 when full or stopping. */
static void
smtpd_accept(struct evconnlistener *lev, evutil_socket_t fd,
    struct sockaddr *sa, int socklen, void *arg)
{
	struct smtpd		*sd = arg;
	struct smtpd_conn	*conn;
	int			 one = 1;

	(void)lev;
	if (sd->d->draining || !sd->accepting) {
		smtpd_refuse(fd, "421 4.3.2 shutting down, try again later");
		return;
	}
	if (sd->nsessions >= sd->d->cfg->smtp_max_sessions) {
		log_warnx("smtp event=refused reason=max-sessions sessions=%d",
		    sd->nsessions);
		smtpd_refuse(fd, "421 4.7.0 too many sessions, try again "
		    "later");
		return;
	}
	/* replies are small and answer the client: do not wait on Nagle */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	conn = xcalloc(1, sizeof *conn);
	conn->sd = sd;
	TAILQ_INSERT_TAIL(&sd->conns, conn, entry);
	sd->nsessions++;
	conn->s = smtpd_session_new(&sd->env, fd, sa, socklen, conn);
}

/* Say a one-line refusal without a session and close. */
static void
smtpd_refuse(int fd, const char *line)
{
	char	 buf[128];
	int	 n;

	n = snprintf(buf, sizeof buf, "%s\r\n", line);
	/* best effort: the socket is fresh, so its buffer has room */
	if (write(fd, buf, (size_t)n) < 0)
		log_debug("smtp event=refuse-write errno=%d", errno);
	close(fd);
}

/* accept() failed (EMFILE, ENFILE, ENOBUFS): pause instead of spinning. */
static void
smtpd_accept_error(struct evconnlistener *lev, void *arg)
{
	struct smtpd	*sd = arg;
	struct timeval	 tv = { SMTPD_ACCEPT_PAUSE_MS / 1000,
			    (SMTPD_ACCEPT_PAUSE_MS % 1000) * 1000 };

	log_warn("smtp: accept");
	evconnlistener_disable(lev);
	evtimer_add(sd->ev_resume, &tv);
}

/* Accept again after a pause. */
static void
smtpd_resume(evutil_socket_t fd, short what, void *arg)
{
	struct smtpd	*sd = arg;

	(void)fd;
	(void)what;
	if (sd->accepting)
		evconnlistener_enable(sd->lev);
}

/* A session ended by itself: forget it. */
static void
smtpd_gone(void *arg)
{
	struct smtpd_conn	*conn = arg;
	struct smtpd		*sd = conn->sd;

	TAILQ_REMOVE(&sd->conns, conn, entry);
	sd->nsessions--;
	free(conn);
}

/* Stop accepting connections (shutdown). */
void
smtpd_stop_accepting(struct smtpd *sd)
{
	if (sd == NULL || !sd->accepting)
		return;
	sd->accepting = 0;
	evconnlistener_disable(sd->lev);
	evtimer_del(sd->ev_resume);
	log_info("smtp event=stop-accepting addr=%s sessions=%d", sd->addr,
	    sd->nsessions);
}

/* Sessions still alive, including those waiting for their commit. */
int
smtpd_sessions(struct smtpd *sd)
{
	return sd == NULL ? 0 : sd->nsessions;
}

/* Tell every idle session 421 and close it; busy ones finish first. */
void
smtpd_close_idle(struct smtpd *sd)
{
	struct smtpd_conn	*conn;

	if (sd == NULL)
		return;
	/* sessions close through their own events: the list stays intact */
	TAILQ_FOREACH(conn, &sd->conns, entry)
		smtpd_session_shutdown(conn->s);
}

/* Close the listener and tear down every session. */
void
smtpd_free(struct smtpd **sdp)
{
	struct smtpd		*sd;
	struct smtpd_conn	*conn;

	if (sdp == NULL || (sd = *sdp) == NULL)
		return;
	*sdp = NULL;
	while ((conn = TAILQ_FIRST(&sd->conns)) != NULL) {
		TAILQ_REMOVE(&sd->conns, conn, entry);
		smtpd_session_free(&conn->s);
		free(conn);
	}
	if (sd->lev != NULL)
		evconnlistener_free(sd->lev);
	if (sd->ev_resume != NULL)
		event_free(sd->ev_resume);
	tlsserver_free(&sd->tls);
	free(sd->hostname);
	free(sd->addr);
	free(sd);
}
