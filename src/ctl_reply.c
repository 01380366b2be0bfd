/*
 * ctl_reply.c - sealpostctl commands for replies in: the quarantine
 * (list, show, file into a thread, reject) and closing a thread.
 *
 * A quarantined reply is sealed for the practice archive (and the
 * thread's clinician when one matched), so "show" and "file" open it
 * with the archive identity: they need the master key (-k).  Filing
 * reseals the same document for the chosen thread's author and the
 * archive, and queues the forward mail the daemon would have queued.
 *
 * Every look at content is audited ("reply.show") before it is printed;
 * decisions are audited by the store ("reply.file", "reply.reject",
 * "letter.close").  Content printed to the terminal has its control
 * characters replaced, so a reply cannot drive the admin's terminal.
 *
 * Commands return the exit status: 0, 1 (said on stderr), 2 usage.
 */
#include "build.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "age.h"
#include "config.h"
#include "ctl.h"
#include "hash.h"
#include "keyring.h"
#include "replydoc.h"
#include "store.h"
#include "util.h"

#define CTL_REJECT_REASON	"not for the record"
#define CTL_REASON_MAX		47	/* store_reply.reason[48] */
#define CTL_LIST_PAGE		1000	/* rows read at a time */

static int	 ctl_reply_load(struct ctl *, int64_t, struct store_reply *);
static int	 ctl_reply_open(struct ctl *, const struct store_reply *,
		    unsigned char **, size_t *);
static char	*ctl_clean(const char *);
static void	 ctl_clean_free(char *);
static void	 ctl_put(const char *, const char *, const char *);
static const char *ctl_forward_to(struct ctl *, struct store_practice *,
		    struct store_clinician *, struct store_reply_mail_new *);

/* quarantine list [-a]: waiting replies; -a: also those decided. */
int
cmd_quarantine_list(struct ctl *c, int argc, char **argv)
{
	struct store_reply	*rows = NULL;
	const char		*error = NULL;
	char			 t1[32], *from, *detail;
	int64_t			 since = 0;
	size_t			 n = 0, i;
	int			 ch, all = 0;

	optind = 0;
	while ((ch = getopt(argc, argv, "a")) != -1) {
		if (ch != 'a')
			return 2;
		all = 1;
	}
	if (optind != argc)
		return 2;
	if (ctl_open_store(c) != 0)
		return 1;
	printf("%-8s %-20s %-8s %-8s %-11s %-16s %-30s %s\n", "REPLY",
	    "RECEIVED", "PRACTICE", "THREAD", "STATE", "REASON", "FROM",
	    "DETAIL");
	/* In pages: with -a every filed reply is walked. */
	do {
		if (store_replies_list(c->store, 0, 0, all ?
		    STORE_RS_QUARANTINED "|" STORE_RS_FILED "|"
		    STORE_RS_REJECTED : STORE_RS_QUARANTINED, since,
		    CTL_LIST_PAGE, &rows, &n, &error) != STORE_OK) {
			fprintf(stderr, "sealpostctl: quarantine list: %s\n",
			    error);
			return 1;
		}
		for (i = 0; i < n; i++) {
			since = rows[i].id;
			/* Filed on arrival, never quarantined: not staff's. */
			if (strcmp(rows[i].state, STORE_RS_QUARANTINED) != 0 &&
			    rows[i].decided == 0)
				continue;
			printf("%-8lld %-20s %-8lld ", (long long)rows[i].id,
			    ctl_time(rows[i].received, t1, sizeof(t1)),
			    (long long)rows[i].practice_id);
			if (rows[i].letter_id > 0)
				printf("%-8lld ", (long long)rows[i].letter_id);
			else
				printf("%-8s ", "-");
			printf("%-11s %-16s ", rows[i].state,
			    rows[i].reason[0] != '\0' ? rows[i].reason : "-");
			from = ctl_clean(rows[i].from_addr[0] != '\0' ?
			    rows[i].from_addr : "-");
			detail = ctl_clean(rows[i].detail);
			printf("%-30s %s\n", from, detail);
			ctl_clean_free(from);
			ctl_clean_free(detail);
		}
		free(rows);
		rows = NULL;
	} while (n == CTL_LIST_PAGE);
	return 0;
}

