/*
 * ctl_queue.c - sealpostctl commands for letters out: the delivery queue,
 * held letters, the paper queue, bounces handed in by an admin, and the
 * settings the failsafe depends on (practice failsafe address and content
 * policy, team and duty addresses, patient address and consent,
 * clinician active and address, client callback URL).
 *
 * Every change is audited with the admin as actor.  "paper print"
 * decrypts a letter with the practice archive identity (master key
 * needed) and is audited like "letter show".
 */
#include "build.h"

#include <sys/stat.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "age.h"
#include "config.h"
#include "control.h"
#include "ctl.h"
#include "hash.h"
#include "keyring.h"
#include "letter.h"
#include "paper.h"
#include "store.h"
#include "token.h"
#include "util.h"
#include "webhook.h"

#define CTL_BOUNCE_MAX		(64 * 1024 * 1024)

/* queue list [-s STATES] [-n MAX] */
int
cmd_queue_list(struct ctl *c, int argc, char **argv)
{
	struct store_queue_row	*rows = NULL;
	const char		*states = NULL, *error = NULL;
	char			 t1[32], t2[32];
	int64_t			 max = 100;
	size_t			 n = 0, i;
	int			 ch;

	optind = 0;
	while ((ch = getopt(argc, argv, "s:n:")) != -1) {
		switch (ch) {
		case 's':
			states = optarg;
			break;
		case 'n':
			if (opt_i64("n", optarg, &max) != 0)
				return 2;
			break;
		default:
			return 2;
		}
	}
	if (optind != argc)
		return 2;
	if (ctl_open_store(c) != 0)
		return 1;
	if (store_queue_list(c->store, states, (size_t)max, &rows, &n,
	    &error) != STORE_OK) {
		fprintf(stderr, "sealpostctl: queue list: %s\n", error);
		return 1;
	}
	printf("%-8s %-8s %-8s %-9s %4s %-20s %-20s %s\n", "DELIVERY",
	    "LETTER", "PATIENT", "STATE", "TRY", "CREATED", "NEXT", "REASON");
	for (i = 0; i < n; i++)
		printf("%-8lld %-8lld %-8lld %-9s %4d %-20s %-20s %s\n",
		    (long long)rows[i].delivery_id,
		    (long long)rows[i].letter_id,
		    (long long)rows[i].patient_id, rows[i].state,
		    rows[i].attempts, ctl_time(rows[i].created, t1,
		    sizeof(t1)), ctl_time(rows[i].next_attempt, t2,
		    sizeof(t2)), rows[i].last_error);
	free(rows);
	return 0;
}

/* queue retry [LETTER]: deferred deliveries are due now. */
int
cmd_queue_retry(struct ctl *c, int argc, char **argv)
{
	const char	*error = NULL;
	char		 object[64];
	int64_t		 id = 0, n = 0;

	if (argc > 2 || (argc == 2 && opt_i64("id", argv[1], &id) != 0))
		return 2;
	if (ctl_open_store(c) != 0)
		return 1;
	if (store_deliveries_retry(c->store, id, util_time(), &n, &error) !=
	    STORE_OK) {
		fprintf(stderr, "sealpostctl: queue retry: %s\n", error);
		return 1;
	}
	snprintf(object, sizeof(object), id ? "letter:%lld" : "queue",
	    (long long)id);
	if (ctl_audit(c, "queue.retry", object, "ok") != 0)
		return 1;
	printf("%lld deliveries due now\n", (long long)n);
	return 0;
}

