/*
 * token.h - reply and bounce tokens: keyed-MAC capabilities carried in the
 * local part of a Reply-To (reply+<token>@<reply domain>) or of a VERP
 * envelope sender (bounce+<token>@<reply domain>).
 *
 * A token authorises exactly one thing:
 *   TOKEN_REPLY   "append a reply to thread T as recipient R";
 *   TOKEN_BOUNCE  "this bounce concerns delivery D" (of thread T).
 * It binds purpose, key version, thread, recipient (or delivery) and expiry
 * under HMAC-SHA-256 truncated to 96 bits.  Nothing is stored: any holder
 * of a valid key can check a token offline.  Revocation is by expiry, by
 * the caller's own state (a closed thread refuses replies) and by retiring
 * a key version.
 *
 * Payload (bytes, before base32):
 *
 *   tag      1 byte   0x11 reply, 0x12 bounce (high nibble: format 1)
 *   version  varint   key version, 1..127 (always 1 byte)
 *   thread   varint   thread id, 1..INT64_MAX (1-9 bytes)
 *   rcpt     varint   recipient id (bounce: delivery id), 1..INT64_MAX
 *   day      varint   expiry day, days since 1970-01-01 UTC, 0..2^21-1
 *                     (1-3 bytes; 2^21-1 is in the year 7711)
 *   mac      12 bytes HMAC-SHA-256(K_v, "sealpost-token-v1" || 0x00 ||
 *                     tag || version .. day)[0..11]
 *
 * varint: unsigned LEB128 (7 bits a byte, least significant group first,
 * 0x80 = more follows), minimal: a last byte of 0 is refused unless it is
 * the only byte.  K_v = keyring_subkey(master, v, "sp-token"), see
 * token_key_derive().  Because the tag is inside the MAC input, a reply
 * token never verifies as a bounce token and vice versa; the checker is
 * also told which purpose it expects and refuses the other tag.
 *
 * Text: RFC 4648 base32, lower-case alphabet a-z 2-7, no padding, the
 * unused bits of the last character zero.  token_check() accepts either
 * case and nothing else: no padding, no separators, no white space.
 *
 * Lengths: a payload is 17..35 bytes, a token 28..56 characters.  Typical
 * (ids below 2^21, an expiry in this century): 23 bytes, 37 characters,
 * so "reply+" + token is 43 octets.  Maximum (both ids INT64_MAX, the last
 * expiry day): 56 characters, "bounce+" + token = 63 octets, within the
 * 64-octet local part of RFC 5321 section 4.5.3.1.1.
 *
 * Expiry has day granularity: token_make() rounds expires_at UP to the next
 * UTC midnight (a token is never shorter-lived than asked, and at most one
 * day longer); token_check() reports that midnight as claims.expires_at and
 * says TOKEN_EXPIRED when now >= it.
 *
 * Error policy: token_make, token_local_part, token_from_address and
 * token_key_derive return 0 or -1 (bad arguments, short buffer, not an
 * address of that form).  token_check returns an enum token_result and a
 * static reason in *error_r (never token or key bytes).  No heap use; all
 * functions are thread-safe.  hash_init() must have run (sodium_init).
 *
 * Keys: struct token_keys holds raw key bytes; the caller keeps the array
 * in sodium_malloc memory (or wipes it) like any other secret.  The array
 * given to token_check lists the current version first, then the older
 * versions still accepted during a rotation; token_make signs with the
 * first entry.
 */
#ifndef SEALPOST_TOKEN_H
#define SEALPOST_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#define TOKEN_KEY_LEN		32
#define TOKEN_MAC_LEN		12	/* 96 bits */
#define TOKEN_VERSION_MAX	127
#define TOKEN_DAY_MAX		((1 << 21) - 1)
#define TOKEN_EXPIRES_MAX	((int64_t)TOKEN_DAY_MAX * 86400)
#define TOKEN_MIN_LEN		28	/* characters */
#define TOKEN_MAX_LEN		56	/* characters */
#define TOKEN_BUFSZ		(TOKEN_MAX_LEN + 1)
#define TOKEN_LOCAL_MAX		64	/* RFC 5321 local-part limit */
#define TOKEN_LOCAL_BUFSZ	(TOKEN_LOCAL_MAX + 1)

