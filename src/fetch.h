/*
 * fetch.h - the IMAP intake: one worker thread per watched mailbox, and
 * IMAP APPEND for delivering filed replies into a shared folder.
 *
 * A fetch worker owns one libetpan IMAP session:
 *
 *   connect (implicit TLS, or STARTTLS; verified with tls.h before LOGIN)
 *   -> CAPABILITY -> LOGIN (or AUTHENTICATE PLAIN) -> create the processed
 *   and aside folders if missing -> SELECT mailbox (UIDVALIDITY noted)
 *   -> loop:
 *        UID SEARCH ALL (or UID FETCH 1:* (UID RFC822.SIZE)), oldest first
 *        for each message:
 *          size > max_size: process(raw NULL, size) then move to aside
 *          else UID FETCH BODY.PEEK[] (never sets \Seen) and process()
 *          FETCH_MOVE:  UID MOVE to processed (RFC 6851), or UID COPY +
 *                       UID STORE +FLAGS.SILENT (\Deleted) + UID EXPUNGE
 *                       (RFC 4315; plain EXPUNGE only when the mailbox
 *                       holds no other \Deleted message)
 *          FETCH_ASIDE: the same to the aside folder
 *          FETCH_KEEP:  leave it (a temporary failure): the next round
 *                       tries again, after the backoff
 *        then IDLE (when offered and enabled) until the server reports
 *        EXISTS, idle_restart passes, or fetch_stop(); else sleep
 *        poll_interval (fetch_kick() wakes it)
 *   on any error: close, reconnect with backoff (1 s doubling to 5 min),
 *   log once per state change, count it in the stats.
 *
 * The move happens only after process() returned, and process() returns
 * FETCH_MOVE only after the reply is committed: a crash between the two
 * leaves the message in the mailbox and the next fetch hands it to
 * process() again, which recognises the duplicate (intake.h) and returns
 * FETCH_MOVE.  A UIDVALIDITY change is logged and needs nothing else for
 * the same reason.
 *
 * Transport security as for the relay (relay.h): tls implicit or starttls
 * with the chain and host name verified (tls_verify_stream) and SNI,
 * TLS 1.2 or later, before LOGIN; a server that stops offering STARTTLS
 * gets no plaintext fallback; tls none only to a loopback host with
 * allow_plaintext.  The password never reaches a log.  libetpan's select()
 * limit: a socket >= FD_SETSIZE is closed and counted as an error.
 *
 * Threads: fetch_start, fetch_kick, fetch_get_stats and fetch_stop are
 * called from the loop thread; process() runs on the worker thread.
 * fetch_append() is a blocking one-shot call for any thread but the loop.
 */
#ifndef SEALPOST_FETCH_H
#define SEALPOST_FETCH_H

#include <stddef.h>
#include <stdint.h>

#include "relay.h"		/* enum relay_tls */

struct fetch;

/*
 * Bytes one ordinary command may read, its response's literals included
 * (SEARCH of ~1M UIDs fits); the message fetch may read max_size plus a
 * margin instead.  A literal announced larger than what is left is
 * refused before libetpan allocates it.
 */
#define FETCH_MAX_RESPONSE	(8u * 1024 * 1024)

/* A server and how to log in. */
struct fetch_server {
	const char	*host;
	uint16_t	 port;
	enum relay_tls	 tls;		/* IMPLICIT, STARTTLS or NONE */
	int		 allow_plaintext;
	const char	*tls_name;	/* NULL: host */
	const char	*ca_file;	/* NULL: system store */
	const char	*username;
	const char	*password;
	int		 connect_timeout;	/* seconds */
	int		 command_timeout;
};

/* One message handed to the processor. */
struct fetch_msg {
	const char	*mailbox;
	uint32_t	 uidvalidity;
	uint32_t	 uid;
	const char	*raw;		/* NULL when over max_size */
	size_t		 len;		/* bytes, or RFC822.SIZE when raw NULL */
};

enum fetch_verdict {
	FETCH_MOVE = 0,		/* committed (or a duplicate): to processed */
	FETCH_ASIDE,		/* committed as not taken in: to aside */
	FETCH_KEEP		/* not committed: leave it, retry later */
};

struct fetch_params {
	struct fetch_server server;
	const char	*mailbox;		/* "INBOX" */
	const char	*processed_folder;
	const char	*aside_folder;
	int		 idle;			/* use IDLE when offered */
	int		 poll_interval;		/* seconds */
	int		 idle_restart;		/* seconds, < 29 min */
	size_t		 max_size;		/* larger: raw NULL */
	size_t		 max_per_round;		/* messages per round, 0: 100 */
	enum fetch_verdict (*process)(void *arg, const struct fetch_msg *);
	void		*arg;
};

struct fetch_stats {
	uint64_t	 fetched, moved, aside, kept;
	uint64_t	 connects, errors;
	uint32_t	 uidvalidity;		/* 0: not yet selected */
	int		 connected;
	int		 idling;
	char		 last_error[200];	/* "" if none; no content */
};

/* Start the worker (it connects in the background).  0, or -1 + reason. */
int	 fetch_start(const struct fetch_params *, struct fetch **,
	    const char **error_r);
/* Look now (e.g. after SIGHUP or an admin request). */
void	 fetch_kick(struct fetch *);
void	 fetch_get_stats(struct fetch *, struct fetch_stats *);
/*
 * Stop: a message being processed is finished (its move included), the
 * session is logged out, the thread joined within timeout_ms.  0, or -1
 * when the thread did not stop in time (abandoned: the caller exits).
 */
int	 fetch_stop(struct fetch **, uint64_t timeout_ms);

/*
 * Deliver one message into folder on server (created if missing) with
 * APPEND, flags none, internal date now.  Blocking; opens and closes its
 * own session.  0, or -1 with a one-line reason in err (no content);
 * *temporary says whether a retry may succeed (connection, timeout, NO
 * [TRYCREATE] race) or not (login refused, message refused).
 */
int	 fetch_append(const struct fetch_server *, const char *folder,
	    const char *raw, size_t len, int *temporary, char *err,
	    size_t errsz);

/*
 * For tests and fuzzing only (fuzz/imap_response.c); the daemon never
 * calls it.  Runs one worker session as fetch_start()'s thread would,
 * over low instead of a TCP connection: the bounded read layer, the
 * greeting, STARTTLS when p->server.tls says so (its handshake on no
 * socket fails), CAPABILITY, LOGIN, CAPABILITY, LIST/CREATE of the two
 * folders, SELECT, one round (UID SEARCH, UID FETCH sizes, bodies,
 * p->process, moves) and LOGOUT; no IDLE or wait, no retry.  low is
 * taken (closed and freed in every case); it is read in the caller's
 * thread, which process() runs in too.  Implicit TLS is refused.  0, or
 * -1 with the session's one-line error in err.
 */
struct _mailstream_low;
int	 fetch_session_run(const struct fetch_params *,
	    struct _mailstream_low *low, char *err, size_t errsz);

#endif
