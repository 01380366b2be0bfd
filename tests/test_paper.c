/*
 * test_paper.c - paper.c: letters rendered to PDF and read back with
 * poppler's pdftotext and pdfinfo (poppler-utils, declared in
 * contrib/deps.sh), so the checks are on what a printer would get.
 */
#include "build.h"

#include <sys/stat.h>
#include <sys/types.h>
#include <dirent.h>
#include <errno.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "paper.h"
#include "util.h"
#include "tap.h"
#include "tfile.h"

/* 2026-11-25 23:30 UTC: already the 26th east of UTC+0:30. */
#define T_DATE		((time_t)1795649400)

static char	*tdir;
static int	 have_poppler;

/* A path in the test directory. */
static char *
tpath(const char *name)
{
	char	*p;

	xasprintf(&p, "%s/%s", tdir, name);
	return p;
}

static char	*run(const char *, ...)
		    __attribute__((format(printf, 1, 2)));

/* Everything a shell command (printf-style) prints on stdout; NULL if it
 * fails. */
static char *
run(const char *fmt, ...)
{
	FILE	*fp;
	va_list	 ap;
	char	*cmd, *buf = NULL;
	size_t	 len = 0, cap = 0, n;

	va_start(ap, fmt);
	xvasprintf(&cmd, fmt, ap);
	va_end(ap);
	fp = popen(cmd, "r");
	free(cmd);
	if (fp == NULL)
		return NULL;
	for (;;) {
		if (cap - len < 65536) {
			cap = cap * 2 + 65536;
			buf = xreallocarray(buf, 1, cap + 1);
		}
		if ((n = fread(buf + len, 1, cap - len, fp)) == 0)
			break;
		len += n;
	}
	buf[len] = '\0';
	if (pclose(fp) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* The text of a PDF, pages separated by form feeds. */
static char *
pdftext(const char *path)
{
	return run("pdftotext -enc UTF-8 '%s' - 2>/dev/null", path);
}

/* pdfinfo's report with ISO 8601 dates as stored. */
static char *
run_pdfinfo_iso(const char *path)
{
	return run("pdfinfo -isodates '%s' 2>/dev/null", path);
}

/* pdfinfo's report on a PDF. */
static char *
pdfinfo(const char *path)
{
	return run("pdfinfo '%s' 2>/dev/null", path);
}

/* Collapse every run of white space to one space (line wraps differ). */
static char *
squash(const char *s)
{
	char	*out = xmalloc(strlen(s) + 1), *o = out;
	int	 sp = 0;

	for (; *s != '\0'; s++) {
		if (*s == ' ' || *s == '\n' || *s == '\t' || *s == '\f' ||
		    *s == '\r') {
			sp = 1;
			continue;
		}
		if (sp && o != out)
			*o++ = ' ';
		sp = 0;
		*o++ = *s;
	}
	*o = '\0';
	return out;
}

/* Remove all white space (a word broken across lines joins again). */
static char *
nospace(const char *s)
{
	char	*out = xmalloc(strlen(s) + 1), *o = out;

	for (; *s != '\0'; s++)
		if (*s != ' ' && *s != '\n' && *s != '\t' && *s != '\f' &&
		    *s != '\r')
			*o++ = *s;
	*o = '\0';
	return out;
}

/* Drop the "Page N of M" footer lines (they sit inside a long word). */
static void
drop_footers(char *s)
{
	char	*line = s, *nl, *o = s;
	int	 a, b, n;
	size_t	 len;

	while (*line != '\0') {
		nl = strchr(line, '\n');
		len = nl != NULL ? (size_t)(nl - line) + 1 : strlen(line);
		n = 0;
		if (*line == '\f')
			*o++ = *line++, len--;
		if (sscanf(line, "Page %d of %d%n", &a, &b, &n) == 2 &&
		    (line[n] == '\n' || line[n] == '\0')) {
			line += len;
			continue;
		}
		memmove(o, line, len);
		o += len;
		line += len;
	}
	*o = '\0';
}

/* Remove U+202A..U+202E (bidi embedding and override marks). */
static void
strip_bidi_marks(char *s)
{
	char	*o = s;

	while (*s != '\0') {
		if ((unsigned char)s[0] == 0xe2 && (unsigned char)s[1] == 0x80 &&
		    (unsigned char)s[2] >= 0xaa && (unsigned char)s[2] <= 0xae) {
			s += 3;
			continue;
		}
		*o++ = *s++;
	}
	*o = '\0';
}

/* Count occurrences of needle in hay. */
static int
count(const char *hay, const char *needle)
{
	int	 n = 0;

	while ((hay = strstr(hay, needle)) != NULL) {
		n++;
		hay += strlen(needle);
	}
	return n;
}

/*
 * The next word box of `pdftotext -bbox` output at or after *pp, in
 * points: 1 (*pp moves past the word's tag name), 0 at the end (or no
 * output), -1 if the box cannot be read.
 */
static int
bbox_next(const char **pp, double *x0, double *y0, double *x1, double *y1)
{
	const char	*p;

	if (*pp == NULL || (p = strstr(*pp, "<word ")) == NULL)
		return 0;
	*pp = p + 6;
	return sscanf(p, "<word xMin=\"%lf\" yMin=\"%lf\" xMax=\"%lf\" "
	    "yMax=\"%lf\"", x0, y0, x1, y1) == 4 ? 1 : -1;
}

/*
 * Is every word of the PDF inside the 20 mm margins (1 pt of slack)?
 * Text that ran off the column would be cut by the printer.  The number
 * of words seen goes to *nwords.
 */
static int
inside_margins(const char *path, int *nwords)
{
	const char	*p;
	char		*out;
	double		 x0, y0, x1, y1, lo = 20 * 72 / 25.4 - 1;
	double		 right = (210 - 20) * 72 / 25.4 + 1;
	double		 bottom = (297 - 20) * 72 / 25.4 + 1;
	int		 inside = 1, r;

	*nwords = 0;
	if ((out = run("pdftotext -bbox '%s' - 2>/dev/null", path)) == NULL)
		return 0;
	for (p = out; (r = bbox_next(&p, &x0, &y0, &x1, &y1)) != 0;) {
		if (r == -1) {
			inside = 0;
			break;
		}
		(*nwords)++;
		if (x0 < lo || y0 < lo || x1 > right || y1 > bottom) {
			diag("word outside the margins at %.1f,%.1f-%.1f,%.1f",
			    x0, y0, x1, y1);
			inside = 0;
		}
	}
	free(out);
	return inside && *nwords > 0;
}

/*
 * Do all words of the PDF's first page that lie left of x = 110 mm and
 * between y = 40 and 90 mm (the window region, with room to spill) fit the
 * DL window, 20-105 mm across and 45-85 mm down?  *nwords gets how many
 * words were seen there.
 */
static int
inside_window(const char *path, int *nwords)
{
	const char	*p;
	char		*out;
	double		 x0, y0, x1, y1, k = 72 / 25.4;
	int		 inside = 1;

	*nwords = 0;
	if ((out = run("pdftotext -bbox -f 1 -l 1 '%s' - 2>/dev/null",
	    path)) == NULL)
		return 0;
	for (p = out; bbox_next(&p, &x0, &y0, &x1, &y1) == 1;) {
		if (x0 > 110 * k || y1 < 40 * k || y0 > 90 * k)
			continue;
		(*nwords)++;
		if (x0 < 20 * k - 1 || x1 > 105 * k + 1 || y0 < 45 * k - 1 ||
		    y1 > 85 * k + 1) {
			diag("word outside the window at %.1f,%.1f-%.1f,%.1f mm",
			    x0 / k, y0 / k, x1 / k, y1 / k);
			inside = 0;
		}
	}
	free(out);
	return inside && *nwords > 0;
}

/* Value of a "Key:   value" line of pdfinfo output; NULL if absent. */
static char *
info_field(const char *info, const char *key)
{
	const char	*p = info, *v, *e;
	size_t		 klen = strlen(key);

	while (p != NULL && *p != '\0') {
		if (strncmp(p, key, klen) == 0 && p[klen] == ':') {
			v = p + klen + 1;
			while (*v == ' ')
				v++;
			e = strchr(v, '\n');
			return xstrndup(v, e != NULL ? (size_t)(e - v) :
			    strlen(v));
		}
		p = strchr(p, '\n');
		if (p != NULL)
			p++;
	}
	return NULL;
}

static struct paper_attachment_name t_atts[] = {
	{ "blood-results.pdf", 12345 },
	{ "scan.png", 512 },
	{ "x-ray.dcm", 4200000 },
};

/* A letter with every field set. */
static void
full_doc(struct paper_doc *d)
{
	memset(d, 0, sizeof(*d));
	d->practice_name = "Riverside Surgery";
	d->practice_address = "12 Mill Lane\nRiverside\nRV1 2AB\n";
	d->practice_phone = "01632 960 123";
	d->patient_name = "Jo Bloggs";
	d->patient_address = "Flat 3, 7 Orchard Road\nLittle Wick\nRV9 8ZZ";
	d->letter_id = 42;
	d->date = T_DATE;
	d->subject = "Your blood test results";
	d->text = "Dear Jo,\n\nYour recent blood tests are normal.\n"
	    "No further action is needed.\n\nYours sincerely,\n"
	    "Dr A Patel\n";
	d->attachments = t_atts;
	d->nattachments = nitems(t_atts);
	d->reply_address = "reply+ab12cd@riverside.example";
	d->reply_code = "L42-7KQD-M3XA";
}

/* No file of that name, and no leftover path.tmp. */
static int
no_file(const char *path)
{
	char		*tmp;
	struct stat	 st;
	int		 r;

	xasprintf(&tmp, "%s.tmp", path);
	r = lstat(path, &st) == -1 && errno == ENOENT &&
	    lstat(tmp, &st) == -1 && errno == ENOENT;
	free(tmp);
	return r;
}

static void
test_full(void)
{
	struct paper_doc	 d;
	struct stat		 st;
	const char		*err = NULL;
	char			*path = tpath("full.pdf"), *tmp, *txt, *sq,
				*info, *v, *raw;
	size_t			 rawlen = 0;
	int			 pages = -1, r, i;
	static const char *const want[] = {
		"Riverside Surgery", "12 Mill Lane", "Riverside", "RV1 2AB",
		"Tel: 01632 960 123", "Jo Bloggs", "Flat 3, 7 Orchard Road",
		"Little Wick", "RV9 8ZZ", "25 November 2026", "Our ref: L42",
		"Your blood test results", "Dear Jo,",
		"Your recent blood tests are normal.", "Dr A Patel",
		"Enclosures (not printed):", "blood-results.pdf (12.3 kB)",
		"scan.png (512 bytes)", "x-ray.dcm (4.2 MB)",
		"To reply by email, write to reply+ab12cd@riverside.example "
		    "and put L42-7KQD-M3XA in the subject.",
		"Page 1 of 1",
	};

	full_doc(&d);
	/* A zone east of UTC: the date must still be the UTC one. */
	setenv("TZ", "Pacific/Kiritimati", 1);
	tzset();
	umask(0);
	r = paper_render_pdf(&d, path, &pages, &err);
	umask(022);
	ok(r == 0, "full letter renders (%s)", r == 0 ? "ok" : err);
	is_int(pages, 1, "full letter is one page");
	ok(stat(path, &st) == 0 && (st.st_mode & 07777) == 0600,
	    "mode 0600 with umask 0 (got %o)", (unsigned)(st.st_mode & 07777));
	xasprintf(&tmp, "%s.tmp", path);
	ok(access(tmp, F_OK) == -1 && errno == ENOENT, "no .tmp left");
	free(tmp);

	raw = read_file(path, &rawlen);
	ok(raw != NULL && rawlen > 4 && memcmp(raw, "%PDF", 4) == 0,
	    "output is a PDF");
	/* The metadata is in clear in the file: no patient detail there. */
	ok(raw != NULL && memmem(raw, rawlen, "Bloggs", 6) == NULL &&
	    memmem(raw, rawlen, "Orchard", 7) == NULL,
	    "patient name and address not in clear in the file");
	free(raw);

	if (!have_poppler) {
		for (i = 0; i < (int)nitems(want) + 10; i++)
			skip("poppler-utils (pdftotext, pdfinfo) not installed");
		free(path);
		return;
	}
	txt = pdftext(path);
	ok(txt != NULL, "pdftotext reads it");
	sq = squash(txt != NULL ? txt : "");
	for (i = 0; i < (int)nitems(want); i++)
		ok(strstr(sq, want[i]) != NULL, "text has \"%s\"", want[i]);
	ok(strstr(sq, "26 November") == NULL, "date not in local time");
	r = inside_margins(path, &i);
	ok(r, "all %d words inside the margins", i);
	r = inside_window(path, &i);
	ok(r && i == 11, "patient block (%d words) in the DL window", i);
	free(sq);
	free(txt);

	info = pdfinfo(path);
	ok(info != NULL, "pdfinfo reads it");
	info = info != NULL ? info : xstrdup("");
	v = info_field(info, "Title");
	is_str(v, "Letter L42", "title is the letter reference");
	free(v);
	v = info_field(info, "Creator");
	is_str(v, "sealpost", "creator is sealpost");
	free(v);
	v = info_field(info, "Page size");
	ok(v != NULL && strstr(v, "(A4)") != NULL, "page size A4 (%s)",
	    v != NULL ? v : "none");
	free(v);
	ok(strstr(info, "Author:") == NULL && strstr(info, "Subject:") == NULL &&
	    strstr(info, "Keywords:") == NULL, "no author, subject or "
	    "keywords in the metadata");
	free(info);
	info = run_pdfinfo_iso(path);
	v = info != NULL ? info_field(info, "CreationDate") : NULL;
	is_str(v, "2026-11-25T23:30:00Z", "creation date is the letter's, "
	    "not the time of printing");
	free(v);
	ok(info != NULL && strstr(info, "Bloggs") == NULL && strstr(info, "blood") == NULL,
	    "no patient name or subject in pdfinfo output");
	free(info);
	free(path);
}

/* Umask 0277 would give 0400 without an explicit fchmod. */
static void
test_mode_umask(void)
{
	struct paper_doc	 d;
	struct stat		 st;
	const char		*err = NULL;
	char			*path = tpath("umask.pdf");
	int			 r;

	full_doc(&d);
	umask(0277);
	r = paper_render_pdf(&d, path, NULL, &err);
	umask(022);
	ok(r == 0 && stat(path, &st) == 0 && (st.st_mode & 07777) == 0600,
	    "mode 0600 with umask 0277");
	free(path);
}

/* 3000 lines: many pages, none lost or repeated, footers on each. */
static void
test_long(void)
{
	struct paper_doc	 d;
	struct timespec		 t0, t1;
	const char		*err = NULL;
	char			*path = tpath("long.pdf"), *text, *p, *txt,
				*info, *v, *pg, *next, buf[64];
	size_t			 off = 0;
	int			 pages = -1, r, i, n, ln, expect, inorder,
				 footers, perpage_min = 1 << 30,
				 perpage_max = 0, dup;
	double			 ms;

	text = xmalloc(3000 * 40);
	for (i = 1; i <= 3000; i++)
		off += (size_t)snprintf(text + off, 40,
		    "Line %04d of the long letter.\n", i);
	full_doc(&d);
	d.text = text;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	r = paper_render_pdf(&d, path, &pages, &err);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ok(r == 0, "3000-line letter renders (%s)", r == 0 ? "ok" : err);
	ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
	    (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	diag("timing: %d pages in %.0f ms, %.2f ms per page", pages, ms,
	    pages > 0 ? ms / pages : 0.0);
	/*
	 * About 700 pt of text per page at 10.5 pt type (a line is 11.5 to
	 * 13 pt): 53 to 61 lines a page, less on page one: 50 to 60 pages.
	 */
	ok(pages >= 50 && pages <= 60, "3000 lines make 50-60 pages (%d)",
	    pages);
	if (!have_poppler) {
		for (i = 0; i < 7; i++)
			skip("poppler-utils (pdftotext, pdfinfo) not installed");
		free(text);
		free(path);
		return;
	}
	info = pdfinfo(path);
	v = info != NULL ? info_field(info, "Pages") : NULL;
	snprintf(buf, sizeof(buf), "%d", pages);
	is_str(v, buf, "pdfinfo agrees on the page count");
	free(v);
	free(info);

	txt = pdftext(path);
	ok(txt != NULL, "pdftotext reads the long letter");
	txt = txt != NULL ? txt : xstrdup("");
	ok(strstr(txt, "Line 3000 of the long letter.") != NULL,
	    "the last line is whole");
	/* Walk the pages (form feed separated): footer and line numbers. */
	expect = 1;
	inorder = 1;
	footers = 0;
	dup = 0;
	for (pg = txt, i = 1; pg != NULL && *pg != '\0'; pg = next, i++) {
		if ((next = strchr(pg, '\f')) != NULL)
			*next++ = '\0';
		snprintf(buf, sizeof(buf), "Page %d of %d", i, pages);
		if (count(pg, buf) == 1)
			footers++;
		n = 0;
		for (p = pg; (p = strstr(p, "Line ")) != NULL; p += 5) {
			ln = atoi(p + 5);
			if (ln < expect)
				dup++;
			else if (ln != expect)
				inorder = 0;
			expect = ln + 1;
			n++;
		}
		/* Pages between the first and the last are full. */
		if (i > 1 && i < pages) {
			if (n < perpage_min)
				perpage_min = n;
			if (n > perpage_max)
				perpage_max = n;
		}
	}
	is_int(footers, pages, "every page has its \"Page N of %d\"", pages);
	ok(inorder && dup == 0, "lines 1..3000 in order, none repeated");
	is_int(expect, 3001, "the last line (3000) is printed");
	ok(perpage_min == perpage_max, "full pages hold the same number of "
	    "lines (%d..%d)", perpage_min, perpage_max);
	free(txt);
	free(text);
	free(path);
}

/* Markup-like text and other scripts come out as written. */
static void
test_literal_and_scripts(void)
{
	struct paper_doc	 d;
	const char		*err = NULL;
	char			*path = tpath("scripts.pdf"), *txt, *sq, *cjk,
				*ns;
	int			 r, i;
	static const char *const want[] = {
		"<b>&amp;</b> & <i>not italic</i> &lt;",
		"Results <b>&amp;</b> advice",
		"Jo <O'Brien> & Co",
		"Καλημέρα, η εξέταση είναι φυσιολογική.",
		"Здравствуйте, анализ в норме.",
	};

	full_doc(&d);
	d.patient_name = "Jo <O'Brien> & Co";
	d.subject = "Results <b>&amp;</b> advice";
	d.text = "<b>&amp;</b> & <i>not italic</i> &lt;\n"
	    "Καλημέρα, η εξέταση είναι φυσιολογική.\n"
	    "Здравствуйте, анализ в норме.\n"
	    "مرحبا، النتائج طبيعية\n"
	    "日本語のテスト\n";
	r = paper_render_pdf(&d, path, NULL, &err);
	ok(r == 0, "letter with markup and scripts renders (%s)",
	    r == 0 ? "ok" : err);
	if (!have_poppler) {
		for (i = 0; i < (int)nitems(want) + 2; i++)
			skip("poppler-utils (pdftotext, pdfinfo) not installed");
		free(path);
		return;
	}
	txt = pdftext(path);
	sq = squash(txt != NULL ? txt : "");
	for (i = 0; i < (int)nitems(want); i++)
		ok(strstr(sq, want[i]) != NULL, "prints literally: %s",
		    want[i]);
	/*
	 * Arabic: cairo maps the shaped glyphs back to their characters.
	 * pdftotext 22.12 gives each word in logical order but the words of
	 * the line in visual order, wrapped in bidi embedding marks, with
	 * spaces inside words where joined glyphs sit apart: compare words
	 * with spaces and marks removed.
	 */
	ns = nospace(txt != NULL ? txt : "");
	strip_bidi_marks(ns);
	ok(strstr(ns, "مرحبا") != NULL && strstr(ns, "النتائج") != NULL &&
	    strstr(ns, "طبيعية") != NULL, "Arabic words survive");
	free(ns);
	/* CJK only if some installed font covers it (DejaVu does not). */
	cjk = run("fc-list :lang=ja family 2>/dev/null");
	if (cjk == NULL || *cjk == '\0')
		skip("no installed font covers Japanese (fc-list :lang=ja "
		    "is empty)");
	else
		ok(strstr(sq, "日本語のテスト") != NULL, "Japanese survives");
	free(cjk);
	free(sq);
	free(txt);
	free(path);
}

/* One word of 5000 characters is broken across lines, not clipped. */
static void
test_long_word(void)
{
	struct paper_doc	 d;
	const char		*err = NULL;
	char			*path = tpath("word.pdf"), *word, *txt, *ns;
	int			 r, pages = 0, in, nwords;
	size_t			 i;
	uint32_t		 seed;

	/* Not periodic, so any 800-character piece occurs once. */
	word = xmalloc(5001);
	for (i = 0, seed = 1; i < 5000; i++) {
		seed = seed * 1103515245 + 12345;
		word[i] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
		    [(seed >> 16) % 36];
	}
	word[5000] = '\0';
	full_doc(&d);
	d.text = word;
	d.reply_address = xstrdup(word);	/* refused: > 254 bytes */
	r = paper_render_pdf(&d, path, &pages, &err);
	ok(r == -1 && err != NULL && strstr(err, "reply address") != NULL,
	    "a 5000-byte reply address is refused (%s)", r == -1 ? err : "");
	free((char *)d.reply_address);
	d.reply_address = "reply+ab12cd@riverside.example";
	d.subject = word + 4000;		/* 1000 bytes: too long */
	r = paper_render_pdf(&d, path, &pages, &err);
	ok(r == -1 && err != NULL && strstr(err, "subject") != NULL,
	    "a 1000-byte subject is refused (%s)", r == -1 ? err : "");
	d.subject = word + 4200;		/* 800 bytes, unbroken */
	r = paper_render_pdf(&d, path, &pages, &err);
	ok(r == 0, "5000-character word renders (%s)", r == 0 ? "ok" : err);
	if (!have_poppler) {
		skip("poppler-utils (pdftotext, pdfinfo) not installed");
		skip("poppler-utils (pdftotext, pdfinfo) not installed");
		skip("poppler-utils (pdftotext, pdfinfo) not installed");
		free(word);
		free(path);
		return;
	}
	txt = pdftext(path);
	txt = txt != NULL ? txt : xstrdup("");
	drop_footers(txt);
	ns = nospace(txt);
	ok(strstr(ns, word) != NULL, "all 5000 characters are printed, "
	    "in order, with no hyphen added (%d pages)", pages);
	ok(strstr(ns, word + 4200) != NULL &&
	    count(ns, word + 4200) == 2, "the 800-character subject too");
	in = inside_margins(path, &nwords);
	ok(in, "no character past the margins (%d words)", nwords);
	free(ns);
	free(txt);
	free(word);
	free(path);
}

/*
 * A paragraph of 420 kB with no line break: wider than pango's int
 * widths can hold in one layout.  Every word must come out, in order.
 */
static void
test_long_paragraph(void)
{
	struct paper_doc	 d;
	const char		*err = NULL;
	char			*path = tpath("para.pdf"), *text, *txt, *p;
	size_t			 off = 0, nwords = 60000, i;
	int			 r, pages = 0, next, inorder = 1, n;

	text = xmalloc(nwords * 7 + 1);
	for (i = 1; i <= nwords; i++)
		off += (size_t)snprintf(text + off, 8, "w%05zu ", i);
	full_doc(&d);
	d.text = text;
	r = paper_render_pdf(&d, path, &pages, &err);
	ok(r == 0, "420 kB paragraph renders (%s, %d pages)",
	    r == 0 ? "ok" : err, pages);
	if (!have_poppler) {
		skip("poppler-utils (pdftotext, pdfinfo) not installed");
		free(text);
		free(path);
		return;
	}
	txt = pdftext(path);
	txt = txt != NULL ? txt : xstrdup("");
	next = 1;
	for (p = txt; (p = strchr(p, 'w')) != NULL; p++) {
		if (sscanf(p, "w%5d", &n) != 1)
			continue;
		if (n != next)
			inorder = 0;
		next = n + 1;
	}
	ok(inorder && next == (int)nwords + 1, "all %zu words, in order "
	    "(last seen %d)", nwords, next - 1);
	free(txt);
	free(text);
	free(path);
}

/*
 * A right-to-left paragraph longer than one piece of layout, mixing
 * Arabic and Latin words: every line of it stays aligned to the right
 * margin, even where a later piece starts with a Latin word.
 */
static void
test_long_rtl(void)
{
	struct paper_doc	 d;
	const char		*err = NULL;
	const char		*p;
	char			*path = tpath("rtl.pdf"), *text, *out, *w;
	size_t			 off = 0, i;
	double			 x0, y0, x1, y1, liney = -1, linemax = 0;
	double			 right = (210 - 20) * 72 / 25.4;
	int			 r, lines = 0, aligned = 0, arabic = 0;

	text = xmalloc(6000);
	for (i = 0; i < 60; i++)
		off += (size_t)snprintf(text + off, 6000 - off,
		    "مرحبا NHS %zu النتائج ", i);
	full_doc(&d);
	d.text = text;
	r = paper_render_pdf(&d, path, NULL, &err);
	ok(r == 0, "long mixed Arabic paragraph renders (%s)",
	    r == 0 ? "ok" : err);
	if (!have_poppler) {
		skip("poppler-utils (pdftotext, pdfinfo) not installed");
		free(text);
		free(path);
		return;
	}
	out = run("pdftotext -bbox '%s' - 2>/dev/null", path);
	/* Lines with an Arabic word: the rightmost word ends at the margin. */
	for (p = out; bbox_next(&p, &x0, &y0, &x1, &y1) == 1;) {
		if (y0 != liney) {
			if (arabic) {
				lines++;
				aligned += linemax > right - 1.5;
			}
			liney = y0;
			linemax = 0;
			arabic = 0;
		}
		w = strchr(p, '>');
		if (w != NULL && ((unsigned char)w[1] == 0xd8 ||
		    (unsigned char)w[1] == 0xd9))
			arabic = 1;
		if (x1 > linemax)
			linemax = x1;
	}
	if (arabic) {
		lines++;
		aligned += linemax > right - 1.5;
	}
	ok(lines >= 8 && aligned == lines, "%d of %d Arabic lines end at "
	    "the right margin", aligned, lines);
	free(out);
	free(text);
	free(path);
}

/*
 * The longest reply address (254 bytes): kept whole where it fits, and
 * broken rather than run out of the box where it does not.
 */
static void
test_reply_box(void)
{
	struct paper_doc	 d;
	const char		*err = NULL;
	char			*path = tpath("reply.pdf"), *addr, *txt, *ns;
	int			 r, n;

	addr = xmalloc(255);
	memset(addr, 'r', 254);
	memcpy(addr + 254 - 21, "@riverside.example.uk", 21);
	addr[254] = '\0';
	full_doc(&d);
	d.reply_address = addr;
	r = paper_render_pdf(&d, path, NULL, &err);
	ok(r == 0, "254-byte reply address renders (%s)",
	    r == 0 ? "ok" : err);
	if (!have_poppler) {
		skip("poppler-utils (pdftotext, pdfinfo) not installed");
		skip("poppler-utils (pdftotext, pdfinfo) not installed");
		free(addr);
		free(path);
		return;
	}
	txt = pdftext(path);
	ns = nospace(txt != NULL ? txt : "");
	ok(strstr(ns, addr) != NULL && strstr(ns, "L42-7KQD-M3XA") != NULL,
	    "the whole address and the code are printed");
	r = inside_margins(path, &n);
	ok(r, "the reply box stays inside the margins (%d words)", n);
	free(ns);
	free(txt);
	free(addr);
	free(path);
}

/* The same letter renders to the same bytes. */
static void
test_reproducible(void)
{
	struct paper_doc	 d;
	const char		*err = NULL;
	char			*p1 = tpath("same1.pdf"), *p2 = tpath("same2.pdf"),
				*b1, *b2;
	size_t			 l1 = 0, l2 = 0;

	full_doc(&d);
	ok(paper_render_pdf(&d, p1, NULL, &err) == 0 &&
	    paper_render_pdf(&d, p2, NULL, &err) == 0, "render twice");
	b1 = read_file(p1, &l1);
	b2 = read_file(p2, &l2);
	ok(b1 != NULL && b2 != NULL && l1 == l2 && memcmp(b1, b2, l1) == 0,
	    "identical bytes (%zu, %zu)", l1, l2);
	free(b1);
	free(b2);
	free(p1);
	free(p2);
}

/*
 * Repeated renders do not grow the heap: each call's font map, contexts
 * and layouts go with it.  LeakSanitizer cannot see a forgotten font map
 * (pango keeps it reachable), hence this check on the heap in use.
 * Caches in cairo and fontconfig fill during the first renders, then
 * hold (some 150 kB); a leaked font map would add about 450 kB a call.
 */
static void
test_no_growth(void)
{
#ifdef SEALPOST_ASAN
	skip("heap growth: ASan's allocator does not keep mallinfo2 counts");
#else
	struct paper_doc	 d;
	const char		*err = NULL;
	char			*path = tpath("grow.pdf");
	size_t			 before, after;
	int			 i, fails = 0;

	full_doc(&d);
	d.text = "Dear Jo, Καλημέρα, Здравствуйте, مرحبا.";
	for (i = 0; i < 10; i++)
		fails += paper_render_pdf(&d, path, NULL, &err) != 0;
	before = mallinfo2().uordblks;
	for (i = 0; i < 20; i++)
		fails += paper_render_pdf(&d, path, NULL, &err) != 0;
	after = mallinfo2().uordblks;
	ok(fails == 0 && after < before + 2 * 1024 * 1024, "20 more renders "
	    "grow the heap by %lld bytes (< 2 MB)",
	    (long long)after - (long long)before);
	free(path);
#endif
}

/* Invalid UTF-8 anywhere is refused, and nothing is written. */
static void
test_invalid_utf8(void)
{
	static const char *const bad[] = {
		"abc\xff",		/* never valid */
		"\xc3\x28",		/* bad continuation */
		"\xc0\xaf",		/* overlong '/' */
		"\xed\xa0\x80",		/* UTF-16 surrogate */
		"\xf4\x90\x80\x80",	/* above U+10FFFF */
		"caf\xc3",		/* truncated */
	};
	struct paper_attachment_name	 att[1];
	struct paper_doc		 d;
	const char			*err;
	char				*path = tpath("bad.pdf");
	size_t				 i;
	int				 r;

	for (i = 0; i < nitems(bad); i++) {
		full_doc(&d);
		err = NULL;
		switch (i % 4) {
		case 0: d.text = bad[i]; break;
		case 1: d.patient_name = bad[i]; break;
		case 2: d.subject = bad[i]; break;
		case 3: d.practice_address = bad[i]; break;
		}
		r = paper_render_pdf(&d, path, NULL, &err);
		ok(r == -1 && err != NULL && strstr(err, "UTF-8") != NULL &&
		    no_file(path), "invalid UTF-8 case %zu refused (%s)", i,
		    err != NULL ? err : "no reason");
	}
	full_doc(&d);
	att[0].filename = "r\xe9sultats.pdf";	/* Latin-1, not UTF-8 */
	att[0].size = 10;
	d.attachments = att;
	d.nattachments = 1;
	err = NULL;
	r = paper_render_pdf(&d, path, NULL, &err);
	ok(r == -1 && err != NULL && strstr(err, "attachment") != NULL &&
	    no_file(path), "Latin-1 attachment name refused (%s)",
	    err != NULL ? err : "no reason");
	free(path);
}

/* The document is refused with a reason containing needle. */
static void
refused(const struct paper_doc *d, const char *path, const char *needle,
    const char *what)
{
	const char	*err = NULL;
	int		 r;

	r = paper_render_pdf(d, path, NULL, &err);
	ok(r == -1 && err != NULL && strstr(err, needle) != NULL,
	    "%s refused (%s)", what, err != NULL ? err : "no reason");
}

/* Optional fields absent; required ones missing; bad shapes. */
static void
test_fields(void)
{
	struct paper_doc	 d;
	const char		*err = NULL;
	char			*path = tpath("min.pdf"), *txt, wide[1000];
	int			 r, pages = 0, n = 0, inside;
	size_t			 i;

	memset(&d, 0, sizeof(d));
	d.practice_name = "Riverside Surgery";
	d.patient_name = "Jo Bloggs";
	d.letter_id = 7;
	d.date = T_DATE;
	d.text = "Short note.";
	r = paper_render_pdf(&d, path, &pages, &err);
	ok(r == 0 && pages == 1, "minimal letter renders (%s)",
	    r == 0 ? "ok" : err);
	if (have_poppler) {
		txt = pdftext(path);
		ok(txt != NULL && strstr(txt, "Jo Bloggs") != NULL &&
		    strstr(txt, "Short note.") != NULL &&
		    strstr(txt, "Our ref: L7") != NULL &&
		    strstr(txt, "Enclosures") == NULL &&
		    strstr(txt, "To reply") == NULL &&
		    strstr(txt, "Tel:") == NULL,
		    "minimal letter: no enclosures, reply box or phone");
		free(txt);
	} else
		skip("poppler-utils (pdftotext, pdfinfo) not installed");

	d.subject = "";
	d.text = "";
	r = paper_render_pdf(&d, path, &pages, &err);
	ok(r == 0 && pages == 1, "empty subject and text render (%s)",
	    r == 0 ? "ok" : err);

	d.text = NULL;
	refused(&d, path, "text", "no text");
	d.text = "x";
	d.patient_name = "";
	refused(&d, path, "patient name", "empty patient name");
	d.patient_name = "Jo Bloggs";
	d.practice_name = NULL;
	refused(&d, path, "practice name", "no practice name");
	d.practice_name = "Riverside\nSurgery";
	refused(&d, path, "line break", "line break in practice name");
	d.practice_name = "Riverside Surgery";
	d.patient_address = "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11";
	refused(&d, path, "patient address", "11-line address");
	d.patient_address = "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n\n";
	err = NULL;
	r = paper_render_pdf(&d, path, NULL, &err);
	ok(r == 0, "10-line address with trailing newlines renders (%s)",
	    r == 0 ? "ok" : err);
	/* Eight long lines: set smaller to fit the window. */
	d.patient_address = "Flat 12, Kingfisher House, Waterside Gardens\n"
	    "Off the Old Towpath by the Canal Basin\nUpper Little Wick\n"
	    "Near Riverside Market Town\nNorth Countyshire\nEngland\n"
	    "United Kingdom of Great Britain\nRV9 8ZZ";
	err = NULL;
	r = paper_render_pdf(&d, path, NULL, &err);
	if (have_poppler) {
		inside = r == 0 && inside_window(path, &n);
		ok(inside && n == 33, "8-line address fits the window (%d "
		    "words, %s)", n, r == 0 ? "ok" : err);
	}
	else
		skip("poppler-utils (pdftotext, pdfinfo) not installed");
	/* A line separator is a line too. */
	d.patient_address = "1\xe2\x80\xa8" "2\xe2\x80\xa8" "3\xe2\x80\xa8"
	    "4\xe2\x80\xa8" "5\xe2\x80\xa8" "6\xe2\x80\xa8" "7\xe2\x80\xa8"
	    "8\xe2\x80\xa8" "9\xe2\x80\xa8" "10\xc2\x85" "11";
	refused(&d, path, "patient address", "11 lines split by U+2028 and NEL");
	/* Ten lines of wide letters wrap far past the header's room. */
	memset(wide, 'W', sizeof(wide) - 1);
	wide[sizeof(wide) - 1] = '\0';
	for (i = 99; i < sizeof(wide) - 1; i += 100)
		wide[i] = '\n';
	d.patient_address = NULL;
	d.practice_address = wide;
	refused(&d, path, "too long to print", "practice address too tall");
	d.practice_address = NULL;
	d.letter_id = 0;
	refused(&d, path, "letter id", "letter id 0");
	d.letter_id = 7;
	d.reply_address = "reply+x@riverside.example\xe2\x80\xa9";
	d.reply_code = "L7-AAAA-BBBB";
	refused(&d, path, "line break", "paragraph separator in reply address");
	d.reply_code = NULL;
	d.reply_address = "reply+x@riverside.example";
	refused(&d, path, "reply code", "reply address without code");
	d.reply_address = NULL;
	d.nattachments = 1;
	refused(&d, path, "attachment", "attachment count without a list");
	d.nattachments = 0;
	d.date = (time_t)INT64_MAX;
	refused(&d, path, "date", "date out of range");
	free(path);
}

/* A text over the bound is refused before any work. */
static void
test_text_bound(void)
{
	struct paper_doc	 d;
	const char		*err = NULL;
	char			*path = tpath("huge.pdf"), *text;
	size_t			 n = 1024 * 1024 + 1;

	text = xmalloc(n + 1);
	memset(text, 'a', n);
	text[n] = '\0';
	full_doc(&d);
	d.text = text;
	ok(paper_render_pdf(&d, path, NULL, &err) == -1 && err != NULL &&
	    strstr(err, "too long") != NULL && no_file(path),
	    "text over 1 MiB refused (%s)", err);
	free(text);
	free(path);
}

/* Files: unwritable places, replacing, a stale .tmp, failures atomic. */
static void
test_files(void)
{
	struct paper_doc	 d;
	const char		*err;
	char			*path = tpath("replace.pdf"), *tmp, *file,
				*sub, *body;
	size_t			 len;
	FILE			*fp;
	int			 r;

	full_doc(&d);
	err = NULL;
	r = paper_render_pdf(&d, "/nonexistent-sealpost-dir/x.pdf", NULL,
	    &err);
	ok(r == -1 && err != NULL && strstr(err, "directory") != NULL,
	    "missing directory: -1 (%s)", err != NULL ? err : "no reason");
	file = tpath("plainfile");
	fp = fopen(file, "w");
	fclose(fp);
	xasprintf(&sub, "%s/x.pdf", file);
	err = NULL;
	r = paper_render_pdf(&d, sub, NULL, &err);
	ok(r == -1 && err != NULL && strstr(err, "directory") != NULL,
	    "parent is a file: -1 (%s)", err != NULL ? err : "no reason");
	free(sub);
	err = NULL;
	ok(paper_render_pdf(&d, "", NULL, &err) == -1 && err != NULL,
	    "empty path: -1 (%s)", err != NULL ? err : "no reason");

	if (geteuid() != 0) {
		sub = tpath("ro");
		mkdir(sub, 0500);
		free(file);
		xasprintf(&file, "%s/x.pdf", sub);
		err = NULL;
		r = paper_render_pdf(&d, file, NULL, &err);
		ok(r == -1 && err != NULL && strstr(err, "permission") != NULL,
		    "read-only directory: -1 (%s)", err != NULL ? err : "");
		rmdir(sub);
		free(sub);
	} else
		skip("running as root: directory permissions do not apply");
	free(file);

	/* An old file stays whole when rendering fails. */
	fp = fopen(path, "w");
	fputs("old letter", fp);
	fclose(fp);
	d.text = "bad \xff";
	err = NULL;
	r = paper_render_pdf(&d, path, NULL, &err);
	body = read_file(path, &len);
	ok(r == -1 && body != NULL && strcmp(body, "old letter") == 0,
	    "failed render leaves the old file alone");
	free(body);

	/* A stale path.tmp (a crash) does not block the next render. */
	xasprintf(&tmp, "%s.tmp", path);
	fp = fopen(tmp, "w");
	fputs("half a PDF", fp);
	fclose(fp);
	full_doc(&d);
	err = NULL;
	r = paper_render_pdf(&d, path, NULL, &err);
	body = read_file(path, &len);
	ok(r == 0 && body != NULL && len > 4 && memcmp(body, "%PDF", 4) == 0,
	    "render replaces the old file, despite a stale .tmp (%s)",
	    r == 0 ? "ok" : err);
	ok(access(tmp, F_OK) == -1 && errno == ENOENT, "stale .tmp gone");
	free(body);
	free(tmp);
	free(path);
}

/* Remove the test directory (flat). */
static void
cleanup(void)
{
	DIR		*dir;
	struct dirent	*de;
	char		*p;
	int		 left = 0;

	/* TEST_PAPER_KEEP=1 keeps the PDFs for a look. */
	if (getenv("TEST_PAPER_KEEP") != NULL) {
		diag("PDFs kept in %s", tdir);
		return;
	}
	if ((dir = opendir(tdir)) == NULL)
		return;
	while ((de = readdir(dir)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		/* Every render cleaned up after itself. */
		if (strstr(de->d_name, ".tmp") != NULL)
			left++;
		p = tpath(de->d_name);
		unlink(p);
		free(p);
	}
	closedir(dir);
	rmdir(tdir);
	is_int(left, 0, "no .tmp file left in the test directory");
}

int
main(void)
{
	const char	*base = getenv("TMPDIR");
	char		*v;

	xasprintf(&tdir, "%s/test_paper.XXXXXX",
	    base != NULL && *base != '\0' ? base : "/tmp");
	if (mkdtemp(tdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	v = run("pdftotext -v 2>&1 && pdfinfo -v 2>&1");
	have_poppler = v != NULL;
	free(v);
	if (!have_poppler)
		diag("poppler-utils not installed: PDF content checks skip");

	test_full();
	test_mode_umask();
	test_long();
	test_literal_and_scripts();
	test_long_word();
	test_reply_box();
	test_long_paragraph();
	test_long_rtl();
	test_reproducible();
	test_no_growth();
	test_invalid_utf8();
	test_fields();
	test_text_bound();
	test_files();
	cleanup();
	free(tdir);
	return tap_done();
}
