/*
 * replydoc.c - the decrypted "sealpost-reply/1" document, read back for
 * display (the HTTP API, sealpostctl).
 *
 * Owns struct replydoc.  Public: replydoc_parse, replydoc_free.
 * The document is parsed by letter.c's reply_doc_parse() (one reader of
 * the format, and jansson kept in letter.c); this keeps what a reader
 * shows -- the texts, the attachments' names, types and sizes -- and lets
 * go of the attachment data and the original at once, wiped.
 */
#include "build.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "letter.h"
#include "replydoc.h"
#include "util.h"

static char	*replydoc_dup(const char *);
static void	 replydoc_wipe_str(char **);

/* Parse a decrypted document into *out. */
int
replydoc_parse(const void *buf, size_t len, struct replydoc **out,
    const char **error_r)
{
	static __thread char	 why[200];
	struct reply_doc	*doc = NULL;
	struct letter_error	 err;
	struct replydoc		*rd;
	const struct letter_doc	*c;
	size_t			 i;

	*out = NULL;
	if (reply_doc_parse(buf, len, &doc, &err) != 0) {
		snprintf(why, sizeof(why), "reply document: %s%s%s",
		    err.field[0] != '\0' ? err.field : "",
		    err.field[0] != '\0' ? ": " : "", err.code);
		*error_r = why;
		return -1;
	}
	rd = xcalloc(1, sizeof *rd);
	rd->new_text = replydoc_dup(doc->new_text);
	rd->original_size = doc->original_len;
	if ((c = doc->content) != NULL) {
		rd->parsed = 1;
		rd->subject = replydoc_dup(c->subject != NULL ? c->subject :
		    "");
		rd->text = replydoc_dup(c->text);
		rd->html = replydoc_dup(c->html);
		rd->natt = c->natt;
		rd->att = xcalloc(c->natt + 1, sizeof *rd->att);
		for (i = 0; i < c->natt; i++) {
			rd->att[i].filename = replydoc_dup(c->att[i].filename);
			rd->att[i].content_type =
			    replydoc_dup(c->att[i].content_type);
			rd->att[i].size = c->att[i].len;
		}
	}
	reply_doc_free(&doc);
	*out = rd;
	return 0;
}

/* Free a document, wiping its strings. */
void
replydoc_free(struct replydoc **rdp)
{
	struct replydoc	*rd = *rdp;
	size_t		 i;

	if (rd == NULL)
		return;
	replydoc_wipe_str(&rd->subject);
	replydoc_wipe_str(&rd->new_text);
	replydoc_wipe_str(&rd->text);
	replydoc_wipe_str(&rd->html);
	for (i = 0; rd->att != NULL && i < rd->natt; i++) {
		replydoc_wipe_str(&rd->att[i].filename);
		replydoc_wipe_str(&rd->att[i].content_type);
	}
	free(rd->att);
	free(rd);
	*rdp = NULL;
}

static char *
replydoc_dup(const char *s)
{
	return s != NULL ? xstrdup(s) : NULL;
}

static void
replydoc_wipe_str(char **sp)
{
	if (*sp == NULL)
		return;
	hash_wipe(*sp, strlen(*sp));
	free(*sp);
	*sp = NULL;
}
