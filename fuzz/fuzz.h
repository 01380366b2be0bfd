/*
 * fuzz.h - what the fuzz targets in fuzz/ share.
 *
 * Each fuzz/<target>.c defines LLVMFuzzerTestOneInput() over one family of
 * sealpost's parsers.  It builds two ways: with clang and libFuzzer
 * (contrib/fuzz.sh) and with the project's compiler and fuzz/replay.c, a
 * main() that feeds the committed seed corpus fuzz/corpus/<target>/ to the
 * target (the replay_<target> programs the test suite runs).
 *
 * A target bounds its own work (inputs over FUZZ_MAX_INPUT are ignored),
 * frees everything it allocates and keeps no state that grows between
 * inputs.  Besides memory safety a target checks the parser's promises
 * (round trips, bounds); a broken promise aborts, like a crash.
 */
#ifndef SEALPOST_FUZZ_H
#define SEALPOST_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define FUZZ_MAX_INPUT	(1024 * 1024)

struct letter_doc;

int	 LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* fuzz_doc.c: a document must serialise, parse back equal, and
 * serialise again to the same bytes. */
void	 fuzz_doc_roundtrip(const struct letter_doc *);

/* A broken invariant is a finding: say which and abort. */
#define FUZZ_CHECK(e) do {						\
	if (!(e)) {							\
		fprintf(stderr, "%s:%d: invariant failed: %s\n",	\
		    __FILE__, __LINE__, #e);				\
		abort();						\
	}								\
} while (0)

#endif
