/*
 * fetch.c - the IMAP intake worker and IMAP APPEND, through libetpan.
 *
 * Owns one worker thread per watched mailbox (struct fetch), each with
 * one IMAP session at a time (struct fetch_sess), and the one-shot
 * sessions of fetch_append().  The TCP connection is opened here, not by
 * libetpan, so that the connect timeout, the FD_SETSIZE check, the
 * loopback check for plaintext and fetch_stop() are ours; TLS is
 * libetpan's, verified with tls_verify_stream() before LOGIN.
 *
 * Public: fetch_start, fetch_kick, fetch_get_stats, fetch_stop,
 * fetch_append.
 *
 * Worker states (fetch_enter_state() logs each change at debug level):
 *
 *   BACKOFF <------------------- any error (session closed) --------.
 *      |  (1 s doubling to 5 min; fetch_kick() cuts it short)       |
 *      v                                                            |
 *   CONNECT: TCP, implicit TLS or STARTTLS, verified, CAPABILITY,   |
 *      |     LOGIN (AUTHENTICATE PLAIN under LOGINDISABLED),        |
 *      |     CAPABILITY, LIST/CREATE the two folders, SELECT        |
 *      v                                                            |
 *   ROUND: UID SEARCH UNDELETED, UID FETCH (UID RFC822.SIZE),  -----'
 *      |   per message BODY.PEEK[], process(), move
 *      v        ^
 *   WAIT: IDLE until the server says something, idle_restart, a kick
 *         or a stop; without IDLE a sleep of poll_interval
 *
 *   fetch_stop(): LOGOUT and the thread ends (from any state).
 *
 * Why UID SEARCH UNDELETED rather than ALL: without MOVE and UIDPLUS a
 * copied message can only be expunged with a plain EXPUNGE, which is
 * not sent while another \Deleted message is in the mailbox (it would
 * expunge that too); the copied message then stays, flagged \Deleted,
 * and must not be handed to process() again.  A message another client
 * flagged \Deleted is about to be expunged and is not taken either.
 *
 * Untrusted input: libetpan parses every server response.  Each read
 * goes through a small low-level stream (fetch_low) that bounds the
 * bytes one command may read (its response included literals: max_size
 * plus a margin for the message fetch, FETCH_MAX_RESPONSE otherwise),
 * refuses a literal announced larger than what is left of that budget
 * before libetpan sees the announcement (libetpan allocates the
 * announced size at once, up to 4 GB), and with it anything that would
 * put its own view of the stream out of step with libetpan's (see
 * fetch_low_scan), and turns end-of-file into an error (libetpan's
 * literal reader would spin on it).
 *
 * Error policy: every failure closes the session and is one line in
 * stats.last_error and, when it differs from the last one, in the log;
 * no line carries message content, a password or an address (server
 * reply texts are cleaned and truncated).  libetpan's logger is never
 * installed.  Thread safety: see fetch.h; the struct fetch lock guards
 * the stats, the stop flag and the published socket.
 */

#include "build.h"

#include <sys/types.h>
#include <sys/select.h>
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <libetpan/libetpan.h>

#include "fetch.h"
#include "log.h"
#include "relay.h"
#include "tls.h"
#include "util.h"

/* Exported by libetpan 1.9.4, declared in a header Debian does not ship. */
int	 mailstream_cancel_get_fd(struct mailstream_cancel *);

/* Above max_size, for the FETCH response around the message literal. */
#define FETCH_BODY_MARGIN	(64u * 1024)
/* libetpan's stream buffer. */
#define FETCH_STREAM_BUFFER	8192
#define FETCH_BACKOFF_MIN	1
#define FETCH_BACKOFF_MAX	300
#define FETCH_LOGOUT_TIMEOUT	2
#define FETCH_MAX_NAME		200
#define FETCH_MAX_CRED		256

enum fetch_state {
	FETCH_S_BACKOFF,
	FETCH_S_CONNECT,
	FETCH_S_ROUND,
	FETCH_S_WAIT,
	FETCH_S_STOPPED
};

/* The read budget around libetpan's own low-level stream. */
struct fetch_low {
	mailstream_low	*inner;
	size_t		 budget;	/* bytes this command may still read */
	int		 over;		/* the budget ran out */
	int		 eof;		/* the peer closed */
	/* The byte stream as fetch_low_scan() follows it. */
	size_t		 skip;		/* literal octets still to pass */
	int		 lines;		/* lines seen (the greeting is 0) */
	int		 cls;		/* where in the line's first words */
	int		 status;	/* the line is a status or "+" line */
	int		 quoted, escaped;
	int		 brace;		/* 0, 1 in "{digits", 2 after "}", */
					/* 3 after "}" CR */
	int		 digits;
	uint64_t	 value;
	int		 star;		/* the line's first token is "*" */
	char		 w[16];		/* the atom being read, upper case */
	size_t		 wl;
	int		 after;		/* what must follow a keyword */
	int		 greetcode;	/* the greeting's response code */
	char		 word[8];	/* its second word, upper case */
	size_t		 wlen;
	const char	*why;		/* why a read was refused */
};

struct fetch {
	unsigned int	 id;
	/* Parameters, deep copies. */
	struct fetch_params p;
	char		*host, *tls_name, *ca_file, *username, *password;
	char		*mailbox, *processed, *aside;

	pthread_t	 thread;
	pthread_mutex_t	 lock;		/* everything below */
	pthread_cond_t	 cond;		/* done */
	int		 wake[2];	/* self-pipe: kick, stop */
	int		 stopping;
	int		 done;
	int		 fd;		/* the session socket, or -1 */
	struct fetch_stats stats;

	/* Worker-only. */
	enum fetch_state state;
	char		 logged[200];	/* the last error logged */
};

/* One IMAP session: the worker's or fetch_append()'s. */
struct fetch_sess {
	struct fetch	*f;		/* NULL for fetch_append() */
	const struct fetch_server *srv;
	const char	*name;		/* verified name and SNI */
	mailimap	*imap;
	struct fetch_low *low;		/* NULL until the stream exists */
	int		 fd;
	int		 perm;		/* the error will not go away by itself */
	int		 tls_done;
	int		 has_move, has_uidplus, has_idle;
	char		 err[200];
};

/* A message found by a round. */
struct fetch_item {
	uint32_t	 uid;
	uint32_t	 size;
	int		 have_size;
};

static void	 fetch_global_init(void);
static const char *fetch_check_server(const struct fetch_server *);
static const char *fetch_check_name(const char *);
static const char *fetch_check_cred(const char *);
static void	 fetch_enter_state(struct fetch *, enum fetch_state);
static const char *fetch_strstate(enum fetch_state);
static void	 fetch_fail(struct fetch_sess *, int, const char *, ...)
		    __attribute__((format(printf, 3, 4)));
static void	 fetch_fail_imap(struct fetch_sess *, const char *, int);
static int	 fetch_stopping(struct fetch *);
static void	 fetch_publish_fd(struct fetch_sess *, int);
static int	 fetch_connect_tcp(struct fetch_sess *);
static int	 fetch_connect_stopped(void *);
static void	 fetch_connect_publish(void *, int);
static mailstream_low *fetch_low_wrap(struct fetch_sess *, mailstream_low *);
static void	 fetch_low_newline(struct fetch_low *);
static int	 fetch_low_classify(struct fetch_low *, char);
static int	 fetch_atom_char(char);
static int	 fetch_low_atom(struct fetch_low *, char);
static int	 fetch_low_scan(struct fetch_low *, const char *, size_t);
static ssize_t	 fetch_low_read(mailstream_low *, void *, size_t);
static ssize_t	 fetch_low_write(mailstream_low *, const void *, size_t);
static int	 fetch_low_close(mailstream_low *);
static int	 fetch_low_get_fd(mailstream_low *);
static void	 fetch_low_free(mailstream_low *);
static void	 fetch_low_cancel(mailstream_low *);
static struct mailstream_cancel *fetch_low_get_cancel(mailstream_low *);
static carray	*fetch_low_get_certificate_chain(mailstream_low *);
static int	 fetch_stream_fds_ok(mailstream_low *);
static void	 fetch_budget(struct fetch_sess *, size_t);
static void	 fetch_set_timeout(struct fetch_sess *, int);
static int	 fetch_verify(struct fetch_sess *, mailstream_low *);
static int	 fetch_starttls(struct fetch_sess *);
static int	 fetch_capability(struct fetch_sess *);
static int	 fetch_login(struct fetch_sess *);
static int	 fetch_open(struct fetch_sess *);
static int	 fetch_open_stream(struct fetch_sess *, mailstream_low *);
static void	 fetch_close(struct fetch_sess *, int);
static int	 fetch_folder_exists(struct fetch_sess *, const char *, int *);
static int	 fetch_ensure_folder(struct fetch_sess *, const char *);
static int	 fetch_select(struct fetch_sess *);
static int	 fetch_search(struct fetch_sess *, int, uint32_t **, size_t *);
static struct mailimap_msg_att_static *fetch_att(struct mailimap_msg_att *,
		    int);
static int	 fetch_sizes(struct fetch_sess *, struct fetch_item *, size_t);
static int	 fetch_body(struct fetch_sess *, uint32_t, clist **,
		    const char **, size_t *, int *);
static int	 fetch_move(struct fetch_sess *, uint32_t, const char *);
static int	 fetch_one(struct fetch_sess *, struct fetch_item *,
		    enum fetch_verdict *);
static int	 fetch_round(struct fetch_sess *, int *, int *);
static int	 fetch_wait(struct fetch_sess *, int);
static int	 fetch_sleep(struct fetch *, int);
static void	 fetch_drain(struct fetch *);
static void	 fetch_error(struct fetch *, const char *);
static void	*fetch_main(void *);
static struct fetch *fetch_new(const struct fetch_params *);
static void	 fetch_free(struct fetch *);
static int	 fetch_cmp_uid(const void *, const void *);

