/*
 * webhook_post.c - post one callback with webhook_post() and print what
 * it returned, for tests/integration/t_webhook.py.
 *
 *   webhook_post -u URL -t TOKEN_FILE -j JSON_FILE [-c CA_FILE] [-T SECONDS]
 *
 * Prints the HTTP status, or "-1 <reason>", on one line of stdout; exits
 * 0 when a status came back, 1 when -1 did, 2 on a usage or file error.
 * The token is read from a file (one line; a final newline is dropped) so
 * that it never appears in argv, and the test can check it is not echoed.
 */
#include "build.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"
#include "webhook.h"
#include "tfile.h"

int	main(int, char **);

static void
usage(void)
{
	fprintf(stderr, "usage: webhook_post -u url -t token_file "
	    "-j json_file [-c ca_file] [-T seconds]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	struct webhook_params	 wp = { NULL, 10 };
	const char		*url = NULL, *tokfile = NULL, *jsonfile = NULL;
	char			*token, *json, err[512];
	size_t			 toklen, jsonlen;
	int64_t			 t;
	int			 ch, status;

	while ((ch = getopt(argc, argv, "c:j:t:T:u:")) != -1) {
		switch (ch) {
		case 'c':
			wp.ca_file = optarg;
			break;
		case 'j':
			jsonfile = optarg;
			break;
		case 't':
			tokfile = optarg;
			break;
		case 'T':
			if (util_parse_i64(optarg, 0, 3600, &t) != 0)
				usage();
			wp.timeout = (int)t;
			break;
		case 'u':
			url = optarg;
			break;
		default:
			usage();
		}
	}
	if (url == NULL || tokfile == NULL || jsonfile == NULL ||
	    optind != argc)
		usage();
	if ((token = read_file(tokfile, &toklen)) == NULL) {
		fprintf(stderr, "webhook_post: cannot read the token file\n");
		return 2;
	}
	if (toklen > 0 && token[toklen - 1] == '\n')
		token[--toklen] = '\0';
	if (toklen > 0 && token[toklen - 1] == '\r')
		token[--toklen] = '\0';
	if ((json = read_file(jsonfile, &jsonlen)) == NULL) {
		fprintf(stderr, "webhook_post: cannot read %s\n", jsonfile);
		return 2;
	}
	if (webhook_global_init() != 0) {
		fprintf(stderr, "webhook_post: webhook_global_init failed\n");
		return 2;
	}

	status = webhook_post(&wp, url, token, json, jsonlen, err, sizeof err);
	if (status == -1)
		printf("-1 %s\n", err);
	else
		printf("%d\n", status);

	webhook_global_cleanup();
	explicit_bzero(token, toklen);
	free(token);
	free(json);
	return status == -1 ? 1 : 0;
}