struct keyring;

enum token_purpose {
	TOKEN_REPLY = 1,	/* local part "reply+<token>" */
	TOKEN_BOUNCE = 2	/* local part "bounce+<token>" */
};

enum token_result {
	TOKEN_OK = 0,
	TOKEN_MALFORMED,	/* not a token of this purpose and format */
	TOKEN_BAD_MAC,		/* well-formed, known key, wrong MAC */
	TOKEN_EXPIRED,		/* MAC valid, past expiry: claims filled */
	TOKEN_UNKNOWN_KEY	/* well-formed, key version not in the array */
};

struct token_keys {
	unsigned	 version;		/* 1..TOKEN_VERSION_MAX */
	unsigned char	 key[TOKEN_KEY_LEN];	/* K_v */
};

struct token_claims {
	enum token_purpose purpose;
	unsigned	 key_version;
	int64_t		 thread;
	int64_t		 recipient;	/* bounce: the delivery id */
	int64_t		 expires_at;	/* unix seconds, a UTC midnight */
};

/* K_v for version v from the master key; 0 or -1. */
int	 token_key_derive(struct keyring *, unsigned version,
	    struct token_keys *);

/*
 * A token (NUL-terminated, lower-case) under keys[0] in out, which holds
 * at least TOKEN_BUFSZ bytes.  Ids must be >= 1 and expires_at in
 * [0, TOKEN_EXPIRES_MAX]; 0, or -1 for anything out of range.
 */
int	 token_make(const struct token_keys *, enum token_purpose,
	    int64_t thread, int64_t recipient, int64_t expires_at,
	    char *out, size_t outsz);

/*
 * Check token[0..len) for purpose against the keys.  On TOKEN_OK and
 * TOKEN_EXPIRED *out holds the claims; otherwise it is zeroed.  The MAC is
 * compared in constant time.
 */
enum token_result token_check(const struct token_keys *keys, size_t nkeys,
	    enum token_purpose, const char *token, size_t len, int64_t now,
	    struct token_claims *out, const char **error_r);

/* "ok", "malformed", "bad_mac", "expired", "unknown_key" (for logs). */
const char *token_strresult(enum token_result);

/* "reply" or "bounce". */
const char *token_prefix(enum token_purpose);

/*
 * The local part "<prefix>+<token>" in out (TOKEN_LOCAL_BUFSZ bytes
 * suffice); 0, or -1 when token is not plain base32 or out is too short.
 */
int	 token_local_part(enum token_purpose, const char *token,
	    char *out, size_t outsz);

/*
 * Find the token in an address addr[0..len): either a bare local part or
 * "local@domain" (the local part ends at the last '@'; the domain is the
 * caller's to check).  The local part must be exactly "<prefix>+<rest>",
 * the prefix in any case; *token_r and *toklen_r then span <rest>, which
 * is not yet checked (empty, an extra "+tag" or any other junk makes
 * token_check() say TOKEN_MALFORMED).  A quoted local part or any other
 * prefix gives -1: not a token address of this purpose.
 */
int	 token_from_address(const char *addr, size_t len, enum token_purpose,
	    const char **token_r, size_t *toklen_r);

/*
 * The short reply code printed on a paper letter, for a patient who must
 * type it: "L<letter>-XXXX-XXXX", where the eight characters are the
 * first 40 bits of HMAC-SHA-256(K_v, "sealpost-paper-v1" || 0x00 ||
 * be64(letter) || be64(patient)) in base32 upper case.  Not a capability
 * on its own (40 bits, typed by hand): a reply quoting it is matched with
 * lower trust, like a References-only match.  0, or -1 (bad ids, short
 * buffer); TOKEN_CODE_BUFSZ bytes always suffice.
 */
#define TOKEN_CODE_BUFSZ	40
int	 token_short_code(const struct token_keys *, int64_t letter,
	    int64_t patient, char *out, size_t outsz);
/* Check a typed code (either case, dashes optional) in constant time. */
int	 token_short_code_check(const struct token_keys *, int64_t letter,
	    int64_t patient, const char *code);

#endif
