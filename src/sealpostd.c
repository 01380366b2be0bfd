/*
 * sealpostd.c - the sealpost daemon: configuration, store, pipeline,
 * listeners, signals and systemd notification.
 *
 * Lifecycle:
 *
 *   start --config ok--> open store --> load master key --> pipeline
 *        --> listeners --> READY=1 --> run
 *   run --SIGHUP--> RELOADING=1, reload live options, READY=1 --> run
 *   run --SIGTERM/SIGINT--> STOPPING=1, close listeners, drain in-flight
 *        requests (bounded by shutdown_timeout) --> stop pipeline
 *        (in-flight commits finish) --> close store --> exit 0
 *
 * Exit status: 0 clean stop; 78 (EX_CONFIG) for a configuration or key
 * error, so systemd does not restart into the same mistake; 1 otherwise.
 * With -P the binary is the parse sandbox child instead (sandbox.c).
 */
#include "build.h"

#include <sys/resource.h>
#include <sys/select.h>
#include <sys/stat.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#ifdef HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "api.h"
#include "config.h"
#include "control.h"
#include "daemon.h"
#include "hash.h"
#include "keyring.h"
#include "letter.h"
#include "log.h"
#include "queue.h"
#include "relay.h"
#include "sandbox.h"
#include "fetch.h"
#include "intake.h"
#include "lmtpd.h"
#include "smtpd.h"
#include "store.h"
#include "submit.h"
#include "token.h"
#include "util.h"
#include "webhook.h"

#ifndef SYSCONFDIR
#define SYSCONFDIR "/etc"
#endif
#define DEFAULT_CONFIG	SYSCONFDIR "/sealpost/sealpost.conf"

static struct daemon	 d;
static struct api	*api;
static struct smtpd	*smtpd;
static struct control	*control;
static struct event	*ev_drain;
static uint64_t		 drain_deadline;

/* The IMAP intake: one worker, its intake context, and its stopper. */
static struct fetch	*fetcher;
static struct intake	*fetch_intake;
static pthread_t	 fetch_stopper;
static int		 fetch_stopping;	/* the stopper was started */
static volatile int	 fetch_stopped;		/* ... and is done */
static int		 fetch_stop_late;	/* fetch_stop timed out */

/* The LMTP intake: the listener and the intake pool behind it. */
static struct lmtpd		*lmtpd;
static struct intake_pool	*lmtp_pool;

static void		 usage(void) __attribute__((noreturn));
static void		 notify(const char *);
static void		 on_signal(evutil_socket_t, short, void *);
static void		 on_watchdog(evutil_socket_t, short, void *);
static void		 drain_start(void);
static void		 drain_check(evutil_socket_t, short, void *);
static enum log_target	 log_target_for(const char *);
static void		*ev_realloc(void *, size_t);
static void		 intake_params_fill(struct intake_params *,
			    const struct token_keys *);
static enum fetch_verdict on_fetched(void *, const struct fetch_msg *);
static int		 imap_start(const struct token_keys *, const char *);
static void		*fetch_stop_main(void *);
static void		 lmtp_submit(struct intake_job *, void *);
static int		 lmtp_start(const struct token_keys *);
static void		 ev_free(void *);

static void
usage(void)
{
	fprintf(stderr,
	    "usage: sealpostd [-dnV] [-f config]\n"
	    "  -f FILE  configuration file (default %s)\n"
	    "  -n       check the configuration and print the settings that\n"
	    "           differ from the defaults; -nn prints every setting\n"
	    "  -d       debug logging\n"
	    "  -V       print the version and exit\n", DEFAULT_CONFIG);
	exit(2);
}

/* Tell systemd, when it is listening. */
static void
notify(const char *state)
{
#ifdef HAVE_SYSTEMD
	sd_notify(0, state);
#else
	(void)state;
#endif
}

/* Where logs go: auto = the journal when systemd gave us its stream. */
static enum log_target
log_target_for(const char *opt)
{
	if (strcmp(opt, "journal") == 0)
		return LOG_TO_JOURNAL;
	if (strcmp(opt, "stderr") == 0)
		return LOG_TO_STDERR;
	return getenv("JOURNAL_STREAM") != NULL ? LOG_TO_JOURNAL :
	    LOG_TO_STDERR;
}

/*
 * libevent's allocator: buffers hold requests and mail in clear, so every
 * block is wiped before it is freed (and before realloc lets go of it).
 */
static void
ev_free(void *p)
{
	if (p == NULL)
		return;
	explicit_bzero(p, malloc_usable_size(p));
	free(p);
}

static void *
ev_realloc(void *p, size_t n)
{
	size_t	 old;
	void	*q;

	if (p == NULL)
		return malloc(n);
	if (n == 0) {
		ev_free(p);
		return NULL;
	}
	old = malloc_usable_size(p);
	if ((q = malloc(n)) == NULL)
		return NULL;
	memcpy(q, p, old < n ? old : n);
	ev_free(p);
	return q;
}

