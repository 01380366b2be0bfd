/*
 * sandbox.c - the parse child: untrusted MIME parsed in a re-executed,
 * resource-limited, seccomp-filtered process.
 *
 * Owns both sides of the pipe protocol in sandbox.h.  Parent side (sandbox_new,
 * sandbox_parse_letter, sandbox_parse_dsn, sandbox_request, sandbox_child_pid,
 * sandbox_free): a child is started lazily (fork, limits, execve of
 * params->program with "-P" and a clean environment), is waited for until it
 * says ready, and then serves requests; every request has one wall-clock
 * deadline covering the write and the answer.  A timeout, an early EOF, a
 * malformed or oversized answer, or a child that cannot be started kills the
 * child (SIGKILL, waitpid) and returns -2; the next request starts a fresh one.
 * Writes never raise SIGPIPE (it is blocked on the calling thread around them
 * and a pending one consumed), so the parent survives a child that dies
 * mid-request whatever the process's disposition.
 *
 * The child inherits stderr (the journal's stream under systemd); with
 * RLIMIT_FSIZE 0 its rare log lines are dropped when stderr is a regular
 * file (SIGXFSZ is ignored so that costs nothing else).
 *
 * Child side (sandbox_child_main): preloads the charset converters, drops
 * RLIMIT_NOFILE to the three standard descriptors, sets no-new-privs and
 * non-dumpable, installs a seccomp filter (raw BPF: read on stdin, write on
 * stdout/stderr, memory management without PROT_EXEC, exit, futex, clocks,
 * signal return; open/openat fail with EACCES; anything else kills the
 * process), then loops: request in, mime_parse_letter() (or for a bounce
 * mime_prefilter() and dsn_parse()), answer out.
 *
 * Test-only ops (sandbox.h) are honoured only when the child's environment
 * has SEALPOST_SANDBOX_TEST_OPS=1, which the parent sets only for params
 * with test_ops; the daemon never does.
 *
 * Error policy: the parent returns 0 / -1 / -2 and fills a struct
 * letter_error; it never logs message content.  The child exits on any
 * protocol error.
 */

#include "build.h"

#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dsn.h"
#include "letter.h"
#include "log.h"
#include "mime.h"
#include "sandbox.h"
#include "util.h"

#define SANDBOX_START_MS	10000	/* exec + init until 'R' */
#define SANDBOX_ENV_MAX		"SEALPOST_SANDBOX_MAX_SIZE"
#define SANDBOX_ENV_TEST	"SEALPOST_SANDBOX_TEST_OPS"
#define SANDBOX_ANSWER_SLACK	(1024 * 1024)
#define SANDBOX_DSN_ANSWER_MAX	65536	/* a report's text is ~13 KB at most */

struct sandbox {
	char		*program;
	int64_t		 memory_limit;
	int64_t		 timeout;
	size_t		 max_size;
	int		 test_ops;

	pid_t		 pid;		/* 0: no child */
	int		 to_child;	/* its stdin */
	int		 from_child;	/* its stdout */
	unsigned int	 served;	/* requests by this child */
	char		*envp[8];
	char		*argv[3];
};

static int	 sb_start(struct sandbox *, struct letter_error *);
static int	 sb_exchange(struct sandbox *, int, const char *, size_t,
		    size_t, char **, size_t *, struct letter_error *);
static void	 sb_served(struct sandbox *);
static void	 sb_kill(struct sandbox *, int *);
static int	 sb_fail(struct sandbox *, struct letter_error *, const char *,
		    const char *);
static int	 sb_wait(int, short, uint64_t);
static int	 sb_write(struct sandbox *, const void *, size_t, uint64_t);
static int	 sb_read(struct sandbox *, void *, size_t, uint64_t);
static int	 sb_read_frame(struct sandbox *, char **, size_t *, size_t,
		    uint64_t);
static size_t	 sb_answer_max(const struct sandbox *);
static int	 sb_error(const char *, size_t, struct letter_error *);
static int	 sb_status(const char *);
static void	 sb_put32(unsigned char *, uint32_t);
static uint32_t	 sb_get32(const unsigned char *);
static void	 child_setup_exec(struct sandbox *, int, int, pid_t)
		    __attribute__((noreturn));
