/*
 * submit.c - the submission pipeline: parse, seal, group commit, answer.
 *
 * Public: submit_start, submit_stop, submit_enqueue, submit_job_new,
 * submit_job_free, submit_get_stats.
 *
 * Three stages, each a FIFO guarded by one mutex (struct submit.mu):
 *
 *   in  --(seal workers: parse in the sandbox, serialise, age-encrypt)-->
 *   commit --(writer: one transaction, one fsync, for every job waiting)-->
 *   done --(event_active: callbacks run on the loop thread)
 *
 * Group commit needs no timer: while the writer is inside one fsync, jobs
 * pile up in the commit queue and the next transaction takes them all (up
 * to batch_max).  One job never waits for more than one commit behind it.
 *
 * Error policy: a failure of one job is that job's status (EINPUT for bad
 * content, ESTORE when sealing or the commit fails); a failed commit fails
 * every job in its batch and nothing of the batch is stored.  The loop
 * thread never blocks on the pipeline.
 */
#include "build.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "age.h"
#include "hash.h"
#include "letter.h"
#include "log.h"
#include "sandbox.h"
#include "store.h"
#include "submit.h"
#include "util.h"

struct jobq {
	struct submit_job	*head;
	struct submit_job	*tail;
	size_t			 len;
};

struct submit {
	struct event_base	*base;
	struct submit_params	 params;
	char			*database;
	char			*parse_program;

	pthread_mutex_t		 mu;
	pthread_cond_t		 cv_in;		/* work for the seal workers */
	pthread_cond_t		 cv_commit;	/* work for the writer */
	pthread_cond_t		 cv_exit;	/* a thread has exited */
	struct jobq		 in;
	struct jobq		 commit;
	struct jobq		 done;
	int			 stopping;
	int			 running;	/* threads alive */
	int			 writer_ready;	/* writer opened its store */
	const char		*writer_error;

	pthread_t		*workers;
	int			 nworkers;
	pthread_t		 writer;
	struct event		*done_ev;

	struct submit_stats	 stats;
};

static void	 jobq_push(struct jobq *, struct submit_job *);
static struct submit_job *jobq_pop(struct jobq *);
static void	*submit_worker(void *);
static void	*submit_writer(void *);
static void	 submit_seal(struct submit *, struct sandbox *,
		    struct submit_job *);
static void	 submit_fail(struct submit_job *, enum submit_status, int,
		    const char *, const char *);
static void	 submit_commit_batch(struct submit *, struct store *,
		    struct submit_job **, size_t);
static void	 submit_finish(struct submit *, struct submit_job *);
static void	 submit_done_cb(evutil_socket_t, short, void *);
static void	 submit_run_done(struct submit *);
static void	 submit_job_clear_content(struct submit_job *);

/* Append to a FIFO. */
static void
jobq_push(struct jobq *q, struct submit_job *job)
{
	job->next = NULL;
	if (q->tail != NULL)
		q->tail->next = job;
	else
		q->head = job;
	q->tail = job;
	q->len++;
}

/* Take the head of a FIFO, or NULL. */
static struct submit_job *
jobq_pop(struct jobq *q)
{
	struct submit_job	*job = q->head;

	if (job == NULL)
		return NULL;
	q->head = job->next;
	if (q->head == NULL)
		q->tail = NULL;
	q->len--;
	job->next = NULL;
	return job;
}

/* A zeroed job. */
struct submit_job *
submit_job_new(void)
{
	return xcalloc(1, sizeof(struct submit_job));
}

/* Wipe and free whatever clear content a job still holds. */
static void
submit_job_clear_content(struct submit_job *job)
{
	letter_doc_free(&job->doc);
	if (job->raw != NULL) {
		hash_wipe(job->raw, job->rawlen);
		free(job->raw);
		job->raw = NULL;
		job->rawlen = 0;
	}
}

/* Free a job and everything it owns. */
void
submit_job_free(struct submit_job **jobp)
{
	struct submit_job	*job = *jobp;

	if (job == NULL)
		return;
	submit_job_clear_content(job);
	free(job->sealed);
	free(job->idem_key);
	free(job->address);
	free(job);
	*jobp = NULL;
}