static mailstream_low_driver fetch_low_driver = {
	fetch_low_read,
	fetch_low_write,
	fetch_low_close,
	fetch_low_get_fd,
	fetch_low_free,
	fetch_low_cancel,
	fetch_low_get_cancel,
	fetch_low_get_certificate_chain,
	NULL,
	NULL,
	NULL
};

static pthread_once_t	 fetch_once = PTHREAD_ONCE_INIT;
static int		 fetch_init_ok;
static pthread_mutex_t	 fetch_id_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned int	 fetch_next_id;

/* SIGPIPE, libetpan's global delay and SASL: the relay's setup. */
static void
fetch_global_init(void)
{
	fetch_init_ok = relay_global_init() == 0;
}

static const char *
fetch_strstate(enum fetch_state s)
{
	switch (s) {
	case FETCH_S_BACKOFF:
		return "backoff";
	case FETCH_S_CONNECT:
		return "connect";
	case FETCH_S_ROUND:
		return "round";
	case FETCH_S_WAIT:
		return "wait";
	case FETCH_S_STOPPED:
		return "stopped";
	}
	log_panic("fetch: unknown state %d", (int)s);
}

static void
fetch_enter_state(struct fetch *f, enum fetch_state s)
{
	if (f->state != s)
		log_debug("fetch %u: %s -> %s", f->id,
		    fetch_strstate(f->state), fetch_strstate(s));
	f->state = s;
}

/*
 * A mailbox name before it goes into a command: printable ASCII only
 * (no modified UTF-7 encoder here, so '&' is refused rather than
 * mis-sent), no LIST wildcards (LIST checks that a folder exists).
 */
static const char *
fetch_check_name(const char *n)
{
	const unsigned char	*p;

	if (n == NULL || *n == '\0')
		return "is empty";
	if (strlen(n) > FETCH_MAX_NAME)
		return "is longer than 200 octets";
	for (p = (const unsigned char *)n; *p != '\0'; p++) {
		if (*p < 0x20 || *p >= 0x7f)
			return "contains a control or non-ASCII octet";
		if (*p == '&' || *p == '*' || *p == '%')
			return "contains '&', '*' or '%'";
	}
	return NULL;
}

/* A user name or password: libetpan quotes it but passes CR/LF raw. */
static const char *
fetch_check_cred(const char *c)
{
	const unsigned char	*p;

	if (c == NULL || *c == '\0')
		return "is empty";
	if (strlen(c) > FETCH_MAX_CRED)
		return "is longer than 256 octets";
	for (p = (const unsigned char *)c; *p != '\0'; p++)
		if (*p < 0x20 || *p == 0x7f)
			return "contains a control character";
	return NULL;
}

/* Server parameters that can be refused before connecting. */
static const char *
fetch_check_server(const struct fetch_server *s)
{
	if (s->host == NULL || *s->host == '\0' || strlen(s->host) > 253)
		return "server: no host";
	if (strpbrk(s->host, " \t\r\n") != NULL)
		return "server: host contains white space";
	if (s->tls_name != NULL && (*s->tls_name == '\0' ||
	    strpbrk(s->tls_name, " \t\r\n") != NULL))
		return "server: bad tls_name";
	if (s->port == 0)
		return "server: no port";
	switch (s->tls) {
	case RELAY_TLS_STARTTLS:
	case RELAY_TLS_IMPLICIT:
		break;
	case RELAY_TLS_NONE:
		if (!s->allow_plaintext)
			return "server: tls none needs allow_plaintext";
		if (!relay_host_is_loopback(s->host))
			return "server: plaintext only to a loopback host";
		break;
	default:
		return "server: unknown tls mode";
	}
	if (s->connect_timeout <= 0 || s->command_timeout <= 0)
		return "server: timeouts must be positive";
	if (fetch_check_cred(s->username) != NULL)
		return "server: username is empty, too long or has controls";
	if (fetch_check_cred(s->password) != NULL)
		return "server: password is empty, too long or has controls";
	return NULL;
}

/* Record the session's error (the first one wins). */
static void
fetch_fail(struct fetch_sess *s, int perm, const char *fmt, ...)
{
	va_list	 ap;

	if (s->err[0] != '\0')
		return;
	va_start(ap, fmt);
	vsnprintf(s->err, sizeof(s->err), fmt, ap);
	va_end(ap);
	s->perm = perm;
}

/*
 * A libetpan error for command what: the server's NO/BAD text, or why
 * the stream broke.  Only a tagged NO is taken from imap_response.
 */
static void
fetch_fail_imap(struct fetch_sess *s, const char *what, int r)
{
	char	 text[120];

	if (s->low != NULL && s->low->over) {
		fetch_fail(s, 0, "%s: %s", what, s->low->why != NULL ?
		    s->low->why : "response longer than allowed");
		return;
	}
	if (s->f != NULL && fetch_stopping(s->f)) {
		fetch_fail(s, 0, "%s: stopped", what);
		return;
	}
	switch (r) {
	case MAILIMAP_ERROR_STREAM:
		if (s->low != NULL && s->low->eof)
			fetch_fail(s, 0, "%s: connection closed by the server",
			    what);
		else
			fetch_fail(s, 0, "%s: connection lost or timed out",
			    what);
		return;
	case MAILIMAP_ERROR_PARSE:
		fetch_fail(s, 0, "%s: malformed response", what);
		return;
	case MAILIMAP_ERROR_FATAL:
	case MAILIMAP_ERROR_DONT_ACCEPT_CONNECTION:
		fetch_fail(s, 0, "%s: server said BYE", what);
		return;
	case MAILIMAP_ERROR_PROTOCOL:
		fetch_fail(s, 0, "%s: BAD or unexpected response", what);
		return;
	case MAILIMAP_ERROR_MEMORY:
		fetch_fail(s, 0, "%s: out of memory", what);
		return;
	}
	/* Set by every parsed reply; NULL when none was read. */
	if (s->imap == NULL || s->imap->imap_response == NULL) {
		fetch_fail(s, 0, "%s: failed before any reply", what);
		return;
	}
	util_clean_text(text, sizeof(text), s->imap->imap_response);
	fetch_fail(s, 0, "%s: NO %s", what, text);
}

static int
fetch_stopping(struct fetch *f)
{
	int	 r;

	pthread_mutex_lock(&f->lock);
	r = f->stopping;
	pthread_mutex_unlock(&f->lock);
	return r;
}

/*
 * Make the socket visible to fetch_stop() (which shuts it down when the
 * worker does not finish in time), or hide it before it is closed.
 */
static void
fetch_publish_fd(struct fetch_sess *s, int fd)
{
	s->fd = fd;
	if (s->f == NULL)
		return;
	pthread_mutex_lock(&s->f->lock);
	s->f->fd = fd;
	pthread_mutex_unlock(&s->f->lock);
}

/*
 * TCP connect within connect_timeout (util_connect_tcp), in slices so
 * that fetch_stop() is seen.  Returns the blocking socket (published)
 * or -1; a refused plaintext address is a permanent failure.
 */
static int
fetch_connect_tcp(struct fetch_sess *s)
{
	struct util_connect	 uc;
	char			 err[sizeof(s->err)];
	int			 fd, refused;

	memset(&uc, 0, sizeof(uc));
	uc.host = s->srv->host;
	uc.port = s->srv->port;
	uc.timeout = s->srv->connect_timeout;
	uc.loopback_only = s->srv->tls == RELAY_TLS_NONE;
	uc.stopword = "stopped";
	uc.stopped = fetch_connect_stopped;
	uc.publish = fetch_connect_publish;
	uc.arg = s;
	if ((fd = util_connect_tcp(&uc, err, sizeof(err), &refused)) == -1)
		fetch_fail(s, refused, "%s", err);
	return fd;
}

/* util_connect_tcp's view of a session. */
static int
fetch_connect_stopped(void *arg)
{
	struct fetch_sess	*s = arg;

	return s->f != NULL && fetch_stopping(s->f);
}

static void
fetch_connect_publish(void *arg, int fd)
{
	fetch_publish_fd(arg, fd);
}

/* ---- the bounded low-level stream ------------------------------------- */

static mailstream_low *
fetch_low_wrap(struct fetch_sess *s, mailstream_low *inner)
{
	struct fetch_low	*l;
	mailstream_low		*low;

	l = xcalloc(1, sizeof(*l));
	l->inner = inner;
	l->budget = FETCH_MAX_RESPONSE;
	if ((low = mailstream_low_new(l, &fetch_low_driver)) == NULL)
		log_fatalx("fetch: out of memory");
	s->low = l;
	return low;
}

/* Line classification states of fetch_low_scan(). */
#define FETCH_CLS_START		0	/* at the line's first octet */
#define FETCH_CLS_TOKEN		1	/* in its first token */
#define FETCH_CLS_SPACE		2	/* after it */
#define FETCH_CLS_WORD		3	/* in the second word */
#define FETCH_CLS_DONE		4

/* A new line (not the rest of one a literal interrupted). */
static void
fetch_low_newline(struct fetch_low *l)
{
	l->lines++;
	l->cls = FETCH_CLS_START;
	l->status = 0;
	l->wlen = 0;
	l->star = 0;
	l->wl = 0;
	l->after = 0;
	l->greetcode = 0;
}

/* An ATOM-CHAR, ASCII only (libetpan takes 8-bit ones too). */
static int
fetch_atom_char(char c)
{
	return c > ' ' && c < 0x7f && strchr("(){%*\"\\]", c) == NULL;
}