static int	 child_seccomp(void);
static int	 child_read(void *, size_t);
static void	 child_write(const void *, size_t);
static void	 child_answer(int, const char *, size_t);
static void	 child_error(const struct letter_error *);
static void	 child_dsn(const char *, size_t, const struct mime_limits *);
static void	 child_spin(void) __attribute__((noreturn));
static void	 close_from3(void);

/* --- parent --------------------------------------------------------------- */

/* A sandbox; no child runs until the first request. */
struct sandbox *
sandbox_new(const struct sandbox_params *params)
{
	struct sandbox	*sb;
	const char	*pass[] = { "ASAN_OPTIONS", "UBSAN_OPTIONS",
			    "LSAN_OPTIONS" };
	const char	*v;
	size_t		 i, n = 0;

	sb = xcalloc(1, sizeof(*sb));
	sb->program = xstrdup(params->program != NULL ? params->program : "");
	sb->memory_limit = params->memory_limit;
	sb->timeout = params->timeout > 0 ? params->timeout : 10;
	if (sb->timeout > 3600)
		sb->timeout = 3600;
	sb->max_size = params->max_size;
	sb->test_ops = params->test_ops;
	sb->to_child = sb->from_child = -1;

	/* Built here: between fork and exec nothing may allocate. */
	sb->argv[0] = sb->program;
	sb->argv[1] = xstrdup("-P");
	sb->argv[2] = NULL;
	xasprintf(&sb->envp[n++], "%s=%zu", SANDBOX_ENV_MAX, sb->max_size);
	if (sb->test_ops)
		xasprintf(&sb->envp[n++], "%s=1", SANDBOX_ENV_TEST);
	for (i = 0; i < nitems(pass); i++) {
		if ((v = getenv(pass[i])) != NULL && strlen(v) < 4096)
			xasprintf(&sb->envp[n++], "%s=%s", pass[i], v);
	}
	sb->envp[n] = NULL;
	return sb;
}

/* Kill the child, if any, and free everything. */
void
sandbox_free(struct sandbox **sbp)
{
	struct sandbox	*sb = *sbp;
	size_t		 i;

	if (sb == NULL)
		return;
	sb_kill(sb, NULL);
	for (i = 0; i < nitems(sb->envp) && sb->envp[i] != NULL; i++)
		free(sb->envp[i]);
	free(sb->argv[1]);
	free(sb->program);
	free(sb);
	*sbp = NULL;
}

/* The running child's pid, or 0. */
long
sandbox_child_pid(const struct sandbox *sb)
{
	return sb->pid;
}

/* Parse a message in the child. */
int
sandbox_parse_letter(struct sandbox *sb, const char *raw, size_t len,
    struct letter_doc **docp, struct letter_error *err)
{
	return sandbox_request(sb, SANDBOX_OP_PARSE, raw, len, docp, err);
}

/* Send one request and read its document, all within the timeout. */
int
sandbox_request(struct sandbox *sb, int op, const char *raw, size_t len,
    struct letter_doc **docp, struct letter_error *err)
{
	char	*ans = NULL;
	size_t	 alen = 0;
	int	 r;

	*docp = NULL;
	if ((r = sb_exchange(sb, op, raw, len, sb_answer_max(sb), &ans, &alen,
	    err)) != 0)
		return r;
	r = -2;
	if (alen >= 1 && ans[0] == 'D') {
		if (letter_doc_parse(ans + 1, alen - 1, docp, err) == 0)
			r = 0;
		else
			*docp = NULL;
	} else if (alen >= 1 && ans[0] == 'E' &&
	    sb_error(ans + 1, alen - 1, err) == 0)
		r = -1;
	explicit_bzero(ans, alen);
	free(ans);
	if (r == -2)
		return sb_fail(sb, err, "parse_crashed",
		    "the parser answered garbage");
	sb_served(sb);
	return r;
}

/* Read a bounce in the child: a report, or why it is none. */
int
sandbox_parse_dsn(struct sandbox *sb, const char *raw, size_t len,
    struct dsn_report *report, enum dsn_result *result,
    struct letter_error *err)
{
	char	*ans = NULL;
	size_t	 alen = 0;
	int	 r;

