/*
 * age.c - age v1 files (C2SP age) on libsodium 1.0.18.
 *
 * Owns the age header grammar, the X25519 and scrypt stanzas, the header
 * MAC, the 64 KiB ChaCha20-Poly1305 STREAM payload, PEM armor and the
 * Bech32 key strings ("age1...", "AGE-SECRET-KEY-1...").
 *
 * Public: age_keygen, age_public_key, age_recipient_parse,
 * age_recipient_format, age_identity_parse, age_identity_format,
 * age_encrypt, age_encrypt_passphrase, age_decrypt, age_status_name,
 * age_free_plaintext.
 *
 * Error policy: see age.h.  Reasons are static strings that never quote
 * the input.  Secrets (file keys, X25519 shared secrets, wrap keys, payload
 * keys, scrypt output, decoded identities) are stack buffers wiped with
 * sodium_memzero on every path; plaintext that is not handed out is wiped
 * before it is freed.
 *
 * Decryption keeps the order of the reference implementation so that each
 * failure lands in the class the C2SP CCTV vectors expect:
 *
 *   armor -> header grammar -> stanzas (identity by identity, stanza by
 *   stanza; a malformed known stanza is fatal, a wrong key is "not mine")
 *   -> header MAC -> payload nonce -> STREAM chunks
 *
 * Everything happens in memory and no plaintext leaves age_decrypt() until
 * the final chunk has authenticated (checklist item 11 of the reference).
 */
#include "build.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "age.h"
#include "log.h"
#include "util.h"

#define VERSION_LINE	"age-encryption.org/v1\n"
#define X25519_LABEL	"age-encryption.org/v1/X25519"
#define SCRYPT_LABEL	"age-encryption.org/v1/scrypt"
#define ARMOR_BEGIN	"-----BEGIN AGE ENCRYPTED FILE-----"
#define ARMOR_END	"-----END AGE ENCRYPTED FILE-----"
#define ARMOR_MAX_WS	1024	/* whitespace tolerated around the armor */
#define B64_COLS	64	/* base64 characters per line */
#define B64_LINE_BYTES	48	/* bytes per full base64 line */
#define TAG_LEN		crypto_aead_chacha20poly1305_ietf_ABYTES
#define WRAPPED_LEN	(AGE_FILE_KEY_LEN + TAG_LEN)
#define NONCE_LEN	16	/* payload nonce, the HKDF salt */
#define CHUNK_NONCE_LEN	crypto_aead_chacha20poly1305_ietf_NPUBBYTES
#define MAC_LEN		crypto_auth_hmacsha256_BYTES
#define STANZA_MAX_ARGS	8	/* kept; more are counted, never needed */
#define SCRYPT_LABEL_LEN (sizeof(SCRYPT_LABEL) - 1)
#define SCRYPT_SALT_LEN	16
#define BECH32_MAX	256	/* no 90-character limit, but a bound */

/* One parsed stanza; arguments point into the input. */
struct stanza {
	const char	*arg[STANZA_MAX_ARGS];
	size_t		 arglen[STANZA_MAX_ARGS];
	size_t		 nargs;		/* all of them, the type included */
	size_t		 body;		/* offset into header.bodies */
	size_t		 bodylen;
};

/* A parsed header. */
struct header {
	struct stanza	*st;
	size_t		 nst;
	unsigned char	*bodies;	/* decoded stanza bodies */
	size_t		 bodieslen;
	size_t		 maclen;	/* bytes under the MAC, up to "---" */
	unsigned char	 mac[MAC_LEN];
	size_t		 len;		/* the payload starts here */
};

/* A growing output buffer. */
struct wbuf {
	unsigned char	*p;
	size_t		 len;
	size_t		 cap;
};

static void	 age_sodium(void);
static void	 wbuf_add(struct wbuf *, const void *, size_t);
static void	 wbuf_str(struct wbuf *, const char *);
static void	 b64_encode(struct wbuf *, const unsigned char *, size_t);
static int	 b64_ascii(const char *, size_t);
static int	 b64_decode_exact(const char *, size_t, unsigned char *,
		    size_t);
static void	 hkdf_sha256(unsigned char[32], const unsigned char *, size_t,
		    const unsigned char *, size_t, const char *);
static void	 header_mac(const unsigned char[AGE_FILE_KEY_LEN],
		    const unsigned char *, size_t, unsigned char[MAC_LEN]);
static void	 stanza_write(struct wbuf *, const char *,
		    const unsigned char *, size_t);
static int	 x25519_wrap(const unsigned char[AGE_FILE_KEY_LEN],
		    const unsigned char[AGE_KEY_LEN],
		    unsigned char[AGE_KEY_LEN], unsigned char[WRAPPED_LEN]);
static int	 seal(const unsigned char[AGE_FILE_KEY_LEN], struct wbuf *,
		    const void *, size_t, int, unsigned char **, size_t *,
		    const char **);
static void	 armor_encode(const unsigned char *, size_t, unsigned char **,
		    size_t *);
static int	 next_line(const unsigned char *, size_t, size_t, size_t *);
static int	 stanza_args(const char *, size_t, struct stanza *);
static int	 stanza_body(const unsigned char *, size_t, size_t *,
		    struct header *, struct stanza *, const char **);
static int	 header_parse(const unsigned char *, size_t, struct header *,
		    const char **);
static void	 header_clear(struct header *);
static int	 arg_is(const struct stanza *, size_t, const char *);
static int	 x25519_unwrap(const struct stanza *, const unsigned char *,
		    const unsigned char[AGE_KEY_LEN],
		    const unsigned char[AGE_KEY_LEN],
		    unsigned char[AGE_FILE_KEY_LEN], const char **);
static int	 work_factor_parse(const char *, size_t, int, int *,
		    const char **);
static int	 scrypt_unwrap(const struct stanza *, const unsigned char *,
		    const struct age_identity *,
		    unsigned char[AGE_FILE_KEY_LEN], const char **);
static enum age_status unwrap_file_key(const struct age_identity *, size_t,
		    const struct header *, unsigned char[AGE_FILE_KEY_LEN],
		    const char **);
static int	 stream_open(const unsigned char[32], const unsigned char *,
		    size_t, unsigned char *, size_t *, const char **);
static int	 nonce_increment(unsigned char[12]);
static int	 is_blank(const char *, size_t);
static int	 looks_armored(const unsigned char *, size_t);
static int	 armor_line(const unsigned char *, size_t, size_t *,
		    const char **, size_t *);
static int	 armor_decode(const unsigned char *, size_t, unsigned char **,
		    size_t *, const char **);
