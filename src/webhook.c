/*
 * webhook.c - delivery-state callbacks: POST JSON to a client's callback
 * URL with a bearer token, through libcurl's easy interface.
 *
 * Public: webhook_global_init, webhook_global_cleanup, webhook_post,
 * webhook_url_check.
 *
 * The only file that includes <curl/curl.h>.  One easy handle per call,
 * made and destroyed on the calling (callback worker) thread, so nothing
 * is shared between threads but curl's global state.  The URL is parsed
 * once with curl_url(), checked, and that same parsed handle is what curl
 * fetches (CURLOPT_CURLU): what was checked is what is fetched.
 *
 * Hardening, each set explicitly rather than trusting defaults: http and
 * https only, no redirects, no proxy (environment variables ignored), no
 * signals (worker threads), TLS 1.2 or later with chain and host name
 * verified (ca_file, else the system store), the whole request bounded by
 * the timeout and the response body by WEBHOOK_BODY_MAX, never verbose.
 *
 * Secrets: the bearer token goes into one header line built here; that
 * copy and the copy curl's header list holds are wiped before they are
 * freed.  curl's own request buffer, which also carried the header, is
 * freed by curl without wiping: out of reach through its API.  Neither
 * the token nor the payload is logged or put in an error message.
 *
 * Error policy: see webhook.h (an HTTP status, or -1 with a one-line
 * reason; webhook_url_check 0 or -1 with a static reason).
 */
#include "build.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "util.h"
#include "webhook.h"

#define WEBHOOK_URL_MAX		2048
#define WEBHOOK_BEARER_MAX	4096
#define WEBHOOK_BODY_MAX	(64 * 1024)	/* response bytes read */
#define WEBHOOK_CONNECT_MAX	10		/* seconds, at most */
#define WEBHOOK_TIMEOUT_MAX	3600		/* seconds */

struct webhook_sink {
	size_t		 seen;
	int		 capped;	/* stopped reading at WEBHOOK_BODY_MAX */
};

static int	 webhook_url_parse(const char *, CURLU **, const char **);
static int	 webhook_host_is_loopback(const char *);
static int	 webhook_bearer_check(const char *, const char **);
static size_t	 webhook_discard(char *, size_t, size_t, void *);
static void	 webhook_headers_wipe(struct curl_slist *);
static void	 webhook_reason(CURLcode, const char *, char *, size_t);
static void	 webhook_err(char *, size_t, const char *, ...)
		    __attribute__((format(printf, 3, 4)));

/* curl_global_init, with a check that this libcurl can do TLS. */
int
webhook_global_init(void)
{
	const curl_version_info_data	*vi;

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return -1;
	vi = curl_version_info(CURLVERSION_NOW);
	if (vi == NULL || (vi->features & CURL_VERSION_SSL) == 0) {
		curl_global_cleanup();
		return -1;
	}
	return 0;
}

/* curl_global_cleanup: releases the TLS library's global state. */
void
webhook_global_cleanup(void)
{
	curl_global_cleanup();
}

/* 0 if url is acceptable (https, or http to loopback), else -1 + reason. */
int
webhook_url_check(const char *url, const char **error_r)
{
	CURLU	*u;

	if (webhook_url_parse(url, &u, error_r) != 0)
		return -1;
	curl_url_cleanup(u);
	return 0;
}

/*
 * Check url and return it parsed in *up (the caller frees it with
 * curl_url_cleanup); 0, or -1 with a static reason.
 */