	memset(report, 0, sizeof(*report));
	*result = DSN_MALFORMED;
	if ((r = sb_exchange(sb, SANDBOX_OP_DSN, raw, len,
	    SANDBOX_DSN_ANSWER_MAX, &ans, &alen, err)) != 0)
		return r;
	r = -2;
	if (alen >= 1 && ans[0] == 'N') {
		if (dsn_deserialize(ans + 1, alen - 1, report) == 0) {
			*result = DSN_OK;
			r = 0;
		}
	} else if (alen >= 1 && ans[0] == 'E' &&
	    sb_error(ans + 1, alen - 1, err) == 0) {
		/* Not a report: an answer, not a rejection. */
		if (strcmp(err->code, "dsn_not_report") == 0) {
			*result = DSN_NOT_REPORT;
			r = 0;
		} else if (strcmp(err->code, "dsn_malformed") == 0) {
			*result = DSN_MALFORMED;
			r = 0;
		} else
			r = -1;
	}
	explicit_bzero(ans, alen);
	free(ans);
	if (r == -2)
		return sb_fail(sb, err, "parse_crashed",
		    "the parser answered garbage");
	sb_served(sb);
	return r;
}

/*
 * Send one request and read its answer frame (at most max bytes), all
 * within the timeout: 0 and *ansp (malloc'd), -1 (too large: err filled),
 * -2 (no child, or it failed: killed, err filled).
 */
static int
sb_exchange(struct sandbox *sb, int op, const char *raw, size_t len,
    size_t max, char **ansp, size_t *alenp, struct letter_error *err)
{
	unsigned char	 hdr[5];
	uint64_t	 deadline;
	int		 r;

	*ansp = NULL;
	*alenp = 0;
	memset(err, 0, sizeof(*err));
	if (len > sb->max_size || len >= UINT32_MAX - 1) {
		err->status = 413;
		strlcpy_sp(err->code, "too_large", sizeof(err->code));
		snprintf(err->message, sizeof(err->message),
		    "the message is larger than %zu bytes", sb->max_size);
		return -1;
	}
	if (sb->pid == 0 && sb_start(sb, err) != 0)
		return -2;

	deadline = util_now_ms() + (uint64_t)sb->timeout * 1000;
	sb_put32(hdr, (uint32_t)len + 1);
	hdr[4] = (unsigned char)op;
	sb->served++;
	if ((r = sb_write(sb, hdr, sizeof(hdr), deadline)) == 0)
		r = sb_write(sb, raw, len, deadline);
	if (r == 0)
		r = sb_read_frame(sb, ansp, alenp, max, deadline);
	if (r == -2)
		return sb_fail(sb, err, "parse_timeout",
		    "parsing the message took too long");
	if (r != 0)
		return sb_fail(sb, err, "parse_crashed",
		    "the parser failed on the message");
	return 0;
}

/* A request was answered: retire the child after its last one. */
static void
sb_served(struct sandbox *sb)
{
	if (sb->served >= SANDBOX_MAX_REQUESTS)
		sb_kill(sb, NULL);	/* the next request starts a fresh one */
}

/* Fork and exec a child; wait for its 'R'. */
static int
sb_start(struct sandbox *sb, struct letter_error *err)
{
	int	 in[2], out[2];
	pid_t	 parent = getpid(), pid;
	char	*ans = NULL;
	size_t	 alen = 0;
	int	 r;

	if (sb->program[0] == '\0' || pipe2(in, O_CLOEXEC) == -1)
		goto fail;
	if (pipe2(out, O_CLOEXEC) == -1) {
		close(in[0]);
		close(in[1]);
		goto fail;
	}
	if ((pid = fork()) == -1) {
		close(in[0]);
		close(in[1]);
		close(out[0]);
		close(out[1]);
		goto fail;
	}
	if (pid == 0)
		child_setup_exec(sb, in[0], out[1], parent);
	close(in[0]);
	close(out[1]);
	sb->pid = pid;
	sb->to_child = in[1];
	sb->from_child = out[0];
	sb->served = 0;
	if (util_set_nonblock(sb->to_child) == -1 ||
	    util_set_nonblock(sb->from_child) == -1) {
		sb_kill(sb, NULL);
		goto fail;
	}

	r = sb_read_frame(sb, &ans, &alen, 16,
	    util_now_ms() + SANDBOX_START_MS);
	if (r != 0 || alen != 1 || ans[0] != 'R') {
		free(ans);
		sb_kill(sb, NULL);
		goto fail;
	}
	free(ans);
	log_debug("sandbox: child started pid=%ld", (long)pid);
	return 0;

fail:
	log_warnx("sandbox: cannot start the parse child");
	memset(err, 0, sizeof(*err));
	err->status = 503;
	strlcpy_sp(err->code, "sandbox_unavailable", sizeof(err->code));
	strlcpy_sp(err->message, "the parse sandbox could not be started",
	    sizeof(err->message));
	return -1;
}

