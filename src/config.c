/*
 * config.c - sealpost.conf: the option table, parsing and validation.
 *
 * Owns: the one table of options (section, name, type, default, bounds,
 * live-reloadable, help, field), the INI reader around inih, value parsers
 * for bools, integers, sizes and durations, cross-field validation, printing
 * and the SIGHUP comparison.
 *
 * Public: config_load, config_defaults, config_free, config_print,
 * config_reload_apply, config_option_count, config_option_at,
 * config_split_listen.
 *
 * Error policy: config_load stops at the first problem and returns -1 with
 * one malloc'd message "FILE:LINE: [section] option: reason" (or
 * "FILE: reason" when no line applies); nothing is logged here except by
 * config_reload_apply.  A default that fails its own parser is a bug and
 * panics.
 *
 * File syntax: INI as inih reads it.  The reader below feeds inih one line
 * at a time so it can count lines (Debian's inih has no line number in the
 * handler), drop leading blanks (so no line is ever a continuation line),
 * bound the line length and name unknown sections at their header line.
 *
 * Live options (changed on SIGHUP by config_reload_apply) are all numeric
 * or boolean: a reload copies integers into the running config and never
 * frees a string another module may still point at.
 */
#include "build.h"

#include <sys/types.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <ini.h>

#include "config.h"
#include "log.h"
#include "util.h"

#define CONFIG_MAX_FILE		(1024 * 1024)	/* bytes of sealpost.conf */
#define CONFIG_ESC		128		/* escaped value in a message */

#define KIB			((int64_t)1024)
#define MIB			(KIB * 1024)
#define GIB			(MIB * 1024)

enum config_type {
	CT_STRING,
	CT_BOOL,
	CT_INT,
	CT_SIZE,
	CT_DURATION
};

/* A string option's validator: NULL if fine, else a static reason. */
typedef const char *(*config_check_fn)(const char *);

struct config_option {
	struct config_option_info info;	/* first: config_option_at hands it out */
	enum config_type	 type;
	int64_t			 min;
	int64_t			 max;
	config_check_fn		 check;
	size_t			 offset;
};

/* State of one config_load. */
struct config_parse {
	const char	*path;
	const char	*data;		/* the whole file */
	size_t		 len;
	size_t		 pos;
	int		 lineno;	/* lines handed to inih so far */
	char		*err;		/* first error, malloc'd */
	int		 errline;
	struct config	*cfg;
	int		*lines;		/* per option: line set on, 0 = default */
};

static const char	*config_check_path(const char *);
static const char	*config_check_path_or_empty(const char *);
static const char	*config_check_socket(const char *);
static const char	*config_check_log(const char *);
static const char	*config_check_listen(const char *);
static const char	*config_check_hostname(const char *);
static const char	*config_check_hostname_or_empty(const char *);
static const char	*config_check_relay_tls(const char *);
static const char	*config_check_username(const char *);
static const char	*config_check_mailbox(const char *);
static const char	*config_check_forward(const char *);
static const char	*config_check_types(const char *);

/* Documents and pictures a patient sends from a phone. */
#define REPLIES_ATTACHMENT_TYPES					\
	"application/pdf, image/jpeg, image/png, image/gif, image/heic, "	\
	"image/heif, image/webp, text/plain"

static const struct config_option *config_find(const char *, const char *);
static int	 config_index(const struct config_option *);
static int	 config_known_section(const char *);
static int	 config_parse_bool(const char *, int *);
static int	 config_parse_scaled(const char *, enum config_type, int64_t *);
static const char *config_set(struct config *, const struct config_option *,
		    const char *);
static char	*config_format(const struct config *,
		    const struct config_option *);
static void	 config_format_num(char *, size_t, enum config_type, int64_t);
static int	 config_equal(const struct config *, const struct config *,
		    const struct config_option *);
static void	 config_copy(struct config *, const struct config *,
		    const struct config_option *);
static char	*config_reader(char *, int, void *);
static int	 config_handler(void *, const char *, const char *,
		    const char *);
static void	 config_error(struct config_parse *, int, const char *, ...)
		    __attribute__((format(printf, 3, 4)));
static void	 config_opt_error(struct config_parse *, int,
		    const struct config_option *, const char *, ...)
		    __attribute__((format(printf, 4, 5)));
static int	 config_read_file(const char *, char **, size_t *, char **);
static void	 config_validate(struct config_parse *);
static void	 config_validate_listener(struct config_parse *,
		    const char *);
static int	 config_line_of(struct config_parse *, const char *,
		    const char *);

#define F(field)	offsetof(struct config, field)
#define OPT(sect, nm, ty, tyname, def, lo, hi, lv, chk, fld, hlp)	\
	{ { sect, nm, tyname, def, lv, hlp }, ty, lo, hi, chk, F(fld) }
#define STR(sect, nm, def, lv, chk, fld, hlp)				\
	OPT(sect, nm, CT_STRING, "string", def, 0, 0, lv, chk, fld, hlp)
#define BOOL(sect, nm, def, lv, fld, hlp)				\
	OPT(sect, nm, CT_BOOL, "bool", def, 0, 1, lv, NULL, fld, hlp)
#define INT(sect, nm, def, lo, hi, lv, fld, hlp)			\
	OPT(sect, nm, CT_INT, "int", def, lo, hi, lv, NULL, fld, hlp)
#define SIZE(sect, nm, def, lo, hi, lv, fld, hlp)			\
	OPT(sect, nm, CT_SIZE, "size", def, lo, hi, lv, NULL, fld, hlp)
#define DUR(sect, nm, def, lo, hi, lv, fld, hlp)			\
	OPT(sect, nm, CT_DURATION, "duration", def, lo, hi, lv, NULL, fld, hlp)

/*
 * The options, in the order config_print shows them.  man/sealpost.conf.5
 * documents exactly this set (tests/test_config.c checks).
 */
