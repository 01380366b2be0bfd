/*
 * test_lmtp.c - unit tests of the session state machine in LMTP mode
 * (src/smtpd_session.c, RFC 2033), one session on a socketpair driven by
 * this program's event loop, with a test processor in place of the intake
 * pool: LHLO, EHLO/HELO/AUTH/STARTTLS refused, pipelining (before DATA and
 * after the final dot), per-recipient replies in RCPT order written only
 * once the job is done, the DATA reader's bounds (bare CR/LF, NUL,
 * smuggling, long line, header, size) answered once per recipient, RSET,
 * QUIT, 452 beyond the recipient bound, 552 for SIZE and for the data,
 * per-recipient refusals not counted as client errors, a client leaving
 * (and a forced teardown) while its job is in flight, drain, timeout.
 * The listener over TCP and a real LMTP client are tests/test_lmtpd.c.
 */
#include "build.h"

#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "intake.h"
#include "log.h"
#include "smtpd_session.h"
#include "util.h"

#include "tap.h"

#define HOST		"lmtp.test"
#define MAX_SIZE	4000
#define MAX_LINE	1000
#define MAX_HEADER	600
#define MAX_RCPTS	3

/* ---- the test processor ------------------------------------------------ */

struct proc {
	struct event_base *base;
	int		 hold;		/* keep jobs until proc_complete() */
	struct intake_job *held[8];
	size_t		 nheld;
	int		 njobs;		/* submitted */
	int		 nfreed;
	char		 raw[8192];	/* the last job's message */
	size_t		 rawlen;
	char		 rcpts[1024];	/* the last job's recipients, "," */
};

static struct proc	 proc;

/*
 * The result for one recipient by its local part: ok* filed (250),
 * tmp* 451, no* 550, bad* an invalid code (the session must say 451).
 */
static void
proc_result(const char *rcpt, struct intake_result *r)
{
	memset(r, 0, sizeof *r);
	if (strncmp(rcpt, "ok", 2) == 0) {
		r->outcome = INTAKE_FILED;
		r->smtp_code = 250;
		snprintf(r->smtp_text, sizeof r->smtp_text,
		    "2.0.0 reply filed");
	} else if (strncmp(rcpt, "tmp", 3) == 0) {
		r->outcome = INTAKE_TEMPFAIL;
		r->smtp_code = 451;
		snprintf(r->smtp_text, sizeof r->smtp_text,
		    "4.3.0 try again\r\nlater");	/* must be sanitized */
	} else if (strncmp(rcpt, "no", 2) == 0) {
		r->outcome = INTAKE_REFUSED;
		r->smtp_code = 550;
		snprintf(r->smtp_text, sizeof r->smtp_text,
		    "5.1.1 no such reply address");
	} else {
		r->outcome = INTAKE_TEMPFAIL;
		r->smtp_code = 354;
	}
}

static void
proc_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct intake_job *job = arg;

	(void)fd;
	(void)what;
	job->done(job, job->arg);
}

/* submit(): fill the results; done() runs from the loop, later. */
static void
proc_submit(struct intake_job *job, void *arg)
{
	struct proc	*p = arg;
	struct timeval	 tv = { 0, 0 };
	size_t		 i, off = 0;

	p->njobs++;
	p->rawlen = job->len < sizeof p->raw ? job->len : sizeof p->raw;
	memcpy(p->raw, job->raw, p->rawlen);
	p->rcpts[0] = '\0';
	job->results = xcalloc(job->nrcpts, sizeof *job->results);
	for (i = 0; i < job->nrcpts; i++) {
		off += (size_t)snprintf(p->rcpts + off, sizeof p->rcpts - off,
		    "%s%s", i ? "," : "", job->rcpts[i]);
		proc_result(job->rcpts[i], &job->results[i]);
	}
	if (p->hold && p->nheld < nitems(p->held))
		p->held[p->nheld++] = job;
	else
		event_base_once(p->base, -1, EV_TIMEOUT, proc_done_cb, job,
		    &tv);
}

