/*
 * tap.h - a tiny TAP harness for the C unit tests.
 *
 *   ok(cond, "name %d", i);   is_int(got, want, "name");  is_str(...)
 *   skip("reason");           return tap_done();
 *
 * Prints "ok N - name" / "not ok N - name" lines and, at the end,
 * "1..N" and "# N passed, N failed, N skipped"; tests/run sums them.
 * Header-only: each test program includes it once.
 */
#ifndef SEALPOST_TAP_H
#define SEALPOST_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int tap_n, tap_failed, tap_skipped;

__attribute__((format(printf, 2, 3), unused))
static int
ok(int cond, const char *fmt, ...)
{
	va_list	 ap;

	tap_n++;
	if (!cond)
		tap_failed++;
	printf("%s %d - ", cond ? "ok" : "not ok", tap_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	return cond;
}

__attribute__((format(printf, 1, 2), unused))
static void
skip(const char *fmt, ...)
{
	va_list	 ap;

	tap_n++;
	tap_skipped++;
	printf("ok %d # SKIP ", tap_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

__attribute__((format(printf, 1, 2), unused))
static void
diag(const char *fmt, ...)
{
	va_list	 ap;

	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

#define is_int(got, want, ...) do {					\
	long long _g = (long long)(got), _w = (long long)(want);	\
	if (!ok(_g == _w, __VA_ARGS__))					\
		diag("  got %lld, want %lld", _g, _w);			\
} while (0)

#define is_str(got, want, ...) do {					\
	const char *_g = (got), *_w = (want);				\
	int _eq = (_g == NULL && _w == NULL) ||				\
	    (_g != NULL && _w != NULL && strcmp(_g, _w) == 0);		\
	if (!ok(_eq, __VA_ARGS__))					\
		diag("  got \"%s\", want \"%s\"", _g ? _g : "(null)",	\
		    _w ? _w : "(null)");				\
} while (0)

__attribute__((unused))
static int
tap_done(void)
{
	printf("1..%d\n", tap_n);
	printf("# %d passed, %d failed, %d skipped\n",
	    tap_n - tap_failed - tap_skipped, tap_failed, tap_skipped);
	return tap_failed == 0 ? 0 : 1;
}

#endif
