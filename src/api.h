/*
 * api.h - the HTTP API (libevent evhttp, JSON with jansson).
 *
 *   POST /v1/letters        submit a letter (202 after COMMIT)
 *   GET  /v1/letters/{id}   state and one entry per delivery
 *   GET  /healthz           liveness and store health
 *
 * Auth: "Authorization: Bearer <token>"; the token's SHA-256 names one client
 * and one practice.  Errors: {"error":{"code":"...","message":"..."}} with
 * the status codes listed in api.c.
 */
#ifndef SEALPOST_API_H
#define SEALPOST_API_H

struct daemon;
struct api;

int	 api_start(struct daemon *, struct api **, char **error_r);
/* Close the listener; in-flight requests still complete. */
void	 api_stop_accepting(struct api *);
/* Requests not finished: waiting on the pipeline, or their answer not
 * yet written out (a draining daemon waits for these). */
int	 api_inflight(struct api *);
void	 api_free(struct api **);

#endif
