/*
 * lmtp_proc.h - a test processor for the LMTP listener, in place of the
 * intake pool (header-only, for tests/test_lmtpd.c and tests/lmtp_listen.c).
 *
 * submit() queues the job for a worker thread, which fills one result per
 * recipient by its local part (ok* and slow* 250 "2.0.0 reply filed",
 * tmp* 451, anything else 550; slow* takes 600 ms, the rest 10 ms) and
 * hands the job back to the loop through a pipe, as the pool does; the
 * loop runs done().  proc_init() before the listener, proc_stop() after.
 */
#ifndef SEALPOST_LMTP_PROC_H
#define SEALPOST_LMTP_PROC_H

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "intake.h"
#include "log.h"
#include "util.h"

struct proc {
	pthread_mutex_t	 lock;
	pthread_cond_t	 cond;
	pthread_t	 worker;
	struct intake_job *todo, *done;	/* FIFO via ->next (done: LIFO) */
	int		 stop;
	int		 wakefd[2];	/* worker -> loop */
	/* what the test checks (under lock) */
	int		 nsubmitted, ndone, nfreed;
	char		 rcpts[512];	/* the last job's recipients */
	FILE		*log;		/* a line per job done, or NULL */
	struct event	*ev_wake;
};

static struct proc	 proc;

static void
proc_submit(struct intake_job *job, void *arg)
{
	struct intake_job **tail;

	(void)arg;
	pthread_mutex_lock(&proc.lock);
	proc.nsubmitted++;
	job->next = NULL;
	for (tail = &proc.todo; *tail != NULL; tail = &(*tail)->next)
		;
	*tail = job;
	pthread_cond_signal(&proc.cond);
	pthread_mutex_unlock(&proc.lock);
}

static void
proc_result(const char *rcpt, struct intake_result *r)
{
	memset(r, 0, sizeof *r);
	if (strncmp(rcpt, "ok", 2) == 0 || strncmp(rcpt, "slow", 4) == 0) {
		r->outcome = INTAKE_FILED;
		r->smtp_code = 250;
		strlcpy_sp(r->smtp_text, "2.0.0 reply filed",
		    sizeof r->smtp_text);
	} else if (strncmp(rcpt, "tmp", 3) == 0) {
		r->outcome = INTAKE_TEMPFAIL;
		r->smtp_code = 451;
		strlcpy_sp(r->smtp_text, "4.3.0 try again later",
		    sizeof r->smtp_text);
	} else {
		r->outcome = INTAKE_REFUSED;
		r->smtp_code = 550;
		strlcpy_sp(r->smtp_text, "5.1.1 not a reply address",
		    sizeof r->smtp_text);
	}
}

/* The worker: a slow* recipient takes 600 ms, the others 10 ms. */
static void *
proc_main(void *arg)
{
	struct intake_job *job;
	size_t		 i, off;
	int		 slow;
	char		 one = 1;

	(void)arg;
	pthread_mutex_lock(&proc.lock);
	for (;;) {
		while (proc.todo == NULL && !proc.stop)
			pthread_cond_wait(&proc.cond, &proc.lock);
		if (proc.todo == NULL)
			break;
		job = proc.todo;
		proc.todo = job->next;
		off = 0;
		slow = 0;
		for (i = 0; i < job->nrcpts; i++) {
			off += (size_t)snprintf(proc.rcpts + off,
			    sizeof proc.rcpts - off, "%s%s", i ? "," : "",
			    job->rcpts[i]);
			if (strncmp(job->rcpts[i], "slow", 4) == 0)
				slow = 1;
		}
		pthread_mutex_unlock(&proc.lock);

		usleep(slow ? 600000 : 10000);
		job->results = xcalloc(job->nrcpts, sizeof *job->results);
		for (i = 0; i < job->nrcpts; i++)
			proc_result(job->rcpts[i], &job->results[i]);

		pthread_mutex_lock(&proc.lock);
		job->next = proc.done;
		proc.done = job;
		if (write(proc.wakefd[1], &one, 1) != 1)
			log_fatal("wake write");
	}
	pthread_mutex_unlock(&proc.lock);
	return NULL;
}

/* Loop thread: run done() of the finished jobs. */
static void
proc_wake(evutil_socket_t fd, short what, void *arg)
{
	struct intake_job *job, *list;
	char		 buf[64];

	(void)what;
	(void)arg;
	while (read(fd, buf, sizeof buf) > 0)
		;
	pthread_mutex_lock(&proc.lock);
	list = proc.done;
	proc.done = NULL;
	pthread_mutex_unlock(&proc.lock);
	while ((job = list) != NULL) {
		list = job->next;
		if (proc.log != NULL) {
			size_t i;

			fprintf(proc.log, "job");
			for (i = 0; i < job->nrcpts; i++)
				fprintf(proc.log, " %s=%d", job->rcpts[i],
				    job->results[i].smtp_code);
			fprintf(proc.log, "\n");
			fflush(proc.log);
		}
		job->done(job, job->arg);
		pthread_mutex_lock(&proc.lock);
		proc.ndone++;
		pthread_mutex_unlock(&proc.lock);
	}
}

static void
proc_job_free(struct intake_job **jp)
{
	struct intake_job *job = *jp;
	size_t		 i;

	if (job == NULL)
		return;
	*jp = NULL;
	pthread_mutex_lock(&proc.lock);
	proc.nfreed++;
	pthread_mutex_unlock(&proc.lock);
	free(job->raw);
	for (i = 0; i < job->nrcpts; i++)
		free(job->rcpts[i]);
	free(job->rcpts);
	free(job->results);
	free(job);
}

/* Start the worker and watch its pipe on base. */
static void
proc_init(struct event_base *base)
{
	pthread_mutex_init(&proc.lock, NULL);
	pthread_cond_init(&proc.cond, NULL);
	if (pipe(proc.wakefd) != 0)
		log_fatal("pipe");
	evutil_make_socket_nonblocking(proc.wakefd[0]);
	proc.ev_wake = event_new(base, proc.wakefd[0], EV_READ | EV_PERSIST,
	    proc_wake, NULL);
	if (proc.ev_wake == NULL)
		log_fatalx("event_new");
	event_add(proc.ev_wake, NULL);
	if (pthread_create(&proc.worker, NULL, proc_main, NULL) != 0)
		log_fatalx("pthread_create");
}

/* Stop the worker (jobs queued are finished) and forget the pipe. */
static void
proc_stop(void)
{
	pthread_mutex_lock(&proc.lock);
	proc.stop = 1;
	pthread_cond_signal(&proc.cond);
	pthread_mutex_unlock(&proc.lock);
	pthread_join(proc.worker, NULL);
	event_free(proc.ev_wake);
	close(proc.wakefd[0]);
	close(proc.wakefd[1]);
}

#endif
