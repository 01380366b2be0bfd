/*
 * listener.h - the accept glue shared by the SMTP and LMTP listeners.
 *
 * A listener binds one "host:port", makes one smtpd_session per accepted
 * connection (it sets env->gone to keep its list), refuses with 421 when
 * the owner drains or the sessions are at their limit, and pauses after
 * accept() fails for want of descriptors.  smtpd.c and lmtpd.c own the
 * session env, the TLS context and what is logged when listening starts.
 *
 * Error policy: listener_start() returns 0 or -1 with a malloc'd reason;
 * every other function accepts NULL.
 */
#ifndef SEALPOST_LISTENER_H
#define SEALPOST_LISTENER_H

#include <stdint.h>

struct event_base;
struct listener;
struct smtpd_session_env;

struct listener_params {
	const char	*proto;		/* "smtp", "lmtp": logs and reasons */
	const char	*listen;	/* as configured, for logs */
	const char	*host;		/* config_split_listen() of listen */
	int		 port;
	int		 backlog;
	/* read at each accept: the owner's, live across a reload */
	const int64_t	*max_sessions;
	const int	*draining;	/* set: refuse with 421 4.3.2 */
	struct smtpd_session_env *env;	/* the owner's, shared by sessions */
};

int	 listener_start(struct event_base *, const struct listener_params *,
	    struct listener **, char **error_r);
/* The configured hostname, else the host's name, else "localhost". */
char	*listener_hostname(const char *);
/* The bound port (for tests listening on port 0). */
int	 listener_port(struct listener *);
/* Stop accepting (shutdown) and log it. */
void	 listener_stop_accepting(struct listener *);
/* Sessions still open. */
int	 listener_sessions(struct listener *);
/* Say 421 to every idle session and close it; busy ones finish first. */
void	 listener_close_idle(struct listener *);
/* Close the listener and tear down every session. */
void	 listener_free(struct listener **);

#endif
