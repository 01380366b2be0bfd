/*
 * control.c - the control socket: a UNIX stream socket (mode 0600, in a
 * directory made 0750 if missing) on which sealpostctl asks the running
 * daemon for its status or a reload.
 *
 * Protocol: one command line per connection, at most CONTROL_LINE_MAX
 * bytes, ending in LF (or at the client's half-close); the daemon answers
 * one JSON object and a LF, then closes:
 *   status   daemon_status_json(d)
 *   reload   daemon_reload(d), then {"ok":true}
 *   bounce ADDRESS LENGTH, then LENGTH bytes (at most CONTROL_BODY_MAX):
 *            daemon_bounce(); the answer comes when it has been applied
 *   other    {"error":{"code":"unknown_command","message":"..."}}
 * A longer line gets {"error":{"code":"line_too_long",...}}; a connection
 * silent for CONTROL_TIMEOUT seconds is closed.  Besides the file mode,
 * only peers running as our uid or as root are served (SO_PEERCRED).
 *
 * A socket file left by a daemon that died is removed at start, but only
 * after connecting to it failed: a live daemon's socket is never stolen.
 *
 * The client half (control_request, for sealpostctl) is control_client.c,
 * so that sealpostctl does not link the daemon side.
 *
 * Public: control_start, control_free.
 * Error policy: control_start returns 0 or -1 with a malloc'd reason in
 * *error_r.
 */
#include "build.h"

#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "control.h"
#include "daemon.h"
#include "log.h"
#include "util.h"

#define CONTROL_TIMEOUT		10		/* seconds, daemon side */
#define CONTROL_BODY_MAX	(64 * 1024 * 1024)	/* a bounce */
#define CONTROL_BACKLOG		16

struct control_conn {
	struct control		*ctl;
	struct bufferevent	*bev;
	int			 answered;	/* the answer is queued */
	int			 flushed;	/* ... and written */
	int			 eof;		/* the peer sent all it will */
	int			 pending;	/* an answer will come later */
	int			 dead;		/* closed while pending */
	size_t			 body_need;	/* bytes of body to read */
	char			*body_addr;	/* the bounce address */
	TAILQ_ENTRY(control_conn) entry;
};

struct control {
	struct daemon		*d;
	char			*path;
	struct evconnlistener	*lev;
	TAILQ_HEAD(, control_conn) conns;
};

static int	 control_prepare_path(const char *, char **);
static void	 control_accept(struct evconnlistener *, evutil_socket_t,
		    struct sockaddr *, int, void *);
static void	 control_accept_error(struct evconnlistener *, void *);
static void	 control_read(struct bufferevent *, void *);
static void	 control_written(struct bufferevent *, void *);
static void	 control_event(struct bufferevent *, short, void *);
static void	 control_command(struct control_conn *, const char *);
static void	 control_answer(struct control_conn *, const char *);
static void	 control_close(struct control_conn *);
static void	 control_body(struct control_conn *);
static void	 control_later(void *, const char *);

