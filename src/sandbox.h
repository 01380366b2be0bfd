/*
 * sandbox.h - the parse child: untrusted MIME parsed where a crash cannot
 * take the daemon down.
 *
 * A sandbox is a child process (the daemon binary re-executed with -P, so
 * nothing of the parent's threads or secrets survives into it) that reads
 * framed requests on stdin and writes framed answers on stdout.  It runs
 * with RLIMIT_AS/RLIMIT_CPU/RLIMIT_FSIZE/RLIMIT_NOFILE limits, no new
 * privileges, and a seccomp filter where the kernel has one.  Each request
 * also has a wall-clock timeout enforced by the parent.  A crash, a limit or
 * a timeout kills that child: the request gets -2 and the next request
 * starts a fresh child.
 *
 * One struct sandbox belongs to one thread (each seal worker owns one).
 *
 * Wire (both directions): u32 big-endian length, then that many bytes.
 * Request: one op byte (SANDBOX_OP_PARSE, SANDBOX_OP_DSN), then the raw
 * message.  Answer: one status byte ('D' document follows, as
 * letter_doc_serialize() JSON; 'N' a delivery status report follows, as
 * dsn_serialize() text; 'E' error: "code\tmessage"; 'R' alone, once, when
 * a child is ready).  A bounce that is not a usable report is an 'E' with
 * code "dsn_not_report" or "dsn_malformed".
 *
 * Limits: RLIMIT_AS = memory_limit (not under ASan, whose shadow memory
 * needs terabytes of address space), RLIMIT_FSIZE 0, RLIMIT_CORE 0,
 * RLIMIT_NOFILE 3 (stdin, stdout, stderr: nothing can be opened), and
 * RLIMIT_CPU = timeout x SANDBOX_MAX_REQUESTS + 10 s.  CPU time is counted
 * over a process's life, so the per-message bound is the parent's wall-clock
 * timeout; RLIMIT_CPU is only the backstop should a child outlive it, and a
 * child is retired after SANDBOX_MAX_REQUESTS messages so honest work never
 * reaches it (retiring also bounds what one message's leftovers in the
 * child's heap can meet).
 */
#ifndef SEALPOST_SANDBOX_H
#define SEALPOST_SANDBOX_H

#include <stddef.h>
#include <stdint.h>

#include "dsn.h"

struct letter_doc;
struct letter_error;
struct sandbox;

struct sandbox_params {
	const char	*program;	/* path to sealpostd */
	int64_t		 memory_limit;	/* bytes */
	int64_t		 timeout;	/* seconds per message */
	size_t		 max_size;	/* largest message accepted */
	int		 test_ops;	/* tests only: allow SANDBOX_OP_TEST_* */
};

/* Messages one child parses before it is replaced. */
#define SANDBOX_MAX_REQUESTS		1000

/* Request ops (the first byte of a request). */
#define SANDBOX_OP_PARSE		'P'
/* A bounce: mime_prefilter(), then dsn_parse(). */
#define SANDBOX_OP_DSN			'N'
/*
 * Test-only ops, refused (the child exits) unless the child was started from
 * params with test_ops set: parse without mime_prefilter(), to prove that a
 * libetpan crash is contained; spin on the CPU, to prove the timeout.
 */
#define SANDBOX_OP_TEST_UNFILTERED	'U'
#define SANDBOX_OP_TEST_SPIN		'S'

struct sandbox *sandbox_new(const struct sandbox_params *);
/*
 * Parse a message into a letter document.  0: *doc set.  -1: the message was
 * rejected (err filled: 554-worthy).  -2: the child crashed or timed out
 * (err filled, code "parse_crashed" or "parse_timeout", status 422; the
 * message is treated as hostile), or no child could be started (code
 * "sandbox_unavailable", status 503: not the message's fault).
 */
int	 sandbox_parse_letter(struct sandbox *, const char *raw, size_t len,
	    struct letter_doc **doc, struct letter_error *err);
/*
 * Read a bounce as a delivery status notification.  0: *result set, and
 * for DSN_OK *report; DSN_NOT_REPORT and DSN_MALFORMED also fill err
 * (code "dsn_not_report" / "dsn_malformed", status 422, the parser's
 * reason), so the caller can quarantine and say why.  -1: the message was
 * rejected before parsing (the prefilter or the size: err filled).  -2: as
 * for sandbox_parse_letter().
 */
int	 sandbox_parse_dsn(struct sandbox *, const char *raw, size_t len,
	    struct dsn_report *report, enum dsn_result *result,
	    struct letter_error *err);
/* The same as sandbox_parse_letter() with an explicit op: for tests. */
int	 sandbox_request(struct sandbox *, int op, const char *raw, size_t len,
	    struct letter_doc **doc, struct letter_error *err);
/* The running child's process id, or 0: for tests. */
long	 sandbox_child_pid(const struct sandbox *);
void	 sandbox_free(struct sandbox **);

/* The child's main loop (sealpostd -P): never returns. */
void	 sandbox_child_main(void) __attribute__((noreturn));

#endif
