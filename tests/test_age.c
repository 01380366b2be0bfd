/*
 * test_age.c - age v1: the C2SP CCTV vectors, round trips, tampering,
 * Bech32 and hostile headers.
 *
 * The vectors live in $SEALPOST_SRCDIR/../shared/corpora/age-vectors/
 * testdata (one TAP line each; the 19 ML-KEM hybrid vectors are skipped
 * because libsodium 1.0.18 has no ML-KEM).  A vector passes when the
 * error class equals its "expect" and, where it names one, the SHA-256 of
 * the plaintext released equals its "payload".  zlib inflates the
 * "compressed: zlib" vectors (only this test links zlib).
 */
#include "build.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zlib.h>

#include "age.h"
#include "hash.h"
#include "util.h"

#include "tap.h"

#define VECTOR_MAX_FILE	(16 * 1024 * 1024)
#define VECTOR_MAX_DATA	(64 * 1024 * 1024)
#define VECTOR_MAX_IDS	16
#define VECTOR_COUNT	143
#define VECTOR_PQ	19

/* The identities named by one vector, in file order. */
struct vector_ids {
	struct age_identity	 id[VECTOR_MAX_IDS];
	unsigned char		 sk[VECTOR_MAX_IDS][AGE_KEY_LEN];
	char			*pass[VECTOR_MAX_IDS];
	size_t			 n;
};

static int	 read_file(const char *, unsigned char **, size_t *);
static int	 inflate_all(const unsigned char *, size_t, unsigned char **,
		    size_t *);
static int	 name_cmp(const void *, const void *);
static void	 run_vector(const char *, const char *, int *, int *, int *);
static void	 test_vectors(void);
static void	 test_bech32(void);
static void	 test_round_trips(void);
static void	 test_tamper(void);
static void	 test_bitflips(void);
static void	 test_scrypt(void);
static void	 test_hostile(void);
static void	 bench_seal(void);

/* Read a whole (bounded) file: 0 or -1. */
static int
read_file(const char *path, unsigned char **out, size_t *outlen)
{
	FILE		*f;
	unsigned char	*buf;
	size_t		 n;

	if ((f = fopen(path, "rb")) == NULL)
		return -1;
	buf = xmalloc(VECTOR_MAX_FILE + 1);
	n = fread(buf, 1, VECTOR_MAX_FILE + 1, f);
	fclose(f);
	if (n > VECTOR_MAX_FILE) {
		free(buf);
		return -1;
	}
	*out = buf;
	*outlen = n;
	return 0;
}

/* Inflate a zlib stream (bounded): 0 or -1. */
static int
inflate_all(const unsigned char *in, size_t inlen, unsigned char **out,
    size_t *outlen)
{
	z_stream	 z;
	unsigned char	*buf = NULL;
	size_t		 cap = 0;
	int		 rc;

	memset(&z, 0, sizeof(z));
	if (inflateInit(&z) != Z_OK)
		return -1;
	z.next_in = (unsigned char *)(uintptr_t)in;
	z.avail_in = (uInt)inlen;
	do {
		if (z.total_out == cap) {
			if (cap >= VECTOR_MAX_DATA) {
				rc = Z_DATA_ERROR;
				break;
			}
			cap = cap == 0 ? 65536 : cap * 2;
			buf = xreallocarray(buf, 1, cap);
		}
		z.next_out = buf + z.total_out;
		z.avail_out = (uInt)(cap - z.total_out);
		rc = inflate(&z, Z_NO_FLUSH);
	} while (rc == Z_OK);
	*outlen = z.total_out;
	inflateEnd(&z);
	if (rc != Z_STREAM_END) {
		free(buf);
		return -1;
	}
	*out = buf;
	return 0;
}

