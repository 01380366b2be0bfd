/*
 * relay_send.c - drive src/relay.c from the command line, for
 * tests/integration/t_relay.py.
 *
 * Sends the message in --message FILE --count times over one relay_conn
 * (reused between sends, as a relay worker does) and prints one line per
 * send and per recipient on stdout:
 *
 *   send I RESULT MS CONN ERR...
 *   rcpt I J CODE STATUS TEXT...
 *   end CONN
 *
 * I counts sends from 1, J recipients from 0; RESULT is relay_strresult();
 * MS the milliseconds relay_send() took; CONN "open" or "closed" after the
 * send (and "same" when the open conn is the one the send started with);
 * STATUS is "-" when the reply had no enhanced code.  Every option maps
 * to one struct relay_params field.  --cancel-after-ms calls
 * relay_cancel() from a second thread that many milliseconds into each
 * send after the first (the conn must exist for it to be cancelled).
 * Exit status 0 when every send returned RELAY_OK, else 1; 2 on usage.
 */

#include "build.h"

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "relay.h"
#include "util.h"

struct canceller {
	pthread_t		 thread;
	struct relay_conn	*conn;
	int			 after_ms;
};

static void	 usage(void) __attribute__((noreturn));
static char	*read_file(const char *, size_t *);
static int	 num(const char *, const char *, int, int);
static void	*cancel_main(void *);

static void
usage(void)
{
	fprintf(stderr,
	    "usage: relay_send --host H --port P [--tls starttls|implicit|none]\n"
	    "    [--allow-plaintext] [--tls-name N] [--ca-file F]\n"
	    "    [--username U (--password P | --password-file F)]\n"
	    "    [--helo NAME] [--connect-timeout S] [--command-timeout S]\n"
	    "    [--data-timeout S] [--idle-timeout S] --from ADDR --to ADDR...\n"
	    "    --message FILE [--count N] [--pause-ms MS] [--close-idle]\n"
	    "    [--cancel-after-ms MS] [--debug]\n");
	exit(2);
}

static char *
read_file(const char *path, size_t *lenp)
{
	FILE	*f;
	char	*buf = NULL;
	size_t	 len = 0, cap = 0, n;

	if ((f = fopen(path, "rb")) == NULL) {
		fprintf(stderr, "relay_send: %s: %s\n", path, strerror(errno));
		exit(2);
	}
	for (;;) {
		if (cap - len < 65536) {
			cap = cap ? cap * 2 : 65536;
			buf = xreallocarray(buf, 1, cap);
		}
		n = fread(buf + len, 1, cap - len, f);
		len += n;
		if (n == 0)
			break;
	}
	if (ferror(f)) {
		fprintf(stderr, "relay_send: %s: read error\n", path);
		exit(2);
	}
	fclose(f);
	*lenp = len;
	return buf;
}

static int
num(const char *opt, const char *s, int min, int max)
{
	int64_t	 v;

	if (util_parse_i64(s, min, max, &v) == -1) {
		fprintf(stderr, "relay_send: %s: bad number %s\n", opt, s);
		exit(2);
	}
	return (int)v;
}

