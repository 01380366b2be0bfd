/*
 * test_token.c - reply and bounce tokens.
 *
 * Known answers were computed outside sealpost (Python hmac, hashlib.blake2b
 * and base64.b32encode following the layout in token.h), so a drift of the
 * format fails here.  Forged tokens are built with this file's own base32
 * codec and libsodium's HMAC, so a token with a valid MAC but a bad
 * structure can be tested too.  The pseudo-random tests use a fixed seed.
 */
#include "build.h"

#include <sys/types.h>
#include <sys/stat.h>
#include <ctype.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "hash.h"
#include "keyring.h"
#include "token.h"
#include "tap.h"

int	main(void);

#define E2026	INT64_C(1767225600)	/* 2026-01-01T00:00:00Z */

static const char b32[] = "abcdefghijklmnopqrstuvwxyz234567";
static uint64_t	 rng_state = 0x5eed7031c0ffee11ULL;

static struct token_keys	 kA, kB;	/* v1 key 0..31, v2 key 0xa5.. */

/* splitmix64: reproducible pseudo-random numbers. */
static uint64_t
rng(void)
{
	uint64_t	 z = (rng_state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* A random id in [1, INT64_MAX] with a random bit length. */
static int64_t
rng_id(void)
{
	unsigned	 bits = 1 + (unsigned)(rng() % 63);
	int64_t		 v;

	v = (int64_t)(rng() & ((UINT64_C(1) << bits) - 1));
	return v < 1 ? 1 : v;
}

/* Test-local base32 encoder (lower case, unpadded). */
static void
enc32(const unsigned char *p, size_t n, char *out)
{
	uint32_t	 acc = 0;
	unsigned	 bits = 0;
	size_t		 i, o = 0;

	for (i = 0; i < n; i++) {
		acc = (acc << 8) | p[i];
		for (bits += 8; bits >= 5; bits -= 5)
			out[o++] = b32[(acc >> (bits - 5)) & 31];
	}
	if (bits > 0)
		out[o++] = b32[(acc << (5 - bits)) & 31];
	out[o] = '\0';
}

/* Test-local base32 decoder (lower case only); returns the byte count. */
static size_t
dec32(const char *s, unsigned char *out)
{
	uint32_t	 acc = 0;
	unsigned	 bits = 0;
	size_t		 o = 0;

	for (; *s != '\0'; s++) {
		acc = (acc << 5) | (uint32_t)(strchr(b32, *s) - b32);
		bits += 5;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (unsigned char)(acc >> bits);
		}
	}
	return o;
}

/* body || HMAC(key, label || 0 || body)[0..11], base32 into out. */
static void
forge(const unsigned char key[32], const unsigned char *body, size_t n,
    size_t maclen, char *out)
{
	unsigned char	 p[128], mac[32];
	crypto_auth_hmacsha256_state st;

	crypto_auth_hmacsha256_init(&st, key, 32);
	crypto_auth_hmacsha256_update(&st,
	    (const unsigned char *)"sealpost-token-v1", 18);
	crypto_auth_hmacsha256_update(&st, body, n);
	crypto_auth_hmacsha256_final(&st, mac);
	memcpy(p, body, n);
	memcpy(p + n, mac, maclen);
	enc32(p, n + maclen, out);
}

/* token_check over a NUL-terminated string. */
static enum token_result
check(const struct token_keys *keys, size_t n, enum token_purpose purpose,
    const char *tok, int64_t now, struct token_claims *c)
{
	const char	*err = NULL;

	return token_check(keys, n, purpose, tok, strlen(tok), now, c, &err);
}

/* Fixed inputs give fixed strings; claims come back. */
static void
test_known_answers(void)
{
	static const struct {
		enum token_purpose	 purpose;
		int			 key;	/* 0: kA, 1: kB */
		unsigned		 version;
		int64_t			 thread, rcpt, expires;
		const char		*want;
	} kat[] = {
		{ TOKEN_REPLY, 0, 1, 42, 7, E2026,
		    "ceasub7gt4azu5fyonnwnkymy2wqzwi" },
		{ TOKEN_BOUNCE, 0, 1, 42, 7, E2026,
		    "ciasub7gt4a4wtzjswva6fedzz5ljzq" },
		{ TOKEN_REPLY, 0, 3, 123456, 1234567, E2026 + 1,
		    "ceb4brahq6wuxz47ahvhy2snirsmmugfktldc" },
		{ TOKEN_BOUNCE, 1, 127, INT64_MAX, INT64_MAX,
		    TOKEN_EXPIRES_MAX,
		    "cj77777777777777p777777777777737777x6tnjy6z3ahxctv23en2o" },
	};
	struct token_keys	 k;
	struct token_claims	 c;
	char			 tok[TOKEN_BUFSZ];
	size_t			 i;

	for (i = 0; i < sizeof kat / sizeof kat[0]; i++) {
		k = kat[i].key == 0 ? kA : kB;
		k.version = kat[i].version;
		is_int(token_make(&k, kat[i].purpose, kat[i].thread,
		    kat[i].rcpt, kat[i].expires, tok, sizeof tok), 0,
		    "kat %zu: made", i);
		is_str(tok, kat[i].want, "kat %zu: known token", i);
		is_int(check(&k, 1, kat[i].purpose, kat[i].want, 0, &c),
		    TOKEN_OK, "kat %zu: known token verifies", i);
		ok(c.thread == kat[i].thread && c.recipient == kat[i].rcpt &&
		    c.key_version == kat[i].version &&
		    c.purpose == kat[i].purpose,
		    "kat %zu: claims thread, recipient, version, purpose", i);
		is_int(c.expires_at, (kat[i].expires + 86399) / 86400 * 86400,
		    "kat %zu: expiry rounded up to midnight", i);
	}
}

/* K_v from a master key file, against a value computed outside. */
static void
test_derive(void)
{
	static const char want[] =
	    "2605811e622a6ebbc0771a5750c34d47edade3837f7b4151bfb59ce120e658f1";
	unsigned char		 master[32];
	char			 dir[256], path[300];
	const char		*base = getenv("TMPDIR");
	char			 hex[65], tok[TOKEN_BUFSZ];
	struct keyring		*kr = NULL;
	struct token_keys	 k;
	const char		*err = NULL;
	int			 fd, i;

	for (i = 0; i < 32; i++)
		master[i] = (unsigned char)(100 + i);
	snprintf(dir, sizeof dir, "%s/test_token.XXXXXX",
	    base != NULL && *base != '\0' ? base : "/tmp");
	if (mkdtemp(dir) == NULL) {
		skip("mkdtemp failed: cannot write a master key file");
		return;
	}
	snprintf(path, sizeof path, "%s/master.key", dir);
	if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0400)) == -1 ||
	    write(fd, master, 32) != 32) {
		perror(path);
		exit(2);
	}
	close(fd);
	if (!ok(keyring_load(path, &kr, &err) == 0, "keyring loads"))
		diag("%s", err);
	unlink(path);
	rmdir(dir);
	if (kr == NULL)
		return;

	is_int(token_key_derive(kr, 1, &k), 0, "derive v1");
	hash_hex(k.key, 32, hex);
	is_str(hex, want, "K_1 = kdf(master, 1, \"sp-token\")");
	is_int(k.version, 1, "derived version recorded");
	token_make(&k, TOKEN_REPLY, 42, 7, E2026, tok, sizeof tok);
	is_str(tok, "ceasub7gt4azewp2to7eksmw4y3tsga",
	    "token under a derived key is the known one");
	is_int(token_key_derive(kr, 0, &k), -1, "derive v0 refused");
	is_int(token_key_derive(kr, TOKEN_VERSION_MAX + 1, &k), -1,
	    "derive v128 refused");
	keyring_free(&kr);
}