/* qsort comparator for file names. */
static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Run one CCTV vector; counts pass/fail/skip. */
static void
run_vector(const char *dir, const char *name, int *pass, int *fail,
    int *skipped)
{
	struct vector_ids	 ids;
	unsigned char		*file = NULL, *inflated = NULL, *pt = NULL;
	const unsigned char	*data;
	unsigned char		 digest[HASH_SHA256_LEN];
	char			*path, *hdr, *line, *next, *val;
	char			 expect[64] = "", payload[HASH_SHA256_HEX] = "";
	char			 hex[HASH_SHA256_HEX], *why = NULL;
	const char		*reason = NULL, *p;
	size_t			 len, datalen, ptlen = 0, i;
	int			 armored = 0, compressed = 0, pq = 0, good;
	enum age_status		 st;

	memset(&ids, 0, sizeof(ids));
	xasprintf(&path, "%s/%s", dir, name);
	if (read_file(path, &file, &len) != 0) {
		ok(0, "vector %s: cannot read", name);
		(*fail)++;
		free(path);
		return;
	}
	free(path);
	p = memmem(file, len, "\n\n", 2);
	if (p == NULL) {
		ok(0, "vector %s: no header/body separator", name);
		(*fail)++;
		goto out;
	}
	hdr = xstrndup((const char *)file, (size_t)(p - (char *)file));
	data = (const unsigned char *)p + 2;
	datalen = len - (size_t)(data - file);

	for (line = hdr; line != NULL; line = next) {
		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		if ((val = strstr(line, ": ")) == NULL) {
			xasprintf(&why, "malformed header line");
			break;
		}
		*val = '\0';
		val += 2;
		if (strcmp(line, "expect") == 0)
			strlcpy_sp(expect, val, sizeof(expect));
		else if (strcmp(line, "payload") == 0)
			strlcpy_sp(payload, val, sizeof(payload));
		else if (strcmp(line, "armored") == 0)
			armored = strcmp(val, "yes") == 0;
		else if (strcmp(line, "compressed") == 0) {
			if (strcmp(val, "zlib") != 0)
				xasprintf(&why, "unknown compression");
			compressed = 1;
		} else if (strcmp(line, "identity") == 0 ||
		    strcmp(line, "passphrase") == 0) {
			if (ids.n == VECTOR_MAX_IDS) {
				xasprintf(&why, "too many identities");
				break;
			}
			if (line[0] == 'p') {
				ids.pass[ids.n] = xstrdup(val);
				ids.id[ids.n].type = AGE_IDENTITY_SCRYPT;
				ids.id[ids.n].passphrase = ids.pass[ids.n];
				ids.id[ids.n].passlen = strlen(val);
			} else if (strncmp(val, "AGE-SECRET-KEY-PQ-",
			    18) == 0) {
				pq = 1;
				continue;
			} else if (age_identity_parse(val,
			    ids.sk[ids.n]) != 0) {
				xasprintf(&why, "unparsable identity");
				break;
			} else {
				ids.id[ids.n].type = AGE_IDENTITY_X25519;
				ids.id[ids.n].x25519_sk = ids.sk[ids.n];
			}
			ids.n++;
		} else if (strcmp(line, "file key") != 0 &&
		    strcmp(line, "comment") != 0)
			xasprintf(&why, "unknown key \"%s\"", line);
	}
	free(hdr);

	if (pq) {
		skip("vector %s: ML-KEM-768 hybrid identity (not in "
		    "libsodium 1.0.18)", name);
		(*skipped)++;
		goto out;
	}
	if (why != NULL || expect[0] == '\0') {
		ok(0, "vector %s: %s", name, why ? why : "no expect");
		(*fail)++;
		goto out;
	}
	if (compressed) {
		if (inflate_all(data, datalen, &inflated, &datalen) != 0) {
			ok(0, "vector %s: zlib inflate failed", name);
			(*fail)++;
			goto out;
		}
		data = inflated;
	}

	st = age_decrypt(ids.id, ids.n, data, datalen,
	    (armored ? AGE_DECRYPT_ARMORED : AGE_DECRYPT_BINARY) |
	    AGE_DECRYPT_PARTIAL, &pt, &ptlen, &reason);
	good = strcmp(age_status_name(st), expect) == 0;
	hex[0] = '\0';
	if (good && payload[0] != '\0' &&
	    (st == AGE_OK || st == AGE_ERR_PAYLOAD)) {
		hash_sha256(pt != NULL ? pt : (const unsigned char *)"", ptlen,
		    digest);
		hash_hex(digest, sizeof(digest), hex);
		good = strcmp(hex, payload) == 0;
	}
	if (ok(good, "vector %s: %s", name, expect))
		(*pass)++;
	else {
		(*fail)++;
		diag("  got \"%s\" (%s), %zu bytes released %s",
		    age_status_name(st), reason ? reason : "no reason", ptlen,
		    hex);
	}
out:
	age_free_plaintext(&pt, ptlen);
	for (i = 0; i < ids.n; i++)
		free(ids.pass[i]);
	hash_wipe(&ids, sizeof(ids));
	free(why);
	free(inflated);
	free(file);
}

/* Every CCTV vector, one TAP line each. */
static void
test_vectors(void)
{
	const char	*src;
	char		*dir, **names = NULL;
	struct dirent	*de;
	DIR		*d;
	size_t		 n = 0, i;
	int		 pass = 0, fail = 0, skipped = 0;

	if ((src = getenv("SEALPOST_SRCDIR")) == NULL)
		src = ".";
	xasprintf(&dir, "%s/../shared/corpora/age-vectors/testdata", src);
	if ((d = opendir(dir)) == NULL) {
		skip("CCTV age vectors not found at %s (set SEALPOST_SRCDIR)",
		    dir);
		free(dir);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		names = xreallocarray(names, n + 1, sizeof(*names));
		names[n++] = xstrdup(de->d_name);
	}
	closedir(d);
	qsort(names, n, sizeof(*names), name_cmp);
	for (i = 0; i < n; i++) {
		run_vector(dir, names[i], &pass, &fail, &skipped);
		free(names[i]);
	}
	free(names);
	free(dir);
	diag("CCTV age vectors: %d passed, %d failed, %d skipped", pass,
	    fail, skipped);
	ok(n == VECTOR_COUNT && skipped == VECTOR_PQ,
	    "CCTV corpus complete: %zu vectors, %d of them ML-KEM "
	    "(want %d, %d)",
	    n, skipped, VECTOR_COUNT, VECTOR_PQ);
}

