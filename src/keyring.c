/*
 * keyring.c - the master key, wrapped X25519 identities and subkeys.
 *
 * Owns the 32-byte master key: read from a 0400 file or the systemd
 * credential, held in sodium_malloc memory that is read-only except while
 * it is being filled, and wiped by sodium_free.  Every other secret this
 * module hands out (identity secrets) is sodium_malloc'd too.
 *
 * Public: keyring_load, keyring_create_master, keyring_free,
 * keyring_identity_new, keyring_identity_wrap, keyring_identity_unwrap,
 * keyring_secret_free, keyring_subkey.
 *
 * Wrapped identity (KEYRING_WRAPPED_LEN bytes):
 *   version (1) || nonce (24) || XChaCha20-Poly1305-IETF(sk) (32 + 16)
 * with the row identity ("patient:42") as associated data and, as key,
 * crypto_kdf_derive_from_key(id 1, context "sp-wrap1", master).
 *
 * Error policy: 0 or -1 with a reason in *error_r (static, or a thread-local
 * buffer for reasons that name a path or a mode).  Running out of secure
 * memory is fatal.  Nothing here logs key material.
 */
#include "build.h"

#include <sys/types.h>
#include <sys/stat.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "keyring.h"
#include "log.h"
#include "util.h"

#define KEYRING_CREDENTIAL	"master.key"
#define KEYRING_WRAP_VERSION	1
#define KEYRING_WRAP_SUBKEY	1
#define KEYRING_WRAP_CTX	"sp-wrap1"
#define KEYRING_NONCE_LEN	crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define KEYRING_HEX_LEN		(2 * KEYRING_KEY_LEN)
/* The longest file we look at: 64 hex digits, a newline, one more byte. */
#define KEYRING_READ_MAX	(KEYRING_HEX_LEN + 2)

struct keyring {
	unsigned char	*master;	/* sodium_malloc, read-only */
};

static unsigned char *keyring_secure_alloc(size_t);
static const char *keyring_reason(const char *, ...)
	    __attribute__((format(printf, 1, 2)));
static int	 keyring_read_file(const char *, unsigned char *,
		    const char **);
static int	 keyring_decode(const unsigned char *, size_t,
		    unsigned char *);
static int	 keyring_wrap_key(struct keyring *, unsigned char *);

/* Thread-local room for reasons that name a path or a mode. */
static _Thread_local char keyring_errbuf[512];

_Static_assert(KEYRING_WRAPPED_LEN == 1 + KEYRING_NONCE_LEN +
    KEYRING_KEY_LEN + crypto_aead_xchacha20poly1305_ietf_ABYTES,
    "wrapped form layout");
_Static_assert(crypto_kdf_CONTEXTBYTES == 8, "kdf context is 8 bytes");

/* sodium_malloc or die: no secret may fall back to ordinary memory. */
static unsigned char *
keyring_secure_alloc(size_t n)
{
	unsigned char	*p;

	if ((p = sodium_malloc(n)) == NULL)
		log_fatalx("keyring: out of secure memory (%zu bytes)", n);
	return p;
}

/* Format a reason into the thread-local buffer and return it. */
static const char *
keyring_reason(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(keyring_errbuf, sizeof keyring_errbuf, fmt, ap);
	va_end(ap);
	return keyring_errbuf;
}