/* Listen on `path'; *ctlp stays NULL when path is empty. */
int
control_start(struct daemon *d, const char *path, struct control **ctlp,
    char **error_r)
{
	struct control		*ctl;
	struct sockaddr_un	 sun;
	mode_t			 old;
	int			 fd;

	*ctlp = NULL;
	*error_r = NULL;
	if (path == NULL || path[0] == '\0')
		return 0;
	if (control_sockaddr(path, &sun, error_r) != 0 ||
	    control_prepare_path(path, error_r) != 0)
		return -1;

	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
	    0)) == -1) {
		xasprintf(error_r, "socket: %s", strerror(errno));
		return -1;
	}
	/* The socket file is born 0600: no window with a wider mode. */
	old = umask(0177);
	if (bind(fd, (struct sockaddr *)&sun, sizeof sun) == -1) {
		umask(old);
		xasprintf(error_r, "bind %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	umask(old);
	if (chmod(path, 0600) == -1) {
		xasprintf(error_r, "chmod %s: %s", path, strerror(errno));
		unlink(path);
		close(fd);
		return -1;
	}

	ctl = xcalloc(1, sizeof *ctl);
	ctl->d = d;
	ctl->path = xstrdup(path);
	TAILQ_INIT(&ctl->conns);
	ctl->lev = evconnlistener_new(d->base, control_accept, ctl,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, CONTROL_BACKLOG, fd);
	if (ctl->lev == NULL) {
		xasprintf(error_r, "listen %s: %s", path, strerror(errno));
		unlink(path);
		close(fd);
		free(ctl->path);
		free(ctl);
		return -1;
	}
	evconnlistener_set_error_cb(ctl->lev, control_accept_error);
	log_info("control: listening on %s", path);
	*ctlp = ctl;
	return 0;
}

/* Close the listener and every connection; remove the socket file. */
void
control_free(struct control **ctlp)
{
	struct control		*ctl = *ctlp;
	struct control_conn	*cc;

	if (ctl == NULL)
		return;
	while ((cc = TAILQ_FIRST(&ctl->conns)) != NULL)
		control_close(cc);
	if (ctl->lev != NULL)
		evconnlistener_free(ctl->lev);
	unlink(ctl->path);
	free(ctl->path);
	free(ctl);
	*ctlp = NULL;
}

/*
 * Make the parent directory (0750) if it is missing; remove a stale
 * socket file, but only when nobody answers on it.
 */
static int
control_prepare_path(const char *path, char **error_r)
{
	struct sockaddr_un	 sun;
	struct stat		 st;
	char			*dir, *slash;
	int			 fd, r, saved;

	dir = xstrdup(path);
	if ((slash = strrchr(dir, '/')) != NULL && slash != dir) {
		*slash = '\0';
		if (stat(dir, &st) == -1) {
			/* chmod: the daemon's umask (077) would narrow it. */
			if (errno != ENOENT || mkdir(dir, 0750) == -1 ||
			    chmod(dir, 0750) == -1) {
				xasprintf(error_r, "control directory %s: %s",
				    dir, strerror(errno));
				free(dir);
				return -1;
			}
			log_info("control: created %s (0750)", dir);
		} else if (!S_ISDIR(st.st_mode)) {
			xasprintf(error_r, "control directory %s is not a "
			    "directory", dir);
			free(dir);
			return -1;
		}
	}
	free(dir);

	if (lstat(path, &st) == -1) {
		if (errno == ENOENT)
			return 0;
		xasprintf(error_r, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISSOCK(st.st_mode)) {
		xasprintf(error_r, "%s exists and is not a socket", path);
		return -1;
	}
	if (control_sockaddr(path, &sun, error_r) != 0)
		return -1;
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1) {
		xasprintf(error_r, "socket: %s", strerror(errno));
		return -1;
	}
	r = connect(fd, (struct sockaddr *)&sun, sizeof sun);
	saved = errno;
	close(fd);
	if (r == 0) {
		xasprintf(error_r, "%s answers: is another sealpostd running?",
		    path);
		return -1;
	}
	if (saved != ECONNREFUSED && saved != ENOENT) {
		xasprintf(error_r, "%s: %s", path, strerror(saved));
		return -1;
	}
	if (unlink(path) == -1 && errno != ENOENT) {
		xasprintf(error_r, "cannot remove stale %s: %s", path,
		    strerror(errno));
		return -1;
	}
	log_info("control: removed stale socket %s", path);
	return 0;
}

/* A new control connection: check the peer, then read one line. */
static void
control_accept(struct evconnlistener *lev, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct control		*ctl = arg;
	struct control_conn	*cc;
	struct ucred		 cred;
	struct timeval		 tv = { CONTROL_TIMEOUT, 0 };
	socklen_t		 len = sizeof cred;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == -1 ||
	    (cred.uid != geteuid() && cred.uid != 0)) {
		log_warnx("control: refused a peer with uid %ld",
		    len == sizeof cred ? (long)cred.uid : -1L);
		close(fd);
		return;
	}
	cc = xcalloc(1, sizeof *cc);
	cc->ctl = ctl;
	cc->bev = bufferevent_socket_new(evconnlistener_get_base(lev), fd,
	    BEV_OPT_CLOSE_ON_FREE);
	if (cc->bev == NULL) {
		log_warnx("control: cannot make a bufferevent");
		close(fd);
		free(cc);
		return;
	}
	TAILQ_INSERT_TAIL(&ctl->conns, cc, entry);
	bufferevent_setcb(cc->bev, control_read, NULL, control_event, cc);
	bufferevent_set_timeouts(cc->bev, &tv, &tv);
	bufferevent_enable(cc->bev, EV_READ | EV_WRITE);
}

