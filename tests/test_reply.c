/*
 * test_reply.c - reply.c: the new text of a reply, HTML to text.
 */
#include "build.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "reply.h"
#include "tap.h"

#define nitems(a)	(sizeof(a) / sizeof((a)[0]))

/* One rule each: input, expected new text, REPLY_* bits removed. */
static const struct {
	const char	*name;
	const char	*in;
	const char	*want;
	unsigned int	 removed;
} cases[] = {
	{ "empty", "", "", 0 },
	{ "only blank lines", "\n\n  \n", "", 0 },
	{ "plain, no trailing newline", "Hello\nthere", "Hello\nthere", 0 },
	{ "leading and trailing blank lines trimmed", "\n\nHi\n\n\n", "Hi",
	    0 },
	{ "CRLF", "Hi\r\nthere\r\n\r\nOn Mon, 1 Jan 2024, Dr X wrote:\r\n"
	    "> old\r\n", "Hi\nthere", REPLY_QUOTE },
	{ "bare CR", "Hi\rthere\r> old\r", "Hi\nthere", REPLY_QUOTE },
	{ "only quote", "> a\n> b\n", "", REPLY_QUOTE },
	{ "> lines", "Yes please\n\n> Would you like\n> an appointment?\n",
	    "Yes please", REPLY_QUOTE },
	{ "On ... wrote:", "Fine\n\nOn Tue, Mar 5, 2024 at 9:00 AM, Surgery "
	    "<gp@example.org> wrote:\nold text\n", "Fine", REPLY_QUOTE },
	{ "On ... wrote: over two lines", "Fine\n\nOn Tue, Mar 5, 2024 at "
	    "9:00 AM, Surgery <\ngp@example.org> wrote:\nold\n", "Fine",
	    REPLY_QUOTE },
	{ "On ... wrote: over three lines", "Fine\nOn Nov 30, 2011, at 12:47 "
	    "PM, Somebody <\nx@example.org>\nwrote:\n\nold\n", "Fine",
	    REPLY_QUOTE },
	{ "shares the line", "Thanks On Wed, Apr 4, 2012 at 3:59 PM, "
	    "bob@example.com wrote:\n> Hi\n", "Thanks", REPLY_QUOTE },
	{ "German Am ... schrieb:", "Danke\n\nAm 04.02.2015 um 14:20 schrieb "
	    "Praxis <p@example.de>:\nalt\n", "Danke", REPLY_QUOTE },
	{ "French Le ... a \xc3\xa9" "crit :", "Merci\nLe 4 f\xc3\xa9v. 2015 "
	    "\xc3\xa0 14:20, Cabinet <c@example.fr> a \xc3\xa9" "crit :\n"
	    "vieux\n", "Merci", REPLY_QUOTE },
	{ "Polish W dniu ... napisa\xc5\x82:", "OK\n\nW dniu 28 stycznia 2015 "
	    "u\xc5\xbcytkownik Zoe <z@example.pl>\nnapisa\xc5\x82:\n\nx\n",
	    "OK", REPLY_QUOTE },
	{ "Gmail date first", "Test\n\n2014-10-17 11:28 GMT+03:00 Post <\n"
	    "p@example.org>:\n\n> x\n", "Test", REPLY_QUOTE },
	{ "Outlook block", "Yes\n\nFrom: gp@example.org\nSent: Monday\n"
	    "To: me\nSubject: x\n\nold\n", "Yes", REPLY_QUOTE },
	{ "bold Outlook block", "Yes\n\n  *From:* gp@example.org [mailto:\n"
	    "  gp@example.org]\n  *Sent:* Monday\n", "Yes", REPLY_QUOTE },
	{ "German Von/Gesendet", "Ja\n\nVon: Praxis\nGesendet: Montag\nAn: "
	    "mich\n", "Ja", REPLY_QUOTE },
	{ "French De/Envoy\xc3\xa9 with space before colon", "Oui\n\nDe : "
	    "Cabinet\nEnvoy\xc3\xa9 : lundi\n\xc3\x80 : moi\n", "Oui",
	    REPLY_QUOTE },
	{ "Swedish Fr\xc3\xa5n/Skickat", "Ja\nFr\xc3\xa5n: x\nSkickat: "
	    "m\xc3\xa5ndag\n", "Ja", REPLY_QUOTE },
	{ "From: alone is text", "From: my daughter's phone\nShe says hi",
	    "From: my daughter's phone\nShe says hi", 0 },
	{ "underscore rule before From", "Ok\n________________________________"
	    "\nFrom: x\nSent: y\n", "Ok", REPLY_QUOTE },
	{ "Original Message", "Ok\n\n-----Original Message-----\nFrom: x\n",
	    "Ok", REPLY_QUOTE },
	{ "Urspr\xc3\xbcngliche Nachricht", "Ok\n-----Urspr\xc3\xbcngliche "
	    "Nachricht-----\nx\n", "Ok", REPLY_QUOTE },
	{ "Oprindelig meddelelse", "Ok\n-----Oprindelig meddelelse-----\nx\n",
	    "Ok", REPLY_QUOTE },
	{ "forwarded", "See below\n\n---------- Forwarded message ---------\n"
	    "From: x\n", "See below", REPLY_QUOTE },
	{ "Android ---- wrote ----", "Ok\n\n---- Surgery wrote ----\n\nold\n",
	    "Ok", REPLY_QUOTE },
	{ "signature", "Thanks\n-- \nJane Doe\n07700 900000\n", "Thanks",
	    REPLY_SIGNATURE },
	{ "Sent from my iPhone", "Thanks\n\nSent from my iPhone\n", "Thanks",
	    REPLY_FOOTER },
	{ "Get Outlook for iOS before quote", "Thanks\n\nGet Outlook for iOS\n"
	    "________________________________\nFrom: x\nSent: y\n", "Thanks",
	    REPLY_FOOTER | REPLY_QUOTE },
	{ "Sent with Sparrow after signature", "Hi\n\n-- \nJ\nSent with "
	    "Sparrow\n", "Hi", REPLY_SIGNATURE },
	{ "footer inside the text is kept", "I sent from my iPhone.\nSent "
	    "from my iPhone the photo\nbelow.", "I sent from my iPhone.\nSent "
	    "from my iPhone the photo\nbelow.", 0 },
	{ "answer between quotes kept", "On 1 May, Dr X wrote:\n> Pain?\n"
	    "A little\n> Fever?\nNo\n", "A little\nNo", REPLY_QUOTE },
	{ "reply below the quote", "Hi\n\nOn 1 May, Dr X wrote:\n\n> q\n\n"
	    "Regards, Ann", "Hi\n\nRegards, Ann", REPLY_QUOTE },
	{ "quote broken by a wrapped URL", "Ok\n> see (http://example.org/a\n"
	    "b=1)\n> end\n", "Ok", REPLY_QUOTE },
	{ "quoted attribution is no shared line", "Hello\n> On 22 Aug 2015, "
	    "X <x@example.org> wrote:\n> Hi\n", "Hello", REPLY_QUOTE },
	{ "Gmail date first without colon", "Ok\n2011/4/7 Nat <n@example.org>"
	    "\n\n> q\n", "Ok", REPLY_QUOTE },
	{ "reply--- On ... wrote:", "reply--- On Wed, Apr 4, 2012 at 3:59 PM, "
	    "me@example.org wrote:\n> Hi\n", "reply", REPLY_QUOTE },
	{ "Reply Message dashed title", "Ok\n\n-----Reply Message-----\nx\n",
	    "Ok", REPLY_QUOTE },
	{ "long dashed rule is text", "Below:\n------------------------- Enter "
	    "Feedback -------------------------\nGood", "Below:\n"
	    "------------------------- Enter Feedback -------------------------"
	    "\nGood", 0 },
	{ "Date: first header block", "Ok\n\nDate: Wed, 16 May 2012\nFrom: "
	    "x@example.org\n", "Ok", REPLY_QUOTE },
	{ "Dutch Op ... geschreven:", "Ja\nOp 17-feb.-2015, om 13:18 heeft X "
	    "<x@example.nl> het volgende geschreven:\nold\n", "Ja",
	    REPLY_QUOTE },
	{ "Polymail attribution with blank lines", "Ok\n\nOn Tue, Apr 11, "
	    "2017 at 10:07 PM John\n\n<\nmailto:John <j@example.org>\n"
	    "> wrote:\nold\n", "Ok", REPLY_QUOTE },
	{ "mail.ru time and address", "Ok\n\nThu, 26 Jun 2014 14:00:51 +0400 "
	    "\xd0\xbe\xd1\x82 A <a@example.ru>:\n> old\n", "Ok", REPLY_QUOTE },
	{ "Russian \xd0\x9e\xd1\x82/\xd0\x9a\xd0\xbe\xd0\xbc\xd1\x83",
	    "Ok\n\n\xd0\x9e\xd1\x82: A\n\xd0\x9a\xd0\xbe\xd0\xbc\xd1\x83: B\n",
	    "Ok", REPLY_QUOTE },
	{ "text before an attribution is not joined to it", "Call me at 10:30 "
	    "on a@example.org\n\nOn 1 May, X wrote:\nold", "Call me at 10:30 "
	    "on a@example.org", REPLY_QUOTE },
	{ ">>> link <<< is no quote", "Visit\n>>> http://example.org <<<\n"
	    "now", "Visit\n>>> http://example.org <<<\nnow", 0 },
	{ "On without wrote: is text", "On Monday I feel better.\nThanks:",
	    "On Monday I feel better.\nThanks:", 0 },
};