static uint32_t	 bech32_step(uint32_t, unsigned char);
static uint32_t	 bech32_polymod(const char *, size_t, const unsigned char *,
		    size_t);
static unsigned char bech32_lower(char);
static int	 bech32_encode(const char *, const unsigned char *, size_t,
		    int, char *, size_t);
static int	 bech32_decode(const char *, const char *, unsigned char *,
		    size_t);

static const unsigned char zero_nonce[CHUNK_NONCE_LEN];

/* Make sure libsodium picked its implementations; failure is fatal. */
static void
age_sodium(void)
{
	if (sodium_init() < 0)
		log_fatalx("age: sodium_init failed");
}

/* Append bytes to a buffer. */
static void
wbuf_add(struct wbuf *b, const void *p, size_t n)
{
	if (n > SIZE_MAX - b->len)
		log_fatalx("age: buffer overflow");
	if (b->len + n > b->cap) {
		b->cap = b->len + n < 256 ? 256 : (b->len + n) * 2;
		b->p = xreallocarray(b->p, 1, b->cap);
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

/* Append a string. */
static void
wbuf_str(struct wbuf *b, const char *s)
{
	wbuf_add(b, s, strlen(s));
}

/* Append canonical unpadded base64 (one line, no LF). */
static void
b64_encode(struct wbuf *b, const unsigned char *p, size_t n)
{
	char	 tmp[sodium_base64_ENCODED_LEN(B64_LINE_BYTES,
		    sodium_base64_VARIANT_ORIGINAL_NO_PADDING)];

	if (n > B64_LINE_BYTES)
		log_panic("age: b64_encode of %zu bytes", n);
	sodium_bin2base64(tmp, sizeof(tmp), p, n,
	    sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
	wbuf_str(b, tmp);
}

/*
 * Is the text plain ASCII?  libsodium 1.0.18's decoder maps every byte
 * 0x80-0xff to '/' (value 63), so without this check a flipped high bit
 * would decode to the same bytes: base64 in age must be canonical.
 */
static int
b64_ascii(const char *s, size_t len)
{
	size_t	 i;

	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] >= 0x80)
			return 0;
	return 1;
}

/*
 * Decode canonical unpadded base64 of exactly `want' bytes: 0 or -1.
 * With ignore and b64_end both NULL, libsodium 1.0.18 rejects '=', CR, LF,
 * spaces and non-zero trailing bits: age's canonical rule.
 */
static int
b64_decode_exact(const char *s, size_t len, unsigned char *out, size_t want)
{
	size_t	 n;

	if (len != (want * 4 + 2) / 3 || !b64_ascii(s, len))
		return -1;
	if (sodium_base642bin(out, want, s, len, NULL, &n, NULL,
	    sodium_base64_VARIANT_ORIGINAL_NO_PADDING) != 0 || n != want)
		return -1;
	return 0;
}

/*
 * HKDF-SHA-256 (RFC 5869) with a 32-byte output (libsodium 1.0.18 has no
 * HKDF).  An empty salt is HashLen zero bytes, which HMAC's zero padding
 * makes identical to a zero-length key.
 */
static void
hkdf_sha256(unsigned char out[32], const unsigned char *salt, size_t saltlen,
    const unsigned char *ikm, size_t ikmlen, const char *info)
{
	crypto_auth_hmacsha256_state	 st;
	unsigned char			 prk[crypto_auth_hmacsha256_BYTES];
	static const unsigned char	 one = 0x01, none = 0x00;

	/* Extract: PRK = HMAC(salt, IKM). */
	crypto_auth_hmacsha256_init(&st, saltlen != 0 ? salt : &none,
	    saltlen);
	crypto_auth_hmacsha256_update(&st, ikm, ikmlen);
	crypto_auth_hmacsha256_final(&st, prk);
	/* Expand: T(1) = HMAC(PRK, info || 0x01) is all 32 bytes we need. */
	crypto_auth_hmacsha256_init(&st, prk, sizeof(prk));
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)info,
	    strlen(info));
	crypto_auth_hmacsha256_update(&st, &one, 1);
	crypto_auth_hmacsha256_final(&st, out);
	sodium_memzero(prk, sizeof(prk));
	sodium_memzero(&st, sizeof(st));
}

/* mac = HMAC-SHA-256(HKDF(file key, "", "header"), header up to "---"). */
static void
header_mac(const unsigned char fk[AGE_FILE_KEY_LEN], const unsigned char *hdr,
    size_t len, unsigned char mac[MAC_LEN])
{
	unsigned char	 key[crypto_auth_hmacsha256_KEYBYTES];

	hkdf_sha256(key, NULL, 0, fk, AGE_FILE_KEY_LEN, "header");
	crypto_auth_hmacsha256(mac, hdr, len, key);
	sodium_memzero(key, sizeof(key));
}

/* Write "-> args" and the body, wrapped at 64 columns, ending short. */
static void
stanza_write(struct wbuf *b, const char *args, const unsigned char *body,
    size_t len)
{
	size_t	 n;

	wbuf_str(b, "-> ");
	wbuf_str(b, args);
	wbuf_str(b, "\n");
	for (;;) {
		n = len < B64_LINE_BYTES ? len : B64_LINE_BYTES;
		b64_encode(b, body, n);
		wbuf_str(b, "\n");
		body += n;
		len -= n;
		if (n < B64_LINE_BYTES)
			break;
	}
}

/*
 * Wrap the file key for one X25519 recipient:
 *   share = X25519(eph, G); secret = X25519(eph, pk)
 *   key = HKDF(secret, share || pk, "age-encryption.org/v1/X25519")
 *   body = ChaCha20-Poly1305(key, 0^12, file key)
 */
static int
x25519_wrap(const unsigned char fk[AGE_FILE_KEY_LEN],
    const unsigned char pk[AGE_KEY_LEN], unsigned char share[AGE_KEY_LEN],
    unsigned char body[WRAPPED_LEN])
{
	unsigned char	 eph[AGE_KEY_LEN], ss[AGE_KEY_LEN];
	unsigned char	 salt[2 * AGE_KEY_LEN], key[32];
	int		 rc = -1;

	randombytes_buf(eph, sizeof(eph));
	if (crypto_scalarmult_curve25519_base(share, eph) != 0)
		goto out;
	/* -1 for a low-order recipient: the shared secret would be zero. */
	if (crypto_scalarmult_curve25519(ss, eph, pk) != 0)
		goto out;
	memcpy(salt, share, AGE_KEY_LEN);
	memcpy(salt + AGE_KEY_LEN, pk, AGE_KEY_LEN);
	hkdf_sha256(key, salt, sizeof(salt), ss, sizeof(ss), X25519_LABEL);
	crypto_aead_chacha20poly1305_ietf_encrypt(body, NULL, fk,
	    AGE_FILE_KEY_LEN, NULL, 0, NULL, zero_nonce, key);
	rc = 0;
out:
	sodium_memzero(eph, sizeof(eph));
	sodium_memzero(ss, sizeof(ss));
	sodium_memzero(key, sizeof(key));
	return rc;
}