/* The status object for the control socket. */
char *
daemon_status_json(struct daemon *dm)
{
	struct submit_stats	 ss;
	struct store_stats	 st;
	struct store_queue_stats qs;
	struct queue_stats	 qq;
	struct store_reply_stats rs;
	struct fetch_stats	 fs;
	const char		*error = NULL;
	char			*out, *base, imap[400];
	size_t			 i, n;
	int			 have_store;
	int64_t			 now = util_time();

	memset(&ss, 0, sizeof(ss));
	memset(&st, 0, sizeof(st));
	memset(&qs, 0, sizeof(qs));
	memset(&qq, 0, sizeof(qq));
	memset(&rs, 0, sizeof(rs));
	memset(&fs, 0, sizeof(fs));
	if (dm->submit != NULL)
		submit_get_stats(dm->submit, &ss);
	if (dm->queue != NULL)
		queue_get_stats(dm->queue, &qq);
	have_store = store_stats(dm->store, &st, &error) == STORE_OK &&
	    store_queue_stats(dm->store, &qs, &error) == STORE_OK &&
	    store_reply_stats(dm->store, &rs, &error) == STORE_OK;
	if (fetcher != NULL) {
		fetch_get_stats(fetcher, &fs);
		/* the last error is a server's text: keep it JSON-safe ASCII */
		for (i = 0, n = strlen(fs.last_error); i < n; i++)
			if (fs.last_error[i] == '"' || fs.last_error[i] == '\\' ||
			    (unsigned char)fs.last_error[i] < 0x20 ||
			    (unsigned char)fs.last_error[i] > 0x7e)
				fs.last_error[i] = ' ';
		snprintf(imap, sizeof(imap), "{\"connected\":%s,\"idling\":%s,"
		    "\"uidvalidity\":%lu,\"fetched\":%llu,\"moved\":%llu,"
		    "\"aside\":%llu,\"kept\":%llu,\"errors\":%llu,"
		    "\"last_error\":\"%s\"}", fs.connected ? "true" : "false",
		    fs.idling ? "true" : "false", (unsigned long)fs.uidvalidity,
		    (unsigned long long)fs.fetched,
		    (unsigned long long)fs.moved, (unsigned long long)fs.aside,
		    (unsigned long long)fs.kept, (unsigned long long)fs.errors,
		    fs.last_error);
	} else
		strlcpy_sp(imap, "null", sizeof(imap));
	xasprintf(&base,
	    "{\"version\":\"%s\",\"pid\":%ld,\"uptime_s\":%llu,"
	    "\"state\":\"%s\",\"store\":\"%s\","
	    "\"submissions\":{\"received\":%llu,\"committed\":%llu,"
	    "\"duplicates\":%llu,\"rejected\":%llu,\"failed\":%llu,"
	    "\"commits\":%llu,\"pending\":%llu},"
	    "\"counts\":{\"practices\":%lld,\"clinicians\":%lld,"
	    "\"patients\":%lld,\"clients\":%lld,\"letters\":%lld,"
	    "\"deliveries_queued\":%lld,\"audit_rows\":%lld},"
	    "\"queue\":{\"queued\":%lld,\"sending\":%lld,\"deferred\":%lld,"
	    "\"held\":%lld,\"sent\":%lld,\"failed\":%lld,\"expired\":%lld,"
	    "\"cancelled\":%lld,\"oldest_open_age_s\":%lld,"
	    "\"paper_open\":%lld,\"alerts_queued\":%lld,"
	    "\"callbacks_queued\":%lld,\"in_flight\":%llu,"
	    "\"relay\":\"%s\"},"
	    "\"smtp_sessions\":%d,\"http_inflight\":%d}",
	    dm->version, (long)getpid(),
	    (unsigned long long)((util_now_ms() - dm->started_ms) / 1000),
	    dm->draining ? "draining" : "running",
	    have_store ? "ok" : "error",
	    (unsigned long long)ss.submitted, (unsigned long long)ss.committed,
	    (unsigned long long)ss.duplicates, (unsigned long long)ss.rejected,
	    (unsigned long long)ss.failed, (unsigned long long)ss.commits,
	    (unsigned long long)ss.pending,
	    (long long)st.practices, (long long)st.clinicians,
	    (long long)st.patients, (long long)st.clients,
	    (long long)st.letters, (long long)st.deliveries_queued,
	    (long long)st.audit_rows,
	    (long long)qs.queued, (long long)qs.sending, (long long)qs.deferred,
	    (long long)qs.held, (long long)qs.sent, (long long)qs.failed,
	    (long long)qs.expired, (long long)qs.cancelled,
	    (long long)(qs.oldest_open > 0 ? now - qs.oldest_open : 0),
	    (long long)qs.paper_open, (long long)qs.alerts_queued,
	    (long long)qs.callbacks_queued, (unsigned long long)qq.in_flight,
	    *dm->cfg->relay_host != '\0' ? dm->cfg->relay_host : "none",
	    smtpd != NULL ? smtpd_sessions(smtpd) : 0,
	    api != NULL ? api_inflight(api) : 0);
	/* replies in: counts, and the IMAP worker when there is one */
	xasprintf(&out, "%.*s,\"replies\":{\"filed\":%lld,\"quarantined\":%lld,"
	    "\"rejected\":%lld,\"mails_queued\":%lld,\"mails_failed\":%lld,"
	    "\"oldest_quarantined_age_s\":%lld,\"lmtp_sessions\":%d,"
	    "\"imap\":%s}}", (int)(strlen(base) - 1), base,
	    (long long)rs.filed, (long long)rs.quarantined,
	    (long long)rs.rejected, (long long)rs.mails_queued,
	    (long long)rs.mails_failed, (long long)(rs.oldest_quarantined > 0 ?
	    now - rs.oldest_quarantined : 0),
	    lmtpd != NULL ? lmtpd_sessions(lmtpd) : 0, imap);
	free(base);
	return out;
}