/* Run done() of every held job, in order. */
static void
proc_complete(void)
{
	size_t	 i, n = proc.nheld;

	proc.nheld = 0;
	for (i = 0; i < n; i++)
		proc.held[i]->done(proc.held[i], proc.held[i]->arg);
}

static void
proc_job_free(struct intake_job **jp)
{
	struct intake_job *job = *jp;
	size_t		 i;

	if (job == NULL)
		return;
	*jp = NULL;
	proc.nfreed++;
	free(job->raw);
	for (i = 0; i < job->nrcpts; i++)
		free(job->rcpts[i]);
	free(job->rcpts);
	free(job->results);
	free(job);
}

/* ---- a session on a socketpair ----------------------------------------- */

struct conn {
	struct smtpd_session_env env;
	struct smtpd_session *s;
	int		 fd;		/* the client's end */
	int		 gone;		/* env.gone ran */
	int		 eof;		/* the session closed the socket */
	char		 in[65536];	/* replies not yet taken */
	size_t		 inlen;
};

static void
conn_gone(void *arg)
{
	struct conn	*c = arg;

	c->gone++;
	c->s = NULL;
}

static void
conn_open(struct conn *c, int64_t timeout)
{
	int	 sv[2];

	memset(c, 0, sizeof *c);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
		log_fatal("socketpair");
	evutil_make_socket_nonblocking(sv[0]);
	evutil_make_socket_nonblocking(sv[1]);
	c->env.hostname = HOST;
	c->env.gone = conn_gone;
	c->env.lmtp = 1;
	c->env.base = proc.base;
	c->env.timeout = timeout;
	c->env.max_line = MAX_LINE;
	c->env.max_header = MAX_HEADER;
	c->env.max_size = MAX_SIZE;
	c->env.max_rcpts = MAX_RCPTS;
	c->env.submit = proc_submit;
	c->env.submit_arg = &proc;
	c->env.job_free = proc_job_free;
	c->fd = sv[1];
	c->s = smtpd_session_new(&c->env, sv[0], NULL, 0, c);
}