/* Kill and reap the child; *statusp gets its wait status if asked. */
static void
sb_kill(struct sandbox *sb, int *statusp)
{
	int	 st = 0;
	pid_t	 r;

	if (statusp != NULL)
		*statusp = 0;
	if (sb->to_child != -1)
		close(sb->to_child);
	if (sb->from_child != -1)
		close(sb->from_child);
	sb->to_child = sb->from_child = -1;
	if (sb->pid == 0)
		return;
	kill(sb->pid, SIGKILL);
	do {
		r = waitpid(sb->pid, &st, 0);
	} while (r == -1 && errno == EINTR);
	if (r == sb->pid && statusp != NULL)
		*statusp = st;
	sb->pid = 0;
}

/* The request failed in the child: kill it, say why, return -2. */
static int
sb_fail(struct sandbox *sb, struct letter_error *err, const char *code,
    const char *message)
{
	long	 pid = sb->pid;
	int	 st;

	sb_kill(sb, &st);
	/* A child killed by its CPU limit timed out too. */
	if (WIFSIGNALED(st) && WTERMSIG(st) == SIGXCPU) {
		code = "parse_timeout";
		message = "parsing the message took too long";
	}
	log_warnx("sandbox: child pid=%ld killed code=%s%s%d", pid, code,
	    WIFSIGNALED(st) ? " signal=" : " status=",
	    WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
	memset(err, 0, sizeof(*err));
	err->status = 422;
	strlcpy_sp(err->code, code, sizeof(err->code));
	strlcpy_sp(err->message, message, sizeof(err->message));
	return -2;
}

/* Wait for fd to be ready for `events' until the deadline: 0, -1, -2. */
static int
sb_wait(int fd, short events, uint64_t deadline)
{
	struct pollfd	 pfd;
	uint64_t	 now;
	int		 r;

	for (;;) {
		now = util_now_ms();
		if (now >= deadline)
			return -2;
		pfd.fd = fd;
		pfd.events = events;
		pfd.revents = 0;
		r = poll(&pfd, 1, (int)(deadline - now > INT_MAX ? INT_MAX :
		    deadline - now));
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1)
			return -1;
		if (r == 1)
			return 0;
	}
}

/* Write all of buf to the child: 0, -1 (gone) or -2 (timeout). */
static int
sb_write(struct sandbox *sb, const void *buf, size_t len, uint64_t deadline)
{
	const char		*p = buf;
	sigset_t		 pipeset, old, pending;
	struct timespec		 zero = { 0, 0 };
	ssize_t			 n;
	int			 r = 0, was_pending;

	/* SIGPIPE from write(2) is sent to this thread: block it here. */
	sigemptyset(&pipeset);
	sigaddset(&pipeset, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipeset, &old);
	sigemptyset(&pending);
	sigpending(&pending);
	was_pending = sigismember(&pending, SIGPIPE);

	while (len > 0) {
		n = write(sb->to_child, p, len);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN) {
			if ((r = sb_wait(sb->to_child, POLLOUT, deadline)) != 0)
				break;
			continue;
		}
		r = -1;
		break;
	}

	if (r == -1 && !was_pending) {
		while (sigtimedwait(&pipeset, NULL, &zero) == -1 &&
		    errno == EINTR)
			;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return r;
}

