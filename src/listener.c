/*
 * listener.c - the accept glue shared by the SMTP and LMTP listeners.
 *
 * An evconnlistener on one address; one smtpd_session per connection,
 * kept on a list so that shutdown can reach every session; 421 4.7.0
 * beyond the owner's max_sessions and 421 4.3.2 while it drains.  After
 * accept() fails (EMFILE and friends) the listener pauses for a second
 * instead of spinning on a descriptor it cannot take.
 *
 * Public: listener_start, listener_hostname, listener_port,
 * listener_stop_accepting, listener_sessions, listener_close_idle,
 * listener_free.
 * Error policy: listener_start returns 0 or -1 with a malloc'd reason.
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

#include "listener.h"
#include "log.h"
#include "smtpd_session.h"
#include "util.h"

#define LISTENER_ACCEPT_PAUSE_MS	1000	/* after EMFILE and friends */

struct listener_conn {
	struct listener		*l;
	struct smtpd_session	*s;
	TAILQ_ENTRY(listener_conn) entry;
};

struct listener {
	const char		*proto;		/* a literal */
	struct evconnlistener	*lev;
	struct event		*ev_resume;
	struct smtpd_session_env *env;
	const int64_t		*max_sessions;
	const int		*draining;
	char			*addr;		/* for logs */
	int			 port;
	int			 accepting;
	int			 nsessions;
	TAILQ_HEAD(, listener_conn) conns;
};

static void	 listener_accept(struct evconnlistener *, evutil_socket_t,
		    struct sockaddr *, int, void *);
static void	 listener_accept_error(struct evconnlistener *, void *);
static void	 listener_resume(evutil_socket_t, short, void *);
static void	 listener_gone(void *);
static void	 listener_refuse(struct listener *, int, const char *);

/* Bind and listen on p->host:p->port. */
int
listener_start(struct event_base *base, const struct listener_params *p,
    struct listener **lp, char **error_r)
{
	struct listener		*l;
	struct addrinfo		 hints, *ai = NULL;
	struct sockaddr_storage	 ss;
	socklen_t		 sslen = sizeof ss;
	char			 portstr[16];
	int			 r;

	*lp = NULL;
	l = xcalloc(1, sizeof *l);
	l->proto = p->proto;
	l->env = p->env;
	l->env->gone = listener_gone;
	l->max_sessions = p->max_sessions;
	l->draining = p->draining;
	l->addr = xstrdup(p->listen);
	TAILQ_INIT(&l->conns);

	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(portstr, sizeof portstr, "%d", p->port);
	if ((r = getaddrinfo(p->host, portstr, &hints, &ai)) != 0) {
		xasprintf(error_r, "%s listen %s: %s", l->proto, p->listen,
		    gai_strerror(r));
		goto fail;
	}
	l->lev = evconnlistener_new_bind(base, listener_accept, l,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
	    p->backlog, ai->ai_addr, (int)ai->ai_addrlen);
	if (l->lev == NULL) {
		xasprintf(error_r, "%s: cannot listen on %s: %s", l->proto,
		    p->listen, strerror(errno));
		goto fail;
	}
	freeaddrinfo(ai);
	l->port = p->port;
	if (getsockname(evconnlistener_get_fd(l->lev),
	    (struct sockaddr *)&ss, &sslen) == 0) {
		if (ss.ss_family == AF_INET)
			l->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		else if (ss.ss_family == AF_INET6)
			l->port = ntohs(
			    ((struct sockaddr_in6 *)&ss)->sin6_port);
	}
	evconnlistener_set_error_cb(l->lev, listener_accept_error);
	l->ev_resume = evtimer_new(base, listener_resume, l);
	if (l->ev_resume == NULL)
		log_fatalx("%s: evtimer_new failed", l->proto);
	l->accepting = 1;
	*lp = l;
	return 0;
fail:
	if (ai != NULL)
		freeaddrinfo(ai);
	listener_free(&l);
	return -1;
}

/* The greeting name: configured, else the host's, else "localhost". */
char *
listener_hostname(const char *configured)
{
	char	 name[256];

	if (configured != NULL && configured[0] != '\0')
		return xstrdup(configured);
	if (gethostname(name, sizeof name) == 0 && name[0] != '\0') {
		name[sizeof name - 1] = '\0';
		return xstrdup(name);
	}
	return xstrdup("localhost");
}