/* Record a failure on a job (reason never holds content). */
static void
submit_fail(struct submit_job *job, enum submit_status status, int http,
    const char *code, const char *msg)
{
	job->status = status;
	job->err_status = http;
	strlcpy_sp(job->err_code, code, sizeof(job->err_code));
	strlcpy_sp(job->error, msg, sizeof(job->error));
}

/* Start the workers and the writer; waits until the writer's store is open. */
int
submit_start(struct event_base *base, const struct submit_params *params,
    struct submit **sp, const char **error_r)
{
	struct submit	*s;
	int		 i;

	s = xcalloc(1, sizeof(*s));
	s->base = base;
	s->params = *params;
	s->database = xstrdup(params->database);
	s->params.database = s->database;
	s->parse_program = xstrdup(params->parse_program != NULL ?
	    params->parse_program : "/proc/self/exe");
	s->params.parse_program = s->parse_program;
	if (s->params.workers < 1)
		s->params.workers = 1;
	if (s->params.batch_max < 1)
		s->params.batch_max = 1;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv_in, NULL);
	pthread_cond_init(&s->cv_commit, NULL);
	pthread_cond_init(&s->cv_exit, NULL);
	s->done_ev = event_new(base, -1, 0, submit_done_cb, s);

	pthread_mutex_lock(&s->mu);
	if (pthread_create(&s->writer, NULL, submit_writer, s) != 0)
		log_fatal("submit: pthread_create");
	s->running++;
	while (!s->writer_ready && s->writer_error == NULL)
		pthread_cond_wait(&s->cv_exit, &s->mu);
	if (s->writer_error != NULL) {
		pthread_mutex_unlock(&s->mu);
		*error_r = s->writer_error;
		pthread_join(s->writer, NULL);
		event_free(s->done_ev);
		free(s->database);
		free(s->parse_program);
		free(s);
		return -1;
	}
	s->workers = xcalloc((size_t)s->params.workers, sizeof(pthread_t));
	for (i = 0; i < s->params.workers; i++) {
		if (pthread_create(&s->workers[i], NULL, submit_worker, s) != 0)
			log_fatal("submit: pthread_create");
		s->running++;
		s->nworkers++;
	}
	pthread_mutex_unlock(&s->mu);
	log_info("submit: started workers=%d batch_max=%d", s->nworkers,
	    s->params.batch_max);
	*sp = s;
	return 0;
}

/* Hand a job to the pipeline. Loop thread only. */
void
submit_enqueue(struct submit *s, struct submit_job *job)
{
	job->status = SUBMIT_PENDING;
	job->t_enqueued = util_now_ms();
	pthread_mutex_lock(&s->mu);
	s->stats.submitted++;
	s->stats.pending++;
	if (s->stopping) {
		submit_fail(job, SUBMIT_ESHUTDOWN, 503, "shutting_down",
		    "the daemon is shutting down; retry later");
		jobq_push(&s->done, job);
		pthread_mutex_unlock(&s->mu);
		event_active(s->done_ev, 0, 0);
		return;
	}
	jobq_push(&s->in, job);
	pthread_cond_signal(&s->cv_in);
	pthread_mutex_unlock(&s->mu);
}

/* Seal worker: parse (sandbox) and seal jobs until stopping. */
static void *
submit_worker(void *arg)
{
	struct submit		*s = arg;
	struct sandbox		*sb;
	struct sandbox_params	 sp;
	struct submit_job	*job;

	memset(&sp, 0, sizeof(sp));
	sp.program = s->params.parse_program;
	sp.memory_limit = s->params.parse_memory_limit;
	sp.timeout = s->params.parse_timeout;
	sp.max_size = s->params.max_letter_size;
	sb = sandbox_new(&sp);

	pthread_mutex_lock(&s->mu);
	for (;;) {
		while (s->in.head == NULL && !s->stopping)
			pthread_cond_wait(&s->cv_in, &s->mu);
		if ((job = jobq_pop(&s->in)) == NULL)
			break;		/* stopping and nothing left */
		pthread_mutex_unlock(&s->mu);

		submit_seal(s, sb, job);

		pthread_mutex_lock(&s->mu);
		if (job->status == SUBMIT_PENDING) {
			jobq_push(&s->commit, job);
			pthread_cond_signal(&s->cv_commit);
		} else {
			pthread_mutex_unlock(&s->mu);
			submit_finish(s, job);
			pthread_mutex_lock(&s->mu);
		}
	}
	s->running--;
	pthread_cond_broadcast(&s->cv_exit);
	pthread_cond_broadcast(&s->cv_commit);
	pthread_mutex_unlock(&s->mu);
	sandbox_free(&sb);
	return NULL;
}

