/*
 * tlsserver.c - server-side TLS for the listeners (HTTPS and SMTP
 * STARTTLS) on libevent's OpenSSL bufferevents.  The only file that
 * includes OpenSSL.
 *
 * One SSL_CTX per listener: TLS 1.2 minimum, forward-secret AEAD suites
 * for TLS 1.2 (TLS 1.3 suites are OpenSSL's defaults), no compression, no
 * renegotiation, the server's cipher preference.  The certificate file may
 * hold a chain (leaf first).
 *
 * Public: tlsserver_new, tlsserver_for_listener, tlsserver_free,
 * tlsserver_accept,
 * tlsserver_starttls, tlsserver_version, tlsserver_last_error.
 * Error policy: tlsserver_new returns 0 or -1 with a malloc'd reason that
 * names the file and OpenSSL's reason; the bufferevent constructors return
 * NULL on failure.
 */
#include "build.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>

#include "log.h"
#include "tlsserver.h"
#include "util.h"

/* TLS 1.2 suites: ECDHE key exchange and AEAD only (Mozilla
 * "intermediate"). */
#define TLSSERVER_CIPHERS \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:" \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:" \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

struct tlsserver {
	SSL_CTX		*ctx;
};

static void	 tlsserver_error(char **, const char *, const char *);

/*
 * tlsserver_nofree: when libevent's bufferevent_openssl_*_new() fails
 * (allocation only), it may or may not have freed the SSL already,
 * depending on how far it got; a leak in that corner beats a double free,
 * so the SSL is not freed by us.
 */

/* Format "what FILE: OpenSSL reason" into a malloc'd string. */
static void
tlsserver_error(char **error_r, const char *what, const char *file)
{
	char		 reason[256];
	unsigned long	 e, last = 0;

	while ((e = ERR_get_error()) != 0)
		last = e;
	if (last != 0)
		ERR_error_string_n(last, reason, sizeof reason);
	else
		strlcpy_sp(reason, "unknown error", sizeof reason);
	if (error_r != NULL)
		xasprintf(error_r, "%s %s: %s", what, file, reason);
}

/* Make a server context with this certificate (chain) and key. */
int
tlsserver_new(const char *cert, const char *key, struct tlsserver **tsp,
    char **error_r)
{
	struct tlsserver	*ts;
	SSL_CTX			*ctx;

	*tsp = NULL;
	ERR_clear_error();
	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		tlsserver_error(error_r, "TLS context", "(new)");
		return -1;
	}
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_set_cipher_list(ctx, TLSSERVER_CIPHERS) != 1) {
		tlsserver_error(error_r, "TLS context", "(settings)");
		SSL_CTX_free(ctx);
		return -1;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION |
	    SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
	    SSL_OP_NO_TICKET);
	SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"sealpost",
	    8);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		tlsserver_error(error_r, "cannot load TLS certificate", cert);
		SSL_CTX_free(ctx);
		return -1;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		tlsserver_error(error_r, "cannot load TLS key", key);
		SSL_CTX_free(ctx);
		return -1;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		tlsserver_error(error_r, "TLS key does not match the "
		    "certificate", key);
		SSL_CTX_free(ctx);
		return -1;
	}
	ts = xcalloc(1, sizeof *ts);
	ts->ctx = ctx;
	*tsp = ts;
	return 0;
}

/* Apply the listeners' transport rule and load TLS when configured. */
int
tlsserver_for_listener(const char *what, const char *listen, int loopback,
    const char *cert, const char *key, int allow_plaintext,
    struct tlsserver **tlsp, char **error_r)
{
	int	 have_cert = cert != NULL && cert[0] != '\0';
	int	 have_key = key != NULL && key[0] != '\0';

	*tlsp = NULL;
	if (have_cert != have_key) {
		xasprintf(error_r, "%s: tls_cert and tls_key must be set "
		    "together", what);
		return -1;
	}
	if (have_cert && tlsserver_new(cert, key, tlsp, error_r) != 0)
		return -1;
	if (!loopback && *tlsp == NULL) {
		if (!allow_plaintext) {
			xasprintf(error_r, "%s listen %s is not a loopback "
			    "address: set tls_cert and tls_key, or "
			    "allow_plaintext = yes", what, listen);
			return -1;
		}
		log_warnx("%s: plaintext on non-loopback %s "
		    "(allow_plaintext = yes)", what, listen);
	}
	return 0;
}

/* Free the context (connections hold their own references). */
void
tlsserver_free(struct tlsserver **tsp)
{
	if (tsp == NULL || *tsp == NULL)
		return;
	SSL_CTX_free((*tsp)->ctx);
	free(*tsp);
	*tsp = NULL;
}

/* A TLS bufferevent for an accepted socket (implicit TLS, HTTPS). */
struct bufferevent *
tlsserver_accept(struct tlsserver *ts, struct event_base *base, int fd)
{
	struct bufferevent	*bev;
	SSL			*ssl;

	if ((ssl = SSL_new(ts->ctx)) == NULL)
		return NULL;
	bev = bufferevent_openssl_socket_new(base, fd, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL)
		return NULL;	/* see tlsserver_nofree */
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

/* Wrap a plaintext bufferevent after "220 Ready to start TLS". */
struct bufferevent *
tlsserver_starttls(struct tlsserver *ts, struct event_base *base,
    struct bufferevent *underlying)
{
	struct bufferevent	*bev;
	SSL			*ssl;

	if ((ssl = SSL_new(ts->ctx)) == NULL)
		return NULL;
	bev = bufferevent_openssl_filter_new(base, underlying, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL)
		return NULL;	/* see tlsserver_nofree */
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

/* "TLSv1.3" etc., or NULL for a plaintext bufferevent. */
const char *
tlsserver_version(struct bufferevent *bev)
{
	SSL	*ssl;

	if (bev == NULL || (ssl = bufferevent_openssl_get_ssl(bev)) == NULL)
		return NULL;
	return SSL_get_version(ssl);
}

/* The last OpenSSL error recorded on a TLS bufferevent. */
const char *
tlsserver_last_error(struct bufferevent *bev, char *buf, size_t bufsz)
{
	unsigned long	 e, last = 0;

	if (bufsz == 0)
		return buf;
	if (bev == NULL || bufferevent_openssl_get_ssl(bev) == NULL) {
		strlcpy_sp(buf, "not TLS", bufsz);
		return buf;
	}
	/*
	 * libevent keeps SSL_get_error()'s code (a small number, no library)
	 * beside the OpenSSL error queue: prefer the queue's newest entry.
	 */
	while ((e = bufferevent_get_openssl_error(bev)) != 0) {
		if (last == 0 ||
		    (ERR_GET_LIB(last) == 0 && ERR_GET_LIB(e) != 0))
			last = e;
	}
	if (last == 0)
		strlcpy_sp(buf, "connection closed", bufsz);
	else
		ERR_error_string_n(last, buf, bufsz);
	return buf;
}
