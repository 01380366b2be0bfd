/*
 * test_keyring.c - master key files, wrapped identities and subkeys.
 *
 * Files are made in a fresh temporary directory; the expected key values
 * are computed here with libsodium directly, so a wrong decode or a wrong
 * derivation shows as a mismatch, not just as success.
 */
#include "build.h"

#include <sys/types.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "hash.h"
#include "keyring.h"
#include "util.h"
#include "tap.h"

int	main(void);

static char	 tmpdir[256];

/* The path of `name' in the test directory (static buffer, two slots). */
static const char *
tpath(const char *name)
{
	static char	 buf[2][512];
	static int	 slot;

	slot = !slot;
	snprintf(buf[slot], sizeof buf[slot], "%s/%s", tmpdir, name);
	return buf[slot];
}

/* Write a file with an exact mode, replacing any old one. */
static void
write_file(const char *path, const void *data, size_t len, mode_t mode)
{
	int	 fd;

	unlink(path);
	if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600)) == -1 ||
	    write(fd, data, len) != (ssize_t)len || fchmod(fd, mode) == -1) {
		perror(path);
		exit(2);
	}
	close(fd);
}

/* Load a key file and return its subkey (5, "sp-test1"), or -1. */
static int
load_subkey(const char *path, unsigned char out[32], const char **error_r)
{
	struct keyring	*kr = NULL;
	int		 rc;

	if (keyring_load(path, &kr, error_r) != 0)
		return -1;
	rc = keyring_subkey(kr, 5, "sp-test1", out);
	keyring_free(&kr);
	return rc;
}

/* The subkey (5, "sp-test1") of a known master, computed directly. */
static void
expect_subkey(const unsigned char master[32], unsigned char out[32])
{
	crypto_kdf_derive_from_key(out, 32, 5, "sp-test1", master);
}

static void
test_create(void)
{
	struct stat	 st;
	const char	*err = NULL;
	const char	*p = tpath("created.key");
	struct keyring	*kr = NULL;

	is_int(keyring_create_master(p, &err), 0, "create a master key file");
	ok(stat(p, &st) == 0, "the file exists");
	is_int(st.st_mode & 07777, 0400, "its mode is exactly 0400");
	is_int(st.st_size, 32, "it holds 32 bytes");
	err = NULL;
	is_int(keyring_create_master(p, &err), -1, "refuse an existing file");
	ok(err != NULL && strstr(err, "already exists") != NULL,
	    "the reason says it exists: %s", err ? err : "(null)");
	ok(stat(p, &st) == 0 && st.st_size == 32,
	    "the existing file is left alone");
	is_int(keyring_load(p, &kr, &err), 0, "the created file loads");
	ok(kr != NULL, "a keyring came back");
	keyring_free(&kr);
	ok(kr == NULL, "keyring_free clears the pointer");
	keyring_free(&kr);
	keyring_free(NULL);
	ok(1, "keyring_free accepts NULL");

	/* Two fresh keys differ. */
	{
		unsigned char	 a[32], b[32];
		const char	*q = tpath("created2.key");

		is_int(keyring_create_master(q, &err), 0, "a second key");
		ok(load_subkey(p, a, &err) == 0 && load_subkey(q, b, &err)
		    == 0 && memcmp(a, b, 32) != 0, "two new keys differ");
	}
	err = NULL;
	is_int(keyring_create_master(tpath("nodir/x.key"), &err), -1,
	    "refuse a path in a missing directory");
	ok(err != NULL, "with a reason");
}

