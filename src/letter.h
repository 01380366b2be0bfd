/*
 * letter.h - the letter document: what is sealed.
 *
 * A letter's clinical content (subject, text, HTML, attachments) exists in
 * clear only in memory, as a struct letter_doc, and on disk only inside an
 * age blob, serialised as the JSON document "sealpost-letter/1":
 *
 *   {"format":"sealpost-letter/1","subject":"...","text":"...","html":"...",
 *    "attachments":[{"filename":"...","content_type":"...",
 *                    "data":"<base64>"}]}
 *
 * letter_request_parse() turns a POST /v1/letters body into routing fields
 * and a document, validating every field against the limits and naming the
 * field at fault (the field rules are listed at the top of letter.c).
 * Error policy: functions return 0 or -1 and fill a struct letter_error
 * (HTTP status, stable code, field, human message).  Messages never quote
 * the rejected content.  The codes:
 *   400 malformed_json        not JSON, or not UTF-8 (line/column given)
 *   400 duplicate_key         an object names the same key twice
 *   400 invalid_body          the JSON is not an object
 *   413 too_large             body, letter or one attachment over a limit
 *   422 missing_field         a required field is absent (or null)
 *   422 invalid_field         wrong type or breaks the field's rule
 *   422 invalid_base64        attachment data is not standard base64
 *   422 too_many_attachments  more than max_attachments
 *   422 unknown_field         a key the format does not have (typo?)
 *   422 unknown_format        letter_doc_parse: not "sealpost-letter/1"
 * The limits are hard: 0 means none allowed, not unlimited.
 */
#ifndef SEALPOST_LETTER_H
#define SEALPOST_LETTER_H

#include <stddef.h>
#include <stdint.h>

#define LETTER_FORMAT		"sealpost-letter/1"

enum letter_priority {
	LETTER_ROUTINE = 0,
	LETTER_URGENT = 1
};

struct letter_attachment {
	char		*filename;
	char		*content_type;
	unsigned char	*data;
	size_t		 len;
};

struct letter_doc {
	char			*subject;	/* UTF-8, may be ""; NULL = "" */
	char			*text;		/* UTF-8 or NULL */
	char			*html;		/* UTF-8 or NULL */
	struct letter_attachment *att;
	size_t			 natt;
};

struct letter_limits {
	size_t		 max_size;		/* whole request / document */
	size_t		 max_attachments;
	size_t		 max_attachment_size;
};

struct letter_error {
	int		 status;	/* HTTP status: 400, 413, 415, 422 */
	char		 code[32];	/* stable: "malformed_json", ... */
	char		 field[64];	/* "attachments[2].data" or "" */
	char		 message[200];	/* human, no content */
};

/* The routing half of a request: ids and priority, all clear. */
struct letter_request {
	int64_t		 patient_id;
	int64_t		 author_id;	/* clinician */
	int64_t		 practice_id;	/* 0 if the body named none */
	int		 priority;	/* enum letter_priority */
	struct letter_doc *doc;
};

int	 letter_request_parse(const char *body, size_t len,
	    const struct letter_limits *, struct letter_request *,
	    struct letter_error *);
void	 letter_request_clear(struct letter_request *);

/* Validate a document (from either channel) against the limits. */
int	 letter_doc_validate(const struct letter_doc *,
	    const struct letter_limits *, struct letter_error *);

/*
 * Serialise to the sealed JSON form (NUL-terminated, length in *lenp);
 * caller frees (and should wipe).  NULL if a string is not valid UTF-8.
 */
char	*letter_doc_serialize(const struct letter_doc *, size_t *lenp);
int	 letter_doc_parse(const char *, size_t, struct letter_doc **,
	    struct letter_error *);
struct letter_doc *letter_doc_new(void);
/* Frees and wipes the content. */
void	 letter_doc_free(struct letter_doc **);

const char *letter_priority_name(int);
int	 letter_priority_parse(const char *);	/* -1 if unknown */

/*
 * The reply document: what is sealed for a patient's reply (intake.c),
 * the JSON "sealpost-reply/1":
 *
 *   {"format":"sealpost-reply/1","subject":"...","text":"...",
 *    "html":"...","attachments":[{"filename":"...","content_type":"...",
 *    "data":"<base64>"}],"new_text":"...",
 *    "removed":["quote","signature","footer"],
 *    "original":"<base64 of the raw message as received>"}
 *
 * subject, text (the whole body as text), html and attachments are the
 * parsed content, as in a letter document; they are absent when the
 * message could not be parsed (the original is then all there is).
 * new_text is reply_extract()'s result ("" if none).  removed lists
 * reply.h's REPLY_QUOTE, REPLY_SIGNATURE, REPLY_FOOTER bits by name.  The
 * original is kept whole, so nothing the patient wrote is ever lost.
 */
#define REPLY_DOC_FORMAT	"sealpost-reply/1"

struct reply_doc {
	char		*new_text;
	unsigned	 removed;		/* REPLY_* bits (reply.h) */
	unsigned char	*original;
	size_t		 original_len;
	struct letter_doc *content;		/* NULL: not parsed */
						/* (subject etc. absent) */
};

/* As letter_doc_serialize / letter_doc_parse; free with reply_doc_free. */
char	*reply_doc_serialize(const struct reply_doc *, size_t *lenp);
int	 reply_doc_parse(const char *, size_t, struct reply_doc **,
	    struct letter_error *);
void	 reply_doc_free(struct reply_doc **);

/*
 * Make jansson wipe every block it frees: parsed requests hold letter
 * content in jansson's own strings.  Call once, before any thread starts.
 */
void	 letter_json_init(void);

#endif