/* Bech32 with an arbitrary checksum constant, for crafted strings. */
static void
bech32_craft(const char *hrp, const unsigned char *v, size_t n,
    uint32_t constant, char *out)
{
	static const uint32_t	 gen[5] = {
		0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3
	};
	static const char	 cs[] = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";
	unsigned char		 all[256];
	size_t			 hl = strlen(hrp), m = 0, i;
	uint32_t		 chk = 1, b;
	int			 k;

	for (i = 0; i < hl; i++)
		all[m++] = (unsigned char)(hrp[i] | 0x20) >> 5;
	all[m++] = 0;
	for (i = 0; i < hl; i++)
		all[m++] = (unsigned char)(hrp[i] | 0x20) & 31;
	memcpy(all + m, v, n);
	m += n;
	memset(all + m, 0, 6);
	m += 6;
	for (i = 0; i < m; i++) {
		b = chk >> 25;
		chk = ((chk & 0x1ffffff) << 5) ^ all[i];
		for (k = 0; k < 5; k++)
			if ((b >> k) & 1)
				chk ^= gen[k];
	}
	chk ^= constant;
	strcpy(out, hrp);
	out[hl] = '1';
	for (i = 0; i < n; i++)
		out[hl + 1 + i] = cs[v[i]];
	for (i = 0; i < 6; i++)
		out[hl + 1 + n + i] = cs[(chk >> (5 * (5 - i))) & 31];
	out[hl + 1 + n + 6] = '\0';
}

/* 32 bytes as 52 five-bit values (4 zero padding bits). */
static void
to5(const unsigned char *in, unsigned char v[52])
{
	uint32_t	 acc = 0;
	int		 bits = 0;
	size_t		 i, n = 0;

	for (i = 0; i < 32; i++) {
		acc = (acc << 8) | in[i];
		bits += 8;
		while (bits >= 5) {
			bits -= 5;
			v[n++] = (acc >> bits) & 31;
		}
	}
	v[n++] = (acc << (5 - bits)) & 31;
}