/* accept(2) failed (EMFILE...): log and carry on. */
static void
control_accept_error(struct evconnlistener *lev, void *arg)
{
	log_warn("control: accept");
}

/* Input: wait for a whole line, bounded. */
static void
control_read(struct bufferevent *bev, void *arg)
{
	struct control_conn	*cc = arg;
	struct evbuffer		*in = bufferevent_get_input(bev);
	char			*line;
	size_t			 n;

	if (cc->answered || cc->pending) {
		evbuffer_drain(in, evbuffer_get_length(in));
		return;
	}
	if (cc->body_addr != NULL) {
		control_body(cc);
		return;
	}
	if ((line = evbuffer_readln(in, &n, EVBUFFER_EOL_LF)) == NULL) {
		if (evbuffer_get_length(in) > CONTROL_LINE_MAX)
			control_answer(cc, "{\"error\":{\"code\":"
			    "\"line_too_long\",\"message\":\"a command is "
			    "one line of at most 1024 bytes\"}}");
		return;
	}
	if (n > 0 && line[n - 1] == '\r')
		line[--n] = '\0';
	if (n > CONTROL_LINE_MAX)
		control_answer(cc, "{\"error\":{\"code\":\"line_too_long\","
		    "\"message\":\"a command is one line of at most 1024 "
		    "bytes\"}}");
	else
		control_command(cc, line);
	free(line);
}

/*
 * The answer is out.  Closing now with unread input (an over-long line)
 * would make the kernel reset the connection and lose the answer: half-
 * close instead and drain until the peer closes (or the timeout).
 */
static void
control_written(struct bufferevent *bev, void *arg)
{
	struct control_conn	*cc = arg;

	if (evbuffer_get_length(bufferevent_get_output(bev)) != 0)
		return;
	cc->flushed = 1;
	if (cc->eof) {
		control_close(cc);
		return;
	}
	shutdown(bufferevent_getfd(bev), SHUT_WR);
}

/* EOF, error or timeout. */
static void
control_event(struct bufferevent *bev, short what, void *arg)
{
	struct control_conn	*cc = arg;
	struct evbuffer		*in = bufferevent_get_input(bev);
	char			*line;
	size_t			 n;

	if ((what & BEV_EVENT_EOF) && (what & BEV_EVENT_READING)) {
		cc->eof = 1;
		bufferevent_disable(bev, EV_READ);
		if (cc->answered) {
			/* Wait for the answer to be written, then close. */
			if (cc->flushed)
				control_close(cc);
			return;
		}
		if (cc->pending)
			return;		/* the answer comes later */
		if (cc->body_addr != NULL) {
			control_body(cc);
			return;
		}
	}
	/* The client half-closed after a command without a newline. */
	if (cc->eof && !cc->answered &&
	    (n = evbuffer_get_length(in)) > 0 && n <= CONTROL_LINE_MAX) {
		line = xmalloc(n + 1);
		evbuffer_remove(in, line, n);
		line[n] = '\0';
		if (n > 0 && line[n - 1] == '\r')
			line[n - 1] = '\0';
		control_command(cc, line);
		free(line);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT)
		log_info("control: connection timed out");
	control_close(cc);
}

