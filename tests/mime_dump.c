/*
 * mime_dump.c - print sealpost's parse of message files as JSON, for
 * tests/integration/t_mime_expected.py.
 *
 *   mime_dump [-i] [-n crlf|lf|raw] FILE...
 *
 * Each FILE goes through the parse sandbox (this very binary is the
 * child, run with -P as sealpostd -P is), the way the daemon parses a
 * message; with -i through mime_parse_letter() in this process instead.
 * -n lf drops every CR, -n crlf drops every CR and makes each LF a CRLF
 * (what SMTP and LMTP deliver), -n raw (the default) leaves the bytes.  One JSON
 * object per line on stdout, in argument order:
 *
 *   {"file":F,"status":"ok","ms":N,"subject":S,"text":T,"html":H,
 *    "attachments":[{"filename":N,"content_type":C,"size":L}]}
 *   {"file":F,"status":"rejected"|"crashed"|"unreadable","ms":N,
 *    "code":C,"message":M}
 *
 * T is the text body or null, H the HTML body or null.  The sandbox runs
 * with the daemon's default limits (256 MiB, 5 s) unless the environment
 * says otherwise (MIME_DUMP_MEMORY in MiB, MIME_DUMP_TIMEOUT in seconds).
 * Exit status 0 when every file was parsed or rejected cleanly, 1 when
 * one crashed, timed out or could not be read, 2 on usage.
 */

#include "build.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "hash.h"
#include "letter.h"
#include "mime.h"
#include "sandbox.h"
#include "util.h"
#include "tfile.h"

#define DUMP_MAX_SIZE	(64 * 1024 * 1024)

enum line_ends {
	ENDS_RAW,
	ENDS_CRLF,
	ENDS_LF
};

static void	 usage(void) __attribute__((noreturn));
static long	 env_num(const char *, long, long, long);
static char	*ends_convert(const char *, size_t, enum line_ends, size_t *);
static json_t	*doc_json(const struct letter_doc *);
static json_t	*str_or_null(const char *);

static void
usage(void)
{
	fprintf(stderr, "usage: mime_dump [-i] [-n crlf|lf|raw] file...\n");
	exit(2);
}

/* A bounded number from the environment, or dflt. */
static long
env_num(const char *name, long dflt, long lo, long hi)
{
	const char	*s = getenv(name);
	char		*end;
	long		 v;

	if (s == NULL || *s == '\0')
		return dflt;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < lo || v > hi) {
		fprintf(stderr, "mime_dump: %s: not a number in %ld..%ld\n",
		    name, lo, hi);
		exit(2);
	}
	return v;
}

/*
 * The message with every CR dropped and, for CRLF, every LF made CRLF (a
 * new buffer): the two forms stalwart's expected parses were made from.
 */
static char *
ends_convert(const char *s, size_t n, enum line_ends ends, size_t *outlen)
{
	char	*out;
	size_t	 i, j = 0;

	out = xmalloc(2 * n + 1);
	for (i = 0; i < n; i++) {
		if (s[i] == '\r')
			continue;
		if (s[i] == '\n' && ends == ENDS_CRLF)
			out[j++] = '\r';
		out[j++] = s[i];
	}
	out[j] = '\0';
	*outlen = j;
	return out;
}

/* A JSON string, or null for NULL; the parser hands out UTF-8 only. */
static json_t *
str_or_null(const char *s)
{
	json_t	*j;

	if (s == NULL)
		return json_null();
	if ((j = json_string(s)) == NULL) {
		/* Not UTF-8: a parser bug the test should see, not hide. */
		fprintf(stderr, "mime_dump: parser returned invalid UTF-8\n");
		exit(1);
	}
	return j;
}

/* The fields of a document the comparison needs. */
static json_t *
doc_json(const struct letter_doc *doc)
{
	json_t	*o, *atts, *a;
	size_t	 i;

	o = json_object();
	json_object_set_new(o, "status", json_string("ok"));
	json_object_set_new(o, "subject",
	    str_or_null(doc->subject != NULL ? doc->subject : ""));
	json_object_set_new(o, "text", str_or_null(doc->text));
	json_object_set_new(o, "html", str_or_null(doc->html));
	atts = json_array();
	for (i = 0; i < doc->natt; i++) {
		a = json_object();
		json_object_set_new(a, "filename",
		    str_or_null(doc->att[i].filename));
		json_object_set_new(a, "content_type",
		    str_or_null(doc->att[i].content_type));
		json_object_set_new(a, "size",
		    json_integer((json_int_t)doc->att[i].len));
		json_array_append_new(atts, a);
	}
	json_object_set_new(o, "attachments", atts);
	return o;
}

