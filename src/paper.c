/*
 * paper.c - the printable letter: one PDF per letter for the paper queue,
 * laid out with pango and drawn on cairo's PDF surface.  The only file that
 * includes cairo, pango or glib headers.
 *
 * Public: paper_render_pdf.
 *
 * Error policy: 0, or -1 with a static reason (a string literal naming the
 * field or the step, never its content).  The PDF is written to path.tmp,
 * created 0600 whatever the umask, fsynced, renamed over path and the
 * directory fsynced; on failure path.tmp is removed and path is untouched
 * (unless only that last directory fsync failed: the new file is in place
 * but its name may not survive a crash, and the caller is told).
 *
 * The page (A4, 210 x 297 mm, 20 mm margins; x from the left, y from the
 * top, in mm):
 *
 *    20                          110                 190
 *  20 +----------------------------+-------------------+
 *     |                            |  Practice (bold)  |  header, right
 *     |                            |     address lines |  aligned, 80 wide
 *  45 +--------------------+       |        Tel: phone |
 *     | Patient name       |  DL window envelope: 85 x 40, patient address
 *     | address lines      |  (shrunk from 11 to 8 pt to fit the window)
 *  85 +--------------------+
 *     25 November 2026           date (UTC) and "Our ref: L<id>", below
 *     Our ref: L42               the lower of header and window
 *     Subject (bold)
 *     text ... wrapped to 170 mm, flowing line by line onto later pages
 *     Enclosures (not printed):  name (size) per attachment
 *     +------------------------------------------------+
 *     | To reply by email, write to <a> and put <c> ... |  kept on one page
 *     +------------------------------------------------+
 * 277                      Page N of M                    footer
 *
 * All text is untrusted: it reaches pango through pango_layout_set_text and
 * attribute lists, never markup, so '<' and '&' print as themselves.  Every
 * string is checked as UTF-8 and bounded: the body by PAPER_TEXT_MAX, the
 * blocks at fixed places by bytes, lines and their laid-out height, so they
 * always fit page one.  The body is laid out a paragraph at a time, a long
 * one in pieces (paper_paragraph), with one reused layout: memory and time
 * follow the piece, not the letter.  Wrapping is PANGO_WRAP_WORD_CHAR: a
 * word wider than the column is broken between characters, not clipped,
 * and with no hyphen added.
 *
 * The PDF's document information: Title "Letter L<id>", Creator
 * "sealpost", CreationDate the letter's date, and cairo's fixed Producer;
 * nothing about the patient.
 *
 * "Page N of M" needs M before page one is drawn: the placement runs twice
 * over the same layouts, first counting pages (no cairo), then drawing.
 *
 * Nothing depends on the process: a font map and context of our own per
 * call (pango's default font map is per thread and lives as long as the
 * thread), the language fixed to en-GB, month names from a table, numbers
 * formatted with integers (no LC_NUMERIC decimal point).
 */
#include "build.h"

#include <sys/types.h>
#include <sys/stat.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cairo.h>
#include <cairo-pdf.h>
#include <glib.h>
#include <pango/pangocairo.h>

#include "log.h"
#include "paper.h"
#include "util.h"

/* Lengths in PDF points (1/72 inch). */
#define MM(x)			((x) * 72.0 / 25.4)
#define PAPER_W			MM(210)
#define PAPER_H			MM(297)
#define PAPER_MARGIN		MM(20)
#define PAPER_TEXT_W		(PAPER_W - 2 * PAPER_MARGIN)
#define PAPER_HEADER_W		MM(80)
#define PAPER_WINDOW_X		MM(20)
#define PAPER_WINDOW_Y		MM(45)
#define PAPER_WINDOW_W		MM(85)
#define PAPER_WINDOW_H		MM(40)
/*
 * The most the fixed blocks may take: with them the text starts by 140 mm
 * on page one.  A window block taller than the window is printed whole
 * (nothing of an address is dropped) and shows as a fault at once.
 */
#define PAPER_HEADER_MAX_H	MM(110)
#define PAPER_WINDOW_MAX_H	MM(70)
#define PAPER_REPLY_MAX_H	MM(100)		/* the box fits any page */
#define PAPER_FOOTER_GAP	MM(6)		/* between text and footer */
#define PAPER_GAP		MM(5)		/* between blocks */
#define PAPER_BOX_PAD		MM(4)

#define PAPER_FONT		"DejaVu Sans"
#define PAPER_SIZE_BODY		10.5
#define PAPER_SIZE_HEADER	9.5
#define PAPER_SIZE_PRACTICE	12.0
#define PAPER_SIZE_SUBJECT	11.5
#define PAPER_SIZE_FOOTER	8.5
static const double paper_window_sizes[] = { 11.0, 10.0, 9.0, 8.0 };

/* Bounds: a body of 1 MiB is a few hundred pages. */
#define PAPER_TEXT_MAX		(1024 * 1024)
#define PAPER_PIECE		512		/* see paper_paragraph */
#define PAPER_ADDRESS_MAX	1024
#define PAPER_ADDRESS_LINES	10
#define PAPER_NAME_MAX		256
#define PAPER_PHONE_MAX		64
#define PAPER_SUBJECT_MAX	998		/* as letter.c */
#define PAPER_FILENAME_MAX	255		/* as letter.c */
#define PAPER_REPLY_ADDR_MAX	254		/* RFC 5321 path, less <> */
#define PAPER_REPLY_CODE_MAX	64