/* Many random ids and expiries make, check and come back unchanged. */
static void
test_round_trips(void)
{
	struct token_keys	 k;
	struct token_claims	 c;
	char			 tok[TOKEN_BUFSZ], lp[TOKEN_LOCAL_BUFSZ];
	int64_t			 th, rc, ex;
	enum token_purpose	 pu;
	int			 i, bad = 0, badlen = 0, badchar = 0;
	size_t			 len, minlen = 1000, maxlen = 0, j;

	for (i = 0; i < 20000; i++) {
		k = (i & 1) ? kA : kB;
		k.version = 1 + (unsigned)(rng() % TOKEN_VERSION_MAX);
		pu = (rng() & 1) ? TOKEN_REPLY : TOKEN_BOUNCE;
		th = rng_id();
		rc = rng_id();
		ex = (int64_t)(rng() % (uint64_t)(TOKEN_EXPIRES_MAX + 1));
		if (i < 8)	/* the extremes */
			ex = (i & 1) ? TOKEN_EXPIRES_MAX : 0;
		if (token_make(&k, pu, th, rc, ex, tok, sizeof tok) != 0) {
			bad++;
			continue;
		}
		len = strlen(tok);
		minlen = len < minlen ? len : minlen;
		maxlen = len > maxlen ? len : maxlen;
		if (len < TOKEN_MIN_LEN || len > TOKEN_MAX_LEN ||
		    token_local_part(pu, tok, lp, sizeof lp) != 0 ||
		    strlen(lp) > TOKEN_LOCAL_MAX)
			badlen++;
		for (j = 0; j < len; j++)
			if (strchr(b32, tok[j]) == NULL)
				badchar++;
		if (check(&k, 1, pu, tok, ex - 86400, &c) != TOKEN_OK ||
		    c.thread != th || c.recipient != rc ||
		    c.key_version != k.version || c.purpose != pu ||
		    c.expires_at < ex || c.expires_at >= ex + 86400 ||
		    c.expires_at % 86400 != 0)
			bad++;
	}
	is_int(bad, 0, "20000 random tokens round-trip with their claims");
	is_int(badlen, 0, "every token and local part within bounds");
	is_int(badchar, 0, "every token is lower-case base32");
	diag("random token lengths %zu..%zu", minlen, maxlen);
}

