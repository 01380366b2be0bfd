/*
 * reply_insert.c - commit one patient reply with the mails it causes,
 * straight through the store API, for tests/integration/t_reply_mails.py
 * (the intake that will do this for real is another module).
 *
 * The reply document "sealpost-reply/1" is made from the options (the
 * original message is the file given, kept whole), sealed for the
 * practice archive and, when a clinician is given, for the clinician, as
 * the intake seals it; then store_replies_commit() with one mail per
 * KIND=ADDR argument ("append" takes "-": no address).  Prints the reply
 * id on stdout.  Exit 0, 1 on failure, 2 on usage.
 *
 * usage: reply_insert -d DB -p PRACTICE -r RAWFILE [-l LETTER] [-P PATIENT]
 *          [-c CLINICIAN] [-f FROM] [-m MSGID] [-s SENDER] [-S STATE]
 *          [-R REASON] [-t NEWTEXT] [-j SUBJECT] [-a ATTFILE] [-u] [-x]
 *          KIND=ADDR...
 */
#include "build.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "age.h"
#include "hash.h"
#include "letter.h"
#include "reply.h"
#include "replymail.h"
#include "store.h"
#include "util.h"
#include "tfile.h"

static void	 usage(void) __attribute__((noreturn));
static int64_t	 num(const char *);

static void
usage(void)
{
	fprintf(stderr, "usage: reply_insert -d DB -p PRACTICE -r RAWFILE "
	    "[-l LETTER] [-P PATIENT] [-c CLINICIAN] [-f FROM] [-m MSGID] "
	    "[-s SENDER] [-S STATE] [-R REASON] [-t NEWTEXT] [-j SUBJECT] "
	    "[-a ATTFILE] [-u] [-x] KIND=ADDR...\n");
	exit(2);
}

static int64_t
num(const char *s)
{
	int64_t	 v;

	if (util_parse_i64(s, 0, INT64_MAX, &v) != 0)
		usage();
	return v;
}

int
main(int argc, char **argv)
{
	struct store			*st = NULL;
	struct store_practice		*pr = NULL;
	struct store_clinician		*cl = NULL;
	struct store_reply_new		 r;
	struct store_reply_mail_new	*mails;
	struct reply_doc		 doc;
	struct letter_doc		 content;
	struct letter_attachment	 att;
	unsigned char			 pks[2][STORE_KEY_LEN];
	unsigned char			*sealed = NULL;
	const char			*db = NULL, *rawfile = NULL;
	const char			*attfile = NULL, *error = NULL;
	char				*json, *eq, *raw;
	size_t				 jlen, sealed_len, rawlen, npks = 0;
	size_t				 nmails, i;
	int64_t				 practice = 0, clinician = 0;
	int				 c;

	memset(&r, 0, sizeof(r));
	memset(&doc, 0, sizeof(doc));
	memset(&content, 0, sizeof(content));
	doc.content = &content;
	r.state = STORE_RS_FILED;
	r.sender = "verified";
	r.source = "imap";
	content.subject = "Re: your letter";
	doc.new_text = "";
	while ((c = getopt(argc, argv, "d:p:r:l:P:c:f:m:s:S:R:t:j:a:ux")) !=
	    -1) {
		switch (c) {
		case 'd': db = optarg; break;
		case 'p': practice = num(optarg); break;
		case 'r': rawfile = optarg; break;
		case 'l': r.letter_id = num(optarg); break;
		case 'P': r.patient_id = num(optarg); break;
		case 'c': clinician = num(optarg); break;
		case 'f': r.from_addr = optarg; break;
		case 'm': r.message_id = optarg; break;
		case 's': r.sender = optarg; break;
		case 'S': r.state = optarg; break;
		case 'R': r.reason = optarg; break;
		case 't': doc.new_text = optarg; break;
		case 'j': content.subject = optarg; break;
		case 'a': attfile = optarg; break;
		case 'u': r.urgent = 1; break;
		case 'x': r.shared = 1; break;
		default: usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (db == NULL || practice == 0 || rawfile == NULL || argc < 1)
		usage();
	if (hash_init() != 0)
		return 1;
	letter_json_init();

	if ((raw = read_file(rawfile, &rawlen)) == NULL) {
		fprintf(stderr, "reply_insert: cannot read %s\n", rawfile);
		return 1;
	}
	doc.original = (unsigned char *)raw;
	doc.original_len = rawlen;
	content.text = doc.new_text;
	doc.removed = REPLY_QUOTE;
	if (attfile != NULL) {
		memset(&att, 0, sizeof(att));
		if ((att.data = (unsigned char *)read_file(attfile,
		    &att.len)) == NULL) {
			fprintf(stderr, "reply_insert: cannot read %s\n",
			    attfile);
			return 1;
		}
		att.filename = "photo of rash.jpg";
		att.content_type = "image/jpeg";
		content.att = &att;
		content.natt = 1;
	}
	if ((json = reply_doc_serialize(&doc, &jlen)) == NULL) {
		fprintf(stderr, "reply_insert: cannot serialise\n");
		return 1;
	}

	mails = xcalloc((size_t)argc, sizeof(*mails));
	for (i = 0, nmails = 0; i < (size_t)argc; i++) {
		if ((eq = strchr(argv[i], '=')) == NULL)
			usage();
		*eq = '\0';
		mails[nmails].kind = argv[i];
		mails[nmails].to = strcmp(eq + 1, "-") == 0 ? NULL : eq + 1;
		mails[nmails].clinician_id = clinician;
		nmails++;
	}

	if (store_open(db, STORE_RDWR, &st, &error) != STORE_OK ||
	    store_practice_get(st, practice, &pr, &error) != STORE_OK) {
		fprintf(stderr, "reply_insert: %s\n", error);
		return 1;
	}
	memcpy(pks[npks++], pr->archive_pk, STORE_KEY_LEN);
	if (clinician > 0) {
		if (store_clinician_get(st, clinician, &cl, &error) !=
		    STORE_OK) {
			fprintf(stderr, "reply_insert: %s\n", error);
			return 1;
		}
		memcpy(pks[npks++], cl->pk, STORE_KEY_LEN);
	}
	if (age_encrypt((const unsigned char (*)[AGE_KEY_LEN])pks, npks,
	    json, jlen, 0, &sealed, &sealed_len, &error) != 0) {
		fprintf(stderr, "reply_insert: seal: %s\n", error);
		return 1;
	}
	hash_wipe(json, jlen);
	free(json);

	r.practice_id = practice;
	r.clinician_id = clinician;
	hash_random(r.dedup, sizeof(r.dedup));
	r.sealed = sealed;
	r.sealed_len = sealed_len;
	r.received = util_time();
	r.mails = mails;
	r.nmails = nmails;
	if (store_replies_commit(st, &r, 1, &error) != STORE_OK) {
		fprintf(stderr, "reply_insert: commit: %s\n", error);
		return 1;
	}
	printf("%lld\n", (long long)r.reply_id);
	store_practice_free(&pr);
	store_clinician_free(&cl);
	store_close(&st);
	free(sealed);
	free(mails);
	free(raw);
	if (attfile != NULL)
		free(att.data);
	return 0;
}
