/*
 * mime_int.h - what mime.c lends dsn.c, the other reader of libetpan's
 * MIME tree.  Not for any other module: it names libetpan types, so only
 * a file that includes <libetpan/libetpan.h> (before this) may include it.
 */
#ifndef SEALPOST_MIME_INT_H
#define SEALPOST_MIME_INT_H

#include <stddef.h>

/* Length of the well-formed UTF-8 sequence at s (n > 0 bytes), or 0. */
size_t		 mime_utf8_len(const unsigned char *s, size_t n);
/*
 * The top-level media type of a Content-Type as libetpan read it: "text",
 * "image", "audio", "video", "application", "message", "multipart", or an
 * extension token as written (any case); NULL when there is none.
 */
const char	*mime_type_name(const struct mailmime_type *);

#endif