/* Read exactly len bytes from the child: 0, -1 (EOF/error), -2 (timeout). */
static int
sb_read(struct sandbox *sb, void *buf, size_t len, uint64_t deadline)
{
	char	*p = buf;
	ssize_t	 n;
	int	 r;

	while (len > 0) {
		n = read(sb->from_child, p, len);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n == 0)
			return -1;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return -1;
		if ((r = sb_wait(sb->from_child, POLLIN, deadline)) != 0)
			return r;
	}
	return 0;
}

/* Read one frame of at most max bytes into a malloc'd buffer. */
static int
sb_read_frame(struct sandbox *sb, char **bufp, size_t *lenp, size_t max,
    uint64_t deadline)
{
	unsigned char	 hdr[4];
	uint32_t	 n;
	char		*buf;
	int		 r;

	*bufp = NULL;
	*lenp = 0;
	if ((r = sb_read(sb, hdr, sizeof(hdr), deadline)) != 0)
		return r;
	n = sb_get32(hdr);
	if (n == 0 || n > max)
		return -1;
	buf = xmalloc(n);
	if ((r = sb_read(sb, buf, n, deadline)) != 0) {
		explicit_bzero(buf, n);
		free(buf);
		return r;
	}
	*bufp = buf;
	*lenp = n;
	return 0;
}

/*
 * The largest answer believed: the JSON of a document parsed from max_size
 * bytes.  An input byte becomes at most 6 bytes of JSON (a control
 * character escaped as \u00XX; U+FFFD is 3), an attachment byte 4/3.
 */
static size_t
sb_answer_max(const struct sandbox *sb)
{
	size_t	 m = sb->max_size;

	if (m > (UINT32_MAX - SANDBOX_ANSWER_SLACK) / 8)
		return UINT32_MAX;
	return m * 8 + SANDBOX_ANSWER_SLACK;
}

/* Parse an 'E' answer ("code\tmessage") into err: 0 or -1 if malformed. */
static int
sb_error(const char *s, size_t n, struct letter_error *err)
{
	const char	*tab;
	size_t		 clen, i, j;

	if ((tab = memchr(s, '\t', n)) == NULL)
		return -1;
	clen = (size_t)(tab - s);
	if (clen == 0 || clen >= sizeof(err->code))
		return -1;
	for (i = 0; i < clen; i++) {
		if (!((s[i] >= 'a' && s[i] <= 'z') || s[i] == '_'))
			return -1;
	}
	memset(err, 0, sizeof(*err));
	memcpy(err->code, s, clen);
	for (i = clen + 1, j = 0; i < n && j < sizeof(err->message) - 1; i++)
		err->message[j++] = (s[i] >= 32 && s[i] < 127) ? s[i] : '?';
	err->status = sb_status(err->code);
	return 0;
}

/* The HTTP status for a rejection code from the child. */
static int
sb_status(const char *code)
{
	size_t	 n = strlen(code);

	if (strcmp(code, "too_large") == 0 || strcmp(code,
	    "line_too_long") == 0 || (n > 10 && strcmp(code + n - 10,
	    "_too_large") == 0))
		return 413;
	return 422;
}

/* Store a u32 big-endian. */
static void
sb_put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

/* Load a u32 big-endian. */
static uint32_t
sb_get32(const unsigned char *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
	    ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

/*
 * In the forked child: pipes onto 0 and 1, every other descriptor closed,
 * limits, then exec.  Only async-signal-safe calls from here on.
 */
static void
child_setup_exec(struct sandbox *sb, int in, int out, pid_t parent)
{
	struct rlimit	 rl;
	sigset_t	 none;
	rlim_t		 cpu;

	if (prctl(PR_SET_PDEATHSIG, SIGKILL) == -1 || getppid() != parent)
		_exit(127);
	/* A daemon without 0, 1 or 2 may have got its pipes there. */
	if (in < 3 && (in = fcntl(in, F_DUPFD, 3)) == -1)
		_exit(127);
	if (out < 3 && (out = fcntl(out, F_DUPFD, 3)) == -1)
		_exit(127);
	if (dup2(in, 0) == -1 || dup2(out, 1) == -1)
		_exit(127);
	close_from3();
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	/* With RLIMIT_FSIZE 0 a log line to a stderr that is a file fails
	 * (EFBIG) rather than killing the child. */
	signal(SIGXFSZ, SIG_IGN);

	rl.rlim_cur = rl.rlim_max = 0;
	if (setrlimit(RLIMIT_CORE, &rl) == -1 ||
	    setrlimit(RLIMIT_FSIZE, &rl) == -1)
		_exit(127);
	cpu = (rlim_t)sb->timeout * SANDBOX_MAX_REQUESTS + 10;
	rl.rlim_cur = rl.rlim_max = cpu;
	if (setrlimit(RLIMIT_CPU, &rl) == -1)
		_exit(127);
#ifndef SEALPOST_ASAN
	if (sb->memory_limit > 0) {
		rl.rlim_cur = rl.rlim_max = (rlim_t)sb->memory_limit;
		if (setrlimit(RLIMIT_AS, &rl) == -1)
			_exit(127);
	}
#endif
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1)
		_exit(127);
	execve(sb->program, sb->argv, sb->envp);
	_exit(127);
}