static int
webhook_url_parse(const char *url, CURLU **up, const char **error_r)
{
	CURLU		*u;
	CURLUcode	 rc;
	char		*scheme = NULL, *host = NULL, *part = NULL;
	const char	*p, *why = NULL;
	size_t		 len;

	*up = NULL;
	if (url == NULL || *url == '\0') {
		*error_r = "empty URL";
		return -1;
	}
	/* Bytes first, so that each gets its own precise reason. */
	len = strnlen(url, WEBHOOK_URL_MAX + 1);
	if (len > WEBHOOK_URL_MAX) {
		*error_r = "URL longer than 2048 characters";
		return -1;
	}
	for (p = url; *p != '\0'; p++) {
		if (*p == '\r' || *p == '\n') {
			*error_r = "URL contains CR or LF";
			return -1;
		}
		if (*p == ' ') {
			*error_r = "URL contains a space";
			return -1;
		}
		if ((unsigned char)*p < 0x20 || *p == 0x7f) {
			*error_r = "URL contains a control character";
			return -1;
		}
		if ((unsigned char)*p >= 0x80) {
			*error_r = "URL contains non-ASCII bytes "
			    "(use punycode and percent-encoding)";
			return -1;
		}
	}

	/*
	 * URI = scheme ":" hier-part, hier-part = "//" authority path-abempty
	 * (RFC 3986).  curl would also take "https:/host" or "https:///host";
	 * a URL it has to repair is refused instead.
	 */
	if ((p = strchr(url, ':')) == NULL) {
		*error_r = "URL has no scheme (https://host/...)";
		return -1;
	}
	len = (size_t)(p - url);
	if (!((len == 5 && strncasecmp(url, "https", 5) == 0) ||
	    (len == 4 && strncasecmp(url, "http", 4) == 0))) {
		*error_r = "URL scheme must be https (or http to loopback)";
		return -1;
	}
	if (p[1] != '/' || p[2] != '/' || p[3] == '/' || p[3] == '\0') {
		*error_r = "URL must have \"//\" and a host after the scheme";
		return -1;
	}

	if ((u = curl_url()) == NULL) {
		*error_r = "out of memory";
		return -1;
	}
	/* No default scheme: "example.org/hook" is refused, not guessed. */
	if ((rc = curl_url_set(u, CURLUPART_URL, url, 0)) != CURLUE_OK) {
		switch (rc) {
		case CURLUE_UNSUPPORTED_SCHEME:
		case CURLUE_BAD_SCHEME:
		case CURLUE_NO_SCHEME:
			why = "URL scheme must be https (or http to loopback)";
			break;
		case CURLUE_BAD_LOGIN:
		case CURLUE_BAD_USER:
		case CURLUE_BAD_PASSWORD:
			why = "URL must not contain credentials";
			break;
		case CURLUE_BAD_PORT_NUMBER:
			why = "URL has a bad port number";
			break;
		case CURLUE_NO_HOST:
		case CURLUE_BAD_HOSTNAME:
		case CURLUE_BAD_IPV6:
			why = "URL has no valid host";
			break;
		default:
			why = "malformed URL";
			break;
		}
		goto out;
	}

	if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK) {
		why = "URL has no scheme";
		goto out;
	}
	/* userinfo = *( unreserved / pct-encoded / sub-delims / ":" ) */
	if (curl_url_get(u, CURLUPART_USER, &part, 0) == CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PASSWORD, &part, 0) == CURLUE_OK ||
	    curl_url_get(u, CURLUPART_OPTIONS, &part, 0) == CURLUE_OK) {
		why = "URL must not contain credentials";
		goto out;
	}
	if (curl_url_get(u, CURLUPART_ZONEID, &part, 0) == CURLUE_OK) {
		why = "URL must not contain an IPv6 zone id";
		goto out;
	}
	if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
	    *host == '\0') {
		why = "URL has no valid host";
		goto out;
	}
	if (strcasecmp(scheme, "https") == 0)
		;
	else if (strcasecmp(scheme, "http") == 0) {
		/* Plain text only where it cannot leave the machine. */
		if (!webhook_host_is_loopback(host)) {
			why = "http:// is only allowed to a loopback host; "
			    "use https";
			goto out;
		}
	} else {
		why = "URL scheme must be https (or http to loopback)";
		goto out;
	}

 out:
	curl_free(scheme);
	curl_free(host);
	curl_free(part);
	if (why != NULL) {
		curl_url_cleanup(u);
		*error_r = why;
		return -1;
	}
	*up = u;
	return 0;
}

/*
 * Is host (as curl_url() returns it: IPv4 normalised to dotted quad, IPv6
 * in brackets) loopback: 127.0.0.0/8, ::1, or the name "localhost", which
 * curl resolves to loopback itself without asking DNS.
 */
static int
webhook_host_is_loopback(const char *host)
{
	struct in_addr	 a4;
	struct in6_addr	 a6;
	char		 buf[INET6_ADDRSTRLEN + 2];
	size_t		 len;

	if (strcasecmp(host, "localhost") == 0)
		return 1;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	len = strlen(host);
	if (len < 3 || len >= sizeof buf || host[0] != '[' ||
	    host[len - 1] != ']')
		return 0;
	memcpy(buf, host + 1, len - 2);
	buf[len - 2] = '\0';
	if (inet_pton(AF_INET6, buf, &a6) != 1)
		return 0;
	if (IN6_IS_ADDR_LOOPBACK(&a6))
		return 1;
	return IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127;
}

/*
 * A bearer token goes into a header line: visible ASCII only (RFC 6750's
 * b64token is a subset; clinical systems are not all strict about it),
 * so that it cannot end the header or inject another.
 */
