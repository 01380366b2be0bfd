/*
 * age_keys.c - fuzz target: Bech32 key strings.
 *
 * The input, up to its first NUL, is given to age_recipient_parse() and
 * age_identity_parse() (keyring.c and the store read both from files and
 * rows).  Accepted strings are canonical: each case is accepted in one
 * case only, so formatting the key again must give the input back.  An
 * identity's public key must format and parse as a recipient.
 */
#include "build.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "age.h"
#include "fuzz.h"
#include "hash.h"
#include "util.h"

#define FUZZ_KEY_INPUT	4096	/* far over any key string */

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned char	 key[AGE_KEY_LEN], pk[AGE_KEY_LEN], pk2[AGE_KEY_LEN];
	char		 out[128];
	char		*s;

	if (size > FUZZ_KEY_INPUT)
		return 0;
	s = xstrndup((const char *)data, size);

	if (age_recipient_parse(s, key) == 0) {
		FUZZ_CHECK(age_recipient_format(key, out, sizeof out) == 0);
		FUZZ_CHECK(strcmp(out, s) == 0);
	}
	if (age_identity_parse(s, key) == 0) {
		FUZZ_CHECK(age_identity_format(key, out, sizeof out) == 0);
		FUZZ_CHECK(strcmp(out, s) == 0);
		FUZZ_CHECK(age_public_key(key, pk) == 0);
		FUZZ_CHECK(age_recipient_format(pk, out, sizeof out) == 0);
		FUZZ_CHECK(age_recipient_parse(out, pk2) == 0);
		FUZZ_CHECK(memcmp(pk, pk2, sizeof pk) == 0);
		hash_wipe(out, sizeof out);
	}
	hash_wipe(key, sizeof key);
	hash_wipe(s, strlen(s));
	free(s);
	return 0;
}
