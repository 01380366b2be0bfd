/*
 * replay.c - run a fuzz target over files, without libFuzzer.
 *
 * Linked with one fuzz/<target>.c into replay_<target>, so the targets
 * build with the project's compiler and the seed corpora run in the test
 * suite (tests/integration/t_fuzz_replay.sh), plain and under ASan/UBSan.
 *
 *   replay_<target> PATH...
 *
 * A PATH is a file or a directory (its files, sorted, not recursing; dot
 * files and README* skipped).  Output is TAP, one line per PATH:
 * "ok 1 - smtp_cmd: 123 inputs, slowest 4 ms".  A crash stays a crash: the
 * process dies, and the input that killed it is named on stderr first
 * (for aborts: failed invariants, sanitizer reports with abort_on_error).
 * An input slower than SEALPOST_FUZZ_TIMEOUT_MS (default 1000) makes its
 * PATH's line "not ok".  Exit status 0 when every line is ok.
 */
#include "build.h"

#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fuzz.h"

int		 main(int, char **);

static int	 replay_path(const char *, size_t *, long *, char *, size_t,
		    long);
static int	 replay_file(const char *, long *);
static int	 replay_select(const struct dirent *);
static void	 replay_fatal(int);
static long	 replay_ms(const struct timespec *);

static const char *volatile replay_current;	/* the input being run */

/* A signal that ends the run: name the input, then die of it. */
static void
replay_fatal(int sig)
{
	const char	*p = replay_current;

	if (p != NULL) {
		(void)!write(STDERR_FILENO, "replay: crashed on ", 19);
		(void)!write(STDERR_FILENO, p, strlen(p));
		(void)!write(STDERR_FILENO, "\n", 1);
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Milliseconds since start. */
static long
replay_ms(const struct timespec *start)
{
	struct timespec	 now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (long)(now.tv_sec - start->tv_sec) * 1000 +
	    (now.tv_nsec - start->tv_nsec) / 1000000;
}

/* Feed one file to the target; its time in *ms.  0, or -1 (unreadable). */
static int
replay_file(const char *path, long *ms)
{
	struct timespec	 start;
	struct stat	 st;
	uint8_t		*buf;
	size_t		 len = 0;
	ssize_t		 n;
	int		 fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) ||
	    st.st_size > 64 * FUZZ_MAX_INPUT) {
		close(fd);
		return -1;
	}
	/* exactly the file's size, so a read past the end is caught */
	if ((buf = malloc(st.st_size > 0 ? (size_t)st.st_size : 1)) == NULL)
		abort();
	while (len < (size_t)st.st_size) {
		n = read(fd, buf + len, (size_t)st.st_size - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(fd);

	replay_current = path;
	clock_gettime(CLOCK_MONOTONIC, &start);
	LLVMFuzzerTestOneInput(buf, len);
	*ms = replay_ms(&start);
	replay_current = NULL;
	free(buf);
	return 0;
}

/* Directory entries worth feeding. */
static int
replay_select(const struct dirent *de)
{
	return de->d_name[0] != '.' &&
	    strncmp(de->d_name, "README", 6) != 0;
}

/*
 * Run a file or a directory's files.  Counts inputs into *n and the
 * slowest time into *slowest (its name into slow); returns the number of
 * problems (unreadable files, inputs over the time limit).
 */
static int
replay_path(const char *path, size_t *n, long *slowest, char *slow,
    size_t slowsz, long limit)
{
	struct dirent	**de = NULL;
	struct stat	 st;
	char		 file[4096];
	long		 ms = 0;
	int		 i, nde, bad = 0;

	if (stat(path, &st) == -1) {
		printf("# %s: %s\n", path, strerror(errno));
		return 1;
	}
	if (!S_ISDIR(st.st_mode)) {
		if (replay_file(path, &ms) != 0) {
			printf("# %s: unreadable\n", path);
			return 1;
		}
		(*n)++;
		*slowest = ms;
		snprintf(slow, slowsz, "%s", path);
		return ms > limit;
	}
	if ((nde = scandir(path, &de, replay_select, alphasort)) == -1) {
		printf("# %s: %s\n", path, strerror(errno));
		return 1;
	}
	for (i = 0; i < nde; i++) {
		snprintf(file, sizeof file, "%s/%s", path, de[i]->d_name);
		free(de[i]);
		if (stat(file, &st) == -1 || !S_ISREG(st.st_mode))
			continue;
		if (replay_file(file, &ms) != 0) {
			printf("# %s: unreadable\n", file);
			bad++;
			continue;
		}
		(*n)++;
		if (ms > *slowest) {
			*slowest = ms;
			snprintf(slow, slowsz, "%s", file);
		}
		if (ms > limit) {
			printf("# %s: %ld ms (limit %ld ms)\n", file, ms,
			    limit);
			bad++;
		}
	}
	free(de);
	return bad;
}

int
main(int argc, char **argv)
{
	const char	*v, *name;
	char		 slow[4096];
	size_t		 n;
	long		 limit = 1000, slowest;
	int		 i, bad, failed = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: %s PATH...\n", argv[0]);
		return 2;
	}
	if ((v = getenv("SEALPOST_FUZZ_TIMEOUT_MS")) != NULL && atol(v) > 0)
		limit = atol(v);
	signal(SIGABRT, replay_fatal);
#ifndef SEALPOST_ASAN
	/* under ASan its own handlers report these, with a stack */
	signal(SIGSEGV, replay_fatal);
	signal(SIGBUS, replay_fatal);
	signal(SIGFPE, replay_fatal);
	signal(SIGILL, replay_fatal);
#endif
	setvbuf(stdout, NULL, _IOLBF, 0);

	printf("1..%d\n", argc - 1);
	for (i = 1; i < argc; i++) {
		n = 0;
		slowest = 0;
		slow[0] = '\0';
		bad = replay_path(argv[i], &n, &slowest, slow, sizeof slow,
		    limit);
		name = strrchr(argv[i], '/');
		name = name != NULL && name[1] != '\0' ? name + 1 : argv[i];
		if (n == 0)
			bad++;
		printf("%s %d - %s: %zu inputs, slowest %ld ms%s%s\n",
		    bad ? "not ok" : "ok", i, name, n, slowest,
		    slow[0] != '\0' ? " " : "", slow[0] != '\0' ?
		    strrchr(slow, '/') != NULL ? strrchr(slow, '/') + 1 :
		    slow : "");
		failed += bad != 0;
	}
	return failed != 0;
}