static const struct config_option config_options[] = {
	/* [daemon] */
	STR("daemon", "database", "/var/lib/sealpost/sealpost.db", 0,
	    config_check_path, database,
	    "SQLite database file (absolute path)"),
	STR("daemon", "master_key_file", "", 0,
	    config_check_path_or_empty, master_key_file,
	    "file holding the 32-byte master key; empty = systemd "
	    "credential master.key"),
	STR("daemon", "control_socket", "/run/sealpost/control.sock", 0,
	    config_check_socket, control_socket,
	    "UNIX socket for sealpostctl"),
	STR("daemon", "log", "auto", 0, config_check_log, log,
	    "log target: auto, stderr or journal"),
	INT("daemon", "seal_workers", "2", 1, 64, 0, seal_workers,
	    "threads that seal letters"),
	INT("daemon", "commit_batch_max", "256", 1, 10000, 1,
	    commit_batch_max, "most letters in one group commit"),
	DUR("daemon", "shutdown_timeout", "10s", 1, 600, 1, shutdown_timeout,
	    "time to drain work on SIGTERM"),
	SIZE("daemon", "parse_memory_limit", "256M", 16 * MIB, 4 * GIB, 1,
	    parse_memory_limit, "address-space limit of the parse sandbox"),
	DUR("daemon", "parse_timeout", "10s", 1, 300, 1, parse_timeout,
	    "time the parse sandbox may spend on one message"),

	/* [http] */
	STR("http", "listen", "127.0.0.1:8025", 0, config_check_listen,
	    http_listen, "HTTP API address host:port; empty = off"),
	STR("http", "tls_cert", "", 0, config_check_path_or_empty,
	    http_tls_cert, "PEM certificate chain for HTTPS"),
	STR("http", "tls_key", "", 0, config_check_path_or_empty,
	    http_tls_key, "PEM private key for HTTPS"),
	BOOL("http", "allow_plaintext", "no", 0, http_allow_plaintext,
	    "allow plain HTTP on a non-loopback address"),
	DUR("http", "timeout", "30s", 1, 3600, 1, http_timeout,
	    "idle time before an HTTP connection is closed"),

	/* [smtp] */
	STR("smtp", "listen", "127.0.0.1:8587", 0, config_check_listen,
	    smtp_listen, "SMTP submission address host:port; empty = off"),
	STR("smtp", "hostname", "localhost", 0, config_check_hostname,
	    smtp_hostname, "name in the greeting and EHLO reply"),
	STR("smtp", "tls_cert", "", 0, config_check_path_or_empty,
	    smtp_tls_cert, "PEM certificate chain for STARTTLS"),
	STR("smtp", "tls_key", "", 0, config_check_path_or_empty,
	    smtp_tls_key, "PEM private key for STARTTLS"),
	BOOL("smtp", "allow_plaintext", "no", 0, smtp_allow_plaintext,
	    "allow SMTP without TLS on a non-loopback address"),
	DUR("smtp", "timeout", "5m", 1, 3600, 1, smtp_timeout,
	    "idle time allowed per command"),
	INT("smtp", "max_sessions", "100", 1, 10000, 1, smtp_max_sessions,
	    "most concurrent SMTP sessions"),
	INT("smtp", "max_recipients", "100", 1, 1000, 1, smtp_max_recipients,
	    "most RCPT TO per message"),
	INT("smtp", "max_line_length", "1000", 512, 65536, 0,
	    smtp_max_line_length, "longest command or DATA line, with CRLF"),
	SIZE("smtp", "max_header_size", "100K", 4 * KIB, 16 * MIB, 1,
	    smtp_max_header_size, "largest header section of a message"),

	/* [limits] */
	SIZE("limits", "max_letter_size", "25M", KIB, GIB, 1, max_letter_size,
	    "largest letter (HTTP body, SMTP SIZE)"),
	INT("limits", "max_attachments", "20", 0, 1000, 1, max_attachments,
	    "most attachments in one letter"),
	SIZE("limits", "max_attachment_size", "25M", KIB, GIB, 1,
	    max_attachment_size, "largest single attachment"),

	/* [relay] */
	STR("relay", "host", "", 0, config_check_hostname_or_empty,
	    relay_host, "smarthost name or address; empty = letters wait "
	    "in the queue"),
	INT("relay", "port", "587", 1, 65535, 0, relay_port,
	    "smarthost port"),
	STR("relay", "tls", "starttls", 0, config_check_relay_tls, relay_tls,
	    "starttls, implicit (port 465) or none (loopback test peers "
	    "only, with allow_plaintext)"),
	BOOL("relay", "allow_plaintext", "no", 0, relay_allow_plaintext,
	    "allow tls = none to a loopback smarthost"),
	STR("relay", "tls_name", "", 0, config_check_hostname_or_empty,
	    relay_tls_name, "name the smarthost certificate must carry "
	    "(and SNI); empty = host"),
	STR("relay", "ca_file", "", 0, config_check_path_or_empty,
	    relay_ca_file, "PEM trust anchors for the smarthost; empty = "
	    "system trust store"),
	STR("relay", "username", "", 0, config_check_username,
	    relay_username, "AUTH user name; empty = no AUTH"),
	STR("relay", "password_file", "", 0, config_check_path_or_empty,
	    relay_password_file, "file holding the AUTH password; empty = "
	    "systemd credential relay.password"),
	STR("relay", "helo_name", "", 0, config_check_hostname_or_empty,
	    relay_helo_name, "EHLO name; empty = [smtp] hostname"),
	INT("relay", "pool_size", "4", 1, 64, 0, relay_pool_size,
	    "concurrent smarthost sessions"),
	DUR("relay", "connect_timeout", "30s", 1, 600, 0,
	    relay_connect_timeout, "connect, greeting and TLS handshake"),
	DUR("relay", "command_timeout", "1m", 1, 3600, 0,
	    relay_command_timeout, "reply to each SMTP command"),
	DUR("relay", "data_timeout", "5m", 1, 3600, 0, relay_data_timeout,
	    "reply after the end of the message data"),
	DUR("relay", "idle_timeout", "1m", 1, 3600, 0, relay_idle_timeout,
	    "keep an idle smarthost session this long"),

	/* [queue] */
	DUR("queue", "retry_first", "1m", 1, 86400, 1, queue_retry_first,
	    "delay before the first retry; doubles each time, with jitter"),
	DUR("queue", "retry_max", "1h", 1, 86400, 1, queue_retry_max,
	    "longest delay between retries"),
	DUR("queue", "lifetime_routine", "3d", 10, 30 * 86400, 1,
	    queue_lifetime_routine, "time a routine letter may take to "
	    "deliver before it expires to paper"),
	DUR("queue", "lifetime_urgent", "4h", 10, 30 * 86400, 1,
	    queue_lifetime_urgent, "the same for an urgent letter"),
	DUR("queue", "warn_routine", "1d", 0, 30 * 86400, 1,
	    queue_warn_routine, "age of an undelivered routine letter at "
	    "which the practice is warned; 0 = never"),
	DUR("queue", "warn_urgent", "1h", 0, 30 * 86400, 1,
	    queue_warn_urgent, "the same for an urgent letter"),
	DUR("queue", "reply_lifetime", "180d", 86400, 3650 * 86400, 1,
	    queue_reply_lifetime, "how long a patient may reply to a letter"),
	INT("queue", "max_active", "200", 1, 100000, 1, queue_max_active,
	    "most deliveries in flight at once (claimed, not yet settled)"),

	/* [callbacks] */
	DUR("callbacks", "timeout", "10s", 1, 300, 1, callbacks_timeout,
	    "time for one webhook callback request"),
	STR("callbacks", "ca_file", "", 0, config_check_path_or_empty,
	    callbacks_ca_file, "PEM trust anchors for callback URLs; empty = "
	    "system trust store"),

	/* [imap] */
	STR("imap", "host", "", 0, config_check_hostname_or_empty, imap_host,
	    "IMAP server holding the practice's reply mailbox; empty = no "
	    "IMAP intake"),
	INT("imap", "port", "993", 1, 65535, 0, imap_port, "IMAP port"),
	STR("imap", "tls", "implicit", 0, config_check_relay_tls, imap_tls,
	    "implicit (port 993), starttls or none (loopback test servers "
	    "only, with allow_plaintext)"),
	BOOL("imap", "allow_plaintext", "no", 0, imap_allow_plaintext,
	    "allow tls = none to a loopback IMAP server"),
	STR("imap", "tls_name", "", 0, config_check_hostname_or_empty,
	    imap_tls_name, "name the IMAP server certificate must carry "
	    "(and SNI); empty = host"),
	STR("imap", "ca_file", "", 0, config_check_path_or_empty,
	    imap_ca_file, "PEM trust anchors for the IMAP server; empty = "
	    "system trust store"),
	STR("imap", "username", "", 0, config_check_username, imap_username,
	    "IMAP login name"),
	STR("imap", "password_file", "", 0, config_check_path_or_empty,
	    imap_password_file, "file holding the IMAP password; empty = "
	    "systemd credential imap.password"),
	STR("imap", "mailbox", "INBOX", 0, config_check_mailbox, imap_mailbox,
	    "the mailbox replies arrive in"),
	STR("imap", "processed_folder", "sealpost-processed", 0,
	    config_check_mailbox, imap_processed_folder,
	    "where a message is moved once it is committed"),
	STR("imap", "aside_folder", "sealpost-too-large", 0,
	    config_check_mailbox, imap_aside_folder,
	    "where a message too large to take in is moved (and quarantined)"),
	STR("imap", "practice", "", 0, config_check_hostname_or_empty,
	    imap_practice, "domain of the practice this mailbox serves; "
	    "empty = the practice of the reply address"),
	BOOL("imap", "idle", "yes", 0, imap_idle,
	    "wait with IDLE when the server offers it"),
	DUR("imap", "poll_interval", "1m", 1, 3600, 0, imap_poll_interval,
	    "time between checks without IDLE"),
	DUR("imap", "idle_restart", "25m", 10, 1740, 0, imap_idle_restart,
	    "renew IDLE after this long (below the 29 minutes of RFC 2177)"),
	DUR("imap", "connect_timeout", "30s", 1, 600, 0,
	    imap_connect_timeout, "connect, greeting and TLS handshake"),
	DUR("imap", "command_timeout", "1m", 1, 3600, 0,
	    imap_command_timeout, "reply to each IMAP command"),

	/* [lmtp] */
	STR("lmtp", "listen", "", 0, config_check_listen, lmtp_listen,
	    "LMTP address host:port for the practice's own MX; empty = off"),
	DUR("lmtp", "timeout", "5m", 1, 3600, 0, lmtp_timeout,
	    "idle time allowed per LMTP command"),
	INT("lmtp", "max_sessions", "20", 1, 10000, 0, lmtp_max_sessions,
	    "most concurrent LMTP sessions"),

	/* [replies] */
	STR("replies", "authserv_id", "", 0, config_check_hostname_or_empty,
	    replies_authserv_id, "authserv-id of the receiving MX whose "
	    "Authentication-Results are trusted; empty = none"),
	BOOL("replies", "authserv_topmost", "no", 1, replies_authserv_topmost,
	    "trust the topmost Authentication-Results whatever its id "
	    "(providers that write none, such as Microsoft 365)"),
	STR("replies", "forward", "smtp", 0, config_check_forward,
	    replies_forward, "how a filed reply reaches the clinician: smtp "
	    "(through the relay), imap (APPEND to append_folder) or none"),
	STR("replies", "append_folder", "sealpost-replies", 0,
	    config_check_mailbox, replies_append_folder,
	    "forward = imap: the shared folder replies are appended to"),
	DUR("replies", "ack_window", "1d", 0, 30 * 86400, 1,
	    replies_ack_window, "at most one auto-acknowledgement per thread "
	    "in this time; 0 = every reply"),
	STR("replies", "red_flags_file", "", 0, config_check_path_or_empty,
	    replies_red_flags_file, "phrases that mark a reply urgent, one a "
	    "line; empty = the built-in list"),
	STR("replies", "attachment_types", REPLIES_ATTACHMENT_TYPES, 0,
	    config_check_types, replies_attachment_types,
	    "comma-separated media types a filed reply may carry; others "
	    "quarantine the reply"),
	SIZE("replies", "max_size", "25M", KIB, GIB, 1, replies_max_size,
	    "largest reply message taken in"),
};

