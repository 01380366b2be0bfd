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
 * Request: the raw message.  Answer: one status byte ('D' document follows,
 * as letter_doc_serialize() JSON; 'E' error: "code\tmessage").
 */
#ifndef SEALPOST_SANDBOX_H
#define SEALPOST_SANDBOX_H

#include <stddef.h>
#include <stdint.h>

struct letter_doc;
struct letter_error;
struct sandbox;

struct sandbox_params {
	const char	*program;	/* path to sealpostd */
	int64_t		 memory_limit;	/* bytes */
	int64_t		 timeout;	/* seconds per message */
	size_t		 max_size;	/* largest message accepted */
};

struct sandbox *sandbox_new(const struct sandbox_params *);
/*
 * Parse a message into a letter document.  0: *doc set.  -1: the message was
 * rejected (err filled: 554-worthy).  -2: the child crashed or timed out
 * (err filled; the message is treated as hostile).
 */
int	 sandbox_parse_letter(struct sandbox *, const char *raw, size_t len,
	    struct letter_doc **doc, struct letter_error *err);
void	 sandbox_free(struct sandbox **);

/* The child's main loop (sealpostd -P): never returns. */
void	 sandbox_child_main(void) __attribute__((noreturn));

#endif