/*
 * Finish a file whose header (version line and stanzas) is in hdr: MAC
 * line, nonce, STREAM chunks, optional armor.  Frees hdr.
 */
static int
seal(const unsigned char fk[AGE_FILE_KEY_LEN], struct wbuf *hdr,
    const void *ptv, size_t ptlen, int armor, unsigned char **out,
    size_t *outlen, const char **error_r)
{
	const unsigned char	*pt = ptv;
	unsigned char		 mac[MAC_LEN], key[32];
	unsigned char		 nonce[CHUNK_NONCE_LEN];
	unsigned char		*bin, *p;
	size_t			 nchunks, total, i, n;

	wbuf_str(hdr, "---");
	header_mac(fk, hdr->p, hdr->len, mac);
	wbuf_str(hdr, " ");
	b64_encode(hdr, mac, sizeof(mac));
	wbuf_str(hdr, "\n");

	/* At least one chunk; a multiple of 64 KiB ends on a full chunk. */
	nchunks = ptlen == 0 ? 1 : (ptlen - 1) / AGE_CHUNK_SIZE + 1;
	if (ptlen > SIZE_MAX / 2 - hdr->len - NONCE_LEN - nchunks * TAG_LEN) {
		free(hdr->p);
		*error_r = "plaintext too large";
		return -1;
	}
	total = hdr->len + NONCE_LEN + ptlen + nchunks * TAG_LEN;
	bin = xmalloc(total);
	memcpy(bin, hdr->p, hdr->len);
	p = bin + hdr->len;
	free(hdr->p);
	hdr->p = NULL;

	randombytes_buf(p, NONCE_LEN);
	hkdf_sha256(key, p, NONCE_LEN, fk, AGE_FILE_KEY_LEN, "payload");
	p += NONCE_LEN;

	/* chunk nonce = 11-byte big-endian counter || last-chunk flag */
	memset(nonce, 0, sizeof(nonce));
	for (i = 0; i < nchunks; i++) {
		n = ptlen - i * AGE_CHUNK_SIZE;
		if (n > AGE_CHUNK_SIZE)
			n = AGE_CHUNK_SIZE;
		nonce[11] = i == nchunks - 1 ? 0x01 : 0x00;
		crypto_aead_chacha20poly1305_ietf_encrypt(p, NULL,
		    pt + i * AGE_CHUNK_SIZE, n, NULL, 0, NULL, nonce, key);
		p += n + TAG_LEN;
		if (nonce_increment(nonce) != 0)
			log_panic("age: STREAM counter overflow");
	}
	sodium_memzero(key, sizeof(key));

	if (armor) {
		armor_encode(bin, total, out, outlen);
		free(bin);
	} else {
		*out = bin;
		*outlen = total;
	}
	return 0;
}

/* Strict PEM: BEGIN line, 64-column padded base64, END line, no blanks. */
static void
armor_encode(const unsigned char *in, size_t len, unsigned char **out,
    size_t *outlen)
{
	char		 tmp[sodium_base64_ENCODED_LEN(B64_LINE_BYTES,
			    sodium_base64_VARIANT_ORIGINAL)];
	unsigned char	*o, *p;
	size_t		 nlines, n, l;

	nlines = len / B64_LINE_BYTES + (len % B64_LINE_BYTES != 0);
	if (nlines > (SIZE_MAX - 128) / (B64_COLS + 1))
		log_fatalx("age: armor overflow");
	o = p = xmalloc(sizeof(ARMOR_BEGIN) + nlines * (B64_COLS + 1) +
	    sizeof(ARMOR_END));
	memcpy(p, ARMOR_BEGIN "\n", sizeof(ARMOR_BEGIN));
	p += sizeof(ARMOR_BEGIN);
	while (len > 0) {
		n = len < B64_LINE_BYTES ? len : B64_LINE_BYTES;
		sodium_bin2base64(tmp, sizeof(tmp), in, n,
		    sodium_base64_VARIANT_ORIGINAL);
		l = strlen(tmp);
		memcpy(p, tmp, l);
		p[l] = '\n';
		p += l + 1;
		in += n;
		len -= n;
	}
	memcpy(p, ARMOR_END "\n", sizeof(ARMOR_END));
	p += sizeof(ARMOR_END);
	*out = o;
	*outlen = (size_t)(p - o);
}

/* The length of the LF-terminated line at pos, within lim: 0 or -1. */
static int
next_line(const unsigned char *in, size_t lim, size_t pos, size_t *lenp)
{
	const unsigned char	*nl;

	if (pos >= lim || (nl = memchr(in + pos, '\n', lim - pos)) == NULL)
		return -1;
	*lenp = (size_t)(nl - (in + pos));
	return 0;
}

/*
 * arg-line = "-> " argument *(SP argument) LF
 * argument = 1*VCHAR
 */
static int
stanza_args(const char *line, size_t len, struct stanza *s)
{
	size_t	 i, start;

	if (len < 3 || memcmp(line, "-> ", 3) != 0)
		return -1;
	start = 3;
	for (i = 3; i <= len; i++) {
		if (i < len && line[i] != ' ') {
			if ((unsigned char)line[i] < 0x21 ||
			    (unsigned char)line[i] > 0x7e)
				return -1;
			continue;
		}
		if (i == start)
			return -1;		/* empty argument or none */
		if (s->nargs < STANZA_MAX_ARGS) {
			s->arg[s->nargs] = line + start;
			s->arglen[s->nargs] = i - start;
		}
		s->nargs++;
		start = i + 1;
	}
	return 0;
}

/*
 * full-line  = 64base64char LF	; 48 bytes, the body goes on
 * final-line = *63base64char LF	; fewer bytes, MAY be empty, ends it
 */
static int
stanza_body(const unsigned char *in, size_t lim, size_t *posp,
    struct header *h, struct stanza *s, const char **error_r)
{
	size_t	 len, n;

