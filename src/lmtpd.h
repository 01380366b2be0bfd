/*
 * lmtpd.h - the LMTP listener (RFC 2033) for replies and bounces, for a
 * practice whose own Postfix is the MX (lmtp:inet:127.0.0.1:PORT).
 *
 * Accept glue only: the protocol is smtpd_session.c in LMTP mode.  Each
 * message becomes one intake_job (raw message + envelope recipients)
 * handed to params->submit(); its done() (loop thread) gives the session
 * one reply per recipient.  The daemon passes intake_pool_submit and
 * intake_job_free; the tests pass a processor of their own.
 *
 * Error policy: lmtpd_start() returns 0 or -1 with a malloc'd reason;
 * every other function accepts the NULL lmtpd_start() leaves when
 * params->listen is empty.
 */
#ifndef SEALPOST_LMTPD_H
#define SEALPOST_LMTPD_H

#include <stddef.h>
#include <stdint.h>

struct config;
struct event_base;
struct intake_job;
struct lmtpd;

/* Recipients per transaction: above Postfix's default of 50 per LMTP
 * delivery (lmtp_destination_recipient_limit), so 452 is only for abuse. */
#define LMTPD_MAX_RECIPIENTS	100

struct lmtpd_params {
	const char	*listen;	/* "host:port" on loopback; "" = off */
	const char	*hostname;	/* greeting and LHLO name */
	int64_t		 timeout;	/* seconds per command */
	int64_t		 max_sessions;
	size_t		 max_size;	/* [replies] max_size */
	size_t		 max_line;	/* DATA line incl. CRLF */
	size_t		 max_header;	/* header section */
	size_t		 max_rcpts;
	/* the processor: takes a job; done() must run on the loop thread */
	void		(*submit)(struct intake_job *, void *);
	void		*submit_arg;
	void		(*job_free)(struct intake_job **);
};

/*
 * The bounds from the configuration: [lmtp] listen, timeout and
 * max_sessions, [replies] max_size, the DATA line and header bounds of
 * [smtp], [smtp] hostname (else the host name).  The processor fields
 * are left NULL for the caller.  The strings point into cfg.
 */
void	 lmtpd_params_init(struct lmtpd_params *, const struct config *);
/* Bind and listen; *lp is NULL (and 0 returned) when listen is empty. */
int	 lmtpd_start(struct event_base *, const struct lmtpd_params *,
	    struct lmtpd **lp, char **error_r);
/* The bound port (for tests listening on port 0). */
int	 lmtpd_port(struct lmtpd *);
/* Shutdown: stop accepting; new work is refused with 421 from now on. */
void	 lmtpd_stop_accepting(struct lmtpd *);
/* Sessions still open (including those waiting for the intake). */
int	 lmtpd_sessions(struct lmtpd *);
/* Say 421 to every idle session and close it; busy ones finish first. */
void	 lmtpd_close_idle(struct lmtpd *);
/* Close the listener and tear down every session; jobs still in the
 * intake are freed when their done() runs. */
void	 lmtpd_stop(struct lmtpd **);

#endif
