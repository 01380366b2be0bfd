/*
 * age_decrypt.c - fuzz target: age_decrypt(), armor, header and STREAM.
 *
 * The input is an age file.  The identities are those of the C2SP CCTV
 * vectors (two X25519 keys and the passphrase "password", scrypt work
 * factor at most 10, what the vectors use), so a seed taken from a vector
 * gets past the header MAC and the fuzzer reaches the STREAM payload.
 * Each input is decrypted three times: armor detected from the first line
 * (with AGE_DECRYPT_PARTIAL, as the vectors' runner does), forced binary
 * and forced armored.  Promises checked: a known status with a reason on
 * failure; no output on failure except the partial plaintext of a payload
 * failure; the plaintext is never longer than the input.
 */
#include "build.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "age.h"
#include "fuzz.h"

static void	 fuzz_decrypt(const uint8_t *, size_t, int);

/* The CCTV vectors' identities. */
static const char *const x25519_ids[] = {
	"AGE-SECRET-KEY-1EGTZVFFV20835NWYV6270LXYVK2VKNX2MMDKWYKLMGR48UAWX40Q2P2LM0",
	"AGE-SECRET-KEY-143WN7DCXU4G8R5AXQSSYD9AEPYDNT3HXSLWSPK36CDU6E8M59SSSAGZ3KG",
};
#define FUZZ_PASSPHRASE		"password"
#define FUZZ_MAX_WORK_FACTOR	10	/* bounds the time per input */

static unsigned char		 sks[2][AGE_KEY_LEN];
static struct age_identity	 ids[3];

/* One decryption with these flags. */
static void
fuzz_decrypt(const uint8_t *data, size_t size, int flags)
{
	unsigned char		*out = NULL;
	const char		*why = NULL;
	size_t			 outlen = 0;
	enum age_status		 st;

	st = age_decrypt(ids, 3, data, size, flags, &out, &outlen, &why);
	switch (st) {
	case AGE_OK:
		FUZZ_CHECK(out != NULL || outlen == 0);
		break;
	case AGE_ERR_PAYLOAD:
		FUZZ_CHECK(why != NULL);
		if (!(flags & AGE_DECRYPT_PARTIAL))
			FUZZ_CHECK(out == NULL && outlen == 0);
		break;
	case AGE_ERR_ARMOR:
	case AGE_ERR_HEADER:
	case AGE_ERR_NO_MATCH:
	case AGE_ERR_HMAC:
		FUZZ_CHECK(why != NULL);
		FUZZ_CHECK(out == NULL && outlen == 0);
		break;
	default:
		FUZZ_CHECK(!"unknown age_status");
	}
	FUZZ_CHECK(outlen <= size);
	FUZZ_CHECK(strcmp(age_status_name(st), "unknown") != 0);
	age_free_plaintext(&out, outlen);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int	 ready;
	size_t		 i;

	if (size > FUZZ_MAX_INPUT)
		return 0;
	if (!ready) {
		for (i = 0; i < 2; i++) {
			if (age_identity_parse(x25519_ids[i], sks[i]) != 0)
				abort();
			ids[i].type = AGE_IDENTITY_X25519;
			ids[i].x25519_sk = sks[i];
		}
		ids[2].type = AGE_IDENTITY_SCRYPT;
		ids[2].passphrase = FUZZ_PASSPHRASE;
		ids[2].passlen = strlen(FUZZ_PASSPHRASE);
		ids[2].max_work_factor = FUZZ_MAX_WORK_FACTOR;
		ready = 1;
	}
	fuzz_decrypt(data, size, AGE_DECRYPT_PARTIAL);
	fuzz_decrypt(data, size, AGE_DECRYPT_BINARY);
	fuzz_decrypt(data, size, AGE_DECRYPT_ARMORED);
	return 0;
}
