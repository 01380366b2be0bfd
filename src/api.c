/*
 * api.c - the HTTP API: evhttp glue, routing, authentication, JSON answers.
 *
 * Owns the evhttp server and its listener, one struct api_req per request
 * and one struct api_conn per connection (the body-size guard below).
 *
 *   POST /v1/letters        202 {"id","status","status_url"} + Location,
 *                           sent from the pipeline's done() after COMMIT
 *   GET  /v1/letters/{id}   200 the letter's state and its deliveries
 *   GET  /v1/threads/{id}   200 the thread: the letter and its replies,
 *                           with the content of the filed ones
 *   GET  /v1/replies        200 the practice's filed replies after a
 *                           cursor, with content, for the record
 *   GET  /healthz           200 {"status":"ok"}; 503 draining / store down
 *   GET  /metrics           200 Prometheus text: queue counts and ages
 *
 * Every answer is JSON with "Cache-Control: no-store".  Errors are
 * {"error":{"code":"...","message":"..."[,"field":"..."]}} with:
 *   400 malformed_json          (and letter.c's other 400s)
 *   400 malformed_query         a query string that does not parse
 *   401 unauthorized            + WWW-Authenticate: Bearer
 *   403 forbidden               "practice" names another practice
 *   404 not_found / unknown_patient / unknown_letter / unknown_thread
 *   405 method_not_allowed      + Allow
 *   409 idempotency_conflict    the key was used for another body
 *   413 too_large               the body (or the letter) is too big
 *   415 unsupported_media_type  not application/json[; charset=utf-8]
 *   422 invalid_field / missing_field, naming the field (a query
 *                               parameter too: unknown, repeated, bad)
 *   500 internal_error          a party's keys are missing or bad
 *   503 unavailable / shutting_down  + Retry-After
 * A patient or letter of another practice is a 404, like a missing one,
 * so a client cannot probe for another practice's ids.
 *
 * Reply content.  The two reply routes decrypt sealed replies with the
 * practice archive identity and write audit rows: blocking work, done on
 * one reader thread with its own store connection.  The loop checks the
 * query and authenticates, queues a struct api_rjob (at most
 * API_READER_QUEUE waiting, then 503), and the request waits on
 * api->pending like a POST; the reader's answer comes back through
 * event_active.  Each answer is bounded: at most API_CONTENT_BUDGET
 * sealed bytes are opened (the page stops early, and says so with "more"
 * and "next"), at least one reply so a large one cannot block the feed.
 * Before any content leaves, one transaction writes an audit row per
 * reply opened ("reply.read", actor "client:N", object "reply:ID"); if it
 * cannot be written, no content is sent (503).  Quarantined and rejected
 * replies are listed without content: staff deal with them
 * (sealpostctl).  Every answer's bytes are wiped when libevent frees
 * them.
 *
 * A POST's life (all on the loop thread, lookups on d->store):
 *
 *   dispatch -> auth -> content type -> Idempotency-Key lookup
 *     -> parse (letter.c) -> patient, author, practice -> submit_enqueue
 *     ... done(): OK/DUPLICATE 202, CONFLICT 409, EINPUT 4xx, 503
 *
 * While its job is pending a request sits on api->pending.  If the
 * connection closes first, the connection's close callback drops the
 * evhttp request and done() only logs: the letter is committed anyway and
 * the client's retry with the same Idempotency-Key gets the original
 * answer.  api_inflight() counts pending requests and answers not yet
 * handed to the kernel (until evhttp's on-complete or close callback), so
 * a draining daemon does not exit with a 202 still in a buffer.
 *
 * Body-size guard.  libevent 2.1 reads a whole body before calling us and
 * answers a body over evhttp_set_max_body_size() with its own HTML page;
 * it has no per-request hook before the body on the server side.  So each
 * connection's input buffer carries an evbuffer callback that runs when
 * bytes arrive, before evhttp parses them.  It follows the HTTP/1.1
 * framing exactly as evhttp 2.1 does (request line, header lines, a
 * Content-Length body for the methods evhttp reads bodies for), and when a
 * request declares a Content-Length over the bound it rewrites that header
 * to "Content-Length: 0", adds "X-Sealpost-Oversize: <per-process secret>"
 * and drops the declared body bytes as they come.  The request then reaches
 * api_dispatch() at once, with no body, and gets a JSON 413; the
 * connection stays in step (or closes when the client waited on "Expect:
 * 100-continue" and will never send the body).  Limits of the guard:
 * chunked bodies (Transfer-Encoding) are not followed: evhttp's own bound
 * answers those with its HTML 413, as it does for a header section over
 * API_MAX_HEADERS and for requests it cannot parse (400).
 * A guard lives until its fd is reused by a later connection (the old one
 * is certainly closed by then) or until api_free().
 *
 * There is no connection cap: libevent 2.1 has neither
 * evhttp_set_max_connections() nor a close hook for connections that never
 * complete a request; the backlog, the idle timeout ([http] timeout) and
 * RLIMIT_NOFILE (LimitNOFILE=1024 in the unit) bound them.
 *
 * Public: api_start, api_stop_accepting, api_inflight, api_free.
 * Error policy: api_start returns 0 or -1 with a malloc'd reason; every
 * request gets a JSON answer and one log line
 * "http req=N client=N method=M path=P status=N ms=N"; no body, subject,
 * name or address ever reaches a log.
 */
#include "build.h"

#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>

#include <jansson.h>

#include "age.h"
#include "api.h"
#include "config.h"
#include "daemon.h"
#include "hash.h"
#include "keyring.h"
#include "letter.h"
#include "log.h"
#include "replydoc.h"
#include "store.h"
#include "queue.h"
#include "submit.h"
#include "tlsserver.h"
#include "util.h"

#define API_BACKLOG		512
#define API_MAX_HEADERS		(16 * 1024)	/* request line + headers */
#define API_LINE_MAX		(API_MAX_HEADERS + 1024)
#define API_BODY_SLACK		(64 * 1024)	/* JSON around the base64 */
#define API_IDEM_MAX		128
#define API_TOKEN_MAX		512
#define API_RETRY_AFTER		"5"		/* seconds */
#define API_OVERSIZE_HDR	"X-Sealpost-Oversize"
#define API_MARKER_HEX		32		/* 16 random bytes in hex */
#define API_CONTENT_BUDGET	(8 * 1024 * 1024) /* sealed bytes per answer */
#define API_THREAD_PAGE		100		/* replies per thread answer */
#define API_REPLIES_LIMIT	100		/* /v1/replies default limit */
#define API_REPLIES_MAX		500
#define API_READER_QUEUE	256		/* reads waiting, then 503 */

/* Every method evhttp knows: we answer 405 ourselves, as JSON. */
#define API_METHODS	(EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | \
	EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS | \
	EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH)

/* Where the guard is in a connection's byte stream. */
enum api_guard_state {
	API_G_LINE0,		/* expecting a request line */
	API_G_HEADERS,		/* in the header section */
	API_G_BODY,		/* passing `remaining' body bytes */
	API_G_DISCARD,		/* dropping `remaining' bytes of a refused body */
	API_G_OFF		/* framing not followed (chunked): evhttp decides */
};

/* One connection's body-size guard. */
struct api_conn {
	struct api		*api;
	struct bufferevent	*bev;
	struct event		*bind_ev;	/* until bound to its fd */
	int			 fd;		/* -1 until bound */
	enum api_guard_state	 state;
	int			 busy;		/* editing its own buffer */
	int			 body_method;	/* evhttp reads a body for it */
	int			 have_cl;	/* first Content-Length seen */
	int			 have_te;	/* first Transfer-Encoding seen */
	int			 chunked;
	int			 expect;	/* Expect: seen */
	int			 oversize;	/* Content-Length rewritten */
	size_t			 partial;	/* bytes of an unfinished line */
	int64_t			 length;	/* declared Content-Length */
	int64_t			 remaining;	/* body bytes to pass or drop */
	TAILQ_ENTRY(api_conn)	 entry;		/* api->unbound */
};

/* One HTTP request, from dispatch to its answer. */
struct api_req {
	struct api		*api;
	struct evhttp_request	*req;		/* NULL once the client left */
	uint64_t		 id;
	int64_t			 client_id;	/* 0 before authentication */
	const char		*method;
	char			 path[96];	/* escaped, for the log */
	uint64_t		 t0;
	struct submit_job	*job;		/* while pending (POST) */
	struct api_rjob		*rjob;		/* while pending (reads) */
	int			 writing;	/* answer sent, not yet flushed */
	TAILQ_ENTRY(api_req)	 entry;		/* api->pending */
};

struct api {
	struct daemon		*d;
	struct evhttp		*http;
	struct evhttp_bound_socket *bound;
	struct tlsserver	*tls;
	char			*addr;
	int64_t			 timeout;	/* applied http_timeout */
	size_t			 body_max;	/* request body bound */
	struct letter_limits	 body_lim;	/* the request as received */
	struct letter_limits	 doc_lim;	/* the decoded letter */
	char			 marker[API_MARKER_HEX + 1];
	uint64_t		 next_id;
	int			 inflight;	/* pending + answers being written */
	TAILQ_HEAD(, api_req)	 pending;
	struct api_conn		**conns;	/* guards by fd */
	size_t			 nconns;
	TAILQ_HEAD(, api_conn)	 unbound;

	/* the reader thread and its own store connection */
	struct store		*rstore;
	struct keyring		*keyring;
	pthread_t		 rthread;
	int			 rstarted;
	pthread_mutex_t		 rmu;		/* guards rq, rdone, rstop */
	pthread_cond_t		 rcv;
	struct api_rjob		*rq, **rq_tail;	/* to read */
	struct api_rjob		*rdone, **rdone_tail;	/* to answer */
	int			 rstop;
	int			 rqueued;	/* loop only: submitted, not
						   answered */
	struct event		*rdone_ev;
};

/* Routes. */
enum api_route {
	API_R_NONE,
	API_R_HEALTH,
	API_R_METRICS,
	API_R_LETTERS,
	API_R_LETTER,
	API_R_THREAD,
	API_R_REPLIES
};

/*
 * A read of replies (GET /v1/threads/{id}, /v1/replies), done on the
 * reader thread: the store reads, the decryption and the audit commit
 * block, so they stay off the loop.  The loop owns `ar' (on
 * api->pending); the reader only reads the fields above `status' and
 * fills the answer.
 */
struct api_rjob {
	struct api_req		*ar;
	uint64_t		 req_id;	/* for the log */
	enum api_route		 route;		/* API_R_THREAD or _REPLIES */
	int64_t			 practice_id;	/* the client's */
	int64_t			 client_id;
	int64_t			 id;		/* the thread */
	int64_t			 since;		/* reply id cursor */
	int64_t			 limit;		/* /v1/replies */
	/* the answer */
	int			 status;
	int			 retry;		/* add Retry-After */
	char			*body;		/* JSON; wiped when freed */
	struct api_rjob		*next;
};

/* Opening replies for one read: the archive key and the audit list. */
struct api_content {
	struct api		*api;
	struct api_rjob		*job;
	struct keyring_secret	 sec;		/* unwrapped at the first use */
	int			 sec_failed;
	size_t			 opened;	/* sealed bytes opened */
	int64_t			*ids;		/* replies to audit */
	const char		**outcomes;	/* static strings */
	size_t			 nids;
};

