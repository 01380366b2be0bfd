/*
 * sealpostctl.c - the sealpost admin CLI.
 *
 * Online commands talk to the running daemon over its control socket
 * (status, reload).  Offline commands open the database directly (SQLite
 * lets them run beside the daemon: writers wait on the lock) and, where an
 * identity is made or opened, the master key.  Every change is audited with
 * actor "admin:<user>".
 *
 * -k FILE names the master key file for this run (an admin's shell has no
 * $CREDENTIALS_DIRECTORY when the daemon takes the key from systemd).
 *
 * Exit status: 0 success, 1 failure, 2 usage, 3 daemon not reachable,
 * 78 configuration error.
 */
#include "build.h"

#include <sys/stat.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "age.h"
#include "config.h"
#include "control.h"
#include "ctl.h"
#include "hash.h"
#include "keyring.h"
#include "letter.h"
#include "log.h"
#include "store.h"
#include "util.h"

#ifndef SYSCONFDIR
#define SYSCONFDIR "/etc"
#endif
#define DEFAULT_CONFIG	SYSCONFDIR "/sealpost/sealpost.conf"
#define TOKEN_PREFIX	"spt_"


struct cmd {
	const char	*word1;
	const char	*word2;		/* NULL: single-word command */
	int		(*fn)(struct ctl *, int, char **);
	const char	*usage;
};

static int	cmd_status(struct ctl *, int, char **);
static int	cmd_reload(struct ctl *, int, char **);
static int	cmd_keys_init(struct ctl *, int, char **);
static int	cmd_practice_add(struct ctl *, int, char **);
static int	cmd_clinician_add(struct ctl *, int, char **);
static int	cmd_patient_add(struct ctl *, int, char **);
static int	cmd_client_add(struct ctl *, int, char **);
static int	cmd_letter_show(struct ctl *, int, char **);
static int	cmd_identity_export(struct ctl *, int, char **);
static int	cmd_audit_verify(struct ctl *, int, char **);
static int	cmd_db_check(struct ctl *, int, char **);

static const struct cmd cmds[] = {
	{ "status", NULL, cmd_status, "status" },
	{ "reload", NULL, cmd_reload, "reload" },
	{ "keys", "init", cmd_keys_init, "keys init [-o FILE]" },
	{ "practice", "add", cmd_practice_add,
	    "practice add --name NAME --domain DOMAIN" },
	{ "clinician", "add", cmd_clinician_add,
	    "clinician add --practice ID --name NAME --email ADDR "
	    "[--role ROLE]" },
	{ "patient", "add", cmd_patient_add,
	    "patient add --practice ID --name NAME [--email ADDR] "
	    "[--verified] [--consent] [--age-recipient age1...]" },
	{ "client", "add", cmd_client_add,
	    "client add --practice ID --name NAME [--author CLINICIAN_ID]" },
	{ "letter", "show", cmd_letter_show, "letter show ID" },
	{ "letter", "release", cmd_letter_release, "letter release ID" },
	{ "letter", "cancel", cmd_letter_cancel, "letter cancel ID" },
	{ "letter", "close", cmd_letter_close, "letter close ID" },
	{ "queue", "list", cmd_queue_list,
	    "queue list [-s STATES] [-n MAX]" },
	{ "queue", "retry", cmd_queue_retry, "queue retry [LETTER_ID]" },
	{ "paper", "list", cmd_paper_list, "paper list [-a] [-p PRACTICE_ID]" },
	{ "paper", "print", cmd_paper_print, "paper print ID [-o FILE.pdf]" },
	{ "paper", "done", cmd_paper_done, "paper done ID" },
	{ "bounce", NULL, cmd_bounce, "bounce -r ADDRESS [FILE]" },
	{ "quarantine", "list", cmd_quarantine_list, "quarantine list [-a]" },
	{ "quarantine", "show", cmd_quarantine_show, "quarantine show ID" },
	{ "quarantine", "file", cmd_quarantine_file,
	    "quarantine file ID --thread LETTER_ID" },
	{ "quarantine", "reject", cmd_quarantine_reject,
	    "quarantine reject ID [-r REASON]" },
	{ "practice", "set", cmd_practice_set,
	    "practice set ID [--failsafe ADDR] [--policy full|notify] "
	    "[--reply-domain DOMAIN] [--address TEXT] [--phone TEXT] "
	    "[--team-email ADDR] [--duty-email ADDR]" },
	{ "clinician", "set", cmd_clinician_set,
	    "clinician set ID [--active yes|no] [--email ADDR]" },
	{ "patient", "set", cmd_patient_set,
	    "patient set ID [--email ADDR] [--verified yes|no] "
	    "[--consent yes|no] [--address TEXT] [--shared-ok yes|no]" },
	{ "client", "callback", cmd_client_callback,
	    "client callback ID URL|--off" },
	{ "identity", "export", cmd_identity_export,
	    "identity export practice|clinician|patient ID [-o FILE]" },
	{ "audit", "verify", cmd_audit_verify, "audit verify" },
	{ "db", "check", cmd_db_check, "db check" },
};

