/*
 * lmtp_listen.c - the LMTP listener with the test processor of
 * tests/lmtp_proc.h, for tests/integration/t_lmtp_postfix.py (Postfix's
 * LMTP client against it).  Not a TAP test itself.
 *
 * usage: lmtp_listen PORT
 * Listens on 127.0.0.1:PORT, prints "ready" once it does, then one line
 * per job as it is answered: "job <rcpt>=<code> ...", in RCPT order.
 * Stops on SIGTERM or SIGINT.
 */
#include "build.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include <event2/event.h>

#include "intake.h"
#include "lmtpd.h"
#include "log.h"
#include "util.h"

#include "lmtp_proc.h"

static struct lmtpd	*ld;

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	lmtpd_stop(&ld);
	event_base_loopbreak(arg);
}

int
main(int argc, char **argv)
{
	struct lmtpd_params p;
	struct event_base *base;
	struct event	*ev_term, *ev_int;
	char		 listen[64], *err = NULL;

	if (argc != 2) {
		fprintf(stderr, "usage: lmtp_listen PORT\n");
		return 2;
	}
	log_init("lmtp_listen", LOG_TO_STDERR, 0);
	signal(SIGPIPE, SIG_IGN);
	if ((base = event_base_new()) == NULL)
		log_fatalx("event_base_new");
	proc_init(base);
	proc.log = stdout;
	ev_term = evsignal_new(base, SIGTERM, on_signal, base);
	ev_int = evsignal_new(base, SIGINT, on_signal, base);
	event_add(ev_term, NULL);
	event_add(ev_int, NULL);

	snprintf(listen, sizeof listen, "127.0.0.1:%s", argv[1]);
	memset(&p, 0, sizeof p);
	p.listen = listen;
	p.hostname = "lmtp.test";
	p.timeout = 30;
	p.max_sessions = 5;
	p.max_size = 1024 * 1024;
	p.max_line = 1000;
	p.max_header = 100 * 1024;
	p.max_rcpts = LMTPD_MAX_RECIPIENTS;
	p.submit = proc_submit;
	p.job_free = proc_job_free;
	if (lmtpd_start(base, &p, &ld, &err) != 0)
		log_fatalx("%s", err);
	printf("ready\n");
	fflush(stdout);
	event_base_dispatch(base);

	proc_stop();
	event_free(ev_term);
	event_free(ev_int);
	event_base_free(base);
	return 0;
}