static struct bufferevent *api_bevcb(struct event_base *, void *);
static void	 api_guard_bind(evutil_socket_t, short, void *);
static void	 api_guard_attach(struct api_conn *);
static void	 api_guard_cb(struct evbuffer *, const struct evbuffer_cb_info *,
		    void *);
static void	 api_guard_scan(struct api_conn *, struct evbuffer *, size_t);
static void	 api_guard_line(struct api_conn *, struct evbuffer *, size_t,
		    size_t, size_t *, size_t *);
static void	 api_guard_end(struct api_conn *, struct evbuffer *, size_t,
		    size_t *, size_t *);
static void	 api_guard_reset(struct api_conn *);
static int	 api_guard_body_method(const char *, size_t);
static void	 api_buf_splice(struct evbuffer *, size_t, size_t,
		    const char *, size_t);
static int	 api_oversize(struct api *, struct evhttp_request *, int *);

static void	 api_dispatch(struct evhttp_request *, void *);
static void	 api_health(struct api_req *);
static void	 api_letter_get(struct api_req *, struct store_client *,
		    int64_t);
static void	 api_letter_post(struct api_req *, struct store_client *);
static int	 api_query(struct api_req *, const char *const *,
		    int64_t *, const int64_t *, const int64_t *);
static void	 api_replies_route(struct api_req *, struct store_client *,
		    enum api_route, int64_t);
static void	*api_reader(void *);
static void	 api_reader_done(evutil_socket_t, short, void *);
static void	 api_rjob_free(struct api_rjob **);
static void	 api_rjob_answer(struct api_rjob *, int, json_t *);
static void	 api_rjob_error(struct api_rjob *, int, const char *,
		    const char *);
static void	 api_rjob_store_error(struct api_rjob *, const char *, int,
		    const char *);
static void	 api_thread_read(struct api *, struct api_rjob *);
static void	 api_replies_read(struct api *, struct api_rjob *);
static void	 api_content_init(struct api_content *, struct api *,
		    struct api_rjob *);
static int	 api_content_room(struct api_content *,
		    const struct store_reply *);
static json_t	*api_reply_json(struct api_content *,
		    const struct store_reply *, int);
static int	 api_content_audit(struct api_content *);
static void	 api_content_clear(struct api_content *);
static int	 api_auth(struct api_req *, struct store_client **);
static int	 api_json_ctype(const char *);
static int	 api_idem_valid(const char *);
static int	 api_key_unset(const unsigned char *);
static void	 api_letter_done(struct submit_job *, void *);
static void	 api_discard_done(struct submit_job *, void *);
static void	 api_conn_closed(struct evhttp_connection *, void *);
static void	 api_sent(struct evhttp_request *, void *);

static void	 api_accepted(struct api_req *, int64_t);
static void	 api_error(struct api_req *, int, const char *, const char *,
		    const char *, ...) __attribute__((format(printf, 5, 6)));
static json_t	*api_error_json(const char *, const char *, const char *);
static void	 api_wipe_cleanup(const void *, size_t, void *);
static void	 api_store_error(struct api_req *, const char *, int,
		    const char *);
static void	 api_reply(struct api_req *, int, json_t *);
static void	 api_reply_raw(struct api_req *, int, const char *,
		    const char *, size_t);
static void	 api_metrics(struct api_req *);
static void	 api_log(struct api_req *, int);
static void	 api_header(struct api_req *, const char *, const char *);
static int	 api_header_count(struct evhttp_request *, const char *);
static json_t	*api_jstr(const char *);
static json_t	*api_jtime(int64_t);
static const char *api_reason(int);
static const char *api_method_name(enum evhttp_cmd_type);

/* Start the HTTP listener; *apip stays NULL when [http] listen is empty. */
int
api_start(struct daemon *d, struct api **apip, char **error_r)
{
	const struct config	*cfg = d->cfg;
	struct api		*api;
	struct addrinfo		 hints, *ai = NULL;
	struct evconnlistener	*lev;
	unsigned char		 rnd[API_MARKER_HEX / 2];
	char			*host = NULL, portstr[16];
	const char		*why;
	int			 port, loopback, r;

	*apip = NULL;
	*error_r = NULL;
	if (cfg->http_listen == NULL || cfg->http_listen[0] == '\0')
		return 0;
	if ((why = config_split_listen(cfg->http_listen, &host, &port)) !=
	    NULL) {
		xasprintf(error_r, "http listen %s: %s", cfg->http_listen, why);
		return -1;
	}
	loopback = util_is_loopback(host);

	api = xcalloc(1, sizeof *api);
	api->d = d;
	api->addr = xstrdup(cfg->http_listen);
	TAILQ_INIT(&api->pending);
	TAILQ_INIT(&api->unbound);
	api->keyring = d->keyring;
	api->rq_tail = &api->rq;
	api->rdone_tail = &api->rdone;
	if (pthread_mutex_init(&api->rmu, NULL) != 0 ||
	    pthread_cond_init(&api->rcv, NULL) != 0)
		log_fatalx("http: cannot make the reader's lock");

	if (tlsserver_for_listener("http", cfg->http_listen, loopback,
	    cfg->http_tls_cert, cfg->http_tls_key, cfg->http_allow_plaintext,
	    &api->tls, error_r) != 0)
		goto fail;

	/* base64 grows attachments by 4/3; the JSON around them is small. */
	api->body_max = (size_t)cfg->max_letter_size / 3 * 4 + 4 +
	    API_BODY_SLACK;
	api->body_lim.max_size = api->body_max;
	api->body_lim.max_attachments = (size_t)cfg->max_attachments;
	api->body_lim.max_attachment_size = (size_t)cfg->max_attachment_size;
	api->doc_lim = api->body_lim;
	api->doc_lim.max_size = (size_t)cfg->max_letter_size;
	hash_random(rnd, sizeof rnd);
	hash_hex(rnd, sizeof rnd, api->marker);
	hash_wipe(rnd, sizeof rnd);

	/* The reader thread, with its own connection (store.h). */
	if (store_open(cfg->database, STORE_RDWR, &api->rstore, &why) !=
	    STORE_OK) {
		xasprintf(error_r, "http: reader store %s: %s", cfg->database,
		    why);
		goto fail;
	}
	if ((api->rdone_ev = event_new(d->base, -1, 0, api_reader_done,
	    api)) == NULL) {
		xasprintf(error_r, "http: event_new failed");
		goto fail;
	}
	if (pthread_create(&api->rthread, NULL, api_reader, api) != 0) {
		xasprintf(error_r, "http: cannot start the reader thread");
		goto fail;
	}
	api->rstarted = 1;

	if ((api->http = evhttp_new(d->base)) == NULL) {
		xasprintf(error_r, "http: evhttp_new failed");
		goto fail;
	}
	api->timeout = cfg->http_timeout;
	evhttp_set_timeout(api->http, (int)api->timeout);
	evhttp_set_max_headers_size(api->http, API_MAX_HEADERS);
	evhttp_set_max_body_size(api->http, (ev_ssize_t)api->body_max);
	evhttp_set_allowed_methods(api->http, API_METHODS);
	evhttp_set_gencb(api->http, api_dispatch, api);
	evhttp_set_bevcb(api->http, api_bevcb, api);

	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(portstr, sizeof portstr, "%d", port);
	if ((r = getaddrinfo(host, portstr, &hints, &ai)) != 0) {
		xasprintf(error_r, "http listen %s: %s", cfg->http_listen,
		    gai_strerror(r));
		goto fail;
	}
	/* Our own listener: evhttp_bind_socket() has a backlog of 128. */
	lev = evconnlistener_new_bind(d->base, NULL, NULL,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
	    API_BACKLOG, ai->ai_addr, (int)ai->ai_addrlen);
	if (lev == NULL) {
		xasprintf(error_r, "http: cannot listen on %s: %s",
		    cfg->http_listen, strerror(errno));
		goto fail;
	}
	freeaddrinfo(ai);
	ai = NULL;
	if ((api->bound = evhttp_bind_listener(api->http, lev)) == NULL) {
		evconnlistener_free(lev);
		xasprintf(error_r, "http: cannot use the listener on %s",
		    cfg->http_listen);
		goto fail;
	}
	free(host);
	log_info("http: listening on %s%s body_max=%zu", cfg->http_listen,
	    api->tls != NULL ? " (TLS)" : "", api->body_max);
	*apip = api;
	return 0;

fail:
	if (ai != NULL)
		freeaddrinfo(ai);
	free(host);
	api_free(&api);
	return -1;
}

/* Close the listener; connections and pending requests carry on. */
void
api_stop_accepting(struct api *api)
{
	if (api == NULL || api->bound == NULL)
		return;
	evhttp_del_accept_socket(api->http, api->bound);
	api->bound = NULL;
	log_info("http: stopped accepting on %s", api->addr);
}

/* Requests waiting on the pipeline or on their answer being written. */
int
api_inflight(struct api *api)
{
	return api == NULL ? 0 : api->inflight;
}

/* Free everything; pending jobs get a callback that only frees them. */
void
api_free(struct api **apip)
{
	struct api	*api = *apip;
	struct api_req	*ar;
	struct api_rjob	*rj;
	struct api_conn	*c;
	size_t		 i;

	if (api == NULL)
		return;
	/* Closes every connection: their close callbacks drop requests. */
	if (api->http != NULL)
		evhttp_free(api->http);
	/* The reader finishes the read in hand; the rest is not answered. */
	if (api->rstarted) {
		pthread_mutex_lock(&api->rmu);
		api->rstop = 1;
		pthread_cond_signal(&api->rcv);
		pthread_mutex_unlock(&api->rmu);
		pthread_join(api->rthread, NULL);
	}
	while ((rj = api->rq) != NULL) {
		api->rq = rj->next;
		api_rjob_free(&rj);
	}
	while ((rj = api->rdone) != NULL) {
		api->rdone = rj->next;
		api_rjob_free(&rj);
	}
	while ((ar = TAILQ_FIRST(&api->pending)) != NULL) {
		TAILQ_REMOVE(&api->pending, ar, entry);
		if (ar->job != NULL) {
			ar->job->done = api_discard_done;
			ar->job->arg = NULL;
		}
		free(ar);
	}
	if (api->rdone_ev != NULL)
		event_free(api->rdone_ev);
	store_close(&api->rstore);
	pthread_cond_destroy(&api->rcv);
	pthread_mutex_destroy(&api->rmu);
	for (i = 0; i < api->nconns; i++)
		free(api->conns[i]);
	free(api->conns);
	while ((c = TAILQ_FIRST(&api->unbound)) != NULL) {
		TAILQ_REMOVE(&api->unbound, c, entry);
		if (c->bind_ev != NULL)
			event_free(c->bind_ev);
		free(c);
	}
	tlsserver_free(&api->tls);
	free(api->addr);
	free(api);
	*apip = NULL;
}

/*
 * evhttp's bufferevent factory: TLS or plain, with the body-size guard on
 * its input.  evhttp sets the fd after we return, so the guard learns it
 * from a callback made active now, which runs before any byte is read.
 */