/* quarantine show ID: routing fields and the content (audited). */
int
cmd_quarantine_show(struct ctl *c, int argc, char **argv)
{
	struct store_reply	 r;
	struct replydoc		*doc = NULL;
	unsigned char		*clear = NULL;
	const char		*error = NULL;
	char			 t1[32], object[64];
	size_t			 clearlen = 0, i;
	int64_t			 id;
	int			 rc = 1;

	if (argc != 2 || opt_i64("id", argv[1], &id) != 0)
		return 2;
	if (ctl_open_store(c) != 0 || ctl_open_keyring(c) != 0)
		return 1;
	if (ctl_reply_load(c, id, &r) != 0)
		return 1;
	snprintf(object, sizeof(object), "reply:%lld", (long long)id);
	if (ctl_reply_open(c, &r, &clear, &clearlen) != 0) {
		ctl_audit(c, "reply.show", object, "decrypt failed");
		return 1;
	}
	if (replydoc_parse(clear, clearlen, &doc, &error) != 0) {
		fprintf(stderr, "sealpostctl: reply %lld: %s\n", (long long)id,
		    error);
		ctl_audit(c, "reply.show", object, "bad document");
		goto done;
	}
	/* Viewing is an action on a patient's record: audited first. */
	if (ctl_audit(c, "reply.show", object, "ok") != 0)
		goto done;
	printf("reply:      %lld\n", (long long)r.id);
	printf("state:      %s\n", r.state);
	if (r.reason[0] != '\0')
		printf("reason:     %s\n", r.reason);
	if (r.detail[0] != '\0')
		ctl_put("detail:     ", r.detail, "\n");
	printf("practice:   %lld\n", (long long)r.practice_id);
	printf("thread:     %lld\n", (long long)r.letter_id);
	printf("patient:    %lld\n", (long long)r.patient_id);
	printf("clinician:  %lld\n", (long long)r.clinician_id);
	printf("sender:     %s%s%s\n", r.sender, r.urgent ? ", urgent" : "",
	    r.shared ? ", shared mailbox" : "");
	ctl_put("from:       ", r.from_addr[0] != '\0' ?
	    r.from_addr : "-", "\n");
	ctl_put("message-id: ", r.message_id[0] != '\0' ?
	    r.message_id : "-", "\n");
	printf("source:     %s\n", r.source);
	printf("received:   %s\n", ctl_time(r.received, t1, sizeof(t1)));
	if (r.decided > 0) {
		printf("decided:    %s", ctl_time(r.decided, t1, sizeof(t1)));
		ctl_put(" by ", r.decided_by, "\n");
	}
	printf("sealed:     %zu bytes\n", r.sealed_len);
	if (!doc->parsed)
		printf("content:    not parsed (only the original message, "
		    "%zu bytes, is kept)\n", doc->original_size);
	ctl_put("subject:    ", doc->subject != NULL ?
	    doc->subject : "-", "\n");
	for (i = 0; i < doc->natt; i++) {
		ctl_put("attachment: ", doc->att[i].filename != NULL ?
		    doc->att[i].filename : "(no name)", "");
		ctl_put(" (", doc->att[i].content_type != NULL ?
		    doc->att[i].content_type : "?", "");
		printf(", %zu bytes)\n", doc->att[i].size);
	}
	printf("--- new text ---\n");
	ctl_put("", doc->new_text != NULL ? doc->new_text : "", "\n");
	printf("--- full text ---\n");
	ctl_put("", doc->text != NULL ? doc->text : "", "\n");
	rc = 0;
done:
	replydoc_free(&doc);
	age_free_plaintext(&clear, clearlen);
	return rc;
}

/*
 * quarantine file ID --thread LETTER: into that thread, resealed for its
 * author and the archive, forwarded like a reply filed on arrival.
 */