/*
 * Atoms outside quoted strings and literals, against the response
 * parts that libetpan 1.9.4 (Debian's too) crashes or leaks on:
 *   [PERMANENTFLAGS ( whose first flag does not parse: NULL list freed;
 *   a quoted string or literal in a flag list (PERMANENTFLAGS, FLAGS):
 *     flags are atoms, and libetpan leaks such a string on errors;
 *   [CAPABILITY ] and "* CAPABILITY" with no name: a NULL list that
 *     mailimap_has_extension() and mailimap_capability() walk;
 *   BODY (, BODYSTRUCTURE, ENVELOPE and BODY[section] (never asked
 *     for): their parsers leak on malformed input, once per response;
 *   in the greeting, a response code but CAPABILITY or ALERT: libetpan
 *     parses the greeting without a parser context, and any string in
 *     it (PERMANENTFLAGS, BADCHARSET, ...) dereferences NULL.
 * -1 to refuse.
 */
static int
fetch_low_atom(struct fetch_low *l, char c)
{
	int	 sp = c == ' ' || c == '\t';

	switch (l->after) {
	case 1:		/* [PERMANENTFLAGS, before "(" */
		if (sp)
			return 0;
		l->after = c == '(' ? 2 : 0;
		if (c == '(')
			return 0;
		break;
	case 2:		/* the first flag */
		if (c == '\\') {
			l->after = 3;
			return 0;
		}
		/* FALLTHROUGH */
	case 3:		/* after "\\" */
		/* "\\*", a flag, or the end of an empty list */
		if (!fetch_atom_char(c) && (l->after == 3 ? c != '*' :
		    c != ')')) {
			l->why = "PERMANENTFLAGS that libetpan cannot read";
			return -1;
		}
		l->after = c == ')' ? 0 : 6;
		break;
	case 7:		/* FLAGS, before "(" */
		if (sp)
			return 0;
		l->after = c == '(' ? 6 : 0;
		if (c == '(')
			return 0;
		break;
	case 6:		/* in a flag list */
		if (c == '"' || c == '{') {
			l->why = "a flag list with a string";
			return -1;
		}
		if (c == ')' || c == ']' || c == '\r' || c == '\n')
			l->after = 0;
		break;
	case 5:		/* the greeting, after its status word */
		l->wl = 0;
		if (sp)
			return 0;
		l->greetcode = c == '[';
		l->after = 0;
		break;
	case 4:		/* CAPABILITY, before the first name */
		if (sp)
			return 0;
		if (c == ']' || c == '\r' || c == '\n') {
			l->why = "CAPABILITY with no capability";
			return -1;
		}
		l->after = 0;
		break;
	}
	if (fetch_atom_char(c)) {
		if (l->wl < sizeof(l->w))
			l->w[l->wl] = c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c;
		l->wl++;
		return 0;
	}
#define FETCH_ATOM(a)	(l->wl == sizeof(a) - 1 && \
			    memcmp(l->w, a, sizeof(a) - 1) == 0)
	if (l->greetcode && !FETCH_ATOM("[CAPABILITY") &&
	    !FETCH_ATOM("[ALERT")) {
		l->why = "a greeting code libetpan cannot read";
		return -1;
	}
	l->greetcode = 0;
	if (!l->status && l->wl >= 5 && memcmp(l->w, "BODY[", 5) == 0 &&
	    (l->wl != 5 || c != ']')) {
		l->why = "a BODY section never asked for";
		return -1;
	}
	if (FETCH_ATOM("[PERMANENTFLAGS"))
		l->after = 1;
	else if (!l->status && FETCH_ATOM("FLAGS"))
		l->after = 7;
	else if (FETCH_ATOM("[CAPABILITY") ||
	    (l->star && FETCH_ATOM("CAPABILITY")))
		l->after = 4;
	else if (!l->status && (FETCH_ATOM("BODYSTRUCTURE") ||
	    FETCH_ATOM("ENVELOPE") || (FETCH_ATOM("BODY") &&
	    (sp || c == '(')))) {
		l->why = "BODYSTRUCTURE, ENVELOPE or BODY never asked for";
		return -1;
	}
#undef FETCH_ATOM
	/* A keyword just read: c is the first octet after it. */
	if (l->wl > 0 && (l->after == 1 || l->after == 4 || l->after == 7)) {
		l->wl = 0;
		return fetch_low_atom(l, c);
	}
	l->wl = 0;
	return 0;
}

/*
 * The line's first two words decide whether it is a status line
 * ("* OK|NO|BAD|BYE|PREAUTH", "tag OK|NO|BAD") or a "+" line: libetpan
 * reads the rest of those as text, where "{n}" announces nothing.
 * Spaces and tabs as libetpan's lenient parser takes them.  -1 for a
 * BYE greeting: libetpan 1.9.4 leaks the parsed greeting on it.
 */
static int
fetch_low_classify(struct fetch_low *l, char c)
{
	int	 sp = c == ' ' || c == '\t', end = c == '\r' || c == '\n';

	switch (l->cls) {
	case FETCH_CLS_START:
		if (c == '+') {
			l->status = 1;
			l->cls = FETCH_CLS_DONE;
			break;
		}
		l->star = c == '*';
		l->cls = end ? FETCH_CLS_DONE : sp ? FETCH_CLS_SPACE :
		    FETCH_CLS_TOKEN;
		break;
	case FETCH_CLS_TOKEN:
		if (sp)
			l->cls = FETCH_CLS_SPACE;
		else if (end)
			l->cls = FETCH_CLS_DONE;
		else
			l->star = 0;	/* a tag */
		break;
	case FETCH_CLS_SPACE:
		if (sp)
			break;
		l->cls = FETCH_CLS_WORD;
		/* FALLTHROUGH */
	case FETCH_CLS_WORD:
		if (!sp && !end) {
			if (l->wlen < sizeof(l->word))
				l->word[l->wlen] = c >= 'a' && c <= 'z' ?
				    c - 'a' + 'A' : c;
			l->wlen++;
			break;
		}
		l->cls = FETCH_CLS_DONE;
#define FETCH_WORD(w)	(l->wlen == sizeof(w) - 1 && \
			    memcmp(l->word, w, sizeof(w) - 1) == 0)
		l->status = FETCH_WORD("OK") || FETCH_WORD("NO") ||
		    FETCH_WORD("BAD") || (l->star &&
		    (FETCH_WORD("BYE") || FETCH_WORD("PREAUTH")));
		/* The greeting's code, if any, comes next. */
		if (l->lines == 0 && l->status)
			l->after = 5;
		if (l->lines == 0 && l->star && FETCH_WORD("BYE")) {
			l->why = "server said BYE";
			return -1;
		}
#undef FETCH_WORD
		break;
	}
	return 0;
}

/*
 * Follow the byte stream for literal announcements, as libetpan will
 * read it:
 *   literal = "{" number "}" CRLF *CHAR8
 * is followed by number octets that are data, not lines, and libetpan
 * allocates number octets as soon as it reads the announcement.  So
 * before libetpan sees them, -1 (refused) for: a number of more than 12
 * digits or larger than the budget left, anywhere; outside a quoted
 * string, "{digits}" not followed by the line's end (libetpan takes it
 * for a literal all the same, a workaround for Lotus Domino); a status
 * line ending in one (libetpan reads it as text, and skipping its
 * octets here would leave the next ones unchecked); a BYE greeting
 * (fetch_low_classify); and what fetch_low_atom() lists.  The octets of a literal are skipped, so that
 * a message may contain anything.
 */
static int
fetch_low_scan(struct fetch_low *l, const char *p, size_t n)
{
	size_t		 i, k;
	char		 c;

	for (i = 0; i < n; i++) {
		if (l->skip > 0) {
			k = l->skip < n - i ? l->skip : n - i;
			l->skip -= k;
			i += k - 1;
			continue;
		}
		c = p[i];
		if (l->cls != FETCH_CLS_DONE && fetch_low_classify(l, c) == -1)
			return -1;
		if (!l->quoted && fetch_low_atom(l, c) == -1)
			return -1;
		switch (l->brace) {
		case 1:
			if (c >= '0' && c <= '9') {
				if (++l->digits > 12)
					goto big;
				l->value = l->value * 10 + (uint64_t)(c - '0');
				continue;
			}
			l->brace = 0;
			if (c != '}' || l->digits == 0)
				break;
			if (l->value > l->budget)
				goto big;
			if (!l->quoted)
				l->brace = 2;
			continue;
		case 2:
			if (c == '\r') {
				l->brace = 3;
				continue;
			}
			/* FALLTHROUGH */
		case 3:
			if (c != '\n') {
				l->why = "literal not at the end of a line";
				return -1;
			}
			l->brace = 0;
			if (l->status) {
				l->why = "literal at the end of a status line";
				return -1;
			}
			/* The line goes on after the literal. */
			l->skip = (size_t)l->value;
			l->wl = 0;
			l->after = 0;
			l->quoted = l->escaped = 0;
			continue;
		}
		if (c == '\n') {
			l->quoted = l->escaped = 0;
			fetch_low_newline(l);
			continue;
		}
		if (l->quoted) {
			if (l->escaped)
				l->escaped = 0;
			else if (c == '\\')
				l->escaped = 1;
			else if (c == '"')
				l->quoted = 0;
		} else if (c == '"')
			l->quoted = 1;
		if (c == '{') {
			l->brace = 1;
			l->digits = 0;
			l->value = 0;
		}
	}
	return 0;
 big:
	l->why = "response longer than allowed";
	return -1;
}

/*
 * Read through the budget.  End-of-file becomes an error: libetpan's
 * literal reader loops on a zero-byte read until it has the announced
 * size.
 */
static ssize_t
fetch_low_read(mailstream_low *low, void *buf, size_t count)
{
	struct fetch_low	*l = low->data;
	ssize_t			 r;

	if (l->budget == 0) {
		l->over = 1;
		if (l->why == NULL)
			l->why = "response longer than allowed";
		return -1;
	}
	if (count > l->budget)
		count = l->budget;
	r = mailstream_low_read(l->inner, buf, count);
	if (r == 0) {
		l->eof = 1;
		return -1;
	}
	if (r > 0) {
		l->budget -= (size_t)r;
		if (fetch_low_scan(l, buf, (size_t)r) == -1) {
			l->over = 1;
			l->budget = 0;
			return -1;
		}
	}
	return r;
}

