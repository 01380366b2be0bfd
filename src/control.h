/*
 * control.h - the control socket (UNIX stream, mode 0600).
 *
 * Protocol: the client writes one command line ("status\n"); the daemon
 * answers one JSON object and closes.  Commands: status, reload, and
 * "bounce <address> <length>" followed by <length> bytes of a bounce
 * message, answered once the bounce has been applied.
 * The client half (control_request) is used by sealpostctl.
 */
#ifndef SEALPOST_CONTROL_H
#define SEALPOST_CONTROL_H

struct daemon;
struct control;
struct sockaddr_un;

#define CONTROL_LINE_MAX	1024	/* bytes of a command line */

/* Provided by sealpostd.c: a JSON status object as a string (malloc'd). */
char	*daemon_status_json(struct daemon *);
/* Provided by sealpostd.c: reload the configuration (as SIGHUP). */
void	 daemon_reload(struct daemon *);
/*
 * Provided by sealpostd.c: apply a bounce received at `address' (a VERP
 * bounce+<token>@... address).  Takes raw (malloc'd).  answer(ctx, json)
 * is called exactly once, possibly later, on the loop thread.
 */
void	 daemon_bounce(struct daemon *, const char *address, char *raw,
	    size_t len, void (*answer)(void *, const char *), void *ctx);

int	 control_start(struct daemon *, const char *path, struct control **,
	    char **error_r);
void	 control_free(struct control **);
/*
 * Client (control_client.c): send one command, read the whole answer
 * (without its final newline); 0, or -1 with a malloc'd reason.
 */
int	 control_request(const char *path, const char *cmd, char **reply,
	    char **error_r);
int	 control_request_body(const char *path, const char *cmd,
	    const char *body, size_t bodylen, char **reply, char **error_r);
/* Fill a sockaddr_un for path; 0, or -1 with a malloc'd reason. */
int	 control_sockaddr(const char *path, struct sockaddr_un *,
	    char **error_r);

#endif
