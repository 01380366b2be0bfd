/*
 * queue_run.c - run the delivery queue (src/queue.c) on its own, without
 * sealpostd's listeners, for tests/integration/t_reply_mails.py: the
 * daemon does not pass the [imap] server to the queue yet, so the append
 * kind of reply mail is driven from here against a real IMAP server.
 *
 * Starts the queue with the given database, master key and IMAP server
 * (no smarthost), waits until COUNT reply mails were settled as sent or
 * failed (or the time is up), stops it, and prints the queue stats:
 *
 *   reply_mails sent=N deferred=N failed=N
 *
 * Exit 0 when COUNT were settled, 1 otherwise, 2 on usage.
 *
 * usage: queue_run -d DB -k MASTER_KEY -H HOST -P PORT -c CA_FILE
 *          -u USER -p PASS -F FOLDER -n COUNT [-t SECONDS]
 */
#include "build.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "hash.h"
#include "keyring.h"
#include "letter.h"
#include "log.h"
#include "queue.h"
#include "relay.h"
#include "util.h"

static void	 usage(void) __attribute__((noreturn));

static void
usage(void)
{
	fprintf(stderr, "usage: queue_run -d DB -k MASTER_KEY -H HOST -P PORT "
	    "-c CA_FILE -u USER -p PASS -F FOLDER -n COUNT [-t SECONDS]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	struct queue_params	 qp;
	struct queue_stats	 qs;
	struct event_base	*base;
	struct keyring		*kr = NULL;
	struct queue		*q = NULL;
	const char		*keyfile = NULL, *error = NULL;
	int64_t			 v;
	uint64_t		 deadline;
	uint64_t		 count = 0;
	int			 c, seconds = 20;

	memset(&qp, 0, sizeof(qp));
	qp.imap_server.tls = RELAY_TLS_IMPLICIT;
	qp.imap_server.connect_timeout = 5;
	qp.imap_server.command_timeout = 10;
	while ((c = getopt(argc, argv, "d:k:H:P:c:u:p:F:n:t:")) != -1) {
		switch (c) {
		case 'd': qp.database = optarg; break;
		case 'k': keyfile = optarg; break;
		case 'H': qp.imap_server.host = optarg; break;
		case 'P':
			if (util_parse_i64(optarg, 1, 65535, &v) != 0)
				usage();
			qp.imap_server.port = (uint16_t)v;
			break;
		case 'c': qp.imap_server.ca_file = optarg; break;
		case 'u': qp.imap_server.username = optarg; break;
		case 'p': qp.imap_server.password = optarg; break;
		case 'F': qp.imap_append_folder = optarg; break;
		case 'n':
			if (util_parse_i64(optarg, 1, 1000, &v) != 0)
				usage();
			count = (uint64_t)v;
			break;
		case 't':
			if (util_parse_i64(optarg, 1, 600, &v) != 0)
				usage();
			seconds = (int)v;
			break;
		default: usage();
		}
	}
	if (qp.database == NULL || keyfile == NULL ||
	    qp.imap_server.host == NULL || qp.imap_append_folder == NULL ||
	    count == 0)
		usage();
	log_init("queue_run", LOG_TO_STDERR, 1);
	if (hash_init() != 0 || relay_global_init() != 0)
		log_fatalx("init failed");
	letter_json_init();
	if (keyring_load(keyfile, &kr, &error) != 0)
		log_fatalx("master key: %s", error);
	if (evthread_use_pthreads() != 0 || (base = event_base_new()) == NULL)
		log_fatalx("libevent");
	qp.keyring = kr;
	qp.pool_size = 1;
	qp.retry_first = 1;
	qp.retry_max = 2;
	qp.reply_lifetime = 86400;
	qp.max_active = 4;
	qp.reply_forward = "imap";
	if (queue_start(base, &qp, &q, &error) != 0)
		log_fatalx("queue_start: %s", error);
	/* The counters move when the outcome is committed. */
	deadline = util_now_ms() + (uint64_t)seconds * 1000;
	do {
		usleep(200 * 1000);
		queue_get_stats(q, &qs);
	} while (qs.reply_mails_sent + qs.reply_mails_failed < count &&
	    util_now_ms() < deadline);
	if (queue_stop(&q, 10000) != 0)
		log_fatalx("queue_stop: threads did not stop");
	printf("reply_mails sent=%llu deferred=%llu failed=%llu\n",
	    (unsigned long long)qs.reply_mails_sent,
	    (unsigned long long)qs.reply_mails_deferred,
	    (unsigned long long)qs.reply_mails_failed);
	event_base_free(base);
	keyring_free(&kr);
	return qs.reply_mails_sent + qs.reply_mails_failed >= count ? 0 : 1;
}