static ssize_t
fetch_low_write(mailstream_low *low, const void *buf, size_t count)
{
	struct fetch_low	*l = low->data;

	return mailstream_low_write(l->inner, buf, count);
}

static int
fetch_low_close(mailstream_low *low)
{
	struct fetch_low	*l = low->data;

	return mailstream_low_close(l->inner);
}

static int
fetch_low_get_fd(mailstream_low *low)
{
	struct fetch_low	*l = low->data;

	return mailstream_low_get_fd(l->inner);
}

/* Free this layer and the inner one (which does not close the fd). */
static void
fetch_low_free(mailstream_low *low)
{
	struct fetch_low	*l = low->data;

	mailstream_low_free(l->inner);
	free(l);
	low->data = NULL;
	free(low);
}

static void
fetch_low_cancel(mailstream_low *low)
{
	struct fetch_low	*l = low->data;

	mailstream_low_cancel(l->inner);
}

static struct mailstream_cancel *
fetch_low_get_cancel(mailstream_low *low)
{
	struct fetch_low	*l = low->data;

	return mailstream_low_get_cancel(l->inner);
}

static carray *
fetch_low_get_certificate_chain(mailstream_low *low)
{
	struct fetch_low	*l = low->data;

	return mailstream_low_get_certificate_chain(l->inner);
}

/* Every descriptor libetpan will select() on is below FD_SETSIZE? */
static int
fetch_stream_fds_ok(mailstream_low *low)
{
	struct mailstream_cancel	*cancel;

	if (low == NULL || mailstream_low_get_fd(low) >= FD_SETSIZE)
		return 0;
	cancel = mailstream_low_get_cancel(low);
	return cancel == NULL || mailstream_cancel_get_fd(cancel) < FD_SETSIZE;
}

/* The bytes the next command may read. */
static void
fetch_budget(struct fetch_sess *s, size_t n)
{
	if (s->low != NULL) {
		s->low->budget = n;
		s->low->over = 0;
		s->low->why = NULL;
	}
}

/* The timeout of the next reads and writes, on the layer that waits. */
static void
fetch_set_timeout(struct fetch_sess *s, int secs)
{
	if (s->low != NULL)
		mailstream_low_set_timeout(s->low->inner, secs);
	if (s->imap != NULL)
		mailimap_set_timeout(s->imap, secs);
}

/*
 * A new TLS layer: check its descriptors, verify the peer (tls.h wants
 * libetpan's own TLS layer, so before wrapping it), then install it
 * under the budget.  The old layer, if any, is freed without closing
 * the socket.  0, or -1 (the TLS layer is closed, socket included).
 */
static int
fetch_verify(struct fetch_sess *s, mailstream_low *tls)
{
	mailstream	*stream = s->imap->imap_stream;
	mailstream_low	*old;
	char		 why[160];

	old = mailstream_get_low(stream);
	if (old == tls)
		old = NULL;	/* implicit TLS: the stream's first layer */
	else
		mailstream_set_low(stream, tls);
	if (!fetch_stream_fds_ok(tls)) {
		fetch_fail(s, 0, "fd limit: TLS cancel pipe >= FD_SETSIZE");
		goto fail;
	}
	/* Before anything else is sent on the TLS stream. */
	if (tls_verify_stream(stream, s->name, s->srv->ca_file, why,
	    sizeof(why)) == -1) {
		fetch_fail(s, 0, "tls: %s", why);
		goto fail;
	}
	if (old != NULL) {
		s->low = NULL;
		mailstream_low_free(old);
	}
	mailstream_set_low(stream, fetch_low_wrap(s, tls));
	s->tls_done = 1;
	return 0;

 fail:
	/*
	 * The TLS layer stays in the stream (closing it closes the
	 * socket); the plaintext layer under STARTTLS is only freed.
	 */
	if (old != NULL) {
		s->low = NULL;
		mailstream_low_free(old);
	}
	return -1;
}

/*
 * STARTTLS: the capability must be offered (no plaintext fallback), the
 * OK must not be followed by buffered bytes (CVE-2020-15953), then the
 * handshake with SNI and the verification.
 */
static int
fetch_starttls(struct fetch_sess *s)
{
	mailstream_low	*tls;
	int		 r;

	if (!mailimap_has_extension(s->imap, "STARTTLS") &&
	    fetch_capability(s) == -1)
		return -1;
	if (!mailimap_has_extension(s->imap, "STARTTLS")) {
		fetch_fail(s, 0, "tls: STARTTLS not offered");
		return -1;
	}
	fetch_budget(s, FETCH_MAX_RESPONSE);
	r = mailimap_starttls(s->imap);
	/*
	 * Debian's libetpan makes the same check and fails with the OK's
	 * text, which is no NO: say what happened.
	 */
	if (r == MAILIMAP_ERROR_STARTTLS && s->imap->imap_stream != NULL &&
	    s->imap->imap_stream->read_buffer_len > 0) {
		fetch_fail(s, 0, "tls: data after the STARTTLS reply "
		    "(response injection)");
		return -1;
	}
	if (r != MAILIMAP_NO_ERROR) {
		fetch_fail_imap(s, "tls: STARTTLS", r);
		return -1;
	}
	if (s->imap->imap_stream->read_buffer_len > 0) {
		fetch_fail(s, 0, "tls: data after the STARTTLS reply "
		    "(response injection)");
		return -1;
	}
	tls = mailstream_low_tls_open_with_callback_timeout(s->fd,
	    s->srv->connect_timeout, tls_sni_callback, (void *)s->name);
	if (tls == NULL) {
		fetch_fail(s, 0, "tls: handshake failed");
		return -1;
	}
	if (fetch_verify(s, tls) == -1)
		return -1;
	fetch_set_timeout(s, s->srv->command_timeout);
	return 0;
}

/* CAPABILITY again: everything learned before (TLS, LOGIN) is stale. */
static int
fetch_capability(struct fetch_sess *s)
{
	struct mailimap_capability_data	*cap = NULL;
	struct mailimap_connection_info	*ci = s->imap->imap_connection_info;
	clist				*empty;
	int				 r;

	/*
	 * Forget them here, and start from an empty list: libetpan 1.9.4
	 * dereferences NULL when a CAPABILITY command succeeds and no
	 * capability was ever received (a bare "OK" to it, after a
	 * greeting without [CAPABILITY]).  A reply that lists none leaves
	 * none.
	 */
	if (ci != NULL) {
		if ((empty = clist_new()) == NULL)
			log_fatalx("fetch: out of memory");
		if (ci->imap_capability != NULL)
			mailimap_capability_data_free(ci->imap_capability);
		if ((ci->imap_capability =
		    mailimap_capability_data_new(empty)) == NULL)
			log_fatalx("fetch: out of memory");
	}
	fetch_budget(s, FETCH_MAX_RESPONSE);
	if ((r = mailimap_capability(s->imap, &cap)) != MAILIMAP_NO_ERROR) {
		fetch_fail_imap(s, "CAPABILITY", r);
		return -1;
	}
	if (cap != NULL)
		mailimap_capability_data_free(cap);
	return 0;
}

/* LOGIN, or AUTHENTICATE PLAIN when the server says LOGINDISABLED. */
static int
fetch_login(struct fetch_sess *s)
{
	const struct fetch_server *srv = s->srv;
	int			 r;

	fetch_budget(s, FETCH_MAX_RESPONSE);
	if (mailimap_has_extension(s->imap, "LOGINDISABLED")) {
		if (!mailimap_has_authentication(s->imap, "PLAIN")) {
			fetch_fail(s, 1, "LOGIN: LOGINDISABLED and no "
			    "AUTH=PLAIN offered");
			return -1;
		}
		/* Without SASL it fails at once: no stale reply text. */
		s->imap->imap_response = NULL;
		r = mailimap_authenticate(s->imap, "PLAIN", s->name, NULL,
		    NULL, srv->username, srv->username, srv->password, NULL);
		/* libetpan keeps these pointers; they are the caller's. */
		s->imap->imap_sasl.sasl_login = NULL;
		s->imap->imap_sasl.sasl_auth_name = NULL;
		s->imap->imap_sasl.sasl_password = NULL;
		s->imap->imap_sasl.sasl_server_fqdn = NULL;
		if (r != MAILIMAP_NO_ERROR) {
			fetch_fail_imap(s, "AUTHENTICATE PLAIN", r);
			if (r == MAILIMAP_ERROR_LOGIN ||
			    r == MAILIMAP_ERROR_SASL)
				s->perm = 1;
			return -1;
		}
		return 0;
	}
	r = mailimap_login(s->imap, srv->username, srv->password);
	if (r != MAILIMAP_NO_ERROR) {
		fetch_fail_imap(s, "LOGIN", r);
		if (r == MAILIMAP_ERROR_LOGIN)
			s->perm = 1;
		return -1;
	}
	return 0;
}

/*
 * Connect, greeting, TLS, verification, CAPABILITY, LOGIN, CAPABILITY:
 * 0 with an authenticated session, or -1 with s->err.
 */
static int
fetch_open(struct fetch_sess *s)
{
	const struct fetch_server *srv = s->srv;
	mailstream_low	*low;
	int		 fd;

	s->name = srv->tls_name != NULL ? srv->tls_name : srv->host;
	if ((fd = fetch_connect_tcp(s)) == -1)
		return -1;
	if ((s->imap = mailimap_new(0, NULL)) == NULL)
		log_fatalx("fetch: out of memory");
	mailimap_set_timeout(s->imap, srv->connect_timeout);

	if (srv->tls == RELAY_TLS_IMPLICIT)
		low = mailstream_low_ssl_open_with_callback_timeout(fd,
		    srv->connect_timeout, tls_sni_callback, (void *)s->name);
	else
		low = mailstream_low_socket_open(fd);
	if (low == NULL) {
		fetch_fail(s, 0, srv->tls == RELAY_TLS_IMPLICIT ?
		    "tls: handshake failed" : "connect: cannot open a stream");
		fetch_publish_fd(s, -1);
		close(fd);
		return -1;
	}
	return fetch_open_stream(s, low);
}

