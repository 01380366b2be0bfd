/*
 * agetool.c - sealpost-agetool, a small age v1 command line over age.c.
 *
 *   sealpost-agetool keygen [-o OUTPUT]
 *   sealpost-agetool recipient [IDENTITYFILE]
 *   sealpost-agetool encrypt [-a] (-r RECIPIENT | -R FILE)... [-o OUT] [IN]
 *   sealpost-agetool decrypt -i IDENTITYFILE... [-o OUT] [IN]
 *
 * For interop tests and for a surgery's sysadmin checking a blob without
 * the stock age tool.  Files follow age's formats: identity files hold
 * "AGE-SECRET-KEY-1..." lines, recipient files "age1..." lines, both with
 * '#' comments and blank lines.  Everything is read into memory (bounded)
 * and a decrypted file is written only after the whole payload has
 * authenticated, so a failure never leaves partial plaintext behind.
 *
 * Error policy: one "sealpost-agetool: error: ..." line on stderr and exit
 * status 1.  Secret keys are wiped before exit; they are never printed
 * except by keygen, whose job that is.
 */
#include "build.h"

#include <sys/stat.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "age.h"
#include "hash.h"
#include "util.h"

#define PROG		"sealpost-agetool"
#define MAX_INPUT	((size_t)1 << 30)	/* 1 GiB to encrypt/decrypt */
#define MAX_KEYFILE	((size_t)1 << 24)	/* 16 MiB, as age */
#define MAX_KEYS	1024

/* Secret keys read from identity files. */
struct keys {
	unsigned char	(*sk)[AGE_KEY_LEN];
	size_t		 n;
};

static void	 usage(void) __attribute__((noreturn));
static void	 die(const char *, ...)
		    __attribute__((format(printf, 1, 2), noreturn));
static int	 read_fd(int, size_t, unsigned char **, size_t *);
static void	 read_path(const char *, size_t, unsigned char **, size_t *);
static void	 write_out(const char *, const void *, size_t, mode_t, int);
static char	*next_line(char **);
static void	 load_identities(const char *, struct keys *);
static void	 add_recipient(const char *, const char *, size_t,
		    unsigned char (**)[AGE_KEY_LEN], size_t *);
static void	 load_recipients(const char *, unsigned char (**)[AGE_KEY_LEN],
		    size_t *);
static int	 cmd_keygen(int, char **);
static int	 cmd_recipient(int, char **);
static int	 cmd_encrypt(int, char **);
static int	 cmd_decrypt(int, char **);

static struct keys	 keys;		/* wiped at exit */

/* Print usage and exit 1. */
static void
usage(void)
{
	fprintf(stderr,
	    "usage: " PROG " keygen [-o OUTPUT]\n"
	    "       " PROG " recipient [IDENTITYFILE]\n"
	    "       " PROG " encrypt [-a] (-r RECIPIENT | -R PATH)... "
	    "[-o OUTPUT] [INPUT]\n"
	    "       " PROG " decrypt -i PATH... [-o OUTPUT] [INPUT]\n");
	exit(1);
}