#undef F
#undef OPT
#undef STR
#undef BOOL
#undef INT
#undef SIZE
#undef DUR

/* Field access by table offset. */
#define CFG_STR(c, o)	(*(char **)(void *)((char *)(c) + (o)->offset))
#define CFG_CSTR(c, o)	(*(char *const *)(const void *)			\
			    ((const char *)(c) + (o)->offset))
#define CFG_I64(c, o)	(*(int64_t *)(void *)((char *)(c) + (o)->offset))
#define CFG_CI64(c, o)	(*(const int64_t *)(const void *)		\
			    ((const char *)(c) + (o)->offset))
#define CFG_INT(c, o)	(*(int *)(void *)((char *)(c) + (o)->offset))
#define CFG_CINT(c, o)	(*(const int *)(const void *)			\
			    ((const char *)(c) + (o)->offset))

/* Absolute path, no control characters. */
static const char *
config_check_path(const char *s)
{
	const unsigned char	*p;

	if (*s == '\0')
		return "a path is required";
	if (*s != '/')
		return "must be an absolute path";
	if (strlen(s) >= PATH_MAX)
		return "path too long";
	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		if (*p < 0x20 || *p == 0x7f)
			return "control character in path";
	}
	return NULL;
}

/* Empty, or an absolute path. */
static const char *
config_check_path_or_empty(const char *s)
{
	if (*s == '\0')
		return NULL;
	return config_check_path(s);
}