/* A bounce handed in over the control socket. */
struct bounce_ctx {
	void		(*answer)(void *, const char *);
	void		*ctx;
};

static void
bounce_done(struct queue_bounce *qb, void *arg)
{
	struct bounce_ctx	*bc = arg;
	static const char *const names[] = { "pending", "applied", "noted",
	    "not_report", "hostile", "tempfail" };
	char			*json, esc[256];
	const char		*p;
	size_t			 i = 0;

	/* The reason is ours or a remote MTA's status text: keep it ASCII. */
	for (p = qb->error; *p != '\0' && i < sizeof(esc) - 1; p++)
		esc[i++] = (*p == '"' || *p == '\\' || *p < 0x20 ||
		    *p > 0x7e) ? ' ' : *p;
	esc[i] = '\0';
	xasprintf(&json, "{\"ok\":%s,\"status\":\"%s\",\"delivery\":%lld,"
	    "\"letter\":%lld,\"reason\":\"%s\"}",
	    qb->status == QB_APPLIED || qb->status == QB_NOTED ? "true" :
	    "false", names[qb->status], (long long)qb->delivery_id,
	    (long long)qb->letter_id, esc);
	bc->answer(bc->ctx, json);
	free(json);
	free(bc);
	queue_bounce_free(&qb);
}

void
daemon_bounce(struct daemon *dm, const char *address, char *raw, size_t len,
    void (*answer)(void *, const char *), void *ctx)
{
	struct token_claims	 cl;
	struct queue_bounce	*qb;
	struct bounce_ctx	*bc;
	const char		*tok, *error = NULL;
	size_t			 toklen;
	enum token_result	 tr;
	char			*json;

	if (token_from_address(address, strlen(address), TOKEN_BOUNCE, &tok,
	    &toklen) != 0) {
		answer(ctx, "{\"ok\":false,\"status\":\"bad_address\","
		    "\"reason\":\"not a bounce+<token> address\"}");
		goto out;
	}
	tr = token_check(dm->tkeys, 1, TOKEN_BOUNCE, tok, toklen, util_time(),
	    &cl, &error);
	if (tr != TOKEN_OK) {
		log_warnx("bounce: token refused (%s)", token_strresult(tr));
		xasprintf(&json, "{\"ok\":false,\"status\":\"bad_token\","
		    "\"reason\":\"%s\"}", token_strresult(tr));
		answer(ctx, json);
		free(json);
		goto out;
	}
	qb = xcalloc(1, sizeof(*qb));
	bc = xcalloc(1, sizeof(*bc));
	bc->answer = answer;
	bc->ctx = ctx;
	qb->letter_id = cl.thread;
	qb->delivery_id = cl.recipient;
	qb->raw = raw;
	qb->len = len;
	qb->done = bounce_done;
	qb->arg = bc;
	queue_bounce(dm->queue, qb);
	return;
out:
	hash_wipe(raw, len);
	free(raw);
}

/* Letters were committed: the scheduler looks now. */
static void
on_committed(void *arg)
{
	struct daemon	*dm = arg;

	queue_kick(dm->queue);
}

/* Hand the live settings of the running config to the pipelines. */
static void
daemon_apply_live(struct daemon *dm)
{
	const struct config	*c = dm->cfg;
	int64_t			 lifetime[2], warn[2];

	lifetime[0] = c->queue_lifetime_routine;
	lifetime[1] = c->queue_lifetime_urgent;
	warn[0] = c->queue_warn_routine;
	warn[1] = c->queue_warn_urgent;
	if (dm->submit != NULL)
		submit_set_lifetimes(dm->submit, lifetime, warn);
	if (dm->queue != NULL)
		queue_reload(dm->queue, c->queue_retry_first,
		    c->queue_retry_max, c->queue_reply_lifetime,
		    (int)c->queue_max_active, (int)c->callbacks_timeout);
}

/*
 * A password ([relay], [imap]): the first line of a file that only the
 * owner may read (or the systemd credential cred_name).  NULL and a reason on
 * failure; the caller wipes and frees the result.
 */
