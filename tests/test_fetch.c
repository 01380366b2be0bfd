/*
 * test_fetch.c - src/fetch.c against a real Dovecot 2.3 started by
 * tests/rig/dovecot.sh (skipped, with the reason, when Dovecot or root is
 * missing): fetch_append into INBOX-like and new folders, the worker over
 * implicit TLS with IDLE and over STARTTLS with polling, exactly-once
 * delivery, the move only after process() returned (folder contents are
 * checked from inside the callback), FETCH_KEEP coming again, a message
 * over max_size handed over without content and moved aside, IDLE waking
 * within about a second, a UIDVALIDITY change survived, certificate
 * refusals (wrong name, unknown CA) with no LOGIN and no plaintext
 * fallback, a wrong password with backoff, fetch_stop while idling, and
 * a scripted hostile server (lying literal lengths, a bad STATUS) that
 * must give errors and reconnects, never a crash.
 */
#include "build.h"

#include <sys/socket.h>
#include <sys/stat.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fetch.h"
#include "log.h"
#include "relay.h"
#include "util.h"

#include "tap.h"
#include "tfile.h"

static char	 rigdir[256];
static char	 maildir[512];
static char	 ca[512], otherca[512];
static int	 port_imap, port_imaps, port_wrong, port_nomove, port_plain;
static char	*rig;

static void
msleep(int ms)
{
	struct timespec	 ts;

	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (long)(ms % 1000) * 1000000L;
	nanosleep(&ts, NULL);
}

/* Messages in a folder of the test user's maildir (cur + new). */
static int
count_folder(const char *folder)
{
	char		 path[1024];
	const char	*sub[] = { "cur", "new" };
	DIR		*d;
	struct dirent	*e;
	int		 n = 0;
	size_t		 i;

	for (i = 0; i < nitems(sub); i++) {
		if (strcmp(folder, "INBOX") == 0)
			snprintf(path, sizeof(path), "%s/%s", maildir, sub[i]);
		else
			snprintf(path, sizeof(path), "%s/.%s/%s", maildir,
			    folder, sub[i]);
		if ((d = opendir(path)) == NULL)
			continue;
		while ((e = readdir(d)) != NULL)
			if (e->d_name[0] != '.')
				n++;
		closedir(d);
	}
	return n;
}

static void
server(struct fetch_server *s, int port, enum relay_tls tls)
{
	memset(s, 0, sizeof(*s));
	s->host = "127.0.0.1";
	s->port = (uint16_t)port;
	s->tls = tls;
	s->tls_name = "localhost";
	s->ca_file = ca;
	s->username = "gp";
	s->password = "s3cret-test";
	s->connect_timeout = 5;
	s->command_timeout = 10;
}

static char *
make_msg(const char *subject, size_t bodylen)
{
	char	*m, *body;

	body = xmalloc(bodylen + 1);
	memset(body, 'x', bodylen);
	/* Lines of at most 76 octets. */
	for (size_t i = 76; i + 1 < bodylen; i += 78) {
		body[i] = '\r';
		body[i + 1] = '\n';
	}
	body[bodylen] = '\0';
	xasprintf(&m, "From: a@example.org\r\nTo: b@example.org\r\n"
	    "Subject: %s\r\nMessage-ID: <%s@test>\r\n\r\n%s\r\n", subject,
	    subject, body);
	free(body);
	return m;
}

static int
append(const struct fetch_server *s, const char *folder, const char *subj,
    size_t bodylen)
{
	char	 err[256], *m = make_msg(subj, bodylen);
	int	 tmp, r;

	r = fetch_append(s, folder, m, strlen(m), &tmp, err, sizeof(err));
	if (r != 0)
		diag("append %s to %s: %s", subj, folder, err);
	free(m);
	return r;
}

/* ---- the recording processor ------------------------------------------- */

struct rec {
	pthread_mutex_t	 lock;
	char		 subj[64][48];
	int		 n;
	int		 moves, asides;	/* verdicts returned */
	int		 base_processed, base_aside; /* there before */
	int		 bad_state;	/* folder contents wrong in a call */
	int		 keep_left;	/* "keep-me": KEEP this many times */
	int		 keep_calls;
	int		 large_calls;
	size_t		 large_len;
	uint64_t	 last_ms;
	const char	*watched;
};

static int
rec_count(struct rec *r, const char *subj)
{
	int	 i, c = 0;

	pthread_mutex_lock(&r->lock);
	for (i = 0; i < r->n; i++)
		if (strcmp(r->subj[i], subj) == 0)
			c++;
	pthread_mutex_unlock(&r->lock);
	return c;
}

