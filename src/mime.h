/*
 * mime.h - MIME through libetpan: inbound parse into a letter document,
 * and outbound messages built for the relay (mime_build.c, at the end).
 *
 * The parser runs only inside the parse sandbox (sandbox.c), never in the
 * daemon; the builder runs in the daemon's relay workers.
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
#include <time.h>

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

/* --- outbound (mime_build.c) ------------------------------------------ */

/*
 * The builder turns a letter (or a plain notification text) into one
 * RFC 5322 / MIME message: text only -> text/plain; text and HTML ->
 * multipart/alternative; attachments -> multipart/mixed holding the body
 * then each attachment (base64, Content-Disposition: attachment with an
 * RFC 2231 filename* and an ASCII filename= fallback; message and
 * multipart types go as application/octet-stream, since RFC 2046 forbids
 * base64 for them).  Text is utf-8 in quoted-printable, lines <= 76.  Subject and display names are RFC 2047
 * encoded where needed.  Boundaries and generated Message-IDs come from
 * libsodium, never from libetpan's unseeded random().
 *
 * Every value that reaches a header is validated first: CR, LF or NUL in
 * any of them is an error (never silently cleaned), addresses must be
 * addr-specs (dot-atom "@" host name, ASCII, <= 254 octets).  The result
 * has CRLF line ends only, no line over 998 octets, and header lines
 * folded to <= 78 where a line can be broken.
 *
 * Thread-safe (no libetpan global is touched).  Error policy: 0, or -1 with
 * *error_r set to a static reason that names the field and never quotes
 * content, e.g. "subject: contains CR, LF or NUL".
 */

#define MIME_MSGID_MAX		250	/* "<left@right>", brackets included */

/* One extra header, e.g. {"Auto-Submitted", "auto-replied"}. */
struct mime_header {
	const char	*name;		/* ftext, not a structural header */
	const char	*value;		/* printable ASCII, <= 900 bytes */
};

/* What to build.  Strings are borrowed; NULL means absent. */
struct mime_out {
	const char	*from_name;	/* the practice, UTF-8 display name */
	const char	*from_addr;	/* required addr-spec */
	const char	*to_name;	/* the patient, UTF-8 display name */
	const char	*to_addr;	/* required addr-spec */
	const char	*reply_token;	/* Reply-To: reply+<token>@<domain> */
	const char	*reply_domain;	/* NULL: the From domain */
	const char	*subject;	/* UTF-8; NULL: doc->subject, else none */
	time_t		 date;		/* written in UTC */
	const char	*message_id;	/* "<left@right>"; NULL: generated */
	const char	*msgid_domain;	/* for a generated one; NULL: From's */
	const char	*in_reply_to;	/* "<left@right>" */
	const char	*references;	/* "<a@b> <c@d> ...", space-separated */
	const struct mime_header *headers;
	size_t		 nheaders;
	const struct letter_doc *doc;	/* the letter ... */
	const char	*notice;	/* ... or a plain text, not both */
};

/* A built message. */
struct mime_msg {
	char		*data;		/* CRLF lines, NUL-terminated too */
	size_t		 len;
	char		 message_id[MIME_MSGID_MAX + 1];	/* as written */
};

/* Build a message; on success the caller owns msg (mime_msg_clear). */
int	 mime_build(const struct mime_out *, struct mime_msg *msg,
	    const char **error_r);
/* Wipe (it holds letter content) and free a built message. */
void	 mime_msg_clear(struct mime_msg *);

/* Modes of mime_header_encode(). */
#define MIME_HDR_TEXT	0	/* unstructured text: Subject */
#define MIME_HDR_PHRASE	1	/* a display name */

/*
 * RFC 2047: encode the UTF-8 value s[0..len) for a header whose first line
 * already holds `col' characters ("Subject: " is 9).  Words that need it
 * (non-ASCII, controls, "=?", whitespace that would not survive unfolding,
 * too long to fold) become =?utf-8?B?...?= words of <= 75 characters, never
 * splitting a UTF-8 sequence; the rest stays as it is.  A phrase is either
 * atoms, one quoted-string (RFC 5322 specials) or wholly encoded.  Folded
 * with CRLF SP so that no line exceeds 76.  0 and *out (malloc'd), or -1:
 * CR, LF or NUL in s, or s not UTF-8.
 */
int	 mime_header_encode(const char *s, size_t len, int mode, size_t col,
	    char **out, const char **error_r);
/*
 * Decode a header value's encoded words to UTF-8 with libetpan's decoder
 * (unfolding it): for tests and diagnostics.  malloc'd, or NULL.  After
 * mime_init() it converts through the parser's converter cache, so, like
 * the parser, it is then not for threads.
 */
char	*mime_header_decode(const char *);
/* A reason if addr is not an acceptable addr-spec, else NULL. */
const char *mime_addr_check(const char *addr);
/* "<26 base32 characters of 128 random bits@domain>"; NULL if bad domain. */
char	*mime_message_id(const char *domain);

#endif
