/*
 * token.c - reply and bounce tokens (format and rules in token.h).
 *
 * Public: token_key_derive, token_make, token_check, token_strresult,
 * token_prefix, token_local_part, token_from_address.
 *
 * A crypto module: it includes <sodium.h> for HMAC-SHA-256 and the
 * constant-time compare.  Parsing is strict and bounded: the text is at
 * most TOKEN_MAX_LEN characters, the payload at most TOKEN_PAYLOAD_MAX
 * bytes, every varint minimal and within its field's range, and nothing
 * may follow the MAC.  No heap allocation; key material and MACs on the
 * stack are wiped before return.
 *
 * Error policy: see token.h (0/-1, or an enum token_result with a static
 * reason).
 */
#include "build.h"

#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "keyring.h"
#include "token.h"

#define TOKEN_FORMAT		0x10	/* high nibble of the tag */
#define TOKEN_LABEL		"sealpost-token-v1"
#define TOKEN_KDF_CTX		"sp-token"
#define TOKEN_BODY_MAX		(1 + 1 + 9 + 9 + 3)
#define TOKEN_PAYLOAD_MIN	(1 + 1 + 1 + 1 + 1 + TOKEN_MAC_LEN)
#define TOKEN_PAYLOAD_MAX	(TOKEN_BODY_MAX + TOKEN_MAC_LEN)

static size_t	 token_varint_put(unsigned char *, uint64_t);
static int	 token_varint_get(const unsigned char *, size_t, size_t *,
		    size_t, uint64_t, uint64_t *);
static void	 token_mac(const unsigned char key[TOKEN_KEY_LEN],
		    const unsigned char *, size_t,
		    unsigned char out[TOKEN_MAC_LEN]);
static size_t	 token_b32_encode(const unsigned char *, size_t, char *);
static int	 token_b32_value(int);
static int	 token_b32_decode(const char *, size_t, unsigned char *,
		    size_t *);

static const char token_b32_alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";

_Static_assert(sizeof(TOKEN_KDF_CTX) - 1 == 8, "kdf context is 8 bytes");
_Static_assert((TOKEN_PAYLOAD_MAX * 8 + 4) / 5 == TOKEN_MAX_LEN,
    "TOKEN_MAX_LEN matches the largest payload");
_Static_assert((TOKEN_PAYLOAD_MIN * 8 + 4) / 5 == TOKEN_MIN_LEN,
    "TOKEN_MIN_LEN matches the smallest payload");
_Static_assert(sizeof("bounce+") - 1 + TOKEN_MAX_LEN <= TOKEN_LOCAL_MAX,
    "the longest local part fits RFC 5321");
_Static_assert(TOKEN_KEY_LEN == KEYRING_KEY_LEN, "subkey length");
_Static_assert(TOKEN_MAC_LEN <= crypto_auth_hmacsha256_BYTES, "mac length");

/* K_v = keyring_subkey(master, v, "sp-token"). */
int
token_key_derive(struct keyring *kr, unsigned version, struct token_keys *tk)
{
	if (version < 1 || version > TOKEN_VERSION_MAX)
		return -1;
	tk->version = version;
	if (keyring_subkey(kr, version, TOKEN_KDF_CTX, tk->key) != 0) {
		sodium_memzero(tk->key, sizeof tk->key);
		return -1;
	}
	return 0;
}

/* Append v as a minimal unsigned LEB128; returns the bytes written. */
static size_t
token_varint_put(unsigned char *p, uint64_t v)
{
	size_t	 n = 0;

	while (v >= 0x80) {
		p[n++] = (unsigned char)(v & 0x7f) | 0x80;
		v >>= 7;
	}
	p[n++] = (unsigned char)v;
	return n;
}

/*
 * Read a minimal LEB128 of at most maxbytes from p[*off..len) into *v,
 * refusing values above max; 0 or -1.
 */
static int
token_varint_get(const unsigned char *p, size_t len, size_t *off,
    size_t maxbytes, uint64_t max, uint64_t *v)
{
	uint64_t	 x = 0;
	size_t		 i;
	unsigned char	 c;

	for (i = 0; i < maxbytes; i++) {
		if (*off >= len)
			return -1;
		c = p[(*off)++];
		x |= (uint64_t)(c & 0x7f) << (7 * i);
		if ((c & 0x80) == 0) {
			/* Minimal: no final zero group after the first. */
			if (c == 0 && i > 0)
				return -1;
			if (x > max)
				return -1;
			*v = x;
			return 0;
		}
	}
	return -1;
}