/* An absolute path that fits in sockaddr_un. */
static const char *
config_check_socket(const char *s)
{
	const char		*why;
	struct sockaddr_un	 sun;

	if ((why = config_check_path(s)) != NULL)
		return why;
	if (strlen(s) >= sizeof(sun.sun_path))
		return "socket path too long for a UNIX socket";
	return NULL;
}

/* log = auto | stderr | journal */
static const char *
config_check_log(const char *s)
{
	if (strcmp(s, "auto") == 0 || strcmp(s, "stderr") == 0 ||
	    strcmp(s, "journal") == 0)
		return NULL;
	return "expected auto, stderr or journal";
}

/* Empty, or a host name (an address literal is a host name too). */
static const char *
config_check_hostname_or_empty(const char *s)
{
	struct in6_addr	 a6;

	if (*s == '\0')
		return NULL;
	if (inet_pton(AF_INET6, s, &a6) == 1)
		return NULL;
	return config_check_hostname(s);
}

/* relay tls = starttls | implicit | none */
static const char *
config_check_relay_tls(const char *s)
{
	if (strcmp(s, "starttls") == 0 || strcmp(s, "implicit") == 0 ||
	    strcmp(s, "none") == 0)
		return NULL;
	return "expected starttls, implicit or none";
}

/* Printable ASCII without spaces, at most 255: it goes into SASL. */
static const char *
config_check_username(const char *s)
{
	const unsigned char	*p;

	if (strlen(s) > 255)
		return "user name longer than 255";
	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		if (*p <= 0x20 || *p >= 0x7f)
			return "user name must be printable ASCII, no spaces";
	}
	return NULL;
}

/* An IMAP mailbox name: printable ASCII, no quotes, backslash or '*%'. */
static const char *
config_check_mailbox(const char *s)
{
	const unsigned char	*p;

	if (*s == '\0')
		return "empty mailbox name";
	if (strlen(s) > 200)
		return "mailbox name longer than 200";
	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		if (*p < 0x20 || *p >= 0x7f || *p == '"' || *p == '\\' ||
		    *p == '*' || *p == '%')
			return "mailbox name must be printable ASCII without "
			    "quotes, backslash, '*' or '%'";
	}
	return NULL;
}

static const char *
config_check_forward(const char *s)
{
	if (strcmp(s, "smtp") == 0 || strcmp(s, "imap") == 0 ||
	    strcmp(s, "none") == 0)
		return NULL;
	return "must be smtp, imap or none";
}

/* Comma-separated media types "type/subtype" (lower-case ASCII). */
static const char *
config_check_types(const char *s)
{
	const char	*p = s, *e, *slash;

	if (strlen(s) > 4096)
		return "type list longer than 4096";
	while (*p != '\0') {
		while (*p == ' ' || *p == ',')
			p++;
		if (*p == '\0')
			break;
		e = p + strcspn(p, ",");
		while (e > p && e[-1] == ' ')
			e--;
		slash = memchr(p, '/', (size_t)(e - p));
		if (slash == NULL || slash == p || slash + 1 == e)
			return "each entry must be a media type type/subtype";
		for (; p < e; p++) {
			if (!((*p >= 'a' && *p <= 'z') ||
			    (*p >= '0' && *p <= '9') || strchr("/.+-", *p)))
				return "media types are lower-case "
				    "type/subtype";
		}
		p = e;
	}
	return NULL;
}

/* Empty (off), or a listen address config_split_listen accepts. */
static const char *
config_check_listen(const char *s)
{
	const char	*why;
	char		*host;
	int		 port;

	if (*s == '\0')
		return NULL;
	if ((why = config_split_listen(s, &host, &port)) != NULL)
		return why;
	free(host);
	return NULL;
}

/*
 * A domain name for the SMTP greeting (RFC 5321 Domain):
 *   Domain = sub-domain *("." sub-domain)
 *   sub-domain = Let-dig [Ldh-str]
 */
static const char *
config_check_hostname(const char *s)
{
	size_t	 label = 0, i, len = strlen(s);

	if (len == 0)
		return "a host name is required";
	if (len > 253)
		return "host name too long";
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '.') {
			if (label == 0 || s[i - 1] == '-')
				return "bad host name";
			label = 0;
			continue;
		}
		if (!isascii(c) || !(isalnum(c) || c == '-'))
			return "bad host name (letters, digits, '-' and '.')";
		if (c == '-' && label == 0)
			return "bad host name";
		if (++label > 63)
			return "host name label longer than 63";
	}
	if (label == 0 || s[len - 1] == '-')
		return "bad host name";
	return NULL;
}

/*
 * Split a listen address:
 *   listen = host ":" port / "[" IPv6 "]" ":" port
 * where host is an IPv4 literal or "localhost".  Returns NULL and sets a
 * malloc'd *host_r (without brackets) and *port_r, or a static reason.
 */