static void *
cancel_main(void *arg)
{
	struct canceller	*cl = arg;
	struct timespec		 ts;

	ts.tv_sec = cl->after_ms / 1000;
	ts.tv_nsec = (long)(cl->after_ms % 1000) * 1000000L;
	nanosleep(&ts, NULL);
	relay_cancel(cl->conn);
	return NULL;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "host",		required_argument, NULL, 'H' },
		{ "port",		required_argument, NULL, 'p' },
		{ "tls",		required_argument, NULL, 't' },
		{ "allow-plaintext",	no_argument,	   NULL, 'A' },
		{ "tls-name",		required_argument, NULL, 'n' },
		{ "ca-file",		required_argument, NULL, 'c' },
		{ "username",		required_argument, NULL, 'u' },
		{ "password",		required_argument, NULL, 'w' },
		{ "password-file",	required_argument, NULL, 'W' },
		{ "helo",		required_argument, NULL, 'e' },
		{ "connect-timeout",	required_argument, NULL, '1' },
		{ "command-timeout",	required_argument, NULL, '2' },
		{ "data-timeout",	required_argument, NULL, '3' },
		{ "idle-timeout",	required_argument, NULL, '4' },
		{ "from",		required_argument, NULL, 'f' },
		{ "to",			required_argument, NULL, 'r' },
		{ "message",		required_argument, NULL, 'm' },
		{ "count",		required_argument, NULL, 'N' },
		{ "pause-ms",		required_argument, NULL, 'P' },
		{ "close-idle",		no_argument,	   NULL, 'I' },
		{ "cancel-after-ms",	required_argument, NULL, 'C' },
		{ "debug",		no_argument,	   NULL, 'd' },
		{ NULL, 0, NULL, 0 }
	};
	struct relay_params	 p;
	struct relay_msg	 m;
	struct relay_rcpt	*rcpts = NULL;
	struct relay_conn	*conn = NULL, *before;
	struct canceller	 cl;
	enum relay_result	 r;
	struct timespec		 ts;
	const char		*msgfile = NULL;
	char			*pwbuf = NULL, *data, err[512];
	size_t			 nrcpts = 0, j, len;
	uint64_t		 t0;
	int			 ch, i, count = 1, pause_ms = 0, close_idle = 0;
	int			 cancel_ms = -1, failed = 0;

	memset(&p, 0, sizeof(p));
	memset(&m, 0, sizeof(m));
	p.tls = RELAY_TLS_STARTTLS;
	p.helo_name = "relay-test.sealpost.test";
	p.connect_timeout = 10;
	p.command_timeout = 10;
	p.data_timeout = 10;
	p.idle_timeout = 60;
	m.from = NULL;
	log_init("relay_send", LOG_TO_STDERR, 0);

	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 'H':
			p.host = optarg;
			break;
		case 'p':
			p.port = (uint16_t)num("--port", optarg, 1, 65535);
			break;
		case 't':
			if (strcmp(optarg, "starttls") == 0)
				p.tls = RELAY_TLS_STARTTLS;
			else if (strcmp(optarg, "implicit") == 0)
				p.tls = RELAY_TLS_IMPLICIT;
			else if (strcmp(optarg, "none") == 0)
				p.tls = RELAY_TLS_NONE;
			else
				usage();
			break;
		case 'A':
			p.allow_plaintext = 1;
			break;
		case 'n':
			p.tls_name = optarg;
			break;
		case 'c':
			p.ca_file = optarg;
			break;
		case 'u':
			p.username = optarg;
			break;
		case 'w':
			p.password = optarg;
			break;
		case 'W':
			pwbuf = read_file(optarg, &len);
			while (len > 0 && (pwbuf[len - 1] == '\n' ||
			    pwbuf[len - 1] == '\r'))
				len--;
			pwbuf = xreallocarray(pwbuf, 1, len + 1);
			pwbuf[len] = '\0';
			p.password = pwbuf;
			break;
		case 'e':
			p.helo_name = optarg;
			break;
		case '1':
			p.connect_timeout = num("--connect-timeout", optarg,
			    -1, 3600);
			break;
		case '2':
			p.command_timeout = num("--command-timeout", optarg,
			    -1, 3600);
			break;
		case '3':
			p.data_timeout = num("--data-timeout", optarg, -1,
			    3600);
			break;
		case '4':
			p.idle_timeout = num("--idle-timeout", optarg, 0,
			    3600);
			break;
		case 'f':
			m.from = optarg;
			break;
		case 'r':
			rcpts = xreallocarray(rcpts, nrcpts + 1,
			    sizeof(*rcpts));
			memset(&rcpts[nrcpts], 0, sizeof(*rcpts));
			rcpts[nrcpts++].addr = optarg;
			break;
		case 'm':
			msgfile = optarg;
			break;
		case 'N':
			count = num("--count", optarg, 1, 1000);
			break;
		case 'P':
			pause_ms = num("--pause-ms", optarg, 0, 600000);
			break;
		case 'I':
			close_idle = 1;
			break;
		case 'C':
			cancel_ms = num("--cancel-after-ms", optarg, 0,
			    600000);
			break;
		case 'd':
			log_set_debug(1);
			break;
		default:
			usage();
		}
	}
	if (optind != argc || msgfile == NULL || m.from == NULL)
		usage();
	data = read_file(msgfile, &m.len);
	m.data = data;
	m.rcpts = rcpts;
	m.nrcpts = nrcpts;

	if (relay_global_init() == -1) {
		fprintf(stderr, "relay_send: relay_global_init failed\n");
		return 1;
	}
	for (i = 1; i <= count; i++) {
		if (i > 1 && pause_ms > 0) {
			ts.tv_sec = pause_ms / 1000;
			ts.tv_nsec = (long)(pause_ms % 1000) * 1000000L;
			nanosleep(&ts, NULL);
			if (close_idle)
				relay_close_idle(&conn, &p);
		}
		before = conn;
		if (cancel_ms >= 0 && conn != NULL) {
			cl.conn = conn;
			cl.after_ms = cancel_ms;
			if (pthread_create(&cl.thread, NULL, cancel_main,
			    &cl) != 0) {
				fprintf(stderr, "relay_send: pthread_create\n");
				return 1;
			}
		}
		t0 = util_now_ms();
		r = relay_send(&conn, &p, &m, err, sizeof(err));
		printf("send %d %s %llu %s %s\n", i, relay_strresult(r),
		    (unsigned long long)(util_now_ms() - t0),
		    conn == NULL ? "closed" : conn == before ? "same" : "open",
		    err[0] != '\0' ? err : "-");
		for (j = 0; j < nrcpts; j++)
			printf("rcpt %d %zu %d %s %s\n", i, j, rcpts[j].code,
			    rcpts[j].status[0] != '\0' ? rcpts[j].status : "-",
			    rcpts[j].text[0] != '\0' ? rcpts[j].text : "-");
		fflush(stdout);
		if (cancel_ms >= 0 && before != NULL)
			pthread_join(cl.thread, NULL);
		if (r != RELAY_OK)
			failed = 1;
	}
	printf("end %s\n", conn == NULL ? "closed" : "open");
	relay_close(&conn);
	free(data);
	free(rcpts);
	free(pwbuf);
	return failed;
}
