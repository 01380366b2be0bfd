/*
 * test_lmtpd.c - the LMTP listener (src/lmtpd.c) on 127.0.0.1, its event
 * loop on a thread of its own, with a test processor in place of the
 * intake pool: jobs are completed on a worker thread (250, 451 or 550 by
 * recipient) and handed back to the loop through a pipe, as the pool
 * does.  A socket client checks the per-recipient replies in RCPT order,
 * a client that leaves while its (slow) job is in flight, the session
 * bound (421), and a real LMTP client, Python's smtplib.LMTP, reading
 * the per-recipient replies after DATA.  Postfix as the LMTP client is
 * not exercised here.
 */
#include "build.h"

#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "config.h"
#include "intake.h"
#include "lmtpd.h"
#include "log.h"
#include "util.h"

#include "lmtp_proc.h"
#include "tap.h"

/* A counter of the processor, read under its lock. */
static int
proc_get(int *field)
{
	int	 v;

	pthread_mutex_lock(&proc.lock);
	v = *field;
	pthread_mutex_unlock(&proc.lock);
	return v;
}

/* ---- the loop thread ----------------------------------------------------- */

static struct event_base *base;
static struct lmtpd	*ld;
static int		 ctlfd[2];	/* main -> loop: stop */

static void
loop_ctl(evutil_socket_t fd, short what, void *arg)
{
	char	 c;

	(void)what;
	(void)arg;
	if (read(fd, &c, 1) == 1) {
		lmtpd_stop(&ld);
		event_base_loopbreak(base);
	}
}

static void *
loop_main(void *arg)
{
	(void)arg;
	event_base_dispatch(base);
	return NULL;
}

/* ---- the client --------------------------------------------------------- */

static int
client_connect(int port)
{
	struct sockaddr_in sin;
	struct timeval	 tv = { 5, 0 };
	int		 fd;

	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) == -1)
		log_fatal("socket");
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sin, sizeof sin) != 0)
		log_fatal("connect");
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	return fd;
}

/*
 * Read until n final reply lines arrived; return them as one string
 * (the whole text, multi-line replies included).
 */
static char *
client_read(int fd, int n, char *buf, size_t sz)
{
	size_t	 len = 0, i, bol;
	ssize_t	 r;
	int	 finals;

	buf[0] = '\0';
	for (;;) {
		finals = 0;
		for (i = 0, bol = 0; i < len; i++) {
			if (buf[i] != '\n')
				continue;
			if (i - bol >= 4 && buf[bol + 3] == ' ')
				finals++;
			bol = i + 1;
		}
		if (finals >= n || len + 1 >= sz)
			break;
		r = read(fd, buf + len, sz - 1 - len);
		if (r <= 0)
			break;
		len += (size_t)r;
		buf[len] = '\0';
	}
	return buf;
}

static void
client_write(int fd, const char *s)
{
	size_t	 len = strlen(s), off = 0;
	ssize_t	 n;

	while (off < len) {
		n = write(fd, s + off, len - off);
		if (n <= 0)
			log_fatal("client write");
		off += (size_t)n;
	}
}

static int
free_port(void)
{
	struct sockaddr_in sin;
	socklen_t	 len = sizeof sin;
	int		 fd, port;

	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) == -1)
		log_fatal("socket");
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sin, sizeof sin) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sin, &len) != 0)
		log_fatal("bind");
	port = ntohs(sin.sin_port);
	close(fd);
	return port;
}

