/*
 * intake.c - replies in: a raw message becomes a committed, sealed reply
 * (filed or quarantined) or a bounce handed to the queue.  See intake.h
 * for the whole path and the decision table.
 *
 * Trust never rests on the sandboxed parser: the token, the From address,
 * the Authentication-Results verdict and the loop-prevention fields come
 * from inhdr.c, run here in the daemon on the header section only.  The
 * sandbox gives the content (subject, body, attachments), which is
 * sealed and never decides where anything goes.
 *
 * Nothing here logs content: log lines carry ids, reasons and sizes.
 */
#include "build.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "age.h"
#include "hash.h"
#include "inhdr.h"
#include "intake.h"
#include "letter.h"
#include "log.h"
#include "mime.h"
#include "queue.h"
#include "reply.h"
#include "sandbox.h"
#include "store.h"
#include "token.h"
#include "util.h"

#define INTAKE_MAX_HEADER	(1024 * 1024)	/* larger: quarantined */
#define INTAKE_FLAG_SCAN	(1024 * 1024)	/* red flags: bytes read */
#define INTAKE_PHRASES_MAX	1000
#define INTAKE_PHRASE_LEN	100
#define INTAKE_BOUNCE_WAIT	120		/* s for queue_bounce */

struct intake {
	struct intake_params	 params;
	struct store		*store;
	struct sandbox		*sandbox;
	char			**flags;	/* red-flag phrases */
	size_t			 nflags;
	char			**types;	/* attachment allow-list */
	size_t			 ntypes;
};

/* What one message's decision needs; freed by intake_case_clear(). */
struct intake_case {
	const struct intake_msg	*msg;
	struct inhdr		*hdr;		/* NULL: unusable */
	const char		*hdr_error;
	/* the token */
	const char		*addr;		/* it came to */
	enum token_purpose	 purpose;	/* 0: none found */
	enum token_result	 tr;
	struct token_claims	 claims;
	/* what it names */
	struct store_practice	*practice;
	struct store_letter	*letter;
	struct store_patient	*patient;
	struct store_clinician	*clinician;	/* the author */
	/* content */
	struct letter_doc	*doc;
	char			*new_text;
	unsigned		 removed;
	int			 parse_rc;	/* 0; -1 no; -2 died */
	struct letter_error	 perr;
	/* the decision */
	const char		*state;
	const char		*reason;
	char			 detail[200];
	const char		*sender;
	int			 urgent;
	int			 shared;
	int			 automatic;
	int			 own;
	int			 spoofed;	/* dmarc=fail */
};

/* The built-in red-flag phrases (sealpostd.8 lists them). */
static const char *const intake_default_flags[] = {
	"chest pain", "can't breathe", "cannot breathe",
	"difficulty breathing", "short of breath", "suicidal", "suicide",
	"kill myself", "end my life", "overdose", "self harm", "self-harm",
	"stroke", "face drooping", "collapsed", "unconscious", "seizure",
	"fitting", "severe bleeding", "coughing blood", "vomiting blood",
	"anaphylaxis", "throat swelling", "meningitis",
	"rash that does not fade", "sepsis"
};

static int	 intake_types_parse(const char *, char ***, size_t *);
static int	 intake_type_allowed(const struct intake *, const char *);
static void	 intake_answer(struct intake_result *, enum intake_outcome,
		    int, const char *);
static void	 intake_case_clear(struct intake_case *);
static int	 intake_find_token(struct intake *, struct intake_case *);
static int	 intake_practice(struct intake *, struct intake_case *,
		    const char *);
static int	 intake_thread(struct intake *, struct intake_case *);
static void	 intake_bounce(struct intake *, struct intake_case *,
		    struct intake_result *);
static int	 intake_references(struct intake *, struct intake_case *);
static int	 intake_content(struct intake *, struct intake_case *);
static void	 intake_decide(struct intake *, struct intake_case *);
static int	 intake_addr_equal(const char *, const char *);
static int	 intake_own_address(const struct intake_case *, const char *);
static void	 intake_commit(struct intake *, struct intake_case *,
		    struct intake_result *);
static int	 intake_seal(struct intake *, struct intake_case *,
		    unsigned char **, size_t *);
static void	 intake_dedup(const struct intake_case *, unsigned char *);
static const char *intake_team(const struct store_practice *);

/* --- phrases and types --------------------------------------------------- */

int
intake_red_flags_load(const char *path, char ***phrases_r, size_t *n_r,
    const char **error_r)
{
	char		**v = NULL, *line = NULL, *p, *e;
	size_t		 n = 0, cap = 0, i;
	FILE		*fp;

	*phrases_r = NULL;
	*n_r = 0;
	if (path == NULL || *path == '\0') {
		v = xcalloc(nitems(intake_default_flags), sizeof(*v));
		for (i = 0; i < nitems(intake_default_flags); i++)
			v[i] = xstrdup(intake_default_flags[i]);
		*phrases_r = v;
		*n_r = nitems(intake_default_flags);
		return 0;
	}
	if ((fp = fopen(path, "r")) == NULL) {
		*error_r = "red_flags_file: cannot open";
		return -1;
	}
	while (getline(&line, &cap, fp) != -1) {
		for (p = line; *p == ' ' || *p == '\t'; p++)
			;
		e = p + strcspn(p, "\r\n");
		while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		*e = '\0';
		if (*p == '\0' || *p == '#')
			continue;
		if (e - p > INTAKE_PHRASE_LEN) {
			*error_r = "red_flags_file: a phrase longer than 100";
			goto fail;
		}
		if (n == INTAKE_PHRASES_MAX) {
			*error_r = "red_flags_file: more than 1000 phrases";
			goto fail;
		}
		for (e = p; *e != '\0'; e++) {
			if ((unsigned char)*e < 0x20) {
				*error_r = "red_flags_file: control character";
				goto fail;
			}
		}
		v = xreallocarray(v, n + 1, sizeof(*v));
		v[n++] = xstrdup(p);
	}
	if (ferror(fp)) {
		*error_r = "red_flags_file: read error";
		goto fail;
	}
	fclose(fp);
	free(line);
	if (n == 0) {
		*error_r = "red_flags_file: no phrases";
		free(v);
		return -1;
	}
	*phrases_r = v;
	*n_r = n;
	return 0;
fail:
	fclose(fp);
	free(line);
	intake_red_flags_free(v, n);
	return -1;
}