/* Close every descriptor from 3 up (async-signal-safe). */
static void
close_from3(void)
{
	int	 fd;

#ifdef SYS_close_range
	if (syscall(SYS_close_range, 3U, ~0U, 0) == 0)
		return;
#endif
	for (fd = 3; fd < 65536; fd++)
		close(fd);
}

/* --- child ---------------------------------------------------------------- */

/* The parse child's main loop (sealpostd -P). */
void
sandbox_child_main(void)
{
	struct mime_limits	 lim;
	struct letter_doc	*doc;
	struct letter_error	 err;
	struct rlimit		 rl;
	unsigned char		 hdr[4];
	const char		*v;
	char			*req, *json;
	size_t			 n, jlen, maxreq;
	int64_t			 max;
	int			 test_ops, r;

	/* Never the journal's socket: the filter allows no connect(2). */
	log_init("sealpost-parse", LOG_TO_STDERR, log_get_debug());
	signal(SIGPIPE, SIG_IGN);	/* a parent gone: EPIPE, then exit */
	signal(SIGXFSZ, SIG_IGN);	/* stderr a file: EFBIG, not death */
	mime_limits_default(&lim);
	if ((v = getenv(SANDBOX_ENV_MAX)) != NULL &&
	    util_parse_i64(v, 1, INT32_MAX, &max) == 0)
		lim.max_size = lim.max_attachment_size = (size_t)max;
	maxreq = lim.max_size + 1;
	test_ops = (v = getenv(SANDBOX_ENV_TEST)) != NULL &&
	    strcmp(v, "1") == 0;

	mime_init();		/* opens gconv modules: before the lockdown */
	close_from3();
	rl.rlim_cur = rl.rlim_max = 3;
	if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
		_exit(2);
	rl.rlim_cur = rl.rlim_max = 0;
	if (setrlimit(RLIMIT_FSIZE, &rl) == -1 ||
	    setrlimit(RLIMIT_CORE, &rl) == -1)
		_exit(2);
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == -1 ||
	    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1)
		_exit(2);
	if (child_seccomp() != 0) {
		if (errno != EINVAL && errno != ENOSYS)
			_exit(2);
		log_warnx("sandbox: no seccomp in this kernel; parsing "
		    "without a syscall filter");
	}
	child_answer('R', NULL, 0);

	for (;;) {
		if ((r = child_read(hdr, sizeof(hdr))) == 1)
			_exit(0);	/* the parent closed: done */
		if (r != 0)
			_exit(2);
		n = sb_get32(hdr);
		if (n == 0 || n > maxreq)
			_exit(2);
		req = xmalloc(n + 1);
		/* The op first: a refused op ends the child at once. */
		if (child_read(req, 1) != 0)
			_exit(2);
		if (req[0] != SANDBOX_OP_PARSE && req[0] != SANDBOX_OP_DSN &&
		    !test_ops)
			_exit(2);
		if (child_read(req + 1, n - 1) != 0)
			_exit(2);
		req[n] = '\0';

		switch (req[0]) {
		case SANDBOX_OP_PARSE:
			r = mime_parse_letter(req + 1, n - 1, &lim, &doc, &err);
			break;
		case SANDBOX_OP_DSN:
			child_dsn(req + 1, n - 1, &lim);
			explicit_bzero(req, n);
			free(req);
			continue;
		case SANDBOX_OP_TEST_UNFILTERED:
			r = mime_parse_letter_unfiltered(req + 1, n - 1, &lim,
			    &doc, &err);
			break;
		case SANDBOX_OP_TEST_SPIN:
			child_spin();
		default:
			_exit(2);
		}
		explicit_bzero(req, n);
		free(req);

		if (r == 0) {
			json = letter_doc_serialize(doc, &jlen);
			letter_doc_free(&doc);
			child_answer('D', json, jlen);
			explicit_bzero(json, jlen);
			free(json);
		} else
			child_error(&err);
	}
}