/* Bech32 key strings: spec examples, round trips, rejections. */
static void
test_bech32(void)
{
	const char	*spec_id = "AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZ"
			    "GFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX";
	const char	*spec_rcpt = "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82"
			    "hzrye869xeexvn73equnujwj";
	const char	*cctv_id = "AGE-SECRET-KEY-1EGTZVFFV20835NWYV6270LXY"
			    "VK2VKNX2MMDKWYKLMGR48UAWX40Q2P2LM0";
	unsigned char	 sk[32], pk[32], pk2[32], want[32], v[60];
	char		 s[AGE_IDENTITY_STRLEN], r[AGE_RECIPIENT_STRLEN];
	char		 bad[128];
	int		 i, good = 1;

	memset(want, 0x42, sizeof(want));
	ok(age_identity_parse(spec_id, sk) == 0 &&
	    memcmp(sk, want, 32) == 0, "bech32: spec identity is 32 x 0x42");
	ok(age_identity_format(sk, s, sizeof(s)) == 0 &&
	    strcmp(s, spec_id) == 0, "bech32: spec identity formats back");
	ok(age_public_key(want, pk) == 0 &&
	    age_recipient_format(pk, r, sizeof(r)) == 0 &&
	    strcmp(r, spec_rcpt) == 0,
	    "x25519: spec identity's recipient is the spec recipient");
	ok(age_recipient_parse(spec_rcpt, pk) == 0 &&
	    age_recipient_format(pk, r, sizeof(r)) == 0 &&
	    strcmp(r, spec_rcpt) == 0, "bech32: spec recipient round trip");
	ok(age_identity_parse(cctv_id, sk) == 0 &&
	    age_identity_format(sk, s, sizeof(s)) == 0 &&
	    strcmp(s, cctv_id) == 0, "bech32: CCTV identity round trip");

	for (i = 0; i < 200 && good; i++) {
		age_keygen(pk, sk);
		good = age_recipient_format(pk, r, sizeof(r)) == 0 &&
		    strlen(r) == 62 && strncmp(r, "age1", 4) == 0 &&
		    age_recipient_parse(r, pk2) == 0 &&
		    memcmp(pk, pk2, 32) == 0 &&
		    age_identity_format(sk, s, sizeof(s)) == 0 &&
		    strlen(s) == 74 &&
		    strncmp(s, "AGE-SECRET-KEY-1", 16) == 0 &&
		    age_identity_parse(s, pk2) == 0 &&
		    memcmp(sk, pk2, 32) == 0;
	}
	ok(good, "bech32: 200 random key pairs round trip");
	ok(age_recipient_format(pk, r, 62) == -1,
	    "bech32: format refuses a short buffer");

	/* Rejections, starting from the valid strings r and s. */
	/* Upper-case one letter of the data part (random keys may have
	 * digits at any fixed position). */
	strlcpy_sp(bad, r, sizeof(bad));
	for (i = 5; bad[i] != '\0'; i++) {
		if (bad[i] >= 'a' && bad[i] <= 'z') {
			bad[i] = (char)(bad[i] - 32);
			break;
		}
	}
	ok(age_recipient_parse(bad, pk2) == -1, "bech32: mixed case rejected");
	strlcpy_sp(bad, r, sizeof(bad));
	bad[61] = bad[61] == 'q' ? 'p' : 'q';
	ok(age_recipient_parse(bad, pk2) == -1,
	    "bech32: bad checksum rejected");
	strlcpy_sp(bad, r, sizeof(bad));
	bad[30] = bad[30] == 'q' ? 'p' : 'q';
	ok(age_recipient_parse(bad, pk2) == -1,
	    "bech32: altered data rejected");
	strlcpy_sp(bad, r, sizeof(bad));
	for (i = 0; bad[i] != '\0'; i++)
		if (bad[i] >= 'a' && bad[i] <= 'z')
			bad[i] -= 32;
	ok(age_recipient_parse(bad, pk2) == -1,
	    "bech32: upper-case recipient rejected (HRP is \"age\")");
	strlcpy_sp(bad, s, sizeof(bad));
	for (i = 0; bad[i] != '\0'; i++)
		if (bad[i] >= 'A' && bad[i] <= 'Z')
			bad[i] += 32;
	ok(age_identity_parse(bad, pk2) == -1,
	    "bech32: lower-case identity rejected");
	ok(age_recipient_parse(s, pk2) == -1 &&
	    age_identity_parse(r, pk2) == -1,
	    "bech32: identity and recipient types not interchangeable");
	strlcpy_sp(bad, r, sizeof(bad));
	bad[50] = '\0';
	ok(age_recipient_parse(bad, pk2) == -1 &&
	    age_recipient_parse("", pk2) == -1 &&
	    age_recipient_parse("age1", pk2) == -1,
	    "bech32: truncated strings rejected");
	strlcpy_sp(bad, r, sizeof(bad));
	bad[4] = 'b';		/* not in the Bech32 charset */
	ok(age_recipient_parse(bad, pk2) == -1,
	    "bech32: character outside the charset rejected");

	/* Crafted: non-zero padding bits, Bech32m, wrong length. */
	to5(pk, v);
	bech32_craft("age", v, 52, 1, bad);
	ok(age_recipient_parse(bad, pk2) == 0 && memcmp(pk, pk2, 32) == 0,
	    "bech32: crafted encoder agrees");
	v[51] |= 1;
	bech32_craft("age", v, 52, 1, bad);
	ok(age_recipient_parse(bad, pk2) == -1,
	    "bech32: non-zero padding bits rejected");
	v[51] &= ~1;
	bech32_craft("age", v, 52, 0x2bc830a3, bad);
	ok(age_recipient_parse(bad, pk2) == -1, "bech32: Bech32m rejected");
	v[52] = 0;
	bech32_craft("age", v, 53, 1, bad);
	ok(age_recipient_parse(bad, pk2) == -1,
	    "bech32: 5 or more padding bits rejected");
	bech32_craft("age", v, 51, 1, bad);
	ok(age_recipient_parse(bad, pk2) == -1,
	    "bech32: short key rejected");
	hash_wipe(sk, sizeof(sk));
	hash_wipe(s, sizeof(s));
}