void
intake_red_flags_free(char **v, size_t n)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* Lower-case ASCII, typographic apostrophes as ', white space as one SP. */
static size_t
intake_fold(const char *s, size_t len, char *out)
{
	const unsigned char	*p = (const unsigned char *)s;
	size_t			 i, o = 0;
	int			 sp = 1;

	for (i = 0; i < len; i++) {
		if (p[i] == 0xe2 && i + 2 < len && p[i + 1] == 0x80 &&
		    (p[i + 2] == 0x98 || p[i + 2] == 0x99)) {
			out[o++] = '\'';
			i += 2;
			sp = 0;
		} else if (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' ||
		    p[i] == '\r') {
			if (!sp)
				out[o++] = ' ';
			sp = 1;
		} else {
			out[o++] = (char)tolower(p[i]);
			sp = 0;
		}
	}
	out[o] = '\0';
	return o;
}

int
intake_red_flag_match(const char *text, char *const *phrases, size_t n,
    const char **which)
{
	char		*t, ph[INTAKE_PHRASE_LEN * 3 + 1];
	const char	*hit, *from;
	size_t		 len, tl, pl, i;
	int		 found = 0;

	if (which != NULL)
		*which = NULL;
	if (text == NULL)
		return 0;
	len = strlen(text);
	if (len > INTAKE_FLAG_SCAN)
		len = INTAKE_FLAG_SCAN;
	t = xmalloc(len + 1);
	tl = intake_fold(text, len, t);
	for (i = 0; i < n && !found; i++) {
		if (strlen(phrases[i]) > INTAKE_PHRASE_LEN)
			continue;
		pl = intake_fold(phrases[i], strlen(phrases[i]), ph);
		if (pl == 0)
			continue;
		for (from = t; (hit = memmem(from, tl - (size_t)(from - t),
		    ph, pl)) != NULL; from = hit + 1) {
			/* whole words: no letter or digit either side */
			if (hit > t && isalnum((unsigned char)hit[-1]))
				continue;
			if (isalnum((unsigned char)hit[pl]))
				continue;
			found = 1;
			if (which != NULL)
				*which = phrases[i];
			break;
		}
	}
	hash_wipe(t, tl);
	free(t);
	return found;
}

/* "a/b, c/d" into a list; 0 or -1. */
static int
intake_types_parse(const char *s, char ***v_r, size_t *n_r)
{
	char		**v = NULL;
	const char	*p = s, *e;
	size_t		 n = 0;

	while (*p != '\0') {
		while (*p == ' ' || *p == ',')
			p++;
		if (*p == '\0')
			break;
		e = p + strcspn(p, ",");
		while (e > p && e[-1] == ' ')
			e--;
		v = xreallocarray(v, n + 1, sizeof(*v));
		v[n++] = xstrndup(p, (size_t)(e - p));
		p = e;
	}
	*v_r = v;
	*n_r = n;
	return 0;
}

/* Whether a part's media type (parameters ignored) is allowed. */
static int
intake_type_allowed(const struct intake *in, const char *ctype)
{
	char		 t[128];
	size_t		 i, n;

	if (ctype == NULL)
		return 0;
	n = strcspn(ctype, "; \t");
	if (n >= sizeof(t))
		return 0;
	for (i = 0; i < n; i++)
		t[i] = (char)tolower((unsigned char)ctype[i]);
	t[n] = '\0';
	for (i = 0; i < in->ntypes; i++)
		if (strcmp(in->types[i], t) == 0)
			return 1;
	return 0;
}

/* --- the context --------------------------------------------------------- */

int
intake_new(const struct intake_params *p, struct intake **in_r,
    const char **error_r)
{
	struct intake		*in;
	struct sandbox_params	 sp;

	*in_r = NULL;
	in = xcalloc(1, sizeof(*in));
	in->params = *p;
	if (intake_red_flags_load(p->red_flags_file, &in->flags, &in->nflags,
	    error_r) != 0)
		goto fail;
	intake_types_parse(p->attachment_types != NULL ?
	    p->attachment_types : "", &in->types, &in->ntypes);
	if (store_open(p->database, STORE_RDWR, &in->store, error_r) !=
	    STORE_OK)
		goto fail;
	memset(&sp, 0, sizeof(sp));
	sp.program = p->parse_program;
	sp.memory_limit = p->parse_memory_limit;
	sp.timeout = p->parse_timeout;
	sp.max_size = p->max_size;
	if ((in->sandbox = sandbox_new(&sp)) == NULL) {
		*error_r = "cannot set up the parse sandbox";
		goto fail;
	}
	*in_r = in;
	return 0;
fail:
	intake_free(&in);
	return -1;
}

void
intake_free(struct intake **inp)
{
	struct intake	*in = *inp;

	if (in == NULL)
		return;
	sandbox_free(&in->sandbox);
	store_close(&in->store);
	intake_red_flags_free(in->flags, in->nflags);
	intake_red_flags_free(in->types, in->ntypes);
	free(in);
	*inp = NULL;
}

/* What the caller (and an LMTP client) is told, success or not. */
static void
intake_answer(struct intake_result *res, enum intake_outcome o, int code,
    const char *text)
{
	res->outcome = o;
	res->smtp_code = code;
	strlcpy_sp(res->smtp_text, text, sizeof(res->smtp_text));
}

static void
intake_case_clear(struct intake_case *c)
{
	free(c->hdr);
	store_practice_free(&c->practice);
	store_letter_free(&c->letter);
	store_patient_free(&c->patient);
	store_clinician_free(&c->clinician);
	letter_doc_free(&c->doc);
	if (c->new_text != NULL) {
		hash_wipe(c->new_text, strlen(c->new_text));
		free(c->new_text);
	}
	memset(c, 0, sizeof(*c));
}

