/*
 * keyring.h - the master key and the parties' wrapped identities.
 *
 * The 32-byte master key comes from the systemd credential "master.key"
 * ($CREDENTIALS_DIRECTORY/master.key, LoadCredential= or
 * LoadCredentialEncrypted=) or from a file named in the config.  The file
 * holds either exactly 32 raw bytes, or 64 hex digits (either case) with an
 * optional trailing newline; any other length is refused.  The file is
 * opened with O_NOFOLLOW, must be a regular file, and is refused when group
 * or others have any permission bit (fix: chmod 0400).  The key lives in
 * sodium_malloc memory (guarded, mlocked, read-only, wiped on free) and is
 * never logged or stored.  keyring_create_master() writes the raw form.
 *
 * Identity secrets (X25519) are stored wrapped: XChaCha20-Poly1305 under a
 * subkey derived from the master key (crypto_kdf, context "sp-wrap1"), with
 * the row's identity ("patient:42") as associated data, so a wrapped key
 * moved to another row does not open.  Wrapped form:
 *   version(1) || nonce(24) || ciphertext(32 + 16)
 *
 * Subkeys for other purposes come from keyring_subkey(); the wrapping
 * context "sp-wrap1" is reserved and refused there.
 *
 * Error policy: 0 on success, -1 with a reason in *error_r.  The reason is
 * a static string or a thread-local buffer that stays valid until the next
 * keyring call on the same thread; it names paths and modes, never key bytes.
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
/* Wrap an existing secret for `ad' (key rotation: unwrap old, wrap new). */
int	 keyring_identity_wrap(struct keyring *, const char *ad,
	    const struct keyring_secret *,
	    unsigned char wrapped[KEYRING_WRAPPED_LEN], const char **error_r);
/*
 * Unwrap into a sodium_malloc'd, read-only secret; free with
 * keyring_secret_free.  Fails on a wrong version or length, a wrong `ad',
 * a different master key or any altered byte.
 */
int	 keyring_identity_unwrap(struct keyring *, const char *ad,
	    const unsigned char *wrapped, size_t wrappedlen,
	    struct keyring_secret *, const char **error_r);
void	 keyring_secret_free(struct keyring_secret *);

/*
 * A purpose-bound subkey (context exactly 8 chars) for tokens etc.
 * 0, or -1 for the reserved context "sp-wrap1".
 */
int	 keyring_subkey(struct keyring *, uint64_t id, const char ctx[8],
	    unsigned char out[KEYRING_KEY_LEN]);

#endif