const char *
config_split_listen(const char *s, char **host_r, int *port_r)
{
	const char		*colon, *end;
	char			*host;
	int64_t			 port;
	struct in_addr		 a4;
	struct in6_addr		 a6;

	*host_r = NULL;
	*port_r = 0;
	if (*s == '[') {
		if ((end = strchr(s, ']')) == NULL)
			return "missing ']' after IPv6 address";
		if (end[1] != ':')
			return "expected [IPv6]:port";
		colon = end + 1;
		host = xstrndup(s + 1, (size_t)(end - s - 1));
		if (inet_pton(AF_INET6, host, &a6) != 1) {
			free(host);
			return "bad IPv6 address";
		}
	} else {
		if ((colon = strrchr(s, ':')) == NULL)
			return "expected host:port";
		host = xstrndup(s, (size_t)(colon - s));
		if (strchr(host, ':') != NULL) {
			free(host);
			return "an IPv6 address needs brackets: [::1]:port";
		}
		if (strcmp(host, "localhost") != 0 &&
		    inet_pton(AF_INET, host, &a4) != 1) {
			free(host);
			return "host must be an IPv4 address, [IPv6] or "
			    "localhost";
		}
	}
	if (util_parse_i64(colon + 1, 1, 65535, &port) == -1) {
		free(host);
		return "port must be 1-65535";
	}
	*host_r = host;
	*port_r = (int)port;
	return NULL;
}

/* The option named section.name, or NULL. */
static const struct config_option *
config_find(const char *section, const char *name)
{
	size_t	 i;

	for (i = 0; i < nitems(config_options); i++) {
		if (strcmp(config_options[i].info.section, section) == 0 &&
		    strcmp(config_options[i].info.name, name) == 0)
			return &config_options[i];
	}
	return NULL;
}

/* Table index of an option. */
static int
config_index(const struct config_option *o)
{
	return (int)(o - config_options);
}

/* Does any option live in this section? */
static int
config_known_section(const char *section)
{
	size_t	 i;

	for (i = 0; i < nitems(config_options); i++) {
		if (strcmp(config_options[i].info.section, section) == 0)
			return 1;
	}
	return 0;
}

/* yes/no/true/false/on/off/1/0, case-insensitive. */
static int
config_parse_bool(const char *s, int *out)
{
	if (strcasecmp(s, "yes") == 0 || strcasecmp(s, "true") == 0 ||
	    strcasecmp(s, "on") == 0 || strcmp(s, "1") == 0) {
		*out = 1;
		return 0;
	}
	if (strcasecmp(s, "no") == 0 || strcasecmp(s, "false") == 0 ||
	    strcasecmp(s, "off") == 0 || strcmp(s, "0") == 0) {
		*out = 0;
		return 0;
	}
	return -1;
}

/*
 * A decimal number with an optional unit:
 *   int      = 1*DIGIT / "-" 1*DIGIT
 *   size     = 1*DIGIT [ "K" / "M" / "G" ]        (1024-based, any case)
 *   duration = 1*DIGIT [ "s" / "m" / "h" / "d" ]  (plain = seconds)
 */
static int
config_parse_scaled(const char *s, enum config_type type, int64_t *out)
{
	const char	*p = s;
	int64_t		 v = 0, mul = 1;
	int		 neg = 0;

	if (type == CT_INT && *p == '-') {
		neg = 1;
		p++;
	}
	if (!isdigit((unsigned char)*p))
		return -1;
	for (; isdigit((unsigned char)*p); p++) {
		if (v > (INT64_MAX - 9) / 10)
			return -1;
		v = v * 10 + (*p - '0');
	}
	if (*p != '\0') {
		if (p[1] != '\0')
			return -1;
		switch (type) {
		case CT_SIZE:
			switch (*p) {
			case 'k': case 'K': mul = KIB; break;
			case 'm': case 'M': mul = MIB; break;
			case 'g': case 'G': mul = GIB; break;
			default: return -1;
			}
			break;
		case CT_DURATION:
			switch (*p) {
			case 's': mul = 1; break;
			case 'm': mul = 60; break;
			case 'h': mul = 3600; break;
			case 'd': mul = 86400; break;
			default: return -1;
			}
			break;
		default:
			return -1;
		}
	}
	if (v > INT64_MAX / mul)
		return -1;
	*out = neg ? -v * mul : v * mul;
	return 0;
}

/* Set one option from its text; NULL or a static reason. */
static const char *
config_set(struct config *cfg, const struct config_option *o,
    const char *value)
{
	const char	*why;
	int64_t		 v;
	int		 b;

	switch (o->type) {
	case CT_STRING:
		if (o->check != NULL && (why = o->check(value)) != NULL)
			return why;
		free(CFG_STR(cfg, o));
		CFG_STR(cfg, o) = xstrdup(value);
		return NULL;
	case CT_BOOL:
		if (config_parse_bool(value, &b) == -1)
			return "bad value: expected yes or no";
		CFG_INT(cfg, o) = b;
		return NULL;
	case CT_INT:
	case CT_SIZE:
	case CT_DURATION:
		if (config_parse_scaled(value, o->type, &v) == -1) {
			if (o->type == CT_SIZE)
				return "bad value: expected a size such as "
				    "25M, 100K, 1G or bytes";
			if (o->type == CT_DURATION)
				return "bad value: expected a duration such "
				    "as 30s, 5m, 1h or seconds";
			return "bad value: expected an integer";
		}
		if (v < o->min || v > o->max)
			return "out of range";
		CFG_I64(cfg, o) = v;
		return NULL;
	}
	log_panic("config_set: type %d", (int)o->type);
}

/* Print a number the way it is written in the file. */
static void
config_format_num(char *buf, size_t len, enum config_type type, int64_t v)
{
	long long	 x = (long long)v;

	if (type == CT_SIZE && v != 0) {
		if (v % GIB == 0)
			snprintf(buf, len, "%lldG", x / GIB);
		else if (v % MIB == 0)
			snprintf(buf, len, "%lldM", x / MIB);
		else if (v % KIB == 0)
			snprintf(buf, len, "%lldK", x / KIB);
		else
			snprintf(buf, len, "%lld", x);
	} else if (type == CT_DURATION) {
		if (v != 0 && v % 86400 == 0)
			snprintf(buf, len, "%lldd", x / 86400);
		else if (v != 0 && v % 3600 == 0)
			snprintf(buf, len, "%lldh", x / 3600);
		else if (v != 0 && v % 60 == 0)
			snprintf(buf, len, "%lldm", x / 60);
		else
			snprintf(buf, len, "%llds", x);
	} else
		snprintf(buf, len, "%lld", x);
}