/* --- the token and what it names ----------------------------------------- */

/*
 * The first candidate address carrying a bounce+ or reply+ token: the
 * envelope recipient (LMTP), else the header recipients in inhdr's order.
 * 1 found (c->purpose, c->tr, c->claims set), 0 none.
 */
static int
intake_find_token(struct intake *in, struct intake_case *c)
{
	const char	*cand[INHDR_MAX_RCPTS + 1], *tok, *error = NULL;
	size_t		 ncand = 0, i, toklen;
	enum token_purpose purposes[] = { TOKEN_BOUNCE, TOKEN_REPLY };
	size_t		 k;

	if (c->msg->rcpt != NULL)
		cand[ncand++] = c->msg->rcpt;
	else if (c->hdr != NULL) {
		for (i = 0; i < c->hdr->nrcpts; i++)
			cand[ncand++] = c->hdr->rcpts[i].addr;
	}
	for (i = 0; i < ncand; i++) {
		for (k = 0; k < nitems(purposes); k++) {
			if (token_from_address(cand[i], strlen(cand[i]),
			    purposes[k], &tok, &toklen) != 0)
				continue;
			c->addr = cand[i];
			c->purpose = purposes[k];
			c->tr = token_check(in->params.tkeys,
			    in->params.ntkeys, purposes[k], tok, toklen,
			    util_time(), &c->claims, &error);
			return 1;
		}
	}
	if (ncand > 0)
		c->addr = cand[0];
	return 0;
}

/*
 * The practice: the thread's when known, else the IMAP mailbox's, else
 * the one whose domain the address is at.  0 found, -1 none, -2 store.
 */
static int
intake_practice(struct intake *in, struct intake_case *c, const char *addr)
{
	const char	*at, *error = NULL;
	int		 r;

	if (c->practice != NULL)
		return 0;
	if (c->letter != NULL)
		r = store_practice_get(in->store, c->letter->practice_id,
		    &c->practice, &error);
	else if (c->msg->rcpt == NULL && in->params.imap_practice != NULL &&
	    *in->params.imap_practice != '\0')
		r = store_practice_by_domain(in->store,
		    in->params.imap_practice, &c->practice, &error);
	else if (addr != NULL && (at = strrchr(addr, '@')) != NULL)
		r = store_practice_by_domain(in->store, at + 1, &c->practice,
		    &error);
	else
		return -1;
	if (r == STORE_OK)
		return 0;
	return r == STORE_NOTFOUND ? -1 : -2;
}

/*
 * Load the thread the claims name: letter, its patient and author.
 * 0 loaded, -1 no such thread (or not this recipient's), -2 store.
 */
static int
intake_thread(struct intake *in, struct intake_case *c)
{
	const char	*error = NULL;
	int		 r;

	r = store_letter_get(in->store, c->claims.thread, &c->letter, &error);
	if (r == STORE_NOTFOUND)
		return -1;
	if (r != STORE_OK)
		return -2;
	if (c->purpose == TOKEN_REPLY &&
	    c->letter->patient_id != c->claims.recipient) {
		store_letter_free(&c->letter);
		return -1;
	}
	if (store_patient_get(in->store, c->letter->patient_id, &c->patient,
	    &error) != STORE_OK)
		return -2;
	if (c->letter->author_id > 0 && store_clinician_get(in->store,
	    c->letter->author_id, &c->clinician, &error) == STORE_ERROR)
		return -2;
	return 0;
}

/*
 * No token: a Message-ID of ours in In-Reply-To or References.  0 (the
 * thread loaded if one matched), -1 store trouble (try again later).
 */
static int
intake_references(struct intake *in, struct intake_case *c)
{
	const char	*ids[INHDR_MAX_REFS + 1], *error = NULL;
	int64_t		 did, lid, pid;
	size_t		 n = 0, i;
	int		 r;

	if (c->hdr == NULL)
		return 0;
	if (c->hdr->in_reply_to[0] != '\0')
		ids[n++] = c->hdr->in_reply_to;
	for (i = c->hdr->nrefs; i > 0; i--)
		ids[n++] = c->hdr->refs[i - 1];
	for (i = 0; i < n; i++) {
		r = store_delivery_by_message_id(in->store, ids[i], &did,
		    &lid, &pid, &error);
		if (r == STORE_NOTFOUND)
			continue;
		if (r != STORE_OK)
			return -1;
		c->claims.thread = lid;
		c->claims.recipient = pid;
		c->purpose = TOKEN_REPLY;	/* for intake_thread */
		if ((r = intake_thread(in, c)) == 0)
			return 0;
		c->purpose = 0;
		/* a half-loaded thread must not be taken for a match */
		if (r == -2)
			return -1;
	}
	return 0;
}

#define QUARANTINE(c, r, ...) do {					\
	(c)->state = STORE_RS_QUARANTINED;				\
	(c)->reason = (r);						\
	snprintf((c)->detail, sizeof((c)->detail), __VA_ARGS__);	\
} while (0)

/* --- bounces ------------------------------------------------------------- */

struct intake_wait {
	pthread_mutex_t		 mu;
	pthread_cond_t		 cv;
	int			 refs;
	int			 done;
	enum queue_bounce_status status;
	char			 error[200];
};

static void
intake_wait_unref(struct intake_wait *w)
{
	int	 last;

	pthread_mutex_lock(&w->mu);
	last = --w->refs == 0;
	pthread_mutex_unlock(&w->mu);
	if (last) {
		pthread_mutex_destroy(&w->mu);
		pthread_cond_destroy(&w->cv);
		free(w);
	}
}

/* Loop thread: the queue answered. */
static void
intake_bounce_done(struct queue_bounce *qb, void *arg)
{
	struct intake_wait	*w = arg;

	pthread_mutex_lock(&w->mu);
	w->status = qb->status;
	strlcpy_sp(w->error, qb->error, sizeof(w->error));
	w->done = 1;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
	queue_bounce_free(&qb);
	intake_wait_unref(w);
}