/*
 * The session over low, a connected stream (TLS already, for implicit
 * TLS) that the session owns from here: the bounded layer, greeting,
 * STARTTLS, CAPABILITY, LOGIN, CAPABILITY.  0 or -1 with s->err.
 */
static int
fetch_open_stream(struct fetch_sess *s, mailstream_low *low)
{
	const struct fetch_server *srv = s->srv;
	mailstream	*stream;
	int		 r;

	/* The stream owns the socket from here. */
	if ((stream = mailstream_new(low, FETCH_STREAM_BUFFER)) == NULL)
		log_fatalx("fetch: out of memory");
	s->imap->imap_stream = stream;
	if (srv->tls == RELAY_TLS_IMPLICIT) {
		if (fetch_verify(s, low) == -1)
			return -1;
	} else {
		if (!fetch_stream_fds_ok(low)) {
			fetch_fail(s, 0, "fd limit: cancel pipe >= "
			    "FD_SETSIZE");
			return -1;
		}
		mailstream_set_low(stream, fetch_low_wrap(s, low));
	}
	fetch_set_timeout(s, srv->connect_timeout);

	/* mailimap_connect() takes the stream already in the session. */
	s->imap->imap_stream = NULL;
	r = mailimap_connect(s->imap, stream);
	if (r != MAILIMAP_NO_ERROR_NON_AUTHENTICATED &&
	    r != MAILIMAP_NO_ERROR_AUTHENTICATED) {
		fetch_fail_imap(s, "greeting", r);
		return -1;
	}
	if (r == MAILIMAP_NO_ERROR_AUTHENTICATED) {
		/* PREAUTH: no LOGIN, and no STARTTLS is possible after it. */
		fetch_fail(s, 1, "greeting: PREAUTH is not accepted");
		return -1;
	}
	fetch_set_timeout(s, srv->command_timeout);
	if (srv->tls == RELAY_TLS_STARTTLS && fetch_starttls(s) == -1)
		return -1;
	if (fetch_capability(s) == -1 || fetch_login(s) == -1 ||
	    fetch_capability(s) == -1)
		return -1;
	s->has_move = mailimap_has_extension(s->imap, "MOVE");
	s->has_uidplus = mailimap_has_extension(s->imap, "UIDPLUS");
	s->has_idle = mailimap_has_idle(s->imap);
	return 0;
}

/*
 * Close the session: LOGOUT (briefly) when it is healthy and logout is
 * set, else just close the socket; never anything on a stream whose TLS
 * was not verified.
 */
static void
fetch_close(struct fetch_sess *s, int logout)
{
	if (s->imap != NULL) {
		if (s->imap->imap_stream != NULL && logout &&
		    s->err[0] == '\0' &&
		    (s->tls_done || s->srv->tls == RELAY_TLS_NONE)) {
			fetch_set_timeout(s, FETCH_LOGOUT_TIMEOUT);
			fetch_budget(s, FETCH_MAX_RESPONSE);
			(void)mailimap_logout(s->imap);
		}
		fetch_publish_fd(s, -1);
		if (s->imap->imap_stream != NULL) {
			mailstream_close(s->imap->imap_stream);
			s->imap->imap_stream = NULL;
		}
		s->low = NULL;
		mailimap_free(s->imap);
		s->imap = NULL;
	} else if (s->fd != -1) {
		int	 fd = s->fd;

		fetch_publish_fd(s, -1);
		close(fd);
	}
}

/* Does the folder exist?  0 with *exists, or -1. */
static int
fetch_folder_exists(struct fetch_sess *s, const char *name, int *exists)
{
	clist	*list = NULL;
	int	 r;

	*exists = 0;
	if (strcasecmp(name, "INBOX") == 0) {
		*exists = 1;
		return 0;
	}
	fetch_budget(s, FETCH_MAX_RESPONSE);
	if ((r = mailimap_list(s->imap, "", name, &list)) !=
	    MAILIMAP_NO_ERROR) {
		fetch_fail_imap(s, "LIST", r);
		return -1;
	}
	*exists = list != NULL && clist_count(list) > 0;
	if (list != NULL)
		mailimap_list_result_free(list);
	return 0;
}

/*
 * LIST, and CREATE when missing.  A CREATE that fails because another
 * client created the folder meanwhile (ALREADYEXISTS) is fine: LIST
 * again decides.
 */
static int
fetch_ensure_folder(struct fetch_sess *s, const char *name)
{
	char	 what[FETCH_MAX_NAME + 16];
	int	 exists, r;

	if (fetch_folder_exists(s, name, &exists) == -1)
		return -1;
	if (exists)
		return 0;
	fetch_budget(s, FETCH_MAX_RESPONSE);
	r = mailimap_create(s->imap, name);
	if (r == MAILIMAP_NO_ERROR)
		return 0;
	snprintf(what, sizeof(what), "CREATE %s", name);
	if (r != MAILIMAP_ERROR_CREATE) {
		fetch_fail_imap(s, what, r);
		return -1;
	}
	if (fetch_folder_exists(s, name, &exists) == -1)
		return -1;
	if (exists)
		return 0;
	fetch_fail_imap(s, what, r);
	return -1;
}

/* SELECT the mailbox; note (and log a change of) UIDVALIDITY. */
static int
fetch_select(struct fetch_sess *s)
{
	struct fetch	*f = s->f;
	uint32_t	 uv, old;
	int		 r;

	fetch_budget(s, FETCH_MAX_RESPONSE);
	if ((r = mailimap_select(s->imap, f->mailbox)) != MAILIMAP_NO_ERROR) {
		fetch_fail_imap(s, "SELECT", r);
		return -1;
	}
	if (s->imap->imap_selection_info == NULL) {
		fetch_fail(s, 0, "SELECT: no selection data");
		return -1;
	}
	if (s->imap->imap_selection_info->sel_perm ==
	    MAILIMAP_MAILBOX_READONLY) {
		fetch_fail(s, 1, "SELECT: mailbox is read-only");
		return -1;
	}
	uv = s->imap->imap_selection_info->sel_uidvalidity;
	pthread_mutex_lock(&f->lock);
	old = f->stats.uidvalidity;
	f->stats.uidvalidity = uv;
	pthread_mutex_unlock(&f->lock);
	/* Duplicates are recognised by content (intake.h): nothing to do. */
	if (old != 0 && uv != old)
		log_warnx("fetch %u: mailbox %s UIDVALIDITY changed %u -> %u",
		    f->id, f->mailbox, old, uv);
	return 0;
}