static char *
read_secret(const char *path, const char *section, const char *cred_name,
    const char **error_r)
{
	static char	 cred[4096], why[200];
	struct stat	 st;
	const char	*dir, *what;
	char		 buf[1024];
	ssize_t		 n;
	size_t		 len;
	int		 fd;

	if (path == NULL || *path == '\0') {
		if ((dir = getenv("CREDENTIALS_DIRECTORY")) == NULL) {
			snprintf(why, sizeof(why), "[%s] username is set but "
			    "there is no password_file and no credential %s",
			    section, cred_name);
			*error_r = why;
			return NULL;
		}
		snprintf(cred, sizeof(cred), "%s/%s", dir, cred_name);
		path = cred;
	}
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) == -1) {
		what = "cannot open";
		goto fail;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		what = "not a regular file";
		goto fail;
	}
	if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
		close(fd);
		what = "readable by group or others (chmod 0400)";
		goto fail;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0) {
		what = "empty or unreadable";
		goto fail;
	}
	buf[n] = '\0';
	len = strcspn(buf, "\r\n");
	buf[len] = '\0';
	if (len == 0) {
		hash_wipe(buf, sizeof(buf));
		what = "empty first line";
		goto fail;
	}
	path = xstrdup(buf);
	hash_wipe(buf, sizeof(buf));
	return (char *)path;
fail:
	snprintf(why, sizeof(why), "[%s] password_file: %s", section, what);
	*error_r = why;
	return NULL;
}

/* SIGHUP: re-read the file; apply what can change live. */
void
daemon_reload(struct daemon *dm)
{
	struct config	*next = NULL;
	char		*error = NULL;
	int		 restart;

	notify("RELOADING=1");
	if (config_load(dm->cfg->path, &next, &error) != 0) {
		log_warnx("reload: configuration rejected, keeping the "
		    "running one: %s", error);
		free(error);
		notify("READY=1");
		return;
	}
	restart = config_reload_apply(dm->cfg, next);
	config_free(&next);
	daemon_apply_live(dm);
	log_init("sealpostd", log_target_for(dm->cfg->log), log_get_debug());
	log_info("reload: done, %d option(s) need a restart", restart);
	notify("READY=1");
}

/* Signal dispatch on the loop. */
static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	switch (sig) {
	case SIGHUP:
		log_info("signal: SIGHUP, reloading");
		daemon_reload(&d);
		break;
	case SIGTERM:
	case SIGINT:
		if (d.draining) {
			log_info("signal: second stop signal, stopping now");
			event_base_loopexit(d.base, NULL);
			break;
		}
		log_info("signal: %s, draining", sig == SIGTERM ? "SIGTERM" :
		    "SIGINT");
		drain_start();
		break;
	default:
		log_panic("signal: unexpected %d", (int)sig);
	}
}

/* Systemd watchdog keepalive; the loop being alive is the health signal. */
static void
on_watchdog(evutil_socket_t fd, short what, void *arg)
{
	notify("WATCHDOG=1");
}

/* Stop accepting; wait for in-flight work up to shutdown_timeout. */
static void
drain_start(void)
{
	struct timeval	 tv = { 0, 50 * 1000 };

	d.draining = 1;
	notify("STOPPING=1");
	if (api != NULL)
		api_stop_accepting(api);
	if (smtpd != NULL) {
		smtpd_stop_accepting(smtpd);
		smtpd_close_idle(smtpd);
	}
	if (lmtpd != NULL) {
		lmtpd_stop_accepting(lmtpd);
		lmtpd_close_idle(lmtpd);
	}
	drain_deadline = util_now_ms() +
	    (uint64_t)d.cfg->shutdown_timeout * 1000;
	if (fetcher != NULL && !fetch_stopping) {
		if (pthread_create(&fetch_stopper, NULL, fetch_stop_main,
		    NULL) != 0)
			log_fatal("pthread_create");
		fetch_stopping = 1;
	}
	ev_drain = event_new(d.base, -1, EV_PERSIST, drain_check, NULL);
	event_add(ev_drain, &tv);
}

/* Leave the loop when nothing is in flight, or at the deadline. */
static void
drain_check(evutil_socket_t fd, short what, void *arg)
{
	struct submit_stats	 ss;
	int			 busy = 0;

	submit_get_stats(d.submit, &ss);
	busy += (int)ss.pending;
	if (api != NULL)
		busy += api_inflight(api);
	if (smtpd != NULL) {
		smtpd_close_idle(smtpd);
		busy += smtpd_sessions(smtpd);
	}
	if (lmtpd != NULL) {
		lmtpd_close_idle(lmtpd);
		busy += lmtpd_sessions(lmtpd);
	}
	if (fetch_stopping &&
	    !__atomic_load_n(&fetch_stopped, __ATOMIC_ACQUIRE))
		busy++;
	if (busy == 0) {
		log_info("drain: nothing in flight");
		event_base_loopexit(d.base, NULL);
	} else if (util_now_ms() >= drain_deadline) {
		log_warnx("drain: shutdown_timeout reached with %d in flight; "
		    "unacknowledged work will be retried by its clients", busy);
		event_base_loopexit(d.base, NULL);
	}
}

