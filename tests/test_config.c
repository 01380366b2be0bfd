/*
 * test_config.c - unit tests for config.c.
 *
 * Table-driven bad files (each must fail with "FILE:LINE: ..." naming the
 * option), good files, defaults, size/duration/bool parsing, the loopback
 * rule, printing round trip, SIGHUP apply, and the agreement of the option
 * table with man/sealpost.conf.5 and contrib/sealpost.conf.sample (found
 * through $SEALPOST_SRCDIR, else next to this source file).
 */
#include "build.h"

#include <sys/stat.h>
#include <errno.h>
#include <libgen.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "util.h"

#include "tap.h"
#include "tfile.h"

static char	 tmpdir[] = "/tmp/sealpost-test-config-XXXXXX";
static char	 conf_path[512];

static void	 write_file(const char *, const char *, size_t);
static int	 load_text(const char *, size_t, struct config **, char **);
static char	*read_all(const char *);
static char	*print_config(const struct config *, int);
static void	 test_errors(void);
static void	 test_open_errors(void);
static void	 test_defaults(void);
static void	 test_good(void);
static void	 test_values(void);
static void	 test_loopback(void);
static void	 test_print(void);
static void	 test_reload(void);
static void	 test_table(void);
static void	 test_manpage(void);
static void	 test_sample(void);

/* Write bytes to a file or die. */
static void
write_file(const char *path, const char *text, size_t len)
{
	FILE	*fp;

	if ((fp = fopen(path, "w")) == NULL ||
	    fwrite(text, 1, len, fp) != len || fclose(fp) != 0) {
		fprintf(stderr, "write %s: %s\n", path, strerror(errno));
		exit(2);
	}
}

/* Write text to the scratch config file and load it. */
static int
load_text(const char *text, size_t len, struct config **cfg, char **err)
{
	write_file(conf_path, text, len ? len : strlen(text));
	return config_load(conf_path, cfg, err);
}