/* The truncated HMAC of label || 0 || body under key. */
static void
token_mac(const unsigned char key[TOKEN_KEY_LEN], const unsigned char *body,
    size_t bodylen, unsigned char out[TOKEN_MAC_LEN])
{
	crypto_auth_hmacsha256_state	 st;
	unsigned char			 full[crypto_auth_hmacsha256_BYTES];

	crypto_auth_hmacsha256_init(&st, key, TOKEN_KEY_LEN);
	/* The label with its NUL: a fixed, unambiguous prefix. */
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)TOKEN_LABEL,
	    sizeof TOKEN_LABEL);
	crypto_auth_hmacsha256_update(&st, body, bodylen);
	crypto_auth_hmacsha256_final(&st, full);
	memcpy(out, full, TOKEN_MAC_LEN);
	sodium_memzero(full, sizeof full);
	sodium_memzero(&st, sizeof st);
}

/* RFC 4648 base32, lower case, unpadded; out holds ceil(8n/5)+1 bytes. */
static size_t
token_b32_encode(const unsigned char *p, size_t n, char *out)
{
	uint32_t	 acc = 0;
	unsigned	 bits = 0;
	size_t		 i, o = 0;

	for (i = 0; i < n; i++) {
		acc = (acc << 8) | p[i];
		bits += 8;
		while (bits >= 5) {
			bits -= 5;
			out[o++] = token_b32_alphabet[(acc >> bits) & 0x1f];
		}
	}
	if (bits > 0)
		out[o++] = token_b32_alphabet[(acc << (5 - bits)) & 0x1f];
	out[o] = '\0';
	return o;
}

/* The 5-bit value of a base32 character in either case, or -1. */
static int
token_b32_value(int c)
{
	if (c >= 'a' && c <= 'z')
		return c - 'a';
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= '2' && c <= '7')
		return c - '2' + 26;
	return -1;
}

/*
 * Decode s[0..len) (already bounded by the caller) into out; -1 on a
 * character outside the alphabet, an impossible length (5*len mod 8 >= 5)
 * or non-zero unused bits in the last character (a non-canonical text).
 */
static int
token_b32_decode(const char *s, size_t len, unsigned char *out,
    size_t *outlen)
{
	uint32_t	 acc = 0;
	unsigned	 bits = 0;
	size_t		 i, o = 0;
	int		 v;

	if ((len * 5) % 8 >= 5)
		return -1;
	for (i = 0; i < len; i++) {
		if ((v = token_b32_value((unsigned char)s[i])) == -1)
			return -1;
		acc = (acc << 5) | (uint32_t)v;
		bits += 5;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (unsigned char)(acc >> bits);
		}
	}
	if ((acc & ((1u << bits) - 1)) != 0)
		return -1;
	*outlen = o;
	return 0;
}

/* Make a token under keys[0]. */
int
token_make(const struct token_keys *keys, enum token_purpose purpose,
    int64_t thread, int64_t recipient, int64_t expires_at, char *out,
    size_t outsz)
{
	unsigned char	 p[TOKEN_PAYLOAD_MAX];
	size_t		 n = 0;
	int64_t		 day;

	if (purpose != TOKEN_REPLY && purpose != TOKEN_BOUNCE)
		return -1;
	if (keys->version < 1 || keys->version > TOKEN_VERSION_MAX)
		return -1;
	if (thread < 1 || recipient < 1)
		return -1;
	if (expires_at < 0 || expires_at > TOKEN_EXPIRES_MAX)
		return -1;
	if (outsz < TOKEN_BUFSZ)
		return -1;

	/* Round up: never shorter-lived than asked. */
	day = expires_at / 86400 + (expires_at % 86400 != 0);

	p[n++] = TOKEN_FORMAT | (unsigned char)purpose;
	n += token_varint_put(p + n, keys->version);
	n += token_varint_put(p + n, (uint64_t)thread);
	n += token_varint_put(p + n, (uint64_t)recipient);
	n += token_varint_put(p + n, (uint64_t)day);
	token_mac(keys->key, p, n, p + n);
	n += TOKEN_MAC_LEN;
	token_b32_encode(p, n, out);
	sodium_memzero(p, sizeof p);
	return 0;
}

/* Check a token of the expected purpose; see token.h. */
enum token_result
token_check(const struct token_keys *keys, size_t nkeys,
    enum token_purpose purpose, const char *token, size_t len, int64_t now,
    struct token_claims *out, const char **error_r)
{
	unsigned char		 p[TOKEN_PAYLOAD_MAX];
	unsigned char		 mac[TOKEN_MAC_LEN];
	const struct token_keys	*k = NULL;
	uint64_t		 version, thread, rcpt, day;
	size_t			 n, off, body, i;
	enum token_result	 rc;

