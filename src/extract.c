/*
 * extract.c - sealpost-extract, the new text of an email reply.
 *
 *   sealpost-extract [--html] < body
 *
 * Reads a reply body (plain text, or HTML with --html) on stdin and
 * prints the patient's new text (reply_extract()) with a final newline;
 * nothing when there is none.  For tests and for checking by hand what
 * sealpost would keep of a reply.
 *
 * Error policy: one "sealpost-extract: error: ..." line on stderr and
 * exit status 1 (usage 2).  The body itself is never echoed in errors.
 */
#include "build.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "reply.h"

#define PROG		"sealpost-extract"
#define MAX_INPUT	((size_t)64 << 20)	/* 64 MiB of body */

static void	 usage(void);
static char	*read_all(FILE *, size_t *);

static void
usage(void)
{
	fprintf(stderr, "usage: %s [--html] < body\n", PROG);
	exit(2);
}

/* All of fp, up to MAX_INPUT bytes; NULL with errno on failure. */
static char *
read_all(FILE *fp, size_t *lenp)
{
	char	*buf = NULL, *nb;
	size_t	 len = 0, cap = 0, n;

	for (;;) {
		if (len == cap) {
			if (cap >= MAX_INPUT) {
				free(buf);
				errno = EFBIG;
				return NULL;
			}
			cap = cap ? cap * 2 : 65536;
			if ((nb = realloc(buf, cap)) == NULL) {
				free(buf);
				errno = ENOMEM;
				return NULL;
			}
			buf = nb;
		}
		n = fread(buf + len, 1, cap - len, fp);
		len += n;
		if (n == 0) {
			if (ferror(fp)) {
				free(buf);
				errno = EIO;
				return NULL;
			}
			break;
		}
	}
	*lenp = len;
	return buf;
}

int
main(int argc, char *argv[])
{
	struct reply_result	 r;
	char			*in, *text, *out;
	size_t			 len;
	int			 html = 0;

	if (argc == 2 && strcmp(argv[1], "--html") == 0)
		html = 1;
	else if (argc != 1)
		usage();

	if ((in = read_all(stdin, &len)) == NULL) {
		fprintf(stderr, "%s: error: reading stdin: %s\n", PROG,
		    strerror(errno));
		return 1;
	}
	if (html) {
		if ((text = reply_html_to_text(in, len, &len)) == NULL) {
			fprintf(stderr, "%s: error: %s\n", PROG,
			    strerror(errno));
			return 1;
		}
		free(in);
	} else
		text = in;
	if ((out = reply_extract(text, len, &r)) == NULL) {
		fprintf(stderr, "%s: error: %s\n", PROG, strerror(errno));
		return 1;
	}
	free(text);
	if (r.len > 0 && (fwrite(out, 1, r.len, stdout) != r.len ||
	    putchar('\n') == EOF)) {
		fprintf(stderr, "%s: error: writing stdout\n", PROG);
		return 1;
	}
	free(out);
	if (fflush(stdout) == EOF) {
		fprintf(stderr, "%s: error: writing stdout\n", PROG);
		return 1;
	}
	return 0;
}