int
cmd_quarantine_file(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "thread", required_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 }
	};
	struct store_reply		 r;
	struct store_letter		*l = NULL;
	struct store_practice		*pr = NULL;
	struct store_clinician		*cl = NULL;
	struct store_reply_mail_new	 mail;
	struct replydoc			*doc = NULL;
	unsigned char			 pks[2][AGE_KEY_LEN];
	unsigned char			*clear = NULL, *sealed = NULL;
	const char			*error = NULL, *to;
	size_t				 clearlen = 0, sealedlen = 0;
	int64_t				 id, thread = 0;
	int				 ch, rc = 1, r2;

	if (argc < 2 || opt_i64("id", argv[1], &id) != 0)
		return 2;
	optind = 2;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch != 't' || opt_i64("thread", optarg, &thread) != 0)
			return 2;
	}
	if (optind != argc || thread == 0)
		return 2;
	if (ctl_open_store(c) != 0 || ctl_open_keyring(c) != 0)
		return 1;
	if (ctl_reply_load(c, id, &r) != 0)
		return 1;
	if (strcmp(r.state, STORE_RS_QUARANTINED) != 0) {
		fprintf(stderr, "sealpostctl: reply %lld is %s, not "
		    "quarantined: only a quarantined reply can be filed\n",
		    (long long)id, r.state);
		return 1;
	}
	if ((r2 = store_letter_get(c->store, thread, &l, &error)) !=
	    STORE_OK) {
		fprintf(stderr, "sealpostctl: --thread %lld: %s\n",
		    (long long)thread, r2 == STORE_NOTFOUND ? "no such letter" :
		    error);
		return 1;
	}
	if (l->practice_id != r.practice_id) {
		fprintf(stderr, "sealpostctl: --thread %lld: letter of "
		    "practice %lld, the reply came to practice %lld\n",
		    (long long)thread, (long long)l->practice_id,
		    (long long)r.practice_id);
		goto done;
	}
	if (store_practice_get(c->store, l->practice_id, &pr, &error) !=
	    STORE_OK || store_clinician_get(c->store, l->author_id, &cl,
	    &error) != STORE_OK) {
		fprintf(stderr, "sealpostctl: --thread %lld: its practice or "
		    "author: %s\n", (long long)thread, error != NULL ? error :
		    "not found");
		goto done;
	}
	if (ctl_reply_open(c, &r, &clear, &clearlen) != 0)
		goto done;
	/* Only a document we can read back is filed. */
	if (replydoc_parse(clear, clearlen, &doc, &error) != 0) {
		fprintf(stderr, "sealpostctl: reply %lld: %s\n", (long long)id,
		    error);
		goto done;
	}
	replydoc_free(&doc);
	memcpy(pks[0], cl->pk, AGE_KEY_LEN);
	memcpy(pks[1], pr->archive_pk, AGE_KEY_LEN);
	if (age_encrypt((const unsigned char (*)[AGE_KEY_LEN])pks, 2, clear,
	    clearlen, 0, &sealed, &sealedlen, &error) != 0) {
		fprintf(stderr, "sealpostctl: reply %lld: reseal: %s\n",
		    (long long)id, error);
		goto done;
	}
	to = ctl_forward_to(c, pr, cl, &mail);
	r2 = store_reply_file(c->store, id, thread, cl->id, sealed, sealedlen,
	    &mail, mail.kind != NULL ? 1 : 0, c->actor, &error);
	if (r2 == STORE_NOTFOUND) {
		fprintf(stderr, "sealpostctl: reply %lld: no longer "
		    "quarantined (decided meanwhile)\n", (long long)id);
		goto done;
	}
	if (r2 != STORE_OK) {
		fprintf(stderr, "sealpostctl: reply %lld: file: %s\n",
		    (long long)id, error);
		goto done;
	}
	printf("reply %lld filed to thread %lld (patient %lld); %s\n",
	    (long long)id, (long long)thread, (long long)l->patient_id, to);
	if (l->closed > 0)
		fprintf(stderr, "sealpostctl: note: thread %lld is closed; "
		    "the reply is filed all the same\n", (long long)thread);
	rc = 0;
done:
	age_free_plaintext(&clear, clearlen);
	free(sealed);
	store_letter_free(&l);
	store_practice_free(&pr);
	store_clinician_free(&cl);
	return rc;
}