	s->body = h->bodieslen;
	for (;;) {
		if (next_line(in, lim, *posp, &len) != 0) {
			*error_r = "header: truncated or oversized header";
			return -1;
		}
		if (len > B64_COLS) {
			*error_r = "header: stanza body line too long";
			return -1;
		}
		/* bodies has room: decoded bytes never exceed input bytes. */
		if (len > 0 && (!b64_ascii((const char *)in + *posp, len) ||
		    sodium_base642bin(h->bodies + h->bodieslen,
		    B64_LINE_BYTES, (const char *)in + *posp, len, NULL, &n,
		    NULL, sodium_base64_VARIANT_ORIGINAL_NO_PADDING) != 0)) {
			*error_r = "header: stanza body is not canonical "
			    "base64";
			return -1;
		}
		if (len == 0)
			n = 0;
		*posp += len + 1;
		h->bodieslen += n;
		s->bodylen += n;
		if (s->bodylen > AGE_MAX_BODY) {
			*error_r = "header: stanza body too large";
			return -1;
		}
		if (n < B64_LINE_BYTES)
			return 0;
	}
}

/*
 * header     = v1-line 1*stanza end
 * v1-line    = %s"age-encryption.org/v1" LF
 * end        = "--- " 43base64char LF
 * stanza     = arg-line *full-line final-line
 *
 * Lines are dispatched on their start, as age does: "---" is the MAC line,
 * anything else must open a stanza.  The header (MAC line included) must
 * fit in AGE_MAX_HEADER bytes.
 */
static int
header_parse(const unsigned char *in, size_t inlen, struct header *h,
    const char **error_r)
{
	const size_t	 vlen = sizeof(VERSION_LINE) - 1;
	size_t		 lim, pos, len, cap = 0;
	const char	*line;
	struct stanza	*s;

	memset(h, 0, sizeof(*h));
	lim = inlen < AGE_MAX_HEADER ? inlen : AGE_MAX_HEADER;
	if (lim < vlen || memcmp(in, VERSION_LINE, vlen) != 0) {
		*error_r = "header: not an age v1 file";
		return -1;
	}
	h->bodies = xmalloc(lim);
	pos = vlen;
	for (;;) {
		if (next_line(in, lim, pos, &len) != 0) {
			*error_r = "header: truncated or oversized header";
			return -1;
		}
		line = (const char *)in + pos;
		if (len >= 3 && memcmp(line, "---", 3) == 0) {
			if (len < 4 || line[3] != ' ' ||
			    b64_decode_exact(line + 4, len - 4, h->mac,
			    MAC_LEN) != 0) {
				*error_r = "header: malformed MAC line";
				return -1;
			}
			h->maclen = pos + 3;
			h->len = pos + len + 1;
			break;
		}
		if (len < 2 || memcmp(line, "->", 2) != 0) {
			*error_r = "header: unexpected line";
			return -1;
		}
		if (len > AGE_MAX_ARG_LINE) {
			*error_r = "header: stanza line too long";
			return -1;
		}
		if (h->nst == AGE_MAX_STANZAS) {
			*error_r = "header: too many stanzas";
			return -1;
		}
		if (h->nst == cap) {
			cap = cap == 0 ? 8 : cap * 2;
			h->st = xreallocarray(h->st, cap, sizeof(*h->st));
		}
		s = &h->st[h->nst++];
		memset(s, 0, sizeof(*s));
		if (stanza_args(line, len, s) != 0) {
			*error_r = "header: malformed stanza arguments";
			return -1;
		}
		pos += len + 1;
		if (stanza_body(in, lim, &pos, h, s, error_r) != 0)
			return -1;
	}
	return 0;
}

/* Free a parsed header. */
static void
header_clear(struct header *h)
{
	free(h->st);
	free(h->bodies);
	memset(h, 0, sizeof(*h));
}

/* Is argument i exactly `s' (case-sensitive)? */
static int
arg_is(const struct stanza *st, size_t i, const char *s)
{
	return i < st->nargs && i < STANZA_MAX_ARGS &&
	    st->arglen[i] == strlen(s) &&
	    memcmp(st->arg[i], s, st->arglen[i]) == 0;
}

/*
 * Try an X25519 stanza: 1 with the file key, 0 if it is not ours (other
 * type, or the AEAD does not open), -1 if it is malformed.  Lengths are
 * checked before any secret is touched (partitioning-oracle mitigation).
 */
static int
x25519_unwrap(const struct stanza *s, const unsigned char *bodies,
    const unsigned char sk[AGE_KEY_LEN], const unsigned char pk[AGE_KEY_LEN],
    unsigned char fk[AGE_FILE_KEY_LEN], const char **error_r)
{
	unsigned char	 share[AGE_KEY_LEN], ss[AGE_KEY_LEN];
	unsigned char	 salt[2 * AGE_KEY_LEN], key[32];
	int		 rc;

	if (!arg_is(s, 0, "X25519"))
		return 0;
	if (s->nargs != 2) {
		*error_r = "header: X25519 stanza needs exactly one argument";
		return -1;
	}
	if (b64_decode_exact(s->arg[1], s->arglen[1], share,
	    AGE_KEY_LEN) != 0) {
		*error_r = "header: X25519 share is not 32 bytes of base64";
		return -1;
	}
	if (s->bodylen != WRAPPED_LEN) {
		*error_r = "header: X25519 stanza body is not 32 bytes";
		return -1;
	}
	if (crypto_scalarmult_curve25519(ss, sk, share) != 0) {
		sodium_memzero(ss, sizeof(ss));
		*error_r = "header: X25519 share is a low-order point";
		return -1;
	}
	memcpy(salt, share, AGE_KEY_LEN);
	memcpy(salt + AGE_KEY_LEN, pk, AGE_KEY_LEN);
	hkdf_sha256(key, salt, sizeof(salt), ss, sizeof(ss), X25519_LABEL);
	rc = crypto_aead_chacha20poly1305_ietf_decrypt(fk, NULL, NULL,
	    bodies + s->body, WRAPPED_LEN, NULL, 0, zero_nonce, key) == 0;
	sodium_memzero(ss, sizeof(ss));
	sodium_memzero(key, sizeof(key));
	return rc;
}

/* work factor = %x31-39 *DIGIT, at most max: 0 and *wf, or -1. */
static int
work_factor_parse(const char *s, size_t len, int max, int *wf,
    const char **error_r)
{
	size_t	 i;
	int	 v = 0;

	if (len == 0 || s[0] < '1' || s[0] > '9') {
		*error_r = "header: malformed scrypt work factor";
		return -1;
	}
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9') {
			*error_r = "header: malformed scrypt work factor";
			return -1;
		}
		if (v <= max)
			v = v * 10 + (s[i] - '0');
	}
	if (v > max) {
		*error_r = "header: scrypt work factor too large";
		return -1;
	}
	*wf = v;
	return 0;
}