static void
test_forms(void)
{
	unsigned char	 master[32], want[32], got[32];
	char		 hex[65], text[80];
	const char	*err;
	const char	*p = tpath("form.key");
	size_t		 i;

	for (i = 0; i < 32; i++)
		master[i] = (unsigned char)(0xa0 + i * 7);
	expect_subkey(master, want);
	sodium_bin2hex(hex, sizeof hex, master, 32);

	write_file(p, master, 32, 0400);
	ok(load_subkey(p, got, &err) == 0 && memcmp(got, want, 32) == 0,
	    "raw 32-byte form loads the right key");

	snprintf(text, sizeof text, "%s\n", hex);
	write_file(p, text, 65, 0400);
	ok(load_subkey(p, got, &err) == 0 && memcmp(got, want, 32) == 0,
	    "hex form with a newline loads the right key");

	write_file(p, hex, 64, 0600);
	ok(load_subkey(p, got, &err) == 0 && memcmp(got, want, 32) == 0,
	    "hex form without a newline, mode 0600, loads the right key");

	for (i = 0; i < 64; i++)
		text[i] = (char)(hex[i] >= 'a' ? hex[i] - 'a' + 'A' : hex[i]);
	write_file(p, text, 64, 0400);
	ok(load_subkey(p, got, &err) == 0 && memcmp(got, want, 32) == 0,
	    "upper-case hex loads the right key");

	/* Wrong lengths and bad text. */
	{
		static const struct {
			const char	*name;
			size_t		 len;
			int		 mode;	/* 0 raw master, 1 hex */
			const char	*tail;
		} bad[] = {
			{ "31 raw bytes", 31, 0, "" },
			{ "33 raw bytes", 33, 0, "" },
			{ "32 raw bytes + newline", 32, 0, "\n" },
			{ "empty file", 0, 0, "" },
			{ "63 hex digits", 63, 1, "" },
			{ "65 hex digits", 64, 1, "a" },
			{ "hex + CRLF", 64, 1, "\r\n" },
			{ "hex + two newlines", 64, 1, "\n\n" },
			{ "hex + a space", 64, 1, " " },
		};
		char	 buf[128];
		size_t	 n;

		for (i = 0; i < nitems(bad); i++) {
			memset(buf, 0, sizeof buf);
			if (bad[i].mode == 0)
				memcpy(buf, master, bad[i].len > 32 ? 32 :
				    bad[i].len);
			else
				memcpy(buf, hex, bad[i].len);
			n = bad[i].len;
			memcpy(buf + n, bad[i].tail, strlen(bad[i].tail));
			n += strlen(bad[i].tail);
			write_file(p, buf, n, 0400);
			err = NULL;
			ok(load_subkey(p, got, &err) == -1 && err != NULL &&
			    strstr(err, "32 raw bytes or 64 hex") != NULL,
			    "refuse %s", bad[i].name);
		}
		memcpy(buf, hex, 64);
		buf[17] = 'g';
		write_file(p, buf, 64, 0400);
		ok(load_subkey(p, got, &err) == -1, "refuse a non-hex digit");
		memcpy(buf, hex, 64);
		buf[40] = ':';
		write_file(p, buf, 64, 0400);
		ok(load_subkey(p, got, &err) == -1, "refuse a hex separator");
		memset(buf, 'x', sizeof buf);
		write_file(p, buf, sizeof buf, 0400);
		ok(load_subkey(p, got, &err) == -1, "refuse a long file");
	}
}

static void
test_modes(void)
{
	static const int bad[] = { 0644, 0440, 0404, 0640, 0600 | 0020,
	    0400 | 0001, 0410, 0666 };
	unsigned char	 master[32], got[32];
	char		 want[16];
	const char	*err;
	const char	*p = tpath("mode.key");
	size_t		 i;

	hash_random(master, sizeof master);
	for (i = 0; i < nitems(bad); i++) {
		write_file(p, master, 32, (mode_t)bad[i]);
		err = NULL;
		snprintf(want, sizeof want, "%04o", bad[i]);
		ok(load_subkey(p, got, &err) == -1 && err != NULL &&
		    strstr(err, want) != NULL &&
		    strstr(err, "chmod 0400") != NULL,
		    "refuse mode %s, naming the mode and the fix", want);
	}
	if (err != NULL)
		diag("reason: %s", err);
	write_file(p, master, 32, 0400);
	ok(load_subkey(p, got, &err) == 0, "accept mode 0400");
	write_file(p, master, 32, 0600);
	ok(load_subkey(p, got, &err) == 0, "accept mode 0600");

	unlink(tpath("link.key"));
	if (symlink(p, tpath("link.key")) == 0) {
		err = NULL;
		ok(load_subkey(tpath("link.key"), got, &err) == -1 &&
		    err != NULL && strstr(err, "symbolic link") != NULL,
		    "refuse a symbolic link");
	} else
		skip("symlink: %s", strerror(errno));
	mkdir(tpath("dir.key"), 0700);
	err = NULL;
	ok(load_subkey(tpath("dir.key"), got, &err) == -1 && err != NULL,
	    "refuse a directory");
	err = NULL;
	ok(load_subkey(tpath("missing.key"), got, &err) == -1 &&
	    err != NULL && strstr(err, "missing.key") != NULL,
	    "a missing file names the path");
}