int
main(int argc, char **argv)
{
	struct sandbox_params	 sp;
	struct sandbox		*sb = NULL;
	struct mime_limits	 lim;
	struct letter_doc	*doc;
	struct letter_error	 err;
	enum line_ends		 ends = ENDS_RAW;
	json_t			*o;
	char			*raw, *msg, *exe, *line;
	size_t			 len, mlen;
	uint64_t		 t0;
	int			 ch, in_process = 0, bad = 0, r;

	/* As sealpostd -P: this binary is also the sandbox's child. */
	if (argc > 1 && strcmp(argv[1], "-P") == 0)
		sandbox_child_main();

	while ((ch = getopt(argc, argv, "in:")) != -1) {
		switch (ch) {
		case 'i':
			in_process = 1;
			break;
		case 'n':
			if (strcmp(optarg, "crlf") == 0)
				ends = ENDS_CRLF;
			else if (strcmp(optarg, "lf") == 0)
				ends = ENDS_LF;
			else if (strcmp(optarg, "raw") == 0)
				ends = ENDS_RAW;
			else
				usage();
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc == 0)
		usage();

	signal(SIGPIPE, SIG_IGN);	/* as the daemon does */
	if (hash_init() != 0) {
		fprintf(stderr, "mime_dump: hash_init failed\n");
		return 1;
	}
	mime_limits_default(&lim);
	lim.max_size = lim.max_attachment_size = DUMP_MAX_SIZE;
	if (!in_process) {
		if ((exe = self_exe()) == NULL) {
			fprintf(stderr, "mime_dump: cannot find "
			    "/proc/self/exe\n");
			return 1;
		}
		memset(&sp, 0, sizeof(sp));
		sp.program = exe;
		sp.memory_limit = env_num("MIME_DUMP_MEMORY", 256, 16,
		    65536) * 1024 * 1024;
		sp.timeout = env_num("MIME_DUMP_TIMEOUT", 5, 1, 600);
		sp.max_size = DUMP_MAX_SIZE;
		sb = sandbox_new(&sp);
		free(exe);
	}

	for (; argc > 0; argc--, argv++) {
		doc = NULL;
		memset(&err, 0, sizeof(err));
		if ((raw = read_file(argv[0], &len)) == NULL) {
			o = json_object();
			json_object_set_new(o, "status",
			    json_string("unreadable"));
			json_object_set_new(o, "code", json_string("read"));
			json_object_set_new(o, "message",
			    json_string(strerror(errno)));
			json_object_set_new(o, "ms", json_integer(0));
			bad = 1;
			goto print;
		}
		if (ends != ENDS_RAW)
			msg = ends_convert(raw, len, ends, &mlen);
		else {
			msg = raw;
			mlen = len;
		}
		t0 = util_now_ms();
		if (in_process)
			r = mime_parse_letter(msg, mlen, &lim, &doc, &err);
		else
			r = sandbox_parse_letter(sb, msg, mlen, &doc, &err);
		if (r == 0)
			o = doc_json(doc);
		else {
			o = json_object();
			json_object_set_new(o, "status", json_string(
			    r == -1 ? "rejected" : "crashed"));
			json_object_set_new(o, "code", json_string(err.code));
			json_object_set_new(o, "message",
			    json_string(err.message));
			if (r != -1)
				bad = 1;
		}
		json_object_set_new(o, "ms",
		    json_integer((json_int_t)(util_now_ms() - t0)));
		letter_doc_free(&doc);
		if (msg != raw)
			free(msg);
		free(raw);
 print:
		json_object_set_new(o, "file", json_string(argv[0]));
		if ((line = json_dumps(o, JSON_COMPACT)) == NULL) {
			fprintf(stderr, "mime_dump: json_dumps failed\n");
			return 1;
		}
		printf("%s\n", line);
		fflush(stdout);
		free(line);
		json_decref(o);
	}
	sandbox_free(&sb);
	return bad;
}