static enum fetch_verdict
rec_process(void *arg, const struct fetch_msg *m)
{
	struct rec		*r = arg;
	enum fetch_verdict	 v = FETCH_MOVE;
	char			 subj[48] = "";
	const char		*p, *e;

	if (m->raw != NULL && (p = strstr(m->raw, "Subject: ")) != NULL &&
	    (e = strstr(p, "\r\n")) != NULL &&
	    (size_t)(e - p - 9) < sizeof(subj)) {
		memcpy(subj, p + 9, (size_t)(e - p - 9));
		subj[e - p - 9] = '\0';
	}
	pthread_mutex_lock(&r->lock);
	/* Nothing was moved yet for this message: the move comes after. */
	if (count_folder("Processed") != r->base_processed + r->moves ||
	    count_folder("Aside") != r->base_aside + r->asides ||
	    count_folder(r->watched) < 1)
		r->bad_state++;
	if (m->raw == NULL) {
		r->large_calls++;
		r->large_len = m->len;
		strlcpy_sp(subj, "(large)", sizeof(subj));
		v = FETCH_ASIDE;
	} else if (strcmp(subj, "keep-me") == 0) {
		r->keep_calls++;
		if (r->keep_left > 0) {
			r->keep_left--;
			v = FETCH_KEEP;
		}
	}
	if (r->n < 64)
		strlcpy_sp(r->subj[r->n++], subj, sizeof(r->subj[0]));
	if (v == FETCH_MOVE)
		r->moves++;
	else if (v == FETCH_ASIDE)
		r->asides++;
	r->last_ms = util_now_ms();
	pthread_mutex_unlock(&r->lock);
	return v;
}

static void
params(struct fetch_params *p, struct rec *r, int port, enum relay_tls tls,
    int idle)
{
	memset(p, 0, sizeof(*p));
	server(&p->server, port, tls);
	p->mailbox = r != NULL ? r->watched : "Intake";
	p->processed_folder = "Processed";
	p->aside_folder = "Aside";
	p->idle = idle;
	p->poll_interval = 1;
	p->idle_restart = 60;
	p->max_size = 4096;
	p->max_per_round = 0;
	p->process = rec_process;
	p->arg = r;
}

typedef int (*cond_fn)(struct fetch *, void *);

/* Wait up to ms for cond; its last value. */
static int
wait_until(struct fetch *f, cond_fn fn, void *arg, int ms)
{
	uint64_t	 end = util_now_ms() + (uint64_t)ms;

	while (util_now_ms() < end) {
		if (fn(f, arg))
			return 1;
		msleep(50);
	}
	return fn(f, arg);
}

static int
c_moved(struct fetch *f, void *arg)
{
	struct fetch_stats	 st;

	fetch_get_stats(f, &st);
	return st.moved >= (uint64_t)(intptr_t)arg;
}

static int
c_idling(struct fetch *f, void *arg)
{
	struct fetch_stats	 st;

	(void)arg;
	fetch_get_stats(f, &st);
	return st.idling;
}

static int
c_errors(struct fetch *f, void *arg)
{
	struct fetch_stats	 st;

	fetch_get_stats(f, &st);
	return st.errors >= (uint64_t)(intptr_t)arg;
}

struct want {
	struct rec	*r;
	const char	*subj;
};

static int
c_subj(struct fetch *f, void *arg)
{
	struct want	*w = arg;

	(void)f;
	return rec_count(w->r, w->subj) > 0;
}

/* ---- the rig ------------------------------------------------------------ */

static int
rig_start(void)
{
	char	 cmd[1024], line[1024], *p;
	FILE	*fp;
	char	 tmpl[] = "/tmp/sp-fetch-XXXXXX";

	if (mkdtemp(tmpl) == NULL)
		return -1;
	strlcpy_sp(rigdir, tmpl, sizeof(rigdir));
	snprintf(cmd, sizeof(cmd), "%s start %s 2>&1", rig, rigdir);
	if ((fp = popen(cmd, "r")) == NULL)
		return -1;
	line[0] = '\0';
	while (fgets(line, sizeof(line), fp) != NULL)
		if (strncmp(line, "imap=", 5) == 0)
			break;
		else
			diag("rig: %s", line);
	if (pclose(fp) != 0 || strncmp(line, "imap=", 5) != 0)
		return -1;
	port_imap = atoi(line + 5);
	if ((p = strstr(line, "imaps=")) != NULL)
		port_imaps = atoi(p + 6);
	if ((p = strstr(line, "wrongname=")) != NULL)
		port_wrong = atoi(p + 10);
	if ((p = strstr(line, "nomove=")) != NULL)
		port_nomove = atoi(p + 7);
	if ((p = strstr(line, "plain=")) != NULL)
		port_plain = atoi(p + 6);
	snprintf(maildir, sizeof(maildir), "%s/mail/gp/Maildir", rigdir);
	snprintf(ca, sizeof(ca), "%s/tls/ca.crt", rigdir);
	snprintf(otherca, sizeof(otherca), "%s/tls/otherca.crt", rigdir);
	return port_imap > 0 && port_imaps > 0 && port_wrong > 0 &&
	    port_nomove > 0 && port_plain > 0 ? 0 : -1;
}

