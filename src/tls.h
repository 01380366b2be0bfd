/*
 * tls.h - certificate verification for libetpan streams, with GnuTLS.
 *
 * libetpan's GnuTLS handshake accepts any certificate and sends no SNI.
 * Every TLS session sealpost opens through libetpan (relay, IMAP fetch)
 * passes tls_sni_callback to the *_with_callback connect or STARTTLS call
 * and, right after it returns and before anything else is sent, calls
 * tls_verify_stream().  Only this module touches GnuTLS's X.509 API.
 */
#ifndef SEALPOST_TLS_H
#define SEALPOST_TLS_H

#include <stddef.h>

struct _mailstream;		/* libetpan's mailstream */
struct mailstream_ssl_context;

/* The libetpan TLS callback: data is the host name (const char *). */
void	 tls_sni_callback(struct mailstream_ssl_context *, void *data);

/*
 * Verify the peer chain of a TLS stream for host: chain to an anchor in
 * ca_file (PEM; NULL = the system trust store), RFC 6125 host-name match
 * (an IP literal is matched against IP SANs), TLS server key purpose,
 * validity dates; and TLS 1.2 or later negotiated (libetpan offers 1.0 and
 * 1.1 too).  0 = verified; -1 with a one-line reason in err
 * ("The certificate is NOT trusted. The certificate issuer is unknown.",
 * "no peer certificate", "CA file: no certificates loaded").
 */
int	 tls_verify_stream(struct _mailstream *, const char *host,
	    const char *ca_file, char *err, size_t errsz);

#endif