static void
test_credential(void)
{
	unsigned char	 master[32], want[32], got[32];
	const char	*err;
	char		 dir[512];

	snprintf(dir, sizeof dir, "%s/creds", tmpdir);
	mkdir(dir, 0700);
	hash_random(master, sizeof master);
	expect_subkey(master, want);
	write_file(tpath("creds/master.key"), master, 32, 0400);

	setenv("CREDENTIALS_DIRECTORY", dir, 1);
	ok(load_subkey(NULL, got, &err) == 0 && memcmp(got, want, 32) == 0,
	    "NULL path loads $CREDENTIALS_DIRECTORY/master.key");
	memset(got, 0, sizeof got);
	ok(load_subkey("", got, &err) == 0 && memcmp(got, want, 32) == 0,
	    "empty path loads the credential too");

	write_file(tpath("creds/master.key"), master, 32, 0444);
	err = NULL;
	ok(load_subkey(NULL, got, &err) == -1 && err != NULL &&
	    strstr(err, "0444") != NULL,
	    "a world-readable credential is refused");

	unlink(tpath("creds/master.key"));
	err = NULL;
	ok(load_subkey(NULL, got, &err) == -1 && err != NULL,
	    "a credential directory without master.key fails");

	unsetenv("CREDENTIALS_DIRECTORY");
	err = NULL;
	ok(load_subkey(NULL, got, &err) == -1 && err != NULL &&
	    strstr(err, "master_key_file") != NULL &&
	    strstr(err, "LoadCredential=master.key") != NULL,
	    "no path and no credential: the reason names both fixes");
	setenv("CREDENTIALS_DIRECTORY", "", 1);
	err = NULL;
	ok(load_subkey(NULL, got, &err) == -1 && err != NULL,
	    "an empty CREDENTIALS_DIRECTORY counts as unset");
	unsetenv("CREDENTIALS_DIRECTORY");
}