/*
 * Turn a job's content into its sealed blob: parse a raw message in the
 * sandbox, validate, serialise, encrypt to every recipient, and wipe the
 * clear copies.  On failure the job's status says why.
 */
static void
submit_seal(struct submit *s, struct sandbox *sb, struct submit_job *job)
{
	struct letter_limits	 lim;
	struct letter_error	 lerr;
	char			*json;
	size_t			 jlen;
	const char		*error = NULL;
	int			 r;

	memset(&lerr, 0, sizeof(lerr));
	lim.max_size = s->params.max_letter_size;
	lim.max_attachments = s->params.max_attachments;
	lim.max_attachment_size = s->params.max_attachment_size;

	if (job->content == SUBMIT_RFC5322) {
		r = sandbox_parse_letter(sb, job->raw, job->rawlen, &job->doc,
		    &lerr);
		hash_wipe(job->raw, job->rawlen);
		free(job->raw);
		job->raw = NULL;
		if (r != 0) {
			log_info("submit: message rejected code=%s "
			    "sandbox=%s", lerr.code,
			    r == -2 ? "killed" : "ok");
			submit_fail(job, SUBMIT_EINPUT,
			    lerr.status != 0 ? lerr.status : 422,
			    lerr.code[0] != '\0' ? lerr.code : "bad_message",
			    lerr.message[0] != '\0' ? lerr.message :
			    "the message could not be parsed");
			return;
		}
	}
	if (job->doc == NULL) {
		submit_fail(job, SUBMIT_EINPUT, 422, "no_content",
		    "the letter has no content");
		return;
	}
	if (letter_doc_validate(job->doc, &lim, &lerr) != 0) {
		submit_fail(job, SUBMIT_EINPUT, lerr.status, lerr.code,
		    lerr.message);
		letter_doc_free(&job->doc);
		return;
	}
	json = letter_doc_serialize(job->doc, &jlen);
	letter_doc_free(&job->doc);
	if (job->nrecipients == 0)
		log_panic("submit: job without recipients");
	r = age_encrypt((const unsigned char (*)[32])job->recipients,
	    job->nrecipients, json, jlen, 0, &job->sealed, &job->sealed_len,
	    &error);
	hash_wipe(json, jlen);
	free(json);
	if (r != 0) {
		log_warnx("submit: sealing failed: %s", error ? error : "?");
		submit_fail(job, SUBMIT_ESTORE, 503, "seal_failed",
		    "the letter could not be sealed; retry later");
	}
}

/* Writer thread: owns the read-write store; commits batches. */
static void *
submit_writer(void *arg)
{
	struct submit		*s = arg;
	struct store		*st = NULL;
	struct submit_job	**batch;
	const char		*error = NULL;
	size_t			 n;

	if (store_open(s->params.database, STORE_RDWR | STORE_CREATE, &st,
	    &error) != STORE_OK) {
		pthread_mutex_lock(&s->mu);
		s->writer_error = error != NULL ? error : "cannot open store";
		s->running--;
		pthread_cond_broadcast(&s->cv_exit);
		pthread_mutex_unlock(&s->mu);
		return NULL;
	}
	batch = xcalloc((size_t)s->params.batch_max, sizeof(*batch));

	pthread_mutex_lock(&s->mu);
	s->writer_ready = 1;
	pthread_cond_broadcast(&s->cv_exit);
	for (;;) {
		/* Leave only once the workers are gone and nothing waits. */
		while (s->commit.head == NULL &&
		    !(s->stopping && s->running == 1))
			pthread_cond_wait(&s->cv_commit, &s->mu);
		if (s->commit.head == NULL)
			break;
		for (n = 0; n < (size_t)s->params.batch_max &&
		    s->commit.head != NULL; n++)
			batch[n] = jobq_pop(&s->commit);
		pthread_mutex_unlock(&s->mu);

		submit_commit_batch(s, st, batch, n);

		pthread_mutex_lock(&s->mu);
	}
	s->running--;
	pthread_cond_broadcast(&s->cv_exit);
	pthread_mutex_unlock(&s->mu);
	free(batch);
	store_close(&st);
	return NULL;
}