	memset(out, 0, sizeof *out);
	if (purpose != TOKEN_REPLY && purpose != TOKEN_BOUNCE) {
		*error_r = "no such token purpose";
		return TOKEN_MALFORMED;
	}
	if (len < TOKEN_MIN_LEN || len > TOKEN_MAX_LEN) {
		*error_r = "token length out of range";
		return TOKEN_MALFORMED;
	}
	if (token_b32_decode(token, len, p, &n) != 0) {
		*error_r = "token is not canonical base32";
		return TOKEN_MALFORMED;
	}
	if (n < TOKEN_PAYLOAD_MIN) {
		*error_r = "token too short";
		return TOKEN_MALFORMED;
	}

	if ((p[0] & 0xf0) != TOKEN_FORMAT ||
	    ((p[0] & 0x0f) != TOKEN_REPLY && (p[0] & 0x0f) != TOKEN_BOUNCE)) {
		*error_r = "unknown token format";
		return TOKEN_MALFORMED;
	}
	if ((p[0] & 0x0f) != (unsigned)purpose) {
		*error_r = "token is for another purpose";
		return TOKEN_MALFORMED;
	}
	off = 1;
	if (token_varint_get(p, n, &off, 1, TOKEN_VERSION_MAX, &version) != 0 ||
	    version < 1) {
		*error_r = "bad key version field";
		return TOKEN_MALFORMED;
	}
	if (token_varint_get(p, n, &off, 9, INT64_MAX, &thread) != 0 ||
	    thread < 1) {
		*error_r = "bad thread field";
		return TOKEN_MALFORMED;
	}
	if (token_varint_get(p, n, &off, 9, INT64_MAX, &rcpt) != 0 ||
	    rcpt < 1) {
		*error_r = "bad recipient field";
		return TOKEN_MALFORMED;
	}
	if (token_varint_get(p, n, &off, 3, TOKEN_DAY_MAX, &day) != 0) {
		*error_r = "bad expiry field";
		return TOKEN_MALFORMED;
	}
	body = off;
	if (n - body != TOKEN_MAC_LEN) {
		*error_r = n - body < TOKEN_MAC_LEN ? "token MAC truncated" :
		    "trailing bytes after the token MAC";
		return TOKEN_MALFORMED;
	}

	for (i = 0; i < nkeys; i++) {
		if (keys[i].version == version) {
			k = &keys[i];
			break;
		}
	}
	if (k == NULL) {
		*error_r = "token key version not accepted";
		return TOKEN_UNKNOWN_KEY;
	}

	token_mac(k->key, p, body, mac);
	if (sodium_memcmp(mac, p + body, TOKEN_MAC_LEN) != 0) {
		*error_r = "token MAC does not verify";
		rc = TOKEN_BAD_MAC;
		goto out;
	}

	out->purpose = purpose;
	out->key_version = (unsigned)version;
	out->thread = (int64_t)thread;
	out->recipient = (int64_t)rcpt;
	out->expires_at = (int64_t)day * 86400;
	if (now >= out->expires_at) {
		*error_r = "token expired";
		rc = TOKEN_EXPIRED;
	} else {
		*error_r = NULL;
		rc = TOKEN_OK;
	}
out:
	sodium_memzero(mac, sizeof mac);
	sodium_memzero(p, sizeof p);
	return rc;
}

/* A short name for a result, for log fields and quarantine reasons. */
const char *
token_strresult(enum token_result r)
{
	switch (r) {
	case TOKEN_OK:
		return "ok";
	case TOKEN_MALFORMED:
		return "malformed";
	case TOKEN_BAD_MAC:
		return "bad_mac";
	case TOKEN_EXPIRED:
		return "expired";
	case TOKEN_UNKNOWN_KEY:
		return "unknown_key";
	}
	return "unknown";
}

/* The local-part prefix of a purpose. */
const char *
token_prefix(enum token_purpose purpose)
{
	return purpose == TOKEN_BOUNCE ? "bounce" : "reply";
}