static int
fetch_cmp_uid(const void *a, const void *b)
{
	uint32_t	 x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * UID SEARCH UNDELETED (or DELETED): the UIDs, ascending, in a new
 * array.  0 or -1.
 */
static int
fetch_search(struct fetch_sess *s, int deleted, uint32_t **uids,
    size_t *n)
{
	struct mailimap_search_key	*key;
	clist				*res = NULL;
	clistiter			*it;
	uint32_t			*a;
	size_t				 i = 0;
	int				 r;

	*uids = NULL;
	*n = 0;
	key = mailimap_search_key_new(deleted ? MAILIMAP_SEARCH_KEY_DELETED :
	    MAILIMAP_SEARCH_KEY_UNDELETED, NULL, NULL, NULL, NULL, NULL,
	    NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0, NULL,
	    NULL, NULL, NULL, NULL, NULL, 0, NULL, NULL, NULL);
	if (key == NULL)
		log_fatalx("fetch: out of memory");
	fetch_budget(s, FETCH_MAX_RESPONSE);
	r = mailimap_uid_search(s->imap, NULL, key, &res);
	mailimap_search_key_free(key);
	if (r != MAILIMAP_NO_ERROR) {
		fetch_fail_imap(s, "UID SEARCH", r);
		return -1;
	}
	if (res == NULL)
		return 0;
	a = xreallocarray(NULL, clist_count(res) + 1, sizeof(*a));
	for (it = clist_begin(res); it != NULL; it = clist_next(it)) {
		uint32_t	*u = clist_content(it);

		if (u != NULL && *u != 0)
			a[i++] = *u;
	}
	mailimap_search_result_free(res);
	qsort(a, i, sizeof(*a), fetch_cmp_uid);
	*uids = a;
	*n = i;
	return 0;
}

/*
 * The static attribute of type t in one FETCH response (the last one when
 * a server repeats it), or NULL.
 */
static struct mailimap_msg_att_static *
fetch_att(struct mailimap_msg_att *ma, int t)
{
	struct mailimap_msg_att_static	*found = NULL;
	struct mailimap_msg_att_item	*ai;
	clistiter			*jt;

	for (jt = clist_begin(ma->att_list); jt != NULL; jt = clist_next(jt)) {
		ai = clist_content(jt);
		if (ai->att_type == MAILIMAP_MSG_ATT_ITEM_STATIC &&
		    ai->att_data.att_static->att_type == t)
			found = ai->att_data.att_static;
	}
	return found;
}

/*
 * UID FETCH (UID RFC822.SIZE) for the items; an item left without a
 * size was expunged meanwhile.  Unsolicited FETCH data (flag changes)
 * carries no RFC822.SIZE and is ignored.
 */
static int
fetch_sizes(struct fetch_sess *s, struct fetch_item *items, size_t n)
{
	struct mailimap_set		*set;
	struct mailimap_fetch_type	*ft;
	clist				*res = NULL;
	clistiter			*it;
	size_t				 i;
	int				 r;

	if ((set = mailimap_set_new_empty()) == NULL)
		log_fatalx("fetch: out of memory");
	for (i = 0; i < n; i++)
		if (mailimap_set_add_single(set, items[i].uid) !=
		    MAILIMAP_NO_ERROR)
			log_fatalx("fetch: out of memory");
	ft = mailimap_fetch_type_new_fetch_att_list_empty();
	if (ft == NULL ||
	    mailimap_fetch_type_new_fetch_att_list_add(ft,
	    mailimap_fetch_att_new_uid()) != MAILIMAP_NO_ERROR ||
	    mailimap_fetch_type_new_fetch_att_list_add(ft,
	    mailimap_fetch_att_new_rfc822_size()) != MAILIMAP_NO_ERROR)
		log_fatalx("fetch: out of memory");
	fetch_budget(s, FETCH_MAX_RESPONSE);
	r = mailimap_uid_fetch(s->imap, set, ft, &res);
	mailimap_fetch_type_free(ft);
	mailimap_set_free(set);
	if (r != MAILIMAP_NO_ERROR) {
		fetch_fail_imap(s, "UID FETCH RFC822.SIZE", r);
		return -1;
	}
	for (it = res != NULL ? clist_begin(res) : NULL; it != NULL;
	    it = clist_next(it)) {
		struct mailimap_msg_att	*ma = clist_content(it);
		struct mailimap_msg_att_static *a;
		uint32_t		 uid = 0, size = 0;
		int			 have = 0;

		if ((a = fetch_att(ma, MAILIMAP_MSG_ATT_UID)) != NULL)
			uid = a->att_data.att_uid;
		if ((a = fetch_att(ma, MAILIMAP_MSG_ATT_RFC822_SIZE)) != NULL) {
			size = a->att_data.att_rfc822_size;
			have = 1;
		}
		if (uid == 0 || !have)
			continue;
		for (i = 0; i < n; i++)
			if (items[i].uid == uid) {
				items[i].size = size;
				items[i].have_size = 1;
			}
	}
	if (res != NULL)
		mailimap_fetch_list_free(res);
	return 0;
}

/*
 * UID FETCH uid (UID BODY.PEEK[]): *raw and *len point into *resp (free
 * it with mailimap_fetch_list_free), *gone when the server returned no
 * body for this UID (expunged meanwhile).
 */
static int
fetch_body(struct fetch_sess *s, uint32_t uid, clist **resp,
    const char **raw, size_t *len, int *gone)
{
	struct mailimap_set		*set;
	struct mailimap_fetch_type	*ft;
	clist				*res = NULL;
	clistiter			*it;
	int				 r;

	*resp = NULL;
	*raw = NULL;
	*len = 0;
	*gone = 1;
	if ((set = mailimap_set_new_single(uid)) == NULL)
		log_fatalx("fetch: out of memory");
	ft = mailimap_fetch_type_new_fetch_att_list_empty();
	if (ft == NULL ||
	    mailimap_fetch_type_new_fetch_att_list_add(ft,
	    mailimap_fetch_att_new_uid()) != MAILIMAP_NO_ERROR ||
	    mailimap_fetch_type_new_fetch_att_list_add(ft,
	    mailimap_fetch_att_new_body_peek_section(
	    mailimap_section_new(NULL))) != MAILIMAP_NO_ERROR)
		log_fatalx("fetch: out of memory");
	fetch_budget(s, s->f->p.max_size + FETCH_BODY_MARGIN);
	r = mailimap_uid_fetch(s->imap, set, ft, &res);
	mailimap_fetch_type_free(ft);
	mailimap_set_free(set);
	if (r != MAILIMAP_NO_ERROR) {
		fetch_fail_imap(s, "UID FETCH BODY.PEEK[]", r);
		return -1;
	}
	*resp = res;
	for (it = res != NULL ? clist_begin(res) : NULL; it != NULL;
	    it = clist_next(it)) {
		struct mailimap_msg_att	*ma = clist_content(it);
		struct mailimap_msg_att_body_section *bs = NULL;
		struct mailimap_msg_att_static *a;
		uint32_t		 u = 0;

		if ((a = fetch_att(ma, MAILIMAP_MSG_ATT_UID)) != NULL)
			u = a->att_data.att_uid;
		if ((a = fetch_att(ma, MAILIMAP_MSG_ATT_BODY_SECTION)) != NULL)
			bs = a->att_data.att_body_section;
		if (u != uid || bs == NULL)
			continue;
		if (bs->sec_body_part == NULL) {
			/* NIL: the message is gone. */
			return 0;
		}
		*raw = bs->sec_body_part;
		*len = bs->sec_length;
		*gone = 0;
		return 0;
	}
	return 0;
}

/*
 * Move one message to folder: UID MOVE (RFC 6851), else UID COPY, UID
 * STORE +FLAGS.SILENT (\Deleted) and UID EXPUNGE (RFC 4315), else a
 * plain EXPUNGE only when no other message is \Deleted.
 */
static int
fetch_move(struct fetch_sess *s, uint32_t uid, const char *folder)
{
	struct mailimap_set		*set;
	struct mailimap_flag_list	*fl;
	struct mailimap_store_att_flags	*sf;
	uint32_t			*del = NULL;
	size_t				 ndel;
	int				 r, rv = -1;

	if ((set = mailimap_set_new_single(uid)) == NULL)
		log_fatalx("fetch: out of memory");
	fetch_budget(s, FETCH_MAX_RESPONSE);
	if (s->has_move) {
		if ((r = mailimap_uid_move(s->imap, set, folder)) !=
		    MAILIMAP_NO_ERROR) {
			fetch_fail_imap(s, "UID MOVE", r);
			goto done;
		}
		rv = 0;
		goto done;
	}
	if ((r = mailimap_uid_copy(s->imap, set, folder)) !=
	    MAILIMAP_NO_ERROR) {
		fetch_fail_imap(s, "UID COPY", r);
		goto done;
	}
	if ((fl = mailimap_flag_list_new_empty()) == NULL ||
	    mailimap_flag_list_add(fl, mailimap_flag_new_deleted()) !=
	    MAILIMAP_NO_ERROR ||
	    (sf = mailimap_store_att_flags_new_add_flags_silent(fl)) == NULL)
		log_fatalx("fetch: out of memory");
	fetch_budget(s, FETCH_MAX_RESPONSE);
	r = mailimap_uid_store(s->imap, set, sf);
	mailimap_store_att_flags_free(sf);
	if (r != MAILIMAP_NO_ERROR) {
		fetch_fail_imap(s, "UID STORE", r);
		goto done;
	}
	fetch_budget(s, FETCH_MAX_RESPONSE);
	if (s->has_uidplus) {
		if ((r = mailimap_uid_expunge(s->imap, set)) !=
		    MAILIMAP_NO_ERROR) {
			fetch_fail_imap(s, "UID EXPUNGE", r);
			goto done;
		}
		rv = 0;
		goto done;
	}
	if (fetch_search(s, 1, &del, &ndel) == -1)
		goto done;
	if (ndel == 1 && del[0] == uid) {
		fetch_budget(s, FETCH_MAX_RESPONSE);
		if ((r = mailimap_expunge(s->imap)) != MAILIMAP_NO_ERROR) {
			fetch_fail_imap(s, "EXPUNGE", r);
			goto done;
		}
	} else
		log_debug("fetch %u: uid %u copied and flagged \\Deleted; "
		    "not expunged (other \\Deleted messages, no UIDPLUS)",
		    s->f->id, uid);
	rv = 0;
 done:
	free(del);
	mailimap_set_free(set);
	return rv;
}

/*
 * One message: its body (unless over max_size), process(), then the
 * move its verdict asks for.  0, 1 when the message was expunged by
 * someone else before its fetch, or -1 (the session is unusable).
 */
static int
fetch_one(struct fetch_sess *s, struct fetch_item *it,
    enum fetch_verdict *vp)
{
	struct fetch		*f = s->f;
	struct fetch_msg	 m;
	enum fetch_verdict	 v;
	clist			*resp = NULL;
	const char		*raw = NULL;
	size_t			 len = 0;
	int			 gone = 0, rv = -1;

	*vp = FETCH_KEEP;
	memset(&m, 0, sizeof(m));
	m.mailbox = f->mailbox;
	pthread_mutex_lock(&f->lock);
	m.uidvalidity = f->stats.uidvalidity;
	pthread_mutex_unlock(&f->lock);
	m.uid = it->uid;
	if ((size_t)it->size > f->p.max_size) {
		m.raw = NULL;
		m.len = it->size;
	} else {
		if (fetch_body(s, it->uid, &resp, &raw, &len, &gone) == -1)
			goto done;
		if (gone) {
			log_debug("fetch %u: uid %u gone before its fetch",
			    f->id, it->uid);
			rv = 1;
			goto done;
		}
		/* A server that understated RFC822.SIZE: treat as large. */
		if (len > f->p.max_size) {
			m.raw = NULL;
			m.len = len;
		} else {
			m.raw = raw;
			m.len = len;
		}
	}

	pthread_mutex_lock(&f->lock);
	f->stats.fetched++;
	pthread_mutex_unlock(&f->lock);
	v = f->p.process(f->p.arg, &m);
	if (resp != NULL) {
		mailimap_fetch_list_free(resp);
		resp = NULL;
	}
	log_debug("fetch %u: uid %u size %zu verdict %s", f->id, it->uid,
	    m.len, v == FETCH_MOVE ? "move" : v == FETCH_ASIDE ? "aside" :
	    "keep");
	switch (v) {
	case FETCH_MOVE:
	case FETCH_ASIDE:
		if (fetch_move(s, it->uid, v == FETCH_MOVE ? f->processed :
		    f->aside) == -1)
			goto done;
		pthread_mutex_lock(&f->lock);
		if (v == FETCH_MOVE)
			f->stats.moved++;
		else
			f->stats.aside++;
		pthread_mutex_unlock(&f->lock);
		break;
	case FETCH_KEEP:
		pthread_mutex_lock(&f->lock);
		f->stats.kept++;
		pthread_mutex_unlock(&f->lock);
		break;
	default:
		log_panic("fetch %u: process() returned verdict %d", f->id,
		    (int)v);
	}
	*vp = v;
	rv = 0;
 done:
	if (resp != NULL)
		mailimap_fetch_list_free(resp);
	return rv;
}

/*
 * One round: the oldest max_per_round messages, each handed over and
 * moved.  *more when the mailbox holds more than were taken, *kept when
 * a message was left.  0 or -1.
 */
static int
fetch_round(struct fetch_sess *s, int *more, int *kept)
{
	struct fetch		*f = s->f;
	struct fetch_item	*items = NULL;
	enum fetch_verdict	 v;
	uint32_t		*uids = NULL;
	size_t			 n, i, max;
	int			 rv = -1;

	*more = 0;
	*kept = 0;
	if (fetch_search(s, 0, &uids, &n) == -1)
		return -1;
	max = f->p.max_per_round != 0 ? f->p.max_per_round : 100;
	if (n > max) {
		*more = 1;
		n = max;
	}
	if (n == 0) {
		free(uids);
		return 0;
	}
	items = xcalloc(n, sizeof(*items));
	for (i = 0; i < n; i++)
		items[i].uid = uids[i];
	if (fetch_sizes(s, items, n) == -1)
		goto done;
	for (i = 0; i < n; i++) {
		if (fetch_stopping(f))
			break;
		if (!items[i].have_size)
			continue;
		switch (fetch_one(s, &items[i], &v)) {
		case -1:
			goto done;
		case 0:
			if (v == FETCH_KEEP)
				*kept = 1;
			break;
		}
	}
	rv = 0;
 done:
	free(items);
	free(uids);
	return rv;
}

/* Empty the wake pipe. */
static void
fetch_drain(struct fetch *f)
{
	char	 buf[64];

	while (read(f->wake[0], buf, sizeof(buf)) > 0)
		;
}

/*
 * Sleep secs or until a kick or stop: 1 when woken, 0 after the time.
 */
static int
fetch_sleep(struct fetch *f, int secs)
{
	struct pollfd	 pfd;
	uint64_t	 deadline = util_now_ms() + (uint64_t)secs * 1000, now;
	int		 r;

	for (;;) {
		if (fetch_stopping(f))
			return 1;
		now = util_now_ms();
		if (now >= deadline)
			return 0;
		pfd.fd = f->wake[0];
		pfd.events = POLLIN;
		pfd.revents = 0;
		r = poll(&pfd, 1, (int)(deadline - now));
		if (r > 0) {
			fetch_drain(f);
			return 1;
		}
	}
}

/*
 * Wait for something to do, at most secs: IDLE when offered and
 * enabled (DONE when the server sends anything, on a kick or a stop, or
 * after secs), else a sleep.  0 or -1.
 */
static int
fetch_wait(struct fetch_sess *s, int secs)
{
	struct fetch	*f = s->f;
	struct pollfd	 pfd[2];
	uint64_t	 deadline, now;
	int		 r, fd;

	if (!f->p.idle || !s->has_idle) {
		(void)fetch_sleep(f, secs);
		return 0;
	}
	fetch_budget(s, FETCH_MAX_RESPONSE);
	if ((r = mailimap_idle(s->imap)) != MAILIMAP_NO_ERROR) {
		fetch_fail_imap(s, "IDLE", r);
		return -1;
	}
	pthread_mutex_lock(&f->lock);
	f->stats.idling = 1;
	pthread_mutex_unlock(&f->lock);
	fd = mailimap_idle_get_fd(s->imap);
	deadline = util_now_ms() + (uint64_t)secs * 1000;
	/*
	 * Bytes libetpan already buffered (the server's next line came
	 * with the "+ idling") are never seen by poll().  TLS records are
	 * read one at a time, so GnuTLS holds no decrypted rest of an
	 * IDLE notification either; secs bounds any miss.
	 */
	while (s->imap->imap_stream->read_buffer_len == 0) {
		if (fetch_stopping(f))
			break;
		now = util_now_ms();
		if (now >= deadline)
			break;
		pfd[0].fd = fd;
		pfd[0].events = POLLIN;
		pfd[0].revents = 0;
		pfd[1].fd = f->wake[0];
		pfd[1].events = POLLIN;
		pfd[1].revents = 0;
		r = poll(pfd, 2, (int)(deadline - now));
		if (r == -1 && errno != EINTR) {
			fetch_fail(s, 0, "IDLE: poll: %s", strerror(errno));
			break;
		}
		if (r > 0 && pfd[1].revents != 0) {
			fetch_drain(f);
			break;
		}
		if (r > 0 && pfd[0].revents != 0)
			break;
	}
	pthread_mutex_lock(&f->lock);
	f->stats.idling = 0;
	pthread_mutex_unlock(&f->lock);
	if (s->err[0] != '\0')
		return -1;
	fetch_budget(s, FETCH_MAX_RESPONSE);
	if ((r = mailimap_idle_done(s->imap)) != MAILIMAP_NO_ERROR) {
		fetch_fail_imap(s, "IDLE DONE", r);
		return -1;
	}
	return 0;
}

/* Count an error; log it when it is not the one logged last. */
static void
fetch_error(struct fetch *f, const char *err)
{
	pthread_mutex_lock(&f->lock);
	f->stats.errors++;
	f->stats.connected = 0;
	f->stats.idling = 0;
	strlcpy_sp(f->stats.last_error, err, sizeof(f->stats.last_error));
	pthread_mutex_unlock(&f->lock);
	if (strcmp(f->logged, err) != 0) {
		log_warnx("fetch %u: %s:%u mailbox %s: %s", f->id, f->host,
		    (unsigned int)f->p.server.port, f->mailbox, err);
		strlcpy_sp(f->logged, err, sizeof(f->logged));
	}
}

/* The worker: connect, rounds and waits, reconnect with backoff. */
static void *
fetch_main(void *arg)
{
	struct fetch		*f = arg;
	struct fetch_sess	 s;
	int			 backoff = FETCH_BACKOFF_MIN;
	int			 keep_delay = FETCH_BACKOFF_MIN;
	int			 more, kept, limit, first = 1;

	while (!fetch_stopping(f)) {
		if (!first) {
			fetch_enter_state(f, FETCH_S_BACKOFF);
			(void)fetch_sleep(f, backoff);
			backoff = backoff * 2 > FETCH_BACKOFF_MAX ?
			    FETCH_BACKOFF_MAX : backoff * 2;
			if (fetch_stopping(f))
				break;
		}
		first = 0;
		memset(&s, 0, sizeof(s));
		s.f = f;
		s.srv = &f->p.server;
		s.fd = -1;
		fetch_enter_state(f, FETCH_S_CONNECT);
		if (fetch_open(&s) == -1 ||
		    fetch_ensure_folder(&s, f->processed) == -1 ||
		    fetch_ensure_folder(&s, f->aside) == -1 ||
		    fetch_select(&s) == -1)
			goto fail;
		pthread_mutex_lock(&f->lock);
		f->stats.connects++;
		f->stats.connected = 1;
		pthread_mutex_unlock(&f->lock);
		if (f->logged[0] != '\0' || f->stats.connects == 1)
			log_info("fetch %u: %s:%u mailbox %s: connected%s%s%s",
			    f->id, f->host, (unsigned int)f->p.server.port,
			    f->mailbox, s.has_idle && f->p.idle ? ", idle" : "",
			    s.has_move ? ", move" : "",
			    s.has_uidplus ? ", uidplus" : "");
		f->logged[0] = '\0';

		while (!fetch_stopping(f)) {
			fetch_enter_state(f, FETCH_S_ROUND);
			if (fetch_round(&s, &more, &kept) == -1)
				goto fail;
			backoff = FETCH_BACKOFF_MIN;
			if (fetch_stopping(f))
				break;
			if (more && !kept)
				continue;
			limit = f->p.idle && s.has_idle ? f->p.idle_restart :
			    f->p.poll_interval;
			if (kept) {
				/* A temporary failure: try again, later. */
				if (keep_delay < limit)
					limit = keep_delay;
				keep_delay = keep_delay * 2 >
				    FETCH_BACKOFF_MAX ? FETCH_BACKOFF_MAX :
				    keep_delay * 2;
			} else
				keep_delay = FETCH_BACKOFF_MIN;
			fetch_enter_state(f, FETCH_S_WAIT);
			if (fetch_wait(&s, limit) == -1)
				goto fail;
		}
		fetch_close(&s, 1);
		break;
 fail:
		if (fetch_stopping(f)) {
			fetch_close(&s, 0);
			break;
		}
		fetch_error(f, s.err);
		fetch_close(&s, 0);
	}
	fetch_enter_state(f, FETCH_S_STOPPED);
	pthread_mutex_lock(&f->lock);
	f->stats.connected = 0;
	f->stats.idling = 0;
	f->done = 1;
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->lock);
	return NULL;
}