/* The bound port, or 0. */
int
listener_port(struct listener *l)
{
	return l == NULL ? 0 : l->port;
}

/* A new connection: a session, or 421 when full or stopping. */
static void
listener_accept(struct evconnlistener *lev, evutil_socket_t fd,
    struct sockaddr *sa, int socklen, void *arg)
{
	struct listener		*l = arg;
	struct listener_conn	*conn;
	int			 one = 1;

	(void)lev;
	if (*l->draining || !l->accepting) {
		listener_refuse(l, fd,
		    "421 4.3.2 shutting down, try again later");
		return;
	}
	if (l->nsessions >= *l->max_sessions) {
		log_warnx("%s event=refused reason=max-sessions sessions=%d",
		    l->proto, l->nsessions);
		listener_refuse(l, fd, "421 4.7.0 too many sessions, try "
		    "again later");
		return;
	}
	/* replies are small and answer the client: do not wait on Nagle */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	conn = xcalloc(1, sizeof *conn);
	conn->l = l;
	TAILQ_INSERT_TAIL(&l->conns, conn, entry);
	l->nsessions++;
	conn->s = smtpd_session_new(l->env, fd, sa, socklen, conn);
}

/* Say a one-line refusal without a session and close. */
static void
listener_refuse(struct listener *l, int fd, const char *line)
{
	char	 buf[128];
	int	 n;

	n = snprintf(buf, sizeof buf, "%s\r\n", line);
	/* best effort: the socket is fresh, so its buffer has room */
	if (write(fd, buf, (size_t)n) < 0)
		log_debug("%s event=refuse-write errno=%d", l->proto, errno);
	close(fd);
}

/* accept() failed (EMFILE, ENFILE, ENOBUFS): pause instead of spinning. */
static void
listener_accept_error(struct evconnlistener *lev, void *arg)
{
	struct listener	*l = arg;
	struct timeval	 tv = { LISTENER_ACCEPT_PAUSE_MS / 1000,
			    (LISTENER_ACCEPT_PAUSE_MS % 1000) * 1000 };

	log_warn("%s: accept", l->proto);
	evconnlistener_disable(lev);
	evtimer_add(l->ev_resume, &tv);
}

/* Accept again after a pause. */
static void
listener_resume(evutil_socket_t fd, short what, void *arg)
{
	struct listener	*l = arg;

	(void)fd;
	(void)what;
	if (l->accepting)
		evconnlistener_enable(l->lev);
}

/* A session ended by itself: forget it. */
static void
listener_gone(void *arg)
{
	struct listener_conn	*conn = arg;
	struct listener		*l = conn->l;

	TAILQ_REMOVE(&l->conns, conn, entry);
	l->nsessions--;
	free(conn);
}

/* Stop accepting connections (shutdown). */
void
listener_stop_accepting(struct listener *l)
{
	if (l == NULL || !l->accepting)
		return;
	l->accepting = 0;
	evconnlistener_disable(l->lev);
	evtimer_del(l->ev_resume);
	log_info("%s event=stop-accepting addr=%s sessions=%d", l->proto,
	    l->addr, l->nsessions);
}

/* Sessions still alive, including those waiting for their work. */
int
listener_sessions(struct listener *l)
{
	return l == NULL ? 0 : l->nsessions;
}

/* Tell every idle session 421 and close it; busy ones finish first. */
void
listener_close_idle(struct listener *l)
{
	struct listener_conn	*conn;

	if (l == NULL)
		return;
	/* sessions close through their own events: the list stays intact */
	TAILQ_FOREACH(conn, &l->conns, entry)
		smtpd_session_shutdown(conn->s);
}

/* Close the listener and tear down every session. */
void
listener_free(struct listener **lp)
{
	struct listener		*l;
	struct listener_conn	*conn;

	if (lp == NULL || (l = *lp) == NULL)
		return;
	*lp = NULL;
	while ((conn = TAILQ_FIRST(&l->conns)) != NULL) {
		TAILQ_REMOVE(&l->conns, conn, entry);
		smtpd_session_free(&conn->s);
		free(conn);
	}
	if (l->lev != NULL)
		evconnlistener_free(l->lev);
	if (l->ev_resume != NULL)
		event_free(l->ev_resume);
	free(l->addr);
	free(l);
}