/* Wipe the keys, print an error and exit 1. */
static void
die(const char *fmt, ...)
{
	va_list	 ap;

	if (keys.sk != NULL)
		hash_wipe(keys.sk, MAX_KEYS * AGE_KEY_LEN);
	fprintf(stderr, PROG ": error: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	exit(1);
}

/* Read a whole fd, at most max bytes: 0, or -1 with errno (EFBIG). */
static int
read_fd(int fd, size_t max, unsigned char **out, size_t *outlen)
{
	unsigned char	*buf = NULL;
	size_t		 len = 0, cap = 0;
	ssize_t		 n;

	for (;;) {
		if (len == cap) {
			if (cap > max) {
				free(buf);
				errno = EFBIG;
				return -1;
			}
			cap = cap == 0 ? 65536 : cap * 2;
			buf = xreallocarray(buf, 1, cap + 1);
		}
		n = read(fd, buf + len, cap - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			free(buf);
			return -1;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > max) {
		free(buf);
		errno = EFBIG;
		return -1;
	}
	buf[len] = '\0';	/* room reserved: text files become strings */
	*out = buf;
	*outlen = len;
	return 0;
}

/* Read a file ("-" or NULL: stdin) or die. */
static void
read_path(const char *path, size_t max, unsigned char **out, size_t *outlen)
{
	int	 fd = STDIN_FILENO;

	if (path != NULL && strcmp(path, "-") != 0 &&
	    (fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		die("%s: %s", path, strerror(errno));
	if (read_fd(fd, max, out, outlen) != 0)
		die("%s: %s", path != NULL ? path : "stdin",
		    errno == EFBIG ? "file too large" : strerror(errno));
	if (fd != STDIN_FILENO)
		close(fd);
}

/* Write everything to path (NULL or "-": stdout) or die. */
static void
write_out(const char *path, const void *p, size_t len, mode_t mode, int excl)
{
	const unsigned char	*b = p;
	ssize_t			 n;
	int			 fd = STDOUT_FILENO, flags;

	if (path != NULL && strcmp(path, "-") != 0) {
		flags = O_WRONLY | O_CREAT | O_CLOEXEC |
		    (excl ? O_EXCL : O_TRUNC);
		if ((fd = open(path, flags, mode)) == -1)
			die("%s: %s", path, strerror(errno));
	}
	while (len > 0) {
		n = write(fd, b, len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			die("%s: %s", path != NULL ? path : "stdout",
			    strerror(errno));
		b += n;
		len -= (size_t)n;
	}
	if (fd != STDOUT_FILENO && close(fd) == -1)
		die("%s: %s", path, strerror(errno));
}

/* Split off the next line (LF or CRLF) of a NUL-terminated buffer. */
static char *
next_line(char **pp)
{
	char	*line = *pp, *nl;
	size_t	 len;

	if (line == NULL || *line == '\0')
		return NULL;
	if ((nl = strchr(line, '\n')) != NULL) {
		*nl = '\0';
		*pp = nl + 1;
	} else
		*pp = NULL;
	len = strlen(line);
	if (len > 0 && line[len - 1] == '\r')
		line[len - 1] = '\0';
	return line;
}

/* Append the identities of an age identity file to keys, or die. */
static void
load_identities(const char *path, struct keys *k)
{
	unsigned char	*buf;
	char		*p, *line;
	size_t		 len, lineno = 0, found = 0;

	read_path(path, MAX_KEYFILE, &buf, &len);
	if (memchr(buf, '\0', len) != NULL) {
		hash_wipe(buf, len);
		die("%s: not an identity file (binary data; passphrase-"
		    "protected identity files are not supported)", path);
	}
	p = (char *)buf;
	while ((line = next_line(&p)) != NULL) {
		lineno++;
		if (line[0] == '#' || line[0] == '\0')
			continue;
		if (strncmp(line, "AGE-SECRET-KEY-PQ-", 18) == 0 ||
		    strncmp(line, "AGE-PLUGIN-", 11) == 0) {
			hash_wipe(buf, len);
			die("%s:%zu: post-quantum and plugin identities are "
			    "not supported", path, lineno);
		}
		if (strncmp(line, "-----BEGIN", 10) == 0 ||
		    strncmp(line, "age-encryption.org/", 19) == 0) {
			hash_wipe(buf, len);
			die("%s: encrypted identity files and SSH keys are not "
			    "supported", path);
		}
		if (k->n == MAX_KEYS) {
			hash_wipe(buf, len);
			die("%s: more than %d identities", path, MAX_KEYS);
		}
		/* One fixed array: no realloc leaves key copies behind. */
		if (k->sk == NULL)
			k->sk = xcalloc(MAX_KEYS, AGE_KEY_LEN);
		if (age_identity_parse(line, k->sk[k->n]) != 0) {
			hash_wipe(buf, len);
			die("%s:%zu: malformed identity (want "
			    "AGE-SECRET-KEY-1...)", path, lineno);
		}
		k->n++;
		found++;
	}
	hash_wipe(buf, len);
	free(buf);
	if (found == 0)
		die("%s: no identities found", path);
}

/* Parse one "age1..." recipient (from `where') and append it, or die. */
static void
add_recipient(const char *s, const char *where, size_t lineno,
    unsigned char (**pks)[AGE_KEY_LEN], size_t *n)
{
	if (*n == AGE_MAX_RECIPIENTS)
		die("more than %d recipients", AGE_MAX_RECIPIENTS);
	*pks = xreallocarray(*pks, *n + 1, AGE_KEY_LEN);
	if (age_recipient_parse(s, (*pks)[*n]) == 0) {
		(*n)++;
		return;
	}
	if (strncmp(s, "ssh-", 4) == 0 || strncmp(s, "age1pq1", 7) == 0 ||
	    strncmp(s, "age1tag", 7) == 0)
		die("%s%s%zu: only X25519 (age1...) recipients are supported",
		    where, lineno ? ":" : "", lineno);
	if (lineno != 0)
		die("%s:%zu: malformed recipient", where, lineno);
	die("malformed recipient (want age1...)");
}

/* Append the recipients of a recipients file, or die. */
static void
load_recipients(const char *path, unsigned char (**pks)[AGE_KEY_LEN],
    size_t *n)
{
	unsigned char	*buf;
	char		*p, *line;
	size_t		 len, lineno = 0, before = *n;

	read_path(path, MAX_KEYFILE, &buf, &len);
	p = (char *)buf;
	while ((line = next_line(&p)) != NULL) {
		lineno++;
		if (line[0] == '#' || line[0] == '\0')
			continue;
		add_recipient(line, path, lineno, pks, n);
	}
	free(buf);
	if (*n == before)
		die("%s: no recipients found", path);
}

/* keygen: a new identity in age-keygen's file format. */
static int
cmd_keygen(int argc, char **argv)
{
	unsigned char	 pk[AGE_KEY_LEN], sk[AGE_KEY_LEN];
	char		 id[AGE_IDENTITY_STRLEN], rcpt[AGE_RECIPIENT_STRLEN];
	char		 when[32], *text;
	const char	*out = NULL;
	struct tm	 tm;
	time_t		 now;
	int		 ch, len, fd;

	while ((ch = getopt(argc, argv, "o:")) != -1) {
		switch (ch) {
		case 'o':
			out = optarg;
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	if (age_keygen(pk, sk) != 0 ||
	    age_identity_format(sk, id, sizeof(id)) != 0 ||
	    age_recipient_format(pk, rcpt, sizeof(rcpt)) != 0) {
		hash_wipe(sk, sizeof(sk));
		die("key generation failed");
	}
	hash_wipe(sk, sizeof(sk));
	now = time(NULL);
	gmtime_r(&now, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	len = xasprintf(&text, "# created: %s\n# public key: %s\n%s\n",
	    when, rcpt, id);
	hash_wipe(id, sizeof(id));
	write_out(out, text, (size_t)len, 0600, 1);
	hash_wipe(text, (size_t)len);
	free(text);
	fd = out != NULL && strcmp(out, "-") != 0 ? -1 : STDOUT_FILENO;
	if (fd == -1 || !isatty(fd))
		fprintf(stderr, "Public key: %s\n", rcpt);
	return 0;
}

/* recipient: print the recipients of an identity file (age-keygen -y). */
static int
cmd_recipient(int argc, char **argv)
{
	unsigned char	 pk[AGE_KEY_LEN];
	char		 rcpt[AGE_RECIPIENT_STRLEN];
	size_t		 i;

	if (argc > 2)
		usage();
	load_identities(argc == 2 ? argv[1] : "-", &keys);
	for (i = 0; i < keys.n; i++) {
		if (age_public_key(keys.sk[i], pk) != 0 ||
		    age_recipient_format(pk, rcpt, sizeof(rcpt)) != 0)
			die("cannot derive a recipient");
		printf("%s\n", rcpt);
	}
	return 0;
}

/* encrypt: to the -r/-R recipients, binary or armored. */
static int
cmd_encrypt(int argc, char **argv)
{
	unsigned char	(*pks)[AGE_KEY_LEN] = NULL, *in, *out;
	const char	*outpath = NULL, *err = NULL;
	size_t		 npks = 0, inlen, outlen;
	int		 ch, armor = 0;

	while ((ch = getopt(argc, argv, "ar:R:o:")) != -1) {
		switch (ch) {
		case 'a':
			armor = 1;
			break;
		case 'r':
			add_recipient(optarg, "-r", 0, &pks, &npks);
			break;
		case 'R':
			load_recipients(optarg, &pks, &npks);
			break;
		case 'o':
			outpath = optarg;
			break;
		default:
			usage();
		}
	}
	if (argc - optind > 1)
		usage();
	if (npks == 0)
		die("no recipients: use -r RECIPIENT or -R PATH");
	if (!armor && (outpath == NULL || strcmp(outpath, "-") == 0) &&
	    isatty(STDOUT_FILENO))
		die("refusing to write binary to a terminal: use -a or -o");
	read_path(optind < argc ? argv[optind] : NULL, MAX_INPUT, &in, &inlen);
	if (age_encrypt(pks, npks, in, inlen, armor, &out, &outlen,
	    &err) != 0)
		die("encryption failed: %s", err);
	hash_wipe(in, inlen);
	free(in);
	write_out(outpath, out, outlen, 0666, 0);
	free(out);
	free(pks);
	return 0;
}

/* decrypt: with the -i identity files; output only when all is well. */
static int
cmd_decrypt(int argc, char **argv)
{
	struct age_identity	*ids;
	unsigned char		*in, *out;
	const char		*outpath = NULL, *err = NULL;
	size_t			 inlen, outlen, i;
	int			 ch, nfiles = 0;
	enum age_status		 st;

	while ((ch = getopt(argc, argv, "i:o:")) != -1) {
		switch (ch) {
		case 'i':
			load_identities(optarg, &keys);
			nfiles++;
			break;
		case 'o':
			outpath = optarg;
			break;
		default:
			usage();
		}
	}
	if (argc - optind > 1)
		usage();
	if (nfiles == 0)
		die("no identities: use -i PATH");
	ids = xcalloc(keys.n, sizeof(*ids));
	for (i = 0; i < keys.n; i++) {
		ids[i].type = AGE_IDENTITY_X25519;
		ids[i].x25519_sk = keys.sk[i];
	}
	read_path(optind < argc ? argv[optind] : NULL, MAX_INPUT, &in, &inlen);
	st = age_decrypt(ids, keys.n, in, inlen, 0, &out, &outlen, &err);
	free(ids);
	free(in);
	if (st != AGE_OK)
		die("%s", err != NULL ? err : age_status_name(st));
	write_out(outpath, out, outlen, 0600, 0);
	age_free_plaintext(&out, outlen);
	return 0;
}

int
main(int argc, char **argv)
{
	const char	*cmd;
	int		 rc;

	if (argc < 2)
		usage();
	if (hash_init() != 0)
		die("libsodium failed to initialise");
	cmd = argv[1];
	argc--;
	argv++;
	if (strcmp(cmd, "keygen") == 0)
		rc = cmd_keygen(argc, argv);
	else if (strcmp(cmd, "recipient") == 0)
		rc = cmd_recipient(argc, argv);
	else if (strcmp(cmd, "encrypt") == 0)
		rc = cmd_encrypt(argc, argv);
	else if (strcmp(cmd, "decrypt") == 0)
		rc = cmd_decrypt(argc, argv);
	else
		usage();
	if (keys.sk != NULL) {
		hash_wipe(keys.sk, MAX_KEYS * AGE_KEY_LEN);
		free(keys.sk);
	}
	return rc;
}