/* A string field of struct paper_doc and how it is checked. */
#define PAPER_OPTIONAL	0		/* NULL or "" */
#define PAPER_REQUIRED	1		/* not NULL, not "" */
#define PAPER_PRESENT	2		/* not NULL, may be "" */
struct paper_field {
	size_t		 off;
	int		 need;
	size_t		 max;		/* bytes */
	size_t		 lines;		/* most lines; 0: any */
	const char	*missing;
	const char	*badutf8;
	const char	*toolong;
	const char	*toomanylines;
};

#define PAPER_FIELD(f, what, need, max, lines) {			\
	offsetof(struct paper_doc, f), need, max, lines,		\
	what " is missing", what " is not valid UTF-8",			\
	what " is too long to print",					\
	lines == 1 ? what " contains a line break" :			\
	    what " has too many lines to print" }

static const struct paper_field paper_fields[] = {
	PAPER_FIELD(practice_name, "practice name", PAPER_REQUIRED,
	    PAPER_NAME_MAX, 1),
	PAPER_FIELD(practice_address, "practice address", PAPER_OPTIONAL,
	    PAPER_ADDRESS_MAX, PAPER_ADDRESS_LINES),
	PAPER_FIELD(practice_phone, "practice phone", PAPER_OPTIONAL,
	    PAPER_PHONE_MAX, 1),
	PAPER_FIELD(patient_name, "patient name", PAPER_REQUIRED,
	    PAPER_NAME_MAX, 1),
	PAPER_FIELD(patient_address, "patient address", PAPER_OPTIONAL,
	    PAPER_ADDRESS_MAX, PAPER_ADDRESS_LINES),
	PAPER_FIELD(subject, "subject", PAPER_OPTIONAL, PAPER_SUBJECT_MAX, 1),
	PAPER_FIELD(text, "letter text", PAPER_PRESENT, PAPER_TEXT_MAX, 0),
	PAPER_FIELD(reply_address, "reply address", PAPER_OPTIONAL,
	    PAPER_REPLY_ADDR_MAX, 1),
	PAPER_FIELD(reply_code, "reply code", PAPER_OPTIONAL,
	    PAPER_REPLY_CODE_MAX, 1),
};

static const char *const paper_months[12] = {
	"January", "February", "March", "April", "May", "June", "July",
	"August", "September", "October", "November", "December"
};

/* The layouts of one letter, made once and placed by both passes. */
struct paper_layouts {
	PangoFontMap	*fontmap;
	PangoContext	*ctx;
	PangoContext	*para_ctx;
	PangoLayout	*header;	/* practice, top right */
	PangoLayout	*window;	/* patient, in the envelope window */
	PangoLayout	*ref;		/* date and reference */
	PangoLayout	*subject;	/* NULL: none */
	PangoLayout	*para;		/* the body, one paragraph at a time */
	PangoLayout	*enclosures;	/* NULL: no attachments */
	PangoLayout	*reply;		/* NULL: no reply box */
	PangoLayout	*footer;
};

/* One pass over the document: counting (cr NULL) or drawing. */
struct paper_pass {
	cairo_t		*cr;
	PangoLayout	*footer;
	int		 page;		/* current, from 1 */
	int		 npages;	/* drawing pass: the total */
	double		 y;		/* next free line, from the top */
	double		 bottom;	/* lowest text, above the footer */
};

/* cairo's output stream: the temporary file. */
struct paper_out {
	int		 fd;
	int		 error;		/* errno of the first failed write */
};

static const char *paper_check(const struct paper_doc *);
static size_t	 paper_breaks(const char *, size_t);
static size_t	 paper_trimlen(const char *);
static int	 paper_date(time_t, char *, size_t);
static int	 paper_iso_date(time_t, char *, size_t);
static void	 paper_size(size_t, char *, size_t);
static PangoContext *paper_context(PangoFontMap *);
static PangoLayout *paper_layout(PangoContext *, double, double,
		    PangoAlignment, int);
static void	 paper_attr(PangoLayout *, PangoAttribute *, size_t, size_t);
static int	 paper_fits(struct paper_layouts *, const char *, double,
		    double);
static const char *paper_layouts_make(struct paper_layouts *,
		    const struct paper_doc *, const char *);
static void	 paper_layouts_free(struct paper_layouts *);
static double	 paper_height(PangoLayout *);
static void	 paper_page_end(struct paper_pass *);
static void	 paper_flow(struct paper_pass *, PangoLayout *, int);
static void	 paper_gap(struct paper_pass *, double);
static void	 paper_paragraph(struct paper_pass *, struct paper_layouts *,
		    const char *, size_t);
static void	 paper_body(struct paper_pass *, struct paper_layouts *,
		    const char *);
static void	 paper_reply_box(struct paper_pass *, PangoLayout *);
static void	 paper_place(struct paper_pass *, struct paper_layouts *,
		    const struct paper_doc *);
static cairo_status_t paper_write(void *, const unsigned char *,
		    unsigned int);
static const char *paper_errno_reason(int, const char *, const char *,
		    const char *);