/*
 * A bounce with a valid token goes to the queue (DSN parse in the
 * sandbox, then the failsafe) and we wait for its answer.  Returns 1
 * when handled (res set), 0 when the message must be quarantined (the
 * reason in c).
 */
static int
intake_bounce_queue(struct intake *in, struct intake_case *c,
    struct intake_result *res)
{
	struct queue_bounce	*qb;
	struct intake_wait	*w;
	struct timespec		 until;
	enum queue_bounce_status st;
	int			 done;

	if (in->params.queue == NULL) {
		intake_answer(res, INTAKE_TEMPFAIL, 451,
		    "4.3.0 bounce processing unavailable");
		return 1;
	}
	w = xcalloc(1, sizeof(*w));
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	w->refs = 2;
	qb = xcalloc(1, sizeof(*qb));
	qb->letter_id = c->claims.thread;
	qb->delivery_id = c->claims.recipient;
	qb->raw = xmemdup(c->msg->raw, c->msg->len);
	qb->len = c->msg->len;
	qb->done = intake_bounce_done;
	qb->arg = w;
	queue_bounce(in->params.queue, qb);

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += INTAKE_BOUNCE_WAIT;
	pthread_mutex_lock(&w->mu);
	while (!w->done && pthread_cond_timedwait(&w->cv, &w->mu, &until) !=
	    ETIMEDOUT)
		;
	done = w->done;
	st = w->status;
	pthread_mutex_unlock(&w->mu);
	intake_wait_unref(w);
	if (!done) {
		intake_answer(res, INTAKE_TEMPFAIL, 451,
		    "4.3.0 bounce not processed in time; try again");
		return 1;
	}
	switch (st) {
	case QB_APPLIED:
	case QB_NOTED:
		log_info("intake: bounce for delivery %lld %s",
		    (long long)c->claims.recipient,
		    st == QB_APPLIED ? "applied" : "noted");
		intake_answer(res, INTAKE_BOUNCE, 250,
		    "2.0.0 delivery status report processed");
		return 1;
	case QB_NOT_REPORT:
		c->reason = "not_a_report";
		snprintf(c->detail, sizeof(c->detail), "mail to the bounce "
		    "address of delivery %lld is not a delivery status report",
		    (long long)c->claims.recipient);
		return 0;
	case QB_HOSTILE:
		c->reason = "parse_crashed";
		snprintf(c->detail, sizeof(c->detail), "the parser failed on "
		    "a bounce for delivery %lld",
		    (long long)c->claims.recipient);
		return 0;
	default:
		intake_answer(res, INTAKE_TEMPFAIL, 451,
		    "4.3.0 bounce processing unavailable; try again");
		return 1;
	}
}

/*
 * Mail to a bounce+ address: a valid token's report goes to the queue;
 * anything else (bad token, not a report, a parser failure) is
 * quarantined like a reply, never answered.
 */
static void
intake_bounce(struct intake *in, struct intake_case *c,
    struct intake_result *res)
{
	const char	*error = NULL;
	int		 r;

	if (c->tr == TOKEN_OK) {
		r = store_letter_get(in->store, c->claims.thread, &c->letter,
		    &error);
		if (r == STORE_OK) {
			if (intake_bounce_queue(in, c, res))
				return;
		} else if (r == STORE_NOTFOUND)
			QUARANTINE(c, "unknown_thread", "bounce for a letter "
			    "this store does not hold");
		else {
			intake_answer(res, INTAKE_TEMPFAIL, 451,
			    "4.3.0 store unavailable; try again");
			return;
		}
	} else
		QUARANTINE(c, "bad_token", "bounce address token refused "
		    "(%s)", token_strresult(c->tr));
	if ((r = intake_practice(in, c, c->addr)) != 0) {
		if (r == -1)
			intake_answer(res, INTAKE_REFUSED, 550,
			    "5.1.1 not a bounce address of this service");
		else
			intake_answer(res, INTAKE_TEMPFAIL, 451,
			    "4.3.0 store unavailable; try again");
		return;
	}
	c->state = STORE_RS_QUARANTINED;
	c->sender = "unverified";
	c->automatic = 1;		/* never answer a bounce */
	if (c->msg->raw != NULL && intake_content(in, c) != 0) {
		intake_answer(res, INTAKE_TEMPFAIL, 451,
		    "4.3.0 temporarily unable to take the message");
		return;
	}
	intake_commit(in, c, res);
}

/* --- content ------------------------------------------------------------- */

/* Parse in the sandbox and extract the new text.  0, or -1 tempfail. */
static int
intake_content(struct intake *in, struct intake_case *c)
{
	struct reply_result	 rr;
	const char		*body;
	char			*html_text = NULL;
	size_t			 blen, hl;

	memset(&c->perr, 0, sizeof(c->perr));
	c->parse_rc = sandbox_parse_letter(in->sandbox, c->msg->raw,
	    c->msg->len, &c->doc, &c->perr);
	if (c->parse_rc == -2 && strcmp(c->perr.code, "sandbox_unavailable")
	    == 0)
		return -1;
	if (c->parse_rc != 0)
		return 0;
	body = c->doc->text;
	blen = body != NULL ? strlen(body) : 0;
	/* An empty text part beside the HTML (some clients send one): the
	 * words, and any red flag, are in the HTML. */
	if (body != NULL && body[strspn(body, " \t\r\n")] == '\0' &&
	    c->doc->html != NULL)
		body = NULL;
	if (body == NULL && c->doc->html != NULL) {
		html_text = reply_html_to_text(c->doc->html,
		    strlen(c->doc->html), &hl);
		if (html_text == NULL)
			log_fatal("intake: html to text");
		body = html_text;
		blen = hl;
	}
	memset(&rr, 0, sizeof(rr));
	c->new_text = reply_extract(body != NULL ? body : "", blen, &rr);
	if (c->new_text == NULL)
		log_fatal("intake: reply_extract");
	c->removed = rr.removed;
	if (html_text != NULL) {
		hash_wipe(html_text, hl);
		free(html_text);
	}
	return 0;
}