/* Run one command line and answer it. */
static void
control_command(struct control_conn *cc, const char *line)
{
	struct daemon	*d = cc->ctl->d;
	char		*s, esc[64];

	if (strncmp(line, "bounce ", 7) == 0) {
		char		 addr[320];
		unsigned long long len;
		int		 used = 0;

		if (sscanf(line + 7, "%319s %llu%n", addr, &len, &used) != 2 ||
		    line[7 + used] != '\0' || len == 0 ||
		    len > CONTROL_BODY_MAX) {
			control_answer(cc, "{\"error\":{\"code\":"
			    "\"bad_request\",\"message\":\"usage: bounce "
			    "ADDRESS LENGTH (1..64M), then the message\"}}");
			return;
		}
		log_info("control: cmd=bounce bytes=%llu", len);
		cc->body_addr = xstrdup(addr);
		cc->body_need = (size_t)len;
		/* A large message may take longer than one idle period. */
		control_body(cc);
		return;
	}
	if (strcmp(line, "status") == 0) {
		log_debug("control: cmd=status");
		if ((s = daemon_status_json(d)) == NULL)
			control_answer(cc, "{\"error\":{\"code\":"
			    "\"internal_error\",\"message\":\"no status\"}}");
		else {
			control_answer(cc, s);
			free(s);
		}
	} else if (strcmp(line, "reload") == 0) {
		log_info("control: cmd=reload");
		daemon_reload(d);
		control_answer(cc, "{\"ok\":true}");
	} else {
		log_warnx("control: unknown cmd=\"%s\"",
		    log_escape(esc, sizeof esc, line, strlen(line)));
		control_answer(cc, "{\"error\":{\"code\":\"unknown_command\","
		    "\"message\":\"commands: status, reload, bounce\"}}");
	}
}

/* Queue the answer and a newline; close once it is written. */
static void
control_answer(struct control_conn *cc, const char *text)
{
	struct evbuffer	*out = bufferevent_get_output(cc->bev);

	cc->answered = 1;
	evbuffer_add(out, text, strlen(text));
	evbuffer_add(out, "\n", 1);
	/* Input after the command is drained by control_read(). */
	bufferevent_setcb(cc->bev, control_read, control_written,
	    control_event, cc);
}

/* The body of a bounce command: once it is all here, hand it over. */
static void
control_body(struct control_conn *cc)
{
	struct evbuffer	*in = bufferevent_get_input(cc->bev);
	char		*raw;

	if (evbuffer_get_length(in) < cc->body_need) {
		if (cc->eof)
			control_answer(cc, "{\"error\":{\"code\":"
			    "\"bad_request\",\"message\":\"the message is "
			    "shorter than its stated length\"}}");
		return;
	}
	raw = xmalloc(cc->body_need + 1);
	evbuffer_remove(in, raw, cc->body_need);
	raw[cc->body_need] = '\0';
	cc->pending = 1;
	/* No idle timeout while the daemon works on it. */
	bufferevent_set_timeouts(cc->bev, NULL, NULL);
	daemon_bounce(cc->ctl->d, cc->body_addr, raw, cc->body_need,
	    control_later, cc);
}

/* The late answer of a pending command. */
static void
control_later(void *arg, const char *json)
{
	struct control_conn	*cc = arg;

	cc->pending = 0;
	if (cc->dead) {
		free(cc->body_addr);
		free(cc);
		return;
	}
	control_answer(cc, json);
	if (cc->eof && evbuffer_get_length(bufferevent_get_output(cc->bev)) ==
	    0)
		control_close(cc);
}

/* Free one connection (or only its socket, while an answer is pending). */
static void
control_close(struct control_conn *cc)
{
	TAILQ_REMOVE(&cc->ctl->conns, cc, entry);
	bufferevent_free(cc->bev);
	cc->bev = NULL;
	if (cc->pending) {
		cc->dead = 1;
		return;
	}
	free(cc->body_addr);
	free(cc);
}