static int
webhook_bearer_check(const char *bearer, const char **error_r)
{
	const char	*p;

	if (bearer == NULL || *bearer == '\0') {
		*error_r = "empty bearer token";
		return -1;
	}
	if (strnlen(bearer, WEBHOOK_BEARER_MAX + 1) > WEBHOOK_BEARER_MAX) {
		*error_r = "bearer token longer than 4096 characters";
		return -1;
	}
	for (p = bearer; *p != '\0'; p++)
		if (*p <= 0x20 || *p >= 0x7f) {
			*error_r = "bearer token contains a character other "
			    "than visible ASCII";
			return -1;
		}
	return 0;
}

/* curl write callback: count and drop the response body, up to a cap. */
static size_t
webhook_discard(char *data, size_t size, size_t nmemb, void *arg)
{
	struct webhook_sink	*sink = arg;
	size_t			 n = size * nmemb;

	if (n > WEBHOOK_BODY_MAX - sink->seen) {
		/* A short count makes curl stop with CURLE_WRITE_ERROR. */
		sink->capped = 1;
		return 0;
	}
	sink->seen += n;
	return n;
}

/* Wipe every line of a header list before it is freed. */
static void
webhook_headers_wipe(struct curl_slist *h)
{
	for (; h != NULL; h = h->next)
		explicit_bzero(h->data, strlen(h->data));
}

/* POST json to url; an HTTP status, or -1 with a reason in err. */
int
webhook_post(const struct webhook_params *wp, const char *url,
    const char *bearer, const char *json, size_t jsonlen, char *err,
    size_t errsz)
{
	CURL			*c = NULL;
	CURLU			*u = NULL;
	CURLcode		 rc;
	struct curl_slist	*hdrs = NULL, *h;
	struct webhook_sink	 sink = { 0, 0 };
	char			 cerr[CURL_ERROR_SIZE];
	char			*auth = NULL;
	const char		*why;
	/* "Expect:" off: no 100-continue round trip on a large body. */
	const char		*lines[] = { NULL,
				    "Content-Type: application/json",
				    "Expect:" };
	long			 status = 0, connect_to;
	size_t			 authlen = 0, i;
	int			 ret = -1;

	if (errsz > 0)
		err[0] = '\0';
	cerr[0] = '\0';
	if (webhook_url_parse(url, &u, &why) != 0) {
		webhook_err(err, errsz, "refused URL: %s", why);
		return -1;
	}
	if (webhook_bearer_check(bearer, &why) != 0) {
		webhook_err(err, errsz, "refused token: %s", why);
		goto out;
	}
	if (wp->timeout <= 0 || wp->timeout > WEBHOOK_TIMEOUT_MAX) {
		/* 0 would mean "no timeout" to curl. */
		webhook_err(err, errsz, "timeout must be 1..%d seconds",
		    WEBHOOK_TIMEOUT_MAX);
		goto out;
	}
	if (json == NULL) {
		webhook_err(err, errsz, "no payload");
		goto out;
	}
	if ((c = curl_easy_init()) == NULL) {
		webhook_err(err, errsz, "curl_easy_init failed");
		goto out;
	}

	authlen = (size_t)xasprintf(&auth, "Authorization: Bearer %s", bearer);
	lines[0] = auth;
	for (i = 0; i < nitems(lines); i++) {
		if ((h = curl_slist_append(hdrs, lines[i])) == NULL) {
			webhook_err(err, errsz, "out of memory");
			goto out;
		}
		hdrs = h;
	}

	connect_to = wp->timeout < WEBHOOK_CONNECT_MAX ? wp->timeout :
	    WEBHOOK_CONNECT_MAX;
	/*
	 * Each setopt can only fail for an unknown option or out of memory;
	 * a failure of any of them fails the call rather than sending with
	 * a weaker setting.
	 */
	if ((rc = curl_easy_setopt(c, CURLOPT_VERBOSE, 0L)) != CURLE_OK ||
	    (rc = curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L)) != CURLE_OK ||
	    (rc = curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr)) != CURLE_OK ||
	    (rc = curl_easy_setopt(c, CURLOPT_CURLU, u)) != CURLE_OK ||
#if LIBCURL_VERSION_NUM >= 0x075500	/* 7.85.0 */
	    (rc = curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR,
	    "http,https")) != CURLE_OK ||
#else
	    (rc = curl_easy_setopt(c, CURLOPT_PROTOCOLS,
	    (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS))) != CURLE_OK ||