/* Encrypt and decrypt at the STREAM edges, 1 and 3 recipients. */
static void
test_round_trips(void)
{
	static const size_t sizes[] = {
		0, 1, 65535, 65536, 65537, 1024 * 1024
	};
	unsigned char	 pk[3][32], sk[4][32], *pt, *ct, *out;
	unsigned char	(*many)[32];
	struct age_identity id;
	const char	*err;
	size_t		 si, ctlen, outlen, nch, want;
	int		 nrec, armor, k, good;
	enum age_status	 st;

	for (k = 0; k < 4; k++)
		age_keygen(k < 3 ? pk[k] : pk[0], sk[k]);
	age_public_key(sk[0], pk[0]);
	pt = xmalloc(1024 * 1024);
	hash_random(pt, 1024 * 1024);
	memset(&id, 0, sizeof(id));
	id.type = AGE_IDENTITY_X25519;

	for (si = 0; si < nitems(sizes); si++)
	for (nrec = 1; nrec <= 3; nrec += 2)
	for (armor = 0; armor <= 1; armor++) {
		err = NULL;
		good = age_encrypt(pk, (size_t)nrec, pt, sizes[si], armor,
		    &ct, &ctlen, &err) == 0;
		if (good && !armor) {
			/* header + nonce + plaintext + one tag per chunk */
			nch = sizes[si] == 0 ? 1 : (sizes[si] + 65535) / 65536;
			want = 22 + (size_t)nrec * 98 + 48 + 16 + sizes[si] +
			    16 * nch;
			good = ctlen == want;
		}
		if (good && armor)
			good = ctlen > 35 && memcmp(ct,
			    "-----BEGIN AGE ENCRYPTED FILE-----\n", 35) == 0;
		for (k = 0; good && k < nrec; k++) {
			id.x25519_sk = sk[k];
			st = age_decrypt(&id, 1, ct, ctlen, 0, &out, &outlen,
			    &err);
			good = st == AGE_OK && outlen == sizes[si] &&
			    (outlen == 0 || memcmp(out, pt, outlen) == 0);
			age_free_plaintext(&out, outlen);
		}
		if (good) {		/* a stranger's key */
			id.x25519_sk = sk[3];
			st = age_decrypt(&id, 1, ct, ctlen, 0, &out, &outlen,
			    &err);
			good = st == AGE_ERR_NO_MATCH && out == NULL;
		}
		ok(good, "round trip: %zu bytes, %d recipient%s, %s",
		    sizes[si], nrec, nrec > 1 ? "s" : "",
		    armor ? "armored" : "binary");
		if (!good)
			diag("  %s", err ? err : "wrong size or content");
		free(ct);
	}

	/* Armor flags are honoured. */
	id.x25519_sk = sk[0];
	age_encrypt(pk, 1, pt, 100, 1, &ct, &ctlen, &err);
	st = age_decrypt(&id, 1, ct, ctlen, AGE_DECRYPT_BINARY, &out,
	    &outlen, &err);
	is_int(st, AGE_ERR_HEADER, "armored input read as binary: header");
	free(ct);
	age_encrypt(pk, 1, pt, 100, 0, &ct, &ctlen, &err);
	st = age_decrypt(&id, 1, ct, ctlen, AGE_DECRYPT_ARMORED, &out,
	    &outlen, &err);
	is_int(st, AGE_ERR_ARMOR, "binary input read as armored: armor");
	st = age_decrypt(&id, 0, ct, ctlen, 0, &out, &outlen, &err);
	is_int(st, AGE_ERR_NO_MATCH, "no identities: no match");
	free(ct);

	/* The most recipients fit the decoder's header limit. */
	many = xcalloc(AGE_MAX_RECIPIENTS + 1, 32);
	for (k = 0; k <= AGE_MAX_RECIPIENTS; k++)
		age_keygen(many[k], sk[3]);
	id.x25519_sk = sk[3];		/* the last one's */
	good = age_encrypt(many + 1, AGE_MAX_RECIPIENTS, pt, 10, 0, &ct,
	    &ctlen, &err) == 0;
	st = age_decrypt(&id, 1, ct, ctlen, 0, &out, &outlen, &err);
	ok(good && st == AGE_OK && outlen == 10,
	    "encrypt: %d recipients, the last one decrypts",
	    AGE_MAX_RECIPIENTS);
	age_free_plaintext(&out, outlen);
	free(ct);
	ok(age_encrypt(many, AGE_MAX_RECIPIENTS + 1, pt, 10, 0, &ct, &ctlen,
	    &err) == -1, "encrypt: %d recipients refused",
	    AGE_MAX_RECIPIENTS + 1);
	free(many);

	/* Encryption refuses no recipient and a low-order recipient. */
	memset(pk[1], 0, 32);
	ok(age_encrypt(pk, 0, pt, 1, 0, &ct, &ctlen, &err) == -1 &&
	    ct == NULL, "encrypt: no recipient refused");
	err = NULL;
	good = age_encrypt(pk, 2, pt, 1, 0, &ct, &ctlen, &err) == -1 &&
	    ct == NULL;
	ok(good, "encrypt: low-order recipient refused (%s)",
	    err ? err : "");
	hash_wipe(sk, sizeof(sk));
	free(pt);
}

/* Replace the first character of the base64 run at off with another. */
static void
b64_poke(unsigned char *p, size_t off)
{
	p[off] = p[off] == 'A' ? 'B' : 'A';
}

/* One tampered copy: the class and the plaintext handed out. */
static void
tamper_case(const char *what, const unsigned char *ct, size_t ctlen,
    size_t off, int how, size_t newlen, const unsigned char *sk,
    enum age_status want, size_t want_partial)
{
	struct age_identity	 id;
	unsigned char		*c, *out;
	const char		*err = NULL;
	size_t			 outlen, plen;
	enum age_status		 st, st2;

