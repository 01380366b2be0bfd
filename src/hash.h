/*
 * hash.h - digests, constant-time comparison, randomness and base64.
 *
 * <sodium.h> is included only by the crypto modules: hash.c, age.c,
 * keyring.c and token.c.
 * hash_init() must run once before any other call (it calls sodium_init()).
 */
#ifndef SEALPOST_HASH_H
#define SEALPOST_HASH_H

#include <stddef.h>
#include <stdint.h>

#define HASH_SHA256_LEN	32
#define HASH_SHA256_HEX	65	/* 64 hex digits + NUL */

int	 hash_init(void);
void	 hash_sha256(const void *, size_t, unsigned char out[HASH_SHA256_LEN]);
/* Incremental SHA-256 over several pieces (NULL-terminated ptr/len pairs). */
void	 hash_sha256_v(unsigned char out[HASH_SHA256_LEN], ...);
void	 hash_hex(const unsigned char *, size_t, char *out);
/* Constant-time equality of two equal-length buffers: 1 if equal. */
int	 hash_equal(const void *, const void *, size_t);
void	 hash_random(void *, size_t);
/* Uniform random integer in [0, upper). */
uint32_t hash_random_uniform(uint32_t upper);
/* Wipe memory the compiler may not elide. */
void	 hash_wipe(void *, size_t);

/*
 * Standard base64 (RFC 4648 section 4, padded), as used for attachments in
 * the JSON API.  hash_b64_decode accepts padding and ignores nothing: any
 * character outside the alphabet is an error.  Returns 0 or -1.
 */
char	*hash_b64_encode(const void *, size_t);
int	 hash_b64_decode(const char *, size_t, unsigned char **out,
	    size_t *outlen);

#endif