static struct bufferevent *
api_bevcb(struct event_base *base, void *arg)
{
	struct api		*api = arg;
	struct bufferevent	*bev;
	struct api_conn		*c;

	/* A live reload of [http] timeout applies to new connections. */
	if (api->d->cfg->http_timeout != api->timeout) {
		api->timeout = api->d->cfg->http_timeout;
		evhttp_set_timeout(api->http, (int)api->timeout);
	}
	/*
	 * Never return NULL: evhttp would make a plaintext bufferevent of
	 * its own, which on an HTTPS port is a plaintext API.
	 */
	if (api->tls != NULL)
		bev = tlsserver_accept(api->tls, base, -1);
	else
		bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL)
		log_fatalx("http: cannot make a connection bufferevent");

	c = xcalloc(1, sizeof *c);
	c->api = api;
	c->bev = bev;
	c->fd = -1;
	c->state = API_G_LINE0;
	if (evbuffer_add_cb(bufferevent_get_input(bev), api_guard_cb, c) ==
	    NULL)
		log_fatalx("http: evbuffer_add_cb failed");
	if ((c->bind_ev = event_new(base, -1, 0, api_guard_bind, c)) == NULL)
		log_fatalx("http: event_new failed");
	event_active(c->bind_ev, EV_TIMEOUT, 1);
	TAILQ_INSERT_TAIL(&api->unbound, c, entry);
	return bev;
}

/* The deferred half of api_bevcb(): the fd is known now. */
static void
api_guard_bind(evutil_socket_t fd, short what, void *arg)
{
	api_guard_attach(arg);
}

/* File the guard under its fd, freeing the dead guard that had it. */
static void
api_guard_attach(struct api_conn *c)
{
	struct api	*api = c->api;
	int		 fd;
	size_t		 n;

	if (c->bind_ev == NULL)
		return;
	event_free(c->bind_ev);
	c->bind_ev = NULL;
	if ((fd = bufferevent_getfd(c->bev)) < 0) {
		/* evhttp gave up on it; it stays on the list till api_free. */
		c->state = API_G_OFF;
		return;
	}
	TAILQ_REMOVE(&api->unbound, c, entry);
	if ((size_t)fd >= api->nconns) {
		n = (size_t)fd + 64;
		api->conns = xreallocarray(api->conns, n, sizeof *api->conns);
		memset(api->conns + api->nconns, 0,
		    (n - api->nconns) * sizeof *api->conns);
		api->nconns = n;
	}
	/* The kernel reused the fd: its previous connection is closed. */
	free(api->conns[fd]);
	api->conns[fd] = c;
	c->fd = fd;
}

/* Bytes arrived on a connection: follow them before evhttp parses them. */
static void
api_guard_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info,
    void *arg)
{
	struct api_conn	*c = arg;
	size_t		 len;

	if (info->n_added == 0 || c->busy || c->state == API_G_OFF)
		return;
	if (c->fd == -1)
		api_guard_attach(c);
	len = evbuffer_get_length(buf);
	if (info->n_added > len) {
		c->state = API_G_OFF;	/* not an append: lost step */
		return;
	}
	c->busy = 1;
	api_guard_scan(c, buf, len - info->n_added);
	c->busy = 0;
}

/* Walk the new bytes of buf from offset pos, editing where needed. */
static void
api_guard_scan(struct api_conn *c, struct evbuffer *buf, size_t pos)
{
	struct evbuffer_ptr	 p;
	size_t			 len = evbuffer_get_length(buf), n, eol;
	size_t			 linelen;

	while (pos < len && c->state != API_G_OFF) {
		switch (c->state) {
		case API_G_BODY:
		case API_G_DISCARD:
			n = len - pos;
			if ((uint64_t)c->remaining < n)
				n = (size_t)c->remaining;
			if (c->state == API_G_DISCARD) {
				api_buf_splice(buf, pos, n, NULL, 0);
				len -= n;
			} else
				pos += n;
			c->remaining -= (int64_t)n;
			if (c->remaining == 0)
				api_guard_reset(c);
			break;
		case API_G_LINE0:
		case API_G_HEADERS:
			/* evhttp takes complete lines only (EOL "\n" or
			 * "\r\n"): an unfinished one is still in buf. */
			if (evbuffer_ptr_set(buf, &p, pos, EVBUFFER_PTR_SET) !=
			    0) {
				c->state = API_G_OFF;
				break;
			}
			p = evbuffer_search(buf, "\n", 1, &p);
			if (p.pos < 0) {
				c->partial += len - pos;
				pos = len;
				if (c->partial > API_LINE_MAX)
					c->state = API_G_OFF;
				break;
			}
			eol = (size_t)p.pos;
			if (c->partial > pos) {
				c->state = API_G_OFF;
				break;
			}
			linelen = c->partial + (eol + 1 - pos);
			pos -= c->partial;
			c->partial = 0;
			if (linelen > API_LINE_MAX) {
				c->state = API_G_OFF;
				break;
			}
			/* api_guard_line() moves pos past the line. */
			api_guard_line(c, buf, pos, linelen, &pos, &len);
			break;
		default:
			log_panic("api_guard_scan: state %d", (int)c->state);
		}
	}
}

/*
 * One complete line at [start, start + linelen) (EOL included).  Sets *pos
 * after it, and *len to the new buffer length when the line was edited.
 */
static void
api_guard_line(struct api_conn *c, struct evbuffer *buf, size_t start,
    size_t linelen, size_t *pos, size_t *len)
{
	struct evbuffer_ptr	 p;
	char			 line[256], rep[32];
	const char		*v, *colon;
	size_t			 n, clen, namelen, replen;
	int			 truncated, crlf = 0;
	int64_t			 val;

	*pos = start + linelen;
	n = linelen < sizeof line - 1 ? linelen : sizeof line - 1;
	truncated = linelen > n;
	if (evbuffer_ptr_set(buf, &p, start, EVBUFFER_PTR_SET) != 0 ||
	    evbuffer_copyout_from(buf, &p, line, n) != (ev_ssize_t)n) {
		c->state = API_G_OFF;
		return;
	}
	line[n] = '\0';
	/* The content without "\n" or "\r\n". */
	clen = linelen - 1;
	if (!truncated && clen > 0 && line[clen - 1] == '\r') {
		clen--;
		crlf = 1;
	}
	if (truncated)
		clen = n;
	else
		line[clen] = '\0';

	if (c->state == API_G_LINE0) {
		if (clen == 0)
			return;		/* empty lines before a request */
		c->body_method = api_guard_body_method(line, clen);
		c->state = API_G_HEADERS;
		return;
	}

	if (clen == 0 && !truncated) {
		api_guard_end(c, buf, start, pos, len);
		return;
	}
	if (line[0] == ' ' || line[0] == '\t')
		return;		/* obs-fold: evhttp extends the last field */
	if ((colon = memchr(line, ':', clen)) == NULL)
		return;		/* evhttp refuses the request */
	namelen = (size_t)(colon - line);
	v = colon + 1;

	if (namelen == 14 && strncasecmp(line, "Content-Length", 14) == 0) {
		if (c->have_cl)
			return;		/* evhttp uses the first one */
		c->have_cl = 1;
		if (truncated) {
			c->state = API_G_OFF;
			return;
		}
		/* evhttp: strtoll on the value without surrounding LWS. */
		v += strspn(v, " \t");
		if (*v < '0' || *v > '9') {
			c->state = API_G_OFF;	/* evhttp decides (400) */
			return;
		}
		for (val = 0; *v >= '0' && *v <= '9'; v++) {
			if (val > (INT64_MAX - 9) / 10) {
				c->state = API_G_OFF;
				return;
			}
			val = val * 10 + (*v - '0');
		}
		if (v[strspn(v, " \t")] != '\0') {
			c->state = API_G_OFF;
			return;
		}
		c->length = val;
		if (c->body_method && (uint64_t)val > c->api->body_max) {
			replen = (size_t)snprintf(rep, sizeof rep,
			    "Content-Length: 0%s", crlf ? "\r\n" : "\n");
			api_buf_splice(buf, start, linelen, rep, replen);
			*len = *len - linelen + replen;
			*pos = start + replen;
			c->oversize = 1;
		}
	} else if (namelen == 17 &&
	    strncasecmp(line, "Transfer-Encoding", 17) == 0) {
		if (c->have_te)
			return;
		c->have_te = 1;
		if (truncated) {
			c->state = API_G_OFF;
			return;
		}
		v += strspn(v, " ");
		n = strlen(v);
		while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
			n--;
		c->chunked = n == 7 && strncasecmp(v, "chunked", 7) == 0;
	} else if (namelen == 6 && strncasecmp(line, "Expect", 6) == 0)
		c->expect = 1;
}

/* The blank line ending a header section starting at `start'. */
static void
api_guard_end(struct api_conn *c, struct evbuffer *buf, size_t start,
    size_t *pos, size_t *len)
{
	char	 mark[128];
	size_t	 mlen;
	int	 close_after;

	if (c->oversize) {
		/* A client waiting on "100 Continue" never sends the body;
		 * a chunked one is framed by evhttp: close after either. */
		close_after = c->expect || c->chunked;
		mlen = (size_t)snprintf(mark, sizeof mark, "%s: %s%s\r\n",
		    API_OVERSIZE_HDR, c->api->marker,
		    close_after ? " close" : "");
		api_buf_splice(buf, start, 0, mark, mlen);
		*pos += mlen;
		*len += mlen;
		if (c->chunked)
			c->state = API_G_OFF;
		else {
			c->state = API_G_DISCARD;
			c->remaining = c->length;
		}
		return;
	}
	if (c->body_method && c->chunked) {
		c->state = API_G_OFF;
		return;
	}
	if (c->body_method && c->have_cl && c->length > 0) {
		c->state = API_G_BODY;
		c->remaining = c->length;
		return;
	}
	api_guard_reset(c);
}

/* Ready for the next request line. */
static void
api_guard_reset(struct api_conn *c)
{
	c->state = API_G_LINE0;
	c->body_method = c->have_cl = c->have_te = 0;
	c->chunked = c->expect = c->oversize = 0;
	c->partial = 0;
	c->length = c->remaining = 0;
}

/*
 * Does evhttp 2.1 read a body for this request line's method?  It reads a
 * Content-Length body for every method it knows except HEAD and TRACE,
 * and none for a method it does not know (the names are case-sensitive).
 */
static int
api_guard_body_method(const char *line, size_t len)
{
	static const char	*with_body[] = {
		"GET", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT"
	};
	size_t			 i, m;

	m = strcspn(line, " ");
	if (m > len)
		m = len;
	for (i = 0; i < nitems(with_body); i++)
		if (strlen(with_body[i]) == m &&
		    strncmp(line, with_body[i], m) == 0)
			return 1;
	return 0;
}

/* Replace len bytes at off in buf by rep (replen bytes; may be 0). */
static void
api_buf_splice(struct evbuffer *buf, size_t off, size_t len,
    const char *rep, size_t replen)
{
	struct evbuffer	*tmp;

	if ((tmp = evbuffer_new()) == NULL)
		log_fatalx("http: evbuffer_new failed");
	if (evbuffer_remove_buffer(buf, tmp, off) != (int)off ||
	    evbuffer_drain(buf, len) != 0 ||
	    (replen > 0 && evbuffer_add(tmp, rep, replen) != 0) ||
	    evbuffer_add_buffer(tmp, buf) != 0 ||
	    evbuffer_add_buffer(buf, tmp) != 0)
		log_fatalx("http: cannot edit an input buffer");
	evbuffer_free(tmp);
}