/* The normalised value of an option, malloc'd. */
static char *
config_format(const struct config *cfg, const struct config_option *o)
{
	char	 buf[64];

	switch (o->type) {
	case CT_STRING:
		return xstrdup(CFG_CSTR(cfg, o) != NULL ? CFG_CSTR(cfg, o) : "");
	case CT_BOOL:
		return xstrdup(CFG_CINT(cfg, o) ? "yes" : "no");
	case CT_INT:
	case CT_SIZE:
	case CT_DURATION:
		config_format_num(buf, sizeof(buf), o->type, CFG_CI64(cfg, o));
		return xstrdup(buf);
	}
	log_panic("config_format: type %d", (int)o->type);
}

/* Do two configs agree on one option? */
static int
config_equal(const struct config *a, const struct config *b,
    const struct config_option *o)
{
	const char	*sa, *sb;

	switch (o->type) {
	case CT_STRING:
		sa = CFG_CSTR(a, o) != NULL ? CFG_CSTR(a, o) : "";
		sb = CFG_CSTR(b, o) != NULL ? CFG_CSTR(b, o) : "";
		return strcmp(sa, sb) == 0;
	case CT_BOOL:
		return CFG_CINT(a, o) == CFG_CINT(b, o);
	case CT_INT:
	case CT_SIZE:
	case CT_DURATION:
		return CFG_CI64(a, o) == CFG_CI64(b, o);
	}
	log_panic("config_equal: type %d", (int)o->type);
}

/* Copy one option from src into dst. */
static void
config_copy(struct config *dst, const struct config *src,
    const struct config_option *o)
{
	switch (o->type) {
	case CT_STRING:
		free(CFG_STR(dst, o));
		CFG_STR(dst, o) = xstrdup(CFG_CSTR(src, o) != NULL ?
		    CFG_CSTR(src, o) : "");
		return;
	case CT_BOOL:
		CFG_INT(dst, o) = CFG_CINT(src, o);
		return;
	case CT_INT:
	case CT_SIZE:
	case CT_DURATION:
		CFG_I64(dst, o) = CFG_CI64(src, o);
		return;
	}
	log_panic("config_copy: type %d", (int)o->type);
}

/* Record the first error, at a line ("FILE:LINE: ...") or none. */
static void
config_error(struct config_parse *p, int line, const char *fmt, ...)
{
	va_list	 ap;
	char	*msg;

	if (p->err != NULL)
		return;
	va_start(ap, fmt);
	xvasprintf(&msg, fmt, ap);
	va_end(ap);
	if (line > 0)
		xasprintf(&p->err, "%s:%d: %s", p->path, line, msg);
	else
		xasprintf(&p->err, "%s: %s", p->path, msg);
	p->errline = line;
	free(msg);
}

/* Record the first error about one option. */
static void
config_opt_error(struct config_parse *p, int line,
    const struct config_option *o, const char *fmt, ...)
{
	va_list	 ap;
	char	*msg;

	if (p->err != NULL)
		return;
	va_start(ap, fmt);
	xvasprintf(&msg, fmt, ap);
	va_end(ap);
	config_error(p, line, "[%s] %s: %s", o->info.section, o->info.name,
	    msg);
	free(msg);
}

/*
 * inih's fgets-style reader: hand over one line without its end of line
 * and leading blanks; count it; refuse an over-long line or a NUL byte;
 * check a "[section]" header.  NULL ends parsing (EOF or first error).
 */
static char *
config_reader(char *buf, int num, void *arg)
{
	struct config_parse	*p = arg;
	const char		*s, *nl, *end;
	size_t			 len, n;
	char			 esc[CONFIG_ESC], *name;

	if (p->err != NULL || p->pos >= p->len || num < 2)
		return NULL;
	s = p->data + p->pos;
	nl = memchr(s, '\n', p->len - p->pos);
	len = nl != NULL ? (size_t)(nl - s) : p->len - p->pos;
	p->pos += len + (nl != NULL);
	p->lineno++;

	if (memchr(s, '\0', len) != NULL) {
		config_error(p, p->lineno, "NUL byte in line");
		return NULL;
	}
	if (len > 0 && s[len - 1] == '\r')
		len--;
	if (p->lineno == 1 && len >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0) {
		s += 3;
		len -= 3;
	}
	while (len > 0 && (*s == ' ' || *s == '\t')) {
		s++;
		len--;
	}
	/* A comment is never too long: inih needs only its first byte. */
	if (len > 0 && (*s == '#' || *s == ';'))
		len = 1;
	if (len >= (size_t)num) {
		config_error(p, p->lineno, "line too long (at most %d bytes)",
		    num - 1);
		return NULL;
	}
	memcpy(buf, s, len);
	buf[len] = '\0';

	/* section = "[" name "]" [comment]; inih keeps blanks in name. */
	if (buf[0] == '[') {
		if ((end = strchr(buf, ']')) == NULL) {
			config_error(p, p->lineno,
			    "syntax error: '[' without ']'");
			return NULL;
		}
		n = (size_t)(end - buf - 1);
		name = xstrndup(buf + 1, n);
		if (!config_known_section(name)) {
			log_escape(esc, sizeof(esc), name, n);
			config_error(p, p->lineno, "[%s]: unknown section "
			    "(expected daemon, http, smtp or limits)", esc);
		}
		free(name);
		if (p->err != NULL)
			return NULL;
	}
	return buf;
}