static const struct {
	const char	*name;
	const char	*in;
	const char	*want;
} html_cases[] = {
	{ "empty", "", "" },
	{ "blocks", "<p>Hi.</p><div>I am fine.</div>Bye<br>x",
	    "Hi.\nI am fine.\nBye\nx" },
	{ "script and style dropped", "<style>p{}</style>a<script>x<y</script>"
	    "b", "ab" },
	{ "comment", "a<!-- <p>x</p> -->b", "ab" },
	{ "entities", "&lt;&amp;&gt;&quot;&#39;&#x41;&#233;&nbsp;x",
	    "<&>\"'A\xc3\xa9 x" },
	{ "unknown entity and stray <", "a &foo; b < c", "a &foo; b < c" },
	{ "whitespace collapsed", "a \n\t b", "a b" },
	{ "blockquote quoted", "Hi<blockquote>old<br>more</blockquote>",
	    "Hi\n> old\n> more" },
	{ "unterminated tag", "a<div", "a" },
};

static void
test_rules(void)
{
	size_t	 i;

	for (i = 0; i < nitems(cases); i++) {
		struct reply_result	 r;
		char			*got;

		got = reply_extract(cases[i].in, strlen(cases[i].in), &r);
		if (!ok(got != NULL && strcmp(got, cases[i].want) == 0 &&
		    r.len == strlen(got) && r.removed == cases[i].removed,
		    "extract: %s", cases[i].name))
			diag("got \"%s\" removed %#x", got ? got : "(null)",
			    r.removed);
		free(got);
	}
}