/* A whole file as a string, or NULL. */
static char *
read_all(const char *path)
{
	FILE	*fp;
	char	*buf;
	long	 n;

	if ((fp = fopen(path, "r")) == NULL)
		return NULL;
	if (fseek(fp, 0, SEEK_END) != 0 || (n = ftell(fp)) < 0 ||
	    fseek(fp, 0, SEEK_SET) != 0) {
		fclose(fp);
		return NULL;
	}
	buf = xmalloc((size_t)n + 1);
	if (fread(buf, 1, (size_t)n, fp) != (size_t)n) {
		fclose(fp);
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	fclose(fp);
	return buf;
}

/* config_print into a string. */
static char *
print_config(const struct config *cfg, int changed_only)
{
	char	*buf = NULL;
	size_t	 len = 0;
	FILE	*fp;

	if ((fp = open_memstream(&buf, &len)) == NULL) {
		perror("open_memstream");
		exit(2);
	}
	config_print(cfg, fp, changed_only);
	fclose(fp);
	return buf;
}

/* Each bad file fails, at the right line, naming the option. */
static void
test_errors(void)
{
	static const struct {
		const char	*text;
		size_t		 len;	/* 0 = strlen */
		int		 line;
		const char	*want;
	} cases[] = {
		{ "[daemon]\nseal_workers = 2\n[foo]\nx = 1\n", 0, 3,
		    "[foo]: unknown section" },
		{ "[Daemon]\n", 0, 1, "[Daemon]: unknown section" },
		{ "[]\n", 0, 1, "[]: unknown section" },
		{ "[daemon]\nfoo = 1\n", 0, 2,
		    "[daemon] foo: unknown option" },
		{ "[daemon]\nlisten = 127.0.0.1:1\n", 0, 2,
		    "[daemon] listen: unknown option (listen belongs in "
		    "[http])" },
		{ "seal_workers = 2\n", 0, 1,
		    "seal_workers: option before any [section]" },
		{ "[http]\nallow_plaintext = maybe\n", 0, 2,
		    "[http] allow_plaintext: \"maybe\": bad value" },
		{ "[smtp]\nallow_plaintext =\n", 0, 2,
		    "[smtp] allow_plaintext: \"\": bad value" },
		{ "[smtp]\nrequire_auth = no\n", 0, 2,
		    "[smtp] require_auth: unknown option" },
		{ "[daemon]\nseal_workers = two\n", 0, 2,
		    "[daemon] seal_workers: \"two\": bad value: expected an "
		    "integer" },
		{ "[daemon]\nseal_workers = 4K\n", 0, 2,
		    "[daemon] seal_workers: \"4K\": bad value" },
		{ "[daemon]\nseal_workers = 65\n", 0, 2,
		    "[daemon] seal_workers: value \"65\" out of range (1..64)" },
		{ "[daemon]\nseal_workers = 0\n", 0, 2,
		    "[daemon] seal_workers: value \"0\" out of range" },
		{ "[daemon]\nseal_workers = -1\n", 0, 2,
		    "[daemon] seal_workers: value \"-1\" out of range" },
		{ "[daemon]\ncommit_batch_max = 99999999999999999999\n", 0, 2,
		    "[daemon] commit_batch_max: \"99999999999999999999\": bad "
		    "value" },
		{ "[limits]\nmax_letter_size = 25MB\n", 0, 2,
		    "[limits] max_letter_size: \"25MB\": bad value: expected "
		    "a size" },
		{ "[limits]\nmax_letter_size = -5\n", 0, 2,
		    "[limits] max_letter_size: \"-5\": bad value" },
		{ "[limits]\nmax_letter_size = 2G\n", 0, 2,
		    "[limits] max_letter_size: value \"2G\" out of range "
		    "(1K..1G)" },
		{ "[limits]\nmax_attachment_size = 1023\n", 0, 2,
		    "[limits] max_attachment_size: value \"1023\" out of "
		    "range (1K..1G)" },
		{ "[daemon]\nparse_memory_limit = 8G\n", 0, 2,
		    "[daemon] parse_memory_limit: value \"8G\" out of range "
		    "(16M..4G)" },
		{ "[smtp]\ntimeout = 5 minutes\n", 0, 2,
		    "[smtp] timeout: \"5 minutes\": bad value: expected a "
		    "duration" },
		{ "[smtp]\ntimeout = 5x\n", 0, 2,
		    "[smtp] timeout: \"5x\": bad value" },
		{ "[smtp]\ntimeout = 1d\n", 0, 2,
		    "[smtp] timeout: value \"1d\" out of range (1s..1h)" },
		{ "[daemon]\nparse_timeout = 6m\n", 0, 2,
		    "[daemon] parse_timeout: value \"6m\" out of range "
		    "(1s..5m)" },
		{ "[daemon]\nshutdown_timeout = 0\n", 0, 2,
		    "[daemon] shutdown_timeout: value \"0\" out of range "
		    "(1s..10m)" },
		{ "[smtp]\nmax_sessions = 5\n\n[smtp]\nmax_sessions = 6\n", 0,
		    5, "[smtp] max_sessions: duplicate option (first set on "
		    "line 2)" },
		{ "[daemon]\nseal_workers\n", 0, 2, "syntax error" },
		{ "[daemon\nseal_workers = 2\n", 0, 1,
		    "syntax error: '[' without ']'" },
		{ "[daemon]\nbar\nfoo = 1\n", 0, 2, "syntax error" },
		{ "[daemon]\nseal_workers = 0\nfoo = 1\n", 0, 2,
		    "[daemon] seal_workers: value \"0\"" },
		{ "[daemon]\nlog = a\0b\n", sizeof("[daemon]\nlog = a\0b\n") - 1,
		    2, "NUL byte" },
		{ "[daemon]\ndatabase = /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		    "\n", 0, 2, "line too long" },
		{ "[daemon]\ndatabase = sealpost.db\n", 0, 2,
		    "[daemon] database: \"sealpost.db\": must be an absolute "
		    "path" },
		{ "[daemon]\ndatabase =\n", 0, 2,
		    "[daemon] database: \"\": a path is required" },
		{ "[daemon]\nmaster_key_file = key\n", 0, 2,
		    "[daemon] master_key_file: \"key\": must be an absolute "
		    "path" },
		{ "[daemon]\ncontrol_socket = /run/aaaaaaaaaaaaaaaaaaaaaaaaaaa"
		    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		    "aaaaaaaaaaaaaaaaaaaaaaaaaaaa.sock\n", 0, 2,
		    "[daemon] control_socket: \"/run/aaa" },
		{ "[daemon]\ncontrol_socket = /run/aaaaaaaaaaaaaaaaaaaaaaaaaaa"
		    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		    "aaaaaaaaaaaaaaaaaaaaaaaaaaaa.sock\n", 0, 2,
		    "too long for a UNIX socket" },
		{ "[daemon]\nlog = syslog\n", 0, 2,
		    "[daemon] log: \"syslog\": expected auto, stderr or "
		    "journal" },
		{ "[smtp]\nhostname = bad host\n", 0, 2,
		    "[smtp] hostname: \"bad host\": bad host name" },
		{ "[smtp]\nhostname = -bad.example\n", 0, 2,
		    "[smtp] hostname: \"-bad.example\": bad host name" },
		{ "[smtp]\nhostname = a..example\n", 0, 2,
		    "[smtp] hostname: \"a..example\": bad host name" },
		{ "[http]\nlisten = 127.0.0.1\n", 0, 2,
		    "[http] listen: \"127.0.0.1\": expected host:port" },
		{ "[http]\nlisten = 127.0.0.1:0\n", 0, 2,
		    "[http] listen: \"127.0.0.1:0\": port must be 1-65535" },
		{ "[http]\nlisten = 127.0.0.1:65536\n", 0, 2,
		    "port must be 1-65535" },
		{ "[http]\nlisten = 127.0.0.1:http\n", 0, 2,
		    "port must be 1-65535" },
		{ "[http]\nlisten = ::1:8025\n", 0, 2,
		    "an IPv6 address needs brackets" },
		{ "[http]\nlisten = [::1:8025\n", 0, 2, "missing ']'" },
		{ "[http]\nlisten = [::1]8025\n", 0, 2,
		    "expected [IPv6]:port" },
		{ "[http]\nlisten = [127.0.0.1]:8025\n", 0, 2,
		    "bad IPv6 address" },
		{ "[smtp]\nlisten = mail.example.org:25\n", 0, 2,
		    "[smtp] listen: \"mail.example.org:25\": host must be" },
		{ "[smtp]\nlisten = 127.0.0.1.5:25\n", 0, 2,
		    "host must be" },
		{ "[http]\nlisten = 0.0.0.0:8025\n", 0, 2,
		    "[http] listen: 0.0.0.0 is not a loopback address" },
		{ "[http]\nlisten = 192.0.2.7:8025\nallow_plaintext = no\n", 0,
		    2, "[http] listen: 192.0.2.7 is not a loopback address" },
		{ "[smtp]\nlisten = [2001:db8::1]:587\n", 0, 2,
		    "[smtp] listen: 2001:db8::1 is not a loopback address" },
		{ "[smtp]\nlisten = [::]:587\n", 0, 2,
		    "[smtp] listen: :: is not a loopback address" },
		{ "[smtp]\ntls_cert = /etc/c.pem\n", 0, 2,
		    "[smtp] tls_key: tls_cert is set but tls_key is not" },
		{ "[http]\n\ntls_key = /etc/k.pem\n", 0, 3,
		    "[http] tls_cert: tls_key is set but tls_cert is not" },
		{ "[http]\nlisten = 127.0.0.1:9000\n[smtp]\nlisten = "
		    "127.0.0.1:9000\n", 0, 4,
		    "[smtp] listen: same address as [http] listen" },
		{ "[http]\nlisten = 127.0.0.1:8587\n", 0, 2,
		    "[http] listen: same address as [smtp] listen" },
		{ "[smtp]\nmax_line_length = 8192\nmax_header_size = 4K\n", 0,
		    3, "[smtp] max_header_size: smaller than max_line_length "
		    "(8192)" },
		{ "[queue]\nretry_first = 2h\nretry_max = 1h\n", 0, 3,
		    "[queue] retry_max: shorter than retry_first (7200s)" },
		{ "[relay]\nhost = 127.0.0.1\ntls = none\n", 0, 3,
		    "[relay] tls: none needs allow_plaintext = yes" },
		{ "[relay]\nhost = smtp.example.net\ntls = none\n"
		    "allow_plaintext = yes\n", 0, 3,
		    "[relay] tls: none is allowed only to a loopback smarthost" },
		{ "[relay]\nhost = 127.example.net\ntls = none\n"
		    "allow_plaintext = yes\n", 0, 3,
		    "[relay] tls: none is allowed only to a loopback smarthost" },
		{ "[relay]\ntls = plain\n", 0, 2,
		    "[relay] tls: \"plain\": expected starttls, implicit or none" },
		{ "[relay]\nusername = a b\n", 0, 2,
		    "[relay] username: \"a b\": user name must be printable ASCII, "
		    "no spaces" },
		{ "[relay]\nhost = smtp..example\n", 0, 2,
		    "[relay] host: \"smtp..example\": bad host name" },
	};
	struct config	*cfg;
	char		*err, *prefix;
	size_t		 i;
	int		 r;

	for (i = 0; i < nitems(cases); i++) {
		cfg = (struct config *)&cfg;	/* must be reset */
		err = NULL;
		r = load_text(cases[i].text, cases[i].len, &cfg, &err);
		xasprintf(&prefix, "%s:%d: ", conf_path, cases[i].line);
		ok(r == -1 && cfg == NULL && err != NULL &&
		    strncmp(err, prefix, strlen(prefix)) == 0 &&
		    strstr(err, cases[i].want) != NULL,
		    "error case %zu: line %d, \"%s\"", i, cases[i].line,
		    cases[i].want);
		if (r != -1)
			config_free(&cfg);
		else if (err == NULL || strncmp(err, prefix,
		    strlen(prefix)) != 0 || strstr(err, cases[i].want) == NULL)
			diag("  got: %s", err ? err : "(null)");
		free(prefix);
		free(err);
	}
}

/* A missing or unusable file names the file and the reason. */
static void
test_open_errors(void)
{
	struct config	*cfg;
	char		*err = NULL, *want, *path;
	int		 r;

	xasprintf(&path, "%s/does-not-exist.conf", tmpdir);
	r = config_load(path, &cfg, &err);
	xasprintf(&want, "%s: cannot open: %s", path, strerror(ENOENT));
	ok(r == -1 && cfg == NULL && err != NULL && strcmp(err, want) == 0,
	    "missing file: \"%s\"", err ? err : "(null)");
	free(want);
	free(err);
	free(path);

	err = NULL;
	r = config_load(tmpdir, &cfg, &err);
	ok(r == -1 && err != NULL && strstr(err, ": cannot open: not a "
	    "regular file") != NULL, "directory refused: \"%s\"",
	    err ? err : "(null)");
	free(err);

	{
		size_t	 n = 1024 * 1024 + 10;
		char	*big = xmalloc(n);

		memset(big, '#', n);
		big[n - 1] = '\n';
		err = NULL;
		r = load_text(big, n, &cfg, &err);
		ok(r == -1 && err != NULL && strstr(err, "file too large"),
		    "oversized file refused: \"%s\"", err ? err : "(null)");
		free(err);
		free(big);
	}
}

/* Defaults are the documented ones and pass validation. */
static void
test_defaults(void)
{
	struct config	*cfg = config_defaults(), *loaded;
	char		*err = NULL, *a, *b;

	is_str(cfg->database, "/var/lib/sealpost/sealpost.db", "default "
	    "database");
	is_str(cfg->master_key_file, "", "default master_key_file");
	is_str(cfg->control_socket, "/run/sealpost/control.sock",
	    "default control_socket");
	is_str(cfg->log, "auto", "default log");
	is_int(cfg->seal_workers, 2, "default seal_workers");
	is_int(cfg->commit_batch_max, 256, "default commit_batch_max");
	is_int(cfg->shutdown_timeout, 10, "default shutdown_timeout");
	is_int(cfg->parse_memory_limit, 256LL << 20,
	    "default parse_memory_limit");
	is_int(cfg->parse_timeout, 10, "default parse_timeout");
	is_str(cfg->http_listen, "127.0.0.1:8025", "default http.listen");
	is_str(cfg->http_tls_cert, "", "default http.tls_cert");
	is_str(cfg->http_tls_key, "", "default http.tls_key");
	is_int(cfg->http_allow_plaintext, 0, "default http.allow_plaintext");
	is_int(cfg->http_timeout, 30, "default http.timeout");
	is_str(cfg->smtp_listen, "127.0.0.1:8587", "default smtp.listen");
	is_str(cfg->smtp_hostname, "localhost", "default smtp.hostname");
	is_str(cfg->smtp_tls_cert, "", "default smtp.tls_cert");
	is_str(cfg->smtp_tls_key, "", "default smtp.tls_key");
	is_int(cfg->smtp_allow_plaintext, 0, "default smtp.allow_plaintext");
	is_int(cfg->smtp_timeout, 300, "default smtp.timeout");
	is_int(cfg->smtp_max_sessions, 100, "default smtp.max_sessions");
	is_int(cfg->smtp_max_recipients, 100, "default smtp.max_recipients");
	is_int(cfg->smtp_max_line_length, 1000,
	    "default smtp.max_line_length");
	is_int(cfg->smtp_max_header_size, 100 * 1024,
	    "default smtp.max_header_size");
	is_int(cfg->max_letter_size, 25LL << 20, "default max_letter_size");
	is_int(cfg->max_attachments, 20, "default max_attachments");
	is_int(cfg->max_attachment_size, 25LL << 20,
	    "default max_attachment_size");

	/* An empty file and a comments-only file give the defaults. */
	ok(load_text("", 0, &loaded, &err) == 0 && err == NULL,
	    "empty file loads");
	if (loaded != NULL) {
		is_str(loaded->path, conf_path, "path recorded");
		a = print_config(cfg, 0);
		b = print_config(loaded, 0);
		is_str(b, a, "empty file = defaults");
		free(a);
		free(b);
		config_free(&loaded);
	}
	free(err);
	err = NULL;
	ok(load_text("# only\n; comments\n\n   \n[daemon]\n[http]\n", 0,
	    &loaded, &err) == 0, "comments and empty sections load: %s",
	    err ? err : "ok");
	if (loaded != NULL) {
		a = print_config(loaded, 1);
		is_str(a, "", "nothing changed from defaults");
		free(a);
	}
	config_free(&loaded);
	free(err);
	config_free(&cfg);
	config_free(&cfg);	/* NULL is fine */
	config_free(NULL);
	ok(cfg == NULL, "config_free sets NULL");
}

/* A full file with every option changed. */
static void
test_good(void)
{
	static const char text[] =
	    "\xef\xbb\xbf# sealpost test\r\n"
	    "[daemon]\r\n"
	    "  database = /srv/sp/db.sqlite   ; inline comment\n"
	    "master_key_file = /etc/sealpost/master.key\n"
	    "control_socket = /tmp/sp.sock\n"
	    "log = stderr\n"
	    "seal_workers = 8\n"
	    "commit_batch_max = 1000\n"
	    "shutdown_timeout = 1m\n"
	    "parse_memory_limit = 1G\n"
	    "parse_timeout = 90\n"
	    "\n"
	    "[http]\n"
	    "listen = 192.0.2.10:443\n"
	    "tls_cert = /etc/tls/cert.pem\n"
	    "tls_key = /etc/tls/key.pem\n"
	    "allow_plaintext = off\n"
	    "timeout = 2m\n"
	    "[smtp]\n"
	    "listen = [::1]:2525\n"
	    "hostname = sealpost.riverside.example\n"
	    "tls_cert =\n"
	    "tls_key =\n"
	    "allow_plaintext = TRUE\n"
	    "timeout = 1h\n"
	    "max_sessions = 10\n"
	    "max_recipients = 1000\n"
	    "max_line_length = 2048\n"
	    "max_header_size = 64k\n"
	    "[limits]\n"
	    "max_letter_size = 10M\n"
	    "max_attachments = 0\n"
	    "max_attachment_size = 5000\n"
	    "[daemon]\n";
	struct config	*c = NULL;
	char		*err = NULL;

	ok(load_text(text, sizeof(text) - 1, &c, &err) == 0 && c != NULL,
	    "full file loads: %s", err ? err : "ok");
	free(err);
	if (c == NULL)
		return;
	is_str(c->database, "/srv/sp/db.sqlite", "database, comment cut");
	is_str(c->master_key_file, "/etc/sealpost/master.key",
	    "master_key_file");
	is_str(c->control_socket, "/tmp/sp.sock", "control_socket");
	is_str(c->log, "stderr", "log");
	is_int(c->seal_workers, 8, "seal_workers");
	is_int(c->commit_batch_max, 1000, "commit_batch_max");
	is_int(c->shutdown_timeout, 60, "shutdown_timeout 1m");
	is_int(c->parse_memory_limit, 1LL << 30, "parse_memory_limit 1G");
	is_int(c->parse_timeout, 90, "parse_timeout 90");
	is_str(c->http_listen, "192.0.2.10:443", "http listen");
	is_str(c->http_tls_cert, "/etc/tls/cert.pem", "http tls_cert");
	is_str(c->http_tls_key, "/etc/tls/key.pem", "http tls_key");
	is_int(c->http_allow_plaintext, 0, "http allow_plaintext off");
	is_int(c->http_timeout, 120, "http timeout 2m");
	is_str(c->smtp_listen, "[::1]:2525", "smtp listen");
	is_str(c->smtp_hostname, "sealpost.riverside.example", "hostname");
	is_str(c->smtp_tls_cert, "", "smtp tls_cert empty");
	is_int(c->smtp_allow_plaintext, 1, "smtp allow_plaintext TRUE");
	is_int(c->smtp_timeout, 3600, "smtp timeout 1h");
	is_int(c->smtp_max_sessions, 10, "max_sessions");
	is_int(c->smtp_max_recipients, 1000, "max_recipients at bound");
	is_int(c->smtp_max_line_length, 2048, "max_line_length");
	is_int(c->smtp_max_header_size, 64 * 1024, "max_header_size 64k");
	is_int(c->max_letter_size, 10LL << 20, "max_letter_size");
	is_int(c->max_attachments, 0, "max_attachments 0");
	is_int(c->max_attachment_size, 5000, "max_attachment_size bytes");
	config_free(&c);
}

/* Sizes, durations, bools and ints, at and inside their bounds. */
static void
test_values(void)
{
	static const struct {
		const char	*section, *name, *value;
		long long	 want;
		size_t		 off;
		int		 is_bool;
	} cases[] = {
#define V(s, n, v, w, f) { s, n, v, w, offsetof(struct config, f), 0 }
#define B(s, n, v, w, f) { s, n, v, w, offsetof(struct config, f), 1 }
		V("limits", "max_letter_size", "1048576", 1048576,
		    max_letter_size),
		V("limits", "max_letter_size", "100K", 102400,
		    max_letter_size),
		V("limits", "max_letter_size", "100k", 102400,
		    max_letter_size),
		V("limits", "max_letter_size", "25m", 26214400,
		    max_letter_size),
		V("limits", "max_letter_size", "1G", 1073741824,
		    max_letter_size),
		V("limits", "max_letter_size", "1K", 1024, max_letter_size),
		V("limits", "max_letter_size", "2k", 2048, max_letter_size),
		V("daemon", "parse_memory_limit", "4G", 4294967296LL,
		    parse_memory_limit),
		V("daemon", "parse_memory_limit", "16M", 16777216,
		    parse_memory_limit),
		V("smtp", "timeout", "90", 90, smtp_timeout),
		V("smtp", "timeout", "45s", 45, smtp_timeout),
		V("smtp", "timeout", "2m", 120, smtp_timeout),
		V("smtp", "timeout", "1h", 3600, smtp_timeout),
		V("smtp", "timeout", "1s", 1, smtp_timeout),
		V("daemon", "shutdown_timeout", "10m", 600, shutdown_timeout),
		V("daemon", "parse_timeout", "300", 300, parse_timeout),
		V("daemon", "seal_workers", "64", 64, seal_workers),
		V("daemon", "seal_workers", "1", 1, seal_workers),
		V("daemon", "commit_batch_max", "10000", 10000,
		    commit_batch_max),
		V("smtp", "max_line_length", "512", 512,
		    smtp_max_line_length),
		V("smtp", "max_line_length", "65536", 65536,
		    smtp_max_line_length),
		V("limits", "max_attachments", "1000", 1000, max_attachments),
		B("http", "allow_plaintext", "yes", 1, http_allow_plaintext),
		B("http", "allow_plaintext", "true", 1, http_allow_plaintext),
		B("http", "allow_plaintext", "On", 1, http_allow_plaintext),
		B("http", "allow_plaintext", "1", 1, http_allow_plaintext),
		B("smtp", "allow_plaintext", "NO", 0, smtp_allow_plaintext),
		B("smtp", "allow_plaintext", "false", 0, smtp_allow_plaintext),
		B("smtp", "allow_plaintext", "off", 0, smtp_allow_plaintext),
		B("smtp", "allow_plaintext", "0", 0, smtp_allow_plaintext),
#undef V
#undef B
	};
	struct config	*c;
	char		*text, *err;
	size_t		 i;
	long long	 got;

	for (i = 0; i < nitems(cases); i++) {
		xasprintf(&text, "[%s]\n%s = %s\n", cases[i].section,
		    cases[i].name, cases[i].value);
		c = NULL;
		err = NULL;
		if (load_text(text, 0, &c, &err) != 0) {
			ok(0, "%s.%s = %s loads", cases[i].section,
			    cases[i].name, cases[i].value);
			diag("  %s", err);
		} else {
			if (cases[i].is_bool)
				got = *(int *)(void *)((char *)c +
				    cases[i].off);
			else
				got = *(int64_t *)(void *)((char *)c +
				    cases[i].off);
			is_int(got, cases[i].want, "%s.%s = %s -> %lld",
			    cases[i].section, cases[i].name, cases[i].value,
			    cases[i].want);
		}
		config_free(&c);
		free(err);
		free(text);
	}
}

/* Non-loopback listeners need TLS or allow_plaintext; loopback needs none. */
static void
test_loopback(void)
{
	static const struct {
		const char	*text;
		int		 good;
		const char	*want;	/* in the error when refused */
	} cases[] = {
		{ "[http]\nlisten = 127.0.0.1:8025\n", 1, NULL },
		{ "[http]\nlisten = 127.8.9.10:1\n", 1, NULL },
		{ "[http]\nlisten = localhost:8025\n", 1, NULL },
		{ "[http]\nlisten = [::1]:8025\n", 1, NULL },
		{ "[http]\nlisten =\n[smtp]\nlisten =\n", 1, NULL },
		{ "[http]\nlisten = 0.0.0.0:8025\nallow_plaintext = yes\n", 1,
		    NULL },
		{ "[http]\nlisten = 0.0.0.0:8025\ntls_cert = /c\n"
		    "tls_key = /k\n", 1, NULL },
		{ "[smtp]\nlisten = [::]:587\ntls_cert = /c\ntls_key = /k\n",
		    1, NULL },
		{ "[smtp]\nlisten = 192.0.2.1:587\nallow_plaintext = 1\n", 1,
		    NULL },
		{ "[http]\nlisten = 0.0.0.0:8025\n", 0, NULL },
		{ "[http]\nlisten = 192.0.2.1:8025\ntls_cert = /c\n", 0,
		    "tls_cert is set but tls_key is not" },
		{ "[smtp]\nlisten = [::]:587\n", 0, NULL },
		{ "[smtp]\nlisten = [::ffff:127.0.0.1]:587\n", 0, NULL },
		{ "[smtp]\nlisten = 198.51.100.1:587\nallow_plaintext = no\n", 0,
		    NULL },
		{ "[http]\nallow_plaintext = yes\n[smtp]\nlisten = "
		    "0.0.0.0:25\n", 0, NULL },
	};
	struct config	*c;
	char		*err, *host;
	const char	*why;
	size_t		 i;
	int		 r, port;

	for (i = 0; i < nitems(cases); i++) {
		c = NULL;
		err = NULL;
		r = load_text(cases[i].text, 0, &c, &err);
		ok((r == 0) == cases[i].good, "loopback rule case %zu %s", i,
		    cases[i].good ? "accepted" : "refused");
		if ((r == 0) != cases[i].good)
			diag("  %s", err ? err : "loaded");
		else if (!cases[i].good)
			ok(strstr(err, cases[i].want != NULL ? cases[i].want :
			    "is not a loopback address") != NULL,
			    "loopback case %zu names the rule", i);
		config_free(&c);
		free(err);
	}

	why = config_split_listen("[2001:db8::5]:443", &host, &port);
	ok(why == NULL && host != NULL && strcmp(host, "2001:db8::5") == 0 &&
	    port == 443, "split [v6]:port");
	free(host);
	why = config_split_listen("localhost:1", &host, &port);
	ok(why == NULL && strcmp(host, "localhost") == 0 && port == 1,
	    "split localhost:1");
	free(host);
	why = config_split_listen("127.0.0.1:65535", &host, &port);
	ok(why == NULL && strcmp(host, "127.0.0.1") == 0 && port == 65535,
	    "split 127.0.0.1:65535");
	free(host);
	why = config_split_listen("127.0.0.1:", &host, &port);
	ok(why != NULL && host == NULL, "split refuses an empty port");
	why = config_split_listen(":25", &host, &port);
	ok(why != NULL && host == NULL, "split refuses an empty host");
}

/* Printing: every option, in order, normalised; -n style; round trip. */
static void
test_print(void)
{
	struct config	*c = NULL, *d = NULL;
	char		*out, *out2, *err = NULL, *ini, *line, *save, *p;
	char		 cursect[32] = "";
	size_t		 i, n = 0, len;
	FILE		*fp;

	c = config_defaults();
	out = print_config(c, 0);
	/* Defaults print exactly as the table writes them. */
	p = out;
	for (i = 0; i < config_option_count(); i++) {
		const struct config_option_info *o = config_option_at(i);
		char	*want;

		xasprintf(&want, "%s.%s = %s\n", o->section, o->name,
		    o->defval);
		if (strncmp(p, want, strlen(want)) != 0) {
			ok(0, "default line %zu is \"%s.%s = %s\"", i,
			    o->section, o->name, o->defval);
			free(want);
			break;
		}
		p += strlen(want);
		free(want);
	}
	ok(i == config_option_count() && *p == '\0',
	    "config_print lists every option in table order with its default");
	free(out);
	config_free(&c);

	ok(load_text("[smtp]\ntimeout = 600\nmax_header_size = 2097152\n"
	    "[limits]\nmax_letter_size = 3000K\nmax_attachments = 3\n"
	    "[daemon]\nparse_timeout = 120s\nseal_workers = 2\n", 0, &c,
	    &err) == 0, "load for print: %s", err ? err : "ok");
	free(err);
	err = NULL;
	if (c == NULL)
		return;
	out = print_config(c, 1);
	is_str(out,
	    "daemon.parse_timeout = 2m\n"
	    "smtp.timeout = 10m\n"
	    "smtp.max_header_size = 2M\n"
	    "limits.max_letter_size = 3000K\n"
	    "limits.max_attachments = 3\n",
	    "changed_only prints non-defaults, normalised, in table order");
	free(out);

	/* Round trip: the full print, turned back into INI, loads the same. */
	out = print_config(c, 0);
	fp = open_memstream(&ini, &len);
	for (line = strtok_r(out, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		char	*dot = strchr(line, '.');

		n++;
		if (dot == NULL)
			continue;
		if (strlen(cursect) != (size_t)(dot - line) ||
		    strncmp(cursect, line, (size_t)(dot - line)) != 0) {
			snprintf(cursect, sizeof(cursect), "%.*s",
			    (int)(dot - line), line);
			fprintf(fp, "[%s]\n", cursect);
		}
		fprintf(fp, "%s\n", dot + 1);
	}
	fclose(fp);
	is_int(n, config_option_count(), "full print has one line per option");
	ok(load_text(ini, 0, &d, &err) == 0, "printed config loads again: %s",
	    err ? err : "ok");
	if (d != NULL) {
		free(out);
		out = print_config(c, 0);
		out2 = print_config(d, 0);
		is_str(out2, out, "round trip is identical");
		free(out2);
	}
	free(out);
	free(ini);
	free(err);
	config_free(&c);
	config_free(&d);
}

/* SIGHUP: live options are copied, the rest counted and left alone. */
static void
test_reload(void)
{
	struct config	*cur = NULL, *next = NULL, *same = config_defaults();
	char		*err = NULL;
	int		 r;

	cur = config_defaults();
	is_int(config_reload_apply(cur, same), 0, "identical: nothing to do");

	ok(load_text("[daemon]\ndatabase = /srv/other.db\nseal_workers = 3\n"
	    "parse_timeout = 20s\n[smtp]\nlisten = 127.0.0.1:2525\n"
	    "timeout = 10m\nmax_line_length = 2000\n"
	    "[limits]\nmax_letter_size = 5M\n", 0, &next, &err) == 0,
	    "next config loads: %s", err ? err : "ok");
	free(err);
	if (next == NULL) {
		config_free(&cur);
		config_free(&same);
		return;
	}
	r = config_reload_apply(cur, next);
	is_int(r, 4, "database, seal_workers, smtp.listen and "
	    "max_line_length need a restart");
	is_int(cur->parse_timeout, 20, "parse_timeout applied live");
	is_int(cur->smtp_timeout, 600, "smtp.timeout applied live");
	is_int(cur->max_letter_size, 5LL << 20, "max_letter_size applied");
	is_str(cur->database, "/var/lib/sealpost/sealpost.db",
	    "database kept");
	is_int(cur->seal_workers, 2, "seal_workers kept");
	is_str(cur->smtp_listen, "127.0.0.1:8587", "smtp.listen kept");
	is_int(cur->smtp_max_line_length, 1000, "max_line_length kept");
	is_int(config_reload_apply(cur, next), 4,
	    "restart-only differences are still reported");
	config_free(&cur);
	config_free(&next);
	config_free(&same);
}

/* The table itself: unique names, known types, live only for numbers. */
static void
test_table(void)
{
	size_t	 i, j, n = config_option_count();
	int	 dup = 0, badtype = 0, livestr = 0;

	ok(n == 79, "79 options in the table (got %zu)", n);
	ok(config_option_at(n) == NULL, "config_option_at past the end");
	for (i = 0; i < n; i++) {
		const struct config_option_info *a = config_option_at(i);

		for (j = i + 1; j < n; j++) {
			const struct config_option_info *b =
			    config_option_at(j);

			if (strcmp(a->section, b->section) == 0 &&
			    strcmp(a->name, b->name) == 0)
				dup++;
		}
		if (strcmp(a->type, "string") != 0 &&
		    strcmp(a->type, "bool") != 0 &&
		    strcmp(a->type, "int") != 0 &&
		    strcmp(a->type, "size") != 0 &&
		    strcmp(a->type, "duration") != 0)
			badtype++;
		if (a->live && strcmp(a->type, "string") == 0)
			livestr++;
		if (a->help == NULL || *a->help == '\0')
			badtype++;
	}
	is_int(dup, 0, "no option declared twice");
	is_int(badtype, 0, "every option has a known type and help");
	is_int(livestr, 0, "no string option is live (reload never frees "
	    "strings in use)");
}

/*
 * man/sealpost.conf.5 documents exactly the table: ".It Cm section.option"
 * items, each stating the default and whether it changes on SIGHUP.
 */
static void
test_manpage(void)
{
	char	*path = srcdir_file("man/sealpost.conf.5"), *man, *line, *save;
	char	*names[256], *bodies[256], *example = NULL, *ex;
	int	 in_example = 0;
	size_t	 nnames = 0, i, j, missing = 0, extra = 0, baddef = 0;
	size_t	 badlive = 0;
	int	 in_item = 0;

	if ((man = read_all(path)) == NULL) {
		ok(0, "read %s (set SEALPOST_SRCDIR): %s", path,
		    strerror(errno));
		free(path);
		return;
	}
	for (line = strtok_r(man, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		/* The first literal display under EXAMPLES is a config. */
		if (strcmp(line, ".Sh EXAMPLES") == 0 && example == NULL) {
			example = xstrdup("");
			in_example = 1;
		} else if (in_example == 1 && strncmp(line, ".Bd -literal",
		    12) == 0)
			in_example = 2;
		else if (in_example == 2 && strcmp(line, ".Ed") == 0)
			in_example = 0;
		else if (in_example == 2) {
			xasprintf(&ex, "%s%s\n", example, line);
			free(example);
			example = ex;
		}
		if (strncmp(line, ".It Cm ", 7) == 0 &&
		    strchr(line + 7, '.') != NULL && nnames < nitems(names)) {
			size_t n = strcspn(line + 7, " ");

			names[nnames] = xstrndup(line + 7, n);
			bodies[nnames++] = xstrdup("");
			in_item = 1;
			continue;
		}
		if (line[0] == '.' && (strncmp(line, ".It", 3) == 0 ||
		    strncmp(line, ".El", 3) == 0 ||
		    strncmp(line, ".Ss", 3) == 0 ||
		    strncmp(line, ".Sh", 3) == 0)) {
			in_item = 0;
			continue;
		}
		if (in_item) {
			/* Body text, macro names dropped: ".Pa /x ;" -> "/x ;" */
			const char	*t = line;
			char		*nb;

			if (*t == '.')
				t += strcspn(t, " ") + (t[strcspn(t, " ")] ==
				    ' ');
			xasprintf(&nb, "%s %s", bodies[nnames - 1], t);
			free(bodies[nnames - 1]);
			bodies[nnames - 1] = nb;
		}
	}
	for (i = 0; i < config_option_count(); i++) {
		const struct config_option_info *o = config_option_at(i);
		char	*full, *want;

		xasprintf(&full, "%s.%s", o->section, o->name);
		for (j = 0; j < nnames; j++) {
			if (strcmp(names[j], full) == 0)
				break;
		}
		if (j == nnames) {
			diag("  undocumented option: %s", full);
			missing++;
			free(full);
			continue;
		}
		if (*o->defval == '\0')
			xasprintf(&want, "default empty");
		else
			xasprintf(&want, "default %s", o->defval);
		if (strstr(bodies[j], want) == NULL) {
			diag("  %s: man page lacks \"%s\"", full, want);
			baddef++;
		}
		free(want);
		xasprintf(&want, "changes on SIGHUP: %s", o->live ? "yes" :
		    "no");
		if (strstr(bodies[j], want) == NULL) {
			diag("  %s: man page lacks \"%s\"", full, want);
			badlive++;
		}
		free(want);
		free(full);
	}
	for (j = 0; j < nnames; j++) {
		char	*dot = strchr(names[j], '.');
		int	 found = 0;

		*dot = '\0';
		for (i = 0; i < config_option_count(); i++) {
			const struct config_option_info *o =
			    config_option_at(i);

			if (strcmp(o->section, names[j]) == 0 &&
			    strcmp(o->name, dot + 1) == 0)
				found = 1;
		}
		if (!found) {
			diag("  documented but not in the table: %s.%s",
			    names[j], dot + 1);
			extra++;
		}
	}
	is_int(missing, 0, "every option is documented in sealpost.conf.5");
	is_int(extra, 0, "sealpost.conf.5 documents no unknown option");
	is_int(nnames, config_option_count(), "one man page item per option");
	is_int(baddef, 0, "the man page states every default");
	is_int(badlive, 0, "the man page states which options change on "
	    "SIGHUP");
	for (j = 0; j < nnames; j++) {
		free(names[j]);
		free(bodies[j]);
	}
	if (example == NULL || *example == '\0')
		ok(0, "sealpost.conf.5 has an EXAMPLES display");
	else {
		struct config	*c = NULL;
		char		*err = NULL;

		ok(load_text(example, 0, &c, &err) == 0,
		    "the EXAMPLES config of sealpost.conf.5 loads: %s",
		    err ? err : "ok");
		config_free(&c);
		free(err);
	}
	free(example);
	free(man);
	free(path);
}

/*
 * contrib/sealpost.conf.sample lists every option, commented out, with its
 * default; it loads as is, and uncommented it loads to the defaults.
 */
static void
test_sample(void)
{
	char		*path = srcdir_file("contrib/sealpost.conf.sample");
	char		*text, *copy, *line, *save, *uncommented, *a, *b;
	char		*err = NULL, sect[32] = "";
	struct config	*c = NULL, *def;
	size_t		 seen = 0, bad = 0, i, len;
	FILE		*fp;

	if ((text = read_all(path)) == NULL) {
		ok(0, "read %s: %s", path, strerror(errno));
		free(path);
		return;
	}
	fp = open_memstream(&uncommented, &len);
	copy = xstrdup(text);
	for (line = strtok_r(copy, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		const struct config_option_info *o = NULL;
		size_t	 n;

		if (line[0] == '[') {
			snprintf(sect, sizeof(sect), "%.*s",
			    (int)strcspn(line + 1, "]"), line + 1);
			fprintf(fp, "%s\n", line);
			continue;
		}
		if (line[0] != '#' || !(line[1] >= 'a' && line[1] <= 'z'))
			continue;
		n = strcspn(line + 1, " =");
		for (i = 0; i < config_option_count(); i++) {
			o = config_option_at(i);
			if (strcmp(o->section, sect) == 0 &&
			    strlen(o->name) == n &&
			    strncmp(o->name, line + 1, n) == 0)
				break;
		}
		if (i == config_option_count()) {
			diag("  sample has unknown option %s.%.*s", sect,
			    (int)n, line + 1);
			bad++;
			continue;
		}
		seen++;
		{
			char	*want;

			xasprintf(&want, "#%s =%s%s", o->name,
			    *o->defval ? " " : "", o->defval);
			if (strcmp(line, want) != 0) {
				diag("  sample line \"%s\", want \"%s\"", line,
				    want);
				bad++;
			}
			free(want);
		}
		fprintf(fp, "%s\n", line + 1);
	}
	fclose(fp);
	is_int(seen, config_option_count(), "the sample lists every option");
	is_int(bad, 0, "the sample's values are the defaults");

	ok(config_load(path, &c, &err) == 0, "the sample loads as is: %s",
	    err ? err : "ok");
	config_free(&c);
	free(err);
	err = NULL;
	ok(load_text(uncommented, 0, &c, &err) == 0,
	    "the sample uncommented loads: %s", err ? err : "ok");
	if (c != NULL) {
		def = config_defaults();
		a = print_config(def, 0);
		b = print_config(c, 0);
		is_str(b, a, "the sample uncommented = the defaults");
		free(a);
		free(b);
		config_free(&def);
	}
	config_free(&c);
	free(err);
	free(uncommented);
	free(copy);
	free(text);
	free(path);
}

int
main(void)
{
	char	*cmd;

	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 2;
	}
	snprintf(conf_path, sizeof(conf_path), "%s/sealpost.conf", tmpdir);

	test_errors();
	test_open_errors();
	test_defaults();
	test_good();
	test_values();
	test_loopback();
	test_print();
	test_reload();
	test_table();
	test_manpage();
	test_sample();

	unlink(conf_path);
	if (rmdir(tmpdir) == -1) {
		xasprintf(&cmd, "rm -rf '%s'", tmpdir);
		if (system(cmd) != 0)
			diag("could not remove %s", tmpdir);
		free(cmd);
	}
	return tap_done();
}