/* Render the letter to a PDF at path, atomically. */
int
paper_render_pdf(const struct paper_doc *doc, const char *path,
    int *pages_r, const char **error_r)
{
	struct paper_layouts	 pl;
	struct paper_pass	 pp;
	struct paper_out	 out;
	cairo_surface_t		*surface = NULL;
	cairo_t			*cr = NULL;
	cairo_status_t		 st;
	char			 date[64], title[64], created_at[32];
	char			*tmp = NULL;
	const char		*reason;
	int			 npages, fd = -1, created = 0;

	if (doc == NULL) {
		*error_r = "no letter to print";
		return -1;
	}
	if (path == NULL || *path == '\0') {
		*error_r = "no path for the PDF file";
		return -1;
	}
	if ((reason = paper_check(doc)) != NULL) {
		*error_r = reason;
		return -1;
	}
	if (doc->letter_id < 1) {
		*error_r = "letter id must be positive";
		return -1;
	}
	if (paper_date(doc->date, date, sizeof(date)) == -1) {
		*error_r = "letter date out of range";
		return -1;
	}

	if ((reason = paper_layouts_make(&pl, doc, date)) != NULL) {
		*error_r = reason;
		paper_layouts_free(&pl);
		return -1;
	}
	memset(&pp, 0, sizeof(pp));
	pp.footer = pl.footer;
	paper_place(&pp, &pl, doc);
	npages = pp.page;

	xasprintf(&tmp, "%s.tmp", path);
	/* A path.tmp left by a crash is ours: clear it, then create anew. */
	if (unlink(tmp) == -1 && errno != ENOENT) {
		*error_r = paper_errno_reason(errno,
		    "permission denied removing an old temporary PDF file",
		    "no such directory for the PDF file",
		    "cannot remove an old temporary PDF file");
		goto fail;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC |
	    O_NOCTTY, 0600);
	if (fd == -1) {
		*error_r = paper_errno_reason(errno,
		    "permission denied creating the PDF file",
		    "no such directory for the PDF file",
		    "cannot create the PDF file");
		goto fail;
	}
	created = 1;
	/* The umask can only clear bits; make the mode exact anyway. */
	if (fchmod(fd, 0600) == -1) {
		*error_r = "cannot set the PDF file's mode";
		goto fail;
	}

	out.fd = fd;
	out.error = 0;
	surface = cairo_pdf_surface_create_for_stream(paper_write, &out,
	    PAPER_W, PAPER_H);
	/*
	 * Document information: a title that names the letter and the
	 * program, nothing about the patient (a file manager or a print
	 * spooler shows these).
	 */
	snprintf(title, sizeof(title), "Letter L%lld",
	    (long long)doc->letter_id);
	cairo_pdf_surface_set_metadata(surface, CAIRO_PDF_METADATA_TITLE,
	    title);
	cairo_pdf_surface_set_metadata(surface, CAIRO_PDF_METADATA_CREATOR,
	    "sealpost");
	/*
	 * cairo would stamp the time of rendering; the letter's own date
	 * (printed on the page anyway) makes the same letter render to the
	 * same bytes.
	 */
	if (paper_iso_date(doc->date, created_at, sizeof(created_at)) == 0)
		cairo_pdf_surface_set_metadata(surface,
		    CAIRO_PDF_METADATA_CREATE_DATE, created_at);
	cr = cairo_create(surface);
	cairo_set_source_rgb(cr, 0, 0, 0);

	memset(&pp, 0, sizeof(pp));
	pp.cr = cr;
	pp.footer = pl.footer;
	pp.npages = npages;
	paper_place(&pp, &pl, doc);
	if (pp.page != npages)
		log_panic("paper: %d pages counted, %d drawn", npages,
		    pp.page);

	st = cairo_status(cr);
	cairo_destroy(cr);
	cr = NULL;
	cairo_surface_finish(surface);
	if (st == CAIRO_STATUS_SUCCESS)
		st = cairo_surface_status(surface);
	cairo_surface_destroy(surface);
	surface = NULL;
	if (out.error != 0) {
		*error_r = out.error == ENOSPC || out.error == EDQUOT ?
		    "no space left writing the PDF file" :
		    "write error on the PDF file";
		goto fail;
	}
	if (st != CAIRO_STATUS_SUCCESS) {
		*error_r = st == CAIRO_STATUS_NO_MEMORY ?
		    "out of memory drawing the PDF" :
		    "cairo failed to draw the PDF";
		goto fail;
	}
	if (fsync(fd) == -1) {
		*error_r = "cannot fsync the PDF file";
		goto fail;
	}
	if (close(fd) == -1) {
		fd = -1;
		*error_r = "cannot close the PDF file";
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) == -1) {
		*error_r = paper_errno_reason(errno,
		    "permission denied replacing the PDF file",
		    "no such directory for the PDF file",
		    "cannot rename the PDF file into place");
		goto fail;
	}
	created = 0;
	/* The new name must survive a crash too. */
	if (util_fsync_dir(path) == -1) {
		*error_r = "cannot fsync the PDF file's directory";
		goto fail;
	}
	free(tmp);
	paper_layouts_free(&pl);
	if (pages_r != NULL)
		*pages_r = npages;
	return 0;