static void
rig_stop(void)
{
	char	 cmd[1024];

	if (rigdir[0] == '\0')
		return;
	snprintf(cmd, sizeof(cmd), "%s stop %s %s >/dev/null 2>&1", rig,
	    rigdir, getenv("TEST_FETCH_KEEP") != NULL ? "" : "--remove");
	if (system(cmd) != 0)
		diag("rig stop failed");
}

/* Lines of the Dovecot log containing both needles. */
static int
log_count(const char *a, const char *b)
{
	char	 path[512], *buf, *line, *save;
	size_t	 len;
	int	 n = 0;

	snprintf(path, sizeof(path), "%s/dovecot.log", rigdir);
	if ((buf = read_file(path, &len)) == NULL)
		return -1;
	for (line = strtok_r(buf, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save))
		if (strstr(line, a) != NULL && (b == NULL ||
		    strstr(line, b) != NULL))
			n++;
	free(buf);
	return n;
}

static int
doveadm(const char *args)
{
	char	 cmd[1024];

	snprintf(cmd, sizeof(cmd), "doveadm -c %s/dovecot.conf %s "
	    ">/dev/null 2>&1", rigdir, args);
	return system(cmd);
}

/* ---- the tests ------------------------------------------------------------ */

static void
test_append(void)
{
	struct fetch_server	 s;
	char			 err[256], *m;
	int			 tmp, r;

	server(&s, port_imap, RELAY_TLS_STARTTLS);
	ok(append(&s, "Filed", "filed-1", 100) == 0,
	    "fetch_append over STARTTLS into a new folder");
	is_int(count_folder("Filed"), 1, "the new folder holds it");
	server(&s, port_imaps, RELAY_TLS_IMPLICIT);
	ok(append(&s, "Filed", "filed-2", 100) == 0,
	    "fetch_append over implicit TLS into an existing folder");
	is_int(count_folder("Filed"), 2, "the folder holds both");

	m = make_msg("x", 10);
	s.password = "wrong";
	r = fetch_append(&s, "Filed", m, strlen(m), &tmp, err, sizeof(err));
	ok(r == -1 && tmp == 0 && strstr(err, "LOGIN") != NULL,
	    "wrong password: refused, not temporary (%s)", err);
	server(&s, 1, RELAY_TLS_IMPLICIT);
	r = fetch_append(&s, "Filed", m, strlen(m), &tmp, err, sizeof(err));
	ok(r == -1 && tmp == 1, "connection refused: temporary (%s)", err);
	server(&s, port_imaps, RELAY_TLS_IMPLICIT);
	r = fetch_append(&s, "Fi&led", m, strlen(m), &tmp, err, sizeof(err));
	ok(r == -1 && tmp == 0, "a folder name with '&' is refused (%s)",
	    err);
	s.host = "192.0.2.1";
	s.tls = RELAY_TLS_NONE;
	s.allow_plaintext = 1;
	r = fetch_append(&s, "Filed", m, strlen(m), &tmp, err, sizeof(err));
	ok(r == -1 && tmp == 0 && strstr(err, "loopback") != NULL,
	    "plaintext off loopback refused before connecting (%s)", err);
	free(m);
	is_int(count_folder("Filed"), 2, "nothing else was appended");
}