/* Did the guard mark this request as over the bound?  *close_r: close. */
static int
api_oversize(struct api *api, struct evhttp_request *req, int *close_r)
{
	struct evkeyvalq	*h = evhttp_request_get_input_headers(req);
	struct evkeyval		*kv;

	*close_r = 0;
	TAILQ_FOREACH(kv, h, next) {
		if (strcasecmp(kv->key, API_OVERSIZE_HDR) != 0 ||
		    strlen(kv->value) < API_MARKER_HEX ||
		    !hash_equal(kv->value, api->marker, API_MARKER_HEX))
			continue;
		*close_r = strcmp(kv->value + API_MARKER_HEX, " close") == 0;
		return 1;
	}
	return 0;
}

/* Every request: route, check the method, authenticate, hand over. */
static void
api_dispatch(struct evhttp_request *req, void *arg)
{
	struct api		*api = arg;
	struct api_req		*ar;
	struct store_client	*client = NULL;
	const struct evhttp_uri	*uri;
	enum evhttp_cmd_type	 cmd = evhttp_request_get_command(req);
	enum api_route		 route = API_R_NONE;
	const char		*path = NULL, *allow;
	int64_t			 id = 0;
	int			 close_after, is_get;

	ar = xcalloc(1, sizeof *ar);
	ar->api = api;
	ar->req = req;
	ar->id = ++api->next_id;
	ar->t0 = util_now_ms();
	ar->method = api_method_name(cmd);
	if ((uri = evhttp_request_get_evhttp_uri(req)) != NULL)
		path = evhttp_uri_get_path(uri);
	if (path == NULL || *path == '\0')
		path = "/";
	log_escape(ar->path, sizeof ar->path, path, strlen(path));

	if (api_oversize(api, req, &close_after)) {
		if (close_after)
			api_header(ar, "Connection", "close");
		api_error(ar, 413, "too_large", NULL,
		    "the request body is larger than %zu bytes",
		    api->body_max);
		return;
	}

	if (strcmp(path, "/healthz") == 0)
		route = API_R_HEALTH;
	else if (strcmp(path, "/metrics") == 0)
		route = API_R_METRICS;
	else if (strcmp(path, "/v1/letters") == 0)
		route = API_R_LETTERS;
	else if (strncmp(path, "/v1/letters/", 12) == 0 &&
	    path[12] >= '1' && path[12] <= '9' &&
	    util_parse_i64(path + 12, 1, INT64_MAX, &id) == 0)
		route = API_R_LETTER;
	else if (strncmp(path, "/v1/threads/", 12) == 0 &&
	    path[12] >= '1' && path[12] <= '9' &&
	    util_parse_i64(path + 12, 1, INT64_MAX, &id) == 0)
		route = API_R_THREAD;
	else if (strcmp(path, "/v1/replies") == 0)
		route = API_R_REPLIES;
	if (route == API_R_NONE) {
		api_error(ar, 404, "not_found", NULL, "no such resource");
		return;
	}

	is_get = cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD;
	/* Reading content is audited: no HEAD, which would read unseen. */
	if (route == API_R_LETTERS)
		allow = "POST";
	else if (route == API_R_THREAD || route == API_R_REPLIES)
		allow = "GET";
	else
		allow = "GET, HEAD";
	if (route == API_R_LETTERS ? cmd != EVHTTP_REQ_POST :
	    route == API_R_THREAD || route == API_R_REPLIES ?
	    cmd != EVHTTP_REQ_GET : !is_get) {
		api_header(ar, "Allow", allow);
		api_error(ar, 405, "method_not_allowed", NULL,
		    "use %s for this resource", allow);
		return;
	}

	if (route == API_R_HEALTH) {
		api_health(ar);
		return;
	}
	if (route == API_R_METRICS) {
		api_metrics(ar);
		return;
	}
	if (api_auth(ar, &client) != 0)
		return;
	if (route == API_R_LETTER)
		api_letter_get(ar, client, id);
	else if (route == API_R_THREAD || route == API_R_REPLIES)
		api_replies_route(ar, client, route, id);
	else
		api_letter_post(ar, client);
	store_client_free(&client);
}

/* GET /healthz: the daemon takes work and the store answers. */
static void
api_health(struct api_req *ar)
{
	struct daemon		*d = ar->api->d;
	struct store_practice	*p = NULL;
	const char		*error = NULL;
	int			 rc;

	if (d->draining) {
		api_header(ar, "Retry-After", API_RETRY_AFTER);
		api_error(ar, 503, "shutting_down", NULL,
		    "the daemon is shutting down");
		return;
	}
	/* A trivial indexed query: no row 0 exists, so NOTFOUND is fine. */
	rc = store_practice_get(d->store, 0, &p, &error);
	store_practice_free(&p);
	if (rc != STORE_OK && rc != STORE_NOTFOUND) {
		log_warnx("http req=%llu healthz: store: %s",
		    (unsigned long long)ar->id, error);
		api_header(ar, "Retry-After", API_RETRY_AFTER);
		api_error(ar, 503, "unavailable", NULL,
		    "the store does not answer");
		return;
	}
	api_reply(ar, 200, json_pack("{s:s}", "status", "ok"));
}

/*
 * GET /metrics: Prometheus text format, counts and ages only (no ids, no
 * names).  Unauthenticated like /healthz: it is for the monitoring on the
 * surgery's network.
 */
static void
api_metrics(struct api_req *ar)
{
	struct daemon		*d = ar->api->d;
	struct store_queue_stats qs;
	struct submit_stats	 ss;
	struct queue_stats	 qq;
	struct store_reply_stats rs;
	const char		*error = NULL;
	char			*out, *base;
	int64_t			 now = util_time();

	memset(&ss, 0, sizeof(ss));
	memset(&qq, 0, sizeof(qq));
	if (store_queue_stats(d->store, &qs, &error) != STORE_OK ||
	    store_reply_stats(d->store, &rs, &error) != STORE_OK) {
		log_warnx("http req=%llu metrics: store: %s",
		    (unsigned long long)ar->id, error);
		api_header(ar, "Retry-After", API_RETRY_AFTER);
		api_error(ar, 503, "unavailable", NULL,
		    "the store does not answer");
		return;
	}
	if (d->submit != NULL)
		submit_get_stats(d->submit, &ss);
	if (d->queue != NULL)
		queue_get_stats(d->queue, &qq);
	xasprintf(&base,
	    "# HELP sealpost_deliveries Deliveries by state.\n"
	    "# TYPE sealpost_deliveries gauge\n"
	    "sealpost_deliveries{state=\"queued\"} %lld\n"
	    "sealpost_deliveries{state=\"sending\"} %lld\n"
	    "sealpost_deliveries{state=\"deferred\"} %lld\n"
	    "sealpost_deliveries{state=\"held\"} %lld\n"
	    "sealpost_deliveries{state=\"sent\"} %lld\n"
	    "sealpost_deliveries{state=\"failed\"} %lld\n"
	    "sealpost_deliveries{state=\"expired\"} %lld\n"
	    "sealpost_deliveries{state=\"cancelled\"} %lld\n"
	    "# HELP sealpost_oldest_undelivered_seconds Age of the oldest "
	    "open delivery (0: none).\n"
	    "# TYPE sealpost_oldest_undelivered_seconds gauge\n"
	    "sealpost_oldest_undelivered_seconds %lld\n"
	    "# HELP sealpost_paper_open Letters in the paper queue not yet "
	    "posted.\n"
	    "# TYPE sealpost_paper_open gauge\n"
	    "sealpost_paper_open %lld\n"
	    "# HELP sealpost_alerts_queued Alert mails waiting to be sent.\n"
	    "# TYPE sealpost_alerts_queued gauge\n"
	    "sealpost_alerts_queued %lld\n"
	    "# HELP sealpost_callbacks_queued Webhook callbacks waiting.\n"
	    "# TYPE sealpost_callbacks_queued gauge\n"
	    "sealpost_callbacks_queued %lld\n"
	    "# HELP sealpost_letters_committed_total Letters committed since "
	    "start.\n"
	    "# TYPE sealpost_letters_committed_total counter\n"
	    "sealpost_letters_committed_total %llu\n"
	    "# HELP sealpost_relay_attempts_total Delivery attempts since start "
	    "by outcome.\n"
	    "# TYPE sealpost_relay_attempts_total counter\n"
	    "sealpost_relay_attempts_total{outcome=\"sent\"} %llu\n"
	    "sealpost_relay_attempts_total{outcome=\"deferred\"} %llu\n"
	    "sealpost_relay_attempts_total{outcome=\"failed\"} %llu\n"
	    "sealpost_relay_attempts_total{outcome=\"expired\"} %llu\n"
	    "sealpost_relay_attempts_total{outcome=\"held\"} %llu\n"
	    "sealpost_relay_attempts_total{outcome=\"bounced\"} %llu\n"
	    "# HELP sealpost_relay_in_flight Deliveries being attempted.\n"
	    "# TYPE sealpost_relay_in_flight gauge\n"
	    "sealpost_relay_in_flight %llu\n",
	    (long long)qs.queued, (long long)qs.sending, (long long)qs.deferred,
	    (long long)qs.held, (long long)qs.sent, (long long)qs.failed,
	    (long long)qs.expired, (long long)qs.cancelled,
	    (long long)(qs.oldest_open > 0 && now > qs.oldest_open ?
	    now - qs.oldest_open : 0),
	    (long long)qs.paper_open, (long long)qs.alerts_queued,
	    (long long)qs.callbacks_queued,
	    (unsigned long long)ss.committed,
	    (unsigned long long)qq.sent, (unsigned long long)qq.deferred,
	    (unsigned long long)qq.failed, (unsigned long long)qq.expired,
	    (unsigned long long)qq.held, (unsigned long long)qq.bounced,
	    (unsigned long long)qq.in_flight);
	/* replies in: states, mails, the oldest reply waiting for staff */
	xasprintf(&out, "%s"
	    "# HELP sealpost_replies Patients' replies by state.\n"
	    "# TYPE sealpost_replies gauge\n"
	    "sealpost_replies{state=\"filed\"} %lld\n"
	    "sealpost_replies{state=\"quarantined\"} %lld\n"
	    "sealpost_replies{state=\"rejected\"} %lld\n"
	    "# HELP sealpost_quarantine_oldest_age_seconds Age of the oldest "
	    "quarantined reply (0: none).\n"
	    "# TYPE sealpost_quarantine_oldest_age_seconds gauge\n"
	    "sealpost_quarantine_oldest_age_seconds %lld\n"
	    "# HELP sealpost_reply_mails Mails replies caused, waiting or "
	    "failed.\n"
	    "# TYPE sealpost_reply_mails gauge\n"
	    "sealpost_reply_mails{state=\"queued\"} %lld\n"
	    "sealpost_reply_mails{state=\"failed\"} %lld\n",
	    base, (long long)rs.filed, (long long)rs.quarantined,
	    (long long)rs.rejected, (long long)(rs.oldest_quarantined > 0 &&
	    now > rs.oldest_quarantined ? now - rs.oldest_quarantined : 0),
	    (long long)rs.mails_queued, (long long)rs.mails_failed);
	free(base);
	api_reply_raw(ar, 200, "text/plain; version=0.0.4", out, strlen(out));
	free(out);
}