/* Every single-character change of a token is refused. */
static void
test_flips(void)
{
	static const char junk[] = "0189+=@. -_AZ\x7f\xff";
	static const int64_t ids[][3] = {
		{ 1, 1, 0 },
		{ 42, 7, E2026 },
		{ 123456, 1234567, E2026 },
		{ INT64_MAX, INT64_MAX, TOKEN_EXPIRES_MAX },
	};
	struct token_keys	 keys[2];
	struct token_claims	 c;
	char			 tok[TOKEN_BUFSZ], t[TOKEN_BUFSZ];
	size_t			 i, pos, len, tries;
	int			 pu, a, n_ok, n_mac, n_mal, n_key, other;
	enum token_result	 r;

	keys[0] = kA;
	keys[1] = kB;
	for (pu = TOKEN_REPLY; pu <= TOKEN_BOUNCE; pu++)
	for (i = 0; i < sizeof ids / sizeof ids[0]; i++) {
		token_make(&keys[0], (enum token_purpose)pu, ids[i][0],
		    ids[i][1], ids[i][2], tok, sizeof tok);
		len = strlen(tok);
		n_ok = n_mac = n_mal = n_key = other = 0;
		tries = 0;
		for (pos = 0; pos < len; pos++) {
			for (a = 0; a < 32 + (int)sizeof junk - 1; a++) {
				char	 ch = a < 32 ? b32[a] : junk[a - 32];

				if (ch == tok[pos])
					continue;
				/* The same letter in upper case is the same token. */
				if (toupper((unsigned char)tok[pos]) == ch)
					continue;
				memcpy(t, tok, len + 1);
				t[pos] = ch;
				tries++;
				r = check(keys, 2, (enum token_purpose)pu, t,
				    INT64_MIN, &c);
				switch (r) {
				case TOKEN_OK:
				case TOKEN_EXPIRED:
					n_ok++;
					break;
				case TOKEN_BAD_MAC:
					n_mac++;
					break;
				case TOKEN_MALFORMED:
					n_mal++;
					break;
				case TOKEN_UNKNOWN_KEY:
					n_key++;
					break;
				default:
					other++;
				}
			}
		}
		ok(n_ok == 0 && other == 0 && n_mac > 0,
		    "%s token %zu (%zu chars): %zu one-character changes "
		    "refused (bad_mac %d, malformed %d, unknown_key %d)",
		    pu == TOKEN_REPLY ? "reply" : "bounce", i, len, tries,
		    n_mac, n_mal, n_key);
	}
}

/* The MAC binds thread, recipient and purpose: spliced tokens fail. */
static void
test_binding(void)
{
	struct token_claims	 c;
	unsigned char		 a[64], b[64];
	char			 ta[TOKEN_BUFSZ], tb[TOKEN_BUFSZ];
	char			 t[TOKEN_BUFSZ * 2];
	size_t			 na, nb;

	/* Same thread, another recipient: body of B with the MAC of A. */
	token_make(&kA, TOKEN_REPLY, 500, 77, E2026, ta, sizeof ta);
	token_make(&kA, TOKEN_REPLY, 500, 78, E2026, tb, sizeof tb);
	na = dec32(ta, a);
	nb = dec32(tb, b);
	memcpy(b + nb - TOKEN_MAC_LEN, a + na - TOKEN_MAC_LEN, TOKEN_MAC_LEN);
	enc32(b, nb, t);
	is_int(check(&kA, 1, TOKEN_REPLY, t, 0, &c), TOKEN_BAD_MAC,
	    "another recipient's fields under this MAC: bad_mac");
	is_int(c.thread, 0, "no claims from a bad MAC");

	/* Thread and recipient swapped, MAC kept. */
	token_make(&kA, TOKEN_REPLY, 500, 77, E2026, ta, sizeof ta);
	token_make(&kA, TOKEN_REPLY, 77, 500, E2026, tb, sizeof tb);
	na = dec32(ta, a);
	nb = dec32(tb, b);
	memcpy(b + nb - TOKEN_MAC_LEN, a + na - TOKEN_MAC_LEN, TOKEN_MAC_LEN);
	enc32(b, nb, t);
	is_int(check(&kA, 1, TOKEN_REPLY, t, 0, &c), TOKEN_BAD_MAC,
	    "thread and recipient swapped: bad_mac");

	/* Another thread, same recipient. */
	token_make(&kA, TOKEN_REPLY, 501, 77, E2026, tb, sizeof tb);
	nb = dec32(tb, b);
	memcpy(b + nb - TOKEN_MAC_LEN, a + na - TOKEN_MAC_LEN, TOKEN_MAC_LEN);
	enc32(b, nb, t);
	is_int(check(&kA, 1, TOKEN_REPLY, t, 0, &c), TOKEN_BAD_MAC,
	    "another thread: bad_mac");

	/* A later expiry, MAC kept. */
	token_make(&kA, TOKEN_REPLY, 500, 77, E2026 + 86400 * 30, tb,
	    sizeof tb);
	nb = dec32(tb, b);
	memcpy(b + nb - TOKEN_MAC_LEN, a + na - TOKEN_MAC_LEN, TOKEN_MAC_LEN);
	enc32(b, nb, t);
	is_int(check(&kA, 1, TOKEN_REPLY, t, 0, &c), TOKEN_BAD_MAC,
	    "extended expiry: bad_mac");

	/* A valid token for another recipient verifies, naming that one. */
	token_make(&kA, TOKEN_REPLY, 500, 78, E2026, tb, sizeof tb);
	ok(check(&kA, 1, TOKEN_REPLY, tb, 0, &c) == TOKEN_OK &&
	    c.recipient == 78, "the claims name the token's own recipient");

	/* Purpose: a reply token is no bounce token, and back. */
	token_make(&kA, TOKEN_REPLY, 500, 77, E2026, ta, sizeof ta);
	token_make(&kA, TOKEN_BOUNCE, 500, 77, E2026, tb, sizeof tb);
	ok(strcmp(ta, tb) != 0, "reply and bounce tokens differ");
	is_int(check(&kA, 1, TOKEN_BOUNCE, ta, 0, &c), TOKEN_MALFORMED,
	    "reply token checked as bounce: refused");
	is_int(check(&kA, 1, TOKEN_REPLY, tb, 0, &c), TOKEN_MALFORMED,
	    "bounce token checked as reply: refused");
	/* Relabel the tag, keep the MAC: the MAC covers the purpose. */
	na = dec32(ta, a);
	a[0] = 0x12;
	enc32(a, na, t);
	is_int(check(&kA, 1, TOKEN_BOUNCE, t, 0, &c), TOKEN_BAD_MAC,
	    "reply token relabelled bounce: bad_mac");
	na = dec32(tb, a);
	a[0] = 0x11;
	enc32(a, na, t);
	is_int(check(&kA, 1, TOKEN_REPLY, t, 0, &c), TOKEN_BAD_MAC,
	    "bounce token relabelled reply: bad_mac");
	is_int(check(&kA, 1, (enum token_purpose)3, ta, 0, &c),
	    TOKEN_MALFORMED, "unknown purpose asked: malformed");
}

