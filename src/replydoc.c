/*
 * replydoc.c - the decrypted "sealpost-reply/1" document, read back.
 *
 * Owns struct replydoc.  Public: replydoc_parse, replydoc_free.
 * The document was written by our own intake, but it is read as if it
 * were hostile: unknown keys are ignored (a later version may add some),
 * a wrong type for a known key is an error, and sizes are bounded.
 */
#include "build.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "hash.h"
#include "intake.h"
#include "replydoc.h"
#include "util.h"

static int	 replydoc_str(json_t *, const char *, char **);
static size_t	 replydoc_b64_size(const char *, size_t);
static void	 replydoc_wipe_str(char **);

/* Parse a decrypted document into *out. */
int
replydoc_parse(const void *buf, size_t len, struct replydoc **out,
    const char **error_r)
{
	struct replydoc		*rd;
	json_error_t		 jerr;
	json_t			*root, *v, *a, *att;
	const char		*fmt;
	size_t			 i;

	*out = NULL;
	if ((root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr)) ==
	    NULL) {
		*error_r = "the reply document is not JSON";
		return -1;
	}
	if (!json_is_object(root) ||
	    (fmt = json_string_value(json_object_get(root, "format"))) ==
	    NULL || strcmp(fmt, REPLY_FORMAT) != 0) {
		json_decref(root);
		*error_r = "not a " REPLY_FORMAT " document";
		return -1;
	}
	rd = xcalloc(1, sizeof *rd);
	if (replydoc_str(root, "subject", &rd->subject) != 0 ||
	    replydoc_str(root, "new_text", &rd->new_text) != 0 ||
	    replydoc_str(root, "text", &rd->text) != 0 ||
	    replydoc_str(root, "html", &rd->html) != 0) {
		*error_r = "a text field of the reply document is not a string";
		goto fail;
	}
	v = json_object_get(root, "original");
	if (v != NULL && !json_is_null(v)) {
		if (!json_is_string(v)) {
			*error_r = "the original of the reply document is not "
			    "a string";
			goto fail;
		}
		rd->original_size = replydoc_b64_size(json_string_value(v),
		    json_string_length(v));
	}
	a = json_object_get(root, "attachments");
	if (a != NULL && !json_is_null(a)) {
		if (!json_is_array(a) ||
		    json_array_size(a) > REPLYDOC_MAX_ATTACHMENTS) {
			*error_r = "the attachments of the reply document are "
			    "not a list (or too many)";
			goto fail;
		}
		rd->natt = json_array_size(a);
		rd->att = xcalloc(rd->natt + 1, sizeof *rd->att);
		json_array_foreach(a, i, att) {
			if (!json_is_object(att) ||
			    replydoc_str(att, "filename",
			    &rd->att[i].filename) != 0 ||
			    replydoc_str(att, "content_type",
			    &rd->att[i].content_type) != 0) {
				*error_r = "an attachment of the reply "
				    "document is malformed";
				goto fail;
			}
			v = json_object_get(att, "data");
			if (json_is_string(v))
				rd->att[i].size = replydoc_b64_size(
				    json_string_value(v),
				    json_string_length(v));
			else if (v != NULL && !json_is_null(v)) {
				*error_r = "an attachment's data is not a "
				    "string";
				goto fail;
			}
		}
	}
	/* A document the sandbox could not parse has only the original. */
	rd->parsed = rd->subject != NULL || rd->new_text != NULL ||
	    rd->text != NULL || rd->html != NULL || rd->natt > 0;
	json_decref(root);
	*out = rd;
	return 0;

fail:
	json_decref(root);
	replydoc_free(&rd);
	return -1;
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

/* obj[key] as a copy: 0 (NULL when absent or null), -1 wrong type. */
static int
replydoc_str(json_t *obj, const char *key, char **out)
{
	json_t	*v = json_object_get(obj, key);

	*out = NULL;
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return -1;
	/* A NUL inside would cut the copy short: refuse it. */
	if (strlen(json_string_value(v)) != json_string_length(v))
		return -1;
	*out = xstrdup(json_string_value(v));
	return 0;
}

/* The decoded size of base64 text, from its length and padding. */
static size_t
replydoc_b64_size(const char *s, size_t len)
{
	size_t	 pad = 0;

	while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == '\r'))
		len--;
	if (len > 0 && s[len - 1] == '=')
		pad++;
	if (len > 1 && s[len - 2] == '=')
		pad++;
	return len / 4 * 3 + (len % 4 > 1 ? len % 4 - 1 : 0) - pad;
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