/* inih's handler: one "name = value" in a section. */
static int
config_handler(void *arg, const char *section, const char *name,
    const char *value)
{
	struct config_parse		*p = arg;
	const struct config_option	*o;
	const char			*why;
	char				 esc[CONFIG_ESC], vesc[CONFIG_ESC];
	size_t				 i;
	int				 idx;

	if (p->err != NULL)
		return 1;
	log_escape(esc, sizeof(esc), name, strlen(name));
	if (*section == '\0') {
		config_error(p, p->lineno, "%s: option before any [section]",
		    esc);
		return 1;
	}
	if (!config_known_section(section)) {
		char	 sesc[CONFIG_ESC];

		log_escape(sesc, sizeof(sesc), section, strlen(section));
		config_error(p, p->lineno, "[%s] %s: unknown section", sesc,
		    esc);
		return 1;
	}
	if ((o = config_find(section, name)) == NULL) {
		for (i = 0; i < nitems(config_options); i++) {
			if (strcmp(config_options[i].info.name, name) == 0)
				break;
		}
		if (i < nitems(config_options))
			config_error(p, p->lineno, "[%s] %s: unknown option "
			    "(%s belongs in [%s])", section, esc, esc,
			    config_options[i].info.section);
		else
			config_error(p, p->lineno, "[%s] %s: unknown option",
			    section, esc);
		return 1;
	}
	idx = config_index(o);
	if (p->lines[idx] != 0) {
		config_opt_error(p, p->lineno, o,
		    "duplicate option (first set on line %d)", p->lines[idx]);
		return 1;
	}
	p->lines[idx] = p->lineno;
	if ((why = config_set(p->cfg, o, value)) != NULL) {
		log_escape(vesc, sizeof(vesc), value, strlen(value));
		if (strcmp(why, "out of range") == 0) {
			char	 lo[32], hi[32];

			config_format_num(lo, sizeof(lo), o->type, o->min);
			config_format_num(hi, sizeof(hi), o->type, o->max);
			config_opt_error(p, p->lineno, o,
			    "value \"%s\" out of range (%s..%s)", vesc, lo, hi);
		} else
			config_opt_error(p, p->lineno, o, "\"%s\": %s", vesc,
			    why);
	}
	return 1;
}

