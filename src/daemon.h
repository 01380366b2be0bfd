/*
 * daemon.h - the daemon's shared context, owned by sealpostd.c.
 *
 * Listeners (api.c, smtpd.c, control.c) get a pointer to it.  Everything in
 * it is touched only on the event-loop thread.
 */
#ifndef SEALPOST_DAEMON_H
#define SEALPOST_DAEMON_H

#include <stdint.h>

struct event_base;
struct config;
struct store;
struct submit;
struct keyring;
struct queue;
struct token_keys;

struct daemon {
	struct event_base	*base;
	struct config		*cfg;
	struct store		*store;		/* read connection (loop) */
	struct submit		*submit;	/* the submission pipeline */
	struct keyring		*keyring;
	struct queue		*queue;		/* the delivery scheduler */
	struct token_keys	*tkeys;		/* current token key (bounces) */
	int			 draining;	/* SIGTERM seen: refuse new work */
	uint64_t		 started_ms;	/* util_now_ms() at start */
	const char		*version;
};

#endif