/* GET /v1/letters/{id}: state and deliveries, never content. */
static void
api_letter_get(struct api_req *ar, struct store_client *client, int64_t id)
{
	struct store_letter	*l = NULL;
	struct store_delivery	*dl;
	json_t			*o, *deliveries;
	const char		*error = NULL;
	size_t			 i;
	int			 rc;

	rc = store_letter_get(ar->api->d->store, id, &l, &error);
	if (rc == STORE_NOTFOUND ||
	    (rc == STORE_OK && l->practice_id != client->practice_id)) {
		store_letter_free(&l);
		api_error(ar, 404, "unknown_letter", NULL, "no such letter");
		return;
	}
	if (rc != STORE_OK) {
		api_store_error(ar, "letter get", rc, error);
		return;
	}
	deliveries = json_array();
	for (i = 0; i < l->ndeliveries; i++) {
		dl = &l->deliveries[i];
		json_array_append_new(deliveries, json_pack(
		    "{s:I, s:o, s:o, s:I, s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
		    "id", (json_int_t)dl->id,
		    "recipient", api_jstr(dl->recipient),
		    "state", api_jstr(dl->state),
		    "attempts", (json_int_t)dl->attempts,
		    "next_attempt", api_jtime(dl->next_attempt),
		    "updated", api_jtime(dl->updated),
		    "expires", api_jtime(dl->expires),
		    "sent", dl->sent_at > 0 ? api_jtime(dl->sent_at) :
		    json_null(),
		    "smtp_code", dl->smtp_code > 0 ?
		    json_integer(dl->smtp_code) : json_null(),
		    "message_id", dl->message_id != NULL ?
		    api_jstr(dl->message_id) : json_null(),
		    "last_error", dl->last_error != NULL ?
		    api_jstr(dl->last_error) : json_null()));
	}
	o = json_pack("{s:I, s:o, s:o, s:s, s:o, s:o, s:I, s:I, s:I, s:o}",
	    "id", (json_int_t)l->id,
	    "state", api_jstr(l->state),
	    "paper_reason", l->paper_reason != NULL ?
	    api_jstr(l->paper_reason) : json_null(),
	    "priority", letter_priority_name(l->priority),
	    "created", api_jtime(l->created),
	    "channel", api_jstr(l->channel),
	    "patient", (json_int_t)l->patient_id,
	    "author", (json_int_t)l->author_id,
	    "sealed_size", (json_int_t)l->sealed_len,
	    "deliveries", deliveries);
	store_letter_free(&l);
	api_reply(ar, 200, o);
}

/*
 * The query string of a GET: only the parameters in names (NULL-ended),
 * each at most once, each an integer in [lo[i], hi[i]]; vals holds the
 * defaults and gets the values.  0, or -1 after answering 400 or 422.
 */
static int
api_query(struct api_req *ar, const char *const *names, int64_t *vals,
    const int64_t *lo, const int64_t *hi)
{
	const struct evhttp_uri	*uri = evhttp_request_get_evhttp_uri(ar->req);
	struct evkeyvalq	 q;
	struct evkeyval		*kv;
	const char		*qs;
	char			 name[33];
	unsigned		 seen = 0;
	size_t			 i, k;
	int			 rc = 0;

	if (uri == NULL || (qs = evhttp_uri_get_query(uri)) == NULL ||
	    *qs == '\0')
		return 0;
	TAILQ_INIT(&q);
	if (evhttp_parse_query_str(qs, &q) != 0) {
		evhttp_clear_headers(&q);
		api_error(ar, 400, "malformed_query", NULL,
		    "the query string does not parse");
		return -1;
	}
	TAILQ_FOREACH(kv, &q, next) {
		for (i = 0; names[i] != NULL; i++)
			if (strcmp(kv->key, names[i]) == 0)
				break;
		if (names[i] == NULL) {
			/* The name is untrusted: printable ASCII, bounded. */
			for (k = 0; kv->key[k] != '\0' && k < sizeof name - 1;
			    k++)
				name[k] = kv->key[k] > ' ' && kv->key[k] < 0x7f ?
				    kv->key[k] : '?';
			name[k] = '\0';
			api_error(ar, 422, "invalid_field", name,
			    "unknown query parameter");
			rc = -1;
			break;
		}
		if (seen & (1u << i)) {
			api_error(ar, 422, "invalid_field", names[i],
			    "given more than once");
			rc = -1;
			break;
		}
		seen |= 1u << i;
		if (util_parse_i64(kv->value, lo[i], hi[i], &vals[i]) != 0) {
			api_error(ar, 422, "invalid_field", names[i],
			    "must be an integer from %lld to %lld",
			    (long long)lo[i], (long long)hi[i]);
			rc = -1;
			break;
		}
	}
	evhttp_clear_headers(&q);
	return rc;
}

/*
 * GET /v1/threads/{id}[?since=R] and GET /v1/replies?since=R&limit=N:
 * check the query here, then hand the read to the reader thread.
 */
static void
api_replies_route(struct api_req *ar, struct store_client *client,
    enum api_route route, int64_t id)
{
	static const char *const names[] = { "since", "limit", NULL };
	static const char *const tnames[] = { "since", NULL };
	static const int64_t	 lo[] = { 0, 1 };
	static const int64_t	 hi[] = { INT64_MAX, API_REPLIES_MAX };
	struct api		*api = ar->api;
	struct api_rjob		*job;
	struct evhttp_connection *evcon;
	int64_t			 vals[2] = { 0, API_REPLIES_LIMIT };

	if (api_query(ar, route == API_R_THREAD ? tnames : names, vals, lo,
	    hi) != 0)
		return;
	if (api->rqueued >= API_READER_QUEUE) {
		log_warnx("http req=%llu reader queue full (%d)",
		    (unsigned long long)ar->id, api->rqueued);
		api_header(ar, "Retry-After", API_RETRY_AFTER);
		api_error(ar, 503, "unavailable", NULL,
		    "too many reads waiting; retry later");
		return;
	}
	job = xcalloc(1, sizeof *job);
	job->ar = ar;
	job->req_id = ar->id;
	job->route = route;
	job->practice_id = client->practice_id;
	job->client_id = client->id;
	job->id = id;
	job->since = vals[0];
	job->limit = vals[1];

	ar->rjob = job;
	TAILQ_INSERT_TAIL(&api->pending, ar, entry);
	api->inflight++;
	if ((evcon = evhttp_request_get_connection(ar->req)) != NULL)
		evhttp_connection_set_closecb(evcon, api_conn_closed, ar);
	pthread_mutex_lock(&api->rmu);
	*api->rq_tail = job;
	api->rq_tail = &job->next;
	api->rqueued++;
	pthread_cond_signal(&api->rcv);
	pthread_mutex_unlock(&api->rmu);
}

/* The reader thread: one read at a time, answers back to the loop. */
static void *
api_reader(void *arg)
{
	struct api	*api = arg;
	struct api_rjob	*job;

	pthread_mutex_lock(&api->rmu);
	for (;;) {
		while (api->rq == NULL && !api->rstop)
			pthread_cond_wait(&api->rcv, &api->rmu);
		/* Stopping: nobody is left to answer (api_free). */
		if (api->rstop)
			break;
		job = api->rq;
		if ((api->rq = job->next) == NULL)
			api->rq_tail = &api->rq;
		job->next = NULL;
		pthread_mutex_unlock(&api->rmu);

		if (job->route == API_R_THREAD)
			api_thread_read(api, job);
		else
			api_replies_read(api, job);

		pthread_mutex_lock(&api->rmu);
		*api->rdone_tail = job;
		api->rdone_tail = &job->next;
		event_active(api->rdone_ev, 0, 0);
	}
	pthread_mutex_unlock(&api->rmu);
	return NULL;
}

/* Reads finished: answer them on the loop thread, in order. */
static void
api_reader_done(evutil_socket_t fd, short what, void *arg)
{
	struct api		*api = arg;
	struct api_rjob		*job, *next;
	struct api_req		*ar;
	struct evhttp_connection *evcon;

	pthread_mutex_lock(&api->rmu);
	job = api->rdone;
	api->rdone = NULL;
	api->rdone_tail = &api->rdone;
	pthread_mutex_unlock(&api->rmu);
	for (; job != NULL; job = next) {
		next = job->next;
		ar = job->ar;
		api->rqueued--;
		TAILQ_REMOVE(&api->pending, ar, entry);
		api->inflight--;
		ar->rjob = NULL;
		if (ar->req != NULL &&
		    (evcon = evhttp_request_get_connection(ar->req)) != NULL)
			evhttp_connection_set_closecb(evcon, NULL, NULL);
		if (job->retry)
			api_header(ar, "Retry-After", API_RETRY_AFTER);
		/* ar may be gone after this (api_reply_raw). */
		api_reply_raw(ar, job->status, "application/json", job->body,
		    strlen(job->body));
		api_rjob_free(&job);
	}
}

/* Free a read, wiping its answer (it may hold reply content). */
static void
api_rjob_free(struct api_rjob **jobp)
{
	struct api_rjob	*job = *jobp;

	if (job == NULL)
		return;
	if (job->body != NULL) {
		hash_wipe(job->body, strlen(job->body));
		free(job->body);
	}
	free(job);
	*jobp = NULL;
}

/* Reader thread: the answer of a read (body is consumed). */
static void
api_rjob_answer(struct api_rjob *job, int status, json_t *body)
{
	if (body == NULL)
		log_fatalx("http: cannot build a JSON answer");
	if ((job->body = json_dumps(body, JSON_COMPACT)) == NULL)
		log_fatalx("http: out of memory for an answer");
	json_decref(body);
	job->status = status;
}

/* Reader thread: an error answer, as api_error. */
static void
api_rjob_error(struct api_rjob *job, int status, const char *code,
    const char *msg)
{
	api_rjob_answer(job, status, api_error_json(code, NULL, msg));
}

/* Reader thread: a store call failed: 503 with Retry-After. */
static void
api_rjob_store_error(struct api_rjob *job, const char *what, int rc,
    const char *error)
{
	log_warnx("http req=%llu %s: store: %s%s",
	    (unsigned long long)job->req_id, what,
	    error != NULL ? error : "error", rc == STORE_BUSY ? " (busy)" : "");
	job->retry = 1;
	api_rjob_error(job, 503, "unavailable",
	    "the store is unavailable; retry later");
}

/*
 * Reader thread: the thread of letter job->id, the letter then its
 * replies after job->since (all states, oldest first), the filed ones
 * with their content.
 */