/* letter release ID / letter cancel ID */
static int
ctl_letter_change(struct ctl *c, int argc, char **argv, int release)
{
	const char	*error = NULL;
	int64_t		 id, n = 0;
	int		 r;

	if (argc != 2 || opt_i64("id", argv[1], &id) != 0)
		return 2;
	if (ctl_open_store(c) != 0)
		return 1;
	r = release ? store_letter_release(c->store, id, c->actor, &n, &error) :
	    store_letter_cancel(c->store, id, c->actor, &n, &error);
	if (r == STORE_NOTFOUND) {
		fprintf(stderr, "sealpostctl: letter %lld: no such letter\n",
		    (long long)id);
		return 1;
	}
	if (r != STORE_OK) {
		fprintf(stderr, "sealpostctl: letter %lld: %s\n",
		    (long long)id, error);
		return 1;
	}
	if (n == 0) {
		fprintf(stderr, "sealpostctl: letter %lld: no %s delivery\n",
		    (long long)id, release ? "held" : "open");
		return 1;
	}
	printf("letter %lld: %lld deliver%s %s\n", (long long)id,
	    (long long)n, n == 1 ? "y" : "ies",
	    release ? "released to the patient's current address" :
	    "cancelled");
	return 0;
}

int
cmd_letter_release(struct ctl *c, int argc, char **argv)
{
	return ctl_letter_change(c, argc, argv, 1);
}

int
cmd_letter_cancel(struct ctl *c, int argc, char **argv)
{
	return ctl_letter_change(c, argc, argv, 0);
}

/* paper list [-a] [-p PRACTICE] */
int
cmd_paper_list(struct ctl *c, int argc, char **argv)
{
	struct store_paper	*rows = NULL;
	const char		*error = NULL;
	char			 t1[32], t2[32];
	int64_t			 practice = 0;
	size_t			 n = 0, i;
	int			 ch, all = 0;

	optind = 0;
	while ((ch = getopt(argc, argv, "ap:")) != -1) {
		switch (ch) {
		case 'a':
			all = 1;
			break;
		case 'p':
			if (opt_i64("p", optarg, &practice) != 0)
				return 2;
			break;
		default:
			return 2;
		}
	}
	if (optind != argc)
		return 2;
	if (ctl_open_store(c) != 0)
		return 1;
	if (store_paper_list(c->store, practice, all, &rows, &n, &error) !=
	    STORE_OK) {
		fprintf(stderr, "sealpostctl: paper list: %s\n", error);
		return 1;
	}
	printf("%-8s %-8s %-8s %-20s %-20s %-6s %s\n", "LETTER", "PRACTICE",
	    "PATIENT", "SINCE", "PRINTED", "STATE", "REASON");
	for (i = 0; i < n; i++)
		printf("%-8lld %-8lld %-8lld %-20s %-20s %-6s %s\n",
		    (long long)rows[i].letter_id,
		    (long long)rows[i].practice_id,
		    (long long)rows[i].patient_id,
		    ctl_time(rows[i].created, t1, sizeof(t1)),
		    ctl_time(rows[i].printed, t2, sizeof(t2)),
		    rows[i].done ? "done" : "open", rows[i].reason);
	free(rows);
	return 0;
}

/*
 * A plain-text rendering of an HTML body, for a letter sent with HTML
 * only: tags dropped, block tags become line breaks, the five common
 * entities decoded.  Enough for print; not a general converter.
 */
static char *
ctl_html_text(const char *h)
{
	static const struct { const char *ent, *ch; } ents[] = {
		{ "&amp;", "&" }, { "&lt;", "<" }, { "&gt;", ">" },
		{ "&quot;", "\"" }, { "&#39;", "'" }, { "&nbsp;", " " },
	};
	size_t	 len = strlen(h), o = 0, i, k;
	char	*out = xmalloc(len + 1);

	for (i = 0; i < len; ) {
		if (h[i] == '<') {
			const char	*end = strchr(h + i, '>');
			size_t		 tl;

			if (end == NULL)
				break;
			tl = (size_t)(end - (h + i));
			if ((tl >= 2 && strncasecmp(h + i + 1, "br", 2) == 0) ||
			    (tl >= 2 && strncasecmp(h + i + 1, "p", 1) == 0) ||
			    (tl >= 3 && strncasecmp(h + i + 1, "/p", 2) == 0) ||
			    (tl >= 4 && strncasecmp(h + i + 1, "div", 3) == 0) ||
			    (tl >= 3 && strncasecmp(h + i + 1, "li", 2) == 0))
				out[o++] = '\n';
			i += tl + 1;
			continue;
		}
		if (h[i] == '&') {
			for (k = 0; k < nitems(ents); k++) {
				size_t el = strlen(ents[k].ent);

				if (strncasecmp(h + i, ents[k].ent, el) == 0) {
					out[o++] = ents[k].ch[0];
					i += el;
					break;
				}
			}
			if (k < nitems(ents))
				continue;
		}
		out[o++] = h[i++];
	}
	out[o] = '\0';
	return out;
}

