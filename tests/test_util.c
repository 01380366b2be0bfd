/*
 * test_util.c - util.c, log.c and hash.c.
 */
#include "build.h"

#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "log.h"
#include "util.h"
#include "tap.h"

/* base64 decode: table of inputs, expected result. */
static void
test_b64(void)
{
	static const struct {
		const char	*in;
		const char	*out;	/* NULL = must fail */
	} cases[] = {
		{ "", "" },
		{ "Zg==", "f" },
		{ "Zm8=", "fo" },
		{ "Zm9v", "foo" },
		{ "Zm9vYg", "foob" },		/* unpadded accepted */
		{ "Zm9v YmFy", NULL },		/* space */
		{ "Zm9v\nYmFy", NULL },		/* newline */
		{ "Zm9\x80", NULL },		/* high byte: libsodium 1.0.18 bug */
		{ "Zm9\xff", NULL },
		{ "Zm-v", NULL },		/* url alphabet */
		{ "Zg=", NULL },		/* bad padding */
		{ "Z", NULL },
		{ "Zm9v=", NULL },
	};
	size_t	 i;

	for (i = 0; i < nitems(cases); i++) {
		unsigned char	*out = NULL;
		size_t		 n = 0;
		int		 r = hash_b64_decode(cases[i].in,
				    strlen(cases[i].in), &out, &n);

		if (cases[i].out == NULL)
			ok(r == -1, "b64 case %zu rejected", i);
		else
			ok(r == 0 && n == strlen(cases[i].out) &&
			    memcmp(out, cases[i].out, n) == 0,
			    "b64 case %zu decodes", i);
		free(out);
	}
	{
		unsigned char	 buf[256], *out = NULL;
		char		*enc;
		size_t		 n = 0;

		for (i = 0; i < sizeof(buf); i++)
			buf[i] = (unsigned char)i;
		enc = hash_b64_encode(buf, sizeof(buf));
		ok(hash_b64_decode(enc, strlen(enc), &out, &n) == 0 &&
		    n == sizeof(buf) && memcmp(out, buf, n) == 0,
		    "b64 round trip of all byte values");
		free(enc);
		free(out);
	}
}

static void
test_hash(void)
{
	unsigned char	 d[32], d2[32];
	char		 hex[65];

	hash_sha256("abc", 3, d);
	hash_hex(d, 32, hex);
	is_str(hex, "ba7816bf8f01cfea414140de5dae2223"
	    "b00361a396177a9cb410ff61f20015ad", "sha256(abc)");
	hash_sha256_v(d2, "a", (size_t)1, "bc", (size_t)2, (void *)NULL);
	ok(memcmp(d, d2, 32) == 0, "sha256 over pieces equals whole");
	ok(hash_equal(d, d2, 32), "hash_equal equal");
	d2[31] ^= 1;
	ok(!hash_equal(d, d2, 32), "hash_equal differs");
}

static void
test_util(void)
{
	int64_t	 v;
	char	 buf[16], esc[64];

	ok(util_parse_i64("42", 1, 100, &v) == 0 && v == 42, "parse 42");
	ok(util_parse_i64("0", 1, 100, &v) == -1, "parse below min");
	ok(util_parse_i64("101", 1, 100, &v) == -1, "parse above max");
	ok(util_parse_i64("4x", 1, 100, &v) == -1, "parse trailing junk");
	ok(util_parse_i64("", 1, 100, &v) == -1, "parse empty");
	ok(util_parse_i64(" 4", 1, 100, &v) == -1, "parse leading space");
	ok(util_parse_i64("99999999999999999999", 1, INT64_MAX, &v) == -1,
	    "parse overflow");
	ok(util_is_loopback("127.0.0.1") && util_is_loopback("::1") &&
	    util_is_loopback("localhost"), "loopback names");
	ok(util_is_loopback("127.1.2.3") && !util_is_loopback("127.example.net")
	    && !util_is_loopback("127.") && !util_is_loopback("1127.0.0.1"),
	    "loopback: IPv4 literals parsed, not prefix-matched");
	ok(!util_is_loopback("10.0.0.1") && !util_is_loopback("0.0.0.0"),
	    "non-loopback names");
	is_int(strlcpy_sp(buf, "0123456789abcdefXYZ", sizeof(buf)), 19,
	    "strlcpy returns source length");
	is_str(buf, "0123456789abcde", "strlcpy truncates");
	log_escape(esc, sizeof(esc), "a\r\n\"\\\x01z", 7);
	is_str(esc, "a\\x0d\\x0a\\\"\\\\\\x01z", "log_escape");
	log_escape(esc, 10, "0123456789012345", 16);
	ok(strlen(esc) < 10 && strstr(esc, "...") != NULL,
	    "log_escape truncates with ...");
	ok(util_endswith_ci("Foo.EXAMPLE", ".example"), "endswith_ci");
}

int
main(void)
{
	if (hash_init() != 0)
		return 1;
	test_b64();
	test_hash();
	test_util();
	return tap_done();
}
