/*
 * smtpd.h - the SMTP submission listener (accept glue).
 *
 * The per-connection state machine is smtpd_session.c.  RCPT TO
 * <patient-ID@practice-domain> addresses a patient; the message becomes a
 * sealed letter; 250 is answered only after the commit.
 */
#ifndef SEALPOST_SMTPD_H
#define SEALPOST_SMTPD_H

struct daemon;
struct smtpd;

int	 smtpd_start(struct daemon *, struct smtpd **, char **error_r);
void	 smtpd_stop_accepting(struct smtpd *);
/* Sessions still open. */
int	 smtpd_sessions(struct smtpd *);
/* Say 421 and close every idle session (shutdown). */
void	 smtpd_close_idle(struct smtpd *);
void	 smtpd_free(struct smtpd **);

#endif
