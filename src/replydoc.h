/*
 * replydoc.h - reading the sealed reply document "sealpost-reply/1"
 * (letter.h describes it) once it has been decrypted, for display.
 *
 * The readers (the HTTP API, sealpostctl) need the patient's words and
 * the attachments' names and sizes; the attachment data and the original
 * message stay in the sealed blob and are never copied out here.
 *
 * Error policy: replydoc_parse returns 0, or -1 with a static,
 * content-free reason.  Every string is a copy that replydoc_free wipes.
 */
#ifndef SEALPOST_REPLYDOC_H
#define SEALPOST_REPLYDOC_H

#include <stddef.h>

struct replydoc_att {
	char		*filename;		/* NULL: none given */
	char		*content_type;		/* NULL: none given */
	size_t		 size;			/* decoded bytes */
};

struct replydoc {
	int		 parsed;		/* 0: "original" only (the
						   parse sandbox failed) */
	char		*subject;		/* NULL when absent */
	char		*new_text;
	char		*text;
	char		*html;
	struct replydoc_att *att;
	size_t		 natt;
	size_t		 original_size;		/* decoded bytes */
};

/* Parse a decrypted document (not NUL-terminated, len bytes). */
int	 replydoc_parse(const void *, size_t, struct replydoc **,
	    const char **error_r);
void	 replydoc_free(struct replydoc **);

#endif