/* Expired tokens still name their thread and recipient. */
static void
test_expiry(void)
{
	struct token_claims	 c;
	char			 tok[TOKEN_BUFSZ];

	token_make(&kA, TOKEN_REPLY, 9001, 31, E2026, tok, sizeof tok);
	is_int(check(&kA, 1, TOKEN_REPLY, tok, E2026 - 1, &c), TOKEN_OK,
	    "valid one second before expiry");
	is_int(check(&kA, 1, TOKEN_REPLY, tok, E2026, &c), TOKEN_EXPIRED,
	    "expired at the expiry instant");
	ok(c.thread == 9001 && c.recipient == 31 && c.expires_at == E2026,
	    "expired token keeps its claims for the polite auto-reply");
	is_int(check(&kA, 1, TOKEN_REPLY, tok, E2026 + 86400 * 365, &c),
	    TOKEN_EXPIRED, "expired a year later");

	token_make(&kA, TOKEN_REPLY, 9001, 31, E2026 + 1, tok, sizeof tok);
	is_int(check(&kA, 1, TOKEN_REPLY, tok, E2026 + 1, &c), TOKEN_OK,
	    "expiry rounded up: still valid at the asked second");
	is_int(c.expires_at, E2026 + 86400, "reported expiry is next midnight");
	is_int(check(&kA, 1, TOKEN_REPLY, tok, E2026 + 86400, &c),
	    TOKEN_EXPIRED, "expired at that midnight");

	token_make(&kA, TOKEN_REPLY, 1, 1, 0, tok, sizeof tok);
	is_int(check(&kA, 1, TOKEN_REPLY, tok, 0, &c), TOKEN_EXPIRED,
	    "expiry 0 is expired at the epoch");
}

/* Rotation: older versions verify while listed, not after. */
static void
test_rotation(void)
{
	struct token_keys	 v21[2], v2only[1], wrong[1];
	struct token_claims	 c;
	char			 t1[TOKEN_BUFSZ], t2[TOKEN_BUFSZ];

	v21[0] = kB;	/* v2, current */
	v21[1] = kA;	/* v1, still accepted */
	v2only[0] = kB;
	wrong[0] = kB;
	wrong[0].version = 1;	/* v1 with the wrong key bytes */

	token_make(&kA, TOKEN_REPLY, 10, 20, E2026, t1, sizeof t1);
	token_make(v21, TOKEN_REPLY, 10, 20, E2026, t2, sizeof t2);
	ok(check(v21, 2, TOKEN_REPLY, t1, 0, &c) == TOKEN_OK &&
	    c.key_version == 1, "v1 token verifies with keys [v2, v1]");
	is_int(check(v2only, 1, TOKEN_REPLY, t1, 0, &c), TOKEN_UNKNOWN_KEY,
	    "v1 token with keys [v2] alone: unknown_key");
	ok(check(v21, 2, TOKEN_REPLY, t2, 0, &c) == TOKEN_OK &&
	    c.key_version == 2, "new tokens are made with the first key (v2)");
	is_int(check(&kA, 1, TOKEN_REPLY, t2, 0, &c), TOKEN_UNKNOWN_KEY,
	    "v2 token with keys [v1]: unknown_key");
	is_int(check(wrong, 1, TOKEN_REPLY, t1, 0, &c), TOKEN_BAD_MAC,
	    "right version, wrong key bytes: bad_mac");
	is_int(check(v21, 0, TOKEN_REPLY, t1, 0, &c), TOKEN_UNKNOWN_KEY,
	    "no keys at all: unknown_key");
}