static uint64_t
now_ms(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Number of final reply lines ("ddd " ... CRLF) in the buffer. */
static int
conn_finals(struct conn *c)
{
	size_t	 i, bol = 0;
	int	 n = 0;

	for (i = 0; i < c->inlen; i++) {
		if (c->in[i] != '\n')
			continue;
		if (i - bol >= 4 && c->in[bol + 3] == ' ')
			n++;
		bol = i + 1;
	}
	return n;
}

/* One turn: run the loop, read what the session wrote. */
static void
conn_turn(struct conn *c)
{
	ssize_t	 n;

	event_base_loop(proc.base, EVLOOP_NONBLOCK);
	while (!c->eof && c->inlen < sizeof c->in - 1) {
		n = read(c->fd, c->in + c->inlen, sizeof c->in - 1 - c->inlen);
		if (n > 0)
			c->inlen += (size_t)n;
		else if (n == 0)
			c->eof = 1;
		else
			break;
	}
	c->in[c->inlen] = '\0';
}

/*
 * Send bytes (while the loop runs), then collect until `want' final
 * replies (or EOF, or ms passed).  Returns the final replies seen.
 */
static int
conn_talk(struct conn *c, const char *buf, size_t len, int want, int ms)
{
	uint64_t	 end = now_ms() + (uint64_t)ms;
	size_t		 off = 0;
	ssize_t		 n;

	while (off < len && now_ms() < end) {
		n = write(c->fd, buf + off, len - off);
		if (n > 0)
			off += (size_t)n;
		else if (n < 0 && errno != EAGAIN)
			break;
		conn_turn(c);
	}
	for (;;) {
		conn_turn(c);
		if (conn_finals(c) >= want || c->eof || now_ms() >= end)
			break;
		usleep(1000);
	}
	return conn_finals(c);
}

static int
conn_say(struct conn *c, const char *s, int want)
{
	return conn_talk(c, s, strlen(s), want, 3000);
}

/* Take the replies so far: the reply codes, "250 250 451", and clear. */
static void
conn_take(struct conn *c, char *codes, size_t sz, char *text, size_t tsz)
{
	size_t	 i, bol = 0, off = 0;

	codes[0] = '\0';
	if (text != NULL)
		strlcpy_sp(text, c->in, tsz);
	for (i = 0; i < c->inlen; i++) {
		if (c->in[i] != '\n')
			continue;
		if (i - bol >= 4 && c->in[bol + 3] == ' ' && off + 5 < sz)
			off += (size_t)snprintf(codes + off, sz - off, "%s%.3s",
			    off ? " " : "", c->in + bol);
		bol = i + 1;
	}
	c->inlen = 0;
	c->in[0] = '\0';
}

/* Close the client's end and run the loop until the session is gone
 * (or ms passed: a session waiting for its job stays). */
static void
conn_drop(struct conn *c, int ms)
{
	uint64_t	 end = now_ms() + (uint64_t)ms;

	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	while (!c->gone && now_ms() < end) {
		event_base_loop(proc.base, EVLOOP_NONBLOCK);
		usleep(1000);
	}
}

static void
conn_close(struct conn *c)
{
	conn_drop(c, 2000);
}

/* Greeted and LHLO done. */
static void
conn_ready(struct conn *c)
{
	char	 codes[64];

	conn_open(c, 30);
	conn_say(c, "LHLO mx.test\r\n", 2);
	conn_take(c, codes, sizeof codes, NULL, 0);
}

/* ---- tests ------------------------------------------------------------ */

static void
test_greeting_and_verbs(void)
{
	struct conn	 c;
	char		 codes[128], text[2048];

	conn_open(&c, 30);
	conn_say(&c, "", 1);
	conn_take(&c, codes, sizeof codes, text, sizeof text);
	is_str(text, "220 " HOST " LMTP sealpost\r\n", "greeting says LMTP");

	conn_say(&c, "MAIL FROM:<a@b.example>\r\n", 1);
	conn_take(&c, codes, sizeof codes, text, sizeof text);
	is_str(text, "503 5.5.1 send LHLO first\r\n", "MAIL before LHLO");

	conn_say(&c, "EHLO mx.test\r\nHELO mx.test\r\n", 2);
	conn_take(&c, codes, sizeof codes, text, sizeof text);
	is_str(codes, "500 500", "EHLO and HELO are 500 in LMTP");

	conn_say(&c, "LHLO\r\n", 1);
	conn_take(&c, codes, sizeof codes, NULL, 0);
	is_str(codes, "501", "LHLO without a name: 501");

	conn_say(&c, "LHLO mx.test\r\n", 1);
	conn_take(&c, codes, sizeof codes, text, sizeof text);
	is_str(text, "250-" HOST "\r\n250-PIPELINING\r\n"
	    "250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250 SIZE 4000\r\n",
	    "LHLO lists PIPELINING, ENHANCEDSTATUSCODES, 8BITMIME, SIZE");

	conn_say(&c, "STARTTLS\r\nAUTH PLAIN AGEAYgA=\r\nEHLO x\r\n", 3);
	conn_take(&c, codes, sizeof codes, NULL, 0);
	is_str(codes, "500 500 500", "STARTTLS, AUTH, EHLO after LHLO: 500");
	conn_say(&c, "QUIT\r\n", 1);
	conn_close(&c);

	/* a second session: the first has used 7 of its 10 errors */
	conn_ready(&c);
	conn_say(&c, "NOOP\r\nVRFY x\r\nHELP\r\nEXPN x\r\nFOO\r\n", 5);
	conn_take(&c, codes, sizeof codes, NULL, 0);
	is_str(codes, "250 252 214 502 500", "NOOP VRFY HELP EXPN unknown");

	conn_say(&c, "DATA\r\n", 1);
	conn_take(&c, codes, sizeof codes, NULL, 0);
	is_str(codes, "503", "DATA without MAIL: 503");

	conn_say(&c, "MAIL FROM:<a@b.example>\r\nDATA\r\n", 2);
	conn_take(&c, codes, sizeof codes, text, sizeof text);
	is_str(text, "250 2.1.0 Ok\r\n503 5.5.1 no valid recipients\r\n",
	    "DATA without a successful RCPT: 503 (RFC 2033 4.2)");

	conn_say(&c, "RCPT TO:<no brackets@x>\r\nRCPT TO:ok@x\r\n"
	    "RCPT TO:<ok@x> NOTIFY=NEVER\r\nRCPT TO:<>\r\n", 4);
	conn_take(&c, codes, sizeof codes, NULL, 0);
	is_str(codes, "501 501 555 501", "bad RCPT syntax and parameters");

	conn_say(&c, "QUIT\r\n", 1);
	conn_take(&c, codes, sizeof codes, NULL, 0);
	is_str(codes, "221", "QUIT: 221");
	conn_talk(&c, "", 0, 99, 1000);
	ok(c.eof, "the session closes after QUIT");
	conn_close(&c);
	ok(c.gone == 1, "gone() ran once");
}

static void
test_transaction(void)
{
	struct conn	 c;
	char		 codes[128], text[2048];
	int		 jobs = proc.njobs;
	const char	*msg = "From: p@example.org\r\nSubject: hi\r\n\r\n"
			    "..stuffed\r\nline\r\n.\r\n";
	static const char want[] = "From: p@example.org\r\nSubject: hi\r\n"
			    "\r\n.stuffed\r\nline\r\n";

	conn_ready(&c);
	/* one pipelined group ending with DATA (RFC 2920) */
	conn_say(&c, "MAIL FROM:<bounce@example.org> BODY=8BITMIME SIZE=100\r\n"
	    "RCPT TO:<ok1@Reply.Example>\r\nRCPT TO:<tmp2@reply.example>\r\n"
	    "RCPT TO:<no3@reply.example>\r\nDATA\r\n", 5);
	conn_take(&c, codes, sizeof codes, NULL, 0);
	is_str(codes, "250 250 250 250 354", "pipelined MAIL, 3 RCPT, DATA");

	proc.hold = 1;
	conn_talk(&c, msg, strlen(msg), 1, 300);
	conn_take(&c, codes, sizeof codes, NULL, 0);
	is_str(codes, "", "no reply before the job is done");
	ok(proc.njobs == jobs + 1, "one job for three recipients");
	ok(proc.rawlen == sizeof(want) - 1 &&
	    memcmp(proc.raw, want, sizeof(want) - 1) == 0,
	    "the job has the message, unstuffed, without the final dot");
	is_str(proc.rcpts, "ok1@reply.example,tmp2@reply.example,"
	    "no3@reply.example", "the job has the recipients in RCPT order");

	/* commands pipelined after the final dot wait for the answer */
	conn_talk(&c, "RSET\r\nNOOP\r\n", 12, 1, 200);
	ok(conn_finals(&c) == 0, "pipelined RSET waits for the job");
	proc.hold = 0;
	proc_complete();
	conn_say(&c, "", 5);
	conn_take(&c, codes, sizeof codes, text, sizeof text);
	is_str(text, "250 2.0.0 reply filed\r\n451 4.3.0 try again??later\r\n"
	    "550 5.1.1 no such reply address\r\n250 2.0.0 Ok\r\n"
	    "250 2.0.0 Ok\r\n",
	    "one reply per recipient in order, then RSET and NOOP");

	/* invalid reply code from the processor */
	conn_say(&c, "MAIL FROM:<>\r\nRCPT TO:<bad@x.example>\r\n"
	    "RCPT TO:<ok@x.example>\r\nDATA\r\n", 4);
	conn_say(&c, "x\r\n.\r\n", 6);
	conn_take(&c, codes, sizeof codes, NULL, 0);
	is_str(codes, "250 250 250 354 451 250",
	    "a result without a final code is 451");

	/* too many recipients */
	conn_say(&c, "MAIL FROM:<>\r\nRCPT TO:<ok1@x.example>\r\n"
	    "RCPT TO:<ok2@x.example>\r\nRCPT TO:<ok3@x.example>\r\n"
	    "RCPT TO:<ok4@x.example>\r\nDATA\r\n", 6);
	conn_take(&c, codes, sizeof codes, text, sizeof text);
	is_str(codes, "250 250 250 250 452 354", "4th RCPT: 452");
	ok(strstr(text, "452 4.5.3 too many recipients\r\n") != NULL,
	    "452 4.5.3");
	conn_say(&c, "x\r\n.\r\n", 3);
	conn_take(&c, codes, sizeof codes, NULL, 0);
	is_str(codes, "250 250 250", "three replies for three accepted");
	is_str(proc.rcpts, "ok1@x.example,ok2@x.example,ok3@x.example",
	    "the refused recipient is not in the job");

	/* RSET forgets the transaction */
	conn_say(&c, "MAIL FROM:<>\r\nRCPT TO:<ok@x.example>\r\nRSET\r\n"
	    "DATA\r\n", 4);
	conn_take(&c, codes, sizeof codes, NULL, 0);
	is_str(codes, "250 250 250 503", "RSET: DATA is out of sequence");

	/* per-recipient refusals are not client errors (limit 10) */
	{
		int i, all = 1;

		for (i = 0; i < 5; i++) {
			conn_say(&c, "MAIL FROM:<>\r\n"
			    "RCPT TO:<no1@x.example>\r\n"
			    "RCPT TO:<no2@x.example>\r\n"
			    "RCPT TO:<no3@x.example>\r\nDATA\r\n", 5);
			conn_say(&c, "x\r\n.\r\n", 8);
			conn_take(&c, codes, sizeof codes, NULL, 0);
			if (strcmp(codes, "250 250 250 250 354 550 550 550"))
				all = 0;
		}
		ok(all, "15 refused recipients in 5 transactions");
		conn_say(&c, "NOOP\r\n", 1);
		conn_take(&c, codes, sizeof codes, NULL, 0);
		is_str(codes, "250", "the session is still open after them");
	}
	conn_say(&c, "QUIT\r\n", 1);
	conn_close(&c);
	ok(c.gone == 1, "session gone after QUIT");
}

/* Send MAIL + n RCPT ok + DATA, then the body; return the codes. */
static void
data_case(const char *name, const char *body, size_t len, int nrcpt,
    const char *want)
{
	struct conn	 c;
	char		 codes[128], cmds[512];
	int		 i, jobs = proc.njobs;
	size_t		 off;

	conn_ready(&c);
	off = (size_t)snprintf(cmds, sizeof cmds, "MAIL FROM:<>\r\n");
	for (i = 0; i < nrcpt; i++)
		off += (size_t)snprintf(cmds + off, sizeof cmds - off,
		    "RCPT TO:<ok%d@x.example>\r\n", i);
	snprintf(cmds + off, sizeof cmds - off, "DATA\r\n");
	conn_say(&c, cmds, nrcpt + 2);
	conn_take(&c, codes, sizeof codes, NULL, 0);
	conn_talk(&c, body, len, nrcpt, 3000);
	conn_say(&c, "NOOP\r\n", nrcpt + 1);
	conn_take(&c, codes, sizeof codes, NULL, 0);
	is_str(codes, want, "%s", name);
	ok(proc.njobs == jobs + (strncmp(want, "250", 3) == 0),
	    "%s: %s the intake", name, strncmp(want, "250", 3) == 0 ?
	    "handed to" : "not handed to");
	conn_say(&c, "QUIT\r\n", 1);
	conn_close(&c);
}

#define DATA_CASE(name, lit, nrcpt, want) \
	data_case(name, lit, sizeof(lit) - 1, nrcpt, want)

static void
test_data_bounds(void)
{
	char	*big;
	size_t	 i;
	struct conn c;
	char	 codes[128];

	DATA_CASE("clean message", "a: b\r\n\r\nbody\r\n.\r\n", 2,
	    "250 250 250");
	DATA_CASE("bare LF", "a: b\r\n\r\nbo\ndy\r\n.\r\n", 2,
	    "550 550 250");
	DATA_CASE("bare CR", "a: b\r\n\r\nbo\rdy\r\n.\r\n", 2,
	    "550 550 250");
	DATA_CASE("NUL", "a: b\r\n\r\nbo\0dy\r\n.\r\n", 2,
	    "554 554 250");
	/* "\n.\n" does not end the data: the commands after it are text */
	DATA_CASE("smuggling LF.LF",
	    "a: b\r\n\r\nx\n.\nMAIL FROM:<>\r\nRCPT TO:<ok@y>\r\nDATA\r\n"
	    "y\r\n.\r\n", 1, "550 250");
	DATA_CASE("smuggling CR.CR", "a: b\r\n\r\nx\r.\rRSET\r\n.\r\n",
	    2, "550 550 250");

	big = xmalloc(MAX_SIZE * 2);
	/* one body line over max_line */
	memcpy(big, "a: b\r\n\r\n", 8);
	memset(big + 8, 'x', MAX_LINE);
	memcpy(big + 8 + MAX_LINE, "\r\n.\r\n", 5);
	data_case("line over max_line", big, 8 + MAX_LINE + 5, 2,
	    "500 500 250");
	/* a header section over max_header: 20 fields of 40 bytes */
	for (i = 0; i < 20; i++)
		memcpy(big + i * 40,
		    "X-Filler: 012345678901234567890123456a\r\n", 40);
	memcpy(big + 800, "\r\nb\r\n.\r\n", 8);
	data_case("header over max_header", big, 808, 2, "552 552 250");
	/* a message over max_size, in short lines */
	memcpy(big, "a: b\r\n\r\n", 8);
	for (i = 8; i + 10 <= MAX_SIZE + 100; i += 10)
		memcpy(big + i, "01234567\r\n", 10);
	memcpy(big + i, ".\r\n", 3);
	data_case("message over max_size", big, i + 3, 3,
	    "552 552 552 250");
	free(big);

	/* SIZE= over the bound in MAIL */
	conn_ready(&c);
	conn_say(&c, "MAIL FROM:<> SIZE=4001\r\nMAIL FROM:<> SIZE=4000\r\n",
	    2);
	conn_take(&c, codes, sizeof codes, NULL, 0);
	is_str(codes, "552 250", "MAIL SIZE over max_size: 552");
	/* bytes after DATA before 354: improper pipelining */
	conn_say(&c, "RCPT TO:<ok@x.example>\r\nDATA\r\nx\r\n", 3);
	conn_take(&c, codes, sizeof codes, NULL, 0);
	is_str(codes, "250 554", "data pipelined after DATA: 554, closed");
	conn_talk(&c, "", 0, 99, 500);
	ok(c.eof, "the session closed");
	conn_close(&c);
	/* a command line over 512 bytes */
	conn_ready(&c);
	big = xmalloc(700);
	memset(big, 'N', 600);
	memcpy(big + 600, "\r\nNOOP\r\n", 8);
	conn_talk(&c, big, 608, 2, 3000);
	conn_take(&c, codes, sizeof codes, NULL, 0);
	is_str(codes, "500 250", "command line over 512: 500, then on");
	free(big);
	conn_close(&c);
}

static void
test_disconnect_in_flight(void)
{
	struct conn	 c;
	char		 codes[128];
	int		 freed;

	/* the client leaves while the job is in the intake */
	conn_ready(&c);
	proc.hold = 1;
	conn_say(&c, "MAIL FROM:<>\r\nRCPT TO:<ok@x.example>\r\n"
	    "RCPT TO:<no@x.example>\r\nDATA\r\n", 4);
	conn_talk(&c, "x\r\n.\r\n", 6, 1, 200);
	ok(proc.nheld == 1, "job in flight");
	conn_drop(&c, 300);
	ok(c.gone == 0, "the session waits for its job");
	freed = proc.nfreed;
	proc.hold = 0;
	proc_complete();
	ok(proc.nfreed == freed + 1, "done() after the client left frees "
	    "the job");
	conn_drop(&c, 2000);
	ok(c.gone == 1, "and the session ends (its replies go nowhere)");

	/* forced teardown (listener stop) while the job is in flight */
	conn_ready(&c);
	proc.hold = 1;
	conn_say(&c, "MAIL FROM:<>\r\nRCPT TO:<ok@x.example>\r\nDATA\r\n", 3);
	conn_talk(&c, "x\r\n.\r\n", 6, 1, 200);
	conn_take(&c, codes, sizeof codes, NULL, 0);
	smtpd_session_free(&c.s);
	ok(c.s == NULL, "session freed by force");
	freed = proc.nfreed;
	proc.hold = 0;
	proc_complete();
	ok(proc.nfreed == freed + 1 && c.gone == 0,
	    "done() after the teardown frees the job only");
	close(c.fd);
}

static void
test_drain_and_timeout(void)
{
	struct conn	 c;
	char		 codes[128], text[512];

	/* idle: shutdown says 421 */
	conn_ready(&c);
	ok(smtpd_session_shutdown(c.s) == 1, "idle session closes");
	conn_talk(&c, "", 0, 1, 1000);
	conn_take(&c, codes, sizeof codes, NULL, 0);
	is_str(codes, "421", "421 on shutdown");
	conn_close(&c);

	/* in DATA: the transaction ends with 451 each, then 421 */
	conn_ready(&c);
	conn_say(&c, "MAIL FROM:<>\r\nRCPT TO:<ok@x.example>\r\n"
	    "RCPT TO:<ok2@x.example>\r\nDATA\r\n", 4);
	conn_take(&c, codes, sizeof codes, NULL, 0);
	ok(smtpd_session_shutdown(c.s) == 0, "a session in DATA finishes");
	c.env.draining = 1;
	conn_say(&c, "x\r\n.\r\n", 3);
	conn_take(&c, codes, sizeof codes, text, sizeof text);
	is_str(codes, "451 451 421", "draining at the final dot: 451 each, "
	    "421");
	conn_close(&c);
	ok(c.gone == 1, "closed");

	/* the command timeout */
	conn_open(&c, 1);
	conn_talk(&c, "LHLO x\r\n", 8, 99, 2500);
	conn_take(&c, codes, sizeof codes, text, sizeof text);
	ok(strstr(text, "421 4.4.2 " HOST " timeout") != NULL,
	    "idle past the timeout: 421 4.4.2");
	ok(c.eof, "and closed");
	conn_close(&c);
}

int
main(void)
{
	log_init("test_lmtp", LOG_TO_STDERR, 0);
	/* the daemon ignores SIGPIPE too: replies to a client that left */
	signal(SIGPIPE, SIG_IGN);
	proc.base = event_base_new();
	if (proc.base == NULL)
		log_fatalx("event_base_new");

	test_greeting_and_verbs();
	test_transaction();
	test_data_bounds();
	test_disconnect_in_flight();
	test_drain_and_timeout();

	event_base_free(proc.base);
	return tap_done();
}