static void
test_worker_idle(void)
{
	struct fetch_params	 p;
	struct fetch_server	 s;
	struct fetch_stats	 st, st2;
	struct fetch		*f = NULL;
	struct rec		 r;
	const char		*why = NULL;
	struct want		 w;
	uint64_t		 t0, uv0;
	int			 i;

	memset(&r, 0, sizeof(r));
	pthread_mutex_init(&r.lock, NULL);
	r.watched = "Intake";
	r.keep_left = 2;
	server(&s, port_imaps, RELAY_TLS_IMPLICIT);
	ok(append(&s, "Intake", "m1", 200) == 0 &&
	    append(&s, "Intake", "m2", 200) == 0 &&
	    append(&s, "Intake", "m3", 200) == 0 &&
	    append(&s, "Intake", "keep-me", 200) == 0 &&
	    append(&s, "Intake", "large", 8000) == 0,
	    "five messages appended to Intake");

	params(&p, &r, port_imaps, RELAY_TLS_IMPLICIT, 1);
	ok(fetch_start(&p, &f, &why) == 0, "fetch_start (implicit TLS, "
	    "IDLE)");
	if (f == NULL) {
		diag("fetch_start: %s", why);
		return;
	}
	ok(wait_until(f, c_moved, (void *)(intptr_t)4, 15000),
	    "m1, m2, m3 and keep-me moved");
	fetch_get_stats(f, &st);
	ok(st.connected && st.connects == 1 && st.uidvalidity != 0,
	    "connected once, uidvalidity %u", st.uidvalidity);
	is_int(rec_count(&r, "m1") + rec_count(&r, "m2") + rec_count(&r, "m3"),
	    3, "each plain message handed over exactly once");
	ok(r.keep_calls >= 3 && st.kept >= 2,
	    "FETCH_KEEP left keep-me and it came again (%d calls, %llu kept)",
	    r.keep_calls, (unsigned long long)st.kept);
	is_int(r.large_calls, 1, "the large message handed over once");
	ok(r.large_len > 8000, "... with raw NULL and its size (%zu)",
	    r.large_len);
	is_int(st.aside, 1, "... and moved aside");
	is_int(r.bad_state, 0, "no message was moved before process() "
	    "returned");
	is_int(count_folder("Processed"), 4, "Processed holds four");
	is_int(count_folder("Aside"), 1, "Aside holds one");
	is_int(count_folder("Intake"), 0, "Intake is empty");

	/* IDLE: a new message is seen within about a second. */
	ok(wait_until(f, c_idling, NULL, 5000), "the worker idles");
	t0 = util_now_ms();
	ok(append(&s, "Intake", "m4", 100) == 0, "m4 appended while idling");
	w.r = &r;
	w.subj = "m4";
	ok(wait_until(f, c_subj, &w, 5000), "m4 handed over");
	pthread_mutex_lock(&r.lock);
	ok(r.last_ms - t0 < 1500, "... %llu ms after the APPEND",
	    (unsigned long long)(r.last_ms - t0));
	pthread_mutex_unlock(&r.lock);

	/* UIDVALIDITY: delete and recreate the watched mailbox. */
	ok(wait_until(f, c_idling, NULL, 5000), "idling again");
	fetch_get_stats(f, &st);
	uv0 = st.uidvalidity;
	msleep(1100);	/* Dovecot's UIDVALIDITY is a time in seconds */
	ok(doveadm("mailbox delete -u gp Intake") == 0 &&
	    doveadm("mailbox create -u gp Intake") == 0,
	    "doveadm deleted and recreated Intake");
	ok(append(&s, "Intake", "m5", 100) == 0, "m5 appended");
	w.r = &r;
	w.subj = "m5";
	ok(wait_until(f, c_subj, &w, 15000), "m5 handed over after the "
	    "recreation");
	ok(wait_until(f, c_moved, (void *)(intptr_t)6, 5000), "m5 moved");
	fetch_get_stats(f, &st2);
	ok(st2.uidvalidity != 0 && st2.uidvalidity != uv0,
	    "new UIDVALIDITY noted (%u -> %u, %llu errors)", (unsigned)uv0,
	    st2.uidvalidity, (unsigned long long)st2.errors);

	/* Stop while idling. */
	ok(wait_until(f, c_idling, NULL, 5000), "idling before the stop");
	t0 = util_now_ms();
	ok(fetch_stop(&f, 5000) == 0 && f == NULL, "fetch_stop while idling");
	ok(util_now_ms() - t0 < 1500, "... took %llu ms",
	    (unsigned long long)(util_now_ms() - t0));
	for (i = 0; i < 1; i++)
		is_int(count_folder("Processed"), 6, "Processed holds six");
	pthread_mutex_destroy(&r.lock);
}

static void
test_worker_starttls_poll(void)
{
	struct fetch_params	 p;
	struct fetch_server	 s;
	struct fetch		*f = NULL;
	struct rec		 r;
	const char		*why = NULL;
	struct want		 w;

	memset(&r, 0, sizeof(r));
	pthread_mutex_init(&r.lock, NULL);
	r.watched = "Polled";
	r.base_processed = count_folder("Processed");
	r.base_aside = count_folder("Aside");
	server(&s, port_imap, RELAY_TLS_STARTTLS);
	ok(append(&s, "Polled", "p1", 100) == 0, "p1 appended to Polled");
	params(&p, &r, port_imap, RELAY_TLS_STARTTLS, 0);
	p.poll_interval = 1;
	ok(fetch_start(&p, &f, &why) == 0, "fetch_start (STARTTLS, poll)");
	if (f == NULL)
		return;
	w.r = &r;
	w.subj = "p1";
	ok(wait_until(f, c_subj, &w, 10000), "p1 handed over");
	ok(append(&s, "Polled", "p2", 100) == 0, "p2 appended");
	w.r = &r;
	w.subj = "p2";
	ok(wait_until(f, c_subj, &w, 5000), "p2 found by polling");
	ok(fetch_stop(&f, 5000) == 0, "fetch_stop");
	is_int(r.bad_state, 0, "moves only after process()");
	pthread_mutex_destroy(&r.lock);
}