static void	usage(void) __attribute__((noreturn));
static int	ctl_make_identity(struct ctl *, const char *, int64_t);
static int	ctl_add_begin(struct ctl *, int64_t);
static int	ctl_add_party_end(struct ctl *, const char *, int, int64_t,
		    const char *);

static void
usage(void)
{
	size_t	 i;

	fprintf(stderr, "usage: sealpostctl [-f config] [-k keyfile] "
	    "command ...\n"
	    "commands:\n");
	for (i = 0; i < nitems(cmds); i++)
		fprintf(stderr, "  %s\n", cmds[i].usage);
	exit(2);
}

/* Open the database named by the config (creating and migrating it). */
int
ctl_open_store(struct ctl *c)
{
	const char	*error = NULL;

	if (c->store != NULL)
		return 0;
	if (store_open(c->cfg->database, STORE_RDWR | STORE_CREATE, &c->store,
	    &error) != STORE_OK) {
		fprintf(stderr, "sealpostctl: %s: %s\n", c->cfg->database,
		    error);
		return -1;
	}
	return 0;
}

/* Load the master key named by the config (or the credential). */
int
ctl_open_keyring(struct ctl *c)
{
	const char	*error = NULL;

	if (c->keyring != NULL)
		return 0;
	if (keyring_load(c->keyfile != NULL ? c->keyfile :
	    c->cfg->master_key_file, &c->keyring, &error) != 0) {
		fprintf(stderr, "sealpostctl: master key: %s\n", error);
		return -1;
	}
	return 0;
}

/* Append an audit row for an admin action. */
int
ctl_audit(struct ctl *c, const char *action, const char *object,
    const char *outcome)
{
	const char	*error = NULL;

	if (store_audit(c->store, c->actor, action, object, outcome,
	    &error) != STORE_OK) {
		fprintf(stderr, "sealpostctl: audit: %s\n", error);
		return -1;
	}
	return 0;
}

/* Parse a positive id option. */
int
opt_i64(const char *name, const char *s, int64_t *out)
{
	if (util_parse_i64(s, 1, INT64_MAX, out) != 0) {
		fprintf(stderr, "sealpostctl: --%s: not a positive number: %s\n",
		    name, s);
		return -1;
	}
	return 0;
}