static void
api_thread_read(struct api *api, struct api_rjob *job)
{
	struct store_letter	*l = NULL;
	struct store_reply	*rows = NULL;
	struct store_delivery	*dv;
	struct api_content	 ct;
	json_t			*o = NULL, *msgs, *dls, *m;
	const char		*error = NULL;
	int64_t			 next = 0;
	size_t			 n = 0, i;
	int			 rc;

	memset(&ct, 0, sizeof ct);
	rc = store_letter_get(api->rstore, job->id, &l, &error);
	if (rc == STORE_NOTFOUND ||
	    (rc == STORE_OK && l->practice_id != job->practice_id)) {
		store_letter_free(&l);
		api_rjob_error(job, 404, "unknown_thread", "no such thread");
		return;
	}
	if (rc != STORE_OK) {
		api_rjob_store_error(job, "letter get", rc, error);
		return;
	}
	if ((rc = store_replies_list(api->rstore, job->practice_id, job->id,
	    NULL, job->since, API_THREAD_PAGE + 1, &rows, &n, &error)) !=
	    STORE_OK) {
		api_rjob_store_error(job, "replies list", rc, error);
		goto out;
	}
	api_content_init(&ct, api, job);

	dls = json_array();
	for (i = 0; i < l->ndeliveries; i++) {
		dv = &l->deliveries[i];
		json_array_append_new(dls, json_pack("{s:I, s:o, s:o, s:o}",
		    "id", (json_int_t)dv->id,
		    "state", api_jstr(dv->state),
		    "sent", api_jtime(dv->sent_at),
		    "updated", api_jtime(dv->updated)));
	}
	msgs = json_array();
	if (job->since == 0)
		json_array_append_new(msgs, json_pack(
		    "{s:s, s:I, s:o, s:o, s:I}",
		    "type", "letter",
		    "id", (json_int_t)l->id,
		    "created", api_jtime(l->created),
		    "state", api_jstr(l->state),
		    "author", (json_int_t)l->author_id));
	o = json_pack("{s:I, s:o, s:o, s:I, s:I, s:o, s:o, s:o}",
	    "id", (json_int_t)l->id,
	    "state", api_jstr(l->state),
	    "closed", api_jtime(l->closed),
	    "patient", (json_int_t)l->patient_id,
	    "author", (json_int_t)l->author_id,
	    "created", api_jtime(l->created),
	    "deliveries", dls,
	    "messages", msgs);
	if (o == NULL)
		log_fatalx("http: cannot build a JSON answer");
	for (i = 0; i < n && i < API_THREAD_PAGE; i++) {
		if (!api_content_room(&ct, &rows[i]))
			break;
		if ((m = api_reply_json(&ct, &rows[i], 0)) == NULL)
			goto out;
		json_array_append_new(msgs, m);
		next = rows[i].id;
	}
	/* More replies wait: "next" is the cursor for ?since=. */
	json_object_set_new(o, "more", json_boolean(i < n));
	json_object_set_new(o, "next", i < n ? json_integer(next) :
	    json_null());
	if (api_content_audit(&ct) != 0)
		goto out;
	api_rjob_answer(job, 200, o);
	o = NULL;
out:
	json_decref(o);
	api_content_clear(&ct);
	free(rows);
	store_letter_free(&l);
}

/*
 * Reader thread: the practice's filed replies after feed position
 * job->since, in the order they were filed (store_replies_feed: a reply
 * staff file from the quarantine later comes after the cursor, never
 * before it), with content; "next" is the cursor to keep.
 */
static void
api_replies_read(struct api *api, struct api_rjob *job)
{
	struct store_reply	*rows = NULL;
	struct api_content	 ct;
	json_t			*o = NULL, *list, *m;
	const char		*error = NULL;
	int64_t			 next = job->since;
	size_t			 n = 0, i, limit = (size_t)job->limit;
	int			 rc;

	memset(&ct, 0, sizeof ct);
	if ((rc = store_replies_feed(api->rstore, job->practice_id,
	    job->since, limit + 1, &rows, &n, &error)) != STORE_OK) {
		api_rjob_store_error(job, "replies feed", rc, error);
		return;
	}
	api_content_init(&ct, api, job);
	list = json_array();
	o = json_pack("{s:o}", "replies", list);
	if (o == NULL)
		log_fatalx("http: cannot build a JSON answer");
	for (i = 0; i < n && i < limit; i++) {
		if (!api_content_room(&ct, &rows[i]))
			break;
		if ((m = api_reply_json(&ct, &rows[i], 1)) == NULL)
			goto out;
		json_array_append_new(list, m);
		next = rows[i].filed_seq;
	}
	json_object_set_new(o, "next", json_integer(next));
	json_object_set_new(o, "more", json_boolean(i < n));
	/* Cut short by the size bound, not by the limit asked for. */
	json_object_set_new(o, "size_limited", json_boolean(i < n &&
	    i < limit));
	if (api_content_audit(&ct) != 0)
		goto out;
	api_rjob_answer(job, 200, o);
	o = NULL;
out:
	json_decref(o);
	api_content_clear(&ct);
	free(rows);
}

/* Start opening replies for one read. */
static void
api_content_init(struct api_content *ct, struct api *api,
    struct api_rjob *job)
{
	memset(ct, 0, sizeof *ct);
	ct->api = api;
	ct->job = job;
}

/* May this reply's content still go into the answer? */
static int
api_content_room(struct api_content *ct, const struct store_reply *r)
{
	if (strcmp(r->state, STORE_RS_FILED) != 0 || ct->opened == 0)
		return 1;
	return r->sealed_len <= API_CONTENT_BUDGET &&
	    ct->opened <= API_CONTENT_BUDGET - r->sealed_len;
}

/*
 * One reply as JSON; a filed one with its content, opened with the
 * archive identity and noted for the audit.  feed: add thread and
 * patient.  NULL after setting a 503 answer (the store failed).
 */
static json_t *
api_reply_json(struct api_content *ct, const struct store_reply *r,
    int feed)
{
	struct api_rjob		*job = ct->job;
	struct store		*s = ct->api->rstore;
	struct store_practice	*pr = NULL;
	struct replydoc		*doc = NULL;
	struct age_identity	 aid;
	json_t			*o, *atts;
	unsigned char		*blob = NULL, *clear = NULL;
	const char		*error = NULL, *outcome = "ok";
	char			 ad[64];
	size_t			 bloblen = 0, clearlen = 0, i;
	enum age_status		 as;
	int			 rc;

	o = json_pack("{s:s, s:I, s:o, s:o, s:o, s:o, s:b, s:b, s:o, s:o}",
	    "type", "reply",
	    "id", (json_int_t)r->id,
	    "state", api_jstr(r->state),
	    "reason", r->reason[0] != '\0' ? api_jstr(r->reason) :
	    json_null(),
	    "detail", r->detail[0] != '\0' ? api_jstr(r->detail) :
	    json_null(),
	    "sender", api_jstr(r->sender),
	    "urgent", r->urgent != 0,
	    "shared", r->shared != 0,
	    "received", api_jtime(r->received),
	    "from", r->from_addr[0] != '\0' ? api_jstr(r->from_addr) :
	    json_null());
	if (o == NULL)
		log_fatalx("http: cannot build a JSON answer");
	if (feed) {
		json_object_set_new(o, "thread", r->letter_id > 0 ?
		    json_integer(r->letter_id) : json_null());
		json_object_set_new(o, "patient", r->patient_id > 0 ?
		    json_integer(r->patient_id) : json_null());
		/* its place in the feed: what ?since= takes */
		json_object_set_new(o, "seq", json_integer(r->filed_seq));
	}
	if (strcmp(r->state, STORE_RS_FILED) != 0 ||
	    r->practice_id != job->practice_id)
		return o;

	if (ct->sec.key == NULL && !ct->sec_failed) {
		rc = store_practice_get(s, job->practice_id, &pr, &error);
		if (rc != STORE_OK) {
			api_rjob_store_error(job, "practice get", rc,
			    rc == STORE_NOTFOUND ?
			    "the client's practice is missing" : error);
			json_decref(o);
			return NULL;
		}
		snprintf(ad, sizeof ad, "practice:%lld",
		    (long long)job->practice_id);
		if (keyring_identity_unwrap(ct->api->keyring, ad,
		    pr->archive_wrapped, pr->archive_wrapped_len, &ct->sec,
		    &error) != 0) {
			log_warnx("http req=%llu practice=%lld: archive "
			    "identity: %s", (unsigned long long)job->req_id,
			    (long long)job->practice_id, error);
			ct->sec_failed = 1;
		}
		store_practice_free(&pr);
	}
	if (ct->sec_failed) {
		outcome = "archive key unusable";
		goto unreadable;
	}
	rc = store_reply_sealed(s, r->id, &blob, &bloblen, &error);
	if (rc != STORE_OK) {
		api_rjob_store_error(job, "reply sealed", rc, error);
		json_decref(o);
		return NULL;
	}
	ct->opened += bloblen;
	memset(&aid, 0, sizeof aid);
	aid.type = AGE_IDENTITY_X25519;
	aid.x25519_sk = ct->sec.key;
	as = age_decrypt(&aid, 1, blob, bloblen, 0, &clear, &clearlen, &error);
	free(blob);
	if (as != AGE_OK) {
		log_warnx("http req=%llu reply=%lld: cannot open: %s",
		    (unsigned long long)job->req_id, (long long)r->id,
		    age_status_name(as));
		outcome = "decrypt failed";
		goto unreadable;
	}
	rc = replydoc_parse(clear, clearlen, &doc, &error);
	age_free_plaintext(&clear, clearlen);
	if (rc != 0) {
		log_warnx("http req=%llu reply=%lld: %s",
		    (unsigned long long)job->req_id, (long long)r->id, error);
		outcome = "bad document";
		goto unreadable;
	}
	atts = json_array();
	for (i = 0; i < doc->natt; i++)
		json_array_append_new(atts, json_pack("{s:o, s:o, s:I}",
		    "filename", api_jstr(doc->att[i].filename),
		    "content_type", api_jstr(doc->att[i].content_type),
		    "size", (json_int_t)doc->att[i].size));
	json_object_set_new(o, "subject", api_jstr(doc->subject));
	json_object_set_new(o, "new_text", api_jstr(doc->new_text));
	json_object_set_new(o, "attachments", atts);
	replydoc_free(&doc);
	goto audit;

unreadable:
	/* Listed without content; staff can look with sealpostctl. */
	json_object_set_new(o, "content_error", json_string(outcome));
audit:
	ct->ids = xreallocarray(ct->ids, ct->nids + 1, sizeof *ct->ids);
	ct->outcomes = xreallocarray(ct->outcomes, ct->nids + 1,
	    sizeof *ct->outcomes);
	ct->ids[ct->nids] = r->id;
	ct->outcomes[ct->nids++] = outcome;
	return o;
}

/*
 * The audit rows of the replies opened for this answer, in one
 * transaction, before anything is sent.  0, or -1 after setting a 503
 * answer.
 */
static int
api_content_audit(struct api_content *ct)
{
	struct store	*s = ct->api->rstore;
	const char	*error = NULL;
	char		 actor[32], object[32];
	size_t		 i;
	int		 rc;

	if (ct->nids == 0)
		return 0;
	snprintf(actor, sizeof actor, "client:%lld",
	    (long long)ct->job->client_id);
	if ((rc = store_begin(s, &error)) != STORE_OK) {
		api_rjob_store_error(ct->job, "audit begin", rc, error);
		return -1;
	}
	for (i = 0; i < ct->nids; i++) {
		snprintf(object, sizeof object, "reply:%lld",
		    (long long)ct->ids[i]);
		if ((rc = store_audit(s, actor, "reply.read", object,
		    ct->outcomes[i], &error)) != STORE_OK) {
			store_rollback(s);
			api_rjob_store_error(ct->job, "audit", rc, error);
			return -1;
		}
	}
	if ((rc = store_commit(s, &error)) != STORE_OK) {
		store_rollback(s);
		api_rjob_store_error(ct->job, "audit commit", rc, error);
		return -1;
	}
	return 0;
}