fail:
	if (cr != NULL)
		cairo_destroy(cr);
	if (surface != NULL)
		cairo_surface_destroy(surface);
	if (fd != -1)
		close(fd);
	if (created)
		unlink(tmp);
	free(tmp);
	paper_layouts_free(&pl);
	return -1;
}

/* Check every string of the document; NULL or a static reason. */
static const char *
paper_check(const struct paper_doc *doc)
{
	const struct paper_field	*f;
	const char			*s;
	size_t				 i, len;

	for (i = 0; i < nitems(paper_fields); i++) {
		f = &paper_fields[i];
		s = *(const char *const *)(const void *)
		    ((const char *)doc + f->off);
		if (s == NULL || (*s == '\0' && f->need != PAPER_PRESENT)) {
			if (f->need != PAPER_OPTIONAL)
				return f->missing;
			continue;
		}
		len = strlen(s);
		if (len > f->max)
			return f->toolong;
		if (!g_utf8_validate(s, (gssize)len, NULL))
			return f->badutf8;
		if (f->lines == 0)
			continue;
		/* Trailing line ends are trimmed when laid out. */
		if (f->lines == 1 ? paper_breaks(s, len) > 0 :
		    paper_breaks(s, paper_trimlen(s)) + 1 > f->lines)
			return f->toomanylines;
	}
	if (doc->reply_address != NULL && *doc->reply_address != '\0' &&
	    (doc->reply_code == NULL || *doc->reply_code == '\0'))
		return "reply address given without a reply code";
	if (doc->nattachments > 0 && doc->attachments == NULL)
		return "attachment list is missing";
	for (i = 0; i < doc->nattachments; i++) {
		s = doc->attachments[i].filename;
		if (s == NULL || *s == '\0')
			return "attachment name is missing";
		len = strlen(s);
		if (len > PAPER_FILENAME_MAX)
			return "attachment name is too long to print";
		if (!g_utf8_validate(s, (gssize)len, NULL))
			return "attachment name is not valid UTF-8";
		if (paper_breaks(s, len) > 0)
			return "attachment name contains a line break";
	}
	return NULL;
}

/*
 * The mandatory line breaks in s[0, len) (UAX #14 classes BK, CR, LF,
 * NL; pango breaks at each): CR, LF, CR LF (once), VT, FF, NEL (U+0085),
 * LINE and PARAGRAPH SEPARATOR (U+2028, U+2029).
 */
static size_t
paper_breaks(const char *s, size_t len)
{
	const unsigned char	*p = (const unsigned char *)s;
	size_t			 i, n = 0;

	for (i = 0; i < len; i++) {
		switch (p[i]) {
		case '\r':
			if (i + 1 < len && p[i + 1] == '\n')
				i++;
			n++;
			break;
		case '\n':
		case '\v':
		case '\f':
			n++;
			break;
		case 0xc2:
			if (i + 1 < len && p[i + 1] == 0x85)
				n++;
			break;
		case 0xe2:
			if (i + 2 < len && p[i + 1] == 0x80 &&
			    (p[i + 2] == 0xa8 || p[i + 2] == 0xa9))
				n++;
			break;
		}
	}
	return n;
}

/* Length of s without trailing CR and LF. */
static size_t
paper_trimlen(const char *s)
{
	size_t	 len = strlen(s);

	while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == '\r'))
		len--;
	return len;
}

/* "25 November 2026", in UTC; 0, or -1 if the time cannot be broken down. */
static int
paper_date(time_t t, char *buf, size_t bufsz)
{
	struct tm	 tm;

	if (gmtime_r(&t, &tm) == NULL || tm.tm_mon < 0 || tm.tm_mon > 11)
		return -1;
	snprintf(buf, bufsz, "%d %s %lld", tm.tm_mday,
	    paper_months[tm.tm_mon], (long long)tm.tm_year + 1900);
	return 0;
}

