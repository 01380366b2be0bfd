/*
 * reply.h - the new text of a patient's email reply.
 *
 * A reply body carries the patient's new words and, below them, the
 * history their mail client quoted ("On ... wrote:", Outlook header
 * blocks, "-----Original Message-----", "> " lines, forwarded blocks),
 * their signature ("-- " and below) and a mobile footer ("Sent from my
 * iPhone").  reply_extract() keeps the new words only.
 *
 * Both functions are pure: no I/O, no logging (the text is clinical),
 * linear in the input size.  Input is UTF-8 (bytes that are not are
 * passed through untouched), any line ends (LF, CRLF, CR); output uses
 * LF, has no leading or trailing blank lines and no trailing newline.
 */
#ifndef SEALPOST_REPLY_H
#define SEALPOST_REPLY_H

#include <stddef.h>

/* What reply_extract() removed (bits of reply_result.removed). */
#define REPLY_QUOTE	0x01	/* quoted or forwarded history */
#define REPLY_SIGNATURE	0x02	/* "-- " signature block */
#define REPLY_FOOTER	0x04	/* mobile footer ("Sent from my iPhone") */

struct reply_result {
	size_t		len;		/* strlen() of the returned text */
	unsigned int	removed;	/* REPLY_* bits */
};

/*
 * The new text of the plain-text reply body text[0..len), as a
 * NUL-terminated malloc'd string the caller frees; out (may be NULL) is
 * filled in.  An empty result ("" with len 0) means the body had no new
 * text (empty, or only quotation).  NULL only when memory runs out
 * (errno ENOMEM).
 */
char	*reply_extract(const char *text, size_t len, struct reply_result *out);

/*
 * A plain-text rendering of the HTML body html[0..len), for replies sent
 * as HTML only: block elements become line breaks, <script>/<style>/
 * comments are dropped, the common entities and numeric character
 * references are decoded, and the content of <blockquote> comes out
 * prefixed with "> " so that reply_extract() sees it as quoted.
 * Malloc'd, NUL-terminated, *outlen (may be NULL) set; NULL on ENOMEM.
 */
char	*reply_html_to_text(const char *html, size_t len, size_t *outlen);

#endif