/* A bounce: the prefilter, then the report or why there is none. */
static void
child_dsn(const char *raw, size_t len, const struct mime_limits *lim)
{
	struct dsn_report	 rep;
	struct letter_error	 err;
	enum dsn_result		 res;
	const char		*why = NULL;
	char			*text;
	size_t			 tlen;

	if (mime_prefilter(raw, len, lim, &err) != 0) {
		child_error(&err);
		return;
	}
	res = dsn_parse(raw, len, &rep, &why);
	if (res == DSN_OK && (text = dsn_serialize(&rep, &tlen)) != NULL) {
		child_answer('N', text, tlen);
		free(text);
		return;
	}
	memset(&err, 0, sizeof(err));
	strlcpy_sp(err.code, res == DSN_NOT_REPORT ? "dsn_not_report" :
	    "dsn_malformed", sizeof(err.code));
	strlcpy_sp(err.message, res == DSN_OK ? "the report has no text form" :
	    why != NULL ? why : "the report is unusable", sizeof(err.message));
	child_error(&err);
}

/* Answer 'E' with "code\tmessage". */
static void
child_error(const struct letter_error *err)
{
	char	 line[sizeof(err->code) + sizeof(err->message) + 2];
	size_t	 n;

	n = (size_t)snprintf(line, sizeof(line), "%s\t%s", err->code,
	    err->message);
	child_answer('E', line, n < sizeof(line) ? n : sizeof(line) - 1);
}

/* Read exactly len bytes from stdin: 0, 1 on EOF before any byte, -1. */
static int
child_read(void *buf, size_t len)
{
	char	*p = buf;
	size_t	 got = 0;
	ssize_t	 n;

	while (got < len) {
		n = read(0, p + got, len - got);
		if (n > 0)
			got += (size_t)n;
		else if (n == 0)
			return got == 0 ? 1 : -1;
		else if (errno != EINTR)
			return -1;
	}
	return 0;
}

/* Write all of buf to stdout, or exit. */
static void
child_write(const void *buf, size_t len)
{
	const char	*p = buf;
	ssize_t		 n;

	while (len > 0) {
		n = write(1, p, len);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
		} else if (n == -1 && errno == EINTR)
			continue;
		else
			_exit(0);	/* the parent is gone */
	}
}

/* Write one answer frame: status byte, then the payload. */
static void
child_answer(int status, const char *payload, size_t len)
{
	unsigned char	 hdr[5];

	if (len >= UINT32_MAX - 1)
		_exit(2);
	sb_put32(hdr, (uint32_t)len + 1);
	hdr[4] = (unsigned char)status;
	child_write(hdr, sizeof(hdr));
	if (len > 0)
		child_write(payload, len);
}

/* Test op: burn CPU until killed. */
static void
child_spin(void)
{
	volatile unsigned long	 n = 0;

	for (;;)
		n++;
}

/*
 * The syscall filter.  Allowed: read(0), write(1 or 2), memory management
 * without PROT_EXEC, exit, futex, clocks, signal return and the calls
 * abort() makes; open/openat fail with EACCES (a converter glibc would
 * still load fails cleanly); anything else kills the process.
 */
#if defined(__x86_64__)
#define SB_AUDIT_ARCH	AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define SB_AUDIT_ARCH	AUDIT_ARCH_AARCH64
#endif

#define SB_ARG_LO(n)	(offsetof(struct seccomp_data, args[n]) + \
			    (__BYTE_ORDER__ == __ORDER_BIG_ENDIAN__ ? 4 : 0))
#define SB_LD_NR	BPF_STMT(BPF_LD | BPF_W | BPF_ABS, \
			    offsetof(struct seccomp_data, nr))