/* The reply intake's settings from the running config. */
static void
intake_params_fill(struct intake_params *ip, const struct token_keys *tk)
{
	const struct config	*c = d.cfg;

	memset(ip, 0, sizeof(*ip));
	ip->database = c->database;
	ip->keyring = d.keyring;
	ip->tkeys = tk;
	ip->ntkeys = 1;
	ip->queue = d.queue;
	ip->parse_program = "/proc/self/exe";
	ip->parse_memory_limit = c->parse_memory_limit;
	ip->parse_timeout = c->parse_timeout;
	ip->max_size = (size_t)c->replies_max_size;
	ip->authserv_id = c->replies_authserv_id;
	ip->authserv_topmost = c->replies_authserv_topmost;
	ip->forward = c->replies_forward;
	ip->ack_window = c->replies_ack_window;
	ip->red_flags_file = c->replies_red_flags_file;
	ip->attachment_types = c->replies_attachment_types;
	ip->max_attachments = (size_t)c->max_attachments;
	ip->max_attachment_size = (size_t)c->max_attachment_size;
	ip->imap_practice = c->imap_practice;
}

/*
 * Fetch worker thread: one message from the mailbox.  It leaves the
 * mailbox (FETCH_MOVE / FETCH_ASIDE) only when intake_process() has
 * committed it, or it was a duplicate of a committed one.
 */
static enum fetch_verdict
on_fetched(void *arg, const struct fetch_msg *m)
{
	struct intake		*in = arg;
	struct intake_msg	 im;
	struct intake_result	 r;
	char			 ref[300];

	snprintf(ref, sizeof(ref), "%s %lu/%lu", m->mailbox,
	    (unsigned long)m->uidvalidity, (unsigned long)m->uid);
	memset(&im, 0, sizeof(im));
	im.raw = m->raw;
	im.len = m->len;
	im.source = "imap";
	im.source_ref = ref;
	intake_process(in, &im, &r);
	switch (r.outcome) {
	case INTAKE_FILED:
	case INTAKE_QUARANTINED:
	case INTAKE_DUPLICATE:
	case INTAKE_BOUNCE:
		return m->raw == NULL ? FETCH_ASIDE : FETCH_MOVE;
	case INTAKE_REFUSED:
		log_warnx("imap: message %s is for no practice of ours; "
		    "moved to %s for staff", ref, d.cfg->imap_aside_folder);
		return FETCH_ASIDE;
	case INTAKE_TEMPFAIL:
	default:
		return FETCH_KEEP;
	}
}

/* Start the IMAP intake when [imap] host is set.  0 or -1 (logged). */
static int
imap_start(const struct token_keys *tk, const char *pass)
{
	const struct config	*c = d.cfg;
	struct intake_params	 ip;
	struct fetch_params	 fp;
	const char		*error = NULL;
	int			 r;

	if (*c->imap_host == '\0')
		return 0;
	intake_params_fill(&ip, tk);
	if (intake_new(&ip, &fetch_intake, &error) != 0) {
		log_warnx("imap: intake: %s", error);
		return -1;
	}
	memset(&fp, 0, sizeof(fp));
	fp.server.host = c->imap_host;
	fp.server.port = (uint16_t)c->imap_port;
	fp.server.tls = strcmp(c->imap_tls, "starttls") == 0 ?
	    RELAY_TLS_STARTTLS : strcmp(c->imap_tls, "none") == 0 ?
	    RELAY_TLS_NONE : RELAY_TLS_IMPLICIT;
	fp.server.allow_plaintext = c->imap_allow_plaintext;
	fp.server.tls_name = *c->imap_tls_name ? c->imap_tls_name : NULL;
	fp.server.ca_file = *c->imap_ca_file ? c->imap_ca_file : NULL;
	fp.server.username = c->imap_username;
	fp.server.password = pass;
	fp.server.connect_timeout = (int)c->imap_connect_timeout;
	fp.server.command_timeout = (int)c->imap_command_timeout;
	fp.mailbox = c->imap_mailbox;
	fp.processed_folder = c->imap_processed_folder;
	fp.aside_folder = c->imap_aside_folder;
	fp.idle = c->imap_idle;
	fp.poll_interval = (int)c->imap_poll_interval;
	fp.idle_restart = (int)c->imap_idle_restart;
	fp.max_size = (size_t)c->replies_max_size;
	fp.process = on_fetched;
	fp.arg = fetch_intake;
	r = fetch_start(&fp, &fetcher, &error);
	if (r != 0) {
		log_warnx("imap: %s", error ? error : "cannot start");
		intake_free(&fetch_intake);
		return -1;
	}
	log_info("imap: watching %s on %s:%lld", c->imap_mailbox, c->imap_host,
	    (long long)c->imap_port);
	return 0;
}