/* Wipe the archive key and free the audit list. */
static void
api_content_clear(struct api_content *ct)
{
	if (ct->sec.key != NULL)
		keyring_secret_free(&ct->sec);
	free(ct->outcomes);
	free(ct->ids);
	memset(ct, 0, sizeof *ct);
}

/* POST /v1/letters: check, look up, seal-and-commit through the pipeline. */
static void
api_letter_post(struct api_req *ar, struct store_client *client)
{
	struct api		*api = ar->api;
	struct daemon		*d = api->d;
	struct evhttp_request	*req = ar->req;
	struct evkeyvalq	*in = evhttp_request_get_input_headers(req);
	struct evbuffer		*body_buf = evhttp_request_get_input_buffer(req);
	struct letter_request	 lr;
	struct letter_error	 lerr;
	struct store_patient	*pt = NULL;
	struct store_clinician	*cl = NULL;
	struct store_practice	*pr = NULL;
	struct submit_job	*job;
	struct evhttp_connection *evcon;
	unsigned char		 req_hash[HASH_SHA256_LEN], seen[32];
	unsigned char		 rcpt[SUBMIT_MAX_RECIPIENTS][32];
	const char		*ctype, *key, *error = NULL;
	char			*body;
	size_t			 len, nrcpt = 0;
	int64_t			 letter_id;
	int			 rc;

	memset(&lr, 0, sizeof lr);
	if (d->draining) {
		api_header(ar, "Retry-After", API_RETRY_AFTER);
		api_error(ar, 503, "shutting_down", NULL,
		    "the daemon is shutting down; retry later");
		return;
	}
	ctype = evhttp_find_header(in, "Content-Type");
	if (ctype == NULL || api_header_count(req, "Content-Type") != 1 ||
	    !api_json_ctype(ctype)) {
		api_error(ar, 415, "unsupported_media_type", NULL,
		    "Content-Type must be application/json");
		return;
	}
	key = evhttp_find_header(in, "Idempotency-Key");
	if (key != NULL && (api_header_count(req, "Idempotency-Key") != 1 ||
	    !api_idem_valid(key))) {
		api_error(ar, 422, "invalid_field", "Idempotency-Key",
		    "must be one header of 1 to %d printable ASCII characters",
		    API_IDEM_MAX);
		return;
	}

	len = evbuffer_get_length(body_buf);
	if (len > api->body_max) {
		/* The guard and evhttp's bound make this unreachable. */
		api_error(ar, 413, "too_large", NULL,
		    "the request body is larger than %zu bytes",
		    api->body_max);
		return;
	}
	body = len > 0 ? (char *)evbuffer_pullup(body_buf, -1) : (char *)"";
	if (body == NULL)
		log_fatalx("http: evbuffer_pullup failed");
	hash_sha256(body, len, req_hash);

	/* A repeat gets the first answer; the commit settles races. */
	if (key != NULL) {
		rc = store_idem_lookup(d->store, client->id, key, seen,
		    &letter_id, &error);
		if (rc == STORE_OK) {
			hash_wipe(body, len);
			evbuffer_drain(body_buf, len);
			if (hash_equal(seen, req_hash, 32))
				api_accepted(ar, letter_id);
			else
				api_error(ar, 409, "idempotency_conflict",
				    "Idempotency-Key", "this key was used "
				    "for a different request");
			return;
		}
		if (rc != STORE_NOTFOUND) {
			hash_wipe(body, len);
			evbuffer_drain(body_buf, len);
			api_store_error(ar, "idempotency lookup", rc, error);
			return;
		}
	}

	rc = letter_request_parse(body, len, &api->body_lim, &lr, &lerr);
	/* The clear body is not needed any more: wipe it now. */
	hash_wipe(body, len);
	evbuffer_drain(body_buf, len);
	if (rc != 0 ||
	    letter_doc_validate(lr.doc, &api->doc_lim, &lerr) != 0) {
		letter_request_clear(&lr);
		api_error(ar, lerr.status != 0 ? lerr.status : 422,
		    lerr.code[0] != '\0' ? lerr.code : "invalid_letter",
		    lerr.field, "%s", lerr.message);
		return;
	}

	if (lr.practice_id != 0 && lr.practice_id != client->practice_id) {
		api_error(ar, 403, "forbidden", "practice",
		    "this client may only submit for its own practice");
		goto out;
	}
	rc = store_patient_get(d->store, lr.patient_id, &pt, &error);
	if (rc == STORE_NOTFOUND ||
	    (rc == STORE_OK && pt->practice_id != client->practice_id)) {
		api_error(ar, 404, "unknown_patient", "patient",
		    "no such patient");
		goto out;
	}
	if (rc != STORE_OK) {
		api_store_error(ar, "patient get", rc, error);
		goto out;
	}
	rc = store_clinician_get(d->store, lr.author_id, &cl, &error);
	if (rc == STORE_NOTFOUND || (rc == STORE_OK &&
	    (cl->practice_id != client->practice_id || !cl->active))) {
		api_error(ar, 422, "invalid_field", "author",
		    "must be an active clinician of the practice");
		goto out;
	}
	if (rc != STORE_OK) {
		api_store_error(ar, "clinician get", rc, error);
		goto out;
	}
	rc = store_practice_get(d->store, client->practice_id, &pr, &error);
	if (rc != STORE_OK) {
		api_store_error(ar, "practice get", rc == STORE_NOTFOUND ?
		    STORE_ERROR : rc, rc == STORE_NOTFOUND ?
		    "the client's practice is missing" : error);
		goto out;
	}

	/* Sealed for the patient (and their own age key), author, archive. */
	if (api_key_unset(pt->pk) || api_key_unset(cl->pk) ||
	    api_key_unset(pr->archive_pk)) {
		log_warnx("http req=%llu patient=%lld author=%lld "
		    "practice=%lld: a party has no identity key",
		    (unsigned long long)ar->id, (long long)pt->id,
		    (long long)cl->id, (long long)pr->id);
		api_error(ar, 500, "internal_error", NULL,
		    "a party of this letter has no identity key");
		goto out;
	}
	memcpy(rcpt[nrcpt++], pt->pk, 32);
	if (pt->age_recipient != NULL && pt->age_recipient[0] != '\0') {
		if (age_recipient_parse(pt->age_recipient, rcpt[nrcpt]) != 0) {
			log_warnx("http req=%llu patient=%lld: the patient's "
			    "age recipient does not parse",
			    (unsigned long long)ar->id, (long long)pt->id);
			api_error(ar, 500, "internal_error", NULL,
			    "the patient's own age recipient is invalid");
			goto out;
		}
		nrcpt++;
	}
	memcpy(rcpt[nrcpt++], cl->pk, 32);
	memcpy(rcpt[nrcpt++], pr->archive_pk, 32);

	job = submit_job_new();
	job->practice_id = client->practice_id;
	job->client_id = client->id;
	job->patient_id = pt->id;
	job->author_id = cl->id;
	job->priority = lr.priority;
	job->channel = "http";
	job->idem_key = key != NULL ? xstrdup(key) : NULL;
	memcpy(job->req_hash, req_hash, sizeof job->req_hash);
	job->address = pt->email != NULL ? xstrdup(pt->email) : NULL;
	memcpy(job->recipients, rcpt, sizeof rcpt);
	job->nrecipients = nrcpt;
	job->content = SUBMIT_DOC;
	job->doc = lr.doc;
	lr.doc = NULL;
	job->done = api_letter_done;
	job->arg = ar;

	ar->job = job;
	TAILQ_INSERT_TAIL(&api->pending, ar, entry);
	api->inflight++;
	if ((evcon = evhttp_request_get_connection(req)) != NULL)
		evhttp_connection_set_closecb(evcon, api_conn_closed, ar);
	log_debug("http req=%llu client=%lld patient=%lld author=%lld "
	    "recipients=%zu queued", (unsigned long long)ar->id,
	    (long long)client->id, (long long)pt->id, (long long)cl->id,
	    nrcpt);
	/* done() may run inside submit_enqueue(): ar is not touched after. */
	submit_enqueue(d->submit, job);

out:
	letter_request_clear(&lr);
	store_patient_free(&pt);
	store_clinician_free(&cl);
	store_practice_free(&pr);
}

/* The pipeline finished a job: answer the client if it is still there. */
static void
api_letter_done(struct submit_job *job, void *arg)
{
	struct api_req		*ar = arg;
	struct api		*api = ar->api;
	struct evhttp_connection *evcon;

	TAILQ_REMOVE(&api->pending, ar, entry);
	api->inflight--;
	ar->job = NULL;
	if (ar->req != NULL &&
	    (evcon = evhttp_request_get_connection(ar->req)) != NULL)
		evhttp_connection_set_closecb(evcon, NULL, NULL);

	switch (job->status) {
	case SUBMIT_OK:
	case SUBMIT_DUPLICATE:
		api_accepted(ar, job->letter_id);
		break;
	case SUBMIT_CONFLICT:
		api_error(ar, 409, "idempotency_conflict", "Idempotency-Key",
		    "this key was used for a different request");
		break;
	case SUBMIT_EINPUT:
		api_error(ar, job->err_status >= 400 && job->err_status < 500 ?
		    job->err_status : 422, job->err_code[0] != '\0' ?
		    job->err_code : "invalid_letter", NULL, "%s",
		    job->error[0] != '\0' ? job->error : "the letter was "
		    "refused");
		break;
	case SUBMIT_ESTORE:
		log_warnx("http req=%llu commit failed: %s",
		    (unsigned long long)ar->id, job->error);
		api_header(ar, "Retry-After", API_RETRY_AFTER);
		api_error(ar, 503, "unavailable", NULL,
		    "the letter could not be stored; retry later");
		break;
	case SUBMIT_ESHUTDOWN:
		api_header(ar, "Retry-After", API_RETRY_AFTER);
		api_error(ar, 503, "shutting_down", NULL,
		    "the daemon is shutting down; retry later");
		break;
	default:
		log_panic("api_letter_done: job status %d", (int)job->status);
	}
	submit_job_free(&job);
}

/* done() for a job whose request was dropped by api_free(). */
static void
api_discard_done(struct submit_job *job, void *arg)
{
	submit_job_free(&job);
}

/*
 * A connection closed while its request waited on the pipeline, or
 * before its answer was written.
 */
static void
api_conn_closed(struct evhttp_connection *evcon, void *arg)
{
	struct api_req	*ar = arg;

	if (ar->writing) {
		/* evhttp frees the request with the connection. */
		ar->api->inflight--;
		free(ar);
		return;
	}
	if (ar->req == NULL)
		return;
	/*
	 * evhttp detaches a request the user still holds (no connection)
	 * and leaves it to us; an attached one is freed with the connection.
	 */
	if (evhttp_request_get_connection(ar->req) == NULL)
		evhttp_request_free(ar->req);
	ar->req = NULL;
	log_info("http req=%llu client=%lld connection closed while pending",
	    (unsigned long long)ar->id, (long long)ar->client_id);
}

/*
 * "Authorization: Bearer <token>" (RFC 6750 section 2.1):
 *   b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
 * 0 with *cp set, or -1 after answering 401 or 503.
 */