/*
 * Try an scrypt stanza ("-> scrypt salt logN"): 1, 0 or -1 as
 * x25519_unwrap.  key = scrypt(N = 2^logN, r = 8, p = 1,
 * S = "age-encryption.org/v1/scrypt" || salt, P = passphrase).
 */
static int
scrypt_unwrap(const struct stanza *s, const unsigned char *bodies,
    const struct age_identity *id, unsigned char fk[AGE_FILE_KEY_LEN],
    const char **error_r)
{
	unsigned char	 salt[SCRYPT_LABEL_LEN + SCRYPT_SALT_LEN], key[32];
	static const char none = 0;
	int		 wf, max, rc;

	if (!arg_is(s, 0, "scrypt"))
		return 0;
	if (s->nargs != 3) {
		*error_r = "header: scrypt stanza needs exactly two arguments";
		return -1;
	}
	if (b64_decode_exact(s->arg[1], s->arglen[1], salt + SCRYPT_LABEL_LEN,
	    SCRYPT_SALT_LEN) != 0) {
		*error_r = "header: scrypt salt is not 16 bytes of base64";
		return -1;
	}
	max = id->max_work_factor > 0 ? id->max_work_factor :
	    AGE_SCRYPT_MAX_WORK_FACTOR;
	if (max > AGE_SCRYPT_MAX_WORK_FACTOR)
		max = AGE_SCRYPT_MAX_WORK_FACTOR;
	if (work_factor_parse(s->arg[2], s->arglen[2], max, &wf, error_r) != 0)
		return -1;
	if (s->bodylen != WRAPPED_LEN) {
		*error_r = "header: scrypt stanza body is not 32 bytes";
		return -1;
	}
	memcpy(salt, SCRYPT_LABEL, SCRYPT_LABEL_LEN);
	if (crypto_pwhash_scryptsalsa208sha256_ll(
	    (const uint8_t *)(id->passphrase != NULL ? id->passphrase : &none),
	    id->passlen, salt, sizeof(salt), (uint64_t)1 << wf, 8, 1, key,
	    sizeof(key)) != 0) {
		sodium_memzero(key, sizeof(key));
		*error_r = "scrypt failed (out of memory?)";
		return -1;
	}
	rc = crypto_aead_chacha20poly1305_ietf_decrypt(fk, NULL, NULL,
	    bodies + s->body, WRAPPED_LEN, NULL, 0, zero_nonce, key) == 0;
	sodium_memzero(key, sizeof(key));
	return rc;
}

/*
 * Identity by identity, stanza by stanza, as age's Decrypt: the first
 * malformed known stanza is a header failure, the first unwrap wins.
 */
static enum age_status
unwrap_file_key(const struct age_identity *ids, size_t nids,
    const struct header *h, unsigned char fk[AGE_FILE_KEY_LEN],
    const char **error_r)
{
	unsigned char	 pk[AGE_KEY_LEN];
	size_t		 i, j;
	int		 rc;

	for (i = 0; i < nids; i++) {
		switch (ids[i].type) {
		case AGE_IDENTITY_X25519:
			if (ids[i].x25519_sk == NULL ||
			    crypto_scalarmult_curve25519_base(pk,
			    ids[i].x25519_sk) != 0)
				continue;
			break;
		case AGE_IDENTITY_SCRYPT:
			/* A passphrase file has one stanza, nothing else. */
			for (j = 0; j < h->nst; j++) {
				if (arg_is(&h->st[j], 0, "scrypt") &&
				    h->nst != 1) {
					*error_r = "header: an scrypt stanza "
					    "must be the only stanza";
					return AGE_ERR_HEADER;
				}
			}
			break;
		default:
			continue;
		}
		for (j = 0; j < h->nst; j++) {
			if (ids[i].type == AGE_IDENTITY_X25519)
				rc = x25519_unwrap(&h->st[j], h->bodies,
				    ids[i].x25519_sk, pk, fk, error_r);
			else
				rc = scrypt_unwrap(&h->st[j], h->bodies,
				    &ids[i], fk, error_r);
			if (rc == -1)
				return AGE_ERR_HEADER;
			if (rc == 1)
				return AGE_OK;
		}
	}
	*error_r = "no identity matches a recipient of the file";
	return AGE_ERR_NO_MATCH;
}

/* Increment the 11-byte big-endian chunk counter: 0, or -1 on wrap. */
static int
nonce_increment(unsigned char n[12])
{
	int	 i;

	for (i = 10; i >= 0; i--)
		if (++n[i] != 0)
			return 0;
	return -1;
}

/*
 * Open the STREAM payload (after the nonce) into out, chunk by chunk, the
 * way age's stream.Reader does: a short read is the last chunk (never an
 * empty one past the first), a full chunk that fails with flag 0 is tried
 * as a full-size last chunk, and nothing may follow the last chunk.
 * *outlen is the plaintext released, also on failure.
 */
static int
stream_open(const unsigned char key[32], const unsigned char *p, size_t len,
    unsigned char *out, size_t *outlen, const char **error_r)
{
	unsigned char	 nonce[CHUNK_NONCE_LEN];
	static const unsigned char zero[11];
	size_t		 n, released = 0;
	int		 last = 0, rc;

	memset(nonce, 0, sizeof(nonce));
	*outlen = 0;
	for (;;) {
		if (len == 0) {
			*error_r = "payload: truncated, no final chunk";
			return -1;
		}
		if (len < AGE_CHUNK_SIZE + TAG_LEN) {
			n = len;
			last = 1;
			if (n == TAG_LEN && memcmp(nonce, zero, 11) != 0) {
				*error_r = "payload: empty final chunk";
				return -1;
			}
			nonce[11] = 0x01;
			rc = crypto_aead_chacha20poly1305_ietf_decrypt(
			    out + released, NULL, NULL, p, n, NULL, 0, nonce,
			    key);
		} else {
			n = AGE_CHUNK_SIZE + TAG_LEN;
			nonce[11] = 0x00;
			rc = crypto_aead_chacha20poly1305_ietf_decrypt(
			    out + released, NULL, NULL, p, n, NULL, 0, nonce,
			    key);
			if (rc != 0) {
				/* A full-size final chunk. */
				last = 1;
				nonce[11] = 0x01;
				rc = crypto_aead_chacha20poly1305_ietf_decrypt(
				    out + released, NULL, NULL, p, n, NULL, 0,
				    nonce, key);
			}
		}
		if (rc != 0) {
			*error_r = "payload: chunk failed to authenticate";
			return -1;
		}
		released += n - TAG_LEN;
		*outlen = released;
		p += n;
		len -= n;
		if (last) {
			if (len != 0) {
				*error_r = "payload: data after the final "
				    "chunk";
				return -1;
			}
			return 0;
		}
		if (nonce_increment(nonce) != 0) {
			*error_r = "payload: too many chunks";
			return -1;
		}
	}
}