/* quarantine reject ID [-r REASON] */
int
cmd_quarantine_reject(struct ctl *c, int argc, char **argv)
{
	struct store_reply	 r;
	const char		*reason = CTL_REJECT_REASON, *error = NULL, *p;
	int64_t			 id;
	int			 ch, r2;

	if (argc < 2 || opt_i64("id", argv[1], &id) != 0)
		return 2;
	optind = 2;
	while ((ch = getopt(argc, argv, "r:")) != -1) {
		if (ch != 'r')
			return 2;
		reason = optarg;
	}
	if (optind != argc)
		return 2;
	/* A short code or phrase for the audit, never the reply's text. */
	if (*reason == '\0' || strlen(reason) > CTL_REASON_MAX) {
		fprintf(stderr, "sealpostctl: -r: 1..%d characters\n",
		    CTL_REASON_MAX);
		return 1;
	}
	for (p = reason; *p != '\0'; p++)
		if (*p < 0x20 || *p > 0x7e) {
			fprintf(stderr, "sealpostctl: -r: printable ASCII "
			    "only\n");
			return 1;
		}
	if (ctl_open_store(c) != 0)
		return 1;
	if (ctl_reply_load(c, id, &r) != 0)
		return 1;
	if (strcmp(r.state, STORE_RS_QUARANTINED) != 0) {
		fprintf(stderr, "sealpostctl: reply %lld is %s, not "
		    "quarantined: only a quarantined reply can be rejected\n",
		    (long long)id, r.state);
		return 1;
	}
	r2 = store_reply_reject(c->store, id, reason, c->actor, &error);
	if (r2 == STORE_NOTFOUND) {
		fprintf(stderr, "sealpostctl: reply %lld: no longer "
		    "quarantined (decided meanwhile)\n", (long long)id);
		return 1;
	}
	if (r2 != STORE_OK) {
		fprintf(stderr, "sealpostctl: reply %lld: reject: %s\n",
		    (long long)id, error);
		return 1;
	}
	printf("reply %lld rejected\n", (long long)id);
	return 0;
}

/* letter close ID: later replies to the thread are quarantined. */
int
cmd_letter_close(struct ctl *c, int argc, char **argv)
{
	struct store_letter	*l = NULL;
	const char		*error = NULL;
	char			 t1[32];
	int64_t			 id;
	int			 r;

	if (argc != 2 || opt_i64("id", argv[1], &id) != 0)
		return 2;
	if (ctl_open_store(c) != 0)
		return 1;
	if ((r = store_letter_get(c->store, id, &l, &error)) != STORE_OK) {
		fprintf(stderr, "sealpostctl: letter %lld: %s\n",
		    (long long)id, r == STORE_NOTFOUND ? "no such letter" :
		    error);
		return 1;
	}
	if (l->closed > 0) {
		fprintf(stderr, "sealpostctl: letter %lld: thread already "
		    "closed at %s\n", (long long)id,
		    ctl_time(l->closed, t1, sizeof(t1)));
		store_letter_free(&l);
		return 1;
	}
	store_letter_free(&l);
	if ((r = store_letter_close(c->store, id, c->actor, &error)) !=
	    STORE_OK) {
		fprintf(stderr, "sealpostctl: letter %lld: close: %s\n",
		    (long long)id, r == STORE_NOTFOUND ? "no such letter" :
		    error);
		return 1;
	}
	printf("letter %lld: thread closed; later replies go to the "
	    "quarantine\n", (long long)id);
	return 0;
}

/* The reply's row; 0, or -1 (said). */
static int
ctl_reply_load(struct ctl *c, int64_t id, struct store_reply *r)
{
	const char	*error = NULL;
	int		 rc;

	if ((rc = store_reply_get(c->store, id, r, &error)) != STORE_OK) {
		fprintf(stderr, "sealpostctl: reply %lld: %s\n", (long long)id,
		    rc == STORE_NOTFOUND ? "no such reply" : error);
		return -1;
	}
	return 0;
}

/*
 * Decrypt a reply with its practice's archive identity: *clear is the
 * document (age_free_plaintext).  0, or -1 (said).
 */
static int
ctl_reply_open(struct ctl *c, const struct store_reply *r,
    unsigned char **clear, size_t *clearlen)
{
	struct store_practice	*pr = NULL;
	unsigned char		*blob = NULL;
	const char		*error = NULL;
	size_t			 bloblen = 0;
	int			 rc = -1;

	*clear = NULL;
	*clearlen = 0;
	if (store_practice_get(c->store, r->practice_id, &pr, &error) !=
	    STORE_OK || store_reply_sealed(c->store, r->id, &blob, &bloblen,
	    &error) != STORE_OK) {
		fprintf(stderr, "sealpostctl: reply %lld: %s\n",
		    (long long)r->id, error != NULL ? error :
		    "its practice or its sealed document is missing");
		goto done;
	}
	if (ctl_archive_open(c, pr, "reply", r->id, blob, bloblen, clear,
	    clearlen) != 0)
		goto done;
	rc = 0;
done:
	free(blob);
	store_practice_free(&pr);
	return rc;
}