/* paper print ID [-o FILE]: the printable letter as a PDF. */
int
cmd_paper_print(struct ctl *c, int argc, char **argv)
{
	struct store_paper		 pp;
	struct store_letter		*l = NULL;
	struct store_practice		*pr = NULL;
	struct store_patient		*pt = NULL;
	struct letter_doc		*doc = NULL;
	struct letter_error		 lerr;
	struct paper_doc		 pd;
	struct paper_attachment_name	*att = NULL;
	struct token_keys		 tk;
	const char			*error = NULL, *out = NULL;
	unsigned char			*blob = NULL, *pt_clear = NULL;
	size_t				 bloblen = 0, ptlen = 0, i;
	char				 object[64], code[TOKEN_CODE_BUFSZ];
	char				 path[4096], reply[320], *html_text = NULL;
	int64_t				 lid;
	int				 ch, pages = 0, rc = 1, r;

	optind = 0;
	while ((ch = getopt(argc, argv, "o:")) != -1) {
		if (ch != 'o')
			return 2;
		out = optarg;
	}
	if (argc - optind != 1 || opt_i64("id", argv[optind], &lid) != 0)
		return 2;
	if (ctl_open_store(c) != 0 || ctl_open_keyring(c) != 0)
		return 1;
	snprintf(object, sizeof(object), "letter:%lld", (long long)lid);
	if ((r = store_paper_get(c->store, lid, &pp, &error)) != STORE_OK) {
		fprintf(stderr, "sealpostctl: letter %lld: %s\n",
		    (long long)lid, r == STORE_NOTFOUND ?
		    "not in the paper queue" : error);
		return 1;
	}
	if (store_letter_get(c->store, lid, &l, &error) != STORE_OK ||
	    store_practice_get(c->store, l->practice_id, &pr, &error) !=
	    STORE_OK || store_patient_get(c->store, l->patient_id, &pt,
	    &error) != STORE_OK || store_letter_sealed(c->store, lid, &blob,
	    &bloblen, &error) != STORE_OK) {
		fprintf(stderr, "sealpostctl: letter %lld: %s\n",
		    (long long)lid, error ? error : "cannot read it");
		goto done;
	}
	if ((r = ctl_archive_open(c, pr, "letter", lid, blob, bloblen,
	    &pt_clear, &ptlen)) != 0) {
		if (r == -2)
			ctl_audit(c, "paper.print", object, "decrypt failed");
		goto done;
	}
	if (letter_doc_parse((const char *)pt_clear, ptlen, &doc, &lerr) != 0) {
		fprintf(stderr, "sealpostctl: letter %lld: %s\n",
		    (long long)lid, lerr.message);
		goto done;
	}
	if (token_key_derive(c->keyring, 1, &tk) != 0 ||
	    token_short_code(&tk, lid, pt->id, code, sizeof(code)) != 0) {
		fprintf(stderr, "sealpostctl: cannot make the reply code\n");
		goto done;
	}
	hash_wipe(&tk, sizeof(tk));
	snprintf(reply, sizeof(reply), "reply@%s",
	    pr->reply_domain != NULL && *pr->reply_domain != '\0' ?
	    pr->reply_domain : pr->domain);

	memset(&pd, 0, sizeof(pd));
	pd.practice_name = pr->name;
	pd.practice_address = pr->postal_address;
	pd.practice_phone = pr->phone;
	pd.patient_name = pt->name;
	pd.patient_address = pt->postal_address;
	pd.letter_id = lid;
	pd.date = (time_t)l->created;
	pd.subject = doc->subject;
	if (doc->text != NULL)
		pd.text = doc->text;
	else if (doc->html != NULL)
		pd.text = html_text = ctl_html_text(doc->html);
	else
		pd.text = "";
	if (doc->natt > 0) {
		att = xcalloc(doc->natt, sizeof(*att));
		for (i = 0; i < doc->natt; i++) {
			att[i].filename = doc->att[i].filename;
			att[i].size = doc->att[i].len;
		}
		pd.attachments = att;
		pd.nattachments = doc->natt;
	}
	pd.reply_address = reply;
	pd.reply_code = code;
	if (out == NULL) {
		snprintf(path, sizeof(path), "letter-%lld.pdf", (long long)lid);
		out = path;
	}
	/* Audit before the content leaves the store's protection. */
	if (ctl_audit(c, "paper.print", object, "ok") != 0)
		goto done;
	if (paper_render_pdf(&pd, out, &pages, &error) != 0) {
		fprintf(stderr, "sealpostctl: %s: %s\n", out, error);
		goto done;
	}
	if (store_paper_printed(c->store, lid, c->actor, &error) != STORE_OK)
		fprintf(stderr, "sealpostctl: marking printed: %s\n", error);
	printf("%s: %d page%s\n", out, pages, pages == 1 ? "" : "s");
	rc = 0;
done:
	free(att);
	if (html_text != NULL) {
		hash_wipe(html_text, strlen(html_text));
		free(html_text);
	}
	letter_doc_free(&doc);
	age_free_plaintext(&pt_clear, ptlen);
	free(blob);
	store_letter_free(&l);
	store_practice_free(&pr);
	store_patient_free(&pt);
	return rc;
}

