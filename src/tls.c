/*
 * tls.c - certificate verification for libetpan TLS streams, with GnuTLS.
 *
 * libetpan 1.9.4's GnuTLS handshake loads no trust anchors, never calls a
 * verify function and sends no SNI (reference/libetpan.md section 4).  So
 * every TLS stream is verified here, right after the handshake and before
 * a single byte more is sent: the peer chain libetpan exports (DER, leaf
 * first) is imported and checked with gnutls_x509_trust_list_verify_crt2()
 * against the configured CA file or the system trust store, with the host
 * name (RFC 6125; an IP literal against the IP SANs) and the TLS server key
 * purpose.  Validity dates are part of that check.
 *
 * The protocol version is checked too: libetpan sets GnuTLS's "NORMAL"
 * priority, which in GnuTLS 3.7 still includes TLS 1.0 and 1.1, and no
 * callback can change it (the TLS callback runs before libetpan sets the
 * priority).  The negotiated version is read from libetpan's private
 * per-stream TLS state (struct tls_etpan_ssl_data below, guarded by a
 * check that its fd is the stream's); anything below TLS 1.2 is refused.
 *
 * Public: tls_sni_callback, tls_verify_stream.
 *
 * Error policy: tls_verify_stream() returns 0 or -1 with a one-line reason
 * that names no certificate content beyond what GnuTLS prints for a status
 * (the reason goes to logs and alerts).  The only file that uses GnuTLS's
 * X.509 API.  Thread-safe: every call uses its own trust list.
 */

#include "build.h"

#include <arpa/inet.h>

#include <stdio.h>
#include <string.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <libetpan/libetpan.h>

#include "tls.h"
#include "util.h"

/* A server chain longer than this is refused rather than walked. */
#define TLS_MAX_CHAIN	16

/* Exported; mailstream_ssl.h declares it only under libetpan's USE_SSL. */
extern mailstream_low_driver	*mailstream_ssl_driver;

/*
 * libetpan's struct mailstream_ssl_data for its GnuTLS build
 * (src/data-types/mailstream_ssl.c, the same from 1.9.4 to 1.10.1): the
 * data of a low-level stream whose driver is mailstream_ssl_driver.
 */
struct tls_etpan_ssl_data {
	int				 fd;
	gnutls_session_t		 session;
	gnutls_certificate_credentials_t xcred;
	struct mailstream_cancel	*cancel;
};

static int	 tls_is_ip_literal(const char *);
static void	 tls_trim(char *);
static int	 tls_check_version(mailstream *, char *, size_t);
static int	 tls_load_anchors(gnutls_x509_trust_list_t, const char *,
		    char *, size_t);

/* Is the name an IPv4 or IPv6 address literal (no brackets)? */
static int
tls_is_ip_literal(const char *name)
{
	unsigned char	 buf[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, name, buf) == 1 ||
	    inet_pton(AF_INET6, name, buf) == 1;
}

/*
 * The libetpan TLS callback, run before the handshake: set SNI.  RFC 6066
 * section 3 forbids an address literal as a server name, so an IP host
 * goes without SNI (and is still verified against the IP SANs).
 */
void
tls_sni_callback(struct mailstream_ssl_context *ctx, void *data)
{
	const char	*host = data;

	if (host == NULL || *host == '\0' || tls_is_ip_literal(host))
		return;
	/* libetpan's prototype takes char *; GnuTLS copies the name. */
	mailstream_ssl_set_server_name(ctx, (char *)host);
}

/* Drop trailing spaces. */
static void
tls_trim(char *s)
{
	size_t	 n = strlen(s);

	while (n > 0 && s[n - 1] == ' ')
		s[--n] = '\0';
}

/* Load the trust anchors: the CA file, or the system store. */
static int
tls_load_anchors(gnutls_x509_trust_list_t tl, const char *ca_file,
    char *err, size_t errsz)
{
	int	 n;

	if (ca_file != NULL) {
		n = gnutls_x509_trust_list_add_trust_file(tl, ca_file, NULL,
		    GNUTLS_X509_FMT_PEM, 0, 0);
		if (n < 0) {
			snprintf(err, errsz, "CA file: %s", gnutls_strerror(n));
			return -1;
		}
		if (n == 0) {
			snprintf(err, errsz, "CA file: no certificates loaded");
			return -1;
		}
		return 0;
	}
	n = gnutls_x509_trust_list_add_system_trust(tl, 0, 0);
	if (n < 0) {
		snprintf(err, errsz, "system trust store: %s",
		    gnutls_strerror(n));
		return -1;
	}
	if (n == 0) {
		snprintf(err, errsz,
		    "system trust store: no certificates loaded");
		return -1;
	}
	return 0;
}