/* Only ASCII whitespace? */
static int
is_blank(const char *s, size_t len)
{
	size_t	 i;

	for (i = 0; i < len; i++)
		if (strchr(" \t\n\v\f\r", s[i]) == NULL || s[i] == '\0')
			return 0;
	return 1;
}

/* Does the input start (after whitespace) with a PEM BEGIN line? */
static int
looks_armored(const unsigned char *in, size_t len)
{
	static const char	 begin[] = "-----BEGIN";
	size_t			 i;

	for (i = 0; i < len; i++)
		if (!is_blank((const char *)in + i, 1))
			break;
	return len - i >= sizeof(begin) - 1 &&
	    memcmp(in + i, begin, sizeof(begin) - 1) == 0;
}

/* The next line at *pos without its LF or CRLF: 0, or -1 at EOF. */
static int
armor_line(const unsigned char *in, size_t len, size_t *pos,
    const char **line, size_t *linelen)
{
	const unsigned char	*nl;
	size_t			 n;

	if (*pos >= len)
		return -1;
	*line = (const char *)in + *pos;
	if ((nl = memchr(in + *pos, '\n', len - *pos)) == NULL) {
		n = len - *pos;			/* last line, no EOL */
		*pos = len;
	} else {
		n = (size_t)(nl - (in + *pos));
		*pos += n + 1;
	}
	if (n > 0 && (*line)[n - 1] == '\r')
		n--;
	*linelen = n;
	return 0;
}

/*
 * Strict PEM (RFC 7468 "strict"), as age's armor.Reader plus the later
 * "no empty line" rule:
 *   *blank-line "-----BEGIN AGE ENCRYPTED FILE-----" EOL
 *   *(64 base64 chars EOL) [1*63 base64 chars EOL, padded]
 *   "-----END AGE ENCRYPTED FILE-----" [EOL] *whitespace
 * with EOL = LF / CRLF and under 1 KiB of whitespace on each side.
 */
static int
armor_decode(const unsigned char *in, size_t inlen, unsigned char **outp,
    size_t *outlenp, const char **error_r)
{
	unsigned char	*out;
	const char	*line;
	size_t		 pos = 0, len, ws = 0, n, outlen = 0;

	*outp = NULL;
	*outlenp = 0;
	for (;;) {
		if (armor_line(in, inlen, &pos, &line, &len) != 0) {
			*error_r = "armor: no BEGIN line";
			return -1;
		}
		if (!is_blank(line, len))
			break;
		ws += len + 1;
		if (ws > ARMOR_MAX_WS) {
			*error_r = "armor: too much leading whitespace";
			return -1;
		}
	}
	if (len != sizeof(ARMOR_BEGIN) - 1 || memcmp(line, ARMOR_BEGIN, len)) {
		*error_r = "armor: malformed BEGIN line";
		return -1;
	}
	out = xmalloc(inlen / 4 * 3 + B64_LINE_BYTES);
	for (;;) {
		if (armor_line(in, inlen, &pos, &line, &len) != 0) {
			*error_r = "armor: no END line";
			goto fail;
		}
		if (len == sizeof(ARMOR_END) - 1 &&
		    memcmp(line, ARMOR_END, len) == 0)
			break;
		if (len == 0) {
			*error_r = "armor: empty line";
			goto fail;
		}
		if (len > B64_COLS) {
			*error_r = "armor: line longer than 64 columns";
			goto fail;
		}
		if (!b64_ascii(line, len) || sodium_base642bin(out + outlen,
		    B64_LINE_BYTES, line, len, NULL, &n, NULL,
		    sodium_base64_VARIANT_ORIGINAL) != 0) {
			*error_r = "armor: malformed base64 line";
			goto fail;
		}
		outlen += n;
		if (n < B64_LINE_BYTES) {
			if (armor_line(in, inlen, &pos, &line, &len) != 0 ||
			    len != sizeof(ARMOR_END) - 1 ||
			    memcmp(line, ARMOR_END, len) != 0) {
				*error_r = "armor: short line not followed by "
				    "the END line";
				goto fail;
			}
			break;
		}
	}
	if (inlen - pos >= ARMOR_MAX_WS) {
		*error_r = "armor: too much data after the END line";
		goto fail;
	}
	if (!is_blank((const char *)in + pos, inlen - pos)) {
		*error_r = "armor: data after the END line";
		goto fail;
	}
	*outp = out;
	*outlenp = outlen;
	return 0;
fail:
	free(out);
	return -1;
}

/* One step of the BIP 173 checksum (generator 0x3b6a57b2...). */
static uint32_t
bech32_step(uint32_t chk, unsigned char v)
{
	static const uint32_t	 gen[5] = {
		0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3
	};
	uint32_t		 b = chk >> 25;
	int			 k;

	chk = ((chk & 0x1ffffff) << 5) ^ v;
	for (k = 0; k < 5; k++)
		if ((b >> k) & 1)
			chk ^= gen[k];
	return chk;
}

/* BIP 173 checksum over the lower-cased HRP and the 5-bit values. */
static uint32_t
bech32_polymod(const char *hrp, size_t hrplen, const unsigned char *v,
    size_t n)
{
	uint32_t	 chk = 1;
	size_t		 i;

	for (i = 0; i < hrplen; i++)
		chk = bech32_step(chk, bech32_lower(hrp[i]) >> 5);
	chk = bech32_step(chk, 0);
	for (i = 0; i < hrplen; i++)
		chk = bech32_step(chk, bech32_lower(hrp[i]) & 31);
	for (i = 0; i < n; i++)
		chk = bech32_step(chk, v[i]);
	return chk;
}

/* ASCII lower case of one character, as an unsigned char. */
static unsigned char
bech32_lower(char c)
{
	if (c >= 'A' && c <= 'Z')
		c += 'a' - 'A';
	return (unsigned char)c;
}