/* paper done ID: posted; the letter leaves the open paper queue. */
int
cmd_paper_done(struct ctl *c, int argc, char **argv)
{
	const char	*error = NULL;
	int64_t		 id;
	int		 r;

	if (argc != 2 || opt_i64("id", argv[1], &id) != 0)
		return 2;
	if (ctl_open_store(c) != 0)
		return 1;
	if ((r = store_paper_done(c->store, id, c->actor, &error)) !=
	    STORE_OK) {
		fprintf(stderr, "sealpostctl: letter %lld: %s\n",
		    (long long)id, r == STORE_NOTFOUND ?
		    "not in the paper queue" : error);
		return 1;
	}
	printf("letter %lld: paper done\n", (long long)id);
	return 0;
}

/* bounce -r ADDRESS [FILE]: hand a bounce to the running daemon. */
int
cmd_bounce(struct ctl *c, int argc, char **argv)
{
	const char	*addr = NULL, *file = NULL;
	char		*buf = NULL, *cmd = NULL, *reply = NULL, *cerror = NULL;
	size_t		 len = 0, cap = 0;
	ssize_t		 n;
	int		 ch, fd, rc = 1;

	optind = 0;
	while ((ch = getopt(argc, argv, "r:")) != -1) {
		if (ch != 'r')
			return 2;
		addr = optarg;
	}
	if (addr == NULL || argc - optind > 1)
		return 2;
	if (argc - optind == 1)
		file = argv[optind];
	if (strlen(addr) > 300 || strpbrk(addr, " \t\r\n") != NULL) {
		fprintf(stderr, "sealpostctl: -r: not an address\n");
		return 2;
	}
	fd = file != NULL ? open(file, O_RDONLY | O_CLOEXEC) : STDIN_FILENO;
	if (fd == -1) {
		fprintf(stderr, "sealpostctl: %s: %s\n", file,
		    strerror(errno));
		return 1;
	}
	for (;;) {
		if (len == cap) {
			if (cap >= CTL_BOUNCE_MAX) {
				fprintf(stderr, "sealpostctl: message larger "
				    "than 64 MiB\n");
				goto done;
			}
			cap = cap ? cap * 2 : 65536;
			buf = xreallocarray(buf, cap, 1);
		}
		n = read(fd, buf + len, cap - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			fprintf(stderr, "sealpostctl: read: %s\n",
			    strerror(errno));
			goto done;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len == 0) {
		fprintf(stderr, "sealpostctl: empty message\n");
		goto done;
	}
	xasprintf(&cmd, "bounce %s %zu", addr, len);
	if (control_request_body(c->cfg->control_socket, cmd, buf, len,
	    &reply, &cerror) != 0) {
		fprintf(stderr, "sealpostctl: %s\n", cerror);
		free(cerror);
		rc = 3;
		goto done;
	}
	printf("%s\n", reply);
	rc = strstr(reply, "\"ok\":true") != NULL ? 0 : 1;
done:
	if (fd != STDIN_FILENO && fd != -1)
		close(fd);
	free(buf);
	free(cmd);
	free(reply);
	return rc;
}

/* yes/no for the settings commands. */
static const char *
ctl_yesno(const char *name, const char *v)
{
	if (strcmp(v, "yes") == 0)
		return "1";
	if (strcmp(v, "no") == 0)
		return "0";
	fprintf(stderr, "sealpostctl: --%s: yes or no\n", name);
	return NULL;
}

/* One line of printable text, 1..500 bytes; "\n" in it becomes a break. */
static char *
ctl_text(const char *name, const char *v)
{
	char	*s, *p, *q;

	if (*v == '\0' || strlen(v) > 500) {
		fprintf(stderr, "sealpostctl: --%s: 1..500 characters\n", name);
		return NULL;
	}
	s = xstrdup(v);
	for (p = q = s; *p != '\0'; p++) {
		if (p[0] == '\\' && p[1] == 'n') {
			*q++ = '\n';
			p++;
		} else if ((unsigned char)*p < 0x20 || *p == 0x7f) {
			fprintf(stderr, "sealpostctl: --%s: control character "
			    "(write line breaks as \\n)\n", name);
			free(s);
			return NULL;
		} else
			*q++ = *p;
	}
	*q = '\0';
	return s;
}

/* Apply field=value pairs to one row in one audited transaction. */
static int
ctl_set_fields(struct ctl *c, const char *kind, int64_t id,
    const char **fields, char **values, size_t n)
{
	const char	*error = NULL;
	char		 object[64], action[64];
	size_t		 i;
	int		 r = STORE_OK, ok = 1;

	if (n == 0)
		return 2;
	if (ctl_open_store(c) != 0)
		return 1;
	if (store_begin(c->store, &error) != STORE_OK) {
		fprintf(stderr, "sealpostctl: %s\n", error);
		return 1;
	}
	snprintf(object, sizeof(object), "%s:%lld", kind, (long long)id);
	for (i = 0; i < n && ok; i++) {
		if (strcmp(kind, "practice") == 0)
			r = store_practice_set(c->store, id, fields[i],
			    values[i], &error);
		else if (strcmp(kind, "clinician") == 0)
			r = store_clinician_set(c->store, id, fields[i],
			    values[i], &error);
		else
			r = store_patient_set(c->store, id, fields[i],
			    values[i], &error);
		if (r != STORE_OK) {
			fprintf(stderr, "sealpostctl: %s %s: %s\n", object,
			    fields[i], r == STORE_NOTFOUND ? "not found" :
			    error);
			ok = 0;
			break;
		}
		/* The audit names the field, never the value. */
		snprintf(action, sizeof(action), "%s.set.%s", kind,
		    fields[i]);
		ok = ctl_audit(c, action, object, "ok") == 0;
	}
	if (ctl_tx_end(c, ok, "set") != 0)
		return 1;
	printf("%s updated\n", object);
	return 0;
}

enum { S_FAILSAFE = 1, S_POLICY, S_REPLY, S_ADDRESS, S_PHONE, S_EMAIL,
    S_VERIFIED, S_CONSENT, S_SHARED, S_TEAM, S_DUTY, S_ACTIVE };

/* practice set ID ... / patient set ID ... / clinician set ID ... */
static int
ctl_set(struct ctl *c, int argc, char **argv, const char *kind)
{
	static const struct option opts[] = {
		{ "failsafe", required_argument, NULL, S_FAILSAFE },
		{ "policy", required_argument, NULL, S_POLICY },
		{ "reply-domain", required_argument, NULL, S_REPLY },
		{ "address", required_argument, NULL, S_ADDRESS },
		{ "phone", required_argument, NULL, S_PHONE },
		{ "email", required_argument, NULL, S_EMAIL },
		{ "verified", required_argument, NULL, S_VERIFIED },
		{ "consent", required_argument, NULL, S_CONSENT },
		{ "shared-ok", required_argument, NULL, S_SHARED },
		{ "team-email", required_argument, NULL, S_TEAM },
		{ "duty-email", required_argument, NULL, S_DUTY },
		{ "active", required_argument, NULL, S_ACTIVE },
		{ NULL, 0, NULL, 0 }
	};
	const char	*fields[12];
	char		*values[12];
	const char	*v;
	size_t		 n = 0, i;
	int64_t		 id;
	int		 ch, rc = 2;
	unsigned	 allowed;

	if (strcmp(kind, "practice") == 0)
		allowed = 1u << S_FAILSAFE | 1u << S_POLICY | 1u << S_REPLY |
		    1u << S_ADDRESS | 1u << S_PHONE | 1u << S_TEAM |
		    1u << S_DUTY;
	else if (strcmp(kind, "clinician") == 0)
		allowed = 1u << S_EMAIL | 1u << S_ACTIVE;
	else
		allowed = 1u << S_EMAIL | 1u << S_VERIFIED | 1u << S_CONSENT |
		    1u << S_ADDRESS | 1u << S_SHARED;

	if (argc < 2 || opt_i64("id", argv[1], &id) != 0)
		return 2;
	optind = 2;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch <= 0 || ch >= 32 || !(allowed & (1u << ch)) ||
		    n == nitems(fields))
			goto out;
		v = NULL;
		switch (ch) {
		case S_FAILSAFE:
		case S_EMAIL:
		case S_TEAM:
		case S_DUTY:
			if (!valid_email(optarg)) {
				fprintf(stderr, "sealpostctl: not an email "
				    "address: %s\n", optarg);
				goto out;
			}
			fields[n] = ch == S_EMAIL ? "email" : ch == S_TEAM ?
			    "team_email" : ch == S_DUTY ? "duty_email" :
			    "failsafe_email";
			values[n++] = xstrdup(optarg);
			continue;
		case S_POLICY:
			if (strcmp(optarg, "full") != 0 &&
			    strcmp(optarg, "notify") != 0) {
				fprintf(stderr, "sealpostctl: --policy: full "
				    "or notify\n");
				goto out;
			}
			fields[n] = "content_policy";
			values[n++] = xstrdup(optarg);
			continue;
		case S_REPLY:
			if (!valid_domain(optarg)) {
				fprintf(stderr, "sealpostctl: not a domain: "
				    "%s\n", optarg);
				goto out;
			}
			fields[n] = "reply_domain";
			values[n++] = xstrdup(optarg);
			continue;
		case S_ADDRESS:
		case S_PHONE:
			if ((values[n] = ctl_text(ch == S_PHONE ? "phone" :
			    "address", optarg)) == NULL)
				goto out;
			fields[n++] = ch == S_PHONE ? "phone" :
			    "postal_address";
			continue;
		case S_VERIFIED:
			v = ctl_yesno("verified", optarg);
			fields[n] = "verified";
			break;
		case S_CONSENT:
			v = ctl_yesno("consent", optarg);
			fields[n] = "consent";
			break;
		case S_SHARED:
			v = ctl_yesno("shared-ok", optarg);
			fields[n] = "shared_ok";
			break;
		case S_ACTIVE:
			v = ctl_yesno("active", optarg);
			fields[n] = "active";
			break;
		}
		if (v == NULL)
			goto out;
		values[n++] = xstrdup(v);
	}
	if (optind != argc)
		goto out;
	rc = ctl_set_fields(c, kind, id, fields, values, n);