static void
test_html(void)
{
	size_t	 i, n;

	for (i = 0; i < nitems(html_cases); i++) {
		char	*got;

		got = reply_html_to_text(html_cases[i].in,
		    strlen(html_cases[i].in), &n);
		if (!ok(got != NULL && strcmp(got, html_cases[i].want) == 0 &&
		    n == strlen(got), "html: %s", html_cases[i].name))
			diag("got \"%s\"", got ? got : "(null)");
		free(got);
	}
}

/* Embedded NUL bytes and a length shorter than the buffer. */
static void
test_bounds(void)
{
	static const char	 in[] = "Hi\0there\n> q";
	struct reply_result	 r;
	char			*got;

	got = reply_extract(in, 2, &r);
	ok(got != NULL && strcmp(got, "Hi") == 0, "length bounds the input");
	free(got);
	got = reply_extract(in, sizeof(in) - 1, &r);
	ok(got != NULL && r.len == 8 && memcmp(got, "Hi\0there", 8) == 0,
	    "NUL inside a line is kept");
	free(got);
}

/* 5 MiB bodies of the shapes a naive scan would be quadratic on. */
static void
test_huge(void)
{
	static const char *const unit[] = {
		"text line On x On y On z\n", "> q\n", "&amp;<p>a</p>",
		"From: x\n", "On ",
		"On a long line that ends in a colon but names no verb at all "
		    "and goes on and on and on and on and on and on and on:\n",
		"-- long signature-like line, a rule checked word by word "
		    "against every separator phrase there is, over and over\n",
	};
	size_t	 big = 5 << 20, i, j, u;

	for (u = 0; u < nitems(unit); u++) {
		struct reply_result	 r;
		char			*in, *got;
		clock_t			 t0;
		size_t			 ul = strlen(unit[u]), n;
		double			 secs;

		if ((in = malloc(big)) == NULL)
			abort();
		for (i = 0; i < big; i += ul)
			for (j = 0; j < ul && i + j < big; j++)
				in[i + j] = unit[u][j];
		t0 = clock();
		got = reply_extract(in, big, &r);
		ok(got != NULL, "5 MiB body %zu extracted", u);
		free(got);
		got = reply_html_to_text(in, big, &n);
		ok(got != NULL, "5 MiB body %zu rendered", u);
		free(got);
		secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
		ok(secs < 3.0, "5 MiB body %zu in %.2f s", u, secs);
		free(in);
	}
}

int
main(void)
{
	test_rules();
	test_html();
	test_bounds();
	test_huge();
	return tap_done();
}