/*
 * Without MOVE: UID COPY, STORE \Deleted, UID EXPUNGE (uidplus) or a
 * plain EXPUNGE, the latter only when no other message is \Deleted.
 */
static void
test_fallback(const char *what, const char *addr, int port,
    const char *folder, int uidplus)
{
	struct fetch_params	 p;
	struct fetch_server	 s;
	struct fetch		*f = NULL;
	struct rec		 r;
	struct want		 w;
	const char		*why = NULL;
	char			 args[256];
	int			 base;

	memset(&r, 0, sizeof(r));
	pthread_mutex_init(&r.lock, NULL);
	r.watched = folder;
	r.base_processed = base = count_folder("Processed");
	r.base_aside = count_folder("Aside");
	server(&s, port_imaps, RELAY_TLS_IMPLICIT);
	ok(append(&s, folder, "n0", 100) == 0, "%s: n0 appended", what);
	params(&p, &r, port, RELAY_TLS_IMPLICIT, 1);
	p.server.host = addr;
	p.server.tls_name = "localhost";
	p.idle_restart = 2;
	ok(fetch_start(&p, &f, &why) == 0, "%s: started", what);
	if (f == NULL)
		return;
	ok(wait_until(f, c_moved, (void *)(intptr_t)1, 10000),
	    "%s: n0 moved", what);
	is_int(count_folder(folder), 0, "%s: n0 expunged from %s", what,
	    folder);
	is_int(count_folder("Processed"), base + 1, "%s: n0 copied", what);

	/* Another message flagged \Deleted, not ours. */
	ok(append(&s, folder, "other", 100) == 0, "%s: other appended", what);
	snprintf(args, sizeof(args), "flags add -u gp '\\Deleted' mailbox %s "
	    "header Subject other", folder);
	ok(doveadm(args) == 0, "%s: other flagged \\Deleted", what);
	ok(append(&s, folder, "n1", 100) == 0, "%s: n1 appended", what);
	w.r = &r;
	w.subj = "n1";
	ok(wait_until(f, c_subj, &w, 10000), "%s: n1 handed over", what);
	ok(wait_until(f, c_moved, (void *)(intptr_t)2, 5000), "%s: n1 moved",
	    what);
	msleep(2500);	/* more rounds (idle_restart 2 s) */
	is_int(rec_count(&r, "n1"), 1, "%s: n1 handed over once", what);
	is_int(rec_count(&r, "other"), 0, "%s: the \\Deleted one never",
	    what);
	/* UID EXPUNGE takes n1 alone; a plain EXPUNGE would take both. */
	is_int(count_folder(folder), uidplus ? 1 : 2, "%s: %s", what,
	    uidplus ? "n1 expunged by UID, other left" :
	    "nothing expunged (n1 stays, flagged \\Deleted)");
	is_int(count_folder("Processed"), base + 2, "%s: n1 copied", what);
	is_int(r.bad_state, 0, "%s: moves only after process()", what);
	ok(fetch_stop(&f, 5000) == 0, "%s: stopped", what);
	pthread_mutex_destroy(&r.lock);
}

/* A worker that must never log in: its errors and its last error. */
static void
refused(const char *what, struct fetch_params *p, const char *want)
{
	struct fetch		*f = NULL;
	struct fetch_stats	 st;
	const char		*why = NULL;

	if (fetch_start(p, &f, &why) != 0) {
		ok(0, "%s: fetch_start: %s", what, why);
		return;
	}
	ok(wait_until(f, c_errors, (void *)(intptr_t)2, 8000),
	    "%s: errors and a retry", what);
	fetch_get_stats(f, &st);
	ok(st.connects == 0 && !st.connected, "%s: never connected", what);
	ok(strstr(st.last_error, want) != NULL, "%s: last_error \"%s\"",
	    what, st.last_error);
	ok(fetch_stop(&f, 5000) == 0, "%s: stopped", what);
}