out:
	for (i = 0; i < n; i++)
		free(values[i]);
	return rc;
}

int
cmd_practice_set(struct ctl *c, int argc, char **argv)
{
	return ctl_set(c, argc, argv, "practice");
}

int
cmd_patient_set(struct ctl *c, int argc, char **argv)
{
	return ctl_set(c, argc, argv, "patient");
}

int
cmd_clinician_set(struct ctl *c, int argc, char **argv)
{
	return ctl_set(c, argc, argv, "clinician");
}

/*
 * client callback ID URL: a fresh bearer token for the callbacks (shown
 * once, stored wrapped); client callback ID --off removes both.
 */
int
cmd_client_callback(struct ctl *c, int argc, char **argv)
{
	struct keyring_secret	 sec = { NULL };
	struct store_client	*cl = NULL;
	unsigned char		 wrapped[KEYRING_WRAPPED_LEN];
	unsigned char		 raw[KEYRING_KEY_LEN], pk[KEYRING_KEY_LEN];
	const char		*error = NULL, *url;
	char			 ad[64], object[64], *token = NULL;
	int64_t			 id;
	int			 ok, off, r;

	if (argc != 3 || opt_i64("id", argv[1], &id) != 0)
		return 2;
	url = argv[2];
	off = strcmp(url, "--off") == 0;
	if (!off && webhook_url_check(url, &error) != 0) {
		fprintf(stderr, "sealpostctl: %s\n", error);
		return 1;
	}
	if (ctl_open_store(c) != 0 || ctl_open_keyring(c) != 0)
		return 1;
	if ((r = store_client_get(c->store, id, &cl, &error)) != STORE_OK) {
		fprintf(stderr, "sealpostctl: client %lld: %s\n",
		    (long long)id, r == STORE_NOTFOUND ? "not found" : error);
		return 1;
	}
	store_client_free(&cl);
	snprintf(ad, sizeof(ad), "callback:%lld", (long long)id);
	snprintf(object, sizeof(object), "client:%lld", (long long)id);
	if (store_begin(c->store, &error) != STORE_OK) {
		fprintf(stderr, "sealpostctl: %s\n", error);
		return 1;
	}
	if (off) {
		ok = store_client_set(c->store, id, "callback_url", NULL,
		    &error) == STORE_OK && store_client_set_callback_token(
		    c->store, id, NULL, 0, &error) == STORE_OK;
	} else {
		/*
		 * The token is 32 random bytes wrapped like an identity's
		 * secret; keyring_identity_new makes both (the X25519 public
		 * half is not used).
		 */
		ok = keyring_identity_new(c->keyring, ad, pk, wrapped,
		    &error) == 0 && keyring_identity_unwrap(c->keyring, ad,
		    wrapped, sizeof(wrapped), &sec, &error) == 0;
		if (ok) {
			memcpy(raw, sec.key, sizeof(raw));
			keyring_secret_free(&sec);
			token = hash_b64_encode(raw, sizeof(raw));
			hash_wipe(raw, sizeof(raw));
		}
		ok = ok && store_client_set(c->store, id, "callback_url", url,
		    &error) == STORE_OK && store_client_set_callback_token(
		    c->store, id, wrapped, sizeof(wrapped), &error) ==
		    STORE_OK;
	}
	if (!ok)
		fprintf(stderr, "sealpostctl: client %lld: %s\n",
		    (long long)id, error ? error : "failed");
	ok = ok && ctl_audit(c, off ? "client.callback.off" :
	    "client.callback.set", object, "ok") == 0;
	if (ctl_tx_end(c, ok, "client callback") != 0) {
		if (token != NULL) {
			hash_wipe(token, strlen(token));
			free(token);
		}
		return 1;
	}
	if (token != NULL) {
		fprintf(stderr, "client %lld: callbacks go to %s with this "
		    "bearer token, shown once:\n", (long long)id, url);
		printf("%s\n", token);
		hash_wipe(token, strlen(token));
		free(token);
	} else
		printf("client %lld: callbacks off\n", (long long)id);
	return 0;
}
