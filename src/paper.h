/*
 * paper.h - the printable letter: a PDF for the paper queue, made with
 * cairo and pango (the only module that links them).
 *
 * A4 pages, 20 mm margins: the practice header (name, postal address,
 * phone) top right; the patient's address block positioned for a DL
 * window envelope (left, 45-85 mm from the top); date and "Our ref: L<id>";
 * the subject in bold; the letter text, wrapped and paginated with page
 * numbers "Page N of M"; the names of any attachments (their content is
 * not printed: the staff print them from "sealpostctl letter show"); and a
 * reply box at the end: "To reply by email, write to <reply address> and
 * put <reply code> in the subject", so the patient's answer joins the same
 * conversation.  The HTML body is not rendered (text only; when a letter
 * has HTML but no text, the caller gives a text rendering).
 *
 * Input strings are UTF-8 (invalid sequences are refused, not guessed);
 * pango handles shaping and any script the installed fonts cover
 * (fonts-dejavu-core is the declared dependency).
 */
#ifndef SEALPOST_PAPER_H
#define SEALPOST_PAPER_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct paper_attachment_name {
	const char	*filename;
	size_t		 size;		/* bytes */
};

struct paper_doc {
	const char	*practice_name;
	const char	*practice_address;	/* lines separated by LF; NULL */
	const char	*practice_phone;	/* NULL */
	const char	*patient_name;
	const char	*patient_address;	/* LF-separated; NULL: name only */
	int64_t		 letter_id;
	time_t		 date;			/* the letter's */
	const char	*subject;		/* NULL or "" */
	const char	*text;			/* the body, LF line ends */
	const struct paper_attachment_name *attachments;
	size_t		 nattachments;
	const char	*reply_address;		/* NULL: no reply box */
	const char	*reply_code;		/* e.g. "L42-7KQD-M3XA" */
};

/*
 * Render to a PDF file at path (created 0600, replaced atomically: written
 * to path.tmp then renamed).  0, or -1 with a static reason in *error_r.
 * *pages_r (if not NULL) gets the page count.
 */
int	 paper_render_pdf(const struct paper_doc *, const char *path,
	    int *pages_r, const char **error_r);

#endif