/* --- the decision -------------------------------------------------------- */

/* addr-specs equal: domain case-insensitive, local part exact. */
static int
intake_addr_equal(const char *a, const char *b)
{
	const char	*aa = strrchr(a, '@'), *ba = strrchr(b, '@');

	if (aa == NULL || ba == NULL || aa - a != ba - b)
		return 0;
	return memcmp(a, b, (size_t)(aa - a)) == 0 &&
	    strcasecmp(aa, ba) == 0;
}

/* From one of the practice's own addresses (a loop in the making). */
static int
intake_own_address(const struct intake_case *c, const char *from)
{
	const struct store_practice *p = c->practice;
	const char	*at;

	if (p == NULL || from == NULL || (at = strrchr(from, '@')) == NULL)
		return 0;
	if (strcasecmp(at + 1, p->domain) == 0 ||
	    (p->reply_domain != NULL && strcasecmp(at + 1, p->reply_domain)
	    == 0))
		return 1;
	return (p->failsafe_email != NULL && strcasecmp(from,
	    p->failsafe_email) == 0) || (p->team_email != NULL &&
	    strcasecmp(from, p->team_email) == 0) || (p->duty_email != NULL &&
	    strcasecmp(from, p->duty_email) == 0);
}

static const char *
intake_team(const struct store_practice *p)
{
	if (p->team_email != NULL && *p->team_email != '\0')
		return p->team_email;
	if (p->failsafe_email != NULL && *p->failsafe_email != '\0')
		return p->failsafe_email;
	return NULL;
}

/* The decision table (TESTPLAN 3.4) for a reply with its thread loaded. */
static void
intake_decide(struct intake *in, struct intake_case *c)
{
	const struct inhdr *h = c->hdr;
	enum inhdr_auth	 auth = INHDR_AUTH_NONE;
	char		 why[160] = "";
	const char	*flag = NULL, *error = NULL;
	int64_t		 nshared = 0;
	size_t		 i;

	c->state = STORE_RS_FILED;
	c->sender = "unverified";
	if (h != NULL) {
		auth = inhdr_auth(h, in->params.authserv_id,
		    in->params.authserv_topmost, why, sizeof(why));
		if (auth == INHDR_AUTH_PASS)
			c->sender = "verified";
		/* never answer a From the provider says is forged */
		if ((c->spoofed = auth == INHDR_AUTH_FAIL))
			c->sender = "spoof";
	}

	/* Red flags read the patient's new words and the subject only: the
	 * quoted letter may well name the very symptoms. */
	if (c->new_text != NULL && intake_red_flag_match(c->new_text,
	    in->flags, in->nflags, &flag))
		c->urgent = 1;
	else if (c->doc != NULL && c->doc->subject != NULL &&
	    intake_red_flag_match(c->doc->subject, in->flags, in->nflags,
	    &flag))
		c->urgent = 1;

	if (c->patient != NULL && c->patient->email != NULL &&
	    (c->patient->shared_ok || (store_address_shared(in->store,
	    c->patient->practice_id, c->patient->id, c->patient->email,
	    &nshared, &error) == STORE_OK && nshared > 0)))
		c->shared = 1;

	if (c->reason != NULL) {	/* the token already failed */
		c->state = STORE_RS_QUARANTINED;
		return;
	}
	if (h == NULL) {
		QUARANTINE(c, "header_unusable", "header section unusable: %s",
		    c->hdr_error != NULL ? c->hdr_error : "?");
		return;
	}
	if (c->letter->closed != 0) {
		QUARANTINE(c, "thread_closed", "reply to letter %lld, closed",
		    (long long)c->letter->id);
		return;
	}
	if (h->from_flags != 0 || h->from[0] == '\0') {
		c->sender = "mismatch";
		QUARANTINE(c, "from_unusable", "From field: %s",
		    inhdr_from_problem(h->from_flags));
		return;
	}
	if (c->patient->email == NULL ||
	    !intake_addr_equal(h->from, c->patient->email)) {
		c->sender = "mismatch";
		QUARANTINE(c, "from_mismatch", "sent from a different address "
		    "than the patient's registered one");
		return;
	}
	if (auth == INHDR_AUTH_FAIL) {
		c->sender = "spoof";
		QUARANTINE(c, "dmarc_fail", "possible spoof: %s", why);
		return;
	}
	if (c->parse_rc == -2) {
		QUARANTINE(c, "parse_crashed", "the parser failed on this "
		    "message (%s)", c->perr.code);
		return;
	}
	if (c->parse_rc != 0) {
		QUARANTINE(c, "parse_failed", "the message could not be read "
		    "(%s)", c->perr.code);
		return;
	}
	for (i = 0; i < c->doc->natt; i++) {
		if (!intake_type_allowed(in, c->doc->att[i].content_type)) {
			QUARANTINE(c, "attachment_type", "attachment %zu has "
			    "a type not allowed for replies", i + 1);
			return;
		}
	}
	/* The sandbox only bounds them by the message size: the [replies]
	 * limits are ours to apply (0: none). */
	if (in->params.max_attachments > 0 &&
	    c->doc->natt > in->params.max_attachments) {
		QUARANTINE(c, "too_large", "%zu attachments, over "
		    "max_attachments %zu", c->doc->natt,
		    in->params.max_attachments);
		return;
	}
	for (i = 0; i < c->doc->natt; i++) {
		if (in->params.max_attachment_size > 0 &&
		    c->doc->att[i].len > in->params.max_attachment_size) {
			QUARANTINE(c, "too_large", "attachment %zu of %zu "
			    "bytes, over max_attachment_size", i + 1,
			    c->doc->att[i].len);
			return;
		}
	}
}

/* --- sealing and committing ---------------------------------------------- */