/*
 * Stop the fetch worker off the loop thread: a message it is processing
 * may be a bounce waiting for the queue's answer, which comes through the
 * loop, so the loop must keep running until the worker is done.
 */
static void *
fetch_stop_main(void *arg)
{
	(void)arg;
	if (fetch_stop(&fetcher, (uint64_t)d.cfg->shutdown_timeout * 1000)
	    != 0)
		fetch_stop_late = 1;
	__atomic_store_n(&fetch_stopped, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* The LMTP listener's processor: the intake pool. */
static void
lmtp_submit(struct intake_job *job, void *arg)
{
	intake_pool_submit(arg, job);
}

/* Start the LMTP listener when [lmtp] listen is set.  0 or -1 (logged). */
static int
lmtp_start(const struct token_keys *tk)
{
	struct intake_params	 ip;
	struct lmtpd_params	 lp;
	const char		*error = NULL;
	char			*cerror = NULL;

	if (*d.cfg->lmtp_listen == '\0')
		return 0;
	intake_params_fill(&ip, tk);
	if (intake_pool_start(d.base, &ip, 2, &lmtp_pool, &error) != 0) {
		log_warnx("lmtp: intake: %s", error);
		return -1;
	}
	lmtpd_params_init(&lp, d.cfg);
	lp.submit = lmtp_submit;
	lp.submit_arg = lmtp_pool;
	lp.job_free = intake_job_free;
	if (lmtpd_start(d.base, &lp, &lmtpd, &cerror) != 0) {
		log_warnx("lmtp: %s", cerror);
		free(cerror);
		return -1;
	}
	return 0;
}

int
main(int argc, char *argv[])
{
	struct submit_params	 sp;
	struct queue_params	 qp;
	struct token_keys	 tkeys;
	struct rlimit		 rl;
	struct event		*sigs[4], *ev_wd = NULL;
	char			*relay_pass = NULL, *imap_pass = NULL;
	const char		*cfgpath = DEFAULT_CONFIG;
	const char		*error = NULL;
	char			*cerror = NULL;
	int			 ch, check = 0, debug = 0, i;
	int			 signums[] = { SIGHUP, SIGTERM, SIGINT };
	uint64_t		 wd_usec = 0;

	if (argc == 2 && strcmp(argv[1], "-P") == 0)
		sandbox_child_main();	/* the parse child; never returns */

	while ((ch = getopt(argc, argv, "df:nVh")) != -1) {
		switch (ch) {
		case 'd':
			debug = 1;
			break;
		case 'f':
			cfgpath = optarg;
			break;
		case 'n':
			check++;
			break;
		case 'V':
			printf("sealpostd %s\n", PACKAGE_VERSION);
			return 0;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();

	log_init("sealpostd", LOG_TO_STDERR, debug);
	if (config_load(cfgpath, &d.cfg, &cerror) != 0) {
		fprintf(stderr, "sealpostd: %s\n", cerror);
		free(cerror);
		return CONFIG_EX_CONFIG;
	}
	if (check) {
		config_print(d.cfg, stdout, check == 1);
		config_free(&d.cfg);
		return 0;
	}
	log_init("sealpostd", log_target_for(d.cfg->log), debug);
	d.version = PACKAGE_VERSION;
	d.started_ms = util_now_ms();

	/* libetpan and GnuTLS write with send(2) without MSG_NOSIGNAL. */
	signal(SIGPIPE, SIG_IGN);
	/*
	 * libetpan select()s on its sockets: a descriptor at or above
	 * FD_SETSIZE would abort the process.  The unit sets LimitNOFILE=1024;
	 * run by hand with a higher limit, lower it here so accept() and
	 * open() fail cleanly (EMFILE) instead.
	 */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur > FD_SETSIZE) {
		rl.rlim_cur = FD_SETSIZE;
		if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
			log_warn("setrlimit RLIMIT_NOFILE");
	}
	umask(077);
	if (hash_init() != 0)
		log_fatalx("libsodium could not be initialised");
	letter_json_init();
	if (keyring_load(d.cfg->master_key_file, &d.keyring, &error) != 0) {
		log_warnx("master key: %s", error);
		config_free(&d.cfg);
		return CONFIG_EX_CONFIG;
	}

	event_set_mem_functions(malloc, ev_realloc, ev_free);
	if (evthread_use_pthreads() != 0)
		log_fatalx("libevent: no pthreads support");
	if ((d.base = event_base_new()) == NULL)
		log_fatalx("libevent: event_base_new failed");

	if (store_open(d.cfg->database, STORE_RDWR | STORE_CREATE, &d.store,
	    &error) != STORE_OK)
		log_fatalx("store: %s: %s", d.cfg->database, error);

	memset(&sp, 0, sizeof(sp));
	sp.database = d.cfg->database;
	sp.workers = (int)d.cfg->seal_workers;
	sp.batch_max = (int)d.cfg->commit_batch_max;
	sp.parse_program = "/proc/self/exe";
	sp.parse_memory_limit = d.cfg->parse_memory_limit;
	sp.parse_timeout = d.cfg->parse_timeout;
	sp.max_letter_size = (size_t)d.cfg->max_letter_size;
	sp.max_attachments = (size_t)d.cfg->max_attachments;
	sp.max_attachment_size = (size_t)d.cfg->max_attachment_size;
	sp.lifetime[0] = d.cfg->queue_lifetime_routine;
	sp.lifetime[1] = d.cfg->queue_lifetime_urgent;
	sp.warn[0] = d.cfg->queue_warn_routine;
	sp.warn[1] = d.cfg->queue_warn_urgent;
	sp.committed = on_committed;
	sp.committed_arg = &d;
	if (submit_start(d.base, &sp, &d.submit, &error) != 0)
		log_fatalx("submit: %s", error);

	if (*d.cfg->relay_username != '\0' &&
	    (relay_pass = read_secret(d.cfg->relay_password_file, "relay",
	    "relay.password", &error)) == NULL) {
		log_warnx("%s", error);
		return CONFIG_EX_CONFIG;
	}
	if (*d.cfg->imap_host != '\0' &&
	    (imap_pass = read_secret(d.cfg->imap_password_file, "imap",
	    "imap.password", &error)) == NULL) {
		log_warnx("%s", error);
		return CONFIG_EX_CONFIG;
	}
	if (relay_global_init() != 0 || webhook_global_init() != 0)
		log_fatalx("relay: library initialisation failed");
	if (token_key_derive(d.keyring, 1, &tkeys) != 0)
		log_fatalx("token key derivation failed");
	d.tkeys = &tkeys;
	memset(&qp, 0, sizeof(qp));
	qp.database = d.cfg->database;
	qp.keyring = d.keyring;
	qp.relay_enabled = *d.cfg->relay_host != '\0';
	qp.relay.host = d.cfg->relay_host;
	qp.relay.port = (uint16_t)d.cfg->relay_port;
	qp.relay.tls = strcmp(d.cfg->relay_tls, "implicit") == 0 ?
	    RELAY_TLS_IMPLICIT : strcmp(d.cfg->relay_tls, "none") == 0 ?
	    RELAY_TLS_NONE : RELAY_TLS_STARTTLS;
	qp.relay.allow_plaintext = d.cfg->relay_allow_plaintext;
	qp.relay.tls_name = *d.cfg->relay_tls_name ? d.cfg->relay_tls_name :
	    NULL;
	qp.relay.ca_file = *d.cfg->relay_ca_file ? d.cfg->relay_ca_file : NULL;
	qp.relay.username = *d.cfg->relay_username ? d.cfg->relay_username :
	    NULL;
	qp.relay.password = relay_pass;
	qp.relay.helo_name = *d.cfg->relay_helo_name ?
	    d.cfg->relay_helo_name : d.cfg->smtp_hostname;
	qp.relay.connect_timeout = (int)d.cfg->relay_connect_timeout;
	qp.relay.command_timeout = (int)d.cfg->relay_command_timeout;
	qp.relay.data_timeout = (int)d.cfg->relay_data_timeout;
	qp.relay.idle_timeout = (int)d.cfg->relay_idle_timeout;
	qp.pool_size = (int)d.cfg->relay_pool_size;
	qp.retry_first = d.cfg->queue_retry_first;
	qp.retry_max = d.cfg->queue_retry_max;
	qp.reply_lifetime = d.cfg->queue_reply_lifetime;
	qp.max_active = (int)d.cfg->queue_max_active;
	qp.webhook.ca_file = *d.cfg->callbacks_ca_file ?
	    d.cfg->callbacks_ca_file : NULL;
	qp.webhook.timeout = (int)d.cfg->callbacks_timeout;
	qp.parse_program = "/proc/self/exe";
	qp.parse_memory_limit = d.cfg->parse_memory_limit;
	qp.parse_timeout = d.cfg->parse_timeout;
	qp.max_bounce_size = (size_t)d.cfg->max_letter_size;
	qp.reply_forward = d.cfg->replies_forward;
	qp.imap_append_folder = d.cfg->replies_append_folder;
	if (imap_pass != NULL) {
		qp.imap_server.host = d.cfg->imap_host;
		qp.imap_server.port = (uint16_t)d.cfg->imap_port;
		qp.imap_server.tls = strcmp(d.cfg->imap_tls, "starttls") == 0 ?
		    RELAY_TLS_STARTTLS : strcmp(d.cfg->imap_tls, "none") == 0 ?
		    RELAY_TLS_NONE : RELAY_TLS_IMPLICIT;
		qp.imap_server.allow_plaintext = d.cfg->imap_allow_plaintext;
		qp.imap_server.tls_name = *d.cfg->imap_tls_name ?
		    d.cfg->imap_tls_name : NULL;
		qp.imap_server.ca_file = *d.cfg->imap_ca_file ?
		    d.cfg->imap_ca_file : NULL;
		qp.imap_server.username = d.cfg->imap_username;
		qp.imap_server.password = imap_pass;
		qp.imap_server.connect_timeout =
		    (int)d.cfg->imap_connect_timeout;
		qp.imap_server.command_timeout =
		    (int)d.cfg->imap_command_timeout;
	}
	if (queue_start(d.base, &qp, &d.queue, &error) != 0)
		log_fatalx("queue: %s", error);
	if (relay_pass != NULL) {
		hash_wipe(relay_pass, strlen(relay_pass));
		free(relay_pass);
		relay_pass = NULL;
	}
	if (!qp.relay_enabled)
		log_warnx("no smarthost ([relay] host is empty): letters wait "
		    "in the queue and expire to paper");
	if (imap_start(&tkeys, imap_pass) != 0 || lmtp_start(&tkeys) != 0)
		return CONFIG_EX_CONFIG;
	if (imap_pass != NULL) {
		hash_wipe(imap_pass, strlen(imap_pass));
		free(imap_pass);
		imap_pass = NULL;
	}

	if (api_start(&d, &api, &cerror) != 0)
		log_fatalx("http: %s", cerror);
	if (smtpd_start(&d, &smtpd, &cerror) != 0)
		log_fatalx("smtp: %s", cerror);
	if (control_start(&d, d.cfg->control_socket, &control, &cerror) != 0)
		log_fatalx("control: %s", cerror);

	for (i = 0; i < (int)nitems(signums); i++) {
		sigs[i] = evsignal_new(d.base, signums[i], on_signal, NULL);
		event_add(sigs[i], NULL);
	}
#ifdef HAVE_SYSTEMD
	if (sd_watchdog_enabled(0, &wd_usec) > 0 && wd_usec > 0) {
		struct timeval	 tv;

		wd_usec /= 2;
		tv.tv_sec = (time_t)(wd_usec / 1000000);
		tv.tv_usec = (suseconds_t)(wd_usec % 1000000);
		ev_wd = event_new(d.base, -1, EV_PERSIST, on_watchdog, NULL);
		event_add(ev_wd, &tv);
	}
#endif
	log_info("sealpostd %s ready pid=%ld database=%s http=%s smtp=%s "
	    "lmtp=%s imap=%s", PACKAGE_VERSION, (long)getpid(),
	    d.cfg->database, d.cfg->http_listen[0] ? d.cfg->http_listen : "off",
	    d.cfg->smtp_listen[0] ? d.cfg->smtp_listen : "off",
	    d.cfg->lmtp_listen[0] ? d.cfg->lmtp_listen : "off",
	    d.cfg->imap_host[0] ? d.cfg->imap_host : "off");
	notify("READY=1");

	event_base_dispatch(d.base);

	/* Drained or timed out: finish what is committing, then close. */
	d.draining = 1;
	if (api != NULL)
		api_stop_accepting(api);
	if (smtpd != NULL)
		smtpd_stop_accepting(smtpd);
	if (lmtpd != NULL)
		lmtpd_stop_accepting(lmtpd);
	lmtpd_stop(&lmtpd);
	if (intake_pool_stop(&lmtp_pool,
	    (uint64_t)d.cfg->shutdown_timeout * 1000) != 0) {
		/* Unanswered LMTP recipients: the MX delivers them again. */
		_exit(1);
	}
	if (fetcher != NULL && !fetch_stopping) {
		/* Left the loop without a drain (second signal): stop it
		 * here; a bounce wait in it ends at its own timeout. */
		fetch_stop_main(NULL);
	} else if (fetch_stopping)
		pthread_join(fetch_stopper, NULL);
	if (fetch_stop_late) {
		/* A message not yet moved is fetched again next start. */
		log_warnx("imap: the worker did not stop in time");
		_exit(1);
	}
	intake_free(&fetch_intake);
	if (submit_stop(&d.submit,
	    (uint64_t)d.cfg->shutdown_timeout * 1000) != 0) {
		/* A commit is stuck on the disk: it was never acknowledged. */
		log_warnx("stopped with a commit still in progress");
		_exit(1);
	}
	if (queue_stop(&d.queue,
	    (uint64_t)d.cfg->shutdown_timeout * 1000) != 0) {
		/* Rows left "sending" are requeued at the next start. */
		_exit(1);
	}
	hash_wipe(&tkeys, sizeof(tkeys));
	webhook_global_cleanup();
	api_free(&api);
	smtpd_free(&smtpd);
	control_free(&control);
	if (ev_drain != NULL)
		event_free(ev_drain);
	if (ev_wd != NULL)
		event_free(ev_wd);
	for (i = 0; i < (int)nitems(signums); i++)
		event_free(sigs[i]);
	store_close(&d.store);
	keyring_free(&d.keyring);
	event_base_free(d.base);
	log_info("stopped");
	config_free(&d.cfg);
	return 0;
}