/* Bech32-encode data under hrp; upper-case output if `upper'. */
static int
bech32_encode(const char *hrp, const unsigned char *data, size_t len,
    int upper, char *out, size_t outsz)
{
	static const char	 charset[] = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";
	unsigned char		 v[BECH32_MAX];
	size_t			 hrplen = strlen(hrp), n = 0, i;
	uint32_t		 acc = 0, chk;
	int			 bits = 0;
	char			 c;

	if ((len * 8 + 4) / 5 + 6 > sizeof(v) ||
	    hrplen + 1 + (len * 8 + 4) / 5 + 6 + 1 > outsz)
		return -1;
	for (i = 0; i < len; i++) {		/* 8-bit to 5-bit, padded */
		acc = (acc << 8) | data[i];
		bits += 8;
		while (bits >= 5) {
			bits -= 5;
			v[n++] = (acc >> bits) & 31;
		}
	}
	if (bits > 0)
		v[n++] = (acc << (5 - bits)) & 31;
	memset(v + n, 0, 6);
	chk = bech32_polymod(hrp, hrplen, v, n + 6) ^ 1;
	for (i = 0; i < 6; i++)
		v[n + i] = (chk >> (5 * (5 - i))) & 31;
	n += 6;

	for (i = 0; i < hrplen; i++) {
		c = hrp[i];
		if (upper && c >= 'a' && c <= 'z')
			c -= 'a' - 'A';
		out[i] = c;
	}
	out[hrplen] = '1';
	for (i = 0; i < n; i++) {
		c = charset[v[i]];
		if (upper && c >= 'a' && c <= 'z')
			c -= 'a' - 'A';
		out[hrplen + 1 + i] = c;
	}
	out[hrplen + 1 + n] = '\0';
	sodium_memzero(v, sizeof(v));
	return 0;
}

/*
 * Decode a Bech32 string whose HRP is exactly `hrp' (case as given) into
 * exactly len bytes.  All upper or all lower case; padding bits must be
 * fewer than 5 and zero.
 */
static int
bech32_decode(const char *s, const char *hrp, unsigned char *out, size_t len)
{
	static const char	 charset[] = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";
	unsigned char		 v[BECH32_MAX] = { 0 };
	const char		*p;
	size_t			 slen, pos, n, i, o = 0;
	uint32_t		 acc = 0;
	int			 bits = 0, lower = 0, upper = 0, rc = -1;
	char			 c;

	slen = strnlen(s, BECH32_MAX + 1);
	if (slen > BECH32_MAX)
		return -1;
	for (i = 0; i < slen; i++) {
		if (s[i] < 0x21 || s[i] > 0x7e)
			return -1;
		lower |= s[i] >= 'a' && s[i] <= 'z';
		upper |= s[i] >= 'A' && s[i] <= 'Z';
	}
	if (lower && upper)
		return -1;
	if ((p = strrchr(s, '1')) == NULL)
		return -1;
	pos = (size_t)(p - s);
	if (pos < 1 || pos + 7 > slen)
		return -1;
	if (pos != strlen(hrp) || memcmp(s, hrp, pos) != 0)
		return -1;
	n = slen - pos - 1;
	for (i = 0; i < n; i++) {
		c = (char)bech32_lower(s[pos + 1 + i]);
		if ((p = strchr(charset, c)) == NULL)
			goto out;
		v[i] = (unsigned char)(p - charset);
	}
	if (bech32_polymod(s, pos, v, n) != 1)
		goto out;
	for (i = 0; i < n - 6; i++) {		/* 5-bit to 8-bit, strict */
		acc = ((acc << 5) | v[i]) & 0xfff;
		bits += 5;
		if (bits >= 8) {
			bits -= 8;
			if (o == len)
				goto out;
			out[o++] = (acc >> bits) & 0xff;
		}
	}
	if (bits >= 5 || (acc & ((1U << bits) - 1)) != 0 || o != len)
		goto out;
	rc = 0;
out:
	if (rc != 0)
		sodium_memzero(out, len);
	sodium_memzero(v, sizeof(v));
	return rc;
}

/* A fresh X25519 key pair. */
int
age_keygen(unsigned char pk[AGE_KEY_LEN], unsigned char sk[AGE_KEY_LEN])
{
	age_sodium();
	randombytes_buf(sk, AGE_KEY_LEN);
	return age_public_key(sk, pk);
}

/* pk = X25519(sk, basepoint). */
int
age_public_key(const unsigned char sk[AGE_KEY_LEN],
    unsigned char pk[AGE_KEY_LEN])
{
	age_sodium();
	return crypto_scalarmult_curve25519_base(pk, sk) == 0 ? 0 : -1;
}

/* Parse "age1..." into a public key. */
int
age_recipient_parse(const char *s, unsigned char pk[AGE_KEY_LEN])
{
	return bech32_decode(s, "age", pk, AGE_KEY_LEN);
}

/* Format a public key as "age1...". */
int
age_recipient_format(const unsigned char pk[AGE_KEY_LEN], char *out,
    size_t outsz)
{
	return bech32_encode("age", pk, AGE_KEY_LEN, 0, out, outsz);
}

/* Parse "AGE-SECRET-KEY-1..." into a secret key. */
int
age_identity_parse(const char *s, unsigned char sk[AGE_KEY_LEN])
{
	return bech32_decode(s, "AGE-SECRET-KEY-", sk, AGE_KEY_LEN);
}

/* Format a secret key as "AGE-SECRET-KEY-1..." (the caller wipes out). */
int
age_identity_format(const unsigned char sk[AGE_KEY_LEN], char *out,
    size_t outsz)
{
	return bech32_encode("AGE-SECRET-KEY-", sk, AGE_KEY_LEN, 1, out,
	    outsz);
}

