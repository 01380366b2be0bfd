/*
 * age.h - age v1 (C2SP age, age-encryption.org/v1) files on libsodium.
 *
 * Recipients are X25519 public keys ("age1..." Bech32) and, for decryption
 * and exports, scrypt passphrases.  A file is
 *
 *   "age-encryption.org/v1" LF, one stanza per recipient, "--- " MAC LF,
 *   16-byte nonce, 64 KiB ChaCha20-Poly1305 STREAM chunks,
 *
 * optionally wrapped in PEM armor ("-----BEGIN AGE ENCRYPTED FILE-----").
 * Everything is done in memory: age_decrypt() authenticates the whole
 * payload before it hands out any plaintext (unless the caller asks for the
 * partial plaintext of a failed file, which only the test vectors need).
 *
 * Error policy: age_keygen, age_*_parse, age_*_format and age_encrypt*
 * return 0 or -1; age_decrypt returns an enum age_status.  Failures set
 * *error_r (when error_r is not NULL) to a static, content-free reason.
 * Input is hostile: header size, stanza count, line lengths, stanza bodies
 * and scrypt work factors are all bounded (AGE_MAX_*).
 */
#ifndef SEALPOST_AGE_H
#define SEALPOST_AGE_H

#include <stddef.h>

#define AGE_KEY_LEN		32	/* X25519 public or secret key */
#define AGE_FILE_KEY_LEN	16
#define AGE_CHUNK_SIZE		65536
#define AGE_RECIPIENT_STRLEN	63	/* "age1" + 58 + NUL */
#define AGE_IDENTITY_STRLEN	75	/* "AGE-SECRET-KEY-1" + 58 + NUL */

#define AGE_MAX_HEADER		(64 * 1024)	/* bytes up to the MAC line */
#define AGE_MAX_STANZAS		1024
#define AGE_MAX_RECIPIENTS	512	/* encryption: header < AGE_MAX_HEADER */
#define AGE_MAX_ARG_LINE	16384		/* one "-> ..." line */
#define AGE_MAX_BODY		16384		/* one decoded stanza body */
#define AGE_SCRYPT_MAX_WORK_FACTOR 22		/* log2(N), as age does */
#define AGE_SCRYPT_WORK_FACTOR	18		/* default for encryption */

/* Outcome of age_decrypt(), one class per failure layer. */
enum age_status {
	AGE_OK = 0,
	AGE_ERR_ARMOR,		/* the PEM armor is malformed */
	AGE_ERR_HEADER,		/* header parse error, bad stanza, no nonce */
	AGE_ERR_NO_MATCH,	/* no identity unwrapped the file key */
	AGE_ERR_HMAC,		/* header MAC mismatch */
	AGE_ERR_PAYLOAD		/* STREAM failure: truncated, tampered */
};

enum age_identity_type {
	AGE_IDENTITY_X25519 = 1,
	AGE_IDENTITY_SCRYPT
};

/*
 * One way to unwrap a file key.  The secret material is borrowed: the
 * caller keeps it (preferably in sodium_malloc memory, see keyring.h).
 */
struct age_identity {
	enum age_identity_type	 type;
	const unsigned char	*x25519_sk;	/* X25519: AGE_KEY_LEN bytes */
	const char		*passphrase;	/* scrypt */
	size_t			 passlen;
	int			 max_work_factor; /* scrypt; 0: the default */
};

/* age_decrypt() flags; the default (0) detects armor by its first line. */
#define AGE_DECRYPT_BINARY	0x01	/* input is a binary age file */
#define AGE_DECRYPT_ARMORED	0x02	/* input must be armored */
#define AGE_DECRYPT_PARTIAL	0x04	/* keep released plaintext on a
					   payload failure (test vectors) */

/* A fresh X25519 key pair; sk should live in secret memory. */
int	 age_keygen(unsigned char pk[AGE_KEY_LEN],
	    unsigned char sk[AGE_KEY_LEN]);
/* The public key of an X25519 secret key. */
int	 age_public_key(const unsigned char sk[AGE_KEY_LEN],
	    unsigned char pk[AGE_KEY_LEN]);

/* "age1..." (lower case only) <-> 32 bytes. */
int	 age_recipient_parse(const char *, unsigned char pk[AGE_KEY_LEN]);
int	 age_recipient_format(const unsigned char pk[AGE_KEY_LEN], char *out,
	    size_t outsz);
/* "AGE-SECRET-KEY-1..." (upper case only) <-> 32 bytes; wiped buffers. */
int	 age_identity_parse(const char *, unsigned char sk[AGE_KEY_LEN]);
int	 age_identity_format(const unsigned char sk[AGE_KEY_LEN], char *out,
	    size_t outsz);

/*
 * Encrypt to npks X25519 recipients (1..AGE_MAX_RECIPIENTS).  *out is
 * xmalloc'd, *outlen set; armor != 0 writes PEM armor.
 */
int	 age_encrypt(const unsigned char (*pks)[AGE_KEY_LEN], size_t npks,
	    const void *pt, size_t ptlen, int armor, unsigned char **out,
	    size_t *outlen, const char **error_r);
/* Encrypt to a passphrase (one scrypt stanza); work factor 1..22, or 0. */
int	 age_encrypt_passphrase(const char *pass, size_t passlen,
	    int work_factor, const void *pt, size_t ptlen, int armor,
	    unsigned char **out, size_t *outlen, const char **error_r);

/*
 * Decrypt with the identities, tried in order (as age does).  On AGE_OK
 * *out is the xmalloc'd plaintext (*outlen bytes; wipe it with
 * age_free_plaintext).  On failure *out is NULL and *outlen 0, except for
 * AGE_ERR_PAYLOAD with AGE_DECRYPT_PARTIAL: then *out holds the plaintext
 * of the chunks that authenticated before the failure.
 */
enum age_status age_decrypt(const struct age_identity *, size_t nids,
	    const void *in, size_t inlen, int flags, unsigned char **out,
	    size_t *outlen, const char **error_r);

/* "ok", "armor failure", "header failure", ... (the CCTV names). */
const char *age_status_name(enum age_status);

/* Wipe and free a plaintext buffer; accepts NULL, sets *p to NULL. */
void	 age_free_plaintext(unsigned char **p, size_t len);

#endif