static void
test_refusals(void)
{
	struct fetch_params	 p;
	struct fetch		*f = NULL;
	struct fetch_stats	 st;
	const char		*why = NULL;
	uint64_t		 t0;
	int			 before;

	before = log_count("Login: user=<gp>", NULL);
	params(&p, NULL, port_wrong, RELAY_TLS_IMPLICIT, 1);
	p.server.host = "127.0.0.2";
	p.server.tls_name = NULL;
	refused("wrong-name certificate (address)", &p, "tls:");
	p.server.tls_name = "localhost";
	refused("wrong-name certificate (name)", &p, "does not match");
	ok(log_count("lip=127.0.0.2", "Login:") == 0 &&
	    log_count("lip=127.0.0.2", "auth failed") == 0,
	    "Dovecot logged no login on the wrong-name listener");
	ok(log_count("lip=127.0.0.2", "no auth attempts") >= 2,
	    "... only connections without auth attempts");

	params(&p, NULL, port_imaps, RELAY_TLS_IMPLICIT, 1);
	p.server.ca_file = otherca;
	refused("unknown CA (implicit)", &p, "issuer");
	params(&p, NULL, port_imap, RELAY_TLS_STARTTLS, 1);
	p.server.ca_file = otherca;
	refused("unknown CA (STARTTLS)", &p, "issuer");
	params(&p, NULL, port_imap, RELAY_TLS_STARTTLS, 1);
	p.server.tls_name = "wrong.example";
	refused("STARTTLS with a name not in the certificate", &p,
	    "does not match");
	is_int(log_count("Login: user=<gp>", NULL), before,
	    "Dovecot logged no login for any refused certificate");

	/* A wrong password: error, then retries further and further apart. */
	params(&p, NULL, port_imaps, RELAY_TLS_IMPLICIT, 1);
	p.server.password = "not-the-password";
	t0 = util_now_ms();
	ok(fetch_start(&p, &f, &why) == 0, "wrong password: started");
	if (f == NULL)
		return;
	ok(wait_until(f, c_errors, (void *)(intptr_t)1, 8000),
	    "wrong password: an error");
	fetch_get_stats(f, &st);
	ok(strstr(st.last_error, "LOGIN") != NULL &&
	    strstr(st.last_error, "not-the-password") == NULL,
	    "... \"%s\"", st.last_error);
	ok(st.connects == 0 && !st.connected, "wrong password: never "
	    "connected");
	ok(fetch_stop(&f, 5000) == 0, "wrong password: stopped");
	ok(log_count("not-the-password", NULL) == 0,
	    "the password is not in Dovecot's log either");

	/* Backoff, where failures are instant: connection refused. */
	params(&p, NULL, 1, RELAY_TLS_IMPLICIT, 1);
	t0 = util_now_ms();
	ok(fetch_start(&p, &f, &why) == 0, "refused port: started");
	if (f == NULL)
		return;
	while (util_now_ms() - t0 < 5500)
		msleep(100);
	fetch_get_stats(f, &st);
	/* Attempts at 0, 1 and 3 s; the next would be at 7 s. */
	ok(st.errors >= 2 && st.errors <= 4,
	    "backoff: %llu attempts in 5.5 s (1 s, 2 s, 4 s apart)",
	    (unsigned long long)st.errors);
	ok(strstr(st.last_error, "connect:") != NULL, "... \"%s\"",
	    st.last_error);
	ok(fetch_stop(&f, 5000) == 0, "refused port: stopped");
}

/* ---- a scripted hostile server (plaintext on loopback) ------------------ */

enum hostile_mode {
	H_LIE_BIG,	/* BODY[] {4000000000}, then bytes until we hang up */
	H_LIE_SHORT,	/* BODY[] {50} with 3 bytes, then EOF */
	H_STATUS,	/* an unsolicited * STATUS "RUU" () in SELECT */
	H_GARBAGE	/* a greeting that is no IMAP */
};

struct hostile {
	int		 lfd;
	uint16_t	 port;
	pthread_t	 thread;
	enum hostile_mode mode;
	volatile int	 stop;
	volatile int	 conns;
};

static void
h_put(int fd, const char *s)
{
	(void)send(fd, s, strlen(s), MSG_NOSIGNAL);
}

/* One CRLF line into buf; -1 at EOF. */
static int
h_line(int fd, char *buf, size_t sz)
{
	size_t	 n = 0;
	char	 c;

	while (n + 1 < sz) {
		if (recv(fd, &c, 1, 0) != 1)
			return -1;
		if (c == '\n')
			break;
		if (c != '\r')
			buf[n++] = c;
	}
	buf[n] = '\0';
	return 0;
}

