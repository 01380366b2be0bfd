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

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "listener.h"
#include "lmtpd.h"
#include "log.h"
#include "smtpd_session.h"
#include "util.h"

#define LMTPD_BACKLOG		128

struct lmtpd {
	struct listener		*l;
	struct smtpd_session_env env;	/* env.draining: shutting down */
	char			*hostname;
	int64_t			 max_sessions;
};

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
	struct listener_params	 lsp;
	struct lmtpd		*ld;
	char			*host = NULL;
	const char		*why;
	int			 port;

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
	ld->max_sessions = p->max_sessions;
	ld->hostname = listener_hostname(p->hostname);

	ld->env.hostname = ld->hostname;
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

	lsp.proto = "lmtp";
	lsp.listen = p->listen;
	lsp.host = host;
	lsp.port = port;
	lsp.backlog = LMTPD_BACKLOG;
	lsp.max_sessions = &ld->max_sessions;
	lsp.draining = &ld->env.draining;
	lsp.env = &ld->env;
	if (listener_start(base, &lsp, &ld->l, error_r) != 0) {
		free(host);
		lmtpd_stop(&ld);
		return -1;
	}
	log_info("lmtp listening addr=%s port=%d max_size=%zu", p->listen,
	    listener_port(ld->l), p->max_size);
	free(host);
	*lp = ld;
	return 0;
}

/* The bound port, or 0. */
int
lmtpd_port(struct lmtpd *ld)
{
	return ld == NULL ? 0 : listener_port(ld->l);
}

/* Stop accepting connections and refuse new work (shutdown). */
void
lmtpd_stop_accepting(struct lmtpd *ld)
{
	if (ld == NULL)
		return;
	ld->env.draining = 1;
	listener_stop_accepting(ld->l);
}

/* Sessions still alive, including those waiting for the intake. */
int
lmtpd_sessions(struct lmtpd *ld)
{
	return ld == NULL ? 0 : listener_sessions(ld->l);
}

/* Tell every idle session 421 and close it; busy ones finish first. */
void
lmtpd_close_idle(struct lmtpd *ld)
{
	if (ld == NULL)
		return;
	ld->env.draining = 1;
	listener_close_idle(ld->l);
}

/* Close the listener and tear down every session. */
void
lmtpd_stop(struct lmtpd **lp)
{
	struct lmtpd		*ld;

	if (lp == NULL || (ld = *lp) == NULL)
		return;
	*lp = NULL;
	listener_free(&ld->l);
	free(ld->hostname);
	free(ld);
}