static int
api_auth(struct api_req *ar, struct store_client **cp)
{
	struct evkeyvalq	*in = evhttp_request_get_input_headers(ar->req);
	struct store_client	*c = NULL;
	unsigned char		 h[HASH_SHA256_LEN];
	const char		*v, *tok, *error = NULL;
	size_t			 n;
	int			 rc;

	*cp = NULL;
	if ((v = evhttp_find_header(in, "Authorization")) == NULL) {
		api_header(ar, "WWW-Authenticate", "Bearer realm=\"sealpost\"");
		api_error(ar, 401, "unauthorized", NULL,
		    "an Authorization: Bearer token is required");
		return -1;
	}
	tok = v + 6;
	n = 0;
	if (strncasecmp(v, "Bearer", 6) == 0 && (*tok == ' ' || *tok == '\t')) {
		tok += strspn(tok, " \t");
		n = strspn(tok, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		    "0123456789-._~+/");
		n += strspn(tok + n, "=");
		if (tok[n] != '\0')
			n = 0;
	}
	if (n == 0 || n > API_TOKEN_MAX ||
	    api_header_count(ar->req, "Authorization") != 1) {
		api_header(ar, "WWW-Authenticate",
		    "Bearer realm=\"sealpost\", error=\"invalid_request\"");
		api_error(ar, 401, "unauthorized", NULL,
		    "malformed Authorization header: expected \"Bearer "
		    "<token>\"");
		return -1;
	}
	hash_sha256(tok, n, h);
	rc = store_client_by_token(ar->api->d->store, h, &c, &error);
	if (rc == STORE_OK && !c->revoked) {
		ar->client_id = c->id;
		*cp = c;
		return 0;
	}
	store_client_free(&c);
	if (rc == STORE_OK || rc == STORE_NOTFOUND) {
		api_header(ar, "WWW-Authenticate",
		    "Bearer realm=\"sealpost\", error=\"invalid_token\"");
		api_error(ar, 401, "unauthorized", NULL,
		    "unknown or revoked token");
		return -1;
	}
	api_store_error(ar, "client lookup", rc, error);
	return -1;
}

/*
 * Content-Type: application/json, optionally with charset=utf-8:
 *   media-type = type "/" subtype *( OWS ";" OWS parameter )
 */
static int
api_json_ctype(const char *v)
{
	const char	*p = v, *e;
	size_t		 n;

	p += strspn(p, " \t");
	if (strncasecmp(p, "application/json", 16) != 0)
		return 0;
	p += 16;
	for (;;) {
		p += strspn(p, " \t");
		if (*p == '\0')
			return 1;
		if (*p++ != ';')
			return 0;
		p += strspn(p, " \t");
		if (*p == '\0')
			return 1;
		if (strncasecmp(p, "charset=", 8) != 0)
			return 0;
		p += 8;
		e = p;
		if (*e == '"') {
			if (strncasecmp(e + 1, "utf-8\"", 6) != 0)
				return 0;
			n = 7;
		} else {
			if (strncasecmp(e, "utf-8", 5) != 0)
				return 0;
			n = 5;
		}
		p = e + n;
	}
}

/* Idempotency-Key: 1 to API_IDEM_MAX printable ASCII characters. */
static int
api_idem_valid(const char *k)
{
	size_t	 i;

	for (i = 0; k[i] != '\0'; i++)
		if (i >= API_IDEM_MAX || k[i] < 0x20 || k[i] > 0x7e)
			return 0;
	return i > 0;
}

/* An all-zero public key means the identity was never set. */
static int
api_key_unset(const unsigned char *pk)
{
	unsigned char	 acc = 0;
	size_t		 i;

	for (i = 0; i < 32; i++)
		acc |= pk[i];
	return acc == 0;
}

/* 202 with the letter's id: the same bytes for the first answer and any
 * idempotent repeat. */
static void
api_accepted(struct api_req *ar, int64_t id)
{
	char	 url[64];

	snprintf(url, sizeof url, "/v1/letters/%lld", (long long)id);
	api_header(ar, "Location", url);
	api_reply(ar, 202, json_pack("{s:I, s:s, s:s}", "id", (json_int_t)id,
	    "status", "accepted", "status_url", url));
}

/* Answer {"error":{"code","message"[,"field"]}}. */
static void
api_error(struct api_req *ar, int status, const char *code,
    const char *field, const char *fmt, ...)
{
	va_list	 ap;
	char	 msg[256];

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	api_reply(ar, status, api_error_json(code, field, msg));
}

/* {"error":{"code","message"[,"field"]}} (any thread). */
static json_t *
api_error_json(const char *code, const char *field, const char *msg)
{
	json_t	*e;

	e = json_pack("{s:o, s:o}", "code", api_jstr(code), "message",
	    api_jstr(msg));
	if (e != NULL && field != NULL && field[0] != '\0')
		json_object_set_new(e, "field", api_jstr(field));
	return json_pack("{s:o}", "error", e);
}

/* A store call failed: 503 with Retry-After (the reason is logged). */
static void
api_store_error(struct api_req *ar, const char *what, int rc,
    const char *error)
{
	log_warnx("http req=%llu %s: store: %s%s", (unsigned long long)ar->id,
	    what, error != NULL ? error : "error",
	    rc == STORE_BUSY ? " (busy)" : "");
	api_header(ar, "Retry-After", API_RETRY_AFTER);
	api_error(ar, 503, "unavailable", NULL,
	    "the store is unavailable; retry later");
}

/*
 * Send a JSON answer (body is consumed) and log the request.  ar lives on
 * until the answer is flushed (api_sent) or the connection dies
 * (api_conn_closed); either may run inside evhttp_send_reply().
 */
static void
api_reply(struct api_req *ar, int status, json_t *body)
{
	char	*s;

	if (body == NULL)
		log_fatalx("http: cannot build a JSON answer");
	if ((s = json_dumps(body, JSON_COMPACT)) == NULL)
		log_fatalx("http: out of memory for an answer");
	json_decref(body);
	api_reply_raw(ar, status, "application/json", s, strlen(s));
	hash_wipe(s, strlen(s));
	free(s);
}

/* Send a body (a newline is added) and log the request. */
static void
api_reply_raw(struct api_req *ar, int status, const char *ctype,
    const char *s, size_t len)
{
	struct evhttp_request	*req = ar->req;
	struct evhttp_connection *evcon;
	struct evbuffer		*buf = NULL;
	char			 idbuf[24], *copy;

	if (req != NULL) {
		snprintf(idbuf, sizeof idbuf, "%llu",
		    (unsigned long long)ar->id);
		api_header(ar, "Content-Type", ctype);
		api_header(ar, "Cache-Control", "no-store");
		api_header(ar, "X-Request-Id", idbuf);
		if (ar->api->d->draining)
			api_header(ar, "Connection", "close");
		if ((buf = evbuffer_new()) == NULL)
			log_fatalx("http: out of memory for an answer");
		/*
		 * An answer may hold reply content: our own copy, wiped
		 * when libevent lets go of it, rather than its chains.
		 */
		copy = xmalloc(len + 1);
		memcpy(copy, s, len);
		copy[len] = '\n';
		if (evbuffer_add_reference(buf, copy, len + 1,
		    api_wipe_cleanup, NULL) != 0)
			log_fatalx("http: out of memory for an answer");
	}
	api_log(ar, status);
	if (req == NULL) {
		free(ar);
		return;
	}
	if ((evcon = evhttp_request_get_connection(req)) != NULL) {
		ar->writing = 1;
		ar->api->inflight++;
		evhttp_request_set_on_complete_cb(req, api_sent, ar);
		evhttp_connection_set_closecb(evcon, api_conn_closed, ar);
	} else
		free(ar);	/* evhttp frees a detached request at once */
	/* ar may be gone from here on. */
	evhttp_send_reply(req, status, api_reason(status), buf);
	evbuffer_free(buf);
}

/* evbuffer cleanup of an answer's bytes: wipe, then free. */
static void
api_wipe_cleanup(const void *data, size_t len, void *arg)
{
	hash_wipe((void *)(uintptr_t)data, len);
	free((void *)(uintptr_t)data);
}

/* evhttp handed the whole answer to the kernel. */
static void
api_sent(struct evhttp_request *req, void *arg)
{
	struct api_req		*ar = arg;
	struct evhttp_connection *evcon;

	/* With "Connection: close" evhttp frees the connection next. */
	if ((evcon = evhttp_request_get_connection(req)) != NULL)
		evhttp_connection_set_closecb(evcon, NULL, NULL);
	ar->api->inflight--;
	free(ar);
}

/* The request's log line. */
static void
api_log(struct api_req *ar, int status)
{
	if (ar->client_id != 0)
		log_info("http req=%llu client=%lld method=%s path=%s "
		    "status=%d ms=%llu%s", (unsigned long long)ar->id,
		    (long long)ar->client_id, ar->method, ar->path, status,
		    (unsigned long long)(util_now_ms() - ar->t0),
		    ar->req == NULL ? " closed=1" : "");
	else
		log_info("http req=%llu client=- method=%s path=%s "
		    "status=%d ms=%llu", (unsigned long long)ar->id,
		    ar->method, ar->path, status,
		    (unsigned long long)(util_now_ms() - ar->t0));
}

/* Add an answer header, unless the client is gone. */
static void
api_header(struct api_req *ar, const char *name, const char *value)
{
	if (ar->req != NULL)
		evhttp_add_header(evhttp_request_get_output_headers(ar->req),
		    name, value);
}

/* How many request headers are called `name'. */
static int
api_header_count(struct evhttp_request *req, const char *name)
{
	struct evkeyvalq	*h = evhttp_request_get_input_headers(req);
	struct evkeyval		*kv;
	int			 n = 0;

	TAILQ_FOREACH(kv, h, next)
		if (strcasecmp(kv->key, name) == 0)
			n++;
	return n;
}

/* A JSON string, or "?" when s is not UTF-8 (never NULL). */
static json_t *
api_jstr(const char *s)
{
	json_t	*j;

	if (s == NULL)
		return json_null();
	if ((j = json_string(s)) == NULL)
		j = json_string("?");
	return j;
}

/* RFC 3339 UTC time, or null for 0 (never set). */
static json_t *
api_jtime(int64_t t)
{
	struct tm	 tm;
	time_t		 tt = (time_t)t;
	char		 buf[32];

	if (t <= 0 || gmtime_r(&tt, &tm) == NULL)
		return json_null();
	strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return json_string(buf);
}

/* The reason phrase of a status we send. */
static const char *
api_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 202: return "Accepted";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 413: return "Content Too Large";
	case 415: return "Unsupported Media Type";
	case 422: return "Unprocessable Content";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	default: return "Error";
	}
}

/* A method's name for the log. */
static const char *
api_method_name(enum evhttp_cmd_type cmd)
{
	switch (cmd) {
	case EVHTTP_REQ_GET: return "GET";
	case EVHTTP_REQ_POST: return "POST";
	case EVHTTP_REQ_HEAD: return "HEAD";
	case EVHTTP_REQ_PUT: return "PUT";
	case EVHTTP_REQ_DELETE: return "DELETE";
	case EVHTTP_REQ_OPTIONS: return "OPTIONS";
	case EVHTTP_REQ_TRACE: return "TRACE";
	case EVHTTP_REQ_CONNECT: return "CONNECT";
	case EVHTTP_REQ_PATCH: return "PATCH";
	default: return "OTHER";
	}
}