static void
h_session(struct hostile *h, int fd)
{
	char	 line[1024], tag[64], out[1200], junk[16384];
	int	 i;

	if (h->mode == H_GARBAGE) {
		h_put(fd, "220 this is SMTP, not IMAP\r\n");
		return;
	}
	h_put(fd, "* OK [CAPABILITY IMAP4rev1 IDLE MOVE UIDPLUS] hostile\r\n");
	while (!h->stop && h_line(fd, line, sizeof(line)) == 0) {
		if (sscanf(line, "%63s", tag) != 1)
			return;
		if (strstr(line, "CAPABILITY") != NULL) {
			snprintf(out, sizeof(out), "* CAPABILITY IMAP4rev1 "
			    "IDLE MOVE UIDPLUS\r\n%s OK done\r\n", tag);
		} else if (strstr(line, "LOGIN") != NULL) {
			snprintf(out, sizeof(out), "%s OK in\r\n", tag);
		} else if (strstr(line, " LIST ") != NULL) {
			snprintf(out, sizeof(out), "* LIST () \"/\" \"X\"\r\n"
			    "%s OK listed\r\n", tag);
		} else if (strstr(line, "SELECT") != NULL) {
			snprintf(out, sizeof(out), "* 1 EXISTS\r\n"
			    "* OK [UIDVALIDITY 7] ok\r\n%s"
			    "%s OK [READ-WRITE] selected\r\n",
			    h->mode == H_STATUS ? "* STATUS \"RUU\" ()\r\n" : "",
			    tag);
		} else if (strstr(line, "SEARCH") != NULL) {
			snprintf(out, sizeof(out), "* SEARCH 1\r\n%s OK s\r\n",
			    tag);
		} else if (strstr(line, "RFC822.SIZE") != NULL) {
			snprintf(out, sizeof(out), "* 1 FETCH (UID 1 "
			    "RFC822.SIZE 100)\r\n%s OK f\r\n", tag);
		} else if (strstr(line, "BODY.PEEK") != NULL) {
			switch (h->mode) {
			case H_LIE_BIG:
				h_put(fd, "* 1 FETCH (UID 1 BODY[] "
				    "{4000000000}\r\n");
				memset(junk, 'x', sizeof(junk));
				/* Until the client hangs up (4 MiB at most). */
				for (i = 0; i < 256 && !h->stop; i++)
					if (send(fd, junk, sizeof(junk),
					    MSG_NOSIGNAL) <= 0)
						break;
				return;
			case H_LIE_SHORT:
				h_put(fd, "* 1 FETCH (UID 1 BODY[] {50}\r\nabc");
				return;
			default:
				snprintf(out, sizeof(out), "* 1 FETCH (UID 1 "
				    "BODY[] {5}\r\nhello)\r\n%s OK f\r\n", tag);
			}
		} else if (strstr(line, "MOVE") != NULL) {
			snprintf(out, sizeof(out), "%s OK moved\r\n", tag);
		} else if (strstr(line, "IDLE") != NULL) {
			h_put(fd, "+ idling\r\n");
			if (h_line(fd, line, sizeof(line)) == -1)
				return;
			snprintf(out, sizeof(out), "%s OK idled\r\n", tag);
		} else if (strstr(line, "LOGOUT") != NULL) {
			snprintf(out, sizeof(out), "* BYE\r\n%s OK out\r\n",
			    tag);
			h_put(fd, out);
			return;
		} else
			snprintf(out, sizeof(out), "%s BAD what\r\n", tag);
		h_put(fd, out);
	}
}

static void *
h_main(void *arg)
{
	struct hostile	*h = arg;
	struct pollfd	 pfd;
	int		 fd;

	while (!h->stop) {
		pfd.fd = h->lfd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, 100) <= 0)
			continue;
		if ((fd = accept(h->lfd, NULL, NULL)) == -1)
			continue;
		h->conns++;
		h_session(h, fd);
		close(fd);
	}
	return NULL;
}

static int
h_start(struct hostile *h, enum hostile_mode mode)
{
	struct sockaddr_in	 sin;
	socklen_t		 sl = sizeof(sin);

	memset(h, 0, sizeof(*h));
	h->mode = mode;
	if ((h->lfd = socket(AF_INET, SOCK_STREAM, 0)) == -1)
		return -1;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(h->lfd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    listen(h->lfd, 8) == -1 ||
	    getsockname(h->lfd, (struct sockaddr *)&sin, &sl) == -1)
		return -1;
	h->port = ntohs(sin.sin_port);
	return pthread_create(&h->thread, NULL, h_main, h) == 0 ? 0 : -1;
}

static void
h_stop(struct hostile *h)
{
	h->stop = 1;
	pthread_join(h->thread, NULL);
	close(h->lfd);
}