/* Read a whole (bounded) file; 0, or -1 with a malloc'd reason. */
static int
config_read_file(const char *path, char **data_r, size_t *len_r,
    char **why_r)
{
	struct stat	 st;
	char		*data;
	size_t		 len = 0;
	ssize_t		 n;
	int		 fd;

	*data_r = NULL;
	*len_r = 0;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) == -1) {
		xasprintf(why_r, "%s: cannot open: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == -1) {
		xasprintf(why_r, "%s: cannot open: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		xasprintf(why_r, "%s: cannot open: not a regular file", path);
		close(fd);
		return -1;
	}
	data = xmalloc(CONFIG_MAX_FILE + 1);
	for (;;) {
		n = read(fd, data + len, CONFIG_MAX_FILE + 1 - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			xasprintf(why_r, "%s: cannot open: %s", path,
			    strerror(errno));
			free(data);
			close(fd);
			return -1;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > CONFIG_MAX_FILE) {
			xasprintf(why_r, "%s: file too large (more than %d "
			    "bytes)", path, CONFIG_MAX_FILE);
			free(data);
			close(fd);
			return -1;
		}
	}
	close(fd);
	data[len] = '\0';
	*data_r = data;
	*len_r = len;
	return 0;
}

/* Line an option was set on, or 0 when it has its default. */
static int
config_line_of(struct config_parse *p, const char *section, const char *name)
{
	const struct config_option	*o;

	if ((o = config_find(section, name)) == NULL)
		log_panic("config_line_of: no option %s.%s", section, name);
	return p->lines[config_index(o)];
}

/* Cross-field rules for [http] or [smtp]: TLS pair and the loopback rule. */
static void
config_validate_listener(struct config_parse *p, const char *section)
{
	const struct config_option	*listen_o, *cert_o, *key_o, *plain_o;
	const char			*listen, *cert, *key;
	char				*host;
	int				 port, plain, line;

	listen_o = config_find(section, "listen");
	cert_o = config_find(section, "tls_cert");
	key_o = config_find(section, "tls_key");
	plain_o = config_find(section, "allow_plaintext");
	listen = CFG_CSTR(p->cfg, listen_o);
	cert = CFG_CSTR(p->cfg, cert_o);
	key = CFG_CSTR(p->cfg, key_o);
	plain = CFG_CINT(p->cfg, plain_o);

	if (*cert != '\0' && *key == '\0') {
		config_opt_error(p, config_line_of(p, section, "tls_cert"),
		    key_o, "tls_cert is set but tls_key is not");
		return;
	}
	if (*key != '\0' && *cert == '\0') {
		config_opt_error(p, config_line_of(p, section, "tls_key"),
		    cert_o, "tls_key is set but tls_cert is not");
		return;
	}
	if (*listen == '\0')
		return;
	if (config_split_listen(listen, &host, &port) != NULL)
		log_panic("config: [%s] listen passed its check", section);
	if (!util_is_loopback(host) && *cert == '\0' && !plain) {
		line = config_line_of(p, section, "listen");
		if (line == 0)
			line = config_line_of(p, section, "allow_plaintext");
		config_opt_error(p, line, listen_o, "%s is not a loopback "
		    "address: set tls_cert and tls_key, or allow_plaintext = "
		    "yes", host);
	}
	free(host);
}

/* Rules that involve more than one option. */
static void
config_validate(struct config_parse *p)
{
	const struct config *c = p->cfg;
	int		 line;

	config_validate_listener(p, "http");
	config_validate_listener(p, "smtp");
	if (*p->cfg->lmtp_listen != '\0') {
		char	*host;
		int	 port;

		if (config_split_listen(p->cfg->lmtp_listen, &host, &port)
		    != NULL)
			log_panic("config: [lmtp] listen passed its check");
		if (!util_is_loopback(host))
			config_opt_error(p, config_line_of(p, "lmtp", "listen"),
			    config_find("lmtp", "listen"), "LMTP has no TLS "
			    "or authentication: listen on loopback only, next "
			    "to the MX");
		free(host);
	}

	if (*c->http_listen != '\0' &&
	    strcmp(c->http_listen, c->smtp_listen) == 0) {
		if ((line = config_line_of(p, "smtp", "listen")) != 0)
			config_opt_error(p, line, config_find("smtp", "listen"),
			    "same address as [http] listen");
		else
			config_opt_error(p, config_line_of(p, "http",
			    "listen"), config_find("http", "listen"),
			    "same address as [smtp] listen");
	}
	if (c->smtp_max_header_size < c->smtp_max_line_length) {
		line = config_line_of(p, "smtp", "max_header_size");
		if (line == 0)
			line = config_line_of(p, "smtp", "max_line_length");
		config_opt_error(p, line, config_find("smtp",
		    "max_header_size"), "smaller than max_line_length (%lld)",
		    (long long)c->smtp_max_line_length);
	}
	if (c->queue_retry_max < c->queue_retry_first)
		config_opt_error(p, config_line_of(p, "queue", "retry_max"),
		    config_find("queue", "retry_max"),
		    "shorter than retry_first (%llds)",
		    (long long)c->queue_retry_first);
	if (strcmp(c->relay_tls, "none") == 0 && *c->relay_host != '\0') {
		line = config_line_of(p, "relay", "tls");
		if (!c->relay_allow_plaintext)
			config_opt_error(p, line, config_find("relay", "tls"),
			    "none needs allow_plaintext = yes");
		else if (!util_is_loopback(c->relay_host))
			config_opt_error(p, line, config_find("relay", "tls"),
			    "none is allowed only to a loopback smarthost");
	}
	if (strcmp(c->imap_tls, "none") == 0 && *c->imap_host != '\0') {
		line = config_line_of(p, "imap", "tls");
		if (!c->imap_allow_plaintext)
			config_opt_error(p, line, config_find("imap", "tls"),
			    "none needs allow_plaintext = yes");
		else if (!util_is_loopback(c->imap_host))
			config_opt_error(p, line, config_find("imap", "tls"),
			    "none is allowed only to a loopback IMAP server");
	}
	if (*c->imap_host != '\0' && *c->imap_username == '\0')
		config_opt_error(p, config_line_of(p, "imap", "host"),
		    config_find("imap", "username"),
		    "needed when [imap] host is set");
	if (strcmp(c->imap_processed_folder, c->imap_mailbox) == 0)
		config_opt_error(p, config_line_of(p, "imap",
		    "processed_folder"), config_find("imap", "processed_folder"),
		    "must differ from mailbox");
	if (strcmp(c->replies_forward, "imap") == 0 && *c->imap_host == '\0')
		config_opt_error(p, config_line_of(p, "replies", "forward"),
		    config_find("replies", "forward"),
		    "imap needs an [imap] host");
}

/* Load and validate a file. */
int
config_load(const char *path, struct config **cfg_r, char **error_r)
{
	struct config_parse	 p;
	char			*data;
	size_t			 len;
	int			 r, lines[nitems(config_options)];

	*cfg_r = NULL;
	*error_r = NULL;
	if (config_read_file(path, &data, &len, error_r) == -1)
		return -1;

	memset(&p, 0, sizeof(p));
	memset(lines, 0, sizeof(lines));
	p.path = path;
	p.data = data;
	p.len = len;
	p.lines = lines;
	p.cfg = config_defaults();
	free(p.cfg->path);
	p.cfg->path = xstrdup(path);

	r = ini_parse_stream(config_reader, &p, config_handler, &p);
	if (r == -2 && p.err == NULL)
		config_error(&p, 0, "out of memory while parsing");
	else if (r > 0 && (p.err == NULL || r < p.errline)) {
		free(p.err);
		p.err = NULL;
		config_error(&p, r, "syntax error: expected \"[section]\" "
		    "or \"option = value\"");
	}
	if (p.err == NULL)
		config_validate(&p);
	free(data);

	if (p.err != NULL) {
		config_free(&p.cfg);
		*error_r = p.err;
		return -1;
	}
	*cfg_r = p.cfg;
	return 0;
}

/* A config holding every default. */
struct config *
config_defaults(void)
{
	struct config	*cfg;
	const char	*why;
	size_t		 i;

	cfg = xcalloc(1, sizeof(*cfg));
	cfg->path = xstrdup("");
	for (i = 0; i < nitems(config_options); i++) {
		const struct config_option *o = &config_options[i];

		if ((why = config_set(cfg, o, o->info.defval)) != NULL)
			log_panic("config: default of %s.%s: %s",
			    o->info.section, o->info.name, why);
	}
	return cfg;
}

/* Free a config and set the pointer to NULL. */
void
config_free(struct config **cfgp)
{
	struct config	*cfg;
	size_t		 i;

	if (cfgp == NULL || (cfg = *cfgp) == NULL)
		return;
	for (i = 0; i < nitems(config_options); i++) {
		if (config_options[i].type == CT_STRING)
			free(CFG_STR(cfg, &config_options[i]));
	}
	free(cfg->path);
	free(cfg);
	*cfgp = NULL;
}

/* Print "section.option = value" lines in table order. */
void
config_print(const struct config *cfg, FILE *fp, int changed_only)
{
	struct config	*def = NULL;
	char		*v;
	size_t		 i;

	if (changed_only)
		def = config_defaults();
	for (i = 0; i < nitems(config_options); i++) {
		const struct config_option *o = &config_options[i];

		if (def != NULL && config_equal(cfg, def, o))
			continue;
		v = config_format(cfg, o);
		fprintf(fp, "%s.%s = %s\n", o->info.section, o->info.name, v);
		free(v);
	}
	config_free(&def);
}

/* Apply live changes from next into cur; count those needing a restart. */
int
config_reload_apply(struct config *cur, const struct config *next)
{
	char	*ov, *nv, oesc[CONFIG_ESC], nesc[CONFIG_ESC];
	size_t	 i;
	int	 restart = 0;

	for (i = 0; i < nitems(config_options); i++) {
		const struct config_option *o = &config_options[i];

		if (config_equal(cur, next, o))
			continue;
		ov = config_format(cur, o);
		nv = config_format(next, o);
		log_escape(oesc, sizeof(oesc), ov, strlen(ov));
		log_escape(nesc, sizeof(nesc), nv, strlen(nv));
		if (o->info.live) {
			config_copy(cur, next, o);
			log_info("config: option=%s.%s old=\"%s\" new=\"%s\" "
			    "changed", o->info.section, o->info.name, oesc,
			    nesc);
		} else {
			restart++;
			log_warnx("config: option=%s.%s old=\"%s\" new=\"%s\" "
			    "needs a restart", o->info.section, o->info.name,
			    oesc, nesc);
		}
		free(ov);
		free(nv);
	}
	return restart;
}

/* Number of options in the table. */
size_t
config_option_count(void)
{
	return nitems(config_options);
}

/* The i-th option's description, or NULL past the end. */
const struct config_option_info *
config_option_at(size_t i)
{
	if (i >= nitems(config_options))
		return NULL;
	return &config_options[i].info;
}
