/*
 * token_tool.c - make reply and bounce tokens with a master key, for the
 * reply tests (tests/integration/t_replies.py): a valid token for a
 * thread, one for another patient, one already expired.
 *
 *   token_tool KEYFILE reply|bounce THREAD RECIPIENT EXPIRES
 *
 * EXPIRES is unix seconds (a token expires at the UTC midnight after it).
 * Prints the local part "<prefix>+<token>".  Exit 0, 1 on failure, 2 on
 * usage.
 */

#include "build.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "keyring.h"
#include "token.h"
#include "util.h"

int
main(int argc, char **argv)
{
	struct keyring		*kr = NULL;
	struct token_keys	 tk;
	enum token_purpose	 purpose;
	const char		*error = NULL;
	char			 tok[TOKEN_BUFSZ], local[TOKEN_LOCAL_BUFSZ];
	int64_t			 thread, rcpt, expires;

	if (argc != 6 || (strcmp(argv[2], "reply") != 0 &&
	    strcmp(argv[2], "bounce") != 0) ||
	    util_parse_i64(argv[3], 1, INT64_MAX, &thread) != 0 ||
	    util_parse_i64(argv[4], 1, INT64_MAX, &rcpt) != 0 ||
	    util_parse_i64(argv[5], 0, TOKEN_EXPIRES_MAX, &expires) != 0) {
		fprintf(stderr, "usage: token_tool KEYFILE reply|bounce THREAD "
		    "RECIPIENT EXPIRES\n");
		return 2;
	}
	purpose = strcmp(argv[2], "reply") == 0 ? TOKEN_REPLY : TOKEN_BOUNCE;
	if (hash_init() != 0 || keyring_load(argv[1], &kr, &error) != 0) {
		fprintf(stderr, "token_tool: %s\n", error ? error : "init");
		return 1;
	}
	if (token_key_derive(kr, 1, &tk) != 0 ||
	    token_make(&tk, purpose, thread, rcpt, expires, tok,
	    sizeof(tok)) != 0 ||
	    token_local_part(purpose, tok, local, sizeof(local)) != 0) {
		fprintf(stderr, "token_tool: cannot make the token\n");
		return 1;
	}
	hash_wipe(&tk, sizeof(tk));
	keyring_free(&kr);
	printf("%s\n", local);
	return 0;
}