/* Does writing to the secret fault (read-only pages)? */
static int
write_faults(unsigned char *p)
{
	pid_t	 pid;
	int	 status;

	if ((pid = fork()) == -1)
		return -1;
	if (pid == 0) {
		signal(SIGSEGV, SIG_DFL);
		signal(SIGBUS, SIG_DFL);
		*(volatile unsigned char *)p ^= 1;
		_exit(0);
	}
	if (waitpid(pid, &status, 0) == -1)
		return -1;
	return !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void
test_wrap(void)
{
	struct keyring		*kr = NULL, *kr2 = NULL;
	struct keyring_secret	 sk = { NULL }, sk2 = { NULL };
	unsigned char		 pk[32], pk2[32], derived[32];
	unsigned char		 w[KEYRING_WRAPPED_LEN], w2[KEYRING_WRAPPED_LEN];
	unsigned char		 t[KEYRING_WRAPPED_LEN + 1];
	const char		*err;
	size_t			 i, opened;
	int			 f;

	if (keyring_create_master(tpath("w1.key"), &err) != 0 ||
	    keyring_create_master(tpath("w2.key"), &err) != 0 ||
	    keyring_load(tpath("w1.key"), &kr, &err) != 0 ||
	    keyring_load(tpath("w2.key"), &kr2, &err) != 0) {
		ok(0, "set up two keyrings: %s", err);
		return;
	}

	is_int(keyring_identity_new(kr, "patient:42", pk, w, &err), 0,
	    "new identity");
	is_int(w[0], 1, "wrapped form starts with version 1");
	is_int(keyring_identity_unwrap(kr, "patient:42", w, sizeof w, &sk,
	    &err), 0, "unwrap with the same row identity");
	ok(sk.key != NULL, "a secret came back");
	ok(sk.key != NULL && crypto_scalarmult_base(derived, sk.key) == 0 &&
	    memcmp(derived, pk, 32) == 0,
	    "X25519(sk, basepoint) equals the public key");
	f = sk.key != NULL ? write_faults(sk.key) : -1;
	if (f == -1)
		skip("fork failed");
	else
		ok(f == 1, "the unwrapped secret is read-only");
	keyring_secret_free(&sk);
	ok(sk.key == NULL, "keyring_secret_free clears the pointer");
	keyring_secret_free(&sk);
	keyring_secret_free(NULL);

	err = NULL;
	is_int(keyring_identity_unwrap(kr, "patient:43", w, sizeof w, &sk,
	    &err), -1, "wrong row identity (key moved to another row) fails");
	ok(sk.key == NULL && err != NULL, "no secret and a reason");
	is_int(keyring_identity_unwrap(kr, "clinician:42", w, sizeof w, &sk,
	    &err), -1, "another party type with the same id fails");
	is_int(keyring_identity_unwrap(kr2, "patient:42", w, sizeof w, &sk,
	    &err), -1, "another master key fails");
	is_int(keyring_identity_unwrap(kr, "", w, sizeof w, &sk, &err), -1,
	    "empty associated data fails");
	is_int(keyring_identity_new(kr, "", pk2, w2, &err), -1,
	    "wrapping for an empty row identity is refused");

	/* Every single-bit flip in every byte must be caught. */
	opened = 0;
	for (i = 0; i < sizeof w; i++) {
		memcpy(t, w, sizeof w);
		t[i] ^= (unsigned char)(1u << (i % 8));
		if (keyring_identity_unwrap(kr, "patient:42", t, sizeof w,
		    &sk, &err) == 0) {
			opened++;
			keyring_secret_free(&sk);
		}
	}
	is_int(opened, 0, "no tampered byte (of %zu) opens", sizeof w);
	memcpy(t, w, sizeof w);
	t[0] = 2;
	err = NULL;
	ok(keyring_identity_unwrap(kr, "patient:42", t, sizeof w, &sk,
	    &err) == -1 && err != NULL && strstr(err, "version") != NULL,
	    "version 2 is refused as an unknown version");
	memcpy(t, w, sizeof w);
	t[sizeof w] = 0;
	is_int(keyring_identity_unwrap(kr, "patient:42", t, sizeof w + 1,
	    &sk, &err), -1, "one byte too long fails");
	is_int(keyring_identity_unwrap(kr, "patient:42", w, sizeof w - 1,
	    &sk, &err), -1, "one byte too short fails");
	is_int(keyring_identity_unwrap(kr, "patient:42", NULL, 0, &sk,
	    &err), -1, "no blob fails");

	/* Fresh identities are independent. */
	is_int(keyring_identity_new(kr, "patient:42", pk2, w2, &err), 0,
	    "a second identity for the same row");
	ok(memcmp(pk, pk2, 32) != 0, "its public key differs");
	ok(memcmp(w + 1, w2 + 1, 24) != 0, "its nonce differs");

	/* Rotation: unwrap under one master, wrap under another. */
	if (keyring_identity_unwrap(kr, "patient:42", w, sizeof w, &sk,
	    &err) == 0 &&
	    keyring_identity_wrap(kr2, "patient:42", &sk, w2, &err) == 0 &&
	    keyring_identity_unwrap(kr2, "patient:42", w2, sizeof w2, &sk2,
	    &err) == 0) {
		ok(crypto_scalarmult_base(derived, sk2.key) == 0 &&
		    memcmp(derived, pk, 32) == 0,
		    "re-wrapped under a new master, the same identity opens");
		keyring_secret_free(&sk2);
		is_int(keyring_identity_unwrap(kr, "patient:42", w2,
		    sizeof w2, &sk2, &err), -1,
		    "the re-wrapped key does not open under the old master");
	} else {
		ok(0, "rotation round trip: %s", err);
		ok(0, "rotation: old master");
	}
	keyring_secret_free(&sk);
	keyring_secret_free(&sk2);

	keyring_free(&kr);
	keyring_free(&kr2);
}

static void
test_subkeys(void)
{
	struct keyring	*kr = NULL;
	unsigned char	 master[32], a[32], b[32], c[32], d[32], want[32];
	const char	*err;
	const char	*p = tpath("sub.key");

	hash_random(master, sizeof master);
	write_file(p, master, 32, 0400);
	if (keyring_load(p, &kr, &err) != 0) {
		ok(0, "load: %s", err);
		return;
	}
	is_int(keyring_subkey(kr, 1, "sp-tokn1", a), 0, "subkey 1 sp-tokn1");
	is_int(keyring_subkey(kr, 2, "sp-tokn1", b), 0, "subkey 2 sp-tokn1");
	is_int(keyring_subkey(kr, 1, "sp-tokn2", c), 0, "subkey 1 sp-tokn2");
	ok(memcmp(a, b, 32) != 0, "subkeys differ by id");
	ok(memcmp(a, c, 32) != 0, "subkeys differ by context");
	keyring_subkey(kr, 1, "sp-tokn1", d);
	ok(memcmp(a, d, 32) == 0, "a subkey is deterministic");
	crypto_kdf_derive_from_key(want, 32, 1, "sp-tokn1", master);
	ok(memcmp(a, want, 32) == 0, "it is crypto_kdf of the master key");
	is_int(keyring_subkey(kr, 1, "sp-wrap1", d), -1,
	    "the wrapping context is reserved");
	keyring_free(&kr);
}

int
main(void)
{
	const char	*base = getenv("TMPDIR");

	if (hash_init() != 0) {
		ok(0, "sodium_init");
		return tap_done();
	}
	snprintf(tmpdir, sizeof tmpdir, "%s/test_keyring.XXXXXX",
	    base != NULL && *base != '\0' ? base : "/tmp");
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 2;
	}
	unsetenv("CREDENTIALS_DIRECTORY");

	test_create();
	test_forms();
	test_modes();
	test_credential();
	test_wrap();
	test_subkeys();

	{
		char	 cmd[600];

		snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
		if (system(cmd) != 0)
			diag("could not remove %s", tmpdir);
	}
	return tap_done();
}
