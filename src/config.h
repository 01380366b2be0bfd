/*
 * config.h - sealpost.conf: the option table, parsing and validation.
 *
 * The file is INI (parsed with inih).  Every option is declared once in the
 * table in config.c (section, name, type, default, bounds, live-reloadable,
 * help); man/sealpost.conf.5 documents the same set and a test checks they
 * agree.  config_load() fills a struct config; an error names file, line and
 * option ("FILE:LINE: [section] option: reason") and the caller exits with
 * EX_CONFIG (78).
 */
#ifndef SEALPOST_CONFIG_H
#define SEALPOST_CONFIG_H

#include <stdint.h>
#include <stdio.h>

#define CONFIG_EX_CONFIG	78	/* sysexits.h EX_CONFIG */

struct config {
	char		*path;		/* the file this came from */

	/* [daemon] */
	char		*database;		/* SQLite file */
	char		*master_key_file;	/* "" = systemd credential */
	char		*control_socket;	/* UNIX socket path */
	char		*log;			/* auto | stderr | journal */
	int64_t		 seal_workers;		/* threads sealing letters */
	int64_t		 commit_batch_max;	/* letters per group commit */
	int64_t		 shutdown_timeout;	/* seconds to drain on SIGTERM */
	int64_t		 parse_memory_limit;	/* bytes, parse sandbox RLIMIT_AS */
	int64_t		 parse_timeout;		/* seconds per message */

	/* [http] */
	char		*http_listen;		/* "host:port", "" = off */
	char		*http_tls_cert;		/* PEM; required off loopback */
	char		*http_tls_key;
	int		 http_allow_plaintext;	/* plaintext off loopback */
	int64_t		 http_timeout;		/* seconds */

	/* [smtp] */
	char		*smtp_listen;		/* "host:port", "" = off */
	char		*smtp_hostname;		/* greeting and EHLO name */
	char		*smtp_tls_cert;
	char		*smtp_tls_key;
	int		 smtp_allow_plaintext;	/* plaintext off loopback */
	int64_t		 smtp_timeout;		/* seconds idle per command */
	int64_t		 smtp_max_sessions;
	int64_t		 smtp_max_recipients;
	int64_t		 smtp_max_line_length;	/* bytes incl. CRLF, DATA lines */
	int64_t		 smtp_max_header_size;	/* bytes of header section */

	/* [limits] */
	int64_t		 max_letter_size;	/* bytes: HTTP body / SMTP SIZE */
	int64_t		 max_attachments;
	int64_t		 max_attachment_size;	/* bytes, each */

	/* [relay] */
	char		*relay_host;		/* smarthost; "" = no relay */
	int64_t		 relay_port;
	char		*relay_tls;		/* starttls | implicit | none */
	int		 relay_allow_plaintext;	/* tls none, loopback only */
	char		*relay_tls_name;	/* name to verify; "" = host */
	char		*relay_ca_file;		/* PEM; "" = system store */
	char		*relay_username;	/* "" = no AUTH */
	char		*relay_password_file;	/* "" = credential */
	char		*relay_helo_name;	/* "" = [smtp] hostname */
	int64_t		 relay_pool_size;	/* sessions */
	int64_t		 relay_connect_timeout;
	int64_t		 relay_command_timeout;
	int64_t		 relay_data_timeout;
	int64_t		 relay_idle_timeout;

	/* [queue] */
	int64_t		 queue_retry_first;	/* first retry delay */
	int64_t		 queue_retry_max;	/* backoff cap */
	int64_t		 queue_lifetime_routine;
	int64_t		 queue_lifetime_urgent;
	int64_t		 queue_warn_routine;	/* delay warning; 0 = off */
	int64_t		 queue_warn_urgent;
	int64_t		 queue_reply_lifetime;	/* reply token validity */
	int64_t		 queue_max_active;	/* deliveries in flight */

	/* [callbacks] */
	int64_t		 callbacks_timeout;
	char		*callbacks_ca_file;	/* "" = system store */

	/* [imap] the practice's reply mailbox (fetch.c) */
	char		*imap_host;		/* "" = no IMAP intake */
	int64_t		 imap_port;
	char		*imap_tls;		/* implicit | starttls | none */
	int		 imap_allow_plaintext;	/* tls none, loopback only */
	char		*imap_tls_name;		/* "" = host */
	char		*imap_ca_file;		/* "" = system store */
	char		*imap_username;
	char		*imap_password_file;	/* "" = credential imap.password */
	char		*imap_mailbox;		/* watched, e.g. INBOX */
	char		*imap_processed_folder;	/* handled messages go here */
	char		*imap_aside_folder;	/* too large to take in */
	char		*imap_practice;		/* practice domain; "" = by the
						   reply address's domain */
	int		 imap_idle;		/* use IDLE when offered */
	int64_t		 imap_poll_interval;	/* seconds, without IDLE */
	int64_t		 imap_idle_restart;	/* re-IDLE after, < 29 min */
	int64_t		 imap_connect_timeout;
	int64_t		 imap_command_timeout;

	/* [lmtp] */
	char		*lmtp_listen;		/* "host:port", "" = off */
	int64_t		 lmtp_timeout;
	int64_t		 lmtp_max_sessions;

	/* [replies] */
	char		*replies_authserv_id;	/* trusted A-R id; "" = none */
	int		 replies_authserv_topmost; /* trust the topmost A-R
						   whatever its id (M365) */
	char		*replies_forward;	/* smtp | imap | none */
	char		*replies_append_folder;	/* forward = imap: the folder */
	int64_t		 replies_ack_window;	/* one auto-ack per thread */
	char		*replies_red_flags_file;	/* "" = built-in list */
	char		*replies_attachment_types; /* allow-list of types */
	int64_t		 replies_max_size;	/* largest reply taken in */
};

/*
 * Load and validate `path'.  Returns 0 and sets *cfg, or -1 and writes one
 * malloc'd message to *error_r ("FILE:LINE: [sect] opt: reason").
 */
int	 config_load(const char *path, struct config **cfg, char **error_r);
/* Defaults only (for tests and the demo writer). */
struct config *config_defaults(void);
void	 config_free(struct config **);

/*
 * Print the effective settings, one "section.option = value" line each
 * (like postconf -n: with `changed_only', only those differing from the
 * default).
 */
void	 config_print(const struct config *, FILE *, int changed_only);

/*
 * Compare an old and a new config for SIGHUP: apply what may change live
 * into `cur' and log, per option, what needs a restart.  Returns the number
 * of options that need a restart.
 */
int	 config_reload_apply(struct config *cur, const struct config *next);

/*
 * Split a listen address, "host:port" (IPv4 literal or localhost) or
 * "[IPv6]:port", port 1-65535.  Returns NULL and sets a malloc'd *host_r
 * (brackets removed) and *port_r, or returns a static reason.
 */
const char *config_split_listen(const char *, char **host_r, int *port_r);

/* Iterate over the option table: for the man-page agreement test. */
struct config_option_info {
	const char	*section;
	const char	*name;
	const char	*type;		/* string, bool, int, size, duration */
	const char	*defval;
	int		 live;		/* changes on SIGHUP */
	const char	*help;
};
size_t	 config_option_count(void);
const struct config_option_info *config_option_at(size_t);

#endif
