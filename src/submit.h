/*
 * submit.h - the submission pipeline: parse, seal, group commit, answer.
 *
 *   loop thread            seal workers (N)              writer thread
 *   api / smtpd  --job-->  [parse MIME in the sandbox]
 *                          seal (age, 3+ recipients) --> batch: BEGIN,
 *                                                        insert all, COMMIT
 *   done(job) <--------------- event_active <----------- (one fsync)
 *
 * A front end fills a struct submit_job (routing ids, recipients' public
 * keys, and the content as a letter_doc or a raw RFC 5322 message), calls
 * submit_enqueue(), and gets job->done(job) called back ON THE LOOP THREAD
 * once the letter is durably committed or has failed.  It acknowledges (202 /
 * 250) only then.  The callback owns the job afterwards (submit_job_free).
 * A front end whose connection went away while a job was pending must keep
 * the job's `arg' valid until done() runs, or swap `done' for its own
 * discarding callback (only from the loop thread).
 *
 * Content in clear exists only in the job until sealing; the pipeline wipes
 * and frees it as soon as the blob is made.
 */
#ifndef SEALPOST_SUBMIT_H
#define SEALPOST_SUBMIT_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct letter_doc;
struct submit;

#define SUBMIT_MAX_RECIPIENTS	8

enum submit_content {
	SUBMIT_DOC,		/* job->doc is a parsed, validated document */
	SUBMIT_RFC5322		/* job->raw is a message to parse (sandbox) */
};

enum submit_status {
	SUBMIT_PENDING = 0,
	SUBMIT_OK,		/* committed: letter_id is new */
	SUBMIT_DUPLICATE,	/* idempotent repeat: letter_id is the first */
	SUBMIT_CONFLICT,	/* idempotency key reused for another request */
	SUBMIT_EINPUT,		/* the content was rejected: see error */
	SUBMIT_ESTORE,		/* could not commit: tell the client to retry */
	SUBMIT_ESHUTDOWN	/* the daemon is stopping: retry later */
};

struct submit_job {
	/* routing, set by the front end */
	int64_t		 practice_id;
	int64_t		 client_id;
	int64_t		 patient_id;
	int64_t		 author_id;
	int		 priority;
	const char	*channel;		/* "http" / "smtp", static */
	char		*idem_key;		/* NULL: none; freed with job */
	unsigned char	 req_hash[32];
	char		*address;		/* patient's address or NULL */

	/* recipients of the seal: patient, author, practice archive, ... */
	unsigned char	 recipients[SUBMIT_MAX_RECIPIENTS][32];
	size_t		 nrecipients;

	/* content */
	enum submit_content content;
	struct letter_doc *doc;			/* SUBMIT_DOC */
	char		*raw;			/* SUBMIT_RFC5322 */
	size_t		 rawlen;

	/* result, valid in done() */
	enum submit_status status;
	int64_t		 letter_id;
	int		 err_status;		/* HTTP-ish status for EINPUT */
	char		 err_code[32];		/* stable code */
	char		 error[200];		/* human reason, no content */

	void		(*done)(struct submit_job *, void *);
	void		*arg;

	/* pipeline-private */
	unsigned char	*sealed;
	size_t		 sealed_len;
	uint64_t	 t_enqueued;
	struct submit_job *next;
};

struct submit_params {
	const char	*database;
	int		 workers;		/* seal threads */
	int		 batch_max;		/* letters per commit */
	const char	*parse_program;		/* sealpostd path for -P */
	int64_t		 parse_memory_limit;
	int64_t		 parse_timeout;
	size_t		 max_letter_size;
	size_t		 max_attachments;
	size_t		 max_attachment_size;
	/* delivery lifetime and delay warning by priority (seconds) */
	int64_t		 lifetime[2];		/* routine, urgent */
	int64_t		 warn[2];		/* 0 = no warning */
	/* called on the loop thread after letters were committed */
	void		(*committed)(void *);
	void		*committed_arg;
};

struct submit_stats {
	uint64_t	 submitted, committed, duplicates, rejected, failed;
	uint64_t	 commits;		/* transactions */
	uint64_t	 pending;		/* in the pipeline now */
};

/* Start workers and the writer; 0 or -1 with a reason. */
int	 submit_start(struct event_base *, const struct submit_params *,
	    struct submit **, const char **error_r);
struct submit_job *submit_job_new(void);
void	 submit_job_free(struct submit_job **);
/* Hand a job over; its done() will be called on the loop thread. */
void	 submit_enqueue(struct submit *, struct submit_job *);
/* Stop taking jobs; let in-flight ones finish, up to timeout_ms; pending
 * jobs still queued get SUBMIT_ESHUTDOWN.  Then join the threads and run
 * the remaining done() callbacks.  0, or -1 when the threads did not stop
 * in time (they are abandoned: the caller must exit). */
int	 submit_stop(struct submit **, uint64_t timeout_ms);
void	 submit_get_stats(struct submit *, struct submit_stats *);
/* SIGHUP: new lifetimes and warning ages, for letters committed later. */
void	 submit_set_lifetimes(struct submit *, const int64_t lifetime[2],
	    const int64_t warn[2]);

#endif
