/*
 * reply_token.c - fuzz target: reply and bounce tokens in addresses.
 *
 * The input is an address as it arrives on a reply or a bounce
 * ("reply+<token>@domain", a bare local part, or anything).  For each
 * purpose, token_from_address() finds the token and token_check() judges
 * it against two fixed keys (versions 1 and 2) at a fixed time; the whole
 * input is also checked as a bare token.  The fuzzer cannot forge a MAC,
 * so the accepted paths are reached through the seeds, which were made
 * with these keys (see fuzz/corpus/README.md).
 *
 * Promises checked: the token found lies inside the address; a failure
 * leaves the claims zeroed and gives a reason; accepted claims are in
 * range, the expiry a UTC midnight, and token_make() with the same key and
 * claims gives the same token back (token_check() accepts either case).
 */
#include "build.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fuzz.h"
#include "hash.h"
#include "token.h"

#define FUZZ_TOKEN_INPUT	1024
#define FUZZ_TOKEN_NOW		INT64_C(1767225600)	/* 2026-01-01 */

static void	 fuzz_check(const char *, size_t, enum token_purpose);

static struct token_keys	 keys[2];

/* Check one candidate token for one purpose. */
static void
fuzz_check(const char *tok, size_t len, enum token_purpose purpose)
{
	static const struct token_claims zero;
	struct token_claims	 c;
	enum token_result	 r;
	const char		*why = NULL;
	char			 again[TOKEN_BUFSZ];
	size_t			 k;

	memset(&c, 0xa5, sizeof c);
	r = token_check(keys, 2, purpose, tok, len, FUZZ_TOKEN_NOW, &c, &why);
	FUZZ_CHECK(strcmp(token_strresult(r), "") != 0);
	if (r != TOKEN_OK && r != TOKEN_EXPIRED) {
		FUZZ_CHECK(r == TOKEN_MALFORMED || r == TOKEN_BAD_MAC ||
		    r == TOKEN_UNKNOWN_KEY);
		FUZZ_CHECK(why != NULL);
		FUZZ_CHECK(memcmp(&c, &zero, sizeof c) == 0);
		return;
	}
	FUZZ_CHECK(c.purpose == purpose);
	FUZZ_CHECK(c.key_version == 1 || c.key_version == 2);
	FUZZ_CHECK(c.thread >= 1 && c.recipient >= 1);
	FUZZ_CHECK(c.expires_at >= 0 && c.expires_at <= TOKEN_EXPIRES_MAX);
	FUZZ_CHECK(c.expires_at % 86400 == 0);
	FUZZ_CHECK((r == TOKEN_EXPIRED) == (FUZZ_TOKEN_NOW >= c.expires_at));

	/* the same claims under the same key make the same token */
	k = c.key_version == keys[0].version ? 0 : 1;
	FUZZ_CHECK(token_make(&keys[k], purpose, c.thread, c.recipient,
	    c.expires_at, again, sizeof again) == 0);
	FUZZ_CHECK(strlen(again) == len && strncasecmp(again, tok, len) == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum token_purpose purposes[] = {
		TOKEN_REPLY, TOKEN_BOUNCE
	};
	static int	 ready;
	const char	*addr = (const char *)data, *tok;
	size_t		 i, toklen;

	if (size > FUZZ_TOKEN_INPUT)
		return 0;
	if (!ready) {
		if (hash_init() != 0)
			abort();
		keys[0].version = 1;
		memset(keys[0].key, 0x01, TOKEN_KEY_LEN);
		keys[1].version = 2;
		memset(keys[1].key, 0x02, TOKEN_KEY_LEN);
		ready = 1;
	}
	for (i = 0; i < 2; i++) {
		tok = NULL;
		toklen = 0;
		if (token_from_address(addr, size, purposes[i], &tok,
		    &toklen) == 0) {
			FUZZ_CHECK(tok >= addr && toklen <= size &&
			    tok + toklen <= addr + size);
			fuzz_check(tok, toklen, purposes[i]);
		}
		fuzz_check(addr, size, purposes[i]);
	}
	return 0;
}