	memset(&id, 0, sizeof(id));
	id.type = AGE_IDENTITY_X25519;
	id.x25519_sk = sk;
	c = xmalloc(ctlen + 1);
	memcpy(c, ct, ctlen);
	c[ctlen] = 0x00;
	if (how == 'b')
		b64_poke(c, off);
	else if (how == 'x')
		c[off] ^= 0x01;
	else if (how == 'h')
		c[off] = '/' | 0x80;	/* libsodium 1.0.18 reads it as '/' */
	st = age_decrypt(&id, 1, c, newlen, AGE_DECRYPT_PARTIAL, &out,
	    &plen, &err);
	age_free_plaintext(&out, plen);
	st2 = age_decrypt(&id, 1, c, newlen, 0, &out, &outlen, NULL);
	ok(st == want && st2 == want && plen == want_partial && out == NULL,
	    "tamper %s: %s, %zu bytes released only on request", what,
	    age_status_name(want), want_partial);
	if (st != want || plen != want_partial)
		diag("  got %s (%s), %zu bytes", age_status_name(st),
		    err ? err : "", plen);
	free(c);
}

/* A one-byte change in each region is rejected with the right class. */
static void
test_tamper(void)
{
	unsigned char	 pk[32], sk[32], *pt, *ct;
	const char	*err;
	const unsigned char *mac;
	size_t		 ctlen, hlen, ptlen = 65537;
	const size_t	 stanza = 22, body = 22 + 54;

	age_keygen(pk, sk);
	pt = xmalloc(ptlen);
	hash_random(pt, ptlen);
	if (age_encrypt(&pk, 1, pt, ptlen, 0, &ct, &ctlen, &err) != 0) {
		ok(0, "tamper: encrypt failed");
		free(pt);
		return;
	}
	mac = memmem(ct, ctlen, "\n--- ", 5);
	hlen = (size_t)(mac - ct) + 5 + 43 + 1;

	tamper_case("version line", ct, ctlen, 3, 'x', ctlen, sk,
	    AGE_ERR_HEADER, 0);
	tamper_case("stanza type", ct, ctlen, stanza + 3, 'x', ctlen, sk,
	    AGE_ERR_NO_MATCH, 0);
	tamper_case("stanza share", ct, ctlen, stanza + 10, 'b', ctlen, sk,
	    AGE_ERR_NO_MATCH, 0);
	tamper_case("stanza share (non-canonical)", ct, ctlen, stanza + 52,
	    'x', ctlen, sk, AGE_ERR_HEADER, 0);
	tamper_case("stanza body", ct, ctlen, body, 'b', ctlen, sk,
	    AGE_ERR_NO_MATCH, 0);
	tamper_case("MAC", ct, ctlen, (size_t)(mac - ct) + 5, 'b', ctlen, sk,
	    AGE_ERR_HMAC, 0);
	tamper_case("MAC with a high-bit byte", ct, ctlen,
	    (size_t)(mac - ct) + 5, 'h', ctlen, sk, AGE_ERR_HEADER, 0);
	tamper_case("stanza body with a high-bit byte", ct, ctlen, body, 'h',
	    ctlen, sk, AGE_ERR_HEADER, 0);
	tamper_case("nonce", ct, ctlen, hlen + 5, 'x', ctlen, sk,
	    AGE_ERR_PAYLOAD, 0);
	tamper_case("first chunk", ct, ctlen, hlen + 16 + 1000, 'x', ctlen,
	    sk, AGE_ERR_PAYLOAD, 0);
	tamper_case("first chunk tag", ct, ctlen, hlen + 16 + 65536 + 3, 'x',
	    ctlen, sk, AGE_ERR_PAYLOAD, 0);
	tamper_case("last chunk", ct, ctlen, ctlen - 17, 'x', ctlen, sk,
	    AGE_ERR_PAYLOAD, 65536);
	tamper_case("last chunk tag", ct, ctlen, ctlen - 1, 'x', ctlen, sk,
	    AGE_ERR_PAYLOAD, 65536);
	tamper_case("truncated at the chunk boundary", ct, ctlen, 0, 0,
	    hlen + 16 + 65552, sk, AGE_ERR_PAYLOAD, 65536);
	tamper_case("truncated last chunk", ct, ctlen, 0, 0, ctlen - 1, sk,
	    AGE_ERR_PAYLOAD, 65536);
	tamper_case("truncated in the nonce", ct, ctlen, 0, 0, hlen + 7, sk,
	    AGE_ERR_HEADER, 0);
	tamper_case("truncated after the header", ct, ctlen, 0, 0, hlen, sk,
	    AGE_ERR_HEADER, 0);
	tamper_case("truncated in the header", ct, ctlen, 0, 0, hlen - 2, sk,
	    AGE_ERR_HEADER, 0);
	tamper_case("one trailing byte", ct, ctlen, 0, 0, ctlen + 1, sk,
	    AGE_ERR_PAYLOAD, 65536);
	free(ct);
	free(pt);
	hash_wipe(sk, sizeof(sk));
}

