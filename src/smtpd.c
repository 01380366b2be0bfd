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

#include <stdlib.h>

#include "config.h"
#include "daemon.h"
#include "listener.h"
#include "log.h"
#include "smtpd.h"
#include "smtpd_session.h"
#include "tlsserver.h"
#include "util.h"

#define SMTPD_BACKLOG		512

struct smtpd {
	struct listener		*l;
	struct tlsserver	*tls;
	struct smtpd_session_env env;
	char			*hostname;
};

/* Bind the listener and load the TLS context; *sdp is NULL when off. */
int
smtpd_start(struct daemon *d, struct smtpd **sdp, char **error_r)
{
	const struct config	*cfg = d->cfg;
	struct listener_params	 lp;
	struct smtpd		*sd;
	char			*host = NULL;
	const char		*why;
	int			 port, loopback;

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
	if (tlsserver_for_listener("smtp", cfg->smtp_listen, loopback,
	    cfg->smtp_tls_cert, cfg->smtp_tls_key, cfg->smtp_allow_plaintext,
	    &sd->tls, error_r) != 0)
		goto fail;
	sd->hostname = listener_hostname(cfg->smtp_hostname);

	sd->env.d = d;
	sd->env.tls = sd->tls;
	sd->env.hostname = sd->hostname;
	sd->env.plaintext_auth = !loopback && sd->tls == NULL &&
	    cfg->smtp_allow_plaintext;

	lp.proto = "smtp";
	lp.listen = cfg->smtp_listen;
	lp.host = host;
	lp.port = port;
	lp.backlog = SMTPD_BACKLOG;
	lp.max_sessions = &cfg->smtp_max_sessions;	/* live */
	lp.draining = &d->draining;
	lp.env = &sd->env;
	if (listener_start(d->base, &lp, &sd->l, error_r) != 0)
		goto fail;
	log_info("smtp listening addr=%s tls=%s auth=%s", cfg->smtp_listen,
	    sd->tls != NULL ? "starttls" : "none",
	    loopback ? "loopback" : sd->tls != NULL ? "after-starttls" :
	    "plaintext");
	free(host);
	*sdp = sd;
	return 0;
fail:
	free(host);
	smtpd_free(&sd);
	return -1;
}

/* Stop accepting connections (shutdown). */
void
smtpd_stop_accepting(struct smtpd *sd)
{
	if (sd != NULL)
		listener_stop_accepting(sd->l);
}

/* Sessions still alive, including those waiting for their commit. */
int
smtpd_sessions(struct smtpd *sd)
{
	return sd == NULL ? 0 : listener_sessions(sd->l);
}

/* Tell every idle session 421 and close it; busy ones finish first. */
void
smtpd_close_idle(struct smtpd *sd)
{
	if (sd != NULL)
		listener_close_idle(sd->l);
}

/* Close the listener and tear down every session. */
void
smtpd_free(struct smtpd **sdp)
{
	struct smtpd		*sd;

	if (sdp == NULL || (sd = *sdp) == NULL)
		return;
	*sdp = NULL;
	listener_free(&sd->l);
	tlsserver_free(&sd->tls);
	free(sd->hostname);
	free(sd);
}