/* Case, canonical base32 and length rules. */
static void
test_encoding(void)
{
	struct token_claims	 c;
	char			 tok[TOKEN_BUFSZ], t[256], lp[TOKEN_LOCAL_BUFSZ];
	size_t			 len, i;
	int			 v, n_bad;

	/* Upper case from a client is the same token. */
	token_make(&kA, TOKEN_REPLY, 42, 7, E2026, tok, sizeof tok);
	len = strlen(tok);
	for (i = 0; i <= len; i++)
		t[i] = (char)toupper((unsigned char)tok[i]);
	ok(check(&kA, 1, TOKEN_REPLY, t, 0, &c) == TOKEN_OK &&
	    c.thread == 42 && c.recipient == 7, "upper-case token accepted");
	for (i = 0; i <= len; i++)
		t[i] = (i & 1) ? (char)toupper((unsigned char)tok[i]) : tok[i];
	is_int(check(&kA, 1, TOKEN_REPLY, t, 0, &c), TOKEN_OK,
	    "mixed-case token accepted");

	/* 31 characters carry 155 bits: the last 3 must be zero. */
	is_int(len, 31, "small-id token is 31 characters");
	v = (int)(strchr(b32, tok[len - 1]) - b32);
	is_int(v & 7, 0, "the encoder leaves unused bits zero");
	n_bad = 0;
	for (i = 1; i < 8; i++) {
		memcpy(t, tok, len + 1);
		t[len - 1] = b32[v | (int)i];
		if (check(&kA, 1, TOKEN_REPLY, t, 0, &c) != TOKEN_MALFORMED)
			n_bad++;
	}
	is_int(n_bad, 0, "non-zero unused bits: malformed (7 variants)");

	/* Lengths. */
	memcpy(t, tok, len + 1);
	t[len - 1] = '\0';
	is_int(check(&kA, 1, TOKEN_REPLY, t, 0, &c), TOKEN_MALFORMED,
	    "one character dropped (impossible length): malformed");
	t[len - 2] = '\0';
	is_int(check(&kA, 1, TOKEN_REPLY, t, 0, &c), TOKEN_MALFORMED,
	    "two characters dropped: malformed");
	snprintf(t, sizeof t, "%sa", tok);
	is_int(check(&kA, 1, TOKEN_REPLY, t, 0, &c), TOKEN_MALFORMED,
	    "an extra zero character (extra byte): malformed");
	snprintf(t, sizeof t, "%saaaaaaaa", tok);
	is_int(check(&kA, 1, TOKEN_REPLY, t, 0, &c), TOKEN_MALFORMED,
	    "eight extra characters: malformed");
	snprintf(t, sizeof t, "%s=", tok);
	is_int(check(&kA, 1, TOKEN_REPLY, t, 0, &c), TOKEN_MALFORMED,
	    "padding: malformed");
	snprintf(t, sizeof t, "%s ", tok);
	is_int(check(&kA, 1, TOKEN_REPLY, t, 0, &c), TOKEN_MALFORMED,
	    "trailing space: malformed");
	snprintf(t, sizeof t, "%s+tag", tok);
	is_int(check(&kA, 1, TOKEN_REPLY, t, 0, &c), TOKEN_MALFORMED,
	    "trailing sub-address: malformed");
	{
		const char	*err = NULL;

		is_int(token_check(&kA, 1, TOKEN_REPLY, tok, len - 1, 0, &c,
		    &err), TOKEN_MALFORMED, "length argument is honoured");
		ok(err != NULL && *err != '\0', "a reason is given");
		is_int(token_check(&kA, 1, TOKEN_REPLY, tok, len, 0, &c,
		    &err), TOKEN_OK, "same bytes at full length: ok");
		is_int(token_check(&kA, 1, TOKEN_REPLY, "", 0, 0, &c, &err),
		    TOKEN_MALFORMED, "empty: malformed");
		memset(t, 'a', sizeof t);
		is_int(token_check(&kA, 1, TOKEN_REPLY, t, sizeof t, 0, &c,
		    &err), TOKEN_MALFORMED, "256 characters: malformed");
		memcpy(t, tok, len);
		t[5] = '\0';
		is_int(token_check(&kA, 1, TOKEN_REPLY, t, len, 0, &c, &err),
		    TOKEN_MALFORMED, "embedded NUL: malformed");
	}
	memset(t, 'a', TOKEN_MAX_LEN + 1);
	t[TOKEN_MAX_LEN + 1] = '\0';
	is_int(check(&kA, 1, TOKEN_REPLY, t, 0, &c), TOKEN_MALFORMED,
	    "57 characters: malformed");
	memset(t, 'a', TOKEN_MAX_LEN);
	t[TOKEN_MAX_LEN] = '\0';
	is_int(check(&kA, 1, TOKEN_REPLY, t, 0, &c), TOKEN_MALFORMED,
	    "56 zero characters (bad tag): malformed");

	/* The length bound at INT64_MAX for both purposes. */
	token_make(&kB, TOKEN_BOUNCE, INT64_MAX, INT64_MAX,
	    TOKEN_EXPIRES_MAX, tok, sizeof tok);
	is_int(strlen(tok), TOKEN_MAX_LEN, "INT64_MAX bounce token: 56 chars");
	is_int(token_local_part(TOKEN_BOUNCE, tok, lp, sizeof lp), 0,
	    "bounce local part built");
	ok(strlen(lp) <= 64, "bounce+<token> at INT64_MAX is %zu <= 64 octets",
	    strlen(lp));
	ok(check(&kB, 1, TOKEN_BOUNCE, tok, 0, &c) == TOKEN_OK &&
	    c.thread == INT64_MAX && c.recipient == INT64_MAX &&
	    c.expires_at == TOKEN_EXPIRES_MAX, "INT64_MAX claims round-trip");
	{
		struct token_keys	 k = kB;

		k.version = TOKEN_VERSION_MAX;
		token_make(&k, TOKEN_REPLY, INT64_MAX, INT64_MAX,
		    TOKEN_EXPIRES_MAX, tok, sizeof tok);
	}
	token_local_part(TOKEN_REPLY, tok, lp, sizeof lp);
	ok(strlen(tok) == TOKEN_MAX_LEN && strlen(lp) <= 64,
	    "reply+<token> at INT64_MAX, v127 is %zu <= 64 octets",
	    strlen(lp));
}

