/*
 * reply_commit.c - store one reply as the intake would, for
 * tests/integration/t_replies_api.py: read a "sealpost-reply/1" JSON
 * document on stdin, seal it with age for the practice archive (and the
 * clinician when one is given), and commit it with
 * store_replies_commit().  The public keys come from the store, so no
 * master key is needed.
 *
 *   reply_commit -d DB -p PRACTICE [-l LETTER] [-c CLINICIAN]
 *       [-s filed|quarantined] [-r REASON] [-e DETAIL] [-f FROM]
 *       [-m SENDER] [-u] [-S] [-t RECEIVED]
 *
 * The patient is the letter's.  The dedup key is random, so every run
 * stores a new reply.  Prints the reply id; exit 0, 1 on failure, 2 on
 * usage.
 */

#include "build.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "age.h"
#include "hash.h"
#include "store.h"
#include "util.h"

#define DOC_MAX		(16 * 1024 * 1024)

static void
usage(void)
{
	fprintf(stderr, "usage: reply_commit -d DB -p PRACTICE [-l LETTER] "
	    "[-c CLINICIAN] [-s STATE] [-r REASON] [-e DETAIL] [-f FROM] "
	    "[-m SENDER] [-u] [-S] [-t RECEIVED]\n");
	exit(2);
}

int
main(int argc, char *argv[])
{
	struct store		*s = NULL;
	struct store_practice	*pr = NULL;
	struct store_clinician	*cl = NULL;
	struct store_letter	*l = NULL;
	struct store_reply_new	 rn;
	unsigned char		 pks[2][AGE_KEY_LEN];
	unsigned char		*sealed = NULL;
	const char		*db = NULL, *error = NULL;
	char			*doc = NULL;
	size_t			 len = 0, cap = 0, npk = 0, sealedlen = 0;
	ssize_t			 n;
	int64_t			 practice = 0, letter = 0, clinician = 0;
	int64_t			 received = 0;
	int			 ch;

	memset(&rn, 0, sizeof rn);
	rn.state = STORE_RS_FILED;
	rn.sender = "verified";
	rn.source = "lmtp";
	while ((ch = getopt(argc, argv, "d:p:l:c:s:r:e:f:m:uSt:")) != -1) {
		switch (ch) {
		case 'd': db = optarg; break;
		case 'p': practice = strtoll(optarg, NULL, 10); break;
		case 'l': letter = strtoll(optarg, NULL, 10); break;
		case 'c': clinician = strtoll(optarg, NULL, 10); break;
		case 's': rn.state = optarg; break;
		case 'r': rn.reason = optarg; break;
		case 'e': rn.detail = optarg; break;
		case 'f': rn.from_addr = optarg; break;
		case 'm': rn.sender = optarg; break;
		case 'u': rn.urgent = 1; break;
		case 'S': rn.shared = 1; break;
		case 't': received = strtoll(optarg, NULL, 10); break;
		default: usage();
		}
	}
	if (db == NULL || practice <= 0 || optind != argc)
		usage();
	if (hash_init() != 0)
		return 1;
	for (;;) {
		if (len == cap) {
			if (cap >= DOC_MAX) {
				fprintf(stderr, "reply_commit: document too "
				    "large\n");
				return 1;
			}
			cap = cap ? cap * 2 : 65536;
			doc = xreallocarray(doc, cap, 1);
		}
		if ((n = read(STDIN_FILENO, doc + len, cap - len)) < 0) {
			perror("reply_commit: read");
			return 1;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (store_open(db, STORE_RDWR, &s, &error) != STORE_OK ||
	    store_practice_get(s, practice, &pr, &error) != STORE_OK)
		goto fail;
	memcpy(pks[npk++], pr->archive_pk, AGE_KEY_LEN);
	if (clinician > 0) {
		if (store_clinician_get(s, clinician, &cl, &error) != STORE_OK)
			goto fail;
		memcpy(pks[npk++], cl->pk, AGE_KEY_LEN);
	}
	if (letter > 0) {
		if (store_letter_get(s, letter, &l, &error) != STORE_OK)
			goto fail;
		rn.patient_id = l->patient_id;
	}
	if (age_encrypt((const unsigned char (*)[AGE_KEY_LEN])pks, npk, doc,
	    len, 0, &sealed, &sealedlen, &error) != 0)
		goto fail;
	rn.practice_id = practice;
	rn.letter_id = letter;
	rn.clinician_id = clinician;
	rn.sealed = sealed;
	rn.sealed_len = sealedlen;
	rn.received = received > 0 ? received : util_time();
	hash_random(rn.dedup, sizeof rn.dedup);
	if (store_replies_commit(s, &rn, 1, &error) != STORE_OK)
		goto fail;
	printf("%lld\n", (long long)rn.reply_id);
	free(sealed);
	free(doc);
	store_letter_free(&l);
	store_clinician_free(&cl);
	store_practice_free(&pr);
	store_close(&s);
	return 0;
fail:
	fprintf(stderr, "reply_commit: %s\n", error != NULL ? error : "failed");
	free(sealed);
	free(doc);
	store_letter_free(&l);
	store_clinician_free(&cl);
	store_practice_free(&pr);
	store_close(&s);
	return 1;
}