/* ISO 8601 in UTC, as cairo wants it; 0, or -1 out of range. */
static int
paper_iso_date(time_t t, char *buf, size_t bufsz)
{
	struct tm	 tm;

	if (gmtime_r(&t, &tm) == NULL || tm.tm_year + 1900 < 0 ||
	    tm.tm_year + 1900 > 9999)
		return -1;
	snprintf(buf, bufsz, "%04d-%02d-%02dT%02d:%02d:%02dZ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec);
	return 0;
}

/*
 * A size for people: "512 bytes", "12.3 kB", "4.0 MB" (SI units, rounded
 * to one decimal with integers so no locale's decimal point creeps in).
 */
static void
paper_size(size_t n, char *buf, size_t bufsz)
{
	static const char *const units[] = { "kB", "MB", "GB", "TB", "PB",
	    "EB" };
	size_t	 div = 1000, tenths, i;

	if (n < 1000) {
		snprintf(buf, bufsz, "%zu byte%s", n, n == 1 ? "" : "s");
		return;
	}
	for (i = 0; i < nitems(units); i++) {
		/* tenths of the unit, rounded half up, without overflow */
		tenths = n / (div / 10) + (n % (div / 10) >= div / 20);
		if (tenths < 10000 || i == nitems(units) - 1)
			break;
		div *= 1000;
	}
	snprintf(buf, bufsz, "%zu.%zu %s", tenths / 10, tenths % 10,
	    units[i]);
}

/* A pango context for print: points, no hinting, British English. */
static PangoContext *
paper_context(PangoFontMap *fontmap)
{
	PangoContext		*ctx;
	cairo_font_options_t	*fo;

	ctx = pango_font_map_create_context(fontmap);
	/* Points are our user units; outlines unhinted, as for print. */
	pango_cairo_context_set_resolution(ctx, 72.0);
	fo = cairo_font_options_create();
	cairo_font_options_set_hint_style(fo, CAIRO_HINT_STYLE_NONE);
	cairo_font_options_set_hint_metrics(fo, CAIRO_HINT_METRICS_OFF);
	pango_cairo_context_set_font_options(ctx, fo);
	cairo_font_options_destroy(fo);
	pango_context_set_round_glyph_positions(ctx, FALSE);
	/* Not the process locale's language (it steers font choice). */
	pango_context_set_language(ctx, pango_language_from_string("en-gb"));
	return ctx;
}

/* A plain-text layout in our font at size pt, width wide. */
static PangoLayout *
paper_layout(PangoContext *ctx, double size, double width,
    PangoAlignment align, int auto_dir)
{
	PangoLayout		*l;
	PangoFontDescription	*fd;
	PangoAttrList		*attrs;

	l = pango_layout_new(ctx);
	fd = pango_font_description_new();
	pango_font_description_set_family_static(fd, PAPER_FONT);
	pango_font_description_set_size(fd, (gint)(size * PANGO_SCALE));
	pango_layout_set_font_description(l, fd);
	pango_font_description_free(fd);
	pango_layout_set_width(l, (int)(width * PANGO_SCALE));
	pango_layout_set_wrap(l, PANGO_WRAP_WORD_CHAR);
	pango_layout_set_alignment(l, align);
	/*
	 * With auto_dir a right-to-left paragraph (Arabic, Hebrew) starts at
	 * the right margin, as its readers expect; the fixed blocks keep
	 * their side of the page whatever their script.
	 */
	pango_layout_set_auto_dir(l, auto_dir);
	/*
	 * No hyphen where a word is broken: in an address, a URL or an NHS
	 * number a hyphen that is not in the text would be copied by the
	 * reader.
	 */
	attrs = pango_attr_list_new();
	pango_attr_list_insert(attrs, pango_attr_insert_hyphens_new(FALSE));
	pango_layout_set_attributes(l, attrs);
	pango_attr_list_unref(attrs);
	return l;
}

/* Add attribute a over bytes [start, end) of the layout's text. */
static void
paper_attr(PangoLayout *l, PangoAttribute *a, size_t start, size_t end)
{
	PangoAttrList	*attrs;

	a->start_index = (guint)start;
	a->end_index = (guint)end;
	attrs = pango_attr_list_copy(pango_layout_get_attributes(l));
	pango_attr_list_insert(attrs, a);
	pango_layout_set_attributes(l, attrs);
	pango_attr_list_unref(attrs);
}

/*
 * Does s, in bold at size pt, fit on one line of width?  (A piece kept
 * from breaking that does not fit would run past the margin.)
 */
static int
paper_fits(struct paper_layouts *pl, const char *s, double size,
    double width)
{
	PangoLayout	*l;
	PangoRectangle	 log;

	l = paper_layout(pl->ctx, size, width, PANGO_ALIGN_LEFT, FALSE);
	pango_layout_set_width(l, -1);
	pango_layout_set_text(l, s, -1);
	paper_attr(l, pango_attr_weight_new(PANGO_WEIGHT_BOLD), 0, strlen(s));
	pango_layout_get_extents(l, NULL, &log);
	g_object_unref(l);
	return (double)log.width / PANGO_SCALE <= width;
}

/*
 * Make the layouts of doc (already checked); NULL, or a static reason if a
 * block at a fixed place would not fit its room (bytes and lines bound
 * most text, but not a run of very wide glyphs).
 */
static const char *
paper_layouts_make(struct paper_layouts *pl, const struct paper_doc *doc,
    const char *date)
{
	char			*s, *t, size[32];
	size_t			 i, n, a0, a1, c0, c1;

	memset(pl, 0, sizeof(*pl));
	pl->fontmap = pango_cairo_font_map_new();
	pl->ctx = paper_context(pl->fontmap);
	/* The body's own, whose base direction paper_paragraph sets. */
	pl->para_ctx = paper_context(pl->fontmap);

	/* Practice: the name bold and larger, then address and phone. */
	n = strlen(doc->practice_name);
	xasprintf(&s, "%s%s%.*s%s%s", doc->practice_name,
	    doc->practice_address != NULL &&
	    paper_trimlen(doc->practice_address) > 0 ? "\n" : "",
	    doc->practice_address != NULL ?
	    (int)paper_trimlen(doc->practice_address) : 0,
	    doc->practice_address != NULL ? doc->practice_address : "",
	    doc->practice_phone != NULL && *doc->practice_phone != '\0' ?
	    "\nTel: " : "",
	    doc->practice_phone != NULL ? doc->practice_phone : "");
	pl->header = paper_layout(pl->ctx, PAPER_SIZE_HEADER, PAPER_HEADER_W,
	    PANGO_ALIGN_RIGHT, FALSE);
	pango_layout_set_text(pl->header, s, -1);
	paper_attr(pl->header, pango_attr_weight_new(PANGO_WEIGHT_BOLD), 0, n);
	paper_attr(pl->header, pango_attr_size_new((int)(PAPER_SIZE_PRACTICE *
	    PANGO_SCALE)), 0, n);
	free(s);
	if (paper_height(pl->header) > PAPER_HEADER_MAX_H)
		return "practice name and address are too long to print";

	/* Patient: the largest size whose block fits the window. */
	xasprintf(&s, "%s%s%.*s", doc->patient_name,
	    doc->patient_address != NULL &&
	    paper_trimlen(doc->patient_address) > 0 ? "\n" : "",
	    doc->patient_address != NULL ?
	    (int)paper_trimlen(doc->patient_address) : 0,
	    doc->patient_address != NULL ? doc->patient_address : "");
	for (i = 0; i < nitems(paper_window_sizes); i++) {
		if (pl->window != NULL)
			g_object_unref(pl->window);
		pl->window = paper_layout(pl->ctx, paper_window_sizes[i],
		    PAPER_WINDOW_W, PANGO_ALIGN_LEFT, FALSE);
		pango_layout_set_text(pl->window, s, -1);
		if (paper_height(pl->window) <= PAPER_WINDOW_H)
			break;
	}
	free(s);
	if (paper_height(pl->window) > PAPER_WINDOW_MAX_H)
		return "patient name and address are too long to print";

	xasprintf(&s, "%s\nOur ref: L%lld", date, (long long)doc->letter_id);
	pl->ref = paper_layout(pl->ctx, PAPER_SIZE_BODY, PAPER_TEXT_W,
	    PANGO_ALIGN_LEFT, FALSE);
	pango_layout_set_text(pl->ref, s, -1);
	free(s);

	if (doc->subject != NULL && *doc->subject != '\0') {
		pl->subject = paper_layout(pl->ctx, PAPER_SIZE_SUBJECT,
		    PAPER_TEXT_W, PANGO_ALIGN_LEFT, TRUE);
		pango_layout_set_text(pl->subject, doc->subject, -1);
		paper_attr(pl->subject,
		    pango_attr_weight_new(PANGO_WEIGHT_BOLD), 0,
		    strlen(doc->subject));
	}

	pl->para = paper_layout(pl->para_ctx, PAPER_SIZE_BODY, PAPER_TEXT_W,
	    PANGO_ALIGN_LEFT, TRUE);

	if (doc->nattachments > 0) {
		s = xstrdup("Enclosures (not printed):");
		n = strlen(s);
		for (i = 0; i < doc->nattachments; i++) {
			paper_size(doc->attachments[i].size, size,
			    sizeof(size));
			xasprintf(&t, "%s\n%s (%s)", s,
			    doc->attachments[i].filename, size);
			free(s);
			s = t;
		}
		pl->enclosures = paper_layout(pl->ctx, PAPER_SIZE_BODY,
		    PAPER_TEXT_W, PANGO_ALIGN_LEFT, FALSE);
		pango_layout_set_text(pl->enclosures, s, -1);
		paper_attr(pl->enclosures,
		    pango_attr_weight_new(PANGO_WEIGHT_BOLD), 0, n);
		free(s);
	}

	if (doc->reply_address != NULL && *doc->reply_address != '\0') {
		/*
		 * The address and the code in bold, the two things to
		 * copy, and each kept on one line where it fits: broken at
		 * a hyphen, "L42-7KQD-" / "M3XA" reads as two things.
		 */
		a0 = strlen("To reply by email, write to ");
		a1 = a0 + strlen(doc->reply_address);
		c0 = a1 + strlen(" and put ");
		c1 = c0 + strlen(doc->reply_code);
		xasprintf(&s, "To reply by email, write to %s and put %s in "
		    "the subject.", doc->reply_address, doc->reply_code);
		pl->reply = paper_layout(pl->ctx, PAPER_SIZE_BODY,
		    PAPER_TEXT_W - 2 * PAPER_BOX_PAD, PANGO_ALIGN_LEFT, FALSE);
		pango_layout_set_text(pl->reply, s, -1);
		paper_attr(pl->reply,
		    pango_attr_weight_new(PANGO_WEIGHT_BOLD), a0, a1);
		paper_attr(pl->reply,
		    pango_attr_weight_new(PANGO_WEIGHT_BOLD), c0, c1);
		if (paper_fits(pl, doc->reply_address, PAPER_SIZE_BODY,
		    PAPER_TEXT_W - 2 * PAPER_BOX_PAD))
			paper_attr(pl->reply,
			    pango_attr_allow_breaks_new(FALSE), a0, a1);
		if (paper_fits(pl, doc->reply_code, PAPER_SIZE_BODY,
		    PAPER_TEXT_W - 2 * PAPER_BOX_PAD))
			paper_attr(pl->reply,
			    pango_attr_allow_breaks_new(FALSE), c0, c1);
		free(s);
		if (paper_height(pl->reply) + 2 * PAPER_BOX_PAD >
		    PAPER_REPLY_MAX_H)
			return "reply address and code are too long to print";
	}

	pl->footer = paper_layout(pl->ctx, PAPER_SIZE_FOOTER, PAPER_TEXT_W,
	    PANGO_ALIGN_CENTER, FALSE);
	/* Text now, so the counting pass can measure its height. */
	pango_layout_set_text(pl->footer, "Page 1 of 1", -1);
	return NULL;
}

/* Release the layouts, the context and the font map. */
static void
paper_layouts_free(struct paper_layouts *pl)
{
	PangoLayout	**l[] = { &pl->header, &pl->window, &pl->ref,
			    &pl->subject, &pl->para, &pl->enclosures,
			    &pl->reply, &pl->footer };
	size_t		  i;

	for (i = 0; i < nitems(l); i++)
		if (*l[i] != NULL) {
			g_object_unref(*l[i]);
			*l[i] = NULL;
		}
	if (pl->ctx != NULL)
		g_object_unref(pl->ctx);
	pl->ctx = NULL;
	if (pl->para_ctx != NULL)
		g_object_unref(pl->para_ctx);
	pl->para_ctx = NULL;
	if (pl->fontmap != NULL)
		g_object_unref(pl->fontmap);
	pl->fontmap = NULL;
}

/* Logical height of a layout, in points. */
static double
paper_height(PangoLayout *l)
{
	PangoRectangle	 log;

	pango_layout_get_extents(l, NULL, &log);
	return (double)log.height / PANGO_SCALE;
}

/* Finish the current page: its footer, then the page itself. */
static void
paper_page_end(struct paper_pass *pp)
{
	char		 buf[64];
	double		 h;

	if (pp->cr == NULL)
		return;
	snprintf(buf, sizeof(buf), "Page %d of %d", pp->page, pp->npages);
	pango_layout_set_text(pp->footer, buf, -1);
	h = paper_height(pp->footer);
	cairo_move_to(pp->cr, PAPER_MARGIN, PAPER_H - PAPER_MARGIN - h);
	pango_cairo_show_layout(pp->cr, pp->footer);
	cairo_show_page(pp->cr);
}

/*
 * Place the first nlines lines of a layout (all if -1), starting a new
 * page where one is full.
 */
static void
paper_flow(struct paper_pass *pp, PangoLayout *l, int nlines)
{
	PangoLayoutIter	*it;
	PangoRectangle	 log;
	double		 h;
	int		 baseline;

	if (nlines == 0)
		return;
	it = pango_layout_get_iter(l);
	do {
		pango_layout_iter_get_line_extents(it, NULL, &log);
		baseline = pango_layout_iter_get_baseline(it);
		h = (double)log.height / PANGO_SCALE;
		if (pp->y + h > pp->bottom && pp->y > PAPER_MARGIN) {
			paper_page_end(pp);
			pp->page++;
			pp->y = PAPER_MARGIN;
		}
		if (pp->cr != NULL) {
			/* log.x: where the line starts (right for RTL). */
			cairo_move_to(pp->cr, PAPER_MARGIN +
			    (double)log.x / PANGO_SCALE, pp->y +
			    (double)(baseline - log.y) / PANGO_SCALE);
			pango_cairo_show_layout_line(pp->cr,
			    pango_layout_iter_get_line_readonly(it));
		}
		pp->y += h;
	} while (--nlines != 0 && pango_layout_iter_next_line(it));
	pango_layout_iter_free(it);
}

/* Space between blocks; none at the top of a page. */
static void
paper_gap(struct paper_pass *pp, double gap)
{
	if (pp->y > PAPER_MARGIN)
		pp->y += gap;
}

/*
 * One paragraph, laid out in pieces of at most PAPER_PIECE bytes.  Whole
 * paragraphs would hurt twice: pango keeps widths in int Pango units
 * (1/1024 pt), and a paragraph some 300 000 characters wide overflows
 * them (pango 1.50 then drops most of the text without a word); and
 * breaking a long unbroken word costs time quadratic in its length (16 KB
 * of "x" take half a second).  So a piece is laid out, all its lines but
 * the last are placed, and the next piece starts where that last line
 * started: the seams fall on line starts and the wrapping reads as one
 * paragraph.  The direction pango found for the first piece (auto_dir)
 * is kept for the rest, so a long Arabic paragraph stays right to left.
 */
static void
paper_paragraph(struct paper_pass *pp, struct paper_layouts *pl,
    const char *p, size_t len)
{
	PangoLayout	*l = pl->para;
	PangoDirection	 dir;
	const char	*cut;
	int		 nlines, first = 1, start;

	while (len > PAPER_PIECE) {
		/* Between two characters, not before a combining mark. */
		cut = g_utf8_find_prev_char(p, p + PAPER_PIECE + 1);
		while (cut > p + PAPER_PIECE / 2 &&
		    g_unichar_ismark(g_utf8_get_char(cut)))
			cut = g_utf8_find_prev_char(p, cut);
		pango_layout_set_text(l, p, (int)(cut - p));
		nlines = pango_layout_get_line_count(l);
		if (nlines < 2) {
			/*
			 * The piece is one line (zero-width characters):
			 * place it whole, so every round makes progress.
			 */
			paper_flow(pp, l, -1);
			start = (int)(cut - p);
		} else {
			paper_flow(pp, l, nlines - 1);
			start = pango_layout_get_line_readonly(l,
			    nlines - 1)->start_index;
		}
		if (first) {
			dir = pango_layout_get_line_readonly(l, 0)->resolved_dir;
			pango_layout_set_auto_dir(l, FALSE);
			pango_context_set_base_dir(pl->para_ctx, dir);
			/* Without auto_dir, LEFT is no longer swapped. */
			pango_layout_set_alignment(l, dir == PANGO_DIRECTION_RTL ?
			    PANGO_ALIGN_RIGHT : PANGO_ALIGN_LEFT);
			pango_layout_context_changed(l);
			first = 0;
		}
		p += start;
		len -= (size_t)start;
	}
	pango_layout_set_text(l, p, (int)len);
	paper_flow(pp, l, -1);
	if (!first) {
		pango_layout_set_auto_dir(l, TRUE);
		pango_context_set_base_dir(pl->para_ctx, PANGO_DIRECTION_LTR);
		pango_layout_set_alignment(l, PANGO_ALIGN_LEFT);
		pango_layout_context_changed(l);
	}
}

/* The letter text, one LF-separated paragraph at a time. */
static void
paper_body(struct paper_pass *pp, struct paper_layouts *pl, const char *text)
{
	const char	*p = text, *end, *nl;
	size_t		 len;

	end = text + paper_trimlen(text);
	for (;;) {
		nl = memchr(p, '\n', (size_t)(end - p));
		len = (size_t)((nl != NULL ? nl : end) - p);
		if (len > 0 && p[len - 1] == '\r')
			len--;
		paper_paragraph(pp, pl, p, len);
		if (nl == NULL)
			break;
		p = nl + 1;
	}
}

/* The reply box, kept whole on one page. */
static void
paper_reply_box(struct paper_pass *pp, PangoLayout *l)
{
	double	 h = paper_height(l) + 2 * PAPER_BOX_PAD;

	paper_gap(pp, 2 * PAPER_GAP);
	if (pp->y + h > pp->bottom && pp->y > PAPER_MARGIN) {
		paper_page_end(pp);
		pp->page++;
		pp->y = PAPER_MARGIN;
	}
	if (pp->cr != NULL) {
		cairo_set_line_width(pp->cr, 0.8);
		cairo_rectangle(pp->cr, PAPER_MARGIN, pp->y, PAPER_TEXT_W, h);
		cairo_stroke(pp->cr);
		cairo_move_to(pp->cr, PAPER_MARGIN + PAPER_BOX_PAD,
		    pp->y + PAPER_BOX_PAD);
		pango_cairo_show_layout(pp->cr, l);
	}
	pp->y += h;
}

/* Place (and in the drawing pass draw) the whole letter. */
static void
paper_place(struct paper_pass *pp, struct paper_layouts *pl,
    const struct paper_doc *doc)
{
	double	 header_bottom, window_bottom, h;

	pp->page = 1;
	pp->bottom = PAPER_H - PAPER_MARGIN - paper_height(pl->footer) -
	    PAPER_FOOTER_GAP;
	if (pp->cr != NULL) {
		cairo_move_to(pp->cr, PAPER_W - PAPER_MARGIN - PAPER_HEADER_W,
		    PAPER_MARGIN);
		pango_cairo_show_layout(pp->cr, pl->header);
		cairo_move_to(pp->cr, PAPER_WINDOW_X, PAPER_WINDOW_Y);
		pango_cairo_show_layout(pp->cr, pl->window);
	}
	header_bottom = PAPER_MARGIN + paper_height(pl->header);
	h = paper_height(pl->window);
	window_bottom = PAPER_WINDOW_Y + (h > PAPER_WINDOW_H ? h :
	    PAPER_WINDOW_H);
	pp->y = (header_bottom > window_bottom ? header_bottom :
	    window_bottom) + 2 * PAPER_GAP;

	paper_flow(pp, pl->ref, -1);
	if (pl->subject != NULL) {
		paper_gap(pp, PAPER_GAP);
		paper_flow(pp, pl->subject, -1);
	}
	if (*doc->text != '\0') {
		paper_gap(pp, PAPER_GAP);
		paper_body(pp, pl, doc->text);
	}
	if (pl->enclosures != NULL) {
		paper_gap(pp, 1.5 * PAPER_GAP);
		paper_flow(pp, pl->enclosures, -1);
	}
	if (pl->reply != NULL)
		paper_reply_box(pp, pl->reply);
	paper_page_end(pp);
}

/* cairo's write function: all of data to the temporary file. */
static cairo_status_t
paper_write(void *closure, const unsigned char *data, unsigned int len)
{
	struct paper_out	*out = closure;
	ssize_t			 r;

	if (out->error != 0)
		return CAIRO_STATUS_WRITE_ERROR;
	while (len > 0) {
		r = write(out->fd, data, len);
		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0) {
			out->error = r == 0 ? EIO : errno;
			return CAIRO_STATUS_WRITE_ERROR;
		}
		data += r;
		len -= (unsigned int)r;
	}
	return CAIRO_STATUS_SUCCESS;
}

/* Pick the reason for a failed file operation by its errno. */
static const char *
paper_errno_reason(int e, const char *denied, const char *noent,
    const char *other)
{
	switch (e) {
	case EACCES:
	case EPERM:
	case EROFS:
		return denied;
	case ENOENT:
	case ENOTDIR:
		return noent;
	default:
		return other;
	}
}