static void
fetch_free(struct fetch *f)
{
	if (f == NULL)
		return;
	if (f->password != NULL) {
		explicit_bzero(f->password, strlen(f->password));
		free(f->password);
	}
	free(f->host);
	free(f->tls_name);
	free(f->ca_file);
	free(f->username);
	free(f->mailbox);
	free(f->processed);
	free(f->aside);
	if (f->wake[0] != -1)
		close(f->wake[0]);
	if (f->wake[1] != -1)
		close(f->wake[1]);
	pthread_cond_destroy(&f->cond);
	pthread_mutex_destroy(&f->lock);
	free(f);
}

/* A worker's struct with deep copies of p; no pipe, no thread yet. */
static struct fetch *
fetch_new(const struct fetch_params *p)
{
	struct fetch	*f;

	f = xcalloc(1, sizeof(*f));
	f->wake[0] = f->wake[1] = -1;
	f->fd = -1;
	pthread_mutex_init(&f->lock, NULL);
	pthread_cond_init(&f->cond, NULL);
	f->p = *p;
	f->host = xstrdup(p->server.host);
	f->tls_name = p->server.tls_name != NULL ?
	    xstrdup(p->server.tls_name) : NULL;
	f->ca_file = p->server.ca_file != NULL ?
	    xstrdup(p->server.ca_file) : NULL;
	f->username = xstrdup(p->server.username);
	f->password = xstrdup(p->server.password);
	f->mailbox = xstrdup(p->mailbox);
	f->processed = xstrdup(p->processed_folder);
	f->aside = xstrdup(p->aside_folder);
	f->p.server.host = f->host;
	f->p.server.tls_name = f->tls_name;
	f->p.server.ca_file = f->ca_file;
	f->p.server.username = f->username;
	f->p.server.password = f->password;
	f->p.mailbox = f->mailbox;
	f->p.processed_folder = f->processed;
	f->p.aside_folder = f->aside;
	f->state = FETCH_S_CONNECT;
	pthread_mutex_lock(&fetch_id_lock);
	f->id = ++fetch_next_id;
	pthread_mutex_unlock(&fetch_id_lock);
	return f;
}