/* The archive identity of pr opens a sealed document: see ctl.h. */
int
ctl_archive_open(struct ctl *c, const struct store_practice *pr,
    const char *kind, int64_t id, const unsigned char *blob, size_t bloblen,
    unsigned char **clear, size_t *clearlen)
{
	struct keyring_secret	 sec = { NULL };
	struct age_identity	 aid;
	const char		*error = NULL;
	char			 ad[64];
	enum age_status		 as;

	snprintf(ad, sizeof(ad), "practice:%lld", (long long)pr->id);
	if (keyring_identity_unwrap(c->keyring, ad, pr->archive_wrapped,
	    pr->archive_wrapped_len, &sec, &error) != 0) {
		fprintf(stderr, "sealpostctl: %s: %s\n", ad, error);
		return -1;
	}
	memset(&aid, 0, sizeof(aid));
	aid.type = AGE_IDENTITY_X25519;
	aid.x25519_sk = sec.key;
	as = age_decrypt(&aid, 1, blob, bloblen, 0, clear, clearlen, &error);
	keyring_secret_free(&sec);
	if (as != AGE_OK) {
		fprintf(stderr, "sealpostctl: %s %lld: cannot open: %s\n",
		    kind, (long long)id, age_status_name(as));
		return -2;
	}
	return 0;
}

/*
 * The mail that takes a filed reply to its reader, as the intake does:
 * [replies] forward = smtp: to the clinician, or to the team address
 * (else the failsafe address) when the clinician is inactive; imap: an
 * APPEND; none: no mail (m->kind NULL).  Returns a phrase for the admin.
 */
static const char *
ctl_forward_to(struct ctl *c, struct store_practice *pr,
    struct store_clinician *cl, struct store_reply_mail_new *m)
{
	const char	*team;

	memset(m, 0, sizeof(*m));
	if (strcmp(c->cfg->replies_forward, "none") == 0)
		return "no forward ([replies] forward = none)";
	if (strcmp(c->cfg->replies_forward, "imap") == 0) {
		m->kind = STORE_RM_APPEND;
		m->clinician_id = cl->active ? cl->id : 0;
		return "queued for the shared IMAP folder";
	}
	m->kind = STORE_RM_FORWARD;
	if (cl->active && cl->email != NULL && *cl->email != '\0') {
		m->to = cl->email;
		m->clinician_id = cl->id;
		return "forward queued to the clinician";
	}
	team = pr->team_email != NULL && *pr->team_email != '\0' ?
	    pr->team_email : pr->failsafe_email;
	if (team == NULL || *team == '\0') {
		m->kind = NULL;
		fprintf(stderr, "sealpostctl: warning: clinician %lld is "
		    "inactive and practice %lld has no team or failsafe "
		    "address: no forward mail\n", (long long)cl->id,
		    (long long)pr->id);
		return "no forward (no address to send it to)";
	}
	m->to = team;
	return "forward queued to the team address (the clinician is "
	    "inactive)";
}

/*
 * A copy of untrusted text for the terminal: C0 and C1 control
 * characters (but line feed and tab) and DEL become '?', so escape
 * sequences in a reply cannot drive the admin's terminal.  Free with
 * ctl_clean_free (it may be content: wiped).
 */
static char *
ctl_clean(const char *s)
{
	char		*t = xstrdup(s);
	unsigned char	*p;

	for (p = (unsigned char *)t; *p != '\0'; p++) {
		if ((*p < 0x20 && *p != '\n' && *p != '\t') || *p == 0x7f)
			*p = '?';
		/* U+0080..U+009F in UTF-8: C2 80..C2 9F. */
		else if (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) {
			p[0] = '?';
			p[1] = '?';
			p++;
		}
	}
	return t;
}

static void
ctl_clean_free(char *t)
{
	hash_wipe(t, strlen(t));
	free(t);
}

/* before, the cleaned s, after. */
static void
ctl_put(const char *before, const char *s, const char *after)
{
	char	*t = ctl_clean(s);

	fputs(before, stdout);
	fputs(t, stdout);
	fputs(after, stdout);
	ctl_clean_free(t);
}