/* "<prefix>+<token>" into out. */
int
token_local_part(enum token_purpose purpose, const char *token, char *out,
    size_t outsz)
{
	const char	*prefix;
	size_t		 plen, tlen, i;

	if (purpose != TOKEN_REPLY && purpose != TOKEN_BOUNCE)
		return -1;
	prefix = token_prefix(purpose);
	plen = strlen(prefix);
	tlen = strnlen(token, TOKEN_MAX_LEN + 1);
	if (tlen < TOKEN_MIN_LEN || tlen > TOKEN_MAX_LEN)
		return -1;
	/* Only the alphabet reaches an address (no injection). */
	for (i = 0; i < tlen; i++)
		if (strchr(token_b32_alphabet, token[i]) == NULL)
			return -1;
	if (plen + 1 + tlen + 1 > outsz)
		return -1;
	memcpy(out, prefix, plen);
	out[plen] = '+';
	memcpy(out + plen + 1, token, tlen);
	out[plen + 1 + tlen] = '\0';
	return 0;
}

/* Span the token in "<prefix>+<token>[@domain]". */
int
token_from_address(const char *addr, size_t len, enum token_purpose purpose,
    const char **token_r, size_t *toklen_r)
{
	const char	*prefix;
	size_t		 local, plen, i;

	if (purpose != TOKEN_REPLY && purpose != TOKEN_BOUNCE)
		return -1;
	/* The local part ends at the last '@' (a quoted one may hold '@'). */
	for (local = len; local > 0 && addr[local - 1] != '@'; local--)
		;
	local = local == 0 ? len : local - 1;
	prefix = token_prefix(purpose);
	plen = strlen(prefix);
	if (local < plen + 1 || addr[plen] != '+')
		return -1;
	for (i = 0; i < plen; i++) {
		unsigned char	 c = (unsigned char)addr[i];

		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c - 'A' + 'a');
		if (c != (unsigned char)prefix[i])
			return -1;
	}
	*token_r = addr + plen + 1;
	*toklen_r = local - plen - 1;
	return 0;
}

/* The eight code characters for (letter, patient) under key. */
static void
token_code_chars(const unsigned char key[TOKEN_KEY_LEN], int64_t letter,
    int64_t patient, char out[9])
{
	static const char		 label[] = "sealpost-paper-v1";
	crypto_auth_hmacsha256_state	 st;
	unsigned char			 full[crypto_auth_hmacsha256_BYTES];
	unsigned char			 be[16];
	char				 b32[16];
	int				 i;

	for (i = 0; i < 8; i++) {
		be[i] = (unsigned char)((uint64_t)letter >> (56 - 8 * i));
		be[8 + i] = (unsigned char)((uint64_t)patient >> (56 - 8 * i));
	}
	crypto_auth_hmacsha256_init(&st, key, TOKEN_KEY_LEN);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)label,
	    sizeof label);
	crypto_auth_hmacsha256_update(&st, be, sizeof be);
	crypto_auth_hmacsha256_final(&st, full);
	token_b32_encode(full, 5, b32);		/* 40 bits: 8 characters */
	for (i = 0; i < 8; i++)
		out[i] = (char)(b32[i] >= 'a' && b32[i] <= 'z' ?
		    b32[i] - 'a' + 'A' : b32[i]);
	out[8] = '\0';
	sodium_memzero(full, sizeof full);
	sodium_memzero(&st, sizeof st);
}

int
token_short_code(const struct token_keys *keys, int64_t letter,
    int64_t patient, char *out, size_t outsz)
{
	char	 c[9];
	int	 n;

	if (keys == NULL || letter < 1 || patient < 1 || out == NULL)
		return -1;
	token_code_chars(keys[0].key, letter, patient, c);
	n = snprintf(out, outsz, "L%lld-%.4s-%.4s", (long long)letter, c,
	    c + 4);
	return n < 0 || (size_t)n >= outsz ? -1 : 0;
}

int
token_short_code_check(const struct token_keys *keys, int64_t letter,
    int64_t patient, const char *code)
{
	char		 want[TOKEN_CODE_BUFSZ], got[TOKEN_CODE_BUFSZ];
	size_t		 i, n = 0;

	if (token_short_code(keys, letter, patient, want, sizeof(want)) != 0 ||
	    code == NULL)
		return -1;
	for (i = 0; code[i] != '\0' && n < sizeof(got) - 1; i++) {
		if (code[i] == '-')
			continue;
		got[n++] = (char)(code[i] >= 'a' && code[i] <= 'z' ?
		    code[i] - 'a' + 'A' : code[i] == 'l' ? 'L' : code[i]);
	}
	got[n] = '\0';
	for (i = 0, n = 0; want[i] != '\0'; i++)
		if (want[i] != '-')
			want[n++] = want[i];
	want[n] = '\0';
	if (strlen(got) != n)
		return -1;
	return sodium_memcmp(got, want, n) == 0 ? 0 : -1;
}