static int
intake_seal(struct intake *in, struct intake_case *c, unsigned char **out,
    size_t *outlen)
{
	struct reply_doc	 rd;
	unsigned char		 pks[2][AGE_KEY_LEN];
	const char		*error = NULL;
	char			*json;
	size_t			 jlen, npk = 0;
	int			 r;

	(void)in;
	memset(&rd, 0, sizeof(rd));
	rd.new_text = c->new_text != NULL ? c->new_text : "";
	rd.removed = c->removed;
	rd.original = (unsigned char *)(uintptr_t)c->msg->raw;
	rd.original_len = c->msg->raw != NULL ? c->msg->len : 0;
	rd.content = c->doc;
	if ((json = reply_doc_serialize(&rd, &jlen)) == NULL) {
		/* not UTF-8 after all: keep the original, which is all */
		rd.content = NULL;
		rd.new_text = "";
		rd.removed = 0;
		if ((json = reply_doc_serialize(&rd, &jlen)) == NULL)
			return -1;
	}
	memcpy(pks[npk++], c->practice->archive_pk, AGE_KEY_LEN);
	if (strcmp(c->state, STORE_RS_FILED) == 0 && c->clinician != NULL)
		memcpy(pks[npk++], c->clinician->pk, AGE_KEY_LEN);
	r = age_encrypt((const unsigned char (*)[AGE_KEY_LEN])pks, npk, json,
	    jlen, 0, out, outlen, &error);
	hash_wipe(json, jlen);
	free(json);
	if (r != 0)
		log_warnx("intake: sealing failed: %s", error ? error : "?");
	return r == 0 ? 0 : -1;
}

static void
intake_dedup(const struct intake_case *c, unsigned char *out)
{
	unsigned char	 raw[HASH_SHA256_LEN];
	char		 thread[24];
	const char	*ref;
	const void	*key;
	size_t		 keylen;

	snprintf(thread, sizeof(thread), "%lld",
	    (long long)(c->letter != NULL ? c->letter->id : 0));
	/* the Message-ID (with its NUL), else a digest of the message */
	if (c->hdr != NULL && c->hdr->message_id[0] != '\0') {
		key = c->hdr->message_id;
		keylen = strlen(c->hdr->message_id) + 1;
	} else {
		ref = c->msg->source_ref != NULL ? c->msg->source_ref : "";
		if (c->msg->raw != NULL)
			hash_sha256(c->msg->raw, c->msg->len, raw);
		else
			hash_sha256(ref, strlen(ref), raw);
		key = raw;
		keylen = sizeof(raw);
	}
	hash_sha256_v(out, "sealpost-reply-dedup", (size_t)21, key, keylen,
	    thread, strlen(thread), (const void *)NULL);
}

static void
intake_commit(struct intake *in, struct intake_case *c,
    struct intake_result *res)
{
	struct store_reply_new	 e;
	struct store_reply_mail_new mails[5];
	const char		*team, *error = NULL, *from;
	size_t			 nm = 0;
	int			 r, filed, answerable;

	memset(&e, 0, sizeof(e));
	filed = strcmp(c->state, STORE_RS_FILED) == 0;
	from = c->hdr != NULL && c->hdr->from_flags == 0 &&
	    c->hdr->from[0] != '\0' ? c->hdr->from : NULL;
	if (c->hdr != NULL) {
		const char *why;

		if (inhdr_is_automatic(c->hdr, &why))
			c->automatic = 1;
	}
	c->own = intake_own_address(c, from);
	/* an address our builder cannot write to is never answered */
	answerable = from != NULL && !c->automatic && !c->own &&
	    !c->spoofed && mime_addr_check(from) == NULL;
	team = intake_team(c->practice);

	if (filed) {
		if (strcmp(in->params.forward, "smtp") == 0) {
			if (c->clinician != NULL && c->clinician->active &&
			    c->clinician->email != NULL) {
				mails[nm].kind = STORE_RM_FORWARD;
				mails[nm].to = c->clinician->email;
				mails[nm++].clinician_id = c->clinician->id;
			} else if (team != NULL) {
				mails[nm].kind = STORE_RM_FORWARD;
				mails[nm].to = team;
				mails[nm++].clinician_id = 0;
			} else
				log_warnx("intake: practice %lld has neither "
				    "team_email nor failsafe_email: reply "
				    "not forwarded (visible in the API)",
				    (long long)c->practice->id);
		} else if (strcmp(in->params.forward, "imap") == 0) {
			mails[nm].kind = STORE_RM_APPEND;
			mails[nm].to = NULL;
			mails[nm++].clinician_id = c->clinician != NULL &&
			    c->clinician->active ? c->clinician->id : 0;
		}
		/* the registered address: From equals it when filed */
		if (answerable && mime_addr_check(c->patient->email) == NULL) {
			mails[nm].kind = STORE_RM_ACK;
			mails[nm].to = c->patient->email;
			mails[nm++].clinician_id = 0;
		}
	} else {
		if (team != NULL) {
			mails[nm].kind = STORE_RM_QUARANTINE;
			mails[nm].to = team;
			mails[nm++].clinician_id = 0;
		}
		if (answerable && c->reason != NULL &&
		    (strcmp(c->reason, "bad_token") == 0 ||
		    strcmp(c->reason, "expired_token") == 0 ||
		    strcmp(c->reason, "thread_closed") == 0 ||
		    strcmp(c->reason, "unknown_thread") == 0 ||
		    strcmp(c->reason, "no_token") == 0)) {
			mails[nm].kind = STORE_RM_CONTACT;
			mails[nm].to = from;
			mails[nm++].clinician_id = 0;
		}
	}
	if (c->urgent) {
		const char *duty = c->practice->duty_email != NULL &&
		    *c->practice->duty_email != '\0' ?
		    c->practice->duty_email : team;

		if (duty != NULL) {
			mails[nm].kind = STORE_RM_REDFLAG;
			mails[nm].to = duty;
			mails[nm++].clinician_id = 0;
		}
	}