static void
test_hostile(void)
{
	static const struct {
		enum hostile_mode	 mode;
		const char		*name;
		const char		*want;	/* in last_error; NULL: any */
	} cases[] = {
		{ H_LIE_BIG, "literal announcing 4 GB", "longer than allowed" },
		{ H_LIE_SHORT, "literal shorter than announced, then EOF",
		    "closed by the server" },
		{ H_GARBAGE, "a greeting that is not IMAP", "greeting" },
		{ H_STATUS, "* STATUS \"RUU\" () in SELECT", NULL },
	};
	struct fetch_params	 p;
	struct fetch_stats	 st;
	struct fetch		*f;
	struct hostile		 h;
	struct rec		 r;
	const char		*why = NULL;
	size_t			 i;

	for (i = 0; i < nitems(cases); i++) {
		if (h_start(&h, cases[i].mode) == -1) {
			ok(0, "%s: scripted server", cases[i].name);
			continue;
		}
		memset(&r, 0, sizeof(r));
		pthread_mutex_init(&r.lock, NULL);
		r.watched = "INBOX";
		params(&p, &r, h.port, RELAY_TLS_NONE, 1);
		p.server.allow_plaintext = 1;
		p.server.command_timeout = 3;
		/* No maildir here: the callback's folder check is moot. */
		r.base_processed = count_folder("Processed");
		r.base_aside = count_folder("Aside");
		p.mailbox = "INBOX";
		f = NULL;
		if (fetch_start(&p, &f, &why) != 0) {
			ok(0, "%s: fetch_start: %s", cases[i].name, why);
			h_stop(&h);
			continue;
		}
		if (cases[i].want != NULL) {
			ok(wait_until(f, c_errors, (void *)(intptr_t)2, 8000),
			    "%s: an error and a reconnect", cases[i].name);
			fetch_get_stats(f, &st);
			ok(strstr(st.last_error, cases[i].want) != NULL,
			    "%s: \"%s\"", cases[i].name, st.last_error);
			is_int(r.n, 0, "%s: nothing handed over",
			    cases[i].name);
		} else {
			ok(wait_until(f, c_moved, (void *)(intptr_t)1, 8000),
			    "%s: parsed, the message handed over and moved",
			    cases[i].name);
		}
		ok(fetch_stop(&f, 5000) == 0, "%s: stopped (%d connections)",
		    cases[i].name, h.conns);
		h_stop(&h);
		pthread_mutex_destroy(&r.lock);
	}
}

static void
test_params(void)
{
	struct fetch_params	 p;
	struct fetch		*f = NULL;
	const char		*why = "";
	int			 r;

	params(&p, NULL, 143, RELAY_TLS_IMPLICIT, 1);
	p.processed_folder = "Intake";
	r = fetch_start(&p, &f, &why);
	ok(r == -1 && f == NULL, "processed == mailbox refused (%s)", why);
	params(&p, NULL, 143, RELAY_TLS_IMPLICIT, 1);
	p.server.password = "a\r\nb";
	r = fetch_start(&p, &f, &why);
	ok(r == -1, "CR/LF in the password refused (%s)", why);
	params(&p, NULL, 143, RELAY_TLS_IMPLICIT, 1);
	p.idle_restart = 29 * 60;
	r = fetch_start(&p, &f, &why);
	ok(r == -1, "idle_restart of 29 min refused (%s)", why);
	params(&p, NULL, 143, RELAY_TLS_NONE, 1);
	p.server.host = "mail.example.org";
	p.server.allow_plaintext = 1;
	r = fetch_start(&p, &f, &why);
	ok(r == -1, "plaintext to a remote host refused (%s)", why);
}

int
main(void)
{
	char	*dovecot_sh;

	log_init("test_fetch", LOG_TO_STDERR, getenv("TEST_FETCH_DEBUG") !=
	    NULL);
	if (relay_global_init() != 0) {
		ok(0, "relay_global_init");
		return tap_done();
	}
	test_params();
	test_hostile();
	dovecot_sh = srcdir_file("tests/rig/dovecot.sh");
	rig = dovecot_sh;
	if (geteuid() != 0) {
		skip("the Dovecot rig needs root");
		return tap_done();
	}
	if (access("/usr/sbin/dovecot", X_OK) != 0 ||
	    access("/usr/lib/dovecot/imap", X_OK) != 0) {
		skip("Dovecot is not installed (dovecot-imapd, "
		    "dovecot-lmtpd; contrib/deps.sh test)");
		return tap_done();
	}
	if (rig_start() != 0) {
		ok(0, "tests/rig/dovecot.sh start");
		rig_stop();
		return tap_done();
	}
	test_append();
	test_worker_idle();
	test_worker_starttls_poll();
	test_fallback("no MOVE", "127.0.0.3", port_nomove, "NoMove", 1);
	test_fallback("no MOVE, no UIDPLUS", "127.0.0.4", port_plain,
	    "Plain", 0);
	test_refusals();
	rig_stop();
	free(dovecot_sh);
	return tap_done();
}
