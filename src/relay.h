/*
 * relay.h - outbound SMTP sessions to the smarthost, through libetpan.
 *
 * A struct relay_conn is one SMTP session owned by one thread (a relay
 * worker).  relay_send() opens it on first use (connect, EHLO, STARTTLS or
 * implicit TLS, certificate verification, EHLO, AUTH), then runs one
 * transaction: MAIL FROM, RCPT TO for each recipient (every reply
 * recorded; a rejected recipient does not stop the others), DATA when at
 * least one was accepted, RSET when none was.  The session is kept for
 * the next message (checked with NOOP when it has been idle, closed after
 * idle_timeout by relay_close_idle()).
 *
 * Transport security, in this order, never relaxed:
 *   - tls "starttls": EHLO must offer STARTTLS, else RELAY_TLSFAIL;
 *     tls "implicit": TLS from the first byte (port 465);
 *     tls "none": only when allow_plaintext is set AND the host is a
 *     loopback address (127.0.0.0/8, ::1, "localhost"), else RELAY_CONFIG.
 *   - SNI is sent (the tls_name, default the host) and, after the handshake
 *     and before anything else is sent, the peer chain and host name are
 *     verified with GnuTLS (tls.h) against ca_file or the system trust
 *     store.  A failure ends the session at once (no EHLO, no AUTH, no
 *     MAIL): RELAY_TLSFAIL, and the caller defers and alerts.
 *
 * AUTH PLAIN or LOGIN (whichever the server offers, PLAIN first) through
 * Cyrus SASL when a username is set; the password is never logged (the
 * libetpan logger is not installed at all).  Every address and the HELO
 * name are checked before they reach a command: CR, LF, NUL, '<', '>',
 * controls, spaces or over 254 octets are refused (RELAY_INPUT), never
 * cleaned.
 *
 * Timeouts: connect_timeout for connect + greeting + TLS handshake (the
 * low-level stream timeout is set too, since libetpan's plaintext phase
 * ignores mailsmtp_set_timeout), command_timeout for each command reply,
 * data_timeout for the reply after the final dot.  relay_cancel() from
 * another thread aborts a blocked call (shutdown); the conn must then be
 * closed.
 *
 * libetpan uses select(): a socket at or above FD_SETSIZE would abort the
 * process, so relay_send() refuses (RELAY_TEMPFAIL, "fd limit") to run
 * when the new socket is >= FD_SETSIZE; the daemon caps RLIMIT_NOFILE at
 * 1024 (systemd unit) so this does not happen.
 *
 * Thread safety: relay_global_init() once in the main thread before any
 * worker starts; afterwards each conn is used by one thread at a time,
 * except relay_cancel().
 */
#ifndef SEALPOST_RELAY_H
#define SEALPOST_RELAY_H

#include <stddef.h>
#include <stdint.h>

struct relay_conn;

enum relay_tls {
	RELAY_TLS_STARTTLS = 0,
	RELAY_TLS_IMPLICIT,
	RELAY_TLS_NONE
};

struct relay_params {
	const char	*host;		/* smarthost name or address literal */
	uint16_t	 port;
	enum relay_tls	 tls;
	int		 allow_plaintext; /* with RELAY_TLS_NONE, loopback only */
	const char	*tls_name;	/* name to verify + SNI; NULL: host */
	const char	*ca_file;	/* PEM anchors; NULL: system store */
	const char	*username;	/* NULL: no AUTH */
	const char	*password;
	const char	*helo_name;	/* EHLO argument (FQDN) */
	int		 connect_timeout;	/* seconds */
	int		 command_timeout;
	int		 data_timeout;
	int		 idle_timeout;		/* keep an idle session */
};

/* Outcome of relay_send() for the whole attempt. */
enum relay_result {
	RELAY_OK = 0,		/* transaction ran: see each rcpt's code */
	RELAY_TEMPFAIL,		/* no verdict: connect failure, timeout,
				   dropped connection, 4xx greeting/MAIL/
				   DATA/AUTH, cancelled: retry later */
	RELAY_PERMFAIL,		/* 5xx to MAIL FROM or DATA: every rcpt
				   failed (codes are set) */
	RELAY_TLSFAIL,		/* TLS unavailable, handshake failed or
				   certificate not verified: nothing sent */
	RELAY_AUTHFAIL,		/* credentials refused or no usable
				   mechanism: a configuration problem */
	RELAY_CONFIG,		/* params refused (plaintext off loopback) */
	RELAY_INPUT		/* an address or the message was refused
				   locally before sending (never retried) */
};

/*
 * One recipient.  After RELAY_OK: code is the final reply for it (the
 * RCPT reply if that was not 2xx, else the reply to the final dot); after
 * RELAY_PERMFAIL the failing reply; otherwise 0.  text is the reply text
 * as the server sent it, truncated, CR/LF/controls replaced by spaces
 * (server text may carry a remote address but no letter content).
 */
struct relay_rcpt {
	const char	*addr;			/* addr-spec */
	int		 code;			/* 250, 451, 550, ... */
	char		 status[16];		/* enhanced "5.1.1" or "" */
	char		 text[200];
};

struct relay_msg {
	const char	*from;			/* envelope sender; "" = <> */
	struct relay_rcpt *rcpts;
	size_t		 nrcpts;
	const char	*data;			/* CRLF lines, ends in CRLF */
	size_t		 len;
};

/* SIGPIPE ignored, libetpan's global delay, SASL init with mutexes. */
int	 relay_global_init(void);

/*
 * Send one message over *connp (opened if NULL, kept open after RELAY_OK
 * and after RELAY_PERMFAIL, closed and set to NULL after anything else).
 * err gets a one-line reason for anything but RELAY_OK ("connect:
 * Connection refused", "tls: The certificate is NOT trusted. The name in
 * the certificate does not match the expected.", "MAIL: 421 4.3.2 ...").
 */
enum relay_result relay_send(struct relay_conn **connp,
	    const struct relay_params *, struct relay_msg *,
	    char *err, size_t errsz);

/* Close the session (QUIT) and free it; NULL is fine. */
void	 relay_close(struct relay_conn **);
/* Close it if idle for longer than params->idle_timeout. */
void	 relay_close_idle(struct relay_conn **, const struct relay_params *);
/* From any thread: make the blocked call in the owner thread return. */
void	 relay_cancel(struct relay_conn *);
/* "ok", "tempfail", ... for logs. */
const char *relay_strresult(enum relay_result);

/* Is this host a loopback name or literal?  1 or 0. */
int	 relay_host_is_loopback(const char *host);

#endif