/* Load the master key from path or from the systemd credential. */
int
keyring_load(const char *path, struct keyring **krp, const char **error_r)
{
	struct keyring	*kr;
	const char	*dir;
	char		*credpath = NULL;
	unsigned char	*master;

	*krp = NULL;
	if (sodium_init() < 0) {
		*error_r = "libsodium failed to initialise";
		return -1;
	}
	if (path == NULL || *path == '\0') {
		/*
		 * systemd sets CREDENTIALS_DIRECTORY for units with
		 * LoadCredential= or LoadCredentialEncrypted=; the files
		 * there are already private to the service, but the same
		 * mode check below still applies.
		 */
		dir = getenv("CREDENTIALS_DIRECTORY");
		if (dir == NULL || *dir == '\0') {
			*error_r = "no master key: set [daemon] "
			    "master_key_file or run under systemd with "
			    "LoadCredential=master.key";
			return -1;
		}
		xasprintf(&credpath, "%s/%s", dir, KEYRING_CREDENTIAL);
		path = credpath;
	}

	master = keyring_secure_alloc(KEYRING_KEY_LEN);
	if (keyring_read_file(path, master, error_r) != 0) {
		sodium_free(master);
		free(credpath);
		return -1;
	}
	free(credpath);
	sodium_mprotect_readonly(master);

	kr = xcalloc(1, sizeof *kr);
	kr->master = master;
	*krp = kr;
	return 0;
}

/*
 * Read and check a key file into key (KEYRING_KEY_LEN bytes): a regular
 * file, not a symlink, no permission for group or others, and exactly 32
 * raw bytes or 64 hex digits plus an optional newline.
 */
static int
keyring_read_file(const char *path, unsigned char *key, const char **error_r)
{
	struct stat	 st;
	unsigned char	*buf;
	size_t		 n = 0;
	ssize_t		 r;
	int		 fd, rc = -1;

	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY)) ==
	    -1) {
		if (errno == ELOOP)
			*error_r = keyring_reason("master key file %s is a "
			    "symbolic link: name the file itself", path);
		else
			*error_r = keyring_reason("master key file %s: %s",
			    path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == -1) {
		*error_r = keyring_reason("master key file %s: fstat: %s",
		    path, strerror(errno));
		close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		*error_r = keyring_reason("master key file %s is not a "
		    "regular file", path);
		close(fd);
		return -1;
	}
	if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
		*error_r = keyring_reason("master key file %s has mode %04o: "
		    "group and others must have no access (chmod 0400 %s)",
		    path, (unsigned)(st.st_mode & 07777), path);
		close(fd);
		return -1;
	}

	/* The file's text (hex form) is as secret as the key itself. */
	buf = keyring_secure_alloc(KEYRING_READ_MAX);
	while (n < KEYRING_READ_MAX) {
		r = read(fd, buf + n, KEYRING_READ_MAX - n);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1) {
			*error_r = keyring_reason("master key file %s: read: "
			    "%s", path, strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	if (keyring_decode(buf, n, key) != 0) {
		*error_r = keyring_reason("master key file %s is not a key: "
		    "it must hold exactly 32 raw bytes or 64 hex digits "
		    "(with an optional newline)", path);
		goto out;
	}
	rc = 0;
out:
	sodium_free(buf);
	close(fd);
	return rc;
}

/* Decode a key file's content: 32 raw bytes, or 64 hex digits [+ "\n"]. */
static int
keyring_decode(const unsigned char *buf, size_t n, unsigned char *key)
{
	size_t	 binlen = 0;
	const char *end = NULL;

	if (n == KEYRING_KEY_LEN) {
		memcpy(key, buf, KEYRING_KEY_LEN);
		return 0;
	}
	if (n == KEYRING_HEX_LEN + 1 && buf[KEYRING_HEX_LEN] == '\n')
		n--;
	if (n != KEYRING_HEX_LEN)
		return -1;
	if (sodium_hex2bin(key, KEYRING_KEY_LEN, (const char *)buf, n, NULL,
	    &binlen, &end) != 0 || binlen != KEYRING_KEY_LEN ||
	    end != (const char *)buf + n) {
		sodium_memzero(key, KEYRING_KEY_LEN);
		return -1;
	}
	return 0;
}

/* Write a fresh random master key to a new file, mode 0400. */
int
keyring_create_master(const char *path, const char **error_r)
{
	unsigned char	*key;
	size_t		 off = 0;
	ssize_t		 r;
	int		 fd;

	if (sodium_init() < 0) {
		*error_r = "libsodium failed to initialise";
		return -1;
	}
	if (path == NULL || *path == '\0') {
		*error_r = "no path for the new master key file";
		return -1;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC |
	    O_NOCTTY, 0400);
	if (fd == -1) {
		if (errno == EEXIST)
			*error_r = keyring_reason("master key file %s already "
			    "exists: refusing to overwrite it", path);
		else
			*error_r = keyring_reason("master key file %s: %s",
			    path, strerror(errno));
		return -1;
	}
	/* The umask can only clear bits; make the mode exact anyway. */
	if (fchmod(fd, 0400) == -1) {
		*error_r = keyring_reason("master key file %s: fchmod: %s",
		    path, strerror(errno));
		goto fail;
	}

	key = keyring_secure_alloc(KEYRING_KEY_LEN);
	randombytes_buf(key, KEYRING_KEY_LEN);
	while (off < KEYRING_KEY_LEN) {
		r = write(fd, key + off, KEYRING_KEY_LEN - off);
		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0) {
			*error_r = keyring_reason("master key file %s: write: "
			    "%s", path, r == 0 ? "short write" :
			    strerror(errno));
			sodium_free(key);
			goto fail;
		}
		off += (size_t)r;
	}
	sodium_free(key);
	if (fsync(fd) == -1) {
		*error_r = keyring_reason("master key file %s: fsync: %s",
		    path, strerror(errno));
		goto fail;
	}
	if (close(fd) == -1) {
		fd = -1;
		*error_r = keyring_reason("master key file %s: close: %s",
		    path, strerror(errno));
		goto fail;
	}
	fd = -1;
	/* The new name must survive a crash too. */
	if (util_fsync_dir(path) == -1) {
		*error_r = keyring_reason("master key file %s: fsync of its "
		    "directory: %s", path, strerror(errno));
		goto fail;
	}
	return 0;

fail:
	if (fd != -1)
		close(fd);
	unlink(path);
	return -1;
}