#define SB_RET(v)	BPF_STMT(BPF_RET | BPF_K, (v))
#define SB_ALLOW(nr)	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1), \
			SB_RET(SECCOMP_RET_ALLOW)
#define SB_ERRNO(nr, e)	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1), \
			SB_RET(SECCOMP_RET_ERRNO | ((e) & SECCOMP_RET_DATA))
/* Allow nr only when argument 0 is fd. */
#define SB_ALLOW_FD(nr, fd) \
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 4), \
	BPF_STMT(BPF_LD | BPF_W | BPF_ABS, SB_ARG_LO(0)), \
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (fd), 1, 0), \
	SB_RET(SECCOMP_RET_KILL_PROCESS), \
	SB_RET(SECCOMP_RET_ALLOW)
/* Allow nr only when argument 0 is fd1 or fd2. */
#define SB_ALLOW_FD2(nr, fd1, fd2) \
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 5), \
	BPF_STMT(BPF_LD | BPF_W | BPF_ABS, SB_ARG_LO(0)), \
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (fd1), 2, 0), \
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (fd2), 1, 0), \
	SB_RET(SECCOMP_RET_KILL_PROCESS), \
	SB_RET(SECCOMP_RET_ALLOW)
/* Allow nr only when argument 2 (prot) has no PROT_EXEC. */
#define SB_ALLOW_NOEXEC(nr) \
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 4), \
	BPF_STMT(BPF_LD | BPF_W | BPF_ABS, SB_ARG_LO(2)), \
	BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, 0x4 /* PROT_EXEC */, 0, 1), \
	SB_RET(SECCOMP_RET_KILL_PROCESS), \
	SB_RET(SECCOMP_RET_ALLOW)

/* Install the filter: 0, or -1 with errno. */
static int
child_seccomp(void)
{
#ifdef SB_AUDIT_ARCH
	struct sock_filter filter[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
		    offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SB_AUDIT_ARCH, 1, 0),
		SB_RET(SECCOMP_RET_KILL_PROCESS),
		SB_LD_NR,
#ifdef __x86_64__
		/* No x32 syscalls. */
		BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000, 0, 1),
		SB_RET(SECCOMP_RET_KILL_PROCESS),
#endif
		SB_ALLOW_FD(SYS_read, 0),
		SB_ALLOW_FD2(SYS_write, 1, 2),
		SB_ALLOW_NOEXEC(SYS_mmap),
		SB_ALLOW_NOEXEC(SYS_mprotect),
		SB_ALLOW(SYS_munmap),
		SB_ALLOW(SYS_mremap),
		SB_ALLOW(SYS_brk),
		SB_ALLOW(SYS_madvise),
		SB_ALLOW(SYS_exit),
		SB_ALLOW(SYS_exit_group),
		SB_ALLOW(SYS_rt_sigreturn),
		SB_ALLOW(SYS_rt_sigprocmask),
		SB_ALLOW(SYS_futex),
		SB_ALLOW(SYS_clock_gettime),
		SB_ALLOW(SYS_gettimeofday),
		SB_ALLOW(SYS_getrandom),
		SB_ALLOW(SYS_lseek),
		SB_ALLOW(SYS_fstat),
		SB_ALLOW(SYS_newfstatat),
		SB_ALLOW(SYS_close),
		SB_ALLOW(SYS_getpid),
		SB_ALLOW(SYS_gettid),
		SB_ALLOW(SYS_tgkill),
#ifdef SEALPOST_ASAN
		/* The sanitizer runtime's own calls (ioctl: its reports). */
		SB_ALLOW(SYS_sched_yield),
		SB_ALLOW(SYS_sigaltstack),
		SB_ALLOW(SYS_ioctl),
#endif
		SB_ERRNO(SYS_openat, EACCES),
#ifdef SYS_open
		SB_ERRNO(SYS_open, EACCES),
#endif
		SB_RET(SECCOMP_RET_KILL_PROCESS),
	};
	struct sock_fprog prog = {
		.len = (unsigned short)nitems(filter),
		.filter = filter,
	};

	return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0);
#else
	errno = ENOSYS;
	return -1;
#endif
}