	e.practice_id = c->practice->id;
	e.letter_id = c->letter != NULL ? c->letter->id : 0;
	e.patient_id = c->letter != NULL ? c->letter->patient_id : 0;
	e.clinician_id = filed && c->clinician != NULL &&
	    c->clinician->active ? c->clinician->id : 0;
	e.state = c->state;
	e.reason = filed ? NULL : c->reason;
	e.detail = c->detail[0] != '\0' ? c->detail : NULL;
	e.sender = c->sender;
	e.from_addr = c->hdr != NULL && c->hdr->from[0] != '\0' ?
	    c->hdr->from : NULL;
	e.message_id = c->hdr != NULL && c->hdr->message_id[0] != '\0' ?
	    c->hdr->message_id : NULL;
	e.source = c->msg->source;
	intake_dedup(c, e.dedup);
	e.urgent = c->urgent;
	e.shared = c->shared;
	e.received = util_time();
	e.mails = mails;
	e.nmails = nm;
	/* A red flag gets the safety net at once, whatever the window. */
	e.ack_window = c->urgent ? 0 : in->params.ack_window;
	if (intake_seal(in, c, (unsigned char **)&e.sealed, &e.sealed_len)
	    != 0) {
		intake_answer(res, INTAKE_TEMPFAIL, 451,
		    "4.3.0 could not seal the reply; try again");
		return;
	}
	r = store_replies_commit(in->store, &e, 1, &error);
	free((void *)(uintptr_t)e.sealed);
	if (r != STORE_OK) {
		log_warnx("intake: commit failed: %s", error ? error : "?");
		intake_answer(res, INTAKE_TEMPFAIL, 451,
		    "4.3.0 store unavailable; try again");
		return;
	}
	res->reply_id = e.reply_id;
	if (e.result == STORE_REPLY_DUPLICATE) {
		log_info("intake: duplicate of reply %lld (%s), not filed "
		    "again", (long long)e.reply_id, c->msg->source);
		intake_answer(res, INTAKE_DUPLICATE, 250,
		    "2.0.0 already received");
		return;
	}
	if (!filed)
		strlcpy_sp(res->reason, c->reason, sizeof(res->reason));
	log_info("intake: reply %lld %s%s%s practice=%lld letter=%lld "
	    "sender=%s%s%s mails=%zu source=%s", (long long)e.reply_id,
	    c->state, filed ? "" : " reason=", filed ? "" : c->reason,
	    (long long)e.practice_id, (long long)e.letter_id, c->sender,
	    c->urgent ? " urgent" : "", c->shared ? " shared" : "", nm,
	    c->msg->source);
	if (nm > 0 && in->params.queue != NULL)
		queue_kick(in->params.queue);
	if (filed)
		intake_answer(res, INTAKE_FILED, 250, "2.0.0 reply filed");
	else
		intake_answer(res, INTAKE_QUARANTINED, 250,
		    "2.0.0 reply received, held for the practice");
}

/* --- the whole path ------------------------------------------------------ */

void
intake_process(struct intake *in, const struct intake_msg *msg,
    struct intake_result *res)
{
	struct intake_case	 c;
	int			 r;

	memset(res, 0, sizeof(*res));
	memset(&c, 0, sizeof(c));
	c.msg = msg;

	if (msg->raw != NULL) {
		c.hdr = xcalloc(1, sizeof(*c.hdr));
		if (inhdr_parse(msg->raw, msg->len, INTAKE_MAX_HEADER, c.hdr,
		    &c.hdr_error) != 0) {
			free(c.hdr);
			c.hdr = NULL;
		}
	}
	intake_find_token(in, &c);

	if (c.purpose == TOKEN_BOUNCE) {
		intake_bounce(in, &c, res);
		goto out;
	}

	if (c.purpose == TOKEN_REPLY && (c.tr == TOKEN_OK ||
	    c.tr == TOKEN_EXPIRED)) {
		r = intake_thread(in, &c);
		if (r == -2)
			goto tempfail;
		if (r == -1)
			QUARANTINE(&c, "unknown_thread", "the reply address "
			    "names a letter this store does not hold");
		else if (c.tr == TOKEN_EXPIRED)
			QUARANTINE(&c, "expired_token", "the reply address of "
			    "letter %lld has expired", (long long)c.letter->id);
	} else if (c.purpose == TOKEN_REPLY) {
		QUARANTINE(&c, "bad_token", "reply address token refused "
		    "(%s)", token_strresult(c.tr));
	} else {
		if (intake_references(in, &c) != 0)
			goto tempfail;
		if (c.letter != NULL)
			QUARANTINE(&c, "references_only", "no reply token; "
			    "matched letter %lld by References only (lower "
			    "trust)", (long long)c.letter->id);
		else if (msg->raw == NULL)
			QUARANTINE(&c, "too_large", "message of %zu bytes, "
			    "over [replies] max_size", msg->len);
		else if (c.hdr == NULL)
			QUARANTINE(&c, "header_unusable", "header section "
			    "unusable (%s): no reply address could be read",
			    c.hdr_error != NULL ? c.hdr_error : "?");
		else
			QUARANTINE(&c, "no_token", "not addressed to a reply "
			    "address");
	}
	if ((r = intake_practice(in, &c, c.addr)) == -2)
		goto tempfail;
	if (r == -1)
		goto refuse;
	if (msg->raw == NULL) {
		QUARANTINE(&c, "too_large", "message of %zu bytes, over "
		    "[replies] max_size", msg->len);
		c.sender = "unverified";
		c.automatic = 1;
		intake_commit(in, &c, res);
		goto out;
	}
	if (intake_content(in, &c) != 0)
		goto tempfail;
	intake_decide(in, &c);
	intake_commit(in, &c, res);
	goto out;

refuse:
	log_info("intake: message for no practice of ours refused (%s)",
	    msg->source);
	intake_answer(res, INTAKE_REFUSED, 550,
	    "5.1.1 not a reply address of this service");
	goto out;
tempfail:
	intake_answer(res, INTAKE_TEMPFAIL, 451,
	    "4.3.0 temporarily unable to take the reply; try again");
out:
	intake_case_clear(&c);
}

/* --- the pool (LMTP) ----------------------------------------------------- */