/* RFC 3339 UTC. */
const char *
ctl_time(int64_t t, char *buf, size_t len)
{
	time_t		 tt = (time_t)t;
	struct tm	 tm;

	if (t <= 0) {
		strlcpy_sp(buf, "-", len);
		return buf;
	}
	gmtime_r(&tt, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return buf;
}

/*
 * A deliberately plain addr-spec check for addresses we will mail:
 * local@domain, printable ASCII, no spaces or quotes, <= 254 octets,
 * local part <= 64.
 */
int
valid_email(const char *s)
{
	const char	*at = strrchr(s, '@');
	const char	*p;

	if (at == NULL || at == s || strlen(s) > 254 || at - s > 64 ||
	    strchr(s, '@') != at)
		return 0;
	for (p = s; p < at; p++)
		if (*p <= ' ' || *p >= 0x7f || strchr("\"(),:;<>[\\]", *p))
			return 0;
	return valid_domain(at + 1);
}

/* letters, digits, hyphens, dots; at least one dot; labels 1..63. */
int
valid_domain(const char *s)
{
	size_t		 label = 0, dots = 0;
	const char	*p;

	if (*s == '\0' || strlen(s) > 253)
		return 0;
	for (p = s; *p != '\0'; p++) {
		if (*p == '.') {
			if (label == 0)
				return 0;
			label = 0;
			dots++;
		} else if ((*p >= 'a' && *p <= 'z') ||
		    (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		    *p == '-') {
			if (++label > 63)
				return 0;
		} else
			return 0;
	}
	return label > 0 && dots > 0;
}

/* status: ask the daemon; fall back to the database when it is down. */
static int
cmd_status(struct ctl *c, int argc, char **argv)
{
	char		*reply = NULL, *error = NULL;
	struct store_stats st;
	const char	*serr = NULL;

	if (control_request(c->cfg->control_socket, "status", &reply,
	    &error) == 0) {
		printf("%s\n", reply);
		free(reply);
		return 0;
	}
	fprintf(stderr, "sealpostctl: daemon not reachable at %s: %s\n",
	    c->cfg->control_socket, error);
	free(error);
	if (access(c->cfg->database, R_OK) == 0 && ctl_open_store(c) == 0 &&
	    store_stats(c->store, &st, &serr) == STORE_OK)
		printf("{\"state\":\"stopped\",\"counts\":{\"practices\":%lld,"
		    "\"clinicians\":%lld,\"patients\":%lld,\"clients\":%lld,"
		    "\"letters\":%lld,\"deliveries_queued\":%lld,"
		    "\"audit_rows\":%lld}}\n", (long long)st.practices,
		    (long long)st.clinicians, (long long)st.patients,
		    (long long)st.clients, (long long)st.letters,
		    (long long)st.deliveries_queued, (long long)st.audit_rows);
	return 3;
}

/* reload: as SIGHUP. */
static int
cmd_reload(struct ctl *c, int argc, char **argv)
{
	char	*reply = NULL, *error = NULL;

	if (control_request(c->cfg->control_socket, "reload", &reply,
	    &error) != 0) {
		fprintf(stderr, "sealpostctl: daemon not reachable at %s: %s\n",
		    c->cfg->control_socket, error);
		free(error);
		return 3;
	}
	printf("%s\n", reply);
	free(reply);
	return 0;
}

/* keys init: create the master key file. */
static int
cmd_keys_init(struct ctl *c, int argc, char **argv)
{
	const char	*path = c->keyfile != NULL ? c->keyfile :
			    c->cfg->master_key_file, *error = NULL;
	int		 ch;

	optind = 0;
	while ((ch = getopt(argc, argv, "o:")) != -1) {
		if (ch != 'o')
			return 2;
		path = optarg;
	}
	if (optind != argc)
		return 2;
	if (path == NULL || *path == '\0') {
		fprintf(stderr, "sealpostctl: no master_key_file in %s: name "
		    "the output with -o FILE (then give it to systemd with "
		    "LoadCredential=master.key:FILE or systemd-creds "
		    "encrypt)\n", c->cfgpath);
		return 1;
	}
	if (keyring_create_master(path, &error) != 0) {
		fprintf(stderr, "sealpostctl: %s: %s\n", path, error);
		return 1;
	}
	printf("master key written to %s (mode 0400); back it up offline: "
	    "without it no sealed letter can be opened\n", path);
	return 0;
}

/* Make an identity for a fresh row inside the caller's transaction. */
static int
ctl_make_identity(struct ctl *c, const char *kind, int64_t id)
{
	unsigned char	 pk[KEYRING_KEY_LEN], wrapped[KEYRING_WRAPPED_LEN];
	char		 ad[64];
	const char	*error = NULL;

	snprintf(ad, sizeof(ad), "%s:%lld", kind, (long long)id);
	if (keyring_identity_new(c->keyring, ad, pk, wrapped, &error) != 0 ||
	    store_set_identity(c->store, kind, id, pk, wrapped,
	    sizeof(wrapped), &error) != STORE_OK) {
		fprintf(stderr, "sealpostctl: identity for %s: %s\n", ad,
		    error);
		return -1;
	}
	return 0;
}

/* Long options shared by the "add" commands. */
enum { O_NAME = 1, O_DOMAIN, O_PRACTICE, O_EMAIL, O_ROLE, O_VERIFIED,
    O_CONSENT, O_AGE, O_AUTHOR };
static const struct option add_opts[] = {
	{ "name", required_argument, NULL, O_NAME },
	{ "domain", required_argument, NULL, O_DOMAIN },
	{ "practice", required_argument, NULL, O_PRACTICE },
	{ "email", required_argument, NULL, O_EMAIL },
	{ "role", required_argument, NULL, O_ROLE },
	{ "verified", no_argument, NULL, O_VERIFIED },
	{ "consent", no_argument, NULL, O_CONSENT },
	{ "age-recipient", required_argument, NULL, O_AGE },
	{ "author", required_argument, NULL, O_AUTHOR },
	{ NULL, 0, NULL, 0 }
};

struct add_args {
	const char	*name, *domain, *email, *role, *age;
	int64_t		 practice, author;
	int		 verified, consent;
	unsigned	 seen;		/* bit per option */
};

/* Parse the "add" options; only those in `allowed' are accepted. */
static int
parse_add(int argc, char **argv, unsigned allowed, struct add_args *a)
{
	int	 ch;

	memset(a, 0, sizeof(*a));
	optind = 0;
	while ((ch = getopt_long(argc, argv, "", add_opts, NULL)) != -1) {
		if (ch <= 0 || ch >= 32 || !(allowed & (1u << ch)))
			return -1;
		a->seen |= 1u << ch;
		switch (ch) {
		case O_NAME:	a->name = optarg; break;
		case O_DOMAIN:	a->domain = optarg; break;
		case O_EMAIL:	a->email = optarg; break;
		case O_ROLE:	a->role = optarg; break;
		case O_AGE:	a->age = optarg; break;
		case O_VERIFIED: a->verified = 1; break;
		case O_CONSENT:	a->consent = 1; break;
		case O_PRACTICE:
			if (opt_i64("practice", optarg, &a->practice) != 0)
				return -1;
			break;
		case O_AUTHOR:
			if (opt_i64("author", optarg, &a->author) != 0)
				return -1;
			break;
		}
	}
	if (optind != argc)
		return -1;
	if (a->name != NULL && (*a->name == '\0' || strlen(a->name) > 200 ||
	    strpbrk(a->name, "\r\n") != NULL)) {
		fprintf(stderr, "sealpostctl: --name: 1..200 characters, one "
		    "line\n");
		return -1;
	}
	return 0;
}

#define BIT(o)	(1u << (o))

/* Run fn inside one transaction with its audit row; report errors. */
int
ctl_tx_end(struct ctl *c, int ok, const char *what)
{
	const char	*error = NULL;

	if (!ok) {
		store_rollback(c->store);
		return 1;
	}
	if (store_commit(c->store, &error) != STORE_OK) {
		fprintf(stderr, "sealpostctl: %s: commit: %s\n", what, error);
		return 1;
	}
	return 0;
}

/*
 * Open what an "add" needs: the store, the master key, and (when
 * practice != 0) check the practice exists; then BEGIN.  0 or -1 (said).
 */
static int
ctl_add_begin(struct ctl *c, int64_t practice)
{
	struct store_practice	*p = NULL;
	const char		*error = NULL;

	if (ctl_open_store(c) != 0 || ctl_open_keyring(c) != 0)
		return -1;
	if (practice != 0) {
		if (store_practice_get(c->store, practice, &p, &error) !=
		    STORE_OK) {
			fprintf(stderr, "sealpostctl: no practice %lld\n",
			    (long long)practice);
			return -1;
		}
		store_practice_free(&p);
	}
	if (store_begin(c->store, &error) != STORE_OK) {
		fprintf(stderr, "sealpostctl: %s\n", error);
		return -1;
	}
	return 0;
}

/*
 * Finish an "add" of a party whose row was just inserted (added = the
 * store's answer): give it an identity, audit "<kind>.add", commit, and
 * print the id.  Returns the exit status.
 */
static int
ctl_add_party_end(struct ctl *c, const char *kind, int added, int64_t id,
    const char *error)
{
	char	 object[64], action[32];
	int	 ok = added == STORE_OK;

	if (!ok)
		fprintf(stderr, "sealpostctl: %s add: %s\n", kind, error);
	ok = ok && ctl_make_identity(c, kind, id) == 0;
	snprintf(object, sizeof(object), "%s:%lld", kind, (long long)id);
	snprintf(action, sizeof(action), "%s.add", kind);
	ok = ok && ctl_audit(c, action, object, "ok") == 0;
	if (ctl_tx_end(c, ok, action) != 0)
		return 1;
	printf("%lld\n", (long long)id);
	return 0;
}

/* practice add */
static int
cmd_practice_add(struct ctl *c, int argc, char **argv)
{
	struct add_args	 a;
	char		 domain[256];
	const char	*error = NULL;
	int64_t		 id = 0;
	size_t		 i;
	int		 r;

	if (parse_add(argc, argv, BIT(O_NAME) | BIT(O_DOMAIN), &a) != 0 ||
	    a.name == NULL || a.domain == NULL)
		return 2;
	if (!valid_domain(a.domain)) {
		fprintf(stderr, "sealpostctl: --domain: not a domain name\n");
		return 1;
	}
	for (i = 0; a.domain[i] != '\0'; i++)
		domain[i] = (char)(a.domain[i] >= 'A' && a.domain[i] <= 'Z' ?
		    a.domain[i] + 32 : a.domain[i]);
	domain[i] = '\0';
	if (ctl_add_begin(c, 0) != 0)
		return 1;
	r = store_practice_add(c->store, a.name, domain, &id, &error);
	return ctl_add_party_end(c, "practice", r, id, error);
}

/* clinician add */
static int
cmd_clinician_add(struct ctl *c, int argc, char **argv)
{
	struct add_args		 a;
	const char		*error = NULL;
	int64_t			 id = 0;
	int			 r;

	if (parse_add(argc, argv, BIT(O_NAME) | BIT(O_PRACTICE) |
	    BIT(O_EMAIL) | BIT(O_ROLE), &a) != 0 || a.name == NULL ||
	    a.practice == 0 || a.email == NULL)
		return 2;
	if (!valid_email(a.email)) {
		fprintf(stderr, "sealpostctl: --email: not a mail address\n");
		return 1;
	}
	if (ctl_add_begin(c, a.practice) != 0)
		return 1;
	r = store_clinician_add(c->store, a.practice, a.name, a.email,
	    a.role != NULL ? a.role : "clinician", &id, &error);
	return ctl_add_party_end(c, "clinician", r, id, error);
}

/* patient add */
static int
cmd_patient_add(struct ctl *c, int argc, char **argv)
{
	struct add_args		 a;
	unsigned char		 pk[32];
	const char		*error = NULL;
	int64_t			 id = 0;
	int			 r;

	if (parse_add(argc, argv, BIT(O_NAME) | BIT(O_PRACTICE) |
	    BIT(O_EMAIL) | BIT(O_VERIFIED) | BIT(O_CONSENT) | BIT(O_AGE),
	    &a) != 0 || a.name == NULL || a.practice == 0)
		return 2;
	if (a.email != NULL && !valid_email(a.email)) {
		fprintf(stderr, "sealpostctl: --email: not a mail address\n");
		return 1;
	}
	if (a.age != NULL && age_recipient_parse(a.age, pk) != 0) {
		fprintf(stderr, "sealpostctl: --age-recipient: not an age "
		    "X25519 recipient (age1...)\n");
		return 1;
	}
	if (ctl_add_begin(c, a.practice) != 0)
		return 1;
	r = store_patient_add(c->store, a.practice, a.name, a.email,
	    a.verified, a.consent, a.age, &id, &error);
	return ctl_add_party_end(c, "patient", r, id, error);
}

/* client add: the token is printed once and only its hash is stored. */
static int
cmd_client_add(struct ctl *c, int argc, char **argv)
{
	struct add_args		 a;
	struct store_practice	*p = NULL;
	struct store_clinician	*cl = NULL;
	unsigned char		 raw[32], th[32];
	char			 token[sizeof(TOKEN_PREFIX) + 64], object[64];
	const char		*error = NULL;
	int64_t			 id = 0;
	int			 ok;

	if (parse_add(argc, argv, BIT(O_NAME) | BIT(O_PRACTICE) |
	    BIT(O_AUTHOR), &a) != 0 || a.name == NULL || a.practice == 0)
		return 2;
	if (ctl_open_store(c) != 0)
		return 1;
	if (store_practice_get(c->store, a.practice, &p, &error) !=
	    STORE_OK) {
		fprintf(stderr, "sealpostctl: no practice %lld\n",
		    (long long)a.practice);
		return 1;
	}
	store_practice_free(&p);
	if (a.author != 0) {
		if (store_clinician_get(c->store, a.author, &cl, &error) !=
		    STORE_OK || cl->practice_id != a.practice) {
			fprintf(stderr, "sealpostctl: --author: no clinician "
			    "%lld in practice %lld\n", (long long)a.author,
			    (long long)a.practice);
			store_clinician_free(&cl);
			return 1;
		}
		store_clinician_free(&cl);
	}
	hash_random(raw, sizeof(raw));
	memcpy(token, TOKEN_PREFIX, sizeof(TOKEN_PREFIX) - 1);
	hash_hex(raw, sizeof(raw), token + sizeof(TOKEN_PREFIX) - 1);
	hash_wipe(raw, sizeof(raw));
	hash_sha256(token, strlen(token), th);
	if (store_begin(c->store, &error) != STORE_OK) {
		fprintf(stderr, "sealpostctl: %s\n", error);
		return 1;
	}
	ok = store_client_add(c->store, a.practice, a.name, th, a.author, &id,
	    &error) == STORE_OK;
	if (!ok)
		fprintf(stderr, "sealpostctl: client add: %s\n", error);
	snprintf(object, sizeof(object), "client:%lld", (long long)id);
	ok = ok && ctl_audit(c, "client.add", object, "ok") == 0;
	if (ctl_tx_end(c, ok, "client add") != 0) {
		hash_wipe(token, sizeof(token));
		return 1;
	}
	fprintf(stderr, "client %lld created; its token is shown once, "
	    "store it in the clinical system now:\n", (long long)id);
	printf("%s\n", token);
	hash_wipe(token, sizeof(token));
	return 0;
}

/* letter show: metadata and delivery states, never content. */
static int
cmd_letter_show(struct ctl *c, int argc, char **argv)
{
	struct store_letter	*l = NULL;
	const char		*error = NULL;
	char			 t1[32], t2[32], t3[32], hex[65], object[64];
	int64_t			 id;
	size_t			 i;
	int			 r;

	if (argc != 2 || opt_i64("id", argv[1], &id) != 0)
		return 2;
	if (ctl_open_store(c) != 0)
		return 1;
	snprintf(object, sizeof(object), "letter:%lld", (long long)id);
	if ((r = store_letter_get(c->store, id, &l, &error)) != STORE_OK) {
		fprintf(stderr, "sealpostctl: letter %lld: %s\n",
		    (long long)id, r == STORE_NOTFOUND ? "no such letter" :
		    error);
		if (r == STORE_NOTFOUND)
			ctl_audit(c, "letter.view", object, "not found");
		return 1;
	}
	/* Viewing is an action on a patient's record: audited (T21). */
	if (ctl_audit(c, "letter.view", object, "ok") != 0) {
		store_letter_free(&l);
		return 1;
	}
	hash_hex(l->sealed_sha256, 32, hex);
	printf("letter:     %lld\n", (long long)l->id);
	printf("practice:   %lld\n", (long long)l->practice_id);
	printf("client:     %lld\n", (long long)l->client_id);
	printf("patient:    %lld\n", (long long)l->patient_id);
	printf("author:     %lld\n", (long long)l->author_id);
	printf("priority:   %s\n", letter_priority_name(l->priority));
	printf("channel:    %s\n", l->channel);
	printf("state:      %s\n", l->state);
	printf("created:    %s\n", ctl_time(l->created, t1, sizeof(t1)));
	if (l->closed > 0)
		printf("closed:     %s\n", ctl_time(l->closed, t1,
		    sizeof(t1)));
	printf("sealed:     %zu bytes, sha256 %s\n", l->sealed_len, hex);
	for (i = 0; i < l->ndeliveries; i++) {
		struct store_delivery	*dv = &l->deliveries[i];

		printf("delivery:   %lld %s state=%s attempts=%d next=%s "
		    "updated=%s%s%s\n", (long long)dv->id, dv->recipient,
		    dv->state, dv->attempts,
		    ctl_time(dv->next_attempt, t2, sizeof(t2)),
		    ctl_time(dv->updated, t3, sizeof(t3)),
		    dv->last_error ? " error=" : "",
		    dv->last_error ? dv->last_error : "");
	}
	store_letter_free(&l);
	return 0;
}

/* identity export: a party's age identity, for offline decryption. */
static int
cmd_identity_export(struct ctl *c, int argc, char **argv)
{
	struct keyring_secret	 sec = { NULL };
	struct store_practice	*p = NULL;
	struct store_clinician	*cl = NULL;
	struct store_patient	*pt = NULL;
	const unsigned char	*wrapped = NULL, *pk = NULL;
	const char		*kind, *out = NULL, *error = NULL;
	char			 ad[64], idline[128], pkline[128];
	size_t			 wlen = 0;
	int64_t			 id;
	int			 ch, fd, r, rc = 1;

	optind = 0;
	while ((ch = getopt(argc, argv, "o:")) != -1) {
		if (ch != 'o')
			return 2;
		out = optarg;
	}
	if (argc - optind != 2)
		return 2;
	kind = argv[optind];
	if (opt_i64("id", argv[optind + 1], &id) != 0)
		return 2;
	if (ctl_open_store(c) != 0 || ctl_open_keyring(c) != 0)
		return 1;
	if (strcmp(kind, "practice") == 0) {
		r = store_practice_get(c->store, id, &p, &error);
		if (r == STORE_OK) {
			wrapped = p->archive_wrapped;
			wlen = p->archive_wrapped_len;
			pk = p->archive_pk;
		}
	} else if (strcmp(kind, "clinician") == 0) {
		r = store_clinician_get(c->store, id, &cl, &error);
		if (r == STORE_OK) {
			wrapped = cl->wrapped;
			wlen = cl->wrapped_len;
			pk = cl->pk;
		}
	} else if (strcmp(kind, "patient") == 0) {
		r = store_patient_get(c->store, id, &pt, &error);
		if (r == STORE_OK) {
			wrapped = pt->wrapped;
			wlen = pt->wrapped_len;
			pk = pt->pk;
		}
	} else
		return 2;
	snprintf(ad, sizeof(ad), "%s:%lld", kind, (long long)id);
	if (r != STORE_OK) {
		fprintf(stderr, "sealpostctl: %s: %s\n", ad,
		    r == STORE_NOTFOUND ? "not found" : error);
		goto done;
	}
	if (keyring_identity_unwrap(c->keyring, ad, wrapped, wlen, &sec,
	    &error) != 0) {
		fprintf(stderr, "sealpostctl: %s: %s\n", ad, error);
		ctl_audit(c, "identity.export", ad, "unwrap failed");
		goto done;
	}
	if (age_identity_format(sec.key, idline, sizeof(idline)) != 0 ||
	    age_recipient_format(pk, pkline, sizeof(pkline)) != 0) {
		fprintf(stderr, "sealpostctl: %s: cannot format identity\n",
		    ad);
		goto done;
	}
	if (out != NULL) {
		fd = open(out, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC |
		    O_NOFOLLOW, 0600);
		if (fd == -1) {
			fprintf(stderr, "sealpostctl: %s: %s\n", out,
			    strerror(errno));
			goto done;
		}
	} else
		fd = STDOUT_FILENO;
	if (dprintf(fd, "# sealpost identity for %s\n# public key: %s\n%s\n",
	    ad, pkline, idline) < 0 || (fd != STDOUT_FILENO &&
	    (fsync(fd) != 0 || close(fd) != 0))) {
		fprintf(stderr, "sealpostctl: write: %s\n", strerror(errno));
		goto done;
	}
	if (ctl_audit(c, "identity.export", ad, "ok") != 0)
		goto done;
	if (out != NULL)
		fprintf(stderr, "identity for %s written to %s (mode 0600)\n",
		    ad, out);
	rc = 0;
done:
	hash_wipe(idline, sizeof(idline));
	keyring_secret_free(&sec);
	store_practice_free(&p);
	store_clinician_free(&cl);
	store_patient_free(&pt);
	return rc;
}

/* audit verify: walk the hash chain. */
static int
cmd_audit_verify(struct ctl *c, int argc, char **argv)
{
	const char	*error = NULL;
	int64_t		 n = 0, bad = 0;

	if (argc != 1)
		return 2;
	if (ctl_open_store(c) != 0)
		return 1;
	if (store_audit_verify(c->store, &n, &bad, &error) != STORE_OK) {
		fprintf(stderr, "sealpostctl: audit chain BROKEN at row %lld "
		    "(%s); %lld rows\n", (long long)bad,
		    error ? error : "hash mismatch", (long long)n);
		return 1;
	}
	printf("audit chain ok: %lld rows\n", (long long)n);
	return 0;
}

/* db check: SQLite integrity check. */
static int
cmd_db_check(struct ctl *c, int argc, char **argv)
{
	const char	*error = NULL;

	if (argc != 1)
		return 2;
	if (ctl_open_store(c) != 0)
		return 1;
	if (store_check(c->store, &error) != STORE_OK) {
		fprintf(stderr, "sealpostctl: integrity check failed: %s\n",
		    error);
		return 1;
	}
	printf("ok\n");
	return 0;
}

int
main(int argc, char *argv[])
{
	struct ctl	 c;
	struct passwd	*pw;
	const struct cmd *cmd = NULL;
	char		*cerror = NULL;
	size_t		 i;
	int		 ch, rc, skip;

	memset(&c, 0, sizeof(c));
	c.cfgpath = DEFAULT_CONFIG;
	while ((ch = getopt(argc, argv, "+f:k:h")) != -1) {
		switch (ch) {
		case 'f':
			c.cfgpath = optarg;
			break;
		case 'k':
			c.keyfile = optarg;
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1)
		usage();
	for (i = 0; i < nitems(cmds); i++) {
		if (strcmp(argv[0], cmds[i].word1) != 0)
			continue;
		if (cmds[i].word2 == NULL ||
		    (argc >= 2 && strcmp(argv[1], cmds[i].word2) == 0)) {
			cmd = &cmds[i];
			break;
		}
	}
	if (cmd == NULL)
		usage();

	log_init("sealpostctl", LOG_TO_STDERR, 0);
	umask(077);
	/* Reply documents are read with jansson: wipe what it frees. */
	letter_json_init();
	if (hash_init() != 0) {
		fprintf(stderr, "sealpostctl: libsodium init failed\n");
		return 1;
	}
	if (config_load(c.cfgpath, &c.cfg, &cerror) != 0) {
		fprintf(stderr, "sealpostctl: %s\n", cerror);
		free(cerror);
		return CONFIG_EX_CONFIG;
	}
	pw = getpwuid(getuid());
	snprintf(c.actor, sizeof(c.actor), "admin:%s",
	    pw != NULL ? pw->pw_name : "uid");

	/* Hand the command its own argv: "add --name x" etc. */
	skip = cmd->word2 != NULL ? 1 : 0;
	rc = cmd->fn(&c, argc - skip, argv + skip);
	if (rc == 2) {
		fprintf(stderr, "usage: sealpostctl [-f config] %s\n",
		    cmd->usage);
	}
	store_close(&c.store);
	keyring_free(&c.keyring);
	config_free(&c.cfg);
	return rc;
}