/* Start the worker; see fetch.h. */
int
fetch_start(const struct fetch_params *p, struct fetch **fp,
    const char **error_r)
{
	struct fetch	*f;
	const char	*why;
	int		 r;

	*fp = NULL;
	if ((why = fetch_check_server(&p->server)) != NULL) {
		*error_r = why;
		return -1;
	}
	if (fetch_check_name(p->mailbox) != NULL) {
		*error_r = "mailbox: empty, too long, non-ASCII or has "
		    "'&', '*', '%'";
		return -1;
	}
	if (fetch_check_name(p->processed_folder) != NULL ||
	    fetch_check_name(p->aside_folder) != NULL) {
		*error_r = "processed/aside folder: empty, too long, "
		    "non-ASCII or has '&', '*', '%'";
		return -1;
	}
	if (strcasecmp(p->processed_folder, p->mailbox) == 0 ||
	    strcasecmp(p->aside_folder, p->mailbox) == 0) {
		*error_r = "processed/aside folder is the watched mailbox";
		return -1;
	}
	if (p->process == NULL) {
		*error_r = "no process function";
		return -1;
	}
	if (p->poll_interval <= 0 || p->idle_restart <= 0 ||
	    p->idle_restart >= 29 * 60) {
		*error_r = "poll_interval must be positive, idle_restart "
		    "between 1 s and 29 min";
		return -1;
	}
	if (p->max_size == 0 || p->max_size > 1024u * 1024 * 1024) {
		*error_r = "max_size must be between 1 octet and 1 GiB";
		return -1;
	}
	pthread_once(&fetch_once, fetch_global_init);
	if (!fetch_init_ok) {
		*error_r = "global libetpan/SASL setup failed";
		return -1;
	}

	f = fetch_new(p);
	if (pipe2(f->wake, O_NONBLOCK | O_CLOEXEC) == -1) {
		f->wake[0] = f->wake[1] = -1;
		fetch_free(f);
		*error_r = "pipe failed";
		return -1;
	}
	if ((r = pthread_create(&f->thread, NULL, fetch_main, f)) != 0) {
		fetch_free(f);
		*error_r = "cannot create the worker thread";
		return -1;
	}
	*fp = f;
	return 0;
}

/* Look now: wake a wait or a backoff. */
void
fetch_kick(struct fetch *f)
{
	ssize_t	 r;

	if (f == NULL)
		return;
	/* A full pipe already holds a wake-up. */
	do {
		r = write(f->wake[1], "k", 1);
	} while (r == -1 && errno == EINTR);
}

void
fetch_get_stats(struct fetch *f, struct fetch_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (f == NULL)
		return;
	pthread_mutex_lock(&f->lock);
	*st = f->stats;
	pthread_mutex_unlock(&f->lock);
}

/* Wait until done or the deadline: 1 when done. */
static int
fetch_wait_done(struct fetch *f, uint64_t deadline_ms)
{
	struct timespec	 ts;
	uint64_t	 now;
	int		 done;

	pthread_mutex_lock(&f->lock);
	while (!f->done) {
		now = util_now_ms();
		if (now >= deadline_ms)
			break;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += (time_t)((deadline_ms - now) / 1000);
		ts.tv_nsec += (long)((deadline_ms - now) % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&f->cond, &f->lock, &ts);
	}
	done = f->done;
	pthread_mutex_unlock(&f->lock);
	return done;
}

/*
 * Stop: the worker finishes the message in hand and logs out.  After
 * half the time a blocked command is cut (the socket is shut down: a
 * message not yet moved stays in the mailbox and comes again).  A
 * thread still running at the end is abandoned with its struct.
 */
int
fetch_stop(struct fetch **fp, uint64_t timeout_ms)
{
	struct fetch	*f;
	uint64_t	 start;

	if (fp == NULL || (f = *fp) == NULL)
		return 0;
	*fp = NULL;
	start = util_now_ms();
	pthread_mutex_lock(&f->lock);
	f->stopping = 1;
	pthread_mutex_unlock(&f->lock);
	fetch_kick(f);
	if (!fetch_wait_done(f, start + timeout_ms / 2)) {
		pthread_mutex_lock(&f->lock);
		if (f->fd != -1)
			shutdown(f->fd, SHUT_RDWR);
		pthread_mutex_unlock(&f->lock);
		if (!fetch_wait_done(f, start + timeout_ms)) {
			log_warnx("fetch %u: worker did not stop within %llu "
			    "ms; abandoned", f->id,
			    (unsigned long long)timeout_ms);
			pthread_detach(f->thread);
			return -1;
		}
	}
	pthread_join(f->thread, NULL);
	fetch_free(f);
	return 0;
}

/* APPEND one message to folder on srv; see fetch.h. */
int
fetch_append(const struct fetch_server *srv, const char *folder,
    const char *raw, size_t len, int *temporary, char *err, size_t errsz)
{
	struct fetch_sess	 s;
	const char		*why;
	int			 r, exists;

	*temporary = 0;
	if (errsz > 0)
		err[0] = '\0';
	if ((why = fetch_check_server(srv)) != NULL) {
		snprintf(err, errsz, "%s", why);
		return -1;
	}
	if (fetch_check_name(folder) != NULL) {
		snprintf(err, errsz, "folder: empty, too long, non-ASCII or "
		    "has '&', '*', '%%'");
		return -1;
	}
	if (raw == NULL || len == 0 || memchr(raw, '\0', len) != NULL) {
		snprintf(err, errsz, "message: empty or contains NUL");
		return -1;
	}
	pthread_once(&fetch_once, fetch_global_init);
	if (!fetch_init_ok) {
		snprintf(err, errsz, "global libetpan/SASL setup failed");
		return -1;
	}
	memset(&s, 0, sizeof(s));
	s.srv = srv;
	s.fd = -1;
	if (fetch_open(&s) == -1 || fetch_ensure_folder(&s, folder) == -1)
		goto fail;
	fetch_budget(&s, FETCH_MAX_RESPONSE);
	r = mailimap_append(s.imap, folder, NULL, NULL, raw, len);
	if (r != MAILIMAP_NO_ERROR) {
		fetch_fail_imap(&s, "APPEND", r);
		if (r == MAILIMAP_ERROR_APPEND) {
			/* NO: refused, unless the folder vanished (TRYCREATE). */
			s.perm = 1;
			if (fetch_folder_exists(&s, folder, &exists) == 0 &&
			    !exists)
				s.perm = 0;
		}
		goto fail;
	}
	fetch_close(&s, 1);
	return 0;
 fail:
	snprintf(err, errsz, "%s", s.err[0] != '\0' ? s.err : "failed");
	*temporary = !s.perm;
	fetch_close(&s, 0);
	return -1;
}

/*
 * One worker session over a given stream, for tests and fuzzing; see
 * fetch.h.  The sequence and the bounds are fetch_main()'s (one round,
 * no wait); only the connect is left out.
 */
int
fetch_session_run(const struct fetch_params *p, mailstream_low *low,
    char *err, size_t errsz)
{
	struct fetch		*f;
	struct fetch_sess	 s;
	int			 more, kept, rv = -1;

	if (errsz > 0)
		err[0] = '\0';
	if (p->server.tls == RELAY_TLS_IMPLICIT || p->process == NULL ||
	    fetch_check_name(p->mailbox) != NULL ||
	    fetch_check_name(p->processed_folder) != NULL ||
	    fetch_check_name(p->aside_folder) != NULL ||
	    fetch_check_cred(p->server.username) != NULL ||
	    fetch_check_cred(p->server.password) != NULL ||
	    p->max_size == 0 || p->max_size > 1024u * 1024 * 1024) {
		mailstream_low_close(low);
		mailstream_low_free(low);
		snprintf(err, errsz, "fetch_session_run: bad parameters");
		return -1;
	}
	f = fetch_new(p);
	memset(&s, 0, sizeof(s));
	s.f = f;
	s.srv = &f->p.server;
	s.fd = -1;
	s.name = s.srv->tls_name != NULL ? s.srv->tls_name : s.srv->host;
	if ((s.imap = mailimap_new(0, NULL)) == NULL)
		log_fatalx("fetch: out of memory");
	mailimap_set_timeout(s.imap, s.srv->connect_timeout);
	if (fetch_open_stream(&s, low) == -1 ||
	    fetch_ensure_folder(&s, f->processed) == -1 ||
	    fetch_ensure_folder(&s, f->aside) == -1 ||
	    fetch_select(&s) == -1 ||
	    fetch_round(&s, &more, &kept) == -1) {
		snprintf(err, errsz, "%s", s.err[0] != '\0' ? s.err :
		    "failed");
		fetch_close(&s, 0);
	} else {
		fetch_close(&s, 1);
		rv = 0;
	}
	fetch_free(f);
	return rv;
}