/* Every single-bit flip of a small file (binary and armored) fails. */
static void
test_bitflips(void)
{
	struct age_identity	 id;
	unsigned char		 pk[32], sk[32], *ct, *out;
	const char		*err;
	size_t			 ctlen, outlen, i, bad;
	int			 b, armor;
	enum age_status		 st;

	age_keygen(pk, sk);
	memset(&id, 0, sizeof(id));
	id.type = AGE_IDENTITY_X25519;
	id.x25519_sk = sk;
	for (armor = 0; armor <= 1; armor++) {
		age_encrypt(&pk, 1, "x", 1, armor, &ct, &ctlen, &err);
		bad = 0;
		for (i = 0; i < ctlen; i++) {
			for (b = 0; b < 8; b++) {
				ct[i] ^= (unsigned char)(1 << b);
				st = age_decrypt(&id, 1, ct, ctlen, 0, &out,
				    &outlen, &err);
				/* Armor tolerates whitespace changes only
				   around the block: CR before LF, or a
				   trailing LF turned into other space. */
				if (st == AGE_OK && !(armor &&
				    (i == ctlen - 1 || ct[i] == '\r' ||
				    ct[i] == '\n'))) {
					bad++;
					diag("  accepted: byte %zu bit %d", i,
					    b);
				}
				age_free_plaintext(&out, outlen);
				ct[i] ^= (unsigned char)(1 << b);
			}
		}
		ok(bad == 0, "bit flips: all %zu single-bit changes of a %s "
		    "file rejected (%zu accepted)", ctlen * 8,
		    armor ? "armored" : "binary", bad);
		free(ct);
	}
	hash_wipe(sk, sizeof(sk));
}

/* Passphrase files: round trip, wrong passphrase, work-factor cap. */
static void
test_scrypt(void)
{
	struct age_identity	 id;
	unsigned char		*ct, *out;
	const char		*err;
	size_t			 ctlen, outlen;
	enum age_status		 st;

	memset(&id, 0, sizeof(id));
	id.type = AGE_IDENTITY_SCRYPT;
	id.passphrase = "correct horse";
	id.passlen = 13;
	ok(age_encrypt_passphrase("correct horse", 13, 10, "letter", 6, 1,
	    &ct, &ctlen, &err) == 0, "scrypt: encrypt (work factor 10)");
	st = age_decrypt(&id, 1, ct, ctlen, 0, &out, &outlen, &err);
	ok(st == AGE_OK && outlen == 6 && memcmp(out, "letter", 6) == 0,
	    "scrypt: round trip");
	age_free_plaintext(&out, outlen);
	id.passphrase = "wrong horse";
	st = age_decrypt(&id, 1, ct, ctlen, 0, &out, &outlen, &err);
	is_int(st, AGE_ERR_NO_MATCH, "scrypt: wrong passphrase is no match");
	id.passphrase = "correct horse";
	id.max_work_factor = 9;
	st = age_decrypt(&id, 1, ct, ctlen, 0, &out, &outlen, &err);
	is_int(st, AGE_ERR_HEADER, "scrypt: work factor above the caller's "
	    "cap refused");
	free(ct);
	ok(age_encrypt_passphrase("pw", 2, 23, "x", 1, 0, &ct, &ctlen,
	    &err) == -1, "scrypt: work factor 23 refused for encryption");
}

