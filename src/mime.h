/*
 * mime.h - MIME through libetpan: inbound parse into a letter document.
 *
 * Runs only inside the parse sandbox (sandbox.c), never in the daemon.
 * Before libetpan sees a message, mime_prefilter() rejects inputs known to
 * crash Debian 12's libetpan 1.9.4 (boundary="\"" heap overflow) and
 * anything over the structural bounds (header size, nesting depth, parts).
 *
 * The letter is: Subject (RFC 2047 decoded to UTF-8), the first text/plain
 * and text/html bodies (transfer-decoded, converted to UTF-8, LF line ends),
 * and every other leaf part, or any part with Content-Disposition:
 * attachment, as an attachment (filename from RFC 2231 / RFC 2047 / name=,
 * else attachment-N.bin); an attached message/rfc822 is one .eml
 * attachment.  A message with no subject, body or attachment is rejected
 * ("no_body"); with attachments or a subject but no body, text is "".
 *
 * Not thread-safe (a charset converter cache is process-wide): it runs in
 * the single-threaded parse child.  Error policy: 0 or -1 with a struct
 * letter_error whose code is stable and whose message never quotes content.
 */
#ifndef SEALPOST_MIME_H
#define SEALPOST_MIME_H

#include <stddef.h>

struct letter_doc;
struct letter_error;

struct mime_limits {
	size_t		 max_size;
	size_t		 max_header_size;	/* top header section */
	size_t		 max_line;		/* one header line */
	size_t		 max_depth;
	size_t		 max_parts;
	size_t		 max_attachments;
	size_t		 max_attachment_size;
};

void	 mime_limits_default(struct mime_limits *);
/*
 * Prepare the process for parsing under seccomp: open and keep the charset
 * converters for the common charsets (so no gconv module is loaded later),
 * and keep libetpan's strings off temporary files.  Idempotent; parsing
 * without it works too, it only loads converters on demand.
 */
void	 mime_init(void);
/* 0 = fine to hand to libetpan; -1 = rejected, err filled. */
int	 mime_prefilter(const char *raw, size_t len, const struct mime_limits *,
	    struct letter_error *err);
/* 0 and *doc, or -1 and err (code + message, never content). */
int	 mime_parse_letter(const char *raw, size_t len,
	    const struct mime_limits *, struct letter_doc **doc,
	    struct letter_error *err);
/*
 * The same without mime_prefilter(): for the sandbox's test-only request
 * that proves a libetpan crash is contained.  Never call it on its own.
 */
int	 mime_parse_letter_unfiltered(const char *raw, size_t len,
	    const struct mime_limits *, struct letter_doc **doc,
	    struct letter_error *err);

#endif
