/*
 * test_queue.c - the retry schedule of the delivery queue.
 *
 * queue_backoff() is the only pure part of queue.c; the scheduler itself
 * is exercised against a real smarthost by tests/integration/
 * t_letters_out.py, t_relay_restart.py and t_backlog.py.
 */
#include "build.h"

#include <stdint.h>
#include <stdio.h>

#include "hash.h"
#include "queue.h"
#include "tap.h"

int
main(void)
{
	int64_t	 d, lo, hi, want;
	int	 a, i, bad, spread;

	if (hash_init() != 0) {
		printf("Bail out! sodium_init failed\n");
		return 1;
	}
	/* Doubling from `first', capped at `max', up to a quarter earlier. */
	for (a = 1; a <= 12; a++) {
		want = 60;
		for (i = 1; i < a && want < 3600; i++)
			want *= 2;
		if (want > 3600)
			want = 3600;
		lo = want - want / 4;
		hi = want;
		bad = 0;
		spread = 0;
		for (i = 0; i < 2000; i++) {
			d = queue_backoff(a, 60, 3600);
			if (d < lo || d > hi)
				bad++;
			if (d != hi)
				spread = 1;
		}
		ok(bad == 0, "attempt %d: delay within [%lld, %lld]", a,
		    (long long)lo, (long long)hi);
		ok(spread, "attempt %d: jitter spreads the delays", a);
	}
	ok(queue_backoff(1000000, 60, 3600) <= 3600 &&
	    queue_backoff(1000000, 60, 3600) >= 2700,
	    "a huge attempt count stays at the cap (no overflow)");
	ok(queue_backoff(1, 1, 1) == 1 && queue_backoff(5, 1, 3) >= 1 &&
	    queue_backoff(5, 1, 3) <= 3, "tiny settings: at least a second");
	ok(queue_backoff(1, 0, 10) >= 1, "first = 0 is taken as 1 s");
	ok(queue_backoff(0, 60, 3600) >= 45 && queue_backoff(0, 60, 3600) <= 60,
	    "attempt 0 is treated as the first");
	return tap_done();
}