struct intake_pool {
	struct event_base	*base;
	struct event		*ev;
	pthread_mutex_t		 mu;
	pthread_cond_t		 cv;
	struct intake_job	*in_head, *done_head;
	pthread_t		*threads;
	struct intake		**ctx;
	int			 nthreads;
	int			 stopping;
	int			 running;
};

static void *
intake_pool_main(void *arg)
{
	struct intake_pool	*pool = ((void **)arg)[0];
	struct intake		*in = ((void **)arg)[1];
	struct intake_job	*job, **pp;
	struct intake_msg	 m;
	size_t			 i;

	free(arg);
	pthread_mutex_lock(&pool->mu);
	for (;;) {
		while (pool->in_head == NULL && !pool->stopping)
			pthread_cond_wait(&pool->cv, &pool->mu);
		if ((job = pool->in_head) == NULL)
			break;
		pool->in_head = job->next;
		pthread_mutex_unlock(&pool->mu);

		job->results = xcalloc(job->nrcpts > 0 ? job->nrcpts : 1,
		    sizeof(*job->results));
		for (i = 0; i < job->nrcpts; i++) {
			memset(&m, 0, sizeof(m));
			m.raw = job->raw;
			m.len = job->len;
			m.rcpt = job->rcpts[i];
			m.source = "lmtp";
			intake_process(in, &m, &job->results[i]);
		}

		pthread_mutex_lock(&pool->mu);
		job->next = NULL;
		for (pp = &pool->done_head; *pp != NULL; pp = &(*pp)->next)
			;
		*pp = job;
		event_active(pool->ev, EV_READ, 0);
	}
	pool->running--;
	pthread_cond_broadcast(&pool->cv);
	pthread_mutex_unlock(&pool->mu);
	return NULL;
}

/* Loop thread: hand finished jobs back. */
static void
intake_pool_done_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct intake_pool	*pool = arg;
	struct intake_job	*job, *list;

	(void)fd;
	(void)ev;
	pthread_mutex_lock(&pool->mu);
	list = pool->done_head;
	pool->done_head = NULL;
	pthread_mutex_unlock(&pool->mu);
	while ((job = list) != NULL) {
		list = job->next;
		job->next = NULL;
		job->done(job, job->arg);
	}
}

int
intake_pool_start(struct event_base *base, const struct intake_params *p,
    int threads, struct intake_pool **pool_r, const char **error_r)
{
	struct intake_pool	*pool;
	void			**arg;
	int			 i;

	*pool_r = NULL;
	pool = xcalloc(1, sizeof(*pool));
	pool->base = base;
	pthread_mutex_init(&pool->mu, NULL);
	pthread_cond_init(&pool->cv, NULL);
	pool->ev = event_new(base, -1, 0, intake_pool_done_cb, pool);
	pool->threads = xcalloc((size_t)threads, sizeof(*pool->threads));
	pool->ctx = xcalloc((size_t)threads, sizeof(*pool->ctx));
	for (i = 0; i < threads; i++) {
		if (intake_new(p, &pool->ctx[i], error_r) != 0)
			goto fail;
	}
	for (i = 0; i < threads; i++) {
		arg = xcalloc(2, sizeof(*arg));
		arg[0] = pool;
		arg[1] = pool->ctx[i];
		pthread_mutex_lock(&pool->mu);
		pool->running++;
		pthread_mutex_unlock(&pool->mu);
		if (pthread_create(&pool->threads[i], NULL, intake_pool_main,
		    arg) != 0)
			log_fatal("intake: pthread_create");
		pool->nthreads++;
	}
	*pool_r = pool;
	return 0;
fail:
	for (i = 0; i < threads; i++)
		intake_free(&pool->ctx[i]);
	free(pool->ctx);
	free(pool->threads);
	event_free(pool->ev);
	pthread_mutex_destroy(&pool->mu);
	pthread_cond_destroy(&pool->cv);
	free(pool);
	return -1;
}

void
intake_pool_submit(struct intake_pool *pool, struct intake_job *job)
{
	struct intake_job	**pp;

	job->next = NULL;
	pthread_mutex_lock(&pool->mu);
	for (pp = &pool->in_head; *pp != NULL; pp = &(*pp)->next)
		;
	*pp = job;
	pthread_cond_signal(&pool->cv);
	pthread_mutex_unlock(&pool->mu);
}

void
intake_job_free(struct intake_job **jp)
{
	struct intake_job	*job = *jp;
	size_t			 i;

	if (job == NULL)
		return;
	if (job->raw != NULL) {
		hash_wipe(job->raw, job->len);
		free(job->raw);
	}
	for (i = 0; i < job->nrcpts; i++)
		free(job->rcpts[i]);
	free(job->rcpts);
	free(job->results);
	free(job);
	*jp = NULL;
}

int
intake_pool_stop(struct intake_pool **poolp, uint64_t timeout_ms)
{
	struct intake_pool	*pool = *poolp;
	struct timespec		 until;
	int			 i, late = 0;

	if (pool == NULL)
		return 0;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += (time_t)(timeout_ms / 1000);
	until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&pool->mu);
	pool->stopping = 1;
	pthread_cond_broadcast(&pool->cv);
	while (pool->running > 0 && !late)
		late = pthread_cond_timedwait(&pool->cv, &pool->mu, &until) ==
		    ETIMEDOUT;
	pthread_mutex_unlock(&pool->mu);
	if (pool->running > 0) {
		log_warnx("intake: %d worker(s) did not stop in time",
		    pool->running);
		return -1;
	}
	for (i = 0; i < pool->nthreads; i++)
		pthread_join(pool->threads[i], NULL);
	/* answer what finished after the last loop turn */
	intake_pool_done_cb(-1, 0, pool);
	for (i = 0; i < pool->nthreads; i++)
		intake_free(&pool->ctx[i]);
	free(pool->ctx);
	free(pool->threads);
	event_free(pool->ev);
	pthread_mutex_destroy(&pool->mu);
	pthread_cond_destroy(&pool->cv);
	free(pool);
	*poolp = NULL;
	return 0;
}
