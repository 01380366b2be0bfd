/*
 * webhook.h - delivery-state callbacks to the clinical system (GOV.UK
 * Notify style): POST a JSON body to the client's callback URL with
 * "Authorization: Bearer <token>", through libcurl (the only module that
 * links it).
 *
 * Blocking: called on the queue's callback worker thread, never on the
 * event loop.  https URLs are verified (chain and host name, system trust
 * store or ca_file); http:// is refused unless the host is loopback
 * (tests, a local integration engine).  No redirects are followed, no
 * proxy from the environment is used, the response body is read and
 * discarded (bounded), the whole request is bounded by timeout.
 *
 * A 2xx answer is success; anything else is a failure the caller retries
 * with backoff (the payload is the same each time, so the receiver can
 * de-duplicate by its "id").  The token and payload never reach a log.
 */
#ifndef SEALPOST_WEBHOOK_H
#define SEALPOST_WEBHOOK_H

#include <stddef.h>

struct webhook_params {
	const char	*ca_file;	/* NULL: system trust store */
	int		 timeout;	/* seconds, whole request */
};

/* curl_global_init, once, before threads start.  0 or -1. */
int	 webhook_global_init(void);
/* curl_global_cleanup, once, after the last webhook_post returned. */
void	 webhook_global_cleanup(void);

/*
 * POST json to url.  Returns the HTTP status (200..599), or -1 when no
 * answer came (refused URL, DNS, connect, TLS verification, timeout) with
 * a one-line reason in err.
 */
int	 webhook_post(const struct webhook_params *, const char *url,
	    const char *bearer, const char *json, size_t jsonlen,
	    char *err, size_t errsz);

/* 0 if url is acceptable (https, or http to loopback), else -1 + reason. */
int	 webhook_url_check(const char *url, const char **error_r);

#endif