/* Free the keyring; the master key is wiped by sodium_free. */
void
keyring_free(struct keyring **krp)
{
	struct keyring	*kr;

	if (krp == NULL || (kr = *krp) == NULL)
		return;
	if (kr->master != NULL)
		sodium_free(kr->master);
	free(kr);
	*krp = NULL;
}

/* Derive the identity-wrapping key into out (KEYRING_KEY_LEN bytes). */
static int
keyring_wrap_key(struct keyring *kr, unsigned char *out)
{
	return crypto_kdf_derive_from_key(out, KEYRING_KEY_LEN,
	    KEYRING_WRAP_SUBKEY, KEYRING_WRAP_CTX, kr->master);
}

/* A fresh X25519 identity: pk out, its secret wrapped for `ad'. */
int
keyring_identity_new(struct keyring *kr, const char *ad,
    unsigned char pk[KEYRING_KEY_LEN],
    unsigned char wrapped[KEYRING_WRAPPED_LEN], const char **error_r)
{
	struct keyring_secret	 sk;
	int			 rc;

	if (ad == NULL || *ad == '\0') {
		*error_r = "a wrapped key needs its row identity as "
		    "associated data";
		return -1;
	}
	sk.key = keyring_secure_alloc(KEYRING_KEY_LEN);
	randombytes_buf(sk.key, KEYRING_KEY_LEN);
	/* age's X25519 recipients: pk = X25519(sk, basepoint). */
	if (crypto_scalarmult_base(pk, sk.key) != 0) {
		keyring_secret_free(&sk);
		*error_r = "X25519 public key derivation failed";
		return -1;
	}
	rc = keyring_identity_wrap(kr, ad, &sk, wrapped, error_r);
	keyring_secret_free(&sk);
	return rc;
}