/* Oversized headers, too many stanzas, long lines: header failures. */
static void
test_hostile(void)
{
	struct age_identity	 id;
	unsigned char		 pk[32], sk[32], *out;
	char			*buf;
	const char		*err;
	size_t			 len, outlen, i;
	enum age_status		 st;

	age_keygen(pk, sk);
	memset(&id, 0, sizeof(id));
	id.type = AGE_IDENTITY_X25519;
	id.x25519_sk = sk;
	buf = xmalloc(1024 * 1024);

	/* A 1 MiB header of grease stanzas, never closed. */
	len = (size_t)sprintf(buf, "age-encryption.org/v1\n");
	while (len < 1024 * 1024 - 7000) {
		len += (size_t)sprintf(buf + len, "-> grease\n");
		for (i = 0; i < 100; i++)
			len += (size_t)sprintf(buf + len, "%064d\n", 0);
		len += (size_t)sprintf(buf + len, "\n");
	}
	st = age_decrypt(&id, 1, buf, len, 0, &out, &outlen, &err);
	ok(st == AGE_ERR_HEADER && err != NULL &&
	    strstr(err, "oversized") != NULL, "hostile: oversized header (%s)",
	    err ? err : "");

	/* More stanzas than AGE_MAX_STANZAS, within the size limit. */
	len = (size_t)sprintf(buf, "age-encryption.org/v1\n");
	for (i = 0; i <= AGE_MAX_STANZAS; i++)
		len += (size_t)sprintf(buf + len, "-> g\n\n");
	len += (size_t)sprintf(buf + len, "--- %043d\n", 0);
	st = age_decrypt(&id, 1, buf, len, 0, &out, &outlen, &err);
	ok(st == AGE_ERR_HEADER && err != NULL &&
	    strstr(err, "too many") != NULL, "hostile: %d stanzas (%s)",
	    AGE_MAX_STANZAS + 1, err ? err : "");

	/* One argument line over AGE_MAX_ARG_LINE. */
	len = (size_t)sprintf(buf, "age-encryption.org/v1\n-> ");
	memset(buf + len, 'a', AGE_MAX_ARG_LINE);
	len += AGE_MAX_ARG_LINE;
	len += (size_t)sprintf(buf + len, "\n\n--- %043d\n", 0);
	st = age_decrypt(&id, 1, buf, len, 0, &out, &outlen, &err);
	ok(st == AGE_ERR_HEADER && err != NULL &&
	    strstr(err, "too long") != NULL, "hostile: long stanza line (%s)",
	    err ? err : "");

	/* A stanza body over AGE_MAX_BODY (full lines only). */
	len = (size_t)sprintf(buf, "age-encryption.org/v1\n-> big\n");
	for (i = 0; i < AGE_MAX_BODY / 48 + 2; i++)
		len += (size_t)sprintf(buf + len, "%064d\n", 0);
	len += (size_t)sprintf(buf + len, "\n--- %043d\n", 0);
	st = age_decrypt(&id, 1, buf, len, 0, &out, &outlen, &err);
	ok(st == AGE_ERR_HEADER && err != NULL &&
	    strstr(err, "too large") != NULL, "hostile: huge stanza body (%s)",
	    err ? err : "");

	/* Armor: leading whitespace over 1 KiB, a 65-column line. */
	memset(buf, ' ', 1100);
	buf[1100] = '\n';
	len = 1101 + (size_t)sprintf(buf + 1101,
	    "-----BEGIN AGE ENCRYPTED FILE-----\nYWdl\n"
	    "-----END AGE ENCRYPTED FILE-----\n");
	st = age_decrypt(&id, 1, buf, len, 0, &out, &outlen, &err);
	is_int(st, AGE_ERR_ARMOR, "hostile: 1 KiB of leading whitespace");
	len = (size_t)sprintf(buf, "-----BEGIN AGE ENCRYPTED FILE-----\n"
	    "%064dAA==\n-----END AGE ENCRYPTED FILE-----\n", 0);
	st = age_decrypt(&id, 1, buf, len, 0, &out, &outlen, &err);
	is_int(st, AGE_ERR_ARMOR, "hostile: armor line over 64 columns");
	free(buf);
	hash_wipe(sk, sizeof(sk));
}

/* qsort comparator for doubles. */
static int
dbl_cmp(const void *a, const void *b)
{
	double	 x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Median time to seal a 4 KiB letter for 3 recipients. */
static void
bench_seal(void)
{
	enum { RUNS = 2001 };
	unsigned char	 pk[3][32], sk[32], letter[4096], *ct;
	double		*t;
	struct timespec	 a, b;
	const char	*err;
	size_t		 ctlen;
	int		 i;

	for (i = 0; i < 3; i++)
		age_keygen(pk[i], sk);
	hash_random(letter, sizeof(letter));
	t = xcalloc(RUNS, sizeof(*t));
	for (i = 0; i < RUNS; i++) {
		clock_gettime(CLOCK_MONOTONIC, &a);
		age_encrypt(pk, 3, letter, sizeof(letter), 0, &ct, &ctlen,
		    &err);
		clock_gettime(CLOCK_MONOTONIC, &b);
		free(ct);
		t[i] = (double)(b.tv_sec - a.tv_sec) * 1e6 +
		    (double)(b.tv_nsec - a.tv_nsec) / 1e3;
	}
	qsort(t, RUNS, sizeof(*t), dbl_cmp);
	diag("bench: seal 4 KiB for 3 recipients: median %.1f us, "
	    "p90 %.1f us (%d runs)", t[RUNS / 2], t[RUNS * 9 / 10], RUNS);
	free(t);
	hash_wipe(sk, sizeof(sk));
}

int
main(void)
{
	if (hash_init() != 0) {
		printf("Bail out! libsodium init failed\n");
		return 1;
	}
	test_vectors();
	test_bech32();
	test_round_trips();
	test_tamper();
	test_bitflips();
	test_scrypt();
	test_hostile();
	bench_seal();
	return tap_done();
}
