/* smtpd_session.c - placeholder while the module is being written. */