#endif
	    (rc = curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L)) != CURLE_OK ||
	    (rc = curl_easy_setopt(c, CURLOPT_PROXY, "")) != CURLE_OK ||
	    (rc = curl_easy_setopt(c, CURLOPT_NOPROXY, "*")) != CURLE_OK ||
	    (rc = curl_easy_setopt(c, CURLOPT_TIMEOUT,
	    (long)wp->timeout)) != CURLE_OK ||
	    (rc = curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT,
	    connect_to)) != CURLE_OK ||
	    (rc = curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L)) != CURLE_OK ||
	    (rc = curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L)) != CURLE_OK ||
	    (rc = curl_easy_setopt(c, CURLOPT_SSLVERSION,
	    (long)CURL_SSLVERSION_TLSv1_2)) != CURLE_OK ||
	    (rc = curl_easy_setopt(c, CURLOPT_USERAGENT,
	    "sealpost/" PACKAGE_VERSION)) != CURLE_OK ||
	    (rc = curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs)) != CURLE_OK ||
	    (rc = curl_easy_setopt(c, CURLOPT_POST, 1L)) != CURLE_OK ||
	    (rc = curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
	    (curl_off_t)jsonlen)) != CURLE_OK ||
	    (rc = curl_easy_setopt(c, CURLOPT_POSTFIELDS, json)) != CURLE_OK ||
	    (rc = curl_easy_setopt(c, CURLOPT_WRITEFUNCTION,
	    webhook_discard)) != CURLE_OK ||
	    (rc = curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink)) != CURLE_OK) {
		webhook_err(err, errsz, "curl setup: %s",
		    curl_easy_strerror(rc));
		goto out;
	}
	/* ca_file replaces the system store: only its anchors are trusted. */
	if (wp->ca_file != NULL &&
	    ((rc = curl_easy_setopt(c, CURLOPT_CAINFO,
	    wp->ca_file)) != CURLE_OK ||
	    (rc = curl_easy_setopt(c, CURLOPT_CAPATH, NULL)) != CURLE_OK)) {
		webhook_err(err, errsz, "curl setup: %s",
		    curl_easy_strerror(rc));
		goto out;
	}

	rc = curl_easy_perform(c);
	/*
	 * A body over the cap still came with a complete status line: the
	 * receiver answered, so the status counts.  Any other error means
	 * no (complete) answer, and the caller retries.
	 */
	if (rc != CURLE_OK && !(rc == CURLE_WRITE_ERROR && sink.capped)) {
		webhook_reason(rc, cerr, err, errsz);
		goto out;
	}
	if (curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status) !=
	    CURLE_OK || status < 200 || status > 599) {
		webhook_err(err, errsz, "unexpected HTTP status %ld", status);
		goto out;
	}
	ret = (int)status;

 out:
	if (c != NULL)
		curl_easy_cleanup(c);
	webhook_headers_wipe(hdrs);
	curl_slist_free_all(hdrs);
	if (auth != NULL) {
		explicit_bzero(auth, authlen);
		free(auth);
	}
	curl_url_cleanup(u);
	return ret;
}

/* A one-line reason for a failed transfer: the class, then curl's text. */
static void
webhook_reason(CURLcode rc, const char *cerr, char *err, size_t errsz)
{
	const char	*what, *detail;

	switch (rc) {
	case CURLE_COULDNT_RESOLVE_HOST:
		what = "DNS";
		break;
	case CURLE_COULDNT_CONNECT:
		what = "connect";
		break;
	case CURLE_OPERATION_TIMEDOUT:
		what = "timeout";
		break;
	case CURLE_PEER_FAILED_VERIFICATION:
		what = "TLS certificate verification failed";
		break;
	case CURLE_SSL_CACERT_BADFILE:
		what = "TLS CA file";
		break;
	case CURLE_SSL_CONNECT_ERROR:
		what = "TLS handshake";
		break;
	default:
		what = "HTTP";
		break;
	}
	/* The error buffer never holds headers or the body, only curl's
	 * view of the failure (host, port, TLS library text). */
	detail = cerr[0] != '\0' ? cerr : curl_easy_strerror(rc);
	webhook_err(err, errsz, "%s: %s", what, detail);
}

/*
 * Format a reason into err as one line of printable ASCII: parts of it
 * (a certificate's names, say) come from the peer.
 */
static void
webhook_err(char *err, size_t errsz, const char *fmt, ...)
{
	va_list	 ap;
	size_t	 i;

	if (errsz == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errsz, fmt, ap);
	va_end(ap);
	/* curl's messages may end in a newline. */
	i = strlen(err);
	while (i > 0 && (err[i - 1] == '\n' || err[i - 1] == '\r' ||
	    err[i - 1] == ' '))
		err[--i] = '\0';
	for (i = 0; err[i] != '\0'; i++)
		if ((unsigned char)err[i] < 0x20 ||
		    (unsigned char)err[i] >= 0x7f)
			err[i] = '?';
}