/* One transaction for a batch, then answer every job in it. */
static void
submit_commit_batch(struct submit *s, struct store *st,
    struct submit_job **batch, size_t n)
{
	struct store_letter_new	*rows;
	const char		*error = NULL;
	int64_t			 now, lifetime[2], warn[2];
	size_t			 i;
	int			 r, *rr;

	rows = xcalloc(n, sizeof(*rows));
	rr = xcalloc(n, sizeof(*rr));
	now = util_time();
	pthread_mutex_lock(&s->mu);
	memcpy(lifetime, s->params.lifetime, sizeof(lifetime));
	memcpy(warn, s->params.warn, sizeof(warn));
	pthread_mutex_unlock(&s->mu);
	for (i = 0; i < n; i++) {
		struct submit_job	*job = batch[i];
		int			 pr = job->priority ==
					    LETTER_URGENT ? 1 : 0;

		rows[i].practice_id = job->practice_id;
		rows[i].client_id = job->client_id;
		rows[i].patient_id = job->patient_id;
		rows[i].author_id = job->author_id;
		rows[i].priority = job->priority;
		rows[i].channel = job->channel;
		rows[i].idem_key = job->idem_key;
		memcpy(rows[i].req_hash, job->req_hash, sizeof(job->req_hash));
		rows[i].sealed = job->sealed;
		rows[i].sealed_len = job->sealed_len;
		rows[i].address = job->address;
		rows[i].expires = now + (lifetime[pr] > 0 ? lifetime[pr] :
		    3 * 86400);
		rows[i].warn_at = warn[pr] > 0 ? now + warn[pr] : 0;
	}
	r = store_letters_commit(st, rows, n, &error);
	if (r == STORE_ERROR && n > 1) {
		/*
		 * A batch is all-or-nothing: one bad entry (a constraint the
		 * front end could not foresee) must not fail its neighbours.
		 * Commit each alone so only the culprit fails.
		 */
		log_warnx("submit: batch commit failed letters=%zu "
		    "reason=\"%s\"; committing one by one", n,
		    error != NULL ? error : "?");
		for (i = 0; i < n; i++) {
			rr[i] = store_letters_commit(st, &rows[i], 1, &error);
			if (rr[i] != STORE_OK)
				log_warnx("submit: commit failed reason=\"%s\"",
				    error != NULL ? error : "?");
		}
	} else {
		if (r != STORE_OK)
			log_warnx("submit: commit failed letters=%zu "
			    "reason=\"%s\"", n, error != NULL ? error : "?");
		else
			log_debug("submit: committed letters=%zu", n);
		for (i = 0; i < n; i++)
			rr[i] = r;
	}
	for (i = 0; i < n; i++) {
		struct submit_job	*job = batch[i];

		if (rr[i] != STORE_OK) {
			submit_fail(job, SUBMIT_ESTORE, 503, "store_unavailable",
			    "the letter could not be stored; retry later");
		} else {
			job->letter_id = rows[i].letter_id;
			switch (rows[i].result) {
			case STORE_LETTER_NEW:
				job->status = SUBMIT_OK;
				break;
			case STORE_LETTER_DUPLICATE:
				job->status = SUBMIT_DUPLICATE;
				break;
			case STORE_LETTER_CONFLICT:
				submit_fail(job, SUBMIT_CONFLICT, 409,
				    "idempotency_conflict", "this Idempotency-"
				    "Key was used for a different request");
				break;
			default:
				log_panic("submit: bad store result %d",
				    rows[i].result);
			}
		}
		free(job->sealed);
		job->sealed = NULL;
	}
	free(rows);
	free(rr);
	pthread_mutex_lock(&s->mu);
	s->stats.commits++;
	pthread_mutex_unlock(&s->mu);
	for (i = 0; i < n; i++)
		submit_finish(s, batch[i]);
}

