/*
 * hash.c - libsodium-backed digests, comparison, randomness, base64.
 *
 * Public: hash_init, hash_sha256, hash_sha256_v, hash_hex, hash_equal,
 * hash_random, hash_random_uniform, hash_wipe, hash_b64_encode,
 * hash_b64_decode.
 */
#include "build.h"

#include <stdarg.h>
#include <string.h>

#include <sodium.h>

#include "hash.h"
#include "util.h"

/* Initialise libsodium; 0 or -1. */
int
hash_init(void)
{
	return sodium_init() < 0 ? -1 : 0;
}

void
hash_sha256(const void *p, size_t n, unsigned char out[HASH_SHA256_LEN])
{
	crypto_hash_sha256(out, p, n);
}

/* SHA-256 over (const void *, size_t) pairs ending with a NULL pointer. */
void
hash_sha256_v(unsigned char out[HASH_SHA256_LEN], ...)
{
	crypto_hash_sha256_state	 st;
	va_list				 ap;
	const void			*p;

	crypto_hash_sha256_init(&st);
	va_start(ap, out);
	while ((p = va_arg(ap, const void *)) != NULL) {
		size_t	 n = va_arg(ap, size_t);
		crypto_hash_sha256_update(&st, p, n);
	}
	va_end(ap);
	crypto_hash_sha256_final(&st, out);
}

/* Lower-case hex; out holds 2n+1 bytes. */
void
hash_hex(const unsigned char *p, size_t n, char *out)
{
	sodium_bin2hex(out, 2 * n + 1, p, n);
}

int
hash_equal(const void *a, const void *b, size_t n)
{
	return sodium_memcmp(a, b, n) == 0;
}

void
hash_random(void *p, size_t n)
{
	randombytes_buf(p, n);
}

uint32_t
hash_random_uniform(uint32_t upper)
{
	return randombytes_uniform(upper);
}

void
hash_wipe(void *p, size_t n)
{
	sodium_memzero(p, n);
}

/* Padded standard base64 of a buffer; caller frees. */
char *
hash_b64_encode(const void *p, size_t n)
{
	size_t	 len = sodium_base64_encoded_len(n,
		    sodium_base64_VARIANT_ORIGINAL);
	char	*out = xmalloc(len);

	sodium_bin2base64(out, len, p, n, sodium_base64_VARIANT_ORIGINAL);
	return out;
}

/* Decode padded (or unpadded) standard base64; strict alphabet. */
int
hash_b64_decode(const char *s, size_t len, unsigned char **out,
    size_t *outlen)
{
	unsigned char	*buf;
	size_t		 cap = len / 4 * 3 + 3, n = 0;
	const char	*end = NULL;
	int		 variant = sodium_base64_VARIANT_ORIGINAL;

	/*
	 * libsodium 1.0.18 decodes bytes 0x80-0xff as '/' instead of
	 * refusing them: check the alphabet ourselves first.
	 */
	for (n = 0; n < len; n++) {
		unsigned char	 c = (unsigned char)s[n];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '+' || c == '/' ||
		    c == '='))
			return -1;
	}
	n = 0;
	if (len % 4 != 0)
		variant = sodium_base64_VARIANT_ORIGINAL_NO_PADDING;
	buf = xmalloc(cap);
	if (sodium_base642bin(buf, cap, s, len, NULL, &n, &end,
	    variant) != 0 || end != s + len) {
		free(buf);
		return -1;
	}
	*out = buf;
	*outlen = n;
	return 0;
}
