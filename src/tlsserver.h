/*
 * tlsserver.h - TLS for the listeners (HTTPS, SMTP STARTTLS), through
 * libevent's OpenSSL bufferevents.  The only module that includes OpenSSL.
 *
 * TLS 1.2 is the minimum; the certificate and key are PEM files from the
 * config.  GnuTLS is used elsewhere only to verify libetpan's peers.
 */
#ifndef SEALPOST_TLSSERVER_H
#define SEALPOST_TLSSERVER_H

#include <stddef.h>

struct event_base;
struct bufferevent;
struct tlsserver;

/* Load cert and key; 0 or -1 with a reason (names the file). */
int	 tlsserver_new(const char *cert, const char *key, struct tlsserver **,
	    char **error_r);
void	 tlsserver_free(struct tlsserver **);
/*
 * The transport rule every listener follows: TLS when a certificate and
 * key are configured (both or neither); on an address that is not loopback,
 * plaintext only with allow_plaintext.  `what' ("http", "smtp") and
 * `listen' name the listener in errors.  *tlsp is NULL for plaintext.
 * 0, or -1 with a malloc'd reason.
 */
int	 tlsserver_for_listener(const char *what, const char *listen,
	    int loopback, const char *cert, const char *key,
	    int allow_plaintext, struct tlsserver **tlsp, char **error_r);
/* A new server-side TLS bufferevent on an accepted fd (for evhttp: fd may
 * be -1, evhttp sets it later).  Dirty shutdowns are allowed (HTTP clients
 * often close without close_notify).  NULL on failure. */
struct bufferevent *tlsserver_accept(struct tlsserver *, struct event_base *,
	    int fd);
/* Wrap an existing plaintext bufferevent for STARTTLS; the underlying one
 * is freed with the returned one. NULL on failure. */
struct bufferevent *tlsserver_starttls(struct tlsserver *, struct event_base *,
	    struct bufferevent *underlying);
/* The negotiated protocol, e.g. "TLSv1.3", or NULL when not TLS. */
const char *tlsserver_version(struct bufferevent *);
/* OpenSSL's reason for the last failure on a TLS bufferevent (for logs:
 * "handshake failed: ..."), or "unknown"; returns buf. */
const char *tlsserver_last_error(struct bufferevent *, char *buf,
	    size_t bufsz);

#endif