/* TLS 1.2 or later was negotiated on this stream?  0, or -1 with err. */
static int
tls_check_version(mailstream *stream, char *err, size_t errsz)
{
	mailstream_low			*low = mailstream_get_low(stream);
	struct tls_etpan_ssl_data	*d;
	gnutls_protocol_t		 v;

	if (low == NULL || low->driver != mailstream_ssl_driver ||
	    low->data == NULL) {
		snprintf(err, errsz, "not a TLS stream");
		return -1;
	}
	d = low->data;
	/* Fail closed if libetpan's layout is not the one above. */
	if (d->fd != mailstream_low_get_fd(low) || d->session == NULL) {
		snprintf(err, errsz, "cannot read the TLS version (libetpan "
		    "internals changed)");
		return -1;
	}
	v = gnutls_protocol_get_version(d->session);
	if (v != GNUTLS_TLS1_2 && v != GNUTLS_TLS1_3) {
		snprintf(err, errsz, "%s refused: TLS 1.2 is the minimum",
		    gnutls_protocol_get_name(v) != NULL ?
		    gnutls_protocol_get_name(v) : "unknown protocol");
		return -1;
	}
	return 0;
}

/* Verify the peer chain of a TLS stream for host; see tls.h. */
int
tls_verify_stream(struct _mailstream *stream, const char *host,
    const char *ca_file, char *err, size_t errsz)
{
	gnutls_x509_crt_t		 crt[TLS_MAX_CHAIN];
	gnutls_x509_trust_list_t	 tl = NULL;
	gnutls_typed_vdata_st		 vdata[2];
	gnutls_datum_t			 datum, out;
	carray				*chain;
	MMAPString			*der;
	unsigned int			 i, n = 0, status = 0;
	int				 r, rv = -1;

	if (errsz > 0)
		err[0] = '\0';
	if (stream == NULL || host == NULL || *host == '\0') {
		snprintf(err, errsz, "no stream or host name to verify");
		return -1;
	}
	if (tls_check_version(stream, err, errsz) == -1)
		return -1;
	chain = mailstream_get_certificate_chain(stream);
	if (chain == NULL || carray_count(chain) == 0) {
		snprintf(err, errsz, "no peer certificate");
		goto done;
	}
	if (carray_count(chain) > TLS_MAX_CHAIN) {
		snprintf(err, errsz, "peer chain longer than %d certificates",
		    TLS_MAX_CHAIN);
		goto done;
	}
	for (i = 0; i < carray_count(chain); i++) {
		der = carray_get(chain, i);
		if ((r = gnutls_x509_crt_init(&crt[n])) < 0) {
			snprintf(err, errsz, "certificate: %s",
			    gnutls_strerror(r));
			goto done;
		}
		n++;
		datum.data = (unsigned char *)der->str;
		datum.size = (unsigned int)der->len;
		if ((r = gnutls_x509_crt_import(crt[n - 1], &datum,
		    GNUTLS_X509_FMT_DER)) < 0) {
			snprintf(err, errsz, "peer certificate %u: %s", i,
			    gnutls_strerror(r));
			goto done;
		}
	}

	if ((r = gnutls_x509_trust_list_init(&tl, 0)) < 0) {
		tl = NULL;
		snprintf(err, errsz, "trust list: %s", gnutls_strerror(r));
		goto done;
	}
	if (tls_load_anchors(tl, ca_file, err, errsz) == -1)
		goto done;

	memset(vdata, 0, sizeof(vdata));
	vdata[0].type = GNUTLS_DT_DNS_HOSTNAME;
	vdata[0].data = (unsigned char *)host;
	vdata[1].type = GNUTLS_DT_KEY_PURPOSE_OID;
	vdata[1].data = (unsigned char *)GNUTLS_KP_TLS_WWW_SERVER;
	r = gnutls_x509_trust_list_verify_crt2(tl, crt, n, vdata, 2, 0,
	    &status, NULL);
	if (r < 0) {
		snprintf(err, errsz, "verify: %s", gnutls_strerror(r));
		goto done;
	}
	if (status != 0) {
		if (gnutls_certificate_verification_status_print(status,
		    GNUTLS_CRT_X509, &out, 0) == 0) {
			snprintf(err, errsz, "%s", (const char *)out.data);
			gnutls_free(out.data);
			/* GnuTLS ends each sentence with a space. */
			tls_trim(err);
		} else
			snprintf(err, errsz, "certificate not verified "
			    "(status 0x%x)", status);
		goto done;
	}
	rv = 0;

 done:
	if (tl != NULL)
		gnutls_x509_trust_list_deinit(tl, 1);
	for (i = 0; i < n; i++)
		gnutls_x509_crt_deinit(crt[i]);
	if (chain != NULL)
		mailstream_certificate_chain_free(chain);
	return rv;
}