/* Tokens with a valid MAC but a bad structure are still refused. */
static void
test_structure(void)
{
	static const struct {
		const char	*name;
		unsigned char	 body[32];
		size_t		 n, maclen;
		enum token_result want;
	} cases[] = {
		{ "well-formed (the forger matches token_make)",
		  { 0x11, 1, 42, 7, 0xe6, 0x9f, 0x01 }, 7, 12, TOKEN_OK },
		{ "non-minimal thread varint",
		  { 0x11, 1, 0xaa, 0x00, 7, 0xe6, 0x9f, 0x01 }, 8, 12,
		  TOKEN_MALFORMED },
		{ "non-minimal expiry varint",
		  { 0x11, 1, 42, 7, 0x80, 0x80, 0x00 }, 7, 12, TOKEN_MALFORMED },
		{ "non-minimal version varint",
		  { 0x11, 0x81, 0x00, 42, 7, 0xe6, 0x9f, 0x01 }, 8, 12,
		  TOKEN_MALFORMED },
		{ "key version 0", { 0x11, 0, 42, 7, 0xe6, 0x9f, 0x01 }, 7, 12,
		  TOKEN_MALFORMED },
		{ "key version 128", { 0x11, 0x80, 0x01, 42, 7, 0xe6, 0x9f,
		  0x01 }, 8, 12, TOKEN_MALFORMED },
		{ "thread 0", { 0x11, 1, 0, 7, 0xe6, 0x9f, 0x01 }, 7, 12,
		  TOKEN_MALFORMED },
		{ "recipient 0", { 0x11, 1, 42, 0, 0xe6, 0x9f, 0x01 }, 7, 12,
		  TOKEN_MALFORMED },
		{ "thread of 10 varint bytes (above INT64_MAX)",
		  { 0x11, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		  0xff, 0x01, 7, 0xe6, 0x9f, 0x01 }, 16, 12, TOKEN_MALFORMED },
		{ "expiry day 2^21 (4 varint bytes)",
		  { 0x11, 1, 42, 7, 0x80, 0x80, 0x80, 0x01 }, 8, 12,
		  TOKEN_MALFORMED },
		{ "unknown format nibble", { 0x21, 1, 42, 7, 0xe6, 0x9f, 0x01 },
		  7, 12, TOKEN_MALFORMED },
		{ "unknown purpose 3", { 0x13, 1, 42, 7, 0xe6, 0x9f, 0x01 }, 7,
		  12, TOKEN_MALFORMED },
		{ "purpose 0", { 0x10, 1, 42, 7, 0xe6, 0x9f, 0x01 }, 7, 12,
		  TOKEN_MALFORMED },
		{ "MAC truncated to 11 bytes",
		  { 0x11, 1, 42, 7, 0xe6, 0x9f, 0x01 }, 7, 11,
		  TOKEN_MALFORMED },
		{ "unterminated varint (MAC eaten)",
		  { 0x11, 1, 42, 7, 0xe6, 0x9f, 0x81 }, 7, 12,
		  TOKEN_MALFORMED },
	};
	struct token_claims	 c;
	unsigned char		 p[64];
	char			 t[128];
	size_t			 i, n;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		forge(kA.key, cases[i].body, cases[i].n, cases[i].maclen, t);
		is_int(check(&kA, 1, TOKEN_REPLY, t, 0, &c), cases[i].want,
		    "valid MAC, %s: %s", cases[i].name,
		    token_strresult(cases[i].want));
	}

	/* A byte after the MAC, the MAC itself valid over the body. */
	forge(kA.key, cases[0].body, cases[0].n, 12, t);
	n = dec32(t, p);
	p[n++] = 0;
	enc32(p, n, t);
	is_int(check(&kA, 1, TOKEN_REPLY, t, 0, &c), TOKEN_MALFORMED,
	    "a byte after the MAC: malformed");
	forge(kA.key, cases[0].body, cases[0].n, 12, t);
	ok(check(&kA, 1, TOKEN_REPLY, t, 0, &c) == TOKEN_OK &&
	    c.expires_at == INT64_C(20454) * 86400,
	    "forged well-formed token decodes day 20454");
}

/* Random strings never verify; nothing crashes. */
static void
test_garbage(void)
{
	struct token_keys	 keys[2];
	struct token_claims	 c;
	char			 t[80];
	const char		*err;
	int			 i, n_ok = 0, n_mac = 0;
	size_t			 len, j;
	enum token_result	 r;

	keys[0] = kA;
	keys[1] = kB;
	for (i = 0; i < 50000; i++) {
		len = (size_t)(rng() % 70);
		for (j = 0; j < len; j++) {
			if (i % 4 == 0)
				t[j] = (char)(rng() & 0xff);
			else
				t[j] = b32[rng() & 31];
		}
		if (i % 3 == 0 && len > 0)	/* a plausible tag */
			t[0] = 'c';
		err = NULL;
		r = token_check(keys, 2, TOKEN_REPLY, t, len, INT64_MIN, &c,
		    &err);
		if (r == TOKEN_OK || r == TOKEN_EXPIRED || err == NULL)
			n_ok++;
		if (r == TOKEN_BAD_MAC || r == TOKEN_UNKNOWN_KEY)
			n_mac++;
	}
	is_int(n_ok, 0, "50000 random strings: none verifies, all have a reason");
	ok(n_mac > 0, "some random strings were well-formed (%d reached "
	    "the key)", n_mac);
}