/* Encrypt to X25519 recipients. */
int
age_encrypt(const unsigned char (*pks)[AGE_KEY_LEN], size_t npks,
    const void *pt, size_t ptlen, int armor, unsigned char **out,
    size_t *outlen, const char **error_r)
{
	struct wbuf	 hdr = { NULL, 0, 0 };
	unsigned char	 fk[AGE_FILE_KEY_LEN], share[AGE_KEY_LEN];
	unsigned char	 body[WRAPPED_LEN];
	char		 arg[sizeof("X25519 ") + 44];
	const char	*dummy;
	size_t		 i;
	int		 rc;

	if (error_r == NULL)
		error_r = &dummy;
	*out = NULL;
	*outlen = 0;
	if (npks == 0 || npks > AGE_MAX_RECIPIENTS) {
		*error_r = "between 1 and 512 recipients are needed";
		return -1;
	}
	age_sodium();
	randombytes_buf(fk, sizeof(fk));
	wbuf_str(&hdr, VERSION_LINE);
	for (i = 0; i < npks; i++) {
		if (x25519_wrap(fk, pks[i], share, body) != 0) {
			sodium_memzero(fk, sizeof(fk));
			free(hdr.p);
			*error_r = "a recipient is not a valid X25519 key";
			return -1;
		}
		memcpy(arg, "X25519 ", 7);
		sodium_bin2base64(arg + 7, sizeof(arg) - 7, share,
		    sizeof(share), sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
		stanza_write(&hdr, arg, body, sizeof(body));
	}
	rc = seal(fk, &hdr, pt, ptlen, armor, out, outlen, error_r);
	sodium_memzero(fk, sizeof(fk));
	return rc;
}

/* Encrypt to a passphrase: a single scrypt stanza. */
int
age_encrypt_passphrase(const char *pass, size_t passlen, int work_factor,
    const void *pt, size_t ptlen, int armor, unsigned char **out,
    size_t *outlen, const char **error_r)
{
	struct wbuf	 hdr = { NULL, 0, 0 };
	unsigned char	 fk[AGE_FILE_KEY_LEN], key[32], body[WRAPPED_LEN];
	unsigned char	 salt[SCRYPT_LABEL_LEN + SCRYPT_SALT_LEN];
	char		 arg[64];
	const char	*dummy;
	int		 rc;

	if (error_r == NULL)
		error_r = &dummy;
	*out = NULL;
	*outlen = 0;
	if (work_factor == 0)
		work_factor = AGE_SCRYPT_WORK_FACTOR;
	if (work_factor < 1 || work_factor > AGE_SCRYPT_MAX_WORK_FACTOR) {
		*error_r = "scrypt work factor out of range";
		return -1;
	}
	if (pass == NULL || passlen == 0) {
		*error_r = "empty passphrase";
		return -1;
	}
	age_sodium();
	memcpy(salt, SCRYPT_LABEL, SCRYPT_LABEL_LEN);
	randombytes_buf(salt + SCRYPT_LABEL_LEN, SCRYPT_SALT_LEN);
	if (crypto_pwhash_scryptsalsa208sha256_ll((const uint8_t *)pass,
	    passlen, salt, sizeof(salt), (uint64_t)1 << work_factor, 8, 1, key,
	    sizeof(key)) != 0) {
		sodium_memzero(key, sizeof(key));
		*error_r = "scrypt failed (out of memory?)";
		return -1;
	}
	randombytes_buf(fk, sizeof(fk));
	crypto_aead_chacha20poly1305_ietf_encrypt(body, NULL, fk, sizeof(fk),
	    NULL, 0, NULL, zero_nonce, key);
	sodium_memzero(key, sizeof(key));

	memcpy(arg, "scrypt ", 7);
	sodium_bin2base64(arg + 7, sizeof(arg) - 7, salt + SCRYPT_LABEL_LEN,
	    SCRYPT_SALT_LEN, sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
	snprintf(arg + strlen(arg), sizeof(arg) - strlen(arg), " %d",
	    work_factor);
	wbuf_str(&hdr, VERSION_LINE);
	stanza_write(&hdr, arg, body, sizeof(body));
	rc = seal(fk, &hdr, pt, ptlen, armor, out, outlen, error_r);
	sodium_memzero(fk, sizeof(fk));
	return rc;
}

/* Decrypt a whole age file (see age.h). */
enum age_status
age_decrypt(const struct age_identity *ids, size_t nids, const void *inv,
    size_t inlen, int flags, unsigned char **out, size_t *outlen,
    const char **error_r)
{
	const unsigned char	*in = inv;
	unsigned char		*bin = NULL, *plain = NULL;
	unsigned char		 fk[AGE_FILE_KEY_LEN], key[32], mac[MAC_LEN];
	struct header		 h;
	enum age_status		 st;
	const char		*dummy;
	size_t			 len, plainlen = 0, released = 0;
	int			 armored;

	if (error_r == NULL)
		error_r = &dummy;
	*error_r = NULL;
	*out = NULL;
	*outlen = 0;
	memset(&h, 0, sizeof(h));
	age_sodium();

	if (flags & AGE_DECRYPT_ARMORED)
		armored = 1;
	else if (flags & AGE_DECRYPT_BINARY)
		armored = 0;
	else
		armored = looks_armored(in, inlen);
	if (armored) {
		if (armor_decode(in, inlen, &bin, &len, error_r) != 0)
			return AGE_ERR_ARMOR;
		in = bin;
		inlen = len;
	}

	if (header_parse(in, inlen, &h, error_r) != 0) {
		st = AGE_ERR_HEADER;
		goto done;
	}
	if ((st = unwrap_file_key(ids, nids, &h, fk, error_r)) != AGE_OK)
		goto done;
	header_mac(fk, in, h.maclen, mac);
	if (sodium_memcmp(mac, h.mac, MAC_LEN) != 0) {
		*error_r = "header MAC mismatch";
		st = AGE_ERR_HMAC;
		goto done;
	}
	if (inlen - h.len < NONCE_LEN) {
		*error_r = "header: payload nonce missing or short";
		st = AGE_ERR_HEADER;
		goto done;
	}
	hkdf_sha256(key, in + h.len, NONCE_LEN, fk, AGE_FILE_KEY_LEN,
	    "payload");
	len = inlen - h.len - NONCE_LEN;
	plain = xmalloc(len);
	plainlen = len;
	if (stream_open(key, in + h.len + NONCE_LEN, len, plain, &released,
	    error_r) != 0) {
		st = AGE_ERR_PAYLOAD;
		if (flags & AGE_DECRYPT_PARTIAL) {
			*out = plain;
			*outlen = released;
			plain = NULL;
		}
		goto done;
	}
	*out = plain;
	*outlen = released;
	plain = NULL;
	st = AGE_OK;
done:
	sodium_memzero(fk, sizeof(fk));
	sodium_memzero(key, sizeof(key));
	if (plain != NULL)
		age_free_plaintext(&plain, plainlen);
	header_clear(&h);
	free(bin);
	return st;
}

/* The CCTV name of a status. */
const char *
age_status_name(enum age_status st)
{
	switch (st) {
	case AGE_OK:
		return "success";
	case AGE_ERR_ARMOR:
		return "armor failure";
	case AGE_ERR_HEADER:
		return "header failure";
	case AGE_ERR_NO_MATCH:
		return "no match";
	case AGE_ERR_HMAC:
		return "HMAC failure";
	case AGE_ERR_PAYLOAD:
		return "payload failure";
	}
	return "unknown";
}

/* Wipe and free plaintext. */
void
age_free_plaintext(unsigned char **p, size_t len)
{
	if (p == NULL || *p == NULL)
		return;
	sodium_memzero(*p, len);
	free(*p);
	*p = NULL;
}