/* Wrap sk for `ad' under the master key's wrapping subkey. */
int
keyring_identity_wrap(struct keyring *kr, const char *ad,
    const struct keyring_secret *sk,
    unsigned char wrapped[KEYRING_WRAPPED_LEN], const char **error_r)
{
	unsigned char		*wk;
	unsigned long long	 clen = 0;

	if (ad == NULL || *ad == '\0') {
		*error_r = "a wrapped key needs its row identity as "
		    "associated data";
		return -1;
	}
	if (sk == NULL || sk->key == NULL) {
		*error_r = "no secret to wrap";
		return -1;
	}
	wk = keyring_secure_alloc(KEYRING_KEY_LEN);
	if (keyring_wrap_key(kr, wk) != 0) {
		sodium_free(wk);
		*error_r = "wrapping key derivation failed";
		return -1;
	}
	wrapped[0] = KEYRING_WRAP_VERSION;
	randombytes_buf(wrapped + 1, KEYRING_NONCE_LEN);
	crypto_aead_xchacha20poly1305_ietf_encrypt(
	    wrapped + 1 + KEYRING_NONCE_LEN, &clen, sk->key, KEYRING_KEY_LEN,
	    (const unsigned char *)ad, strlen(ad), NULL, wrapped + 1, wk);
	sodium_free(wk);
	if (clen != KEYRING_WRAPPED_LEN - 1 - KEYRING_NONCE_LEN)
		log_panic("keyring: wrapped length %llu", clen);
	return 0;
}

/* Unwrap an identity secret for `ad' into sodium_malloc'd memory. */
int
keyring_identity_unwrap(struct keyring *kr, const char *ad,
    const unsigned char *wrapped, size_t wrappedlen,
    struct keyring_secret *sk, const char **error_r)
{
	unsigned char		*wk, *key;
	unsigned long long	 mlen = 0;
	int			 rc;

	sk->key = NULL;
	if (ad == NULL || *ad == '\0') {
		*error_r = "a wrapped key needs its row identity as "
		    "associated data";
		return -1;
	}
	if (wrapped == NULL || wrappedlen != KEYRING_WRAPPED_LEN) {
		*error_r = "wrapped key has the wrong length";
		return -1;
	}
	if (wrapped[0] != KEYRING_WRAP_VERSION) {
		*error_r = "wrapped key has an unknown version";
		return -1;
	}
	wk = keyring_secure_alloc(KEYRING_KEY_LEN);
	if (keyring_wrap_key(kr, wk) != 0) {
		sodium_free(wk);
		*error_r = "wrapping key derivation failed";
		return -1;
	}
	key = keyring_secure_alloc(KEYRING_KEY_LEN);
	rc = crypto_aead_xchacha20poly1305_ietf_decrypt(key, &mlen, NULL,
	    wrapped + 1 + KEYRING_NONCE_LEN,
	    KEYRING_WRAPPED_LEN - 1 - KEYRING_NONCE_LEN,
	    (const unsigned char *)ad, strlen(ad), wrapped + 1, wk);
	sodium_free(wk);
	if (rc != 0 || mlen != KEYRING_KEY_LEN) {
		sodium_free(key);
		*error_r = "wrapped key does not open: another master key, "
		    "another row, or damaged";
		return -1;
	}
	sodium_mprotect_readonly(key);
	sk->key = key;
	return 0;
}

/* Wipe and free an unwrapped secret; safe on an empty one. */
void
keyring_secret_free(struct keyring_secret *sk)
{
	if (sk == NULL || sk->key == NULL)
		return;
	/* sodium_free makes the pages writable, wipes and unmaps them. */
	sodium_free(sk->key);
	sk->key = NULL;
}

/* Derive the subkey (id, ctx) of the master key into out. */
int
keyring_subkey(struct keyring *kr, uint64_t id, const char ctx[8],
    unsigned char out[KEYRING_KEY_LEN])
{
	/* The wrapping key never leaves this module. */
	if (memcmp(ctx, KEYRING_WRAP_CTX, crypto_kdf_CONTEXTBYTES) == 0)
		return -1;
	return crypto_kdf_derive_from_key(out, KEYRING_KEY_LEN, id, ctx,
	    kr->master) == 0 ? 0 : -1;
}