/* Address helpers. */
static void
test_addresses(void)
{
	struct token_claims	 c;
	char			 tok[TOKEN_BUFSZ], lp[TOKEN_LOCAL_BUFSZ];
	char			 addr[256];
	const char		*tp = NULL, *err;
	size_t			 tl = 0;

	token_make(&kA, TOKEN_REPLY, 42, 7, E2026, tok, sizeof tok);
	is_int(token_local_part(TOKEN_REPLY, tok, lp, sizeof lp), 0,
	    "reply local part");
	ok(strncmp(lp, "reply+", 6) == 0 && strcmp(lp + 6, tok) == 0,
	    "reply local part is reply+<token>");
	is_int(token_local_part(TOKEN_BOUNCE, tok, lp, sizeof lp), 0,
	    "bounce local part");
	ok(strncmp(lp, "bounce+", 7) == 0, "bounce local part is bounce+...");
	is_int(token_local_part(TOKEN_REPLY, tok, lp, 6 + strlen(tok)), -1,
	    "local part: buffer one byte short refused");
	is_int(token_local_part(TOKEN_REPLY, tok, lp, 7 + strlen(tok)), 0,
	    "local part: exact buffer accepted");
	is_int(token_local_part(TOKEN_REPLY, "abc\r\nrcpt", lp, sizeof lp),
	    -1, "local part: CR/LF refused");
	snprintf(addr, sizeof addr, "%s@x", tok);
	is_int(token_local_part(TOKEN_REPLY, addr, lp, sizeof lp), -1,
	    "local part: '@' refused");
	is_int(token_local_part(TOKEN_REPLY, "abc", lp, sizeof lp), -1,
	    "local part: too short a token refused");

	snprintf(addr, sizeof addr, "reply+%s@riverside.example", tok);
	ok(token_from_address(addr, strlen(addr), TOKEN_REPLY, &tp, &tl) == 0 &&
	    tl == strlen(tok) && memcmp(tp, tok, tl) == 0,
	    "token found in reply+<token>@domain");
	ok(token_check(&kA, 1, TOKEN_REPLY, tp, tl, 0, &c, &err) == TOKEN_OK &&
	    c.thread == 42, "and it verifies");
	snprintf(addr, sizeof addr, "REPLY+%s@RIVERSIDE.EXAMPLE", tok);
	is_int(token_from_address(addr, strlen(addr), TOKEN_REPLY, &tp, &tl),
	    0, "upper-case prefix accepted");
	snprintf(addr, sizeof addr, "Reply+%s", tok);
	ok(token_from_address(addr, strlen(addr), TOKEN_REPLY, &tp, &tl) == 0 &&
	    tl == strlen(tok), "bare local part accepted");
	snprintf(addr, sizeof addr, "reply+%s@riverside.example", tok);
	is_int(token_from_address(addr, strlen(addr), TOKEN_BOUNCE, &tp, &tl),
	    -1, "reply address is not a bounce address");
	snprintf(addr, sizeof addr, "bounce+%s@riverside.example", tok);
	is_int(token_from_address(addr, strlen(addr), TOKEN_BOUNCE, &tp, &tl),
	    0, "bounce address");
	is_int(token_from_address("reply@x", 7, TOKEN_REPLY, &tp, &tl), -1,
	    "no plus: not a token address");
	is_int(token_from_address("", 0, TOKEN_REPLY, &tp, &tl), -1,
	    "empty: not a token address");
	is_int(token_from_address("noreply+abc@x", 13, TOKEN_REPLY, &tp, &tl),
	    -1, "noreply+: not a token address");
	is_int(token_from_address("replyx+abc@x", 12, TOKEN_REPLY, &tp, &tl),
	    -1, "replyx+: not a token address");
	snprintf(addr, sizeof addr, "\"reply+%s\"@x", tok);
	is_int(token_from_address(addr, strlen(addr), TOKEN_REPLY, &tp, &tl),
	    -1, "quoted local part: not a token address");
	ok(token_from_address("reply+@x", 8, TOKEN_REPLY, &tp, &tl) == 0 &&
	    tl == 0 && token_check(&kA, 1, TOKEN_REPLY, tp, tl, 0, &c, &err) ==
	    TOKEN_MALFORMED, "reply+@x: empty token, malformed");
	snprintf(addr, sizeof addr, "reply+%s+tag@x", tok);
	ok(token_from_address(addr, strlen(addr), TOKEN_REPLY, &tp, &tl) == 0 &&
	    token_check(&kA, 1, TOKEN_REPLY, tp, tl, 0, &c, &err) ==
	    TOKEN_MALFORMED, "extra +tag after the token: malformed");
	snprintf(addr, sizeof addr, "reply+%s@a@b", tok);
	ok(token_from_address(addr, strlen(addr), TOKEN_REPLY, &tp, &tl) == 0 &&
	    token_check(&kA, 1, TOKEN_REPLY, tp, tl, 0, &c, &err) ==
	    TOKEN_MALFORMED, "the local part ends at the last '@'");
	snprintf(addr, sizeof addr, "reply+%s@riverside.example", tok);
	ok(token_from_address(addr, 6 + strlen(tok), TOKEN_REPLY, &tp, &tl) ==
	    0 && tl == strlen(tok), "length argument bounds the address");
}