/* Move a finished job to the done queue and wake the loop. */
static void
submit_finish(struct submit *s, struct submit_job *job)
{
	submit_job_clear_content(job);
	pthread_mutex_lock(&s->mu);
	switch (job->status) {
	case SUBMIT_OK:		s->stats.committed++; break;
	case SUBMIT_DUPLICATE:	s->stats.duplicates++; break;
	case SUBMIT_EINPUT:
	case SUBMIT_CONFLICT:	s->stats.rejected++; break;
	default:		s->stats.failed++; break;
	}
	jobq_push(&s->done, job);
	pthread_mutex_unlock(&s->mu);
	event_active(s->done_ev, 0, 0);
}

/* Loop thread: run the callbacks of finished jobs. */
static void
submit_done_cb(evutil_socket_t fd, short what, void *arg)
{
	submit_run_done(arg);
}

/* Call done() for every finished job, outside the lock. */
static void
submit_run_done(struct submit *s)
{
	struct jobq		 q;
	struct submit_job	*job;
	size_t			 committed;

	pthread_mutex_lock(&s->mu);
	q = s->done;
	memset(&s->done, 0, sizeof(s->done));
	s->stats.pending -= q.len;
	pthread_mutex_unlock(&s->mu);
	committed = 0;
	while ((job = jobq_pop(&q)) != NULL) {
		if (job->status == SUBMIT_OK)
			committed++;
		if (job->done != NULL)
			job->done(job, job->arg);
		else
			submit_job_free(&job);
	}
	if (committed > 0 && s->params.committed != NULL)
		s->params.committed(s->params.committed_arg);
}

void
submit_set_lifetimes(struct submit *s, const int64_t lifetime[2],
    const int64_t warn[2])
{
	pthread_mutex_lock(&s->mu);
	memcpy(s->params.lifetime, lifetime, sizeof(s->params.lifetime));
	memcpy(s->params.warn, warn, sizeof(s->params.warn));
	pthread_mutex_unlock(&s->mu);
}

/* Counters, for status and metrics. */
void
submit_get_stats(struct submit *s, struct submit_stats *out)
{
	pthread_mutex_lock(&s->mu);
	*out = s->stats;
	pthread_mutex_unlock(&s->mu);
}

/*
 * Stop: jobs not yet picked by a worker are answered "shutting down"; jobs
 * being sealed or committed finish (so an acknowledged letter and a
 * committed letter are the same set).  Waits up to timeout_ms for the
 * threads; if a disk hangs past that, the threads are abandoned (nothing
 * unacknowledged is lost by exiting: it was never acknowledged).
 */
int
submit_stop(struct submit **sp, uint64_t timeout_ms)
{
	struct submit		*s = *sp;
	struct submit_job	*job;
	struct timespec		 deadline;
	int			 i, timedout = 0;

	if (s == NULL)
		return 0;
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += (time_t)(timeout_ms / 1000);
	deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}

	pthread_mutex_lock(&s->mu);
	s->stopping = 1;
	while ((job = jobq_pop(&s->in)) != NULL) {
		submit_job_clear_content(job);
		submit_fail(job, SUBMIT_ESHUTDOWN, 503, "shutting_down",
		    "the daemon is shutting down; retry later");
		s->stats.failed++;
		jobq_push(&s->done, job);
	}
	pthread_cond_broadcast(&s->cv_in);
	pthread_cond_broadcast(&s->cv_commit);
	while (s->running > 0) {
		if (pthread_cond_timedwait(&s->cv_exit, &s->mu,
		    &deadline) == ETIMEDOUT) {
			timedout = 1;
			break;
		}
	}
	pthread_mutex_unlock(&s->mu);

	if (timedout) {
		log_warnx("submit: threads did not stop within %llu ms; "
		    "leaving them", (unsigned long long)timeout_ms);
		*sp = NULL;
		return -1;	/* the caller exits */
	}
	for (i = 0; i < s->nworkers; i++)
		pthread_join(s->workers[i], NULL);
	pthread_join(s->writer, NULL);
	submit_run_done(s);

	event_free(s->done_ev);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv_in);
	pthread_cond_destroy(&s->cv_commit);
	pthread_cond_destroy(&s->cv_exit);
	free(s->workers);
	free(s->database);
	free(s->parse_program);
	free(s);
	*sp = NULL;
	log_info("submit: stopped");
	return 0;
}
