/*
 * keyring.h - the master key and the parties' wrapped identities.
 *
 * The 32-byte master key comes from the systemd credential "master.key"
 * ($CREDENTIALS_DIRECTORY/master.key) or from a file named in the config;
 * a file readable by group or others is refused.  It lives in sodium_malloc
 * memory (guarded, mlocked, wiped on free) and is never logged or stored.
 *
 * Identity secrets (X25519) are stored wrapped: XChaCha20-Poly1305 under a
 * subkey derived from the master key (crypto_kdf, context "sp-wrap1"), with
 * the row's identity ("patient:42") as associated data, so a wrapped key
 * moved to another row does not open.  Wrapped form:
 *   version(1) || nonce(24) || ciphertext(32 + 16)
 *
 * Error policy: 0 on success, -1 with a static reason in *error_r.
 */
#ifndef SEALPOST_KEYRING_H
#define SEALPOST_KEYRING_H

#include <stddef.h>
#include <stdint.h>

#define KEYRING_KEY_LEN		32
#define KEYRING_WRAPPED_LEN	(1 + 24 + 32 + 16)

struct keyring;

/* A secret buffer in sodium_malloc memory. */
struct keyring_secret {
	unsigned char	*key;		/* KEYRING_KEY_LEN bytes */
};

/* Load from path, or from the credential when path is NULL or "". */
int	 keyring_load(const char *path, struct keyring **,
	    const char **error_r);
/* Create a new master key file (mode 0400, O_EXCL). */
int	 keyring_create_master(const char *path, const char **error_r);
void	 keyring_free(struct keyring **);

/* A fresh X25519 identity: public key out, secret wrapped for `ad'. */
int	 keyring_identity_new(struct keyring *, const char *ad,
	    unsigned char pk[KEYRING_KEY_LEN],
	    unsigned char wrapped[KEYRING_WRAPPED_LEN], const char **error_r);
/* Unwrap into a sodium_malloc'd secret; free with keyring_secret_free. */
int	 keyring_identity_unwrap(struct keyring *, const char *ad,
	    const unsigned char *wrapped, size_t wrappedlen,
	    struct keyring_secret *, const char **error_r);
void	 keyring_secret_free(struct keyring_secret *);

/* A purpose-bound subkey (context exactly 8 chars) for tokens etc. */
int	 keyring_subkey(struct keyring *, uint64_t id, const char ctx[8],
	    unsigned char out[KEYRING_KEY_LEN]);

#endif