/* Arguments token_make refuses; result names. */
static void
test_args(void)
{
	struct token_keys	 k = kA;
	char			 tok[TOKEN_BUFSZ];

	is_int(token_make(&kA, TOKEN_REPLY, 0, 1, E2026, tok, sizeof tok), -1,
	    "thread 0 refused");
	is_int(token_make(&kA, TOKEN_REPLY, -5, 1, E2026, tok, sizeof tok),
	    -1, "negative thread refused");
	is_int(token_make(&kA, TOKEN_REPLY, 1, 0, E2026, tok, sizeof tok), -1,
	    "recipient 0 refused");
	is_int(token_make(&kA, TOKEN_REPLY, 1, INT64_MIN, E2026, tok,
	    sizeof tok), -1, "INT64_MIN recipient refused");
	is_int(token_make(&kA, TOKEN_REPLY, 1, 1, -1, tok, sizeof tok), -1,
	    "negative expiry refused");
	is_int(token_make(&kA, TOKEN_REPLY, 1, 1, TOKEN_EXPIRES_MAX + 1, tok,
	    sizeof tok), -1, "expiry past the last day refused");
	is_int(token_make(&kA, TOKEN_REPLY, 1, 1, E2026, tok, TOKEN_BUFSZ - 1),
	    -1, "short output buffer refused");
	is_int(token_make(&kA, (enum token_purpose)0, 1, 1, E2026, tok,
	    sizeof tok), -1, "purpose 0 refused");
	k.version = 0;
	is_int(token_make(&k, TOKEN_REPLY, 1, 1, E2026, tok, sizeof tok), -1,
	    "key version 0 refused");
	k.version = TOKEN_VERSION_MAX + 1;
	is_int(token_make(&k, TOKEN_REPLY, 1, 1, E2026, tok, sizeof tok), -1,
	    "key version 128 refused");

	is_str(token_strresult(TOKEN_OK), "ok", "strresult ok");
	is_str(token_strresult(TOKEN_MALFORMED), "malformed",
	    "strresult malformed");
	is_str(token_strresult(TOKEN_BAD_MAC), "bad_mac", "strresult bad_mac");
	is_str(token_strresult(TOKEN_EXPIRED), "expired", "strresult expired");
	is_str(token_strresult(TOKEN_UNKNOWN_KEY), "unknown_key",
	    "strresult unknown_key");
	is_str(token_prefix(TOKEN_REPLY), "reply", "prefix reply");
	is_str(token_prefix(TOKEN_BOUNCE), "bounce", "prefix bounce");
}

/* The paper reply code: a known answer (Python hmac), checks, bounds. */
static void
test_short_code(void)
{
	char	 code[TOKEN_CODE_BUFSZ], small[8];

	ok(token_short_code(&kA, 42, 7, code, sizeof(code)) == 0,
	    "short code made");
	is_str(code, "L42-K2T4-CWWD", "short code known answer (Python hmac)");
	ok(token_short_code_check(&kA, 42, 7, "L42-K2T4-CWWD") == 0,
	    "short code checks");
	ok(token_short_code_check(&kA, 42, 7, "l42k2t4cwwd") == 0,
	    "short code: lower case, no dashes");
	ok(token_short_code_check(&kA, 42, 7, "L42-K2T4-CWWE") == -1,
	    "short code: one character changed is refused");
	ok(token_short_code_check(&kA, 42, 8, "L42-K2T4-CWWD") == -1,
	    "short code: bound to the patient");
	ok(token_short_code_check(&kA, 43, 7, "L42-K2T4-CWWD") == -1,
	    "short code: bound to the letter");
	ok(token_short_code_check(&kB, 42, 7, "L42-K2T4-CWWD") == -1,
	    "short code: bound to the key");
	ok(token_short_code_check(&kA, 42, 7, "L42-K2T4-CWWDX") == -1,
	    "short code: trailing junk refused");
	ok(token_short_code(&kA, 0, 7, code, sizeof(code)) == -1 &&
	    token_short_code(&kA, 42, -1, code, sizeof(code)) == -1,
	    "short code: ids must be positive");
	ok(token_short_code(&kA, 42, 7, small, sizeof(small)) == -1,
	    "short code: short buffer refused");
	ok(token_short_code(&kA, INT64_MAX, INT64_MAX, code,
	    sizeof(code)) == 0 && strlen(code) < TOKEN_CODE_BUFSZ,
	    "short code: largest ids fit");
}

int
main(void)
{
	int	 i;

	if (hash_init() != 0) {
		printf("Bail out! sodium_init failed\n");
		return 1;
	}
	kA.version = 1;
	kB.version = 2;
	for (i = 0; i < 32; i++) {
		kA.key[i] = (unsigned char)i;
		kB.key[i] = 0xa5;
	}

	test_known_answers();
	test_derive();
	test_round_trips();
	test_flips();
	test_binding();
	test_expiry();
	test_rotation();
	test_encoding();
	test_structure();
	test_garbage();
	test_addresses();
	test_args();
	test_short_code();
	return tap_done();
}
