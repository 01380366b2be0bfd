/*
 * ctl.h - what the parts of sealpostctl share: the run's context and the
 * helpers of sealpostctl.c.  The queue, paper, bounce and settings
 * commands live in ctl_queue.c; the quarantine of replies and closing a
 * thread in ctl_reply.c.
 */
#ifndef SEALPOST_CTL_H
#define SEALPOST_CTL_H

#include <stddef.h>
#include <stdint.h>

struct config;
struct store;
struct store_practice;
struct keyring;

struct ctl {
	const char	*cfgpath;
	const char	*keyfile;	/* -k: overrides master_key_file */
	struct config	*cfg;
	struct store	*store;
	struct keyring	*keyring;
	char		 actor[96];
};

/* sealpostctl.c: each says what went wrong on stderr itself. */
int	 ctl_open_store(struct ctl *);
int	 ctl_open_keyring(struct ctl *);
int	 ctl_audit(struct ctl *, const char *action, const char *object,
	    const char *outcome);
int	 ctl_tx_end(struct ctl *, int ok, const char *what);
int	 opt_i64(const char *name, const char *s, int64_t *out);
const char *ctl_time(int64_t, char *, size_t);
int	 valid_email(const char *);
int	 valid_domain(const char *);

/*
 * ctl_reply.c: decrypt a sealed document of practice pr with its archive
 * identity into *clear (age_free_plaintext).  0; -1 when the identity
 * cannot be unwrapped, -2 when the document does not open, both said on
 * stderr naming kind and id ("letter", 12).
 */
int	 ctl_archive_open(struct ctl *, const struct store_practice *,
	    const char *kind, int64_t id, const unsigned char *, size_t,
	    unsigned char **clear, size_t *clearlen);

/* ctl_queue.c: commands (exit status 0, 1, or 2 for usage). */
int	 cmd_queue_list(struct ctl *, int, char **);
int	 cmd_queue_retry(struct ctl *, int, char **);
int	 cmd_letter_release(struct ctl *, int, char **);
int	 cmd_letter_cancel(struct ctl *, int, char **);
int	 cmd_paper_list(struct ctl *, int, char **);
int	 cmd_paper_print(struct ctl *, int, char **);
int	 cmd_paper_done(struct ctl *, int, char **);
int	 cmd_bounce(struct ctl *, int, char **);
int	 cmd_practice_set(struct ctl *, int, char **);
int	 cmd_patient_set(struct ctl *, int, char **);
int	 cmd_client_callback(struct ctl *, int, char **);
int	 cmd_clinician_set(struct ctl *, int, char **);

/* ctl_reply.c */
int	 cmd_quarantine_list(struct ctl *, int, char **);
int	 cmd_quarantine_show(struct ctl *, int, char **);
int	 cmd_quarantine_file(struct ctl *, int, char **);
int	 cmd_quarantine_reject(struct ctl *, int, char **);
int	 cmd_letter_close(struct ctl *, int, char **);

#endif