static uint64_t
now_ms(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- tests --------------------------------------------------------------- */

static void
test_replies(int port)
{
	char	 buf[4096];
	int	 fd;

	fd = client_connect(port);
	client_read(fd, 1, buf, sizeof buf);
	ok(strncmp(buf, "220 lmtp.test LMTP sealpost\r\n", 29) == 0,
	    "greeting");
	client_write(fd, "LHLO mx.test\r\n");
	client_read(fd, 1, buf, sizeof buf);
	ok(strstr(buf, "250-PIPELINING\r\n") != NULL &&
	    strstr(buf, "250 SIZE 100000\r\n") != NULL,
	    "LHLO: PIPELINING, SIZE [replies] max_size");
	client_write(fd, "EHLO mx.test\r\n");
	client_read(fd, 1, buf, sizeof buf);
	ok(strncmp(buf, "500 ", 4) == 0, "EHLO: 500");

	client_write(fd, "MAIL FROM:<>\r\nRCPT TO:<ok1@reply.example>\r\n"
	    "RCPT TO:<tmp2@reply.example>\r\nRCPT TO:<no3@reply.example>\r\n"
	    "RCPT TO:<ok4@reply.example>\r\nDATA\r\n");
	client_read(fd, 6, buf, sizeof buf);
	is_str(buf, "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n"
	    "250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n354 End data with "
	    "<CR><LF>.<CR><LF>\r\n", "pipelined MAIL, 4 RCPT, DATA");
	client_write(fd, "From: someone@example.org\r\n\r\nthanks\r\n.\r\n"
	    "NOOP\r\n");
	client_read(fd, 5, buf, sizeof buf);
	is_str(buf, "250 2.0.0 reply filed\r\n451 4.3.0 try again later\r\n"
	    "550 5.1.1 not a reply address\r\n250 2.0.0 reply filed\r\n"
	    "250 2.0.0 Ok\r\n",
	    "mixed per-recipient replies in RCPT order, then NOOP");
	pthread_mutex_lock(&proc.lock);
	is_str(proc.rcpts, "ok1@reply.example,tmp2@reply.example,"
	    "no3@reply.example,ok4@reply.example", "the job's recipients");
	pthread_mutex_unlock(&proc.lock);
	client_write(fd, "QUIT\r\n");
	client_read(fd, 1, buf, sizeof buf);
	is_str(buf, "221 2.0.0 Bye\r\n", "QUIT");
	close(fd);
}

static void
test_left_in_flight(int port)
{
	char		 buf[4096];
	int		 fd, done0, freed0;
	uint64_t	 end;

	done0 = proc_get(&proc.ndone);
	freed0 = proc_get(&proc.nfreed);
	fd = client_connect(port);
	client_read(fd, 1, buf, sizeof buf);
	client_write(fd, "LHLO mx.test\r\nMAIL FROM:<>\r\n"
	    "RCPT TO:<slow1@reply.example>\r\nRCPT TO:<no2@reply.example>\r\n"
	    "DATA\r\n");
	client_read(fd, 5, buf, sizeof buf);
	client_write(fd, "Subject: x\r\n\r\ny\r\n.\r\n");
	usleep(100000);
	close(fd);		/* gone before the slow job is done */
	ok(proc_get(&proc.ndone) == done0, "job still in flight after the "
	    "client left");
	end = now_ms() + 3000;
	while (proc_get(&proc.ndone) == done0 && now_ms() < end)
		usleep(10000);
	ok(proc_get(&proc.ndone) == done0 + 1 &&
	    proc_get(&proc.nfreed) == freed0 + 1,
	    "done() ran after the client left, and freed the job");

	/* the listener still serves */
	fd = client_connect(port);
	client_read(fd, 1, buf, sizeof buf);
	client_write(fd, "LHLO mx.test\r\nNOOP\r\nQUIT\r\n");
	client_read(fd, 3, buf, sizeof buf);
	ok(strstr(buf, "250 2.0.0 Ok\r\n221 2.0.0 Bye\r\n") != NULL,
	    "the listener serves after that");
	close(fd);
}

static void
test_max_sessions(int port)
{
	char	 buf[512];
	int	 a, b, c;

	a = client_connect(port);
	client_read(a, 1, buf, sizeof buf);
	b = client_connect(port);
	client_read(b, 1, buf, sizeof buf);
	ok(strncmp(buf, "220 ", 4) == 0, "second session greeted");
	c = client_connect(port);
	client_read(c, 1, buf, sizeof buf);
	is_str(buf, "421 4.7.0 too many sessions, try again later\r\n",
	    "third session over max_sessions: 421");
	close(a);
	close(b);
	close(c);
	usleep(100000);		/* let the loop see both leave */
}

/* Python's smtplib.LMTP: a real LMTP client library. */
static const char pyscript[] =
"import smtplib, sys\n"
"c = smtplib.LMTP('127.0.0.1', int(sys.argv[1]),\n"
"                 local_hostname='client.test')\n"
"code, _ = c.ehlo('client.test')\n"
"out = [str(code), 'pipelining' if c.has_extn('pipelining') else '-']\n"
"c.mail('sender@example.org')\n"
"for r in ('ok1@reply.example', 'no2@reply.example',\n"
"          'tmp3@reply.example'):\n"
"    out.append(str(c.rcpt(r)[0]))\n"
"code, msg = c.data(b'Subject: hi\\r\\n\\r\\n.leading dot\\r\\n')\n"
"out.append('%d:%s' % (code, msg.decode()))\n"
"for i in range(2):\n"
"    code, msg = c.getreply()\n"
"    out.append('%d:%s' % (code, msg.decode()))\n"
"refused = c.sendmail('s@example.org', ['ok9@reply.example'],\n"
"                     'x: y\\r\\n\\r\\nz\\r\\n')\n"
"out.append('refused=%d' % len(refused))\n"
"c.quit()\n"
"print(' '.join(out))\n";

static void
test_python_lmtp(int port)
{
	char	 cmd[256], path[] = "/tmp/test_lmtpd_XXXXXX", line[1024];
	FILE	*f;
	int	 fd;

	if (system("command -v python3 >/dev/null 2>&1") != 0) {
		skip("python3 not installed");
		return;
	}
	if ((fd = mkstemp(path)) == -1)
		log_fatal("mkstemp");
	if (write(fd, pyscript, sizeof pyscript - 1) !=
	    (ssize_t)(sizeof pyscript - 1))
		log_fatal("write");
	close(fd);
	snprintf(cmd, sizeof cmd, "python3 %s %d 2>&1", path, port);
	line[0] = '\0';
	if ((f = popen(cmd, "r")) == NULL)
		log_fatal("popen");
	if (fgets(line, sizeof line, f) == NULL)
		line[0] = '\0';
	pclose(f);
	unlink(path);
	line[strcspn(line, "\n")] = '\0';
	is_str(line, "250 pipelining 250 250 250 250:2.0.0 reply filed "
	    "550:5.1.1 not a reply address 451:4.3.0 try again later "
	    "refused=0", "smtplib.LMTP reads one reply per recipient");
}

int
main(void)
{
	struct lmtpd_params p;
	struct config	*cfg;
	struct event	*ev_ctl;
	pthread_t	 loop;
	char		 listen[64], *err = NULL, c = 1;
	int		 port;

	log_init("test_lmtpd", LOG_TO_STDERR, 0);
	signal(SIGPIPE, SIG_IGN);
	if (pipe(ctlfd) != 0)
		log_fatal("pipe");
	if ((base = event_base_new()) == NULL)
		log_fatalx("event_base_new");
	proc_init(base);
	ev_ctl = event_new(base, ctlfd[0], EV_READ | EV_PERSIST, loop_ctl,
	    NULL);
	event_add(ev_ctl, NULL);

	/* the bounds from the configuration's defaults */
	cfg = config_defaults();
	lmtpd_params_init(&p, cfg);
	ok(strcmp(p.listen, "") == 0 && p.timeout == 300 &&
	    p.max_sessions == 20 && p.max_size == 25 * 1024 * 1024 &&
	    p.max_line == 1000 && p.max_header == 100 * 1024 &&
	    p.max_rcpts == LMTPD_MAX_RECIPIENTS && p.submit == NULL,
	    "lmtpd_params_init: [lmtp], [replies] max_size, [smtp] bounds");
	config_free(&cfg);

	/* refused configurations */
	memset(&p, 0, sizeof p);
	p.listen = "192.0.2.1:2424";
	p.timeout = 30;
	p.max_sessions = 2;
	p.max_size = 100000;
	p.max_line = 1000;
	p.max_header = 100 * 1024;
	p.max_rcpts = 10;
	p.submit = proc_submit;
	p.job_free = proc_job_free;
	p.hostname = "lmtp.test";
	ok(lmtpd_start(base, &p, &ld, &err) == -1 && ld == NULL &&
	    err != NULL && strstr(err, "loopback only") != NULL,
	    "a listener off loopback is refused");
	free(err);
	p.listen = "";
	ok(lmtpd_start(base, &p, &ld, &err) == 0 && ld == NULL,
	    "empty listen: off");

	port = free_port();
	snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
	p.listen = listen;
	if (lmtpd_start(base, &p, &ld, &err) != 0)
		log_fatalx("lmtpd_start: %s", err);
	ok(lmtpd_port(ld) == port, "listening on 127.0.0.1:%d", port);

	if (pthread_create(&loop, NULL, loop_main, NULL) != 0)
		log_fatalx("pthread_create");

	test_replies(port);
	test_left_in_flight(port);
	test_max_sessions(port);
	test_python_lmtp(port);

	if (write(ctlfd[1], &c, 1) != 1)
		log_fatal("ctl write");
	pthread_join(loop, NULL);
	proc_stop();
	ok(proc.nsubmitted == proc.nfreed, "every job freed (%d)",
	    proc.nsubmitted);

	event_free(ev_ctl);
	event_base_free(base);
	close(ctlfd[0]);
	close(ctlfd[1]);
	return tap_done();
}
