/*
 * control_client.c - the client half of the control socket, for
 * sealpostctl: connect to the daemon's UNIX socket, send one command line,
 * read the JSON answer to EOF.  Kept apart from control.c so that
 * sealpostctl links without the daemon side (daemon_status_json, ...).
 *
 * Bounds: the command is one line under CONTROL_LINE_MAX bytes; the answer
 * at most CONTROL_REPLY_MAX bytes; each read and write waits at most
 * CONTROL_CLIENT_TIMEOUT seconds (a reload may take a moment).
 *
 * Public: control_request, control_sockaddr.
 * Error policy: 0, or -1 with a malloc'd reason in *error_r.
 */
#include "build.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "control.h"
#include "util.h"

#define CONTROL_CLIENT_TIMEOUT	60		/* seconds */
#define CONTROL_REPLY_MAX	(1024 * 1024)	/* bytes of an answer */

/*
 * Client side: connect, send "cmd\n", read the answer to EOF (bounded,
 * with a timeout).  *reply is malloc'd, without the final newline.
 */
int
control_request(const char *path, const char *cmd, char **reply,
    char **error_r)
{
	return control_request_body(path, cmd, NULL, 0, reply, error_r);
}

/* The same with a body sent right after the command line. */
int
control_request_body(const char *path, const char *cmd, const char *body,
    size_t bodylen, char **reply, char **error_r)
{
	struct sockaddr_un	 sun;
	struct timeval		 tv = { CONTROL_CLIENT_TIMEOUT, 0 };
	char			*line, *buf;
	size_t			 len, off, cap;
	ssize_t			 n;
	int			 fd;

	*reply = NULL;
	*error_r = NULL;
	if (cmd == NULL || cmd[0] == '\0' || strlen(cmd) >= CONTROL_LINE_MAX ||
	    strpbrk(cmd, "\r\n") != NULL) {
		xasprintf(error_r, "invalid control command");
		return -1;
	}
	if (path == NULL || path[0] == '\0') {
		xasprintf(error_r, "no control socket configured");
		return -1;
	}
	if (control_sockaddr(path, &sun, error_r) != 0)
		return -1;
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1) {
		xasprintf(error_r, "socket: %s", strerror(errno));
		return -1;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == -1 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) == -1) {
		xasprintf(error_r, "setsockopt: %s", strerror(errno));
		close(fd);
		return -1;
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof sun) == -1) {
		xasprintf(error_r, "cannot connect to %s: %s (is sealpostd "
		    "running?)", path, strerror(errno));
		close(fd);
		return -1;
	}

	xasprintf(&line, "%s\n", cmd);
	len = strlen(line);
	if (body != NULL && bodylen > 0) {
		line = xreallocarray(line, len + bodylen + 1, 1);
		memcpy(line + len, body, bodylen);
		len += bodylen;
	}
	for (off = 0; off < len; off += (size_t)n) {
		n = send(fd, line + off, len - off, MSG_NOSIGNAL);
		if (n == -1 && errno == EINTR) {
			n = 0;
			continue;
		}
		if (n == -1) {
			xasprintf(error_r, "write %s: %s", path,
			    strerror(errno));
			free(line);
			close(fd);
			return -1;
		}
	}
	free(line);
	shutdown(fd, SHUT_WR);

	cap = 4096;
	buf = xmalloc(cap);
	off = 0;
	for (;;) {
		if (off + 1 >= cap) {
			if (cap >= CONTROL_REPLY_MAX) {
				xasprintf(error_r, "answer from %s is larger "
				    "than %d bytes", path, CONTROL_REPLY_MAX);
				goto fail;
			}
			cap *= 2;
			buf = xreallocarray(buf, cap, 1);
		}
		n = read(fd, buf + off, cap - off - 1);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			xasprintf(error_r, "read %s: %s", path,
			    errno == EAGAIN || errno == EWOULDBLOCK ?
			    "timed out" : strerror(errno));
			goto fail;
		}
		if (n == 0)
			break;
		off += (size_t)n;
	}
	close(fd);
	while (off > 0 && (buf[off - 1] == '\n' || buf[off - 1] == '\r'))
		off--;
	buf[off] = '\0';
	if (off == 0) {
		xasprintf(error_r, "empty answer from %s", path);
		free(buf);
		return -1;
	}
	*reply = buf;
	return 0;

fail:
	free(buf);
	close(fd);
	return -1;
}

/* Fill a sockaddr_un; -1 if the path does not fit. */
int
control_sockaddr(const char *path, struct sockaddr_un *sun, char **error_r)
{
	memset(sun, 0, sizeof *sun);
	sun->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof sun->sun_path) {
		xasprintf(error_r, "control socket path too long (%zu bytes, "
		    "at most %zu): %s", strlen(path),
		    sizeof sun->sun_path - 1, path);
		return -1;
	}
	strlcpy_sp(sun->sun_path, path, sizeof sun->sun_path);
	return 0;
}
